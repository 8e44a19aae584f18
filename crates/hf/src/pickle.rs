//! PyTorch `torch.save` checkpoints (`pytorch_model.bin`) read without
//! running any of their code, and converted to safetensors.
//!
//! # The format
//!
//! Since torch 1.6, `torch.save` writes a zip archive whose entries are
//! stored uncompressed, all under one directory (the *archive name*,
//! usually the file's stem or `archive`):
//!
//! | entry | what it holds |
//! |---|---|
//! | `<archive>/data.pkl` | a pickle (protocol 2) of the saved object, usually a dict of name to tensor |
//! | `<archive>/data/<key>` | the raw bytes of one storage, in the byte order below |
//! | `<archive>/byteorder` | `little` or `big` (absent before torch 2.1: little) |
//! | `<archive>/version`, `.format_version`, `.storage_alignment`, `.data/serialization_id` | bookkeeping, not read |
//!
//! A tensor is pickled as a call of `torch._utils._rebuild_tensor_v2(storage,
//! storage_offset, size, stride, requires_grad, backward_hooks)` (or
//! `_rebuild_tensor_v3(..., dtype)` for the dtypes without a legacy storage
//! class, such as float8), whose storage is a persistent id `('storage',
//! storage_class, key, location, numel)` naming the entry `data/<key>`.
//! Several tensors may view one storage (tied weights), with any offset
//! and strides (a transposed weight is not copied by `torch.save`).
//! Archives past 4 GiB or 65535 entries carry zip64 records, which are
//! read. The format of torch before 1.6 (pickles and storages one after
//! another, no zip) is refused with an error that says so.
//!
//! # The safety rule
//!
//! Python's pickle is a program: `GLOBAL` imports any callable and `REDUCE`
//! calls it, so loading an untrusted `pytorch_model.bin` with `pickle` can
//! run anything. This reader is a pickle machine that only *builds values*
//! (the private `vm` module): a global resolves only against a fixed
//! allow-list (`collections.OrderedDict`, the `torch._utils._rebuild_*`
//! functions of tensors and parameters, `torch._tensor._rebuild_from_type_v2`
//! of tensors with Python attributes, torch's storage and tensor classes
//! and dtypes, `torch.Size` and `_codecs.encode` for `bytes`), each "call"
//! of one is a Rust function that checks its arguments, and any other
//! global (`os.system`, `builtins.eval`, `subprocess.Popen`...) is an
//! [`Error::Checkpoint`] saying "refused global 'os.system'". Every size, offset and count read
//! from the file is checked before use: the zip directory against the file,
//! string lengths against what is left of the pickle, every tensor view
//! against its storage, and the pickle's stack, memo and objects against
//! fixed limits, so that a hostile file gets a typed error, never a panic,
//! an abort or a hang.
//!
//! # Reading
//!
//! [`TorchCheckpoint::open`] memory-maps the file (the safetensors reader's
//! [`ReadMode`] and its contract: the file must not change while open),
//! validates the archive and runs the pickle; no storage is read until a
//! tensor is. A tensor's bytes are borrowed from the map when its view is
//! contiguous and little-endian, and gathered into a new buffer otherwise
//! (strided views, big-endian files). A storage's CRC-32 is checked the
//! first time a tensor of it is read.
//!
//! The top level must be a dict (or OrderedDict) of tensors, or a dict
//! whose `state_dict`, `model` or `module` entry is one (with no tensor
//! beside it). Nested dicts are flattened with `.` joins (`{"encoder":
//! {"w": t}}` gives `encoder.w`); values that are not tensors (an `epoch`
//! number, optimizer settings) are listed by [`TorchCheckpoint::skipped`].
//!
//! # Converting
//!
//! [`convert_to_safetensors`] writes every tensor (renamed or dropped by a
//! callback) to one safetensors file, contiguous and little-endian, one
//! tensor at a time (through a temporary file renamed into place). Tensors
//! sharing a storage are written once each. [`write_safetensors_plan`]
//! writes a list of [`OutputTensor`]s instead, taken from one or several
//! checkpoints (the shards of a model): each a whole tensor or a range of
//! its rows, with its own shape or another of as many elements, so that a
//! fused weight can be split and a leading dimension of 1 dropped.

mod torch;
mod vm;
mod zip;

use crate::error::{file_error, Error, Result};
use memmap2::Mmap;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tessera_nn::TensorSource;
use tessera_tensor::safetensors::{FileDType, ReadMode};
use tessera_tensor::{DType, Device, Tensor};
use vm::{Id, Object, Objects};

pub use torch::TorchDType;

/// The prefixes under which a top-level dict holds the state dict
/// (training checkpoints, DeepSpeed's `module`), tried in this order.
const STATE_DICT_KEYS: [&str; 3] = ["state_dict", "model", "module"];
/// How deeply nested dicts are flattened into names.
const MAX_NESTING: usize = 32;

/// One tensor of a checkpoint: its name and its view of a storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorchTensor {
    /// The name (nested dict keys joined with `.`).
    pub name: String,
    /// Its torch dtype.
    pub dtype: TorchDType,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its strides, in elements.
    pub strides: Vec<usize>,
    /// Its first element's index in the storage, in elements.
    pub storage_offset: usize,
    /// The key of its storage (the entry `<archive>/data/<key>`).
    pub storage: String,
}

impl TorchTensor {
    /// The element count.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The size of its contiguous bytes.
    pub fn size_in_bytes(&self) -> usize {
        self.numel() * self.dtype.element_size()
    }

    /// Whether the view is row-major contiguous (dimensions of size 1 may
    /// have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&size, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if size == 0 {
                return true;
            }
            if size != 1 && stride != expected {
                return false;
            }
            expected *= size;
        }
        true
    }
}

/// A top-level entry that is not a tensor, left out of the checkpoint's
/// tensors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Its name (nested keys joined with `.`).
    pub name: String,
    /// What it is, in Python's words (`int`, `list`, `None`, `dict`...).
    pub kind: String,
    /// Its value when it is a scalar, as Python shows it (`3`, `0.001`,
    /// `'adamw'`, `True`; bytes are counted); `None` for containers.
    pub value: Option<String>,
}

/// What [`convert_to_safetensors`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConvertReport {
    /// (original name, name written), in the checkpoint's order.
    pub written: Vec<(String, String)>,
    /// The tensors the rename callback dropped.
    pub dropped: Vec<String>,
    /// The entries that were not tensors.
    pub skipped: Vec<Skipped>,
    /// Bytes of tensor data written.
    pub bytes: u64,
}

/// The bytes of an open file: memory-mapped, or owned.
enum Buffer {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Buffer {
    fn as_slice(&self) -> &[u8] {
        match self {
            Buffer::Mapped(map) => map,
            Buffer::Owned(bytes) => bytes,
        }
    }
}

/// A storage entry of the archive, its CRC checked on first use.
struct StorageEntry {
    entry: zip::Entry,
    checked: OnceLock<()>,
}

/// A `torch.save` checkpoint, its archive validated and its pickle read
/// into named tensor views (see the module documentation).
pub struct TorchCheckpoint {
    /// The path (or the name given to [`TorchCheckpoint::from_bytes`]).
    name: String,
    path: Option<PathBuf>,
    buffer: Buffer,
    big_endian: bool,
    tensors: Vec<TorchTensor>,
    index: HashMap<String, usize>,
    storages: HashMap<String, StorageEntry>,
    skipped: Vec<Skipped>,
}

impl std::fmt::Debug for TorchCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchCheckpoint")
            .field("name", &self.name)
            .field("len", &self.buffer.as_slice().len())
            .field("tensors", &self.tensors.len())
            .field("big_endian", &self.big_endian)
            .finish()
    }
}

impl TorchCheckpoint {
    /// Opens the checkpoint at `path` in the [`ReadMode::from_env`] mode (a
    /// memory map unless `TESSERA_MMAP=0`).
    pub fn open(path: impl AsRef<Path>) -> Result<TorchCheckpoint> {
        TorchCheckpoint::open_with(path, ReadMode::from_env())
    }

    /// Opens the regular file at `path`, mapped or read as `mode` says.
    pub fn open_with(path: impl AsRef<Path>, mode: ReadMode) -> Result<TorchCheckpoint> {
        let path = path.as_ref();
        let buffer = match mode {
            ReadMode::Read => Buffer::Owned(crate::read_file(path)?),
            ReadMode::Map => {
                let file = tessera_tensor::file::open_regular(path).map_err(file_error)?;
                // SAFETY: the file is opened read-only and the map is never
                // written through. Another process changing the file while
                // it is mapped is outside the guarantees (the contract of
                // ReadMode::Map; ReadMode::Read avoids it).
                let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
                Buffer::Mapped(map)
            }
        };
        let mut checkpoint = TorchCheckpoint::from_buffer(path.display().to_string(), buffer)?;
        checkpoint.path = Some(path.to_path_buf());
        Ok(checkpoint)
    }

    /// A checkpoint held in memory; `name` stands for the path in errors.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<TorchCheckpoint> {
        TorchCheckpoint::from_buffer(name.to_string(), Buffer::Owned(bytes))
    }

    fn from_buffer(name: String, buffer: Buffer) -> Result<TorchCheckpoint> {
        let fail = |msg: String| Error::checkpoint(&name, msg);
        let bytes = buffer.as_slice();
        let archive = zip::Archive::read(bytes).map_err(fail)?;
        let prefix = archive_name(&archive).map_err(fail)?;
        let pickle = read_small_entry(&archive, bytes, &format!("{prefix}/data.pkl")).map_err(fail)?;
        let Some(pickle) = pickle else {
            return Err(fail(format!("the archive has no {prefix}/data.pkl")));
        };
        let big_endian = byte_order(&archive, bytes, &prefix).map_err(fail)?;
        let data_entry = |key: &str| archive.get(&format!("{prefix}/data/{key}"));
        let (objects, root) = vm::unpickle(pickle, &|key: &str| data_entry(key).map(|e| e.data.len())).map_err(fail)?;
        let (tensors, skipped) = Collector::collect(&objects, root).map_err(fail)?;
        let mut storages = HashMap::new();
        for t in &tensors {
            if let Some(entry) = data_entry(&t.storage) {
                storages.entry(t.storage.clone()).or_insert_with(|| StorageEntry { entry: entry.clone(), checked: OnceLock::new() });
            }
        }
        let index = tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(TorchCheckpoint { name, path: None, buffer, big_endian, tensors, index, storages, skipped })
    }

    /// The path this checkpoint was opened from (or the name it was given).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tensor names, in the pickle's order.
    pub fn names(&self) -> Vec<&str> {
        self.tensors.iter().map(|t| t.name.as_str()).collect()
    }

    /// Every tensor, in the pickle's order.
    pub fn tensors(&self) -> &[TorchTensor] {
        &self.tensors
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the checkpoint holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Whether the checkpoint holds a tensor called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Tensor `name`, if the checkpoint holds it.
    pub fn tensor(&self, name: &str) -> Option<&TorchTensor> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The top-level entries that are not tensors.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Whether the storages are big-endian (the archive's `byteorder`).
    pub fn is_big_endian(&self) -> bool {
        self.big_endian
    }

    fn require(&self, name: &str) -> Result<&TorchTensor> {
        self.tensor(name).ok_or_else(|| Error::checkpoint(&self.name, format!("no tensor '{}'", shown(name))))
    }

    /// The shape of tensor `name`.
    pub fn shape(&self, name: &str) -> Result<&[usize]> {
        Ok(&self.require(name)?.shape)
    }

    /// The safetensors dtype of tensor `name`'s bytes; an error naming the
    /// tensor for the torch dtypes safetensors lacks (complex, quantized...).
    pub fn file_dtype(&self, name: &str) -> Result<FileDType> {
        let t = self.require(name)?;
        t.dtype.file_dtype().ok_or_else(|| {
            Error::checkpoint(
                &self.name,
                format!("tensor '{}' is {}, which neither Tessera nor safetensors supports", shown(name), t.dtype),
            )
        })
    }

    /// The Tessera dtype tensor `name` loads as: its own when Tessera has
    /// it, else the one the safetensors loader converts it to (`F64` to
    /// `F32`, the other integers to `I64`, `BOOL` to `U8`; see
    /// [`FileDType::load_dtype`]).
    pub fn dtype(&self, name: &str) -> Result<DType> {
        Ok(self.file_dtype(name)?.load_dtype())
    }

    /// The bytes of storage `key`, its CRC checked on first use.
    fn storage(&self, key: &str) -> Result<&[u8]> {
        let Some(slot) = self.storages.get(key) else {
            return Err(Error::checkpoint(&self.name, format!("no storage '{}'", shown(key))));
        };
        let data = &self.buffer.as_slice()[slot.entry.data.clone()];
        if slot.checked.get().is_none() {
            zip::check_crc(&slot.entry, data).map_err(|msg| Error::checkpoint(&self.name, msg))?;
            let _ = slot.checked.set(());
        }
        Ok(data)
    }

    /// Tensor `name`'s elements, contiguous (row-major) and little-endian:
    /// borrowed from the file when its view already is, gathered otherwise.
    pub fn bytes(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        self.file_dtype(name)?;
        let t = self.require(name)?;
        let storage = self.storage(&t.storage)?;
        match self.borrowed(t, storage) {
            Some(bytes) => Ok(Cow::Borrowed(bytes)),
            None => Ok(Cow::Owned(self.gathered(t, storage)?)),
        }
    }

    /// The view's bytes as stored, when they need no gather or swap.
    fn borrowed<'a>(&self, t: &TorchTensor, storage: &'a [u8]) -> Option<&'a [u8]> {
        let size = t.dtype.element_size();
        if t.numel() == 0 {
            return Some(&[]);
        }
        if !t.is_contiguous() || (self.big_endian && size > 1) {
            return None;
        }
        let start = t.storage_offset * size;
        Some(&storage[start..start + t.size_in_bytes()])
    }

    /// The view's elements gathered into a new buffer (allocated fallibly).
    fn gathered(&self, t: &TorchTensor, storage: &[u8]) -> Result<Vec<u8>> {
        let what = format!("tensor '{}' of {}", shown(&t.name), self.name);
        let mut out = tessera_tensor::try_vec(t.size_in_bytes(), &what)?;
        gather(t, storage, self.big_endian, &mut out);
        Ok(out)
    }

    /// Loads tensor `name` onto `device` as [`TorchCheckpoint::dtype`] says.
    pub fn load(&self, name: &str, device: &Device) -> Result<Tensor> {
        let file_dtype = self.file_dtype(name)?;
        let t = self.require(name)?;
        let bytes = self.bytes(name)?;
        let bytes = decode(file_dtype, bytes, &self.name, &format!("tensor '{}'", shown(name)))?;
        Ok(Tensor::from_bytes(&bytes, file_dtype.load_dtype(), t.shape.clone(), device)?)
    }

    /// Writes the tensors to the safetensors file `output` (see
    /// [`convert_to_safetensors`]).
    pub fn write_safetensors(&self, output: &Path, rename: impl Fn(&str) -> Option<String>) -> Result<ConvertReport> {
        let mut report = ConvertReport { skipped: self.skipped.clone(), ..ConvertReport::default() };
        let mut plan = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            match rename(&t.name) {
                Some(out) => {
                    report.written.push((t.name.clone(), out.clone()));
                    plan.push(OutputTensor::new(out, &t.name));
                }
                None => report.dropped.push(t.name.clone()),
            }
        }
        report.bytes = write_safetensors_plan(std::slice::from_ref(self), &plan, output)?;
        Ok(report)
    }

    /// Output tensor `out` (taken from this checkpoint) ready to be written:
    /// checked (dtype, CRC, rows, shape), borrowed when it can be, and
    /// gathered now (fallibly) when its bytes would exceed its storage's
    /// (an expanded view); other gathers happen as it is written, one
    /// tensor at a time.
    fn out_view(&self, out: &OutputTensor) -> Result<OutView<'_>> {
        let file_dtype = self.file_dtype(&out.source)?;
        let Some(dtype) = safetensors_dtype(file_dtype) else {
            return Err(Error::checkpoint(&self.name, format!("tensor '{}': {file_dtype} cannot be written", shown(&out.source))));
        };
        let t = self.require(&out.source)?;
        let (view, shape) = select(t, out).map_err(|msg| Error::invalid(PLAN_OP, msg))?;
        let storage = self.storage(&t.storage)?;
        let len = view.size_in_bytes();
        let data = match self.borrowed(&view, storage) {
            Some(bytes) => OutData::Ready(Cow::Borrowed(bytes)),
            None if len > storage.len() => OutData::Ready(Cow::Owned(self.gathered(&view, storage)?)),
            None => OutData::Gather { tensor: view, storage, big_endian: self.big_endian },
        };
        Ok(OutView { dtype, shape, len, data })
    }
}

/// The function named in the errors of a plan.
const PLAN_OP: &str = "write_safetensors_plan";

/// One tensor of a safetensors file written from torch checkpoints by
/// [`write_safetensors_plan`]: a source tensor, or a range of its rows
/// (its first dimension), with its own shape or another holding as many
/// elements. A fused weight split in three, for example, is three
/// outputs of one source with the row ranges `0..n`, `n..2n`, `2n..3n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputTensor {
    /// The name written.
    pub name: String,
    /// The checkpoint tensor it is taken from.
    pub source: String,
    /// The rows of the source it holds; `None` for all of them.
    pub rows: Option<Range<usize>>,
    /// The shape written; `None` for the (sliced) source's shape.
    pub shape: Option<Vec<usize>>,
}

impl OutputTensor {
    /// Source tensor `source`, whole, written as `name`.
    pub fn new(name: impl Into<String>, source: impl Into<String>) -> OutputTensor {
        OutputTensor { name: name.into(), source: source.into(), rows: None, shape: None }
    }

    /// Only rows `rows` of the source (its first dimension).
    pub fn rows(mut self, rows: Range<usize>) -> OutputTensor {
        self.rows = Some(rows);
        self
    }

    /// Written with shape `shape` (as many elements as the selected rows).
    pub fn reshaped(mut self, shape: Vec<usize>) -> OutputTensor {
        self.shape = Some(shape);
        self
    }
}

/// The view `out` takes of tensor `t` (its rows selected) and the shape it
/// is written with.
fn select(t: &TorchTensor, out: &OutputTensor) -> std::result::Result<(TorchTensor, Vec<usize>), String> {
    let mut view = t.clone();
    if let Some(rows) = &out.rows {
        let Some(&first) = t.shape.first() else {
            return Err(format!("'{}': tensor '{}' is a scalar, it has no rows", shown(&out.name), shown(&t.name)));
        };
        if rows.start > rows.end || rows.end > first {
            return Err(format!(
                "'{}': rows {}..{} of tensor '{}', whose first dimension is {first}",
                shown(&out.name),
                rows.start,
                rows.end,
                shown(&t.name)
            ));
        }
        view.shape[0] = rows.len();
        // An empty view reads nothing: its offset stays where it was.
        if view.numel() > 0 {
            let shift = rows.start.checked_mul(t.strides[0]).and_then(|s| s.checked_add(t.storage_offset));
            view.storage_offset = shift.ok_or_else(|| format!("'{}': the row offset overflows", shown(&out.name)))?;
        }
    }
    let shape = match &out.shape {
        None => view.shape.clone(),
        Some(shape) => {
            let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            if numel != Some(view.numel()) {
                return Err(format!(
                    "'{}': shape {shape:?} does not hold the {} elements of its rows of tensor '{}' ({:?})",
                    shown(&out.name),
                    view.numel(),
                    shown(&t.name),
                    view.shape
                ));
            }
            shape.clone()
        }
    };
    Ok((view, shape))
}

/// Writes the safetensors file `output` of `plan`: each output tensor taken
/// from the first of `checkpoints` that holds its source, contiguous and
/// little-endian, with `{"format": "pt"}` as metadata, one tensor at a
/// time (through a temporary file renamed into place); the bytes of
/// tensor data written. Two outputs of one name, a source no checkpoint
/// holds, rows or a shape that do not fit the source, a dtype safetensors
/// lacks and an output that is one of the inputs are errors, before
/// anything is written.
pub fn write_safetensors_plan(checkpoints: &[TorchCheckpoint], plan: &[OutputTensor], output: &Path) -> Result<u64> {
    for input in checkpoints.iter().filter_map(|c| c.path.as_deref()) {
        refuse_same_file(input, output)?;
    }
    let mut taken: HashMap<&str, &str> = HashMap::with_capacity(plan.len());
    let mut views = Vec::with_capacity(plan.len());
    let mut bytes = 0u64;
    for out in plan {
        check_output_name(out, &mut taken)?;
        let Some(checkpoint) = checkpoints.iter().find(|c| c.contains(&out.source)) else {
            return Err(Error::invalid(PLAN_OP, format!("'{}': no checkpoint holds tensor '{}'", shown(&out.name), shown(&out.source))));
        };
        let view = checkpoint.out_view(out)?;
        bytes += view.len as u64;
        views.push((out.name.as_str(), view));
    }
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), output).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(e) => Error::io(output, e),
        other => Error::checkpoint(output.display().to_string(), format!("writing safetensors: {other}")),
    })?;
    Ok(bytes)
}

/// Refuses an output name that is reserved or already written.
fn check_output_name<'a>(out: &'a OutputTensor, taken: &mut HashMap<&'a str, &'a str>) -> Result<()> {
    if out.name == "__metadata__" {
        return Err(Error::invalid(PLAN_OP, format!("tensor '{}' written as __metadata__", shown(&out.source))));
    }
    if let Some(first) = taken.insert(&out.name, &out.source) {
        return Err(Error::invalid(
            PLAN_OP,
            format!("two tensors are written as '{}' (from '{}' and '{}')", shown(&out.name), shown(first), shown(&out.source)),
        ));
    }
    Ok(())
}

impl TensorSource for TorchCheckpoint {
    fn info(&self, name: &str) -> Option<(DType, Vec<usize>)> {
        let t = self.tensor(name)?;
        Some((t.dtype.file_dtype()?.load_dtype(), t.shape.clone()))
    }

    fn load(&self, name: &str, device: &Device) -> tessera_tensor::Result<Tensor> {
        TorchCheckpoint::load(self, name, device).map_err(|e| match e {
            Error::Tensor(e) => e,
            Error::Io { path, source } => tessera_tensor::Error::Io { path, source },
            other => tessera_tensor::Error::InvalidArgument { op: "torch checkpoint", msg: other.to_string() },
        })
    }

    fn names(&self) -> Vec<String> {
        self.tensors.iter().map(|t| t.name.clone()).collect()
    }

    fn contains(&self, name: &str) -> bool {
        TorchCheckpoint::contains(self, name)
    }

    fn describe(&self) -> String {
        format!("checkpoint {}", self.name)
    }
}

/// Converts the `torch.save` checkpoint `input` to the safetensors file
/// `output`: every tensor, named `rename(name)` or dropped when that is
/// `None`, contiguous and little-endian, with `{"format": "pt"}` as
/// metadata (see [`write_safetensors_plan`], which also splits and
/// reshapes tensors). Two tensors renamed alike, a tensor of a dtype
/// safetensors lacks (drop it to convert the rest) and an output that is
/// the input are errors.
pub fn convert_to_safetensors(input: &Path, output: &Path, rename: impl Fn(&str) -> Option<String>) -> Result<ConvertReport> {
    TorchCheckpoint::open(input)?.write_safetensors(output, rename)
}

/// Refuses to write the output over the checkpoint being read.
fn refuse_same_file(input: &Path, output: &Path) -> Result<()> {
    let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize()) else {
        return Ok(());
    };
    if a == b {
        return Err(Error::invalid("convert_to_safetensors", format!("the output {} is the input checkpoint", output.display())));
    }
    Ok(())
}

// ------------------------------------------------------------ archive

/// The archive name: the directory of the one `<name>/data.pkl` entry.
fn archive_name(archive: &zip::Archive) -> std::result::Result<String, String> {
    let mut names = archive.entries().iter().filter_map(|e| e.name.strip_suffix("/data.pkl")).filter(|p| !p.is_empty() && !p.contains('/'));
    match (names.next(), names.next()) {
        (Some(name), None) => Ok(name.to_string()),
        (Some(a), Some(b)) => Err(format!("the archive holds two pickles, {}/data.pkl and {}/data.pkl", shown(a), shown(b))),
        (None, _) => Err("the archive has no <archive>/data.pkl entry: not a torch.save checkpoint".to_string()),
    }
}

/// The bytes of entry `name` (CRC checked), if the archive has it.
fn read_small_entry<'a>(archive: &zip::Archive, bytes: &'a [u8], name: &str) -> std::result::Result<Option<&'a [u8]>, String> {
    let Some(entry) = archive.get(name) else { return Ok(None) };
    let data = &bytes[entry.data.clone()];
    zip::check_crc(entry, data)?;
    Ok(Some(data))
}

/// Whether `<archive>/byteorder` says `big` (little when it is absent).
fn byte_order(archive: &zip::Archive, bytes: &[u8], prefix: &str) -> std::result::Result<bool, String> {
    match read_small_entry(archive, bytes, &format!("{prefix}/byteorder"))? {
        None | Some(b"little") => Ok(false),
        Some(b"big") => Ok(true),
        Some(other) => Err(format!("{prefix}/byteorder is '{}', not 'little' or 'big'", shown(&String::from_utf8_lossy(other)))),
    }
}

// ------------------------------------------------------- the top level

/// Names the tensors of the pickle's result (see the module
/// documentation).
struct Collector<'a> {
    objects: &'a Objects,
    tensors: Vec<TorchTensor>,
    names: HashSet<String>,
    skipped: Vec<Skipped>,
    visited: HashSet<Id>,
}

impl<'a> Collector<'a> {
    fn collect(objects: &'a Objects, root: Id) -> std::result::Result<(Vec<TorchTensor>, Vec<Skipped>), String> {
        let items = match objects.get(root) {
            Object::Dict(items) => dedup(objects, items),
            Object::Tensor(_) => return Err("the pickle holds a single tensor, not a dict of named tensors".to_string()),
            other => return Err(format!("the pickle holds a {}, not a dict of tensors", other.kind())),
        };
        let mut c = Collector { objects, tensors: Vec::new(), names: HashSet::new(), skipped: Vec::new(), visited: HashSet::new() };
        match wrapped_state_dict(objects, &items) {
            Some((key, inner)) => {
                for &(k, v) in items.iter().filter(|(k, _)| !matches!(objects.get(*k), Object::Str(s) if s == key)) {
                    let name = key_name(objects.get(k)).unwrap_or_else(|| format!("<{} key>", objects.get(k).kind()));
                    c.skip_object(name, objects.get(v));
                }
                c.walk(inner, "", 0)?;
            }
            None => c.walk(root, "", 0)?,
        }
        Ok((c.tensors, c.skipped))
    }

    /// Adds the tensors of dict `dict` under `prefix`, nested dicts joined
    /// with `.`.
    fn walk(&mut self, dict: Id, prefix: &str, depth: usize) -> std::result::Result<(), String> {
        let objects = self.objects;
        let whole = prefix.strip_suffix('.').unwrap_or(prefix);
        if depth > MAX_NESTING {
            self.skip(whole.to_string(), "dict nested too deeply", None);
            return Ok(());
        }
        if !self.visited.insert(dict) {
            self.skip(whole.to_string(), "dict seen before (shared or cyclic)", None);
            return Ok(());
        }
        let Object::Dict(items) = objects.get(dict) else { return Ok(()) };
        for (key, value) in dedup(objects, items) {
            let Some(key) = key_name(objects.get(key)) else {
                let kind = objects.get(key).kind();
                self.skip_object(format!("{prefix}<{kind} key>"), objects.get(value));
                continue;
            };
            let name = format!("{prefix}{key}");
            match objects.get(value) {
                Object::Tensor(view) => self.add(name, view)?,
                Object::Dict(inner) if inner.is_empty() => self.skip(name, "dict (empty)", None),
                Object::Dict(_) => self.walk(value, &format!("{name}."), depth + 1)?,
                other => self.skip_object(name, other),
            }
        }
        Ok(())
    }

    fn add(&mut self, name: String, view: &torch::TensorView) -> std::result::Result<(), String> {
        if !self.names.insert(name.clone()) {
            return Err(format!("two tensors are named '{}' once nested dicts are flattened", shown(&name)));
        }
        self.tensors.push(TorchTensor {
            name,
            dtype: view.dtype,
            shape: view.shape.clone(),
            strides: view.strides.clone(),
            storage_offset: view.offset,
            storage: view.storage.clone(),
        });
        Ok(())
    }

    fn skip(&mut self, name: String, kind: &str, value: Option<String>) {
        self.skipped.push(Skipped { name, kind: kind.to_string(), value });
    }

    fn skip_object(&mut self, name: String, object: &Object) {
        self.skip(name, object.kind(), object.scalar_value());
    }
}

/// The state dict a top-level dict wraps: its `state_dict`, `model` or
/// `module` entry when that is a dict and no tensor sits beside it.
fn wrapped_state_dict(objects: &Objects, items: &[(Id, Id)]) -> Option<(&'static str, Id)> {
    if items.iter().any(|&(_, v)| matches!(objects.get(v), Object::Tensor(_))) {
        return None;
    }
    STATE_DICT_KEYS.into_iter().find_map(|key| {
        items.iter().find_map(|&(k, v)| match (objects.get(k), objects.get(v)) {
            (Object::Str(s), Object::Dict(_)) if s == key => Some((key, v)),
            _ => None,
        })
    })
}

/// A dict key as a name: strings as they are, integers in decimal.
fn key_name(key: &Object) -> Option<String> {
    match key {
        Object::Str(s) => Some(s.clone()),
        Object::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A dict's items as Python holds them: a repeated key keeps its first
/// position and its last value.
fn dedup(objects: &Objects, items: &[(Id, Id)]) -> Vec<(Id, Id)> {
    #[derive(PartialEq, Eq, Hash)]
    enum Key<'a> {
        Str(&'a str),
        Int(i64),
        Other(Id),
    }
    let mut out: Vec<(Id, Id)> = Vec::with_capacity(items.len());
    let mut seen: HashMap<Key, usize> = HashMap::with_capacity(items.len());
    for &(k, v) in items {
        let key = match objects.get(k) {
            Object::Str(s) => Key::Str(s),
            Object::Int(i) => Key::Int(*i),
            Object::Bool(b) => Key::Int(i64::from(*b)),
            _ => Key::Other(k),
        };
        match seen.get(&key) {
            Some(&i) => out[i].1 = v,
            None => {
                seen.insert(key, out.len());
                out.push((k, v));
            }
        }
    }
    out
}

// ---------------------------------------------------------- tensor data

/// Appends `t`'s elements to `out` in row-major order (the view was
/// checked to lie inside `storage`), byte-swapped when `big_endian`.
fn gather(t: &TorchTensor, storage: &[u8], big_endian: bool, out: &mut Vec<u8>) {
    let size = t.dtype.element_size();
    let start = out.len();
    if t.numel() == 0 {
        return;
    }
    let Some((&inner, outer)) = t.shape.split_last() else {
        out.extend_from_slice(&storage[t.storage_offset * size..][..size]);
        swap_elements(&mut out[start..], size, big_endian);
        return;
    };
    let inner_stride = t.strides[outer.len()];
    let mut index = vec![0usize; outer.len()];
    loop {
        let base = t.storage_offset + index.iter().zip(&t.strides).map(|(i, s)| i * s).sum::<usize>();
        if inner_stride == 1 {
            out.extend_from_slice(&storage[base * size..(base + inner) * size]);
        } else {
            for j in 0..inner {
                let at = (base + j * inner_stride) * size;
                out.extend_from_slice(&storage[at..at + size]);
            }
        }
        if !next_index(&mut index, outer) {
            break;
        }
    }
    swap_elements(&mut out[start..], size, big_endian);
}

/// Advances the row-major multi-index `index` over `shape`; false once
/// every index has been visited.
fn next_index(index: &mut [usize], shape: &[usize]) -> bool {
    for (i, &n) in index.iter_mut().zip(shape).rev() {
        *i += 1;
        if *i < n {
            return true;
        }
        *i = 0;
    }
    false
}

/// Reverses the bytes of every element of a big-endian buffer.
fn swap_elements(bytes: &mut [u8], size: usize, big_endian: bool) {
    if big_endian && size > 1 {
        bytes.chunks_exact_mut(size).for_each(<[u8]>::reverse);
    }
}

/// Re-encodes little-endian elements of `dtype` as the Tessera dtype it
/// loads as (the safetensors loader's conversions); `what` names the
/// tensor and `file` the checkpoint in errors.
fn decode<'a>(dtype: FileDType, raw: Cow<'a, [u8]>, file: &str, what: &str) -> Result<Cow<'a, [u8]>> {
    // A buffer for `num` bytes out per `den` bytes stored.
    let widened = |num: usize, den: usize| tessera_tensor::try_vec::<u8>(raw.len() / den * num, what);
    let mut out = match dtype {
        FileDType::F64 => widened(1, 2)?,
        FileDType::I8 | FileDType::I16 | FileDType::U16 | FileDType::I32 => widened(8, dtype.bits() / 8)?,
        FileDType::F8E8M0 => widened(4, 1)?,
        FileDType::U64 => {
            if let Some(i) = raw.chunks_exact(8).position(|c| c[7] & 0x80 != 0) {
                return Err(Error::checkpoint(file, format!("{what}: uint64 element {i} does not fit in I64, the dtype it loads as")));
            }
            return Ok(raw);
        }
        _ => return Ok(raw),
    };
    match dtype {
        FileDType::F64 => out.extend(raw.chunks_exact(8).flat_map(|c| (f64::from_le_bytes(array(c)) as f32).to_le_bytes())),
        FileDType::I8 => out.extend(raw.iter().flat_map(|&b| i64::from(b as i8).to_le_bytes())),
        FileDType::I16 => out.extend(raw.chunks_exact(2).flat_map(|c| i64::from(i16::from_le_bytes(array(c))).to_le_bytes())),
        FileDType::U16 => out.extend(raw.chunks_exact(2).flat_map(|c| i64::from(u16::from_le_bytes(array(c))).to_le_bytes())),
        FileDType::I32 => out.extend(raw.chunks_exact(4).flat_map(|c| i64::from(i32::from_le_bytes(array(c))).to_le_bytes())),
        _ => out.extend(raw.iter().flat_map(|&e| e8m0(e).to_le_bytes())),
    }
    Ok(Cow::Owned(out))
}

/// The first `N` bytes of `c` (a chunk of exactly `N`).
fn array<const N: usize>(c: &[u8]) -> [u8; N] {
    c.try_into().expect("a chunk of N bytes")
}

/// An E8M0 scale (`2^(e - 127)`, 0xFF is NaN) as an f32.
fn e8m0(e: u8) -> f32 {
    match e {
        0xff => f32::NAN,
        // 2^-127 is below f32's normal range: its bit pattern is subnormal.
        0 => f32::from_bits(0x0040_0000),
        e => f32::from_bits(u32::from(e) << 23),
    }
}

/// The safetensors crate's dtype for a stored dtype torch can have.
fn safetensors_dtype(dtype: FileDType) -> Option<safetensors::Dtype> {
    use safetensors::Dtype as S;
    Some(match dtype {
        FileDType::Bool => S::BOOL,
        FileDType::U8 => S::U8,
        FileDType::I8 => S::I8,
        FileDType::U16 => S::U16,
        FileDType::I16 => S::I16,
        FileDType::U32 => S::U32,
        FileDType::I32 => S::I32,
        FileDType::U64 => S::U64,
        FileDType::I64 => S::I64,
        FileDType::F16 => S::F16,
        FileDType::BF16 => S::BF16,
        FileDType::F32 => S::F32,
        FileDType::F64 => S::F64,
        FileDType::F8E4M3 => S::F8_E4M3,
        FileDType::F8E5M2 => S::F8_E5M2,
        FileDType::F8E8M0 => S::F8_E8M0,
        FileDType::F4 | FileDType::F6E2M3 | FileDType::F6E3M2 => return None,
    })
}

/// A tensor as the safetensors writer sees it.
struct OutView<'a> {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    len: usize,
    data: OutData<'a>,
}

enum OutData<'a> {
    /// Bytes borrowed from the file, or gathered already.
    Ready(Cow<'a, [u8]>),
    /// A strided or big-endian view, gathered when written.
    Gather { tensor: TorchTensor, storage: &'a [u8], big_endian: bool },
}

impl safetensors::View for OutView<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        match &self.data {
            OutData::Ready(bytes) => Cow::Borrowed(bytes),
            OutData::Gather { tensor, storage, big_endian } => {
                // No larger than its storage, which the file holds (larger
                // views were gathered fallibly in `out_view`).
                let mut out = Vec::with_capacity(self.len);
                gather(tensor, storage, *big_endian, &mut out);
                Cow::Owned(out)
            }
        }
    }

    fn data_len(&self) -> usize {
        self.len
    }
}

/// A string from the file as a message shows it: control characters
/// escaped (a message stays on one line) and cut after 200 characters.
fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(200));
    for (i, c) in s.chars().enumerate() {
        if i == 200 {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(shape: &[usize], strides: &[usize], offset: usize) -> TorchTensor {
        TorchTensor {
            name: "t".into(),
            dtype: TorchDType::from_name("int16").unwrap(),
            shape: shape.into(),
            strides: strides.into(),
            storage_offset: offset,
            storage: "0".into(),
        }
    }

    #[test]
    fn gathers_strided_views() {
        let storage: Vec<u8> = (0u16..12).flat_map(u16::to_le_bytes).collect();
        let values = |t: &TorchTensor, big: bool| {
            let mut out = Vec::new();
            gather(t, &storage, big, &mut out);
            out.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect::<Vec<_>>()
        };
        assert_eq!(values(&tensor(&[2, 3], &[1, 2], 1), false), [1, 3, 5, 2, 4, 6]);
        assert_eq!(values(&tensor(&[2, 2], &[0, 1], 4), false), [4, 5, 4, 5]);
        assert_eq!(values(&tensor(&[], &[], 7), false), [7]);
        assert_eq!(values(&tensor(&[0, 3], &[3, 1], 0), false), Vec::<u16>::new());
        assert_eq!(values(&tensor(&[2], &[1], 1), true), [0x100, 0x200]);
        assert!(tensor(&[2, 1, 3], &[3, 9, 1], 0).is_contiguous());
        assert!(!tensor(&[2, 3], &[1, 2], 0).is_contiguous());
    }

    #[test]
    fn decodes_like_the_safetensors_loader() {
        let f64s: Vec<u8> = [1.5f64, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let out = decode(FileDType::F64, Cow::Owned(f64s), "f", "t").unwrap();
        assert_eq!(out.as_ref(), [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        let out = decode(FileDType::I8, Cow::Borrowed(&[0xff, 2]), "f", "t").unwrap();
        assert_eq!(out.as_ref(), [-1i64, 2].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        assert!(decode(FileDType::U64, Cow::Borrowed(&u64::MAX.to_le_bytes()), "f", "t").is_err());
        let minus_three = (-3i32).to_le_bytes();
        let out = decode(FileDType::I32, Cow::Borrowed(&minus_three), "f", "t").unwrap();
        assert_eq!(out.as_ref(), (-3i64).to_le_bytes());
        assert_eq!(e8m0(127), 1.0);
        assert_eq!(e8m0(0), 2f32.powi(-127));
    }

    #[test]
    fn shown_strings_stay_on_one_line() {
        assert_eq!(shown("a\nb"), "a\\nb");
        assert_eq!(shown(&"x".repeat(300)).len(), 203);
    }
}

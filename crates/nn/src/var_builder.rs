//! Named weights: a [`VarBuilder`] hands layers their tensors from a
//! [`TensorSource`] by dotted Hugging Face names, checking shapes, casting
//! float weights to the model's dtype and moving them to its device.
//!
//! ```no_run
//! # fn main() -> tessera_nn::Result<()> {
//! use tessera_nn::{Linear, VarBuilder};
//! use tessera_tensor::{safetensors::Checkpoint, DType, Device};
//!
//! let ckpt = Checkpoint::open("model.safetensors")?;
//! let vb = VarBuilder::from_source(ckpt, Device::cpu()).with_dtype(DType::F32);
//! let attn = vb.pp("vision_model.encoder.layers").pp(3).pp("self_attn");
//! // Loads `vision_model.encoder.layers.3.self_attn.q_proj.{weight,bias}`.
//! let q_proj = Linear::load(&attn.pp("q_proj"), 768, 768, true)?;
//! # let _ = q_proj;
//! # Ok(())
//! # }
//! ```

use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use tessera_tensor::safetensors::{Checkpoint, SafeTensorsFile};
use tessera_tensor::{DType, Device, Shape, Tensor};

/// A set of named tensors that can be inspected without loading them.
pub trait TensorSource: Send + Sync {
    /// The dtype a tensor loads as and its shape, or `None` when the source
    /// holds no tensor called `name`.
    fn info(&self, name: &str) -> Option<(DType, Vec<usize>)>;

    /// Loads tensor `name` onto `device`, in its stored dtype.
    fn load(&self, name: &str, device: &Device) -> tessera_tensor::Result<Tensor>;

    /// Every tensor name of the source.
    fn names(&self) -> Vec<String>;

    /// Whether the source holds a tensor called `name`.
    fn contains(&self, name: &str) -> bool {
        self.info(name).is_some()
    }

    /// What the source is (a checkpoint file or index), for messages.
    fn describe(&self) -> String {
        "in-memory tensors".to_string()
    }
}

impl TensorSource for Checkpoint {
    fn info(&self, name: &str) -> Option<(DType, Vec<usize>)> {
        Checkpoint::info(self, name).map(|i| (i.dtype, i.shape.clone()))
    }
    fn load(&self, name: &str, device: &Device) -> tessera_tensor::Result<Tensor> {
        Checkpoint::load(self, name, device)
    }
    fn names(&self) -> Vec<String> {
        Checkpoint::names(self).into_iter().map(str::to_string).collect()
    }
    fn contains(&self, name: &str) -> bool {
        Checkpoint::contains(self, name)
    }
    fn describe(&self) -> String {
        format!("checkpoint {}", self.source())
    }
}

impl TensorSource for SafeTensorsFile {
    fn info(&self, name: &str) -> Option<(DType, Vec<usize>)> {
        SafeTensorsFile::info(self, name).map(|i| (i.dtype, i.shape.clone()))
    }
    fn load(&self, name: &str, device: &Device) -> tessera_tensor::Result<Tensor> {
        SafeTensorsFile::load(self, name, device)
    }
    fn names(&self) -> Vec<String> {
        SafeTensorsFile::names(self).into_iter().map(str::to_string).collect()
    }
    fn contains(&self, name: &str) -> bool {
        SafeTensorsFile::contains(self, name)
    }
    fn describe(&self) -> String {
        format!("checkpoint {}", self.name())
    }
}

macro_rules! map_source {
    ($map:ident) => {
        /// In-memory tensors (tests, converted weights); `load` moves a
        /// tensor to the device, which is a cheap clone on its own device.
        impl TensorSource for $map<String, Tensor> {
            fn info(&self, name: &str) -> Option<(DType, Vec<usize>)> {
                self.get(name).map(|t| (t.dtype(), t.dims().to_vec()))
            }
            fn load(&self, name: &str, device: &Device) -> tessera_tensor::Result<Tensor> {
                match self.get(name) {
                    Some(t) => t.to_device(device),
                    None => Err(tessera_tensor::Error::InvalidArgument { op: "load", msg: format!("no tensor named '{name}'") }),
                }
            }
            fn names(&self) -> Vec<String> {
                self.keys().cloned().collect()
            }
            fn contains(&self, name: &str) -> bool {
                self.contains_key(name)
            }
        }
    };
}
map_source!(HashMap);
map_source!(BTreeMap);

/// State shared by a builder and every builder derived from it.
struct Shared {
    source: Arc<dyn TensorSource>,
    /// Full names handed out so far (see [`VarBuilder::unused`]).
    used: Mutex<BTreeSet<String>>,
    /// Errors recorded in collecting mode (see [`VarBuilder::collect_errors`]).
    errors: Mutex<Vec<Error>>,
}

/// Locks a mutex, ignoring poisoning: the guarded sets stay consistent even
/// if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hands out the tensors of a [`TensorSource`] under a dotted prefix.
///
/// Cloning and [`pp`](VarBuilder::pp) are cheap: every derived builder shares
/// the source, the record of used names and the collected errors. Float
/// tensors are cast to the builder's dtype when it has one; an integer
/// tensor is then an [`Error::DTypeMismatch`] (integer buffers are read with
/// [`with_stored_dtype`](VarBuilder::with_stored_dtype), which returns every
/// tensor as stored).
#[derive(Clone)]
pub struct VarBuilder {
    shared: Arc<Shared>,
    prefix: String,
    device: Device,
    dtype: Option<DType>,
    collect: bool,
}

impl fmt::Debug for VarBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VarBuilder").field("prefix", &self.prefix).field("device", &self.device).field("dtype", &self.dtype).finish()
    }
}

impl VarBuilder {
    /// A builder at the root of `source` that loads onto `device`, keeping
    /// stored dtypes.
    pub fn new(source: Arc<dyn TensorSource>, device: Device) -> Self {
        let shared = Shared { source, used: Mutex::new(BTreeSet::new()), errors: Mutex::new(Vec::new()) };
        VarBuilder { shared: Arc::new(shared), prefix: String::new(), device, dtype: None, collect: false }
    }

    /// [`VarBuilder::new`] taking the source by value.
    pub fn from_source(source: impl TensorSource + 'static, device: Device) -> Self {
        VarBuilder::new(Arc::new(source), device)
    }

    /// A builder over in-memory tensors.
    pub fn from_tensors(tensors: HashMap<String, Tensor>, device: Device) -> Self {
        VarBuilder::from_source(tensors, device)
    }

    /// This builder, casting float tensors to `dtype` on load.
    pub fn with_dtype(&self, dtype: DType) -> Self {
        VarBuilder { dtype: Some(dtype), ..self.clone() }
    }

    /// This builder, keeping stored dtypes.
    pub fn with_stored_dtype(&self) -> Self {
        VarBuilder { dtype: None, ..self.clone() }
    }

    /// This builder, loading onto `device`.
    pub fn with_device(&self, device: Device) -> Self {
        VarBuilder { device, ..self.clone() }
    }

    /// This builder in error-collecting mode: a missing or misshapen tensor
    /// requested with [`get`](VarBuilder::get) is recorded instead of
    /// returned as an error, and the call returns zeros of the expected shape
    /// so that loading can go on and report every problem at once. Call
    /// [`finish`](VarBuilder::finish) after loading to get them. Builders
    /// derived from this one collect too.
    pub fn collect_errors(&self) -> Self {
        VarBuilder { collect: true, ..self.clone() }
    }

    /// The errors recorded in collecting mode (by any builder sharing this
    /// one's source), removing them: `Ok` when there were none, else
    /// [`Error::Weights`] naming the source and holding every error (its
    /// message counts them and names the first few).
    pub fn finish(&self) -> Result<()> {
        let errors = std::mem::take(&mut *lock(&self.shared.errors));
        if errors.is_empty() {
            return Ok(());
        }
        Err(Error::Weights { source_name: self.shared.source.describe(), errors })
    }

    /// What the source is (a checkpoint file or index), for messages.
    pub fn describe_source(&self) -> String {
        self.shared.source.describe()
    }

    /// A builder one level down: `vb.pp("encoder").pp(3)` names tensors
    /// `encoder.3.*`. An empty component leaves the prefix unchanged.
    pub fn pp(&self, name: impl ToString) -> Self {
        let name = name.to_string();
        VarBuilder { prefix: self.full_name(&name), ..self.clone() }
    }

    /// Same as [`pp`](VarBuilder::pp).
    pub fn push_prefix(&self, name: impl ToString) -> Self {
        self.pp(name)
    }

    /// The dotted prefix of this builder (empty at the root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The device tensors are loaded onto.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype float tensors are cast to, if any.
    pub fn dtype(&self) -> Option<DType> {
        self.dtype
    }

    /// The source this builder reads.
    pub fn source(&self) -> &Arc<dyn TensorSource> {
        &self.shared.source
    }

    /// `prefix.name` (or `name` at the root; `prefix` for an empty name).
    pub fn full_name(&self, name: &str) -> String {
        match (self.prefix.is_empty(), name.is_empty()) {
            (true, _) => name.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}.{}", self.prefix, name),
        }
    }

    /// Whether the source holds `prefix.name`.
    pub fn contains(&self, name: &str) -> bool {
        self.shared.source.contains(&self.full_name(name))
    }

    /// The dtype (as loaded, before any cast) and shape of `prefix.name`.
    pub fn info(&self, name: &str) -> Option<(DType, Vec<usize>)> {
        self.shared.source.info(&self.full_name(name))
    }

    /// Loads `prefix.name`, checking that its shape is `shape`.
    ///
    /// Errors: [`Error::MissingTensor`] or [`Error::ShapeMismatch`] naming the
    /// full tensor name (recorded instead in collecting mode, see
    /// [`collect_errors`](VarBuilder::collect_errors)), or [`Error::Load`]
    /// when reading or casting fails.
    pub fn get(&self, shape: impl Into<Shape>, name: &str) -> Result<Tensor> {
        let shape = shape.into().0;
        let full = self.full_name(name);
        match self.shared.source.info(&full) {
            None => self.recover(Error::MissingTensor { name: full }, &shape, None),
            Some((dtype, actual)) if actual != shape => {
                let stand_in = shape.clone();
                self.recover(Error::ShapeMismatch { name: full, expected: shape, actual }, &stand_in, Some(dtype))
            }
            Some((dtype, _)) if self.wants_float(dtype) => {
                let expected = self.dtype.unwrap_or(DType::F32);
                self.recover(Error::DTypeMismatch { name: full, expected, actual: dtype }, &shape, Some(expected))
            }
            Some(_) => self.load_full(full),
        }
    }

    /// [`get`](VarBuilder::get) for an optional tensor: `Ok(None)` when it is
    /// missing; a wrong shape is still an error (recorded in collecting
    /// mode, which then returns `Ok(None)`).
    pub fn get_opt(&self, shape: impl Into<Shape>, name: &str) -> Result<Option<Tensor>> {
        let full = self.full_name(name);
        let shape = shape.into().0;
        let e = match self.shared.source.info(&full) {
            None => return Ok(None),
            Some((_, actual)) if actual != shape => Error::ShapeMismatch { name: full, expected: shape, actual },
            Some((dtype, _)) if self.wants_float(dtype) => {
                Error::DTypeMismatch { name: full, expected: self.dtype.unwrap_or(DType::F32), actual: dtype }
            }
            Some(_) => return self.load_full(full).map(Some),
        };
        if self.collect {
            lock(&self.shared.errors).push(e);
            Ok(None)
        } else {
            Err(e)
        }
    }

    /// Loads `prefix.name` `[rows, cols]` as consecutive row blocks, each
    /// within the device's largest buffer ([`Device::max_buffer_bytes`]):
    /// one block where it fits (or the device has no such limit), else the
    /// tensor is read and cast on the host and moved block by block. Errors
    /// as [`get`](VarBuilder::get).
    pub fn get_row_blocks(&self, rows: usize, cols: usize, name: &str) -> Result<Vec<Tensor>> {
        let full = self.full_name(name);
        let stored = self.shared.source.info(&full).map(|(d, _)| d);
        let Some(dtype) = stored.map(|d| self.loaded_dtype(d)) else {
            return Ok(vec![self.get((rows, cols), name)?]);
        };
        let row_bytes = cols.saturating_mul(dtype.size_in_bytes()).max(1);
        let rows_per_block = match self.device.max_buffer_bytes() {
            Some(limit) if rows.saturating_mul(row_bytes) > limit => (limit / row_bytes).max(1),
            _ => return Ok(vec![self.get((rows, cols), name)?]),
        };
        let host = self.with_device(Device::cpu()).get((rows, cols), name)?;
        let mut blocks = Vec::with_capacity(rows.div_ceil(rows_per_block));
        for start in (0..rows).step_by(rows_per_block) {
            let n = rows_per_block.min(rows - start);
            let block = host.narrow(0, start, n).and_then(|b| b.contiguous()).and_then(|b| b.to_device(&self.device));
            blocks.push(block.map_err(|source| Error::Load { name: full.clone(), source })?);
        }
        Ok(blocks)
    }

    /// Loads `prefix.name` whatever its shape (for tensors whose shape the
    /// caller reads from the checkpoint). A missing tensor is an error even
    /// in collecting mode, since there is no shape to stand in with.
    pub fn get_unchecked(&self, name: &str) -> Result<Tensor> {
        let full = self.full_name(name);
        if !self.shared.source.contains(&full) {
            return Err(Error::MissingTensor { name: full });
        }
        self.load_full(full)
    }

    /// The names under this builder's prefix (relative to it) that no
    /// builder sharing this source has loaded yet: weights the model did not
    /// use, usually a sign of a naming mismatch.
    pub fn unused(&self) -> Vec<String> {
        let used = lock(&self.shared.used);
        let mut out: Vec<String> = self
            .shared
            .source
            .names()
            .into_iter()
            .filter(|n| !used.contains(n))
            .filter_map(|n| self.relative(&n).map(str::to_string))
            .collect();
        out.sort();
        out
    }

    /// `name` relative to this builder's prefix, if it lies under it.
    fn relative<'a>(&self, name: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return Some(name);
        }
        name.strip_prefix(self.prefix.as_str())?.strip_prefix('.')
    }

    /// Whether a tensor stored as `dtype` is refused because this builder
    /// casts to a float dtype and the tensor holds integers (a weight stored
    /// as integers is a broken checkpoint, not something to compute with).
    fn wants_float(&self, dtype: DType) -> bool {
        self.dtype.is_some_and(|d| d.is_float()) && !dtype.is_float()
    }

    /// The dtype a tensor stored as `stored` has once loaded: the builder's
    /// dtype for a float tensor when it has one, else as stored.
    fn loaded_dtype(&self, stored: DType) -> DType {
        match self.dtype {
            Some(target) if stored.is_float() => target,
            _ => stored,
        }
    }

    /// Records `e` in collecting mode and stands in with zeros, else fails.
    /// The stand-in is one zero broadcast to `shape`, so it costs no memory
    /// whatever size a broken config claims.
    fn recover(&self, e: Error, shape: &[usize], stored: Option<DType>) -> Result<Tensor> {
        if !self.collect {
            return Err(e);
        }
        let name = e.tensor_names().first().map(|s| s.to_string()).unwrap_or_default();
        lock(&self.shared.errors).push(e);
        let dtype = match stored {
            Some(d) => self.loaded_dtype(d),
            None => self.dtype.unwrap_or(DType::F32),
        };
        let zero = Tensor::zeros(vec![1; shape.len()], dtype, &self.device).map_err(|source| Error::Load { name: name.clone(), source })?;
        zero.broadcast_as(shape.to_vec()).map_err(|source| Error::Load { name, source })
    }

    fn load_full(&self, full: String) -> Result<Tensor> {
        let t = match self.shared.source.load(&full, &self.device) {
            Ok(t) => t,
            Err(source) => return Err(Error::Load { name: full, source }),
        };
        let target = self.loaded_dtype(t.dtype());
        let t = if target == t.dtype() {
            t
        } else {
            match t.to_dtype(target) {
                Ok(t) => t,
                Err(source) => return Err(Error::Load { name: full, source }),
            }
        };
        lock(&self.shared.used).insert(full);
        Ok(t)
    }
}

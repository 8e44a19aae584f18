//! Reading and writing safetensors files.
//!
//! # The format
//!
//! A `.safetensors` file is:
//!
//! 1. 8 bytes: `N`, the length of the header, as a little-endian `u64`;
//! 2. `N` bytes: the header, a UTF-8 JSON object. Each key is a tensor name
//!    whose value is `{"dtype": "F32", "shape": [2, 3], "data_offsets":
//!    [begin, end]}`; the optional key `__metadata__` maps to an object of
//!    string to string. Writers pad the header with spaces so that the data
//!    starts on an 8-byte boundary;
//! 3. the data buffer: every tensor's elements, row-major, little-endian,
//!    at `data_offsets` (relative to the start of the data buffer).
//!
//! # Validation
//!
//! [`SafeTensorsFile`] checks the whole header when the file is opened, so
//! that a malformed file is reported once, up front, with an
//! [`Error::Safetensors`] naming the file, the tensor and the offsets, and
//! never causes a panic or a read outside the file. The rules (those of the
//! reference implementation):
//!
//! - the file holds at least the 8-byte length prefix, and the header length
//!   is at most [`MAX_HEADER_LEN`] and fits in the file;
//! - the header is valid UTF-8 and a JSON object, with no duplicate keys;
//! - every tensor entry is an object with a known `dtype` string, a `shape`
//!   array of non-negative integers and a `data_offsets` array of exactly two
//!   non-negative integers `[begin, end]` with `begin <= end`;
//! - the element count times the dtype's width (checked for overflow, and a
//!   whole number of bytes for the sub-byte types) equals `end - begin`;
//! - no tensor runs past the end of the data buffer, and the tensors, sorted
//!   by offset, cover the data buffer exactly: from 0 to its end, with no
//!   overlap and no hole. The order of the entries in the JSON is free;
//! - `__metadata__`, if present, is an object whose values are strings.
//!
//! # Dtypes
//!
//! Every safetensors dtype is recognised (see [`FileDType`]). Those that are
//! Tessera dtypes load as they are, and `BOOL` loads as `U8` (same bytes).
//! The others are converted on load to the nearest Tessera dtype:
//!
//! | stored | loads as | how |
//! |---|---|---|
//! | `F64` | `F32` | rounded to nearest |
//! | `I8`, `I16`, `I32`, `U16` | `I64` | exact |
//! | `U64` | `I64` | exact; a value above `i64::MAX` is an error |
//! | `F8_E8M0` | `F32` | exact (`2^(e-127)`, `0xFF` is NaN) |
//! | `F4` (E2M1, two per byte, first in the low nibble) | `F32` | exact |
//! | `F6_E2M3`, `F6_E3M2` | — | listed, but loading them is an error: the format does not pin down their bit packing |
//!
//! [`SafeTensorsFile::bytes`] always returns the stored bytes, unconverted.
//!
//! # Memory maps and the read-into-memory mode
//!
//! [`SafeTensorsFile::open`] memory-maps the file ([`ReadMode::Map`]): tensors
//! are borrowed from the page cache without a copy and only the pages a
//! model touches are read. The contract of a map: the file must not change
//! while it is open. Truncating or rewriting a mapped file from another
//! process is outside the guarantees: the OS may then deliver `SIGBUS` on a
//! read past the new end, or a borrowed slice may change under the reader.
//! Where that can happen (network and FUSE filesystems, files still being
//! written), use [`ReadMode::Read`], which reads the whole file into memory
//! when it is opened (allocated fallibly: a file larger than memory is an
//! [`Error::OutOfMemory`]). `TESSERA_MMAP=0` selects it for every file opened
//! with [`SafeTensorsFile::open`] or [`Checkpoint::open`].
//!
//! Only regular files are opened: a FIFO, a device or a directory given as a
//! checkpoint file is an [`Error::Io`] saying what it is.
//!
//! # Checkpoints
//!
//! [`Checkpoint`] opens what a model repository holds: one file, a directory
//! with `model.safetensors`, or a sharded checkpoint described by
//! `model.safetensors.index.json` (whose `weight_map` maps each tensor name
//! to the shard file holding it).
//!
//! # Writing
//!
//! [`save`] and [`serialize`] write tensors in name order, contiguous and
//! little-endian, with the header padded with spaces to a multiple of 8.

use crate::{DType, Device, Error, Result, Tensor};
use memmap2::Mmap;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::Serialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

/// The largest header accepted, in bytes (the reference implementation's limit).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// Bytes of the little-endian `u64` header length that opens every file.
const LEN_PREFIX: usize = 8;

/// The reserved header key holding the string-to-string metadata.
const METADATA_KEY: &str = "__metadata__";

/// The file a directory checkpoint holds when it is not sharded.
pub const SINGLE_FILE_NAME: &str = "model.safetensors";

/// The index a directory checkpoint holds when it is sharded.
pub const INDEX_FILE_NAME: &str = "model.safetensors.index.json";

fn st_err(file: &str, msg: impl Into<String>) -> Error {
    Error::Safetensors { file: file.to_string(), msg: msg.into() }
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), source }
}

// ----------------------------------------------------------------- dtypes

/// An element type as a safetensors file stores it. Every dtype of the
/// format is here; [`FileDType::load_dtype`] says which Tessera dtype each
/// one loads as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileDType {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F16,
    BF16,
    F32,
    F64,
    F8E4M3,
    F8E5M2,
    F8E8M0,
    F4,
    F6E2M3,
    F6E3M2,
}

impl FileDType {
    /// Every dtype of the format.
    pub const ALL: [FileDType; 19] = [
        FileDType::Bool,
        FileDType::U8,
        FileDType::I8,
        FileDType::U16,
        FileDType::I16,
        FileDType::U32,
        FileDType::I32,
        FileDType::U64,
        FileDType::I64,
        FileDType::F16,
        FileDType::BF16,
        FileDType::F32,
        FileDType::F64,
        FileDType::F8E4M3,
        FileDType::F8E5M2,
        FileDType::F8E8M0,
        FileDType::F4,
        FileDType::F6E2M3,
        FileDType::F6E3M2,
    ];

    /// The name the header uses (`"F32"`, `"F8_E4M3"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FileDType::Bool => "BOOL",
            FileDType::U8 => "U8",
            FileDType::I8 => "I8",
            FileDType::U16 => "U16",
            FileDType::I16 => "I16",
            FileDType::U32 => "U32",
            FileDType::I32 => "I32",
            FileDType::U64 => "U64",
            FileDType::I64 => "I64",
            FileDType::F16 => "F16",
            FileDType::BF16 => "BF16",
            FileDType::F32 => "F32",
            FileDType::F64 => "F64",
            FileDType::F8E4M3 => "F8_E4M3",
            FileDType::F8E5M2 => "F8_E5M2",
            FileDType::F8E8M0 => "F8_E8M0",
            FileDType::F4 => "F4",
            FileDType::F6E2M3 => "F6_E2M3",
            FileDType::F6E3M2 => "F6_E3M2",
        }
    }

    /// The dtype a header names, if it is one of the format's.
    pub fn from_name(name: &str) -> Option<FileDType> {
        FileDType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The stored dtype of a Tessera dtype.
    pub fn from_dtype(dtype: DType) -> FileDType {
        match dtype {
            DType::F32 => FileDType::F32,
            DType::F16 => FileDType::F16,
            DType::BF16 => FileDType::BF16,
            DType::F8E4M3 => FileDType::F8E4M3,
            DType::F8E5M2 => FileDType::F8E5M2,
            DType::U8 => FileDType::U8,
            DType::U32 => FileDType::U32,
            DType::I64 => FileDType::I64,
        }
    }

    /// Bits per element (4 and 6 for the sub-byte float formats).
    pub fn bits(self) -> usize {
        match self {
            FileDType::F4 => 4,
            FileDType::F6E2M3 | FileDType::F6E3M2 => 6,
            FileDType::Bool | FileDType::U8 | FileDType::I8 => 8,
            FileDType::F8E4M3 | FileDType::F8E5M2 | FileDType::F8E8M0 => 8,
            FileDType::U16 | FileDType::I16 | FileDType::F16 | FileDType::BF16 => 16,
            FileDType::U32 | FileDType::I32 | FileDType::F32 => 32,
            FileDType::U64 | FileDType::I64 | FileDType::F64 => 64,
        }
    }

    /// The Tessera dtype a tensor of this dtype loads as (see the module
    /// documentation for the conversions). For the F6 formats this is the
    /// type they would decode to; loading them is an error.
    pub fn load_dtype(self) -> DType {
        match self {
            FileDType::Bool | FileDType::U8 => DType::U8,
            FileDType::U32 => DType::U32,
            FileDType::I8 | FileDType::U16 | FileDType::I16 | FileDType::I32 => DType::I64,
            FileDType::U64 | FileDType::I64 => DType::I64,
            FileDType::F16 => DType::F16,
            FileDType::BF16 => DType::BF16,
            FileDType::F32 | FileDType::F64 => DType::F32,
            FileDType::F8E4M3 => DType::F8E4M3,
            FileDType::F8E5M2 => DType::F8E5M2,
            FileDType::F8E8M0 | FileDType::F4 => DType::F32,
            FileDType::F6E2M3 | FileDType::F6E3M2 => DType::F32,
        }
    }

    /// Whether loading rewrites the bytes (the stored and loaded element
    /// encodings differ).
    pub fn is_converted(self) -> bool {
        !matches!(self, FileDType::Bool) && FileDType::from_dtype(self.load_dtype()) != self
    }

    /// Bytes taken by `shape`, or a message saying why it has no valid size.
    fn byte_size(self, shape: &[usize]) -> std::result::Result<usize, String> {
        let overflow = || format!("{} elements of shape {shape:?} overflow the address space", self.name());
        let numel = crate::shape::checked_numel(shape).ok_or_else(overflow)?;
        let bits = numel.checked_mul(self.bits()).ok_or_else(overflow)?;
        let (bytes, leftover_bits) = (bits / 8, bits % 8);
        if leftover_bits != 0 {
            return Err(format!("{numel} elements of {} ({} bits each) do not end on a byte boundary", self.name(), self.bits()));
        }
        Ok(bytes)
    }
}

impl fmt::Display for FileDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ------------------------------------------------------------ tensor info

/// What the header says about one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The dtype [`SafeTensorsFile::load`] produces.
    pub dtype: DType,
    /// The dtype as stored in the file.
    pub file_dtype: FileDType,
    /// The dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The header's `data_offsets`: the tensor's bytes, relative to the start
    /// of the data buffer.
    pub byte_range: Range<usize>,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        crate::shape::numel(&self.shape)
    }

    /// Number of stored bytes.
    pub fn size_in_bytes(&self) -> usize {
        self.byte_range.len()
    }
}

// ------------------------------------------------------------ header parse

/// The top-level header object, in file order, keeping duplicate keys (which
/// `serde_json::Map` would silently merge) so they can be reported.
struct HeaderEntries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for HeaderEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = HeaderEntries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<HeaderEntries, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, UniqueKeys>()? {
                    entries.push((key, value.0));
                }
                Ok(HeaderEntries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// A JSON value in which no object, at any depth, repeats a key (a tensor
/// entry with two `shape`s, a `weight_map` naming a tensor twice): a
/// repeated key is an error instead of the last value silently winning.
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct UniqueVisitor;
        impl<'de> Visitor<'de> for UniqueVisitor {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::String(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::String(v)))
            }
            fn visit_unit<E>(self) -> std::result::Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::Null))
            }
            fn visit_none<E>(self) -> std::result::Result<UniqueKeys, E> {
                Ok(UniqueKeys(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<UniqueKeys, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<UniqueKeys>()? {
                    items.push(item.0);
                }
                Ok(UniqueKeys(Value::Array(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<UniqueKeys, A::Error> {
                let mut object = Map::new();
                while let Some((key, value)) = map.next_entry::<String, UniqueKeys>()? {
                    if object.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!("duplicate key '{key}'")));
                    }
                    object.insert(key, value.0);
                }
                Ok(UniqueKeys(Value::Object(object)))
            }
        }
        deserializer.deserialize_any(UniqueVisitor)
    }
}

/// A validated header.
struct Header {
    /// Offset of the data buffer in the file.
    data_start: usize,
    tensors: BTreeMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
}

/// A JSON value, shortened for an error message.
fn describe(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// Reads and checks the header length prefix; returns the header length.
fn read_header_len(file: &str, bytes: &[u8]) -> Result<usize> {
    let prefix: [u8; LEN_PREFIX] = match bytes.get(..LEN_PREFIX).and_then(|p| p.try_into().ok()) {
        Some(p) => p,
        None => {
            return Err(st_err(
                file,
                format!("file is truncated: {} bytes, shorter than the {LEN_PREFIX}-byte header length", bytes.len()),
            ));
        }
    };
    let len = u64::from_le_bytes(prefix);
    if len > MAX_HEADER_LEN {
        return Err(st_err(file, format!("header length {len} exceeds the limit of {MAX_HEADER_LEN} bytes")));
    }
    let available = bytes.len() - LEN_PREFIX;
    match usize::try_from(len) {
        Ok(len) if len <= available => Ok(len),
        _ => Err(st_err(
            file,
            format!("header length {len} is larger than the {available} bytes that follow it (file is truncated: {} bytes)", bytes.len()),
        )),
    }
}

/// Parses the header JSON text into its top-level entries.
fn parse_header_json(file: &str, header: &[u8]) -> Result<Vec<(String, Value)>> {
    let text = std::str::from_utf8(header)
        .map_err(|e| st_err(file, format!("header is not valid UTF-8 (at byte {} of the header)", e.valid_up_to())))?;
    let entries: HeaderEntries = serde_json::from_str(text).map_err(|e| st_err(file, format!("header is not a valid JSON object: {e}")))?;
    Ok(entries.0)
}

fn parse_header(file: &str, bytes: &[u8]) -> Result<Header> {
    let header_len = read_header_len(file, bytes)?;
    let data_start = LEN_PREFIX + header_len;
    let entries = parse_header_json(file, &bytes[LEN_PREFIX..data_start])?;
    let data_len = bytes.len() - data_start;
    let mut tensors = BTreeMap::new();
    let mut metadata = None;
    for (key, value) in entries {
        if key == METADATA_KEY {
            if metadata.replace(parse_metadata(file, &value)?).is_some() {
                return Err(st_err(file, format!("the header has more than one '{METADATA_KEY}' entry")));
            }
            continue;
        }
        let info = parse_entry(file, &key, &value)?;
        check_in_buffer(file, &key, &info, data_len)?;
        if tensors.contains_key(&key) {
            return Err(st_err(file, format!("tensor '{key}' appears more than once in the header")));
        }
        tensors.insert(key, info);
    }
    check_coverage(file, &tensors, data_len)?;
    Ok(Header { data_start, tensors, metadata: metadata.unwrap_or_default() })
}

fn parse_metadata(file: &str, value: &Value) -> Result<BTreeMap<String, String>> {
    let object =
        value.as_object().ok_or_else(|| st_err(file, format!("'{METADATA_KEY}' must be an object of strings, got {}", describe(value))))?;
    let mut out = BTreeMap::new();
    for (key, v) in object {
        let s = v.as_str().ok_or_else(|| st_err(file, format!("'{METADATA_KEY}' entry '{key}' must be a string, got {}", describe(v))))?;
        out.insert(key.clone(), s.to_string());
    }
    Ok(out)
}

/// The field `key` of tensor `name`'s entry.
fn field<'a>(file: &str, name: &str, entry: &'a Map<String, Value>, key: &str) -> Result<&'a Value> {
    entry.get(key).ok_or_else(|| st_err(file, format!("tensor '{name}': entry has no '{key}' field")))
}

/// An array of non-negative integers that fit in `usize`.
fn usize_array(file: &str, name: &str, key: &str, value: &Value) -> Result<Vec<usize>> {
    let bad = || st_err(file, format!("tensor '{name}': '{key}' must be an array of non-negative integers, got {}", describe(value)));
    let items = value.as_array().ok_or_else(bad)?;
    items.iter().map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(bad)).collect()
}

/// One tensor entry, checked on its own (dtype, fields, size).
fn parse_entry(file: &str, name: &str, value: &Value) -> Result<TensorInfo> {
    let entry =
        value.as_object().ok_or_else(|| st_err(file, format!("tensor '{name}': entry must be an object, got {}", describe(value))))?;
    let dtype_value = field(file, name, entry, "dtype")?;
    let dtype_name = dtype_value
        .as_str()
        .ok_or_else(|| st_err(file, format!("tensor '{name}': 'dtype' must be a string, got {}", describe(dtype_value))))?;
    let file_dtype =
        FileDType::from_name(dtype_name).ok_or_else(|| st_err(file, format!("tensor '{name}': unknown dtype '{dtype_name}'")))?;
    let shape = usize_array(file, name, "shape", field(file, name, entry, "shape")?)?;
    let offsets = usize_array(file, name, "data_offsets", field(file, name, entry, "data_offsets")?)?;
    let [begin, end] = offsets[..] else {
        return Err(st_err(file, format!("tensor '{name}': 'data_offsets' must hold exactly two integers [begin, end], got {offsets:?}")));
    };
    if begin > end {
        return Err(st_err(file, format!("tensor '{name}': data_offsets [{begin}, {end}] begin after their end")));
    }
    let expected = file_dtype.byte_size(&shape).map_err(|msg| st_err(file, format!("tensor '{name}': {msg}")))?;
    if expected != end - begin {
        return Err(st_err(
            file,
            format!(
                "tensor '{name}': {file_dtype} of shape {shape:?} takes {expected} bytes but data_offsets [{begin}, {end}] span {}",
                end - begin
            ),
        ));
    }
    Ok(TensorInfo { dtype: file_dtype.load_dtype(), file_dtype, shape, byte_range: begin..end })
}

fn check_in_buffer(file: &str, name: &str, info: &TensorInfo, data_len: usize) -> Result<()> {
    let Range { start, end } = info.byte_range;
    if end > data_len {
        return Err(st_err(
            file,
            format!("tensor '{name}': data_offsets [{start}, {end}] run past the end of the {data_len}-byte data buffer"),
        ));
    }
    Ok(())
}

/// The tensors, sorted by offset, must tile `0..data_len` exactly.
fn check_coverage(file: &str, tensors: &BTreeMap<String, TensorInfo>, data_len: usize) -> Result<()> {
    let mut by_offset: Vec<(&str, &Range<usize>)> = tensors.iter().map(|(n, i)| (n.as_str(), &i.byte_range)).collect();
    by_offset.sort_by_key(|(_, r)| (r.start, r.end));
    let mut cursor = 0;
    let mut previous: Option<&str> = None;
    for (name, range) in by_offset {
        let (start, end) = (range.start, range.end);
        if start < cursor {
            let other = previous.unwrap_or_default();
            return Err(st_err(
                file,
                format!("tensor '{name}': data_offsets [{start}, {end}] overlap tensor '{other}', which ends at {cursor}"),
            ));
        }
        if start > cursor {
            return Err(st_err(
                file,
                format!("tensor '{name}': data_offsets [{start}, {end}] leave a hole: bytes {cursor}..{start} of the data buffer belong to no tensor"),
            ));
        }
        cursor = end;
        previous = Some(name);
    }
    if cursor != data_len {
        let after = previous.map(|p| format!(" (after tensor '{p}')")).unwrap_or_default();
        return Err(st_err(file, format!("bytes {cursor}..{data_len} at the end of the data buffer belong to no tensor{after}")));
    }
    Ok(())
}

// ------------------------------------------------------------- conversion

/// Copies `N` bytes of a chunk produced by `chunks_exact(N)`.
fn array<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(chunk);
    out
}

/// An empty buffer with room for `len` bytes, reserved fallibly: a converted
/// tensor can be several times its stored size (I8 widens to I64).
fn reserve(file: &str, name: &str, len: usize) -> Result<Vec<u8>> {
    crate::try_vec(len, &format!("converting tensor '{name}' of {file}"))
}

fn f32_bytes(mut out: Vec<u8>, values: impl Iterator<Item = f32>) -> Vec<u8> {
    out.extend(values.flat_map(f32::to_le_bytes));
    out
}

fn i64_bytes(mut out: Vec<u8>, values: impl Iterator<Item = i64>) -> Vec<u8> {
    out.extend(values.flat_map(i64::to_le_bytes));
    out
}

/// OCP MX E8M0: an exponent only, `2^(e - 127)`; `0xFF` is NaN.
fn e8m0_to_f32(bits: u8) -> f32 {
    match bits {
        0xff => f32::NAN,
        0 => f32::from_bits(1 << 22), // 2^-127, an f32 subnormal
        e => f32::from_bits(u32::from(e) << 23),
    }
}

/// OCP MX FP4 E2M1: sign, 2 exponent bits (bias 1), 1 mantissa bit.
fn e2m1_to_f32(nibble: u8) -> f32 {
    const MAGNITUDES: [f32; 8] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
    let magnitude = MAGNITUDES[usize::from(nibble & 0x7)];
    if nibble & 0x8 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

fn u64_to_i64_bytes(file: &str, name: &str, raw: &[u8]) -> Result<Vec<u8>> {
    let mut out = reserve(file, name, raw.len())?;
    for (i, chunk) in raw.chunks_exact(8).enumerate() {
        let v = u64::from_le_bytes(array(chunk));
        let v = i64::try_from(v)
            .map_err(|_| st_err(file, format!("tensor '{name}': U64 element {i} = {v} does not fit in I64, the dtype U64 loads as")))?;
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

/// The stored bytes of tensor `name`, re-encoded as its load dtype.
fn decode<'a>(file: &str, name: &str, dtype: FileDType, raw: &'a [u8]) -> Result<Cow<'a, [u8]>> {
    // Bytes out per byte stored, for the converted dtypes.
    let widen = |num: usize, den: usize| reserve(file, name, raw.len().saturating_mul(num) / den);
    let converted = match dtype {
        FileDType::Bool | FileDType::U8 | FileDType::U32 | FileDType::I64 => return Ok(Cow::Borrowed(raw)),
        FileDType::F16 | FileDType::BF16 | FileDType::F32 | FileDType::F8E4M3 | FileDType::F8E5M2 => return Ok(Cow::Borrowed(raw)),
        FileDType::F64 => f32_bytes(widen(1, 2)?, raw.chunks_exact(8).map(|c| f64::from_le_bytes(array(c)) as f32)),
        FileDType::I8 => i64_bytes(widen(8, 1)?, raw.iter().map(|&b| i64::from(b as i8))),
        FileDType::I16 => i64_bytes(widen(4, 1)?, raw.chunks_exact(2).map(|c| i64::from(i16::from_le_bytes(array(c))))),
        FileDType::U16 => i64_bytes(widen(4, 1)?, raw.chunks_exact(2).map(|c| i64::from(u16::from_le_bytes(array(c))))),
        FileDType::I32 => i64_bytes(widen(2, 1)?, raw.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes(array(c))))),
        FileDType::U64 => u64_to_i64_bytes(file, name, raw)?,
        FileDType::F8E8M0 => f32_bytes(widen(4, 1)?, raw.iter().map(|&b| e8m0_to_f32(b))),
        FileDType::F4 => f32_bytes(widen(8, 1)?, raw.iter().flat_map(|&b| [e2m1_to_f32(b & 0xf), e2m1_to_f32(b >> 4)])),
        FileDType::F6E2M3 | FileDType::F6E3M2 => {
            return Err(st_err(
                file,
                format!(
                    "tensor '{name}': dtype {dtype} is recognised but cannot be loaded (its bit packing is not specified by the format)"
                ),
            ));
        }
    };
    Ok(Cow::Owned(converted))
}

// ------------------------------------------------------------------- file

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

/// One safetensors file, memory-mapped (or held in memory), with its header
/// validated. Tensors are read lazily: [`SafeTensorsFile::bytes`] borrows
/// from the map without copying and [`SafeTensorsFile::load`] uploads one
/// tensor to a device.
pub struct SafeTensorsFile {
    /// The path (or the name given to [`SafeTensorsFile::from_bytes`]), for errors.
    name: String,
    buffer: Buffer,
    header: Header,
}

impl fmt::Debug for SafeTensorsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafeTensorsFile")
            .field("name", &self.name)
            .field("len", &self.buffer.as_slice().len())
            .field("tensors", &self.header.tensors.len())
            .finish()
    }
}

/// How [`SafeTensorsFile::open_with`] holds a file's bytes (see the module
/// documentation on memory maps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// Memory-map the file (the default): no copy, pages read on demand; the
    /// file must not change while open.
    #[default]
    Map,
    /// Read the whole file into memory when it is opened.
    Read,
}

impl ReadMode {
    /// [`ReadMode::Read`] when the environment variable `TESSERA_MMAP` is
    /// `0`, `false` or `off`; [`ReadMode::Map`] otherwise.
    pub fn from_env() -> ReadMode {
        match std::env::var("TESSERA_MMAP").map(|v| v.trim().to_ascii_lowercase()) {
            Ok(v) if matches!(v.as_str(), "0" | "false" | "off" | "no") => ReadMode::Read,
            _ => ReadMode::Map,
        }
    }
}

impl SafeTensorsFile {
    /// Opens the file at `path` in the [`ReadMode::from_env`] mode (a memory
    /// map unless `TESSERA_MMAP=0`) and validates its header (see the module
    /// documentation for the rules).
    pub fn open(path: impl AsRef<Path>) -> Result<SafeTensorsFile> {
        SafeTensorsFile::open_with(path, ReadMode::from_env())
    }

    /// Opens the regular file at `path`, mapped or read as `mode` says, and
    /// validates its header.
    pub fn open_with(path: impl AsRef<Path>, mode: ReadMode) -> Result<SafeTensorsFile> {
        let path = path.as_ref();
        let buffer = match mode {
            ReadMode::Read => Buffer::Owned(crate::file::read_regular(path)?),
            ReadMode::Map => {
                let file = crate::file::open_regular(path)?;
                // SAFETY: the file is opened read-only and the map is never
                // written through, so Rust's aliasing rules hold for this
                // process. Another process truncating or rewriting the file
                // while it is mapped is outside our guarantees (the module
                // documentation's contract; ReadMode::Read avoids it).
                let map = unsafe { Mmap::map(&file) }.map_err(|e| io_err(path, e))?;
                Buffer::Mapped(map)
            }
        };
        SafeTensorsFile::from_buffer(path.display().to_string(), buffer)
    }

    /// A file held in memory; `name` stands for the path in error messages.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<SafeTensorsFile> {
        SafeTensorsFile::from_buffer(name.to_string(), Buffer::Owned(bytes))
    }

    fn from_buffer(name: String, buffer: Buffer) -> Result<SafeTensorsFile> {
        let header = parse_header(&name, buffer.as_slice())?;
        Ok(SafeTensorsFile { name, buffer, header })
    }

    /// The path this file was opened from (or the name it was given).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.header.tensors.keys().map(String::as_str).collect()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.header.tensors.len()
    }

    /// Whether the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.header.tensors.is_empty()
    }

    /// Whether the file holds a tensor called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.header.tensors.contains_key(name)
    }

    /// What the header says about tensor `name`.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.header.tensors.get(name)
    }

    /// Every tensor's header entry, by name.
    pub fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        &self.header.tensors
    }

    /// The `__metadata__` entries (empty when the header has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.header.metadata
    }

    /// The whole file (for a mapped file, the mapped region).
    pub fn file_bytes(&self) -> &[u8] {
        self.buffer.as_slice()
    }

    /// Offset of the data buffer in the file (8 + the header length).
    pub fn data_start(&self) -> usize {
        self.header.data_start
    }

    fn require(&self, name: &str) -> Result<&TensorInfo> {
        self.info(name).ok_or_else(|| st_err(&self.name, format!("no tensor named '{name}'")))
    }

    /// The stored bytes of tensor `name`, borrowed from the file without a
    /// copy (in the file's dtype, [`TensorInfo::file_dtype`]).
    pub fn bytes(&self, name: &str) -> Result<&[u8]> {
        let info = self.require(name)?;
        let start = self.header.data_start + info.byte_range.start;
        let end = self.header.data_start + info.byte_range.end;
        // In bounds: the header was validated against the buffer's length.
        self.buffer
            .as_slice()
            .get(start..end)
            .ok_or_else(|| st_err(&self.name, format!("tensor '{name}': bytes {start}..{end} lie outside the file")))
    }

    /// Loads tensor `name` onto `device`, as [`TensorInfo::dtype`] (converting
    /// the dtypes Tessera lacks, as the module documentation says).
    pub fn load(&self, name: &str, device: &Device) -> Result<Tensor> {
        let info = self.require(name)?;
        let bytes = decode(&self.name, name, info.file_dtype, self.bytes(name)?)?;
        Tensor::from_bytes(&bytes, info.dtype, info.shape.clone(), device)
    }

    /// Loads every tensor onto `device`.
    pub fn load_all(&self, device: &Device) -> Result<BTreeMap<String, Tensor>> {
        self.header.tensors.keys().map(|name| Ok((name.clone(), self.load(name, device)?))).collect()
    }
}

// ------------------------------------------------------------- checkpoint

/// A checkpoint: the safetensors files of one model, sharded or not, seen as
/// one set of named tensors. Each file is mapped once; tensors load lazily.
#[derive(Debug)]
pub struct Checkpoint {
    /// What was opened (file, directory or index), for errors.
    source: String,
    files: Vec<SafeTensorsFile>,
    /// Tensor name -> index in `files`.
    index: BTreeMap<String, usize>,
}

impl Checkpoint {
    /// Opens `path`: a `.safetensors` file; a `.json` index (sharded); or a
    /// directory holding `model.safetensors.index.json` (preferred) or
    /// `model.safetensors`.
    ///
    /// For a sharded checkpoint the index's `weight_map` (tensor name -> shard
    /// file, relative to the index's directory) is authoritative: each shard
    /// is opened once, every listed tensor must be in its shard, and tensors
    /// a shard holds but the index does not list are not exposed.
    ///
    /// Files are opened in the [`ReadMode::from_env`] mode.
    pub fn open(path: impl AsRef<Path>) -> Result<Checkpoint> {
        Checkpoint::open_with(path, ReadMode::from_env())
    }

    /// [`open`](Self::open), holding every file as `mode` says.
    pub fn open_with(path: impl AsRef<Path>, mode: ReadMode) -> Result<Checkpoint> {
        let path = path.as_ref();
        if path.is_dir() {
            let index = path.join(INDEX_FILE_NAME);
            if index.exists() {
                return Checkpoint::open_index_with(&index, mode);
            }
            let single = path.join(SINGLE_FILE_NAME);
            if single.exists() {
                return Checkpoint::open_file_with(&single, mode);
            }
            return Err(st_err(&path.display().to_string(), format!("directory holds neither {INDEX_FILE_NAME} nor {SINGLE_FILE_NAME}")));
        }
        if path.extension().is_some_and(|e| e == "json") {
            Checkpoint::open_index_with(path, mode)
        } else {
            Checkpoint::open_file_with(path, mode)
        }
    }

    /// A checkpoint of one file.
    pub fn open_file(path: impl AsRef<Path>) -> Result<Checkpoint> {
        Checkpoint::open_file_with(path, ReadMode::from_env())
    }

    fn open_file_with(path: impl AsRef<Path>, mode: ReadMode) -> Result<Checkpoint> {
        Ok(Checkpoint::from_file(SafeTensorsFile::open_with(path, mode)?))
    }

    /// A checkpoint of one already open file.
    pub fn from_file(file: SafeTensorsFile) -> Checkpoint {
        let index = file.names().into_iter().map(|n| (n.to_string(), 0)).collect();
        Checkpoint { source: file.name().to_string(), files: vec![file], index }
    }

    /// A sharded checkpoint described by the index at `path`.
    pub fn open_index(path: impl AsRef<Path>) -> Result<Checkpoint> {
        Checkpoint::open_index_with(path, ReadMode::from_env())
    }

    fn open_index_with(path: impl AsRef<Path>, mode: ReadMode) -> Result<Checkpoint> {
        let path = path.as_ref();
        let source = path.display().to_string();
        let weight_map = read_weight_map(path)?;
        let dir = path.parent().unwrap_or(Path::new(""));
        let mut shards: BTreeMap<String, usize> = BTreeMap::new();
        let mut files = Vec::new();
        let mut index = BTreeMap::new();
        for (tensor, shard) in weight_map {
            let slot = match shards.get(&shard) {
                Some(&slot) => slot,
                None => {
                    let shard_path = shard_path(&source, dir, &tensor, &shard)?;
                    files.push(SafeTensorsFile::open_with(shard_path, mode)?);
                    shards.insert(shard.clone(), files.len() - 1);
                    files.len() - 1
                }
            };
            if !files[slot].contains(&tensor) {
                return Err(st_err(&source, format!("tensor '{tensor}' is mapped to shard '{shard}', which does not contain it")));
            }
            index.insert(tensor, slot);
        }
        Ok(Checkpoint { source, files, index })
    }

    /// What was opened (the file, or the sharded index), for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The files of the checkpoint (one per shard).
    pub fn files(&self) -> &[SafeTensorsFile] {
        &self.files
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.index.keys().map(String::as_str).collect()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the checkpoint holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether the checkpoint holds a tensor called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The file holding tensor `name`.
    pub fn file_of(&self, name: &str) -> Option<&SafeTensorsFile> {
        self.index.get(name).map(|&slot| &self.files[slot])
    }

    /// What the header says about tensor `name`.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.file_of(name)?.info(name)
    }

    fn require(&self, name: &str) -> Result<&SafeTensorsFile> {
        self.file_of(name).ok_or_else(|| st_err(&self.source, format!("no tensor named '{name}'")))
    }

    /// The stored bytes of tensor `name`, borrowed without a copy.
    pub fn bytes(&self, name: &str) -> Result<&[u8]> {
        self.require(name)?.bytes(name)
    }

    /// Loads tensor `name` onto `device` (see [`SafeTensorsFile::load`]).
    pub fn load(&self, name: &str, device: &Device) -> Result<Tensor> {
        self.require(name)?.load(name, device)
    }

    /// Loads tensor `name` onto `device` and casts it to `dtype`.
    pub fn load_with_dtype(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        self.load(name, device)?.to_dtype(dtype)
    }

    /// Loads every tensor onto `device`.
    pub fn load_all(&self, device: &Device) -> Result<BTreeMap<String, Tensor>> {
        self.index.keys().map(|name| Ok((name.clone(), self.load(name, device)?))).collect()
    }
}

/// The `weight_map` of a sharded checkpoint's index: tensor -> shard file.
fn read_weight_map(path: &Path) -> Result<BTreeMap<String, String>> {
    let source = path.display().to_string();
    let text = crate::file::read_regular_to_string(path)?;
    let json = serde_json::from_str::<UniqueKeys>(&text).map_err(|e| st_err(&source, format!("index is not valid JSON: {e}")))?.0;
    let map = json.get("weight_map").and_then(Value::as_object).ok_or_else(|| st_err(&source, "index has no 'weight_map' object"))?;
    map.iter()
        .map(|(tensor, shard)| match shard.as_str() {
            Some(shard) => Ok((tensor.clone(), shard.to_string())),
            None => Err(st_err(&source, format!("weight_map entry for tensor '{tensor}' must be a file name, got {}", describe(shard)))),
        })
        .collect()
}

/// The path of `shard`, which must be a plain relative path inside `dir`.
fn shard_path(source: &str, dir: &Path, tensor: &str, shard: &str) -> Result<PathBuf> {
    let relative = Path::new(shard);
    let plain = relative.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if shard.is_empty() || !plain {
        return Err(st_err(source, format!("tensor '{tensor}': shard '{shard}' must be a relative path inside the index's directory")));
    }
    Ok(dir.join(relative))
}

// ---------------------------------------------------------------- writing

/// One header entry as written.
#[derive(Serialize)]
struct EntryOut<'a> {
    dtype: &'static str,
    shape: &'a [usize],
    data_offsets: [usize; 2],
}

/// What [`serialize`] and [`save`] will write: the padded header and the
/// tensors in name order with their byte lengths.
struct Plan<'a> {
    header: Vec<u8>,
    tensors: Vec<(&'a str, &'a Tensor, usize)>,
}

const WRITER: &str = "<serialize>";

impl<'a> Plan<'a> {
    fn new(tensors: &[(&'a str, &'a Tensor)], metadata: Option<&BTreeMap<String, String>>) -> Result<Plan<'a>> {
        let mut sorted: Vec<(&'a str, &'a Tensor)> = tensors.to_vec();
        sorted.sort_by_key(|(name, _)| *name);
        if let Some(pair) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(st_err(WRITER, format!("tensor '{}' is given more than once", pair[0].0)));
        }
        let json_err = |e: serde_json::Error| st_err(WRITER, format!("cannot encode the header: {e}"));
        let mut json = String::from("{");
        if let Some(metadata) = metadata {
            json += &format!("\"{METADATA_KEY}\":{}", serde_json::to_string(metadata).map_err(json_err)?);
        }
        let mut offset = 0usize;
        let mut planned = Vec::with_capacity(sorted.len());
        for (name, tensor) in sorted {
            if name == METADATA_KEY {
                return Err(st_err(WRITER, format!("'{METADATA_KEY}' is reserved and cannot name a tensor")));
            }
            let len = tensor
                .numel()
                .checked_mul(tensor.dtype().size_in_bytes())
                .ok_or_else(|| st_err(WRITER, format!("tensor '{name}' is too large")))?;
            let end = offset.checked_add(len).ok_or_else(|| st_err(WRITER, format!("tensor '{name}' is too large")))?;
            let entry = EntryOut { dtype: tensor.dtype().safetensors_name(), shape: tensor.dims(), data_offsets: [offset, end] };
            if json.len() > 1 {
                json.push(',');
            }
            json += &serde_json::to_string(name).map_err(json_err)?;
            json.push(':');
            json += &serde_json::to_string(&entry).map_err(json_err)?;
            planned.push((name, tensor, len));
            offset = end;
        }
        json.push('}');
        let mut header = json.into_bytes();
        header.resize(header.len().next_multiple_of(LEN_PREFIX), b' ');
        Ok(Plan { header, tensors: planned })
    }

    fn total_len(&self) -> usize {
        LEN_PREFIX + self.header.len() + self.tensors.iter().map(|t| t.2).sum::<usize>()
    }

    /// Writes the file; `on_io` turns a write failure into an error.
    fn write<W: Write>(&self, out: &mut W, on_io: impl Fn(std::io::Error) -> Error) -> Result<()> {
        out.write_all(&(self.header.len() as u64).to_le_bytes()).map_err(&on_io)?;
        out.write_all(&self.header).map_err(&on_io)?;
        for &(name, tensor, len) in &self.tensors {
            let bytes = tensor.to_bytes()?;
            if bytes.len() != len {
                return Err(st_err(WRITER, format!("tensor '{name}' produced {} bytes, expected {len}", bytes.len())));
            }
            out.write_all(&bytes).map_err(&on_io)?;
        }
        Ok(())
    }
}

/// The safetensors encoding of `tensors` (written in name order, whatever
/// their layout, as contiguous little-endian data) with optional metadata.
/// Names must be unique and not `__metadata__`.
pub fn serialize(tensors: &[(&str, &Tensor)], metadata: Option<&BTreeMap<String, String>>) -> Result<Vec<u8>> {
    let plan = Plan::new(tensors, metadata)?;
    let mut out = Vec::with_capacity(plan.total_len());
    plan.write(&mut out, |e| st_err(WRITER, format!("cannot write to memory: {e}")))?;
    Ok(out)
}

/// Writes [`serialize`]'s encoding to `path`, one tensor at a time. The file
/// is written under a temporary name and renamed into place, so `path` never
/// holds a partial file.
pub fn save(path: impl AsRef<Path>, tensors: &[(&str, &Tensor)], metadata: Option<&BTreeMap<String, String>>) -> Result<()> {
    let path = path.as_ref();
    let plan = Plan::new(tensors, metadata)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = write_file(&tmp, &plan).and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io_err(path, e)));
    if result.is_err() {
        // Best effort: the temporary file may not exist.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_file(path: &Path, plan: &Plan<'_>) -> Result<()> {
    let on_io = |e| io_err(path, e);
    let mut out = BufWriter::new(File::create(path).map_err(on_io)?);
    plan.write(&mut out, on_io)?;
    let file = out.into_inner().map_err(|e| io_err(path, e.into_error()))?;
    file.sync_all().map_err(on_io)
}

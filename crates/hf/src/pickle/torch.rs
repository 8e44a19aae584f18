//! What a `torch.save` pickle may name, and what calling it means: the
//! allow-list of globals, torch's dtypes and storage classes, the
//! persistent ids of storages and the tensor-rebuilding functions.
//!
//! Nothing here runs anything from the file: an allowed "callable" is a
//! Rust function that checks its arguments and builds a plain value (a
//! dict, a tensor view, bytes).

use super::vm::{Id, Object, Objects, StorageSizes};
use std::collections::HashMap;
use std::fmt;
use tessera_tensor::safetensors::FileDType;

/// The most dimensions a tensor may have (PyTorch's own limit is 64).
pub(crate) const MAX_RANK: usize = 64;

// ------------------------------------------------------------ dtypes

/// A torch dtype: its name in the `torch` module, its element size, and the
/// safetensors dtype of the same bytes when the format has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TorchDType {
    name: &'static str,
    size: usize,
    file: Option<FileDType>,
}

const fn dtype(name: &'static str, size: usize, file: Option<FileDType>) -> TorchDType {
    TorchDType { name, size, file }
}

/// Every dtype torch names (as `torch.<name>`), with its element size.
/// Those without a safetensors dtype are recognised, so that a checkpoint
/// holding one opens, and refused when such a tensor is read.
const DTYPES: [TorchDType; 32] = [
    dtype("float32", 4, Some(FileDType::F32)),
    dtype("float64", 8, Some(FileDType::F64)),
    dtype("float16", 2, Some(FileDType::F16)),
    dtype("bfloat16", 2, Some(FileDType::BF16)),
    dtype("int64", 8, Some(FileDType::I64)),
    dtype("int32", 4, Some(FileDType::I32)),
    dtype("int16", 2, Some(FileDType::I16)),
    dtype("int8", 1, Some(FileDType::I8)),
    dtype("uint8", 1, Some(FileDType::U8)),
    dtype("uint16", 2, Some(FileDType::U16)),
    dtype("uint32", 4, Some(FileDType::U32)),
    dtype("uint64", 8, Some(FileDType::U64)),
    dtype("bool", 1, Some(FileDType::Bool)),
    dtype("float8_e4m3fn", 1, Some(FileDType::F8E4M3)),
    dtype("float8_e5m2", 1, Some(FileDType::F8E5M2)),
    dtype("float8_e8m0fnu", 1, Some(FileDType::F8E8M0)),
    dtype("float8_e4m3fnuz", 1, None),
    dtype("float8_e5m2fnuz", 1, None),
    // Two 4-bit values a byte, counted as one element per byte by torch.
    dtype("float4_e2m1fn_x2", 1, None),
    dtype("complex32", 4, None),
    dtype("complex64", 8, None),
    dtype("complex128", 16, None),
    dtype("qint8", 1, None),
    dtype("quint8", 1, None),
    dtype("qint32", 4, None),
    dtype("quint4x2", 1, None),
    dtype("quint2x4", 1, None),
    dtype("bits8", 1, None),
    dtype("bits16", 2, None),
    dtype("bits1x8", 1, None),
    dtype("bits2x4", 1, None),
    dtype("bits4x2", 1, None),
];

/// The legacy typed storage classes (`torch.FloatStorage`...) and their
/// dtypes; torch.save still names them in storage persistent ids.
const STORAGE_CLASSES: [(&str, &str); 17] = [
    ("FloatStorage", "float32"),
    ("DoubleStorage", "float64"),
    ("HalfStorage", "float16"),
    ("BFloat16Storage", "bfloat16"),
    ("LongStorage", "int64"),
    ("IntStorage", "int32"),
    ("ShortStorage", "int16"),
    ("CharStorage", "int8"),
    ("ByteStorage", "uint8"),
    ("BoolStorage", "bool"),
    ("ComplexFloatStorage", "complex64"),
    ("ComplexDoubleStorage", "complex128"),
    ("QInt8Storage", "qint8"),
    ("QUInt8Storage", "quint8"),
    ("QInt32Storage", "qint32"),
    ("QUInt4x2Storage", "quint4x2"),
    ("QUInt2x4Storage", "quint2x4"),
];

impl TorchDType {
    /// The dtype `torch.<name>` (canonical names only, as pickles write them).
    pub fn from_name(name: &str) -> Option<TorchDType> {
        DTYPES.into_iter().find(|d| d.name == name)
    }

    /// The name without the `torch.` prefix (`"float32"`).
    pub fn name(self) -> &'static str {
        self.name
    }

    /// Bytes per element.
    pub fn element_size(self) -> usize {
        self.size
    }

    /// The safetensors dtype of the same bytes, if the format has one.
    pub fn file_dtype(self) -> Option<FileDType> {
        self.file
    }
}

impl fmt::Display for TorchDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "torch.{}", self.name)
    }
}

fn storage_class(name: &str) -> Option<TorchDType> {
    let (_, dtype) = STORAGE_CLASSES.into_iter().find(|(class, _)| *class == name)?;
    TorchDType::from_name(dtype)
}

// ----------------------------------------------------------- globals

/// A storage class of a persistent id: typed (a legacy `<T>Storage`, whose
/// elements have its dtype) or untyped (bytes; the tensor gives the dtype).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StorageKind {
    Typed(TorchDType),
    Untyped,
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageKind::Typed(d) => write!(f, "a storage of {d}"),
            StorageKind::Untyped => write!(f, "an untyped storage"),
        }
    }
}

/// A global of the allow-list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Global {
    /// `collections.OrderedDict`: a dict.
    OrderedDict,
    /// `_codecs.encode`: how protocol 2 pickles `bytes` (a latin-1 string).
    CodecsEncode,
    /// `torch.Size`: a tuple.
    TorchSize,
    /// `torch._utils._rebuild_tensor` (torch before 1.? without hooks).
    RebuildTensor,
    /// `torch._utils._rebuild_tensor_v2`: a tensor of a typed storage.
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor_v3`: a tensor of an untyped storage
    /// with its dtype given (torch >= 2.1 for the dtypes without a legacy
    /// storage class: float8, uint16/32/64...).
    RebuildTensorV3,
    /// `torch._utils._rebuild_parameter`: an `nn.Parameter`, its tensor.
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state`: the same with state.
    RebuildParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2(func, type, args, state)`: how
    /// a tensor with Python attributes is pickled; `func(*args)`, the
    /// attributes dropped.
    RebuildFromTypeV2,
    /// `torch.Tensor` or `torch.nn.parameter.Parameter`, only ever the
    /// type argument of `_rebuild_from_type_v2`.
    TensorClass,
    /// A storage class, only ever named in a persistent id.
    Storage(StorageKind),
    /// A dtype object, an argument of `_rebuild_tensor_v3`.
    DType(TorchDType),
}

impl Global {
    /// What the global is, for messages.
    pub fn kind(self) -> &'static str {
        match self {
            Global::Storage(_) => "storage class",
            Global::DType(_) => "dtype",
            Global::OrderedDict | Global::TorchSize | Global::TensorClass => "class",
            _ => "function",
        }
    }
}

/// The global `module.name`, if the allow-list holds it; otherwise the
/// error that refuses it, naming it.
pub(crate) fn resolve_global(module: &str, name: &str) -> Result<Global, String> {
    let global = match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("_codecs", "encode") => Some(Global::CodecsEncode),
        ("torch", "Size") => Some(Global::TorchSize),
        ("torch._utils", "_rebuild_tensor") => Some(Global::RebuildTensor),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_tensor_v3") => Some(Global::RebuildTensorV3),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("torch._utils", "_rebuild_parameter_with_state") => Some(Global::RebuildParameterWithState),
        ("torch._tensor", "_rebuild_from_type_v2") => Some(Global::RebuildFromTypeV2),
        ("torch" | "torch._tensor", "Tensor") | ("torch.nn.parameter", "Parameter") => Some(Global::TensorClass),
        ("torch" | "torch.storage", "UntypedStorage") => Some(Global::Storage(StorageKind::Untyped)),
        ("torch", name) => {
            storage_class(name).map(|d| Global::Storage(StorageKind::Typed(d))).or_else(|| TorchDType::from_name(name).map(Global::DType))
        }
        _ => None,
    };
    global.ok_or_else(|| {
        let (module, name) = (super::shown(module), super::shown(name));
        // Protocol 2 pickles spell Python 3's modules as Python 2 named
        // them; the message names the module Python 3 would import.
        let (shown, spelled) = match module.as_str() {
            "__builtin__" => (format!("builtins.{name}"), format!(" (spelled '__builtin__.{name}')")),
            "copy_reg" => (format!("copyreg.{name}"), format!(" (spelled 'copy_reg.{name}')")),
            _ => (format!("{module}.{name}"), String::new()),
        };
        format!(
            "refused global '{shown}'{spelled}: only the globals torch.save writes for tensors are allowed (nothing in the file is run)"
        )
    })
}

// ---------------------------------------------------------- storages

/// A storage a persistent id named: the archive entry `data/<key>`.
#[derive(Clone, Debug)]
pub(crate) struct StorageRef {
    pub key: String,
    pub kind: StorageKind,
    /// The entry's size in bytes.
    pub bytes: usize,
}

/// The storages the persistent ids declared so far, so that every id of a
/// key agrees on its type.
pub(crate) struct Storages<'a> {
    sizes: &'a StorageSizes<'a>,
    kinds: HashMap<String, StorageKind>,
}

impl<'a> Storages<'a> {
    pub fn new(sizes: &'a StorageSizes<'a>) -> Self {
        Storages { sizes, kinds: HashMap::new() }
    }

    /// The storage of persistent id `pid`: `('storage', storage class, key,
    /// location, numel)`, whose entry must hold exactly `numel` elements.
    pub fn load(&mut self, objects: &Objects, pid: Id) -> Result<StorageRef, String> {
        let items = match objects.get(pid) {
            Object::Tuple(items) if items.len() == 5 => items,
            other => return Err(format!("a persistent id must be ('storage', type, key, location, numel), not a {}", other.kind())),
        };
        let field = |i: usize| objects.get(items[i]);
        match field(0) {
            Object::Str(tag) if tag == "storage" => {}
            Object::Str(tag) => return Err(format!("persistent id of kind '{}' (only 'storage' ids are read)", super::shown(tag))),
            other => return Err(format!("a persistent id starting with a {}, not 'storage'", other.kind())),
        }
        let kind = match field(1) {
            Object::Global(Global::Storage(kind)) => *kind,
            other => return Err(format!("a persistent id whose storage type is a {}", other.kind())),
        };
        let Object::Str(key) = field(2) else {
            return Err(format!("a persistent id whose key is a {}", field(2).kind()));
        };
        let numel = match field(4) {
            Object::Int(n) if *n >= 0 => *n as u64,
            other => return Err(format!("storage '{}': a size that is a {}, not a count", super::shown(key), other.kind())),
        };
        self.check_kind(key, kind)?;
        let bytes = self.check_size(key, kind, numel)?;
        Ok(StorageRef { key: key.clone(), kind, bytes })
    }

    fn check_kind(&mut self, key: &str, kind: StorageKind) -> Result<(), String> {
        match self.kinds.get(key) {
            Some(&known) if known != kind => Err(format!("storage '{}' is declared as both {known} and {kind}", super::shown(key))),
            Some(_) => Ok(()),
            None => {
                self.kinds.insert(key.to_string(), kind);
                Ok(())
            }
        }
    }

    /// The entry's size, which must be `numel` elements of the storage.
    fn check_size(&self, key: &str, kind: StorageKind, numel: u64) -> Result<usize, String> {
        let shown = super::shown(key);
        if key.is_empty() || key.contains('/') || key == "." || key == ".." {
            return Err(format!("storage key '{shown}' is not a file name"));
        }
        let Some(bytes) = (self.sizes)(key) else {
            return Err(format!("storage '{shown}' has no entry data/{shown} in the archive"));
        };
        let element = match kind {
            StorageKind::Typed(d) => d.element_size(),
            StorageKind::Untyped => 1,
        };
        if numel.checked_mul(element as u64) != Some(bytes as u64) {
            return Err(format!("storage '{shown}' is declared with {numel} elements ({kind}) but its entry holds {bytes} bytes"));
        }
        Ok(bytes)
    }
}

// ----------------------------------------------------------- tensors

/// A tensor of the checkpoint: a strided view (in elements of its dtype)
/// of a storage, checked to lie inside it.
#[derive(Clone, Debug)]
pub(crate) struct TensorView {
    pub storage: String,
    pub dtype: TorchDType,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
}

/// Applies the allowed callable `global` to `args`; the object it returns.
pub(crate) fn call(objects: &mut Objects, global: Global, args: &[Id]) -> Result<Id, String> {
    match global {
        Global::OrderedDict => ordered_dict(objects, args),
        Global::CodecsEncode => codecs_encode(objects, args),
        Global::TorchSize => torch_size(objects, args),
        Global::RebuildTensor | Global::RebuildTensorV2 | Global::RebuildTensorV3 => {
            let view = rebuild_tensor(objects, global, args)?;
            objects.add(Object::Tensor(view))
        }
        Global::RebuildParameter | Global::RebuildParameterWithState => rebuild_parameter(objects, global, args),
        Global::RebuildFromTypeV2 => rebuild_from_type(objects, args),
        Global::TensorClass => Err("constructing a tensor class from pickled data is not supported".to_string()),
        Global::Storage(kind) => Err(format!("constructing {kind} from pickled data is not supported")),
        Global::DType(d) => Err(format!("{d} is not callable")),
    }
}

/// NEWOBJ: `cls.__new__(cls, *args)` for the allowed classes.
pub(crate) fn instantiate(objects: &mut Objects, global: Global, args: &[Id]) -> Result<Id, String> {
    match global {
        // OrderedDict.__new__ ignores its arguments; the items follow.
        Global::OrderedDict => objects.add(Object::Dict(Vec::new())),
        Global::TorchSize => torch_size(objects, args),
        other => Err(format!("cannot instantiate a {} with NEWOBJ", other.kind())),
    }
}

fn arity(what: &str, args: &[Id], allowed: &[usize]) -> Result<(), String> {
    if allowed.contains(&args.len()) {
        Ok(())
    } else {
        let expected: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        Err(format!("{what} takes {} arguments, not {}", expected.join(" or "), args.len()))
    }
}

/// `OrderedDict()`, or `OrderedDict(items)` of a dict or (key, value) pairs.
fn ordered_dict(objects: &mut Objects, args: &[Id]) -> Result<Id, String> {
    arity("OrderedDict", args, &[0, 1])?;
    let pairs = match args.first().map(|&a| objects.get(a)) {
        None => Vec::new(),
        Some(Object::Dict(items)) => items.clone(),
        Some(Object::List(items) | Object::Tuple(items)) => items.iter().map(|&item| pair(objects, item)).collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("OrderedDict of a {}", other.kind())),
    };
    objects.add(Object::Dict(pairs))
}

/// A (key, value) item of `OrderedDict(items)`.
fn pair(objects: &Objects, item: Id) -> Result<(Id, Id), String> {
    match objects.get(item) {
        Object::Tuple(kv) | Object::List(kv) if kv.len() == 2 => Ok((kv[0], kv[1])),
        other => Err(format!("an OrderedDict item that is a {}, not a pair", other.kind())),
    }
}

/// `_codecs.encode(text, 'latin1')`: protocol 2's spelling of `bytes`.
fn codecs_encode(objects: &mut Objects, args: &[Id]) -> Result<Id, String> {
    arity("_codecs.encode", args, &[1, 2])?;
    let Object::Str(text) = objects.get(args[0]) else {
        return Err("_codecs.encode of a non-string".to_string());
    };
    let encoding = match args.get(1).map(|&e| objects.get(e)) {
        None => "utf-8",
        Some(Object::Str(e)) => e.as_str(),
        Some(other) => return Err(format!("_codecs.encode with an encoding that is a {}", other.kind())),
    };
    let bytes = match encoding.to_ascii_lowercase().as_str() {
        "latin1" | "latin-1" | "iso-8859-1" => {
            text.chars().map(|c| u8::try_from(c).map_err(|_| "a latin-1 string holding a character above U+00FF".to_string())).collect()
        }
        "utf-8" | "utf8" => Ok(text.as_bytes().to_vec()),
        other => Err(format!("_codecs.encode to encoding '{}'", super::shown(other))),
    }?;
    objects.add(Object::Bytes(bytes))
}

/// `torch.Size(dims)`: the tuple of `dims`.
fn torch_size(objects: &mut Objects, args: &[Id]) -> Result<Id, String> {
    arity("torch.Size", args, &[0, 1])?;
    let items = match args.first().map(|&a| objects.get(a)) {
        None => Vec::new(),
        Some(Object::Tuple(items) | Object::List(items)) => items.clone(),
        Some(other) => return Err(format!("torch.Size of a {}", other.kind())),
    };
    objects.add(Object::Tuple(items))
}

/// `_rebuild_parameter(data, requires_grad, hooks[, state])`: the tensor.
fn rebuild_parameter(objects: &Objects, global: Global, args: &[Id]) -> Result<Id, String> {
    let (what, count) = match global {
        Global::RebuildParameter => ("_rebuild_parameter", 3),
        _ => ("_rebuild_parameter_with_state", 4),
    };
    arity(what, args, &[count])?;
    match objects.get(args[0]) {
        Object::Tensor(_) => Ok(args[0]),
        other => Err(format!("{what} of a {}, not a tensor", other.kind())),
    }
}

/// `_rebuild_from_type_v2(func, type, args, state)`: `func(*args)` for a
/// tensor-rebuilding `func` and a tensor `type`; the state (the tensor's
/// Python attributes) carries no weights and is dropped.
fn rebuild_from_type(objects: &mut Objects, args: &[Id]) -> Result<Id, String> {
    arity("_rebuild_from_type_v2", args, &[4])?;
    let func = match objects.get(args[0]) {
        Object::Global(
            g @ (Global::RebuildTensor
            | Global::RebuildTensorV2
            | Global::RebuildTensorV3
            | Global::RebuildParameter
            | Global::RebuildParameterWithState),
        ) => *g,
        other => return Err(format!("_rebuild_from_type_v2 of a {}, not a tensor-rebuilding function", other.kind())),
    };
    if !matches!(objects.get(args[1]), Object::Global(Global::TensorClass)) {
        return Err(format!("_rebuild_from_type_v2 to a {}, not a tensor class", objects.get(args[1]).kind()));
    }
    let inner = match objects.get(args[2]) {
        Object::Tuple(items) => items.clone(),
        other => return Err(format!("_rebuild_from_type_v2's arguments are a {}, not a tuple", other.kind())),
    };
    call(objects, func, &inner)
}

/// `_rebuild_tensor(storage, offset, size, stride)`, `_v2` with
/// `requires_grad, hooks[, metadata]` after them, `_v3` with the dtype
/// after those: the view, checked against the storage.
fn rebuild_tensor(objects: &Objects, global: Global, args: &[Id]) -> Result<TensorView, String> {
    let what = match global {
        Global::RebuildTensor => {
            arity("_rebuild_tensor", args, &[4])?;
            "_rebuild_tensor"
        }
        Global::RebuildTensorV2 => {
            arity("_rebuild_tensor_v2", args, &[6, 7])?;
            "_rebuild_tensor_v2"
        }
        _ => {
            arity("_rebuild_tensor_v3", args, &[7, 8])?;
            "_rebuild_tensor_v3"
        }
    };
    let Object::Storage(storage) = objects.get(args[0]) else {
        return Err(format!("{what} of a {}, not a storage", objects.get(args[0]).kind()));
    };
    let dtype = match (global, storage.kind) {
        (Global::RebuildTensorV3, kind) => {
            let Object::Global(Global::DType(d)) = objects.get(args[6]) else {
                return Err(format!("{what} with a dtype that is a {}", objects.get(args[6]).kind()));
            };
            if matches!(kind, StorageKind::Typed(t) if t != *d) {
                return Err(format!("{what} of {kind} as {d}"));
            }
            *d
        }
        (_, StorageKind::Typed(d)) => d,
        (_, StorageKind::Untyped) => return Err(format!("{what} of an untyped storage (only _rebuild_tensor_v3 gives its dtype)")),
    };
    let offset = count(objects, args[1], "storage offset")?;
    let shape = dims(objects, args[2], "size")?;
    let strides = dims(objects, args[3], "stride")?;
    if shape.len() != strides.len() {
        return Err(format!("a tensor of {} sizes but {} strides", shape.len(), strides.len()));
    }
    let view = TensorView { storage: storage.key.clone(), dtype, shape, strides, offset };
    check_bounds(&view, storage.bytes)?;
    Ok(view)
}

/// A non-negative integer argument.
fn count(objects: &Objects, id: Id, what: &str) -> Result<usize, String> {
    match objects.get(id) {
        Object::Int(n) => usize::try_from(*n).map_err(|_| format!("a negative {what} ({n})")),
        Object::BigInt => Err(format!("a {what} beyond 64 bits")),
        other => Err(format!("a {what} that is a {}, not an integer", other.kind())),
    }
}

/// A tuple of non-negative integers (a size or a stride).
fn dims(objects: &Objects, id: Id, what: &str) -> Result<Vec<usize>, String> {
    let items = match objects.get(id) {
        Object::Tuple(items) | Object::List(items) => items,
        other => return Err(format!("a tensor {what} that is a {}, not a tuple", other.kind())),
    };
    if items.len() > MAX_RANK {
        return Err(format!("a tensor of {} dimensions (at most {MAX_RANK})", items.len()));
    }
    items.iter().map(|&i| count(objects, i, what)).collect()
}

/// Checks that every element of `view` lies inside a storage of
/// `storage_bytes` bytes.
fn check_bounds(view: &TensorView, storage_bytes: usize) -> Result<(), String> {
    let elements = storage_bytes / view.dtype.element_size();
    let describe = || {
        format!(
            "the view of storage '{}' at offset {} with size {:?} and stride {:?} ({})",
            super::shown(&view.storage),
            view.offset,
            view.shape,
            view.strides,
            view.dtype
        )
    };
    let numel = view.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    match numel {
        Some(n) if n.checked_mul(view.dtype.element_size()).is_none() => return Err(format!("{}: its byte size overflows", describe())),
        None => return Err(format!("{}: its element count overflows", describe())),
        // An empty view reads nothing; torch still keeps its offset inside.
        Some(0) if view.offset <= elements => return Ok(()),
        _ => {}
    }
    let last =
        view.shape.iter().zip(&view.strides).try_fold(view.offset, |at, (&d, &s)| at.checked_add(d.saturating_sub(1).checked_mul(s)?));
    match last {
        Some(last) if last < elements => Ok(()),
        Some(last) => Err(format!("{} reaches element {last}, but the storage holds {elements}", describe())),
        None => Err(format!("{}: its last element's index overflows", describe())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(offset: usize, shape: &[usize], strides: &[usize]) -> TensorView {
        TensorView {
            storage: "0".into(),
            dtype: TorchDType::from_name("float32").unwrap(),
            shape: shape.into(),
            strides: strides.into(),
            offset,
        }
    }

    #[test]
    fn bounds() {
        assert!(check_bounds(&view(0, &[2, 3], &[3, 1]), 24).is_ok());
        assert!(check_bounds(&view(1, &[2, 3], &[3, 1]), 24).is_err());
        assert!(check_bounds(&view(0, &[3, 2], &[1, 3]), 24).is_ok());
        assert!(check_bounds(&view(6, &[0, 5], &[5, 1]), 24).is_ok());
        assert!(check_bounds(&view(7, &[0], &[1]), 24).is_err());
        assert!(check_bounds(&view(0, &[], &[]), 4).is_ok());
        assert!(check_bounds(&view(0, &[], &[]), 3).is_err());
        assert!(check_bounds(&view(0, &[usize::MAX, 2], &[1, 1]), 24).is_err());
        assert!(check_bounds(&view(0, &[2, 2], &[usize::MAX, 1]), 24).is_err());
        assert!(check_bounds(&view(0, &[1_000_000, 2], &[0, 1]), 8).is_ok());
    }

    #[test]
    fn allow_list() {
        assert_eq!(
            resolve_global("torch", "BFloat16Storage"),
            Ok(Global::Storage(StorageKind::Typed(TorchDType::from_name("bfloat16").unwrap())))
        );
        assert_eq!(resolve_global("torch.storage", "UntypedStorage"), Ok(Global::Storage(StorageKind::Untyped)));
        assert!(matches!(resolve_global("torch", "float8_e4m3fn"), Ok(Global::DType(_))));
        for (module, name) in [("os", "system"), ("posix", "system"), ("subprocess", "Popen"), ("torch", "load"), ("builtins", "eval")] {
            let err = resolve_global(module, name).unwrap_err();
            assert!(err.contains(&format!("refused global '{module}.{name}'")), "{err}");
        }
        let err = resolve_global("__builtin__", "exec").unwrap_err();
        assert!(err.contains("refused global 'builtins.exec' (spelled '__builtin__.exec')"), "{err}");
        let err = resolve_global("os\nx", "system").unwrap_err();
        assert!(!err.contains('\n'), "{err}");
    }
}

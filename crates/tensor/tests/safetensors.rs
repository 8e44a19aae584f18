//! Safetensors reading and writing: round trips for every dtype, sharded
//! checkpoints, dtype conversion on load, and one test per malformed-file
//! rule (each must give `Error::Safetensors` naming what was wrong).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use tessera_tensor::safetensors::{self as st, Checkpoint, FileDType, ReadMode, SafeTensorsFile, MAX_HEADER_LEN};
use tessera_tensor::{DType, Device, Error, Tensor};

// ---------------------------------------------------------------- helpers

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tessera-st-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A file made of the given header text and data buffer, unpadded.
fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    raw_file_bytes(header.as_bytes(), data)
}

fn raw_file_bytes(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// The message of the `Error::Safetensors` that opening `bytes` must give.
fn open_err(bytes: Vec<u8>) -> String {
    match SafeTensorsFile::from_bytes("bad.safetensors", bytes) {
        Err(Error::Safetensors { file, msg }) => {
            assert_eq!(file, "bad.safetensors");
            msg
        }
        Err(e) => panic!("expected Error::Safetensors, got {e:?}"),
        Ok(f) => panic!("malformed file was accepted: {f:?}"),
    }
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for part in parts {
        assert!(msg.contains(part), "message {msg:?} does not mention {part:?}");
    }
}

/// Values every dtype can hold exactly (non-negative for the unsigned ones).
fn sample_values(dtype: DType) -> Vec<f64> {
    match dtype {
        DType::U8 | DType::U32 => vec![0.0, 1.0, 2.0, 7.0, 100.0, 255.0],
        DType::I64 => vec![-3.0, 0.0, 1.0, 42.0, -1e12, 9e15],
        _ => vec![0.0, 0.5, -1.0, 2.0, -3.5, 448.0],
    }
}

fn cpu() -> Device {
    Device::cpu()
}

// ------------------------------------------------------------ round trips

#[test]
fn round_trip_every_dtype_contiguous_and_transposed() {
    let dev = cpu();
    let mut owned = Vec::new();
    for dtype in DType::ALL {
        let name = dtype.safetensors_name().to_lowercase();
        let t = Tensor::from_f64_slice(&sample_values(dtype), dtype, vec![2, 3], &dev).unwrap();
        let transposed = t.t().unwrap();
        assert!(!transposed.is_contiguous());
        owned.push((name.clone(), t));
        owned.push((format!("{name}.t"), transposed));
    }
    let tensors: Vec<(&str, &Tensor)> = owned.iter().map(|(n, t)| (n.as_str(), t)).collect();

    let dir = TempDir::new("roundtrip");
    let path = dir.path().join("all.safetensors");
    st::save(&path, &tensors, None).unwrap();
    let file = SafeTensorsFile::open(&path).unwrap();

    let mut expected_names: Vec<&str> = owned.iter().map(|(n, _)| n.as_str()).collect();
    expected_names.sort();
    assert_eq!(file.names(), expected_names);
    for (name, original) in &owned {
        let info = file.info(name).unwrap();
        assert_eq!(info.dtype, original.dtype(), "{name}");
        assert_eq!(info.file_dtype, FileDType::from_dtype(original.dtype()), "{name}");
        assert_eq!(info.shape, original.dims(), "{name}");
        let loaded = file.load(name, &dev).unwrap();
        assert_eq!(loaded.dtype(), original.dtype(), "{name}");
        assert_eq!(loaded.dims(), original.dims(), "{name}");
        assert_eq!(loaded.to_bytes().unwrap(), original.to_bytes().unwrap(), "{name}");
        assert_eq!(loaded.to_f64_vec().unwrap(), original.to_f64_vec().unwrap(), "{name}");
        assert_eq!(file.bytes(name).unwrap(), &original.to_bytes().unwrap()[..], "{name}");
    }
    let all = file.load_all(&dev).unwrap();
    assert_eq!(all.len(), owned.len());
}

#[test]
fn serialize_writes_the_standard_layout() {
    let dev = cpu();
    let b = Tensor::from_f64_slice(&[1.0, 2.0, 3.0], DType::F32, vec![3], &dev).unwrap();
    let a = Tensor::from_f64_slice(&[7.0], DType::U8, vec![1, 1], &dev).unwrap();
    // Given out of order: written in name order.
    let bytes = st::serialize(&[("b", &b), ("a", &a)], None).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!((8 + n) % 8, 0, "data must start on an 8-byte boundary");
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert_eq!(
        header.trim_end_matches(' '),
        r#"{"a":{"dtype":"U8","shape":[1,1],"data_offsets":[0,1]},"b":{"dtype":"F32","shape":[3],"data_offsets":[1,13]}}"#
    );
    let mut data = vec![7u8];
    for v in [1.0f32, 2.0, 3.0] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(&bytes[8 + n..], &data[..]);
}

#[test]
fn reference_library_reads_our_files_and_we_read_its_files() {
    let dev = cpu();
    let w = Tensor::from_f64_slice(&[1.0, -2.0, 3.0, 4.5], DType::BF16, vec![2, 2], &dev).unwrap();
    let ids = Tensor::from_f64_slice(&[5.0, 6.0], DType::I64, vec![2], &dev).unwrap();
    let ours = st::serialize(&[("w", &w), ("ids", &ids)], None).unwrap();
    let theirs = ::safetensors::SafeTensors::deserialize(&ours).unwrap();
    let view = theirs.tensor("w").unwrap();
    assert_eq!(view.dtype(), ::safetensors::Dtype::BF16);
    assert_eq!(view.shape(), &[2, 2]);
    assert_eq!(view.data(), &w.to_bytes().unwrap()[..]);

    let data: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = ::safetensors::tensor::TensorView::new(::safetensors::Dtype::F32, vec![2], &data).unwrap();
    let bytes = ::safetensors::serialize([("x", view)], None).unwrap();
    let file = SafeTensorsFile::from_bytes("ref", bytes).unwrap();
    assert_eq!(file.load("x", &dev).unwrap().to_f64_vec().unwrap(), vec![1.5, -2.0]);
}

#[test]
fn metadata_round_trip() {
    let dev = cpu();
    let t = Tensor::from_f64_slice(&[1.0, 2.0], DType::F16, vec![2], &dev).unwrap();
    let mut metadata = BTreeMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    metadata.insert("note \"quoted\"".to_string(), "ünïcode\nline".to_string());
    let bytes = st::serialize(&[("t", &t)], Some(&metadata)).unwrap();
    let file = SafeTensorsFile::from_bytes("meta", bytes).unwrap();
    assert_eq!(file.metadata(), &metadata);
    assert_eq!(file.names(), vec!["t"]);

    let without = SafeTensorsFile::from_bytes("plain", st::serialize(&[("t", &t)], None).unwrap()).unwrap();
    assert!(without.metadata().is_empty());
}

#[test]
fn bytes_borrow_from_the_mapped_file() {
    let dev = cpu();
    let a = Tensor::from_f64_slice(&[1.0, 2.0, 3.0], DType::F32, vec![3], &dev).unwrap();
    let b = Tensor::from_f64_slice(&[4.0; 8], DType::F16, vec![2, 4], &dev).unwrap();
    let dir = TempDir::new("zerocopy");
    let path = dir.path().join("m.safetensors");
    st::save(&path, &[("a", &a), ("b", &b)], None).unwrap();
    let file = SafeTensorsFile::open(&path).unwrap();

    let whole = file.file_bytes();
    assert_eq!(whole.len() as u64, std::fs::metadata(&path).unwrap().len());
    // A memory map starts on a page boundary.
    assert_eq!(whole.as_ptr() as usize % 4096, 0);
    let region = whole.as_ptr_range();
    for name in ["a", "b"] {
        let info = file.info(name).unwrap();
        let bytes = file.bytes(name).unwrap();
        assert!(region.start <= bytes.as_ptr() && bytes.as_ptr_range().end <= region.end, "{name} is not inside the map");
        let expected = whole[file.data_start() + info.byte_range.start..].as_ptr();
        assert_eq!(bytes.as_ptr(), expected, "{name} was copied");
        assert_eq!(bytes.len(), info.size_in_bytes());
    }
}

#[test]
fn zero_sized_tensors_and_empty_files_are_valid() {
    let dev = cpu();
    let empty = Tensor::zeros(vec![0, 3], DType::F32, &dev).unwrap();
    let one = Tensor::from_f64_slice(&[9.0], DType::U32, vec![1], &dev).unwrap();
    let bytes = st::serialize(&[("empty", &empty), ("one", &one)], None).unwrap();
    let file = SafeTensorsFile::from_bytes("z", bytes).unwrap();
    let loaded = file.load("empty", &dev).unwrap();
    assert_eq!(loaded.dims(), &[0, 3]);
    assert_eq!(file.load("one", &dev).unwrap().to_f64_vec().unwrap(), vec![9.0]);

    let file = SafeTensorsFile::from_bytes("nothing", raw_file("{}", &[])).unwrap();
    assert!(file.is_empty());
}

#[test]
fn entries_may_be_listed_in_any_order() {
    let header = r#"{"z":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}"#;
    let file = SafeTensorsFile::from_bytes("order", raw_file(header, &[1, 2, 3])).unwrap();
    assert_eq!(file.names(), vec!["a", "z"]);
    assert_eq!(file.bytes("z").unwrap(), &[1, 2]);
    assert_eq!(file.bytes("a").unwrap(), &[3]);
}

#[test]
fn missing_tensor_is_an_error_naming_it() {
    let bytes = raw_file("{}", &[]);
    let file = SafeTensorsFile::from_bytes("f", bytes).unwrap();
    match file.load("nope", &cpu()) {
        Err(Error::Safetensors { msg, .. }) => assert_mentions(&msg, &["nope"]),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(file.bytes("nope").is_err());
}

#[test]
fn serialize_rejects_duplicate_and_reserved_names() {
    let t = Tensor::from_f64_slice(&[1.0], DType::F32, vec![1], &cpu()).unwrap();
    match st::serialize(&[("x", &t), ("x", &t)], None) {
        Err(Error::Safetensors { msg, .. }) => assert_mentions(&msg, &["'x'"]),
        other => panic!("expected an error, got {other:?}"),
    }
    match st::serialize(&[("__metadata__", &t)], None) {
        Err(Error::Safetensors { msg, .. }) => assert_mentions(&msg, &["__metadata__"]),
        other => panic!("expected an error, got {other:?}"),
    }
}

// ------------------------------------------------------------- conversion

/// A file with one tensor per (name, dtype, shape, bytes), laid out in order.
fn hand_built(tensors: &[(&str, &str, &[usize], Vec<u8>)]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let (begin, end) = (data.len(), data.len() + bytes.len());
        entries.push(format!(r#""{name}":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[{begin},{end}]}}"#));
        data.extend_from_slice(bytes);
    }
    raw_file(&format!("{{{}}}", entries.join(",")), &data)
}

fn le_bytes<const N: usize, T: Copy>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to(v)).collect()
}

#[test]
fn f64_and_integer_dtypes_convert_on_load() {
    let dev = cpu();
    let bytes = hand_built(&[
        ("f64", "F64", &[2, 2], le_bytes(&[1.5f64, -2.25, 1e300, 0.1], f64::to_le_bytes)),
        ("i32", "I32", &[3], le_bytes(&[-7i32, 0, i32::MAX], i32::to_le_bytes)),
        ("i16", "I16", &[2], le_bytes(&[-300i16, 300], i16::to_le_bytes)),
        ("i8", "I8", &[2], le_bytes(&[-128i8, 127], i8::to_le_bytes)),
        ("u16", "U16", &[2], le_bytes(&[0u16, 65535], u16::to_le_bytes)),
        ("u64", "U64", &[2], le_bytes(&[3u64, i64::MAX as u64], u64::to_le_bytes)),
        ("bool", "BOOL", &[3], vec![1, 0, 1]),
    ]);
    let file = SafeTensorsFile::from_bytes("conv", bytes).unwrap();

    let f64_info = file.info("f64").unwrap();
    assert_eq!((f64_info.file_dtype, f64_info.dtype), (FileDType::F64, DType::F32));
    let t = file.load("f64", &dev).unwrap();
    assert_eq!((t.dtype(), t.dims()), (DType::F32, &[2usize, 2][..]));
    let expected: Vec<f64> = [1.5f64, -2.25, 1e300, 0.1].iter().map(|&v| v as f32 as f64).collect();
    assert_eq!(t.to_f64_vec().unwrap(), expected);
    assert!(t.to_f64_vec().unwrap()[2].is_infinite(), "1e300 rounds to f32 infinity");

    let ints: [(&str, Vec<i64>); 5] = [
        ("i32", vec![-7, 0, i32::MAX as i64]),
        ("i16", vec![-300, 300]),
        ("i8", vec![-128, 127]),
        ("u16", vec![0, 65535]),
        ("u64", vec![3, i64::MAX]),
    ];
    for (name, values) in ints {
        let t = file.load(name, &dev).unwrap();
        assert_eq!(t.dtype(), DType::I64, "{name}");
        assert_eq!(t.to_vec::<i64>().unwrap(), values, "{name}");
    }
    let b = file.load("bool", &dev).unwrap();
    assert_eq!(b.dtype(), DType::U8);
    assert_eq!(b.to_vec::<u8>().unwrap(), vec![1, 0, 1]);
    // The stored bytes stay available unconverted.
    assert_eq!(file.bytes("i8").unwrap(), &[0x80, 0x7f]);
}

#[test]
fn u64_above_i64_max_is_an_error_naming_the_tensor() {
    let bytes = hand_built(&[("big", "U64", &[2], le_bytes(&[1u64, u64::MAX], u64::to_le_bytes))]);
    let file = SafeTensorsFile::from_bytes("u64", bytes).unwrap();
    match file.load("big", &cpu()) {
        Err(Error::Safetensors { msg, .. }) => assert_mentions(&msg, &["'big'", "element 1"]),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn microscaling_formats_convert_to_f32() {
    let dev = cpu();
    // F4 E2M1, low nibble first: 0x21 -> [0.5, 1.0]; 0xF7 -> [6.0, -6.0].
    // F8_E8M0: 127 -> 1, 130 -> 8, 0 -> 2^-127, 255 -> NaN.
    let bytes = hand_built(&[
        ("fp4", "F4", &[2, 2], vec![0x21, 0xf7]),
        ("scale", "F8_E8M0", &[4], vec![127, 130, 0, 255]),
        ("fp6", "F6_E2M3", &[4], vec![0, 0, 0]),
    ]);
    let file = SafeTensorsFile::from_bytes("mx", bytes).unwrap();
    assert_eq!(file.load("fp4", &dev).unwrap().to_f64_vec().unwrap(), vec![0.5, 1.0, 6.0, -6.0]);
    let scale = file.load("scale", &dev).unwrap().to_f32_vec().unwrap();
    assert_eq!(&scale[..3], &[1.0, 8.0, 2f32.powi(-127)]);
    assert!(scale[3].is_nan());
    // F6 is recognised (the file opens) but cannot be loaded.
    assert_eq!(file.info("fp6").unwrap().file_dtype, FileDType::F6E2M3);
    match file.load("fp6", &dev) {
        Err(Error::Safetensors { msg, .. }) => assert_mentions(&msg, &["'fp6'", "F6_E2M3"]),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn every_safetensors_dtype_name_is_recognised() {
    for name in [
        "BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4",
        "F6_E2M3", "F6_E3M2",
    ] {
        let dtype = FileDType::from_name(name).unwrap_or_else(|| panic!("{name} not recognised"));
        assert_eq!(dtype.name(), name);
    }
    for dtype in DType::ALL {
        assert_eq!(FileDType::from_dtype(dtype).name(), dtype.safetensors_name());
        assert!(!FileDType::from_dtype(dtype).is_converted());
    }
}

// ------------------------------------------------------------ checkpoints

/// Writes two shards and their index into `dir`; returns the tensors.
fn write_sharded(dir: &Path) -> Vec<(String, Tensor)> {
    let dev = cpu();
    let tensors: Vec<(String, Tensor)> = vec![
        ("embed.weight".into(), Tensor::randn(1, 0.0, 1.0, vec![4, 3], DType::F32, &dev).unwrap()),
        ("layer.0.weight".into(), Tensor::randn(2, 0.0, 1.0, vec![3, 3], DType::BF16, &dev).unwrap()),
        ("layer.0.bias".into(), Tensor::randn(3, 0.0, 1.0, vec![3], DType::F16, &dev).unwrap()),
        ("head.weight".into(), Tensor::randn(4, 0.0, 1.0, vec![2, 3], DType::F32, &dev).unwrap()),
    ];
    let shard1 = "model-00001-of-00002.safetensors";
    let shard2 = "model-00002-of-00002.safetensors";
    st::save(dir.join(shard1), &[("embed.weight", &tensors[0].1), ("layer.0.weight", &tensors[1].1)], None).unwrap();
    st::save(dir.join(shard2), &[("layer.0.bias", &tensors[2].1), ("head.weight", &tensors[3].1)], None).unwrap();
    let index = format!(
        r#"{{"metadata": {{"total_size": 100}}, "weight_map": {{
            "embed.weight": "{shard1}", "layer.0.weight": "{shard1}",
            "layer.0.bias": "{shard2}", "head.weight": "{shard2}"}}}}"#
    );
    std::fs::write(dir.join("model.safetensors.index.json"), index).unwrap();
    tensors
}

#[test]
fn sharded_checkpoint_opens_from_directory_or_index() {
    let dev = cpu();
    let dir = TempDir::new("sharded");
    let tensors = write_sharded(dir.path());
    for source in [dir.path().to_path_buf(), dir.path().join("model.safetensors.index.json")] {
        let ckpt = Checkpoint::open(&source).unwrap();
        assert_eq!(ckpt.files().len(), 2, "each shard is opened once");
        assert_eq!(ckpt.names(), vec!["embed.weight", "head.weight", "layer.0.bias", "layer.0.weight"]);
        for (name, original) in &tensors {
            assert!(ckpt.contains(name));
            assert_eq!(ckpt.info(name).unwrap().shape, original.dims());
            let loaded = ckpt.load(name, &dev).unwrap();
            assert_eq!(loaded.to_bytes().unwrap(), original.to_bytes().unwrap(), "{name}");
        }
        assert!(!ckpt.contains("missing"));
        assert!(ckpt.load("missing", &dev).is_err());
        let cast = ckpt.load_with_dtype("layer.0.weight", DType::F32, &dev).unwrap();
        assert_eq!(cast.dtype(), DType::F32);
        assert_eq!(cast.to_f64_vec().unwrap(), tensors[1].1.to_f64_vec().unwrap());
        assert_eq!(ckpt.load_all(&dev).unwrap().len(), 4);
    }
}

#[test]
fn checkpoint_opens_a_single_file_or_a_directory_with_model_safetensors() {
    let dev = cpu();
    let dir = TempDir::new("single");
    let t = Tensor::from_f64_slice(&[1.0, 2.0], DType::F32, vec![2], &dev).unwrap();
    st::save(dir.path().join("model.safetensors"), &[("w", &t)], None).unwrap();
    for source in [dir.path().to_path_buf(), dir.path().join("model.safetensors")] {
        let ckpt = Checkpoint::open(&source).unwrap();
        assert_eq!(ckpt.names(), vec!["w"]);
        assert_eq!(ckpt.load("w", &dev).unwrap().to_f64_vec().unwrap(), vec![1.0, 2.0]);
        let half = ckpt.load_with_dtype("w", DType::F16, &dev).unwrap();
        assert_eq!(half.dtype(), DType::F16);
    }
}

#[test]
fn checkpoint_directory_without_weights_is_an_error() {
    let dir = TempDir::new("emptydir");
    match Checkpoint::open(dir.path()) {
        Err(Error::Safetensors { msg, .. }) => assert_mentions(&msg, &["model.safetensors"]),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn sharded_index_naming_a_tensor_its_shard_lacks_is_an_error() {
    let dir = TempDir::new("shardmissing");
    write_sharded(dir.path());
    let index = r#"{"weight_map": {"embed.weight": "model-00001-of-00002.safetensors",
        "ghost.weight": "model-00002-of-00002.safetensors"}}"#;
    std::fs::write(dir.path().join("model.safetensors.index.json"), index).unwrap();
    match Checkpoint::open(dir.path()) {
        Err(Error::Safetensors { msg, .. }) => assert_mentions(&msg, &["'ghost.weight'", "model-00002-of-00002.safetensors"]),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn sharded_index_naming_a_missing_shard_is_an_io_error() {
    let dir = TempDir::new("noshard");
    let index = r#"{"weight_map": {"w": "absent.safetensors"}}"#;
    std::fs::write(dir.path().join("model.safetensors.index.json"), index).unwrap();
    match Checkpoint::open(dir.path()) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("absent.safetensors"), "{path}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn sharded_index_with_a_bad_weight_map_is_an_error() {
    let dir = TempDir::new("badindex");
    let cases = [
        (r#"{"weight_map": {"w": "../outside.safetensors"}}"#, "'w'"),
        (r#"{"weight_map": {"w": "/abs.safetensors"}}"#, "'w'"),
        (r#"{"weight_map": {"w": 3}}"#, "'w'"),
        (r#"{"metadata": {}}"#, "weight_map"),
        (r#"{"weight_map": "#, "JSON"),
    ];
    for (index, mention) in cases {
        let path = dir.path().join("model.safetensors.index.json");
        std::fs::write(&path, index).unwrap();
        match Checkpoint::open(&path) {
            Err(Error::Safetensors { msg, .. }) => assert_mentions(&msg, &[mention]),
            other => panic!("index {index}: expected an error, got {other:?}"),
        }
    }
}

// --------------------------------------------------------- malformed files

const ONE_F32: &str = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;

#[test]
fn malformed_file_shorter_than_length_prefix() {
    let msg = open_err(vec![1, 2, 3]);
    assert_mentions(&msg, &["truncated", "3 bytes"]);
    assert_mentions(&open_err(Vec::new()), &["truncated"]);
}

#[test]
fn malformed_header_length_past_end_of_file() {
    let mut bytes = raw_file(ONE_F32, &[0; 4]);
    bytes[..8].copy_from_slice(&1000u64.to_le_bytes());
    assert_mentions(&open_err(bytes), &["header length 1000", "truncated"]);
}

#[test]
fn malformed_header_length_absurd() {
    let mut bytes = raw_file(ONE_F32, &[0; 4]);
    bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_mentions(&open_err(bytes), &[&u64::MAX.to_string(), &MAX_HEADER_LEN.to_string()]);
    let mut bytes = raw_file(ONE_F32, &[0; 4]);
    bytes[..8].copy_from_slice(&(MAX_HEADER_LEN + 1).to_le_bytes());
    assert_mentions(&open_err(bytes), &["exceeds the limit"]);
}

#[test]
fn malformed_header_not_utf8() {
    let bytes = raw_file_bytes(b"{\"w\xff\xfe\":1}", &[]);
    assert_mentions(&open_err(bytes), &["UTF-8", "byte 3"]);
}

#[test]
fn malformed_header_not_json() {
    assert_mentions(&open_err(raw_file(r#"{"w": {"dtype": "F32""#, &[])), &["JSON"]);
    assert_mentions(&open_err(raw_file("", &[])), &["JSON"]);
}

#[test]
fn malformed_header_not_an_object() {
    assert_mentions(&open_err(raw_file("[1, 2]", &[])), &["JSON object"]);
    assert_mentions(&open_err(raw_file("\"text\"", &[])), &["JSON object"]);
}

#[test]
fn malformed_entry_missing_field() {
    for (field, header) in [
        ("dtype", r#"{"w":{"shape":[1],"data_offsets":[0,4]}}"#),
        ("shape", r#"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#),
        ("data_offsets", r#"{"w":{"dtype":"F32","shape":[1]}}"#),
    ] {
        assert_mentions(&open_err(raw_file(header, &[0; 4])), &["'w'", field]);
    }
}

#[test]
fn malformed_entry_wrong_types() {
    for (field, header) in [
        ("entry", r#"{"w":[1,2]}"#),
        ("dtype", r#"{"w":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}"#),
        ("shape", r#"{"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}"#),
        ("shape", r#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#),
        ("shape", r#"{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#),
        ("data_offsets", r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}}"#),
        ("data_offsets", r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#),
        ("data_offsets", r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}}"#),
    ] {
        assert_mentions(&open_err(raw_file(header, &[0; 4])), &["'w'", field]);
    }
}

#[test]
fn malformed_metadata_not_strings() {
    let header = r#"{"__metadata__":{"epoch":3},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    assert_mentions(&open_err(raw_file(header, &[0; 4])), &["__metadata__", "'epoch'"]);
    let header = r#"{"__metadata__":[1],"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    assert_mentions(&open_err(raw_file(header, &[0; 4])), &["__metadata__"]);
}

#[test]
fn malformed_duplicate_tensor_name() {
    let header = r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#;
    assert_mentions(&open_err(raw_file(header, &[0; 2])), &["'w'", "more than once"]);
}

#[test]
fn malformed_offsets_begin_after_end() {
    let header = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#;
    assert_mentions(&open_err(raw_file(header, &[0; 8])), &["'w'", "[8, 4]"]);
}

#[test]
fn malformed_offsets_past_end_of_data() {
    let header = r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    assert_mentions(&open_err(raw_file(header, &[0; 4])), &["'w'", "[0, 8]", "4-byte data buffer"]);
    // Far past the end, near usize::MAX: still an error, no overflow.
    let end = usize::MAX;
    let begin = end - 4;
    let header = format!(r#"{{"w":{{"dtype":"F32","shape":[1],"data_offsets":[{begin},{end}]}}}}"#);
    assert_mentions(&open_err(raw_file(&header, &[0; 4])), &["'w'", &end.to_string()]);
}

#[test]
fn malformed_overlapping_offsets() {
    let header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    assert_mentions(&open_err(raw_file(header, &[0; 12])), &["'b'", "'a'", "[4, 12]", "overlap"]);
}

#[test]
fn malformed_hole_between_tensors() {
    let header = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#;
    assert_mentions(&open_err(raw_file(header, &[0; 12])), &["'b'", "[8, 12]", "4..8"]);
}

#[test]
fn malformed_hole_before_first_tensor() {
    let header = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    assert_mentions(&open_err(raw_file(header, &[0; 8])), &["'a'", "0..4"]);
}

#[test]
fn malformed_trailing_bytes_after_last_tensor() {
    assert_mentions(&open_err(raw_file(ONE_F32, &[0; 8])), &["4..8", "'w'"]);
}

#[test]
fn malformed_size_does_not_match_offsets() {
    let header = r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    assert_mentions(&open_err(raw_file(header, &[0; 8])), &["'w'", "12 bytes", "[0, 8]"]);
}

#[test]
fn malformed_shape_overflows() {
    let big = 1u64 << 62;
    let header = format!(r#"{{"w":{{"dtype":"F32","shape":[{big},{big}],"data_offsets":[0,4]}}}}"#);
    assert_mentions(&open_err(raw_file(&header, &[0; 4])), &["'w'", "overflow"]);
    // The element count fits but the byte count does not.
    let n = usize::MAX / 2;
    let header = format!(r#"{{"w":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,4]}}}}"#);
    assert_mentions(&open_err(raw_file(&header, &[0; 4])), &["'w'", "overflow"]);
}

#[test]
fn malformed_sub_byte_tensor_not_ending_on_a_byte() {
    let header = r#"{"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#;
    assert_mentions(&open_err(raw_file(header, &[0; 2])), &["'w'", "byte boundary"]);
}

#[test]
fn malformed_unknown_dtype() {
    let header = r#"{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#;
    assert_mentions(&open_err(raw_file(header, &[0; 16])), &["'w'", "F128"]);
}

#[test]
fn open_of_missing_file_is_an_io_error() {
    let dir = TempDir::new("missing");
    let path = dir.path().join("nope.safetensors");
    match SafeTensorsFile::open(&path) {
        Err(Error::Io { path: p, .. }) => assert!(p.ends_with("nope.safetensors")),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn truncated_and_corrupted_files_never_panic() {
    let dev = cpu();
    let a = Tensor::from_f64_slice(&[1.0, 2.0, 3.0], DType::F32, vec![3], &dev).unwrap();
    let b = Tensor::from_f64_slice(&[4.0, 5.0], DType::I64, vec![2], &dev).unwrap();
    let good = st::serialize(&[("a", &a), ("b", &b)], None).unwrap();
    for len in 0..good.len() {
        let result = SafeTensorsFile::from_bytes("cut", good[..len].to_vec());
        assert!(matches!(result, Err(Error::Safetensors { .. })), "truncated to {len} bytes was accepted");
    }
    // Deterministic byte corruption: opening and loading either works or
    // reports an error.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut bytes = good.clone();
        for _ in 0..1 + next() % 3 {
            let i = (next() % bytes.len() as u64) as usize;
            bytes[i] = next() as u8;
        }
        if let Ok(file) = SafeTensorsFile::from_bytes("corrupt", bytes) {
            for name in file.names() {
                let _ = file.load(name, &dev);
            }
        }
    }
}

#[test]
fn zero_sized_tensors_with_huge_dims_load_without_overflow() {
    // The element count is 0 whichever dimension is zero; the other dims
    // multiply past u64 and must not overflow anywhere (strides included).
    let dev = cpu();
    for shape in ["[0, 4294967296, 4294967296]", "[4294967296, 4294967296, 0]"] {
        let header = format!(r#"{{"e": {{"dtype": "F32", "shape": {shape}, "data_offsets": [0, 0]}}}}"#);
        let file = SafeTensorsFile::from_bytes("empty.safetensors", raw_file(&header, &[])).unwrap();
        let t = file.load("e", &dev).unwrap();
        assert_eq!(t.numel(), 0);
        assert_eq!(t.to_vec::<f32>().unwrap(), Vec::<f32>::new());
        assert!(t.contiguous().is_ok() && t.sum_all().is_ok());
    }
    // A non-empty tensor whose count overflows is rejected from the header.
    let header = r#"{"e": {"dtype": "F32", "shape": [4294967296, 4294967296, 2], "data_offsets": [0, 0]}}"#;
    assert_mentions(&open_err(raw_file(header, &[])), &["'e'", "overflow"]);
}

#[test]
fn broadcasting_to_an_unaddressable_shape_is_an_error() {
    let t = Tensor::from_f64_slice(&[1.0], DType::F32, vec![1, 1], &cpu()).unwrap();
    assert!(t.broadcast_as(vec![1usize << 40, 1 << 40]).is_err());
    assert!(t.broadcast_as(vec![0, 1 << 40]).is_ok());
}

#[test]
fn read_mode_loads_the_same_tensors_as_the_map() {
    let dir = TempDir::new("read-mode");
    let a = Tensor::from_f64_slice(&[1.0, 2.0, 3.0], DType::F32, vec![3], &cpu()).unwrap();
    let path = dir.path().join("model.safetensors");
    st::save(&path, &[("a", &a)], None).unwrap();
    for mode in [ReadMode::Map, ReadMode::Read] {
        let ckpt = Checkpoint::open_with(dir.path(), mode).unwrap();
        assert_eq!(ckpt.load("a", &cpu()).unwrap().to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(ckpt.source(), path.display().to_string());
    }
}

#[test]
fn only_regular_files_are_opened() {
    let dir = TempDir::new("not-regular");
    // A directory named like a checkpoint file.
    let fake = dir.path().join("model.safetensors");
    std::fs::create_dir(&fake).unwrap();
    for mode in [ReadMode::Map, ReadMode::Read] {
        let e = SafeTensorsFile::open_with(&fake, mode).unwrap_err().to_string();
        assert!(e.contains("directory") && e.contains("model.safetensors"), "{e}");
        let e = Checkpoint::open_with(dir.path(), mode).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
    // A FIFO would block forever if opened; it is refused up front.
    let fifo = dir.path().join("pipe.safetensors");
    if std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
        let e = SafeTensorsFile::open(&fifo).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
        let index = dir.path().join("pipe.json");
        std::process::Command::new("mkfifo").arg(&index).status().unwrap();
        assert!(Checkpoint::open(&index).unwrap_err().to_string().contains("FIFO"));
    }
}

#[test]
fn repeated_keys_inside_an_entry_or_the_weight_map_are_errors() {
    let header = r#"{"a": {"dtype": "F32", "shape": [1], "shape": [2], "data_offsets": [0, 4]}}"#;
    assert_mentions(&open_err(raw_file(header, &[0; 4])), &["duplicate key 'shape'"]);
    let dir = TempDir::new("dup-index");
    let a = Tensor::from_f64_slice(&[1.0], DType::F32, vec![1], &cpu()).unwrap();
    st::save(dir.path().join("s.safetensors"), &[("a", &a)], None).unwrap();
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::write(&index, r#"{"weight_map": {"a": "s.safetensors", "a": "other.safetensors"}}"#).unwrap();
    let e = Checkpoint::open(&index).unwrap_err().to_string();
    assert!(e.contains("duplicate key 'a'"), "{e}");
}

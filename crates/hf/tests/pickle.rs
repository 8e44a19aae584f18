//! The `torch.save` reader against real torch files (tests/fixtures/pickle,
//! written by make_fixtures.py there): every valid checkpoint reads with
//! torch's names, dtypes, shapes and exact bytes, converts to safetensors
//! that the safetensors crate reads back equal, and every hostile or broken
//! file is a typed error that says what was wrong.

use std::path::{Path, PathBuf};
use tessera_hf::pickle::{Skipped, TorchDType};
use tessera_hf::{convert_to_safetensors, write_safetensors_plan, Error, OutputTensor, TorchCheckpoint};
use tessera_nn::TensorSource;
use tessera_tensor::safetensors::{FileDType, ReadMode};
use tessera_tensor::{DType, Device};

/// The valid fixtures, each with its `.expected.safetensors`.
const VALID: [&str; 11] =
    ["state_dict", "new_dtypes", "tied", "views", "ordered", "parameter", "attributes", "training", "model_key", "big_endian", "protocol4"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pickle").join(name)
}

fn open(name: &str) -> TorchCheckpoint {
    TorchCheckpoint::open(fixture(&format!("{name}.pt"))).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (name, dtype name, shape, bytes) of every tensor of a safetensors file,
/// sorted by name, read with the safetensors crate.
fn read_safetensors(path: &Path) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<_> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, format!("{:?}", view.dtype()), view.shape().to_vec(), view.data().to_vec()))
        .collect();
    out.sort();
    out
}

fn expected(name: &str) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    read_safetensors(&fixture(&format!("{name}.expected.safetensors")))
}

/// What the reader gives for every tensor, in the same form.
fn read_checkpoint(checkpoint: &TorchCheckpoint) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let mut out: Vec<_> = checkpoint
        .names()
        .into_iter()
        .map(|name| {
            let dtype = checkpoint.file_dtype(name).unwrap().name().to_string();
            let shape = checkpoint.shape(name).unwrap().to_vec();
            (name.to_string(), dtype, shape, checkpoint.bytes(name).unwrap().into_owned())
        })
        .collect();
    out.sort();
    out
}

/// The message of an `Error::Checkpoint`, failing on any other outcome.
fn checkpoint_error<T: std::fmt::Debug>(result: tessera_hf::Result<T>) -> String {
    match result {
        Err(Error::Checkpoint { msg, .. }) => msg,
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn every_valid_fixture_reads_exactly_what_torch_saved() {
    for name in VALID {
        for mode in [ReadMode::Map, ReadMode::Read] {
            let checkpoint = TorchCheckpoint::open_with(fixture(&format!("{name}.pt")), mode).unwrap();
            assert_eq!(read_checkpoint(&checkpoint), expected(name), "{name} ({mode:?})");
        }
        let bytes = std::fs::read(fixture(&format!("{name}.pt"))).unwrap();
        let in_memory = TorchCheckpoint::from_bytes(name, bytes).unwrap();
        assert_eq!(read_checkpoint(&in_memory), expected(name), "{name} from bytes");
    }
}

#[test]
fn names_follow_the_pickle_and_dtypes_are_torchs() {
    let c = open("state_dict");
    assert_eq!(c.names(), ["f32", "f16", "bf16", "i64", "scalar", "f64", "i32", "i8", "u8", "bool", "empty"]);
    assert_eq!(c.len(), 11);
    let dtype = |name: &str| c.tensor(name).unwrap().dtype;
    assert_eq!(dtype("bf16"), TorchDType::from_name("bfloat16").unwrap());
    assert_eq!(dtype("bool").to_string(), "torch.bool");
    assert_eq!(dtype("i64").element_size(), 8);
    assert_eq!(c.shape("scalar").unwrap(), &[] as &[usize]);
    assert_eq!(c.shape("empty").unwrap(), [0, 3]);
    // The dtypes they load as (the safetensors loader's conversions).
    let loads: Vec<DType> = c.names().iter().map(|n| c.dtype(n).unwrap()).collect();
    use DType::*;
    assert_eq!(loads, [F32, F16, BF16, I64, F32, F32, I64, I64, U8, U8, F32]);
    assert!(!c.is_big_endian() && open("big_endian").is_big_endian());
    assert_eq!(open("ordered").names(), ["0.weight", "0.bias", "1.weight", "1.bias"]);
    let new = open("new_dtypes");
    let files: Vec<FileDType> = new.names().iter().map(|n| new.file_dtype(n).unwrap()).collect();
    assert_eq!(files, [FileDType::F8E4M3, FileDType::F8E5M2, FileDType::U16, FileDType::U32]);
    assert!(c.shape("missing").is_err() && !c.contains("missing"));
}

#[test]
fn loads_onto_the_cpu_with_the_values_torch_saved() {
    let cpu = Device::cpu();
    let c = open("state_dict");
    let values = |c: &TorchCheckpoint, name: &str| c.load(name, &cpu).unwrap().to_f64_vec().unwrap();
    assert_eq!(values(&c, "f32"), [-1.0, -0.75, -0.5, -0.25, 0.0, 0.25]);
    assert_eq!(values(&c, "bf16"), [-2.0, -1.5, -1.0, -0.5]);
    assert_eq!(values(&c, "i64"), [-3.0, 0.0, (1u64 << 40) as f64]);
    assert_eq!(values(&c, "i8"), [-128.0, 5.0, 127.0]);
    assert_eq!(values(&c, "f64"), [0.125, 0.375, 0.625]);
    assert_eq!(values(&c, "bool"), [1.0, 0.0, 1.0]);
    let scalar = c.load("scalar", &cpu).unwrap();
    assert_eq!((scalar.dims(), scalar.to_f64_vec().unwrap()), (&[] as &[usize], vec![2.5]));
    assert_eq!(c.load("empty", &cpu).unwrap().dims(), [0, 3]);
    let new = open("new_dtypes");
    assert_eq!(values(&new, "u16"), [1.0, 65535.0]);
    assert_eq!(values(&new, "u32"), [7.0, 4e9]);
    assert_eq!(values(&new, "f8_e4m3"), [0.5, -1.0, 448.0]);
    // Through the TensorSource a VarBuilder reads.
    let source: &dyn TensorSource = &c;
    assert_eq!(source.info("i32"), Some((DType::I64, vec![2])));
    assert_eq!(source.load("i32", &cpu).unwrap().to_f64_vec().unwrap(), [-7.0, 7.0]);
    assert!(source.describe().contains("state_dict.pt"));
    let big = open("big_endian");
    assert_eq!(values(&big, "i64"), [-3.0, 0.0, (1u64 << 40) as f64]);
    assert_eq!(values(&big, "f16"), [0.5, 0.75, 1.0, 1.25]);
}

#[test]
fn views_keep_torchs_layout_and_read_in_row_major_order() {
    let v = open("views");
    let t = |name: &str| v.tensor(name).unwrap().clone();
    assert_eq!((t("transposed").shape, t("transposed").strides), (vec![4, 3], vec![1, 4]));
    assert!(!t("transposed").is_contiguous() && t("base").is_contiguous());
    assert_eq!((t("sliced").storage_offset, t("sliced").storage.clone()), (4, t("base").storage));
    assert_eq!((t("column").storage_offset, t("column").strides), (2, vec![4]));
    assert_eq!(t("expanded").strides, [0, 1]);
    let base = f32s(&v.bytes("base").unwrap());
    assert_eq!(base[..3], [1.0, 1.25, 1.5]);
    let transposed = f32s(&v.bytes("transposed").unwrap());
    assert_eq!(transposed[..4], [base[0], base[4], base[8], base[1]]);
    assert_eq!(f32s(&v.bytes("column").unwrap()), [base[2], base[6], base[10]]);
    // Contiguous views are borrowed from the file, strided ones gathered.
    assert!(matches!(v.bytes("sliced").unwrap(), std::borrow::Cow::Borrowed(_)));
    assert!(matches!(v.bytes("transposed").unwrap(), std::borrow::Cow::Owned(_)));
    assert_eq!(v.bytes("expanded").unwrap().len(), 3 * 4 * 2);

    let tied = open("tied");
    let (embed, head, row) = (tied.tensor("embed.weight").unwrap(), tied.tensor("lm_head.weight").unwrap(), tied.tensor("row").unwrap());
    assert_eq!((&embed.storage, &head.storage), (&row.storage, &row.storage));
    assert_eq!((row.storage_offset, row.shape.clone()), (2, vec![2]));
    assert_eq!(f32s(&tied.bytes("row").unwrap()), [0.5, 0.75]);
}

#[test]
fn wrapped_state_dicts_are_found_and_the_rest_is_listed() {
    let training = open("training");
    assert_eq!(training.names(), ["encoder.w", "head.b"]);
    let skipped = |name: &str, kind: &str, value: &str| Skipped { name: name.into(), kind: kind.into(), value: Some(value.into()) };
    assert_eq!(
        training.skipped(),
        [
            skipped("epoch", "int", "3"),
            skipped("lr", "float", "0.001"),
            skipped("optimizer", "str", "'adamw'"),
            skipped("best", "None", "None")
        ]
    );
    assert_eq!(open("model_key").names(), ["a.weight"]);
    assert!(open("model_key").skipped().is_empty());
    // The Python attribute of a tensor and a parameter's wrapper are dropped.
    assert_eq!(f32s(&open("attributes").bytes("tagged").unwrap()), [4.0, 4.25]);
    assert_eq!(open("parameter").shape("p").unwrap(), [2, 2]);
}

#[test]
fn converts_to_safetensors_the_safetensors_crate_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    for name in VALID {
        let out = dir.path().join(format!("{name}.safetensors"));
        let report = convert_to_safetensors(&fixture(&format!("{name}.pt")), &out, |n| Some(n.to_string())).unwrap();
        let back = read_safetensors(&out);
        assert_eq!(back, expected(name), "{name}");
        assert_eq!(report.written.len(), back.len());
        assert!(report.written.iter().all(|(a, b)| a == b) && report.dropped.is_empty());
        assert_eq!(report.bytes, back.iter().map(|t| t.3.len() as u64).sum::<u64>());
        let bytes = std::fs::read(&out).unwrap();
        let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(metadata.metadata().as_ref().and_then(|m| m.get("format")).map(String::as_str), Some("pt"));
    }
    let report = convert_to_safetensors(&fixture("training.pt"), &dir.path().join("t.safetensors"), |n| Some(n.into())).unwrap();
    assert_eq!(report.skipped.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["epoch", "lr", "optimizer", "best"]);
}

#[test]
fn the_rename_callback_renames_and_drops() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("renamed.safetensors");
    let rename = |n: &str| (!matches!(n, "bool" | "empty")).then(|| format!("model.{n}"));
    let report = convert_to_safetensors(&fixture("state_dict.pt"), &out, rename).unwrap();
    assert_eq!(report.dropped, ["bool", "empty"]);
    assert_eq!(report.written[0], ("f32".to_string(), "model.f32".to_string()));
    let want: Vec<_> = expected("state_dict")
        .into_iter()
        .filter(|t| t.0 != "bool" && t.0 != "empty")
        .map(|(n, d, s, b)| (format!("model.{n}"), d, s, b))
        .collect();
    assert_eq!(read_safetensors(&out), want);

    let clash = convert_to_safetensors(&fixture("state_dict.pt"), &out, |_| Some("same".into()));
    assert!(matches!(&clash, Err(Error::InvalidArgument { msg, .. }) if msg.contains("'same'")), "{clash:?}");
    let reserved = convert_to_safetensors(&fixture("state_dict.pt"), &out, |_| Some("__metadata__".into()));
    assert!(matches!(reserved, Err(Error::InvalidArgument { .. })));
    let input = fixture("state_dict.pt");
    let onto_itself = open("state_dict").write_safetensors(&input, |n| Some(n.into()));
    assert!(matches!(onto_itself, Err(Error::InvalidArgument { .. })));
    // The refused conversions left the earlier output as it was.
    assert_eq!(read_safetensors(&out).len(), 9);
}

#[test]
fn a_plan_splits_rows_reshapes_and_reads_several_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.safetensors");
    let checkpoints = [open("views"), open("tied")];
    let plan = [
        OutputTensor::new("top", "base").rows(0..1),
        OutputTensor::new("bottom", "base").rows(1..3),
        OutputTensor::new("flat", "transposed").rows(1..3).reshaped(vec![6]),
        OutputTensor::new("nothing", "base").rows(3..3),
        OutputTensor::new("embed", "embed.weight").reshaped(vec![1, 6]),
        OutputTensor::new("expanded", "expanded").rows(2..3),
    ];
    let written = write_safetensors_plan(&checkpoints, &plan, &out).unwrap();
    let back = read_safetensors(&out);
    assert_eq!(written, back.iter().map(|t| t.3.len() as u64).sum::<u64>());
    let get = |name: &str| back.iter().find(|t| t.0 == name).unwrap().clone();
    let base = checkpoints[0].bytes("base").unwrap().into_owned();
    assert_eq!((get("top").2, get("top").3), (vec![1, 4], base[..16].to_vec()));
    assert_eq!((get("bottom").2, get("bottom").3), (vec![2, 4], base[16..].to_vec()));
    let transposed = checkpoints[0].bytes("transposed").unwrap().into_owned();
    assert_eq!((get("flat").2, get("flat").3), (vec![6], transposed[12..36].to_vec()));
    assert_eq!((get("nothing").2, get("nothing").3.len()), (vec![0, 4], 0));
    assert_eq!((get("embed").1, get("embed").2), ("F32".to_string(), vec![1, 6]));
    assert_eq!((get("expanded").1, get("expanded").3), ("F16".to_string(), checkpoints[0].bytes("expanded").unwrap()[16..].to_vec()));

    let refused = |plan: &[OutputTensor]| match write_safetensors_plan(&checkpoints, plan, &dir.path().join("bad.safetensors")) {
        Err(Error::InvalidArgument { msg, .. }) => msg,
        other => panic!("expected an invalid argument, got {other:?}"),
    };
    assert!(refused(&[OutputTensor::new("x", "base").rows(2..4)]).contains("first dimension is 3"));
    let reversed = std::ops::Range { start: 2, end: 1 };
    assert!(refused(&[OutputTensor::new("x", "base").rows(reversed)]).contains("rows 2..1"));
    assert!(refused(&[OutputTensor::new("x", "base").reshaped(vec![5])]).contains("12 elements"));
    assert!(refused(&[OutputTensor::new("x", "base").reshaped(vec![usize::MAX, 2])]).contains("12 elements"));
    assert!(refused(&[OutputTensor::new("x", "nowhere")]).contains("no checkpoint holds tensor 'nowhere'"));
    assert!(refused(&[OutputTensor::new("x", "base"), OutputTensor::new("x", "sliced")]).contains("'base' and 'sliced'"));
    let scalar = [open("state_dict")];
    let err = write_safetensors_plan(&scalar, &[OutputTensor::new("x", "scalar").rows(0..1)], &out);
    assert!(matches!(err, Err(Error::InvalidArgument { msg, .. }) if msg.contains("scalar")));
    assert!(!dir.path().join("bad.safetensors").exists());
}

#[test]
fn code_in_the_pickle_is_refused_naming_the_global() {
    for (name, global) in [
        ("os_system", "os.system"),
        ("posix_system", "posix.system"),
        ("builtins_eval", "builtins.eval"),
        ("subprocess_popen", "subprocess.Popen"),
    ] {
        let path = fixture(&format!("{name}.pt"));
        let msg = checkpoint_error(TorchCheckpoint::open(&path));
        assert!(msg.contains(&format!("refused global '{global}'")), "{name}: {msg}");
        let err = convert_to_safetensors(&path, &std::env::temp_dir().join("never-written.safetensors"), |n| Some(n.into()));
        assert!(checkpoint_error(err).contains(global));
        let full = TorchCheckpoint::open(&path).unwrap_err().to_string();
        assert!(full.starts_with("checkpoint ") && full.contains(&format!("{name}.pt")), "{full}");
    }
}

#[test]
fn views_outside_their_storage_are_refused() {
    for (name, reach) in [("oob_size", "reaches element 7"), ("oob_offset", "reaches element 6"), ("oob_stride", "reaches element 6")] {
        let msg = checkpoint_error(TorchCheckpoint::open(fixture(&format!("{name}.pt"))));
        assert!(msg.contains(reach) && msg.contains("the storage holds 6"), "{name}: {msg}");
    }
}

#[test]
fn broken_archives_say_what_is_wrong() {
    let msg = checkpoint_error(TorchCheckpoint::open(fixture("truncated.pt")));
    assert!(msg.contains("truncated or corrupt"), "{msg}");
    let msg = checkpoint_error(TorchCheckpoint::open(fixture("missing_storage.pt")));
    assert!(msg.contains("storage '1' has no entry data/1"), "{msg}");
    let msg = checkpoint_error(TorchCheckpoint::open(fixture("legacy.pt")));
    assert!(msg.contains("legacy format"), "{msg}");
    // A corrupt storage opens (storages are read lazily) and fails when read.
    let corrupt = open("corrupt_crc");
    let msg = checkpoint_error(corrupt.bytes("f32"));
    assert!(msg.contains("corrupt") && msg.contains("data/0"), "{msg}");
    assert_eq!(corrupt.bytes("f16").unwrap().into_owned(), open("state_dict").bytes("f16").unwrap().into_owned());
    let dir = tempfile::tempdir().unwrap();
    let err = convert_to_safetensors(&fixture("corrupt_crc.pt"), &dir.path().join("x.safetensors"), |n| Some(n.into()));
    assert!(checkpoint_error(err).contains("corrupt"));
    assert!(matches!(TorchCheckpoint::open(fixture("absent.pt")), Err(Error::Io { .. })));
}

#[test]
fn every_truncation_and_byte_flip_of_a_checkpoint_is_handled() {
    let bytes = std::fs::read(fixture("state_dict.pt")).unwrap();
    let use_all = |c: &TorchCheckpoint| {
        for name in c.names() {
            let _ = c.bytes(name);
            let _ = c.load(name, &Device::cpu());
        }
    };
    for len in 0..bytes.len() {
        match TorchCheckpoint::from_bytes("cut", bytes[..len].to_vec()) {
            Ok(c) => use_all(&c),
            Err(e) => assert!(matches!(e, Error::Checkpoint { .. }), "{len}: {e}"),
        }
    }
    for at in (0..bytes.len()).step_by(3) {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x5a;
        match TorchCheckpoint::from_bytes("flipped", flipped) {
            Ok(c) => use_all(&c),
            Err(e) => assert!(!e.to_string().contains('\n'), "{at}: {e}"),
        }
    }
}

//! Sharded checkpoints: model.safetensors.index.json and its shards written
//! to a temporary directory, opened with `Checkpoint::open`, every tensor
//! loaded.
//!
//! Mutations of the index: `weight_map` missing or of the wrong type, shard
//! paths that leave the directory (`../x`, absolute paths, the directory's
//! own absolute path), name nothing or the index itself, tensors mapped to
//! the wrong shard, non-string values, a huge map, deep nesting, duplicate
//! keys, every field set to wrong values, truncation and bit flips; and of
//! the shards: truncation, header-length lies, a missing shard.

use crate::json::{self, path_name, paths, Seg, WRONG_VALUES};
use crate::mutate;
use crate::safetensors::file_of;
use crate::{fill, Case, Outcome, Rng, TempDir};
use serde_json::{json, Value};
use tessera_tensor::safetensors::{serialize, Checkpoint, INDEX_FILE_NAME};
use tessera_tensor::{DType, Device, Tensor};

/// The target's name.
pub const TARGET: &str = "index";
/// Cases in the corpus.
pub const CASES: usize = 700;

/// The shard file names of the seed checkpoint.
pub const SHARDS: [&str; 2] = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];

/// Replaced by the case directory's absolute path when the case is written.
const DIR_PLACEHOLDER: &str = "@DIR@";

/// The seed's tensors per shard.
fn shard_tensors() -> [Vec<(&'static str, Tensor)>; 2] {
    let cpu = Device::cpu();
    let t = |v: &[f64], dtype, shape: Vec<usize>| Tensor::from_f64_slice(v, dtype, shape, &cpu).expect("seed tensor");
    [
        vec![
            ("model.a.weight", t(&[1.0, 2.0, 3.0, 4.0], DType::F32, vec![2, 2])),
            ("model.b.bias", t(&[0.5, -1.0, 2.0], DType::F16, vec![3])),
        ],
        vec![("model.c.ids", t(&[1.0, 2.0, 3.0, 4.0], DType::U8, vec![4])), ("model.d.empty", t(&[], DType::F32, vec![0, 2]))],
    ]
}

/// The seed index (a `metadata.total_size` and the `weight_map`).
pub fn seed_index() -> Value {
    let mut map = serde_json::Map::new();
    for (shard, tensors) in SHARDS.iter().zip(shard_tensors()) {
        for (name, _) in tensors {
            map.insert(name.to_string(), Value::from(*shard));
        }
    }
    json!({"metadata": {"total_size": 22}, "weight_map": map})
}

/// The seed checkpoint's files: the index first, then the shards.
pub fn seed_case() -> Case {
    let mut files = vec![(INDEX_FILE_NAME.to_string(), seed_index().to_string().into_bytes())];
    for (shard, tensors) in SHARDS.iter().zip(shard_tensors()) {
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
        files.push((shard.to_string(), serialize(&refs, None).expect("seed shard")));
    }
    Case::files("valid", files)
}

/// Shard names that are not plain relative paths inside the directory, or
/// name no shard, or the wrong file.
pub const SHARD_NAMES: [&str; 22] = [
    "../x.safetensors",
    "../model-00001-of-00002.safetensors",
    "sub/../model-00001-of-00002.safetensors",
    "./model-00001-of-00002.safetensors",
    "/etc/passwd",
    "/",
    "@DIR@/model-00001-of-00002.safetensors",
    "@DIR@",
    "",
    ".",
    "..",
    "model-00001-of-00002.safetensors/",
    "model-00002-of-00002.safetensors",
    "nonexistent.safetensors",
    "model.safetensors.index.json",
    "sub",
    "a\u{0}b",
    "C:\\x.safetensors",
    "\\\\server\\x",
    "~/x.safetensors",
    "\u{43c}odel.safetensors",
    "model-00001-of-00002.safetensors\u{0}",
];

/// Every mutation of the index text.
fn index_mutations(seed: &Case, rng: &mut Rng, out: &mut Vec<Case>) {
    let index = seed_index();
    let text = index.to_string();
    let with = |label: String, bytes: Vec<u8>| seed.with_main(label, bytes);
    for path in paths(&index, 8) {
        let name = path_name(&path);
        for (label, raw) in WRONG_VALUES {
            out.push(with(format!("{name}={label}"), json::replace(&index, &path, raw).into_bytes()));
        }
        out.push(with(format!("{name}=removed"), json::remove(&index, &path).into_bytes()));
    }
    let first = Seg::Key("model.a.weight".into());
    for shard in SHARD_NAMES {
        let raw = Value::from(shard).to_string();
        out.push(with(
            format!("shard={shard:?}"),
            json::replace(&index, &[Seg::Key("weight_map".into()), first.clone()], &raw).into_bytes(),
        ));
    }
    let weight_map = |raw: &str| json::replace(&index, &[Seg::Key("weight_map".into())], raw).into_bytes();
    out.push(with("weight_map=empty".into(), weight_map("{}")));
    out.push(with("weight_map=nested".into(), weight_map(&json::nested_arrays(10_000))));
    out.push(with("weight_map=nested-objects".into(), weight_map(&json::nested_objects(10_000))));
    out.push(with("weight_map=huge-missing".into(), weight_map(&json::huge_object(10_000, "\"model-00001-of-00002.safetensors\""))));
    out.push(with("weight_map=huge-nonexistent".into(), weight_map(&json::huge_object(10_000, "\"nope.safetensors\""))));
    out.push(with("weight_map=huge-value".into(), weight_map(&format!("{{\"model.a.weight\": \"{}\"}}", "x".repeat(100_000)))));
    out.push(with("weight_map=long-name".into(), weight_map(&format!("{{\"model.a.weight\": \"{}.safetensors\"}}", "m".repeat(300)))));
    out.push(with("weight_map=subset".into(), weight_map(r#"{"model.a.weight": "model-00001-of-00002.safetensors"}"#)));
    for dup in ["model.a.weight", "weight_map"] {
        if let Some(t) = json::duplicate_key(&text, dup, "\"model-00002-of-00002.safetensors\"") {
            out.push(with(format!("duplicate-{dup}"), t.into_bytes()));
        }
    }
    for (label, doc) in json::malformed_documents() {
        out.push(with(format!("index={label}"), doc));
    }
    for len in mutate::boundary_lengths(text.len(), &[text.len() / 2]) {
        out.push(with(format!("index-truncate@{len}"), mutate::truncate(text.as_bytes(), len)));
    }
    for i in 0..4 {
        if let Some((label, bytes)) = json::non_utf8(&text, rng) {
            out.push(with(format!("index-{label}#{i}"), bytes));
        }
    }
}

/// Mutations of the shards: truncation at their boundaries, length lies,
/// a shard missing, a shard replaced by the other.
fn shard_mutations(seed: &Case, out: &mut Vec<Case>) {
    for (i, shard) in SHARDS.iter().enumerate() {
        let bytes = seed.file(shard).expect("seed shard").to_vec();
        let data_start = 8 + u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        for len in mutate::boundary_lengths(bytes.len(), &[8, data_start]) {
            out.push(seed.with_file(format!("shard{i}-truncate@{len}"), shard, mutate::truncate(&bytes, len)));
        }
        for (label, value) in [("0", 0u64), ("u64-max", u64::MAX), ("file-len+1", bytes.len() as u64 + 1)] {
            out.push(seed.with_file(format!("shard{i}-len={label}"), shard, mutate::overwrite(&bytes, 0, &value.to_le_bytes())));
        }
        out.push(seed.without_file(format!("shard{i}-missing"), shard));
        out.push(seed.with_file(format!("shard{i}-empty-header"), shard, file_of("{}", &[])));
    }
    let other = seed.file(SHARDS[1]).expect("seed shard").to_vec();
    out.push(seed.with_file("shard0-is-shard1", SHARDS[0], other));
}

/// A random case: one index field set to a random wrong value, havoc in the
/// index text, or havoc in a shard.
fn random_case(seed: &Case, rng: &mut Rng, i: usize) -> Case {
    let index = seed_index();
    match rng.below(3) {
        0 => {
            let all = paths(&index, 8);
            let path = rng.pick(&all).clone();
            let (label, raw) = *rng.pick(&WRONG_VALUES);
            seed.with_main(format!("random#{i}/{}={label}", path_name(&path)), json::replace(&index, &path, raw).into_bytes())
        }
        1 => {
            let text = index.to_string().into_bytes();
            let (label, bytes) = mutate::havoc(&text, rng, 0..text.len());
            seed.with_main(format!("random#{i}/index-{label}"), bytes)
        }
        _ => {
            let shard = *rng.pick(&SHARDS);
            let bytes = seed.file(shard).expect("seed shard");
            let (label, mutated) = mutate::havoc(bytes, rng, 0..bytes.len());
            seed.with_file(format!("random#{i}/{shard}-{label}"), shard, mutated)
        }
    }
}

/// [`CASES`] cases from `seed`.
pub fn corpus(seed: u64) -> Vec<Case> {
    let mut rng = Rng::for_stream(seed, TARGET);
    let valid = seed_case();
    let mut systematic = vec![valid.clone()];
    index_mutations(&valid, &mut rng, &mut systematic);
    shard_mutations(&valid, &mut systematic);
    fill(systematic, CASES, &mut rng, |rng, i| random_case(&valid, rng, i))
}

/// Writes the case to a fresh directory (the index's `@DIR@` replaced by the
/// directory's path), opens it as a checkpoint and loads every tensor.
pub fn open_and_load(case: &Case) -> tessera_tensor::Result<usize> {
    let dir = TempDir::new(TARGET);
    let dir_path = dir.path().display().to_string();
    for (name, bytes) in &case.files {
        let bytes =
            if name == INDEX_FILE_NAME { replace_bytes(bytes, DIR_PLACEHOLDER.as_bytes(), dir_path.as_bytes()) } else { bytes.clone() };
        dir.write(name, &bytes);
    }
    let checkpoint = Checkpoint::open(dir.path())?;
    let cpu = Device::cpu();
    for name in checkpoint.names() {
        let info = checkpoint.info(name).cloned().expect("a listed tensor has an entry");
        assert_eq!(checkpoint.bytes(name)?.len(), info.size_in_bytes(), "invariant: tensor '{name}' stored bytes match its entry");
        let t = checkpoint.load(name, &cpu)?;
        assert_eq!(t.dims(), info.shape.as_slice(), "invariant: tensor '{name}' loads with its entry's shape");
        t.to_f64_vec()?;
    }
    Ok(checkpoint.len())
}

/// `bytes` with every `from` replaced by `to`.
fn replace_bytes(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Runs one case.
pub fn run(case: &Case) -> Outcome {
    Outcome::of(open_and_load(case))
}

/// libFuzzer's input: the bytes are the index; the shards are the seed's.
pub fn from_fuzz_input(data: &[u8]) -> Case {
    seed_case().with_main("libfuzzer", data.to_vec())
}

//! safetensors files: `SafeTensorsFile::from_bytes`, then every tensor's
//! `bytes` and `load` on the CPU, and its values read back.
//!
//! Seeds are files [`serialize`] writes (f32, f16, bf16, i64 and u8 tensors,
//! zero-sized and scalar ones, with and without metadata) and hand-built
//! headers of every dtype the format names. Mutations: truncation at every
//! region boundary (length prefix, header, each tensor's first and last
//! byte), the header length set to lies, every header field set to wrong
//! values, huge and overflowing shapes, bad dtypes, duplicate keys,
//! non-UTF-8 and deeply nested headers, swapped offsets, and random bit
//! flips and interesting bytes in the header and the data.

use crate::json::{self, path_name, paths, Seg, WRONG_VALUES};
use crate::mutate;
use crate::{fill, Case, Outcome, Rng};
use serde_json::Value;
use std::collections::BTreeMap;
use tessera_tensor::safetensors::{serialize, FileDType, SafeTensorsFile, MAX_HEADER_LEN};
use tessera_tensor::{DType, Device, Tensor};

/// The target's name.
pub const TARGET: &str = "safetensors";
/// Cases in the corpus.
pub const CASES: usize = 5000;

/// The name files are given in error messages.
const FILE_NAME: &str = "fuzz.safetensors";

/// Shapes that overflow, nearly overflow or hold nothing, for every
/// tensor's `shape`.
pub const SHAPES: [&str; 14] = [
    "[0, 4294967296, 4294967296]",
    "[4294967296, 4294967296, 0]",
    "[18446744073709551615]",
    "[18446744073709551615, 0]",
    "[4294967296, 4294967296]",
    "[3037000500, 3037000500]",
    "[2305843009213693952]",
    "[4611686018427387904]",
    "[0, 18446744073709551615, 18446744073709551615, 18446744073709551615]",
    "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]",
    "[-1]",
    "[1.5]",
    "[\"2\"]",
    "[0]",
];

/// `data_offsets` values that are reversed, short, long, huge or mistyped.
pub const OFFSETS: [&str; 10] = [
    "[0]",
    "[0, 0, 0]",
    "[8, 0]",
    "[0, 18446744073709551615]",
    "[18446744073709551615, 18446744073709551615]",
    "[18446744073709551614, 18446744073709551615]",
    "[-1, 0]",
    "[0.5, 1]",
    "[\"0\", \"4\"]",
    "[0, 18446744073709551616]",
];

/// Dtype names the format does not know, or knows in another spelling.
pub const BAD_DTYPES: [&str; 8] = ["\"F33\"", "\"f32\"", "\"\"", "\"F32 \"", "\"float32\"", "\"F8_E4M3FN\"", "32", "[\"F32\"]"];

/// A file of `header` (JSON text, padded with spaces to 8 bytes) and `data`.
pub fn file_of(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.as_bytes().to_vec();
    h.resize(h.len().next_multiple_of(8), b' ');
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    out
}

/// A file of raw header bytes (not padded, possibly not UTF-8) and `data`.
fn file_of_raw(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// A seed: a name, its header as JSON and its data buffer.
#[derive(Clone, Debug)]
pub struct Seed {
    /// The seed's name (first part of its cases' names).
    pub name: &'static str,
    /// The whole file.
    pub bytes: Vec<u8>,
    /// The parsed header.
    pub header: Value,
    /// The data buffer.
    pub data: Vec<u8>,
}

impl Seed {
    fn parse(name: &'static str, bytes: Vec<u8>) -> Seed {
        let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        let header = serde_json::from_slice(&bytes[8..8 + len]).expect("seed header is JSON");
        let data = bytes[8 + len..].to_vec();
        Seed { name, bytes, header, data }
    }

    /// Offset of the data buffer.
    fn data_start(&self) -> usize {
        self.bytes.len() - self.data.len()
    }

    /// The tensor names of the header (without `__metadata__`).
    fn tensors(&self) -> Vec<String> {
        self.header.as_object().map(|m| m.keys().filter(|k| *k != "__metadata__").cloned().collect()).unwrap_or_default()
    }

    /// Where the regions of the file begin and end: the length prefix, the
    /// header, each tensor's bytes.
    fn boundaries(&self) -> Vec<usize> {
        let start = self.data_start();
        let mut out = vec![8, start];
        for name in self.tensors() {
            if let Some(offsets) = self.header[&name]["data_offsets"].as_array() {
                out.extend(offsets.iter().filter_map(Value::as_u64).map(|o| start + o as usize));
            }
        }
        out
    }

    /// The file with its header replaced by `header` (data unchanged).
    fn with_header(&self, header: &str) -> Vec<u8> {
        file_of(header, &self.data)
    }
}

fn tensor(values: &[f64], dtype: DType, shape: Vec<usize>) -> Tensor {
    Tensor::from_f64_slice(values, dtype, shape, &Device::cpu()).expect("seed tensor")
}

/// Values that survive every dtype (small integers, some negative).
fn values(n: usize) -> Vec<f64> {
    (0..n).map(|i| (i as f64) - 2.0).collect()
}

fn serialized(tensors: &[(&str, Tensor)], metadata: Option<&BTreeMap<String, String>>) -> Vec<u8> {
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    serialize(&refs, metadata).expect("seed serializes")
}

/// A hand-built file holding one tensor of every dtype of the format, 8
/// elements each (a whole number of bytes for the sub-byte types).
fn every_dtype() -> Vec<u8> {
    let mut entries = Vec::new();
    let mut data = Vec::new();
    for (i, dtype) in FileDType::ALL.into_iter().enumerate() {
        let bytes = 8 * dtype.bits() / 8;
        let begin = data.len();
        // Bytes 0..: small values in every encoding, and U64 values above
        // i64::MAX in the second half of the U64 tensor.
        data.extend((0..bytes).map(|b| ((b * 37 + i * 11) % 256) as u8));
        if dtype == FileDType::U64 {
            data[begin + bytes - 1] = 0x80;
        }
        entries.push(format!(
            "\"t_{}\":{{\"dtype\":\"{}\",\"shape\":[2,4],\"data_offsets\":[{begin},{}]}}",
            dtype.name(),
            dtype.name(),
            data.len()
        ));
    }
    file_of(&format!("{{{}}}", entries.join(",")), &data)
}

/// The seed files.
pub fn seeds() -> Vec<Seed> {
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("note".to_string(), "\u{e9}\u{1f680}".to_string());
    let mixed = serialized(
        &[
            ("a.weight", tensor(&values(6), DType::F32, vec![2, 3])),
            ("b.half", tensor(&values(4), DType::F16, vec![4])),
            ("c.bf16", tensor(&values(4), DType::BF16, vec![2, 2])),
            ("d.ids", tensor(&values(3), DType::I64, vec![3])),
            ("e.bytes", tensor(&[1.0, 2.0, 3.0, 4.0, 5.0], DType::U8, vec![5])),
            ("f.empty", tensor(&[], DType::F32, vec![0, 3])),
            ("g.scalar", tensor(&[7.0], DType::F32, vec![])),
            ("h.none", tensor(&[], DType::U8, vec![0])),
        ],
        None,
    );
    let with_meta = serialized(&[("w", tensor(&values(3), DType::F32, vec![3])), ("z", tensor(&[], DType::F16, vec![2, 0]))], Some(&meta));
    let empty = serialized(&[], None);
    let zero_huge = file_of(
        r#"{"big":{"dtype":"U8","shape":[0,4294967296,4294967296],"data_offsets":[0,0]},"one":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
        &1f32.to_le_bytes(),
    );
    vec![
        Seed::parse("mixed", mixed),
        Seed::parse("meta", with_meta),
        Seed::parse("empty", empty),
        Seed::parse("dtypes", every_dtype()),
        Seed::parse("zero-huge", zero_huge),
    ]
}

/// Truncations at every region boundary of every seed.
fn truncations(seed: &Seed, out: &mut Vec<Case>) {
    for len in mutate::boundary_lengths(seed.bytes.len(), &seed.boundaries()) {
        out.push(Case::bytes(format!("{}/truncate@{len}", seed.name), mutate::truncate(&seed.bytes, len)));
    }
}

/// The 8-byte header length set to lies.
fn length_lies(seed: &Seed, out: &mut Vec<Case>) {
    let len = seed.bytes.len() as u64;
    let header = seed.data_start() as u64 - 8;
    let lies = [
        ("0", 0),
        ("1", 1),
        ("file-len", len),
        ("file-len+1", len + 1),
        ("u64-max", u64::MAX),
        ("max+1", MAX_HEADER_LEN + 1),
        ("max", MAX_HEADER_LEN),
        ("header-1", header.saturating_sub(1)),
        ("header+1", header + 1),
        ("header+8", header + 8),
        ("2^63", 1 << 63),
        ("2^32", 1 << 32),
    ];
    for (label, value) in lies {
        out.push(Case::bytes(format!("{}/len={label}", seed.name), mutate::overwrite(&seed.bytes, 0, &value.to_le_bytes())));
    }
}

/// Every header field set to every wrong value, removed, and the shape,
/// offset and dtype fields set to their special lists.
fn field_values(seed: &Seed, out: &mut Vec<Case>) {
    for path in paths(&seed.header, 8) {
        let name = path_name(&path);
        let case = |label: &str, header: String| Case::bytes(format!("{}/{name}={label}", seed.name), seed.with_header(&header));
        for (label, raw) in WRONG_VALUES {
            out.push(case(label, json::replace(&seed.header, &path, raw)));
        }
        out.push(case("removed", json::remove(&seed.header, &path)));
        let specials: &[&str] = match path.last() {
            Some(Seg::Key(k)) if k == "shape" => &SHAPES,
            Some(Seg::Key(k)) if k == "data_offsets" => &OFFSETS,
            Some(Seg::Key(k)) if k == "dtype" => &BAD_DTYPES,
            _ => &[],
        };
        for raw in specials {
            out.push(case(raw, json::replace(&seed.header, &path, raw)));
        }
        if matches!(path.last(), Some(Seg::Key(k)) if k == "dtype") {
            for dtype in FileDType::ALL {
                out.push(case(dtype.name(), json::replace(&seed.header, &path, &format!("\"{}\"", dtype.name()))));
            }
        }
    }
}

/// Header-level mutations: extra and duplicate keys, metadata of the wrong
/// shape, swapped offsets, non-UTF-8 bytes, malformed documents.
fn header_mutations(seed: &Seed, rng: &mut Rng, out: &mut Vec<Case>) {
    let header = seed.header.to_string();
    let tensors = seed.tensors();
    let mut push = |label: String, bytes: Vec<u8>| out.push(Case::bytes(format!("{}/{label}", seed.name), bytes));
    for name in &tensors {
        let entry = seed.header[name].to_string();
        if let Some(h) = json::duplicate_key(&header, name, &entry) {
            push(format!("duplicate-tensor-{name}"), seed.with_header(&h));
        }
        let extra = json::replace(&seed.header, &[Seg::Key(name.clone()), Seg::Key("extra".into())], "[1]");
        push(format!("{name}.extra-field"), seed.with_header(&extra));
    }
    // A field given twice inside the first entry, the same and another value.
    for (field, other) in [("dtype", "\"F64\""), ("shape", "[1]"), ("data_offsets", "[0, 0]")] {
        let Some(first) = tensors.first() else { break };
        let same = seed.header[first][field].to_string();
        for (label, raw) in [("same", same.as_str()), ("other", other)] {
            if let Some(h) = json::duplicate_key(&header, field, raw) {
                push(format!("duplicate-field-{field}-{label}"), seed.with_header(&h));
            }
        }
    }
    for (label, raw) in [
        ("meta-array", "[]"),
        ("meta-number", "1"),
        ("meta-value-number", "{\"a\": 1}"),
        ("meta-value-null", "{\"a\": null}"),
        ("meta-value-object", "{\"a\": {}}"),
        ("meta-nested", "{\"a\": [[[[[[[[]]]]]]]]}"),
    ] {
        push(label.to_string(), seed.with_header(&json::replace(&seed.header, &[Seg::Key("__metadata__".into())], raw)));
    }
    let meta = format!("{{\"__metadata__\":{{}},{}", &header[1..]);
    if header.len() > 2 {
        push("two-metadata".into(), seed.with_header(&json::duplicate_key(&meta, "__metadata__", "{}").unwrap_or(meta)));
    }
    push(
        "empty-name".into(),
        seed.with_header(&json::replace(
            &seed.header,
            &[Seg::Key(String::new())],
            "{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}",
        )),
    );
    // Offsets of two tensors swapped, and all offsets shifted by one.
    if tensors.len() >= 2 {
        let (a, b) = (&tensors[0], &tensors[tensors.len() - 1]);
        let mut doc = seed.header.clone();
        let oa = doc[a]["data_offsets"].clone();
        doc[a]["data_offsets"] = doc[b]["data_offsets"].clone();
        doc[b]["data_offsets"] = oa;
        push("swap-offsets".into(), seed.with_header(&doc.to_string()));
    }
    let mut shifted = seed.header.clone();
    for name in &tensors {
        if let Some(offsets) = shifted[name]["data_offsets"].as_array_mut() {
            for o in offsets.iter_mut() {
                *o = Value::from(o.as_u64().unwrap_or(0) + 1);
            }
        }
    }
    push("shift-offsets".into(), file_of(&shifted.to_string(), &[seed.data.as_slice(), &[0]].concat()));
    push("extra-data-byte".into(), [seed.bytes.as_slice(), &[0]].concat());
    // Whitespace other than spaces as padding, and no padding at all.
    push("nul-padding".into(), file_of_raw(&[header.as_bytes(), &[0; 5]].concat(), &seed.data));
    push("tab-padding".into(), file_of_raw(&[header.as_bytes(), b"\t\n\r"].concat(), &seed.data));
    push("unpadded".into(), file_of_raw(header.as_bytes(), &seed.data));
    for i in 0..3 {
        if let Some((label, h)) = json::non_utf8(&header, rng) {
            push(format!("{label}#{i}"), file_of_raw(&h, &seed.data));
        }
    }
    for (label, doc) in json::malformed_documents() {
        push(format!("header={label}"), file_of_raw(&doc, &seed.data));
    }
}

/// The systematic cases: every mutation above applied to every seed.
fn systematic(seeds: &[Seed], rng: &mut Rng) -> Vec<Case> {
    let mut out = vec![Case::bytes("empty-file", Vec::new()), Case::bytes("seven-bytes", vec![0; 7])];
    for seed in seeds {
        out.push(Case::bytes(format!("{}/valid", seed.name), seed.bytes.clone()));
        truncations(seed, &mut out);
        length_lies(seed, &mut out);
        header_mutations(seed, rng, &mut out);
        field_values(seed, &mut out);
    }
    out
}

/// A random case: havoc in the header or the data of a random seed, or a
/// random header field set to a random wrong value.
fn random_case(seeds: &[Seed], rng: &mut Rng, i: usize) -> Case {
    let seed = rng.pick(seeds);
    let start = seed.data_start();
    let (label, bytes) = match rng.below(4) {
        0 => mutate::havoc(&seed.bytes, rng, 0..start),
        1 => mutate::havoc(&seed.bytes, rng, start..seed.bytes.len()),
        2 => mutate::havoc(&seed.bytes, rng, 0..seed.bytes.len()),
        _ => {
            let all = paths(&seed.header, 8);
            if all.is_empty() {
                mutate::havoc(&seed.bytes, rng, 0..start)
            } else {
                let path = rng.pick(&all).clone();
                let (label, raw) = *rng.pick(&WRONG_VALUES);
                (format!("{}={label}", path_name(&path)), seed.with_header(&json::replace(&seed.header, &path, raw)))
            }
        }
    };
    Case::bytes(format!("{}/random#{i}/{label}", seed.name), bytes)
}

/// [`CASES`] cases from `seed`.
pub fn corpus(seed: u64) -> Vec<Case> {
    let mut rng = Rng::for_stream(seed, TARGET);
    let seeds = seeds();
    let systematic = systematic(&seeds, &mut rng);
    fill(systematic, CASES, &mut rng, |rng, i| random_case(&seeds, rng, i))
}

/// Loads tensor `name` (stored bytes, loaded tensor, its values), checking
/// that what loads matches its header entry.
fn load_one(file: &SafeTensorsFile, name: &str, device: &Device) -> tessera_tensor::Result<()> {
    let info = file.info(name).cloned().expect("a listed tensor has an entry");
    let raw = file.bytes(name)?;
    assert_eq!(raw.len(), info.size_in_bytes(), "invariant: tensor '{name}' stored bytes match its entry");
    let t = file.load(name, device)?;
    assert_eq!((t.dims(), t.dtype()), (info.shape.as_slice(), info.dtype), "invariant: tensor '{name}' loads as its entry says");
    let values = t.to_f64_vec()?;
    assert_eq!(values.len(), info.numel(), "invariant: tensor '{name}' has as many values as elements");
    Ok(())
}

/// Opens the case's bytes and loads every tensor, each even when another
/// fails to load; the first error is returned.
pub fn load_all(bytes: &[u8]) -> tessera_tensor::Result<usize> {
    let file = SafeTensorsFile::from_bytes(FILE_NAME, bytes.to_vec())?;
    let cpu = Device::cpu();
    let results: Vec<_> = file.names().into_iter().map(|name| load_one(&file, name, &cpu)).collect();
    results.into_iter().collect::<tessera_tensor::Result<Vec<()>>>()?;
    Ok(file.len())
}

/// Runs one case.
pub fn run(case: &Case) -> Outcome {
    Outcome::of(load_all(case.main()))
}

/// libFuzzer's input: the bytes are the file.
pub fn from_fuzz_input(data: &[u8]) -> Case {
    Case::bytes("libfuzzer", data.to_vec())
}

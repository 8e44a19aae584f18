//! Image processor configs: `ImageProcessor::from_json` on mutated
//! preprocessor_config.json (transformers 4.x, fields at the top level) and
//! processor_config.json (5.x, fields under `"image_processor"`), with
//! CLIP's defaults; a processor that loads preprocesses a small image into
//! a batch tensor.
//!
//! Every field (and every field of the `size` and `crop_size` objects) is
//! set to every wrong value and to sizes that are zero, one, huge or
//! overflowing; plus filters, means and standard deviations of the wrong
//! length or zero, malformed documents, duplicate keys, truncation and
//! non-UTF-8 bytes.

use crate::json::{self, path_name, paths, Seg, WRONG_VALUES};
use crate::mutate;
use crate::{fill, Case, Outcome, Rng};
use serde_json::Value;
use tessera_clip::clip_processor;
use tessera_tensor::Device;
use tessera_vision::{ImageProcessor, RgbImage};

/// The target's name.
pub const TARGET: &str = "processor";
/// Cases in the corpus.
pub const CASES: usize = 2000;

/// The parity fixtures' ViT-B/32 preprocessor_config.json (old OpenAI form).
const B32: &str = include_str!("../../clip/fixtures/b32/preprocessor_config.json");
/// The parity fixtures' ViT-L/14 preprocessor_config.json.
const L14: &str = include_str!("../../clip/fixtures/l14/preprocessor_config.json");

/// The seeds: (name, file name, text).
pub fn seeds() -> Vec<(&'static str, &'static str, String)> {
    let v4 = r#"{"crop_size": {"height": 224, "width": 224}, "do_center_crop": true, "do_normalize": true, "do_rescale": true,
      "do_resize": true, "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
      "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "rescale_factor": 0.00392156862745098,
      "size": {"shortest_edge": 224}}"#;
    let v5 = r#"{"processor_class": "CLIPProcessor", "image_processor": {"size": {"height": 64, "width": 48},
      "do_center_crop": false, "resample": 2, "image_mean": 0.5, "image_std": [0.5, 0.5, 0.5], "do_convert_rgb": true}}"#;
    vec![
        ("b32", "preprocessor_config.json", B32.to_string()),
        ("l14", "preprocessor_config.json", L14.to_string()),
        ("v4", "preprocessor_config.json", v4.to_string()),
        ("v5", "processor_config.json", v5.to_string()),
        ("defaults", "preprocessor_config.json", "{}".to_string()),
    ]
}

/// Sizes: zero, one, odd, large, huge and overflowing, and mistyped.
const SIZES: [&str; 12] = [
    "1",
    "7",
    "2000",
    "16385",
    "65536",
    "4294967296",
    "18446744073709551615",
    "{\"shortest_edge\": 0}",
    "{\"shortest_edge\": 20000}",
    "{\"height\": 1, \"width\": 100000}",
    "{\"height\": 65536, \"width\": 65536}",
    "{\"shortest_edge\": 224, \"longest_edge\": 448}",
];

/// Values for particular fields besides [`WRONG_VALUES`].
fn special_values(key: &str) -> &'static [&'static str] {
    match key {
        "size" | "crop_size" => &SIZES,
        "shortest_edge" | "height" | "width" | "longest_edge" => &["1", "2000", "65536", "4294967296"],
        "resample" => &["0", "1", "2", "3", "4", "5", "6", "4294967296"],
        "image_mean" | "image_std" => &["[0, 0, 0]", "[1, 1]", "[1, 1, 1, 1]", "[1e308, 1e-308, 5e-324]", "[\"0.5\", 1, 1]", "0"],
        "rescale_factor" => &["0", "1e308", "-1", "5e-324"],
        "image_processor" => &["{}", "[]", "null", "{\"image_processor\": {}}"],
        _ => &[],
    }
}

fn case_of(name: String, file: &str, text: String) -> Case {
    Case::files(name, vec![(file.to_string(), text.into_bytes())])
}

/// Every field set to every wrong value, its special values, and removed.
fn field_cases(seed: &str, file: &str, doc: &Value, out: &mut Vec<Case>) {
    for path in paths(doc, 8) {
        let name = path_name(&path);
        let key = match path.last() {
            Some(Seg::Key(k)) => k.as_str(),
            _ => "",
        };
        let mut raws: Vec<&str> = WRONG_VALUES.iter().map(|v| v.1).collect();
        raws.extend(special_values(key).iter().filter(|r| !raws.contains(r)).collect::<Vec<_>>());
        for raw in raws {
            out.push(case_of(format!("{seed}/{name}={raw}"), file, json::replace(doc, &path, raw)));
        }
        out.push(case_of(format!("{seed}/{name}=removed"), file, json::remove(doc, &path)));
    }
    // Fields a seed lacks, added.
    let nested = doc.get("image_processor").is_some();
    for key in ["size", "crop_size", "resample", "image_std", "do_center_crop", "do_resize"] {
        let mut path = vec![Seg::Key(key.into())];
        if nested {
            path.insert(0, Seg::Key("image_processor".into()));
        }
        if json::at(doc, &path).is_some() {
            continue;
        }
        for raw in special_values(key).iter().chain(["null", "\"x\""].iter()) {
            out.push(case_of(format!("{seed}/+{key}={raw}"), file, json::replace(doc, &path, raw)));
        }
    }
}

/// Text-level mutations: duplicate keys, truncation, non-UTF-8.
fn text_cases(seed: &str, file: &str, text: &str, rng: &mut Rng, out: &mut Vec<Case>) {
    for (key, raw) in [("size", "0"), ("crop_size", "\"x\""), ("image_processor", "7"), ("resample", "99")] {
        if let Some(t) = json::duplicate_key(text, key, raw) {
            out.push(case_of(format!("{seed}/duplicate-{key}"), file, t));
        }
    }
    let step = (text.len() / 6).max(1);
    let cuts: Vec<usize> = (1..6).map(|i| i * step).collect();
    for len in mutate::boundary_lengths(text.len(), &cuts) {
        out.push(Case::files(format!("{seed}/truncate@{len}"), vec![(file.to_string(), mutate::truncate(text.as_bytes(), len))]));
    }
    for i in 0..3 {
        if let Some((label, bytes)) = json::non_utf8(text, rng) {
            out.push(Case::files(format!("{seed}/{label}#{i}"), vec![(file.to_string(), bytes)]));
        }
    }
}

/// A random case: a random field set to a random wrong or special value, or
/// havoc in the text.
fn random_case(docs: &[(&'static str, &'static str, String, Value)], rng: &mut Rng, i: usize) -> Case {
    let (seed, file, text, doc) = rng.pick(docs);
    let all = paths(doc, 8);
    if !all.is_empty() && rng.one_in(2) {
        let path = rng.pick(&all).clone();
        let (_, raw) = *rng.pick(&WRONG_VALUES);
        return case_of(format!("{seed}/random#{i}/{}={raw}", path_name(&path)), file, json::replace(doc, &path, raw));
    }
    let (label, bytes) = mutate::havoc(text.as_bytes(), rng, 0..text.len());
    Case::files(format!("{seed}/random#{i}/{label}"), vec![(file.to_string(), bytes)])
}

/// [`CASES`] cases from `seed`.
pub fn corpus(seed: u64) -> Vec<Case> {
    let mut rng = Rng::for_stream(seed, TARGET);
    let docs: Vec<(&'static str, &'static str, String, Value)> = seeds()
        .into_iter()
        .map(|(name, file, text)| {
            let doc = serde_json::from_str(&text).expect("seed processor config is JSON");
            (name, file, text, doc)
        })
        .collect();
    let mut systematic = Vec::new();
    for (label, bytes) in json::malformed_documents() {
        systematic.push(Case::files(format!("processor={label}"), vec![("preprocessor_config.json".into(), bytes)]));
    }
    for (name, file, text, doc) in &docs {
        systematic.push(case_of(format!("{name}/valid"), file, text.clone()));
        field_cases(name, file, doc, &mut systematic);
        text_cases(name, file, text, &mut rng, &mut systematic);
    }
    fill(systematic, CASES, &mut rng, |rng, i| random_case(&docs, rng, i))
}

/// A 13x7 test image (odd sizes, a gradient).
fn test_image() -> RgbImage {
    RgbImage::from_fn(13, 7, |x, y| ::image::Rgb([(x * 19) as u8, (y * 36) as u8, ((x + y) * 12) as u8]))
}

/// Parses the config with CLIP's defaults and preprocesses the test image
/// into a batch.
fn load_and_preprocess(case: &Case) -> tessera_hf::Result<()> {
    let (file, bytes) = case.files.first().map(|(f, b)| (f.as_str(), b.as_slice())).unwrap_or_default();
    let text = std::str::from_utf8(bytes).map_err(|e| tessera_hf::Error::config(file, format!("not UTF-8: {e}")))?;
    let processor = ImageProcessor::from_json(text, file, &clip_processor(224))?;
    let image = test_image();
    let batch = processor.batch(&[&image, &image], &Device::cpu())?;
    assert_eq!(batch.dims()[..2], [2, 3], "invariant: a batch of two RGB images");
    Ok(())
}

/// Runs one case.
pub fn run(case: &Case) -> Outcome {
    Outcome::of(load_and_preprocess(case))
}

/// libFuzzer's input: the bytes are a preprocessor_config.json.
pub fn from_fuzz_input(data: &[u8]) -> Case {
    Case::files("libfuzzer", vec![("preprocessor_config.json".into(), data.to_vec())])
}

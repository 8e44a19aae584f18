//! CLIP's config.json: `ClipConfig::from_json` on mutated configs (and the
//! sizes the loader derives from an accepted one), and full loads of a tiny
//! checkpoint directory ([`tiny_clip`](crate::tiny_clip)) with a mutated
//! config.json through `Clip::from_dir`, embedding a text and an image when
//! it loads.
//!
//! Seeds: the parity fixtures' ViT-B/32 and ViT-L/14 configs, the tiny
//! model's, `{}` (transformers' defaults) and a legacy `*_config_dict`
//! config. Every field is set to every wrong value (wrong types, zero,
//! negative, float, huge: 1e12, 2^62, u64::MAX, 2^64) and removed; plus
//! activation names, model types, duplicate keys, deep nesting, truncation
//! and non-UTF-8 bytes.

use crate::json::{self, path_name, paths, Seg, WRONG_VALUES};
use crate::mutate;
use crate::tiny_clip::{self, checkpoint_files};
use crate::{fill, Case, Outcome, Rng, TempDir};
use serde_json::Value;
use tessera_clip::{Clip, ClipConfig, ClipOptions, RgbImage};

/// The target's name.
pub const TARGET: &str = "config";
/// Cases in the corpus (parse-only and full loads together).
pub const CASES: usize = 3000;

/// The name configs are given in error messages.
const FILE_NAME: &str = "config.json";

/// The parity fixtures' ViT-B/32 config.
const B32: &str = include_str!("../../clip/fixtures/b32/config.json");
/// The parity fixtures' ViT-L/14 (two-layer) config.
const L14: &str = include_str!("../../clip/fixtures/l14/config.json");

/// The parse-only seeds: (name, config.json text).
pub fn seeds() -> Vec<(&'static str, String)> {
    let legacy = r#"{"model_type": "clip", "projection_dim": 16,
      "text_config_dict": {"hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64},
      "vision_config_dict": {"hidden_size": 32, "num_attention_heads": 4, "image_size": [32, 32], "patch_size": [16, 16]},
      "text_config": {"hidden_size": 64}}"#;
    vec![
        ("b32", B32.to_string()),
        ("l14", L14.to_string()),
        ("tiny", tiny_clip::config_json()),
        ("defaults", "{}".into()),
        ("legacy", legacy.into()),
    ]
}

/// Values for particular fields besides [`WRONG_VALUES`].
fn special_values(key: &str) -> &'static [&'static str] {
    match key {
        "hidden_act" => {
            &["\"gelu\"", "\"quick_gelu\"", "\"relu\"", "\"silu\"", "\"gelu_new\"", "\"gelu_pytorch_tanh\"", "\"swishy\"", "\"GELU\""]
        }
        "model_type" => &["\"clip\"", "\"siglip\"", "\"CLIP\"", "\"clip_vision_model\""],
        "image_size" | "patch_size" => {
            &["[32, 32]", "[32, 16]", "[0, 0]", "[32]", "[32, 32, 32]", "[-1, -1]", "[4294967296, 4294967296]", "65536"]
        }
        "layer_norm_eps" => &["1e300", "1e-300", "5e-324", "-1e-5"],
        "eos_token_id" | "bos_token_id" | "pad_token_id" => &["2", "4294967295", "[914, 2]", "[]", "[-1]"],
        _ => &[],
    }
}

/// Every field of `doc` set to every wrong value and to its special values,
/// and removed.
fn field_cases(seed: &str, doc: &Value, out: &mut Vec<Case>) {
    for path in paths(doc, 8) {
        let name = path_name(&path);
        let key = match path.last() {
            Some(Seg::Key(k)) => k.as_str(),
            _ => "",
        };
        let raws = WRONG_VALUES.iter().map(|(l, r)| (l.to_string(), *r)).chain(special_values(key).iter().map(|r| (r.to_string(), *r)));
        for (label, raw) in raws {
            out.push(Case::bytes(format!("{seed}/{name}={label}"), json::replace(doc, &path, raw).into_bytes()));
        }
        out.push(Case::bytes(format!("{seed}/{name}=removed"), json::remove(doc, &path).into_bytes()));
    }
    for sub in ["text_config", "vision_config"] {
        for (label, raw) in [("null", "null"), ("number", "5"), ("array", "[]"), ("nested", &json::nested_objects(10_000))] {
            out.push(Case::bytes(format!("{seed}/{sub}={label}"), json::replace(doc, &[Seg::Key(sub.into())], raw).into_bytes()));
            let dict = format!("{sub}_dict");
            out.push(Case::bytes(format!("{seed}/{dict}={label}"), json::replace(doc, &[Seg::Key(dict.clone())], raw).into_bytes()));
        }
    }
}

/// Text-level mutations of one seed: duplicate keys, truncation, non-UTF-8.
fn text_cases(seed: &str, text: &str, rng: &mut Rng, out: &mut Vec<Case>) {
    for key in ["hidden_size", "text_config", "model_type", "image_size"] {
        for raw in ["\"x\"", "0", "1"] {
            if let Some(t) = json::duplicate_key(text, key, raw) {
                out.push(Case::bytes(format!("{seed}/duplicate-{key}={raw}"), t.into_bytes()));
            }
        }
    }
    let bytes = text.as_bytes();
    let step = (bytes.len() / 8).max(1);
    let cuts: Vec<usize> = (1..8).map(|i| i * step).collect();
    for len in mutate::boundary_lengths(bytes.len(), &cuts) {
        out.push(Case::bytes(format!("{seed}/truncate@{len}"), mutate::truncate(bytes, len)));
    }
    for i in 0..3 {
        if let Some((label, b)) = json::non_utf8(text, rng) {
            out.push(Case::bytes(format!("{seed}/{label}#{i}"), b));
        }
    }
}

/// The configs a full load is tried with: (field path, raw value).
/// Each is the tiny model's config with that one field changed.
pub fn full_load_mutations() -> Vec<(&'static str, &'static str)> {
    vec![
        ("", ""),
        ("text_config.num_hidden_layers", "0"),
        ("text_config.num_hidden_layers", "2"),
        ("text_config.num_hidden_layers", "1000000000000"),
        ("text_config.num_hidden_layers", "4611686018427387904"),
        ("text_config.num_hidden_layers", "1e12"),
        ("vision_config.num_hidden_layers", "0"),
        ("vision_config.num_hidden_layers", "4611686018427387904"),
        ("vision_config.num_hidden_layers", "18446744073709551615"),
        ("text_config.hidden_size", "64"),
        ("text_config.hidden_size", "4"),
        ("text_config.hidden_size", "1099511627776"),
        ("text_config.hidden_size", "4611686018427387904"),
        ("vision_config.hidden_size", "1099511627776"),
        ("vision_config.hidden_size", "4611686018427387904"),
        ("text_config.intermediate_size", "1"),
        ("text_config.intermediate_size", "4611686018427387904"),
        ("vision_config.intermediate_size", "1099511627776"),
        ("text_config.num_attention_heads", "1"),
        ("text_config.num_attention_heads", "32"),
        ("vision_config.num_attention_heads", "3"),
        ("text_config.max_position_embeddings", "1"),
        ("text_config.max_position_embeddings", "2"),
        ("text_config.max_position_embeddings", "2147483648"),
        ("text_config.max_position_embeddings", "4611686018427387904"),
        ("text_config.vocab_size", "1"),
        ("text_config.vocab_size", "916"),
        ("text_config.vocab_size", "4611686018427387904"),
        ("text_config.eos_token_id", "2"),
        ("text_config.eos_token_id", "0"),
        ("text_config.eos_token_id", "4294967295"),
        ("text_config.bos_token_id", "4294967295"),
        ("text_config.pad_token_id", "4294967295"),
        ("vision_config.image_size", "16"),
        ("vision_config.image_size", "[32, 32]"),
        ("vision_config.image_size", "65536"),
        ("vision_config.image_size", "4611686018427387904"),
        ("vision_config.patch_size", "1"),
        ("vision_config.patch_size", "32"),
        ("vision_config.patch_size", "4611686018427387904"),
        ("vision_config.num_channels", "1"),
        ("vision_config.num_channels", "4611686018427387904"),
        ("projection_dim", "1"),
        ("projection_dim", "4611686018427387904"),
        ("text_config.layer_norm_eps", "1e300"),
        ("text_config.layer_norm_eps", "5e-324"),
        ("vision_config.hidden_act", "\"gelu\""),
        ("text_config.hidden_act", "\"relu\""),
        ("logit_scale_init_value", "1e308"),
        ("model_type", "\"siglip\""),
        ("text_config", "{}"),
    ]
}

/// The full-load cases: the tiny checkpoint with each mutated config.
fn full_load_cases() -> Vec<Case> {
    let doc: Value = serde_json::from_str(&tiny_clip::config_json()).expect("tiny config is JSON");
    let mut out = Vec::new();
    for (path, raw) in full_load_mutations() {
        let (name, config) = if path.is_empty() {
            ("full/valid".to_string(), doc.to_string())
        } else {
            let segs: Vec<Seg> = path.split('.').map(|k| Seg::Key(k.into())).collect();
            (format!("full/{path}={raw}"), json::replace(&doc, &segs, raw))
        };
        out.push(Case::files(name, checkpoint_files(config.into_bytes())));
    }
    // A tokenizer whose ids lie beyond the embedding: the vocabulary is no
    // larger than the config says, but one id is out of its range.
    let tokenizer: Value = serde_json::from_slice(tiny_clip::TOKENIZER_JSON).expect("fixture tokenizer is JSON");
    let token = [Seg::Key("model".into()), Seg::Key("vocab".into()), Seg::Key("a</w>".into())];
    for id in ["915", "100000", "4294967295"] {
        let files = checkpoint_files(doc.to_string().into_bytes());
        let case = Case::files(format!("full/tokenizer:vocab.a</w>={id}"), files);
        out.push(case.with_file(
            format!("full/tokenizer:vocab.a</w>={id}"),
            "tokenizer.json",
            json::replace(&tokenizer, &token, id).into_bytes(),
        ));
    }
    out.push(Case::files("full/config=empty-object", checkpoint_files(b"{}".to_vec())));
    out.push(Case::files("full/config=nested", checkpoint_files(json::nested_arrays(10_000).into_bytes())));
    out
}

/// A random parse-only case: a random field of a random seed set to a
/// random wrong value, or havoc in its text.
fn random_case(docs: &[(&'static str, String, Value)], rng: &mut Rng, i: usize) -> Case {
    let (seed, text, doc) = rng.pick(docs);
    let all = paths(doc, 8);
    if !all.is_empty() && rng.one_in(2) {
        let path = rng.pick(&all).clone();
        let (label, raw) = *rng.pick(&WRONG_VALUES);
        return Case::bytes(format!("{seed}/random#{i}/{}={label}", path_name(&path)), json::replace(doc, &path, raw).into_bytes());
    }
    let (label, bytes) = mutate::havoc(text.as_bytes(), rng, 0..text.len());
    Case::bytes(format!("{seed}/random#{i}/{label}"), bytes)
}

/// [`CASES`] cases from `seed`: the full loads, then parse-only cases.
pub fn corpus(seed: u64) -> Vec<Case> {
    let mut rng = Rng::for_stream(seed, TARGET);
    let docs: Vec<(&'static str, String, Value)> = seeds()
        .into_iter()
        .map(|(name, text)| {
            let doc = serde_json::from_str(&text).expect("seed config is JSON");
            (name, text, doc)
        })
        .collect();
    let mut systematic = full_load_cases();
    for (label, doc) in json::malformed_documents() {
        systematic.push(Case::bytes(format!("config={label}"), doc));
    }
    for (name, text, doc) in &docs {
        systematic.push(Case::bytes(format!("{name}/valid"), text.clone().into_bytes()));
        field_cases(name, doc, &mut systematic);
        text_cases(name, text, &mut rng, &mut systematic);
    }
    fill(systematic, CASES, &mut rng, |rng, i| random_case(&docs, rng, i))
}

/// Parses a config and computes what the loader derives from it.
fn parse(bytes: &[u8]) -> tessera_clip::Result<()> {
    let text = std::str::from_utf8(bytes).map_err(|e| tessera_clip::Error::config(FILE_NAME, format!("not UTF-8: {e}")))?;
    let c = ClipConfig::from_json(text, FILE_NAME)?;
    let _ = (c.text_config.head_dim(), c.text_config.pooling());
    let _ = (c.vision_config.grid(), c.vision_config.num_positions());
    Ok(())
}

/// Writes the checkpoint directory and loads it; embeds a text and an
/// image when it loads.
fn full_load(case: &Case) -> tessera_clip::Result<()> {
    let dir = TempDir::with_files(TARGET, &case.files);
    let clip = Clip::from_dir(dir.path(), &ClipOptions::default())?;
    clip.embed_texts(&["a photo of a cat", ""])?;
    let image = RgbImage::from_fn(40, 30, |x, y| ::image::Rgb([(x * 6) as u8, (y * 8) as u8, 128]));
    clip.embed_images(&[image])?;
    Ok(())
}

/// Runs one case: a full load when the case has a checkpoint, else a parse.
pub fn run(case: &Case) -> Outcome {
    if case.file("model.safetensors").is_some() {
        Outcome::of(full_load(case))
    } else {
        Outcome::of(parse(case.main()))
    }
}

/// libFuzzer's input: the bytes are config.json; it is parsed, and loaded
/// with the tiny checkpoint when it parses.
pub fn from_fuzz_input(data: &[u8]) -> Case {
    let parses = std::str::from_utf8(data).is_ok_and(|t| ClipConfig::from_json(t, FILE_NAME).is_ok());
    if parses {
        Case::files("libfuzzer", checkpoint_files(data.to_vec()))
    } else {
        Case::bytes("libfuzzer", data.to_vec())
    }
}

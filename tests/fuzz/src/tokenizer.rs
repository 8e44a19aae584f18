//! Tokenizers: tessera-hf's `TextTokenizer::from_file` and tessera-clip's
//! `ClipTokenizer::from_files` on a mutated tokenizer.json and
//! tokenizer_config.json, `ClipTokenizer::from_vocab_merges` on a mutated
//! vocab.json and merges.txt, each written to a temporary directory; a
//! tokenizer that loads encodes a few texts (one by one and as a batch).
//!
//! Seeds: a small hand-written byte-level-free BPE tokenizer.json (every
//! field is mutated in it) and the CLIP parity fixtures' real tokenizer
//! (915 tokens, CLIP's normalizer, pre-tokenizer and post-processor; a
//! sample of wrong values per field, since it is larger to parse).

use crate::json::{self, path_name, paths, Seg, WRONG_VALUES};
use crate::mutate;
use crate::tiny_clip::{TOKENIZER_CONFIG, TOKENIZER_JSON};
use crate::{fill, Case, Outcome, Rng, TempDir};
use serde_json::Value;
use tessera_clip::ClipTokenizer;
use tessera_hf::{TextTokenizer, TokenizerOptions};

/// The target's name.
pub const TARGET: &str = "tokenizer";
/// Cases in the corpus.
pub const CASES: usize = 1500;

/// The fixtures' vocab.json (CLIP's byte-level BPE vocabulary).
const VOCAB_JSON: &[u8] = include_bytes!("../../clip/fixtures/tokenizer/vocab.json");
/// The fixtures' merges.txt.
const MERGES_TXT: &[u8] = include_bytes!("../../clip/fixtures/tokenizer/merges.txt");

/// A small BPE tokenizer.json: lower-casing, whitespace pre-tokenizer,
/// start and end tokens added by a template.
pub const MINI_TOKENIZER: &str = r#"{
  "version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [
    {"id": 0, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 1, "content": "<|startoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": {"type": "Lowercase"},
  "pre_tokenizer": {"type": "Whitespace"},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<|startoftext|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
    "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {
      "<|startoftext|>": {"id": "<|startoftext|>", "ids": [1], "tokens": ["<|startoftext|>"]},
      "<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]}}},
  "decoder": null,
  "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null, "end_of_word_suffix": null,
    "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
    "vocab": {"<|endoftext|>": 0, "<|startoftext|>": 1, "<unk>": 2, "a": 3, "c": 4, "t": 5, "o": 6, "p": 7, "h": 8,
              "ca": 9, "cat": 10, "ph": 11, "pho": 12, "to": 13, "photo": 14},
    "merges": ["c a", "ca t", "p h", "ph o", "t o", "pho to"]}
}"#;

/// The texts a loaded tokenizer encodes.
fn texts() -> Vec<String> {
    vec![
        "a photo of a cat".into(),
        String::new(),
        "<|startoftext|>x<|endoftext|><|endoftext|>".into(),
        "caf\u{e9} cr\u{e8}me \u{2014} \u{fc}ber \u{1f680}\u{0}\u{200b}\u{feff}".into(),
        "photo ".repeat(400),
    ]
}

/// Values for particular tokenizer.json keys besides [`WRONG_VALUES`].
fn special_values(key: &str) -> &'static [&'static str] {
    match key {
        "type" => &["\"BPE\"", "\"WordPiece\"", "\"WordLevel\"", "\"Unigram\"", "\"Sequence\"", "\"Nope\""],
        "dropout" => &["0.0", "0.5", "1.0", "1.5", "-0.1"],
        "unk_token" => &["\"nope\"", "\"\""],
        "id" | "ids" => &["4294967295", "[4294967295]", "[99]", "[]"],
        "merges" => &["[\"a\"]", "[\"a b c\"]", "[\"x y\"]", "[[\"c\", \"a\"]]", "[\"c a\", \"c a\"]", "[\"\"]", "[\" \"]"],
        "vocab" => &[
            "{\"a\": 4294967295}",
            "{\"a\": 0, \"c\": 0}",
            "{\"a\": 100000}",
            "{\"<unk>\": -1}",
            "{\"\": 0}",
        ],
        "pattern" => &["{\"Regex\": \"(\"}", "{\"Regex\": \"(a*)*$\"}", "{\"String\": \"\"}", "{\"Regex\": \"\"}"],
        "truncation" => &[
            "{\"max_length\": 0, \"strategy\": \"LongestFirst\", \"stride\": 5, \"direction\": \"Right\"}",
            "{\"max_length\": 4, \"strategy\": \"OnlySecond\", \"stride\": 9, \"direction\": \"Left\"}",
        ],
        "padding" => &[
            "{\"strategy\": {\"Fixed\": 0}, \"direction\": \"Right\", \"pad_to_multiple_of\": 0, \"pad_id\": 99, \"pad_type_id\": 0, \"pad_token\": \"x\"}",
            "{\"strategy\": \"BatchLongest\", \"direction\": \"Left\", \"pad_to_multiple_of\": 4294967295, \"pad_id\": 4294967295, \"pad_type_id\": 0, \"pad_token\": \"<|endoftext|>\"}",
        ],
        "added_tokens" => &["[{\"id\": 4294967295, \"content\": \"x\", \"special\": true}]", "[{\"id\": 0, \"content\": \"\", \"special\": true}]"],
        _ => &[],
    }
}

/// Values for tokenizer_config.json's fields.
const CONFIG_VALUES: [&str; 14] = [
    "0",
    "1",
    "2",
    "3",
    "-1",
    "1.5",
    "1e30",
    "1e400",
    "1000000000000000019884624838656",
    "\"77\"",
    "\"zzz\"",
    "{}",
    "{\"content\": 5}",
    "{\"content\": \"<|endoftext|>\", \"special\": true}",
];

/// The seed case of a tokenizer.json (and the fixture's config).
fn json_case(name: &str, tokenizer: &[u8], config: Option<&[u8]>) -> Case {
    let mut files = vec![("tokenizer.json".to_string(), tokenizer.to_vec())];
    if let Some(c) = config {
        files.push(("tokenizer_config.json".to_string(), c.to_vec()));
    }
    Case::files(name, files)
}

/// Field mutations of one tokenizer.json; `per_path` wrong values per field
/// (all of them when it is `None`).
fn tokenizer_field_cases(seed: &str, base: &Case, doc: &Value, per_path: Option<usize>, rng: &mut Rng, out: &mut Vec<Case>) {
    for path in paths(doc, 3) {
        let name = path_name(&path);
        let key = match path.last() {
            Some(Seg::Key(k)) => k.as_str(),
            _ => "",
        };
        let mut raws: Vec<(String, &str)> = WRONG_VALUES.iter().map(|(l, r)| (l.to_string(), *r)).collect();
        if let Some(n) = per_path {
            raws = (0..n).map(|_| raws[rng.below(raws.len())].clone()).collect();
            raws.dedup();
        }
        raws.extend(special_values(key).iter().map(|r| (r.to_string(), *r)));
        for (label, raw) in raws {
            out.push(base.with_main(format!("{seed}/{name}={label}"), json::replace(doc, &path, raw).into_bytes()));
        }
        out.push(base.with_main(format!("{seed}/{name}=removed"), json::remove(doc, &path).into_bytes()));
    }
}

/// Mutations of tokenizer_config.json.
fn config_cases(base: &Case, out: &mut Vec<Case>) {
    let doc: Value = serde_json::from_slice(TOKENIZER_CONFIG).expect("fixture config is JSON");
    for key in ["model_max_length", "pad_token"] {
        let mut raws: Vec<&str> = WRONG_VALUES.iter().map(|v| v.1).collect();
        raws.extend(CONFIG_VALUES.iter().filter(|r| !raws.contains(r)).collect::<Vec<_>>());
        for raw in raws {
            let config = json::replace(&doc, &[Seg::Key(key.into())], raw).into_bytes();
            out.push(base.with_file(format!("config/{key}={raw}"), "tokenizer_config.json", config));
        }
        out.push(base.with_file(
            format!("config/{key}=removed"),
            "tokenizer_config.json",
            json::remove(&doc, &[Seg::Key(key.into())]).into_bytes(),
        ));
    }
    for (label, bytes) in json::malformed_documents() {
        out.push(base.with_file(format!("config={label}"), "tokenizer_config.json", bytes));
    }
    out.push(base.without_file("config=missing", "tokenizer_config.json"));
}

/// Text-level mutations of a tokenizer.json: malformed documents,
/// truncation, non-UTF-8, duplicate keys.
fn text_cases(seed: &str, base: &Case, text: &str, rng: &mut Rng, out: &mut Vec<Case>) {
    for (label, bytes) in json::malformed_documents() {
        out.push(base.with_main(format!("{seed}/json={label}"), bytes));
    }
    let step = (text.len() / 6).max(1);
    let cuts: Vec<usize> = (1..6).map(|i| i * step).collect();
    for len in mutate::boundary_lengths(text.len(), &cuts) {
        out.push(base.with_main(format!("{seed}/truncate@{len}"), mutate::truncate(text.as_bytes(), len)));
    }
    for i in 0..3 {
        if let Some((label, bytes)) = json::non_utf8(text, rng) {
            out.push(base.with_main(format!("{seed}/{label}#{i}"), bytes));
        }
    }
    for (key, raw) in
        [("model", "{\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}"), ("type", "\"WordLevel\""), ("vocab", "{}"), ("a", "3")]
    {
        if let Some(t) = json::duplicate_key(text, key, raw) {
            out.push(base.with_main(format!("{seed}/duplicate-{key}"), t.into_bytes()));
        }
    }
}

/// The vocab.json + merges.txt seed.
fn vocab_merges_case() -> Case {
    Case::files(
        "vocab-merges",
        vec![
            ("vocab.json".into(), VOCAB_JSON.to_vec()),
            ("merges.txt".into(), MERGES_TXT.to_vec()),
            ("tokenizer_config.json".into(), TOKENIZER_CONFIG.to_vec()),
        ],
    )
}

/// Mutations of vocab.json and merges.txt.
fn vocab_merges_cases(rng: &mut Rng, out: &mut Vec<Case>) {
    let base = vocab_merges_case();
    out.push(base.clone());
    let vocab: Value = serde_json::from_slice(VOCAB_JSON).expect("fixture vocab is JSON");
    for key in ["<|endoftext|>", "<|startoftext|>", "a", "!"] {
        let path = [Seg::Key(key.into())];
        for (label, raw) in WRONG_VALUES {
            out.push(base.with_main(format!("vocab/{key}={label}"), json::replace(&vocab, &path, raw).into_bytes()));
        }
        out.push(base.with_main(format!("vocab/{key}=removed"), json::remove(&vocab, &path).into_bytes()));
    }
    for (label, bytes) in json::malformed_documents() {
        out.push(base.with_main(format!("vocab={label}"), bytes));
    }
    let merges = std::str::from_utf8(MERGES_TXT).expect("fixture merges are UTF-8");
    let first_merge = merges.lines().nth(1).unwrap_or_default();
    for (label, text) in [
        ("empty", String::new()),
        ("version-only", "#version: 0.2\n".into()),
        ("one-part", format!("{merges}a\n")),
        ("three-parts", format!("{merges}a b c\n")),
        ("unknown-tokens", format!("{merges}zzz yyy\n")),
        ("blank-lines", format!("{merges}\n\n\n")),
        ("crlf", merges.replace('\n', "\r\n")),
        ("duplicate", format!("{merges}{first_merge}\n")),
        ("tabs", merges.replace(' ', "\t")),
        ("nul", merges.replacen(' ', "\u{0}", 3)),
    ] {
        out.push(base.with_file(format!("merges={label}"), "merges.txt", text.into_bytes()));
    }
    for i in 0..6 {
        let (label, bytes) = mutate::havoc(MERGES_TXT, rng, 0..MERGES_TXT.len());
        out.push(base.with_file(format!("merges-{label}#{i}"), "merges.txt", bytes));
    }
    out.push(base.without_file("vocab-merges/merges-missing", "merges.txt"));
}

/// A random case: a random field of a random tokenizer.json set to a random
/// wrong value, or havoc in it.
fn random_case(seeds: &[(&'static str, Case, String, Value)], rng: &mut Rng, i: usize) -> Case {
    let (seed, base, text, doc) = rng.pick(seeds);
    if rng.one_in(2) {
        let all = paths(doc, 3);
        let path = rng.pick(&all).clone();
        let (label, raw) = *rng.pick(&WRONG_VALUES);
        return base.with_main(format!("{seed}/random#{i}/{}={label}", path_name(&path)), json::replace(doc, &path, raw).into_bytes());
    }
    let (label, bytes) = mutate::havoc(text.as_bytes(), rng, 0..text.len());
    base.with_main(format!("{seed}/random#{i}/{label}"), bytes)
}

/// [`CASES`] cases from `seed`.
pub fn corpus(seed: u64) -> Vec<Case> {
    let mut rng = Rng::for_stream(seed, TARGET);
    let fixture_text = std::str::from_utf8(TOKENIZER_JSON).expect("fixture tokenizer is UTF-8").to_string();
    let seeds: Vec<(&'static str, Case, String, Value)> = [("mini", MINI_TOKENIZER.to_string()), ("clip", fixture_text)]
        .into_iter()
        .map(|(name, text)| {
            let base = json_case(name, text.as_bytes(), Some(TOKENIZER_CONFIG));
            let doc = serde_json::from_str(&text).expect("seed tokenizer is JSON");
            (name, base, text, doc)
        })
        .collect();
    let mut systematic = Vec::new();
    for (name, base, text, doc) in &seeds {
        systematic.push(base.clone());
        let per_path = if *name == "clip" { Some(4) } else { None };
        tokenizer_field_cases(name, base, doc, per_path, &mut rng, &mut systematic);
        text_cases(name, base, text, &mut rng, &mut systematic);
    }
    config_cases(&seeds[1].1, &mut systematic);
    vocab_merges_cases(&mut rng, &mut systematic);
    fill(systematic, CASES, &mut rng, |rng, i| random_case(&seeds, rng, i))
}

/// Encodes the texts one by one and as a batch.
fn encode(tokenizer: &TextTokenizer) -> tessera_hf::Result<()> {
    let texts = texts();
    for text in &texts {
        let ids = tokenizer.encode(text)?;
        assert!(
            ids.len() <= tokenizer.context_length(),
            "invariant: {} ids exceed the context of {}",
            ids.len(),
            tokenizer.context_length()
        );
    }
    let batch = tokenizer.encode_batch(&texts)?;
    let len = batch.max_len();
    assert_eq!(batch.padded(len).len(), texts.len() * len, "invariant: a padded batch is rows x longest");
    Ok(())
}

/// Loads the case's tokenizer with every loader that reads its files, and
/// encodes with each that loads; the first error is the outcome.
fn load_and_encode(case: &Case) -> tessera_hf::Result<()> {
    let dir = TempDir::with_files(TARGET, &case.files);
    let config = case.file("tokenizer_config.json").map(|_| dir.path().join("tokenizer_config.json"));
    if case.file("vocab.json").is_some() {
        let (vocab, merges) = (dir.path().join("vocab.json"), dir.path().join("merges.txt"));
        let clip = ClipTokenizer::from_vocab_merges(&vocab, &merges, config.as_deref(), 77)?;
        return encode(&clip);
    }
    let json = dir.path().join("tokenizer.json");
    let options = TokenizerOptions::new(16, "<|endoftext|>");
    let generic = TextTokenizer::from_file(&json, config.as_deref(), &options).and_then(|t| encode(&t));
    let clip = ClipTokenizer::from_files(&json, config.as_deref(), 77).and_then(|t| encode(&t));
    generic.and(clip)
}

/// Runs one case.
pub fn run(case: &Case) -> Outcome {
    Outcome::of(load_and_encode(case))
}

/// libFuzzer's input: the bytes are tokenizer.json, with the fixture's
/// tokenizer_config.json.
pub fn from_fuzz_input(data: &[u8]) -> Case {
    json_case("libfuzzer", data, Some(TOKENIZER_CONFIG))
}

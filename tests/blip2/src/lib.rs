//! # BLIP-2 parity against transformers
//!
//! tests/blip2/generate_fixtures.py ran transformers'
//! `Blip2ForConditionalGeneration` with seeded weights and recorded inputs
//! and outputs under tests/blip2/fixtures/. This crate rebuilds the same
//! weights with the same generator, writes them as an HF checkpoint
//! directory in the layout the fixture names (transformers 4.x `q_bias` /
//! `v_bias`, or 5.x `qkv.bias`; tied or separate `lm_head`), loads it
//! through [`Blip2::from_dir`] on any [`Device`], and compares:
//!
//! - pixel values: transformers' `BlipImageProcessor` (PIL backend), within
//!   1e-5 for the PNGs (Pillow's resampling reproduced exactly, its pass
//!   order included); the JPEG's mean abs difference within 1/255, as its
//!   decoders differ by a level in places;
//! - prompt ids: the image tokens, the start token and the prompt's tokens,
//!   equal to transformers' processor;
//! - on transformers' pixel values: the vision tower's, the Q-Former's and
//!   the projection's outputs, and the first generation step's logits: within 1e-4 in f32, cosine above
//!   0.999 in f16 and bf16;
//! - greedy and beam-search captions: every token id equal, and the text;
//! - the retrieval heads ([`retrieval`]).

pub mod retrieval;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera_nn::generation::GenerationConfig;
pub use tessera_parity::fixtures::{PIXEL_EXACT_TOL, PIXEL_MEAN_TOL};
use tessera_parity::{all, err, expected_values, ids, is_jpeg, judge_pixels, name_filter, FixtureSet, Res, Tolerance};
pub use tessera_parity::{Check, Report};
use tessera_qformer::{load_image, Blip2, Blip2Options, ImageFeatures, ReadMode, RgbImage};
use tessera_tensor::safetensors::SafeTensorsFile;
use tessera_tensor::{DType, Device};

/// The dtypes every model is checked in.
pub const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];
/// Max abs difference allowed for f32 hidden states and logits.
pub const F32_TOL: f64 = 1e-4;
/// Least cosine similarity to the reference in f16/bf16.
pub const HALF_MIN_COSINE: f64 = 0.999;
/// The tolerances of hidden states and logits.
pub const TOLERANCE: Tolerance = Tolerance { f32_max_abs: F32_TOL, half_min_cosine: HALF_MIN_COSINE };

/// tests/blip2/fixtures.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// One recorded generation: its inputs and transformers' output.
#[derive(Clone, Debug)]
pub struct Case {
    pub image: usize,
    pub prompt: Option<String>,
    /// Every id transformers fed the language model (image tokens, start
    /// token, prompt).
    pub input_ids: Vec<u32>,
    pub greedy: Generation,
    pub beam: Generation,
}

/// A recorded `generate` call.
#[derive(Clone, Debug)]
pub struct Generation {
    pub max_new_tokens: usize,
    pub num_beams: usize,
    pub length_penalty: f64,
    pub ids: Vec<u32>,
    pub text: String,
}

/// The committed fixtures.
pub struct Fixtures {
    set: FixtureSet,
}

fn generation(v: &Value) -> Res<Generation> {
    Ok(Generation {
        max_new_tokens: v["max_new_tokens"].as_u64().ok_or("max_new_tokens")? as usize,
        num_beams: v["num_beams"].as_u64().unwrap_or(1) as usize,
        length_penalty: v["length_penalty"].as_f64().unwrap_or(1.0),
        ids: ids(&v["ids"])?,
        text: v["text"].as_str().unwrap_or_default().to_string(),
    })
}

impl Fixtures {
    /// Opens tests/blip2/fixtures/cases.json.
    pub fn open() -> Res<Fixtures> {
        Ok(Fixtures { set: FixtureSet::open(fixtures_dir())? })
    }

    /// The model configurations recorded.
    pub fn models(&self) -> Vec<String> {
        self.set.models()
    }

    /// The image files.
    pub fn image_paths(&self) -> Res<Vec<PathBuf>> {
        self.set.image_paths()
    }

    /// The cases of `model`.
    pub fn cases(&self, model: &str) -> Res<Vec<Case>> {
        let prompts = self.set.cases()["prompts"].as_array().ok_or("cases.json has no prompts")?;
        let list = self.set.model(model)["cases"].as_array().ok_or_else(|| format!("no cases for {model}"))?;
        list.iter()
            .map(|c| {
                let p = c["prompt"].as_u64().ok_or("case without prompt index")? as usize;
                Ok(Case {
                    image: c["image"].as_u64().ok_or("case without image index")? as usize,
                    prompt: prompts.get(p).ok_or("prompt index out of range")?.as_str().map(str::to_string),
                    input_ids: ids(&c["input_ids"])?,
                    greedy: generation(&c["greedy"])?,
                    beam: generation(&c["beam"])?,
                })
            })
            .collect()
    }

    /// The expected outputs of `model`.
    pub fn expected(&self, model: &str) -> Res<SafeTensorsFile> {
        self.set.expected(model)
    }

    /// The checkpoint's tensors `(name, shape)` (tensors.json).
    pub fn tensor_list(&self, model: &str) -> Res<Vec<(String, Vec<usize>)>> {
        self.set.tensor_list(model)
    }

    /// Writes `model`'s checkpoint directory: model.safetensors of seeded
    /// weights, its config files and the fixture tokenizer.
    pub fn write_checkpoint(&self, model: &str, dir: &Path) -> Res<()> {
        self.set.write_checkpoint(model, dir)
    }

    /// [`write_checkpoint`](Self::write_checkpoint) after `edit` changed the
    /// tensor list (a tensor dropped or reshaped, for the bad-input tests).
    pub fn write_edited_checkpoint(&self, model: &str, dir: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>)>)) -> Res<()> {
        self.set.write_edited_checkpoint(model, dir, edit)
    }
}

/// Values compared as the dtype requires (see [`TOLERANCE`]).
fn judge(got: &[f32], expected: &[f32], d: usize, dtype: DType) -> (bool, String) {
    tessera_parity::judge(got, expected, d, dtype, TOLERANCE)
}

/// The generation settings of a recorded call.
fn generation_config(base: &GenerationConfig, g: &Generation) -> GenerationConfig {
    let mut c = base.clone();
    c.do_sample = false;
    c.num_beams = g.num_beams;
    c.length_penalty = g.length_penalty;
    c.set_max_new_tokens(g.max_new_tokens);
    c
}

/// Runs every check on `device` (`limit`: only the first cases of each
/// model, for slow adapters). `filter` keeps only checks whose name
/// contains one of its comma-separated words (e.g. `"tiny,opt27b f32"`).
pub fn run_cases(device: &Device, filter: Option<&str>, limit: Option<usize>) -> Report {
    let mut report = Report::new("BLIP-2 parity", device.name());
    let wanted = name_filter(filter);
    let fixtures = match Fixtures::open() {
        Ok(f) => f,
        Err(e) => {
            report.add("fixtures", Err(e));
            return report;
        }
    };
    for model in fixtures.models() {
        if !DTYPES.iter().any(|d| wanted(&format!("{model} {d}"))) {
            continue;
        }
        if let Err(e) = check_model(&fixtures, &model, device, limit, &wanted, &mut report) {
            report.add(model.clone(), Err(e));
        }
    }
    retrieval::run(device, &wanted, limit, &mut report);
    report
}

fn check_model(
    fixtures: &Fixtures,
    model: &str,
    device: &Device,
    limit: Option<usize>,
    wanted: &dyn Fn(&str) -> bool,
    report: &mut Report,
) -> Res<()> {
    let dir = tempfile::tempdir().map_err(err)?;
    fixtures.write_checkpoint(model, dir.path())?;
    let mut cases = fixtures.cases(model)?;
    if let Some(n) = limit {
        cases.truncate(n);
    }
    let paths = fixtures.image_paths()?;
    let used: BTreeMap<usize, (RgbImage, bool)> =
        cases.iter().map(|c| Ok((c.image, (load_image(&paths[c.image]).map_err(err)?, is_jpeg(&paths[c.image]))))).collect::<Res<_>>()?;
    let expected = fixtures.expected(model)?;
    for dtype in DTYPES {
        let name = format!("{model} {dtype}");
        if !wanted(&name) {
            continue;
        }
        let options = Blip2Options { device: device.clone(), dtype, read_mode: ReadMode::Map, ..Default::default() };
        let blip2 = match Blip2::from_dir(dir.path(), &options) {
            Ok(b) => b,
            Err(e) => {
                report.add(format!("{name} load"), Err(err(e)));
                continue;
            }
        };
        if dtype == DType::F32 {
            report.add(
                format!("{model} pixel values"),
                all(used.iter().map(|(&i, (img, jpeg))| check_pixels(&blip2, img, *jpeg, &expected, i)).collect()),
            );
            report.add(format!("{model} prompt ids"), all(cases.iter().map(|c| check_prompt_ids(&blip2, c)).collect()));
        }
        let features: Vec<Res<(bool, String)>> = used.keys().map(|&i| check_features(&blip2, &expected, i, device, dtype)).collect();
        report.add(format!("{name} vision, Q-Former and projection"), all(features));
        let mut logits = Vec::new();
        for (c, case) in cases.iter().enumerate() {
            logits.push(check_logits(&blip2, case, &expected, c, device, dtype));
        }
        report.add(format!("{name} first-step logits"), all(logits));
        if dtype == DType::F32 {
            for (kind, pick) in [("greedy", 0), ("beam", 1)] {
                let outcomes = cases
                    .iter()
                    .map(|case| check_generation(&blip2, case, if pick == 0 { &case.greedy } else { &case.beam }, &expected, device))
                    .collect();
                report.add(format!("{model} f32 {kind} captions"), all(outcomes));
            }
        }
    }
    Ok(())
}

/// A JPEG within [`PIXEL_MEAN_TOL`] on average; any other image within
/// [`PIXEL_EXACT_TOL`] everywhere.
fn check_pixels(blip2: &Blip2, image: &RgbImage, jpeg: bool, expected: &SafeTensorsFile, i: usize) -> Res<(bool, String)> {
    let got = blip2.pixel_values(&[image]).map_err(err)?.to_f32_vec().map_err(err)?;
    let want = expected_values(expected, &format!("pixel_values.{i}"))?;
    Ok(judge_pixels(&got, &want, jpeg, i))
}

fn check_prompt_ids(blip2: &Blip2, case: &Case) -> Res<(bool, String)> {
    let q = blip2.model().config().num_query_tokens;
    let text = blip2.prompt_ids(case.prompt.as_deref()).map_err(err)?;
    let image_id = blip2.model().config().image_token_index;
    let mut want_text = case.input_ids.clone();
    let image_part: Vec<u32> = want_text.drain(..q.min(want_text.len())).collect();
    let image_ok = image_id.is_none_or(|id| image_part.iter().all(|&x| x == id));
    let ok = image_ok && text == want_text;
    Ok((
        ok,
        format!(
            "{:?}: {} text ids{}",
            case.prompt,
            text.len(),
            if ok { String::new() } else { format!(" {text:?}, expected {want_text:?}") }
        ),
    ))
}

/// The model's image path on transformers' pixel values of image `i`, so
/// that the stages are compared on the same input.
fn features_of(blip2: &Blip2, expected: &SafeTensorsFile, i: usize, device: &Device) -> Res<ImageFeatures> {
    let pixels = expected.load(&format!("pixel_values.{i}"), device).map_err(err)?;
    blip2.model().get_image_features(&pixels).map_err(err)
}

fn check_features(blip2: &Blip2, expected: &SafeTensorsFile, i: usize, device: &Device, dtype: DType) -> Res<(bool, String)> {
    let f = features_of(blip2, expected, i, device)?;
    let mut passed = true;
    let mut parts = Vec::new();
    for (stage, t) in [("vision", &f.vision), ("qformer", &f.qformer), ("projection", &f.projection)] {
        let key = format!("{stage}.{i}");
        // The fixture keeps the large vision states of one image only.
        if !expected.contains(&key) {
            continue;
        }
        let d = *t.dims().last().unwrap_or(&1);
        let (ok, detail) = judge(&t.to_f32_vec().map_err(err)?, &expected_values(expected, &key)?, d, dtype);
        passed &= ok;
        parts.push(format!("{stage} {detail}"));
    }
    Ok((passed, format!("image {i}: {}", parts.join(", "))))
}

fn check_logits(blip2: &Blip2, case: &Case, expected: &SafeTensorsFile, c: usize, device: &Device, dtype: DType) -> Res<(bool, String)> {
    let f = features_of(blip2, expected, case.image, device)?;
    let text = blip2.prompt_ids(case.prompt.as_deref()).map_err(err)?;
    let prefill = blip2.model().prefill(&f.projection, &text).map_err(err)?;
    let got = prefill.logits.to_f32_vec().map_err(err)?;
    let want = expected_values(expected, &format!("logits.{c}"))?;
    let (ok, detail) = judge(&got, &want, want.len(), dtype);
    Ok((ok, format!("case {c}: {detail}")))
}

fn check_generation(blip2: &Blip2, case: &Case, g: &Generation, expected: &SafeTensorsFile, device: &Device) -> Res<(bool, String)> {
    let config = generation_config(blip2.generation_config(), g);
    let f = features_of(blip2, expected, case.image, device)?;
    let text = blip2.prompt_ids(case.prompt.as_deref()).map_err(err)?;
    let caption = blip2.generate_from(&f.projection, &text, &config, &mut |_, _| {}).map_err(err)?;
    let ok = caption.token_ids == g.ids && caption.text == g.text.trim();
    let detail = if ok {
        format!("{} ids equal ({:?})", g.ids.len(), caption.text)
    } else {
        format!("ids {:?} text {:?}, expected {:?} {:?}", caption.token_ids, caption.text, g.ids, g.text)
    };
    Ok((ok, detail))
}

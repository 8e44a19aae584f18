//! # Janus-Pro parity against transformers
//!
//! tests/janus/generate_fixtures.py ran transformers'
//! `JanusForConditionalGeneration` and `JanusProcessor` with seeded weights
//! and recorded inputs and outputs under tests/janus/fixtures/. This crate
//! rebuilds the same weights with the same generator, writes them as an HF
//! checkpoint directory beside the fixture's config, processor and
//! tokenizer files, loads it through [`Janus::from_dir`] on any [`Device`],
//! and compares:
//!
//! - the processor: the chat template's text for every recorded message
//!   list; pixel values (PNGs within 1e-5, the JPEG's mean within 1/255);
//!   every prompt's ids, the understanding prompts with the system prompt
//!   and expanded image placeholders, the generation prompts with
//!   begin-of-image, and the unconditional rows;
//! - understanding, on transformers' pixel values: the vision tower's and
//!   the aligner's outputs and the first step's logits within 1e-4 in f32
//!   (cosine above 0.999 in bf16), and the greedy answers' ids exactly;
//! - image generation, teacher-forced with the recorded ids: the
//!   conditional and unconditional logits of the generation head within
//!   1e-4 and the guided logits within 5e-4 at the recorded steps, and the
//!   guided argmax equal to the recorded id at every step whose top-2
//!   margin clears the fixture's `min_margin`; where every step clears it,
//!   free-running greedy generation through the pipeline gives every id;
//! - the VQ model: decoded pixels of fixed and generated grids within 2e-4,
//!   postprocessed 8-bit pixels within 1, the encoder's latents within 2e-4
//!   and the codes of encoded images exactly.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use tessera_janus::{load_image, GenerationConfig, ImageSampling, Janus, JanusOptions, ReadMode, SamplingConfig};
use tessera_parity::{all, compare_rows, err, expected_values, ids, is_jpeg, judge, judge_pixels, name_filter, FixtureSet, Res, Tolerance};
pub use tessera_parity::{Check, Report};
use tessera_tensor::safetensors::SafeTensorsFile;
use tessera_tensor::{DType, Device, Tensor};

/// Hidden states and logits.
pub const TOLERANCE: Tolerance = Tolerance { f32_max_abs: 1e-4, half_min_cosine: 0.999 };
/// Guided logits (the difference of two logits scaled by the guidance).
pub const GUIDED_TOLERANCE: Tolerance = Tolerance { f32_max_abs: 5e-4, half_min_cosine: 0.999 };
/// VQ decoder pixels and encoder latents.
pub const VQ_TOLERANCE: Tolerance = Tolerance { f32_max_abs: 2e-4, half_min_cosine: 0.999 };
/// Postprocessed 8-bit pixels.
pub const POSTPROCESS_TOL: f64 = 1.0;

/// tests/janus/fixtures.
pub fn fixtures_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The dtypes a model is checked in: the tiny model also in bf16; the
/// large one in f32 only.
fn dtypes(model: &str) -> &'static [DType] {
    if model == "tiny" {
        &[DType::F32, DType::BF16]
    } else {
        &[DType::F32]
    }
}

/// What a run covers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scope<'a> {
    /// Comma-separated words; a check runs when its name holds one.
    pub filter: Option<&'a str>,
    /// Only the first cases of each kind (slow adapters).
    pub limit: Option<usize>,
}

/// Runs every check on `device`.
pub fn run_cases(device: &Device, scope: Scope<'_>) -> Report {
    let mut report = Report::new("Janus-Pro parity", device.name());
    let wanted = name_filter(scope.filter);
    let fixtures = match FixtureSet::open(fixtures_dir()) {
        Ok(f) => f,
        Err(e) => {
            report.add("fixtures", Err(e));
            return report;
        }
    };
    for model in fixtures.models() {
        if !dtypes(&model).iter().any(|d| wanted(&format!("{model} {d}"))) {
            continue;
        }
        if let Err(e) = check_model(&fixtures, &model, device, scope.limit, &wanted, &mut report) {
            report.add(model.clone(), Err(e));
        }
    }
    report
}

fn take<T>(mut v: Vec<T>, limit: Option<usize>) -> Vec<T> {
    if let Some(n) = limit {
        v.truncate(n);
    }
    v
}

fn usize_list(v: &Value) -> Res<Vec<usize>> {
    Ok(ids(v)?.into_iter().map(|x| x as usize).collect())
}

fn check_model(
    fixtures: &FixtureSet,
    model: &str,
    device: &Device,
    limit: Option<usize>,
    wanted: &dyn Fn(&str) -> bool,
    report: &mut Report,
) -> Res<()> {
    let dir = tempfile::tempdir().map_err(err)?;
    fixtures.write_checkpoint(model, dir.path())?;
    let expected = fixtures.expected(model)?;
    let m = fixtures.model(model);
    let understanding = take(m["understanding"].as_array().cloned().unwrap_or_default(), limit);
    let generation = take(m["generation"].as_array().cloned().unwrap_or_default(), limit);
    for &dtype in dtypes(model) {
        let name = format!("{model} {dtype}");
        if !wanted(&name) {
            continue;
        }
        let options = JanusOptions { device: device.clone(), dtype, read_mode: ReadMode::Map, ..Default::default() };
        let janus = match Janus::from_dir(dir.path(), &options) {
            Ok(j) => j,
            Err(e) => {
                report.add(format!("{name} load"), Err(err(e)));
                continue;
            }
        };
        if dtype == DType::F32 {
            report.add(format!("{model} chat template"), check_chat_template(fixtures, &janus, &understanding, &generation));
            report.add(format!("{model} pixel values"), check_pixels(fixtures, &janus, &expected, limit));
            report.add(format!("{model} prompt ids"), check_prompt_ids(&janus, &understanding, &generation));
        }
        let images = image_indices(&expected, "vision.");
        let images = take(images, limit);
        report.add(
            format!("{name} vision and aligner"),
            all(images.iter().map(|&i| check_features(&janus, &expected, i, device, dtype)).collect()),
        );
        report.add(
            format!("{name} first-step logits"),
            all(understanding
                .iter()
                .enumerate()
                .map(|(c, case)| check_logits(fixtures, &janus, case, &expected, c, device, dtype))
                .collect()),
        );
        if dtype != DType::F32 {
            continue;
        }
        report.add(
            format!("{name} greedy answers"),
            all(understanding.iter().map(|case| check_answer(fixtures, &janus, case, &expected, device)).collect()),
        );
        let min_margin = fixtures.cases()["min_margin"].as_f64().ok_or("cases.json has no min_margin")?;
        for (g, case) in generation.iter().enumerate() {
            report.add(format!("{name} image generation {g}"), check_generation(&janus, case, &expected, g, min_margin));
        }
        report.add(format!("{name} VQ decode"), check_vq_decode(&janus, m, &expected, limit));
        report.add(format!("{name} VQ encode"), check_vq_encode(&janus, m, &expected, device, limit));
    }
    Ok(())
}

/// The indices `i` of expected tensors `{prefix}{i}`, in order.
fn image_indices(expected: &SafeTensorsFile, prefix: &str) -> Vec<usize> {
    let set: BTreeSet<usize> = expected.names().iter().filter_map(|n| n.strip_prefix(prefix)?.parse().ok()).collect();
    set.into_iter().collect()
}

fn check_chat_template(fixtures: &FixtureSet, janus: &Janus, understanding: &[Value], generation: &[Value]) -> Res<(bool, String)> {
    let p = janus.processor();
    let mut outcomes = Vec::new();
    let examples = fixtures.cases()["chat_template_examples"].as_array().cloned().unwrap_or_default();
    for (k, ex) in examples.iter().enumerate() {
        let add = ex["add_generation_prompt"].as_bool().unwrap_or(false);
        let got = p.apply_chat_template(&ex["messages"], add).map_err(err)?;
        let want = ex["text"].as_str().ok_or("example without text")?;
        outcomes.push(Ok((
            got == want,
            if got == want { format!("example {k} equal") } else { format!("example {k}: {got:?}, expected {want:?}") },
        )));
    }
    for case in understanding {
        let n = case["images"].as_array().map_or(0, Vec::len);
        let question = case["question"].as_str().ok_or("case without question")?;
        let got = p.apply_chat_template(&tessera_janus::JanusProcessor::user_message(question, n), true).map_err(err)?;
        let want = case["chat_text"].as_str().ok_or("case without chat_text")?;
        outcomes.push(Ok((got == want, if got == want { "question equal".into() } else { format!("{got:?}, expected {want:?}") })));
    }
    for case in generation {
        let prompt = case["prompt"].as_str().ok_or("case without prompt")?;
        let got = p.apply_chat_template(&tessera_janus::JanusProcessor::user_message(prompt, 0), true).map_err(err)?;
        let want = case["chat_text"].as_str().ok_or("case without chat_text")?;
        outcomes.push(Ok((got == want, if got == want { "prompt equal".into() } else { format!("{got:?}, expected {want:?}") })));
    }
    all(outcomes)
}

fn check_pixels(fixtures: &FixtureSet, janus: &Janus, expected: &SafeTensorsFile, limit: Option<usize>) -> Res<(bool, String)> {
    let paths = fixtures.image_paths()?;
    let indices = take(image_indices(expected, "pixel_values."), limit);
    all(indices
        .into_iter()
        .map(|i| {
            let path = paths.get(i).ok_or("image index out of range")?;
            let image = load_image(path).map_err(err)?;
            let got = janus.pixel_values(&[&image]).map_err(err)?.to_f32_vec().map_err(err)?;
            let want = expected_values(expected, &format!("pixel_values.{i}"))?;
            Ok(judge_pixels(&got, &want, is_jpeg(path), i))
        })
        .collect())
}

fn check_prompt_ids(janus: &Janus, understanding: &[Value], generation: &[Value]) -> Res<(bool, String)> {
    let p = janus.processor();
    let mut outcomes = Vec::new();
    for case in understanding {
        let n = case["images"].as_array().map_or(0, Vec::len);
        let got = p.understanding_ids(case["question"].as_str().unwrap_or_default(), n).map_err(err)?;
        let want = ids(&case["input_ids"])?;
        outcomes.push(Ok((got == want, format!("understanding: {} ids{}", want.len(), if got == want { "" } else { " differ" }))));
    }
    for case in generation {
        let (cond, uncond) = janus.image_prompt_ids(case["prompt"].as_str().unwrap_or_default()).map_err(err)?;
        let (want_c, want_u) = (ids(&case["input_ids"])?, ids(&case["uncond_input_ids"])?);
        let ok = cond == want_c && uncond == want_u;
        outcomes.push(Ok((
            ok,
            if ok { format!("generation: {} ids", cond.len()) } else { format!("{cond:?}/{uncond:?}, expected {want_c:?}/{want_u:?}") },
        )));
    }
    all(outcomes)
}

/// The aligned features of the case's images, from transformers' pixel
/// values, in the model's dtype.
fn case_features(fixtures: &FixtureSet, janus: &Janus, case: &Value, expected: &SafeTensorsFile, device: &Device) -> Res<Option<Tensor>> {
    let images = usize_list(&case["images"])?;
    if images.is_empty() {
        return Ok(None);
    }
    let paths = fixtures.image_paths()?;
    // The fixture stores the pixel values of some images only; the others
    // are processed here (the pixel-value check covers the processor).
    let pixels: Vec<Tensor> = images
        .iter()
        .map(|&i| match expected.contains(&format!("pixel_values.{i}")) {
            true => expected.load(&format!("pixel_values.{i}"), device).map_err(err),
            false => {
                let image = load_image(paths.get(i).ok_or("image index out of range")?).map_err(err)?;
                janus.pixel_values(&[&image]).map_err(err)
            }
        })
        .collect::<Res<_>>()?;
    let refs: Vec<&Tensor> = pixels.iter().collect();
    let batch = Tensor::cat(&refs, 0).map_err(err)?;
    Ok(Some(janus.model().get_image_features(&batch).map_err(err)?.aligned))
}

fn check_features(janus: &Janus, expected: &SafeTensorsFile, i: usize, device: &Device, dtype: DType) -> Res<(bool, String)> {
    let pixels = expected.load(&format!("pixel_values.{i}"), device).map_err(err)?;
    let f = janus.model().get_image_features(&pixels).map_err(err)?;
    let mut passed = true;
    let mut parts = Vec::new();
    for (stage, t) in [("vision", &f.vision), ("aligner", &f.aligned)] {
        let d = *t.dims().last().unwrap_or(&1);
        let (ok, detail) = judge(&t.to_f32_vec().map_err(err)?, &expected_values(expected, &format!("{stage}.{i}"))?, d, dtype, TOLERANCE);
        passed &= ok;
        parts.push(format!("{stage} {detail}"));
    }
    Ok((passed, format!("image {i}: {}", parts.join(", "))))
}

fn check_logits(
    fixtures: &FixtureSet,
    janus: &Janus,
    case: &Value,
    expected: &SafeTensorsFile,
    c: usize,
    device: &Device,
    dtype: DType,
) -> Res<(bool, String)> {
    let input_ids = ids(&case["input_ids"])?;
    let features = case_features(fixtures, janus, case, expected, device)?;
    let embeds = janus.model().embed_prompt(&input_ids, features.as_ref()).map_err(err)?;
    let got = janus.model().prefill(&embeds).map_err(err)?.logits.to_f32_vec().map_err(err)?;
    let want = expected_values(expected, &format!("logits.{c}"))?;
    let (ok, detail) = judge(&got, &want, want.len(), dtype, TOLERANCE);
    Ok((ok, format!("case {c}: {detail}")))
}

fn check_answer(fixtures: &FixtureSet, janus: &Janus, case: &Value, expected: &SafeTensorsFile, device: &Device) -> Res<(bool, String)> {
    let input_ids = ids(&case["input_ids"])?;
    let greedy = &case["greedy"];
    let want = ids(&greedy["ids"])?;
    let max_new = greedy["max_new_tokens"].as_u64().ok_or("greedy without max_new_tokens")? as usize;
    let config = greedy_config(janus.generation_config(), max_new);
    let features = case_features(fixtures, janus, case, expected, device)?;
    let answer = janus.generate_from(&input_ids, features.as_ref(), &config, &mut |_, _| {}).map_err(err)?;
    let want_text = greedy["text"].as_str().unwrap_or_default();
    let ok = answer.token_ids == want && answer.text == want_text;
    Ok((
        ok,
        if ok {
            format!("{} ids equal", want.len())
        } else {
            format!("{:?} {:?}, expected {want:?} {want_text:?}", answer.token_ids, answer.text)
        },
    ))
}

/// Row `r` of a `[rows, width]` expected tensor.
fn row(values: &[f32], r: usize, width: usize) -> &[f32] {
    &values[r * width..(r + 1) * width]
}

fn argmax(v: &[f32]) -> u32 {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &x)| if x > best.1 { (i, x) } else { best }).0 as u32
}

fn check_generation(janus: &Janus, case: &Value, expected: &SafeTensorsFile, g: usize, min_margin: f64) -> Res<(bool, String)> {
    let model = janus.model();
    let cond_ids = ids(&case["input_ids"])?;
    let uncond_ids = ids(&case["uncond_input_ids"])?;
    let want = ids(&case["ids"])?;
    let margins: Vec<f64> = case["margins"].as_array().ok_or("no margins")?.iter().map(|m| m.as_f64().unwrap_or(0.0)).collect();
    let recorded = usize_list(&case["recorded_steps"])?;
    let scale = case["guidance_scale"].as_f64().ok_or("no guidance_scale")?;
    let from_config = case["guidance_scale_from"].as_str() == Some("generation_config");
    let mut outcomes = Vec::new();
    if from_config {
        let got = janus.image_defaults().guidance_scale;
        outcomes.push(Ok((got == scale, format!("generation_config guidance_scale {got} (expected {scale})"))));
    }
    let width = model.config().vq_config.num_embeddings;
    let tables: Vec<Vec<f32>> =
        ["cond", "uncond", "guided"].iter().map(|k| expected_values(expected, &format!("gen_{k}.{g}"))).collect::<Res<_>>()?;
    let mut state = model.start_image_generation(&cond_ids, &uncond_ids, 1).map_err(err)?;
    let (mut worst, mut worst_guided, mut wrong) = (0.0f64, 0.0f64, Vec::new());
    let mut passed = true;
    for (step, &id) in want.iter().enumerate() {
        let logits = model.image_logits(&state, scale).map_err(err)?;
        let guided = logits.guided.to_f32_vec().map_err(err)?;
        if let Some(r) = recorded.iter().position(|&s| s == step) {
            for (k, t) in [&logits.cond, &logits.uncond].iter().enumerate() {
                let diff = compare_rows(&t.to_f32_vec().map_err(err)?, row(&tables[k], r, width), width).0;
                worst = worst.max(diff);
                passed &= diff <= TOLERANCE.f32_max_abs;
            }
            let diff = compare_rows(&guided, row(&tables[2], r, width), width).0;
            worst_guided = worst_guided.max(diff);
            passed &= diff <= GUIDED_TOLERANCE.f32_max_abs && guided.iter().all(|v| v.is_finite());
        }
        if margins.get(step).is_some_and(|&m| m >= min_margin) && argmax(&guided) != id {
            wrong.push(step);
        }
        if step + 1 < want.len() {
            model.feed_image_tokens(&mut state, &[id]).map_err(err)?;
        }
    }
    passed &= wrong.is_empty();
    let cleared = margins.iter().filter(|&&m| m >= min_margin).count();
    outcomes.push(Ok((
        passed,
        format!(
            "{} steps ({} recorded): cond/uncond max |diff| {worst:.2e}, guided {worst_guided:.2e}; argmax equal at {}/{cleared} clear steps{}",
            want.len(),
            recorded.len(),
            cleared - wrong.len(),
            if wrong.is_empty() { String::new() } else { format!(" (differs at {wrong:?})") }
        ),
    )));
    // Free-running through the pipeline, when no step is close.
    let prompt = case["prompt"].as_str().ok_or("case without prompt")?;
    if cleared == want.len() && recorded.len() == want.len() {
        let sampling = ImageSampling { guidance_scale: scale, sampling: SamplingConfig::greedy(), seed: 0 };
        let grids = janus.generate_image_tokens(prompt, 1, &sampling, &mut |_, _| {}).map_err(err)?;
        let ok = grids[0] == want;
        outcomes
            .push(Ok((ok, if ok { "free-running ids equal".into() } else { format!("free-running {:?}, expected {want:?}", grids[0]) })));
    }
    all(outcomes)
}

fn check_vq_decode(janus: &Janus, m: &Value, expected: &SafeTensorsFile, limit: Option<usize>) -> Res<(bool, String)> {
    let decodes = take(m["vq"]["decode"].as_array().cloned().unwrap_or_default(), limit);
    all(decodes
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let grid = ids(&d["ids"])?;
            let decoded = janus.model().decode_image_tokens(std::slice::from_ref(&grid)).map_err(err)?;
            let values = decoded.to_f32_vec().map_err(err)?;
            let (ok, detail) = judge(&values, &expected_values(expected, &format!("vq_decode.{k}"))?, 3, DType::F32, VQ_TOLERANCE);
            let images = janus.processor().image_processor.postprocess(&decoded).map_err(err)?;
            let post: Vec<f32> = images[0].as_raw().iter().map(|&b| b as f32).collect();
            let want_post = expected_values(expected, &format!("vq_post.{k}"))?;
            let post_diff = if post.len() == want_post.len() {
                post.iter().zip(&want_post).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max)
            } else {
                f64::INFINITY
            };
            let post_ok = post_diff <= POSTPROCESS_TOL;
            Ok((ok && post_ok, format!("grid {k}: pixels {detail}, 8-bit max |diff| {post_diff}")))
        })
        .collect())
}

fn check_vq_encode(janus: &Janus, m: &Value, expected: &SafeTensorsFile, device: &Device, limit: Option<usize>) -> Res<(bool, String)> {
    let encodes = take(m["vq"]["encode"].as_array().cloned().unwrap_or_default(), limit);
    let vq = janus.model().vqmodel();
    all(encodes
        .iter()
        .enumerate()
        .map(|(k, e)| {
            let i = e["image"].as_u64().ok_or("encode without image")?;
            let pixels = expected.load(&format!("pixel_values.{i}"), device).map_err(err)?;
            let latents = vq.encode_latents(&pixels).map_err(err)?.to_f32_vec().map_err(err)?;
            let want = expected_values(expected, &format!("vq_latent.{k}"))?;
            let d = m["vq_image_size"].as_u64().unwrap_or(1) as usize;
            let (ok, detail) = judge(&latents, &want, d.max(1), DType::F32, VQ_TOLERANCE);
            let codes = vq.encode(&pixels).map_err(err)?.remove(0);
            let want_codes = ids(&e["ids"])?;
            let differ = codes.iter().zip(&want_codes).filter(|(a, b)| a != b).count() + codes.len().abs_diff(want_codes.len());
            Ok((ok && differ == 0, format!("image {i}: latents {detail}, {differ} of {} codes differ", want_codes.len())))
        })
        .collect())
}

/// The greedy settings of a recorded answer.
fn greedy_config(base: &GenerationConfig, max_new_tokens: usize) -> GenerationConfig {
    let mut c = base.clone();
    c.do_sample = false;
    c.num_beams = 1;
    c.set_max_new_tokens(max_new_tokens);
    c
}

/// The committed fixtures.
pub fn fixtures() -> Res<FixtureSet> {
    FixtureSet::open(fixtures_dir())
}

/// Writes `model`'s checkpoint directory into `dir` (seeded weights, the
/// fixture's config, processor and tokenizer files).
pub fn write_checkpoint(model: &str, dir: &std::path::Path) -> Res<()> {
    fixtures()?.write_checkpoint(model, dir)
}

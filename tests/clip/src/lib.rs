//! # CLIP parity against transformers
//!
//! tests/clip/generate_fixtures.py ran transformers' `CLIPModel` with seeded
//! weights and recorded inputs and outputs under tests/clip/fixtures/. This
//! crate rebuilds the same weights with the same generator, writes them as an
//! HF checkpoint directory (model.safetensors through Tessera's writer, plus
//! the fixture's config.json, preprocessor_config.json and tokenizer files),
//! loads it through [`Clip::from_dir`] on any [`Device`], and compares:
//!
//! - token ids: equal to transformers' `CLIPTokenizer`, from tokenizer.json
//!   and from vocab.json + merges.txt;
//! - preprocessing: the 8-bit resized and cropped images, and the normalised
//!   pixel values within 1/255 mean absolute difference;
//! - embeddings: max abs difference of the normalised image and text
//!   embeddings within 1e-4 in f32; cosine similarity above 0.999 in f16 and
//!   bf16; logits; the same top-1 label for every image; the whole pipeline
//!   (files in, embeddings out) as well as the model on the reference pixels.
//!
//! A backend crate runs it on its device:
//!
//! ```no_run
//! let report = tessera_clip_parity::run_all(&tessera_tensor::Device::cpu(), None);
//! println!("{report}");
//! assert_eq!(report.failed(), 0);
//! ```

use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};
use tessera_clip::imaging::processor_from_file;
use tessera_clip::model::l2_normalize;
use tessera_clip::{load_image, Clip, ClipOptions, ClipTokenizer, TokenBatch};
use tessera_parity::{compare_rows, seeded_values, write_safetensors};
pub use tessera_parity::{Check, Report};
use tessera_tensor::safetensors::SafeTensorsFile;
use tessera_tensor::{DType, Device, Tensor};

/// The model configurations of the fixtures.
pub const MODELS: [&str; 2] = ["b32", "l14"];
/// The dtypes every model is checked in.
pub const DTYPES: [DType; 3] = [DType::F32, DType::F16, DType::BF16];
/// Max abs difference allowed for normalised f32 embeddings.
pub const F32_EMBED_TOL: f64 = 1e-4;
/// Least cosine similarity to the reference for f16/bf16 embeddings.
pub const HALF_MIN_COSINE: f64 = 0.999;
/// Largest mean abs difference allowed for normalised pixel values.
pub const PIXEL_MEAN_TOL: f64 = 1.0 / 255.0;

type Res<T> = Result<T, String>;

fn err(e: impl fmt::Display) -> String {
    e.to_string()
}

// ---------------------------------------------------------------- fixtures

/// tests/clip/fixtures.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The recorded cases (cases.json).
pub struct Fixtures {
    dir: PathBuf,
    cases: Value,
    pixels: SafeTensorsFile,
    /// The image and text indices checked (all, unless [`Fixtures::limit`]).
    images: Option<Vec<usize>>,
    texts: Option<Vec<usize>>,
}

/// Keeps the `keep` entries of `rows` (rows of `width` values each).
fn select_rows<T: Copy>(values: &[T], width: usize, keep: &[usize]) -> Vec<T> {
    keep.iter().flat_map(|&r| values[r * width..(r + 1) * width].iter().copied()).collect()
}

impl Fixtures {
    /// Opens the committed fixtures.
    pub fn open() -> Res<Fixtures> {
        let dir = fixtures_dir();
        let text = std::fs::read_to_string(dir.join("cases.json")).map_err(|e| format!("{}: {e}", dir.join("cases.json").display()))?;
        let cases: Value = serde_json::from_str(&text).map_err(err)?;
        let pixels = SafeTensorsFile::open(dir.join("pixels.safetensors")).map_err(err)?;
        Ok(Fixtures { dir, cases, pixels, images: None, texts: None })
    }

    /// Checks only the first `images` images and `texts` texts, the longest
    /// text (by token count) always among them: a subset that still takes
    /// every code path (e.g. `TESSERA_CLIP_PARITY_CASES` in CI).
    pub fn limit(mut self, images: usize, texts: usize) -> Res<Fixtures> {
        let lengths: Vec<usize> = serde_json::from_value(self.field(&["lengths"])?.clone()).map_err(err)?;
        let n_images = self.strings("images")?.len();
        let longest = (0..lengths.len()).max_by_key(|&i| (lengths[i], i)).ok_or("cases.json has no texts")?;
        let mut keep: Vec<usize> = (0..lengths.len()).filter(|&i| i != longest).take(texts.max(1) - 1).collect();
        keep.push(longest);
        self.images = Some((0..n_images.min(images.max(1))).collect());
        self.texts = Some(keep);
        Ok(self)
    }

    fn pick<T: Copy>(keep: &Option<Vec<usize>>, values: Vec<T>, width: usize) -> Vec<T> {
        match keep {
            Some(k) => select_rows(&values, width, k),
            None => values,
        }
    }

    fn field(&self, path: &[&str]) -> Res<&Value> {
        path.iter().try_fold(&self.cases, |v, k| v.get(k).ok_or_else(|| format!("cases.json has no {}", path.join("."))))
    }

    fn strings(&self, key: &str) -> Res<Vec<String>> {
        serde_json::from_value(self.field(&[key])?.clone()).map_err(err)
    }

    /// The test texts.
    pub fn texts(&self) -> Res<Vec<String>> {
        let all = self.strings("texts")?;
        Ok(match &self.texts {
            Some(k) => k.iter().map(|&i| all[i].clone()).collect(),
            None => all,
        })
    }

    /// The image files, in fixture order.
    pub fn image_paths(&self) -> Res<Vec<PathBuf>> {
        let all: Vec<PathBuf> = self.strings("images")?.iter().map(|n| self.dir.join("images").join(n)).collect();
        Ok(match &self.images {
            Some(k) => k.iter().map(|&i| all[i].clone()).collect(),
            None => all,
        })
    }

    /// transformers' token ids per text, unpadded.
    pub fn token_ids(&self) -> Res<Vec<Vec<u32>>> {
        let padded: Vec<Vec<u32>> = serde_json::from_value(self.field(&["input_ids"])?.clone()).map_err(err)?;
        let lengths: Vec<usize> = serde_json::from_value(self.field(&["lengths"])?.clone()).map_err(err)?;
        let ids: Vec<Vec<u32>> = padded.into_iter().zip(lengths).map(|(ids, n)| ids[..n].to_vec()).collect();
        Ok(match &self.texts {
            Some(k) => k.iter().map(|&i| ids[i].clone()).collect(),
            None => ids,
        })
    }

    /// transformers' 8-bit crops `[n, 3, h, w]` (before rescaling).
    pub fn crops(&self) -> Res<(Vec<u8>, Vec<usize>)> {
        let info = self.pixels.info("crops").ok_or("pixels.safetensors has no 'crops'")?;
        let mut shape = info.shape.clone();
        let crops = Fixtures::pick(&self.images, self.pixels.bytes("crops").map_err(err)?.to_vec(), shape[1..].iter().product());
        shape[0] = self.images.as_ref().map_or(shape[0], Vec::len);
        Ok((crops, shape))
    }

    /// The processor's mean and std for model `key`.
    pub fn mean_std(&self, key: &str) -> Res<([f64; 3], [f64; 3])> {
        let get = |k| -> Res<[f64; 3]> { serde_json::from_value(self.field(&["models", key, k])?.clone()).map_err(err) };
        Ok((get("image_mean")?, get("image_std")?))
    }

    /// transformers' top-1 label per image for model `key` (over the
    /// checked texts: its logits' argmax when they are a subset).
    pub fn top1(&self, key: &str) -> Res<Vec<usize>> {
        if self.texts.is_some() {
            let (logits, shape) = self.expected(key, "logits_per_image")?;
            return Ok(argmax_rows(&logits, shape[1]));
        }
        let all: Vec<usize> = serde_json::from_value(self.field(&["models", key, "top1"])?.clone()).map_err(err)?;
        Ok(Fixtures::pick(&self.images, all, 1))
    }

    /// Names and shapes of the checkpoint tensors (transformers' state dict).
    pub fn tensor_list(&self, key: &str) -> Res<Vec<(String, Vec<usize>)>> {
        serde_json::from_value(self.field(&["models", key, "tensors"])?.clone()).map_err(err)
    }

    /// One expected output of model `key` as f32 values and its shape.
    pub fn expected(&self, key: &str, name: &str) -> Res<(Vec<f32>, Vec<usize>)> {
        let file = SafeTensorsFile::open(self.dir.join(key).join("expected.safetensors")).map_err(err)?;
        let t = file.load(name, &Device::cpu()).map_err(err)?;
        let (mut values, mut shape) = (t.to_vec::<f32>().map_err(err)?, t.dims().to_vec());
        // Rows are images or texts; logits are [images, texts].
        let (rows, cols) = match name {
            "image_embeds" => (&self.images, &None),
            "text_embeds" => (&self.texts, &None),
            "logits_per_image" => (&self.images, &self.texts),
            _ => (&None, &None),
        };
        if let Some(c) = cols {
            values = values.chunks(shape[1]).flat_map(|row| c.iter().map(|&j| row[j])).collect();
            shape[1] = c.len();
        }
        if let Some(r) = rows {
            values = select_rows(&values, shape[1..].iter().product(), r);
            shape[0] = r.len();
        }
        Ok((values, shape))
    }

    /// The normalised pixel values transformers fed its model, recomputed
    /// from the 8-bit crops with its arithmetic (rescale in f64 rounded to
    /// f32, then `(x - mean) / std` in f32; the generator checked this bit
    /// for bit against the processor's output).
    pub fn pixel_values(&self, key: &str) -> Res<(Vec<f32>, Vec<usize>)> {
        let (crops, shape) = self.crops()?;
        let (mean, std) = self.mean_std(key)?;
        let plane = shape[2] * shape[3];
        let values = crops
            .iter()
            .enumerate()
            .map(|(i, &v)| ((v as f64 * (1.0 / 255.0)) as f32 - mean[(i / plane) % 3] as f32) / std[(i / plane) % 3] as f32);
        Ok((values.collect(), shape))
    }
}

// ---------------------------------------------------------------- weights

/// `logit_scale`'s value in the fixtures: `ln(1 / 0.07)`, CLIP's initial
/// temperature (every other tensor is [`seeded_values`]).
pub fn clip_values(name: &str, numel: usize) -> Vec<f32> {
    if name == "logit_scale" {
        return vec![(1.0f64 / 0.07).ln() as f32; numel];
    }
    seeded_values(name, numel)
}

/// Writes checkpoint directory `dir` for model `key`: model.safetensors with
/// the seeded weights, config.json, preprocessor_config.json, tokenizer files.
pub fn write_checkpoint(fixtures: &Fixtures, key: &str, dir: &Path) -> Res<()> {
    write_safetensors(&dir.join("model.safetensors"), &fixtures.tensor_list(key)?, clip_values).map_err(err)?;
    let copy = |from: PathBuf, to: &str| std::fs::copy(&from, dir.join(to)).map(|_| ()).map_err(|e| format!("{}: {e}", from.display()));
    copy(fixtures.dir.join(key).join("config.json"), "config.json")?;
    copy(fixtures.dir.join(key).join("preprocessor_config.json"), "preprocessor_config.json")?;
    for f in ["tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"] {
        copy(fixtures.dir.join("tokenizer").join(f), f)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- checks

/// Runs every check on `device`. `filter` keeps only checks whose name
/// contains one of its comma-separated words (e.g. `"tokenizer,b32 f32"`).
pub fn run_all(device: &Device, filter: Option<&str>) -> Report {
    run_cases(device, filter, None)
}

/// [`run_all`] on the first `images` images and `texts` texts (the longest
/// text included) when `limit` is `Some((images, texts))`: see
/// [`Fixtures::limit`].
pub fn run_cases(device: &Device, filter: Option<&str>, limit: Option<(usize, usize)>) -> Report {
    let mut report = Report::new("CLIP parity", device.name());
    let wanted = |name: &str| filter.is_none_or(|f| f.split(',').any(|w| name.contains(w.trim())));
    let fixtures = match Fixtures::open().and_then(|f| match limit {
        Some((images, texts)) => f.limit(images, texts),
        None => Ok(f),
    }) {
        Ok(f) => f,
        Err(e) => {
            report.add("fixtures", Err(e));
            return report;
        }
    };
    if wanted("tokenizer") {
        report.add("tokenizer (tokenizer.json)", check_tokenizer(&fixtures, false));
        report.add("tokenizer (vocab.json + merges.txt)", check_tokenizer(&fixtures, true));
    }
    if wanted("preprocessing") {
        for key in MODELS {
            report.add(format!("preprocessing {key}"), check_preprocessing(&fixtures, key));
        }
    }
    for key in MODELS {
        let names: Vec<String> = DTYPES.iter().map(|d| format!("model {key} {d}")).collect();
        if !names.iter().any(|n| wanted(n)) {
            continue;
        }
        let dir = match tempfile::tempdir().map_err(err).and_then(|d| write_checkpoint(&fixtures, key, d.path()).map(|()| d)) {
            Ok(d) => d,
            Err(e) => {
                report.add(format!("checkpoint {key}"), Err(e));
                continue;
            }
        };
        for (dtype, name) in DTYPES.iter().zip(&names) {
            if wanted(name) {
                for (what, outcome) in check_model(&fixtures, key, dir.path(), device, *dtype) {
                    report.add(format!("{name} {what}"), outcome);
                }
            }
        }
    }
    report
}

fn check_tokenizer(fixtures: &Fixtures, from_vocab: bool) -> Res<(bool, String)> {
    let dir = fixtures.dir.join("tokenizer");
    let config = dir.join("tokenizer_config.json");
    let tok = if from_vocab {
        ClipTokenizer::from_vocab_merges(&dir.join("vocab.json"), &dir.join("merges.txt"), Some(&config), 77)
    } else {
        ClipTokenizer::from_files(&dir.join("tokenizer.json"), Some(&config), 77)
    }
    .map_err(err)?;
    let texts = fixtures.texts()?;
    let expected = fixtures.token_ids()?;
    let got = tok.encode_batch(&texts).map_err(err)?.ids;
    let bad: Vec<String> = texts
        .iter()
        .zip(expected.iter().zip(&got))
        .filter(|(_, (e, g))| e != g)
        .map(|(t, (e, g))| format!("{t:?}: expected {e:?}, got {g:?}"))
        .collect();
    let longest = got.iter().map(Vec::len).max().unwrap_or(0);
    Ok((bad.is_empty(), if bad.is_empty() { format!("{} texts equal (longest {longest} tokens)", texts.len()) } else { bad.join("; ") }))
}

fn check_preprocessing(fixtures: &Fixtures, key: &str) -> Res<(bool, String)> {
    let image_size = 224;
    let processor = processor_from_file(fixtures.dir.join(key).join("preprocessor_config.json"), image_size).map_err(err)?;
    let (crops, shape) = fixtures.crops()?;
    let (expected, _) = fixtures.pixel_values(key)?;
    let per_image = shape[1] * shape[2] * shape[3];
    let (h, w) = (shape[2], shape[3]);
    let mut worst_mean: f64 = 0.0;
    let mut u8_mismatch = 0usize;
    let mut u8_max = 0i32;
    let mut notes = Vec::new();
    for (i, path) in fixtures.image_paths()?.iter().enumerate() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let image = load_image(path).map_err(err)?;
        let crop = processor.resize_and_crop(&image).map_err(err)?;
        if (crop.height() as usize, crop.width() as usize) != (h, w) {
            return Ok((false, format!("{name}: cropped to {}x{}, expected {w}x{h}", crop.width(), crop.height())));
        }
        let reference = &crops[i * per_image..(i + 1) * per_image];
        let mut diffs = 0;
        for (j, &r) in reference.iter().enumerate() {
            let (c, p) = (j / (h * w), j % (h * w));
            let d = (crop.as_raw()[p * 3 + c] as i32 - r as i32).abs();
            u8_max = u8_max.max(d);
            diffs += (d != 0) as usize;
        }
        u8_mismatch += diffs;
        let values = processor.preprocess(&image).map_err(err)?;
        let reference = &expected[i * per_image..(i + 1) * per_image];
        let mean = values.iter().zip(reference).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>() / per_image as f64;
        worst_mean = worst_mean.max(mean);
        if diffs > 0 || mean > 0.0 {
            notes.push(format!("{name}: {diffs} u8 values differ, mean |diff| {mean:.2e}"));
        }
    }
    let passed = worst_mean <= PIXEL_MEAN_TOL;
    let summary = format!(
        "worst mean |diff| of pixel values {worst_mean:.2e} (limit {PIXEL_MEAN_TOL:.2e}); {u8_mismatch} of {} u8 values differ (max by {u8_max}){}",
        crops.len(),
        if notes.is_empty() { String::new() } else { format!(" [{}]", notes.join("; ")) }
    );
    Ok((passed, summary))
}

/// Embeddings compared as the dtype requires: max abs in f32, cosine in
/// half precision.
fn judge(what: &str, got: &[f32], expected: &[f32], d: usize, dtype: DType) -> (bool, String) {
    if got.len() != expected.len() {
        return (false, format!("{what}: {} values, expected {}", got.len(), expected.len()));
    }
    let (max_abs, min_cos) = compare_rows(got, expected, d);
    let passed = if dtype == DType::F32 { max_abs <= F32_EMBED_TOL } else { min_cos > HALF_MIN_COSINE };
    (passed, format!("max |diff| {max_abs:.2e}, min cosine {min_cos:.6}"))
}

fn argmax_rows(values: &[f32], m: usize) -> Vec<usize> {
    values
        .chunks(m)
        .map(|r| r.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0)
        .collect()
}

/// Compares predicted top-1 labels with transformers'. In f32 every label
/// must agree. In f16/bf16 a different label is accepted only for a near
/// tie: when its reference logit is within `tie` of the reference top-1 (no
/// half-precision model can order labels closer than its own rounding
/// error); every such case is listed.
fn judge_top1(top1: &[usize], want: &[usize], reference: &[f32], m: usize, tie: f64) -> (bool, String) {
    let mut ties = Vec::new();
    let mut passed = top1.len() == want.len();
    for (i, (&got, &w)) in top1.iter().zip(want).enumerate() {
        if got == w {
            continue;
        }
        let margin = (reference[i * m + w] - reference[i * m + got]) as f64;
        if margin < tie {
            ties.push(format!("image {i}: label {got} for {w}, reference margin {margin:.2e}"));
        } else {
            passed = false;
        }
    }
    let mut detail = format!("top-1 {top1:?} (transformers {want:?})");
    if !ties.is_empty() {
        detail += &format!("; near ties within {tie:.2e}: {}", ties.join(", "));
    }
    (passed, detail)
}

type Outcomes = Vec<(&'static str, Res<(bool, String)>)>;

/// `exp(logit_scale) * image . text` for normalised embeddings on the host
/// (in f64), `[images, texts]`.
fn logits_of(logit_scale: f64, image: &[f32], text: &[f32], d: usize) -> Vec<f32> {
    let scale = logit_scale.exp();
    image
        .chunks(d)
        .flat_map(|i| text.chunks(d).map(move |t| (scale * i.iter().zip(t).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>()) as f32))
        .collect()
}

/// Compares logits with transformers' and top-1 labels (see [`judge_top1`]);
/// in f32 the logits must also be within the embedding limit carried
/// through the scaled dot product.
fn judge_logits(
    fixtures: &Fixtures,
    key: &str,
    logit_scale: f64,
    image: &[f32],
    text: &[f32],
    d: usize,
    dtype: DType,
) -> Res<(bool, String)> {
    let reference = fixtures.expected(key, "logits_per_image")?.0;
    let m = text.len() / d;
    let logits = logits_of(logit_scale, image, text, d);
    if logits.len() != reference.len() {
        return Ok((false, format!("{} logits, expected {}", logits.len(), reference.len())));
    }
    let max_abs = logits.iter().zip(&reference).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
    let limit = logit_scale.exp() * 2.0 * F32_EMBED_TOL * (d as f64).sqrt();
    // Half precision: labels closer than twice the largest logit error seen
    // are near ties.
    let tie = if dtype == DType::F32 { 0.0 } else { 2.0 * max_abs };
    let (top1_ok, detail) = judge_top1(&argmax_rows(&logits, m), &fixtures.top1(key)?, &reference, m, tie);
    let passed = top1_ok && (dtype != DType::F32 || max_abs <= limit);
    Ok((passed, format!("{detail}; max |logit diff| {max_abs:.2e} (f32 limit {limit:.2e})")))
}

fn check_model(fixtures: &Fixtures, key: &str, dir: &Path, device: &Device, dtype: DType) -> Outcomes {
    let options = ClipOptions { device: device.clone(), dtype, batch_size: 4, download_progress: false, ..ClipOptions::default() };
    let clip = match Clip::from_dir(dir, &options) {
        Ok(c) => c,
        Err(e) => return vec![("load", Err(e.to_string()))],
    };
    let mut out: Outcomes = Vec::new();
    let d = clip.embedding_dim();
    let scale = clip.model().logit_scale();
    let expected = |name: &str| fixtures.expected(key, name).map(|(v, _)| v);

    // The model alone, on the reference pixel values and token ids.
    let image_embeds = (|| -> Res<Vec<f32>> {
        let (px, shape) = fixtures.pixel_values(key)?;
        let px = Tensor::from_vec(px, shape, device).map_err(err)?;
        let feats = clip.model().get_image_features(&px).map_err(err)?.to_dtype(DType::F32).map_err(err)?;
        l2_normalize(&feats).map_err(err)?.to_vec::<f32>().map_err(err)
    })();
    let text_embeds = (|| -> Res<Vec<f32>> {
        let tokens = TokenBatch { ids: fixtures.token_ids()?, pad_id: clip.tokenizer().pad_id() };
        let feats = clip.model().get_text_features(&tokens, device).map_err(err)?.to_dtype(DType::F32).map_err(err)?;
        l2_normalize(&feats).map_err(err)?.to_vec::<f32>().map_err(err)
    })();
    out.push(("image embeddings", image_embeds.clone().and_then(|g| Ok(judge("image", &g, &expected("image_embeds")?, d, dtype)))));
    out.push(("text embeddings", text_embeds.clone().and_then(|g| Ok(judge("text", &g, &expected("text_embeds")?, d, dtype)))));
    out.push(("logits and top-1", image_embeds.and_then(|i| judge_logits(fixtures, key, scale, &i, &text_embeds?, d, dtype))));

    // The whole pipeline: image files and texts in.
    out.push((
        "pipeline",
        (|| {
            let images = fixtures.image_paths()?.iter().map(load_image).collect::<Result<Vec<_>, _>>().map_err(err)?;
            let texts = fixtures.texts()?;
            let got_i = clip.embed_images(&images).map_err(err)?.to_vec::<f32>().map_err(err)?;
            let got_t = clip.embed_texts(&texts).map_err(err)?.to_vec::<f32>().map_err(err)?;
            let (pi, di) = judge("images", &got_i, &expected("image_embeds")?, d, dtype);
            let (pt, dt) = judge("texts", &got_t, &expected("text_embeds")?, d, dtype);
            let (pl, dl) = judge_logits(fixtures, key, scale, &got_i, &got_t, d, dtype)?;
            // classify() must rank as the embeddings do.
            let probs = clip.classify(&images, &texts).map_err(err)?;
            let ranked: Vec<usize> = probs.iter().map(|p| argmax_rows(p, p.len())[0]).collect();
            let by_embeds = argmax_rows(&logits_of(scale, &got_i, &got_t, d), texts.len());
            let pc = ranked == by_embeds;
            Ok((pi && pt && pl && pc, format!("images {di}; texts {dt}; {dl}; classify top-1 {ranked:?}")))
        })(),
    ));
    out
}

//! `tessera clip`: zero-shot classification, embeddings and a benchmark of a
//! CLIP checkpoint (a local directory or a Hugging Face hub id).
//!
//! ```text
//! tessera clip classify --model DIR_OR_ID --image cat.jpg --labels "a photo of a cat" --labels "a photo of a dog"
//! tessera clip embed --model DIR_OR_ID --image cat.jpg --text "a cat" --json
//! tessera clip bench --model DIR [--inputs inputs.safetensors] --json
//! ```
//!
//! Progress bars (loading, batches) go to stderr and only show on a terminal;
//! results go to stdout.

use crate::bench::{time_runs, BenchOptions};
use crate::ui::{advance, bar, err, Res};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tessera_clip::{load_image, Clip, ClipOptions, ReadMode, RgbImage, TokenBatch};
use tessera_tensor::safetensors::SafeTensorsFile;
use tessera_tensor::{DType, Device, Tensor};

/// `tessera clip ...`.
#[derive(Args)]
pub struct ClipArgs {
    #[command(subcommand)]
    pub command: ClipCommand,
}

/// The `clip` subcommands.
#[derive(Subcommand)]
pub enum ClipCommand {
    /// Rank labels for each image (zero-shot classification).
    Classify(ClassifyArgs),
    /// Print normalised image and text embeddings.
    Embed(EmbedArgs),
    /// Time image and text embedding (the model's forward pass) on a device.
    Bench(BenchArgs),
}

/// Which checkpoint, where and how to run it.
#[derive(Args)]
pub struct ModelArgs {
    /// A checkpoint directory (config.json, model.safetensors, tokenizer.json), or a hub id such as openai/clip-vit-base-patch32.
    #[arg(long)]
    pub model: String,
    /// Device: cpu, or KIND[:INDEX] of a compiled-in GPU backend.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Weights and compute dtype: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Images or texts per forward pass.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Refuse a checkpoint holding tensors the model does not use (by default they are listed in a warning).
    #[arg(long)]
    pub strict: bool,
    /// Read checkpoint files into memory instead of memory-mapping them (for network or FUSE filesystems, or files
    /// that may change while open); the same as TESSERA_MMAP=0.
    #[arg(long)]
    pub no_mmap: bool,
}

/// `tessera clip classify`.
#[derive(Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Image files (PNG, JPEG, GIF, BMP, WebP).
    #[arg(long = "image", required = true, num_args = 1..)]
    pub images: Vec<PathBuf>,
    /// A candidate label; repeat for each label.
    #[arg(long = "labels", required = true)]
    pub labels: Vec<String>,
    /// Show only the best N labels per image.
    #[arg(long)]
    pub top: Option<usize>,
}

/// `tessera clip embed`.
#[derive(Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Image files to embed.
    #[arg(long = "image", num_args = 1..)]
    pub images: Vec<PathBuf>,
    /// Texts to embed; repeat for each text.
    #[arg(long = "text")]
    pub texts: Vec<String>,
    /// Print every embedding as JSON instead of a summary table.
    #[arg(long)]
    pub json: bool,
}

/// `tessera clip bench`.
#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Inputs and expected features (safetensors: `images.B` [B, 3, S, S] f32, `texts.B` [B, T] i64 with `texts.B.lengths`
    /// [B], optional `images.B.expected` / `texts.B.expected` [B, dim] f32 projected features), as benches/compare_clip.py
    /// writes them. Without it, seeded random pixels and fixed captions are used.
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Image batch sizes to time (without --inputs).
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub image_batches: Vec<usize>,
    /// Text batch sizes to time (without --inputs).
    #[arg(long, value_delimiter = ',', default_value = "32")]
    pub text_batches: Vec<usize>,
    /// Time budget per case, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub budget_ms: u64,
    /// Print one JSON object per case instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `clip` subcommand; errors are printed to stderr.
pub fn run(args: &ClipArgs) -> ExitCode {
    let outcome = match &args.command {
        ClipCommand::Classify(a) => classify(a),
        ClipCommand::Embed(a) => embed(a),
        ClipCommand::Bench(a) => bench(a),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(args: &ModelArgs) -> Res<Clip> {
    let device = Device::parse(&args.device).map_err(err)?;
    let dtype: DType = args.dtype.parse().map_err(err)?;
    let read_mode = if args.no_mmap { ReadMode::Read } else { ReadMode::from_env() };
    let options = ClipOptions { device, dtype, batch_size: args.batch_size, download_progress: true, read_mode, strict: args.strict };
    let bar = bar("loading model");
    let clip = Clip::load_with_progress(&args.model, &options, &mut advance(&bar)).map_err(err)?;
    bar.finish_and_clear();
    if !clip.unused_tensors().is_empty() {
        eprintln!("warning: {} (--strict refuses such a checkpoint)", clip.unused_tensors().summary());
    }
    Ok(clip)
}

/// An error unless every value of the output called `what` is finite: JSON
/// has no NaN or infinity (serde would print `null`), and a non-finite
/// embedding or probability is a broken model, not a result.
pub fn require_finite(what: &str, values: &[f32]) -> Res<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what} is not finite (value {i} is {}): the checkpoint's weights or the input hold NaN or infinite values",
            values[i]
        )),
    }
}

fn load_images(paths: &[PathBuf]) -> Res<Vec<RgbImage>> {
    paths.iter().map(|p| load_image(p).map_err(err)).collect()
}

/// Checks that the model's processor can take every image, so that an error
/// names the file rather than a place in a batch.
fn check_images(clip: &Clip, paths: &[PathBuf], images: &[RgbImage]) -> Res<()> {
    paths.iter().zip(images).try_for_each(|(p, img)| clip.processor().check(img, &p.display().to_string()).map_err(err))
}

fn classify(args: &ClassifyArgs) -> Res<()> {
    if args.labels.is_empty() {
        return Err("give at least one --labels".into());
    }
    let images = load_images(&args.images)?;
    let clip = load(&args.model)?;
    check_images(&clip, &args.images, &images)?;
    let bar = bar("classifying");
    let probs = clip.classify_with_progress(&images, &args.labels, &mut advance(&bar)).map_err(err)?;
    bar.finish_and_clear();
    for (path, p) in args.images.iter().zip(&probs) {
        require_finite(&format!("the label probabilities of image {}", path.display()), p)?;
    }
    print!("{}", ranked_table(&args.images, &args.labels, &probs, args.top));
    Ok(())
}

/// For each image, its labels ranked by probability.
pub fn ranked_table(images: &[PathBuf], labels: &[String], probs: &[Vec<f32>], top: Option<usize>) -> String {
    let mut out = String::new();
    for (path, p) in images.iter().zip(probs) {
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
        out += &format!("{}\n  rank  probability  label\n", path.display());
        for (rank, &i) in order.iter().take(top.unwrap_or(p.len())).enumerate() {
            out += &format!("  {:>4}  {:>11.4}  {}\n", rank + 1, p[i], labels[i]);
        }
    }
    out
}

fn embed(args: &EmbedArgs) -> Res<()> {
    if args.images.is_empty() && args.texts.is_empty() {
        return Err("give at least one --image or --text".into());
    }
    let images = load_images(&args.images)?;
    let clip = load(&args.model)?;
    check_images(&clip, &args.images, &images)?;
    let mut rows: Vec<(&str, String, Vec<f32>)> = Vec::new();
    let dim = clip.embedding_dim();
    if !images.is_empty() {
        let bar = bar("embedding images");
        let e = clip.embed_images_with_progress(&images, &mut advance(&bar)).map_err(err)?.to_vec::<f32>().map_err(err)?;
        bar.finish_and_clear();
        rows.extend(args.images.iter().zip(e.chunks(dim)).map(|(p, v)| ("image", p.display().to_string(), v.to_vec())));
    }
    if !args.texts.is_empty() {
        let bar = bar("embedding texts");
        let e = clip.embed_texts_with_progress(&args.texts, &mut advance(&bar)).map_err(err)?.to_vec::<f32>().map_err(err)?;
        bar.finish_and_clear();
        rows.extend(args.texts.iter().zip(e.chunks(dim)).map(|(t, v)| ("text", t.clone(), v.to_vec())));
    }
    for (kind, input, v) in &rows {
        require_finite(&format!("the embedding of {kind} {input:?}"), v)?;
    }
    if args.json {
        let list: Vec<Value> = rows.iter().map(|(kind, input, v)| json!({"kind": kind, "input": input, "embedding": v})).collect();
        let doc = json!({"model": args.model.model, "dtype": args.model.dtype, "dim": dim, "embeddings": list});
        println!("{doc}");
    } else {
        println!("{:<6} {:>5}  {:<44}  input", "kind", "dim", "first values");
        for (kind, input, v) in &rows {
            let head: Vec<String> = v.iter().take(4).map(|x| format!("{x:+.4}")).collect();
            println!("{kind:<6} {:>5}  {:<44}  {input}", v.len(), head.join(" ") + " ...");
        }
    }
    Ok(())
}

/// One benchmark case: a batch of pixel values or token ids, and what the
/// projected features should be.
struct Case {
    name: String,
    batch: usize,
    input: Input,
    expected: Option<Vec<f32>>,
}

enum Input {
    Pixels(Tensor),
    Tokens(TokenBatch),
}

impl Case {
    fn run(&self, clip: &Clip) -> tessera_clip::Result<Tensor> {
        match &self.input {
            Input::Pixels(px) => clip.model().get_image_features(px),
            Input::Tokens(t) => clip.model().get_text_features(t, clip.device()),
        }
    }
}

/// Cases from an inputs file written by benches/compare_clip.py.
fn cases_from_file(path: &Path, device: &Device) -> Res<Vec<Case>> {
    let file = SafeTensorsFile::open(path).map_err(err)?;
    let cpu = Device::cpu();
    let mut cases = Vec::new();
    for name in file.names() {
        let mut parts = name.split('.');
        let (kind, batch, rest) = (parts.next(), parts.next().and_then(|b| b.parse::<usize>().ok()), parts.next());
        let (Some(kind), Some(batch), None) = (kind, batch, rest) else { continue };
        let expected = match file.contains(&format!("{name}.expected")) {
            true => Some(
                file.load(&format!("{name}.expected"), &cpu)
                    .map_err(err)?
                    .to_dtype(DType::F32)
                    .map_err(err)?
                    .to_vec::<f32>()
                    .map_err(err)?,
            ),
            false => None,
        };
        let input = match kind {
            "images" => Input::Pixels(file.load(name, device).map_err(err)?),
            "texts" => {
                let ids = file.load(name, &cpu).map_err(err)?;
                let lengths = file.load(&format!("{name}.lengths"), &cpu).map_err(err)?.to_vec::<i64>().map_err(err)?;
                let t = ids.dims().get(1).copied().unwrap_or(0);
                let ids = ids.to_vec::<i64>().map_err(err)?;
                let rows =
                    lengths.iter().enumerate().map(|(i, &n)| ids[i * t..i * t + n as usize].iter().map(|&x| x as u32).collect()).collect();
                Input::Tokens(TokenBatch { ids: rows, pad_id: 0 })
            }
            _ => continue,
        };
        cases.push(Case { name: format!("{kind} b{batch}"), batch, input, expected });
    }
    Ok(cases)
}

/// Seeded pixels and fixed captions, for a run without an inputs file.
fn synthetic_cases(clip: &Clip, args: &BenchArgs) -> Res<Vec<Case>> {
    const CAPTIONS: [&str; 4] =
        ["a photo of a cat", "a diagram of a neural network", "two dogs playing in the snow", "a red car parked by a river"];
    let s = clip.model().config().vision_config.image_size;
    let mut cases = Vec::new();
    for &b in &args.image_batches {
        let px = Tensor::randn(7 + b as u64, 0.0, 1.0, vec![b, 3, s, s], DType::F32, clip.device()).map_err(err)?;
        cases.push(Case { name: format!("images b{b}"), batch: b, input: Input::Pixels(px), expected: None });
    }
    for &b in &args.text_batches {
        let texts: Vec<&str> = (0..b).map(|i| CAPTIONS[i % CAPTIONS.len()]).collect();
        let tokens = clip.tokenizer().encode_batch(&texts).map_err(err)?;
        cases.push(Case { name: format!("texts b{b}"), batch: b, input: Input::Tokens(tokens), expected: None });
    }
    Ok(cases)
}

/// Checks a case's features before it is timed: finite, and within cosine
/// 0.9999 (f32) or 0.999 (f16/bf16) of the expected features per row (the
/// least cosine; `None` when the case has no expected features).
fn check(case: &Case, features: &Tensor, dtype: DType) -> Res<Option<f64>> {
    let got = features.to_dtype(DType::F32).map_err(err)?.to_vec::<f32>().map_err(err)?;
    require_finite(&format!("the features of case {}", case.name), &got)?;
    let Some(expected) = &case.expected else { return Ok(None) };
    if expected.len() != got.len() {
        return Err(format!("{}: {} features, expected {}", case.name, got.len(), expected.len()));
    }
    let d = got.len() / case.batch.max(1);
    let min_cos = got
        .chunks(d)
        .zip(expected.chunks(d))
        .map(|(a, b)| {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            dot / (norm(a) * norm(b))
        })
        .fold(1.0, f64::min);
    let limit = if dtype == DType::F32 { 0.9999 } else { 0.999 };
    // A NaN cosine (a zero row) fails too.
    if min_cos.is_nan() || min_cos < limit {
        return Err(format!("{}: features differ from the expected ones (min cosine {min_cos:.6} < {limit})", case.name));
    }
    Ok(Some(min_cos))
}

fn bench(args: &BenchArgs) -> Res<()> {
    let clip = load(&args.model)?;
    let dtype = clip.model().dtype();
    let cases = match &args.inputs {
        Some(path) => cases_from_file(path, clip.device())?,
        None => synthetic_cases(&clip, args)?,
    };
    if cases.is_empty() {
        return Err("no benchmark cases (an inputs file needs images.B or texts.B tensors)".into());
    }
    let opts = BenchOptions { budget: Duration::from_millis(args.budget_ms), ..Default::default() };
    if !args.json {
        println!("{:<12} {:>5} {:>6} {:>10} {:>10} {:>10}  check", "case", "dtype", "iters", "median ms", "best ms", "items/s");
    }
    for case in &cases {
        let min_cos = check(case, &case.run(&clip).map_err(err)?, dtype)?;
        let timing = time_runs(clip.device(), &opts, |_| case.run(&clip).map(drop)).map_err(err)?;
        let median_ms = timing.median.as_secs_f64() * 1e3;
        let per_s = case.batch as f64 / timing.median.as_secs_f64().max(1e-12);
        if args.json {
            let mut line = json!({"case": case.name, "batch": case.batch, "dtype": dtype.to_string(), "iters": timing.iters,
                "median_ms": median_ms, "best_ms": timing.best.as_secs_f64() * 1e3, "items_per_s": per_s});
            if let Some(c) = min_cos {
                line["min_cosine"] = json!(c);
            }
            println!("{line}");
        } else {
            let check = min_cos.map_or_else(|| "finite".to_string(), |c| format!("cos >= {c:.6}"));
            println!(
                "{:<12} {:>5} {:>6} {:>10.2} {:>10.2} {:>10.1}  {check}",
                case.name,
                dtype,
                timing.iters,
                median_ms,
                timing.best.as_secs_f64() * 1e3,
                per_s
            );
        }
    }
    Ok(())
}

//! `tessera janus bench`: times Janus-Pro's understanding (one image, a
//! fixed number of new tokens) and text-to-image generation of whole grids
//! with classifier-free guidance at several batch sizes, on a loaded
//! checkpoint (benches/compare_janus.py runs it beside transformers).
//!
//! ```text
//! tessera janus bench --model DIR --image PATH [--question Q] [--prompt P] [--new-tokens 32] [--images 1,4] [--json]
//! ```
//!
//! Understanding is the whole call from the decoded image: processing,
//! vision tower and aligner, prefill, then greedy steps with the stop id
//! masked until `--new-tokens` exist, in new tokens per second. Generation
//! is greedy at the checkpoint's guidance scale: every image token of `n`
//! grids in one batched pass, then the VQ decode, in image tokens per
//! second (and images per minute beside it).

use crate::bench::{report_case, time_runs, LongRunArgs};
use crate::ui::{err, LoadArgs, Res};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use tessera_hf::LoadOptions;
use tessera_janus::{load_image, GenerationConfig, ImageSampling, Janus, SamplingConfig};

/// `tessera janus bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// A checkpoint directory.
    #[arg(long)]
    pub model: String,
    /// The image of the understanding case.
    #[arg(long)]
    pub image: PathBuf,
    /// The understanding question.
    #[arg(long, default_value = "Describe this image in detail.")]
    pub question: String,
    /// The generation prompt.
    #[arg(long, default_value = "A watercolor painting of a quiet mountain lake at dawn.")]
    pub prompt: String,
    /// New tokens of the understanding case.
    #[arg(long, default_value_t = 32)]
    pub new_tokens: usize,
    /// Batch sizes of the generation cases.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub images: Vec<usize>,
    #[command(flatten)]
    pub runs: LongRunArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Print one JSON object per case instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera janus bench`.
pub fn bench(args: &BenchArgs) -> Res<()> {
    let options = LoadOptions { download_progress: false, ..args.load.options()? };
    let (device, dtype) = (options.device.clone(), options.dtype);
    let janus = Janus::load_with_progress(&args.model, &options, &mut |_, _| {}).map_err(err)?;
    let image = load_image(&args.image).map_err(err)?;
    let opts = args.runs.options();
    if !args.json {
        println!("{:<12} {:>5} {:>6} {:>10} {:>10} {:>10}  check", "case", "dtype", "iters", "median ms", "best ms", "rate");
    }
    let dtype_name = dtype.to_string();
    let mut config = GenerationConfig::greedy(args.new_tokens);
    config.eos_token_ids = janus.generation_config().eos_token_ids.clone();
    config.min_new_tokens = args.new_tokens;
    let mut ids = Vec::new();
    let timing = time_runs(&device, &opts, |_| {
        ids = janus.ask(&[&image], &args.question, &config, &mut |_, _| {})?.token_ids;
        Ok::<(), tessera_janus::Error>(())
    })
    .map_err(err)?;
    report_case(
        args.json,
        &dtype_name,
        &format!("understanding {}", args.new_tokens),
        ids.len(),
        "new tokens",
        &timing,
        json!({"ids": ids}),
    );
    let sampling = ImageSampling { guidance_scale: janus.image_defaults().guidance_scale, sampling: SamplingConfig::greedy(), seed: 0 };
    let per_image = janus.model().config().vision_config.num_image_tokens;
    for &n in &args.images {
        let mut grids = Vec::new();
        let timing = time_runs(&device, &opts, |_| {
            grids = janus.generate_image_tokens(&args.prompt, n, &sampling, &mut |_, _| {})?;
            janus.decode_images(&grids)?;
            Ok::<(), tessera_janus::Error>(())
        })
        .map_err(err)?;
        let images_per_min = n as f64 * 60.0 / timing.median.as_secs_f64().max(1e-12);
        let check = json!({"images_per_min": images_per_min, "ids": grids.first()});
        report_case(args.json, &dtype_name, &format!("generate n{n}"), n * per_image, "image tokens", &timing, check);
    }
    Ok(())
}

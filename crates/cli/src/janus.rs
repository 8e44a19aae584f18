//! `tessera janus`: answers about images and images drawn from prompts,
//! from a Janus-Pro checkpoint (a local directory or a Hugging Face hub id
//! such as deepseek-community/Janus-Pro-1B).
//!
//! ```text
//! tessera janus ask --model DIR_OR_ID [--image PATH ...] "question" [--max-new-tokens N]
//!     [--sample --temperature T --top-p P --top-k K --seed S] [--dtype f32|f16|bf16] [--device D] [--json]
//! tessera janus imagine --model DIR_OR_ID "prompt" [-n N] [--cfg S] [--temperature T] [--seed S]
//!     [--out DIR] [--dtype ...] [--device D] [--json]
//! ```
//!
//! `ask` prints the answer (`--json`: `{"text", "token_ids"}`, the
//! generated ids with the end-of-sequence id when it stopped on it).
//! `imagine` writes `DIR/janus_0.png ...` (`--json`: `{"images": [{"path",
//! "image_token_ids"}]}`, the grid row-major). Defaults come from the
//! checkpoint's generation_config.json (greedy unless it sets `do_sample`;
//! its `guidance_scale`, else 5); flags override them, and `--temperature
//! 0` is greedy. Progress bars go to stderr; results to stdout.

use crate::clip::require_finite;
use crate::ui::{advance, bar, err, write_images, LoadArgs, Res, SamplingArgs};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use tessera_janus::pipeline::sampling_at;
use tessera_janus::{load_image, GenerationConfig, ImageSampling, Janus, RgbImage};

/// `tessera janus ...`.
#[derive(Args)]
pub struct JanusArgs {
    #[command(subcommand)]
    pub command: JanusCommand,
}

/// The `janus` subcommands.
#[derive(Subcommand)]
pub enum JanusCommand {
    /// Answer a question about images (or a text-only prompt).
    Ask(AskArgs),
    /// Draw images from a prompt.
    Imagine(ImagineArgs),
    /// Time understanding and image generation on a checkpoint.
    Bench(crate::janus_bench::BenchArgs),
}

/// `tessera janus ask`.
#[derive(Args)]
pub struct AskArgs {
    /// A checkpoint directory (config.json, model.safetensors, tokenizer.json), or a hub id such as deepseek-community/Janus-Pro-1B.
    #[arg(long)]
    pub model: String,
    /// An image file (PNG, JPEG, GIF, BMP, WebP); repeat for several, shown before the question in this order.
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,
    /// The question.
    pub question: String,
    /// Sampling flags; without --max-new-tokens, generation_config.json's max_new_tokens, else 512.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Print one JSON object: {"text", "token_ids"}.
    #[arg(long)]
    pub json: bool,
}

/// `tessera janus imagine`.
#[derive(Args)]
pub struct ImagineArgs {
    /// A checkpoint directory or hub id.
    #[arg(long)]
    pub model: String,
    /// What to draw.
    pub prompt: String,
    /// Images to draw (in one batched pass).
    #[arg(short = 'n', long = "num-images", default_value_t = 1)]
    pub n: usize,
    /// Classifier-free guidance scale (default: generation_config.json's guidance_scale, else 5).
    #[arg(long, allow_negative_numbers = true)]
    pub cfg: Option<f64>,
    /// Sampling temperature; 0 is greedy (default: generation_config.json's do_sample and temperature).
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f64>,
    /// Seed of the sampler.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory the images are written to (janus_0.png, janus_1.png, ...).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Print one JSON object: {"images": [{"path", "image_token_ids"}]}.
    #[arg(long)]
    pub json: bool,
}

/// Answers up to this many tokens when neither the flag nor the checkpoint
/// says.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 512;

/// Runs a `janus` subcommand; errors are printed to stderr.
pub fn run(args: &JanusArgs) -> ExitCode {
    let outcome = match &args.command {
        JanusCommand::Ask(a) => ask(a),
        JanusCommand::Imagine(a) => imagine(a),
        JanusCommand::Bench(a) => crate::janus_bench::bench(a),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(model: &str, load: &LoadArgs) -> Res<Janus> {
    let options = load.options()?;
    let loading = bar("loading model");
    let janus = Janus::load_with_progress(model, &options, &mut advance(&loading)).map_err(err)?;
    loading.finish_and_clear();
    if !janus.unused_tensors().is_empty() {
        eprintln!("warning: {} (--strict refuses such a checkpoint)", janus.unused_tensors().summary());
    }
    Ok(janus)
}

/// The checkpoint's text-generation defaults with the flags applied.
pub fn answer_config(defaults: &GenerationConfig, args: &AskArgs) -> Res<GenerationConfig> {
    let mut g = defaults.clone();
    // transformers' max_length of 20 counts the prompt, which for an image
    // alone is hundreds of tokens: without an explicit limit the answer
    // gets a budget of its own.
    if !g.max_new_tokens_is_set() {
        g.set_max_new_tokens(DEFAULT_MAX_NEW_TOKENS);
    }
    args.sampling.apply(&mut g);
    g.num_beams = 1;
    g.validate().map_err(err)?;
    Ok(g)
}

fn ask(args: &AskArgs) -> Res<()> {
    let images: Vec<RgbImage> = args.images.iter().map(|p| load_image(p).map_err(err)).collect::<Res<_>>()?;
    let janus = load(&args.model, &args.load)?;
    let config = answer_config(janus.generation_config(), args)?;
    for key in janus.unsupported_text_keys() {
        eprintln!("warning: generation_config.json sets '{key}', which is not implemented: it is ignored");
    }
    let refs: Vec<&RgbImage> = images.iter().collect();
    let ids = janus.processor().understanding_ids(&args.question, refs.len()).map_err(err)?;
    let features = if refs.is_empty() {
        None
    } else {
        let aligned = janus.model().get_image_features(&janus.pixel_values(&refs).map_err(err)?).map_err(err)?.aligned;
        require_finite("the image features", &aligned.to_f32_vec().map_err(err)?)?;
        Some(aligned)
    };
    let progress = bar("answering");
    progress.set_length(config.max_new_tokens as u64);
    let mut on_token = |step: usize, _id: u32| progress.set_position(step as u64 + 1);
    let answer = janus.generate_from(&ids, features.as_ref(), &config, &mut on_token).map_err(err)?;
    progress.finish_and_clear();
    if args.json {
        println!("{}", json!({"text": answer.text, "token_ids": answer.token_ids}));
    } else {
        println!("{}", answer.text.trim());
    }
    Ok(())
}

/// The checkpoint's image sampling with the flags applied.
pub fn image_sampling(janus: &Janus, args: &ImagineArgs) -> Res<ImageSampling> {
    let mut s = janus.default_image_sampling();
    if let Some(scale) = args.cfg {
        s.guidance_scale = scale;
    }
    if !(s.guidance_scale.is_finite() && s.guidance_scale >= 0.0) {
        return Err(format!("--cfg must be finite and at least 0, got {}", s.guidance_scale));
    }
    if let Some(t) = args.temperature {
        if !(t.is_finite() && t >= 0.0) {
            return Err(format!("--temperature must be finite and at least 0, got {t}"));
        }
        s.sampling = sampling_at(janus.generation_config(), t);
    }
    if let Some(seed) = args.seed {
        s.seed = seed;
    }
    Ok(s)
}

fn imagine(args: &ImagineArgs) -> Res<()> {
    if args.n == 0 {
        return Err("-n must be at least 1".into());
    }
    let janus = load(&args.model, &args.load)?;
    let sampling = image_sampling(&janus, args)?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let progress = bar("drawing");
    let grids = janus.generate_image_tokens(&args.prompt, args.n, &sampling, &mut advance(&progress)).map_err(err)?;
    progress.finish_and_clear();
    let decoding = bar("decoding");
    let images = janus.decode_images(&grids).map_err(err)?;
    decoding.finish_and_clear();
    write_images(&args.out, "janus", &grids, &images, args.json)
}

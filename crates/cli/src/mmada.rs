//! `tessera mmada`: text and answers about images by masked diffusion, and
//! images drawn or inpainted by MaskGIT, from an MMaDA model directory.
//!
//! ```text
//! tessera mmada chat --model DIR "prompt" [--gen-length N --block-length N --steps N
//!     --temperature T --cfg S --remasking low_confidence|random --seed S] [--prefix-cache] [--json]
//! tessera mmada ask --model DIR --image PATH "question" [the same flags] [--json]
//! tessera mmada imagine --model DIR "prompt" [-n N] [--steps T] [--cfg S] [--temperature T]
//!     [--seed S] [--max-text-len N] [--out DIR] [--json]
//! tessera mmada inpaint --model DIR --image PATH --mask PATH "prompt" [the imagine flags]
//! tessera mmada bench --model DIR [--forward 1x256,2x1539] [--json]
//! ```
//!
//! Every command takes `--vq DIR` (MAGVIT-v2 where it lives apart from the
//! model) and the load flags (`--device`, `--dtype`, `--strict`,
//! `--no-mmap`). `chat` and `ask` print the answer (`--json`: `{"text",
//! "token_ids"}`, the `gen_length` generated ids). `imagine` and `inpaint`
//! write `DIR/mmada_0.png ...` (`--json`: `{"images": [{"path",
//! "image_token_ids"}]}`, the codes row-major). A progress bar per
//! denoising step goes to stderr.

use crate::ui::{advance, bar, err, write_images, LoadArgs, Res};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use tessera_mmada::{ImageSettings, Mmada, Remasking, TextGeneration};
use tessera_vision::{load_image, RgbImage};

/// `tessera mmada ...`.
#[derive(Args)]
pub struct MmadaArgs {
    #[command(subcommand)]
    pub command: MmadaCommand,
}

/// The `mmada` subcommands.
#[derive(Subcommand)]
pub enum MmadaCommand {
    /// Answer a prompt.
    Chat(ChatArgs),
    /// Answer a question about an image.
    Ask(AskArgs),
    /// Draw images from a prompt.
    Imagine(ImagineArgs),
    /// Redraw the part of an image a mask marks.
    Inpaint(InpaintArgs),
    /// Time the forward pass and text generation on a model directory.
    Bench(crate::mmada_bench::BenchArgs),
}

/// Where the model is, and how it is loaded.
#[derive(Args)]
pub struct ModelArgs {
    /// The model directory (config.json, model.safetensors, tokenizer.json; MAGVIT-v2 as magvit_config.json + magvit.safetensors), or a hub id.
    #[arg(long)]
    pub model: String,
    /// MAGVIT-v2's directory where it is not in the model directory (magvit_config.json or config.json, and the weights).
    #[arg(long)]
    pub vq: Option<String>,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// The text sampler's flags (defaults: generate.py's).
#[derive(Args)]
pub struct TextArgs {
    /// Tokens to generate.
    #[arg(long, default_value_t = 128)]
    pub gen_length: usize,
    /// Tokens per semi-autoregressive block (a divisor of --gen-length).
    #[arg(long, default_value_t = 32)]
    pub block_length: usize,
    /// Denoising steps in all (a multiple of the number of blocks).
    #[arg(long, default_value_t = 128)]
    pub steps: usize,
    /// Gumbel-noise temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Classifier-free guidance scale; 0 is none.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub cfg: f64,
    /// Which masked positions are committed first: low_confidence or random.
    #[arg(long, default_value = "low_confidence")]
    pub remasking: String,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Reuse the keys and values before the current block across its steps (Fast-dLLM's prefix cache): faster, not exact.
    #[arg(long)]
    pub prefix_cache: bool,
}

impl TextArgs {
    fn generation(&self, mmada: &Mmada) -> Res<TextGeneration> {
        let mut g = mmada.default_text_generation();
        g.gen_length = self.gen_length;
        g.block_length = self.block_length;
        g.steps = self.steps;
        g.temperature = self.temperature;
        g.cfg_scale = self.cfg;
        g.remasking = self.remasking.parse::<Remasking>().map_err(err)?;
        g.prefix_cache = self.prefix_cache;
        g.schedule().map_err(err)?;
        Ok(g)
    }
}

/// `tessera mmada chat`.
#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt (one user turn).
    pub prompt: String,
    #[command(flatten)]
    pub text: TextArgs,
    /// Print one JSON object: {"text", "token_ids"}.
    #[arg(long)]
    pub json: bool,
}

/// `tessera mmada ask`.
#[derive(Args)]
pub struct AskArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The image (PNG, JPEG, GIF, BMP, WebP).
    #[arg(long)]
    pub image: PathBuf,
    /// The question.
    pub question: String,
    #[command(flatten)]
    pub text: TextArgs,
    /// Print one JSON object: {"text", "token_ids"}.
    #[arg(long)]
    pub json: bool,
}

/// The image sampler's flags (defaults: the reference README's run).
#[derive(Args)]
pub struct ImageArgs {
    /// Images to draw (in one batched pass).
    #[arg(short = 'n', long = "num-images", default_value_t = 1)]
    pub n: usize,
    /// MaskGIT steps.
    #[arg(long, default_value_t = 15)]
    pub steps: usize,
    /// Classifier-free guidance scale; 0 is none.
    #[arg(long, default_value_t = 3.5, allow_negative_numbers = true)]
    pub cfg: f64,
    /// Temperature of the re-masking noise.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub temperature: f64,
    /// Seed of the draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Text slots of the prompt layout (the model's training length).
    #[arg(long, default_value_t = tessera_mmada::pipeline::DEFAULT_MAX_TEXT_LEN)]
    pub max_text_len: usize,
    /// Directory the images are written to (mmada_0.png, mmada_1.png, ...).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Print one JSON object: {"images": [{"path", "image_token_ids"}]}.
    #[arg(long)]
    pub json: bool,
}

impl ImageArgs {
    fn settings(&self) -> Res<ImageSettings> {
        if self.n == 0 {
            return Err("-n must be at least 1".into());
        }
        if self.steps == 0 {
            return Err("--steps must be at least 1".into());
        }
        for (name, v) in [("--cfg", self.cfg), ("--temperature", self.temperature)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} must be finite and at least 0, got {v}"));
            }
        }
        Ok(ImageSettings {
            timesteps: self.steps,
            guidance_scale: self.cfg,
            temperature: self.temperature,
            max_text_len: self.max_text_len,
            seed: self.seed,
        })
    }
}

/// `tessera mmada imagine`.
#[derive(Args)]
pub struct ImagineArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// What to draw.
    pub prompt: String,
    #[command(flatten)]
    pub image: ImageArgs,
}

/// `tessera mmada inpaint`.
#[derive(Args)]
pub struct InpaintArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The image to change.
    #[arg(long)]
    pub image: PathBuf,
    /// The mask, of the image's size: white where the image is redrawn.
    #[arg(long)]
    pub mask: PathBuf,
    /// What the redrawn part shows.
    pub prompt: String,
    #[command(flatten)]
    pub settings: ImageArgs,
}

/// Runs an `mmada` subcommand; errors are printed to stderr.
pub fn run(args: &MmadaArgs) -> ExitCode {
    let outcome = match &args.command {
        MmadaCommand::Chat(a) => chat(a),
        MmadaCommand::Ask(a) => ask(a),
        MmadaCommand::Imagine(a) => imagine(a),
        MmadaCommand::Inpaint(a) => inpaint(a),
        MmadaCommand::Bench(a) => crate::mmada_bench::bench(a),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(m: &ModelArgs) -> Res<Mmada> {
    let options = m.load.options()?;
    let loading = bar("loading model");
    let mmada = Mmada::load(&m.model, m.vq.as_deref(), &options, &mut advance(&loading)).map_err(err)?;
    loading.finish_and_clear();
    for unused in mmada.unused_tensors().iter().filter(|u| !u.is_empty()) {
        eprintln!("warning: {} (--strict refuses such a checkpoint)", unused.summary());
    }
    Ok(mmada)
}

fn print_answer(answer: &tessera_mmada::Answer, as_json: bool) {
    if as_json {
        println!("{}", json!({"text": answer.text, "token_ids": answer.token_ids}));
    } else {
        println!("{}", answer.text.trim());
    }
}

fn chat(args: &ChatArgs) -> Res<()> {
    let mmada = load(&args.model)?;
    let g = args.text.generation(&mmada)?;
    let progress = bar("denoising");
    let answer = mmada.chat(&args.prompt, &g, args.text.seed, &mut advance(&progress)).map_err(err)?;
    progress.finish_and_clear();
    print_answer(&answer, args.json);
    Ok(())
}

fn ask(args: &AskArgs) -> Res<()> {
    let image = load_image(&args.image).map_err(err)?;
    let mmada = load(&args.model)?;
    let g = args.text.generation(&mmada)?;
    let progress = bar("denoising");
    let answer = mmada.ask(&image, &args.question, &g, args.text.seed, &mut advance(&progress)).map_err(err)?;
    progress.finish_and_clear();
    print_answer(&answer, args.json);
    Ok(())
}

fn imagine(args: &ImagineArgs) -> Res<()> {
    let settings = args.image.settings()?;
    let mmada = load(&args.model)?;
    let progress = bar("drawing");
    let codes = mmada.imagine(&args.prompt, args.image.n, &settings, &mut advance(&progress)).map_err(err)?;
    progress.finish_and_clear();
    write_decoded(&mmada, &codes, &args.image)
}

fn inpaint(args: &InpaintArgs) -> Res<()> {
    let settings = args.settings.settings()?;
    let image = load_image(&args.image).map_err(err)?;
    let mask = load_image(&args.mask).map_err(err)?;
    let mmada = load(&args.model)?;
    let progress = bar("inpainting");
    let codes = mmada.inpaint(&args.prompt, &image, &mask, args.settings.n, &settings, &mut advance(&progress)).map_err(err)?;
    progress.finish_and_clear();
    write_decoded(&mmada, &codes, &args.settings)
}

/// Decodes `codes`, writes `mmada_K.png` under `--out` and lists them.
fn write_decoded(mmada: &Mmada, codes: &[Vec<u32>], args: &ImageArgs) -> Res<()> {
    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let decoding = bar("decoding");
    let images: Vec<RgbImage> = mmada.decode_images(codes).map_err(err)?;
    decoding.finish_and_clear();
    write_images(&args.out, "mmada", codes, &images, args.json)
}

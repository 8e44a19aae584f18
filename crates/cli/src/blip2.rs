//! `tessera blip2`: captions and answers for images from a BLIP-2
//! checkpoint (a local directory or a Hugging Face hub id).
//!
//! ```text
//! tessera blip2 caption --model DIR_OR_ID --image cat.jpg [--image dog.png ...]
//!     [--prompt "Question: what is this? Answer:"] [--max-new-tokens N] [--num-beams N]
//!     [--sample --temperature T --top-p P --top-k K --seed S] [--dtype f32|f16|bf16] [--device D] [--json]
//! tessera blip2 match --model DIR_OR_ID --image cat.jpg [--image ...] --text "a cat" [--text ...]
//!     [--dtype f32|f16|bf16] [--device D] [--json]
//! ```
//!
//! `match` runs a `Blip2ForImageTextRetrieval` checkpoint (such as
//! Salesforce/blip2-itm-vit-g): every image against every text, the
//! matching head's probability and the contrastive head's similarity.
//!
//! Generation defaults come from the checkpoint's generation_config.json
//! (greedy unless it sets `do_sample`, its beams, length and stop ids);
//! flags override them. Progress bars go to stderr; results to stdout.

use crate::blip2_bench;
use crate::clip::require_finite;
use crate::ui::{advance, bar, err, LoadArgs, Res, SamplingArgs};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use tessera_qformer::{load_image, Blip2, Blip2Retrieval, GenerationConfig, RgbImage};

/// `tessera blip2 ...`.
#[derive(Args)]
pub struct Blip2Args {
    #[command(subcommand)]
    pub command: Blip2Command,
}

/// The `blip2` subcommands.
#[derive(Subcommand)]
pub enum Blip2Command {
    /// Caption images, or answer a prompt about each.
    Caption(CaptionArgs),
    /// Score images against texts with a retrieval checkpoint (image-text matching and contrastive heads).
    Match(MatchArgs),
    /// Time image encoding and greedy generation on a checkpoint, after checking both.
    Bench(blip2_bench::BenchArgs),
}

/// `tessera blip2 caption`.
#[derive(Args)]
pub struct CaptionArgs {
    /// A checkpoint directory (config.json, model.safetensors, tokenizer.json), or a hub id such as Salesforce/blip2-opt-2.7b.
    #[arg(long)]
    pub model: String,
    /// Image files (PNG, JPEG, GIF, BMP, WebP); one caption each.
    #[arg(long = "image", required = true, num_args = 1..)]
    pub images: Vec<PathBuf>,
    /// Text the language model continues after the image, e.g. "Question: how many cats are there? Answer:".
    #[arg(long)]
    pub prompt: Option<String>,
    /// Beam search with this many beams (1: greedy or sampling).
    #[arg(long)]
    pub num_beams: Option<usize>,
    /// Length penalty of beam search (scores are divided by length^penalty).
    #[arg(long)]
    pub length_penalty: Option<f64>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Print one JSON object: {"captions": [{"image", "text", "token_ids"}]}.
    #[arg(long)]
    pub json: bool,
}

/// `tessera blip2 match`.
#[derive(Args)]
pub struct MatchArgs {
    /// A Blip2ForImageTextRetrieval checkpoint directory (config.json, model.safetensors, tokenizer.json), or a hub id such as Salesforce/blip2-itm-vit-g.
    #[arg(long)]
    pub model: String,
    /// Image files (PNG, JPEG, GIF, BMP, WebP).
    #[arg(long = "image", required = true, num_args = 1..)]
    pub images: Vec<PathBuf>,
    /// Texts to score against every image.
    #[arg(long = "text", required = true, num_args = 1..)]
    pub texts: Vec<String>,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Print one JSON object: {"scores": [{"image", "text", "itm_probability", "itc_similarity"}]}.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `blip2` subcommand; errors are printed to stderr.
pub fn run(args: &Blip2Args) -> ExitCode {
    let outcome = match &args.command {
        Blip2Command::Caption(a) => caption(a),
        Blip2Command::Match(a) => match_texts(a),
        Blip2Command::Bench(a) => blip2_bench::bench(a),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The checkpoint's generation defaults with the flags applied.
pub fn generation_config(defaults: &GenerationConfig, args: &CaptionArgs) -> Res<GenerationConfig> {
    let mut g = defaults.clone();
    args.sampling.apply(&mut g);
    if let Some(n) = args.num_beams {
        g.num_beams = n;
    }
    if let Some(p) = args.length_penalty {
        g.length_penalty = p;
    }
    g.validate().map_err(err)?;
    Ok(g)
}

fn caption(args: &CaptionArgs) -> Res<()> {
    let options = args.load.options()?;
    let images: Vec<RgbImage> = args.images.iter().map(|p| load_image(p).map_err(err)).collect::<Res<_>>()?;
    let loading = bar("loading model");
    let blip2 = Blip2::load_with_progress(&args.model, &options, &mut advance(&loading)).map_err(err)?;
    loading.finish_and_clear();
    if !blip2.unused_tensors().is_empty() {
        eprintln!("warning: {} (--strict refuses such a checkpoint)", blip2.unused_tensors().summary());
    }
    let config = generation_config(blip2.generation_config(), args)?;
    for key in config.unsupported() {
        eprintln!("warning: generation_config.json sets '{key}', which is not implemented: it is ignored");
    }
    for (path, image) in args.images.iter().zip(&images) {
        blip2.processor().check(image, &path.display().to_string()).map_err(err)?;
    }
    let mut results = Vec::with_capacity(images.len());
    for (path, image) in args.images.iter().zip(&images) {
        let progress =
            bar(&format!("captioning {}", path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into())));
        let features = blip2.image_features(&[image]).map_err(err)?;
        let projected = features.projection.to_f32_vec().map_err(err)?;
        require_finite(&format!("the image features of {}", path.display()), &projected)?;
        let text_ids = blip2.prompt_ids(args.prompt.as_deref()).map_err(err)?;
        let mut on_token = |step: usize, _id: u32| {
            progress.set_length(config.max_new_tokens as u64);
            progress.set_position(step as u64 + 1);
        };
        let caption = blip2.generate_from(&features.projection, &text_ids, &config, &mut on_token).map_err(err)?;
        progress.finish_and_clear();
        if !args.json {
            println!("{}: {}", path.display(), caption.text);
        }
        results.push((path, caption));
    }
    if args.json {
        let list: Vec<_> =
            results.iter().map(|(p, c)| json!({"image": p.display().to_string(), "text": c.text, "token_ids": c.token_ids})).collect();
        println!("{}", json!({ "captions": list }));
    }
    Ok(())
}

fn match_texts(args: &MatchArgs) -> Res<()> {
    let options = args.load.options()?;
    let images: Vec<RgbImage> = args.images.iter().map(|p| load_image(p).map_err(err)).collect::<Res<_>>()?;
    let loading = bar("loading model");
    let model = Blip2Retrieval::load_with_progress(&args.model, &options, &mut advance(&loading)).map_err(err)?;
    loading.finish_and_clear();
    if !model.unused_tensors().is_empty() {
        eprintln!("warning: {} (--strict refuses such a checkpoint)", model.unused_tensors().summary());
    }
    for (path, image) in args.images.iter().zip(&images) {
        model.processor().check(image, &path.display().to_string()).map_err(err)?;
    }
    let refs: Vec<&RgbImage> = images.iter().collect();
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let scoring = bar("scoring");
    let scores = model.scores(&refs, &texts).map_err(err)?;
    scoring.finish_and_clear();
    let flat: Vec<f32> = scores.iter().flatten().flat_map(|s| [s.itm_probability, s.itc_similarity]).collect();
    require_finite("the scores", &flat)?;
    if args.json {
        let list: Vec<_> = args
            .images
            .iter()
            .zip(&scores)
            .flat_map(|(path, row)| {
                texts.iter().zip(row).map(move |(text, s)| {
                    json!({"image": path.display().to_string(), "text": text, "itm_probability": s.itm_probability, "itc_similarity": s.itc_similarity})
                })
            })
            .collect();
        println!("{}", json!({ "scores": list }));
        return Ok(());
    }
    for (path, row) in args.images.iter().zip(&scores) {
        println!("{}", path.display());
        for (text, s) in texts.iter().zip(row) {
            println!("  match {:5.1}%  similarity {:+.4}  {text}", s.itm_probability * 100.0, s.itc_similarity);
        }
    }
    Ok(())
}

//! `tessera blip2 bench`: times BLIP-2's image encoding (vision tower,
//! Q-Former and projection) and greedy caption generation, after checking
//! both against expected results (as benches/compare_blip2.py writes them).
//!
//! ```text
//! tessera blip2 bench --model DIR --inputs inputs.safetensors [--max-new-tokens 30] [--json]
//! ```

use crate::bench::{report_case, time_runs, BenchOptions};
use crate::clip::require_finite;
use crate::ui::{err, Res};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use tessera_qformer::{Blip2, Blip2Options, GenerationConfig, ReadMode};
use tessera_tensor::safetensors::SafeTensorsFile;
use tessera_tensor::{DType, Device, Tensor};

/// `tessera blip2 bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// A checkpoint directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    /// Inputs and expected results (safetensors): `images.B` [B, 3, S, S] f32 pixel values with optional
    /// `images.B.expected` [B, Q, width] f32 projected query features, and optional `generate.expected` [N] i64
    /// greedy ids after `images.1`. Without it, seeded random pixels at batch 1 and 8 are used, unchecked.
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// New tokens of the generation case (greedy, the stop id masked until there are this many).
    #[arg(long, default_value_t = 30)]
    pub max_new_tokens: usize,
    /// Warm-up runs per case.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Least timed runs per case.
    #[arg(long, default_value_t = 3)]
    pub min_iters: usize,
    /// Time budget per case, in milliseconds (more runs while within it, up to 20).
    #[arg(long, default_value_t = 3000)]
    pub budget_ms: u64,
    /// Device: cpu, or KIND[:INDEX] of a compiled-in GPU backend.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Weights and compute dtype: f32, f16 or bf16 (the Q-Former stays in f32).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Print one JSON object per case instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Pixel batches with their expected projections, and the expected greedy ids.
struct Inputs {
    images: Vec<(usize, Tensor, Option<Vec<f32>>)>,
    expected_ids: Option<Vec<u32>>,
}

fn load_inputs(path: &Path, device: &Device) -> Res<Inputs> {
    let file = SafeTensorsFile::open(path).map_err(err)?;
    let cpu = Device::cpu();
    let mut images = Vec::new();
    for name in file.names() {
        let mut parts = name.split('.');
        let (Some("images"), Some(batch), None) = (parts.next(), parts.next().and_then(|b| b.parse::<usize>().ok()), parts.next()) else {
            continue;
        };
        let key = format!("{name}.expected");
        let expected = match file.contains(&key) {
            true => Some(file.load(&key, &cpu).map_err(err)?.to_dtype(DType::F32).map_err(err)?.to_vec::<f32>().map_err(err)?),
            false => None,
        };
        images.push((batch, file.load(name, device).map_err(err)?, expected));
    }
    images.sort_by_key(|i| i.0);
    let expected_ids = match file.contains("generate.expected") {
        true => {
            let ids = file.load("generate.expected", &cpu).map_err(err)?.to_vec::<i64>().map_err(err)?;
            Some(
                ids.iter()
                    .map(|&i| u32::try_from(i).map_err(|_| format!("generate.expected holds an invalid id {i}")))
                    .collect::<Res<_>>()?,
            )
        }
        false => None,
    };
    Ok(Inputs { images, expected_ids })
}

/// The least per-image cosine between `got` and `expected` (flattened rows).
fn min_cosine(got: &[f32], expected: &[f32], batch: usize) -> f64 {
    let d = got.len() / batch.max(1);
    got.chunks(d.max(1))
        .zip(expected.chunks(d.max(1)))
        .map(|(a, b)| {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            dot / (norm(a) * norm(b))
        })
        .fold(1.0, f64::min)
}

/// Prints one case's result (see [`report_case`]).
fn report(args: &BenchArgs, case: &str, items: usize, unit: &str, timing: &crate::bench::Timing, check: serde_json::Value) {
    report_case(args.json, &args.dtype, case, items, unit, timing, check);
}

/// Runs `tessera blip2 bench`.
pub fn bench(args: &BenchArgs) -> Res<()> {
    let device = Device::parse(&args.device).map_err(err)?;
    let dtype: DType = args.dtype.parse().map_err(err)?;
    let options = Blip2Options { device: device.clone(), dtype, read_mode: ReadMode::from_env(), ..Default::default() };
    let blip2 = Blip2::from_dir(&args.model, &options).map_err(err)?;
    let inputs = match &args.inputs {
        Some(p) => load_inputs(p, &device)?,
        None => {
            let s = blip2.model().config().vision_config.image_size;
            let images = [1usize, 8]
                .iter()
                .map(|&b| Ok((b, Tensor::randn(7 + b as u64, 0.0, 1.0, vec![b, 3, s, s], DType::F32, &device).map_err(err)?, None)))
                .collect::<Res<_>>()?;
            Inputs { images, expected_ids: None }
        }
    };
    let Some(first) = inputs.images.iter().find(|i| i.0 == 1) else {
        return Err("the inputs need an `images.1` batch (the generation case's image)".into());
    };
    let opts = BenchOptions::for_model(args.warmup, args.min_iters, args.budget_ms);
    if !args.json {
        println!("{:<12} {:>5} {:>6} {:>10} {:>10} {:>10}  check", "case", "dtype", "iters", "median ms", "best ms", "rate");
    }
    for (batch, pixels, expected) in &inputs.images {
        let case = format!("images b{batch}");
        let features = blip2.model().get_image_features(pixels).map_err(err)?;
        let got = features.projection.to_dtype(DType::F32).map_err(err)?.to_vec::<f32>().map_err(err)?;
        require_finite(&format!("the projected features of case {case}"), &got)?;
        let check = match expected {
            Some(e) if e.len() != got.len() => return Err(format!("{case}: {} features, expected {}", got.len(), e.len())),
            Some(e) => {
                let c = min_cosine(&got, e, *batch);
                let limit = if dtype == DType::F32 { 0.999 } else { 0.99 };
                if c.is_nan() || c < limit {
                    return Err(format!("{case}: projected features differ from the expected ones (min cosine {c:.6} < {limit})"));
                }
                json!({"min_cosine": c})
            }
            None => json!("finite"),
        };
        let timing = time_runs(&device, &opts, |_| blip2.model().get_image_features(pixels).map(drop)).map_err(err)?;
        report(args, &case, *batch, "images", &timing, check);
    }
    // The whole captioning call from pixel values (image encoding at batch
    // 1, prefill of the queries and the start token, then greedy steps), the
    // stop id masked until max_new_tokens tokens exist (transformers'
    // min_new_tokens), so that every run produces exactly that many.
    let mut config = GenerationConfig::greedy(args.max_new_tokens);
    config.eos_token_ids = blip2.model().config().text_config.eos_token_id.into_iter().collect();
    config.min_new_tokens = args.max_new_tokens;
    let text_ids = blip2.prompt_ids(None).map_err(err)?;
    let generate = || -> tessera_qformer::Result<Vec<u32>> {
        let features = blip2.model().get_image_features(&first.1)?;
        Ok(blip2.generate_from(&features.projection, &text_ids, &config, &mut |_, _| {})?.token_ids)
    };
    let ids = generate().map_err(err)?;
    if ids.len() != args.max_new_tokens {
        return Err(format!("generation produced {} tokens, expected {}", ids.len(), args.max_new_tokens));
    }
    let check = match &inputs.expected_ids {
        Some(e) => {
            let same_prefix = ids.iter().zip(e).take_while(|(a, b)| a == b).count();
            json!({"equal_ids": same_prefix, "of": e.len(), "ids": ids})
        }
        None => json!({"ids": ids}),
    };
    let timing = time_runs(&device, &opts, |_| generate().map(drop)).map_err(err)?;
    report(args, &format!("generate {}", args.max_new_tokens), args.max_new_tokens, "tokens", &timing, check);
    Ok(())
}

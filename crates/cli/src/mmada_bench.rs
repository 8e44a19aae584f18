//! `tessera mmada bench`: times MMaDA's full-sequence forward pass (the
//! backbone, `ln_f` and the head over the whole vocabulary at every
//! position, as the reference's `self(x).logits`) at given batch and
//! sequence sizes, and text generation with and without the prefix cache,
//! on a loaded model directory (benches/compare_mmada.py runs it beside
//! PyTorch).
//!
//! ```text
//! tessera mmada bench --model DIR [--forward 1x256,2x1539] [--t2i 2x1539] [--prompt-len 32]
//!     [--gen-length 128 --block-length 32 --steps 128] [--json]
//! ```
//!
//! Token ids are a fixed pattern over the text vocabulary,
//! `(i * 7919 + 13) mod llm_vocab_size` for position `i` of a row (row `r`
//! shifted by `r * 31`), so another program can feed the same ones. A
//! forward case reports forward passes per second and the full-vocabulary
//! argmax of row 0 at its first, middle and last positions; a generation
//! case reports generated tokens per second and the ids. A text-to-image
//! step case is the pass as `t2i_generate` runs it: the backbone over the
//! whole sequence, then the head over the codebook's rows at the image
//! slots only (the reference computes every logit and slices them).

use crate::bench::{report_case, time_runs, LongRunArgs};
use crate::ui::{err, LoadArgs, Res};
use clap::Args;
use serde_json::json;
use tessera_hf::LoadOptions;
use tessera_mmada::{AttentionBias, Mmada, TextGeneration};
use tessera_tensor::DType;

/// `tessera mmada bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// A model directory.
    #[arg(long)]
    pub model: String,
    /// Forward cases, BATCHxSEQUENCE each.
    #[arg(long, value_delimiter = ',', default_value = "1x256,2x1539")]
    pub forward: Vec<String>,
    /// Text-to-image step cases, BATCHxSEQUENCE each (none: empty): the
    /// pass as the image sampler runs it, the head over the image slots'
    /// codebook rows only.
    #[arg(long, value_delimiter = ',', default_value = "2x1539")]
    pub t2i: Vec<String>,
    /// Prompt tokens of the generation cases (0: none).
    #[arg(long, default_value_t = 32)]
    pub prompt_len: usize,
    /// Tokens generated.
    #[arg(long, default_value_t = 128)]
    pub gen_length: usize,
    /// Tokens per block.
    #[arg(long, default_value_t = 32)]
    pub block_length: usize,
    /// Denoising steps in all.
    #[arg(long, default_value_t = 128)]
    pub steps: usize,
    #[command(flatten)]
    pub runs: LongRunArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Print one JSON object per case instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The benchmark's token pattern: `rows` rows of `len` ids below `vocab`.
pub fn pattern_ids(rows: usize, len: usize, vocab: usize) -> Vec<u32> {
    (0..rows).flat_map(|r| (0..len).map(move |i| ((i * 7919 + 13 + r * 31) % vocab) as u32)).collect()
}

fn parse_case(case: &str) -> Res<(usize, usize)> {
    let parsed = case.split_once('x').and_then(|(b, l)| Some((b.parse().ok()?, l.parse().ok()?)));
    match parsed {
        Some((b, l)) if b > 0 && l > 0 => Ok((b, l)),
        _ => Err(format!("--forward case '{case}' is not BATCHxSEQUENCE (such as 2x1539)")),
    }
}

/// Runs `tessera mmada bench`.
pub fn bench(args: &BenchArgs) -> Res<()> {
    let cases: Vec<(usize, usize)> = args.forward.iter().map(|c| parse_case(c)).collect::<Res<_>>()?;
    let options = LoadOptions { download_progress: false, ..args.load.options()? };
    let (device, dtype) = (options.device.clone(), options.dtype);
    let mmada = Mmada::load(&args.model, None, &options, &mut |_, _| {}).map_err(err)?;
    let model = mmada.model();
    let config = model.config();
    let opts = args.runs.options();
    if !args.json {
        println!("{:<12} {:>5} {:>6} {:>10} {:>10} {:>10}  check", "case", "dtype", "iters", "median ms", "best ms", "rate");
    }
    let dtype_name = dtype.to_string();
    for (b, l) in cases {
        let ids = pattern_ids(b, l, config.llm_vocab_size);
        let mut argmax = Vec::new();
        let timing = time_runs(&device, &opts, |_| {
            let hidden = model.hidden(&ids, b, AttentionBias::Full)?;
            let logits = model.logits_over(&hidden, 0..config.vocab_size())?;
            argmax = [0, l / 2, l - 1]
                .iter()
                .map(|&p| -> tessera_mmada::Result<u32> {
                    let row = logits.narrow(0, 0, 1)?.narrow(1, p, 1)?.to_dtype(DType::F32)?.to_vec::<f32>()?;
                    Ok(tessera_mmada::sampling::argmax(&row) as u32)
                })
                .collect::<tessera_mmada::Result<_>>()?;
            Ok::<(), tessera_mmada::Error>(())
        })
        .map_err(err)?;
        report_case(args.json, &dtype_name, &format!("forward {b}x{l}"), 1, "forward passes", &timing, json!({"argmax": argmax}));
    }
    let steps: Vec<(usize, usize)> = args.t2i.iter().filter(|c| !c.is_empty()).map(|c| parse_case(c)).collect::<Res<_>>()?;
    let (n, offset) = (config.num_vq_tokens, mmada.processor().image_offset as usize);
    for (b, l) in steps {
        if l < n + 1 {
            return Err(format!("--t2i case {b}x{l} cannot hold the {n} image slots and <|eoi|>"));
        }
        let ids = pattern_ids(b, l, config.llm_vocab_size);
        let mut argmax = 0;
        let timing = time_runs(&device, &opts, |_| {
            let hidden = model.hidden(&ids, b, AttentionBias::Full)?.narrow(1, l - n - 1, n)?;
            let logits = model.logits_over(&hidden, offset..offset + config.codebook_size)?;
            let row = logits.narrow(0, 0, 1)?.narrow(1, n - 1, 1)?.to_dtype(DType::F32)?.to_vec::<f32>()?;
            argmax = tessera_mmada::sampling::argmax(&row) + offset;
            Ok::<(), tessera_mmada::Error>(())
        })
        .map_err(err)?;
        report_case(args.json, &dtype_name, &format!("t2i step {b}x{l}"), 1, "steps", &timing, json!({"argmax_last_slot": argmax}));
    }
    let prompt = pattern_ids(1, args.prompt_len.max(1), config.llm_vocab_size);
    for prefix_cache in [false, true] {
        let g = TextGeneration {
            gen_length: args.gen_length,
            block_length: args.block_length,
            steps: args.steps,
            prefix_cache,
            ..mmada.default_text_generation()
        };
        g.schedule().map_err(err)?;
        let mut ids = Vec::new();
        let timing = time_runs(&device, &opts, |_| {
            ids = mmada.answer(&prompt, &g, 0, &mut |_, _| {})?.token_ids;
            Ok::<(), tessera_mmada::Error>(())
        })
        .map_err(err)?;
        let case = format!("generate {}{}", args.gen_length, if prefix_cache { " cached" } else { "" });
        report_case(args.json, &dtype_name, &case, args.gen_length, "tokens", &timing, json!({"ids": ids}));
    }
    Ok(())
}

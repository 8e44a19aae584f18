//! `tessera convert`: a PyTorch pickle checkpoint (`pytorch_model.bin`, or
//! shards with `pytorch_model.bin.index.json`) to safetensors, read by a
//! restricted unpickler that never runs the file's code (a pickle that
//! refers to anything but tensors, storages and plain containers is an
//! error naming the global it refused).
//!
//! ```text
//! tessera convert --model DIR --out DIR [--json]
//! ```
//!
//! The names are mapped from DeepSeek's original Janus-Pro layout to the
//! Hugging Face one (the vision attention's fused `qkv` split into
//! `q_proj`, `k_proj`, `v_proj`; names already in the Hugging Face layout
//! are kept). Only the weights are converted: config.json, the tokenizer
//! and processor files of a Hugging Face checkpoint go beside them.

use crate::ui::{err, Res};
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use tessera_janus::convert::convert_original_checkpoint;

/// `tessera convert`.
#[derive(Args)]
pub struct ConvertArgs {
    /// The directory holding pytorch_model.bin (or its shards and pytorch_model.bin.index.json).
    #[arg(long)]
    pub model: PathBuf,
    /// The directory model.safetensors is written to (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object: {"output", "shards", "tensors", "bytes", "split", "dropped", "skipped"}.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera convert`; errors are printed to stderr.
pub fn run(args: &ConvertArgs) -> ExitCode {
    match convert(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn convert(args: &ConvertArgs) -> Res<()> {
    let s = convert_original_checkpoint(&args.model, &args.out).map_err(err)?;
    let skipped: Vec<_> = s.skipped.iter().map(|k| json!({"name": k.name, "kind": k.kind, "value": k.value})).collect();
    if args.json {
        println!(
            "{}",
            json!({"output": s.output.display().to_string(), "shards": s.shards, "tensors": s.tensors, "bytes": s.bytes,
                "split": s.split, "dropped": s.dropped, "skipped": skipped})
        );
        return Ok(());
    }
    println!("{}: {} tensors ({:.1} MB) from {} file(s)", s.output.display(), s.tensors, s.bytes as f64 / 1e6, s.shards);
    if !s.split.is_empty() {
        println!("split into q/k/v: {}", s.split.len());
    }
    for name in &s.dropped {
        println!("dropped (unused by the model): {name}");
    }
    for k in &s.skipped {
        println!("skipped (not a tensor): {} ({})", k.name, k.kind);
    }
    Ok(())
}

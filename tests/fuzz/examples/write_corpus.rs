//! Writes each target's corpus (the main file of every case: what that
//! target's `from_fuzz_input` takes) to `DIR/<target>/NNNNN`, as seed
//! corpora for cargo-fuzz:
//!
//! ```sh
//! cargo run -p tessera-fuzz --example write_corpus -- fuzz/corpus
//! cargo +nightly fuzz run safetensors fuzz/corpus/safetensors
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tessera_fuzz::{config, image, index, pickle, processor, safetensors, seed_from_env, tokenizer, Case};

fn write(dir: &Path, target: &str, corpus: Vec<Case>) -> std::io::Result<usize> {
    let out = dir.join(target);
    std::fs::create_dir_all(&out)?;
    for (i, case) in corpus.iter().enumerate() {
        std::fs::write(out.join(format!("{i:05}")), case.main())?;
    }
    Ok(corpus.len())
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: write_corpus DIR");
        return ExitCode::from(2);
    };
    let seed = seed_from_env();
    let corpora = [
        (safetensors::TARGET, safetensors::corpus(seed)),
        (index::TARGET, index::corpus(seed)),
        (config::TARGET, config::corpus(seed)),
        (tokenizer::TARGET, tokenizer::corpus(seed)),
        (processor::TARGET, processor::corpus(seed)),
        (image::TARGET, image::corpus(seed)),
        (pickle::TARGET, pickle::corpus(seed)),
    ];
    for (target, corpus) in corpora {
        match write(&dir, target, corpus) {
            Ok(n) => println!("{target}: {n} inputs in {}", dir.join(target).display()),
            Err(e) => {
                eprintln!("error: {}: {e}", dir.join(target).display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

//! Writes one of the parity suite's seeded CLIP checkpoints (weights,
//! config, processor config, tokenizer) to a directory, for `tessera clip`
//! runs and benchmarks on a model of real shape:
//!
//! ```sh
//! cargo run -p tessera-clip-parity --example write_checkpoint -- b32 /tmp/clip-b32
//! ```
//!
//! Models: `b32` (ViT-B/32) and `l14` (a two-layer ViT-L/14 shape).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [key, dir] = args.as_slice() else {
        eprintln!("usage: write_checkpoint MODEL DIR   (MODEL: b32 or l14)");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    let written = tessera_clip_parity::Fixtures::open()
        .and_then(|f| std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display())).map(|()| f))
        .and_then(|f| tessera_clip_parity::write_checkpoint(&f, key, &dir));
    match written {
        Ok(()) => {
            println!("{}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

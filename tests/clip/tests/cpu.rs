//! CLIP parity with transformers on the CPU backend. Prints every check with
//! its numbers (run with `--nocapture` to see them); fails if any check
//! fails. `TESSERA_CLIP_PARITY_FILTER=tokenizer,b32` runs only those checks.

use tessera_tensor::Device;

#[test]
fn clip_parity_cpu() {
    let filter = std::env::var("TESSERA_CLIP_PARITY_FILTER").ok();
    let report = tessera_clip_parity::run_all(&Device::cpu(), filter.as_deref());
    println!("{report}");
    assert!(!report.checks.is_empty(), "no check ran (filter {filter:?})");
    assert_eq!(report.failed(), 0, "{} CLIP parity checks failed on the CPU:\n{}", report.failed(), report.failures().join("\n"));
}

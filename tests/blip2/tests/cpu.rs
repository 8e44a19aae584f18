//! BLIP-2 parity with transformers on the CPU backend. Prints every check
//! with its numbers (run with `--nocapture` to see them); fails if any check
//! fails. `TESSERA_BLIP2_PARITY_FILTER=tiny,opt27b f32` runs only those
//! checks.

use tessera_tensor::Device;

#[test]
fn blip2_parity_cpu() {
    let filter = std::env::var("TESSERA_BLIP2_PARITY_FILTER").ok();
    let report = tessera_blip2_parity::run_cases(&Device::cpu(), filter.as_deref(), None);
    println!("{report}");
    assert!(!report.checks.is_empty(), "no check ran (filter {filter:?})");
    assert_eq!(report.failed(), 0, "{} BLIP-2 parity checks failed on the CPU:\n{}", report.failed(), report.failures().join("\n"));
}

//! Janus-Pro parity with transformers on the CPU backend. Prints every
//! check with its numbers (run with `--nocapture` to see them); fails if any
//! check fails. `TESSERA_JANUS_PARITY_FILTER=tiny,pro1b f32` runs only those
//! checks.

use tessera_janus_parity::{run_cases, Scope};
use tessera_tensor::Device;

#[test]
fn janus_parity_cpu() {
    let filter = std::env::var("TESSERA_JANUS_PARITY_FILTER").ok();
    let report = run_cases(&Device::cpu(), Scope { filter: filter.as_deref(), limit: None });
    println!("{report}");
    assert!(!report.checks.is_empty(), "no check ran (filter {filter:?})");
    assert_eq!(report.failed(), 0, "{} Janus-Pro parity checks failed on the CPU:\n{}", report.failed(), report.failures().join("\n"));
}

//! The conformance suite on the CPU backend. Prints the case counts per op
//! and in total (run with `--nocapture` to see them); fails if any case
//! fails. `TESSERA_CONFORMANCE_FILTER=softmax,matmul` runs only those ops.

use tessera_tensor::Device;

#[test]
fn conformance_cpu() {
    let filter = std::env::var("TESSERA_CONFORMANCE_FILTER").ok();
    let report = tessera_conformance::run_all(&Device::cpu(), filter.as_deref());
    println!("{report}");
    assert!(report.cases() > 0, "no case ran (filter {filter:?})");
    assert_eq!(report.failed(), 0, "{} conformance cases failed on the CPU:\n{}", report.failed(), report.failures().join("\n"));
}

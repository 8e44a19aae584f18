//! MMaDA parity with the reference's recorded outputs on the CPU backend.
//! Prints every check with its numbers (run with `--nocapture`), then
//! `mmada parity: N passed, M failed`; fails if any check fails.
//! `TESSERA_MMADA_PARITY_FILTER=fwd_plain,vq` runs only those checks.

use tessera_mmada_parity::run_suite;
use tessera_tensor::Device;

#[test]
fn mmada_parity_cpu() {
    let Some(report) = run_suite(&Device::cpu()) else { return };
    assert_eq!(report.failed(), 0, "{} MMaDA parity checks failed on the CPU:\n{}", report.failed(), report.failures().join("\n"));
}

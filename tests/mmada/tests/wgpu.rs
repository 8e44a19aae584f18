//! MMaDA parity with the reference's recorded outputs on the wgpu backend:
//! the same checks as on the CPU (the fixture's model is small enough for
//! every check on a software adapter). Skips, saying why, without an
//! adapter, or with `TESSERA_MMADA_PARITY_WGPU=0`.
//! `TESSERA_MMADA_PARITY_FILTER` runs only the matching checks.

use std::time::Instant;
use tessera_mmada_parity::run_suite;

#[test]
fn mmada_parity_wgpu() {
    if std::env::var("TESSERA_MMADA_PARITY_WGPU").is_ok_and(|m| m == "0") {
        println!("skipping MMaDA parity on wgpu: TESSERA_MMADA_PARITY_WGPU=0");
        return;
    }
    let dev = match tessera_wgpu::default_device() {
        Ok(d) => d,
        Err(why) => {
            println!("skipping MMaDA parity on wgpu: {why}");
            return;
        }
    };
    let started = Instant::now();
    let Some(report) = run_suite(&dev) else { return };
    println!("MMaDA parity on {}: {:.1} s", dev.info().description, started.elapsed().as_secs_f64());
    assert_eq!(report.failed(), 0, "{} MMaDA parity checks failed on wgpu:\n{}", report.failed(), report.failures().join("\n"));
}

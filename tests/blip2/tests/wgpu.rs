//! BLIP-2 parity with transformers on the wgpu backend: the same checks as
//! on the CPU. Skips, saying why, without an adapter, or with
//! `TESSERA_BLIP2_PARITY_WGPU=0`.
//!
//! On a software adapter (lavapipe) only the first `SOFTWARE_CASES` cases of
//! each model run (every stage, dtype and generation mode still runs, at the
//! real blip2-opt-2.7b widths); `TESSERA_BLIP2_PARITY_WGPU=full` runs every
//! case. `TESSERA_BLIP2_PARITY_FILTER` runs only the matching checks.

use std::time::Instant;

/// Cases per model checked on software adapters.
const SOFTWARE_CASES: usize = 1;

#[test]
fn blip2_parity_wgpu() {
    let mode = std::env::var("TESSERA_BLIP2_PARITY_WGPU").unwrap_or_default();
    if mode == "0" {
        println!("skipping BLIP-2 parity on wgpu: TESSERA_BLIP2_PARITY_WGPU=0");
        return;
    }
    let dev = match tessera_wgpu::default_device() {
        Ok(d) => d,
        Err(why) => {
            println!("skipping BLIP-2 parity on wgpu: {why}");
            return;
        }
    };
    let software = tessera_wgpu::backend_of(&dev).is_some_and(|b| b.is_software());
    let limit = if software && mode != "full" { Some(SOFTWARE_CASES) } else { None };
    let filter = std::env::var("TESSERA_BLIP2_PARITY_FILTER").ok();
    let started = Instant::now();
    let report = tessera_blip2_parity::run_cases(&dev, filter.as_deref(), limit);
    println!("{report}");
    let cases = limit.map_or("every case".to_string(), |n| format!("the first {n} case(s) of each model"));
    println!("BLIP-2 parity on {} ({cases}): {:.1} s", dev.info().description, started.elapsed().as_secs_f64());
    assert!(!report.checks.is_empty(), "no check ran (filter {filter:?})");
    assert_eq!(report.failed(), 0, "{} BLIP-2 parity checks failed on wgpu:\n{}", report.failed(), report.failures().join("\n"));
}

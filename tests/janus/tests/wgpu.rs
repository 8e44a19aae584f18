//! Janus-Pro parity with transformers on the wgpu backend: the same checks
//! as on the CPU. Skips, saying why, without an adapter, or with
//! `TESSERA_JANUS_PARITY_WGPU=0`.
//!
//! On a software adapter (lavapipe) only the tiny model runs (every case,
//! stage and dtype; the 1B-wide model's 576-step generation and 384-pixel
//! VQ model take minutes there); `TESSERA_JANUS_PARITY_WGPU=full` runs
//! both models.
//! `TESSERA_JANUS_PARITY_FILTER` runs only the matching checks.

use std::time::Instant;
use tessera_janus_parity::{run_cases, Scope};

#[test]
fn janus_parity_wgpu() {
    let mode = std::env::var("TESSERA_JANUS_PARITY_WGPU").unwrap_or_default();
    if mode == "0" {
        println!("skipping Janus-Pro parity on wgpu: TESSERA_JANUS_PARITY_WGPU=0");
        return;
    }
    let dev = match tessera_wgpu::default_device() {
        Ok(d) => d,
        Err(why) => {
            println!("skipping Janus-Pro parity on wgpu: {why}");
            return;
        }
    };
    let software = tessera_wgpu::backend_of(&dev).is_some_and(|b| b.is_software());
    let subset = software && mode != "full";
    let filter = std::env::var("TESSERA_JANUS_PARITY_FILTER").ok().or(subset.then(|| "tiny".to_string()));
    let scope = Scope { filter: filter.as_deref(), limit: None };
    let started = Instant::now();
    let report = run_cases(&dev, scope);
    println!("{report}");
    let cases = if subset { "the tiny model" } else { "every model" };
    println!("Janus-Pro parity on {} ({cases}): {:.1} s", dev.info().description, started.elapsed().as_secs_f64());
    assert!(!report.checks.is_empty(), "no check ran (filter {filter:?})");
    assert_eq!(report.failed(), 0, "{} Janus-Pro parity checks failed on wgpu:\n{}", report.failed(), report.failures().join("\n"));
}

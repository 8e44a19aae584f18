//! CLIP parity with transformers on the wgpu backend: the same checks as on
//! the CPU. Skips, saying why, without an adapter, or with
//! `TESSERA_CLIP_PARITY_WGPU=0`.
//!
//! On a software adapter (lavapipe) every model and dtype runs first on a
//! subset of the cases that keeps every code path at the real configs: the
//! first `SOFTWARE_CASES` images and texts, the longest text included. That
//! run also measures the adapter: when it took under `FULL_IF_SUBSET_UNDER`,
//! every case runs as well (about four times the subset's work), else the
//! test says why it stops at the subset. `TESSERA_CLIP_PARITY_WGPU=full`
//! runs every case at once on any adapter, `=subset` only the subset;
//! `TESSERA_CLIP_PARITY_CASES=IMAGES:TEXTS` picks another subset.
//! `TESSERA_CLIP_PARITY_FILTER` runs only the matching checks.

use std::time::{Duration, Instant};
use tessera_tensor::Device;

/// Images and texts checked first on software adapters.
const SOFTWARE_CASES: (usize, usize) = (2, 2);
/// A software adapter whose subset run is faster than this also runs every
/// case (on a 2-core Zen 5, 103 s for the subset and 412 s for all; on a
/// 2-core Zen 1, 440 s for the subset).
const FULL_IF_SUBSET_UNDER: Duration = Duration::from_secs(180);

fn parse_cases(v: &str) -> (usize, usize) {
    let parsed = v.split_once(':').and_then(|(i, t)| Some((i.trim().parse().ok()?, t.trim().parse().ok()?)));
    parsed.unwrap_or_else(|| panic!("TESSERA_CLIP_PARITY_CASES={v}: expected IMAGES:TEXTS, e.g. 2:2"))
}

#[test]
fn clip_parity_wgpu() {
    let mode = std::env::var("TESSERA_CLIP_PARITY_WGPU").unwrap_or_default();
    if mode == "0" {
        println!("skipping CLIP parity on wgpu: TESSERA_CLIP_PARITY_WGPU=0");
        return;
    }
    let dev = match tessera_wgpu::default_device() {
        Ok(d) => d,
        Err(why) => {
            println!("skipping CLIP parity on wgpu: {why}");
            return;
        }
    };
    let software = tessera_wgpu::backend_of(&dev).is_some_and(|b| b.is_software());
    let filter = std::env::var("TESSERA_CLIP_PARITY_FILTER").ok();
    let first = match std::env::var("TESSERA_CLIP_PARITY_CASES") {
        Ok(v) => Some(parse_cases(&v)),
        Err(_) if (software && mode != "full") || mode == "subset" => Some(SOFTWARE_CASES),
        Err(_) => None,
    };
    let took = run(&dev, filter.as_deref(), first);
    let picked = std::env::var("TESSERA_CLIP_PARITY_CASES").is_ok() || mode == "subset";
    if first.is_some() && !picked {
        if took < FULL_IF_SUBSET_UNDER {
            println!("the subset took {:.0} s (under {} s): every case too", took.as_secs_f64(), FULL_IF_SUBSET_UNDER.as_secs());
            run(&dev, filter.as_deref(), None);
        } else {
            println!(
                "stopping at the subset: it took {:.0} s on this software adapter (every case needs about four times that; \
                 TESSERA_CLIP_PARITY_WGPU=full runs them)",
                took.as_secs_f64()
            );
        }
    }
}

/// Runs the checks on `limit` cases (all with `None`), prints the report and
/// fails on any failed check; returns how long they took.
fn run(dev: &Device, filter: Option<&str>, limit: Option<(usize, usize)>) -> Duration {
    let started = Instant::now();
    let report = tessera_clip_parity::run_cases(dev, filter, limit);
    let took = started.elapsed();
    println!("{report}");
    let cases = limit.map_or("every case".to_string(), |(i, t)| format!("{i} images x {t} texts"));
    println!("CLIP parity on {} ({cases}): {:.1} s", dev.info().description, took.as_secs_f64());
    assert!(!report.checks.is_empty(), "no check ran (filter {filter:?})");
    assert_eq!(report.failed(), 0, "{} CLIP parity checks failed on wgpu:\n{}", report.failed(), report.failures().join("\n"));
    took
}

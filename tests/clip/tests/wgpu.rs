//! CLIP parity with transformers on the wgpu backend: the same checks as on
//! the CPU. Skips, saying why, without an adapter, or with
//! `TESSERA_CLIP_PARITY_WGPU=0`.
//!
//! On a software adapter (lavapipe) every model and dtype runs, on a subset
//! of the cases that keeps every code path at the real configs: the first
//! `SOFTWARE_CASES` images and texts, the longest text included (the full
//! set takes far longer than CI allows there). `TESSERA_CLIP_PARITY_WGPU=full`
//! runs every case anyway; `TESSERA_CLIP_PARITY_CASES=IMAGES:TEXTS` picks
//! another subset on any adapter. `TESSERA_CLIP_PARITY_FILTER` runs only
//! the matching checks.

use std::time::Instant;

/// Images and texts checked on software adapters.
const SOFTWARE_CASES: (usize, usize) = (2, 2);

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
    let limit = match std::env::var("TESSERA_CLIP_PARITY_CASES") {
        Ok(v) => Some(parse_cases(&v)),
        Err(_) if software && mode != "full" => Some(SOFTWARE_CASES),
        Err(_) => None,
    };
    let filter = std::env::var("TESSERA_CLIP_PARITY_FILTER").ok();
    let started = Instant::now();
    let report = tessera_clip_parity::run_cases(&dev, filter.as_deref(), limit);
    println!("{report}");
    let cases = limit.map_or("every case".to_string(), |(i, t)| format!("{i} images x {t} texts"));
    println!("CLIP parity on {} ({cases}): {:.1} s", dev.info().description, started.elapsed().as_secs_f64());
    assert!(!report.checks.is_empty(), "no check ran (filter {filter:?})");
    assert_eq!(report.failed(), 0, "{} CLIP parity checks failed on wgpu:\n{}", report.failed(), report.failures().join("\n"));
}

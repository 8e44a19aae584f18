//! CLIP parity with transformers on the wgpu backend: the same checks as on
//! the CPU. Skips, saying why, without an adapter. On a software adapter
//! (lavapipe, where both ViT forwards in three dtypes take over ten
//! minutes) it runs only with `TESSERA_CLIP_PARITY_WGPU=1`.
//! `TESSERA_CLIP_PARITY_FILTER` runs only the matching checks.

#[test]
fn clip_parity_wgpu() {
    let dev = match tessera_wgpu::default_device() {
        Ok(d) => d,
        Err(why) => {
            println!("skipping CLIP parity on wgpu: {why}");
            return;
        }
    };
    let software = tessera_wgpu::backend_of(&dev).is_some_and(|b| b.is_software());
    if software && std::env::var("TESSERA_CLIP_PARITY_WGPU").map_or(true, |v| v != "1") {
        println!("skipping CLIP parity on {} (a software adapter): set TESSERA_CLIP_PARITY_WGPU=1 to run it", dev.info().description);
        return;
    }
    let filter = std::env::var("TESSERA_CLIP_PARITY_FILTER").ok();
    let report = tessera_clip_parity::run_all(&dev, filter.as_deref());
    println!("{report}");
    assert!(!report.checks.is_empty(), "no check ran (filter {filter:?})");
    assert_eq!(report.failed(), 0, "{} CLIP parity checks failed on wgpu:\n{}", report.failed(), report.failures().join("\n"));
}

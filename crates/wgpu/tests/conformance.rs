//! The conformance suite on the first wgpu adapter (lavapipe in CI). Skips
//! with the reason when no adapter is usable. `TESSERA_CONFORMANCE_FILTER`
//! runs only matching ops.

#[test]
fn conformance_wgpu() {
    let dev = match tessera_wgpu::default_device() {
        Ok(d) => d,
        Err(why) => {
            println!("skipping the wgpu conformance suite: {why}");
            return;
        }
    };
    let filter = std::env::var("TESSERA_CONFORMANCE_FILTER").ok();
    println!("wgpu device: {}", dev.info().description);
    let report = tessera_conformance::run_all(&dev, filter.as_deref());
    println!("{report}");
    assert!(report.cases() > 0, "no case ran (filter {filter:?})");
    assert_eq!(report.failed(), 0, "{} conformance cases failed on wgpu:\n{}", report.failed(), report.failures().join("\n"));
}

//! The `tessera` binary on a fresh machine: `info` and a quick `bench`.

use std::process::Command;

fn tessera(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera")).args(args).output().expect("running tessera");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn info_lists_the_cpu() {
    let (ok, out, err) = tessera(&["info"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("cpu: "), "{out}");
    assert!(out.contains("threads"), "{out}");
}

#[test]
fn bench_prints_a_checked_table() {
    let (ok, out, err) = tessera(&["bench", "--size", "small", "--budget-ms", "20"]);
    assert!(ok, "{err}\n{out}");
    for op in ["matmul", "add", "softmax", "layer_norm", "attention", "conv2d"] {
        assert!(out.lines().any(|l| l.starts_with(op)), "{op} missing from\n{out}");
    }
    assert!(out.contains("GFLOP/s") && out.contains("GB/s"));
}

#[test]
fn unknown_device_is_a_clear_error() {
    let (ok, _, err) = tessera(&["bench", "--device", "tpu:3"]);
    assert!(!ok);
    assert!(err.contains("unknown device kind 'tpu'"), "{err}");
}

#[test]
fn peers_suite_prints_json_lines() {
    let (ok, out, err) = tessera(&["bench", "--suite", "peers", "--size", "small", "--json", "--filter", "gemv", "--budget-ms", "20"]);
    assert!(ok, "{err}\n{out}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert_eq!(lines.len(), 4, "f32 and bf16 GEMVs at two shapes:\n{out}");
    for v in &lines {
        assert!(v["op"].as_str().unwrap().starts_with("gemv"), "{v}");
        assert_eq!(v["m"], 1, "{v}");
        assert_eq!(v["b_transposed"], true, "{v}");
        for field in ["k", "n", "iters"] {
            assert!(v[field].as_u64().is_some_and(|x| x > 0), "{field} in {v}");
        }
        for field in ["median_ms", "best_ms", "gflops", "gbps"] {
            assert!(v[field].as_f64().is_some_and(|x| x.is_finite() && x > 0.0), "{field} in {v}");
        }
        assert!(v.get("error").is_none(), "{v}");
    }
    assert!(lines.iter().any(|v| v["dtype"] == "bf16") && lines.iter().any(|v| v["dtype"] == "f32"), "{out}");
}

#[test]
fn clip_without_a_checkpoint_is_a_clear_error() {
    let dir = std::env::temp_dir();
    let file = dir.join("tessera-cli-test-not-a-checkpoint.txt");
    std::fs::write(&file, "not a model").unwrap();
    let (ok, _, err) = tessera(&["clip", "classify", "--model", file.to_str().unwrap(), "--image", "x.png", "--labels", "a cat"]);
    assert!(!ok);
    assert!(err.contains("x.png"), "the missing image is reported first: {err}");
    let (ok, _, err) = tessera(&["clip", "embed", "--model", file.to_str().unwrap(), "--text", "a cat"]);
    assert!(!ok);
    assert!(err.contains("is a file"), "{err}");
    let _ = std::fs::remove_file(file);
}

/// A file under the temp dir unique to this test process.
fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tessera-cli-{}-{name}", std::process::id()))
}

#[test]
fn bench_plots_a_roofline() {
    let svg = temp_path("roofline.svg");
    let (ok, out, err) =
        tessera(&["bench", "--size", "small", "--filter", "softmax", "--budget-ms", "20", "--plot", svg.to_str().unwrap()]);
    assert!(ok, "{err}\n{out}");
    // The table, then the two ceilings measured in the same run.
    assert!(out.lines().any(|l| l.starts_with("softmax")), "{out}");
    assert!(out.contains("ceiling: f32 peak") && out.contains("ceiling: copy bandwidth"), "{out}");
    let text = std::fs::read_to_string(&svg).expect("the plot file");
    let _ = std::fs::remove_file(&svg);
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("not XML: {e}\n{text}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<String> =
        doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(|t| t.trim().to_string()).collect();
    let has = |want: &str| texts.iter().any(|t| t.contains(want));
    assert!(has("softmax 64x1024 f32"), "the point's label: {texts:?}");
    assert!(has("Roofline: ") && has("(cpu)"), "the title names the device: {texts:?}");
    assert!(has("f32 peak") && has("GFLOP/s (matmul 256x256x256)"), "the compute ceiling: {texts:?}");
    assert!(has("copy bandwidth") && has("GB/s (copy 4194304 f32)"), "the bandwidth ceiling: {texts:?}");
    assert!(has("ridge") && has("arithmetic intensity"), "{texts:?}");
}

#[test]
fn bench_json_carries_intensity_and_ceilings() {
    let svg = temp_path("roofline-json.svg");
    let (ok, out, err) =
        tessera(&["bench", "--size", "small", "--filter", "add", "--budget-ms", "20", "--json", "--plot", svg.to_str().unwrap()]);
    let _ = std::fs::remove_file(&svg);
    assert!(ok, "{err}\n{out}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let add = lines.iter().find(|v| v["op"] == "add").expect("the add case");
    // One FLOP per element over three f32 values moved.
    assert!((add["intensity"].as_f64().unwrap() - 1.0 / 12.0).abs() < 1e-12, "{add}");
    let compute = lines.iter().find(|v| v["ceiling"] == "compute").expect("a compute ceiling");
    let bandwidth = lines.iter().find(|v| v["ceiling"] == "bandwidth").expect("a bandwidth ceiling");
    assert_eq!((compute["op"].as_str(), compute["dtype"].as_str()), (Some("matmul"), Some("f32")), "{compute}");
    let (peak, gbps) = (compute["peak_gflops"].as_f64().unwrap(), bandwidth["peak_gbps"].as_f64().unwrap());
    assert!(peak > 0.0 && gbps > 0.0, "{compute} {bandwidth}");
    assert!((compute["ridge"].as_f64().unwrap() - peak / gbps).abs() < 1e-9 * peak / gbps, "{compute}");
    assert_eq!(bandwidth["op"], "copy");
}

#[test]
fn plot_into_a_missing_directory_is_a_clear_error() {
    let svg = temp_path("no-such-dir").join("roofline.svg");
    let (ok, out, err) = tessera(&["bench", "--size", "small", "--filter", "add", "--budget-ms", "20", "--plot", svg.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(err.contains(svg.to_str().unwrap()) && err.contains("does not exist"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.is_empty(), "refused before any case ran: {out}");
}

#[test]
fn info_explains_a_wgpu_backend_without_a_driver() {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("info")
        .env("VK_ICD_FILENAMES", "/nonexistent")
        .env("VK_DRIVER_FILES", "/nonexistent")
        .env("WGPU_BACKEND", "vulkan")
        .env_remove("TESSERA_WGPU_ADAPTER")
        .output()
        .expect("running tessera");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("cpu: "), "{stdout}");
    if cfg!(feature = "wgpu") {
        let line = stdout.lines().find(|l| l.starts_with("wgpu: unavailable: ")).unwrap_or_else(|| panic!("no wgpu line in\n{stdout}"));
        assert!(line.contains("mesa-vulkan-drivers") && line.contains("VK_ICD_FILENAMES"), "{line}");
    }
}

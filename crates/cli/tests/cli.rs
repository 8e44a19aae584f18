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

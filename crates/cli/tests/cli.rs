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

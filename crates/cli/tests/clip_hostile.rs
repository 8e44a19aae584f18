//! `tessera clip` on broken checkpoints: non-finite outputs are an error
//! naming the output (never `null` in JSON), unused tensors are a warning or,
//! with `--strict`, an error.

#[path = "../../clip/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use tessera_tensor::safetensors::{save, Checkpoint};
use tessera_tensor::{Device, Tensor};

fn tessera(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera")).args(args).output().expect("running tessera");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Rewrites tensor `name` of the checkpoint in `dir` as `value` everywhere.
fn fill_tensor(dir: &Path, name: &str, value: f64) {
    let path = dir.join("model.safetensors");
    let mut tensors: Vec<(String, Tensor)> = Checkpoint::open(&path).unwrap().load_all(&Device::cpu()).unwrap().into_iter().collect();
    let t = tensors.iter_mut().find(|(n, _)| n == name).unwrap();
    t.1 = Tensor::full(value, t.1.dims().to_vec(), t.1.dtype(), &Device::cpu()).unwrap();
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    save(&path, &refs, None).unwrap();
}

#[test]
fn nan_weights_are_an_error_naming_the_output_not_null() {
    let dir = tempfile::tempdir().unwrap();
    common::write_checkpoint(dir.path(), |_| {});
    let model = dir.path().to_str().unwrap();
    let (ok, out, err) = tessera(&["clip", "embed", "--model", model, "--text", "a cat", "--json"]);
    assert!(ok, "{err}");
    assert!(!out.contains("null") && out.contains("embedding"), "{out}");

    fill_tensor(dir.path(), "text_projection.weight", f64::NAN);
    let (ok, out, err) = tessera(&["clip", "embed", "--model", model, "--text", "a cat", "--json"]);
    assert!(!ok, "NaN embeddings were printed: {out}");
    assert!(!out.contains("null"), "{out}");
    assert!(err.contains("the embedding of text \"a cat\" is not finite"), "{err}");
}

#[test]
fn unused_tensors_warn_and_strict_refuses() {
    let dir = tempfile::tempdir().unwrap();
    common::write_checkpoint(dir.path(), |list| list.push(("text_model.leftover.weight".into(), vec![3])));
    let model = dir.path().to_str().unwrap();
    let (ok, _, err) = tessera(&["clip", "embed", "--model", model, "--text", "a cat"]);
    assert!(ok, "{err}");
    assert!(err.contains("warning: 1 tensor of checkpoint") && err.contains("text_model.leftover.weight"), "{err}");
    let (ok, _, err) = tessera(&["clip", "embed", "--model", model, "--text", "a cat", "--strict", "--no-mmap"]);
    assert!(!ok);
    assert!(err.starts_with("error: 1 tensor of checkpoint") && err.contains("not used"), "{err}");
}

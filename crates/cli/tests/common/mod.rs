//! What the model commands' tests share: running the `tessera` binary and
//! reading its JSON.

#![allow(dead_code)] // each test target uses its own part

use serde_json::Value;
use std::process::{Command, Output};

/// `tessera ARGS`, its output captured.
pub fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera")).args(args).output().expect("running tessera")
}

/// The JSON `tessera ARGS` prints; a failed run or other output fails the test.
pub fn tessera_json(args: &[&str]) -> Value {
    let out = tessera(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tessera {args:?} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// A JSON list of token ids.
pub fn id_list(v: &Value) -> Vec<u32> {
    v.as_array().expect("a list of ids").iter().map(|x| x.as_u64().expect("an id") as u32).collect()
}

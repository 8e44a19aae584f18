//! Hub ids: a snapshot already in hf-hub's cache loads without the network,
//! and an id that is not cached fails, when the hub cannot be reached, with
//! an error that names the local-directory alternative. The hub endpoint is
//! pointed at a closed local port, so no request leaves the machine.

#![cfg(feature = "hub")]

mod common;

use common::write_checkpoint;
use tessera_clip::{Clip, ClipOptions};

#[test]
fn cached_snapshots_load_offline_and_unreachable_hub_names_the_alternative() {
    let home = tempfile::tempdir().unwrap();
    // One test in this binary: the environment is set before any thread reads it.
    std::env::set_var("HF_HOME", home.path());
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");

    let repo = home.path().join("hub").join("models--acme--tiny-clip");
    let snapshot = repo.join("snapshots").join("0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "0123abcd").unwrap();
    write_checkpoint(&snapshot, |_| {});
    // Real snapshots carry a preprocessor config too.
    std::fs::write(
        snapshot.join("preprocessor_config.json"),
        r#"{"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}}"#,
    )
    .unwrap();

    let clip = Clip::load("acme/tiny-clip", &ClipOptions::default()).unwrap();
    assert_eq!(clip.dir(), snapshot.as_path());
    assert_eq!(clip.embed_texts(&["a cat"]).unwrap().dims(), &[1, 16]);

    let e = Clip::load("openai/clip-vit-base-patch32", &ClipOptions::default()).unwrap_err().to_string();
    assert!(e.contains("could not fetch config.json") && e.contains("local checkpoint directory"), "{e}");
    let e = Clip::load("./no/such/dir", &ClipOptions::default()).unwrap_err().to_string();
    assert!(e.contains("neither a local directory nor a hub id"), "{e}");
}

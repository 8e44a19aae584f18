//! `tessera janus ask --json` and `tessera janus imagine --json` on the
//! Janus-Pro parity suite's tiny seeded checkpoint: the JSON the issue
//! specifies, with the ids transformers generated; and the flags' errors.

mod common;

use common::{id_list, tessera, tessera_json};
use tessera_janus_parity::{fixtures, write_checkpoint};

#[test]
fn ask_json_holds_the_generated_ids() {
    let f = fixtures().unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint("tiny", dir.path()).unwrap();
    // The first tiny understanding case: image 0 and its question, greedy.
    let case = &f.model("tiny")["understanding"][0];
    let image_index = case["images"][0].as_u64().unwrap() as usize;
    let image = f.image_paths().unwrap()[image_index].display().to_string();
    let greedy = &case["greedy"];
    let n = greedy["max_new_tokens"].to_string();
    let model = dir.path().display().to_string();
    let question = case["question"].as_str().unwrap();
    let v = tessera_json(&["janus", "ask", "--model", &model, "--image", &image, question, "--max-new-tokens", &n, "--json"]);
    assert_eq!(id_list(&v["token_ids"]), id_list(&greedy["ids"]));
    assert_eq!(v["text"], greedy["text"]);
}

#[test]
fn imagine_json_lists_the_images_and_their_tokens() {
    let f = fixtures().unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint("tiny", dir.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    // The first tiny generation case: greedy at the recorded guidance.
    let case = &f.model("tiny")["generation"][0];
    let cfg = case["guidance_scale"].to_string();
    let (model, out_dir) = (dir.path().display().to_string(), out.path().display().to_string());
    let prompt = case["prompt"].as_str().unwrap();
    let v = tessera_json(&[
        "janus",
        "imagine",
        "--model",
        &model,
        prompt,
        "-n",
        "2",
        "--cfg",
        &cfg,
        "--temperature",
        "0",
        "--out",
        &out_dir,
        "--json",
    ]);
    let images = v["images"].as_array().expect("an images list");
    assert_eq!(images.len(), 2);
    let side = f.model("tiny")["vq_image_size"].as_u64().unwrap() as u32;
    for (k, entry) in images.iter().enumerate() {
        let path = out.path().join(format!("janus_{k}.png"));
        assert_eq!(entry["path"], path.display().to_string().as_str());
        assert_eq!(id_list(&entry["image_token_ids"]), id_list(&case["ids"]));
        let png = tessera_janus::load_image(&path).unwrap();
        assert_eq!(png.dimensions(), (side, side));
    }
}

#[test]
fn bad_flags_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint("tiny", dir.path()).unwrap();
    let model = dir.path().display().to_string();
    for (args, says) in [
        (vec!["janus", "imagine", "--model", &model, "a cat", "-n", "0"], "-n must be at least 1"),
        (vec!["janus", "imagine", "--model", &model, "a cat", "--cfg", "-1"], "--cfg must be finite and at least 0"),
        (vec!["janus", "imagine", "--model", &model, "a cat", "--temperature", "-0.5"], "--temperature"),
        (vec!["janus", "ask", "--model", &model, "--image", "/no/such/image.png", "what?"], "/no/such/image.png"),
    ] {
        let out = tessera(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// crates/hf/tests/fixtures/pickle: torch.save files written by its make_fixtures.py.
fn pickle_fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../hf/tests/fixtures/pickle")
}

#[test]
fn convert_writes_hf_names_and_refuses_code() {
    let out = tempfile::tempdir().unwrap();
    let model = pickle_fixtures().join("janus").display().to_string();
    let out_dir = out.path().display().to_string();
    let v = tessera_json(&["convert", "--model", &model, "--out", &out_dir, "--json"]);
    assert_eq!(v["shards"], 1);
    assert!(v["tensors"].as_u64().unwrap() > 0, "{v}");
    let written = tessera_tensor::safetensors::SafeTensorsFile::open(out.path().join("model.safetensors")).unwrap();
    let names = written.names();
    assert!(names.iter().any(|n| n.starts_with("model.vision_model.encoder.layers.0.self_attn.q_proj.")), "{names:?}");
    assert!(names.iter().all(|n| !n.contains(".qkv.")), "{names:?}");

    // A pickle whose reduce would call os.system: refused, naming it.
    let evil = tempfile::tempdir().unwrap();
    std::fs::copy(pickle_fixtures().join("os_system.pt"), evil.path().join("pytorch_model.bin")).unwrap();
    let evil_dir = evil.path().display().to_string();
    let result = tessera(&["convert", "--model", &evil_dir, "--out", &out_dir]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success() && stderr.contains("refused global 'os.system'"), "{stderr}");
}

//! Checkpoints that disagree with their config or carry hostile contents:
//! each is one clear error naming the field or tensor and the file, before
//! any weight is loaded where the header can tell.

mod common;

use common::{config_json, write_checkpoint, VOCAB};
use std::path::Path;
use tessera_clip::{Clip, ClipOptions, Error};
use tessera_tensor::safetensors::{save, Checkpoint};
use tessera_tensor::{DType, Device, Tensor};

fn load_err(dir: &Path, options: &ClipOptions) -> String {
    match Clip::from_dir(dir, options) {
        Ok(_) => panic!("the checkpoint in {} was accepted", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn with_config(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |_| {});
    std::fs::write(dir.path().join("config.json"), edit(config_json())).unwrap();
    dir
}

/// Rewrites the checkpoint with `edit` applied to its loaded tensors.
fn rewrite_tensors(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let path = dir.join("model.safetensors");
    let mut tensors: Vec<(String, Tensor)> = Checkpoint::open(&path).unwrap().load_all(&Device::cpu()).unwrap().into_iter().collect();
    edit(&mut tensors);
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    save(&path, &refs, None).unwrap();
}

#[test]
fn a_config_with_fewer_layers_than_the_checkpoint_names_the_field_and_file() {
    let dir = with_config(|c| c.replacen(r#""num_hidden_layers": 2"#, r#""num_hidden_layers": 1"#, 1));
    let e = load_err(dir.path(), &ClipOptions::default());
    assert!(e.contains("text_config.num_hidden_layers") && e.contains("holds 2 layers"), "{e}");
    assert!(e.contains("config.json") && e.contains("model.safetensors"), "{e}");
}

#[test]
fn absurd_layer_counts_fail_on_the_field_without_allocating() {
    for n in ["1000000000000", "4611686018427387904", "1e12", "4096"] {
        let dir = with_config(|c| c.replace(r#""num_hidden_layers": 2"#, &format!(r#""num_hidden_layers": {n}"#)));
        let e = load_err(dir.path(), &ClipOptions::default());
        assert!(e.contains("num_hidden_layers") && e.contains("config.json"), "{n}: {e}");
    }
}

#[test]
fn widths_the_checkpoint_lacks_are_reported_together() {
    let dir = with_config(|c| {
        c.replace(r#""hidden_size": 48, "intermediate_size": 96"#, r#""hidden_size": 64, "intermediate_size": 128"#)
            .replace(r#""patch_size": 16"#, r#""patch_size": 8"#)
    });
    let e = load_err(dir.path(), &ClipOptions::default());
    for field in ["vision_config.hidden_size", "vision_config.intermediate_size", "vision_config.patch_size", "vision_config.image_size"] {
        assert!(e.contains(field), "{field} not in {e}");
    }
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn an_end_of_text_id_outside_the_vocabulary_is_a_config_error() {
    let dir = with_config(|c| c.replace(&format!(r#""eos_token_id": {}"#, VOCAB - 1), &format!(r#""eos_token_id": {VOCAB}"#)));
    let e = load_err(dir.path(), &ClipOptions::default());
    assert!(e.contains("text_config.eos_token_id") && e.contains("outside the vocabulary"), "{e}");
}

#[test]
fn integer_weights_name_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |_| {});
    let name = "vision_model.encoder.layers.0.mlp.fc1.weight";
    rewrite_tensors(dir.path(), |ts| {
        let t = ts.iter_mut().find(|(n, _)| n == name).unwrap();
        t.1 = t.1.to_dtype(DType::I64).unwrap();
    });
    let e = load_err(dir.path(), &ClipOptions::default());
    assert!(e.contains(name) && e.contains("dtype i64") && e.contains("model.safetensors"), "{e}");
    assert!(!e.contains("to_dtype") && !e.contains("matmul"), "{e}");
}

#[test]
fn many_missing_tensors_make_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |list| list.retain(|(n, _)| !n.contains(".layers.1.") && !n.starts_with("text_model.encoder")));
    let e = load_err(dir.path(), &ClipOptions::default());
    // The layer counts disagree with the config first.
    assert!(e.contains("num_hidden_layers"), "{e}");
    // Tensors missing inside layers the checkpoint does hold: one line.
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |list| list.retain(|(n, _)| !n.contains("self_attn")));
    let e = load_err(dir.path(), &ClipOptions::default());
    assert!(e.contains("model.safetensors") && e.contains("32 tensors missing") && e.contains("and 27 more"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn unused_tensors_are_listed_and_refused_when_strict() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |list| {
        list.push(("vision_model.extra_head.weight".into(), vec![2, 2]));
        list.push(("text_model.embeddings.position_ids".into(), vec![1, 77]));
    });
    let clip = Clip::from_dir(dir.path(), &ClipOptions::default()).unwrap();
    // The position-ids buffer old checkpoints carry is ignored, as in transformers.
    assert_eq!(clip.unused_tensors().names, vec!["vision_model.extra_head.weight".to_string()]);
    assert!(clip.unused_tensors().summary().starts_with("1 tensor of checkpoint "), "{}", clip.unused_tensors().summary());
    let e = load_err(dir.path(), &ClipOptions { strict: true, ..ClipOptions::default() });
    assert!(e.contains("vision_model.extra_head.weight") && e.contains("not used"), "{e}");
}

#[test]
fn a_fifo_or_directory_as_a_model_file_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |_| {});
    let model = dir.path().join("model.safetensors");
    std::fs::remove_file(&model).unwrap();
    std::fs::create_dir(&model).unwrap();
    let e = load_err(dir.path(), &ClipOptions::default());
    assert!(e.contains("directory") && e.contains("model.safetensors"), "{e}");
    for file in ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"] {
        let dir = tempfile::tempdir().unwrap();
        write_checkpoint(dir.path(), |_| {});
        let path = dir.path().join(file);
        std::fs::remove_file(&path).unwrap();
        if !std::process::Command::new("mkfifo").arg(&path).status().is_ok_and(|s| s.success()) {
            eprintln!("skipping the FIFO cases: mkfifo is not available");
            return;
        }
        let e = load_err(dir.path(), &ClipOptions::default());
        assert!(e.contains("FIFO") && e.contains(file), "{e}");
    }
}

#[test]
fn the_read_into_memory_mode_loads_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |_| {});
    let mapped = Clip::from_dir(dir.path(), &ClipOptions::default()).unwrap();
    let read = Clip::from_dir(dir.path(), &ClipOptions { read_mode: tessera_clip::ReadMode::Read, ..ClipOptions::default() }).unwrap();
    let a = mapped.embed_texts(&["a cat"]).unwrap().to_vec::<f32>().unwrap();
    let b = read.embed_texts(&["a cat"]).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_tokenizer_config_fault_is_blamed_on_tokenizer_config() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |_| {});
    let cfg = dir.path().join("tokenizer_config.json");
    std::fs::write(&cfg, r#"{"pad_token": "<|no such token|>"}"#).unwrap();
    let e = load_err(dir.path(), &ClipOptions::default());
    assert!(e.contains("tokenizer_config.json") && e.contains("pad_token") && e.contains("<|no such token|>"), "{e}");
    std::fs::write(&cfg, r#"{"model_max_length": 1}"#).unwrap();
    let e = load_err(dir.path(), &ClipOptions::default());
    assert!(e.contains("tokenizer_config.json") && e.contains("model_max_length"), "{e}");
    match Clip::from_dir(dir.path(), &ClipOptions::default()) {
        Err(Error::Tokenizer { .. }) => {}
        other => panic!("expected a tokenizer error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn huge_sizes_with_no_tensors_to_check_them_against_fail_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |list| list.retain(|(n, _)| n == "logit_scale"));
    let big = 1 << 24;
    let config = format!(
        r#"{{"projection_dim": {big},
  "text_config": {{"vocab_size": {big}, "hidden_size": {big}, "intermediate_size": {big}, "num_hidden_layers": 0,
                   "num_attention_heads": 1, "max_position_embeddings": {big}, "eos_token_id": 5}},
  "vision_config": {{"hidden_size": {big}, "intermediate_size": {big}, "num_hidden_layers": 0, "num_attention_heads": 1,
                     "image_size": 32, "patch_size": 16}}}}"#
    );
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    std::fs::write(dir.path().join("preprocessor_config.json"), r#"{"crop_size": 32, "size": 32}"#).unwrap();
    let e = load_err(dir.path(), &ClipOptions::default());
    assert!(e.contains("tensors missing") && e.contains("model.safetensors"), "{e}");
}

#[test]
fn a_tokenizer_the_tokenizers_library_panics_on_is_a_tokenizer_error() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |_| {});
    let path = dir.path().join("tokenizer.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // serde_json cannot hold 1e400: splice it in as text.
    json["decoder"] = serde_json::Value::String("@@".into());
    std::fs::write(&path, json.to_string().replace(r#""@@""#, "1e400")).unwrap();
    match Clip::from_dir(dir.path(), &ClipOptions::default()) {
        Err(Error::Tokenizer { file, msg }) => assert!(file.ends_with("tokenizer.json") && !msg.contains('\n'), "{file}: {msg}"),
        other => panic!("expected a tokenizer error, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_processor_cropping_to_an_absurd_size_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |_| {});
    std::fs::write(dir.path().join("preprocessor_config.json"), r#"{"crop_size": 16385, "size": 32}"#).unwrap();
    let e = load_err(dir.path(), &ClipOptions::default());
    assert!(e.contains("preprocessor_config.json") && e.contains("crop_size") && e.contains("16385"), "{e}");
    std::fs::write(dir.path().join("preprocessor_config.json"), r#"{"crop_size": 32, "size": 4611686018427387904}"#).unwrap();
    let e = load_err(dir.path(), &ClipOptions::default());
    assert!(e.contains("'size'"), "{e}");
}

//! A tiny CLIP checkpoint (2 layers per tower, 32x32 images, 16x16 patches)
//! with random weights and the parity fixtures' real CLIP tokenizer, written
//! to a temporary directory as an HF checkpoint.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use tessera_tensor::safetensors::save;
use tessera_tensor::{DType, Device, Tensor};

/// The parity fixtures (tokenizer and images).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/clip/fixtures")
}

pub const VOCAB: usize = 915;

/// config.json of the tiny model.
pub fn config_json() -> String {
    format!(
        r#"{{"model_type": "clip", "projection_dim": 16,
  "text_config": {{"vocab_size": {VOCAB}, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                   "num_attention_heads": 4, "max_position_embeddings": 77, "eos_token_id": {eos}}},
  "vision_config": {{"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "image_size": 32, "patch_size": 16}}}}"#,
        eos = VOCAB - 1
    )
}

fn layer_tensors(prefix: &str, d: usize, inter: usize, out: &mut Vec<(String, Vec<usize>)>) {
    for i in 0..2 {
        let p = format!("{prefix}.encoder.layers.{i}");
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            out.push((format!("{p}.self_attn.{proj}.weight"), vec![d, d]));
            out.push((format!("{p}.self_attn.{proj}.bias"), vec![d]));
        }
        for ln in ["layer_norm1", "layer_norm2"] {
            out.push((format!("{p}.{ln}.weight"), vec![d]));
            out.push((format!("{p}.{ln}.bias"), vec![d]));
        }
        out.push((format!("{p}.mlp.fc1.weight"), vec![inter, d]));
        out.push((format!("{p}.mlp.fc1.bias"), vec![inter]));
        out.push((format!("{p}.mlp.fc2.weight"), vec![d, inter]));
        out.push((format!("{p}.mlp.fc2.bias"), vec![d]));
    }
}

/// Every tensor of the tiny model, by HF name.
pub fn tensor_list() -> Vec<(String, Vec<usize>)> {
    let mut t = vec![
        ("logit_scale".to_string(), vec![]),
        ("text_model.embeddings.token_embedding.weight".into(), vec![VOCAB, 32]),
        ("text_model.embeddings.position_embedding.weight".into(), vec![77, 32]),
        ("text_model.final_layer_norm.weight".into(), vec![32]),
        ("text_model.final_layer_norm.bias".into(), vec![32]),
        ("vision_model.embeddings.class_embedding".into(), vec![48]),
        ("vision_model.embeddings.patch_embedding.weight".into(), vec![48, 3, 16, 16]),
        ("vision_model.embeddings.position_embedding.weight".into(), vec![5, 48]),
        ("vision_model.pre_layrnorm.weight".into(), vec![48]),
        ("vision_model.pre_layrnorm.bias".into(), vec![48]),
        ("vision_model.post_layernorm.weight".into(), vec![48]),
        ("vision_model.post_layernorm.bias".into(), vec![48]),
        ("visual_projection.weight".into(), vec![16, 48]),
        ("text_projection.weight".into(), vec![16, 32]),
    ];
    layer_tensors("text_model", 32, 64, &mut t);
    layer_tensors("vision_model", 48, 96, &mut t);
    t
}

/// Writes the tiny checkpoint into `dir`, with `edit` applied to the tensor
/// list first (to drop or reshape a tensor).
pub fn write_checkpoint(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>)>)) {
    let mut list = tensor_list();
    edit(&mut list);
    let cpu = Device::cpu();
    let tensors: Vec<(String, Tensor)> = list
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let t = if name.ends_with("norm.weight") || name.ends_with("norm1.weight") || name.ends_with("norm2.weight") {
                Tensor::ones(shape, DType::F32, &cpu)
            } else {
                Tensor::randn(i as u64, 0.0, 0.05, shape, DType::F32, &cpu)
            };
            (name, t.unwrap())
        })
        .collect();
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    save(dir.join("model.safetensors"), &refs, None).unwrap();
    std::fs::write(dir.join("config.json"), config_json()).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixtures().join("tokenizer").join(f), dir.join(f)).unwrap();
    }
}

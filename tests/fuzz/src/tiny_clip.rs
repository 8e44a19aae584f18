//! A tiny CLIP checkpoint (both towers 32 wide, one layer each, 32x32
//! images in 16x16 patches) with tessera-parity's seeded weights and the
//! CLIP parity fixtures' real tokenizer (915 tokens), as the files of a
//! checkpoint directory. Small enough that a full `Clip::from_dir` takes a
//! few milliseconds.

use std::sync::OnceLock;
use tessera_parity::seeded_values;
use tessera_tensor::safetensors::serialize;
use tessera_tensor::{Device, Tensor};

/// The fixture tokenizer's vocabulary size.
pub const VOCAB: usize = 915;
/// The fixture tokenizer.json (byte-level BPE, CLIP's pipeline).
pub const TOKENIZER_JSON: &[u8] = include_bytes!("../../clip/fixtures/tokenizer/tokenizer.json");
/// The fixture tokenizer_config.json.
pub const TOKENIZER_CONFIG: &[u8] = include_bytes!("../../clip/fixtures/tokenizer/tokenizer_config.json");

/// Width of both towers.
const HIDDEN: usize = 32;
/// Width of both MLPs.
const INTERMEDIATE: usize = 64;
/// Width of the shared embedding space.
const PROJECTION: usize = 16;
/// Positions of the vision tower: (32 / 16)^2 patches and the class token.
const VISION_POSITIONS: usize = 5;

/// The tiny model's config.json.
pub fn config_json() -> String {
    format!(
        r#"{{"model_type": "clip", "projection_dim": {PROJECTION}, "logit_scale_init_value": 2.6592,
  "text_config": {{"vocab_size": {VOCAB}, "hidden_size": {HIDDEN}, "intermediate_size": {INTERMEDIATE}, "num_hidden_layers": 1,
                   "num_attention_heads": 4, "max_position_embeddings": 77, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
                   "bos_token_id": {bos}, "eos_token_id": {eos}, "pad_token_id": 1}},
  "vision_config": {{"hidden_size": {HIDDEN}, "intermediate_size": {INTERMEDIATE}, "num_hidden_layers": 1, "num_attention_heads": 4,
                     "num_channels": 3, "image_size": 32, "patch_size": 16, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05}}}}"#,
        bos = VOCAB - 2,
        eos = VOCAB - 1
    )
}

fn layer_tensors(prefix: &str, out: &mut Vec<(String, Vec<usize>)>) {
    let (d, inter) = (HIDDEN, INTERMEDIATE);
    let p = format!("{prefix}.encoder.layers.0");
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

/// Every tensor of the tiny model, by transformers' name.
pub fn tensor_list() -> Vec<(String, Vec<usize>)> {
    let d = HIDDEN;
    let mut t: Vec<(String, Vec<usize>)> = vec![
        ("logit_scale".into(), vec![]),
        ("text_model.embeddings.token_embedding.weight".into(), vec![VOCAB, d]),
        ("text_model.embeddings.position_embedding.weight".into(), vec![77, d]),
        ("text_model.final_layer_norm.weight".into(), vec![d]),
        ("text_model.final_layer_norm.bias".into(), vec![d]),
        ("vision_model.embeddings.class_embedding".into(), vec![d]),
        ("vision_model.embeddings.patch_embedding.weight".into(), vec![d, 3, 16, 16]),
        ("vision_model.embeddings.position_embedding.weight".into(), vec![VISION_POSITIONS, d]),
        ("vision_model.pre_layrnorm.weight".into(), vec![d]),
        ("vision_model.pre_layrnorm.bias".into(), vec![d]),
        ("vision_model.post_layernorm.weight".into(), vec![d]),
        ("vision_model.post_layernorm.bias".into(), vec![d]),
        ("visual_projection.weight".into(), vec![PROJECTION, d]),
        ("text_projection.weight".into(), vec![PROJECTION, d]),
    ];
    layer_tensors("text_model", &mut t);
    layer_tensors("vision_model", &mut t);
    t
}

/// model.safetensors of the tiny model (built once).
pub fn model_safetensors() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let cpu = Device::cpu();
        let tensors: Vec<(String, Tensor)> = tensor_list()
            .into_iter()
            .map(|(name, shape)| {
                let values = seeded_values(&name, shape.iter().product());
                let t = Tensor::from_vec(values, shape, &cpu).expect("seeded tensor");
                (name, t)
            })
            .collect();
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        serialize(&refs, None).expect("tiny checkpoint serializes")
    })
}

/// The checkpoint directory's files with `config` as config.json (first).
pub fn checkpoint_files(config: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    vec![
        ("config.json".into(), config),
        ("model.safetensors".into(), model_safetensors().to_vec()),
        ("tokenizer.json".into(), TOKENIZER_JSON.to_vec()),
        ("tokenizer_config.json".into(), TOKENIZER_CONFIG.to_vec()),
    ]
}

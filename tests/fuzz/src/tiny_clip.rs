//! A tiny CLIP checkpoint (the CLIP crate's test model: two layers a tower,
//! 32x32 images in 16x16 patches) with tessera-parity's seeded weights and the
//! CLIP parity fixtures' real tokenizer (915 tokens), as the files of a
//! checkpoint directory. Small enough that a full `Clip::from_dir` takes a
//! few milliseconds.

use std::sync::OnceLock;
use tessera_parity::seeded_values;
use tessera_tensor::safetensors::serialize;
use tessera_tensor::{Device, Tensor};

/// The fixture tokenizer's vocabulary size.
pub use clip_test_model::VOCAB;
/// The fixture tokenizer.json (byte-level BPE, CLIP's pipeline).
pub const TOKENIZER_JSON: &[u8] = include_bytes!("../../clip/fixtures/tokenizer/tokenizer.json");
/// The fixture tokenizer_config.json.
pub const TOKENIZER_CONFIG: &[u8] = include_bytes!("../../clip/fixtures/tokenizer/tokenizer_config.json");

/// The tiny model of the CLIP crate's own tests (config.json and the
/// tensor list), so that both suites load the same checkpoint.
#[path = "../../../crates/clip/tests/common/mod.rs"]
mod clip_test_model;

pub use clip_test_model::{config_json, tensor_list};

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

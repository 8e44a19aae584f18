//! # Seeded weights for the parity suites
//!
//! Weights cannot be downloaded where the suites run, so every model's
//! parity is proven on weights both sides compute: a Python generator
//! (tests/parity/seeded_weights.py) fills the transformers model and
//! records its outputs, and the Rust suite rebuilds the same tensors with
//! this crate. Element `i` of tensor `NAME` is
//!
//! ```text
//! u = (word(fnv1a64(NAME), i) >> 11) * 2^-53        (tessera_tensor::rng::uniform)
//! value = f32(mean + amp * (2u - 1))                (computed in f64)
//! ```
//!
//! with `(mean, amp)` from the tensor's role ([`weight_law`]). Only integer
//! arithmetic and one f64 expression are involved, so both languages
//! produce identical bits.

pub mod fixtures;
mod report;

pub use fixtures::{all, err, expected_values, ids, is_jpeg, judge, judge_pixels, name_filter, FixtureSet, Res, Tolerance};
pub use report::{compare_rows, Check, Report};
use std::path::Path;
use tessera_tensor::rng::uniform;
use tessera_tensor::safetensors::save;
use tessera_tensor::{Device, Result, Tensor};

/// FNV-1a (64-bit) of a tensor name: the seed of its values.
pub fn fnv1a64(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3))
}

/// Whether module path component `part` names a normalisation layer:
/// LayerNorm (`layer_norm1`, `final_layer_norm`, `post_layernorm`, CLIP's
/// `pre_layrnorm`, `ln_1`, `ln_f`), Llama's `norm`, `input_layernorm` and
/// `post_attention_layernorm`, RMSNorm (`rms_norm`, `q_norm`, `norm1`).
pub fn is_norm_component(part: &str) -> bool {
    let p = part.to_ascii_lowercase();
    p.contains("norm") || p == "ln" || p.starts_with("ln_") || (p.starts_with("ln") && p[2..].bytes().all(|b| b.is_ascii_digit()))
}

/// Whether tensor `name` belongs to a normalisation layer (any component
/// before the leaf, see [`is_norm_component`]).
pub fn is_norm(name: &str) -> bool {
    let mut parts: Vec<&str> = name.split('.').collect();
    parts.pop();
    parts.into_iter().any(is_norm_component)
}

/// (mean, amplitude) of tensor `name`: its values are uniform in
/// `mean ± amp`. Norm weights near 1, norm biases near 0, other biases
/// ±0.02, embeddings ±0.05, every other weight of standard deviation 0.02.
pub fn weight_law(name: &str) -> (f64, f64) {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    match (is_norm(name), leaf) {
        (true, "weight") => (1.0, 0.1),
        (true, "bias") => (0.0, 0.05),
        (false, "bias") => (0.0, 0.02),
        _ if name.contains("embed") => (0.0, 0.05),
        _ => (0.0, 0.02 * 3f64.sqrt()),
    }
}

/// The seeded values of tensor `name` with `numel` elements.
pub fn seeded_values(name: &str, numel: usize) -> Vec<f32> {
    let (mean, amp) = weight_law(name);
    let seed = fnv1a64(name);
    (0..numel as u64).map(|i| (mean + amp * (2.0 * uniform(seed, i) - 1.0)) as f32).collect()
}

/// Writes a safetensors file of f32 tensors `(name, shape)`, each holding
/// `values(name, numel)` (e.g. [`seeded_values`], or a model's special
/// cases in front of it).
pub fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>)], values: impl Fn(&str, usize) -> Vec<f32>) -> Result<()> {
    let cpu = Device::cpu();
    let mut built = Vec::with_capacity(tensors.len());
    for (name, shape) in tensors {
        let data = values(name, shape.iter().product());
        built.push((name.as_str(), Tensor::from_vec(data, shape.clone(), &cpu)?));
    }
    let refs: Vec<(&str, &Tensor)> = built.iter().map(|(n, t)| (*n, t)).collect();
    save(path, &refs, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norm_names_of_every_architecture() {
        for n in [
            "text_model.encoder.layers.0.layer_norm1.weight",
            "vision_model.pre_layrnorm.weight",
            "vision_model.post_layernorm.weight",
            "model.norm.weight",
            "model.layers.3.input_layernorm.weight",
            "model.layers.3.post_attention_layernorm.weight",
            "transformer.h.0.ln_1.weight",
            "transformer.ln_f.weight",
            "blocks.2.norm1.weight",
            "layers.0.self_attn.q_norm.weight",
            "encoder.rms_norm.weight",
            "visual.ln0.weight",
        ] {
            assert!(is_norm(n), "{n}");
            assert_eq!(weight_law(n), (1.0, 0.1), "{n}");
        }
        for n in ["model.layers.0.mlp.down_proj.weight", "lnx.weight", "normal_dist_head", "logit_scale"] {
            assert!(!is_norm(n), "{n}");
        }
        assert_eq!(weight_law("transformer.ln_f.bias"), (0.0, 0.05));
        assert_eq!(weight_law("model.embed_tokens.weight"), (0.0, 0.05));
        assert_eq!(weight_law("vision_model.embeddings.class_embedding"), (0.0, 0.05));
        assert_eq!(weight_law("mlp.fc1.bias"), (0.0, 0.02));
    }

    #[test]
    fn values_follow_the_documented_formula() {
        // fnv1a64 of the empty name is the offset basis.
        assert_eq!(fnv1a64(""), 0xCBF2_9CE4_8422_2325);
        let v = seeded_values("a.layer_norm.weight", 1000);
        assert!(v.iter().all(|x| (0.9..=1.1).contains(x)));
        let u = uniform(fnv1a64("a.layer_norm.weight"), 7);
        assert_eq!(v[7], (1.0 + 0.1 * (2.0 * u - 1.0)) as f32);
        assert_ne!(seeded_values("x.weight", 4), seeded_values("y.weight", 4));
    }

    #[test]
    fn values_equal_the_python_generator() {
        // seeded_weights.seeded_tensor(name, (3,)).view("uint32"), numpy 2.
        let cases: [(&str, [u32; 3]); 3] = [
            ("model.layers.0.input_layernorm.weight", [0x3f88b3e9, 0x3f87dcbf, 0x3f8c7264]),
            ("transformer.h.0.attn.c_attn.weight", [0x3c579270, 0xbc39b711, 0x3c5ae556]),
            ("model.embed_tokens.weight", [0xbc5287bb, 0xbaa7f425, 0xbd09d08a]),
        ];
        for (name, bits) in cases {
            assert_eq!(seeded_values(name, 3).iter().map(|v| v.to_bits()).collect::<Vec<_>>(), bits, "{name}");
        }
    }
}

//! Janus-Pro's configuration, read from a checkpoint's config.json as
//! transformers' `JanusConfig` reads it: `vision_config` (the SigLIP-style
//! tower and its aligner), `vq_config` (the VQ model and the generation
//! modules) and `text_config` (a Llama config). A missing field takes
//! transformers' default (deepseek-community/Janus-Pro-1B's values for the
//! vision and VQ parts, `LlamaConfig`'s for the language model), an unknown
//! field is ignored, a field of the wrong type or an impossible size is an
//! error naming it.
//!
//! As in transformers, the VQ grid (`vq_config.num_patches`) is the vision
//! tower's, `image_size // patch_size`, whatever the file says; the image
//! generation draws `vision_config.num_image_tokens` tokens, which must fill
//! that grid.

use crate::Result;
use std::path::Path;
use tessera_hf::config::{parse_object, read_object, sub_config};
use tessera_hf::{ConfigCheck, Fields};
use tessera_nn::{Activation, LlamaConfig, TensorSource};

/// The groups of every GroupNorm of the VQ model (fixed in transformers).
pub const VQ_NORM_GROUPS: usize = 32;

/// The vision tower and its aligner (`vision_config`).
#[derive(Clone, Debug, PartialEq)]
pub struct JanusVisionConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub patch_size: usize,
    pub image_size: usize,
    pub layer_norm_eps: f64,
    pub hidden_act: Activation,
    pub mlp_ratio: f64,
    pub attention_bias: bool,
    /// Width of the aligner's layers (the language model's width).
    pub projection_dim: usize,
    /// Linear layers of the aligner.
    pub depth: usize,
    /// Image tokens of a generated image (and placeholders of an input one).
    pub num_image_tokens: usize,
}

/// The VQ model and the image-generation modules (`vq_config`).
#[derive(Clone, Debug, PartialEq)]
pub struct JanusVqConfig {
    /// Width of a codebook entry.
    pub embed_dim: usize,
    /// Codebook entries: the image-token vocabulary.
    pub num_embeddings: usize,
    pub latent_channels: usize,
    /// Tokens per side of the grid (the vision tower's grid).
    pub num_patches: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub base_channels: usize,
    pub channel_multiplier: Vec<usize>,
    pub num_res_blocks: usize,
    /// Width of the generation aligner and head.
    pub projection_dim: usize,
    /// Linear layers of the generation aligner.
    pub num_hidden_layers: usize,
    pub hidden_act: Activation,
    /// Width of the hidden states the generation head reads.
    pub image_token_embed_dim: usize,
}

/// A Janus checkpoint's config.json.
#[derive(Clone, Debug, PartialEq)]
pub struct JanusConfig {
    pub vision_config: JanusVisionConfig,
    pub vq_config: JanusVqConfig,
    pub text_config: LlamaConfig,
    /// The placeholder id whose embeddings an input image replaces.
    pub image_token_id: u32,
    /// The text model's special ids (also in generation_config.json).
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
}

impl JanusVisionConfig {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Patches of an image: the tower's sequence length.
    pub fn num_patches(&self) -> usize {
        self.grid() * self.grid()
    }

    /// Width of the MLPs: `int(hidden_size * mlp_ratio)`.
    pub fn intermediate_size(&self) -> usize {
        (self.hidden_size as f64 * self.mlp_ratio) as usize
    }
}

impl JanusVqConfig {
    /// Levels of the encoder and decoder.
    pub fn num_resolutions(&self) -> usize {
        self.channel_multiplier.len()
    }

    /// Side of the images the VQ model encodes and decodes: the grid times
    /// the encoder's downsampling (one halving per level but the last).
    pub fn image_size(&self) -> usize {
        self.num_patches << (self.num_resolutions() - 1)
    }

    /// Tokens of an image.
    pub fn num_image_tokens(&self) -> usize {
        self.num_patches * self.num_patches
    }
}

impl Default for JanusVisionConfig {
    fn default() -> Self {
        JanusVisionConfig {
            hidden_size: 1024,
            num_hidden_layers: 24,
            num_attention_heads: 16,
            num_channels: 3,
            patch_size: 16,
            image_size: 384,
            layer_norm_eps: 1e-6,
            hidden_act: Activation::Gelu,
            mlp_ratio: 4.0,
            attention_bias: true,
            projection_dim: 2048,
            depth: 2,
            num_image_tokens: 576,
        }
    }
}

impl Default for JanusVqConfig {
    fn default() -> Self {
        JanusVqConfig {
            embed_dim: 8,
            num_embeddings: 16384,
            latent_channels: 256,
            num_patches: 24,
            in_channels: 3,
            out_channels: 3,
            base_channels: 128,
            channel_multiplier: vec![1, 1, 2, 2, 4],
            num_res_blocks: 2,
            projection_dim: 2048,
            num_hidden_layers: 2,
            hidden_act: Activation::Gelu,
            image_token_embed_dim: 2048,
        }
    }
}

impl JanusConfig {
    /// Reads config.json.
    pub fn from_file(path: impl AsRef<Path>) -> Result<JanusConfig> {
        let (root, file) = read_object(path.as_ref())?;
        JanusConfig::from_object(&root, &file)
    }

    /// Parses the text of a config.json; `file` names it in errors.
    pub fn from_json(text: &str, file: &str) -> Result<JanusConfig> {
        JanusConfig::from_object(&parse_object(text, file)?, file)
    }

    fn from_object(root: &serde_json::Map<String, serde_json::Value>, file: &str) -> Result<JanusConfig> {
        let top = Fields::new(root, "", file);
        let model_type: Option<String> = top.get("model_type", None)?;
        if let Some(t) = model_type.as_deref().filter(|t| *t != "janus") {
            return Err(top.error("model_type", format!("'{t}' is not a Janus model (expected 'janus')")));
        }
        let vision_obj = sub_config(root, "vision_config", file)?;
        let vq_obj = sub_config(root, "vq_config", file)?;
        let text_obj = sub_config(root, "text_config", file)?;
        let vision_fields = Fields::new(&vision_obj, "vision_config", file);
        let vision_config = vision_config(&vision_fields)?;
        let vq_fields = Fields::new(&vq_obj, "vq_config", file);
        let vq_config = vq_config(&vq_fields, vision_config.grid())?;
        let text_fields = Fields::new(&text_obj, "text_config", file);
        let text_config = llama_config(&text_fields)?;
        if vision_config.num_image_tokens != vision_config.num_patches() {
            return Err(vision_fields.error(
                "num_image_tokens",
                format!(
                    "{} image tokens do not fill the {g}x{g} grid of {} px images in {} px patches ({} tokens)",
                    vision_config.num_image_tokens,
                    vision_config.image_size,
                    vision_config.patch_size,
                    vision_config.num_patches(),
                    g = vision_config.grid()
                ),
            ));
        }
        let hidden = text_config.hidden_size;
        for (f, key, value) in [
            (&vision_fields, "projection_dim", vision_config.projection_dim),
            (&vq_fields, "projection_dim", vq_config.projection_dim),
            (&vq_fields, "image_token_embed_dim", vq_config.image_token_embed_dim),
        ] {
            if value != hidden {
                return Err(
                    f.error(key, format!("{value} differs from text_config.hidden_size {hidden}: it feeds or reads the language model"))
                );
            }
        }
        let image_token_id = top.token_id("image_token_id", 100581)?;
        top.check_token_id("image_token_id", image_token_id, text_config.vocab_size)?;
        let id = |key: &str| -> Result<Option<u32>> {
            match text_fields.raw(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(_) => Ok(Some(text_fields.token_id(key, 0)?)),
            }
        };
        Ok(JanusConfig {
            bos_token_id: id("bos_token_id")?,
            eos_token_id: id("eos_token_id")?,
            pad_token_id: id("pad_token_id")?,
            vision_config,
            vq_config,
            text_config,
            image_token_id,
        })
    }

    /// Checks the sizes of this config (read from `config_file`) against the
    /// tensor names and shapes of `source` before anything is loaded.
    /// Every disagreement is reported in one error naming the fields.
    pub fn check_against(&self, source: &dyn TensorSource, config_file: &str) -> Result<()> {
        let (v, q, t) = (&self.vision_config, &self.vq_config, &self.text_config);
        let mut c = ConfigCheck::new(source, config_file);
        c.layers("vision_config.num_hidden_layers", v.num_hidden_layers, "model.vision_model.encoder.layers");
        c.layers("text_config.num_hidden_layers", t.num_hidden_layers, "model.language_model.layers");
        let patch = "model.vision_model.embeddings.patch_embedding.weight";
        c.dim("vision_config.hidden_size", v.hidden_size, patch, 0);
        c.dim("vision_config.num_channels", v.num_channels, patch, 1);
        c.dim("vision_config.patch_size", v.patch_size, patch, 2);
        c.dim_implied(
            "vision_config.image_size",
            v.image_size,
            v.num_patches(),
            "model.vision_model.embeddings.position_embedding.weight",
            0,
        );
        c.dim("vision_config.mlp_ratio", v.intermediate_size(), "model.vision_model.encoder.layers.0.mlp.fc1.weight", 0);
        c.layers("vision_config.depth", v.depth - 1, "model.aligner.hidden_layers");
        c.layers("vq_config.num_hidden_layers", q.num_hidden_layers - 1, "model.generation_aligner.hidden_layers");
        c.dim("vq_config.num_embeddings", q.num_embeddings, "model.vqmodel.quantize.embedding.weight", 0);
        c.dim("vq_config.embed_dim", q.embed_dim, "model.vqmodel.quantize.embedding.weight", 1);
        c.dim("vq_config.num_embeddings", q.num_embeddings, "model.generation_embeddings.weight", 0);
        c.dim("vq_config.latent_channels", q.latent_channels, "model.vqmodel.quant_conv.weight", 1);
        c.dim("vq_config.base_channels", q.base_channels, "model.vqmodel.encoder.conv_in.weight", 0);
        c.dim("vq_config.in_channels", q.in_channels, "model.vqmodel.encoder.conv_in.weight", 1);
        c.dim("vq_config.out_channels", q.out_channels, "model.vqmodel.decoder.conv_out.weight", 0);
        c.layers("vq_config.channel_multiplier", q.num_resolutions(), "model.vqmodel.encoder.down");
        c.layers("vq_config.num_res_blocks", q.num_res_blocks, "model.vqmodel.encoder.down.0.block");
        let embed = "model.language_model.embed_tokens.weight";
        c.dim("text_config.vocab_size", t.vocab_size, embed, 0);
        c.dim("text_config.hidden_size", t.hidden_size, embed, 1);
        c.dim("text_config.intermediate_size", t.intermediate_size, "model.language_model.layers.0.mlp.gate_proj.weight", 0);
        c.dim(
            "text_config.num_key_value_heads",
            t.num_key_value_heads * t.head_dim,
            "model.language_model.layers.0.self_attn.k_proj.weight",
            0,
        );
        c.dim("text_config.vocab_size", t.vocab_size, "lm_head.weight", 0);
        c.finish()
    }
}

fn vision_config(f: &Fields<'_>) -> Result<JanusVisionConfig> {
    let d = JanusVisionConfig::default();
    let c = JanusVisionConfig {
        hidden_size: f.positive("hidden_size", d.hidden_size)?,
        num_hidden_layers: f.layers("num_hidden_layers", d.num_hidden_layers)?,
        num_attention_heads: f.positive("num_attention_heads", d.num_attention_heads)?,
        num_channels: f.positive("num_channels", d.num_channels)?,
        patch_size: f.image_side("patch_size", d.patch_size)?,
        image_size: f.image_side("image_size", d.image_size)?,
        layer_norm_eps: f.epsilon("layer_norm_eps", d.layer_norm_eps)?,
        hidden_act: f.activation("hidden_act", d.hidden_act)?,
        mlp_ratio: f.get("mlp_ratio", d.mlp_ratio)?,
        attention_bias: f.get("attention_bias", d.attention_bias)?,
        projection_dim: f.positive("projection_dim", d.projection_dim)?,
        depth: f.positive("depth", d.depth)?,
        num_image_tokens: f.positive("num_image_tokens", d.num_image_tokens)?,
    };
    f.check_heads(c.hidden_size, c.num_attention_heads)?;
    if c.patch_size > c.image_size {
        return Err(f.error("patch_size", format!("patch {} is larger than the image ({})", c.patch_size, c.image_size)));
    }
    if !(c.mlp_ratio.is_finite() && c.mlp_ratio > 0.0) || c.intermediate_size() == 0 || c.intermediate_size() > tessera_hf::config::MAX_SIZE
    {
        return Err(f.error("mlp_ratio", format!("{} does not give a usable MLP width for hidden size {}", c.mlp_ratio, c.hidden_size)));
    }
    if f.get("use_qk_norm", false)? {
        // transformers builds LayerNorm(hidden_size) and applies it to
        // [.., heads, head_dim]: no checkpoint can run that way.
        return Err(f.error("use_qk_norm", "query/key norms are not supported (transformers' Janus cannot apply them either)"));
    }
    Ok(c)
}

fn vq_config(f: &Fields<'_>, grid: usize) -> Result<JanusVqConfig> {
    let d = JanusVqConfig::default();
    let channel_multiplier: Vec<usize> = f.get("channel_multiplier", d.channel_multiplier.clone())?;
    let c = JanusVqConfig {
        embed_dim: f.positive("embed_dim", d.embed_dim)?,
        num_embeddings: f.positive("num_embeddings", d.num_embeddings)?,
        latent_channels: f.positive("latent_channels", d.latent_channels)?,
        num_patches: grid,
        in_channels: f.positive("in_channels", d.in_channels)?,
        out_channels: f.positive("out_channels", d.out_channels)?,
        base_channels: f.positive("base_channels", d.base_channels)?,
        channel_multiplier,
        num_res_blocks: f.layers("num_res_blocks", d.num_res_blocks)?,
        projection_dim: f.positive("projection_dim", d.projection_dim)?,
        num_hidden_layers: f.positive("num_hidden_layers", d.num_hidden_layers)?,
        hidden_act: f.activation("hidden_act", d.hidden_act)?,
        image_token_embed_dim: f.positive("image_token_embed_dim", d.image_token_embed_dim)?,
    };
    let levels = c.channel_multiplier.len();
    if levels == 0 || levels > 8 {
        return Err(f.error("channel_multiplier", format!("{levels} levels: expected 1 to 8")));
    }
    for &m in &c.channel_multiplier {
        let channels = c.base_channels.checked_mul(m).filter(|&ch| ch > 0 && ch <= tessera_hf::config::MAX_SIZE);
        if channels.is_none_or(|ch| !ch.is_multiple_of(VQ_NORM_GROUPS)) {
            return Err(f.error(
                "channel_multiplier",
                format!(
                    "base_channels {} x {m} is not a positive multiple of the {VQ_NORM_GROUPS} groups of the VQ model's group norms",
                    c.base_channels
                ),
            ));
        }
    }
    if c.image_size() > tessera_hf::config::MAX_IMAGE_SIDE {
        return Err(f.error("channel_multiplier", format!("{levels} levels over a {grid}x{grid} grid give images too large to decode")));
    }
    if f.get("double_latent", false)? {
        return Err(f.error("double_latent", "a double latent is not supported (transformers' Janus cannot quantize it either)"));
    }
    Ok(c)
}

/// A Llama `text_config` as `LlamaConfig` reads it; the rope base from
/// `rope_parameters.rope_theta` (transformers 5) or `rope_theta` (4.x),
/// only the default rope type.
pub fn llama_config(f: &Fields<'_>) -> Result<LlamaConfig> {
    let model_type: Option<String> = f.get("model_type", None)?;
    if let Some(t) = model_type.as_deref().filter(|t| *t != "llama") {
        return Err(f.error("model_type", format!("language model '{t}' is not supported: Janus runs with a Llama decoder")));
    }
    let d = LlamaConfig::default();
    let hidden_size = f.positive("hidden_size", d.hidden_size)?;
    let num_attention_heads = f.positive("num_attention_heads", d.num_attention_heads)?;
    let head_dim = f.positive("head_dim", hidden_size / num_attention_heads)?;
    let (rope_theta, rope_type) = rope(f)?;
    if rope_type != "default" {
        return Err(f.error("rope_parameters", format!("rope type '{rope_type}' is not supported (only the default rope)")));
    }
    let c = LlamaConfig {
        vocab_size: f.positive("vocab_size", d.vocab_size)?,
        hidden_size,
        intermediate_size: f.positive("intermediate_size", d.intermediate_size)?,
        num_hidden_layers: f.layers("num_hidden_layers", d.num_hidden_layers)?,
        num_attention_heads,
        num_key_value_heads: f.positive("num_key_value_heads", num_attention_heads)?,
        head_dim,
        max_position_embeddings: f.positive("max_position_embeddings", d.max_position_embeddings)?,
        rms_norm_eps: f.epsilon("rms_norm_eps", d.rms_norm_eps)?,
        rope_theta,
        attention_bias: f.get("attention_bias", d.attention_bias)?,
        attention_out_bias: f.get("attention_bias", d.attention_bias)?,
        mlp_bias: f.get("mlp_bias", d.mlp_bias)?,
        hidden_act: f.activation("hidden_act", d.hidden_act)?,
        causal: true,
    };
    if !f.is_set("head_dim") {
        f.check_heads(c.hidden_size, c.num_attention_heads)?;
    }
    if !c.num_attention_heads.is_multiple_of(c.num_key_value_heads) {
        return Err(f.error(
            "num_key_value_heads",
            format!("{} query heads are not a multiple of {} key/value heads", c.num_attention_heads, c.num_key_value_heads),
        ));
    }
    if !c.head_dim.is_multiple_of(2) {
        return Err(f.error("head_dim", format!("{} is odd: rotary embeddings rotate pairs of features", c.head_dim)));
    }
    Ok(c)
}

/// `(rope_theta, rope_type)` from either layout.
fn rope(f: &Fields<'_>) -> Result<(f64, String)> {
    let legacy_theta: f64 = f.get("rope_theta", 10000.0)?;
    let (theta, kind) = match f.raw("rope_parameters").or_else(|| f.raw("rope_scaling")) {
        None | Some(serde_json::Value::Null) => (legacy_theta, "default".to_string()),
        Some(serde_json::Value::Object(m)) => {
            let key = if f.is_set("rope_parameters") { "rope_parameters" } else { "rope_scaling" };
            let path = f.path(key);
            let p = Fields::new(m, &path, f.file());
            let kind: String = p.get("rope_type", p.get("type", "default".to_string())?)?;
            (p.get("rope_theta", legacy_theta)?, kind)
        }
        Some(other) => return Err(f.error("rope_parameters", format!("expected an object, got {other}"))),
    };
    if !(theta.is_finite() && theta > 0.0) {
        return Err(f.error("rope_theta", format!("{theta} is not a positive finite base")));
    }
    Ok((theta, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_transformers_defaults() {
        let c = JanusConfig::from_json(&format!("{{{}}}", pro_1b_text()), "t").unwrap();
        assert_eq!(c.vision_config, JanusVisionConfig::default());
        assert_eq!(c.vq_config, JanusVqConfig::default());
        assert_eq!((c.vq_config.num_patches, c.vq_config.image_size()), (24, 384));
        assert_eq!(c.vision_config.intermediate_size(), 4096);
        assert_eq!(c.image_token_id, 100581);
    }

    fn pro_1b_text() -> &'static str {
        r#""text_config": {"hidden_size": 2048, "intermediate_size": 5632, "num_attention_heads": 16,
            "num_hidden_layers": 24, "num_key_value_heads": 16, "vocab_size": 102400,
            "max_position_embeddings": 16384, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"}}"#
    }

    #[test]
    fn janus_pro_1b_reads() {
        let c = JanusConfig::from_json(&format!("{{{}}}", pro_1b_text()), "t").unwrap();
        let t = &c.text_config;
        assert_eq!((t.hidden_size, t.head_dim, t.num_key_value_heads, t.vocab_size), (2048, 128, 16, 102400));
        assert_eq!(t.rope_theta, 10000.0);
    }

    #[test]
    fn sizes_that_disagree_name_the_field() {
        let text = pro_1b_text();
        for (json, field) in [
            (format!(r#"{{{text}, "vision_config": {{"num_image_tokens": 575}}}}"#), "vision_config.num_image_tokens"),
            (format!(r#"{{{text}, "vision_config": {{"use_qk_norm": true}}}}"#), "vision_config.use_qk_norm"),
            (format!(r#"{{{text}, "vq_config": {{"base_channels": 48}}}}"#), "vq_config.channel_multiplier"),
            (format!(r#"{{{text}, "vq_config": {{"channel_multiplier": []}}}}"#), "vq_config.channel_multiplier"),
            (format!(r#"{{{text}, "vq_config": {{"double_latent": true}}}}"#), "vq_config.double_latent"),
            (format!(r#"{{{text}, "vq_config": {{"projection_dim": 1024}}}}"#), "vq_config.projection_dim"),
            (r#"{}"#.to_string(), "vision_config.projection_dim"),
            (format!(r#"{{{text}, "image_token_id": 102400}}"#), "image_token_id"),
            (r#"{"text_config": {"model_type": "qwen2"}}"#.to_string(), "text_config.model_type"),
            (r#"{"text_config": {"num_attention_heads": 32, "num_key_value_heads": 5}}"#.to_string(), "text_config.num_key_value_heads"),
            (r#"{"text_config": {"rope_parameters": {"rope_type": "yarn"}}}"#.to_string(), "text_config.rope_parameters"),
            (r#"{"model_type": "llava"}"#.to_string(), "model_type"),
        ] {
            let e = JanusConfig::from_json(&json, "cfg.json").unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("cfg.json"), "{json}: {e}");
        }
    }
}

//! CLIP's configuration, read from a checkpoint's config.json the way
//! transformers' `CLIPConfig` reads it: a missing field takes transformers'
//! default (the openai/clip-vit-base-patch32 values), an unknown field is
//! ignored, a field of the wrong type is an error that names it. The legacy
//! `text_config_dict` / `vision_config_dict` objects override `text_config` /
//! `vision_config` key by key, as in transformers.

use crate::Result;
use std::path::Path;
use tessera_hf::config::{parse_object, read_object, sub_config};
use tessera_hf::ConfigCheck;
use tessera_hf::Fields;
use tessera_nn::Activation;
use tessera_nn::TensorSource;

/// How the text tower picks the token whose state is the sentence embedding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextPooling {
    /// The first position holding this end-of-text id (configs written since
    /// transformers PR #24773).
    FirstEos(u32),
    /// The position of the largest id (configs whose `eos_token_id` is the
    /// old, wrong value 2; CLIP's end-of-text token has the largest id).
    ArgmaxId,
}

/// The text tower (`text_config`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    pub bos_token_id: u32,
    pub eos_token_id: u32,
    pub pad_token_id: u32,
}

/// The vision tower (`vision_config`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
}

/// A CLIP checkpoint's config.json.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    pub text_config: ClipTextConfig,
    pub vision_config: ClipVisionConfig,
    /// Width of the shared embedding space (both projections' outputs).
    pub projection_dim: usize,
    /// The initial `logit_scale` (the checkpoint's tensor is what is used).
    pub logit_scale_init_value: f64,
}

impl ClipTextConfig {
    /// Pooling as transformers' `CLIPTextTransformer` decides it.
    pub fn pooling(&self) -> TextPooling {
        if self.eos_token_id == 2 {
            TextPooling::ArgmaxId
        } else {
            TextPooling::FirstEos(self.eos_token_id)
        }
    }

    /// Features per attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

impl ClipVisionConfig {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Positions: one per patch plus the class token.
    pub fn num_positions(&self) -> usize {
        self.grid() * self.grid() + 1
    }
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        ClipTextConfig {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
            bos_token_id: 49406,
            eos_token_id: 49407,
            pad_token_id: 1,
        }
    }
}

impl Default for ClipVisionConfig {
    fn default() -> Self {
        ClipVisionConfig {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        }
    }
}

impl Default for ClipConfig {
    /// openai/clip-vit-base-patch32.
    fn default() -> Self {
        ClipConfig {
            text_config: ClipTextConfig::default(),
            vision_config: ClipVisionConfig::default(),
            projection_dim: 512,
            logit_scale_init_value: 2.6592,
        }
    }
}

impl ClipConfig {
    /// Reads config.json.
    pub fn from_file(path: impl AsRef<Path>) -> Result<ClipConfig> {
        let (root, file) = read_object(path.as_ref())?;
        ClipConfig::from_object(&root, &file)
    }

    /// Parses the text of a config.json; `file` names it in errors.
    pub fn from_json(text: &str, file: &str) -> Result<ClipConfig> {
        ClipConfig::from_object(&parse_object(text, file)?, file)
    }

    /// Checks the sizes of this config (read from `config_file`) against the
    /// tensor names and shapes of `source` before anything is loaded: layer
    /// counts, widths, vocabulary, positions, patch size and channels. Every
    /// disagreement is reported in one error naming the fields and the
    /// checkpoint. (The head count cannot be read from the weights: the
    /// config is trusted for it, once it divides the width.)
    pub fn check_against(&self, source: &dyn TensorSource, config_file: &str) -> Result<()> {
        let (t, v) = (&self.text_config, &self.vision_config);
        let mut c = ConfigCheck::new(source, config_file);
        c.layers("text_config.num_hidden_layers", t.num_hidden_layers, "text_model.encoder.layers");
        c.layers("vision_config.num_hidden_layers", v.num_hidden_layers, "vision_model.encoder.layers");
        let token = "text_model.embeddings.token_embedding.weight";
        c.dim("text_config.vocab_size", t.vocab_size, token, 0);
        c.dim("text_config.hidden_size", t.hidden_size, token, 1);
        c.dim("text_config.max_position_embeddings", t.max_position_embeddings, "text_model.embeddings.position_embedding.weight", 0);
        c.dim("text_config.intermediate_size", t.intermediate_size, "text_model.encoder.layers.0.mlp.fc1.weight", 0);
        c.dim("vision_config.hidden_size", v.hidden_size, "vision_model.embeddings.class_embedding", 0);
        let patch = "vision_model.embeddings.patch_embedding.weight";
        c.dim("vision_config.num_channels", v.num_channels, patch, 1);
        c.dim("vision_config.patch_size", v.patch_size, patch, 2);
        c.dim_implied("vision_config.image_size", v.image_size, v.num_positions(), "vision_model.embeddings.position_embedding.weight", 0);
        c.dim("vision_config.intermediate_size", v.intermediate_size, "vision_model.encoder.layers.0.mlp.fc1.weight", 0);
        c.dim("projection_dim", self.projection_dim, "visual_projection.weight", 0);
        c.dim("projection_dim", self.projection_dim, "text_projection.weight", 0);
        c.finish()
    }

    fn from_object(root: &serde_json::Map<String, serde_json::Value>, file: &str) -> Result<ClipConfig> {
        let top = Fields::new(root, "", file);
        let model_type: Option<String> = top.get("model_type", None)?;
        if let Some(t) = model_type.as_deref().filter(|t| *t != "clip") {
            return Err(top.error("model_type", format!("'{t}' is not a CLIP model (expected 'clip')")));
        }
        let text_obj = sub_config(root, "text_config", file)?;
        let vision_obj = sub_config(root, "vision_config", file)?;
        let config = ClipConfig {
            text_config: text_config(&Fields::new(&text_obj, "text_config", file))?,
            vision_config: vision_config(&Fields::new(&vision_obj, "vision_config", file))?,
            projection_dim: top.positive("projection_dim", 512)?,
            logit_scale_init_value: top.get("logit_scale_init_value", 2.6592)?,
        };
        Ok(config)
    }
}

fn text_config(f: &Fields<'_>) -> Result<ClipTextConfig> {
    let d = ClipTextConfig::default();
    let c = ClipTextConfig {
        vocab_size: f.positive("vocab_size", d.vocab_size)?,
        hidden_size: f.positive("hidden_size", d.hidden_size)?,
        intermediate_size: f.positive("intermediate_size", d.intermediate_size)?,
        num_hidden_layers: f.layers("num_hidden_layers", d.num_hidden_layers)?,
        num_attention_heads: f.positive("num_attention_heads", d.num_attention_heads)?,
        max_position_embeddings: f.positive("max_position_embeddings", d.max_position_embeddings)?,
        hidden_act: f.activation("hidden_act", d.hidden_act)?,
        layer_norm_eps: f.epsilon("layer_norm_eps", d.layer_norm_eps)?,
        bos_token_id: f.token_id("bos_token_id", d.bos_token_id)?,
        eos_token_id: f.token_id("eos_token_id", d.eos_token_id)?,
        pad_token_id: f.token_id("pad_token_id", d.pad_token_id)?,
    };
    f.check_heads(c.hidden_size, c.num_attention_heads)?;
    // The end-of-text id picks the pooled position; one outside the
    // vocabulary would silently pool position 0. The legacy value 2 selects
    // arg-max pooling instead. Start and pad ids are not used by the model:
    // they are checked only where the file sets them (transformers' tiny
    // test configs keep the large defaults beside a small vocabulary).
    if let TextPooling::FirstEos(eos) = c.pooling() {
        f.check_token_id("eos_token_id", eos, c.vocab_size)?;
    }
    for (key, id) in [("bos_token_id", c.bos_token_id), ("pad_token_id", c.pad_token_id)] {
        if f.is_set(key) {
            f.check_token_id(key, id, c.vocab_size)?;
        }
    }
    Ok(c)
}

fn vision_config(f: &Fields<'_>) -> Result<ClipVisionConfig> {
    let d = ClipVisionConfig::default();
    let c = ClipVisionConfig {
        hidden_size: f.positive("hidden_size", d.hidden_size)?,
        intermediate_size: f.positive("intermediate_size", d.intermediate_size)?,
        num_hidden_layers: f.layers("num_hidden_layers", d.num_hidden_layers)?,
        num_attention_heads: f.positive("num_attention_heads", d.num_attention_heads)?,
        num_channels: f.positive("num_channels", d.num_channels)?,
        image_size: f.image_side("image_size", d.image_size)?,
        patch_size: f.image_side("patch_size", d.patch_size)?,
        hidden_act: f.activation("hidden_act", d.hidden_act)?,
        layer_norm_eps: f.epsilon("layer_norm_eps", d.layer_norm_eps)?,
    };
    f.check_heads(c.hidden_size, c.num_attention_heads)?;
    if c.patch_size > c.image_size {
        return Err(f.error("patch_size", format!("patch {} is larger than the image ({})", c.patch_size, c.image_size)));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_takes_transformers_defaults() {
        assert_eq!(ClipConfig::from_json("{}", "t").unwrap(), ClipConfig::default());
    }

    #[test]
    fn legacy_dicts_override_and_unknown_fields_are_ignored() {
        let json = r#"{"text_config": {"hidden_size": 256, "eos_token_id": 2, "x": [1]},
                       "text_config_dict": {"hidden_size": 128, "num_attention_heads": 4},
                       "vision_config": {"image_size": [336, 336], "patch_size": 14, "hidden_act": "gelu"},
                       "whatever": {"nested": true}}"#;
        let c = ClipConfig::from_json(json, "t").unwrap();
        assert_eq!(c.text_config.hidden_size, 128);
        assert_eq!(c.text_config.pooling(), TextPooling::ArgmaxId);
        assert_eq!(c.vision_config.image_size, 336);
        assert_eq!(c.vision_config.num_positions(), 24 * 24 + 1);
        assert_eq!(c.vision_config.hidden_act, Activation::Gelu);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let e = ClipConfig::from_json(r#"{"vision_config": {"hidden_size": "768"}}"#, "cfg.json").unwrap_err().to_string();
        assert!(e.contains("vision_config.hidden_size") && e.contains("cfg.json"), "{e}");
        let e = ClipConfig::from_json(r#"{"text_config": {"hidden_act": "swishy"}}"#, "c").unwrap_err().to_string();
        assert!(e.contains("text_config.hidden_act"), "{e}");
        let e = ClipConfig::from_json(r#"{"text_config": 5}"#, "c").unwrap_err().to_string();
        assert!(e.contains("text_config"), "{e}");
        let e = ClipConfig::from_json(r#"{"model_type": "siglip"}"#, "c").unwrap_err().to_string();
        assert!(e.contains("siglip"), "{e}");
        let e = ClipConfig::from_json(r#"{"text_config": {"hidden_size": 100, "num_attention_heads": 8}}"#, "c").unwrap_err().to_string();
        assert!(e.contains("do not divide"), "{e}");
        assert!(ClipConfig::from_json("{not json", "c").is_err());
    }

    #[test]
    fn absurd_sizes_and_ids_outside_the_vocabulary_name_the_field() {
        for (json, field) in [
            (r#"{"text_config": {"num_hidden_layers": 1000000000000}}"#, "text_config.num_hidden_layers"),
            (r#"{"vision_config": {"num_hidden_layers": 4611686018427387904}}"#, "vision_config.num_hidden_layers"),
            (r#"{"vision_config": {"num_hidden_layers": 1e12}}"#, "vision_config.num_hidden_layers"),
            (r#"{"vision_config": {"hidden_size": 4294967296, "num_attention_heads": 1}}"#, "vision_config.hidden_size"),
            (r#"{"vision_config": {"image_size": 4611686018427387904, "patch_size": 1}}"#, "vision_config.image_size"),
            (r#"{"text_config": {"eos_token_id": 49408}}"#, "text_config.eos_token_id"),
            (r#"{"text_config": {"vocab_size": 100, "pad_token_id": 100, "eos_token_id": 99}}"#, "text_config.pad_token_id"),
        ] {
            let e = ClipConfig::from_json(json, "cfg.json").unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("cfg.json"), "{json}: {e}");
        }
        // The default start and pad ids beside a small vocabulary, as in
        // transformers' tiny test configs, are accepted when not set.
        let c = ClipConfig::from_json(r#"{"text_config": {"vocab_size": 99, "eos_token_id": 98}}"#, "c").unwrap();
        assert_eq!(c.text_config.pooling(), TextPooling::FirstEos(98));
    }
}

//! CLIP's configuration, read from a checkpoint's config.json the way
//! transformers' `CLIPConfig` reads it: a missing field takes transformers'
//! default (the openai/clip-vit-base-patch32 values), an unknown field is
//! ignored, a field of the wrong type is an error that names it. The legacy
//! `text_config_dict` / `vision_config_dict` objects override `text_config` /
//! `vision_config` key by key, as in transformers.

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::path::Path;
use tessera_nn::Activation;

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

/// Typed reads of one JSON object's fields, with defaults and errors that
/// name `prefix.key` and the file.
pub(crate) struct Fields<'a> {
    obj: &'a Map<String, Value>,
    prefix: &'a str,
    file: &'a str,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(obj: &'a Map<String, Value>, prefix: &'a str, file: &'a str) -> Self {
        Fields { obj, prefix, file }
    }

    fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// The value of `key` (`None` when absent or null).
    pub(crate) fn raw(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    /// `key` as a `T`, or `default` when absent or null.
    pub(crate) fn get<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => T::deserialize(v).map_err(|e| Error::config(self.file, format!("field '{}': {e}", self.path(key)))),
        }
    }

    /// An error about field `key`.
    pub(crate) fn error(&self, key: &str, msg: impl std::fmt::Display) -> Error {
        Error::config(self.file, format!("field '{}': {msg}", self.path(key)))
    }

    /// `key` as an activation name.
    fn activation(&self, key: &str, default: Activation) -> Result<Activation> {
        let name: Option<String> = self.get(key, None)?;
        match name {
            None => Ok(default),
            Some(n) => Activation::from_hf_name(&n).map_err(|e| self.error(key, e)),
        }
    }

    /// `key` as a square size: an integer or `[h, w]` with `h == w`.
    fn square(&self, key: &str, default: usize) -> Result<usize> {
        match self.raw(key) {
            Some(Value::Array(_)) => {
                let hw: Vec<usize> = self.get(key, Vec::new())?;
                match hw.as_slice() {
                    [h, w] if h == w => Ok(*h),
                    _ => Err(self.error(key, format!("expected a square size, got {hw:?}"))),
                }
            }
            _ => self.get(key, default),
        }
    }

    /// `key` as a token id; transformers also allows a list, whose first
    /// entry is then the id.
    fn token_id(&self, key: &str, default: u32) -> Result<u32> {
        match self.raw(key) {
            Some(Value::Array(_)) => {
                let ids: Vec<u32> = self.get(key, Vec::new())?;
                ids.first().copied().ok_or_else(|| self.error(key, "empty list of ids"))
            }
            _ => self.get(key, default),
        }
    }
}

/// `obj[key]` as an object (empty when absent or null), with the legacy
/// `{key}_dict` object's entries laid over it.
fn sub_config(root: &Map<String, Value>, key: &str, file: &str) -> Result<Map<String, Value>> {
    let mut merged = Map::new();
    for k in [key.to_string(), format!("{key}_dict")] {
        match root.get(&k) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => merged.extend(m.clone()),
            Some(other) => return Err(Error::config(file, format!("field '{k}': expected an object, got {other}"))),
        }
    }
    Ok(merged)
}

fn positive(fields: &Fields<'_>, key: &str, value: usize) -> Result<usize> {
    if value == 0 {
        return Err(fields.error(key, "must be positive"));
    }
    Ok(value)
}

impl ClipConfig {
    /// Reads config.json.
    pub fn from_file(path: impl AsRef<Path>) -> Result<ClipConfig> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        ClipConfig::from_json(&text, &path.display().to_string())
    }

    /// Parses the text of a config.json; `file` names it in errors.
    pub fn from_json(text: &str, file: &str) -> Result<ClipConfig> {
        let root: Value = serde_json::from_str(text).map_err(|e| Error::config(file, format!("not valid JSON: {e}")))?;
        let Value::Object(root) = root else {
            return Err(Error::config(file, "expected a JSON object"));
        };
        let top = Fields::new(&root, "", file);
        let model_type: Option<String> = top.get("model_type", None)?;
        if let Some(t) = model_type.as_deref().filter(|t| *t != "clip") {
            return Err(top.error("model_type", format!("'{t}' is not a CLIP model (expected 'clip')")));
        }
        let text_obj = sub_config(&root, "text_config", file)?;
        let vision_obj = sub_config(&root, "vision_config", file)?;
        let config = ClipConfig {
            text_config: text_config(&Fields::new(&text_obj, "text_config", file))?,
            vision_config: vision_config(&Fields::new(&vision_obj, "vision_config", file))?,
            projection_dim: positive(&top, "projection_dim", top.get("projection_dim", 512)?)?,
            logit_scale_init_value: top.get("logit_scale_init_value", 2.6592)?,
        };
        Ok(config)
    }
}

fn text_config(f: &Fields<'_>) -> Result<ClipTextConfig> {
    let d = ClipTextConfig::default();
    let c = ClipTextConfig {
        vocab_size: positive(f, "vocab_size", f.get("vocab_size", d.vocab_size)?)?,
        hidden_size: positive(f, "hidden_size", f.get("hidden_size", d.hidden_size)?)?,
        intermediate_size: positive(f, "intermediate_size", f.get("intermediate_size", d.intermediate_size)?)?,
        num_hidden_layers: f.get("num_hidden_layers", d.num_hidden_layers)?,
        num_attention_heads: positive(f, "num_attention_heads", f.get("num_attention_heads", d.num_attention_heads)?)?,
        max_position_embeddings: positive(f, "max_position_embeddings", f.get("max_position_embeddings", d.max_position_embeddings)?)?,
        hidden_act: f.activation("hidden_act", d.hidden_act)?,
        layer_norm_eps: f.get("layer_norm_eps", d.layer_norm_eps)?,
        bos_token_id: f.token_id("bos_token_id", d.bos_token_id)?,
        eos_token_id: f.token_id("eos_token_id", d.eos_token_id)?,
        pad_token_id: f.token_id("pad_token_id", d.pad_token_id)?,
    };
    check_heads(f, c.hidden_size, c.num_attention_heads)?;
    check_eps(f, c.layer_norm_eps)?;
    Ok(c)
}

fn vision_config(f: &Fields<'_>) -> Result<ClipVisionConfig> {
    let d = ClipVisionConfig::default();
    let c = ClipVisionConfig {
        hidden_size: positive(f, "hidden_size", f.get("hidden_size", d.hidden_size)?)?,
        intermediate_size: positive(f, "intermediate_size", f.get("intermediate_size", d.intermediate_size)?)?,
        num_hidden_layers: f.get("num_hidden_layers", d.num_hidden_layers)?,
        num_attention_heads: positive(f, "num_attention_heads", f.get("num_attention_heads", d.num_attention_heads)?)?,
        num_channels: positive(f, "num_channels", f.get("num_channels", d.num_channels)?)?,
        image_size: positive(f, "image_size", f.square("image_size", d.image_size)?)?,
        patch_size: positive(f, "patch_size", f.square("patch_size", d.patch_size)?)?,
        hidden_act: f.activation("hidden_act", d.hidden_act)?,
        layer_norm_eps: f.get("layer_norm_eps", d.layer_norm_eps)?,
    };
    check_heads(f, c.hidden_size, c.num_attention_heads)?;
    check_eps(f, c.layer_norm_eps)?;
    if c.patch_size > c.image_size {
        return Err(f.error("patch_size", format!("patch {} is larger than the image ({})", c.patch_size, c.image_size)));
    }
    Ok(c)
}

fn check_heads(f: &Fields<'_>, hidden: usize, heads: usize) -> Result<()> {
    if !hidden.is_multiple_of(heads) {
        return Err(f.error("num_attention_heads", format!("{heads} heads do not divide hidden_size {hidden}")));
    }
    Ok(())
}

fn check_eps(f: &Fields<'_>, eps: f64) -> Result<()> {
    if !(eps.is_finite() && eps > 0.0) {
        return Err(f.error("layer_norm_eps", format!("must be a positive number, got {eps}")));
    }
    Ok(())
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
}

//! Reading a transformers config file (config.json, preprocessor_config.json,
//! tokenizer_config.json) field by field, as transformers' `PretrainedConfig`
//! reads it: a missing or null field takes the default the caller gives
//! (transformers' default for that model), an unknown field is ignored, and a
//! field of the wrong type or value is an [`Error::Config`] naming the file
//! and the field's dotted path (`vision_config.hidden_size`).

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::path::Path;
use tessera_nn::Activation;

/// The largest size [`Fields::positive`] accepts: 2^24, far above any
/// published model's width, vocabulary or context, and small enough that a
/// config cannot claim an address-space-sized tensor by itself.
pub const MAX_SIZE: usize = 1 << 24;

/// The largest image side a model or processor config may name (the
/// default decode limit of tessera-vision is 16384; inputs are far smaller).
pub const MAX_IMAGE_SIDE: usize = 1 << 14;

/// The most layers [`Fields::layers`] accepts (published models have a few
/// hundred at most).
pub const MAX_LAYERS: usize = 1 << 12;

/// Parses `text` as a JSON object; `file` names it in errors.
pub fn parse_object(text: &str, file: &str) -> Result<Map<String, Value>> {
    let root: Value = serde_json::from_str(text).map_err(|e| Error::config(file, format!("not valid JSON: {e}")))?;
    match root {
        Value::Object(m) => Ok(m),
        _ => Err(Error::config(file, "expected a JSON object")),
    }
}

/// Reads the JSON object in file `path`, and the file's name for errors.
pub fn read_object(path: &Path) -> Result<(Map<String, Value>, String)> {
    let text = crate::error::read_text(path)?;
    let file = path.display().to_string();
    Ok((parse_object(&text, &file)?, file))
}

/// `root[key]` as an object (empty when absent or null), with the legacy
/// `{key}_dict` object's entries laid over it key by key, as transformers
/// merges `text_config_dict` into `text_config`.
pub fn sub_config(root: &Map<String, Value>, key: &str, file: &str) -> Result<Map<String, Value>> {
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

/// Typed reads of one JSON object's fields, with defaults and errors that
/// name `prefix.key` and the file.
#[derive(Clone, Copy, Debug)]
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    prefix: &'a str,
    file: &'a str,
}

impl<'a> Fields<'a> {
    /// The fields of `obj`, found at `prefix` (empty at the top level) in
    /// `file`.
    pub fn new(obj: &'a Map<String, Value>, prefix: &'a str, file: &'a str) -> Self {
        Fields { obj, prefix, file }
    }

    /// The file these fields come from.
    pub fn file(&self) -> &'a str {
        self.file
    }

    /// The dotted path of `key`.
    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// The value of `key` (`None` when absent or null).
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    /// `key` as a `T`, or `default` when absent or null.
    pub fn get<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => T::deserialize(v).map_err(|e| self.error(key, e)),
        }
    }

    /// An error about field `key`.
    pub fn error(&self, key: &str, msg: impl std::fmt::Display) -> Error {
        Error::config(self.file, format!("field '{}': {msg}", self.path(key)))
    }

    /// `key` as a positive size (a width, a vocabulary, a count of heads or
    /// positions) of at most [`MAX_SIZE`], or `default`.
    pub fn positive(&self, key: &str, default: usize) -> Result<usize> {
        match self.get(key, default)? {
            0 => Err(self.error(key, "must be positive")),
            v if v > MAX_SIZE => Err(self.error(key, format!("{v} is larger than any model's (at most {MAX_SIZE})"))),
            v => Ok(v),
        }
    }

    /// `key` as a number of layers (0 allowed) of at most [`MAX_LAYERS`], or
    /// `default`.
    pub fn layers(&self, key: &str, default: usize) -> Result<usize> {
        match self.get(key, default)? {
            v if v > MAX_LAYERS => Err(self.error(key, format!("{v} layers is more than any model has (at most {MAX_LAYERS})"))),
            v => Ok(v),
        }
    }

    /// Checks that the token id `id` (field `key`) lies in a vocabulary of
    /// `vocab_size` tokens.
    pub fn check_token_id(&self, key: &str, id: u32, vocab_size: usize) -> Result<()> {
        if id as usize >= vocab_size {
            return Err(self.error(key, format!("token id {id} is outside the vocabulary of {vocab_size} tokens")));
        }
        Ok(())
    }

    /// Whether the file sets `key` (to something other than null).
    pub fn is_set(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// `key` as a positive finite number (a norm's epsilon), or `default`.
    pub fn epsilon(&self, key: &str, default: f64) -> Result<f64> {
        let eps: f64 = self.get(key, default)?;
        if !(eps.is_finite() && eps > 0.0) {
            return Err(self.error(key, format!("must be a positive number, got {eps}")));
        }
        Ok(eps)
    }

    /// `key` as an activation name (`hidden_act`), or `default`.
    pub fn activation(&self, key: &str, default: Activation) -> Result<Activation> {
        let name: Option<String> = self.get(key, None)?;
        match name {
            None => Ok(default),
            Some(n) => Activation::from_hf_name(&n).map_err(|e| self.error(key, e)),
        }
    }

    /// `key` as a square size: an integer or `[h, w]` with `h == w`.
    pub fn square(&self, key: &str, default: usize) -> Result<usize> {
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

    /// `key` as an image size in pixels: a positive [`square`](Self::square)
    /// size of at most [`MAX_IMAGE_SIDE`].
    pub fn image_side(&self, key: &str, default: usize) -> Result<usize> {
        match self.square(key, default)? {
            0 => Err(self.error(key, "must be positive")),
            v if v > MAX_IMAGE_SIDE => {
                Err(self.error(key, format!("{v} pixels is larger than any model's input (at most {MAX_IMAGE_SIDE})")))
            }
            v => Ok(v),
        }
    }

    /// `key` as a token id; transformers also allows a list, whose first
    /// entry is then the id.
    pub fn token_id(&self, key: &str, default: u32) -> Result<u32> {
        match self.raw(key) {
            Some(Value::Array(_)) => {
                let ids: Vec<u32> = self.get(key, Vec::new())?;
                ids.first().copied().ok_or_else(|| self.error(key, "empty list of ids"))
            }
            _ => self.get(key, default),
        }
    }

    /// Checks that `heads` (field `num_attention_heads`) divides `hidden`.
    pub fn check_heads(&self, hidden: usize, heads: usize) -> Result<()> {
        if heads == 0 || !hidden.is_multiple_of(heads) {
            return Err(self.error("num_attention_heads", format!("{heads} heads do not divide hidden_size {hidden}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(json: &str) -> Map<String, Value> {
        parse_object(json, "t").unwrap()
    }

    #[test]
    fn defaults_types_and_paths() {
        let m = obj(r#"{"a": 3, "b": null, "c": "x", "act": "gelu", "img": [336, 336], "ids": [7, 8], "z": 0}"#);
        let f = Fields::new(&m, "vision_config", "cfg.json");
        assert_eq!(f.get("a", 0usize).unwrap(), 3);
        assert_eq!(f.get("b", 5usize).unwrap(), 5);
        assert_eq!(f.get("missing", 9usize).unwrap(), 9);
        assert_eq!(f.activation("act", Activation::QuickGelu).unwrap(), Activation::Gelu);
        assert_eq!(f.square("img", 224).unwrap(), 336);
        assert_eq!(f.token_id("ids", 0).unwrap(), 7);
        let e = f.get::<usize>("c", 0).unwrap_err().to_string();
        assert!(e.contains("cfg.json") && e.contains("vision_config.c"), "{e}");
        assert!(f.positive("z", 1).unwrap_err().to_string().contains("vision_config.z"));
        assert!(f.epsilon("z", 1e-5).is_err());
        assert!(f.check_heads(100, 8).unwrap_err().to_string().contains("do not divide"));
        let big = obj(r#"{"n": 1000000000000, "w": 4611686018427387904, "f": 1e12, "neg": -1}"#);
        let g = Fields::new(&big, "text_config", "cfg.json");
        assert!(g.layers("n", 12).unwrap_err().to_string().contains("text_config.n"));
        assert!(g.positive("w", 1).unwrap_err().to_string().contains("at most"));
        assert!(g.layers("f", 12).is_err() && g.positive("neg", 1).is_err());
        assert!(f.check_token_id("ids", 7, 7).unwrap_err().to_string().contains("outside the vocabulary of 7"));
        assert!(f.check_token_id("ids", 6, 7).is_ok());
        assert!(Fields::new(&obj(r#"{"act": "swishy"}"#), "", "c").activation("act", Activation::Gelu).is_err());
    }

    #[test]
    fn legacy_dicts_override_and_non_objects_are_errors() {
        let root = obj(r#"{"text_config": {"h": 1, "k": 2}, "text_config_dict": {"h": 3}, "bad": 5}"#);
        let m = sub_config(&root, "text_config", "t").unwrap();
        assert_eq!((m["h"].as_u64(), m["k"].as_u64()), (Some(3), Some(2)));
        assert!(sub_config(&root, "none", "t").unwrap().is_empty());
        assert!(sub_config(&root, "bad", "t").unwrap_err().to_string().contains("'bad'"));
        assert!(parse_object("[1]", "t").is_err() && parse_object("{no", "t").is_err());
    }
}

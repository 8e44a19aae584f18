//! A checkpoint's tokenizer as transformers runs it for a model's text
//! input: tokenizer.json through the `tokenizers` crate, texts truncated
//! on the right to the context (`truncation=True, max_length=...`, special
//! tokens kept), and batches padded to their longest text with the pad token.
//!
//! tokenizer_config.json, when present, gives `model_max_length` (which can
//! only shorten the context the model allows) and `pad_token` (a string or an
//! AddedToken object).

use crate::config::{read_object, Fields};
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;
use tokenizers::{PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// Token ids of a batch of texts, unpadded, and the id that pads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    /// Ids per text, unpadded.
    pub ids: Vec<Vec<u32>>,
    /// The id that pads shorter texts.
    pub pad_id: u32,
}

impl TokenBatch {
    /// Length of the longest text.
    pub fn max_len(&self) -> usize {
        self.ids.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// The ids padded on the right to `len` with the pad id, row-major
    /// `[n, len]` (a text longer than `len` keeps all its ids).
    pub fn padded(&self, len: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(self.ids.len() * len);
        for ids in &self.ids {
            out.extend(ids.iter().map(|&i| i as i64));
            out.extend(std::iter::repeat_n(self.pad_id as i64, len.saturating_sub(ids.len())));
        }
        out
    }

    /// transformers' `attention_mask` for [`padded`](Self::padded): 1 for
    /// each real token, 0 for padding, `[n, len]`.
    pub fn attention_mask(&self, len: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(self.ids.len() * len);
        for ids in &self.ids {
            let n = ids.len().min(len);
            out.extend(std::iter::repeat_n(1, n));
            out.extend(std::iter::repeat_n(0, len - n));
        }
        out
    }
}

/// What a model asks of its tokenizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenizerOptions {
    /// The most tokens a text may have (the model's positions).
    pub max_context: usize,
    /// The pad token when tokenizer_config.json names none.
    pub pad_token: String,
    /// The least context that makes sense (the special tokens every text
    /// gets), checked after tokenizer_config.json is applied.
    pub min_context: usize,
}

impl TokenizerOptions {
    /// Texts of at most `max_context` tokens, padded with `pad_token`.
    pub fn new(max_context: usize, pad_token: &str) -> Self {
        TokenizerOptions { max_context, pad_token: pad_token.into(), min_context: 1 }
    }

    /// The same, refusing contexts shorter than `n` tokens.
    pub fn with_min_context(mut self, n: usize) -> Self {
        self.min_context = n;
        self
    }
}

/// A tokenizer that truncates to a context and pads batches.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    context_length: usize,
    pad_id: u32,
    source: String,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer").field("source", &self.source).field("context_length", &self.context_length).finish()
    }
}

impl TextTokenizer {
    /// Loads tokenizer.json (and optionally tokenizer_config.json).
    pub fn from_file(tokenizer_json: &Path, tokenizer_config: Option<&Path>, options: &TokenizerOptions) -> Result<Self> {
        let file = tokenizer_json.display().to_string();
        let bytes = crate::read_file(tokenizer_json)?;
        // The tokenizers crate panics on some malformed files (a decoder
        // entry it cannot parse, a subword prefix longer than a token)
        // instead of returning an error; such a file is still a bad input.
        let parsed = std::panic::catch_unwind(|| Tokenizer::from_bytes(&bytes)).map_err(|panic| {
            let what = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            Error::tokenizer(&file, format!("malformed tokenizer ({})", what.unwrap_or_else(|| "the tokenizers library failed".into())))
        })?;
        let inner = parsed.map_err(|e| Error::tokenizer(&file, e))?;
        TextTokenizer::new(inner, tokenizer_config, options, file)
    }

    /// Loads the tokenizer.json of checkpoint directory `dir`, with its
    /// tokenizer_config.json if present.
    pub fn from_dir(dir: &Path, options: &TokenizerOptions) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        if !json.exists() {
            return Err(Error::tokenizer(dir.display().to_string(), "holds no tokenizer.json"));
        }
        TextTokenizer::from_file(&json, config_in(dir).as_deref(), options)
    }

    /// Wraps a built tokenizer (`source` names it in errors): reads
    /// tokenizer_config.json, sets right truncation to the context and turns
    /// the tokenizer's own padding off (batches pad with [`TokenBatch`]).
    pub fn new(mut inner: Tokenizer, tokenizer_config: Option<&Path>, options: &TokenizerOptions, source: String) -> Result<Self> {
        let mut context_length = options.max_context;
        let mut pad_token = options.pad_token.clone();
        // The file each setting came from, so that an error blames it.
        let (mut context_from, mut pad_from) = (source.clone(), source.clone());
        if let Some(path) = tokenizer_config {
            let (root, cfg_file) = read_object(path)?;
            let f = Fields::new(&root, "", &cfg_file);
            // transformers writes a huge sentinel when there is no limit.
            let model_max: f64 = f.get("model_max_length", f64::INFINITY)?;
            if model_max.is_nan() || model_max < 0.0 {
                return Err(f.error("model_max_length", format!("must be a non-negative number, got {model_max}")));
            }
            if model_max < context_length as f64 {
                context_length = model_max as usize;
                context_from = format!("{cfg_file} (field 'model_max_length')");
            }
            let configured = match f.raw("pad_token") {
                // An AddedToken object or a plain string.
                Some(Value::Object(m)) => Fields::new(m, "pad_token", &cfg_file).get("content", None)?,
                _ => f.get("pad_token", None)?,
            };
            if let Some(token) = configured {
                pad_token = token;
                pad_from = format!("{cfg_file} (field 'pad_token')");
            }
        }
        // A context must hold the special tokens the post-processor adds
        // (the tokenizers crate underflows on a shorter one) and one more.
        let added = inner.get_post_processor().map_or(0, |p| p.added_tokens(false));
        let min_context = options.min_context.max(added + 1);
        if context_length < min_context {
            return Err(Error::tokenizer(
                context_from,
                format!("a context of {context_length} tokens cannot hold a text with its {added} special tokens (at least {min_context})"),
            ));
        }
        let pad_id = inner
            .token_to_id(&pad_token)
            .ok_or_else(|| Error::tokenizer(pad_from, format!("the pad token '{pad_token}' is not in the vocabulary of {source}")))?;
        let truncation = TruncationParams {
            max_length: context_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        };
        inner.with_truncation(Some(truncation)).map_err(|e| Error::tokenizer(&source, e))?;
        inner.with_padding(None);
        Ok(TextTokenizer { inner, context_length, pad_id, source })
    }

    /// The most tokens a text is encoded to (special tokens included).
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// The id used for padding.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Number of tokens in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// One more than the largest token id (added tokens included): the
    /// embedding rows a model needs for every id this tokenizer can emit.
    pub fn id_bound(&self) -> usize {
        self.inner.get_vocab(true).values().max().map_or(0, |&m| m as usize + 1)
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// The ids of one text, special tokens added, truncated to the context.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, true).map_err(|e| Error::tokenizer(&self.source, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The ids of one text without the special tokens the post-processor
    /// adds, truncated to the context: what `apply_chat_template(...,
    /// tokenize=True)` gives for a rendered template, whose special tokens
    /// are in the text.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| Error::tokenizer(&self.source, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Ids as text, special tokens skipped (transformers'
    /// `decode(ids, skip_special_tokens=True)`).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(|e| Error::tokenizer(&self.source, e))
    }

    /// The ids of several texts (encoded in parallel).
    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<TokenBatch> {
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let encodings = self.inner.encode_batch(inputs, true).map_err(|e| Error::tokenizer(&self.source, e))?;
        Ok(TokenBatch { ids: encodings.iter().map(|e| e.get_ids().to_vec()).collect(), pad_id: self.pad_id })
    }
}

/// The special-token names a checkpoint states: tokenizer_config.json (at
/// the top level or under `extra_special_tokens`), then
/// special_tokens_map.json; each a string or an AddedToken object.
#[derive(Clone, Debug, Default)]
pub struct SpecialTokenNames {
    configs: Vec<(serde_json::Map<String, Value>, String)>,
}

impl SpecialTokenNames {
    /// The two files of checkpoint directory `dir`, those present.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let mut configs = Vec::new();
        for name in ["tokenizer_config.json", "special_tokens_map.json"] {
            let path = dir.join(name);
            if path.is_file() {
                configs.push(read_object(&path)?);
            }
        }
        Ok(SpecialTokenNames { configs })
    }

    /// The name of special token `key` (`bos_token`, `image_token`...), or
    /// `None` when no file names it.
    pub fn get(&self, key: &str) -> Result<Option<String>> {
        for (root, file) in &self.configs {
            for (obj, prefix) in [(Some(root), ""), (root.get("extra_special_tokens").and_then(Value::as_object), "extra_special_tokens")] {
                let Some(obj) = obj else { continue };
                let f = Fields::new(obj, prefix, file);
                match f.raw(key) {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) => return Ok(Some(s.clone())),
                    Some(Value::Object(m)) => {
                        if let Some(Value::String(s)) = m.get("content") {
                            return Ok(Some(s.clone()));
                        }
                        return Err(f.error(key, "a token object without 'content'"));
                    }
                    Some(other) => return Err(f.error(key, format!("expected a token string, got {other}"))),
                }
            }
        }
        Ok(None)
    }

    /// [`get`](Self::get), else `default`.
    pub fn get_or(&self, key: &str, default: &str) -> Result<String> {
        Ok(self.get(key)?.unwrap_or_else(|| default.to_string()))
    }

    /// The variables a chat template sees for the tokenizer's special
    /// tokens (`bos_token`, `eos_token`, `pad_token`, `unk_token`), those named.
    pub fn template_context(&self) -> Result<serde_json::Map<String, Value>> {
        let mut context = serde_json::Map::new();
        for key in ["bos_token", "eos_token", "pad_token", "unk_token"] {
            if let Some(name) = self.get(key)?.filter(|n| !n.is_empty()) {
                context.insert(key.into(), Value::String(name));
            }
        }
        Ok(context)
    }
}

/// `dir`'s tokenizer_config.json, if it has one.
pub fn config_in(dir: &Path) -> Option<std::path::PathBuf> {
    Some(dir.join("tokenizer_config.json")).filter(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_and_mask_follow_the_longest_text() {
        let b = TokenBatch { ids: vec![vec![5, 6, 7], vec![5]], pad_id: 0 };
        assert_eq!(b.max_len(), 3);
        assert_eq!(b.padded(3), vec![5, 6, 7, 5, 0, 0]);
        assert_eq!(b.attention_mask(3), vec![1, 1, 1, 1, 0, 0]);
        assert_eq!(b.attention_mask(2), vec![1, 1, 1, 0]);
    }
}

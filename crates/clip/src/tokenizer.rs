//! CLIP's tokenizer, as transformers' `CLIPTokenizer` runs it: byte-level BPE
//! with a `</w>` end-of-word suffix, NFC + whitespace collapsing +
//! lower-casing, `<|startoftext|>` ... `<|endoftext|>` around every text, and
//! truncation to the context (77 tokens) keeping the end token, as
//! `tokenizer(text, truncation=True, max_length=77)` does.
//!
//! The tokenizer is read from the checkpoint's tokenizer.json (the
//! `tokenizers` crate); a checkpoint with only vocab.json and merges.txt gets
//! the same pipeline built from those. tokenizer_config.json, when present,
//! gives `model_max_length` and the pad token.

use crate::config::Fields;
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Lowercase, Replace, Sequence as NormalizerSequence, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{SplitDelimiterBehavior, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// CLIP's start and end tokens.
pub const START_TOKEN: &str = "<|startoftext|>";
/// The end-of-text token (also CLIP's padding and unknown token).
pub const END_TOKEN: &str = "<|endoftext|>";
/// CLIP's pre-tokenisation pattern (transformers' `CLIPTokenizer`).
const SPLIT_PATTERN: &str = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// Token ids of a batch of texts, each `[start, ..., end]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    /// Ids per text, unpadded.
    pub ids: Vec<Vec<u32>>,
    /// The id that pads shorter texts to the longest.
    pub pad_id: u32,
}

impl TokenBatch {
    /// Length of the longest text.
    pub fn max_len(&self) -> usize {
        self.ids.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// The ids padded to `len` with the pad id, row-major `[n, len]`.
    pub fn padded(&self, len: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(self.ids.len() * len);
        for ids in &self.ids {
            out.extend(ids.iter().map(|&i| i as i64));
            out.extend(std::iter::repeat_n(self.pad_id as i64, len.saturating_sub(ids.len())));
        }
        out
    }
}

/// The CLIP tokenizer of a checkpoint.
#[derive(Clone)]
pub struct ClipTokenizer {
    inner: Tokenizer,
    context_length: usize,
    pad_id: u32,
    source: String,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer").field("source", &self.source).field("context_length", &self.context_length).finish()
    }
}

fn tok_err(file: &str, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer { file: file.to_string(), msg: e.to_string() }
}

impl ClipTokenizer {
    /// Loads the tokenizer of checkpoint directory `dir`: tokenizer.json, or
    /// vocab.json + merges.txt; tokenizer_config.json if present. Texts are
    /// truncated to `max_context` tokens at most (the text tower's
    /// `max_position_embeddings`).
    pub fn from_dir(dir: impl AsRef<Path>, max_context: usize) -> Result<Self> {
        let dir = dir.as_ref();
        let json = dir.join("tokenizer.json");
        let config = Some(dir.join("tokenizer_config.json")).filter(|p| p.is_file());
        if json.is_file() {
            return ClipTokenizer::from_files(&json, config.as_deref(), max_context);
        }
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        if vocab.is_file() && merges.is_file() {
            return ClipTokenizer::from_vocab_merges(&vocab, &merges, config.as_deref(), max_context);
        }
        Err(Error::Tokenizer { file: dir.display().to_string(), msg: "holds neither tokenizer.json nor vocab.json + merges.txt".into() })
    }

    /// Loads tokenizer.json (and optionally tokenizer_config.json).
    pub fn from_files(tokenizer_json: &Path, tokenizer_config: Option<&Path>, max_context: usize) -> Result<Self> {
        let file = tokenizer_json.display().to_string();
        let inner = Tokenizer::from_file(tokenizer_json).map_err(|e| tok_err(&file, e))?;
        ClipTokenizer::finish(inner, tokenizer_config, max_context, file)
    }

    /// Builds transformers' `CLIPTokenizer` pipeline over a byte-level BPE
    /// vocabulary (vocab.json) and its merges (merges.txt).
    pub fn from_vocab_merges(vocab: &Path, merges: &Path, tokenizer_config: Option<&Path>, max_context: usize) -> Result<Self> {
        let file = vocab.display().to_string();
        let (vocab_s, merges_s) = (vocab.to_string_lossy(), merges.to_string_lossy());
        let bpe = BPE::from_file(&vocab_s, &merges_s)
            .end_of_word_suffix("</w>".into())
            .unk_token(END_TOKEN.into())
            .build()
            .map_err(|e| tok_err(&file, e))?;
        let mut inner = Tokenizer::new(bpe);
        let id = |t: &str| inner.token_to_id(t).ok_or_else(|| tok_err(&file, format!("the vocabulary has no {t}")));
        let (start, end) = (id(START_TOKEN)?, id(END_TOKEN)?);
        let replace = Replace::new(ReplacePattern::Regex(r"\s+".into()), " ").map_err(|e| tok_err(&file, e))?;
        inner.with_normalizer(Some(NormalizerSequence::new(vec![NFC.into(), replace.into(), Lowercase.into()])));
        let split =
            Split::new(SplitPattern::Regex(SPLIT_PATTERN.into()), SplitDelimiterBehavior::Removed, true).map_err(|e| tok_err(&file, e))?;
        inner.with_pre_tokenizer(Some(PreTokenizerSequence::new(vec![split.into(), ByteLevel::new(false, true, true).into()])));
        inner.with_post_processor(Some(
            RobertaProcessing::new((END_TOKEN.into(), end), (START_TOKEN.into(), start)).trim_offsets(false).add_prefix_space(false),
        ));
        inner.with_decoder(Some(ByteLevel::default()));
        ClipTokenizer::finish(inner, tokenizer_config, max_context, file)
    }

    fn finish(mut inner: Tokenizer, tokenizer_config: Option<&Path>, max_context: usize, source: String) -> Result<Self> {
        let mut context_length = max_context;
        let mut pad_token = END_TOKEN.to_string();
        if let Some(path) = tokenizer_config {
            let cfg_file = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let root: Value = serde_json::from_str(&text).map_err(|e| Error::config(&cfg_file, format!("not valid JSON: {e}")))?;
            let Value::Object(root) = root else {
                return Err(Error::config(&cfg_file, "expected a JSON object"));
            };
            let f = Fields::new(&root, "", &cfg_file);
            // transformers writes a huge sentinel when there is no limit.
            let model_max: f64 = f.get("model_max_length", f64::INFINITY)?;
            if model_max >= 1.0 && model_max < max_context as f64 {
                context_length = model_max as usize;
            }
            pad_token = match f.raw("pad_token") {
                // An AddedToken object or a plain string.
                Some(Value::Object(m)) => Fields::new(m, "pad_token", &cfg_file).get("content", pad_token)?,
                _ => f.get("pad_token", pad_token)?,
            };
        }
        if context_length < 2 {
            return Err(tok_err(&source, format!("a context of {context_length} tokens cannot hold the start and end tokens")));
        }
        let pad_id =
            inner.token_to_id(&pad_token).ok_or_else(|| tok_err(&source, format!("the pad token {pad_token} is not in the vocabulary")))?;
        let truncation = TruncationParams {
            max_length: context_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        };
        inner.with_truncation(Some(truncation)).map_err(|e| tok_err(&source, e))?;
        inner.with_padding(None);
        Ok(ClipTokenizer { inner, context_length, pad_id, source })
    }

    /// The most tokens a text is encoded to (start and end included).
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

    /// The id of `token`, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// The ids of one text: `[start, ..., end]`, truncated to the context.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, true).map_err(|e| tok_err(&self.source, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The ids of several texts (encoded in parallel).
    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<TokenBatch> {
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let encodings = self.inner.encode_batch(inputs, true).map_err(|e| tok_err(&self.source, e))?;
        Ok(TokenBatch { ids: encodings.iter().map(|e| e.get_ids().to_vec()).collect(), pad_id: self.pad_id })
    }
}

//! CLIP's tokenizer, as transformers' `CLIPTokenizer` runs it: byte-level BPE
//! with a `</w>` end-of-word suffix, NFC + whitespace collapsing +
//! lower-casing, `<|startoftext|>` ... `<|endoftext|>` around every text, and
//! truncation to the context (77 tokens) keeping the end token, as
//! `tokenizer(text, truncation=True, max_length=77)` does.
//!
//! The tokenizer is read from the checkpoint's tokenizer.json; a checkpoint
//! with only vocab.json and merges.txt gets the same pipeline built from
//! those. Truncation, tokenizer_config.json and batching are tessera-hf's
//! [`TextTokenizer`], which a [`ClipTokenizer`] dereferences to.

use crate::{Error, Result};
use std::path::Path;
pub use tessera_hf::tokenizer::TokenBatch;
use tessera_hf::tokenizer::{config_in, TextTokenizer, TokenizerOptions};
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Lowercase, Replace, Sequence as NormalizerSequence, NFC};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{SplitDelimiterBehavior, Tokenizer};

/// CLIP's start and end tokens.
pub const START_TOKEN: &str = "<|startoftext|>";
/// The end-of-text token (also CLIP's padding and unknown token).
pub const END_TOKEN: &str = "<|endoftext|>";
/// CLIP's pre-tokenisation pattern (transformers' `CLIPTokenizer`).
const SPLIT_PATTERN: &str = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// The CLIP tokenizer of a checkpoint.
#[derive(Clone, Debug)]
pub struct ClipTokenizer(TextTokenizer);

impl std::ops::Deref for ClipTokenizer {
    type Target = TextTokenizer;

    fn deref(&self) -> &TextTokenizer {
        &self.0
    }
}

/// Texts of at most `max_context` tokens, padded with the end token, with
/// room for the start and end tokens.
fn options(max_context: usize) -> TokenizerOptions {
    TokenizerOptions::new(max_context, END_TOKEN).with_min_context(2)
}

impl ClipTokenizer {
    /// Loads the tokenizer of checkpoint directory `dir`: tokenizer.json, or
    /// vocab.json + merges.txt; tokenizer_config.json if present. Texts are
    /// truncated to `max_context` tokens at most (the text tower's
    /// `max_position_embeddings`).
    pub fn from_dir(dir: impl AsRef<Path>, max_context: usize) -> Result<Self> {
        let dir = dir.as_ref();
        let config = config_in(dir);
        if dir.join("tokenizer.json").exists() {
            return Ok(ClipTokenizer(TextTokenizer::from_dir(dir, &options(max_context))?));
        }
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        if vocab.exists() && merges.exists() {
            return ClipTokenizer::from_vocab_merges(&vocab, &merges, config.as_deref(), max_context);
        }
        Err(Error::tokenizer(dir.display().to_string(), "holds neither tokenizer.json nor vocab.json + merges.txt"))
    }

    /// Loads tokenizer.json (and optionally tokenizer_config.json).
    pub fn from_files(tokenizer_json: &Path, tokenizer_config: Option<&Path>, max_context: usize) -> Result<Self> {
        Ok(ClipTokenizer(TextTokenizer::from_file(tokenizer_json, tokenizer_config, &options(max_context))?))
    }

    /// Builds transformers' `CLIPTokenizer` pipeline over a byte-level BPE
    /// vocabulary (vocab.json) and its merges (merges.txt).
    pub fn from_vocab_merges(vocab: &Path, merges: &Path, tokenizer_config: Option<&Path>, max_context: usize) -> Result<Self> {
        for path in [vocab, merges] {
            tessera_tensor::file::check_regular(path)?;
        }
        let file = vocab.display().to_string();
        let tok_err = |e: &dyn std::fmt::Display| Error::tokenizer(&file, e);
        let (vocab_s, merges_s) = (vocab.to_string_lossy(), merges.to_string_lossy());
        let bpe = BPE::from_file(&vocab_s, &merges_s)
            .end_of_word_suffix("</w>".into())
            .unk_token(END_TOKEN.into())
            .build()
            .map_err(|e| tok_err(&e))?;
        let mut inner = Tokenizer::new(bpe);
        let id = |t: &str| inner.token_to_id(t).ok_or_else(|| tok_err(&format!("the vocabulary has no {t}")));
        let (start, end) = (id(START_TOKEN)?, id(END_TOKEN)?);
        let replace = Replace::new(ReplacePattern::Regex(r"\s+".into()), " ").map_err(|e| tok_err(&e))?;
        inner.with_normalizer(Some(NormalizerSequence::new(vec![NFC.into(), replace.into(), Lowercase.into()])));
        let split =
            Split::new(SplitPattern::Regex(SPLIT_PATTERN.into()), SplitDelimiterBehavior::Removed, true).map_err(|e| tok_err(&e))?;
        inner.with_pre_tokenizer(Some(PreTokenizerSequence::new(vec![split.into(), ByteLevel::new(false, true, true).into()])));
        inner.with_post_processor(Some(
            RobertaProcessing::new((END_TOKEN.into(), end), (START_TOKEN.into(), start)).trim_offsets(false).add_prefix_space(false),
        ));
        inner.with_decoder(Some(ByteLevel::default()));
        Ok(ClipTokenizer(TextTokenizer::new(inner, tokenizer_config, &options(max_context), file)?))
    }

    /// The generic tokenizer inside.
    pub fn text_tokenizer(&self) -> &TextTokenizer {
        &self.0
    }
}

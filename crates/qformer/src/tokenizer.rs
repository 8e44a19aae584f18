//! BLIP-2's text side: OPT's byte-level BPE tokenizer (tokenizer.json),
//! prompts encoded as transformers' `Blip2Processor` encodes them, and
//! generated ids decoded as `batch_decode(ids, skip_special_tokens=True)`.
//!
//! A prompt is never truncated: one too long for the language model's
//! positions is an error where the model is run, naming both lengths.

use crate::{Error, Result};
use std::path::Path;
use tessera_hf::config::{read_object, Fields};
use tessera_hf::tokenizer::{config_in, TextTokenizer, TokenizerOptions};
use tokenizers::Tokenizer;

/// OPT's pad token.
pub const PAD_TOKEN: &str = "<pad>";

/// The tokenizer of a BLIP-2 checkpoint.
#[derive(Clone, Debug)]
pub struct Blip2Tokenizer {
    text: TextTokenizer,
    /// The same tokenizer without truncation or padding.
    plain: Tokenizer,
    clean_up_spaces: bool,
    source: String,
}

impl Blip2Tokenizer {
    /// Loads tokenizer.json (and tokenizer_config.json if present) of
    /// checkpoint directory `dir`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::from_dir_with_pad(dir, PAD_TOKEN)
    }

    /// [`from_dir`](Self::from_dir) for a tokenizer whose pad token, when
    /// tokenizer_config.json names none, is `pad_token` (BERT's `[PAD]` for
    /// the Q-Former's text).
    pub fn from_dir_with_pad(dir: impl AsRef<Path>, pad_token: &str) -> Result<Self> {
        let dir = dir.as_ref();
        // The context limit is the model's business (an error there, never
        // a silent cut), so the tokenizer's own one is unbounded.
        let text = TextTokenizer::from_dir(dir, &TokenizerOptions::new(usize::MAX, pad_token))?;
        let mut plain = text.inner().clone();
        let source = dir.join("tokenizer.json").display().to_string();
        plain.with_truncation(None).map_err(|e| Error::tokenizer(&source, e))?;
        plain.with_padding(None);
        let clean_up_spaces = match config_in(dir) {
            Some(path) => {
                let (root, file) = read_object(&path)?;
                Fields::new(&root, "", &file).get("clean_up_tokenization_spaces", false)?
            }
            None => false,
        };
        Ok(Blip2Tokenizer { text, plain, clean_up_spaces, source })
    }

    /// The shared tokenizer (vocabulary size, special ids).
    pub fn text_tokenizer(&self) -> &TextTokenizer {
        &self.text
    }

    /// The ids of `text` with the special tokens the tokenizer adds (BERT's
    /// `[CLS] ... [SEP]`), as transformers' processors encode a text.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.plain.encode(text, true).map_err(|e| Error::tokenizer(&self.source, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The ids of `prompt` without special tokens (the caller puts the start
    /// token in front, as OPT's tokenizer does).
    pub fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        let enc = self.plain.encode(prompt, false).map_err(|e| Error::tokenizer(&self.source, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of generated `ids`, special tokens skipped; ids past the
    /// tokenizer's vocabulary (the language model's is larger) decode to
    /// nothing.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let text = self.plain.decode(ids, true).map_err(|e| Error::tokenizer(&self.source, e))?;
        Ok(if self.clean_up_spaces { clean_up_tokenization(&text) } else { text })
    }
}

/// transformers' `clean_up_tokenization`: no space before punctuation and
/// English contractions.
pub fn clean_up_tokenization(text: &str) -> String {
    [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ]
    .iter()
    .fold(text.to_string(), |t, (from, to)| t.replace(from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_up_joins_punctuation_and_contractions() {
        assert_eq!(clean_up_tokenization("a cat , is n't it ? yes ."), "a cat, isn't it? yes.");
    }
}

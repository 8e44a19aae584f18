//! transformers' `JanusProcessor`: the checkpoint's chat template, the
//! default system prompt (understanding only), one `<image_placeholder>`
//! per image expanded to begin-of-image, `num_image_tokens` placeholders
//! and end-of-image, begin-of-image appended for image generation, the
//! unconditional prompt of classifier-free guidance, and the tokenizer.
//!
//! Files read from a checkpoint directory: tokenizer.json;
//! tokenizer_config.json (the special tokens `image_token`, `boi_token`,
//! `eoi_token`, also read from `extra_special_tokens` or
//! special_tokens_map.json); processor_config.json (`num_image_tokens`,
//! `use_default_system_prompt`); the chat template from the files
//! [`ChatTemplate::from_dir`] reads.

use crate::image_processing::JanusImageProcessor;
use crate::{Error, Result};
use serde_json::{json, Map, Value};
use std::path::Path;
use tessera_hf::config::read_object;
use tessera_hf::hub::PROCESSOR_FILE;
use tessera_hf::{ChatTemplate, Fields, SpecialTokenNames, TextTokenizer, TokenizerOptions};

/// transformers' `DEFAULT_SYSTEM_PROMPT` of the Janus processor, put before
/// understanding prompts when `use_default_system_prompt` is set.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful language and vision assistant. You are able to understand the visual content that the user provides, and assist the user with a variety of tasks using natural language.\n\n";

/// The special tokens' default names (DeepSeek's vocabulary).
pub const IMAGE_TOKEN: &str = "<image_placeholder>";
pub const BOI_TOKEN: &str = "<begin_of_image>";
pub const EOI_TOKEN: &str = "<end_of_image>";
pub const EOS_TOKEN: &str = "<｜end▁of▁sentence｜>";

/// What a prompt is prepared for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenerationMode {
    /// Text answers (with the default system prompt when configured).
    Text,
    /// Image tokens (the prompt ends with begin-of-image).
    Image,
}

/// A special token: its text and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecialToken {
    pub text: String,
    pub id: u32,
}

/// The Janus processor's text side.
#[derive(Debug)]
pub struct JanusProcessor {
    tokenizer: TextTokenizer,
    chat_template: Option<ChatTemplate>,
    template_context: Map<String, Value>,
    /// The image processor.
    pub image_processor: JanusImageProcessor,
    /// Placeholders per image.
    pub num_image_tokens: usize,
    /// Whether understanding prompts start with [`DEFAULT_SYSTEM_PROMPT`].
    pub use_default_system_prompt: bool,
    pub image_token: SpecialToken,
    pub boi_token: SpecialToken,
    pub eoi_token: SpecialToken,
}

impl JanusProcessor {
    /// The processor of checkpoint directory `dir`. `num_image_tokens` is
    /// the model's (vision_config.num_image_tokens): processor_config.json
    /// must agree when it states one. `max_positions` bounds the tokenizer's
    /// context.
    pub fn from_dir(dir: &Path, num_image_tokens: usize, max_positions: usize) -> Result<Self> {
        let names = SpecialTokenNames::from_dir(dir)?;
        // A checkpoint that names no pad token pads with its end of sequence.
        let eos = names.get_or("eos_token", EOS_TOKEN)?;
        let pad = names.get_or("pad_token", &eos)?;
        let tokenizer = TextTokenizer::from_dir(dir, &TokenizerOptions::new(max_positions, &pad))?;
        let lookup = |key: &str, default: &str| -> Result<SpecialToken> {
            let text = names.get_or(key, default)?;
            let id = tokenizer.token_to_id(&text).ok_or_else(|| {
                Error::tokenizer(dir.join("tokenizer.json").display().to_string(), format!("the {key} '{text}' is not in the vocabulary"))
            })?;
            Ok(SpecialToken { text, id })
        };
        let image_token = lookup("image_token", IMAGE_TOKEN)?;
        let boi_token = lookup("boi_token", BOI_TOKEN)?;
        let eoi_token = lookup("eoi_token", EOI_TOKEN)?;
        let template_context = names.template_context()?;
        let (mut use_default_system_prompt, mut stated_tokens) = (false, None);
        let processor_file = dir.join(PROCESSOR_FILE);
        if processor_file.is_file() {
            let (root, file) = read_object(&processor_file)?;
            let f = Fields::new(&root, "", &file);
            use_default_system_prompt = f.get("use_default_system_prompt", false)?;
            stated_tokens = f.get::<Option<usize>>("num_image_tokens", None)?;
            if let Some(n) = stated_tokens.filter(|&n| n != num_image_tokens) {
                return Err(f.error(
                    "num_image_tokens",
                    format!("{n} placeholders per image, but the vision tower gives {num_image_tokens} (vision_config.num_image_tokens)"),
                ));
            }
        }
        Ok(JanusProcessor {
            tokenizer,
            chat_template: ChatTemplate::from_dir(dir)?,
            template_context,
            image_processor: JanusImageProcessor::from_dir(dir)?,
            num_image_tokens: stated_tokens.unwrap_or(num_image_tokens),
            use_default_system_prompt,
            image_token,
            boi_token,
            eoi_token,
        })
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The chat template, if the checkpoint has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// One user turn: `images` image entries, then the text.
    pub fn user_message(text: &str, images: usize) -> Value {
        let mut content: Vec<Value> = (0..images).map(|_| json!({"type": "image"})).collect();
        content.push(json!({"type": "text", "text": text}));
        json!([{"role": "user", "content": content}])
    }

    /// `messages` rendered with the chat template.
    pub fn apply_chat_template(&self, messages: &Value, add_generation_prompt: bool) -> Result<String> {
        let template = self.chat_template.as_ref().ok_or_else(|| {
            Error::tokenizer(
                "the checkpoint",
                "has no chat template (chat_template.jinja, chat_template.json, processor_config.json or tokenizer_config.json)",
            )
        })?;
        template.render(messages, add_generation_prompt, &self.template_context)
    }

    /// The text the tokenizer reads for `text` with `images` images: the
    /// system prompt or begin-of-image by `mode`, and each image
    /// placeholder expanded. The placeholders must be as many as the
    /// images.
    pub fn expand(&self, text: &str, images: usize, mode: GenerationMode) -> Result<String> {
        let text = match mode {
            GenerationMode::Text if self.use_default_system_prompt => format!("{DEFAULT_SYSTEM_PROMPT}{text}"),
            GenerationMode::Text => text.to_string(),
            GenerationMode::Image => format!("{text}{}", self.boi_token.text),
        };
        let placeholder = &self.image_token.text;
        let found = text.matches(placeholder.as_str()).count();
        if images == 0 {
            return Ok(text);
        }
        if found != images {
            return Err(Error::invalid(
                "janus",
                format!("the prompt holds {found} {placeholder} tokens but {images} image(s) were given: they must be as many"),
            ));
        }
        let one = format!("{}{}{}", self.boi_token.text, placeholder.repeat(self.num_image_tokens), self.eoi_token.text);
        Ok(text.replace(placeholder.as_str(), &one))
    }

    /// The ids of [`expand`](Self::expand)'s text, special tokens added.
    pub fn encode(&self, text: &str, images: usize, mode: GenerationMode) -> Result<Vec<u32>> {
        let ids = self.tokenizer.encode(&self.expand(text, images, mode)?)?;
        if ids.len() >= self.tokenizer.context_length() {
            return Err(Error::invalid(
                "janus",
                format!(
                    "the prompt is {} tokens or more, the language model's {} positions leave no room to generate",
                    ids.len(),
                    self.tokenizer.context_length()
                ),
            ));
        }
        Ok(ids)
    }

    /// The understanding prompt's ids for `question` about `images` images
    /// (one user turn through the chat template, with the generation prompt).
    pub fn understanding_ids(&self, question: &str, images: usize) -> Result<Vec<u32>> {
        let chat = self.apply_chat_template(&Self::user_message(question, images), true)?;
        self.encode(&chat, images, GenerationMode::Text)
    }

    /// The image-generation prompt's ids for `prompt`.
    pub fn generation_ids(&self, prompt: &str) -> Result<Vec<u32>> {
        let chat = self.apply_chat_template(&Self::user_message(prompt, 0), true)?;
        self.encode(&chat, 0, GenerationMode::Image)
    }

    /// transformers' unconditional row: every id other than `bos` and
    /// begin-of-image replaced by `pad`.
    pub fn unconditional_ids(&self, ids: &[u32], bos: Option<u32>, pad: u32) -> Vec<u32> {
        ids.iter().map(|&id| if Some(id) == bos || id == self.boi_token.id { id } else { pad }).collect()
    }

    /// Generated ids as text, special tokens skipped (transformers'
    /// `decode(ids, skip_special_tokens=True)`).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids)
    }
}

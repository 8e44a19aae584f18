//! # Hugging Face plumbing for Tessera's models
//!
//! What every model crate needs to load a transformers checkpoint, kept out
//! of tessera-nn so that the layer crate stays free of tokenizers, hf-hub
//! and network code:
//!
//! - [`Error`]: the model crates' shared error type (config, tokenizer,
//!   image, io, hub, invalid arguments, and the layer and tensor errors).
//! - [`config`]: typed reads of config.json fields ([`Fields`]) with
//!   transformers' defaults: a missing field takes the default, an unknown
//!   field is ignored, a field of the wrong type is an error naming it.
//! - [`checkpoint`]: a config checked against its checkpoint's tensor names
//!   and shapes before anything is loaded ([`ConfigCheck`]), and the
//!   checkpoint tensors a model left unused ([`UnusedTensors`]).
//! - [`pickle`]: PyTorch `torch.save` checkpoints (`pytorch_model.bin`)
//!   read by a restricted unpickler that never runs code (globals outside
//!   an allow-list are refused), as [`TorchCheckpoint`] tensors, and
//!   [`convert_to_safetensors`] (or [`write_safetensors_plan`], which also
//!   splits tensors along their rows).
//! - [`LoadOptions`]: the device, dtype and file reading every model
//!   pipeline loads with.
//! - [`hub`]: a local checkpoint directory, or a hub id fetched into
//!   hf-hub's cache (cargo feature `hub`).
//! - [`chat`]: [`ChatTemplate`], a checkpoint's chat template rendered as
//!   transformers renders it (cargo feature `tokenizer`).
//! - [`tokenizer`]: [`TextTokenizer`] over tokenizer.json with truncation
//!   to a context, tokenizer_config.json's limits and pad token, and
//!   [`TokenBatch`] padding (cargo feature `tokenizer`).

#[cfg(feature = "tokenizer")]
pub mod chat;
pub mod checkpoint;
pub mod config;
mod error;
pub mod hub;
mod options;
pub mod pickle;
pub mod time;
#[cfg(feature = "tokenizer")]
pub mod tokenizer;

#[cfg(feature = "tokenizer")]
pub use chat::ChatTemplate;
pub use checkpoint::{ConfigCheck, UnusedTensors};
pub use config::Fields;
pub use error::{read_file, read_text, Error, Result};
pub use options::LoadOptions;
pub use pickle::{convert_to_safetensors, write_safetensors_plan, OutputTensor, TorchCheckpoint};
#[cfg(feature = "tokenizer")]
pub use tokenizer::{SpecialTokenNames, TextTokenizer, TokenBatch, TokenizerOptions};

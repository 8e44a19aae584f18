//! # CLIP on Tessera
//!
//! Hugging Face transformers' `CLIPModel`, its tokenizer and its image
//! processor, written against Tessera's public `Tensor` API so the model runs
//! on any device. An HF checkpoint directory (config.json, model.safetensors
//! or shards, tokenizer.json, preprocessor_config.json), such as
//! openai/clip-vit-base-patch32 or clip-vit-large-patch14, loads as it is.
//!
//! ```no_run
//! use tessera_clip::{load_image, Clip, ClipOptions};
//!
//! # fn main() -> tessera_clip::Result<()> {
//! let clip = Clip::load("openai/clip-vit-base-patch32", &ClipOptions::default())?;
//! let images = vec![load_image("cat.jpg")?];
//! let probs = clip.classify(&images, &["a photo of a cat", "a photo of a dog"])?;
//! println!("P(cat) = {:.3}", probs[0][0]);
//! # Ok(())
//! # }
//! ```
//!
//! - [`config`]: `ClipConfig` from config.json, with transformers' defaults.
//! - [`model`]: the modules (`ClipVisionEmbeddings` ... `ClipModel`), named as
//!   in modeling_clip.py.
//! - [`tokenizer`]: `ClipTokenizer` (tokenizer.json through the `tokenizers`
//!   crate; 77-token context, truncation as transformers).
//! - [`imaging`]: `CLIPImageProcessor`'s defaults over tessera-vision's
//!   processor (decoding, Pillow-exact resizing, crop, normalisation).
//! - [`pipeline`]: [`Clip`], batched embeddings and zero-shot classification.
//!
//! The shared pieces live in the crates every model uses: the error type,
//! config reading, hub resolution and tokenizer batching in tessera-hf,
//! image processing in tessera-vision, the encoder in tessera-nn.

pub mod config;
pub mod imaging;
pub mod model;
pub mod pipeline;
pub mod tokenizer;

pub use config::{ClipConfig, ClipTextConfig, ClipVisionConfig, TextPooling};
pub use imaging::{clip_processor, decode_image, load_image, ImageProcessor};
pub use model::ClipModel;
pub use pipeline::{Clip, ClipOptions};
pub use tessera_hf::{Error, Result, UnusedTensors};
pub use tessera_tensor::safetensors::ReadMode;
pub use tessera_vision::{DecodeLimits, RgbImage};
pub use tokenizer::{ClipTokenizer, TokenBatch};

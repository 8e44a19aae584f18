//! # BLIP-2 on Tessera
//!
//! Hugging Face transformers' `Blip2ForConditionalGeneration` with an OPT
//! language model: the EVA vision tower, the Q-Former that turns image
//! features into a few learned query tokens, and the OPT decoder that
//! continues from them, with captioning and visual question answering over
//! tessera-nn's generation loop (greedy, beam search, sampling). An HF
//! checkpoint directory (config.json, model.safetensors or shards,
//! tokenizer.json, preprocessor_config.json, generation_config.json), such
//! as Salesforce/blip2-opt-2.7b, loads as it is, in transformers 4.x
//! (`q_bias`/`v_bias`) or 5.x (`qkv.bias`) layout.
//!
//! ```no_run
//! use tessera_qformer::{load_image, Blip2, Blip2Options};
//!
//! # fn main() -> tessera_qformer::Result<()> {
//! let blip2 = Blip2::load("Salesforce/blip2-opt-2.7b", &Blip2Options::default())?;
//! let image = load_image("cat.jpg")?;
//! let caption = blip2.caption(&image, None, blip2.generation_config(), &mut |_, _| {})?;
//! println!("{}", caption.text);
//! # Ok(())
//! # }
//! ```
//!
//! - [`config`]: `Blip2Config` (vision, Q-Former, OPT) from config.json.
//! - [`vision`]: `Blip2VisionModel`; [`qformer`]: `Blip2QFormerModel`;
//!   [`opt`]: `OptForCausalLm` with its KV cache; [`model`]: the whole
//!   `Blip2ForConditionalGeneration`. Names follow modeling_blip_2.py and
//!   modeling_opt.py.
//! - [`retrieval`]: `Blip2ForImageTextRetrieval`, the image-text matching
//!   and contrastive heads.
//! - [`tokenizer`]: prompts in, generated ids out.
//! - [`pipeline`]: [`Blip2`], captions of images; [`Blip2Retrieval`],
//!   images scored against texts.

pub mod config;
pub mod model;
pub mod opt;
pub mod pipeline;
pub mod qformer;
pub mod retrieval;
pub mod tokenizer;
pub mod vision;

pub use config::{Blip2Config, Blip2QFormerConfig, Blip2VisionConfig, OptConfig};
pub use model::{Blip2ForConditionalGeneration, ImageFeatures};
pub use pipeline::{blip_processor, Blip2, Blip2Options, Blip2Retrieval, Caption, RetrievalScore};
pub use retrieval::{Blip2ForImageTextRetrieval, ContrastiveOutput};
pub use tessera_hf::{Error, Result, UnusedTensors};
pub use tessera_nn::generation::{GenerationConfig, StopReason};
pub use tessera_tensor::safetensors::ReadMode;
pub use tessera_vision::{decode_image, load_image, DecodeLimits, RgbImage};
pub use tokenizer::Blip2Tokenizer;

//! # Janus-Pro on Tessera
//!
//! Hugging Face transformers' `JanusForConditionalGeneration` (DeepSeek's
//! Janus-Pro): one Llama language model that answers questions about
//! images (a SigLIP-style vision tower and an aligner feed its input
//! embeddings) and draws images (image tokens from a generation head with
//! classifier-free guidance, decoded to pixels by a VQ model).
//!
//! - [`config`]: `JanusConfig` (vision, VQ, Llama) from config.json.
//! - [`image_processing`]: `JanusImageProcessor`, resize, pad and
//!   normalise as transformers' PIL backend does, and `postprocess`.
//! - [`pipeline`]: `Janus`, a checkpoint loaded with its processor and
//!   generation defaults: `ask` about images, `imagine` images.
//! - [`processing`]: `JanusProcessor`, the chat template, prompts for
//!   understanding and generation, the unconditional prompt.
//! - [`vision`]: `JanusVisionModel` and the aligners; [`vqvae`]: the VQ
//!   model, the generation embeddings and head; [`model`]: the whole
//!   `JanusForConditionalGeneration`. Names follow modeling_janus.py; the
//!   Llama decoder is tessera-nn's.

pub mod config;
pub mod convert;
pub mod image_processing;
pub mod model;
pub mod pipeline;
pub mod processing;
pub mod vision;
pub mod vqvae;

pub use config::{JanusConfig, JanusVisionConfig, JanusVqConfig};
pub use image_processing::JanusImageProcessor;
pub use model::{ImageFeatures, ImageGeneration, ImageLogits, ImageSampling, JanusForConditionalGeneration, Prefill};
pub use pipeline::{Answer, GeneratedImage, Janus, JanusOptions};
pub use processing::{GenerationMode, JanusProcessor, DEFAULT_SYSTEM_PROMPT};
pub use tessera_hf::{Error, Result, UnusedTensors};
pub use tessera_nn::generation::{GenerationConfig, StopReason};
pub use tessera_nn::SamplingConfig;
pub use tessera_tensor::safetensors::ReadMode;
pub use tessera_vision::{decode_image, load_image, DecodeLimits, RgbImage};
pub use vqvae::JanusVqVae;

//! # MMaDA on Tessera
//!
//! Gen-Verse's MMaDA: one LLaDA masked-diffusion transformer over text
//! tokens and MAGVIT-v2 image tokens, which generates by unmasking
//! positions over several full-sequence passes instead of left to right.
//!
//! - [`config`]: config.json (the LLaDA backbone and the vocabulary
//!   layout) and magvit_config.json.
//! - [`modeling_llada`]: the backbone (`LLaDAModelLM`), its three
//!   attention-bias behaviours and its hidden states.
//! - [`modeling_magvitv2`]: the image tokenizer (`MAGVITv2`): encoder,
//!   lookup-free quantizer, decoder, and the pixel conversions.
//! - [`modeling_mmada`]: the samplers, `mmu_generate` (semi-autoregressive
//!   block denoising of text) and `t2i_generate` (MaskGIT for images and
//!   inpainting); [`sampling`]: their arithmetic and the noise source.
//! - [`prompting`]: the prompt builder's sequence layouts;
//!   [`processing`]: the chat template, tokenizer and image preprocessing
//!   of the reference's scripts.
//! - [`pipeline`]: [`Mmada`], a model directory loaded for chat, answers
//!   about images, image generation and inpainting.
//!
//! Names follow the reference's modules (models/modeling_llada.py,
//! models/modeling_magvitv2.py); the Llama layout and the VQGAN encoder and
//! decoder are tessera-nn's.

pub mod config;
pub mod modeling_llada;
pub mod modeling_magvitv2;
pub mod modeling_mmada;
pub mod pipeline;
pub mod processing;
pub mod prompting;
pub mod sampling;

pub use config::{MagvitConfig, MmadaConfig};
pub use modeling_llada::{AttentionBias, LladaModel, LladaOutput};
pub use modeling_magvitv2::MagvitV2;
pub use modeling_mmada::{mmu_generate, t2i_generate, ImageGeneration, ImageStep, Remasking, TextGeneration};
pub use pipeline::{Answer, ImageSettings, Mmada};
pub use processing::MmadaProcessor;
pub use prompting::{SpecialIds, T2iPrompt};
pub use sampling::{NoiseSource, SeededNoise};
pub use tessera_hf::{Error, Result};

//! Tessera's neural-network layers.
//!
//! - [`VarBuilder`]: named weights from a [`TensorSource`] (a safetensors
//!   [`Checkpoint`](tessera_tensor::safetensors::Checkpoint) or an in-memory
//!   map), with nested dotted prefixes, shape checks and errors that name the
//!   full tensor.
//! - Layers that load by their Hugging Face names: [`Linear`], [`LayerNorm`],
//!   [`RmsNorm`], [`GroupNorm`], [`Embedding`], [`Conv2d`], [`Activation`], [`Mlp`],
//!   [`SwiGlu`], [`MultiHeadAttention`] (separate, fused and fused with
//!   split-bias q/k/v layouts) with [`RotaryEmbedding`] and [`KvCache`].
//! - [`LlamaModel`]: the Llama decoder (RMSNorm, rope, grouped-query
//!   attention, SwiGLU) with its KV caches.
//! - [`VitEncoder`]: the pre-LN transformer encoder of ViT-style towers,
//!   returning every hidden state on request.
//! - [`vqgan`]: the convolutional encoder and decoder of VQGAN-style image
//!   tokenizers (Janus-Pro's VQ model, MAGVIT-v2).
//! - [`l2_normalize`]: rows scaled to unit L2 norm.
//! - [`LogitsProcessor`]: greedy, temperature, top-k and top-p sampling with a
//!   seeded generator.
//! - [`generate`]: the generation loop over any [`CausalDecoder`] (greedy,
//!   sampling, beam search), mirroring transformers' `generate`, configured
//!   by a [`GenerationConfig`] read from `generation_config.json`.
//!
//! Every fallible function returns this crate's [`Error`], which wraps the
//! tensor core's errors and converts back into them.

pub mod activation;
pub mod attention;
pub mod conv;
pub mod embedding;
mod error;
pub mod generation;
pub mod kv_cache;
pub mod linear;
pub mod llama;
pub mod mlp;
pub mod norm;
pub mod ops;
pub mod rotary;
pub mod row_blocks;
pub mod sampling;
pub mod var_builder;
pub mod vit;
pub mod vqgan;

pub use activation::Activation;
pub use attention::{AttentionConfig, MultiHeadAttention};
pub use conv::Conv2d;
pub use embedding::Embedding;
pub use error::{Error, Result};
pub use generation::{generate, CausalDecoder, EarlyStopping, Generated, GenerationConfig, StopReason, TokenCallback};
pub use kv_cache::KvCache;
pub use linear::Linear;
pub use llama::{LlamaCache, LlamaConfig, LlamaDecoderLayer, LlamaModel, LlamaNames};
pub use mlp::{GeluMlp, Mlp, MlpConfig, SwiGlu, SwiGluConfig};
pub use norm::{GroupNorm, LayerNorm, RmsNorm};
pub use ops::l2_normalize;
pub use rotary::RotaryEmbedding;
pub use row_blocks::RowBlocks;
pub use sampling::{LogitsProcessor, SamplingConfig};
pub use var_builder::{TensorSource, VarBuilder};
pub use vit::{VitEncoder, VitEncoderLayer, VitLayerConfig};

use tessera_tensor::Tensor;

/// A layer with one input and one output.
pub trait Module {
    /// Applies the layer to `x`.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
}

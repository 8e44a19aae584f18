//! The Llama decoder (transformers' `LlamaModel`), shared by the models
//! built on a Llama language model (Janus-Pro's, and any other that keeps
//! its layout): token embeddings, pre-norm decoder layers and a final norm,
//! with one KV cache per layer.
//!
//! ```text
//! embed_tokens [vocab, hidden]
//! layers.N.input_layernorm                     RMSNorm
//! layers.N.self_attn.{q,k,v,o}_proj            grouped-query attention, rope
//! layers.N.post_attention_layernorm            RMSNorm
//! layers.N.mlp.{gate,up,down}_proj             SwiGLU
//! norm                                         RMSNorm
//! ```
//!
//! - RMSNorm as `LlamaRMSNorm`: statistics in f32, the normalised value cast
//!   back to the input's dtype, then the weight.
//! - Rotary embeddings over the whole head (`rotate_half` pairs), tables in
//!   f32 from `rope_theta` for positions `0..max_position_embeddings`;
//!   positions count from the first input, cached ones included.
//! - Causal attention with `num_key_value_heads` key/value heads and scale
//!   `head_dim^-0.5`; biases on q/k/v/o when `attention_bias`, on the MLP
//!   when `mlp_bias`.
//!
//! The head (`lm_head`) is the model's: Janus reads the last hidden state
//! through two different heads.
//!
//! The same layout under other names ([`LlamaNames`]) and with attention
//! both ways (`causal: false`) is LLaDA's masked-diffusion backbone, which
//! runs whole sequences without a cache ([`LlamaModel::forward_states`]).

use crate::{
    Activation, AttentionConfig, Embedding, Error, KvCache, MultiHeadAttention, Result, RmsNorm, RotaryEmbedding, SwiGlu, SwiGluConfig,
    VarBuilder,
};
use tessera_tensor::{DType, Device, RopeStyle, Tensor};

/// The sizes and options of a Llama decoder (transformers' `LlamaConfig`
/// fields of the same names).
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// Features per head (`hidden_size / num_attention_heads` unless the
    /// config sets `head_dim`).
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// Biases on q/k/v.
    pub attention_bias: bool,
    /// A bias on the output projection (transformers: `attention_bias` too).
    pub attention_out_bias: bool,
    pub mlp_bias: bool,
    /// The gate's activation (`silu`).
    pub hidden_act: Activation,
    /// Causal self-attention (a decoder); `false` attends both ways (an
    /// encoder over the same layout, as LLaDA's masked-diffusion backbone).
    pub causal: bool,
}

impl Default for LlamaConfig {
    /// `LlamaConfig()`: Llama 2 7B's sizes.
    fn default() -> Self {
        LlamaConfig {
            vocab_size: 32000,
            hidden_size: 4096,
            intermediate_size: 11008,
            num_hidden_layers: 32,
            num_attention_heads: 32,
            num_key_value_heads: 32,
            head_dim: 128,
            max_position_embeddings: 2048,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            attention_bias: false,
            attention_out_bias: false,
            mlp_bias: false,
            hidden_act: Activation::Silu,
            causal: true,
        }
    }
}

/// Where a Llama-layout checkpoint keeps each weight, relative to the
/// model's prefix and a layer's prefix. [`LlamaNames::LLAMA`] is
/// transformers'; models that keep the layout under other names (LLaDA's
/// `transformer.blocks.N.{attn_norm, q_proj, ..., ff_out}`) give theirs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LlamaNames {
    pub embed_tokens: &'static str,
    pub layers: &'static str,
    pub norm: &'static str,
    pub input_layernorm: &'static str,
    /// The attention projections' prefix within a layer (empty: the layer's own).
    pub self_attn: &'static str,
    pub q_proj: &'static str,
    pub k_proj: &'static str,
    pub v_proj: &'static str,
    pub o_proj: &'static str,
    pub post_attention_layernorm: &'static str,
    /// The MLP's prefix within a layer (empty: the layer's own).
    pub mlp: &'static str,
    pub gate_proj: &'static str,
    pub up_proj: &'static str,
    pub down_proj: &'static str,
}

impl LlamaNames {
    /// transformers' `LlamaModel` names.
    pub const LLAMA: LlamaNames = LlamaNames {
        embed_tokens: "embed_tokens",
        layers: "layers",
        norm: "norm",
        input_layernorm: "input_layernorm",
        self_attn: "self_attn",
        q_proj: "q_proj",
        k_proj: "k_proj",
        v_proj: "v_proj",
        o_proj: "o_proj",
        post_attention_layernorm: "post_attention_layernorm",
        mlp: "mlp",
        gate_proj: "gate_proj",
        up_proj: "up_proj",
        down_proj: "down_proj",
    };
}

/// `vb` under `prefix`, or `vb` itself for an empty prefix.
fn under(vb: &VarBuilder, prefix: &str) -> VarBuilder {
    if prefix.is_empty() {
        vb.clone()
    } else {
        vb.pp(prefix)
    }
}

/// `LlamaDecoderLayer`.
#[derive(Clone, Debug)]
pub struct LlamaDecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: MultiHeadAttention,
    post_attention_layernorm: RmsNorm,
    mlp: SwiGlu,
}

impl LlamaDecoderLayer {
    /// Loads `input_layernorm`, `self_attn`, `post_attention_layernorm` and
    /// `mlp` under `vb` (named as `names` says), rotating with `rotary`.
    pub fn load(vb: &VarBuilder, c: &LlamaConfig, rotary: &RotaryEmbedding, names: &LlamaNames) -> Result<Self> {
        let attention = AttentionConfig::new(c.hidden_size, c.num_attention_heads)
            .with_kv_heads(c.num_key_value_heads)
            .with_head_dim(c.head_dim)
            .with_bias(c.attention_bias, c.attention_out_bias)
            .with_names(names.q_proj, names.k_proj, names.v_proj, names.o_proj)
            .with_causal(c.causal);
        let mlp = SwiGluConfig::new(c.hidden_size, c.intermediate_size).with_bias(c.mlp_bias).with_activation(c.hidden_act).with_names(
            names.gate_proj,
            names.up_proj,
            names.down_proj,
        );
        Ok(LlamaDecoderLayer {
            input_layernorm: RmsNorm::load(&vb.pp(names.input_layernorm), c.hidden_size, c.rms_norm_eps)?,
            self_attn: MultiHeadAttention::load(&under(vb, names.self_attn), &attention)?.with_rotary(rotary.clone())?,
            post_attention_layernorm: RmsNorm::load(&vb.pp(names.post_attention_layernorm), c.hidden_size, c.rms_norm_eps)?,
            mlp: SwiGlu::load(&under(vb, names.mlp), &mlp)?,
        })
    }

    /// `x [b, t, hidden]` after what `cache` holds; `mask` is additive and
    /// broadcasts to `[b, heads, t, cached + t]` (on top of the causal mask).
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let attn = self.self_attn.forward(&self.input_layernorm.forward(x)?, mask, cache)?;
        let (normed, h) = self.post_attention_layernorm.forward_residual(&attn, x)?;
        Ok(h.add(&self.mlp.forward(&normed)?)?)
    }
}

/// The decoder's KV caches, one per layer, over rows of equal length.
#[derive(Clone, Debug)]
pub struct LlamaCache {
    layers: Vec<KvCache>,
}

impl LlamaCache {
    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, KvCache::len)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes room in every layer for `additional` more positions (see
    /// [`KvCache::reserve`]).
    pub fn reserve(&mut self, additional: usize) -> Result<()> {
        self.layers.iter_mut().try_for_each(|c| c.reserve(additional))
    }

    /// Keeps the first `len` positions in every layer (see
    /// [`KvCache::truncate`]).
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        self.layers.iter_mut().try_for_each(|c| c.truncate(len))
    }

    /// Rearranges the rows: row `i` becomes old row `rows[i]` (see
    /// [`KvCache::select_rows`]).
    pub fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        self.layers.iter_mut().try_for_each(|c| c.select_rows(rows))
    }
}

/// `LlamaModel`: embeddings, decoder layers, final norm.
#[derive(Clone, Debug)]
pub struct LlamaModel {
    embed_tokens: Embedding,
    layers: Vec<LlamaDecoderLayer>,
    norm: RmsNorm,
    max_positions: usize,
}

impl LlamaModel {
    /// Loads `embed_tokens`, `layers.N` and `norm` under `vb` (transformers'
    /// names), calling `loaded()` after each layer.
    pub fn load(vb: &VarBuilder, c: &LlamaConfig, loaded: &mut dyn FnMut()) -> Result<Self> {
        Self::load_named(vb, c, &LlamaNames::LLAMA, loaded)
    }

    /// [`load`](Self::load) with the weights named as `names` says.
    pub fn load_named(vb: &VarBuilder, c: &LlamaConfig, names: &LlamaNames, loaded: &mut dyn FnMut()) -> Result<Self> {
        if c.head_dim == 0 || !c.head_dim.is_multiple_of(2) {
            return Err(Error::invalid(
                "llama",
                format!("the head dim must be even and positive for rotary embeddings, got {}", c.head_dim),
            ));
        }
        let rotary = RotaryEmbedding::new(c.rope_theta, c.head_dim, c.max_position_embeddings, RopeStyle::HalfSplit, vb.device())?;
        let embed_tokens = Embedding::load(&vb.pp(names.embed_tokens), c.vocab_size, c.hidden_size)?;
        let list = vb.pp(names.layers);
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            layers.push(LlamaDecoderLayer::load(&list.pp(i), c, &rotary, names)?);
            loaded();
        }
        Ok(LlamaModel {
            embed_tokens,
            layers,
            norm: RmsNorm::load(&vb.pp(names.norm), c.hidden_size, c.rms_norm_eps)?,
            max_positions: c.max_position_embeddings,
        })
    }

    /// The token embeddings (a tied head reads them too).
    pub fn embed_tokens(&self) -> &Embedding {
        &self.embed_tokens
    }

    /// Positions the model has (`max_position_embeddings`).
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Width of the hidden states.
    pub fn hidden_size(&self) -> usize {
        self.embed_tokens.dim()
    }

    /// Size of the token vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.embed_tokens.vocab_size()
    }

    /// The weights' device.
    pub fn device(&self) -> &Device {
        self.embed_tokens.rows().device()
    }

    /// The dtype the model computes in.
    pub fn dtype(&self) -> DType {
        self.embed_tokens.rows().dtype()
    }

    /// An empty cache bounded by the model's positions.
    pub fn new_cache(&self) -> LlamaCache {
        LlamaCache { layers: vec![KvCache::with_max_len(self.max_positions); self.layers.len()] }
    }

    /// Token embeddings `[rows, t, hidden]` of `ids` (`rows` rows of `t`
    /// ids); an id outside the vocabulary is an error.
    pub fn embed(&self, ids: &[u32], rows: usize) -> Result<Tensor> {
        if rows == 0 || ids.is_empty() || !ids.len().is_multiple_of(rows) {
            return Err(Error::invalid("llama", format!("{} ids do not split into {rows} rows", ids.len())));
        }
        let vocab = self.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::invalid("llama", format!("token id {bad} is outside the vocabulary of {vocab}")));
        }
        let t = Tensor::from_slice(ids, vec![rows, ids.len() / rows], self.device())?;
        self.embed_tokens.forward(&t)
    }

    /// The last hidden state `[b, t, hidden]` (after the final norm) of
    /// input embeddings `[b, t, hidden]` placed after what `cache` holds.
    /// `mask` is an additive mask over `[b, 1 | heads, t, cached + t]`
    /// (padding), applied on top of the causal mask.
    pub fn forward_embeds(&self, embeds: &Tensor, mask: Option<&Tensor>, cache: &mut LlamaCache) -> Result<Tensor> {
        let d = embeds.dims();
        if cache.layers.len() != self.layers.len() {
            return Err(Error::invalid("llama", format!("the cache has {} layers, the model {}", cache.layers.len(), self.layers.len())));
        }
        let (past, t) = (cache.len(), d[1]);
        if past + t > self.max_positions {
            return Err(Error::invalid(
                "llama",
                format!(
                    "{} positions ({past} cached + {t} new) exceed the model's {} (max_position_embeddings)",
                    past + t,
                    self.max_positions
                ),
            ));
        }
        let mut h = self.check_embeds(embeds)?;
        for (layer, layer_cache) in self.layers.iter().zip(cache.layers.iter_mut()) {
            h = layer.forward(&h, mask, Some(layer_cache))?;
        }
        self.norm.forward(&h)
    }

    /// Every hidden state of one pass over whole sequences, without a
    /// cache: `states[0]` is the input, `states[i]` the output of layer
    /// `i - 1`, and the second value the last output after the final norm.
    /// `mask` is additive over `[b, 1 | heads, t, t]`.
    pub fn forward_states(&self, embeds: &Tensor, mask: Option<&Tensor>) -> Result<(Vec<Tensor>, Tensor)> {
        let t = embeds.dims().get(1).copied().unwrap_or(0);
        if t > self.max_positions {
            return Err(Error::invalid("llama", format!("{t} positions exceed the model's {} (max positions)", self.max_positions)));
        }
        let mut states = vec![self.check_embeds(embeds)?];
        for layer in &self.layers {
            let next = layer.forward(states.last().expect("the input state"), mask, None)?;
            states.push(next);
        }
        let last = self.norm.forward(states.last().expect("the last state"))?;
        Ok((states, last))
    }

    /// `embeds` in the model's dtype, once its shape is `[b, t, hidden]`.
    fn check_embeds(&self, embeds: &Tensor) -> Result<Tensor> {
        let d = embeds.dims();
        if d.len() != 3 || d[2] != self.hidden_size() {
            return Err(Error::invalid("llama", format!("input embeddings must be [batch, time, {}], got {d:?}", self.hidden_size())));
        }
        Ok(embeds.to_dtype(self.dtype())?)
    }
}

//! The OPT language model (`OPTForCausalLM`), as BLIP-2 runs it: input
//! embeddings (the projected queries, then the prompt's tokens) in,
//! next-token logits out, with a KV cache per layer.
//!
//! ```text
//! language_model.model.decoder.embed_tokens [vocab, word_embed_proj_dim]
//! language_model.model.decoder.embed_positions [max_positions + 2, hidden]
//! language_model.model.decoder.project_in / project_out   (when word_embed_proj_dim != hidden)
//! language_model.model.decoder.layers.N.{self_attn_layer_norm, self_attn.{q,k,v,out}_proj,
//!                                        final_layer_norm, fc1, fc2}
//! language_model.model.decoder.final_layer_norm           (pre-LN models)
//! language_model.lm_head                                  (tied to embed_tokens when absent)
//! ```
//!
//! - Positions are learned with an offset of 2: position `p` (counted from
//!   the first input, image tokens included, as the all-ones attention mask
//!   counts them) reads row `p + 2`.
//! - Pre-LN layers (`do_layer_norm_before`, every OPT but 350m):
//!   `h = x + attn(ln1(x)); out = h + fc2(relu(fc1(ln2(h))))`; post-LN:
//!   `h = ln1(x + attn(x)); out = ln2(h + mlp(h))`.
//! - Queries are scaled by `head_dim^-0.5` before `QK^T` (the scale is
//!   folded into `q_proj` at load time, and attention runs unscaled), as
//!   OPT does to keep half-precision scores in range.
//! - Layer norms use torch's default epsilon, 1e-5, with or without affine
//!   parameters (`layer_norm_elementwise_affine`).

use crate::config::{OptConfig, OPT_LAYER_NORM_EPS};
use crate::{Error, Result};
use tessera_nn::generation::CausalDecoder;
use tessera_nn::{AttentionConfig, Embedding, KvCache, LayerNorm, Linear, Mlp, MlpConfig, MultiHeadAttention, VarBuilder};
use tessera_tensor::{DType, Device, Tensor};

/// Rows of `embed_positions` before position 0.
pub const POSITION_OFFSET: usize = 2;

fn layer_norm(vb: &VarBuilder, c: &OptConfig) -> Result<LayerNorm> {
    if c.layer_norm_elementwise_affine {
        Ok(LayerNorm::load(vb, c.hidden_size, OPT_LAYER_NORM_EPS)?)
    } else {
        Ok(LayerNorm::new(None, None, OPT_LAYER_NORM_EPS)?)
    }
}

/// `OPTDecoderLayer`.
#[derive(Clone, Debug)]
pub struct OptDecoderLayer {
    self_attn_layer_norm: LayerNorm,
    self_attn: MultiHeadAttention,
    final_layer_norm: LayerNorm,
    mlp: Mlp,
    pre_norm: bool,
}

impl OptDecoderLayer {
    fn load(vb: &VarBuilder, c: &OptConfig) -> Result<Self> {
        let (h, bias) = (c.hidden_size, c.enable_bias);
        let attn = vb.pp("self_attn");
        let q = Linear::load(&attn.pp("q_proj"), h, h, bias)?;
        let scale = (c.head_dim() as f64).powf(-0.5);
        let q = Linear::from_rows(q.rows().map(|w| w.mul_scalar(scale))?, q.bias().map(|b| b.mul_scalar(scale)).transpose()?)?;
        let cfg = AttentionConfig::new(h, c.num_attention_heads).with_causal(true).with_scale(1.0);
        let self_attn = MultiHeadAttention::new(
            q,
            Linear::load(&attn.pp("k_proj"), h, h, bias)?,
            Linear::load(&attn.pp("v_proj"), h, h, bias)?,
            Linear::load(&attn.pp("out_proj"), h, h, bias)?,
            &cfg,
        )?
        .with_causal(true);
        Ok(OptDecoderLayer {
            self_attn_layer_norm: layer_norm(&vb.pp("self_attn_layer_norm"), c)?,
            self_attn,
            final_layer_norm: layer_norm(&vb.pp("final_layer_norm"), c)?,
            mlp: Mlp::load(vb, &MlpConfig::new(h, c.ffn_dim, c.activation_function).with_bias(bias))?,
            pre_norm: c.do_layer_norm_before,
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        if self.pre_norm {
            let attn = self.self_attn.forward(&self.self_attn_layer_norm.forward(x)?, None, Some(cache))?;
            let (normed, h) = self.final_layer_norm.forward_residual(&attn, x)?;
            Ok(h.add(&self.mlp.forward(&normed)?)?)
        } else {
            let attn = self.self_attn.forward(x, None, Some(cache))?;
            let (h, _) = self.self_attn_layer_norm.forward_residual(&attn, x)?;
            Ok(self.final_layer_norm.forward_residual(&self.mlp.forward(&h)?, &h)?.0)
        }
    }
}

/// The decoder's KV caches, one per layer, over `rows` sequences of equal
/// length.
#[derive(Clone, Debug)]
pub struct OptCache {
    layers: Vec<KvCache>,
}

impl OptCache {
    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, KvCache::len)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `OPTForCausalLM`: the decoder and the LM head.
#[derive(Clone, Debug)]
pub struct OptForCausalLm {
    embed_tokens: Embedding,
    embed_positions: Tensor,
    project_in: Option<Linear>,
    project_out: Option<Linear>,
    layers: Vec<OptDecoderLayer>,
    final_layer_norm: Option<LayerNorm>,
    lm_head: Linear,
    max_positions: usize,
}

impl OptForCausalLm {
    /// Loads `language_model.*` (`vb` is at `language_model`), calling
    /// `loaded()` after each layer. `lm_head.weight` is tied to the token
    /// embeddings when the checkpoint has none (or the config ties them).
    pub fn load(vb: &VarBuilder, c: &OptConfig, loaded: &mut dyn FnMut()) -> Result<Self> {
        let dec = vb.pp("model.decoder");
        let (h, e) = (c.hidden_size, c.word_embed_proj_dim);
        let embed_tokens = Embedding::load(&dec.pp("embed_tokens"), c.vocab_size, e)?;
        let embed_positions = dec.pp("embed_positions").get(vec![c.max_position_embeddings + POSITION_OFFSET, h], "weight")?;
        let (project_in, project_out) = if e != h {
            (Some(Linear::load(&dec.pp("project_in"), e, h, false)?), Some(Linear::load(&dec.pp("project_out"), h, e, false)?))
        } else {
            (None, None)
        };
        let list = dec.pp("layers");
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            layers.push(OptDecoderLayer::load(&list.pp(i), c)?);
            loaded();
        }
        let final_layer_norm = if c.has_final_layer_norm() { Some(layer_norm(&dec.pp("final_layer_norm"), c)?) } else { None };
        let lm_head = if vb.contains("lm_head.weight") {
            Linear::load(&vb.pp("lm_head"), e, c.vocab_size, false)?
        } else {
            Linear::from_rows(embed_tokens.rows().clone(), None)?
        };
        Ok(OptForCausalLm {
            embed_tokens,
            embed_positions,
            project_in,
            project_out,
            layers,
            final_layer_norm,
            lm_head,
            max_positions: c.max_position_embeddings,
        })
    }

    /// Positions the model has (`max_position_embeddings`).
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Size of the LM vocabulary (the logits' width).
    pub fn vocab_size(&self) -> usize {
        self.lm_head.out_dim()
    }

    /// The device and dtype of the weights.
    pub fn device(&self) -> &Device {
        self.embed_tokens.rows().device()
    }

    /// The dtype the model computes in.
    pub fn dtype(&self) -> DType {
        self.embed_tokens.rows().dtype()
    }

    /// An empty cache.
    pub fn new_cache(&self) -> OptCache {
        OptCache { layers: vec![KvCache::with_max_len(self.max_positions); self.layers.len()] }
    }

    /// Token embeddings `[b, t, word_embed_proj_dim]` of `ids` (`b` rows of
    /// `t` ids).
    pub fn embed(&self, ids: &[u32], rows: usize) -> Result<Tensor> {
        if rows == 0 || !ids.len().is_multiple_of(rows) {
            return Err(Error::invalid("opt", format!("{} ids do not split into {rows} rows", ids.len())));
        }
        let vocab = self.embed_tokens.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::invalid("opt", format!("token id {bad} is outside the vocabulary of {vocab}")));
        }
        let t = Tensor::from_slice(ids, vec![rows, ids.len() / rows], self.device())?;
        Ok(self.embed_tokens.forward(&t)?)
    }

    /// The last hidden state `[b, t, word_embed_proj_dim]` of input
    /// embeddings `[b, t, word_embed_proj_dim]` placed after what `cache`
    /// holds (positions continue from `cache.len()`).
    pub fn forward_embeds(&self, embeds: &Tensor, cache: &mut OptCache) -> Result<Tensor> {
        let d = embeds.dims();
        if d.len() != 3 || d[2] != self.embed_tokens.dim() {
            return Err(Error::invalid("opt", format!("input embeddings must be [batch, time, {}], got {d:?}", self.embed_tokens.dim())));
        }
        let (past, t) = (cache.len(), d[1]);
        if past + t > self.max_positions {
            return Err(Error::invalid(
                "opt",
                format!(
                    "{} positions ({past} cached + {t} new) exceed the {} positions of the language model (text_config.max_position_embeddings)",
                    past + t,
                    self.max_positions
                ),
            ));
        }
        let x = embeds.to_dtype(self.dtype())?;
        let x = match &self.project_in {
            Some(p) => p.forward(&x)?,
            None => x,
        };
        let positions = self.embed_positions.narrow(0, past + POSITION_OFFSET, t)?.unsqueeze(0)?;
        let mut h = x.add(&positions)?;
        for (layer, layer_cache) in self.layers.iter().zip(cache.layers.iter_mut()) {
            h = layer.forward(&h, layer_cache)?;
        }
        if let Some(norm) = &self.final_layer_norm {
            h = norm.forward(&h)?;
        }
        match &self.project_out {
            Some(p) => Ok(p.forward(&h)?),
            None => Ok(h),
        }
    }

    /// Logits `[b, vocab]` of the last position of a hidden state `[b, t, e]`.
    pub fn last_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let t = hidden.dims()[1];
        let last = hidden.narrow(1, t - 1, 1)?.squeeze(1)?;
        Ok(self.lm_head.forward(&last)?)
    }

    /// Logits `[b, t, vocab]` of every position of a hidden state.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.lm_head.forward(hidden)?)
    }
}

impl CausalDecoder for OptForCausalLm {
    type State = OptCache;

    fn decode_step(&self, tokens: &[u32], state: &mut OptCache) -> tessera_nn::Result<Tensor> {
        let embeds = self.embed(tokens, tokens.len()).map_err(to_nn)?;
        let hidden = self.forward_embeds(&embeds, state).map_err(to_nn)?;
        self.last_logits(&hidden).map_err(to_nn)
    }

    fn select_rows(&self, state: &mut OptCache, rows: &[usize]) -> tessera_nn::Result<()> {
        state.layers.iter_mut().try_for_each(|c| c.select_rows(rows))
    }
}

/// This crate's errors as tessera-nn's, for the generation loop.
fn to_nn(e: Error) -> tessera_nn::Error {
    match e {
        Error::Nn(e) => e,
        other => tessera_nn::Error::invalid("opt", other.to_string()),
    }
}

//! The Querying Transformer (`Blip2QFormerModel`): BERT-style post-LN
//! layers over the learned queries, cross-attending to the image features
//! in every `cross_attention_frequency`-th layer, and over text tokens
//! beside them for the retrieval heads.
//!
//! ```text
//! x = layernorm(cat(queries, text embeddings))     (either may be empty)
//! per layer i:
//!   x = attention.output.LayerNorm(attention.output.dense(self_attn(x, mask)) + x)
//!   q, t = x[:, :queries], x[:, queries:]
//!   if i % cross_attention_frequency == 0:
//!     q = crossattention.output.LayerNorm(crossattention.output.dense(cross_attn(q, image)) + q)
//!   q = output_query.LayerNorm(output_query.dense(act(intermediate_query.dense(q))) + q)
//!   t = output.LayerNorm(output.dense(act(intermediate.dense(t))) + t)
//!   x = cat(q, t)
//! ```
//!
//! Weight names (`vb` at `qformer`): `layernorm`, `encoder.layer.N.attention.
//! attention.{query,key,value}`, `...attention.output.{dense,LayerNorm}`,
//! `...crossattention.*` (keys and values read the vision width),
//! `...intermediate_query.dense`, `...output_query.{dense,LayerNorm}`, and
//! with `use_qformer_text_input` the text FFN `...intermediate.dense`,
//! `...output.{dense,LayerNorm}`. [`Blip2TextEmbeddings`] (`embeddings.*` of
//! the retrieval model) turns text ids into the text part's input.

use crate::config::Blip2QFormerConfig;
use crate::{Error, Result};
use tessera_nn::{Activation, AttentionConfig, Embedding, LayerNorm, Linear, MultiHeadAttention, VarBuilder};
use tessera_tensor::{DType, Tensor};

/// `Blip2QFormerAttention`: multi-head attention, then `output.dense`,
/// residual and `output.LayerNorm`.
#[derive(Clone, Debug)]
pub struct Blip2QFormerAttention {
    attention: MultiHeadAttention,
    norm: LayerNorm,
}

impl Blip2QFormerAttention {
    fn load(vb: &VarBuilder, c: &Blip2QFormerConfig, kv_input: usize) -> Result<Self> {
        let h = c.hidden_size;
        let attn = vb.pp("attention");
        let cfg = AttentionConfig::new(h, c.num_attention_heads).with_kv_input_dim(kv_input).with_bias(true, true);
        let attention = MultiHeadAttention::new(
            Linear::load(&attn.pp("query"), h, h, true)?,
            Linear::load(&attn.pp("key"), kv_input, h, true)?,
            Linear::load(&attn.pp("value"), kv_input, h, true)?,
            Linear::load(&vb.pp("output.dense"), h, h, true)?,
            &cfg,
        )?;
        Ok(Blip2QFormerAttention { attention, norm: LayerNorm::load(&vb.pp("output.LayerNorm"), h, c.layer_norm_eps)? })
    }

    /// Self-attention (`context` None) under the additive `mask`, or
    /// cross-attention over `context`.
    fn forward(&self, x: &Tensor, context: Option<&Tensor>, mask: Option<&Tensor>) -> Result<Tensor> {
        let attended = match context {
            Some(ctx) => self.attention.forward_cross(x, ctx, None)?,
            None => self.attention.forward(x, mask, None)?,
        };
        Ok(self.norm.forward_residual(&attended, x)?.0)
    }
}

/// `Blip2QFormerIntermediate` and `Blip2QFormerOutput`: the feed-forward
/// block, residual and `LayerNorm`.
#[derive(Clone, Debug)]
struct FeedForward {
    intermediate: Linear,
    output: Linear,
    norm: LayerNorm,
    act: Activation,
}

impl FeedForward {
    /// `{intermediate}.dense`, `{output}.dense` and `{output}.LayerNorm`.
    fn load(vb: &VarBuilder, c: &Blip2QFormerConfig, intermediate: &str, output: &str) -> Result<Self> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        Ok(FeedForward {
            intermediate: Linear::load(&vb.pp(intermediate).pp("dense"), h, i, true)?,
            output: Linear::load(&vb.pp(output).pp("dense"), i, h, true)?,
            norm: LayerNorm::load(&vb.pp(output).pp("LayerNorm"), h, c.layer_norm_eps)?,
            act: c.hidden_act,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let inner = self.intermediate.forward_act(x, self.act)?;
        Ok(self.norm.forward_residual(&self.output.forward(&inner)?, x)?.0)
    }
}

/// `Blip2QFormerLayer`.
#[derive(Clone, Debug)]
pub struct Blip2QFormerLayer {
    attention: Blip2QFormerAttention,
    crossattention: Option<Blip2QFormerAttention>,
    query_ffn: FeedForward,
    /// The text tokens' FFN (`use_qformer_text_input`).
    text_ffn: Option<FeedForward>,
}

impl Blip2QFormerLayer {
    /// Loads layer `index`, with the text FFN when `text_input`.
    fn load(vb: &VarBuilder, c: &Blip2QFormerConfig, index: usize, text_input: bool) -> Result<Self> {
        let h = c.hidden_size;
        let crossattention = if c.has_cross_attention(index) {
            Some(Blip2QFormerAttention::load(&vb.pp("crossattention"), c, c.encoder_hidden_size)?)
        } else {
            None
        };
        let text_ffn = if text_input { Some(FeedForward::load(vb, c, "intermediate", "output")?) } else { None };
        Ok(Blip2QFormerLayer {
            attention: Blip2QFormerAttention::load(&vb.pp("attention"), c, h)?,
            crossattention,
            query_ffn: FeedForward::load(vb, c, "intermediate_query", "output_query")?,
            text_ffn,
        })
    }

    /// Whether this layer attends to the image.
    pub fn has_cross_attention(&self) -> bool {
        self.crossattention.is_some()
    }

    /// Whether this layer has the text tokens' FFN.
    pub fn has_text_input(&self) -> bool {
        self.text_ffn.is_some()
    }

    /// `x [b, queries + text, hidden]`, of which the first `queries` rows
    /// are query tokens (which cross-attend to `image` where the layer
    /// does) and the rest text tokens.
    fn forward(&self, x: &Tensor, queries: usize, mask: Option<&Tensor>, image: Option<&Tensor>) -> Result<Tensor> {
        let h = self.attention.forward(x, None, mask)?;
        let t = h.dims()[1];
        let text_ffn =
            || self.text_ffn.as_ref().ok_or_else(|| Error::invalid("qformer", "text tokens need the text FFN (use_qformer_text_input)"));
        if queries == 0 {
            return text_ffn()?.forward(&h);
        }
        let mut q = if queries == t { h.clone() } else { h.narrow(1, 0, queries)? };
        if let Some(cross) = &self.crossattention {
            let image =
                image.ok_or_else(|| Error::invalid("qformer", "query tokens cross-attend to image features, and none were given"))?;
            q = cross.forward(&q, Some(image), None)?;
        }
        let q = self.query_ffn.forward(&q)?;
        if queries == t {
            return Ok(q);
        }
        let text = text_ffn()?.forward(&h.narrow(1, queries, t - queries)?)?;
        Ok(Tensor::cat(&[&q, &text], 1)?)
    }
}

/// `Blip2QFormerModel`: `layernorm` on the queries, then the layers.
#[derive(Clone, Debug)]
pub struct Blip2QFormerModel {
    layernorm: LayerNorm,
    layers: Vec<Blip2QFormerLayer>,
}

impl Blip2QFormerModel {
    /// Loads `qformer.*` (`vb` is at `qformer`), with the text FFN when
    /// `text_input` (the retrieval model; captioning runs queries only),
    /// calling `loaded()` after each layer.
    pub fn load(vb: &VarBuilder, c: &Blip2QFormerConfig, text_input: bool, loaded: &mut dyn FnMut()) -> Result<Self> {
        let list = vb.pp("encoder.layer");
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            layers.push(Blip2QFormerLayer::load(&list.pp(i), c, i, text_input)?);
            loaded();
        }
        Ok(Blip2QFormerModel { layernorm: LayerNorm::load(&vb.pp("layernorm"), c.hidden_size, c.layer_norm_eps)?, layers })
    }

    /// The layers.
    pub fn layers(&self) -> &[Blip2QFormerLayer] {
        &self.layers
    }

    /// `query_embeds [b, q, hidden]` attending to `image [b, patches, vision
    /// width]` -> the last hidden state `[b, q, hidden]`.
    pub fn forward(&self, query_embeds: &Tensor, image: &Tensor) -> Result<Tensor> {
        self.forward_with_text(query_embeds, query_embeds.dims()[1], None, Some(image))
    }

    /// transformers' `forward(query_embeds, query_length, attention_mask,
    /// encoder_hidden_states)`: `embeds [b, t, hidden]` holds `queries`
    /// query tokens and then text tokens; `mask` is additive over the keys
    /// (`[b, 1, 1, t]`, see [`key_padding_mask`]); `image` is needed when
    /// `queries > 0`. Returns the last hidden state `[b, t, hidden]`.
    pub fn forward_with_text(&self, embeds: &Tensor, queries: usize, mask: Option<&Tensor>, image: Option<&Tensor>) -> Result<Tensor> {
        if embeds.rank() != 3 || queries > embeds.dims()[1] {
            return Err(Error::invalid("qformer", format!("embeddings of shape {:?} with {queries} query tokens", embeds.dims())));
        }
        let x = self.layernorm.forward(embeds)?;
        self.layers.iter().try_fold(x, |h, layer| layer.forward(&h, queries, mask, image))
    }
}

/// The additive self-attention mask `[b, 1, 1, t]` in `dtype` of a 0/1
/// attention mask `keep` (`b` rows of `t`): 0 where kept, the dtype's most
/// negative finite value where not (as transformers' bidirectional masks).
pub fn key_padding_mask(keep: &[bool], b: usize, device: &tessera_tensor::Device, dtype: DType) -> Result<Tensor> {
    if b == 0 || !keep.len().is_multiple_of(b) {
        return Err(Error::invalid("qformer", format!("an attention mask of {} values does not split into {b} rows", keep.len())));
    }
    let t = keep.len() / b;
    let min = match dtype {
        DType::F16 => tessera_tensor::f16::MIN.to_f32(),
        DType::BF16 => tessera_tensor::bf16::MIN.to_f32(),
        _ => f32::MIN,
    };
    let values: Vec<f32> = keep.iter().map(|&k| if k { 0.0 } else { min }).collect();
    Ok(Tensor::from_vec(values, vec![b, 1, 1, t], device)?.to_dtype(dtype)?)
}

/// `Blip2TextEmbeddings`: word embeddings plus learned absolute positions
/// from 0 (`embeddings.word_embeddings`, `embeddings.position_embeddings`;
/// no norm: the Q-Former's `layernorm` follows).
#[derive(Clone, Debug)]
pub struct Blip2TextEmbeddings {
    word_embeddings: Embedding,
    position_embeddings: Embedding,
}

impl Blip2TextEmbeddings {
    /// Loads `embeddings.*` (`vb` at `embeddings`).
    pub fn load(vb: &VarBuilder, c: &Blip2QFormerConfig) -> Result<Self> {
        Ok(Blip2TextEmbeddings {
            word_embeddings: Embedding::load(&vb.pp("word_embeddings"), c.vocab_size, c.hidden_size)?,
            position_embeddings: Embedding::load(&vb.pp("position_embeddings"), c.max_position_embeddings, c.hidden_size)?,
        })
    }

    /// The most text tokens the positions allow.
    pub fn max_positions(&self) -> usize {
        self.position_embeddings.vocab_size()
    }

    /// `ids` (`b` rows of equal length) -> `[b, t, hidden]`.
    pub fn forward(&self, ids: &[u32], b: usize) -> Result<Tensor> {
        if b == 0 || ids.is_empty() || !ids.len().is_multiple_of(b) {
            return Err(Error::invalid("qformer", format!("{} text ids do not split into {b} non-empty rows", ids.len())));
        }
        let t = ids.len() / b;
        if t > self.max_positions() {
            return Err(Error::invalid(
                "qformer",
                format!("a text of {t} tokens is longer than the {} positions of the Q-Former's text embeddings", self.max_positions()),
            ));
        }
        let vocab = self.word_embeddings.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::invalid("qformer", format!("token id {bad} is outside the Q-Former's vocabulary of {vocab}")));
        }
        let device = self.word_embeddings.rows().device().clone();
        let words = self.word_embeddings.forward(&Tensor::from_slice(ids, vec![b, t], &device)?)?;
        let positions: Vec<u32> = (0..t as u32).collect();
        let positions = self.position_embeddings.forward(&Tensor::from_vec(positions, vec![1, t], &device)?)?;
        Ok(words.add(&positions)?)
    }
}

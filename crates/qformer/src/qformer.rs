//! The Querying Transformer (`Blip2QFormerModel`): BERT-style post-LN
//! layers over the learned queries, cross-attending to the image features
//! in every `cross_attention_frequency`-th layer.
//!
//! ```text
//! x = layernorm(query_tokens)
//! per layer i:
//!   x = attention.output.LayerNorm(attention.output.dense(self_attn(x)) + x)
//!   if i % cross_attention_frequency == 0:
//!     x = crossattention.output.LayerNorm(crossattention.output.dense(cross_attn(x, image)) + x)
//!   x = output_query.LayerNorm(output_query.dense(act(intermediate_query.dense(x))) + x)
//! ```
//!
//! Weight names (`vb` at `qformer`): `layernorm`, `encoder.layer.N.attention.
//! attention.{query,key,value}`, `...attention.output.{dense,LayerNorm}`,
//! `...crossattention.*` (keys and values read the vision width),
//! `...intermediate_query.dense`, `...output_query.{dense,LayerNorm}`. The
//! text FFN (`intermediate`/`output`) of checkpoints trained with text input
//! is not used by captioning.

use crate::config::Blip2QFormerConfig;
use crate::Result;
use tessera_nn::{Activation, AttentionConfig, LayerNorm, Linear, MultiHeadAttention, VarBuilder};
use tessera_tensor::Tensor;

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

    /// Self-attention (`context` None) or cross-attention over `context`.
    fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let attended = match context {
            Some(ctx) => self.attention.forward_cross(x, ctx, None)?,
            None => self.attention.forward(x, None, None)?,
        };
        Ok(self.norm.forward_residual(&attended, x)?.0)
    }
}

/// `Blip2QFormerLayer` (the query path).
#[derive(Clone, Debug)]
pub struct Blip2QFormerLayer {
    attention: Blip2QFormerAttention,
    crossattention: Option<Blip2QFormerAttention>,
    intermediate_query: Linear,
    output_query: Linear,
    output_norm: LayerNorm,
    act: Activation,
}

impl Blip2QFormerLayer {
    fn load(vb: &VarBuilder, c: &Blip2QFormerConfig, index: usize) -> Result<Self> {
        let h = c.hidden_size;
        let crossattention = if c.has_cross_attention(index) {
            Some(Blip2QFormerAttention::load(&vb.pp("crossattention"), c, c.encoder_hidden_size)?)
        } else {
            None
        };
        Ok(Blip2QFormerLayer {
            attention: Blip2QFormerAttention::load(&vb.pp("attention"), c, h)?,
            crossattention,
            intermediate_query: Linear::load(&vb.pp("intermediate_query.dense"), h, c.intermediate_size, true)?,
            output_query: Linear::load(&vb.pp("output_query.dense"), c.intermediate_size, h, true)?,
            output_norm: LayerNorm::load(&vb.pp("output_query.LayerNorm"), h, c.layer_norm_eps)?,
            act: c.hidden_act,
        })
    }

    /// Whether this layer attends to the image.
    pub fn has_cross_attention(&self) -> bool {
        self.crossattention.is_some()
    }

    fn forward(&self, x: &Tensor, image: &Tensor) -> Result<Tensor> {
        let mut h = self.attention.forward(x, None)?;
        if let Some(cross) = &self.crossattention {
            h = cross.forward(&h, Some(image))?;
        }
        let inner = self.intermediate_query.forward_act(&h, self.act)?;
        Ok(self.output_norm.forward_residual(&self.output_query.forward(&inner)?, &h)?.0)
    }
}

/// `Blip2QFormerModel`: `layernorm` on the queries, then the layers.
#[derive(Clone, Debug)]
pub struct Blip2QFormerModel {
    layernorm: LayerNorm,
    layers: Vec<Blip2QFormerLayer>,
}

impl Blip2QFormerModel {
    /// Loads `qformer.*` (`vb` is at `qformer`), calling `loaded()` after
    /// each layer.
    pub fn load(vb: &VarBuilder, c: &Blip2QFormerConfig, loaded: &mut dyn FnMut()) -> Result<Self> {
        let list = vb.pp("encoder.layer");
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            layers.push(Blip2QFormerLayer::load(&list.pp(i), c, i)?);
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
        let x = self.layernorm.forward(query_embeds)?;
        self.layers.iter().try_fold(x, |h, layer| layer.forward(&h, image))
    }
}

//! BLIP-2's EVA vision tower (`Blip2VisionModel`): a patch convolution with
//! bias, the class token in front, learned positions, pre-LN encoder layers
//! whose attention is one fused `qkv` projection, exact GELU MLPs, and
//! `post_layernorm` on every token.
//!
//! ```text
//! vision_model.embeddings.{class_embedding [1,1,D], patch_embedding.{weight,bias},
//!                          position_embedding [1, 1 + patches, D]}
//! vision_model.encoder.layers.N.{layer_norm1, self_attn.qkv, self_attn.projection,
//!                                layer_norm2, mlp.fc1, mlp.fc2}
//! vision_model.post_layernorm
//! ```
//!
//! The fused projection's bias comes in two layouts: transformers 5.x
//! writes one `self_attn.qkv.bias`; the 4.x hub checkpoints (e.g.
//! Salesforce/blip2-opt-2.7b) hold `self_attn.q_bias` and `self_attn.v_bias`
//! beside a bias-free `qkv.weight`, the key bias being zero. Both load.

use crate::config::Blip2VisionConfig;
use crate::{Error, Result};
use tessera_nn::{AttentionConfig, Conv2d, LayerNorm, MlpConfig, VarBuilder, VitEncoder, VitLayerConfig};
use tessera_tensor::{Conv2dParams, Tensor};

/// Input channels of the patch convolution (transformers fixes it at 3).
pub const NUM_CHANNELS: usize = 3;

/// `Blip2VisionEmbeddings`.
#[derive(Clone, Debug)]
pub struct Blip2VisionEmbeddings {
    class_embedding: Tensor,
    patch_embedding: Conv2d,
    position_embedding: Tensor,
    image_size: usize,
}

impl Blip2VisionEmbeddings {
    fn load(vb: &VarBuilder, c: &Blip2VisionConfig) -> Result<Self> {
        let p = c.patch_size;
        let params = Conv2dParams { stride: (p, p), ..Default::default() };
        Ok(Blip2VisionEmbeddings {
            class_embedding: vb.get(vec![1, 1, c.hidden_size], "class_embedding")?,
            patch_embedding: Conv2d::load(&vb.pp("patch_embedding"), NUM_CHANNELS, c.hidden_size, (p, p), params, true)?,
            position_embedding: vb.get(vec![1, c.num_positions(), c.hidden_size], "position_embedding")?,
            image_size: c.image_size,
        })
    }

    /// `pixel_values [b, 3, s, s] -> [b, 1 + patches, hidden]` (cast to the
    /// weights' dtype first).
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let s = self.image_size;
        let d = pixel_values.dims();
        if d.len() != 4 || d[1] != NUM_CHANNELS || d[2] != s || d[3] != s {
            return Err(Error::invalid("blip2 vision", format!("pixel values must be [batch, 3, {s}, {s}], got {d:?}")));
        }
        let b = d[0];
        let x = pixel_values.to_dtype(self.class_embedding.dtype())?;
        let patches = self.patch_embedding.forward(&x)?.flatten(2, 3)?.transpose(1, 2)?;
        let hidden = self.class_embedding.dims()[2];
        let class = self.class_embedding.broadcast_as(vec![b, 1, hidden])?;
        let x = Tensor::cat(&[&class, &patches], 1)?;
        Ok(x.add(&self.position_embedding)?)
    }
}

/// `Blip2VisionModel`: embeddings, encoder, `post_layernorm`.
#[derive(Clone, Debug)]
pub struct Blip2VisionModel {
    embeddings: Blip2VisionEmbeddings,
    encoder: VitEncoder,
    post_layernorm: LayerNorm,
}

impl Blip2VisionModel {
    /// Loads `vision_model.*` (`vb` is at `vision_model`), calling `loaded()`
    /// after each encoder layer.
    pub fn load(vb: &VarBuilder, c: &Blip2VisionConfig, loaded: &mut dyn FnMut()) -> Result<Self> {
        let layer = layer_config(vb, c);
        Ok(Blip2VisionModel {
            embeddings: Blip2VisionEmbeddings::load(&vb.pp("embeddings"), c)?,
            encoder: VitEncoder::load_with_progress(&vb.pp("encoder"), &layer, c.num_hidden_layers, "layers", loaded)?,
            post_layernorm: LayerNorm::load(&vb.pp("post_layernorm"), c.hidden_size, c.layer_norm_eps)?,
        })
    }

    /// The last hidden state `[b, 1 + patches, hidden]`, after
    /// `post_layernorm` (transformers' `last_hidden_state`).
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let x = self.embeddings.forward(pixel_values)?;
        let h = self.encoder.forward(&x, None)?;
        Ok(self.post_layernorm.forward(&h)?)
    }

    /// The embeddings.
    pub fn embeddings(&self) -> &Blip2VisionEmbeddings {
        &self.embeddings
    }
}

/// The encoder layer's names and the fused projection's bias layout, as
/// this checkpoint stores it (the first layer decides for all).
fn layer_config(vb: &VarBuilder, c: &Blip2VisionConfig) -> VitLayerConfig {
    let attn = vb.pp("encoder.layers.0.self_attn");
    let attention = AttentionConfig::new(c.hidden_size, c.num_attention_heads).with_out_name("projection");
    let attention = if attn.contains("q_bias") || attn.contains("v_bias") {
        attention.with_bias(true, true).with_fused_qkv_split_bias("qkv", "q_bias", "v_bias")
    } else {
        attention.with_bias(c.qkv_bias, true).with_fused_qkv("qkv")
    };
    VitLayerConfig::new(c.hidden_size, c.intermediate_size, c.num_attention_heads, c.layer_norm_eps, c.hidden_act)
        .with_attention(attention)
        .with_mlp(MlpConfig::new(c.hidden_size, c.intermediate_size, c.hidden_act))
}

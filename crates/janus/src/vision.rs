//! Janus' SigLIP-style vision tower (`JanusVisionModel`) and the aligners
//! that map image features into the language model's width.
//!
//! ```text
//! model.vision_model.embeddings.patch_embedding.{weight, bias}   conv, stride = patch
//! model.vision_model.embeddings.position_embedding.weight        [patches, D] (no class token)
//! model.vision_model.encoder.layers.N.{layer_norm1, self_attn.{q,k,v}_proj,
//!     self_attn.projection_layer, layer_norm2, mlp.fc1, mlp.fc2}
//! model.vision_model.post_layernorm
//! model.aligner.{fc1, hidden_layers.i}                            JanusVisionAlignerMLP
//! ```
//!
//! The encoder layers are pre-LN with an MLP of `int(hidden * mlp_ratio)`
//! features; q/k/v carry biases when `attention_bias`, the output
//! projection always. `post_layernorm` applies to every token. Both
//! aligners (`aligner`, and `generation_aligner` of the VQ side) are
//! `fc1` then, for each of `hidden_layers`, the activation and the layer.

use crate::config::JanusVisionConfig;
use crate::{Error, Result};
use tessera_nn::{Activation, AttentionConfig, Conv2d, LayerNorm, Linear, MlpConfig, VarBuilder, VitEncoder, VitLayerConfig};
use tessera_tensor::{Conv2dParams, Tensor};

/// `JanusVisionEmbeddings`: patches plus learned positions.
#[derive(Clone, Debug)]
pub struct JanusVisionEmbeddings {
    patch_embedding: Conv2d,
    position_embedding: Tensor,
    image_size: usize,
    num_channels: usize,
}

impl JanusVisionEmbeddings {
    fn load(vb: &VarBuilder, c: &JanusVisionConfig) -> Result<Self> {
        let p = c.patch_size;
        let params = Conv2dParams { stride: (p, p), ..Default::default() };
        Ok(JanusVisionEmbeddings {
            patch_embedding: Conv2d::load(&vb.pp("patch_embedding"), c.num_channels, c.hidden_size, (p, p), params, true)?,
            position_embedding: vb.pp("position_embedding").get(vec![c.num_patches(), c.hidden_size], "weight")?,
            image_size: c.image_size,
            num_channels: c.num_channels,
        })
    }

    /// `pixel_values [b, channels, s, s] -> [b, patches, hidden]` (cast to
    /// the weights' dtype first).
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let (s, ch) = (self.image_size, self.num_channels);
        let d = pixel_values.dims();
        if d.len() != 4 || d[1] != ch || d[2] != s || d[3] != s {
            return Err(Error::invalid("janus vision", format!("pixel values must be [batch, {ch}, {s}, {s}], got {d:?}")));
        }
        let x = pixel_values.to_dtype(self.position_embedding.dtype())?;
        let patches = self.patch_embedding.forward(&x)?.flatten(2, 3)?.transpose(1, 2)?;
        Ok(patches.add(&self.position_embedding.unsqueeze(0)?)?)
    }
}

/// `JanusVisionModel`: embeddings, encoder, `post_layernorm`.
#[derive(Clone, Debug)]
pub struct JanusVisionModel {
    embeddings: JanusVisionEmbeddings,
    encoder: VitEncoder,
    post_layernorm: LayerNorm,
}

impl JanusVisionModel {
    /// Loads `model.vision_model.*` (`vb` is there), calling `loaded()` after
    /// each encoder layer.
    pub fn load(vb: &VarBuilder, c: &JanusVisionConfig, loaded: &mut dyn FnMut()) -> Result<Self> {
        let attention =
            AttentionConfig::new(c.hidden_size, c.num_attention_heads).with_bias(c.attention_bias, true).with_out_name("projection_layer");
        let layer = VitLayerConfig::new(c.hidden_size, c.intermediate_size(), c.num_attention_heads, c.layer_norm_eps, c.hidden_act)
            .with_attention(attention)
            .with_mlp(MlpConfig::new(c.hidden_size, c.intermediate_size(), c.hidden_act));
        Ok(JanusVisionModel {
            embeddings: JanusVisionEmbeddings::load(&vb.pp("embeddings"), c)?,
            encoder: VitEncoder::load_with_progress(&vb.pp("encoder"), &layer, c.num_hidden_layers, "layers", loaded)?,
            post_layernorm: LayerNorm::load(&vb.pp("post_layernorm"), c.hidden_size, c.layer_norm_eps)?,
        })
    }

    /// The last hidden state `[b, patches, hidden]`, after `post_layernorm`.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let x = self.embeddings.forward(pixel_values)?;
        let h = self.encoder.forward(&x, None)?;
        Ok(self.post_layernorm.forward(&h)?)
    }
}

/// `JanusVisionAlignerMLP` and `JanusVQVAEAlignerMLP`: `fc1`, then the
/// activation before each of `hidden_layers`.
#[derive(Clone, Debug)]
pub struct JanusAlignerMlp {
    fc1: Linear,
    hidden_layers: Vec<Linear>,
    act: Activation,
}

impl JanusAlignerMlp {
    /// Loads `fc1` (`in_dim -> width`) and `depth - 1` `hidden_layers`
    /// (`width -> width`), all with biases.
    pub fn load(vb: &VarBuilder, in_dim: usize, width: usize, depth: usize, act: Activation) -> Result<Self> {
        let list = vb.pp("hidden_layers");
        Ok(JanusAlignerMlp {
            fc1: Linear::load(&vb.pp("fc1"), in_dim, width, true)?,
            hidden_layers: (1..depth).map(|i| Linear::load(&list.pp(i - 1), width, width, true)).collect::<tessera_nn::Result<_>>()?,
            act,
        })
    }

    /// `x [..., in_dim] -> [..., width]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.fc1.forward(x)?;
        for layer in &self.hidden_layers {
            h = layer.forward(&self.act.apply(&h)?)?;
        }
        Ok(h)
    }
}

//! CLIP's modules, mirroring transformers' modeling_clip.py module for
//! module and weight name for weight, so that an HF checkpoint loads as it is:
//!
//! ```text
//! ClipModel
//! ├── text_model: ClipTextTransformer      embeddings.{token,position}_embedding,
//! │                                        encoder.layers.N.*, final_layer_norm
//! ├── vision_model: ClipVisionTransformer  embeddings.{class_embedding, patch_embedding,
//! │                                        position_embedding}, pre_layrnorm,
//! │                                        encoder.layers.N.*, post_layernorm
//! ├── text_projection, visual_projection   (no bias)
//! └── logit_scale                          (a scalar)
//! ClipEncoderLayer: layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.{fc1,fc2}
//! ```
//!
//! The encoders are tessera-nn's pre-LN [`VitEncoder`] with CLIP's names.
//! Everything runs through the public `Tensor` API and tessera-nn layers
//! (fused layer norm, attention and activations), so the model runs on any
//! device, in the dtype its weights were loaded in.

use crate::config::{ClipConfig, ClipTextConfig, ClipVisionConfig, TextPooling};
use crate::tokenizer::TokenBatch;
use crate::{Error, Result};
pub use tessera_nn::l2_normalize;
use tessera_nn::{Conv2d, Embedding, LayerNorm, Linear, Mlp, MultiHeadAttention, VarBuilder, VitEncoder, VitEncoderLayer, VitLayerConfig};
use tessera_tensor::{Conv2dParams, DType, Device, Tensor};

/// Called after each step of loading with (steps done, steps in all).
pub type LoadProgress<'a> = &'a mut dyn FnMut(usize, usize);

/// Counts loading steps for a [`LoadProgress`] callback.
struct Steps<'a, 'b> {
    done: usize,
    total: usize,
    report: &'a mut LoadProgress<'b>,
}

impl Steps<'_, '_> {
    fn step(&mut self) {
        self.done += 1;
        (self.report)(self.done, self.total);
    }
}

/// `CLIPAttention`: multi-head self-attention with biased q/k/v/out
/// projections, scale `head_dim^-0.5`; causal in the text tower.
pub type ClipAttention = MultiHeadAttention;

/// `CLIPMLP`: `fc2(act(fc1(x)))`.
pub type ClipMlp = Mlp;

/// `CLIPEncoderLayer`: pre-LN attention and MLP blocks with residuals.
pub type ClipEncoderLayer = VitEncoderLayer;

/// `CLIPEncoder`: the stack of layers.
pub type ClipEncoder = VitEncoder;

/// Loads `encoder.layers.N` of a tower, counting each layer as a step.
fn load_encoder(vb: &VarBuilder, cfg: &VitLayerConfig, num_layers: usize, steps: &mut Steps<'_, '_>) -> Result<ClipEncoder> {
    Ok(VitEncoder::load_with_progress(&vb.pp("encoder"), cfg, num_layers, "layers", &mut || steps.step())?)
}

/// `CLIPVisionEmbeddings`: patch embedding (a conv without bias whose stride
/// is its kernel), the class token in front, learned positions added.
#[derive(Clone, Debug)]
pub struct ClipVisionEmbeddings {
    class_embedding: Tensor,
    patch_embedding: Conv2d,
    position_embedding: Embedding,
    image_size: usize,
    num_channels: usize,
}

impl ClipVisionEmbeddings {
    fn load(vb: &VarBuilder, c: &ClipVisionConfig) -> Result<Self> {
        let p = c.patch_size;
        let params = Conv2dParams { stride: (p, p), ..Default::default() };
        Ok(ClipVisionEmbeddings {
            class_embedding: vb.get(c.hidden_size, "class_embedding")?,
            patch_embedding: Conv2d::load(&vb.pp("patch_embedding"), c.num_channels, c.hidden_size, (p, p), params, false)?,
            position_embedding: Embedding::load(&vb.pp("position_embedding"), c.num_positions(), c.hidden_size)?,
            image_size: c.image_size,
            num_channels: c.num_channels,
        })
    }

    /// `pixel_values [b, c, s, s] -> [b, 1 + patches, hidden]` (cast to the
    /// weights' dtype first).
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let (s, c) = (self.image_size, self.num_channels);
        let d = pixel_values.dims();
        if d.len() != 4 || d[1] != c || d[2] != s || d[3] != s {
            return Err(Error::invalid("clip vision", format!("pixel values must be [batch, {c}, {s}, {s}], got {d:?}")));
        }
        let b = d[0];
        let x = pixel_values.to_dtype(self.class_embedding.dtype())?;
        let patches = self.patch_embedding.forward(&x)?.flatten(2, 3)?.transpose(1, 2)?;
        let hidden = self.class_embedding.dims()[0];
        let class = self.class_embedding.reshape(vec![1, 1, hidden])?.broadcast_as(vec![b, 1, hidden])?;
        let x = Tensor::cat(&[&class, &patches], 1)?;
        Ok(x.add(&self.position_embedding.weight()?.unsqueeze(0)?)?)
    }
}

/// `CLIPTextEmbeddings`: token plus position embeddings.
#[derive(Clone, Debug)]
pub struct ClipTextEmbeddings {
    token_embedding: Embedding,
    position_embedding: Embedding,
}

impl ClipTextEmbeddings {
    fn load(vb: &VarBuilder, c: &ClipTextConfig) -> Result<Self> {
        Ok(ClipTextEmbeddings {
            token_embedding: Embedding::load(&vb.pp("token_embedding"), c.vocab_size, c.hidden_size)?,
            position_embedding: Embedding::load(&vb.pp("position_embedding"), c.max_position_embeddings, c.hidden_size)?,
        })
    }

    /// `ids [b, t] -> [b, t, hidden]`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let t = ids.dims()[1];
        let max = self.position_embedding.vocab_size();
        if t > max {
            return Err(Error::invalid("clip text", format!("{t} tokens exceed the {max} positions of the model")));
        }
        let positions = self.position_embedding.weight()?.narrow(0, 0, t)?.unsqueeze(0)?;
        Ok(self.token_embedding.forward(ids)?.add(&positions)?)
    }
}

/// `CLIPTextTransformer`: embeddings, causal encoder, `final_layer_norm`,
/// pooled at the end-of-text token.
#[derive(Clone, Debug)]
pub struct ClipTextTransformer {
    embeddings: ClipTextEmbeddings,
    encoder: ClipEncoder,
    final_layer_norm: LayerNorm,
    pooling: TextPooling,
    vocab_size: usize,
}

impl ClipTextTransformer {
    fn load(vb: &VarBuilder, c: &ClipTextConfig, steps: &mut Steps<'_, '_>) -> Result<Self> {
        let embeddings = ClipTextEmbeddings::load(&vb.pp("embeddings"), c)?;
        steps.step();
        let layer = VitLayerConfig::new(c.hidden_size, c.intermediate_size, c.num_attention_heads, c.layer_norm_eps, c.hidden_act);
        let encoder = load_encoder(vb, &layer.with_causal(true), c.num_hidden_layers, steps)?;
        let final_layer_norm = LayerNorm::load(&vb.pp("final_layer_norm"), c.hidden_size, c.layer_norm_eps)?;
        Ok(ClipTextTransformer { embeddings, encoder, final_layer_norm, pooling: c.pooling(), vocab_size: c.vocab_size })
    }

    /// The position each text is pooled at, as transformers picks it: the
    /// first end-of-text id, or (legacy configs) the first largest id.
    pub fn pooled_positions(&self, tokens: &TokenBatch) -> Vec<usize> {
        tokens
            .ids
            .iter()
            .map(|ids| match self.pooling {
                TextPooling::FirstEos(eos) => ids.iter().position(|&i| i == eos).unwrap_or(0),
                TextPooling::ArgmaxId => {
                    let max = ids.iter().copied().max().unwrap_or(0);
                    ids.iter().position(|&i| i == max).unwrap_or(0)
                }
            })
            .collect()
    }

    /// The pooled output `[n, hidden]` of a batch of token ids. Texts are
    /// padded to the longest; the causal mask keeps padding out of the
    /// pooled states.
    pub fn forward(&self, tokens: &TokenBatch, device: &Device) -> Result<Tensor> {
        let n = tokens.ids.len();
        let t = tokens.max_len();
        if n == 0 || t == 0 {
            return Err(Error::invalid("clip text", "no tokens to embed"));
        }
        if let Some(bad) = tokens.ids.iter().flatten().find(|&&i| i as usize >= self.vocab_size) {
            return Err(Error::invalid("clip text", format!("token id {bad} is outside the vocabulary of {}", self.vocab_size)));
        }
        let ids = Tensor::from_vec(tokens.padded(t), vec![n, t], device)?;
        let hidden = self.encoder.forward(&self.embeddings.forward(&ids)?, None)?;
        // Layer norm is per position: pool first, then normalise the rows kept.
        let rows: Vec<i64> = self.pooled_positions(tokens).iter().enumerate().map(|(b, &p)| (b * t + p) as i64).collect();
        let rows = Tensor::from_vec(rows, n, device)?;
        let pooled = hidden.flatten(0, 1)?.index_select(&rows, 0)?;
        Ok(self.final_layer_norm.forward(&pooled)?)
    }
}

/// `CLIPVisionTransformer`: embeddings, `pre_layrnorm`, encoder,
/// `post_layernorm` of the class token.
#[derive(Clone, Debug)]
pub struct ClipVisionTransformer {
    embeddings: ClipVisionEmbeddings,
    pre_layrnorm: LayerNorm,
    encoder: ClipEncoder,
    post_layernorm: LayerNorm,
}

impl ClipVisionTransformer {
    fn load(vb: &VarBuilder, c: &ClipVisionConfig, steps: &mut Steps<'_, '_>) -> Result<Self> {
        let embeddings = ClipVisionEmbeddings::load(&vb.pp("embeddings"), c)?;
        let pre_layrnorm = LayerNorm::load(&vb.pp("pre_layrnorm"), c.hidden_size, c.layer_norm_eps)?;
        steps.step();
        let layer = VitLayerConfig::new(c.hidden_size, c.intermediate_size, c.num_attention_heads, c.layer_norm_eps, c.hidden_act);
        let encoder = load_encoder(vb, &layer, c.num_hidden_layers, steps)?;
        let post_layernorm = LayerNorm::load(&vb.pp("post_layernorm"), c.hidden_size, c.layer_norm_eps)?;
        Ok(ClipVisionTransformer { embeddings, pre_layrnorm, encoder, post_layernorm })
    }

    /// The pooled output `[b, hidden]`: the class token's final state.
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let x = self.pre_layrnorm.forward(&self.embeddings.forward(pixel_values)?)?;
        let hidden = self.encoder.forward(&x, None)?;
        Ok(self.post_layernorm.forward(&hidden.narrow(1, 0, 1)?.squeeze(1)?)?)
    }

    /// transformers' `hidden_states` `[b, 1 + patches, hidden]`: the
    /// embeddings after `pre_layrnorm`, then each layer's output (LLaVA-style
    /// models read a middle one).
    pub fn hidden_states(&self, pixel_values: &Tensor) -> Result<Vec<Tensor>> {
        let x = self.pre_layrnorm.forward(&self.embeddings.forward(pixel_values)?)?;
        Ok(self.encoder.forward_hidden_states(&x, None)?)
    }
}

/// `CLIPModel`: both towers, their projections into the shared space, and
/// the learned temperature.
#[derive(Clone, Debug)]
pub struct ClipModel {
    text_model: ClipTextTransformer,
    vision_model: ClipVisionTransformer,
    visual_projection: Linear,
    text_projection: Linear,
    logit_scale: f64,
    config: ClipConfig,
    dtype: DType,
}

impl ClipModel {
    /// Loads the model from `vb` (rooted at the checkpoint's top level, with
    /// the dtype and device to load into). Every missing or misshapen weight
    /// is reported, by its full name, in one error. Call
    /// [`ClipConfig::check_against`] on the source first to have a config
    /// that disagrees with the weights named by field ([`crate::Clip`] does).
    pub fn load(vb: &VarBuilder, config: &ClipConfig) -> Result<Self> {
        ClipModel::load_with_progress(vb, config, &mut |_, _| {})
    }

    /// [`load`](Self::load), calling `progress(done, total)` as the
    /// embeddings and each encoder layer are loaded.
    pub fn load_with_progress(vb: &VarBuilder, config: &ClipConfig, mut progress: LoadProgress<'_>) -> Result<Self> {
        let total = config.vision_config.num_hidden_layers + config.text_config.num_hidden_layers + 3;
        let mut steps = Steps { done: 0, total, report: &mut progress };
        let vb = vb.collect_errors();
        let vision_model = ClipVisionTransformer::load(&vb.pp("vision_model"), &config.vision_config, &mut steps)?;
        let text_model = ClipTextTransformer::load(&vb.pp("text_model"), &config.text_config, &mut steps)?;
        let p = config.projection_dim;
        let visual_projection = Linear::load(&vb.pp("visual_projection"), config.vision_config.hidden_size, p, false)?;
        let text_projection = Linear::load(&vb.pp("text_projection"), config.text_config.hidden_size, p, false)?;
        let logit_scale = vb.with_dtype(DType::F32).get(Vec::<usize>::new(), "logit_scale");
        vb.finish()?;
        let logit_scale = logit_scale?.to_scalar()?;
        steps.step();
        let dtype = vb.dtype().unwrap_or(visual_projection.rows().dtype());
        Ok(ClipModel { text_model, vision_model, visual_projection, text_projection, logit_scale, config: config.clone(), dtype })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    /// The dtype of the weights and activations.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The learned `logit_scale` (logits are `exp(logit_scale) * cosine`).
    pub fn logit_scale(&self) -> f64 {
        self.logit_scale
    }

    /// The text tower.
    pub fn text_model(&self) -> &ClipTextTransformer {
        &self.text_model
    }

    /// The vision tower.
    pub fn vision_model(&self) -> &ClipVisionTransformer {
        &self.vision_model
    }

    /// `get_image_features`: projected class-token states `[b,
    /// projection_dim]` (not normalised), in the model's dtype.
    pub fn get_image_features(&self, pixel_values: &Tensor) -> Result<Tensor> {
        self.visual_projection.forward(&self.vision_model.forward(pixel_values)?).map_err(Error::from)
    }

    /// `get_text_features`: projected end-of-text states `[n,
    /// projection_dim]` (not normalised), in the model's dtype.
    pub fn get_text_features(&self, tokens: &TokenBatch, device: &Device) -> Result<Tensor> {
        self.text_projection.forward(&self.text_model.forward(tokens, device)?).map_err(Error::from)
    }

    /// `logits_per_image [images, texts]`: `exp(logit_scale)` times the
    /// cosine similarity of L2-normalised embeddings (any dtype; f32 out).
    pub fn logits(&self, image_embeds: &Tensor, text_embeds: &Tensor) -> Result<Tensor> {
        let i = l2_normalize(&image_embeds.to_dtype(DType::F32)?)?;
        let t = l2_normalize(&text_embeds.to_dtype(DType::F32)?)?;
        Ok(i.matmul(&t.t()?)?.mul_scalar(self.logit_scale.exp())?)
    }
}

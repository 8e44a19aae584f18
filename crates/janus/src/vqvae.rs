//! Janus' VQ model (`JanusVQVAE`): a convolutional encoder, a codebook
//! quantizer and a decoder, so that images become grids of tokens and
//! tokens become images; plus the generation modules that live beside it
//! (`generation_embeddings`, `generation_aligner`, `generation_head`). The
//! encoder and decoder are tessera-nn's VQGAN ones ([`tessera_nn::vqgan`]).
//!
//! ```text
//! model.vqmodel.encoder.{conv_in, down.L.{block.B, attn.B, downsample.conv}, mid, norm_out, conv_out}
//! model.vqmodel.quant_conv                      1x1: latent_channels -> embed_dim
//! model.vqmodel.quantize.embedding.weight       [num_embeddings, embed_dim]
//! model.vqmodel.post_quant_conv                 1x1: embed_dim -> latent_channels
//! model.vqmodel.decoder.{conv_in, mid, up.L.{block.B, attn.B, upsample.conv}, norm_out, conv_out}
//! ```
//!
//! - Res block: GroupNorm(32, eps 1e-6), swish, 3x3 conv, twice; a 1x1
//!   `nin_shortcut` on the residual when the channel count changes.
//! - Attention block: GroupNorm, 1x1 `q`/`k`/`v`, one head over the `h*w`
//!   positions with scale `channels^-0.5`, 1x1 `proj_out`, residual.
//! - Encoder level `L` (of `channel_multiplier.len()`): `num_res_blocks`
//!   blocks from `base * (1, mult...)[L]` to `base * mult[L]` channels,
//!   attention after each block of the last level only, then (all levels
//!   but the last) a stride-2 3x3 conv after zero padding right and bottom.
//! - Decoder `up.J` is level `levels - 1 - J` (the deepest first):
//!   `num_res_blocks + 1` blocks to `base * mult[level]` channels, attention
//!   only in `up.0`, then (all but the last) nearest x2 and a 3x3 conv.
//! - Quantizer: the nearest entry by `|z|^2 + |e|^2 - 2 z.e` over the
//!   channels-last latents (the first on ties). Decoding looks entries up,
//!   L2-normalises them, lays them out as the `num_patches` square grid
//!   (row-major) and runs `post_quant_conv` and the decoder.

use crate::config::{JanusVqConfig, VQ_NORM_GROUPS};
use crate::vision::JanusAlignerMlp;
use crate::{Error, Result};
use tessera_nn::vqgan::{UpNames, VqganDecoder, VqganEncoder, VqganSpec};
use tessera_nn::{Activation, Conv2d, Embedding, Linear, VarBuilder};
use tessera_tensor::{Conv2dParams, DType, Tensor};

/// The GroupNorm epsilon of every VQ block.
const NORM_EPS: f64 = 1e-6;
/// `F.normalize`'s floor on the norm.
const NORMALIZE_EPS: f64 = 1e-12;

fn conv1x1(vb: &VarBuilder, cin: usize, cout: usize) -> Result<Conv2d> {
    Ok(Conv2d::load(vb, cin, cout, (1, 1), Conv2dParams::default(), true)?)
}

/// The encoder's or decoder's sizes: `blocks` res blocks per level,
/// attention in the deepest level only.
fn spec(c: &JanusVqConfig, image_channels: usize, blocks: usize) -> VqganSpec {
    let levels = c.num_resolutions();
    VqganSpec {
        image_channels,
        latent_channels: c.latent_channels,
        base_channels: c.base_channels,
        ch_mult: c.channel_multiplier.clone(),
        blocks: vec![blocks; levels],
        attention: (0..levels).map(|l| l == levels - 1).collect(),
        norm_groups: VQ_NORM_GROUPS,
        norm_eps: NORM_EPS,
    }
}

/// `JanusVQVAE`: encoder, quantizer and decoder.
#[derive(Clone, Debug)]
pub struct JanusVqVae {
    encoder: VqganEncoder,
    quant_conv: Conv2d,
    embedding: Tensor,
    post_quant_conv: Conv2d,
    decoder: VqganDecoder,
    config: JanusVqConfig,
}

impl JanusVqVae {
    /// Loads `model.vqmodel.*` (`vb` is there).
    pub fn load(vb: &VarBuilder, c: &JanusVqConfig) -> Result<Self> {
        Ok(JanusVqVae {
            encoder: VqganEncoder::load(&vb.pp("encoder"), &spec(c, c.in_channels, c.num_res_blocks))?,
            quant_conv: conv1x1(&vb.pp("quant_conv"), c.latent_channels, c.embed_dim)?,
            embedding: vb.pp("quantize.embedding").get(vec![c.num_embeddings, c.embed_dim], "weight")?,
            post_quant_conv: conv1x1(&vb.pp("post_quant_conv"), c.embed_dim, c.latent_channels)?,
            decoder: VqganDecoder::load(&vb.pp("decoder"), &spec(c, c.out_channels, c.num_res_blocks + 1), UpNames::RunOrder)?,
            config: c.clone(),
        })
    }

    /// Side of the images it encodes and decodes.
    pub fn image_size(&self) -> usize {
        self.config.image_size()
    }

    /// The encoder's latents after `quant_conv` `[b, embed_dim, g, g]` of
    /// `pixels [b, in_channels, s, s]` (normalised as the processor does).
    pub fn encode_latents(&self, pixels: &Tensor) -> Result<Tensor> {
        let (s, ch) = (self.image_size(), self.config.in_channels);
        let d = pixels.dims();
        if d.len() != 4 || d[1] != ch || d[2] != s || d[3] != s {
            return Err(Error::invalid("janus vq", format!("pixels to encode must be [batch, {ch}, {s}, {s}], got {d:?}")));
        }
        let h = self.encoder.forward(&pixels.to_dtype(self.embedding.dtype())?)?;
        Ok(self.quant_conv.forward(&h)?)
    }

    /// The code ids `[b, g * g]` (row-major over the grid) of `pixels`:
    /// `encode`'s `min_encoding_indices`.
    pub fn encode(&self, pixels: &Tensor) -> Result<Vec<Vec<u32>>> {
        let latents = self.encode_latents(pixels)?;
        let (b, d, g) = (latents.dims()[0], latents.dims()[1], latents.dims()[2]);
        let z = latents.permute(&[0, 2, 3, 1])?.reshape(vec![b * g * latents.dims()[3], d])?.to_dtype(DType::F32)?;
        let e = self.embedding.to_dtype(DType::F32)?;
        let zz = z.square()?.sum(&[1], true)?;
        let ee = e.square()?.sum(&[1], false)?.unsqueeze(0)?;
        let ze = z.matmul(&e.t()?)?;
        let distances = zz.add(&ee)?.sub(&ze.mul_scalar(2.0)?)?;
        let ids: Vec<u32> = distances.argmin(1, false)?.to_vec::<i64>()?.into_iter().map(|i| i as u32).collect();
        Ok(ids.chunks(ids.len() / b.max(1)).map(<[u32]>::to_vec).collect())
    }

    /// Pixels `[b, out_channels, s, s]` (channels first, about -1..1) of
    /// `tokens` (`b` rows of `g * g` code ids, row-major): transformers'
    /// `JanusVQVAE.decode`.
    pub fn decode(&self, tokens: &[Vec<u32>]) -> Result<Tensor> {
        let (g, n) = (self.config.num_patches, self.config.num_embeddings);
        if tokens.is_empty() {
            return Err(Error::invalid("janus vq", "no image tokens to decode"));
        }
        let mut flat = Vec::with_capacity(tokens.len() * g * g);
        for (i, row) in tokens.iter().enumerate() {
            if row.len() != g * g {
                return Err(Error::invalid("janus vq", format!("image {i} has {} tokens; a {g}x{g} grid takes {}", row.len(), g * g)));
            }
            if let Some(&bad) = row.iter().find(|&&t| t as usize >= n) {
                return Err(Error::invalid("janus vq", format!("image token {bad} is outside the codebook of {n}")));
            }
            flat.extend_from_slice(row);
        }
        let b = tokens.len();
        let ids = Tensor::from_slice(&flat, flat.len(), self.embedding.device())?;
        let entries = self.embedding.index_select(&ids, 0)?;
        let norms = entries.square()?.sum(&[1], true)?.sqrt()?;
        let floor = Tensor::full(NORMALIZE_EPS, vec![1, 1], norms.dtype(), norms.device())?;
        let entries = entries.div(&norms.maximum(&floor)?)?;
        let d = self.config.embed_dim;
        let latents = entries.reshape(vec![b, g, g, d])?.permute(&[0, 3, 1, 2])?.contiguous()?;
        Ok(self.decoder.forward(&self.post_quant_conv.forward(&latents)?)?)
    }
}

/// `JanusVQVAEHead`: the generation head, image-token logits from the
/// language model's hidden states.
#[derive(Clone, Debug)]
pub struct JanusVqVaeHead {
    proj_out: Linear,
    vision_head: Linear,
    act: Activation,
}

impl JanusVqVaeHead {
    /// Loads `proj_out` and `vision_head` (`vb` at `model.generation_head`).
    pub fn load(vb: &VarBuilder, c: &JanusVqConfig) -> Result<Self> {
        Ok(JanusVqVaeHead {
            proj_out: Linear::load(&vb.pp("proj_out"), c.image_token_embed_dim, c.projection_dim, true)?,
            vision_head: Linear::load(&vb.pp("vision_head"), c.projection_dim, c.num_embeddings, true)?,
            act: c.hidden_act,
        })
    }

    /// `hidden [..., image_token_embed_dim] -> logits [..., num_embeddings]`.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.vision_head.forward(&self.act.apply(&self.proj_out.forward(hidden)?)?)?)
    }
}

/// The embeddings of generated image tokens as the language model reads
/// them: `generation_embeddings` then `generation_aligner`.
#[derive(Clone, Debug)]
pub struct GenerationEmbeddings {
    embeddings: Embedding,
    aligner: JanusAlignerMlp,
}

impl GenerationEmbeddings {
    /// Loads `generation_embeddings` and `generation_aligner` under `vb`
    /// (`model`).
    pub fn load(vb: &VarBuilder, c: &JanusVqConfig) -> Result<Self> {
        Ok(GenerationEmbeddings {
            embeddings: Embedding::load(&vb.pp("generation_embeddings"), c.num_embeddings, c.embed_dim)?,
            aligner: JanusAlignerMlp::load(&vb.pp("generation_aligner"), c.embed_dim, c.projection_dim, c.num_hidden_layers, c.hidden_act)?,
        })
    }

    /// `[rows, 1, projection_dim]` for one token id per row.
    pub fn forward(&self, tokens: &[u32]) -> Result<Tensor> {
        let n = self.embeddings.vocab_size();
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n) {
            return Err(Error::invalid("janus", format!("image token {bad} is outside the codebook of {n}")));
        }
        let device = self.embeddings.rows().device();
        let ids = Tensor::from_slice(tokens, vec![tokens.len(), 1], device)?;
        self.aligner.forward(&self.embeddings.forward(&ids)?)
    }
}

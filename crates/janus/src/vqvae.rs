//! Janus' VQ model (`JanusVQVAE`): a convolutional encoder, a codebook
//! quantizer and a decoder, so that images become grids of tokens and
//! tokens become images; plus the generation modules that live beside it
//! (`generation_embeddings`, `generation_aligner`, `generation_head`).
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
use tessera_nn::{Activation, Conv2d, Embedding, GroupNorm, Linear, VarBuilder};
use tessera_tensor::{scaled_dot_product_attention, Conv2dParams, DType, Tensor};

/// The GroupNorm epsilon of every VQ block.
const NORM_EPS: f64 = 1e-6;
/// `F.normalize`'s floor on the norm.
const NORMALIZE_EPS: f64 = 1e-12;

fn conv(vb: &VarBuilder, cin: usize, cout: usize, k: usize, stride: usize, pad: usize) -> Result<Conv2d> {
    let params = Conv2dParams { stride: (stride, stride), padding: (pad, pad), ..Default::default() };
    Ok(Conv2d::load(vb, cin, cout, (k, k), params, true)?)
}

fn norm(vb: &VarBuilder, channels: usize) -> Result<GroupNorm> {
    Ok(GroupNorm::load(vb, VQ_NORM_GROUPS, channels, NORM_EPS)?)
}

fn swish(x: &Tensor) -> Result<Tensor> {
    Ok(Activation::Silu.apply(x)?)
}

/// `JanusVQVAEResnetBlock`.
#[derive(Clone, Debug)]
struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    nin_shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    fn load(vb: &VarBuilder, cin: usize, cout: usize) -> Result<Self> {
        Ok(ResnetBlock {
            norm1: norm(&vb.pp("norm1"), cin)?,
            conv1: conv(&vb.pp("conv1"), cin, cout, 3, 1, 1)?,
            norm2: norm(&vb.pp("norm2"), cout)?,
            conv2: conv(&vb.pp("conv2"), cout, cout, 3, 1, 1)?,
            nin_shortcut: if cin != cout { Some(conv(&vb.pp("nin_shortcut"), cin, cout, 1, 1, 0)?) } else { None },
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&swish(&self.norm1.forward(x)?)?)?;
        let h = self.conv2.forward(&swish(&self.norm2.forward(&h)?)?)?;
        let residual = match &self.nin_shortcut {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        Ok(residual.add(&h)?)
    }
}

/// `JanusVQVAEAttnBlock`.
#[derive(Clone, Debug)]
struct AttnBlock {
    norm: GroupNorm,
    q: Conv2d,
    k: Conv2d,
    v: Conv2d,
    proj_out: Conv2d,
}

impl AttnBlock {
    fn load(vb: &VarBuilder, c: usize) -> Result<Self> {
        Ok(AttnBlock {
            norm: norm(&vb.pp("norm"), c)?,
            q: conv(&vb.pp("q"), c, c, 1, 1, 0)?,
            k: conv(&vb.pp("k"), c, c, 1, 1, 0)?,
            v: conv(&vb.pp("v"), c, c, 1, 1, 0)?,
            proj_out: conv(&vb.pp("proj_out"), c, c, 1, 1, 0)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
        let normed = self.norm.forward(x)?;
        // [b, c, h, w] -> one head of h*w positions: [b, 1, hw, c].
        let heads = |t: Tensor| -> Result<Tensor> { Ok(t.reshape(vec![b, c, h * w])?.transpose(1, 2)?.unsqueeze(1)?) };
        let q = heads(self.q.forward(&normed)?)?;
        let k = heads(self.k.forward(&normed)?)?;
        let v = heads(self.v.forward(&normed)?)?;
        let scale = (c as f64).powf(-0.5);
        let out = scaled_dot_product_attention(&q, &k, &v, None, false, Some(scale))?;
        let out = out.squeeze(1)?.transpose(1, 2)?.reshape(vec![b, c, h, w])?;
        Ok(x.add(&self.proj_out.forward(&out)?)?)
    }
}

/// `JanusVQVAEMidBlock`: block, attention, block.
#[derive(Clone, Debug)]
struct MidBlock {
    block_1: ResnetBlock,
    attn_1: AttnBlock,
    block_2: ResnetBlock,
}

impl MidBlock {
    fn load(vb: &VarBuilder, c: usize) -> Result<Self> {
        Ok(MidBlock {
            block_1: ResnetBlock::load(&vb.pp("block_1"), c, c)?,
            attn_1: AttnBlock::load(&vb.pp("attn_1"), c)?,
            block_2: ResnetBlock::load(&vb.pp("block_2"), c, c)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.block_2.forward(&self.attn_1.forward(&self.block_1.forward(x)?)?)
    }
}

/// One level of the encoder or decoder: blocks, each followed by its
/// attention where the level has them, then the resampling conv.
#[derive(Clone, Debug)]
struct Level {
    blocks: Vec<ResnetBlock>,
    attn: Vec<AttnBlock>,
    resample: Option<Conv2d>,
}

impl Level {
    fn load(vb: &VarBuilder, blocks: usize, mut cin: usize, cout: usize, attention: bool) -> Result<Self> {
        let (mut list, mut attn) = (Vec::with_capacity(blocks), Vec::new());
        for i in 0..blocks {
            list.push(ResnetBlock::load(&vb.pp("block").pp(i), cin, cout)?);
            cin = cout;
            if attention {
                attn.push(AttnBlock::load(&vb.pp("attn").pp(i), cout)?);
            }
        }
        Ok(Level { blocks: list, attn, resample: None })
    }

    fn forward_blocks(&self, mut x: Tensor) -> Result<Tensor> {
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x)?;
            if let Some(attn) = self.attn.get(i) {
                x = attn.forward(&x)?;
            }
        }
        Ok(x)
    }
}

/// `JanusVQVAEEncoder`.
#[derive(Clone, Debug)]
pub struct JanusVqVaeEncoder {
    conv_in: Conv2d,
    down: Vec<Level>,
    mid: MidBlock,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl JanusVqVaeEncoder {
    fn load(vb: &VarBuilder, c: &JanusVqConfig) -> Result<Self> {
        let (base, levels) = (c.base_channels, c.num_resolutions());
        let mut down = Vec::with_capacity(levels);
        let mut cin = base;
        for (l, &m) in c.channel_multiplier.iter().enumerate() {
            let lvb = vb.pp("down").pp(l);
            let cout = base * m;
            let mut level = Level::load(&lvb, c.num_res_blocks, cin, cout, l == levels - 1)?;
            if l != levels - 1 {
                level.resample = Some(conv(&lvb.pp("downsample.conv"), cout, cout, 3, 2, 0)?);
            }
            cin = cout;
            down.push(level);
        }
        Ok(JanusVqVaeEncoder {
            conv_in: conv(&vb.pp("conv_in"), c.in_channels, base, 3, 1, 1)?,
            down,
            mid: MidBlock::load(&vb.pp("mid"), cin)?,
            norm_out: norm(&vb.pp("norm_out"), cin)?,
            conv_out: conv(&vb.pp("conv_out"), cin, c.latent_channels, 3, 1, 1)?,
        })
    }

    /// `pixels [b, in, s, s] -> latents [b, latent, s / 2^(levels-1), ...]`.
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(pixels)?;
        for level in &self.down {
            h = level.forward_blocks(h)?;
            if let Some(down) = &level.resample {
                h = down.forward(&pad_right_bottom(&h)?)?;
            }
        }
        let h = self.mid.forward(&h)?;
        self.conv_out.forward(&swish(&self.norm_out.forward(&h)?)?).map_err(Into::into)
    }
}

/// `F.pad(x, (0, 1, 0, 1))`: one zero column on the right, one zero row at
/// the bottom of `[b, c, h, w]`.
fn pad_right_bottom(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let col = Tensor::zeros(vec![b, c, h, 1], x.dtype(), x.device())?;
    let x = Tensor::cat(&[x, &col], 3)?;
    let row = Tensor::zeros(vec![b, c, 1, w + 1], x.dtype(), x.device())?;
    Ok(Tensor::cat(&[&x, &row], 2)?)
}

/// `JanusVQVAEDecoder`.
#[derive(Clone, Debug)]
pub struct JanusVqVaeDecoder {
    conv_in: Conv2d,
    mid: MidBlock,
    up: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl JanusVqVaeDecoder {
    fn load(vb: &VarBuilder, c: &JanusVqConfig) -> Result<Self> {
        let (base, levels) = (c.base_channels, c.num_resolutions());
        let mut cin = base * c.channel_multiplier[levels - 1];
        let conv_in = conv(&vb.pp("conv_in"), c.latent_channels, cin, 3, 1, 1)?;
        let mid = MidBlock::load(&vb.pp("mid"), cin)?;
        let mut up = Vec::with_capacity(levels);
        for j in 0..levels {
            let level_index = levels - 1 - j;
            let cout = base * c.channel_multiplier[level_index];
            let uvb = vb.pp("up").pp(j);
            let mut level = Level::load(&uvb, c.num_res_blocks + 1, cin, cout, j == 0)?;
            if level_index != 0 {
                level.resample = Some(conv(&uvb.pp("upsample.conv"), cout, cout, 3, 1, 1)?);
            }
            cin = cout;
            up.push(level);
        }
        Ok(JanusVqVaeDecoder {
            conv_in,
            mid,
            up,
            norm_out: norm(&vb.pp("norm_out"), cin)?,
            conv_out: conv(&vb.pp("conv_out"), cin, c.out_channels, 3, 1, 1)?,
        })
    }

    /// `latents [b, latent, g, g] -> pixels [b, out, g * 2^(levels-1), ...]`.
    pub fn forward(&self, latents: &Tensor) -> Result<Tensor> {
        let h = self.mid.forward(&self.conv_in.forward(latents)?)?;
        let mut h = h;
        for level in &self.up {
            h = level.forward_blocks(h)?;
            if let Some(upsample) = &level.resample {
                let (hh, ww) = (h.dims()[2], h.dims()[3]);
                h = upsample.forward(&h.upsample_nearest2d(2 * hh, 2 * ww)?)?;
            }
        }
        self.conv_out.forward(&swish(&self.norm_out.forward(&h)?)?).map_err(Into::into)
    }
}

/// `JanusVQVAE`: encoder, quantizer and decoder.
#[derive(Clone, Debug)]
pub struct JanusVqVae {
    encoder: JanusVqVaeEncoder,
    quant_conv: Conv2d,
    embedding: Tensor,
    post_quant_conv: Conv2d,
    decoder: JanusVqVaeDecoder,
    config: JanusVqConfig,
}

impl JanusVqVae {
    /// Loads `model.vqmodel.*` (`vb` is there).
    pub fn load(vb: &VarBuilder, c: &JanusVqConfig) -> Result<Self> {
        Ok(JanusVqVae {
            encoder: JanusVqVaeEncoder::load(&vb.pp("encoder"), c)?,
            quant_conv: conv(&vb.pp("quant_conv"), c.latent_channels, c.embed_dim, 1, 1, 0)?,
            embedding: vb.pp("quantize.embedding").get(vec![c.num_embeddings, c.embed_dim], "weight")?,
            post_quant_conv: conv(&vb.pp("post_quant_conv"), c.embed_dim, c.latent_channels, 1, 1, 0)?,
            decoder: JanusVqVaeDecoder::load(&vb.pp("decoder"), c)?,
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
        self.decoder.forward(&self.post_quant_conv.forward(&latents)?)
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

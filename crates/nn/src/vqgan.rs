//! The convolutional encoder and decoder of VQGAN-style image tokenizers
//! (taming-transformers' design), shared by the models whose tokenizers
//! keep it: Janus-Pro's VQ model and MAGVIT-v2.
//!
//! ```text
//! encoder: conv_in, down.L.{block.B, attn.B, downsample.conv}, mid, norm_out, conv_out
//! decoder: conv_in, mid, up.J.{block.B, attn.B, upsample.conv}, norm_out, conv_out
//! mid:     block_1, attn_1, block_2
//! ```
//!
//! - Res block: GroupNorm, swish, 3x3 conv, twice; a 1x1 `nin_shortcut` on
//!   the residual when the channel count changes.
//! - Attention block: GroupNorm, 1x1 `q`/`k`/`v`, one head over the `h*w`
//!   positions with scale `channels^-0.5`, 1x1 `proj_out`, residual.
//! - Encoder level `L` of `ch_mult.len()`: its blocks from
//!   `base * (1, mult...)[L]` to `base * mult[L]` channels, each followed by
//!   an attention block where the level has them, then (all levels but the
//!   last) a stride-2 3x3 conv after zero padding right and bottom.
//! - Decoder: from the deepest level to level 0, each level's blocks to
//!   `base * mult[L]` channels (attention where it has them), then (all but
//!   level 0) nearest x2 and a 3x3 conv. Models number the `up` modules
//!   differently (by run order or by level): [`UpNames`] says which.
//!
//! The models differ in block counts, where attention goes and the norm's
//! groups; [`VqganSpec`] carries those, read from each model's config.

use crate::{Activation, Conv2d, GroupNorm, Result, VarBuilder};
use tessera_tensor::{scaled_dot_product_attention, Conv2dParams, Tensor};

/// The sizes of one encoder or decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct VqganSpec {
    /// Image channels (encoder input, decoder output).
    pub image_channels: usize,
    /// Latent channels (encoder output, decoder input).
    pub latent_channels: usize,
    /// Channels of level 0 before the multipliers.
    pub base_channels: usize,
    /// Channel multiplier per level.
    pub ch_mult: Vec<usize>,
    /// Res blocks per level.
    pub blocks: Vec<usize>,
    /// Whether a level's blocks are followed by attention blocks.
    pub attention: Vec<bool>,
    /// GroupNorm groups and epsilon of every norm.
    pub norm_groups: usize,
    pub norm_eps: f64,
}

impl VqganSpec {
    /// Number of levels.
    pub fn levels(&self) -> usize {
        self.ch_mult.len()
    }

    /// How many times the encoder halves (and the decoder doubles) the side.
    pub fn scale_factor(&self) -> usize {
        1 << self.levels().saturating_sub(1)
    }

    fn channels(&self, level: usize) -> usize {
        self.base_channels * self.ch_mult[level]
    }
}

/// How a decoder names its `up` modules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpNames {
    /// `up.0` is the first to run (the deepest level): Janus.
    RunOrder,
    /// `up.L` is level `L` (`up.0` runs last): taming-transformers, MAGVIT-v2.
    Level,
}

fn conv(vb: &VarBuilder, cin: usize, cout: usize, k: usize, stride: usize, pad: usize) -> Result<Conv2d> {
    let params = Conv2dParams { stride: (stride, stride), padding: (pad, pad), ..Default::default() };
    Conv2d::load(vb, cin, cout, (k, k), params, true)
}

fn swish(x: &Tensor) -> Result<Tensor> {
    Activation::Silu.apply(x)
}

/// The res block.
#[derive(Clone, Debug)]
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    nin_shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    pub fn load(vb: &VarBuilder, cin: usize, cout: usize, s: &VqganSpec) -> Result<Self> {
        Ok(ResnetBlock {
            norm1: GroupNorm::load(&vb.pp("norm1"), s.norm_groups, cin, s.norm_eps)?,
            conv1: conv(&vb.pp("conv1"), cin, cout, 3, 1, 1)?,
            norm2: GroupNorm::load(&vb.pp("norm2"), s.norm_groups, cout, s.norm_eps)?,
            conv2: conv(&vb.pp("conv2"), cout, cout, 3, 1, 1)?,
            nin_shortcut: if cin != cout { Some(conv(&vb.pp("nin_shortcut"), cin, cout, 1, 1, 0)?) } else { None },
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&swish(&self.norm1.forward(x)?)?)?;
        let h = self.conv2.forward(&swish(&self.norm2.forward(&h)?)?)?;
        let residual = match &self.nin_shortcut {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        Ok(residual.add(&h)?)
    }
}

/// The single-head spatial attention block.
#[derive(Clone, Debug)]
pub struct AttnBlock {
    norm: GroupNorm,
    q: Conv2d,
    k: Conv2d,
    v: Conv2d,
    proj_out: Conv2d,
}

impl AttnBlock {
    pub fn load(vb: &VarBuilder, c: usize, s: &VqganSpec) -> Result<Self> {
        Ok(AttnBlock {
            norm: GroupNorm::load(&vb.pp("norm"), s.norm_groups, c, s.norm_eps)?,
            q: conv(&vb.pp("q"), c, c, 1, 1, 0)?,
            k: conv(&vb.pp("k"), c, c, 1, 1, 0)?,
            v: conv(&vb.pp("v"), c, c, 1, 1, 0)?,
            proj_out: conv(&vb.pp("proj_out"), c, c, 1, 1, 0)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
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

/// Block, attention, block.
#[derive(Clone, Debug)]
pub struct MidBlock {
    block_1: ResnetBlock,
    attn_1: AttnBlock,
    block_2: ResnetBlock,
}

impl MidBlock {
    pub fn load(vb: &VarBuilder, c: usize, s: &VqganSpec) -> Result<Self> {
        Ok(MidBlock {
            block_1: ResnetBlock::load(&vb.pp("block_1"), c, c, s)?,
            attn_1: AttnBlock::load(&vb.pp("attn_1"), c, s)?,
            block_2: ResnetBlock::load(&vb.pp("block_2"), c, c, s)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.block_2.forward(&self.attn_1.forward(&self.block_1.forward(x)?)?)
    }
}

/// One level: blocks, each followed by its attention where the level has
/// them, then the resampling conv.
#[derive(Clone, Debug)]
struct Level {
    blocks: Vec<ResnetBlock>,
    attn: Vec<AttnBlock>,
    resample: Option<Conv2d>,
}

impl Level {
    fn load(vb: &VarBuilder, blocks: usize, mut cin: usize, cout: usize, attention: bool, s: &VqganSpec) -> Result<Self> {
        let (mut list, mut attn) = (Vec::with_capacity(blocks), Vec::new());
        for i in 0..blocks {
            list.push(ResnetBlock::load(&vb.pp("block").pp(i), cin, cout, s)?);
            cin = cout;
            if attention {
                attn.push(AttnBlock::load(&vb.pp("attn").pp(i), cout, s)?);
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

/// The encoder: `pixels [b, image, s, s] -> [b, latent, s / f, s / f]`
/// with `f` = [`VqganSpec::scale_factor`].
#[derive(Clone, Debug)]
pub struct VqganEncoder {
    conv_in: Conv2d,
    down: Vec<Level>,
    mid: MidBlock,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl VqganEncoder {
    pub fn load(vb: &VarBuilder, s: &VqganSpec) -> Result<Self> {
        let levels = s.levels();
        let mut down = Vec::with_capacity(levels);
        let mut cin = s.base_channels;
        for l in 0..levels {
            let lvb = vb.pp("down").pp(l);
            let cout = s.channels(l);
            let mut level = Level::load(&lvb, s.blocks[l], cin, cout, s.attention[l], s)?;
            if l != levels - 1 {
                level.resample = Some(conv(&lvb.pp("downsample.conv"), cout, cout, 3, 2, 0)?);
            }
            cin = cout;
            down.push(level);
        }
        Ok(VqganEncoder {
            conv_in: conv(&vb.pp("conv_in"), s.image_channels, s.base_channels, 3, 1, 1)?,
            down,
            mid: MidBlock::load(&vb.pp("mid"), cin, s)?,
            norm_out: GroupNorm::load(&vb.pp("norm_out"), s.norm_groups, cin, s.norm_eps)?,
            conv_out: conv(&vb.pp("conv_out"), cin, s.latent_channels, 3, 1, 1)?,
        })
    }

    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let mut h = self.conv_in.forward(pixels)?;
        for level in &self.down {
            h = level.forward_blocks(h)?;
            if let Some(down) = &level.resample {
                h = down.forward(&pad_right_bottom(&h)?)?;
            }
        }
        let h = self.mid.forward(&h)?;
        self.conv_out.forward(&swish(&self.norm_out.forward(&h)?)?)
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

/// The decoder: `latents [b, latent, g, g] -> [b, image, g * f, g * f]`.
#[derive(Clone, Debug)]
pub struct VqganDecoder {
    conv_in: Conv2d,
    mid: MidBlock,
    /// In run order: the deepest level first.
    up: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl VqganDecoder {
    pub fn load(vb: &VarBuilder, s: &VqganSpec, names: UpNames) -> Result<Self> {
        let levels = s.levels();
        let mut cin = s.channels(levels - 1);
        let conv_in = conv(&vb.pp("conv_in"), s.latent_channels, cin, 3, 1, 1)?;
        let mid = MidBlock::load(&vb.pp("mid"), cin, s)?;
        let mut up = Vec::with_capacity(levels);
        for (run, l) in (0..levels).rev().enumerate() {
            let cout = s.channels(l);
            let uvb = vb.pp("up").pp(if names == UpNames::RunOrder { run } else { l });
            let mut level = Level::load(&uvb, s.blocks[l], cin, cout, s.attention[l], s)?;
            if l != 0 {
                level.resample = Some(conv(&uvb.pp("upsample.conv"), cout, cout, 3, 1, 1)?);
            }
            cin = cout;
            up.push(level);
        }
        Ok(VqganDecoder {
            conv_in,
            mid,
            up,
            norm_out: GroupNorm::load(&vb.pp("norm_out"), s.norm_groups, cin, s.norm_eps)?,
            conv_out: conv(&vb.pp("conv_out"), cin, s.image_channels, 3, 1, 1)?,
        })
    }

    pub fn forward(&self, latents: &Tensor) -> Result<Tensor> {
        let mut h = self.mid.forward(&self.conv_in.forward(latents)?)?;
        for level in &self.up {
            h = level.forward_blocks(h)?;
            if let Some(upsample) = &level.resample {
                let (hh, ww) = (h.dims()[2], h.dims()[3]);
                h = upsample.forward(&h.upsample_nearest2d(2 * hh, 2 * ww)?)?;
            }
        }
        self.conv_out.forward(&swish(&self.norm_out.forward(&h)?)?)
    }
}

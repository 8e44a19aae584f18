//! MAGVIT-v2, MMaDA's image tokenizer (models/modeling_magvitv2.py): the
//! VQGAN encoder and decoder of tessera-nn with a lookup-free quantizer.
//!
//! ```text
//! encoder.{conv_in, down.L.{block.B, attn.B, downsample.conv}, mid, norm_out, conv_out, quant_conv}
//! decoder.{post_quant_conv, conv_in, mid, up.L.{block.B, attn.B, upsample.conv}, norm_out, conv_out}
//! quantize.{embedding, power_vals}                     buffers (recomputed, not read)
//! ```
//!
//! - `decoder.up.L` is level `L`: `up.0` is the full-resolution level and
//!   runs last (the other way round from Janus' VQ model).
//! - Lookup-free quantization: bit `c` of a position's code is
//!   `latent_c > 0` (0 counts as negative), channel 0 the most significant;
//!   codes are laid out row-major over the grid. Decoding turns each code
//!   back into `±1` per bit, channels first.
//! - Pixels in are `(u8 / 255 - 0.5) / 0.5`; pixels out are mapped back
//!   with `clamp((x + 1) / 2, 0, 1) * 255`, truncated to u8.

use crate::config::MagvitConfig;
use tessera_hf::{Error, Result};
use tessera_nn::vqgan::{UpNames, VqganDecoder, VqganEncoder};
use tessera_nn::{Conv2d, VarBuilder};
use tessera_tensor::{Conv2dParams, DType, Device, Tensor};

/// `MAGVITv2`: encoder, quantizer and decoder.
#[derive(Clone, Debug)]
pub struct MagvitV2 {
    encoder: VqganEncoder,
    quant_conv: Conv2d,
    post_quant_conv: Conv2d,
    decoder: VqganDecoder,
    config: MagvitConfig,
    device: Device,
}

fn conv1x1(vb: &VarBuilder, c: usize) -> Result<Conv2d> {
    Ok(Conv2d::load(vb, c, c, (1, 1), Conv2dParams::default(), true)?)
}

impl MagvitV2 {
    /// Loads `encoder.*` and `decoder.*` under `vb`.
    pub fn load(vb: &VarBuilder, c: &MagvitConfig) -> Result<Self> {
        Ok(MagvitV2 {
            encoder: VqganEncoder::load(&vb.pp("encoder"), &c.encoder_spec())?,
            quant_conv: conv1x1(&vb.pp("encoder.quant_conv"), c.encoder.z_channels)?,
            post_quant_conv: conv1x1(&vb.pp("decoder.post_quant_conv"), c.decoder.z_channels)?,
            decoder: VqganDecoder::load(&vb.pp("decoder"), &c.decoder_spec(), UpNames::Level)?,
            config: c.clone(),
            device: vb.device().clone(),
        })
    }

    pub fn config(&self) -> &MagvitConfig {
        &self.config
    }

    /// The encoder's output after `quant_conv`, `[b, bits, g, g]`: the
    /// quantizer's input, for `pixels [b, in_ch, s, s]` (normalised; `s` a
    /// multiple of [`MagvitConfig::downsample`], `g = s / downsample`).
    pub fn encode_latents(&self, pixels: &Tensor) -> Result<Tensor> {
        let (f, ch) = (self.config.downsample(), self.config.encoder.in_ch);
        let d = pixels.dims();
        if d.len() != 4 || d[1] != ch || d[2] != d[3] || d[2] == 0 || !d[2].is_multiple_of(f) {
            return Err(Error::invalid(
                "magvit",
                format!("pixels to encode must be [batch, {ch}, side, side] with the side a multiple of {f}, got {d:?}"),
            ));
        }
        let h = self.encoder.forward(&pixels.to_dtype(DType::F32)?)?;
        Ok(self.quant_conv.forward(&h)?)
    }

    /// `get_code`: the codes `[b][g * g]` (row-major) of `pixels`.
    pub fn encode(&self, pixels: &Tensor) -> Result<Vec<Vec<u32>>> {
        let latents = self.encode_latents(pixels)?;
        let (b, bits, h, w) = (latents.dims()[0], latents.dims()[1], latents.dims()[2], latents.dims()[3]);
        let values = latents.to_dtype(DType::F32)?.to_vec::<f32>()?;
        Ok((0..b)
            .map(|bi| {
                (0..h * w)
                    .map(|p| (0..bits).fold(0u32, |code, c| (code << 1) | (values[(bi * bits + c) * h * w + p] > 0.0) as u32))
                    .collect()
            })
            .collect())
    }

    /// `decode_code`: pixels `[b, out_ch, s, s]` (about -1..1) of `codes`
    /// (`b` rows of a square grid's codes, row-major).
    pub fn decode(&self, codes: &[Vec<u32>]) -> Result<Tensor> {
        let bits = self.config.codebook_bits;
        let size = self.config.codebook_size();
        let n = codes.first().map_or(0, Vec::len);
        let g = (n as f64).sqrt() as usize;
        if codes.is_empty() || n == 0 || g * g != n {
            return Err(Error::invalid("magvit", format!("codes to decode must be rows of a square grid, got {n} per row")));
        }
        let mut z = vec![0.0f32; codes.len() * bits * n];
        for (bi, row) in codes.iter().enumerate() {
            if row.len() != n {
                return Err(Error::invalid("magvit", format!("image {bi} has {} codes, image 0 has {n}", row.len())));
            }
            for (p, &code) in row.iter().enumerate() {
                if code as usize >= size {
                    return Err(Error::invalid("magvit", format!("code {code} is outside the codebook of {size}")));
                }
                for c in 0..bits {
                    let bit = (code >> (bits - 1 - c)) & 1;
                    z[(bi * bits + c) * n + p] = if bit == 1 { 1.0 } else { -1.0 };
                }
            }
        }
        let z = Tensor::from_slice(&z, vec![codes.len(), bits, g, g], &self.device)?;
        Ok(self.decoder.forward(&self.post_quant_conv.forward(&z)?)?)
    }
}

/// `ToTensor` + `Normalize(0.5, 0.5)` of an RGB image `[h][w][3]` (HWC
/// bytes): `[1, 3, h, w]` in `-1..1`.
pub fn normalize_pixels(rgb: &[u8], h: usize, w: usize, device: &Device) -> Result<Tensor> {
    if rgb.len() != h * w * 3 {
        return Err(Error::invalid("magvit", format!("{} bytes are not a {h}x{w} RGB image", rgb.len())));
    }
    let mut chw = vec![0.0f32; 3 * h * w];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            chw[c * h * w + i] = (px[c] as f32 / 255.0 - 0.5) / 0.5;
        }
    }
    Ok(Tensor::from_slice(&chw, vec![1, 3, h, w], device)?)
}

/// inference_t2i.py's output conversion of decoded pixels `[b, 3, h, w]`:
/// `clamp((x + 1) / 2, 0, 1) * 255` truncated to u8, each image HWC.
pub fn to_uint8_images(pixels: &Tensor) -> Result<Vec<Vec<u8>>> {
    let d = pixels.dims();
    if d.len() != 4 || d[1] != 3 {
        return Err(Error::invalid("magvit", format!("decoded pixels must be [batch, 3, h, w], got {d:?}")));
    }
    let (b, h, w) = (d[0], d[2], d[3]);
    let v = pixels.to_dtype(DType::F32)?.to_vec::<f32>()?;
    Ok((0..b)
        .map(|bi| {
            let mut out = Vec::with_capacity(h * w * 3);
            for p in 0..h * w {
                for c in 0..3 {
                    let x = v[(bi * 3 + c) * h * w + p];
                    out.push((((x + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0) as u8);
                }
            }
            out
        })
        .collect())
}

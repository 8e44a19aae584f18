//! Rotary position embeddings (RoPE): precomputed cos/sin tables and their
//! application at a position offset.

use crate::{Error, Result};
use tessera_tensor::{DType, Device, RopeStyle, Tensor};

/// Cos/sin tables `[max_positions, rot_dim / 2]` (f32) for rotary position
/// embeddings, in the HF Llama convention:
/// `inv_freq[i] = 1 / theta^(2i / rot_dim)`, `angle[p, i] = p * inv_freq[i]`.
///
/// The tables are computed as HF computes them in f32 (exponent, power,
/// inverse and product each rounded to f32; cos/sin of the f32 angle), so
/// they agree with the reference to about an ulp at every position. Cloning
/// is cheap: clones share the tables.
#[derive(Clone, Debug)]
pub struct RotaryEmbedding {
    cos: Tensor,
    sin: Tensor,
    style: RopeStyle,
}

impl RotaryEmbedding {
    /// Tables for positions `0..max_positions` rotating the first `rot_dim`
    /// features of a head (all of them for `rot_dim == head_dim`; fewer for
    /// partial rotary), with base `theta` (`rope_theta`, 10000 for Llama 2).
    pub fn new(theta: f64, rot_dim: usize, max_positions: usize, style: RopeStyle, device: &Device) -> Result<RotaryEmbedding> {
        let inv = RotaryEmbedding::inv_freq(theta, rot_dim)?;
        RotaryEmbedding::from_inv_freq(&inv, max_positions, style, device)
    }

    /// `inv_freq[i] = 1 / theta^(2i / rot_dim)` for `i < rot_dim / 2`, in f32
    /// as HF computes it. `rot_dim` must be even and positive, `theta`
    /// finite and above 0.
    pub fn inv_freq(theta: f64, rot_dim: usize) -> Result<Vec<f32>> {
        if rot_dim == 0 || !rot_dim.is_multiple_of(2) {
            return Err(Error::invalid("rotary", format!("the rotated width must be even and positive, got {rot_dim}")));
        }
        if !(theta.is_finite() && theta > 0.0) {
            return Err(Error::invalid("rotary", format!("theta must be finite and above 0, got {theta}")));
        }
        let base = theta as f32;
        Ok((0..rot_dim / 2)
            .map(|i| {
                let exponent = (2 * i) as f32 / rot_dim as f32;
                let power = (base as f64).powf(exponent as f64) as f32;
                1.0f32 / power
            })
            .collect())
    }

    /// Tables from given inverse frequencies (for scaled variants: NTK,
    /// Llama 3, YaRN... computed by the model), `rot_dim = 2 * inv_freq.len()`.
    pub fn from_inv_freq(inv_freq: &[f32], max_positions: usize, style: RopeStyle, device: &Device) -> Result<RotaryEmbedding> {
        if inv_freq.is_empty() {
            return Err(Error::invalid("rotary", "no frequencies given"));
        }
        let half = inv_freq.len();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for &f in inv_freq {
                let angle = (p as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let cos = Tensor::from_vec(cos, (max_positions, half), device)?;
        let sin = Tensor::from_vec(sin, (max_positions, half), device)?;
        Ok(RotaryEmbedding { cos, sin, style })
    }

    /// Tables given directly, both `[max_positions, rot_dim / 2]`, any float dtype.
    pub fn from_tables(cos: Tensor, sin: Tensor, style: RopeStyle) -> Result<RotaryEmbedding> {
        if cos.rank() != 2 || cos.dims() != sin.dims() || cos.dims()[1] == 0 {
            return Err(Error::invalid(
                "rotary",
                format!("cos {:?} and sin {:?} must both be [positions, rot_dim / 2]", cos.dims(), sin.dims()),
            ));
        }
        if !cos.dtype().is_float() || cos.dtype() != sin.dtype() {
            return Err(Error::invalid("rotary", format!("tables must share a float dtype, got {} and {}", cos.dtype(), sin.dtype())));
        }
        Ok(RotaryEmbedding { cos, sin, style })
    }

    /// The cos table `[max_positions, rot_dim / 2]`.
    pub fn cos(&self) -> &Tensor {
        &self.cos
    }

    /// The sin table `[max_positions, rot_dim / 2]`.
    pub fn sin(&self) -> &Tensor {
        &self.sin
    }

    /// How feature pairs are formed.
    pub fn style(&self) -> RopeStyle {
        self.style
    }

    /// Number of rotated features per head.
    pub fn rot_dim(&self) -> usize {
        2 * self.cos.dims()[1]
    }

    /// Number of positions the tables cover.
    pub fn max_positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// Rows `offset..offset + len` of both tables in `dtype`; an error when
    /// they run past the tables.
    pub fn tables(&self, offset: usize, len: usize, dtype: DType) -> Result<(Tensor, Tensor)> {
        let end = offset.checked_add(len).filter(|&e| e <= self.max_positions()).ok_or_else(|| {
            Error::invalid(
                "rotary",
                format!("positions {offset}..{} exceed the {} precomputed positions", offset.saturating_add(len), self.max_positions()),
            )
        })?;
        let cos = self.cos.narrow(0, offset, end - offset)?.to_dtype(dtype)?;
        let sin = self.sin.narrow(0, offset, end - offset)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }

    /// Rotates `x [..., t, d]` (any float dtype, `d >= rot_dim`) for
    /// positions `offset..offset + t`.
    pub fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        if x.rank() < 2 {
            return Err(Error::invalid("rotary", format!("input must be [..., t, d], got shape {:?}", x.dims())));
        }
        let (t, d) = (x.dims()[x.rank() - 2], x.dims()[x.rank() - 1]);
        if d < self.rot_dim() {
            return Err(Error::invalid("rotary", format!("head dim {d} is smaller than the rotated width {}", self.rot_dim())));
        }
        let (cos, sin) = self.tables(offset, t, x.dtype())?;
        Ok(x.rope(&cos, &sin, self.style)?)
    }
}

//! Normalisation: layer norm and RMS norm over the last dim, group norm
//! over channel groups.

use crate::{Error, Module, Result, VarBuilder};
use tessera_tensor::Tensor;

/// Layer norm over the last dim: `(x - mean) / sqrt(var + eps) * w + b`
/// (biased variance), as PyTorch's `nn.LayerNorm`.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    eps: f64,
}

/// A 1-D parameter of `dim` entries, or an error naming `op`.
fn check_vector(op: &'static str, t: Option<&Tensor>, what: &str) -> Result<Option<usize>> {
    match t {
        Some(t) if t.rank() != 1 => Err(Error::invalid(op, format!("{what} must be 1-D, got shape {:?}", t.dims()))),
        Some(t) => Ok(Some(t.dims()[0])),
        None => Ok(None),
    }
}

impl LayerNorm {
    /// A layer from its (optional) affine parameters, both `[dim]`.
    pub fn new(weight: Option<Tensor>, bias: Option<Tensor>, eps: f64) -> Result<LayerNorm> {
        let w = check_vector("layer_norm", weight.as_ref(), "weight")?;
        let b = check_vector("layer_norm", bias.as_ref(), "bias")?;
        if let (Some(w), Some(b)) = (w, b) {
            if w != b {
                return Err(Error::invalid("layer_norm", format!("weight [{w}] and bias [{b}] differ in size")));
            }
        }
        Ok(LayerNorm { weight, bias, eps })
    }

    /// Loads `weight` and `bias`, both `[dim]`.
    pub fn load(vb: &VarBuilder, dim: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm { weight: Some(vb.get(dim, "weight")?), bias: Some(vb.get(dim, "bias")?), eps })
    }

    /// Loads `weight` `[dim]` only (a layer norm without bias).
    pub fn load_no_bias(vb: &VarBuilder, dim: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm { weight: Some(vb.get(dim, "weight")?), bias: None, eps })
    }

    /// The scale, if any.
    pub fn weight(&self) -> Option<&Tensor> {
        self.weight.as_ref()
    }

    /// The shift, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The epsilon added to the variance.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// Normalises `x [..., dim]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.layer_norm(self.weight.as_ref(), self.bias.as_ref(), self.eps)?)
    }

    /// `(norm(x + residual), x + residual)`: a pre-LN block's residual add
    /// and the next norm, fused where the backend fuses them.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok(x.add_layer_norm(residual, self.weight.as_ref(), self.bias.as_ref(), self.eps)?)
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        LayerNorm::forward(self, x)
    }
}

/// RMS norm over the last dim: `x / sqrt(mean(x^2) + eps) * w`, as HF's
/// `LlamaRMSNorm` (computed in f32 for half-precision inputs).
#[derive(Clone, Debug)]
pub struct RmsNorm {
    weight: Option<Tensor>,
    eps: f64,
}

impl RmsNorm {
    /// A layer from its (optional) scale `[dim]`.
    pub fn new(weight: Option<Tensor>, eps: f64) -> Result<RmsNorm> {
        check_vector("rms_norm", weight.as_ref(), "weight")?;
        Ok(RmsNorm { weight, eps })
    }

    /// Loads `weight` `[dim]`.
    pub fn load(vb: &VarBuilder, dim: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm { weight: Some(vb.get(dim, "weight")?), eps })
    }

    /// The scale, if any.
    pub fn weight(&self) -> Option<&Tensor> {
        self.weight.as_ref()
    }

    /// The epsilon added to the mean square.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// Normalises `x [..., dim]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.rms_norm(self.weight.as_ref(), self.eps)?)
    }

    /// `(norm(x + residual), x + residual)`, fused where the backend fuses
    /// them (a Llama block's residual add and the next norm).
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok(x.add_rms_norm(residual, self.weight.as_ref(), self.eps)?)
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        RmsNorm::forward(self, x)
    }
}

/// Group norm of `[n, c, ...]` over `groups` groups of channels, with a
/// per-channel affine, as PyTorch's `nn.GroupNorm` (the VQ and MAGVIT
/// autoencoders' norm).
#[derive(Clone, Debug)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

impl GroupNorm {
    /// Loads `weight` and `bias` `[channels]`; `groups` must divide
    /// `channels`.
    pub fn load(vb: &VarBuilder, groups: usize, channels: usize, eps: f64) -> Result<GroupNorm> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(Error::invalid("group_norm", format!("{groups} groups do not divide {channels} channels ({})", vb.prefix())));
        }
        Ok(GroupNorm { weight: vb.get(channels, "weight")?, bias: vb.get(channels, "bias")?, groups, eps })
    }

    /// Channels normalised.
    pub fn channels(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Normalises `x [n, channels, ...]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() < 2 || x.dims()[1] != self.channels() {
            return Err(Error::invalid("group_norm", format!("input {:?} does not have {} channels in dim 1", x.dims(), self.channels())));
        }
        Ok(x.group_norm(self.groups, Some(&self.weight), Some(&self.bias), self.eps)?)
    }
}

impl Module for GroupNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        GroupNorm::forward(self, x)
    }
}

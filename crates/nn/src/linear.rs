//! The affine layer `y = x W^T + b` with PyTorch's weight layout.

use crate::{Activation, Error, Module, Result, VarBuilder};
use tessera_tensor::Tensor;

/// `y = x W^T + b`, with `W` `[out, in]` (PyTorch `nn.Linear` layout) and an
/// optional bias `[out]`. Inputs may have any rank `[..., in]`.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// A layer from its tensors; checks that `weight` is 2-D and `bias` is
    /// `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        if weight.rank() != 2 {
            return Err(Error::invalid("linear", format!("weight must be [out, in], got shape {:?}", weight.dims())));
        }
        if let Some(b) = &bias {
            if b.dims() != [weight.dims()[0]] {
                return Err(Error::invalid("linear", format!("bias {:?} does not fit weight {:?}", b.dims(), weight.dims())));
            }
        }
        Ok(Linear { weight, bias })
    }

    /// Loads `weight` `[out_dim, in_dim]` and, when `bias`, `bias`
    /// `[out_dim]` under `vb`'s prefix (e.g. `...self_attn.q_proj`).
    pub fn load(vb: &VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Linear> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias { Some(vb.get(out_dim, "bias")?) } else { None };
        Ok(Linear { weight, bias })
    }

    /// Like [`load`](Linear::load), taking the bias when the source has one.
    pub fn load_opt_bias(vb: &VarBuilder, in_dim: usize, out_dim: usize) -> Result<Linear> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = vb.get_opt(out_dim, "bias")?;
        Ok(Linear { weight, bias })
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Input features.
    pub fn in_dim(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Output features.
    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }

    /// `x [..., in] -> [..., out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, Activation::Identity)
    }

    /// `act(x W^T + b)`: with a bias, the activation runs in the product's
    /// epilogue where the backend fuses it (one pass over the output).
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        if x.rank() == 0 || x.dims()[x.rank() - 1] != self.in_dim() {
            return Err(Error::invalid(
                "linear",
                format!("input of shape {:?} does not end in {} features (weight {:?})", x.dims(), self.in_dim(), self.weight.dims()),
            ));
        }
        let w = self.weight.t()?;
        match &self.bias {
            Some(b) => Ok(x.matmul_bias_act(&w, b, act.unary_op())?),
            None => act.apply(&x.matmul(&w)?),
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Linear::forward(self, x)
    }
}

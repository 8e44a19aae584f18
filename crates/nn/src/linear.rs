//! The affine layer `y = x W^T + b` with PyTorch's weight layout.

use crate::{Activation, Error, Module, Result, RowBlocks, VarBuilder};
use tessera_tensor::Tensor;

/// `y = x W^T + b`, with `W` `[out, in]` (PyTorch `nn.Linear` layout) and an
/// optional bias `[out]`. Inputs may have any rank `[..., in]`. A weight
/// larger than one device buffer is held as row blocks (see [`RowBlocks`]).
#[derive(Clone, Debug)]
pub struct Linear {
    weight: RowBlocks,
    bias: Option<Tensor>,
}

impl Linear {
    /// A layer from its tensors; checks that `weight` is 2-D and `bias` is
    /// `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        if weight.rank() != 2 {
            return Err(Error::invalid("linear", format!("weight must be [out, in], got shape {:?}", weight.dims())));
        }
        Linear::from_rows(RowBlocks::new(weight)?, bias)
    }

    /// A layer whose weight `[out, in]` is held as row blocks, e.g. an
    /// output head tied to an [`Embedding`](crate::Embedding)'s
    /// [`rows`](crate::Embedding::rows).
    pub fn from_rows(weight: RowBlocks, bias: Option<Tensor>) -> Result<Linear> {
        if let Some(b) = &bias {
            if b.dims() != [weight.rows()] {
                return Err(Error::invalid("linear", format!("bias {:?} does not fit weight {:?}", b.dims(), weight.dims())));
            }
        }
        Ok(Linear { weight, bias })
    }

    /// Loads `weight` `[out_dim, in_dim]` and, when `bias`, `bias`
    /// `[out_dim]` under `vb`'s prefix (e.g. `...self_attn.q_proj`).
    pub fn load(vb: &VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Linear> {
        let weight = RowBlocks::load(vb, out_dim, in_dim, "weight")?;
        let bias = if bias { Some(vb.get(out_dim, "bias")?) } else { None };
        Ok(Linear { weight, bias })
    }

    /// Like [`load`](Linear::load), taking the bias when the source has one.
    pub fn load_opt_bias(vb: &VarBuilder, in_dim: usize, out_dim: usize) -> Result<Linear> {
        let weight = RowBlocks::load(vb, out_dim, in_dim, "weight")?;
        let bias = vb.get_opt(out_dim, "bias")?;
        Ok(Linear { weight, bias })
    }

    /// The weight `[out, in]` as one tensor (an error when it is held in
    /// several row blocks; see [`rows`](Linear::rows)).
    pub fn weight(&self) -> Result<&Tensor> {
        self.weight.whole("linear")
    }

    /// The weight as row blocks.
    pub fn rows(&self) -> &RowBlocks {
        &self.weight
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Input features.
    pub fn in_dim(&self) -> usize {
        self.weight.cols()
    }

    /// Output features.
    pub fn out_dim(&self) -> usize {
        self.weight.rows()
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
        self.weight.matmul_t(x, self.bias.as_ref(), act)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Linear::forward(self, x)
    }
}

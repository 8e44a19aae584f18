//! 2-D convolution with PyTorch's weight layout.

use crate::{Error, Module, Result, VarBuilder};
use tessera_tensor::{Conv2dParams, Tensor};

/// A 2-D convolution: weight `[out, in / groups, kh, kw]`, optional bias
/// `[out]`, input `[n, in, h, w]`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    params: Conv2dParams,
}

impl Conv2d {
    /// A layer from its tensors; checks ranks, the bias size and the groups.
    pub fn new(weight: Tensor, bias: Option<Tensor>, params: Conv2dParams) -> Result<Conv2d> {
        if weight.rank() != 4 {
            return Err(Error::invalid("conv2d", format!("weight must be [out, in/groups, kh, kw], got shape {:?}", weight.dims())));
        }
        let out = weight.dims()[0];
        if params.groups == 0 || !out.is_multiple_of(params.groups) {
            return Err(Error::invalid("conv2d", format!("{} groups do not divide {out} output channels", params.groups)));
        }
        if let Some(b) = &bias {
            if b.dims() != [out] {
                return Err(Error::invalid("conv2d", format!("bias {:?} does not fit weight {:?}", b.dims(), weight.dims())));
            }
        }
        Ok(Conv2d { weight, bias, params })
    }

    /// Loads `weight` `[out_channels, in_channels / groups, kh, kw]` and,
    /// when `bias`, `bias` `[out_channels]`.
    pub fn load(
        vb: &VarBuilder,
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        params: Conv2dParams,
        bias: bool,
    ) -> Result<Conv2d> {
        let g = params.groups;
        if g == 0 || !in_channels.is_multiple_of(g) || !out_channels.is_multiple_of(g) {
            return Err(Error::invalid(
                "conv2d",
                format!("{g} groups do not divide {in_channels} input and {out_channels} output channels ({})", vb.prefix()),
            ));
        }
        let weight = vb.get(vec![out_channels, in_channels / g, kernel.0, kernel.1], "weight")?;
        let bias = if bias { Some(vb.get(out_channels, "bias")?) } else { None };
        Ok(Conv2d { weight, bias, params })
    }

    /// The weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Stride, padding, dilation and groups.
    pub fn params(&self) -> &Conv2dParams {
        &self.params
    }

    /// `x [n, in, h, w] -> [n, out, oh, ow]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.conv2d(&self.weight, self.bias.as_ref(), &self.params)?)
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Conv2d::forward(self, x)
    }
}

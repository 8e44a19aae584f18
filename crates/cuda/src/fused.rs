//! Fused chains of a transformer block, one launch each on a CUDA device:
//! `act(x + bias)` after a linear layer, and the residual add followed by a
//! norm (`h = x + residual; y = norm(h)`, returning both). On any other
//! device they run as the equivalent composition of core ops, so callers
//! need not care where the tensors live.

use crate::memory::CudaStorage;
use crate::ops::{fused as kernels, norm::NormArgs, Ctx};
use std::sync::Arc;
use tessera_tensor::{Error, Layout, Result, Tensor, UnaryOp};

fn check(op: &'static str, x: &Tensor, other: &Tensor, shape: &[usize]) -> Result<()> {
    if !x.device().same(other.device()) {
        return Err(Error::DeviceMismatch { op, lhs: x.device().name(), rhs: other.device().name() });
    }
    if x.dtype() != other.dtype() {
        return Err(Error::DTypeMismatch { op, lhs: x.dtype(), rhs: other.dtype() });
    }
    if !x.dtype().is_compute_float() {
        return Err(Error::UnsupportedDType { op, dtype: x.dtype() });
    }
    if other.dims() != shape {
        return Err(Error::ShapeMismatch { op, lhs: x.dims().to_vec(), rhs: other.dims().to_vec() });
    }
    Ok(())
}

fn last_dim(op: &'static str, x: &Tensor) -> Result<usize> {
    x.dims().last().copied().ok_or_else(|| Error::InvalidArgument { op, msg: "needs at least one dim".into() })
}

fn tensor(s: CudaStorage, shape: &[usize], like: &Tensor) -> Result<Tensor> {
    Tensor::from_storage(Arc::new(s), Layout::contiguous(shape), like.device().clone())
}

/// `act(x + bias)` with `bias` of the last dim's size; `act` None adds only.
pub fn bias_act(x: &Tensor, bias: &Tensor, act: Option<UnaryOp>) -> Result<Tensor> {
    let op = "bias_act";
    let n = last_dim(op, x)?;
    check(op, x, bias, &[n])?;
    match crate::backend_of(x.device()) {
        Some(b) => tensor(kernels::bias_act(&Ctx { dev: b.device() }, x.view(), bias.view(), act)?, x.dims(), x),
        None => {
            let y = x.add(bias)?;
            act.map_or(Ok(y.clone()), |a| y.unary(a))
        }
    }
}

/// `(layer_norm(x + residual), x + residual)`.
pub fn add_layer_norm(x: &Tensor, residual: &Tensor, w: Option<&Tensor>, b: Option<&Tensor>, eps: f64) -> Result<(Tensor, Tensor)> {
    add_norm("add_layer_norm", x, residual, w, b, eps, false)
}

/// `(rms_norm(x + residual), x + residual)`.
pub fn add_rms_norm(x: &Tensor, residual: &Tensor, w: Option<&Tensor>, eps: f64) -> Result<(Tensor, Tensor)> {
    add_norm("add_rms_norm", x, residual, w, None, eps, true)
}

fn add_norm(
    op: &'static str,
    x: &Tensor,
    res: &Tensor,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    eps: f64,
    rms: bool,
) -> Result<(Tensor, Tensor)> {
    let n = last_dim(op, x)?;
    check(op, x, res, x.dims())?;
    for p in [w, b].into_iter().flatten() {
        check(op, x, p, &[n])?;
    }
    let Some(backend) = crate::backend_of(x.device()) else {
        let h = x.add(res)?;
        let y = if rms { h.rms_norm(w, eps)? } else { h.layer_norm(w, b, eps)? };
        return Ok((y, h));
    };
    let p = NormArgs { x: x.view(), res: Some(res.view()), w: w.map(|t| t.view()), b: b.map(|t| t.view()), eps, rms };
    let (y, h) = kernels::add_norm(&Ctx { dev: backend.device() }, &p)?;
    Ok((tensor(y, x.dims(), x)?, tensor(h, x.dims(), x)?))
}

//! Fused elementwise chains of a transformer block that the `Backend` trait
//! has no op for: bias + activation, and residual add + norm. Public through
//! [`crate::fused`].

use super::norm::{norm, NormArgs};
use super::{check_float, launch_map, view_ptr, Ctx};
use crate::compile::NORM;
use crate::device::Args;
use crate::layout::kernel_layouts;
use crate::memory::CudaStorage;
use tessera_tensor::{Result, UnaryOp, View};

/// `act(x + bias)`, bias along the last dim; `act` None adds only.
pub fn bias_act(cx: &Ctx, x: View, bias: View, act: Option<UnaryOp>) -> Result<CudaStorage> {
    check_float("bias_act", x.dtype())?;
    let total = x.layout.numel();
    let n = x.layout.shape().last().copied().unwrap_or(1);
    let out = CudaStorage::alloc(cx.dev, x.dtype(), total)?;
    if total == 0 {
        return Ok(out);
    }
    let l = kernel_layouts("bias_act", &[x.layout])?[0];
    let code = act.map_or(-1, |op| UnaryOp::ALL.iter().position(|&o| o == op).expect("in ALL") as i32);
    let f = cx.dev.function(&NORM, &[], &format!("bias_act_{}", x.dtype()))?;
    let mut a = Args::new();
    a.ptr(out.ptr()).ptr(view_ptr(&x)?).push(l).ptr(view_ptr(&bias)?).push(bias.layout.strides()[0] as i64);
    a.push(total as i64).push(n as i64).push(code);
    launch_map(cx, f, total, &mut a)?;
    Ok(out)
}

/// `(norm(x + res), x + res)` in one pass.
pub fn add_norm(cx: &Ctx, p: &NormArgs) -> Result<(CudaStorage, CudaStorage)> {
    let (normed, sum) = norm(cx, p)?;
    Ok((normed, sum.expect("a residual was given")))
}

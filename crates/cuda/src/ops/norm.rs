//! Host side of kernels/norm.cu: softmax, layer norm, RMS norm (each norm
//! optionally after a residual add), group norm, rope.

use super::{check_float, launch_map, view_ptr, Ctx};
use crate::compile::NORM;
use crate::device::{Args, Grid};
use crate::layout::{kernel_layouts, Strided};
use crate::memory::CudaStorage;
use tessera_tensor::{Result, RopeStyle, View};

/// How a row kernel splits its rows: threads per row, threads per block,
/// whether rows are cached in shared memory, and the launch geometry.
pub struct RowPlan {
    pub tpr: i32,
    pub cached: i32,
    pub grid: Grid,
}

impl RowPlan {
    /// Whether rows of `n` elements of `dtype` at `ptr`, dense (`contig`),
    /// take the 16-byte load/store path (which needs the rows cached).
    fn vec(&self, ptr: u64, n: usize, dtype: tessera_tensor::DType, contig: bool) -> i32 {
        (self.cached != 0 && contig && (n * dtype.size_in_bytes()).is_multiple_of(16) && ptr.is_multiple_of(16)) as i32
    }
}

/// A warp per row up to 1024 elements (8 rows per block), else a block per
/// row; rows cached as f32 in shared memory when they fit.
pub fn row_plan(cx: &Ctx, rows: usize, n: usize) -> RowPlan {
    let (threads, tpr) = if n <= 1024 {
        (256u32, 32u32)
    } else if n <= 8192 {
        (512, 512)
    } else {
        (1024, 1024)
    };
    let groups = (threads / tpr) as usize;
    let smem = groups * n * 4;
    // Leave room for the kernels' static scratch.
    let cached = smem + 1024 <= cx.dev.max_smem_optin as usize;
    let blocks = rows.div_ceil(groups).clamp(1, cx.dev.sm_count as usize * 16) as u32;
    RowPlan { tpr: tpr as i32, cached: cached as i32, grid: Grid::new((blocks, 1, 1), threads, if cached { smem as u32 } else { 0 }) }
}

/// Rows of the last dim: (kernel layout, rows, row length).
pub fn rows_of(op: &'static str, x: &View) -> Result<(Strided, usize, usize)> {
    let n = x.layout.shape().last().copied().unwrap_or(1);
    let rows = x.layout.numel().checked_div(n).unwrap_or(0);
    Ok((kernel_layouts(op, &[x.layout])?[0], rows, n))
}

pub fn softmax_last(cx: &Ctx, x: View, log: bool) -> Result<CudaStorage> {
    check_float("softmax", x.dtype())?;
    let (l, rows, n) = rows_of("softmax", &x)?;
    let out = CudaStorage::alloc(cx.dev, x.dtype(), rows * n)?;
    if rows * n == 0 {
        return Ok(out);
    }
    let plan = row_plan(cx, rows, n);
    let f = cx.dev.function(&NORM, &[], &format!("softmax_{}", x.dtype()))?;
    let mut a = Args::new();
    a.ptr(out.ptr()).ptr(view_ptr(&x)?).push(l).push(rows as i64).push(n as i64).push(l.is_contiguous() as i32);
    a.push(log as i32).push(plan.tpr).push(plan.cached).push(plan.vec(view_ptr(&x)?, n, x.dtype(), l.is_contiguous()));
    cx.dev.launch(f, plan.grid, &mut a)?;
    Ok(out)
}

/// A norm over the last dim, optionally of `x + res` (then also returned).
pub struct NormArgs<'a> {
    pub x: View<'a>,
    pub res: Option<View<'a>>,
    pub w: Option<View<'a>>,
    pub b: Option<View<'a>>,
    pub eps: f64,
    pub rms: bool,
}

/// The norm of `x` (or `x + res`) and, with a residual, the sum.
pub fn norm(cx: &Ctx, p: &NormArgs) -> Result<(CudaStorage, Option<CudaStorage>)> {
    let op = if p.rms { "rms_norm" } else { "layer_norm" };
    check_float(op, p.x.dtype())?;
    let (l, rows, n) = rows_of(op, &p.x)?;
    let out = CudaStorage::alloc(cx.dev, p.x.dtype(), rows * n)?;
    let sum = match p.res {
        Some(_) => Some(CudaStorage::alloc(cx.dev, p.x.dtype(), rows * n)?),
        None => None,
    };
    if rows * n == 0 {
        return Ok((out, sum));
    }
    let lr = match &p.res {
        Some(r) => kernel_layouts(op, &[r.layout])?[0],
        None => Strided::default(),
    };
    let ((wp, ws), (bp, bs)) = (param(&p.w)?, param(&p.b)?);
    let plan = row_plan(cx, rows, n);
    let f = cx.dev.function(&NORM, &[], &format!("norm_{}", p.x.dtype()))?;
    let mut a = Args::new();
    a.ptr(out.ptr()).ptr(sum.as_ref().map_or(0, |s| s.ptr())).ptr(view_ptr(&p.x)?).push(l);
    a.ptr(p.res.as_ref().map(view_ptr).transpose()?.unwrap_or(0)).push(lr);
    a.ptr(wp).push(ws).ptr(bp).push(bs).push(rows as i64).push(n as i64).push(l.is_contiguous() as i32);
    // The residual path stays element-wise (it also writes the sum).
    let vec = if p.res.is_some() { 0 } else { plan.vec(view_ptr(&p.x)?, n, p.x.dtype(), l.is_contiguous()) };
    a.push(p.eps as f32).push(p.rms as i32).push(plan.tpr).push(plan.cached).push(vec);
    cx.dev.launch(f, plan.grid, &mut a)?;
    Ok((out, sum))
}

/// A weight or bias operand: its address and element stride (0, 0 for none).
fn param(v: &Option<View>) -> Result<(u64, i64)> {
    match v {
        Some(v) => Ok((view_ptr(v)?, v.layout.strides()[0] as i64)),
        None => Ok((0, 0)),
    }
}

/// Group norm of `x` `[n, c, spatial...]`: one row per (image, group).
pub fn group_norm(cx: &Ctx, x: View, groups: usize, w: Option<View>, b: Option<View>, eps: f64) -> Result<CudaStorage> {
    let op = "group_norm";
    check_float(op, x.dtype())?;
    let total = x.layout.numel();
    let out = CudaStorage::alloc(cx.dev, x.dtype(), total)?;
    if total == 0 {
        return Ok(out);
    }
    let shape = x.layout.shape();
    let spatial: usize = shape[2..].iter().product();
    let rows = shape[0] * groups;
    let n = total / rows;
    let l = kernel_layouts(op, &[x.layout])?[0];
    let ((wp, ws), (bp, bs)) = (param(&w)?, param(&b)?);
    let plan = row_plan(cx, rows, n);
    let f = cx.dev.function(&NORM, &[], &format!("group_norm_{}", x.dtype()))?;
    let mut a = Args::new();
    a.ptr(out.ptr()).ptr(view_ptr(&x)?).push(l).ptr(wp).push(ws).ptr(bp).push(bs);
    a.push(rows as i64).push(n as i64).push(groups as i64).push(spatial as i64).push(l.is_contiguous() as i32).push(eps as f32);
    a.push(plan.tpr).push(plan.cached).push(plan.vec(view_ptr(&x)?, n, x.dtype(), l.is_contiguous()));
    cx.dev.launch(f, plan.grid, &mut a)?;
    Ok(out)
}

pub fn rope(cx: &Ctx, x: View, cos: View, sin: View, style: RopeStyle) -> Result<CudaStorage> {
    check_float("rope", x.dtype())?;
    let shape = x.layout.shape();
    let (t, d) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let half = cos.layout.shape()[1];
    let total = x.layout.numel();
    let out = CudaStorage::alloc(cx.dev, x.dtype(), total)?;
    if total == 0 {
        return Ok(out);
    }
    let l = kernel_layouts("rope", &[x.layout])?[0];
    let f = cx.dev.function(&NORM, &[], &format!("rope_{}", x.dtype()))?;
    let (cs, ss) = (cos.layout.strides(), sin.layout.strides());
    let mut a = Args::new();
    a.ptr(out.ptr()).ptr(view_ptr(&x)?).push(l);
    a.ptr(view_ptr(&cos)?).push(cs[0] as i64).push(cs[1] as i64).ptr(view_ptr(&sin)?).push(ss[0] as i64).push(ss[1] as i64);
    a.push(total as i64).push(t as i64).push(d as i64).push(half as i64).push((style == RopeStyle::Interleaved) as i32);
    launch_map(cx, f, total, &mut a)?;
    Ok(out)
}

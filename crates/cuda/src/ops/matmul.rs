//! Host side of kernels/matmul.cu: picks GEMV, the tensor-core GEMM (f16,
//! bf16) or the SIMT GEMM (f32), prepares operands the tensor-core kernel
//! cannot read in place, splits large batches over launches, and fills the
//! epilogue (bias, activation) of matmul, matmul_bias and conv2d.

use super::elementwise::full;
use super::index::pack_pad;
use super::{view_ptr, Ctx};
use crate::codes;
use crate::compile::MATMUL;
use crate::device::{Args, Grid};
use crate::layout::{merge_dims, Strided};
use crate::memory::CudaStorage;
use tessera_tensor::{DType, Error, Result, UnaryOp, View};

/// Most blocks a launch takes along grid y and z.
const MAX_GRID_Z: usize = 65535;

/// Batch dims with two operands' strides, as kernel layouts (merged together).
fn batch_layouts(shape: &[usize], sa: &[usize], sb: &[usize]) -> Result<(Strided, Strided)> {
    let (dims, st) = merge_dims(shape, &[sa, sb]);
    Ok((Strided::new("matmul", &dims, &st[0])?, Strided::new("matmul", &dims, &st[1])?))
}

/// The batch layouts of `lhs` and `rhs` as given.
fn view_batches(lhs: &View, rhs: &View) -> Result<(Strided, Strided)> {
    let r = lhs.layout.rank();
    batch_layouts(&lhs.layout.shape()[..r - 2], &lhs.layout.strides()[..r - 2], &rhs.layout.strides()[..r - 2])
}

/// One tensor-core operand: its address, leading dim, whether it is stored
/// k-major, its batch strides, and the buffer it was packed into (if any).
struct Operand {
    ptr: u64,
    ld: usize,
    kmajor: bool,
    batch_strides: Vec<usize>,
    _packed: Option<CudaStorage>,
}

/// A `rows x k` operand (the view's last two dims are (rows, k), or
/// (k, rows) when `rows_dim_last`) ready for cp.async: in place when its
/// layout allows (any leading stride, 0 for broadcast rows included), else
/// packed k-major with k padded to a multiple of 8.
fn tc_operand(cx: &Ctx, v: View, rows_dim_last: bool) -> Result<Operand> {
    let r = v.layout.rank();
    let st = v.layout.strides();
    let shape = v.layout.shape();
    // (rows, k) extents and strides.
    let (rows, k, s_rows, s_k) =
        if rows_dim_last { (shape[r - 1], shape[r - 2], st[r - 1], st[r - 2]) } else { (shape[r - 2], shape[r - 1], st[r - 2], st[r - 1]) };
    let batch_ok = st[..r - 2].iter().zip(&shape[..r - 2]).all(|(&s, &d)| d == 1 || s % 8 == 0);
    let aligned = v.layout.offset().is_multiple_of(8) && batch_ok;
    if aligned && s_k == 1 && k % 8 == 0 && (s_rows % 8 == 0 || rows == 1) {
        return Ok(Operand { ptr: view_ptr(&v)?, ld: s_rows, kmajor: true, batch_strides: st[..r - 2].to_vec(), _packed: None });
    }
    if aligned && s_rows == 1 && rows % 8 == 0 && (s_k % 8 == 0 || k == 1) {
        return Ok(Operand { ptr: view_ptr(&v)?, ld: s_k, kmajor: false, batch_strides: st[..r - 2].to_vec(), _packed: None });
    }
    // Pack as [batch..., rows, k_pad].
    let kpad = k.div_ceil(8) * 8;
    let mut perm: Vec<usize> = (0..r).collect();
    if rows_dim_last {
        perm.swap(r - 2, r - 1);
    }
    let lv = v.layout.permute(&perm)?;
    let packed = pack_pad(cx, View { storage: v.storage, layout: &lv }, kpad)?;
    let batch_shape = &shape[..r - 2];
    let mut bs = vec![0; r - 2];
    let mut acc = rows * kpad;
    for d in (0..r - 2).rev() {
        bs[d] = acc;
        acc *= batch_shape[d];
    }
    Ok(Operand { ptr: packed.ptr(), ld: kpad, kmajor: true, batch_strides: bs, _packed: Some(packed) })
}

/// `struct Epilogue` of kernels/matmul.cu: what the product kernels add to
/// and apply on their f32 accumulators before rounding once.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epilogue {
    bias: u64,
    bias_group: i64,
    bias_sm: i64,
    bias_sn: i64,
    groups: i32,
    act: i32,
}

impl Epilogue {
    /// The plain product.
    pub const NONE: Epilogue = Epilogue { bias: 0, bias_group: 0, bias_sm: 0, bias_sn: 0, groups: 1, act: codes::ACT_NONE };

    /// A layer: `bias` `[n]` added to every output row, then `act`.
    pub fn layer(bias: &View, act: Option<UnaryOp>) -> Result<Epilogue> {
        let stride = bias.layout.strides().first().copied().unwrap_or(0) as i64;
        Ok(Epilogue { bias: view_ptr(bias)?, bias_sn: stride, act: codes::activation(act), ..Epilogue::NONE })
    }

    /// A grouped convolution: batch entry z is (image, group z % groups),
    /// output row m is channel (z % groups) * rows + m, whose bias it adds.
    pub fn conv(bias: Option<&View>, groups: usize, rows: usize) -> Result<Epilogue> {
        let Some(bias) = bias else { return Ok(Epilogue { groups: groups as i32, ..Epilogue::NONE }) };
        let stride = bias.layout.strides().first().copied().unwrap_or(0) as i64;
        Ok(Epilogue { bias: view_ptr(bias)?, bias_group: rows as i64 * stride, bias_sm: stride, groups: groups as i32, ..Epilogue::NONE })
    }
}

/// The product's sizes: (m, n, k) and the batch count, checked against
/// what the kernels' 32-bit sizes and grids take.
pub fn product_dims(op: &'static str, lhs: &View, rhs: &View) -> Result<((usize, usize, usize), usize)> {
    let r = lhs.layout.rank();
    let (m, k, n) = (lhs.layout.shape()[r - 2], lhs.layout.shape()[r - 1], rhs.layout.shape()[r - 1]);
    let batch: usize = lhs.layout.shape()[..r - 2].iter().product();
    if m.max(n).max(k) > i32::MAX as usize {
        return Err(Error::InvalidArgument { op, msg: format!("dims {m}x{k}x{n} exceed the kernels' 32-bit sizes") });
    }
    // Column tiles go on grid y (at most 65535 of 64 or 128 columns).
    if n.div_ceil(64) > MAX_GRID_Z {
        return Err(Error::InvalidArgument {
            op,
            msg: format!("{n} output columns exceed the kernels' grid ({} at most)", 64 * MAX_GRID_Z),
        });
    }
    Ok(((m, n, k), batch))
}

pub fn matmul(cx: &Ctx, lhs: View, rhs: View) -> Result<CudaStorage> {
    product(cx, "matmul", lhs, rhs, Epilogue::NONE)
}

/// `act(lhs @ rhs + bias)` in the kernels' epilogue; `None` (the core's
/// composition) for an empty inner dim, where no kernel runs.
pub fn matmul_bias(cx: &Ctx, lhs: View, rhs: View, bias: View, act: Option<UnaryOp>) -> Result<Option<CudaStorage>> {
    let r = lhs.layout.rank();
    if lhs.layout.shape()[r - 1] == 0 {
        return Ok(None);
    }
    product(cx, "matmul_bias", lhs, rhs, Epilogue::layer(&bias, act)?).map(Some)
}

fn product(cx: &Ctx, op: &'static str, lhs: View, rhs: View, ep: Epilogue) -> Result<CudaStorage> {
    let dt = lhs.dtype();
    if !dt.is_compute_float() {
        return Err(Error::UnsupportedDType { op, dtype: dt });
    }
    let ((m, n, k), batch) = product_dims(op, &lhs, &rhs)?;
    let total = batch * m * n;
    if total == 0 {
        return CudaStorage::alloc(cx.dev, dt, 0);
    }
    if k == 0 {
        return full(cx, dt, total, 0.0);
    }
    let out = CudaStorage::alloc(cx.dev, dt, total)?;
    product_into(cx, out.ptr(), lhs, rhs, (m, n, k), batch, ep)?;
    Ok(out)
}

/// Writes `act(lhs @ rhs + bias)` as a contiguous `[batch, m, n]` at `out`
/// (sizes from [`product_dims`], `k > 0`): GEMV for one row, the SIMT GEMM
/// for f32, the tensor-core GEMM for f16/bf16.
pub fn product_into(cx: &Ctx, out: u64, lhs: View, rhs: View, mnk: (usize, usize, usize), batch: usize, ep: Epilogue) -> Result<()> {
    if mnk.0 == 1 {
        gemv(cx, out, lhs, rhs, mnk.1, mnk.2, batch, ep)
    } else if lhs.dtype() == DType::F32 {
        gemm_f32(cx, out, lhs, rhs, mnk, batch, ep)
    } else {
        gemm_tc(cx, out, lhs, rhs, mnk, batch, ep)
    }
}

fn gemm_tc(cx: &Ctx, out: u64, lhs: View, rhs: View, (m, n, k): (usize, usize, usize), batch: usize, ep: Epilogue) -> Result<()> {
    let a = tc_operand(cx, lhs, false)?;
    let b = tc_operand(cx, rhs, true)?;
    let r = lhs.layout.rank();
    let batch_shape = &lhs.layout.shape()[..r - 2];
    let (ba, bb) = batch_layouts(batch_shape, &a.batch_strides, &b.batch_strides)?;
    // Large tiles when they alone fill the GPU.
    let large = m.div_ceil(128) * n.div_ceil(128) * batch >= cx.dev.sm_count as usize;
    let (tile, name) = if large { (128, "large") } else { (64, "small") };
    // The 4-stage pipeline's tiles; with an activation the epilogue stages
    // the f32 accumulators through the same memory, rows of tile + 8.
    let pipeline = 4 * (2 * tile) * 32 * 2;
    let staged = if ep.act != codes::ACT_NONE { tile * (tile + 8) * 4 } else { 0 };
    let smem = pipeline.max(staged);
    let f = cx.dev.function(
        &MATMUL,
        &[],
        &format!("gemm_tc_{name}_{}_{}_{}", lhs.dtype(), if a.kmajor { "k" } else { "m" }, if b.kmajor { "k" } else { "n" }),
    )?;
    for z0 in (0..batch).step_by(MAX_GRID_Z) {
        let zn = (batch - z0).min(MAX_GRID_Z);
        let mut args = Args::new();
        args.ptr(out).ptr(a.ptr).ptr(b.ptr).push(m as i32).push(n as i32).push(k as i32);
        args.push(a.ld as i64).push(b.ld as i64).push(ba).push(bb).push(z0 as i64).push(ep);
        let grid = Grid::new((m.div_ceil(tile) as u32, n.div_ceil(tile) as u32, zn as u32), 128, smem as u32);
        cx.dev.launch(f, grid, &mut args)?;
    }
    Ok(())
}

fn gemm_f32(cx: &Ctx, out: u64, lhs: View, rhs: View, (m, n, k): (usize, usize, usize), batch: usize, ep: Epilogue) -> Result<()> {
    let r = lhs.layout.rank();
    let (sa, sb) = (lhs.layout.strides(), rhs.layout.strides());
    let (ba, bb) = view_batches(&lhs, &rhs)?;
    let f = cx.dev.function(&MATMUL, &[], "gemm_f32")?;
    for z0 in (0..batch).step_by(MAX_GRID_Z) {
        let zn = (batch - z0).min(MAX_GRID_Z);
        let mut args = Args::new();
        args.ptr(out).ptr(view_ptr(&lhs)?).ptr(view_ptr(&rhs)?).push(m as i32).push(n as i32).push(k as i32);
        for s in [sa[r - 2], sa[r - 1], sb[r - 2], sb[r - 1]] {
            args.push(s as i64);
        }
        args.push(ba).push(bb).push(z0 as i64).push(ep);
        cx.dev.launch(f, Grid::new((m.div_ceil(64) as u32, n.div_ceil(64) as u32, zn as u32), 256, 0), &mut args)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn gemv(cx: &Ctx, out: u64, lhs: View, rhs: View, n: usize, k: usize, batch: usize, ep: Epilogue) -> Result<()> {
    let r = lhs.layout.rank();
    let (sa, sb) = (lhs.layout.strides(), rhs.layout.strides());
    let (sak, sbk, sbn) = (sa[r - 1], sb[r - 2], sb[r - 1]);
    let (ba, bb) = view_batches(&lhs, &rhs)?;
    let dt = lhs.dtype();
    let v = 16 / dt.size_in_bytes();
    let batch_aligned = |st: &[usize], shape: &[usize]| st[..r - 2].iter().zip(&shape[..r - 2]).all(|(&s, &d)| d == 1 || s % v == 0);
    let blocks_y = batch.min(MAX_GRID_Z) as u32;
    let mut args = Args::new();
    args.ptr(out).ptr(view_ptr(&lhs)?).push(sak as i64).ptr(view_ptr(&rhs)?).push(sbk as i64);
    if sbn == 1 && sbk != 1 {
        args.push(n as i32).push(k as i32).push(batch as i64).push(ba).push(bb).push(ep);
        let f = cx.dev.function(&MATMUL, &[], &format!("gemv_cols_{}", dt))?;
        let blocks = n.div_ceil(128).min(cx.dev.sm_count as usize * 8) as u32;
        return cx.dev.launch(f, Grid::new((blocks, blocks_y, 1), 128, 0), &mut args);
    }
    let vec = sbk == 1
        && sak == 1
        && k.is_multiple_of(v)
        && (sbn % v == 0 || n == 1)
        && lhs.layout.offset().is_multiple_of(v)
        && rhs.layout.offset().is_multiple_of(v)
        && batch_aligned(sa, lhs.layout.shape())
        && batch_aligned(sb, rhs.layout.shape());
    args.push(sbn as i64).push(n as i32).push(k as i32).push(batch as i64).push(vec as i32).push(ba).push(bb).push(ep);
    let f = cx.dev.function(&MATMUL, &[], &format!("gemv_rows_{}", dt))?;
    let blocks = n.div_ceil(8).min(cx.dev.sm_count as usize * 16) as u32;
    cx.dev.launch(f, Grid::new((blocks, blocks_y, 1), 256, 0), &mut args)
}

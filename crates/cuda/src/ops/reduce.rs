//! Host side of kernels/reduce.cu: reductions, arg-reductions, cumsum and
//! argsort over rows made by moving the reduced dims last.

use super::{view_ptr, Ctx};
use crate::compile::REDUCE;
use crate::device::{Args, Function, Grid};
use crate::layout::{kernel_layouts, Strided};
use crate::memory::CudaStorage;
use tessera_tensor::{ArgReduceOp, DType, Error, Layout, ReduceOp, Result, View};

/// Rows longer than this sort in global memory (`SORT_SMEM_MAX` in reduce.cu).
const SORT_SMEM_MAX: usize = 2048;

/// The view with `dims` moved last, as rows: (kernel layout, permutation,
/// row length, row count).
struct Rows {
    layout: Strided,
    perm: Vec<usize>,
    row_len: usize,
    rows: usize,
}

fn rows_of(op: &'static str, src: &View, dims: &[usize]) -> Result<Rows> {
    let rank = src.layout.rank();
    let perm: Vec<usize> = (0..rank).filter(|d| !dims.contains(d)).chain(dims.iter().copied()).collect();
    let l = src.layout.permute(&perm)?;
    let row_len: usize = dims.iter().map(|&d| src.layout.shape()[d]).product();
    let rows: usize = (0..rank).filter(|d| !dims.contains(d)).map(|d| src.layout.shape()[d]).product();
    Ok(Rows { layout: kernel_layouts(op, &[&l])?[0], perm, row_len, rows })
}

/// The output's row-major layout, permuted like the rows (where element
/// (r, j) of the rows lands in the output).
fn out_order(op: &'static str, shape: &[usize], perm: &[usize]) -> Result<Strided> {
    let l = Layout::contiguous(shape).permute(perm)?;
    Ok(kernel_layouts(op, &[&l])?[0])
}

/// One block per row (grid-stride), threads by row length.
fn row_grid(cx: &Ctx, rows: usize, row_len: usize) -> Grid {
    let threads = row_len.next_power_of_two().clamp(32, 256) as u32;
    let blocks = rows.clamp(1, cx.dev.sm_count as usize * 64) as u32;
    Grid::new((blocks, 1, 1), threads, 0)
}

fn func(cx: &Ctx, name: &str, dtype: DType) -> Result<Function> {
    cx.dev.function(&REDUCE, &[], &format!("{name}_{}", dtype))
}

fn check_numeric(op: &'static str, d: DType) -> Result<()> {
    if d.is_compute_float() || d.is_int() {
        Ok(())
    } else {
        Err(Error::UnsupportedDType { op, dtype: d })
    }
}

pub fn reduce(cx: &Ctx, op: ReduceOp, src: View, dims: &[usize]) -> Result<CudaStorage> {
    check_numeric(op.name(), src.dtype())?;
    let r = rows_of(op.name(), &src, dims)?;
    let out = CudaStorage::alloc(cx.dev, src.dtype(), r.rows)?;
    if r.rows == 0 {
        return Ok(out);
    }
    let code = crate::codes::reduce(op);
    let mut a = Args::new();
    a.ptr(out.ptr()).ptr(view_ptr(&src)?).push(r.layout).push(r.rows as i64).push(r.row_len as i64);
    a.push(r.layout.is_contiguous() as i32).push(code);
    cx.dev.launch(func(cx, "reduce", src.dtype())?, row_grid(cx, r.rows, r.row_len), &mut a)?;
    Ok(out)
}

pub fn arg_reduce(cx: &Ctx, op: ArgReduceOp, src: View, dim: usize) -> Result<CudaStorage> {
    check_numeric("arg_reduce", src.dtype())?;
    let r = rows_of("arg_reduce", &src, &[dim])?;
    let out = CudaStorage::alloc(cx.dev, DType::I64, r.rows)?;
    if r.rows == 0 || r.row_len == 0 {
        return Ok(out);
    }
    let mut a = Args::new();
    a.ptr(out.ptr()).ptr(view_ptr(&src)?).push(r.layout).push(r.rows as i64).push(r.row_len as i64);
    a.push(r.layout.is_contiguous() as i32).push((op == ArgReduceOp::ArgMax) as i32);
    cx.dev.launch(func(cx, "arg_reduce", src.dtype())?, row_grid(cx, r.rows, r.row_len), &mut a)?;
    Ok(out)
}

pub fn cumsum(cx: &Ctx, src: View, dim: usize) -> Result<CudaStorage> {
    check_numeric("cumsum", src.dtype())?;
    let r = rows_of("cumsum", &src, &[dim])?;
    let out = CudaStorage::alloc(cx.dev, src.dtype(), r.rows * r.row_len)?;
    if r.rows * r.row_len == 0 {
        return Ok(out);
    }
    let lo = out_order("cumsum", src.layout.shape(), &r.perm)?;
    let mut a = Args::new();
    a.ptr(out.ptr()).push(lo).ptr(view_ptr(&src)?).push(r.layout).push(r.rows as i64).push(r.row_len as i64);
    a.push(r.layout.is_contiguous() as i32);
    cx.dev.launch(func(cx, "cumsum", src.dtype())?, row_grid(cx, r.rows, r.row_len), &mut a)?;
    Ok(out)
}

pub fn argsort(cx: &Ctx, src: View, dim: usize, descending: bool) -> Result<CudaStorage> {
    check_numeric("argsort", src.dtype())?;
    let r = rows_of("argsort", &src, &[dim])?;
    let n = r.rows * r.row_len;
    let out = CudaStorage::alloc(cx.dev, DType::I64, n)?;
    if n == 0 {
        return Ok(out);
    }
    if r.row_len >= u32::MAX as usize {
        return Err(Error::InvalidArgument { op: "argsort", msg: format!("rows of {} elements are too long to sort", r.row_len) });
    }
    let lo = out_order("argsort", src.layout.shape(), &r.perm)?;
    let (contig, desc) = (r.layout.is_contiguous() as i32, descending as i32);
    if r.row_len <= SORT_SMEM_MAX {
        let mut a = Args::new();
        a.ptr(out.ptr()).push(lo).ptr(view_ptr(&src)?).push(r.layout).push(r.rows as i64).push(r.row_len as i64).push(contig).push(desc);
        let blocks = r.rows.clamp(1, cx.dev.sm_count as usize * 16) as u32;
        return cx.dev.launch(func(cx, "argsort_smem", src.dtype())?, Grid::new((blocks, 1, 1), 512, 0), &mut a).map(|()| out);
    }
    // Global bitonic sort over rows padded to a power of two.
    let p = r.row_len.next_power_of_two();
    let keys = CudaStorage::alloc(cx.dev, DType::I64, r.rows * p)?;
    let idx = CudaStorage::alloc(cx.dev, DType::U32, r.rows * p)?;
    let total = r.rows * p;
    let grid = Grid::new((cx.dev.stride_blocks(total, 256), 1, 1), 256, 0);
    let mut a = Args::new();
    a.ptr(keys.ptr()).ptr(idx.ptr()).ptr(view_ptr(&src)?).push(r.layout).push(r.rows as i64).push(r.row_len as i64);
    a.push(p as i32).push(contig).push(desc);
    cx.dev.launch(func(cx, "argsort_init", src.dtype())?, grid, &mut a)?;
    let step = cx.dev.function(&REDUCE, &[], "argsort_step")?;
    let mut k = 2;
    while k <= p {
        let mut j = k / 2;
        while j > 0 {
            let mut a = Args::new();
            a.ptr(keys.ptr()).ptr(idx.ptr()).push(r.rows as i64).push(p as i32).push(j as i32).push(k as i32);
            cx.dev.launch(step, grid, &mut a)?;
            j /= 2;
        }
        k *= 2;
    }
    let mut a = Args::new();
    a.ptr(out.ptr()).push(lo).ptr(idx.ptr()).push(r.rows as i64).push(r.row_len as i64).push(p as i32);
    let write = cx.dev.function(&REDUCE, &[], "argsort_write")?;
    cx.dev.launch(write, Grid::new((cx.dev.stride_blocks(n, 256), 1, 1), 256, 0), &mut a)?;
    Ok(out)
}

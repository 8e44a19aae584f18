//! Host side of kernels/elementwise.cu: fill, copies, casts, unary, affine,
//! binary, compare and where.

use super::{launch_map, view_ptr, Ctx};
use crate::codes;
use crate::compile::ELEMENTWISE;
use crate::device::Args;
use crate::layout::kernel_layouts;
use crate::memory::CudaStorage;
use tessera_tensor::{BinaryOp, CmpOp, DType, Error, Layout, Result, UnaryOp, View};

/// `len` elements equal to `value` converted to `dtype` (as the CPU does).
pub fn full(cx: &Ctx, dtype: DType, len: usize, value: f64) -> Result<CudaStorage> {
    let out = CudaStorage::alloc(cx.dev, dtype, len)?;
    let mut word = [0u8; 8];
    let bytes = tessera_tensor::dtype::f64_to_bytes(dtype, &[value]);
    word[..bytes.len()].copy_from_slice(&bytes);
    let size = dtype.size_in_bytes();
    let f = cx.dev.function(&ELEMENTWISE, &[], &format!("fill_{size}"))?;
    let mut a = Args::new();
    a.ptr(out.ptr()).push(len as i64).push(u64::from_le_bytes(word));
    launch_map(cx, f, len, &mut a)?;
    Ok(out)
}

/// The view's elements in logical order, in a new contiguous storage.
pub fn copy(cx: &Ctx, src: View) -> Result<CudaStorage> {
    let n = src.layout.numel();
    let out = CudaStorage::alloc(cx.dev, src.dtype(), n)?;
    if src.layout.is_contiguous() {
        cx.dev.copy_d2d(out.ptr(), view_ptr(&src)?, n * src.dtype().size_in_bytes())?;
        return Ok(out);
    }
    copy_into(cx, out.ptr(), &Layout::contiguous(src.layout.shape()), src)?;
    Ok(out)
}

/// Writes the view `src` into the strided region `dst_layout` of the buffer
/// at `dst` (same shape); the body of `copy` and `cat`.
pub fn copy_into(cx: &Ctx, dst: u64, dst_layout: &Layout, src: View) -> Result<()> {
    let n = src.layout.numel();
    if n == 0 {
        return Ok(());
    }
    let es = src.dtype().size_in_bytes();
    let dst = dst + (dst_layout.offset() * es) as u64;
    let l = kernel_layouts("copy", &[dst_layout, src.layout])?;
    if l[0].is_contiguous() && l[1].is_contiguous() {
        return cx.dev.copy_d2d(dst, view_ptr(&src)?, n * es);
    }
    let f = cx.dev.function(&ELEMENTWISE, &[], &format!("copy_{es}"))?;
    let mut a = Args::new();
    a.ptr(dst).push(l[0]).push(l[0].is_contiguous() as i32);
    a.ptr(view_ptr(&src)?).push(l[1]).push(l[1].is_contiguous() as i32).push(n as i64);
    launch_map(cx, f, n, &mut a)
}

/// A one-input map kernel `NAME(out, in, layout, n, contig, extra...)`.
fn map1(cx: &Ctx, name: &str, src: View, out_dtype: DType, extra: impl FnOnce(&mut Args)) -> Result<CudaStorage> {
    let n = src.layout.numel();
    let out = CudaStorage::alloc(cx.dev, out_dtype, n)?;
    if n == 0 {
        return Ok(out);
    }
    let l = kernel_layouts(name_op(name), &[src.layout])?[0];
    let f = cx.dev.function(&ELEMENTWISE, &[], name)?;
    let mut a = Args::new();
    a.ptr(out.ptr()).ptr(view_ptr(&src)?).push(l).push(n as i64).push(l.is_contiguous() as i32);
    extra(&mut a);
    launch_map(cx, f, n, &mut a)?;
    Ok(out)
}

/// The op name for error messages, from a kernel name.
fn name_op(kernel: &str) -> &'static str {
    match kernel.split('_').next() {
        Some("cast") => "cast",
        Some("unary") => "unary",
        Some("affine") => "affine",
        Some("binary") => "binary",
        Some("compare") => "compare",
        _ => "elementwise",
    }
}

pub fn cast(cx: &Ctx, src: View, to: DType) -> Result<CudaStorage> {
    if src.dtype() == to {
        return copy(cx, src);
    }
    map1(cx, &format!("cast_{}_{}", src.dtype(), to), src, to, |_| {})
}

pub fn unary(cx: &Ctx, op: UnaryOp, src: View) -> Result<CudaStorage> {
    let dt = src.dtype();
    if !(dt.is_compute_float() || (op.is_integer_op() && dt.is_int())) {
        return Err(Error::UnsupportedDType { op: op.name(), dtype: dt });
    }
    map1(cx, &format!("unary_{}", dt), src, dt, |a| {
        a.push(codes::unary(op));
    })
}

pub fn affine(cx: &Ctx, src: View, mul: f64, add: f64) -> Result<CudaStorage> {
    let dt = src.dtype();
    if !dt.is_compute_float() {
        return Err(Error::UnsupportedDType { op: "affine", dtype: dt });
    }
    map1(cx, &format!("affine_{}", dt), src, dt, |a| {
        a.push(mul as f32).push(add as f32);
    })
}

/// `NAME(out, a, la, b, lb, n, contig, op)` for binary ops and comparisons.
fn map2(cx: &Ctx, kernel: &str, lhs: View, rhs: View, out_dtype: DType, code: i32) -> Result<CudaStorage> {
    let dt = lhs.dtype();
    if !(dt.is_compute_float() || dt.is_int()) {
        return Err(Error::UnsupportedDType { op: name_op(kernel), dtype: dt });
    }
    let n = lhs.layout.numel();
    let out = CudaStorage::alloc(cx.dev, out_dtype, n)?;
    if n == 0 {
        return Ok(out);
    }
    let l = kernel_layouts(name_op(kernel), &[lhs.layout, rhs.layout])?;
    let f = cx.dev.function(&ELEMENTWISE, &[], &format!("{kernel}_{}", dt))?;
    let mut a = Args::new();
    a.ptr(out.ptr()).ptr(view_ptr(&lhs)?).push(l[0]).ptr(view_ptr(&rhs)?).push(l[1]);
    a.push(n as i64).push((l[0].is_contiguous() && l[1].is_contiguous()) as i32).push(code);
    launch_map(cx, f, n, &mut a)?;
    Ok(out)
}

pub fn binary(cx: &Ctx, op: BinaryOp, lhs: View, rhs: View) -> Result<CudaStorage> {
    if op == BinaryOp::Pow && !lhs.dtype().is_compute_float() {
        return Err(Error::UnsupportedDType { op: op.name(), dtype: lhs.dtype() });
    }
    map2(cx, "binary", lhs, rhs, lhs.dtype(), codes::binary(op))
}

pub fn compare(cx: &Ctx, op: CmpOp, lhs: View, rhs: View) -> Result<CudaStorage> {
    map2(cx, "compare", lhs, rhs, DType::U8, codes::compare(op))
}

pub fn where_cond(cx: &Ctx, cond: View, on_true: View, on_false: View) -> Result<CudaStorage> {
    let n = on_true.layout.numel();
    let out = CudaStorage::alloc(cx.dev, on_true.dtype(), n)?;
    if n == 0 {
        return Ok(out);
    }
    let l = kernel_layouts("where", &[cond.layout, on_true.layout, on_false.layout])?;
    let name = format!("where_{}_{}", cond.dtype(), on_true.dtype().size_in_bytes());
    let f = cx.dev.function(&ELEMENTWISE, &[], &name)?;
    let mut a = Args::new();
    a.ptr(out.ptr()).ptr(view_ptr(&cond)?).push(l[0]).ptr(view_ptr(&on_true)?).push(l[1]);
    a.ptr(view_ptr(&on_false)?).push(l[2]).push(n as i64);
    launch_map(cx, f, n, &mut a)?;
    Ok(out)
}

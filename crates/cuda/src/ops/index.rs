//! Host side of kernels/index.cu: index_select, gather, cat, nearest
//! upsampling, and the zero-padding pack used by matmul and attention.

use super::elementwise::copy_into;
use super::{launch_map, view_ptr, Ctx};
use crate::compile::INDEX;
use crate::device::Args;
use crate::layout::kernel_layouts;
use crate::memory::CudaStorage;
use tessera_tensor::{Error, Layout, Result, View};

/// `out[e] = src[base(e) + ids[id(e)] * stride(dim)]` (see index.cu).
fn indexed_copy(cx: &Ctx, src: View, ids: View, dim: usize, out_shape: &[usize], id_strides: &[usize]) -> Result<CudaStorage> {
    let n: usize = out_shape.iter().product();
    let out = CudaStorage::alloc(cx.dev, src.dtype(), n)?;
    if n == 0 {
        return Ok(out);
    }
    let mut base = src.layout.strides().to_vec();
    let dim_stride = base[dim];
    base[dim] = 0;
    let bl = Layout::new(out_shape.to_vec(), base, 0, usize::MAX)?;
    let il = Layout::new(out_shape.to_vec(), id_strides.to_vec(), 0, usize::MAX)?;
    let l = kernel_layouts("index", &[&bl, &il])?;
    let name = format!("indexed_copy_{}_{}", src.dtype().size_in_bytes(), ids.dtype());
    let f = cx.dev.function(&INDEX, &[], &name)?;
    let mut a = Args::new();
    a.ptr(out.ptr()).ptr(view_ptr(&src)?).push(l[0]).ptr(view_ptr(&ids)?).push(l[1]).push(dim_stride as i64).push(n as i64);
    launch_map(cx, f, n, &mut a)?;
    Ok(out)
}

pub fn index_select(cx: &Ctx, src: View, ids: View, dim: usize) -> Result<CudaStorage> {
    let mut shape = src.layout.shape().to_vec();
    shape[dim] = ids.layout.numel();
    let mut id_strides = vec![0; shape.len()];
    id_strides[dim] = ids.layout.strides().first().copied().unwrap_or(0);
    indexed_copy(cx, src, ids, dim, &shape, &id_strides)
}

pub fn gather(cx: &Ctx, src: View, ids: View, dim: usize) -> Result<CudaStorage> {
    let shape = ids.layout.shape().to_vec();
    indexed_copy(cx, src, ids, dim, &shape, ids.layout.strides())
}

pub fn cat(cx: &Ctx, srcs: &[View], dim: usize) -> Result<CudaStorage> {
    let first = srcs.first().ok_or_else(|| Error::InvalidArgument { op: "cat", msg: "no tensors given".into() })?;
    let mut shape = first.layout.shape().to_vec();
    shape[dim] = srcs.iter().map(|s| s.layout.shape()[dim]).sum();
    let out_layout = Layout::contiguous(shape.as_slice());
    let out = CudaStorage::alloc(cx.dev, first.dtype(), out_layout.numel())?;
    let mut start = 0;
    for s in srcs {
        let len = s.layout.shape()[dim];
        copy_into(cx, out.ptr(), &out_layout.narrow(dim, start, len)?, *s)?;
        start += len;
    }
    Ok(out)
}

pub fn upsample_nearest2d(cx: &Ctx, x: View, oh: usize, ow: usize) -> Result<Option<CudaStorage>> {
    let s = x.layout.shape();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    if (h == 0 || w == 0) && oh * ow > 0 {
        // The composition reports this case.
        return Ok(None);
    }
    let total = n * c * oh * ow;
    let out = CudaStorage::alloc(cx.dev, x.dtype(), total)?;
    if total == 0 {
        return Ok(Some(out));
    }
    let st = x.layout.strides();
    let f = cx.dev.function(&INDEX, &[], &format!("upsample_nearest_{}", x.dtype().size_in_bytes()))?;
    let mut a = Args::new();
    a.ptr(out.ptr()).ptr(view_ptr(&x)?);
    for v in [n, c, h, w, st[0], st[1], st[2], st[3], oh, ow] {
        a.push(v as i64);
    }
    launch_map(cx, f, total, &mut a)?;
    Ok(Some(out))
}

/// The view (`[..., cols]`, any strides) as a dense `rows x cols_pad`
/// buffer, zero beyond `cols`.
pub fn pack_pad(cx: &Ctx, v: View, cols_pad: usize) -> Result<CudaStorage> {
    let shape = v.layout.shape();
    let cols = *shape.last().unwrap_or(&1);
    let rows = v.layout.numel().checked_div(cols).unwrap_or(0);
    let out = CudaStorage::alloc(cx.dev, v.dtype(), rows * cols_pad)?;
    if rows * cols_pad == 0 {
        return Ok(out);
    }
    let l = kernel_layouts("pack", &[v.layout])?[0];
    let f = cx.dev.function(&INDEX, &[], &format!("pack_pad_{}", v.dtype().size_in_bytes()))?;
    let mut a = Args::new();
    a.ptr(out.ptr()).ptr(view_ptr(&v)?).push(l).push(rows as i64).push(cols as i64).push(cols_pad as i64);
    launch_map(cx, f, rows * cols_pad, &mut a)?;
    Ok(out)
}

//! Data movement by index: index_select, gather, cat, nearest upsampling.
//! These work on any dtype, moving elements without converting them.

use super::read::{gather_map, read_i64};
use super::{cpu, dispatch, BufElem, CpuStorage};
use crate::backend::View;
use crate::Layout;

/// Output element `e` reads `src[base_e + ids[id_e] * stride]`, where
/// `base` walks `src` with the indexed dim's stride zeroed and `id` walks the
/// index layout; both iterate the output shape.
fn indexed_copy(src: View, base: &Layout, ids: &[i64], id_layout: &Layout, stride: usize) -> CpuStorage {
    let buf = cpu(&src).buf();
    let out = dispatch!(buf, T => {
        let data = T::slice(buf);
        T::wrap(base.offsets().zip(id_layout.offsets()).map(|(b, i)| data[b + ids[i] as usize * stride]).collect())
    });
    CpuStorage::new(src.dtype(), out)
}

/// `src`'s layout with `dim` resized to `len` and its stride zeroed.
fn base_layout(src: &Layout, dim: usize, out_shape: &[usize]) -> Layout {
    let mut strides = src.strides().to_vec();
    strides[dim] = 0;
    Layout::new(out_shape.to_vec(), strides, src.offset(), usize::MAX).expect("base layout")
}

pub fn index_select(src: View, ids: View, dim: usize) -> CpuStorage {
    let idv = read_i64(ids);
    let mut shape = src.layout.shape().to_vec();
    shape[dim] = idv.len();
    let base = base_layout(src.layout, dim, &shape);
    // The index of output element e is ids[e's coordinate at dim].
    let mut id_strides = vec![0; shape.len()];
    id_strides[dim] = 1;
    let id_layout = Layout::new(shape, id_strides, 0, usize::MAX).expect("index layout");
    indexed_copy(src, &base, &idv, &id_layout, src.layout.strides()[dim])
}

pub fn gather(src: View, ids: View, dim: usize) -> CpuStorage {
    let idv = read_i64(ids);
    let shape = ids.layout.shape();
    let base = base_layout(src.layout, dim, shape);
    indexed_copy(src, &base, &idv, &Layout::contiguous(shape), src.layout.strides()[dim])
}

pub fn cat(srcs: &[View], dim: usize) -> CpuStorage {
    let first = srcs[0];
    let mut shape = first.layout.shape().to_vec();
    shape[dim] = srcs.iter().map(|s| s.layout.shape()[dim]).sum();
    let out_layout = Layout::contiguous(shape.as_slice());
    let buf = cpu(&first).buf();
    let out = dispatch!(buf, T => {
        let mut out: Vec<T> = Vec::with_capacity(out_layout.numel());
        // Safe initialisation: fill with the first element type's zero bits.
        out.resize(out_layout.numel(), bytemuck::Zeroable::zeroed());
        let mut start = 0;
        for s in srcs {
            let len = s.layout.shape()[dim];
            let region = out_layout.narrow(dim, start, len).expect("region inside output");
            let data = T::slice(cpu(s).buf());
            let vals = gather_map(data, s.layout, |x| x);
            for (v, o) in vals.into_iter().zip(region.offsets()) {
                out[o] = v;
            }
            start += len;
        }
        T::wrap(out)
    });
    CpuStorage::new(first.dtype(), out)
}

/// `src` written over the region `region` of `dst` (same shape and dtype),
/// in place. Packed copies of `dst` are dropped: they may cover the region.
pub fn write_into(dst: &mut CpuStorage, region: &Layout, src: View) {
    dst.packs = Default::default();
    let from = cpu(&src).buf();
    dispatch!(from, T => {
        let vals = gather_map(T::slice(from), src.layout, |x| x);
        let out = T::slice_mut(&mut dst.buf);
        if region.is_contiguous() {
            out[region.offset()..region.offset() + vals.len()].copy_from_slice(&vals);
        } else {
            for (v, o) in vals.into_iter().zip(region.offsets()) {
                out[o] = v;
            }
        }
    })
}

pub fn upsample_nearest2d(x: View, out_h: usize, out_w: usize) -> CpuStorage {
    let s = x.layout.shape();
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let st = x.layout.strides();
    let buf = cpu(&x).buf();
    let out = dispatch!(buf, T => {
        let data = T::slice(buf);
        let mut out = Vec::with_capacity(n * c * out_h * out_w);
        for ni in 0..n {
            for ci in 0..c {
                for oy in 0..out_h {
                    let iy = oy * h / out_h;
                    for ox in 0..out_w {
                        let ix = ox * w / out_w;
                        out.push(data[x.layout.offset() + ni * st[0] + ci * st[1] + iy * st[2] + ix * st[3]]);
                    }
                }
            }
        }
        T::wrap(out)
    });
    CpuStorage::new(x.dtype(), out)
}

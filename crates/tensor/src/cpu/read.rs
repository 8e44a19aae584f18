//! Reading strided views into contiguous buffers, in logical order.

use super::{cpu, dispatch, Buf, BufElem};
use crate::backend::{BackendStorage, View};
use crate::dtype::{f8e4m3_to_f32, f8e5m2_to_f32};
use crate::{DType, Layout};
use rayon::prelude::*;
use std::borrow::Cow;
use std::mem::MaybeUninit;

/// Below this many elements, work stays on the calling thread.
pub const PAR_MIN: usize = 1 << 14;

/// `f` applied to every element of `layout` over `data`, in logical order.
pub fn gather_map<T: Copy + Sync, U: Send>(data: &[T], layout: &Layout, f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let n = layout.numel();
    if layout.is_contiguous() {
        let s = &data[layout.offset()..layout.offset() + n];
        return if n >= PAR_MIN { s.par_iter().map(|&x| f(x)).collect() } else { s.iter().map(|&x| f(x)).collect() };
    }
    let runs = Runs::new(layout.shape(), [layout]);
    if runs.strides == [1] && runs.len >= MIN_RUN {
        // Unit-stride rows (a transposed head split, a narrowed column
        // block): whole rows at a time, in a loop the compiler vectorises.
        return runs.collect_par(|o, [start]| {
            let src = &data[start..start + o.len()];
            for (dst, &x) in o.iter_mut().zip(src) {
                dst.write(f(x));
            }
        });
    }
    if n < PAR_MIN {
        return layout.offsets().map(|o| f(data[o])).collect();
    }
    let chunk = PAR_MIN;
    let parts: Vec<Vec<U>> =
        (0..n.div_ceil(chunk)).into_par_iter().map(|c| layout.offsets_from(c * chunk).take(chunk).map(|o| f(data[o])).collect()).collect();
    parts.into_iter().flatten().collect()
}

/// Shortest innermost run worth walking run by run rather than element by
/// element.
pub const MIN_RUN: usize = 16;

/// `N` layouts of one shape walked as runs: the shape's dims with size-1
/// dims dropped and each dim merged into the one inside it wherever every
/// layout steps through the pair as through one dim; the innermost merged
/// dim is the run, the others are rows.
pub struct Runs<const N: usize> {
    /// Elements in a run.
    pub len: usize,
    /// Each layout's stride along a run (0: broadcast).
    pub strides: [usize; N],
    /// Merged outer dims, innermost first: (len, each layout's stride).
    outer: Vec<(usize, [usize; N])>,
    /// Each layout's storage offset.
    offsets: [usize; N],
    numel: usize,
}

impl<const N: usize> Runs<N> {
    /// The runs of `layouts`, which all have `shape`.
    pub fn new(shape: &[usize], layouts: [&Layout; N]) -> Runs<N> {
        let mut dims: Vec<(usize, [usize; N])> = Vec::new();
        for d in (0..shape.len()).rev() {
            let (len, st) = (shape[d], layouts.map(|l| l.strides()[d]));
            match dims.last_mut() {
                _ if len == 1 => {}
                Some(inner) if (0..N).all(|i| st[i] == inner.1[i] * inner.0) => inner.0 *= len,
                _ => dims.push((len, st)),
            }
        }
        let (len, strides) = dims.first().copied().unwrap_or((1, [1; N]));
        let outer = dims.get(1..).unwrap_or_default().to_vec();
        Runs { len, strides, outer, offsets: layouts.map(|l| l.offset()), numel: crate::shape::numel(shape) }
    }

    /// Each layout's storage offset of element `c` of run `r`.
    fn start(&self, r: usize, c: usize) -> [usize; N] {
        let (mut rem, mut at) = (r, self.offsets);
        for &(len, st) in &self.outer {
            for i in 0..N {
                at[i] += rem % len * st[i];
            }
            rem /= len;
        }
        for (a, s) in at.iter_mut().zip(self.strides) {
            *a += c * s;
        }
        at
    }

    /// The elements in logical order, made by calling `f(piece, starts)`
    /// in parallel on consecutive pieces of the new vector, each piece
    /// inside one run and `starts` the storage offsets of its first element
    /// in each layout; `f` must write every slot of its piece. The vector is
    /// not zeroed first.
    pub fn collect_par<U: Send>(&self, f: impl Fn(&mut [MaybeUninit<U>], [usize; N]) + Sync) -> Vec<U> {
        let n = self.numel;
        let mut out: Vec<U> = Vec::with_capacity(n);
        if n == 0 {
            return out;
        }
        let chunk = PAR_MIN.min(n);
        out.spare_capacity_mut()[..n].par_chunks_mut(chunk).enumerate().for_each(|(ci, piece)| {
            let mut g = ci * chunk; // logical index of piece[0]
            let mut done = 0;
            while done < piece.len() {
                let (r, c) = (g / self.len, g % self.len);
                let len = (self.len - c).min(piece.len() - done);
                f(&mut piece[done..done + len], self.start(r, c));
                done += len;
                g += len;
            }
        });
        // SAFETY: the pieces cover the first n slots, and `f` wrote each.
        unsafe { out.set_len(n) };
        out
    }
}

/// The view's elements in their own type, contiguous.
pub fn gather<T: BufElem>(v: View) -> Vec<T> {
    gather_map(T::slice(cpu(&v).buf()), v.layout, |x| x)
}

/// The view's elements as a new buffer of the same type.
pub fn gather_buf(v: View) -> Buf {
    let buf = cpu(&v).buf();
    dispatch!(buf, T => T::wrap(gather::<T>(v)))
}

/// One element converted to f32.
#[inline]
pub fn elem_f32(dtype: DType, buf: &Buf, i: usize) -> f32 {
    match (dtype, buf) {
        (DType::F8E4M3, Buf::U8(v)) => f8e4m3_to_f32(v[i]),
        (DType::F8E5M2, Buf::U8(v)) => f8e5m2_to_f32(v[i]),
        (_, Buf::U8(v)) => v[i] as f32,
        (_, Buf::F16(v)) => v[i].to_f32(),
        (_, Buf::BF16(v)) => v[i].to_f32(),
        (_, Buf::F32(v)) => v[i],
        (_, Buf::U32(v)) => v[i] as f32,
        (_, Buf::I64(v)) => v[i] as f32,
    }
}

/// The view's elements widened to f32 (borrowed when already contiguous f32).
pub fn read_f32<'a>(v: View<'a>) -> Cow<'a, [f32]> {
    let s = cpu(&v);
    let l = v.layout;
    match (s.dtype(), s.buf()) {
        (_, Buf::F32(d)) if l.is_contiguous() => Cow::Borrowed(&d[l.offset()..l.offset() + l.numel()]),
        (_, Buf::F32(d)) => Cow::Owned(gather_map(d.as_slice(), l, |x| x)),
        (_, Buf::F16(d)) => Cow::Owned(gather_map(d.as_slice(), l, |x| x.to_f32())),
        (_, Buf::BF16(d)) => Cow::Owned(gather_map(d.as_slice(), l, |x| x.to_f32())),
        (DType::F8E4M3, Buf::U8(d)) => Cow::Owned(gather_map(d.as_slice(), l, f8e4m3_to_f32)),
        (DType::F8E5M2, Buf::U8(d)) => Cow::Owned(gather_map(d.as_slice(), l, f8e5m2_to_f32)),
        (_, Buf::U8(d)) => Cow::Owned(gather_map(d.as_slice(), l, |x| x as f32)),
        (_, Buf::U32(d)) => Cow::Owned(gather_map(d.as_slice(), l, |x| x as f32)),
        (_, Buf::I64(d)) => Cow::Owned(gather_map(d.as_slice(), l, |x| x as f32)),
    }
}

/// The view's elements as i64 (integer dtypes; floats truncate).
pub fn read_i64(v: View) -> Vec<i64> {
    let s = cpu(&v);
    let l = v.layout;
    match s.buf() {
        Buf::U8(d) if !s.dtype().is_float() => gather_map(d.as_slice(), l, |x| x as i64),
        Buf::U32(d) => gather_map(d.as_slice(), l, |x| x as i64),
        Buf::I64(d) => gather_map(d.as_slice(), l, |x| x),
        _ => read_f32(v).iter().map(|&x| x as i64).collect(),
    }
}

/// Writes `vals` (in the logical order of `order`) to their row-major
/// positions in a buffer of the unpermuted shape: `order` is the contiguous
/// layout of the original shape, permuted the way the values were read.
pub fn scatter_to<T: Copy + Default>(vals: Vec<T>, order: &Layout) -> Vec<T> {
    let mut out = vec![T::default(); vals.len()];
    for (v, o) in vals.into_iter().zip(order.offsets()) {
        out[o] = v;
    }
    out
}

/// A permutation that moves `dims` to the end, keeping the others in order.
pub fn dims_last(rank: usize, dims: &[usize]) -> Vec<usize> {
    (0..rank).filter(|d| !dims.contains(d)).chain(dims.iter().copied()).collect()
}

//! Batched GEMM on f32 with packed operands.
//!
//! Algorithm: for each batch, B is packed into column panels of `NR`
//! columns (`k x NR`, row-major inside the panel) and A into row panels of
//! `MR` rows (`k x MR`, interleaved), zero-padded at the edges. A micro-kernel
//! keeps an `MR x NR` block of C in registers and runs over all of k. Row
//! panels are spread over threads. Operands are read through their strides,
//! so transposed views cost nothing extra; f16/bf16/FP8 operands are widened
//! to f32 first and the result is rounded once.

use super::read::read_f32;
use super::{cpu, Buf, CpuStorage};
use crate::backend::View;
use crate::Layout;
use rayon::prelude::*;
use std::borrow::Cow;

pub const MR: usize = 4;
pub const NR: usize = 8;

/// A strided f32 matrix: element (i, j) is `data[off + i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub off: usize,
    pub rs: usize,
    pub cs: usize,
}

impl MatRef<'_> {
    #[inline]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[self.off + i * self.rs + j * self.cs]
    }
}

fn pack_a(a: MatRef, m: usize, k: usize) -> Vec<f32> {
    let panels = m.div_ceil(MR);
    let mut out = vec![0.0; panels * MR * k];
    out.par_chunks_mut(MR * k).enumerate().for_each(|(p, dst)| {
        for r in 0..MR.min(m - p * MR) {
            let i = p * MR + r;
            for kk in 0..k {
                dst[kk * MR + r] = a.at(i, kk);
            }
        }
    });
    out
}

fn pack_b(b: MatRef, k: usize, n: usize) -> Vec<f32> {
    let panels = n.div_ceil(NR);
    let mut out = vec![0.0; panels * NR * k];
    out.par_chunks_mut(NR * k).enumerate().for_each(|(p, dst)| {
        let cols = NR.min(n - p * NR);
        for kk in 0..k {
            for c in 0..cols {
                dst[kk * NR + c] = b.at(kk, p * NR + c);
            }
        }
    });
    out
}

#[inline(always)]
fn micro_kernel(k: usize, a: &[f32], b: &[f32]) -> [[f32; NR]; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(k) {
        for r in 0..MR {
            let av = ap[r];
            for c in 0..NR {
                acc[r][c] += av * bp[c];
            }
        }
    }
    acc
}

/// Dot product with eight independent accumulators, so it vectorises.
#[inline]
pub fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xc.remainder().iter().zip(yc.remainder()).map(|(a, b)| a * b).sum();
    for (xs, ys) in xc.zip(yc) {
        for l in 0..8 {
            acc[l] += xs[l] * ys[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Few-row products (decode-time GEMV) stream B once without packing it:
/// dot products when B's columns are contiguous (a transposed weight), row
/// updates when its rows are. `None` when neither layout fits.
fn gemv_f32(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32]) -> Option<()> {
    let arow = |i: usize| -> Vec<f32> { (0..k).map(|p| a.at(i, p)).collect() };
    if b.rs == 1 {
        for i in 0..m {
            let x = arow(i);
            c[i * n..(i + 1) * n].par_chunks_mut(64).enumerate().for_each(|(blk, out)| {
                for (jj, o) in out.iter_mut().enumerate() {
                    let j = blk * 64 + jj;
                    *o = dot(&x, &b.data[b.off + j * b.cs..][..k]);
                }
            });
        }
        return Some(());
    }
    if b.cs == 1 {
        for i in 0..m {
            let x = arow(i);
            c[i * n..(i + 1) * n].par_chunks_mut(256).enumerate().for_each(|(blk, out)| {
                out.fill(0.0);
                let j0 = blk * 256;
                for (p, &xp) in x.iter().enumerate() {
                    let brow = &b.data[b.off + p * b.rs + j0..][..out.len()];
                    for (o, &bv) in out.iter_mut().zip(brow) {
                        *o += xp * bv;
                    }
                }
            });
        }
        return Some(());
    }
    None
}

/// `c = a * b` for one `m x k` by `k x n` product; `c` is row-major `m x n`.
pub fn gemm_f32(m: usize, n: usize, k: usize, a: MatRef, b: MatRef, c: &mut [f32]) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    if m < MR && gemv_f32(m, n, k, a, b, c).is_some() {
        return;
    }
    let pa = pack_a(a, m, k);
    let pb = pack_b(b, k, n);
    c.par_chunks_mut(MR * n).zip(pa.par_chunks(MR * k)).for_each(|(crow, ap)| {
        let rows = crow.len() / n;
        for (p, bp) in pb.chunks(NR * k).enumerate() {
            let acc = micro_kernel(k, ap, bp);
            let cols = NR.min(n - p * NR);
            for (r, acc_row) in acc.iter().enumerate().take(rows) {
                crow[r * n + p * NR..r * n + p * NR + cols].copy_from_slice(&acc_row[..cols]);
            }
        }
    });
}

/// The f32 data of a view and a layout that indexes it.
fn f32_operand<'a>(v: View<'a>) -> (Cow<'a, [f32]>, Layout) {
    if let Buf::F32(d) = cpu(&v).buf() {
        return (Cow::Borrowed(d.as_slice()), v.layout.clone());
    }
    (read_f32(v), Layout::contiguous(v.layout.shape()))
}

pub fn matmul(lhs: View, rhs: View) -> CpuStorage {
    let (ad, al) = f32_operand(lhs);
    let (bd, bl) = f32_operand(rhs);
    let rank = al.rank();
    let (m, k, n) = (al.shape()[rank - 2], al.shape()[rank - 1], bl.shape()[rank - 1]);
    let batch_shape = &al.shape()[..rank - 2];
    let batches: usize = batch_shape.iter().product();
    // Storage offsets of each batch's matrices.
    let batch_offsets = |l: &Layout| -> Vec<usize> {
        let bl = Layout::new(batch_shape.to_vec(), l.strides()[..rank - 2].to_vec(), l.offset(), usize::MAX).expect("batch layout");
        bl.offsets().collect()
    };
    let (aoffs, boffs) = (batch_offsets(&al), batch_offsets(&bl));
    let mut out = vec![0.0f32; batches * m * n];
    if m * n > 0 {
        out.par_chunks_mut(m * n).enumerate().for_each(|(bi, c)| {
            let a = MatRef { data: &ad, off: aoffs[bi], rs: al.strides()[rank - 2], cs: al.strides()[rank - 1] };
            let b = MatRef { data: &bd, off: boffs[bi], rs: bl.strides()[rank - 2], cs: bl.strides()[rank - 1] };
            gemm_f32(m, n, k, a, b, c);
        });
    }
    CpuStorage::from_f32(lhs.dtype(), out)
}

//! Few-row products (`m` small: decode-time GEMV, a few batched or guided
//! rows), streaming B once for all of them.
//!
//! When B's columns are contiguous (`B = W^T` for a row-major weight `W`, the
//! way models call it), every output is a dot product of an A row with a
//! weight row: SIMD dot products with four accumulators, reading half-precision
//! weights directly (bf16 widened by a shift, f16 by F16C), so a bf16 weight
//! costs half the memory traffic of an f32 one. Each weight row is read from
//! memory once for every row of A (the rows of A dot it while it is in
//! cache), so `m` rows cost one pass over the weights. When B's rows are contiguous,
//! output rows are built by scaled row additions. Columns are split over
//! threads. Other layouts return `false` and go to the packed GEMM.

use super::{GemmElem, Strided};
use rayon::prelude::*;
use std::borrow::Cow;

/// Output columns per task.
const COLS_PER_TASK: usize = 64;

/// Dot products of an f32 vector with rows of a weight type.
pub trait DotElem: GemmElem {
    /// `x` in the element order this type's kernels expect (see bf16).
    fn prepare(x: &[f32]) -> Cow<'_, [f32]> {
        Cow::Borrowed(x)
    }
    /// `x . w`, with `x` from [`DotElem::prepare`].
    fn dot(x: &[f32], w: &[Self]) -> f32 {
        x.iter().zip(w).map(|(&a, &b)| a * b.to_f32()).sum()
    }
    /// Four dot products sharing `x`: four weight streams in flight at once
    /// keep more memory requests outstanding than one.
    fn dot4(x: &[f32], w: [&[Self]; 4]) -> [f32; 4] {
        w.map(|w| Self::dot(x, w))
    }
}

impl DotElem for f32 {
    fn dot(x: &[f32], w: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if simd::has_avx2_fma() {
            // SAFETY: AVX2 and FMA were detected.
            return unsafe { simd::dot_f32(x, w) };
        }
        portable_dot(x, w)
    }
    fn dot4(x: &[f32], w: [&[f32]; 4]) -> [f32; 4] {
        #[cfg(target_arch = "x86_64")]
        if simd::has_avx2_fma() {
            // SAFETY: AVX2 and FMA were detected.
            return unsafe { simd::dot4_f32(x, w) };
        }
        w.map(|w| portable_dot(x, w))
    }
}

impl DotElem for half::bf16 {
    fn prepare(x: &[f32]) -> Cow<'_, [f32]> {
        #[cfg(target_arch = "x86_64")]
        if simd::has_avx2_fma() {
            return Cow::Owned(simd::bf16_order(x));
        }
        Cow::Borrowed(x)
    }
    fn dot(x: &[f32], w: &[half::bf16]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if simd::has_avx2_fma() {
            // SAFETY: AVX2 and FMA were detected.
            return unsafe { simd::dot_bf16(x, w) };
        }
        x.iter().zip(w).map(|(&a, &b)| a * b.to_f32()).sum()
    }
    fn dot4(x: &[f32], w: [&[half::bf16]; 4]) -> [f32; 4] {
        #[cfg(target_arch = "x86_64")]
        if simd::has_avx2_fma() {
            // SAFETY: AVX2 and FMA were detected.
            return unsafe { simd::dot4_bf16(x, w) };
        }
        w.map(|w| Self::dot(x, w))
    }
}

impl DotElem for half::f16 {
    fn dot(x: &[f32], w: &[half::f16]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if simd::has_avx2_fma() && std::arch::is_x86_feature_detected!("f16c") {
            // SAFETY: AVX2, FMA and F16C were detected.
            return unsafe { simd::dot_f16(x, w) };
        }
        x.iter().zip(w).map(|(&a, &b)| a * b.to_f32()).sum()
    }
}

/// Eight independent partial sums, so the compiler vectorises it.
fn portable_dot(x: &[f32], w: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (xc, wc) = (x.chunks_exact(8), w.chunks_exact(8));
    let tail: f32 = xc.remainder().iter().zip(wc.remainder()).map(|(a, b)| a * b).sum();
    for (xs, ws) in xc.zip(wc) {
        for l in 0..8 {
            acc[l] += xs[l] * ws[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `c = a * b`, or `c += a * b` with `accumulate` (C seeded by the caller,
/// e.g. with a bias), for few rows; `false` (nothing written) when B's
/// layout has no unit stride.
pub fn gemv<TA: GemmElem, TB: DotElem>(
    m: usize,
    n: usize,
    k: usize,
    a: Strided<TA>,
    b: Strided<TB>,
    c: &mut [f32],
    accumulate: bool,
) -> bool {
    if !(b.rs == 1 || b.cs == 1) || k == 0 {
        return false;
    }
    if m == 0 || n == 0 {
        return true;
    }
    let rows: Vec<Vec<f32>> = (0..m).map(|i| (0..k).map(|p| a.at(i, p)).collect()).collect();
    let put = |o: &mut f32, v: f32| *o = if accumulate { *o + v } else { v };
    if b.rs == 1 {
        // Every weight row is read from memory once for all `m` rows of A:
        // each task dots its columns' weight rows (four at a time, from
        // cache after the first row of A) with every row of A.
        let xs: Vec<Cow<'_, [f32]>> = rows.iter().map(|x| TB::prepare(x)).collect();
        let blocks: Vec<Vec<f32>> = (0..n.div_ceil(COLS_PER_TASK))
            .into_par_iter()
            .map(|t| {
                let (j0, cols) = (t * COLS_PER_TASK, COLS_PER_TASK.min(n - t * COLS_PER_TASK));
                let wrow = |jj: usize| {
                    let start = b.off + (j0 + jj) * b.cs;
                    &b.data[start..start + k]
                };
                let mut block = vec![0.0f32; m * cols];
                let quads = cols / 4;
                for q in 0..quads {
                    let w = [wrow(4 * q), wrow(4 * q + 1), wrow(4 * q + 2), wrow(4 * q + 3)];
                    for (i, x) in xs.iter().enumerate() {
                        block[i * cols + 4 * q..][..4].copy_from_slice(&TB::dot4(x, w));
                    }
                }
                for jj in 4 * quads..cols {
                    for (i, x) in xs.iter().enumerate() {
                        block[i * cols + jj] = TB::dot(x, wrow(jj));
                    }
                }
                block
            })
            .collect();
        for (t, block) in blocks.iter().enumerate() {
            let (j0, cols) = (t * COLS_PER_TASK, block.len() / m);
            for i in 0..m {
                c[i * n + j0..][..cols].iter_mut().zip(&block[i * cols..(i + 1) * cols]).for_each(|(o, &v)| put(o, v));
            }
        }
    } else {
        for (x, row) in rows.iter().zip(c.chunks_exact_mut(n)) {
            row.par_chunks_mut(4 * COLS_PER_TASK).enumerate().for_each(|(t, out)| {
                if !accumulate {
                    out.fill(0.0);
                }
                let j0 = t * 4 * COLS_PER_TASK;
                for (p, &xp) in x.iter().enumerate() {
                    let brow = &b.data[b.off + p * b.rs + j0..][..out.len()];
                    for (o, &w) in out.iter_mut().zip(brow) {
                        *o += xp * w.to_f32();
                    }
                }
            });
        }
    }
    true
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use crate::cpu::gemm::GemmElem;
    use std::arch::x86_64::*;

    pub fn has_avx2_fma() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }

    /// The shared dot-product loop, expanded inside each `target_feature`
    /// function (a closure would not inherit the features and would not
    /// inline): `$load` gives 8 widened weights at element `$i`, `$tail` one
    /// weight at element `$j`.
    macro_rules! dot_loop {
        ($x:expr, |$i:ident| $load:expr, |$j:ident| $tail:expr) => {{
            let x: &[f32] = $x;
            let n = x.len();
            let xp = x.as_ptr();
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut $i = 0;
            while $i + 32 <= n {
                let base = $i;
                for (u, a) in acc.iter_mut().enumerate() {
                    $i = base + 8 * u;
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add($i)), $load, *a);
                }
                $i = base + 32;
            }
            while $i + 8 <= n {
                acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add($i)), $load, acc[0]);
                $i += 8;
            }
            let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            let mut s = hsum(v);
            for ($j, &xv) in x.iter().enumerate().skip($i) {
                s += xv * $tail;
            }
            s
        }};
    }

    /// Four rows at once, two 8-lane steps per iteration (8 accumulators).
    macro_rules! dot4_loop {
        ($x:expr, $w:expr, |$p:ident, $i:ident| $load:expr) => {{
            let x: &[f32] = $x;
            let n = x.len();
            let xp = x.as_ptr();
            let ptrs = $w.map(|w| w.as_ptr());
            let mut acc = [[_mm256_setzero_ps(); 4]; 2];
            let mut i = 0;
            while i + 16 <= n {
                for (u, accu) in acc.iter_mut().enumerate() {
                    let $i = i + 8 * u;
                    let xv = _mm256_loadu_ps(xp.add($i));
                    for (r, a) in accu.iter_mut().enumerate() {
                        let $p = ptrs[r];
                        *a = _mm256_fmadd_ps(xv, $load, *a);
                    }
                }
                i += 16;
            }
            let mut out = [0.0f32; 4];
            for r in 0..4 {
                out[r] = hsum(_mm256_add_ps(acc[0][r], acc[1][r]));
                for j in i..n {
                    out[r] += x[j] * $w[r][j].to_f32();
                }
            }
            out
        }};
    }

    /// # Safety
    /// AVX2 and FMA are available; every `w[r].len() >= x.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot4_f32(x: &[f32], w: [&[f32]; 4]) -> [f32; 4] {
        dot4_loop!(x, w, |p, i| _mm256_loadu_ps(p.add(i)))
    }

    /// bf16 weights are widened 16 at a time by interleaving them with
    /// zeros (`unpacklo/hi_epi16`), which yields elements
    /// `[0..4, 8..12]` and `[4..8, 12..16]` of each 16: `x` is put in that
    /// order once per product (full blocks of 16 only; the tail stays).
    pub fn bf16_order(x: &[f32]) -> Vec<f32> {
        let mut out = x.to_vec();
        for (o, c) in out.chunks_exact_mut(16).zip(x.chunks_exact(16)) {
            o[4..8].copy_from_slice(&c[8..12]);
            o[8..12].copy_from_slice(&c[4..8]);
        }
        out
    }

    /// Sixteen bf16 at `p` widened to f32 in [`bf16_order`].
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn widen16(p: *const half::bf16) -> (__m256, __m256) {
        let v = _mm256_loadu_si256(p as *const __m256i);
        let z = _mm256_setzero_si256();
        (_mm256_castsi256_ps(_mm256_unpacklo_epi16(z, v)), _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, v)))
    }

    /// # Safety
    /// AVX2 and FMA are available; `x` is in [`bf16_order`]; every
    /// `w[r].len() >= x.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot4_bf16(x: &[f32], w: [&[half::bf16]; 4]) -> [f32; 4] {
        let n = x.len();
        let full = n / 16 * 16;
        let mut acc = [[_mm256_setzero_ps(); 4]; 2];
        let mut i = 0;
        while i < full {
            let xlo = _mm256_loadu_ps(x.as_ptr().add(i));
            let xhi = _mm256_loadu_ps(x.as_ptr().add(i + 8));
            for r in 0..4 {
                let (lo, hi) = widen16(w[r].as_ptr().add(i));
                acc[0][r] = _mm256_fmadd_ps(xlo, lo, acc[0][r]);
                acc[1][r] = _mm256_fmadd_ps(xhi, hi, acc[1][r]);
            }
            i += 16;
        }
        let mut out = [0.0f32; 4];
        for r in 0..4 {
            out[r] = hsum(_mm256_add_ps(acc[0][r], acc[1][r]));
            for j in full..n {
                out[r] += x[j] * w[r][j].to_f32();
            }
        }
        out
    }

    /// # Safety
    /// AVX2 and FMA are available; `x` is in [`bf16_order`];
    /// `w.len() >= x.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_bf16(x: &[f32], w: &[half::bf16]) -> f32 {
        let n = x.len();
        let full = n / 16 * 16;
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        while i < full {
            let (lo, hi) = widen16(w.as_ptr().add(i));
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x.as_ptr().add(i)), lo, acc[0]);
            acc[1] = _mm256_fmadd_ps(_mm256_loadu_ps(x.as_ptr().add(i + 8)), hi, acc[1]);
            i += 16;
        }
        let mut s = hsum(_mm256_add_ps(acc[0], acc[1]));
        for j in full..n {
            s += x[j] * w[j].to_f32();
        }
        s
    }

    /// # Safety
    /// AVX2 and FMA are available; `w.len() >= x.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_f32(x: &[f32], w: &[f32]) -> f32 {
        let wp = w.as_ptr();
        dot_loop!(x, |i| _mm256_loadu_ps(wp.add(i)), |j| w[j])
    }

    /// # Safety
    /// AVX2, FMA and F16C are available; `w.len() >= x.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16(x: &[f32], w: &[half::f16]) -> f32 {
        let wp = w.as_ptr() as *const u16;
        dot_loop!(x, |i| _mm256_cvtph_ps(_mm_loadu_si128(wp.add(i) as *const __m128i)), |j| w[j].to_f32())
    }
}

//! Few-row products (`m` small: decode-time GEMV), streaming B once.
//!
//! When B's columns are contiguous (`B = W^T` for a row-major weight `W`, the
//! way models call it), every output is a dot product of an A row with a
//! weight row: SIMD dot products with four accumulators, reading half-precision
//! weights directly (bf16 widened by a shift, f16 by F16C), so a bf16 weight
//! costs half the memory traffic of an f32 one. When B's rows are contiguous,
//! output rows are built by scaled row additions. Columns are split over
//! threads. Other layouts return `false` and go to the packed GEMM.

use super::{GemmElem, Strided};
use rayon::prelude::*;

/// Output columns per task.
const COLS_PER_TASK: usize = 64;

/// Dot products of an f32 vector with rows of a weight type.
pub trait DotElem: GemmElem {
    fn dot(x: &[f32], w: &[Self]) -> f32 {
        x.iter().zip(w).map(|(&a, &b)| a * b.to_f32()).sum()
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
}

impl DotElem for half::bf16 {
    fn dot(x: &[f32], w: &[half::bf16]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if simd::has_avx2_fma() {
            // SAFETY: AVX2 and FMA were detected.
            return unsafe { simd::dot_bf16(x, w) };
        }
        x.iter().zip(w).map(|(&a, &b)| a * b.to_f32()).sum()
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

/// `c = a * b` for few rows; `false` (nothing written) when B's layout has
/// no unit stride.
pub fn gemv<TA: GemmElem, TB: DotElem>(m: usize, n: usize, k: usize, a: Strided<TA>, b: Strided<TB>, c: &mut [f32]) -> bool {
    if !(b.rs == 1 || b.cs == 1) || k == 0 {
        return false;
    }
    for i in 0..m {
        let x: Vec<f32> = (0..k).map(|p| a.at(i, p)).collect();
        let row = &mut c[i * n..(i + 1) * n];
        if b.rs == 1 {
            row.par_chunks_mut(COLS_PER_TASK).enumerate().for_each(|(t, out)| {
                for (jj, o) in out.iter_mut().enumerate() {
                    let start = b.off + (t * COLS_PER_TASK + jj) * b.cs;
                    *o = TB::dot(&x, &b.data[start..start + k]);
                }
            });
        } else {
            row.par_chunks_mut(4 * COLS_PER_TASK).enumerate().for_each(|(t, out)| {
                out.fill(0.0);
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

    /// Shared loop: `load(i)` gives 8 widened weights at element `i`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_with(x: &[f32], n: usize, load: impl Fn(usize) -> __m256, tail: impl Fn(usize) -> f32) -> f32 {
        let xp = x.as_ptr();
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (u, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i + 8 * u)), load(i + 8 * u), *a);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(i)), load(i), acc[0]);
            i += 8;
        }
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let mut s = hsum(v);
        for (j, &xv) in x.iter().enumerate().take(n).skip(i) {
            s += xv * tail(j);
        }
        s
    }

    /// # Safety
    /// AVX2 and FMA are available; `w.len() >= x.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_f32(x: &[f32], w: &[f32]) -> f32 {
        let wp = w.as_ptr();
        dot_with(x, x.len(), |i| _mm256_loadu_ps(wp.add(i)), |j| w[j])
    }

    /// # Safety
    /// AVX2 and FMA are available; `w.len() >= x.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_bf16(x: &[f32], w: &[half::bf16]) -> f32 {
        let wp = w.as_ptr() as *const u16;
        dot_with(
            x,
            x.len(),
            |i| {
                let h = _mm_loadu_si128(wp.add(i) as *const __m128i);
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
            },
            |j| w[j].to_f32(),
        )
    }

    /// # Safety
    /// AVX2, FMA and F16C are available; `w.len() >= x.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16(x: &[f32], w: &[half::f16]) -> f32 {
        let wp = w.as_ptr() as *const u16;
        dot_with(x, x.len(), |i| _mm256_cvtph_ps(_mm_loadu_si128(wp.add(i) as *const __m128i)), |j| w[j].to_f32())
    }
}

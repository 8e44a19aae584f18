//! Vectorised math for the CPU kernels: a polynomial `exp` and the
//! activation functions built on it, on slices of f32.
//!
//! exp(x): x = n ln2 + r with n = round(x / ln2) and |r| <= ln2/2 (ln2 split
//! in two parts, Cody-Waite, so r is exact); e^r by a degree-6 minimax
//! polynomial (Cephes' expf coefficients); 2^n applied as two exponent-field
//! scalings so that results in the subnormal range and overflow to infinity
//! come out right. Relative error within 2 ulp over the normal range (tested
//! over the whole f32 range in this module's tests). NaN propagates.
//!
//! erf(x) (for GELU): Abramowitz & Stegun 7.1.26 on |x| with the polynomial
//! exp, absolute error below 2e-7.
//!
//! On x86-64 with AVX2+FMA the slice functions run 8 lanes at a time
//! (detected at run time); otherwise, and for slice tails, the same
//! algorithm runs in scalar code.

use crate::backend::UnaryOp;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const EXP_HI: f32 = 88.722_84;
const EXP_LO: f32 = -103.972_08;
/// Below this, [`avx2::exp8_nonpositive`] returns 0 (`e^-87 > 2^-126`).
#[cfg(target_arch = "x86_64")]
const SOFTMAX_EXP_FLOOR: f32 = -87.0;
const P: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];

/// `2^n` for integral `n` in `[-126, 127]`, by building the exponent field.
#[inline(always)]
fn pow2i(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

/// The polynomial exp (scalar).
#[inline]
pub fn exp(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x < EXP_LO {
        return 0.0; // below half the smallest subnormal (and exp(-inf) = 0 exactly)
    }
    let x = x.min(EXP_HI);
    let n = (x * LOG2E).round();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = P[0];
    for &c in &P[1..] {
        p = p * r + c;
    }
    let e = p * r * r + r + 1.0;
    let n = n as i32;
    let h = n / 2;
    e * pow2i(h) * pow2i(n - h)
}

#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Taylor coefficients of tanh(x)/x in powers of x^2, highest first; eight
/// terms reach f32 precision for |x| < 0.5.
const TANH_SERIES: [f32; 8] =
    [-929_569.0 / 638_512_875.0, 21_844.0 / 6_081_075.0, -1_382.0 / 155_925.0, 62.0 / 2_835.0, -17.0 / 315.0, 2.0 / 15.0, -1.0 / 3.0, 1.0];
/// Below this |x|, tanh uses its series (`1 - 2/(e^2x + 1)` cancels).
const TANH_SERIES_MAX: f32 = 0.5;

/// tanh via exp: `1 - 2 / (e^{2x} + 1)`, and its series near zero.
#[inline]
pub fn tanh(x: f32) -> f32 {
    if x.abs() < TANH_SERIES_MAX {
        let x2 = x * x;
        return x * TANH_SERIES.iter().fold(0.0, |acc, &c| acc * x2 + c);
    }
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// erf by Abramowitz & Stegun 7.1.26.
#[inline]
pub fn erf(x: f32) -> f32 {
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_8, -1.453_152_1, 1.061_405_4];
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// One element of a unary op.
#[inline]
pub fn unary(op: UnaryOp, x: f32) -> f32 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Exp => exp(x),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Square => x * x,
        UnaryOp::Tanh => tanh(x),
        UnaryOp::Sigmoid => sigmoid(x),
        // NaN passes through, as in PyTorch.
        UnaryOp::Relu => {
            if x.is_nan() {
                x
            } else {
                x.max(0.0)
            }
        }
        // As PyTorch computes it: one rounding fewer than x * sigmoid(x).
        UnaryOp::Silu => x / (1.0 + exp(-x)),
        UnaryOp::Gelu => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
        UnaryOp::GeluTanh => 0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))),
        UnaryOp::QuickGelu => x * sigmoid(1.702 * x),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
    }
}

/// `out[i] = op(x[i])`.
pub fn unary_slice(op: UnaryOp, x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: AVX2 and FMA were detected.
        if unsafe { avx2::unary_slice(op, x, out) } {
            return;
        }
    }
    for (o, &v) in out.iter_mut().zip(x) {
        *o = unary(op, v);
    }
}

/// `x[i] = exp(x[i] - shift)` in place, returning the sum of the results.
pub fn exp_shifted_sum(x: &mut [f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { avx2::exp_shifted_sum(x, shift) };
    }
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = exp(*v - shift);
        sum += *v;
    }
    sum
}

/// `x[i] = exp(x[i] - shift[i])` in place (lane-wise shifts).
pub fn exp_sub(x: &mut [f32], shift: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { avx2::exp_sub(x, shift) };
    }
    for (v, &s) in x.iter_mut().zip(shift) {
        *v = exp(*v - s);
    }
}

/// One key tile of the online softmax, with queries in lanes: `tile` holds
/// rows of `m.len()` scores (one lane per query). Per lane, the running max
/// `m` becomes `max(m, column max)` (NaN if any score is NaN), the scores
/// become `P = exp(S - m_new)` in place, `alpha = exp(m_old - m_new)` is the
/// factor for what was accumulated before, and the running sum becomes
/// `l = l * alpha + sum(P)`. A lane that has seen only `-inf` shifts by 0, so
/// its `P` and `l` stay 0. The SIMD path flushes weights below `e^-87`
/// (relative to the lane's maximum) to 0.
pub fn online_softmax_step(tile: &mut [f32], m: &mut [f32], l: &mut [f32], alpha: &mut [f32]) {
    let width = m.len();
    assert!(
        l.len() == width && alpha.len() == width && width > 0 && tile.len().is_multiple_of(width),
        "online_softmax_step: lane counts differ"
    );
    #[cfg(target_arch = "x86_64")]
    if width.is_multiple_of(8) && avx2::available() {
        // SAFETY: AVX2 and FMA were detected; the lengths were checked.
        unsafe { avx2::online_softmax_step(tile, m, l, alpha) };
        return;
    }
    let mut new_max = m.to_vec();
    for row in tile.chunks(width) {
        for (t, &x) in new_max.iter_mut().zip(row) {
            if !t.is_nan() && (x > *t || x.is_nan()) {
                *t = x;
            }
        }
    }
    let shift: Vec<f32> = new_max.iter().map(|&t| if t == f32::NEG_INFINITY { 0.0 } else { t }).collect();
    let mut sums = vec![0.0f32; width];
    for row in tile.chunks_mut(width) {
        for ((x, &s), sum) in row.iter_mut().zip(&shift).zip(sums.iter_mut()) {
            *x = exp(*x - s);
            *sum += *x;
        }
    }
    for i in 0..width {
        alpha[i] = exp(m[i] - shift[i]);
        l[i] = l[i] * alpha[i] + sums[i];
        m[i] = new_max[i];
    }
}

/// The largest element (NaN if any element is NaN), `-inf` for an empty slice.
pub fn max(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: AVX2 and FMA were detected.
        return unsafe { avx2::max(x) };
    }
    let mut m = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            m[l] = if c[l] > m[l] || c[l].is_nan() { c[l] } else { m[l] };
        }
    }
    let mut best = f32::NEG_INFINITY;
    for &v in m.iter().chain(tail) {
        if v > best || v.is_nan() {
            best = v;
        }
        if best.is_nan() {
            return best;
        }
    }
    best
}

/// Sum in f64 with four partial sums: exact enough that the mean of equal
/// values is that value, which normalisation needs.
pub fn sum_f64(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = x.chunks_exact(4);
    let tail: f64 = chunks.remainder().iter().map(|&v| v as f64).sum();
    for c in chunks {
        for l in 0..4 {
            acc[l] += c[l] as f64;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// Sum of `(x - mean)^2` in f64.
pub fn sum_sq_dev_f64(x: &[f32], mean: f64) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = x.chunks_exact(4);
    let tail: f64 = chunks.remainder().iter().map(|&v| (v as f64 - mean).powi(2)).sum();
    for c in chunks {
        for l in 0..4 {
            let d = c[l] as f64 - mean;
            acc[l] += d * d;
        }
    }
    acc.iter().sum::<f64>() + tail
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    /// 2^n for integral-valued lanes `n` in [-126, 127].
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pow2i(n: __m256i) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n, _mm256_set1_epi32(127))))
    }

    /// `(n, e^r)` with `x = n ln2 + r`: the reduction and polynomial shared
    /// by [`exp8`] and [`exp8_nonpositive`] (`x` already clamped).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp_reduced(x: __m256) -> (__m256, __m256) {
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(P[0]);
        for &c in &P[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        (n, _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp8(x: __m256) -> __m256 {
        let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x);
        let xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
        let (n, e) = exp_reduced(xc);
        let ni = _mm256_cvtps_epi32(n);
        let h = _mm256_srai_epi32::<1>(ni);
        let y = _mm256_mul_ps(_mm256_mul_ps(e, pow2i(h)), pow2i(_mm256_sub_epi32(ni, h)));
        // Exactly 0 below half the smallest subnormal (so exp(-inf) = 0).
        let y = _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(EXP_LO)), y);
        _mm256_blendv_ps(y, x, nan)
    }

    /// exp for the shifted scores of a softmax: `x <= 0`, `-inf` or NaN.
    /// The same reduction and polynomial as [`exp8`], but with a single
    /// exponent-field scaling: results below `e^-87` (the normal range's
    /// floor, a relative weight under 2e-38 next to the row's maximum) are
    /// flushed to exactly 0, and overflow cannot occur. NaN propagates
    /// (`max_ps` returns its second operand when either is NaN).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp8_nonpositive(x: __m256) -> __m256 {
        let floor = _mm256_set1_ps(SOFTMAX_EXP_FLOOR);
        let xc = _mm256_max_ps(floor, x);
        let (n, e) = exp_reduced(xc);
        // n >= -126, and n = -126 only with r > 0.3 (e > 1): adding n to e's
        // exponent field stays in the normal range.
        let scaled = _mm256_add_epi32(_mm256_castps_si256(e), _mm256_slli_epi32::<23>(_mm256_cvtps_epi32(n)));
        _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(x, floor), _mm256_castsi256_ps(scaled))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sigmoid8(x: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tanh8(x: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let two = _mm256_set1_ps(2.0);
        let big = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(exp8(_mm256_mul_ps(two, x)), one)));
        // Near zero use the series, as the scalar version does.
        let x2 = _mm256_mul_ps(x, x);
        let mut s = _mm256_setzero_ps();
        for c in TANH_SERIES {
            s = _mm256_fmadd_ps(s, x2, _mm256_set1_ps(c));
        }
        let small = _mm256_mul_ps(x, s);
        let absx = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
        let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(absx, _mm256_set1_ps(TANH_SERIES_MAX));
        _mm256_blendv_ps(big, small, is_small)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn erf8(x: __m256) -> __m256 {
        let sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0));
        let a = _mm256_andnot_ps(_mm256_set1_ps(-0.0), x);
        let one = _mm256_set1_ps(1.0);
        let t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.327_591_1), a, one));
        let mut p = _mm256_set1_ps(1.061_405_4);
        for c in [-1.453_152_1f32, 1.421_413_8, -0.284_496_74, 0.254_829_6] {
            p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(c));
        }
        p = _mm256_mul_ps(p, t);
        let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));
        let y = _mm256_fnmadd_ps(p, e, one);
        _mm256_or_ps(y, sign)
    }

    /// The op on 8 lanes, or `None` for ops left to scalar code.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn op8(op: UnaryOp, x: __m256) -> Option<__m256> {
        let half = _mm256_set1_ps(0.5);
        let one = _mm256_set1_ps(1.0);
        Some(match op {
            UnaryOp::Exp => exp8(x),
            UnaryOp::Sigmoid => sigmoid8(x),
            UnaryOp::Silu => _mm256_div_ps(x, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x)))),
            UnaryOp::QuickGelu => _mm256_mul_ps(x, sigmoid8(_mm256_mul_ps(_mm256_set1_ps(1.702), x))),
            UnaryOp::Tanh => tanh8(x),
            UnaryOp::Gelu => {
                let e = erf8(_mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2)));
                _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, e))
            }
            UnaryOp::GeluTanh => {
                let x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
                let inner = _mm256_mul_ps(_mm256_set1_ps(SQRT_2_OVER_PI), _mm256_fmadd_ps(_mm256_set1_ps(0.044715), x3, x));
                _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, tanh8(inner)))
            }
            _ => return None,
        })
    }

    /// # Safety
    /// AVX2 and FMA are available; `out.len() >= x.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn unary_slice(op: UnaryOp, x: &[f32], out: &mut [f32]) -> bool {
        if op8(op, _mm256_setzero_ps()).is_none() {
            return false;
        }
        let n = x.len().min(out.len());
        let mut i = 0;
        while i + 8 <= n {
            let v = op8(op, _mm256_loadu_ps(x.as_ptr().add(i))).unwrap_or(_mm256_setzero_ps());
            _mm256_storeu_ps(out.as_mut_ptr().add(i), v);
            i += 8;
        }
        for (o, &v) in out[i..n].iter_mut().zip(&x[i..n]) {
            *o = unary(op, v);
        }
        true
    }

    /// # Safety
    /// AVX2 and FMA are available.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_sub(x: &mut [f32], shift: &[f32]) {
        let n = x.len().min(shift.len());
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(shift.as_ptr().add(i)));
            _mm256_storeu_ps(x.as_mut_ptr().add(i), exp8(v));
            i += 8;
        }
        for (v, &s) in x[i..n].iter_mut().zip(&shift[i..n]) {
            *v = exp(*v - s);
        }
    }

    /// # Safety
    /// AVX2 and FMA are available.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn max(x: &[f32]) -> f32 {
        let n = x.len();
        let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut nan = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm256_loadu_ps(x.as_ptr().add(i));
            nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
            m = _mm256_max_ps(m, v);
            i += 8;
        }
        if _mm256_movemask_ps(nan) != 0 {
            return f32::NAN;
        }
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), m);
        let mut best = f32::NEG_INFINITY;
        for &v in lanes.iter().chain(&x[i..]) {
            if v.is_nan() {
                return v;
            }
            best = best.max(v);
        }
        best
    }

    /// # Safety
    /// AVX2 and FMA are available; `m`, `l` and `alpha` have the same length,
    /// a multiple of 8, and `tile` is whole rows of it.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn online_softmax_step(tile: &mut [f32], m: &mut [f32], l: &mut [f32], alpha: &mut [f32]) {
        let width = m.len();
        let mut c0 = 0;
        while c0 + 16 <= width {
            online_softmax_lanes::<2>(tile, width, c0, m, l, alpha);
            c0 += 16;
        }
        if c0 < width {
            online_softmax_lanes::<1>(tile, width, c0, m, l, alpha);
        }
    }

    /// [`online_softmax_step`] on lanes `c0..c0 + 8G` (rows of `width`),
    /// with the lane state in registers.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn online_softmax_lanes<const G: usize>(
        tile: &mut [f32],
        width: usize,
        c0: usize,
        m: &mut [f32],
        l: &mut [f32],
        alpha: &mut [f32],
    ) {
        let rows = tile.len() / width;
        let ptr = tile.as_mut_ptr();
        let mut mx = [_mm256_setzero_ps(); G];
        let mut nan = [_mm256_setzero_ps(); G];
        for g in 0..G {
            mx[g] = _mm256_loadu_ps(m.as_ptr().add(c0 + 8 * g));
            nan[g] = _mm256_cmp_ps::<_CMP_UNORD_Q>(mx[g], mx[g]);
        }
        for r in 0..rows {
            for g in 0..G {
                let x = _mm256_loadu_ps(ptr.add(r * width + c0 + 8 * g));
                nan[g] = _mm256_or_ps(nan[g], _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x));
                mx[g] = _mm256_max_ps(mx[g], x);
            }
        }
        let mut shift = [_mm256_setzero_ps(); G];
        for g in 0..G {
            mx[g] = _mm256_blendv_ps(mx[g], _mm256_set1_ps(f32::NAN), nan[g]);
            let unseen = _mm256_cmp_ps::<_CMP_EQ_OQ>(mx[g], _mm256_set1_ps(f32::NEG_INFINITY));
            shift[g] = _mm256_andnot_ps(unseen, mx[g]);
        }
        let mut sum = [_mm256_setzero_ps(); G];
        for r in 0..rows {
            for g in 0..G {
                let at = ptr.add(r * width + c0 + 8 * g);
                let p = exp8_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(at), shift[g]));
                _mm256_storeu_ps(at, p);
                sum[g] = _mm256_add_ps(sum[g], p);
            }
        }
        for g in 0..G {
            let at = c0 + 8 * g;
            let a = exp8_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(m.as_ptr().add(at)), shift[g]));
            _mm256_storeu_ps(alpha.as_mut_ptr().add(at), a);
            let lv = _mm256_fmadd_ps(_mm256_loadu_ps(l.as_ptr().add(at)), a, sum[g]);
            _mm256_storeu_ps(l.as_mut_ptr().add(at), lv);
            _mm256_storeu_ps(m.as_mut_ptr().add(at), mx[g]);
        }
    }

    /// # Safety
    /// AVX2 and FMA are available.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_shifted_sum(x: &mut [f32], shift: f32) -> f32 {
        let n = x.len();
        let s = _mm256_set1_ps(shift);
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), s));
            _mm256_storeu_ps(x.as_mut_ptr().add(i), e);
            acc = _mm256_add_ps(acc, e);
            i += 8;
        }
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
        let mut sum: f32 = lanes.iter().sum();
        for v in &mut x[i..] {
            *v = exp(*v - shift);
            sum += *v;
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f64) -> f64 {
        let b32 = b as f32;
        if a == b32 {
            return 0.0;
        }
        let spacing = (f32::from_bits(b32.abs().to_bits() + 1) - b32.abs()) as f64;
        (a as f64 - b).abs() / spacing
    }

    /// exp over the whole f32 range: every 64th bit pattern (67M values),
    /// scalar and SIMD paths alike.
    #[test]
    fn exp_is_accurate_over_the_whole_f32_range() {
        let xs: Vec<f32> = (0..=u32::MAX).step_by(64).map(f32::from_bits).collect();
        let mut simd = vec![0.0f32; xs.len()];
        unary_slice(UnaryOp::Exp, &xs, &mut simd);
        let mut worst = 0.0f64;
        for (&x, &s) in xs.iter().zip(&simd) {
            let want = (x as f64).exp();
            for got in [s, exp(x)] {
                if x.is_nan() {
                    assert!(got.is_nan());
                } else if want > f32::MAX as f64 {
                    assert_eq!(got, f32::INFINITY, "x={x}");
                } else if want < f32::MIN_POSITIVE as f64 {
                    // Subnormal results: absolute error below the smallest normal's ulp.
                    assert!((got as f64 - want).abs() <= f32::MIN_POSITIVE as f64 * 2f64.powi(-22), "x={x} got={got} want={want}");
                } else {
                    let u = ulps(got, want);
                    worst = worst.max(u);
                    assert!(u <= 2.0, "x={x} got={got} want={want} ({u} ulp)");
                }
            }
        }
        assert!(worst <= 2.0);
    }

    #[test]
    fn activations_match_f64_formulas() {
        let xs: Vec<f32> = (-4000..4000).map(|i| i as f32 * 0.0037).chain([0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0, 100.0, -100.0]).collect();
        for op in [UnaryOp::Sigmoid, UnaryOp::Silu, UnaryOp::Tanh, UnaryOp::Gelu, UnaryOp::GeluTanh, UnaryOp::QuickGelu] {
            let mut simd = vec![0.0f32; xs.len()];
            unary_slice(op, &xs, &mut simd);
            for (&x, &s) in xs.iter().zip(&simd) {
                let xd = x as f64;
                let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
                let want = match op {
                    UnaryOp::Sigmoid => sig(xd),
                    UnaryOp::Silu => xd * sig(xd),
                    UnaryOp::Tanh => xd.tanh(),
                    UnaryOp::Gelu => 0.5 * xd * (1.0 + libm::erf(xd / std::f64::consts::SQRT_2)),
                    UnaryOp::GeluTanh => 0.5 * xd * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (xd + 0.044715 * xd.powi(3))).tanh()),
                    _ => xd * sig(1.702 * xd),
                };
                for got in [s, unary(op, x)] {
                    // A few ulp relative; GELU's `1 + erf` / `1 + tanh` cancels
                    // for negative x (as in every f32 implementation), which
                    // bounds its error by a multiple of |x| instead.
                    let gelu = matches!(op, UnaryOp::Gelu | UnaryOp::GeluTanh);
                    // Rounding the f32 argument of exp by half an ulp moves e^x by
                    // |x| * 2^-24 relative: that much is inherent to f32 inputs.
                    let tol = (1e-6 + 1.2e-7 * xd.abs()) * want.abs() + if gelu { 2e-7 * xd.abs() } else { 1e-37 };
                    assert!((got as f64 - want).abs() <= tol, "{op:?} x={x} got={got} want={want}");
                }
            }
        }
    }

    #[test]
    fn reductions() {
        let x: Vec<f32> = (0..1001).map(|i| (i as f32 * 0.37).sin()).collect();
        let want: f64 = x.iter().map(|&v| v as f64).sum();
        assert!((sum_f64(&x) - want).abs() < 1e-9);
        assert_eq!(max(&x), x.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        assert!(max(&[1.0, f32::NAN, 2.0]).is_nan());
        assert_eq!(max(&[]), f32::NEG_INFINITY);
    }

    /// Two tiles of the online softmax against the softmax of both tiles at
    /// once, in f64, on widths the SIMD path takes (8, 16, 24) and one it
    /// does not (5); with lanes that see only -inf in the first tile or in
    /// both, and a NaN lane.
    #[test]
    fn online_softmax_steps_equal_the_softmax() {
        let nan_lane = |width: usize| if width > 6 { 6 } else { width - 1 };
        for width in [5usize, 8, 16, 24] {
            let rows = 7;
            let score = |t: usize, r: usize, c: usize| -> f32 {
                match c % 4 {
                    1 if t == 0 => f32::NEG_INFINITY, // nothing visible in the first tile
                    3 if c == 3 => f32::NEG_INFINITY, // never anything visible
                    _ => ((t * 31 + r * 7 + c * 3) as f32 * 0.71).sin() * 9.0 + t as f32 * 4.0,
                }
            };
            let (mut m, mut l, mut alpha) = (vec![f32::NEG_INFINITY; width], vec![0.0f32; width], vec![0.0f32; width]);
            let mut acc = vec![0.0f64; width]; // sum of P * value, value = row index + 1
            for t in 0..2 {
                let mut tile: Vec<f32> = (0..rows * width).map(|i| score(t, i / width, i % width)).collect();
                if t == 1 {
                    tile[2 * width + nan_lane(width)] = f32::NAN;
                }
                online_softmax_step(&mut tile, &mut m, &mut l, &mut alpha);
                for c in 0..width {
                    acc[c] =
                        acc[c] * alpha[c] as f64 + (0..rows).map(|r| tile[r * width + c] as f64 * (t * rows + r + 1) as f64).sum::<f64>();
                }
            }
            for c in 0..width {
                let all: Vec<f64> = (0..2).flat_map(|t| (0..rows).map(move |r| score(t, r, c) as f64)).collect();
                if c == nan_lane(width) {
                    assert!(m[c].is_nan() && l[c].is_nan(), "a NaN score must poison its lane");
                    continue;
                }
                let mx = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if mx == f64::NEG_INFINITY {
                    assert_eq!((l[c], acc[c]), (0.0, 0.0), "width {width} lane {c}: nothing visible");
                    continue;
                }
                let z: f64 = all.iter().map(|&x| (x - mx).exp()).sum();
                let want: f64 = all.iter().enumerate().map(|(i, &x)| (x - mx).exp() * (i + 1) as f64).sum::<f64>() / z;
                assert_eq!(m[c] as f64, mx, "width {width} lane {c}: max");
                let got = acc[c] / l[c] as f64;
                assert!((got - want).abs() < 1e-5 * want.abs(), "width {width} lane {c}: {got} vs {want}");
            }
        }
    }

    /// The softmax exp against the general one on every 256th non-positive
    /// f32 (and -0, -inf, NaN): equal within 2 ulp above the floor, 0 below.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn softmax_exp_is_accurate_on_non_positive_inputs() {
        if !avx2::available() {
            println!("skipping: no AVX2+FMA on this CPU");
            return;
        }
        use std::arch::x86_64::*;
        let mut xs: Vec<f32> = (0x8000_0000u32..=0xff80_0000).step_by(256).map(f32::from_bits).collect();
        xs.extend([-0.0, f32::NEG_INFINITY, f32::NAN, SOFTMAX_EXP_FLOOR, -87.336_54]);
        while !xs.len().is_multiple_of(8) {
            xs.push(-1.0);
        }
        for chunk in xs.chunks(8) {
            let mut got = [0.0f32; 8];
            // SAFETY: AVX2 and FMA were detected.
            unsafe { _mm256_storeu_ps(got.as_mut_ptr(), avx2::exp8_nonpositive(_mm256_loadu_ps(chunk.as_ptr()))) };
            for (&x, &g) in chunk.iter().zip(&got) {
                if x.is_nan() {
                    assert!(g.is_nan(), "exp({x}) = {g}");
                } else if x < SOFTMAX_EXP_FLOOR {
                    assert_eq!(g, 0.0, "exp({x})");
                } else {
                    let want = (x as f64).exp();
                    assert!(ulps(g, want) <= 2.0, "exp({x}) = {g}, want {want}");
                }
            }
        }
    }
}

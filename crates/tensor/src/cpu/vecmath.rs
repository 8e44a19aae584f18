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
        UnaryOp::Silu => x * sigmoid(x),
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

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp8(x: __m256) -> __m256 {
        let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x);
        let xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(xc, _mm256_set1_ps(LOG2E)));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(P[0]);
        for &c in &P[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let e = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0));
        let ni = _mm256_cvtps_epi32(n);
        let h = _mm256_srai_epi32::<1>(ni);
        let y = _mm256_mul_ps(_mm256_mul_ps(e, pow2i(h)), pow2i(_mm256_sub_epi32(ni, h)));
        // Exactly 0 below half the smallest subnormal (so exp(-inf) = 0).
        let y = _mm256_andnot_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(EXP_LO)), y);
        _mm256_blendv_ps(y, x, nan)
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
            UnaryOp::Silu => _mm256_mul_ps(x, sigmoid8(x)),
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
}

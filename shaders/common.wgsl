// common.wgsl: definitions every Tessera kernel is compiled with.
//
// Storage: every tensor is an `array<u32>` of packed little-endian elements:
// f32/u32 one per word, f16/bf16 two per word (element i in bits 16*(i%2)),
// u8/f8 four per word (bits 8*(i%4)), i64 two words (low word first).
//
// Value domains kernels compute in:
// - F: `f32`. f16, bf16 and FP8 widen exactly; results are rounded once on
//   store, to nearest even, bit-exactly as the CPU backend rounds (the
//   conversions below work on bit patterns and never rely on the driver's
//   float conversion or denormal mode).
// - I: `vec2<u32>` = (low, high) words of a two's-complement i64. u8 and u32
//   are zero-extended, so signed 64-bit compares, division, min and max give
//   the unsigned answers, and add/sub/mul wrap correctly once truncated on
//   store.
// - B: `vec2<u32>` raw bits of one element (data movement: copy, index, cat).
//
// Kernels find their sizes, shapes and strides in the `p` array (binding 0):
// p[0] = number of elements, p[1] = rank r (at most 8), p[2 .. 2 + r] = the
// logical shape (outermost first), p[10 .. 18] = kernel-specific scalars
// (`extra(k)`), and from p[18] one 9-word record per strided operand j at
// base b = `operand(j)`: p[b] = element offset, p[b + 1 .. b + 1 + r] =
// strides. The host merges dims that are contiguous in every operand and
// drops size-1 dims first, so a contiguous tensor has rank 1.
// NaN tests use bit patterns: WGSL allows compilers to assume no NaN in
// float comparisons.

@group(0) @binding(0) var<storage, read> p: array<u32>;

const WG: u32 = 256u;

// The flat invocation index of a 1-D launch spread over (x, y) workgroups.
fn flat_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

fn extra(k: u32) -> u32 {
    return p[10u + k];
}

fn extra_f(k: u32) -> f32 {
    return bitcast<f32>(p[10u + k]);
}

// x, hidden from the optimiser: p[17] (extra(7)) is always 0, but the
// compiler cannot know it, so it cannot apply algebra that holds for real
// numbers only (some drivers compile with reassociation on, which folds
// compensated sums away).
fn opaque(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) | p[17]);
}

// Double-f32 addition: (hi, lo) pairs whose sum carries about 44 bits
// (Knuth's two-sum, then renormalisation). Infinities and NaN stay in hi.
fn df_add(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let s = opaque(a.x + b.x);
    if (is_nan(s) || is_inf(s)) {
        return vec2<f32>(s, 0.0);
    }
    let bb = opaque(s - a.x);
    let err = (a.x - opaque(s - bb)) + (b.x - bb);
    let lo = err + a.y + b.y;
    let hi = opaque(s + lo);
    return vec2<f32>(hi, lo - (hi - s));
}

// Veltkamp's split of a into two halves of at most 12 significant bits.
fn split_f(a: f32) -> vec2<f32> {
    let c = opaque(4097.0 * a);
    let hi = c - opaque(c - a);
    return vec2<f32>(hi, a - hi);
}

// (hi + lo) / n rounded once: the quotient corrected by its residual, with
// q * n formed exactly by Dekker's product (WGSL's fma may be unfused).
fn df_div(a: vec2<f32>, n: f32) -> f32 {
    let q = opaque(a.x / n);
    if (is_nan(q) || is_inf(q) || n == 0.0) {
        return q;
    }
    let prod = opaque(q * n);
    let qs = split_f(q);
    let ns = split_f(n);
    let err = ((qs.x * ns.x - prod) + qs.x * ns.y + qs.y * ns.x) + qs.y * ns.y;
    let r = ((a.x - prod) - err) + a.y;
    return q + r / n;
}

fn operand(j: u32) -> u32 {
    return 18u + 9u * j;
}

// The storage offset of logical element `i` of the operand whose layout
// record starts at `base`.
fn offset_of(base: u32, i: u32) -> u32 {
    var rem = i;
    var off = p[base];
    let r = p[1];
    for (var d = r; d > 0u; d = d - 1u) {
        let size = p[1u + d];
        off = off + (rem % size) * p[base + d];
        rem = rem / size;
    }
    return off;
}

// ---------------------------------------------------------------- floats

fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn is_inf(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u;
}

fn nan_f32() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

fn inf_f32(negative: bool) -> f32 {
    return bitcast<f32>(select(0x7f800000u, 0xff800000u, negative));
}

// max and min that propagate NaN.
fn max_f(a: f32, b: f32) -> f32 {
    if (is_nan(a) || is_nan(b)) {
        return nan_f32();
    }
    return max(a, b);
}

fn min_f(a: f32, b: f32) -> f32 {
    if (is_nan(a) || is_nan(b)) {
        return nan_f32();
    }
    return min(a, b);
}

// exp and log with IEEE results at the edges, whatever the driver's.
fn exp_f(x: f32) -> f32 {
    if (is_nan(x)) {
        return x;
    }
    if (x < -104.0) {
        return 0.0;
    }
    if (x > 89.0) {
        return inf_f32(false);
    }
    return exp(x);
}

fn log_f(x: f32) -> f32 {
    if (is_nan(x) || x < 0.0) {
        return nan_f32();
    }
    if (x == 0.0) {
        return inf_f32(true);
    }
    if (is_inf(x)) {
        return x;
    }
    return log(x);
}

// `v >> s` rounded to nearest, ties to even (s < 32).
fn round_shift_even(v: u32, s: u32) -> u32 {
    if (s == 0u) {
        return v;
    }
    let q = v >> s;
    let rem = v & ((1u << s) - 1u);
    let half = 1u << (s - 1u);
    if (rem > half || (rem == half && (q & 1u) == 1u)) {
        return q + 1u;
    }
    return q;
}

fn f16_to_f32(h: u32) -> f32 {
    let s = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0u) {
        // Subnormal or zero: m * 2^-24, exact in f32.
        let v = f32(m) * 5.9604644775390625e-8;
        return bitcast<f32>(bitcast<u32>(v) | s);
    }
    if (e == 31u) {
        return bitcast<f32>(s | 0x7f800000u | (m << 13u));
    }
    return bitcast<f32>(s | ((e + 112u) << 23u) | (m << 13u));
}

fn f32_to_f16(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    let s = (b >> 16u) & 0x8000u;
    let a = b & 0x7fffffffu;
    if (a > 0x7f800000u) {
        return s | 0x7e00u;
    }
    if (a >= 0x477ff000u) {
        // 65520 and above round to infinity.
        return s | 0x7c00u;
    }
    if (a < 0x38800000u) {
        // Below 2^-14: an f16 subnormal, round(x * 2^24).
        if (a < 0x33000000u) {
            return s;
        }
        let e = a >> 23u;
        let m = (a & 0x7fffffu) | 0x800000u;
        return s | round_shift_even(m, 126u - e);
    }
    return s | (((a - 0x38000000u) + 0xfffu + ((a >> 13u) & 1u)) >> 13u);
}

fn bf16_to_f32(h: u32) -> f32 {
    return bitcast<f32>(h << 16u);
}

fn f32_to_bf16(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return (b >> 16u) | 0x40u;
    }
    return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}

// OCP FP8. E4M3: bias 7, 3 mantissa bits, no infinity, NaN = S.1111.111.
fn f8e4m3_to_f32(v: u32) -> f32 {
    let s = (v & 0x80u) << 24u;
    let e = (v >> 3u) & 0xfu;
    let m = v & 7u;
    if (e == 15u && m == 7u) {
        return nan_f32();
    }
    if (e == 0u) {
        let x = f32(m) * 0.001953125;
        return bitcast<f32>(bitcast<u32>(x) | s);
    }
    return bitcast<f32>(s | ((e + 120u) << 23u) | (m << 20u));
}

// E5M2: bias 15, 2 mantissa bits, IEEE-style infinities and NaN.
fn f8e5m2_to_f32(v: u32) -> f32 {
    let s = (v & 0x80u) << 24u;
    let e = (v >> 2u) & 0x1fu;
    let m = v & 3u;
    if (e == 31u) {
        return bitcast<f32>(s | 0x7f800000u | (m << 21u));
    }
    if (e == 0u) {
        let x = f32(m) * 1.52587890625e-5;
        return bitcast<f32>(bitcast<u32>(x) | s);
    }
    return bitcast<f32>(s | ((e + 112u) << 23u) | (m << 21u));
}

// Round to nearest even, saturating at +-max (infinities included); NaN
// gives the format's NaN. `mb` mantissa bits, `bias`, `max_bits` the f32
// pattern of the largest finite value.
fn f32_to_fp8(x: f32, mb: u32, bias: i32, max_bits: u32, nan_bits: u32) -> u32 {
    let b = bitcast<u32>(x);
    let s = (b >> 24u) & 0x80u;
    let a = min(b & 0x7fffffffu, max_bits);
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return nan_bits;
    }
    let e32 = i32(a >> 23u);
    if (e32 == 0) {
        return s;
    }
    let unbiased = e32 - 127;
    let min_normal = 1 - bias;
    if (unbiased < min_normal) {
        let sig = (a & 0x7fffffu) | 0x800000u;
        let rshift = (min_normal - i32(mb)) - (unbiased - 23);
        if (rshift >= 32) {
            return s;
        }
        return s | round_shift_even(sig, u32(rshift));
    }
    let e = u32(unbiased + bias);
    return s | ((e << mb) + round_shift_even(a & 0x7fffffu, 23u - mb));
}

fn f32_to_f8e4m3(x: f32) -> u32 {
    return f32_to_fp8(x, 3u, 7, 0x43e00000u, 0x7fu);
}

fn f32_to_f8e5m2(x: f32) -> u32 {
    return f32_to_fp8(x, 2u, 15, 0x47600000u, 0x7eu);
}

// ---------------------------------------------------------- 64-bit ints

fn i64_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

fn i64_sub(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(a.x - b.x, a.y - b.y - select(0u, 1u, a.x < b.x));
}

fn i64_neg(a: vec2<u32>) -> vec2<u32> {
    return i64_sub(vec2<u32>(0u, 0u), a);
}

fn i64_is_neg(a: vec2<u32>) -> bool {
    return (a.y & 0x80000000u) != 0u;
}

// The full 64-bit product of two u32.
fn mul_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let lo = (p00 & 0xffffu) | (mid << 16u);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(lo, hi);
}

fn i64_mul(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let w = mul_wide(a.x, b.x);
    return vec2<u32>(w.x, w.y + a.x * b.y + a.y * b.x);
}

fn i64_lt(a: vec2<u32>, b: vec2<u32>) -> bool {
    if (a.y != b.y) {
        return bitcast<i32>(a.y) < bitcast<i32>(b.y);
    }
    return a.x < b.x;
}

fn i64_eq(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.x == b.x && a.y == b.y;
}

fn i64_abs(a: vec2<u32>) -> vec2<u32> {
    return select(a, i64_neg(a), i64_is_neg(a));
}

fn u64_lt(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x < b.x);
}

// Unsigned 64-bit quotient by shift-and-subtract (b != 0).
fn u64_div(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    var q = vec2<u32>(0u, 0u);
    var r = vec2<u32>(0u, 0u);
    for (var i = 63i; i >= 0; i = i - 1) {
        r = vec2<u32>((r.x << 1u), (r.y << 1u) | (r.x >> 31u));
        let bit = select((a.x >> u32(i)) & 1u, (a.y >> u32(i - 32)) & 1u, i >= 32);
        r.x = r.x | bit;
        if (!u64_lt(r, b)) {
            r = i64_sub(r, b);
            if (i >= 32) {
                q.y = q.y | (1u << u32(i - 32));
            } else {
                q.x = q.x | (1u << u32(i));
            }
        }
    }
    return q;
}

// Signed division truncating toward zero; division by zero gives 0.
fn i64_div(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    if (b.x == 0u && b.y == 0u) {
        return vec2<u32>(0u, 0u);
    }
    let q = u64_div(i64_abs(a), i64_abs(b));
    return select(q, i64_neg(q), i64_is_neg(a) != i64_is_neg(b));
}

// u32 to f32 rounded to nearest even.
fn u32_to_f32(x: u32) -> f32 {
    if (x < 0x1000000u) {
        return f32(x);
    }
    let lz = countLeadingZeros(x);
    let n = x << lz;
    var mant = n >> 8u;
    let rem = n & 0xffu;
    var e = 31u - lz;
    if (rem > 0x80u || (rem == 0x80u && (mant & 1u) == 1u)) {
        mant = mant + 1u;
    }
    if (mant == 0x1000000u) {
        mant = mant >> 1u;
        e = e + 1u;
    }
    return bitcast<f32>(((e + 127u) << 23u) | (mant & 0x7fffffu));
}

// i64 to f32 rounded to nearest even.
fn i64_to_f32(v: vec2<u32>) -> f32 {
    let neg = i64_is_neg(v);
    let a = i64_abs(v);
    var r: f32;
    if (a.y == 0u) {
        r = u32_to_f32(a.x);
    } else {
        let lz = countLeadingZeros(a.y);
        var top = a.y << lz;
        if (lz > 0u) {
            top = top | (a.x >> (32u - lz));
        }
        let low = a.x << lz;
        var mant = top >> 8u;
        let rem = top & 0xffu;
        var e = 63u - lz;
        if (rem > 0x80u || (rem == 0x80u && (low != 0u || (mant & 1u) == 1u))) {
            mant = mant + 1u;
        }
        if (mant == 0x1000000u) {
            mant = mant >> 1u;
            e = e + 1u;
        }
        r = bitcast<f32>(((e + 127u) << 23u) | (mant & 0x7fffffu));
    }
    return select(r, -r, neg);
}

// f32 to i64 truncating toward zero, saturating; NaN gives 0.
fn f32_to_i64(x: f32) -> vec2<u32> {
    if (is_nan(x)) {
        return vec2<u32>(0u, 0u);
    }
    let t = trunc(abs(x));
    var m: vec2<u32>;
    if (t >= 9.223372036854775808e18) {
        return select(vec2<u32>(0xffffffffu, 0x7fffffffu), vec2<u32>(0u, 0x80000000u), x < 0.0);
    } else if (t < 4294967296.0) {
        m = vec2<u32>(u32(t), 0u);
    } else {
        // Both steps are exact: t has at most 24 significant bits.
        let hi = floor(t * 2.3283064365386963e-10);
        m = vec2<u32>(u32(t - hi * 4294967296.0), u32(hi));
    }
    return select(m, i64_neg(m), x < 0.0);
}

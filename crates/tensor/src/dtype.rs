//! Storage element types and their exact conversions.
//!
//! The FP8 formats follow the OCP 8-bit floating point specification (v1.0):
//! E4M3 ("fn" variant) has bias 7, no infinities, a single NaN pattern per
//! sign (S.1111.111) and a largest finite value of 448; E5M2 has bias 15 and
//! IEEE-style infinities and NaNs (largest finite 57344). Conversion from f32
//! rounds to nearest, ties to even, and saturates to the largest finite value
//! (E4M3 has no infinity; E5M2 saturates finite overflow too, as the
//! "saturating" conversion mode of the spec). NaN maps to NaN.

use half::{bf16, f16};
use std::fmt;

/// The element type of a tensor's storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F16,
    BF16,
    F8E4M3,
    F8E5M2,
    U8,
    U32,
    I64,
}

impl DType {
    pub const ALL: [DType; 8] = [DType::F32, DType::F16, DType::BF16, DType::F8E4M3, DType::F8E5M2, DType::U8, DType::U32, DType::I64];

    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::F8E4M3 | DType::F8E5M2 | DType::U8 => 1,
            DType::I64 => 8,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16 | DType::F8E4M3 | DType::F8E5M2)
    }

    pub fn is_int(self) -> bool {
        !self.is_float()
    }

    /// Floating-point types that arithmetic kernels compute on. FP8 types are
    /// storage formats: they are cast to a wider type before arithmetic.
    pub fn is_compute_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }

    /// The name safetensors uses for this dtype.
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F8E4M3 => "F8_E4M3",
            DType::F8E5M2 => "F8_E5M2",
            DType::U8 => "U8",
            DType::U32 => "U32",
            DType::I64 => "I64",
        }
    }

    /// Machine epsilon of the storage format (spacing of values near 1.0);
    /// 0 for integers. Used to scale tolerances.
    pub fn epsilon(self) -> f64 {
        match self {
            DType::F32 => f32::EPSILON as f64,
            DType::F16 => 9.765625e-4,
            DType::BF16 => 7.8125e-3,
            DType::F8E4M3 => 0.125,
            DType::F8E5M2 => 0.25,
            _ => 0.0,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F8E4M3 => "f8e4m3",
            DType::F8E5M2 => "f8e5m2",
            DType::U8 => "u8",
            DType::U32 => "u32",
            DType::I64 => "i64",
        };
        f.write_str(s)
    }
}

impl std::str::FromStr for DType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => DType::F32,
            "f16" | "float16" | "half" => DType::F16,
            "bf16" | "bfloat16" => DType::BF16,
            "f8e4m3" | "f8_e4m3" | "float8_e4m3fn" => DType::F8E4M3,
            "f8e5m2" | "f8_e5m2" | "float8_e5m2" => DType::F8E5M2,
            "u8" | "uint8" => DType::U8,
            "u32" | "uint32" => DType::U32,
            "i64" | "int64" => DType::I64,
            _ => return Err(format!("unknown dtype '{s}'")),
        })
    }
}

/// One FP8 format, described by its exponent/mantissa widths.
#[derive(Clone, Copy)]
struct Fp8Format {
    mant_bits: u32,
    bias: i32,
    /// Largest finite magnitude.
    max: f32,
    /// E4M3 has no infinities: its top exponent still encodes finite numbers.
    has_inf: bool,
}

const E4M3: Fp8Format = Fp8Format { mant_bits: 3, bias: 7, max: 448.0, has_inf: false };
const E5M2: Fp8Format = Fp8Format { mant_bits: 2, bias: 15, max: 57344.0, has_inf: true };

impl Fp8Format {
    fn exp_bits(self) -> u32 {
        7 - self.mant_bits
    }

    fn nan_bits(self) -> u8 {
        if self.has_inf {
            0x7e // E5M2: exponent all ones, mantissa non-zero
        } else {
            0x7f // E4M3: S.1111.111
        }
    }

    fn decode(self, bits: u8) -> f32 {
        let sign = if bits & 0x80 != 0 { -1.0f32 } else { 1.0 };
        let mant_mask = (1u8 << self.mant_bits) - 1;
        let exp = ((bits & 0x7f) >> self.mant_bits) as i32;
        let mant = (bits & mant_mask) as i32;
        let exp_max = (1 << self.exp_bits()) - 1;
        if exp == exp_max {
            if self.has_inf {
                return if mant == 0 { sign * f32::INFINITY } else { f32::NAN };
            } else if mant == mant_mask as i32 {
                return f32::NAN;
            }
        }
        let scale = (1u32 << self.mant_bits) as f32;
        if exp == 0 {
            // Subnormal: mant * 2^(1 - bias - mant_bits).
            sign * (mant as f32 / scale) * 2f32.powi(1 - self.bias)
        } else {
            sign * (1.0 + mant as f32 / scale) * 2f32.powi(exp - self.bias)
        }
    }

    fn encode(self, x: f32) -> u8 {
        if x.is_nan() {
            return self.nan_bits();
        }
        let sign: u8 = if x.is_sign_negative() { 0x80 } else { 0 };
        let a = x.abs();
        if a >= self.max {
            // Saturate, including infinities: +-max.
            return sign | self.encode_abs_finite(self.max);
        }
        sign | self.encode_abs_finite(a)
    }

    /// Round-to-nearest-even encoding of a finite, non-negative value below
    /// or equal to `max`. Done on the f32 bit pattern so it is exact.
    fn encode_abs_finite(self, a: f32) -> u8 {
        let bits = a.to_bits();
        let f32_exp = ((bits >> 23) & 0xff) as i32; // biased by 127
        let min_normal_exp = 1 - self.bias; // unbiased exponent of the smallest normal
        let unbiased = f32_exp - 127;
        let shift = 23 - self.mant_bits; // mantissa bits dropped for normals
        let encoded: u32 = if f32_exp == 0 || unbiased < min_normal_exp {
            // Result is subnormal (or zero) in FP8. Its quantum is
            // 2^(min_normal_exp - mant_bits); compute round(a / quantum) exactly
            // on the 24-bit significand.
            if f32_exp == 0 {
                return 0; // f32 subnormals are far below the FP8 quantum
            }
            let sig = (bits & 0x7f_ffff) | 0x80_0000; // value = sig * 2^(unbiased-23)
            let rshift = (min_normal_exp - self.mant_bits as i32) - (unbiased - 23);
            if rshift >= 32 {
                0
            } else {
                round_shift_even(sig, rshift as u32)
            }
            // A carry into the exponent field yields the smallest normal, which
            // is the correct encoding, so no special case is needed.
        } else {
            let e = (unbiased + self.bias) as u32;
            let sig = bits & 0x7f_ffff;
            let m = round_shift_even(sig, shift);
            // Carry out of the mantissa bumps the exponent, as it should.
            (e << self.mant_bits) + m
        };
        encoded as u8
    }
}

/// `v >> s` rounded to nearest, ties to even.
fn round_shift_even(v: u32, s: u32) -> u32 {
    if s == 0 {
        return v;
    }
    let q = v >> s;
    let rem = v & ((1u32 << s) - 1);
    let half = 1u32 << (s - 1);
    if rem > half || (rem == half && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

pub fn f8e4m3_to_f32(bits: u8) -> f32 {
    E4M3.decode(bits)
}
pub fn f32_to_f8e4m3(x: f32) -> u8 {
    E4M3.encode(x)
}
pub fn f8e5m2_to_f32(bits: u8) -> f32 {
    E5M2.decode(bits)
}
pub fn f32_to_f8e5m2(x: f32) -> u8 {
    E5M2.encode(x)
}

/// Rust element types that map one-to-one onto a [`DType`].
pub trait Element: bytemuck::Pod + Send + Sync + std::fmt::Debug + 'static {
    const DTYPE: DType;
}
macro_rules! element {
    ($($t:ty => $d:ident),*) => {$(
        impl Element for $t {
            const DTYPE: DType = DType::$d;
        }
    )*};
}
element!(f32 => F32, f16 => F16, bf16 => BF16, u8 => U8, u32 => U32, i64 => I64);

/// Decodes little-endian elements of `dtype` to f64 (exact for every dtype
/// except i64 beyond 2^53).
pub fn bytes_to_f64(dtype: DType, bytes: &[u8]) -> Vec<f64> {
    let n = bytes.len() / dtype.size_in_bytes();
    let mut out = Vec::with_capacity(n);
    match dtype {
        DType::F32 => out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)),
        DType::F16 => out.extend(bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f64())),
        DType::BF16 => out.extend(bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f64())),
        DType::F8E4M3 => out.extend(bytes.iter().map(|&b| f8e4m3_to_f32(b) as f64)),
        DType::F8E5M2 => out.extend(bytes.iter().map(|&b| f8e5m2_to_f32(b) as f64)),
        DType::U8 => out.extend(bytes.iter().map(|&b| b as f64)),
        DType::U32 => out.extend(bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap()) as f64)),
        DType::I64 => out.extend(bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)),
    }
    out
}

/// `v` rounded to f32 "to odd": an inexact result keeps an odd last bit, so
/// that rounding it again to a format at least two bits narrower (f16, bf16,
/// FP8) gives the correctly rounded value of `v`. Plain `v as f32` followed by
/// a second rounding is off by one unit now and then (double rounding), and
/// `half`'s f64 conversions ignore the low mantissa bits.
fn f64_to_f32_round_odd(v: f64) -> f32 {
    let r = v as f32;
    if v.is_nan() || r as f64 == v || r.to_bits() & 1 == 1 {
        return r;
    }
    // `r` is the even neighbour of `v`: step to the odd one, toward `v`.
    let bits = r.to_bits();
    f32::from_bits(if (r as f64).abs() > v.abs() { bits - 1 } else { bits + 1 })
}

/// Encodes f64 values as little-endian elements of `dtype`. Floats round to
/// nearest, ties to even, once (FP8 saturates); integers round toward zero
/// and saturate.
pub fn f64_to_bytes(dtype: DType, values: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * dtype.size_in_bytes());
    for &v in values {
        match dtype {
            DType::F32 => out.extend_from_slice(&(v as f32).to_le_bytes()),
            DType::F16 => out.extend_from_slice(&f16::from_f32(f64_to_f32_round_odd(v)).to_le_bytes()),
            DType::BF16 => out.extend_from_slice(&bf16::from_f32(f64_to_f32_round_odd(v)).to_le_bytes()),
            DType::F8E4M3 => out.push(f32_to_f8e4m3(f64_to_f32_round_odd(v))),
            DType::F8E5M2 => out.push(f32_to_f8e5m2(f64_to_f32_round_odd(v))),
            DType::U8 => out.push(v as u8),
            DType::U32 => out.extend_from_slice(&(v as u32).to_le_bytes()),
            DType::I64 => out.extend_from_slice(&(v as i64).to_le_bytes()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e4m3_round_trips_every_code() {
        for b in 0u8..=255 {
            let v = f8e4m3_to_f32(b);
            if v.is_nan() {
                assert_eq!(b & 0x7f, 0x7f);
                continue;
            }
            assert_eq!(f32_to_f8e4m3(v), b, "code {b:#x} value {v}");
        }
        assert_eq!(f8e4m3_to_f32(0x7e), 448.0);
        assert_eq!(f8e4m3_to_f32(0x01), 2f32.powi(-9));
    }

    #[test]
    fn e5m2_round_trips_every_code() {
        for b in 0u8..=255 {
            let v = f8e5m2_to_f32(b);
            if v.is_nan() {
                continue;
            }
            if v.is_infinite() {
                // Saturating conversion maps infinity to the largest finite value.
                assert_eq!(f32_to_f8e5m2(v).wrapping_add(1) & 0x7f, 0x7c);
                continue;
            }
            assert_eq!(f32_to_f8e5m2(v), b, "code {b:#x} value {v}");
        }
        assert_eq!(f8e5m2_to_f32(0x7b), 57344.0);
        assert_eq!(f8e5m2_to_f32(0x7c), f32::INFINITY);
    }

    #[test]
    fn fp8_saturates_and_rounds_to_even() {
        assert_eq!(f8e4m3_to_f32(f32_to_f8e4m3(1e6)), 448.0);
        assert_eq!(f8e4m3_to_f32(f32_to_f8e4m3(-1e6)), -448.0);
        assert_eq!(f8e4m3_to_f32(f32_to_f8e4m3(f32::INFINITY)), 448.0);
        assert_eq!(f8e5m2_to_f32(f32_to_f8e5m2(1e9)), 57344.0);
        // 1 + 1/16 is halfway between 1 and 1.125 in E4M3: ties to even -> 1.
        assert_eq!(f8e4m3_to_f32(f32_to_f8e4m3(1.0625)), 1.0);
        // 1.1875 is halfway between 1.125 and 1.25: ties to even -> 1.25.
        assert_eq!(f8e4m3_to_f32(f32_to_f8e4m3(1.1875)), 1.25);
        // Smallest subnormal halfway rounds to zero (even).
        assert_eq!(f32_to_f8e4m3(2f32.powi(-10)), 0);
        assert!(f8e4m3_to_f32(f32_to_f8e4m3(f32::NAN)).is_nan());
        assert!(f8e5m2_to_f32(f32_to_f8e5m2(f32::NAN)).is_nan());
    }

    #[test]
    fn fp8_matches_nearest_value_search() {
        // Brute force: the encoding of x must be a nearest representable value.
        let codes: Vec<f32> = (0u8..0x7f).map(f8e4m3_to_f32).collect();
        let mut x = 1e-4f32;
        while x < 448.0 {
            let got = f8e4m3_to_f32(f32_to_f8e4m3(x));
            let best = codes.iter().map(|c| (c - x).abs()).fold(f32::INFINITY, f32::min);
            assert!(((got - x).abs() - best).abs() <= best * 1e-6, "x={x} got={got}");
            x *= 1.013;
        }
    }
}

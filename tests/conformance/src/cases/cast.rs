//! Casts between every pair of the eight dtypes, compared exactly.

use crate::arr::Arr;
use crate::check::exact;
use crate::gen::Gen;
use crate::input::{input, input_from, poison, Lay};
use crate::reference::{self as rf, float_format, max_finite, round_to};
use crate::Suite;
use tessera_tensor::DType;

const CASES: usize = 6;

pub fn run(s: &mut Suite) {
    let name = "cast";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    for from in s.dtypes() {
        for to in s.dtypes() {
            for _ in 0..CASES {
                let rank = g.below(4);
                let shape = g.shape(rank, true, 2048);
                let lay = Lay::random(&mut g);
                s.case(name, format!("{from} -> {to} {shape:?} {lay}"), |dev| {
                    let x = input(dev, &mut g, &shape, from, lay, &mut |g| cast_value(from, to, g))?;
                    poison(dev, x.v.numel(), to);
                    exact(&x.t.to_dtype(to)?, to, &x.v.map(|v| rf::cast(from, to, v)))
                });
            }
            if from.is_float() && to.is_float() {
                let vals = specials(from, to);
                s.case(name, format!("{from} -> {to} special values {vals:?}"), |dev| {
                    let x = input_from(dev, &Arr::new(vec![vals.len()], vals.clone()), from)?;
                    exact(&x.t.to_dtype(to)?, to, &x.v.map(|v| rf::cast(from, to, v)))
                });
            }
        }
    }
}

/// Range of the exponent (base 2) of the values drawn for a float dtype:
/// past both ends of the narrower formats, so casts hit subnormals,
/// underflow, overflow and saturation.
fn exp_range(dt: DType) -> (f64, f64) {
    match dt {
        DType::F16 => (-25.0, 15.9),
        DType::F8E4M3 => (-10.0, 8.8),
        DType::F8E5M2 => (-17.0, 15.8),
        _ => (-30.0, 30.0),
    }
}

/// A value of `from` whose conversion to `to` is defined: floats going to
/// integers stay in the integer's range (and non-negative for unsigned).
fn cast_value(from: DType, to: DType, g: &mut Gen) -> f64 {
    if from.is_int() {
        return match from {
            DType::U8 => g.int(0, 255) as f64,
            DType::U32 => (2f64.powf(g.uniform(0.0, 32.0)).floor()).min(u32::MAX as f64),
            _ => {
                let v = 2f64.powf(g.uniform(0.0, 40.0)).floor();
                g.signed(v)
            }
        };
    }
    if g.chance(0.05) {
        return 0.0;
    }
    let (mut lo, mut hi) = exp_range(from);
    if to.is_int() {
        // Values that truncate to integers in range after rounding to `from`.
        lo = -2.0;
        hi = hi.min(max_finite(to).min(1e15).log2() - 0.1);
    }
    for _ in 0..32 {
        let mag = 2f64.powf(g.uniform(lo, hi));
        let v = if to == DType::U8 || to == DType::U32 { mag } else { g.signed(mag) };
        let r = round_to(from, v);
        let ok = if to.is_int() { r.trunc() >= -1e15 && r.trunc() <= max_finite(to).min(1e15) } else { r.is_finite() };
        if ok {
            return v;
        }
    }
    1.0
}

/// NaN, infinities, zero, the largest finite values of the source, and
/// values half-way between two neighbours of the target (ties to even), in
/// the normal and the subnormal range, where the source can hold them.
fn specials(from: DType, to: DType) -> Vec<f64> {
    let fmax = max_finite(from);
    let mut v = vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, 1.0, -1.5, fmax, -fmax];
    let (m, emin) = float_format(to);
    let half_ulp = 2f64.powi(-(m + 1));
    let sub_q = 2f64.powi(emin - m);
    for x in [1.0 + half_ulp, 1.0 + 3.0 * half_ulp, -(4.0 + 12.0 * half_ulp), 0.5 * sub_q, 1.5 * sub_q, -2.5 * sub_q] {
        if round_to(from, x) == x {
            v.push(x);
        }
    }
    v
}

//! Transfers, constant tensors, arange, and the seeded rand/randn.

use crate::arr::Arr;
use crate::check::{close, exact, exact_values};
use crate::gen::Gen;
use crate::reference::{max_finite, round_to};
use crate::{bail, Suite, R};
use tessera_tensor::{DType, Tensor};

pub fn run(s: &mut Suite) {
    transfers(s);
    full(s);
    arange(s);
    random(s);
}

/// Uploads and downloads: raw bytes round-trip unchanged (NaN payloads
/// included); f64 values arrive rounded to the dtype.
fn transfers(s: &mut Suite) {
    let name = "upload/download";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    for dt in s.dtypes() {
        for _ in 0..3 {
            let rank = g.below(4);
            let shape = g.shape(rank, true, 4096);
            s.case(name, format!("{dt} {shape:?} raw bytes"), |dev| {
                let n: usize = shape.iter().product();
                let bytes: Vec<u8> = (0..n * dt.size_in_bytes()).map(|_| g.next_u64() as u8).collect();
                let t = Tensor::from_bytes(&bytes, dt, shape.as_slice(), dev)?;
                if t.dims() != shape.as_slice() || t.dtype() != dt {
                    bail!("uploaded as {:?} {}", t.dims(), t.dtype());
                }
                if t.to_bytes()? != bytes {
                    bail!("the bytes read back differ from the bytes uploaded");
                }
                Ok(())
            });
            s.case(name, format!("{dt} {shape:?} values"), |dev| {
                let n: usize = shape.iter().product();
                let vals: Vec<f64> = (0..n)
                    .map(|_| {
                        if dt.is_int() {
                            g.int_value(dt)
                        } else if g.chance(0.05) {
                            g.pick(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0])
                        } else {
                            let v = 2f64.powf(g.uniform(-20.0, max_finite(dt).log2().min(40.0)));
                            g.signed(v)
                        }
                    })
                    .collect();
                let t = Tensor::from_f64_slice(&vals, dt, shape.as_slice(), dev)?;
                exact(&t, dt, &Arr::new(shape.clone(), vals.iter().map(|&v| round_to(dt, v)).collect()))
            });
        }
    }
}

/// zeros, ones and full in every dtype, empty and rank-0 shapes included.
fn full(s: &mut Suite) {
    let name = "full";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    for dt in s.dtypes() {
        let value = match dt {
            DType::U8 => 200.0,
            DType::U32 => 3_000_000_000.0,
            DType::I64 => -1_234_567.0,
            _ => -2.3,
        };
        for which in ["zeros", "ones", "full"] {
            for _ in 0..2 {
                let rank = g.below(4);
                let shape = g.shape(rank, true, 4096);
                s.case(name, format!("{which} {dt} {shape:?}"), |dev| {
                    let (t, v) = match which {
                        "zeros" => (Tensor::zeros(shape.as_slice(), dt, dev)?, 0.0),
                        "ones" => (Tensor::ones(shape.as_slice(), dt, dev)?, 1.0),
                        _ => (Tensor::full(value, shape.as_slice(), dt, dev)?, round_to(dt, value)),
                    };
                    exact(&t, dt, &Arr::filled(&shape, v))
                });
            }
        }
    }
}

fn arange(s: &mut Suite) {
    let name = "arange";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    for dt in s.dtypes() {
        for _ in 0..4 {
            let (start, end, step) = if dt.is_int() {
                // Non-negative values, so that unsigned dtypes hold them.
                let step = g.pick(&[1.0, 2.0, 3.0, -1.0, -4.0]);
                let len = g.int(0, 60) as f64;
                let start = g.int(0, 20) as f64 + if step < 0.0 { -step * len } else { 0.0 };
                (start, start + step * len, step)
            } else {
                let start = (g.int(-20, 20) as f64) * 0.25;
                let step = g.pick(&[0.5, 1.0, 0.1, -0.75, 0.3]);
                (start, start + step * g.int(0, 60) as f64 + step * 0.5, step)
            };
            s.case(name, format!("{dt} {start}..{end} step {step}"), |dev| -> R<()> {
                let t = Tensor::arange(start, end, step, dt, dev)?;
                let n = ((end - start) / step).ceil().max(0.0) as usize;
                let want: Vec<f64> =
                    (0..n).map(|i| start + i as f64 * step).map(|v| if dt.is_int() { v.trunc() } else { round_to(dt, v) }).collect();
                exact(&t, dt, &Arr::new(vec![n], want))
            });
        }
    }
}

// The generator the core documents (tessera_tensor::rng), written again here:
// value `i` of stream `seed` depends only on both.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn uniform(seed: u64, i: u64) -> f64 {
    let w = splitmix64(splitmix64(seed) ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03));
    (w >> 11) as f64 / (1u64 << 53) as f64
}

fn normal(seed: u64, i: u64) -> f64 {
    let (u1, u2) = (uniform(seed, 2 * i), uniform(seed, 2 * i + 1));
    (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// rand/randn: same seed, same values; another seed, other values; the
/// documented counter-based generator; and the moments of the distribution.
fn random(s: &mut Suite) {
    for name in ["rand", "randn"] {
        if !s.on(name) {
            continue;
        }
        let normal_dist = name == "randn";
        for dt in s.stored(&super::FLOATS) {
            for (seed, a, b) in [(7u64, -1.0, 3.0), (123_456_789, 0.0, 1.0), (u64::MAX, 2.0, 0.5)] {
                let shape = [100, 200];
                s.case(name, format!("{dt} {shape:?} seed {seed} params ({a}, {b})"), |dev| {
                    let make = |seed: u64| {
                        if normal_dist {
                            Tensor::randn(seed, a, b, shape, dt, dev)
                        } else {
                            Tensor::rand(seed, a, b, shape, dt, dev)
                        }
                    };
                    let t = make(seed)?;
                    let vals = t.to_f64_vec()?;
                    exact_values(&make(seed)?.to_f64_vec()?, &Arr::new(shape.to_vec(), vals.clone()))
                        .map_err(|e| crate::Fail(format!("the same seed gave other values: {}", e.0)))?;
                    let other = make(seed ^ 1)?.to_f64_vec()?;
                    let same = vals.iter().zip(&other).filter(|(x, y)| x == y).count();
                    if same > vals.len() / 50 {
                        bail!("seeds {seed} and {} agree on {same} of {} values", seed ^ 1, vals.len());
                    }
                    let n = vals.len();
                    let want = Arr::from_fn(&shape, |idx| {
                        let i = (idx[0] * shape[1] + idx[1]) as u64;
                        if normal_dist {
                            a + b * normal(seed, i)
                        } else {
                            a + (b - a) * uniform(seed, i)
                        }
                    });
                    close(&t, dt, &want, 1e-12)?;
                    // Moments: mean and standard deviation within 5 standard errors.
                    let mean = vals.iter().sum::<f64>() / n as f64;
                    let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
                    let (want_mean, want_sd) = if normal_dist { (a, b) } else { ((a + b) / 2.0, (b - a).abs() / 12f64.sqrt()) };
                    let se = want_sd / (n as f64).sqrt();
                    let tol_q = 2.0 * dt.epsilon() * want_mean.abs().max(want_sd);
                    if (mean - want_mean).abs() > 5.0 * se + tol_q || (sd - want_sd).abs() > 5.0 * want_sd / (2.0 * n as f64).sqrt() + tol_q
                    {
                        bail!("mean {mean:.4} sd {sd:.4}, expected {want_mean:.4} and {want_sd:.4}");
                    }
                    if !normal_dist {
                        let (lo, hi) = (a.min(b), a.max(b));
                        if let Some(v) = vals.iter().find(|&&v| !(v >= round_to(dt, lo) && v <= round_to(dt, hi))) {
                            bail!("value {v} outside [{lo}, {hi})");
                        }
                    }
                    Ok(())
                });
            }
        }
    }
}

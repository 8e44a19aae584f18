//! The float64 reference: every op of the suite as plain loops over
//! row-major f64 arrays ([`Arr`]), with explicit index arithmetic. It calls no
//! tensor op. Integer ops are done exactly (i128) and wrapped to the width of
//! the dtype.

use crate::arr::{for_each_index, lines, numel, strides, Arr};
use std::cmp::Ordering;
use tessera_tensor::{ArgReduceOp, BinaryOp, CmpOp, Conv2dParams, DType, ReduceOp, RopeStyle, UnaryOp};

// ------------------------------------------------------------------ dtypes

/// `x` rounded to the nearest value of `dtype` (ties to even). f16 and bf16
/// overflow to infinity; FP8 saturates to its largest finite value,
/// infinities included (the core's OCP "saturating" conversion). Integer
/// dtypes are returned unchanged.
pub fn round_to(dtype: DType, x: f64) -> f64 {
    match dtype {
        DType::F32 => x as f32 as f64,
        DType::F16 => round_float(x, 10, -14, 65504.0, false),
        DType::BF16 => round_float(x, 7, -126, 3.3895313892515355e38, false),
        DType::F8E4M3 => round_float(x, 3, -6, 448.0, true),
        DType::F8E5M2 => round_float(x, 2, -14, 57344.0, true),
        DType::U8 | DType::U32 | DType::I64 => x,
    }
}

/// Largest finite value of a float dtype.
pub fn max_finite(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => f32::MAX as f64,
        DType::F16 => 65504.0,
        DType::BF16 => 3.3895313892515355e38,
        DType::F8E4M3 => 448.0,
        DType::F8E5M2 => 57344.0,
        DType::U8 => 255.0,
        DType::U32 => u32::MAX as f64,
        DType::I64 => i64::MAX as f64,
    }
}

/// Explicit mantissa bits and smallest normal exponent of a float dtype.
pub fn float_format(dtype: DType) -> (i32, i32) {
    match dtype {
        DType::F32 => (23, -126),
        DType::F16 => (10, -14),
        DType::BF16 => (7, -126),
        DType::F8E4M3 => (3, -6),
        DType::F8E5M2 => (2, -14),
        _ => (0, 0),
    }
}

/// Rounds to a binary format with `mant` explicit mantissa bits, smallest
/// normal exponent `emin` (subnormals below) and largest finite `max`.
fn round_float(x: f64, mant: i32, emin: i32, max: f64, saturate: bool) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.is_infinite() {
        return if saturate { max.copysign(x) } else { x };
    }
    if x == 0.0 {
        return x;
    }
    let a = x.abs();
    let biased = ((a.to_bits() >> 52) & 0x7ff) as i32;
    let e = (biased - 1023).max(emin);
    let quantum = 2f64.powi(e - mant);
    let r = (a / quantum).round_ties_even() * quantum;
    let r = if r > max {
        if saturate {
            max
        } else {
            f64::INFINITY
        }
    } else {
        r
    };
    r.copysign(x)
}

/// An exact integer result wrapped to the width of `dtype`.
pub fn wrap(dtype: DType, v: i128) -> f64 {
    match dtype {
        DType::U8 => v.rem_euclid(1 << 8) as f64,
        DType::U32 => v.rem_euclid(1 << 32) as f64,
        DType::I64 => v as i64 as f64,
        _ => v as f64,
    }
}

/// Conversion of one value from `from` to `to`: integers to floats through
/// f32 (as PyTorch), floats to integers by truncation (values in range),
/// integers to integers by wrapping, floats to floats by rounding.
pub fn cast(from: DType, to: DType, x: f64) -> f64 {
    if to.is_float() {
        let x = if from.is_int() { x as f32 as f64 } else { x };
        round_to(to, x)
    } else if from.is_float() {
        wrap(to, x.trunc() as i128)
    } else {
        wrap(to, x as i128)
    }
}

// ------------------------------------------------------------ elementwise

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub fn unary(op: UnaryOp, x: f64) -> f64 {
    use std::f64::consts::{FRAC_1_SQRT_2, PI};
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Square => x * x,
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => sigmoid(x),
        UnaryOp::Relu => {
            if x.is_nan() || x > 0.0 {
                x
            } else {
                0.0
            }
        }
        UnaryOp::Silu => x * sigmoid(x),
        UnaryOp::Gelu => 0.5 * x * (1.0 + libm::erf(x * FRAC_1_SQRT_2)),
        UnaryOp::GeluTanh => 0.5 * x * (1.0 + ((2.0 / PI).sqrt() * (x + 0.044715 * x * x * x)).tanh()),
        UnaryOp::QuickGelu => x * sigmoid(1.702 * x),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
    }
}

pub fn unary_int(op: UnaryOp, dtype: DType, x: f64) -> f64 {
    let v = x as i128;
    wrap(
        dtype,
        match op {
            UnaryOp::Neg => -v,
            UnaryOp::Abs => v.abs(),
            UnaryOp::Square => v * v,
            UnaryOp::Relu => v.max(0),
            _ => unreachable!("{op:?} is not an integer op"),
        },
    )
}

pub fn binary(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Maximum if a.is_nan() || b.is_nan() => f64::NAN,
        BinaryOp::Minimum if a.is_nan() || b.is_nan() => f64::NAN,
        BinaryOp::Maximum => a.max(b),
        BinaryOp::Minimum => a.min(b),
        BinaryOp::Pow => a.powf(b),
    }
}

/// Integer binary op; division truncates toward zero (`b != 0`).
pub fn binary_int(op: BinaryOp, dtype: DType, a: f64, b: f64) -> f64 {
    let (a, b) = (a as i128, b as i128);
    wrap(
        dtype,
        match op {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Maximum => a.max(b),
            BinaryOp::Minimum => a.min(b),
            BinaryOp::Pow => unreachable!("pow is float-only"),
        },
    )
}

pub fn compare(op: CmpOp, a: f64, b: f64) -> f64 {
    let r = match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
    };
    r as u8 as f64
}

// ------------------------------------------------------------- reductions

/// The shape after reducing `dims` (kept as 1, or removed).
pub fn reduced_shape(shape: &[usize], dims: &[usize], keepdim: bool) -> Vec<usize> {
    if keepdim {
        shape.iter().enumerate().map(|(d, &s)| if dims.contains(&d) { 1 } else { s }).collect()
    } else {
        shape.iter().enumerate().filter(|(d, _)| !dims.contains(d)).map(|(_, &s)| s).collect()
    }
}

/// Sum/mean/max/min over `dims` (resolved, unique). `int` is the dtype of
/// integer inputs (exact sums, wrapped).
pub fn reduce(op: ReduceOp, x: &Arr, dims: &[usize], keepdim: bool, int: Option<DType>) -> Arr {
    let kshape = reduced_shape(&x.shape, dims, true);
    let ks = strides(&kshape);
    let mut groups: Vec<Vec<f64>> = vec![Vec::new(); numel(&kshape)];
    for_each_index(&x.shape, |flat, idx| {
        let o: usize = (0..idx.len()).filter(|d| !dims.contains(d)).map(|d| idx[d] * ks[d]).sum();
        groups[o].push(x.data[flat]);
    });
    let data = groups
        .iter()
        .map(|g| match (op, int) {
            (ReduceOp::Sum | ReduceOp::Mean, Some(dt)) => wrap(dt, g.iter().map(|&v| v as i128).sum()),
            (ReduceOp::Sum, None) => g.iter().sum(),
            (ReduceOp::Mean, None) => g.iter().sum::<f64>() / g.len() as f64,
            (ReduceOp::Max | ReduceOp::Min, _) if g.iter().any(|v| v.is_nan()) => f64::NAN,
            (ReduceOp::Max, _) => g.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            (ReduceOp::Min, _) => g.iter().copied().fold(f64::INFINITY, f64::min),
        })
        .collect();
    Arr::new(reduced_shape(&x.shape, dims, keepdim), data)
}

/// Index of the first extreme along `dim` (the first NaN if there is one).
pub fn arg_reduce(op: ArgReduceOp, x: &Arr, dim: usize, keepdim: bool) -> Arr {
    let (outer, size, inner) = lines(&x.shape, dim);
    let mut data = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for n in 0..inner {
            let at = |i: usize| x.data[(o * size + i) * inner + n];
            let mut best = 0;
            for i in 0..size {
                let (v, b) = (at(i), at(best));
                if b.is_nan() {
                    break;
                }
                let better = match op {
                    ArgReduceOp::ArgMax => v > b,
                    ArgReduceOp::ArgMin => v < b,
                };
                if v.is_nan() || better {
                    best = i;
                }
            }
            data.push(best as f64);
        }
    }
    Arr::new(reduced_shape(&x.shape, &[dim], keepdim), data)
}

pub fn cumsum(x: &Arr, dim: usize, int: Option<DType>) -> Arr {
    let (outer, size, inner) = lines(&x.shape, dim);
    let mut out = x.clone();
    for o in 0..outer {
        for n in 0..inner {
            let (mut acc, mut iacc) = (0.0f64, 0i128);
            for i in 0..size {
                let p = (o * size + i) * inner + n;
                match int {
                    Some(dt) => {
                        iacc += x.data[p] as i128;
                        out.data[p] = wrap(dt, iacc);
                    }
                    None => {
                        acc += x.data[p];
                        out.data[p] = acc;
                    }
                }
            }
        }
    }
    out
}

/// Ascending order with NaN above everything.
fn nan_last(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap(),
    }
}

/// Stable sort order along `dim` (NaN last ascending, first descending).
pub fn argsort(x: &Arr, dim: usize, descending: bool) -> Arr {
    let (outer, size, inner) = lines(&x.shape, dim);
    let mut out = Arr::filled(&x.shape, 0.0);
    for o in 0..outer {
        for n in 0..inner {
            let at = |i: usize| x.data[(o * size + i) * inner + n];
            let mut idx: Vec<usize> = (0..size).collect();
            if descending {
                idx.sort_by(|&i, &j| nan_last(at(j), at(i)));
            } else {
                idx.sort_by(|&i, &j| nan_last(at(i), at(j)));
            }
            for (i, &k) in idx.iter().enumerate() {
                out.data[(o * size + i) * inner + n] = k as f64;
            }
        }
    }
    out
}

// ------------------------------------------------------------------ matmul

/// NumPy `matmul`: batch dims broadcast; a 1-D lhs is a row, a 1-D rhs a
/// column, and those dims are dropped from the result.
pub fn matmul(a: &Arr, b: &Arr) -> Arr {
    let a2 = if a.rank() == 1 { a.reshape(&[1, a.shape[0]]) } else { a.clone() };
    let b2 = if b.rank() == 1 { b.reshape(&[b.shape[0], 1]) } else { b.clone() };
    let (ra, rb) = (a2.rank(), b2.rank());
    let (m, k, n) = (a2.shape[ra - 2], a2.shape[ra - 1], b2.shape[rb - 1]);
    let batch = crate::arr::broadcast_shapes(&[&a2.shape[..ra - 2], &b2.shape[..rb - 2]]).expect("batch dims broadcast");
    let mut shape = batch.clone();
    shape.extend([m, n]);
    let aa = a2.broadcast_to(&[batch.as_slice(), &[m, k]].concat());
    let bb = b2.broadcast_to(&[batch.as_slice(), &[k, n]].concat());
    let nb = numel(&batch);
    let mut data = vec![0.0; nb * m * n];
    for bi in 0..nb {
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0;
                for p in 0..k {
                    acc += aa.data[(bi * m + i) * k + p] * bb.data[(bi * k + p) * n + j];
                }
                data[(bi * m + i) * n + j] = acc;
            }
        }
    }
    let mut out_shape = batch;
    if a.rank() > 1 {
        out_shape.push(m);
    }
    if b.rank() > 1 {
        out_shape.push(n);
    }
    Arr::new(out_shape, data)
}

// ---------------------------------------------------------------- indexing

/// Entries of `dim` picked by `ids`.
pub fn index_select(x: &Arr, ids: &[usize], dim: usize) -> Arr {
    let mut shape = x.shape.clone();
    shape[dim] = ids.len();
    let mut src = vec![0; x.rank()];
    Arr::from_fn(&shape, |idx| {
        src.copy_from_slice(idx);
        src[dim] = ids[idx[dim]];
        x.at(&src)
    })
}

/// `out[idx] = x[idx with idx[dim] = ids[idx]]`.
pub fn gather(x: &Arr, ids: &Arr, dim: usize) -> Arr {
    let mut src = vec![0; x.rank()];
    Arr::from_fn(&ids.shape, |idx| {
        src.copy_from_slice(idx);
        src[dim] = ids.at(idx) as usize;
        x.at(&src)
    })
}

pub fn cat(xs: &[&Arr], dim: usize) -> Arr {
    let mut shape = xs[0].shape.clone();
    shape[dim] = xs.iter().map(|x| x.shape[dim]).sum();
    let mut src = vec![0; shape.len()];
    Arr::from_fn(&shape, |idx| {
        src.copy_from_slice(idx);
        let mut i = idx[dim];
        for x in xs {
            if i < x.shape[dim] {
                src[dim] = i;
                return x.at(&src);
            }
            i -= x.shape[dim];
        }
        unreachable!("index inside the concatenation")
    })
}

pub fn stack(xs: &[&Arr], dim: usize) -> Arr {
    let expanded: Vec<Arr> = xs
        .iter()
        .map(|x| {
            let mut s = x.shape.clone();
            s.insert(dim, 1);
            x.reshape(&s)
        })
        .collect();
    cat(&expanded.iter().collect::<Vec<_>>(), dim)
}

// --------------------------------------------------------------- fused ops

/// Softmax (or log-softmax) along `dim`.
pub fn softmax(x: &Arr, dim: usize, log: bool) -> Arr {
    let (outer, size, inner) = lines(&x.shape, dim);
    let mut out = x.clone();
    for o in 0..outer {
        for n in 0..inner {
            let p = |i: usize| (o * size + i) * inner + n;
            let max = (0..size).map(|i| x.data[p(i)]).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..size).map(|i| (x.data[p(i)] - max).exp()).sum();
            for i in 0..size {
                let v = x.data[p(i)] - max;
                out.data[p(i)] = if log { v - sum.ln() } else { v.exp() / sum };
            }
        }
    }
    out
}

/// Mean and biased variance.
fn moments(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (mean, v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n)
}

pub fn layer_norm(x: &Arr, w: Option<&Arr>, b: Option<&Arr>, eps: f64) -> Arr {
    let d = *x.shape.last().unwrap();
    let mut out = x.clone();
    for (row, o) in x.data.chunks(d.max(1)).zip(out.data.chunks_mut(d.max(1))) {
        let (mean, var) = moments(row);
        for j in 0..row.len() {
            let y = (row[j] - mean) / (var + eps).sqrt();
            o[j] = y * w.map_or(1.0, |w| w.data[j]) + b.map_or(0.0, |b| b.data[j]);
        }
    }
    out
}

pub fn rms_norm(x: &Arr, w: Option<&Arr>, eps: f64) -> Arr {
    let d = *x.shape.last().unwrap();
    let mut out = x.clone();
    for (row, o) in x.data.chunks(d.max(1)).zip(out.data.chunks_mut(d.max(1))) {
        let ms = row.iter().map(|v| v * v).sum::<f64>() / row.len() as f64;
        for j in 0..row.len() {
            o[j] = row[j] / (ms + eps).sqrt() * w.map_or(1.0, |w| w.data[j]);
        }
    }
    out
}

/// Rotary embedding of `x` `[..., t, d]` by `cos`/`sin` `[t, h]`: features
/// `(i, i + h)` (half split) or `(2i, 2i + 1)` (interleaved) rotate by the
/// angle of position `t` and pair `i`; features from `2h` on pass through.
pub fn rope(x: &Arr, cos: &Arr, sin: &Arr, style: RopeStyle) -> Arr {
    let r = x.rank();
    let (t, d) = (x.shape[r - 2], x.shape[r - 1]);
    let h = cos.shape[1];
    let mut out = x.clone();
    for_each_index(&x.shape[..r - 1], |row, idx| {
        let pos = idx[r - 2];
        let base = row * d;
        debug_assert!(pos < t);
        for i in 0..h {
            let (a, b) = match style {
                RopeStyle::HalfSplit => (i, i + h),
                RopeStyle::Interleaved => (2 * i, 2 * i + 1),
            };
            let (c, s) = (cos.data[pos * h + i], sin.data[pos * h + i]);
            let (xa, xb) = (x.data[base + a], x.data[base + b]);
            out.data[base + a] = xa * c - xb * s;
            out.data[base + b] = xb * c + xa * s;
        }
    });
    out
}

/// Direct convolution: `out[n, o, y, x] = bias[o] + sum over the group's
/// input channels and the kernel taps inside the zero-padded input`.
pub fn conv2d(x: &Arr, w: &Arr, bias: Option<&Arr>, p: &Conv2dParams) -> Arr {
    let (n, h, wd) = (x.shape[0], x.shape[2], x.shape[3]);
    let (o, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let (oh, ow) = p.output_size((h, wd), (kh, kw)).expect("kernel fits");
    let og = o / p.groups;
    Arr::from_fn(&[n, o, oh, ow], |idx| {
        let (ni, oc, oy, ox) = (idx[0], idx[1], idx[2], idx[3]);
        let g = oc / og;
        let mut acc = bias.map_or(0.0, |b| b.data[oc]);
        for ci in 0..cg {
            for ki in 0..kh {
                let iy = (oy * p.stride.0 + ki * p.dilation.0) as isize - p.padding.0 as isize;
                if iy < 0 || iy as usize >= h {
                    continue;
                }
                for kj in 0..kw {
                    let ix = (ox * p.stride.1 + kj * p.dilation.1) as isize - p.padding.1 as isize;
                    if ix < 0 || ix as usize >= wd {
                        continue;
                    }
                    acc += x.at(&[ni, g * cg + ci, iy as usize, ix as usize]) * w.at(&[oc, ci, ki, kj]);
                }
            }
        }
        acc
    })
}

/// Group norm of `[n, c, ...]`: statistics per (sample, group of `c/groups`
/// channels) over the channels and all spatial positions.
pub fn group_norm(x: &Arr, groups: usize, w: Option<&Arr>, b: Option<&Arr>, eps: f64) -> Arr {
    let (n, c) = (x.shape[0], x.shape[1]);
    let spatial = numel(&x.shape[2..]);
    let cpg = c / groups;
    let mut out = x.clone();
    for ni in 0..n {
        for gi in 0..groups {
            let start = (ni * c + gi * cpg) * spatial;
            let len = cpg * spatial;
            let (mean, var) = moments(&x.data[start..start + len]);
            for j in 0..len {
                let ch = gi * cpg + j / spatial;
                let y = (x.data[start + j] - mean) / (var + eps).sqrt();
                out.data[start + j] = y * w.map_or(1.0, |w| w.data[ch]) + b.map_or(0.0, |b| b.data[ch]);
            }
        }
    }
    out
}

/// Nearest resize: output `(y, x)` reads input `(y * h / oh, x * w / ow)`.
pub fn upsample_nearest2d(x: &Arr, oh: usize, ow: usize) -> Arr {
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    Arr::from_fn(&[n, c, oh, ow], |idx| x.at(&[idx[0], idx[1], idx[2] * h / oh, idx[3] * w / ow]))
}

/// `softmax(q k^T scale + mask) v` per (batch, head, query); query head `h`
/// uses KV head `h / (hq / hkv)`; causal hides keys `j > i + tk - tq`. A
/// query that sees no key (every score `-inf`) gets zeros.
pub fn attention(q: &Arr, k: &Arr, v: &Arr, mask: Option<&Arr>, scale: f64, causal: bool) -> Arr {
    let (b, hq, tq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3]);
    let (hkv, tk) = (k.shape[1], k.shape[2]);
    let dv = v.shape[3];
    let mask = mask.map(|m| m.broadcast_to(&[b, hq, tq, tk]));
    let mut out = Arr::filled(&[b, hq, tq, dv], 0.0);
    let mut scores = vec![0.0; tk];
    for bi in 0..b {
        for h in 0..hq {
            let kvh = h / (hq / hkv);
            for i in 0..tq {
                for (j, s) in scores.iter_mut().enumerate() {
                    let dot: f64 = (0..d).map(|e| q.at(&[bi, h, i, e]) * k.at(&[bi, kvh, j, e])).sum();
                    *s = dot * scale + mask.as_ref().map_or(0.0, |m| m.at(&[bi, h, i, j]));
                    if causal && j as isize > i as isize + tk as isize - tq as isize {
                        *s = f64::NEG_INFINITY;
                    }
                }
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if max == f64::NEG_INFINITY {
                    continue; // no visible key: the output row stays zero
                }
                let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                for e in 0..dv {
                    let acc: f64 = scores.iter().enumerate().map(|(j, s)| (s - max).exp() / sum * v.at(&[bi, kvh, j, e])).sum();
                    let p = out.pos(&[bi, h, i, e]);
                    out.data[p] = acc;
                }
            }
        }
    }
    out
}

//! Row-wise fused ops: softmax, layer/RMS norm, rope, group norm. Each reads
//! its input once as f32 rows, works on a row per task, and rounds once.

use super::read::{read_f32, PAR_MIN};
use super::{vecmath, CpuStorage};
use crate::backend::{NormKind, RopeStyle, UnaryOp, View};
use crate::DType;
use rayon::prelude::*;
use std::borrow::Cow;

/// Runs `f(row_index, input_row, output_row)` over rows of `len`.
fn rows_map(x: &[f32], len: usize, f: impl Fn(usize, &[f32], &mut [f32]) + Sync + Send) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    if len == 0 {
        return out;
    }
    if x.len() >= PAR_MIN {
        out.par_chunks_mut(len).zip(x.par_chunks(len)).enumerate().for_each(|(i, (o, r))| f(i, r, o));
    } else {
        out.chunks_mut(len).zip(x.chunks(len)).enumerate().for_each(|(i, (o, r))| f(i, r, o));
    }
    out
}

fn last_dim(v: &View) -> usize {
    v.layout.shape().last().copied().unwrap_or(1)
}

fn opt_f32<'a>(v: Option<View<'a>>) -> Option<Cow<'a, [f32]>> {
    v.map(read_f32)
}

pub fn softmax_last(src: View, log: bool) -> CpuStorage {
    let x = read_f32(src);
    let out = rows_map(&x, last_dim(&src), |_, r, o| {
        let max = vecmath::max(r);
        o.copy_from_slice(r);
        let sum = vecmath::exp_shifted_sum(o, max);
        if log {
            let shift = max + sum.ln();
            for (oi, &xi) in o.iter_mut().zip(r) {
                *oi = xi - shift;
            }
        } else {
            let inv = 1.0 / sum;
            o.iter_mut().for_each(|v| *v *= inv);
        }
    });
    CpuStorage::from_f32(src.dtype(), out)
}

/// Mean and biased variance of a row (two passes in f64).
fn moments(r: &[f32]) -> (f32, f32) {
    let n = r.len() as f64;
    let mean = vecmath::sum_f64(r) / n;
    (mean as f32, (vecmath::sum_sq_dev_f64(r, mean) / n) as f32)
}

pub fn layer_norm(x: View, w: Option<View>, b: Option<View>, eps: f32) -> CpuStorage {
    let xs = read_f32(x);
    let (w, b) = (opt_f32(w), opt_f32(b));
    let out = rows_map(&xs, last_dim(&x), |_, r, o| layer_row(r, o, w.as_deref(), b.as_deref(), eps));
    CpuStorage::from_f32(x.dtype(), out)
}

/// `o = o * w + b` with either part optional (separate loops vectorise).
fn scale_shift(o: &mut [f32], w: Option<&[f32]>, b: Option<&[f32]>) {
    if let Some(w) = w {
        o.iter_mut().zip(w).for_each(|(v, &w)| *v *= w);
    }
    if let Some(b) = b {
        o.iter_mut().zip(b).for_each(|(v, &b)| *v += b);
    }
}

pub fn rms_norm(x: View, w: Option<View>, eps: f32) -> CpuStorage {
    let xs = read_f32(x);
    let w = opt_f32(w);
    let out = rows_map(&xs, last_dim(&x), |_, r, o| rms_row(r, o, w.as_deref(), eps));
    CpuStorage::from_f32(x.dtype(), out)
}

fn layer_row(r: &[f32], o: &mut [f32], w: Option<&[f32]>, b: Option<&[f32]>, eps: f32) {
    let (mean, var) = moments(r);
    let inv = 1.0 / (var + eps).sqrt();
    for (oi, &xi) in o.iter_mut().zip(r) {
        *oi = (xi - mean) * inv;
    }
    scale_shift(o, w, b);
}

fn rms_row(r: &[f32], o: &mut [f32], w: Option<&[f32]>, eps: f32) {
    let ms = vecmath::sum_sq_dev_f64(r, 0.0) / r.len() as f64;
    let inv = 1.0 / (ms as f32 + eps).sqrt();
    for (oi, &xi) in o.iter_mut().zip(r) {
        *oi = xi * inv;
    }
    scale_shift(o, w, None);
}

/// `(norm(x + residual), x + residual)`: the sum is rounded to the dtype
/// (as a separate add would store it) and normalised from there.
pub fn add_norm(x: View, res: View, w: Option<View>, b: Option<View>, eps: f32, kind: NormKind) -> (CpuStorage, CpuStorage) {
    let (xs, rs) = (read_f32(x), read_f32(res));
    let round: fn(f32) -> f32 = match x.dtype() {
        DType::F16 => |v| half::f16::from_f32(v).to_f32(),
        DType::BF16 => |v| half::bf16::from_f32(v).to_f32(),
        _ => |v| v,
    };
    let sum = |(hi, (&a, &c)): (&mut f32, (&f32, &f32))| *hi = round(a + c);
    let mut h = vec![0.0f32; xs.len()];
    if xs.len() >= PAR_MIN {
        h.par_iter_mut().zip(xs.par_iter().zip(rs.par_iter())).for_each(sum);
    } else {
        h.iter_mut().zip(xs.iter().zip(rs.iter())).for_each(sum);
    }
    let (w, b) = (opt_f32(w), opt_f32(b));
    let out = rows_map(&h, last_dim(&x), |_, r, o| match kind {
        NormKind::Layer => layer_row(r, o, w.as_deref(), b.as_deref(), eps),
        NormKind::Rms => rms_row(r, o, w.as_deref(), eps),
    });
    (CpuStorage::from_f32(x.dtype(), out), CpuStorage::from_f32(x.dtype(), h))
}

/// `x[i] = act(x[i])` in place, in chunks (for a product's epilogue).
pub fn activate_in_place(x: &mut [f32], act: UnaryOp) {
    const CHUNK: usize = 4096;
    let f = |c: &mut [f32]| {
        let mut tmp = [0.0f32; CHUNK];
        let t = &mut tmp[..c.len()];
        t.copy_from_slice(c);
        vecmath::unary_slice(act, t, c);
    };
    if x.len() >= PAR_MIN {
        x.par_chunks_mut(CHUNK).for_each(f);
    } else {
        x.chunks_mut(CHUNK).for_each(f);
    }
}

pub fn rope(x: View, cos: View, sin: View, style: RopeStyle) -> CpuStorage {
    let xs = read_f32(x);
    let (c, s) = (read_f32(cos), read_f32(sin));
    let shape = x.layout.shape();
    let t = shape[shape.len() - 2];
    let half = cos.layout.shape()[1];
    let out = rows_map(&xs, last_dim(&x), |row, r, o| {
        let pos = row % t;
        let (c, s) = (&c[pos * half..(pos + 1) * half], &s[pos * half..(pos + 1) * half]);
        o.copy_from_slice(r);
        match style {
            RopeStyle::HalfSplit => {
                // Contiguous halves: these loops vectorise.
                let (x1, x2) = (&r[..half], &r[half..2 * half]);
                let (o1, rest) = o.split_at_mut(half);
                for i in 0..half {
                    o1[i] = x1[i] * c[i] - x2[i] * s[i];
                }
                for i in 0..half {
                    rest[i] = x2[i] * c[i] + x1[i] * s[i];
                }
            }
            RopeStyle::Interleaved => {
                for i in 0..half {
                    let (a, b) = (r[2 * i], r[2 * i + 1]);
                    o[2 * i] = a * c[i] - b * s[i];
                    o[2 * i + 1] = b * c[i] + a * s[i];
                }
            }
        }
    });
    CpuStorage::from_f32(x.dtype(), out)
}

pub fn group_norm(x: View, groups: usize, w: Option<View>, b: Option<View>, eps: f32) -> CpuStorage {
    let xs = read_f32(x);
    let (w, b) = (opt_f32(w), opt_f32(b));
    let shape = x.layout.shape();
    let c = shape[1];
    let spatial = crate::shape::numel(&shape[2..]);
    let group_len = (c / groups) * spatial;
    let out = rows_map(&xs, group_len, |gi, r, o| {
        let (mean, var) = moments(r);
        let inv = 1.0 / (var + eps).sqrt();
        let c0 = (gi % groups) * (c / groups);
        for (j, (oi, &xi)) in o.iter_mut().zip(r).enumerate() {
            let ch = c0 + j / spatial.max(1);
            let y = (xi - mean) * inv;
            let y = w.as_ref().map_or(y, |w| y * w[ch]);
            *oi = b.as_ref().map_or(y, |b| y + b[ch]);
        }
    });
    CpuStorage::from_f32(x.dtype(), out)
}

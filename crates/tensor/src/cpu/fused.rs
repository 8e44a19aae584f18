//! Row-wise fused ops: softmax, layer/RMS norm, rope, group norm. Each reads
//! its input once as f32 rows, works on a row per task, and rounds once.

use super::read::{read_f32, PAR_MIN};
use super::reduce::sum_f64;
use super::CpuStorage;
use crate::backend::{RopeStyle, View};
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
        let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f64;
        for (oi, &xi) in o.iter_mut().zip(r) {
            let e = (xi - max).exp();
            *oi = e;
            sum += e as f64;
        }
        if log {
            let ls = (sum as f32).ln();
            for (oi, &xi) in o.iter_mut().zip(r) {
                *oi = xi - max - ls;
            }
        } else {
            let inv = (1.0 / sum) as f32;
            o.iter_mut().for_each(|v| *v *= inv);
        }
    });
    CpuStorage::from_f32(src.dtype(), out)
}

/// Mean and biased variance of a row, two-pass in f64.
fn moments(r: &[f32]) -> (f32, f32) {
    let n = r.len() as f64;
    let mean = sum_f64(r) / n;
    let var = r.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, var as f32)
}

pub fn layer_norm(x: View, w: Option<View>, b: Option<View>, eps: f32) -> CpuStorage {
    let xs = read_f32(x);
    let (w, b) = (opt_f32(w), opt_f32(b));
    let out = rows_map(&xs, last_dim(&x), |_, r, o| {
        let (mean, var) = moments(r);
        let inv = 1.0 / (var + eps).sqrt();
        for (j, (oi, &xi)) in o.iter_mut().zip(r).enumerate() {
            let y = (xi - mean) * inv;
            let y = w.as_ref().map_or(y, |w| y * w[j]);
            *oi = b.as_ref().map_or(y, |b| y + b[j]);
        }
    });
    CpuStorage::from_f32(x.dtype(), out)
}

pub fn rms_norm(x: View, w: Option<View>, eps: f32) -> CpuStorage {
    let xs = read_f32(x);
    let w = opt_f32(w);
    let out = rows_map(&xs, last_dim(&x), |_, r, o| {
        let ms = r.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / r.len() as f64;
        let inv = 1.0 / (ms as f32 + eps).sqrt();
        for (j, (oi, &xi)) in o.iter_mut().zip(r).enumerate() {
            let y = xi * inv;
            *oi = w.as_ref().map_or(y, |w| y * w[j]);
        }
    });
    CpuStorage::from_f32(x.dtype(), out)
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
        for i in 0..half {
            let (a, b) = match style {
                RopeStyle::HalfSplit => (i, i + half),
                RopeStyle::Interleaved => (2 * i, 2 * i + 1),
            };
            o[a] = r[a] * c[i] - r[b] * s[i];
            o[b] = r[b] * c[i] + r[a] * s[i];
        }
    });
    CpuStorage::from_f32(x.dtype(), out)
}

pub fn group_norm(x: View, groups: usize, w: Option<View>, b: Option<View>, eps: f32) -> CpuStorage {
    let xs = read_f32(x);
    let (w, b) = (opt_f32(w), opt_f32(b));
    let shape = x.layout.shape();
    let c = shape[1];
    let spatial: usize = shape[2..].iter().product();
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

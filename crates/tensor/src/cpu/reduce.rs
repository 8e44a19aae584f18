//! Reductions, arg-reductions, cumsum and argsort. Each moves the reduced
//! dims to the end (a view), reads that in logical order, and works on
//! contiguous rows.

use super::read::{dims_last, read_f32, read_i64, scatter_to, PAR_MIN};
use super::{vecmath, Buf, CpuStorage};
use crate::backend::{ArgReduceOp, ReduceOp, View};
use crate::shape::numel;
use crate::{DType, Layout};
use rayon::prelude::*;
use std::cmp::Ordering;

/// Splits `data` into rows of `len` and maps each (in parallel when large).
fn map_rows<T: Sync, U: Send>(data: &[T], len: usize, f: impl Fn(&[T]) -> U + Sync + Send) -> Vec<U> {
    if len == 0 {
        return Vec::new();
    }
    if data.len() >= PAR_MIN {
        data.par_chunks(len).map(f).collect()
    } else {
        data.chunks(len).map(f).collect()
    }
}

/// Rows of the view with `dims` last: (values permuted, row length, rows).
fn permuted(src: View, dims: &[usize]) -> (Layout, usize, usize) {
    let perm = dims_last(src.layout.rank(), dims);
    let l = src.layout.permute(&perm).expect("valid permutation");
    let row = numel(&dims.iter().map(|&d| src.layout.shape()[d]).collect::<Vec<_>>());
    let rows: usize =
        src.layout.numel().checked_div(row).unwrap_or_else(|| {
            numel(&(0..src.layout.rank()).filter(|d| !dims.contains(d)).map(|d| src.layout.shape()[d]).collect::<Vec<_>>())
        });
    (l, row, rows)
}

/// The larger of `a` and `b`; a NaN on either side wins (PyTorch's max).
fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() {
        a
    } else if b.is_nan() || b > a {
        b
    } else {
        a
    }
}

/// The smaller of `a` and `b`; a NaN on either side wins (PyTorch's min).
fn nan_min(a: f32, b: f32) -> f32 {
    if a.is_nan() {
        a
    } else if b.is_nan() || b < a {
        b
    } else {
        a
    }
}

pub fn reduce(op: ReduceOp, src: View, dims: &[usize]) -> CpuStorage {
    let dtype = src.dtype();
    let (l, row, rows) = permuted(src, dims);
    let pv = View { storage: src.storage, layout: &l };
    if dtype.is_int() {
        let v = read_i64(pv);
        let out: Vec<i64> = if row == 0 {
            vec![0; rows]
        } else {
            map_rows(&v, row, |r| match op {
                ReduceOp::Sum | ReduceOp::Mean => r.iter().fold(0i64, |a, &b| a.wrapping_add(b)),
                ReduceOp::Max => *r.iter().max().expect("non-empty"),
                ReduceOp::Min => *r.iter().min().expect("non-empty"),
            })
        };
        return CpuStorage::from_i64(dtype, out);
    }
    let v = read_f32(pv);
    let out: Vec<f32> = if row == 0 {
        vec![if op == ReduceOp::Mean { f32::NAN } else { 0.0 }; rows]
    } else {
        map_rows(&v, row, |r| match op {
            ReduceOp::Sum => vecmath::sum_f64(r) as f32,
            ReduceOp::Mean => (vecmath::sum_f64(r) / r.len() as f64) as f32,
            ReduceOp::Max => r.iter().copied().fold(r[0], nan_max),
            ReduceOp::Min => r.iter().copied().fold(r[0], nan_min),
        })
    };
    CpuStorage::from_f32(dtype, out)
}

/// Index of the first extreme value; NaN counts as the extreme (PyTorch).
fn arg_extreme<T: PartialOrd + Copy>(r: &[T], better: impl Fn(T, T) -> bool, is_nan: impl Fn(T) -> bool) -> i64 {
    let mut best = 0;
    for (i, &x) in r.iter().enumerate().skip(1) {
        if is_nan(r[best]) {
            break;
        }
        if is_nan(x) || better(x, r[best]) {
            best = i;
        }
    }
    best as i64
}

pub fn arg_reduce(op: ArgReduceOp, src: View, dim: usize) -> CpuStorage {
    let (l, row, _) = permuted(src, &[dim]);
    let pv = View { storage: src.storage, layout: &l };
    let out = if src.dtype().is_int() {
        let v = read_i64(pv);
        map_rows(&v, row, |r| match op {
            ArgReduceOp::ArgMax => arg_extreme(r, |a, b| a > b, |_| false),
            ArgReduceOp::ArgMin => arg_extreme(r, |a, b| a < b, |_| false),
        })
    } else {
        let v = read_f32(pv);
        map_rows(&v, row, |r| match op {
            ArgReduceOp::ArgMax => arg_extreme(r, |a, b| a > b, f32::is_nan),
            ArgReduceOp::ArgMin => arg_extreme(r, |a, b| a < b, f32::is_nan),
        })
    };
    CpuStorage::new(DType::I64, Buf::I64(out))
}

/// Layout that maps the permuted logical order back to row-major positions.
fn back_order(src: View, dim: usize) -> Layout {
    let perm = dims_last(src.layout.rank(), &[dim]);
    Layout::contiguous(src.layout.shape()).permute(&perm).expect("valid permutation")
}

pub fn cumsum(src: View, dim: usize) -> CpuStorage {
    let dtype = src.dtype();
    let (l, row, _) = permuted(src, &[dim]);
    let pv = View { storage: src.storage, layout: &l };
    let order = back_order(src, dim);
    if dtype.is_int() {
        let v = read_i64(pv);
        let rows: Vec<Vec<i64>> = map_rows(&v, row, |r| {
            let mut acc = 0i64;
            r.iter()
                .map(|&x| {
                    acc = acc.wrapping_add(x);
                    acc
                })
                .collect()
        });
        return CpuStorage::from_i64(dtype, scatter_to(rows.concat(), &order));
    }
    let v = read_f32(pv);
    let rows: Vec<Vec<f32>> = map_rows(&v, row, |r| {
        let mut acc = 0f64;
        r.iter()
            .map(|&x| {
                acc += x as f64;
                acc as f32
            })
            .collect()
    });
    CpuStorage::from_f32(dtype, scatter_to(rows.concat(), &order))
}

/// Total order with NaN above every number (PyTorch sorts NaN last).
fn total_cmp_nan_last(a: f32, b: f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).expect("no NaN"),
    }
}

fn sort_row<T: Copy>(r: &[T], cmp: impl Fn(T, T) -> Ordering, descending: bool) -> Vec<i64> {
    let mut idx: Vec<i64> = (0..r.len() as i64).collect();
    if descending {
        idx.sort_by(|&i, &j| cmp(r[j as usize], r[i as usize]));
    } else {
        idx.sort_by(|&i, &j| cmp(r[i as usize], r[j as usize]));
    }
    idx
}

pub fn argsort(src: View, dim: usize, descending: bool) -> CpuStorage {
    let (l, row, _) = permuted(src, &[dim]);
    let pv = View { storage: src.storage, layout: &l };
    let rows: Vec<Vec<i64>> = if src.dtype().is_int() {
        let v = read_i64(pv);
        map_rows(&v, row, |r| sort_row(r, |a: i64, b| a.cmp(&b), descending))
    } else {
        let v = read_f32(pv);
        map_rows(&v, row, |r| sort_row(r, total_cmp_nan_last, descending))
    };
    CpuStorage::new(DType::I64, Buf::I64(scatter_to(rows.concat(), &back_order(src, dim))))
}

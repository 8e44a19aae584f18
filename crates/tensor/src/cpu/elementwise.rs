//! Copies, casts, and elementwise unary/binary/compare/where.

use super::read::{gather, gather_buf, read_f32, read_i64, Runs, MIN_RUN, PAR_MIN};
use super::{cpu, dispatch, vecmath, Buf, BufElem, CpuStorage};
use crate::backend::{BinaryOp, CmpOp, UnaryOp, View};
use crate::DType;
use rayon::prelude::*;
use std::mem::MaybeUninit;

pub fn copy(src: View) -> CpuStorage {
    CpuStorage::new(src.dtype(), gather_buf(src))
}

pub fn cast(src: View, to: DType) -> CpuStorage {
    let from = src.dtype();
    if from == to {
        return copy(src);
    }
    if from.is_int() && to.is_int() {
        return CpuStorage::from_i64(to, read_i64(src));
    }
    CpuStorage::from_f32(to, read_f32(src).into_owned())
}

/// Maps `f` over `v` in parallel for large inputs.
fn par_map<U: Send>(v: &[f32], f: impl Fn(f32) -> U + Sync + Send) -> Vec<U> {
    if v.len() >= PAR_MIN {
        v.par_iter().map(|&x| f(x)).collect()
    } else {
        v.iter().map(|&x| f(x)).collect()
    }
}

fn unary_i64(op: UnaryOp, x: i64) -> i64 {
    match op {
        UnaryOp::Neg => x.wrapping_neg(),
        UnaryOp::Abs => x.wrapping_abs(),
        UnaryOp::Square => x.wrapping_mul(x),
        UnaryOp::Relu => x.max(0),
        _ => unreachable!("{op:?} is not an integer op"),
    }
}

pub fn unary(op: UnaryOp, src: View) -> CpuStorage {
    let dtype = src.dtype();
    if dtype.is_int() {
        // Unsigned types: neg/abs wrap on the narrow type, as in PyTorch.
        let v: Vec<i64> = read_i64(src).into_iter().map(|x| unary_i64(op, x)).collect();
        return CpuStorage::from_i64(dtype, v);
    }
    let x = read_f32(src);
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(PAR_MIN).zip(x.par_chunks(PAR_MIN)).for_each(|(o, i)| vecmath::unary_slice(op, i, o));
    CpuStorage::from_f32(dtype, out)
}

pub fn affine(src: View, mul: f32, add: f32) -> CpuStorage {
    CpuStorage::from_f32(src.dtype(), par_map(&read_f32(src), |x| x * mul + add))
}

#[inline]
pub fn binary_f32(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        // NaN propagates, as in PyTorch's maximum/minimum.
        BinaryOp::Maximum => {
            if a.is_nan() || b.is_nan() {
                f32::NAN
            } else {
                a.max(b)
            }
        }
        BinaryOp::Minimum => {
            if a.is_nan() || b.is_nan() {
                f32::NAN
            } else {
                a.min(b)
            }
        }
        BinaryOp::Pow => a.powf(b),
    }
}

fn binary_i64(op: BinaryOp, a: i64, b: i64) -> i64 {
    match op {
        BinaryOp::Add => a.wrapping_add(b),
        BinaryOp::Sub => a.wrapping_sub(b),
        BinaryOp::Mul => a.wrapping_mul(b),
        // Integer division by zero has no value; it yields 0 rather than trap.
        BinaryOp::Div => a.checked_div(b).unwrap_or(0),
        BinaryOp::Maximum => a.max(b),
        BinaryOp::Minimum => a.min(b),
        BinaryOp::Pow => unreachable!("pow is float-only"),
    }
}

fn zip_f32<U: Send>(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> U + Sync + Send) -> Vec<U> {
    if a.len() >= PAR_MIN {
        a.par_iter().zip(b.par_iter()).map(|(&x, &y)| f(x, y)).collect()
    } else {
        a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
    }
}

pub fn binary(op: BinaryOp, lhs: View, rhs: View) -> CpuStorage {
    let dtype = lhs.dtype();
    if dtype.is_int() {
        let (a, b) = (read_i64(lhs), read_i64(rhs));
        let v: Vec<i64> = a.iter().zip(&b).map(|(&x, &y)| binary_i64(op, x, y)).collect();
        // Unsigned division must be done on the unsigned values: they are, as
        // the i64 holds them exactly; wrapping narrows back.
        return CpuStorage::from_i64(dtype, v);
    }
    if let Some(out) = binary_f32_runs(op, lhs, rhs) {
        return CpuStorage::from_f32(dtype, out);
    }
    let (a, b) = (read_f32(lhs), read_f32(rhs));
    CpuStorage::from_f32(dtype, zip_f32(&a, &b, |x, y| binary_f32(op, x, y)))
}

/// One operand of a run: consecutive elements, or one element repeated
/// (a dim broadcast by a zero stride).
#[derive(Clone, Copy)]
enum Run<'a> {
    Slice(&'a [f32]),
    Repeat(f32),
}

impl<'a> Run<'a> {
    fn at(data: &'a [f32], offset: usize, stride: usize, len: usize) -> Run<'a> {
        if stride == 0 {
            Run::Repeat(data[offset])
        } else {
            Run::Slice(&data[offset..offset + len])
        }
    }
}

/// `out[i] = f(a[i], b[i])` over one run, in a loop the compiler vectorises.
#[inline(always)]
fn apply_run(f: impl Fn(f32, f32) -> f32, a: Run, b: Run, out: &mut [MaybeUninit<f32>]) {
    match (a, b) {
        (Run::Slice(a), Run::Slice(b)) => out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&x, &y))| _ = o.write(f(x, y))),
        (Run::Slice(a), Run::Repeat(y)) => out.iter_mut().zip(a).for_each(|(o, &x)| _ = o.write(f(x, y))),
        (Run::Repeat(x), Run::Slice(b)) => out.iter_mut().zip(b).for_each(|(o, &y)| _ = o.write(f(x, y))),
        (Run::Repeat(x), Run::Repeat(y)) => out.fill(MaybeUninit::new(f(x, y))),
    }
}

/// Elementwise f32 `op` without materialising either operand, when the
/// innermost (merged) dim is unit-stride or broadcast in both: a bias added
/// to every row, a residual add, a per-channel scale. Returns `None` for
/// other layouts, dtypes, and runs too short to gain from it.
fn binary_f32_runs(op: BinaryOp, lhs: View, rhs: View) -> Option<Vec<f32>> {
    let (Buf::F32(da), Buf::F32(db)) = (cpu(&lhs).buf(), cpu(&rhs).buf()) else { return None };
    let (la, lb) = (lhs.layout, rhs.layout);
    if la.shape() != lb.shape() {
        return None;
    }
    let runs = Runs::new(la.shape(), [la, lb]);
    let [sa, sb] = runs.strides;
    if sa > 1 || sb > 1 || runs.len < MIN_RUN || la.numel() == 0 {
        return None;
    }
    Some(runs.collect_par(|o, [oa, ob]| {
        let (a, b) = (Run::at(da, oa, sa, o.len()), Run::at(db, ob, sb, o.len()));
        match op {
            BinaryOp::Add => apply_run(|x, y| x + y, a, b, o),
            BinaryOp::Sub => apply_run(|x, y| x - y, a, b, o),
            BinaryOp::Mul => apply_run(|x, y| x * y, a, b, o),
            BinaryOp::Div => apply_run(|x, y| x / y, a, b, o),
            _ => apply_run(|x, y| binary_f32(op, x, y), a, b, o),
        }
    }))
}

fn cmp<T: PartialOrd>(op: CmpOp, a: T, b: T) -> u8 {
    (match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
    }) as u8
}

pub fn compare(op: CmpOp, lhs: View, rhs: View) -> CpuStorage {
    let v = if lhs.dtype().is_int() {
        let (a, b) = (read_i64(lhs), read_i64(rhs));
        a.iter().zip(&b).map(|(&x, &y)| cmp(op, x, y)).collect()
    } else {
        let (a, b) = (read_f32(lhs), read_f32(rhs));
        zip_f32(&a, &b, |x, y| cmp(op, x, y))
    };
    CpuStorage::new(DType::U8, Buf::U8(v))
}

pub fn where_cond(cond: View, on_true: View, on_false: View) -> CpuStorage {
    let c = read_i64(cond);
    let buf = cpu(&on_true).buf();
    let out = dispatch!(buf, T => {
        let (t, f) = (gather::<T>(on_true), gather::<T>(on_false));
        T::wrap(c.iter().zip(t.into_iter().zip(f)).map(|(&c, (t, f))| if c != 0 { t } else { f }).collect())
    });
    CpuStorage::new(on_true.dtype(), out)
}

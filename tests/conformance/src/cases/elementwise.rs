//! Unary ops, affine, binary ops with broadcasting, comparisons, where.

use super::{bcast_shapes, compare_out, numeric, FLOATS, INTS};
use crate::arr::Arr;
use crate::check::{exact, expect_err, expect_unsupported};
use crate::gen::Gen;
use crate::input::{input, input_from, poison, Lay};
use crate::reference as rf;
use crate::Suite;
use tessera_tensor::{BinaryOp, CmpOp, DType, Tensor, UnaryOp};

const CASES: usize = 12;
const INF: f64 = f64::INFINITY;
const NAN: f64 = f64::NAN;

pub fn run(s: &mut Suite) {
    unary(s);
    unary_specials(s);
    affine(s);
    binary(s);
    binary_model_shapes(s);
    binary_specials(s);
    compare(s);
    where_cond(s);
}

/// Inputs inside each op's domain, over the range where it is interesting.
fn unary_dist(op: UnaryOp, g: &mut Gen) -> f64 {
    match op {
        UnaryOp::Exp => g.uniform(-10.0, 10.0),
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt => g.log_uniform(1e-3, 1e3),
        UnaryOp::Recip => {
            let v = g.log_uniform(1e-2, 1e2);
            g.signed(v)
        }
        UnaryOp::Sin | UnaryOp::Cos => g.uniform(-10.0, 10.0),
        UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Silu | UnaryOp::Gelu | UnaryOp::GeluTanh | UnaryOp::QuickGelu => g.uniform(-8.0, 8.0),
        _ => g.uniform(-4.0, 4.0),
    }
}

fn unary(s: &mut Suite) {
    for op in UnaryOp::ALL {
        let name = op.name();
        if !s.on(name) {
            continue;
        }
        let mut g = Gen::for_op(name);
        for dt in s.dtypes() {
            let supported = dt.is_compute_float() || (op.is_integer_op() && dt.is_int());
            if !supported {
                s.case(name, format!("{dt} is rejected"), |dev| expect_unsupported(Tensor::zeros(3, dt, dev)?.unary(op)));
                continue;
            }
            for _ in 0..CASES {
                let rank = g.below(5);
                let shape = g.shape(rank, true, 2048);
                let lay = Lay::random(&mut g);
                s.case(name, format!("{dt} {shape:?} {lay}"), |dev| {
                    let x = input(dev, &mut g, &shape, dt, lay, &mut |g| if dt.is_int() { g.int_value(dt) } else { unary_dist(op, g) })?;
                    let want = if dt.is_int() { x.v.map(|v| rf::unary_int(op, dt, v)) } else { x.v.map(|v| rf::unary(op, v)) };
                    poison(dev, want.numel(), dt);
                    compare_out(&x.t.unary(op)?, dt, &want, 1e-10)
                });
            }
        }
    }
}

/// NaN, infinities, zero, overflow; integer wrap-around at the type's edges.
fn unary_specials(s: &mut Suite) {
    let name = "unary specials";
    if !s.on(name) {
        return;
    }
    for op in UnaryOp::ALL {
        for dt in s.stored(&FLOATS) {
            let mut vals = vec![NAN, 0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 30.0, -30.0];
            // x * f(x) with f(-inf) = 0 is NaN or 0 depending on the formula.
            if !matches!(op, UnaryOp::Silu | UnaryOp::Gelu | UnaryOp::GeluTanh | UnaryOp::QuickGelu) {
                vals.extend([INF, -INF]);
            }
            if !matches!(op, UnaryOp::Sin | UnaryOp::Cos) {
                vals.extend([100.0, -100.0]);
            }
            s.case(name, format!("{} {dt} {vals:?}", op.name()), |dev| {
                let x = input_from(dev, &Arr::new(vec![vals.len()], vals.clone()), dt)?;
                compare_out(&x.t.unary(op)?, dt, &x.v.map(|v| rf::unary(op, v)), 1e-10)
            });
        }
        if !op.is_integer_op() {
            continue;
        }
        for dt in s.stored(&INTS) {
            let vals: Vec<f64> = match dt {
                DType::U8 => vec![0.0, 1.0, 2.0, 127.0, 128.0, 255.0],
                DType::U32 => vec![0.0, 1.0, 65536.0, 2147483647.0, 2147483648.0, 4294967295.0],
                _ => vec![0.0, 1.0, -1.0, 67108864.0, -67108864.0, 94906265.0],
            };
            s.case(name, format!("{} {dt} {vals:?}", op.name()), |dev| {
                let x = input_from(dev, &Arr::new(vec![vals.len()], vals.clone()), dt)?;
                exact(&x.t.unary(op)?, dt, &x.v.map(|v| rf::unary_int(op, dt, v)))
            });
        }
    }
}

fn affine(s: &mut Suite) {
    let name = "affine";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    for dt in s.dtypes() {
        if !dt.is_compute_float() {
            s.case(name, format!("{dt} is rejected"), |dev| expect_unsupported(Tensor::zeros(3, dt, dev)?.affine(2.0, 1.0)));
            continue;
        }
        for _ in 0..CASES {
            let rank = g.below(5);
            let shape = g.shape(rank, true, 2048);
            let lay = Lay::random(&mut g);
            let mul = g.pick(&[0.0, 1.0, -1.5, 0.1, 3.0]);
            let add = g.pick(&[0.0, 1.0, -2.5, 0.3]);
            s.case(name, format!("{dt} {shape:?} {lay} * {mul} + {add}"), |dev| {
                let x = input(dev, &mut g, &shape, dt, lay, &mut |g| g.uniform(-4.0, 4.0))?;
                poison(dev, x.v.numel(), dt);
                compare_out(&x.t.affine(mul, add)?, dt, &x.v.map(|v| v * mul + add), 1e-10)
            });
        }
    }
}

fn binary_lhs(op: BinaryOp, dt: DType, g: &mut Gen) -> f64 {
    if dt.is_int() {
        return g.int_value(dt);
    }
    match op {
        BinaryOp::Pow => g.uniform(0.05, 4.0),
        BinaryOp::Maximum | BinaryOp::Minimum if g.chance(0.3) => g.tie_value(dt),
        _ => g.uniform(-4.0, 4.0),
    }
}

fn binary_rhs(op: BinaryOp, dt: DType, g: &mut Gen) -> f64 {
    match (op, dt) {
        (BinaryOp::Div, DType::U8) => g.int(1, 255) as f64,
        (BinaryOp::Div, DType::U32) => {
            if g.chance(0.5) {
                g.int(1, 20) as f64
            } else {
                g.int(1, u32::MAX as i64) as f64
            }
        }
        (BinaryOp::Div, DType::I64) => {
            let v = g.int(1, 1000) as f64;
            g.signed(v)
        }
        (_, dt) if dt.is_int() => g.int_value(dt),
        (BinaryOp::Div, _) => {
            let v = g.uniform(0.25, 4.0);
            g.signed(v)
        }
        (BinaryOp::Pow, _) => g.uniform(-3.0, 3.0),
        (BinaryOp::Maximum | BinaryOp::Minimum, _) if g.chance(0.3) => g.tie_value(dt),
        _ => g.uniform(-4.0, 4.0),
    }
}

fn binary(s: &mut Suite) {
    for op in BinaryOp::ALL {
        let name = op.name();
        if !s.on(name) {
            continue;
        }
        let mut g = Gen::for_op(name);
        for dt in s.dtypes() {
            let supported = if op == BinaryOp::Pow { dt.is_compute_float() } else { numeric(dt) };
            if !supported {
                s.case(name, format!("{dt} is rejected"), |dev| {
                    let a = Tensor::ones(3, dt, dev)?;
                    expect_unsupported(a.binary(op, &a))
                });
                continue;
            }
            for i in 0..CASES + 2 {
                let shapes = bcast_shapes(&mut g, 2, true, 2048);
                let (la, lb) = (Lay::random(&mut g), Lay::random(&mut g));
                // Pow also on negative bases with integer exponents.
                let neg_base = op == BinaryOp::Pow && i >= CASES;
                let desc = format!("{dt} {:?} {la} and {:?} {lb}{}", shapes[0], shapes[1], if neg_base { " negative base" } else { "" });
                s.case(name, desc, |dev| {
                    let a = input(dev, &mut g, &shapes[0], dt, la, &mut |g| {
                        if neg_base {
                            -g.uniform(0.25, 3.0)
                        } else {
                            binary_lhs(op, dt, g)
                        }
                    })?;
                    let b = input(dev, &mut g, &shapes[1], dt, lb, &mut |g| {
                        if neg_base {
                            g.int(-3, 3) as f64
                        } else {
                            binary_rhs(op, dt, g)
                        }
                    })?;
                    let want = if dt.is_int() {
                        Arr::zip(&a.v, &b.v, |x, y| rf::binary_int(op, dt, x, y))
                    } else {
                        Arr::zip(&a.v, &b.v, |x, y| rf::binary(op, x, y))
                    };
                    poison(dev, want.numel(), dt);
                    compare_out(&a.t.binary(op, &b.t)?, dt, &want, 1e-10)
                });
            }
        }
    }
}

/// The broadcasts models make, at sizes above a CPU task (2^14 elements)
/// with rows that do not divide it: a bias over rows, a residual add, a
/// per-channel scale of an image, a row vector over a column, each also on a
/// narrowed (offset, padded) left operand.
fn binary_model_shapes(s: &mut Suite) {
    let name = "binary model shapes";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    let pairs: [(&[usize], &[usize]); 4] =
        [(&[3, 50, 700], &[700]), (&[2, 77, 300], &[2, 77, 300]), (&[2, 6, 40, 45], &[6, 1, 1]), (&[900, 1], &[1, 37])];
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Maximum] {
        for dt in s.stored(&FLOATS) {
            for (sa, sb) in pairs {
                for la in [Lay::Contig, Lay::Strided] {
                    s.case(name, format!("{} {dt} {sa:?} {la} and {sb:?}", op.name()), |dev| {
                        let a = input(dev, &mut g, sa, dt, la, &mut |g| binary_lhs(op, dt, g))?;
                        let b = input(dev, &mut g, sb, dt, Lay::Contig, &mut |g| binary_rhs(op, dt, g))?;
                        let want = Arr::zip(&a.v, &b.v, |x, y| rf::binary(op, x, y));
                        compare_out(&a.t.binary(op, &b.t)?, dt, &want, 1e-10)
                    });
                }
            }
        }
    }
}

/// Every pair of special values, as an `[8, 1]` by `[8]` broadcast.
fn binary_specials(s: &mut Suite) {
    let name = "binary specials";
    if !s.on(name) {
        return;
    }
    let vals = [NAN, INF, -INF, 0.0, 1.0, -1.0, 2.5, -0.5];
    for op in BinaryOp::ALL {
        for dt in s.stored(&FLOATS) {
            s.case(name, format!("{} {dt} {vals:?}", op.name()), |dev| {
                let a = input_from(dev, &Arr::new(vec![8, 1], vals.to_vec()), dt)?;
                let b = input_from(dev, &Arr::new(vec![8], vals.to_vec()), dt)?;
                let want = Arr::zip(&a.v, &b.v, |x, y| rf::binary(op, x, y));
                compare_out(&a.t.binary(op, &b.t)?, dt, &want, 1e-10)
            });
        }
    }
    for op in CmpOp::ALL {
        for dt in s.stored(&FLOATS) {
            s.case(name, format!("{} {dt} {vals:?}", op.name()), |dev| {
                let a = input_from(dev, &Arr::new(vec![8, 1], vals.to_vec()), dt)?;
                let b = input_from(dev, &Arr::new(vec![8], vals.to_vec()), dt)?;
                exact(&a.t.compare(op, &b.t)?, DType::U8, &Arr::zip(&a.v, &b.v, |x, y| rf::compare(op, x, y)))
            });
        }
    }
}

fn compare(s: &mut Suite) {
    for op in CmpOp::ALL {
        let name = op.name();
        if !s.on(name) {
            continue;
        }
        let mut g = Gen::for_op(name);
        for dt in s.dtypes() {
            if !numeric(dt) {
                s.case(name, format!("{dt} is rejected"), |dev| {
                    let a = Tensor::ones(3, dt, dev)?;
                    expect_unsupported(a.compare(op, &a))
                });
                continue;
            }
            for _ in 0..CASES {
                let shapes = bcast_shapes(&mut g, 2, true, 2048);
                let (la, lb) = (Lay::random(&mut g), Lay::random(&mut g));
                s.case(name, format!("{dt} {:?} {la} and {:?} {lb}", shapes[0], shapes[1]), |dev| {
                    let mut dist = |g: &mut Gen| {
                        if g.chance(0.7) {
                            g.tie_value(dt)
                        } else if dt.is_int() {
                            g.int_value(dt)
                        } else {
                            g.uniform(-3.0, 3.0)
                        }
                    };
                    let a = input(dev, &mut g, &shapes[0], dt, la, &mut dist)?;
                    let b = input(dev, &mut g, &shapes[1], dt, lb, &mut dist)?;
                    let want = Arr::zip(&a.v, &b.v, |x, y| rf::compare(op, x, y));
                    poison(dev, want.numel(), DType::U8);
                    exact(&a.t.compare(op, &b.t)?, DType::U8, &want)
                });
            }
        }
    }
}

fn where_cond(s: &mut Suite) {
    let name = "where_cond";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    let conds = s.stored(&INTS);
    if conds.is_empty() {
        return;
    }
    for dt in s.dtypes() {
        for _ in 0..CASES {
            let shapes = bcast_shapes(&mut g, 3, true, 2048);
            let cdt = g.pick(&conds);
            let lays = [Lay::random(&mut g), Lay::random(&mut g), Lay::random(&mut g)];
            let desc = format!("{dt} cond {cdt} {:?} {}, {:?} {}, {:?} {}", shapes[0], lays[0], shapes[1], lays[1], shapes[2], lays[2]);
            s.case(name, desc, |dev| {
                let c = input(dev, &mut g, &shapes[0], cdt, lays[0], &mut |g| match cdt {
                    DType::U8 => g.pick(&[0.0, 0.0, 1.0, 2.0, 255.0]),
                    DType::U32 => g.pick(&[0.0, 0.0, 1.0, 7.0, 2147483648.0]),
                    _ => g.pick(&[0.0, 0.0, 1.0, -1.0, 1099511627776.0]),
                })?;
                let mut dist = |g: &mut Gen| if dt.is_int() { g.int_value(dt) } else { g.uniform(-4.0, 4.0) };
                let t = input(dev, &mut g, &shapes[1], dt, lays[1], &mut dist)?;
                let f = input(dev, &mut g, &shapes[2], dt, lays[2], &mut dist)?;
                let want = Arr::map_n(&[&c.v, &t.v, &f.v], |v| if v[0] != 0.0 { v[1] } else { v[2] });
                poison(dev, want.numel(), dt);
                exact(&c.t.where_cond(&t.t, &f.t)?, dt, &want)
            });
        }
    }
    s.case(name, "a float condition is rejected".into(), |dev| {
        let c = Tensor::ones(3, DType::F32, dev)?;
        expect_err(c.where_cond(&c, &c), "float condition").map(drop)
    });
}

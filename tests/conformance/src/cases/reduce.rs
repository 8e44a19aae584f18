//! Reductions over sets of dims, argmax/argmin, cumsum, argsort/sort, topk.

use super::{compare_out, numeric, signed_dim, FLOATS};
use crate::arr::{lines, Arr};
use crate::check::{exact, exact_values, expect_unsupported};
use crate::gen::Gen;
use crate::input::{input, input_from, poison, Lay};
use crate::reference as rf;
use crate::{bail, Suite};
use tessera_tensor::{ArgReduceOp, DType, Error, ReduceOp, Tensor};

const CASES: usize = 16;

pub fn run(s: &mut Suite) {
    reductions(s);
    arg_reductions(s);
    cumsum(s);
    sorting(s);
    specials(s);
}

/// Values with ties for ops where the order matters.
fn tie_dist(dt: DType) -> impl FnMut(&mut Gen) -> f64 {
    move |g: &mut Gen| {
        if g.chance(0.5) {
            g.tie_value(dt)
        } else if dt.is_int() {
            g.int_value(dt)
        } else {
            g.uniform(-4.0, 4.0)
        }
    }
}

/// The reduction dims as the API takes them (possibly negative, possibly
/// repeated, empty for all) and as the reference takes them.
fn reduce_dims(g: &mut Gen, rank: usize) -> (Vec<i64>, Vec<usize>) {
    if rank == 0 || g.chance(0.2) {
        return (vec![], (0..rank).collect());
    }
    let mut dims: Vec<usize> = (0..rank).filter(|_| g.chance(0.5)).collect();
    if dims.is_empty() {
        dims.push(g.below(rank));
    }
    let mut api: Vec<i64> = dims.iter().map(|&d| signed_dim(g, d, rank)).collect();
    g.shuffle(&mut api);
    if g.chance(0.2) {
        api.push(api[0]);
    }
    (api, dims)
}

fn reductions(s: &mut Suite) {
    for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
        let name = op.name();
        if !s.on(name) {
            continue;
        }
        let mut g = Gen::for_op(name);
        let extreme = matches!(op, ReduceOp::Max | ReduceOp::Min);
        for dt in s.dtypes() {
            let supported = if op == ReduceOp::Mean { dt.is_compute_float() } else { numeric(dt) };
            if !supported {
                s.case(name, format!("{dt} is rejected"), |dev| expect_unsupported(Tensor::ones(3, dt, dev)?.reduce(op, &[0], false)));
                continue;
            }
            for _ in 0..CASES {
                let rank = g.below(5);
                let shape = g.shape(rank, true, 4096);
                let (api, dims) = reduce_dims(&mut g, rank);
                let keepdim = g.chance(0.5);
                let lay = Lay::random(&mut g);
                let over_empty = dims.iter().any(|&d| shape[d] == 0);
                s.case(name, format!("{dt} {shape:?} {lay} dims {api:?} keepdim {keepdim}"), |dev| {
                    let mut dist = tie_dist(dt);
                    let x = input(dev, &mut g, &shape, dt, lay, &mut dist)?;
                    if extreme && over_empty {
                        return match x.t.reduce(op, &api, keepdim) {
                            Err(Error::InvalidArgument { .. }) => Ok(()),
                            Err(e) => bail!("{name} over an empty dim: expected InvalidArgument, got {e}"),
                            Ok(_) => bail!("{name} over an empty dim must fail"),
                        };
                    }
                    let want = rf::reduce(op, &x.v, &dims, keepdim, dt.is_int().then_some(dt));
                    poison(dev, want.numel(), dt);
                    let out = x.t.reduce(op, &api, keepdim)?;
                    if extreme {
                        exact(&out, dt, &want)
                    } else {
                        compare_out(&out, dt, &want, 1e-9)
                    }
                });
            }
        }
    }
}

fn arg_reductions(s: &mut Suite) {
    for op in [ArgReduceOp::ArgMax, ArgReduceOp::ArgMin] {
        let name = if op == ArgReduceOp::ArgMax { "argmax" } else { "argmin" };
        if !s.on(name) {
            continue;
        }
        let mut g = Gen::for_op(name);
        for dt in s.dtypes() {
            if !numeric(dt) {
                s.case(name, format!("{dt} is rejected"), |dev| expect_unsupported(Tensor::ones(3, dt, dev)?.arg_reduce(op, 0, false)));
                continue;
            }
            for _ in 0..CASES {
                let rank = g.int(1, 4) as usize;
                let shape = g.shape(rank, true, 4096);
                let dim = g.below(rank);
                let api = signed_dim(&mut g, dim, rank);
                let keepdim = g.chance(0.5);
                let lay = Lay::random(&mut g);
                s.case(name, format!("{dt} {shape:?} {lay} dim {api} keepdim {keepdim}"), |dev| {
                    let x = input(dev, &mut g, &shape, dt, lay, &mut tie_dist(dt))?;
                    if shape[dim] == 0 {
                        return match x.t.arg_reduce(op, api, keepdim) {
                            Err(_) => Ok(()),
                            Ok(_) => bail!("{name} over an empty dim must fail"),
                        };
                    }
                    let want = rf::arg_reduce(op, &x.v, dim, keepdim);
                    poison(dev, want.numel(), DType::I64);
                    exact(&x.t.arg_reduce(op, api, keepdim)?, DType::I64, &want)
                });
            }
        }
    }
}

fn cumsum(s: &mut Suite) {
    let name = "cumsum";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    for dt in s.dtypes() {
        if !numeric(dt) {
            s.case(name, format!("{dt} is rejected"), |dev| expect_unsupported(Tensor::ones(3, dt, dev)?.cumsum(0)));
            continue;
        }
        for _ in 0..CASES {
            let rank = g.int(1, 4) as usize;
            let shape = g.shape(rank, true, 4096);
            let dim = g.below(rank);
            let api = signed_dim(&mut g, dim, rank);
            let lay = Lay::random(&mut g);
            s.case(name, format!("{dt} {shape:?} {lay} dim {api}"), |dev| {
                let x = input(dev, &mut g, &shape, dt, lay, &mut |g| if dt.is_int() { g.int_value(dt) } else { g.uniform(-2.0, 3.0) })?;
                let want = rf::cumsum(&x.v, dim, dt.is_int().then_some(dt));
                poison(dev, want.numel(), dt);
                compare_out(&x.t.cumsum(api)?, dt, &want, 1e-9)
            });
        }
    }
}

fn sorting(s: &mut Suite) {
    for name in ["argsort", "sort", "topk"] {
        if !s.on(name) {
            continue;
        }
        let mut g = Gen::for_op(name);
        for dt in s.dtypes() {
            if !numeric(dt) {
                s.case(name, format!("{dt} is rejected"), |dev| {
                    let x = Tensor::ones(3, dt, dev)?;
                    match name {
                        "argsort" => expect_unsupported(x.argsort(0, false)),
                        "sort" => expect_unsupported(x.sort(0, false)),
                        _ => expect_unsupported(x.topk(1, 0)),
                    }
                });
                continue;
            }
            for _ in 0..CASES {
                let rank = g.int(1, 4) as usize;
                let shape = g.shape(rank, true, 4096);
                let dim = g.below(rank);
                let api = signed_dim(&mut g, dim, rank);
                let descending = g.chance(0.5);
                let k = g.int(0, shape[dim] as i64) as usize;
                let lay = Lay::random(&mut g);
                let desc = match name {
                    "topk" => format!("{dt} {shape:?} {lay} dim {api} k {k}"),
                    _ => format!("{dt} {shape:?} {lay} dim {api} descending {descending}"),
                };
                s.case(name, desc, |dev| {
                    let x = input(dev, &mut g, &shape, dt, lay, &mut tie_dist(dt))?;
                    match name {
                        "argsort" => {
                            let want = rf::argsort(&x.v, dim, descending);
                            poison(dev, want.numel(), DType::I64);
                            exact(&x.t.argsort(api, descending)?, DType::I64, &want)
                        }
                        "sort" => {
                            let idx = rf::argsort(&x.v, dim, descending);
                            let want = rf::gather(&x.v, &idx, dim);
                            poison(dev, want.numel(), dt);
                            let (vals, ids) = x.t.sort(api, descending)?;
                            exact(&vals, dt, &want)?;
                            exact(&ids, DType::I64, &idx)
                        }
                        _ => check_topk(&x.t, &x.v, k, dim, api),
                    }
                });
            }
        }
    }
}

/// Top-k values must equal the `k` largest in descending order; indices must
/// be distinct and point at those values (their order on ties is free).
fn check_topk(t: &Tensor, x: &Arr, k: usize, dim: usize, api: i64) -> crate::R<()> {
    let sorted = rf::argsort(x, dim, true);
    let (outer, size, inner) = lines(&x.shape, dim);
    let mut shape = x.shape.clone();
    shape[dim] = k;
    let mut want = Arr::filled(&shape, 0.0);
    for o in 0..outer {
        for i in 0..k {
            for n in 0..inner {
                let src = sorted.data[(o * size + i) * inner + n] as usize;
                want.data[(o * k + i) * inner + n] = x.data[(o * size + src) * inner + n];
            }
        }
    }
    poison(t.device(), want.numel(), t.dtype());
    let (vals, ids) = t.topk(k, api)?;
    exact(&vals, t.dtype(), &want)?;
    if ids.dtype() != DType::I64 || ids.dims() != shape.as_slice() {
        bail!("indices: {:?} {} (expected {shape:?} i64)", ids.dims(), ids.dtype());
    }
    let got = ids.to_f64_vec()?;
    for o in 0..outer {
        for n in 0..inner {
            let mut seen = vec![false; size];
            for i in 0..k {
                let j = got[(o * k + i) * inner + n];
                if !(j >= 0.0 && (j as usize) < size) || std::mem::replace(&mut seen[j as usize], true) {
                    bail!("index {j} at line {o},{n} is out of range or repeated");
                }
                let (v, w) = (x.data[(o * size + j as usize) * inner + n], want.data[(o * k + i) * inner + n]);
                if !(v == w || (v.is_nan() && w.is_nan())) {
                    bail!("index {j} at line {o},{n} points at {v}, not at the value {w}");
                }
            }
        }
    }
    Ok(())
}

/// NaN and infinities through reductions, arg-reductions and sorting.
fn specials(s: &mut Suite) {
    let name = "reduce specials";
    if !s.on(name) {
        return;
    }
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    #[rustfmt::skip]
    let vals = vec![
        1.0, nan, 3.0, 0.0,
        nan, 2.0, 1.0, 0.5,
        1.0, 2.0, inf, -1.0,
        -inf, 0.0, 5.0, 2.0,
        2.0, 2.0, 2.0, 2.0,
    ];
    let x = Arr::new(vec![5, 4], vals);
    for dt in s.stored(&FLOATS) {
        for dim in [0usize, 1] {
            for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
                s.case(name, format!("{} {dt} dim {dim}", op.name()), |dev| {
                    let t = input_from(dev, &x, dt)?;
                    let want = rf::reduce(op, &t.v, &[dim], false, None);
                    compare_out(&t.t.reduce(op, &[dim as i64], false)?, dt, &want, 1e-9)
                });
            }
            for op in [ArgReduceOp::ArgMax, ArgReduceOp::ArgMin] {
                s.case(name, format!("{op:?} {dt} dim {dim}"), |dev| {
                    let t = input_from(dev, &x, dt)?;
                    exact(&t.t.arg_reduce(op, dim, false)?, DType::I64, &rf::arg_reduce(op, &t.v, dim, false))
                });
            }
            for descending in [false, true] {
                s.case(name, format!("argsort {dt} dim {dim} descending {descending}"), |dev| {
                    let t = input_from(dev, &x, dt)?;
                    exact(&t.t.argsort(dim, descending)?, DType::I64, &rf::argsort(&t.v, dim, descending))
                });
            }
            s.case(name, format!("cumsum {dt} dim {dim}"), |dev| {
                let t = input_from(dev, &x, dt)?;
                compare_out(&t.t.cumsum(dim)?, dt, &rf::cumsum(&t.v, dim, None), 1e-9)
            });
        }
        // Sums and means over an empty dim: 0 and NaN.
        for op in [ReduceOp::Sum, ReduceOp::Mean] {
            s.case(name, format!("{} {dt} over an empty dim", op.name()), |dev| {
                let t = Tensor::zeros((3, 0, 2), dt, dev)?;
                let out = t.reduce(op, &[1], true)?;
                let want = if op == ReduceOp::Sum { 0.0 } else { f64::NAN };
                exact_values(&out.to_f64_vec()?, &Arr::filled(&[3, 1, 2], want))?;
                if out.dims() != [3, 1, 2] {
                    bail!("shape {:?}", out.dims());
                }
                Ok(())
            });
        }
    }
}

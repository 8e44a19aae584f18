//! Fused ops, each checked against the f64 reference (op `<name>`) and
//! against its composition from primitives in `tessera_tensor::composed`
//! run on the same device (op `<name> (composed)`: the composition against
//! the reference, then the fused op against the composition).

use super::signed_dim;
use crate::arr::Arr;
use crate::check::{close, close_tensors, exact, expect_err, expect_unsupported, tol};
use crate::gen::Gen;
use crate::input::{input, input_from, poison, Input, Lay};
use crate::reference as rf;
use crate::{Suite, R};
use tessera_tensor::{
    composed, scaled_dot_product_attention, AttentionParams, Conv2dParams, DType, Device, NormKind, RopeStyle, Tensor, UnaryOp,
};

const CASES: usize = 12;

pub fn run(s: &mut Suite) {
    matmul_bias(s);
    matmul_bias_act(s);
    softmax(s);
    norms(s);
    add_norms(s);
    rope(s);
    conv2d(s);
    group_norm(s);
    upsample(s);
    attention(s);
}

/// What a fused case produces: the fused result, the composed one, and the
/// reference.
struct Outcome {
    fused: Tensor,
    composed: Tensor,
    want: Arr,
    dtype: DType,
}

/// Runs a fused case and records both checks; `exact_cmp` for ops that only
/// move data.
fn fused_case(s: &mut Suite, name: &str, desc: String, f32_tol: f64, exact_cmp: bool, f: impl FnOnce(&Device) -> R<Outcome>) {
    let composed_name = format!("{name} (composed)");
    s.case_multi([name, &composed_name], desc, |dev| match f(dev) {
        Err(e) => [Some(Err(e.clone())), Some(Err(e))],
        Ok(o) => {
            let t = tol(o.dtype, f32_tol);
            let cmp = |out: &Tensor| if exact_cmp { exact(out, o.dtype, &o.want) } else { close(out, o.dtype, &o.want, t) };
            let fused = cmp(&o.fused);
            let comp = cmp(&o.composed).and_then(|()| {
                if exact_cmp {
                    exact(&o.fused, o.dtype, &Arr::new(o.want.shape.clone(), o.composed.to_f64_vec()?))
                } else {
                    close_tensors(&o.fused, &o.composed, t)
                }
                .map_err(|e| crate::Fail(format!("fused vs composed: {}", e.0)))
            });
            [Some(fused), Some(comp)]
        }
    });
}

/// Rejects the non-float dtypes the device stores.
fn rejects(s: &mut Suite, name: &str, f: impl Fn(&Tensor) -> tessera_tensor::Result<Tensor>) {
    for dt in s.dtypes() {
        if !dt.is_compute_float() {
            s.case(name, format!("{dt} is rejected"), |dev| expect_unsupported(f(&Tensor::ones((2, 2, 2, 2), dt, dev)?)));
        }
    }
}

/// A 1-D parameter vector of `n` values (maybe strided).
fn param(dev: &Device, g: &mut Gen, n: usize, dt: DType, lo: f64, hi: f64) -> R<Input> {
    let lay = if g.chance(0.5) { Lay::Contig } else { Lay::Strided };
    input(dev, g, &[n], dt, lay, &mut |g| g.uniform(lo, hi))
}

/// A layer's product with its bias: `x [..., m, k] @ w + b`, the weight
/// stored `[n, k]` and viewed through `.t()` (as `Linear` does) or stored
/// `[k, n]`; few-row (GEMV) and blocked (GEMM) sizes, `k = 0` (the output
/// is the bias), batch dims that fold into the rows and ones that do not.
fn matmul_bias(s: &mut Suite) {
    let name = "matmul_bias";
    if !s.on(name) {
        return;
    }
    rejects(s, name, |t| t.matmul_bias(t, &Tensor::ones(2, t.dtype(), t.device())?));
    s.case(name, "a bias that is not [n] is rejected".into(), |dev| {
        let x = Tensor::ones((3, 4), DType::F32, dev)?;
        let w = Tensor::ones((4, 5), DType::F32, dev)?;
        expect_err(x.matmul_bias(&w, &Tensor::ones(4, DType::F32, dev)?), "bias")?;
        expect_err(x.matmul_bias(&w, &Tensor::ones((1, 5), DType::F32, dev)?), "bias")?;
        Ok(())
    });
    let mut g = Gen::for_op(name);
    for dt in s.stored(&super::FLOATS) {
        for _ in 0..CASES + 4 {
            let (m, k, n) = (g.pick(&[0, 1, 2, 3, 7, 20, 61]), g.pick(&[0, 1, 5, 33, 70]), g.pick(&[1, 3, 16, 17, 40]));
            let batch: Vec<usize> = (0..g.below(3)).map(|_| g.int(1, 3) as usize).collect();
            let xs: Vec<usize> = batch.iter().copied().chain([m, k]).collect();
            let (lx, lw, stored_t) = (Lay::random(&mut g), Lay::random_dense(&mut g), g.chance(0.6));
            let desc = format!("{dt} x {xs:?} {lx} @ w [{k}, {n}] {lw}{}", if stored_t { " (.t() of [n, k])" } else { "" });
            fused_case(s, name, desc, 1e-9, false, |dev| {
                let x = input(dev, &mut g, &xs, dt, lx, &mut |g| g.uniform(-1.0, 1.0))?;
                let w = if stored_t {
                    let wt = input(dev, &mut g, &[n, k], dt, lw, &mut |g| g.uniform(-1.0, 1.0))?;
                    Input { t: wt.t.t()?, v: wt.v.permute(&[1, 0]) }
                } else {
                    input(dev, &mut g, &[k, n], dt, lw, &mut |g| g.uniform(-1.0, 1.0))?
                };
                let b = param(dev, &mut g, n, dt, -1.0, 1.0)?;
                let product = rf::matmul(&x.v, &w.v);
                let want = Arr::from_fn(&product.shape, |idx| product.at(idx) + b.v.data[idx[idx.len() - 1]]);
                poison(dev, want.numel(), dt);
                let fused = x.t.matmul_bias(&w.t, &b.t)?;
                let composed = composed::matmul_bias(&x.t, &w.t, &b.t, None)?;
                Ok(Outcome { fused, composed, want, dtype: dt })
            });
        }
    }
}

/// The activations a layer's epilogue applies.
const EPILOGUE_ACTS: [UnaryOp; 7] =
    [UnaryOp::Gelu, UnaryOp::GeluTanh, UnaryOp::QuickGelu, UnaryOp::Silu, UnaryOp::Relu, UnaryOp::Sigmoid, UnaryOp::Tanh];

/// `act(x @ w.t() + b)`: a layer and its activation in one product
/// epilogue (op "matmul_bias" too, so a backend filters both together).
fn matmul_bias_act(s: &mut Suite) {
    let name = "matmul_bias";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op("matmul_bias_act");
    for dt in s.stored(&super::FLOATS) {
        for act in EPILOGUE_ACTS {
            for _ in 0..2 {
                let (m, k, n) = (g.pick(&[1, 2, 5, 20, 70]), g.pick(&[1, 16, 33, 70]), g.pick(&[3, 16, 17, 40]));
                let batch: Vec<usize> = (0..g.below(2)).map(|_| g.int(1, 3) as usize).collect();
                let xs: Vec<usize> = batch.iter().copied().chain([m, k]).collect();
                let lx = Lay::random(&mut g);
                let desc = format!("{dt} {} x {xs:?} {lx} @ w.t() [{n}, {k}]", act.name());
                fused_case(s, name, desc, 1e-9, false, |dev| {
                    let x = input(dev, &mut g, &xs, dt, lx, &mut |g| g.uniform(-1.0, 1.0))?;
                    let wt = input(dev, &mut g, &[n, k], dt, Lay::Contig, &mut |g| g.uniform(-1.0, 1.0))?;
                    let w = Input { t: wt.t.t()?, v: wt.v.permute(&[1, 0]) };
                    let b = param(dev, &mut g, n, dt, -1.0, 1.0)?;
                    let product = rf::matmul(&x.v, &w.v);
                    let want = Arr::from_fn(&product.shape, |idx| rf::unary(act, product.at(idx) + b.v.data[idx[idx.len() - 1]]));
                    poison(dev, want.numel(), dt);
                    let fused = x.t.matmul_bias_act(&w.t, &b.t, Some(act))?;
                    let composed = composed::matmul_bias(&x.t, &w.t, &b.t, Some(act))?;
                    Ok(Outcome { fused, composed, want, dtype: dt })
                });
            }
        }
    }
}

fn softmax(s: &mut Suite) {
    for (name, log) in [("softmax", false), ("log_softmax", true)] {
        if !s.on(name) {
            continue;
        }
        rejects(s, name, |t| if log { t.log_softmax(-1) } else { t.softmax(-1) });
        let mut g = Gen::for_op(name);
        for dt in s.stored(&super::FLOATS) {
            for _ in 0..CASES + 2 {
                let rank = g.int(1, 4) as usize;
                let shape = g.shape(rank, true, 4096);
                let dim = g.below(rank);
                let api = signed_dim(&mut g, dim, rank);
                // Some inputs hold -inf (masked entries), never the first of a row.
                let masked = g.chance(0.25);
                let lay = if masked { Lay::Contig } else { Lay::random(&mut g) };
                let desc = format!("{dt} {shape:?} {lay} dim {api}{}", if masked { " with -inf" } else { "" });
                fused_case(s, name, desc, 1e-9, false, |dev| {
                    let x = if masked {
                        let a = Arr::from_fn(
                            &shape,
                            |idx| if idx[dim] > 0 && g.chance(0.3) { f64::NEG_INFINITY } else { g.uniform(-6.0, 6.0) },
                        );
                        input_from(dev, &a, dt)?
                    } else {
                        input(dev, &mut g, &shape, dt, lay, &mut |g| g.uniform(-6.0, 6.0))?
                    };
                    let want = rf::softmax(&x.v, dim, log);
                    poison(dev, want.numel(), dt);
                    let fused = if log { x.t.log_softmax(api)? } else { x.t.softmax(api)? };
                    let xt = x.t.transpose(dim, rank - 1)?;
                    let composed = composed::softmax_last(&xt, log)?.transpose(dim, rank - 1)?;
                    Ok(Outcome { fused, composed, want, dtype: dt })
                });
            }
        }
    }
}

fn norms(s: &mut Suite) {
    for name in ["layer_norm", "rms_norm"] {
        if !s.on(name) {
            continue;
        }
        let rms = name == "rms_norm";
        rejects(s, name, |t| if rms { t.rms_norm(None, 1e-5) } else { t.layer_norm(None, None, 1e-5) });
        let mut g = Gen::for_op(name);
        for dt in s.stored(&super::FLOATS) {
            for _ in 0..CASES + 2 {
                let rank = g.int(1, 4) as usize;
                let shape = g.shape(rank, true, 4096);
                let (has_w, has_b) = (g.chance(0.6), !rms && g.chance(0.6));
                let eps = g.pick(&[1e-5, 1e-6, 1e-3]);
                let lay = Lay::random(&mut g);
                let shift = g.pick(&[0.0, 2.0, -5.0]);
                let desc = format!("{dt} {shape:?} {lay} weight {has_w} bias {has_b} eps {eps:e} mean shift {shift}");
                fused_case(s, name, desc, 1e-9, false, |dev| {
                    let n = *shape.last().unwrap();
                    let x = input(dev, &mut g, &shape, dt, lay, &mut |g| g.uniform(-3.0, 3.0) + shift)?;
                    let w = if has_w { Some(param(dev, &mut g, n, dt, -2.0, 2.0)?) } else { None };
                    let b = if has_b { Some(param(dev, &mut g, n, dt, -1.0, 1.0)?) } else { None };
                    let (wt, bt) = (w.as_ref().map(|w| &w.t), b.as_ref().map(|b| &b.t));
                    let (wv, bv) = (w.as_ref().map(|w| &w.v), b.as_ref().map(|b| &b.v));
                    let want = if rms { rf::rms_norm(&x.v, wv, eps) } else { rf::layer_norm(&x.v, wv, bv, eps) };
                    poison(dev, want.numel(), dt);
                    let (fused, composed) = if rms {
                        (x.t.rms_norm(wt, eps)?, composed::rms_norm(&x.t, wt, eps)?)
                    } else {
                        (x.t.layer_norm(wt, bt, eps)?, composed::layer_norm(&x.t, wt, bt, eps)?)
                    };
                    Ok(Outcome { fused, composed, want, dtype: dt })
                });
            }
        }
    }
}

/// `(norm(x + residual), x + residual)`: the residual of the same shape
/// or broadcast (a bias-like `[n]`, a per-row `[.., 1]` is not a residual
/// shape but a broadcast of leading dims is). The sum must equal the plain
/// `add` exactly; the normalised output is checked like a norm's.
fn add_norms(s: &mut Suite) {
    for (name, kind) in [("add_layer_norm", NormKind::Layer), ("add_rms_norm", NormKind::Rms)] {
        if !s.on(name) {
            continue;
        }
        let rms = kind == NormKind::Rms;
        rejects(s, name, |t| Ok(if rms { t.add_rms_norm(t, None, 1e-5)?.0 } else { t.add_layer_norm(t, None, None, 1e-5)?.0 }));
        s.case(name, "a residual that does not broadcast is rejected".into(), |dev| {
            let x = Tensor::ones((3, 4), DType::F32, dev)?;
            let r = Tensor::ones((3, 5), DType::F32, dev)?;
            expect_err(x.add_layer_norm(&r, None, None, 1e-5).map(|p| p.0), "add_layer_norm")?;
            Ok(())
        });
        let mut g = Gen::for_op(name);
        for dt in s.stored(&super::FLOATS) {
            for _ in 0..CASES {
                let rank = g.int(1, 4) as usize;
                let shape = g.shape(rank, true, 4096);
                let n = *shape.last().unwrap();
                let rshape: Vec<usize> = if g.chance(0.3) && rank > 1 { shape[1..].to_vec() } else { shape.clone() };
                let (has_w, has_b) = (g.chance(0.7), !rms && g.chance(0.6));
                let eps = g.pick(&[1e-5, 1e-6]);
                let (lx, lr) = (Lay::random(&mut g), Lay::random(&mut g));
                let desc = format!("{dt} {shape:?} {lx} + residual {rshape:?} {lr} weight {has_w} bias {has_b} eps {eps:e}");
                fused_case(s, name, desc, 1e-9, false, |dev| {
                    let x = input(dev, &mut g, &shape, dt, lx, &mut |g| g.uniform(-3.0, 3.0))?;
                    let r = input(dev, &mut g, &rshape, dt, lr, &mut |g| g.uniform(-3.0, 3.0) + 1.0)?;
                    let w = if has_w { Some(param(dev, &mut g, n, dt, -2.0, 2.0)?) } else { None };
                    let b = if has_b { Some(param(dev, &mut g, n, dt, -1.0, 1.0)?) } else { None };
                    let (wt, bt) = (w.as_ref().map(|w| &w.t), b.as_ref().map(|b| &b.t));
                    let (wv, bv) = (w.as_ref().map(|w| &w.v), b.as_ref().map(|b| &b.v));
                    let sum = Arr::zip(&x.v, &r.v.broadcast_to(&shape), |a, c| rf::round_to(dt, a + c));
                    let want = if rms { rf::rms_norm(&sum, wv, eps) } else { rf::layer_norm(&sum, wv, bv, eps) };
                    poison(dev, want.numel(), dt);
                    let ((fused, fused_sum), (composed, composed_sum)) = if rms {
                        (x.t.add_rms_norm(&r.t, wt, eps)?, composed::add_norm(&x.t, &r.t, wt, None, eps, kind)?)
                    } else {
                        (x.t.add_layer_norm(&r.t, wt, bt, eps)?, composed::add_norm(&x.t, &r.t, wt, bt, eps, kind)?)
                    };
                    exact(&fused_sum, dt, &sum).map_err(|e| crate::Fail(format!("the sum: {}", e.0)))?;
                    exact(&composed_sum, dt, &sum).map_err(|e| crate::Fail(format!("the composed sum: {}", e.0)))?;
                    Ok(Outcome { fused, composed, want, dtype: dt })
                });
            }
        }
    }
}

fn rope(s: &mut Suite) {
    let name = "rope";
    if !s.on(name) {
        return;
    }
    rejects(s, name, |t| {
        let c = Tensor::ones((2, 1), t.dtype(), t.device())?;
        t.rope(&c, &c, RopeStyle::HalfSplit)
    });
    let mut g = Gen::for_op(name);
    for dt in s.stored(&super::FLOATS) {
        for style in [RopeStyle::HalfSplit, RopeStyle::Interleaved] {
            for _ in 0..CASES {
                let rank = g.int(2, 4) as usize;
                let mut shape = g.shape(rank - 2, true, 64);
                let t = g.pick(&[1, 2, 3, 7, 17, 33]);
                let d = g.pick(&[2, 4, 6, 8, 16, 17, 32, 64]);
                shape.extend([t, d]);
                // Full or partial rotary width.
                let half = if g.chance(0.5) { d / 2 } else { g.int(0, (d / 2) as i64) as usize };
                let lay = Lay::random(&mut g);
                let desc = format!("{dt} {style:?} x {shape:?} {lay} rotating {} of {d}", 2 * half);
                fused_case(s, name, desc, 1e-9, false, |dev| {
                    let x = input(dev, &mut g, &shape, dt, lay, &mut |g| g.uniform(-2.0, 2.0))?;
                    let angle = |idx: &[usize]| idx[0] as f64 * 10000f64.powf(-(2.0 * idx[1] as f64) / (2 * half).max(1) as f64);
                    let cos = input_from(dev, &Arr::from_fn(&[t, half], |i| angle(i).cos()), dt)?;
                    let sin = input_from(dev, &Arr::from_fn(&[t, half], |i| angle(i).sin()), dt)?;
                    let want = rf::rope(&x.v, &cos.v, &sin.v, style);
                    poison(dev, want.numel(), dt);
                    let fused = x.t.rope(&cos.t, &sin.t, style)?;
                    let composed = composed::rope(&x.t, &cos.t, &sin.t, style)?;
                    Ok(Outcome { fused, composed, want, dtype: dt })
                });
            }
        }
    }
}

fn conv2d(s: &mut Suite) {
    let name = "conv2d";
    if !s.on(name) {
        return;
    }
    rejects(s, name, |t| t.conv2d(&Tensor::ones((1, 2, 1, 1), t.dtype(), t.device())?, None, &Conv2dParams::default()));
    let mut g = Gen::for_op(name);
    for dt in s.stored(&super::FLOATS) {
        for _ in 0..CASES + 4 {
            let (xs, ws, p, has_bias) = loop {
                let groups = g.pick(&[1, 1, 2, 3]);
                let (cg, og) = (g.int(1, 4) as usize, g.int(1, 4) as usize);
                let n = g.pick(&[0, 1, 1, 2]);
                let (h, w) = (g.pick(&[1, 3, 5, 7, 8, 17]), g.pick(&[1, 3, 5, 7, 8, 17]));
                let (kh, kw) = (g.pick(&[1, 2, 3, 5]), g.pick(&[1, 2, 3]));
                let p = Conv2dParams {
                    stride: (g.int(1, 3) as usize, g.int(1, 2) as usize),
                    padding: (g.int(0, 2) as usize, g.int(0, 2) as usize),
                    dilation: (g.int(1, 2) as usize, g.int(1, 2) as usize),
                    groups,
                };
                let Some((oh, ow)) = p.output_size((h, w), (kh, kw)) else { continue };
                if n * groups * og * oh * ow * cg * kh * kw > 150_000 {
                    continue;
                }
                break (vec![n, groups * cg, h, w], vec![groups * og, cg, kh, kw], p, g.chance(0.6));
            };
            let (lx, lw) = (Lay::random(&mut g), Lay::random_dense(&mut g));
            let desc = format!("{dt} x {xs:?} {lx} w {ws:?} {lw} bias {has_bias} {p:?}");
            fused_case(s, name, desc, 1e-8, false, |dev| {
                let x = input(dev, &mut g, &xs, dt, lx, &mut |g| g.uniform(-1.0, 1.0))?;
                let w = input(dev, &mut g, &ws, dt, lw, &mut |g| g.uniform(-1.0, 1.0))?;
                let b = if has_bias { Some(param(dev, &mut g, ws[0], dt, -1.0, 1.0)?) } else { None };
                let want = rf::conv2d(&x.v, &w.v, b.as_ref().map(|b| &b.v), &p);
                poison(dev, want.numel(), dt);
                let bt = b.as_ref().map(|b| &b.t);
                let fused = x.t.conv2d(&w.t, bt, &p)?;
                let composed = composed::conv2d(&x.t, &w.t, bt, &p)?;
                Ok(Outcome { fused, composed, want, dtype: dt })
            });
        }
    }
}

fn group_norm(s: &mut Suite) {
    let name = "group_norm";
    if !s.on(name) {
        return;
    }
    rejects(s, name, |t| t.group_norm(1, None, None, 1e-5));
    let mut g = Gen::for_op(name);
    for dt in s.stored(&super::FLOATS) {
        for _ in 0..CASES + 2 {
            let groups = g.pick(&[1, 2, 3, 4]);
            let c = groups * g.int(1, 4) as usize;
            let mut shape = vec![g.pick(&[0, 1, 2, 3]), c];
            let spatial_rank = g.below(3);
            shape.extend(g.shape(spatial_rank, true, 300));
            let (has_w, has_b) = (g.chance(0.6), g.chance(0.6));
            let eps = g.pick(&[1e-5, 1e-6]);
            let lay = Lay::random(&mut g);
            let desc = format!("{dt} {shape:?} {lay} {groups} groups weight {has_w} bias {has_b}");
            fused_case(s, name, desc, 1e-8, false, |dev| {
                let x = input(dev, &mut g, &shape, dt, lay, &mut |g| g.uniform(-2.0, 4.0))?;
                let w = if has_w { Some(param(dev, &mut g, c, dt, -2.0, 2.0)?) } else { None };
                let b = if has_b { Some(param(dev, &mut g, c, dt, -1.0, 1.0)?) } else { None };
                let (wt, bt) = (w.as_ref().map(|w| &w.t), b.as_ref().map(|b| &b.t));
                let want = rf::group_norm(&x.v, groups, w.as_ref().map(|w| &w.v), b.as_ref().map(|b| &b.v), eps);
                poison(dev, want.numel(), dt);
                let fused = x.t.group_norm(groups, wt, bt, eps)?;
                let composed = composed::group_norm(&x.t, groups, wt, bt, eps)?;
                Ok(Outcome { fused, composed, want, dtype: dt })
            });
        }
    }
}

fn upsample(s: &mut Suite) {
    let name = "upsample_nearest2d";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    for dt in s.dtypes() {
        if !super::numeric(dt) {
            s.case(name, format!("{dt} is rejected"), |dev| {
                expect_unsupported(Tensor::ones((1, 1, 2, 2), dt, dev)?.upsample_nearest2d(4, 4))
            });
            continue;
        }
        for _ in 0..CASES {
            let shape = vec![g.pick(&[0, 1, 2]), g.pick(&[1, 3]), g.int(1, 9) as usize, g.int(1, 9) as usize];
            let (oh, ow) = (g.int(1, 20) as usize, g.int(1, 20) as usize);
            let lay = Lay::random(&mut g);
            fused_case(s, name, format!("{dt} {shape:?} {lay} to {oh}x{ow}"), 0.0, true, |dev| {
                let x = input(dev, &mut g, &shape, dt, lay, &mut super::index::any_value(dt))?;
                let want = rf::upsample_nearest2d(&x.v, oh, ow);
                poison(dev, want.numel(), dt);
                let fused = x.t.upsample_nearest2d(oh, ow)?;
                let composed = composed::upsample_nearest2d(&x.t, oh, ow)?;
                Ok(Outcome { fused, composed, want, dtype: dt })
            });
        }
    }
}

fn attention(s: &mut Suite) {
    let name = "attention";
    if !s.on(name) {
        return;
    }
    rejects(s, name, |t| scaled_dot_product_attention(t, t, t, None, false, None));
    let mut g = Gen::for_op(name);
    for dt in s.stored(&super::FLOATS) {
        for i in 0..CASES + 6 {
            let causal = i % 3 == 1;
            let with_mask = i % 3 == 2 || g.chance(0.2);
            let (b, hkv, group) = (g.int(1, 2) as usize, g.int(1, 3) as usize, g.pick(&[1, 1, 2, 3]));
            let hq = hkv * group;
            let tk = g.pick(&[1, 3, 5, 7, 16, 17, 33]);
            // Causal: tq == tk, or tq < tk (a KV cache), or tq > tk (the
            // first queries see no key and answer zeros).
            let tq = if causal {
                if g.chance(0.4) {
                    tk
                } else {
                    g.int(1, tk as i64 + 3) as usize
                }
            } else {
                g.pick(&[0, 1, 4, 7, 17])
            };
            let (d, dv) = (g.pick(&[1, 3, 8, 16, 17, 32]), g.pick(&[1, 3, 8, 16, 17]));
            let mask_shape = match g.below(5) {
                0 => vec![tq, tk],
                1 => vec![1, 1, tq, tk],
                2 => vec![b, 1, 1, tk],
                3 => vec![1, hq, tq, tk],
                _ => vec![b, hq, tq, tk],
            };
            let scale = if g.chance(0.5) { None } else { Some(0.3) };
            let lays = [Lay::random(&mut g), Lay::random(&mut g), Lay::random(&mut g), Lay::random(&mut g)];
            let desc = format!(
                "{dt} q [{b}, {hq}, {tq}, {d}] k/v [{b}, {hkv}, {tk}, {d}/{dv}] causal {causal} mask {} scale {scale:?} layouts {:?}",
                if with_mask { format!("{mask_shape:?}") } else { "none".into() },
                lays.map(|l| l.to_string())
            );
            fused_case(s, name, desc, 1e-8, false, |dev| {
                let mut dist = |g: &mut Gen| g.uniform(-1.5, 1.5);
                let q = input(dev, &mut g, &[b, hq, tq, d], dt, lays[0], &mut dist)?;
                let k = input(dev, &mut g, &[b, hkv, tk, d], dt, lays[1], &mut dist)?;
                let v = input(dev, &mut g, &[b, hkv, tk, dv], dt, lays[2], &mut dist)?;
                let mask = if !with_mask {
                    None
                } else if lays[3] == Lay::Contig {
                    // Additive, with some -inf; now and then every key of
                    // query 0 is masked (its output is zero).
                    let r = mask_shape.len();
                    let full_row = g.chance(0.3);
                    let a = Arr::from_fn(&mask_shape, |idx| {
                        if (idx[r - 1] > 0 && g.chance(0.15)) || (full_row && idx[r - 2] == 0) {
                            f64::NEG_INFINITY
                        } else {
                            g.uniform(-2.0, 2.0)
                        }
                    });
                    Some(input_from(dev, &a, dt)?)
                } else {
                    Some(input(dev, &mut g, &mask_shape, dt, lays[3], &mut |g| g.uniform(-2.0, 2.0))?)
                };
                let sc = scale.unwrap_or(1.0 / (d as f64).sqrt());
                let want = rf::attention(&q.v, &k.v, &v.v, mask.as_ref().map(|m| &m.v), sc, causal);
                poison(dev, want.numel(), dt);
                let mt = mask.as_ref().map(|m| &m.t);
                let fused = scaled_dot_product_attention(&q.t, &k.t, &v.t, mt, causal, scale)?;
                let composed = composed::attention(&q.t, &k.t, &v.t, mt, &AttentionParams { scale: sc, causal })?;
                Ok(Outcome { fused, composed, want, dtype: dt })
            });
        }
    }
}

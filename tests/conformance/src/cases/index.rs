//! Data movement: contiguous copies, index_select, gather, embedding, cat,
//! stack, slice_set. Every dtype, FP8 included; compared exactly.

use super::signed_dim;
use crate::arr::Arr;
use crate::check::exact;
use crate::gen::Gen;
use crate::input::{input, poison, Input, Lay};
use crate::reference as rf;
use crate::{bail, Suite, R};
use tessera_tensor::{DType, Device, Tensor};

const CASES: usize = 10;

pub fn run(s: &mut Suite) {
    contiguous(s);
    index_select(s);
    gather(s);
    embedding(s);
    cat(s);
    stack(s);
    slice_set(s);
}

/// Values of any dtype: integers over their range, floats over a range every
/// float dtype holds (FP8 rounds them).
pub fn any_value(dt: DType) -> impl FnMut(&mut Gen) -> f64 {
    move |g: &mut Gen| if dt.is_int() { g.int_value(dt) } else { g.uniform(-100.0, 100.0) }
}

/// An index tensor of `shape` with values below `bound`, of a random index
/// dtype the device stores (u8 only when `bound` fits), maybe strided.
fn ids(dev: &Device, g: &mut Gen, shape: &[usize], bound: usize, dtypes: &[DType]) -> R<Input> {
    let ok: Vec<DType> = dtypes.iter().copied().filter(|&d| d != DType::U8 || bound <= 256).collect();
    let dt = g.pick(&ok);
    let lay = Lay::random_dense(g);
    input(dev, g, shape, dt, lay, &mut |g| g.below(bound.max(1)) as f64)
}

fn contiguous(s: &mut Suite) {
    let name = "contiguous";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    for dt in s.dtypes() {
        for _ in 0..CASES {
            let rank = g.below(5);
            let shape = g.shape(rank, true, 4096);
            let lay = Lay::random(&mut g);
            s.case(name, format!("{dt} {shape:?} {lay}"), |dev| {
                let x = input(dev, &mut g, &shape, dt, lay, &mut any_value(dt))?;
                poison(dev, x.v.numel(), dt);
                let c = x.t.contiguous()?;
                if !c.is_contiguous() {
                    bail!("contiguous() returned a non-contiguous layout {:?}", c.layout());
                }
                exact(&c, dt, &x.v)?;
                poison(dev, x.v.numel(), dt);
                exact(&x.t.copy()?, dt, &x.v)
            });
        }
    }
}

fn index_select(s: &mut Suite) {
    let name = "index_select";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    let id_types = s.stored(&super::INTS);
    for dt in s.dtypes() {
        for _ in 0..CASES {
            let rank = g.int(1, 4) as usize;
            let shape = g.shape(rank, true, 4096);
            let dim = g.below(rank);
            let n = if shape[dim] == 0 { 0 } else { g.pick(&[0, 1, 3, 7, 17]) };
            let lay = Lay::random(&mut g);
            s.case(name, format!("{dt} {shape:?} {lay} dim {dim} {n} ids"), |dev| {
                let x = input(dev, &mut g, &shape, dt, lay, &mut any_value(dt))?;
                let id = ids(dev, &mut g, &[n], shape[dim], &id_types)?;
                let list: Vec<usize> = id.v.data.iter().map(|&v| v as usize).collect();
                let want = rf::index_select(&x.v, &list, dim);
                poison(dev, want.numel(), dt);
                exact(&x.t.index_select(&id.t, dim)?, dt, &want)
            });
        }
    }
}

fn gather(s: &mut Suite) {
    let name = "gather";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    let id_types = s.stored(&super::INTS);
    for dt in s.dtypes() {
        for _ in 0..CASES {
            let rank = g.int(1, 4) as usize;
            let shape = g.shape(rank, true, 4096);
            let dim = g.below(rank);
            let api = signed_dim(&mut g, dim, rank);
            let id_shape: Vec<usize> = (0..rank)
                .map(|d| {
                    if d == dim {
                        if shape[dim] == 0 {
                            0
                        } else {
                            g.pick(&[0, 1, 2, 5])
                        }
                    } else {
                        g.int(0, shape[d] as i64) as usize
                    }
                })
                .collect();
            let lay = Lay::random(&mut g);
            s.case(name, format!("{dt} {shape:?} {lay} dim {api} ids {id_shape:?}"), |dev| {
                let x = input(dev, &mut g, &shape, dt, lay, &mut any_value(dt))?;
                let id = ids(dev, &mut g, &id_shape, shape[dim], &id_types)?;
                let want = rf::gather(&x.v, &id.v, dim);
                poison(dev, want.numel(), dt);
                exact(&x.t.gather(api, &id.t)?, dt, &want)
            });
        }
    }
}

fn embedding(s: &mut Suite) {
    let name = "embedding";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    let id_types = s.stored(&super::INTS);
    for dt in s.dtypes() {
        for _ in 0..CASES {
            let (vocab, width) = (g.int(1, 300) as usize, g.size(true));
            let id_rank = g.int(1, 3) as usize;
            let id_shape = g.shape(id_rank, true, 64);
            let lay = Lay::random_dense(&mut g);
            s.case(name, format!("{dt} table [{vocab}, {width}] {lay} ids {id_shape:?}"), |dev| {
                let table = input(dev, &mut g, &[vocab, width], dt, lay, &mut any_value(dt))?;
                let id = ids(dev, &mut g, &id_shape, vocab, &id_types)?;
                let list: Vec<usize> = id.v.data.iter().map(|&v| v as usize).collect();
                let mut shape = id_shape.clone();
                shape.push(width);
                let want = rf::index_select(&table.v, &list, 0).reshape(&shape);
                poison(dev, want.numel(), dt);
                exact(&table.t.embedding(&id.t)?, dt, &want)
            });
        }
    }
}

fn cat(s: &mut Suite) {
    let name = "cat";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    for dt in s.dtypes() {
        for _ in 0..CASES + 1 {
            let rank = g.int(1, 4) as usize;
            let base = g.shape(rank, true, 1024);
            let dim = g.below(rank);
            let api = signed_dim(&mut g, dim, rank);
            let parts: Vec<(Vec<usize>, Lay)> = (0..g.int(1, 4))
                .map(|_| {
                    let mut sh = base.clone();
                    sh[dim] = g.pick(&[0, 1, 2, 3, 7]);
                    (sh, Lay::random(&mut g))
                })
                .collect();
            let desc: Vec<String> = parts.iter().map(|(sh, l)| format!("{sh:?} {l}")).collect();
            s.case(name, format!("{dt} dim {api}: {}", desc.join(", ")), |dev| {
                let xs = parts.iter().map(|(sh, l)| input(dev, &mut g, sh, dt, *l, &mut any_value(dt))).collect::<R<Vec<_>>>()?;
                let want = rf::cat(&xs.iter().map(|x| &x.v).collect::<Vec<_>>(), dim);
                poison(dev, want.numel(), dt);
                exact(&Tensor::cat(&xs.iter().map(|x| &x.t).collect::<Vec<_>>(), api)?, dt, &want)
            });
        }
    }
}

fn stack(s: &mut Suite) {
    let name = "stack";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    for dt in s.dtypes() {
        for _ in 0..CASES {
            let rank = g.below(4);
            let shape = g.shape(rank, true, 1024);
            let dim = g.below(rank + 1);
            let lays: Vec<Lay> = (0..g.int(1, 3)).map(|_| Lay::random(&mut g)).collect();
            s.case(name, format!("{dt} {} x {shape:?} dim {dim}", lays.len()), |dev| {
                let xs = lays.iter().map(|&l| input(dev, &mut g, &shape, dt, l, &mut any_value(dt))).collect::<R<Vec<_>>>()?;
                let refs: Vec<&Arr> = xs.iter().map(|x| &x.v).collect();
                let want = rf::stack(&refs, dim);
                poison(dev, want.numel(), dt);
                exact(&Tensor::stack(&xs.iter().map(|x| &x.t).collect::<Vec<_>>(), dim)?, dt, &want)
            });
        }
    }
}

/// `slice_set` over every layout of the destination, in place (a contiguous
/// destination nothing else shares) or by copy (a strided one, or one whose
/// old storage a clone still holds, which must keep the old values).
fn slice_set(s: &mut Suite) {
    let name = "slice_set";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    for dt in s.dtypes() {
        for case in 0..CASES + 2 {
            let rank = g.int(1, 4) as usize;
            let shape = g.shape(rank, true, 1024);
            let dim = g.below(rank);
            let api = signed_dim(&mut g, dim, rank);
            let len = g.below(shape[dim] + 1);
            let start = g.below(shape[dim] - len + 1);
            let mut src_shape = shape.clone();
            src_shape[dim] = len;
            // Contiguous destinations every other case, so both paths run.
            let dst_lay = if case % 2 == 0 { Lay::Contig } else { Lay::random(&mut g) };
            let src_lay = Lay::random(&mut g);
            let shared = case % 4 == 2;
            let desc =
                format!("{dt} {shape:?} {dst_lay} dim {api} at {start}: {src_shape:?} {src_lay}{}", if shared { ", shared" } else { "" });
            s.case(name, desc, |dev| {
                let dst = input(dev, &mut g, &shape, dt, dst_lay, &mut any_value(dt))?;
                let src = input(dev, &mut g, &src_shape, dt, src_lay, &mut any_value(dt))?;
                let rest = shape[dim] - start - len;
                let want = rf::cat(&[&dst.v.narrow(dim, 0, start), &src.v, &dst.v.narrow(dim, start + len, rest)], dim);
                let Input { t: mut out, v: old } = dst;
                let keep = shared.then(|| out.clone());
                let contiguous = out.is_contiguous();
                let in_place = out.slice_set(&src.t, api, start)?;
                if (shared || !contiguous) && in_place && len > 0 {
                    bail!("wrote in place into a storage that is shared or not contiguous");
                }
                if let Some(kept) = keep {
                    exact(&kept, dt, &old)?;
                }
                exact(&out, dt, &want)
            });
        }
    }
    bad_slice_set(s);
}

fn bad_slice_set(s: &mut Suite) {
    let name = "slice_set";
    s.case(name, "rejects a source that does not fit, or of another dtype".into(), |dev| {
        let mut t = Tensor::zeros(vec![2, 5, 3], DType::F32, dev)?;
        let src = Tensor::zeros(vec![2, 2, 3], DType::F32, dev)?;
        for (bad, what) in [
            (t.clone().slice_set(&src, 1, 4), "past the end"),
            (t.clone().slice_set(&Tensor::zeros(vec![2, 2, 4], DType::F32, dev)?, 1, 0), "a wrong shape"),
            (t.clone().slice_set(&src.to_dtype(DType::F16)?, 1, 0), "another dtype"),
            (t.clone().slice_set(&src.reshape(vec![4, 3])?, 1, 0), "another rank"),
        ] {
            if bad.is_ok() {
                bail!("accepted {what}");
            }
        }
        t.slice_set(&src, 1, 3)?;
        Ok(())
    });
}

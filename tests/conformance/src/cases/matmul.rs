//! Matrix products: plain, batched with broadcast batch dims, 1-D operands,
//! transposed and strided operands, empty dims.

use super::compare_out;
use crate::arr::numel;
use crate::check::expect_unsupported;
use crate::gen::Gen;
use crate::input::{input, poison, Input, Lay};
use crate::reference as rf;
use crate::{Suite, R};
use tessera_tensor::{DType, Device, Tensor};

const CASES: usize = 40;

pub fn run(s: &mut Suite) {
    let name = "matmul";
    if !s.on(name) {
        return;
    }
    let mut g = Gen::for_op(name);
    for dt in s.dtypes() {
        if !dt.is_compute_float() {
            s.case(name, format!("{dt} is rejected"), |dev| {
                let a = Tensor::ones((2, 2), dt, dev)?;
                expect_unsupported(a.matmul(&a))
            });
            continue;
        }
        for _ in 0..CASES {
            let (sa, sb) = shapes(&mut g);
            let (la, lb) = (Lay::random(&mut g), Lay::random(&mut g));
            // Half the 2-D+ operands are made as `.t()` of a stored transpose.
            let (ta, tb) = (sa.len() >= 2 && g.chance(0.3), sb.len() >= 2 && g.chance(0.3));
            let desc =
                format!("{dt} {sa:?} {la}{} @ {sb:?} {lb}{}", if ta { " (.t() view)" } else { "" }, if tb { " (.t() view)" } else { "" });
            s.case(name, desc, |dev| {
                let a = operand(dev, &mut g, &sa, dt, la, ta)?;
                let b = operand(dev, &mut g, &sb, dt, lb, tb)?;
                let want = rf::matmul(&a.v, &b.v);
                poison(dev, want.numel(), dt);
                compare_out(&a.t.matmul(&b.t)?, dt, &want, 1e-9)
            });
        }
    }
}

/// An operand of `shape`; with `transposed`, stored as the transpose of its
/// last two dims and viewed back through `.t()`.
fn operand(dev: &Device, g: &mut Gen, shape: &[usize], dt: DType, lay: Lay, transposed: bool) -> R<Input> {
    let mut dist = |g: &mut Gen| g.uniform(-1.0, 1.0);
    if !transposed {
        return input(dev, g, shape, dt, lay, &mut dist);
    }
    let r = shape.len();
    let mut st = shape.to_vec();
    st.swap(r - 2, r - 1);
    let x = input(dev, g, &st, dt, lay, &mut dist)?;
    let mut perm: Vec<usize> = (0..r).collect();
    perm.swap(r - 2, r - 1);
    Ok(Input { t: x.t.t()?, v: x.v.permute(&perm) })
}

/// Operand shapes: 1-D by 2-D, 2-D by 1-D, 1-D by 1-D, 2-D, and batched with
/// broadcast batch dims; sizes include 1, odd sizes and 0.
fn shapes(g: &mut Gen) -> (Vec<usize>, Vec<usize>) {
    loop {
        let (m, k, n) = (g.size(true), g.size(true), g.size(true));
        let (a, b) = match g.below(10) {
            0 => (vec![k], vec![k, n]),
            1 => (vec![m, k], vec![k]),
            2 => (vec![k], vec![k]),
            3..=5 => (vec![m, k], vec![k, n]),
            _ => {
                let rank = g.int(1, 2) as usize;
                let batch = g.shape(rank, true, 12);
                let mut side = || -> Vec<usize> {
                    let drop = if g.chance(0.3) { g.below(rank + 1) } else { 0 };
                    batch[drop..].iter().map(|&d| if g.chance(0.3) { 1 } else { d }).collect()
                };
                let (mut a, mut b) = (side(), side());
                a.extend([m, k]);
                b.extend([k, n]);
                if g.chance(0.2) {
                    // A batched lhs against a plain matrix.
                    b = vec![k, n];
                }
                (a, b)
            }
        };
        let batch = numel(&a[..a.len().saturating_sub(2)]).max(numel(&b[..b.len().saturating_sub(2)])).max(1);
        if batch * m.max(1) * k.max(1) * n.max(1) <= 150_000 {
            return (a, b);
        }
    }
}

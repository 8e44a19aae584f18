//! Views: reshape, permute, transpose/t, narrow, slice with a step,
//! expand/broadcast_as, squeeze/unsqueeze, flatten, chunk. Each case applies
//! a short random chain of views to a random input (any layout, any dtype),
//! then the view under test, and checks the shape, the values read through
//! the view, and the values after `.contiguous()`; views that need no copy
//! must share the input's storage.

use super::index::any_value;
use crate::arr::{numel, Arr};
use crate::check::exact;
use crate::gen::Gen;
use crate::input::{input, poison, Lay};
use crate::{bail, Suite, R};
use tessera_tensor::Tensor;

const CASES: usize = 6;
const KINDS: [&str; 10] = ["reshape", "permute", "transpose", "narrow", "slice", "expand", "squeeze", "unsqueeze", "flatten", "chunk"];

#[derive(Clone, Debug)]
enum ViewOp {
    /// The shape as given to the API (maybe with one `usize::MAX`) and the
    /// actual shape.
    Reshape(Vec<usize>, Vec<usize>),
    Permute(Vec<usize>),
    Transpose(i64, i64),
    T,
    Narrow(i64, usize, usize),
    Slice(i64, usize, usize, usize),
    Expand(Vec<usize>, bool),
    Unsqueeze(i64),
    Squeeze(i64),
    Flatten(i64, i64),
    /// dim, number of chunks, which chunk.
    Chunk(i64, usize, usize),
}

fn resolve(d: i64, rank: usize) -> usize {
    if d < 0 {
        (d + rank as i64) as usize
    } else {
        d as usize
    }
}

fn signed(g: &mut Gen, d: usize, rank: usize) -> i64 {
    super::signed_dim(g, d, rank)
}

impl ViewOp {
    /// Whether the view may have to copy (so storage sharing is not checked).
    fn may_copy(&self) -> bool {
        matches!(self, ViewOp::Reshape(..) | ViewOp::Flatten(..))
    }

    /// A random view of `kind` for a tensor of `shape`; `None` when none
    /// applies.
    fn random(kind: &str, shape: &[usize], g: &mut Gen) -> Option<ViewOp> {
        let r = shape.len();
        let n = numel(shape);
        Some(match kind {
            "reshape" => {
                let rank = g.int(1, 4) as usize;
                let mut new = vec![1usize; rank];
                if n == 0 {
                    new[g.below(rank)] = 0;
                    for d in new.iter_mut().filter(|d| **d != 0) {
                        *d = g.pick(&[1, 2, 3]);
                    }
                } else {
                    let mut rest = n;
                    let mut p = 2;
                    while rest > 1 {
                        while rest.is_multiple_of(p) {
                            new[g.below(rank)] *= p;
                            rest /= p;
                        }
                        p += 1;
                    }
                }
                let mut api = new.clone();
                if n > 0 && g.chance(0.3) {
                    api[g.below(rank)] = usize::MAX;
                }
                ViewOp::Reshape(api, new)
            }
            "permute" => {
                let mut p: Vec<usize> = (0..r).collect();
                g.shuffle(&mut p);
                ViewOp::Permute(p)
            }
            "transpose" if r >= 2 && g.chance(0.3) => ViewOp::T,
            "transpose" if r >= 1 => {
                let (a, b) = (g.below(r), g.below(r));
                ViewOp::Transpose(signed(g, a, r), signed(g, b, r))
            }
            "narrow" if r >= 1 => {
                let d = g.below(r);
                let start = g.int(0, shape[d] as i64) as usize;
                let len = g.int(0, (shape[d] - start) as i64) as usize;
                ViewOp::Narrow(signed(g, d, r), start, len)
            }
            "slice" if r >= 1 => {
                let d = g.below(r);
                let start = g.int(0, shape[d] as i64) as usize;
                let end = g.int(start as i64, shape[d] as i64) as usize;
                ViewOp::Slice(signed(g, d, r), start, end, g.int(1, 3) as usize)
            }
            "expand" => {
                let lead = g.below(3);
                let mut new: Vec<usize> = (0..lead).map(|_| g.pick(&[1, 2, 3])).collect();
                new.extend(shape.iter().map(|&d| if d == 1 { g.pick(&[1, 2, 3, 5]) } else { d }));
                if numel(&new) > 20_000 {
                    return None;
                }
                ViewOp::Expand(new, g.chance(0.5))
            }
            "unsqueeze" => {
                let d = g.below(r + 1);
                ViewOp::Unsqueeze(signed(g, d, r + 1))
            }
            "squeeze" if r >= 1 => {
                let ones: Vec<usize> = (0..r).filter(|&d| shape[d] == 1).collect();
                let d = if !ones.is_empty() && g.chance(0.7) { g.pick(&ones) } else { g.below(r) };
                ViewOp::Squeeze(signed(g, d, r))
            }
            "flatten" if r >= 1 => {
                let a = g.below(r);
                let b = g.int(a as i64, r as i64 - 1) as usize;
                ViewOp::Flatten(signed(g, a, r), signed(g, b, r))
            }
            "chunk" => {
                let dims: Vec<usize> = (0..r).filter(|&d| shape[d] > 0).collect();
                if dims.is_empty() {
                    return None;
                }
                let d = g.pick(&dims);
                let chunks = g.int(1, 4) as usize;
                let step = shape[d].div_ceil(chunks);
                let count = shape[d].div_ceil(step);
                ViewOp::Chunk(signed(g, d, r), chunks, g.below(count))
            }
            _ => return None,
        })
    }

    fn apply(&self, t: &Tensor) -> tessera_tensor::Result<Tensor> {
        match self {
            ViewOp::Reshape(api, _) => t.reshape(api.clone()),
            ViewOp::Permute(p) => t.permute(p),
            ViewOp::Transpose(a, b) => t.transpose(*a, *b),
            ViewOp::T => t.t(),
            ViewOp::Narrow(d, s, l) => t.narrow(*d, *s, *l),
            ViewOp::Slice(d, s, e, st) => t.slice(*d, *s, *e, *st),
            ViewOp::Expand(shape, true) => t.expand(shape.clone()),
            ViewOp::Expand(shape, false) => t.broadcast_as(shape.clone()),
            ViewOp::Unsqueeze(d) => t.unsqueeze(*d),
            ViewOp::Squeeze(d) => t.squeeze(*d),
            ViewOp::Flatten(a, b) => t.flatten(*a, *b),
            ViewOp::Chunk(d, n, which) => Ok(t.chunk(*n, *d)?[*which].clone()),
        }
    }

    /// The same view on the dense reference.
    fn apply_ref(&self, a: &Arr) -> Arr {
        let r = a.rank();
        match self {
            ViewOp::Reshape(_, shape) => a.reshape(shape),
            ViewOp::Permute(p) => a.permute(p),
            ViewOp::Transpose(x, y) => {
                let mut p: Vec<usize> = (0..r).collect();
                p.swap(resolve(*x, r), resolve(*y, r));
                a.permute(&p)
            }
            ViewOp::T => {
                let mut p: Vec<usize> = (0..r).collect();
                p.swap(r - 2, r - 1);
                a.permute(&p)
            }
            ViewOp::Narrow(d, s, l) => a.narrow(resolve(*d, r), *s, *l),
            ViewOp::Slice(d, s, e, st) => a.slice(resolve(*d, r), *s, *e, *st),
            ViewOp::Expand(shape, _) => a.broadcast_to(shape),
            ViewOp::Unsqueeze(d) => {
                let mut s = a.shape.clone();
                s.insert(resolve(*d, r + 1), 1);
                a.reshape(&s)
            }
            ViewOp::Squeeze(d) => {
                let mut s = a.shape.clone();
                if s[resolve(*d, r)] == 1 {
                    s.remove(resolve(*d, r));
                }
                a.reshape(&s)
            }
            ViewOp::Flatten(x, y) => {
                let (x, y) = (resolve(*x, r), resolve(*y, r));
                let mut s = a.shape[..x].to_vec();
                s.push(numel(&a.shape[x..=y]));
                s.extend_from_slice(&a.shape[y + 1..]);
                a.reshape(&s)
            }
            ViewOp::Chunk(d, n, which) => {
                let d = resolve(*d, r);
                let step = a.shape[d].div_ceil(*n);
                let start = which * step;
                a.narrow(d, start, step.min(a.shape[d] - start))
            }
        }
    }
}

pub fn run(s: &mut Suite) {
    for kind in KINDS {
        if !s.on(kind) {
            continue;
        }
        let mut g = Gen::for_op(kind);
        for dt in s.dtypes() {
            for _ in 0..CASES {
                let rank = g.int(2, 4) as usize;
                let shape = g.shape(rank, kind != "chunk", 2048);
                let lay = Lay::random(&mut g);
                // A chain of 0-2 views before the one under test.
                let mut chain = Vec::new();
                let mut cur = Arr::filled(&shape, 0.0);
                for _ in 0..g.below(3) {
                    let k = g.pick(&KINDS);
                    if let Some(v) = ViewOp::random(k, &cur.shape, &mut g) {
                        cur = v.apply_ref(&cur);
                        chain.push(v);
                    }
                }
                let last = match ViewOp::random(kind, &cur.shape, &mut g) {
                    Some(v) => v,
                    None => {
                        chain.clear();
                        match ViewOp::random(kind, &shape, &mut g) {
                            Some(v) => v,
                            None => continue,
                        }
                    }
                };
                chain.push(last);
                s.case(kind, format!("{dt} {shape:?} {lay} then {chain:?}"), |dev| {
                    let x = input(dev, &mut g, &shape, dt, lay, &mut any_value(dt))?;
                    let (mut t, mut v) = (x.t.clone(), x.v.clone());
                    for op in &chain {
                        t = op.apply(&t)?;
                        v = op.apply_ref(&v);
                    }
                    if t.dims() != v.shape.as_slice() {
                        bail!("view shape {:?}, expected {:?}", t.dims(), v.shape);
                    }
                    if !chain.iter().any(ViewOp::may_copy) && !t.shares_storage(&x.t) {
                        bail!("the view copied its input");
                    }
                    exact(&t, dt, &v)?;
                    poison(dev, v.numel(), dt);
                    let c = t.contiguous()?;
                    if !c.is_contiguous() {
                        bail!("contiguous() gave the layout {:?}", c.layout());
                    }
                    exact(&c, dt, &v)
                });
            }
        }
    }
    check_reshape_copies(s);
}

/// A reshape of contiguous data is a view; of a transposed one, a copy.
fn check_reshape_copies(s: &mut Suite) {
    s.case("reshape", "contiguous data reshapes without a copy".into(), |dev| -> R<()> {
        let x = Tensor::arange(0.0, 24.0, 1.0, tessera_tensor::DType::F32, dev)?.reshape((2, 3, 4))?;
        let y = x.reshape((6, 4))?;
        if !y.shares_storage(&x) {
            bail!("reshape of contiguous data copied");
        }
        let z = x.transpose(0, 2)?.reshape((4, 6))?;
        let want: Vec<f64> = (0..24).map(|i| ((i % 2) * 12 + (i % 6 / 2) * 4 + i / 6) as f64).collect();
        exact(&z, tessera_tensor::DType::F32, &Arr::new(vec![4, 6], want))
    });
}

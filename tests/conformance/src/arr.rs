//! `Arr`: the reference's dense row-major f64 array, with the index
//! arithmetic the reference is written in. Nothing here touches a tensor.

/// Number of elements of a shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![0; shape.len()];
    let mut acc = 1;
    for d in (0..shape.len()).rev() {
        s[d] = acc;
        acc *= shape[d];
    }
    s
}

/// Calls `f(flat, index)` for every index of `shape` in row-major order.
pub fn for_each_index(shape: &[usize], mut f: impl FnMut(usize, &[usize])) {
    let n = numel(shape);
    let mut idx = vec![0usize; shape.len()];
    for flat in 0..n {
        f(flat, &idx);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// NumPy broadcasting of several shapes; `None` when they do not broadcast.
pub fn broadcast_shapes(shapes: &[&[usize]]) -> Option<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1; rank];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}

/// A dense row-major array of f64.
#[derive(Clone, Debug, PartialEq)]
pub struct Arr {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Arr {
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Arr {
        assert_eq!(numel(&shape), data.len(), "Arr of shape {shape:?}");
        Arr { shape, data }
    }

    pub fn from_fn(shape: &[usize], mut f: impl FnMut(&[usize]) -> f64) -> Arr {
        let mut data = Vec::with_capacity(numel(shape));
        for_each_index(shape, |_, idx| data.push(f(idx)));
        Arr { shape: shape.to_vec(), data }
    }

    pub fn filled(shape: &[usize], v: f64) -> Arr {
        Arr { shape: shape.to_vec(), data: vec![v; numel(shape)] }
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Row-major position of `idx`.
    pub fn pos(&self, idx: &[usize]) -> usize {
        let mut p = 0;
        for (d, &i) in idx.iter().enumerate() {
            p = p * self.shape[d] + i;
        }
        p
    }

    pub fn at(&self, idx: &[usize]) -> f64 {
        self.data[self.pos(idx)]
    }

    pub fn map(&self, f: impl Fn(f64) -> f64) -> Arr {
        Arr { shape: self.shape.clone(), data: self.data.iter().map(|&x| f(x)).collect() }
    }

    pub fn reshape(&self, shape: &[usize]) -> Arr {
        Arr::new(shape.to_vec(), self.data.clone())
    }

    /// `out[i_0, ..] = self[.., i_k at perm[k], ..]`.
    pub fn permute(&self, perm: &[usize]) -> Arr {
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let mut src = vec![0; self.rank()];
        Arr::from_fn(&shape, |idx| {
            for (k, &p) in perm.iter().enumerate() {
                src[p] = idx[k];
            }
            self.at(&src)
        })
    }

    /// Elements `start, start + step, ...` below `end` of `dim`.
    pub fn slice(&self, dim: usize, start: usize, end: usize, step: usize) -> Arr {
        let mut shape = self.shape.clone();
        shape[dim] = (end - start).div_ceil(step);
        let mut src = vec![0; self.rank()];
        Arr::from_fn(&shape, |idx| {
            src.copy_from_slice(idx);
            src[dim] = start + idx[dim] * step;
            self.at(&src)
        })
    }

    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Arr {
        self.slice(dim, start, start + len, 1)
    }

    /// NumPy broadcast to `shape`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Arr {
        let extra = shape.len() - self.rank();
        let mut src = vec![0; self.rank()];
        Arr::from_fn(shape, |idx| {
            for d in 0..src.len() {
                src[d] = if self.shape[d] == 1 { 0 } else { idx[d + extra] };
            }
            self.at(&src)
        })
    }

    /// `f` over the broadcast of `args`, NumPy style.
    pub fn map_n(args: &[&Arr], mut f: impl FnMut(&[f64]) -> f64) -> Arr {
        let shapes: Vec<&[usize]> = args.iter().map(|a| a.shape.as_slice()).collect();
        let shape = broadcast_shapes(&shapes).expect("reference operands broadcast");
        let full: Vec<Arr> = args.iter().map(|a| a.broadcast_to(&shape)).collect();
        let mut vals = vec![0.0; args.len()];
        let data = (0..numel(&shape))
            .map(|i| {
                for (v, a) in vals.iter_mut().zip(&full) {
                    *v = a.data[i];
                }
                f(&vals)
            })
            .collect();
        Arr { shape, data }
    }

    pub fn zip(a: &Arr, b: &Arr, f: impl Fn(f64, f64) -> f64) -> Arr {
        Arr::map_n(&[a, b], |v| f(v[0], v[1]))
    }
}

/// Splits `shape` around `dim` as `(outer, size, inner)`: element
/// `(o, i, n)` of the row-major data is at `(o * size + i) * inner + n`.
pub fn lines(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    (numel(&shape[..dim]), shape[dim], numel(&shape[dim + 1..]))
}

//! Strided layouts as kernels take them (`Strided` in kernels/common.cuh),
//! and the merging of dims that keeps their rank low.

use tessera_tensor::{Error, Layout, Result};

/// Most dims a kernel layout holds, after merging (`MAX_DIMS` in common.cuh).
pub const MAX_DIMS: usize = 8;

/// `struct Strided` of kernels/common.cuh.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Strided {
    pub rank: i32,
    pad: i32,
    pub dims: [i64; MAX_DIMS],
    pub strides: [i64; MAX_DIMS],
}

impl Strided {
    pub fn new(op: &'static str, dims: &[usize], strides: &[usize]) -> Result<Strided> {
        if dims.len() > MAX_DIMS {
            return Err(Error::InvalidArgument {
                op,
                msg: format!(
                    "a view of shape {dims:?} with strides {strides:?} has {} dims that cannot be merged; the CUDA backend takes at most {MAX_DIMS}",
                    dims.len()
                ),
            });
        }
        let mut s = Strided { rank: dims.len() as i32, ..Default::default() };
        for (i, (&d, &st)) in dims.iter().zip(strides).enumerate() {
            s.dims[i] = d as i64;
            s.strides[i] = st as i64;
        }
        Ok(s)
    }

    /// A dense row-major layout of `n` elements.
    pub fn contiguous(n: usize) -> Strided {
        Strided::new("contiguous", &[n], &[1]).expect("rank 1")
    }

    /// True when logical order is storage order (one unit-stride dim, or none).
    pub fn is_contiguous(&self) -> bool {
        self.rank == 0 || (self.rank == 1 && self.strides[0] == 1)
    }
}

/// Merges the dims of `shape` that every operand walks contiguously (and
/// drops size-1 dims), so several strided operands of one shape reach the
/// kernel with as few dims as possible. Returns the merged shape and each
/// operand's merged strides.
pub fn merge_dims(shape: &[usize], operands: &[&[usize]]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let keep: Vec<usize> = (0..shape.len()).filter(|&d| shape[d] != 1).collect();
    let mut dims: Vec<usize> = Vec::new();
    let mut strides: Vec<Vec<usize>> = vec![Vec::new(); operands.len()];
    for &d in &keep {
        let mergeable =
            !dims.is_empty() && operands.iter().zip(&strides).all(|(op, st)| *st.last().expect("same length as dims") == op[d] * shape[d]);
        if mergeable {
            *dims.last_mut().expect("non-empty") *= shape[d];
            for (st, op) in strides.iter_mut().zip(operands) {
                *st.last_mut().expect("non-empty") = op[d];
            }
        } else {
            dims.push(shape[d]);
            for (st, op) in strides.iter_mut().zip(operands) {
                st.push(op[d]);
            }
        }
    }
    (dims, strides)
}

/// Kernel layouts of several views of one shape, merged together.
pub fn kernel_layouts(op: &'static str, layouts: &[&Layout]) -> Result<Vec<Strided>> {
    let shape = layouts[0].shape();
    let strides: Vec<&[usize]> = layouts.iter().map(|l| l.strides()).collect();
    let (dims, merged) = merge_dims(shape, &strides);
    merged.iter().map(|st| Strided::new(op, &dims, st)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_views_merge_to_one_dim() {
        let (d, s) = merge_dims(&[2, 3, 4], &[&[12, 4, 1]]);
        assert_eq!((d, s), (vec![24], vec![vec![1]]));
    }

    #[test]
    fn broadcast_and_transposed_dims_stay_apart() {
        // lhs contiguous [2, 3, 4]; rhs broadcast over dim 0.
        let (d, s) = merge_dims(&[2, 3, 4], &[&[12, 4, 1], &[0, 4, 1]]);
        assert_eq!(d, vec![2, 12]);
        assert_eq!(s, vec![vec![12, 1], vec![0, 1]]);
        // A transpose keeps both dims.
        let (d, s) = merge_dims(&[3, 2], &[&[1, 3]]);
        assert_eq!((d, s), (vec![3, 2], vec![vec![1, 3]]));
    }

    #[test]
    fn size_one_dims_are_dropped() {
        let (d, s) = merge_dims(&[1, 5, 1], &[&[99, 2, 7]]);
        assert_eq!((d, s), (vec![5], vec![vec![2]]));
        let (d, _) = merge_dims(&[1, 1], &[&[1, 1]]);
        assert!(d.is_empty());
    }

    #[test]
    fn too_many_dims_is_an_error() {
        let dims = [2usize; 9];
        let strides: Vec<usize> = (0..9).map(|i| 1 << (2 * i)).rev().collect();
        assert!(Strided::new("t", &dims, &strides).is_err());
    }
}

//! The parameter block every kernel reads at binding 0 (see the layout in
//! shaders/common.wgsl) and the dim merging that keeps its rank small.

use tessera_tensor::{Error, Layout, Result};

/// Dims a kernel indexes at most.
pub const MAX_RANK: usize = 8;
const SHAPE_AT: usize = 2;
const EXTRA_AT: usize = 10;
/// extra(7) stays 0: `opaque()` in common.wgsl relies on it.
const EXTRAS: usize = 7;
const OPERANDS_AT: usize = 18;

/// A strided operand: element offset and strides over the (merged) shape.
#[derive(Clone, Debug)]
pub struct Strided {
    pub offset: usize,
    pub strides: Vec<usize>,
}

/// Merges `shape`'s dims for operands that all see it through `strides`:
/// size-1 dims are dropped and neighbours merged where every operand steps
/// through them as one dim. Returns the merged shape and strides.
pub fn merge_dims(shape: &[usize], operands: &[(usize, &[usize])]) -> (Vec<usize>, Vec<Strided>) {
    let mut dims: Vec<usize> = Vec::new();
    let mut strides: Vec<Vec<usize>> = vec![Vec::new(); operands.len()];
    for (d, &size) in shape.iter().enumerate() {
        if size == 1 {
            continue;
        }
        let mergeable =
            !dims.is_empty() && operands.iter().zip(&strides).all(|((_, s), merged)| merged.last().copied() == Some(s[d] * size));
        if mergeable {
            *dims.last_mut().unwrap() *= size;
            for ((_, s), merged) in operands.iter().zip(strides.iter_mut()) {
                *merged.last_mut().unwrap() = s[d];
            }
        } else {
            dims.push(size);
            for ((_, s), merged) in operands.iter().zip(strides.iter_mut()) {
                merged.push(s[d]);
            }
        }
    }
    let ops = operands.iter().zip(strides).map(|((offset, _), strides)| Strided { offset: *offset, strides }).collect();
    (dims, ops)
}

/// A parameter block under construction.
#[derive(Clone, Debug)]
pub struct Params {
    words: Vec<u32>,
}

fn word(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::InvalidArgument { op, msg: format!("size {v} exceeds the wgpu backend's 32-bit indexing") })
}

impl Params {
    /// `n` elements over `shape` (already merged), read by `operands`.
    pub fn new(op: &'static str, n: usize, shape: &[usize], operands: &[Strided]) -> Result<Params> {
        if shape.len() > MAX_RANK {
            return Err(Error::InvalidArgument {
                op,
                msg: format!("a layout of rank {} that does not merge below {MAX_RANK} dims is not supported on wgpu", shape.len()),
            });
        }
        let mut words = vec![0u32; OPERANDS_AT + 9 * operands.len()];
        words[0] = word(op, n)?;
        words[1] = shape.len() as u32;
        for (i, &s) in shape.iter().enumerate() {
            words[SHAPE_AT + i] = word(op, s)?;
        }
        for (j, o) in operands.iter().enumerate() {
            let base = OPERANDS_AT + 9 * j;
            words[base] = word(op, o.offset)?;
            for (i, &s) in o.strides.iter().enumerate() {
                words[base + 1 + i] = word(op, s)?;
            }
        }
        Ok(Params { words })
    }

    /// Elementwise params over views that all have `shape` (broadcast by
    /// strides), dims merged.
    pub fn elementwise(op: &'static str, shape: &[usize], layouts: &[&Layout]) -> Result<Params> {
        let ops: Vec<(usize, &[usize])> = layouts.iter().map(|l| (l.offset(), l.strides())).collect();
        let (dims, strided) = merge_dims(shape, &ops);
        Params::new(op, shape.iter().product(), &dims, &strided)
    }

    /// Sets scalar `k` (`extra(k)` in WGSL).
    pub fn extra(mut self, k: usize, v: u32) -> Self {
        assert!(k < EXTRAS, "extra slot {k}");
        self.words[EXTRA_AT + k] = v;
        self
    }

    pub fn extra_f32(self, k: usize, v: f32) -> Self {
        self.extra(k, v.to_bits())
    }

    /// Appends kernel-specific words after the operand records: with `J`
    /// records, WGSL reads them as `p[operand(J) + k]`.
    pub fn tail(mut self, op: &'static str, values: &[usize]) -> Result<Self> {
        for &v in values {
            self.words.push(word(op, v)?);
        }
        Ok(self)
    }

    pub fn words(&self) -> &[u32] {
        &self.words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_merges_to_one_dim() {
        let (dims, ops) = merge_dims(&[2, 3, 4], &[(5, &[12, 4, 1])]);
        assert_eq!(dims, vec![24]);
        assert_eq!(ops[0].strides, vec![1]);
        assert_eq!(ops[0].offset, 5);
    }

    #[test]
    fn broadcast_and_transpose_keep_their_dims() {
        // lhs contiguous [2, 3], rhs broadcast along dim 0.
        let (dims, ops) = merge_dims(&[2, 3], &[(0, &[3, 1]), (0, &[0, 1])]);
        assert_eq!(dims, vec![2, 3]);
        assert_eq!(ops[1].strides, vec![0, 1]);
        // Size-1 dims vanish.
        let (dims, _) = merge_dims(&[1, 4, 1], &[(0, &[4, 1, 1])]);
        assert_eq!(dims, vec![4]);
        // A transposed view does not merge.
        let (dims, ops) = merge_dims(&[3, 2], &[(0, &[1, 3])]);
        assert_eq!(dims, vec![3, 2]);
        assert_eq!(ops[0].strides, vec![1, 3]);
    }
}

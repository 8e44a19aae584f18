//! index_select, gather and cat, as elementwise kernels over the output
//! (elementwise.wgsl with generated bodies).
//!
//! Each source is described by a layout over the *output's* shape: its
//! stride along the indexed dim is 0 and the index tensor supplies that
//! coordinate, scaled by the source's real stride (`extra(0)`).

use super::elementwise::Operand;
use crate::backend::WgpuBackend;
use crate::storage::storage;
use tessera_tensor::{Result, StorageRef, View};

/// Reads the element the index picks: source offset (index dim zeroed) plus
/// id * stride.
const PICK: &str = "let id = b_i(offset_of(operand(1u), i)).x; out_put_b(i, a_b(offset_of(operand(0u), i) + id * extra(0u)), acc);";

impl WgpuBackend {
    pub(crate) fn index_select_op(&self, src: View, ids: View, dim: usize) -> Result<StorageRef> {
        let mut shape = src.shape().to_vec();
        shape[dim] = ids.shape()[0];
        let mut src_op = Operand::of(&src)?;
        let stride = src_op.strides[dim];
        src_op.strides[dim] = 0;
        // The 1-D ids, seen over the output shape: they vary along `dim` only.
        let mut id_strides = vec![0; shape.len()];
        id_strides[dim] = ids.layout.strides()[0];
        let id_op = Operand { buffer: storage(&ids)?.buffer(), dtype: ids.dtype(), offset: ids.layout.offset(), strides: id_strides };
        let dst = self.alloc(src.dtype(), shape.iter().product())?;
        self.map_into(&dst, "index_select", &shape, &[src_op, id_op], &[stride as u32], PICK.into(), "0u")?;
        Ok(dst)
    }

    pub(crate) fn gather_op(&self, src: View, ids: View, dim: usize) -> Result<StorageRef> {
        let shape = ids.shape().to_vec();
        let mut src_op = Operand::of(&src)?;
        let stride = src_op.strides[dim];
        src_op.strides[dim] = 0;
        let dst = self.alloc(src.dtype(), shape.iter().product())?;
        self.map_into(&dst, "gather", &shape, &[src_op, Operand::of(&ids)?], &[stride as u32], PICK.into(), "0u")?;
        Ok(dst)
    }

    /// One pass per source over the whole output; each pass writes the
    /// elements whose coordinate along `dim` falls in its source's range and
    /// keeps the other bits of shared words.
    pub(crate) fn cat_op(&self, srcs: &[View], dim: usize) -> Result<StorageRef> {
        let mut shape = srcs[0].shape().to_vec();
        shape[dim] = srcs.iter().map(|s| s.shape()[dim]).sum();
        let dtype = srcs[0].dtype();
        let dst = self.alloc(dtype, shape.iter().product())?;
        let inner: usize = shape[dim + 1..].iter().product();
        let body = "let j = (i / extra(0u)) % extra(1u); if (j >= extra(2u) && j < extra(3u)) { out_put_b(i, a_b(offset_of(operand(0u), i)), acc); }";
        let mut start = 0;
        for s in srcs {
            let len = s.shape()[dim];
            if len > 0 {
                let mut op = Operand::of(s)?;
                // Shift the source so that output coordinate `start` maps to
                // its first row (u32 arithmetic wraps back into range).
                op.offset = (op.offset as u32).wrapping_sub((start * op.strides[dim]) as u32) as usize;
                let extras = [inner as u32, shape[dim] as u32, start as u32, (start + len) as u32];
                self.map_into(&dst, "cat", &shape, &[op], &extras, body.into(), "out_word(t)")?;
            }
            start += len;
        }
        Ok(dst)
    }
}

//! conv2d: im2col (im2col.wgsl) into columns in the input's dtype, then the
//! batched matmul with the bias added in its epilogue (see matmul.rs).

use super::matmul::Bias;
use crate::backend::WgpuBackend;
use crate::gpu::KernelSpec;
use crate::params::{Params, Strided};
use crate::storage::storage;
use tessera_tensor::{Conv2dParams, Error, Layout, Result, StorageRef, View};

impl WgpuBackend {
    /// `x` `[n, c, h, w]`, `w` `[o, c / groups, kh, kw]`, `bias` `[o]`
    /// (shapes checked by the core): the output `[n, o, oh, ow]` is the
    /// product of each group's weight `[o / groups, K]` with that group's
    /// columns `[K, oh * ow]`, `K = c / groups * kh * kw`.
    pub(crate) fn conv2d_op(&self, x: View, w: View, bias: Option<View>, p: &Conv2dParams) -> Result<StorageRef> {
        let op = "conv2d";
        let dtype = x.dtype();
        let (n, h, wd) = (x.shape()[0], x.shape()[2], x.shape()[3]);
        let (o, cg, kh, kw) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
        let (oh, ow) = p
            .output_size((h, wd), (kh, kw))
            .ok_or_else(|| Error::InvalidArgument { op, msg: format!("kernel {kh}x{kw} with {p:?} does not fit input {:?}", x.shape()) })?;
        let (g, og) = (p.groups, o / p.groups);
        let (k, positions) = (cg * kh * kw, oh * ow);
        let cols_len = n * g * positions * k;
        if u32::try_from(cols_len).is_err() {
            return Err(Error::InvalidArgument {
                op,
                msg: format!("{cols_len} im2col elements exceed the wgpu backend's 32-bit indexing"),
            });
        }
        let cols = self.alloc(dtype, cols_len)?;
        let xs = x.layout.strides();
        let record = Strided { offset: x.layout.offset(), strides: xs.to_vec() };
        let geometry =
            [k, positions, g, cg, kh, kw, ow, h, wd, p.stride.0, p.stride.1, p.padding.0, p.padding.1, p.dilation.0, p.dilation.1];
        let params = Params::new(op, cols_len, &[], &[record])?.tail(op, &geometry)?;
        let spec = KernelSpec::map("im2col", "0u").input("a", dtype).out(dtype);
        let per_word = crate::codegen::per_word(dtype) as usize;
        self.gpu.launch_1d(&spec, params.words(), &[storage(&x)?.buffer(), self.buffer_of(&cols)?], cols_len.div_ceil(per_word))?;

        // The weight as [n (broadcast), g, og, K]: a copy when its layout
        // does not flatten to rows of K.
        let dense;
        let w = if w.layout.is_contiguous() {
            w
        } else {
            dense = (self.cast_op(w, dtype)?, Layout::contiguous(w.shape().to_vec()));
            View { storage: dense.0.as_ref(), layout: &dense.1 }
        };
        let lhs_layout = Layout::new(vec![n, g, og, k], vec![0, og * k, k, 1], w.layout.offset(), w.storage.len())?;
        let rhs_layout = Layout::new(vec![n, g, k, positions], vec![g * positions * k, positions * k, 1, k], 0, cols_len)?;
        let lhs = View { storage: w.storage, layout: &lhs_layout };
        let rhs = View { storage: cols.as_ref(), layout: &rhs_layout };
        let bias = bias.map(|b| {
            let bs = b.layout.strides()[0];
            Bias { view: b, batch_strides: vec![0, og * bs], row_stride: bs, col_stride: 0 }
        });
        self.gemm(op, lhs, rhs, bias, None)
    }
}

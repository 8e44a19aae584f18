//! Softmax, layer/RMS norm (norm.wgsl) and rope (rope.wgsl).

use super::elementwise::Operand;
use super::reduce::wide;
use crate::backend::WgpuBackend;
use crate::gpu::KernelSpec;
use crate::params::{merge_dims, Params};
use crate::storage::storage;
use tessera_tensor::{Result, RopeStyle, StorageRef, View};

impl WgpuBackend {
    /// One workgroup per row of the last dim; `mode` as in norm.wgsl.
    fn rows_kernel(&self, op: &'static str, x: View, w: Option<View>, b: Option<View>, eps: f64, mode: u32) -> Result<StorageRef> {
        let dtype = x.dtype();
        let shape = x.shape();
        let n: usize = shape.iter().product();
        let d = shape.last().copied().unwrap_or(1);
        let rows = n.checked_div(d).unwrap_or(0);
        let acc_dtype = wide(dtype);
        let out = self.alloc(acc_dtype, n)?;
        if rows > 0 {
            let o = Operand::of(&x)?;
            let (dims, strided) = merge_dims(shape, &[(o.offset, &o.strides)]);
            let mut params = Params::new(op, n, &dims, &strided)?.extra(0, d as u32).extra(1, rows as u32).extra_f32(6, eps as f32);
            let mut spec = KernelSpec::new("norm").lib(self.gpu.group_lib()).input("a", dtype).def("MODE", mode);
            let mut bufs = vec![storage(&x)?.buffer()];
            for (slot, name, v, default) in [(2, "w", w, "1.0"), (4, "bb", b, "0.0")] {
                let key = if name == "w" { "W" } else { "B" };
                match v {
                    Some(v) => {
                        params = params.extra(slot, v.layout.offset() as u32).extra(slot + 1, v.layout.strides()[0] as u32);
                        spec = spec.input(name, dtype).def(key, format!("{name}_f(extra({slot}u) + c * extra({}u))", slot + 1));
                        bufs.push(storage(&v)?.buffer());
                    }
                    None => spec = spec.def(key, default),
                }
            }
            spec = spec.out(acc_dtype);
            bufs.push(self.buffer_of(&out)?);
            let groups = self.gpu.grid_1d(rows * crate::gpu::WG as usize)?;
            self.gpu.launch(&spec, params.words(), &bufs, groups)?;
        }
        self.narrow_to(out, dtype)
    }

    pub(crate) fn softmax_op(&self, x: View, log: bool) -> Result<StorageRef> {
        self.rows_kernel(if log { "log_softmax" } else { "softmax" }, x, None, None, 0.0, u32::from(log))
    }

    pub(crate) fn norm_op(&self, x: View, w: Option<View>, b: Option<View>, eps: f64, rms: bool) -> Result<StorageRef> {
        self.rows_kernel(if rms { "rms_norm" } else { "layer_norm" }, x, w, b, eps, if rms { 3 } else { 2 })
    }

    pub(crate) fn rope_op(&self, x: View, cos: View, sin: View, style: RopeStyle) -> Result<StorageRef> {
        let shape = x.shape().to_vec();
        let r = shape.len();
        let (t, d) = (shape[r - 2], shape[r - 1]);
        let half = cos.shape()[1];
        fn table<'a>(v: &View<'a>, rank: usize) -> Result<Operand<'a>> {
            // Only offset and the two strides are read (see rope.wgsl).
            let mut strides = vec![0; rank.max(2)];
            strides[..2].copy_from_slice(&v.layout.strides()[..2]);
            Ok(Operand { buffer: storage(v)?.buffer(), dtype: v.dtype(), offset: v.layout.offset(), strides })
        }
        let dst = self.alloc(x.dtype(), shape.iter().product())?;
        let n: usize = shape.iter().product();
        if n == 0 {
            return Ok(dst);
        }
        // x is indexed by its logical element, so its layout must not merge
        // with the tables' placeholder strides: build the params directly.
        let xo = Operand::of(&x)?;
        let (dims, xs) = merge_dims(&shape, &[(xo.offset, &xo.strides)]);
        let (c, s) = (table(&cos, r)?, table(&sin, r)?);
        let mut strided = xs;
        for o in [&c, &s] {
            let mut st = o.strides.clone();
            st.truncate(dims.len().max(2));
            strided.push(crate::params::Strided { offset: o.offset, strides: st });
        }
        let params = Params::new("rope", n, &dims, &strided)?.extra(0, d as u32).extra(1, t as u32).extra(2, half as u32);
        let spec = KernelSpec::map("rope", "0u")
            .input("a", x.dtype())
            .input("b", cos.dtype())
            .input("c", sin.dtype())
            .out(x.dtype())
            .def("INTERLEAVED", u32::from(style == RopeStyle::Interleaved));
        let bufs = [xo.buffer, c.buffer, s.buffer, self.buffer_of(&dst)?];
        self.gpu.launch_1d(&spec, params.words(), &bufs, n.div_ceil(crate::codegen::per_word(x.dtype()) as usize))?;
        Ok(dst)
    }
}

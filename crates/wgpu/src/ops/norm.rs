//! Softmax, layer/RMS norm, residual add + norm and group norm (norm.wgsl),
//! and rope (rope.wgsl).

use super::elementwise::Operand;
use super::reduce::wide;
use crate::backend::WgpuBackend;
use crate::gpu::KernelSpec;
use crate::params::{merge_dims, Params};
use crate::storage::storage;
use tessera_tensor::{Error, NormKind, Result, RopeStyle, StorageRef, View};

/// The norm.wgsl modes.
const SOFTMAX: u32 = 0;
const LOG_SOFTMAX: u32 = 1;
const LAYER: u32 = 2;
const RMS: u32 = 3;

/// A weight or bias of a norm: a 1-D view whose element for logical
/// element `e` of x steps along one dim of x (`dim`).
struct Affine<'a> {
    view: View<'a>,
    dim: usize,
}

impl<'a> Affine<'a> {
    /// Along x's last dim (layer and RMS norm), or `None`.
    fn last(v: Option<View<'a>>, x: &View) -> Option<Affine<'a>> {
        v.map(|view| Affine { view, dim: x.shape().len() - 1 })
    }

    /// The view's strides broadcast over x's `shape`.
    fn strides(&self, rank: usize) -> Vec<usize> {
        let mut s = vec![0; rank];
        s[self.dim] = self.view.layout.strides()[0];
        s
    }
}

/// One launch of norm.wgsl: rows of `d` consecutive logical elements of
/// `x` (a residual added first when given), weight and bias per element.
struct Rows<'a> {
    op: &'static str,
    mode: u32,
    x: View<'a>,
    residual: Option<View<'a>>,
    w: Option<Affine<'a>>,
    b: Option<Affine<'a>>,
    d: usize,
    eps: f64,
}

impl WgpuBackend {
    /// Runs `rows`: the result (and, with a residual, the rounded sum).
    fn rows_kernel(&self, rows: Rows) -> Result<(StorageRef, Option<StorageRef>)> {
        let dtype = rows.x.dtype();
        let shape = rows.x.shape();
        let rank = shape.len();
        let n: usize = shape.iter().product();
        let count = n.checked_div(rows.d).unwrap_or(0);
        let acc_dtype = wide(dtype);
        let out = self.alloc(acc_dtype, n)?;
        let sum = rows.residual.as_ref().map(|_| self.alloc(acc_dtype, n)).transpose()?;
        if count > 0 {
            let x = Operand::of(&rows.x)?;
            let mut records: Vec<(usize, Vec<usize>)> = vec![(x.offset, x.strides.clone())];
            let mut spec = KernelSpec::new("norm").lib(self.gpu.group_lib()).def("MODE", rows.mode).input("a", dtype);
            let mut bufs = vec![x.buffer];
            let load = "a_f(offset_of(operand(0u), e))";
            spec = match &rows.residual {
                Some(r) => {
                    records.push((r.layout.offset(), r.layout.strides().to_vec()));
                    bufs.push(storage(r)?.buffer());
                    // Rounded to the dtype, as a separate add would store it.
                    spec.input("r", r.dtype()).def("X", format!("a_round({load} + r_f(offset_of(operand(1u), e)))"))
                }
                None => spec.def("X", load),
            };
            for (name, key, affine, absent) in [("w", "W", &rows.w, "1.0"), ("bb", "B", &rows.b, "0.0")] {
                spec = match affine {
                    Some(a) => {
                        records.push((a.view.layout.offset(), a.strides(rank)));
                        bufs.push(storage(&a.view)?.buffer());
                        spec.input(name, a.view.dtype()).def(key, format!("{name}_f(offset_of(operand({}u), e))", records.len() - 1))
                    }
                    None => spec.def(key, absent),
                };
            }
            let operands: Vec<(usize, &[usize])> = records.iter().map(|(o, s)| (*o, s.as_slice())).collect();
            let (dims, strided) = merge_dims(shape, &operands);
            let params =
                Params::new(rows.op, n, &dims, &strided)?.extra(0, rows.d as u32).extra(1, count as u32).extra_f32(6, rows.eps as f32);
            spec = spec.out(acc_dtype);
            bufs.push(self.buffer_of(&out)?);
            spec = match &sum {
                Some(s) => {
                    bufs.push(self.buffer_of(s)?);
                    spec.output("sum", acc_dtype).def("SUM", "sum_put_f(e, h, &unused);")
                }
                None => spec.def("SUM", ""),
            };
            let groups = self.gpu.grid_1d(count * crate::gpu::WG as usize)?;
            self.gpu.launch(&spec, params.words(), &bufs, groups)?;
        }
        let sum = sum.map(|s| self.narrow_to(s, dtype)).transpose()?;
        Ok((self.narrow_to(out, dtype)?, sum))
    }

    /// Rows along the last dim of `x`.
    fn last_dim_rows<'a>(op: &'static str, mode: u32, x: View<'a>, w: Option<View<'a>>, b: Option<View<'a>>, eps: f64) -> Rows<'a> {
        let d = x.shape().last().copied().unwrap_or(1);
        Rows { op, mode, w: Affine::last(w, &x), b: Affine::last(b, &x), x, residual: None, d, eps }
    }

    pub(crate) fn softmax_op(&self, x: View, log: bool) -> Result<StorageRef> {
        let (op, mode) = if log { ("log_softmax", LOG_SOFTMAX) } else { ("softmax", SOFTMAX) };
        Ok(self.rows_kernel(Self::last_dim_rows(op, mode, x, None, None, 0.0))?.0)
    }

    pub(crate) fn norm_op(&self, x: View, w: Option<View>, b: Option<View>, eps: f64, rms: bool) -> Result<StorageRef> {
        let (op, mode) = if rms { ("rms_norm", RMS) } else { ("layer_norm", LAYER) };
        Ok(self.rows_kernel(Self::last_dim_rows(op, mode, x, w, b, eps))?.0)
    }

    /// `(norm(x + residual), x + residual)` in one launch.
    pub(crate) fn add_norm_op(
        &self,
        x: View,
        residual: View,
        w: Option<View>,
        b: Option<View>,
        eps: f64,
        kind: NormKind,
    ) -> Result<(StorageRef, StorageRef)> {
        let (op, mode) = match kind {
            NormKind::Layer => ("add_layer_norm", LAYER),
            NormKind::Rms => ("add_rms_norm", RMS),
        };
        let rows = Rows { residual: Some(residual), ..Self::last_dim_rows(op, mode, x, w, b, eps) };
        match self.rows_kernel(rows)? {
            (y, Some(h)) => Ok((y, h)),
            (_, None) => Err(Error::Device { device: self.gpu.name.clone(), msg: "add_norm: the kernel wrote no sum".into() }),
        }
    }

    /// Group norm: each (n, group) of `x` `[n, c, ...]` is `c / groups`
    /// channels of consecutive logical elements, normalised as one row of a
    /// layer norm; weight and bias step along the channels.
    pub(crate) fn group_norm_op(&self, x: View, groups: usize, w: Option<View>, b: Option<View>, eps: f64) -> Result<StorageRef> {
        let shape = x.shape();
        let d = (shape[1] / groups) * shape[2..].iter().product::<usize>();
        let (w, b) = (w.map(|view| Affine { view, dim: 1 }), b.map(|view| Affine { view, dim: 1 }));
        let rows = Rows { op: "group_norm", mode: LAYER, w, b, x, residual: None, d, eps };
        Ok(self.rows_kernel(rows)?.0)
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

//! Fused attention (attention.wgsl).

use super::reduce::wide;
use crate::backend::WgpuBackend;
use crate::gpu::KernelSpec;
use crate::params::{Params, Strided};
use crate::storage::storage;
use tessera_tensor::{AttentionParams, Error, Result, StorageRef, View};

/// Queries per workgroup (QB in attention.wgsl).
const QB: usize = 64;
/// Largest head dim the kernel keeps in registers.
const MAX_HEAD_DIM: usize = 256;
/// Workgroup memory for the K and V tiles, in f32 elements.
const TILE_FLOATS: usize = 4096;

fn record(v: &View) -> Strided {
    Strided { offset: v.layout.offset(), strides: v.layout.strides().to_vec() }
}

impl WgpuBackend {
    /// `None` for head dims the kernel does not take (0, or above 256): the
    /// core then runs the composed attention, on this device too.
    pub(crate) fn attention_op(&self, q: View, k: View, v: View, mask: Option<View>, p: &AttentionParams) -> Result<Option<StorageRef>> {
        let dtype = q.dtype();
        let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
        let (b, hq, tq, dk) = (qs[0], qs[1], qs[2], qs[3]);
        let (hkv, tk, dv) = (ks[1], ks[2], vs[3]);
        if dk == 0 || dv == 0 || dk > MAX_HEAD_DIM || dv > MAX_HEAD_DIM {
            return Ok(None);
        }
        let acc_dtype = wide(dtype);
        let out = self.alloc(acc_dtype, b * hq * tq * dv)?;
        if b * hq * tq == 0 {
            return self.narrow_to(out, dtype).map(Some);
        }
        let kt = (TILE_FLOATS / (dk + dv)).clamp(1, 64);
        let mut records = vec![record(&q), record(&k), record(&v)];
        if let Some(m) = &mask {
            records.push(record(m));
        }
        // The records are read by at4() only: no shared shape.
        let params = Params::new("attention", b * hq * tq, &[], &[])?;
        let mut words = params.words().to_vec();
        for r in &records {
            words.push(
                u32::try_from(r.offset).map_err(|_| Error::InvalidArgument { op: "attention", msg: "offset exceeds 32 bits".into() })?,
            );
            let mut st = [0u32; 8];
            for (i, &s) in r.strides.iter().enumerate() {
                st[i] = s as u32;
            }
            words.extend_from_slice(&st);
        }
        for (i, val) in
            [tq as u32, tk as u32, hq as u32, (hq / hkv) as u32, (p.scale as f32).to_bits(), u32::from(p.causal)].iter().enumerate()
        {
            words[10 + i] = *val;
        }
        let mut spec = KernelSpec::new("attention")
            .input("a", dtype)
            .input("b", dtype)
            .input("c", dtype)
            .def("DK", dk)
            .def("DV", dv)
            .def("KT", kt)
            .def("KTILE", kt * dk)
            .def("VTILE", kt * dv);
        let mut bufs = vec![storage(&q)?.buffer(), storage(&k)?.buffer(), storage(&v)?.buffer()];
        match &mask {
            Some(m) => {
                spec = spec.input("mask", m.dtype()).def("MASK_ADD", "s = s + mask_f(at4(operand(3u), b, h, qi, key));");
                bufs.push(storage(m)?.buffer());
            }
            None => spec = spec.def("MASK_ADD", ""),
        }
        spec = spec.out(acc_dtype);
        bufs.push(self.buffer_of(&out)?);
        let groups = (tq.div_ceil(QB) as u32, (b * hq) as u32, 1);
        self.gpu.launch(&spec, &words, &bufs, groups)?;
        self.narrow_to(out, dtype).map(Some)
    }
}

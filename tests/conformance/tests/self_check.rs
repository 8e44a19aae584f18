//! The suite must catch broken backends. Each test wraps the CPU backend in a
//! device with one deliberate fault and checks that the cases of the faulty
//! op fail while the others still pass.

use std::sync::Arc;
use tessera_tensor::backend::{ArgReduceOp, BinaryOp, CmpOp, Conv2dParams, DeviceInfo, NormKind, ReduceOp, RopeStyle, UnaryOp};
use tessera_tensor::cpu::CpuBackend;
use tessera_tensor::dtype::{bytes_to_f64, f64_to_bytes};
use tessera_tensor::{AttentionParams, Backend, BackendStorage, DType, Device, Result, StorageRef, View};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// `exp` is off by 0.1% in its last element.
    ExpLastElement,
    /// The fused softmax leaves its first element unwritten (poison: NaN).
    SoftmaxFirstUnwritten,
    /// `matmul` skips the last term of every dot product.
    MatmulShortK,
    /// Strided copies swap their first two elements.
    CopySwapsFirstTwo,
    /// Casts to f16 truncate instead of rounding to nearest.
    CastF16Truncates,
}

#[derive(Debug)]
struct Faulty {
    inner: CpuBackend,
    fault: Fault,
}

impl Faulty {
    /// `s` with its values rewritten by `f`.
    fn rewrite(&self, s: StorageRef, f: impl FnOnce(&mut Vec<f64>)) -> Result<StorageRef> {
        let dt = s.dtype();
        let mut v = bytes_to_f64(dt, &self.inner.download(s.as_ref())?);
        f(&mut v);
        self.inner.upload(dt, &f64_to_bytes(dt, &v))
    }
}

impl Backend for Faulty {
    fn name(&self) -> String {
        format!("faulty-cpu ({:?})", self.fault)
    }
    fn info(&self) -> DeviceInfo {
        self.inner.info()
    }
    fn supports(&self, dtype: DType) -> bool {
        self.inner.supports(dtype)
    }
    fn synchronize(&self) -> Result<()> {
        self.inner.synchronize()
    }
    fn upload(&self, dtype: DType, bytes: &[u8]) -> Result<StorageRef> {
        self.inner.upload(dtype, bytes)
    }
    fn download(&self, src: &dyn BackendStorage) -> Result<Vec<u8>> {
        self.inner.download(src)
    }
    fn full(&self, dtype: DType, len: usize, value: f64) -> Result<StorageRef> {
        self.inner.full(dtype, len, value)
    }
    fn copy(&self, src: View) -> Result<StorageRef> {
        let out = self.inner.copy(src)?;
        if self.fault == Fault::CopySwapsFirstTwo && !src.layout.is_contiguous() && src.layout.numel() >= 2 {
            return self.rewrite(out, |v| v.swap(0, 1));
        }
        Ok(out)
    }
    fn cast(&self, src: View, to: DType) -> Result<StorageRef> {
        if self.fault == Fault::CastF16Truncates && to == DType::F16 {
            let f32s = self.inner.cast(src, DType::F32)?;
            let v = bytes_to_f64(DType::F32, &self.inner.download(f32s.as_ref())?);
            let bits: Vec<u8> = v
                .iter()
                .flat_map(|&x| {
                    let b = (x as f32).to_bits();
                    let h = tessera_tensor::f16::from_f32(f32::from_bits(b & !0x1fff)).to_bits();
                    h.to_le_bytes()
                })
                .collect();
            return self.inner.upload(DType::F16, &bits);
        }
        self.inner.cast(src, to)
    }
    fn unary(&self, op: UnaryOp, src: View) -> Result<StorageRef> {
        let out = self.inner.unary(op, src)?;
        if self.fault == Fault::ExpLastElement && op == UnaryOp::Exp && !out.is_empty() {
            return self.rewrite(out, |v| {
                let last = v.len() - 1;
                v[last] *= 1.001;
            });
        }
        Ok(out)
    }
    fn affine(&self, src: View, mul: f64, add: f64) -> Result<StorageRef> {
        self.inner.affine(src, mul, add)
    }
    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<StorageRef> {
        self.inner.binary(op, lhs, rhs)
    }
    fn compare(&self, op: CmpOp, lhs: View, rhs: View) -> Result<StorageRef> {
        self.inner.compare(op, lhs, rhs)
    }
    fn where_cond(&self, cond: View, on_true: View, on_false: View) -> Result<StorageRef> {
        self.inner.where_cond(cond, on_true, on_false)
    }
    fn reduce(&self, op: ReduceOp, src: View, dims: &[usize]) -> Result<StorageRef> {
        self.inner.reduce(op, src, dims)
    }
    fn arg_reduce(&self, op: ArgReduceOp, src: View, dim: usize) -> Result<StorageRef> {
        self.inner.arg_reduce(op, src, dim)
    }
    fn cumsum(&self, src: View, dim: usize) -> Result<StorageRef> {
        self.inner.cumsum(src, dim)
    }
    fn argsort(&self, src: View, dim: usize, descending: bool) -> Result<StorageRef> {
        self.inner.argsort(src, dim, descending)
    }
    fn matmul(&self, lhs: View, rhs: View) -> Result<StorageRef> {
        let k = lhs.layout.shape()[lhs.layout.rank() - 1];
        if self.fault == Fault::MatmulShortK && k > 1 {
            let (l, r) = (lhs.layout.narrow(lhs.layout.rank() - 1, 0, k - 1)?, rhs.layout.narrow(rhs.layout.rank() - 2, 0, k - 1)?);
            return self.inner.matmul(View { storage: lhs.storage, layout: &l }, View { storage: rhs.storage, layout: &r });
        }
        self.inner.matmul(lhs, rhs)
    }
    fn index_select(&self, src: View, ids: View, dim: usize) -> Result<StorageRef> {
        self.inner.index_select(src, ids, dim)
    }
    fn gather(&self, src: View, ids: View, dim: usize) -> Result<StorageRef> {
        self.inner.gather(src, ids, dim)
    }
    fn cat(&self, srcs: &[View], dim: usize) -> Result<StorageRef> {
        self.inner.cat(srcs, dim)
    }
    fn softmax_last(&self, src: View, log: bool) -> Result<Option<StorageRef>> {
        let out = self.inner.softmax_last(src, log)?;
        match out {
            Some(s) if self.fault == Fault::SoftmaxFirstUnwritten && !s.is_empty() => Ok(Some(self.rewrite(s, |v| v[0] = f64::NAN)?)),
            other => Ok(other),
        }
    }
    fn layer_norm(&self, x: View, w: Option<View>, b: Option<View>, eps: f64) -> Result<Option<StorageRef>> {
        self.inner.layer_norm(x, w, b, eps)
    }
    fn rms_norm(&self, x: View, w: Option<View>, eps: f64) -> Result<Option<StorageRef>> {
        self.inner.rms_norm(x, w, eps)
    }
    fn matmul_bias(&self, lhs: View, rhs: View, bias: View, act: Option<UnaryOp>) -> Result<Option<StorageRef>> {
        self.inner.matmul_bias(lhs, rhs, bias, act)
    }
    fn add_norm(
        &self,
        x: View,
        res: View,
        w: Option<View>,
        b: Option<View>,
        eps: f64,
        kind: NormKind,
    ) -> Result<Option<(StorageRef, StorageRef)>> {
        self.inner.add_norm(x, res, w, b, eps, kind)
    }
    fn rope(&self, x: View, cos: View, sin: View, style: RopeStyle) -> Result<Option<StorageRef>> {
        self.inner.rope(x, cos, sin, style)
    }
    fn conv2d(&self, x: View, w: View, bias: Option<View>, p: &Conv2dParams) -> Result<Option<StorageRef>> {
        self.inner.conv2d(x, w, bias, p)
    }
    fn group_norm(&self, x: View, groups: usize, w: Option<View>, b: Option<View>, eps: f64) -> Result<Option<StorageRef>> {
        self.inner.group_norm(x, groups, w, b, eps)
    }
    fn upsample_nearest2d(&self, x: View, out_h: usize, out_w: usize) -> Result<Option<StorageRef>> {
        self.inner.upsample_nearest2d(x, out_h, out_w)
    }
    fn attention(&self, q: View, k: View, v: View, mask: Option<View>, p: &AttentionParams) -> Result<Option<StorageRef>> {
        self.inner.attention(q, k, v, mask, p)
    }
}

/// Runs `ops` (a filter) on a device with `fault`; the ops in `broken` must
/// have failures, every other op that ran none.
fn check(fault: Fault, ops: &str, broken: &[&str]) {
    let dev = Device::new(Arc::new(Faulty { inner: CpuBackend::with_threads(1), fault }));
    let report = tessera_conformance::run_all(&dev, Some(ops));
    for o in &report.ops {
        let should_fail = broken.contains(&o.op.as_str());
        println!("{fault:?}: {} {} passed, {} failed", o.op, o.passed, o.failed);
        if should_fail {
            assert!(o.failed > 0, "{fault:?}: the suite did not catch the broken {}", o.op);
        } else {
            assert_eq!(o.failed, 0, "{fault:?}: {} failed although it is not broken:\n{}", o.op, o.failures.join("\n"));
        }
    }
    for op in broken {
        assert!(report.op(op).is_some(), "{op} did not run");
    }
}

#[test]
fn catches_a_wrong_element() {
    check(Fault::ExpLastElement, "exp,sqrt", &["exp"]);
}

#[test]
fn catches_an_unwritten_element() {
    check(Fault::SoftmaxFirstUnwritten, "softmax,layer_norm", &["softmax", "softmax (composed)", "log_softmax", "log_softmax (composed)"]);
}

#[test]
fn catches_a_short_reduction() {
    // The composed matmul_bias goes through the broken matmul too.
    check(Fault::MatmulShortK, "matmul,mul", &["matmul", "matmul_bias (composed)"]);
}

#[test]
fn catches_a_wrong_strided_read() {
    check(Fault::CopySwapsFirstTwo, "contiguous,permute,add", &["contiguous", "permute"]);
}

#[test]
fn catches_wrong_rounding() {
    check(Fault::CastF16Truncates, "cast", &["cast"]);
}

//! `CudaBackend`: the `Backend` trait on one CUDA device.

use crate::device::DeviceInner;
use crate::memory::CudaStorage;
use crate::ops::{self, Ctx};
use std::sync::Arc;
use tessera_tensor::{
    ArgReduceOp, AttentionParams, Backend, BackendStorage, BinaryOp, CmpOp, Conv2dParams, DType, DeviceInfo, Layout, NormKind, ReduceOp,
    Result, RopeStyle, StorageRef, UnaryOp, View,
};

/// A CUDA device as a Tessera backend. Every op is queued on the device's
/// stream; only `download` and `synchronize` wait for the GPU.
#[derive(Debug)]
pub struct CudaBackend {
    dev: Arc<DeviceInner>,
}

fn wrap(s: CudaStorage) -> StorageRef {
    Arc::new(s)
}

impl CudaBackend {
    pub fn new(dev: DeviceInner) -> CudaBackend {
        CudaBackend { dev: Arc::new(dev) }
    }

    pub fn device(&self) -> &Arc<DeviceInner> {
        &self.dev
    }

    fn cx(&self) -> Ctx<'_> {
        Ctx { dev: &self.dev }
    }

    /// Returns the allocator's cached blocks to the driver (after the queued
    /// work is done); the number of bytes released.
    pub fn release_cache(&self) -> Result<usize> {
        self.dev.allocator.release_cache(&self.dev)
    }

    /// Bytes held by the allocator's cache.
    pub fn cached_bytes(&self) -> usize {
        self.dev.allocator.cached_bytes()
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> String {
        self.dev.name.clone()
    }

    fn info(&self) -> DeviceInfo {
        let d = &self.dev;
        let mut properties = vec![
            ("arch".to_string(), format!("{} (compute capability {}.{})", d.arch.sm(), d.arch.major, d.arch.minor)),
            ("SMs".to_string(), d.sm_count.to_string()),
        ];
        if let Ok(total) = d.ctx.total_mem() {
            properties.push(("memory".to_string(), format!("{:.1} GiB", total as f64 / (1u64 << 30) as f64)));
        }
        properties.push(("shared mem".to_string(), format!("{} KiB per block", d.max_smem_optin / 1024)));
        match crate::compile::nvrtc_version() {
            Ok((major, minor)) => properties.push(("nvrtc".to_string(), format!("{major}.{minor}"))),
            Err(e) => properties.push(("nvrtc".to_string(), format!("unavailable: {e}"))),
        }
        if let Some(dir) = crate::compile::cache_dir() {
            properties.push(("kernels".to_string(), format!("cached in {}", dir.display())));
        }
        DeviceInfo { name: d.name.clone(), description: d.ctx.name().unwrap_or_else(|_| "NVIDIA GPU".into()), properties }
    }

    fn supports(&self, _dtype: DType) -> bool {
        true
    }

    fn synchronize(&self) -> Result<()> {
        self.dev.stream_sync()
    }

    fn upload(&self, dtype: DType, bytes: &[u8]) -> Result<StorageRef> {
        self.dev.upload(dtype, bytes).map(wrap)
    }

    fn download(&self, src: &dyn BackendStorage) -> Result<Vec<u8>> {
        let v = View { storage: src, layout: &tessera_tensor::Layout::contiguous(src.len()) };
        self.dev.download(ops::storage(&v)?)
    }

    fn full(&self, dtype: DType, len: usize, value: f64) -> Result<StorageRef> {
        ops::elementwise::full(&self.cx(), dtype, len, value).map(wrap)
    }

    fn copy(&self, src: View) -> Result<StorageRef> {
        ops::elementwise::copy(&self.cx(), src).map(wrap)
    }
    fn writes_in_place(&self) -> bool {
        true
    }
    fn write_into(&self, dst: &mut dyn BackendStorage, dst_layout: &Layout, src: View) -> Result<bool> {
        let Some(dst) = dst.as_any_mut().downcast_mut::<CudaStorage>() else { return Ok(false) };
        ops::elementwise::copy_into(&self.cx(), dst.ptr(), dst_layout, src)?;
        Ok(true)
    }
    fn cast(&self, src: View, to: DType) -> Result<StorageRef> {
        ops::elementwise::cast(&self.cx(), src, to).map(wrap)
    }
    fn unary(&self, op: UnaryOp, src: View) -> Result<StorageRef> {
        ops::elementwise::unary(&self.cx(), op, src).map(wrap)
    }
    fn affine(&self, src: View, mul: f64, add: f64) -> Result<StorageRef> {
        ops::elementwise::affine(&self.cx(), src, mul, add).map(wrap)
    }
    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<StorageRef> {
        ops::elementwise::binary(&self.cx(), op, lhs, rhs).map(wrap)
    }
    fn compare(&self, op: CmpOp, lhs: View, rhs: View) -> Result<StorageRef> {
        ops::elementwise::compare(&self.cx(), op, lhs, rhs).map(wrap)
    }
    fn where_cond(&self, cond: View, on_true: View, on_false: View) -> Result<StorageRef> {
        ops::elementwise::where_cond(&self.cx(), cond, on_true, on_false).map(wrap)
    }
    fn reduce(&self, op: ReduceOp, src: View, dims: &[usize]) -> Result<StorageRef> {
        ops::reduce::reduce(&self.cx(), op, src, dims).map(wrap)
    }
    fn arg_reduce(&self, op: ArgReduceOp, src: View, dim: usize) -> Result<StorageRef> {
        ops::reduce::arg_reduce(&self.cx(), op, src, dim).map(wrap)
    }
    fn cumsum(&self, src: View, dim: usize) -> Result<StorageRef> {
        ops::reduce::cumsum(&self.cx(), src, dim).map(wrap)
    }
    fn argsort(&self, src: View, dim: usize, descending: bool) -> Result<StorageRef> {
        ops::reduce::argsort(&self.cx(), src, dim, descending).map(wrap)
    }
    fn matmul(&self, lhs: View, rhs: View) -> Result<StorageRef> {
        ops::matmul::matmul(&self.cx(), lhs, rhs).map(wrap)
    }
    fn index_select(&self, src: View, ids: View, dim: usize) -> Result<StorageRef> {
        ops::index::index_select(&self.cx(), src, ids, dim).map(wrap)
    }
    fn gather(&self, src: View, ids: View, dim: usize) -> Result<StorageRef> {
        ops::index::gather(&self.cx(), src, ids, dim).map(wrap)
    }
    fn cat(&self, srcs: &[View], dim: usize) -> Result<StorageRef> {
        ops::index::cat(&self.cx(), srcs, dim).map(wrap)
    }

    /// The bias and activation run in the epilogue of the GEMV, SIMT and
    /// tensor-core kernels, on the f32 accumulators.
    fn matmul_bias(&self, lhs: View, rhs: View, bias: View, act: Option<UnaryOp>) -> Result<Option<StorageRef>> {
        ops::matmul::matmul_bias(&self.cx(), lhs, rhs, bias, act).map(|s| s.map(wrap))
    }
    /// The residual row kernel of norm.cu: one pass writes the rounded sum
    /// and the norm of it.
    fn add_norm(
        &self,
        x: View,
        residual: View,
        w: Option<View>,
        b: Option<View>,
        eps: f64,
        kind: NormKind,
    ) -> Result<Option<(StorageRef, StorageRef)>> {
        let p = ops::norm::NormArgs { x, res: Some(residual), w, b, eps, rms: kind == NormKind::Rms };
        match ops::norm::norm(&self.cx(), &p)? {
            (y, Some(h)) => Ok(Some((wrap(y), wrap(h)))),
            (_, None) => {
                Err(tessera_tensor::Error::Device { device: self.dev.name.clone(), msg: "the residual norm kernel returned no sum".into() })
            }
        }
    }
    fn softmax_last(&self, src: View, log: bool) -> Result<Option<StorageRef>> {
        ops::norm::softmax_last(&self.cx(), src, log).map(|s| Some(wrap(s)))
    }
    fn layer_norm(&self, x: View, w: Option<View>, b: Option<View>, eps: f64) -> Result<Option<StorageRef>> {
        let p = ops::norm::NormArgs { x, res: None, w, b, eps, rms: false };
        ops::norm::norm(&self.cx(), &p).map(|(s, _)| Some(wrap(s)))
    }
    fn rms_norm(&self, x: View, w: Option<View>, eps: f64) -> Result<Option<StorageRef>> {
        let p = ops::norm::NormArgs { x, res: None, w, b: None, eps, rms: true };
        ops::norm::norm(&self.cx(), &p).map(|(s, _)| Some(wrap(s)))
    }
    fn rope(&self, x: View, cos: View, sin: View, style: RopeStyle) -> Result<Option<StorageRef>> {
        ops::norm::rope(&self.cx(), x, cos, sin, style).map(|s| Some(wrap(s)))
    }
    /// im2col (index.cu) feeding the product kernels of matmul.cu: the
    /// tensor-core GEMM for f16/bf16, the SIMT GEMM for f32, GEMV for one
    /// output channel per group; the bias is added in their epilogue.
    fn conv2d(&self, x: View, w: View, bias: Option<View>, p: &Conv2dParams) -> Result<Option<StorageRef>> {
        ops::conv::conv2d(&self.cx(), x, w, bias, p).map(|s| s.map(wrap))
    }
    fn group_norm(&self, x: View, groups: usize, w: Option<View>, b: Option<View>, eps: f64) -> Result<Option<StorageRef>> {
        ops::norm::group_norm(&self.cx(), x, groups, w, b, eps).map(|s| Some(wrap(s)))
    }
    fn upsample_nearest2d(&self, x: View, out_h: usize, out_w: usize) -> Result<Option<StorageRef>> {
        ops::index::upsample_nearest2d(&self.cx(), x, out_h, out_w).map(|s| s.map(wrap))
    }
    fn attention(&self, q: View, k: View, v: View, mask: Option<View>, p: &AttentionParams) -> Result<Option<StorageRef>> {
        ops::attention::attention(&self.cx(), q, k, v, mask, p).map(|s| s.map(wrap))
    }
}

//! `WgpuBackend`: the `Backend` trait on one wgpu adapter.

use crate::codegen::words_for;
use crate::gpu::Gpu;
use crate::storage::{storage_of, WgpuStorage};
use std::sync::Arc;
use tessera_tensor::{
    ArgReduceOp, AttentionParams, Backend, BackendStorage, BinaryOp, CmpOp, Conv2dParams, DType, DeviceInfo, NormKind, ReduceOp, Result,
    RopeStyle, StorageRef, UnaryOp, View,
};

/// Whether `matmul_bias`, `add_norm`, `conv2d` and `group_norm` run their
/// own kernels: `TESSERA_WGPU_FUSED=0` makes them answer `Ok(None)`, so
/// that the core runs their compositions (to measure what the kernels
/// change, or to rule them out when a result looks wrong). Read once.
fn fused_ops_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("TESSERA_WGPU_FUSED").map_or(true, |v| v != "0"))
}

/// A wgpu device. Cheap to share: the adapter's state lives in [`Gpu`].
#[derive(Clone)]
pub struct WgpuBackend {
    pub(crate) gpu: Arc<Gpu>,
}

impl std::fmt::Debug for WgpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WgpuBackend({}: {})", self.gpu.name, self.gpu.adapter.name)
    }
}

impl WgpuBackend {
    pub(crate) fn new(gpu: Gpu) -> Self {
        WgpuBackend { gpu: Arc::new(gpu) }
    }

    /// The adapter's description as wgpu reports it.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.gpu.adapter
    }

    /// Whether the adapter is a software rasteriser running on the CPU
    /// (lavapipe/llvmpipe, WARP, SwiftShader): correct, not fast.
    pub fn is_software(&self) -> bool {
        self.gpu.adapter.device_type == wgpu::DeviceType::Cpu
    }

    /// Whether the adapter has `feature`.
    pub fn has_feature(&self, feature: wgpu::Features) -> bool {
        self.gpu.features.contains(feature)
    }

    /// Releases the buffers the pool keeps for reuse.
    pub fn release_cache(&self) {
        self.gpu.pool.release_cache();
    }

    /// Bytes the pool keeps for reuse.
    pub fn cached_bytes(&self) -> usize {
        self.gpu.pool.cached_bytes()
    }

    /// The largest tensor buffer the adapter can bind, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.gpu.pool.max_bytes()
    }

    /// A new storage for `len` elements of `dtype` (contents undefined).
    pub(crate) fn alloc(&self, dtype: DType, len: usize) -> Result<StorageRef> {
        let buf = self.gpu.alloc(words_for(dtype, len) * 4)?;
        Ok(Arc::new(WgpuStorage { buf, dtype, len }))
    }

    pub(crate) fn buffer_of<'a>(&self, s: &'a StorageRef) -> Result<&'a wgpu::Buffer> {
        Ok(storage_of(s.as_ref())?.buffer())
    }
}

impl Backend for WgpuBackend {
    fn name(&self) -> String {
        self.gpu.name.clone()
    }

    fn max_buffer_bytes(&self) -> Option<usize> {
        usize::try_from(self.gpu.pool.max_bytes()).ok()
    }

    fn info(&self) -> DeviceInfo {
        let a = &self.gpu.adapter;
        let l = &self.gpu.limits;
        let f = self.gpu.features;
        let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
        DeviceInfo {
            name: self.gpu.name.clone(),
            description: a.name.clone(),
            properties: vec![
                ("api".into(), format!("{:?}", a.backend)),
                ("type".into(), format!("{:?}", a.device_type)),
                ("driver".into(), format!("{} {}", a.driver, a.driver_info).trim().to_string()),
                ("max storage binding".into(), format!("{} MiB", l.max_storage_buffer_binding_size >> 20)),
                ("workgroup memory".into(), format!("{} KiB", l.max_compute_workgroup_storage_size >> 10)),
                ("shader-f16".into(), yes(f.contains(wgpu::Features::SHADER_F16))),
                ("subgroups".into(), yes(f.contains(wgpu::Features::SUBGROUP))),
                ("timestamps".into(), yes(f.contains(wgpu::Features::TIMESTAMP_QUERY))),
            ],
        }
    }

    /// Every dtype: half precision and FP8 are packed in 32-bit words and
    /// converted in the kernels, so they need no adapter feature.
    fn supports(&self, _dtype: DType) -> bool {
        true
    }

    fn synchronize(&self) -> Result<()> {
        self.gpu.synchronize()
    }

    fn set_kernel_timing(&self, on: bool) -> bool {
        self.gpu.flush();
        self.gpu.profiler.set_enabled(on)
    }

    fn take_kernel_times(&self) -> Vec<(String, f64, u64)> {
        self.gpu.flush();
        self.gpu.profiler.take()
    }

    fn upload(&self, dtype: DType, bytes: &[u8]) -> Result<StorageRef> {
        let len = bytes.len() / dtype.size_in_bytes();
        let buf = self.gpu.upload(bytes)?;
        Ok(Arc::new(WgpuStorage { buf, dtype, len }))
    }

    fn download(&self, src: &dyn BackendStorage) -> Result<Vec<u8>> {
        let s = storage_of(src)?;
        let mut bytes = self.gpu.download(s.buffer(), s.byte_len())?;
        bytes.truncate(s.len * s.dtype.size_in_bytes());
        Ok(bytes)
    }

    fn full(&self, dtype: DType, len: usize, value: f64) -> Result<StorageRef> {
        self.fill(dtype, len, value)
    }

    fn copy(&self, src: View) -> Result<StorageRef> {
        self.cast_op(src, src.dtype())
    }
    fn cast(&self, src: View, to: DType) -> Result<StorageRef> {
        self.cast_op(src, to)
    }
    fn unary(&self, op: UnaryOp, src: View) -> Result<StorageRef> {
        self.unary_op(op, src)
    }
    fn affine(&self, src: View, mul: f64, add: f64) -> Result<StorageRef> {
        self.affine_op(src, mul, add)
    }
    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<StorageRef> {
        self.binary_op(op, lhs, rhs)
    }
    fn compare(&self, op: CmpOp, lhs: View, rhs: View) -> Result<StorageRef> {
        self.compare_op(op, lhs, rhs)
    }
    fn where_cond(&self, cond: View, on_true: View, on_false: View) -> Result<StorageRef> {
        self.where_op(cond, on_true, on_false)
    }
    fn reduce(&self, op: ReduceOp, src: View, dims: &[usize]) -> Result<StorageRef> {
        self.reduce_op(op, src, dims)
    }
    fn arg_reduce(&self, op: ArgReduceOp, src: View, dim: usize) -> Result<StorageRef> {
        self.arg_reduce_op(op, src, dim)
    }
    fn cumsum(&self, src: View, dim: usize) -> Result<StorageRef> {
        self.cumsum_op(src, dim)
    }
    fn argsort(&self, src: View, dim: usize, descending: bool) -> Result<StorageRef> {
        self.argsort_op(src, dim, descending)
    }
    fn matmul(&self, lhs: View, rhs: View) -> Result<StorageRef> {
        self.matmul_op(lhs, rhs)
    }
    fn index_select(&self, src: View, ids: View, dim: usize) -> Result<StorageRef> {
        self.index_select_op(src, ids, dim)
    }
    fn gather(&self, src: View, ids: View, dim: usize) -> Result<StorageRef> {
        self.gather_op(src, ids, dim)
    }
    fn cat(&self, srcs: &[View], dim: usize) -> Result<StorageRef> {
        self.cat_op(srcs, dim)
    }

    fn matmul_bias(&self, lhs: View, rhs: View, bias: View, act: Option<UnaryOp>) -> Result<Option<StorageRef>> {
        if !fused_ops_enabled() {
            return Ok(None);
        }
        self.matmul_bias_op(lhs, rhs, bias, act)
    }
    fn add_norm(
        &self,
        x: View,
        residual: View,
        w: Option<View>,
        b: Option<View>,
        eps: f64,
        kind: NormKind,
    ) -> Result<Option<(StorageRef, StorageRef)>> {
        if !fused_ops_enabled() {
            return Ok(None);
        }
        self.add_norm_op(x, residual, w, b, eps, kind).map(Some)
    }
    fn conv2d(&self, x: View, w: View, bias: Option<View>, p: &Conv2dParams) -> Result<Option<StorageRef>> {
        if !fused_ops_enabled() {
            return Ok(None);
        }
        self.conv2d_op(x, w, bias, p).map(Some)
    }
    fn group_norm(&self, x: View, groups: usize, w: Option<View>, b: Option<View>, eps: f64) -> Result<Option<StorageRef>> {
        if !fused_ops_enabled() {
            return Ok(None);
        }
        self.group_norm_op(x, groups, w, b, eps).map(Some)
    }
    fn softmax_last(&self, src: View, log: bool) -> Result<Option<StorageRef>> {
        self.softmax_op(src, log).map(Some)
    }
    fn layer_norm(&self, x: View, w: Option<View>, b: Option<View>, eps: f64) -> Result<Option<StorageRef>> {
        self.norm_op(x, w, b, eps, false).map(Some)
    }
    fn rms_norm(&self, x: View, w: Option<View>, eps: f64) -> Result<Option<StorageRef>> {
        self.norm_op(x, w, None, eps, true).map(Some)
    }
    fn rope(&self, x: View, cos: View, sin: View, style: RopeStyle) -> Result<Option<StorageRef>> {
        self.rope_op(x, cos, sin, style).map(Some)
    }
    fn attention(&self, q: View, k: View, v: View, mask: Option<View>, p: &AttentionParams) -> Result<Option<StorageRef>> {
        self.attention_op(q, k, v, mask, p)
    }
}

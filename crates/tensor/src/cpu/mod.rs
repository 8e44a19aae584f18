//! The CPU backend: every op, parallel with rayon on a pool sized by
//! `TESSERA_NUM_THREADS` (default: all cores).
//!
//! Storage is a typed `Vec` per dtype. Float ops compute in f32 (half and
//! FP8 inputs are widened on read and rounded once on write); integer ops
//! compute in i64 with wrapping arithmetic and narrow on write.

mod attention;
mod conv;
mod elementwise;
mod fused;
pub mod gemm;
mod index;
mod matmul;
mod pack_cache;
mod read;
mod reduce;
pub mod vecmath;

use crate::backend::{
    ArgReduceOp, AttentionParams, Backend, BackendStorage, BinaryOp, CmpOp, Conv2dParams, DeviceInfo, NormKind, ReduceOp, RopeStyle,
    StorageRef, UnaryOp, View,
};
use crate::dtype::{f32_to_f8e4m3, f32_to_f8e5m2};
use crate::{DType, Error, Layout, Result};
use half::{bf16, f16};
use std::any::Any;
use std::sync::Arc;

/// Element buffers. FP8 values live in `U8` buffers; the dtype says which.
#[derive(Debug, Clone)]
pub enum Buf {
    U8(Vec<u8>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    F32(Vec<f32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
}

/// Runs `$body` with `$T` bound to the element type of `$buf`.
macro_rules! dispatch {
    ($buf:expr, $T:ident => $body:expr) => {
        match $buf {
            $crate::cpu::Buf::U8(_) => {
                type $T = u8;
                $body
            }
            $crate::cpu::Buf::F16(_) => {
                type $T = half::f16;
                $body
            }
            $crate::cpu::Buf::BF16(_) => {
                type $T = half::bf16;
                $body
            }
            $crate::cpu::Buf::F32(_) => {
                type $T = f32;
                $body
            }
            $crate::cpu::Buf::U32(_) => {
                type $T = u32;
                $body
            }
            $crate::cpu::Buf::I64(_) => {
                type $T = i64;
                $body
            }
        }
    };
}
pub(crate) use dispatch;

/// Element types of [`Buf`] variants.
pub trait BufElem: bytemuck::Pod + Send + Sync + 'static {
    fn slice(buf: &Buf) -> &[Self];
    fn slice_mut(buf: &mut Buf) -> &mut [Self];
    fn wrap(v: Vec<Self>) -> Buf;
}

macro_rules! buf_elem {
    ($t:ty, $var:ident) => {
        impl BufElem for $t {
            fn slice(buf: &Buf) -> &[Self] {
                match buf {
                    Buf::$var(v) => v,
                    other => unreachable!("buffer of {other:?} read as {}", stringify!($t)),
                }
            }
            fn slice_mut(buf: &mut Buf) -> &mut [Self] {
                match buf {
                    Buf::$var(v) => v,
                    other => unreachable!("buffer of {other:?} written as {}", stringify!($t)),
                }
            }
            fn wrap(v: Vec<Self>) -> Buf {
                Buf::$var(v)
            }
        }
    };
}
buf_elem!(u8, U8);
buf_elem!(f16, F16);
buf_elem!(bf16, BF16);
buf_elem!(f32, F32);
buf_elem!(u32, U32);
buf_elem!(i64, I64);

/// A CPU storage: a dtype, its buffer, and the packed copies of it that
/// GEMMs keep (see [`pack_cache`]).
#[derive(Debug, Clone)]
pub struct CpuStorage {
    dtype: DType,
    buf: Buf,
    packs: pack_cache::PackCache,
}

impl CpuStorage {
    pub fn new(dtype: DType, buf: Buf) -> Self {
        CpuStorage { dtype, buf, packs: Default::default() }
    }
    pub fn buf(&self) -> &Buf {
        &self.buf
    }

    /// A storage of `dtype` from f32 values (rounding once).
    pub fn from_f32(dtype: DType, v: Vec<f32>) -> CpuStorage {
        use rayon::prelude::*;
        let buf = match dtype {
            DType::F32 => Buf::F32(v),
            DType::F16 => Buf::F16(v.par_iter().map(|&x| f16::from_f32(x)).collect()),
            DType::BF16 => Buf::BF16(v.par_iter().map(|&x| bf16::from_f32(x)).collect()),
            DType::F8E4M3 => Buf::U8(v.par_iter().map(|&x| f32_to_f8e4m3(x)).collect()),
            DType::F8E5M2 => Buf::U8(v.par_iter().map(|&x| f32_to_f8e5m2(x)).collect()),
            DType::U8 => Buf::U8(v.iter().map(|&x| x as u8).collect()),
            DType::U32 => Buf::U32(v.iter().map(|&x| x as u32).collect()),
            DType::I64 => Buf::I64(v.iter().map(|&x| x as i64).collect()),
        };
        CpuStorage { dtype, buf, packs: Default::default() }
    }

    /// A storage of integer `dtype` from i64 values (wrapping).
    pub fn from_i64(dtype: DType, v: Vec<i64>) -> CpuStorage {
        let buf = match dtype {
            DType::U8 => Buf::U8(v.iter().map(|&x| x as u8).collect()),
            DType::U32 => Buf::U32(v.iter().map(|&x| x as u32).collect()),
            DType::I64 => Buf::I64(v),
            _ => return CpuStorage::from_f32(dtype, v.iter().map(|&x| x as f32).collect()),
        };
        CpuStorage { dtype, buf, packs: Default::default() }
    }

    fn into_ref(self) -> StorageRef {
        Arc::new(self)
    }
}

impl BackendStorage for CpuStorage {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn len(&self) -> usize {
        dispatch!(&self.buf, T => T::slice(&self.buf).len())
    }
}

/// The CPU storage behind a view. The core only hands a backend storages of
/// its own device, so anything else is a broken invariant.
pub(crate) fn cpu<'a>(v: &View<'a>) -> &'a CpuStorage {
    v.storage.as_any().downcast_ref::<CpuStorage>().expect("CPU backend received a storage of another device")
}

/// `len` copies of `value`, or `OutOfMemory` when the allocation fails.
fn try_filled<T: Clone>(len: usize, value: T) -> Result<Vec<T>> {
    let mut v = crate::try_vec(len, "")?;
    v.resize(len, value);
    Ok(v)
}

/// `bytes` copied into a new vector of `T` (the length a whole number of
/// elements, which the core checks), or `OutOfMemory`: an upload is sized
/// by its input (a checkpoint tensor), so its allocation must not abort.
fn try_copied<T: bytemuck::Pod>(bytes: &[u8]) -> Result<Vec<T>> {
    let mut v = try_filled(bytes.len() / std::mem::size_of::<T>(), T::zeroed())?;
    bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(bytes);
    Ok(v)
}

#[derive(Debug)]
pub struct CpuBackend {
    pool: rayon::ThreadPool,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    /// A backend whose thread count follows `TESSERA_NUM_THREADS`, else all cores.
    pub fn new() -> Self {
        let threads = std::env::var("TESSERA_NUM_THREADS").ok().and_then(|s| s.trim().parse::<usize>().ok()).filter(|&n| n > 0);
        Self::with_threads(threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())))
    }

    pub fn with_threads(threads: usize) -> Self {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("tessera-cpu-{i}"))
            .build()
            .expect("creating the CPU thread pool");
        CpuBackend { pool }
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    fn run<R: Send>(&self, f: impl FnOnce() -> Result<R> + Send) -> Result<R> {
        self.pool.install(f)
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// SIMD extensions the running CPU has.
// Which pushes exist depends on the target.
#[allow(clippy::vec_init_then_push)]
pub fn simd_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut f = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, on) in [
            ("sse4.2", std::arch::is_x86_feature_detected!("sse4.2")),
            ("avx", std::arch::is_x86_feature_detected!("avx")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("f16c", std::arch::is_x86_feature_detected!("f16c")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ] {
            if on {
                f.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    f.push("neon");
    f
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".into()
    }

    fn info(&self) -> DeviceInfo {
        let mut properties = vec![
            ("threads".to_string(), self.threads().to_string()),
            ("arch".to_string(), std::env::consts::ARCH.to_string()),
            ("simd".to_string(), simd_features().join(" ")),
        ];
        if let Some(kb) = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("MemTotal")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        {
            properties.push(("memory".to_string(), format!("{:.1} GiB", kb as f64 / (1 << 20) as f64)));
        }
        DeviceInfo { name: "cpu".into(), description: cpu_model(), properties }
    }

    fn supports(&self, _dtype: DType) -> bool {
        true
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn upload(&self, dtype: DType, bytes: &[u8]) -> Result<StorageRef> {
        let buf = match dtype {
            DType::U8 | DType::F8E4M3 | DType::F8E5M2 => Buf::U8(try_copied(bytes)?),
            DType::F16 => Buf::F16(try_copied(bytes)?),
            DType::BF16 => Buf::BF16(try_copied(bytes)?),
            DType::F32 => Buf::F32(try_copied(bytes)?),
            DType::U32 => Buf::U32(try_copied(bytes)?),
            DType::I64 => Buf::I64(try_copied(bytes)?),
        };
        Ok(CpuStorage::new(dtype, buf).into_ref())
    }

    fn download(&self, src: &dyn BackendStorage) -> Result<Vec<u8>> {
        let s = src
            .as_any()
            .downcast_ref::<CpuStorage>()
            .ok_or_else(|| Error::Device { device: "cpu".into(), msg: "download of a storage of another device".into() })?;
        Ok(dispatch!(&s.buf, T => bytemuck::cast_slice::<T, u8>(T::slice(&s.buf)).to_vec()))
    }

    fn full(&self, dtype: DType, len: usize, value: f64) -> Result<StorageRef> {
        let one = match dtype {
            DType::U8 | DType::F8E4M3 | DType::F8E5M2 => Buf::U8(crate::dtype::f64_to_bytes(dtype, &[value])),
            DType::F16 => Buf::F16(vec![f16::from_f64(value)]),
            DType::BF16 => Buf::BF16(vec![bf16::from_f64(value)]),
            DType::F32 => Buf::F32(vec![value as f32]),
            DType::U32 => Buf::U32(vec![value as u32]),
            DType::I64 => Buf::I64(vec![value as i64]),
        };
        let buf = dispatch!(&one, T => T::wrap(try_filled(len, T::slice(&one)[0])?));
        Ok(CpuStorage::new(dtype, buf).into_ref())
    }

    fn copy(&self, src: View) -> Result<StorageRef> {
        self.run(|| Ok(elementwise::copy(src).into_ref()))
    }
    fn cast(&self, src: View, to: DType) -> Result<StorageRef> {
        self.run(|| Ok(elementwise::cast(src, to).into_ref()))
    }
    fn unary(&self, op: UnaryOp, src: View) -> Result<StorageRef> {
        self.run(|| Ok(elementwise::unary(op, src).into_ref()))
    }
    fn affine(&self, src: View, mul: f64, add: f64) -> Result<StorageRef> {
        self.run(|| Ok(elementwise::affine(src, mul as f32, add as f32).into_ref()))
    }
    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<StorageRef> {
        self.run(|| Ok(elementwise::binary(op, lhs, rhs).into_ref()))
    }
    fn compare(&self, op: CmpOp, lhs: View, rhs: View) -> Result<StorageRef> {
        self.run(|| Ok(elementwise::compare(op, lhs, rhs).into_ref()))
    }
    fn where_cond(&self, cond: View, on_true: View, on_false: View) -> Result<StorageRef> {
        self.run(|| Ok(elementwise::where_cond(cond, on_true, on_false).into_ref()))
    }
    fn reduce(&self, op: ReduceOp, src: View, dims: &[usize]) -> Result<StorageRef> {
        self.run(|| Ok(reduce::reduce(op, src, dims).into_ref()))
    }
    fn arg_reduce(&self, op: ArgReduceOp, src: View, dim: usize) -> Result<StorageRef> {
        self.run(|| Ok(reduce::arg_reduce(op, src, dim).into_ref()))
    }
    fn cumsum(&self, src: View, dim: usize) -> Result<StorageRef> {
        self.run(|| Ok(reduce::cumsum(src, dim).into_ref()))
    }
    fn argsort(&self, src: View, dim: usize, descending: bool) -> Result<StorageRef> {
        self.run(|| Ok(reduce::argsort(src, dim, descending).into_ref()))
    }
    fn matmul(&self, lhs: View, rhs: View) -> Result<StorageRef> {
        self.run(|| Ok(matmul::matmul(lhs, rhs).into_ref()))
    }
    fn index_select(&self, src: View, ids: View, dim: usize) -> Result<StorageRef> {
        self.run(|| Ok(index::index_select(src, ids, dim).into_ref()))
    }
    fn gather(&self, src: View, ids: View, dim: usize) -> Result<StorageRef> {
        self.run(|| Ok(index::gather(src, ids, dim).into_ref()))
    }
    fn cat(&self, srcs: &[View], dim: usize) -> Result<StorageRef> {
        self.run(|| Ok(index::cat(srcs, dim).into_ref()))
    }
    fn writes_in_place(&self) -> bool {
        true
    }
    fn write_into(&self, dst: &mut dyn BackendStorage, dst_layout: &Layout, src: View) -> Result<bool> {
        let Some(dst) = dst.as_any_mut().downcast_mut::<CpuStorage>() else { return Ok(false) };
        self.run(|| {
            index::write_into(dst, dst_layout, src);
            Ok(true)
        })
    }
    fn matmul_bias(&self, lhs: View, rhs: View, bias: View, act: Option<UnaryOp>) -> Result<Option<StorageRef>> {
        self.run(|| Ok(Some(matmul::matmul_bias(lhs, rhs, bias, act).into_ref())))
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
        self.run(|| {
            let (y, h) = fused::add_norm(x, res, w, b, eps as f32, kind);
            Ok(Some((y.into_ref(), h.into_ref())))
        })
    }
    fn softmax_last(&self, src: View, log: bool) -> Result<Option<StorageRef>> {
        self.run(|| Ok(Some(fused::softmax_last(src, log).into_ref())))
    }
    fn layer_norm(&self, x: View, w: Option<View>, b: Option<View>, eps: f64) -> Result<Option<StorageRef>> {
        self.run(|| Ok(Some(fused::layer_norm(x, w, b, eps as f32).into_ref())))
    }
    fn rms_norm(&self, x: View, w: Option<View>, eps: f64) -> Result<Option<StorageRef>> {
        self.run(|| Ok(Some(fused::rms_norm(x, w, eps as f32).into_ref())))
    }
    fn rope(&self, x: View, cos: View, sin: View, style: RopeStyle) -> Result<Option<StorageRef>> {
        self.run(|| Ok(Some(fused::rope(x, cos, sin, style).into_ref())))
    }
    fn conv2d(&self, x: View, w: View, bias: Option<View>, p: &Conv2dParams) -> Result<Option<StorageRef>> {
        self.run(|| Ok(Some(conv::conv2d(x, w, bias, p).into_ref())))
    }
    fn group_norm(&self, x: View, groups: usize, w: Option<View>, b: Option<View>, eps: f64) -> Result<Option<StorageRef>> {
        self.run(|| Ok(Some(fused::group_norm(x, groups, w, b, eps as f32).into_ref())))
    }
    fn upsample_nearest2d(&self, x: View, out_h: usize, out_w: usize) -> Result<Option<StorageRef>> {
        self.run(|| Ok(Some(index::upsample_nearest2d(x, out_h, out_w).into_ref())))
    }
    fn attention(&self, q: View, k: View, v: View, mask: Option<View>, p: &AttentionParams) -> Result<Option<StorageRef>> {
        self.run(|| Ok(Some(attention::attention(q, k, v, mask, p).into_ref())))
    }
}

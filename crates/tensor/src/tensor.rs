//! `Tensor`: shared storage + layout on a device. Cloning is cheap; views
//! share storage and never copy.

use crate::backend::{StorageRef, View};
use crate::dtype::{bytes_to_f64, f64_to_bytes, Element};
use crate::shape::{Dim, Layout, Shape};
use crate::{DType, Device, Error, Result};
use std::fmt;
use std::sync::Arc;

/// An n-dimensional array on a device. `Send + Sync`; immutable: every op
/// returns a new tensor (which may be a view of the same storage).
#[derive(Clone)]
pub struct Tensor {
    storage: StorageRef,
    layout: Layout,
    device: Device,
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor[{:?}, {}, {}]", self.dims(), self.dtype(), self.device)
    }
}

impl Tensor {
    // ---------------------------------------------------------------- parts

    /// A tensor over an existing storage. Used by backends and loaders; the
    /// storage must come from `device`'s backend.
    pub fn from_storage(storage: StorageRef, layout: Layout, device: Device) -> Result<Tensor> {
        if layout.numel() > 0 && layout.max_offset() >= storage.len() {
            return Err(Error::invalid(
                "from_storage",
                format!("layout {:?} reaches past a storage of {} elements", layout, storage.len()),
            ));
        }
        Ok(Tensor { storage, layout, device })
    }

    pub(crate) fn new_contiguous(storage: StorageRef, shape: &[usize], device: &Device) -> Tensor {
        Tensor { storage, layout: Layout::contiguous(shape), device: device.clone() }
    }

    pub(crate) fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor { storage: self.storage.clone(), layout, device: self.device.clone() }
    }

    /// `src` written over `region` of this tensor's storage, when no other
    /// tensor shares the storage and the backend writes in place (see
    /// [`Tensor::slice_set`]); `Ok(false)` leaves everything unchanged.
    pub(crate) fn write_in_place(&mut self, region: &Layout, src: &Tensor) -> Result<bool> {
        let backend = self.device.backend();
        match Arc::get_mut(&mut self.storage) {
            Some(storage) => backend.write_into(storage, region, src.view()),
            None => Ok(false),
        }
    }

    pub fn view(&self) -> View<'_> {
        View { storage: self.storage.as_ref(), layout: &self.layout }
    }
    pub fn storage(&self) -> &StorageRef {
        &self.storage
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }
    pub fn dims(&self) -> &[usize] {
        self.layout.shape()
    }
    pub fn shape(&self) -> Shape {
        Shape(self.dims().to_vec())
    }
    pub fn rank(&self) -> usize {
        self.layout.rank()
    }
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }
    /// Size of one dimension.
    pub fn dim(&self, d: impl Dim) -> Result<usize> {
        Ok(self.dims()[d.resolve(self.rank(), "dim")?])
    }
    /// True when both tensors view the same storage.
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        std::sync::Arc::ptr_eq(&self.storage, &other.storage)
    }

    // ---------------------------------------------------------- creation

    /// A tensor holding `bytes` (little-endian elements of `dtype`).
    pub fn from_bytes(bytes: &[u8], dtype: DType, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let expected = shape.checked_numel().and_then(|n| n.checked_mul(dtype.size_in_bytes()));
        if expected != Some(bytes.len()) {
            return Err(Error::invalid(
                "from_bytes",
                format!(
                    "{} bytes do not hold a {dtype} tensor of shape {:?} ({} bytes)",
                    bytes.len(),
                    shape.0,
                    shape.numel().saturating_mul(dtype.size_in_bytes())
                ),
            ));
        }
        check_supported(device, dtype, "from_bytes")?;
        let storage = device.backend().upload(dtype, bytes)?;
        Ok(Tensor::new_contiguous(storage, shape.dims(), device))
    }

    pub fn from_slice<T: Element>(data: &[T], shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        Tensor::from_bytes(bytemuck::cast_slice(data), T::DTYPE, shape, device)
    }

    pub fn from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        Tensor::from_slice(&data, shape, device)
    }

    /// A tensor of `dtype` from f64 values (rounded as [`f64_to_bytes`] says).
    pub fn from_f64_slice(data: &[f64], dtype: DType, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        Tensor::from_bytes(&f64_to_bytes(dtype, data), dtype, shape, device)
    }

    pub fn full(value: f64, shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        check_supported(device, dtype, "full")?;
        let n = shape.alloc_numel("full", dtype.size_in_bytes())?;
        let storage = device.backend().full(dtype, n, value)?;
        Ok(Tensor::new_contiguous(storage, shape.dims(), device))
    }

    pub fn zeros(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::full(0.0, shape, dtype, device)
    }

    pub fn ones(shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        Tensor::full(1.0, shape, dtype, device)
    }

    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros(self.dims(), self.dtype(), &self.device)
    }

    /// `start, start + step, ...` below `end` (above, for a negative step).
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType, device: &Device) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::invalid("arange", format!("invalid range {start}..{end} step {step}")));
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let values: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Tensor::from_f64_slice(&values, dtype, n, device)
    }

    /// Uniform values in `[lo, hi)`, reproducible from `seed` on every device
    /// and thread count.
    pub fn rand(seed: u64, lo: f64, hi: f64, shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.alloc_numel("rand", 8)?;
        let values: Vec<f64> = (0..n as u64).map(|i| lo + (hi - lo) * crate::rng::uniform(seed, i)).collect();
        Tensor::from_f64_slice(&values, dtype, shape, device)
    }

    /// Normal values with the given mean and standard deviation, reproducible
    /// from `seed` on every device and thread count.
    pub fn randn(seed: u64, mean: f64, std: f64, shape: impl Into<Shape>, dtype: DType, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.alloc_numel("randn", 8)?;
        let values: Vec<f64> = (0..n as u64).map(|i| mean + std * crate::rng::normal(seed, i)).collect();
        Tensor::from_f64_slice(&values, dtype, shape, device)
    }

    // ------------------------------------------------------------- reading

    /// The elements in logical order as little-endian bytes (synchronises).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let t = self.contiguous()?;
        let all = t.device.backend().download(t.storage.as_ref())?;
        let es = t.dtype().size_in_bytes();
        let start = t.layout.offset() * es;
        Ok(all[start..start + t.numel() * es].to_vec())
    }

    /// The elements in logical order; `T` must match the dtype.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DTypeMismatch { op: "to_vec", lhs: self.dtype(), rhs: T::DTYPE });
        }
        Ok(bytemuck::pod_collect_to_vec(&self.to_bytes()?))
    }

    /// The elements in logical order, converted to f64 from any dtype.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        Ok(bytes_to_f64(self.dtype(), &self.to_bytes()?))
    }

    /// The elements in logical order, converted to f32 from any dtype.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        Ok(self.to_f64_vec()?.into_iter().map(|v| v as f32).collect())
    }

    /// The single element of a one-element tensor, as f64.
    pub fn to_scalar(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::invalid("to_scalar", format!("tensor of shape {:?} has {} elements, not 1", self.dims(), self.numel())));
        }
        Ok(self.to_f64_vec()?[0])
    }

    /// A copy on another device (a cheap clone when it is the same device).
    pub fn to_device(&self, device: &Device) -> Result<Tensor> {
        if self.device.same(device) {
            return Ok(self.clone());
        }
        Tensor::from_bytes(&self.to_bytes()?, self.dtype(), self.dims(), device)
    }

    // --------------------------------------------------------------- views

    /// A view with a new shape; copies only when the data is not contiguous.
    /// One dimension may be given as `usize::MAX` to be inferred.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let mut shape = shape.into().0;
        let n = self.numel();
        if let Some(pos) = shape.iter().position(|&d| d == usize::MAX) {
            let rest = shape.iter().enumerate().filter(|&(i, _)| i != pos).try_fold(1usize, |a, (_, &d)| a.checked_mul(d)).unwrap_or(0);
            if rest == 0 || !n.is_multiple_of(rest) {
                return Err(Error::invalid("reshape", format!("cannot infer a dim of {:?} for {n} elements", shape)));
            }
            shape[pos] = n / rest;
        }
        if Shape(shape.clone()).checked_numel() != Some(n) {
            return Err(Error::ShapeMismatch { op: "reshape", lhs: self.dims().to_vec(), rhs: shape });
        }
        match self.layout.reshape(&shape) {
            Some(l) => Ok(self.with_layout(l)),
            None => Ok(self.contiguous()?.with_layout(Layout::contiguous(shape))),
        }
    }

    pub fn flatten_all(&self) -> Result<Tensor> {
        self.reshape(self.numel())
    }

    /// Merges dims `start..=end` into one.
    pub fn flatten(&self, start: impl Dim, end: impl Dim) -> Result<Tensor> {
        if self.rank() == 0 {
            return self.reshape(1);
        }
        let (s, e) = (start.resolve(self.rank(), "flatten")?, end.resolve(self.rank(), "flatten")?);
        if s > e {
            return Err(Error::invalid("flatten", format!("start dim {s} is after end dim {e}")));
        }
        let d = self.dims();
        let mut shape = d[..s].to_vec();
        shape.push(crate::shape::numel(&d[s..=e]));
        shape.extend_from_slice(&d[e + 1..]);
        self.reshape(shape)
    }

    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.permute(perm)?))
    }

    pub fn transpose(&self, d0: impl Dim, d1: impl Dim) -> Result<Tensor> {
        let (a, b) = (d0.resolve(self.rank(), "transpose")?, d1.resolve(self.rank(), "transpose")?);
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Transpose of the last two dims.
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::invalid("t", format!("needs at least 2 dims, got {:?}", self.dims())));
        }
        self.transpose(-2, -1)
    }

    /// `len` elements of `dim` from `start`.
    pub fn narrow(&self, dim: impl Dim, start: usize, len: usize) -> Result<Tensor> {
        let d = dim.resolve(self.rank(), "narrow")?;
        Ok(self.with_layout(self.layout.narrow(d, start, len)?))
    }

    /// `start..end` of `dim` taking every `step`-th element.
    pub fn slice(&self, dim: impl Dim, start: usize, end: usize, step: usize) -> Result<Tensor> {
        let d = dim.resolve(self.rank(), "slice")?;
        if start > end {
            return Err(Error::invalid("slice", format!("start {start} is after end {end}")));
        }
        let narrowed = self.layout.narrow(d, start, end - start)?;
        Ok(self.with_layout(narrowed.step(d, 0, step)?))
    }

    /// Splits `dim` into `n` nearly equal views (the last may be smaller).
    pub fn chunk(&self, n: usize, dim: impl Dim) -> Result<Vec<Tensor>> {
        let d = dim.resolve(self.rank(), "chunk")?;
        if n == 0 {
            return Err(Error::invalid("chunk", "zero chunks"));
        }
        let size = self.dims()[d];
        let step = size.div_ceil(n).max(1);
        (0..size).step_by(step).map(|s| self.narrow(d, s, step.min(size - s))).collect()
    }

    /// Numpy-style broadcast to `shape` (stride-0 view).
    pub fn broadcast_as(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.checked_numel().is_none() {
            return Err(Error::invalid("broadcast_as", format!("shape {:?} has more elements than can be addressed", shape.0)));
        }
        Ok(self.with_layout(self.layout.broadcast_to(shape.dims())?))
    }

    /// PyTorch's `expand`: same as [`Tensor::broadcast_as`].
    pub fn expand(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        self.broadcast_as(shape)
    }

    pub fn unsqueeze(&self, dim: impl Dim) -> Result<Tensor> {
        let d = dim.resolve(self.rank() + 1, "unsqueeze")?;
        Ok(self.with_layout(self.layout.unsqueeze(d)))
    }

    /// Removes `dim` if it has size 1 (no-op otherwise, as PyTorch).
    pub fn squeeze(&self, dim: impl Dim) -> Result<Tensor> {
        let d = dim.resolve(self.rank(), "squeeze")?;
        Ok(self.with_layout(self.layout.squeeze(d)))
    }

    /// This tensor, or a contiguous copy of it.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let storage = self.device.backend().copy(self.view())?;
        Ok(Tensor::new_contiguous(storage, self.dims(), &self.device))
    }

    /// A contiguous copy that owns its storage.
    pub fn copy(&self) -> Result<Tensor> {
        let storage = self.device.backend().copy(self.view())?;
        Ok(Tensor::new_contiguous(storage, self.dims(), &self.device))
    }

    /// Checks that `other` lives on the same device.
    pub(crate) fn same_device(&self, other: &Tensor, op: &'static str) -> Result<()> {
        if !self.device.same(&other.device) {
            return Err(Error::DeviceMismatch { op, lhs: self.device.name(), rhs: other.device.name() });
        }
        Ok(())
    }
}

pub(crate) fn check_supported(device: &Device, dtype: DType, op: &'static str) -> Result<()> {
    if !device.backend().supports(dtype) {
        return Err(Error::Device { device: device.name(), msg: format!("{op}: dtype {dtype} is not supported on this device") });
    }
    Ok(())
}

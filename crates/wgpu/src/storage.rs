//! Tensor storage on a wgpu device: a pooled buffer of packed elements.

use crate::codegen::words_for;
use crate::pool::PooledBuffer;
use std::any::Any;
use tessera_tensor::{BackendStorage, DType, Error, Result, View};

#[derive(Debug)]
pub struct WgpuStorage {
    pub(crate) buf: PooledBuffer,
    pub(crate) dtype: DType,
    pub(crate) len: usize,
}

impl WgpuStorage {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buf.buffer()
    }
    /// Bytes the elements occupy (whole words).
    pub fn byte_len(&self) -> usize {
        words_for(self.dtype, self.len) * 4
    }
}

impl BackendStorage for WgpuStorage {
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
        self.len
    }
}

/// The wgpu storage behind a view (the core routes only this device's
/// storages here; anything else is a device error, not a panic).
pub fn storage<'a>(v: &View<'a>) -> Result<&'a WgpuStorage> {
    storage_of(v.storage)
}

pub fn storage_of(s: &dyn BackendStorage) -> Result<&WgpuStorage> {
    s.as_any()
        .downcast_ref::<WgpuStorage>()
        .ok_or_else(|| Error::Device { device: "wgpu".into(), msg: "a storage of another device was passed to the wgpu backend".into() })
}

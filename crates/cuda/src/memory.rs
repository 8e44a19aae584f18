//! Device memory: a caching allocator and the backend's storage type.
//!
//! Sizes are rounded up to buckets (512-byte steps below 1 MiB, then four
//! steps per power of two, so a bucket wastes at most 25%). A storage that is
//! dropped returns its block to the free list of its bucket, and the next
//! allocation of that bucket takes it without calling the driver. All work of
//! a device runs on one stream, so a block freed while kernels that read it
//! are still queued is only handed to work queued after them: stream order
//! makes the reuse safe without waiting.
//!
//! When the driver reports out-of-memory, the allocator waits for the
//! stream, returns every cached block to the driver and tries once more; if
//! that fails too the caller gets [`Error::OutOfMemory`] and the device stays
//! usable. [`Allocator::release_cache`] returns the cached blocks on demand.

use crate::device::DeviceInner;
use cudarc::driver::{result, sys};
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tessera_tensor::{BackendStorage, DType, Error, Result};

/// The bucket an allocation of `bytes` is served from.
pub fn bucket(bytes: usize) -> usize {
    const SMALL: usize = 1 << 20;
    if bytes <= SMALL {
        return bytes.div_ceil(512).max(1) * 512;
    }
    // Four steps per power of two: 1, 1.25, 1.5, 1.75 times 2^k.
    let k = usize::BITS - 1 - bytes.leading_zeros();
    let step = 1usize << (k - 2);
    bytes.div_ceil(step) * step
}

/// Free lists per bucket size, and how many bytes they hold.
#[derive(Default)]
struct Cache {
    free: BTreeMap<usize, Vec<sys::CUdeviceptr>>,
    cached_bytes: usize,
}

#[derive(Default)]
pub struct Allocator {
    cache: Mutex<Cache>,
}

impl Allocator {
    /// A block of at least `bytes` bytes: its address and bucket size.
    pub fn alloc(&self, dev: &DeviceInner, bytes: usize) -> Result<(sys::CUdeviceptr, usize)> {
        let size = bucket(bytes);
        {
            let mut c = self.lock();
            if let Some(ptr) = c.free.get_mut(&size).and_then(|v| v.pop()) {
                c.cached_bytes -= size;
                return Ok((ptr, size));
            }
        }
        // The driver allocates in the thread's current context.
        dev.bind()?;
        // SAFETY: a plain allocation in the current context (bound above);
        // the returned pointer is owned by the caller's storage.
        match unsafe { result::malloc_sync(size) } {
            Ok(ptr) => Ok((ptr, size)),
            Err(e) if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                self.release_cache(dev)?;
                // SAFETY: as above, after the cache was released.
                unsafe { result::malloc_sync(size) }
                    .map_err(|e| {
                        if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
                            Error::OutOfMemory { device: dev.name.clone(), bytes }
                        } else {
                            dev.error("cuMemAlloc", e)
                        }
                    })
                    .map(|ptr| (ptr, size))
            }
            Err(e) => Err(dev.error("cuMemAlloc", e)),
        }
    }

    /// Takes a block back into the cache.
    pub fn free(&self, ptr: sys::CUdeviceptr, size: usize) {
        let mut c = self.lock();
        c.free.entry(size).or_default().push(ptr);
        c.cached_bytes += size;
    }

    /// Bytes held in free lists.
    pub fn cached_bytes(&self) -> usize {
        self.lock().cached_bytes
    }

    /// Waits for queued work, then returns every cached block to the driver.
    /// Returns the number of bytes released.
    pub fn release_cache(&self, dev: &DeviceInner) -> Result<usize> {
        dev.stream_sync()?;
        let blocks = std::mem::take(&mut *self.lock());
        for ptr in blocks.free.into_values().flatten() {
            // SAFETY: every cached block came from malloc_sync and was
            // taken out of the cache above, so it is freed once; no storage
            // refers to it, and stream_sync above waited for the kernels
            // queued before its storage was dropped.
            unsafe { result::free_sync(ptr) }.map_err(|e| dev.error("cuMemFree", e))?;
        }
        Ok(blocks.cached_bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A device buffer of `len` elements of `dtype`. Dropping it returns the
/// block to its device's cache.
pub struct CudaStorage {
    dev: Arc<DeviceInner>,
    ptr: sys::CUdeviceptr,
    size: usize,
    dtype: DType,
    len: usize,
}

impl std::fmt::Debug for CudaStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaStorage({} x {} on {})", self.len, self.dtype, self.dev.name)
    }
}

impl CudaStorage {
    /// Uninitialised storage for `len` elements of `dtype`.
    pub fn alloc(dev: &Arc<DeviceInner>, dtype: DType, len: usize) -> Result<CudaStorage> {
        let bytes = len
            .checked_mul(dtype.size_in_bytes())
            .ok_or_else(|| Error::InvalidArgument { op: "alloc", msg: format!("{len} elements of {dtype} overflow the address space") })?;
        let (ptr, size) = if bytes == 0 { (0, 0) } else { dev.allocator.alloc(dev, bytes)? };
        Ok(CudaStorage { dev: dev.clone(), ptr, size, dtype, len })
    }

    /// The device address of element 0.
    pub fn ptr(&self) -> sys::CUdeviceptr {
        self.ptr
    }

    /// The device address of element `offset`.
    pub fn ptr_at(&self, offset: usize) -> sys::CUdeviceptr {
        self.ptr + (offset * self.dtype.size_in_bytes()) as u64
    }

    pub fn bytes(&self) -> usize {
        self.len * self.dtype.size_in_bytes()
    }

    pub fn device(&self) -> &Arc<DeviceInner> {
        &self.dev
    }
}

impl Drop for CudaStorage {
    fn drop(&mut self) {
        if self.size > 0 {
            self.dev.allocator.free(self.ptr, self.size);
        }
    }
}

impl BackendStorage for CudaStorage {
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

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_round_up_by_at_most_a_quarter() {
        assert_eq!(bucket(1), 512);
        assert_eq!(bucket(512), 512);
        assert_eq!(bucket(513), 1024);
        assert_eq!(bucket(1 << 20), 1 << 20);
        assert_eq!(bucket((1 << 20) + 1), (1 << 20) + (1 << 18));
        assert_eq!(bucket(3 << 20), 3 << 20);
        for bytes in [(1usize << 20) + 7, 5 << 20, 123_456_789, 1 << 33] {
            let b = bucket(bytes);
            assert!(b >= bytes && (b - bytes) * 4 <= bytes, "{bytes} -> {b}");
            assert_eq!(bucket(b), b, "a bucket size is its own bucket");
        }
    }
}

//! A caching allocator for storage buffers.
//!
//! Sizes are rounded up to a bucket (powers of two up to 1 MiB, multiples of
//! 1 MiB above), and a dropped storage's buffer goes back to its bucket for
//! the next allocation of that bucket. Allocation failure empties the cache
//! and tries once more before reporting out-of-memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tessera_tensor::{Error, Result};

const MIB: usize = 1 << 20;
/// Cached bytes kept at most; beyond this, freed buffers are released.
const MAX_CACHED: usize = 1 << 30;

struct Free {
    buffers: HashMap<usize, Vec<wgpu::Buffer>>,
    bytes: usize,
}

pub struct BufferPool {
    device_name: String,
    /// The largest buffer the adapter can bind as storage.
    max_bytes: u64,
    free: Arc<Mutex<Free>>,
}

/// A pooled buffer; returns to the pool when dropped.
#[derive(Debug)]
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    bucket: usize,
    free: std::sync::Weak<Mutex<Free>>,
}

impl std::fmt::Debug for Free {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Free({} bytes)", self.bytes)
    }
}

impl PooledBuffer {
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("a pooled buffer is present until drop")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        let (Some(buffer), Some(free)) = (self.buffer.take(), self.free.upgrade()) else {
            return;
        };
        let mut free = free.lock().unwrap_or_else(|p| p.into_inner());
        if free.bytes + self.bucket <= MAX_CACHED {
            free.bytes += self.bucket;
            free.buffers.entry(self.bucket).or_default().push(buffer);
        }
    }
}

/// The allocation size class of a request of `bytes`.
pub fn bucket(bytes: usize) -> usize {
    let bytes = bytes.max(16);
    if bytes <= MIB {
        bytes.next_power_of_two()
    } else {
        bytes.div_ceil(MIB) * MIB
    }
}

impl BufferPool {
    pub fn new(device_name: String, max_bytes: u64) -> Self {
        BufferPool { device_name, max_bytes, free: Arc::new(Mutex::new(Free { buffers: HashMap::new(), bytes: 0 })) }
    }

    /// The largest buffer the pool hands out.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Releases every cached buffer.
    pub fn release_cache(&self) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.buffers.clear();
        free.bytes = 0;
    }

    /// Bytes held by the cache.
    pub fn cached_bytes(&self) -> usize {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).bytes
    }

    pub fn alloc(&self, device: &wgpu::Device, bytes: usize) -> Result<PooledBuffer> {
        let mut size = bucket(bytes);
        if size as u64 > self.max_bytes {
            // A tensor that fits the binding limit exactly still works unpooled.
            if bytes as u64 > self.max_bytes {
                return Err(Error::Device {
                    device: self.device_name.clone(),
                    msg: format!(
                        "a buffer of {bytes} bytes exceeds the adapter's largest storage binding ({} bytes); split the tensor",
                        self.max_bytes
                    ),
                });
            }
            size = bytes.div_ceil(4) * 4;
        }
        {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(buffer) = free.buffers.get_mut(&size).and_then(|v| v.pop()) {
                free.bytes -= size;
                return Ok(PooledBuffer { buffer: Some(buffer), bucket: size, free: Arc::downgrade(&self.free) });
            }
        }
        let buffer = match self.create(device, size) {
            Some(b) => b,
            None => {
                self.release_cache();
                self.create(device, size).ok_or_else(|| Error::OutOfMemory { device: self.device_name.clone(), bytes: size })?
            }
        };
        Ok(PooledBuffer { buffer: Some(buffer), bucket: size, free: Arc::downgrade(&self.free) })
    }

    fn create(&self, device: &wgpu::Device, size: usize) -> Option<wgpu::Buffer> {
        let scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tensor"),
            size: size as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        match pollster::block_on(scope.pop()) {
            None => Some(buffer),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_round_up() {
        assert_eq!(bucket(0), 16);
        assert_eq!(bucket(17), 32);
        assert_eq!(bucket(1 << 20), 1 << 20);
        assert_eq!(bucket((1 << 20) + 1), 2 << 20);
        assert_eq!(bucket(5 * (1 << 20) + 3), 6 << 20);
    }
}

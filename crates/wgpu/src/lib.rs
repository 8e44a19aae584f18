//! # tessera-wgpu
//!
//! Tessera's portable GPU backend: the core `Backend` trait on any adapter
//! wgpu reaches (Vulkan, Metal, DX12), with kernels written in WGSL in the
//! repository's shaders/ folder.
//!
//! ```no_run
//! tessera_wgpu::register();
//! let dev = tessera_tensor::Device::parse("wgpu")?;   // or "wgpu:1"
//! # Ok::<(), tessera_tensor::Error>(())
//! ```
//!
//! - Devices: one per compute-capable adapter (see [`context`] for the
//!   `TESSERA_WGPU_ADAPTER` choice).
//! - Memory: a caching pool of storage buffers ([`pool`]).
//! - Kernels: WGSL files specialised per dtype and tile constants and cached
//!   as pipelines ([`codegen`], [`gpu`]).
//! - Execution: launches are recorded into one command encoder and
//!   submitted in batches; only reading a result (or `synchronize`) waits.
//! - Timing: [`tessera_tensor::Backend::set_kernel_timing`] turns on
//!   per-kernel timestamp queries where the adapter has them.

pub mod backend;
pub mod codegen;
pub mod context;
pub mod gpu;
mod ops;
pub mod params;
pub mod pool;
pub mod profile;
pub mod shaders;
pub mod storage;

pub use backend::WgpuBackend;

use std::sync::{Arc, Mutex, OnceLock};
use tessera_tensor::{register_provider, Device, DeviceProvider, Result};

/// Each opened adapter as a core device and as this crate's backend.
type Opened = Vec<(Device, WgpuBackend)>;

/// Opened devices, one per adapter, created on first use.
fn opened() -> Result<Opened> {
    static DEVICES: OnceLock<Mutex<Option<Opened>>> = OnceLock::new();
    let slot = DEVICES.get_or_init(|| Mutex::new(None));
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(d) = slot.as_ref() {
        return Ok(d.clone());
    }
    let mut out = Vec::new();
    for (i, adapter) in context::adapters()?.iter().enumerate() {
        let name = format!("wgpu:{i}");
        let (device, queue) = context::open(adapter, &name)?;
        let backend = WgpuBackend::new(gpu::Gpu::new(name, adapter, device, queue));
        out.push((Device::new(Arc::new(backend.clone())), backend));
    }
    *slot = Some(out.clone());
    Ok(out)
}

fn devices() -> Result<Vec<Device>> {
    Ok(opened()?.into_iter().map(|(d, _)| d).collect())
}

struct Provider;

impl DeviceProvider for Provider {
    fn kind(&self) -> &str {
        "wgpu"
    }
    fn devices(&self) -> Result<Vec<Device>> {
        devices()
    }
}

/// Makes the wgpu devices known to the core (`Device::parse("wgpu:0")`,
/// `all_devices()`). Calling it again is harmless.
pub fn register() {
    register_provider(Box::new(Provider));
}

/// The wgpu backend behind `device` (for its pool and adapter details), if
/// it is one of this crate's devices.
pub fn backend_of(device: &Device) -> Option<WgpuBackend> {
    opened().ok()?.into_iter().find(|(d, _)| d.same(device)).map(|(_, b)| b)
}

/// The first wgpu device, or `None` (with the reason) when no adapter is
/// usable.
pub fn default_device() -> std::result::Result<Device, String> {
    match devices() {
        Ok(d) if !d.is_empty() => Ok(d[0].clone()),
        Ok(_) => Err(context::no_adapter_message(&[])),
        Err(e) => Err(e.to_string()),
    }
}

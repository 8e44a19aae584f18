//! Devices: a handle on a backend, and the registry through which backend
//! crates make their devices known to the core.

use crate::backend::{Backend, DeviceInfo};
use crate::cpu::CpuBackend;
use crate::{Error, Result};
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

/// A handle on one compute device. Cheap to clone; equal when it is the
/// same backend instance.
#[derive(Clone)]
pub struct Device {
    backend: Arc<dyn Backend>,
}

impl Device {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Device { backend }
    }

    /// The process-wide CPU device.
    pub fn cpu() -> Device {
        static CPU: OnceLock<Device> = OnceLock::new();
        CPU.get_or_init(|| Device::new(Arc::new(CpuBackend::new()))).clone()
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    pub fn name(&self) -> String {
        self.backend.name()
    }

    pub fn info(&self) -> DeviceInfo {
        self.backend.info()
    }

    pub fn is_cpu(&self) -> bool {
        self.same(&Device::cpu())
    }

    pub fn same(&self, other: &Device) -> bool {
        Arc::ptr_eq(&self.backend, &other.backend)
    }

    /// See [`Backend::max_buffer_bytes`].
    pub fn max_buffer_bytes(&self) -> Option<usize> {
        self.backend.max_buffer_bytes()
    }

    pub fn synchronize(&self) -> Result<()> {
        self.backend.synchronize()
    }

    /// A device by name: "cpu", or "KIND" / "KIND:INDEX" of a registered
    /// provider (e.g. "cuda:0", "wgpu").
    pub fn parse(name: &str) -> Result<Device> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("cpu") {
            return Ok(Device::cpu());
        }
        let (kind, index) = match name.split_once(':') {
            Some((k, i)) => {
                let i = i.parse::<usize>().map_err(|_| Error::invalid("device", format!("'{name}': '{i}' is not a device index")))?;
                (k, i)
            }
            None => (name, 0),
        };
        let providers = registry().read().unwrap_or_else(|e| e.into_inner());
        let known: Vec<String> = std::iter::once("cpu".to_string()).chain(providers.iter().map(|p| p.kind().to_string())).collect();
        let provider = providers.iter().find(|p| p.kind().eq_ignore_ascii_case(kind)).ok_or_else(|| {
            Error::invalid("device", format!("unknown device kind '{kind}' (known: {}; GPU backends are cargo features)", known.join(", ")))
        })?;
        let devices = provider.devices()?;
        let count = devices.len();
        devices
            .into_iter()
            .nth(index)
            .ok_or_else(|| Error::Device { device: name.to_string(), msg: format!("no such device: {count} {kind} device(s) found") })
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Self) -> bool {
        self.same(other)
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Device({})", self.name())
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Implemented by a backend crate to make its devices known to the core.
pub trait DeviceProvider: Send + Sync {
    /// The device kind, used as the name prefix ("cuda", "wgpu").
    fn kind(&self) -> &str;
    /// The devices of this kind present now (possibly none), or an error that
    /// says why they cannot be reached (e.g. no driver).
    fn devices(&self) -> Result<Vec<Device>>;
}

fn registry() -> &'static RwLock<Vec<Box<dyn DeviceProvider>>> {
    static REG: OnceLock<RwLock<Vec<Box<dyn DeviceProvider>>>> = OnceLock::new();
    REG.get_or_init(|| RwLock::new(Vec::new()))
}

/// Registers a provider; a second provider of the same kind replaces the first.
pub fn register_provider(provider: Box<dyn DeviceProvider>) {
    let mut reg = registry().write().unwrap_or_else(|e| e.into_inner());
    reg.retain(|p| p.kind() != provider.kind());
    reg.push(provider);
}

/// Every device reachable now: the CPU first, then each provider's devices.
/// Providers that fail report their error beside the devices found.
pub fn all_devices() -> (Vec<Device>, Vec<(String, Error)>) {
    let mut devices = vec![Device::cpu()];
    let mut errors = Vec::new();
    for p in registry().read().unwrap_or_else(|e| e.into_inner()).iter() {
        match p.devices() {
            Ok(d) => devices.extend(d),
            Err(e) => errors.push((p.kind().to_string(), e)),
        }
    }
    (devices, errors)
}

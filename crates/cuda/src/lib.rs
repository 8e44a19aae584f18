//! # tessera-cuda: Tessera on NVIDIA GPUs
//!
//! A backend with hand-written kernels (kernels/*.cu in the repository; no
//! cuBLAS, no cuDNN) compiled at run time by NVRTC for the device's exact
//! architecture and cached on disk ([`compile`]). The driver API and NVRTC
//! are loaded dynamically through `cudarc`, so the crate builds with no CUDA
//! toolkit, and a machine without a driver gets an error, not a panic.
//!
//! ```no_run
//! tessera_cuda::register();
//! let dev = tessera_tensor::Device::parse("cuda:0")?;
//! # Ok::<(), tessera_tensor::Error>(())
//! ```
//!
//! Per device: one stream (ops queue without waiting; reading a result
//! synchronises), a caching allocator ([`memory`]), and kernels loaded on
//! first use. Op codes shared with the kernels are in [`codes`].
//!
//! Fused ops implemented natively (the rest run as the core's
//! compositions of this backend's primitive ops): `matmul_bias` with its
//! activation (in the GEMM/GEMV epilogue), `add_norm` (residual add +
//! layer/RMS norm), softmax / log-softmax, layer norm, RMS norm, group
//! norm, rope, conv2d (im2col + the product kernels, bias in the epilogue),
//! nearest upsampling and flash attention (f16/bf16).

pub mod backend;
pub mod codes;
pub mod compile;
pub mod device;
pub mod layout;
pub mod memory;
pub mod ops;

pub use backend::CudaBackend;

use std::sync::{Arc, OnceLock};
use tessera_tensor::{register_provider, Device, DeviceProvider, Error, Result};

/// Every CUDA device of the process, opened once.
struct Opened {
    devices: Vec<Device>,
    backends: Vec<Arc<CudaBackend>>,
}

fn driver_error(msg: impl Into<String>) -> Error {
    Error::Device { device: "cuda".into(), msg: msg.into() }
}

/// Loads the driver library, or says why it cannot be loaded.
fn driver_loaded() -> Result<()> {
    // SAFETY: is_culib_present only tries to dlopen the driver library and
    // reports whether it loaded; a panic inside is caught here.
    let present = std::panic::catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() }).unwrap_or(false);
    if present {
        Ok(())
    } else {
        Err(driver_error(
            "the NVIDIA driver library (libcuda.so) could not be loaded: no NVIDIA driver is installed on this machine \
             (install the GPU's NVIDIA driver; libcuda.so.1 must be on the library path)",
        ))
    }
}

fn open_all() -> Result<Opened> {
    driver_loaded()?;
    let count = match std::panic::catch_unwind(cudarc::driver::CudaContext::device_count) {
        Ok(Ok(n)) => n.max(0) as usize,
        Ok(Err(e)) if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_NO_DEVICE => 0,
        Ok(Err(e)) => return Err(driver_error(format!("cuInit / cuDeviceGetCount: {e:?}"))),
        Err(_) => return Err(driver_error("the NVIDIA driver library lacks a required function (driver older than CUDA 13.0?)")),
    };
    let mut opened = Opened { devices: Vec::new(), backends: Vec::new() };
    for ordinal in 0..count {
        let dev = device::DeviceInner::open(ordinal).map_err(|e| driver_error(format!("opening cuda:{ordinal}: {e:?}")))?;
        let backend = Arc::new(CudaBackend::new(dev));
        opened.devices.push(Device::new(backend.clone()));
        opened.backends.push(backend);
    }
    Ok(opened)
}

fn opened() -> Result<&'static Opened> {
    static OPENED: OnceLock<std::result::Result<Opened, String>> = OnceLock::new();
    OPENED
        .get_or_init(|| {
            open_all().map_err(|e| match e {
                Error::Device { msg, .. } => msg,
                other => other.to_string(),
            })
        })
        .as_ref()
        .map_err(|msg| driver_error(msg.clone()))
}

/// The CUDA devices of this machine (possibly none), or why they cannot be
/// reached (no driver).
pub fn devices() -> Result<Vec<Device>> {
    Ok(opened()?.devices.clone())
}

/// The backend behind `device`, if it is a CUDA device.
pub fn backend_of(device: &Device) -> Option<Arc<CudaBackend>> {
    let o = opened().ok()?;
    o.devices.iter().position(|d| d.same(device)).map(|i| o.backends[i].clone())
}

/// Returns the cached device memory of a CUDA device to the driver; the
/// number of bytes released.
pub fn release_cache(device: &Device) -> Result<usize> {
    backend_of(device).ok_or_else(|| driver_error(format!("{device} is not a CUDA device")))?.release_cache()
}

struct CudaProvider;

impl DeviceProvider for CudaProvider {
    fn kind(&self) -> &str {
        "cuda"
    }
    /// The devices, or why there is none (for `tessera info`).
    fn devices(&self) -> Result<Vec<Device>> {
        let found = devices()?;
        if found.is_empty() {
            return Err(driver_error(
                "the NVIDIA driver (libcuda.so) is installed but reports no CUDA GPU (nvidia-smi lists the GPUs it sees; \
                 CUDA_VISIBLE_DEVICES may hide them)",
            ));
        }
        Ok(found)
    }
}

/// Makes the CUDA devices known to the core: `Device::parse("cuda:0")`,
/// `all_devices()` and `tessera info` find them after this call.
pub fn register() {
    register_provider(Box::new(CudaProvider));
}

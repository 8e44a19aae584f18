//! One CUDA device: its context, its stream, its allocator and its loaded
//! kernels, and the plumbing every op uses (launches, copies, errors).
//!
//! Every op of a device is queued on the device's one stream, so ops run in
//! the order they were issued and nothing waits for the GPU except reading a
//! result (`download`) and `synchronize`.

use crate::compile::{compile_cached, Arch, Defines, KernelFile, Output};
use crate::memory::{Allocator, CudaStorage};
use cudarc::driver::result::DriverError;
use cudarc::driver::{result, sys, CudaContext, CudaStream};
use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::{Arc, Mutex};
use tessera_tensor::{Error, Result};

/// A loaded kernel.
#[derive(Clone, Copy)]
pub struct Function {
    f: sys::CUfunction,
}
// SAFETY: a CUfunction is a handle valid in every thread of the process
// while its module is loaded; modules stay loaded for the device's lifetime.
unsafe impl Send for Function {}
// SAFETY: as for Send: the handle is only read, and the driver API may be
// called with it from any thread.
unsafe impl Sync for Function {}

/// A kernel file and the `-D` defines it was compiled with.
type ModuleKey = (String, Defines);

struct Module {
    module: sys::CUmodule,
    functions: HashMap<String, Function>,
}
// SAFETY: as for Function; the map is only touched under the modules lock.
unsafe impl Send for Module {}

/// The state shared by a device's backend and its storages.
pub struct DeviceInner {
    pub name: String,
    pub ordinal: usize,
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub arch: Arch,
    pub sm_count: u32,
    /// Largest dynamic shared memory a block may opt into, in bytes.
    pub max_smem_optin: u32,
    pub allocator: Allocator,
    /// Loaded modules by file name and defines.
    modules: Mutex<HashMap<ModuleKey, Module>>,
}

impl std::fmt::Debug for DeviceInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaDevice({}, {})", self.name, self.arch.sm())
    }
}

/// Kernel arguments, each kept in 8-byte aligned storage of its own so the
/// pointers handed to `cuLaunchKernel` stay valid until the launch.
#[derive(Default)]
pub struct Args {
    values: Vec<Box<[u64]>>,
}

impl Args {
    pub fn new() -> Args {
        Args::default()
    }
    /// Any plain value (`#[repr(C)]` structs, integers, floats, pointers).
    pub fn push<T: Copy>(&mut self, v: T) -> &mut Args {
        let words = std::mem::size_of::<T>().div_ceil(8).max(1);
        let mut b = vec![0u64; words].into_boxed_slice();
        // SAFETY: the box holds at least size_of::<T>() bytes, 8-aligned.
        unsafe { std::ptr::write_unaligned(b.as_mut_ptr() as *mut T, v) };
        self.values.push(b);
        self
    }
    pub fn ptr(&mut self, p: sys::CUdeviceptr) -> &mut Args {
        self.push(p)
    }
    fn pointers(&mut self) -> Vec<*mut c_void> {
        self.values.iter_mut().map(|b| b.as_mut_ptr() as *mut c_void).collect()
    }
}

/// A launch geometry.
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    pub blocks: (u32, u32, u32),
    pub threads: u32,
    pub smem: u32,
}

impl Grid {
    pub fn new(blocks: (u32, u32, u32), threads: u32, smem: u32) -> Grid {
        Grid { blocks, threads, smem }
    }
}

impl DeviceInner {
    pub fn open(ordinal: usize) -> std::result::Result<DeviceInner, DriverError> {
        let ctx = CudaContext::new(ordinal)?;
        let stream = ctx.new_stream()?;
        let (major, minor) = ctx.compute_capability()?;
        let attr = |a| ctx.attribute(a);
        let sm_count = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32;
        let max_smem_optin = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)? as u32;
        Ok(DeviceInner {
            name: format!("cuda:{ordinal}"),
            ordinal,
            ctx,
            stream,
            arch: Arch { major: major as u32, minor: minor as u32 },
            sm_count,
            max_smem_optin,
            allocator: Allocator::default(),
            modules: Mutex::new(HashMap::new()),
        })
    }

    /// A driver error as a tensor error naming this device and the call.
    pub fn error(&self, what: &str, e: DriverError) -> Error {
        Error::Device { device: self.name.clone(), msg: format!("{what}: {e:?}") }
    }

    /// Makes this device's context current on the calling thread.
    pub fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| self.error("cuCtxSetCurrent", e))
    }

    pub fn stream_sync(&self) -> Result<()> {
        self.bind()?;
        self.stream.synchronize().map_err(|e| self.error("cuStreamSynchronize", e))
    }

    /// A kernel of `file` (compiled with `defines`) by name; compiles and
    /// loads the file on first use.
    pub fn function(&self, file: &KernelFile, defines: &[(String, String)], name: &str) -> Result<Function> {
        let key = (file.name.to_string(), defines.to_vec());
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        if !modules.contains_key(&key) {
            let image = compile_cached(file, self.arch, Output::Cubin, defines)?;
            self.bind()?;
            // SAFETY: `image` is a CUBIN produced by NVRTC for this device's
            // architecture and outlives the call (the driver copies it); the
            // device's context is current (bind above).
            let module = unsafe { result::module::load_data(image.as_ptr() as *const c_void) }
                .map_err(|e| self.error(&format!("loading kernels/{}", file.name), e))?;
            modules.insert(key.clone(), Module { module, functions: HashMap::new() });
        }
        let m = modules.get_mut(&key).expect("inserted above");
        if let Some(f) = m.functions.get(name) {
            return Ok(*f);
        }
        let cname = CString::new(name).expect("kernel names have no NUL");
        // SAFETY: `m.module` was loaded above and is unloaded only when the
        // device drops; `cname` is a NUL-terminated name.
        let f = unsafe { result::module::get_function(m.module, cname) }
            .map_err(|e| self.error(&format!("kernel {name} of kernels/{}", file.name), e))?;
        let f = Function { f };
        m.functions.insert(name.to_string(), f);
        Ok(f)
    }

    /// Queues `f` on the device's stream.
    pub fn launch(&self, f: Function, grid: Grid, args: &mut Args) -> Result<()> {
        if grid.blocks.0 == 0 || grid.blocks.1 == 0 || grid.blocks.2 == 0 {
            return Ok(());
        }
        self.bind()?;
        if grid.smem > 48 * 1024 {
            if grid.smem > self.max_smem_optin {
                return Err(Error::Device {
                    device: self.name.clone(),
                    msg: format!("a kernel needs {} bytes of shared memory; this GPU allows {}", grid.smem, self.max_smem_optin),
                });
            }
            // SAFETY: `f` is a function of a module loaded in this context,
            // and the requested size was checked against the device's limit.
            unsafe {
                result::function::set_function_attribute(
                    f.f,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    grid.smem as i32,
                )
            }
            .map_err(|e| self.error("cuFuncSetAttribute", e))?;
        }
        let mut ptrs = args.pointers();
        // SAFETY: `ptrs` holds one pointer per kernel parameter, each to an
        // 8-aligned copy of a value whose type and order match the kernel's
        // signature (every op's host code pushes them in the order of the
        // .cu declaration, and #[repr(C)] structs mirror the C structs);
        // `args` outlives the call, which copies the values. Device pointers
        // among them point at live allocations of this context: storages
        // are held by the caller until the launch is queued, and a freed
        // block only returns to work queued after it on this one stream.
        unsafe { result::launch_kernel(f.f, grid.blocks, (grid.threads, 1, 1), grid.smem, self.stream.cu_stream(), &mut ptrs) }
            .map_err(|e| self.error("cuLaunchKernel", e))
    }

    /// Blocks for a grid-stride loop over `n` items with `threads` per block.
    pub fn stride_blocks(&self, n: usize, threads: u32) -> u32 {
        let wanted = n.div_ceil(threads as usize).max(1);
        wanted.min(self.sm_count as usize * 32).min(i32::MAX as usize) as u32
    }

    pub fn upload(self: &Arc<Self>, dtype: tessera_tensor::DType, bytes: &[u8]) -> Result<CudaStorage> {
        let es = dtype.size_in_bytes();
        if !bytes.len().is_multiple_of(es) {
            return Err(Error::InvalidArgument {
                op: "upload",
                msg: format!("{} bytes is not a whole number of {dtype} elements", bytes.len()),
            });
        }
        let s = CudaStorage::alloc(self, dtype, bytes.len() / es)?;
        if !bytes.is_empty() {
            self.bind()?;
            // SAFETY: `s` holds at least bytes.len() bytes (allocated above);
            // the source is pageable host memory, which the driver stages
            // before the call returns, so the caller may free `bytes` after
            // it; the copy stays ordered on the stream.
            unsafe { result::memcpy_htod_async(s.ptr(), bytes, self.stream.cu_stream()) }
                .map_err(|e| self.error("cuMemcpyHtoDAsync", e))?;
        }
        Ok(s)
    }

    pub fn download(&self, s: &CudaStorage) -> Result<Vec<u8>> {
        let mut out = vec![0u8; s.bytes()];
        if out.is_empty() {
            return Ok(out);
        }
        self.bind()?;
        // SAFETY: `out` has s.bytes() bytes, the size of the device buffer,
        // and is not touched until stream_sync below has waited for the copy
        // (on error we return before reading it, after waiting too).
        let copied = unsafe { result::memcpy_dtoh_async(&mut out, s.ptr(), self.stream.cu_stream()) };
        if let Err(e) = copied {
            let _ = self.stream_sync();
            return Err(self.error("cuMemcpyDtoHAsync", e));
        }
        self.stream_sync()?;
        Ok(out)
    }

    /// Device-to-device copy of `bytes` bytes, queued on the stream.
    pub fn copy_d2d(&self, dst: sys::CUdeviceptr, src: sys::CUdeviceptr, bytes: usize) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: callers pass ranges of `bytes` bytes inside live device
        // allocations of this context (views checked by the core); the copy
        // is ordered on the stream with every kernel that reads or writes
        // them.
        unsafe { result::memcpy_dtod_async(dst, src, bytes, self.stream.cu_stream()) }.map_err(|e| self.error("cuMemcpyDtoDAsync", e))
    }
}

impl Drop for DeviceInner {
    fn drop(&mut self) {
        // Storages hold an Arc of the device, so none is alive here; release
        // the cache and the modules (errors at teardown have no one to go to).
        let _ = self.allocator.release_cache(self);
        for (_, m) in self.modules.get_mut().unwrap_or_else(|e| e.into_inner()).drain() {
            // SAFETY: no storage (so no queued kernel's owner) outlives the
            // device, and each module is unloaded once, as it is drained.
            let _ = unsafe { result::module::unload(m.module) };
        }
    }
}

//! The host side of each kernel family: argument checks the core leaves to
//! backends, layouts, launch geometry.

pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod index;
pub mod matmul;
pub mod norm;
pub mod reduce;

use crate::device::{Args, DeviceInner, Function, Grid};
use crate::memory::CudaStorage;
use std::sync::Arc;
use tessera_tensor::{DType, Error, Result, View};

/// What every op needs: the device.
pub struct Ctx<'a> {
    pub dev: &'a Arc<DeviceInner>,
}

/// Threads per block of the grid-stride kernels.
pub const MAP_THREADS: u32 = 256;

/// The CUDA storage behind a view.
pub fn storage<'a>(v: &View<'a>) -> Result<&'a CudaStorage> {
    v.storage
        .as_any()
        .downcast_ref::<CudaStorage>()
        .ok_or_else(|| Error::Device { device: "cuda".into(), msg: "the CUDA backend was handed a storage of another device".into() })
}

/// The device address of a view's first element.
pub fn view_ptr(v: &View) -> Result<u64> {
    Ok(storage(v)?.ptr_at(v.layout.offset()))
}

/// Launches a grid-stride kernel over `n` items.
pub fn launch_map(cx: &Ctx, f: Function, n: usize, args: &mut Args) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let grid = Grid::new((cx.dev.stride_blocks(n, MAP_THREADS), 1, 1), MAP_THREADS, 0);
    cx.dev.launch(f, grid, args)
}

/// Rejects dtypes that arithmetic kernels do not compute on.
pub fn check_float(op: &'static str, d: DType) -> Result<()> {
    if d.is_compute_float() {
        Ok(())
    } else {
        Err(Error::UnsupportedDType { op, dtype: d })
    }
}

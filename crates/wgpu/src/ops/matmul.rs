//! Batched matmul: matmul.wgsl (workgroup-memory tiles, for GPUs) or
//! matmul_rt.wgsl (register tiles, for software adapters).

use super::reduce::wide;
use crate::backend::WgpuBackend;
use crate::codegen::{run_element, run_elements};
use crate::gpu::KernelSpec;
use crate::params::{merge_dims, Params};
use crate::storage::storage;
use tessera_tensor::{DType, Error, Result, StorageRef, View};

/// Rows and columns of C per workgroup of matmul.wgsl (TM, TN).
const TILE: usize = 64;
/// Rows and columns of C per workgroup (one subgroup of 8) of matmul_rt.wgsl.
const RT_ROWS: usize = 32;
const RT_COLS: usize = 32;

/// The matmul kernel an adapter runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    /// matmul.wgsl: 64 x 64 tiles staged through workgroup memory.
    Shared,
    /// matmul_rt.wgsl: per-invocation register tiles read from storage.
    Registers,
}

impl MatmulKernel {
    /// Registers on software adapters (llvmpipe: workgroup memory and
    /// barriers are slow there, subgroups are the 8 lanes of a vector),
    /// shared tiles on GPUs; `TESSERA_WGPU_MATMUL=shared|registers`
    /// overrides that. Registers need subgroups of exactly 8 invocations:
    /// without them it is always shared tiles.
    pub fn choose(software: bool, subgroups_of_8: bool) -> MatmulKernel {
        let registers = match std::env::var("TESSERA_WGPU_MATMUL").as_deref() {
            Ok("shared") => false,
            Ok("registers") => true,
            _ => software,
        };
        if registers && subgroups_of_8 {
            MatmulKernel::Registers
        } else {
            MatmulKernel::Shared
        }
    }
}

impl WgpuBackend {
    pub(crate) fn matmul_op(&self, lhs: View, rhs: View) -> Result<StorageRef> {
        let dtype = lhs.dtype();
        let (ls, rs) = (lhs.shape(), rhs.shape());
        let r = ls.len();
        let (m, k, n) = (ls[r - 2], ls[r - 1], rs[r - 1]);
        let batch_shape = &ls[..r - 2];
        let batch: usize = batch_shape.iter().product();
        let acc_dtype = wide(dtype);
        let out = self.alloc(acc_dtype, batch * m * n)?;
        if batch * m * n > 0 {
            if k == 0 {
                // An empty sum: zeros.
                return self.fill(dtype, batch * m * n, 0.0);
            }
            let (la, lb) = (lhs.layout.strides(), rhs.layout.strides());
            let (dims, strided) = merge_dims(batch_shape, &[(lhs.layout.offset(), &la[..r - 2]), (rhs.layout.offset(), &lb[..r - 2])]);
            let word = |v: usize| {
                u32::try_from(v).map_err(|_| Error::InvalidArgument { op: "matmul", msg: format!("size {v} exceeds 32-bit indexing") })
            };
            let params = Params::new("matmul", batch, &dims, &strided)?
                .extra(0, word(m)?)
                .extra(1, word(n)?)
                .extra(2, word(k)?)
                .extra(3, word(la[r - 2])?)
                .extra(4, word(la[r - 1])?)
                .extra(5, word(lb[r - 2])?)
                .extra(6, word(lb[r - 1])?);
            let kernel = MatmulKernel::choose(self.is_software(), self.gpu.subgroups_of(8));
            let groups = match kernel {
                MatmulKernel::Shared => (n.div_ceil(TILE), m.div_ceil(TILE), batch),
                MatmulKernel::Registers => (n.div_ceil(RT_COLS), m.div_ceil(RT_ROWS), batch),
            };
            let max = self.gpu.limits.max_compute_workgroups_per_dimension as usize;
            if groups.0 > max || groups.1 > max || groups.2 > max {
                return Err(Error::InvalidArgument {
                    op: "matmul",
                    msg: format!(
                        "{batch} x [{m}, {k}] @ [{k}, {n}] exceeds the adapter's dispatch limit of {max} workgroups per dimension"
                    ),
                });
            }
            // 16-byte loads where every row a tile reads starts on a run of
            // `run` elements along the unit-stride dim.
            let aligned = |run: usize, offset: usize, batch: &[usize], row: usize, len: usize| {
                [offset, row, len].iter().chain(batch).all(|v| v.is_multiple_of(run))
            };
            let (a, b) = (storage(&lhs)?.buffer(), storage(&rhs)?.buffer());
            let spec = match kernel {
                MatmulKernel::Shared => {
                    let f32_runs =
                        |unit: bool, offset, batch: &[usize], row, len| unit && dtype == DType::F32 && aligned(4, offset, batch, row, len);
                    KernelSpec::new("matmul")
                        .def("VEC_A", u32::from(f32_runs(la[r - 1] == 1, lhs.layout.offset(), &la[..r - 2], la[r - 2], k)))
                        .def("VEC_B", u32::from(f32_runs(lb[r - 1] == 1, rhs.layout.offset(), &lb[..r - 2], lb[r - 2], n)))
                }
                MatmulKernel::Registers => {
                    // Runs along k of both operands: A row-major, B transposed (a weight [n, k]).
                    let kv = run_elements(dtype).unwrap_or(1) as usize;
                    let runs = kv > 1
                        && la[r - 1] == 1
                        && lb[r - 2] == 1
                        && aligned(kv, lhs.layout.offset(), &la[..r - 2], la[r - 2], k)
                        && aligned(kv, rhs.layout.offset(), &lb[..r - 2], lb[r - 1], k);
                    let unpack = run_element(dtype, "w", "e").unwrap_or_else(|| "0.0".into());
                    KernelSpec::new("matmul_rt")
                        .def("BLOCKS", RT_ROWS / 8)
                        .def("RUNS", u32::from(runs))
                        .def("KV", kv)
                        .def("UNPACK_A", &unpack)
                        .def("UNPACK_B", &unpack)
                }
            }
            .input("a", dtype)
            .input("b", dtype)
            .vec4_view("a4")
            .vec4_view("b4")
            .out(acc_dtype);
            let bufs = [a, b, a, b, self.buffer_of(&out)?];
            self.gpu.launch(&spec, params.words(), &bufs, (groups.0 as u32, groups.1 as u32, groups.2 as u32))?;
        }
        self.narrow_to(out, dtype)
    }
}

//! Batched matmul: matmul.wgsl (workgroup-memory tiles, for GPUs) or
//! matmul_rt.wgsl (register tiles, for software adapters), with an
//! epilogue (epilogue.wgsl) that adds a bias and applies an activation
//! before the store: `matmul_bias` and the product of `conv2d`.

use super::elementwise::unary_expr;
use super::reduce::wide;
use crate::backend::WgpuBackend;
use crate::codegen::run_elements;
use crate::gpu::KernelSpec;
use crate::params::{merge_dims, Params};
use crate::storage::storage;
use tessera_tensor::{DType, Error, Result, StorageRef, UnaryOp, View};

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

/// A bias the epilogue adds: C[batch][r][c] gets the element at
/// `offset + batch_strides . (batch index) + r * row_stride + c * col_stride`
/// of `view`'s storage (a layer's bias steps along columns, a
/// convolution's along rows).
pub(crate) struct Bias<'a> {
    pub view: View<'a>,
    /// Strides over the product's batch dims (before merging).
    pub batch_strides: Vec<usize>,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl WgpuBackend {
    pub(crate) fn matmul_op(&self, lhs: View, rhs: View) -> Result<StorageRef> {
        self.gemm("matmul", lhs, rhs, None, None)
    }

    /// `act(lhs @ rhs + bias)` with `bias` `[n]`; `None` (the composition)
    /// for an empty sum (`k = 0`), where the output is the activated bias.
    pub(crate) fn matmul_bias_op(&self, lhs: View, rhs: View, bias: View, act: Option<UnaryOp>) -> Result<Option<StorageRef>> {
        let r = lhs.shape().len();
        if lhs.shape()[r - 1] == 0 {
            return Ok(None);
        }
        let bias = Bias { batch_strides: vec![0; r - 2], row_stride: 0, col_stride: bias.layout.strides()[0], view: bias };
        self.gemm("matmul_bias", lhs, rhs, Some(bias), act).map(Some)
    }

    /// The batched product of `lhs` `[batch..., m, k]` and `rhs`
    /// `[batch..., k, n]` (any strides) into a contiguous `[batch..., m, n]`,
    /// each element through the epilogue (`bias`, then `act`).
    pub(crate) fn gemm(&self, op: &'static str, lhs: View, rhs: View, bias: Option<Bias>, act: Option<UnaryOp>) -> Result<StorageRef> {
        let dtype = lhs.dtype();
        let (ls, rs) = (lhs.shape(), rhs.shape());
        let r = ls.len();
        let (m, k, n) = (ls[r - 2], ls[r - 1], rs[r - 1]);
        let batch_shape = &ls[..r - 2];
        let batch: usize = batch_shape.iter().product();
        let acc_dtype = wide(dtype);
        let out = self.alloc(acc_dtype, batch * m * n)?;
        if batch * m * n > 0 {
            if k == 0 && bias.is_none() && act.is_none() {
                // An empty sum: zeros.
                return self.fill(dtype, batch * m * n, 0.0);
            }
            let (la, lb) = (lhs.layout.strides(), rhs.layout.strides());
            let mut records = vec![(lhs.layout.offset(), &la[..r - 2]), (rhs.layout.offset(), &lb[..r - 2])];
            if let Some(b) = &bias {
                records.push((b.view.layout.offset(), &b.batch_strides));
            }
            let (dims, strided) = merge_dims(batch_shape, &records);
            let word =
                |v: usize| u32::try_from(v).map_err(|_| Error::InvalidArgument { op, msg: format!("size {v} exceeds 32-bit indexing") });
            let mut params = Params::new(op, batch, &dims, &strided)?
                .extra(0, word(m)?)
                .extra(1, word(n)?)
                .extra(2, word(k)?)
                .extra(3, word(la[r - 2])?)
                .extra(4, word(la[r - 1])?)
                .extra(5, word(lb[r - 2])?)
                .extra(6, word(lb[r - 1])?);
            if let Some(b) = &bias {
                params = params.tail(op, &[b.row_stride, b.col_stride])?;
            }
            let kernel = MatmulKernel::choose(self.is_software(), self.gpu.subgroups_of(8));
            let groups = match kernel {
                MatmulKernel::Shared => (n.div_ceil(TILE), m.div_ceil(TILE), batch),
                MatmulKernel::Registers => (n.div_ceil(RT_COLS), m.div_ceil(RT_ROWS), batch),
            };
            let max = self.gpu.limits.max_compute_workgroups_per_dimension as usize;
            if groups.0 > max || groups.1 > max || groups.2 > max {
                return Err(Error::InvalidArgument {
                    op,
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
                    KernelSpec::new("matmul_rt").def("BLOCKS", RT_ROWS / 8).def("RUNS", u32::from(runs)).def("KV", kv)
                }
            }
            .lib("epilogue")
            .lib("math")
            .def("EPILOGUE", epilogue(bias.is_some(), act))
            .input("a", dtype)
            .input("b", dtype);
            let mut bufs = vec![a, b];
            let spec = match &bias {
                Some(bias) => {
                    bufs.push(storage(&bias.view)?.buffer());
                    spec.input("bias", bias.view.dtype())
                }
                None => spec,
            };
            bufs.extend([a, b, self.buffer_of(&out)?]);
            let spec = spec.vec4_view("a4", dtype).vec4_view("b4", dtype).out(acc_dtype);
            self.gpu.launch(&spec, params.words(), &bufs, (groups.0 as u32, groups.1 as u32, groups.2 as u32))?;
        }
        self.narrow_to(out, dtype)
    }
}

/// The epilogue statement (see epilogue.wgsl): the bias added, then `act`.
fn epilogue(bias: bool, act: Option<UnaryOp>) -> String {
    if !bias && act.is_none() {
        return "return v;".into();
    }
    let sum = if bias { "v + bias_f(bias_at(batch, r, c))" } else { "v" };
    format!("let x = {sum}; return {};", act.map_or("x", unary_expr))
}

//! Batched matmul (matmul.wgsl).

use super::reduce::wide;
use crate::backend::WgpuBackend;
use crate::gpu::KernelSpec;
use crate::params::{merge_dims, Params};
use crate::storage::storage;
use tessera_tensor::{DType, Error, Result, StorageRef, View};

/// Rows and columns of C per workgroup (TM, TN in matmul.wgsl).
const TILE: usize = 64;

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
            let max = self.gpu.limits.max_compute_workgroups_per_dimension as usize;
            let groups = (n.div_ceil(TILE), m.div_ceil(TILE), batch);
            if groups.0 > max || groups.1 > max || groups.2 > max {
                return Err(Error::InvalidArgument {
                    op: "matmul",
                    msg: format!(
                        "{batch} x [{m}, {k}] @ [{k}, {n}] exceeds the adapter's dispatch limit of {max} workgroups per dimension"
                    ),
                });
            }
            // 16-byte loads where every row a tile reads starts 4-aligned.
            let aligned = |offset: usize, batch: &[usize], row: usize, len: usize| {
                dtype == DType::F32 && [offset, row, len].iter().chain(batch).all(|v| v.is_multiple_of(4))
            };
            let vec_a = la[r - 1] == 1 && aligned(lhs.layout.offset(), &la[..r - 2], la[r - 2], k);
            let vec_b = lb[r - 1] == 1 && aligned(rhs.layout.offset(), &lb[..r - 2], lb[r - 2], n);
            let (a, b) = (storage(&lhs)?.buffer(), storage(&rhs)?.buffer());
            let spec = KernelSpec::new("matmul")
                .input("a", dtype)
                .input("b", dtype)
                .vec4_view("a4")
                .vec4_view("b4")
                .def("VEC_A", u32::from(vec_a))
                .def("VEC_B", u32::from(vec_b))
                .out(acc_dtype);
            let bufs = [a, b, a, b, self.buffer_of(&out)?];
            self.gpu.launch(&spec, params.words(), &bufs, (groups.0 as u32, groups.1 as u32, groups.2 as u32))?;
        }
        self.narrow_to(out, dtype)
    }
}

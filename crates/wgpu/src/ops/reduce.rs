//! Reductions (reduce.wgsl) and scans (scan.wgsl).
//!
//! Results whose dtype packs several elements per word (f16, bf16, u8) are
//! computed into an f32 (floats) or i64 (integers) buffer and cast, so a
//! workgroup or invocation never shares an output word with another.

use super::elementwise::Operand;
use crate::backend::WgpuBackend;
use crate::codegen::per_word;
use crate::gpu::KernelSpec;
use crate::params::{merge_dims, Params};
use crate::storage::storage;
use tessera_tensor::{ArgReduceOp, DType, Layout, ReduceOp, Result, StorageRef, View};

/// The accumulator dtype a reduction of `dtype` writes before any cast.
pub(crate) fn wide(dtype: DType) -> DType {
    match (per_word(dtype), dtype.is_int()) {
        (1, _) => dtype,
        (_, true) => DType::I64,
        (_, false) => DType::F32,
    }
}

/// Keys one invocation compares in argsort (RUN in sort.wgsl).
const SORT_RUN: usize = 1024;

/// WGSL accumulator type, loader and zero of a dtype's domain.
fn domain(dtype: DType) -> (&'static str, &'static str, &'static str) {
    if dtype.is_int() {
        ("vec2<u32>", "a_i(offset_of(operand(0u), i))", "vec2<u32>(0u, 0u)")
    } else {
        ("f32", "a_f(offset_of(operand(0u), i))", "0.0")
    }
}

impl WgpuBackend {
    /// Casts `wide_out` (a `wide()` result) to `dtype` when they differ.
    pub(crate) fn narrow_to(&self, wide_out: StorageRef, dtype: DType) -> Result<StorageRef> {
        if wide_out.dtype() == dtype {
            return Ok(wide_out);
        }
        let layout = Layout::contiguous(vec![wide_out.len()]);
        self.cast_op(View { storage: wide_out.as_ref(), layout: &layout }, dtype)
    }

    /// Params over `src` seen as [outer, inner] with `dims` last.
    fn rows_params(&self, op: &'static str, src: &View, dims: &[usize]) -> Result<(Params, usize, usize)> {
        let rank = src.shape().len();
        let perm: Vec<usize> = (0..rank).filter(|d| !dims.contains(d)).chain(dims.iter().copied()).collect();
        let shape: Vec<usize> = perm.iter().map(|&d| src.shape()[d]).collect();
        let strides: Vec<usize> = perm.iter().map(|&d| src.layout.strides()[d]).collect();
        let inner: usize = dims.iter().map(|&d| src.shape()[d]).product();
        let outer: usize = shape.iter().product::<usize>() / inner.max(1);
        let outer =
            if inner == 0 { src.shape().iter().enumerate().filter(|(d, _)| !dims.contains(d)).map(|(_, s)| s).product() } else { outer };
        let (dims_m, strided) = merge_dims(&shape, &[(src.layout.offset(), &strides)]);
        let params = Params::new(op, outer * inner, &dims_m, &strided)?.extra(0, inner as u32).extra(1, outer as u32);
        Ok((params, outer, inner))
    }

    pub(crate) fn reduce_op(&self, op: ReduceOp, src: View, dims: &[usize]) -> Result<StorageRef> {
        let dtype = src.dtype();
        let (params, outer, _) = self.rows_params(op.name(), &src, dims)?;
        let acc_dtype = wide(dtype);
        let out = self.alloc(acc_dtype, outer)?;
        if outer > 0 {
            let (ty, load, _) = domain(dtype);
            // (accumulator, lift of x, combine, identity, finish)
            let df = "vec2<f32>";
            let (acc, lift, combine, identity, finish) = match (op, dtype.is_int()) {
                (ReduceOp::Sum, false) => {
                    (df, "vec2<f32>(x, 0.0)", "df_add(a, b)", "vec2<f32>(0.0, 0.0)", "out_put_f(row, r.x + r.y, &unused);")
                }
                (ReduceOp::Mean, false) => {
                    (df, "vec2<f32>(x, 0.0)", "df_add(a, b)", "vec2<f32>(0.0, 0.0)", "out_put_f(row, df_div(r, f32(inner)), &unused);")
                }
                (ReduceOp::Max, false) => (ty, "x", "max_f(a, b)", "inf_f32(true)", "out_put_f(row, r, &unused);"),
                (ReduceOp::Min, false) => (ty, "x", "min_f(a, b)", "inf_f32(false)", "out_put_f(row, r, &unused);"),
                (ReduceOp::Sum, true) => (ty, "x", "i64_add(a, b)", "vec2<u32>(0u, 0u)", "out_put_i(row, r, &unused);"),
                (ReduceOp::Max, true) => {
                    (ty, "x", "select(a, b, i64_lt(a, b))", "vec2<u32>(0u, 0x80000000u)", "out_put_i(row, r, &unused);")
                }
                (ReduceOp::Min, true) => {
                    (ty, "x", "select(a, b, i64_lt(b, a))", "vec2<u32>(0xffffffffu, 0x7fffffffu)", "out_put_i(row, r, &unused);")
                }
                (ReduceOp::Mean, true) => return Err(tessera_tensor::Error::UnsupportedDType { op: op.name(), dtype }),
            };
            let spec = KernelSpec::new("reduce")
                .input("a", dtype)
                .out(acc_dtype)
                .def("T", acc)
                .def("V", ty)
                .def("LIFT", lift)
                .def("LOAD", load)
                .def("COMBINE", combine)
                .def("IDENTITY", identity)
                .def("FINISH", finish);
            let groups = self.gpu.grid_1d(outer * crate::gpu::WG as usize)?;
            self.gpu.launch(&spec, params.words(), &[storage(&src)?.buffer(), self.buffer_of(&out)?], groups)?;
        }
        self.narrow_to(out, dtype)
    }

    pub(crate) fn arg_reduce_op(&self, op: ArgReduceOp, src: View, dim: usize) -> Result<StorageRef> {
        let dtype = src.dtype();
        let (params, outer, _) = self.rows_params("arg_reduce", &src, &[dim])?;
        let out = self.alloc(DType::I64, outer)?;
        if outer > 0 {
            let (ty, load, zero) = domain(dtype);
            let gt = if op == ArgReduceOp::ArgMax { "va > vb" } else { "va < vb" };
            let better = if dtype.is_int() {
                let lt = if op == ArgReduceOp::ArgMax { "i64_lt(vb, va)" } else { "i64_lt(va, vb)" };
                format!("if (i64_eq(va, vb)) {{ return a_first; }} return {lt};")
            } else {
                format!("if (is_nan(va) || is_nan(vb)) {{ if (is_nan(va) && is_nan(vb)) {{ return a_first; }} return is_nan(va); }} if (va == vb) {{ return a_first; }} return {gt};")
            };
            let spec = KernelSpec::new("argreduce")
                .input("a", dtype)
                .out(DType::I64)
                .def("V", ty)
                .def("LOAD", load)
                .def("IDENTITY", zero)
                .def("ARG_BETTER", better);
            let groups = self.gpu.grid_1d(outer * crate::gpu::WG as usize)?;
            self.gpu.launch(&spec, params.words(), &[storage(&src)?.buffer(), self.buffer_of(&out)?], groups)?;
        }
        Ok(out)
    }

    /// Params of a scan or sort along `dim`: the source's own layout
    /// (merged); len, inner and `third` (lines for scans, chunks per line
    /// for sorts) in the extras. Answers the params, elements and lines.
    fn scan_params(&self, op: &'static str, src: &View, dim: usize, third: usize) -> Result<(Params, usize, usize)> {
        let shape = src.shape();
        let n: usize = shape.iter().product();
        let len = shape[dim];
        let inner: usize = shape[dim + 1..].iter().product();
        let lines = n.checked_div(len).unwrap_or(0);
        let o = Operand::of(src)?;
        let (dims, strided) = merge_dims(shape, &[(o.offset, &o.strides)]);
        let third = if op == "cumsum" { lines } else { third };
        let params = Params::new(op, n, &dims, &strided)?.extra(0, len as u32).extra(1, inner as u32).extra(2, third as u32);
        Ok((params, n, lines))
    }

    pub(crate) fn cumsum_op(&self, src: View, dim: usize) -> Result<StorageRef> {
        let dtype = src.dtype();
        let (params, n, lines) = self.scan_params("cumsum", &src, dim, 0)?;
        let acc_dtype = wide(dtype);
        let out = self.alloc(acc_dtype, n)?;
        if lines > 0 {
            let (ty, load, zero) = domain(dtype);
            let (add, store) =
                if dtype.is_int() { ("i64_add(a, b)", "out_put_i(i, acc, &unused);") } else { ("a + b", "out_put_f(i, acc, &unused);") };
            let spec = KernelSpec::new("scan")
                .input("a", dtype)
                .out(acc_dtype)
                .def("T", ty)
                .def("IDENTITY", zero)
                .def("ADD", add)
                .def("STORE", store)
                .def("LOAD", load);
            let groups = self.gpu.grid_1d(lines * crate::gpu::WG as usize)?;
            self.gpu.launch(&spec, params.words(), &[storage(&src)?.buffer(), self.buffer_of(&out)?], groups)?;
        }
        self.narrow_to(out, dtype)
    }

    pub(crate) fn argsort_op(&self, src: View, dim: usize, descending: bool) -> Result<StorageRef> {
        let dtype = src.dtype();
        let len = src.shape()[dim];
        let chunks = len.div_ceil(SORT_RUN).max(1);
        let (params, n, _) = self.scan_params("argsort", &src, dim, chunks)?;
        let out = self.alloc(DType::I64, n)?;
        if n > 0 {
            let ranks = self.fill(DType::U32, n, 0.0)?;
            let load = if dtype.is_int() { "a_i" } else { "a_f" };
            let ty = if dtype.is_int() { "vec2<u32>" } else { "f32" };
            let before = match (dtype.is_int(), descending) {
                (true, false) => "return i64_lt(a, b);",
                (true, true) => "return i64_lt(b, a);",
                // NaN last ascending, first descending.
                (false, false) => "if (is_nan(a)) { return false; } if (is_nan(b)) { return true; } return a < b;",
                (false, true) => "if (is_nan(b)) { return false; } if (is_nan(a)) { return true; } return a > b;",
            };
            let spec = KernelSpec::new("sort")
                .input("a", dtype)
                .out(DType::I64)
                .scratch("ranks")
                .def("T", ty)
                .def("LOAD", load)
                .def("BEFORE", before);
            let bufs = [storage(&src)?.buffer(), self.buffer_of(&out)?, self.buffer_of(&ranks)?];
            self.gpu.launch_1d(&spec.clone().entry("count_main"), params.words(), &bufs, n * chunks)?;
            self.gpu.launch_1d(&spec.entry("scatter_main"), params.words(), &bufs, n)?;
        }
        Ok(out)
    }
}

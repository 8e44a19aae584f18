//! Unary, affine, binary, compare, where, cast and copy (elementwise.wgsl),
//! and fills (fill.wgsl).

use crate::backend::WgpuBackend;
use crate::codegen::per_word;
use crate::gpu::KernelSpec;
use crate::params::{merge_dims, Params};
use crate::storage::storage;
use tessera_tensor::{BinaryOp, CmpOp, DType, Result, StorageRef, UnaryOp, View};

/// Binding names of elementwise inputs, in order.
const NAMES: [&str; 3] = ["a", "b", "c"];

/// A kernel operand: a buffer and a strided layout over the kernel's shape.
/// The offset may wrap below zero (as a u32) when every element the kernel
/// reads lies above it (see `cat`).
pub(crate) struct Operand<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub dtype: DType,
    pub offset: usize,
    pub strides: Vec<usize>,
}

impl<'a> Operand<'a> {
    pub fn of(v: &View<'a>) -> Result<Operand<'a>> {
        Ok(Operand { buffer: storage(v)?.buffer(), dtype: v.dtype(), offset: v.layout.offset(), strides: v.layout.strides().to_vec() })
    }
}

/// WGSL of the float unary `op` applied to `x` (an f32), by the functions of
/// math.wgsl: the elementwise ops and the matmul epilogues both use it.
pub(crate) fn unary_expr(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Neg => "-x",
        UnaryOp::Abs => "abs(x)",
        UnaryOp::Exp => "exp_f(x)",
        UnaryOp::Log => "log_f(x)",
        UnaryOp::Sqrt => "sqrt_f(x)",
        UnaryOp::Rsqrt => "recip_f(sqrt_f(x))",
        UnaryOp::Recip => "recip_f(x)",
        UnaryOp::Square => "x * x",
        UnaryOp::Tanh => "tanh_f(x)",
        UnaryOp::Sigmoid => "sigmoid_f(x)",
        UnaryOp::Relu => "relu_f(x)",
        UnaryOp::Silu => "x * sigmoid_f(x)",
        UnaryOp::Gelu => "gelu_f(x)",
        UnaryOp::GeluTanh => "gelu_tanh_f(x)",
        UnaryOp::QuickGelu => "x * sigmoid_f(1.702 * x)",
        UnaryOp::Sin => "sin_f(x)",
        UnaryOp::Cos => "cos_f(x)",
    }
}

/// WGSL reading input `j` of the current element `i` in domain `dom`
/// (`f`, `i` or `b`).
fn arg(j: usize, dom: char) -> String {
    format!("{}_{dom}(offset_of(operand({j}u), i))", NAMES[j])
}

impl WgpuBackend {
    /// Runs `body` (WGSL storing element `i` through `acc`) over the output
    /// shape of `inputs` (all already broadcast to it).
    pub(crate) fn map(&self, op: &'static str, out: DType, inputs: &[View], body: String) -> Result<StorageRef> {
        let operands = inputs.iter().map(Operand::of).collect::<Result<Vec<_>>>()?;
        let dst = self.alloc(out, inputs[0].shape().iter().product())?;
        self.map_into(&dst, op, inputs[0].shape(), &operands, &[], body, "0u")?;
        Ok(dst)
    }

    /// Runs an elementwise kernel over `shape` writing the contiguous `dst`:
    /// `operands` bind as `a`, `b`, `c` with layouts over `shape`, `extras`
    /// fill `extra(0..)`, `init` starts each output word (see map.wgsl).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn map_into(
        &self,
        dst: &StorageRef,
        op: &'static str,
        shape: &[usize],
        operands: &[Operand],
        extras: &[u32],
        body: String,
        init: &str,
    ) -> Result<()> {
        let n: usize = shape.iter().product();
        if n == 0 {
            return Ok(());
        }
        let out = dst.dtype();
        let strides: Vec<(usize, &[usize])> = operands.iter().map(|o| (o.offset, o.strides.as_slice())).collect();
        let (dims, strided) = merge_dims(shape, &strides);
        let mut params = Params::new(op, n, &dims, &strided)?;
        for (k, &v) in extras.iter().enumerate() {
            params = params.extra(k, v);
        }
        let mut spec = KernelSpec::map("elementwise", init).lib("math").out(out).def("BODY", body);
        let mut bufs = Vec::new();
        for (j, o) in operands.iter().enumerate() {
            spec = spec.input(NAMES[j], o.dtype);
            bufs.push(o.buffer);
        }
        bufs.push(self.buffer_of(dst)?);
        self.gpu.launch_1d(&spec, params.words(), &bufs, n.div_ceil(per_word(out) as usize))
    }

    pub(crate) fn unary_op(&self, op: UnaryOp, src: View) -> Result<StorageRef> {
        let dt = src.dtype();
        let body = if dt.is_int() {
            let x = arg(0, 'i');
            let e = match op {
                UnaryOp::Neg => format!("i64_neg({x})"),
                UnaryOp::Abs => format!("i64_abs({x})"),
                UnaryOp::Square => format!("i64_mul({x}, {x})"),
                _ => format!("select({x}, vec2<u32>(0u, 0u), i64_is_neg({x}))"),
            };
            format!("out_put_i(i, {e}, acc);")
        } else {
            format!("let x = {}; out_put_f(i, {}, acc);", arg(0, 'f'), unary_expr(op))
        };
        self.map(op.name(), dt, &[src], body)
    }

    pub(crate) fn affine_op(&self, src: View, mul: f64, add: f64) -> Result<StorageRef> {
        let body = format!(
            "out_put_f(i, {} * bitcast<f32>({}u) + bitcast<f32>({}u), acc);",
            arg(0, 'f'),
            (mul as f32).to_bits(),
            (add as f32).to_bits()
        );
        self.map("affine", src.dtype(), &[src], body)
    }

    pub(crate) fn binary_op(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<StorageRef> {
        let dt = lhs.dtype();
        let body = if dt.is_int() {
            let e = match op {
                BinaryOp::Add => "i64_add(x, y)",
                BinaryOp::Sub => "i64_sub(x, y)",
                BinaryOp::Mul => "i64_mul(x, y)",
                BinaryOp::Div => "i64_div(x, y)",
                BinaryOp::Maximum => "select(x, y, i64_lt(x, y))",
                BinaryOp::Minimum => "select(x, y, i64_lt(y, x))",
                // The core admits pow on floats only.
                BinaryOp::Pow => return Err(tessera_tensor::Error::UnsupportedDType { op: op.name(), dtype: dt }),
            };
            format!("let x = {}; let y = {}; out_put_i(i, {e}, acc);", arg(0, 'i'), arg(1, 'i'))
        } else {
            let e = match op {
                BinaryOp::Add => "x + y",
                BinaryOp::Sub => "x - y",
                BinaryOp::Mul => "x * y",
                BinaryOp::Div => "div_f(x, y)",
                BinaryOp::Maximum => "max_f(x, y)",
                BinaryOp::Minimum => "min_f(x, y)",
                BinaryOp::Pow => "pow_f(x, y)",
            };
            format!("let x = {}; let y = {}; out_put_f(i, {e}, acc);", arg(0, 'f'), arg(1, 'f'))
        };
        self.map(op.name(), dt, &[lhs, rhs], body)
    }

    pub(crate) fn compare_op(&self, op: CmpOp, lhs: View, rhs: View) -> Result<StorageRef> {
        let body = if lhs.dtype().is_int() {
            let e = match op {
                CmpOp::Eq => "i64_eq(x, y)",
                CmpOp::Ne => "!i64_eq(x, y)",
                CmpOp::Lt => "i64_lt(x, y)",
                CmpOp::Le => "!i64_lt(y, x)",
                CmpOp::Gt => "i64_lt(y, x)",
                CmpOp::Ge => "!i64_lt(x, y)",
            };
            format!("let x = {}; let y = {}; let r = {e};", arg(0, 'i'), arg(1, 'i'))
        } else {
            let e = match op {
                CmpOp::Eq => "x == y",
                CmpOp::Ne => "x != y",
                CmpOp::Lt => "x < y",
                CmpOp::Le => "x <= y",
                CmpOp::Gt => "x > y",
                CmpOp::Ge => "x >= y",
            };
            // Any comparison with NaN is false, except `!=`.
            let nan = if op == CmpOp::Ne { "true" } else { "false" };
            format!("let x = {}; let y = {}; let r = select({e}, {nan}, is_nan(x) || is_nan(y));", arg(0, 'f'), arg(1, 'f'))
        };
        self.map(op.name(), DType::U8, &[lhs, rhs], format!("{body} out_put_b(i, vec2<u32>(select(0u, 1u, r), 0u), acc);"))
    }

    pub(crate) fn where_op(&self, cond: View, on_true: View, on_false: View) -> Result<StorageRef> {
        let body = format!("let c = {}; out_put_b(i, select({}, {}, c.x != 0u || c.y != 0u), acc);", arg(0, 'i'), arg(2, 'b'), arg(1, 'b'));
        self.map("where", on_true.dtype(), &[cond, on_true, on_false], body)
    }

    pub(crate) fn cast_op(&self, src: View, to: DType) -> Result<StorageRef> {
        let from = src.dtype();
        let body = if from == to {
            format!("out_put_b(i, {}, acc);", arg(0, 'b'))
        } else if from.is_int() && to.is_int() {
            format!("out_put_i(i, {}, acc);", arg(0, 'i'))
        } else {
            format!("out_put_f(i, {}, acc);", arg(0, 'f'))
        };
        self.map(if from == to { "copy" } else { "cast" }, to, &[src], body)
    }

    /// `len` elements of `dtype` equal to `value`.
    pub(crate) fn fill(&self, dtype: DType, len: usize, value: f64) -> Result<StorageRef> {
        let dst = self.alloc(dtype, len)?;
        let words = crate::codegen::words_for(dtype, len);
        if words == 0 {
            return Ok(dst);
        }
        // The element's bytes, by the core's own conversion, replicated.
        let bytes = tessera_tensor::dtype::f64_to_bytes(dtype, &[value]);
        let pattern: [u32; 2] = match bytes.len() {
            1 => [u32::from_le_bytes([bytes[0]; 4]); 2],
            2 => {
                let h = u16::from_le_bytes([bytes[0], bytes[1]]) as u32;
                [h | (h << 16); 2]
            }
            4 => [u32::from_le_bytes(bytes[..4].try_into().unwrap()); 2],
            _ => [u32::from_le_bytes(bytes[..4].try_into().unwrap()), u32::from_le_bytes(bytes[4..8].try_into().unwrap())],
        };
        let params = Params::new("full", words, &[], &[])?.extra(0, pattern[0]).extra(1, pattern[1]);
        let buf = self.buffer_of(&dst)?;
        self.gpu.launch_1d(&KernelSpec::new("fill").out(DType::U32), params.words(), &[buf], words)?;
        Ok(dst)
    }
}

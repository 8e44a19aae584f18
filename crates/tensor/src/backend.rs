//! The `Backend` trait: what a device must provide for tensors to live and
//! compute on it.
//!
//! The core validates every argument (shapes, dtypes, devices) before it
//! calls a backend, so a backend receives only well-formed requests: layouts
//! already broadcast to the output shape, dims already resolved, dtypes
//! already checked against [`Backend::supports`]. Every op writes a new,
//! contiguous storage.
//!
//! The op set has two tiers. Primitive ops must be implemented. Fused ops
//! (matmul with a bias and activation epilogue, residual add + norm,
//! softmax, norms, rope, conv2d, group norm, upsampling, attention) have a
//! default that answers `Ok(None)`, which makes the core run the op's
//! composition from primitives (see [`crate::composed`]). A port to a new
//! device can therefore start with the primitives alone and add fused kernels
//! one by one; the conformance suite checks each against its composition.

use crate::{DType, Layout, Result};
use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

/// A backend's buffer of elements of one dtype.
pub trait BackendStorage: Any + Send + Sync + Debug {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn dtype(&self) -> DType;
    /// Number of elements.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub type StorageRef = Arc<dyn BackendStorage>;

/// A strided view of a storage: the operand type of every backend op.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub storage: &'a dyn BackendStorage,
    pub layout: &'a Layout,
}

impl View<'_> {
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }
    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Recip,
    Square,
    Tanh,
    Sigmoid,
    Relu,
    Silu,
    /// GELU with the exact erf: x * 0.5 * (1 + erf(x / sqrt 2)).
    Gelu,
    /// GELU's tanh approximation: 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))).
    GeluTanh,
    /// x * sigmoid(1.702 x), as in OpenAI's CLIP.
    QuickGelu,
    Sin,
    Cos,
}

impl UnaryOp {
    pub const ALL: [UnaryOp; 17] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Recip,
        UnaryOp::Square,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::Silu,
        UnaryOp::Gelu,
        UnaryOp::GeluTanh,
        UnaryOp::QuickGelu,
        UnaryOp::Sin,
        UnaryOp::Cos,
    ];

    /// Ops that are defined on integers too (with wrapping semantics).
    pub fn is_integer_op(self) -> bool {
        matches!(self, UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Square | UnaryOp::Relu)
    }

    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Recip => "recip",
            UnaryOp::Square => "square",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::Silu => "silu",
            UnaryOp::Gelu => "gelu",
            UnaryOp::GeluTanh => "gelu_tanh",
            UnaryOp::QuickGelu => "quick_gelu",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
    Pow,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 7] =
        [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Maximum, BinaryOp::Minimum, BinaryOp::Pow];

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Pow => "pow",
        }
    }
}

/// Comparisons; the result dtype is `U8` holding 0 or 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub const ALL: [CmpOp; 6] = [CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge];
    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }
    }
}

/// Reductions over a set of dims; output keeps reduced dims with size 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
}

impl ReduceOp {
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        }
    }
}

/// Index of the extreme value along one dim (the first one on ties); `I64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgReduceOp {
    ArgMax,
    ArgMin,
}

/// Convolution geometry (two spatial dims).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams { stride: (1, 1), padding: (0, 0), dilation: (1, 1), groups: 1 }
    }
}

impl Conv2dParams {
    /// Output spatial size for an input of `(h, w)` and kernel `(kh, kw)`;
    /// `None` when the kernel does not fit.
    pub fn output_size(&self, input: (usize, usize), kernel: (usize, usize)) -> Option<(usize, usize)> {
        let one = |i: usize, k: usize, s: usize, p: usize, d: usize| -> Option<usize> {
            let span = d * (k - 1) + 1;
            let padded = i + 2 * p;
            if k == 0 || s == 0 || d == 0 || padded < span {
                None
            } else {
                Some((padded - span) / s + 1)
            }
        };
        Some((
            one(input.0, kernel.0, self.stride.0, self.padding.0, self.dilation.0)?,
            one(input.1, kernel.1, self.stride.1, self.padding.1, self.dilation.1)?,
        ))
    }
}

/// Which normalisation a fused [`Backend::add_norm`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NormKind {
    /// `(x - mean) / sqrt(var + eps) * w + b` (biased variance).
    Layer,
    /// `x / sqrt(mean(x^2) + eps) * w`.
    Rms,
}

/// How rotary embeddings pair the features of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RopeStyle {
    /// Pairs (i, i + d/2): GPT-NeoX / HF Llama "rotate_half".
    HalfSplit,
    /// Pairs (2i, 2i + 1): GPT-J / original RoFormer.
    Interleaved,
}

/// Scaled dot-product attention arguments beyond q, k, v.
#[derive(Clone, Copy, Debug)]
pub struct AttentionParams {
    pub scale: f64,
    /// Causal masking aligned to the bottom-right: query `i` of `tq` sees keys
    /// `0..=i + (tk - tq)` (the usual rule with a KV cache; the plain lower
    /// triangle when `tq == tk`). A query that sees no key at all (by the
    /// causal rule or a fully `-inf` mask row) gets a zero output.
    pub causal: bool,
}

/// Properties of a device, shown by `tessera info`.
#[derive(Clone, Debug, Default)]
pub struct DeviceInfo {
    /// e.g. "cpu", "cuda:0", "wgpu:1".
    pub name: String,
    /// What the hardware is, e.g. the CPU model or GPU adapter name.
    pub description: String,
    /// Further key/value properties (memory, SIMD level, threads, driver).
    pub properties: Vec<(String, String)>,
}

/// A compute device. See the module docs for the contract.
pub trait Backend: Send + Sync + Debug {
    /// The device's name, e.g. "cpu" or "cuda:0".
    fn name(&self) -> String;
    fn info(&self) -> DeviceInfo;
    /// Which dtypes this device can store.
    fn supports(&self, dtype: DType) -> bool;
    /// Waits until all queued work is done.
    fn synchronize(&self) -> Result<()>;
    /// The largest buffer one tensor may occupy on this device, when the
    /// device has such a limit (a GPU API's storage-binding size); `None`
    /// when only memory bounds it. Layers hold larger weights as row blocks
    /// (see tessera-nn's `RowBlocks`).
    fn max_buffer_bytes(&self) -> Option<usize> {
        None
    }

    /// Turns per-kernel device timing on or off; answers whether it is on
    /// (devices without timers answer `false`).
    fn set_kernel_timing(&self, _on: bool) -> bool {
        false
    }
    /// Per kernel since the last call: name, device seconds, launches.
    fn take_kernel_times(&self) -> Vec<(String, f64, u64)> {
        Vec::new()
    }

    // ---- storage and transfers ----
    /// A storage holding `bytes` (little-endian packed elements of `dtype`).
    fn upload(&self, dtype: DType, bytes: &[u8]) -> Result<StorageRef>;
    /// The whole storage as little-endian bytes (synchronises).
    fn download(&self, src: &dyn BackendStorage) -> Result<Vec<u8>>;
    /// `len` elements all equal to `value` (converted to `dtype`).
    fn full(&self, dtype: DType, len: usize, value: f64) -> Result<StorageRef>;

    // ---- primitive ops ----
    /// The view's elements in logical order, in a new contiguous storage.
    fn copy(&self, src: View) -> Result<StorageRef>;
    fn cast(&self, src: View, to: DType) -> Result<StorageRef>;
    fn unary(&self, op: UnaryOp, src: View) -> Result<StorageRef>;
    /// `src * mul + add`.
    fn affine(&self, src: View, mul: f64, add: f64) -> Result<StorageRef>;
    /// Both views already have the output shape (broadcast by strides).
    fn binary(&self, op: BinaryOp, lhs: View, rhs: View) -> Result<StorageRef>;
    fn compare(&self, op: CmpOp, lhs: View, rhs: View) -> Result<StorageRef>;
    /// `cond != 0 ? on_true : on_false`; all three have the output shape.
    fn where_cond(&self, cond: View, on_true: View, on_false: View) -> Result<StorageRef>;
    /// Reduces over `dims` (sorted, unique); the output shape is the input's
    /// with those dims set to 1.
    fn reduce(&self, op: ReduceOp, src: View, dims: &[usize]) -> Result<StorageRef>;
    fn arg_reduce(&self, op: ArgReduceOp, src: View, dim: usize) -> Result<StorageRef>;
    fn cumsum(&self, src: View, dim: usize) -> Result<StorageRef>;
    /// Stable sort order along `dim` as `I64` indices.
    fn argsort(&self, src: View, dim: usize, descending: bool) -> Result<StorageRef>;
    /// `lhs` is `[..., m, k]`, `rhs` is `[..., k, n]` with equal batch dims
    /// (broadcast by strides; any strides, so transposes are free). Output
    /// `[..., m, n]`.
    fn matmul(&self, lhs: View, rhs: View) -> Result<StorageRef>;
    /// Rows of `src` along `dim` picked by the integer `ids` (1-D); the output
    /// has `ids.len()` at `dim`.
    fn index_select(&self, src: View, ids: View, dim: usize) -> Result<StorageRef>;
    /// `out[i][j][k] = src[i][ids[i][j][k]][k]` for dim 1, and so on; the
    /// output has the shape of `ids` (same rank as `src`).
    fn gather(&self, src: View, ids: View, dim: usize) -> Result<StorageRef>;
    /// Concatenation along `dim` of views whose other dims agree.
    fn cat(&self, srcs: &[View], dim: usize) -> Result<StorageRef>;

    // ---- fused ops: `Ok(None)` means "use the composed reference" ----
    /// `act(lhs @ rhs + bias)`: the operands as in
    /// [`matmul`](Backend::matmul), `bias` `[n]` added to every output row
    /// (a layer with its bias), then `act` (a float [`UnaryOp`]) applied to
    /// every element, all in the GEMM's epilogue; `act` `None` is the plain
    /// layer. The result is rounded to the output dtype once.
    fn matmul_bias(&self, _lhs: View, _rhs: View, _bias: View, _act: Option<UnaryOp>) -> Result<Option<StorageRef>> {
        Ok(None)
    }
    /// `(norm(x + residual), x + residual)` over the last dim: a residual
    /// add followed by the next block's norm, in one pass. `x` and
    /// `residual` have the same shape (`residual` already broadcast by
    /// strides); `w` (and, for [`NormKind::Layer`], `b`) have the last dim's
    /// size. The sum is rounded to the output dtype before it is normalised,
    /// as the unfused `add` then `norm` would.
    #[allow(clippy::too_many_arguments)]
    fn add_norm(
        &self,
        _x: View,
        _residual: View,
        _w: Option<View>,
        _b: Option<View>,
        _eps: f64,
        _kind: NormKind,
    ) -> Result<Option<(StorageRef, StorageRef)>> {
        Ok(None)
    }
    /// Softmax (or log-softmax) over the last dim.
    fn softmax_last(&self, _src: View, _log: bool) -> Result<Option<StorageRef>> {
        Ok(None)
    }
    /// Layer norm over the last dim; weight and bias have the last dim's size.
    fn layer_norm(&self, _x: View, _w: Option<View>, _b: Option<View>, _eps: f64) -> Result<Option<StorageRef>> {
        Ok(None)
    }
    /// RMS norm over the last dim.
    fn rms_norm(&self, _x: View, _w: Option<View>, _eps: f64) -> Result<Option<StorageRef>> {
        Ok(None)
    }
    /// Rotary embedding of `x` `[..., t, d]` with `cos`/`sin` `[t, r/2]`
    /// (`r <= d` rotated features; the rest pass through).
    fn rope(&self, _x: View, _cos: View, _sin: View, _style: RopeStyle) -> Result<Option<StorageRef>> {
        Ok(None)
    }
    /// `x` `[n, c, h, w]`, `w` `[o, c/groups, kh, kw]`, `bias` `[o]`.
    fn conv2d(&self, _x: View, _w: View, _bias: Option<View>, _p: &Conv2dParams) -> Result<Option<StorageRef>> {
        Ok(None)
    }
    /// `x` `[n, c, ...]`, normalised per (n, group); weight/bias `[c]`.
    fn group_norm(&self, _x: View, _groups: usize, _w: Option<View>, _b: Option<View>, _eps: f64) -> Result<Option<StorageRef>> {
        Ok(None)
    }
    /// Nearest-neighbour resize of `[n, c, h, w]` to `[n, c, oh, ow]` (source
    /// index `floor(dst * in / out)`, as PyTorch's `nearest`).
    fn upsample_nearest2d(&self, _x: View, _out_h: usize, _out_w: usize) -> Result<Option<StorageRef>> {
        Ok(None)
    }
    /// Writes `src` over the region `dst_layout` of `dst` (same shape and
    /// dtype), in place, answering whether it did; `Ok(false)` makes the
    /// core build the result by copying instead. The core calls this only
    /// with a storage no tensor but the one being written refers to, and a
    /// region of distinct elements inside it, so the write changes nothing
    /// any other tensor can observe: storages stay immutable to their
    /// readers. A backend that keeps data derived from a storage (the CPU's
    /// packed copies) must drop it here.
    fn write_into(&self, _dst: &mut dyn BackendStorage, _dst_layout: &Layout, _src: View) -> Result<bool> {
        Ok(false)
    }
    /// Whether [`write_into`](Backend::write_into) writes in place (so that
    /// growing a buffer into reserved capacity is cheaper than
    /// concatenating).
    fn writes_in_place(&self) -> bool {
        false
    }
    /// `q` `[b, hq, tq, d]`, `k` `[b, hkv, tk, d]`, `v` `[b, hkv, tk, dv]`
    /// with `hq % hkv == 0`; `mask` additive, already broadcast to
    /// `[b, hq, tq, tk]`. Output `[b, hq, tq, dv]`.
    fn attention(&self, _q: View, _k: View, _v: View, _mask: Option<View>, _p: &AttentionParams) -> Result<Option<StorageRef>> {
        Ok(None)
    }
}

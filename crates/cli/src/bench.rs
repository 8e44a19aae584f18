//! The benchmark harness behind `tessera bench`.
//!
//! Each case builds its inputs from a seed, checks one result against a
//! reference before any timing (a fast wrong kernel is not a result), warms
//! up, then times runs that alternate between two independently generated
//! input sets so no run reuses the previous run's data. Time is taken from
//! launch to `synchronize()`, so asynchronous devices are timed honestly.
//! Reported: median and best time, GFLOP/s and GB/s from the case's FLOP and
//! byte counts (bytes = inputs read + output written, once).
//!
//! Two suites: [`default_cases`] (`--suite core`), one case per core op, and
//! [`peer_cases`] (`--suite peers`), the GEMM, GEMV and attention shapes that
//! benches/compare_cpu.py also times with numpy and PyTorch. Results print as
//! a table ([`format_table`]) or as one JSON object per line ([`result_json`]),
//! whose numeric fields ([`Work`]) let another tool redo the same work.

use serde_json::{json, Value};
use std::fmt::Write;
use std::time::{Duration, Instant};
use tessera_tensor::{composed, scaled_dot_product_attention, AttentionParams, Conv2dParams, DType, Device, Result, Tensor};

type Inputs = Vec<Tensor>;
type MakeFn = Box<dyn Fn(u64) -> Result<Inputs>>;
type RunFn = Box<dyn Fn(&[Tensor]) -> Result<Tensor>>;
type CheckFn = Box<dyn Fn(&[Tensor], &Tensor) -> std::result::Result<(), String>>;

/// The problem a case solves, in numbers, so that another tool (a peer
/// library) can reproduce exactly the same work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// `[m, k] @ [k, n]`; with `b_transposed` the right operand is a
    /// contiguous `[n, k]` weight viewed as `[k, n]` (`x @ w.T`).
    Matmul { m: usize, k: usize, n: usize, b_transposed: bool },
    /// Scaled dot-product attention over q, k, v of shape `[b, h, t, d]`.
    Attention { b: usize, h: usize, t: usize, d: usize, causal: bool },
    /// Any other op: described by its shape text only.
    Other,
}

/// One benchmark: an op on fixed shapes and dtype.
pub struct BenchCase {
    pub op: String,
    pub shape: String,
    pub dtype: DType,
    pub work: Work,
    pub flops: f64,
    pub bytes: f64,
    make: MakeFn,
    run: RunFn,
    check: CheckFn,
}

/// What one case measured.
#[derive(Clone, Debug)]
pub struct BenchResult {
    pub op: String,
    pub shape: String,
    pub dtype: DType,
    pub work: Work,
    pub iters: usize,
    pub median: Duration,
    pub best: Duration,
    pub gflops: f64,
    pub gbps: f64,
    /// The case's FLOP and byte counts per run (see [`BenchCase`]).
    pub flops: f64,
    pub bytes: f64,
    /// Device time per run by kernel (seconds), where the device has
    /// kernel timers (`Backend::set_kernel_timing`).
    pub kernels: Vec<(String, f64)>,
}

impl BenchResult {
    /// Total device time per run, where measured.
    pub fn device_time(&self) -> Option<f64> {
        (!self.kernels.is_empty()).then(|| self.kernels.iter().map(|k| k.1).sum())
    }

    /// Arithmetic intensity: FLOP per byte moved (0 for a pure copy).
    pub fn intensity(&self) -> f64 {
        self.flops / self.bytes.max(1.0)
    }

    /// GFLOP/s of the fastest run (the table's `gflops` is the median's).
    pub fn best_gflops(&self) -> f64 {
        self.flops / self.best.as_secs_f64().max(1e-12) / 1e9
    }

    /// GB/s of the fastest run.
    pub fn best_gbps(&self) -> f64 {
        self.bytes / self.best.as_secs_f64().max(1e-12) / 1e9
    }
}

/// How long to spend per case.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub warmup: usize,
    pub min_iters: usize,
    pub max_iters: usize,
    pub budget: Duration,
}

impl BenchOptions {
    /// The options of a model benchmark: `warmup` runs, then at least
    /// `min_iters` (at least 1) and up to 20 within `budget_ms`.
    pub fn for_model(warmup: usize, min_iters: usize, budget_ms: u64) -> Self {
        BenchOptions { warmup, min_iters: min_iters.max(1), max_iters: 20, budget: Duration::from_millis(budget_ms) }
    }
}

/// The run-count flags of the model benchmarks whose cases take minutes
/// (`tessera janus bench`, `tessera mmada bench`): one timed run by default.
#[derive(clap::Args)]
pub struct LongRunArgs {
    /// Warm-up runs per case.
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Least timed runs per case.
    #[arg(long, default_value_t = 1)]
    pub min_iters: usize,
    /// Time budget per case, in milliseconds (more runs while within it, up to 20).
    #[arg(long, default_value_t = 0)]
    pub budget_ms: u64,
}

impl LongRunArgs {
    /// The benchmark options the flags give.
    pub fn options(&self) -> BenchOptions {
        BenchOptions::for_model(self.warmup, self.min_iters, self.budget_ms)
    }
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { warmup: 2, min_iters: 3, max_iters: 50, budget: Duration::from_millis(1500) }
    }
}

/// Problem sizes: `Small` for a quick look (and tests), `Full` for numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Small,
    Full,
}

/// Which set of cases to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Suite {
    /// One case per core op ([`default_cases`]).
    #[default]
    Core,
    /// GEMM, GEMV and attention on the shapes compared with numpy and
    /// PyTorch ([`peer_cases`]).
    Peers,
}

/// The cases of `suite` at `size`.
pub fn suite_cases(device: &Device, suite: Suite, size: Size) -> Vec<BenchCase> {
    match suite {
        Suite::Core => default_cases(device, size),
        Suite::Peers => peer_cases(device, size),
    }
}

impl BenchCase {
    /// Whether `filter` occurs in the op name, the shape or the dtype name.
    pub fn matches(&self, filter: &str) -> bool {
        self.op.contains(filter) || self.shape.contains(filter) || self.dtype.to_string() == filter
    }
}

/// Normalised mean squared error of `out` against `reference`.
pub fn nmse(out: &[f64], reference: &[f64]) -> f64 {
    let num: f64 = out.iter().zip(reference).map(|(a, b)| (a - b).powi(2)).sum();
    let den: f64 = reference.iter().map(|b| b * b).sum();
    if out.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    num / den.max(1e-30)
}

fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-9,
        DType::F16 => 1e-5,
        _ => 1e-4,
    }
}

fn check_close(what: &str, out: &[f64], reference: &[f64], dtype: DType) -> std::result::Result<(), String> {
    let e = nmse(out, reference);
    if e <= tolerance(dtype) {
        Ok(())
    } else {
        Err(format!("{what}: result differs from the reference (nmse {e:.3e} > {:.1e})", tolerance(dtype)))
    }
}

fn err(e: tessera_tensor::Error) -> String {
    e.to_string()
}

/// Checks a fused op's result against its composition on the same device.
fn against(reference: impl Fn(&[Tensor]) -> Result<Tensor> + 'static, dtype: DType, what: &'static str) -> CheckFn {
    Box::new(move |inp, out| {
        let r = reference(inp).map_err(err)?;
        check_close(what, &out.to_f64_vec().map_err(err)?, &r.to_f64_vec().map_err(err)?, dtype)
    })
}

fn randn(device: &Device, dtype: DType, shape: &[usize], seed: u64) -> Result<Tensor> {
    Tensor::randn(seed, 0.0, 1.0, shape.to_vec(), dtype, device)
}

/// `[m, k] @ [k, n]` (or `[k, n]` given transposed, as `[n, k]^T`).
pub fn matmul_case(device: &Device, dtype: DType, m: usize, k: usize, n: usize, rhs_transposed: bool) -> BenchCase {
    let d = device.clone();
    let es = dtype.size_in_bytes() as f64;
    BenchCase {
        op: if rhs_transposed { "matmul (B^T)".into() } else { "matmul".into() },
        shape: format!("{m}x{k}x{n}"),
        dtype,
        work: Work::Matmul { m, k, n, b_transposed: rhs_transposed },
        flops: 2.0 * (m * n * k) as f64,
        bytes: es * (m * k + k * n + m * n) as f64,
        make: Box::new(move |seed| {
            let a = randn(&d, dtype, &[m, k], seed)?;
            let b = if rhs_transposed { randn(&d, dtype, &[n, k], seed + 1)?.t()? } else { randn(&d, dtype, &[k, n], seed + 1)? };
            Ok(vec![a, b])
        }),
        run: Box::new(|i| i[0].matmul(&i[1])),
        check: Box::new(move |i, out| {
            // 64 sampled output elements against f64 dot products.
            let (a, b, o) = (i[0].to_f64_vec().map_err(err)?, i[1].to_f64_vec().map_err(err)?, out.to_f64_vec().map_err(err)?);
            let (mut got, mut want) = (Vec::new(), Vec::new());
            for s in 0..64usize {
                let (r, c) = ((s * 7919) % m, (s * 104_729) % n);
                want.push((0..k).map(|p| a[r * k + p] * b[p * n + c]).sum::<f64>());
                got.push(o[r * n + c]);
            }
            check_close("matmul", &got, &want, dtype)
        }),
    }
}

fn elementwise_case(device: &Device, dtype: DType, n: usize, op: &'static str) -> BenchCase {
    let d = device.clone();
    let es = dtype.size_in_bytes() as f64;
    let inputs = if op == "add" { 2 } else { 1 };
    BenchCase {
        op: op.into(),
        shape: n.to_string(),
        dtype,
        work: Work::Other,
        flops: n as f64,
        bytes: es * ((inputs + 1) * n) as f64,
        make: Box::new(move |seed| (0..inputs).map(|j| randn(&d, dtype, &[n], seed + j as u64)).collect()),
        run: Box::new(move |i| match op {
            "add" => i[0].add(&i[1]),
            "gelu" => i[0].gelu(),
            _ => i[0].exp(),
        }),
        check: Box::new(move |i, out| {
            let a = i[0].narrow(0, 0, 4096.min(n)).map_err(err)?.to_f64_vec().map_err(err)?;
            let b = match i.get(1) {
                Some(t) => t.narrow(0, 0, 4096.min(n)).map_err(err)?.to_f64_vec().map_err(err)?,
                None => a.clone(),
            };
            let want: Vec<f64> = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| match op {
                    "add" => x + y,
                    "gelu" => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
                    _ => x.exp(),
                })
                .collect();
            let got = out.narrow(0, 0, 4096.min(n)).map_err(err)?.to_f64_vec().map_err(err)?;
            check_close(op, &got, &want, dtype)
        }),
    }
}

fn sum_case(device: &Device, dtype: DType, rows: usize, cols: usize) -> BenchCase {
    let d = device.clone();
    BenchCase {
        op: "sum (last dim)".into(),
        shape: format!("{rows}x{cols}"),
        dtype,
        work: Work::Other,
        flops: (rows * cols) as f64,
        bytes: dtype.size_in_bytes() as f64 * (rows * cols + rows) as f64,
        make: Box::new(move |seed| Ok(vec![randn(&d, dtype, &[rows, cols], seed)?])),
        run: Box::new(|i| i[0].sum(&[-1], false)),
        check: Box::new(move |i, out| {
            let x = i[0].narrow(0, 0, 4.min(rows)).map_err(err)?.to_f64_vec().map_err(err)?;
            let want: Vec<f64> = x.chunks(cols).map(|r| r.iter().sum()).collect();
            check_close("sum", &out.narrow(0, 0, 4.min(rows)).map_err(err)?.to_f64_vec().map_err(err)?, &want, dtype)
        }),
    }
}

fn transpose_copy_case(device: &Device, dtype: DType, n: usize) -> BenchCase {
    let d = device.clone();
    BenchCase {
        op: "copy (transpose)".into(),
        shape: format!("{n}x{n}"),
        dtype,
        work: Work::Other,
        flops: 0.0,
        bytes: 2.0 * dtype.size_in_bytes() as f64 * (n * n) as f64,
        make: Box::new(move |seed| Ok(vec![randn(&d, dtype, &[n, n], seed)?])),
        run: Box::new(|i| i[0].t()?.contiguous()),
        check: Box::new(move |i, out| {
            let x = i[0].to_f64_vec().map_err(err)?;
            let o = out.to_f64_vec().map_err(err)?;
            let bad = (0..n.min(64)).any(|r| (0..n).any(|c| o[r * n + c] != x[c * n + r]));
            if bad {
                Err("transpose copy: wrong element".into())
            } else {
                Ok(())
            }
        }),
    }
}

/// A plain contiguous copy of `n` elements: bytes read + written, no FLOPs
/// (the bandwidth ceiling of `tessera bench --plot`).
pub fn copy_case(device: &Device, dtype: DType, n: usize) -> BenchCase {
    let d = device.clone();
    BenchCase {
        op: "copy".into(),
        shape: n.to_string(),
        dtype,
        work: Work::Other,
        flops: 0.0,
        bytes: 2.0 * dtype.size_in_bytes() as f64 * n as f64,
        make: Box::new(move |seed| Ok(vec![randn(&d, dtype, &[n], seed)?])),
        run: Box::new(|i| i[0].copy()),
        check: Box::new(move |i, out| {
            let head = |t: &Tensor| t.narrow(0, 0, 4096.min(n))?.to_f64_vec();
            if head(&i[0]).map_err(err)? == head(out).map_err(err)? {
                Ok(())
            } else {
                Err("copy: wrong element".into())
            }
        }),
    }
}

fn row_op_case(device: &Device, dtype: DType, rows: usize, cols: usize, op: &'static str) -> BenchCase {
    let d = device.clone();
    let es = dtype.size_in_bytes() as f64;
    let with_params = op != "softmax";
    BenchCase {
        op: op.into(),
        shape: format!("{rows}x{cols}"),
        dtype,
        work: Work::Other,
        flops: 5.0 * (rows * cols) as f64,
        bytes: es * (2 * rows * cols) as f64,
        make: Box::new(move |seed| {
            let mut v = vec![randn(&d, dtype, &[rows, cols], seed)?];
            if with_params {
                v.push(randn(&d, dtype, &[cols], seed + 1)?);
                v.push(randn(&d, dtype, &[cols], seed + 2)?);
            }
            Ok(v)
        }),
        run: Box::new(move |i| match op {
            "softmax" => i[0].softmax(-1),
            "layer_norm" => i[0].layer_norm(Some(&i[1]), Some(&i[2]), 1e-5),
            _ => i[0].rms_norm(Some(&i[1]), 1e-6),
        }),
        check: against(
            move |i| match op {
                "softmax" => composed::softmax_last(&i[0], false),
                "layer_norm" => composed::layer_norm(&i[0], Some(&i[1]), Some(&i[2]), 1e-5),
                _ => composed::rms_norm(&i[0], Some(&i[1]), 1e-6),
            },
            dtype,
            op,
        ),
    }
}

/// Query rows of batch 0, head 0 that an attention check compares: the
/// composed reference materialises `rows x t` scores, so long sequences are
/// checked on their last rows only.
const ATTENTION_CHECK_ROWS: usize = 256;

/// Attention `[b, h, t, d]`, causal or not.
pub fn attention_case(device: &Device, dtype: DType, b: usize, h: usize, t: usize, hd: usize, causal: bool) -> BenchCase {
    let d = device.clone();
    let es = dtype.size_in_bytes() as f64;
    let frac = if causal { 0.5 } else { 1.0 };
    BenchCase {
        op: if causal { "attention (causal)".into() } else { "attention".into() },
        shape: format!("b{b} h{h} t{t} d{hd}"),
        dtype,
        work: Work::Attention { b, h, t, d: hd, causal },
        flops: frac * 4.0 * (b * h * t * t * hd) as f64,
        bytes: es * (4 * b * h * t * hd) as f64,
        make: Box::new(move |seed| (0..3).map(|j| randn(&d, dtype, &[b, h, t, hd], seed + j)).collect()),
        run: Box::new(move |i| scaled_dot_product_attention(&i[0], &i[1], &i[2], None, causal, None)),
        check: attention_check(dtype, t, hd, causal),
    }
}

/// Checks the last [`ATTENTION_CHECK_ROWS`] query rows of batch 0, head 0
/// against the composed reference. Causal attention is aligned bottom-right,
/// so the last `r` queries against all `t` keys are exactly those rows of the
/// full causal result.
fn attention_check(dtype: DType, t: usize, hd: usize, causal: bool) -> CheckFn {
    let rows = t.min(ATTENTION_CHECK_ROWS);
    let head = |x: &Tensor| x.narrow(0, 0, 1)?.narrow(1, 0, 1);
    let last_rows = move |x: &Tensor| head(x)?.narrow(2, t - rows, rows);
    Box::new(move |i, out| {
        let p = AttentionParams { scale: 1.0 / (hd as f64).sqrt(), causal };
        let want = composed::attention(&last_rows(&i[0]).map_err(err)?, &head(&i[1]).map_err(err)?, &head(&i[2]).map_err(err)?, None, &p)
            .map_err(err)?;
        let got = last_rows(out).map_err(err)?;
        check_close("attention", &got.to_f64_vec().map_err(err)?, &want.to_f64_vec().map_err(err)?, dtype)
    })
}

/// A ViT patch embedding: a `k x k` kernel with stride `k` over one image.
fn conv_case(device: &Device, dtype: DType, c: usize, hw: usize, o: usize, k: usize) -> BenchCase {
    let (n, stride) = (1, k);
    let d = device.clone();
    let p = Conv2dParams { stride: (stride, stride), ..Default::default() };
    let out = (hw - k) / stride + 1;
    let es = dtype.size_in_bytes() as f64;
    BenchCase {
        op: "conv2d".into(),
        shape: format!("{n}x{c}x{hw}x{hw} k{k} s{stride} o{o}"),
        dtype,
        work: Work::Other,
        flops: 2.0 * (n * o * out * out * c * k * k) as f64,
        bytes: es * (n * c * hw * hw + o * c * k * k + n * o * out * out) as f64,
        make: Box::new(move |seed| Ok(vec![randn(&d, dtype, &[n, c, hw, hw], seed)?, randn(&d, dtype, &[o, c, k, k], seed + 1)?])),
        run: Box::new(move |i| i[0].conv2d(&i[1], None, &p)),
        check: against(move |i| composed::conv2d(&i[0], &i[1], None, &p), dtype, "conv2d"),
    }
}

/// The core-op table of `tessera bench`.
pub fn default_cases(device: &Device, size: Size) -> Vec<BenchCase> {
    let full = size == Size::Full;
    let sq = if full { 1024 } else { 128 };
    let big = if full { 1 << 24 } else { 1 << 16 };
    let rows = if full { 4096 } else { 64 };
    let mut cases = vec![
        matmul_case(device, DType::F32, sq, sq, sq, false),
        matmul_case(device, DType::F32, sq, sq, sq, true),
        matmul_case(device, DType::BF16, sq, sq, sq, false),
        matmul_case(device, DType::F32, 1, if full { 4096 } else { 256 }, if full { 4096 } else { 256 }, true),
        elementwise_case(device, DType::F32, big, "add"),
        elementwise_case(device, DType::F32, big, "exp"),
        elementwise_case(device, DType::F32, big, "gelu"),
        sum_case(device, DType::F32, rows, 1024),
        transpose_copy_case(device, DType::F32, if full { 4096 } else { 256 }),
        row_op_case(device, DType::F32, rows, 1024, "softmax"),
        row_op_case(device, DType::F32, rows, 1024, "layer_norm"),
        row_op_case(device, DType::F32, rows, 1024, "rms_norm"),
        attention_case(device, DType::F32, 1, if full { 12 } else { 2 }, if full { 1024 } else { 64 }, 64, false),
        attention_case(device, DType::F32, 1, if full { 12 } else { 2 }, if full { 1024 } else { 64 }, 64, true),
    ];
    cases.push(if full { conv_case(device, DType::F32, 3, 224, 768, 32) } else { conv_case(device, DType::F32, 3, 32, 64, 4) });
    cases
}

/// A GEMM or GEMV case of the peers suite: `gemm` for `[m, k] @ [k, n]`,
/// `gemm (B^T)` / `gemv (B^T)` for `x @ w.t()` with a `[n, k]` weight.
fn peer_matmul(device: &Device, dtype: DType, (m, k, n): (usize, usize, usize), b_transposed: bool) -> BenchCase {
    let mut case = matmul_case(device, dtype, m, k, n, b_transposed);
    let kind = if m == 1 { "gemv" } else { "gemm" };
    case.op = if b_transposed { format!("{kind} (B^T)") } else { kind.to_string() };
    case
}

/// The `x @ w.t()` shapes of vision transformers in the peers suite: a
/// ViT-B/32 layer at batch 1 (fc1), ViT-L/14 at 224 and 336 pixels (fc1),
/// and the four projections of a ViT-B/32 layer at batch 32 (1600 tokens:
/// q/k/v/out, fc1, fc2), the GEMMs of the CLIP batch-32 benchmark.
const MODEL_GEMMS: [(usize, usize, usize); 6] =
    [(50, 768, 3072), (257, 1024, 4096), (577, 1024, 4096), (1600, 768, 768), (1600, 768, 3072), (1600, 3072, 768)];

/// Attention `(b, h, t, d)` shapes of the peers suite.
fn peer_attention_shapes(size: Size) -> Vec<(usize, usize, usize, usize)> {
    match size {
        // (1, 12, 1024, 64) first: the headline case.
        Size::Full => vec![
            (1, 12, 1024, 64),
            (1, 16, 50, 64),
            (32, 12, 50, 64),
            (4, 12, 257, 64),
            (1, 16, 577, 64),
            (8, 12, 128, 64),
            (1, 12, 4096, 64),
            (2, 16, 1024, 128),
        ],
        Size::Small => vec![(1, 2, 64, 32), (2, 2, 33, 16)],
    }
}

/// The `peers` suite: the GEMM, GEMV and attention shapes of vision-language
/// models that benches/compare_cpu.py also times with numpy and PyTorch.
/// `Small` keeps the same structure on tiny shapes, for tests.
pub fn peer_cases(device: &Device, size: Size) -> Vec<BenchCase> {
    let full = size == Size::Full;
    let square: &[usize] = if full { &[256, 512, 1024, 2048, 4096] } else { &[32, 64] };
    let models: &[(usize, usize, usize)] = if full { &MODEL_GEMMS } else { &[(5, 48, 96), (17, 64, 128)] };
    let square_bf16: &[usize] = if full { &[1024, 2048] } else { &[64] };
    let model_bf16 = if full { (257, 1024, 4096) } else { (17, 64, 128) };
    let gemv: &[(usize, usize, usize)] = if full { &[(1, 4096, 4096), (1, 4096, 11008)] } else { &[(1, 256, 256), (1, 256, 688)] };

    let mut cases = Vec::new();
    cases.extend(square.iter().map(|&s| peer_matmul(device, DType::F32, (s, s, s), false)));
    cases.extend(models.iter().map(|&mkn| peer_matmul(device, DType::F32, mkn, true)));
    // bf16 operands the way models have them: activations times a transposed
    // weight (torch's bf16 path for a plain [k, n] operand on AVX2-only CPUs
    // is a slow fallback, which would say nothing about either side).
    cases.extend(square_bf16.iter().map(|&s| peer_matmul(device, DType::BF16, (s, s, s), true)));
    cases.push(peer_matmul(device, DType::BF16, model_bf16, true));
    for dtype in [DType::F32, DType::BF16] {
        cases.extend(gemv.iter().map(|&mkn| peer_matmul(device, dtype, mkn, true)));
    }
    for (b, h, t, d) in peer_attention_shapes(size) {
        for causal in [false, true] {
            cases.push(attention_case(device, DType::F32, b, h, t, d, causal));
        }
    }
    cases
}

/// Checks, warms up and times one case.
pub fn run_case(case: &BenchCase, device: &Device, opts: &BenchOptions) -> std::result::Result<BenchResult, String> {
    let sets = [(case.make)(1).map_err(err)?, (case.make)(1000).map_err(err)?];
    let out = (case.run)(&sets[0]).map_err(err)?;
    (case.check)(&sets[0], &out).map_err(|e| format!("{} {}: {e}", case.op, case.shape))?;
    drop(out);
    let timed = device.backend().set_kernel_timing(true);
    device.backend().take_kernel_times();
    let timing = time_runs(device, opts, |i| (case.run)(&sets[i % 2]).map(drop));
    let runs = (opts.warmup + timing.as_ref().map_or(0, |t| t.iters)).max(1) as f64;
    let kernels: Vec<(String, f64)> = if timed {
        device.backend().set_kernel_timing(false);
        device.backend().take_kernel_times().into_iter().map(|(name, secs, _)| (name, secs / runs)).collect()
    } else {
        Vec::new()
    };
    let timing = timing.map_err(err)?;
    let secs = timing.median.as_secs_f64().max(1e-12);
    Ok(BenchResult {
        op: case.op.clone(),
        shape: case.shape.clone(),
        dtype: case.dtype,
        work: case.work,
        iters: timing.iters,
        median: timing.median,
        best: timing.best,
        gflops: case.flops / secs / 1e9,
        gbps: case.bytes / secs / 1e9,
        flops: case.flops,
        bytes: case.bytes,
        kernels,
    })
}

/// Run times of one piece of work.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub iters: usize,
    pub median: Duration,
    pub best: Duration,
}

/// Warms up, then times `run(i)` (i counts the runs from 0) from launch to
/// `synchronize()`: at least `min_iters` runs, then more until `max_iters`
/// or the time budget is spent.
pub fn time_runs<E: From<tessera_tensor::Error>>(
    device: &Device,
    opts: &BenchOptions,
    mut run: impl FnMut(usize) -> std::result::Result<(), E>,
) -> std::result::Result<Timing, E> {
    for w in 0..opts.warmup {
        run(w)?;
    }
    device.synchronize()?;
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < opts.min_iters || (times.len() < opts.max_iters && start.elapsed() < opts.budget) {
        let t0 = Instant::now();
        run(times.len())?;
        device.synchronize()?;
        times.push(t0.elapsed());
    }
    times.sort();
    Ok(Timing { iters: times.len(), median: times[times.len() / 2], best: times[0] })
}

/// Prints one model-benchmark case's result as a JSON line or a table row
/// (items per second of the median run).
pub fn report_case(json: bool, dtype: &str, case: &str, items: usize, unit: &str, timing: &Timing, check: serde_json::Value) {
    let median_ms = timing.median.as_secs_f64() * 1e3;
    let per_s = items as f64 / timing.median.as_secs_f64().max(1e-12);
    if json {
        println!(
            "{}",
            serde_json::json!({"case": case, "items": items, "unit": unit, "dtype": dtype, "iters": timing.iters, "median_ms": median_ms,
                "best_ms": timing.best.as_secs_f64() * 1e3, "items_per_s": per_s, "check": check})
        );
    } else {
        println!(
            "{case:<12} {:>5} {:>6} {:>10.1} {:>10.1} {:>10.2} {unit}/s  {check}",
            dtype,
            timing.iters,
            median_ms,
            timing.best.as_secs_f64() * 1e3,
            per_s
        );
    }
}

/// A plain-text table of results.
pub fn format_table(device: &Device, results: &[BenchResult]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "device: {}", device.info().description);
    let _ = writeln!(
        s,
        "{:<20} {:<26} {:<6} {:>6} {:>11} {:>11} {:>10} {:>9}",
        "op", "shape", "dtype", "iters", "median ms", "best ms", "GFLOP/s", "GB/s"
    );
    for r in results {
        let _ = writeln!(
            s,
            "{:<20} {:<26} {:<6} {:>6} {:>11.3} {:>11.3} {:>10.2} {:>9.2}",
            r.op,
            r.shape,
            r.dtype.to_string(),
            r.iters,
            r.median.as_secs_f64() * 1e3,
            r.best.as_secs_f64() * 1e3,
            r.gflops,
            r.gbps
        );
        // Device time per kernel, from the device's timestamp queries.
        if let Some(total) = r.device_time() {
            let parts: Vec<String> = r.kernels.iter().map(|(k, t)| format!("{k} {:.3}", t * 1e3)).collect();
            let _ = writeln!(s, "{:<20} device time {:.3} ms per run: {}", "", total * 1e3, parts.join(", "));
        }
    }
    s
}

/// The fields that identify a case: op, shape, dtype and its [`Work`] numbers.
fn case_fields(op: &str, shape: &str, dtype: DType, work: Work) -> Vec<(&'static str, Value)> {
    let mut fields = vec![("op", json!(op)), ("shape", json!(shape)), ("dtype", json!(dtype.to_string()))];
    match work {
        Work::Matmul { m, k, n, b_transposed } => {
            fields.extend([("m", json!(m)), ("k", json!(k)), ("n", json!(n)), ("b_transposed", json!(b_transposed))])
        }
        Work::Attention { b, h, t, d, causal } => {
            fields.extend([("b", json!(b)), ("h", json!(h)), ("t", json!(t)), ("d", json!(d)), ("causal", json!(causal))])
        }
        Work::Other => {}
    }
    fields
}

/// A one-line JSON object with its fields in the given order.
pub fn json_line(fields: &[(&str, Value)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}:{v}", json!(k))).collect();
    format!("{{{}}}", body.join(","))
}

/// One result as a one-line JSON object: op, shape, dtype, then
/// `m`/`k`/`n`/`b_transposed` for matmuls or `b`/`h`/`t`/`d`/`causal` for
/// attention, then iters, median_ms, best_ms, gflops, gbps and intensity
/// (FLOP per byte), then device_ms and kernels_ms where the device times
/// its kernels.
pub fn result_json(r: &BenchResult) -> String {
    json_line(&result_fields(r))
}

/// The fields of [`result_json`], for callers that append their own.
pub fn result_fields(r: &BenchResult) -> Vec<(&'static str, Value)> {
    let mut fields = case_fields(&r.op, &r.shape, r.dtype, r.work);
    fields.extend([
        ("iters", json!(r.iters)),
        ("median_ms", json!(r.median.as_secs_f64() * 1e3)),
        ("best_ms", json!(r.best.as_secs_f64() * 1e3)),
        ("gflops", json!(r.gflops)),
        ("gbps", json!(r.gbps)),
        ("intensity", json!(r.intensity())),
    ]);
    if let Some(t) = r.device_time() {
        fields.push(("device_ms", json!(t * 1e3)));
        let kernels: serde_json::Map<String, Value> = r.kernels.iter().map(|(k, t)| (k.clone(), json!(t * 1e3))).collect();
        fields.push(("kernels_ms", Value::Object(kernels)));
    }
    fields
}

/// A case that failed (its check, or an error) as a one-line JSON object:
/// the case's identifying fields and `error`.
pub fn failure_json(case: &BenchCase, error: &str) -> String {
    let mut fields = case_fields(&case.op, &case.shape, case.dtype, case.work);
    fields.push(("error", json!(error)));
    json_line(&fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_peers_suite_has_the_compared_shapes() {
        let cases = peer_cases(&Device::cpu(), Size::Full);
        let matmuls: Vec<(DType, usize, usize, usize, bool)> = cases
            .iter()
            .filter_map(|c| match c.work {
                Work::Matmul { m, k, n, b_transposed } => Some((c.dtype, m, k, n, b_transposed)),
                _ => None,
            })
            .collect();
        for s in [256, 512, 1024, 2048, 4096] {
            assert!(matmuls.contains(&(DType::F32, s, s, s, false)), "f32 {s}");
        }
        for (m, k, n) in MODEL_GEMMS {
            assert!(matmuls.contains(&(DType::F32, m, k, n, true)), "f32 {m}x{k}x{n}");
        }
        for dtype in [DType::F32, DType::BF16] {
            assert!(matmuls.contains(&(dtype, 1, 4096, 4096, true)) && matmuls.contains(&(dtype, 1, 4096, 11008, true)), "{dtype} gemv");
        }
        assert!(matmuls.contains(&(DType::BF16, 257, 1024, 4096, true)));
        assert_eq!(matmuls.len(), 18);
        let attention: Vec<Work> = cases.iter().map(|c| c.work).filter(|w| matches!(w, Work::Attention { .. })).collect();
        assert_eq!(attention.len(), 16, "8 shapes, causal and not");
        assert_eq!(attention[0], Work::Attention { b: 1, h: 12, t: 1024, d: 64, causal: false });
        assert!(cases.iter().filter(|c| c.op.starts_with("gemv")).all(|c| matches!(c.work, Work::Matmul { m: 1, .. })));
    }

    #[test]
    fn filter_matches_op_shape_or_dtype() {
        let case = matmul_case(&Device::cpu(), DType::BF16, 1, 64, 32, true);
        assert!(case.matches("matmul") && case.matches("1x64") && case.matches("bf16"));
        assert!(!case.matches("f16") && !case.matches("attention"));
    }
}

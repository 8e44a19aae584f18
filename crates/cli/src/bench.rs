//! The benchmark harness behind `tessera bench`.
//!
//! Each case builds its inputs from a seed, checks one result against a
//! reference before any timing (a fast wrong kernel is not a result), warms
//! up, then times runs that alternate between two independently generated
//! input sets so no run reuses the previous run's data. Time is taken from
//! launch to `synchronize()`, so asynchronous devices are timed honestly.
//! Reported: median and best time, GFLOP/s and GB/s from the case's FLOP and
//! byte counts (bytes = inputs read + output written, once).

use std::fmt::Write;
use std::time::{Duration, Instant};
use tessera_tensor::{composed, scaled_dot_product_attention, AttentionParams, Conv2dParams, DType, Device, Result, Tensor};

type Inputs = Vec<Tensor>;
type MakeFn = Box<dyn Fn(u64) -> Result<Inputs>>;
type RunFn = Box<dyn Fn(&[Tensor]) -> Result<Tensor>>;
type CheckFn = Box<dyn Fn(&[Tensor], &Tensor) -> std::result::Result<(), String>>;

/// One benchmark: an op on fixed shapes and dtype.
pub struct BenchCase {
    pub op: String,
    pub shape: String,
    pub dtype: DType,
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
    pub iters: usize,
    pub median: Duration,
    pub best: Duration,
    pub gflops: f64,
    pub gbps: f64,
}

/// How long to spend per case.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub warmup: usize,
    pub min_iters: usize,
    pub max_iters: usize,
    pub budget: Duration,
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

fn row_op_case(device: &Device, dtype: DType, rows: usize, cols: usize, op: &'static str) -> BenchCase {
    let d = device.clone();
    let es = dtype.size_in_bytes() as f64;
    let with_params = op != "softmax";
    BenchCase {
        op: op.into(),
        shape: format!("{rows}x{cols}"),
        dtype,
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

/// Attention `[b, h, t, d]`, causal or not.
pub fn attention_case(device: &Device, dtype: DType, b: usize, h: usize, t: usize, hd: usize, causal: bool) -> BenchCase {
    let d = device.clone();
    let es = dtype.size_in_bytes() as f64;
    let frac = if causal { 0.5 } else { 1.0 };
    BenchCase {
        op: if causal { "attention (causal)".into() } else { "attention".into() },
        shape: format!("b{b} h{h} t{t} d{hd}"),
        dtype,
        flops: frac * 4.0 * (b * h * t * t * hd) as f64,
        bytes: es * (4 * b * h * t * hd) as f64,
        make: Box::new(move |seed| (0..3).map(|j| randn(&d, dtype, &[b, h, t, hd], seed + j)).collect()),
        run: Box::new(move |i| scaled_dot_product_attention(&i[0], &i[1], &i[2], None, causal, None)),
        check: against(
            move |i| {
                // The composed reference materialises t x t scores: check one head.
                let one = |x: &Tensor| x.narrow(0, 0, 1)?.narrow(1, 0, 1);
                composed::attention(
                    &one(&i[0])?,
                    &one(&i[1])?,
                    &one(&i[2])?,
                    None,
                    &AttentionParams { scale: 1.0 / (hd as f64).sqrt(), causal },
                )
            },
            dtype,
            "attention",
        )
        .and_first_head(),
    }
}

trait FirstHead {
    fn and_first_head(self) -> CheckFn;
}

impl FirstHead for CheckFn {
    /// Narrows the output to batch 0, head 0 before checking.
    fn and_first_head(self) -> CheckFn {
        Box::new(move |i, out| {
            let o = out.narrow(0, 0, 1).and_then(|o| o.narrow(1, 0, 1)).map_err(err)?;
            self(i, &o)
        })
    }
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

/// Checks, warms up and times one case.
pub fn run_case(case: &BenchCase, device: &Device, opts: &BenchOptions) -> std::result::Result<BenchResult, String> {
    let sets = [(case.make)(1).map_err(err)?, (case.make)(1000).map_err(err)?];
    let out = (case.run)(&sets[0]).map_err(err)?;
    (case.check)(&sets[0], &out).map_err(|e| format!("{} {}: {e}", case.op, case.shape))?;
    drop(out);
    for w in 0..opts.warmup {
        (case.run)(&sets[w % 2]).map_err(err)?;
    }
    device.synchronize().map_err(err)?;
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < opts.min_iters || (times.len() < opts.max_iters && start.elapsed() < opts.budget) {
        let inputs = &sets[times.len() % 2];
        let t0 = Instant::now();
        let out = (case.run)(inputs).map_err(err)?;
        device.synchronize().map_err(err)?;
        times.push(t0.elapsed());
        drop(out);
    }
    times.sort();
    let median = times[times.len() / 2];
    let secs = median.as_secs_f64().max(1e-12);
    Ok(BenchResult {
        op: case.op.clone(),
        shape: case.shape.clone(),
        dtype: case.dtype,
        iters: times.len(),
        median,
        best: times[0],
        gflops: case.flops / secs / 1e9,
        gbps: case.bytes / secs / 1e9,
    })
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
    }
    s
}

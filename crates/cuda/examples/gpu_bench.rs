//! Times the CUDA backend on the shapes of the performance targets and
//! prints one JSON object per case (benches/compare_cuda.py times PyTorch on
//! the same cases in the same run and prints the ratios).
//!
//! Cases: device-to-device copy (the bandwidth reference), elementwise add
//! and GELU, softmax, layer norm and RMS norm on 256 MiB tensors; bf16 GEMM
//! 4096^3 and 8192^3; attention b4 h16 t4096 d128, causal and not. Each
//! result is checked before timing: sampled GEMM outputs against f64 dot
//! products, other ops against their composition or a host reference. A
//! case is run 3 times to warm up, then timed over repeated runs between
//! two `synchronize()` calls; the best of 5 such batches is reported.
//!
//!     cargo run --release -p tessera-cuda --example gpu_bench [-- FILTER]

use std::time::Instant;
use tessera_tensor::{scaled_dot_product_attention, DType, Device, Result, Tensor};

/// One timed computation.
type Run<'a> = Box<dyn Fn() -> Result<Tensor> + 'a>;

fn time_ms(dev: &Device, iters: usize, f: &dyn Fn() -> Result<Tensor>) -> Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    dev.synchronize()?;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..iters {
            f()?;
        }
        dev.synchronize()?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3 / iters as f64);
    }
    Ok(best)
}

fn nmse(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    num / den.max(1e-30)
}

fn check(what: &str, got: &Tensor, want: &Tensor, tol: f64) -> Result<()> {
    let e = nmse(&got.to_f64_vec()?, &want.to_f64_vec()?);
    if e > tol || e.is_nan() {
        eprintln!("{what}: result differs from the reference (nmse {e:.3e})");
        std::process::exit(1);
    }
    Ok(())
}

fn report(case: &str, fields: &str, ms: f64) {
    println!("{{\"case\": \"{case}\", {fields}, \"ms\": {ms:.6}}}");
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    tessera_cuda::register();
    let filter = std::env::args().nth(1).unwrap_or_default();
    let dev = Device::parse("cuda:0")?;
    eprintln!("{}: {}", dev.name(), dev.info().description);
    let on = |c: &str| c.contains(filter.as_str());
    let mib256 = 256usize << 20;

    // Bandwidth: bytes read + written per run.
    for dt in [DType::F32, DType::BF16] {
        let n = mib256 / dt.size_in_bytes();
        let x = Tensor::randn(1, 0.0, 1.0, n, dt, &dev)?;
        let y = Tensor::randn(2, 0.0, 1.0, n, dt, &dev)?;
        let rows = n / 4096;
        let xr = x.reshape((rows, 4096))?;
        let w = Tensor::randn(3, 1.0, 0.1, 4096, dt, &dev)?;
        let b = Tensor::randn(4, 0.0, 0.1, 4096, dt, &dev)?;
        let bytes = mib256 as f64;
        let cases: Vec<(&str, f64, Run)> = vec![
            ("memcpy", 2.0 * bytes, Box::new(|| x.copy())),
            ("add", 3.0 * bytes, Box::new(|| x.add(&y))),
            ("gelu", 2.0 * bytes, Box::new(|| x.gelu())),
            ("softmax", 2.0 * bytes, Box::new(|| xr.softmax(-1))),
            ("layer_norm", 2.0 * bytes, Box::new(|| xr.layer_norm(Some(&w), Some(&b), 1e-5))),
            ("rms_norm", 2.0 * bytes, Box::new(|| xr.rms_norm(Some(&w), 1e-5))),
        ];
        for (name, moved, f) in &cases {
            let case = format!("{name} {dt}");
            if !on(&case) {
                continue;
            }
            // Check the first rows against the composition on the CPU.
            let head = |t: &Tensor| t.flatten_all().and_then(|t| t.narrow(0, 0, 4096 * 4));
            let cpu = |t: &Tensor| head(t).and_then(|t| t.to_device(&Device::cpu()));
            let got = head(&f()?)?;
            let (xc, yc, wc, bc) = (cpu(&x)?, cpu(&y)?, w.to_device(&Device::cpu())?, b.to_device(&Device::cpu())?);
            let want = match *name {
                "memcpy" => xc.clone(),
                "add" => xc.add(&yc)?,
                "gelu" => xc.gelu()?,
                "softmax" => xc.reshape((4, 4096))?.softmax(-1)?.flatten_all()?,
                "layer_norm" => xc.reshape((4, 4096))?.layer_norm(Some(&wc), Some(&bc), 1e-5)?.flatten_all()?,
                _ => xc.reshape((4, 4096))?.rms_norm(Some(&wc), 1e-5)?.flatten_all()?,
            };
            check(&case, &got.to_device(&Device::cpu())?, &want, if dt == DType::F32 { 1e-9 } else { 1e-4 })?;
            let ms = time_ms(&dev, 20, f.as_ref())?;
            let shape = if ["softmax", "layer_norm", "rms_norm"].contains(name) { format!("{rows}x4096") } else { n.to_string() };
            report(
                &case,
                &format!("\"kind\": \"bandwidth\", \"op\": \"{name}\", \"dtype\": \"{dt}\", \"shape\": \"{shape}\", \"bytes\": {moved}"),
                ms,
            );
        }
    }

    // GEMM.
    for s in [4096usize, 8192] {
        let case = format!("gemm {s}^3 bf16");
        if !on(&case) {
            continue;
        }
        let a = Tensor::randn(5, 0.0, 1.0, (s, s), DType::BF16, &dev)?;
        let b = Tensor::randn(6, 0.0, 1.0, (s, s), DType::BF16, &dev)?;
        let c = a.matmul(&b)?;
        let rows = a.narrow(0, 0, 2)?.to_f64_vec()?;
        let cols = b.to_f64_vec()?;
        let got = c.narrow(0, 0, 2)?.to_f64_vec()?;
        let (mut g, mut w) = (Vec::new(), Vec::new());
        for i in 0..2 {
            for j in (0..s).step_by(s / 64) {
                w.push((0..s).map(|p| rows[i * s + p] * cols[p * s + j]).sum::<f64>());
                g.push(got[i * s + j]);
            }
        }
        if nmse(&g, &w) > 1e-4 {
            eprintln!("{case}: result differs from the reference (nmse {:.3e})", nmse(&g, &w));
            std::process::exit(1);
        }
        let ms = time_ms(&dev, if s == 4096 { 20 } else { 5 }, &|| a.matmul(&b))?;
        report(
            &case,
            &format!(
                "\"kind\": \"gemm\", \"m\": {s}, \"n\": {s}, \"k\": {s}, \"dtype\": \"bf16\", \"flops\": {}",
                2.0 * (s as f64).powi(3)
            ),
            ms,
        );
    }

    // Attention.
    for causal in [false, true] {
        let (b, h, t, d) = (4usize, 16usize, 4096usize, 128usize);
        let case = format!("attention b{b} h{h} t{t} d{d}{} bf16", if causal { " causal" } else { "" });
        if !on(&case) {
            continue;
        }
        let q = Tensor::randn(7, 0.0, 1.0, (b, h, t, d), DType::BF16, &dev)?;
        let k = Tensor::randn(8, 0.0, 1.0, (b, h, t, d), DType::BF16, &dev)?;
        let v = Tensor::randn(9, 0.0, 1.0, (b, h, t, d), DType::BF16, &dev)?;
        // Check batch 0, head 0 (the last 64 queries) against the composition on the CPU.
        let o = scaled_dot_product_attention(&q, &k, &v, None, causal, None)?;
        let sl = |x: &Tensor, a: usize, n: usize| x.narrow(0, 0, 1).and_then(|x| x.narrow(1, 0, 1)).and_then(|x| x.narrow(2, a, n));
        let cpu = Device::cpu();
        let (qc, kc, vc) = (sl(&q, t - 64, 64)?.to_device(&cpu)?, sl(&k, 0, t)?.to_device(&cpu)?, sl(&v, 0, t)?.to_device(&cpu)?);
        let want = scaled_dot_product_attention(&qc, &kc, &vc, None, causal, None)?;
        check(&case, &sl(&o, t - 64, 64)?.to_device(&cpu)?, &want, 1e-4)?;
        let flops = 4.0 * (b * h * t * t * d) as f64 * if causal { 0.5 } else { 1.0 };
        let ms = time_ms(&dev, 5, &|| scaled_dot_product_attention(&q, &k, &v, None, causal, None))?;
        report(
            &case,
            &format!("\"kind\": \"attention\", \"b\": {b}, \"h\": {h}, \"t\": {t}, \"d\": {d}, \"causal\": {causal}, \"flops\": {flops}"),
            ms,
        );
    }
    Ok(())
}

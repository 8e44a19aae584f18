//! Criterion micro-benchmarks of core ops on the CPU backend.
//! Run: `cargo bench -p tessera-benches`. Throughput is reported in
//! elements (FLOPs for matmul) so criterion prints rates.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tessera_benches::input;
use tessera_tensor::{scaled_dot_product_attention, DType, Device};

fn matmul(c: &mut Criterion) {
    let dev = Device::cpu();
    let mut g = c.benchmark_group("matmul");
    g.sample_size(10);
    for &(m, k, n) in &[(256, 256, 256), (512, 512, 512), (50, 768, 3072), (1, 4096, 4096)] {
        for dtype in [DType::F32, DType::BF16] {
            let a = input(&[m, k], dtype, 1, &dev).expect("input");
            let b = input(&[n, k], dtype, 2, &dev).expect("input").t().expect("view");
            g.throughput(Throughput::Elements((2 * m * n * k) as u64));
            g.bench_with_input(BenchmarkId::new(format!("{dtype}"), format!("{m}x{k}x{n}")), &(), |bch, _| {
                bch.iter(|| a.matmul(&b).expect("matmul"))
            });
        }
    }
    g.finish();
}

fn row_ops(c: &mut Criterion) {
    let dev = Device::cpu();
    let mut g = c.benchmark_group("row_ops");
    g.sample_size(20);
    let (rows, cols) = (1024, 1024);
    let x = input(&[rows, cols], DType::F32, 3, &dev).expect("input");
    let w = input(&[cols], DType::F32, 4, &dev).expect("input");
    let b = input(&[cols], DType::F32, 5, &dev).expect("input");
    g.throughput(Throughput::Elements((rows * cols) as u64));
    g.bench_function("softmax", |bch| bch.iter(|| x.softmax(-1).expect("softmax")));
    g.bench_function("layer_norm", |bch| bch.iter(|| x.layer_norm(Some(&w), Some(&b), 1e-5).expect("layer_norm")));
    g.bench_function("rms_norm", |bch| bch.iter(|| x.rms_norm(Some(&w), 1e-6).expect("rms_norm")));
    g.bench_function("gelu", |bch| bch.iter(|| x.gelu().expect("gelu")));
    g.bench_function("add", |bch| bch.iter(|| x.add(&x).expect("add")));
    g.finish();
}

fn attention(c: &mut Criterion) {
    let dev = Device::cpu();
    let mut g = c.benchmark_group("attention");
    g.sample_size(10);
    let (b, h, t, d) = (1, 12, 256, 64);
    let q = input(&[b, h, t, d], DType::F32, 6, &dev).expect("input");
    let k = input(&[b, h, t, d], DType::F32, 7, &dev).expect("input");
    let v = input(&[b, h, t, d], DType::F32, 8, &dev).expect("input");
    g.throughput(Throughput::Elements((4 * b * h * t * t * d) as u64));
    for causal in [false, true] {
        g.bench_function(if causal { "causal" } else { "full" }, |bch| {
            bch.iter(|| scaled_dot_product_attention(&q, &k, &v, None, causal, None).expect("attention"))
        });
    }
    g.finish();
}

criterion_group!(benches, matmul, row_ops, attention);
criterion_main!(benches);

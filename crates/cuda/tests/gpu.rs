//! On a machine with a CUDA GPU: the whole conformance suite, and the
//! allocator's behaviour under out-of-memory. Without one, each test prints
//! why it did not run. `TESSERA_CONFORMANCE_FILTER=softmax,matmul` runs only
//! those ops.

use std::sync::{Mutex, MutexGuard};
use tessera_tensor::{DType, Device, Error, Tensor};

/// The tests share the device and its allocator: one at a time.
fn exclusive() -> MutexGuard<'static, ()> {
    static GPU: Mutex<()> = Mutex::new(());
    GPU.lock().unwrap_or_else(|e| e.into_inner())
}

fn cuda_device() -> Option<Device> {
    tessera_cuda::register();
    match tessera_cuda::devices() {
        Ok(d) if !d.is_empty() => Some(d[0].clone()),
        Ok(_) => {
            println!("skipped: the NVIDIA driver is present but reports no CUDA device");
            None
        }
        Err(e) => {
            println!("skipped: {e}");
            None
        }
    }
}

#[test]
fn conformance_cuda() {
    let _gpu = exclusive();
    let Some(dev) = cuda_device() else { return };
    let filter = std::env::var("TESSERA_CONFORMANCE_FILTER").ok();
    let report = tessera_conformance::run_all(&dev, filter.as_deref());
    println!("{report}");
    assert!(report.cases() > 0, "no case ran (filter {filter:?})");
    assert_eq!(report.failed(), 0, "{} conformance cases failed on {dev}:\n{}", report.failed(), report.failures().join("\n"));
}

#[test]
fn out_of_memory_is_an_error_and_the_device_stays_usable() {
    let _gpu = exclusive();
    let Some(dev) = cuda_device() else { return };
    // More than any GPU has: 2^40 f32 elements (4 TiB).
    match Tensor::zeros(1usize << 40, DType::F32, &dev) {
        Err(Error::OutOfMemory { .. }) => {}
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0], 3, &dev).unwrap();
    assert_eq!(t.add(&t).unwrap().to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0]);
}

#[test]
fn freed_blocks_are_reused_and_the_cache_can_be_released() {
    let _gpu = exclusive();
    let Some(dev) = cuda_device() else { return };
    let backend = tessera_cuda::backend_of(&dev).expect("a CUDA device");
    tessera_cuda::release_cache(&dev).unwrap();
    drop(Tensor::zeros((1024, 1024), DType::F32, &dev).unwrap());
    assert!(backend.cached_bytes() >= 4 << 20, "the dropped block went back to the cache");
    let again = Tensor::zeros((1024, 1024), DType::F32, &dev).unwrap();
    assert_eq!(backend.cached_bytes(), 0, "the cached block was reused");
    drop(again);
    assert!(tessera_cuda::release_cache(&dev).unwrap() >= 4 << 20);
    assert_eq!(backend.cached_bytes(), 0);
}

#[test]
fn native_fused_ops_match_their_compositions() {
    use tessera_tensor::{composed, Conv2dParams, NormKind, UnaryOp};
    let _gpu = exclusive();
    let Some(dev) = cuda_device() else { return };
    let close = |what: &str, a: &Tensor, e: &Tensor| {
        let (a, e) = (a.to_f64_vec().unwrap(), e.to_f64_vec().unwrap());
        assert_eq!(a.len(), e.len(), "{what}: sizes differ");
        let num: f64 = a.iter().zip(&e).map(|(x, y)| (x - y).powi(2)).sum();
        let den: f64 = e.iter().map(|y| y * y).sum::<f64>().max(1e-30);
        assert!(num / den < 1e-4, "{what}: nmse {}", num / den);
    };
    for dt in [DType::F32, DType::F16, DType::BF16] {
        let x = Tensor::randn(1, 0.0, 1.0, (7, 96), dt, &dev).unwrap();
        let r = Tensor::randn(2, 0.0, 1.0, (7, 96), dt, &dev).unwrap();
        let b = Tensor::randn(3, 0.0, 1.0, 96, dt, &dev).unwrap();
        // Large enough for the tensor-core path's staged epilogue (m > 1).
        let w = Tensor::randn(4, 0.0, 0.1, (96, 130), dt, &dev).unwrap();
        let bias = Tensor::randn(5, 0.0, 1.0, 130, dt, &dev).unwrap();
        for act in [None, Some(UnaryOp::Gelu), Some(UnaryOp::Silu)] {
            let what = format!("matmul_bias {dt} {act:?}");
            close(&what, &x.matmul_bias_act(&w, &bias, act).unwrap(), &composed::matmul_bias(&x, &w, &bias, act).unwrap());
            let row = x.narrow(0, 0, 1).unwrap();
            let what = format!("gemv bias {dt} {act:?}");
            close(&what, &row.matmul_bias_act(&w, &bias, act).unwrap(), &composed::matmul_bias(&row, &w, &bias, act).unwrap());
        }
        let (y, h) = x.add_layer_norm(&r, Some(&b), None, 1e-5).unwrap();
        let (y_ref, h_ref) = composed::add_norm(&x, &r, Some(&b), None, 1e-5, NormKind::Layer).unwrap();
        close("add_layer_norm sum", &h, &h_ref);
        close("add_layer_norm", &y, &y_ref);

        let img = Tensor::randn(6, 0.0, 1.0, (2, 6, 9, 11), dt, &dev).unwrap();
        let p = Conv2dParams { stride: (2, 1), padding: (1, 2), dilation: (1, 2), groups: 3 };
        let kw = Tensor::randn(7, 0.0, 0.3, (12, 2, 3, 3), dt, &dev).unwrap();
        let kb = Tensor::randn(8, 0.0, 1.0, 12, dt, &dev).unwrap();
        close(&format!("conv2d {dt}"), &img.conv2d(&kw, Some(&kb), &p).unwrap(), &composed::conv2d(&img, &kw, Some(&kb), &p).unwrap());
        let gw = Tensor::randn(9, 1.0, 0.1, 6, dt, &dev).unwrap();
        close(
            &format!("group_norm {dt}"),
            &img.group_norm(3, Some(&gw), Some(&b.narrow(0, 0, 6).unwrap()), 1e-5).unwrap(),
            &composed::group_norm(&img, 3, Some(&gw), Some(&b.narrow(0, 0, 6).unwrap()), 1e-5).unwrap(),
        );
    }
}

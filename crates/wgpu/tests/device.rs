//! Device-level behaviour beyond the ops: limits, errors, the buffer pool,
//! adapter choice and kernel timing. Each test skips, saying why, when no
//! adapter is usable.

use tessera_tensor::{DType, Device, Error, Tensor};
use tessera_wgpu::WgpuBackend;

fn device() -> Option<Device> {
    match tessera_wgpu::default_device() {
        Ok(d) => Some(d),
        Err(why) => {
            println!("skipping: {why}");
            None
        }
    }
}

fn backend(dev: &Device) -> WgpuBackend {
    tessera_wgpu::backend_of(dev).expect("a wgpu device")
}

#[test]
fn a_tensor_beyond_the_largest_binding_is_an_error() {
    let Some(dev) = device() else { return };
    let max = backend(&dev).max_binding_bytes();
    let n = (max / 4 + 1) as usize;
    match Tensor::zeros(n, DType::F32, &dev) {
        Err(Error::Device { msg, .. }) => assert!(msg.contains("largest storage binding"), "{msg}"),
        other => panic!("expected a device error, got {other:?}"),
    }
    // The device is still usable.
    let x = Tensor::from_slice(&[1.0f32, 2.0], 2, &dev).unwrap();
    assert_eq!(x.add(&x).unwrap().to_vec::<f32>().unwrap(), vec![2.0, 4.0]);
}

#[test]
fn dropped_buffers_are_reused_and_the_cache_can_be_released() {
    let Some(dev) = device() else { return };
    let b = backend(&dev);
    b.release_cache();
    let x = Tensor::zeros(1000, DType::F32, &dev).unwrap();
    drop(x);
    dev.synchronize().unwrap();
    assert!(b.cached_bytes() >= 4000, "a dropped tensor's buffer returns to the pool");
    let y = Tensor::ones(1000, DType::F32, &dev).unwrap();
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![1.0; 1000]);
    b.release_cache();
    assert_eq!(b.cached_bytes(), 0);
}

#[test]
fn every_dtype_round_trips() {
    let Some(dev) = device() else { return };
    for dt in DType::ALL {
        let vals: Vec<f64> = (0..7).map(|i| i as f64).collect();
        let t = Tensor::from_f64_slice(&vals, dt, 7, &dev).unwrap();
        assert_eq!(t.to_f64_vec().unwrap(), vals, "{dt}");
        // Odd sizes of packed dtypes end mid-word.
        assert_eq!(t.narrow(0, 1, 5).unwrap().copy().unwrap().to_f64_vec().unwrap(), vals[1..6].to_vec(), "{dt}");
    }
}

#[test]
fn an_adapter_that_matches_nothing_is_named_in_the_error() {
    // Open the devices first: only the adapter list reads the variable, so
    // the other tests (running in parallel) keep their devices.
    let _ = tessera_wgpu::default_device();
    std::env::set_var("TESSERA_WGPU_ADAPTER", "no-such-adapter-xyz");
    let r = tessera_wgpu::context::adapters();
    std::env::remove_var("TESSERA_WGPU_ADAPTER");
    match r {
        Err(Error::Device { msg, .. }) => assert!(msg.contains("no-such-adapter-xyz"), "{msg}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(a) => panic!("{} adapters matched a name no adapter has", a.len()),
    }
}

#[test]
fn kernel_timing_reports_the_kernels_that_ran() {
    let Some(dev) = device() else { return };
    if !dev.backend().set_kernel_timing(true) {
        println!("skipping: the adapter has no timestamp queries");
        return;
    }
    dev.backend().take_kernel_times();
    let a = Tensor::ones((64, 64), DType::F32, &dev).unwrap();
    let c = a.matmul(&a).unwrap();
    dev.synchronize().unwrap();
    let times = dev.backend().take_kernel_times();
    dev.backend().set_kernel_timing(false);
    assert_eq!(c.to_vec::<f32>().unwrap()[0], 64.0);
    // matmul.wgsl on GPUs, matmul_rt.wgsl on software adapters.
    let matmul = times.iter().find(|t| t.0 == "matmul" || t.0 == "matmul_rt").expect("matmul was timed");
    assert!(matmul.2 >= 1);
    assert!(matmul.1 > 0.0);
}

//! The matmul kernel's vector-load paths (f32 operands whose rows start
//! 4-aligned) against the CPU, with one operand aligned, both, and neither.

use tessera_tensor::{DType, Device, Tensor};

#[test]
fn vector_and_scalar_loads_agree_with_the_cpu() {
    let dev = match tessera_wgpu::default_device() {
        Ok(d) => d,
        Err(why) => return println!("skipping: {why}"),
    };
    let cpu = Device::cpu();
    // (m, k, n): k and n multiples of 4 take the vec4 paths; 70 x 36 x 68
    // also leaves partial tiles.
    for (m, k, n) in [(64, 64, 64), (70, 36, 68), (5, 12, 9), (3, 7, 8)] {
        let a = Tensor::randn(1, 0.0, 1.0, (2, m, k), DType::F32, &cpu).unwrap();
        let b = Tensor::randn(2, 0.0, 1.0, (2, k, n), DType::F32, &cpu).unwrap();
        let want = a.matmul(&b).unwrap().to_vec::<f32>().unwrap();
        let (ga, gb) = (a.to_device(&dev).unwrap(), b.to_device(&dev).unwrap());
        let got = ga.matmul(&gb).unwrap().to_vec::<f32>().unwrap();
        let err = want.iter().zip(&got).map(|(w, g)| (w - g).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-3, "{m}x{k}x{n}: max error {err}");
        // A transposed B (unit stride along k, not n) takes the scalar path for B.
        let bt = b.transpose(1, 2).unwrap().copy().unwrap().transpose(1, 2).unwrap();
        let got_t = ga.matmul(&bt.to_device(&dev).unwrap()).unwrap().to_vec::<f32>().unwrap();
        let err = want.iter().zip(&got_t).map(|(w, g)| (w - g).abs()).fold(0.0f32, f32::max);
        assert!(err < 1e-3, "{m}x{k}x{n} with B^T: max error {err}");
    }
}

/// Half-precision operands: the register-tile kernel (software adapters)
/// reads 8-element runs of A rows and transposed-B columns along k; shapes
/// with k a multiple of 8 take them, the others the strided loads.
#[test]
fn half_precision_runs_agree_with_the_cpu() {
    let dev = match tessera_wgpu::default_device() {
        Ok(d) => d,
        Err(why) => return println!("skipping: {why}"),
    };
    let cpu = Device::cpu();
    for dtype in [DType::F16, DType::BF16] {
        for (m, k, n) in [(40, 64, 36), (33, 24, 70), (5, 12, 9)] {
            let a = Tensor::randn(3, 0.0, 1.0, (2, m, k), dtype, &cpu).unwrap();
            let w = Tensor::randn(4, 0.0, 1.0, (2, n, k), dtype, &cpu).unwrap();
            // The reference: the same rounded inputs, multiplied in f32.
            let (a32, w32) = (a.to_dtype(DType::F32).unwrap(), w.to_dtype(DType::F32).unwrap());
            let want = a32.matmul(&w32.transpose(1, 2).unwrap()).unwrap().to_vec::<f32>().unwrap();
            let (ga, gw) = (a.to_device(&dev).unwrap(), w.to_device(&dev).unwrap());
            let got = ga.matmul(&gw.transpose(1, 2).unwrap()).unwrap().to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap();
            // One rounding of the result to the dtype's precision.
            let eps = if dtype == DType::F16 { 1e-3 } else { 8e-3 };
            let worst = want.iter().zip(&got).map(|(w, g)| (w - g).abs() / (1.0 + w.abs())).fold(0.0f32, f32::max);
            assert!(worst < eps, "{dtype} {m}x{k}x{n}: relative error {worst}");
        }
    }
}

use tessera_tensor::{DType, Device, Tensor};

#[test]
fn matmul_and_views() {
    let dev = Device::cpu();
    let a = Tensor::arange(0.0, 6.0, 1.0, DType::F32, &dev).unwrap().reshape((2, 3)).unwrap();
    let b = a.t().unwrap();
    let c = a.matmul(&b).unwrap();
    assert_eq!(c.to_vec::<f32>().unwrap(), vec![5.0, 14.0, 14.0, 50.0]);
    let s = a.softmax(-1).unwrap().sum(&[-1], false).unwrap();
    for v in s.to_vec::<f32>().unwrap() {
        assert!((v - 1.0).abs() < 1e-6);
    }
    let (vals, idx) = a.topk(2, 1).unwrap();
    assert_eq!(vals.to_vec::<f32>().unwrap(), vec![2.0, 1.0, 5.0, 4.0]);
    assert_eq!(idx.to_vec::<i64>().unwrap(), vec![2, 1, 2, 1]);
    let e = a.add(&Tensor::ones(3, DType::F32, &dev).unwrap()).unwrap();
    assert_eq!(e.to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let err = a.add(&Tensor::ones(4, DType::F32, &dev).unwrap()).unwrap_err();
    assert!(err.to_string().contains("[2, 3]") && err.to_string().contains("[4]"), "{err}");
}

#[test]
fn impossible_sizes_are_errors_not_panics() {
    let dev = Device::cpu();
    assert!(Tensor::zeros(vec![usize::MAX, 2], DType::F32, &dev).is_err());
    assert!(Tensor::randn(0, 0.0, 1.0, vec![1 << 40, 1 << 40], DType::F32, &dev).is_err());
    let e = Tensor::zeros(vec![1usize << 44], DType::F32, &dev).unwrap_err();
    assert!(matches!(e, tessera_tensor::Error::OutOfMemory { .. }), "{e}");
    let a = Tensor::zeros(6, DType::F32, &dev).unwrap();
    assert!(a.reshape(vec![usize::MAX, usize::MAX]).is_err());
    assert!(a.reshape(vec![usize::MAX, 4]).is_err());
    assert_eq!(a.reshape(vec![usize::MAX, 3]).unwrap().dims(), &[2, 3]);
}

/// A weight multiplied again is packed once and kept (see the CPU
/// backend's pack cache): every product, in every dtype, stays bit for bit
/// the product of the first call.
#[test]
fn repeated_products_with_one_weight_are_identical() {
    let dev = Device::cpu();
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        let w = Tensor::randn(7, 0.0, 1.0, (300, 70), dtype, &dev).unwrap();
        let x = Tensor::randn(8, 0.0, 1.0, (2, 45, 70), dtype, &dev).unwrap();
        let first = x.matmul(&w.t().unwrap()).unwrap().to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap();
        for _ in 0..3 {
            let again = x.matmul(&w.t().unwrap()).unwrap().to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap();
            assert!(first.iter().zip(&again).all(|(a, b)| a.to_bits() == b.to_bits()), "{dtype:?}");
        }
        // The kept packing serves another input, too.
        let x2 = Tensor::randn(9, 0.0, 1.0, (90, 70), dtype, &dev).unwrap();
        let got = x2.matmul(&w.t().unwrap()).unwrap().to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap();
        let want = x2.matmul(&w.t().unwrap().contiguous().unwrap()).unwrap();
        let want = want.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap();
        assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{dtype:?}");
    }
}

//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use tessera_nn::VarBuilder;
use tessera_tensor::{rng, DType, Device, Tensor};

pub fn dev() -> Device {
    Device::cpu()
}

/// Deterministic values in [-1, 1) from a seed.
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    (0..n).map(|i| (rng::uniform(seed, i as u64) * 2.0 - 1.0) as f32).collect()
}

pub fn tensor(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(data, shape.to_vec(), &dev()).unwrap()
}

pub fn random(seed: u64, shape: &[usize]) -> Tensor {
    tensor(&values(seed, shape.iter().product()), shape)
}

pub fn to_vec(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().to_vec::<f32>().unwrap()
}

#[track_caller]
pub fn assert_close(actual: &[f32], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len(), "length");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!((a as f64 - e).abs() <= tol * (1.0 + e.abs()), "element {i}: got {a}, expected {e} (tol {tol})");
    }
}

/// A builder over named in-memory tensors.
pub fn builder(tensors: Vec<(&str, Tensor)>) -> VarBuilder {
    let map: HashMap<String, Tensor> = tensors.into_iter().map(|(n, t)| (n.to_string(), t)).collect();
    VarBuilder::from_tensors(map, dev())
}

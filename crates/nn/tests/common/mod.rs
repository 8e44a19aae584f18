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

/// Widens f32 values to f64 for the references.
pub fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// `y[r, o] = sum_i x[r, i] w[o, i] (+ b[o])` over rows `r` of `[rows, in]`,
/// in f64: the reference for every linear projection in these tests.
pub fn linear_ref(x: &[f64], w: &[f32], b: Option<&[f32]>, in_dim: usize, out_dim: usize) -> Vec<f64> {
    let rows = x.len() / in_dim;
    let mut y = vec![0.0; rows * out_dim];
    for r in 0..rows {
        for o in 0..out_dim {
            let mut s = b.map_or(0.0, |b| b[o] as f64);
            for i in 0..in_dim {
                s += x[r * in_dim + i] * w[o * in_dim + i] as f64;
            }
            y[r * out_dim + o] = s;
        }
    }
    y
}

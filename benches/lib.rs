//! Shared inputs for the criterion benches in `benches/benches/`.

use tessera_tensor::{DType, Device, Result, Tensor};

/// A normal random tensor on `device`, reproducible from `seed`.
pub fn input(shape: &[usize], dtype: DType, seed: u64, device: &Device) -> Result<Tensor> {
    Tensor::randn(seed, 0.0, 1.0, shape.to_vec(), dtype, device)
}

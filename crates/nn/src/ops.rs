//! Tensor helpers that models share.

use crate::Result;
use tessera_tensor::Tensor;

/// Rows divided by their L2 norm over the last dim (`x / sqrt(sum x^2)`, as
/// transformers normalises CLIP-style embeddings: no epsilon, so a zero row
/// gives NaN as it does there).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    Ok(x.div(&x.square()?.sum(&[-1], true)?.sqrt()?)?)
}

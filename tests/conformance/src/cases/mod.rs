//! The cases, one module per op family.

pub mod cast;
pub mod creation;
pub mod elementwise;
pub mod errors;
pub mod fused;
pub mod index;
pub mod matmul;
pub mod reduce;
pub mod views;

use crate::arr::Arr;
use crate::check::{close, exact, tol};
use crate::gen::Gen;
use crate::R;
use tessera_tensor::{DType, Tensor};

pub const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::BF16];
pub const INTS: [DType; 3] = [DType::U8, DType::U32, DType::I64];

/// Compute floats and integers: the dtypes of the arithmetic ops that are
/// defined on integers.
pub fn numeric(dt: DType) -> bool {
    dt.is_compute_float() || dt.is_int()
}

/// `n` shapes that broadcast together (NumPy rules): a random output shape,
/// each operand dropping some leading dims and setting some dims to 1.
pub fn bcast_shapes(g: &mut Gen, n: usize, allow_empty: bool, max_numel: usize) -> Vec<Vec<usize>> {
    let rank = g.below(5);
    let out = g.shape(rank, allow_empty, max_numel);
    (0..n)
        .map(|_| {
            let drop = if g.chance(0.3) { g.below(rank + 1) } else { 0 };
            out[drop..].iter().map(|&d| if g.chance(0.25) { 1 } else { d }).collect()
        })
        .collect()
}

/// Exact for integer dtypes, [`close`] with the f32 tolerance `f32_tol`
/// (scaled for half types) for floats.
pub fn compare_out(out: &Tensor, dt: DType, want: &Arr, f32_tol: f64) -> R<()> {
    if dt.is_int() {
        exact(out, dt, want)
    } else {
        close(out, dt, want, tol(dt, f32_tol))
    }
}

/// A dim argument as the API takes it, negative half the time.
pub fn signed_dim(g: &mut Gen, d: usize, rank: usize) -> i64 {
    if g.chance(0.5) {
        d as i64 - rank as i64
    } else {
        d as i64
    }
}

//! Test inputs: a tensor on the device, in one of several memory layouts,
//! and the exact values it holds, as the reference sees them.
//!
//! A strided input is made by uploading a base storage bigger than the view
//! (every element of it random, so a kernel that reads the wrong element
//! reads a wrong value) and describing the view with an explicit
//! [`Layout`]: a storage order that is a permutation of the logical dims
//! (transposes), steps and padding per dim (narrow and slice views, with an
//! offset), and stride-0 dims (broadcast). The logical values are computed
//! from the base's values by the same stride arithmetic, on the host.

use crate::arr::{numel, Arr};
use crate::gen::Gen;
use crate::R;
use std::fmt;
use tessera_tensor::{DType, Device, Layout, Tensor};

/// The memory layout of an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lay {
    /// Row-major and dense.
    Contig,
    /// Dense, with the dims stored in a shuffled order (a transposed view).
    Permuted,
    /// Narrowed and stepped dims, at an offset.
    Strided,
    /// Some dims of size > 1 have stride 0.
    Broadcast,
    /// Permuted, strided and broadcast at once.
    Mixed,
}

impl Lay {
    pub fn random(g: &mut Gen) -> Lay {
        match g.below(10) {
            0..=2 => Lay::Contig,
            3 | 4 => Lay::Permuted,
            5 | 6 => Lay::Strided,
            7 | 8 => Lay::Broadcast,
            _ => Lay::Mixed,
        }
    }

    /// A random layout without stride-0 dims.
    pub fn random_dense(g: &mut Gen) -> Lay {
        match g.below(3) {
            0 => Lay::Contig,
            1 => Lay::Permuted,
            _ => Lay::Strided,
        }
    }
}

impl fmt::Display for Lay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lay::Contig => "contiguous",
            Lay::Permuted => "permuted",
            Lay::Strided => "strided",
            Lay::Broadcast => "broadcast",
            Lay::Mixed => "mixed",
        })
    }
}

/// A tensor and the values it holds (rounded to its dtype).
pub struct Input {
    pub t: Tensor,
    pub v: Arr,
}

/// A contiguous tensor of `a`'s values rounded to `dtype`.
pub fn input_from(dev: &Device, a: &Arr, dtype: DType) -> R<Input> {
    let t = Tensor::from_f64_slice(&a.data, dtype, a.shape.as_slice(), dev)?;
    let v = Arr::new(a.shape.clone(), t.to_f64_vec()?);
    Ok(Input { t, v })
}

/// An input of `shape` and `dtype` in layout `lay`, values drawn by `dist`.
pub fn input(dev: &Device, g: &mut Gen, shape: &[usize], dtype: DType, lay: Lay, dist: &mut dyn FnMut(&mut Gen) -> f64) -> R<Input> {
    let r = shape.len();
    if lay == Lay::Contig || r == 0 {
        let vals: Vec<f64> = (0..numel(shape)).map(|_| dist(g)).collect();
        return input_from(dev, &Arr::new(shape.to_vec(), vals), dtype);
    }
    // Storage order (outermost first), steps, padding and broadcast dims.
    let mut order: Vec<usize> = (0..r).collect();
    let mut step = vec![1usize; r];
    let mut pad = vec![0usize; r];
    let mut bcast = vec![false; r];
    if matches!(lay, Lay::Permuted | Lay::Mixed) && r > 1 {
        g.shuffle(&mut order);
        if order.iter().enumerate().all(|(i, &d)| i == d) {
            order.reverse();
        }
    }
    if matches!(lay, Lay::Strided | Lay::Mixed) {
        for d in 0..r {
            if g.chance(0.5) {
                step[d] = g.pick(&[2, 3]);
            }
            if g.chance(0.6) {
                pad[d] = g.int(1, 3) as usize;
            }
        }
        // At least one dim must be non-dense.
        if step.iter().all(|&s| s == 1) && pad.iter().all(|&p| p == 0) {
            let d = g.below(r);
            pad[d] = 1;
        }
    }
    if matches!(lay, Lay::Broadcast | Lay::Mixed) {
        let wide: Vec<usize> = (0..r).filter(|&d| shape[d] > 1).collect();
        for &d in &wide {
            bcast[d] = g.chance(0.5);
        }
        if !wide.is_empty() && !bcast.iter().any(|&b| b) {
            bcast[g.pick(&wide)] = true;
        }
    }
    let extent: Vec<usize> = (0..r).map(|d| if bcast[d] { 1 } else { shape[d].saturating_sub(1) * step[d] + 1 + pad[d] }).collect();
    let mut base_stride = vec![0usize; r];
    let mut len = 1;
    for &d in order.iter().rev() {
        base_stride[d] = len;
        len *= extent[d];
    }
    let strides: Vec<usize> = (0..r).map(|d| if bcast[d] { 0 } else { base_stride[d] * step[d] }).collect();
    let offset: usize = (0..r).map(|d| if bcast[d] { 0 } else { g.int(0, pad[d] as i64) as usize * base_stride[d] }).sum();

    let vals: Vec<f64> = (0..len).map(|_| dist(g)).collect();
    let base = Tensor::from_f64_slice(&vals, dtype, len, dev)?;
    let exact = base.to_f64_vec()?;
    let layout = Layout::new(shape.to_vec(), strides.clone(), offset, len)?;
    let t = Tensor::from_storage(base.storage().clone(), layout, dev.clone())?;
    let v = Arr::from_fn(shape, |idx| exact[offset + idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
    Ok(Input { t, v })
}

/// The value a fresh output is poisoned with (see the crate docs).
pub fn poison_value(dtype: DType) -> f64 {
    match dtype {
        DType::U8 => 165.0,
        DType::U32 => 2779096485.0,
        DType::I64 => -1234567891.0,
        _ => f64::NAN,
    }
}

/// Makes and drops a tensor of `numel` poison values of `dtype`, so that the
/// next allocation of that size is likely to hold them.
pub fn poison(dev: &Device, numel: usize, dtype: DType) {
    if numel > 0 {
        drop(Tensor::full(poison_value(dtype), numel, dtype, dev));
    }
}

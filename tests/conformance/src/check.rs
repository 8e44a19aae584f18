//! Comparing a device's output with the reference.

use crate::arr::Arr;
use crate::reference::round_to;
use crate::{bail, R};
use tessera_tensor::{DType, Error, Tensor};

/// The NMSE tolerance for `dtype`: `f32` for f32 (it depends on the op),
/// fixed ones for the half types.
pub fn tol(dtype: DType, f32: f64) -> f64 {
    match dtype {
        DType::F16 => 1e-5,
        DType::BF16 => 1e-4,
        _ => f32,
    }
}

/// `[i, j, ...]` of row-major position `flat` in `shape`.
fn index_of(shape: &[usize], mut flat: usize) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        if shape[d] > 0 {
            idx[d] = flat % shape[d];
            flat /= shape[d];
        }
    }
    idx
}

fn check_meta(out: &Tensor, dtype: DType, want: &Arr) -> R<()> {
    if out.dtype() != dtype {
        bail!("output dtype {} (expected {dtype})", out.dtype());
    }
    if out.dims() != want.shape.as_slice() {
        bail!("output shape {:?} (expected {:?})", out.dims(), want.shape);
    }
    Ok(())
}

/// Float comparison: NaN/infinity agreement, NMSE below `tol`, and every
/// element within `16 sqrt(tol) (|ref| + rms(ref))`. The reference is rounded
/// to `dtype` first.
pub fn close(out: &Tensor, dtype: DType, want: &Arr, tol: f64) -> R<()> {
    check_meta(out, dtype, want)?;
    let got = out.to_f64_vec()?;
    close_values(&got, want, dtype, tol)
}

/// [`close`] on values already read back.
pub fn close_values(got: &[f64], want: &Arr, dtype: DType, tol: f64) -> R<()> {
    if got.len() != want.numel() {
        bail!("read back {} values, expected {}", got.len(), want.numel());
    }
    let shape = want.shape.as_slice();
    let want: Vec<f64> = want.data.iter().map(|&r| round_to(dtype, r)).collect();
    let (mut num, mut den, mut n) = (0.0f64, 0.0f64, 0usize);
    for (i, (&o, &r)) in got.iter().zip(&want).enumerate() {
        let bad = if r.is_nan() {
            !o.is_nan()
        } else if r.is_infinite() {
            o != r
        } else {
            !o.is_finite()
        };
        if bad {
            bail!("at {:?}: got {o}, expected {r}", index_of(shape, i));
        }
        if r.is_finite() {
            num += (o - r) * (o - r);
            den += r * r;
            n += 1;
        }
    }
    if n == 0 {
        return Ok(());
    }
    let den = den.max(n as f64 * 1e-6);
    let nmse = num / den;
    let rms = (den / n as f64).sqrt();
    let bound = 16.0 * tol.sqrt();
    let worst = got
        .iter()
        .zip(&want)
        .enumerate()
        .filter(|(_, (_, r))| r.is_finite())
        .map(|(i, (&o, &r))| (i, o, r, (o - r).abs() / (r.abs() + rms)))
        .fold(None, |best: Option<(usize, f64, f64, f64)>, e| if best.is_none_or(|b| e.3 > b.3) { Some(e) } else { best });
    if let Some((i, o, r, rel)) = worst {
        if nmse > tol || rel > bound {
            bail!(
                "nmse {nmse:.3e} (tolerance {tol:.0e}); worst at {:?}: got {o}, expected {r} (relative {rel:.2e}, bound {bound:.1e})",
                index_of(shape, i)
            );
        }
    }
    Ok(())
}

/// Exact comparison (NaN equals NaN).
pub fn exact(out: &Tensor, dtype: DType, want: &Arr) -> R<()> {
    check_meta(out, dtype, want)?;
    let got = out.to_f64_vec()?;
    exact_values(&got, want)
}

/// [`exact`] on values already read back.
pub fn exact_values(got: &[f64], want: &Arr) -> R<()> {
    if got.len() != want.numel() {
        bail!("read back {} values, expected {}", got.len(), want.numel());
    }
    let same = |o: f64, r: f64| o == r || (o.is_nan() && r.is_nan());
    let wrong = got.iter().zip(&want.data).filter(|&(&o, &r)| !same(o, r)).count();
    if let Some(i) = got.iter().zip(&want.data).position(|(&o, &r)| !same(o, r)) {
        bail!(
            "{wrong} of {} elements differ; first at {:?}: got {}, expected {}",
            got.len(),
            index_of(&want.shape, i),
            got[i],
            want.data[i]
        );
    }
    Ok(())
}

/// Two device results agree within `tol` (the second is the reference).
pub fn close_tensors(out: &Tensor, reference: &Tensor, tol: f64) -> R<()> {
    if out.dims() != reference.dims() || out.dtype() != reference.dtype() {
        bail!("{:?} {} vs {:?} {}", out.dims(), out.dtype(), reference.dims(), reference.dtype());
    }
    let want = Arr::new(reference.dims().to_vec(), reference.to_f64_vec()?);
    close(out, reference.dtype(), &want, tol)
}

/// The result must be `Err(Error::UnsupportedDType { .. })`.
pub fn expect_unsupported<T>(r: tessera_tensor::Result<T>) -> R<()> {
    match r {
        Err(Error::UnsupportedDType { .. }) => Ok(()),
        Err(e) => bail!("expected an UnsupportedDType error, got: {e}"),
        Ok(_) => bail!("expected an UnsupportedDType error, got a result"),
    }
}

/// The result must be an error (any).
pub fn expect_err<T>(r: tessera_tensor::Result<T>, what: &str) -> R<Error> {
    match r {
        Err(e) => Ok(e),
        Ok(_) => bail!("expected an error ({what}), got a result"),
    }
}

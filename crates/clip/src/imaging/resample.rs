//! Image resizing with Pillow's resampling filters, bit for bit.
//!
//! CLIP's reference preprocessing resizes with `PIL.Image.resize`, so this is
//! Pillow's algorithm (libImaging/Resample.c) restated for 8-bit RGB:
//!
//! - Separable: a horizontal pass over the source rows the vertical pass
//!   needs, rounded to u8, then a vertical pass, rounded to u8. An axis whose
//!   size does not change is not filtered.
//! - For each output index `x`, the filter is centred at `(x + 0.5) * scale`
//!   in source coordinates (`scale = in / out`). When shrinking, the filter is
//!   stretched by `scale` (its support grows and its argument shrinks), which
//!   is the antialiasing; when enlarging it keeps its natural width. Source
//!   indices run from `round(centre - support)` to `round(centre + support)`,
//!   clamped to the image; the weights are normalised to sum to one.
//! - Weights are fixed point with 22 fractional bits (rounded half away from
//!   zero); each output sums `pixel * weight` in 32-bit integers starting from
//!   one half, shifts right by 22 (an arithmetic shift: floor) and clamps to
//!   0..=255.
//!
//! Filters: box, bilinear, Hamming, bicubic (Keys, a = -0.5) and Lanczos-3,
//! as Pillow defines them. Layout: interleaved RGB rows (`image::RgbImage`).

use image::RgbImage;
use rayon::prelude::*;

/// Pillow's resampling filters (the `resample` codes of a preprocessor config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `Image.BOX` (code 4).
    Box,
    /// `Image.BILINEAR` (code 2).
    Bilinear,
    /// `Image.HAMMING` (code 5).
    Hamming,
    /// `Image.BICUBIC` (code 3), CLIP's filter.
    Bicubic,
    /// `Image.LANCZOS` (code 1).
    Lanczos,
}

impl Filter {
    /// The filter of a PIL resampling code; `None` for nearest (0) and
    /// unknown codes.
    pub fn from_pil_code(code: u32) -> Option<Filter> {
        match code {
            1 => Some(Filter::Lanczos),
            2 => Some(Filter::Bilinear),
            3 => Some(Filter::Bicubic),
            4 => Some(Filter::Box),
            5 => Some(Filter::Hamming),
            _ => None,
        }
    }

    /// Half-width of the filter at scale 1.
    fn support(self) -> f64 {
        match self {
            Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let px = x * std::f64::consts::PI;
                    // Pillow evaluates the window's constants in single precision.
                    px.sin() / px * (0.54f32 as f64 + 0.46f32 as f64 * px.cos())
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = x * std::f64::consts::PI;
        px.sin() / px
    }
}

/// Fractional bits of the fixed-point weights: 8 bits of pixel and two of
/// headroom for filters with negative lobes.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The fixed-point filter taps of every output index along one axis.
struct Taps {
    /// Taps per output index (the row length of `weights`).
    ksize: usize,
    /// First source index and number of taps, per output index.
    bounds: Vec<(usize, usize)>,
    /// `out_size * ksize` weights, unused tail taps zero.
    weights: Vec<i32>,
}

impl Taps {
    fn new(in_size: usize, out_size: usize, filter: Filter) -> Taps {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let inv_filterscale = 1.0 / filterscale;
        let mut w = vec![0f64; ksize];
        for (xx, taps) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) casts truncate toward zero, as `as` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let n = (xmax - xmin).max(0) as usize;
            let mut sum = 0.0;
            for (x, wx) in w[..n].iter_mut().enumerate() {
                *wx = filter.weight(((x as i64 + xmin) as f64 - center + 0.5) * inv_filterscale);
                sum += *wx;
            }
            for (tap, &wx) in taps.iter_mut().zip(&w[..n]) {
                let wx = if sum != 0.0 { wx / sum } else { wx };
                let fixed = wx * (1u32 << PRECISION_BITS) as f64;
                *tap = if wx < 0.0 { (fixed - 0.5) as i32 } else { (fixed + 0.5) as i32 };
            }
            bounds.push((xmin as usize, n));
        }
        Taps { ksize, bounds, weights }
    }

    fn of(&self, i: usize) -> (usize, &[i32]) {
        let (start, n) = self.bounds[i];
        (start, &self.weights[i * self.ksize..i * self.ksize + n])
    }
}

/// Rounds a fixed-point sum to a pixel.
#[inline]
fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes `src` to `width x height` as `PIL.Image.resize(size, filter)`
/// does for an RGB image. Both sizes of `src` and the target must be
/// positive (callers check).
pub fn resize(src: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    let (in_w, in_h) = (src.width() as usize, src.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let vertical = Taps::new(in_h, out_h, filter);
    let (first_row, rows) = if out_h != in_h {
        let (start, _) = vertical.bounds[0];
        let (last_start, last_n) = vertical.bounds[out_h - 1];
        (start, last_start + last_n - start)
    } else {
        (0, in_h)
    };

    let src = src.as_raw();
    let horizontal_pass;
    let (rows_buf, buf_w): (&[u8], usize) = if out_w != in_w {
        let taps = Taps::new(in_w, out_w, filter);
        let mut out = vec![0u8; rows * out_w * 3];
        out.par_chunks_mut(out_w * 3).enumerate().for_each(|(y, row)| {
            let line = &src[(first_row + y) * in_w * 3..(first_row + y + 1) * in_w * 3];
            for (xx, px) in row.chunks_exact_mut(3).enumerate() {
                let (start, k) = taps.of(xx);
                let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
                for (i, &w) in k.iter().enumerate() {
                    let s = &line[(start + i) * 3..(start + i) * 3 + 3];
                    for c in 0..3 {
                        acc[c] += s[c] as i32 * w;
                    }
                }
                for c in 0..3 {
                    px[c] = clip8(acc[c]);
                }
            }
        });
        horizontal_pass = out;
        (&horizontal_pass, out_w)
    } else {
        (&src[first_row * in_w * 3..(first_row + rows) * in_w * 3], in_w)
    };

    if out_h == in_h {
        return RgbImage::from_raw(width, height, rows_buf.to_vec()).expect("buffer holds height * width pixels");
    }
    let mut out = vec![0u8; out_h * buf_w * 3];
    out.par_chunks_mut(buf_w * 3).enumerate().for_each(|(yy, row)| {
        let (start, k) = vertical.of(yy);
        let start = start - first_row;
        for (x, px) in row.iter_mut().enumerate() {
            let mut acc = 1i32 << (PRECISION_BITS - 1);
            for (i, &w) in k.iter().enumerate() {
                acc += rows_buf[(start + i) * buf_w * 3 + x] as i32 * w;
            }
            *px = clip8(acc);
        }
    });
    RgbImage::from_raw(width, height, out).expect("buffer holds height * width pixels")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for filter in [Filter::Box, Filter::Bilinear, Filter::Hamming, Filter::Bicubic, Filter::Lanczos] {
            for (i, o) in [(640, 224), (100, 224), (7, 3), (3, 7), (224, 224)] {
                let t = Taps::new(i, o, filter);
                for x in 0..o {
                    let s: i32 = t.of(x).1.iter().sum();
                    assert!((s - (1 << PRECISION_BITS)).abs() <= 8, "{filter:?} {i}->{o} at {x}: {s}");
                }
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(97, 61, image::Rgb([12, 200, 255]));
        for (w, h) in [(224, 300), (31, 17), (97, 20)] {
            let out = resize(&img, w, h, Filter::Bicubic);
            assert!(out.pixels().all(|p| p.0 == [12, 200, 255]), "{w}x{h}");
        }
    }
}

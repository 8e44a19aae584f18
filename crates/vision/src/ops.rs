//! The steps image processors are made of, on 8-bit RGB images, each with
//! the arithmetic of the Python code it restates: output sizes for resizing
//! by an edge, centre crop, padding to a square, and rescaling with
//! normalisation into channels-first f32 values.

use image::{Rgb, RgbImage};

/// The `(height, width)` of an `h x w` image resized so its shortest side is
/// `edge`, the other keeping the aspect ratio rounded down, as transformers'
/// `get_resize_output_image_size` computes it (`int(edge * long / short)`,
/// a float division).
pub fn shortest_edge_size(h: usize, w: usize, edge: usize) -> (usize, usize) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    let new_long = (edge.saturating_mul(long) as f64 / short as f64) as usize;
    if w <= h {
        (new_long, edge)
    } else {
        (edge, new_long)
    }
}

/// The `(height, width)` of an `h x w` image resized so its longest side is
/// `edge`, each side at least `min_size`, as transformers'
/// `JanusImageProcessor` computes it: `delta = edge / longest`, then
/// `max(round(side * delta), min_size)` with Python's round half to even.
pub fn longest_edge_size(h: usize, w: usize, edge: usize, min_size: usize) -> (usize, usize) {
    let delta = edge as f64 / h.max(w) as f64;
    let side = |s: usize| ((s as f64 * delta).round_ties_even() as usize).max(min_size);
    (side(h), side(w))
}

/// transformers' `center_crop`: a `crop_h x crop_w` window starting at
/// `(size - crop) // 2` (floor division); pixels outside the image are zero.
pub fn center_crop(image: &RgbImage, (crop_h, crop_w): (usize, usize)) -> RgbImage {
    let (h, w) = (image.height() as i64, image.width() as i64);
    let top = (h - crop_h as i64).div_euclid(2);
    let left = (w - crop_w as i64).div_euclid(2);
    crop_at(image, (crop_h, crop_w), top, left)
}

/// torchvision's `CenterCrop`: the window starts at
/// `int(round((size - crop) / 2))`, Python's round half to even, so an odd
/// margin puts the extra pixel above or to the left where the half-margin
/// rounds up (1.5 -> 2, 2.5 -> 2), unlike [`center_crop`]; pixels outside
/// the image are zero.
pub fn center_crop_rounded(image: &RgbImage, (crop_h, crop_w): (usize, usize)) -> RgbImage {
    let offset = |size: u32, crop: usize| ((size as f64 - crop as f64) / 2.0).round_ties_even() as i64;
    crop_at(image, (crop_h, crop_w), offset(image.height(), crop_h), offset(image.width(), crop_w))
}

/// The `crop_h x crop_w` window of `image` at `(top, left)`, zero outside.
fn crop_at(image: &RgbImage, (crop_h, crop_w): (usize, usize), top: i64, left: i64) -> RgbImage {
    let (h, w) = (image.height() as i64, image.width() as i64);
    let mut out = RgbImage::new(crop_w as u32, crop_h as u32);
    for (x, y, px) in out.enumerate_pixels_mut() {
        let (sy, sx) = (top + y as i64, left + x as i64);
        if (0..h).contains(&sy) && (0..w).contains(&sx) {
            *px = *image.get_pixel(sx as u32, sy as u32);
        }
    }
    out
}

/// The image on a square canvas of `fill` whose side is its longest side,
/// placed at offset `(side - size) // 2` along the shorter axis (LLaVA's and
/// Janus's `expand2square`); a square image is returned as it is.
pub fn pad_to_square(image: &RgbImage, fill: [u8; 3]) -> RgbImage {
    let (w, h) = (image.width(), image.height());
    if w == h {
        return image.clone();
    }
    let side = w.max(h);
    let (left, top) = ((side - w) / 2, (side - h) / 2);
    let mut out = RgbImage::from_pixel(side, side, Rgb(fill));
    image::imageops::replace(&mut out, image, left as i64, top as i64);
    out
}

/// The padding colour a processor derives from its mean:
/// `tuple(int(m * 255) for m in image_mean)` (truncated, clamped to 0..=255).
pub fn fill_from_mean(mean: [f64; 3]) -> [u8; 3] {
    mean.map(|m| (m * 255.0).clamp(0.0, 255.0) as u8)
}

/// How 8-bit values become model inputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    /// Multiply by this first (`rescale_factor`), or `None` to keep 0..=255.
    pub rescale: Option<f64>,
    /// Then `(x - mean) / std` per channel, or `None`.
    pub mean_std: Option<([f64; 3], [f64; 3])>,
}

/// Channels-first f32 values `[3, h, w]` of `image`, with transformers'
/// rounding: the rescale in f64 rounded to f32, the normalisation in f32.
pub fn to_chw(image: &RgbImage, n: &Normalize) -> Vec<f32> {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut out = vec![0f32; 3 * h * w];
    let raw = image.as_raw();
    for (c, plane) in out.chunks_exact_mut(h * w).enumerate() {
        let mean_std = n.mean_std.map(|(m, s)| (m[c] as f32, s[c] as f32));
        for (i, v) in plane.iter_mut().enumerate() {
            let x = raw[i * 3 + c] as f64;
            let x = match n.rescale {
                Some(f) => (x * f) as f32,
                None => x as f32,
            };
            *v = match mean_std {
                Some((mean, std)) => (x - mean) / std,
                None => x,
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_sizes_round_down() {
        assert_eq!(shortest_edge_size(200, 300, 224), (224, 336));
        assert_eq!(shortest_edge_size(301, 200, 224), (337, 224));
        assert_eq!(shortest_edge_size(1000, 1, 224), (224000, 224));
    }

    #[test]
    fn longest_edge_rounds_half_to_even() {
        // Janus: 640x480 to 384 -> 384x288; a sliver keeps min_size.
        assert_eq!(longest_edge_size(480, 640, 384, 14), (288, 384));
        assert_eq!(longest_edge_size(2, 1000, 384, 14), (14, 384));
        // Halves go to the even side: 5 * 0.5 = 2.5 -> 2, 7 * 0.5 = 3.5 -> 4,
        // 5 * 0.3 = 1.5 -> 2.
        assert_eq!(longest_edge_size(5, 6, 3, 1), (2, 3));
        assert_eq!(longest_edge_size(7, 8, 4, 1), (4, 4));
        assert_eq!(longest_edge_size(5, 10, 3, 1), (2, 3));
    }

    #[test]
    fn torchvision_crop_rounds_the_margin_half_to_even() {
        // A column per x value, so the crop's first column names its left.
        let mut img = RgbImage::new(7, 1);
        for x in 0..7 {
            img.put_pixel(x, 0, Rgb([x as u8, 0, 0]));
        }
        // Margin 3: round(1.5) = 2 here, 3 // 2 = 1 in transformers.
        assert_eq!(center_crop_rounded(&img, (1, 4)).get_pixel(0, 0).0[0], 2);
        assert_eq!(center_crop(&img, (1, 4)).get_pixel(0, 0).0[0], 1);
        // Margin 5: round(2.5) = 2 = 5 // 2.
        assert_eq!(center_crop_rounded(&img, (1, 2)).get_pixel(0, 0).0[0], 2);
        // Margin 1: round(0.5) = 0 = 1 // 2.
        assert_eq!(center_crop_rounded(&img, (1, 6)).get_pixel(0, 0).0[0], 0);
    }

    #[test]
    fn crop_pads_small_images_with_zeros() {
        let img = RgbImage::from_pixel(3, 2, Rgb([9, 9, 9]));
        let c = center_crop(&img, (4, 5));
        // top = (2 - 4) // 2 = -1, left = (3 - 5) // 2 = -1.
        assert_eq!(c.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(c.get_pixel(1, 1).0, [9, 9, 9]);
        assert_eq!(c.get_pixel(3, 2).0, [9, 9, 9]);
        assert_eq!(c.get_pixel(4, 3).0, [0, 0, 0]);
    }

    #[test]
    fn pad_to_square_centres_on_the_fill() {
        let fill = fill_from_mean([0.5, 0.5, 0.5]);
        assert_eq!(fill, [127, 127, 127]);
        let wide = RgbImage::from_pixel(5, 2, Rgb([9, 8, 7]));
        let sq = pad_to_square(&wide, fill);
        assert_eq!((sq.width(), sq.height()), (5, 5));
        // (5 - 2) // 2 = 1 row above, 2 below.
        let rows: Vec<[u8; 3]> = (0..5).map(|y| sq.get_pixel(0, y).0).collect();
        assert_eq!(rows, vec![fill, [9, 8, 7], [9, 8, 7], fill, fill]);
        let tall = RgbImage::from_pixel(1, 4, Rgb([1, 2, 3]));
        let sq = pad_to_square(&tall, [0, 0, 0]);
        assert_eq!((sq.get_pixel(0, 0).0, sq.get_pixel(1, 0).0, sq.get_pixel(2, 3).0), ([0; 3], [1, 2, 3], [0; 3]));
    }

    #[test]
    fn chw_rescales_in_f64_then_normalises_in_f32() {
        let img = RgbImage::from_fn(2, 1, |x, _| Rgb([x as u8 * 255, 128, 0]));
        let n = Normalize { rescale: Some(1.0 / 255.0), mean_std: Some(([0.5; 3], [0.25; 3])) };
        let v = to_chw(&img, &n);
        let mid = ((128.0f64 / 255.0) as f32 - 0.5) / 0.25;
        assert_eq!(v, vec![-2.0, 2.0, mid, mid, -2.0, -2.0]);
        assert_eq!(to_chw(&img, &Normalize { rescale: None, mean_std: None }), vec![0.0, 255.0, 128.0, 128.0, 0.0, 0.0]);
    }
}

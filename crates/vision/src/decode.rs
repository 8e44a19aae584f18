//! Image files to 8-bit RGB, converted the way transformers' image processors
//! convert a PIL image (`convert_to_rgb`):
//!
//! - grayscale is replicated into the three channels;
//! - an image with alpha (RGBA, gray + alpha, or a palette or grayscale PNG
//!   with a `tRNS` transparency chunk, which the decoder expands to alpha) is
//!   composited over a white background with Pillow's integer
//!   `alpha_composite` arithmetic;
//! - 16-bit samples keep their high byte, as Pillow does when it opens a
//!   16-bit colour PNG (Pillow clips 16-bit grayscale to 255 instead, which
//!   whitens the image; the high byte is used here for every 16-bit input).
//!
//! The EXIF orientation is applied, as transformers' `load_image` does.
//! Formats: PNG, JPEG, GIF (first frame), BMP and WebP.

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};
use std::io::Cursor;
use std::path::Path;
use tessera_hf::{read_file, Error, Result};

/// Reads and decodes the image file at `path` to RGB.
pub fn load_image(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    decode_image(&read_file(path)?, &path.display().to_string())
}

/// Decodes an encoded image (PNG, JPEG, GIF, BMP, WebP) to RGB; `name` names
/// it in errors.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<RgbImage> {
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| Error::image(name, format!("cannot read: {e}")))?;
    if reader.format().is_none() {
        return Err(Error::image(name, "unrecognised image format (supported: PNG, JPEG, GIF, BMP, WebP)"));
    }
    let mut decoder = reader.into_decoder().map_err(|e| Error::image(name, decode_message(&e)))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::image(name, format!("the image is empty ({w}x{h} pixels)")));
    }
    let orientation = decoder.orientation().map_err(|e| Error::image(name, decode_message(&e)))?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| Error::image(name, decode_message(&e)))?;
    img.apply_orientation(orientation);
    to_rgb8(img, name)
}

fn decode_message(e: &image::ImageError) -> String {
    match e {
        image::ImageError::Unsupported(u) => format!("unsupported image: {u}"),
        other => format!("cannot decode: {other}"),
    }
}

/// Converts a decoded image to 8-bit RGB (see the module docs).
pub fn to_rgb8(img: DynamicImage, name: &str) -> Result<RgbImage> {
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(Error::image(name, format!("the image is empty ({w}x{h} pixels)")));
    }
    let high = |v: &[u16]| -> Vec<u8> { v.iter().map(|&s| (s >> 8) as u8).collect() };
    let (channels, samples): (usize, Vec<u8>) = match img {
        DynamicImage::ImageRgb8(rgb) => return Ok(rgb),
        DynamicImage::ImageLuma8(g) => (1, g.into_raw()),
        DynamicImage::ImageLumaA8(g) => (2, g.into_raw()),
        DynamicImage::ImageRgba8(c) => (4, c.into_raw()),
        DynamicImage::ImageLuma16(g) => (1, high(g.as_raw())),
        DynamicImage::ImageLumaA16(g) => (2, high(g.as_raw())),
        DynamicImage::ImageRgb16(c) => (3, high(c.as_raw())),
        DynamicImage::ImageRgba16(c) => (4, high(c.as_raw())),
        other => return Err(Error::image(name, format!("unsupported pixel format {:?} (floating-point images)", other.color()))),
    };
    let mut rgb = Vec::with_capacity(w as usize * h as usize * 3);
    for px in samples.chunks_exact(channels) {
        let (color, alpha) = match channels {
            1 => ([px[0]; 3], None),
            2 => ([px[0]; 3], Some(px[1])),
            3 => ([px[0], px[1], px[2]], None),
            _ => ([px[0], px[1], px[2]], Some(px[3])),
        };
        match alpha {
            Some(a) => rgb.extend(over_white(color, a)),
            None => rgb.extend(color),
        }
    }
    Ok(RgbImage::from_raw(w, h, rgb).expect("three samples per pixel"))
}

/// `src` with alpha `a` composited over opaque white, as Pillow's
/// `alpha_composite` computes it (7 fractional bits, rounded divisions by 255).
fn over_white(src: [u8; 3], a: u8) -> [u8; 3] {
    const BITS: u32 = 7;
    if a == 0 {
        return [255; 3];
    }
    let a = a as u32;
    let blend = 255 * (255 - a);
    let outa255 = a * 255 + blend;
    let coef1 = a * 255 * 255 * (1 << BITS) / outa255;
    let coef2 = 255 * (1 << BITS) - coef1;
    let div255 = |v: u32| ((v >> 8) + v) >> 8;
    src.map(|c| (div255(c as u32 * coef1 + 255 * coef2 + (0x80 << BITS)) >> BITS) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compositing_matches_pillow_at_the_ends() {
        assert_eq!(over_white([10, 20, 30], 255), [10, 20, 30]);
        assert_eq!(over_white([10, 20, 30], 0), [255, 255, 255]);
        // Pillow: alpha_composite(white, (0, 128, 255, 128)) = (127, 191, 255).
        assert_eq!(over_white([0, 128, 255], 128), [127, 191, 255]);
    }
}

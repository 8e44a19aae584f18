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
//!
//! Hostile files are rejected before they cost memory or yield invented
//! pixels:
//!
//! - Size: the width, height and decoded size a header claims are checked
//!   against [`DecodeLimits`] before any pixel is allocated (defaults
//!   16384 pixels a side and 512 MiB; `TESSERA_MAX_IMAGE_SIDE` and
//!   `TESSERA_MAX_IMAGE_BYTES` raise them for [`load_image`] and
//!   [`decode_image`], [`load_image_with`] and [`decode_image_with`] take
//!   them as an argument).
//! - Completeness: a file cut short or whose data stops before the pixels
//!   its header claims is an error, never padded. The PNG, GIF, WebP and
//!   BMP decoders fail on image data that ends early; a PNG must also reach
//!   its `IEND` chunk. The JPEG decoder (zune-jpeg, which the image crate
//!   runs in its lenient mode) fills what is missing with grey, so every
//!   JPEG's Huffman-coded data is first walked block by block to its
//!   end-of-image marker (see `jpeg.rs`).

mod jpeg;
mod limits;
mod png;

pub use limits::DecodeLimits;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};
use std::io::Cursor;
use std::path::Path;
use tessera_hf::{read_file, Error, Result};

/// Reads and decodes the image file at `path` to RGB, within the limits of
/// [`DecodeLimits::from_env`].
pub fn load_image(path: impl AsRef<Path>) -> Result<RgbImage> {
    load_image_with(path, &DecodeLimits::from_env()?)
}

/// Reads and decodes the image file at `path` to RGB, within `limits`.
pub fn load_image_with(path: impl AsRef<Path>, limits: &DecodeLimits) -> Result<RgbImage> {
    let path = path.as_ref();
    decode_image_with(&read_file(path)?, &path.display().to_string(), limits)
}

/// Decodes an encoded image (PNG, JPEG, GIF, BMP, WebP) to RGB within the
/// limits of [`DecodeLimits::from_env`]; `name` names it in errors.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<RgbImage> {
    decode_image_with(bytes, name, &DecodeLimits::from_env()?)
}

/// Decodes an encoded image (PNG, JPEG, GIF, BMP, WebP) to RGB within
/// `limits`; `name` names it in errors.
pub fn decode_image_with(bytes: &[u8], name: &str, limits: &DecodeLimits) -> Result<RgbImage> {
    let mut reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| Error::image(name, format!("cannot read: {e}")))?;
    let Some(format) = reader.format() else {
        return Err(Error::image(name, "unrecognised image format (supported: PNG, JPEG, GIF, BMP, WebP)"));
    };
    reader.limits(limits.header_limits());
    let mut decoder = reader.into_decoder().map_err(|e| Error::image(name, decode_message(&e)))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::image(name, format!("the image is empty ({w}x{h} pixels)")));
    }
    limits.check(name, (w, h), decoder.color_type(), decoder.total_bytes())?;
    decoder.set_limits(limits.image_limits()).map_err(|e| Error::image(name, decode_message(&e)))?;
    match format {
        ImageFormat::Jpeg => jpeg::check_complete(bytes),
        ImageFormat::Png => png::check_complete(bytes),
        _ => Ok(()),
    }
    .map_err(|msg| Error::image(name, format!("cannot decode: {msg}")))?;
    let orientation = decoder.orientation().map_err(|e| Error::image(name, decode_message(&e)))?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| Error::image(name, decode_message(&e)))?;
    img.apply_orientation(orientation);
    to_rgb8(img, name)
}

/// The decoder's message on one line (some decoders end theirs with a
/// line break or spread it over several).
fn decode_message(e: &image::ImageError) -> String {
    let msg = match e {
        image::ImageError::Unsupported(u) => format!("unsupported image: {u}"),
        image::ImageError::Limits(l) => format!("over the decoding limits: {l}"),
        other => format!("cannot decode: {other}"),
    };
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Converts a decoded image to 8-bit RGB (see the module docs); an error
/// rather than an abort when the memory for the copy cannot be had.
pub fn to_rgb8(img: DynamicImage, name: &str) -> Result<RgbImage> {
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(Error::image(name, format!("the image is empty ({w}x{h} pixels)")));
    }
    let (channels, samples): (usize, Vec<u8>) = match img {
        DynamicImage::ImageRgb8(rgb) => return Ok(rgb),
        DynamicImage::ImageLuma8(g) => (1, g.into_raw()),
        DynamicImage::ImageLumaA8(g) => (2, g.into_raw()),
        DynamicImage::ImageRgba8(c) => (4, c.into_raw()),
        DynamicImage::ImageLuma16(g) => (1, high_bytes(g.as_raw(), name)?),
        DynamicImage::ImageLumaA16(g) => (2, high_bytes(g.as_raw(), name)?),
        DynamicImage::ImageRgb16(c) => (3, high_bytes(c.as_raw(), name)?),
        DynamicImage::ImageRgba16(c) => (4, high_bytes(c.as_raw(), name)?),
        other => return Err(Error::image(name, format!("unsupported pixel format {:?} (floating-point images)", other.color()))),
    };
    let mut rgb = buffer(name, w, h, 3)?;
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
    RgbImage::from_raw(w, h, rgb).ok_or_else(|| Error::image(name, format!("the decoded samples do not fill {w}x{h} RGB pixels")))
}

/// The high byte of each 16-bit sample.
fn high_bytes(samples: &[u16], name: &str) -> Result<Vec<u8>> {
    let mut out = reserve(name, samples.len())?;
    out.extend(samples.iter().map(|&s| (s >> 8) as u8));
    Ok(out)
}

/// An empty vector with room for `w * h * channels` bytes.
fn buffer(name: &str, w: u32, h: u32, channels: usize) -> Result<Vec<u8>> {
    let len = (w as usize).checked_mul(h as usize).and_then(|n| n.checked_mul(channels));
    let len = len.ok_or_else(|| Error::image(name, format!("{w}x{h} pixels of {channels} bytes overflow the address space")))?;
    reserve(name, len)
}

fn reserve(name: &str, len: usize) -> Result<Vec<u8>> {
    Ok(tessera_tensor::try_vec(len, &format!("the RGB copy of image {name}"))?)
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

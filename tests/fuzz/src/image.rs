//! Images: `tessera_vision::decode_image` on mutated PNG, JPEG, GIF, BMP
//! and WebP files (seeds encoded with the `image` crate in several pixel
//! formats); a small image that decodes is also preprocessed with CLIP's
//! processor.
//!
//! Mutations: truncation at every chunk, segment or block boundary, header
//! fields (dimensions, bit depths, colour types, component counts, offsets)
//! set to boundary values with the checksums fixed so the decoder believes
//! them, EXIF orientations (valid, invalid, corrupt), bit flips and
//! interesting bytes.

use crate::mutate::{self, read_u32_be, read_u32_le, INTERESTING_U32};
use crate::{fill, Case, Outcome, Rng};
use ::image::{DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};
use std::io::Cursor;
use tessera_clip::clip_processor;
use tessera_vision::decode_image;

/// The target's name.
pub const TARGET: &str = "image";
/// Cases in the corpus.
pub const CASES: usize = 3000;

/// An image format of the seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Jpeg,
    Gif,
    Bmp,
    WebP,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpg",
            Format::Gif => "gif",
            Format::Bmp => "bmp",
            Format::WebP => "webp",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Format::Png => ImageFormat::Png,
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Gif => ImageFormat::Gif,
            Format::Bmp => ImageFormat::Bmp,
            Format::WebP => ImageFormat::WebP,
        }
    }
}

/// A seed image file.
#[derive(Clone, Debug)]
pub struct Seed {
    /// `png-rgb` ...
    pub name: String,
    /// Its format.
    pub format: Format,
    /// The encoded file.
    pub bytes: Vec<u8>,
}

fn gradient(w: u32, h: u32) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    ImageBuffer::from_fn(w, h, |x, y| Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, ((x ^ y) * 16) as u8]))
}

fn encode(image: &DynamicImage, format: Format) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format.image_format()).unwrap_or_else(|e| panic!("harness: cannot encode a {format:?} seed: {e}"));
    out.into_inner()
}

/// The seed files.
pub fn seeds() -> Vec<Seed> {
    let rgb = DynamicImage::ImageRgb8(gradient(16, 12));
    let rgba =
        DynamicImage::ImageRgba8(ImageBuffer::from_fn(9, 7, |x, y| Rgba([(x * 28) as u8, (y * 36) as u8, 200, ((x + y) * 16) as u8])));
    let gray = DynamicImage::ImageLuma8(ImageBuffer::from_fn(8, 8, |x, y| Luma([((x * 8 + y) * 4) as u8])));
    let gray_alpha = DynamicImage::ImageLumaA8(ImageBuffer::from_fn(6, 6, |x, y| LumaA([(x * 40) as u8, (y * 40) as u8])));
    let rgb16 = DynamicImage::ImageRgb16(ImageBuffer::from_fn(5, 4, |x, y| Rgb([(x * 13_000) as u16, (y * 16_000) as u16, 65_535])));
    let seed = |name: &str, image: &DynamicImage, format: Format| Seed { name: name.to_string(), format, bytes: encode(image, format) };
    vec![
        seed("png-rgb", &rgb, Format::Png),
        seed("png-rgba", &rgba, Format::Png),
        seed("png-gray", &gray, Format::Png),
        seed("png-gray-alpha", &gray_alpha, Format::Png),
        seed("png-rgb16", &rgb16, Format::Png),
        seed("jpeg-rgb", &rgb, Format::Jpeg),
        seed("jpeg-gray", &gray, Format::Jpeg),
        seed("gif-rgba", &rgba, Format::Gif),
        seed("gif-rgb", &rgb, Format::Gif),
        seed("bmp-rgb", &rgb, Format::Bmp),
        seed("bmp-rgba", &rgba, Format::Bmp),
        seed("webp-rgb", &rgb, Format::WebP),
        seed("webp-rgba", &rgba, Format::WebP),
    ]
}

// ------------------------------------------------------------ structure

/// CRC-32 (IEEE), as PNG chunks use it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// PNG chunks: (offset of the length field, data length, type).
fn png_chunks(bytes: &[u8]) -> Vec<(usize, usize, [u8; 4])> {
    let mut out = Vec::new();
    let mut at = 8;
    while let Some(len) = read_u32_be(bytes, at) {
        let Some(kind) = bytes.get(at + 4..at + 8).and_then(|k| <[u8; 4]>::try_from(k).ok()) else { break };
        out.push((at, len as usize, kind));
        at += 12 + len as usize;
    }
    out
}

/// Recomputes the CRC of the PNG chunk whose length field is at `at`.
fn fix_png_crc(bytes: &mut [u8], at: usize) {
    let Some(len) = read_u32_be(bytes, at) else { return };
    let end = at + 8 + len as usize;
    if end + 4 <= bytes.len() {
        let crc = crc32(&bytes[at + 4..end]);
        bytes[end..end + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// JPEG marker positions (0xFF followed by a marker code).
fn jpeg_markers(bytes: &[u8]) -> Vec<usize> {
    (0..bytes.len().saturating_sub(1)).filter(|&i| bytes[i] == 0xff && !matches!(bytes[i + 1], 0x00 | 0xff)).collect()
}

/// RIFF chunk offsets of a WebP file (from 12).
fn riff_chunks(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 12;
    while let Some(len) = read_u32_le(bytes, at + 4) {
        out.push(at);
        at += 8 + (len as usize).next_multiple_of(2);
    }
    out
}

/// Where the regions of a file begin and end.
fn boundaries(seed: &Seed) -> Vec<usize> {
    let b = &seed.bytes;
    match seed.format {
        Format::Png => png_chunks(b).iter().flat_map(|&(at, len, _)| [at, at + 4, at + 8, at + 8 + len, at + 12 + len]).collect(),
        Format::Jpeg => jpeg_markers(b).iter().flat_map(|&m| [m, m + 2, m + 4]).collect(),
        Format::Gif => {
            let table = if b.get(10).is_some_and(|f| f & 0x80 != 0) { 3 << ((b[10] & 7) + 1) } else { 0 };
            let mut out = vec![3, 6, 10, 13, 13 + table];
            out.extend(b.iter().enumerate().skip(13 + table).filter(|(_, &v)| v == 0x2c || v == 0x21 || v == 0x3b).map(|(i, _)| i).take(8));
            out
        }
        Format::Bmp => {
            let dib = read_u32_le(b, 14).unwrap_or(40) as usize;
            let pixels = read_u32_le(b, 10).unwrap_or(54) as usize;
            vec![2, 14, 18, 22, 26, 28, 30, 14 + dib, pixels]
        }
        Format::WebP => riff_chunks(b).iter().flat_map(|&at| [at, at + 4, at + 8, at + 9, at + 13]).chain([4, 8]).collect(),
    }
}

// ----------------------------------------------------------- mutations

/// A case for a mutated file.
fn image_case(seed: &Seed, label: String, bytes: Vec<u8>) -> Case {
    Case::files(format!("{}/{label}", seed.name), vec![(format!("fuzz.{}", seed.format.extension()), bytes)])
}

/// Pairs of claimed dimensions.
fn dimension_pairs(max: u32) -> Vec<(u32, u32)> {
    let values: Vec<u32> = INTERESTING_U32.iter().copied().filter(|&v| v <= max).collect();
    let mut out = Vec::new();
    for &w in &values {
        for &h in &[0, 1, 0xffff.min(max), max] {
            out.push((w, h));
        }
    }
    out.dedup();
    out
}

/// PNG: IHDR dimensions, depth, colour type, compression, filter and
/// interlace fields, with the CRC fixed (and once without).
fn png_mutations(seed: &Seed, out: &mut Vec<Case>) {
    let chunks = png_chunks(&seed.bytes);
    let Some(&(ihdr, _, _)) = chunks.iter().find(|c| &c.2 == b"IHDR") else { return };
    for (w, h) in dimension_pairs(u32::MAX) {
        let mut b = mutate::overwrite(&seed.bytes, ihdr + 8, &w.to_be_bytes());
        b = mutate::overwrite(&b, ihdr + 12, &h.to_be_bytes());
        let unfixed = b.clone();
        fix_png_crc(&mut b, ihdr);
        out.push(image_case(seed, format!("ihdr={w}x{h}"), b));
        if (w, h) == (0xffff, 0xffff) {
            out.push(image_case(seed, format!("ihdr={w}x{h}-bad-crc"), unfixed));
        }
    }
    for (field, offset) in [("depth", 16), ("color", 17), ("compression", 18), ("filter", 19), ("interlace", 20)] {
        for v in [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 16, 255] {
            let mut b = mutate::overwrite(&seed.bytes, ihdr + offset, &[v]);
            fix_png_crc(&mut b, ihdr);
            out.push(image_case(seed, format!("ihdr-{field}={v}"), b));
        }
    }
    // Chunk lengths set to lies (CRC then misplaced).
    for &(at, _, kind) in chunks.iter().take(4) {
        for len in [0u32, 1, 0x7fff_ffff, u32::MAX] {
            let b = mutate::overwrite(&seed.bytes, at, &len.to_be_bytes());
            out.push(image_case(seed, format!("{}-len={len}", String::from_utf8_lossy(&kind)), b));
        }
    }
    // An eXIf chunk with each orientation, inserted after IHDR.
    for (label, exif) in exif_payloads() {
        let mut chunk = (exif.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(b"eXIf");
        chunk.extend_from_slice(&exif);
        chunk.extend_from_slice(&crc32(&chunk[4..]).to_be_bytes());
        let at = ihdr + 25;
        let b = [&seed.bytes[..at], &chunk, &seed.bytes[at..]].concat();
        out.push(image_case(seed, format!("exif-{label}"), b));
    }
}

/// TIFF payloads of an EXIF block with one orientation entry: every
/// orientation value, and corrupt entries. (label, bytes).
fn exif_payloads() -> Vec<(String, Vec<u8>)> {
    let tiff = |orientation: u16, kind: u16, count: u32, ifd: u32| {
        let mut t = b"II*\0".to_vec();
        t.extend_from_slice(&ifd.to_le_bytes());
        t.extend_from_slice(&1u16.to_le_bytes());
        t.extend_from_slice(&0x0112u16.to_le_bytes());
        t.extend_from_slice(&kind.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&u32::from(orientation).to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        t
    };
    let mut out: Vec<(String, Vec<u8>)> =
        [0u16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xffff].iter().map(|&o| (format!("orientation={o}"), tiff(o, 3, 1, 8))).collect();
    out.push(("count-huge".into(), tiff(6, 3, u32::MAX, 8)));
    out.push(("type-long".into(), tiff(6, 4, 1, 8)));
    out.push(("ifd-outside".into(), tiff(6, 3, 1, u32::MAX)));
    out.push(("ifd-loop".into(), tiff(6, 3, 1, 0)));
    out.push(("truncated".into(), b"II*\0\x08\0\0\0\x05".to_vec()));
    out
}

/// JPEG: the frame header's precision, dimensions and component count; an
/// APP1 EXIF segment with each orientation.
fn jpeg_mutations(seed: &Seed, out: &mut Vec<Case>) {
    let b = &seed.bytes;
    if let Some(sof) = jpeg_markers(b).into_iter().find(|&m| matches!(b[m + 1], 0xc0..=0xc2)) {
        for (w, h) in dimension_pairs(0xffff) {
            let mut m = mutate::overwrite(b, sof + 5, &(h as u16).to_be_bytes());
            m = mutate::overwrite(&m, sof + 7, &(w as u16).to_be_bytes());
            out.push(image_case(seed, format!("sof={w}x{h}"), m));
        }
        for v in [0u8, 1, 2, 4, 8, 12, 16, 255] {
            out.push(image_case(seed, format!("sof-precision={v}"), mutate::overwrite(b, sof + 4, &[v])));
            out.push(image_case(seed, format!("sof-components={v}"), mutate::overwrite(b, sof + 9, &[v])));
        }
        for len in [0u16, 1, 2, 0xffff] {
            out.push(image_case(seed, format!("sof-len={len}"), mutate::overwrite(b, sof + 2, &len.to_be_bytes())));
        }
    }
    for (label, tiff) in exif_payloads() {
        let mut segment = vec![0xff, 0xe1];
        segment.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
        segment.extend_from_slice(b"Exif\0\0");
        segment.extend_from_slice(&tiff);
        let m = [&b[..2], &segment, &b[2..]].concat();
        out.push(image_case(seed, format!("exif-{label}"), m));
    }
}

/// GIF: the logical screen's and the first frame's dimensions, the colour
/// table flags.
fn gif_mutations(seed: &Seed, out: &mut Vec<Case>) {
    let b = &seed.bytes;
    for (w, h) in dimension_pairs(0xffff) {
        let mut m = mutate::overwrite(b, 6, &(w as u16).to_le_bytes());
        m = mutate::overwrite(&m, 8, &(h as u16).to_le_bytes());
        out.push(image_case(seed, format!("screen={w}x{h}"), m.clone()));
        if let Some(frame) = m.iter().skip(13).position(|&v| v == 0x2c).map(|p| p + 13) {
            let mut f = mutate::overwrite(&m, frame + 5, &(w as u16).to_le_bytes());
            f = mutate::overwrite(&f, frame + 7, &(h as u16).to_le_bytes());
            out.push(image_case(seed, format!("frame={w}x{h}"), f));
        }
    }
    for flags in [0u8, 0x80, 0x87, 0xff] {
        out.push(image_case(seed, format!("flags={flags:#x}"), mutate::overwrite(b, 10, &[flags])));
    }
}

/// BMP: width, height (negative is top-down), bit count, compression,
/// pixel offset, header size.
fn bmp_mutations(seed: &Seed, out: &mut Vec<Case>) {
    let b = &seed.bytes;
    let dims: [i32; 8] = [0, 1, -1, 0xffff, -0xffff, i32::MAX, i32::MIN, 1 << 16];
    for &w in &dims {
        for &h in &dims {
            let mut m = mutate::overwrite(b, 18, &w.to_le_bytes());
            m = mutate::overwrite(&m, 22, &h.to_le_bytes());
            out.push(image_case(seed, format!("dims={w}x{h}"), m));
        }
    }
    for bits in [0u16, 1, 2, 4, 7, 8, 15, 16, 24, 32, 64, 0xffff] {
        out.push(image_case(seed, format!("bits={bits}"), mutate::overwrite(b, 28, &bits.to_le_bytes())));
    }
    for compression in [0u32, 1, 2, 3, 4, 5, 6, 99, u32::MAX] {
        out.push(image_case(seed, format!("compression={compression}"), mutate::overwrite(b, 30, &compression.to_le_bytes())));
    }
    for (field, at) in [("pixel-offset", 10), ("header-size", 14), ("file-size", 2), ("colors-used", 46)] {
        for v in [0u32, 1, 12, 40, 0xffff, u32::MAX] {
            out.push(image_case(seed, format!("{field}={v}"), mutate::overwrite(b, at, &v.to_le_bytes())));
        }
    }
}

/// WebP: the RIFF and chunk sizes, the lossless header's 14-bit
/// dimensions.
fn webp_mutations(seed: &Seed, out: &mut Vec<Case>) {
    let b = &seed.bytes;
    for at in [4usize].into_iter().chain(riff_chunks(b).into_iter().map(|c| c + 4)) {
        for len in [0u32, 1, 0x7fff_ffff, u32::MAX] {
            out.push(image_case(seed, format!("size@{at}={len}"), mutate::overwrite(b, at, &len.to_le_bytes())));
        }
    }
    if b.get(12..16) == Some(b"VP8L") {
        for (w, h) in [(1u32, 1u32), (16384, 16384), (16384, 1), (1, 16384), (8192, 8192)] {
            let bits = (w - 1) | ((h - 1) << 14) | (read_u32_le(b, 21).unwrap_or(0) & 0xf000_0000);
            out.push(image_case(seed, format!("vp8l={w}x{h}"), mutate::overwrite(b, 21, &bits.to_le_bytes())));
        }
        for sig in [0u8, 0x2e, 0xff] {
            out.push(image_case(seed, format!("vp8l-signature={sig:#x}"), mutate::overwrite(b, 20, &[sig])));
        }
    }
}

/// The systematic cases of one seed.
fn seed_cases(seed: &Seed, out: &mut Vec<Case>) {
    out.push(image_case(seed, "valid".into(), seed.bytes.clone()));
    for len in mutate::boundary_lengths(seed.bytes.len(), &boundaries(seed)) {
        out.push(image_case(seed, format!("truncate@{len}"), mutate::truncate(&seed.bytes, len)));
    }
    match seed.format {
        Format::Png => png_mutations(seed, out),
        Format::Jpeg => jpeg_mutations(seed, out),
        Format::Gif => gif_mutations(seed, out),
        Format::Bmp => bmp_mutations(seed, out),
        Format::WebP => webp_mutations(seed, out),
    }
}

/// A random case: havoc anywhere in a random seed, or only in its first
/// 64 bytes (the headers).
fn random_case(seeds: &[Seed], rng: &mut Rng, i: usize) -> Case {
    let seed = rng.pick(seeds);
    let end = if rng.one_in(2) { 64 } else { seed.bytes.len() };
    let (label, bytes) = mutate::havoc(&seed.bytes, rng, 0..end);
    image_case(seed, format!("random#{i}/{label}"), bytes)
}

/// [`CASES`] cases from `seed`.
pub fn corpus(seed: u64) -> Vec<Case> {
    let mut rng = Rng::for_stream(seed, TARGET);
    let seeds = seeds();
    let mut systematic = vec![
        Case::files("empty", vec![("fuzz.png".into(), Vec::new())]),
        Case::files("png-signature-only", vec![("fuzz.png".into(), b"\x89PNG\r\n\x1a\n".to_vec())]),
        Case::files("text", vec![("fuzz.txt".into(), b"not an image".to_vec())]),
    ];
    for seed in &seeds {
        seed_cases(seed, &mut systematic);
    }
    fill(systematic, CASES, &mut rng, |rng, i| random_case(&seeds, rng, i))
}

/// Decodes the case's image; a small one is preprocessed too.
fn decode_and_preprocess(case: &Case) -> tessera_hf::Result<()> {
    let (name, bytes) = case.files.first().map(|(n, b)| (n.as_str(), b.as_slice())).unwrap_or_default();
    let image = decode_image(bytes, name)?;
    let (w, h) = (image.width() as usize, image.height() as usize);
    assert_eq!(image.as_raw().len(), w * h * 3, "invariant: an RGB image holds 3 samples per pixel");
    if w * h <= 1 << 16 {
        clip_processor(32).preprocess(&image)?;
    }
    Ok(())
}

/// Runs one case.
pub fn run(case: &Case) -> Outcome {
    Outcome::of(decode_and_preprocess(case))
}

/// libFuzzer's input: the bytes are an image file.
pub fn from_fuzz_input(data: &[u8]) -> Case {
    Case::files("libfuzzer", vec![("fuzz.bin".into(), data.to_vec())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_png_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
    }
}

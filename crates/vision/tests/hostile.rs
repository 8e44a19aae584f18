//! Hostile and damaged image files: size bombs are rejected from the header,
//! before any pixel is allocated, and cut or short files are errors, never
//! padded images.

use image::{DynamicImage, ImageFormat, RgbImage};
use std::io::Cursor;
use std::path::Path;
use tessera_hf::Error;
use tessera_vision::{decode_image, decode_image_with, load_image_with, DecodeLimits};

fn pattern(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8]))
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).expect("encoding a test image");
    out
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    encode(DynamicImage::ImageRgb8(pattern(w, h)), ImageFormat::Jpeg)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)).expect("fixture")
}

/// `jpeg` with the size in its baseline frame header (SOF0) replaced.
fn with_claimed_size(mut jpeg: Vec<u8>, w: u16, h: u16) -> Vec<u8> {
    let sof = jpeg.windows(2).position(|m| m == [0xFF, 0xC0]).expect("a baseline JPEG");
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpeg
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend(kind);
    out.extend(data);
    out.extend(crc32(&[kind.as_slice(), data].concat()).to_be_bytes());
    out
}

/// A PNG signature and a valid IHDR claiming `w`x`h` 8-bit RGB, then the
/// start of an IDAT chunk: all a decoder reads before it allocates.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut out = vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1A, b'\n'];
    out.extend(chunk(b"IHDR", &ihdr));
    out.extend(chunk(b"IDAT", &[0x78, 0x9C, 0x63, 0x60]));
    out
}

/// The message of an image error naming `name`; panics on anything else.
fn image_error(result: tessera_hf::Result<RgbImage>, name: &str) -> String {
    match result {
        Err(Error::Image { source_name, msg }) => {
            assert_eq!(source_name, name);
            msg
        }
        Err(other) => panic!("{name}: expected an image error, got {other}"),
        Ok(img) => panic!("{name}: decoded to {}x{} instead of failing", img.width(), img.height()),
    }
}

fn generous() -> DecodeLimits {
    DecodeLimits { max_width: 65535, max_height: 65535, max_bytes: 64 << 30 }
}

#[test]
fn a_jpeg_claiming_65535_pixels_a_side_is_rejected_from_its_header() {
    let bomb = with_claimed_size(jpeg(40, 30), 65535, 65535);
    let msg = image_error(decode_image_with(&bomb, "bomb.jpg", &DecodeLimits::default()), "bomb.jpg");
    for part in ["65535x65535", "16384x16384", "TESSERA_MAX_IMAGE_SIDE"] {
        assert!(msg.contains(part), "{msg}");
    }
    let side_ok = DecodeLimits { max_width: 65535, max_height: 65535, ..DecodeLimits::default() };
    let msg = image_error(decode_image_with(&bomb, "bomb.jpg", &side_ok), "bomb.jpg");
    for part in ["65535x65535", "12.0 GiB", "512.0 MiB", "TESSERA_MAX_IMAGE_BYTES"] {
        assert!(msg.contains(part), "{msg}");
    }
}

#[test]
fn a_jpeg_with_less_scan_data_than_its_size_needs_is_an_error() {
    // 40x30 pixels of scan data under a header claiming 20000x20000: the
    // default limits refuse the size, and limits that allow it find the
    // data short before allocating the 1.1 GiB the header asks for.
    let short = with_claimed_size(jpeg(40, 30), 20000, 20000);
    let msg = image_error(decode_image_with(&short, "short.jpg", &DecodeLimits::default()), "short.jpg");
    assert!(msg.contains("20000x20000"), "{msg}");
    let msg = image_error(decode_image_with(&short, "short.jpg", &generous()), "short.jpg");
    assert!(msg.contains("scan data ends after") && msg.contains("of the 18750000 blocks"), "{msg}");
    // Within the default limits too.
    let short = with_claimed_size(jpeg(40, 30), 400, 300);
    let msg = image_error(decode_image(&short, "short.jpg"), "short.jpg");
    assert!(msg.contains("scan data ends after"), "{msg}");
}

#[test]
fn a_png_claiming_20000x20000_is_rejected_before_any_pixel_is_read() {
    let header = png_header(20000, 20000);
    let msg = image_error(decode_image_with(&header, "big.png", &DecodeLimits::default()), "big.png");
    assert!(msg.contains("20000x20000") && msg.contains("16384x16384"), "{msg}");
    let side_ok = DecodeLimits { max_width: 20000, max_height: 20000, ..DecodeLimits::default() };
    let msg = image_error(decode_image_with(&header, "big.png", &side_ok), "big.png");
    assert!(msg.contains("1.1 GiB once decoded") && msg.contains("512.0 MiB") && msg.contains("TESSERA_MAX_IMAGE_BYTES"), "{msg}");
    // Allowed, the same header reaches the decoder, which finds the data
    // missing.
    let msg = image_error(decode_image_with(&header, "big.png", &generous()), "big.png");
    assert!(!msg.contains("limit"), "{msg}");
}

#[test]
fn limits_below_an_image_reject_it_and_limits_at_its_size_accept_it() {
    let png = encode(DynamicImage::ImageRgb8(pattern(100, 100)), ImageFormat::Png);
    for (name, bytes) in [("square.png", png), ("square.jpg", jpeg(100, 100))] {
        assert_eq!(decode_image_with(&bytes, name, &DecodeLimits::default()).unwrap().dimensions(), (100, 100));
        let narrow = DecodeLimits { max_width: 64, max_height: 64, ..DecodeLimits::default() };
        let msg = image_error(decode_image_with(&bytes, name, &narrow), name);
        assert!(msg.contains("100x100") && msg.contains("64x64"), "{msg}");
        let small = DecodeLimits { max_bytes: 29_999, ..DecodeLimits::default() };
        let msg = image_error(decode_image_with(&bytes, name, &small), name);
        assert!(msg.contains("29.3 KiB once decoded"), "{msg}");
        let exact = DecodeLimits { max_width: 100, max_height: 100, max_bytes: 30_000 };
        assert_eq!(decode_image_with(&bytes, name, &exact).unwrap().dimensions(), (100, 100));
    }
}

#[test]
fn loading_a_file_applies_the_limits_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.jpg");
    std::fs::write(&path, jpeg(100, 20)).unwrap();
    let narrow = DecodeLimits { max_width: 99, ..DecodeLimits::default() };
    let msg = image_error(load_image_with(&path, &narrow), &path.display().to_string());
    assert!(msg.contains("100x20") && msg.contains("99x16384"), "{msg}");
    assert_eq!(load_image_with(&path, &DecodeLimits::default()).unwrap().dimensions(), (100, 20));
}

/// Cut points through the whole file, the last bytes included.
fn cuts(len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = (1..24).map(|i| len * i / 24).collect();
    cuts.extend([len - 1, len - 2, len - 3, len - 8, len - 12, len - 13]);
    cuts
}

#[test]
fn a_png_cut_anywhere_is_an_error() {
    let png = encode(DynamicImage::ImageRgb8(pattern(64, 48)), ImageFormat::Png);
    assert!(decode_image(&png, "cut.png").is_ok());
    for cut in cuts(png.len()) {
        image_error(decode_image(&png[..cut], "cut.png"), "cut.png");
    }
}

#[test]
fn a_jpeg_cut_anywhere_is_an_error_even_with_an_end_marker_added() {
    let gray = encode(DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(pattern(61, 45)).to_luma8()), ImageFormat::Jpeg);
    let files = [
        ("rgb.jpg", jpeg(61, 45)),
        ("gray.jpg", gray),
        ("progressive_restart.jpg", fixture("progressive_restart.jpg")),
        ("progressive_gray.jpg", fixture("progressive_gray.jpg")),
        ("baseline_restart.jpg", fixture("baseline_restart.jpg")),
    ];
    for (name, jpeg) in files {
        assert_eq!(decode_image(&jpeg, name).unwrap().dimensions(), (61, 45), "{name}");
        for cut in cuts(jpeg.len()).into_iter().chain([jpeg.len() - 4, jpeg.len() - 5]) {
            image_error(decode_image(&jpeg[..cut], name), name);
            if cut < jpeg.len() - 2 {
                let mut ended = jpeg[..cut].to_vec();
                ended.extend([0xFF, 0xD9]);
                image_error(decode_image(&ended, name), name);
            }
        }
    }
}

#[test]
fn a_jpeg_decodes_the_same_with_data_after_its_end_marker() {
    let mut jpeg = fixture("progressive_restart.jpg");
    let whole = decode_image(&jpeg, "p.jpg").unwrap();
    jpeg.extend(b"\xFF\xD8 a second image or padding");
    assert_eq!(decode_image(&jpeg, "p.jpg").unwrap(), whole);
}

#[test]
fn gif_webp_and_bmp_cut_inside_their_pixels_are_errors() {
    let rgba = DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(pattern(64, 48)).to_rgba8());
    for (name, format) in [("cut.gif", ImageFormat::Gif), ("cut.webp", ImageFormat::WebP), ("cut.bmp", ImageFormat::Bmp)] {
        let bytes = encode(if format == ImageFormat::Bmp { DynamicImage::ImageRgb8(rgba.to_rgb8()) } else { rgba.clone() }, format);
        assert!(decode_image(&bytes, name).is_ok(), "{name}");
        // The GIF trailer and the end of its last data sub-block carry no
        // pixels; everything before them does.
        for cut in (1..16).map(|i| bytes.len() * i / 16).chain([bytes.len() - 12]) {
            image_error(decode_image(&bytes[..cut], name), name);
        }
    }
}

#[test]
fn damaged_files_are_errors_or_images_within_the_limits_never_panics() {
    let limits = DecodeLimits { max_width: 4096, max_height: 4096, max_bytes: 64 << 20 };
    let png = encode(DynamicImage::ImageRgb8(pattern(40, 30)), ImageFormat::Png);
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut failed, mut decoded) = (0, 0);
    for original in [jpeg(40, 30), fixture("progressive_restart.jpg"), png] {
        for _ in 0..300 {
            let mut bytes = original.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            match decode_image_with(&bytes, "damaged", &limits) {
                Ok(img) => {
                    assert!(img.width() <= 4096 && img.height() <= 4096);
                    decoded += 1;
                }
                Err(Error::Image { .. }) => failed += 1,
                Err(other) => panic!("not an image error: {other}"),
            }
        }
    }
    assert_eq!(failed + decoded, 900);
}

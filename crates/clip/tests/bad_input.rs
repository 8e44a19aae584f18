//! Bad inputs get clear, typed errors: corrupt, truncated, empty or
//! unsupported images, an empty label list, over-long texts (truncated as
//! transformers does), checkpoints with a missing or misshapen tensor, and
//! configs with unknown fields (ignored) or wrong types (an error naming the
//! field).

mod common;

use common::{fixtures, write_checkpoint};
use tessera_clip::imaging::decode_image;
use tessera_clip::{clip_processor, load_image, Clip, ClipOptions, Error, RgbImage};

fn tiny() -> (tempfile::TempDir, Clip) {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |_| {});
    let clip = Clip::from_dir(dir.path(), &ClipOptions::default()).unwrap();
    (dir, clip)
}

fn png_bytes() -> Vec<u8> {
    std::fs::read(fixtures().join("images/gradient.png")).unwrap()
}

fn assert_image_error(result: tessera_clip::Result<RgbImage>, needle: &str) {
    match result {
        Err(Error::Image { msg, .. }) => assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}"),
        other => panic!("expected an image error containing {needle:?}, got {other:?}"),
    }
}

#[test]
fn corrupt_image_is_an_image_error() {
    let mut bytes = png_bytes();
    // Keep the signature and header, scramble the compressed data.
    for b in bytes.iter_mut().skip(60).take(400) {
        *b ^= 0x5A;
    }
    assert_image_error(decode_image(&bytes, "corrupt.png"), "decode");
}

#[test]
fn truncated_image_is_an_image_error() {
    let bytes = png_bytes();
    assert_image_error(decode_image(&bytes[..bytes.len() / 2], "half.png"), "decode");
    let jpeg = std::fs::read(fixtures().join("images/astronaut.jpg")).unwrap();
    assert!(matches!(decode_image(&jpeg[..200], "head.jpg"), Err(Error::Image { .. })));
}

/// A PNG whose header says 0 x 5 pixels (checksums valid).
fn zero_width_png() -> Vec<u8> {
    fn chunk(kind: &[u8], body: &[u8]) -> Vec<u8> {
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(body);
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&crc_input);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        out
    }
    let mut ihdr = 0u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&5u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IEND", &[]));
    png
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn zero_sized_image_is_an_error() {
    assert!(matches!(decode_image(&zero_width_png(), "empty.png"), Err(Error::Image { .. })));
    let processor = clip_processor(224);
    assert_image_error(processor.resize_and_crop(&RgbImage::new(0, 0)), "empty");
    let (_dir, clip) = tiny();
    assert!(matches!(clip.embed_images(&[RgbImage::new(7, 0)]), Err(Error::Image { .. })));
}

#[test]
fn unsupported_format_is_named() {
    // A TIFF header (TIFF decoding is not built in) and plain text.
    assert_image_error(decode_image(b"II*\x00\x08\x00\x00\x00rest of a tiff", "scan.tiff"), "");
    assert_image_error(decode_image(b"just some text, not an image", "notes.txt"), "unrecognised image format");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.png");
    assert!(matches!(load_image(&path), Err(Error::Io { .. })));
}

#[test]
fn empty_label_list_is_an_error() {
    let (_dir, clip) = tiny();
    let image = load_image(fixtures().join("images/checker.png")).unwrap();
    let labels: [&str; 0] = [];
    match clip.classify(std::slice::from_ref(&image), &labels) {
        Err(Error::InvalidArgument { msg, .. }) => assert!(msg.contains("label list is empty"), "{msg}"),
        other => panic!("expected an invalid-argument error, got {other:?}"),
    }
    assert!(matches!(clip.classify(&[], &["a cat"]), Err(Error::InvalidArgument { .. })));
    // One label is a valid (if trivial) classification.
    let probs = clip.classify(&[image], &["a cat"]).unwrap();
    assert_eq!(probs, vec![vec![1.0]]);
}

#[test]
fn long_text_is_truncated_to_the_context() {
    let (_dir, clip) = tiny();
    let long = "a photo of a cat sitting on a mat ".repeat(40);
    let ids = clip.tokenizer().encode(&long).unwrap();
    assert_eq!(ids.len(), 77);
    assert_eq!(ids[0], clip.tokenizer().token_to_id("<|startoftext|>").unwrap());
    assert_eq!(ids[76], clip.tokenizer().token_to_id("<|endoftext|>").unwrap());
    let e = clip.embed_texts(&[long.as_str(), "a cat"]).unwrap();
    assert_eq!(e.dims(), &[2, 16]);
}

#[test]
fn missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let name = "vision_model.encoder.layers.1.mlp.fc1.weight";
    write_checkpoint(dir.path(), |list| list.retain(|(n, _)| n != name));
    let e = Clip::from_dir(dir.path(), &ClipOptions::default()).unwrap_err().to_string();
    assert!(e.contains(name) && e.contains("missing"), "{e}");
}

#[test]
fn misshapen_tensors_are_all_named() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |list| {
        for (n, shape) in list.iter_mut() {
            if n == "text_projection.weight" {
                *shape = vec![16, 31];
            }
            if n == "logit_scale" {
                *shape = vec![2];
            }
        }
    });
    let e = Clip::from_dir(dir.path(), &ClipOptions::default()).unwrap_err().to_string();
    assert!(e.contains("text_projection.weight") && e.contains("[16, 31]"), "{e}");
    assert!(e.contains("logit_scale"), "{e}");
}

#[test]
fn config_with_unknown_fields_loads_and_wrong_types_fail() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |_| {});
    let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    let with_unknown = config.replacen('{', r#"{"future_option": {"a": [1, 2]}, "torch_dtype": "float32", "#, 1);
    std::fs::write(dir.path().join("config.json"), &with_unknown).unwrap();
    Clip::from_dir(dir.path(), &ClipOptions::default()).unwrap();

    let wrong = config.replace(r#""hidden_size": 48"#, r#""hidden_size": "48""#);
    std::fs::write(dir.path().join("config.json"), wrong).unwrap();
    match Clip::from_dir(dir.path(), &ClipOptions::default()) {
        Err(Error::Config { msg, .. }) => assert!(msg.contains("vision_config.hidden_size"), "{msg}"),
        other => panic!("expected a config error, got {:?}", other.map(|_| ())),
    }
    std::fs::write(dir.path().join("config.json"), "{ truncated").unwrap();
    assert!(matches!(Clip::from_dir(dir.path(), &ClipOptions::default()), Err(Error::Config { .. })));
}

#[test]
fn bad_load_options_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |_| {});
    let opts = ClipOptions { dtype: tessera_tensor::DType::U8, ..ClipOptions::default() };
    assert!(matches!(Clip::from_dir(dir.path(), &opts), Err(Error::InvalidArgument { .. })));
    let opts = ClipOptions { batch_size: 0, ..ClipOptions::default() };
    assert!(matches!(Clip::from_dir(dir.path(), &opts), Err(Error::InvalidArgument { .. })));
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    assert!(matches!(Clip::from_dir(dir.path(), &ClipOptions::default()), Err(Error::Tokenizer { .. })));
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    std::fs::copy(fixtures().join("tokenizer/tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    assert!(matches!(Clip::from_dir(dir.path(), &ClipOptions::default()), Err(Error::Tensor(_))));
    // A file given as the model is not a checkpoint directory.
    let e = Clip::load(dir.path().join("config.json").to_str().unwrap(), &ClipOptions::default()).unwrap_err().to_string();
    assert!(e.contains("is a file"), "{e}");
}

#[test]
fn batches_give_the_same_embeddings_as_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), |_| {});
    let one = Clip::from_dir(dir.path(), &ClipOptions { batch_size: 64, ..ClipOptions::default() }).unwrap();
    let small = Clip::from_dir(dir.path(), &ClipOptions { batch_size: 2, ..ClipOptions::default() }).unwrap();
    let images: Vec<RgbImage> =
        ["checker.png", "gradient.png", "camera_gray.png"].iter().map(|n| load_image(fixtures().join("images").join(n)).unwrap()).collect();
    let texts = ["a cat", "a much longer caption about a dog", "x"];
    let mut calls = Vec::new();
    let a = one.embed_images(&images).unwrap().to_vec::<f32>().unwrap();
    let b = small.embed_images_with_progress(&images, &mut |done, total| calls.push((done, total))).unwrap().to_vec::<f32>().unwrap();
    assert_eq!(calls, vec![(2, 3), (3, 3)]);
    let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-5);
    assert!(close(&a, &b));
    let a = one.embed_texts(&texts).unwrap().to_vec::<f32>().unwrap();
    let b = small.embed_texts(&texts).unwrap().to_vec::<f32>().unwrap();
    assert!(close(&a, &b), "padding to a batch's longest text must not change an embedding");
    let norms: Vec<f32> = a.chunks(16).map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt()).collect();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
}

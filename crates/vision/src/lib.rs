//! # Image preprocessing for Tessera's models
//!
//! What transformers' image processors (PIL backend) do to an image before a
//! vision tower sees it, restated so that the 8-bit results equal Pillow's
//! bit for bit:
//!
//! - [`decode`]: image files to 8-bit RGB with Pillow's `convert("RGB")`
//!   semantics (alpha over white, grayscale replicated, 16-bit high byte,
//!   EXIF orientation), within [`DecodeLimits`] checked from the header
//!   before any pixel is allocated (16384 pixels a side and 512 MiB by
//!   default; `TESSERA_MAX_IMAGE_SIDE` and `TESSERA_MAX_IMAGE_BYTES` change
//!   them), and strictly: a cut or short file is an error, never padded.
//! - [`resample`]: `PIL.Image.resize` with every Pillow filter (nearest,
//!   box, bilinear, Hamming, bicubic, Lanczos) in Pillow's fixed-point
//!   arithmetic.
//! - [`ops`]: resize sizes (shortest edge, Janus's longest edge), centre
//!   crop, padding to a square with a fill colour (`expand2square`),
//!   rescaling and normalisation to channels-first f32.
//! - [`processor`]: [`ImageProcessor`], the CLIP-family processor read from
//!   preprocessor_config.json (transformers 4.x) or processor_config.json
//!   (5.x), batching images into a `[n, 3, h, w]` tensor on any device.
//!
//! Errors are tessera-hf's [`Error`](tessera_hf::Error) (`Image`, `Config`,
//! `Io`).

pub mod decode;
pub mod ops;
pub mod processor;
pub mod resample;

pub use decode::{decode_image, decode_image_with, load_image, load_image_with, to_rgb8, DecodeLimits};
pub use image::RgbImage;
pub use ops::{center_crop, center_crop_rounded, fill_from_mean, longest_edge_size, pad_to_square};
pub use processor::{ImageProcessor, ResizeTo, IMAGENET_MEAN, IMAGENET_STD, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD};
pub use resample::{resize, Filter};

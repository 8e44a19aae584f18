//! Images in: decoding to RGB ([`decode`]), Pillow's resampling
//! ([`resample`]) and CLIP's preprocessing ([`processor`]).

pub mod decode;
pub mod processor;
pub mod resample;

pub use decode::{decode_image, load_image};
pub use processor::{ImageProcessor, ResizeTo, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD};
pub use resample::Filter;

//! transformers' image processors (PIL backend) of the CLIP family: resize
//! (shortest edge or an exact size) with a Pillow filter, centre crop,
//! rescale, normalise with the mean and std, channels first.
//!
//! The settings are read from either layout transformers writes:
//! preprocessor_config.json (4.x) with the fields at the top level, or
//! processor_config.json (5.x) with them under `"image_processor"`; and in
//! either form of the sizes (old OpenAI: `"size": 224`, `"crop_size": 224`;
//! new: `{"shortest_edge": 224}`, `{"height": 224, "width": 224}`). Missing
//! fields take the defaults the model crate gives (its processor class's).

use crate::ops::{center_crop, shortest_edge_size, to_chw, Normalize};
use crate::resample::{resize, Filter};
use image::RgbImage;
use rayon::prelude::*;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use tessera_hf::config::{parse_object, read_object};
use tessera_hf::hub::{PREPROCESSOR_FILE, PROCESSOR_FILE};
use tessera_hf::{Error, Fields, Result};
use tessera_tensor::{Device, Tensor};

/// OpenAI CLIP's per-channel mean (transformers' `OPENAI_CLIP_MEAN`).
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's per-channel standard deviation.
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];
/// ImageNet's per-channel mean (transformers' `IMAGENET_DEFAULT_MEAN`).
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation.
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];
/// The mean and std of processors that map 0..=1 to -1..=1
/// (`IMAGENET_STANDARD_MEAN`, SigLIP's and Janus's).
pub const HALF: [f64; 3] = [0.5, 0.5, 0.5];

/// The size an image is resized to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeTo {
    /// The shortest side becomes this long; the other keeps the aspect ratio
    /// (rounded down).
    ShortestEdge(usize),
    /// Exactly this height and width.
    Exact { height: usize, width: usize },
}

/// The settings of an image processor (field names as in its config).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageProcessor {
    pub do_resize: bool,
    pub size: ResizeTo,
    pub resample: Filter,
    pub do_center_crop: bool,
    /// Crop height and width.
    pub crop_size: (usize, usize),
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f64; 3],
    pub image_std: [f64; 3],
}

/// The processor config of checkpoint directory `dir`:
/// preprocessor_config.json, else processor_config.json, if either exists.
pub fn find_config(dir: &Path) -> Option<PathBuf> {
    [PREPROCESSOR_FILE, PROCESSOR_FILE].iter().map(|f| dir.join(f)).find(|p| p.is_file())
}

/// The image processor's fields of a processor config: the `"image_processor"`
/// object of a transformers 5.x processor_config.json, else the top level.
fn image_processor_fields<'a>(root: &'a Map<String, Value>, file: &str) -> Result<(&'a Map<String, Value>, &'static str)> {
    match root.get("image_processor") {
        Some(Value::Object(m)) => Ok((m, "image_processor")),
        None | Some(Value::Null) => Ok((root, "")),
        Some(other) => Err(Error::config(file, format!("field 'image_processor': expected an object, got {other}"))),
    }
}

impl ImageProcessor {
    /// Reads a preprocessor_config.json or processor_config.json; missing
    /// fields take their values from `defaults`.
    pub fn from_file(path: impl AsRef<Path>, defaults: &ImageProcessor) -> Result<Self> {
        let (root, file) = read_object(path.as_ref())?;
        ImageProcessor::from_object(&root, &file, defaults)
    }

    /// The processor of checkpoint directory `dir` (see [`find_config`]),
    /// or `defaults` when it has no processor config.
    pub fn from_dir(dir: &Path, defaults: &ImageProcessor) -> Result<Self> {
        match find_config(dir) {
            Some(path) => ImageProcessor::from_file(path, defaults),
            None => Ok(defaults.clone()),
        }
    }

    /// Parses the text of a processor config; `file` names it in errors.
    pub fn from_json(text: &str, file: &str, defaults: &ImageProcessor) -> Result<Self> {
        ImageProcessor::from_object(&parse_object(text, file)?, file, defaults)
    }

    fn from_object(root: &Map<String, Value>, file: &str, d: &ImageProcessor) -> Result<Self> {
        let (obj, prefix) = image_processor_fields(root, file)?;
        let f = Fields::new(obj, prefix, file);
        let size = match f.raw("size") {
            None => d.size,
            Some(Value::Object(m)) => {
                let path = f.path("size");
                let s = Fields::new(m, &path, file);
                match (s.get::<Option<usize>>("shortest_edge", None)?, s.get::<Option<usize>>("height", None)?, s.get("width", None)?) {
                    (Some(e), _, _) if m.get("longest_edge").is_none_or(Value::is_null) => ResizeTo::ShortestEdge(e),
                    (None, Some(height), Some(width)) => ResizeTo::Exact { height, width },
                    _ => return Err(f.error("size", format!("unsupported size {}", Value::Object(m.clone())))),
                }
            }
            Some(_) => ResizeTo::ShortestEdge(f.get("size", 0)?),
        };
        let crop_size = match f.raw("crop_size") {
            None => d.crop_size,
            Some(Value::Object(m)) => {
                let path = f.path("crop_size");
                let s = Fields::new(m, &path, file);
                match (s.get::<Option<usize>>("height", None)?, s.get::<Option<usize>>("width", None)?) {
                    (Some(h), Some(w)) => (h, w),
                    _ => return Err(f.error("crop_size", "expected {\"height\": H, \"width\": W}")),
                }
            }
            Some(_) => {
                let c = f.get("crop_size", 0)?;
                (c, c)
            }
        };
        let resample = match f.get::<Option<u32>>("resample", None)? {
            None => d.resample,
            Some(code) => Filter::from_pil_code(code).ok_or_else(|| {
                f.error("resample", format!("PIL filter {code} is not supported (0-5: nearest, Lanczos, bilinear, bicubic, box, Hamming)"))
            })?,
        };
        let p = ImageProcessor {
            do_resize: f.get("do_resize", d.do_resize)?,
            size,
            resample,
            do_center_crop: f.get("do_center_crop", d.do_center_crop)?,
            crop_size,
            do_rescale: f.get("do_rescale", d.do_rescale)?,
            rescale_factor: f.get("rescale_factor", d.rescale_factor)?,
            do_normalize: f.get("do_normalize", d.do_normalize)?,
            image_mean: channels(&f, "image_mean", d.image_mean)?,
            image_std: channels(&f, "image_std", d.image_std)?,
        };
        p.validate(file)?;
        Ok(p)
    }

    fn validate(&self, file: &str) -> Result<()> {
        let sizes = match self.size {
            ResizeTo::ShortestEdge(e) => vec![e],
            ResizeTo::Exact { height, width } => vec![height, width],
        };
        if sizes.contains(&0) || self.crop_size.0 == 0 || self.crop_size.1 == 0 {
            return Err(Error::config(file, "resize and crop sizes must be positive"));
        }
        let (field, largest) = if self.do_center_crop && self.crop_size.0.max(self.crop_size.1) > MAX_OUTPUT_SIDE {
            ("crop_size", self.crop_size.0.max(self.crop_size.1))
        } else {
            ("size", sizes.iter().copied().max().unwrap_or(0))
        };
        if largest > MAX_OUTPUT_SIDE {
            return Err(Error::config(
                file,
                format!("field '{field}': {largest} pixels a side is more than any model takes (at most {MAX_OUTPUT_SIDE})"),
            ));
        }
        if self.image_std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            return Err(Error::config(file, format!("field 'image_std': {:?} has a zero or non-finite entry", self.image_std)));
        }
        Ok(())
    }

    /// The (height, width) of every processed image, or `None` when it
    /// depends on the input (no crop, resizing by the shortest edge).
    pub fn output_size(&self) -> Option<(usize, usize)> {
        match (self.do_center_crop, self.do_resize, self.size) {
            (true, _, _) => Some(self.crop_size),
            (false, true, ResizeTo::Exact { height, width }) => Some((height, width)),
            _ => None,
        }
    }

    /// The (height, width) `image` is resized to.
    pub fn resized_size(&self, image: &RgbImage) -> (usize, usize) {
        match self.size {
            ResizeTo::Exact { height, width } => (height, width),
            ResizeTo::ShortestEdge(edge) => shortest_edge_size(image.height() as usize, image.width() as usize, edge),
        }
    }

    /// Checks that `image` (called `name` in the error: its file, or its
    /// place in a batch) can be processed: it has pixels, and resizing it
    /// gives a non-empty image of at most 2^28 pixels (an extreme aspect
    /// ratio resized by its shortest edge is refused rather than allocated).
    pub fn check(&self, image: &RgbImage, name: &str) -> Result<()> {
        let (iw, ih) = (image.width(), image.height());
        if iw == 0 || ih == 0 {
            return Err(Error::image(name, format!("the image is empty ({iw}x{ih} pixels)")));
        }
        if self.do_resize {
            let (h, w) = self.resized_size(image);
            if h == 0 || w == 0 || h.saturating_mul(w) > 1 << 28 {
                return Err(Error::image(
                    name,
                    format!("a {iw}x{ih} image cannot be resized to {w}x{h} (its aspect ratio is too extreme)"),
                ));
            }
        }
        Ok(())
    }

    /// Resize and centre crop: the 8-bit image that is then rescaled and
    /// normalised (after [`check`](Self::check)).
    pub fn resize_and_crop(&self, image: &RgbImage) -> Result<RgbImage> {
        self.check(image, "passed to the processor")?;
        let resized;
        let mut img = image;
        if self.do_resize {
            let (h, w) = self.resized_size(image);
            if (h, w) != (image.height() as usize, image.width() as usize) {
                resized = resize(image, w as u32, h as u32, self.resample);
                img = &resized;
            }
        }
        if !self.do_center_crop {
            return Ok(img.clone());
        }
        Ok(center_crop(img, self.crop_size))
    }

    /// The processed image, channels first `[3, h, w]`, as f32 values.
    pub fn preprocess(&self, image: &RgbImage) -> Result<Vec<f32>> {
        Ok(self.normalize(&self.resize_and_crop(image)?))
    }

    /// Rescales and normalises an 8-bit image into channels-first f32
    /// values, with transformers' rounding: the rescale in f64 rounded to
    /// f32, the normalisation in f32.
    pub fn normalize(&self, image: &RgbImage) -> Vec<f32> {
        let normalize = Normalize {
            rescale: self.do_rescale.then_some(self.rescale_factor),
            mean_std: self.do_normalize.then_some((self.image_mean, self.image_std)),
        };
        to_chw(image, &normalize)
    }

    /// A batch `[n, 3, h, w]` (f32) of processed images on `device`; the
    /// images are processed in parallel. Every image must come out the same
    /// size (see [`output_size`](Self::output_size)).
    pub fn batch(&self, images: &[&RgbImage], device: &Device) -> Result<Tensor> {
        let (h, w) = match (self.output_size(), images.first()) {
            (Some(s), _) => s,
            (None, Some(first)) => self.resized_size(first),
            (None, None) => (0, 0),
        };
        for (i, img) in images.iter().enumerate() {
            self.check(img, &batch_entry(i))?;
        }
        let planes = images.par_iter().map(|img| self.preprocess(img)).collect::<Result<Vec<_>>>()?;
        let mut data = Vec::with_capacity(images.len() * 3 * h * w);
        for (i, p) in planes.iter().enumerate() {
            if p.len() != 3 * h * w {
                return Err(Error::image(
                    batch_entry(i),
                    format!("processes to {} values, expected 3x{h}x{w} like the first (give a processor that crops)", p.len()),
                ));
            }
            data.extend_from_slice(p);
        }
        Ok(Tensor::from_vec(data, vec![images.len(), 3, h, w], device)?)
    }
}

/// A per-channel triple: a list of three numbers, or one number for all.
fn channels(f: &Fields<'_>, key: &str, default: [f64; 3]) -> Result<[f64; 3]> {
    match f.raw(key) {
        None => Ok(default),
        Some(Value::Array(_)) => {
            let v: Vec<f64> = f.get(key, Vec::new())?;
            v.try_into().map_err(|v: Vec<f64>| f.error(key, format!("expected 3 values, got {}", v.len())))
        }
        Some(_) => Ok([f.get(key, 0.0)?; 3]),
    }
}

/// The largest side a processor may resize or crop to: far above any
/// model's input, and small enough that a processed f32 image (12 bytes a
/// pixel) stays under a gigabyte.
pub const MAX_OUTPUT_SIDE: usize = 8192;

/// `3 of the batch` for the entry at index 2 (counted from 1, as people
/// do), which an image error prints as `image 3 of the batch: ...`.
fn batch_entry(i: usize) -> String {
    format!("{} of the batch", i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CLIP's processor at 224.
    fn clip() -> ImageProcessor {
        ImageProcessor {
            do_resize: true,
            size: ResizeTo::ShortestEdge(224),
            resample: Filter::Bicubic,
            do_center_crop: true,
            crop_size: (224, 224),
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: OPENAI_CLIP_MEAN,
            image_std: OPENAI_CLIP_STD,
        }
    }

    #[test]
    fn both_size_forms_parse() {
        let old = r#"{"crop_size": 224, "do_center_crop": true, "size": 224, "resample": 3, "image_mean": [0.5, 0.5, 0.5]}"#;
        let p = ImageProcessor::from_json(old, "p", &clip()).unwrap();
        assert_eq!(p.size, ResizeTo::ShortestEdge(224));
        assert_eq!(p.crop_size, (224, 224));
        assert_eq!(p.image_mean, [0.5; 3]);
        let new = r#"{"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}, "unknown": 1}"#;
        let p = ImageProcessor::from_json(new, "p", &clip()).unwrap();
        assert_eq!((p.size, p.output_size()), (ResizeTo::ShortestEdge(336), Some((336, 336))));
        assert_eq!(ImageProcessor::from_json(r#"{"resample": 0}"#, "p", &clip()).unwrap().resample, Filter::Nearest);
        assert!(ImageProcessor::from_json(r#"{"resample": 9}"#, "p", &clip()).is_err());
        assert!(ImageProcessor::from_json(r#"{"image_std": [1, 0, 1]}"#, "p", &clip()).is_err());
        assert!(ImageProcessor::from_json(r#"{"size": "big"}"#, "p", &clip()).unwrap_err().to_string().contains("size"));
    }

    #[test]
    fn both_file_layouts_parse() {
        let v5 = r#"{"processor_class": "CLIPProcessor",
                     "image_processor": {"size": {"height": 384, "width": 384}, "do_center_crop": false, "image_mean": 0.5}}"#;
        let p = ImageProcessor::from_json(v5, "processor_config.json", &clip()).unwrap();
        assert_eq!((p.size, p.output_size(), p.image_mean), (ResizeTo::Exact { height: 384, width: 384 }, Some((384, 384)), HALF));
        let e = ImageProcessor::from_json(r#"{"image_processor": {"size": "x"}}"#, "p", &clip()).unwrap_err().to_string();
        assert!(e.contains("image_processor.size"), "{e}");
        assert!(ImageProcessor::from_json(r#"{"image_processor": 3}"#, "p", &clip()).is_err());

        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ImageProcessor::from_dir(dir.path(), &clip()).unwrap(), clip());
        std::fs::write(dir.path().join(PROCESSOR_FILE), v5).unwrap();
        assert_eq!(ImageProcessor::from_dir(dir.path(), &clip()).unwrap(), p);
        std::fs::write(dir.path().join(PREPROCESSOR_FILE), r#"{"size": 100}"#).unwrap();
        assert_eq!(ImageProcessor::from_dir(dir.path(), &clip()).unwrap().size, ResizeTo::ShortestEdge(100));
    }

    #[test]
    fn shortest_edge_keeps_the_aspect_ratio_rounded_down() {
        let p = clip();
        assert_eq!(p.resized_size(&RgbImage::new(300, 200)), (224, 336));
        assert_eq!(p.resized_size(&RgbImage::new(200, 301)), (337, 224));
    }

    #[test]
    fn unprocessable_images_are_named() {
        let p = clip();
        let e = p.check(&RgbImage::new(1, 16384), "tall.png").unwrap_err().to_string();
        assert!(e.starts_with("image tall.png: a 1x16384 image cannot be resized"), "{e}");
        let e = p.batch(&[&RgbImage::new(8, 8), &RgbImage::new(0, 3)], &Device::cpu()).unwrap_err().to_string();
        assert!(e.starts_with("image 2 of the batch: the image is empty"), "{e}");
    }
}

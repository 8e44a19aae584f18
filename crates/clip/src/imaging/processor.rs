//! `CLIPImageProcessor` (transformers' PIL backend): resize so the shortest
//! side is `size` with Pillow's bicubic filter, centre crop, rescale by
//! 1/255, normalise with the mean and std, channels first. The settings come
//! from the checkpoint's preprocessor_config.json in either of its forms (old
//! OpenAI: `"size": 224`, `"crop_size": 224`; new: `{"shortest_edge": 224}`,
//! `{"height": 224, "width": 224}`), with CLIP's defaults for missing fields.

use super::resample::{resize, Filter};
use crate::config::Fields;
use crate::error::{Error, Result};
use image::RgbImage;
use rayon::prelude::*;
use serde_json::Value;
use std::path::Path;
use tessera_tensor::{Device, Tensor};

/// OpenAI CLIP's per-channel mean (transformers' `OPENAI_CLIP_MEAN`).
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's per-channel standard deviation.
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// The size an image is resized to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeTo {
    /// The shortest side becomes this long; the other keeps the aspect ratio
    /// (rounded down).
    ShortestEdge(usize),
    /// Exactly this height and width.
    Exact { height: usize, width: usize },
}

/// The preprocessing of CLIP's image processor.
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

impl ImageProcessor {
    /// CLIP's defaults for a model whose input is `image_size` square.
    pub fn clip_default(image_size: usize) -> Self {
        ImageProcessor {
            do_resize: true,
            size: ResizeTo::ShortestEdge(image_size),
            resample: Filter::Bicubic,
            do_center_crop: true,
            crop_size: (image_size, image_size),
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: OPENAI_CLIP_MEAN,
            image_std: OPENAI_CLIP_STD,
        }
    }

    /// Reads a preprocessor_config.json; missing fields take the defaults
    /// for `image_size`.
    pub fn from_file(path: impl AsRef<Path>, image_size: usize) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        ImageProcessor::from_json(&text, &path.display().to_string(), image_size)
    }

    /// Parses the text of a preprocessor_config.json; `file` names it in errors.
    pub fn from_json(text: &str, file: &str, image_size: usize) -> Result<Self> {
        let root: Value = serde_json::from_str(text).map_err(|e| Error::config(file, format!("not valid JSON: {e}")))?;
        let Value::Object(root) = root else {
            return Err(Error::config(file, "expected a JSON object"));
        };
        let f = Fields::new(&root, "", file);
        let d = ImageProcessor::clip_default(image_size);
        let size = match f.raw("size") {
            None => d.size,
            Some(Value::Object(m)) => {
                let s = Fields::new(m, "size", file);
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
                let s = Fields::new(m, "crop_size", file);
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
        let code: u32 = f.get("resample", 3)?;
        let resample = Filter::from_pil_code(code).ok_or_else(|| {
            f.error("resample", format!("PIL filter {code} is not supported (1-5: Lanczos, bilinear, bicubic, box, Hamming)"))
        })?;
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
    fn resized_size(&self, image: &RgbImage) -> (usize, usize) {
        let (h, w) = (image.height() as usize, image.width() as usize);
        match self.size {
            ResizeTo::Exact { height, width } => (height, width),
            ResizeTo::ShortestEdge(edge) => {
                let (short, long) = if w <= h { (w, h) } else { (h, w) };
                // transformers: int(size * long / short), a float division.
                let new_long = ((edge * long) as f64 / short as f64) as usize;
                if w <= h {
                    (new_long, edge)
                } else {
                    (edge, new_long)
                }
            }
        }
    }

    /// Resize and centre crop: the 8-bit image that is then rescaled and
    /// normalised.
    pub fn resize_and_crop(&self, image: &RgbImage) -> Result<RgbImage> {
        if image.width() == 0 || image.height() == 0 {
            return Err(Error::image("input", format!("the image is empty ({}x{} pixels)", image.width(), image.height())));
        }
        let resized;
        let mut img = image;
        if self.do_resize {
            let (h, w) = self.resized_size(image);
            // A resized image of more than 2^28 pixels (an extreme aspect
            // ratio) is refused rather than allocated.
            if h == 0 || w == 0 || h.saturating_mul(w) > 1 << 28 {
                return Err(Error::image("input", format!("a {}x{} image cannot be resized to {w}x{h}", image.width(), image.height())));
            }
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
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut out = vec![0f32; 3 * h * w];
        let raw = image.as_raw();
        for (c, plane) in out.chunks_exact_mut(h * w).enumerate() {
            let (mean, std) = (self.image_mean[c] as f32, self.image_std[c] as f32);
            for (i, v) in plane.iter_mut().enumerate() {
                let x = raw[i * 3 + c] as f64;
                let x = if self.do_rescale { (x * self.rescale_factor) as f32 } else { x as f32 };
                *v = if self.do_normalize { (x - mean) / std } else { x };
            }
        }
        out
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
        let planes = images.par_iter().map(|img| self.preprocess(img)).collect::<Result<Vec<_>>>()?;
        let mut data = Vec::with_capacity(images.len() * 3 * h * w);
        for (i, p) in planes.iter().enumerate() {
            if p.len() != 3 * h * w {
                return Err(Error::image(format!("batch entry {i}"), format!("processed to {} values, expected 3x{h}x{w}", p.len())));
            }
            data.extend_from_slice(p);
        }
        Ok(Tensor::from_vec(data, vec![images.len(), 3, h, w], device)?)
    }
}

/// transformers' `center_crop`: the window starts at `(size - crop) // 2`
/// (floor division) and pixels outside the image are zero.
fn center_crop(image: &RgbImage, (crop_h, crop_w): (usize, usize)) -> RgbImage {
    let (h, w) = (image.height() as i64, image.width() as i64);
    let top = (h - crop_h as i64).div_euclid(2);
    let left = (w - crop_w as i64).div_euclid(2);
    let mut out = RgbImage::new(crop_w as u32, crop_h as u32);
    for (x, y, px) in out.enumerate_pixels_mut() {
        let (sy, sx) = (top + y as i64, left + x as i64);
        if (0..h).contains(&sy) && (0..w).contains(&sx) {
            *px = *image.get_pixel(sx as u32, sy as u32);
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_config_forms_parse() {
        let old = r#"{"crop_size": 224, "do_center_crop": true, "size": 224, "resample": 3, "image_mean": [0.5, 0.5, 0.5]}"#;
        let p = ImageProcessor::from_json(old, "p", 224).unwrap();
        assert_eq!(p.size, ResizeTo::ShortestEdge(224));
        assert_eq!(p.crop_size, (224, 224));
        assert_eq!(p.image_mean, [0.5; 3]);
        let new = r#"{"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}, "unknown": 1}"#;
        let p = ImageProcessor::from_json(new, "p", 224).unwrap();
        assert_eq!((p.size, p.output_size()), (ResizeTo::ShortestEdge(336), Some((336, 336))));
        assert!(ImageProcessor::from_json(r#"{"resample": 0}"#, "p", 224).is_err());
        assert!(ImageProcessor::from_json(r#"{"image_std": [1, 0, 1]}"#, "p", 224).is_err());
        assert!(ImageProcessor::from_json(r#"{"size": "big"}"#, "p", 224).unwrap_err().to_string().contains("size"));
    }

    #[test]
    fn shortest_edge_keeps_the_aspect_ratio_rounded_down() {
        let p = ImageProcessor::clip_default(224);
        assert_eq!(p.resized_size(&RgbImage::new(300, 200)), (224, 336));
        assert_eq!(p.resized_size(&RgbImage::new(200, 301)), (337, 224));
        assert_eq!(p.resized_size(&RgbImage::new(1, 1000)), (224000, 224));
    }

    #[test]
    fn crop_pads_small_images_with_zeros() {
        let img = RgbImage::from_pixel(3, 2, image::Rgb([9, 9, 9]));
        let c = center_crop(&img, (4, 5));
        // top = (2 - 4) // 2 = -1, left = (3 - 5) // 2 = -1.
        assert_eq!(c.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(c.get_pixel(1, 1).0, [9, 9, 9]);
        assert_eq!(c.get_pixel(3, 2).0, [9, 9, 9]);
        assert_eq!(c.get_pixel(4, 3).0, [0, 0, 0]);
    }
}

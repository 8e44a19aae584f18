//! transformers' `JanusImageProcessor` (PIL backend): resize so the longest
//! side is `size` (each side at least `min_size`, Python's round half to
//! even) with a Pillow filter on the 8-bit image, pad to a square centred on
//! the colour `int(mean * 255)` per channel, rescale and normalise; and its
//! `postprocess`, which turns the VQ decoder's output back into 8-bit pixels.
//!
//! The settings come from processor_config.json (`"image_processor"`, the
//! layout transformers 5.x writes) or preprocessor_config.json, with the
//! class defaults (384 pixels, `min_size` 14, bicubic, CLIP's mean and std)
//! for missing fields. The padding colour is always derived from
//! `image_mean`, as the processor's constructor does, whatever
//! `background_color` the file records.

use image::RgbImage;
use std::path::Path;
use tessera_hf::config::{parse_object, read_object};
use tessera_hf::{Error, Fields, Result};
use tessera_tensor::{Device, Tensor};
use tessera_vision::processor::{find_config, MAX_OUTPUT_SIDE};
use tessera_vision::{fill_from_mean, longest_edge_size, pad_to_square, resize, Filter, ImageProcessor, ResizeTo};
use tessera_vision::{OPENAI_CLIP_MEAN, OPENAI_CLIP_STD};

/// The settings of a Janus image processor.
#[derive(Clone, Debug, PartialEq)]
pub struct JanusImageProcessor {
    /// Resampling, rescaling and normalisation (`size` is the square side;
    /// no centre crop).
    pub base: ImageProcessor,
    /// The side the longest edge is resized to.
    pub size: usize,
    /// The least side after resizing.
    pub min_size: usize,
    /// Whether non-square images are padded to a square.
    pub do_pad: bool,
}

impl Default for JanusImageProcessor {
    /// The class defaults of transformers' `JanusImageProcessor`.
    fn default() -> Self {
        JanusImageProcessor {
            base: ImageProcessor {
                do_resize: true,
                size: ResizeTo::Exact { height: 384, width: 384 },
                resample: Filter::Bicubic,
                do_center_crop: false,
                crop_size: (384, 384),
                do_rescale: true,
                rescale_factor: 1.0 / 255.0,
                do_normalize: true,
                image_mean: OPENAI_CLIP_MEAN,
                image_std: OPENAI_CLIP_STD,
            },
            size: 384,
            min_size: 14,
            do_pad: true,
        }
    }
}

impl JanusImageProcessor {
    /// The processor of checkpoint directory `dir` (preprocessor_config.json,
    /// else processor_config.json), or the class defaults without either.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        match find_config(dir) {
            Some(path) => {
                let (root, file) = read_object(&path)?;
                Self::from_object(&root, &file)
            }
            None => Ok(Self::default()),
        }
    }

    /// Parses the text of a processor config; `file` names it in errors.
    pub fn from_json(text: &str, file: &str) -> Result<Self> {
        Self::from_object(&parse_object(text, file)?, file)
    }

    fn from_object(root: &serde_json::Map<String, serde_json::Value>, file: &str) -> Result<Self> {
        let d = Self::default();
        let text = serde_json::Value::Object(root.clone()).to_string();
        let mut base = ImageProcessor::from_json(&text, file, &d.base)?;
        let (obj, prefix) = match root.get("image_processor") {
            Some(serde_json::Value::Object(m)) => (m, "image_processor"),
            _ => (root, ""),
        };
        let f = Fields::new(obj, prefix, file);
        let size = match base.size {
            ResizeTo::Exact { height, width } if height == width => height,
            // `"size": 384`: transformers makes it a square.
            ResizeTo::ShortestEdge(side) if !matches!(f.raw("size"), Some(serde_json::Value::Object(_))) => side,
            other => return Err(f.error("size", format!("the output must be square, got {other:?}"))),
        };
        if size > MAX_OUTPUT_SIDE {
            return Err(f.error("size", format!("{size} pixels a side is more than any model takes (at most {MAX_OUTPUT_SIDE})")));
        }
        base.size = ResizeTo::Exact { height: size, width: size };
        base.do_center_crop = false;
        let min_size = f.get("min_size", d.min_size)?;
        if min_size > size {
            return Err(f.error("min_size", format!("{min_size} is larger than the output size {size}")));
        }
        Ok(JanusImageProcessor { base, size, min_size, do_pad: f.get("do_pad", d.do_pad)? })
    }

    /// The padding colour: `int(mean * 255)` per channel.
    pub fn background_color(&self) -> [u8; 3] {
        fill_from_mean(self.base.image_mean)
    }

    /// The `(height, width)` an `h x w` image is resized to.
    pub fn resized_size(&self, h: usize, w: usize) -> (usize, usize) {
        if self.base.do_resize {
            longest_edge_size(h, w, self.size, self.min_size)
        } else {
            (h, w)
        }
    }

    /// Resize and pad: the 8-bit image that is then rescaled and normalised.
    /// `name` names the image in errors.
    pub fn resize_and_pad(&self, image: &RgbImage, name: &str) -> Result<RgbImage> {
        let (iw, ih) = (image.width() as usize, image.height() as usize);
        if iw == 0 || ih == 0 {
            return Err(Error::image(name, format!("the image is empty ({iw}x{ih} pixels)")));
        }
        let (h, w) = self.resized_size(ih, iw);
        let resized = if (h, w) == (ih, iw) { image.clone() } else { resize(image, w as u32, h as u32, self.base.resample) };
        Ok(if self.do_pad { pad_to_square(&resized, self.background_color()) } else { resized })
    }

    /// The processed image, channels first `[3, side, side]`, as f32.
    pub fn preprocess(&self, image: &RgbImage, name: &str) -> Result<Vec<f32>> {
        Ok(self.base.normalize(&self.resize_and_pad(image, name)?))
    }

    /// A batch `[n, 3, side, side]` of processed images on `device`. Every
    /// image must come out `side` square (`side`: the vision tower's input).
    pub fn batch(&self, images: &[&RgbImage], side: usize, device: &Device) -> Result<Tensor> {
        let mut data = Vec::with_capacity(images.len() * 3 * side * side);
        for (i, img) in images.iter().enumerate() {
            let name = format!("{} of the batch", i + 1);
            let planes = self.preprocess(img, &name)?;
            if planes.len() != 3 * side * side {
                let (h, w) = self.resized_size(img.height() as usize, img.width() as usize);
                return Err(Error::image(
                    name,
                    format!(
                        "processes to {h}x{w} pixels{}, but the vision tower takes {side}x{side}",
                        if self.do_pad { " before padding" } else { "" }
                    ),
                ));
            }
            data.extend_from_slice(&planes);
        }
        Ok(Tensor::from_vec(data, vec![images.len(), 3, side, side], device)?)
    }

    /// `postprocess`: decoded images `[n, h, w, 3]` (f32, channels last)
    /// back to 8-bit RGB: `x * std + mean` (as transformers computes it, a
    /// normalisation by `-mean / std` and `1 / std`), times
    /// `1 / rescale_factor`, clipped to 0..=255 and truncated.
    pub fn postprocess(&self, decoded: &Tensor) -> Result<Vec<RgbImage>> {
        let dims = decoded.dims().to_vec();
        let [n, h, w, 3] = dims[..] else {
            return Err(Error::invalid("postprocess", format!("expected decoded images [n, h, w, 3], got {dims:?}")));
        };
        let values = decoded.to_f32_vec()?;
        let (mean, std) = (self.base.image_mean, self.base.image_std);
        let rev_mean: [f32; 3] = std::array::from_fn(|c| (-mean[c] / std[c]) as f32);
        let rev_std: [f32; 3] = std::array::from_fn(|c| (1.0 / std[c]) as f32);
        let scale = (1.0 / self.base.rescale_factor) as f32;
        let pixel = |i: usize, x: f32| -> u8 {
            let c = i % 3;
            let x = if self.base.do_normalize { (x - rev_mean[c]) / rev_std[c] } else { x };
            if self.base.do_rescale {
                // numpy's astype(uint8) after clip: truncation.
                (x * scale).clamp(0.0, 255.0) as u8
            } else {
                x.clamp(0.0, 255.0) as u8
            }
        };
        let per_image = h * w * 3;
        (0..n)
            .map(|k| {
                let raw: Vec<u8> = values[k * per_image..(k + 1) * per_image].iter().enumerate().map(|(i, &x)| pixel(i, x)).collect();
                RgbImage::from_raw(w as u32, h as u32, raw).ok_or_else(|| Error::invalid("postprocess", "image buffer size"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_5x_processor_config() {
        let text = r#"{"image_processor": {"size": {"height": 40, "width": 40}, "min_size": 6, "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5], "resample": 3, "background_color": [1, 2, 3]}, "num_image_tokens": 25}"#;
        let p = JanusImageProcessor::from_json(text, "processor_config.json").unwrap();
        assert_eq!((p.size, p.min_size, p.do_pad), (40, 6, true));
        assert_eq!(p.background_color(), [127, 127, 127]);
        assert_eq!(p.resized_size(3, 100), (6, 40));
        assert_eq!(JanusImageProcessor::from_json(r#"{"size": 64}"#, "p").unwrap().size, 64);
    }

    #[test]
    fn refuses_non_square_and_oversized_settings() {
        for bad in [
            r#"{"size": {"height": 40, "width": 30}}"#,
            r#"{"size": {"shortest_edge": 40}}"#,
            r#"{"size": 40, "min_size": 41}"#,
            r#"{"size": 100000}"#,
            r#"{"image_std": [0.5, 0, 0.5]}"#,
        ] {
            let e = JanusImageProcessor::from_json(bad, "p.json").unwrap_err();
            assert!(matches!(e, Error::Config { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn pads_landscape_images_top_and_bottom() {
        let p = JanusImageProcessor { size: 8, min_size: 1, ..Default::default() };
        let img = RgbImage::from_pixel(8, 4, image::Rgb([200, 10, 10]));
        let out = p.resize_and_pad(&img, "x").unwrap();
        assert_eq!(out.dimensions(), (8, 8));
        let fill = p.background_color();
        assert_eq!(out.get_pixel(0, 0).0, fill);
        assert_eq!(out.get_pixel(0, 2).0, [200, 10, 10]);
        assert_eq!(out.get_pixel(7, 7).0, fill);
        assert!(p.resize_and_pad(&RgbImage::new(0, 3), "empty").is_err());
    }

    #[test]
    fn postprocess_inverts_the_normalisation_and_truncates() {
        let p = JanusImageProcessor::default();
        let (m, s) = (p.base.image_mean, p.base.image_std);
        // 100.7 / 255 normalised comes back as 100 (truncated), -5 clips to 0.
        let x = |v: f64, c: usize| ((v / 255.0 - m[c]) / s[c]) as f32;
        let decoded = Tensor::from_vec(vec![x(100.7, 0), x(-5.0, 1), x(300.0, 2)], vec![1, 1, 1, 3], &Device::cpu()).unwrap();
        let img = p.postprocess(&decoded).unwrap();
        assert_eq!(img[0].get_pixel(0, 0).0, [100, 0, 255]);
        let bad = Tensor::from_vec(vec![0f32; 4], vec![1, 1, 1, 4], &Device::cpu()).unwrap();
        assert!(p.postprocess(&bad).is_err());
    }
}

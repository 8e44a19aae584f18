//! The pipeline: a checkpoint loaded on a device in a dtype, with its
//! tokenizer and image processor; normalised embeddings of images and texts,
//! and zero-shot classification, computed in batches.

use crate::config::ClipConfig;
use crate::imaging::{clip_processor, ImageProcessor};
use crate::model::{ClipModel, LoadProgress};
use crate::tokenizer::ClipTokenizer;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use tessera_hf::hub::{self, CONFIG_FILE, TRANSFORMERS_CHECKPOINT};
use tessera_hf::UnusedTensors;
use tessera_nn::{l2_normalize, VarBuilder};
use tessera_tensor::safetensors::{Checkpoint, ReadMode};
use tessera_tensor::{DType, Device, Tensor};
use tessera_vision::{processor, RgbImage};

/// Called after each batch with (items done, items in all).
pub type BatchProgress<'a> = &'a mut dyn FnMut(usize, usize);

/// How to load a checkpoint.
#[derive(Clone, Debug)]
pub struct ClipOptions {
    /// The device the model runs on.
    pub device: Device,
    /// The dtype weights are cast to on load and computed in: f32, f16 or bf16.
    pub dtype: DType,
    /// Images or texts per forward pass.
    pub batch_size: usize,
    /// Show hf-hub's download progress bars (hub ids only).
    pub download_progress: bool,
    /// Whether checkpoint files are memory-mapped or read into memory.
    pub read_mode: ReadMode,
    /// Refuse a checkpoint holding tensors the model does not use (by
    /// default they are listed by [`Clip::unused_tensors`], for a warning).
    pub strict: bool,
}

impl Default for ClipOptions {
    /// The CPU, f32, batches of 32, no download bars, files opened as
    /// [`ReadMode::from_env`] says, unused tensors allowed.
    fn default() -> Self {
        ClipOptions {
            device: Device::cpu(),
            dtype: DType::F32,
            batch_size: 32,
            download_progress: false,
            read_mode: ReadMode::from_env(),
            strict: false,
        }
    }
}

/// A CLIP checkpoint ready to embed and classify.
#[derive(Clone, Debug)]
pub struct Clip {
    model: ClipModel,
    tokenizer: ClipTokenizer,
    processor: ImageProcessor,
    device: Device,
    batch_size: usize,
    dir: PathBuf,
    unused: UnusedTensors,
}

/// Buffers old CLIP checkpoints carry that the model recomputes
/// (transformers ignores them on load too).
const IGNORED_BUFFERS: &[&str] = &[".position_ids"];

impl Clip {
    /// Loads `model`: a checkpoint directory, or a Hugging Face hub id such
    /// as `openai/clip-vit-base-patch32` (with the `hub` feature).
    pub fn load(model: &str, options: &ClipOptions) -> Result<Clip> {
        Clip::load_with_progress(model, options, &mut |_, _| {})
    }

    /// [`load`](Self::load), calling `progress(done, total)` as the model's
    /// parts are loaded.
    pub fn load_with_progress(model: &str, options: &ClipOptions, progress: LoadProgress<'_>) -> Result<Clip> {
        let dir = hub::resolve(model, TRANSFORMERS_CHECKPOINT, options.download_progress)?;
        Clip::from_dir_with_progress(&dir, options, progress)
    }

    /// Loads the checkpoint directory `dir`: config.json, model.safetensors
    /// (or a sharded index), tokenizer.json (or vocab.json + merges.txt),
    /// and preprocessor_config.json or processor_config.json if present.
    pub fn from_dir(dir: impl AsRef<Path>, options: &ClipOptions) -> Result<Clip> {
        Clip::from_dir_with_progress(dir.as_ref(), options, &mut |_, _| {})
    }

    /// [`from_dir`](Self::from_dir) with a progress callback.
    pub fn from_dir_with_progress(dir: &Path, options: &ClipOptions, progress: LoadProgress<'_>) -> Result<Clip> {
        if !matches!(options.dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(Error::invalid("clip", format!("dtype {} is not supported: use f32, f16 or bf16", options.dtype)));
        }
        if options.batch_size == 0 {
            return Err(Error::invalid("clip", "the batch size must be positive"));
        }
        let config = ClipConfig::from_file(dir.join(CONFIG_FILE))?;
        let image_size = config.vision_config.image_size;
        let processor = ImageProcessor::from_dir(dir, &clip_processor(image_size))?;
        if processor.output_size() != Some((image_size, image_size)) {
            let pre = processor::find_config(dir).unwrap_or_default();
            let produces = match processor.output_size() {
                Some((h, w)) => format!("produces {h}x{w} images"),
                None => "produces images whose size follows each input (no crop)".to_string(),
            };
            return Err(Error::config(
                pre.display().to_string(),
                format!("{produces}, but the model takes {image_size}x{image_size} (vision_config.image_size in config.json)"),
            ));
        }
        let tokenizer = ClipTokenizer::from_dir(dir, config.text_config.max_position_embeddings)?;
        let ids = tokenizer.text_tokenizer().id_bound().max(tokenizer.vocab_size());
        if ids > config.text_config.vocab_size {
            return Err(Error::config(
                dir.join(CONFIG_FILE).display().to_string(),
                format!(
                    "field 'text_config.vocab_size': the tokenizer's ids go up to {} but the vocabulary has {} tokens",
                    ids - 1,
                    config.text_config.vocab_size
                ),
            ));
        }
        let checkpoint = Checkpoint::open_with(dir, options.read_mode)?;
        config.check_against(&checkpoint, &dir.join(CONFIG_FILE).display().to_string())?;
        let vb = VarBuilder::from_source(checkpoint, options.device.clone()).with_dtype(options.dtype);
        let model = ClipModel::load_with_progress(&vb, &config, progress)?;
        let unused = UnusedTensors::new(vb.describe_source(), vb.unused(), IGNORED_BUFFERS);
        if options.strict {
            unused.clone().into_result()?;
        }
        Ok(Clip {
            model,
            tokenizer,
            processor,
            device: options.device.clone(),
            batch_size: options.batch_size,
            dir: dir.to_path_buf(),
            unused,
        })
    }

    /// The model.
    pub fn model(&self) -> &ClipModel {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &ClipTokenizer {
        &self.tokenizer
    }

    /// The image processor.
    pub fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The checkpoint tensors the model did not use (empty for a clean
    /// checkpoint; see [`UnusedTensors::summary`] for a warning line).
    pub fn unused_tensors(&self) -> &UnusedTensors {
        &self.unused
    }

    /// Width of the embeddings.
    pub fn embedding_dim(&self) -> usize {
        self.model.config().projection_dim
    }

    /// L2-normalised image embeddings `[n, dim]` (f32).
    pub fn embed_images(&self, images: &[RgbImage]) -> Result<Tensor> {
        self.embed_images_with_progress(images, &mut |_, _| {})
    }

    /// [`embed_images`](Self::embed_images), calling `progress` per batch.
    pub fn embed_images_with_progress(&self, images: &[RgbImage], progress: BatchProgress<'_>) -> Result<Tensor> {
        if images.is_empty() {
            return Err(Error::invalid("embed_images", "no images given"));
        }
        self.batched(images.len(), progress, |range| {
            let batch: Vec<&RgbImage> = images[range].iter().collect();
            let pixels = self.processor.batch(&batch, &self.device)?;
            self.model.get_image_features(&pixels)
        })
    }

    /// L2-normalised text embeddings `[n, dim]` (f32). Texts longer than the
    /// context are truncated, as transformers does.
    pub fn embed_texts<S: AsRef<str>>(&self, texts: &[S]) -> Result<Tensor> {
        self.embed_texts_with_progress(texts, &mut |_, _| {})
    }

    /// [`embed_texts`](Self::embed_texts), calling `progress` per batch.
    pub fn embed_texts_with_progress<S: AsRef<str>>(&self, texts: &[S], progress: BatchProgress<'_>) -> Result<Tensor> {
        if texts.is_empty() {
            return Err(Error::invalid("embed_texts", "no texts given"));
        }
        self.batched(texts.len(), progress, |range| {
            let tokens = self.tokenizer.encode_batch(&texts[range])?;
            self.model.get_text_features(&tokens, &self.device)
        })
    }

    /// Zero-shot classification: for each image, the probability of each
    /// label (softmax over the labels of the scaled cosine similarities).
    pub fn classify<S: AsRef<str>>(&self, images: &[RgbImage], labels: &[S]) -> Result<Vec<Vec<f32>>> {
        self.classify_with_progress(images, labels, &mut |_, _| {})
    }

    /// [`classify`](Self::classify), calling `progress` per batch (labels
    /// and images counted together).
    pub fn classify_with_progress<S: AsRef<str>>(
        &self,
        images: &[RgbImage],
        labels: &[S],
        progress: BatchProgress<'_>,
    ) -> Result<Vec<Vec<f32>>> {
        if labels.is_empty() {
            return Err(Error::invalid("classify", "the label list is empty: give at least one label"));
        }
        if images.is_empty() {
            return Err(Error::invalid("classify", "no images given"));
        }
        let total = labels.len() + images.len();
        let text = self.embed_texts_with_progress(labels, &mut |done, _| progress(done, total))?;
        let image = self.embed_images_with_progress(images, &mut |done, _| progress(labels.len() + done, total))?;
        self.probabilities(&image, &text)
    }

    /// Softmax over texts of `exp(logit_scale) * image . text` for
    /// normalised embeddings `[n, d]` and `[m, d]`: `n` rows of `m`.
    pub fn probabilities(&self, image_embeds: &Tensor, text_embeds: &Tensor) -> Result<Vec<Vec<f32>>> {
        let logits = image_embeds.matmul(&text_embeds.t()?)?.mul_scalar(self.model.logit_scale().exp())?;
        let m = text_embeds.dims()[0];
        let probs = logits.softmax(-1)?.to_vec::<f32>()?;
        Ok(probs.chunks(m.max(1)).map(<[f32]>::to_vec).collect())
    }

    /// Runs `features` over `0..n` in batches and returns the normalised f32
    /// rows, in order.
    fn batched(
        &self,
        n: usize,
        progress: BatchProgress<'_>,
        features: impl Fn(std::ops::Range<usize>) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let mut parts = Vec::with_capacity(n.div_ceil(self.batch_size));
        for start in (0..n).step_by(self.batch_size) {
            let end = (start + self.batch_size).min(n);
            parts.push(l2_normalize(&features(start..end)?.to_dtype(DType::F32)?)?);
            progress(end, n);
        }
        let refs: Vec<&Tensor> = parts.iter().collect();
        Ok(Tensor::cat(&refs, 0)?)
    }
}

//! The pipeline: a BLIP-2 checkpoint loaded on a device in a dtype, with
//! its tokenizer, image processor and generation defaults; captions and
//! answers for images; and a retrieval checkpoint scoring images against
//! texts.

use crate::config::Blip2Config;
use crate::model::{Blip2ForConditionalGeneration, ImageFeatures, LoadProgress};
use crate::retrieval::Blip2ForImageTextRetrieval;
use crate::tokenizer::Blip2Tokenizer;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use tessera_hf::hub::{self, HubFile, CONFIG_FILE, PREPROCESSOR_FILE, PROCESSOR_FILE};
use tessera_hf::tokenizer::TokenBatch;
use tessera_hf::UnusedTensors;
use tessera_nn::generation::{generate, Generated, GenerationConfig, StopReason};
use tessera_nn::VarBuilder;
use tessera_tensor::safetensors::Checkpoint;
use tessera_tensor::{Device, Tensor};
use tessera_vision::{Filter, ImageProcessor, ResizeTo, RgbImage, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD};

/// The generation defaults of a checkpoint.
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// The files of a BLIP-2 checkpoint.
pub const BLIP2_CHECKPOINT: &[HubFile] = &[
    HubFile::Required(CONFIG_FILE),
    HubFile::Optional(&[PREPROCESSOR_FILE, PROCESSOR_FILE]),
    HubFile::Optional(&[GENERATION_CONFIG_FILE]),
    HubFile::Optional(&["tokenizer_config.json"]),
    HubFile::Required("tokenizer.json"),
    HubFile::Safetensors,
];

/// `BlipImageProcessor`'s defaults for a model whose input is `image_size`
/// square: resize to exactly that size with Pillow's bicubic filter (no
/// crop), rescale by 1/255, OpenAI CLIP's mean and std.
pub fn blip_processor(image_size: usize) -> ImageProcessor {
    ImageProcessor {
        do_resize: true,
        size: ResizeTo::Exact { height: image_size, width: image_size },
        resample: Filter::Bicubic,
        do_center_crop: false,
        crop_size: (image_size, image_size),
        do_rescale: true,
        rescale_factor: 1.0 / 255.0,
        do_normalize: true,
        image_mean: OPENAI_CLIP_MEAN,
        image_std: OPENAI_CLIP_STD,
    }
}

/// How to load a checkpoint (the Q-Former stays in f32 whatever the dtype).
pub type Blip2Options = tessera_hf::LoadOptions;

/// One generated text.
#[derive(Clone, Debug, PartialEq)]
pub struct Caption {
    /// The decoded text, special tokens skipped, surrounding whitespace
    /// trimmed.
    pub text: String,
    /// The generated ids (after the prompt), with the end-of-sequence id
    /// when generation stopped on it.
    pub token_ids: Vec<u32>,
    /// Why generation stopped.
    pub stop: StopReason,
}

/// A BLIP-2 checkpoint ready to caption images.
#[derive(Clone, Debug)]
pub struct Blip2 {
    model: Blip2ForConditionalGeneration,
    tokenizer: Blip2Tokenizer,
    processor: ImageProcessor,
    generation: GenerationConfig,
    device: Device,
    dir: PathBuf,
    unused: UnusedTensors,
}

/// Tensors of hub checkpoints the captioning model does not use: the
/// Q-Former's text FFN and embeddings (retrieval only) and old buffers.
const IGNORED: &[&str] = &[".position_ids", "qformer.embeddings.", ".intermediate.dense.", ".output.dense.", ".output.LayerNorm."];

/// The dtype check, config.json and the image processor of checkpoint
/// directory `dir`, which must give the square size the vision tower takes.
pub(crate) fn open_dir(dir: &Path, options: &Blip2Options) -> Result<(Blip2Config, PathBuf, ImageProcessor)> {
    options.check_float_dtype("blip2")?;
    let config_file = dir.join(CONFIG_FILE);
    let config = Blip2Config::from_file(&config_file)?;
    let image_size = config.vision_config.image_size;
    let processor = ImageProcessor::from_dir(dir, &blip_processor(image_size))?;
    if processor.output_size() != Some((image_size, image_size)) {
        let pre = tessera_vision::processor::find_config(dir).unwrap_or_default();
        return Err(Error::config(
            pre.display().to_string(),
            format!("does not produce {image_size}x{image_size} images, the size the model takes (vision_config.image_size)"),
        ));
    }
    Ok((config, config_file, processor))
}

/// The checkpoint tensors `vb` did not hand out (those matching `ignored`
/// aside); an error under `options.strict`.
pub(crate) fn unused_tensors(vb: &VarBuilder, ignored: &[&str], options: &Blip2Options) -> Result<UnusedTensors> {
    let unused = UnusedTensors::new(vb.describe_source(), vb.unused(), ignored);
    if options.strict {
        unused.clone().into_result()?;
    }
    Ok(unused)
}

/// `images` as `[n, 3, s, s]` on `device`.
pub(crate) fn batch_pixels(processor: &ImageProcessor, images: &[&RgbImage], device: &Device) -> Result<Tensor> {
    if images.is_empty() {
        return Err(Error::invalid("blip2", "no images given"));
    }
    processor.batch(images, device)
}

impl Blip2 {
    /// Loads `model`: a checkpoint directory, or a hub id such as
    /// `Salesforce/blip2-opt-2.7b` (with the `hub` feature).
    pub fn load(model: &str, options: &Blip2Options) -> Result<Blip2> {
        Blip2::load_with_progress(model, options, &mut |_, _| {})
    }

    /// [`load`](Self::load), calling `progress(done, total)` per layer.
    pub fn load_with_progress(model: &str, options: &Blip2Options, progress: LoadProgress<'_>) -> Result<Blip2> {
        let dir = hub::resolve(model, BLIP2_CHECKPOINT, options.download_progress)?;
        Blip2::from_dir_with_progress(&dir, options, progress)
    }

    /// Loads checkpoint directory `dir`: config.json, model.safetensors (or
    /// shards with an index), tokenizer.json, and if present
    /// preprocessor_config.json and generation_config.json.
    pub fn from_dir(dir: impl AsRef<Path>, options: &Blip2Options) -> Result<Blip2> {
        Blip2::from_dir_with_progress(dir.as_ref(), options, &mut |_, _| {})
    }

    /// [`from_dir`](Self::from_dir) with a progress callback.
    pub fn from_dir_with_progress(dir: &Path, options: &Blip2Options, progress: LoadProgress<'_>) -> Result<Blip2> {
        let (config, config_file, processor) = open_dir(dir, options)?;
        let tokenizer = Blip2Tokenizer::from_dir(dir)?;
        let vocab = config.text_config.vocab_size;
        if tokenizer.text_tokenizer().id_bound() > vocab {
            return Err(Error::config(
                config_file.display().to_string(),
                format!(
                    "field 'text_config.vocab_size': the tokenizer's ids go up to {} but the language model has {vocab} tokens",
                    tokenizer.text_tokenizer().id_bound() - 1
                ),
            ));
        }
        let generation = match dir.join(GENERATION_CONFIG_FILE) {
            path if path.exists() => GenerationConfig::from_file(&path)?,
            _ => {
                let mut g = GenerationConfig::default();
                g.eos_token_ids = config.text_config.eos_token_id.into_iter().collect();
                g.pad_token_id = config.text_config.pad_token_id;
                g
            }
        };
        if let Some(&bad) = generation.eos_token_ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::config(
                dir.join(GENERATION_CONFIG_FILE).display().to_string(),
                format!("field 'eos_token_id': {bad} is outside the language model's vocabulary of {vocab}"),
            ));
        }
        let checkpoint = Checkpoint::open_with(dir, options.read_mode)?;
        config.check_against(&checkpoint, &config_file.display().to_string())?;
        let vb = VarBuilder::from_source(checkpoint, options.device.clone()).with_dtype(options.dtype);
        let model = Blip2ForConditionalGeneration::load_with_progress(&vb, &config, progress)?;
        let unused = unused_tensors(&vb, IGNORED, options)?;
        Ok(Blip2 { model, tokenizer, processor, generation, device: options.device.clone(), dir: dir.to_path_buf(), unused })
    }

    /// The model.
    pub fn model(&self) -> &Blip2ForConditionalGeneration {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Blip2Tokenizer {
        &self.tokenizer
    }

    /// The image processor.
    pub fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    /// The checkpoint's generation defaults (generation_config.json as
    /// transformers reads it, else the config's stop id).
    pub fn generation_config(&self) -> &GenerationConfig {
        &self.generation
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checkpoint tensors the model did not use.
    pub fn unused_tensors(&self) -> &UnusedTensors {
        &self.unused
    }

    /// The model's input for `images`: `[n, 3, s, s]` on the model's device.
    pub fn pixel_values(&self, images: &[&RgbImage]) -> Result<Tensor> {
        batch_pixels(&self.processor, images, &self.device)
    }

    /// The text ids the language model reads after the image tokens: the
    /// start token, then `prompt`'s tokens (none for plain captioning).
    pub fn prompt_ids(&self, prompt: Option<&str>) -> Result<Vec<u32>> {
        let mut ids = vec![self.model.config().text_config.bos_token_id];
        if let Some(p) = prompt {
            ids.extend(self.tokenizer.encode_prompt(p)?);
        }
        Ok(ids)
    }

    /// Every stage of the image path for `images`.
    pub fn image_features(&self, images: &[&RgbImage]) -> Result<ImageFeatures> {
        self.model.get_image_features(&self.pixel_values(images)?)
    }

    /// A caption of `image` (an answer, with a prompt such as `"Question:
    /// what is this? Answer:"`) generated under `config`;
    /// `on_token(step, id)` is called per new token.
    pub fn caption(
        &self,
        image: &RgbImage,
        prompt: Option<&str>,
        config: &GenerationConfig,
        on_token: &mut dyn FnMut(usize, u32),
    ) -> Result<Caption> {
        let features = self.image_features(&[image])?;
        let text_ids = self.prompt_ids(prompt)?;
        self.generate_from(&features.projection, &text_ids, config, on_token)
    }

    /// Generation after projected queries `image_inputs [1, queries, width]`
    /// and `text_ids` (the start token and the prompt).
    pub fn generate_from(
        &self,
        image_inputs: &Tensor,
        text_ids: &[u32],
        config: &GenerationConfig,
        on_token: &mut dyn FnMut(usize, u32),
    ) -> Result<Caption> {
        config.validate()?;
        let queries = image_inputs.dims()[1];
        let prompt_len = queries + text_ids.len();
        let lm = self.model.language_model();
        let run = config.resolved(prompt_len, Some(lm.max_positions()))?;
        let max_new = run.max_new_tokens;
        if prompt_len + max_new > lm.max_positions() {
            return Err(Error::invalid(
                "blip2",
                format!(
                    "the prompt's {prompt_len} positions ({queries} image tokens + {} text tokens) and {max_new} new tokens exceed the {} positions of the language model",
                    text_ids.len(),
                    lm.max_positions()
                ),
            ));
        }
        let prefill = self.model.prefill(image_inputs, text_ids)?;
        // The ids transformers' processors see: the image placeholders (where
        // the config names their id), then the text.
        let image_ids = self.model.config().image_token_index.map(|id| vec![id; queries]).unwrap_or_default();
        let input_ids: Vec<u32> = image_ids.into_iter().chain(text_ids.iter().copied()).collect();
        let generated: Generated = generate(lm, prefill.cache, &prefill.logits, &input_ids, &run, on_token)?;
        let text = self.tokenizer.decode(&generated.token_ids)?.trim().to_string();
        Ok(Caption { text, token_ids: generated.token_ids, stop: generated.stop })
    }
}

/// BERT's pad token, the Q-Former tokenizer's when tokenizer_config.json
/// names none.
pub const BERT_PAD_TOKEN: &str = "[PAD]";

/// Tensors of retrieval checkpoints the heads do not use.
const RETRIEVAL_IGNORED: &[&str] = &[".position_ids"];

/// One image scored against one text.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrievalScore {
    /// The image-text matching head's probability that the text describes
    /// the image (softmax of its two logits).
    pub itm_probability: f32,
    /// The contrastive head's score: the largest cosine between the image's
    /// query embeddings and the text's embedding.
    pub itc_similarity: f32,
}

/// A `Blip2ForImageTextRetrieval` checkpoint (such as
/// Salesforce/blip2-itm-vit-g) ready to score images against texts.
#[derive(Clone, Debug)]
pub struct Blip2Retrieval {
    model: Blip2ForImageTextRetrieval,
    tokenizer: Blip2Tokenizer,
    processor: ImageProcessor,
    device: Device,
    unused: UnusedTensors,
}

impl Blip2Retrieval {
    /// Loads `model`: a checkpoint directory, or a hub id (with the `hub`
    /// feature), calling `progress(done, total)` per layer.
    pub fn load_with_progress(model: &str, options: &Blip2Options, progress: LoadProgress<'_>) -> Result<Blip2Retrieval> {
        let dir = hub::resolve(model, BLIP2_CHECKPOINT, options.download_progress)?;
        Blip2Retrieval::from_dir_with_progress(&dir, options, progress)
    }

    /// Loads checkpoint directory `dir`: config.json, model.safetensors (or
    /// shards), tokenizer.json (the Q-Former's, BERT's in the hub
    /// checkpoints) and if present preprocessor_config.json.
    pub fn from_dir(dir: impl AsRef<Path>, options: &Blip2Options) -> Result<Blip2Retrieval> {
        Blip2Retrieval::from_dir_with_progress(dir.as_ref(), options, &mut |_, _| {})
    }

    /// [`from_dir`](Self::from_dir) with a progress callback.
    pub fn from_dir_with_progress(dir: &Path, options: &Blip2Options, progress: LoadProgress<'_>) -> Result<Blip2Retrieval> {
        let (config, config_file, processor) = open_dir(dir, options)?;
        let tokenizer = Blip2Tokenizer::from_dir_with_pad(dir, BERT_PAD_TOKEN)?;
        let vocab = config.qformer_config.vocab_size;
        if tokenizer.text_tokenizer().id_bound() > vocab {
            return Err(Error::config(
                config_file.display().to_string(),
                format!(
                    "field 'qformer_config.vocab_size': the tokenizer's ids go up to {} but the Q-Former's text embeddings have {vocab}",
                    tokenizer.text_tokenizer().id_bound() - 1
                ),
            ));
        }
        let checkpoint = Checkpoint::open_with(dir, options.read_mode)?;
        config.check_retrieval_against(&checkpoint, &config_file.display().to_string())?;
        let vb = VarBuilder::from_source(checkpoint, options.device.clone()).with_dtype(options.dtype);
        let model = Blip2ForImageTextRetrieval::load(&vb, &config, progress)?;
        let unused = unused_tensors(&vb, RETRIEVAL_IGNORED, options)?;
        Ok(Blip2Retrieval { model, tokenizer, processor, device: options.device.clone(), unused })
    }

    /// The model.
    pub fn model(&self) -> &Blip2ForImageTextRetrieval {
        &self.model
    }

    /// The tokenizer of the Q-Former's text.
    pub fn tokenizer(&self) -> &Blip2Tokenizer {
        &self.tokenizer
    }

    /// The image processor.
    pub fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    /// Checkpoint tensors the model did not use.
    pub fn unused_tensors(&self) -> &UnusedTensors {
        &self.unused
    }

    /// The model's input for `images`: `[n, 3, s, s]` on the model's device.
    pub fn pixel_values(&self, images: &[&RgbImage]) -> Result<Tensor> {
        batch_pixels(&self.processor, images, &self.device)
    }

    /// `texts` tokenized with their special tokens, to be padded with the
    /// Q-Former's pad id (the config's, else the tokenizer's).
    pub fn encode_texts(&self, texts: &[&str]) -> Result<TokenBatch> {
        if texts.is_empty() {
            return Err(Error::invalid("blip2", "no texts given"));
        }
        let ids = texts.iter().map(|t| self.tokenizer.encode_text(t)).collect::<Result<Vec<_>>>()?;
        let pad_id = self.model.config().qformer_config.pad_token_id.unwrap_or(self.tokenizer.text_tokenizer().pad_id());
        Ok(TokenBatch { ids, pad_id })
    }

    /// Every image scored against every text: `scores[i][j]` for image `i`
    /// and text `j`, from both heads.
    pub fn scores(&self, images: &[&RgbImage], texts: &[&str]) -> Result<Vec<Vec<RetrievalScore>>> {
        let pixels = self.pixel_values(images)?;
        let batch = self.encode_texts(texts)?;
        let itc = self.model.image_text_contrastive(&pixels, &batch)?.logits_per_image.to_f32_vec()?;
        // The matching head scores pairs: image i against every text.
        let (n, m) = (images.len(), texts.len());
        let mut itm = Vec::with_capacity(n * m);
        for i in 0..n {
            let image = pixels.narrow(0, i, 1)?;
            let s = image.dims()[1..].to_vec();
            let repeated = image.broadcast_as([vec![m], s].concat())?.contiguous()?;
            itm.extend(self.model.image_text_matching(&repeated, &batch)?.to_f32_vec()?);
        }
        Ok((0..n)
            .map(|i| {
                (0..m)
                    .map(|j| {
                        let (no, yes) = (itm[(i * m + j) * 2], itm[(i * m + j) * 2 + 1]);
                        RetrievalScore { itm_probability: 1.0 / (1.0 + (no - yes).exp()), itc_similarity: itc[i * m + j] }
                    })
                    .collect()
            })
            .collect())
    }
}

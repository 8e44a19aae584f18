//! The pipeline: a Janus-Pro checkpoint loaded on a device in a dtype, with
//! its processor and generation defaults; answers about images, and images
//! drawn from prompts.

use crate::config::JanusConfig;
use crate::model::{ImageSampling, JanusForConditionalGeneration, LoadProgress};
use crate::processing::JanusProcessor;
use crate::{Error, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tessera_hf::config::read_object;
use tessera_hf::hub::{self, HubFile, CONFIG_FILE, PREPROCESSOR_FILE, PROCESSOR_FILE};
use tessera_hf::{Fields, UnusedTensors};
use tessera_nn::generation::{generate, GenerationConfig, StopReason};
use tessera_nn::{SamplingConfig, VarBuilder};
use tessera_tensor::safetensors::Checkpoint;
use tessera_tensor::Tensor;
use tessera_vision::RgbImage;

/// The generation defaults of a checkpoint.
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// The files of a Janus checkpoint.
pub const JANUS_CHECKPOINT: &[HubFile] = &[
    HubFile::Required(CONFIG_FILE),
    HubFile::Optional(&[PROCESSOR_FILE]),
    HubFile::Optional(&[PREPROCESSOR_FILE]),
    HubFile::Optional(&[GENERATION_CONFIG_FILE]),
    HubFile::Optional(&["tokenizer_config.json"]),
    HubFile::Optional(&["special_tokens_map.json"]),
    HubFile::Optional(&["chat_template.jinja", "chat_template.json"]),
    HubFile::Required("tokenizer.json"),
    HubFile::Safetensors,
];

/// transformers' guidance scale when generation_config.json sets none.
pub const DEFAULT_GUIDANCE_SCALE: f64 = 5.0;

/// How to load a checkpoint.
pub type JanusOptions = tessera_hf::LoadOptions;

/// One generated answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The decoded text, special tokens skipped.
    pub text: String,
    /// The generated ids (after the prompt), with the end-of-sequence id
    /// when generation stopped on it.
    pub token_ids: Vec<u32>,
    /// Why generation stopped.
    pub stop: StopReason,
}

/// One generated image.
#[derive(Clone, Debug)]
pub struct GeneratedImage {
    /// The image tokens, row-major over the grid.
    pub tokens: Vec<u32>,
    /// The decoded, postprocessed pixels.
    pub image: RgbImage,
}

/// Image-generation defaults of generation_config.json, beside what
/// [`GenerationConfig`] reads.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageGenerationDefaults {
    /// `guidance_scale` (transformers' 5 when absent).
    pub guidance_scale: f64,
    /// `generation_kwargs.boi_token_id`, else the processor's.
    pub boi_token_id: u32,
    /// `pad_token_id`: the unconditional prompt's filler.
    pub pad_token_id: u32,
    /// `bos_token_id`: kept in the unconditional prompt.
    pub bos_token_id: Option<u32>,
}

/// A Janus checkpoint ready to answer and draw.
#[derive(Debug)]
pub struct Janus {
    model: JanusForConditionalGeneration,
    processor: JanusProcessor,
    generation: GenerationConfig,
    image_defaults: ImageGenerationDefaults,
    dir: PathBuf,
    unused: UnusedTensors,
}

/// Tensors of hub checkpoints the model does not use.
const IGNORED: &[&str] = &[".position_ids", "rotary_emb.inv_freq"];

impl Janus {
    /// Loads `model`: a checkpoint directory, or a hub id such as
    /// `deepseek-community/Janus-Pro-1B` (with the `hub` feature), calling
    /// `progress(done, total)` per layer.
    pub fn load_with_progress(model: &str, options: &JanusOptions, progress: LoadProgress<'_>) -> Result<Janus> {
        let dir = hub::resolve(model, JANUS_CHECKPOINT, options.download_progress)?;
        Janus::from_dir_with_progress(&dir, options, progress)
    }

    /// Loads checkpoint directory `dir`.
    pub fn from_dir(dir: impl AsRef<Path>, options: &JanusOptions) -> Result<Janus> {
        Janus::from_dir_with_progress(dir.as_ref(), options, &mut |_, _| {})
    }

    /// [`from_dir`](Self::from_dir) with a progress callback.
    pub fn from_dir_with_progress(dir: &Path, options: &JanusOptions, progress: LoadProgress<'_>) -> Result<Janus> {
        options.check_float_dtype("janus")?;
        let config_file = dir.join(CONFIG_FILE);
        let config = JanusConfig::from_file(&config_file)?;
        let text = &config.text_config;
        let processor = JanusProcessor::from_dir(dir, config.vision_config.num_image_tokens, text.max_position_embeddings)?;
        let config_name = config_file.display().to_string();
        let bound = processor.tokenizer().id_bound();
        if bound > text.vocab_size {
            return Err(Error::config(
                &config_name,
                format!(
                    "field 'text_config.vocab_size': the tokenizer's ids go up to {} but the language model has {} tokens",
                    bound - 1,
                    text.vocab_size
                ),
            ));
        }
        if processor.image_token.id != config.image_token_id {
            return Err(Error::config(
                &config_name,
                format!(
                    "field 'image_token_id': {} but the tokenizer's {} is {}",
                    config.image_token_id, processor.image_token.text, processor.image_token.id
                ),
            ));
        }
        let side = processor.image_processor.size;
        if side != config.vision_config.image_size || !processor.image_processor.do_pad {
            let file = tessera_vision::processor::find_config(dir).unwrap_or_default();
            return Err(Error::config(
                file.display().to_string(),
                format!(
                    "does not produce {0}x{0} images, the size the vision tower takes (vision_config.image_size)",
                    config.vision_config.image_size
                ),
            ));
        }
        let (generation, image_defaults) = generation_defaults(dir, &config, &processor)?;
        let checkpoint = Checkpoint::open_with(dir, options.read_mode)?;
        config.check_against(&checkpoint, &config_name)?;
        let vb = VarBuilder::from_source(checkpoint, options.device.clone()).with_dtype(options.dtype);
        let model = JanusForConditionalGeneration::load_with_progress(&vb, &config, progress)?;
        let unused = UnusedTensors::new(vb.describe_source(), vb.unused(), IGNORED);
        if options.strict {
            unused.clone().into_result()?;
        }
        Ok(Janus { model, processor, generation, image_defaults, dir: dir.to_path_buf(), unused })
    }

    /// The model.
    pub fn model(&self) -> &JanusForConditionalGeneration {
        &self.model
    }

    /// The processor.
    pub fn processor(&self) -> &JanusProcessor {
        &self.processor
    }

    /// The checkpoint's text-generation defaults (generation_config.json).
    pub fn generation_config(&self) -> &GenerationConfig {
        &self.generation
    }

    /// The checkpoint's image-generation defaults.
    pub fn image_defaults(&self) -> &ImageGenerationDefaults {
        &self.image_defaults
    }

    /// generation_config.json keys that change text results but are not
    /// implemented (guidance is for images only and is left aside).
    pub fn unsupported_text_keys(&self) -> Vec<&str> {
        self.generation.unsupported().iter().map(String::as_str).filter(|k| *k != "guidance_scale").collect()
    }

    /// The image-generation settings of the checkpoint: its guidance scale,
    /// and its sampling (greedy unless `do_sample`).
    pub fn default_image_sampling(&self) -> ImageSampling {
        ImageSampling {
            guidance_scale: self.image_defaults.guidance_scale,
            sampling: self.generation.sampling(),
            seed: self.generation.seed,
        }
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
        let side = self.model.config().vision_config.image_size;
        self.processor.image_processor.batch(images, side, self.model.device())
    }

    /// An answer to `question` about `images` (none for a text-only
    /// prompt) under `config`; `on_token(step, id)` is called per new
    /// token.
    pub fn ask(
        &self,
        images: &[&RgbImage],
        question: &str,
        config: &GenerationConfig,
        on_token: &mut dyn FnMut(usize, u32),
    ) -> Result<Answer> {
        let ids = self.processor.understanding_ids(question, images.len())?;
        let features = if images.is_empty() { None } else { Some(self.model.get_image_features(&self.pixel_values(images)?)?.aligned) };
        self.generate_from(&ids, features.as_ref(), config, on_token)
    }

    /// Text generation after prompt `ids` whose image placeholders take
    /// `image_features` (aligned, `[b, patches, hidden]`).
    pub fn generate_from(
        &self,
        ids: &[u32],
        image_features: Option<&Tensor>,
        config: &GenerationConfig,
        on_token: &mut dyn FnMut(usize, u32),
    ) -> Result<Answer> {
        config.validate()?;
        let lm = self.model.language_model();
        let run = config.resolved(ids.len(), Some(lm.max_positions()))?;
        if ids.len() + run.max_new_tokens > lm.max_positions() {
            return Err(Error::invalid(
                "janus",
                format!(
                    "the prompt's {} tokens and {} new tokens exceed the {} positions of the language model",
                    ids.len(),
                    run.max_new_tokens,
                    lm.max_positions()
                ),
            ));
        }
        let embeds = self.model.embed_prompt(ids, image_features)?;
        let prefill = self.model.prefill(&embeds)?;
        let generated = generate(&self.model, prefill.cache, &prefill.logits, ids, &run, on_token)?;
        let text = self.processor.decode(&generated.token_ids)?;
        Ok(Answer { text, token_ids: generated.token_ids, stop: generated.stop })
    }

    /// The conditional and unconditional prompt ids of an image prompt.
    pub fn image_prompt_ids(&self, prompt: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        let cond = self.processor.generation_ids(prompt)?;
        let d = &self.image_defaults;
        let uncond = self.processor.unconditional_ids(&cond, d.bos_token_id, d.pad_token_id);
        Ok((cond, uncond))
    }

    /// The image-token grids of `n` images for `prompt` (one batched pass),
    /// calling `on_step(done, total)` per token.
    pub fn generate_image_tokens(
        &self,
        prompt: &str,
        n: usize,
        sampling: &ImageSampling,
        on_step: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<Vec<u32>>> {
        if n == 0 {
            return Err(Error::invalid("janus", "the number of images to generate must be at least 1"));
        }
        let (cond, uncond) = self.image_prompt_ids(prompt)?;
        self.model.generate_image_tokens(&cond, &uncond, n, sampling, on_step)
    }

    /// Image-token grids decoded and postprocessed to 8-bit RGB.
    pub fn decode_images(&self, grids: &[Vec<u32>]) -> Result<Vec<RgbImage>> {
        let decoded = self.model.decode_image_tokens(grids)?;
        self.processor.image_processor.postprocess(&decoded)
    }

    /// `n` images drawn for `prompt`.
    pub fn imagine(
        &self,
        prompt: &str,
        n: usize,
        sampling: &ImageSampling,
        on_step: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<GeneratedImage>> {
        let grids = self.generate_image_tokens(prompt, n, sampling, on_step)?;
        let images = self.decode_images(&grids)?;
        Ok(grids.into_iter().zip(images).map(|(tokens, image)| GeneratedImage { tokens, image }).collect())
    }

    /// The VQ codes (row-major) of `image`, processed as for understanding.
    pub fn encode_image(&self, image: &RgbImage) -> Result<Vec<u32>> {
        let pixels = self.pixel_values(&[image])?;
        Ok(self.model.vqmodel().encode(&pixels)?.remove(0))
    }
}

/// generation_config.json as [`GenerationConfig`] and the image defaults;
/// without the file, the config's ids and transformers' defaults.
fn generation_defaults(
    dir: &Path,
    config: &JanusConfig,
    processor: &JanusProcessor,
) -> Result<(GenerationConfig, ImageGenerationDefaults)> {
    let vocab = config.text_config.vocab_size;
    let path = dir.join(GENERATION_CONFIG_FILE);
    let tokenizer_pad = processor.tokenizer().pad_id();
    let mut defaults = ImageGenerationDefaults {
        guidance_scale: DEFAULT_GUIDANCE_SCALE,
        boi_token_id: processor.boi_token.id,
        pad_token_id: config.pad_token_id.unwrap_or(tokenizer_pad),
        bos_token_id: config.bos_token_id,
    };
    if !path.is_file() {
        let mut g = GenerationConfig::default();
        g.eos_token_ids = config.eos_token_id.into_iter().collect();
        g.pad_token_id = Some(defaults.pad_token_id);
        return Ok((g, defaults));
    }
    let generation = GenerationConfig::from_file(&path)?;
    let (root, file) = read_object(&path)?;
    let f = Fields::new(&root, "", &file);
    let scale: Option<f64> = f.get("guidance_scale", None)?;
    if let Some(s) = scale {
        if !(s.is_finite() && s >= 0.0) {
            return Err(f.error("guidance_scale", format!("must be finite and at least 0, got {s}")));
        }
        defaults.guidance_scale = s;
    }
    if let Some(Value::Object(kw)) = root.get("generation_kwargs") {
        let k = Fields::new(kw, "generation_kwargs", &file);
        defaults.boi_token_id = k.token_id("boi_token_id", defaults.boi_token_id)?;
    }
    defaults.pad_token_id = generation.pad_token_id.unwrap_or(defaults.pad_token_id);
    if f.is_set("bos_token_id") {
        defaults.bos_token_id = Some(f.token_id("bos_token_id", 0)?);
    }
    let ids = [
        ("generation_kwargs.boi_token_id", Some(defaults.boi_token_id)),
        ("pad_token_id", Some(defaults.pad_token_id)),
        ("bos_token_id", defaults.bos_token_id),
    ];
    for (key, id) in ids.into_iter().chain(generation.eos_token_ids.iter().map(|&e| ("eos_token_id", Some(e)))) {
        if let Some(id) = id.filter(|&id| id as usize >= vocab) {
            return Err(Error::config(&file, format!("field '{key}': {id} is outside the language model's vocabulary of {vocab}")));
        }
    }
    if defaults.boi_token_id != processor.boi_token.id {
        return Err(Error::config(
            &file,
            format!(
                "field 'generation_kwargs.boi_token_id': {} but the tokenizer's {} is {}",
                defaults.boi_token_id, processor.boi_token.text, processor.boi_token.id
            ),
        ));
    }
    Ok((generation, defaults))
}

/// The image sampling for a temperature given on the command line: greedy
/// at 0, else temperature sampling (with the checkpoint's top-k and top-p).
pub fn sampling_at(base: &GenerationConfig, temperature: f64) -> SamplingConfig {
    if temperature == 0.0 {
        return SamplingConfig::greedy();
    }
    SamplingConfig { temperature, top_k: base.top_k.filter(|&k| k > 0), top_p: base.top_p.filter(|&p| p < 1.0) }
}

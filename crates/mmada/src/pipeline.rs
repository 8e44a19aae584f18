//! The pipeline: an MMaDA model directory loaded on a device in a dtype,
//! with its tokenizer and (for images) its MAGVIT-v2; text answers, answers
//! about images, images drawn from prompts, and inpainting.
//!
//! A model directory holds the LM checkpoint (config.json, model.safetensors
//! or a sharded index, tokenizer.json, optionally tokenizer_config.json and
//! a chat template) and may hold MAGVIT-v2 as magvit_config.json +
//! magvit.safetensors. Where MAGVIT-v2 lives apart (as on the hub), its
//! directory is given separately and holds a config (magvit_config.json or
//! diffusers' config.json) and weights (magvit.safetensors,
//! diffusion_pytorch_model.safetensors or model.safetensors). Text needs no
//! MAGVIT-v2; images do.
//!
//! Defaults: text as generate.py runs it (128 tokens in blocks of 32, 128
//! steps, greedy, low-confidence remasking, no guidance); images as the
//! reference's README runs inference_t2i.py (15 steps, guidance 3.5,
//! temperature 1) with the demo config's 512 text slots.

use crate::config::{MagvitConfig, MmadaConfig};
use crate::modeling_llada::LladaModel;
use crate::modeling_magvitv2::{normalize_pixels, to_uint8_images, MagvitV2};
use crate::modeling_mmada::{mmu_generate, t2i_generate, ImageGeneration, ImageStep, Remasking, TextGeneration};
use crate::processing::{image_transform, mask_to_grid, MmadaProcessor};
use crate::prompting::{mmu_prompt, t2i_gen_prompt};
use crate::sampling::SeededNoise;
use std::path::{Path, PathBuf};
use tessera_hf::hub::{self, HubFile, CONFIG_FILE};
use tessera_hf::{Error, LoadOptions, Result, UnusedTensors};
use tessera_nn::VarBuilder;
use tessera_tensor::safetensors::{Checkpoint, SafeTensorsFile};
use tessera_tensor::DType;
use tessera_vision::RgbImage;

/// The files of an MMaDA LM checkpoint.
pub const MMADA_CHECKPOINT: &[HubFile] = &[
    HubFile::Required(CONFIG_FILE),
    HubFile::Required("tokenizer.json"),
    HubFile::Optional(&["tokenizer_config.json"]),
    HubFile::Optional(&["special_tokens_map.json"]),
    HubFile::Optional(&["chat_template.jinja", "chat_template.json"]),
    HubFile::Safetensors,
];

/// MAGVIT-v2's files beside the LM.
pub const MAGVIT_CONFIG_FILE: &str = "magvit_config.json";
pub const MAGVIT_WEIGHTS_FILE: &str = "magvit.safetensors";

/// A MAGVIT-v2 directory of its own holds a config and weights under any
/// of these names (ours, then diffusers').
pub const MAGVIT_CONFIG_NAMES: &[&str] = &[MAGVIT_CONFIG_FILE, CONFIG_FILE];
pub const MAGVIT_WEIGHTS_NAMES: &[&str] = &[MAGVIT_WEIGHTS_FILE, "diffusion_pytorch_model.safetensors", "model.safetensors"];
const MAGVIT_CHECKPOINT: &[HubFile] = &[HubFile::Optional(MAGVIT_CONFIG_NAMES), HubFile::Optional(MAGVIT_WEIGHTS_NAMES)];

/// Text slots of a text-to-image prompt by default (the demo config's
/// `max_seq_length`).
pub const DEFAULT_MAX_TEXT_LEN: usize = 512;

/// Progress callback: `(done, total)`.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize);

/// One text answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The generated part decoded, special tokens skipped.
    pub text: String,
    /// The generated ids: all `gen_length` of them, end-of-text fill included.
    pub token_ids: Vec<u32>,
}

/// How images are drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSettings {
    /// MaskGIT steps.
    pub timesteps: usize,
    /// Classifier-free guidance scale (0: no unconditional row).
    pub guidance_scale: f64,
    /// Temperature of the re-masking noise (annealed to 0).
    pub temperature: f64,
    /// Text slots of the prompt (longer prompts are cut, keeping EOS).
    pub max_text_len: usize,
    /// Seed of the draws.
    pub seed: u64,
}

impl Default for ImageSettings {
    fn default() -> Self {
        ImageSettings { timesteps: 15, guidance_scale: 3.5, temperature: 1.0, max_text_len: DEFAULT_MAX_TEXT_LEN, seed: 0 }
    }
}

/// Tensors of a checkpoint that the model does not read.
const LM_IGNORED: &[&str] = &["rotary_emb.inv_freq"];
/// MAGVIT-v2's quantizer buffers (its codebook is computed from the bits).
const MAGVIT_IGNORED: &[&str] = &["quantize.embedding", "quantize.power_vals"];

/// An MMaDA model ready to answer and draw.
#[derive(Debug)]
pub struct Mmada {
    model: LladaModel,
    processor: MmadaProcessor,
    vq: Option<MagvitV2>,
    dir: PathBuf,
    unused: Vec<UnusedTensors>,
}

impl Mmada {
    /// Loads `model` (a directory, or a hub id with the `hub` feature) and
    /// MAGVIT-v2 from `vq` when given, else from the model directory when
    /// it holds one; `progress(done, total)` per block.
    pub fn load(model: &str, vq: Option<&str>, options: &LoadOptions, progress: Progress<'_>) -> Result<Mmada> {
        options.check_float_dtype("mmada")?;
        let dir = hub::resolve(model, MMADA_CHECKPOINT, options.download_progress)?;
        let config = MmadaConfig::from_dir(&dir)?;
        let side = config.grid_side();
        if side * side != config.num_vq_tokens {
            return Err(Error::config(
                dir.join(CONFIG_FILE).display().to_string(),
                format!("field 'num_vq_tokens': {} is not a square grid of image tokens", config.num_vq_tokens),
            ));
        }
        let processor = MmadaProcessor::from_dir(&dir, &config)?;
        let checkpoint = Checkpoint::open_with(&dir, options.read_mode)?;
        let vb = VarBuilder::from_source(checkpoint, options.device.clone()).with_dtype(options.dtype);
        let (mut done, total) = (0, config.backbone.num_hidden_layers);
        let model = LladaModel::load(&vb, &config, &mut || {
            done += 1;
            progress(done, total)
        })?;
        let mut unused = vec![UnusedTensors::new(vb.describe_source(), vb.unused(), LM_IGNORED)];
        let vq = match magvit_files(&dir, vq, options)? {
            Some((config_file, weights)) => {
                let (magvit, left) = load_magvit(&config_file, &weights, &config, options)?;
                unused.push(left);
                Some(magvit)
            }
            None => None,
        };
        if options.strict {
            for u in &unused {
                u.clone().into_result()?;
            }
        }
        Ok(Mmada { model, processor, vq, dir, unused })
    }

    /// The backbone.
    pub fn model(&self) -> &LladaModel {
        &self.model
    }

    /// The tokenizer side.
    pub fn processor(&self) -> &MmadaProcessor {
        &self.processor
    }

    /// MAGVIT-v2, if one was found.
    pub fn vq(&self) -> Option<&MagvitV2> {
        self.vq.as_ref()
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checkpoint tensors the models did not use (LM, then MAGVIT-v2).
    pub fn unused_tensors(&self) -> &[UnusedTensors] {
        &self.unused
    }

    /// Text generation as generate.py runs it, with the config's mask id.
    pub fn default_text_generation(&self) -> TextGeneration {
        TextGeneration {
            gen_length: 128,
            block_length: 32,
            steps: 128,
            temperature: 0.0,
            cfg_scale: 0.0,
            remasking: Remasking::LowConfidence,
            mask_id: self.model.config().mask_token_id,
            prefix_cache: false,
        }
    }

    /// Answers `prompt` (one user turn through the chat template).
    pub fn chat(&self, prompt: &str, g: &TextGeneration, seed: u64, progress: Progress<'_>) -> Result<Answer> {
        let ids = self.processor.chat_ids(prompt)?;
        self.answer(&ids, g, seed, progress)
    }

    /// Answers `question` about `image`: the understanding layout, the
    /// image's codes before the chat prompt.
    pub fn ask(&self, image: &RgbImage, question: &str, g: &TextGeneration, seed: u64, progress: Progress<'_>) -> Result<Answer> {
        let codes = self.image_codes(image)?;
        let ids = mmu_prompt(&codes, self.processor.image_offset, &self.processor.chat_ids(question)?, &self.processor.ids);
        self.answer(&ids, g, seed, progress)
    }

    /// Fills `g.gen_length` masks after `prompt` and decodes them.
    pub fn answer(&self, prompt: &[u32], g: &TextGeneration, seed: u64, progress: Progress<'_>) -> Result<Answer> {
        self.check_length(prompt.len() + g.gen_length)?;
        let total = g.steps;
        let rows = mmu_generate(&self.model, &[prompt.to_vec()], g, &mut SeededNoise::new(seed), &mut |step, _| progress(step + 1, total))?;
        let token_ids = rows[0][prompt.len()..].to_vec();
        Ok(Answer { text: self.processor.decode(&token_ids)?, token_ids })
    }

    /// MAGVIT-v2, or the error saying where it was looked for.
    fn magvit(&self) -> Result<&MagvitV2> {
        self.vq.as_ref().ok_or_else(|| {
            Error::invalid(
                "mmada",
                format!(
                    "images need MAGVIT-v2, and {} holds no {MAGVIT_CONFIG_FILE} and {MAGVIT_WEIGHTS_FILE}: give its directory (--vq DIR)",
                    self.dir.display()
                ),
            )
        })
    }

    /// The side of the images MAGVIT-v2 encodes to the model's token grid.
    pub fn image_side(&self) -> Result<usize> {
        Ok(self.model.config().grid_side() * self.magvit()?.config().downsample())
    }

    /// `image`'s codes (row-major over the grid) after `image_transform`.
    pub fn image_codes(&self, image: &RgbImage) -> Result<Vec<u32>> {
        let side = self.image_side()?;
        let pixels = image_transform(image, side);
        let tensor = normalize_pixels(pixels.as_raw(), side, side, self.model.device())?;
        let codes = self.magvit()?.encode(&tensor)?.remove(0);
        let want = self.model.config().num_vq_tokens;
        if codes.len() != want {
            return Err(Error::invalid("mmada", format!("the image encodes to {} tokens but the model takes {want}", codes.len())));
        }
        Ok(codes)
    }

    /// The image sampler's settings for `s`.
    fn image_generation(&self, s: &ImageSettings) -> ImageGeneration {
        let c = self.model.config();
        ImageGeneration {
            timesteps: s.timesteps,
            guidance_scale: s.guidance_scale,
            temperature: s.temperature,
            mask_id: c.mask_token_id,
            image_offset: self.processor.image_offset,
            codebook_size: c.codebook_size,
            uncond_prefix: s.max_text_len + 1,
        }
    }

    /// `n` images for `prompt`: their codes, row-major.
    pub fn imagine(&self, prompt: &str, n: usize, s: &ImageSettings, progress: Progress<'_>) -> Result<Vec<Vec<u32>>> {
        let slots = vec![vec![self.model.config().mask_token_id; self.model.config().num_vq_tokens]; n];
        self.draw(prompt, slots, s, progress)
    }

    /// `n` versions of `image` with the cells `mask` marks redrawn for
    /// `prompt`, the others kept: their codes, row-major.
    pub fn inpaint(
        &self,
        prompt: &str,
        image: &RgbImage,
        mask: &RgbImage,
        n: usize,
        s: &ImageSettings,
        progress: Progress<'_>,
    ) -> Result<Vec<Vec<u32>>> {
        let marked = mask_to_grid(mask, image, self.image_side()?, self.model.config().grid_side())?;
        let codes = self.image_codes(image)?;
        let mask_id = self.model.config().mask_token_id;
        let row: Vec<u32> =
            codes.iter().zip(&marked).map(|(&c, &redraw)| if redraw { mask_id } else { c + self.processor.image_offset }).collect();
        self.draw(prompt, vec![row; n], s, progress)
    }

    /// MaskGIT over `slots` (one row per image) for `prompt`.
    fn draw(&self, prompt: &str, slots: Vec<Vec<u32>>, s: &ImageSettings, progress: Progress<'_>) -> Result<Vec<Vec<u32>>> {
        if slots.is_empty() {
            return Err(Error::invalid("mmada", "at least one image must be drawn"));
        }
        self.magvit()?;
        let n = slots.len();
        let tokens = slots[0].len();
        self.check_length(s.max_text_len + tokens + 3)?;
        let ids = &self.processor.ids;
        let text = self.processor.text_ids(prompt)?;
        let cond = t2i_gen_prompt(&vec![text; n], &slots, s.max_text_len, ids)?;
        let uncond = if s.guidance_scale > 0.0 {
            let empty = self.processor.text_ids("")?;
            Some(t2i_gen_prompt(&vec![empty; n], &slots, s.max_text_len, ids)?)
        } else {
            None
        };
        let g = self.image_generation(s);
        let total = s.timesteps;
        let mut on_step = |step: usize, _: &ImageStep| progress(step + 1, total);
        t2i_generate(&self.model, &cond, uncond.as_ref(), tokens, &g, &mut SeededNoise::new(s.seed), &mut on_step)
    }

    /// Pixels of `codes` (rows of the grid's codes), as inference_t2i.py
    /// converts them.
    pub fn decode_images(&self, codes: &[Vec<u32>]) -> Result<Vec<RgbImage>> {
        let pixels = self.magvit()?.decode(codes)?;
        let (h, w) = (pixels.dims()[2], pixels.dims()[3]);
        to_uint8_images(&pixels)?
            .into_iter()
            .map(|bytes| RgbImage::from_raw(w as u32, h as u32, bytes).ok_or_else(|| Error::invalid("mmada", "decoded image size")))
            .collect()
    }

    /// A sequence of `len` positions must fit the rope tables.
    fn check_length(&self, len: usize) -> Result<()> {
        let max = self.model.config().backbone.max_position_embeddings;
        if len > max {
            return Err(Error::invalid(
                "mmada",
                format!("the sequence would be {len} tokens, more than the model's {max} positions (max_sequence_length)"),
            ));
        }
        Ok(())
    }
}

/// The MAGVIT-v2 config and weights to load: from `vq` (a directory that
/// must hold both), else from the model directory when it holds either
/// (then it must hold both), else none.
fn magvit_files(dir: &Path, vq: Option<&str>, options: &LoadOptions) -> Result<Option<(PathBuf, PathBuf)>> {
    let (root, configs, weights) = match vq {
        Some(v) => (hub::resolve(v, MAGVIT_CHECKPOINT, options.download_progress)?, MAGVIT_CONFIG_NAMES, MAGVIT_WEIGHTS_NAMES),
        None => (dir.to_path_buf(), &[MAGVIT_CONFIG_FILE][..], &[MAGVIT_WEIGHTS_FILE][..]),
    };
    let find = |names: &[&str]| names.iter().map(|n| root.join(n)).find(|p| p.is_file());
    match (find(configs), find(weights)) {
        (Some(c), Some(w)) => Ok(Some((c, w))),
        (None, None) if vq.is_none() => Ok(None),
        (c, _) => {
            let missing = if c.is_none() { configs } else { weights };
            Err(Error::invalid("mmada", format!("the MAGVIT-v2 directory {} holds no {}", root.display(), missing.join(" or "))))
        }
    }
}

/// MAGVIT-v2 from its files (f32 always: it is small, and its pixels are
/// the output), checked against the LM's codebook.
fn load_magvit(config_file: &Path, weights: &Path, lm: &MmadaConfig, options: &LoadOptions) -> Result<(MagvitV2, UnusedTensors)> {
    let config = MagvitConfig::from_file(config_file)?;
    if config.codebook_size() != lm.codebook_size {
        return Err(Error::config(
            config_file.display().to_string(),
            format!(
                "a codebook of {} codes, but the language model's config.json has codebook_size {}",
                config.codebook_size(),
                lm.codebook_size
            ),
        ));
    }
    let file = SafeTensorsFile::open_with(weights, options.read_mode)?;
    let vb = VarBuilder::from_source(file, options.device.clone()).with_dtype(DType::F32);
    let magvit = MagvitV2::load(&vb, &config)?;
    let unused = UnusedTensors::new(vb.describe_source(), vb.unused(), MAGVIT_IGNORED);
    Ok((magvit, unused))
}

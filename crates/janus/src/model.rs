//! `JanusForConditionalGeneration`: one Llama language model that reads
//! images (vision tower and aligner into its input embeddings) and draws
//! them (image tokens from the generation head, fed back through the
//! generation embeddings, decoded by the VQ model).
//!
//! ```text
//! model.vision_model.*            JanusVisionModel
//! model.aligner.*                 vision features -> text width
//! model.vqmodel.*                 JanusVQVAE
//! model.generation_embeddings     [num_embeddings, embed_dim]
//! model.generation_aligner.*      embed_dim -> text width
//! model.generation_head.*         text width -> image-token logits
//! model.language_model.*          LlamaModel
//! lm_head                         text width -> text vocabulary (untied)
//! ```
//!
//! Understanding: the prompt's `image_token_id` positions take the aligned
//! image features in order (transformers' `masked_scatter`), then text is
//! generated with tessera-nn's loop through [`CausalDecoder`].
//!
//! Image generation, as transformers' `generate(generation_mode="image")`:
//! `n` conditional rows and `n` unconditional ones (the prompt with every
//! id but BOS and begin-of-image replaced by the pad id; the pads are
//! attended to) are prefilled; at each of `num_image_tokens` steps the
//! generation head reads both halves' last hidden states, the guided logits
//! are `u + s * (c - u)`, a token is chosen per image, and its generation
//! embedding is fed to both of that image's rows.

use crate::config::JanusConfig;
use crate::vision::{JanusAlignerMlp, JanusVisionModel};
use crate::vqvae::{GenerationEmbeddings, JanusVqVae, JanusVqVaeHead};
use crate::{Error, Result};
use tessera_nn::generation::CausalDecoder;
use tessera_nn::{Linear, LlamaCache, LlamaModel, LogitsProcessor, SamplingConfig, VarBuilder};
use tessera_tensor::{DType, Device, Tensor};

/// Called after each step of loading with (steps done, steps in all).
pub type LoadProgress<'a> = &'a mut dyn FnMut(usize, usize);

/// The image path's stages.
#[derive(Clone, Debug)]
pub struct ImageFeatures {
    /// The vision tower's last hidden state `[b, patches, vision width]`.
    pub vision: Tensor,
    /// The aligned features `[b, patches, text width]`: the language
    /// model's image inputs (`get_image_features`).
    pub aligned: Tensor,
}

/// A prompt run through the language model: the cache to continue from and
/// the next-token logits `[rows, vocab]`.
#[derive(Debug)]
pub struct Prefill {
    pub cache: LlamaCache,
    pub logits: Tensor,
}

/// Image generation in progress: `n` conditional rows, then `n`
/// unconditional ones, with the last hidden state of each.
#[derive(Debug)]
pub struct ImageGeneration {
    cache: LlamaCache,
    hidden: Tensor,
    images: usize,
    steps_done: usize,
}

impl ImageGeneration {
    /// Images being generated.
    pub fn images(&self) -> usize {
        self.images
    }

    /// Tokens fed so far per image.
    pub fn steps_done(&self) -> usize {
        self.steps_done
    }
}

/// The generation head's logits at one step, `[n, num_embeddings]` each.
#[derive(Clone, Debug)]
pub struct ImageLogits {
    pub cond: Tensor,
    pub uncond: Tensor,
    /// `uncond + scale * (cond - uncond)`.
    pub guided: Tensor,
}

/// How image tokens are chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSampling {
    /// Classifier-free guidance scale `s` (at least 0; 1 is no guidance).
    pub guidance_scale: f64,
    /// Temperature, top-k and top-p; greedy when its temperature is 0.
    pub sampling: SamplingConfig,
    /// The generator's seed when sampling.
    pub seed: u64,
}

/// `JanusForConditionalGeneration`.
#[derive(Clone, Debug)]
pub struct JanusForConditionalGeneration {
    config: JanusConfig,
    vision_model: JanusVisionModel,
    aligner: JanusAlignerMlp,
    vqmodel: JanusVqVae,
    generation_embeddings: GenerationEmbeddings,
    generation_head: JanusVqVaeHead,
    language_model: LlamaModel,
    lm_head: Linear,
}

impl JanusForConditionalGeneration {
    /// Loads every module from `vb` (at the checkpoint's root).
    pub fn load(vb: &VarBuilder, config: &JanusConfig) -> Result<Self> {
        Self::load_with_progress(vb, config, &mut |_, _| {})
    }

    /// [`load`](Self::load), calling `progress(done, total)` after each
    /// layer.
    pub fn load_with_progress(vb: &VarBuilder, config: &JanusConfig, progress: LoadProgress<'_>) -> Result<Self> {
        let (v, q, t) = (&config.vision_config, &config.vq_config, &config.text_config);
        let total = v.num_hidden_layers + t.num_hidden_layers + 2;
        let mut done = 0;
        let mut step = || {
            done += 1;
            progress(done, total);
        };
        let m = vb.pp("model");
        let vision_model = JanusVisionModel::load(&m.pp("vision_model"), v, &mut step)?;
        let aligner = JanusAlignerMlp::load(&m.pp("aligner"), v.hidden_size, v.projection_dim, v.depth, v.hidden_act)?;
        let vqmodel = JanusVqVae::load(&m.pp("vqmodel"), q)?;
        step();
        let generation_embeddings = GenerationEmbeddings::load(&m, q)?;
        let generation_head = JanusVqVaeHead::load(&m.pp("generation_head"), q)?;
        let language_model = LlamaModel::load(&m.pp("language_model"), t, &mut step)?;
        let lm_head = Linear::load(&vb.pp("lm_head"), t.hidden_size, t.vocab_size, false)?;
        step();
        Ok(JanusForConditionalGeneration {
            config: config.clone(),
            vision_model,
            aligner,
            vqmodel,
            generation_embeddings,
            generation_head,
            language_model,
            lm_head,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &JanusConfig {
        &self.config
    }

    /// The language model.
    pub fn language_model(&self) -> &LlamaModel {
        &self.language_model
    }

    /// The VQ model.
    pub fn vqmodel(&self) -> &JanusVqVae {
        &self.vqmodel
    }

    /// The weights' device.
    pub fn device(&self) -> &Device {
        self.language_model.device()
    }

    /// The dtype the model computes in.
    pub fn dtype(&self) -> DType {
        self.language_model.dtype()
    }

    /// Both stages of the image path for `pixel_values [b, 3, s, s]`.
    pub fn get_image_features(&self, pixel_values: &Tensor) -> Result<ImageFeatures> {
        let vision = self.vision_model.forward(pixel_values)?;
        let aligned = self.aligner.forward(&vision)?;
        Ok(ImageFeatures { vision, aligned })
    }

    /// The input embeddings `[1, t, hidden]` of one prompt: token
    /// embeddings, with the `image_token_id` positions taking the rows of
    /// `image_features` (`[b, patches, hidden]`, images in order) as
    /// transformers' `masked_scatter` does. The number of placeholders must
    /// equal the number of feature rows.
    pub fn embed_prompt(&self, ids: &[u32], image_features: Option<&Tensor>) -> Result<Tensor> {
        let text = self.language_model.embed(ids, 1)?;
        let image_token = self.config.image_token_id;
        let slots = ids.iter().filter(|&&id| id == image_token).count();
        let rows = image_features.map_or(0, |f| f.dims()[..f.rank() - 1].iter().product());
        if slots != rows {
            return Err(Error::invalid(
                "janus",
                format!("the prompt holds {slots} image placeholders (id {image_token}) but the images give {rows} feature rows"),
            ));
        }
        let Some(features) = image_features else { return Ok(text) };
        let hidden = self.language_model.hidden_size();
        let features = features.reshape(vec![rows, hidden])?.to_dtype(text.dtype())?;
        // One gather from [text rows; feature rows]: position p reads its
        // own token's row, or the next unused feature row.
        let table = Tensor::cat(&[&text.squeeze(0)?, &features], 0)?;
        let mut next_feature = ids.len();
        let index: Vec<u32> = ids
            .iter()
            .enumerate()
            .map(|(p, &id)| {
                if id == image_token {
                    next_feature += 1;
                    (next_feature - 1) as u32
                } else {
                    p as u32
                }
            })
            .collect();
        let index = Tensor::from_slice(&index, index.len(), self.device())?;
        Ok(table.index_select(&index, 0)?.unsqueeze(0)?)
    }

    /// Runs the language model over `embeds [rows, t, hidden]` from an empty
    /// cache; the logits of the last position through `lm_head`.
    pub fn prefill(&self, embeds: &Tensor) -> Result<Prefill> {
        let mut cache = self.language_model.new_cache();
        let hidden = self.language_model.forward_embeds(embeds, None, &mut cache)?;
        Ok(Prefill { logits: self.lm_head.forward(&last_position(&hidden)?)?, cache })
    }

    /// The text logits `[b, t, vocab]` of every position of a hidden state.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.lm_head.forward(hidden)?)
    }

    /// Starts generating `images` images from one prompt: prefills the
    /// conditional ids and the unconditional ids (the same length) and
    /// expands them to `images` rows each.
    pub fn start_image_generation(&self, cond_ids: &[u32], uncond_ids: &[u32], images: usize) -> Result<ImageGeneration> {
        if images == 0 {
            return Err(Error::invalid("janus", "the number of images to generate must be at least 1"));
        }
        if cond_ids.len() != uncond_ids.len() || cond_ids.is_empty() {
            return Err(Error::invalid(
                "janus",
                format!(
                    "the conditional ({}) and unconditional ({}) prompts must be non-empty and equally long",
                    cond_ids.len(),
                    uncond_ids.len()
                ),
            ));
        }
        let needed = cond_ids.len() + self.config.vision_config.num_image_tokens;
        if needed > self.language_model.max_positions() {
            return Err(Error::invalid(
                "janus",
                format!(
                    "the prompt ({} tokens) and {} image tokens need {needed} positions, more than the language model's {}",
                    cond_ids.len(),
                    self.config.vision_config.num_image_tokens,
                    self.language_model.max_positions()
                ),
            ));
        }
        let ids: Vec<u32> = cond_ids.iter().chain(uncond_ids).copied().collect();
        let embeds = self.language_model.embed(&ids, 2)?;
        let mut cache = self.language_model.new_cache();
        // Room for the whole grid up front: every step then appends in place.
        cache.reserve(needed)?;
        let hidden = last_position(&self.language_model.forward_embeds(&embeds, None, &mut cache)?)?;
        let rows: Vec<usize> = (0..2 * images).map(|r| r / images).collect();
        cache.select_rows(&rows)?;
        let index = Tensor::from_slice(&rows.iter().map(|&r| r as u32).collect::<Vec<_>>(), rows.len(), self.device())?;
        Ok(ImageGeneration { cache, hidden: hidden.index_select(&index, 0)?, images, steps_done: 0 })
    }

    /// The generation head's logits for the next image token of every
    /// image, and their guided combination with `scale`.
    pub fn image_logits(&self, state: &ImageGeneration, scale: f64) -> Result<ImageLogits> {
        let n = state.images;
        let scores = self.generation_head.forward(&state.hidden)?.to_dtype(DType::F32)?;
        let (cond, uncond) = (scores.narrow(0, 0, n)?, scores.narrow(0, n, n)?);
        let guided = uncond.add(&cond.sub(&uncond)?.mul_scalar(scale)?)?;
        Ok(ImageLogits { cond, uncond, guided })
    }

    /// Feeds one chosen token per image to both of its rows.
    pub fn feed_image_tokens(&self, state: &mut ImageGeneration, tokens: &[u32]) -> Result<()> {
        if tokens.len() != state.images {
            return Err(Error::invalid("janus", format!("{} tokens for {} images", tokens.len(), state.images)));
        }
        let both: Vec<u32> = tokens.iter().chain(tokens).copied().collect();
        let embeds = self.generation_embeddings.forward(&both)?;
        let hidden = self.language_model.forward_embeds(&embeds, None, &mut state.cache)?;
        state.hidden = last_position(&hidden)?;
        state.steps_done += 1;
        Ok(())
    }

    /// Generates `images` grids of `num_image_tokens` tokens (row-major)
    /// for one prompt, calling `on_step(done, total)` after each token.
    pub fn generate_image_tokens(
        &self,
        cond_ids: &[u32],
        uncond_ids: &[u32],
        images: usize,
        options: &ImageSampling,
        on_step: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<Vec<u32>>> {
        let scale = options.guidance_scale;
        if !(scale.is_finite() && scale >= 0.0) {
            return Err(Error::invalid("janus", format!("the guidance scale must be finite and at least 0, got {scale}")));
        }
        let mut processor = LogitsProcessor::new(options.seed, options.sampling)?;
        let total = self.config.vision_config.num_image_tokens;
        let mut state = self.start_image_generation(cond_ids, uncond_ids, images)?;
        let mut grids = vec![Vec::with_capacity(total); images];
        for step in 0..total {
            let logits = self.image_logits(&state, scale)?;
            let values = logits.guided.to_f32_vec()?;
            let width = values.len() / images;
            let tokens = values.chunks(width).map(|row| processor.sample_slice(row)).collect::<tessera_nn::Result<Vec<u32>>>()?;
            for (grid, &t) in grids.iter_mut().zip(&tokens) {
                grid.push(t);
            }
            if step + 1 < total {
                self.feed_image_tokens(&mut state, &tokens)?;
            }
            on_step(step + 1, total);
        }
        Ok(grids)
    }

    /// Pixels `[b, s, s, 3]` (channels last, about -1..1) of image-token
    /// grids: transformers' `decode_image_tokens`.
    pub fn decode_image_tokens(&self, tokens: &[Vec<u32>]) -> Result<Tensor> {
        Ok(self.vqmodel.decode(tokens)?.permute(&[0, 2, 3, 1])?.contiguous()?)
    }
}

/// `hidden [b, t, d] -> [b, d]` at the last position.
fn last_position(hidden: &Tensor) -> Result<Tensor> {
    let t = hidden.dims()[1];
    Ok(hidden.narrow(1, t - 1, 1)?.squeeze(1)?)
}

impl CausalDecoder for JanusForConditionalGeneration {
    type State = LlamaCache;

    fn decode_step(&self, tokens: &[u32], state: &mut LlamaCache) -> tessera_nn::Result<Tensor> {
        let embeds = self.language_model.embed(tokens, tokens.len())?;
        let hidden = self.language_model.forward_embeds(&embeds, None, state)?;
        self.lm_head.forward(&last_position(&hidden).map_err(to_nn)?)
    }

    fn select_rows(&self, state: &mut LlamaCache, rows: &[usize]) -> tessera_nn::Result<()> {
        state.select_rows(rows)
    }
}

/// This crate's errors as tessera-nn's, for the generation loop.
fn to_nn(e: Error) -> tessera_nn::Error {
    match e {
        Error::Nn(e) => e,
        other => tessera_nn::Error::invalid("janus", other.to_string()),
    }
}

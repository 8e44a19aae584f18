//! `Blip2ForConditionalGeneration`: the vision tower, the learned queries
//! and the Q-Former, `language_projection` into the language model's
//! width, and the OPT decoder that continues from the projected queries.
//!
//! ```text
//! vision_model.*          Blip2VisionModel
//! query_tokens            [1, num_query_tokens, qformer hidden]
//! qformer.*               Blip2QFormerModel
//! language_projection     Linear(qformer hidden -> text hidden)
//! language_model.*        OPTForCausalLM
//! ```
//!
//! As in transformers, the query tokens and the Q-Former stay in f32 when
//! the rest of the model runs in f16 or bf16 (`_keep_in_fp32_modules`); the
//! Q-Former's output is cast back to the model's dtype before the
//! projection.
//!
//! The language model's input is transformers' prompt layout:
//! `num_query_tokens` image positions holding the projected queries, then
//! the start token, then the prompt's tokens.

use crate::config::Blip2Config;
use crate::opt::{OptCache, OptForCausalLm};
use crate::qformer::Blip2QFormerModel;
use crate::vision::Blip2VisionModel;
use crate::{Error, Result};
use tessera_nn::{Linear, VarBuilder};
use tessera_tensor::{DType, Tensor};

/// Called after each step of loading with (steps done, steps in all).
pub type LoadProgress<'a> = &'a mut dyn FnMut(usize, usize);

/// What the image path computes, stage by stage.
#[derive(Clone, Debug)]
pub struct ImageFeatures {
    /// The vision tower's last hidden state `[b, 1 + patches, vision width]`.
    pub vision: Tensor,
    /// The Q-Former's last hidden state `[b, queries, qformer width]` (f32).
    pub qformer: Tensor,
    /// The projected queries `[b, queries, text width]`: the language
    /// model's image inputs.
    pub projection: Tensor,
}

/// A prompt run through the language model: the cache to continue from and
/// the next-token logits `[b, vocab]`.
#[derive(Debug)]
pub struct Prefill {
    pub cache: OptCache,
    pub logits: Tensor,
}

/// `Blip2ForConditionalGeneration`.
#[derive(Clone, Debug)]
pub struct Blip2ForConditionalGeneration {
    config: Blip2Config,
    vision_model: Blip2VisionModel,
    query_tokens: Tensor,
    qformer: Blip2QFormerModel,
    language_projection: Linear,
    language_model: OptForCausalLm,
}

impl Blip2ForConditionalGeneration {
    /// Loads every module from `vb` (at the checkpoint's root), in `vb`'s
    /// dtype except the Q-Former and queries (f32).
    pub fn load(vb: &VarBuilder, config: &Blip2Config) -> Result<Self> {
        Self::load_with_progress(vb, config, &mut |_, _| {})
    }

    /// [`load`](Self::load), calling `progress(done, total)` after each layer.
    pub fn load_with_progress(vb: &VarBuilder, config: &Blip2Config, progress: LoadProgress<'_>) -> Result<Self> {
        let (v, q, t) = (&config.vision_config, &config.qformer_config, &config.text_config);
        let total = v.num_hidden_layers + q.num_hidden_layers + t.num_hidden_layers + 1;
        let mut done = 0;
        let mut step = || {
            done += 1;
            progress(done, total);
        };
        let vision_model = Blip2VisionModel::load(&vb.pp("vision_model"), v, &mut step)?;
        let f32_vb = vb.with_dtype(DType::F32);
        let query_tokens = f32_vb.get(vec![1, config.num_query_tokens, q.hidden_size], "query_tokens")?;
        let qformer = Blip2QFormerModel::load(&f32_vb.pp("qformer"), q, false, &mut step)?;
        let language_projection = Linear::load(&vb.pp("language_projection"), q.hidden_size, t.hidden_size, true)?;
        let language_model = OptForCausalLm::load(&vb.pp("language_model"), t, &mut step)?;
        step();
        Ok(Blip2ForConditionalGeneration {
            config: config.clone(),
            vision_model,
            query_tokens,
            qformer,
            language_projection,
            language_model,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Blip2Config {
        &self.config
    }

    /// The vision tower.
    pub fn vision_model(&self) -> &Blip2VisionModel {
        &self.vision_model
    }

    /// The Q-Former.
    pub fn qformer(&self) -> &Blip2QFormerModel {
        &self.qformer
    }

    /// The language model.
    pub fn language_model(&self) -> &OptForCausalLm {
        &self.language_model
    }

    /// Every stage of the image path for `pixel_values [b, 3, s, s]`
    /// (transformers' `get_image_features`).
    pub fn get_image_features(&self, pixel_values: &Tensor) -> Result<ImageFeatures> {
        let vision = self.vision_model.forward(pixel_values)?;
        let b = vision.dims()[0];
        let q = self.query_tokens.dims().to_vec();
        let queries = self.query_tokens.broadcast_as(vec![b, q[1], q[2]])?;
        let qformer = self.qformer.forward(&queries, &vision.to_dtype(DType::F32)?)?;
        let projection = self.language_projection.forward(&qformer.to_dtype(vision.dtype())?)?;
        Ok(ImageFeatures { vision, qformer, projection })
    }

    /// Runs the language model over the projected queries `image_inputs
    /// [b, queries, text width]` followed by the embeddings of `text_ids`
    /// (the start token, then the prompt: the same ids for every row).
    pub fn prefill(&self, image_inputs: &Tensor, text_ids: &[u32]) -> Result<Prefill> {
        let b = image_inputs.dims()[0];
        if text_ids.is_empty() {
            return Err(Error::invalid("blip2", "the prompt must hold at least the start token"));
        }
        let total = image_inputs.dims()[1] + text_ids.len();
        let max = self.language_model.max_positions();
        if total > max {
            return Err(Error::invalid(
                "blip2",
                format!(
                    "the prompt takes {total} positions ({} image tokens + {} text tokens), more than the {max} the language model has",
                    image_inputs.dims()[1],
                    text_ids.len()
                ),
            ));
        }
        let ids: Vec<u32> = (0..b).flat_map(|_| text_ids.iter().copied()).collect();
        let text = self.language_model.embed(&ids, b)?;
        let embeds = Tensor::cat(&[&image_inputs.to_dtype(text.dtype())?, &text], 1)?;
        let mut cache = self.language_model.new_cache();
        let hidden = self.language_model.forward_embeds(&embeds, &mut cache)?;
        let logits = self.language_model.last_logits(&hidden)?;
        Ok(Prefill { cache, logits })
    }
}

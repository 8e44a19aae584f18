//! `Blip2ForImageTextRetrieval`: the vision tower and the Q-Former with its
//! text input, and two heads that score an image against a text.
//!
//! ```text
//! vision_model.*          Blip2VisionModel
//! query_tokens            [1, num_query_tokens, qformer hidden]
//! embeddings.*            Blip2TextEmbeddings (words + positions)
//! qformer.*               Blip2QFormerModel with the text FFN
//! vision_projection       Linear(qformer hidden -> image_text_hidden_size)
//! text_projection         Linear(qformer hidden -> image_text_hidden_size)
//! itm_head                Linear(qformer hidden -> 2)
//! ```
//!
//! - Image-text matching (ITM): the queries and the text's tokens run through
//!   the Q-Former together (the queries cross-attending to the image, every
//!   token attending to every unpadded one); `itm_head` on each query's
//!   output, averaged over the queries: logits `[no, yes]` per pair.
//! - Image-text contrastive (ITC): the queries alone give one unit vector per
//!   query (`vision_projection`), the text alone its first token's
//!   (`text_projection`); an image's score for a text is the largest cosine
//!   over its queries.
//!
//! As in transformers, the query tokens and the Q-Former stay in f32 while
//! the rest runs in the model's dtype, and the query tokens pass through the
//! text embeddings' dtype where they are concatenated with the text.

use crate::config::Blip2Config;
use crate::model::LoadProgress;
use crate::qformer::{key_padding_mask, Blip2QFormerModel, Blip2TextEmbeddings};
use crate::vision::Blip2VisionModel;
use crate::{Error, Result};
use tessera_hf::tokenizer::TokenBatch;
use tessera_nn::{l2_normalize, Linear, VarBuilder};
use tessera_tensor::{DType, Tensor};

/// The contrastive head's outputs for `b` images and `n` texts.
#[derive(Clone, Debug)]
pub struct ContrastiveOutput {
    /// `[b, n]`: each image's best query cosine with each text.
    pub logits_per_image: Tensor,
    /// `[n, b]`, the transpose.
    pub logits_per_text: Tensor,
    /// `[b, queries, image_text_hidden_size]`, unit rows.
    pub image_embeds: Tensor,
    /// `[n, image_text_hidden_size]`, unit rows.
    pub text_embeds: Tensor,
}

/// `Blip2ForImageTextRetrieval`.
#[derive(Clone, Debug)]
pub struct Blip2ForImageTextRetrieval {
    config: Blip2Config,
    vision_model: Blip2VisionModel,
    query_tokens: Tensor,
    embeddings: Blip2TextEmbeddings,
    qformer: Blip2QFormerModel,
    vision_projection: Linear,
    text_projection: Linear,
    itm_head: Linear,
}

impl Blip2ForImageTextRetrieval {
    /// Loads every module from `vb` (at the checkpoint's root), in `vb`'s
    /// dtype except the Q-Former and queries (f32), calling `progress(done,
    /// total)` after each layer.
    pub fn load(vb: &VarBuilder, config: &Blip2Config, progress: LoadProgress<'_>) -> Result<Self> {
        let (v, q) = (&config.vision_config, &config.qformer_config);
        if !q.use_qformer_text_input {
            return Err(Error::invalid(
                "blip2",
                "qformer_config.use_qformer_text_input is false: the retrieval heads need the Q-Former's text FFN",
            ));
        }
        let total = v.num_hidden_layers + q.num_hidden_layers + 1;
        let mut done = 0;
        let mut step = || {
            done += 1;
            progress(done, total);
        };
        let vision_model = Blip2VisionModel::load(&vb.pp("vision_model"), v, &mut step)?;
        let f32_vb = vb.with_dtype(DType::F32);
        let query_tokens = f32_vb.get(vec![1, config.num_query_tokens, q.hidden_size], "query_tokens")?;
        let qformer = Blip2QFormerModel::load(&f32_vb.pp("qformer"), q, true, &mut step)?;
        let width = config.image_text_hidden_size;
        let model = Blip2ForImageTextRetrieval {
            config: config.clone(),
            vision_model,
            query_tokens,
            embeddings: Blip2TextEmbeddings::load(&vb.pp("embeddings"), q)?,
            qformer,
            vision_projection: Linear::load(&vb.pp("vision_projection"), q.hidden_size, width, true)?,
            text_projection: Linear::load(&vb.pp("text_projection"), q.hidden_size, width, true)?,
            itm_head: Linear::load(&vb.pp("itm_head"), q.hidden_size, 2, true)?,
        };
        step();
        Ok(model)
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

    /// The Q-Former's text embeddings.
    pub fn embeddings(&self) -> &Blip2TextEmbeddings {
        &self.embeddings
    }

    /// The vision tower's last hidden state for `pixel_values [b, 3, s, s]`,
    /// in f32 for the Q-Former.
    fn image_features(&self, pixel_values: &Tensor) -> Result<Tensor> {
        Ok(self.vision_model.forward(pixel_values)?.to_dtype(DType::F32)?)
    }

    fn queries(&self, b: usize) -> Result<Tensor> {
        let q = self.query_tokens.dims();
        Ok(self.query_tokens.broadcast_as(vec![b, q[1], q[2]])?)
    }

    /// `texts` padded to their longest: the ids `[n, t]` as row-major ids,
    /// each position's keep flag, and `(n, t)`.
    fn padded(texts: &TokenBatch) -> Result<(Vec<u32>, Vec<bool>, usize, usize)> {
        let (n, t) = (texts.ids.len(), texts.max_len());
        if n == 0 || t == 0 {
            return Err(Error::invalid("blip2", "no text to score: every text needs at least one token"));
        }
        let ids = texts.padded(t).into_iter().map(|id| id as u32).collect();
        let keep = texts.attention_mask(t).into_iter().map(|m| m != 0).collect();
        Ok((ids, keep, n, t))
    }

    /// Image-text matching: logits `[b, 2]` (not a match, a match) of image
    /// `i` of `pixel_values [b, 3, s, s]` against text `i` of `texts` (the
    /// Q-Former tokenizer's ids, special tokens included, without image
    /// placeholders).
    pub fn image_text_matching(&self, pixel_values: &Tensor, texts: &TokenBatch) -> Result<Tensor> {
        let image = self.image_features(pixel_values)?;
        let b = image.dims()[0];
        let (ids, keep_text, n, t) = Self::padded(texts)?;
        if n != b {
            return Err(Error::invalid("blip2", format!("image-text matching pairs images with texts: {b} images, {n} texts")));
        }
        let text = self.embeddings.forward(&ids, n)?;
        let queries = self.queries(b)?.to_dtype(text.dtype())?;
        let embeds = Tensor::cat(&[&queries, &text], 1)?.to_dtype(DType::F32)?;
        let q = self.config.num_query_tokens;
        let keep: Vec<bool> = keep_text.chunks(t).flat_map(|row| std::iter::repeat_n(true, q).chain(row.iter().copied())).collect();
        let mask = key_padding_mask(&keep, b, pixel_values.device(), DType::F32)?;
        let hidden = self.qformer.forward_with_text(&embeds, q, Some(&mask), Some(&image))?;
        let query_out = hidden.narrow(1, 0, q)?.to_dtype(self.itm_head.rows().dtype())?;
        Ok(self.itm_head.forward(&query_out)?.mean(&[1], false)?)
    }

    /// The contrastive head's unit query embeddings `[b, queries, width]`.
    pub fn image_embeds(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let image = self.image_features(pixel_values)?;
        let out = self.qformer.forward(&self.queries(image.dims()[0])?, &image)?;
        let projected = self.vision_projection.forward(&out.to_dtype(self.vision_projection.rows().dtype())?)?;
        Ok(l2_normalize(&projected)?)
    }

    /// The contrastive head's unit text embeddings `[n, width]`: the
    /// Q-Former over the text alone, its first token projected.
    pub fn text_embeds(&self, texts: &TokenBatch) -> Result<Tensor> {
        let (ids, keep, n, _) = Self::padded(texts)?;
        let embeds = self.embeddings.forward(&ids, n)?.to_dtype(DType::F32)?;
        let mask = key_padding_mask(&keep, n, embeds.device(), DType::F32)?;
        let hidden = self.qformer.forward_with_text(&embeds, 0, Some(&mask), None)?;
        let first = hidden.narrow(1, 0, 1)?.reshape(vec![n, hidden.dims()[2]])?;
        let projected = self.text_projection.forward(&first.to_dtype(self.text_projection.rows().dtype())?)?;
        Ok(l2_normalize(&projected)?)
    }

    /// Image-text contrastive scores of every image against every text.
    pub fn image_text_contrastive(&self, pixel_values: &Tensor, texts: &TokenBatch) -> Result<ContrastiveOutput> {
        let image_embeds = self.image_embeds(pixel_values)?;
        let text_embeds = self.text_embeds(texts)?;
        let per_query = image_embeds.matmul(&text_embeds.t()?)?;
        let logits_per_image = per_query.max(&[1], false)?;
        let logits_per_text = logits_per_image.t()?.contiguous()?;
        Ok(ContrastiveOutput { logits_per_image, logits_per_text, image_embeds, text_embeds })
    }
}

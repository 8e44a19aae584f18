//! MMaDA's samplers (`MMadaModelLM.mmu_generate` and `t2i_generate`,
//! models/modeling_mmada.py) over the LLaDA backbone.
//!
//! Text (and understanding): the answer starts as `gen_length` masks and
//! is filled block by block (`block_length`), each block in
//! `steps / blocks` full-sequence passes. A pass predicts every masked
//! position (`argmax`, with Gumbel noise at a temperature), scores it
//! (`low_confidence`: its f64 softmax probability; `random`: a uniform
//! draw), and commits the best-scored positions of the current block, as
//! many as `get_num_transfer_tokens` says; committed tokens stay. With
//! `cfg_scale > 0` an unconditional row (prompt positions masked, no
//! attention bias) gives `u + (s + 1)(c - u)`.
//!
//! Images (MaskGIT): every step predicts all image slots under the pairwise
//! padding bias, guided as `(1 + s) c - s u` where the unconditional row is
//! the empty prompt's prefix followed by the current image slots; draws a
//! code per slot, keeps known ones (inpainting), and re-masks the
//! `mask_len` least confident of the rest by the noisy confidence, the
//! temperature annealed as `T *= 1 - ratio` each step. The result is the
//! last step's drawn grid.

use crate::modeling_llada::{AttentionBias, LladaModel};
use crate::prompting::T2iPrompt;
use crate::sampling::{
    argmax, cosine_mask_ratio, mask_by_random_topk, mask_len, num_transfer_tokens, softmax_f32, softmax_f64_at, top_k, NoiseSource,
};
use tessera_hf::{Error, Result};
use tessera_nn::LlamaCache;
use tessera_tensor::{DType, Tensor};

/// How text confidences are scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remasking {
    LowConfidence,
    Random,
}

impl std::str::FromStr for Remasking {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "low_confidence" => Ok(Remasking::LowConfidence),
            "random" => Ok(Remasking::Random),
            other => Err(Error::invalid("mmada", format!("unknown remasking '{other}' (low_confidence or random)"))),
        }
    }
}

/// The settings of text generation.
#[derive(Clone, Debug, PartialEq)]
pub struct TextGeneration {
    pub gen_length: usize,
    pub block_length: usize,
    pub steps: usize,
    pub temperature: f64,
    pub cfg_scale: f64,
    pub remasking: Remasking,
    pub mask_id: u32,
    /// Fast-dLLM's prefix cache (not in the reference; off there): each
    /// block's first pass runs over the whole sequence and keeps the keys
    /// and values of the positions before the block; its other passes run
    /// over the block and what follows only, attending to those kept keys
    /// and values. The prefix's entries then miss the block's newly
    /// committed tokens, so results may differ from the exact sampler.
    pub prefix_cache: bool,
}

impl TextGeneration {
    /// Blocks and passes per block, or the error the reference asserts.
    pub fn schedule(&self) -> Result<(usize, usize)> {
        if self.gen_length == 0 || self.block_length == 0 || !self.gen_length.is_multiple_of(self.block_length) {
            return Err(Error::invalid(
                "mmada",
                format!("gen_length {} is not a positive multiple of block_length {}", self.gen_length, self.block_length),
            ));
        }
        let blocks = self.gen_length / self.block_length;
        if self.steps == 0 || !self.steps.is_multiple_of(blocks) {
            return Err(Error::invalid("mmada", format!("steps {} do not divide into the {blocks} blocks", self.steps)));
        }
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !non_negative(self.temperature) || !non_negative(self.cfg_scale) {
            return Err(Error::invalid("mmada", format!("temperature {} and cfg_scale {} must be >= 0", self.temperature, self.cfg_scale)));
        }
        Ok((blocks, self.steps / blocks))
    }
}

/// `mmu_generate`: fills `gen_length` masks after each prompt row (all of
/// one length), calling `on_step` with the rows after every pass; returns
/// the whole rows.
pub fn mmu_generate(
    model: &LladaModel,
    prompts: &[Vec<u32>],
    g: &TextGeneration,
    noise: &mut dyn NoiseSource,
    on_step: &mut dyn FnMut(usize, &[Vec<u32>]),
) -> Result<Vec<Vec<u32>>> {
    let (blocks, steps) = g.schedule()?;
    let b = prompts.len();
    let p = prompts.first().map_or(0, Vec::len);
    if b == 0 || p == 0 || prompts.iter().any(|r| r.len() != p) {
        return Err(Error::invalid("mmada", "prompts must be non-empty rows of one length"));
    }
    let l = p + g.gen_length;
    let mut x: Vec<Vec<u32>> = prompts.iter().map(|r| [r.as_slice(), &vec![g.mask_id; g.gen_length]].concat()).collect();
    let prompt_index: Vec<Vec<bool>> = x.iter().map(|r| r.iter().map(|&t| t != g.mask_id).collect()).collect();
    let vocab = model.config().vocab_size();
    let mut step = 0;
    for block in 0..blocks {
        let (start, end) = (p + block * g.block_length, p + (block + 1) * g.block_length);
        let per_row: Vec<Vec<usize>> =
            x.iter().map(|r| num_transfer_tokens(r[start..end].iter().filter(|&&t| t == g.mask_id).count(), steps)).collect();
        // Commits per step, one count per row.
        let counts: Vec<Vec<usize>> = (0..steps).map(|i| per_row.iter().map(|c| c[i]).collect()).collect();
        let mut prefix = g.prefix_cache.then(|| PrefixCache { cache: model.new_cache(), start, filled: false });
        for commits in &counts {
            // Masked positions at or after the block's end score -inf, so
            // only positions before it need logits.
            let first = x.iter().filter_map(|r| r.iter().position(|&t| t == g.mask_id)).min().unwrap_or(end).min(end);
            let span = end.saturating_sub(first);
            let logits = if span == 0 { Vec::new() } else { text_logits(model, &x, &prompt_index, g, first, span, prefix.as_mut())? };
            let random = (g.remasking == Remasking::Random).then(|| noise.uniform_f32(b * l));
            let noisy = (g.temperature > 0.0).then(|| noise.uniform_f64(b * span * vocab));
            for (r, row) in x.iter_mut().enumerate() {
                let mut candidates = vec![f64::NEG_INFINITY; span];
                let mut predicted = vec![0u32; span];
                for j in 0..span {
                    if row[first + j] != g.mask_id {
                        continue;
                    }
                    let lr = &logits[(r * span + j) * vocab..][..vocab];
                    let x0 = match &noisy {
                        None => argmax(lr),
                        Some(u) => {
                            let u = &u[(r * span + j) * vocab..][..vocab];
                            let scores: Vec<f64> =
                                lr.iter().zip(u).map(|(&z, &u)| (z as f64).exp() / (-u.ln()).powf(g.temperature)).collect();
                            argmax(&scores)
                        }
                    };
                    predicted[j] = x0 as u32;
                    candidates[j] = match &random {
                        None => softmax_f64_at(lr, x0),
                        Some(u) => u[r * l + first + j] as f64,
                    };
                }
                for j in top_k(&candidates, commits[r]) {
                    row[first + j] = predicted[j];
                }
            }
            on_step(step, &x);
            step += 1;
        }
    }
    Ok(x)
}

/// The keys and values of the positions before a block (`start`), once
/// the block's first pass has `filled` them.
struct PrefixCache {
    cache: LlamaCache,
    start: usize,
    filled: bool,
}

/// Logits `[b * span * vocab]` of positions `first..first + span`,
/// guided when `cfg_scale > 0`; through `prefix` when given.
fn text_logits(
    model: &LladaModel,
    x: &[Vec<u32>],
    prompt_index: &[Vec<bool>],
    g: &TextGeneration,
    first: usize,
    span: usize,
    prefix: Option<&mut PrefixCache>,
) -> Result<Vec<f32>> {
    let b = x.len();
    let l = x[0].len();
    let vocab = 0..model.config().vocab_size();
    let mut rows: Vec<&[u32]> = x.iter().map(Vec::as_slice).collect();
    let unconditional: Vec<Vec<u32>> = if g.cfg_scale > 0.0 {
        x.iter()
            .zip(prompt_index)
            .map(|(row, prompt)| row.iter().zip(prompt).map(|(&t, &p)| if p { g.mask_id } else { t }).collect())
            .collect()
    } else {
        Vec::new()
    };
    rows.extend(unconditional.iter().map(Vec::as_slice));
    let hidden = match prefix {
        // Later passes of a block: its positions and those after it, after
        // the kept prefix (a masked prompt position before the block falls
        // back to the whole sequence).
        Some(p) if p.filled && first >= p.start => {
            let ids: Vec<u32> = rows.iter().flat_map(|r| r[p.start..].iter().copied()).collect();
            let hidden = model.hidden_after(&ids, rows.len(), &mut p.cache)?;
            p.cache.truncate(p.start)?;
            hidden.narrow(1, first - p.start, span)?
        }
        Some(p) => {
            p.cache = model.new_cache();
            p.cache.reserve(l)?;
            let hidden = model.hidden_after(&rows.concat(), rows.len(), &mut p.cache)?;
            p.cache.truncate(p.start)?;
            p.filled = true;
            hidden.narrow(1, first, span)?
        }
        None => model.hidden(&rows.concat(), rows.len(), AttentionBias::Full)?.narrow(1, first, span)?,
    };
    let logits = model.logits_over(&hidden, vocab)?;
    let logits = if g.cfg_scale > 0.0 {
        let (c, u) = (logits.narrow(0, 0, b)?, logits.narrow(0, b, b)?);
        u.add(&c.sub(&u)?.mul_scalar(g.cfg_scale + 1.0)?)?
    } else {
        logits
    };
    Ok(logits.to_dtype(DType::F32)?.to_vec::<f32>()?)
}

/// The settings of image generation.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageGeneration {
    pub timesteps: usize,
    pub guidance_scale: f64,
    pub temperature: f64,
    pub mask_id: u32,
    /// Where image codes start in the vocabulary (the text tokenizer's length).
    pub image_offset: u32,
    pub codebook_size: usize,
    /// Tokens of the unconditional prompt's prefix kept in its row
    /// (`resolution + 1`: the text slots).
    pub uncond_prefix: usize,
}

/// What one image step computed, for callers that show or check it.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageStep {
    /// The ids fed to the model: the conditional rows, then (guided) the
    /// unconditional ones.
    pub model_inputs: Vec<Vec<u32>>,
    /// Guided logits `[b, n, codebook]` of the image slots.
    pub logits: Vec<f32>,
    /// Drawn codes before known ones are restored, `[b][n]`.
    pub sampled_raw: Vec<Vec<u32>>,
    /// Probability of each slot's code (`f32::MAX` where it was known).
    pub selected_probs: Vec<Vec<f32>>,
    pub mask_ratio: f32,
    pub mask_len: Vec<usize>,
    pub temperature: f64,
    pub masking: Vec<Vec<bool>>,
    /// The image slots after the step (`mask_id` where re-masked, else
    /// `image_offset + code`).
    pub grid: Vec<Vec<u32>>,
}

/// `t2i_generate`: `n` image slots sit just before the last token of each
/// row of `cond` (`<|eoi|>`); slots holding `mask_id` are generated, the
/// others kept. Returns the codes `[b][n]`.
pub fn t2i_generate(
    model: &LladaModel,
    cond: &T2iPrompt,
    uncond: Option<&T2iPrompt>,
    n: usize,
    g: &ImageGeneration,
    noise: &mut dyn NoiseSource,
    on_step: &mut dyn FnMut(usize, &ImageStep),
) -> Result<Vec<Vec<u32>>> {
    if !(g.guidance_scale.is_finite() && g.guidance_scale >= 0.0) {
        return Err(Error::invalid("mmada", format!("the guidance scale must be >= 0, got {}", g.guidance_scale)));
    }
    if g.timesteps == 0 {
        return Err(Error::invalid("mmada", "image generation needs at least one step"));
    }
    let b = cond.input_ids.len();
    let l = cond.input_ids.first().map_or(0, Vec::len);
    if b == 0 || l < n + 1 || cond.input_ids.iter().any(|r| r.len() != l) {
        return Err(Error::invalid("mmada", format!("prompts must be rows of one length holding {n} image slots")));
    }
    if let Some(u) = uncond {
        if u.input_ids.len() != b || u.input_ids.iter().any(|r| r.len() != l) || g.uncond_prefix > l {
            return Err(Error::invalid("mmada", "the unconditional prompts must match the conditional ones"));
        }
    }
    let offset = g.image_offset;
    let slots = l - n - 1..l - 1;
    let mut ids = cond.input_ids.clone();
    // Per slot: Some(code) when known, None while masked.
    let mut state: Vec<Vec<Option<u32>>> =
        ids.iter().map(|r| r[slots.clone()].iter().map(|&t| (t != g.mask_id).then(|| t.wrapping_sub(offset))).collect()).collect();
    let vocab = offset as usize..offset as usize + g.codebook_size;
    let mut temperature = g.temperature;
    let mut sampled: Vec<Vec<u32>> = Vec::new();
    for step in 0..g.timesteps {
        let guided = uncond.filter(|_| g.guidance_scale > 0.0);
        let mut inputs = ids.clone();
        let mut masks = cond.attention_mask.clone();
        if let Some(u) = guided {
            for (urow, crow) in u.input_ids.iter().zip(&ids) {
                inputs.push([&urow[..g.uncond_prefix], &crow[g.uncond_prefix..]].concat());
            }
            masks.extend(u.attention_mask.iter().cloned());
        }
        let hidden = model.hidden(&inputs.concat(), inputs.len(), AttentionBias::Pairwise(&masks))?.narrow(1, slots.start, n)?;
        let logits = model.logits_over(&hidden, vocab.clone())?;
        let logits: Tensor = match guided {
            Some(_) => {
                let s = g.guidance_scale;
                logits.narrow(0, 0, b)?.mul_scalar(1.0 + s)?.sub(&logits.narrow(0, b, b)?.mul_scalar(s)?)?
            }
            None => logits,
        };
        let logits = logits.to_dtype(DType::F32)?.to_vec::<f32>()?;
        let c = g.codebook_size;
        let gumbel = noise.sample_gumbel(step, b * n, c);
        let ratio = (step + 1) as f64 / g.timesteps as f64;
        let mask_ratio = cosine_mask_ratio(ratio);
        temperature *= 1.0 - ratio;
        let conf_noise = noise.confidence_gumbel(step, b, n);
        let mut record = ImageStep {
            model_inputs: inputs,
            logits: logits.clone(),
            sampled_raw: Vec::new(),
            selected_probs: Vec::new(),
            mask_ratio,
            mask_len: Vec::new(),
            temperature,
            masking: Vec::new(),
            grid: Vec::new(),
        };
        sampled = Vec::with_capacity(b);
        for r in 0..b {
            let (mut raw, mut codes, mut probs) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
            for j in 0..n {
                let p = softmax_f32(&logits[(r * n + j) * c..][..c]);
                let gj = &gumbel[(r * n + j) * c..][..c];
                let scores: Vec<f32> = p.iter().zip(gj).map(|(&p, &g)| p.ln() + g).collect();
                let draw = argmax(&scores) as u32;
                raw.push(draw);
                match state[r][j] {
                    Some(known) => {
                        codes.push(known);
                        probs.push(f32::MAX);
                    }
                    None => {
                        codes.push(draw);
                        probs.push(p[draw as usize]);
                    }
                }
            }
            let unknown = state[r].iter().filter(|s| s.is_none()).count();
            let len = mask_len(n, mask_ratio, unknown);
            let masking = mask_by_random_topk(len, &probs, temperature, &conf_noise[r * n..][..n]);
            for j in 0..n {
                ids[r][slots.start + j] = if masking[j] { g.mask_id } else { codes[j] + offset };
                state[r][j] = (!masking[j]).then_some(codes[j]);
            }
            record.grid.push(ids[r][slots.clone()].to_vec());
            record.sampled_raw.push(raw);
            record.selected_probs.push(probs);
            record.mask_len.push(len);
            record.masking.push(masking);
            sampled.push(codes);
        }
        on_step(step, &record);
    }
    Ok(sampled)
}

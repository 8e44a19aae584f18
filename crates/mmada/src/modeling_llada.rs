//! LLaDA's masked-diffusion backbone as MMaDA runs it (`LLaDAModelLM` with
//! `LLaDALlamaBlock`s, models/modeling_llada.py): a Llama-layout
//! transformer that attends both ways, so one forward pass predicts every
//! masked position of the sequence.
//!
//! ```text
//! model.transformer.wte                          [vocab, d_model]
//! model.transformer.blocks.N.attn_norm           RMSNorm
//! model.transformer.blocks.N.{q,k,v}_proj        attention, rope over the whole head
//! model.transformer.blocks.N.attn_out
//! model.transformer.blocks.N.ff_norm             RMSNorm
//! model.transformer.blocks.N.{ff_proj, up_proj}  act(ff_proj x) * up_proj x
//! model.transformer.blocks.N.ff_out
//! model.transformer.ln_f                         RMSNorm
//! model.transformer.ff_out                       the untied head (unless weight_tying)
//! ```
//!
//! - RMSNorm as `RMSLayerNorm`: statistics in f32, the normalised value cast
//!   back, then the weight.
//! - Rope in f32 (`rope_full_precision`) with the rotate-half layout, at
//!   positions `0..L-1` of the whole sequence, pads included.
//! - The attention bias is one of three behaviours of `LLaDAModel.forward`
//!   ([`AttentionBias`]).

use crate::config::MmadaConfig;
use std::ops::Range;
use tessera_hf::{Error, Result};
use tessera_nn::{Linear, LlamaCache, LlamaModel, LlamaNames, VarBuilder};
use tessera_tensor::{Device, Tensor};

/// Where LLaDA keeps the Llama layout's weights (under `model`).
pub const LLADA_NAMES: LlamaNames = LlamaNames {
    embed_tokens: "transformer.wte",
    layers: "transformer.blocks",
    norm: "transformer.ln_f",
    input_layernorm: "attn_norm",
    self_attn: "",
    q_proj: "q_proj",
    k_proj: "k_proj",
    v_proj: "v_proj",
    o_proj: "attn_out",
    post_attention_layernorm: "ff_norm",
    mlp: "",
    gate_proj: "ff_proj",
    up_proj: "up_proj",
    down_proj: "ff_out",
};

/// The attention bias of one forward pass, as `LLaDAModel.forward` builds
/// it from its `attention_bias` and `attention_mask` arguments.
#[derive(Clone, Copy, Debug)]
pub enum AttentionBias<'a> {
    /// No bias: every position attends to every position (no mask, or a
    /// 2-D mask of all ones).
    Full,
    /// A boolean `attention_bias` `m_i & m_j` from per-row masks (what
    /// `t2i_generate` passes): allowed scores get `+1.0`, the others
    /// `f32::MIN`, so a masked query row attends uniformly to every key.
    Pairwise(&'a [Vec<bool>]),
    /// A 2-D `attention_mask` (`true` = real token): with any `false` the
    /// reference adds a key-padding bias to its *causal* bias (sums of two
    /// minima clamped back to `f32::MIN`); all `true` is [`Full`](Self::Full).
    KeyMask(&'a [Vec<bool>]),
}

impl AttentionBias<'_> {
    /// The additive bias `[b, 1, l, l]` (`None`: no bias), checked against
    /// `b` rows of `l` positions.
    pub fn to_tensor(&self, b: usize, l: usize, device: &Device) -> Result<Option<Tensor>> {
        let rows = match self {
            AttentionBias::Full => return Ok(None),
            AttentionBias::Pairwise(r) | AttentionBias::KeyMask(r) => *r,
        };
        if rows.len() != b || rows.iter().any(|r| r.len() != l) {
            let lens: Vec<usize> = rows.iter().map(Vec::len).collect();
            return Err(Error::invalid("llada", format!("masks of lengths {lens:?} do not cover {b} rows of {l} positions")));
        }
        let mut bias = Vec::with_capacity(b * l * l);
        match self {
            AttentionBias::Pairwise(_) => {
                for m in rows {
                    for &qi in m {
                        bias.extend(m.iter().map(|&kj| if qi && kj { 1.0 } else { f32::MIN }));
                    }
                }
            }
            _ => {
                if rows.iter().all(|m| m.iter().all(|&x| x)) {
                    return Ok(None);
                }
                for m in rows {
                    for i in 0..l {
                        // causal (0 or MIN) + key mask (0 or MIN), -inf back to MIN.
                        bias.extend(m.iter().enumerate().map(|(j, &kj)| if j > i || !kj { f32::MIN } else { 0.0 }));
                    }
                }
            }
        }
        Ok(Some(Tensor::from_slice(&bias, vec![b, 1, l, l], device)?))
    }
}

/// One forward pass's outputs.
#[derive(Clone, Debug)]
pub struct LladaOutput {
    /// `[b, l, vocab]`.
    pub logits: Tensor,
    /// `output_hidden_states`: the embeddings, the input of every later
    /// block, and the output of `ln_f` (`n_layers + 1` tensors `[b, l, d]`).
    pub hidden_states: Vec<Tensor>,
    /// Each block's output (the last one before `ln_f`).
    pub block_outputs: Vec<Tensor>,
}

/// `LLaDAModelLM`: the backbone and its head.
#[derive(Clone, Debug)]
pub struct LladaModel {
    backbone: LlamaModel,
    head: Linear,
    config: MmadaConfig,
}

impl LladaModel {
    /// Loads `model.transformer.*` under `vb` (the checkpoint's root),
    /// calling `loaded()` after each block.
    pub fn load(vb: &VarBuilder, c: &MmadaConfig, loaded: &mut dyn FnMut()) -> Result<Self> {
        let backbone = LlamaModel::load_named(&vb.pp("model"), &c.backbone, &LLADA_NAMES, loaded)?;
        let (d, vocab) = (c.backbone.hidden_size, c.vocab_size());
        let head = if c.weight_tying {
            Linear::from_rows(backbone.embed_tokens().rows().clone(), None)?
        } else {
            Linear::load(&vb.pp("model.transformer.ff_out"), d, vocab, c.backbone.mlp_bias)?
        };
        Ok(LladaModel { backbone, head, config: c.clone() })
    }

    pub fn config(&self) -> &MmadaConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        self.backbone.device()
    }

    /// The logits and hidden states of `ids` (`rows` rows of equal length)
    /// under `bias`.
    pub fn forward(&self, ids: &[u32], rows: usize, bias: AttentionBias) -> Result<LladaOutput> {
        let (states, last) = self.states(ids, rows, bias)?;
        let logits = self.logits_over(&last, 0..self.config.vocab_size())?;
        let block_outputs = states[1..].to_vec();
        let mut hidden_states = states;
        hidden_states.pop();
        hidden_states.push(last);
        Ok(LladaOutput { logits, hidden_states, block_outputs })
    }

    /// The last hidden state (after `ln_f`) `[b, l, d]`, for the logits of
    /// a few positions or vocabulary rows only ([`logits_over`](Self::logits_over)).
    pub fn hidden(&self, ids: &[u32], rows: usize, bias: AttentionBias) -> Result<Tensor> {
        Ok(self.states(ids, rows, bias)?.1)
    }

    /// The logits `[b, p, vocab.len()]` of hidden states `[b, p, d]` over the
    /// vocabulary rows `vocab` (image codes only, say): the same values as
    /// those columns of the full logits.
    pub fn logits_over(&self, hidden: &Tensor, vocab: Range<usize>) -> Result<Tensor> {
        let n = self.config.vocab_size();
        if vocab.start >= vocab.end || vocab.end > n {
            return Err(Error::invalid("llada", format!("vocabulary rows {vocab:?} of {n}")));
        }
        let mut logits = if vocab == (0..n) {
            self.head.forward(hidden)?
        } else {
            let rows = self.head.rows().narrow_rows(vocab.start, vocab.len())?;
            let bias = self.head.bias().map(|b| b.narrow(0, vocab.start, vocab.len())).transpose()?;
            Linear::from_rows(rows, bias)?.forward(hidden)?
        };
        if self.config.scale_logits {
            logits = logits.mul_scalar(1.0 / (self.config.backbone.hidden_size as f64).sqrt())?;
        }
        Ok(logits)
    }

    /// An empty key/value cache for [`hidden_after`](Self::hidden_after).
    pub fn new_cache(&self) -> LlamaCache {
        self.backbone.new_cache()
    }

    /// The last hidden state `[b, t, d]` of `ids` (`rows` rows of `t`) placed
    /// after the positions `cache` holds, attending to them and to each other
    /// with no bias; their keys and values are appended to `cache`.
    pub fn hidden_after(&self, ids: &[u32], rows: usize, cache: &mut LlamaCache) -> Result<Tensor> {
        let x = self.embeddings(ids, rows)?;
        Ok(self.backbone.forward_embeds(&x, None, cache)?)
    }

    fn embeddings(&self, ids: &[u32], rows: usize) -> Result<Tensor> {
        let x = self.backbone.embed(ids, rows)?;
        if self.config.input_emb_norm {
            return Ok(x.mul_scalar((self.config.backbone.hidden_size as f64).sqrt())?);
        }
        Ok(x)
    }

    /// Every block's input and output, and the output of `ln_f`.
    fn states(&self, ids: &[u32], rows: usize, bias: AttentionBias) -> Result<(Vec<Tensor>, Tensor)> {
        let x = self.embeddings(ids, rows)?;
        let (b, l) = (x.dims()[0], x.dims()[1]);
        let bias = bias.to_tensor(b, l, self.device())?;
        Ok(self.backbone.forward_states(&x, bias.as_ref())?)
    }
}

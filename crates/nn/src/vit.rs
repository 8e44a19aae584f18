//! The pre-LN transformer encoder of ViT-style towers (CLIP's and SigLIP's
//! encoders, BLIP-2's and EVA's vision encoders, CLIP's text encoder with a
//! causal mask):
//!
//! ```text
//! h   = x + attn(norm1(x))
//! out = h + mlp(norm2(h))
//! ```
//!
//! `norm2(x + attn)` and the sum come from one fused residual add + layer
//! norm ([`LayerNorm::forward_residual`]). Weight names are configurable
//! ([`VitLayerConfig`]): `layer_norm1`/`layer_norm2`, `self_attn` (with any
//! [`AttentionConfig`] layout and output-projection name) and `mlp` by
//! default, as in transformers' CLIP. [`VitEncoder::forward_hidden_states`]
//! returns every hidden state as transformers' `output_hidden_states` does.

use crate::{AttentionConfig, LayerNorm, Mlp, MlpConfig, MultiHeadAttention, Result, VarBuilder};
use tessera_tensor::Tensor;

/// Sizes and weight names of one encoder layer.
#[derive(Clone, Debug, PartialEq)]
pub struct VitLayerConfig {
    /// Model width.
    pub hidden: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f64,
    /// The attention block (sizes, layout, names, causality).
    pub attention: AttentionConfig,
    /// The MLP block.
    pub mlp: MlpConfig,
    /// Name of the norm before attention (`"layer_norm1"`).
    pub norm1_name: String,
    /// Name of the norm before the MLP (`"layer_norm2"`).
    pub norm2_name: String,
    /// Name of the attention block (`"self_attn"`).
    pub attn_name: String,
    /// Name of the MLP block (`"mlp"`).
    pub mlp_name: String,
}

impl VitLayerConfig {
    /// transformers' CLIP layer: `num_heads` heads over `hidden`, biased
    /// `q_proj`/`k_proj`/`v_proj`/`out_proj`, an MLP `fc1`/`fc2` of
    /// `intermediate` features with `act`, not causal.
    pub fn new(hidden: usize, intermediate: usize, num_heads: usize, layer_norm_eps: f64, act: crate::Activation) -> Self {
        VitLayerConfig {
            hidden,
            layer_norm_eps,
            attention: AttentionConfig::new(hidden, num_heads).with_bias(true, true).with_out_name("out_proj"),
            mlp: MlpConfig::new(hidden, intermediate, act),
            norm1_name: "layer_norm1".into(),
            norm2_name: "layer_norm2".into(),
            attn_name: "self_attn".into(),
            mlp_name: "mlp".into(),
        }
    }

    /// The same with another attention block (layout, names, heads).
    pub fn with_attention(mut self, attention: AttentionConfig) -> Self {
        self.attention = attention;
        self
    }

    /// The same with another MLP block.
    pub fn with_mlp(mut self, mlp: MlpConfig) -> Self {
        self.mlp = mlp;
        self
    }

    /// The same with the attention's output projection called `name`
    /// (`"out_proj"`, `"proj"`, `"projection"`, `"o_proj"`).
    pub fn with_out_name(mut self, name: &str) -> Self {
        self.attention = self.attention.with_out_name(name);
        self
    }

    /// The same, causal or not.
    pub fn with_causal(mut self, causal: bool) -> Self {
        self.attention = self.attention.with_causal(causal);
        self
    }

    /// The same with other names for the two norms (`"norm1"`, `"norm2"`).
    pub fn with_norm_names(mut self, norm1: &str, norm2: &str) -> Self {
        self.norm1_name = norm1.into();
        self.norm2_name = norm2.into();
        self
    }

    /// The same with other names for the attention and MLP blocks
    /// (`"attn"`, `"mlp"`).
    pub fn with_block_names(mut self, attn: &str, mlp: &str) -> Self {
        self.attn_name = attn.into();
        self.mlp_name = mlp.into();
        self
    }
}

/// One pre-LN encoder layer.
#[derive(Clone, Debug)]
pub struct VitEncoderLayer {
    norm1: LayerNorm,
    attn: MultiHeadAttention,
    norm2: LayerNorm,
    mlp: Mlp,
}

impl VitEncoderLayer {
    /// Loads the layer's weights under `vb` by the names of `cfg`.
    pub fn load(vb: &VarBuilder, cfg: &VitLayerConfig) -> Result<Self> {
        Ok(VitEncoderLayer {
            norm1: LayerNorm::load(&vb.pp(&cfg.norm1_name), cfg.hidden, cfg.layer_norm_eps)?,
            attn: MultiHeadAttention::load(&vb.pp(&cfg.attn_name), &cfg.attention)?,
            norm2: LayerNorm::load(&vb.pp(&cfg.norm2_name), cfg.hidden, cfg.layer_norm_eps)?,
            mlp: Mlp::load(&vb.pp(&cfg.mlp_name), &cfg.mlp)?,
        })
    }

    /// `x [b, t, hidden] -> [b, t, hidden]`; `mask` is an additive
    /// attention mask broadcasting to `[b, heads, t, t]`.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let attn = self.attn.forward(&self.norm1.forward(x)?, mask, None)?;
        let (normed, h) = self.norm2.forward_residual(&attn, x)?;
        Ok(h.add(&self.mlp.forward(&normed)?)?)
    }

    /// The attention block.
    pub fn attention(&self) -> &MultiHeadAttention {
        &self.attn
    }

    /// The MLP block.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }
}

/// A stack of [`VitEncoderLayer`]s, loaded from `{layers}.0`, `{layers}.1`...
#[derive(Clone, Debug)]
pub struct VitEncoder {
    layers: Vec<VitEncoderLayer>,
}

impl VitEncoder {
    /// Loads `num_layers` layers named `layers.N` under `vb`.
    pub fn load(vb: &VarBuilder, cfg: &VitLayerConfig, num_layers: usize) -> Result<Self> {
        VitEncoder::load_with_progress(vb, cfg, num_layers, "layers", &mut || {})
    }

    /// [`load`](Self::load) with another name for the layer list
    /// (`"layer"`, `"blocks"`), calling `loaded()` after each layer.
    pub fn load_with_progress(
        vb: &VarBuilder,
        cfg: &VitLayerConfig,
        num_layers: usize,
        layers_name: &str,
        loaded: &mut dyn FnMut(),
    ) -> Result<Self> {
        let list = vb.pp(layers_name);
        let layers = (0..num_layers)
            .map(|i| {
                let layer = VitEncoderLayer::load(&list.pp(i), cfg);
                loaded();
                layer
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(VitEncoder { layers })
    }

    /// A stack of built layers.
    pub fn new(layers: Vec<VitEncoderLayer>) -> Self {
        VitEncoder { layers }
    }

    /// The layers.
    pub fn layers(&self) -> &[VitEncoderLayer] {
        &self.layers
    }

    /// The last hidden state: every layer applied to `x`.
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        self.layers.iter().try_fold(x.clone(), |h, layer| layer.forward(&h, mask))
    }

    /// Every hidden state, as transformers' `output_hidden_states`: `x`
    /// itself, then each layer's output (`num_layers + 1` tensors; the last
    /// is [`forward`](Self::forward)'s result).
    pub fn forward_hidden_states(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Vec<Tensor>> {
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        states.push(x.clone());
        for layer in &self.layers {
            let next = layer.forward(states.last().expect("holds the input"), mask)?;
            states.push(next);
        }
        Ok(states)
    }
}

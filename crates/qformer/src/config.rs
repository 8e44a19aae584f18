//! BLIP-2's configuration, read from a checkpoint's config.json as
//! transformers' `Blip2Config` reads it: a missing field takes transformers'
//! default (the Salesforce/blip2-opt-2.7b values for the vision tower and
//! the Q-Former, `OPTConfig`'s for the language model), an unknown field is
//! ignored, a field of the wrong type or an impossible size is an error
//! naming it.
//!
//! Only decoder-only OPT language models are supported (the blip2-opt-*
//! checkpoints); a Flan-T5 `text_config` is refused with a clear error.

use crate::Result;
use std::path::Path;
use tessera_hf::config::{parse_object, read_object, sub_config};
use tessera_hf::{ConfigCheck, Fields};
use tessera_nn::{Activation, TensorSource};

/// The EVA vision tower (`vision_config`).
#[derive(Clone, Debug, PartialEq)]
pub struct Blip2VisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    /// Whether the fused `qkv` projection has a (query | 0 | value) bias.
    pub qkv_bias: bool,
}

/// The Q-Former (`qformer_config`).
#[derive(Clone, Debug, PartialEq)]
pub struct Blip2QFormerConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    /// Layer `i` cross-attends to the image when `i % frequency == 0`.
    pub cross_attention_frequency: usize,
    /// Width of the image features it cross-attends to (transformers sets it
    /// to the vision tower's width, whatever the file says).
    pub encoder_hidden_size: usize,
    /// Whether the layers carry the text FFN (`intermediate`/`output`),
    /// used by the retrieval heads only.
    pub use_qformer_text_input: bool,
    /// The text embeddings' vocabulary (retrieval: BERT's by default).
    pub vocab_size: usize,
    /// The text embeddings' positions.
    pub max_position_embeddings: usize,
    /// The id that pads texts.
    pub pad_token_id: Option<u32>,
}

/// The OPT language model (`text_config`).
#[derive(Clone, Debug, PartialEq)]
pub struct OptConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub ffn_dim: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    /// Pre-LN layers (every OPT but 350m).
    pub do_layer_norm_before: bool,
    /// Old checkpoints without the decoder's final norm.
    pub remove_final_layer_norm: bool,
    /// Width of the token embeddings; `project_in`/`project_out` map it to
    /// and from `hidden_size` when they differ.
    pub word_embed_proj_dim: usize,
    pub activation_function: Activation,
    pub enable_bias: bool,
    pub layer_norm_elementwise_affine: bool,
    pub tie_word_embeddings: bool,
    pub bos_token_id: u32,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
}

/// A BLIP-2 checkpoint's config.json.
#[derive(Clone, Debug, PartialEq)]
pub struct Blip2Config {
    pub vision_config: Blip2VisionConfig,
    pub qformer_config: Blip2QFormerConfig,
    pub text_config: OptConfig,
    /// Learned queries, and image tokens in front of the prompt.
    pub num_query_tokens: usize,
    /// The id of the `<image>` placeholder token (configs from transformers
    /// 4.45 on; older ones place the queries without ids).
    pub image_token_index: Option<u32>,
    /// Width of the retrieval heads' shared space.
    pub image_text_hidden_size: usize,
}

/// OPT's layer norms use torch's default epsilon.
pub const OPT_LAYER_NORM_EPS: f64 = 1e-5;

impl Blip2VisionConfig {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Positions: one per patch plus the class token.
    pub fn num_positions(&self) -> usize {
        self.grid() * self.grid() + 1
    }
}

impl Blip2QFormerConfig {
    /// Whether layer `index` has cross-attention to the image.
    pub fn has_cross_attention(&self, index: usize) -> bool {
        index.is_multiple_of(self.cross_attention_frequency)
    }
}

impl OptConfig {
    /// Features per attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Whether the decoder ends with `final_layer_norm`.
    pub fn has_final_layer_norm(&self) -> bool {
        self.do_layer_norm_before && !self.remove_final_layer_norm
    }
}

impl Default for Blip2VisionConfig {
    fn default() -> Self {
        Blip2VisionConfig {
            hidden_size: 1408,
            intermediate_size: 6144,
            num_hidden_layers: 39,
            num_attention_heads: 16,
            image_size: 224,
            patch_size: 14,
            hidden_act: Activation::Gelu,
            layer_norm_eps: 1e-6,
            qkv_bias: true,
        }
    }
}

impl Default for Blip2QFormerConfig {
    fn default() -> Self {
        Blip2QFormerConfig {
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: Activation::Gelu,
            layer_norm_eps: 1e-12,
            cross_attention_frequency: 2,
            encoder_hidden_size: 1408,
            use_qformer_text_input: false,
            vocab_size: 30522,
            max_position_embeddings: 512,
            pad_token_id: Some(0),
        }
    }
}

impl Default for OptConfig {
    /// `OPTConfig()`: facebook/opt-125m's sizes.
    fn default() -> Self {
        OptConfig {
            vocab_size: 50272,
            hidden_size: 768,
            num_hidden_layers: 12,
            ffn_dim: 3072,
            num_attention_heads: 12,
            max_position_embeddings: 2048,
            do_layer_norm_before: true,
            remove_final_layer_norm: false,
            word_embed_proj_dim: 768,
            activation_function: Activation::Relu,
            enable_bias: true,
            layer_norm_elementwise_affine: true,
            tie_word_embeddings: true,
            bos_token_id: 2,
            eos_token_id: Some(2),
            pad_token_id: Some(1),
        }
    }
}

impl Default for Blip2Config {
    fn default() -> Self {
        Blip2Config {
            vision_config: Blip2VisionConfig::default(),
            qformer_config: Blip2QFormerConfig::default(),
            text_config: OptConfig::default(),
            num_query_tokens: 32,
            image_token_index: None,
            image_text_hidden_size: 256,
        }
    }
}

impl Blip2Config {
    /// Reads config.json.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Blip2Config> {
        let (root, file) = read_object(path.as_ref())?;
        Blip2Config::from_object(&root, &file)
    }

    /// Parses the text of a config.json; `file` names it in errors.
    pub fn from_json(text: &str, file: &str) -> Result<Blip2Config> {
        Blip2Config::from_object(&parse_object(text, file)?, file)
    }

    fn from_object(root: &serde_json::Map<String, serde_json::Value>, file: &str) -> Result<Blip2Config> {
        let top = Fields::new(root, "", file);
        let model_type: Option<String> = top.get("model_type", None)?;
        if let Some(t) = model_type.as_deref().filter(|t| *t != "blip-2") {
            return Err(top.error("model_type", format!("'{t}' is not a BLIP-2 model (expected 'blip-2')")));
        }
        let vision_obj = sub_config(root, "vision_config", file)?;
        let qformer_obj = sub_config(root, "qformer_config", file)?;
        let text_obj = sub_config(root, "text_config", file)?;
        let vision_config = vision_config(&Fields::new(&vision_obj, "vision_config", file))?;
        let mut qformer_config = qformer_config(&Fields::new(&qformer_obj, "qformer_config", file))?;
        // transformers' Blip2Config overrides the Q-Former's key/value width
        // with the vision tower's.
        qformer_config.encoder_hidden_size = vision_config.hidden_size;
        let text_fields = Fields::new(&text_obj, "text_config", file);
        let text_config = text_config(&text_fields)?;
        if text_config.word_embed_proj_dim != text_config.hidden_size {
            // The projected queries take the place of token embeddings, which
            // are word_embed_proj_dim wide, while language_projection gives
            // hidden_size features: transformers would scatter them into the
            // wrong shape.
            return Err(text_fields.error(
                "word_embed_proj_dim",
                format!(
                    "{} differs from hidden_size {}: BLIP-2 places its {}-wide projected queries among the token embeddings",
                    text_config.word_embed_proj_dim, text_config.hidden_size, text_config.hidden_size
                ),
            ));
        }
        let image_token_index = match top.raw("image_token_index").or_else(|| top.raw("image_token_id")) {
            None => None,
            Some(_) => {
                let key = if top.is_set("image_token_index") { "image_token_index" } else { "image_token_id" };
                let id = top.token_id(key, 0)?;
                top.check_token_id(key, id, text_config.vocab_size)?;
                Some(id)
            }
        };
        Ok(Blip2Config {
            vision_config,
            qformer_config,
            text_config,
            num_query_tokens: top.positive("num_query_tokens", 32)?,
            image_token_index,
            image_text_hidden_size: top.positive("image_text_hidden_size", 256)?,
        })
    }

    /// Checks the sizes of this config (read from `config_file`) against the
    /// tensor names and shapes of `source` before anything is loaded: layer
    /// counts, widths, vocabulary, positions, patch size and query count.
    /// Every disagreement is reported in one error naming the fields and the
    /// checkpoint.
    pub fn check_against(&self, source: &dyn TensorSource, config_file: &str) -> Result<()> {
        let t = &self.text_config;
        let mut c = ConfigCheck::new(source, config_file);
        self.check_image_path(&mut c);
        c.layers("text_config.num_hidden_layers", t.num_hidden_layers, "language_model.model.decoder.layers");
        let embed = "language_model.model.decoder.embed_tokens.weight";
        c.dim("text_config.vocab_size", t.vocab_size, embed, 0);
        c.dim("text_config.word_embed_proj_dim", t.word_embed_proj_dim, embed, 1);
        c.dim("text_config.hidden_size", t.hidden_size, "language_projection.weight", 0);
        c.dim_implied(
            "text_config.max_position_embeddings",
            t.max_position_embeddings,
            t.max_position_embeddings + crate::opt::POSITION_OFFSET,
            "language_model.model.decoder.embed_positions.weight",
            0,
        );
        c.dim("text_config.ffn_dim", t.ffn_dim, "language_model.model.decoder.layers.0.fc1.weight", 0);
        c.finish()
    }

    /// [`check_against`](Self::check_against) for a
    /// `Blip2ForImageTextRetrieval` checkpoint: the image path, the
    /// Q-Former's text embeddings and the heads' width (no language model).
    pub fn check_retrieval_against(&self, source: &dyn TensorSource, config_file: &str) -> Result<()> {
        let q = &self.qformer_config;
        let mut c = ConfigCheck::new(source, config_file);
        self.check_image_path(&mut c);
        c.dim("qformer_config.vocab_size", q.vocab_size, "embeddings.word_embeddings.weight", 0);
        c.dim("qformer_config.max_position_embeddings", q.max_position_embeddings, "embeddings.position_embeddings.weight", 0);
        c.dim("image_text_hidden_size", self.image_text_hidden_size, "vision_projection.weight", 0);
        c.finish()
    }

    /// The vision tower's, the queries' and the Q-Former's sizes.
    fn check_image_path(&self, c: &mut ConfigCheck<'_>) {
        let (v, q) = (&self.vision_config, &self.qformer_config);
        c.layers("vision_config.num_hidden_layers", v.num_hidden_layers, "vision_model.encoder.layers");
        c.layers("qformer_config.num_hidden_layers", q.num_hidden_layers, "qformer.encoder.layer");
        c.dim("vision_config.hidden_size", v.hidden_size, "vision_model.embeddings.class_embedding", 2);
        c.dim("vision_config.patch_size", v.patch_size, "vision_model.embeddings.patch_embedding.weight", 2);
        c.dim_implied("vision_config.image_size", v.image_size, v.num_positions(), "vision_model.embeddings.position_embedding", 1);
        c.dim("vision_config.intermediate_size", v.intermediate_size, "vision_model.encoder.layers.0.mlp.fc1.weight", 0);
        c.dim("num_query_tokens", self.num_query_tokens, "query_tokens", 1);
        c.dim("qformer_config.hidden_size", q.hidden_size, "query_tokens", 2);
        c.dim("qformer_config.intermediate_size", q.intermediate_size, "qformer.encoder.layer.0.intermediate_query.dense.weight", 0);
    }
}

fn vision_config(f: &Fields<'_>) -> Result<Blip2VisionConfig> {
    let d = Blip2VisionConfig::default();
    let c = Blip2VisionConfig {
        hidden_size: f.positive("hidden_size", d.hidden_size)?,
        intermediate_size: f.positive("intermediate_size", d.intermediate_size)?,
        num_hidden_layers: f.layers("num_hidden_layers", d.num_hidden_layers)?,
        num_attention_heads: f.positive("num_attention_heads", d.num_attention_heads)?,
        image_size: f.image_side("image_size", d.image_size)?,
        patch_size: f.image_side("patch_size", d.patch_size)?,
        hidden_act: f.activation("hidden_act", d.hidden_act)?,
        layer_norm_eps: f.epsilon("layer_norm_eps", d.layer_norm_eps)?,
        qkv_bias: f.get("qkv_bias", d.qkv_bias)?,
    };
    f.check_heads(c.hidden_size, c.num_attention_heads)?;
    if c.patch_size > c.image_size {
        return Err(f.error("patch_size", format!("patch {} is larger than the image ({})", c.patch_size, c.image_size)));
    }
    Ok(c)
}

fn qformer_config(f: &Fields<'_>) -> Result<Blip2QFormerConfig> {
    let d = Blip2QFormerConfig::default();
    let c = Blip2QFormerConfig {
        hidden_size: f.positive("hidden_size", d.hidden_size)?,
        num_hidden_layers: f.layers("num_hidden_layers", d.num_hidden_layers)?,
        num_attention_heads: f.positive("num_attention_heads", d.num_attention_heads)?,
        intermediate_size: f.positive("intermediate_size", d.intermediate_size)?,
        hidden_act: f.activation("hidden_act", d.hidden_act)?,
        layer_norm_eps: f.epsilon("layer_norm_eps", d.layer_norm_eps)?,
        cross_attention_frequency: f.positive("cross_attention_frequency", d.cross_attention_frequency)?,
        encoder_hidden_size: f.positive("encoder_hidden_size", d.encoder_hidden_size)?,
        use_qformer_text_input: f.get("use_qformer_text_input", d.use_qformer_text_input)?,
        vocab_size: f.positive("vocab_size", d.vocab_size)?,
        max_position_embeddings: f.positive("max_position_embeddings", d.max_position_embeddings)?,
        pad_token_id: optional_id(f, "pad_token_id", d.pad_token_id)?,
    };
    f.check_heads(c.hidden_size, c.num_attention_heads)?;
    if let Some(pad) = c.pad_token_id {
        f.check_token_id("pad_token_id", pad, c.vocab_size)?;
    }
    Ok(c)
}

fn text_config(f: &Fields<'_>) -> Result<OptConfig> {
    let model_type: Option<String> = f.get("model_type", None)?;
    if let Some(t) = model_type.as_deref().filter(|t| *t != "opt") {
        return Err(f.error(
            "model_type",
            format!("language model '{t}' is not supported: BLIP-2 runs with OPT decoders (the blip2-opt-* checkpoints)"),
        ));
    }
    let d = OptConfig::default();
    let hidden_size = f.positive("hidden_size", d.hidden_size)?;
    let word_embed_proj_dim = f.positive("word_embed_proj_dim", hidden_size)?;
    let c = OptConfig {
        vocab_size: f.positive("vocab_size", d.vocab_size)?,
        hidden_size,
        num_hidden_layers: f.layers("num_hidden_layers", d.num_hidden_layers)?,
        ffn_dim: f.positive("ffn_dim", d.ffn_dim)?,
        num_attention_heads: f.positive("num_attention_heads", d.num_attention_heads)?,
        max_position_embeddings: f.positive("max_position_embeddings", d.max_position_embeddings)?,
        do_layer_norm_before: f.get("do_layer_norm_before", d.do_layer_norm_before)?,
        remove_final_layer_norm: f.get("_remove_final_layer_norm", d.remove_final_layer_norm)?,
        word_embed_proj_dim,
        activation_function: f.activation("activation_function", d.activation_function)?,
        enable_bias: f.get("enable_bias", d.enable_bias)?,
        layer_norm_elementwise_affine: f.get("layer_norm_elementwise_affine", d.layer_norm_elementwise_affine)?,
        tie_word_embeddings: f.get("tie_word_embeddings", d.tie_word_embeddings)?,
        bos_token_id: f.token_id("bos_token_id", d.bos_token_id)?,
        eos_token_id: optional_id(f, "eos_token_id", d.eos_token_id)?,
        pad_token_id: optional_id(f, "pad_token_id", d.pad_token_id)?,
    };
    f.check_heads(c.hidden_size, c.num_attention_heads)?;
    // The start token begins every prompt: it must have an embedding.
    f.check_token_id("bos_token_id", c.bos_token_id, c.vocab_size)?;
    Ok(c)
}

/// An optional id (absent or `null`: the default; for `eos_token_id` also a
/// list, of which the first is kept: generation reads its stop ids from
/// generation_config.json).
fn optional_id(f: &Fields<'_>, key: &str, default: Option<u32>) -> Result<Option<u32>> {
    match f.raw(key) {
        None => Ok(default),
        Some(serde_json::Value::Array(items)) => match items.first() {
            None => Ok(None),
            Some(v) => v.as_u64().and_then(|v| u32::try_from(v).ok()).map(Some).ok_or_else(|| f.error(key, "must hold token ids")),
        },
        Some(_) => Ok(Some(f.token_id(key, 0)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_takes_transformers_defaults() {
        let c = Blip2Config::from_json("{}", "t").unwrap();
        assert_eq!(c, Blip2Config::default());
        assert!(c.qformer_config.has_cross_attention(0) && !c.qformer_config.has_cross_attention(1));
        assert_eq!(c.vision_config.num_positions(), 257);
    }

    #[test]
    fn the_vision_width_sets_the_cross_attention_width() {
        let c = Blip2Config::from_json(
            r#"{"vision_config": {"hidden_size": 64, "num_attention_heads": 4}, "qformer_config": {"encoder_hidden_size": 9}}"#,
            "t",
        )
        .unwrap();
        assert_eq!(c.qformer_config.encoder_hidden_size, 64);
    }

    #[test]
    fn sizes_that_disagree_name_the_field() {
        for (json, field) in [
            (r#"{"qformer_config": {"cross_attention_frequency": 0}}"#, "qformer_config.cross_attention_frequency"),
            (r#"{"vision_config": {"hidden_size": 100, "num_attention_heads": 16}}"#, "vision_config"),
            (r#"{"text_config": {"hidden_size": 100, "num_attention_heads": 16}}"#, "text_config"),
            (r#"{"text_config": {"model_type": "t5"}}"#, "text_config.model_type"),
            (r#"{"text_config": {"num_hidden_layers": 1e12}}"#, "text_config.num_hidden_layers"),
            (r#"{"text_config": {"vocab_size": 10, "bos_token_id": 10}}"#, "text_config.bos_token_id"),
            (r#"{"image_token_index": 50272}"#, "image_token_index"),
            (r#"{"model_type": "clip"}"#, "model_type"),
            (r#"{"num_query_tokens": 0}"#, "num_query_tokens"),
            (r#"{"text_config": {"word_embed_proj_dim": 512}}"#, "text_config.word_embed_proj_dim"),
        ] {
            let e = Blip2Config::from_json(json, "cfg.json").unwrap_err().to_string();
            assert!(e.contains(field) && e.contains("cfg.json"), "{json}: {e}");
        }
    }

    #[test]
    fn opt_options_are_read() {
        let c = Blip2Config::from_json(
            r#"{"text_config": {"word_embed_proj_dim": 1024, "hidden_size": 1024, "num_attention_heads": 16,
                "do_layer_norm_before": false, "eos_token_id": [50118, 2], "pad_token_id": 0}, "image_token_id": 50265}"#,
            "t",
        )
        .unwrap();
        let t = &c.text_config;
        assert_eq!((t.word_embed_proj_dim, t.hidden_size, t.head_dim()), (1024, 1024, 64));
        assert!(!t.has_final_layer_norm());
        assert_eq!((t.eos_token_id, t.pad_token_id), (Some(50118), Some(0)));
        assert_eq!(c.image_token_index, Some(50265));
    }
}

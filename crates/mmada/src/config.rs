//! The two config files of an MMaDA model directory: config.json (the
//! LLaDA backbone's `LLaDAConfig` fields and MMaDA's vocabulary layout) and
//! magvit_config.json (MAGVIT-v2's encoder, decoder and lookup-free
//! quantizer).
//!
//! Fields take `LLaDAConfig`'s defaults when absent. Options the
//! reference's masked-diffusion path does not support (ALiBi, no rope,
//! block groups, q/k norms, other block or norm types, the fused `swiglu`
//! activation) are refused with an error naming the field, rather than
//! loaded into a model that would compute something else.

use std::path::Path;
use tessera_hf::config::{read_object, sub_config, Fields};
use tessera_hf::{Error, Result};
use tessera_nn::vqgan::VqganSpec;
use tessera_nn::{Activation, LlamaConfig};

/// `<|soi|>`, `<|eoi|>`, ... : the ids `training/prompting_utils.py` reserves
/// in LLaDA's vocabulary when `use_reserved_token` is set.
pub const RESERVED_TOKENS: [(&str, u32); 11] = [
    ("<|soi|>", 126084),
    ("<|eoi|>", 126085),
    ("<|sov|>", 126086),
    ("<|eov|>", 126087),
    ("<|t2i|>", 126088),
    ("<|mmu|>", 126089),
    ("<|t2v|>", 126090),
    ("<|v2v|>", 126091),
    ("<|lvg|>", 126092),
    ("[iPAD]", 126093),
    ("<|r2i|>", 126094),
];

/// The reserved id of `name` (one of [`RESERVED_TOKENS`]).
pub fn reserved_token(name: &str) -> Option<u32> {
    RESERVED_TOKENS.iter().find(|(n, _)| *n == name).map(|&(_, id)| id)
}

/// config.json: the backbone and the vocabulary layout.
#[derive(Clone, Debug, PartialEq)]
pub struct MmadaConfig {
    /// The backbone in the Llama layout's terms (bidirectional).
    pub backbone: LlamaConfig,
    /// Logits come from the embedding matrix (`weight_tying`) rather than
    /// the untied `ff_out`.
    pub weight_tying: bool,
    /// Logits scaled by `d_model^-0.5` (`scale_logits`).
    pub scale_logits: bool,
    /// Embeddings scaled by `d_model^0.5` (`input_emb_norm`).
    pub input_emb_norm: bool,
    /// The `[MASK]` id of masked diffusion (`mask_token_id`).
    pub mask_token_id: u32,
    pub eos_token_id: u32,
    pub pad_token_id: u32,
    /// LLaDA's text vocabulary (`llm_vocab_size`).
    pub llm_vocab_size: usize,
    /// Image codes (`codebook_size`).
    pub codebook_size: usize,
    /// Image tokens per image (`num_vq_tokens`).
    pub num_vq_tokens: usize,
}

impl MmadaConfig {
    /// Reads `dir/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let (root, file) = read_object(&dir.join("config.json"))?;
        Self::from_fields(&Fields::new(&root, "", &file))
    }

    /// Reads the fields of a parsed config.json.
    pub fn from_fields(f: &Fields) -> Result<Self> {
        for (key, unsupported) in [("alibi", true), ("rope", false), ("attention_layer_norm", true)] {
            let value: bool = f.get(key, !unsupported)?;
            if value == unsupported {
                return Err(f.error(key, format!("{value} is not supported by the masked-diffusion backbone")));
            }
        }
        for (key, want) in [("block_type", "llama"), ("layer_norm_type", "rms")] {
            let value: String = f.get(key, want.to_string())?;
            if value != want {
                return Err(f.error(key, format!("'{value}' is not supported (only '{want}')")));
            }
        }
        let groups: usize = f.get("block_group_size", 1)?;
        if groups != 1 {
            return Err(f.error("block_group_size", format!("{groups}: only ungrouped blocks (1) are supported")));
        }
        if !f.get("layer_norm_with_affine", true)? {
            return Err(f.error("layer_norm_with_affine", "norms without weights are not supported"));
        }
        let include_bias: bool = f.get("include_bias", false)?;
        let norm_bias: Option<bool> = f.get("bias_for_layer_norm", None)?;
        if norm_bias.unwrap_or(include_bias) {
            return Err(f.error("bias_for_layer_norm", "norms with biases are not supported"));
        }
        let activation: String = f.get("activation_type", "silu".to_string())?;
        let hidden_act = match activation.as_str() {
            "silu" => Activation::Silu,
            "gelu" => Activation::Gelu,
            "relu" => Activation::Relu,
            other => return Err(f.error("activation_type", format!("'{other}' is not supported (silu, gelu or relu)"))),
        };

        let d_model = f.positive("d_model", 768)?;
        let n_heads = f.positive("n_heads", 12)?;
        if !d_model.is_multiple_of(n_heads) {
            return Err(f.error("n_heads", format!("{n_heads} heads do not divide d_model {d_model}")));
        }
        let head_dim = d_model / n_heads;
        if !head_dim.is_multiple_of(2) {
            return Err(f.error("n_heads", format!("the head dim {head_dim} is odd: rotary embeddings rotate pairs")));
        }
        let n_kv_heads = kv_heads(f, n_heads)?;
        let mlp_ratio = f.positive("mlp_ratio", 4)?;
        let mlp_hidden_size = f.positive("mlp_hidden_size", mlp_ratio * d_model)?;
        let vocab_size = f.positive("vocab_size", 50257)?;
        let embedding_size = f.positive("embedding_size", vocab_size)?;
        if embedding_size < vocab_size {
            return Err(f.error("embedding_size", format!("{embedding_size} is smaller than vocab_size {vocab_size}")));
        }
        let backbone = LlamaConfig {
            vocab_size: embedding_size,
            hidden_size: d_model,
            intermediate_size: mlp_hidden_size,
            num_hidden_layers: f.layers("n_layers", 12)?,
            num_attention_heads: n_heads,
            num_key_value_heads: n_kv_heads,
            head_dim,
            max_position_embeddings: f.positive("max_sequence_length", 1024)?,
            rms_norm_eps: f.epsilon("rms_norm_eps", 1e-5)?,
            rope_theta: f.get("rope_theta", 10000.0)?,
            attention_bias: include_bias || f.get("include_qkv_bias", false)?,
            attention_out_bias: include_bias,
            mlp_bias: include_bias,
            hidden_act,
            causal: false,
        };
        if !(backbone.rope_theta.is_finite() && backbone.rope_theta > 0.0) {
            return Err(f.error("rope_theta", format!("must be a positive number, got {}", backbone.rope_theta)));
        }
        let c = MmadaConfig {
            backbone,
            weight_tying: f.get("weight_tying", false)?,
            scale_logits: f.get("scale_logits", false)?,
            input_emb_norm: f.get("input_emb_norm", false)?,
            mask_token_id: f.token_id("mask_token_id", 126336)?,
            eos_token_id: f.token_id("eos_token_id", 126081)?,
            pad_token_id: f.token_id("pad_token_id", 126081)?,
            llm_vocab_size: f.positive("llm_vocab_size", 126464)?,
            codebook_size: f.positive("codebook_size", 8192)?,
            num_vq_tokens: f.positive("num_vq_tokens", 256)?,
        };
        for (key, id) in [("mask_token_id", c.mask_token_id), ("eos_token_id", c.eos_token_id), ("pad_token_id", c.pad_token_id)] {
            f.check_token_id(key, id, embedding_size)?;
        }
        let side = (c.num_vq_tokens as f64).sqrt() as usize;
        if side * side != c.num_vq_tokens {
            return Err(f.error("num_vq_tokens", format!("{} image tokens do not make a square grid", c.num_vq_tokens)));
        }
        Ok(c)
    }

    /// Vocabulary rows (the embedding's and the head's).
    pub fn vocab_size(&self) -> usize {
        self.backbone.vocab_size
    }

    /// Side of the square image-token grid.
    pub fn grid_side(&self) -> usize {
        (self.num_vq_tokens as f64).sqrt() as usize
    }

    /// Checks that image codes offset by `offset` (the text tokenizer's
    /// length) fit the vocabulary.
    pub fn check_image_offset(&self, offset: usize) -> Result<()> {
        if offset + self.codebook_size > self.vocab_size() {
            return Err(Error::config(
                "config.json",
                format!(
                    "image codes at {offset}..{} (the tokenizer's {offset} tokens, then codebook_size {}) do not fit vocab_size {}",
                    offset + self.codebook_size,
                    self.codebook_size,
                    self.vocab_size()
                ),
            ));
        }
        Ok(())
    }
}

/// `LLaDAConfig.effective_n_kv_heads`: `n_kv_heads`, else 1 under
/// `multi_query_attention`, else `n_heads`; the two fields must agree.
fn kv_heads(f: &Fields, n_heads: usize) -> Result<usize> {
    let n_kv: Option<usize> = f.get("n_kv_heads", None)?;
    let mqa: Option<bool> = f.get("multi_query_attention", None)?;
    let implied = mqa.map(|m| if m { 1 } else { n_heads });
    let kv = match (n_kv, implied) {
        (Some(n), Some(i)) if n != i => {
            return Err(f.error("n_kv_heads", format!("{n} disagrees with multi_query_attention ({i} key/value heads)")))
        }
        (Some(n), _) => n,
        (None, Some(i)) => i,
        (None, None) => n_heads,
    };
    if kv == 0 || !n_heads.is_multiple_of(kv) {
        return Err(f.error("n_kv_heads", format!("{n_heads} query heads are not a multiple of {kv} key/value heads")));
    }
    Ok(kv)
}

/// magvit_config.json: MAGVIT-v2's encoder, decoder and quantizer.
///
/// The hub's MAGVIT-v2 config names no sizes (`MAGVITv2()` builds fixed
/// ones); a config that gives `encoder`/`decoder`/`quantize` objects with
/// the constructors' arguments overrides them field by field.
#[derive(Clone, Debug, PartialEq)]
pub struct MagvitConfig {
    pub encoder: MagvitCoderConfig,
    pub decoder: MagvitCoderConfig,
    /// Bits per code (`codebook_dim`): the codebook has `2^bits` entries.
    pub codebook_bits: usize,
}

/// The arguments of `VQGANEncoder` / `VQGANDecoder`.
#[derive(Clone, Debug, PartialEq)]
pub struct MagvitCoderConfig {
    pub ch: usize,
    pub ch_mult: Vec<usize>,
    pub num_res_blocks: Vec<usize>,
    pub attn_resolutions: Vec<usize>,
    pub in_ch: usize,
    pub out_ch: usize,
    pub resolution: usize,
    pub z_channels: usize,
}

/// The groups and epsilon of every MAGVIT-v2 GroupNorm (`Normalize`).
pub const MAGVIT_NORM: (usize, f64) = (32, 1e-6);

impl MagvitConfig {
    /// Reads `path` (magvit_config.json).
    pub fn from_file(path: &Path) -> Result<Self> {
        let (root, file) = read_object(path)?;
        let enc = sub_config(&root, "encoder", &file)?;
        let dec = sub_config(&root, "decoder", &file)?;
        let quant = sub_config(&root, "quantize", &file)?;
        let encoder = coder(&Fields::new(&enc, "encoder", &file), &[1, 2, 2, 4, 4], &[4, 3, 4, 3, 4])?;
        let decoder = coder(&Fields::new(&dec, "decoder", &file), &[1, 1, 2, 2, 4], &[4, 4, 3, 4, 3])?;
        let q = Fields::new(&quant, "quantize", &file);
        let codebook_bits = q.positive("codebook_dim", 13)?;
        if codebook_bits > 24 {
            return Err(q.error("codebook_dim", format!("{codebook_bits} bits is a codebook larger than any model's")));
        }
        let size: i64 = q.get("codebook_size", 1i64 << codebook_bits)?;
        if size != 1i64 << codebook_bits {
            return Err(q.error("codebook_size", format!("{size} is not 2^codebook_dim = {}", 1u64 << codebook_bits)));
        }
        for (c, name) in [(&encoder, "encoder"), (&decoder, "decoder")] {
            if c.z_channels != codebook_bits {
                return Err(Error::config(
                    file.as_str(),
                    format!("field '{name}.z_channels' is {} but the quantizer has {codebook_bits} bits", c.z_channels),
                ));
            }
        }
        Ok(MagvitConfig { encoder, decoder, codebook_bits })
    }

    /// Codebook entries.
    pub fn codebook_size(&self) -> usize {
        1 << self.codebook_bits
    }

    /// Pixels along a side of one image token: the encoder halves the image
    /// at every level but the last. (The config's `resolution` only places
    /// attention: the encoder takes any side that is a multiple of this.)
    pub fn downsample(&self) -> usize {
        1 << (self.encoder.ch_mult.len() - 1)
    }

    /// The encoder's sizes: attention after the blocks of each level whose
    /// side (halving from `resolution`) is in `attn_resolutions`.
    pub fn encoder_spec(&self) -> VqganSpec {
        let c = &self.encoder;
        let attention = (0..c.ch_mult.len()).map(|l| c.attn_resolutions.contains(&(c.resolution >> l))).collect();
        spec(c, c.in_ch, attention)
    }

    /// The decoder's sizes: as `VQGANDecoder` counts it, the deepest level
    /// runs at `resolution / 2^(levels - 1)` and each level above at twice
    /// the side; attention where that side is in `attn_resolutions`.
    pub fn decoder_spec(&self) -> VqganSpec {
        let c = &self.decoder;
        let levels = c.ch_mult.len();
        let deepest = c.resolution >> (levels - 1);
        let attention = (0..levels).map(|l| c.attn_resolutions.contains(&(deepest << (levels - 1 - l)))).collect();
        spec(c, c.out_ch, attention)
    }
}

fn spec(c: &MagvitCoderConfig, image_channels: usize, attention: Vec<bool>) -> VqganSpec {
    VqganSpec {
        image_channels,
        latent_channels: c.z_channels,
        base_channels: c.ch,
        ch_mult: c.ch_mult.clone(),
        blocks: c.num_res_blocks.clone(),
        attention,
        norm_groups: MAGVIT_NORM.0,
        norm_eps: MAGVIT_NORM.1,
    }
}

fn coder(f: &Fields, ch_mult: &[usize], blocks: &[usize]) -> Result<MagvitCoderConfig> {
    let c = MagvitCoderConfig {
        ch: f.positive("ch", 128)?,
        ch_mult: f.get("ch_mult", ch_mult.to_vec())?,
        num_res_blocks: f.get("num_res_blocks", blocks.to_vec())?,
        attn_resolutions: f.get("attn_resolutions", vec![5])?,
        in_ch: f.positive("in_ch", 3)?,
        out_ch: f.positive("out_ch", 3)?,
        resolution: f.image_side("resolution", 256)?,
        z_channels: f.positive("z_channels", 13)?,
    };
    if f.get("double_z", false)? {
        return Err(f.error("double_z", "a doubled latent is not supported by the quantizer"));
    }
    let levels = c.ch_mult.len();
    if levels == 0 || levels > 12 {
        return Err(f.error("ch_mult", format!("{levels} levels (1 to 12 are supported)")));
    }
    if c.num_res_blocks.len() != levels {
        return Err(f.error("num_res_blocks", format!("{} entries for {levels} levels", c.num_res_blocks.len())));
    }
    if c.num_res_blocks.iter().any(|&b| b > 64) {
        return Err(f.error("num_res_blocks", format!("{:?}: more blocks than any model has", c.num_res_blocks)));
    }
    for &m in &c.ch_mult {
        let channels = c.ch.checked_mul(m).filter(|&ch| ch > 0 && ch <= 1 << 16);
        if channels.is_none_or(|ch| !ch.is_multiple_of(MAGVIT_NORM.0)) {
            return Err(f.error("ch_mult", format!("ch {} x {m} is not a positive multiple of the {} norm groups", c.ch, MAGVIT_NORM.0)));
        }
    }
    if !c.resolution.is_multiple_of(1 << (levels - 1)) {
        return Err(f.error("resolution", format!("{} does not halve {} times", c.resolution, levels - 1)));
    }
    Ok(c)
}

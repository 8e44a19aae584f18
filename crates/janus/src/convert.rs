//! DeepSeek's original Janus-Pro checkpoints (deepseek-ai/Janus-Pro-1B and
//! -7B: `pytorch_model.bin`, or shards listed by
//! `pytorch_model.bin.index.json`) converted to the Hugging Face layout
//! this crate loads (deepseek-community/Janus-Pro-*), as transformers'
//! convert_janus_weights_to_hf.py converts them.
//!
//! The original names are those of DeepSeek's code: a timm SigLIP tower
//! (`vision_model.vision_tower.*`), LlamaGen's VQ model
//! (`gen_vision_model.*`), the MLP aligners (`aligner.layers.*`,
//! `gen_aligner.layers.*`), the generation head and embeddings
//! (`gen_head.*`, `gen_embed.*`) and transformers' Llama
//! (`language_model.*`). [`hf_name`] renames each as the converter's
//! patterns do:
//!
//! | original | Hugging Face |
//! |---|---|
//! | `vision_model.vision_tower.blocks.N.attn` | `model.vision_model.encoder.layers.N.self_attn` |
//! | `vision_model.vision_tower.blocks` | `model.vision_model.encoder.layers` |
//! | `vision_model.vision_tower.pos_embed` | `model.vision_model.embeddings.position_embedding.weight` |
//! | `vision_model.vision_tower.patch_embed.proj` | `model.vision_model.embeddings.patch_embedding` |
//! | `vision_model.vision_tower.norm` | `model.vision_model.post_layernorm` |
//! | `proj`, `norm`, `norm1`, `norm2` after `vision_model` | `projection_layer`, `layer_norm`, `layer_norm1`, `layer_norm2` |
//! | `vision_model.vision_tower.attn_pool.*` | dropped |
//! | `gen_vision_model` | `model.vqmodel` |
//! | `encoder.conv_blocks`, `decoder.conv_blocks` after it | `encoder.down`, `decoder.up` |
//! | `res`, `mid.0`, `mid.1`, `mid.2` after it | `block`, `mid.block_1`, `mid.attn_1`, `mid.block_2` |
//! | `gen_vision_model.quantize.codebook_used` | dropped |
//! | `gen_aligner.layers.0`, `gen_aligner.layers.2` | `model.generation_aligner.fc1`, `model.generation_aligner.hidden_layers.0` |
//! | `aligner.layers.0`, `aligner.layers.2` | `model.aligner.fc1`, `model.aligner.hidden_layers.0` |
//! | `gen_head.output_mlp_projector` | `model.generation_head.proj_out` |
//! | `gen_embed`, `gen_head` (leading) | `model.generation_embeddings`, `model.generation_head` |
//! | `language_model.model` (leading) | `model.language_model` |
//! | `language_model.lm_head.weight` | `lm_head.weight` |
//!
//! The rules apply in this order, each to the name the previous ones left;
//! a name no rule matches is kept as it is. The converter's regular
//! expressions match dot-separated words here: for tensor names, which
//! are words joined by dots, the two agree.
//!
//! A renamed tensor holding `qkv` is the vision attention's fused
//! projection: it is split along its rows into `q_proj`, `k_proj` and
//! `v_proj` (one holding `kv` into `k_proj` and `v_proj`), see
//! [`fused_parts`]. The position embedding (`[1, patches, D]` in the
//! original) loses its leading dimension of 1. [`convert_original_checkpoint`]
//! writes the whole checkpoint that way to one `model.safetensors`, reading
//! the pickles with tessera-hf's restricted unpickler (nothing in the
//! files is run) and copying each tensor's bytes unchanged. The configs,
//! tokenizer and processor files are not converted: the Hugging Face
//! checkpoint's are needed beside the converted weights.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use tessera_hf::pickle::{OutputTensor, Skipped};
use tessera_hf::{write_safetensors_plan, Error, Result, TorchCheckpoint};

/// The file of an unsharded original checkpoint.
pub const ORIGINAL_FILE: &str = "pytorch_model.bin";
/// The index of a sharded original checkpoint.
pub const ORIGINAL_INDEX: &str = "pytorch_model.bin.index.json";
/// The file [`convert_original_checkpoint`] writes.
pub const CONVERTED_FILE: &str = "model.safetensors";
/// The position embedding, written without its leading dimension of 1.
pub const POSITION_EMBEDDING: &str = "model.vision_model.embeddings.position_embedding.weight";

/// The Hugging Face name of the original tensor `original`, or `None` for
/// the tensors the converter drops (the SigLIP tower's attention pooling,
/// the VQ codebook's usage counts). A fused `qkv` or `kv` projection keeps
/// its fused name here (see [`fused_parts`]).
pub fn hf_name(original: &str) -> Option<String> {
    let mut parts: Vec<String> = original.split('.').map(str::to_string).collect();
    vision_tower(&mut parts);
    for (word, renamed) in [("proj", "projection_layer"), ("norm", "layer_norm"), ("norm1", "layer_norm1"), ("norm2", "layer_norm2")] {
        rename_run_after(&mut parts, &["vision_model"], &[word], &[renamed]);
    }
    if find(&parts, &["vision_model", "vision_tower", "attn_pool"], 0).is_some_and(|at| at + 3 < parts.len()) {
        return None;
    }
    replace_all(&mut parts, &["gen_vision_model"], &["model", "vqmodel"]);
    vq_model(&mut parts);
    replace_all(&mut parts, &["gen_aligner", "layers", "0"], &["model", "generation_aligner", "fc1"]);
    replace_all(&mut parts, &["gen_aligner", "layers", "2"], &["model", "generation_aligner", "hidden_layers", "0"]);
    replace_all(&mut parts, &["aligner", "layers", "0"], &["model", "aligner", "fc1"]);
    replace_all(&mut parts, &["aligner", "layers", "2"], &["model", "aligner", "hidden_layers", "0"]);
    replace_all(&mut parts, &["gen_head", "output_mlp_projector"], &["model", "generation_head", "proj_out"]);
    replace_leading(&mut parts, &["gen_embed"], &["model", "generation_embeddings"]);
    replace_leading(&mut parts, &["gen_head"], &["model", "generation_head"]);
    if find(&parts, &["model", "vqmodel", "quantize", "codebook_used"], 0).is_some() {
        return None;
    }
    replace_leading(&mut parts, &["language_model", "model"], &["model", "language_model"]);
    replace_all(&mut parts, &["model", "language_model", "lm_head", "weight"], &["lm_head", "weight"]);
    replace_all(&mut parts, &["language_model", "lm_head", "weight"], &["lm_head", "weight"]);
    Some(parts.join("."))
}

/// The vision tower's renames (the converter's first five patterns).
fn vision_tower(parts: &mut Vec<String>) {
    const TOWER: [&str; 2] = ["vision_model", "vision_tower"];
    // blocks.N.attn -> encoder.layers.N.self_attn, N any number.
    let mut from = 0;
    while let Some(at) = find(parts, &[TOWER[0], TOWER[1], "blocks"], from) {
        let is_attention = parts.get(at + 3).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            && parts.get(at + 4).is_some_and(|w| w == "attn");
        if is_attention {
            let layer = parts[at + 3].clone();
            splice(parts, at, 5, &["model", "vision_model", "encoder", "layers", &layer, "self_attn"]);
            from = at + 6;
        } else {
            from = at + 1;
        }
    }
    replace_all(parts, &[TOWER[0], TOWER[1], "blocks"], &["model", "vision_model", "encoder", "layers"]);
    replace_all(parts, &[TOWER[0], TOWER[1], "pos_embed"], &["model", "vision_model", "embeddings", "position_embedding", "weight"]);
    replace_all(parts, &[TOWER[0], TOWER[1], "patch_embed", "proj"], &["model", "vision_model", "embeddings", "patch_embedding"]);
    replace_all(parts, &[TOWER[0], TOWER[1], "norm"], &["model", "vision_model", "post_layernorm"]);
}

/// The VQ model's renames, each of the last match after `model.vqmodel`.
fn vq_model(parts: &mut Vec<String>) {
    const VQ: [&str; 2] = ["model", "vqmodel"];
    rename_run_after(parts, &VQ, &["decoder", "conv_blocks"], &["decoder", "up"]);
    rename_run_after(parts, &VQ, &["encoder", "conv_blocks"], &["encoder", "down"]);
    rename_run_after(parts, &VQ, &["res"], &["block"]);
    rename_run_after(parts, &VQ, &["mid", "0"], &["mid", "block_1"]);
    rename_run_after(parts, &VQ, &["mid", "1"], &["mid", "attn_1"]);
    rename_run_after(parts, &VQ, &["mid", "2"], &["mid", "block_2"]);
}

/// The first index at or after `from` where `parts` holds the words of
/// `run`, in order.
fn find(parts: &[String], run: &[&str], from: usize) -> Option<usize> {
    (from..=parts.len().checked_sub(run.len())?).find(|&at| parts[at..at + run.len()].iter().zip(run).all(|(p, r)| p == r))
}

/// Replaces the `len` words at `at` with `with`.
fn splice(parts: &mut Vec<String>, at: usize, len: usize, with: &[&str]) {
    parts.splice(at..at + len, with.iter().map(|w| w.to_string()));
}

/// Replaces every (non-overlapping) occurrence of `run` with `with`.
fn replace_all(parts: &mut Vec<String>, run: &[&str], with: &[&str]) {
    let mut from = 0;
    while let Some(at) = find(parts, run, from) {
        splice(parts, at, run.len(), with);
        from = at + with.len();
    }
}

/// Replaces `run` with `with` when the name begins with it.
fn replace_leading(parts: &mut Vec<String>, run: &[&str], with: &[&str]) {
    if find(parts, run, 0) == Some(0) {
        splice(parts, 0, run.len(), with);
    }
}

/// Replaces the last occurrence of `run` that follows the first
/// occurrence of `anchor` (a pattern's greedy `anchor.*\.run`).
fn rename_run_after(parts: &mut Vec<String>, anchor: &[&str], run: &[&str], with: &[&str]) {
    let Some(start) = find(parts, anchor, 0) else { return };
    let from = start + anchor.len();
    let last = (from..=parts.len().saturating_sub(run.len())).rev().find(|&at| find(parts, run, at) == Some(at));
    if let Some(at) = last {
        splice(parts, at, run.len(), with);
    }
}

/// The names a fused projection's rows are split into, in row order:
/// `q_proj`, `k_proj` and `v_proj` for a name holding `qkv`, `k_proj` and
/// `v_proj` for one holding `kv` (every occurrence replaced, as the
/// converter does); `None` for any other name.
pub fn fused_parts(hf: &str) -> Option<Vec<String>> {
    let (fused, parts): (&str, &[&str]) = if hf.contains("qkv") {
        ("qkv", &["q_proj", "k_proj", "v_proj"])
    } else if hf.contains("kv") {
        ("kv", &["k_proj", "v_proj"])
    } else {
        return None;
    };
    Some(parts.iter().map(|p| hf.replace(fused, p)).collect())
}

/// How the tensors of an original checkpoint are written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConversionPlan {
    /// The tensors written, in the checkpoint's order.
    pub outputs: Vec<OutputTensor>,
    /// The original names of the fused projections split.
    pub split: Vec<String>,
    /// The original names of the tensors dropped.
    pub dropped: Vec<String>,
}

/// The plan for tensors `(original name, shape)`: each renamed by
/// [`hf_name`], fused projections split along their rows, the position
/// embedding's leading 1 dropped. A fused projection whose rows do not
/// divide evenly, or a scalar one, is an error naming it (`file` names the
/// checkpoint in it).
pub fn conversion_plan<'a>(file: &str, tensors: impl IntoIterator<Item = (&'a str, &'a [usize])>) -> Result<ConversionPlan> {
    let mut plan = ConversionPlan::default();
    for (original, shape) in tensors {
        let Some(name) = hf_name(original) else {
            plan.dropped.push(original.to_string());
            continue;
        };
        if let Some(parts) = fused_parts(&name) {
            let rows = shape.first().copied().unwrap_or(0);
            if shape.is_empty() || rows % parts.len() != 0 {
                return Err(Error::checkpoint(
                    file,
                    format!(
                        "tensor '{original}' of shape {shape:?} is a fused projection of {} parts, but its rows do not split evenly",
                        parts.len()
                    ),
                ));
            }
            let n = rows / parts.len();
            for (i, part) in parts.into_iter().enumerate() {
                plan.outputs.push(OutputTensor::new(part, original).rows(i * n..(i + 1) * n));
            }
            plan.split.push(original.to_string());
        } else if name == POSITION_EMBEDDING && shape.first() == Some(&1) {
            plan.outputs.push(OutputTensor::new(name, original).reshaped(shape[1..].to_vec()));
        } else {
            plan.outputs.push(OutputTensor::new(name, original));
        }
    }
    Ok(plan)
}

/// What [`convert_original_checkpoint`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertSummary {
    /// The safetensors file written (`<out_dir>/model.safetensors`).
    pub output: PathBuf,
    /// The pickle files read (1 for an unsharded checkpoint).
    pub shards: usize,
    /// The tensors written.
    pub tensors: usize,
    /// The original names of the fused projections split.
    pub split: Vec<String>,
    /// The original names of the tensors dropped.
    pub dropped: Vec<String>,
    /// The entries of the pickles that are not tensors.
    pub skipped: Vec<Skipped>,
    /// Bytes of tensor data written.
    pub bytes: u64,
}

/// Converts the original checkpoint in `model_dir` (`pytorch_model.bin`, or
/// the shards `pytorch_model.bin.index.json` lists) to
/// `<out_dir>/model.safetensors` in the Hugging Face layout (see the module
/// documentation), creating `out_dir` if needed. A tensor held by two
/// shards, an index naming a file outside `model_dir`, a refused or
/// malformed pickle and a fused projection that does not split are errors;
/// nothing is written then.
pub fn convert_original_checkpoint(model_dir: &Path, out_dir: &Path) -> Result<ConvertSummary> {
    let files = original_files(model_dir)?;
    let checkpoints = files.iter().map(TorchCheckpoint::open).collect::<Result<Vec<_>>>()?;
    let mut seen = HashSet::new();
    for (file, checkpoint) in files.iter().zip(&checkpoints) {
        if let Some(twice) = checkpoint.names().into_iter().find(|name| !seen.insert(name.to_string())) {
            return Err(Error::checkpoint(file.display().to_string(), format!("tensor '{twice}' is also in another shard")));
        }
    }
    let tensors = checkpoints.iter().flat_map(|c| c.tensors()).map(|t| (t.name.as_str(), t.shape.as_slice()));
    let plan = conversion_plan(&model_dir.display().to_string(), tensors)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let output = out_dir.join(CONVERTED_FILE);
    let bytes = write_safetensors_plan(&checkpoints, &plan.outputs, &output)?;
    Ok(ConvertSummary {
        output,
        shards: checkpoints.len(),
        tensors: plan.outputs.len(),
        split: plan.split,
        dropped: plan.dropped,
        skipped: checkpoints.iter().flat_map(|c| c.skipped().iter().cloned()).collect(),
        bytes,
    })
}

/// The pickle files of the original checkpoint in `dir`: the shards of its
/// index (each once, sorted, as the converter loads them), else
/// `pytorch_model.bin`.
fn original_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join(ORIGINAL_INDEX);
    if !index.is_file() {
        let single = dir.join(ORIGINAL_FILE);
        if single.is_file() {
            return Ok(vec![single]);
        }
        return Err(Error::checkpoint(
            dir.display().to_string(),
            format!("neither {ORIGINAL_FILE} nor {ORIGINAL_INDEX} is in the directory"),
        ));
    }
    let shown = index.display().to_string();
    let json: serde_json::Value =
        serde_json::from_str(&tessera_hf::read_text(&index)?).map_err(|e| Error::checkpoint(&shown, format!("not valid JSON: {e}")))?;
    let Some(map) = json.get("weight_map").and_then(serde_json::Value::as_object) else {
        return Err(Error::checkpoint(&shown, "no \"weight_map\" object"));
    };
    let mut shards = Vec::new();
    for (tensor, shard) in map {
        let Some(shard) = shard.as_str() else {
            return Err(Error::checkpoint(&shown, format!("the shard of tensor '{tensor}' is not a string")));
        };
        let plain = !shard.is_empty() && !shard.contains(['/', '\\', '\0']) && shard != "." && shard != "..";
        if !plain {
            return Err(Error::checkpoint(&shown, format!("the shard '{shard}' of tensor '{tensor}' is not a file name in the directory")));
        }
        shards.push(shard);
    }
    shards.sort_unstable();
    shards.dedup();
    if shards.is_empty() {
        return Err(Error::checkpoint(&shown, "the weight map names no shard"));
    }
    Ok(shards.into_iter().map(|s| dir.join(s)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_tensor::safetensors::{FileDType, SafeTensorsFile};

    fn fixtures(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../hf/tests/fixtures/pickle").join(name)
    }

    /// Real original names and the names transformers' converter gives
    /// them, every rule among them.
    const NAMES: [(&str, Option<&str>); 42] = [
        ("vision_model.vision_tower.pos_embed", Some("model.vision_model.embeddings.position_embedding.weight")),
        ("vision_model.vision_tower.patch_embed.proj.weight", Some("model.vision_model.embeddings.patch_embedding.weight")),
        ("vision_model.vision_tower.patch_embed.proj.bias", Some("model.vision_model.embeddings.patch_embedding.bias")),
        ("vision_model.vision_tower.blocks.0.attn.qkv.weight", Some("model.vision_model.encoder.layers.0.self_attn.qkv.weight")),
        ("vision_model.vision_tower.blocks.23.attn.qkv.bias", Some("model.vision_model.encoder.layers.23.self_attn.qkv.bias")),
        (
            "vision_model.vision_tower.blocks.11.attn.proj.weight",
            Some("model.vision_model.encoder.layers.11.self_attn.projection_layer.weight"),
        ),
        ("vision_model.vision_tower.blocks.3.norm1.bias", Some("model.vision_model.encoder.layers.3.layer_norm1.bias")),
        ("vision_model.vision_tower.blocks.3.norm2.weight", Some("model.vision_model.encoder.layers.3.layer_norm2.weight")),
        ("vision_model.vision_tower.blocks.7.mlp.fc1.weight", Some("model.vision_model.encoder.layers.7.mlp.fc1.weight")),
        ("vision_model.vision_tower.blocks.7.mlp.fc2.bias", Some("model.vision_model.encoder.layers.7.mlp.fc2.bias")),
        ("vision_model.vision_tower.norm.weight", Some("model.vision_model.post_layernorm.weight")),
        ("vision_model.vision_tower.norm.bias", Some("model.vision_model.post_layernorm.bias")),
        ("vision_model.vision_tower.attn_pool.latent", None),
        ("vision_model.vision_tower.attn_pool.kv.weight", None),
        ("vision_model.vision_tower.attn_pool.proj.bias", None),
        ("vision_model.vision_tower.attn_pool.norm.weight", None),
        ("vision_model.vision_tower.attn_pool.mlp.fc1.weight", None),
        ("aligner.layers.0.weight", Some("model.aligner.fc1.weight")),
        ("aligner.layers.2.bias", Some("model.aligner.hidden_layers.0.bias")),
        ("gen_vision_model.encoder.conv_in.weight", Some("model.vqmodel.encoder.conv_in.weight")),
        ("gen_vision_model.encoder.conv_blocks.0.res.1.norm1.weight", Some("model.vqmodel.encoder.down.0.block.1.norm1.weight")),
        ("gen_vision_model.encoder.conv_blocks.1.res.0.nin_shortcut.bias", Some("model.vqmodel.encoder.down.1.block.0.nin_shortcut.bias")),
        ("gen_vision_model.encoder.conv_blocks.4.attn.1.proj_out.weight", Some("model.vqmodel.encoder.down.4.attn.1.proj_out.weight")),
        ("gen_vision_model.encoder.conv_blocks.0.downsample.conv.weight", Some("model.vqmodel.encoder.down.0.downsample.conv.weight")),
        ("gen_vision_model.encoder.mid.0.conv1.weight", Some("model.vqmodel.encoder.mid.block_1.conv1.weight")),
        ("gen_vision_model.encoder.mid.1.norm.weight", Some("model.vqmodel.encoder.mid.attn_1.norm.weight")),
        ("gen_vision_model.decoder.mid.2.norm2.bias", Some("model.vqmodel.decoder.mid.block_2.norm2.bias")),
        ("gen_vision_model.decoder.conv_blocks.2.res.2.conv2.weight", Some("model.vqmodel.decoder.up.2.block.2.conv2.weight")),
        ("gen_vision_model.decoder.conv_blocks.0.upsample.conv.bias", Some("model.vqmodel.decoder.up.0.upsample.conv.bias")),
        ("gen_vision_model.decoder.norm_out.weight", Some("model.vqmodel.decoder.norm_out.weight")),
        ("gen_vision_model.quantize.embedding.weight", Some("model.vqmodel.quantize.embedding.weight")),
        ("gen_vision_model.quantize.codebook_used", None),
        ("gen_vision_model.post_quant_conv.weight", Some("model.vqmodel.post_quant_conv.weight")),
        ("gen_aligner.layers.0.weight", Some("model.generation_aligner.fc1.weight")),
        ("gen_aligner.layers.2.bias", Some("model.generation_aligner.hidden_layers.0.bias")),
        ("gen_head.output_mlp_projector.weight", Some("model.generation_head.proj_out.weight")),
        ("gen_head.vision_head.bias", Some("model.generation_head.vision_head.bias")),
        ("gen_embed.weight", Some("model.generation_embeddings.weight")),
        ("language_model.model.embed_tokens.weight", Some("model.language_model.embed_tokens.weight")),
        ("language_model.model.layers.5.self_attn.k_proj.weight", Some("model.language_model.layers.5.self_attn.k_proj.weight")),
        (
            "language_model.model.layers.0.post_attention_layernorm.weight",
            Some("model.language_model.layers.0.post_attention_layernorm.weight"),
        ),
        ("language_model.lm_head.weight", Some("lm_head.weight")),
    ];

    #[test]
    fn original_names_map_as_the_converter_maps_them() {
        for (original, hf) in NAMES {
            assert_eq!(hf_name(original).as_deref(), hf, "{original}");
        }
        // Names no rule matches stay; the already converted stay converted.
        assert_eq!(hf_name("language_model.model.norm.weight").as_deref(), Some("model.language_model.norm.weight"));
        assert_eq!(hf_name("other.weight").as_deref(), Some("other.weight"));
        for (_, hf) in NAMES.iter().filter(|(_, hf)| hf.is_some_and(|h| !h.contains("qkv"))) {
            let hf = hf.unwrap();
            assert_eq!(hf_name(hf).as_deref(), Some(hf), "{hf}");
        }
        // A VQ norm is not the vision tower's, a projection outside the
        // vision model is not renamed.
        assert_eq!(hf_name("gen_vision_model.encoder.norm_out.bias").as_deref(), Some("model.vqmodel.encoder.norm_out.bias"));
        assert_eq!(hf_name("gen_head.proj.weight").as_deref(), Some("model.generation_head.proj.weight"));
    }

    #[test]
    fn fused_projections_split_into_their_parts() {
        let parts = fused_parts("model.vision_model.encoder.layers.0.self_attn.qkv.weight").unwrap();
        assert_eq!(
            parts,
            [
                "model.vision_model.encoder.layers.0.self_attn.q_proj.weight",
                "model.vision_model.encoder.layers.0.self_attn.k_proj.weight",
                "model.vision_model.encoder.layers.0.self_attn.v_proj.weight"
            ]
        );
        assert_eq!(fused_parts("a.kv.bias").unwrap(), ["a.k_proj.bias", "a.v_proj.bias"]);
        assert_eq!(fused_parts("model.language_model.layers.0.self_attn.k_proj.weight"), None);

        let qkv = "vision_model.vision_tower.blocks.0.attn.qkv.weight";
        let pos = "vision_model.vision_tower.pos_embed";
        let drop = "gen_vision_model.quantize.codebook_used";
        let shapes: [(&str, &[usize]); 3] = [(qkv, &[24, 8]), (pos, &[1, 4, 8]), (drop, &[6])];
        let plan = conversion_plan("c", shapes).unwrap();
        let rows: Vec<_> = plan.outputs.iter().map(|o| (o.name.rsplit('.').nth(1).unwrap(), o.rows.clone(), o.shape.clone())).collect();
        assert_eq!(
            rows,
            [
                ("q_proj", Some(0..8), None),
                ("k_proj", Some(8..16), None),
                ("v_proj", Some(16..24), None),
                ("position_embedding", None, Some(vec![4, 8]))
            ]
        );
        assert_eq!((plan.split, plan.dropped), (vec![qkv.to_string()], vec![drop.to_string()]));
        // An already squeezed position embedding is written as it is.
        let plan = conversion_plan("c", [(pos, &[4usize, 8][..])]).unwrap();
        assert_eq!(plan.outputs[0].shape, None);
        for shape in [&[25usize, 8][..], &[]] {
            let err = conversion_plan("c", [(qkv, shape)]).unwrap_err();
            assert!(matches!(&err, Error::Checkpoint { msg, .. } if msg.contains(qkv)), "{err}");
        }
    }

    #[test]
    fn converts_an_original_checkpoint_end_to_end() {
        let out = tempfile::tempdir().unwrap();
        let summary = convert_original_checkpoint(&fixtures("janus"), out.path()).unwrap();
        let source = TorchCheckpoint::open(fixtures("janus/pytorch_model.bin")).unwrap();
        let file = SafeTensorsFile::open(&summary.output).unwrap();
        assert_eq!(summary.output, out.path().join(CONVERTED_FILE));
        assert_eq!((summary.shards, summary.split.len(), summary.dropped.len()), (1, 2, 7));
        assert_eq!(summary.tensors, source.len() - 7 + 2 * 2);
        assert_eq!(file.names().len(), summary.tensors);
        // Every tensor renamed as hf_name says, with its bytes unchanged.
        for original in source.names() {
            let Some(hf) = hf_name(original) else {
                assert!(summary.dropped.iter().any(|d| d == original));
                continue;
            };
            let bytes = source.bytes(original).unwrap();
            match fused_parts(&hf) {
                Some(parts) => {
                    let third = bytes.len() / 3;
                    for (i, part) in parts.iter().enumerate() {
                        assert_eq!(file.bytes(part).unwrap(), &bytes[i * third..(i + 1) * third], "{part}");
                        assert_eq!(file.info(part).unwrap().shape[0], source.shape(original).unwrap()[0] / 3);
                    }
                }
                None => assert_eq!(file.bytes(&hf).unwrap(), bytes.as_ref(), "{hf}"),
            }
        }
        let info = |name: &str| file.info(name).unwrap().clone();
        assert_eq!(info(POSITION_EMBEDDING).shape, [4, 8]);
        assert_eq!(info("model.vision_model.encoder.layers.0.self_attn.k_proj.weight").shape, [8, 8]);
        assert_eq!(info("model.vision_model.encoder.layers.0.self_attn.v_proj.bias").shape, [8]);
        assert_eq!((info("lm_head.weight").file_dtype, info("lm_head.weight").shape), (FileDType::BF16, vec![12, 16]));
        assert_eq!(info("model.vqmodel.encoder.mid.attn_1.proj_out.weight").file_dtype, FileDType::F32);
        assert!(!file.names().iter().any(|n| n.contains("attn_pool") || n.contains("codebook_used") || n.contains("qkv")));
    }

    #[test]
    fn converts_a_sharded_checkpoint() {
        let out = tempfile::tempdir().unwrap();
        let summary = convert_original_checkpoint(&fixtures("janus_sharded"), out.path()).unwrap();
        assert_eq!((summary.shards, summary.tensors, summary.dropped.len()), (2, 8, 2));
        let file = SafeTensorsFile::open(&summary.output).unwrap();
        let mut names = file.names();
        names.sort_unstable();
        let attention = "model.vision_model.encoder.layers.0.self_attn";
        let mut want = vec![POSITION_EMBEDDING.to_string(), "lm_head.weight".to_string()];
        for p in ["q_proj", "k_proj", "v_proj"] {
            want.extend([format!("{attention}.{p}.weight"), format!("{attention}.{p}.bias")]);
        }
        want.sort_unstable();
        assert_eq!(names, want);
        // The same tensors as the unsharded conversion's.
        let whole = tempfile::tempdir().unwrap();
        let whole = SafeTensorsFile::open(convert_original_checkpoint(&fixtures("janus"), whole.path()).unwrap().output).unwrap();
        for name in &want {
            assert_eq!(file.bytes(name).unwrap(), whole.bytes(name).unwrap(), "{name}");
        }
    }

    #[test]
    fn bad_checkpoint_directories_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let err = convert_original_checkpoint(dir.path(), &out).unwrap_err();
        assert!(matches!(&err, Error::Checkpoint { msg, .. } if msg.contains(ORIGINAL_FILE)), "{err}");
        let index = dir.path().join(ORIGINAL_INDEX);
        for (json, says) in [
            ("{", "not valid JSON"),
            ("{}", "weight_map"),
            (r#"{"weight_map": {}}"#, "no shard"),
            (r#"{"weight_map": {"a": 1}}"#, "not a string"),
            (r#"{"weight_map": {"a": "../pytorch_model.bin"}}"#, "not a file name"),
        ] {
            std::fs::write(&index, json).unwrap();
            let err = convert_original_checkpoint(dir.path(), &out).unwrap_err();
            assert!(matches!(&err, Error::Checkpoint { msg, .. } if msg.contains(says)), "{json}: {err}");
        }
        std::fs::write(&index, r#"{"weight_map": {"a": "missing.bin"}}"#).unwrap();
        assert!(matches!(convert_original_checkpoint(dir.path(), &out), Err(Error::Io { .. })));
        // One tensor in two shards.
        let shard = std::fs::read(fixtures("janus_sharded/pytorch_model-00001-of-00002.bin")).unwrap();
        std::fs::write(dir.path().join("a.bin"), &shard).unwrap();
        std::fs::write(dir.path().join("b.bin"), &shard).unwrap();
        std::fs::write(&index, r#"{"weight_map": {"x": "a.bin", "y": "b.bin"}}"#).unwrap();
        let err = convert_original_checkpoint(dir.path(), &out).unwrap_err();
        assert!(matches!(&err, Error::Checkpoint { msg, .. } if msg.contains("also in another shard")), "{err}");
        // A pickle naming code is refused before anything is written.
        std::fs::remove_file(&index).unwrap();
        std::fs::copy(fixtures("os_system.pt"), dir.path().join(ORIGINAL_FILE)).unwrap();
        let err = convert_original_checkpoint(dir.path(), &out).unwrap_err();
        assert!(err.to_string().contains("refused global 'os.system'"), "{err}");
        assert!(!out.join(CONVERTED_FILE).exists());
    }
}

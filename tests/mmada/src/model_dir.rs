//! A model directory in the real layout made from a fixture set: its
//! config and weights under the names a checkpoint uses (model.safetensors,
//! magvit_config.json, magvit.safetensors), and a tokenizer.json built from
//! the stub tokenizer the reference ran with (expected.json: its word map,
//! its special ids, its length), since the fixture has no tokenizer.
//!
//! The tokenizer is a word-level one: text splits on spaces, a newline is a
//! token of its own, the special tokens (begin and end of text, the chat
//! headers, the mask and the reserved image-layout tokens) are added
//! tokens, and encoding adds BOS as LLaDA's tokenizer does. Every id below
//! the stub's length exists, so the tokenizer's length is the stub's.

use crate::Fixture;
use serde_json::{json, Map, Value};
use std::path::Path;
use tessera_parity::fixtures::{err, Res};

/// Names of the special ids of expected.json's `ids`.
const SPECIAL_NAMES: [(&str, &str); 6] = [
    ("bos", "<|startoftext|>"),
    ("eos", "<|endoftext|>"),
    ("mask", "<|mdm_mask|>"),
    ("start_header", "<|start_header_id|>"),
    ("end_header", "<|end_header_id|>"),
    ("eot", "<|eot_id|>"),
];

/// The stub's words: expected.json writes the newline as `\n` spelled out.
pub fn words(fx: &Fixture) -> Res<Vec<(String, u32)>> {
    let map = fx.json["words"].as_object().ok_or("expected.json has no 'words' map")?;
    map.iter()
        .map(|(w, id)| {
            let id = id.as_u64().ok_or_else(|| format!("word '{w}' has no id"))? as u32;
            Ok((if w == "\\n" { "\n".to_string() } else { w.clone() }, id))
        })
        .collect()
}

/// An id of expected.json's `ids`.
pub fn special_id(fx: &Fixture, key: &str) -> Res<u32> {
    fx.json["ids"][key].as_u64().map(|v| v as u32).ok_or_else(|| format!("expected.json has no ids.{key}"))
}

/// The text whose word ids are `ids` (words joined by spaces).
pub fn text_of(fx: &Fixture, ids: &[u32]) -> Res<String> {
    let words = words(fx)?;
    let word = |id: u32| words.iter().find(|(_, i)| *i == id).map(|(w, _)| w.clone()).ok_or_else(|| format!("id {id} is no stub word"));
    Ok(ids.iter().map(|&id| word(id)).collect::<Res<Vec<_>>>()?.join(" "))
}

/// The user's words of a chat-shaped prompt: the ids after the first
/// header's newline up to `<|eot_id|>`, as text.
pub fn user_text(fx: &Fixture, prompt: &[u32]) -> Res<String> {
    let (end_header, eot) = (special_id(fx, "end_header")?, special_id(fx, "eot")?);
    let start = prompt.iter().position(|&t| t == end_header).ok_or("the prompt has no chat header")? + 2;
    let end = prompt.iter().position(|&t| t == eot).ok_or("the prompt has no <|eot_id|>")?;
    text_of(fx, &prompt[start..end])
}

/// tokenizer.json of the stub tokenizer.
pub fn tokenizer_json(fx: &Fixture) -> Res<Value> {
    let length = special_id(fx, "image_token_offset")? as usize;
    let mut names: Vec<Option<String>> = vec![None; length];
    let mut added = Vec::new();
    let mut special = |name: &str, id: u32, names: &mut Vec<Option<String>>| -> Res<()> {
        let slot = names.get_mut(id as usize).ok_or_else(|| format!("special id {id} is beyond the stub's {length} tokens"))?;
        *slot = Some(name.to_string());
        added.push(json!({"id": id, "content": name, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}));
        Ok(())
    };
    for (key, name) in SPECIAL_NAMES {
        special(name, special_id(fx, key)?, &mut names)?;
    }
    let reserved = fx.json["ids"]["reserved"].as_object().ok_or("expected.json has no ids.reserved")?;
    for (name, id) in reserved {
        special(name, id.as_u64().ok_or("a reserved id")? as u32, &mut names)?;
    }
    for (word, id) in words(fx)? {
        let slot = names.get_mut(id as usize).ok_or_else(|| format!("word id {id} is beyond the stub's {length} tokens"))?;
        *slot = Some(word);
    }
    let vocab: Map<String, Value> =
        names.into_iter().enumerate().map(|(id, name)| (name.unwrap_or_else(|| format!("<unused_{id}>")), json!(id))).collect();
    let bos = SPECIAL_NAMES[0].1;
    let bos_id = special_id(fx, "bos")?;
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "[^\\S\n]+"}, "behavior": "Removed", "invert": false},
            {"type": "Split", "pattern": {"String": "\n"}, "behavior": "Isolated", "invert": false}
        ]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unused_0>"}
    }))
}

/// Writes the model directory of fixture `fx` to `dir`: config.json,
/// model.safetensors, tokenizer.json, tokenizer_config.json, and MAGVIT-v2
/// beside them when `with_magvit`.
pub fn write_model_dir(fx: &Fixture, dir: &Path, with_magvit: bool) -> Res<()> {
    let copy = |from: &str, to: &str| {
        std::fs::copy(fx.dir.join(from), dir.join(to)).map(|_| ()).map_err(|e| format!("copying {from} to {}: {e}", dir.display()))
    };
    copy("config.json", "config.json")?;
    copy("weights.safetensors", "model.safetensors")?;
    if with_magvit {
        copy("magvit_config.json", "magvit_config.json")?;
        copy("magvit.safetensors", "magvit.safetensors")?;
    }
    let write = |name: &str, v: &Value| std::fs::write(dir.join(name), v.to_string()).map_err(err);
    write("tokenizer.json", &tokenizer_json(fx)?)?;
    write(
        "tokenizer_config.json",
        &json!({
            "bos_token": SPECIAL_NAMES[0].1,
            "eos_token": SPECIAL_NAMES[1].1,
            "pad_token": SPECIAL_NAMES[1].1,
            "model_max_length": 1_000_000_000_000_000_000u64,
            "tokenizer_class": "PreTrainedTokenizerFast"
        }),
    )
}

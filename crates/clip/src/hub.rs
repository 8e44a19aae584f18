//! Where a checkpoint is: a local directory, or (with the `hub` feature) a
//! Hugging Face hub id fetched into hf-hub's cache (`$HF_HOME/hub`, by default
//! `~/.cache/huggingface/hub`), where files already present are used without
//! a network request.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The files a CLIP checkpoint directory holds.
pub const CONFIG_FILE: &str = "config.json";
/// The image processor's settings (optional).
pub const PREPROCESSOR_FILE: &str = "preprocessor_config.json";

/// The checkpoint directory for `model`: `model` itself when it is a
/// directory, else the hub snapshot holding its files (downloaded if they
/// are not cached). `progress` shows download progress bars on stderr.
pub fn resolve(model: &str, progress: bool) -> Result<PathBuf> {
    let path = Path::new(model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if path.exists() {
        return Err(Error::Hub(format!(
            "'{model}' is a file; a CLIP checkpoint is a directory holding config.json, model.safetensors and tokenizer.json"
        )));
    }
    fetch(model, progress)
}

#[cfg(not(feature = "hub"))]
fn fetch(model: &str, _progress: bool) -> Result<PathBuf> {
    Err(Error::Hub(format!(
        "'{model}' is not a local directory, and this build cannot download from the Hugging Face hub (cargo feature `hub`): \
         pass the path of a checkpoint directory (config.json, model.safetensors, tokenizer.json) instead"
    )))
}

#[cfg(feature = "hub")]
fn fetch(model: &str, progress: bool) -> Result<PathBuf> {
    use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
    use hf_hub::{Cache, Repo, RepoType};

    let (id, revision) = match model.split_once('@') {
        Some((id, rev)) => (id, rev.to_string()),
        None => (model, "main".to_string()),
    };
    if id.is_empty() || id.starts_with('/') || id.starts_with('.') || id.split('/').count() > 2 {
        return Err(Error::Hub(format!("'{model}' is neither a local directory nor a hub id such as openai/clip-vit-base-patch32")));
    }
    let repo = Repo::with_revision(id.to_string(), RepoType::Model, revision);
    let cache = Cache::from_env();
    let cached = cache.repo(repo.clone());
    let unreachable = |file: &str, e: &ApiError| {
        Error::Hub(format!(
            "could not fetch {file} of '{model}' from the Hugging Face hub ({e}); \
             if this machine is offline, pass the path of a local checkpoint directory \
             (config.json, model.safetensors, tokenizer.json) instead"
        ))
    };
    let api = ApiBuilder::from_env().with_progress(progress).build().map_err(|e| unreachable(CONFIG_FILE, &e))?;
    let remote: ApiRepo = api.repo(repo);
    let is_missing = |e: &ApiError| matches!(e, ApiError::RequestError(r) if matches!(**r, ureq::Error::Status(404, _)));
    // Cached files first; the hub only for what the cache lacks.
    let get = |file: &str| -> Result<PathBuf> { cached.get(file).map_or_else(|| remote.get(file).map_err(|e| unreachable(file, &e)), Ok) };
    let get_optional = |file: &str| -> Result<Option<PathBuf>> {
        match cached.get(file) {
            Some(p) => Ok(Some(p)),
            None => match remote.get(file) {
                Ok(p) => Ok(Some(p)),
                Err(e) if is_missing(&e) => Ok(None),
                Err(e) => Err(unreachable(file, &e)),
            },
        }
    };

    let config = get(CONFIG_FILE)?;
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut files = vec![get_optional(PREPROCESSOR_FILE)?, get_optional("tokenizer_config.json")?];
    match get_optional("tokenizer.json")? {
        Some(p) => files.push(Some(p)),
        None => files.extend([Some(get("vocab.json")?), Some(get("merges.txt")?)]),
    }
    match get_optional("model.safetensors")? {
        Some(p) => files.push(Some(p)),
        None => {
            let index = get("model.safetensors.index.json")?;
            for shard in shard_names(&index)? {
                files.push(Some(get(&shard)?));
            }
            files.push(Some(index));
        }
    }
    for f in files.into_iter().flatten() {
        if f.parent() != Some(dir.as_path()) {
            return Err(Error::Hub(format!(
                "the hub cache holds '{model}' files from different revisions ({} and {}); remove the cached repository and retry",
                config.display(),
                f.display()
            )));
        }
    }
    Ok(dir)
}

/// The shard files a sharded checkpoint's index names.
#[cfg(feature = "hub")]
fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let file = index.display().to_string();
    let root: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::config(&file, format!("not valid JSON: {e}")))?;
    let map = root.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| Error::config(&file, "no 'weight_map' object"))?;
    let mut shards: Vec<String> = map.values().filter_map(|v| v.as_str().map(str::to_string)).collect();
    shards.sort();
    shards.dedup();
    Ok(shards)
}

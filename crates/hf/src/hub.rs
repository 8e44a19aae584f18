//! Where a checkpoint is: a local directory, or (with the `hub` feature) a
//! Hugging Face hub id, optionally `id@revision`, fetched into hf-hub's cache
//! (`$HF_HOME/hub`, by default `~/.cache/huggingface/hub`), where files
//! already present are used without a network request.
//!
//! A model crate says which files its checkpoints hold as a list of
//! [`HubFile`]s; [`TRANSFORMERS_CHECKPOINT`] is the usual set.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A checkpoint's config.json.
pub const CONFIG_FILE: &str = "config.json";
/// The image processor's settings as transformers 4.x writes them.
pub const PREPROCESSOR_FILE: &str = "preprocessor_config.json";
/// The processor's settings as transformers 5.x writes them (the image
/// processor under `"image_processor"`).
pub const PROCESSOR_FILE: &str = "processor_config.json";

/// A file (or a choice of files) that a checkpoint directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HubFile {
    /// This file must be there.
    Required(&'static str),
    /// The first of these files that the repository holds, if any.
    Optional(&'static [&'static str]),
    /// The first file if the repository holds it, else every one of the
    /// others (tokenizer.json, else vocab.json + merges.txt).
    Either(&'static str, &'static [&'static str]),
    /// model.safetensors, else model.safetensors.index.json and every shard
    /// it names.
    Safetensors,
}

/// A transformers checkpoint: config.json, an optional processor config in
/// either layout, tokenizer files, and the weights.
pub const TRANSFORMERS_CHECKPOINT: &[HubFile] = &[
    HubFile::Required(CONFIG_FILE),
    HubFile::Optional(&[PREPROCESSOR_FILE, PROCESSOR_FILE]),
    HubFile::Optional(&["tokenizer_config.json"]),
    HubFile::Either("tokenizer.json", &["vocab.json", "merges.txt"]),
    HubFile::Safetensors,
];

/// The files of `files` a user should put in a local directory, for messages.
fn describe(files: &[HubFile]) -> String {
    let names: Vec<&str> = files
        .iter()
        .filter_map(|f| match f {
            HubFile::Required(n) | HubFile::Either(n, _) => Some(*n),
            HubFile::Safetensors => Some("model.safetensors"),
            HubFile::Optional(_) => None,
        })
        .collect();
    names.join(", ")
}

/// The checkpoint directory for `model`: `model` itself when it is a
/// directory, else the hub snapshot holding `files` (downloaded if they are
/// not cached). `progress` shows download progress bars on stderr.
pub fn resolve(model: &str, files: &[HubFile], progress: bool) -> Result<PathBuf> {
    let path = Path::new(model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if path.exists() {
        return Err(Error::Hub(format!("'{model}' is a file; a checkpoint is a directory holding {}", describe(files))));
    }
    fetch(model, files, progress)
}

#[cfg(not(feature = "hub"))]
fn fetch(model: &str, files: &[HubFile], _progress: bool) -> Result<PathBuf> {
    Err(Error::Hub(format!(
        "'{model}' is not a local directory, and this build cannot download from the Hugging Face hub (cargo feature `hub`): \
         pass the path of a checkpoint directory ({}) instead",
        describe(files)
    )))
}

#[cfg(feature = "hub")]
fn fetch(model: &str, files: &[HubFile], progress: bool) -> Result<PathBuf> {
    use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
    use hf_hub::{Cache, Repo, RepoType};

    let (id, revision) = match model.split_once('@') {
        Some((id, rev)) => (id, rev.to_string()),
        None => (model, "main".to_string()),
    };
    if id.is_empty() || id.starts_with('/') || id.starts_with('.') || id.split('/').count() > 2 {
        return Err(Error::Hub(format!("'{model}' is neither a local directory nor a hub id such as owner/name")));
    }
    let repo = Repo::with_revision(id.to_string(), RepoType::Model, revision);
    let cached = Cache::from_env().repo(repo.clone());
    let unreachable = |file: &str, e: &ApiError| {
        Error::Hub(format!(
            "could not fetch {file} of '{model}' from the Hugging Face hub ({e}); \
             if this machine is offline, pass the path of a local checkpoint directory ({}) instead",
            describe(files)
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

    let mut got = Vec::new();
    for want in files {
        match *want {
            HubFile::Required(name) => got.push(get(name)?),
            HubFile::Optional(names) => {
                // A cached choice wins without asking the hub for the others.
                match names.iter().find_map(|n| cached.get(n)) {
                    Some(p) => got.push(p),
                    None => {
                        for name in names {
                            if let Some(p) = get_optional(name)? {
                                got.push(p);
                                break;
                            }
                        }
                    }
                }
            }
            HubFile::Either(first, others) => match get_optional(first)? {
                Some(p) => got.push(p),
                None => {
                    for name in others {
                        got.push(get(name)?);
                    }
                }
            },
            HubFile::Safetensors => match get_optional("model.safetensors")? {
                Some(p) => got.push(p),
                None => {
                    let index = get("model.safetensors.index.json")?;
                    for shard in shard_names(&index)? {
                        got.push(get(&shard)?);
                    }
                    got.push(index);
                }
            },
        }
    }
    let Some(first) = got.first().cloned() else {
        return Err(Error::invalid("hub", "no checkpoint files were asked for"));
    };
    let dir = first.parent().map(Path::to_path_buf).unwrap_or_default();
    for f in &got {
        if f.parent() != Some(dir.as_path()) {
            return Err(Error::Hub(format!(
                "the hub cache holds '{model}' files from different revisions ({} and {}); remove the cached repository and retry",
                first.display(),
                f.display()
            )));
        }
    }
    Ok(dir)
}

/// The shard files a sharded checkpoint's index names.
#[cfg(feature = "hub")]
fn shard_names(index: &Path) -> Result<Vec<String>> {
    let (root, file) = crate::config::read_object(index)?;
    let map = root.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| Error::config(&file, "no 'weight_map' object"))?;
    let mut shards: Vec<String> = map.values().filter_map(|v| v.as_str().map(str::to_string)).collect();
    shards.sort();
    shards.dedup();
    Ok(shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_directories_resolve_and_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve(dir.path().to_str().unwrap(), TRANSFORMERS_CHECKPOINT, false).unwrap(), dir.path());
        let file = dir.path().join("config.json");
        std::fs::write(&file, "{}").unwrap();
        let e = resolve(file.to_str().unwrap(), TRANSFORMERS_CHECKPOINT, false).unwrap_err().to_string();
        assert!(e.contains("is a file") && e.contains("config.json, tokenizer.json, model.safetensors"), "{e}");
    }
}

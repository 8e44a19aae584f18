//! A model's committed fixture directory, as every generator writes it:
//!
//! ```text
//! cases.json                 inputs and recorded ids, per model under "models"
//! images/                    the input images ("images" of cases.json)
//! tokenizer/                 tokenizer files shared by the models (optional)
//! <model>/tensors.json       {"tensors": [[name, shape], ...]}: the checkpoint
//! <model>/expected.safetensors
//! <model>/*.json ...         config.json and the other checkpoint files
//! ```
//!
//! and the checks every suite makes of outputs against it.

use crate::{compare_rows, seeded_values, write_safetensors};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tessera_tensor::safetensors::SafeTensorsFile;
use tessera_tensor::{DType, Device};

/// Fixture errors: a message naming the file or entry.
pub type Res<T> = Result<T, String>;

/// Any error as a message.
pub fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Files of a model directory that are not part of its checkpoint.
const NOT_CHECKPOINT: [&str; 2] = ["tensors.json", "expected.safetensors"];

/// The tensors of a tensors.json file, `(name, shape)`.
pub fn read_tensor_list(path: &Path) -> Res<Vec<(String, Vec<usize>)>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let list = v["tensors"].as_array().ok_or_else(|| format!("{} has no tensors", path.display()))?;
    list.iter()
        .map(|t| {
            let name = t[0].as_str().ok_or("bad tensor name")?.to_string();
            let shape = t[1]
                .as_array()
                .ok_or("bad shape")?
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize).ok_or("bad dimension"))
                .collect::<Result<_, _>>()?;
            Ok((name, shape))
        })
        .collect()
}

/// A list of ids.
pub fn ids(v: &Value) -> Res<Vec<u32>> {
    v.as_array().ok_or("expected a list of ids")?.iter().map(|x| x.as_u64().map(|x| x as u32).ok_or_else(|| "bad id".to_string())).collect()
}

/// A committed fixture directory.
pub struct FixtureSet {
    dir: PathBuf,
    cases: Value,
}

impl FixtureSet {
    /// Opens `dir`/cases.json.
    pub fn open(dir: PathBuf) -> Res<FixtureSet> {
        let path = dir.join("cases.json");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(FixtureSet { cases: serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?, dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// cases.json.
    pub fn cases(&self) -> &Value {
        &self.cases
    }

    /// cases.json's entry for `model`.
    pub fn model(&self, model: &str) -> &Value {
        &self.cases["models"][model]
    }

    /// The model configurations recorded.
    pub fn models(&self) -> Vec<String> {
        self.cases["models"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// The image files.
    pub fn image_paths(&self) -> Res<Vec<PathBuf>> {
        let list = self.cases["images"].as_array().ok_or("cases.json has no images")?;
        list.iter().map(|v| v.as_str().map(|p| self.dir.join(p)).ok_or_else(|| "bad image entry".to_string())).collect()
    }

    /// The expected outputs of `model`.
    pub fn expected(&self, model: &str) -> Res<SafeTensorsFile> {
        SafeTensorsFile::open(self.dir.join(model).join("expected.safetensors")).map_err(err)
    }

    /// The checkpoint's tensors `(name, shape)` (tensors.json).
    pub fn tensor_list(&self, model: &str) -> Res<Vec<(String, Vec<usize>)>> {
        read_tensor_list(&self.dir.join(model).join("tensors.json"))
    }

    /// Writes `model`'s checkpoint directory: model.safetensors of seeded
    /// weights, every other file of the model's directory, and the shared
    /// tokenizer files it does not have itself.
    pub fn write_checkpoint(&self, model: &str, dst: &Path) -> Res<()> {
        self.write_edited_checkpoint(model, dst, |_| {})
    }

    /// [`write_checkpoint`](Self::write_checkpoint) after `edit` changed the
    /// tensor list (a tensor dropped or reshaped, for the bad-input tests).
    pub fn write_edited_checkpoint(&self, model: &str, dst: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>)>)) -> Res<()> {
        let mut tensors = self.tensor_list(model)?;
        edit(&mut tensors);
        write_safetensors(&dst.join("model.safetensors"), &tensors, seeded_values).map_err(err)?;
        copy_files(&self.dir.join(model), dst, &NOT_CHECKPOINT)?;
        let shared = self.dir.join("tokenizer");
        if shared.is_dir() {
            copy_files(&shared, dst, &[])?;
        }
        Ok(())
    }
}

/// Copies the plain files of `from` (but `skip`, and those `to` already
/// holds) into `to`.
fn copy_files(from: &Path, to: &Path, skip: &[&str]) -> Res<()> {
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let path = entry.map_err(err)?.path();
        let Some(name) = path.file_name() else { continue };
        if !path.is_file() || skip.iter().any(|s| name == *s) || to.join(name).exists() {
            continue;
        }
        std::fs::copy(&path, to.join(name)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The f32 values of expected tensor `name`.
pub fn expected_values(file: &SafeTensorsFile, name: &str) -> Res<Vec<f32>> {
    file.load(name, &Device::cpu()).map_err(|e| format!("{name}: {e}"))?.to_f32_vec().map_err(err)
}

/// Tolerances of a comparison: max abs difference in f32, least cosine per
/// row in half precision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub f32_max_abs: f64,
    pub half_min_cosine: f64,
}

/// Values compared as the dtype requires: max abs in f32, cosine per row of
/// `d` in half precision.
pub fn judge(got: &[f32], expected: &[f32], d: usize, dtype: DType, tol: Tolerance) -> (bool, String) {
    if got.len() != expected.len() {
        return (false, format!("{} values, expected {}", got.len(), expected.len()));
    }
    if got.iter().any(|v| !v.is_finite()) {
        return (false, "non-finite values".into());
    }
    let (max_abs, min_cos) = compare_rows(got, expected, d);
    let passed = if dtype == DType::F32 { max_abs <= tol.f32_max_abs } else { min_cos > tol.half_min_cosine };
    (passed, format!("max |diff| {max_abs:.2e}, min cosine {min_cos:.6}"))
}

/// Folds per-item outcomes into one check outcome.
pub fn all(items: Vec<Res<(bool, String)>>) -> Res<(bool, String)> {
    let mut passed = true;
    let mut details = Vec::new();
    for item in items {
        let (ok, detail) = item?;
        passed &= ok;
        details.push(detail);
    }
    Ok((passed, details.join("; ")))
}

/// Whether `path` is a JPEG by its extension.
pub fn is_jpeg(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
}

/// Largest mean abs difference allowed for the normalised pixel values of a
/// JPEG (decoders differ by a level in places); the max is reported beside.
pub const PIXEL_MEAN_TOL: f64 = 1.0 / 255.0;
/// Max abs difference allowed for the normalised pixel values of a
/// losslessly stored image, where Pillow's resampling is reproduced exactly.
pub const PIXEL_EXACT_TOL: f64 = 1e-5;

/// Pixel values against the reference's: a JPEG within [`PIXEL_MEAN_TOL`]
/// on average, any other image within [`PIXEL_EXACT_TOL`] everywhere.
pub fn judge_pixels(got: &[f32], want: &[f32], jpeg: bool, i: usize) -> (bool, String) {
    if got.len() != want.len() {
        return (false, format!("image {i}: {} values, expected {}", got.len(), want.len()));
    }
    let (max_abs, _) = compare_rows(got, want, got.len());
    let mean_abs = got.iter().zip(want).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>() / got.len().max(1) as f64;
    let passed = if jpeg { mean_abs <= PIXEL_MEAN_TOL } else { max_abs <= PIXEL_EXACT_TOL };
    (passed, format!("image {i}: max |diff| {max_abs:.1e}, mean {mean_abs:.1e}"))
}

/// A name filter from a comma-separated list of words (`None`: all).
pub fn name_filter(filter: Option<&str>) -> impl Fn(&str) -> bool + '_ {
    move |name: &str| filter.is_none_or(|f| f.split(',').any(|w| name.contains(w.trim())))
}

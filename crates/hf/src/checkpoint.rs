//! A config checked against its checkpoint before any weight is loaded, and
//! the report of the checkpoint tensors a model left unused.
//!
//! A config that disagrees with the weights (fewer layers than the
//! checkpoint holds, a width its tensors do not have) would otherwise load
//! silently and compute wrong numbers, or, with absurd sizes, try to build
//! layers the file never had. [`ConfigCheck`] compares the sizes a config
//! claims with the tensor names and shapes of the checkpoint's header (no
//! tensor is read), and reports every disagreement in one
//! [`Error::Config`] naming the fields and the checkpoint.

use crate::error::{Error, Result};
use std::collections::BTreeSet;
use tessera_nn::TensorSource;

/// Compares config fields with a checkpoint's tensor names and shapes.
pub struct ConfigCheck<'a> {
    source: &'a dyn TensorSource,
    names: Vec<String>,
    config_file: &'a str,
    problems: Vec<String>,
}

impl<'a> ConfigCheck<'a> {
    /// A check of the config read from `config_file` against `source`.
    pub fn new(source: &'a dyn TensorSource, config_file: &'a str) -> Self {
        ConfigCheck { source, names: source.names(), config_file, problems: Vec::new() }
    }

    /// The number of layers the checkpoint holds under `prefix`: one more
    /// than the largest `N` of the tensors named `{prefix}.N.*` (0 when there
    /// are none).
    pub fn layer_count(&self, prefix: &str) -> usize {
        self.layer_indices(prefix).last().map_or(0, |&i| i + 1)
    }

    fn layer_indices(&self, prefix: &str) -> BTreeSet<usize> {
        let prefix = format!("{prefix}.");
        self.names
            .iter()
            .filter_map(|n| n.strip_prefix(prefix.as_str()))
            .filter_map(|rest| rest.split('.').next()?.parse::<usize>().ok())
            .collect()
    }

    /// Requires field `field` (value `configured`) to equal the number of
    /// layers `{prefix}.N` of the checkpoint, numbered from 0 without gaps.
    pub fn layers(&mut self, field: &str, configured: usize, prefix: &str) {
        let indices = self.layer_indices(prefix);
        let held = indices.last().map_or(0, |&i| i + 1);
        if held != configured {
            self.problems.push(format!("field '{field}' is {configured} but the checkpoint holds {held} layers under '{prefix}'"));
        } else if indices.len() != held {
            let gap = (0..held).find(|i| !indices.contains(i)).unwrap_or(0);
            self.problems.push(format!("the checkpoint's layers under '{prefix}' skip layer {gap} (field '{field}' is {configured})"));
        }
    }

    /// Requires dimension `axis` of tensor `tensor` to be `configured`, the
    /// value of field `field`. A tensor the checkpoint lacks is left to the
    /// loader, which names every missing tensor.
    pub fn dim(&mut self, field: &str, configured: usize, tensor: &str, axis: usize) {
        self.dim_implied(field, configured, configured, tensor, axis);
    }

    /// Requires dimension `axis` of `tensor` to be `implied`, the size that
    /// field `field` (value `configured`) implies (such as the positions an
    /// image size gives).
    pub fn dim_implied(&mut self, field: &str, configured: usize, implied: usize, tensor: &str, axis: usize) {
        let Some((_, shape)) = self.source.info(tensor) else { return };
        let held = shape.get(axis).copied();
        if held == Some(implied) {
            return;
        }
        let held = held.map_or_else(|| format!("shape {shape:?}, which has no dimension {axis}"), |d| format!("{d}"));
        let claim = if configured == implied { format!("is {configured}") } else { format!("is {configured}, which needs {implied}") };
        self.problems.push(format!("field '{field}' {claim} but dimension {axis} of tensor '{tensor}' is {held}"));
    }

    /// `Ok` when everything agreed, else one [`Error::Config`] about the
    /// config file that names the checkpoint and every disagreement.
    pub fn finish(self) -> Result<()> {
        if self.problems.is_empty() {
            return Ok(());
        }
        let msg = format!("disagrees with {}: {}", self.source.describe(), self.problems.join("; "));
        Err(Error::config(self.config_file, msg))
    }
}

/// The checkpoint tensors a model did not use, for a warning (as
/// transformers gives) or, in strict loading, an error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnusedTensors {
    /// What the tensors came from (`checkpoint path`).
    pub source_name: String,
    /// Their full names, sorted.
    pub names: Vec<String>,
}

/// Names spelled out by [`UnusedTensors::summary`] before the rest are counted.
const LISTED: usize = 5;

impl UnusedTensors {
    /// The tensors in `names` that are not matched by `ignored` (suffixes of
    /// buffers a checkpoint may carry that the model recomputes, such as
    /// `.position_ids`).
    pub fn new(source_name: String, names: Vec<String>, ignored: &[&str]) -> Self {
        let names = names.into_iter().filter(|n| !ignored.iter().any(|s| n.ends_with(s))).collect();
        UnusedTensors { source_name, names }
    }

    /// Whether every tensor was used.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// One line: `3 tensors of checkpoint X were not used: a, b, c`, the
    /// first few names and a count of the rest.
    pub fn summary(&self) -> String {
        let n = self.names.len();
        let mut listed = self.names.iter().take(LISTED).map(String::as_str).collect::<Vec<_>>().join(", ");
        if n > LISTED {
            listed.push_str(&format!(" and {} more", n - LISTED));
        }
        format!(
            "{n} tensor{} of {} {} not used: {listed}",
            if n == 1 { "" } else { "s" },
            self.source_name,
            if n == 1 { "was" } else { "were" }
        )
    }

    /// `Ok` when every tensor was used, else an error with the
    /// [`summary`](Self::summary) (strict loading).
    pub fn into_result(self) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        Err(Error::Unused(self.summary()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tessera_tensor::{DType, Device, Tensor};

    fn source(entries: &[(&str, &[usize])]) -> BTreeMap<String, Tensor> {
        let dev = Device::cpu();
        entries.iter().map(|(n, s)| (n.to_string(), Tensor::zeros(s.to_vec(), DType::F32, &dev).unwrap())).collect()
    }

    #[test]
    fn layers_and_dims_are_checked_and_reported_together() {
        let src = source(&[("enc.layers.0.w", &[8, 4]), ("enc.layers.1.w", &[8, 4]), ("emb", &[10, 4]), ("other.3.x", &[1])]);
        let mut ok = ConfigCheck::new(&src, "config.json");
        assert_eq!(ok.layer_count("enc.layers"), 2);
        ok.layers("num_hidden_layers", 2, "enc.layers");
        ok.dim("hidden_size", 4, "emb", 1);
        ok.dim("vocab_size", 10, "emb", 0);
        ok.dim("absent", 99, "no.such.tensor", 0);
        ok.finish().unwrap();

        let mut bad = ConfigCheck::new(&src, "config.json");
        bad.layers("num_hidden_layers", 1, "enc.layers");
        bad.dim("hidden_size", 5, "emb", 1);
        bad.dim_implied("image_size", 224, 50, "emb", 0);
        bad.dim("rank", 3, "emb", 2);
        let e = bad.finish().unwrap_err().to_string();
        assert!(e.starts_with("config config.json: disagrees with in-memory tensors: "), "{e}");
        for part in [
            "field 'num_hidden_layers' is 1 but the checkpoint holds 2 layers under 'enc.layers'",
            "field 'hidden_size' is 5 but dimension 1 of tensor 'emb' is 4",
            "field 'image_size' is 224, which needs 50 but dimension 0 of tensor 'emb' is 10",
            "which has no dimension 2",
        ] {
            assert!(e.contains(part), "{e}\nmissing: {part}");
        }
        assert!(!e.contains('\n'));
    }

    #[test]
    fn a_gap_in_the_layer_numbers_is_reported() {
        let src = source(&[("l.0.w", &[1]), ("l.2.w", &[1])]);
        let mut c = ConfigCheck::new(&src, "c");
        c.layers("n", 3, "l");
        assert!(c.finish().unwrap_err().to_string().contains("skip layer 1"));
    }

    #[test]
    fn unused_tensors_summarise_in_one_line() {
        let names: Vec<String> = (0..8).map(|i| format!("t.{i}")).chain(["x.position_ids".to_string()]).collect();
        let u = UnusedTensors::new("checkpoint m.safetensors".into(), names, &[".position_ids"]);
        assert_eq!(u.summary(), "8 tensors of checkpoint m.safetensors were not used: t.0, t.1, t.2, t.3, t.4 and 3 more");
        assert!(u.into_result().unwrap_err().to_string().contains("8 tensors"));
        assert!(UnusedTensors::new("c".into(), vec!["a.position_ids".into()], &[".position_ids"]).into_result().is_ok());
    }
}

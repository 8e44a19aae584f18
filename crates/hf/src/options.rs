//! How a model checkpoint is loaded: the options every model pipeline
//! takes.

use crate::{Error, Result};
use tessera_tensor::safetensors::ReadMode;
use tessera_tensor::{DType, Device};

/// Where a checkpoint's model runs and how its files are read.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The device the model runs on.
    pub device: Device,
    /// The dtype weights are cast to and computed in: f32, f16 or bf16.
    pub dtype: DType,
    /// Show hf-hub's download progress bars (hub ids only).
    pub download_progress: bool,
    /// Whether checkpoint files are memory-mapped or read into memory.
    pub read_mode: ReadMode,
    /// Refuse a checkpoint holding tensors the model does not use.
    pub strict: bool,
}

impl Default for LoadOptions {
    /// The CPU, f32, no download bars, files opened as
    /// [`ReadMode::from_env`] says, unused tensors allowed.
    fn default() -> Self {
        LoadOptions { device: Device::cpu(), dtype: DType::F32, download_progress: false, read_mode: ReadMode::from_env(), strict: false }
    }
}

impl LoadOptions {
    /// Checks that the dtype is one a model computes in (f32, f16, bf16);
    /// `model` names the model in the error.
    pub fn check_float_dtype(&self, model: &'static str) -> Result<()> {
        match self.dtype {
            DType::F32 | DType::F16 | DType::BF16 => Ok(()),
            other => Err(Error::invalid(model, format!("dtype {other} is not supported: use f32, f16 or bf16"))),
        }
    }
}

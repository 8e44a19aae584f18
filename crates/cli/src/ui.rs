//! What the model commands share: string errors, progress bars on stderr.

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tessera_tensor::safetensors::ReadMode;
use tessera_tensor::{DType, Device};

/// A command's result; the error is printed as it is.
pub type Res<T> = Result<T, String>;

/// Any error as its message.
pub fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn bar(message: &str) -> ProgressBar {
    let bar = ProgressBar::new(0).with_message(message.to_string());
    bar.set_style(
        ProgressStyle::with_template("{msg:<18} [{bar:32}] {pos}/{len} {elapsed}").expect("valid template").progress_chars("=> "),
    );
    bar
}

/// A callback that moves `bar` to (done, total).
pub fn advance(bar: &ProgressBar) -> impl FnMut(usize, usize) + '_ {
    move |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}

/// How a model checkpoint is loaded (the flags every model command takes).
#[derive(Args)]
pub struct LoadArgs {
    /// Device: cpu, or KIND[:INDEX] of a compiled-in GPU backend.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Weights and compute dtype: f32, f16 or bf16 (BLIP-2's Q-Former stays in f32).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Refuse a checkpoint holding tensors the model does not use.
    #[arg(long)]
    pub strict: bool,
    /// Read checkpoint files into memory instead of memory-mapping them; the same as TESSERA_MMAP=0.
    #[arg(long)]
    pub no_mmap: bool,
}

impl LoadArgs {
    /// The device, dtype and read mode the flags name.
    pub fn parts(&self) -> Res<(Device, DType, ReadMode)> {
        let device = Device::parse(&self.device).map_err(err)?;
        let dtype: DType = self.dtype.parse().map_err(err)?;
        let read_mode = if self.no_mmap { ReadMode::Read } else { ReadMode::from_env() };
        Ok((device, dtype, read_mode))
    }
}

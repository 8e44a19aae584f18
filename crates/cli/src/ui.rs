//! What the model commands share: string errors, progress bars on stderr.

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tessera_hf::LoadOptions;
use tessera_nn::generation::GenerationConfig;
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

    /// The pipelines' load options (hub downloads show progress).
    pub fn options(&self) -> Res<LoadOptions> {
        let (device, dtype, read_mode) = self.parts()?;
        Ok(LoadOptions { device, dtype, download_progress: true, read_mode, strict: self.strict })
    }
}

/// The sampling flags of the text-generating commands.
#[derive(Args)]
pub struct SamplingArgs {
    /// Most tokens to generate (default: generation_config.json's; without it 20 for BLIP-2, 512 for Janus-Pro).
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Sample instead of taking the most likely token.
    #[arg(long)]
    pub sample: bool,
    /// Sampling temperature.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Keep the smallest set of tokens whose probability reaches P.
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Keep the K most likely tokens (0: off).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Seed of the sampler.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// `g` with the flags given applied.
    pub fn apply(&self, g: &mut GenerationConfig) {
        if let Some(n) = self.max_new_tokens {
            g.set_max_new_tokens(n);
        }
        if self.sample {
            g.do_sample = true;
        }
        if let Some(t) = self.temperature {
            g.temperature = t;
        }
        if let Some(p) = self.top_p {
            g.top_p = Some(p);
        }
        if let Some(k) = self.top_k {
            g.top_k = Some(k);
        }
        if let Some(s) = self.seed {
            g.seed = s;
        }
    }
}

/// Writes `images` as `out/PREFIX_K.png` and prints their paths, or with
/// `json` one object `{"images": [{"path", "image_token_ids"}]}` listing
/// each with its tokens.
pub fn write_images(out: &std::path::Path, prefix: &str, grids: &[Vec<u32>], images: &[tessera_vision::RgbImage], json: bool) -> Res<()> {
    let mut listed = Vec::with_capacity(images.len());
    for (k, (grid, image)) in grids.iter().zip(images).enumerate() {
        let path = out.join(format!("{prefix}_{k}.png"));
        image.save(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if !json {
            println!("{}", path.display());
        }
        listed.push(serde_json::json!({"path": path.display().to_string(), "image_token_ids": grid}));
    }
    if json {
        println!("{}", serde_json::json!({ "images": listed }));
    }
    Ok(())
}

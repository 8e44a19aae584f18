//! `tessera`: device info and kernel benchmarks.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use tessera_cli::bench::{failure_json, format_table, result_json, run_case, suite_cases, BenchOptions, Size, Suite};
use tessera_cli::roofline;
use tessera_tensor::Device;

#[derive(Parser)]
#[command(name = "tessera", version, about = "Tessera: a tensor engine with hand-written kernels")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum SizeArg {
    Small,
    Full,
}

#[derive(Clone, Copy, ValueEnum)]
enum SuiteArg {
    /// One case per core op.
    Core,
    /// GEMM, GEMV and attention on the shapes benches/compare_cpu.py compares with numpy and PyTorch.
    Peers,
}

#[derive(Subcommand)]
enum Command {
    /// List the devices found and their properties.
    Info,
    /// Time the core ops on a device: time, GFLOP/s and GB/s per op.
    Bench(BenchArgs),
    /// CLIP: zero-shot classification, embeddings, benchmark.
    Clip(tessera_cli::clip::ClipArgs),
    /// BLIP-2: image captioning and visual question answering.
    Blip2(tessera_cli::blip2::Blip2Args),
    /// Janus-Pro: questions about images, and text-to-image generation.
    Janus(tessera_cli::janus::JanusArgs),
    /// MMaDA: text, questions about images, image generation and inpainting by masked diffusion.
    Mmada(tessera_cli::mmada::MmadaArgs),
    /// Convert a PyTorch pickle checkpoint (pytorch_model.bin) to safetensors without running its code.
    Convert(tessera_cli::convert::ConvertArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// Device: cpu, or KIND[:INDEX] of a compiled-in GPU backend.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Which cases: core (one per core op) or peers (the numpy/PyTorch comparison shapes).
    #[arg(long, value_enum, default_value = "core")]
    suite: SuiteArg,
    /// Only cases whose op name or shape contains this text, or whose dtype is this text.
    #[arg(long)]
    filter: Option<String>,
    /// Problem sizes: small (quick) or full.
    #[arg(long, value_enum, default_value = "full")]
    size: SizeArg,
    /// Time budget per op, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    budget_ms: u64,
    /// Print one JSON object per line per result (failed cases carry "error") instead of the table.
    #[arg(long)]
    json: bool,
    /// Also measure the device's peak compute (a large matmul per dtype) and copy bandwidth, and
    /// draw a roofline of the run (GFLOP/s against FLOP per byte, log-log) into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

fn main() -> ExitCode {
    #[cfg(feature = "cuda")]
    tessera_cuda::register();
    #[cfg(feature = "wgpu")]
    tessera_wgpu::register();
    let cli = Cli::parse();
    match cli.command {
        Command::Info => {
            print!("{}", tessera_cli::info::report());
            ExitCode::SUCCESS
        }
        Command::Bench(args) => bench(&args),
        Command::Clip(args) => tessera_cli::clip::run(&args),
        Command::Blip2(args) => tessera_cli::blip2::run(&args),
        Command::Janus(args) => tessera_cli::janus::run(&args),
        Command::Mmada(args) => tessera_cli::mmada::run(&args),
        Command::Convert(args) => tessera_cli::convert::run(&args),
    }
}

/// Runs the selected cases; fails if the device is unknown or any case failed.
fn bench(args: &BenchArgs) -> ExitCode {
    let device = match Device::parse(&args.device) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let size = match args.size {
        SizeArg::Small => Size::Small,
        SizeArg::Full => Size::Full,
    };
    let suite = match args.suite {
        SuiteArg::Core => Suite::Core,
        SuiteArg::Peers => Suite::Peers,
    };
    if let Some(path) = &args.plot {
        if let Err(e) = roofline::check_plot_path(path) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let opts = BenchOptions { budget: std::time::Duration::from_millis(args.budget_ms), ..Default::default() };
    let mut results = Vec::new();
    let mut failed = false;
    for case in suite_cases(&device, suite, size) {
        if args.filter.as_ref().is_some_and(|f| !case.matches(f)) {
            continue;
        }
        let outcome = run_case(&case, &device, &opts);
        if let Err(e) = &outcome {
            eprintln!("error: {e}");
            failed = true;
        }
        if args.json {
            let line = match &outcome {
                Ok(r) => result_json(r),
                Err(e) => failure_json(&case, e),
            };
            if print_line(&line).is_err() {
                // The reader has gone (a closed pipe): nothing more to report to.
                return ExitCode::FAILURE;
            }
        }
        results.extend(outcome.ok());
    }
    if !args.json {
        print!("{}", format_table(&device, &results));
    }
    if let Some(path) = &args.plot {
        failed |= !plot(path, &device, &results, size, &opts, args.json);
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Measures the ceilings, reports them (as JSON lines with `json`, else as
/// text under the table) and draws the roofline into `path`; false if a
/// ceiling or the file failed.
fn plot(
    path: &std::path::Path,
    device: &Device,
    results: &[tessera_cli::bench::BenchResult],
    size: Size,
    opts: &BenchOptions,
    json: bool,
) -> bool {
    let (ceilings, errors) = roofline::measure_ceilings(device, &roofline::plotted_dtypes(results), size, opts);
    for e in &errors {
        eprintln!("error: {e}");
    }
    if json {
        for line in roofline::ceilings_json(&ceilings) {
            if print_line(&line).is_err() {
                return false;
            }
        }
    } else {
        print!("{}", roofline::format_ceilings(&ceilings));
    }
    match roofline::write_plot(path, device, results, &ceilings) {
        Ok(()) => {
            eprintln!("roofline plot written to {}", path.display());
            errors.is_empty()
        }
        Err(e) => {
            eprintln!("error: {e}");
            false
        }
    }
}

/// Prints one line and flushes it, so a reader of `--json` sees each result
/// as soon as its case is done.
fn print_line(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

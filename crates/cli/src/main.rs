//! `tessera`: device info and kernel benchmarks.

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;
use tessera_cli::bench::{default_cases, format_table, run_case, BenchOptions, Size};
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

#[derive(Subcommand)]
enum Command {
    /// List the devices found and their properties.
    Info,
    /// Time the core ops on a device: time, GFLOP/s and GB/s per op.
    Bench {
        /// Device: cpu, or KIND[:INDEX] of a compiled-in GPU backend.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Only ops whose name contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Problem sizes: small (quick) or full.
        #[arg(long, value_enum, default_value = "full")]
        size: SizeArg,
        /// Time budget per op, in milliseconds.
        #[arg(long, default_value_t = 1500)]
        budget_ms: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Info => {
            print!("{}", tessera_cli::info::report());
            ExitCode::SUCCESS
        }
        Command::Bench { device, filter, size, budget_ms } => {
            let device = match Device::parse(&device) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let size = match size {
                SizeArg::Small => Size::Small,
                SizeArg::Full => Size::Full,
            };
            let opts = BenchOptions { budget: std::time::Duration::from_millis(budget_ms), ..Default::default() };
            let mut results = Vec::new();
            let mut failed = false;
            for case in default_cases(&device, size) {
                if filter.as_ref().is_some_and(|f| !case.op.contains(f.as_str())) {
                    continue;
                }
                match run_case(&case, &device, &opts) {
                    Ok(r) => results.push(r),
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed = true;
                    }
                }
            }
            print!("{}", format_table(&device, &results));
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

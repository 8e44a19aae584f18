#!/usr/bin/env bash
# Sets up and runs every test of the workspace.
#
# Installs what optional test paths need when it can (as root, from Debian's
# packages and PyPI) and prints why it skips anything it cannot run.
# Extra arguments are passed to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

say() { printf '== %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) and run this again" >&2
    exit 1
fi

say "cargo test (workspace, without the conformance suite)"
cargo test --workspace --exclude tessera-conformance "$@"

# The conformance suite prints its case counts per op and per device.
say "backend conformance suite"
cargo test -p tessera-conformance "$@" -- --nocapture

# The CUDA backend: NVRTC compile and ptxas spill checks of every kernel
# (NVIDIA's wheels in .venv-cuda), and the conformance suite where a GPU is.
say "CUDA backend: kernel compile checks, spill check, GPU tests"
./scripts/cuda-checks.sh "$@"

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

# Debian packages, installed as root; `apt-get update` runs once.
APT_UPDATED=0
apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        return 1
    fi
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -qq >/dev/null || return 1
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The wgpu backend's tests need a Vulkan driver: Mesa's lavapipe (a software
# Vulkan device) where there is no GPU.
if ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 || ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
    say "installing Mesa's Vulkan drivers (lavapipe) for the wgpu tests"
    apt_install mesa-vulkan-drivers libvulkan1 ||
        echo "could not install mesa-vulkan-drivers (needs root and apt-get): the wgpu tests will skip"
fi

say "cargo test (workspace, without the conformance suites)"
# The CLIP, BLIP-2, Janus-Pro and MMaDA parity on wgpu run with the wgpu tests
# below, timed.
TESSERA_CLIP_PARITY_WGPU=0 TESSERA_BLIP2_PARITY_WGPU=0 TESSERA_JANUS_PARITY_WGPU=0 TESSERA_MMADA_PARITY_WGPU=0 cargo test --workspace --exclude tessera-conformance --exclude tessera-wgpu --exclude tessera-fuzz "$@"

# Every loader against seeded corpora of mutated files (docs/fuzzing.md):
# each case must load or fail with a typed error. The summary lines give
# the counts per target.
say "fuzzing suite (test profile, overflow checks on)"
cargo test -p tessera-fuzz "$@" -- --nocapture

# The conformance suite prints its case counts per op and per device.
say "backend conformance suite"
cargo test -p tessera-conformance "$@" -- --nocapture

# The same suite on the wgpu backend (skips, saying why, without an adapter).
say "wgpu backend: unit tests and the conformance suite"
cargo test -p tessera-wgpu "$@" -- --nocapture
# The fallback of the subgroup reductions (for adapters without subgroups).
TESSERA_WGPU_SUBGROUPS=0 TESSERA_CONFORMANCE_FILTER=softmax,norm cargo test -p tessera-wgpu --test conformance "$@"
# The matmul kernel the adapter does not default to (the shared-tile one
# for GPUs, on lavapipe where register tiles are the default).
TESSERA_WGPU_MATMUL=shared TESSERA_CONFORMANCE_FILTER=matmul cargo test -p tessera-wgpu --test conformance --test matmul_paths "$@"

# CLIP parity against transformers on wgpu (on lavapipe: every model and
# dtype on a subset of the cases, then every case where the subset showed
# the adapter fast enough; see tests/clip/tests/wgpu.rs).
say "CLIP parity on wgpu"
clip_start=$(date +%s)
cargo test -p tessera-clip-parity --test wgpu "$@" -- --nocapture
echo "CLIP parity on wgpu: $(($(date +%s) - clip_start)) s (with its build)"

# BLIP-2 parity against transformers on wgpu (on lavapipe: the first case of
# each model, every stage and dtype; see tests/blip2/tests/wgpu.rs).
say "BLIP-2 parity on wgpu"
blip2_start=$(date +%s)
cargo test -p tessera-blip2-parity --test wgpu "$@" -- --nocapture
echo "BLIP-2 parity on wgpu: $(($(date +%s) - blip2_start)) s (with its build)"

# Janus-Pro parity against transformers on wgpu (on lavapipe: the tiny
# model, every case; see tests/janus/tests/wgpu.rs).
say "Janus-Pro parity on wgpu"
janus_start=$(date +%s)
cargo test -p tessera-janus-parity --test wgpu "$@" -- --nocapture
echo "Janus-Pro parity on wgpu: $(($(date +%s) - janus_start)) s (with its build)"

# MMaDA parity against the reference's recorded outputs on wgpu (every
# check: the fixture's model is tiny; see tests/mmada/tests/wgpu.rs).
say "MMaDA parity on wgpu"
mmada_start=$(date +%s)
cargo test -p tessera-mmada-parity --test wgpu "$@" -- --nocapture
echo "MMaDA parity on wgpu: $(($(date +%s) - mmada_start)) s (with its build)"

# The CPU backend on aarch64 (the NEON micro-kernel), under qemu-user.
say "CPU backend on aarch64: unit tests and the conformance suite under qemu"
./scripts/aarch64-checks.sh

# The CUDA backend: NVRTC compile and ptxas spill checks of every kernel
# (NVIDIA's wheels in .venv-cuda), and the conformance suite where a GPU is.
say "CUDA backend: kernel compile checks, spill check, GPU tests"
./scripts/cuda-checks.sh "$@"

#!/usr/bin/env bash
# The CPU backend on aarch64, from an x86-64 machine: cross-compiles
# tessera-tensor's unit tests and the CPU conformance suite for
# aarch64-unknown-linux-gnu and runs them under qemu-user. That tests the NEON
# GEMM micro-kernel and the scalar paths that x86-64 CPUs with AVX2 never take.
#
# Needs the Rust target (added with rustup), an aarch64 cross linker and
# qemu-user: installed as root through apt-get when missing, otherwise this
# skips and says why. On an aarch64 host the workspace tests already run
# natively, so there is nothing to do. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
skip() {
    echo "skipping the aarch64 checks: $*"
    exit 0
}

[ "$(uname -m)" = aarch64 ] && skip "this is an aarch64 machine; the workspace tests ran the NEON kernel natively"
[ "$(uname -m)" = x86_64 ] || skip "cross-testing is set up for x86-64 hosts only (this is $(uname -m))"
command -v rustup >/dev/null 2>&1 || skip "rustup not found (needed to add the $target standard library)"

if ! command -v qemu-aarch64 >/dev/null 2>&1 || ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        skip "qemu-user and gcc-aarch64-linux-gnu are missing and cannot be installed (needs root and apt-get)"
    fi
    echo "installing qemu-user and the aarch64 cross toolchain"
    apt-get update -qq >/dev/null || skip "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null ||
        skip "apt-get could not install qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
fi
if ! rustup target list --installed | grep -qx "$target"; then
    echo "adding the Rust target $target"
    rustup target add "$target" >/dev/null || skip "rustup could not add $target"
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# Release builds: the emulator runs them many times faster. The exhaustive
# exp test is skipped (same portable code as on x86-64, a minute under qemu).
cargo test --release --target "$target" -p tessera-tensor --lib "$@" -- --nocapture --skip exp_is_accurate_over_the_whole_f32_range
cargo test --release --target "$target" -p tessera-conformance --test cpu "$@" -- --nocapture

#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build, run the whole conformance suite on
# CUDA, then benchmark against PyTorch on the same GPU in the same run.
#
#   scripts/gpu.sh                 # build with cargo here, then run
#   scripts/gpu.sh --bundle DIR    # (on a machine with cargo) build the two
#                                  # binaries into DIR and stop
#   scripts/gpu.sh --prebuilt DIR  # run binaries from DIR (a GPU machine
#                                  # without a Rust toolchain)
#
# Results go to $OUT (default target/gpu-results): conformance.txt,
# bench.txt (the ratio table) and bench.json (every number). The benchmark
# needs python3 with torch (CUDA build). NVRTC (libnvrtc.so.13) is searched
# in the CUDA toolkit and in Python's nvidia wheels and put on
# LD_LIBRARY_PATH. Exits non-zero if any conformance case fails.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${OUT:-$root/target/gpu-results}"
mode=build
dir=""
case "${1:-}" in
    --bundle) mode=bundle; dir="${2:?--bundle needs a folder}" ;;
    --prebuilt) mode=prebuilt; dir="${2:?--prebuilt needs a folder}" ;;
    "") ;;
    *) echo "usage: $0 [--bundle DIR | --prebuilt DIR]" >&2; exit 2 ;;
esac

# The conformance test binary and the benchmark example, built in release.
build() {
    cargo build --release -p tessera-cuda --example gpu_bench >&2
    local tests
    tests="$(cargo test --release -p tessera-cuda --test gpu --no-run --message-format=json |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu":
        print(m["executable"])' | tail -1)"
    [ -n "$tests" ] || { echo "could not find the gpu test binary" >&2; exit 1; }
    mkdir -p "$1"
    cp "$tests" "$1/gpu-tests"
    cp target/release/examples/gpu_bench "$1/gpu_bench"
    # Without debug info the pair stays small enough to carry to a GPU machine.
    if command -v strip >/dev/null 2>&1; then
        strip "$1/gpu-tests" "$1/gpu_bench"
    fi
}

if [ "$mode" = bundle ]; then
    build "$dir"
    echo "built $dir/gpu-tests and $dir/gpu_bench"
    exit 0
fi
if [ "$mode" = build ]; then
    dir="$root/target/gpu-bin"
    build "$dir"
fi

# NVRTC: the toolkit's, else a Python wheel's.
if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc.so.13'; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
        $(python3 -c 'import sysconfig,pathlib; p=pathlib.Path(sysconfig.get_paths()["purelib"])/"nvidia"; print(" ".join(str(x) for x in p.glob("*/lib")))' 2>/dev/null) \
        "$root"/.venv-cuda/lib/python3*/site-packages/nvidia/cu13/lib; do
        if [ -e "$d/libnvrtc.so.13" ]; then
            export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            break
        fi
    done
fi

mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | tee "$out/gpu.txt" || true

echo "== conformance suite on cuda:0"
set +e
"$dir/gpu-tests" --nocapture --test-threads=1 2>&1 | tee "$out/conformance.txt"
status=${PIPESTATUS[0]}
set -e

echo "== benchmarks against PyTorch"
python3 "$root/benches/compare_cuda.py" --bench "$dir/gpu_bench" --json "$out/bench.json" | tee "$out/bench.txt"
exit "$status"

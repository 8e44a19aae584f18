#!/usr/bin/env bash
# Tessera vs numpy (OpenBLAS) vs PyTorch CPU on GEMM, GEMV and attention.
#
# Sets up a virtual environment at .venv (repository root) with numpy,
# threadpoolctl and torch from PyPI if they are not importable there yet,
# builds the release `tessera` binary, and runs benches/compare_cpu.py with
# this script's arguments (see `benches/compare_cpu.sh --help`), e.g.
#
#   benches/compare_cpu.sh                           # every case, all cores
#   benches/compare_cpu.sh --filter gemv --threads 1 --json /tmp/gemv.json
#
# Only PyPI is used. Its Linux x86_64 `torch` wheel is the CUDA build: it
# pulls in the NVIDIA runtime wheels (about 5 GiB installed) and needs them to
# import, but runs CPU-only on a machine without a GPU.
#
# Environment: PYTHON (the interpreter that creates the venv; default
# python3, 3.11 or newer), SKIP_BUILD=1 (use the binary already built).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv" >&2
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import numpy, threadpoolctl, torch" 2>/dev/null; then
    echo "installing numpy, threadpoolctl and torch into $venv (torch is large)" >&2
    "$venv/bin/python" -m pip install --upgrade pip >&2
    "$venv/bin/python" -m pip install numpy threadpoolctl torch >&2
fi

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$root" && cargo build --release -p tessera-cli)
fi

exec "$venv/bin/python" "$root/benches/compare_cpu.py" "$@"

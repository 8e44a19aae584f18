#!/usr/bin/env bash
# The CUDA backend's checks on a machine without a GPU (and with one).
#
# Sets up a virtual environment at .venv-cuda (repository root) holding the
# NVIDIA wheels nvidia-cuda-nvrtc (NVRTC), nvidia-cuda-nvcc (ptxas) and
# nvidia-cuda-cccl from PyPI when they are missing, points the tests at them
# (LD_LIBRARY_PATH for libnvrtc.so.13, TESSERA_PTXAS for ptxas), and runs
# `cargo test -p tessera-cuda`:
#
# - every kernel file, in every variant the backend compiles, builds through
#   the backend's NVRTC path for sm_80 and sm_90a;
# - ptxas -v reports no register spills in the matmul, attention, norm and
#   index kernels (and prints each kernel's register count);
# - with a GPU, the whole conformance suite runs on it (without one those
#   tests print why they did not run).
#
# When Python, pip or the wheels cannot be had, the NVRTC and ptxas checks
# are skipped with a printed reason and the crate's other tests still run.
# Extra arguments are passed to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=".venv-cuda"
python="${PYTHON:-python3}"
wheels=(nvidia-cuda-nvrtc nvidia-cuda-nvcc nvidia-cuda-cccl)

# The wheels' files live under site-packages/nvidia/cu13.
cu_root() {
    "$venv/bin/python" - <<'PY' 2>/dev/null
import pathlib, sysconfig
root = pathlib.Path(sysconfig.get_paths()["purelib"]) / "nvidia" / "cu13"
if (root / "lib").is_dir() and (root / "bin").is_dir():
    print(root)
PY
}

setup() {
    if [ ! -x "$venv/bin/python" ]; then
        command -v "$python" >/dev/null 2>&1 || { echo "no $python"; return 1; }
        "$python" -m venv "$venv" >/dev/null 2>&1 || { echo "could not create $venv with $python -m venv"; return 1; }
    fi
    if [ -z "$(cu_root)" ] || [ ! -e "$(cu_root)/lib/libnvrtc.so.13" ] || [ ! -x "$(cu_root)/bin/ptxas" ]; then
        echo "installing ${wheels[*]} into $venv" >&2
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${wheels[@]}" >&2 ||
            { echo "pip could not install ${wheels[*]}"; return 1; }
    fi
    [ -n "$(cu_root)" ] || { echo "the wheels installed no nvidia/cu13 folder"; return 1; }
}

if reason="$(setup)"; then
    root="$(cu_root)"
    export LD_LIBRARY_PATH="$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export TESSERA_PTXAS="$root/bin/ptxas"
    echo "NVRTC and ptxas from $root"
else
    echo "skipping the NVRTC compile and ptxas spill checks: $reason"
fi

cargo test -p tessera-cuda "$@" -- --nocapture

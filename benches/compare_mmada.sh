#!/usr/bin/env bash
# Tessera's MMaDA forward pass vs PyTorch eager on the CPU, and its prefix cache.
#
# Needs the repository's .venv with torch and transformers (see
# benches/compare_cpu.sh, which creates it; transformers 5.x), builds the
# release `tessera` binary unless SKIP_BUILD=1, and runs
# benches/compare_mmada.py with this script's arguments, e.g.
#
#   benches/compare_mmada.sh --threads 2
#   SKIP_BUILD=1 benches/compare_mmada.sh --layers 2 --json /tmp/mmada.json
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
if ! "$venv/bin/python" -c "import torch, transformers, safetensors" 2>/dev/null; then
    echo "error: $venv needs torch, transformers and safetensors (pip install torch transformers safetensors)" >&2
    exit 1
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$root" && cargo build --release -p tessera-cli)
fi
exec "$venv/bin/python" "$root/benches/compare_mmada.py" "$@"

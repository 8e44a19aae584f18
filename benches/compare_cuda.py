#!/usr/bin/env python3
"""Tessera's CUDA kernels against PyTorch (cuBLAS, SDPA) on the same GPU, in one run.

Runs the `gpu_bench` example of tessera-cuda (path given by --bench), which
checks and times each case and prints one JSON object per line, then times
PyTorch on the same cases the same way (3 warm-up runs, then the best of 5
batches of runs between two synchronisations):

- bandwidth cases (memcpy, add, gelu, softmax, layer_norm, rms_norm on
  256 MiB tensors): `x.clone()`, `x + y`, `F.gelu`, `torch.softmax`,
  `F.layer_norm`, `F.rms_norm`, reported in GB/s (bytes read + written);
  Tessera's figure is also given as a fraction of its own memcpy bandwidth;
- GEMM: `torch.matmul` on bf16 (cuBLAS);
- attention: `F.scaled_dot_product_attention(q, k, v, is_causal=...)` on
  bf16 [b, h, t, d].

Prints a table (Tessera, torch, ratio; >1 means Tessera is faster) and, with
--json, writes every number to a file.

    python3 benches/compare_cuda.py --bench target/release/examples/gpu_bench [--json OUT] [--filter TEXT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
import torch.nn.functional as F


def time_ms(fn, iters: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t) * 1e3 / iters)
    return best


DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def torch_case(c: dict) -> float:
    dev = "cuda"
    if c["kind"] == "bandwidth":
        dt = DTYPES[c["dtype"]]
        n = (256 << 20) // torch.tensor([], dtype=dt).element_size()
        x = torch.randn(n, device=dev, dtype=dt)
        y = torch.randn(n, device=dev, dtype=dt)
        xr = x.view(-1, 4096)
        w = torch.randn(4096, device=dev, dtype=dt)
        b = torch.randn(4096, device=dev, dtype=dt)
        fn = {
            "memcpy": lambda: x.clone(),
            "add": lambda: x + y,
            "gelu": lambda: F.gelu(x),
            "softmax": lambda: torch.softmax(xr, -1),
            "layer_norm": lambda: F.layer_norm(xr, (4096,), w, b, 1e-5),
            "rms_norm": lambda: F.rms_norm(xr, (4096,), w, 1e-5),
        }[c["op"]]
        return time_ms(fn, 20)
    if c["kind"] == "gemm":
        a = torch.randn(c["m"], c["k"], device=dev, dtype=torch.bfloat16)
        b = torch.randn(c["k"], c["n"], device=dev, dtype=torch.bfloat16)
        return time_ms(lambda: torch.matmul(a, b), 20 if c["m"] <= 4096 else 5)
    q, k, v = (torch.randn(c["b"], c["h"], c["t"], c["d"], device=dev, dtype=torch.bfloat16) for _ in range(3))
    with torch.inference_mode():
        return time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=c["causal"]), 5)


def rate(c: dict, ms: float) -> float:
    """GB/s for bandwidth cases, TFLOP/s otherwise."""
    return c["bytes"] / ms / 1e6 if c["kind"] == "bandwidth" else c["flops"] / ms / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="the gpu_bench example binary")
    ap.add_argument("--filter", default="", help="only cases whose name contains this")
    ap.add_argument("--json", help="write all numbers here")
    args = ap.parse_args()

    out = subprocess.run([args.bench, args.filter], check=True, stdout=subprocess.PIPE, text=True).stdout
    cases = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    memcpy = {c["dtype"]: rate(c, c["ms"]) for c in cases if c.get("op") == "memcpy"}
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}, CUDA {torch.version.cuda}", file=sys.stderr)
    rows = []
    for c in cases:
        c["torch_ms"] = torch_case(c)
        c["tessera_rate"], c["torch_rate"] = rate(c, c["ms"]), rate(c, c["torch_ms"])
        c["ratio"] = c["torch_ms"] / c["ms"]
        if c["kind"] == "bandwidth" and c["dtype"] in memcpy:
            c["of_memcpy"] = c["tessera_rate"] / memcpy[c["dtype"]]
        rows.append(c)
        print(f"done: {c['case']}", file=sys.stderr)

    print("| case | unit | Tessera | torch | Tessera / torch | Tessera / own memcpy |")
    print("|---|---|---:|---:|---:|---:|")
    for c in rows:
        unit = "GB/s" if c["kind"] == "bandwidth" else "TFLOP/s"
        of = f"{c['of_memcpy']:.2f}" if "of_memcpy" in c else "-"
        print(f"| {c['case']} | {unit} | {c['tessera_rate']:.1f} | {c['torch_rate']:.1f} | {c['ratio']:.2f}x | {of} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cases": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

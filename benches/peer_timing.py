"""What the model comparison scripts (benches/compare_*.py) share: logging to
stderr, the CPU's name, and timing a PyTorch call."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def time_runs(run, warmup: int, iters: int) -> tuple[dict, object]:
    """`run()` `warmup` times, then `iters` timed times under inference mode:
    the median and best times and the last result."""
    with torch.inference_mode():
        for _ in range(warmup):
            run()
        times, out = [], None
        for _ in range(iters):
            t0 = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - t0)
    times.sort()
    return {"iters": len(times), "median_ms": times[len(times) // 2] * 1e3, "best_ms": times[0] * 1e3}, out

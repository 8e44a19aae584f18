#!/usr/bin/env python3
"""Tessera's CPU kernels against numpy (OpenBLAS) and PyTorch CPU, in one run.

What it measures
----------------
GFLOP/s of GEMM, GEMV and scaled dot-product attention on the shapes of
`tessera bench --suite peers` (square GEMMs 256..4096, transformer
projections such as 257x1024x4096, GEMVs 1x4096x4096 and 1x4096x11008, in
f32 and with bf16 operands, and attention q/k/v [b, h, t, d] with and
without a causal mask), for three implementations on the same machine, the
same shapes, dtypes and memory layouts, and the same thread count T:

- Tessera: `target/release/tessera bench --suite peers --json`, run with
  TESSERA_NUM_THREADS=T. Tessera checks each result against a reference
  before timing it and prints one JSON object per case; its numeric fields
  (m/k/n/b_transposed or b/h/t/d/causal) are what this script reproduces.
- numpy: `a @ b` on float32 arrays (OpenBLAS, limited to T threads with
  threadpoolctl). With b_transposed, b is a C-contiguous [n, k] weight viewed
  as `w.T`, exactly as Tessera's `x.matmul(&w.t())`. numpy has neither bf16
  nor attention: those cells print "-".
- torch: `torch.set_num_threads(T)`; `x @ w.T` (or `a @ b`) in float32 or
  bfloat16, and `torch.nn.functional.scaled_dot_product_attention(q, k, v,
  is_causal=...)` for attention, under `torch.inference_mode()`.

How
---
Shape by shape, Tessera runs first, alone, on the shape's cases, then numpy
and torch on each of them, so the implementations never compete for cores
and all three measure a case within seconds of each other (a shared
machine's speed drifts over minutes; a quick first pass lists the cases). Every peer is timed the way
Tessera's harness times itself: two independently generated input sets used
alternately, 2 warm-up runs, then at least 3 and at most 50 timed runs until
the per-case budget (--budget-ms, passed to Tessera too) is spent; reported
are the median and the best run. Each peer's first result is checked: it must
be finite, sampled GEMM outputs must match float64 dot products, and the last
rows of attention head 0 must match a float64 reference. FLOPs are counted
the same way for all three: 2*m*n*k for a GEMM and 4*b*h*t*t*d for attention,
halved when causal.

Output: a table (case | GFLOP/s of each | Tessera's ratio to each peer, >1
means Tessera is faster) after the machine (CPU model, SIMD flags, threads)
and the versions of numpy, torch and their BLAS libraries. `--json OUT` also
writes every number. Progress goes to stderr, the report to stdout.

    .venv/bin/python benches/compare_cpu.py [--threads T] [--filter TEXT] [--rounds N] [--build] [--json OUT]

benches/compare_cpu.sh sets up the environment (.venv) and runs this.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the table still prints, with "-" for torch
    torch = None
    TORCH_IMPORT_ERROR = str(e)
else:
    TORCH_IMPORT_ERROR = ""

REPO = Path(__file__).resolve().parent.parent

# Timing policy: the same as Tessera's BenchOptions::default().
WARMUP = 2
MIN_ITERS = 3
MAX_ITERS = 50

# Query rows of attention head 0 checked against the float64 reference.
ATTENTION_CHECK_ROWS = 256
# Normalised MSE allowed per dtype (as in Tessera's harness).
TOLERANCE = {"f32": 1e-9, "bf16": 1e-4}


@dataclass
class Case:
    """One case as Tessera reported it (a line of `tessera bench --json`)."""

    raw: dict

    def spec(self) -> dict:
        """The fields that define the work (Tessera's timings left out)."""
        return {k: v for k, v in self.raw.items() if k not in ("iters", "median_ms", "best_ms", "gflops", "gbps", "error")}

    @property
    def op(self) -> str:
        return self.raw["op"]

    @property
    def dtype(self) -> str:
        return self.raw["dtype"]

    @property
    def is_attention(self) -> bool:
        return "t" in self.raw

    @property
    def label(self) -> str:
        return f"{self.op} {self.raw['shape']} {self.dtype}"

    def flops(self) -> float:
        """2*m*n*k for a GEMM; 4*b*h*t*t*d for attention, halved if causal."""
        r = self.raw
        if self.is_attention:
            return 4.0 * r["b"] * r["h"] * r["t"] * r["t"] * r["d"] * (0.5 if r["causal"] else 1.0)
        return 2.0 * r["m"] * r["n"] * r["k"]


@dataclass
class Timing:
    """What one implementation measured on one case (or why it has nothing)."""

    median_ms: float = float("nan")
    best_ms: float = float("nan")
    iters: int = 0
    gflops: float = float("nan")
    error: str = ""

    def to_json(self) -> dict:
        if self.error:
            return {"error": self.error}
        return {"median_ms": self.median_ms, "best_ms": self.best_ms, "iters": self.iters, "gflops": self.gflops}


@dataclass
class Row:
    """One line of the table: a case and each implementation's timing."""

    case: Case
    tessera: Timing
    peers: dict[str, Timing | None] = field(default_factory=dict)


def log(msg: str) -> None:
    """Progress, on stderr so that stdout holds only the report."""
    print(msg, file=sys.stderr, flush=True)


# --- Tessera ------------------------------------------------------------------


def build_tessera() -> None:
    """`cargo build --release -p tessera-cli` in the repository root."""
    log("building: cargo build --release -p tessera-cli")
    subprocess.run(["cargo", "build", "--release", "-p", "tessera-cli"], cwd=REPO, check=True, stdout=sys.stderr)


def run_tessera(binary: Path, threads: int, args: argparse.Namespace, only: str | None = None, budget_ms: int | None = None) -> list[Row]:
    """Runs the peers suite with TESSERA_NUM_THREADS=threads on the cases
    `only` (a filter; default --filter); one row per JSON line."""
    budget = args.budget_ms if budget_ms is None else budget_ms
    cmd = [str(binary), "bench", "--suite", "peers", "--json", "--size", args.size, "--budget-ms", str(budget)]
    only = args.filter if only is None else only
    if only:
        cmd += ["--filter", only]
    env = dict(os.environ, TESSERA_NUM_THREADS=str(threads))
    log(f"tessera: {' '.join(cmd)} (TESSERA_NUM_THREADS={threads})")
    rows = []
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            case = Case(json.loads(line))
            t = case.raw
            if "error" in t:
                timing = Timing(error=t["error"])
                log(f"  tessera  {case.label:<40} FAILED: {t['error']}")
            else:
                gflops = case.flops() / (t["median_ms"] * 1e6)
                timing = Timing(t["median_ms"], t["best_ms"], t["iters"], gflops)
                log(f"  tessera  {case.label:<40} {gflops:9.2f} GFLOP/s")
            rows.append(Row(case, timing))
    if proc.returncode != 0:
        log(f"tessera exited with status {proc.returncode} (failed cases are marked FAIL)")
    return rows


def tessera_info(binary: Path, threads: int) -> str:
    """The CPU lines of `tessera info` (model, threads, SIMD level Tessera uses)."""
    env = dict(os.environ, TESSERA_NUM_THREADS=str(threads))
    out = subprocess.run([str(binary), "info"], env=env, capture_output=True, text=True)
    lines = out.stdout.splitlines()
    cpu = [lines[0]] if lines and lines[0].startswith("cpu") else []
    for line in lines[1:]:
        if not line.startswith("    "):
            break
        cpu.append(line)
    return "\n".join(cpu)


# --- timing and checks ----------------------------------------------------------


def time_runs(run: Callable[[Sequence], object], sets: Sequence[Sequence], budget_s: float) -> tuple[list[float], object]:
    """Times `run` the way Tessera does: warm-up, then alternate input sets
    until MIN_ITERS runs are done and the budget or MAX_ITERS is reached.
    Returns the sorted times in seconds and the first (untimed) output."""
    first = run(sets[0])
    for w in range(WARMUP):
        run(sets[w % 2])
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < MIN_ITERS or (len(times) < MAX_ITERS and time.perf_counter() - start < budget_s):
        inputs = sets[len(times) % 2]
        t0 = time.perf_counter()
        run(inputs)
        times.append(time.perf_counter() - t0)
    return sorted(times), first


def timing_of(case: Case, times: list[float]) -> Timing:
    """Median (as Tessera takes it: the upper middle) and best, in ms, and GFLOP/s."""
    median = times[len(times) // 2]
    return Timing(median * 1e3, times[0] * 1e3, len(times), case.flops() / median / 1e9)


def nmse(got: np.ndarray, want: np.ndarray) -> float:
    """Normalised mean squared error; infinite if `got` has a non-finite value."""
    if not np.all(np.isfinite(got)):
        return float("inf")
    return float(np.sum((got - want) ** 2) / max(float(np.sum(want**2)), 1e-30))


def check_matmul(case: Case, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """`out` is finite everywhere and 64 sampled elements match float64 dot
    products of the (already rounded) operands `a` [m, k] and `b` [k, n]."""
    if not np.all(np.isfinite(out)):
        raise ValueError("result has non-finite values")
    m, n = out.shape
    rows = [(s * 7919) % m for s in range(64)]
    cols = [(s * 104_729) % n for s in range(64)]
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    want = np.array([a64[r] @ b64[:, c] for r, c in zip(rows, cols)])
    got = out[rows, cols].astype(np.float64)
    e = nmse(got, want)
    if e > TOLERANCE[case.dtype]:
        raise ValueError(f"differs from the float64 reference (nmse {e:.3e})")


def attention_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool) -> np.ndarray:
    """float64 attention of the last rows of one head (q [r, d], k/v [t, d]);
    causal masking is aligned bottom-right, so these are rows t-r..t."""
    r, t = q.shape[0], k.shape[0]
    s = (q @ k.T) / np.sqrt(q.shape[1])
    if causal:
        i = np.arange(r)[:, None] + (t - r)
        s = np.where(np.arange(t)[None, :] > i, -np.inf, s)
    p = np.exp(s - s.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)) @ v


def check_attention(case: Case, q: np.ndarray, k: np.ndarray, v: np.ndarray, out: np.ndarray) -> None:
    """`out` is finite everywhere and head 0's last rows match float64."""
    if not np.all(np.isfinite(out)):
        raise ValueError("result has non-finite values")
    t = case.raw["t"]
    r = min(t, ATTENTION_CHECK_ROWS)
    f64 = lambda x: x[0, 0].astype(np.float64)  # noqa: E731
    want = attention_reference(f64(q)[t - r :], f64(k), f64(v), case.raw["causal"])
    e = nmse(f64(out)[t - r :], want)
    if e > TOLERANCE[case.dtype]:
        raise ValueError(f"differs from the float64 reference (nmse {e:.3e})")


def guarded(name: str, case: Case, bench: Callable[[], Timing]) -> Timing:
    """Runs one peer's benchmark; an exception becomes a FAIL cell, not a crash."""
    try:
        timing = bench()
        log(f"  {name:<8} {case.label:<40} {timing.gflops:9.2f} GFLOP/s")
        return timing
    except Exception as e:  # noqa: BLE001 - any failure is reported in the table
        log(f"  {name:<8} {case.label:<40} FAILED: {e}")
        return Timing(error=str(e))


# --- numpy ----------------------------------------------------------------------


def numpy_matmul_inputs(case: Case, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`a` [m, k] and `b` [k, n] float32; with b_transposed, `b` is `w.T` of a
    C-contiguous [n, k] weight (no copy: OpenBLAS reads it transposed)."""
    r = case.raw
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((r["m"], r["k"]), dtype=np.float32)
    if r["b_transposed"]:
        b = rng.standard_normal((r["n"], r["k"]), dtype=np.float32).T
    else:
        b = rng.standard_normal((r["k"], r["n"]), dtype=np.float32)
    return a, b


def bench_numpy(case: Case, threads: int, budget_s: float) -> Timing | None:
    """numpy `a @ b` with OpenBLAS on `threads` threads; None where numpy has no
    equivalent (bf16, attention)."""
    if case.is_attention or case.dtype != "f32":
        return None

    def bench() -> Timing:
        sets = [numpy_matmul_inputs(case, 1), numpy_matmul_inputs(case, 1000)]
        with threadpool_limits(limits=threads, user_api="blas"):
            times, out = time_runs(lambda ab: ab[0] @ ab[1], sets, budget_s)
        check_matmul(case, *sets[0], out)
        return timing_of(case, times)

    return guarded("numpy", case, bench)


# --- torch ----------------------------------------------------------------------

TORCH_DTYPES = {"f32": "float32", "bf16": "bfloat16"}


def torch_inputs(case: Case, seed: int) -> tuple:
    """The case's operands as torch tensors in its dtype: (a, b) for a matmul
    (b = w.T of a contiguous [n, k] weight when b_transposed), (q, k, v) for
    attention."""
    g = torch.Generator().manual_seed(seed)
    dtype = getattr(torch, TORCH_DTYPES[case.dtype])
    randn = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype)  # noqa: E731
    r = case.raw
    if case.is_attention:
        return tuple(randn(r["b"], r["h"], r["t"], r["d"]) for _ in range(3))
    a = randn(r["m"], r["k"])
    b = randn(r["n"], r["k"]).T if r["b_transposed"] else randn(r["k"], r["n"])
    return a, b


def as_numpy(x) -> np.ndarray:
    """A torch tensor as a numpy array (bf16 widened to float32, exactly)."""
    return x.float().numpy()


def bench_torch(case: Case, threads: int, budget_s: float) -> Timing | None:
    """torch `a @ b` (float32 or bfloat16) or `scaled_dot_product_attention`."""
    if torch is None:
        return None
    torch.set_num_threads(threads)

    if case.is_attention:
        causal = case.raw["causal"]

        def run(qkv):
            return F.scaled_dot_product_attention(*qkv, is_causal=causal)

        def check(inputs, out):
            check_attention(case, *map(as_numpy, inputs), as_numpy(out))

    else:

        def run(ab):
            return ab[0] @ ab[1]

        def check(inputs, out):
            check_matmul(case, *map(as_numpy, inputs), as_numpy(out))

    def bench() -> Timing:
        sets = [torch_inputs(case, 1), torch_inputs(case, 1000)]
        with torch.inference_mode():
            times, out = time_runs(run, sets, budget_s)
        check(sets[0], out)
        return timing_of(case, times)

    return guarded("torch", case, bench)


# --- machine and versions ---------------------------------------------------------


def cpu_description() -> dict:
    """CPU model and the SIMD flags that matter here, from /proc/cpuinfo."""
    model, flags = platform.processor() or "unknown", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        if m := re.search(r"^model name\s*:\s*(.+)$", text, re.M):
            model = m.group(1).strip()
        family, number = re.search(r"^cpu family\s*:\s*(\d+)$", text, re.M), re.search(r"^model\s*:\s*(\d+)$", text, re.M)
        if family and number:
            model += f", family {family.group(1)} model {number.group(1)}"
        if m := re.search(r"^flags\s*:\s*(.+)$", text, re.M):
            flags = set(m.group(1).split())
    except OSError:
        pass
    simd = {f: f in flags for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")}
    return {"model": model, "cores": len(os.sched_getaffinity(0)), "simd": simd}


def versions() -> dict:
    """Python, numpy, torch, and the BLAS libraries numpy and torch use."""
    v = {"python": platform.python_version(), "numpy": np.__version__}
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    v["numpy_blas"] = ", ".join(
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture', '?')}, {i.get('threading_layer', '?')})" for i in blas
    ) or "unknown"
    if torch is None:
        v["torch"] = f"not available ({TORCH_IMPORT_ERROR})"
        return v
    v["torch"] = torch.__version__
    config = torch.__config__.show()
    found = [m.group(0).strip() for p in (r"Math Kernel Library Version \S+", r"MKL-DNN v\S+", r"CPU capability usage: \S+")
             if (m := re.search(p, config))]
    v["torch_backends"] = "; ".join(found) or "unknown"
    return v


class OtherCpu:
    """CPU time used by processes other than this one and its children since
    construction, as a share of the machine: > 0 means something else ran
    during the measurements and competed for the cores."""

    def __init__(self) -> None:
        self.start = (time.monotonic(), self.busy_s(), self.own_s())

    @staticmethod
    def busy_s() -> float:
        """Busy CPU seconds of the whole machine since boot (/proc/stat)."""
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return float("nan")
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def own_s() -> float:
        """CPU seconds of this process and its finished children."""
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def share(self) -> float:
        wall0, busy0, own0 = self.start
        capacity = (time.monotonic() - wall0) * len(os.sched_getaffinity(0))
        other = (self.busy_s() - busy0) - (self.own_s() - own0)
        return max(other, 0.0) / max(capacity, 1e-9)


# --- report -----------------------------------------------------------------------


def cell(t: Timing | None) -> str:
    """A GFLOP/s cell: '-' where the peer has no such op, FAIL on an error."""
    if t is None:
        return "-"
    return "FAIL" if t.error else f"{t.gflops:.2f}"


def ratio(tessera: Timing, peer: Timing | None) -> str:
    """Tessera's GFLOP/s over the peer's (>1: Tessera is faster)."""
    if peer is None or peer.error or tessera.error:
        return "-"
    return f"{tessera.gflops / peer.gflops:.2f}x"


def header(machine: dict, vers: dict, threads: int, info: str) -> str:
    """The lines above the table: machine, threads and versions."""
    simd = " ".join(f"{k}={'yes' if v else 'no'}" for k, v in machine["simd"].items())
    lines = [
        f"machine: {machine['model']} ({machine['cores']} cores available), {simd}",
        f"threads: {threads} for every implementation",
        f"other processes: {machine['other_cpu_share']:.0%} of the machine's CPU time during the measurements"
        + (" (numbers may be noisy)" if machine["other_cpu_share"] > 0.05 else ""),
        f"tessera: {info.splitlines()[0] if info else 'unknown'}",
        *(f"         {line.strip()}" for line in info.splitlines()[1:]),
        f"numpy:   {vers['numpy']}, BLAS: {vers['numpy_blas']}",
        f"torch:   {vers['torch']}" + (f", {vers['torch_backends']}" if "torch_backends" in vers else ""),
        f"python:  {vers['python']}",
    ]
    return "\n".join(lines)


def table(rows: list[Row]) -> str:
    """case | tessera | numpy | torch GFLOP/s | tessera/numpy | tessera/torch."""
    heads = ["case", "tessera GFLOP/s", "numpy GFLOP/s", "torch GFLOP/s", "vs numpy", "vs torch"]
    body = [
        [
            r.case.label,
            cell(r.tessera),
            cell(r.peers.get("numpy")),
            cell(r.peers.get("torch")),
            ratio(r.tessera, r.peers.get("numpy")),
            ratio(r.tessera, r.peers.get("torch")),
        ]
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [heads, *body]) for i in range(len(heads))]
    fmt = lambda cols: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths)))  # noqa: E731
    lines = [fmt(heads), "  ".join("-" * w for w in widths), *map(fmt, body)]
    lines.append("GFLOP/s of the median run; ratios are Tessera / peer (>1: Tessera faster); '-': no such op in the peer.")
    return "\n".join(lines)


def write_json(path: Path, machine: dict, vers: dict, threads: int, rows: list[Row]) -> None:
    """Every number measured, with the machine and versions."""
    doc = {
        "machine": machine,
        "versions": vers,
        "threads": threads,
        "results": [
            {
                "case": r.case.spec() | {"flops": r.case.flops()},
                "tessera": r.tessera.to_json(),
                **{name: (t.to_json() if t else None) for name, t in r.peers.items()},
            }
            for r in rows
        ],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


# --- main -------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads for every implementation (default: all cores)")
    p.add_argument("--filter", help="only cases whose op name or shape contains this text, or whose dtype is it (as tessera bench --filter)")
    p.add_argument("--build", action="store_true", help="run `cargo build --release -p tessera-cli` first")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the raw numbers to OUT")
    p.add_argument("--size", choices=["small", "full"], default="full", help="the peers suite's shapes (small: tiny, for a smoke test)")
    p.add_argument("--budget-ms", type=int, default=1500, help="timing budget per case and implementation (default 1500)")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the whole measurement (every implementation, every case) this many times and keep, per case and "
        "implementation, the round with the fastest median: on a shared machine this filters out rounds slowed by others",
    )
    p.add_argument("--tessera", type=Path, default=REPO / "target" / "release" / "tessera", help="the tessera binary")
    return p.parse_args()


def measure_round(args: argparse.Namespace, threads: int, cases: list[Case]) -> list[Row]:
    """Shape by shape: Tessera on the shape's cases, then numpy and torch on
    each of them, so that the three run within seconds of each other (this
    machine's speed drifts over minutes). Rows in the order of `cases`."""
    wanted = {c.label for c in cases}
    shapes = list(dict.fromkeys(c.raw["shape"] for c in cases))
    budget_s = args.budget_ms / 1e3
    measured: dict[str, Row] = {}
    for shape in shapes:
        for row in run_tessera(args.tessera, threads, args, only=shape):
            if row.case.raw["shape"] != shape or row.case.label not in wanted or row.case.label in measured:
                continue
            for name, bench in (("numpy", bench_numpy), ("torch", bench_torch)):
                row.peers[name] = bench(row.case, threads, budget_s)
            measured[row.case.label] = row
    missing = wanted - measured.keys()
    if missing:
        raise RuntimeError(f"tessera did not report {sorted(missing)} when run shape by shape")
    return [measured[c.label] for c in cases]


def faster(a: Timing | None, b: Timing | None) -> Timing | None:
    """The timing with the lower median; an error or a missing one loses."""
    if a is None or a.error:
        return b if b is not None else a
    if b is None or b.error:
        return a
    return b if b.median_ms < a.median_ms else a


def keep_faster(old: Row, new: Row) -> Row:
    """Per implementation, the faster of two rounds of the same case."""
    old.tessera = faster(old.tessera, new.tessera)
    for name, t in new.peers.items():
        old.peers[name] = faster(old.peers.get(name), t)
    return old


def main() -> int:
    args = parse_args()
    if args.build:
        build_tessera()
    others = OtherCpu()
    if not args.tessera.exists():
        log(f"error: {args.tessera} not found: build it with `cargo build --release -p tessera-cli` or pass --build")
        return 2
    threads = args.threads
    # The case list, from a quick pass (its timings are not used).
    log("listing the cases")
    cases = [row.case for row in run_tessera(args.tessera, threads, args, budget_ms=1)]
    if not cases:
        log("error: tessera reported no case (does --filter match any?)")
        return 1
    rows: list[Row] = []
    for r in range(max(1, args.rounds)):
        if args.rounds > 1:
            log(f"round {r + 1} of {args.rounds}")
        round_rows = measure_round(args, threads, cases)
        rows = round_rows if not rows else [keep_faster(old, new) for old, new in zip(rows, round_rows)]
    machine, vers = cpu_description() | {"other_cpu_share": others.share()}, versions()
    print(header(machine, vers, threads, tessera_info(args.tessera, threads)))
    print()
    print(table(rows))
    if args.json:
        write_json(args.json, machine, vers, threads, rows)
        log(f"wrote {args.json}")
    failed = any(r.tessera.error or any(t is not None and t.error for t in r.peers.values()) for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

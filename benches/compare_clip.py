#!/usr/bin/env python3
"""Tessera's CLIP against transformers' CLIPModel on PyTorch CPU, in one run.

What it measures
----------------
Throughput (items per second) of CLIP ViT-B/32 image embedding at batch 1
and 32 and text embedding at batch 32: the model's forward pass from
preprocessed inputs to projected features (`get_image_features` /
`get_text_features`), for both implementations on the same machine, the same
weights, the same inputs and the same thread count T.

- The checkpoint: transformers' `CLIPModel` at openai/clip-vit-base-patch32's
  config (vocab 49408), its weights filled from the seeded generator of
  tests/clip/generate_fixtures.py, saved with `save_pretrained` as
  model.safetensors, with the fixture tokenizer and preprocessor config.
- The inputs: seeded normal pixel values `[B, 3, 224, 224]`, and 32 captions
  tokenised by the checkpoint's tokenizer and padded to the longest, with
  their attention mask for PyTorch. Both get exactly these tensors.
- Tessera: `target/release/tessera clip bench --model DIR --inputs FILE
  --json` with TESSERA_NUM_THREADS=T. It checks its features against
  PyTorch's (cosine >= 0.9999 per row) before timing.
- PyTorch: `torch.set_num_threads(T)`, the model in eval mode under
  `torch.inference_mode()`, sdpa attention (transformers' default); its
  output is finite-checked before timing.

Both are timed the same way as Tessera's harness: 2 warm-up runs, then at
least 3 and at most 50 runs within the budget per case; the median is
reported. Case by case, Tessera runs first, alone, then PyTorch right after
it, so they never compete for the cores and both measure a case within
seconds of each other. `--rounds N` repeats the whole measurement and keeps each cell's
fastest median (this machine's speed drifts between minutes).

    .venv/bin/python benches/compare_clip.py [--threads T] [--rounds N] [--budget-ms MS] [--dtype f32] [--build] [--json OUT] [--keep DIR]

"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

import transformers
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "clip" / "fixtures"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_cpu import OtherCpu, cpu_description, log  # noqa: E402

WARMUP, MIN_ITERS, MAX_ITERS = 2, 3, 50
IMAGE_BATCHES = (1, 32)
TEXT_BATCH = 32
CAPTIONS = [
    "a photo of a cat",
    "a photo of an astronaut in a white space suit",
    "a cup of coffee on a wooden table, seen from above",
    "a rocket launching into the blue sky with a cloud of smoke",
    "a black and white photograph of a man with a camera",
    "a checkerboard pattern of red and blue squares",
    "people walking in the street at night under the lights of the shops",
    "a train crossing a bridge over a river",
]


def load_generator():
    """tests/clip/generate_fixtures.py as a module (its seeded weights)."""
    spec = importlib.util.spec_from_file_location("generate_fixtures", REPO / "tests" / "clip" / "generate_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_checkpoint(dest: Path) -> CLIPModel:
    """ViT-B/32 with seeded weights, saved as an HF checkpoint directory."""
    gen = load_generator()
    tok = CLIPTokenizer.from_pretrained(str(FIXTURES / "tokenizer"))
    cfg_dict, _ = gen.configs(49408, tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|startoftext|>"))["b32"]
    config = CLIPConfig(**{k: v for k, v in cfg_dict.items() if k not in ("architectures", "torch_dtype", "model_type")})
    model = CLIPModel(config).eval()
    gen.fill_seeded(model)
    model.save_pretrained(str(dest), safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        shutil.copy(FIXTURES / "tokenizer" / f, dest / f)
    shutil.copy(FIXTURES / "b32" / "preprocessor_config.json", dest / "preprocessor_config.json")
    return model


def make_inputs(model: CLIPModel, tok_dir: Path, path: Path) -> dict:
    """Seeded pixels and tokenised captions, with PyTorch's features as the
    expected results, written for `tessera clip bench --inputs`."""
    rng = np.random.default_rng(0)
    tok = CLIPTokenizer.from_pretrained(str(tok_dir))
    inputs: dict = {}
    tensors: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        for b in IMAGE_BATCHES:
            px = rng.standard_normal((b, 3, 224, 224), dtype=np.float32)
            inputs[f"images b{b}"] = {"pixel_values": torch.from_numpy(px)}
            tensors[f"images.{b}"] = px
            tensors[f"images.{b}.expected"] = model.get_image_features(pixel_values=torch.from_numpy(px)).pooler_output.numpy()
        texts = [CAPTIONS[i % len(CAPTIONS)] for i in range(TEXT_BATCH)]
        enc = tok(texts, padding=True, return_tensors="pt")
        inputs[f"texts b{TEXT_BATCH}"] = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        tensors[f"texts.{TEXT_BATCH}"] = enc["input_ids"].numpy().astype(np.int64)
        tensors[f"texts.{TEXT_BATCH}.lengths"] = enc["attention_mask"].sum(dim=1).numpy().astype(np.int64)
        tensors[f"texts.{TEXT_BATCH}.expected"] = model.get_text_features(**inputs[f"texts b{TEXT_BATCH}"]).pooler_output.numpy()
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path))
    # One file per case too, so that each case can be timed on its own.
    for case in inputs:
        kind, batch = case.split(" b")
        prefix = f"{kind}.{batch}"
        mine = {k: np.ascontiguousarray(v) for k, v in tensors.items() if k == prefix or k.startswith(prefix + ".")}
        save_file(mine, str(case_inputs_path(path, case)))
    return inputs


def case_inputs_path(path: Path, case: str) -> Path:
    """The inputs file holding only `case` (as make_inputs writes it)."""
    return path.with_name(f"{path.stem}-{case.replace(' ', '-')}{path.suffix}")


def run_tessera(binary: Path, ckpt: Path, inputs: Path, threads: int, args: argparse.Namespace) -> dict[str, dict]:
    env = dict(os.environ, TESSERA_NUM_THREADS=str(threads))
    cmd = [str(binary), "clip", "bench", "--model", str(ckpt), "--inputs", str(inputs), "--dtype", args.dtype,
           "--budget-ms", str(args.budget_ms), "--json"]
    log("running: TESSERA_NUM_THREADS=%d %s" % (threads, " ".join(cmd)))
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return {r["case"]: r for r in rows}


def time_torch(model: CLIPModel, case: str, inputs: dict, budget_s: float) -> dict:
    run = (lambda: model.get_image_features(**inputs)) if case.startswith("images") else (lambda: model.get_text_features(**inputs))
    with torch.inference_mode():
        first = run().pooler_output
        if not torch.isfinite(first).all():
            raise RuntimeError(f"torch {case}: non-finite features")
        for _ in range(WARMUP):
            run()
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < MIN_ITERS or (len(times) < MAX_ITERS and time.perf_counter() - start < budget_s):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    times.sort()
    batch = next(iter(inputs.values())).shape[0]
    median = times[len(times) // 2]
    return {"iters": len(times), "median_ms": median * 1e3, "best_ms": times[0] * 1e3, "items_per_s": batch / median}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads for both (default: all cores)")
    p.add_argument("--rounds", type=int, default=1, help="repeat the measurement, keep each cell's best")
    p.add_argument("--budget-ms", type=int, default=3000, help="time budget per case")
    p.add_argument("--dtype", default="f32", help="Tessera's dtype (PyTorch runs f32)")
    p.add_argument("--build", action="store_true", help="cargo build --release -p tessera-cli first")
    p.add_argument("--json", type=Path, help="also write every number to this file")
    p.add_argument("--keep", type=Path, help="write the checkpoint and inputs under this folder and keep them (to profile `tessera clip bench` on them)")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    if args.build:
        log("building: cargo build --release -p tessera-cli")
        subprocess.run(["cargo", "build", "--release", "-p", "tessera-cli"], cwd=REPO, check=True, stdout=sys.stderr)
    binary = REPO / "target" / "release" / "tessera"
    torch.set_num_threads(args.threads)
    other = OtherCpu()
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
        ckpt = Path(tmp) / "clip-vit-base-patch32-seeded"
        log(f"writing the seeded ViT-B/32 checkpoint to {ckpt}")
        model = make_checkpoint(ckpt)
        inputs_path = Path(tmp) / "inputs.safetensors"
        inputs = make_inputs(model, ckpt, inputs_path)
        for r in range(args.rounds):
            log(f"round {r + 1} of {args.rounds}")
            # Case by case, Tessera then PyTorch right after it, so that both
            # measure within seconds of each other (this machine's speed
            # drifts over minutes).
            for case, case_inputs in inputs.items():
                tessera = run_tessera(binary, ckpt, case_inputs_path(inputs_path, case), args.threads, args)
                log(f"torch {case}")
                t = time_torch(model, case, case_inputs, args.budget_ms / 1e3)
                cell = best.setdefault(case, {"tessera": None, "torch": None})
                if case not in tessera:
                    raise RuntimeError(f"tessera did not report {case}")
                for name, row in (("tessera", tessera[case]), ("torch", t)):
                    if cell[name] is None or row["median_ms"] < cell[name]["median_ms"]:
                        cell[name] = row
    machine = cpu_description()
    report = [
        f"CPU: {machine['model']} ({machine['cores']} cores available; "
        f"{' '.join(f for f, on in machine['simd'].items() if on) or 'no AVX2'}), threads: {args.threads}",
        f"torch {torch.__version__}, transformers {transformers.__version__}; Tessera dtype {args.dtype}, PyTorch f32",
        f"rounds: {args.rounds} (best median of each cell), budget {args.budget_ms} ms per case; "
        f"other processes used {100 * other.share():.1f}% of the machine meanwhile",
        "",
        "| case | Tessera items/s | PyTorch items/s | Tessera ms | PyTorch ms | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for case, cell in best.items():
        te, to = cell["tessera"], cell["torch"]
        report.append(
            f"| {case} | {te['items_per_s']:.2f} | {to['items_per_s']:.2f} | {te['median_ms']:.1f} | {to['median_ms']:.1f} "
            f"| {te['items_per_s'] / to['items_per_s']:.2f}x |"
        )
    print("\n".join(report))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "threads": args.threads, "dtype": args.dtype, "cases": best}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Tessera's BLIP-2 against transformers' Blip2ForConditionalGeneration on PyTorch CPU, in one run.

What it measures
----------------
- Image encoding (vision tower, Q-Former, language projection: transformers'
  `get_image_features`) at batch 1 and 8, in images per second.
- Greedy captioning of one image: the whole call from pixel values (image
  encoding, prefill of the 32 query tokens and the start token, then 30
  greedy steps with the KV cache), in new tokens per second. The stop id is
  masked until 30 tokens exist (`min_new_tokens=30` on both sides), so every
  run produces exactly 30 tokens.

The checkpoint: Salesforce/blip2-opt-2.7b's widths (vision 1408 wide, 16
heads, MLP 6144, 224 px, patch 14; Q-Former 768 wide with 12 layers and 32
queries; OPT 2560 wide, 32 heads, FFN 10240, vocab 50272) at reduced depth
(vision and OPT layers set by --vision-layers / --text-layers, default 4
each; the Q-Former keeps its 12), its weights filled by
tests/parity/seeded_weights.py, saved with `save_pretrained` (safetensors)
with the fixture tokenizer (tests/blip2/fixtures/tokenizer) and the BLIP
preprocessor config.

Before timing, `tessera blip2 bench` checks its projected query features
against transformers' on the same pixel values (cosine >= 0.999 per image)
and reports how many of its 30 greedy ids agree with transformers'.

Same thread count T for both: `torch.set_num_threads(T)` and
TESSERA_NUM_THREADS=T. Case by case, Tessera runs first (its own process),
then PyTorch; each case is 1 warm-up run and then at least --min-iters runs
within --budget-ms; the median is reported.

    .venv/bin/python benches/compare_blip2.py [--threads T] [--vision-layers N] [--text-layers N] [--min-iters N] [--budget-ms MS] [--build] [--keep DIR [--prepare-only]] [--json OUT] [--keep DIR]
"""

from __future__ import annotations

import argparse
import copy
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
from transformers import Blip2Config, Blip2ForConditionalGeneration

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benches"))
from peer_timing import cpu_model, log  # noqa: E402
FIXTURES = REPO / "tests" / "blip2" / "fixtures"
sys.path.insert(0, str(REPO / "tests" / "parity"))
from seeded_weights import fill_seeded  # noqa: E402

IMAGE_BATCHES = (1, 8)
NEW_TOKENS = 30
WARMUP = 1


def make_checkpoint(dest: Path, vision_layers: int, text_layers: int) -> Blip2ForConditionalGeneration:
    """blip2-opt-2.7b's widths at reduced depth, seeded, saved as a checkpoint directory."""
    saved = dest / "config.json"
    if saved.exists() and (dest / "model.safetensors").exists():
        config = Blip2Config.from_pretrained(str(dest))
        depths = (config.vision_config.num_hidden_layers, config.qformer_config.num_hidden_layers, config.text_config.num_hidden_layers)
        if depths == (vision_layers, 12, text_layers):
            log(f"reusing the checkpoint already in {dest}")
            return Blip2ForConditionalGeneration.from_pretrained(str(dest), dtype=torch.float32).eval()
    cfg = json.loads((FIXTURES / "opt27b" / "config.json").read_text())
    cfg["vision_config"]["num_hidden_layers"] = vision_layers
    cfg["qformer_config"]["num_hidden_layers"] = 12
    cfg["text_config"]["num_hidden_layers"] = text_layers
    for key in ("architectures", "transformers_version", "model_type"):
        cfg.pop(key, None)
    config = Blip2Config(**copy.deepcopy(cfg))
    model = Blip2ForConditionalGeneration(config).eval()
    fill_seeded(model)
    model.save_pretrained(str(dest), safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        shutil.copy(FIXTURES / "tokenizer" / f, dest / f)
    shutil.copy(FIXTURES / "opt27b" / "preprocessor_config.json", dest / "preprocessor_config.json")
    # No generation_config.json of the checkpoint's own: the bench sets greedy 30 explicitly.
    return model


def generate(model, px: torch.Tensor) -> torch.Tensor:
    return model.generate(pixel_values=px, do_sample=False, num_beams=1, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)


def make_inputs(model, path: Path) -> dict[int, torch.Tensor]:
    """Seeded pixels, transformers' projections and greedy ids, for `tessera blip2 bench --inputs`."""
    rng = np.random.default_rng(0)
    tensors: dict[str, np.ndarray] = {}
    pixels = {}
    with torch.inference_mode():
        for b in IMAGE_BATCHES:
            px = rng.standard_normal((b, 3, 224, 224), dtype=np.float32)
            pixels[b] = torch.from_numpy(px)
            tensors[f"images.{b}"] = px
            tensors[f"images.{b}.expected"] = model.get_image_features(pixel_values=pixels[b]).pooler_output.numpy()
        seq = generate(model, pixels[1])
        prompt_len = model.config.num_query_tokens + 1
        ids = seq[0, prompt_len:].numpy().astype(np.int64)
        if len(ids) != NEW_TOKENS:
            raise RuntimeError(f"transformers generated {len(ids)} tokens, not {NEW_TOKENS}")
        tensors["generate.expected"] = ids
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path))
    return pixels


def time_torch(run, items: int, min_iters: int, budget_s: float) -> dict:
    with torch.inference_mode():
        for _ in range(WARMUP):
            run()
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < min_iters or (len(times) < 20 and time.perf_counter() - start < budget_s):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    return {"iters": len(times), "median_ms": median * 1e3, "best_ms": times[0] * 1e3, "items_per_s": items / median}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads for both (default: all cores)")
    p.add_argument("--vision-layers", type=int, default=4)
    p.add_argument("--text-layers", type=int, default=4)
    p.add_argument("--min-iters", type=int, default=3, help="least timed runs per case")
    p.add_argument("--budget-ms", type=int, default=3000, help="time budget per case")
    p.add_argument("--build", action="store_true", help="cargo build --release -p tessera-cli first")
    p.add_argument("--json", type=Path, help="also write every number to this file")
    p.add_argument("--keep", type=Path, help="write the checkpoint and inputs under this folder and keep them (a checkpoint of the same depths already there is reused)")
    p.add_argument("--prepare-only", action="store_true", help="write the checkpoint and inputs (under --keep), time nothing")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    if args.build:
        log("building: cargo build --release -p tessera-cli")
        subprocess.run(["cargo", "build", "--release", "-p", "tessera-cli"], cwd=REPO, check=True, stdout=sys.stderr)
    binary = REPO / "target" / "release" / "tessera"
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.keep or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        ckpt = tmp / "blip2-opt-2.7b-reduced-seeded"
        log(f"writing the seeded checkpoint (vision {args.vision_layers}, Q-Former 12, OPT {args.text_layers} layers) to {ckpt}")
        model = make_checkpoint(ckpt, args.vision_layers, args.text_layers)
        inputs_path = tmp / "inputs.safetensors"
        log("transformers' reference projections and greedy ids")
        pixels = make_inputs(model, inputs_path)
        if args.prepare_only:
            return 0
        env = dict(os.environ, TESSERA_NUM_THREADS=str(args.threads))
        cmd = [str(binary), "blip2", "bench", "--model", str(ckpt), "--inputs", str(inputs_path), "--max-new-tokens", str(NEW_TOKENS),
               "--min-iters", str(args.min_iters), "--budget-ms", str(args.budget_ms), "--json"]
        log("running: TESSERA_NUM_THREADS=%d %s" % (args.threads, " ".join(cmd)))
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        tessera = {r["case"]: r for r in (json.loads(l) for l in out.stdout.splitlines() if l.strip())}
        budget = args.budget_ms / 1e3
        torch_rows = {}
        for b in IMAGE_BATCHES:
            log(f"torch images b{b}")
            torch_rows[f"images b{b}"] = time_torch(lambda: model.get_image_features(pixel_values=pixels[b]), b, args.min_iters, budget)
        log(f"torch generate {NEW_TOKENS}")
        torch_rows[f"generate {NEW_TOKENS}"] = time_torch(lambda: generate(model, pixels[1]), NEW_TOKENS, args.min_iters, budget)
    machine = {"model": cpu_model(), "cores": len(os.sched_getaffinity(0))}
    report = [
        f"CPU: {machine['model']} ({machine['cores']} cores available), threads: {args.threads}",
        f"torch {torch.__version__}, transformers {transformers.__version__}; both f32; "
        f"depth: vision {args.vision_layers}, Q-Former 12, OPT {args.text_layers} layers (blip2-opt-2.7b widths)",
        "",
        "| case | unit | Tessera /s | transformers /s | Tessera ms | transformers ms | ratio | check |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for case, to in torch_rows.items():
        te = tessera.get(case)
        if te is None:
            raise RuntimeError(f"tessera did not report {case}")
        c = te["check"]
        check = (f"cos >= {c['min_cosine']:.6f}" if "min_cosine" in c
                 else f"{c['equal_ids']}/{c['of']} ids equal" if "equal_ids" in c else str(c))
        unit = "images" if case.startswith("images") else "new tokens"
        report.append(
            f"| {case} | {unit} | {te['items_per_s']:.2f} | {to['items_per_s']:.2f} | {te['median_ms']:.0f} | {to['median_ms']:.0f} "
            f"| {te['items_per_s'] / to['items_per_s']:.2f}x | {check} |"
        )
    print("\n".join(report))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "threads": args.threads, "tessera": tessera, "torch": torch_rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

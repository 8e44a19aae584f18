#!/usr/bin/env python3
"""Tessera's Janus-Pro against transformers' JanusForConditionalGeneration on PyTorch CPU, in one run.

What it measures
----------------
- Understanding: one image and a question through the processor, the vision
  tower and aligner, the prefill, then greedy steps with the KV cache, the
  stop id masked until --new-tokens exist (`min_new_tokens` on both sides),
  in new tokens per second of the whole call.
- Text-to-image: the full grid of image tokens (576 at the real config) with
  classifier-free guidance (the checkpoint's scale, 5), greedy, for n = 1
  and n = 4 images of one prompt in one batched pass, then the VQ decode,
  in image tokens per second and images per minute.

The checkpoint: deepseek-community/Janus-Pro-1B's configuration
(tests/janus/fixtures/pro1b/config.json with the real depths, 24 vision and
24 language-model layers, unless --vision-layers / --text-layers reduce
them), its weights filled by tests/parity/seeded_weights.py, saved with
`save_pretrained` (safetensors) beside the fixture's processor, tokenizer
and generation files.

Same thread count T for both: `torch.set_num_threads(T)` and
TESSERA_NUM_THREADS=T. Tessera runs first (its own process, `tessera janus
bench`), then PyTorch; each case runs --min-iters times after --warmup
runs, and the median is reported. The greedy ids of both are compared (the
count of leading ids that agree is reported).

    .venv/bin/python benches/compare_janus.py [--threads T] [--vision-layers N] [--text-layers N]
        [--new-tokens N] [--images 1,4] [--min-iters N] [--warmup N] [--build] [--keep DIR] [--json OUT]
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
from pathlib import Path

import torch
from PIL import Image

import transformers
from transformers import JanusConfig, JanusForConditionalGeneration, JanusProcessor

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benches"))
from peer_timing import cpu_model, log, time_runs as time_torch  # noqa: E402
FIXTURES = REPO / "tests" / "janus" / "fixtures"
sys.path.insert(0, str(REPO / "tests" / "parity"))
from seeded_weights import fill_seeded  # noqa: E402

QUESTION = "Describe this image in detail."
PROMPT = "A watercolor painting of a quiet mountain lake at dawn."
IMAGE = FIXTURES / "images" / "waves_50x37.jpg"
CHECKPOINT_FILES = [
    "generation_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
]


def make_checkpoint(dest: Path, vision_layers: int, text_layers: int) -> JanusForConditionalGeneration:
    """Janus-Pro-1B's configuration at the given depths, seeded, saved as a checkpoint directory."""
    if (dest / "config.json").exists() and any(dest.glob("model*.safetensors")):
        config = JanusConfig.from_pretrained(str(dest))
        if (config.vision_config.num_hidden_layers, config.text_config.num_hidden_layers) == (vision_layers, text_layers):
            log(f"reusing the checkpoint already in {dest}")
            return JanusForConditionalGeneration.from_pretrained(str(dest), dtype=torch.float32).eval()
    cfg = json.loads((FIXTURES / "pro1b" / "config.json").read_text())
    cfg["vision_config"]["num_hidden_layers"] = vision_layers
    cfg["text_config"]["num_hidden_layers"] = text_layers
    for key in ("architectures", "transformers_version", "model_type"):
        cfg.pop(key, None)
    model = JanusForConditionalGeneration(JanusConfig(**copy.deepcopy(cfg))).eval()
    fill_seeded(model)
    model.save_pretrained(str(dest), safe_serialization=True)
    for name in CHECKPOINT_FILES:
        shutil.copy(FIXTURES / "pro1b" / name, dest / name)
    return JanusForConditionalGeneration.from_pretrained(str(dest), dtype=torch.float32).eval()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads for both (default: all cores)")
    p.add_argument("--vision-layers", type=int, default=24)
    p.add_argument("--text-layers", type=int, default=24)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--images", default="1,4", help="batch sizes of the generation cases")
    p.add_argument("--min-iters", type=int, default=1, help="timed runs per case")
    p.add_argument("--warmup", type=int, default=0, help="untimed runs per case first")
    p.add_argument("--build", action="store_true", help="cargo build --release -p tessera-cli first")
    p.add_argument("--keep", type=Path, help="write the checkpoint under this folder and keep it (one of the same depths there is reused)")
    p.add_argument("--json", type=Path, help="also write every number to this file")
    return p.parse_args()


def leading_equal(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main() -> int:
    args = parse_args()
    batches = [int(b) for b in args.images.split(",") if b]
    if args.build:
        log("building: cargo build --release -p tessera-cli")
        subprocess.run(["cargo", "build", "--release", "-p", "tessera-cli"], cwd=REPO, check=True, stdout=sys.stderr)
    binary = REPO / "target" / "release" / "tessera"
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.keep or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        ckpt = tmp / f"janus-pro-1b-v{args.vision_layers}-t{args.text_layers}-seeded"
        log(f"writing the seeded checkpoint ({args.vision_layers} vision, {args.text_layers} LM layers) to {ckpt}")
        model = make_checkpoint(ckpt, args.vision_layers, args.text_layers)
        env = dict(os.environ, TESSERA_NUM_THREADS=str(args.threads))
        cmd = [str(binary), "janus", "bench", "--model", str(ckpt), "--image", str(IMAGE), "--question", QUESTION, "--prompt", PROMPT,
               "--new-tokens", str(args.new_tokens), "--images", args.images, "--min-iters", str(args.min_iters),
               "--warmup", str(args.warmup), "--json"]
        log("running: TESSERA_NUM_THREADS=%d %s" % (args.threads, " ".join(cmd)))
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        tessera = {r["case"]: r for r in (json.loads(l) for l in out.stdout.splitlines() if l.strip())}

        processor = JanusProcessor.from_pretrained(str(ckpt))
        image = Image.open(IMAGE)
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
        chat = processor.apply_chat_template(messages, add_generation_prompt=True)
        n_new = args.new_tokens

        def understand():
            inputs = processor(text=chat, images=[image], generation_mode="text", return_tensors="pt")
            seq = model.generate(**inputs, generation_mode="text", do_sample=False, num_beams=1, max_new_tokens=n_new, min_new_tokens=n_new)
            return seq[0, inputs["input_ids"].shape[1]:].tolist()

        rows = {}
        log(f"torch understanding {n_new}")
        rows[f"understanding {n_new}"], ids = time_torch(understand, args.warmup, args.min_iters)
        rows[f"understanding {n_new}"].update(items=n_new, unit="new tokens", ids=ids)
        gen_chat = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}], add_generation_prompt=True
        )
        per_image = model.config.vision_config.num_image_tokens
        for n in batches:
            def draw(n=n):
                inputs = processor(text=[gen_chat] * n, generation_mode="image", return_tensors="pt")
                tokens = model.generate(**inputs, generation_mode="image", do_sample=False)
                model.decode_image_tokens(tokens)
                return tokens[0].tolist()

            log(f"torch generate n{n}")
            rows[f"generate n{n}"], ids = time_torch(draw, args.warmup, args.min_iters)
            rows[f"generate n{n}"].update(items=n * per_image, unit="image tokens", ids=ids)
    machine = {"model": cpu_model(), "cores": len(os.sched_getaffinity(0))}
    report = [
        f"CPU: {machine['model']} ({machine['cores']} cores available), threads: {args.threads}",
        f"torch {torch.__version__}, transformers {transformers.__version__}; both f32; "
        f"depth: vision {args.vision_layers}, LM {args.text_layers} layers (Janus-Pro-1B widths)",
        "",
        "| case | unit | Tessera /s | transformers /s | Tessera ms | transformers ms | ratio | ids agreeing |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for case, to in rows.items():
        te = tessera.get(case)
        if te is None:
            raise RuntimeError(f"tessera did not report {case}")
        to["items_per_s"] = to["items"] / (to["median_ms"] / 1e3)
        te_ids = te["check"].get("ids") or []
        agree = leading_equal(te_ids, to["ids"])
        rate = f"{te['items_per_s']:.2f} | {to['items_per_s']:.2f}"
        if case.startswith("generate"):
            n = int(case.split("n")[-1])
            rate += f" ({te['check']['images_per_min']:.2f} vs {n * 60e3 / to['median_ms']:.2f} images/min)"
        report.append(
            f"| {case} | {to['unit']} | {rate} | {te['median_ms']:.0f} | {to['median_ms']:.0f} "
            f"| {te['items_per_s'] / to['items_per_s']:.2f}x | {agree}/{len(to['ids'])} |"
        )
    print("\n".join(report))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "threads": args.threads, "tessera": tessera, "torch": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

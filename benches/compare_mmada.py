#!/usr/bin/env python3
"""Tessera's MMaDA forward pass against PyTorch eager on the CPU, in one run, and Tessera's text generation with and without the prefix cache.

What it measures
----------------
- Forward: one full-sequence pass as the reference's `self(x).logits` runs
  it (the LLaDA backbone, its final norm and the head over the whole
  vocabulary at every position), at batch x sequence 1x256 and 2x1539 (a
  text-to-image step with classifier-free guidance: 512 text slots, the
  1024-token grid and its markers, twice), in forward passes per second.
- Text-to-image step: the same pass as MMaDA's image sampler needs it. The
  reference computes every logit and slices the image slots' codebook
  columns, so its step is the forward above; Tessera's sampler applies the
  head to those rows and positions only (`logits_over`).
- Text generation (Tessera only): 128 tokens in 4 blocks of 32 with 128
  steps after a 32-token prompt, greedy, exact and with the prefix cache;
  generated tokens per second, and how many of the cached run's ids equal
  the exact run's.

The model: LLaDA-8B's width (d_model 4096, 32 heads, MLP 12288, the real
vocabulary of 134656 rows and an untied head) at a reduced depth
(--layers, default 2), with seeded weights rounded to bf16 and stored bf16
in the real checkpoint's names; both sides compute in f32 from the same
values. The PyTorch side is transformers' LlamaForCausalLM with those
weights and a full (non-causal) attention mask, the stand-in the issue
allows: the same arithmetic as LLaDA's blocks (RMSNorm, rotate-half rope
at theta 500000, SwiGLU, no biases). The full-vocabulary argmax of both at
a few positions is compared.

Same thread count T for both: `torch.set_num_threads(T)` and
TESSERA_NUM_THREADS=T. Tessera runs first (`tessera mmada bench`, its own
process), then PyTorch; each case runs --min-iters times after --warmup
runs, and the median is reported.

    .venv/bin/python benches/compare_mmada.py [--threads T] [--layers N] [--forward 1x256,2x1539]
        [--min-iters N] [--warmup N] [--build] [--keep DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benches"))
from peer_timing import cpu_model, log, time_runs as time_torch  # noqa: E402

WIDTH = dict(d_model=4096, n_heads=32, mlp_hidden_size=12288)
VOCAB = dict(vocab_size=134656, llm_vocab_size=126464, codebook_size=8192, num_vq_tokens=1024)
TOKENIZER_LENGTH = 126349  # len() of LLaDA's tokenizer: where image codes start
SPECIALS = {"<|startoftext|>": 126080, "<|endoftext|>": 126081, "<|mdm_mask|>": 126336,
            "<|start_header_id|>": 126346, "<|end_header_id|>": 126347, "<|eot_id|>": 126348}


def pattern_ids(rows: int, length: int, vocab: int) -> torch.Tensor:
    """crates/cli/src/mmada_bench.rs' token pattern."""
    return torch.tensor([[(i * 7919 + 13 + r * 31) % vocab for i in range(length)] for r in range(rows)], dtype=torch.long)


def mmada_config(layers: int) -> dict:
    return {
        "architectures": ["MMadaModelLM"], "model_type": "mmada", "activation_type": "silu", "block_type": "llama",
        "layer_norm_type": "rms", "rms_norm_eps": 1e-5, "rope": True, "rope_theta": 500000.0, "rope_full_precision": True,
        "alibi": False, "attention_layer_norm": False, "include_bias": False, "weight_tying": False, "scale_logits": False,
        "input_emb_norm": False, "n_layers": layers, "n_kv_heads": WIDTH["n_heads"], "max_sequence_length": 4096,
        "embedding_size": VOCAB["vocab_size"], "new_vocab_size": VOCAB["vocab_size"], "mask_token_id": 126336,
        "eos_token_id": 126081, "pad_token_id": 126081, "torch_dtype": "bfloat16", **WIDTH, **VOCAB,
    }


def tokenizer_json() -> dict:
    """A word-level tokenizer of LLaDA's length with its special tokens (the bench feeds ids)."""
    vocab = {f"<unused_{i}>": i for i in range(TOKENIZER_LENGTH)}
    for name, i in SPECIALS.items():
        del vocab[f"<unused_{i}>"]
        vocab[name] = i
    added = [{"id": i, "content": n, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
             for n, i in SPECIALS.items()]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
            "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None, "decoder": None,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unused_0>"}}


def make_models(dest: Path, layers: int, seed: int = 20261205) -> LlamaForCausalLM:
    """The seeded torch model (f32 holding bf16 values) and, in `dest`, the same weights as an MMaDA model directory."""
    cfg = LlamaConfig(hidden_size=WIDTH["d_model"], intermediate_size=WIDTH["mlp_hidden_size"],
                      num_attention_heads=WIDTH["n_heads"], num_key_value_heads=WIDTH["n_heads"], num_hidden_layers=layers,
                      vocab_size=VOCAB["vocab_size"], rope_theta=500000.0, rms_norm_eps=1e-5, max_position_embeddings=4096,
                      tie_word_embeddings=False, attention_bias=False, mlp_bias=False)
    model = LlamaForCausalLM(cfg).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * (0.5 / p.shape[-1] ** 0.5))
            p.copy_(p.bfloat16().float())
    names = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ff_norm", "self_attn.q_proj": "q_proj",
             "self_attn.k_proj": "k_proj", "self_attn.v_proj": "v_proj", "self_attn.o_proj": "attn_out",
             "mlp.gate_proj": "ff_proj", "mlp.up_proj": "up_proj", "mlp.down_proj": "ff_out"}
    tensors = {"model.transformer.wte.weight": model.model.embed_tokens.weight,
               "model.transformer.ln_f.weight": model.model.norm.weight,
               "model.transformer.ff_out.weight": model.lm_head.weight}
    for i, layer in enumerate(model.model.layers):
        for hf, ours in names.items():
            module = layer.get_submodule(hf)
            tensors[f"model.transformer.blocks.{i}.{ours}.weight"] = module.weight
    dest.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().bfloat16().contiguous() for k, v in tensors.items()}, str(dest / "model.safetensors"), metadata={"format": "pt"})
    (dest / "config.json").write_text(json.dumps(mmada_config(layers), indent=1))
    (dest / "tokenizer.json").write_text(json.dumps(tokenizer_json()))
    (dest / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"}))
    return model


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads for both (default: all cores)")
    p.add_argument("--layers", type=int, default=2, help="blocks of the LLaDA-8B-wide model")
    p.add_argument("--forward", default="1x256,2x1539", help="forward cases, BATCHxSEQUENCE")
    p.add_argument("--t2i", default="2x1539", help="text-to-image step cases, BATCHxSEQUENCE (each a forward case too)")
    p.add_argument("--min-iters", type=int, default=1, help="timed runs per case")
    p.add_argument("--warmup", type=int, default=0, help="untimed runs per case first")
    p.add_argument("--build", action="store_true", help="cargo build --release -p tessera-cli first")
    p.add_argument("--keep", type=Path, help="write the model directory under this folder and keep it")
    p.add_argument("--json", type=Path, help="also write every number to this file")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    t2i = [c for c in args.t2i.split(",") if c]
    cases = [tuple(int(x) for x in c.split("x")) for c in dict.fromkeys(args.forward.split(",") + t2i) if c]
    if args.build:
        log("building: cargo build --release -p tessera-cli")
        subprocess.run(["cargo", "build", "--release", "-p", "tessera-cli"], cwd=REPO, check=True, stdout=sys.stderr)
    binary = REPO / "target" / "release" / "tessera"
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.keep or scratch)
        ckpt = tmp / f"mmada-8b-width-{args.layers}-layers-seeded"
        log(f"writing the seeded model ({args.layers} blocks at LLaDA-8B width) to {ckpt}")
        model = make_models(ckpt, args.layers)
        env = dict(os.environ, TESSERA_NUM_THREADS=str(args.threads))
        cmd = [str(binary), "mmada", "bench", "--model", str(ckpt), "--forward", args.forward, "--t2i", args.t2i,
               "--min-iters", str(args.min_iters), "--warmup", str(args.warmup), "--json"]
        log("running: TESSERA_NUM_THREADS=%d %s" % (args.threads, " ".join(cmd)))
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        tessera = {r["case"]: r for r in (json.loads(l) for l in out.stdout.splitlines() if l.strip())}

        rows = {}
        for b, l in cases:
            ids = pattern_ids(b, l, VOCAB["llm_vocab_size"])
            full = torch.ones(b, 1, l, l, dtype=torch.bool)

            def forward(ids=ids, full=full, l=l):
                logits = model(input_ids=ids, attention_mask=full).logits
                return [int(logits[0, p].argmax()) for p in (0, l // 2, l - 1)]

            log(f"torch forward {b}x{l}")
            rows[f"forward {b}x{l}"], argmax = time_torch(forward, args.warmup, args.min_iters)
            rows[f"forward {b}x{l}"]["argmax"] = argmax
    machine = {"model": cpu_model(), "cores": len(os.sched_getaffinity(0))}
    report = [
        f"CPU: {machine['model']} ({machine['cores']} cores available), threads: {args.threads}",
        f"torch {torch.__version__}, transformers {transformers.__version__}; both f32 from bf16-rounded weights; "
        f"{args.layers} blocks at LLaDA-8B width, vocabulary {VOCAB['vocab_size']}",
        "",
        "| case | Tessera passes/s | PyTorch passes/s | Tessera ms | PyTorch ms | ratio | argmax agree |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    results = {"machine": machine, "threads": args.threads, "layers": args.layers, "torch": torch.__version__,
               "transformers": transformers.__version__, "cases": {}}
    for case, theirs in rows.items():
        ours = tessera.get(case)
        if ours is None:
            continue
        ratio = theirs["median_ms"] / ours["median_ms"]
        agree = ours["check"]["argmax"] == theirs["argmax"]
        report.append(f"| {case} | {1e3 / ours['median_ms']:.3f} | {1e3 / theirs['median_ms']:.3f} | {ours['median_ms']:.0f} | "
                      f"{theirs['median_ms']:.0f} | {ratio:.2f}x | {'yes' if agree else 'no'} |")
        results["cases"][case] = {"tessera": ours, "torch": theirs, "ratio": ratio, "argmax_agree": agree}
    if t2i:
        report += ["", "Text-to-image step as each sampler computes it: the reference's `self(x).logits` over every position",
                   "and the whole vocabulary, then sliced (PyTorch: its forward above); Tessera's `t2i_generate`: the head",
                   "over the codebook rows at the image slots only.", "",
                   "| case | Tessera steps/s | PyTorch steps/s | Tessera ms | PyTorch ms | ratio |", "|---|---:|---:|---:|---:|---:|"]
        for c in t2i:
            ours, theirs = tessera[f"t2i step {c}"], rows[f"forward {c}"]
            ratio = theirs["median_ms"] / ours["median_ms"]
            report.append(f"| t2i step {c} | {1e3 / ours['median_ms']:.3f} | {1e3 / theirs['median_ms']:.3f} | {ours['median_ms']:.0f} | "
                          f"{theirs['median_ms']:.0f} | {ratio:.2f}x |")
            results["cases"][f"t2i step {c}"] = {"tessera": ours, "torch": theirs, "ratio": ratio}
    exact, cached = tessera.get("generate 128"), tessera.get("generate 128 cached")
    if exact and cached:
        same = sum(a == b for a, b in zip(exact["check"]["ids"], cached["check"]["ids"]))
        report += ["", "| text generation (Tessera) | tokens/s | ms | ids equal to the exact run |", "|---|---:|---:|---|",
                   f"| exact | {exact['items_per_s']:.2f} | {exact['median_ms']:.0f} | - |",
                   f"| prefix cache | {cached['items_per_s']:.2f} | {cached['median_ms']:.0f} | {same}/{len(exact['check']['ids'])} |",
                   f"", f"prefix cache speed-up: {exact['median_ms'] / cached['median_ms']:.2f}x"]
        results["generation"] = {"exact": exact, "cached": cached, "ids_equal": same}
    print("\n".join(report))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Generates the BLIP-2 parity fixtures under tests/blip2/fixtures/.

The reference is Hugging Face transformers' Blip2ForConditionalGeneration with
an OPT decoder, pinned to `transformers==5.23.0`, run in f32 on CPU torch with
eager attention. Weights cannot be downloaded here, so every tensor is filled
from the seeded generator shared by every parity suite
(tests/parity/seeded_weights.py, and `seeded_values(name, numel)` of the
tessera-parity crate on the Rust side). No weight is stored: the fixture holds
configs, inputs and expected outputs only, and each model's tensors.json lists
the checkpoint tensors (hub names and shapes) that the Rust side writes with
seeded values before loading the model.

Models (one directory each, with config.json, generation_config.json,
preprocessor_config.json, tensors.json and expected.safetensors):

- `opt27b`: Salesforce/blip2-opt-2.7b's configuration (EVA ViT-g 1408 wide,
  Q-Former 768 wide, 32 queries, OPT-2.7b 2560 wide, vocabulary 50272, tied
  lm_head) with fewer layers: 2 vision, 3 Q-Former (cross-attention in layers
  0 and 2), 2 OPT. Checkpoint layout of the transformers 4.x hub files: the
  vision attention holds `self_attn.q_bias` and `self_attn.v_bias` (the fused
  qkv bias is cat(q_bias, 0, v_bias)), and `language_model.lm_head.weight` is
  absent (tied to `language_model.model.decoder.embed_tokens.weight`).
- `tiny`: every size and eps off its default (vision 48 wide with 6-pixel
  patches of 30x30 inputs, Q-Former 40 wide with cross-attention every third
  layer, 5 queries), an LM vocabulary 7 larger than the tokenizer's and an
  untied lm_head, in the transformers 5.x layout (one fused, fully seeded
  `self_attn.qkv.bias`). Its OPT is 96 wide rather than truly tiny: with the
  seeded weights (standard deviation 0.02) the logits of a narrower decoder
  are so flat that no greedy or beam decision clears MIN_MARGIN.
  `word_embed_proj_dim` equals `hidden_size` in every model: BLIP-2 writes
  the `hidden_size`-wide language projection into the `word_embed_proj_dim`-
  wide token embeddings with `masked_scatter`, which for unequal widths
  silently takes the wrong elements, so no coherent BLIP-2 checkpoint has
  project_in/project_out.
- `tiny_postln`: `tiny` with OPT-350m's post-layer-norm decoder
  (`do_layer_norm_before: false`, no final layer norm) and a tied lm_head,
  in the 4.x layout.

Shared inputs:

- tokenizer/: an OPT-style byte-level BPE trained here on a small English
  corpus, saved by transformers' GPT2Tokenizer: `<s>` 0, `<pad>` 1, `</s>` 2,
  `<unk>` 3 as in OPT's vocabulary, a post-processor that prepends `</s>`
  (OPT's BOS), "\\n" a single token, and the added special token `<image>`
  (last id) that Blip2Processor adds.
- images/: small generated inputs (RGB JPEG, grayscale PNG, RGBA PNG with
  varying alpha, odd sizes), preprocessed by BlipImageProcessorPil (the PIL
  backend: RGBA composited on white, PIL bicubic resize straight to the
  square input size, rescale 1/255, OpenAI CLIP mean/std).
- cases.json: image files, prompts, and per model the input ids that
  transformers builds, the greedy and beam-search generations and the decision
  margins that make those ids robust to small numerical differences.

Generation is `model.generate(pixel_values, [input_ids, attention_mask],
generation_config=...)` with the model directory's generation_config.json
plus `max_new_tokens`, and `num_beams=1` (greedy) or `num_beams=3`,
`length_penalty` and `early_stopping=False` (beam search); `ids` in
cases.json are the tokens after the prompt, ending with the eos id when
generation stopped on it. The stop token (generation_config.json's
`eos_token_id`; text_config keeps OPT's `eos_token_id: 2`, which generation
does not use): opt27b stops on "\n" like the real checkpoints, and the
fixture tokenizer gives "\n" the id NEWLINE_ID, a token that the seeded
opt27b decoder does emit. The tiny decoders never emit "\n", so their stop
token is one they emit (EOS). Token ids of the LM vocabulary beyond the
tokenizer's (opt27b: ids >= 1330 of 50272) decode to nothing. With seeded
weights the tiny models' image features are weak, so their generated ids
barely depend on the image; the image path is checked by the tensors.

expected.safetensors (f32), for each image i of the model's cases:
`pixel_values.{i}` [1, 3, S, S], `vision.{i}` the vision tower's
last_hidden_state (after post_layernorm; opt27b: first image only),
`qformer.{i}` the Q-Former's last_hidden_state, `projection.{i}` the
language projection; and `logits.{c}` [vocab], the logits at the last prompt
position of case c (the first generation step). cases.json lists each
model's keys under `expected`.

Run from the repository root:

    .venv/bin/python tests/blip2/generate_fixtures.py

Re-running rewrites every fixture with identical content.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file

import transformers
from transformers import (
    AutoTokenizer,
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2Processor,
    GenerationConfig,
    GPT2Tokenizer,
)
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

assert transformers.__version__ == "5.23.0", f"pinned to transformers==5.23.0, found {transformers.__version__}"

HERE = Path(__file__).resolve().parent
OUT = HERE / "fixtures"

sys.path.insert(0, str(HERE.parent / "parity"))
from seeded_weights import fill_seeded, seeded_tensor  # noqa: E402  (the shared generator)

# A decision (greedy top-1 against top-2, a beam-search ranking) must win by
# at least this much, so that ids are stable against ~1e-4 logit noise.
MIN_MARGIN = 1e-3

# The id of "\n" in the fixture tokenizer (see `train_tokenizer`).
NEWLINE_ID = 248

# ---------------------------------------------------------------- tokenizer

CORPUS = """
Question: what is in the picture? Answer: a cat sitting on a sofa.
Question: what color is the car? Answer: the car is red.
Question: how many people are in the photo? Answer: there are two people.
Question: where was this picture taken? Answer: in a park near the river.
Question: what is the man holding? Answer: he is holding a camera.
A picture of a dog running on the beach at sunset.
A picture of a bowl of fruit with apples, oranges and bananas on a table.
A photo of an astronaut in a white space suit standing in front of a flag.
A cup of coffee on a wooden table, seen from above, with a saucer and a spoon.
A rocket launching into the blue sky with a cloud of smoke and fire below it.
A black and white photograph of a man with a camera on a tripod in a park.
A checkerboard pattern of red and blue squares. A smooth colorful gradient.
A striped pattern with green and yellow lines. A picture of a sunset over the sea.
The quick brown fox jumps over the lazy dog. There are two cats sleeping on the sofa.
An orange tabby cat looking at the camera. A close up photo of a small kitten.
A diagram of a neural network. A page of handwritten text. A map of the city.
A painting of flowers in a vase. A drawing of a house with a garden and trees.
People walking in the street at night under the lights of the shops and signs.
A red car parked next to a building. A train crossing a bridge over a river.
The image shows a plate of food with rice, vegetables and a piece of fish.
It's a bright sunny day and the children are playing football in the field.
They've got three dogs, and we're going to see them at 10 o'clock tomorrow.
This is the first picture; that is the second one. What do you see in it?
Numbers like 1, 2, 3, 42, 2024 and 3.14 appear in photos of signs and clocks.
Two women are sitting at a table in a restaurant and talking to each other.
A young boy is riding a bicycle down a quiet road between tall green trees.
A group of birds flying over a lake surrounded by mountains covered in snow.
A kitchen with white cabinets, a stove, a sink and a window above the counter.
An old wooden boat floating on calm water next to a small fishing village.
A large airplane is taking off from the runway of a busy international airport.
Several sheep are grazing in a green meadow on a cloudy afternoon in spring.
A woman wearing a yellow raincoat holds an umbrella while waiting for the bus.
A plate with a slice of chocolate cake, a fork and a cup of hot tea beside it.
Question: is it raining? Answer: no, the sky is clear and the sun is shining.
Question: what animal is this? Answer: it is a brown horse eating some grass.
Question: what time is it on the clock? Answer: it is ten past four.
Question: what is the weather like? Answer: it is cold, windy and very foggy.
Question: what are they eating? Answer: pizza with cheese, tomatoes and olives.
A firefighter climbs a ladder toward a burning window while neighbors watch.
Scientists examine samples under a microscope in a brightly lit laboratory.
The museum displays ancient pottery, bronze statues and colorful mosaics.
A violinist performs on stage while the orchestra follows the conductor.
Fresh vegetables such as carrots, lettuce, peppers and onions at the market.
Snowboarders race down a steep slope beneath a pale, overcast winter sky.
A giraffe stretches its long neck to reach leaves at the top of an acacia.
Children build sandcastles while waves crash gently along the shoreline.
A vintage typewriter, an inkwell and a stack of yellowed letters on a desk.
Hikers cross a suspension bridge above a deep canyon with a rushing stream.
The lighthouse beams across the harbor as fishing boats return at dusk.
A chef slices salmon into thin strips beside bowls of rice and seaweed.
Graffiti covers the brick wall of an abandoned factory near the railway.
Question: which sport is being played? Answer: tennis, on a clay court.
Question: why is the road closed? Answer: because workers are repairing it.
A squirrel gathers acorns beneath an enormous oak during the autumn months.
Commuters wait on a crowded platform while the subway approaches slowly.
A farmer drives a tractor through golden wheat fields under a huge sky.
Bright neon signs reflect on wet pavement after an evening thunderstorm.
A toddler hugs a fluffy teddy bear while sleeping in a wooden crib.
Surfers paddle out past breaking waves near a rocky volcanic coastline.
Penguins huddle together on the ice while a seal swims nearby quietly.
An elderly couple dances slowly in the kitchen, smiling at each other.
"""


def train_tokenizer(dest: Path) -> GPT2Tokenizer:
    """Trains a byte-level BPE on CORPUS and saves it the way OPT's tokenizer
    is saved by transformers 5.x (GPT2Tokenizer with `add_bos_token`)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1400,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Whole paragraphs, so that "\n" and "\n\n" are seen as well.
    paragraphs = [CORPUS.strip()] * 4 + [line + "\n" for line in CORPUS.strip().split("\n")] * 2
    tok.train_from_iterator(paragraphs, trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]

    # OPT's layout: the four fairseq specials first, then the 256 byte symbols
    # (GPT-2 order), then one token per merge in merge order.
    vocab: dict[str, int] = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for s in _bytes_to_unicode().values():
        vocab.setdefault(s, len(vocab))
    kept = []
    for a, b in merges:
        if a in vocab and b in vocab and a + b not in vocab:
            vocab[a + b] = len(vocab)
            kept.append((a, b))
    # "\n" (byte symbol "Ċ") trades ids with the symbol at NEWLINE_ID, a token
    # that the seeded opt27b model emits, so that its generation can stop on
    # "\n" as the real checkpoints do (the ids of a BPE vocabulary are free;
    # merges name symbols, not ids).
    newline = _bytes_to_unicode()[ord("\n")]
    other = next(s for s, i in vocab.items() if i == NEWLINE_ID)
    vocab[newline], vocab[other] = NEWLINE_ID, vocab[newline]
    vocab = dict(sorted(vocab.items(), key=lambda kv: kv[1]))

    # OPT's tokenizer_config: bos = eos = unk = `</s>`, pad `<pad>`, BOS prepended.
    opt_tok = GPT2Tokenizer(
        vocab=vocab,
        merges=kept,
        errors="replace",
        bos_token="</s>",
        eos_token="</s>",
        unk_token="</s>",
        pad_token="<pad>",
        add_prefix_space=False,
        add_bos_token=True,
    )
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # The processor adds `<image>` to the tokenizer (as the hub's BLIP-2
        # processors were built); saving the processor saves the tokenizer.
        Blip2Processor(BlipImageProcessorPil(), opt_tok, num_query_tokens=32).save_pretrained(tmp)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(Path(tmp) / name, dest / name)
    (dest / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n")
    (dest / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in kept))
    return AutoTokenizer.from_pretrained(str(dest))


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


# ---------------------------------------------------------------- images


def make_images(dest: Path) -> list[str]:
    """Deterministic patterns; returns the file names in fixture order."""
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240611)

    # RGB JPEG, 250x170 (landscape, downscaled to 224 / 30).
    yy, xx = np.mgrid[0:170, 0:250].astype(np.float64)
    rgb = np.stack(
        [
            255 * xx / 249,
            127.5 + 127.5 * np.sin(xx / 11.0) * np.cos(yy / 7.0),
            255 * (1 - yy / 169),
        ],
        axis=-1,
    )
    rgb += rng.normal(0, 12, rgb.shape)
    Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8)).save(
        dest / "waves_250x170.jpg", quality=90, subsampling=0
    )

    # Grayscale PNG (mode L), 37x53 (portrait, upscaled).
    gy, gx = np.mgrid[0:53, 0:37]
    gray = ((gx // 5 + gy // 7) % 2) * 160 + 40 + rng.integers(0, 40, (53, 37))
    Image.fromarray(gray.astype(np.uint8), mode="L").save(dest / "checker_gray_37x53.png")

    # RGBA PNG, 64x48, alpha from fully transparent to opaque.
    ay, ax = np.mgrid[0:48, 0:64].astype(np.float64)
    rgba = np.zeros((48, 64, 4))
    rgba[..., 0] = 200 * (np.hypot(ax - 20, ay - 24) < 15)
    rgba[..., 1] = 120 + 100 * np.sin(ay / 4.0)
    rgba[..., 2] = rng.integers(0, 256, (48, 64))
    rgba[..., 3] = np.clip(255 * ax / 63 * (0.5 + 0.5 * np.cos(ay / 9.0)), 0, 255)
    rgba[:8, :8, 3] = 0
    Image.fromarray(np.round(rgba).astype(np.uint8), mode="RGBA").save(dest / "disc_rgba_64x48.png")

    # RGB PNG, 224x224 noise blobs (exactly the opt27b input size: no resize there).
    noise = rng.integers(0, 256, (28, 28, 3)).astype(np.uint8)
    Image.fromarray(noise).resize((224, 224), Image.Resampling.BILINEAR).save(dest / "blobs_224.png")

    return ["waves_250x170.jpg", "checker_gray_37x53.png", "disc_rgba_64x48.png", "blobs_224.png"]


# ---------------------------------------------------------------- configs

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


def configs(tok_size: int, image_id: int) -> dict[str, dict]:
    opt27b = {
        "layout": "4.x",
        "config": {
            "architectures": ["Blip2ForConditionalGeneration"],
            "num_query_tokens": 32,
            "image_token_index": image_id,
            "vision_config": {
                "hidden_size": 1408,
                "intermediate_size": 6144,
                "num_hidden_layers": 2,
                "num_attention_heads": 16,
                "image_size": 224,
                "patch_size": 14,
                "hidden_act": "gelu",
                "layer_norm_eps": 1e-6,
                "qkv_bias": True,
            },
            "qformer_config": {
                "hidden_size": 768,
                "num_hidden_layers": 3,
                "num_attention_heads": 12,
                "intermediate_size": 3072,
                "hidden_act": "gelu",
                "layer_norm_eps": 1e-12,
                "cross_attention_frequency": 2,
                "encoder_hidden_size": 1408,
            },
            "text_config": {
                "model_type": "opt",
                "architectures": ["OPTForCausalLM"],
                "vocab_size": 50272,
                "hidden_size": 2560,
                "num_hidden_layers": 2,
                "ffn_dim": 10240,
                "num_attention_heads": 32,
                "max_position_embeddings": 2048,
                "activation_function": "relu",
                "do_layer_norm_before": True,
                "word_embed_proj_dim": 2560,
                "enable_bias": True,
                "layer_norm_elementwise_affine": True,
                "tie_word_embeddings": True,
                "bos_token_id": 2,
                "pad_token_id": 1,
                "eos_token_id": 2,
            },
            "tie_word_embeddings": True,
        },
        "image_size": 224,
    }
    tiny = {
        "layout": "5.x",
        "config": {
            "architectures": ["Blip2ForConditionalGeneration"],
            "num_query_tokens": 5,
            "image_token_index": image_id,
            "vision_config": {
                "hidden_size": 48,
                "intermediate_size": 80,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "image_size": 30,
                "patch_size": 6,
                "hidden_act": "gelu",
                "layer_norm_eps": 1e-5,
                "qkv_bias": True,
            },
            "qformer_config": {
                "hidden_size": 40,
                "num_hidden_layers": 4,
                "num_attention_heads": 5,
                "intermediate_size": 56,
                "hidden_act": "gelu",
                "layer_norm_eps": 1e-7,
                "cross_attention_frequency": 3,
                "encoder_hidden_size": 48,
            },
            "text_config": {
                "model_type": "opt",
                "architectures": ["OPTForCausalLM"],
                "vocab_size": tok_size + 7,
                "hidden_size": 96,
                "num_hidden_layers": 2,
                "ffn_dim": 160,
                "num_attention_heads": 3,
                "max_position_embeddings": 40,
                "activation_function": "relu",
                "do_layer_norm_before": True,
                "word_embed_proj_dim": 96,
                "enable_bias": True,
                "layer_norm_elementwise_affine": True,
                "tie_word_embeddings": False,
                "bos_token_id": 2,
                "pad_token_id": 1,
                "eos_token_id": 2,
            },
            "tie_word_embeddings": False,
        },
        "image_size": 30,
    }
    postln = copy.deepcopy(tiny)
    postln["layout"] = "4.x"
    postln["config"]["text_config"]["do_layer_norm_before"] = False
    postln["config"]["text_config"]["tie_word_embeddings"] = True
    postln["config"]["tie_word_embeddings"] = True
    return {"opt27b": opt27b, "tiny": tiny, "tiny_postln": postln}


# ---------------------------------------------------------------- weights


def checkpoint_tensors(model: torch.nn.Module, layout: str, tied: bool) -> list[tuple[str, list[int]]]:
    """The tensors of the hub checkpoint (names, shapes) in state-dict order."""
    out = []
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            continue
        if tied and name == "language_model.lm_head.weight":
            continue
        if layout == "4.x" and name.startswith("vision_model.") and name.endswith("self_attn.qkv.bias"):
            stem = name[: -len("qkv.bias")]
            width = t.shape[0] // 3
            out += [(stem + "q_bias", [width]), (stem + "v_bias", [width])]
            continue
        out.append((name, list(t.shape)))
    return out


def split_qkv_bias(name: str, shape: tuple[int, ...], layout: str) -> np.ndarray | None:
    """In the 4.x layout a vision layer's qkv bias is stored as `q_bias` and
    `v_bias` (the k part is zero): the fused bias seeded from those two."""
    if layout == "4.x" and name.startswith("vision_model.") and name.endswith("self_attn.qkv.bias"):
        stem = name[: -len("qkv.bias")]
        width = shape[0] // 3
        q = seeded_tensor(stem + "q_bias", (width,))
        v = seeded_tensor(stem + "v_bias", (width,))
        return np.concatenate([q, np.zeros(width, dtype=np.float32), v])
    return None


def fill_model(model: torch.nn.Module, layout: str, tied: bool) -> None:
    """Seeds every tensor as the Rust side does from tensors.json."""
    embed = "language_model.model.decoder.embed_tokens.weight"

    def special(name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        if tied and name == "language_model.lm_head.weight":
            return seeded_tensor(embed, shape)
        return split_qkv_bias(name, shape, layout)

    fill_seeded(model, special)
    sd = model.state_dict()
    if tied:
        lm = model.language_model.lm_head.weight
        assert lm.data_ptr() == model.language_model.model.decoder.embed_tokens.weight.data_ptr(), "lm_head not tied"
        assert torch.equal(lm, torch.from_numpy(seeded_tensor(embed, tuple(lm.shape))))
    else:
        assert not torch.equal(sd["language_model.lm_head.weight"][:4], sd[embed][:4, : sd["language_model.lm_head.weight"].shape[1]])


# ---------------------------------------------------------------- beam search replay


def beam_replay(step_logits: list[torch.Tensor], prompt_len: int, num_beams: int, lp: float, eos: int, max_new: int):
    """Replays transformers' beam search (batch 1, early_stopping=False, one
    eos id) on the logits it recorded, returning the best sequence's new ids
    and the smallest margin of the ranking decisions that shape the result:
    which k unfinished candidates continue, whether a candidate ending in eos
    ranks among the top k, which k finished hypotheses are kept, the
    early-stop test, and the final choice."""
    k = num_beams
    keep = 2 * k
    big = -1.0e9
    margins: list[float] = []

    def boundary(values: torch.Tensor, n: int) -> float | None:
        v = values[values > -1e8].sort(descending=True).values
        return float(v[n - 1] - v[n]) if v.numel() > n else None

    running_seqs: list[list[int]] = [[] for _ in range(k)]
    running_scores = torch.tensor([0.0] + [big] * (k - 1))
    fin_seqs: list[list[int]] = [[] for _ in range(k)]
    fin_scores = torch.full((k,), big)
    fin_done = torch.zeros(k, dtype=torch.bool)
    heuristic_open = True
    vocab = step_logits[0].shape[-1]
    for t, logits in enumerate(step_logits):
        cur_len = prompt_len + t
        acc = torch.log_softmax(logits.float(), dim=-1) + running_scores[:, None]
        last = cur_len + 1 >= prompt_len + max_new
        live = acc > -1e8
        # decision margins
        if last:
            m = boundary(acc.reshape(-1), k)
        else:
            no_eos = acc.clone()
            no_eos[:, eos] = big
            m = boundary(no_eos.reshape(-1), k)
            top = acc[live].sort(descending=True).values
            for h in acc[:, eos][live[:, eos]]:
                if top.numel() > k:
                    mh = float(h - top[k]) if h >= top[k - 1] else float(top[k - 1] - h)
                    margins.append(mh)
        if m is not None:
            margins.append(m)
        # transformers' bookkeeping, step for step
        flat = acc.reshape(-1)
        top_lp, top_idx = torch.topk(flat, keep)
        cand_seqs = [running_seqs[int(i) // vocab] + [int(i) % vocab] for i in top_idx]
        hits = torch.tensor([s[-1] == eos or last for s in cand_seqs])
        run_lp = top_lp + hits.float() * big
        nxt = torch.topk(run_lp, k)[1]
        first_k = torch.arange(keep) < k
        fin_lp = top_lp / ((cur_len + 1 - prompt_len) ** lp)
        if not heuristic_open:
            fin_lp = fin_lp + big
        fin_lp = fin_lp + (~(hits & first_k)).float() * big
        merged = torch.cat([fin_scores, fin_lp])
        m = boundary(merged, k)
        if m is not None:
            margins.append(m)
        sel = torch.topk(merged, k)[1]
        merged_seqs = fin_seqs + cand_seqs
        merged_done = torch.cat([fin_done, hits & first_k])
        fin_seqs = [merged_seqs[int(i)] for i in sel]
        fin_scores = merged[sel]
        fin_done = merged_done[sel]
        running_seqs = [cand_seqs[int(i)] for i in nxt]
        running_scores = run_lp[nxt]
        # early-stop heuristic (transformers' `_check_early_stop_heuristic`)
        best_possible = running_scores[0] / ((cur_len + 1 - prompt_len) ** lp)
        if heuristic_open and bool(fin_done.all()):
            margins.append(abs(float(best_possible - fin_scores.min())))
        worst_finished = torch.where(fin_done, fin_scores.min(), torch.tensor(big))
        heuristic_open = heuristic_open and bool((best_possible > worst_finished).any())
        if not heuristic_open or bool(hits.all()):
            break
    if fin_scores[1] > -1e8:
        margins.append(float(fin_scores[0] - fin_scores[1]))
    return fin_seqs[0], min(margins) if margins else float("inf")


# ---------------------------------------------------------------- main

PROMPTS = [None, "Question: what is in the picture? Answer:", "A picture of"]


def load_model(d: Path) -> Blip2ForConditionalGeneration:
    config = Blip2Config.from_pretrained(str(d))
    return Blip2ForConditionalGeneration._from_config(config, attn_implementation="eager", dtype=torch.float32).eval()


def generation_config(d: Path, **fields) -> GenerationConfig:
    gc = GenerationConfig.from_pretrained(str(d))
    for key, value in fields.items():
        setattr(gc, key, value)
    return gc


def run_case(model, processor, d: Path, image: Image.Image, prompt: str | None, spec: dict, eos: int) -> dict:
    """Greedy and beam generation for one (image, prompt) pair, with margins."""
    if prompt is None:
        inputs = processor(images=image, return_tensors="pt")
        n = model.config.num_query_tokens
        input_ids = torch.tensor([[model.config.image_token_index] * n + [model.config.text_config.bos_token_id]])
        gen_inputs = {"pixel_values": inputs["pixel_values"]}
    else:
        inputs = processor(images=image, text=prompt, return_tensors="pt")
        input_ids = inputs["input_ids"]
        gen_inputs = {
            "pixel_values": inputs["pixel_values"],
            "input_ids": input_ids,
            "attention_mask": inputs["attention_mask"],
        }
    prompt_len = input_ids.shape[1]
    with torch.no_grad():
        logits = model(
            pixel_values=inputs["pixel_values"], input_ids=input_ids, attention_mask=torch.ones_like(input_ids)
        ).logits[0, -1]

        g = model.generate(
            **gen_inputs,
            generation_config=generation_config(
                d, max_new_tokens=spec["greedy_new"], do_sample=False, num_beams=1
            ),
            return_dict_in_generate=True,
            output_logits=True,
        )
        assert torch.equal(g.sequences[0, :prompt_len], input_ids[0]), "generate did not return the prompt"
        greedy_ids = g.sequences[0, prompt_len:].tolist()
        greedy_margin = float("inf")
        for step in g.logits:
            top2 = torch.topk(step[0].float(), 2).values
            greedy_margin = min(greedy_margin, float(top2[0] - top2[1]))
        assert torch.allclose(g.logits[0][0], logits, atol=1e-4), "first-step logits differ from the forward pass"

        beam_gc = generation_config(
            d,
            max_new_tokens=spec["beam_new"],
            do_sample=False,
            num_beams=3,
            length_penalty=spec["length_penalty"],
            early_stopping=False,
        )
        b = model.generate(**gen_inputs, generation_config=beam_gc, return_dict_in_generate=True, output_logits=True)
        beam_ids = b.sequences[0, prompt_len:].tolist()
        replay_ids, beam_margin = beam_replay(
            [x for x in b.logits], prompt_len, 3, spec["length_penalty"], eos, spec["beam_new"]
        )
        assert replay_ids == beam_ids, f"beam replay {replay_ids} != transformers {beam_ids}"
    tok = processor.tokenizer
    return {
        "input_ids": input_ids[0].tolist(),
        "pixel_values": inputs["pixel_values"],
        "logits": logits,
        "greedy": {
            "max_new_tokens": spec["greedy_new"],
            "ids": greedy_ids,
            "text": tok.decode(greedy_ids, skip_special_tokens=True),
        },
        "beam": {
            "num_beams": 3,
            "length_penalty": spec["length_penalty"],
            "early_stopping": False,
            "max_new_tokens": spec["beam_new"],
            "ids": beam_ids,
            "text": tok.decode(beam_ids, skip_special_tokens=True),
        },
        "min_top2_margin": greedy_margin,
        "beam_min_margin": beam_margin,
    }


def write_model_dir(d: Path, spec: dict, eos: int) -> None:
    """config.json, generation_config.json and preprocessor_config.json as
    transformers' save_pretrained writes them."""
    d.mkdir(parents=True, exist_ok=True)
    Blip2Config(**copy.deepcopy(spec["config"])).save_pretrained(str(d))
    GenerationConfig(bos_token_id=2, eos_token_id=eos, pad_token_id=1).save_pretrained(str(d))
    save_blip_processor(d, spec["image_size"])


def save_blip_processor(d: Path, size: int) -> None:
    """preprocessor_config.json of BlipImageProcessorPil at `size` square."""
    BlipImageProcessorPil(
        size={"height": size, "width": size},
        resample=3,
        do_resize=True,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=OPENAI_MEAN,
        image_std=OPENAI_STD,
        do_convert_rgb=True,
    ).save_pretrained(str(d))


# (image, prompt, greedy max_new_tokens, beam max_new_tokens, length_penalty),
# chosen among the candidates whose every decision clears MIN_MARGIN.
CASES: dict[str, list[tuple[int, int, int, int, float]]] = {
    "opt27b": [(2, 1, 12, 12, 1.0), (1, 0, 12, 12, 2.0), (2, 0, 12, 12, 1.0), (1, 1, 12, 10, 0.6), (0, 2, 12, 12, 1.0)],
    "tiny": [(0, 0, 4, 4, 2.0), (1, 1, 7, 7, 0.6), (2, 2, 9, 9, 1.0), (3, 1, 6, 6, 1.0)],
    "tiny_postln": [(0, 0, 10, 10, 0.6), (1, 1, 8, 8, 1.0), (2, 2, 10, 10, 2.0), (3, 0, 6, 6, 1.0)],
}

# generation_config.json's eos_token_id per model. opt27b stops on "\n" as
# the real checkpoints do (NEWLINE_ID is placed where the seeded model emits
# it); the tiny models never emit "\n", so theirs is a token they do emit.
EOS = {"opt27b": NEWLINE_ID, "tiny": 813, "tiny_postln": 643}


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    # fixtures/retrieval/ is generate_retrieval_fixtures.py's.
    OUT.mkdir(parents=True, exist_ok=True)
    for entry in OUT.iterdir():
        if entry.name != "retrieval":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    tok = train_tokenizer(OUT / "tokenizer")
    assert tok("\n", add_special_tokens=False)["input_ids"] == [NEWLINE_ID], "\\n must be one token"
    assert tok.bos_token_id == 2 and tok.pad_token_id == 1
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    image_id = tok.convert_tokens_to_ids("<image>")
    tok_size = len(tok)
    assert image_id == tok_size - 1

    image_names = make_images(OUT / "images")
    pil_images = [Image.open(OUT / "images" / n) for n in image_names]

    cases: dict = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "tokenizer": {
            "vocab_size": tok_size,
            "bos_token_id": tok.bos_token_id,
            "pad_token_id": tok.pad_token_id,
            "image_token_id": image_id,
            "newline_token_id": NEWLINE_ID,
        },
        "images": [f"images/{n}" for n in image_names],
        "image_modes": [im.mode for im in pil_images],
        "image_sizes": [list(im.size) for im in pil_images],
        "prompts": PROMPTS,
        "min_margin": MIN_MARGIN,
        "models": {},
    }
    for name, spec in configs(tok_size, image_id).items():
        d = OUT / name
        eos = EOS[name]
        write_model_dir(d, spec, eos)
        tied = spec["config"]["text_config"]["tie_word_embeddings"]
        model = load_model(d)
        fill_model(model, spec["layout"], tied)
        tensors = checkpoint_tensors(model, spec["layout"], tied)
        (d / "tensors.json").write_text(
            json.dumps({"layout": spec["layout"], "tensors": [[n, s] for n, s in tensors]}, indent=1) + "\n"
        )

        image_processor = BlipImageProcessorPil.from_pretrained(str(d))
        processor = Blip2Processor(image_processor, tok, num_query_tokens=model.config.num_query_tokens)
        assert len(processor.tokenizer) == tok_size

        # Per-image tensors for the images of the model's cases; opt27b's
        # vision states (257 x 1408 each) only for its first image, to keep
        # the fixture small (the others are covered by the Q-Former states).
        used = sorted({case[0] for case in CASES[name]})
        vision_used = used[:1] if name == "opt27b" else used
        expected: dict[str, np.ndarray] = {}
        with torch.no_grad():
            for i in used:
                pixels = image_processor(pil_images[i], return_tensors="pt")["pixel_values"]
                feats = model.get_image_features(pixels, return_dict=True)
                expected[f"pixel_values.{i}"] = pixels.numpy()
                if i in vision_used:
                    expected[f"vision.{i}"] = feats.last_hidden_state.numpy()
                expected[f"qformer.{i}"] = feats.qformer_outputs.last_hidden_state.numpy()
                expected[f"projection.{i}"] = feats.pooler_output.numpy()

        model_cases = []
        stopped_early = False
        for c, (i, j, greedy_new, beam_new, lp) in enumerate(CASES[name]):
            spec_c = {"greedy_new": greedy_new, "beam_new": beam_new, "length_penalty": lp}
            r = run_case(model, processor, d, pil_images[i], PROMPTS[j], spec_c, eos)
            assert torch.equal(r.pop("pixel_values"), torch.from_numpy(expected[f"pixel_values.{i}"]))
            expected[f"logits.{c}"] = r.pop("logits").numpy()
            assert r["min_top2_margin"] >= MIN_MARGIN, f"{name} case {c}: greedy margin {r['min_top2_margin']}"
            assert r["beam_min_margin"] >= MIN_MARGIN, f"{name} case {c}: beam margin {r['beam_min_margin']}"
            for mode in ("greedy", "beam"):
                ids = r[mode]["ids"]
                r[mode]["stopped_on_eos"] = bool(ids) and ids[-1] == eos
                stopped_early |= r[mode]["stopped_on_eos"] and len(ids) < r[mode]["max_new_tokens"]
            model_cases.append({"image": i, "prompt": j, **r})
            print(f"{name} case {c}: greedy {r['greedy']['ids']} beam {r['beam']['ids']}", file=sys.stderr)
        assert stopped_early, f"{name}: no case stops on eos before max_new_tokens"

        save_file(
            {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in expected.items()},
            str(d / "expected.safetensors"),
        )
        cases["models"][name] = {
            "layout": spec["layout"],
            "eos_token_id": eos,
            "vocab_size": spec["config"]["text_config"]["vocab_size"],
            "expected": sorted(expected, key=lambda k: (k.split(".")[0], int(k.split(".")[1]))),
            "cases": model_cases,
        }
        del model

    (OUT / "cases.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"fixtures written to {OUT} ({total / 1e6:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generates the CLIP parity fixtures under tests/clip/fixtures/.

Weights cannot be downloaded here, so parity is proven against Hugging Face
transformers' CLIPModel run with seeded weights at real configurations:

- `b32`: openai/clip-vit-base-patch32's config (vocab_size set to the fixture
  tokenizer's size), new-style `eos_token_id` (the tokenizer's end token), a
  preprocessor_config.json in the old OpenAI form (`"size": 224`).
- `l14`: the ViT-L/14 shape (1024/768 wide, patch 14, 257 vision tokens) with
  two layers per tower, the legacy `eos_token_id: 2` (pooling by the argmax of
  the ids), gelu instead of quick_gelu, a different layer-norm eps and a
  preprocessor_config.json in the new dict form.

Every weight is filled from the seeded generator shared by every parity
suite (tests/parity/seeded_weights.py, and the tessera-parity crate on the
Rust side; crates/tensor/src/rng.rs): element i of tensor NAME is

    u = (word(fnv1a64(NAME), i) >> 11) * 2^-53
    value = f32(mean + amp * (2u - 1))          (computed in f64)

with (mean, amp) chosen by the tensor's role (see `weight_law`). Only
arithmetic is used, so both languages produce identical bits. The fixtures hold
inputs and expected outputs only:

- tokenizer/: a real CLIP byte-level BPE (vocab.json, merges.txt,
  tokenizer.json, tokenizer_config.json) trained here on a small English corpus
  with CLIP's normaliser, pre-tokeniser and `</w>` suffix, then saved by
  transformers' CLIPTokenizer.
- images/: the input files (generated patterns and scikit-image's sample
  photographs; grayscale, RGBA, palette and 16-bit PNGs, one JPEG).
- cases.json: the texts, image files and transformers' token ids.
- pixels.safetensors: transformers' CLIPImageProcessor (PIL backend) output,
  stored as the exact u8 values after resize and centre crop (`crops`;
  the normalised `pixel_values` are a fixed function of them and of the
  mean/std recorded in cases.json, which this script asserts bit for bit).
- b32/, l14/: config.json, preprocessor_config.json and expected.safetensors
  (image and text features before and after normalisation, logits).

Run from the repository root with the venv that has torch, transformers,
tokenizers, pillow and scikit-image:

    .venv/bin/python tests/clip/generate_fixtures.py

Re-running rewrites every fixture with identical content.
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file

import transformers
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

HERE = Path(__file__).resolve().parent
OUT = HERE / "fixtures"
CONTEXT = 77

# ---------------------------------------------------------------- the generator

sys.path.insert(0, str(HERE.parent / "parity"))
from seeded_weights import fill_seeded  # noqa: E402  (the shared generator)

LOGIT_SCALE = float(np.log(1.0 / 0.07))


def clip_special(name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """CLIP's initial temperature; every other tensor is seeded."""
    if name == "logit_scale":
        return np.array(LOGIT_SCALE, dtype=np.float32).reshape(shape)
    return None


# ---------------------------------------------------------------- tokenizer

CORPUS = """
a photo of a cat. a photo of a dog. a photo of a bird. a photo of a horse.
a photo of an astronaut in a white space suit standing in front of a flag.
a cup of coffee on a wooden table, seen from above, with a saucer and a spoon.
a rocket launching into the blue sky with a cloud of smoke and fire below it.
a black and white photograph of a man with a camera on a tripod in a park.
a checkerboard pattern of red and blue squares. a smooth colorful gradient.
a striped pattern with green and yellow lines. a picture of a sunset over the sea.
the quick brown fox jumps over the lazy dog. there are two cats sleeping on the sofa.
an orange tabby cat looking at the camera. a close up photo of a small kitten.
a diagram of a neural network. a page of handwritten text. a map of the city.
a painting of flowers in a vase. a drawing of a house with a garden and trees.
people walking in the street at night under the lights of the shops and signs.
a red car parked next to a building. a train crossing a bridge over a river.
the image shows a plate of food with rice, vegetables and a piece of fish.
it's a bright sunny day and the children are playing football in the field.
they've got three dogs, and we're going to see them at 10 o'clock tomorrow.
this is the first picture; that is the second one. what do you see in it?
numbers like 1, 2, 3, 42, 2024 and 3.14 appear in photos of signs and clocks.
""" * 3


def train_tokenizer(dest: Path) -> CLIPTokenizer:
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    # The normaliser and pre-tokeniser of transformers' CLIPTokenizer.
    tok = Tokenizer(models.BPE(end_of_word_suffix="</w>", continuing_subword_prefix=""))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                behavior="removed",
                invert=True,
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=1500,
        min_frequency=2,
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS.strip().split("\n"), trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]

    # CLIP's vocabulary layout: the 256 byte symbols (GPT-2 order), the same
    # with `</w>`, one token per merge in merge order, then the two specials,
    # so that `<|endoftext|>` has the largest id (legacy configs pool at the
    # argmax of the ids).
    byte_symbols = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for s in byte_symbols + [s + "</w>" for s in byte_symbols]:
        vocab.setdefault(s, len(vocab))
    kept = []
    for a, b in merges:
        if a in vocab and b in vocab and a + b not in vocab:
            vocab[a + b] = len(vocab)
            kept.append((a, b))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)

    dest.mkdir(parents=True, exist_ok=True)
    (dest / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n")
    (dest / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in kept))
    clip_tok = CLIPTokenizer(vocab=vocab, merges=kept, model_max_length=CONTEXT)
    with tempfile.TemporaryDirectory() as tmp:
        clip_tok.save_pretrained(tmp)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(Path(tmp) / name, dest / name)
    # Reload the way a checkpoint is loaded.
    return CLIPTokenizer.from_pretrained(str(dest))


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


TEXTS = [
    "a photo of a cat",
    "a photo of an astronaut",
    "a cup of coffee",
    "a checkerboard pattern",
    "a smooth colorful gradient",
    "A Rocket LAUNCHING into the SKY!!!",
    "   extra\twhitespace \n\n and   newlines   ",
    "numbers 12345, 3.14 and 2024-11-23: it's 10 o'clock; we're late (really?)",
    "café crème, naïve façade — über",
    " ".join(["this is a very long caption that keeps going"] * 12),
]


# ---------------------------------------------------------------- images


def _png16(path: Path, array: np.ndarray) -> None:
    """Writes a 16-bit PNG (grayscale [h, w] or RGB [h, w, 3])."""
    h, w = array.shape[:2]
    color_type = 0 if array.ndim == 2 else 2
    raw = array.astype(">u2").reshape(h, -1).tobytes()
    stride = len(raw) // h
    data = b"".join(b"\x00" + raw[y * stride : (y + 1) * stride] for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(data, 9)) + chunk(b"IEND", b""))


def make_images(dest: Path) -> list[str]:
    import skimage.data

    dest.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float64)
    gradient = np.stack(
        [255 * xx / 319, 255 * yy / 239, 127.5 + 127.5 * np.sin(xx / 17.0) * np.cos(yy / 13.0)], axis=-1
    )
    Image.fromarray(np.round(gradient).astype(np.uint8)).save(dest / "gradient.png")

    cy, cx = np.mgrid[0:150, 0:100]
    checker = ((cy // 10 + cx // 10) % 2).astype(bool)
    board = np.where(checker[..., None], np.array([200, 30, 40]), np.array([20, 60, 220])).astype(np.uint8)
    Image.fromarray(board).save(dest / "checker.png")  # upscaled: 100 -> 224

    def shrink(a: np.ndarray, w: int, h: int) -> Image.Image:
        return Image.fromarray(a).resize((w, h), Image.Resampling.LANCZOS)

    shrink(skimage.data.astronaut(), 256, 256).save(dest / "astronaut.jpg", quality=92, subsampling=0)
    shrink(skimage.data.coffee(), 300, 200).save(dest / "coffee.png")
    shrink(skimage.data.rocket(), 240, 320).save(dest / "rocket.png")  # portrait after resize
    shrink(skimage.data.camera(), 256, 256).save(dest / "camera_gray.png")  # mode L

    cat = np.array(shrink(skimage.data.chelsea(), 300, 200))
    ay, ax = np.mgrid[0:200, 0:300]
    alpha = np.clip(255 * (ax / 299.0) * (1.0 - 0.5 * ay / 199.0), 0, 255).astype(np.uint8)
    alpha[:40, :40] = 0
    Image.fromarray(np.dstack([cat, alpha]), mode="RGBA").save(dest / "chelsea_rgba.png")

    Image.fromarray(cat).quantize(colors=64).save(dest / "chelsea_palette.png")  # mode P
    pal = Image.fromarray(cat).quantize(colors=32)
    pal.info["transparency"] = 0
    pal.save(dest / "chelsea_palette_trns.png", transparency=0)  # P with tRNS

    coffee16 = np.array(shrink(skimage.data.coffee(), 300, 200)).astype(np.uint16) * 257
    coffee16 += np.arange(300, dtype=np.uint16)[None, :, None] % 200  # low bytes that must not matter
    _png16(dest / "coffee_rgb16.png", coffee16)
    cam16 = np.array(shrink(skimage.data.camera(), 200, 200)).astype(np.uint16) * 257
    _png16(dest / "camera_gray16.png", cam16)
    return sorted(p.name for p in dest.iterdir())


def open_as_transformers_input(path: Path) -> Image.Image:
    """The image as handed to the processor. PIL opens 16-bit colour PNGs by
    keeping each sample's high byte, but opens 16-bit grayscale as `I;16` and
    then *clips* it to 255 when converting to RGB, which leaves a white image.
    Tessera takes the high byte for every 16-bit input; for the reference, the
    16-bit grayscale image is reduced the same way before processing."""
    img = Image.open(path)
    if img.mode.startswith("I;16"):
        return Image.fromarray((np.array(img).astype(np.uint32) >> 8).astype(np.uint8), mode="L")
    return img


# ---------------------------------------------------------------- configs

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


def configs(vocab_size: int, eot: int, bos: int) -> dict[str, tuple[dict, dict]]:
    b32 = {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": 512,
        "logit_scale_init_value": 2.6592,
        "initializer_factor": 1.0,
        "torch_dtype": "float32",
        "text_config": {
            "vocab_size": vocab_size,
            "hidden_size": 512,
            "intermediate_size": 2048,
            "num_hidden_layers": 12,
            "num_attention_heads": 8,
            "max_position_embeddings": 77,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
            "bos_token_id": bos,
            "eos_token_id": eot,
            "pad_token_id": 1,
            "projection_dim": 512,
        },
        "vision_config": {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": 224,
            "patch_size": 32,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
            "projection_dim": 512,
        },
    }
    b32_pre = {
        "crop_size": 224,
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": OPENAI_MEAN,
        "image_std": OPENAI_STD,
        "resample": 3,
        "size": 224,
    }
    l14 = {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": 768,
        "text_config": {
            "vocab_size": vocab_size,
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 2,
            "num_attention_heads": 12,
            "max_position_embeddings": 77,
            "hidden_act": "gelu",
            "layer_norm_eps": 1e-6,
            "bos_token_id": 0,
            "eos_token_id": 2,
            "projection_dim": 768,
            "some_future_field": {"nested": [1, 2, 3]},
        },
        "vision_config": {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 2,
            "num_attention_heads": 16,
            "image_size": 224,
            "patch_size": 14,
            "hidden_act": "gelu",
            "layer_norm_eps": 1e-6,
            "projection_dim": 768,
        },
        "unknown_top_level_field": "ignored",
    }
    l14_pre = {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": 224},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": 224, "width": 224},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.45, 0.4],
        "image_std": [0.25, 0.26, 0.27],
        "do_convert_rgb": True,
    }
    return {"b32": (b32, b32_pre), "l14": (l14, l14_pre)}


# ---------------------------------------------------------------- main


def preprocess(pre_dir: Path, images: list[Image.Image]) -> tuple[np.ndarray, np.ndarray, list[float], list[float]]:
    """Transformers' pixel values and the u8 crops they are computed from."""
    proc = CLIPImageProcessorPil.from_pretrained(str(pre_dir))
    pixels = proc(images=images, return_tensors="np")["pixel_values"]
    raw = CLIPImageProcessorPil.from_pretrained(str(pre_dir), do_rescale=False, do_normalize=False)
    crops = raw(images=images, return_tensors="np")["pixel_values"]
    assert np.array_equal(crops, np.round(crops)) and crops.min() >= 0 and crops.max() <= 255
    crops = crops.astype(np.uint8)
    mean, std = list(proc.image_mean), list(proc.image_std)
    # The normalised values are a fixed function of the u8 crops: check it bit
    # for bit, so that the fixture can hold the crops alone.
    rescaled = (crops.astype(np.float64) * proc.rescale_factor).astype(np.float32)
    m = np.array(mean, dtype=np.float32)[None, :, None, None]
    s = np.array(std, dtype=np.float32)[None, :, None, None]
    assert np.array_equal((rescaled - m) / s, pixels), "pixel values are not the normalised crops"
    return pixels, crops, mean, std


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)

    tok = train_tokenizer(OUT / "tokenizer")
    vocab_size = len(tok)
    eot, bos = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|startoftext|>")
    assert eot == vocab_size - 1, "the end token must have the largest id"
    enc = tok(TEXTS, padding="max_length", truncation=True, max_length=CONTEXT, return_tensors="np")
    input_ids = enc["input_ids"].astype(np.int64)
    lengths = enc["attention_mask"].sum(axis=1)
    assert lengths.max() == CONTEXT, "one text must be truncated"

    image_names = make_images(OUT / "images")
    pil_images = [open_as_transformers_input(OUT / "images" / n) for n in image_names]

    cases = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "context_length": CONTEXT,
        "vocab_size": vocab_size,
        "texts": TEXTS,
        "input_ids": input_ids.tolist(),
        "lengths": lengths.tolist(),
        "images": image_names,
        "modes": [Image.open(OUT / "images" / n).mode for n in image_names],
        "models": {},
    }
    tensors_px: dict[str, np.ndarray] = {}
    for key, (cfg, pre) in configs(vocab_size, eot, bos).items():
        d = OUT / key
        d.mkdir()
        (d / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        (d / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n")
        pixels, crops, mean, std = preprocess(d, pil_images)
        # Both preprocessors resize to 224 and crop 224 (they differ in mean,
        # std and config format): the crops are stored once.
        if "crops" in tensors_px:
            assert np.array_equal(tensors_px["crops"], crops), "the configs' crops differ"
        tensors_px["crops"] = crops

        config = CLIPConfig.from_pretrained(str(d))
        config._attn_implementation = "eager"
        model = CLIPModel(config).eval()
        fill_seeded(model, clip_special)
        with torch.no_grad():
            px = torch.from_numpy(pixels)
            ids = torch.from_numpy(input_ids)
            mask = torch.from_numpy(enc["attention_mask"].astype(np.int64))
            out = model(input_ids=ids, pixel_values=px, attention_mask=mask)
            img_feat = model.get_image_features(pixel_values=px).pooler_output
            txt_feat = model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        expected = {
            "image_features": img_feat.numpy(),
            "text_features": txt_feat.numpy(),
            "image_embeds": out.image_embeds.numpy(),
            "text_embeds": out.text_embeds.numpy(),
            "logits_per_image": out.logits_per_image.numpy(),
        }
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in expected.items()}, str(d / "expected.safetensors"))
        top1 = out.logits_per_image.argmax(dim=1).tolist()
        probs = out.logits_per_image.softmax(dim=1)
        cases["models"][key] = {
            "tensors": [[n, list(t.shape)] for n, t in model.state_dict().items() if t.is_floating_point()],
            "image_mean": mean,
            "image_std": std,
            "top1": top1,
            "top1_prob": probs.max(dim=1).values.tolist(),
        }
        print(f"{key}: top-1 labels {top1}", file=sys.stderr)

    save_file(tensors_px, str(OUT / "pixels.safetensors"))
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"fixtures written to {OUT} ({total / 1e6:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()

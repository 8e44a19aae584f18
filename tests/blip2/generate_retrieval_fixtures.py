"""Reference outputs of transformers' Blip2ForImageTextRetrieval for
Tessera's BLIP-2 retrieval parity suite (tests/blip2/tests/retrieval.rs).

Pinned to `transformers==5.23.0`, run in f32 on CPU torch, with every
weight filled by the shared seeded generator (tests/parity/seeded_weights.py)
that the Rust side reimplements; nothing is downloaded.

Models, in fixtures/retrieval/:

- itm_vitg: Salesforce/blip2-itm-vit-g's widths (vision 1408, Q-Former 768,
  32 queries, 256-wide heads, BERT's vocabulary and positions) with one vision
  layer and two Q-Former layers; the 4.x layout (`q_bias`/`v_bias`) and an
  `image_token_index`, so transformers' input ids carry the query
  placeholders in front of the text (and the attention mask covers them).
- tiny: every size and eps off its default, 3 Q-Former layers with
  cross-attention every 2nd, the 5.x layout (`qkv.bias`), no image token
  (transformers prepends the queries' mask itself).

The tokenizer (fixtures/retrieval/tokenizer/) is a BERT-style WordPiece
built here from the BLIP-2 fixtures' corpus (lowercasing, `[CLS] ... [SEP]`,
`[PAD]` = 0), saved by transformers; every model directory gets a copy.
Images are the BLIP-2 fixtures' (fixtures/images/), preprocessed by
BlipImageProcessorPil at the model's size.

expected.safetensors (f32) per model:
- `pixel_values` [n_images, 3, S, S];
- `itm_logits` [n_images * n_texts, 2]: the matching head on every (image i,
  text j) pair, row i * n_texts + j, texts padded to the longest;
- `itc_logits_per_image` [n_images, n_texts], `itc_image_embeds`
  [n_images, queries, width], `itc_text_embeds` [n_texts, width].
cases.json: the texts, their ids (unpadded, special tokens included) and the
images used.

Run from the repository root (after generate_fixtures.py, whose images it
reads):

    .venv/bin/python tests/blip2/generate_retrieval_fixtures.py
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file

import transformers
from transformers import Blip2Config, Blip2ForImageTextRetrieval, PreTrainedTokenizerFast
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

assert transformers.__version__ == "5.23.0", f"pinned to transformers==5.23.0, found {transformers.__version__}"

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from generate_fixtures import CORPUS, checkpoint_tensors, save_blip_processor, split_qkv_bias  # noqa: E402
from generate_fixtures import OUT as BLIP2_OUT  # noqa: E402

sys.path.insert(0, str(HERE.parent / "parity"))
from seeded_weights import fill_seeded  # noqa: E402

OUT = BLIP2_OUT / "retrieval"
IMAGES = [0, 1, 2]
TEXTS = [
    "a picture of waves",
    "The image shows a grey checkerboard, drawn by hand on old paper!",
    "disc",
]


def train_tokenizer(dest: Path) -> PreTrainedTokenizerFast:
    """A lowercasing WordPiece with BERT's specials, normalizer,
    pre-tokenizer and post-processor. The vocabulary is built
    deterministically (WordPiece training breaks ties in hash order): the
    specials, every character of the corpus alone and as a `##` piece, then
    the corpus' words of two or more characters by falling count, ties by
    spelling."""
    import re
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = Counter(re.findall(r"\w+", CORPUS.lower()))
    chars = sorted({c for w in words for c in w} | set(".,!?'\"-:;"))
    vocab = specials + chars + ["##" + c for c in chars]
    vocab += [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1][:500]
    wp = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.decoder = decoders.WordPiece()
    # bert-base-uncased's post-processor: [CLS] text [SEP].
    cls, sep = vocab.index("[CLS]"), vocab.index("[SEP]")
    wp.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=wp,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    assert tok.pad_token_id == 0
    assert tok("a")["input_ids"][0] == cls and tok("a")["input_ids"][-1] == sep
    dest.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(dest))
    return PreTrainedTokenizerFast.from_pretrained(str(dest))


def configs(tok_size: int) -> dict[str, dict]:
    itm_vitg = {
        "layout": "4.x",
        "image_size": 224,
        "config": {
            "architectures": ["Blip2ForImageTextRetrieval"],
            "num_query_tokens": 32,
            "image_text_hidden_size": 256,
            "image_token_index": 50265,
            "vision_config": {
                "hidden_size": 1408,
                "intermediate_size": 6144,
                "num_hidden_layers": 1,
                "num_attention_heads": 16,
                "image_size": 224,
                "patch_size": 14,
                "layer_norm_eps": 1e-6,
                "qkv_bias": True,
            },
            "qformer_config": {
                "vocab_size": 30523,
                "hidden_size": 768,
                "num_hidden_layers": 2,
                "num_attention_heads": 12,
                "intermediate_size": 3072,
                "max_position_embeddings": 512,
                "layer_norm_eps": 1e-12,
                "cross_attention_frequency": 2,
                "encoder_hidden_size": 1408,
                "use_qformer_text_input": True,
                "pad_token_id": 0,
            },
        },
    }
    tiny = {
        "layout": "5.x",
        "image_size": 30,
        "config": {
            "architectures": ["Blip2ForImageTextRetrieval"],
            "num_query_tokens": 6,
            "image_text_hidden_size": 24,
            "vision_config": {
                "hidden_size": 48,
                "intermediate_size": 80,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "image_size": 30,
                "patch_size": 6,
                "layer_norm_eps": 1e-5,
                "qkv_bias": True,
            },
            "qformer_config": {
                "vocab_size": tok_size + 3,
                "hidden_size": 40,
                "num_hidden_layers": 3,
                "num_attention_heads": 5,
                "intermediate_size": 56,
                "max_position_embeddings": 30,
                "hidden_act": "gelu",
                "layer_norm_eps": 1e-7,
                "cross_attention_frequency": 2,
                "encoder_hidden_size": 48,
                "use_qformer_text_input": True,
                "pad_token_id": 0,
            },
        },
    }
    return {"itm_vitg": itm_vitg, "tiny": tiny}


def write_model_dir(d: Path, spec: dict, tokenizer_dir: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    Blip2Config(**json.loads(json.dumps(spec["config"]))).save_pretrained(str(d))
    save_blip_processor(d, spec["image_size"])
    for f in tokenizer_dir.iterdir():
        shutil.copy(f, d / f.name)


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    tok = train_tokenizer(OUT / "tokenizer")
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    text_ids = [tok(t)["input_ids"] for t in TEXTS]
    images_meta = json.loads((BLIP2_OUT / "cases.json").read_text())["images"]
    pil_images = [Image.open(BLIP2_OUT / images_meta[i]) for i in IMAGES]

    cases: dict = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "images": [images_meta[i] for i in IMAGES],
        "texts": TEXTS,
        "text_ids": text_ids,
        "models": {},
    }
    for name, spec in configs(len(tok)).items():
        d = OUT / name
        write_model_dir(d, spec, OUT / "tokenizer")
        config = Blip2Config.from_pretrained(str(d))
        model = Blip2ForImageTextRetrieval(config).eval()
        fill_seeded(model, lambda n, s: split_qkv_bias(n, s, spec["layout"]))
        tensors = checkpoint_tensors(model, spec["layout"], tied=False)
        (d / "tensors.json").write_text(
            json.dumps({"layout": spec["layout"], "tensors": [[n, s] for n, s in tensors]}, indent=1) + "\n"
        )
        processor = BlipImageProcessorPil.from_pretrained(str(d))
        pixels = torch.cat([processor(im, return_tensors="pt")["pixel_values"] for im in pil_images])
        ids, mask = enc["input_ids"], enc["attention_mask"]
        q = config.num_query_tokens
        if config.image_token_index is not None:
            # The processor's layout: the query placeholders, then the text.
            ids = torch.cat([torch.full((ids.shape[0], q), config.image_token_index), ids], 1)
            mask = torch.cat([torch.ones(mask.shape[0], q, dtype=mask.dtype), mask], 1)
        n, m = len(IMAGES), len(TEXTS)
        pair_img = torch.arange(n).repeat_interleave(m)
        pair_txt = torch.arange(m).repeat(n)
        with torch.no_grad():
            itm = model(
                pixel_values=pixels[pair_img],
                input_ids=ids[pair_txt],
                attention_mask=mask[pair_txt],
                use_image_text_matching_head=True,
            )
            itc = model(pixel_values=pixels, input_ids=ids, attention_mask=mask, use_image_text_matching_head=False)
        expected = {
            "pixel_values": pixels.numpy(),
            "itm_logits": itm.logits_per_image.numpy(),
            "itc_logits_per_image": itc.logits_per_image.numpy(),
            "itc_image_embeds": itc.image_embeds.numpy(),
            "itc_text_embeds": itc.text_embeds.numpy(),
        }
        assert expected["itm_logits"].shape == (n * m, 2)
        assert expected["itc_logits_per_image"].shape == (n, m)
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in expected.items()}, str(d / "expected.safetensors"))
        cases["models"][name] = {"layout": spec["layout"], "num_query_tokens": q}
        print(f"{name}: itm {itm.logits_per_image.flatten()[:4].tolist()} itc {itc.logits_per_image.tolist()}", file=sys.stderr)
        del model

    (OUT / "cases.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"fixtures written to {OUT} ({total / 1e6:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()

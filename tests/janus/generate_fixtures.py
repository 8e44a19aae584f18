#!/usr/bin/env python3
"""Generates the Janus-Pro parity fixtures under tests/janus/fixtures/.

The reference is Hugging Face transformers' JanusForConditionalGeneration and
JanusProcessor (with the PIL image processor), pinned to
`transformers==5.23.0`, run in f32 on CPU torch with eager attention. Weights
cannot be downloaded here, so every tensor is filled from the seeded generator
shared by every parity suite (tests/parity/seeded_weights.py, and
`seeded_values(name, numel)` of the tessera-parity crate on the Rust side). No
weight is stored: each model directory holds its configs, the tokenizer files,
tensors.json (the checkpoint's tensor names and shapes, which the Rust side
writes with seeded values before loading) and expected.safetensors.

Models:

- `pro1b`: deepseek-community/Janus-Pro-1B's configuration (SigLIP 1024 wide
  at 384 pixels in 16-pixel patches, 576 image tokens, a Llama of width 2048
  with the 102400-token vocabulary, the VQ model with base 128 channels and a
  16384-code book) with 2 vision and 2 LM layers.
- `tiny`: every size and eps off its default (vision 48 wide with 8-pixel
  patches of 40x40 inputs, mlp_ratio 2.7, an aligner of depth 3, a Llama with
  grouped-query attention and rope theta 5000, a VQ model with base 32
  channels, 4 levels and 1 res block, a 48-code book), CLIP's mean and std.

Both share one tokenizer: a DeepSeek-style byte-level BPE trained on a small
corpus, with the Janus specials as added tokens and the converter's chat
template (tokenizer/). Images (images/) cover a JPEG, RGBA over white, a
grayscale image, a 100x3 sliver and two sizes whose resize rounds half to
even.

cases.json records, per model: the understanding cases (chat text, input ids,
greedy ids and top-1 margins, stop on EOS), the generation cases
(conditional and unconditional ids, guidance scale, greedy image ids and the
margins of each step's guided argmax, the steps whose logits are stored) and
the VQ cases (the fixed and generated grids decoded, the images encoded and
their codes). expected.safetensors holds `pixel_values.{i}`, `vision.{i}`,
`aligner.{i}` per image, `logits.{c}` per understanding case,
`gen_cond/gen_uncond/gen_guided.{g}` ([steps, vocab]) per generation case,
`vq_decode.{k}` (NHWC, before postprocessing) and `vq_post.{k}` (the uint8
pixels as f32) per decoded grid, `vq_latent.{k}` (and, for `tiny`,
`vq_encoder.{k}`) per encoded image.

Run by hand (CI only reads the committed files):

    pip install torch transformers==5.23.0 pillow safetensors numpy
    python3 tests/janus/generate_fixtures.py
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file

import transformers
from transformers import (
    AutoTokenizer,
    DynamicCache,
    GenerationConfig,
    JanusConfig,
    JanusForConditionalGeneration,
    JanusProcessor,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedTokenizerFast,
)
from transformers.models.janus.image_processing_pil_janus import JanusImageProcessorPil
from transformers.models.janus.processing_janus import DEFAULT_SYSTEM_PROMPT

assert transformers.__version__ == "5.23.0", f"pinned to transformers==5.23.0, found {transformers.__version__}"

HERE = Path(__file__).resolve().parent
OUT = HERE / "fixtures"

sys.path.insert(0, str(HERE.parent / "parity"))
from seeded_weights import fill_seeded  # noqa: E402  (the shared generator)

# A greedy decision (top-1 against top-2 logit) must win by at least this
# much, so that ids are stable against ~1e-4 logit noise.
MIN_MARGIN = 1e-3

# ---------------------------------------------------------------- tokenizer

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
IMAGE = "<image_placeholder>"
BOI = "<begin_of_image>"
EOI = "<end_of_image>"
# Added (special) tokens in id order, after the BPE vocabulary.
SPECIALS = [BOS, EOS, PAD, BOI, IMAGE, EOI]

# deepseek-community/Janus-Pro-1B's chat template, as transformers'
# convert_janus_weights_to_hf.py installs it (CHAT_TEMPLATE there).
CHAT_TEMPLATE = (
    "{%set seps=['\n\n','<\uff5cend\u2581of\u2581sentence\uff5c>']%}"
    "{%set i=0%}"
    "{%for message in messages%}"
    "{%if message['role']|lower=='user'%}"
    "<|User|>: "
    "{%elif message['role']|lower=='assistant'%}"
    "<|Assistant|>:{%if not (loop.last and not add_generation_prompt and message['content'][0]['type']=='text' and message['content'][0]['text']=='')%} {%endif%}"
    "{%else%}"
    "{{message['role'].capitalize()}}: "
    "{%endif%}"
    "{%for content in message['content']%}"
    "{%if content['type']=='image'%}"
    "{%if not loop.first%}{{'\n'}}{%endif%}"
    "<image_placeholder>"
    "{%if not loop.last%}{{'\n'}}{%endif%}"
    "{%elif content['type']=='text'%}"
    "{%set text=content['text']%}"
    "{%if loop.first%}{%set text=text.lstrip()%}{%endif%}"
    "{%if loop.last%}{%set text=text.rstrip()%}{%endif%}"
    "{%if not loop.first and message['content'][loop.index0-1]['type']=='text'%}"
    "{{' '+text}}"
    "{%else%}"
    "{{text}}"
    "{%endif%}"
    "{%endif%}"
    "{%endfor%}"
    "{%if not loop.last or add_generation_prompt%}"
    "{%if message['role']|lower=='user'%}"
    "{{seps[0]}}"
    "{%else%}"
    "{{seps[1]}}"
    "{%endif%}"
    "{%endif%}"
    "{%endfor%}"
    "{%if add_generation_prompt%}<|Assistant|>:{%endif%}"
)

CORPUS = """
<|User|>: <image_placeholder>
What is in the picture?

<|Assistant|>: A cat sitting on a sofa next to a window.<｜end▁of▁sentence｜>
<|User|>: Describe this image in detail.

<|Assistant|>: The image shows a red car parked in front of an old brick building.
<|User|>: What color is the sky? Answer in one word.

<|Assistant|>: Blue.
<|User|>: How many people are in the photo?

<|Assistant|>: There are two people walking along the beach at sunset.
<|User|>: A dog running under the rain.

<|Assistant|>:
<|User|>: A photo of an astronaut riding a horse on the moon, highly detailed.

<|Assistant|>:
<|User|>: A watercolor painting of a quiet mountain lake at dawn.

<|Assistant|>:
System: You are a helpful language and vision assistant.
You are a helpful language and vision assistant. You are able to understand the visual content that the user provides, and assist the user with a variety of tasks using natural language.
A picture of a bowl of fruit with apples, oranges and bananas on a wooden table.
A cup of coffee on a table, seen from above, with a saucer and a small spoon.
A rocket launching into the blue sky with a cloud of smoke and fire below it.
The quick brown fox jumps over the lazy dog. Two cats are sleeping on the sofa.
An orange tabby cat looking at the camera. A close up photo of a small kitten.
A painting of flowers in a vase. A drawing of a house with a garden and trees.
People walking in the street at night under the lights of the shops and signs.
It's a bright sunny day and the children are playing football in the field.
They've got three dogs, and we're going to see them at 10 o'clock tomorrow.
Numbers like 1, 2, 3, 42, 2025 and 3.14 appear in photos of signs and clocks.
A young boy is riding a bicycle down a quiet road between tall green trees.
A group of birds flying over a lake surrounded by mountains covered in snow.
A kitchen with white cabinets, a stove, a sink and a window above the counter.
An old wooden boat floating on calm water next to a small fishing village.
Several sheep are grazing in a green meadow on a cloudy afternoon in spring.
A woman wearing a yellow raincoat holds an umbrella while waiting for the bus.
What is the main object in this image? Is there any text in the picture?
What is the weather like? What are they eating? Which sport is being played?
Where was this picture taken? What is the man holding? Is it day or night?
Describe the colors and the shapes. What is unusual about this image?
A checkerboard pattern of red and blue squares. A smooth colorful gradient.
A striped pattern with green and yellow lines. A picture of a sunset over the sea.
Generate an image of a lighthouse on a rocky coast during a storm.
A futuristic city skyline at night with flying cars and neon lights.
A bowl of ramen with an egg, green onions and slices of pork, studio lighting.
A portrait of an old fisherman with a grey beard, in the style of an oil painting.
"""


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A DeepSeek-LLM-style byte-level BPE trained on CORPUS: DeepSeek's
    pre-tokenizer layout (newlines isolated, words with an optional leading
    space, punctuation runs, trailing whitespace, single digits, then
    ByteLevel without its own regex), a ByteLevel decoder, the specials as
    added tokens after the BPE vocabulary, and BOS prepended by the
    post-processor (`add_bos_token`)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[\r\n]"), behavior="isolated"),
            pre_tokenizers.Split(Regex(r"\s?[A-Za-z]+"), behavior="isolated"),
            pre_tokenizers.Split(Regex(r"\s?[!-/:-~]+"), behavior="isolated"),
            pre_tokenizers.Split(Regex(r"\s+$"), behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1200,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in CORPUS.strip().split("\n")]
    tok.train_from_iterator([CORPUS.strip()] * 2 + [line + "\n" for line in lines], trainer)
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=None,
        add_bos_token=True,
        add_eos_token=False,
        extra_special_tokens={"image_token": IMAGE, "boi_token": BOI, "eoi_token": EOI},
        model_max_length=16384,
        clean_up_tokenization_spaces=False,
    )


TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"]


def save_tokenizer(tok: PreTrainedTokenizerFast, dest: Path) -> None:
    """Saves the tokenizer the way the hub checkpoint holds it: through a
    JanusProcessor (tokenizer.json, tokenizer_config.json, chat_template.jinja
    as transformers 5.23 writes them), with `tokenizer_class` set to the
    hub's `LlamaTokenizerFast` and a special_tokens_map.json in the shape
    transformers 4.x wrote (5.x no longer writes one)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        JanusProcessor(
            JanusImageProcessorPil(), tok, chat_template=CHAT_TEMPLATE, use_default_system_prompt=True
        ).save_pretrained(tmp)
        for name in ("tokenizer.json", "chat_template.jinja"):
            shutil.copy(Path(tmp) / name, dest / name)
        tc = json.loads((Path(tmp) / "tokenizer_config.json").read_text())
    tc["tokenizer_class"] = "LlamaTokenizerFast"
    tc["add_bos_token"] = True
    tc["add_eos_token"] = False
    (dest / "tokenizer_config.json").write_text(json.dumps(tc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    stm = {
        "bos_token": {"content": BOS, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "eos_token": {"content": EOS, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "pad_token": {"content": PAD, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "image_token": IMAGE,
        "boi_token": BOI,
        "eoi_token": EOI,
    }
    (dest / "special_tokens_map.json").write_text(json.dumps(stm, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- images

IMAGE_NAMES = [
    "waves_50x37.jpg",
    "alpha_rgba_45x64.png",
    "gray_48x48.png",
    "strip_100x3.png",
    "halfeven_256x27.png",
    "halfeven_80x25.png",
]


def make_images(dest: Path) -> list[str]:
    """Deterministic patterns; returns the file names in fixture order."""
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20250117)

    # 0: RGB JPEG, 50x37 (landscape: padded top and bottom).
    yy, xx = np.mgrid[0:37, 0:50].astype(np.float64)
    rgb = np.stack(
        [255 * xx / 49, 127.5 + 127.5 * np.sin(xx / 4.0) * np.cos(yy / 3.0), 255 * (1 - yy / 36)], axis=-1
    )
    rgb += rng.normal(0, 10, rgb.shape)
    Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8)).save(
        dest / IMAGE_NAMES[0], quality=90, subsampling=0
    )

    # 1: RGBA PNG, 45x64 (portrait: padded left and right), alpha from 0 to 255.
    ay, ax = np.mgrid[0:64, 0:45].astype(np.float64)
    rgba = np.zeros((64, 45, 4))
    rgba[..., 0] = 220 * (np.hypot(ax - 22, ay - 30) < 14)
    rgba[..., 1] = 120 + 100 * np.sin(ay / 5.0)
    rgba[..., 2] = rng.integers(0, 256, (64, 45))
    rgba[..., 3] = np.clip(255 * ay / 63 * (0.5 + 0.5 * np.cos(ax / 7.0)), 0, 255)
    rgba[:6, :6, 3] = 0
    Image.fromarray(np.round(rgba).astype(np.uint8), mode="RGBA").save(dest / IMAGE_NAMES[1])

    # 2: grayscale PNG (mode L), 48x48 (square: no padding).
    gy, gx = np.mgrid[0:48, 0:48]
    gray = ((gx // 6 + gy // 8) % 2) * 150 + 50 + rng.integers(0, 50, (48, 48))
    Image.fromarray(gray.astype(np.uint8), mode="L").save(dest / IMAGE_NAMES[2])

    # 3: RGB PNG 100x3: the short side resizes below min_size in every model.
    sx = np.arange(100, dtype=np.float64)
    strip = np.stack([np.tile(255 * sx / 99, (3, 1)), np.tile(128 + 100 * np.sin(sx / 6.0), (3, 1))], axis=-1)
    strip = np.concatenate([strip, rng.integers(0, 256, (3, 100, 1)).astype(np.float64)], axis=-1)
    Image.fromarray(np.round(strip).astype(np.uint8)).save(dest / IMAGE_NAMES[3])

    # 4: RGB PNG 256x27: at 384 the height is 27 * 1.5 = 40.5, which Python's
    # round() takes to 40 (half to even; half up would give 41).
    # 5: RGB PNG 80x25: at 40 the height is 25 * 0.5 = 12.5 -> 12.
    for name, (w, h) in ((IMAGE_NAMES[4], (256, 27)), (IMAGE_NAMES[5], (80, 25))):
        hy, hx = np.mgrid[0:h, 0:w].astype(np.float64)
        arr = np.stack(
            [128 + 127 * np.sin(hx / 5.0 + hy / 3.0), 255 * hy / (h - 1), 128 + 127 * np.cos(hx / 9.0)], axis=-1
        )
        arr += rng.normal(0, 6, arr.shape)
        Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8)).save(dest / name)
    return list(IMAGE_NAMES)


# ---------------------------------------------------------------- configs

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


def configs(tok: PreTrainedTokenizerFast) -> dict[str, dict]:
    ids = {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    image_id = tok.convert_tokens_to_ids(IMAGE)
    pro1b = {
        "config": {
            "architectures": ["JanusForConditionalGeneration"],
            "image_token_id": image_id,
            "tie_word_embeddings": False,
            "vision_config": {
                "hidden_size": 1024,
                "num_hidden_layers": 2,
                "num_attention_heads": 16,
                "image_size": 384,
                "patch_size": 16,
                "mlp_ratio": 4.0,
                "hidden_act": "gelu",
                "layer_norm_eps": 1e-6,
                "attention_bias": True,
                "use_qk_norm": False,
                "projection_dim": 2048,
                "depth": 2,
                "num_image_tokens": 576,
            },
            "text_config": {
                "model_type": "llama",
                "vocab_size": 102400,
                "hidden_size": 2048,
                "intermediate_size": 5632,
                "num_hidden_layers": 2,
                "num_attention_heads": 16,
                "num_key_value_heads": 16,
                "hidden_act": "silu",
                "max_position_embeddings": 16384,
                "rms_norm_eps": 1e-6,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
                "tie_word_embeddings": False,
                **ids,
            },
            "vq_config": {
                "embed_dim": 8,
                "num_embeddings": 16384,
                "latent_channels": 256,
                "base_channels": 128,
                "channel_multiplier": [1, 1, 2, 2, 4],
                "num_res_blocks": 2,
                "projection_dim": 2048,
                "num_hidden_layers": 2,
                "hidden_act": "gelu",
                "image_token_embed_dim": 2048,
            },
        },
        "processor": {"size": 384, "min_size": 14, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
    }
    tiny = {
        "config": {
            "architectures": ["JanusForConditionalGeneration"],
            "image_token_id": image_id,
            "tie_word_embeddings": False,
            "vision_config": {
                "hidden_size": 48,
                "num_hidden_layers": 2,
                "num_attention_heads": 6,
                "image_size": 40,
                "patch_size": 8,
                "mlp_ratio": 2.7,
                "hidden_act": "gelu",
                "layer_norm_eps": 1e-5,
                "attention_bias": True,
                "use_qk_norm": False,
                "projection_dim": 64,
                "depth": 3,
                "num_image_tokens": 25,
            },
            "text_config": {
                "model_type": "llama",
                "vocab_size": len(tok) + 5,
                "hidden_size": 64,
                "intermediate_size": 112,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "hidden_act": "silu",
                "max_position_embeddings": 256,
                "rms_norm_eps": 1e-5,
                "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0},
                "tie_word_embeddings": False,
                **ids,
            },
            "vq_config": {
                "embed_dim": 4,
                "num_embeddings": 48,
                "latent_channels": 16,
                "base_channels": 32,
                "channel_multiplier": [1, 1, 2, 1],
                "num_res_blocks": 1,
                "projection_dim": 64,
                "num_hidden_layers": 3,
                "hidden_act": "gelu",
                "image_token_embed_dim": 64,
            },
        },
        "processor": {"size": 40, "min_size": 6, "image_mean": OPENAI_MEAN, "image_std": OPENAI_STD},
    }
    return {"pro1b": pro1b, "tiny": tiny}


def image_processor_for(spec: dict) -> JanusImageProcessorPil:
    p = spec["processor"]
    return JanusImageProcessorPil(
        size={"height": p["size"], "width": p["size"]},
        min_size=p["min_size"],
        image_mean=p["image_mean"],
        image_std=p["image_std"],
        rescale_factor=1 / 255,
        do_normalize=True,
        do_rescale=True,
        do_resize=True,
        do_pad=True,
        resample=3,
        do_convert_rgb=True,
    )


def write_model_dir(d: Path, spec: dict, tok: PreTrainedTokenizerFast, tok_dir: Path) -> JanusConfig:
    """config.json, generation_config.json (the converter's fields),
    preprocessor_config.json, and processor_config.json + the tokenizer files
    (JanusProcessor.save_pretrained), so that JanusProcessor.from_pretrained(d)
    works offline."""
    d.mkdir(parents=True, exist_ok=True)
    config = JanusConfig(**copy.deepcopy(spec["config"]))
    config.save_pretrained(str(d))
    # convert_janus_weights_to_hf.py: the model's generation config with
    # temperature 1, guidance_scale 5, the pad token and
    # generation_kwargs.boi_token_id.
    gc = GenerationConfig.from_model_config(config)
    gc._from_model_config = False
    gc.temperature = 1
    gc.guidance_scale = 5
    gc.pad_token_id = tok.convert_tokens_to_ids(PAD)
    gc.generation_kwargs = {"boi_token_id": tok.convert_tokens_to_ids(BOI)}
    gc.save_pretrained(str(d))
    ip = image_processor_for(spec)
    ip.save_pretrained(str(d))
    n_img = spec["config"]["vision_config"]["num_image_tokens"]
    with tempfile.TemporaryDirectory() as tmp:
        JanusProcessor(
            ip, tok, chat_template=CHAT_TEMPLATE, use_default_system_prompt=True, num_image_tokens=n_img
        ).save_pretrained(tmp)
        shutil.copy(Path(tmp) / "processor_config.json", d / "processor_config.json")
    for name in TOKENIZER_FILES:
        shutil.copy(tok_dir / name, d / name)
    return config


# ---------------------------------------------------------------- model


def load_model(d: Path) -> JanusForConditionalGeneration:
    """The model of directory d in f32 with eager attention, every tensor
    seeded as the Rust side does from tensors.json, and d's
    generation_config.json (as from_pretrained would load it)."""
    config = JanusConfig.from_pretrained(str(d))
    model = JanusForConditionalGeneration._from_config(config, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    fill_seeded(model)
    model.generation_config = GenerationConfig.from_pretrained(str(d))
    sd = model.state_dict()
    lm, embed = sd["lm_head.weight"], sd["model.language_model.embed_tokens.weight"]
    assert lm.data_ptr() != embed.data_ptr() and not torch.equal(lm[:4], embed[:4]), "lm_head must be untied"
    return model


def checkpoint_tensors(model: torch.nn.Module) -> list[tuple[str, list[int]]]:
    return [(n, list(t.shape)) for n, t in model.state_dict().items() if t.is_floating_point()]


def top2_margin(scores: torch.Tensor) -> float:
    top2 = torch.topk(scores.float(), 2).values
    return float(top2[0] - top2[1])


class Recorder(LogitsProcessor):
    """Keeps the scores it is given (a copy) and passes them on unchanged."""

    def __init__(self):
        self.scores: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.scores.append(scores.detach().clone())
        return scores


def user_message(*parts: dict) -> list[dict]:
    return [{"role": "user", "content": list(parts)}]


def understanding_case(model, processor, images: list[Image.Image], question: str, max_new: int) -> dict:
    """Greedy text generation (generation_mode="text") for one user turn with
    the images first, then the question."""
    messages = user_message(*[{"type": "image"} for _ in images], {"type": "text", "text": question})
    chat = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=chat, images=images, generation_mode="text", return_tensors="pt")
    input_ids = inputs["input_ids"]
    prompt_len = input_ids.shape[1]
    with torch.no_grad():
        logits = model(
            input_ids=input_ids, pixel_values=inputs["pixel_values"], attention_mask=inputs["attention_mask"]
        ).logits[0, -1]
        g = model.generate(
            **inputs,
            generation_mode="text",
            max_new_tokens=max_new,
            do_sample=False,
            num_beams=1,
            return_dict_in_generate=True,
            output_scores=True,
            output_logits=True,
        )
    assert torch.equal(g.sequences[0, :prompt_len], input_ids[0]), "generate did not return the prompt"
    assert torch.allclose(g.logits[0][0], logits, atol=1e-4), "first-step logits differ from the forward pass"
    ids = g.sequences[0, prompt_len:].tolist()
    margins = [top2_margin(s[0]) for s in g.scores]
    return {
        "chat_text": chat,
        "input_ids": input_ids[0].tolist(),
        "attention_mask": inputs["attention_mask"][0].tolist(),
        "pixel_values": inputs["pixel_values"],
        "logits": logits,
        "ids": ids,
        "margins": margins,
    }


def image_generation_inputs(processor, prompt: str):
    messages = user_message({"type": "text", "text": prompt})
    chat = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=chat, generation_mode="image", return_tensors="pt")
    return chat, inputs


def unconditional_ids(input_ids: torch.Tensor, gc: GenerationConfig) -> torch.Tensor:
    """transformers' unconditional row: every prompt token other than BOS and
    BOI replaced by the pad token (the attention mask stays all ones)."""
    keep = (input_ids == gc.bos_token_id) | (input_ids == gc.generation_kwargs["boi_token_id"])
    return torch.where(keep, input_ids, torch.full_like(input_ids, gc.pad_token_id))


def hand_image_loop(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, scale: float, steps: int):
    """JanusForConditionalGeneration.generate(generation_mode="image") redone
    step by step with a DynamicCache: a batch of [conditional, unconditional]
    rows, each step's last hidden state through generation_head, guided
    scores uncond + (cond - uncond) * scale, argmax, and the token fed back
    to both rows through generation_embeddings + generation_aligner."""
    gc = model.generation_config
    tokens = torch.cat([input_ids, unconditional_ids(input_ids, gc)], dim=0)
    mask = attention_mask.repeat(2, 1)
    embeds = model.get_input_embeddings()(tokens)
    cache = DynamicCache(config=model.config.text_config)
    ids, raw = [], []
    with torch.no_grad():
        for _ in range(steps):
            out = model.model.language_model(
                inputs_embeds=embeds, attention_mask=mask, past_key_values=cache, use_cache=True
            )
            scores = model.model.generation_head(out.last_hidden_state[:, -1, :])
            cond, uncond = scores[0], scores[1]
            guided = uncond + (cond - uncond) * scale
            nxt = int(torch.argmax(guided))
            ids.append(nxt)
            raw.append(scores.clone())
            embeds = model.prepare_embeddings_for_image_generation(torch.tensor([[nxt], [nxt]]))
            mask = torch.cat([mask, torch.ones((2, 1), dtype=mask.dtype)], dim=1)
    return ids, raw


def generation_case(model, processor, prompt: str, guidance: float | None) -> dict:
    """Greedy image generation through transformers' generate, with the raw
    [cond, uncond] scores of every step recorded by a logits processor, then
    checked against the hand loop."""
    chat, inputs = image_generation_inputs(processor, prompt)
    gc = model.generation_config
    scale = gc.guidance_scale if guidance is None else guidance
    n = model.config.vision_config.num_image_tokens
    rec = Recorder()
    kwargs = {} if guidance is None else {"guidance_scale": guidance}
    with torch.no_grad():
        out = model.generate(
            **inputs,
            generation_mode="image",
            do_sample=False,
            logits_processor=LogitsProcessorList([rec]),
            **kwargs,
        )
    ids = out[0].tolist()
    assert len(ids) == n and len(rec.scores) == n
    raw = torch.stack([s for s in rec.scores])  # [n, 2, V]
    cond, uncond = raw[:, 0], raw[:, 1]
    guided = uncond + (cond - uncond) * scale
    assert guided.argmax(-1).tolist() == ids, "guided argmax differs from generate's ids"
    hand_ids, hand_raw = hand_image_loop(model, inputs["input_ids"], inputs["attention_mask"], scale, n)
    assert hand_ids == ids, "the hand loop does not reproduce generate's ids"
    assert torch.allclose(torch.stack(hand_raw), raw, atol=1e-4), "hand-loop scores differ from generate's"
    margins = [top2_margin(row) for row in guided]
    return {
        "chat_text": chat,
        "input_ids": inputs["input_ids"][0].tolist(),
        "uncond_input_ids": unconditional_ids(inputs["input_ids"], gc)[0].tolist(),
        "attention_mask": inputs["attention_mask"][0].tolist(),
        "guidance_scale": scale,
        "ids": ids,
        "margins": margins,
        "cond": cond,
        "uncond": uncond,
        "guided": guided,
    }


def vq_encode(model, pixel_values: torch.Tensor) -> dict:
    """VQ encoder + quant_conv + nearest code (the quantizer's own distance
    formula), with the gap between the nearest and second nearest code."""
    vq = model.model.vqmodel
    with torch.no_grad():
        enc = vq.encode(pixel_values, return_dict=True)
        latent = vq.quant_conv(enc.last_hidden_state)
        z = latent.permute(0, 2, 3, 1).reshape(-1, vq.config.embed_dim)
        e = vq.quantize.embedding.weight
        dist = torch.sum(z**2, dim=1, keepdim=True) + torch.sum(e**2, dim=1) - 2 * torch.einsum("bd,dn->bn", z, e.t())
        two = torch.topk(dist, 2, largest=False).values
    ids = enc.image_tokens.reshape(-1).tolist()
    assert dist.argmin(-1).tolist() == ids
    return {
        "ids": ids,
        "distance_margins_min": float((two[:, 1] - two[:, 0]).min()),
        "encoder": enc.last_hidden_state,
        "latent": latent,
    }


# ---------------------------------------------------------------- cases

QUESTIONS = [
    "What is in the picture?",
    "Describe this image in detail.",
    "What color is the sky?",
    "What is the main object in this image?",
    "Is it day or night?",
    "Describe the colors and the shapes.",
    "What is unusual about this image?",
    "Where was this picture taken?",
]

GEN_PROMPTS = [
    "A dog running under the rain.",
    "A watercolor painting of a quiet mountain lake at dawn.",
    "A photo of an astronaut riding a horse on the moon.",
    "A red car parked in front of an old brick building.",
    "A bowl of ramen with an egg and green onions, studio lighting.",
    "A futuristic city skyline at night with neon lights.",
]

# Per model: understanding slots (images, first question tried), greedy
# max_new_tokens, generation slots (first prompt tried, guidance_scale or None
# for generation_config.json's), how many prompts a generation slot may try,
# the images whose vision/aligner states are stored, VQ encode images, and
# the recorded generation steps (None: every step).
PLAN = {
    "tiny": {
        "understanding": [([0], 0), ([1], 1), ([2], 2), ([3], 3), ([4, 5], 4)],
        "max_new_tokens": 12,
        "generation": [(0, 3.5), (1, None)],
        "generation_tries": len(GEN_PROMPTS),
        "vision_images": [0, 1, 2, 3, 4, 5],
        "vq_encode": [0, 1],
        "recorded_steps": None,
    },
    "pro1b": {
        "understanding": [([0], 0), ([1], 1)],
        "max_new_tokens": 8,
        "generation": [(0, None)],
        "generation_tries": 3,
        "vision_images": [0],
        "vq_encode": [0],
        "recorded_steps": [0, 1, 2, -1],
    },
}


def fixed_grid(n_tokens: int, n_codes: int) -> list[int]:
    return [(i * 7 + 3) % n_codes for i in range(n_tokens)]


def resized_size(ip: JanusImageProcessorPil, image: Image.Image) -> list[int]:
    """[height, width] after the processor's resize (before padding)."""
    out = ip(image, do_pad=False, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"]
    return list(out.shape[-2:])


def run_model(name: str, spec: dict, tok, tok_dir: Path, pil_images: list[Image.Image]) -> dict:
    plan = PLAN[name]
    d = OUT / name
    t0 = time.time()
    config = write_model_dir(d, spec, tok, tok_dir)
    model = load_model(d)
    (d / "tensors.json").write_text(
        json.dumps({"tensors": [[n, s] for n, s in checkpoint_tensors(model)]}, indent=1) + "\n"
    )
    processor = JanusProcessor.from_pretrained(str(d))
    assert isinstance(processor.image_processor, JanusImageProcessorPil), type(processor.image_processor)
    assert processor.num_image_tokens == config.vision_config.num_image_tokens
    assert processor.use_default_system_prompt
    ip = processor.image_processor
    print(f"{name}: model ready in {time.time() - t0:.1f}s", file=sys.stderr)

    expected: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for i in plan["vision_images"]:
            pixels = ip(pil_images[i], return_tensors="pt")["pixel_values"]
            feats = model.model.get_image_features(pixels, return_dict=True)
            expected[f"pixel_values.{i}"] = pixels.numpy()
            expected[f"vision.{i}"] = feats.last_hidden_state.numpy()
            expected[f"aligner.{i}"] = feats.pooler_output.numpy()

    understanding = []
    for c, (imgs, q0) in enumerate(plan["understanding"]):
        for k in range(len(QUESTIONS)):
            q = (q0 + k) % len(QUESTIONS)
            r = understanding_case(model, processor, [pil_images[i] for i in imgs], QUESTIONS[q], plan["max_new_tokens"])
            if min(r["margins"]) >= MIN_MARGIN:
                break
            print(f"{name} understanding {c}: question {q} margin {min(r['margins']):.2e}, next", file=sys.stderr)
        else:
            raise AssertionError(f"{name} understanding {c}: no question clears MIN_MARGIN")
        pv = r.pop("pixel_values")
        for j, i in enumerate(imgs):
            if f"pixel_values.{i}" in expected:
                assert torch.equal(pv[j : j + 1], torch.from_numpy(expected[f"pixel_values.{i}"]))
        expected[f"logits.{c}"] = r.pop("logits").numpy()
        ids = r.pop("ids")
        eos = model.generation_config.eos_token_id
        case = {
            "images": imgs,
            "question": QUESTIONS[q],
            "chat_text": r["chat_text"],
            "input_ids": r["input_ids"],
        }
        if min(r["attention_mask"]) == 0:
            case["attention_mask"] = r["attention_mask"]
        case["greedy"] = {
            "max_new_tokens": plan["max_new_tokens"],
            "ids": ids,
            "stopped_on_eos": bool(ids) and ids[-1] == eos,
            "text": tok.decode(ids, skip_special_tokens=True),
            "margins": r["margins"],
        }
        understanding.append(case)
        print(f"{name} understanding {c}: {ids} (min margin {min(r['margins']):.2e})", file=sys.stderr)

    generation = []
    for g, (p0, guidance) in enumerate(plan["generation"]):
        best = None
        for k in range(plan["generation_tries"]):
            p = (p0 + k) % len(GEN_PROMPTS)
            t1 = time.time()
            r = generation_case(model, processor, GEN_PROMPTS[p], guidance)
            below = [s for s, m in enumerate(r["margins"]) if m < MIN_MARGIN]
            print(
                f"{name} generation {g}: prompt {p}, {len(below)} steps below MIN_MARGIN ({time.time() - t1:.1f}s)",
                file=sys.stderr,
            )
            if best is None or len(below) < len(best[2]):
                best = (p, r, below)
            if not below:
                break
        p, r, below = best
        n = len(r["ids"])
        steps = list(range(n)) if plan["recorded_steps"] is None else [s % n for s in plan["recorded_steps"]]
        for key in ("cond", "uncond", "guided"):
            expected[f"gen_{key}.{g}"] = r.pop(key)[steps].numpy()
        generation.append(
            {
                "prompt": GEN_PROMPTS[p],
                "chat_text": r["chat_text"],
                "input_ids": r["input_ids"],
                "uncond_input_ids": r["uncond_input_ids"],
                "attention_mask": r["attention_mask"],
                "guidance_scale": r["guidance_scale"],
                "guidance_scale_from": "generation_config" if guidance is None else "argument",
                "do_sample": False,
                "ids": r["ids"],
                "margins": r["margins"],
                "steps_below_min_margin": below,
                "recorded_steps": steps,
            }
        )

    vq = {"decode": [], "encode": []}
    n_tok = config.vision_config.num_image_tokens
    n_codes = config.vq_config.num_embeddings
    grids = [("fixed", fixed_grid(n_tok, n_codes))]
    if name == "tiny":
        grids.append(("generation.0", generation[0]["ids"]))
    with torch.no_grad():
        for k, (source, grid) in enumerate(grids):
            decoded = model.decode_image_tokens(torch.tensor([grid]))  # NHWC
            # The PIL backend's postprocess only works channels-first (its
            # normalize ignores input_data_format), so the NHWC decode is
            # permuted back; it returns HWC uint8 either way.
            chw = list(decoded.permute(0, 3, 1, 2).float())
            post_chw = processor.postprocess(chw)["pixel_values"][0]
            pil = processor.postprocess(chw, return_tensors="PIL.Image.Image")["pixel_values"][0]
            post = np.asarray(pil)  # HWC uint8, as the images reach the user
            assert post_chw.dtype == np.uint8 and post.shape == tuple(decoded.shape[1:]), post.shape
            assert np.array_equal(post_chw.transpose(1, 2, 0), post)
            try:
                processor.postprocess(list(decoded.float()))
                raise AssertionError("the PIL backend's postprocess now takes NHWC: update the docstring")
            except ValueError:
                pass
            expected[f"vq_decode.{k}"] = decoded.numpy()
            expected[f"vq_post.{k}"] = post.astype(np.float32)
            vq["decode"].append({"source": source, "ids": grid})
        for k, i in enumerate(plan["vq_encode"]):
            pixels = torch.from_numpy(expected[f"pixel_values.{i}"])
            r = vq_encode(model, pixels)
            expected[f"vq_latent.{k}"] = r["latent"].numpy()
            if name == "tiny":
                expected[f"vq_encoder.{k}"] = r["encoder"].numpy()
            vq["encode"].append(
                {"image": i, "ids": r["ids"], "distance_margin_min": r["distance_margins_min"]}
            )
            print(f"{name} vq encode {k}: {len(set(r['ids']))} distinct codes", file=sys.stderr)

    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in expected.items()}, str(d / "expected.safetensors"))
    del model
    print(f"{name}: done in {time.time() - t0:.1f}s", file=sys.stderr)
    return {
        "vocab_size": config.text_config.vocab_size,
        "image_token_id": config.image_token_id,
        "num_image_tokens": n_tok,
        "image_size": config.vision_config.image_size,
        "vq_image_size": config.vq_config.num_patches * 2 ** (len(config.vq_config.channel_multiplier) - 1),
        "eos_token_id": tok.eos_token_id,
        "resized_sizes": [resized_size(ip, im) for im in pil_images],
        "expected": sorted(expected, key=lambda k: (k.split(".")[0], int(k.split(".")[1]))),
        "understanding": understanding,
        "generation": generation,
        "vq": vq,
    }


CHAT_EXAMPLES = [
    (user_message({"type": "image"}, {"type": "text", "text": "What is in the picture?"}), True),
    (user_message({"type": "text", "text": "  A dog running under the rain.  "}), True),
    (user_message({"type": "text", "text": "Compare"}, {"type": "image"}, {"type": "text", "text": "and"}, {"type": "image"}), True),
    (user_message({"type": "text", "text": "Two"}, {"type": "text", "text": "texts"}), False),
    (
        user_message({"type": "image"}, {"type": "text", "text": "Describe it."})
        + [{"role": "assistant", "content": [{"type": "text", "text": "A red car."}]}]
        + user_message({"type": "text", "text": "And the sky?"}),
        True,
    ),
    (
        [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]}]
        + user_message({"type": "text", "text": "Hi"})
        + [{"role": "assistant", "content": [{"type": "text", "text": ""}]}],
        False,
    ),
]


def main() -> None:
    t_start = time.time()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    for entry in OUT.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    tok_dir = OUT / "tokenizer"
    save_tokenizer(build_tokenizer(), tok_dir)
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    assert [tok.convert_tokens_to_ids(s) for s in SPECIALS] == list(range(tok.vocab_size, tok.vocab_size + 6))
    assert tok("a")["input_ids"][0] == tok.bos_token_id and tok.image_token == IMAGE

    image_names = make_images(OUT / "images")
    pil_images = [Image.open(OUT / "images" / n) for n in image_names]


    chat_examples = []
    for messages, add_gen in CHAT_EXAMPLES:
        text = tok.apply_chat_template(messages, chat_template=CHAT_TEMPLATE, add_generation_prompt=add_gen, tokenize=False)
        chat_examples.append({"messages": messages, "add_generation_prompt": add_gen, "text": text})

    cases: dict = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "min_margin": MIN_MARGIN,
        "tokenizer": {
            "size": len(tok),
            "bpe_vocab_size": tok.vocab_size,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
            "image_token_id": tok.convert_tokens_to_ids(IMAGE),
            "boi_token_id": tok.convert_tokens_to_ids(BOI),
            "eoi_token_id": tok.convert_tokens_to_ids(EOI),
        },
        "system_prompt": DEFAULT_SYSTEM_PROMPT,
        "chat_template_examples": chat_examples,
        "images": [f"images/{n}" for n in image_names],
        "image_modes": [im.mode for im in pil_images],
        "image_sizes": [list(im.size) for im in pil_images],
        "questions": QUESTIONS,
        "generation_prompts": GEN_PROMPTS,
        "models": {},
    }
    for name, spec in configs(tok).items():
        cases["models"][name] = run_model(name, spec, tok, tok_dir, pil_images)

    (OUT / "cases.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"fixtures written to {OUT} ({total / 1e6:.2f} MB) in {time.time() - t_start:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()

"""The seeded weight generator of Tessera's parity suites (Python side).

Every model's fixture generator fills its transformers model with these
values, and the Rust suites rebuild the same tensors with the
`tessera-parity` crate (tests/parity/src/lib.rs). Element i of tensor NAME is

    u = (word(fnv1a64(NAME), i) >> 11) * 2^-53     (crates/tensor/src/rng.rs)
    value = f32(mean + amp * (2u - 1))              (computed in f64)

with (mean, amp) from the tensor's role (`weight_law`): norm weights near 1
and norm biases near 0 for every architecture's norm names, other biases
±0.02, embeddings ±0.05, other weights of standard deviation 0.02. Only
integer arithmetic and one f64 expression are involved, so both languages
produce identical bits.

Import it from a generator with

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "parity"))
    from seeded_weights import fill_seeded, seeded_tensor
"""

from __future__ import annotations

from typing import Callable

import numpy as np

MASK = (1 << 64) - 1


def fnv1a64(name: str) -> int:
    h = 0xCBF29CE484222325
    for b in name.encode():
        h ^= b
        h = (h * 0x100000001B3) & MASK
    return h


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def uniform(seed: int, n: int) -> np.ndarray:
    """`rng::uniform(seed, i)` for i in 0..n, as float64."""
    with np.errstate(over="ignore"):
        s = _splitmix64(np.array([seed], dtype=np.uint64))[0]
        i = np.arange(n, dtype=np.uint64) * np.uint64(0xD1B54A32D192ED03)
        w = _splitmix64(s ^ i)
    return (w >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def is_norm_component(part: str) -> bool:
    """Whether a module path component names a normalisation layer:
    LayerNorm (`layer_norm1`, `final_layer_norm`, `post_layernorm`, CLIP's
    `pre_layrnorm`, `ln_1`, `ln_f`), Llama's `norm`, `input_layernorm`,
    `post_attention_layernorm`, RMSNorm (`rms_norm`, `q_norm`, `norm1`)."""
    p = part.lower()
    return "norm" in p or p == "ln" or p.startswith("ln_") or (p.startswith("ln") and p[2:].isdigit())


def is_norm(name: str) -> bool:
    """Whether tensor `name` belongs to a normalisation layer."""
    return any(is_norm_component(p) for p in name.split(".")[:-1])


def weight_law(name: str) -> tuple[float, float]:
    """(mean, amplitude) of tensor `name`: values are uniform in mean ± amp."""
    leaf = name.rsplit(".", 1)[-1]
    norm = is_norm(name)
    if norm and leaf == "weight":
        return 1.0, 0.1
    if norm and leaf == "bias":
        return 0.0, 0.05
    if leaf == "bias":
        return 0.0, 0.02
    if "embed" in name:
        return 0.0, 0.05
    # Linear and conv weights: standard deviation 0.02.
    return 0.0, 0.02 * 3.0**0.5


def seeded_tensor(name: str, shape: tuple[int, ...]) -> np.ndarray:
    mean, amp = weight_law(name)
    n = int(np.prod(shape, dtype=np.int64))
    u = uniform(fnv1a64(name), n)
    return (mean + amp * (2.0 * u - 1.0)).astype(np.float32).reshape(shape)


def fill_seeded(model, special: Callable[[str, tuple[int, ...]], np.ndarray | None] | None = None) -> None:
    """Fills every floating-point tensor of a torch module's state dict with
    its seeded values; `special(name, shape)` may return other values for a
    model's own cases (e.g. CLIP's `logit_scale`), or None."""
    import torch

    with torch.no_grad():
        for name, p in model.state_dict().items():
            if not p.is_floating_point():
                continue
            shape = tuple(p.shape)
            values = special(name, shape) if special is not None else None
            p.copy_(torch.from_numpy(seeded_tensor(name, shape) if values is None else values))

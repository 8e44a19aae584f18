"""Reference outputs of transformers' `generate` for crates/nn/tests/generation.rs.

A toy causal LM whose next-token logits are a fixed hash of the whole
sequence (prompt included), exactly representable in f32, runs through
transformers' own greedy and beam-search loops (no KV cache: each step sees
the full sequence). The test implements the same logits table in Rust and
checks that Tessera's `generate` returns the same new token ids and scores.

Pinned to transformers==5.23.0 (torch CPU). Run:
    python crates/nn/tests/generation_reference.py
It prints one JSON line per case (config, prompt, new tokens, score); the
test's `CASES` table holds the same values.
"""

import json

import torch
from torch import nn
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast
import transformers

assert transformers.__version__ == "5.23.0", f"pinned to transformers 5.23.0, found {transformers.__version__}"

VOCAB = 32
M = 0xFFFFFFFF


def row_logits(seq, eos_ids, prompt_len):
    """The logits after `seq`: FNV-1a over the tokens, one mixed hash per
    vocabulary entry, scaled to [0, 4); eos ids gain 0.25 per new token."""
    h = 2166136261
    for t in seq:
        h = ((h ^ t) * 16777619) & M
    out = []
    for v in range(VOCAB):
        x = h ^ ((v * 0x9E3779B9) & M)
        x ^= x >> 16
        x = (x * 0x85EBCA6B) & M
        x ^= x >> 13
        x = (x * 0xC2B2AE35) & M
        x ^= x >> 16
        logit = (x >> 12) / 2.0**18
        if v in eos_ids:
            logit += 0.25 * (len(seq) - prompt_len)
        out.append(logit)
    return out


class TableConfig(PretrainedConfig):
    model_type = "table_lm"

    def __init__(self, vocab_size=VOCAB, table_eos=(), prompt_len=0, **kwargs):
        self.vocab_size = vocab_size
        self.table_eos = list(table_eos)
        self.prompt_len = prompt_len
        super().__init__(**kwargs)


class TableLM(PreTrainedModel, GenerationMixin):
    config_class = TableConfig

    def __init__(self, config):
        super().__init__(config)
        self.dummy = nn.Parameter(torch.zeros(1))
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        b, t = input_ids.shape
        logits = torch.zeros(b, t, VOCAB, dtype=torch.float32)
        for i in range(b):
            row = row_logits(input_ids[i].tolist(), self.config.table_eos, self.config.prompt_len)
            logits[i, -1] = torch.tensor(row, dtype=torch.float32)
        return CausalLMOutputWithPast(logits=logits)


PROMPTS = [[3, 7, 1], [11], [2, 2, 8, 30]]
# (name, generate kwargs); eos ids also drive the table's eos boost.
CONFIGS = [
    ("greedy", dict(num_beams=1, eos=[5], max_new_tokens=12)),
    ("greedy_rep_min", dict(num_beams=1, eos=[5], max_new_tokens=12, repetition_penalty=1.3, min_new_tokens=4)),
    ("beam3", dict(num_beams=3, eos=[5], max_new_tokens=12)),
    ("beam3_lp2", dict(num_beams=3, eos=[5], max_new_tokens=12, length_penalty=2.0)),
    ("beam3_lp_neg", dict(num_beams=3, eos=[5], max_new_tokens=12, length_penalty=-1.0)),
    ("beam3_lp0_never", dict(num_beams=3, eos=[5], max_new_tokens=12, length_penalty=0.0, early_stopping="never")),
    ("beam4_two_eos_early", dict(num_beams=4, eos=[5, 9], max_new_tokens=12, early_stopping=True)),
    ("beam4_two_eos_never", dict(num_beams=4, eos=[5, 9], max_new_tokens=12, early_stopping="never", length_penalty=1.5)),
    ("beam2_rep_min", dict(num_beams=2, eos=[5], max_new_tokens=10, repetition_penalty=1.3, min_new_tokens=6)),
    ("beam5_no_eos", dict(num_beams=5, eos=[], max_new_tokens=6)),
    ("beam3_short", dict(num_beams=3, eos=[5, 9, 17], max_new_tokens=3)),
]


def main():
    torch.manual_seed(0)
    cases = []
    for name, base in CONFIGS:
        for prompt in PROMPTS:
            cfg = dict(base)
            eos = cfg.pop("eos")
            model = TableLM(TableConfig(table_eos=eos, prompt_len=len(prompt))).eval()
            ids = torch.tensor([prompt])
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                use_cache=False,
                eos_token_id=eos if eos else None,
                pad_token_id=0,
                return_dict_in_generate=True,
                output_scores=True,
                **cfg,
            )
            new = out.sequences[0, len(prompt):].tolist()
            score = out.sequences_scores[0].item() if getattr(out, "sequences_scores", None) is not None else None
            cases.append(dict(name=name, prompt=prompt, eos=eos, cfg=cfg, new=new, score=score))
    for c in cases:
        print(json.dumps(c))


if __name__ == "__main__":
    with torch.no_grad():
        main()

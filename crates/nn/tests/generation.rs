//! The generation loop: KV-cached decoding against full recomputation,
//! greedy and beam search against transformers 5.23 and hand-computed
//! expectations, sampling, and `generation_config.json` parsing.

mod common;

use std::cell::Cell;
use std::collections::HashMap;

use common::{builder, dev, random};
use tessera_nn::{
    generate, AttentionConfig, CausalDecoder, EarlyStopping, Embedding, Generated, GenerationConfig, KvCache, Linear, MultiHeadAttention,
    Result, RotaryEmbedding, StopReason,
};
use tessera_tensor::{RopeStyle, Tensor};

fn logits_tensor(rows: &[Vec<f32>]) -> Tensor {
    let vocab = rows[0].len();
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&flat, (rows.len(), vocab), &dev()).unwrap()
}

/// Runs `generate` and records what the callback reports.
fn run<D: CausalDecoder>(
    decoder: &D,
    state: D::State,
    first: &[f32],
    prompt: &[u32],
    config: &GenerationConfig,
) -> (Generated, Vec<(usize, u32)>) {
    let mut seen = Vec::new();
    let first = logits_tensor(&[first.to_vec()]);
    let out = generate(decoder, state, &first, prompt, config, &mut |i, t| seen.push((i, t))).unwrap();
    (out, seen)
}

fn rearrange<T: Clone>(rows: &mut Vec<T>, idx: &[usize]) -> Result<()> {
    if let Some(&bad) = idx.iter().find(|&&i| i >= rows.len()) {
        return Err(tessera_nn::Error::invalid("test", format!("row {bad} out of range")));
    }
    *rows = idx.iter().map(|&i| rows[i].clone()).collect();
    Ok(())
}

// ------------------------------------------------ the hash-table toy LM

const VOCAB: usize = 32;

/// The logits after `seq`, exactly as `generation_reference.py` computes
/// them: FNV-1a over the tokens, one mixed hash per vocabulary entry scaled
/// to [0, 4), plus 0.25 per new token on the eos ids (exact in f32).
fn table_logits(seq: &[u32], eos: &[u32], prompt_len: usize) -> Vec<f32> {
    let mut h: u32 = 2166136261;
    for &t in seq {
        h = (h ^ t).wrapping_mul(16777619);
    }
    (0..VOCAB as u32)
        .map(|v| {
            let mut x = h ^ v.wrapping_mul(0x9E3779B9);
            x ^= x >> 16;
            x = x.wrapping_mul(0x85EBCA6B);
            x ^= x >> 13;
            x = x.wrapping_mul(0xC2B2AE35);
            x ^= x >> 16;
            let mut logit = (x >> 12) as f64 / 262144.0;
            if eos.contains(&v) {
                logit += 0.25 * (seq.len() - prompt_len) as f64;
            }
            logit as f32
        })
        .collect()
}

/// The table LM as a decoder: each row's state is its whole sequence.
struct TableLm {
    eos: Vec<u32>,
    prompt_len: usize,
    steps: Cell<usize>,
}

impl CausalDecoder for TableLm {
    type State = Vec<Vec<u32>>;

    fn decode_step(&self, tokens: &[u32], state: &mut Self::State) -> Result<Tensor> {
        assert_eq!(tokens.len(), state.len(), "one token per row");
        self.steps.set(self.steps.get() + 1);
        let rows: Vec<Vec<f32>> = state
            .iter_mut()
            .zip(tokens)
            .map(|(seq, &t)| {
                seq.push(t);
                table_logits(seq, &self.eos, self.prompt_len)
            })
            .collect();
        Ok(logits_tensor(&rows))
    }

    fn select_rows(&self, state: &mut Self::State, rows: &[usize]) -> Result<()> {
        rearrange(state, rows)
    }
}

struct Case {
    name: &'static str,
    prompt: &'static [u32],
    eos: &'static [u32],
    num_beams: usize,
    max_new_tokens: usize,
    min_new_tokens: usize,
    length_penalty: f64,
    early_stopping: EarlyStopping,
    repetition_penalty: f64,
    expected: &'static [u32],
    score: Option<f64>,
}

/// Printed by `crates/nn/tests/generation_reference.py` (transformers 5.23.0,
/// torch CPU): `model.generate(..., do_sample=False, use_cache=False,
/// pad_token_id=0)` on the same table LM, new tokens and `sequences_scores`.
#[rustfmt::skip]
const CASES: &[Case] = &[
    Case { name: "greedy", prompt: &[3, 7, 1], eos: &[5], num_beams: 1, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[1, 0, 0, 6, 24, 7, 29, 18, 5], score: None },
    Case { name: "greedy", prompt: &[11], eos: &[5], num_beams: 1, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[22, 8, 4, 23, 4, 11, 5], score: None },
    Case { name: "greedy", prompt: &[2, 2, 8, 30], eos: &[5], num_beams: 1, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[10, 4, 1, 5], score: None },
    Case { name: "greedy_rep_min", prompt: &[3, 7, 1], eos: &[5], num_beams: 1, max_new_tokens: 12, min_new_tokens: 4, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.3, expected: &[26, 12, 11, 20, 31, 29, 9, 27, 5], score: None },
    Case { name: "greedy_rep_min", prompt: &[11], eos: &[5], num_beams: 1, max_new_tokens: 12, min_new_tokens: 4, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.3, expected: &[22, 8, 4, 23, 5], score: None },
    Case { name: "greedy_rep_min", prompt: &[2, 2, 8, 30], eos: &[5], num_beams: 1, max_new_tokens: 12, min_new_tokens: 4, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.3, expected: &[10, 4, 1, 0, 19, 7, 25, 23, 11, 31, 5], score: None },
    Case { name: "beam3", prompt: &[3, 7, 1], eos: &[5], num_beams: 3, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[14, 17, 15, 23, 17, 5], score: Some(-1.9715265035629272) },
    Case { name: "beam3", prompt: &[11], eos: &[5], num_beams: 3, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[22, 8, 4, 21, 30, 5], score: Some(-1.9267622232437134) },
    Case { name: "beam3", prompt: &[2, 2, 8, 30], eos: &[5], num_beams: 3, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[10, 4, 1, 5], score: Some(-1.9771881103515625) },
    Case { name: "beam3_lp2", prompt: &[3, 7, 1], eos: &[5], num_beams: 3, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 2.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[14, 17, 15, 3, 19, 27, 17, 11, 12, 5], score: Some(-0.20274721086025238) },
    Case { name: "beam3_lp2", prompt: &[11], eos: &[5], num_beams: 3, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 2.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[22, 12, 12, 22, 19, 6, 11, 19, 2, 1, 4, 5], score: Some(-0.17299358546733856) },
    Case { name: "beam3_lp2", prompt: &[2, 2, 8, 30], eos: &[5], num_beams: 3, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 2.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[10, 4, 1, 0, 19, 7, 25, 25, 4, 25, 13, 5], score: Some(-0.17311184108257294) },
    Case { name: "beam3_lp_neg", prompt: &[3, 7, 1], eos: &[5], num_beams: 3, max_new_tokens: 12, min_new_tokens: 0, length_penalty: -1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[14, 17, 15, 3, 5], score: Some(-52.0712890625) },
    Case { name: "beam3_lp_neg", prompt: &[11], eos: &[5], num_beams: 3, max_new_tokens: 12, min_new_tokens: 0, length_penalty: -1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[24, 10, 5], score: Some(-18.08336639404297) },
    Case { name: "beam3_lp_neg", prompt: &[2, 2, 8, 30], eos: &[5], num_beams: 3, max_new_tokens: 12, min_new_tokens: 0, length_penalty: -1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[10, 5], score: Some(-9.00111198425293) },
    Case { name: "beam3_lp0_never", prompt: &[3, 7, 1], eos: &[5], num_beams: 3, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 0.0, early_stopping: EarlyStopping::Never, repetition_penalty: 1.0, expected: &[14, 17, 15, 3, 5], score: Some(-10.414258003234863) },
    Case { name: "beam3_lp0_never", prompt: &[11], eos: &[5], num_beams: 3, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 0.0, early_stopping: EarlyStopping::Never, repetition_penalty: 1.0, expected: &[24, 10, 5], score: Some(-6.027789115905762) },
    Case { name: "beam3_lp0_never", prompt: &[2, 2, 8, 30], eos: &[5], num_beams: 3, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 0.0, early_stopping: EarlyStopping::Never, repetition_penalty: 1.0, expected: &[10, 5], score: Some(-4.500555992126465) },
    Case { name: "beam4_two_eos_early", prompt: &[3, 7, 1], eos: &[5, 9], num_beams: 4, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Always, repetition_penalty: 1.0, expected: &[14, 17, 15, 23, 17, 5], score: Some(-2.0088751316070557) },
    Case { name: "beam4_two_eos_early", prompt: &[11], eos: &[5, 9], num_beams: 4, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Always, repetition_penalty: 1.0, expected: &[22, 8, 4, 21, 30, 5], score: Some(-1.9409914016723633) },
    Case { name: "beam4_two_eos_early", prompt: &[2, 2, 8, 30], eos: &[5, 9], num_beams: 4, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Always, repetition_penalty: 1.0, expected: &[10, 4, 1, 5], score: Some(-1.9987294673919678) },
    Case { name: "beam4_two_eos_never", prompt: &[3, 7, 1], eos: &[5, 9], num_beams: 4, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 1.5, early_stopping: EarlyStopping::Never, repetition_penalty: 1.0, expected: &[14, 17, 15, 3, 19, 27, 26, 13, 11, 28, 30, 5], score: Some(-0.600878119468689) },
    Case { name: "beam4_two_eos_never", prompt: &[11], eos: &[5, 9], num_beams: 4, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 1.5, early_stopping: EarlyStopping::Never, repetition_penalty: 1.0, expected: &[24, 19, 20, 16, 26, 0, 13, 6, 10, 27, 18, 9], score: Some(-0.6252776980400085) },
    Case { name: "beam4_two_eos_never", prompt: &[2, 2, 8, 30], eos: &[5, 9], num_beams: 4, max_new_tokens: 12, min_new_tokens: 0, length_penalty: 1.5, early_stopping: EarlyStopping::Never, repetition_penalty: 1.0, expected: &[10, 4, 1, 0, 19, 7, 25, 29, 20, 11, 23, 9], score: Some(-0.6119889616966248) },
    Case { name: "beam2_rep_min", prompt: &[3, 7, 1], eos: &[5], num_beams: 2, max_new_tokens: 10, min_new_tokens: 6, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.3, expected: &[14, 21, 15, 6, 2, 29, 11, 5], score: Some(-2.1243631839752197) },
    Case { name: "beam2_rep_min", prompt: &[11], eos: &[5], num_beams: 2, max_new_tokens: 10, min_new_tokens: 6, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.3, expected: &[22, 8, 4, 21, 25, 26, 17, 27, 5], score: Some(-2.016746759414673) },
    Case { name: "beam2_rep_min", prompt: &[2, 2, 8, 30], eos: &[5], num_beams: 2, max_new_tokens: 10, min_new_tokens: 6, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.3, expected: &[10, 4, 1, 0, 19, 7, 25, 29, 20, 5], score: Some(-2.100163698196411) },
    Case { name: "beam5_no_eos", prompt: &[3, 7, 1], eos: &[], num_beams: 5, max_new_tokens: 6, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[14, 17, 15, 3, 19, 27], score: Some(-2.0935261249542236) },
    Case { name: "beam5_no_eos", prompt: &[11], eos: &[], num_beams: 5, max_new_tokens: 6, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[24, 19, 20, 16, 26, 1], score: Some(-2.0389280319213867) },
    Case { name: "beam5_no_eos", prompt: &[2, 2, 8, 30], eos: &[], num_beams: 5, max_new_tokens: 6, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[10, 4, 1, 0, 19, 7], score: Some(-2.1052472591400146) },
    Case { name: "beam3_short", prompt: &[3, 7, 1], eos: &[5, 9, 17], num_beams: 3, max_new_tokens: 3, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[14, 17], score: Some(-2.1440207958221436) },
    Case { name: "beam3_short", prompt: &[11], eos: &[5, 9, 17], num_beams: 3, max_new_tokens: 3, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[24, 10, 5], score: Some(-2.021240472793579) },
    Case { name: "beam3_short", prompt: &[2, 2, 8, 30], eos: &[5, 9, 17], num_beams: 3, max_new_tokens: 3, min_new_tokens: 0, length_penalty: 1.0, early_stopping: EarlyStopping::Heuristic, repetition_penalty: 1.0, expected: &[10, 4, 1], score: Some(-2.1453025341033936) },
];

#[test]
fn greedy_and_beam_search_match_transformers() {
    let mut differs = 0;
    for c in CASES {
        let lm = TableLm { eos: c.eos.to_vec(), prompt_len: c.prompt.len(), steps: Cell::new(0) };
        let mut config = GenerationConfig::greedy(c.max_new_tokens);
        config.num_beams = c.num_beams;
        config.min_new_tokens = c.min_new_tokens;
        config.length_penalty = c.length_penalty;
        config.early_stopping = c.early_stopping;
        config.repetition_penalty = c.repetition_penalty;
        config.eos_token_ids = c.eos.to_vec();
        let first = table_logits(c.prompt, c.eos, c.prompt.len());
        let (out, seen) = run(&lm, vec![c.prompt.to_vec()], &first, c.prompt, &config);
        assert_eq!(out.token_ids, c.expected, "{} {:?}", c.name, c.prompt);
        let ended_on_eos = c.expected.last().is_some_and(|t| c.eos.contains(t));
        assert_eq!(out.stop, if ended_on_eos { StopReason::Eos } else { StopReason::MaxNewTokens }, "{}", c.name);
        match (out.score, c.score) {
            (Some(got), Some(want)) => assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "{}: score {got} vs {want}", c.name),
            (None, None) => assert_eq!(seen.iter().map(|&(_, t)| t).collect::<Vec<_>>(), c.expected, "greedy streams its tokens"),
            other => panic!("{}: scores {other:?}", c.name),
        }
        // One report per step, in order.
        assert!(seen.iter().enumerate().all(|(i, &(s, _))| i == s), "{}", c.name);
        if c.num_beams > 1 {
            let greedy = CASES.iter().find(|g| g.name == "greedy" && g.prompt == c.prompt).unwrap();
            differs += usize::from(greedy.expected != c.expected);
        }
    }
    assert!(differs >= 5, "the reference cases exercise beams that differ from greedy");
}

// ------------------------------------------- a tiny attention LM with a cache

/// Embedding, one causal rotary attention layer with grouped KV heads, and
/// an LM head; decoded with a batched [`KvCache`] or recomputed from the
/// whole sequence.
struct AttnLm {
    embed: Embedding,
    attn: MultiHeadAttention,
    head: Linear,
    /// Largest difference seen between a cached step and a full recompute,
    /// relative to the largest logit.
    max_diff: Cell<f32>,
    /// Calls of `select_rows` that moved rows (beyond the expansion).
    reorders: Cell<usize>,
    recompute_only: bool,
}

const A_VOCAB: usize = 12;
const EOS_A: u32 = 7;

impl AttnLm {
    fn new(recompute_only: bool) -> AttnLm {
        let (hidden, heads, kv_heads, d) = (16, 4, 2, 4);
        let vb = builder(vec![
            ("q_proj.weight", random(1, &[heads * d, hidden])),
            ("k_proj.weight", random(2, &[kv_heads * d, hidden])),
            ("v_proj.weight", random(3, &[kv_heads * d, hidden])),
            ("o_proj.weight", random(4, &[hidden, heads * d])),
        ]);
        let cfg = AttentionConfig::new(hidden, heads).with_kv_heads(kv_heads).with_causal(true);
        let rope = RotaryEmbedding::new(500.0, d, 64, RopeStyle::HalfSplit, &dev()).unwrap();
        let attn = MultiHeadAttention::load(&vb, &cfg).unwrap().with_rotary(rope).unwrap();
        let embed = Embedding::new(random(5, &[A_VOCAB, hidden]).affine(3.0, 0.0).unwrap()).unwrap();
        let head = Linear::new(random(6, &[A_VOCAB, hidden]).affine(0.4, 0.0).unwrap(), None).unwrap();
        AttnLm { embed, attn, head, max_diff: Cell::new(0.0), reorders: Cell::new(0), recompute_only }
    }

    /// Logits `[rows, vocab]` at the last of `ids` `[rows, t]`.
    fn forward(&self, ids: &[u32], rows: usize, cache: Option<&mut KvCache>) -> Tensor {
        let t = ids.len() / rows;
        let x = self.embed.forward(&Tensor::from_slice(ids, (rows, t), &dev()).unwrap()).unwrap();
        let y = self.attn.forward(&x, None, cache).unwrap();
        let last = y.narrow(1, t - 1, 1).unwrap().reshape((rows, 16)).unwrap();
        self.head.forward(&last).unwrap()
    }

    fn prefill(&self, prompt: &[u32]) -> (AttnState, Tensor) {
        let mut cache = KvCache::new();
        let logits = self.forward(prompt, 1, Some(&mut cache));
        (AttnState { cache, seqs: vec![prompt.to_vec()] }, logits)
    }
}

struct AttnState {
    cache: KvCache,
    seqs: Vec<Vec<u32>>,
}

impl CausalDecoder for AttnLm {
    type State = AttnState;

    fn decode_step(&self, tokens: &[u32], state: &mut AttnState) -> Result<Tensor> {
        let rows = tokens.len();
        for (seq, &t) in state.seqs.iter_mut().zip(tokens) {
            seq.push(t);
        }
        let full: Vec<Vec<f32>> = state.seqs.iter().map(|s| self.forward(s, 1, None).to_f32_vec().unwrap()).collect();
        if self.recompute_only {
            return Ok(logits_tensor(&full));
        }
        let cached = self.forward(tokens, rows, Some(&mut state.cache));
        assert_eq!(state.cache.len(), state.seqs[0].len(), "the cache holds every position");
        // The difference relative to the logits' scale.
        let scale = full.iter().flatten().fold(1.0f32, |m, x| m.max(x.abs()));
        let diff = cached.to_f32_vec()?.iter().zip(full.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        self.max_diff.set(self.max_diff.get().max(diff / scale));
        Ok(cached)
    }

    fn select_rows(&self, state: &mut AttnState, rows: &[usize]) -> Result<()> {
        if state.seqs.len() == rows.len() {
            self.reorders.set(self.reorders.get() + 1);
        }
        let idx = Tensor::from_slice(&rows.iter().map(|&r| r as u32).collect::<Vec<_>>(), rows.len(), &dev())?;
        let (k, v) = (state.cache.k().unwrap().index_select(&idx, 0)?, state.cache.v().unwrap().index_select(&idx, 0)?);
        state.cache = KvCache::new();
        state.cache.append(&k, &v)?;
        rearrange(&mut state.seqs, rows)
    }
}

#[test]
fn cached_decoding_equals_full_recompute_at_every_step() {
    let prompt = [3u32, 1, 4, 1, 5];
    for num_beams in [1, 3] {
        let mut config = GenerationConfig::greedy(14);
        config.num_beams = num_beams;
        config.eos_token_ids = vec![EOS_A];
        let cached = AttnLm::new(false);
        let (state, first) = cached.prefill(&prompt);
        let first = first.to_f32_vec().unwrap();
        let (out, _) = run(&cached, state, &first, &prompt, &config);
        assert!(
            cached.max_diff.get() <= 1e-5,
            "beams {num_beams}: cached vs recomputed logits differ by {} relative",
            cached.max_diff.get()
        );
        assert!(out.token_ids.len() >= 5, "several steps were decoded: {:?}", out.token_ids);

        let recompute = AttnLm::new(true);
        let (state, _) = recompute.prefill(&prompt);
        let (again, _) = run(&recompute, state, &first, &prompt, &config);
        assert_eq!((&out.token_ids, out.stop), (&again.token_ids, again.stop), "beams {num_beams}: the same ids without the cache");
        match (out.score, again.score) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "scores {a} vs {b}"),
            (a, b) => assert_eq!(a, b),
        }
        if num_beams > 1 {
            assert!(cached.reorders.get() > 0, "the beams were reordered through the cache");
        }
    }
}

// ---------------------------------------------- scripted decoders by hand

/// Logits from a table of generated prefixes (the default row elsewhere);
/// each row's state is its generated tokens.
struct TreeLm {
    rows: HashMap<Vec<u32>, Vec<f32>>,
    default: Vec<f32>,
    steps: Cell<usize>,
}

impl TreeLm {
    /// Probabilities per prefix, stored as their logarithms.
    fn new(table: &[(&[u32], [f64; 4])], default: [f64; 4]) -> TreeLm {
        let ln = |p: [f64; 4]| p.iter().map(|&x| x.ln() as f32).collect::<Vec<_>>();
        TreeLm { rows: table.iter().map(|(k, p)| (k.to_vec(), ln(*p))).collect(), default: ln(default), steps: Cell::new(0) }
    }

    fn row(&self, prefix: &[u32]) -> Vec<f32> {
        self.rows.get(prefix).unwrap_or(&self.default).clone()
    }

    fn generate(&self, config: &GenerationConfig) -> Generated {
        self.steps.set(0);
        run(self, vec![vec![]], &self.row(&[]), &[], config).0
    }
}

impl CausalDecoder for TreeLm {
    type State = Vec<Vec<u32>>;

    fn decode_step(&self, tokens: &[u32], state: &mut Self::State) -> Result<Tensor> {
        self.steps.set(self.steps.get() + 1);
        let rows: Vec<Vec<f32>> = state
            .iter_mut()
            .zip(tokens)
            .map(|(s, &t)| {
                s.push(t);
                self.row(s)
            })
            .collect();
        Ok(logits_tensor(&rows))
    }

    fn select_rows(&self, state: &mut Self::State, rows: &[usize]) -> Result<()> {
        rearrange(state, rows)
    }
}

fn beams(n: usize, max_new: usize, length_penalty: f64, early: EarlyStopping) -> GenerationConfig {
    let mut c = GenerationConfig::greedy(max_new);
    c.num_beams = n;
    c.length_penalty = length_penalty;
    c.early_stopping = early;
    c.eos_token_ids = vec![0];
    c
}

fn assert_score(out: &Generated, want: f64) {
    let got = out.score.expect("beam search reports a score");
    assert!((got - want).abs() < 1e-5, "score {got}, expected {want}");
}

#[test]
fn beam_search_finds_what_greedy_misses() {
    // Token 0 is eos. Greedy: 1 (0.5) then eos (0.32): p = 0.16. Two beams
    // keep 1 and 2 (0.4); 2 then eos (0.9) gives p = 0.36, finalised at
    // length 2 with ln(0.36) / 2; then the best running beam, [1, 1] at
    // ln(0.14) / 2, cannot beat the worst finished, [1, 0] at ln(0.16) / 2.
    let lm = TreeLm::new(
        &[(&[], [0.06, 0.5, 0.4, 0.04]), (&[1], [0.32, 0.28, 0.2, 0.2]), (&[2], [0.9, 0.04, 0.03, 0.03])],
        [0.7, 0.1, 0.1, 0.1],
    );
    let greedy = lm.generate(&beams(1, 5, 1.0, EarlyStopping::Heuristic));
    assert_eq!((greedy.token_ids.as_slice(), greedy.stop, greedy.score), (&[1, 0][..], StopReason::Eos, None));
    let out = lm.generate(&beams(2, 5, 1.0, EarlyStopping::Heuristic));
    assert_eq!((out.token_ids.as_slice(), out.stop), (&[2, 0][..], StopReason::Eos));
    assert_score(&out, 0.36f64.ln() / 2.0);
    assert_eq!(lm.steps.get(), 1, "the search stopped after the second token");
}

#[test]
fn length_penalty_changes_the_winner() {
    // eos first (0.5) is finalised at once: ln(0.5) / 1. [1, eos] has
    // p = 0.45 * 0.95: ln(0.4275) / 2^lp beats it with lp = 1 and loses
    // with lp = 0.
    let lm = TreeLm::new(&[(&[], [0.5, 0.45, 0.03, 0.02]), (&[1], [0.95, 0.03, 0.01, 0.01])], [0.9, 0.05, 0.03, 0.02]);
    let long = lm.generate(&beams(2, 2, 1.0, EarlyStopping::Heuristic));
    assert_eq!(long.token_ids, [1, 0]);
    assert_score(&long, 0.4275f64.ln() / 2.0);
    let short = lm.generate(&beams(2, 2, 0.0, EarlyStopping::Heuristic));
    assert_eq!(short.token_ids, [0]);
    assert_score(&short, 0.5f64.ln());
    // Favouring short sequences harder keeps the single eos.
    assert_eq!(lm.generate(&beams(2, 2, -1.0, EarlyStopping::Heuristic)).token_ids, [0]);
}

#[test]
fn early_stopping_variants() {
    // Step 1 finalises [eos] (ln 0.4); step 2 finalises [1, eos] (ln 0.105 / 2)
    // and keeps [1, 1] (0.2275) running: both slots are full.
    // - true stops there: [eos] wins;
    // - false goes on since ln(0.2275) / 2 > ln(0.105) / 2, finds [1, 1, eos]
    //   at ln(0.2275 * 0.97) / 3, then stops: ln(0.002275) / 3 < ln(0.4);
    // - "never" scores running beams at max_new_tokens = 10, which keeps
    //   the search going longer without finding better.
    let lm = TreeLm::new(
        &[
            (&[], [0.4, 0.35, 0.2, 0.05]),
            (&[1], [0.3, 0.65, 0.03, 0.02]),
            (&[2], [0.5, 0.3, 0.1, 0.1]),
            (&[1, 1], [0.97, 0.01, 0.01, 0.01]),
        ],
        [0.9, 0.05, 0.03, 0.02],
    );
    let always = lm.generate(&beams(2, 10, 1.0, EarlyStopping::Always));
    assert_eq!(always.token_ids, [0]);
    assert_score(&always, 0.4f64.ln());
    assert_eq!(lm.steps.get(), 1);

    let heuristic = lm.generate(&beams(2, 10, 1.0, EarlyStopping::Heuristic));
    assert_eq!(heuristic.token_ids, [1, 1, 0]);
    assert_score(&heuristic, (0.2275f64 * 0.97).ln() / 3.0);
    assert_eq!(lm.steps.get(), 2);

    let never = lm.generate(&beams(2, 10, 1.0, EarlyStopping::Never));
    assert_eq!(never.token_ids, [1, 1, 0]);
    assert!(lm.steps.get() > 2, "\"never\" searched {} steps", lm.steps.get());
}

#[test]
fn beam_search_at_max_new_tokens_returns_the_best_unfinished_beam() {
    // No eos at all: after max_new_tokens the top beams are finalised with
    // their length-penalised scores.
    let lm = TreeLm::new(
        &[(&[], [0.01, 0.5, 0.4, 0.09]), (&[1], [0.01, 0.2, 0.39, 0.4]), (&[2], [0.01, 0.9, 0.05, 0.04])],
        [0.01, 0.33, 0.33, 0.33],
    );
    let mut config = beams(2, 2, 1.0, EarlyStopping::Heuristic);
    config.eos_token_ids.clear();
    let out = lm.generate(&config);
    assert_eq!((out.token_ids.as_slice(), out.stop), (&[2, 1][..], StopReason::MaxNewTokens));
    assert_score(&out, (0.4f64 * 0.9).ln() / 2.0);
}

/// The same logits row at every step, for any number of rows.
struct ConstLm {
    row: Vec<f32>,
}

impl CausalDecoder for ConstLm {
    type State = usize;

    fn decode_step(&self, tokens: &[u32], rows: &mut usize) -> Result<Tensor> {
        assert_eq!(tokens.len(), *rows);
        Ok(logits_tensor(&vec![self.row.clone(); *rows]))
    }

    fn select_rows(&self, rows: &mut usize, idx: &[usize]) -> Result<()> {
        *rows = idx.len();
        Ok(())
    }
}

/// A script of logits rows, one per step (then the last one again).
struct ScriptLm {
    steps: Vec<Vec<f32>>,
}

impl CausalDecoder for ScriptLm {
    type State = usize;

    fn decode_step(&self, _tokens: &[u32], step: &mut usize) -> Result<Tensor> {
        *step += 1;
        Ok(logits_tensor(&[self.steps[(*step).min(self.steps.len() - 1)].clone()]))
    }

    fn select_rows(&self, _: &mut usize, _: &[usize]) -> Result<()> {
        Ok(())
    }
}

fn one_hot(hot: u32, second: u32) -> Vec<f32> {
    (0..8)
        .map(|i| {
            if i == hot {
                5.0
            } else if i == second {
                4.0
            } else {
                0.0
            }
        })
        .collect()
}

#[test]
fn greedy_stops_on_any_eos_and_respects_the_limits() {
    let lm = ScriptLm { steps: vec![one_hot(1, 7), one_hot(2, 7), one_hot(3, 7), one_hot(6, 4), one_hot(4, 7)] };
    let first = lm.steps[0].clone();
    let mut config = GenerationConfig::greedy(10);
    config.eos_token_ids = vec![7, 3];
    let (out, seen) = run(&lm, 0, &first, &[], &config);
    assert_eq!((out.token_ids.as_slice(), out.stop), (&[1, 2, 3][..], StopReason::Eos), "stops on eos 3 and returns it");
    assert_eq!(seen, [(0, 1), (1, 2), (2, 3)]);

    config.eos_token_ids = vec![4, 9];
    let (out, _) = run(&lm, 0, &first, &[], &config);
    assert_eq!((out.token_ids.as_slice(), out.stop), (&[1, 2, 3, 6, 4][..], StopReason::Eos));

    config.set_max_new_tokens(4);
    let (out, _) = run(&lm, 0, &first, &[], &config);
    assert_eq!((out.token_ids.as_slice(), out.stop), (&[1, 2, 3, 6][..], StopReason::MaxNewTokens));

    // Eos 7 is the argmax at every step; min_new_tokens = 3 suppresses it
    // for the first three tokens, which fall back to the runner-up.
    let lm = ScriptLm { steps: vec![one_hot(7, 1), one_hot(7, 2), one_hot(7, 3), one_hot(7, 4)] };
    let mut config = GenerationConfig::greedy(10);
    config.eos_token_ids = vec![7];
    config.min_new_tokens = 3;
    let (out, _) = run(&lm, 0, &lm.steps[0].clone(), &[], &config);
    assert_eq!((out.token_ids.as_slice(), out.stop), (&[1, 2, 3, 7][..], StopReason::Eos));
    config.min_new_tokens = 0;
    let (out, _) = run(&lm, 0, &lm.steps[0].clone(), &[], &config);
    assert_eq!(out.token_ids, [7]);
}

#[test]
fn repetition_penalty_covers_prompt_and_generated_tokens() {
    // Logits 2.0 (token 1), 1.9 (token 2), -1.0 (token 3), -1.2 (token 4).
    let lm = ConstLm { row: vec![-5.0, 2.0, 1.9, -1.0, -1.2] };
    let mut config = GenerationConfig::greedy(4);
    config.repetition_penalty = 2.0;
    // Prompt [1]: 2.0 / 2 = 1.0 < 1.9 -> 2; then 1 and 2 are both penalised
    // (1.0, 0.95) -> 1; then 1 again; negative logits would be doubled.
    let (out, _) = run(&lm, 1, &lm.row, &[1], &config);
    assert_eq!(out.token_ids, [2, 1, 1, 1]);
    // Without the prompt ids, the first pick is 1.
    let (out, _) = run(&lm, 1, &lm.row, &[], &config);
    assert_eq!(out.token_ids, [1, 2, 1, 1]);
    // Negative logits are multiplied: 1 at -0.5 becomes -1.0 (dividing
    // would have kept it on top), then 2 (-0.6 -> -1.2), then 3 (-0.9 -> -1.8).
    let lm = ConstLm { row: vec![-5.0, -0.5, -0.6, -0.9, -1.2] };
    let (out, _) = run(&lm, 1, &lm.row, &[1], &config);
    assert_eq!(out.token_ids, [2, 3, 1, 1]);
    config.repetition_penalty = 1.0;
    let (out, _) = run(&lm, 1, &lm.row, &[1], &config);
    assert_eq!(out.token_ids, [1, 1, 1, 1]);
}

// ----------------------------------------------------------------- sampling

fn sample(row: &[f32], config: &GenerationConfig) -> Vec<u32> {
    let lm = ConstLm { row: row.to_vec() };
    run(&lm, 1, row, &[], config).0.token_ids
}

fn sampling(n: usize, seed: u64) -> GenerationConfig {
    let mut c = GenerationConfig::greedy(n);
    c.do_sample = true;
    c.seed = seed;
    c
}

#[test]
fn sampling_is_seeded_and_honours_top_k_temperature_and_top_p() {
    // 100 tokens: the first 50 at logit 1.0, the others at 0.999 (almost
    // half the mass).
    let row: Vec<f32> = (0..100).map(|i| if i < 50 { 1.0 } else { 0.999 }).collect();
    let a = sample(&row, &sampling(300, 7));
    assert_eq!(a, sample(&row, &sampling(300, 7)), "the same seed gives the same tokens");
    assert_ne!(a, sample(&row, &sampling(300, 8)), "another seed gives others");
    assert!(a.iter().all(|&t| t < 50), "transformers' default top_k = 50 applies when sampling");
    assert!(a.iter().collect::<std::collections::HashSet<_>>().len() > 30, "it samples");
    let mut no_top_k = sampling(300, 7);
    no_top_k.top_k = None;
    assert!(sample(&row, &no_top_k).iter().any(|&t| t >= 50));
    // Greedy ignores the sampling parameters entirely.
    let mut greedy = sampling(5, 7);
    greedy.do_sample = false;
    assert_eq!(sample(&row, &greedy), [0; 5]);

    // Temperature: 0.01 makes a 0.1 logit gap a factor e^10.
    let row = [2.0f32, 1.9, 1.8, 1.7, 1.6, 1.5];
    let mut cold = sampling(200, 3);
    cold.temperature = 0.01;
    assert!(sample(&row, &cold).iter().all(|&t| t == 0));
    let mut hot = sampling(200, 3);
    hot.temperature = 100.0;
    let drawn = sample(&row, &hot);
    assert!((0..6).all(|t| drawn.contains(&t)), "a high temperature flattens the distribution");

    // Top-p: probabilities 0.5, 0.3, 0.15, 0.05; p = 0.7 keeps {0, 1}.
    let row: Vec<f32> = [0.5f64, 0.3, 0.15, 0.05].iter().map(|p| p.ln() as f32).collect();
    let mut nucleus = sampling(300, 11);
    nucleus.top_p = Some(0.7);
    let drawn = sample(&row, &nucleus);
    assert!(drawn.contains(&0) && drawn.contains(&1) && drawn.iter().all(|&t| t < 2), "{drawn:?}");
    // Eos stops sampling too, and is returned.
    let mut with_eos = sampling(300, 11);
    with_eos.eos_token_ids = vec![2];
    let drawn = sample(&row, &with_eos);
    assert_eq!(drawn.last(), Some(&2));
    assert!(drawn[..drawn.len() - 1].iter().all(|&t| t != 2));
}

// ------------------------------------------------------ generation_config.json

fn parse(text: &str) -> tessera_nn::Result<GenerationConfig> {
    GenerationConfig::from_json(text, "model/generation_config.json")
}

#[test]
fn config_defaults_follow_transformers() {
    let d = GenerationConfig::default();
    assert_eq!(parse("{}").unwrap(), d);
    assert_eq!(parse("{\"transformers_version\": \"5.23.0\", \"temperature\": null}").unwrap(), d);
    assert_eq!((d.max_new_tokens, d.num_beams, d.do_sample, d.top_k, d.top_p), (20, 1, false, Some(50), Some(1.0)));
    assert_eq!((d.temperature, d.length_penalty, d.repetition_penalty), (1.0, 1.0, 1.0));
    assert_eq!((d.early_stopping, d.min_new_tokens, d.eos_token_ids.len()), (EarlyStopping::Heuristic, 0, 0));
    assert!(d.unsupported().is_empty());
}

#[test]
fn config_reads_every_supported_field() {
    let c = parse(
        r#"{"do_sample": true, "temperature": 0.7, "top_k": 0, "top_p": 0.9, "num_beams": 1,
            "length_penalty": 2, "early_stopping": "never", "repetition_penalty": 1.1,
            "min_new_tokens": 3, "max_new_tokens": 40, "eos_token_id": [2, 32000],
            "pad_token_id": 1, "bos_token_id": 1, "some_future_key": {"nested": [1, 2.5e3, "x\u00e9"]}}"#,
    )
    .unwrap();
    assert!(c.do_sample);
    assert_eq!((c.temperature, c.top_k, c.top_p), (0.7, None, Some(0.9)));
    assert_eq!((c.length_penalty, c.early_stopping, c.repetition_penalty), (2.0, EarlyStopping::Never, 1.1));
    assert_eq!((c.min_new_tokens, c.max_new_tokens, c.pad_token_id), (3, 40, Some(1)));
    assert_eq!(c.eos_token_ids, [2, 32000]);
    assert_eq!(parse(r#"{"eos_token_id": 50256}"#).unwrap().eos_token_ids, [50256]);
    assert_eq!(parse(r#"{"early_stopping": true}"#).unwrap().early_stopping, EarlyStopping::Always);
    assert_eq!(parse(r#"{"early_stopping": false}"#).unwrap().early_stopping, EarlyStopping::Heuristic);
    // Python's json keeps the last duplicate.
    assert_eq!(parse(r#"{"num_beams": 2, "num_beams": 4}"#).unwrap().num_beams, 4);
}

#[test]
fn config_length_rules_follow_prepare_generated_length() {
    // max_length counts the prompt.
    let c = parse(r#"{"max_length": 30}"#).unwrap();
    assert_eq!(c.resolve_max_new_tokens(10, Some(16)).unwrap(), 20, "an explicit max_length is not capped");
    assert!(c.resolve_max_new_tokens(30, None).unwrap_err().to_string().contains("max_length is 30"));
    // max_new_tokens wins over max_length.
    let c = parse(r#"{"max_length": 30, "max_new_tokens": 5}"#).unwrap();
    assert_eq!(c.resolve_max_new_tokens(10, Some(12)).unwrap(), 5);
    // The default: 20 new tokens, capped by the model's positions.
    let d = GenerationConfig::default();
    assert_eq!(d.resolve_max_new_tokens(10, None).unwrap(), 20);
    assert_eq!(d.resolve_max_new_tokens(10, Some(25)).unwrap(), 15);
    assert!(d.resolve_max_new_tokens(25, Some(25)).is_err());
    let mut s = GenerationConfig::default();
    s.max_length = Some(12);
    s.set_max_new_tokens(3);
    assert_eq!(s.resolve_max_new_tokens(10, None).unwrap(), 3);
    // min_length counts the prompt too.
    let m = parse(r#"{"min_length": 8, "max_length": 30}"#).unwrap();
    assert_eq!(m.resolve_min_new_tokens(5), 3);
    let r = m.resolved(5, None).unwrap();
    assert_eq!((r.max_new_tokens, r.min_new_tokens, r.max_length, r.min_length), (25, 3, None, None));
    assert!(r.max_new_tokens_is_set());
    assert_eq!(parse(r#"{"min_length": 8, "min_new_tokens": 2}"#).unwrap().resolve_min_new_tokens(5), 2);
}

#[test]
fn config_wrong_types_name_the_field_and_file() {
    for (text, field) in [
        (r#"{"temperature": "hot"}"#, "temperature"),
        (r#"{"top_k": 50.0}"#, "top_k"),
        (r#"{"num_beams": -1}"#, "num_beams"),
        (r#"{"do_sample": 1}"#, "do_sample"),
        (r#"{"early_stopping": "sometimes"}"#, "early_stopping"),
        (r#"{"eos_token_id": [1, "x"]}"#, "eos_token_id"),
        (r#"{"eos_token_id": -3}"#, "eos_token_id"),
        (r#"{"pad_token_id": [0]}"#, "pad_token_id"),
        (r#"{"max_length": true}"#, "max_length"),
    ] {
        let msg = parse(text).unwrap_err().to_string();
        assert!(msg.contains(&format!("'{field}'")) && msg.contains("model/generation_config.json"), "{text}: {msg}");
    }
    for bad in ["", "[1]", "{\"a\": }", "{\"a\": 1,}", "{\"a\": 01x}", "{\"a\": \"\\q\"}", "{} x"] {
        let msg = parse(bad).unwrap_err().to_string();
        assert!(msg.contains("model/generation_config.json"), "{bad}: {msg}");
    }
}

#[test]
fn config_lists_unsupported_keys() {
    let text = r#"{"no_repeat_ngram_size": 3, "num_return_sequences": 1, "bad_words_ids": [[7]],
                   "typical_p": 0.9, "suppress_tokens": [], "forced_eos_token_id": 2,
                   "num_beam_groups": 2, "diversity_penalty": 0.5, "encoder_repetition_penalty": 1.0}"#;
    let greedy = parse(text).unwrap();
    // In key order.
    assert_eq!(
        greedy.unsupported(),
        ["bad_words_ids", "diversity_penalty", "forced_eos_token_id", "no_repeat_ngram_size", "num_beam_groups"]
    );
    let sampled = parse(&text.replacen('{', "{\"do_sample\": true, ", 1)).unwrap();
    assert!(sampled.unsupported().contains(&"typical_p".to_string()), "{:?}", sampled.unsupported());
}

#[test]
fn config_from_file() {
    let dir = std::env::temp_dir().join(format!("tessera-generation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("generation_config.json");
    std::fs::write(&path, r#"{"num_beams": 5, "max_new_tokens": 30, "eos_token_id": 2}"#).unwrap();
    let c = GenerationConfig::from_file(&path).unwrap();
    assert_eq!((c.num_beams, c.max_new_tokens, c.eos_token_ids.as_slice()), (5, 30, &[2u32][..]));
    std::fs::write(&path, r#"{"num_beams": "five"}"#).unwrap();
    let msg = GenerationConfig::from_file(&path).unwrap_err().to_string();
    assert!(msg.contains("num_beams") && msg.contains("generation_config.json"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(GenerationConfig::from_file(&path).is_err());
}

#[test]
fn invalid_configs_and_inputs_are_errors() {
    let check = |c: &GenerationConfig, needle: &str| {
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.contains(needle), "{msg}");
    };
    check(&GenerationConfig::greedy(0), "max_new_tokens must be at least 1");
    let mut c = GenerationConfig::default();
    c.num_beams = 0;
    check(&c, "num_beams");
    let mut c = sampling(5, 0);
    c.num_beams = 2;
    check(&c, "beam sampling");
    let mut c = sampling(5, 0);
    c.temperature = 0.0;
    check(&c, "temperature");
    let mut c = sampling(5, 0);
    c.top_p = Some(1.5);
    check(&c, "top_p");
    let mut c = GenerationConfig::default();
    c.repetition_penalty = 0.0;
    check(&c, "repetition_penalty");
    // A greedy config may carry a zero temperature (transformers only warns).
    let mut c = GenerationConfig::default();
    c.temperature = 0.0;
    c.validate().unwrap();

    // generate reports the same errors, and bad logits, without panicking.
    let lm = ConstLm { row: vec![0.0, 1.0, 2.0] };
    let logits = logits_tensor(std::slice::from_ref(&lm.row));
    let err = generate(&lm, 1, &logits, &[], &GenerationConfig::greedy(0), &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("max_new_tokens"));
    let two_rows = logits_tensor(&[lm.row.clone(), lm.row.clone()]);
    assert!(generate(&lm, 1, &two_rows, &[], &GenerationConfig::greedy(3), &mut |_, _| {}).is_err());
    let nan = ConstLm { row: vec![0.0, f32::NAN, 2.0] };
    let err = generate(&nan, 1, &logits, &[], &GenerationConfig::greedy(3), &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
    let ids = Tensor::from_slice(&[1u32, 2, 3], (1, 3), &dev()).unwrap();
    assert!(generate(&lm, 1, &ids, &[], &GenerationConfig::greedy(3), &mut |_, _| {}).is_err(), "integer logits");
    // Beam search needs K = 2 * num_beams candidates out of beams x vocab.
    let tiny = ConstLm { row: vec![0.0] };
    let mut c = beams(2, 3, 1.0, EarlyStopping::Heuristic);
    c.eos_token_ids = vec![0, 1, 2];
    assert!(generate(&tiny, 1, &logits_tensor(&[vec![0.0]]), &[], &c, &mut |_, _| {}).is_err());
}

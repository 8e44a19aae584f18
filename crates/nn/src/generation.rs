//! The text-generation loop shared by every causal language model: greedy
//! decoding, multinomial sampling and beam search, mirroring Hugging Face
//! transformers 5.23 `generate` for one prompt.
//!
//! A model plugs in through [`CausalDecoder`]: it advances a per-row state
//! (its KV caches) by one token per row and returns the next-token logits,
//! and it can rearrange the rows of that state (expansion to `num_beams`
//! rows, beam reordering). [`generate`] starts from a prefilled prompt and
//! the logits the prefill produced.
//!
//! # What is mirrored
//!
//! Logits processors, in transformers' order (`_get_logits_processor`), on
//! host `f32` values:
//! - repetition penalty (`RepetitionPenaltyLogitsProcessor`): every distinct
//!   id of the prompt and of the tokens generated so far has its score
//!   multiplied by the penalty when negative, divided by it otherwise, in
//!   `f32` (the penalty rounded to `f32`, as torch does with a scalar);
//! - `min_new_tokens` (`MinNewTokensLengthLogitsProcessor`): every eos id is
//!   set to `-inf` while fewer than `min_new_tokens` tokens have been
//!   generated;
//! - when sampling only, the warpers temperature, top-k (transformers'
//!   default of 50 applies!) and top-p, through [`LogitsProcessor`].
//!
//! Greedy decoding (`_sample` with `do_sample = false`) takes the argmax of
//! the processed logits (the first index on ties, like `torch.argmax`);
//! sampling draws from their softmax with a seeded generator. Both stop
//! after an eos id (which is returned as the last token) or after
//! `max_new_tokens` tokens.
//!
//! Beam search (`_beam_search`) keeps, for the one prompt, `num_beams`
//! running beams and `num_beams` finished hypotheses:
//! 1. the running scores start at `[0, -1e9, -1e9, ...]` so that the first
//!    step only expands beam 0;
//! 2. each step takes `log_softmax` of each beam's logits, runs the
//!    processors on those log-probabilities, adds the beam's running score
//!    and keeps the top `K = max(2, 1 + number of eos ids) * num_beams`
//!    candidates over all `num_beams * vocab` continuations;
//! 3. a candidate "hits a stopping criterion" when its token is an eos id or
//!    when it reaches `max_new_tokens`; the next running beams are the top
//!    `num_beams` candidates after adding `-1e9` to those that hit one;
//! 4. candidates among the first `num_beams` of the top-K that hit a
//!    criterion are finalised with score `sum_logprobs / new_len ^
//!    length_penalty`, where `new_len` counts the generated tokens including
//!    the final one (the eos); the finished set keeps the best `num_beams`
//!    of old and new hypotheses (non-finalised candidates carry `-1e9`);
//! 5. the loop ends when no running beam can still improve on the worst
//!    finished hypothesis (`_check_early_stop_heuristic`: the best running
//!    score divided by `cur_new_len ^ length_penalty`, or by
//!    `max_new_tokens ^ length_penalty` with `early_stopping = "never"` and
//!    a positive length penalty; only once all `num_beams` slots hold a
//!    finished hypothesis), when all slots are finished and `early_stopping
//!    = true`, or when every candidate hit a criterion (the last step at
//!    `max_new_tokens`, where the top `num_beams` are all finalised);
//! 6. the result is the best finished hypothesis, with its eos if it ended
//!    on one, and its length-penalised score.
//!
//! Scores are `f32` throughout, with the same order of operations as
//! transformers (`-1e9` masks added in `f32`, the length-penalty divisor
//! computed in `f64` and rounded to `f32` before an `f32` division, as torch
//! does on the CPU).
//!
//! # Known differences
//!
//! - `log_softmax` is computed in `f64` from the `f32` logits and rounded to
//!   `f32` (the correctly rounded value); torch's `f32` kernel may differ in
//!   the last bit or two, which can only change a choice between candidates
//!   whose scores agree to about `1e-7` relative.
//! - Ties in a top-k selection are broken towards the lower index (the lower
//!   beam, then the lower token id; existing finished hypotheses before new
//!   ones); torch's `topk` leaves the order of ties unspecified.
//! - Sampling cannot reproduce `torch.multinomial`'s random stream: it is
//!   deterministic for a seed, with the same distribution. Beam sampling
//!   (`do_sample` with `num_beams > 1`) is refused by
//!   [`GenerationConfig::validate`].

use std::collections::HashSet;
use std::path::Path;

use crate::sampling::{LogitsProcessor, SamplingConfig};
use crate::{Error, Result};
use serde_json::Value;
use tessera_tensor::Tensor;

/// What generation drives: a causal LM holding per-row state (KV caches)
/// that it advances one token per row per step.
pub trait CausalDecoder {
    /// The per-row state (caches and positions) of a batch of sequences.
    type State;

    /// Feeds one token per row (rows = the state's current batch) after
    /// everything the state holds; returns next-token logits `[rows, vocab]`
    /// (any float dtype, any device).
    fn decode_step(&self, tokens: &[u32], state: &mut Self::State) -> Result<Tensor>;

    /// Rearranges the state's rows: row `i` of the new state is old row
    /// `rows[i]` (rows may repeat: expansion of one prompt to `num_beams`
    /// rows, and beam reordering).
    fn select_rows(&self, state: &mut Self::State, rows: &[usize]) -> Result<()>;
}

/// transformers' `early_stopping` for beam search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    /// `false`: stop when the best running beam, scored at its current
    /// length, cannot beat the worst finished hypothesis.
    #[default]
    Heuristic,
    /// `true`: stop as soon as `num_beams` hypotheses are finished.
    Always,
    /// `"never"`: as `false`, but with a positive length penalty the best
    /// running beam is scored at `max_new_tokens` (the canonical beam search
    /// with `length_penalty = 0`).
    Never,
}

/// The number of new tokens transformers generates when nothing sets a
/// length (its default `max_length` of 20 counts new tokens when unset).
pub const DEFAULT_MAX_NEW_TOKENS: usize = 20;

/// The parameters of [`generate`], as transformers' `GenerationConfig` holds
/// them (see [`GenerationConfig::from_json`] for `generation_config.json`).
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationConfig {
    /// The most tokens to generate (after the prompt). Use
    /// [`set_max_new_tokens`](Self::set_max_new_tokens) to make it take
    /// precedence over [`max_length`](Self::max_length) in
    /// [`resolve_max_new_tokens`](Self::resolve_max_new_tokens).
    pub max_new_tokens: usize,
    /// transformers' `max_length`: prompt plus new tokens, when a file sets
    /// it (see [`resolve_max_new_tokens`](Self::resolve_max_new_tokens)).
    pub max_length: Option<usize>,
    /// Eos ids are suppressed until this many tokens are generated.
    pub min_new_tokens: usize,
    /// transformers' `min_length`: prompt plus new tokens (see
    /// [`resolve_min_new_tokens`](Self::resolve_min_new_tokens)).
    pub min_length: Option<usize>,
    /// Sample instead of taking the argmax.
    pub do_sample: bool,
    /// Softmax temperature when sampling (must be finite and > 0 then).
    pub temperature: f64,
    /// Top-k filter when sampling; `None` or `Some(0)` disables it.
    pub top_k: Option<usize>,
    /// Top-p (nucleus) filter when sampling, in `(0, 1]`; `None` or `1`
    /// disables it.
    pub top_p: Option<f64>,
    /// Beam count; 1 for greedy decoding or sampling.
    pub num_beams: usize,
    /// Exponent of the length a finished beam's log-probability is divided
    /// by: > 0 favours longer sequences, < 0 shorter ones.
    pub length_penalty: f64,
    /// When beam search stops.
    pub early_stopping: EarlyStopping,
    /// Penalty on tokens already in the sequence (1 disables it).
    pub repetition_penalty: f64,
    /// Any of these ids ends a sequence.
    pub eos_token_ids: Vec<u32>,
    /// The padding id (unused for one prompt; kept for callers).
    pub pad_token_id: Option<u32>,
    /// Seed of the sampling generator.
    pub seed: u64,
    /// Whether `max_new_tokens` was set explicitly (it then wins over
    /// `max_length`).
    max_new_tokens_set: bool,
    /// Keys of the file that change results but are not implemented.
    unsupported: Vec<String>,
}

impl Default for GenerationConfig {
    /// transformers' defaults: greedy, 20 new tokens, one beam, temperature
    /// 1, top-k 50, top-p 1, length penalty 1, `early_stopping = false`, no
    /// repetition penalty, no eos.
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: DEFAULT_MAX_NEW_TOKENS,
            max_length: None,
            min_new_tokens: 0,
            min_length: None,
            do_sample: false,
            temperature: 1.0,
            top_k: Some(50),
            top_p: Some(1.0),
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            repetition_penalty: 1.0,
            eos_token_ids: Vec::new(),
            pad_token_id: None,
            seed: 0,
            max_new_tokens_set: false,
            unsupported: Vec::new(),
        }
    }
}

impl GenerationConfig {
    /// Greedy decoding of at most `n` new tokens (set explicitly).
    pub fn greedy(n: usize) -> Self {
        let mut c = GenerationConfig::default();
        c.set_max_new_tokens(n);
        c
    }

    /// Sets `max_new_tokens` and marks it explicit, so that it wins over
    /// `max_length` as in transformers.
    pub fn set_max_new_tokens(&mut self, n: usize) -> &mut Self {
        self.max_new_tokens = n;
        self.max_new_tokens_set = true;
        self
    }

    /// Whether `max_new_tokens` was set explicitly (by the file or
    /// [`set_max_new_tokens`](Self::set_max_new_tokens)).
    pub fn max_new_tokens_is_set(&self) -> bool {
        self.max_new_tokens_set
    }

    /// transformers' length rule (`_prepare_generated_length`) for a prompt
    /// of `prompt_len` positions: an explicit `max_new_tokens` wins; else an
    /// explicit `max_length` minus the prompt; else
    /// [`max_new_tokens`](Self::max_new_tokens) (20 by default) capped so
    /// that prompt plus new tokens fit `max_positions`. An error when no
    /// token is left to generate (transformers refuses a prompt as long as
    /// `max_length`).
    pub fn resolve_max_new_tokens(&self, prompt_len: usize, max_positions: Option<usize>) -> Result<usize> {
        let n = if self.max_new_tokens_set {
            self.max_new_tokens
        } else if let Some(max_length) = self.max_length {
            max_length.saturating_sub(prompt_len)
        } else {
            let total = (prompt_len + self.max_new_tokens).min(max_positions.unwrap_or(usize::MAX));
            total.saturating_sub(prompt_len)
        };
        if n == 0 {
            let limit = match (self.max_new_tokens_set, self.max_length) {
                (true, _) => "max_new_tokens is 0".to_string(),
                (false, Some(l)) => format!("max_length is {l}"),
                (false, None) => format!("the model has {} positions", max_positions.unwrap_or(0)),
            };
            return Err(Error::invalid(
                "generate",
                format!("the prompt has {prompt_len} positions but {limit}: no token left to generate"),
            ));
        }
        Ok(n)
    }

    /// The effective `min_new_tokens` for a prompt of `prompt_len`
    /// positions: `min_new_tokens` when non-zero, else `min_length` minus
    /// the prompt (transformers' `MinLengthLogitsProcessor` counts the
    /// prompt).
    pub fn resolve_min_new_tokens(&self, prompt_len: usize) -> usize {
        if self.min_new_tokens > 0 {
            self.min_new_tokens
        } else {
            self.min_length.map_or(0, |l| l.saturating_sub(prompt_len))
        }
    }

    /// This config with [`resolve_max_new_tokens`](Self::resolve_max_new_tokens)
    /// and [`resolve_min_new_tokens`](Self::resolve_min_new_tokens) applied
    /// (the lengths that count the prompt cleared), ready for [`generate`].
    pub fn resolved(&self, prompt_len: usize, max_positions: Option<usize>) -> Result<GenerationConfig> {
        let mut c = self.clone();
        let n = self.resolve_max_new_tokens(prompt_len, max_positions)?;
        c.set_max_new_tokens(n);
        c.min_new_tokens = self.resolve_min_new_tokens(prompt_len);
        c.max_length = None;
        c.min_length = None;
        Ok(c)
    }

    /// `generation_config.json` read as transformers reads it: `do_sample`,
    /// `temperature`, `top_k`, `top_p`, `num_beams`, `length_penalty`,
    /// `early_stopping` (bool or `"never"`), `repetition_penalty`,
    /// `min_new_tokens`, `min_length`, `max_new_tokens`, `max_length`,
    /// `eos_token_id` (int or list), `pad_token_id`. `null` keeps the
    /// default; unknown keys are ignored; keys that change results but are
    /// not implemented are listed by [`unsupported`](Self::unsupported).
    /// Wrong types are errors naming the field and `file`.
    pub fn from_json(text: &str, file: &str) -> Result<Self> {
        let bad = |msg: String| Error::invalid("generation_config", format!("{file}: {msg}"));
        let value: Value = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let Value::Object(entries) = value else {
            return Err(bad("the top level is not a JSON object".into()));
        };
        let mut c = GenerationConfig::default();
        // Duplicate keys keep the last value, as in Python's json.
        for (key, v) in &entries {
            if v.is_null() {
                continue;
            }
            let field = Field { key, value: v, file };
            match key.as_str() {
                "do_sample" => c.do_sample = field.bool()?,
                "temperature" => c.temperature = field.float()?,
                "top_k" => c.top_k = Some(field.uint()?).filter(|&k| k > 0),
                "top_p" => c.top_p = Some(field.float()?),
                "num_beams" => c.num_beams = field.uint()?,
                "length_penalty" => c.length_penalty = field.float()?,
                "repetition_penalty" => c.repetition_penalty = field.float()?,
                "early_stopping" => {
                    c.early_stopping = match v {
                        Value::Bool(false) => EarlyStopping::Heuristic,
                        Value::Bool(true) => EarlyStopping::Always,
                        Value::String(s) if s == "never" => EarlyStopping::Never,
                        _ => return Err(field.wrong("a boolean or \"never\"")),
                    }
                }
                "min_new_tokens" => c.min_new_tokens = field.uint()?,
                "min_length" => c.min_length = Some(field.uint()?),
                "max_new_tokens" => {
                    let n = field.uint()?;
                    c.set_max_new_tokens(n);
                }
                "max_length" => c.max_length = Some(field.uint()?),
                "eos_token_id" => {
                    c.eos_token_ids = match v {
                        Value::Array(items) => {
                            items.iter().map(|item| Field { key, value: item, file }.token_id()).collect::<Result<Vec<_>>>()?
                        }
                        _ => vec![field.token_id()?],
                    }
                }
                "pad_token_id" => c.pad_token_id = Some(field.token_id()?),
                _ => {}
            }
        }
        c.unsupported = unsupported_keys(&entries, c.do_sample);
        Ok(c)
    }

    /// [`from_json`](Self::from_json) of the file at `path` (a missing file
    /// is an error too: callers fall back to [`Default`] themselves).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid("generation_config", format!("cannot read {}: {e}", path.display())))?;
        GenerationConfig::from_json(&text, &path.display().to_string())
    }

    /// Keys the file sets, to values that change results, that [`generate`]
    /// does not implement (`no_repeat_ngram_size`, `num_return_sequences >
    /// 1`, beam groups and diversity, constraints, `bad_words_ids`, forced
    /// or suppressed tokens, and, when sampling, `typical_p`, `min_p`,
    /// `epsilon_cutoff`, ...), for a warning.
    pub fn unsupported(&self) -> &[String] {
        &self.unsupported
    }

    /// Checks the parameters: at least one new token and one beam, no beam
    /// sampling, a finite positive temperature and a top-p in `(0, 1]` when
    /// sampling, a finite positive repetition penalty, a finite length
    /// penalty.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::invalid("generate", msg));
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens must be at least 1".into());
        }
        if self.num_beams == 0 {
            return bad("num_beams must be at least 1".into());
        }
        if self.do_sample && self.num_beams > 1 {
            return bad(format!("beam sampling (do_sample with num_beams = {}) is not supported", self.num_beams));
        }
        if self.do_sample {
            if !(self.temperature.is_finite() && self.temperature > 0.0) {
                return bad(format!(
                    "temperature must be finite and > 0 when sampling, got {} (for greedy decoding set do_sample to false)",
                    self.temperature
                ));
            }
            if let Some(p) = self.top_p {
                if !(p > 0.0 && p <= 1.0) {
                    return bad(format!("top_p must be in (0, 1], got {p}"));
                }
            }
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return bad(format!("repetition_penalty must be finite and > 0, got {}", self.repetition_penalty));
        }
        if !self.length_penalty.is_finite() {
            return bad(format!("length_penalty must be finite, got {}", self.length_penalty));
        }
        Ok(())
    }

    /// The sampling warpers as a [`SamplingConfig`] (greedy when not
    /// sampling).
    pub fn sampling(&self) -> SamplingConfig {
        if !self.do_sample {
            return SamplingConfig::greedy();
        }
        SamplingConfig { temperature: self.temperature, top_k: self.top_k.filter(|&k| k > 0), top_p: self.top_p.filter(|&p| p < 1.0) }
    }
}

/// One key of the file, for typed reads with errors that name it.
struct Field<'a> {
    key: &'a str,
    value: &'a Value,
    file: &'a str,
}

impl Field<'_> {
    fn wrong(&self, expected: &str) -> Error {
        Error::invalid("generation_config", format!("{}: field '{}' must be {expected}, got {}", self.file, self.key, describe(self.value)))
    }

    fn bool(&self) -> Result<bool> {
        self.value.as_bool().ok_or_else(|| self.wrong("a boolean"))
    }

    fn float(&self) -> Result<f64> {
        match self.value {
            Value::Number(n) => n.as_f64().filter(|x| x.is_finite()).ok_or_else(|| self.wrong("a finite number")),
            _ => Err(self.wrong("a number")),
        }
    }

    /// An integer as written (`1.0` is a float in Python's json, as here).
    fn integer(&self) -> Option<Result<u64>> {
        match self.value {
            Value::Number(n) if n.is_u64() => n.as_u64().map(Ok),
            Value::Number(n) if n.is_i64() => Some(Err(self.wrong("not negative"))),
            _ => None,
        }
    }

    fn uint(&self) -> Result<usize> {
        match self.integer() {
            Some(n) => usize::try_from(n?).map_err(|_| self.wrong("a non-negative integer")),
            None => Err(self.wrong("a non-negative integer")),
        }
    }

    fn token_id(&self) -> Result<u32> {
        match self.integer() {
            Some(n) => u32::try_from(n?).map_err(|_| self.wrong("a token id (an integer in 0..2^32)")),
            None => Err(self.wrong("a token id (an integer)")),
        }
    }
}

/// A short description of a value for error messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => v.to_string(),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Keys set to values that change transformers' results but that
/// [`generate`] does not implement.
fn unsupported_keys(entries: &serde_json::Map<String, Value>, do_sample: bool) -> Vec<String> {
    let num = |v: &Value| v.as_f64();
    let set = |v: &Value| match v {
        Value::Null | Value::Bool(false) => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    };
    let mut out: Vec<String> = Vec::new();
    for (key, v) in entries {
        let active = match key.as_str() {
            "no_repeat_ngram_size" | "encoder_no_repeat_ngram_size" => num(v).is_some_and(|x| x > 0.0),
            "num_return_sequences" | "num_beam_groups" => num(v).is_some_and(|x| x > 1.0),
            "diversity_penalty" | "penalty_alpha" => num(v).is_some_and(|x| x != 0.0),
            "encoder_repetition_penalty" | "guidance_scale" => num(v).is_some_and(|x| x != 1.0),
            "constraints"
            | "force_words_ids"
            | "bad_words_ids"
            | "sequence_bias"
            | "suppress_tokens"
            | "begin_suppress_tokens"
            | "forced_bos_token_id"
            | "forced_eos_token_id"
            | "exponential_decay_length_penalty"
            | "watermarking_config"
            | "stop_strings"
            | "max_time"
            | "dola_layers"
            | "renormalize_logits"
            | "remove_invalid_values"
            | "token_healing" => set(v),
            "typical_p" if do_sample => num(v).is_some_and(|x| x < 1.0),
            "epsilon_cutoff" | "eta_cutoff" if do_sample => num(v).is_some_and(|x| x > 0.0 && x < 1.0),
            "min_p" | "top_h" if do_sample => set(v),
            _ => false,
        };
        if active && !out.contains(key) {
            out.push(key.clone());
        }
    }
    out
}

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The sequence ended on an eos id (returned as its last token).
    Eos,
    /// `max_new_tokens` tokens were generated.
    MaxNewTokens,
}

/// The result of [`generate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// The new tokens only, including the eos id when generation stopped on
    /// it, as transformers' `generate` returns them after the prompt.
    pub token_ids: Vec<u32>,
    /// Why generation stopped.
    pub stop: StopReason,
    /// Beam search only: the hypothesis' length-penalised sum of
    /// log-probabilities (transformers' `sequences_scores`).
    pub score: Option<f64>,
}

/// Called once per generation step with `(step index, token id)`. Greedy
/// decoding and sampling report each new token of the sequence. Beam search
/// reports, per step, the newest token of the best running beam: the best
/// beam may change lineage between steps, so the reported tokens are for
/// progress, not a transcript of the result.
pub type TokenCallback<'a> = &'a mut dyn FnMut(usize, u32);

/// Generates for ONE prompt. `state` holds the prefilled prompt (batch 1);
/// `first_logits` `[1, vocab]` (or `[vocab]`) are the logits after the
/// prompt (the model's prefill produced them). `prompt_ids`: the prompt's
/// token ids as far as they are known (for `repetition_penalty`; may be
/// empty when the prompt is embeddings).
///
/// `config` must be resolved: its `max_new_tokens` and `min_new_tokens` are
/// used as they are (see [`GenerationConfig::resolved`] for the rules that
/// count the prompt). Errors: an invalid config, logits of the wrong shape
/// or dtype, NaN or `+inf` logits, a row of only `-inf` in beam search,
/// and any error of the decoder.
pub fn generate<D: CausalDecoder>(
    decoder: &D,
    state: D::State,
    first_logits: &Tensor,
    prompt_ids: &[u32],
    config: &GenerationConfig,
    on_token: TokenCallback,
) -> Result<Generated> {
    config.validate()?;
    let dims = first_logits.dims();
    let first = match dims.len() {
        1 => read_logits(first_logits, 1, None)?,
        2 if dims[0] == 1 => read_logits(first_logits, 1, None)?,
        _ => return Err(Error::invalid("generate", format!("first_logits must be [1, vocab], got shape {dims:?}"))),
    };
    if config.num_beams == 1 {
        sample_loop(decoder, state, first, prompt_ids, config, on_token)
    } else {
        beam_search(decoder, state, first, prompt_ids, config, on_token)
    }
}

/// Logits `[rows, vocab]` (or `[vocab]` for one row) as host `f32`, checked:
/// floats, the expected row count and vocabulary, no NaN or `+inf`.
fn read_logits(t: &Tensor, rows: usize, vocab: Option<usize>) -> Result<Vec<f32>> {
    let dims = t.dims();
    let ok_shape = match dims.len() {
        1 => rows == 1,
        2 => dims[0] == rows,
        _ => false,
    };
    let v = dims.last().copied().unwrap_or(0);
    if !ok_shape || v == 0 || vocab.is_some_and(|w| w != v) {
        let want = vocab.map_or("vocab".to_string(), |w| w.to_string());
        return Err(Error::invalid("generate", format!("logits must be [{rows}, {want}], got shape {dims:?}")));
    }
    if u32::try_from(v - 1).is_err() {
        return Err(Error::invalid("generate", format!("a vocabulary of {v} tokens does not fit u32 ids")));
    }
    if !t.dtype().is_float() {
        return Err(Error::invalid("generate", format!("logits must be floats, got dtype {}", t.dtype())));
    }
    let values = t.to_f32_vec()?;
    if let Some(i) = values.iter().position(|x| x.is_nan() || *x == f32::INFINITY) {
        return Err(Error::invalid("generate", format!("logit {} of row {} is {}", i % v, i / v, values[i])));
    }
    Ok(values)
}

/// The non-sampling logits processors, in place on one row of scores
/// (logits for greedy and sampling, log-probabilities for beam search):
/// repetition penalty over `prompt_ids` and `generated`, then eos
/// suppression while fewer than `min_new_tokens` tokens are generated.
fn process(scores: &mut [f32], prompt_ids: &[u32], generated: &[u32], config: &GenerationConfig) {
    if config.repetition_penalty != 1.0 {
        let penalty = config.repetition_penalty as f32;
        let mut seen = HashSet::new();
        for &id in prompt_ids.iter().chain(generated) {
            let i = id as usize;
            if i < scores.len() && seen.insert(id) {
                let s = scores[i];
                scores[i] = if s < 0.0 { s * penalty } else { s / penalty };
            }
        }
    }
    if generated.len() < config.min_new_tokens {
        for &eos in &config.eos_token_ids {
            if let Some(s) = scores.get_mut(eos as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

/// Index of the largest score, the first on ties (`torch.argmax`).
fn argmax(scores: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best as u32
}

/// Greedy decoding or sampling (transformers' `_sample`) for one row.
fn sample_loop<D: CausalDecoder>(
    decoder: &D,
    mut state: D::State,
    mut logits: Vec<f32>,
    prompt_ids: &[u32],
    config: &GenerationConfig,
    on_token: TokenCallback,
) -> Result<Generated> {
    let vocab = logits.len();
    let mut sampler = config.do_sample.then(|| LogitsProcessor::new(config.seed, config.sampling())).transpose()?;
    let mut tokens = Vec::with_capacity(config.max_new_tokens.min(4096));
    loop {
        process(&mut logits, prompt_ids, &tokens, config);
        let next = match sampler.as_mut() {
            Some(s) => s.sample_slice(&logits)?,
            None => argmax(&logits),
        };
        tokens.push(next);
        on_token(tokens.len() - 1, next);
        if config.eos_token_ids.contains(&next) {
            return Ok(Generated { token_ids: tokens, stop: StopReason::Eos, score: None });
        }
        if tokens.len() >= config.max_new_tokens {
            return Ok(Generated { token_ids: tokens, stop: StopReason::MaxNewTokens, score: None });
        }
        let t = decoder.decode_step(&[next], &mut state)?;
        logits = read_logits(&t, 1, Some(vocab))?;
    }
}

/// The `-1e9` transformers adds to scores to rule candidates out.
const MASK: f32 = -1.0e9;

/// `log_softmax` of one row, computed in `f64` and rounded to `f32`.
fn log_softmax(row: &[f32], beam: usize) -> Result<Vec<f32>> {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    if m == f64::NEG_INFINITY {
        return Err(Error::invalid("generate", format!("every logit of beam {beam} is -inf")));
    }
    let sum: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
    let log_sum = sum.ln();
    Ok(row.iter().map(|&x| ((x as f64 - m) - log_sum) as f32).collect())
}

/// `x ^ length_penalty` as the `f32` divisor torch uses (Python computes
/// the power in `f64`; the tensor op rounds the scalar to `f32`).
fn length_divisor(len: usize, length_penalty: f64) -> f32 {
    (len as f64).powf(length_penalty) as f32
}

/// The indices of the `k` largest `scores`, best first; ties go to the
/// lower index.
fn top_k_indices(scores: &[f32], k: usize) -> Vec<usize> {
    let cmp = |&a: &usize, &b: &usize| scores[b].partial_cmp(&scores[a]).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b));
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    if k < idx.len() {
        idx.select_nth_unstable_by(k, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx
}

/// A sequence of beam search: its new tokens and score.
#[derive(Clone, Debug)]
struct Hypothesis {
    tokens: Vec<u32>,
    score: f32,
    finished: bool,
}

/// Beam search (transformers' `_beam_search`) for one prompt; see the
/// module documentation for the algorithm.
fn beam_search<D: CausalDecoder>(
    decoder: &D,
    mut state: D::State,
    first: Vec<f32>,
    prompt_ids: &[u32],
    config: &GenerationConfig,
    on_token: TokenCallback,
) -> Result<Generated> {
    let n = config.num_beams;
    let vocab = first.len();
    let k = 2usize.max(1 + config.eos_token_ids.len()) * n;
    if k > n * vocab {
        return Err(Error::invalid(
            "generate",
            format!("beam search with {n} beams keeps {k} candidates per step, more than the {} beams x vocab", n * vocab),
        ));
    }
    decoder.select_rows(&mut state, &vec![0; n])?;
    // After the prefill every beam holds the prompt: the same logits.
    let mut logits: Vec<f32> = first.repeat(n);
    let mut running: Vec<Hypothesis> =
        (0..n).map(|i| Hypothesis { tokens: Vec::new(), score: if i == 0 { 0.0 } else { MASK }, finished: false }).collect();
    let mut finished: Vec<Hypothesis> = vec![Hypothesis { tokens: Vec::new(), score: MASK, finished: false }; n];
    let mut improvable = true;
    let mut accumulated = vec![0.0f32; n * vocab];
    for step in 0.. {
        // b. log-probabilities, processed, plus the running scores.
        for (b, beam) in running.iter().enumerate() {
            let mut lp = log_softmax(&logits[b * vocab..(b + 1) * vocab], b)?;
            process(&mut lp, prompt_ids, &beam.tokens, config);
            for (dst, &l) in accumulated[b * vocab..(b + 1) * vocab].iter_mut().zip(&lp) {
                *dst = l + beam.score;
            }
        }
        // c. the top-K continuations over all beams.
        let new_len = step + 1;
        let candidates: Vec<(usize, Hypothesis, bool)> = top_k_indices(&accumulated, k)
            .into_iter()
            .map(|i| {
                let (b, token) = (i / vocab, (i % vocab) as u32);
                let mut tokens = Vec::with_capacity(new_len);
                tokens.extend_from_slice(&running[b].tokens);
                tokens.push(token);
                // d. eos or the length limit ends the candidate.
                let hits = config.eos_token_ids.contains(&token) || new_len >= config.max_new_tokens;
                (b, Hypothesis { tokens, score: accumulated[i], finished: false }, hits)
            })
            .collect();
        // e. the next running beams: the best that did not stop.
        let masked: Vec<f32> = candidates.iter().map(|(_, h, hits)| h.score + if *hits { MASK } else { -0.0 }).collect();
        let chosen = top_k_indices(&masked, n);
        let sources: Vec<usize> = chosen.iter().map(|&j| candidates[j].0).collect();
        let next_running: Vec<Hypothesis> =
            chosen.iter().map(|&j| Hypothesis { tokens: candidates[j].1.tokens.clone(), score: masked[j], finished: false }).collect();
        // f. finalise the stopped candidates among the first `n`.
        let full = config.early_stopping == EarlyStopping::Always && finished.iter().all(|h| h.finished);
        let divisor = length_divisor(new_len, config.length_penalty);
        let mut merged_scores: Vec<f32> = finished.iter().map(|h| h.score).collect();
        for (j, (_, h, hits)) in candidates.iter().enumerate() {
            let just_finished = *hits && j < n;
            let mut s = h.score / divisor;
            s += if full { MASK } else { -0.0 };
            s += if improvable { -0.0 } else { MASK };
            s += if just_finished { -0.0 } else { MASK };
            merged_scores.push(s);
        }
        let keep = top_k_indices(&merged_scores, n);
        finished = keep
            .iter()
            .map(|&m| {
                if m < n {
                    finished[m].clone()
                } else {
                    let j = m - n;
                    let (_, h, hits) = &candidates[j];
                    Hypothesis { tokens: h.tokens.clone(), score: merged_scores[m], finished: *hits && j < n }
                }
            })
            .collect();
        running = next_running;
        on_token(step, running[0].tokens[step]);
        // g. the stopping condition of the search as a whole.
        let best_len =
            if config.early_stopping == EarlyStopping::Never && config.length_penalty > 0.0 { config.max_new_tokens } else { new_len };
        let best_possible = running[0].score / length_divisor(best_len, config.length_penalty);
        let worst_finished = finished.iter().map(|h| h.score).fold(f32::INFINITY, f32::min);
        improvable &= finished.iter().any(|h| best_possible > if h.finished { worst_finished } else { MASK });
        let all_done = finished.iter().all(|h| h.finished) && config.early_stopping == EarlyStopping::Always;
        let all_hit = candidates.iter().all(|(_, _, hits)| *hits);
        if !improvable || all_done || all_hit {
            break;
        }
        // a. reorder the caches and feed each beam's newest token.
        if sources.iter().enumerate().any(|(i, &s)| i != s) {
            decoder.select_rows(&mut state, &sources)?;
        }
        let last: Vec<u32> = running.iter().map(|h| h.tokens[step]).collect();
        let t = decoder.decode_step(&last, &mut state)?;
        logits = read_logits(&t, n, Some(vocab))?;
    }
    let best = finished.swap_remove(0);
    let stop = match best.tokens.last() {
        Some(t) if config.eos_token_ids.contains(t) => StopReason::Eos,
        _ => StopReason::MaxNewTokens,
    };
    Ok(Generated { token_ids: best.tokens, stop, score: Some(best.score as f64) })
}

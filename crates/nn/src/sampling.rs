//! Choosing the next token from logits: greedy, or sampling with
//! temperature, top-k and top-p (nucleus) filtering, applied in that order
//! as Hugging Face's `generate` applies its warpers.

use crate::{Error, Result};
use tessera_tensor::rng::Rng;
use tessera_tensor::Tensor;

/// How to pick a token.
///
/// - `temperature == 0` means greedy decoding (argmax; the filters are then
///   irrelevant); otherwise logits are divided by it. It must be finite and
///   not negative.
/// - `top_k`: keep the `k` highest logits (and any tied with the `k`-th, as
///   HF does). `None` and `Some(0)` both disable it (HF treats 0 as "off").
/// - `top_p`: keep the smallest set of most probable tokens whose
///   probabilities sum to at least `p` (always at least one token). Must be
///   in `(0, 1]`; `1` disables it.
///
/// The default is greedy decoding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingConfig {
    /// Softmax temperature; 0 for greedy decoding.
    pub temperature: f64,
    /// Keep only the `k` most likely tokens.
    pub top_k: Option<usize>,
    /// Keep only the nucleus of probability mass `p`.
    pub top_p: Option<f64>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig::greedy()
    }
}

impl SamplingConfig {
    /// Argmax decoding.
    pub fn greedy() -> Self {
        SamplingConfig { temperature: 0.0, top_k: None, top_p: None }
    }

    /// Sampling at `temperature` with no filter.
    pub fn with_temperature(temperature: f64) -> Self {
        SamplingConfig { temperature, top_k: None, top_p: None }
    }

    /// The same with top-k filtering.
    pub fn top_k(mut self, k: usize) -> Self {
        self.top_k = Some(k);
        self
    }

    /// The same with top-p filtering.
    pub fn top_p(mut self, p: f64) -> Self {
        self.top_p = Some(p);
        self
    }

    /// Whether this picks the argmax.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Checks the parameters (see the type's documentation).
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::invalid("sampling", format!("temperature must be finite and >= 0, got {}", self.temperature)));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::invalid("sampling", format!("top_p must be in (0, 1], got {p}")));
            }
        }
        Ok(())
    }
}

/// Picks tokens from logits with a seeded generator: the same seed, config
/// and logits give the same tokens on every run and device.
#[derive(Clone, Debug)]
pub struct LogitsProcessor {
    rng: Rng,
    config: SamplingConfig,
}

impl LogitsProcessor {
    /// A processor with generator seed `seed`; an error for invalid
    /// parameters.
    pub fn new(seed: u64, config: SamplingConfig) -> Result<LogitsProcessor> {
        config.validate()?;
        Ok(LogitsProcessor { rng: Rng::new(seed), config })
    }

    /// A greedy processor (it draws no random numbers).
    pub fn greedy() -> LogitsProcessor {
        LogitsProcessor { rng: Rng::new(0), config: SamplingConfig::greedy() }
    }

    /// The parameters.
    pub fn config(&self) -> &SamplingConfig {
        &self.config
    }

    /// The next token for `logits`: a tensor of any float dtype and device
    /// with shape `[vocab]` (or `[1, ..., 1, vocab]`). Errors: another shape,
    /// an empty vocabulary, NaN logits, or every logit `-inf`.
    pub fn sample(&mut self, logits: &Tensor) -> Result<u32> {
        let dims = logits.dims();
        let ok = !dims.is_empty() && dims[..dims.len() - 1].iter().all(|&d| d == 1);
        if !ok {
            return Err(Error::invalid("sampling", format!("logits must be [vocab] (or [1, ..., vocab]), got shape {:?}", dims)));
        }
        if !logits.dtype().is_float() {
            return Err(Error::invalid("sampling", format!("logits must be floats, got dtype {}", logits.dtype())));
        }
        let values = logits.to_f32_vec()?;
        self.sample_slice(&values)
    }

    /// [`sample`](LogitsProcessor::sample) for logits already on the host.
    pub fn sample_slice(&mut self, logits: &[f32]) -> Result<u32> {
        check_logits(logits)?;
        if self.config.is_greedy() {
            return Ok(argmax(logits));
        }
        let weights = self.weights(logits);
        let total: f64 = weights.iter().sum();
        let u = self.rng.next_f64() * total;
        let mut acc = 0.0;
        let mut last = 0;
        for (i, &w) in weights.iter().enumerate() {
            if w > 0.0 {
                acc += w;
                last = i;
                if u < acc {
                    return Ok(i as u32);
                }
            }
        }
        // Rounding left `u` at the very top of the range: the last kept token.
        Ok(last as u32)
    }

    /// The distribution [`sample_slice`](LogitsProcessor::sample_slice) draws
    /// from: probabilities after temperature, top-k and top-p, summing to 1
    /// (one-hot at the argmax for greedy decoding).
    pub fn probabilities(&self, logits: &[f32]) -> Result<Vec<f64>> {
        check_logits(logits)?;
        if self.config.is_greedy() {
            let mut p = vec![0.0; logits.len()];
            p[argmax(logits) as usize] = 1.0;
            return Ok(p);
        }
        let mut w = self.weights(logits);
        let total: f64 = w.iter().sum();
        w.iter_mut().for_each(|x| *x /= total);
        Ok(w)
    }

    /// Unnormalised probabilities after all filters; at least one is > 0.
    fn weights(&self, logits: &[f32]) -> Vec<f64> {
        let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let t = self.config.temperature;
        let mut w: Vec<f64> = if m == f64::INFINITY {
            // Infinite logits win outright, with equal shares.
            logits.iter().map(|&l| if l == f32::INFINITY { 1.0 } else { 0.0 }).collect()
        } else {
            logits.iter().map(|&l| ((l as f64 - m) / t).exp()).collect()
        };
        if let Some(k) = self.config.top_k.filter(|&k| k > 0 && k < w.len()) {
            let mut sorted = w.clone();
            let (_, kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            let threshold = *kth;
            w.iter_mut().filter(|x| **x < threshold).for_each(|x| *x = 0.0);
        }
        if let Some(p) = self.config.top_p.filter(|&p| p < 1.0) {
            let total: f64 = w.iter().sum();
            let mut order: Vec<usize> = (0..w.len()).filter(|&i| w[i] > 0.0).collect();
            order.sort_by(|&a, &b| w[b].total_cmp(&w[a]).then(a.cmp(&b)));
            // Keep a token while the mass before it is below p: the smallest
            // prefix whose mass reaches p, and never fewer than one token.
            let mut before = 0.0;
            let mut keep = 0;
            for &i in &order {
                if before / total >= p {
                    break;
                }
                before += w[i];
                keep += 1;
            }
            for &i in &order[keep.max(1)..] {
                w[i] = 0.0;
            }
        }
        w
    }
}

/// Non-empty, no NaN, not all `-inf`, and indexable by `u32`.
fn check_logits(logits: &[f32]) -> Result<()> {
    if logits.is_empty() {
        return Err(Error::invalid("sampling", "the logits are empty"));
    }
    if u32::try_from(logits.len() - 1).is_err() {
        return Err(Error::invalid("sampling", format!("a vocabulary of {} tokens does not fit u32 ids", logits.len())));
    }
    if let Some(i) = logits.iter().position(|l| l.is_nan()) {
        return Err(Error::invalid("sampling", format!("logit {i} is NaN")));
    }
    if logits.iter().all(|&l| l == f32::NEG_INFINITY) {
        return Err(Error::invalid("sampling", "every logit is -inf"));
    }
    Ok(())
}

/// Index of the largest logit (the first on ties).
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

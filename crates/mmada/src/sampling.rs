//! The samplers' arithmetic, as models/sampling.py and modeling_mmada.py
//! compute it, and the one source of randomness every sampler draws from.
//!
//! - The cosine schedule in float32: `cos((f32(ratio) * f32(pi)) * 0.5)`,
//!   the cosine of that float32 angle rounded to float32, so that
//!   `floor(N * mask_ratio)` lands where torch's does (at ratio 2/3 it is
//!   0.49999997, and N/2 - 1 positions are re-masked, not N/2).
//! - `mask_by_random_topk`: confidence `log(max(p, 1e-20)) + T * G` in
//!   float32, re-masking every position below the `mask_len`-th smallest.
//! - Text steps commit `get_num_transfer_tokens` positions: `n / steps`
//!   each, one more in the first `n % steps` steps.

/// Gumbel noise and uniform draws. [`SeededNoise`] draws them from a seed;
/// a test can replay recorded noise instead, so that every step of a
/// sampler reproduces a reference run bit for bit.
pub trait NoiseSource {
    /// Gumbel noise for the categorical draw of image step `step`, one value
    /// per (row, class): the draw is `argmax(log p + g)` (the Gumbel-max
    /// form of `torch.multinomial`).
    fn sample_gumbel(&mut self, step: usize, rows: usize, classes: usize) -> Vec<f32>;
    /// `G` of `mask_by_random_topk` at image step `step`, one per position.
    fn confidence_gumbel(&mut self, step: usize, rows: usize, positions: usize) -> Vec<f32>;
    /// Uniform (0, 1) draws in f64 (text sampling at a temperature).
    fn uniform_f64(&mut self, n: usize) -> Vec<f64>;
    /// Uniform [0, 1) draws in f32 (random remasking's confidences).
    fn uniform_f32(&mut self, n: usize) -> Vec<f32>;
}

/// Noise from a seeded generator: `gumbel_noise` as sampling.py computes
/// it, `-log(-log(u))` with both logs clamped at 1e-20.
pub struct SeededNoise {
    rng: tessera_tensor::rng::Rng,
}

impl SeededNoise {
    pub fn new(seed: u64) -> Self {
        SeededNoise { rng: tessera_tensor::rng::Rng::new(seed) }
    }

    fn gumbel(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| gumbel_of(self.rng.next_f64() as f32)).collect()
    }
}

impl NoiseSource for SeededNoise {
    fn sample_gumbel(&mut self, _step: usize, rows: usize, classes: usize) -> Vec<f32> {
        self.gumbel(rows * classes)
    }
    fn confidence_gumbel(&mut self, _step: usize, rows: usize, positions: usize) -> Vec<f32> {
        self.gumbel(rows * positions)
    }
    fn uniform_f64(&mut self, n: usize) -> Vec<f64> {
        // (0, 1): a zero would make -log(u) infinite.
        (0..n).map(|_| self.rng.next_f64().max(f64::MIN_POSITIVE)).collect()
    }
    fn uniform_f32(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| (self.rng.next_f64() as f32).min(1.0 - f32::EPSILON / 2.0)).collect()
    }
}

/// sampling.py's `log`: `ln(max(x, 1e-20))`.
fn clamped_log(x: f32) -> f32 {
    x.max(1e-20).ln()
}

/// `gumbel_noise` of one uniform draw.
pub fn gumbel_of(u: f32) -> f32 {
    -clamped_log(-clamped_log(u))
}

/// `cosine_schedule(torch.tensor(ratio))` in float32 (see the module docs).
pub fn cosine_mask_ratio(ratio: f64) -> f32 {
    let angle = (ratio as f32 * std::f32::consts::PI) * 0.5;
    (angle as f64).cos() as f32
}

/// Positions re-masked after an image step: `floor(N * mask_ratio)` in
/// float32, then at least 1 and at most `unknown - 1` (at least 1 even
/// when nothing is unknown, as the reference clamps).
pub fn mask_len(positions: usize, mask_ratio: f32, unknown: usize) -> usize {
    let len = (positions as f32 * mask_ratio).floor();
    let upper = unknown as f32 - 1.0;
    len.min(upper).max(1.0) as usize
}

/// `mask_by_random_topk` of one row: which positions to re-mask, given the
/// probabilities of the chosen codes, the temperature (applied in float32)
/// and the Gumbel noise `g`.
pub fn mask_by_random_topk(mask_len: usize, probs: &[f32], temperature: f64, g: &[f32]) -> Vec<bool> {
    let t = temperature as f32;
    let confidence: Vec<f32> = probs.iter().zip(g).map(|(&p, &g)| clamped_log(p) + t * g).collect();
    let mut sorted = confidence.clone();
    sorted.sort_by(f32::total_cmp);
    let cut = sorted[mask_len.min(sorted.len() - 1)];
    confidence.iter().map(|&c| c < cut).collect()
}

/// `get_num_transfer_tokens` of one row: `masked` positions committed over
/// `steps` steps.
pub fn num_transfer_tokens(masked: usize, steps: usize) -> Vec<usize> {
    let (base, rest) = (masked / steps, masked % steps);
    (0..steps).map(|i| base + (i < rest) as usize).collect()
}

/// The first index of the largest value (torch's argmax); NaN never wins.
pub fn argmax<T: PartialOrd + Copy>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate().skip(1) {
        if x > row[best] {
            best = i;
        }
    }
    best
}

/// Softmax in f32 over one row, as torch computes it: `exp(x - max)`
/// divided by the sum.
pub fn softmax_f32(row: &[f32]) -> Vec<f32> {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = row.iter().map(|&x| (x - m).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|&x| x / sum).collect()
}

/// The f64 softmax probability of entry `i` of an f32 row.
pub fn softmax_f64_at(row: &[f32], i: usize) -> f64 {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - m).exp()).sum();
    (row[i] as f64 - m).exp() / sum
}

/// The indices of the `k` largest values, larger first (the first index on
/// ties).
pub fn top_k(values: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_float32_schedule_remasks_one_fewer_at_two_thirds() {
        // The fixture README's example: T = 6, N = 16, step 3 (ratio 4/6).
        let r = cosine_mask_ratio(4.0 / 6.0);
        assert_eq!(r, 0.49999997);
        assert_eq!(mask_len(16, r, 16), 7);
        // The real model: N = 1024 at 2T/3 for T = 12, 15, 18.
        for t in [12usize, 15, 18] {
            let r = cosine_mask_ratio((2 * t / 3) as f64 / t as f64);
            assert_eq!(mask_len(1024, r, 1024), 511, "T = {t}");
        }
        // The last step: cos is slightly negative and the clamp gives 1.
        assert!(cosine_mask_ratio(1.0) < 0.0);
        assert_eq!(mask_len(16, cosine_mask_ratio(1.0), 5), 1);
    }

    #[test]
    fn transfer_counts_and_top_k() {
        assert_eq!(num_transfer_tokens(6, 4), vec![2, 2, 1, 1]);
        assert_eq!(num_transfer_tokens(8, 4), vec![2, 2, 2, 2]);
        assert_eq!(top_k(&[0.1, 0.5, f64::NEG_INFINITY, 0.5, 0.3], 3), vec![1, 3, 4]);
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
    }

    #[test]
    fn random_topk_masks_below_the_cut() {
        let probs = [0.9, 0.1, 0.5, f32::MAX];
        let m = mask_by_random_topk(2, &probs, 0.0, &[0.0; 4]);
        assert_eq!(m, vec![false, true, true, false]);
    }
}

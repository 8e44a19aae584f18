//! Sampling: greedy, temperature, top-k, top-p, their order, determinism,
//! and parameter errors.

mod common;

use common::*;
use tessera_nn::{LogitsProcessor, SamplingConfig};
use tessera_tensor::{DType, Tensor};

fn ln(p: &[f64]) -> Vec<f32> {
    p.iter().map(|&v| v.ln() as f32).collect()
}

/// Counts of each token over `n` draws.
fn histogram(lp: &mut LogitsProcessor, logits: &[f32], n: usize) -> Vec<usize> {
    let mut counts = vec![0; logits.len()];
    for _ in 0..n {
        counts[lp.sample_slice(logits).unwrap() as usize] += 1;
    }
    counts
}

#[test]
fn greedy_is_argmax_for_every_float_dtype() {
    let logits = [0.1f32, 2.5, -1.0, 2.4, 0.0];
    let mut lp = LogitsProcessor::greedy();
    assert!(lp.config().is_greedy());
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let t = tensor(&logits, &[5]).to_dtype(dtype).unwrap();
        assert_eq!(lp.sample(&t).unwrap(), 1, "{dtype}");
    }
    // [1, vocab] is accepted too; ties pick the first.
    assert_eq!(lp.sample(&tensor(&[3.0, 3.0, 1.0], &[1, 3])).unwrap(), 0);
    assert_eq!(lp.probabilities(&logits).unwrap(), vec![0.0, 1.0, 0.0, 0.0, 0.0]);
    // Default config is greedy; temperature 0 too.
    let mut lp = LogitsProcessor::new(1, SamplingConfig::default()).unwrap();
    assert_eq!(lp.sample_slice(&logits).unwrap(), 1);
}

#[test]
fn top_k_one_is_argmax() {
    let logits = values(3, 50);
    let best = logits.iter().enumerate().fold(0, |b, (i, &v)| if v > logits[b] { i } else { b }) as u32;
    for seed in 0..20 {
        let mut lp = LogitsProcessor::new(seed, SamplingConfig::with_temperature(1.5).top_k(1)).unwrap();
        for _ in 0..10 {
            assert_eq!(lp.sample_slice(&logits).unwrap(), best);
        }
    }
}

#[test]
fn same_seed_same_samples() {
    let logits = values(4, 100);
    let cfg = SamplingConfig::with_temperature(0.8).top_k(40).top_p(0.9);
    let run = |seed: u64| -> Vec<u32> {
        let mut lp = LogitsProcessor::new(seed, cfg).unwrap();
        (0..200).map(|_| lp.sample_slice(&logits).unwrap()).collect()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
    // The tensor path reads back the same values.
    let mut a = LogitsProcessor::new(7, cfg).unwrap();
    let mut b = LogitsProcessor::new(7, cfg).unwrap();
    let t = tensor(&logits, &[100]);
    for _ in 0..50 {
        assert_eq!(a.sample(&t).unwrap(), b.sample_slice(&logits).unwrap());
    }
}

#[test]
fn plain_sampling_follows_the_softmax() {
    let p = [0.5, 0.25, 0.15, 0.1];
    let mut lp = LogitsProcessor::new(11, SamplingConfig::with_temperature(1.0)).unwrap();
    let probs = lp.probabilities(&ln(&p)).unwrap();
    assert_close(&probs.iter().map(|&v| v as f32).collect::<Vec<_>>(), &p, 1e-6);
    let n = 40_000;
    let counts = histogram(&mut lp, &ln(&p), n);
    for (i, &c) in counts.iter().enumerate() {
        let f = c as f64 / n as f64;
        assert!((f - p[i]).abs() < 0.01, "token {i}: frequency {f}, probability {}", p[i]);
    }
}

#[test]
fn top_p_keeps_the_smallest_nucleus() {
    let p = [0.1, 0.5, 0.15, 0.25];
    let logits = ln(&p);
    // 0.5 < 0.7 <= 0.5 + 0.25: the nucleus is tokens 1 and 3.
    let mut lp = LogitsProcessor::new(5, SamplingConfig::with_temperature(1.0).top_p(0.7)).unwrap();
    let probs = lp.probabilities(&logits).unwrap();
    let expected = [0.0, 0.5 / 0.75, 0.0, 0.25 / 0.75];
    for (a, e) in probs.iter().zip(expected) {
        assert!((a - e).abs() < 1e-6, "{probs:?}");
    }
    let n = 30_000;
    let counts = histogram(&mut lp, &logits, n);
    assert_eq!((counts[0], counts[2]), (0, 0), "{counts:?}");
    let f1 = counts[1] as f64 / n as f64;
    assert!((f1 - 2.0 / 3.0).abs() < 0.01, "frequency of token 1: {f1}");
    // Below the top probability: one token; just above: two.
    let one = LogitsProcessor::new(5, SamplingConfig::with_temperature(1.0).top_p(0.49)).unwrap();
    assert_eq!(one.probabilities(&logits).unwrap().iter().filter(|&&v| v > 0.0).count(), 1);
    let two = LogitsProcessor::new(5, SamplingConfig::with_temperature(1.0).top_p(0.51)).unwrap();
    assert_eq!(two.probabilities(&logits).unwrap().iter().filter(|&&v| v > 0.0).count(), 2);
    // A tiny p still keeps the most likely token; p = 1 keeps everything.
    let mut tiny = LogitsProcessor::new(5, SamplingConfig::with_temperature(1.0).top_p(1e-9)).unwrap();
    assert!((0..100).all(|_| tiny.sample_slice(&logits).unwrap() == 1));
    let all = LogitsProcessor::new(5, SamplingConfig::with_temperature(1.0).top_p(1.0)).unwrap();
    assert_eq!(all.probabilities(&logits).unwrap().iter().filter(|&&v| v > 0.0).count(), 4);
}

#[test]
fn top_k_keeps_k_tokens_and_zero_disables_it() {
    let p = [0.1, 0.4, 0.2, 0.3];
    let logits = ln(&p);
    let lp = LogitsProcessor::new(1, SamplingConfig::with_temperature(1.0).top_k(2)).unwrap();
    let probs = lp.probabilities(&logits).unwrap();
    let expected = [0.0, 0.4 / 0.7, 0.0, 0.3 / 0.7];
    for (a, e) in probs.iter().zip(expected) {
        assert!((a - e).abs() < 1e-6, "{probs:?}");
    }
    let off = LogitsProcessor::new(1, SamplingConfig::with_temperature(1.0).top_k(0)).unwrap();
    let plain = LogitsProcessor::new(1, SamplingConfig::with_temperature(1.0)).unwrap();
    assert_eq!(off.probabilities(&logits).unwrap(), plain.probabilities(&logits).unwrap());
    let big = LogitsProcessor::new(1, SamplingConfig::with_temperature(1.0).top_k(10)).unwrap();
    assert_eq!(big.probabilities(&logits).unwrap(), plain.probabilities(&logits).unwrap());
}

#[test]
fn filters_apply_in_hf_order() {
    // top-k renormalises before top-p: [0.4, 0.3] -> [0.57, 0.43], and 0.57
    // alone reaches p = 0.5. Without top-k, tokens 0 and 1 would be kept.
    let logits = ln(&[0.4, 0.3, 0.2, 0.1]);
    let both = LogitsProcessor::new(1, SamplingConfig::with_temperature(1.0).top_k(2).top_p(0.5)).unwrap();
    assert_eq!(both.probabilities(&logits).unwrap(), vec![1.0, 0.0, 0.0, 0.0]);
    let p_only = LogitsProcessor::new(1, SamplingConfig::with_temperature(1.0).top_p(0.5)).unwrap();
    assert_eq!(p_only.probabilities(&logits).unwrap().iter().filter(|&&v| v > 0.0).count(), 2);
    // Temperature comes first: at T = 4 the distribution flattens and p = 0.5
    // needs two of the top 3 tokens; at T = 0.25 it sharpens and one is enough.
    let hot = LogitsProcessor::new(1, SamplingConfig::with_temperature(4.0).top_k(3).top_p(0.5)).unwrap();
    assert_eq!(hot.probabilities(&logits).unwrap().iter().filter(|&&v| v > 0.0).count(), 2);
    let cold = LogitsProcessor::new(1, SamplingConfig::with_temperature(0.25).top_k(3).top_p(0.5)).unwrap();
    assert_eq!(cold.probabilities(&logits).unwrap().iter().filter(|&&v| v > 0.0).count(), 1);
}

#[test]
fn temperature_scales_logits() {
    let logits = [1.0f32, 0.0, -0.5, 2.0];
    for t in [0.5, 1.0, 3.0] {
        let lp = LogitsProcessor::new(1, SamplingConfig::with_temperature(t)).unwrap();
        let e: Vec<f64> = logits.iter().map(|&l| (l as f64 / t).exp()).collect();
        let z: f64 = e.iter().sum();
        let expected: Vec<f64> = e.iter().map(|v| v / z).collect();
        let got: Vec<f32> = lp.probabilities(&logits).unwrap().iter().map(|&v| v as f32).collect();
        assert_close(&got, &expected, 1e-6);
    }
}

#[test]
fn temperature_to_zero_becomes_argmax() {
    let logits = [0.3f32, 1.1, 1.0, -2.0, 0.9];
    let mut lp = LogitsProcessor::new(9, SamplingConfig::with_temperature(1e-3)).unwrap();
    let probs = lp.probabilities(&logits).unwrap();
    assert!(probs[1] > 1.0 - 1e-12, "{probs:?}");
    assert!((0..1000).all(|_| lp.sample_slice(&logits).unwrap() == 1));
    // The limit agrees with greedy decoding on many random vectors.
    let mut greedy = LogitsProcessor::greedy();
    let mut cold = LogitsProcessor::new(3, SamplingConfig::with_temperature(1e-6)).unwrap();
    for s in 0..50 {
        let l = values(100 + s, 64);
        assert_eq!(cold.sample_slice(&l).unwrap(), greedy.sample_slice(&l).unwrap());
    }
}

#[test]
fn infinite_and_masked_logits() {
    let mut lp = LogitsProcessor::new(2, SamplingConfig::with_temperature(1.0)).unwrap();
    // -inf logits are never drawn.
    let masked = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 0.0];
    let counts = histogram(&mut lp, &masked, 2000);
    assert_eq!((counts[0], counts[2]), (0, 0));
    // +inf logits win outright.
    let inf = [0.0, f32::INFINITY, 5.0];
    assert!((0..100).all(|_| lp.sample_slice(&inf).unwrap() == 1));
}

#[test]
fn invalid_parameters_and_inputs_are_errors() {
    for cfg in [
        SamplingConfig::with_temperature(-0.1),
        SamplingConfig::with_temperature(f64::NAN),
        SamplingConfig::with_temperature(f64::INFINITY),
        SamplingConfig::with_temperature(1.0).top_p(0.0),
        SamplingConfig::with_temperature(1.0).top_p(1.5),
        SamplingConfig::with_temperature(1.0).top_p(f64::NAN),
    ] {
        let err = LogitsProcessor::new(0, cfg).unwrap_err();
        assert!(err.to_string().starts_with("sampling:"), "{err}");
    }
    let mut lp = LogitsProcessor::new(0, SamplingConfig::with_temperature(1.0)).unwrap();
    assert!(lp.sample_slice(&[]).is_err());
    assert!(lp.sample_slice(&[0.0, f32::NAN]).is_err());
    assert!(lp.sample_slice(&[f32::NEG_INFINITY; 3]).is_err());
    assert!(lp.sample(&random(1, &[2, 3])).is_err());
    assert!(lp.sample(&Tensor::zeros(3, DType::U32, &dev()).unwrap()).is_err());
    assert!(LogitsProcessor::greedy().sample(&Tensor::zeros(0, DType::F32, &dev()).unwrap()).is_err());
}

//! A host model of the per-row algorithm of kernels/attention.cu, checked
//! against softmax attention without a GPU: the key range a block of 64
//! queries walks (bottom-right causal alignment, `kv_end`), the masking of
//! keys past `tk`, by the causal rule and by an additive mask with -inf, the
//! online softmax in the exp2 domain (running max and sum, the rescale by
//! exp2(m_old - m_new), exponentiation against 0 while a row has seen no
//! key) and the final division that gives zeros to rows that saw no key.
//! The tensor-core plumbing is covered by fragment_model.rs; this file
//! mirrors the scalar logic of attention.cu line for line.

const BR: usize = 64;
const BC: usize = 64;
const LOG2E: f64 = std::f64::consts::LOG2_E;

struct Case {
    tq: usize,
    tk: usize,
    d: usize,
    causal: bool,
    /// Additive mask [tq, tk]; -inf entries hide keys.
    mask: Option<Vec<f64>>,
}

fn value(i: usize, j: usize, salt: usize) -> f64 {
    (((i * 37 + j * 11 + salt * 5) % 17) as f64 - 8.0) / 8.0
}

/// The kernel's result for every query row.
fn kernel_model(c: &Case, q: &[f64], k: &[f64], v: &[f64], scale: f64) -> Vec<f64> {
    let (tq, tk, d) = (c.tq, c.tk, c.d);
    let shift = tk as i64 - tq as i64;
    let scale_log2 = scale * LOG2E;
    let mut out = vec![0.0; tq * d];
    for q0 in (0..tq).step_by(BR) {
        let q_last = (q0 + BR).min(tq) as i64 - 1;
        let kv_end = if c.causal { (tk as i64).min(q_last + shift + 1).max(0) as usize } else { tk };
        let tiles = kv_end.div_ceil(BC);
        for qi in q0..(q0 + BR).min(tq) {
            let (mut m, mut l) = (f64::NEG_INFINITY, 0.0);
            let mut o = vec![0.0; d];
            for j in 0..tiles {
                let k0 = j * BC;
                let mut s = [0.0; BC];
                let mut tile_max = f64::NEG_INFINITY;
                for (t, st) in s.iter_mut().enumerate() {
                    let key = k0 + t;
                    let dot: f64 = if key < tk { (0..d).map(|x| q[qi * d + x] * k[key * d + x]).sum() } else { 0.0 };
                    let mut val = dot * scale_log2;
                    let visible = key < tk && (!c.causal || key as i64 <= qi as i64 + shift);
                    if visible {
                        if let Some(mk) = &c.mask {
                            val += mk[qi * tk + key] * LOG2E;
                        }
                    }
                    *st = if visible { val } else { f64::NEG_INFINITY };
                    tile_max = tile_max.max(*st);
                }
                let m_new = m.max(tile_max);
                let m_use = if m_new == f64::NEG_INFINITY { 0.0 } else { m_new };
                let alpha = (m - m_use).exp2();
                m = m_new;
                l *= alpha;
                for st in s.iter_mut() {
                    *st = (*st - m_use).exp2();
                    l += *st;
                }
                o.iter_mut().for_each(|x| *x *= alpha);
                for (t, p) in s.iter().enumerate() {
                    let key = k0 + t;
                    if key < tk {
                        for x in 0..d {
                            o[x] += p * v[key * d + x];
                        }
                    }
                }
            }
            let inv = if l > 0.0 { 1.0 / l } else { 0.0 };
            for x in 0..d {
                out[qi * d + x] = o[x] * inv;
            }
        }
    }
    out
}

/// softmax(q k^T * scale + mask) v, zeros for rows that see no key.
fn reference(c: &Case, q: &[f64], k: &[f64], v: &[f64], scale: f64) -> Vec<f64> {
    let (tq, tk, d) = (c.tq, c.tk, c.d);
    let shift = tk as i64 - tq as i64;
    let mut out = vec![0.0; tq * d];
    for i in 0..tq {
        let scores: Vec<f64> = (0..tk)
            .map(|j| {
                if c.causal && j as i64 > i as i64 + shift {
                    return f64::NEG_INFINITY;
                }
                let s: f64 = (0..d).map(|x| q[i * d + x] * k[j * d + x]).sum::<f64>() * scale;
                s + c.mask.as_ref().map_or(0.0, |m| m[i * tk + j])
            })
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            continue;
        }
        let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        for x in 0..d {
            out[i * d + x] = (0..tk).map(|j| e[j] * v[j * d + x]).sum::<f64>() / sum;
        }
    }
    out
}

#[test]
fn online_softmax_and_masking_match_softmax_attention() {
    let mut cases = Vec::new();
    for (tq, tk) in [(1, 1), (7, 7), (64, 64), (65, 130), (200, 200), (3, 150), (150, 3), (70, 0), (0, 5), (1, 129)] {
        for causal in [false, true] {
            cases.push(Case { tq, tk, d: 8, causal, mask: None });
        }
        // A mask hiding some keys, and every key of query 0.
        let mask = (0..tq * tk).map(|e| if e < tk || e % 7 == 3 { f64::NEG_INFINITY } else { value(e, 1, 9) }).collect();
        cases.push(Case { tq, tk, d: 8, causal: tq % 2 == 1, mask: Some(mask) });
    }
    for c in cases {
        let q: Vec<f64> = (0..c.tq * c.d).map(|e| value(e, 0, 1)).collect();
        let k: Vec<f64> = (0..c.tk * c.d).map(|e| value(e, 0, 2)).collect();
        let v: Vec<f64> = (0..c.tk * c.d).map(|e| value(e, 0, 3)).collect();
        let scale = 1.0 / (c.d as f64).sqrt();
        let (got, want) = (kernel_model(&c, &q, &k, &v, scale), reference(&c, &q, &k, &v, scale));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                "tq {} tk {} causal {} mask {}: out[{i}] = {g}, expected {w}",
                c.tq,
                c.tk,
                c.causal,
                c.mask.is_some()
            );
        }
    }
}

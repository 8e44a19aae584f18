//! Scaled dot-product attention, one query row per task.
//!
//! For each (batch, head, query) the scores against the visible keys are
//! computed into a row buffer of length `tk` (never the full `tq x tk`
//! matrix), softmaxed in f32 with f64 sums, and used to weight the values.
//! Grouped-query heads read KV head `h / (hq / hkv)`. The additive mask is
//! read through its (broadcast) strides, so it is never materialised. A
//! query that sees no key (fully masked) gets a zero output row.

use super::read::{elem_f32, read_f32};
use super::{cpu, CpuStorage};
use crate::backend::{AttentionParams, View};
use rayon::prelude::*;

pub fn attention(q: View, k: View, v: View, mask: Option<View>, p: &AttentionParams) -> CpuStorage {
    let (qs, ks, vs) = (read_f32(q), read_f32(k), read_f32(v));
    let (b, hq, tq, d) = {
        let s = q.layout.shape();
        (s[0], s[1], s[2], s[3])
    };
    let (hkv, tk) = (k.layout.shape()[1], k.layout.shape()[2]);
    let dv = v.layout.shape()[3];
    let group = hq / hkv;
    let scale = p.scale as f32;
    let shift = tk as isize - tq as isize;
    let mut out = vec![0.0f32; b * hq * tq * dv];
    if dv == 0 {
        return CpuStorage::from_f32(q.dtype(), out);
    }
    out.par_chunks_mut(dv).enumerate().for_each_init(
        || vec![0.0f32; tk],
        |scores, (row, o)| {
            let (bi, rest) = (row / (hq * tq), row % (hq * tq));
            let (h, i) = (rest / tq, rest % tq);
            let kvh = h / group;
            let qrow = &qs[row * d..][..d];
            let kbase = (bi * hkv + kvh) * tk;
            let visible = if p.causal { ((i as isize + shift + 1).clamp(0, tk as isize)) as usize } else { tk };
            let mut max = f32::NEG_INFINITY;
            for (j, s) in scores.iter_mut().enumerate().take(visible) {
                let krow = &ks[(kbase + j) * d..][..d];
                let mut dot = 0.0f32;
                for (a, b) in qrow.iter().zip(krow) {
                    dot += a * b;
                }
                let mut sc = dot * scale;
                if let Some(m) = &mask {
                    let l = m.layout;
                    let st = l.strides();
                    let idx = l.offset() + bi * st[0] + h * st[1] + i * st[2] + j * st[3];
                    sc += elem_f32(m.dtype(), cpu(m).buf(), idx);
                }
                *s = sc;
                max = max.max(sc);
            }
            o.fill(0.0);
            if max == f32::NEG_INFINITY {
                return; // no visible key: the output row is zero
            }
            let mut sum = 0f64;
            for s in scores.iter_mut().take(visible) {
                *s = (*s - max).exp();
                sum += *s as f64;
            }
            let inv = (1.0 / sum) as f32;
            for (j, &pj) in scores.iter().enumerate().take(visible) {
                let vrow = &vs[(kbase + j) * dv..][..dv];
                let w = pj * inv;
                for (oi, &vi) in o.iter_mut().zip(vrow) {
                    *oi += w * vi;
                }
            }
        },
    );
    CpuStorage::from_f32(q.dtype(), out)
}

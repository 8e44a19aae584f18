//! Scaled dot-product attention, tiled over keys with an online softmax
//! (the flash-attention forward algorithm on the CPU).
//!
//! Work is split into tasks of (batch, head, block of `QB` queries). A task
//! walks the keys in blocks of `KB`: scores `S = Q_blk K_blk^T` by the GEMM
//! micro-kernel, scale, additive mask (read through its broadcast strides,
//! never materialised) and causal limit applied, then per row the running max
//! `m`, the running sum `l` and the output rows are rescaled by
//! `exp(m_old - m_new)` and `P V_blk` is added by the micro-kernel. Only a
//! `QB x KB` score tile exists at any time. Causal tasks stop at the last key
//! their queries can see. Grouped-query heads read KV head
//! `h / (hq / hkv)`. A query that sees no key gets a zero output row.

use super::gemm::{gemm_serial, Strided};
use super::read::{elem_f32, read_f32};
use super::vecmath;
use super::{cpu, CpuStorage};
use crate::backend::{AttentionParams, View};
use rayon::prelude::*;

/// Queries per task.
const QB: usize = 64;
/// Keys per score tile.
const KB: usize = 256;

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
    if dv == 0 || tq == 0 {
        return CpuStorage::from_f32(q.dtype(), out);
    }
    let qblocks = tq.div_ceil(QB);
    // One output chunk per (batch, head); tasks within a head take query blocks.
    let tasks: Vec<(usize, &mut [f32])> =
        out.chunks_mut(tq * dv).enumerate().flat_map(|(bh, o)| o.chunks_mut(QB * dv).map(move |c| (bh, c))).collect();
    tasks.into_par_iter().enumerate().for_each(|(t, (bh, o))| {
        let (bi, h) = (bh / hq, bh % hq);
        let i0 = (t % qblocks) * QB;
        let rows = o.len() / dv;
        let kvh = bi * hkv + h / group;
        let qblk = Strided { data: &qs[..], off: (bh * tq + i0) * d, rs: d, cs: 1 };
        // Keys visible to the last query of the block.
        let visible = if p.causal { (i0 as isize + rows as isize + shift).clamp(0, tk as isize) as usize } else { tk };
        let mut m = vec![f32::NEG_INFINITY; rows];
        let mut l = vec![0.0f32; rows];
        let mut s = vec![0.0f32; rows * KB];
        for j0 in (0..visible).step_by(KB) {
            let kb = KB.min(visible - j0);
            // S = Q K^T for this tile (K^T read through strides).
            let kt = Strided { data: &ks[..], off: (kvh * tk + j0) * d, rs: 1, cs: d };
            gemm_serial(rows, kb, d, qblk, kt, &mut s, kb, false);
            for r in 0..rows {
                let i = i0 + r;
                let srow = &mut s[r * kb..(r + 1) * kb];
                srow.iter_mut().for_each(|x| *x *= scale);
                if let Some(mv) = &mask {
                    let (l, st) = (mv.layout, mv.layout.strides());
                    let base = l.offset() + bi * st[0] + h * st[1] + i * st[2];
                    let buf = cpu(mv).buf();
                    for (j, x) in srow.iter_mut().enumerate() {
                        *x += elem_f32(mv.dtype(), buf, base + (j0 + j) * st[3]);
                    }
                }
                if p.causal {
                    let last = i as isize + shift; // last visible key
                    for (j, x) in srow.iter_mut().enumerate() {
                        if (j0 + j) as isize > last {
                            *x = f32::NEG_INFINITY;
                        }
                    }
                }
                let m_new = m[r].max(vecmath::max(srow));
                if m_new == f32::NEG_INFINITY {
                    srow.fill(0.0); // nothing visible yet for this row
                    continue;
                }
                let row_sum = vecmath::exp_shifted_sum(srow, m_new);
                let alpha = vecmath::exp(m[r] - m_new);
                l[r] = l[r] * alpha + row_sum;
                m[r] = m_new;
                if alpha != 1.0 {
                    o[r * dv..(r + 1) * dv].iter_mut().for_each(|x| *x *= alpha);
                }
            }
            // O += P V for this tile.
            let pt = Strided { data: &s[..], off: 0, rs: kb, cs: 1 };
            let vt = Strided { data: &vs[..], off: (kvh * tk + j0) * dv, rs: dv, cs: 1 };
            gemm_serial(rows, dv, kb, pt, vt, o, dv, true);
        }
        for r in 0..rows {
            let inv = if l[r] > 0.0 { 1.0 / l[r] } else { 0.0 };
            o[r * dv..(r + 1) * dv].iter_mut().for_each(|x| *x *= inv);
        }
    });
    CpuStorage::from_f32(q.dtype(), out)
}

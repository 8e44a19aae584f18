//! Scaled dot-product attention, tiled over keys with an online softmax
//! (the flash-attention forward algorithm on the CPU).
//!
//! K^T and V of every KV head are packed once into the GEMM micro-kernel's
//! panel layout (in parallel), so query blocks share them. Work is then
//! split into tasks of (batch, head, block of `QB` queries); a task packs its
//! queries once and walks the keys in tiles of `KB`: scores `S = Q K^T` by the
//! micro-kernel, scale, additive mask (read through its broadcast strides,
//! never materialised) and causal limit applied, then per row the running max
//! `m`, the running sum `l` and the output rows are rescaled by
//! `exp(m_old - m_new)`, and `P V` is added by the micro-kernel. Only a
//! `QB x KB` score tile exists at any time. Causal tasks stop at the last key
//! their queries can see. Grouped-query heads read KV head `h / (hq / hkv)`.
//! A query that sees no key gets a zero output row.

use super::gemm::{gemm_packed, pack_a_block, pack_b_block, panel_width, Strided};
use super::read::{elem_f32, read_f32};
use super::vecmath;
use super::{cpu, CpuStorage};
use crate::backend::{AttentionParams, View};
use rayon::prelude::*;

/// Queries per task.
const QB: usize = 64;
/// Keys per score tile (a multiple of every panel width).
const KB: usize = 256;

/// K^T and V of one KV head in panel layout.
struct PackedHead {
    /// K^T (`d x tk`), all keys: tile `j0` starts at panel `j0 / nr`.
    kt: Vec<f32>,
    /// V (`kb x dv`) per key tile.
    v: Vec<Vec<f32>>,
}

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
    let nr = panel_width();
    let heads: Vec<PackedHead> = (0..b * hkv)
        .into_par_iter()
        .map(|kvh| {
            let mut kt = Vec::new();
            pack_b_block(&Strided { data: &ks[..], off: kvh * tk * d, rs: 1, cs: d }, tk, 0, d, &mut kt);
            let v = (0..tk)
                .step_by(KB)
                .map(|j0| {
                    let mut vp = Vec::new();
                    pack_b_block(&Strided { data: &vs[..], off: kvh * tk * dv, rs: dv, cs: 1 }, dv, j0, KB.min(tk - j0), &mut vp);
                    vp
                })
                .collect();
            PackedHead { kt, v }
        })
        .collect();
    let qblocks = tq.div_ceil(QB);
    // One output chunk per (batch, head); tasks within a head take query blocks.
    let tasks: Vec<(usize, &mut [f32])> =
        out.chunks_mut(tq * dv).enumerate().flat_map(|(bh, o)| o.chunks_mut(QB * dv).map(move |c| (bh, c))).collect();
    tasks.into_par_iter().enumerate().for_each(|(t, (bh, o))| {
        let (bi, h) = (bh / hq, bh % hq);
        let i0 = (t % qblocks) * QB;
        let rows = o.len() / dv;
        let head = &heads[bi * hkv + h / group];
        let mut pq = Vec::new();
        pack_a_block(&Strided { data: &qs[..], off: (bh * tq + i0) * d, rs: d, cs: 1 }, rows, 0, d, &mut pq);
        // Scale the queries once instead of every score.
        pq.iter_mut().for_each(|x| *x *= scale);
        // Keys visible to the last query of the block.
        let visible = if p.causal { (i0 as isize + rows as isize + shift).clamp(0, tk as isize) as usize } else { tk };
        let mut m = vec![f32::NEG_INFINITY; rows];
        let mut l = vec![0.0f32; rows];
        let mut s = vec![0.0f32; rows * KB];
        let mut pp = Vec::new();
        for (tile, j0) in (0..visible).step_by(KB).enumerate() {
            // Score the whole key tile (keys past `visible` are masked below).
            let kb = KB.min(tk - j0);
            gemm_packed(rows, kb, d, &pq, &head.kt[(j0 / nr) * nr * d..], &mut s, kb, false);
            for r in 0..rows {
                let i = i0 + r;
                let srow = &mut s[r * kb..(r + 1) * kb];
                if let Some(mv) = &mask {
                    let (l, st) = (mv.layout, mv.layout.strides());
                    let base = l.offset() + bi * st[0] + h * st[1] + i * st[2];
                    let buf = cpu(mv).buf();
                    for (j, x) in srow.iter_mut().enumerate() {
                        *x += elem_f32(mv.dtype(), buf, base + (j0 + j) * st[3]);
                    }
                }
                if p.causal {
                    // Keys after this query's last visible one.
                    let first_hidden = (i as isize + shift + 1 - j0 as isize).clamp(0, kb as isize) as usize;
                    srow[first_hidden..].fill(f32::NEG_INFINITY);
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
            pack_a_block(&Strided { data: &s[..], off: 0, rs: kb, cs: 1 }, rows, 0, kb, &mut pp);
            gemm_packed(rows, dv, kb, &pp, &head.v[tile], o, dv, true);
        }
        for r in 0..rows {
            let inv = if l[r] > 0.0 { 1.0 / l[r] } else { 0.0 };
            o[r * dv..(r + 1) * dv].iter_mut().for_each(|x| *x *= inv);
        }
    });
    CpuStorage::from_f32(q.dtype(), out)
}

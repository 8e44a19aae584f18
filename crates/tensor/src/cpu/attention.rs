//! Scaled dot-product attention, tiled over keys with an online softmax
//! (the flash-attention forward algorithm on the CPU), computed transposed so
//! that nothing is repacked between the two products.
//!
//! Per KV head, K (keys as rows) and V^T are packed once per key tile of `KB`
//! into the GEMM micro-kernel's A-panel layout. A task takes (batch, head,
//! block of `QB` queries) and packs its queries, pre-scaled, as B panels of
//! `nr` queries (Q^T). For each key tile:
//!
//! - `S^T = K Q^T` by the micro-kernel, one query panel at a time with row
//!   stride `nr`, so S^T lands directly in B-panel layout (`kb x nr` per
//!   panel);
//! - the additive mask (read through its broadcast strides, never
//!   materialised) and the causal limit are applied, then the online softmax
//!   runs down the key rows with the `nr` queries of a panel in SIMD lanes:
//!   running max `m`, running sum `l`, `P = exp(S - m)` in place, and the
//!   output columns rescaled by `exp(m_old - m_new)`;
//! - `O^T += V^T P^T` by the micro-kernel, reading P^T where S^T was written.
//!
//! At the end O^T is divided by `l` and transposed into the output. Only a
//! `KB x QB` score tile exists per task. Causal tasks stop at the last key
//! their queries can see. Grouped-query heads read KV head `h / (hq / hkv)`.
//! A query that sees no key gets a zero output row.
//!
//! With few queries per KV head (decoding: one new token, the query heads of
//! one group), packing K and V would copy the whole cache to use it once, so
//! [`few_queries`] reads K's and V's rows where they lie (a KV cache's
//! narrowed buffer, f32 or half precision): the scores are dot products of
//! each query with four key rows at a time, the softmax runs over a query's
//! score row, and the output accumulates the weighted V rows, each K and V
//! row read once for all the queries of its head.

use super::gemm::{gemm_packed, pack_a_block, pack_b_block, panel_width, DotElem, Strided};
use super::read::{elem_f32, read_f32};
use super::vecmath;
use super::{cpu, BufElem, CpuStorage};
use crate::backend::{AttentionParams, View};
use crate::DType;
use rayon::prelude::*;

/// Queries per task (a multiple of every panel width).
const QB: usize = 64;
/// Keys per score tile.
const KB: usize = 256;
/// Most queries per KV head (query heads of a group times query positions)
/// that take the [`few_queries`] path.
const FEW_QUERIES: usize = 8;

/// K and V^T of one KV head, per key tile, in A-panel layout.
struct PackedHead {
    k: Vec<Vec<f32>>,
    vt: Vec<Vec<f32>>,
}

pub fn attention(q: View, k: View, v: View, mask: Option<View>, p: &AttentionParams) -> CpuStorage {
    let per_kv_head = q.layout.shape()[1] / k.layout.shape()[1].max(1) * q.layout.shape()[2];
    if per_kv_head <= FEW_QUERIES {
        if let Some(out) = few_queries(q, k, v, mask, p) {
            return out;
        }
    }
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
            let (mut kp, mut vp) = (Vec::new(), Vec::new());
            for j0 in (0..tk).step_by(KB) {
                let kb = KB.min(tk - j0);
                let (mut kt, mut vt) = (Vec::new(), Vec::new());
                pack_a_block(&Strided { data: &ks[..], off: (kvh * tk + j0) * d, rs: d, cs: 1 }, kb, 0, d, &mut kt);
                pack_a_block(&Strided { data: &vs[..], off: (kvh * tk + j0) * dv, rs: 1, cs: dv }, dv, 0, kb, &mut vt);
                kp.push(kt);
                vp.push(vt);
            }
            PackedHead { k: kp, vt: vp }
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
        let panels = rows.div_ceil(nr);
        let width = panels * nr; // queries incl. zero padding
        let head = &heads[bi * hkv + h / group];
        // Q^T as B panels, scaled once.
        let mut qt = Vec::new();
        pack_b_block(&Strided { data: &qs[..], off: (bh * tq + i0) * d, rs: 1, cs: d }, rows, 0, d, &mut qt);
        qt.iter_mut().for_each(|x| *x *= scale);
        // Keys visible to the last query of the block.
        let visible = if p.causal { (i0 as isize + rows as isize + shift).clamp(0, tk as isize) as usize } else { tk };
        let mut m = vec![f32::NEG_INFINITY; width];
        let mut l = vec![0.0f32; width];
        let mut ot = vec![0.0f32; dv * width]; // O^T, row stride `width`
        let mut st = vec![0.0f32; KB.min(tk) * width]; // S^T / P^T in B-panel layout
        let mut alpha = vec![0.0f32; nr]; // rescale factors of a panel's lanes
        for (tile, j0) in (0..visible).step_by(KB).enumerate() {
            let kb = KB.min(tk - j0);
            let st = &mut st[..kb * width];
            for (jp, panel) in st.chunks_mut(kb * nr).enumerate() {
                gemm_packed(kb, nr, d, &head.k[tile], &qt[jp * nr * d..], panel, nr, false);
                let q0 = i0 + jp * nr; // first query of the panel
                if let Some(mv) = &mask {
                    let (lay, s) = (mv.layout, mv.layout.strides());
                    let buf = cpu(mv).buf();
                    for (i, row) in panel.chunks_mut(nr).enumerate() {
                        for (c, x) in row.iter_mut().enumerate().take(rows.saturating_sub(jp * nr)) {
                            let idx = lay.offset() + bi * s[0] + h * s[1] + (q0 + c) * s[2] + (j0 + i) * s[3];
                            *x += elem_f32(mv.dtype(), buf, idx);
                        }
                    }
                }
                if p.causal {
                    for (i, row) in panel.chunks_mut(nr).enumerate() {
                        // Query q0 + c sees key j0 + i when j0 + i <= q0 + c + shift.
                        let first_visible = (j0 as isize + i as isize - shift - q0 as isize).clamp(0, nr as isize) as usize;
                        row[..first_visible].fill(f32::NEG_INFINITY);
                    }
                }
                // Online softmax down the key rows, queries in lanes.
                let lanes = jp * nr..(jp + 1) * nr;
                vecmath::online_softmax_step(panel, &mut m[lanes.clone()], &mut l[lanes], &mut alpha);
                for orow in ot.chunks_mut(width) {
                    for (o, &a) in orow[jp * nr..(jp + 1) * nr].iter_mut().zip(&alpha) {
                        *o *= a;
                    }
                }
            }
            // O^T += V^T P^T.
            gemm_packed(dv, width, kb, &head.vt[tile], st, &mut ot, width, true);
        }
        for (r, orow) in o.chunks_mut(dv).enumerate() {
            let inv = if l[r] > 0.0 { 1.0 / l[r] } else { 0.0 };
            for (c, x) in orow.iter_mut().enumerate() {
                *x = ot[c * width + r] * inv;
            }
        }
    });
    CpuStorage::from_f32(q.dtype(), out)
}

/// Attention for few queries per KV head, reading K and V in place (see the
/// module docs); `None` when their dtype or layout needs the tiled path
/// (dtypes other than f32/bf16/f16, feature dims that are not unit-stride).
fn few_queries(q: View, k: View, v: View, mask: Option<View>, p: &AttentionParams) -> Option<CpuStorage> {
    let unit_rows = |x: &View| x.layout.shape()[3] <= 1 || x.layout.strides()[3] == 1;
    if k.dtype() != v.dtype() || !unit_rows(&k) || !unit_rows(&v) {
        return None;
    }
    match k.dtype() {
        DType::F32 => Some(few_queries_of::<f32>(q, k, v, mask, p)),
        DType::BF16 => Some(few_queries_of::<half::bf16>(q, k, v, mask, p)),
        DType::F16 => Some(few_queries_of::<half::f16>(q, k, v, mask, p)),
        _ => None,
    }
}

fn few_queries_of<T: DotElem + BufElem>(q: View, k: View, v: View, mask: Option<View>, p: &AttentionParams) -> CpuStorage {
    let qs = read_f32(q);
    let (b, hq, tq, d) = {
        let s = q.layout.shape();
        (s[0], s[1], s[2], s[3])
    };
    let (hkv, tk, dv) = (k.layout.shape()[1], k.layout.shape()[2], v.layout.shape()[3]);
    let group = hq / hkv;
    let nq = group * tq;
    let shift = tk as isize - tq as isize;
    // Keys query position `i` sees.
    let visible = |i: usize| if p.causal { (i as isize + shift + 1).clamp(0, tk as isize) as usize } else { tk };
    let (kd, vd) = (T::slice(cpu(&k).buf()), T::slice(cpu(&v).buf()));
    let (ks, vs) = (k.layout.strides(), v.layout.strides());
    let mut out = vec![0.0f32; b * hq * tq * dv];
    if dv == 0 || nq == 0 {
        return CpuStorage::from_f32(q.dtype(), out);
    }
    // The query heads of KV head `h` are heads `h * group..`, so one task's
    // output rows (row r: head h * group + r / tq, position r % tq) are
    // contiguous.
    out.par_chunks_mut(nq * dv).enumerate().for_each(|(task, o)| {
        let (bi, kvh) = (task / hkv, task % hkv);
        let first_row = (bi * hq + kvh * group) * tq;
        let queries: Vec<Vec<f32>> = (0..nq)
            .map(|r| {
                let scaled: Vec<f32> = qs[(first_row + r) * d..][..d].iter().map(|&x| x * p.scale as f32).collect();
                T::prepare(&scaled).into_owned()
            })
            .collect();
        let seen = visible(tq - 1);
        let krow = |j: usize| &kd[k.layout.offset() + bi * ks[0] + kvh * ks[1] + j * ks[2]..][..d];
        let vrow = |j: usize| &vd[v.layout.offset() + bi * vs[0] + kvh * vs[1] + j * vs[2]..][..dv];
        // Scores, one row of `seen` per query.
        let mut scores = vec![0.0f32; nq * seen];
        let mut j = 0;
        while j + 4 <= seen {
            let rows = [krow(j), krow(j + 1), krow(j + 2), krow(j + 3)];
            for (r, qv) in queries.iter().enumerate() {
                scores[r * seen + j..][..4].copy_from_slice(&T::dot4(qv, rows));
            }
            j += 4;
        }
        for j in j..seen {
            for (r, qv) in queries.iter().enumerate() {
                scores[r * seen + j] = T::dot(qv, krow(j));
            }
        }
        // Mask, causal limit and softmax per query; `weight[r]` is 1/sum,
        // 0 for a query that sees nothing.
        let mut weight = vec![0.0f32; nq];
        for (r, row) in scores.chunks_mut(seen).enumerate() {
            let (h, i) = (kvh * group + r / tq, r % tq);
            let row = &mut row[..visible(i)];
            if let Some(mv) = &mask {
                let (lay, s) = (mv.layout, mv.layout.strides());
                let buf = cpu(mv).buf();
                let base = lay.offset() + bi * s[0] + h * s[1] + i * s[2];
                for (j, x) in row.iter_mut().enumerate() {
                    *x += elem_f32(mv.dtype(), buf, base + j * s[3]);
                }
            }
            let m = vecmath::max(row);
            if m == f32::NEG_INFINITY {
                row.fill(0.0);
                continue;
            }
            let sum = vecmath::exp_shifted_sum(row, m);
            weight[r] = 1.0 / sum;
        }
        // O = P V, each V row read once for every query.
        for j in 0..seen {
            let vj = vrow(j);
            for (r, orow) in o.chunks_mut(dv).enumerate() {
                if j >= visible(r % tq) {
                    continue;
                }
                let pj = scores[r * seen + j] * weight[r];
                for (x, &y) in orow.iter_mut().zip(vj) {
                    *x += pj * y.to_f32();
                }
            }
        }
    });
    CpuStorage::from_f32(q.dtype(), out)
}

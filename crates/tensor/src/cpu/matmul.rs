//! Batched matmul: per batch, the few-row GEMV path or the packed GEMM of
//! [`super::gemm`], reading f32/f16/bf16 operands in place through their
//! strides (transposed views are free) and rounding the f32 result once.
//! An unbatched right operand read again the same way (a weight) is packed
//! once and kept with its storage ([`super::pack_cache`]). A layer's bias
//! seeds the output rows and the products accumulate onto it, so the output
//! is written once.

use super::gemm::{gemm, gemm_prepacked, gemv, DotElem, GemmElem, PackedB, Strided};
use super::read::read_f32;
use super::{cpu, Buf, CpuStorage};
use crate::backend::{UnaryOp, View};
use crate::Layout;
use rayon::prelude::*;

/// Up to this many rows, a product streams B once instead of packing it
/// (8 was measured slower on Janus-Pro's 8-row generation steps than the
/// packed GEMM: docs/benchmarks.md).
const GEMV_MAX_ROWS: usize = 2;

/// Shape of one batched product: `[batch..., m, k] x [batch..., k, n]`.
struct Problem {
    m: usize,
    k: usize,
    n: usize,
    a_offs: Vec<usize>,
    b_offs: Vec<usize>,
    a_strides: (usize, usize),
    b_strides: (usize, usize),
}

impl Problem {
    fn new(al: &Layout, bl: &Layout) -> Problem {
        let rank = al.rank();
        let batch_shape = &al.shape()[..rank - 2];
        // Storage offsets of each batch's matrix, in batch order.
        let offsets = |l: &Layout| -> Vec<usize> {
            let bl = Layout::new(batch_shape.to_vec(), l.strides()[..rank - 2].to_vec(), l.offset(), usize::MAX).expect("batch layout");
            bl.offsets().collect()
        };
        Problem {
            m: al.shape()[rank - 2],
            k: al.shape()[rank - 1],
            n: bl.shape()[rank - 1],
            a_offs: offsets(al),
            b_offs: offsets(bl),
            a_strides: (al.strides()[rank - 2], al.strides()[rank - 1]),
            b_strides: (bl.strides()[rank - 2], bl.strides()[rank - 1]),
        }
    }

    /// `out = a * b`, or `out += a * b` with `accumulate`.
    fn run<TA: GemmElem, TB: DotElem>(&self, a: &[TA], b: &[TB], out: &mut [f32], accumulate: bool) {
        let (m, n, k) = (self.m, self.n, self.k);
        if out.is_empty() {
            return;
        }
        out.par_chunks_mut(m * n).enumerate().for_each(|(bi, c)| {
            let a = Strided { data: a, off: self.a_offs[bi], rs: self.a_strides.0, cs: self.a_strides.1 };
            let b = Strided { data: b, off: self.b_offs[bi], rs: self.b_strides.0, cs: self.b_strides.1 };
            if m <= GEMV_MAX_ROWS && gemv(m, n, k, a, b, c, accumulate) {
                return;
            }
            gemm(m, n, k, a, b, c, accumulate);
        });
    }
}

/// The packed B of an unbatched product whose B storage keeps one (or
/// packs one now); `None` for batched or few-row products and f8 storage.
fn kept_packing(p: &Problem, rhs: &View) -> Option<std::sync::Arc<PackedB>> {
    if p.b_offs.len() != 1 || p.m <= GEMV_MAX_ROWS {
        return None;
    }
    let (k, n, off, (rs, cs)) = (p.k, p.n, p.b_offs[0], p.b_strides);
    let storage = cpu(rhs);
    let pack = |b: &dyn Fn() -> PackedB| storage.packs.get((off, rs, cs, k, n), b);
    match storage.buf() {
        Buf::F32(b) => pack(&|| PackedB::new(k, n, &Strided { data: b, off, rs, cs })),
        Buf::BF16(b) => pack(&|| PackedB::new(k, n, &Strided { data: b, off, rs, cs })),
        Buf::F16(b) => pack(&|| PackedB::new(k, n, &Strided { data: b, off, rs, cs })),
        _ => None,
    }
}

pub fn matmul(lhs: View, rhs: View) -> CpuStorage {
    product(lhs, rhs, None, None)
}

/// `act(lhs * rhs + bias)`, `bias` `[n]` added to every output row, the
/// activation applied to the f32 accumulators before they are rounded.
pub fn matmul_bias(lhs: View, rhs: View, bias: View, act: Option<UnaryOp>) -> CpuStorage {
    product(lhs, rhs, Some(&read_f32(bias)), act)
}

fn product(lhs: View, rhs: View, bias: Option<&[f32]>, act: Option<UnaryOp>) -> CpuStorage {
    let p = Problem::new(lhs.layout, rhs.layout);
    let rows = p.a_offs.len() * p.m;
    let mut out = match bias {
        Some(b) => b.repeat(rows),
        None => vec![0.0f32; rows * p.n],
    };
    let acc = bias.is_some();
    let prepacked = kept_packing(&p, &rhs).is_some_and(|packed| {
        let (off, (rs, cs)) = (p.a_offs[0], p.a_strides);
        match cpu(&lhs).buf() {
            Buf::F32(a) => gemm_prepacked(p.m, Strided { data: a, off, rs, cs }, &packed, &mut out, acc),
            Buf::BF16(a) => gemm_prepacked(p.m, Strided { data: a, off, rs, cs }, &packed, &mut out, acc),
            Buf::F16(a) => gemm_prepacked(p.m, Strided { data: a, off, rs, cs }, &packed, &mut out, acc),
            _ => return false,
        }
        true
    });
    if !prepacked {
        match (cpu(&lhs).buf(), cpu(&rhs).buf()) {
            (Buf::F32(a), Buf::F32(b)) => p.run(a, b, &mut out, acc),
            (Buf::BF16(a), Buf::BF16(b)) => p.run(a, b, &mut out, acc),
            (Buf::F16(a), Buf::F16(b)) => p.run(a, b, &mut out, acc),
            _ => {
                // Other float storage: widen both to contiguous f32 first.
                let (a, b) = (read_f32(lhs), read_f32(rhs));
                let q = Problem::new(&Layout::contiguous(lhs.layout.shape()), &Layout::contiguous(rhs.layout.shape()));
                q.run(&a, &b, &mut out, acc)
            }
        }
    }
    if let Some(act) = act {
        super::fused::activate_in_place(&mut out, act);
    }
    CpuStorage::from_f32(lhs.dtype(), out)
}

//! Host side of kernels/attention.cu: the flash-attention forward for
//! f16/bf16 with head dims up to 256 (padded to a multiple of 16). f32
//! inputs and wider heads use the core's composition (matmul + softmax on
//! this device).

use super::index::pack_pad;
use super::{view_ptr, Ctx};
use crate::compile::{Defines, ATTENTION};
use crate::device::{Args, Grid};
use crate::memory::CudaStorage;
use tessera_tensor::{AttentionParams, DType, Result, View};

/// Widest head the kernel takes.
pub const MAX_HEAD_DIM: usize = 256;

/// Head dims the attention kernel is compiled for: multiples of 16 up to 256.
pub fn compiled_variants() -> Vec<Defines> {
    (16..=MAX_HEAD_DIM).step_by(16).map(head_dim_define).collect()
}

fn head_dim_define(d: usize) -> Defines {
    vec![("HEAD_DIM".to_string(), d.to_string())]
}

/// A q/k/v operand as the kernel reads it: address, (batch, head, row)
/// strides, and the padded copy when one was needed.
struct Qkv {
    ptr: u64,
    strides: [i64; 3],
    _packed: Option<CudaStorage>,
}

/// In place when the rows hold exactly `dp` contiguous elements at 16-byte
/// aligned positions; otherwise copied into a zero-padded `[b, h, t, dp]`.
fn operand(cx: &Ctx, v: View, dp: usize) -> Result<Qkv> {
    let (sh, st) = (v.layout.shape(), v.layout.strides());
    let aligned = v.layout.offset().is_multiple_of(8) && st[..3].iter().zip(&sh[..3]).all(|(&s, &d)| d == 1 || s % 8 == 0);
    if aligned && sh[3] == dp && st[3] == 1 {
        return Ok(Qkv { ptr: view_ptr(&v)?, strides: [st[0] as i64, st[1] as i64, st[2] as i64], _packed: None });
    }
    let packed = pack_pad(cx, v, dp)?;
    let (h, t) = (sh[1], sh[2]);
    Ok(Qkv { ptr: packed.ptr(), strides: [(h * t * dp) as i64, (t * dp) as i64, dp as i64], _packed: Some(packed) })
}

pub fn attention(cx: &Ctx, q: View, k: View, v: View, mask: Option<View>, p: &AttentionParams) -> Result<Option<CudaStorage>> {
    let dt = q.dtype();
    let (b, hq, tq, d) = (q.shape()[0], q.shape()[1], q.shape()[2], q.shape()[3]);
    let (hkv, tk, dv) = (k.shape()[1], k.shape()[2], v.shape()[3]);
    let dp = d.max(dv).max(1).div_ceil(16) * 16;
    if !matches!(dt, DType::F16 | DType::BF16) || dp > MAX_HEAD_DIM || b > 65535 || hq > 65535 || tq.max(tk) > i32::MAX as usize {
        return Ok(None);
    }
    let out = CudaStorage::alloc(cx.dev, dt, b * hq * tq * dv)?;
    if b * hq * tq * dv == 0 {
        return Ok(Some(out));
    }
    let (qo, ko, vo) = (operand(cx, q, dp)?, operand(cx, k, dp)?, operand(cx, v, dp)?);
    let (mp, ms) = match &mask {
        Some(m) => {
            let s = m.layout.strides();
            (view_ptr(m)?, [s[0] as i64, s[1] as i64, s[2] as i64, s[3] as i64])
        }
        None => (0, [0; 4]),
    };
    let f = cx.dev.function(&ATTENTION, &head_dim_define(dp), &format!("attention_fwd_{}", dt))?;
    let mut a = Args::new();
    a.ptr(out.ptr()).ptr(qo.ptr).ptr(ko.ptr).ptr(vo.ptr).ptr(mp);
    for x in [hq, hkv, tq, tk, dv] {
        a.push(x as i32);
    }
    for s in qo.strides.iter().chain(&ko.strides).chain(&vo.strides).chain(&ms) {
        a.push(*s);
    }
    a.push((p.scale * std::f64::consts::LOG2_E) as f32).push(p.causal as i32);
    let smem = 3 * 64 * (dp + 8) * dt.size_in_bytes();
    cx.dev.launch(f, Grid::new((tq.div_ceil(64) as u32, hq as u32, b as u32), 128, smem as u32), &mut a)?;
    Ok(Some(out))
}

//! Every fused op written as a composition of primitive ops.
//!
//! These are the references the fused kernels are tested against, and the
//! fallback a backend gets for a fused op it does not implement. Half-precision
//! inputs are computed in f32 and rounded once at the end, as fused kernels do.

use crate::backend::{AttentionParams, Conv2dParams, NormKind, RopeStyle, UnaryOp};
use crate::{DType, Result, Tensor};

/// The dtype intermediate results are kept in.
fn compute_dtype(dtype: DType) -> DType {
    match dtype {
        DType::F16 | DType::BF16 => DType::F32,
        d => d,
    }
}

fn upcast(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(compute_dtype(t.dtype()))
}

fn upcast_opt(t: Option<&Tensor>) -> Result<Option<Tensor>> {
    t.map(upcast).transpose()
}

pub fn softmax_last(x: &Tensor, log: bool) -> Result<Tensor> {
    if x.numel() == 0 {
        return x.copy();
    }
    let xf = upcast(x)?;
    let shifted = xf.sub(&xf.max(&[-1], true)?)?;
    let e = shifted.exp()?;
    let s = e.sum(&[-1], true)?;
    let out = if log { shifted.sub(&s.log()?)? } else { e.div(&s)? };
    out.to_dtype(x.dtype())
}

fn scale_shift(y: Tensor, w: Option<Tensor>, b: Option<Tensor>) -> Result<Tensor> {
    let y = match w {
        Some(w) => y.mul(&w)?,
        None => y,
    };
    match b {
        Some(b) => y.add(&b),
        None => Ok(y),
    }
}

pub fn layer_norm(x: &Tensor, w: Option<&Tensor>, b: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    if x.numel() == 0 {
        return x.copy();
    }
    let xf = upcast(x)?;
    let centred = xf.sub(&xf.mean(&[-1], true)?)?;
    let var = centred.square()?.mean(&[-1], true)?;
    let y = centred.mul(&var.add_scalar(eps)?.rsqrt()?)?;
    scale_shift(y, upcast_opt(w)?, upcast_opt(b)?)?.to_dtype(x.dtype())
}

pub fn rms_norm(x: &Tensor, w: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    if x.numel() == 0 {
        return x.copy();
    }
    let xf = upcast(x)?;
    let ms = xf.square()?.mean(&[-1], true)?;
    let y = xf.mul(&ms.add_scalar(eps)?.rsqrt()?)?;
    scale_shift(y, upcast_opt(w)?, None)?.to_dtype(x.dtype())
}

pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, style: RopeStyle) -> Result<Tensor> {
    let (xf, cos, sin) = (upcast(x)?, upcast(cos)?, upcast(sin)?);
    let d = x.dims()[x.rank() - 1];
    let half = cos.dims()[1];
    if half == 0 {
        return x.copy(); // nothing rotates
    }
    let rot = xf.narrow(-1, 0, 2 * half)?;
    let rotated = match style {
        RopeStyle::HalfSplit => {
            let (x1, x2) = (rot.narrow(-1, 0, half)?, rot.narrow(-1, half, half)?);
            let o1 = x1.mul(&cos)?.sub(&x2.mul(&sin)?)?;
            let o2 = x2.mul(&cos)?.add(&x1.mul(&sin)?)?;
            Tensor::cat(&[&o1, &o2], -1)?
        }
        RopeStyle::Interleaved => {
            let (x1, x2) = (rot.slice(-1, 0, 2 * half, 2)?, rot.slice(-1, 1, 2 * half, 2)?);
            let o1 = x1.mul(&cos)?.sub(&x2.mul(&sin)?)?;
            let o2 = x2.mul(&cos)?.add(&x1.mul(&sin)?)?;
            let pairs = Tensor::stack(&[&o1, &o2], -1)?;
            pairs.flatten(-2, -1)?
        }
    };
    let out = if 2 * half < d { Tensor::cat(&[&rotated, &xf.narrow(-1, 2 * half, d - 2 * half)?], -1)? } else { rotated };
    out.to_dtype(x.dtype())
}

/// The product in the operands' own dtype (every backend multiplies
/// f16/bf16 with f32 accumulators, so no weight is converted), then the
/// bias added and the activation applied in the compute dtype.
pub fn matmul_bias(a: &Tensor, b: &Tensor, bias: &Tensor, act: Option<UnaryOp>) -> Result<Tensor> {
    let y = upcast(&a.matmul(b)?)?.add(&upcast(bias)?)?;
    let y = match act {
        Some(op) => y.unary(op)?,
        None => y,
    };
    y.to_dtype(a.dtype())
}

/// `x + residual` rounded to the dtype, then the norm of the sum.
pub fn add_norm(
    x: &Tensor,
    residual: &Tensor,
    w: Option<&Tensor>,
    b: Option<&Tensor>,
    eps: f64,
    kind: NormKind,
) -> Result<(Tensor, Tensor)> {
    let h = x.add(residual)?;
    let y = match kind {
        NormKind::Layer => h.layer_norm(w, b, eps)?,
        NormKind::Rms => h.rms_norm(w, eps)?,
    };
    Ok((y, h))
}

/// im2col by strided views (one per kernel tap), then a grouped matmul in
/// the operands' own dtype (the weight is never converted), the bias added
/// in the compute dtype.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, p: &Conv2dParams) -> Result<Tensor> {
    let (n, h, wd) = (x.dims()[0], x.dims()[2], x.dims()[3]);
    let (o, cg, kh, kw) = (w.dims()[0], w.dims()[1], w.dims()[2], w.dims()[3]);
    let (oh, ow) = p.output_size((h, wd), (kh, kw)).expect("conv2d geometry is checked before dispatch");
    let g = p.groups;
    let padded = pad2d(x, p.padding)?;
    let mut taps = Vec::with_capacity(kh * kw);
    for i in 0..kh {
        for j in 0..kw {
            let (r0, c0) = (i * p.dilation.0, j * p.dilation.1);
            let rows = padded.slice(2, r0, r0 + (oh.max(1) - 1) * p.stride.0 + 1, p.stride.0)?.narrow(2, 0, oh)?;
            taps.push(rows.slice(3, c0, c0 + (ow.max(1) - 1) * p.stride.1 + 1, p.stride.1)?.narrow(3, 0, ow)?);
        }
    }
    let cols = Tensor::stack(&taps.iter().collect::<Vec<_>>(), 2)?; // [n, c, kh*kw, oh, ow]
    let cols = cols.reshape(vec![n, g, cg * kh * kw, oh * ow])?;
    let wm = w.reshape(vec![g, o / g, cg * kh * kw])?;
    let out = wm.unsqueeze(0)?.matmul(&cols)?.reshape(vec![n, o, oh, ow])?;
    match bias {
        Some(b) => upcast(&out)?.add(&upcast(b)?.reshape(vec![1, o, 1, 1])?)?.to_dtype(x.dtype()),
        None => Ok(out),
    }
}

/// Zero padding of the last two dims.
fn pad2d(x: &Tensor, (ph, pw): (usize, usize)) -> Result<Tensor> {
    let mut t = x.clone();
    if ph > 0 {
        let mut s = t.dims().to_vec();
        s[2] = ph;
        let z = Tensor::zeros(s, t.dtype(), t.device())?;
        t = Tensor::cat(&[&z, &t, &z], 2)?;
    }
    if pw > 0 {
        let mut s = t.dims().to_vec();
        s[3] = pw;
        let z = Tensor::zeros(s, t.dtype(), t.device())?;
        t = Tensor::cat(&[&z, &t, &z], 3)?;
    }
    Ok(t)
}

pub fn group_norm(x: &Tensor, groups: usize, w: Option<&Tensor>, b: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    if x.numel() == 0 {
        return x.copy();
    }
    let xf = upcast(x)?;
    let (n, c) = (x.dims()[0], x.dims()[1]);
    let grouped = xf.reshape(vec![n, groups, x.numel() / (n * groups)])?;
    let normed = layer_norm(&grouped, None, None, eps)?.reshape(x.dims())?;
    let mut pshape = vec![1; x.rank()];
    pshape[1] = c;
    let w = upcast_opt(w)?.map(|w| w.reshape(pshape.clone())).transpose()?;
    let b = upcast_opt(b)?.map(|b| b.reshape(pshape.clone())).transpose()?;
    scale_shift(normed, w, b)?.to_dtype(x.dtype())
}

/// Source index `floor(dst * in / out)` along each spatial dim.
pub fn upsample_nearest2d(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let (h, w) = (x.dims()[2], x.dims()[3]);
    let idx = |out: usize, inp: usize| -> Result<Tensor> {
        let v: Vec<i64> = (0..out).map(|i| ((i * inp) / out) as i64).collect();
        Tensor::from_slice(&v, out, x.device())
    };
    if (h == 0 || w == 0) && out_h * out_w > 0 {
        return Err(crate::Error::invalid("upsample_nearest2d", format!("cannot resize an empty image {:?}", x.dims())));
    }
    x.index_select(&idx(out_h, h)?, 2)?.index_select(&idx(out_w, w)?, 3)
}

/// `softmax(q k^T * scale + mask) v`, with KV heads repeated for GQA.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>, p: &AttentionParams) -> Result<Tensor> {
    let (qf, kf, vf) = (upcast(q)?, upcast(k)?, upcast(v)?);
    let (b, hq, tq) = (q.dims()[0], q.dims()[1], q.dims()[2]);
    let (hkv, tk) = (k.dims()[1], k.dims()[2]);
    let repeat = |t: &Tensor| -> Result<Tensor> {
        if hq == hkv {
            return Ok(t.clone());
        }
        let d = t.dims()[3];
        t.unsqueeze(2)?.expand(vec![b, hkv, hq / hkv, tk, d])?.reshape(vec![b, hq, tk, d])
    };
    let (kf, vf) = (repeat(&kf)?, repeat(&vf)?);
    let mut scores = qf.matmul(&kf.t()?)?.mul_scalar(p.scale)?;
    if let Some(m) = mask {
        scores = scores.add(&upcast(m)?)?;
    }
    if p.causal {
        let shift = tk as i64 - tq as i64;
        let m: Vec<f32> =
            (0..tq as i64).flat_map(|i| (0..tk as i64).map(move |j| if j > i + shift { f32::NEG_INFINITY } else { 0.0 })).collect();
        scores = scores.add(&Tensor::from_slice(&m, (tq, tk), q.device())?)?;
    }
    let probs = softmax_last(&scores, false)?;
    // A fully masked row softmaxes to NaN; such a query attends to nothing.
    let probs = probs.eq(&probs)?.where_cond(&probs, &probs.zeros_like()?)?;
    probs.matmul(&vf)?.to_dtype(q.dtype())
}

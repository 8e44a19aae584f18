//! A host model of conv2d on the CUDA backend, checked without a GPU: the
//! im2col kernel's index formulas (kernels/index.cu), the product the host
//! sets up over its patch matrix (crates/cuda/src/ops/conv.rs: weight
//! rows per group broadcast over images, patches read k-major, images in
//! chunks) and the epilogue's per-channel bias index (kernels/matmul.cu),
//! replayed in Rust and compared with a direct convolution. The formulas
//! mirror the sources; a change to one must be made to the other.

use tessera_cuda::ops::conv::{padded_taps, ConvGeom};
use tessera_tensor::{Conv2dParams, DType};

fn value(i: usize, salt: usize) -> f64 {
    (((i * 7919 + salt * 104_729) % 61) as f64 - 30.0) / 16.0
}

/// Direct convolution: out[n][o][oy][ox].
#[allow(clippy::too_many_arguments)]
fn direct(x: &[f64], xs: [usize; 4], w: &[f64], ws: [usize; 4], bias: &[f64], p: &Conv2dParams, oh: usize, ow: usize) -> Vec<f64> {
    let [n, c, h, wd] = xs;
    let [o, cg, kh, kw] = ws;
    let og = o / p.groups;
    let mut out = vec![0.0; n * o * oh * ow];
    for ni in 0..n {
        for oc in 0..o {
            let g = oc / og;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = bias[oc];
                    for ci in 0..cg {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * p.stride.0 + ky * p.dilation.0) as i64 - p.padding.0 as i64;
                                let ix = (ox * p.stride.1 + kx * p.dilation.1) as i64 - p.padding.1 as i64;
                                if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wd as i64 {
                                    continue;
                                }
                                let xi = ((ni * c + g * cg + ci) * h + iy as usize) * wd + ix as usize;
                                s += x[xi] * w[((oc * cg + ci) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    out[((ni * o + oc) * oh + oy) * ow + ox] = s;
                }
            }
        }
    }
    out
}

/// `im2col` of index.cu for element `e` of the chunk's patch matrix; `x`
/// starts at the chunk's first image.
fn im2col_elem(x: &[f64], x0: usize, g: &ConvGeom, e: i64) -> f64 {
    let positions = g.oh * g.ow;
    let cg = g.c / g.groups;
    let taps = g.kh * g.kw;
    let (kk, mut t) = (e % g.k_pad, e / g.k_pad);
    let p = t % positions;
    t /= positions;
    let (gi, ni) = (t % g.groups, t / g.groups);
    if kk >= g.k {
        return 0.0;
    }
    let ci = gi * cg + kk / taps;
    let tap = kk % taps;
    let iy = (p / g.ow) * g.stride_h - g.pad_h + (tap / g.kw) * g.dil_h;
    let ix = (p % g.ow) * g.stride_w - g.pad_w + (tap % g.kw) * g.dil_w;
    if iy >= 0 && iy < g.h && ix >= 0 && ix < g.w {
        x[x0 + (ni * g.sn + ci * g.sc + iy * g.sh + ix * g.sw) as usize]
    } else {
        0.0
    }
}

/// The backend's conv2d over the model: chunks of `chunk` images, the
/// product per (image, group) with the conv epilogue's bias.
#[allow(clippy::too_many_arguments)]
fn modelled(
    x: &[f64],
    xs: [usize; 4],
    w: &[f64],
    ws: [usize; 4],
    bias: &[f64],
    p: &Conv2dParams,
    (oh, ow): (usize, usize),
    dtype: DType,
    chunk: usize,
) -> Vec<f64> {
    let [n, c, h, wd] = xs;
    let [o, cg, kh, kw] = ws;
    let gcount = p.groups;
    let og = o / gcount;
    let k = cg * kh * kw;
    let k_pad = padded_taps(dtype, k);
    // The weight as [o, k_pad], zero padded (pack_pad).
    let wpad: Vec<f64> = (0..o * k_pad).map(|e| if e % k_pad < k { w[(e / k_pad) * k + e % k_pad] } else { 0.0 }).collect();
    let geom = ConvGeom::new(dtype, xs, [c * h * wd, h * wd, wd, 1], ws, p, (oh, ow));
    let positions = oh * ow;
    let mut out = vec![f64::NAN; n * o * positions];
    for img0 in (0..n).step_by(chunk) {
        let images = chunk.min(n - img0);
        let patches: Vec<f64> =
            (0..(images * gcount * positions * k_pad) as i64).map(|e| im2col_elem(x, img0 * c * h * wd, &geom, e)).collect();
        // lhs [images, g, og, k_pad] strides [0, og*k_pad, k_pad, 1];
        // rhs [images, g, k_pad, positions] strides [g*P*k_pad, P*k_pad, 1, k_pad].
        for z in 0..images * gcount {
            let (zi, zg) = (z / gcount, z % gcount);
            for m in 0..og {
                for col in 0..positions {
                    let mut acc = 0.0;
                    for kk in 0..k_pad {
                        let a = wpad[zg * og * k_pad + m * k_pad + kk];
                        let b = patches[zi * gcount * positions * k_pad + zg * positions * k_pad + kk + col * k_pad];
                        acc += a * b;
                    }
                    // Epilogue::conv: bias_group = og * stride, bias_sm = stride.
                    acc += bias[(z % gcount) * og + m];
                    // C is [batch, m, n] at the chunk's output offset.
                    out[img0 * o * positions + (z * og + m) * positions + col] = acc;
                }
            }
        }
    }
    out
}

#[test]
fn im2col_and_grouped_product_compute_the_convolution() {
    let cases = [
        ([2, 3, 7, 6], [4, 3, 3, 3], Conv2dParams::default()),
        ([2, 6, 9, 11], [12, 2, 3, 3], Conv2dParams { stride: (2, 1), padding: (1, 2), dilation: (1, 2), groups: 3 }),
        ([3, 4, 5, 5], [4, 1, 3, 3], Conv2dParams { stride: (1, 1), padding: (1, 1), dilation: (1, 1), groups: 4 }),
        ([1, 8, 6, 7], [16, 8, 1, 1], Conv2dParams::default()),
        ([2, 2, 8, 8], [6, 2, 4, 2], Conv2dParams { stride: (3, 2), padding: (2, 0), dilation: (2, 3), groups: 1 }),
    ];
    for (xs, ws, p) in cases {
        let (oh, ow) = p.output_size((xs[2], xs[3]), (ws[2], ws[3])).unwrap();
        let x: Vec<f64> = (0..xs.iter().product()).map(|i| value(i, 1)).collect();
        let w: Vec<f64> = (0..ws.iter().product()).map(|i| value(i, 2)).collect();
        let bias: Vec<f64> = (0..ws[0]).map(|i| value(i, 3)).collect();
        let want = direct(&x, xs, &w, ws, &bias, &p, oh, ow);
        for dtype in [DType::F32, DType::BF16] {
            for chunk in [1, 2, xs[0]] {
                let got = modelled(&x, xs, &w, ws, &bias, &p, (oh, ow), dtype, chunk);
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!((g - e).abs() < 1e-9, "{xs:?} {ws:?} {p:?} {dtype} chunk {chunk}: out[{i}] = {g}, want {e}");
                }
            }
        }
    }
}

#[test]
fn tensor_core_patch_rows_are_multiples_of_eight() {
    for k in [1, 7, 8, 9, 27, 64] {
        assert_eq!(padded_taps(DType::F32, k), k);
        for dt in [DType::F16, DType::BF16] {
            let kp = padded_taps(dt, k);
            assert!(kp >= k && kp.is_multiple_of(8) && kp - k < 8, "{dt} {k} -> {kp}");
        }
    }
}

//! 2-D convolution by im2col + GEMM, per image and group.
//!
//! For each image and group, the patches of the (implicitly zero-padded)
//! input are unrolled into a `(c/g * kh * kw) x (oh * ow)` matrix and
//! multiplied by the group's `(o/g) x (c/g * kh * kw)` weights.

use super::gemm::{gemm, Strided};
use super::read::read_f32;
use super::CpuStorage;
use crate::backend::{Conv2dParams, View};

pub fn conv2d(x: View, w: View, bias: Option<View>, p: &Conv2dParams) -> CpuStorage {
    let xs = read_f32(x);
    let ws = read_f32(w);
    let bs = bias.map(read_f32);
    let (n, c, h, wd) = {
        let s = x.layout.shape();
        (s[0], s[1], s[2], s[3])
    };
    let (o, cg, kh, kw) = {
        let s = w.layout.shape();
        (s[0], s[1], s[2], s[3])
    };
    let (oh, ow) = p.output_size((h, wd), (kh, kw)).expect("geometry checked by the core");
    let g = p.groups;
    let og = o / g;
    let kdim = cg * kh * kw;
    let npix = oh * ow;
    let mut out = vec![0.0f32; n * o * npix];
    let mut cols = vec![0.0f32; kdim * npix];
    for ni in 0..n {
        for gi in 0..g {
            // im2col for this image and group.
            for ci in 0..cg {
                let plane = &xs[((ni * c) + gi * cg + ci) * h * wd..][..h * wd];
                for ki in 0..kh {
                    for kj in 0..kw {
                        let row = &mut cols[((ci * kh + ki) * kw + kj) * npix..][..npix];
                        for oy in 0..oh {
                            let iy = (oy * p.stride.0 + ki * p.dilation.0) as isize - p.padding.0 as isize;
                            for ox in 0..ow {
                                let ix = (ox * p.stride.1 + kj * p.dilation.1) as isize - p.padding.1 as isize;
                                row[oy * ow + ox] = if iy >= 0 && (iy as usize) < h && ix >= 0 && (ix as usize) < wd {
                                    plane[iy as usize * wd + ix as usize]
                                } else {
                                    0.0
                                };
                            }
                        }
                    }
                }
            }
            let wm = Strided { data: &ws[..], off: gi * og * kdim, rs: kdim, cs: 1 };
            let cm = Strided { data: &cols[..], off: 0, rs: npix, cs: 1 };
            let dst = &mut out[(ni * o + gi * og) * npix..][..og * npix];
            // The bias seeds each output channel's row; the product adds on.
            if let Some(b) = &bs {
                for (oc, row) in dst.chunks_mut(npix.max(1)).enumerate() {
                    row.fill(b[gi * og + oc]);
                }
            }
            gemm(og, npix, kdim, wm, cm, dst, bs.is_some());
        }
    }
    CpuStorage::from_f32(x.dtype(), out)
}

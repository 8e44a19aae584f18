//! Host side of conv2d: index.cu's im2col writes each output position's
//! patch as a row of a dense matrix, and the product kernels of matmul.cu
//! multiply the weight with it per (image, group), the bias added per
//! output channel in their epilogue. f16/bf16 run on the tensor-core GEMM
//! (patch rows padded with zeros to a multiple of 8 taps, so both operands
//! are read in place by cp.async), f32 on the SIMT GEMM, one output channel
//! per group on GEMV. Images are processed in chunks whose patch matrix
//! stays under [`PATCH_BYTES`].

use super::elementwise::copy;
use super::index::pack_pad;
use super::matmul::{product_dims, product_into, Epilogue};
use super::{check_float, launch_map, view_ptr, Ctx};
use crate::compile::INDEX;
use crate::device::Args;
use crate::memory::CudaStorage;
use tessera_tensor::{BackendStorage, Conv2dParams, DType, Error, Layout, Result, View};

/// Most bytes of patch matrix one chunk of images may take.
pub const PATCH_BYTES: usize = 256 << 20;

/// `struct ConvGeom` of kernels/index.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConvGeom {
    pub c: i64,
    pub h: i64,
    pub w: i64,
    pub sn: i64,
    pub sc: i64,
    pub sh: i64,
    pub sw: i64,
    pub kh: i64,
    pub kw: i64,
    pub stride_h: i64,
    pub stride_w: i64,
    pub pad_h: i64,
    pub pad_w: i64,
    pub dil_h: i64,
    pub dil_w: i64,
    pub oh: i64,
    pub ow: i64,
    pub groups: i64,
    /// Taps per patch: (c / groups) * kh * kw.
    pub k: i64,
    /// Patch row length: `k`, rounded up to a multiple of 8 for the
    /// tensor-core GEMM.
    pub k_pad: i64,
}

impl ConvGeom {
    /// The geometry of `x` (shape `xs`, element strides `x_strides`) and a
    /// weight of shape `ws` under `p`, with an output of `oh x ow`.
    pub fn new(dtype: DType, xs: [usize; 4], x_strides: [usize; 4], ws: [usize; 4], p: &Conv2dParams, (oh, ow): (usize, usize)) -> Self {
        let [_, c, h, w] = xs;
        let [_, cg, kh, kw] = ws;
        let k = cg * kh * kw;
        let i = |v: usize| v as i64;
        ConvGeom {
            c: i(c),
            h: i(h),
            w: i(w),
            sn: i(x_strides[0]),
            sc: i(x_strides[1]),
            sh: i(x_strides[2]),
            sw: i(x_strides[3]),
            kh: i(kh),
            kw: i(kw),
            stride_h: i(p.stride.0),
            stride_w: i(p.stride.1),
            pad_h: i(p.padding.0),
            pad_w: i(p.padding.1),
            dil_h: i(p.dilation.0),
            dil_w: i(p.dilation.1),
            oh: i(oh),
            ow: i(ow),
            groups: i(p.groups),
            k: i(k),
            k_pad: i(padded_taps(dtype, k)),
        }
    }
}

/// The taps of a patch row as the GEMM takes them: a multiple of 8 for the
/// tensor-core path (16-byte cp.async chunks), `k` itself for f32.
pub fn padded_taps(dtype: DType, k: usize) -> usize {
    if dtype == DType::F32 {
        k
    } else {
        k.div_ceil(8) * 8
    }
}

/// `layout` over `storage`.
fn view_of<'a>(storage: &'a dyn BackendStorage, layout: &'a Layout) -> View<'a> {
    View { storage, layout }
}

pub fn conv2d(cx: &Ctx, x: View, w: View, bias: Option<View>, p: &Conv2dParams) -> Result<Option<CudaStorage>> {
    let op = "conv2d";
    let dt = x.dtype();
    check_float(op, dt)?;
    let (xs, ws) = (x.layout.shape(), w.layout.shape());
    let (n, c, h, wd) = (xs[0], xs[1], xs[2], xs[3]);
    let (o, cg, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let Some((oh, ow)) = p.output_size((h, wd), (kh, kw)) else { return Ok(None) };
    let g = p.groups;
    let og = o / g;
    let positions = oh * ow;
    let out = CudaStorage::alloc(cx.dev, dt, n * o * positions)?;
    if out.len() == 0 {
        return Ok(Some(out));
    }
    if positions > i32::MAX as usize || o > i32::MAX as usize {
        return Err(Error::InvalidArgument { op, msg: format!("{o} channels of {oh}x{ow} exceed the kernels' 32-bit sizes") });
    }
    let k = cg * kh * kw;
    if k == 0 {
        // No input channels: the output is the bias alone (the composition).
        return Ok(None);
    }
    let k_pad = padded_taps(dt, k);
    let es = dt.size_in_bytes();

    // The weight as [o, k_pad], dense: in place when it already is so.
    let dense_w;
    let dense_layout = Layout::contiguous(ws);
    let w = if w.layout.is_contiguous() {
        w
    } else {
        dense_w = copy(cx, w)?;
        view_of(&dense_w, &dense_layout)
    };
    let wm_layout = Layout::new(vec![o, k], vec![k, 1], w.layout.offset(), w.storage.len())?;
    let padded_w;
    // The tensor-core path reads the weight with 16-byte copies: in place
    // only from an element offset that is a multiple of 8.
    let in_place = k_pad == k && (dt == DType::F32 || w.layout.offset().is_multiple_of(8));
    let (w_storage, w_offset): (&dyn BackendStorage, usize) = if in_place {
        (w.storage, w.layout.offset())
    } else {
        padded_w = pack_pad(cx, view_of(w.storage, &wm_layout), k_pad)?;
        (&padded_w, 0)
    };

    let patch_row_bytes = g * positions * k_pad * es;
    let chunk = (PATCH_BYTES / patch_row_bytes.max(1)).clamp(1, n);
    let patches = CudaStorage::alloc(cx.dev, dt, chunk * g * positions * k_pad)?;
    let xst = x.layout.strides();
    let geom = ConvGeom::new(dt, [n, c, h, wd], [xst[0], xst[1], xst[2], xst[3]], [o, cg, kh, kw], p, (oh, ow));
    let im2col = cx.dev.function(&INDEX, &[], &format!("im2col_{es}"))?;
    let ep = Epilogue::conv(bias.as_ref(), g, og)?;
    for img0 in (0..n).step_by(chunk) {
        let images = chunk.min(n - img0);
        // The patch buffer is reused by every chunk: the stream orders each
        // im2col after the previous chunk's GEMM.
        let mut a = Args::new();
        a.ptr(patches.ptr()).ptr(view_ptr(&x)? + (img0 * xst[0] * es) as u64).push(geom).push(images as i64);
        launch_map(cx, im2col, images * g * positions * k_pad, &mut a)?;

        // Batch (image, group): weight rows of the group, broadcast over
        // images; patches [images, g, positions, k_pad] as (k, position).
        let lw = Layout::new(vec![images, g, og, k_pad], vec![0, og * k_pad, k_pad, 1], w_offset, w_storage.len())?;
        let lp =
            Layout::new(vec![images, g, k_pad, positions], vec![g * positions * k_pad, positions * k_pad, 1, k_pad], 0, patches.len())?;
        let (lhs, rhs) = (view_of(w_storage, &lw), view_of(&patches, &lp));
        let (mnk, batch) = product_dims(op, &lhs, &rhs)?;
        product_into(cx, out.ptr_at(img0 * o * positions), lhs, rhs, mnk, batch, ep)?;
    }
    Ok(Some(out))
}

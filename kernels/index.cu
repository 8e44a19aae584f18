// Data movement by index: index_select and gather (one kernel), nearest
// upsampling, the zero-padding pack that the matmul and attention kernels
// use for operands their fast paths cannot read in place, and conv2d's
// im2col.
//
// Elements move as raw words of 1, 2, 4 or 8 bytes, so every dtype (FP8
// included) is handled without conversion.
//
// Layouts:
// - indexed_copy: output element e (row-major over the output shape) reads
//   src[base(e) + ids[id(e)] * dim_stride], where `base` is the source view
//   with the indexed dim's stride set to 0, and `id` maps e to its index
//   element (index_select: the output coordinate at the dim; gather: the
//   index tensor's own layout). Indices are u8, u32 or i64 and were checked
//   against the dim size by the core.
// - upsample_nearest: x is [n, c, h, w] by its strides; output
//   [n, c, oh, ow] contiguous; source index floor(dst * in / out), computed
//   exactly in 64-bit integers.
// - pack_pad: a strided view of `rows x cols` (logical order) into a dense
//   `rows x cols_pad` buffer, zeros in the padding columns.
// - im2col: x [n, c, h, w] by its strides (pointer at the first image of
//   the chunk) into the dense patch matrix [images, groups, oh*ow, k_pad]:
//   row p = oy*ow + ox of group g holds that output position's k =
//   (c/groups)*kh*kw taps in (channel, ky, kx) order, the weight's own
//   order, so the GEMM takes the weight [o, k] as it is stored. Tap
//   (ci, ky, kx) reads x at (oy*stride - pad + ky*dilation, ox*stride - pad
//   + kx*dilation), zero where that falls in the padding; columns k..k_pad
//   are zero. k_pad (a multiple of 8 for the tensor-core GEMM) makes every
//   row a k-major operand cp.async can read in place.
#include "common.cuh"

// Geometry of one conv2d (all in elements; strides of x).
struct ConvGeom {
    i64 c, h, w;
    i64 sn, sc, sh, sw;
    i64 kh, kw;
    i64 stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    i64 oh, ow;
    i64 groups, k, k_pad;
};


template <typename W, typename I>
__device__ void indexed_copy(W* out, const W* src, Strided ls, const I* ids, Strided li, i64 dim_stride, i64 n) {
    GRID_LOOP(e, n) { out[e] = src[offset_of(ls, e, n) + (i64)ids[offset_of(li, e, n)] * dim_stride]; }
}

template <typename W>
__device__ void upsample_nearest(W* out, const W* x, i64 n, i64 c, i64 h, i64 w, i64 sn, i64 sc, i64 sh, i64 sw, i64 oh, i64 ow) {
    GRID_LOOP(e, n * c * oh * ow) {
        i64 ox = e % ow, t = e / ow;
        i64 oy = t % oh;
        t /= oh;
        i64 ci = t % c, ni = t / c;
        i64 iy = oy * h / oh, ix = ox * w / ow;
        out[e] = x[ni * sn + ci * sc + iy * sh + ix * sw];
    }
}

template <typename W> __device__ void pack_pad(W* out, const W* in, Strided l, i64 rows, i64 cols, i64 cols_pad) {
    GRID_LOOP(e, rows * cols_pad) {
        i64 r = e / cols_pad, c = e - r * cols_pad;
        out[e] = c < cols ? in[offset_of(l, r * cols + c, rows * cols)] : (W)0;
    }
}

template <typename W> __device__ void im2col(W* out, const W* x, ConvGeom g, i64 images) {
    i64 positions = g.oh * g.ow, cg = g.c / g.groups, taps = g.kh * g.kw;
    GRID_LOOP(e, images * g.groups * positions * g.k_pad) {
        i64 kk = e % g.k_pad, t = e / g.k_pad;
        i64 p = t % positions;
        t /= positions;
        i64 gi = t % g.groups, ni = t / g.groups;
        W v = (W)0;
        if (kk < g.k) {
            i64 ci = gi * cg + kk / taps, tap = kk % taps;
            i64 iy = (p / g.ow) * g.stride_h - g.pad_h + (tap / g.kw) * g.dil_h;
            i64 ix = (p % g.ow) * g.stride_w - g.pad_w + (tap % g.kw) * g.dil_w;
            if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) v = x[ni * g.sn + ci * g.sc + iy * g.sh + ix * g.sw];
        }
        out[e] = v;
    }
}

#define INDEXED(B, NI, I)                                                                                                            \
    extern "C" __global__ void indexed_copy_##B##_##NI(Word<B>::T* out, const Word<B>::T* src, Strided ls, const I* ids, Strided li, \
                                                        i64 dim_stride, i64 n) {                                                     \
        indexed_copy<Word<B>::T, I>(out, src, ls, ids, li, dim_stride, n);                                                           \
    }
#define WORD_KERNELS(B)                                                                                                              \
    INDEXED(B, u8, u8)                                                                                                               \
    INDEXED(B, u32, u32)                                                                                                             \
    INDEXED(B, i64, i64)                                                                                                             \
    extern "C" __global__ void upsample_nearest_##B(Word<B>::T* out, const Word<B>::T* x, i64 n, i64 c, i64 h, i64 w, i64 sn, i64 sc, \
                                                    i64 sh, i64 sw, i64 oh, i64 ow) {                                                \
        upsample_nearest<Word<B>::T>(out, x, n, c, h, w, sn, sc, sh, sw, oh, ow);                                                   \
    }                                                                                                                                \
    extern "C" __global__ void pack_pad_##B(Word<B>::T* out, const Word<B>::T* in, Strided l, i64 rows, i64 cols, i64 cols_pad) {   \
        pack_pad<Word<B>::T>(out, in, l, rows, cols, cols_pad);                                                                      \
    }
WORD_KERNELS(1)
WORD_KERNELS(2)
WORD_KERNELS(4)
WORD_KERNELS(8)

// Convolutions take the compute floats: 2- and 4-byte words.
#define IM2COL(B)                                                                                                                    \
    extern "C" __global__ void im2col_##B(Word<B>::T* out, const Word<B>::T* x, ConvGeom g, i64 images) {                          \
        im2col<Word<B>::T>(out, x, g, images);                                                                                      \
    }
IM2COL(2)
IM2COL(4)

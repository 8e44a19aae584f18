// Data movement by index: index_select and gather (one kernel), nearest
// upsampling, and the zero-padding pack that the matmul and attention
// kernels use for operands their fast paths cannot read in place.
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
#include "common.cuh"


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

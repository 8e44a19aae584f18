// Elementwise kernels: fill, strided copy, casts between every dtype, unary
// ops, affine, binary ops, comparisons and where.
//
// Algorithm: one thread per element in a grid-stride loop. When every
// operand is contiguous (the host merges dims, so a dense view arrives as
// one dim of stride 1) and 16-byte aligned, threads move 16 bytes per load
// and store; otherwise each element's storage offset is decoded from its
// logical index through the operand's `Strided` layout (32-bit arithmetic
// when the count fits), which covers transposed, narrowed, stepped and
// broadcast (stride 0) views alike.
//
// Layouts: outputs are contiguous; inputs are `Strided` views with the
// output's shape (the core broadcasts them by strides). Pointers arrive
// already advanced to the view's offset.
//
// Numerics: float ops compute in f32 on f32/f16/bf16 and round once. Integer
// ops compute in 64 bits with wrapping and truncate to the storage width
// (two's complement), integer division by zero gives 0. Casts go through
// f32 (floats, and integers to floats) or i64 (integers to integers); floats
// convert to integers by truncation with saturation, NaN to 0. FP8 is
// storage only: it appears in fill, copy, casts and where.
//
// Loads, stores and conversions are common.cuh's; op codes are ops.cuh's.
#include "ops.cuh"

// ------------------------------------------------------ traversal helpers

// out[i] = f(a[i]) over contiguous same-typed arrays, 16 bytes at a time
// where the pointers allow.
template <typename TO, typename TI, typename F> __device__ __forceinline__ void map_contig(TO* out, const TI* a, i64 n, F f) {
    i64 done = 0;
    if constexpr (sizeof(TO) == sizeof(TI)) {
        constexpr int V = 16 / sizeof(TI);
        i64 nv = (aligned16(out) && aligned16(a)) ? n / V : 0;
        GRID_LOOP(i, nv) {
            Vec16<TI> x = ((const Vec16<TI>*)a)[i];
            Vec16<TO> y;
#pragma unroll
            for (int j = 0; j < V; ++j) y.v[j] = f(x.v[j]);
            ((Vec16<TO>*)out)[i] = y;
        }
        done = nv * V;
    }
    GRID_LOOP(i, n - done) { out[done + i] = f(a[done + i]); }
}

// out[i] = f(a[i]) through a strided view of `a`.
template <typename TO, typename TI, typename F>
__device__ __forceinline__ void map_strided(TO* out, const TI* a, const Strided& la, i64 n, F f) {
    if (n < (1ll << 31)) {
        GRID_LOOP(i, n) { out[i] = f(a[strided_offset32(la, (u32)i)]); }
    } else {
        GRID_LOOP(i, n) { out[i] = f(a[strided_offset(la, i)]); }
    }
}

template <typename TO, typename TI, typename F>
__device__ __forceinline__ void map1(TO* out, const TI* a, const Strided& la, i64 n, int contig, F f) {
    if (contig) map_contig(out, a, n, f);
    else map_strided(out, a, la, n, f);
}

// out[i] = f(a[i], b[i]).
template <typename TO, typename TI, typename F>
__device__ __forceinline__ void map2(TO* out, const TI* a, const Strided& la, const TI* b, const Strided& lb, i64 n, int contig, F f) {
    if (contig) {
        i64 done = 0;
        if constexpr (sizeof(TO) == sizeof(TI)) {
            constexpr int V = 16 / sizeof(TI);
            i64 nv = (aligned16(out) && aligned16(a) && aligned16(b)) ? n / V : 0;
            GRID_LOOP(i, nv) {
                Vec16<TI> x = ((const Vec16<TI>*)a)[i];
                Vec16<TI> y = ((const Vec16<TI>*)b)[i];
                Vec16<TO> z;
#pragma unroll
                for (int j = 0; j < V; ++j) z.v[j] = f(x.v[j], y.v[j]);
                ((Vec16<TO>*)out)[i] = z;
            }
            done = nv * V;
        }
        GRID_LOOP(i, n - done) { out[done + i] = f(a[done + i], b[done + i]); }
    } else if (n < (1ll << 31)) {
        GRID_LOOP(i, n) { out[i] = f(a[strided_offset32(la, (u32)i)], b[strided_offset32(lb, (u32)i)]); }
    } else {
        GRID_LOOP(i, n) { out[i] = f(a[strided_offset(la, i)], b[strided_offset(lb, i)]); }
    }
}

// ------------------------------------------------------------ fill, copy

template <int BYTES> __device__ void fill(typename Word<BYTES>::T* out, i64 n, u64 bits) {
    typedef typename Word<BYTES>::T W;
    W v = (W)bits;
    GRID_LOOP(i, n) { out[i] = v; }
}

// dst (strided, or contiguous with dst_contig) = src (strided). Also the
// body of `cat`, which writes each input into a region of the output.
template <int BYTES>
__device__ void copy_strided(typename Word<BYTES>::T* dst, Strided ld, int dst_contig, const typename Word<BYTES>::T* src, Strided ls,
                             int src_contig, i64 n) {
    typedef typename Word<BYTES>::T W;
    if (dst_contig) {
        map1(dst, src, ls, n, src_contig, [](W x) { return x; });
    } else if (n < (1ll << 31)) {
        GRID_LOOP(i, n) { dst[strided_offset32(ld, (u32)i)] = src[src_contig ? i : strided_offset32(ls, (u32)i)]; }
    } else {
        GRID_LOOP(i, n) { dst[strided_offset(ld, i)] = src[src_contig ? i : strided_offset(ls, i)]; }
    }
}

#define WORD_KERNELS(B)                                                                                                              \
    extern "C" __global__ void fill_##B(Word<B>::T* out, i64 n, u64 bits) { fill<B>(out, n, bits); }                                  \
    extern "C" __global__ void copy_##B(Word<B>::T* dst, Strided ld, int dst_contig, const Word<B>::T* src, Strided ls, int src_contig, \
                                        i64 n) {                                                                                     \
        copy_strided<B>(dst, ld, dst_contig, src, ls, src_contig, n);                                                                \
    }
WORD_KERNELS(1)
WORD_KERNELS(2)
WORD_KERNELS(4)
WORD_KERNELS(8)

// ------------------------------------------------------------------ casts

#define CAST(NI, TI, NO, TO)                                                                                                         \
    extern "C" __global__ void cast_##NI##_##NO(TO* out, const TI* in, Strided l, i64 n, int contig) {                              \
        map1(out, in, l, n, contig, [](TI x) { return convert<TO, TI>(x); });                                                        \
    }
#define CAST_FROM(NI, TI)                                                                                                            \
    CAST(NI, TI, f32, float)                                                                                                         \
    CAST(NI, TI, f16, f16)                                                                                                           \
    CAST(NI, TI, bf16, bf16)                                                                                                         \
    CAST(NI, TI, f8e4m3, e4m3)                                                                                                       \
    CAST(NI, TI, f8e5m2, e5m2)                                                                                                       \
    CAST(NI, TI, u8, u8)                                                                                                             \
    CAST(NI, TI, u32, u32)                                                                                                           \
    CAST(NI, TI, i64, i64)
CAST_FROM(f32, float)
CAST_FROM(f16, f16)
CAST_FROM(bf16, bf16)
CAST_FROM(f8e4m3, e4m3)
CAST_FROM(f8e5m2, e5m2)
CAST_FROM(u8, u8)
CAST_FROM(u32, u32)
CAST_FROM(i64, i64)

// ------------------------------------------------------------ unary ops

#define UNARY_FLOAT(N, T)                                                                                                            \
    extern "C" __global__ void unary_##N(T* out, const T* in, Strided l, i64 n, int contig, int op) {                               \
        map1(out, in, l, n, contig, [op](T x) { return store_f32<T>(unary_f(op, load_f32(x))); });                                      \
    }                                                                                                                                \
    extern "C" __global__ void affine_##N(T* out, const T* in, Strided l, i64 n, int contig, float mul, float add) {                \
        map1(out, in, l, n, contig, [mul, add](T x) { return store_f32<T>(load_f32(x) * mul + add); });                                \
    }
UNARY_FLOAT(f32, float)
UNARY_FLOAT(f16, f16)
UNARY_FLOAT(bf16, bf16)

#define UNARY_INT(N, T)                                                                                                              \
    extern "C" __global__ void unary_##N(T* out, const T* in, Strided l, i64 n, int contig, int op) {                               \
        map1(out, in, l, n, contig, [op](T x) { return store_i64<T>(unary_i(op, load_i64(x))); });                                   \
    }
UNARY_INT(u8, u8)
UNARY_INT(u32, u32)
UNARY_INT(i64, i64)

// ----------------------------------------------------------- binary ops

#define BINARY_FLOAT(N, T)                                                                                                           \
    extern "C" __global__ void binary_##N(T* out, const T* a, Strided la, const T* b, Strided lb, i64 n, int contig, int op) {     \
        map2(out, a, la, b, lb, n, contig, [op](T x, T y) { return store_f32<T>(binary_f(op, load_f32(x), load_f32(y))); });             \
    }                                                                                                                                \
    extern "C" __global__ void compare_##N(u8* out, const T* a, Strided la, const T* b, Strided lb, i64 n, int contig, int op) {   \
        map2(out, a, la, b, lb, n, contig, [op](T x, T y) { return cmp(op, load_f32(x), load_f32(y)); });                               \
    }
BINARY_FLOAT(f32, float)
BINARY_FLOAT(f16, f16)
BINARY_FLOAT(bf16, bf16)

#define BINARY_INT(N, T)                                                                                                             \
    extern "C" __global__ void binary_##N(T* out, const T* a, Strided la, const T* b, Strided lb, i64 n, int contig, int op) {     \
        map2(out, a, la, b, lb, n, contig, [op](T x, T y) { return store_i64<T>(binary_i(op, load_i64(x), load_i64(y))); });        \
    }                                                                                                                                \
    extern "C" __global__ void compare_##N(u8* out, const T* a, Strided la, const T* b, Strided lb, i64 n, int contig, int op) {   \
        map2(out, a, la, b, lb, n, contig, [op](T x, T y) { return cmp(op, load_i64(x), load_i64(y)); });                           \
    }
BINARY_INT(u8, u8)
BINARY_INT(u32, u32)
BINARY_INT(i64, i64)

// ------------------------------------------------------------------ where

// out = cond != 0 ? t : f; values move as raw words of BYTES bytes.
template <typename C, int BYTES>
__device__ void where_cond(typename Word<BYTES>::T* out, const C* c, Strided lc, const typename Word<BYTES>::T* t, Strided lt,
                           const typename Word<BYTES>::T* f, Strided lf, i64 n) {
    if (n < (1ll << 31)) {
        GRID_LOOP(i, n) {
            u32 k = (u32)i;
            out[i] = c[strided_offset32(lc, k)] != 0 ? t[strided_offset32(lt, k)] : f[strided_offset32(lf, k)];
        }
    } else {
        GRID_LOOP(i, n) { out[i] = c[strided_offset(lc, i)] != 0 ? t[strided_offset(lt, i)] : f[strided_offset(lf, i)]; }
    }
}

#define WHERE(NC, C, B)                                                                                                              \
    extern "C" __global__ void where_##NC##_##B(Word<B>::T* out, const C* c, Strided lc, const Word<B>::T* t, Strided lt,            \
                                               const Word<B>::T* f, Strided lf, i64 n) {                                            \
        where_cond<C, B>(out, c, lc, t, lt, f, lf, n);                                                                               \
    }
#define WHERE_COND(NC, C) WHERE(NC, C, 1) WHERE(NC, C, 2) WHERE(NC, C, 4) WHERE(NC, C, 8)
WHERE_COND(u8, u8)
WHERE_COND(u32, u32)
WHERE_COND(i64, i64)

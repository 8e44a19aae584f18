// Row-wise fused ops: softmax / log-softmax, layer norm and RMS norm (each
// optionally fused with a residual add), group norm, rotary embeddings.
//
// Algorithm (softmax, norms): a row of `n` elements is handled by a group of
// `tpr` threads: a warp (tpr = 32, several rows per block) for rows of up
// to 1024 elements, the whole block (tpr = blockDim.x) otherwise. The group
// reads its row once into shared memory as f32 when the host grants room
// (`cached`), so max, sums and the output pass read on-chip memory and the
// row costs one read and one write of global memory; otherwise the row is
// re-read. Group norm is the layer norm of rows made of one (image, group):
// x [N, C, spatial...] viewed as N*G rows of (C/G)*spatial elements, the
// weight and bias element of row r, element j being channel
// (r % G) * (C/G) + j / spatial. Softmax subtracts the row max; log-softmax writes x - max -
// log(sum). Norm statistics are f32 two-pass (mean, then centred squares).
// With a residual, the norm input is x + residual, which is also written out
// (`sum_out`), so "h = h + f(h); y = norm(h)" is one launch.
//
// Layouts: `x` and `res` are `Strided` views of `rows x n` in logical order
// (the last dim is the row); outputs are contiguous. Weight and bias are 1-D
// with an element stride. Rope: x [..., t, d] by its strides, cos/sin
// [t, half] by their strides, the first 2*half features rotated (pairs
// (i, i + half), or (2i, 2i + 1) when interleaved), the rest copied.
//
// Limits: rows of up to 2^31 elements; f32/f16/bf16 in, same dtype out;
// statistics in f32.
#include "common.cuh"

// Element i of a view of n elements (dense when `contig`).
template <typename T> __device__ __forceinline__ float row_elem(const T* x, const Strided& l, int contig, i64 i, i64 n) {
    return load_f32(x[contig ? i : offset_of(l, i, n)]);
}

// Sum / max over a group of `tpr` threads (a warp, or the block).
__device__ __forceinline__ float group_sum(float v, int tpr, float* scratch) {
    if (tpr == 32) return warp_sum(v);
    return block_sum(v, scratch);
}
__device__ __forceinline__ float group_max(float v, int tpr, float* scratch) {
    if (tpr == 32) return warp_max(v);
    return block_max(v, scratch);
}

// Calls body(r, live, t, row, scratch) for each row of the grid-stride
// walk: `r` is this thread's group's row (`live` if below `rows`), `t` the
// thread's index in its group, `row` the group's n floats of dynamic shared
// memory, `scratch` 32 floats for block reductions.
template <typename F> __device__ __forceinline__ void for_rows(i64 rows, i64 n, int tpr, F body) {
    extern __shared__ float cache[];
    __shared__ float scratch[32];
    int groups = blockDim.x / tpr, g = threadIdx.x / tpr, t = threadIdx.x % tpr;
    float* row = cache + (i64)g * n;
    for (i64 r0 = (i64)blockIdx.x * groups; r0 < rows; r0 += (i64)gridDim.x * groups) {
        i64 r = r0 + g;
        body(r, r < rows, t, row, scratch);
        if (tpr != 32) __syncthreads();
    }
}

// The row at `x` (dense, 16-byte aligned, n a multiple of the vector
// width) into the group's shared `row` as f32, 16 bytes per load; f(v) sees
// each value. Thread t of the group takes chunks t, t + tpr, ...
template <typename T, typename F> __device__ __forceinline__ void load_row_vec(float* row, const T* x, i64 n, int t, int tpr, F f) {
    constexpr int V = 16 / sizeof(T);
    for (i64 j = (i64)t * V; j < n; j += (i64)tpr * V) {
        Vec16<T> c = *(const Vec16<T>*)(x + j);
#pragma unroll
        for (int e = 0; e < V; ++e) {
            float v = load_f32(c.v[e]);
            row[j + e] = v;
            f(v);
        }
    }
}

// out[j] = g(row[j], j) for the row, 16 bytes per store (same chunks as
// load_row_vec, so each thread reads back only what it wrote).
template <typename T, typename G> __device__ __forceinline__ void store_row_vec(T* out, const float* row, i64 n, int t, int tpr, G g) {
    constexpr int V = 16 / sizeof(T);
    for (i64 j = (i64)t * V; j < n; j += (i64)tpr * V) {
        Vec16<T> c;
#pragma unroll
        for (int e = 0; e < V; ++e) c.v[e] = store_f32<T>(g(row[j + e], j + e));
        *(Vec16<T>*)(out + j) = c;
    }
}

// ---------------------------------------------------------------- softmax

// `vec`: rows dense, 16-byte aligned and cached, n a multiple of 16 bytes
// of elements: loads and stores move 16 bytes (the host decides).
template <typename T>
__device__ void softmax_rows(T* out, const T* x, Strided l, i64 rows, i64 n, int contig, int log_out, int tpr, int cached, int vec) {
    constexpr int V = 16 / sizeof(T);
    for_rows(rows, n, tpr, [&](i64 r, bool live, int t, float* row, float* scratch) {
        float m = -__int_as_float(0x7f800000);
        if (live && vec) {
            load_row_vec(row, x + r * n, n, t, tpr, [&](float v) { m = fmaxf(m, v); });
        } else if (live) {
            for (i64 j = t; j < n; j += tpr) {
                float v = row_elem(x, l, contig, r * n + j, rows * n);
                if (cached) row[j] = v;
                m = fmaxf(m, v);
            }
        }
        m = group_max(m, tpr, scratch);
        // A row of -inf only: every exp(-inf - -inf) would be NaN; use 0.
        float shift = m == -__int_as_float(0x7f800000) ? 0.0f : m;
        // Threads read back the elements they cached: chunks of V with vec.
        int step = vec ? V : 1;
        float s = 0.0f;
        if (live)
            for (i64 j0 = (i64)t * step; j0 < n; j0 += (i64)tpr * step)
                for (int e = 0; e < step; ++e) {
                    i64 j = j0 + e;
                    s += expf((cached ? row[j] : row_elem(x, l, contig, r * n + j, rows * n)) - shift);
                }
        s = group_sum(s, tpr, scratch);
        if (live) {
            float inv = 1.0f / s, lse = shift + logf(s);
            auto value = [&](float v, i64) { return log_out ? v - lse : expf(v - shift) * inv; };
            if (vec) {
                store_row_vec(out + r * n, row, n, t, tpr, value);
            } else {
                for (i64 j = t; j < n; j += tpr) {
                    float v = cached ? row[j] : row_elem(x, l, contig, r * n + j, rows * n);
                    out[r * n + j] = store_f32<T>(value(v, j));
                }
            }
        }
    });
}

// ------------------------------------------------------------------ norms

// `vec` as for softmax (never with a residual). `param(r, j)` is the index
// of the weight and bias element that scales element j of row r.
template <typename T, typename P>
__device__ void norm_rows(T* out, T* sum_out, const T* x, Strided lx, const T* res, Strided lr, const T* w, i64 ws, const T* b, i64 bs,
                          i64 rows, i64 n, int contig, float eps, int rms, int tpr, int cached, int vec, P param) {
    constexpr int V = 16 / sizeof(T);
    for_rows(rows, n, tpr, [&](i64 r, bool live, int t, float* row, float* scratch) {
        // The norm's input: x, or x + res (rounded to T once, as written out).
        auto input = [&](i64 j) -> float {
            float v = row_elem(x, lx, contig, r * n + j, rows * n);
            if (res) v = load_f32(store_f32<T>(v + row_elem(res, lr, 0, r * n + j, rows * n)));
            return v;
        };
        float s = 0.0f;
        if (live && vec) {
            load_row_vec(row, x + r * n, n, t, tpr, [&](float v) { s += v; });
        } else if (live) {
            for (i64 j = t; j < n; j += tpr) {
                float v = input(j);
                if (cached) row[j] = v;
                if (sum_out) sum_out[r * n + j] = store_f32<T>(v);
                s += v;
            }
        }
        float mean = rms ? 0.0f : group_sum(s, tpr, scratch) / (float)n;
        // Threads read back the elements they cached: chunks of V with vec.
        int step = vec ? V : 1;
        float q = 0.0f;
        if (live)
            for (i64 j0 = (i64)t * step; j0 < n; j0 += (i64)tpr * step)
                for (int e = 0; e < step; ++e) {
                    float d = (cached ? row[j0 + e] : input(j0 + e)) - mean;
                    q += d * d;
                }
        float inv = 1.0f / sqrtf(group_sum(q, tpr, scratch) / (float)n + eps);
        auto value = [&](float v, i64 j) {
            float y = (v - mean) * inv;
            if (w || b) {
                i64 p = param(r, j);
                if (w) y *= load_f32(w[p * ws]);
                if (b) y += load_f32(b[p * bs]);
            }
            return y;
        };
        if (live && vec) {
            store_row_vec(out + r * n, row, n, t, tpr, value);
        } else if (live) {
            for (i64 j = t; j < n; j += tpr) out[r * n + j] = store_f32<T>(value(cached ? row[j] : input(j), j));
        }
    });
}

// ------------------------------------------------------------------- rope

template <typename T>
__device__ void rope(T* out, const T* x, Strided l, const T* cs, i64 cs0, i64 cs1, const T* sn, i64 sn0, i64 sn1, i64 total, i64 t, i64 d,
                     i64 half, int interleaved) {
    GRID_LOOP(e, total) {
        i64 row = e / d, i = e - row * d, pos = row % t;
        float v = load_f32(x[offset_of(l, e, total)]);
        if (i < 2 * half) {
            i64 k, partner;
            bool first;
            if (interleaved) {
                k = i >> 1;
                first = (i & 1) == 0;
                partner = first ? i + 1 : i - 1;
            } else {
                first = i < half;
                k = first ? i : i - half;
                partner = first ? i + half : i - half;
            }
            float p = load_f32(x[offset_of(l, row * d + partner, total)]);
            float c = load_f32(cs[pos * cs0 + k * cs1]), s = load_f32(sn[pos * sn0 + k * sn1]);
            v = first ? v * c - p * s : v * c + p * s;
        }
        out[e] = store_f32<T>(v);
    }
}

#define NORM_KERNELS(N, T)                                                                                                           \
    extern "C" __global__ void softmax_##N(T* out, const T* x, Strided l, i64 rows, i64 n, int contig, int log_out, int tpr,         \
                                           int cached, int vec) {                                                                    \
        softmax_rows<T>(out, x, l, rows, n, contig, log_out, tpr, cached, vec);                                                     \
    }                                                                                                                                \
    extern "C" __global__ void norm_##N(T* out, T* sum_out, const T* x, Strided lx, const T* res, Strided lr, const T* w, i64 ws,    \
                                        const T* b, i64 bs, i64 rows, i64 n, int contig, float eps, int rms, int tpr, int cached,    \
                                        int vec) {                                                                                   \
        norm_rows<T>(out, sum_out, x, lx, res, lr, w, ws, b, bs, rows, n, contig, eps, rms, tpr, cached, vec,                        \
                     [](i64, i64 j) { return j; });                                                                                  \
    }                                                                                                                                \
    extern "C" __global__ void group_norm_##N(T* out, const T* x, Strided lx, const T* w, i64 ws, const T* b, i64 bs, i64 rows,      \
                                              i64 n, i64 groups, i64 spatial, int contig, float eps, int tpr, int cached, int vec) { \
        i64 per_group = n / spatial;                                                                                                 \
        norm_rows<T>(out, nullptr, x, lx, nullptr, Strided(), w, ws, b, bs, rows, n, contig, eps, 0, tpr, cached, vec,               \
                     [=](i64 r, i64 j) { return (r % groups) * per_group + j / spatial; });                                          \
    }                                                                                                                                \
    extern "C" __global__ void rope_##N(T* out, const T* x, Strided l, const T* cs, i64 cs0, i64 cs1, const T* sn, i64 sn0, i64 sn1, \
                                        i64 total, i64 t, i64 d, i64 half, int interleaved) {                                        \
        rope<T>(out, x, l, cs, cs0, cs1, sn, sn0, sn1, total, t, d, half, interleaved);                                              \
    }
NORM_KERNELS(f32, float)
NORM_KERNELS(f16, f16)
NORM_KERNELS(bf16, bf16)

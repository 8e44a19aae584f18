// Row reductions: sum/mean/max/min, argmax/argmin, cumsum and a stable
// argsort.
//
// Layouts: the host permutes the input view so the reduced dims come last
// and passes it as a `Strided` view of `rows x row_len` elements in logical
// order (element (r, j) is logical index r * row_len + j); `contig` says the
// view is dense. Reductions write `rows` contiguous outputs. Cumsum and
// argsort write element (r, j) through `lo`, the output's row-major layout
// permuted the same way, so the result lands in the input's dim order.
//
// Algorithms:
// - reduce / arg_reduce: one block per row (grid-stride over rows), each
//   thread folds a strided slice of the row, then a shuffle tree per warp
//   and across warps. Float sums accumulate in f64 (as the CPU backend);
//   max/min and arg-reductions let NaN win; ties pick the lower index.
// - cumsum: one block per row, a block-wide inclusive scan per chunk of
//   blockDim elements with the running total carried between chunks (f64
//   for floats, wrapping 64-bit for integers).
// - argsort: rows are sorted as (key, index) pairs, where the key maps the
//   value to an unsigned integer of the same order (floats: -0 == +0, NaN
//   above everything; descending inverts the key). Comparing the index on
//   equal keys makes the sort stable. Rows of up to 2048 sort in shared
//   memory with a bitonic network (one block per row); longer rows use the
//   same network in global memory, one launch per merge step.
//
// Limits: row_len below 2^31; rows below 2^31.
#include "ops.cuh"

// Element i of the rows x row_len view (n elements in all).
template <typename T> __device__ __forceinline__ T elem(const T* in, const Strided& l, int contig, i64 i, i64 n) {
    return in[contig ? i : offset_of(l, i, n)];
}

__device__ __forceinline__ bool is_nan(float x) { return x != x; }
__device__ __forceinline__ bool is_nan(i64) { return false; }

// NaN-propagating max/min (PyTorch's max/min reductions).
__device__ __forceinline__ float nan_max(float a, float b) { return is_nan(a) ? a : (is_nan(b) || b > a ? b : a); }
__device__ __forceinline__ float nan_min(float a, float b) { return is_nan(a) ? a : (is_nan(b) || b < a ? b : a); }

template <typename V> __device__ __forceinline__ V shfl(V v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }

// ---------------------------------------------------------------- reduce

// op: REDUCE_SUM, REDUCE_MEAN, REDUCE_MAX or REDUCE_MIN (ops.cuh); the host
// sends only these, and the kernels trap on any other code.
// Whether `op` sums (sum, mean) rather than taking an extreme; traps on a
// code that is not a reduction.
__device__ __forceinline__ bool reduce_sums(int op) {
    switch (op) {
    case REDUCE_SUM:
    case REDUCE_MEAN: return true;
    case REDUCE_MAX:
    case REDUCE_MIN: return false;
    default: unknown_op(); return false;
    }
}

template <typename T>
__device__ void reduce_float(T* out, const T* in, Strided l, i64 rows, i64 row_len, int contig, int op) {
    __shared__ double ssum[32];
    __shared__ float sext[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    bool sums = reduce_sums(op), is_max = op == REDUCE_MAX;
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        double sum = 0.0;
        float ext = row_len > 0 ? load_value(elem(in, l, contig, r * row_len, rows * row_len)) : 0.0f;
        for (i64 j = threadIdx.x; j < row_len; j += blockDim.x) {
            float x = load_value(elem(in, l, contig, r * row_len + j, rows * row_len));
            if (sums) sum += (double)x;
            else ext = is_max ? nan_max(ext, x) : nan_min(ext, x);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            sum += shfl(sum, o);
            float e = shfl(ext, o);
            ext = is_max ? nan_max(ext, e) : nan_min(ext, e);
        }
        if (lane == 0) {
            ssum[warp] = sum;
            sext[warp] = ext;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < warps; ++w) {
                sum += ssum[w];
                ext = is_max ? nan_max(ext, sext[w]) : nan_min(ext, sext[w]);
            }
            float v = !sums ? ext : op == REDUCE_SUM ? (float)sum : (float)(sum / (double)row_len);
            out[r] = store_f32<T>(v);
        }
        __syncthreads();
    }
}

template <typename T> __device__ void reduce_int(T* out, const T* in, Strided l, i64 rows, i64 row_len, int contig, int op) {
    __shared__ i64 sacc[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    bool sums = reduce_sums(op), is_max = op == REDUCE_MAX;
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        i64 acc = (sums || row_len == 0) ? 0 : load_value(elem(in, l, contig, r * row_len, rows * row_len));
        for (i64 j = threadIdx.x; j < row_len; j += blockDim.x) {
            i64 x = load_value(elem(in, l, contig, r * row_len + j, rows * row_len));
            acc = sums ? (i64)((u64)acc + (u64)x) : is_max ? (x > acc ? x : acc) : (x < acc ? x : acc);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            i64 x = shfl(acc, o);
            acc = sums ? (i64)((u64)acc + (u64)x) : is_max ? (x > acc ? x : acc) : (x < acc ? x : acc);
        }
        if (lane == 0) sacc[warp] = acc;
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < warps; ++w) {
                i64 x = sacc[w];
                acc = sums ? (i64)((u64)acc + (u64)x) : is_max ? (x > acc ? x : acc) : (x < acc ? x : acc);
            }
            out[r] = store_i64<T>(acc);
        }
        __syncthreads();
    }
}

// ------------------------------------------------------------ arg reduce

// Whether (a, ia) beats (b, ib): NaN first, then the extreme, then the lower index.
template <typename V> __device__ __forceinline__ bool arg_better(V a, i64 ia, V b, i64 ib, bool is_max) {
    bool an = is_nan(a), bn = is_nan(b);
    if (an || bn) return an && (!bn || ia < ib);
    if (a == b) return ia < ib;
    return is_max ? a > b : a < b;
}

template <typename T> __device__ void arg_reduce(i64* out, const T* in, Strided l, i64 rows, i64 row_len, int contig, int is_max) {
    typedef decltype(load_value(T())) V;
    __shared__ V sval[32];
    __shared__ i64 sidx[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        V best = load_value(elem(in, l, contig, r * row_len, rows * row_len));
        i64 bi = 0;
        for (i64 j = threadIdx.x; j < row_len; j += blockDim.x) {
            V x = load_value(elem(in, l, contig, r * row_len + j, rows * row_len));
            if (arg_better(x, j, best, bi, is_max)) {
                best = x;
                bi = j;
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            V x = shfl(best, o);
            i64 xi = shfl(bi, o);
            if (arg_better(x, xi, best, bi, is_max)) {
                best = x;
                bi = xi;
            }
        }
        if (lane == 0) {
            sval[warp] = best;
            sidx[warp] = bi;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < warps; ++w)
                if (arg_better(sval[w], sidx[w], best, bi, is_max)) {
                    best = sval[w];
                    bi = sidx[w];
                }
            out[r] = bi;
        }
        __syncthreads();
    }
}

// ---------------------------------------------------------------- cumsum

// Inclusive block scan of `v` (blockDim.x threads, a multiple of 32).
template <typename A> __device__ __forceinline__ A block_scan(A v, A* warp_totals) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        A y = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v = v + y;
    }
    if (lane == 31) warp_totals[warp] = v;
    __syncthreads();
    if (warp == 0) {
        A t = lane < warps ? warp_totals[lane] : A(0);
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            A y = __shfl_up_sync(0xffffffffu, t, o);
            if (lane >= o) t = t + y;
        }
        if (lane < warps) warp_totals[lane] = t;
    }
    __syncthreads();
    if (warp > 0) v = v + warp_totals[warp - 1];
    return v;
}

// The scan's result in the output type: f64 sums round once, u64 sums wrap.
template <typename T> __device__ __forceinline__ T from_acc(double v) { return store_f32<T>((float)v); }
template <typename T> __device__ __forceinline__ T from_acc(u64 v) { return store_i64<T>((i64)v); }

// A is double (floats) or u64 (integers, wrapping).
template <typename T, typename A>
__device__ void cumsum(T* out, Strided lo, const T* in, Strided l, i64 rows, i64 row_len, int contig) {
    __shared__ A totals[32];
    __shared__ A carry_s;
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        A carry = A(0);
        for (i64 j0 = 0; j0 < row_len; j0 += blockDim.x) {
            i64 j = j0 + threadIdx.x;
            A x = j < row_len ? (A)load_value(elem(in, l, contig, r * row_len + j, rows * row_len)) : A(0);
            A s = block_scan(x, totals);
            if (j < row_len) out[offset_of(lo, r * row_len + j, rows * row_len)] = from_acc<T>(s + carry);
            if (threadIdx.x == blockDim.x - 1) carry_s = s;
            __syncthreads();
            carry = carry + carry_s;
            __syncthreads();
        }
    }
}

// --------------------------------------------------------------- argsort

__device__ __forceinline__ u64 sort_key(float x, int desc) {
    u32 k;
    if (x != x) {
        k = 0xffffffffu;
    } else {
        u32 b = __float_as_uint(x == 0.0f ? 0.0f : x);
        k = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    }
    return desc ? (u64)(0xffffffffu - k) : (u64)k;
}
__device__ __forceinline__ u64 sort_key(i64 x, int desc) {
    u64 k = (u64)x ^ 0x8000000000000000ull;
    return desc ? ~k : k;
}

__device__ __forceinline__ bool pair_gt(u64 ka, u32 ia, u64 kb, u32 ib) { return ka > kb || (ka == kb && ia > ib); }

// One compare-exchange of the bitonic network on pairs (keys[a], idx[a])
// and (keys[b], idx[b]): puts them in ascending order when `up`.
__device__ __forceinline__ void compare_exchange(u64* keys, u32* idx, i64 a, i64 b, bool up) {
    if (pair_gt(keys[a], idx[a], keys[b], idx[b]) == up) {
        u64 tk = keys[a];
        keys[a] = keys[b];
        keys[b] = tk;
        u32 ti = idx[a];
        idx[a] = idx[b];
        idx[b] = ti;
    }
}

#define SORT_SMEM_MAX 2048

// One block per row; rows of at most SORT_SMEM_MAX elements.
template <typename T>
__device__ void argsort_smem(i64* out, Strided lo, const T* in, Strided l, i64 rows, i64 row_len, int contig, int desc) {
    __shared__ u64 keys[SORT_SMEM_MAX];
    __shared__ u32 idx[SORT_SMEM_MAX];
    int p = 1;
    while (p < row_len) p <<= 1;
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        for (int i = threadIdx.x; i < p; i += blockDim.x) {
            if (i < row_len) {
                keys[i] = sort_key(load_value(elem(in, l, contig, r * row_len + i, rows * row_len)), desc);
                idx[i] = (u32)i;
            } else {
                keys[i] = ~0ull;
                idx[i] = 0xffffffffu;
            }
        }
        __syncthreads();
        for (int k = 2; k <= p; k <<= 1) {
            for (int j = k >> 1; j > 0; j >>= 1) {
                for (int i = threadIdx.x; i < p; i += blockDim.x) {
                    int ixj = i ^ j;
                    if (ixj > i) compare_exchange(keys, idx, i, ixj, (i & k) == 0);
                }
                __syncthreads();
            }
        }
        for (int i = threadIdx.x; i < row_len; i += blockDim.x) out[offset_of(lo, r * row_len + i, rows * row_len)] = (i64)idx[i];
        __syncthreads();
    }
}

// Global-memory path: keys/idx are rows x p scratch buffers (p a power of two).
template <typename T>
__device__ void argsort_init(u64* keys, u32* idx, const T* in, Strided l, i64 rows, i64 row_len, int p, int contig, int desc) {
    GRID_LOOP(e, rows * p) {
        i64 r = e / p, i = e - r * p;
        if (i < row_len) {
            keys[e] = sort_key(load_value(elem(in, l, contig, r * row_len + i, rows * row_len)), desc);
            idx[e] = (u32)i;
        } else {
            keys[e] = ~0ull;
            idx[e] = 0xffffffffu;
        }
    }
}

extern "C" __global__ void argsort_step(u64* keys, u32* idx, i64 rows, int p, int j, int k) {
    GRID_LOOP(e, rows * p) {
        i64 r = e / p;
        int i = (int)(e - r * p);
        int ixj = i ^ j;
        if (ixj > i) compare_exchange(keys, idx, r * p + i, r * p + ixj, (i & k) == 0);
    }
}

extern "C" __global__ void argsort_write(i64* out, Strided lo, const u32* idx, i64 rows, i64 row_len, int p) {
    GRID_LOOP(e, rows * row_len) {
        i64 r = e / row_len, i = e - r * row_len;
        out[offset_of(lo, e, rows * row_len)] = (i64)idx[r * p + i];
    }
}

// -------------------------------------------------------- instantiations

#define ROW_KERNELS_COMMON(N, T)                                                                                                     \
    extern "C" __global__ void arg_reduce_##N(i64* out, const T* in, Strided l, i64 rows, i64 row_len, int contig, int is_max) {    \
        arg_reduce<T>(out, in, l, rows, row_len, contig, is_max);                                                                   \
    }                                                                                                                                \
    extern "C" __global__ void argsort_smem_##N(i64* out, Strided lo, const T* in, Strided l, i64 rows, i64 row_len, int contig,   \
                                                int desc) {                                                                         \
        argsort_smem<T>(out, lo, in, l, rows, row_len, contig, desc);                                                               \
    }                                                                                                                                \
    extern "C" __global__ void argsort_init_##N(u64* keys, u32* idx, const T* in, Strided l, i64 rows, i64 row_len, int p,         \
                                                int contig, int desc) {                                                             \
        argsort_init<T>(keys, idx, in, l, rows, row_len, p, contig, desc);                                                          \
    }

#define ROW_KERNELS_FLOAT(N, T)                                                                                                      \
    ROW_KERNELS_COMMON(N, T)                                                                                                         \
    extern "C" __global__ void reduce_##N(T* out, const T* in, Strided l, i64 rows, i64 row_len, int contig, int op) {              \
        reduce_float<T>(out, in, l, rows, row_len, contig, op);                                                                     \
    }                                                                                                                                \
    extern "C" __global__ void cumsum_##N(T* out, Strided lo, const T* in, Strided l, i64 rows, i64 row_len, int contig) {          \
        cumsum<T, double>(out, lo, in, l, rows, row_len, contig);                                                                   \
    }

#define ROW_KERNELS_INT(N, T)                                                                                                        \
    ROW_KERNELS_COMMON(N, T)                                                                                                         \
    extern "C" __global__ void reduce_##N(T* out, const T* in, Strided l, i64 rows, i64 row_len, int contig, int op) {              \
        reduce_int<T>(out, in, l, rows, row_len, contig, op);                                                                       \
    }                                                                                                                                \
    extern "C" __global__ void cumsum_##N(T* out, Strided lo, const T* in, Strided l, i64 rows, i64 row_len, int contig) {          \
        cumsum<T, u64>(out, lo, in, l, rows, row_len, contig);                                                                        \
    }

ROW_KERNELS_FLOAT(f32, float)
ROW_KERNELS_FLOAT(f16, f16)
ROW_KERNELS_FLOAT(bf16, bf16)
ROW_KERNELS_INT(u8, u8)
ROW_KERNELS_INT(u32, u32)
ROW_KERNELS_INT(i64, i64)

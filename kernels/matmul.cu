// Matrix products C[z] = act(A[z] B[z] + bias) for a batch of z: a
// tensor-core GEMM for f16/bf16, a SIMT GEMM for f32, and GEMV kernels for
// one-row products, all with the same epilogue (bias and activation on the
// f32 accumulators, one rounding). The plain matmul, matmul_bias and the
// GEMM of conv2d (after index.cu's im2col) are these kernels.
//
// Tensor-core GEMM (gemm_tc_*): block tiles of BM x BN with BK = 32, split
// into warp tiles of WM x WN computed by mma.sync.m16n8k16 (f32
// accumulators). Operand tiles stream global -> shared memory with 16-byte
// cp.async in a STAGES-deep pipeline (STAGES-1 tiles in flight while one is
// computed; one __syncthreads per k-tile), and fragments come out of shared
// memory with ldmatrix (.trans for operands stored the other way round).
// Shared tiles are XOR-swizzled at 16-byte granularity so that both the
// cp.async writes and the eight row addresses of each ldmatrix hit distinct
// bank groups:
//   k-major tile (rows of 32 k = 4 chunks): chunk c of row r at r*4 + (c ^ ((r >> 1) & 3))
//   mn-major tile (rows of BM or BN, >= 8 chunks): chunk c of k-row r at r*(BM/8) + (c ^ (r & 7))
// The epilogue (struct Epilogue below: bias, then activation) works on the
// f32 accumulators, rounds each once and stores with bounds checks (so M
// and N are arbitrary): straight from registers without an activation, and
// through an f32 tile in shared memory (BM x (BN + 8), reusing the pipeline
// buffers) with one, so that the activation's code is not repeated per
// accumulator.
//
// Layouts: A element (m, k) is A[m*lda + k] (A_KMAJOR) or A[k*lda + m]; B
// element (k, n) is B[n*ldb + k] (B_KMAJOR, e.g. a [n, k] weight used as
// x @ w.T) or B[k*ldb + n]. Batch z starts at the offsets of `ba`/`bb`
// (Strided over the batch dims: broadcast batches have stride 0); C is
// contiguous [z, M, N]. The host guarantees what cp.async needs: base
// pointers, ld and batch strides multiples of 8 elements (16 bytes), and the
// contiguous extent (K for a k-major operand, M or N otherwise) a multiple
// of 8; operands that are not so get packed with zero padding first
// (index.cu pack_pad).
//
// SIMT f32 GEMM (gemm_f32): 64x64 tiles, BK 16, 256 threads with 4x4
// outputs each, operands read through arbitrary strides.
//
// GEMV (gemv_*): M = 1. With B k-contiguous (x @ w.T), one warp per output
// reads its weight row with 16-byte loads where aligned; otherwise a warp
// per output walks k with any strides; with B n-contiguous, one thread per
// output walks k (coalesced across the warp).
#include "ops.cuh"

// ---------------------------------------------------------------- epilogue

// What every product kernel applies to an f32 accumulator before rounding
// it once: out = act(acc + bias(z, row, col)), with
//   bias(z, row, col) = bias[(z % groups) * bias_group + row * bias_sm + col * bias_sn]
// for batch z, output row `row` and column `col` of that batch. A layer's
// bias [n] has bias_sn = its stride (the rest 0, groups 1); a grouped
// convolution's bias per output channel has bias_sm = its stride and
// bias_group = (channels per group) * stride, batch z being (image, group).
// A null bias adds nothing; act is a unary op code (ops.cuh) or ACT_NONE.
struct Epilogue {
    const void* bias;
    i64 bias_group;
    i64 bias_sm;
    i64 bias_sn;
    int groups;
    int act;
};

// The epilogue of one batch entry (its bias slice resolved once).
template <typename T> struct BatchEpilogue {
    const T* bias;
    i64 sm, sn;
    int act;
    __device__ __forceinline__ BatchEpilogue(const Epilogue& ep, i64 z)
        : bias(ep.bias ? (const T*)ep.bias + (z % ep.groups) * ep.bias_group : nullptr), sm(ep.bias_sm), sn(ep.bias_sn), act(ep.act) {}
    __device__ __forceinline__ float add_bias(float v, int row, int col) const {
        return bias ? v + load_f32(bias[row * sm + col * sn]) : v;
    }
    __device__ __forceinline__ float apply(float v, int row, int col) const { return activation(act, add_bias(v, row, col)); }
};

// -------------------------------------------------- shared-memory swizzles

template <int ROWS> struct KMajorTile {
    // ROWS rows of 32 elements (4 chunks of 8).
    static __device__ __forceinline__ int chunk(int r, int c) { return r * 4 + (c ^ ((r >> 1) & 3)); }
    static constexpr int CHUNKS = ROWS * 4;
};
template <int COLS> struct MnMajorTile {
    // 32 k-rows of COLS elements (COLS / 8 chunks, at least 8).
    static_assert(COLS >= 64, "mn-major tiles need at least 8 chunks per row");
    static __device__ __forceinline__ int chunk(int r, int c) { return r * (COLS / 8) + (c ^ (r & 7)); }
    static constexpr int CHUNKS = 32 * (COLS / 8);
};

// Copies one BK=32 slab of an operand (ROWS = BM or BN rows of the output
// dimension) into shared memory. `g` points at the tile's first element.
template <typename T, int ROWS, bool KMAJOR, int THREADS>
__device__ __forceinline__ void load_tile(T* s, const T* g, i64 ld, int rows_left, int k_left) {
    if constexpr (KMAJOR) {
        constexpr int N = KMajorTile<ROWS>::CHUNKS;
#pragma unroll
        for (int i = 0; i < N / THREADS; ++i) {
            int id = threadIdx.x + i * THREADS;
            int r = id >> 2, c = id & 3;
            bool ok = r < rows_left && c * 8 < k_left;
            const T* src = ok ? g + (i64)r * ld + c * 8 : g;
            cp_async16(s + KMajorTile<ROWS>::chunk(r, c) * 8, src, ok);
        }
    } else {
        constexpr int PER_ROW = ROWS / 8;
        constexpr int N = MnMajorTile<ROWS>::CHUNKS;
#pragma unroll
        for (int i = 0; i < N / THREADS; ++i) {
            int id = threadIdx.x + i * THREADS;
            int r = id / PER_ROW, c = id % PER_ROW;
            bool ok = r < k_left && c * 8 < rows_left;
            const T* src = ok ? g + (i64)r * ld + c * 8 : g;
            cp_async16(s + MnMajorTile<ROWS>::chunk(r, c) * 8, src, ok);
        }
    }
}

// A fragments (16 x 16) of rows m_base.. at k offset kk (0 or 16).
template <typename T, int BM, bool KMAJOR> __device__ __forceinline__ void frag_a(u32 (&a)[4], const T* s, int m_base, int kk) {
    int lane = threadIdx.x & 31, i = lane >> 3, r = lane & 7;
    if constexpr (KMAJOR) {
        ldmatrix_x4(a, s + KMajorTile<BM>::chunk(m_base + r + (i & 1) * 8, (kk >> 3) + (i >> 1)) * 8);
    } else {
        ldmatrix_x4_trans(a, s + MnMajorTile<BM>::chunk(kk + r + (i >> 1) * 8, (m_base >> 3) + (i & 1)) * 8);
    }
}

// B fragments of two n8 tiles (n_base.., n_base+8..) at k offset kk:
// b[0], b[1] for the first tile, b[2], b[3] for the second.
template <typename T, int BN, bool KMAJOR> __device__ __forceinline__ void frag_b(u32 (&b)[4], const T* s, int n_base, int kk) {
    int lane = threadIdx.x & 31, i = lane >> 3, r = lane & 7;
    if constexpr (KMAJOR) {
        ldmatrix_x4(b, s + KMajorTile<BN>::chunk(n_base + r + (i >> 1) * 8, (kk >> 3) + (i & 1)) * 8);
    } else {
        ldmatrix_x4_trans(b, s + MnMajorTile<BN>::chunk(kk + r + (i & 1) * 8, (n_base >> 3) + (i >> 1)) * 8);
    }
}

template <typename T, int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, bool A_KMAJOR, bool B_KMAJOR>
__device__ __forceinline__ void gemm_tc(T* C, const T* A, const T* B, int M, int N, int K, i64 lda, i64 ldb, const Strided& ba,
                                        const Strided& bb, i64 z0, const Epilogue& ep) {
    constexpr int THREADS = WARPS_M * WARPS_N * 32;
    constexpr int BK = 32;
    constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
    constexpr int MT = WM / 16, NT = WN / 8;
    static_assert(NT % 2 == 0, "B fragments load two n8 tiles at a time");
    extern __shared__ __align__(128) unsigned char smem_raw[];
    T* sA = (T*)smem_raw;
    T* sB = sA + STAGES * BM * BK;

    i64 z = blockIdx.z + z0;
    A += strided_offset(ba, z);
    B += strided_offset(bb, z);
    C += z * (i64)M * N;
    int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN; // m on x: the grid's 2^31 limit
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int wm = (warp / WARPS_N) * WM, wn = (warp % WARPS_N) * WN;

    // Where the tiles start; each k-tile advances by BK along k.
    const T* gA = A_KMAJOR ? A + (i64)m0 * lda : A + m0;
    const T* gB = B_KMAJOR ? B + (i64)n0 * ldb : B + n0;
    i64 a_step = A_KMAJOR ? BK : BK * lda;
    i64 b_step = B_KMAJOR ? BK : BK * ldb;
    int ktiles = (K + BK - 1) / BK;

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < ktiles) {
            load_tile<T, BM, A_KMAJOR, THREADS>(sA + s * BM * BK, gA + s * a_step, lda, M - m0, K - s * BK);
            load_tile<T, BN, B_KMAJOR, THREADS>(sB + s * BN * BK, gB + s * b_step, ldb, N - n0, K - s * BK);
        }
        cp_async_commit();
    }

    for (int kt = 0; kt < ktiles; ++kt) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        // Refill the stage computed in the previous iteration (every warp is
        // past it: they all reached the barrier above).
        int next = kt + STAGES - 1;
        if (next < ktiles) {
            int st = next % STAGES;
            load_tile<T, BM, A_KMAJOR, THREADS>(sA + st * BM * BK, gA + next * a_step, lda, M - m0, K - next * BK);
            load_tile<T, BN, B_KMAJOR, THREADS>(sB + st * BN * BK, gB + next * b_step, ldb, N - n0, K - next * BK);
        }
        cp_async_commit();

        const T* tA = sA + (kt % STAGES) * BM * BK;
        const T* tB = sB + (kt % STAGES) * BN * BK;
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            u32 af[MT][4];
            u32 bf[NT / 2][4];
#pragma unroll
            for (int i = 0; i < MT; ++i) frag_a<T, BM, A_KMAJOR>(af[i], tA, wm + i * 16, kk);
#pragma unroll
            for (int j = 0; j < NT / 2; ++j) frag_b<T, BN, B_KMAJOR>(bf[j], tB, wn + j * 16, kk);
#pragma unroll
            for (int i = 0; i < MT; ++i)
#pragma unroll
                for (int j = 0; j < NT; ++j) mma_16816<T>(acc[i][j], af[i], bf[j >> 1][(j & 1) * 2], bf[j >> 1][(j & 1) * 2 + 1]);
        }
    }
    cp_async_wait<0>();

    BatchEpilogue<T> epi(ep, z);
    if (ep.act == ACT_NONE) {
        // Accumulator (i, j): rows lane/4 and lane/4 + 8, columns 2*(lane%4) + {0, 1}.
        bool pairs = (N & 1) == 0;
#pragma unroll
        for (int i = 0; i < MT; ++i) {
#pragma unroll
            for (int j = 0; j < NT; ++j) {
                int col = n0 + wn + j * 8 + (lane & 3) * 2;
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    int row = m0 + wm + i * 16 + (lane >> 2) + h * 8;
                    if (row >= M) continue;
                    float lo = acc[i][j][2 * h], hi = acc[i][j][2 * h + 1];
                    T* dst = C + (i64)row * N + col;
                    if (pairs && col + 1 < N) {
                        *(u32*)dst = pack2<T>(epi.add_bias(lo, row, col), epi.add_bias(hi, row, col + 1));
                    } else {
                        if (col < N) dst[0] = store_f32<T>(epi.add_bias(lo, row, col));
                        if (col + 1 < N) dst[1] = store_f32<T>(epi.add_bias(hi, row, col + 1));
                    }
                }
            }
        }
    } else {
        // With an activation: the accumulators go to shared memory as f32
        // (the pipeline's buffers are free once every warp is past its last
        // k-tile), then a rolled loop adds the bias and applies the op, so
        // the op's code appears once, not once per accumulator. Rows of
        // BN + 8 floats: the eight rows of a fragment's float2 stores fall
        // in distinct bank pairs within each half-warp.
        constexpr int LDC = BN + 8;
        float* sC = (float*)smem_raw;
        __syncthreads();
#pragma unroll
        for (int i = 0; i < MT; ++i) {
#pragma unroll
            for (int j = 0; j < NT; ++j) {
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    int r = wm + i * 16 + (lane >> 2) + h * 8, c = wn + j * 8 + (lane & 3) * 2;
                    float2 v;
                    v.x = acc[i][j][2 * h];
                    v.y = acc[i][j][2 * h + 1];
                    *(float2*)(sC + r * LDC + c) = v;
                }
            }
        }
        __syncthreads();
        for (int e = threadIdx.x; e < BM * BN; e += THREADS) {
            int r = e / BN, c = e % BN, row = m0 + r, col = n0 + c;
            if (row < M && col < N) C[(i64)row * N + col] = store_f32<T>(epi.apply(sC[r * LDC + c], row, col));
        }
    }
}

// One kernel per configuration and operand layout; blockIdx.z + z0 is the batch.
#define GEMM_TC(NAME, T, BM, BN, WM_, WN_, ST, AK, BKM)                                                                               \
    extern "C" __global__ void __launch_bounds__(WM_* WN_ * 32)                                                                     \
        NAME(T* C, const T* A, const T* B, int M, int N, int K, i64 lda, i64 ldb, Strided ba, Strided bb, i64 z0, Epilogue ep) {     \
        gemm_tc<T, BM, BN, WM_, WN_, ST, AK, BKM>(C, A, B, M, N, K, lda, ldb, ba, bb, z0, ep);                                        \
    }

// Large tiles: 128 x 128, 4 warps of 64 x 64, 4 stages (64 KiB of shared memory).
// Small tiles: 64 x 64, 4 warps of 32 x 32, 4 stages (32 KiB), for grids that
// would otherwise leave SMs idle.
#define GEMM_LAYOUTS(N, T, AKN, AK, BKN, BKM)                                                                                       \
    GEMM_TC(gemm_tc_large_##N##_##AKN##_##BKN, T, 128, 128, 2, 2, 4, AK, BKM)                                                       \
    GEMM_TC(gemm_tc_small_##N##_##AKN##_##BKN, T, 64, 64, 2, 2, 4, AK, BKM)
#define GEMM_TYPE(N, T)                                                                                                              \
    GEMM_LAYOUTS(N, T, k, true, k, true)                                                                                             \
    GEMM_LAYOUTS(N, T, k, true, n, false)                                                                                            \
    GEMM_LAYOUTS(N, T, m, false, k, true)                                                                                            \
    GEMM_LAYOUTS(N, T, m, false, n, false)
GEMM_TYPE(f16, f16)
GEMM_TYPE(bf16, bf16)

// -------------------------------------------------------------- f32 GEMM

extern "C" __global__ void __launch_bounds__(256) gemm_f32(float* C, const float* A, const float* B, int M, int N, int K, i64 sam, i64 sak,
                                                           i64 sbk, i64 sbn, Strided ba, Strided bb, i64 z0, Epilogue ep) {
    constexpr int BM = 64, BN = 64, BK = 16;
    __shared__ float sA[BK][BM + 4];
    __shared__ float sB[BK][BN + 4];
    i64 z = blockIdx.z + z0;
    A += strided_offset(ba, z);
    B += strided_offset(bb, z);
    C += z * (i64)M * N;
    int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN; // m on x: the grid's 2^31 limit
    int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < K; k0 += BK) {
        // 1024 elements per tile, 4 per thread; consecutive threads walk the
        // operand's unit-stride dim where it has one (coalesced reads).
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            int e = threadIdx.x + i * 256;
            int mm = sak == 1 ? e / BK : e % BM, ka = sak == 1 ? e % BK : e / BM;
            int gm = m0 + mm, gka = k0 + ka;
            sA[ka][mm] = (gm < M && gka < K) ? A[gm * sam + gka * sak] : 0.0f;
            int nn = sbk == 1 ? e / BK : e % BN, kb = sbk == 1 ? e % BK : e / BN;
            int gn = n0 + nn, gkb = k0 + kb;
            sB[kb][nn] = (gn < N && gkb < K) ? B[gkb * sbk + gn * sbn] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                a[i] = sA[kk][ty * 4 + i];
                b[i] = sB[kk][tx * 4 + i];
            }
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
    BatchEpilogue<float> epi(ep, z);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        int gm = m0 + ty * 4 + i;
        if (gm >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            int gn = n0 + tx * 4 + j;
            if (gn < N) C[(i64)gm * N + gn] = epi.apply(acc[i][j], gm, gn);
        }
    }
}

// ------------------------------------------------------------------ GEMV

template <typename T> union Vec16Load {
    uint4 raw;
    T v[16 / sizeof(T)];
};

// One warp per output: out[z, n] = sum_k a[k] * B(k, n), any strides.
// `vec`: B(k, n) is B[n*sbn + k] with rows 16-byte aligned, K a multiple
// of 16 / sizeof(T), and `a` contiguous and aligned (16-byte loads of both).
template <typename T>
__device__ void gemv_rows(T* out, const T* a, i64 sak, const T* B, i64 sbk, i64 sbn, int N, int K, i64 batches, int vec, const Strided& ba,
                          const Strided& bb, const Epilogue& ep) {
    constexpr int V = 16 / sizeof(T);
    int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    for (i64 z = blockIdx.y; z < batches; z += gridDim.y) {
        const T* az = a + strided_offset(ba, z);
        const T* bz = B + strided_offset(bb, z);
        BatchEpilogue<T> epi(ep, z);
        for (int n = blockIdx.x * warps + (threadIdx.x >> 5); n < N; n += gridDim.x * warps) {
            const T* row = bz + (i64)n * sbn;
            float s = 0.0f;
            if (vec) {
                for (int k = lane * V; k < K; k += 32 * V) {
                    Vec16Load<T> w, x;
                    w.raw = *(const uint4*)(row + k);
                    x.raw = *(const uint4*)(az + k);
#pragma unroll
                    for (int e = 0; e < V; ++e) s = fmaf(load_f32(x.v[e]), load_f32(w.v[e]), s);
                }
            } else {
                for (int k = lane; k < K; k += 32) s = fmaf(load_f32(az[k * sak]), load_f32(row[k * sbk]), s);
            }
            s = warp_sum(s);
            if (lane == 0) out[z * N + n] = store_f32<T>(epi.apply(s, 0, n));
        }
    }
}

// One thread per output, for B(k, n) = B[k*sbk + n] (n contiguous): the
// threads of a warp read 32 neighbouring weights of each k row.
template <typename T>
__device__ void gemv_cols(T* out, const T* a, i64 sak, const T* B, i64 sbk, int N, int K, i64 batches, const Strided& ba, const Strided& bb,
                          const Epilogue& ep) {
    for (i64 z = blockIdx.y; z < batches; z += gridDim.y) {
        const T* az = a + strided_offset(ba, z);
        const T* bz = B + strided_offset(bb, z);
        BatchEpilogue<T> epi(ep, z);
        for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < N; n += gridDim.x * blockDim.x) {
            float s = 0.0f;
            for (int k = 0; k < K; ++k) s = fmaf(load_f32(az[k * sak]), load_f32(bz[k * sbk + n]), s);
            out[z * N + n] = store_f32<T>(epi.apply(s, 0, n));
        }
    }
}

#define GEMV(N, T)                                                                                                                   \
    extern "C" __global__ void gemv_rows_##N(T* out, const T* a, i64 sak, const T* B, i64 sbk, i64 sbn, int n, int k, i64 batches,  \
                                             int vec, Strided ba, Strided bb, Epilogue ep) {                                        \
        gemv_rows<T>(out, a, sak, B, sbk, sbn, n, k, batches, vec, ba, bb, ep);                                                      \
    }                                                                                                                                \
    extern "C" __global__ void gemv_cols_##N(T* out, const T* a, i64 sak, const T* B, i64 sbk, int n, int k, i64 batches, Strided ba, \
                                             Strided bb, Epilogue ep) {                                                              \
        gemv_cols<T>(out, a, sak, B, sbk, n, k, batches, ba, bb, ep);                                                                \
    }
GEMV(f32, float)
GEMV(f16, f16)
GEMV(bf16, bf16)

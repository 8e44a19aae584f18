// Flash-attention forward for f16/bf16: O = softmax(Q K^T * scale + mask) V,
// never materialising the score matrix.
//
// Algorithm (FlashAttention-2 forward): a block of 4 warps takes 64 queries
// of one (batch, head); each warp owns 16 query rows. Key/value tiles of 64
// rows stream through shared memory with cp.async: V_j is fetched while
// S = Q K_j^T is computed, and K_{j+1} while P V_j is. Both products run on
// tensor cores (mma.sync.m16n8k16, f32 accumulators, fragments loaded with
// ldmatrix; V with .trans). The softmax is online, in the exp2 domain: per
// row a running max m and sum l; each tile's scores are scaled by
// scale*log2(e) (the additive mask, times log2(e), added), P = exp2(S - m),
// the output accumulators are rescaled by exp2(m_old - m_new), and P is
// rounded to the input type and fed straight from the score accumulators
// into the A fragments of P V (the m16n8 accumulator layout of two adjacent
// key tiles is the m16k16 A layout). At the end O is divided by l.
//
// Masking: keys beyond tk, the causal rule aligned bottom-right (query i
// sees keys j <= i + tk - tq; a block stops at the last key its queries can
// see), and an optional additive mask read through its broadcast strides. A
// row that sees no key (l = 0) gets zeros, as the CPU backend.
//
// Layouts: q [b, hq, tq, HEAD_DIM], k [b, hkv, tk, HEAD_DIM], v
// [b, hkv, tk, HEAD_DIM] with the last dim contiguous, row/head/batch
// strides multiples of 8 elements and 16-byte aligned bases; the host pads
// narrower or misaligned heads with zeros (index.cu pack_pad). Grouped-query
// heads: head h reads KV head h / (hq / hkv). o [b, hq, tq, dv] contiguous
// (dv <= HEAD_DIM columns stored).
//
// Specialisation: HEAD_DIM (a multiple of 16, at most 256) is a -D define.
// Shared memory rows are HEAD_DIM + 8 elements long: the 16-byte skew puts
// the eight rows of each ldmatrix in distinct bank groups. Up to 128,
// Q fragments live in registers; above, they are re-read from shared memory
// per tile to stay clear of register spills.
#include "common.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
static_assert(HEAD_DIM % 16 == 0 && HEAD_DIM <= 256, "HEAD_DIM must be a multiple of 16 up to 256");

#define BR 64
#define BC 64
#define ROW (HEAD_DIM + 8)
#define Q_IN_REGS (HEAD_DIM <= 128)

// Loads `rows` x HEAD_DIM elements (rows below `valid` read, the rest zero)
// into a shared tile of BR rows of ROW elements.
template <typename T> __device__ __forceinline__ void load_rows(T* s, const T* g, i64 stride, int valid) {
    constexpr int PER_ROW = HEAD_DIM / 8;
    for (int id = threadIdx.x; id < BR * PER_ROW; id += blockDim.x) {
        int r = id / PER_ROW, c = id % PER_ROW;
        bool ok = r < valid;
        cp_async16(s + r * ROW + c * 8, ok ? g + (i64)r * stride + c * 8 : g, ok);
    }
}

template <typename T>
__device__ void attention_fwd(T* O, const T* Q, const T* K, const T* V, const T* mask, int hq, int hkv, int tq, int tk, int dv, i64 q_sb,
                              i64 q_sh, i64 q_st, i64 k_sb, i64 k_sh, i64 k_st, i64 v_sb, i64 v_sh, i64 v_st, i64 m_sb, i64 m_sh,
                              i64 m_sq, i64 m_sk, float scale_log2, int causal) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    T* sQ = (T*)smem_raw;
    T* sK = sQ + BR * ROW;
    T* sV = sK + BC * ROW;
    const float LOG2E = 1.4426950408889634f;
    const float NEG_INF = -__int_as_float(0x7f800000);

    int qb = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    int hk = h / (hq / hkv);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int lr = lane >> 2, lc = (lane & 3) * 2; // accumulator row / column within a tile
    int li = lane >> 3, lrow = lane & 7;     // ldmatrix matrix / row index
    int q0 = qb * BR;
    const T* gQ = Q + b * q_sb + h * q_sh + (i64)q0 * q_st;
    const T* gK = K + b * k_sb + hk * k_sh;
    const T* gV = V + b * v_sb + hk * v_sh;
    const T* gM = mask ? mask + b * m_sb + h * m_sh : nullptr;

    int shift = tk - tq;
    int q_last = min(q0 + BR, tq) - 1;
    int kv_end = causal ? max(0, min(tk, q_last + shift + 1)) : tk;
    int tiles = (kv_end + BC - 1) / BC;

    // This thread's two rows (lr and lr + 8 of the warp's 16), as query indices.
    int qi[2] = {q0 + warp * 16 + lr, q0 + warp * 16 + lr + 8};
    float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.0f, 0.0f};
    float o[HEAD_DIM / 8][4];
#pragma unroll
    for (int d = 0; d < HEAD_DIM / 8; ++d)
#pragma unroll
        for (int e = 0; e < 4; ++e) o[d][e] = 0.0f;

    load_rows(sQ, gQ, q_st, tq - q0);
    if (tiles > 0) load_rows(sK, gK, k_st, tk);
    cp_async_commit();

#if Q_IN_REGS
    u32 qf[HEAD_DIM / 16][4];
#endif
    for (int j = 0; j < tiles; ++j) {
        int k0 = j * BC;
        cp_async_wait<0>();
        __syncthreads(); // K_j (and Q) arrived; every warp is done with V_{j-1}
        load_rows(sV, gV + (i64)k0 * v_st, v_st, tk - k0);
        cp_async_commit();
#if Q_IN_REGS
        if (j == 0) {
#pragma unroll
            for (int kt = 0; kt < HEAD_DIM / 16; ++kt)
                ldmatrix_x4(qf[kt], sQ + (warp * 16 + lrow + (li & 1) * 8) * ROW + kt * 16 + (li >> 1) * 8);
        }
#endif
        // S = Q K_j^T: 16 x 64 per warp, as 8 key tiles of 8.
        float s[BC / 8][4];
#pragma unroll
        for (int t = 0; t < BC / 8; ++t)
#pragma unroll
            for (int e = 0; e < 4; ++e) s[t][e] = 0.0f;
#pragma unroll
        for (int kt = 0; kt < HEAD_DIM / 16; ++kt) {
#if Q_IN_REGS
            const u32(&a)[4] = qf[kt];
#else
            u32 a[4];
            ldmatrix_x4(a, sQ + (warp * 16 + lrow + (li & 1) * 8) * ROW + kt * 16 + (li >> 1) * 8);
#endif
#pragma unroll
            for (int np = 0; np < BC / 16; ++np) {
                u32 bf[4];
                ldmatrix_x4(bf, sK + (np * 16 + lrow + (li >> 1) * 8) * ROW + kt * 16 + (li & 1) * 8);
                mma_16816<T>(s[2 * np], a, bf[0], bf[1]);
                mma_16816<T>(s[2 * np + 1], a, bf[2], bf[3]);
            }
        }

        // Scale, mask, and the online softmax update.
        float tile_max[2] = {NEG_INF, NEG_INF};
#pragma unroll
        for (int t = 0; t < BC / 8; ++t) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                int r = e >> 1, key = k0 + t * 8 + lc + (e & 1);
                float v = s[t][e] * scale_log2;
                bool visible = key < tk && (!causal || key <= qi[r] + shift);
                if (visible && gM && qi[r] < tq) v += load_f32(gM[qi[r] * m_sq + key * m_sk]) * LOG2E;
                v = visible ? v : NEG_INF;
                s[t][e] = v;
                tile_max[r] = fmaxf(tile_max[r], v);
            }
        }
        float alpha[2], m_use[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
            tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
            float m_new = fmaxf(m[r], tile_max[r]);
            // A row with no visible key yet keeps m = -inf; exponentiate
            // against 0 so that every p (and alpha) is exactly 0, not NaN.
            m_use[r] = m_new == NEG_INF ? 0.0f : m_new;
            alpha[r] = exp2f(m[r] - m_use[r]);
            m[r] = m_new;
            l[r] *= alpha[r];
        }
#pragma unroll
        for (int t = 0; t < BC / 8; ++t) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                float p = exp2f(s[t][e] - m_use[e >> 1]);
                s[t][e] = p;
                l[e >> 1] += p;
            }
        }
#pragma unroll
        for (int d = 0; d < HEAD_DIM / 8; ++d) {
            o[d][0] *= alpha[0];
            o[d][1] *= alpha[0];
            o[d][2] *= alpha[1];
            o[d][3] *= alpha[1];
        }

        cp_async_wait<0>();
        __syncthreads(); // V_j arrived; every warp is done with K_j
        if (j + 1 < tiles) load_rows(sK, gK + (i64)(k0 + BC) * k_st, k_st, tk - k0 - BC);
        cp_async_commit();

        // O += P V_j, keys in 4 steps of 16.
#pragma unroll
        for (int kk = 0; kk < BC / 16; ++kk) {
            u32 a[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]), pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                        pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int dp = 0; dp < HEAD_DIM / 16; ++dp) {
                u32 bf[4];
                ldmatrix_x4_trans(bf, sV + (kk * 16 + lrow + (li & 1) * 8) * ROW + dp * 16 + (li >> 1) * 8);
                mma_16816<T>(o[2 * dp], a, bf[0], bf[1]);
                mma_16816<T>(o[2 * dp + 1], a, bf[2], bf[3]);
            }
        }
    }
    cp_async_wait<0>();

    // Normalise and store rows below tq, columns below dv.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
    bool pairs = (dv & 1) == 0;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        if (qi[r] >= tq) continue;
        float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        T* dst = O + (((i64)b * hq + h) * tq + qi[r]) * dv;
#pragma unroll
        for (int d = 0; d < HEAD_DIM / 8; ++d) {
            int col = d * 8 + lc;
            float lo = o[d][2 * r] * inv, hi = o[d][2 * r + 1] * inv;
            if (pairs && col + 1 < dv) {
                *(u32*)(dst + col) = pack2<T>(lo, hi);
            } else {
                if (col < dv) dst[col] = store_f32<T>(lo);
                if (col + 1 < dv) dst[col + 1] = store_f32<T>(hi);
            }
        }
    }
}

#define ATTENTION(N, T)                                                                                                              \
    extern "C" __global__ void __launch_bounds__(128)                                                                               \
        attention_fwd_##N(T* O, const T* Q, const T* K, const T* V, const T* mask, int hq, int hkv, int tq, int tk, int dv, i64 q_sb, \
                          i64 q_sh, i64 q_st, i64 k_sb, i64 k_sh, i64 k_st, i64 v_sb, i64 v_sh, i64 v_st, i64 m_sb, i64 m_sh,         \
                          i64 m_sq, i64 m_sk, float scale_log2, int causal) {                                                        \
        attention_fwd<T>(O, Q, K, V, mask, hq, hkv, tq, tk, dv, q_sb, q_sh, q_st, k_sb, k_sh, k_st, v_sb, v_sh, v_st, m_sb, m_sh,     \
                         m_sq, m_sk, scale_log2, causal);                                                                            \
    }
ATTENTION(f16, f16)
ATTENTION(bf16, bf16)

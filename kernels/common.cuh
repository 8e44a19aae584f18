// Shared definitions of every Tessera CUDA kernel file.
//
// What is here: fixed-width integer names; the storage type of every dtype
// (f32, f16, bf16, f8e4m3, f8e5m2, u8, u32, i64) with its load, store and
// conversion, the one vocabulary every kernel uses (`load_f32`,
// `store_f32<T>`, `load_i64`, `store_i64<T>`, `load_value`), so a new dtype
// is added here and nowhere else; strided layouts (`Strided`: up to MAX_DIMS
// dims, strides in elements); warp/block reductions; the cp.async, ldmatrix
// and mma.sync wrappers. f16 and bf16 are plain 16-bit patterns converted
// with PTX `cvt`, so no toolkit header is needed and NVRTC compiles these
// files alone. FP8 (OCP E4M3 / E5M2) converts exactly as the CPU backend
// (crates/tensor/src/dtype.rs), bit for bit.
//
// Limits: sm_80 or newer (bf16 conversions and the tensor-core paths use
// sm_80 PTX). Layouts have at most MAX_DIMS dims after the host merges
// contiguous dims.
#pragma once

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

#define MAX_DIMS 8

// Unsigned words of 1, 2, 4 or 8 bytes: data movement is by element size.
template <int BYTES> struct Word;
template <> struct Word<1> {
    typedef u8 T;
};
template <> struct Word<2> {
    typedef u16 T;
};
template <> struct Word<4> {
    typedef u32 T;
};
template <> struct Word<8> {
    typedef u64 T;
};

struct f16 {
    u16 bits;
};
struct bf16 {
    u16 bits;
};

// ---------------------------------------------------------------- floats

__device__ __forceinline__ float f16_to_f32(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ u16 f32_to_f16(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
__device__ __forceinline__ float bf16_to_f32(u16 h) { return __uint_as_float(((u32)h) << 16); }
__device__ __forceinline__ u16 f32_to_bf16(float f) {
    u16 h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
// Two floats rounded into one 32-bit register: `lo` in the low half.
__device__ __forceinline__ u32 pack_bf16x2(float lo, float hi) {
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
__device__ __forceinline__ u32 pack_f16x2(float lo, float hi) {
    u32 r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// Two adjacent elements rounded from f32 as one 32-bit word (f16/bf16) or
// two floats; used by the tensor-core epilogues.
template <typename T> __device__ __forceinline__ u32 pack2(float lo, float hi);
template <> __device__ __forceinline__ u32 pack2<f16>(float lo, float hi) { return pack_f16x2(lo, hi); }
template <> __device__ __forceinline__ u32 pack2<bf16>(float lo, float hi) { return pack_bf16x2(lo, hi); }

// ------------------------------------------------------------------- FP8
// OCP FP8 formats. Decoding is exact; encoding rounds to nearest even and
// saturates (infinities included) to the largest finite value; NaN maps to
// the format's NaN. Same algorithm as the CPU backend (crates/tensor/src/dtype.rs).

__device__ __forceinline__ float fp8_decode(u8 bits, int mant_bits, int bias, bool has_inf) {
    float sign = (bits & 0x80) ? -1.0f : 1.0f;
    int mant_mask = (1 << mant_bits) - 1;
    int exp = (bits & 0x7f) >> mant_bits;
    int mant = bits & mant_mask;
    int exp_max = (1 << (7 - mant_bits)) - 1;
    if (exp == exp_max) {
        if (has_inf) return mant == 0 ? sign * __int_as_float(0x7f800000) : __int_as_float(0x7fffffff);
        if (mant == mant_mask) return __int_as_float(0x7fffffff);
    }
    float scale = (float)(1 << mant_bits);
    if (exp == 0) return sign * ((float)mant / scale) * exp2f((float)(1 - bias));
    return sign * (1.0f + (float)mant / scale) * exp2f((float)(exp - bias));
}

__device__ __forceinline__ u32 round_shift_even(u32 v, u32 s) {
    if (s == 0) return v;
    u32 q = v >> s;
    u32 rem = v & ((1u << s) - 1);
    u32 half = 1u << (s - 1);
    return (rem > half || (rem == half && (q & 1))) ? q + 1 : q;
}

__device__ __forceinline__ u8 fp8_encode_abs(float a, int mant_bits, int bias) {
    u32 bits = __float_as_uint(a);
    int f32_exp = (int)((bits >> 23) & 0xff);
    int min_normal_exp = 1 - bias;
    int unbiased = f32_exp - 127;
    u32 shift = 23 - mant_bits;
    u32 encoded;
    if (f32_exp == 0 || unbiased < min_normal_exp) {
        if (f32_exp == 0) return 0;
        u32 sig = (bits & 0x7fffff) | 0x800000;
        int rshift = (min_normal_exp - mant_bits) - (unbiased - 23);
        encoded = rshift >= 32 ? 0 : round_shift_even(sig, (u32)rshift);
    } else {
        u32 e = (u32)(unbiased + bias);
        encoded = (e << mant_bits) + round_shift_even(bits & 0x7fffff, shift);
    }
    return (u8)encoded;
}

__device__ __forceinline__ u8 fp8_encode(float x, int mant_bits, int bias, float maxv, bool has_inf) {
    if (x != x) return has_inf ? 0x7e : 0x7f;
    u8 sign = (__float_as_uint(x) >> 31) ? 0x80 : 0;
    float a = fabsf(x);
    if (a >= maxv) return sign | fp8_encode_abs(maxv, mant_bits, bias);
    return sign | fp8_encode_abs(a, mant_bits, bias);
}

__device__ __forceinline__ float e4m3_to_f32(u8 b) { return fp8_decode(b, 3, 7, false); }
__device__ __forceinline__ float e5m2_to_f32(u8 b) { return fp8_decode(b, 2, 15, true); }
__device__ __forceinline__ u8 f32_to_e4m3(float x) { return fp8_encode(x, 3, 7, 448.0f, false); }
__device__ __forceinline__ u8 f32_to_e5m2(float x) { return fp8_encode(x, 2, 15, 57344.0f, true); }

// ------------------------------------------------- the dtype vocabulary
// Storage types: f32 is `float`, integers are u8 / u32 / i64, and the
// 16-bit and 8-bit floats are bit patterns in a struct of their own.

struct e4m3 {
    u8 bits;
};
struct e5m2 {
    u8 bits;
};

// Any dtype to f32: floats exactly (FP8 decoded), integers rounded to nearest.
__device__ __forceinline__ float load_f32(float x) { return x; }
__device__ __forceinline__ float load_f32(f16 x) { return f16_to_f32(x.bits); }
__device__ __forceinline__ float load_f32(bf16 x) { return bf16_to_f32(x.bits); }
__device__ __forceinline__ float load_f32(e4m3 x) { return e4m3_to_f32(x.bits); }
__device__ __forceinline__ float load_f32(e5m2 x) { return e5m2_to_f32(x.bits); }
__device__ __forceinline__ float load_f32(u8 x) { return (float)x; }
__device__ __forceinline__ float load_f32(u32 x) { return __uint2float_rn(x); }
__device__ __forceinline__ float load_f32(i64 x) { return __ll2float_rn(x); }

// f32 to any dtype, rounded once: floats to nearest even (FP8 saturating as
// fp8_encode says), integers toward zero with saturation, NaN to 0 (PTX cvt).
template <typename T> __device__ __forceinline__ T store_f32(float x);
template <> __device__ __forceinline__ float store_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ f16 store_f32<f16>(float x) {
    f16 r;
    r.bits = f32_to_f16(x);
    return r;
}
template <> __device__ __forceinline__ bf16 store_f32<bf16>(float x) {
    bf16 r;
    r.bits = f32_to_bf16(x);
    return r;
}
template <> __device__ __forceinline__ e4m3 store_f32<e4m3>(float x) {
    e4m3 r;
    r.bits = f32_to_e4m3(x);
    return r;
}
template <> __device__ __forceinline__ e5m2 store_f32<e5m2>(float x) {
    e5m2 r;
    r.bits = f32_to_e5m2(x);
    return r;
}
template <> __device__ __forceinline__ u8 store_f32<u8>(float x) {
    u32 v = __float2uint_rz(x);
    return (u8)(v > 255u ? 255u : v);
}
template <> __device__ __forceinline__ u32 store_f32<u32>(float x) { return __float2uint_rz(x); }
template <> __device__ __forceinline__ i64 store_f32<i64>(float x) { return __float2ll_rz(x); }

// Integers widen to i64 and narrow back by wrapping (two's complement).
__device__ __forceinline__ i64 load_i64(u8 x) { return (i64)x; }
__device__ __forceinline__ i64 load_i64(u32 x) { return (i64)x; }
__device__ __forceinline__ i64 load_i64(i64 x) { return x; }
template <typename T> __device__ __forceinline__ T store_i64(i64 x) { return (T)(u64)x; }

template <typename T> struct IsInt {
    static const bool value = false;
};
template <> struct IsInt<u8> {
    static const bool value = true;
};
template <> struct IsInt<u32> {
    static const bool value = true;
};
template <> struct IsInt<i64> {
    static const bool value = true;
};

// The value a reduction computes on: f32 for the compute floats, i64 for
// integers.
__device__ __forceinline__ float load_value(float x) { return x; }
__device__ __forceinline__ float load_value(f16 x) { return load_f32(x); }
__device__ __forceinline__ float load_value(bf16 x) { return load_f32(x); }
__device__ __forceinline__ i64 load_value(u8 x) { return load_i64(x); }
__device__ __forceinline__ i64 load_value(u32 x) { return load_i64(x); }
__device__ __forceinline__ i64 load_value(i64 x) { return x; }

// Any dtype to any dtype: integers to integers through i64 (wrapping),
// everything else through f32.
template <typename TO, typename TI> __device__ __forceinline__ TO convert(TI x) {
    if constexpr (IsInt<TI>::value && IsInt<TO>::value) return store_i64<TO>(load_i64(x));
    else return store_f32<TO>(load_f32(x));
}

// ---------------------------------------------------------------- layouts

// A strided view: `rank` dims (outermost first), strides in elements. The
// host merges dims that are contiguous in every operand, so most views reach
// the kernel with rank 1 or 2.
struct Strided {
    int rank;
    int pad;
    i64 dims[MAX_DIMS];
    i64 strides[MAX_DIMS];
};

// Storage offset (in elements) of logical row-major element `i`. Kept out
// of line: it serves the rare views beyond 2^31 elements, and inlining its
// eight 64-bit divisions into every kernel would multiply compile time.
__device__ __noinline__ i64 strided_offset(const Strided& l, i64 i) {
    i64 off = 0;
#pragma unroll
    for (int d = MAX_DIMS - 1; d >= 0; --d) {
        if (d < l.rank) {
            i64 n = l.dims[d];
            i64 q = i / n;
            off += (i - q * n) * l.strides[d];
            i = q;
        }
    }
    return off;
}

// The same for 32-bit indices (views whose element count fits in 31 bits).
__device__ __forceinline__ i64 strided_offset32(const Strided& l, u32 i) {
    i64 off = 0;
#pragma unroll
    for (int d = MAX_DIMS - 1; d >= 0; --d) {
        if (d < l.rank) {
            u32 n = (u32)l.dims[d];
            u32 q = i / n;
            off += (i64)(i - q * n) * l.strides[d];
            i = q;
        }
    }
    return off;
}

// Offset of logical element `i` of a view of `n` elements: 32-bit index
// arithmetic when `n` fits (the common case), the out-of-line 64-bit walk
// otherwise. `n` is uniform, so the branch does not diverge.
__device__ __forceinline__ i64 offset_of(const Strided& l, i64 i, i64 n) {
    return n < (1ll << 31) ? strided_offset32(l, (u32)i) : strided_offset(l, i);
}

// Grid-stride loop over `n` items with 64-bit indices.
#define GRID_LOOP(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

// 16 bytes of elements, for vector loads and stores of dense data.
template <typename T> struct alignas(16) Vec16 {
    T v[16 / sizeof(T)];
};

__device__ __forceinline__ bool aligned16(const void* p) { return ((u64)p & 15) == 0; }

// ------------------------------------------------------------- reductions

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every
// thread gets the result. `scratch` holds 32 floats; reusable after return.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : -__int_as_float(0x7f800000);
    return warp_max(v);
}

// ------------------------------------------------------- async copies (sm_80)

__device__ __forceinline__ u32 smem_addr(const void* p) { return (u32)__cvta_generic_to_shared(p); }

// 16-byte global-to-shared copy; `valid == false` writes zeros and reads nothing.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
    int src_size = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(src_size));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

// ------------------------------------------------------ tensor-core helpers

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i.
__device__ __forceinline__ void ldmatrix_x4(u32 (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(u32 (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

// D = A * B + D for one m16n8k16 tile, f32 accumulators. A: 4 registers of
// two b16 each (row-major fragment), B: 2 registers (column-major fragment).
template <typename T> __device__ __forceinline__ void mma_16816(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1);
template <> __device__ __forceinline__ void mma_16816<bf16>(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma_16816<f16>(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

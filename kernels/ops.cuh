// Stable op codes of every Tessera CUDA kernel that takes an op as an
// argument, and the device functions that dispatch on them.
//
// Each code is written once here and once in crates/cuda/src/codes.rs (as
// explicit constants, never enum positions); a test there parses this file
// and checks that both sides agree name for name and value for value. A new
// op gets a new number; existing numbers never change. A code this file does
// not know stops the kernel with `__trap()` (the launch then fails with an
// error the host reports), so an op can never silently run as another.
//
// Limits: float ops compute in f32; integer ops in 64 bits, wrapping.
#pragma once
#include "common.cuh"

// ------------------------------------------------------------- unary ops

#define UNARY_NEG 0
#define UNARY_ABS 1
#define UNARY_EXP 2
#define UNARY_LOG 3
#define UNARY_SQRT 4
#define UNARY_RSQRT 5
#define UNARY_RECIP 6
#define UNARY_SQUARE 7
#define UNARY_TANH 8
#define UNARY_SIGMOID 9
#define UNARY_RELU 10
#define UNARY_SILU 11
#define UNARY_GELU 12
#define UNARY_GELU_TANH 13
#define UNARY_QUICK_GELU 14
#define UNARY_SIN 15
#define UNARY_COS 16
// No activation: the epilogues of matmul.cu skip the unary op.
#define ACT_NONE -1

// ------------------------------------------------------------ binary ops

#define BINARY_ADD 0
#define BINARY_SUB 1
#define BINARY_MUL 2
#define BINARY_DIV 3
#define BINARY_MAXIMUM 4
#define BINARY_MINIMUM 5
#define BINARY_POW 6

// ----------------------------------------------------------- comparisons

#define CMP_EQ 0
#define CMP_NE 1
#define CMP_LT 2
#define CMP_LE 3
#define CMP_GT 4
#define CMP_GE 5

// ------------------------------------------------------------ reductions

#define REDUCE_SUM 0
#define REDUCE_MEAN 1
#define REDUCE_MAX 2
#define REDUCE_MIN 3

// Stops the kernel on a code this file does not define.
__device__ __forceinline__ void unknown_op() { __trap(); }

__device__ __forceinline__ float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

// Float unary ops, in f32: the elementwise kernels and the matmul epilogues.
__device__ __forceinline__ float unary_f(int op, float x) {
    switch (op) {
    case UNARY_NEG: return -x;
    case UNARY_ABS: return fabsf(x);
    case UNARY_EXP: return expf(x);
    case UNARY_LOG: return logf(x);
    case UNARY_SQRT: return sqrtf(x);
    case UNARY_RSQRT: return 1.0f / sqrtf(x);
    case UNARY_RECIP: return 1.0f / x;
    case UNARY_SQUARE: return x * x;
    case UNARY_TANH: return tanhf(x);
    case UNARY_SIGMOID: return sigmoidf(x);
    case UNARY_RELU: return x < 0.0f ? 0.0f : x; // NaN propagates
    case UNARY_SILU: return x * sigmoidf(x);
    case UNARY_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case UNARY_GELU_TANH: return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case UNARY_QUICK_GELU: return x * sigmoidf(1.702f * x);
    case UNARY_SIN: return sinf(x);
    case UNARY_COS: return cosf(x);
    default: unknown_op(); return x;
    }
}

// `act(x)`, or `x` for ACT_NONE.
__device__ __forceinline__ float activation(int act, float x) { return act == ACT_NONE ? x : unary_f(act, x); }

// Integer unary ops (the host sends only neg, abs, square and relu).
__device__ __forceinline__ i64 unary_i(int op, i64 x) {
    u64 u = (u64)x;
    switch (op) {
    case UNARY_NEG: return (i64)(0ull - u);
    case UNARY_ABS: return x < 0 ? (i64)(0ull - u) : x;
    case UNARY_SQUARE: return (i64)(u * u);
    case UNARY_RELU: return x < 0 ? 0 : x;
    default: unknown_op(); return x;
    }
}

__device__ __forceinline__ float binary_f(int op, float a, float b) {
    switch (op) {
    case BINARY_ADD: return a + b;
    case BINARY_SUB: return a - b;
    case BINARY_MUL: return a * b;
    case BINARY_DIV: return a / b;
    case BINARY_MAXIMUM: return (a != a || b != b) ? __int_as_float(0x7fffffff) : fmaxf(a, b);
    case BINARY_MINIMUM: return (a != a || b != b) ? __int_as_float(0x7fffffff) : fminf(a, b);
    case BINARY_POW: return powf(a, b);
    default: unknown_op(); return a;
    }
}

// Integer binary ops (pow is float only); division by zero gives 0.
__device__ __forceinline__ i64 binary_i(int op, i64 a, i64 b) {
    switch (op) {
    case BINARY_ADD: return (i64)((u64)a + (u64)b);
    case BINARY_SUB: return (i64)((u64)a - (u64)b);
    case BINARY_MUL: return (i64)((u64)a * (u64)b);
    case BINARY_DIV: return (b == 0 || (b == -1 && a == (i64)0x8000000000000000ull)) ? 0 : a / b;
    case BINARY_MAXIMUM: return a > b ? a : b;
    case BINARY_MINIMUM: return a < b ? a : b;
    default: unknown_op(); return a;
    }
}

template <typename T> __device__ __forceinline__ u8 cmp(int op, T a, T b) {
    switch (op) {
    case CMP_EQ: return a == b;
    case CMP_NE: return a != b;
    case CMP_LT: return a < b;
    case CMP_LE: return a <= b;
    case CMP_GT: return a > b;
    case CMP_GE: return a >= b;
    default: unknown_op(); return 0;
    }
}

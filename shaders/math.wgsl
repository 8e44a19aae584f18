// math.wgsl: the scalar float functions of the elementwise ops, with
// IEEE results at the edges whatever the driver's (NaN, infinities, zero
// divisors), shared by every kernel that applies an op to a value:
// elementwise.wgsl, and the epilogues of matmul.wgsl and matmul_rt.wgsl
// (a layer's activation). `unary_expr` in crates/wgpu/src/ops/elementwise.rs
// maps each unary op to its function here.
// Algorithms: GELU from erfc (Numerical Recipes' Chebyshev fit, relative
// error below 1.2e-7), tanh by a series near 0 and exp elsewhere, C's pow
// special cases; exp_f/log_f/max_f/min_f live in common.wgsl.
// Limits: f32 arithmetic; sin/cos as accurate as the driver's.

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;

// erfc with a relative error below 1.2e-7 everywhere (the Chebyshev-fitted
// form of Numerical Recipes' erfcc), so that GELU keeps its relative
// accuracy where 1 + erf(x) cancels.
fn erfc_pos(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp_f(r);
}

fn erfc_f(z: f32) -> f32 {
    if (z >= 0.0) {
        return erfc_pos(z);
    }
    return 2.0 - erfc_pos(-z);
}

fn tanh_f(x: f32) -> f32 {
    if (is_nan(x)) {
        return x;
    }
    let a = abs(x);
    if (a > 10.0) {
        return select(1.0, -1.0, x < 0.0);
    }
    if (a < 0.5) {
        // Series of tanh(x)/x in x^2: 1 - 2/(e^2x + 1) cancels near zero.
        let x2 = x * x;
        let s = ((((((-0.0014558343 * x2 + 0.0035921280) * x2 - 0.0088632355) * x2 + 0.0218694885) * x2 - 0.0539682540) * x2
            + 0.1333333333) * x2 - 0.3333333333) * x2 + 1.0;
        return x * s;
    }
    return 1.0 - 2.0 / (exp_f(2.0 * x) + 1.0);
}

fn sigmoid_f(x: f32) -> f32 {
    return 1.0 / (1.0 + exp_f(-x));
}

fn sqrt_f(x: f32) -> f32 {
    if (is_nan(x) || x < 0.0) {
        return nan_f32();
    }
    if (is_inf(x) || x == 0.0) {
        return x;
    }
    return sqrt(x);
}

fn recip_f(x: f32) -> f32 {
    if (x == 0.0) {
        return inf_f32((bitcast<u32>(x) & 0x80000000u) != 0u);
    }
    if (is_inf(x)) {
        return select(0.0, -0.0, x < 0.0);
    }
    return 1.0 / x;
}

fn relu_f(x: f32) -> f32 {
    if (is_nan(x)) {
        return x;
    }
    return max(x, 0.0);
}

fn gelu_f(x: f32) -> f32 {
    return 0.5 * x * erfc_f(-x * 0.7071067811865476);
}

fn gelu_tanh_f(x: f32) -> f32 {
    return 0.5 * x * (1.0 + tanh_f(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

fn sin_f(x: f32) -> f32 {
    if (is_nan(x) || is_inf(x)) {
        return nan_f32();
    }
    return sin(x);
}

fn cos_f(x: f32) -> f32 {
    if (is_nan(x) || is_inf(x)) {
        return nan_f32();
    }
    return cos(x);
}

fn div_f(a: f32, b: f32) -> f32 {
    if (b == 0.0) {
        if (a == 0.0 || is_nan(a)) {
            return nan_f32();
        }
        let neg = ((bitcast<u32>(a) ^ bitcast<u32>(b)) & 0x80000000u) != 0u;
        return inf_f32(neg);
    }
    if (is_inf(b)) {
        if (is_inf(a) || is_nan(a)) {
            return nan_f32();
        }
        let neg = ((bitcast<u32>(a) ^ bitcast<u32>(b)) & 0x80000000u) != 0u;
        return select(0.0, -0.0, neg);
    }
    return a / b;
}

fn is_odd_integer(y: f32) -> bool {
    return abs(y) < 16777216.0 && trunc(y) == y && (i32(trunc(y)) & 1) == 1;
}

// powf with C's special cases (pow(x, 0) = 1, pow(1, y) = 1, negative bases
// with integer exponents).
fn pow_f(x: f32, y: f32) -> f32 {
    if (y == 0.0 || x == 1.0) {
        return 1.0;
    }
    if (is_nan(x) || is_nan(y)) {
        return nan_f32();
    }
    if (x == 0.0) {
        let odd = is_odd_integer(y);
        if (y < 0.0) {
            return inf_f32(odd && (bitcast<u32>(x) & 0x80000000u) != 0u);
        }
        return select(0.0, x, odd);
    }
    let ax = abs(x);
    if (is_inf(y)) {
        if (ax == 1.0) {
            return 1.0;
        }
        return select(0.0, inf_f32(false), (ax > 1.0) == (y > 0.0));
    }
    if (is_inf(x)) {
        let m = select(0.0, inf_f32(false), y > 0.0);
        return select(m, -m, x < 0.0 && is_odd_integer(y));
    }
    let m = exp2_f(y * log2(ax));
    if (x < 0.0) {
        if (trunc(y) != y) {
            return nan_f32();
        }
        if (is_odd_integer(y)) {
            return -m;
        }
    }
    return m;
}

fn exp2_f(x: f32) -> f32 {
    if (x < -150.0) {
        return 0.0;
    }
    if (x > 128.0) {
        return inf_f32(false);
    }
    return exp2(x);
}

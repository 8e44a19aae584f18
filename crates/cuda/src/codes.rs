//! Stable op codes, the Rust half of kernels/ops.cuh.
//!
//! Every op a kernel takes as an argument has a fixed number, written once
//! here and once in ops.cuh; the test below parses the header and checks
//! that both agree, name for name. The functions map the core's enums with
//! exhaustive matches, so a new enum variant does not compile until it has
//! a code, and inserting a variant changes no existing code. The kernels
//! trap on a code they do not know.

use tessera_tensor::{BinaryOp, CmpOp, ReduceOp, UnaryOp};

pub const UNARY_NEG: i32 = 0;
pub const UNARY_ABS: i32 = 1;
pub const UNARY_EXP: i32 = 2;
pub const UNARY_LOG: i32 = 3;
pub const UNARY_SQRT: i32 = 4;
pub const UNARY_RSQRT: i32 = 5;
pub const UNARY_RECIP: i32 = 6;
pub const UNARY_SQUARE: i32 = 7;
pub const UNARY_TANH: i32 = 8;
pub const UNARY_SIGMOID: i32 = 9;
pub const UNARY_RELU: i32 = 10;
pub const UNARY_SILU: i32 = 11;
pub const UNARY_GELU: i32 = 12;
pub const UNARY_GELU_TANH: i32 = 13;
pub const UNARY_QUICK_GELU: i32 = 14;
pub const UNARY_SIN: i32 = 15;
pub const UNARY_COS: i32 = 16;
/// No activation in a matmul epilogue.
pub const ACT_NONE: i32 = -1;

pub const BINARY_ADD: i32 = 0;
pub const BINARY_SUB: i32 = 1;
pub const BINARY_MUL: i32 = 2;
pub const BINARY_DIV: i32 = 3;
pub const BINARY_MAXIMUM: i32 = 4;
pub const BINARY_MINIMUM: i32 = 5;
pub const BINARY_POW: i32 = 6;

pub const CMP_EQ: i32 = 0;
pub const CMP_NE: i32 = 1;
pub const CMP_LT: i32 = 2;
pub const CMP_LE: i32 = 3;
pub const CMP_GT: i32 = 4;
pub const CMP_GE: i32 = 5;

pub const REDUCE_SUM: i32 = 0;
pub const REDUCE_MEAN: i32 = 1;
pub const REDUCE_MAX: i32 = 2;
pub const REDUCE_MIN: i32 = 3;

/// Every code by its name in ops.cuh (what the header test compares).
pub const ALL: &[(&str, i32)] = &[
    ("UNARY_NEG", UNARY_NEG),
    ("UNARY_ABS", UNARY_ABS),
    ("UNARY_EXP", UNARY_EXP),
    ("UNARY_LOG", UNARY_LOG),
    ("UNARY_SQRT", UNARY_SQRT),
    ("UNARY_RSQRT", UNARY_RSQRT),
    ("UNARY_RECIP", UNARY_RECIP),
    ("UNARY_SQUARE", UNARY_SQUARE),
    ("UNARY_TANH", UNARY_TANH),
    ("UNARY_SIGMOID", UNARY_SIGMOID),
    ("UNARY_RELU", UNARY_RELU),
    ("UNARY_SILU", UNARY_SILU),
    ("UNARY_GELU", UNARY_GELU),
    ("UNARY_GELU_TANH", UNARY_GELU_TANH),
    ("UNARY_QUICK_GELU", UNARY_QUICK_GELU),
    ("UNARY_SIN", UNARY_SIN),
    ("UNARY_COS", UNARY_COS),
    ("ACT_NONE", ACT_NONE),
    ("BINARY_ADD", BINARY_ADD),
    ("BINARY_SUB", BINARY_SUB),
    ("BINARY_MUL", BINARY_MUL),
    ("BINARY_DIV", BINARY_DIV),
    ("BINARY_MAXIMUM", BINARY_MAXIMUM),
    ("BINARY_MINIMUM", BINARY_MINIMUM),
    ("BINARY_POW", BINARY_POW),
    ("CMP_EQ", CMP_EQ),
    ("CMP_NE", CMP_NE),
    ("CMP_LT", CMP_LT),
    ("CMP_LE", CMP_LE),
    ("CMP_GT", CMP_GT),
    ("CMP_GE", CMP_GE),
    ("REDUCE_SUM", REDUCE_SUM),
    ("REDUCE_MEAN", REDUCE_MEAN),
    ("REDUCE_MAX", REDUCE_MAX),
    ("REDUCE_MIN", REDUCE_MIN),
];

pub fn unary(op: UnaryOp) -> i32 {
    match op {
        UnaryOp::Neg => UNARY_NEG,
        UnaryOp::Abs => UNARY_ABS,
        UnaryOp::Exp => UNARY_EXP,
        UnaryOp::Log => UNARY_LOG,
        UnaryOp::Sqrt => UNARY_SQRT,
        UnaryOp::Rsqrt => UNARY_RSQRT,
        UnaryOp::Recip => UNARY_RECIP,
        UnaryOp::Square => UNARY_SQUARE,
        UnaryOp::Tanh => UNARY_TANH,
        UnaryOp::Sigmoid => UNARY_SIGMOID,
        UnaryOp::Relu => UNARY_RELU,
        UnaryOp::Silu => UNARY_SILU,
        UnaryOp::Gelu => UNARY_GELU,
        UnaryOp::GeluTanh => UNARY_GELU_TANH,
        UnaryOp::QuickGelu => UNARY_QUICK_GELU,
        UnaryOp::Sin => UNARY_SIN,
        UnaryOp::Cos => UNARY_COS,
    }
}

/// An epilogue activation: a unary code, or [`ACT_NONE`].
pub fn activation(act: Option<UnaryOp>) -> i32 {
    act.map_or(ACT_NONE, unary)
}

pub fn binary(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => BINARY_ADD,
        BinaryOp::Sub => BINARY_SUB,
        BinaryOp::Mul => BINARY_MUL,
        BinaryOp::Div => BINARY_DIV,
        BinaryOp::Maximum => BINARY_MAXIMUM,
        BinaryOp::Minimum => BINARY_MINIMUM,
        BinaryOp::Pow => BINARY_POW,
    }
}

pub fn compare(op: CmpOp) -> i32 {
    match op {
        CmpOp::Eq => CMP_EQ,
        CmpOp::Ne => CMP_NE,
        CmpOp::Lt => CMP_LT,
        CmpOp::Le => CMP_LE,
        CmpOp::Gt => CMP_GT,
        CmpOp::Ge => CMP_GE,
    }
}

pub fn reduce(op: ReduceOp) -> i32 {
    match op {
        ReduceOp::Sum => REDUCE_SUM,
        ReduceOp::Mean => REDUCE_MEAN,
        ReduceOp::Max => REDUCE_MAX,
        ReduceOp::Min => REDUCE_MIN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// `#define NAME VALUE` lines of ops.cuh with an integer value.
    fn header_codes() -> BTreeMap<String, i32> {
        crate::compile::OPS_HEADER
            .1
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == "#define").then_some(())?;
                let (name, value) = (w.next()?, w.next()?);
                Some((name.to_string(), value.parse::<i32>().ok()?))
            })
            .collect()
    }

    #[test]
    fn header_and_rust_codes_agree() {
        let header = header_codes();
        let rust: BTreeMap<String, i32> = ALL.iter().map(|&(n, v)| (n.to_string(), v)).collect();
        assert_eq!(rust.len(), ALL.len(), "a name is listed twice in codes::ALL");
        assert_eq!(header, rust, "kernels/ops.cuh and crates/cuda/src/codes.rs disagree");
    }

    #[test]
    fn codes_are_unique_within_each_family() {
        for family in ["UNARY_", "BINARY_", "CMP_", "REDUCE_"] {
            let values: Vec<i32> = ALL.iter().filter(|(n, _)| n.starts_with(family)).map(|&(_, v)| v).collect();
            let set: BTreeSet<i32> = values.iter().copied().collect();
            assert_eq!(set.len(), values.len(), "{family} codes repeat: {values:?}");
        }
        assert!(!ALL.iter().any(|&(n, v)| n.starts_with("UNARY_") && v == ACT_NONE));
    }

    #[test]
    fn every_enum_variant_maps_to_its_named_code() {
        let named = |name: &str| ALL.iter().find(|(n, _)| *n == name).map(|&(_, v)| v);
        let upper = |s: &str| s.to_ascii_uppercase();
        for op in UnaryOp::ALL {
            assert_eq!(Some(unary(op)), named(&format!("UNARY_{}", upper(op.name()))), "{op:?}");
        }
        for op in BinaryOp::ALL {
            assert_eq!(Some(binary(op)), named(&format!("BINARY_{}", upper(op.name()))), "{op:?}");
        }
        for op in CmpOp::ALL {
            assert_eq!(Some(compare(op)), named(&format!("CMP_{}", upper(op.name()))), "{op:?}");
        }
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
            assert_eq!(Some(reduce(op)), named(&format!("REDUCE_{}", upper(op.name()))), "{op:?}");
        }
        assert_eq!(activation(None), ACT_NONE);
    }
}

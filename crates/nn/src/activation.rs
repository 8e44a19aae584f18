//! Pointwise activations, named as Hugging Face configs name them
//! (`hidden_act`, `hidden_activation`, ...).

use crate::{Error, Module, Result};
use std::fmt;
use std::str::FromStr;
use tessera_tensor::{Tensor, UnaryOp};

/// A pointwise activation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// Exact GELU, `x * Φ(x)` (HF `"gelu"`, `"gelu_python"`).
    Gelu,
    /// Tanh-approximated GELU (HF `"gelu_new"`, `"gelu_pytorch_tanh"`,
    /// `"gelu_fast"`, `"gelu_accurate"`).
    GeluTanh,
    /// `x * sigmoid(1.702 x)` (HF `"quick_gelu"`, used by CLIP).
    QuickGelu,
    /// `x * sigmoid(x)` (HF `"silu"`, `"swish"`).
    Silu,
    /// `max(x, 0)` (HF `"relu"`).
    Relu,
    /// `sigmoid(x)` (HF `"sigmoid"`).
    Sigmoid,
    /// `tanh(x)` (HF `"tanh"`).
    Tanh,
    /// The identity (HF `"linear"`, `"identity"`).
    Identity,
}

/// HF names and what they map to.
const HF_NAMES: [(&str, Activation); 15] = [
    ("gelu", Activation::Gelu),
    ("gelu_python", Activation::Gelu),
    ("gelu_new", Activation::GeluTanh),
    ("gelu_pytorch_tanh", Activation::GeluTanh),
    ("gelu_fast", Activation::GeluTanh),
    ("gelu_accurate", Activation::GeluTanh),
    ("quick_gelu", Activation::QuickGelu),
    ("silu", Activation::Silu),
    ("swish", Activation::Silu),
    ("relu", Activation::Relu),
    ("sigmoid", Activation::Sigmoid),
    ("tanh", Activation::Tanh),
    ("linear", Activation::Identity),
    ("identity", Activation::Identity),
    ("none", Activation::Identity),
];

impl Activation {
    /// The activation a Hugging Face config names (`"gelu"`, `"gelu_new"`,
    /// `"gelu_pytorch_tanh"`, `"quick_gelu"`, `"silu"`, `"swish"`, `"relu"`,
    /// ...); case-insensitive. Unknown names are an error listing the
    /// supported ones.
    pub fn from_hf_name(name: &str) -> Result<Activation> {
        let lower = name.trim().to_ascii_lowercase();
        HF_NAMES.iter().find(|(n, _)| *n == lower).map(|&(_, a)| a).ok_or_else(|| {
            let known: Vec<&str> = HF_NAMES.iter().map(|(n, _)| *n).collect();
            Error::invalid("activation", format!("unknown activation '{name}' (supported: {})", known.join(", ")))
        })
    }

    /// The canonical HF name of this activation.
    pub fn hf_name(self) -> &'static str {
        match self {
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_pytorch_tanh",
            Activation::QuickGelu => "quick_gelu",
            Activation::Silu => "silu",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Identity => "linear",
        }
    }

    /// The tensor op computing this activation; `None` for the identity.
    pub fn unary_op(self) -> Option<UnaryOp> {
        match self {
            Activation::Gelu => Some(UnaryOp::Gelu),
            Activation::GeluTanh => Some(UnaryOp::GeluTanh),
            Activation::QuickGelu => Some(UnaryOp::QuickGelu),
            Activation::Silu => Some(UnaryOp::Silu),
            Activation::Relu => Some(UnaryOp::Relu),
            Activation::Sigmoid => Some(UnaryOp::Sigmoid),
            Activation::Tanh => Some(UnaryOp::Tanh),
            Activation::Identity => None,
        }
    }

    /// Applies the activation elementwise.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self.unary_op() {
            Some(op) => Ok(x.unary(op)?),
            None => Ok(x.clone()),
        }
    }
}

impl Module for Activation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x)
    }
}

impl FromStr for Activation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Activation> {
        Activation::from_hf_name(s)
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hf_name())
    }
}

/// Reads an HF activation name from a config (`"hidden_act": "gelu_new"`).
impl<'de> serde::Deserialize<'de> for Activation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Activation::from_hf_name(&name).map_err(serde::de::Error::custom)
    }
}

/// Writes the canonical HF name.
impl serde::Serialize for Activation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(self.hf_name())
    }
}

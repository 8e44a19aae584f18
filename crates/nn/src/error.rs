//! The error type of the layer crate: weight-map failures that name the full
//! tensor name, invalid layer or sampler arguments, and every tensor-core
//! error, wrapped unchanged.

use std::fmt;

/// A failure caused by a checkpoint, a configuration or an input; never a
/// bug report. Every weight error carries the full dotted tensor name.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source holds no tensor of this (fully prefixed) name.
    #[error("missing tensor '{name}'")]
    MissingTensor {
        /// The full dotted name, e.g. `vision_model.encoder.layers.3.self_attn.q_proj.weight`.
        name: String,
    },

    /// The tensor exists but its shape is not the one the layer needs.
    #[error("tensor '{name}' has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The full dotted name.
        name: String,
        /// The shape the layer asked for.
        expected: Vec<usize>,
        /// The shape the source holds.
        actual: Vec<usize>,
    },

    /// The tensor holds integers where the layer needs floats.
    #[error("tensor '{name}' has dtype {actual}, expected a float tensor (the model computes in {expected})")]
    DTypeMismatch {
        /// The full dotted name.
        name: String,
        /// The dtype the model computes in.
        expected: tessera_tensor::DType,
        /// The dtype the source holds.
        actual: tessera_tensor::DType,
    },

    /// Reading, moving or casting a tensor of the source failed.
    #[error("loading tensor '{name}': {source}")]
    Load {
        /// The full dotted name.
        name: String,
        /// What the tensor core reported.
        #[source]
        source: tessera_tensor::Error,
    },

    /// The weight errors of one checkpoint, collected by a
    /// [`crate::VarBuilder`] in error-collecting mode (see
    /// [`crate::VarBuilder::collect_errors`]). The message is one line: the
    /// source, the count of each kind and the first few tensors.
    #[error("{}", WeightsDisplay { source_name, errors })]
    Weights {
        /// What the tensors came from (`checkpoint path/model.safetensors`).
        source_name: String,
        /// Every error, in loading order.
        errors: Vec<Error>,
    },

    /// An invalid layer, cache or sampler argument.
    #[error("{op}: {msg}")]
    InvalidArgument {
        /// The function or layer that rejected the argument.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },

    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] tessera_tensor::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::InvalidArgument`].
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument { op, msg: msg.into() }
    }

    /// The full tensor names this error is about (all of them for
    /// [`Error::Weights`]); empty for errors not tied to a tensor.
    pub fn tensor_names(&self) -> Vec<&str> {
        match self {
            Error::MissingTensor { name }
            | Error::ShapeMismatch { name, .. }
            | Error::DTypeMismatch { name, .. }
            | Error::Load { name, .. } => vec![name.as_str()],
            Error::Weights { errors, .. } => errors.iter().flat_map(Error::tensor_names).collect(),
            Error::InvalidArgument { .. } | Error::Tensor(_) => Vec::new(),
        }
    }
}

/// Lets code that returns the core's `Result` call into this crate with `?`.
/// The typed variant is flattened into [`tessera_tensor::Error::InvalidArgument`]
/// (op `"nn"`) whose message is this error's display text, so the tensor name
/// is kept; a wrapped core error is returned unchanged.
impl From<Error> for tessera_tensor::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Tensor(inner) => inner,
            other => tessera_tensor::Error::InvalidArgument { op: "nn", msg: other.to_string() },
        }
    }
}

/// How many collected errors are spelled out before the rest are counted.
const SHOWN_ERRORS: usize = 5;

struct WeightsDisplay<'a> {
    source_name: &'a str,
    errors: &'a [Error],
}

impl fmt::Display for WeightsDisplay<'_> {
    /// `checkpoint X: 212 tensors missing, 1 misshapen: missing tensor 'a';
    /// ...; and 208 more` (one line, whatever the count).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = |pred: fn(&Error) -> bool| self.errors.iter().filter(|e| pred(e)).count();
        let kinds = [
            (count(|e| matches!(e, Error::MissingTensor { .. })), "missing"),
            (count(|e| matches!(e, Error::ShapeMismatch { .. })), "with the wrong shape"),
            (count(|e| matches!(e, Error::DTypeMismatch { .. })), "with an integer dtype"),
        ];
        let other = self.errors.len() - kinds.iter().map(|k| k.0).sum::<usize>();
        write!(f, "{}: ", self.source_name)?;
        let mut parts: Vec<String> =
            kinds.iter().filter(|k| k.0 > 0).map(|&(n, what)| format!("{n} tensor{} {what}", if n == 1 { "" } else { "s" })).collect();
        if other > 0 {
            parts.push(format!("{other} other weight error{}", if other == 1 { "" } else { "s" }));
        }
        write!(f, "{}: ", parts.join(", "))?;
        let shown: Vec<String> = self.errors.iter().take(SHOWN_ERRORS).map(|e| e.to_string().replace('\n', " ")).collect();
        write!(f, "{}", shown.join("; "))?;
        if self.errors.len() > SHOWN_ERRORS {
            write!(f, "; and {} more", self.errors.len() - SHOWN_ERRORS)?;
        }
        Ok(())
    }
}

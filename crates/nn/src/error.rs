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

    /// Reading, moving or casting a tensor of the source failed.
    #[error("loading tensor '{name}': {source}")]
    Load {
        /// The full dotted name.
        name: String,
        /// What the tensor core reported.
        #[source]
        source: tessera_tensor::Error,
    },

    /// Several weight errors, collected by a [`crate::VarBuilder`] in
    /// error-collecting mode (see [`crate::VarBuilder::collect_errors`]).
    #[error("{}", ManyDisplay(.0))]
    Many(Vec<Error>),

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
    /// [`Error::Many`]); empty for errors not tied to a tensor.
    pub fn tensor_names(&self) -> Vec<&str> {
        match self {
            Error::MissingTensor { name } | Error::ShapeMismatch { name, .. } | Error::Load { name, .. } => vec![name.as_str()],
            Error::Many(errors) => errors.iter().flat_map(Error::tensor_names).collect(),
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

struct ManyDisplay<'a>(&'a [Error]);

impl fmt::Display for ManyDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} weight errors:", self.0.len())?;
        for e in self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

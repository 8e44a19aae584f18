//! The one error type of the tensor core. Every variant names the operation
//! and the operands (shapes, dtypes, devices, file positions) that were wrong.

use crate::DType;

/// A failure caused by user input or by the device; never a bug report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}: shape mismatch between {lhs:?} and {rhs:?}")]
    ShapeMismatch { op: &'static str, lhs: Vec<usize>, rhs: Vec<usize> },

    #[error("{op}: dtype mismatch between {lhs} and {rhs} (casts are explicit: call .to_dtype())")]
    DTypeMismatch { op: &'static str, lhs: DType, rhs: DType },

    #[error("{op}: dtype {dtype} is not supported")]
    UnsupportedDType { op: &'static str, dtype: DType },

    #[error("{op}: dimension {dim} is out of range for a tensor of rank {rank}")]
    DimOutOfRange { op: &'static str, dim: isize, rank: usize },

    #[error("{op}: operands live on different devices ({lhs} and {rhs})")]
    DeviceMismatch { op: &'static str, lhs: String, rhs: String },

    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },

    #[error("{op}: the backend {backend} does not implement this operation")]
    NotImplemented { op: &'static str, backend: String },

    #[error("out of memory on {device}: could not allocate {bytes} bytes")]
    OutOfMemory { device: String, bytes: usize },

    #[error("device error on {device}: {msg}")]
    Device { device: String, msg: String },

    #[error("safetensors {file}: {msg}")]
    Safetensors { file: String, msg: String },

    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// An empty vector with room for `len` elements, reserved fallibly: buffers
/// sized by an input (a file, a tensor of a checkpoint, an image) use it, so
/// that a size memory cannot hold is an [`Error::OutOfMemory`] on the CPU
/// naming `what` was being allocated, never an abort.
pub fn try_vec<T>(len: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::OutOfMemory {
        device: if what.is_empty() { "cpu".to_string() } else { format!("cpu ({what})") },
        bytes: len.saturating_mul(std::mem::size_of::<T>()),
    })?;
    Ok(v)
}

impl Error {
    pub(crate) fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument { op, msg: msg.into() }
    }
    pub(crate) fn unsupported(op: &'static str, dtype: DType) -> Self {
        Error::UnsupportedDType { op, dtype }
    }
}

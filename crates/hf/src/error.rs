//! The error type the model crates share: what was wrong with a checkpoint,
//! a config, a tokenizer, an image or an argument, named with the file or
//! input it came from.

use std::path::Path;

/// A failure caused by a checkpoint, a config, an input or the device; never
/// a bug report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config file is not valid JSON or a field has the wrong type or value.
    #[error("config {file}: {msg}")]
    Config {
        /// The file (or a description of the source).
        file: String,
        /// What was wrong.
        msg: String,
    },

    /// The tokenizer could not be loaded or could not encode a text.
    #[error("tokenizer {file}: {msg}")]
    Tokenizer {
        /// The tokenizer file, or the text's position for encoding errors.
        file: String,
        /// What the tokenizer reported.
        msg: String,
    },

    /// An image could not be read or decoded, or has no pixels.
    #[error("image {source_name}: {msg}")]
    Image {
        /// The file name or a description of the input.
        source_name: String,
        /// What was wrong.
        msg: String,
    },

    /// A checkpoint file is malformed or refused: a `torch.save` archive
    /// with a bad zip directory, a pickle that names a global outside the
    /// allow-list, a tensor view outside its storage (the message says
    /// which).
    #[error("checkpoint {file}: {msg}")]
    Checkpoint {
        /// The file (or the name given to an in-memory checkpoint).
        file: String,
        /// What was wrong.
        msg: String,
    },

    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// What the OS reported.
        #[source]
        source: std::io::Error,
    },

    /// A checkpoint that is neither a local directory nor reachable on the
    /// Hugging Face hub.
    #[error("{0}")]
    Hub(String),

    /// An invalid argument (empty label list, batch size 0...).
    #[error("{op}: {msg}")]
    InvalidArgument {
        /// The function that rejected the argument.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },

    /// Strict loading found checkpoint tensors the model does not use (the
    /// message counts them and names the first few).
    #[error("{0}")]
    Unused(String),

    /// A weight was missing or misshapen, or a layer failed (the message
    /// names the tensor).
    #[error(transparent)]
    Nn(#[from] tessera_nn::Error),

    /// A tensor operation or the device failed.
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

    /// An [`Error::Config`] about `file`.
    pub fn config(file: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Config { file: file.into(), msg: msg.into() }
    }

    /// An [`Error::Checkpoint`] about `file`.
    pub fn checkpoint(file: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Checkpoint { file: file.into(), msg: msg.into() }
    }

    /// An [`Error::Image`] about the input `source_name`.
    pub fn image(source_name: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Image { source_name: source_name.into(), msg: msg.into() }
    }

    /// An [`Error::Io`] about `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.display().to_string(), source }
    }

    /// An [`Error::Tokenizer`] about `file`.
    pub fn tokenizer(file: impl Into<String>, msg: impl std::fmt::Display) -> Self {
        Error::Tokenizer { file: file.into(), msg: msg.to_string() }
    }
}

/// Reads a whole regular file, naming it in the error (a FIFO, device or
/// directory is refused; the buffer is allocated fallibly).
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    tessera_tensor::file::read_regular(path).map_err(file_error)
}

/// Reads a whole regular file as UTF-8 text (see [`read_file`]).
pub fn read_text(path: &Path) -> Result<String> {
    tessera_tensor::file::read_regular_to_string(path).map_err(file_error)
}

/// A file error of the tensor core as this crate's [`Error::Io`] (others,
/// such as out of memory, stay tensor errors).
pub(crate) fn file_error(e: tessera_tensor::Error) -> Error {
    match e {
        tessera_tensor::Error::Io { path, source } => Error::Io { path, source },
        other => Error::Tensor(other),
    }
}

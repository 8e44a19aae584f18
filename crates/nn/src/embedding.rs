//! Token (or position) embedding tables.

use crate::{Error, Module, Result, VarBuilder};
use tessera_tensor::Tensor;

/// A lookup table `[vocab, dim]`: integer ids of any shape map to
/// `ids.shape + [dim]`.
#[derive(Clone, Debug)]
pub struct Embedding {
    weight: Tensor,
}

impl Embedding {
    /// A table from its weight `[vocab, dim]`.
    pub fn new(weight: Tensor) -> Result<Embedding> {
        if weight.rank() != 2 {
            return Err(Error::invalid("embedding", format!("weight must be [vocab, dim], got shape {:?}", weight.dims())));
        }
        Ok(Embedding { weight })
    }

    /// Loads `weight` `[vocab, dim]`.
    pub fn load(vb: &VarBuilder, vocab: usize, dim: usize) -> Result<Embedding> {
        Ok(Embedding { weight: vb.get((vocab, dim), "weight")? })
    }

    /// The table `[vocab, dim]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Number of rows.
    pub fn vocab_size(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Width of a row.
    pub fn dim(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Rows for `ids` (u8, u32 or i64); an id out of range is an error.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.weight.embedding(ids)?)
    }
}

impl Module for Embedding {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Embedding::forward(self, ids)
    }
}

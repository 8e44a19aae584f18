//! Token (or position) embedding tables.

use crate::{Error, Module, Result, RowBlocks, VarBuilder};
use tessera_tensor::Tensor;

/// A lookup table `[vocab, dim]`: integer ids of any shape map to
/// `ids.shape + [dim]`. A table larger than one device buffer is held as row
/// blocks (see [`RowBlocks`]).
#[derive(Clone, Debug)]
pub struct Embedding {
    weight: RowBlocks,
}

impl Embedding {
    /// A table from its weight `[vocab, dim]`.
    pub fn new(weight: Tensor) -> Result<Embedding> {
        if weight.rank() != 2 {
            return Err(Error::invalid("embedding", format!("weight must be [vocab, dim], got shape {:?}", weight.dims())));
        }
        Ok(Embedding { weight: RowBlocks::new(weight)? })
    }

    /// Loads `weight` `[vocab, dim]`, in row blocks where the device bounds
    /// its buffers.
    pub fn load(vb: &VarBuilder, vocab: usize, dim: usize) -> Result<Embedding> {
        Ok(Embedding { weight: RowBlocks::load(vb, vocab, dim, "weight")? })
    }

    /// The table `[vocab, dim]` as one tensor (an error when it is held in
    /// several row blocks; see [`rows`](Embedding::rows)).
    pub fn weight(&self) -> Result<&Tensor> {
        self.weight.whole("embedding")
    }

    /// The table as row blocks (e.g. to tie an output head to it).
    pub fn rows(&self) -> &RowBlocks {
        &self.weight
    }

    /// Number of rows.
    pub fn vocab_size(&self) -> usize {
        self.weight.rows()
    }

    /// Width of a row.
    pub fn dim(&self) -> usize {
        self.weight.cols()
    }

    /// Rows for `ids` (u8, u32 or i64); an id out of range is an error.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.weight.lookup(ids)
    }
}

impl Module for Embedding {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Embedding::forward(self, ids)
    }
}

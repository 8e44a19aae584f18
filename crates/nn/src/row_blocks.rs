//! Weights larger than one device buffer.
//!
//! A GPU API bounds the size of one storage binding (128 MiB on many Vulkan
//! drivers), while a language model's vocabulary table or output head is
//! often larger: OPT-2.7B's `embed_tokens` is 514 MB in f32. [`RowBlocks`]
//! holds such a `[rows, cols]` weight as consecutive row blocks that each fit
//! [`Device::max_buffer_bytes`]; on a device without that limit (the CPU,
//! CUDA) it is one block and costs nothing. Row blocks keep both uses of a
//! vocabulary matrix cheap: a lookup picks rows from the block holding them,
//! and a product with the transposed matrix is one product per block,
//! concatenated along the output features.

use crate::{Activation, Error, Result, VarBuilder};
use tessera_tensor::{DType, Device, Tensor};

/// A `[rows, cols]` matrix stored as consecutive row blocks on one device.
#[derive(Clone, Debug)]
pub struct RowBlocks {
    blocks: Vec<Tensor>,
    rows: usize,
    cols: usize,
}

impl RowBlocks {
    /// One block holding `weight` `[rows, cols]`.
    pub fn new(weight: Tensor) -> Result<RowBlocks> {
        RowBlocks::from_blocks(vec![weight])
    }

    /// Consecutive row blocks of one matrix: every block 2-D with the same
    /// column count, dtype and device.
    pub fn from_blocks(blocks: Vec<Tensor>) -> Result<RowBlocks> {
        let first = blocks.first().ok_or_else(|| Error::invalid("row blocks", "no blocks given"))?;
        let cols = match first.dims() {
            [_, c] => *c,
            d => return Err(Error::invalid("row blocks", format!("a block must be [rows, cols], got shape {d:?}"))),
        };
        for b in &blocks {
            if b.rank() != 2 || b.dims()[1] != cols || b.dtype() != first.dtype() || !b.device().same(first.device()) {
                return Err(Error::invalid(
                    "row blocks",
                    format!(
                        "blocks disagree: {:?} {} on {} and {:?} {} on {}",
                        first.dims(),
                        first.dtype(),
                        first.device().name(),
                        b.dims(),
                        b.dtype(),
                        b.device().name()
                    ),
                ));
            }
        }
        let rows = blocks.iter().map(|b| b.dims()[0]).sum();
        Ok(RowBlocks { blocks, rows, cols })
    }

    /// Loads `prefix.name` `[rows, cols]`, split into blocks where the
    /// builder's device bounds its buffers (see [`VarBuilder::get_row_blocks`]).
    pub fn load(vb: &VarBuilder, rows: usize, cols: usize, name: &str) -> Result<RowBlocks> {
        RowBlocks::from_blocks(vb.get_row_blocks(rows, cols, name)?)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn dims(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    pub fn dtype(&self) -> DType {
        self.blocks[0].dtype()
    }

    pub fn device(&self) -> &Device {
        self.blocks[0].device()
    }

    /// The blocks, first rows first.
    pub fn blocks(&self) -> &[Tensor] {
        &self.blocks
    }

    /// The matrix as one tensor; an error when the device holds it in
    /// several blocks (`what` names the layer in the message).
    pub fn whole(&self, what: &'static str) -> Result<&Tensor> {
        match self.blocks.as_slice() {
            [one] => Ok(one),
            many => Err(Error::invalid(
                what,
                format!(
                    "the {:?} weight is held as {} row blocks on {} (larger than its largest buffer); use its blocks",
                    self.dims(),
                    many.len(),
                    self.device().name()
                ),
            )),
        }
    }

    /// Rows `start..start + len` as a matrix of their own: views of the
    /// blocks holding them (no copy). A head restricted to part of its
    /// vocabulary (image codes) is this.
    pub fn narrow_rows(&self, start: usize, len: usize) -> Result<RowBlocks> {
        if len == 0 || start + len > self.rows {
            return Err(Error::invalid("row blocks", format!("rows {start}..{} of a {}-row matrix", start + len, self.rows)));
        }
        let mut parts = Vec::new();
        let mut first = 0;
        for b in &self.blocks {
            let n = b.dims()[0];
            let (lo, hi) = (start.max(first), (start + len).min(first + n));
            if lo < hi {
                parts.push(b.narrow(0, lo - first, hi - lo)?);
            }
            first += n;
        }
        RowBlocks::from_blocks(parts)
    }

    /// `f` applied to every block (an elementwise rescale, a cast).
    pub fn map(&self, f: impl Fn(&Tensor) -> tessera_tensor::Result<Tensor>) -> Result<RowBlocks> {
        RowBlocks::from_blocks(self.blocks.iter().map(f).collect::<tessera_tensor::Result<Vec<_>>>()?)
    }

    /// `act(x W^T + b)` for `x [..., cols]`, `b [rows]`: one product per
    /// block, concatenated along the last dim.
    pub fn matmul_t(&self, x: &Tensor, bias: Option<&Tensor>, act: Activation) -> Result<Tensor> {
        let product = |w: &Tensor, b: Option<Tensor>| -> Result<Tensor> {
            let wt = w.t()?;
            match b {
                Some(b) => Ok(x.matmul_bias_act(&wt, &b, act.unary_op())?),
                None => act.apply(&x.matmul(&wt)?),
            }
        };
        if let [w] = self.blocks.as_slice() {
            return product(w, bias.cloned());
        }
        let mut parts = Vec::with_capacity(self.blocks.len());
        let mut start = 0;
        for w in &self.blocks {
            let n = w.dims()[0];
            parts.push(product(w, bias.map(|b| b.narrow(0, start, n)).transpose()?)?);
            start += n;
        }
        Ok(Tensor::cat(&parts.iter().collect::<Vec<_>>(), -1)?)
    }

    /// Rows for integer `ids` (u8, u32 or i64) of any shape: `ids.shape +
    /// [cols]`. An id out of range is an error.
    pub fn lookup(&self, ids: &Tensor) -> Result<Tensor> {
        if let [w] = self.blocks.as_slice() {
            return Ok(w.embedding(ids)?);
        }
        // Several blocks: gather each block's rows, then put them back in the
        // order of `ids` with one more gather.
        let host = read_ids(ids)?;
        let mut starts = Vec::with_capacity(self.blocks.len());
        let mut start = 0;
        for w in &self.blocks {
            starts.push(start);
            start += w.dims()[0];
        }
        let mut local: Vec<Vec<u32>> = vec![Vec::new(); self.blocks.len()];
        let mut place = Vec::with_capacity(host.len());
        for &id in &host {
            if id < 0 || id as usize >= self.rows {
                return Err(Error::invalid("embedding", format!("id {id} is out of range for a table of {} rows", self.rows)));
            }
            let b = starts.partition_point(|&s| s <= id as usize) - 1;
            place.push((b, local[b].len()));
            local[b].push((id as usize - starts[b]) as u32);
        }
        let device = self.device();
        let mut gathered = Vec::new();
        let mut offset = vec![0usize; self.blocks.len()];
        let mut total = 0;
        for (b, ids) in local.iter().enumerate() {
            if ids.is_empty() {
                continue;
            }
            offset[b] = total;
            total += ids.len();
            let ids = Tensor::from_slice(ids, ids.len(), device)?;
            gathered.push(self.blocks[b].index_select(&ids, 0)?);
        }
        let rows = Tensor::cat(&gathered.iter().collect::<Vec<_>>(), 0)?;
        let order: Vec<u32> = place.iter().map(|&(b, i)| (offset[b] + i) as u32).collect();
        let order = Tensor::from_slice(&order, order.len(), device)?;
        let mut shape = ids.dims().to_vec();
        shape.push(self.cols);
        Ok(rows.index_select(&order, 0)?.reshape(shape)?)
    }
}

/// The values of an integer id tensor, on the host.
fn read_ids(ids: &Tensor) -> Result<Vec<i64>> {
    let host = ids.to_device(&Device::cpu())?.flatten_all()?;
    Ok(match host.dtype() {
        DType::U8 => host.to_vec::<u8>()?.into_iter().map(i64::from).collect(),
        DType::U32 => host.to_vec::<u32>()?.into_iter().map(i64::from).collect(),
        DType::I64 => host.to_vec::<i64>()?,
        d => return Err(Error::invalid("embedding", format!("ids must be u8, u32 or i64, got {d}"))),
    })
}

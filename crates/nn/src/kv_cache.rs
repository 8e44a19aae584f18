//! The key/value cache of autoregressive attention.

use crate::{Error, Result};
use tessera_tensor::Tensor;

/// Keys and values `[b, h_kv, t, d]` seen so far by one attention layer.
///
/// [`append`](KvCache::append) concatenates along the time dim (dim 2) and
/// returns the full cache; each append copies the cache, which is simple and
/// right, at O(t) per step.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    max_len: Option<usize>,
}

impl KvCache {
    /// An empty, unbounded cache.
    pub fn new() -> Self {
        KvCache::default()
    }

    /// An empty cache that refuses to grow past `max_len` positions.
    pub fn with_max_len(max_len: usize) -> Self {
        KvCache { k: None, v: None, max_len: Some(max_len) }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.dims()[2])
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position limit, if any.
    pub fn max_len(&self) -> Option<usize> {
        self.max_len
    }

    /// Drops everything cached (the limit stays).
    pub fn reset(&mut self) {
        self.k = None;
        self.v = None;
    }

    /// The cached keys, if any.
    pub fn k(&self) -> Option<&Tensor> {
        self.k.as_ref()
    }

    /// The cached values, if any.
    pub fn v(&self) -> Option<&Tensor> {
        self.v.as_ref()
    }

    /// Appends `k` `[b, h, t, dk]` and `v` `[b, h, t, dv]` and returns the
    /// whole cache `(k, v)`. The new entries must match the cached batch,
    /// heads, head dims, dtype and device; on error the cache is unchanged.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        if k.rank() != 4 || v.rank() != 4 || k.dims()[..3] != v.dims()[..3] {
            return Err(Error::invalid(
                "kv_cache",
                format!("keys {:?} and values {:?} must be [b, h, t, d] with equal b, h, t", k.dims(), v.dims()),
            ));
        }
        let new_len = self.len() + k.dims()[2];
        if let Some(max) = self.max_len {
            if new_len > max {
                return Err(Error::invalid(
                    "kv_cache",
                    format!("appending {} positions to {} exceeds the limit of {max}", k.dims()[2], self.len()),
                ));
            }
        }
        let (k_all, v_all) = match (&self.k, &self.v) {
            (Some(ck), Some(cv)) => (Tensor::cat(&[ck, k], 2)?, Tensor::cat(&[cv, v], 2)?),
            _ => (k.clone(), v.clone()),
        };
        self.k = Some(k_all.clone());
        self.v = Some(v_all.clone());
        Ok((k_all, v_all))
    }

    /// Rearranges the cached rows: row `i` becomes old row `rows[i]` (rows
    /// may repeat: one prompt expanded to several rows, beams reordered).
    /// An empty cache stays empty; an index past the batch is an error.
    pub fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        let (Some(k), Some(v)) = (&self.k, &self.v) else { return Ok(()) };
        let b = k.dims()[0];
        if let Some(&bad) = rows.iter().find(|&&r| r >= b) {
            return Err(Error::invalid("kv_cache", format!("row {bad} is outside the cached batch of {b}")));
        }
        let ids: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let index = Tensor::from_slice(&ids, ids.len(), k.device())?;
        let (k, v) = (k.index_select(&index, 0)?, v.index_select(&index, 0)?);
        self.k = Some(k);
        self.v = Some(v);
        Ok(())
    }
}

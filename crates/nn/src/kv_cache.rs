//! The key/value cache of autoregressive attention.

use crate::{Error, Result};
use tessera_tensor::Tensor;

/// Positions a cache allocates room for at least, when nothing was reserved.
const MIN_CAPACITY: usize = 64;

/// Keys and values `[b, h_kv, t, d]` seen so far by one attention layer.
///
/// The cache keeps buffers `[b, h_kv, capacity, d]` and hands out their
/// first `len` positions as views. [`append`](KvCache::append) writes the
/// new positions into the spare capacity in place ([`Tensor::slice_set`]),
/// so a decode step costs the new entries only; when the capacity runs out
/// the buffers are reallocated at twice the size (within the limit), and
/// [`reserve`](KvCache::reserve) sizes them up front when the final length
/// is known. A write goes in place only while no view of the buffers is
/// alive (the attention step that used them has dropped them) and the
/// backend can write in place; otherwise it copies, and the values seen are
/// the same either way. On a backend that never writes in place the cache
/// concatenates instead (no spare capacity to copy along).
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
    /// Capacity the first allocation should have (from `reserve`).
    reserved: usize,
    max_len: Option<usize>,
}

impl KvCache {
    /// An empty, unbounded cache.
    pub fn new() -> Self {
        KvCache::default()
    }

    /// An empty cache that refuses to grow past `max_len` positions.
    pub fn with_max_len(max_len: usize) -> Self {
        KvCache { max_len: Some(max_len), ..KvCache::default() }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The position limit, if any.
    pub fn max_len(&self) -> Option<usize> {
        self.max_len
    }

    /// Positions the buffers hold room for (0 before the first append).
    pub fn capacity(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.dims()[2])
    }

    /// Makes room for `additional` more positions (within the limit), so
    /// that appending them does not reallocate.
    pub fn reserve(&mut self, additional: usize) -> Result<()> {
        let want = self.clamp(self.len + additional);
        match (&self.k, &self.v) {
            (Some(k), Some(v)) if want > k.dims()[2] => {
                let (k, v) = (k.narrow(2, 0, self.len)?, v.narrow(2, 0, self.len)?);
                self.k = Some(with_capacity(&k, want)?);
                self.v = Some(with_capacity(&v, want)?);
            }
            (Some(_), Some(_)) => {}
            _ => self.reserved = self.reserved.max(want),
        }
        Ok(())
    }

    /// Keeps the first `len` positions only (the buffers stay, so appending
    /// after it writes over the dropped positions). Longer than the cache is
    /// an error.
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        if len > self.len {
            return Err(Error::invalid("kv_cache", format!("cannot truncate {} cached positions to {len}", self.len)));
        }
        self.len = len;
        Ok(())
    }

    /// Drops everything cached (the limit stays).
    pub fn reset(&mut self) {
        self.k = None;
        self.v = None;
        self.len = 0;
    }

    /// The cached keys `[b, h_kv, len, dk]`, if any.
    pub fn k(&self) -> Option<Tensor> {
        self.k.as_ref().and_then(|k| k.narrow(2, 0, self.len).ok())
    }

    /// The cached values `[b, h_kv, len, dv]`, if any.
    pub fn v(&self) -> Option<Tensor> {
        self.v.as_ref().and_then(|v| v.narrow(2, 0, self.len).ok())
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
        let t = k.dims()[2];
        let new_len = self.len + t;
        if let Some(max) = self.max_len {
            if new_len > max {
                return Err(Error::invalid("kv_cache", format!("appending {t} positions to {} exceeds the limit of {max}", self.len)));
            }
        }
        if !k.device().backend().writes_in_place() {
            let (k_all, v_all) = match (self.k(), self.v()) {
                (Some(ck), Some(cv)) => (Tensor::cat(&[&ck, k], 2)?, Tensor::cat(&[&cv, v], 2)?),
                _ => (k.clone(), v.clone()),
            };
            (self.k, self.v, self.len) = (Some(k_all.clone()), Some(v_all.clone()), new_len);
            return Ok((k_all, v_all));
        }
        let (mut kb, mut vb) = match (self.k.take(), self.v.take()) {
            (Some(ck), Some(cv)) => {
                // (`slice_set` checks the device.)
                let fits = |new: &Tensor, cached: &Tensor| {
                    new.dims()[..2] == cached.dims()[..2] && new.dims()[3] == cached.dims()[3] && new.dtype() == cached.dtype()
                };
                if !fits(k, &ck) || !fits(v, &cv) {
                    let msg = format!(
                        "keys {:?} / values {:?} ({}) do not extend the cached {:?} / {:?} ({})",
                        k.dims(),
                        v.dims(),
                        k.dtype(),
                        ck.dims(),
                        cv.dims(),
                        ck.dtype()
                    );
                    (self.k, self.v) = (Some(ck), Some(cv));
                    return Err(Error::invalid("kv_cache", msg));
                }
                (ck, cv)
            }
            _ => {
                let capacity = self.clamp(new_len.max(self.reserved).max(MIN_CAPACITY));
                (with_capacity(&k.narrow(2, 0, 0)?, capacity)?, with_capacity(&v.narrow(2, 0, 0)?, capacity)?)
            }
        };
        if new_len > kb.dims()[2] {
            let capacity = self.clamp(new_len.max(2 * kb.dims()[2]));
            let len = self.len;
            let grown = || -> Result<(Tensor, Tensor)> {
                Ok((with_capacity(&kb.narrow(2, 0, len)?, capacity)?, with_capacity(&vb.narrow(2, 0, len)?, capacity)?))
            };
            match grown() {
                Ok((k2, v2)) => (kb, vb) = (k2, v2),
                Err(e) => {
                    // Out of memory, say: the cache keeps what it had.
                    (self.k, self.v) = (Some(kb), Some(vb));
                    return Err(e);
                }
            }
        }
        let written = kb.slice_set(k, 2, self.len).and_then(|_| vb.slice_set(v, 2, self.len));
        if let Err(e) = written {
            // A failed write may have left one buffer written past `len`,
            // which no view reaches: the cache is as it was.
            (self.k, self.v) = (Some(kb), Some(vb));
            return Err(e.into());
        }
        self.len = new_len;
        let views = (kb.narrow(2, 0, new_len)?, vb.narrow(2, 0, new_len)?);
        (self.k, self.v) = (Some(kb), Some(vb));
        Ok(views)
    }

    /// Rearranges the cached rows: row `i` becomes old row `rows[i]` (rows
    /// may repeat: one prompt expanded to several rows, beams reordered).
    /// The capacity is kept. An empty cache stays empty; an index past the
    /// batch is an error.
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

    /// `len` within the limit.
    fn clamp(&self, len: usize) -> usize {
        self.max_len.map_or(len, |max| len.min(max))
    }
}

/// A contiguous buffer of `capacity` positions along dim 2 starting with
/// `prefix`'s, the rest zero.
fn with_capacity(prefix: &Tensor, capacity: usize) -> Result<Tensor> {
    let mut shape = prefix.dims().to_vec();
    shape[2] = capacity;
    let mut buf = Tensor::zeros(shape, prefix.dtype(), prefix.device())?;
    buf.slice_set(prefix, 2, 0)?;
    Ok(buf)
}

//! Packed right operands kept with their storage, so that a weight is
//! packed for the GEMM micro-kernel once rather than on every product.
//!
//! Each CPU storage carries a [`PackCache`]. The first product that reads
//! a storage as B through a given view only records the view; the second
//! one packs B in full ([`PackedB`]) and keeps it, and later ones reuse it.
//! Weights are read the same way on every forward pass, so they get packed
//! on the second pass; activations are normally the right operand of one
//! product only, so they are never packed twice. Storages are immutable, so
//! the packed copy stays valid for the storage's lifetime and goes with it.
//!
//! The packed copies are f32 and cost memory (as much as an f32 weight
//! again), so they share a process-wide budget: `TESSERA_CPU_PACK_CACHE_MB`
//! (default 4096; 0 turns the cache off). A product that would exceed it
//! packs per call as before.

use super::gemm::PackedB;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// How a product reads B from its storage: element offset, row and column
/// strides, rows (k) and columns (n).
pub type BView = (usize, usize, usize, usize, usize);

/// Bytes held by packed copies in the whole process.
static HELD: AtomicUsize = AtomicUsize::new(0);

fn budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let mb = std::env::var("TESSERA_CPU_PACK_CACHE_MB").ok().and_then(|s| s.trim().parse::<usize>().ok()).unwrap_or(4096);
        mb.saturating_mul(1 << 20)
    })
}

#[derive(Default)]
struct Entries {
    /// Views read once, not packed yet.
    seen: Vec<BView>,
    packed: Vec<(BView, Arc<PackedB>)>,
}

/// The packed right operands of one storage (see the module docs).
#[derive(Default)]
pub struct PackCache(Mutex<Entries>);

impl PackCache {
    /// The packed B for `view`, packing it with `pack` when this is the
    /// view's second product and the budget allows; `None` means "pack per
    /// call".
    pub fn get(&self, view: BView, pack: impl FnOnce() -> PackedB) -> Option<Arc<PackedB>> {
        let (_, _, _, k, n) = view;
        {
            let mut e = self.0.lock().ok()?;
            if let Some((_, p)) = e.packed.iter().find(|(v, _)| *v == view) {
                return Some(p.clone());
            }
            if !e.seen.contains(&view) {
                e.seen.push(view);
                return None;
            }
        }
        // An upper bound of the packed size (panels are padded to the
        // kernel's width, at most 32 columns).
        let bytes = k.saturating_mul(n + 32).saturating_mul(4);
        if HELD.fetch_add(bytes, Ordering::Relaxed).saturating_add(bytes) > budget() {
            HELD.fetch_sub(bytes, Ordering::Relaxed);
            return None;
        }
        // Packing runs outside the lock; two products racing to pack the
        // same view both pack, and the first to finish is kept.
        let packed = Arc::new(pack());
        HELD.fetch_sub(bytes - packed.bytes(), Ordering::Relaxed);
        let Ok(mut e) = self.0.lock() else {
            HELD.fetch_sub(packed.bytes(), Ordering::Relaxed);
            return Some(packed);
        };
        if let Some((_, p)) = e.packed.iter().find(|(v, _)| *v == view) {
            HELD.fetch_sub(packed.bytes(), Ordering::Relaxed);
            return Some(p.clone());
        }
        e.packed.push((view, packed.clone()));
        Some(packed)
    }
}

impl Drop for PackCache {
    fn drop(&mut self) {
        if let Ok(e) = self.0.get_mut() {
            let bytes: usize = e.packed.iter().map(|(_, p)| p.bytes()).sum();
            HELD.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

impl Clone for PackCache {
    /// A copy of a storage starts with no packed views of its own.
    fn clone(&self) -> Self {
        PackCache::default()
    }
}

impl std::fmt::Debug for PackCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let packed = self.0.lock().map(|e| e.packed.len()).unwrap_or(0);
        f.debug_struct("PackCache").field("packed", &packed).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::gemm::Strided;

    #[test]
    fn packs_on_the_second_product_of_a_view_and_reuses_it() {
        let b: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let pack = || PackedB::new(3, 4, &Strided { data: &b[..], off: 0, rs: 4, cs: 1 });
        let cache = PackCache::default();
        let view = (0, 4, 1, 3, 4);
        assert!(cache.get(view, pack).is_none(), "first product packs per call");
        let first = cache.get(view, pack).expect("second product packs");
        let again = cache.get(view, || panic!("a packed view is not packed again")).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // Another view of the same storage starts over.
        assert!(cache.get((0, 1, 4, 4, 3), pack).is_none());
    }
}

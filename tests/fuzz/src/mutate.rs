//! Byte-level mutators: truncation (at region boundaries and at sampled
//! offsets), bit flips, bytes replaced by interesting values, overwrites of
//! integer fields, and a "havoc" mix of them. Each returns the mutated
//! bytes and a short description for the case name.

use crate::Rng;
use std::ops::Range;

/// Byte values that sit on sign, range and encoding boundaries.
pub const INTERESTING_BYTES: [u8; 4] = [0x00, 0xff, 0x7f, 0x80];

/// 64-bit values that sit on boundaries (for length and size fields).
pub const INTERESTING_U64: [u64; 12] =
    [0, 1, 0x7f, 0xff, 0xffff, 0x7fff_ffff, 0xffff_ffff, 1 << 32, 1 << 62, i64::MAX as u64, 1 << 63, u64::MAX];

/// 32-bit values that sit on boundaries (for image dimensions and chunk
/// lengths).
pub const INTERESTING_U32: [u32; 9] = [0, 1, 0x7f, 0xff, 0x3fff, 0xffff, 0x7fff_ffff, 0x8000_0000, u32::MAX];

/// `bytes[..len]`.
pub fn truncate(bytes: &[u8], len: usize) -> Vec<u8> {
    bytes[..len.min(bytes.len())].to_vec()
}

/// The lengths to truncate to around region `boundaries`: each boundary,
/// one byte before and one after, and the empty and one-short files;
/// sorted, deduplicated and shorter than the file.
pub fn boundary_lengths(len: usize, boundaries: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = vec![0, 1, len.saturating_sub(1)];
    for &b in boundaries {
        out.extend([b.saturating_sub(1), b, b + 1]);
    }
    out.sort_unstable();
    out.dedup();
    out.retain(|&l| l < len);
    out
}

/// A truncation at a random offset: (description, bytes).
pub fn truncate_sampled(bytes: &[u8], rng: &mut Rng) -> (String, Vec<u8>) {
    let len = rng.below(bytes.len().max(1));
    (format!("truncate@{len}"), truncate(bytes, len))
}

/// `count` random bit flips inside `range` (clamped to the file).
pub fn flip_bits(bytes: &[u8], rng: &mut Rng, count: usize, range: Range<usize>) -> (String, Vec<u8>) {
    let mut out = bytes.to_vec();
    let range = range.start.min(out.len())..range.end.min(out.len());
    if range.is_empty() {
        return ("flip-nothing".into(), out);
    }
    let mut at = Vec::with_capacity(count);
    for _ in 0..count {
        let i = range.start + rng.below(range.len());
        let bit = rng.below(8);
        out[i] ^= 1 << bit;
        at.push(format!("{i}.{bit}"));
    }
    (format!("flip[{}]", at.join(",")), out)
}

/// `count` bytes inside `range` replaced by [`INTERESTING_BYTES`].
pub fn interesting_bytes(bytes: &[u8], rng: &mut Rng, count: usize, range: Range<usize>) -> (String, Vec<u8>) {
    let mut out = bytes.to_vec();
    let range = range.start.min(out.len())..range.end.min(out.len());
    if range.is_empty() {
        return ("set-nothing".into(), out);
    }
    let mut at = Vec::with_capacity(count);
    for _ in 0..count {
        let i = range.start + rng.below(range.len());
        let v = *rng.pick(&INTERESTING_BYTES);
        out[i] = v;
        at.push(format!("{i}={v:#x}"));
    }
    (format!("set[{}]", at.join(",")), out)
}

/// `bytes` with `with` written at `at` (growing the file if needed).
pub fn overwrite(bytes: &[u8], at: usize, with: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.len() < at + with.len() {
        out.resize(at + with.len(), 0);
    }
    out[at..at + with.len()].copy_from_slice(with);
    out
}

/// A random range of `bytes` deleted, duplicated or filled with one value.
pub fn splice(bytes: &[u8], rng: &mut Rng) -> (String, Vec<u8>) {
    let len = bytes.len();
    let start = rng.below(len.max(1));
    let n = rng.between(1, 64.min(len - start.min(len)).max(1));
    let end = (start + n).min(len);
    let mut out = bytes[..start].to_vec();
    let kind = rng.below(3);
    match kind {
        0 => {}
        1 => {
            out.extend_from_slice(&bytes[start..end]);
            out.extend_from_slice(&bytes[start..end]);
        }
        _ => out.extend(std::iter::repeat_n(*rng.pick(&INTERESTING_BYTES), end - start)),
    }
    out.extend_from_slice(&bytes[end..]);
    let what = ["delete", "duplicate", "fill"][kind];
    (format!("{what}[{start}..{end}]"), out)
}

/// One to three random byte mutations inside `range`: bit flips,
/// interesting bytes, splices or a truncation.
pub fn havoc(bytes: &[u8], rng: &mut Rng, range: Range<usize>) -> (String, Vec<u8>) {
    let rounds = rng.between(1, 3);
    let mut names = Vec::with_capacity(rounds);
    let mut out = bytes.to_vec();
    for _ in 0..rounds {
        let range = range.start.min(out.len())..range.end.min(out.len());
        let (name, next) = match rng.below(8) {
            0..=2 => {
                let count = rng.between(1, 4);
                flip_bits(&out, rng, count, range)
            }
            3..=5 => {
                let count = rng.between(1, 3);
                interesting_bytes(&out, rng, count, range)
            }
            6 => splice(&out, rng),
            _ => truncate_sampled(&out, rng),
        };
        names.push(name);
        out = next;
    }
    (names.join("+"), out)
}

/// The big-endian u32 at `at`, if the file holds it.
pub fn read_u32_be(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The little-endian u32 at `at`, if the file holds it.
pub fn read_u32_le(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_sorted_unique_and_inside() {
        assert_eq!(boundary_lengths(20, &[8, 9, 30]), vec![0, 1, 7, 8, 9, 10, 19]);
    }

    #[test]
    fn mutators_are_deterministic_and_stay_in_range() {
        let bytes: Vec<u8> = (0..100).collect();
        let (a, b) = (flip_bits(&bytes, &mut Rng::new(1), 3, 10..20), flip_bits(&bytes, &mut Rng::new(1), 3, 10..20));
        assert_eq!(a, b);
        assert_eq!(a.1[..10], bytes[..10]);
        assert_eq!(a.1[20..], bytes[20..]);
        assert_ne!(a.1, bytes);
        let (_, set) = interesting_bytes(&bytes, &mut Rng::new(2), 2, 50..51);
        assert!(INTERESTING_BYTES.contains(&set[50]));
        assert_eq!(overwrite(&[1, 2], 1, &[9, 9]), vec![1, 9, 9]);
        for seed in 0..50 {
            let mut rng = Rng::new(seed);
            let (name, _) = havoc(&bytes, &mut rng, 0..100);
            assert!(!name.is_empty());
            let _ = splice(&[], &mut rng);
            let _ = truncate_sampled(&[], &mut rng);
        }
    }
}

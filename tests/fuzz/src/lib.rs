//! # Deterministic fuzzing of Tessera's loaders
//!
//! Every loader that reads a file a user hands Tessera must answer a bad
//! file with a typed error: never a panic, an abort (out of memory, stack
//! overflow) or a hang. This crate checks that with seeded corpora of
//! mutated files that run in CI in a few minutes (debug assertions and
//! overflow checks on), and gives cargo-fuzz (the `fuzz/` directory at the
//! repository root) the same entry points, so libFuzzer and CI exercise the
//! same code.
//!
//! ## Targets
//!
//! One module per loader; each has the same shape:
//!
//! - `TARGET`: the target's name (summary lines, fuzz target names);
//! - `CASES`: how many cases its corpus holds (a fixed count);
//! - `corpus(seed) -> Vec<Case>`: valid seed files, systematic mutations of
//!   them (truncation at every region boundary, length-field lies, every
//!   JSON field set to values of every wrong type...) and seeded random
//!   ones, `CASES` in all; the same seed gives the same cases;
//! - `run(&Case) -> Outcome`: loads the case with the real loader and uses
//!   what it loaded (every tensor, a few texts encoded, an image
//!   preprocessed). A panic propagates (libFuzzer reports it as a crash);
//!   [`harness::run_corpus`] catches it and reports it with the case name;
//! - `from_fuzz_input(&[u8]) -> Case`: libFuzzer's bytes as a case (they
//!   replace the target's main file; other files come from its seed).
//!
//! | module | loader |
//! |---|---|
//! | [`safetensors`] | `SafeTensorsFile::from_bytes`, every tensor's `bytes` and `load` |
//! | [`index`] | `Checkpoint::open` on a sharded directory, every tensor loaded |
//! | [`config`] | `ClipConfig::from_json`; `Clip::from_dir` on a tiny checkpoint |
//! | [`tokenizer`] | `TextTokenizer::from_file`, `ClipTokenizer::from_files`, encoding |
//! | [`processor`] | `ImageProcessor::from_json` (both layouts), preprocessing |
//! | [`image`] | `decode_image` on PNG, JPEG, GIF, BMP and WebP |
//! | [`pickle`] | `TorchCheckpoint::from_bytes` (torch.save zip + restricted unpickler), every tensor's `bytes` and `load`, `write_safetensors` |
//!
//! ## Adding a target
//!
//! A new loader (GGUF, a new model's config) gets a module with the
//! items above, built from the mutators here ([`mutate`] for bytes,
//! [`json`] for JSON documents), a `#[test]` in tests/fuzz.rs calling
//! [`harness::check_target`], and a file in fuzz/fuzz_targets with its
//! `[[bin]]` in fuzz/Cargo.toml.
//!
//! There are no known failures: every case must end in `Ok` or a
//! well-formed typed error, and any panic or malformed message fails the
//! test. A case that once found a defect stays in its corpus as a
//! regression case. An abort (out of memory, stack overflow) stops the test
//! binary, and a hang is stopped by the watchdog ([`capture`]); both fail
//! the suite. docs/fuzzing.md has the details.

pub mod capture;
pub mod config;
pub mod harness;
pub mod image;
pub mod index;
pub mod json;
pub mod mutate;
pub mod pickle;
pub mod processor;
pub mod safetensors;
pub mod tiny_clip;
pub mod tokenizer;

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The seed the CI suite uses when `TESSERA_FUZZ_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0x7e55_e7a0_f022_2024;

/// The seed of this run: `TESSERA_FUZZ_SEED` (decimal or `0x` hex), else
/// [`DEFAULT_SEED`].
pub fn seed_from_env() -> u64 {
    let parse = |s: String| {
        let s = s.trim().to_string();
        match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        }
    };
    std::env::var("TESSERA_FUZZ_SEED").ok().and_then(parse).unwrap_or(DEFAULT_SEED)
}

// ------------------------------------------------------------------ PRNG

/// A tiny seeded generator (SplitMix64): the same seed gives the same
/// corpus on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator for `seed` and a named stream, so that the corpora of
    /// different targets do not share their draws.
    pub fn for_stream(seed: u64, stream: &str) -> Rng {
        let h = stream.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Rng(seed ^ h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True once in `n` draws on average.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ----------------------------------------------------------------- cases

/// One input of a target: a name that says how it was made (printed when it
/// fails) and the files it consists of, the target's main file first.
#[derive(Clone, Debug)]
pub struct Case {
    /// `seed/mutation/detail`, unique within the corpus.
    pub name: String,
    /// (file name, contents); the first is the file the mutation is about.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Case {
    /// A case of one file (`input`).
    pub fn bytes(name: impl Into<String>, bytes: Vec<u8>) -> Case {
        Case { name: name.into(), files: vec![("input".to_string(), bytes)] }
    }

    /// A case of several files, the main one first.
    pub fn files(name: impl Into<String>, files: Vec<(String, Vec<u8>)>) -> Case {
        Case { name: name.into(), files }
    }

    /// The main file's contents (empty for a case without files).
    pub fn main(&self) -> &[u8] {
        self.files.first().map(|f| f.1.as_slice()).unwrap_or_default()
    }

    /// The contents of file `name`, if the case has it.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files.iter().find(|f| f.0 == name).map(|f| f.1.as_slice())
    }

    /// The same files with the main file's contents replaced.
    pub fn with_main(&self, name: impl Into<String>, bytes: Vec<u8>) -> Case {
        let mut case = Case { name: name.into(), files: self.files.clone() };
        match case.files.first_mut() {
            Some(first) => first.1 = bytes,
            None => case.files.push(("input".to_string(), bytes)),
        }
        case
    }

    /// The same files with file `file` replaced (added if missing).
    pub fn with_file(&self, name: impl Into<String>, file: &str, bytes: Vec<u8>) -> Case {
        let mut case = Case { name: name.into(), files: self.files.clone() };
        match case.files.iter_mut().find(|f| f.0 == file) {
            Some(slot) => slot.1 = bytes,
            None => case.files.push((file.to_string(), bytes)),
        }
        case
    }

    /// The same files without file `file`.
    pub fn without_file(&self, name: impl Into<String>, file: &str) -> Case {
        let files = self.files.iter().filter(|f| f.0 != file).cloned().collect();
        Case { name: name.into(), files }
    }
}

/// How a case ended, when it did not panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The input loaded (and was used) without error.
    Ok,
    /// The loader refused the input with a typed error; its message.
    TypedError(String),
}

impl Outcome {
    /// `Ok` for `Ok(_)`, the error's message for `Err`.
    pub fn of<T, E: Display>(result: Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::TypedError(e.to_string()),
        }
    }
}

/// Fills `total` cases: `systematic` first (cut to `total` if longer), then
/// `random(rng, i)` for the rest.
pub fn fill(mut systematic: Vec<Case>, total: usize, rng: &mut Rng, mut random: impl FnMut(&mut Rng, usize) -> Case) -> Vec<Case> {
    systematic.truncate(total);
    let start = systematic.len();
    systematic.extend((start..total).map(|i| random(rng, i)));
    systematic
}

// ------------------------------------------------------------- temp dirs

/// A fresh directory under the system's temporary directory, removed (with
/// its contents) when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// `$TMPDIR/tessera-fuzz-<pid>-<tag>-<n>`.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("tessera-fuzz-{}-{tag}-{n}", std::process::id()));
        // A leftover of a killed run with the same pid: start clean.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("harness: cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    /// A fresh directory holding `files`.
    pub fn with_files(tag: &str, files: &[(String, Vec<u8>)]) -> TempDir {
        let dir = TempDir::new(tag);
        for (name, bytes) in files {
            dir.write(name, bytes);
        }
        dir
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` to `name` inside the directory; returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("harness: cannot write {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a failure leaves a directory in the temp folder.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

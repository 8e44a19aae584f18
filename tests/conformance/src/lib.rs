//! # Tessera backend conformance suite
//!
//! One suite, written once, run on every device. [`run_all`] takes any
//! [`Device`] (the CPU, a wgpu adapter, a CUDA GPU) and checks every op of the
//! core on it; it returns a [`Report`] with the number of cases passed and
//! failed per op and a description of every failure. A backend crate runs it
//! from a test of its own:
//!
//! ```no_run
//! let report = tessera_conformance::run_all(&tessera_tensor::Device::cpu(), None);
//! println!("{report}");
//! assert_eq!(report.failed(), 0);
//! ```
//!
//! Nothing here assumes the CPU: inputs are uploaded with
//! `Tensor::from_f64_slice` (or as explicit strided views of an uploaded
//! storage) and results are read back with `Tensor::to_f64_vec`.
//!
//! ## Cases
//!
//! Each op is run over shapes drawn from a seeded generator (so every run, and
//! every device, sees the same cases): size-1 dims, odd sizes (3, 5, 7, 17, 33,
//! 65), empty dims (size 0) where the op allows them, rank 0 where it makes
//! sense. Inputs come in five layouts (see [`input`]): contiguous, permuted
//! storage order (transposes), strided (narrowed and stepped, with an offset),
//! broadcast (stride-0 dims) and all of these mixed. Every dtype the op
//! supports is covered (float compute ops on f32/f16/bf16; integer ops also on
//! u8/u32/i64; FP8 for storage ops: casts, copies, views, indexing, cat), and
//! for every dtype it does not support the suite checks that the op answers
//! `Err(Error::UnsupportedDType { .. })` instead of computing garbage.
//!
//! ## Reference
//!
//! Inputs are drawn as f64, rounded to the dtype by the upload, and read back,
//! so the reference sees exactly the values the device sees. The reference
//! ([`reference`]) is plain f64 loops over row-major `Vec`s with explicit
//! shape/stride arithmetic; it never calls a tensor op. It is rounded to the
//! output dtype before comparing (so f16 overflow to infinity is expected).
//!
//! ## Comparison
//!
//! Float results are compared by their normalised mean squared error,
//! `sum (out - ref)^2 / sum ref^2` (the denominator floored at `1e-6` per
//! element, so all-zero references do not divide by zero), against a
//! tolerance scaled to the dtype: f32 `1e-10` (elementwise) to `1e-8` (fused
//! ops), f16 `1e-5`, bf16 `1e-4`; each element must also lie within
//! `16 * sqrt(tol) * (|ref| + rms(ref))`, so one wrong element cannot hide in
//! a large tensor. NaN and infinities must agree exactly: NaN where the
//! reference has NaN, the same infinity where it has one, and a finite value
//! everywhere else. Integer results, indices, casts and data movement are
//! compared exactly.
//!
//! ## Poisoning
//!
//! Backends allocate their outputs. To catch a kernel that leaves elements
//! unwritten, each case first creates, with `Tensor::full` on the device, a
//! tensor of the output's dtype and size filled with NaN (integers: 165,
//! 0xA5A5A5A5, or -1234567891, none of which the cases produce) and drops it,
//! so the allocator (the CPU heap, a GPU buffer pool) is likely to hand that
//! memory back for the output; any NaN (or poison value) the reference does
//! not have fails the case.
//!
//! ## Fused ops
//!
//! Matmul with bias, softmax, log-softmax, layer norm, RMS norm, rope,
//! conv2d, group norm, nearest upsampling and attention are checked against
//! the f64 reference
//! (op `softmax`, ...) and their composition from primitives in
//! [`tessera_tensor::composed`] run on the same device (op
//! `softmax (composed)`, ...: the composition against the reference, and the
//! fused op against the composition).
//!
//! ## Semantics pinned down here
//!
//! - Integer arithmetic wraps at the storage width (u8 `200 + 100 = 44`);
//!   integer division truncates toward zero (the cases never divide by 0).
//! - Integers convert to floats through f32 (as PyTorch does); floats convert
//!   to integers by truncation toward zero (cases keep values in range);
//!   integers convert to integers by wrapping. Float conversions round to
//!   nearest even; FP8 conversions saturate, infinities included.
//! - NaN propagates through every unary op (relu too), `maximum`/`minimum`
//!   and the `max`/`min` reductions; `argmax`/`argmin` answer the first NaN;
//!   `argsort` is stable and puts NaN last (first when descending); `topk`
//!   values come in descending order, its indices may be any that point at
//!   them.
//! - Causal attention is aligned bottom-right (`tq` below, equal to and above
//!   `tk`); a query that sees no key (by the causal rule or a fully `-inf`
//!   mask row) answers zeros.
//! - A rope of rotary width 0 is the identity.
//!
//! ## Filtering
//!
//! `filter` is a comma-separated list of substrings: only ops whose name
//! contains one of them run (`Some("softmax,matmul")`). Every op draws its
//! cases from its own generator, so a filtered run repeats the same cases.

mod arr;
mod cases;
mod check;
mod gen;
pub mod input;
pub mod reference;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};
use tessera_tensor::{DType, Device};

pub use arr::Arr;

/// Why a case failed.
#[derive(Clone, Debug)]
pub struct Fail(pub String);

impl From<tessera_tensor::Error> for Fail {
    fn from(e: tessera_tensor::Error) -> Self {
        Fail(format!("unexpected error: {e}"))
    }
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail(s)
    }
}

/// The result of one case.
pub type R<T> = std::result::Result<T, Fail>;

/// Returns `Err(Fail(format!(...)))` from the enclosing case.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::Fail(format!($($arg)*)))
    };
}

/// Case counts of one op.
#[derive(Clone, Debug, Default)]
pub struct OpReport {
    pub op: String,
    pub passed: usize,
    pub failed: usize,
    /// `"<case description>: <what went wrong>"` for each failed case.
    pub failures: Vec<String>,
    pub time: Duration,
}

/// Case counts per op, in the order the ops ran.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub device: String,
    pub ops: Vec<OpReport>,
    /// Dtypes the device cannot store; cases needing them were not run.
    pub skipped_dtypes: Vec<DType>,
    pub time: Duration,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.ops.iter().map(|o| o.passed).sum()
    }
    pub fn failed(&self) -> usize {
        self.ops.iter().map(|o| o.failed).sum()
    }
    pub fn cases(&self) -> usize {
        self.passed() + self.failed()
    }
    pub fn op(&self, name: &str) -> Option<&OpReport> {
        self.ops.iter().find(|o| o.op == name)
    }
    /// Every failure as `"op: case: reason"`.
    pub fn failures(&self) -> Vec<String> {
        self.ops.iter().flat_map(|o| o.failures.iter().map(move |f| format!("{}: {f}", o.op))).collect()
    }
    /// `conformance <device>: N passed, M failed`.
    pub fn summary(&self) -> String {
        format!("conformance {}: {} passed, {} failed", self.device, self.passed(), self.failed())
    }

    fn record(&mut self, op: &str, desc: String, result: Result<(), String>, time: Duration) {
        let i = match self.ops.iter().position(|o| o.op == op) {
            Some(i) => i,
            None => {
                self.ops.push(OpReport { op: op.to_string(), ..Default::default() });
                self.ops.len() - 1
            }
        };
        let o = &mut self.ops[i];
        o.time += time;
        match result {
            Ok(()) => o.passed += 1,
            Err(e) => {
                o.failed += 1;
                o.failures.push(format!("{desc}: {e}"));
            }
        }
    }
}

/// The per-op table, the failures (at most 10 per op), and the summary line.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance on {}:", self.device)?;
        if !self.skipped_dtypes.is_empty() {
            let names: Vec<String> = self.skipped_dtypes.iter().map(|d| d.to_string()).collect();
            writeln!(f, "  (the device cannot store {}: their cases were skipped)", names.join(", "))?;
        }
        writeln!(f, "  {:<30} {:>7} {:>7} {:>9}", "op", "passed", "failed", "time")?;
        for o in &self.ops {
            writeln!(f, "  {:<30} {:>7} {:>7} {:>7.0}ms", o.op, o.passed, o.failed, o.time.as_secs_f64() * 1e3)?;
        }
        writeln!(f, "  {:<30} {:>7} {:>7} {:>8.2}s", "total", self.passed(), self.failed(), self.time.as_secs_f64())?;
        for o in self.ops.iter().filter(|o| o.failed > 0) {
            writeln!(f, "failures of {} ({}):", o.op, o.failed)?;
            for msg in o.failures.iter().take(10) {
                writeln!(f, "  FAIL {msg}")?;
            }
            if o.failures.len() > 10 {
                writeln!(f, "  ... and {} more", o.failures.len() - 10)?;
            }
        }
        write!(f, "{}", self.summary())
    }
}

/// Runs every case on `device` (only the ops matching `filter`, see the
/// crate docs) and reports the counts.
pub fn run_all(device: &Device, filter: Option<&str>) -> Report {
    let start = Instant::now();
    let mut s = Suite::new(device, filter);
    cases::creation::run(&mut s);
    cases::views::run(&mut s);
    cases::elementwise::run(&mut s);
    cases::cast::run(&mut s);
    cases::reduce::run(&mut s);
    cases::matmul::run(&mut s);
    cases::index::run(&mut s);
    cases::fused::run(&mut s);
    cases::errors::run(&mut s);
    s.report.time = start.elapsed();
    s.report
}

/// The running suite: the device, the filter and the report so far.
pub(crate) struct Suite {
    dev: Device,
    filters: Vec<String>,
    report: Report,
}

impl Suite {
    fn new(device: &Device, filter: Option<&str>) -> Suite {
        let filters = filter.map(|f| f.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()).unwrap_or_default();
        let skipped_dtypes = DType::ALL.into_iter().filter(|&d| !device.backend().supports(d)).collect();
        Suite { dev: device.clone(), filters, report: Report { device: device.name(), skipped_dtypes, ..Default::default() } }
    }

    /// Whether `op` passes the filter.
    pub fn on(&self, op: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| op.contains(f.as_str()))
    }

    /// The dtypes the device can store.
    pub fn dtypes(&self) -> Vec<DType> {
        DType::ALL.into_iter().filter(|d| !self.report.skipped_dtypes.contains(d)).collect()
    }

    /// Of `want`, the dtypes the device can store.
    pub fn stored(&self, want: &[DType]) -> Vec<DType> {
        want.iter().copied().filter(|d| !self.report.skipped_dtypes.contains(d)).collect()
    }

    /// Runs one case of `op` (if the filter lets it) and records the outcome;
    /// a panic counts as a failure.
    pub fn case(&mut self, op: &str, desc: String, f: impl FnOnce(&Device) -> R<()>) {
        if !self.on(op) {
            return;
        }
        let start = Instant::now();
        let result = match catch_unwind(AssertUnwindSafe(|| f(&self.dev))) {
            Ok(r) => r.map_err(|e| e.0),
            Err(payload) => Err(format!("panicked: {}", panic_message(payload))),
        };
        self.report.record(op, desc, result, start.elapsed());
    }

    /// One case that checks several ops on the same inputs: `f` answers one
    /// result per op, `None` where that check does not apply.
    pub fn case_multi<const N: usize>(&mut self, ops: [&str; N], desc: String, f: impl FnOnce(&Device) -> [Option<R<()>>; N]) {
        if !ops.iter().any(|op| self.on(op)) {
            return;
        }
        let start = Instant::now();
        let results: [Option<Result<(), String>>; N] = match catch_unwind(AssertUnwindSafe(|| f(&self.dev))) {
            Ok(rs) => rs.map(|r| r.map(|r| r.map_err(|e| e.0))),
            Err(payload) => {
                let msg = panic_message(payload);
                std::array::from_fn(|_| Some(Err(format!("panicked: {msg}"))))
            }
        };
        let time = start.elapsed() / N as u32;
        for (op, r) in ops.iter().zip(results) {
            if let Some(r) = r {
                if self.on(op) {
                    self.report.record(op, desc.clone(), r, time);
                }
            }
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

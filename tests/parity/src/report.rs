//! The report of a parity run: every named check with its numbers, passed
//! or failed, printed as one list.

use std::fmt;

/// One named check and how it went.
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// The outcome of a run: every check, passed or failed, with its numbers.
pub struct Report {
    /// What was checked ("CLIP parity").
    pub title: String,
    /// The device it ran on.
    pub device: String,
    pub checks: Vec<Check>,
}

impl Report {
    /// An empty report of `title` on `device`.
    pub fn new(title: &str, device: String) -> Report {
        Report { title: title.to_string(), device, checks: Vec::new() }
    }

    /// Records a check: `Ok((passed, numbers))`, or an error that failed it.
    pub fn add(&mut self, name: impl Into<String>, outcome: Result<(bool, String), String>) {
        let (passed, detail) = outcome.unwrap_or_else(|e| (false, format!("error: {e}")));
        self.checks.push(Check { name: name.into(), passed, detail });
    }

    /// Checks that failed.
    pub fn failed(&self) -> usize {
        self.checks.iter().filter(|c| !c.passed).count()
    }

    /// Checks that passed.
    pub fn passed(&self) -> usize {
        self.checks.len() - self.failed()
    }

    /// The failed checks, one line each.
    pub fn failures(&self) -> Vec<String> {
        self.checks.iter().filter(|c| !c.passed).map(|c| format!("{}: {}", c.name, c.detail)).collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} on {}", self.title, self.device)?;
        for c in &self.checks {
            writeln!(f, "  [{}] {}: {}", if c.passed { "ok" } else { "FAIL" }, c.name, c.detail)?;
        }
        write!(f, "{} passed, {} failed", self.passed(), self.failed())
    }
}

/// Per-row comparison of values `[n, d]` with a reference: (max abs
/// difference, least cosine similarity of a row).
pub fn compare_rows(got: &[f32], expected: &[f32], d: usize) -> (f64, f64) {
    let max_abs = got.iter().zip(expected).map(|(a, b)| (*a as f64 - *b as f64).abs()).fold(0.0, f64::max);
    let min_cos = got
        .chunks(d.max(1))
        .zip(expected.chunks(d.max(1)))
        .map(|(a, b)| {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            dot / (na * nb)
        })
        .fold(1.0, f64::min);
    (max_abs, min_cos)
}

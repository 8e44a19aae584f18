//! Runs a corpus: every case under `catch_unwind` (panics recorded by
//! [`capture`](crate::capture) with the case name), error messages checked
//! against the project's rules, and the summary line CI prints. Every panic
//! and every malformed message is a failure: there are no exceptions.

use crate::capture;
use crate::{Case, Outcome};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// What went wrong with a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The loader panicked.
    Panic,
    /// The loader returned an error whose message breaks the rules (empty,
    /// several lines, or leaking `Option::unwrap()` / `Some(`).
    BadMessage,
}

/// A case that did not end in `Ok` or a well-formed typed error.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The case's name.
    pub case: String,
    /// Panic or bad message.
    pub kind: FailureKind,
    /// The panic's message, or the error message and what is wrong with it.
    pub message: String,
    /// Where it panicked, and for a panic outside the workspace the first
    /// workspace frame that led there.
    pub location: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            FailureKind::Panic => "panic",
            FailureKind::BadMessage => "bad error message",
        };
        write!(f, "{kind} in case '{}': {}", self.case, self.message)?;
        if !self.location.is_empty() {
            write!(f, " [{}]", self.location)?;
        }
        Ok(())
    }
}

/// The counts of one target's run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// The target's name.
    pub target: String,
    /// Cases run.
    pub cases: usize,
    /// Cases that ended in a typed error.
    pub typed_errors: usize,
    /// Cases that loaded.
    pub successes: usize,
    /// Cases that panicked.
    pub panics: usize,
    /// Typed errors with a message that breaks the rules.
    pub bad_messages: usize,
    /// Every failure (panics and bad messages), in corpus order.
    pub failures: Vec<Failure>,
    /// Time the corpus took.
    pub elapsed: Duration,
    /// The slowest cases, slowest first.
    pub slowest: Vec<(String, Duration)>,
}

impl fmt::Display for Summary {
    /// `fuzz <target>: N cases, E typed errors, S successes, P panics`, then
    /// bad messages when there are any, and the time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fuzz {}: {} cases, {} typed errors, {} successes, {} panics",
            self.target, self.cases, self.typed_errors, self.successes, self.panics
        )?;
        if self.bad_messages > 0 {
            write!(f, ", {} bad error messages", self.bad_messages)?;
        }
        write!(f, " ({:.1} s)", self.elapsed.as_secs_f64())
    }
}

impl Summary {
    /// The failures, one line each.
    pub fn details(&self) -> String {
        self.failures.iter().map(|failure| format!("  {failure}\n")).collect()
    }
}

// -------------------------------------------------------------- messages

/// What is wrong with an error message, if anything: it must say something,
/// on one line (a trailing line break is tolerated), without leaking
/// `unwrap()` or a Rust `Some(...)`.
pub fn message_problem(message: &str) -> Option<&'static str> {
    let message = message.trim_end();
    if message.trim().is_empty() {
        Some("the message is empty")
    } else if message.contains('\n') {
        Some("the message spans several lines")
    } else if message.contains("unwrap()") {
        Some("the message leaks an unwrap()")
    } else if message.contains("Some(") {
        Some("the message shows a Rust `Some(...)`")
    } else {
        None
    }
}

// ----------------------------------------------------------------- runs

/// Whether case `name` is to run: `TESSERA_FUZZ_CASE` names one case,
/// `TESSERA_FUZZ_FILTER` keeps the cases whose name contains it.
fn selected(name: &str) -> bool {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    env("TESSERA_FUZZ_CASE").is_none_or(|c| c == name) && env("TESSERA_FUZZ_FILTER").is_none_or(|f| name.contains(f.as_str()))
}

/// Whether `TESSERA_FUZZ_VERBOSE=1` asks for every case's outcome.
fn verbose() -> bool {
    std::env::var("TESSERA_FUZZ_VERBOSE").is_ok_and(|v| v == "1")
}

/// Runs `run(case)`, catching a panic: the outcome, or the panic's message
/// and location.
fn run_one(target: &str, case: &Case, run: fn(&Case) -> Outcome) -> Result<Outcome, (String, String)> {
    capture::set_running(target, Some(&case.name));
    capture::set_in_case(true);
    let result = catch_unwind(AssertUnwindSafe(|| run(case)));
    capture::set_in_case(false);
    capture::set_running(target, None);
    result.map_err(|payload| {
        let message = capture::panic_message(payload.as_ref());
        let location = capture::take_location(&message);
        (message, location)
    })
}

/// Runs every case of `corpus` through `run`. `TESSERA_FUZZ_CASE` and
/// `TESSERA_FUZZ_FILTER` select cases; `TESSERA_FUZZ_VERBOSE=1` prints
/// every case's outcome.
pub fn run_corpus(target: &str, corpus: Vec<Case>, run: fn(&Case) -> Outcome) -> Summary {
    capture::install_hook();
    capture::start_watchdog();
    capture::enter_harness_thread();
    let verbose = verbose();
    let mut summary = Summary { target: target.to_string(), ..Summary::default() };
    let mut times = Vec::with_capacity(corpus.len());
    let start = Instant::now();
    for case in corpus.iter().filter(|c| selected(&c.name)) {
        if verbose {
            println!("{target} {}: running", case.name);
        }
        let began = Instant::now();
        let result = run_one(target, case, run);
        times.push((case.name.clone(), began.elapsed()));
        if verbose {
            println!("{target} {}: {result:?}", case.name);
        }
        summary.cases += 1;
        match result {
            Ok(Outcome::Ok) => summary.successes += 1,
            Ok(Outcome::TypedError(message)) => {
                summary.typed_errors += 1;
                if let Some(problem) = message_problem(&message) {
                    summary.bad_messages += 1;
                    let message = format!("{problem}: {message:?}");
                    summary.failures.push(Failure {
                        case: case.name.clone(),
                        kind: FailureKind::BadMessage,
                        message,
                        location: String::new(),
                    });
                }
            }
            Err((message, location)) => {
                summary.panics += 1;
                summary.failures.push(Failure { case: case.name.clone(), kind: FailureKind::Panic, message, location });
            }
        }
    }
    summary.elapsed = start.elapsed();
    times.sort_by_key(|t| std::cmp::Reverse(t.1));
    times.truncate(3);
    summary.slowest = times;
    summary
}

/// Runs a target's corpus, prints its summary line (then every failure and
/// the slowest cases), and fails the test if any case panicked or returned
/// a badly formed message.
pub fn check_target(target: &str, corpus: Vec<Case>, run: fn(&Case) -> Outcome) -> Summary {
    let summary = run_corpus(target, corpus, run);
    println!("{summary}");
    print!("{}", summary.details());
    let slowest: Vec<String> = summary.slowest.iter().map(|(n, t)| format!("{n} ({:.0} ms)", t.as_secs_f64() * 1e3)).collect();
    println!("  slowest: {}", slowest.join(", "));
    let failures: Vec<String> = summary.failures.iter().map(|f| format!("  {f}")).collect();
    assert!(failures.is_empty(), "fuzz {target}: {} of {} cases failed:\n{}", failures.len(), summary.cases, failures.join("\n"));
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(case: &Case) -> Outcome {
        match case.main() {
            b"panic" => panic!("boom {}", case.name),
            b"index" => Outcome::TypedError(format!("byte {}", case.main()[100])),
            b"multi" => Outcome::TypedError("line one\nline two".into()),
            b"err" => Outcome::TypedError("file x: field 'a': expected an integer, got \"b\"\n".into()),
            _ => Outcome::Ok,
        }
    }

    fn mixed_corpus() -> Vec<Case> {
        vec![
            Case::bytes("ok", b"fine".to_vec()),
            Case::bytes("p", b"panic".to_vec()),
            Case::bytes("m", b"multi".to_vec()),
            Case::bytes("e", b"err".to_vec()),
            Case::bytes("i", b"index".to_vec()),
        ]
    }

    #[test]
    fn every_panic_and_bad_message_is_a_failure_with_the_case_name() {
        let s = run_corpus("unit", mixed_corpus(), outcomes);
        assert_eq!((s.cases, s.successes, s.typed_errors, s.panics, s.bad_messages), (5, 1, 2, 2, 1));
        let failed: Vec<(&str, &FailureKind)> = s.failures.iter().map(|f| (f.case.as_str(), &f.kind)).collect();
        assert_eq!(failed, [("p", &FailureKind::Panic), ("m", &FailureKind::BadMessage), ("i", &FailureKind::Panic)]);
        assert_eq!(s.failures[0].message, "boom p");
        assert!(s.failures[0].location.contains("harness.rs"), "{}", s.failures[0].location);
        assert!(s.failures[2].message.contains("out of bounds"), "{}", s.failures[2].message);
        assert!(s.to_string().starts_with("fuzz unit: 5 cases, 2 typed errors, 1 successes, 2 panics, 1 bad error messages ("), "{s}");
        let details = s.details();
        assert_eq!(details.lines().count(), 3, "{details}");
        assert!(details.contains("panic in case 'p': boom p") && details.contains("bad error message in case 'm'"), "{details}");
    }

    #[test]
    #[should_panic(expected = "fuzz unit: 3 of 5 cases failed")]
    fn check_target_fails_on_any_failure() {
        check_target("unit", mixed_corpus(), outcomes);
    }

    #[test]
    fn check_target_passes_a_clean_corpus() {
        let corpus = vec![Case::bytes("ok", b"fine".to_vec()), Case::bytes("e", b"err".to_vec())];
        let s = check_target("unit", corpus, outcomes);
        assert_eq!((s.cases, s.successes, s.typed_errors, s.panics, s.bad_messages), (2, 1, 1, 0, 0));
        assert!(s.details().is_empty());
    }

    #[test]
    fn message_rules() {
        assert!(message_problem("config c.json: field 'x': must be positive").is_none());
        assert!(message_problem("a trailing line break\n").is_none());
        assert!(message_problem("").is_some());
        assert!(message_problem("a\nb").is_some());
        assert!(message_problem("called `Option::unwrap()` on a `None` value").is_some());
        assert!(message_problem("size Some((1, 2))").is_some());
    }
}

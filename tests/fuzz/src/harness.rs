//! Runs a corpus: every case under `catch_unwind` (panics recorded by
//! [`capture`](crate::capture) with the case name), error messages checked
//! against the project's rules, known failures counted apart, and the
//! summary line CI prints.
//!
//! Known failures, pending fixes in other crates, are of two kinds:
//!
//! - a case that may abort or hang is marked before it runs
//!   ([`Case::known`]) and runs in a child process ([`isolate`]);
//! - a panic matching a [`KnownPanic`] signature (where it happens and what
//!   it says) is counted apart instead of failing the test.
//!
//! Both are listed with the summary, with what to remove once fixed.

use crate::capture;
use crate::isolate::{self, KnownResult};
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

/// A panic known to happen pending a fix elsewhere: one whose location
/// contains `at` and whose message contains `message` is counted apart.
#[derive(Clone, Copy, Debug)]
pub struct KnownPanic {
    /// A part of the panic's location (file path; `called from` included).
    pub at: &'static str,
    /// A part of the panic's message (empty: any).
    pub message: &'static str,
    /// What is wrong and where the fix belongs.
    pub why: &'static str,
}

impl KnownPanic {
    fn matches(&self, failure: &Failure) -> bool {
        failure.kind == FailureKind::Panic && failure.location.contains(self.at) && failure.message.contains(self.message)
    }
}

/// The counts of one target's run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// The target's name.
    pub target: String,
    /// Cases run in this process.
    pub cases: usize,
    /// Cases that ended in a typed error.
    pub typed_errors: usize,
    /// Cases that loaded.
    pub successes: usize,
    /// Cases that panicked, known panics excluded.
    pub panics: usize,
    /// Typed errors with a message that breaks the rules.
    pub bad_messages: usize,
    /// Every failure (unknown panics and bad messages), in corpus order.
    pub failures: Vec<Failure>,
    /// Panics matching a known signature: (its index, the panic).
    pub known_panics: Vec<(usize, Failure)>,
    /// The known signatures the run was given.
    pub signatures: Vec<KnownPanic>,
    /// Known-failing cases, run in child processes: (name, why marked, how
    /// it ended).
    pub known_cases: Vec<(String, &'static str, KnownResult)>,
    /// Time the corpus took.
    pub elapsed: Duration,
    /// The slowest cases, slowest first.
    pub slowest: Vec<(String, Duration)>,
}

impl fmt::Display for Summary {
    /// `fuzz <target>: N cases, E typed errors, S successes, P panics`, then
    /// bad messages and known failures when there are any, and the time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fuzz {}: {} cases, {} typed errors, {} successes, {} panics",
            self.target, self.cases, self.typed_errors, self.successes, self.panics
        )?;
        if self.bad_messages > 0 {
            write!(f, ", {} bad error messages", self.bad_messages)?;
        }
        if !self.known_panics.is_empty() {
            write!(f, "; {} known panics (pending fixes)", self.known_panics.len())?;
        }
        if !self.known_cases.is_empty() {
            let passing = self.known_cases.iter().filter(|k| k.2 == KnownResult::Passes).count();
            let failing = self.known_cases.len() - passing;
            write!(f, "; {} known-failing cases run apart ({failing} still fail, {passing} now pass)", self.known_cases.len())?;
        }
        write!(f, " ({:.1} s)", self.elapsed.as_secs_f64())
    }
}

impl Summary {
    /// The failures, then the known panics per signature and the known
    /// cases per reason, one line each (a few examples per group).
    pub fn details(&self) -> String {
        let mut out = String::new();
        for failure in &self.failures {
            out += &format!("  {failure}\n");
        }
        for (i, signature) in self.signatures.iter().enumerate() {
            let hits: Vec<&Failure> = self.known_panics.iter().filter(|(k, _)| *k == i).map(|(_, f)| f).collect();
            match hits.first() {
                None => out += &format!("  known panic not seen (its entry can go): {}\n", signature.why),
                Some(first) => out += &format!("  known panic in {} cases: {}; e.g. {first}\n", hits.len(), signature.why),
            }
        }
        let mut reasons: Vec<&'static str> = self.known_cases.iter().map(|k| k.1).collect();
        reasons.dedup();
        for why in reasons {
            let cases: Vec<&(String, &'static str, KnownResult)> = self.known_cases.iter().filter(|k| k.1 == why).collect();
            let passing: Vec<&str> = cases.iter().filter(|k| k.2 == KnownResult::Passes).map(|k| k.0.as_str()).collect();
            out += &format!("  known-failing cases ({why}): {} run, {} now pass\n", cases.len(), passing.len());
            for (name, _, result) in cases.iter().filter(|k| k.2 != KnownResult::Passes).take(3) {
                out += &format!("    '{name}': {result}\n");
            }
            if !passing.is_empty() {
                out += &format!("    now passing (the mark can go for these): {}\n", passing.join(", "));
            }
        }
        out
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

/// Whether `TESSERA_FUZZ_KNOWN=1` runs the known-failing cases in this
/// process, as the others.
pub fn run_known() -> bool {
    std::env::var("TESSERA_FUZZ_KNOWN").is_ok_and(|v| v == "1")
}

/// Whether case `name` is to run: `TESSERA_FUZZ_CASE` names one case,
/// `TESSERA_FUZZ_FILTER` keeps the cases whose name contains it.
fn selected(name: &str) -> bool {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    env("TESSERA_FUZZ_CASE").is_none_or(|c| c == name) && env("TESSERA_FUZZ_FILTER").is_none_or(|f| name.contains(f.as_str()))
}

/// The name of the running test (libtest names its threads after the
/// tests), else `fuzz_<target>`.
fn test_name(target: &str) -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => format!("fuzz_{target}"),
    }
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

/// Runs every case of `corpus` through `run`. A known-failing case runs in
/// a child process instead (see [`isolate`]) unless `TESSERA_FUZZ_KNOWN=1`;
/// a panic matching one of `known` is counted apart. `TESSERA_FUZZ_CASE`
/// and `TESSERA_FUZZ_FILTER` select cases; `TESSERA_FUZZ_VERBOSE=1` prints
/// every case's outcome.
pub fn run_corpus(target: &str, corpus: Vec<Case>, run: fn(&Case) -> Outcome, known: &[KnownPanic]) -> Summary {
    capture::install_hook();
    capture::start_watchdog();
    capture::enter_harness_thread();
    let in_process = run_known() || isolate::is_child();
    let verbose = verbose();
    let test = test_name(target);
    let mut summary = Summary { target: target.to_string(), signatures: known.to_vec(), ..Summary::default() };
    let mut times = Vec::with_capacity(corpus.len());
    let start = Instant::now();
    for case in corpus.iter().filter(|c| selected(&c.name)) {
        if let (Some(why), false) = (case.known, in_process) {
            let result = isolate::run_known_case(&test, &case.name);
            if verbose {
                println!("{target} {}: known case, {result}", case.name);
            }
            summary.known_cases.push((case.name.clone(), why, result));
            continue;
        }
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
                let failure = Failure { case: case.name.clone(), kind: FailureKind::Panic, message, location };
                match known.iter().position(|k| k.matches(&failure)) {
                    Some(i) => summary.known_panics.push((i, failure)),
                    None => {
                        summary.panics += 1;
                        summary.failures.push(failure);
                    }
                }
            }
        }
    }
    summary.elapsed = start.elapsed();
    times.sort_by_key(|t| std::cmp::Reverse(t.1));
    times.truncate(3);
    summary.slowest = times;
    summary
}

/// Runs a target's corpus, prints its summary line (then every failure,
/// the known failures and the slowest cases), and fails the test if any
/// case panicked (outside `known`) or returned a badly formed message.
pub fn check_target(target: &str, corpus: Vec<Case>, run: fn(&Case) -> Outcome, known: &[KnownPanic]) -> Summary {
    let summary = run_corpus(target, corpus, run, known);
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
            b"known" => panic!("known trouble"),
            b"multi" => Outcome::TypedError("line one\nline two".into()),
            b"err" => Outcome::TypedError("file x: field 'a': expected an integer, got \"b\"\n".into()),
            _ => Outcome::Ok,
        }
    }

    #[test]
    fn panics_and_bad_messages_are_failures_with_the_case_name() {
        let corpus = vec![
            Case::bytes("ok", b"fine".to_vec()),
            Case::bytes("p", b"panic".to_vec()),
            Case::bytes("m", b"multi".to_vec()),
            Case::bytes("e", b"err".to_vec()),
            Case::bytes("k", b"known".to_vec()),
        ];
        let known =
            [KnownPanic { at: "harness.rs", message: "trouble", why: "a test" }, KnownPanic { at: "nowhere", message: "", why: "gone" }];
        let s = run_corpus("unit", corpus, outcomes, &known);
        assert_eq!((s.cases, s.successes, s.typed_errors, s.panics, s.bad_messages), (5, 1, 2, 1, 1));
        assert_eq!(s.failures[0].case, "p");
        assert_eq!(s.failures[0].message, "boom p");
        assert!(s.failures[0].location.contains("harness.rs"), "{}", s.failures[0].location);
        assert_eq!((s.failures[1].case.as_str(), &s.failures[1].kind), ("m", &FailureKind::BadMessage));
        assert_eq!((s.known_panics.len(), s.known_panics[0].0, s.known_panics[0].1.case.as_str()), (1, 0, "k"));
        assert!(
            s.to_string().starts_with("fuzz unit: 5 cases, 2 typed errors, 1 successes, 1 panics, 1 bad error messages; 1 known panics"),
            "{s}"
        );
        let details = s.details();
        assert!(details.contains("known panic in 1 cases: a test") && details.contains("not seen (its entry can go): gone"), "{details}");
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

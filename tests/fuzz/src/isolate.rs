//! Known-failing cases ([`Case::known`](crate::Case::known)) run in a child
//! process of the test binary, under a memory limit, so that one that still
//! aborts (out of memory, stack overflow) or hangs cannot take the suite
//! down, and one that a fix has made pass is reported as such (its mark can
//! then go).
//!
//! The child is the same test binary, run as `<exe> --exact <test>` with
//! `TESSERA_FUZZ_CASE=<case name>` and `TESSERA_FUZZ_KNOWN=1`, through
//! `sh -c 'ulimit -v ...'` (4 GB of address space, or
//! `TESSERA_FUZZ_CHILD_VMEM_KB`).

use std::fmt;
use std::process::{Command, Stdio};

/// How a known-failing case ended in its child process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KnownResult {
    /// It ended in `Ok` or a typed error: the fix has landed.
    Passes,
    /// It panicked (or returned a malformed message).
    Fails(String),
    /// The process died: an abort, a stack overflow, the memory limit.
    Aborts(String),
    /// The watchdog stopped it.
    Hangs,
    /// No child could be started (not on a Unix with `sh`).
    NotRun(String),
}

impl fmt::Display for KnownResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KnownResult::Passes => f.write_str("now passes (the mark can be removed)"),
            KnownResult::Fails(why) => write!(f, "still fails: {why}"),
            KnownResult::Aborts(why) => write!(f, "still aborts: {why}"),
            KnownResult::Hangs => f.write_str("still hangs"),
            KnownResult::NotRun(why) => write!(f, "not run: {why}"),
        }
    }
}

/// The exit code the watchdog uses for a hung case.
pub const HANG_EXIT: i32 = 3;

/// Whether this process is a child running one known case.
pub fn is_child() -> bool {
    std::env::var("TESSERA_FUZZ_CHILD").is_ok_and(|v| v == "1")
}

/// The first panic or failure line of the child's output.
fn failure_line(output: &str) -> String {
    output.lines().find(|l| l.trim_start().starts_with("panic in case") || l.contains("bad error message")).unwrap_or("").trim().to_string()
}

/// Runs case `case` of test `test` in a child process.
pub fn run_known_case(test: &str, case: &str) -> KnownResult {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return KnownResult::NotRun(format!("no test binary path: {e}")),
    };
    if !cfg!(unix) {
        return KnownResult::NotRun("child processes with a memory limit need a Unix shell".into());
    }
    let vmem = std::env::var("TESSERA_FUZZ_CHILD_VMEM_KB").unwrap_or_else(|_| "4000000".into());
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {vmem} 2>/dev/null; exec \"$0\" \"$@\""))
        .arg(&exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("TESSERA_FUZZ_CHILD", "1")
        .env("TESSERA_FUZZ_KNOWN", "1")
        .env("TESSERA_FUZZ_CASE", case)
        .env_remove("TESSERA_FUZZ_FILTER")
        .env_remove("TESSERA_FUZZ_VERBOSE")
        .stdin(Stdio::null())
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => return KnownResult::NotRun(format!("cannot start sh: {e}")),
    };
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    match output.status.code() {
        Some(0) if text.contains("known panic in") => KnownResult::Fails(known_panic_line(&text)),
        Some(0) if text.contains(" 1 cases,") => KnownResult::Passes,
        Some(0) => KnownResult::NotRun(format!("the child did not find case '{case}' in test {test}")),
        Some(HANG_EXIT) => KnownResult::Hangs,
        Some(101) => match failure_line(&text) {
            line if line.is_empty() => KnownResult::Fails(last_line(&text)),
            line => KnownResult::Fails(line),
        },
        Some(code) => KnownResult::Aborts(format!("exit code {code}: {}", last_line(&text))),
        None => KnownResult::Aborts(format!("{}: {}", signal_of(&output.status), last_line(&text))),
    }
}

/// The child's line about the known panic its case hit.
fn known_panic_line(text: &str) -> String {
    text.lines().find(|l| l.contains("known panic in")).map(|l| l.trim().to_string()).unwrap_or_default()
}

/// The line of the child's output that says why it died: an allocation
/// failure or stack overflow if it reported one, else its last line.
fn last_line(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let fatal = lines.iter().find(|l| l.contains("memory allocation of") || l.contains("overflowed its stack") || l.contains("hangs"));
    let last = lines.iter().rev().find(|l| !l.starts_with("error: test failed") && !l.starts_with("skipping backtrace"));
    fatal.or(last).map(|l| l.to_string()).unwrap_or_default()
}

#[cfg(unix)]
fn signal_of(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(6) => "killed by SIGABRT".into(),
        Some(9) => "killed by SIGKILL".into(),
        Some(11) => "killed by SIGSEGV".into(),
        Some(s) => format!("killed by signal {s}"),
        None => "ended without an exit code".into(),
    }
}

#[cfg(not(unix))]
fn signal_of(_: &std::process::ExitStatus) -> String {
    "ended without an exit code".into()
}

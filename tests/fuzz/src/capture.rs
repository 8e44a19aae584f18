//! What the harness watches while a case runs: panics (recorded quietly,
//! with their message, location and the first frame of the backtrace in the
//! workspace's own code, instead of printed) and time (a watchdog thread
//! that stops the process, naming the case, when one runs too long).

use std::backtrace::Backtrace;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// A recorded panic.
#[derive(Clone, Debug)]
struct PanicRecord {
    message: String,
    location: String,
}

thread_local! {
    /// Whether this thread is running a case right now.
    static IN_CASE: Cell<bool> = const { Cell::new(false) };
    /// Whether this thread runs corpora (its panics outside a case are the
    /// test's own and must be printed).
    static HARNESS_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Cases running on any thread (worker threads of a loader panic while one
/// runs: their panics are recorded rather than printed).
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// Panics recorded on any thread, matched to a case by their message.
static RECORDS: Mutex<Vec<PanicRecord>> = Mutex::new(Vec::new());

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic with a non-string payload)".to_string()
    }
}

/// The workspace's root directory (this crate is tests/fuzz in it).
fn workspace_root() -> &'static str {
    env!("CARGO_MANIFEST_DIR").trim_end_matches("/tests/fuzz")
}

/// The first frame of `backtrace` in the workspace's sources outside this
/// crate (`crates/...` or `tests/...`, not `tests/fuzz`), as `file:line`.
fn workspace_frame(backtrace: &str) -> Option<String> {
    let root = workspace_root();
    backtrace
        .lines()
        .filter_map(|l| l.trim().strip_prefix("at "))
        .find(|at| at.starts_with(root) && !at.contains("/tests/fuzz/"))
        .map(|at| at.trim_start_matches(root).trim_start_matches('/').to_string())
}

/// Installs the panic hook (once per process).
pub fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_case = IN_CASE.with(Cell::get);
            let harness = HARNESS_THREAD.with(Cell::get);
            if !(in_case || (!harness && ACTIVE.load(Ordering::SeqCst) > 0)) {
                return previous(info);
            }
            let message = panic_message(info.payload());
            let mut location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            // A panic in a dependency or the standard library: where the
            // workspace called it from (resolving the backtrace is slow, so
            // only then).
            if !location.starts_with("crates/") && !location.starts_with("tests/") {
                if let Some(frame) = workspace_frame(&Backtrace::force_capture().to_string()) {
                    location = format!("{location}, called from {frame}");
                }
            }
            let mut records = RECORDS.lock().unwrap_or_else(|p| p.into_inner());
            records.push(PanicRecord { message, location });
            let excess = records.len().saturating_sub(64);
            records.drain(..excess);
        }));
    });
}

/// Marks this thread as one that runs corpora.
pub fn enter_harness_thread() {
    HARNESS_THREAD.with(|h| h.set(true));
}

/// Marks the start (`true`) or end of a case on this thread.
pub fn set_in_case(running: bool) {
    IN_CASE.with(|c| c.set(running));
    if running {
        ACTIVE.fetch_add(1, Ordering::SeqCst);
    } else {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The recorded location of the panic whose message is `message`.
pub fn take_location(message: &str) -> String {
    let mut records = RECORDS.lock().unwrap_or_else(|p| p.into_inner());
    match records.iter().rposition(|r| r.message == message) {
        Some(i) => records.remove(i).location,
        None => String::new(),
    }
}

// -------------------------------------------------------------- watchdog

/// The exit code the watchdog stops the process with when a case hangs.
pub const HANG_EXIT: i32 = 3;

/// Seconds one case may run before the process is stopped as hung:
/// `TESSERA_FUZZ_CASE_TIMEOUT_S`, default 120.
fn case_timeout() -> Duration {
    let s = std::env::var("TESSERA_FUZZ_CASE_TIMEOUT_S").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(120);
    Duration::from_secs(s)
}

/// The case each target is running, and since when.
static RUNNING: Mutex<Option<HashMap<String, (String, Instant)>>> = Mutex::new(None);

/// Starts the watchdog thread (once per process).
pub fn start_watchdog() {
    static WATCHDOG: Once = Once::new();
    WATCHDOG.call_once(|| {
        let limit = case_timeout();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            let running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
            for (target, (case, since)) in running.iter().flatten() {
                if since.elapsed() > limit {
                    eprintln!("fuzz {target}: case '{case}' ran for more than {} s: it hangs (stopping the process)", limit.as_secs());
                    std::process::exit(HANG_EXIT);
                }
            }
        });
    });
}

/// Records that `target` runs `case` from now (`None`: nothing).
pub fn set_running(target: &str, case: Option<&str>) {
    let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    let map = running.get_or_insert_with(HashMap::new);
    match case {
        Some(case) => map.insert(target.to_string(), (case.to_string(), Instant::now())),
        None => map.remove(target),
    };
}

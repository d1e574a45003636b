//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Once;

/// A shared, clonable log of observations, the Rust form of Twisted tests' `l = []`.
#[derive(Clone, Default)]
pub struct Log<T>(Rc<RefCell<Vec<T>>>);

impl<T: Clone> Log<T> {
    pub fn new() -> Self {
        Log(Rc::new(RefCell::new(Vec::new())))
    }
    pub fn push(&self, v: T) {
        self.0.borrow_mut().push(v);
    }
    pub fn get(&self) -> Vec<T> {
        self.0.borrow().clone()
    }
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }
}

thread_local! {
    static CAPTURED: RefCell<Vec<(log::Level, String)>> = const { RefCell::new(Vec::new()) };
}

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        // Per thread: cargo runs tests in parallel threads, each sees only its own records.
        CAPTURED.with(|c| {
            c.borrow_mut()
                .push((record.level(), record.args().to_string()))
        });
    }
    fn flush(&self) {}
}

static INIT: Once = Once::new();

/// Starts capturing log records on this thread and clears what was captured before.
pub fn capture_logs() {
    INIT.call_once(|| {
        let _ = log::set_logger(&Capture);
        log::set_max_level(log::LevelFilter::Trace);
    });
    CAPTURED.with(|c| c.borrow_mut().clear());
}

/// The records captured on this thread since `capture_logs`, at error level.
pub fn captured_errors() -> Vec<String> {
    CAPTURED.with(|c| {
        c.borrow()
            .iter()
            .filter(|(l, _)| *l == log::Level::Error)
            .map(|(_, m)| m.clone())
            .collect()
    })
}

/// Runs a built example (cargo builds examples before integration tests) and returns stdout.
pub fn run_example(name: &str, args: &[&str]) -> String {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target directory")
        .join("examples");
    let path = dir.join(name);
    let out = std::process::Command::new(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `body` on a thread of its own and fails the test if it has not finished within
/// `secs` seconds, so a reactor that hangs fails its test instead of blocking CI. A
/// `Reactor` is not `Send`: the body builds its own (and calls `capture_logs` itself if it
/// checks logs, since captures are per thread). A panic in the body fails the test with the
/// body's own message.
pub fn bounded<T: Send + 'static>(secs: u64, body: impl FnOnce() -> T + Send + 'static) -> T {
    use std::sync::mpsc;
    use std::time::Duration;
    let (done, finished) = mpsc::channel();
    let name = std::thread::current()
        .name()
        .unwrap_or("bounded test")
        .to_string();
    let handle = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let v = body();
            let _ = done.send(());
            v
        })
        .expect("cannot start the test thread");
    match finished.recv_timeout(Duration::from_secs(secs)) {
        // Disconnected: the body panicked (dropping the sender); join reports the panic.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {secs} s"),
    }
}

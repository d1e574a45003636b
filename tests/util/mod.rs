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

/// The path of a built example (cargo builds examples before integration tests).
pub fn example_path(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target directory")
        .join("examples")
        .join(name)
}

/// A line the child printed, with when it arrived (since just before the spawn).
pub type TimedLine = (std::time::Duration, String);

/// An example running as a child process, stdout and stderr piped. Every wait is bounded:
/// on timeout the child is killed and the test fails with a message naming the example.
/// Dropping it kills the child if it still runs (so a failing test leaves no process behind).
pub struct RunningExample {
    name: String,
    child: std::process::Child,
    start: std::time::Instant,
    lines: std::sync::mpsc::Receiver<TimedLine>,
    stdout_reader: Option<std::thread::JoinHandle<()>>,
    stderr_reader: Option<std::thread::JoinHandle<String>>,
}

/// How a [`RunningExample`] ended.
#[derive(Debug)]
pub struct Finished {
    pub status: std::process::ExitStatus,
    /// When the exit was seen (since just before the spawn; polled every 5 ms).
    pub elapsed: std::time::Duration,
    /// The stdout lines not read with `next_line` before the exit.
    pub lines: Vec<TimedLine>,
    pub stderr: String,
}

/// Spawns a built example with `args`, reading its stdout line by line as it arrives.
pub fn spawn_example(name: &str, args: &[&str]) -> RunningExample {
    spawn_program(&example_path(name), name, args)
}

/// Spawns the program at `path` with `args` (as [`spawn_example`] does for examples), naming
/// it `name` in failure messages.
pub fn spawn_program(path: &std::path::Path, name: &str, args: &[&str]) -> RunningExample {
    use std::io::{BufRead, Read};
    use std::process::{Command, Stdio};

    let start = std::time::Instant::now();
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout_reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((start.elapsed(), line)).is_err() {
                break;
            }
        }
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    RunningExample {
        name: name.to_string(),
        child,
        start,
        lines,
        stdout_reader: Some(stdout_reader),
        stderr_reader: Some(stderr_reader),
    }
}

impl RunningExample {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Kills the child (if it still runs) and fails the test with `why`.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self
            .stderr_reader
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        panic!("example {}: {why}; its stderr: {stderr:?}", self.name);
    }

    /// The next line of stdout, waiting at most `timeout`.
    pub fn next_line(&mut self, timeout: std::time::Duration) -> TimedLine {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => l,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                self.fail(&format!("printed no line within {timeout:?}"))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                self.fail("closed stdout before printing the expected line")
            }
        }
    }

    /// Sends signal `sig` to the child.
    pub fn signal(&mut self, sig: i32) {
        // SAFETY: kill(2) with the pid of our own child, which has not been reaped yet (we
        // hold its `Child` and only `wait` reaps it), so the pid cannot have been reused.
        let r = unsafe { libc::kill(self.pid(), sig) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            self.fail(&format!("kill({sig}) failed: {e}"));
        }
    }

    /// Waits at most `timeout` until the child has handlers for all of `signals` installed
    /// and has gone to sleep since (in its reactor's poll, the only place a running example
    /// sleeps). Linux: reads `State` and the caught-signals mask `SigCgt` of
    /// `/proc/PID/status`; elsewhere it just waits 300 ms.
    ///
    /// The mask alone is not enough: signal-hook installs the `sigaction` a moment before it
    /// publishes what the handler should do, and a signal arriving in between is lost.
    pub fn wait_for_signal_handlers(&mut self, signals: &[i32], timeout: std::time::Duration) {
        let status = format!("/proc/{}/status", self.pid());
        if std::fs::metadata(&status).is_err() {
            std::thread::sleep(std::time::Duration::from_millis(300));
            return;
        }
        let want: u64 = signals
            .iter()
            .map(|s| 1u64 << (s - 1))
            .fold(0, |a, b| a | b);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let text = std::fs::read_to_string(&status).unwrap_or_default();
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
            };
            let state = field("State:");
            let caught = field("SigCgt:").and_then(|m| u64::from_str_radix(&m, 16).ok());
            let asleep = state.as_deref().is_some_and(|s| s.starts_with('S'));
            if asleep && caught.is_some_and(|c| c & want == want) {
                return;
            }
            if std::time::Instant::now() >= deadline {
                self.fail(&format!(
                    "did not install handlers for signals {signals:?} and wait within \
                     {timeout:?} (State {state:?}, SigCgt {caught:x?})"
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Waits at most `timeout` for the child to exit; then collects the rest of its output.
    pub fn wait(mut self, timeout: std::time::Duration) -> Finished {
        let deadline = self.start.elapsed() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if self.start.elapsed() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Ok(None) => self.fail(&format!("did not exit within {timeout:?}")),
                Err(e) => self.fail(&format!("cannot wait for it: {e}")),
            }
        };
        let elapsed = self.start.elapsed();
        // The child has exited: its pipes close, so the readers finish (unless it left a
        // process of its own holding them, which none of the examples does).
        if let Some(h) = self.stdout_reader.take() {
            let _ = h.join();
        }
        let stderr = self
            .stderr_reader
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Finished {
            status,
            elapsed,
            lines: self.lines.try_iter().collect(),
            stderr,
        }
    }
}

impl Drop for RunningExample {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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

/// The port at the end of a server's first line, `... listening on tcp:127.0.0.1:PORT` (or a
/// line that is just the port).
pub fn port_in(line: &str) -> u16 {
    let last = line.trim().rsplit([':', ' ']).next().unwrap_or_default();
    last.parse()
        .unwrap_or_else(|_| panic!("no port at the end of {line:?}"))
}

/// A blocking TCP connection to `127.0.0.1:port` whose reads and writes fail after 10 s, so
/// a silent server fails the test instead of hanging it.
pub fn connect_local(port: u16) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("cannot connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("set_read_timeout");
    s.set_write_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("set_write_timeout");
    s
}

/// Reads from `stream` until the peer closes it (EOF); a read error (the 10 s timeout of
/// [`connect_local`], a reset) fails the test with what was read so far.
pub fn read_to_eof(stream: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "reading until EOF failed ({e}) after {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// Reads from `stream` until `want` bytes arrived (fails the test on EOF, timeout or error).
pub fn read_exact_bytes(stream: &mut std::net::TcpStream, want: usize) -> Vec<u8> {
    use std::io::Read;
    let mut got = vec![0u8; want];
    if let Err(e) = stream.read_exact(&mut got) {
        panic!("wanted {want} bytes: {e}");
    }
    got
}

/// A local port nothing listens on (bound, then closed at once).
pub fn unused_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// A Python that can `import module`: `TWISTOR_PYTHON` first, then `python3` on `PATH`.
pub fn python_with(module: &str) -> Option<String> {
    let candidates = std::env::var("TWISTOR_PYTHON")
        .into_iter()
        .chain(["python3".to_string()]);
    candidates.into_iter().find(|p| {
        std::process::Command::new(p)
            .args(["-c", &format!("import {module}")])
            .stdin(std::process::Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Ends a test whose outside tool (Python, Twisted, curl) is missing: a `SKIPPED` line on
/// stderr, or, under CI (`CI` set), a failure, since there the tool must be installed.
pub fn skip_without(why: &str) {
    use std::io::Write;
    if std::env::var_os("CI").is_some() {
        panic!("this test must run in CI, but {why}");
    }
    // Not `eprintln!`: the harness captures it and a skip would go unseen.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

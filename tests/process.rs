//! Child processes on real processes: Twisted's `test_process.py` behaviours, exit reporting,
//! options, flow control both ways, signals and PTYs.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::error::{is_connection_done, is_connection_lost};
use twistor::prelude::*;
use twistor::transport::Producer;
use twistor::transport::process::{
    ChildFd, ProcessDone, ProcessProtocol, ProcessTerminated, ProcessTransport, ReactorProcess,
    SignalError, SpawnError, SpawnOptions, spawn_process,
};

/// Runs the reactor until `done` holds; panics after 20 s.
fn run_until(reactor: &Reactor, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for the process"
        );
        reactor.iterate(Duration::from_millis(20)).unwrap();
    }
}

/// Everything a protocol saw, in order.
#[derive(Default)]
struct Seen {
    events: Vec<String>,
    out: Vec<u8>,
    err: Vec<u8>,
    exited: Option<Failure>,
    ended: Option<Failure>,
    ended_count: u32,
}

type Shared = Rc<RefCell<Seen>>;

/// Records through the default dispatch of `ProcessProtocol` (Twisted's
/// `ProcessProtocolTests`: fd 1 → out, fd 2 → err, 0/1/2 lost → in/out/err lost).
struct Recorder(Shared);

impl ProcessProtocol for Recorder {
    fn out_received(&mut self, _t: &ProcessTransport, data: &[u8]) {
        self.0.borrow_mut().out.extend_from_slice(data);
    }
    fn err_received(&mut self, _t: &ProcessTransport, data: &[u8]) {
        self.0.borrow_mut().err.extend_from_slice(data);
    }
    fn in_connection_lost(&mut self, _t: &ProcessTransport) {
        self.0.borrow_mut().events.push("in lost".into());
    }
    fn out_connection_lost(&mut self, _t: &ProcessTransport) {
        self.0.borrow_mut().events.push("out lost".into());
    }
    fn err_connection_lost(&mut self, _t: &ProcessTransport) {
        self.0.borrow_mut().events.push("err lost".into());
    }
    fn process_exited(&mut self, _t: &ProcessTransport, reason: Failure) {
        let mut s = self.0.borrow_mut();
        s.events.push("exited".into());
        s.exited = Some(reason);
    }
    fn process_ended(&mut self, _t: &ProcessTransport, reason: Failure) {
        let mut s = self.0.borrow_mut();
        s.events.push("ended".into());
        s.ended = Some(reason);
        s.ended_count += 1;
    }
}

fn sh(reactor: &Reactor, script: &str, seen: &Shared) -> ProcessTransport {
    spawn_process(
        reactor,
        Recorder(seen.clone()),
        "/bin/sh",
        &["sh", "-c", script],
        SpawnOptions::new(),
    )
    .unwrap()
}

fn run_sh(script: &str) -> Seen {
    let reactor = Reactor::new().unwrap();
    let seen = Shared::default();
    sh(&reactor, script, &seen);
    run_until(&reactor, || seen.borrow().ended.is_some());
    // Nothing more arrives after process_ended.
    for _ in 0..3 {
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
    Rc::try_unwrap(seen)
        .ok()
        .map(RefCell::into_inner)
        .unwrap_or_else(|| panic!("the protocol is still referenced"))
}

// ---- Twisted's ProcessTests.test_process -----------------------------------------------------

/// Twisted's `TestProcessProtocol`: stages 1–5 driven by which pipe closes.
struct StageProtocol {
    stages: Rc<RefCell<Vec<u32>>>,
    data: Vec<u8>,
    err: Vec<u8>,
    reason: Rc<RefCell<Option<Failure>>>,
    transport: Rc<RefCell<Option<ProcessTransport>>>,
}

impl ProcessProtocol for StageProtocol {
    fn connection_made(&mut self, t: &ProcessTransport) {
        self.stages.borrow_mut().push(1);
        *self.transport.borrow_mut() = Some(t.clone());
        t.write(b"abcd");
    }
    fn child_data_received(&mut self, _t: &ProcessTransport, fd: i32, data: &[u8]) {
        match fd {
            1 => self.data.extend_from_slice(data),
            2 => self.err.extend_from_slice(data),
            _ => {}
        }
    }
    fn child_connection_lost(&mut self, t: &ProcessTransport, fd: i32) {
        match fd {
            1 => {
                self.stages.borrow_mut().push(2);
                assert_eq!(self.data, b"abcd");
                t.write(b"1234");
            }
            2 => {
                self.stages.borrow_mut().push(3);
                assert_eq!(self.err, b"1234");
                t.write(b"abcd");
                self.stages.borrow_mut().push(4);
            }
            0 => self.stages.borrow_mut().push(5),
            _ => {}
        }
    }
    fn process_ended(&mut self, _t: &ProcessTransport, reason: Failure) {
        *self.reason.borrow_mut() = Some(reason);
    }
}

#[test]
fn twisted_process_example_stages_exit_23_then_exited_already() {
    // The child of Twisted's process_tester.py: echo 4 bytes to stdout and close it, 4 to
    // stderr and close it, read 4 more, exit 23.
    let script = r#"b=$(head -c 4); printf %s "$b"; exec 1>&-
b=$(head -c 4); printf %s "$b" >&2; exec 2>&-
head -c 4 >/dev/null; exit 23"#;
    let reactor = Reactor::new().unwrap();
    let stages = Rc::new(RefCell::new(Vec::new()));
    let reason = Rc::new(RefCell::new(None));
    let transport = Rc::new(RefCell::new(None));
    spawn_process(
        &reactor,
        StageProtocol {
            stages: stages.clone(),
            data: Vec::new(),
            err: Vec::new(),
            reason: reason.clone(),
            transport: transport.clone(),
        },
        "/bin/sh",
        &["sh", "-c", script],
        SpawnOptions::new(),
    )
    .unwrap();
    run_until(&reactor, || reason.borrow().is_some());
    assert_eq!(*stages.borrow(), [1, 2, 3, 4, 5]);
    let reason = reason.borrow().clone().unwrap();
    let t = reason.downcast_ref::<ProcessTerminated>().unwrap();
    assert_eq!((t.exit_code, t.signal), (Some(23), None));
    let transport = transport.borrow().clone().unwrap();
    assert_eq!(transport.pid(), None, "pid is None once reaped");
    assert!(matches!(
        transport.signal_process("INT"),
        Err(SignalError::ExitedAlready(_))
    ));
}

// ---- exit reporting (PosixProcessBase) -------------------------------------------------------

#[test]
fn normal_termination_is_process_done() {
    let seen = run_sh("exit 0");
    let r = seen.ended.unwrap();
    let done = r.downcast_ref::<ProcessDone>().unwrap();
    assert_eq!(done.exit_code(), 0);
    assert!(is_connection_done(&r), "ProcessDone is a ConnectionDone");
    assert!(!is_connection_lost(&r));
}

#[test]
fn abnormal_termination_is_process_terminated_with_code() {
    let seen = run_sh("exit 1");
    let r = seen.ended.unwrap();
    let t = r.downcast_ref::<ProcessTerminated>().unwrap();
    assert_eq!((t.exit_code, t.signal), (Some(1), None));
    assert!(
        is_connection_lost(&r),
        "ProcessTerminated is a ConnectionLost"
    );
    assert!(r.to_string().contains("exit code 1"));
}

fn killed_by(signal: &str, number: i32) {
    let reactor = Reactor::new().unwrap();
    let seen = Shared::default();
    // `exec`: the signal reaches the sleeping process itself, not a shell waiting on it.
    let t = sh(&reactor, "exec sleep 30", &seen);
    t.signal_process(signal).unwrap();
    run_until(&reactor, || seen.borrow().ended.is_some());
    let s = seen.borrow();
    let r = s.ended.clone().unwrap();
    let term = r.downcast_ref::<ProcessTerminated>().unwrap();
    assert_eq!((term.exit_code, term.signal), (None, Some(number)));
    assert_eq!(
        term.status & 0x7f,
        number,
        "the raw status carries the signal"
    );
}

#[test]
fn signal_term_reports_the_signal() {
    killed_by("TERM", libc::SIGTERM);
}

#[test]
fn kill_9_reports_process_terminated_with_signal_9() {
    killed_by("KILL", 9);
}

#[test]
fn kill_9_from_outside_reports_signal_9() {
    let reactor = Reactor::new().unwrap();
    let seen = Shared::default();
    let t = sh(&reactor, "exec sleep 30", &seen);
    let pid = t.pid().unwrap() as libc::pid_t;
    // SAFETY: signals our own child, which is not reaped yet (its pid cannot be reused).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    run_until(&reactor, || seen.borrow().ended.is_some());
    let r = seen.borrow().ended.clone().unwrap();
    assert_eq!(
        r.downcast_ref::<ProcessTerminated>().unwrap().signal,
        Some(9)
    );
}

#[test]
fn signal_numbers_and_unknown_names() {
    let reactor = Reactor::new().unwrap();
    let seen = Shared::default();
    let t = sh(&reactor, "exec sleep 30", &seen);
    assert!(matches!(
        t.signal_process("NOPE"),
        Err(SignalError::UnknownSignal(_))
    ));
    t.signal_process(libc::SIGHUP).unwrap();
    run_until(&reactor, || seen.borrow().ended.is_some());
    let r = seen.borrow().ended.clone().unwrap();
    assert_eq!(
        r.downcast_ref::<ProcessTerminated>().unwrap().signal,
        Some(libc::SIGHUP)
    );
}

// ---- the protocol's events -------------------------------------------------------------------

#[test]
fn default_dispatch_and_process_ended_exactly_once_and_last() {
    let seen = run_sh("echo out; echo err >&2");
    assert_eq!(seen.out, b"out\n");
    assert_eq!(seen.err, b"err\n");
    assert_eq!(seen.ended_count, 1);
    assert_eq!(seen.events.last().map(String::as_str), Some("ended"));
    for e in ["in lost", "out lost", "err lost", "exited"] {
        assert_eq!(
            seen.events.iter().filter(|x| *x == e).count(),
            1,
            "{e} once: {:?}",
            seen.events
        );
    }
    assert!(seen.exited.is_some());
}

#[test]
fn process_ended_waits_for_pipes_a_grandchild_holds() {
    // The shell exits at once; the background sleep keeps stdout open for a while.
    let seen = run_sh("(sleep 0.3; echo late) &");
    let exited = seen.events.iter().position(|e| e == "exited").unwrap();
    let out_lost = seen.events.iter().position(|e| e == "out lost").unwrap();
    assert!(exited < out_lost, "{:?}", seen.events);
    assert_eq!(seen.out, b"late\n");
    assert_eq!(seen.events.last().map(String::as_str), Some("ended"));
}

#[test]
fn write_then_close_stdin_reaches_the_child() {
    struct Cat(Shared);
    impl ProcessProtocol for Cat {
        fn connection_made(&mut self, t: &ProcessTransport) {
            t.write(b"hello ");
            t.write_sequence(&[b"wor", b"ld"]);
            t.close_stdin();
        }
        fn out_received(&mut self, _t: &ProcessTransport, d: &[u8]) {
            self.0.borrow_mut().out.extend_from_slice(d);
        }
        fn process_ended(&mut self, _t: &ProcessTransport, r: Failure) {
            self.0.borrow_mut().ended = Some(r);
        }
    }
    let reactor = Reactor::new().unwrap();
    let seen = Shared::default();
    reactor
        .spawn_process(Cat(seen.clone()), "cat", &["cat"], SpawnOptions::new())
        .unwrap();
    run_until(&reactor, || seen.borrow().ended.is_some());
    assert_eq!(seen.borrow().out, b"hello world");
    assert!(seen.borrow().ended.as_ref().unwrap().is::<ProcessDone>());
}

#[test]
fn a_panicking_protocol_still_reaps_its_child() {
    struct Panicky(Rc<Cell<bool>>);
    impl ProcessProtocol for Panicky {
        fn out_received(&mut self, _t: &ProcessTransport, _d: &[u8]) {
            panic!("protocol bug");
        }
        fn process_exited(&mut self, _t: &ProcessTransport, _r: Failure) {
            panic!("another protocol bug");
        }
        fn process_ended(&mut self, _t: &ProcessTransport, _r: Failure) {
            self.0.set(true);
        }
    }
    let reactor = Reactor::new().unwrap();
    let ended = Rc::new(Cell::new(false));
    let t = spawn_process(
        &reactor,
        Panicky(ended.clone()),
        "/bin/sh",
        &["sh", "-c", "echo x"],
        SpawnOptions::new(),
    )
    .unwrap();
    let pid = t.pid().unwrap();
    run_until(&reactor, || ended.get());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "no zombie left"
    );
}

// ---- spawning options ------------------------------------------------------------------------

#[test]
fn exec_failure_is_an_error_not_a_hang() {
    let reactor = Reactor::new().unwrap();
    let seen = Shared::default();
    let start = Instant::now();
    let e = spawn_process(
        &reactor,
        Recorder(seen.clone()),
        "/nonexistent/program",
        &["program"],
        SpawnOptions::new(),
    )
    .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    match e {
        SpawnError::Io { source, .. } => assert_eq!(source.kind(), std::io::ErrorKind::NotFound),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        seen.borrow().events.is_empty(),
        "the protocol was never connected"
    );
}

#[test]
fn pty_with_child_fds_is_refused() {
    let reactor = Reactor::new().unwrap();
    let e = spawn_process(
        &reactor,
        Recorder(Shared::default()),
        "true",
        &["true"],
        SpawnOptions::new()
            .use_pty(true)
            .child_fd(0, ChildFd::Write),
    )
    .unwrap_err();
    assert!(matches!(e, SpawnError::PtyWithChildFds));
}

#[test]
fn full_argv_is_passed_including_argv0() {
    let seen = run_sh_args(
        &["my-name", "-c", "cat /proc/$$/cmdline", "zero"],
        SpawnOptions::new(),
    );
    assert_eq!(seen.out, b"my-name\0-c\0cat /proc/$$/cmdline\0zero\0");
}

fn run_sh_args(args: &[&str], options: SpawnOptions) -> Seen {
    let reactor = Reactor::new().unwrap();
    let seen = Shared::default();
    spawn_process(&reactor, Recorder(seen.clone()), "/bin/sh", args, options).unwrap();
    run_until(&reactor, || seen.borrow().ended.is_some());
    seen.take()
}

#[test]
fn default_environment_is_the_parents() {
    let Ok(home) = std::env::var("PATH") else {
        return;
    };
    let seen = run_sh_args(&["sh", "-c", "printf %s \"$PATH\""], SpawnOptions::new());
    assert_eq!(seen.out, home.as_bytes());
}

#[test]
fn env_option_is_the_exact_environment() {
    let reactor = Reactor::new().unwrap();
    let seen = Shared::default();
    spawn_process(
        &reactor,
        Recorder(seen.clone()),
        "/usr/bin/env",
        &["env"],
        SpawnOptions::new().env([("ONLY", "this")]),
    )
    .unwrap();
    run_until(&reactor, || seen.borrow().ended.is_some());
    assert_eq!(seen.borrow().out, b"ONLY=this\n");
}

#[test]
fn path_option_is_the_working_directory() {
    let seen = run_sh_args(&["sh", "-c", "pwd -P"], SpawnOptions::new().path("/"));
    assert_eq!(seen.out, b"/\n");
}

#[test]
fn other_descriptors_are_closed_in_the_child() {
    // A descriptor of the parent without close-on-exec must not reach the child.
    let mut fds = [0; 2];
    // SAFETY: plain pipe(2) without flags: inheritable on purpose.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // Both ways of spawning: posix_spawn (the default) and fork + exec (forced by `path`).
    for options in [SpawnOptions::new(), SpawnOptions::new().path("/")] {
        let seen = run_sh_args(&["sh", "-c", "ls /proc/$$/fd"], options);
        let listed = String::from_utf8(seen.out).unwrap();
        let mut listed_fds: Vec<i32> = listed
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        listed_fds.sort();
        assert_eq!(listed_fds, [0, 1, 2], "{listed}");
    }
    // SAFETY: closing the two descriptors made above.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}

#[test]
fn child_fds_map_extra_pipes_and_inherited_descriptors() {
    let mut fds = [0; 2];
    // SAFETY: a close-on-exec pipe; the child gets its write end as fd 5 through child_fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let opts = SpawnOptions::new().child_fds([
        (0, ChildFd::Write),
        (1, ChildFd::Read),
        (3, ChildFd::Read),
        (5, ChildFd::Inherit(fds[1])),
    ]);
    struct Fd3(Shared);
    impl ProcessProtocol for Fd3 {
        fn child_data_received(&mut self, _t: &ProcessTransport, fd: i32, data: &[u8]) {
            let mut s = self.0.borrow_mut();
            s.events.push(format!("fd{fd}"));
            s.out.extend_from_slice(data);
        }
        fn child_connection_lost(&mut self, _t: &ProcessTransport, fd: i32) {
            self.0.borrow_mut().events.push(format!("lost{fd}"));
        }
        fn process_ended(&mut self, _t: &ProcessTransport, r: Failure) {
            self.0.borrow_mut().ended = Some(r);
        }
    }
    let reactor = Reactor::new().unwrap();
    let seen = Shared::default();
    spawn_process(
        &reactor,
        Fd3(seen.clone()),
        "/bin/sh",
        &["sh", "-c", "echo three >&3; echo five >&5; ls /proc/$$/fd"],
        opts,
    )
    .unwrap();
    run_until(&reactor, || seen.borrow().ended.is_some());
    // SAFETY: closing our write end, then reading what the child wrote through it.
    let mut buf = [0u8; 16];
    let n = unsafe {
        libc::close(fds[1]);
        libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len())
    };
    // SAFETY: closing the read end.
    unsafe { libc::close(fds[0]) };
    assert_eq!(&buf[..n as usize], b"five\n");
    let s = seen.borrow();
    assert!(s.events.contains(&"fd3".to_string()), "{:?}", s.events);
    let text = String::from_utf8_lossy(&s.out);
    assert!(text.contains("three\n"), "{text}");
    let mut listed: Vec<i32> = text
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    listed.sort();
    assert_eq!(listed, [0, 1, 3, 5], "fd 2 was left out of the map: closed");
    for fd in [0, 1, 3] {
        assert!(s.events.contains(&format!("lost{fd}")), "{:?}", s.events);
    }
}

fn ignored_signals(options: SpawnOptions) -> u64 {
    let seen = run_sh_args(&["sh", "-c", "exec grep SigIgn /proc/self/status"], options);
    let text = String::from_utf8(seen.out).unwrap();
    let hex = text.trim().trim_start_matches("SigIgn:").trim();
    u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("{text:?}"))
}

#[test]
fn signals_the_parent_ignores_are_reset_in_the_child() {
    // The test binary ignores SIGPIPE (every Rust program does).
    // SAFETY: reading the disposition of SIGPIPE.
    let pipe = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    assert_eq!(pipe, libc::SIG_IGN, "the parent ignores SIGPIPE");
    // posix_spawn (the default request): glibc leaves its two internal real-time signals
    // (32, 33) ignored; every standard signal is reset.
    assert_eq!(ignored_signals(SpawnOptions::new()) & 0x7fff_ffff, 0);
    // fork + exec (a working directory forces it): everything is reset.
    assert_eq!(ignored_signals(SpawnOptions::new().path("/")), 0);
}

#[test]
fn pty_child_sees_a_terminal_and_its_output_arrives() {
    let seen = run_sh_args(
        &[
            "sh",
            "-c",
            "test -t 0 && test -t 1 && test -t 2 && echo is-a-tty",
        ],
        SpawnOptions::new().use_pty(true),
    );
    let out = String::from_utf8_lossy(&seen.out);
    assert!(out.contains("is-a-tty"), "{out:?}");
    assert!(seen.ended.unwrap().is::<ProcessDone>());
}

#[test]
fn pty_input_reaches_the_child() {
    struct Talk(Shared);
    impl ProcessProtocol for Talk {
        fn connection_made(&mut self, t: &ProcessTransport) {
            t.write(b"ping\n");
        }
        fn out_received(&mut self, _t: &ProcessTransport, d: &[u8]) {
            self.0.borrow_mut().out.extend_from_slice(d);
        }
        fn process_ended(&mut self, _t: &ProcessTransport, r: Failure) {
            self.0.borrow_mut().ended = Some(r);
        }
    }
    let reactor = Reactor::new().unwrap();
    let seen = Shared::default();
    spawn_process(
        &reactor,
        Talk(seen.clone()),
        "/bin/sh",
        &["sh", "-c", "read x; echo got-$x"],
        SpawnOptions::new().use_pty(true),
    )
    .unwrap();
    run_until(&reactor, || seen.borrow().ended.is_some());
    assert!(String::from_utf8_lossy(&seen.borrow().out).contains("got-ping"));
}

// ---- flow control ----------------------------------------------------------------------------

const HUNDRED_MIB: usize = 100 << 20;

#[test]
fn paused_output_of_a_100_mib_child_stays_bounded() {
    // The protocol pauses after each MiB and resumes a few milliseconds later: while paused
    // nothing arrives, and what arrives per window is bounded by one read budget.
    struct Slow {
        seen: Rc<Cell<usize>>,
        window: Rc<Cell<usize>>,
        max_window: Rc<Cell<usize>>,
        reactor: Reactor,
        ended: Rc<Cell<bool>>,
    }
    impl ProcessProtocol for Slow {
        fn connection_made(&mut self, t: &ProcessTransport) {
            t.pause_producing();
            let (t, window) = (t.clone(), self.window.clone());
            self.reactor.call_later(0.05, move || {
                window.set(0);
                t.resume_producing();
            });
        }
        fn out_received(&mut self, t: &ProcessTransport, d: &[u8]) {
            self.seen.set(self.seen.get() + d.len());
            self.window.set(self.window.get() + d.len());
            self.max_window
                .set(self.max_window.get().max(self.window.get()));
            if self.window.get() >= 1 << 20 {
                t.pause_producing();
                let (t, window) = (t.clone(), self.window.clone());
                self.reactor.call_later(0.001, move || {
                    window.set(0);
                    t.resume_producing();
                });
            }
        }
        fn process_ended(&mut self, _t: &ProcessTransport, _r: Failure) {
            self.ended.set(true);
        }
    }
    let reactor = Reactor::new().unwrap();
    let seen = Rc::new(Cell::new(0));
    let max_window = Rc::new(Cell::new(0));
    let ended = Rc::new(Cell::new(false));
    spawn_process(
        &reactor,
        Slow {
            seen: seen.clone(),
            window: Rc::new(Cell::new(0)),
            max_window: max_window.clone(),
            reactor: reactor.clone(),
            ended: ended.clone(),
        },
        "head",
        &["head", "-c", &HUNDRED_MIB.to_string(), "/dev/zero"],
        SpawnOptions::new(),
    )
    .unwrap();
    // Paused from the start: nothing is read however long the reactor runs.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(30) {
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(seen.get(), 0, "nothing is read while paused");
    run_until(&reactor, || ended.get());
    assert_eq!(seen.get(), HUNDRED_MIB);
    assert!(
        max_window.get() <= (1 << 20) + 256 * 1024,
        "at most one read budget past the pause: {}",
        max_window.get()
    );
}

/// A push producer writing 64 KiB chunks to the child's stdin until paused.
struct Flood {
    transport: RefCell<Option<ProcessTransport>>,
    paused: Cell<bool>,
    stopped: Cell<bool>,
    written: Cell<usize>,
    pauses: Cell<u32>,
}

impl Flood {
    fn new(transport: Option<ProcessTransport>) -> Rc<Flood> {
        Rc::new(Flood {
            transport: RefCell::new(transport),
            paused: Cell::new(false),
            stopped: Cell::new(false),
            written: Cell::new(0),
            pauses: Cell::new(0),
        })
    }

    /// Registered as `t`'s streaming producer and already writing.
    fn streaming_into(t: &ProcessTransport) -> Rc<Flood> {
        let flood = Flood::new(Some(t.clone()));
        t.register_producer(flood.clone(), true).unwrap();
        flood.pump();
        flood
    }

    fn pump(&self) {
        let Some(t) = self.transport.borrow().clone() else {
            return;
        };
        let chunk = vec![b'x'; 64 * 1024];
        while !self.paused.get() && !self.stopped.get() && self.written.get() < HUNDRED_MIB {
            t.write(&chunk);
            self.written.set(self.written.get() + chunk.len());
        }
    }
}

impl Producer for Flood {
    fn pause_producing(&self) {
        self.paused.set(true);
        self.pauses.set(self.pauses.get() + 1);
    }
    fn resume_producing(&self) {
        self.paused.set(false);
        self.pump();
    }
    fn stop_producing(&self) {
        self.stopped.set(true);
    }
}

#[test]
fn a_child_that_never_reads_stdin_keeps_the_parent_bounded() {
    let reactor = Reactor::new().unwrap();
    let seen = Shared::default();
    let t = sh(&reactor, "exec sleep 30", &seen);
    let flood = Flood::streaming_into(&t);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(200) {
        reactor.iterate(Duration::from_millis(10)).unwrap();
    }
    assert!(flood.paused.get(), "the producer is paused");
    // The pipe (64 KiB by default) plus the high-water mark plus one chunk.
    assert!(
        t.buffered() <= 64 * 1024 + 64 * 1024,
        "buffered {}",
        t.buffered()
    );
    assert!(
        flood.written.get() <= 1 << 20,
        "written {}",
        flood.written.get()
    );
    t.signal_process("KILL").unwrap();
    run_until(&reactor, || seen.borrow().ended.is_some());
    assert!(flood.stopped.get(), "stdin closed: the producer is stopped");
}

#[test]
fn a_reading_child_takes_100_mib_through_the_producer() {
    let reactor = Reactor::new().unwrap();
    let seen = Shared::default();
    // wc counts what it reads; the producer is paused and resumed by the pipe's water marks.
    let t = sh(&reactor, "wc -c", &seen);
    let flood = Flood::streaming_into(&t);
    let mut max_buffered = 0;
    run_until(&reactor, || {
        max_buffered = max_buffered.max(t.buffered());
        if flood.written.get() >= HUNDRED_MIB && t.buffered() == 0 {
            t.close_stdin();
        }
        seen.borrow().ended.is_some()
    });
    assert!(flood.pauses.get() > 0);
    assert!(max_buffered <= 2 * 64 * 1024, "max buffered {max_buffered}");
    assert_eq!(
        String::from_utf8_lossy(&seen.borrow().out).trim(),
        HUNDRED_MIB.to_string()
    );
}

#[test]
fn register_producer_without_stdin_stops_it_at_once() {
    let reactor = Reactor::new().unwrap();
    let seen = Shared::default();
    let t = spawn_process(
        &reactor,
        Recorder(seen.clone()),
        "true",
        &["true"],
        SpawnOptions::new().child_fds([(1, ChildFd::Read)]),
    )
    .unwrap();
    let flood = Flood::new(None);
    t.register_producer(flood.clone(), true).unwrap();
    assert!(flood.stopped.get());
    t.write(b"dropped: there is no stdin");
    run_until(&reactor, || seen.borrow().ended.is_some());
}

// ---- twisted.internet.utils ------------------------------------------------------------------

/// The failure `d` fires with; panics if it succeeds.
fn failure_of<T: std::fmt::Debug + 'static>(reactor: &Reactor, d: &Deferred<T>) -> Failure {
    run_until(reactor, || d.called());
    d.peek(|r| r.unwrap().unwrap_err())
}

#[test]
fn get_process_output_fails_on_stderr_output() {
    use twistor::transport::process::get_process_output;
    use twistor::transport::process::utils::UnexpectedErrorOutput;
    let reactor = Reactor::new().unwrap();
    let d = get_process_output(
        &reactor,
        "/bin/sh",
        &["sh", "-c", "echo out; echo bad >&2"],
        SpawnOptions::new(),
    );
    let f = failure_of(&reactor, &d);
    let e = f.downcast_ref::<UnexpectedErrorOutput>().unwrap();
    assert_eq!(
        (e.stdout.as_slice(), e.stderr.as_slice()),
        (&b"out\n"[..], &b"bad\n"[..])
    );
}

#[test]
fn get_process_value_of_a_killed_child_is_process_terminated() {
    use twistor::transport::process::get_process_value;
    let reactor = Reactor::new().unwrap();
    let d = get_process_value(
        &reactor,
        "/bin/sh",
        &["sh", "-c", "kill -9 $$"],
        SpawnOptions::new(),
    );
    let f = failure_of(&reactor, &d);
    assert_eq!(
        f.downcast_ref::<ProcessTerminated>().unwrap().signal,
        Some(9)
    );
}

#[test]
fn get_process_output_and_value_of_a_killed_child_keeps_the_output() {
    use twistor::transport::process::get_process_output_and_value;
    use twistor::transport::process::utils::KilledWithOutput;
    let reactor = Reactor::new().unwrap();
    let d = get_process_output_and_value(
        &reactor,
        "/bin/sh",
        &["sh", "-c", "echo before; kill -TERM $$"],
        SpawnOptions::new(),
    );
    let f = failure_of(&reactor, &d);
    let k = f.downcast_ref::<KilledWithOutput>().unwrap();
    assert_eq!(
        (k.stdout.as_slice(), k.signal),
        (&b"before\n"[..], libc::SIGTERM)
    );
}

#[test]
fn a_spawn_failure_fails_the_utils_deferred() {
    use twistor::transport::process::get_process_value;
    let reactor = Reactor::new().unwrap();
    let d = get_process_value(&reactor, "/nonexistent", &["x"], SpawnOptions::new());
    let f = d.peek(|r| r.unwrap().unwrap_err());
    assert!(f.is::<SpawnError>());
}

#[test]
fn exec_failure_on_the_fork_path_is_an_error_too() {
    let reactor = Reactor::new().unwrap();
    let e = spawn_process(
        &reactor,
        Recorder(Shared::default()),
        "/nonexistent/program",
        &["program"],
        SpawnOptions::new().path("/"),
    )
    .unwrap_err();
    assert!(
        matches!(e, SpawnError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    );
}

#[test]
fn uid_and_gid_options_switch_the_user() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return; // switching needs root
    }
    let seen = run_sh_args(
        &["sh", "-c", "echo $(id -u) $(id -g)"],
        SpawnOptions::new().uid(65534).gid(65534),
    );
    assert_eq!(seen.out, b"65534 65534\n");
}

#[test]
fn close_stdout_gives_the_writing_child_sigpipe() {
    struct CloseOut(Shared);
    impl ProcessProtocol for CloseOut {
        fn connection_made(&mut self, t: &ProcessTransport) {
            t.close_stdout();
        }
        fn out_connection_lost(&mut self, _t: &ProcessTransport) {
            self.0.borrow_mut().events.push("out lost".into());
        }
        fn process_ended(&mut self, _t: &ProcessTransport, r: Failure) {
            self.0.borrow_mut().ended = Some(r);
        }
    }
    let reactor = Reactor::new().unwrap();
    let seen = Shared::default();
    // The child writes once the parent's end is closed: SIGPIPE, whose default disposition
    // the child has again although this test process ignores it.
    spawn_process(
        &reactor,
        CloseOut(seen.clone()),
        "/bin/sh",
        &["sh", "-c", "sleep 0.2; while :; do echo x; done"],
        SpawnOptions::new(),
    )
    .unwrap();
    run_until(&reactor, || seen.borrow().ended.is_some());
    let s = seen.borrow();
    assert_eq!(s.events, ["out lost"]);
    let r = s.ended.clone().unwrap();
    assert_eq!(
        r.downcast_ref::<ProcessTerminated>().unwrap().signal,
        Some(libc::SIGPIPE)
    );
}

//! Child processes (Twisted's `IReactorProcess`, `ProcessProtocol`, `IProcessTransport`).
//!
//! [`spawn_process`] starts a child and connects a [`ProcessProtocol`] to it; the protocol
//! gets a [`ProcessTransport`] to write to the child's stdin, close its descriptors, signal
//! it and pause its output.
//!
//! # What processes add to the stream core
//!
//! Each pipe the parent keeps (the child's stdin, stdout, stderr, any extra descriptor) is a
//! stream connection over a pipe: writes to the child get the write buffer, the producer slot
//! and the flush-then-close rule of every stream transport; output gets the read budget and
//! pause/resume. What is the process's own:
//!
//! - spawning: the descriptor map (`child_fds`), every other descriptor closed, signals the
//!   parent ignores reset to their default, an optional pseudo-terminal; an exec failure
//!   comes back from `spawn_process` as an error, never as a hang. A request that only maps
//!   0, 1 and 2 and changes nothing else (no PTY, environment, directory, uid or gid) uses
//!   glibc's `posix_spawn`, much cheaper for the parent than `fork`; glibc then leaves its
//!   two internal real-time signals (32 and 33) ignored in the child. Anything else goes
//!   through `fork` + `exec` ([`std::process::Command`] with a `pre_exec` hook), which resets
//!   every signal;
//! - reaping: one `pidfd` per child, registered as a readable source; when it fires the child
//!   is reaped at once, before any protocol code runs, so no zombie is left even if the
//!   protocol panics. There is no global `SIGCHLD` handler;
//! - the event order (Twisted's): `child_data_received` / `child_connection_lost` per pipe,
//!   `process_exited` once the child is reaped, then `process_ended` exactly once and last,
//!   when the child is reaped *and* every pipe is closed.
//!
//! # Departures from Twisted
//!
//! - The default environment is the parent's, not an empty one;
//!   [`SpawnOptions::env`] gives an exact environment.
//! - An `exec` failure is an `Err` of `spawn_process` (the protocol is never connected),
//!   where Twisted's child writes a traceback to its stderr and exits 1.
//! - Protocol callbacks that panic are logged and the process goes on (Twisted logs the
//!   exception); the child is reaped regardless.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;

use mio::{Interest, Token};

use crate::Failure;
use crate::protocol::serial::{Panic, Serial};
use crate::reactor::sources::SourceHandler;
use crate::reactor::{Reactor, Ready};
use crate::transport::stream::StreamConnection;
use crate::transport::{Address, Producer, ProducerError};

mod child;
mod pipe;
pub mod utils;

use pipe::{Pipe, PipeDriver, PipeEvents, PipeKind};

pub use utils::{get_process_output, get_process_output_and_value, get_process_value};

/// A protocol for a child process (Twisted's `ProcessProtocol`). Every method has a default:
/// `child_data_received` sends fd 1 to `out_received` and fd 2 to `err_received`;
/// `child_connection_lost` sends 0, 1, 2 to `in/out/err_connection_lost`.
///
/// ```
/// use twistor::Failure;
/// use twistor::transport::process::{ProcessProtocol, ProcessTransport};
///
/// struct Printer;
/// impl ProcessProtocol for Printer {
///     fn out_received(&mut self, _t: &ProcessTransport, data: &[u8]) {
///         print!("{}", String::from_utf8_lossy(data));
///     }
///     fn process_ended(&mut self, _t: &ProcessTransport, reason: Failure) {
///         println!("ended: {reason}");
///     }
/// }
/// ```
#[doc(alias = "IProcessProtocol")]
pub trait ProcessProtocol: 'static {
    /// The child is running and its pipes are open (`connectionMade`), called from within
    /// `spawn_process`.
    #[doc(alias = "connectionMade")]
    fn connection_made(&mut self, _t: &ProcessTransport) {}
    /// Bytes from the child's descriptor `fd` (`childDataReceived`).
    #[doc(alias = "childDataReceived")]
    fn child_data_received(&mut self, t: &ProcessTransport, fd: i32, data: &[u8]) {
        match fd {
            1 => self.out_received(t, data),
            2 => self.err_received(t, data),
            _ => {}
        }
    }
    /// Bytes from the child's stdout (or from its terminal, with a PTY).
    #[doc(alias = "outReceived")]
    fn out_received(&mut self, _t: &ProcessTransport, _data: &[u8]) {}
    /// Bytes from the child's stderr.
    #[doc(alias = "errReceived")]
    fn err_received(&mut self, _t: &ProcessTransport, _data: &[u8]) {}
    /// The pipe of the child's descriptor `fd` closed (`childConnectionLost`).
    #[doc(alias = "childConnectionLost")]
    fn child_connection_lost(&mut self, t: &ProcessTransport, fd: i32) {
        match fd {
            0 => self.in_connection_lost(t),
            1 => self.out_connection_lost(t),
            2 => self.err_connection_lost(t),
            _ => {}
        }
    }
    /// The stdin pipe closed.
    #[doc(alias = "inConnectionLost")]
    fn in_connection_lost(&mut self, _t: &ProcessTransport) {}
    /// The stdout pipe closed.
    #[doc(alias = "outConnectionLost")]
    fn out_connection_lost(&mut self, _t: &ProcessTransport) {}
    /// The stderr pipe closed.
    #[doc(alias = "errConnectionLost")]
    fn err_connection_lost(&mut self, _t: &ProcessTransport) {}
    /// The child was reaped: [`ProcessDone`] or [`ProcessTerminated`]. Pipes may still be
    /// open (a grandchild may hold them).
    #[doc(alias = "processExited")]
    fn process_exited(&mut self, _t: &ProcessTransport, _reason: Failure) {}
    /// The child was reaped and every pipe is closed: the last call, exactly once.
    #[doc(alias = "processEnded")]
    fn process_ended(&mut self, _t: &ProcessTransport, _reason: Failure) {}
}

/// The child exited with code 0 (Twisted's `ProcessDone`, a `ConnectionDone`:
/// [`is_connection_done`](crate::error::is_connection_done) is true for it).
///
/// ```
/// use twistor::{Failure, error::is_connection_done};
/// use twistor::transport::process::ProcessDone;
/// assert!(is_connection_done(&Failure::new(ProcessDone { status: 0 })));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("A process has ended without apparent errors: process finished with exit code 0.")]
pub struct ProcessDone {
    /// The raw wait status.
    pub status: i32,
}

impl ProcessDone {
    /// Always 0.
    pub fn exit_code(&self) -> i32 {
        0
    }
}

/// The child exited with a non-zero code or was killed by a signal (Twisted's
/// `ProcessTerminated`, a `ConnectionLost`:
/// [`is_connection_lost`](crate::error::is_connection_lost) is true for it).
///
/// ```
/// use twistor::transport::process::ProcessTerminated;
/// let t = ProcessTerminated { exit_code: None, signal: Some(9), status: 9 };
/// assert_eq!(t.to_string(), "A process has ended with a probable error condition: process ended by signal 9.");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("A process has ended with a probable error condition: process ended {}.", describe(*.exit_code, *.signal))]
pub struct ProcessTerminated {
    /// The exit code, `None` if a signal killed the child.
    pub exit_code: Option<i32>,
    /// The signal that killed the child, `None` if it exited.
    pub signal: Option<i32>,
    /// The raw wait status.
    pub status: i32,
}

fn describe(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (_, Some(s)) => format!("by signal {s}"),
        (Some(c), None) => format!("with exit code {c}"),
        (None, None) => "for an unknown reason".into(),
    }
}

/// The process was already reaped when it was signalled (Twisted's `ProcessExitedAlready`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("The process has already exited.")]
pub struct ProcessExitedAlready;

/// Why `signal_process` did nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The child was reaped already.
    #[error(transparent)]
    ExitedAlready(#[from] ProcessExitedAlready),
    /// Not one of the names `signal_process` knows.
    #[error("unknown signal name {0:?}")]
    UnknownSignal(String),
    /// `kill` failed otherwise (`EPERM`, …).
    #[error("cannot signal the process: {0}")]
    Os(#[source] io::Error),
}

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// `use_pty` with `child_fds` (Twisted's `ValueError`): a PTY is the child's 0, 1 and 2.
    #[error("use_pty and child_fds cannot be combined")]
    PtyWithChildFds,
    /// A descriptor number below 0 in `child_fds`.
    #[error("bad child descriptor {0}")]
    BadFd(i32),
    /// Creating pipes, forking or exec'ing failed (a missing executable: `NotFound`).
    #[error("cannot spawn {executable:?}: {source}")]
    Io {
        /// What was to be run.
        executable: OsString,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// What one child descriptor is connected to (Twisted's `childFDs` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildFd {
    /// A pipe the child writes and the parent reads (`"r"`): its data reaches
    /// `child_data_received`.
    Read,
    /// A pipe the parent writes and the child reads (`"w"`): see
    /// [`ProcessTransport::write_to_child`].
    Write,
    /// This parent descriptor, duplicated into the child.
    Inherit(RawFd),
}

/// Options of [`spawn_process`] (Twisted's `env`, `path`, `uid`, `gid`, `usePTY`,
/// `childFDs`).
///
/// ```
/// use twistor::transport::process::{ChildFd, SpawnOptions};
/// let o = SpawnOptions::new()
///     .env([("LANG", "C")])
///     .path(std::env::temp_dir())
///     .child_fd(3, ChildFd::Read);
/// # let _ = o;
/// ```
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    env: Option<Vec<(OsString, OsString)>>,
    path: Option<PathBuf>,
    uid: Option<u32>,
    gid: Option<u32>,
    use_pty: bool,
    child_fds: Option<BTreeMap<i32, ChildFd>>,
}

impl SpawnOptions {
    /// The defaults: the parent's environment and directory, stdin/stdout/stderr as pipes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Exactly this environment (nothing inherited).
    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
                .collect(),
        );
        self
    }

    /// The child's working directory.
    pub fn path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.path = Some(dir.into());
        self
    }

    /// Run as this user (needs the privilege to switch).
    pub fn uid(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }

    /// Run with this group.
    pub fn gid(mut self, gid: u32) -> Self {
        self.gid = Some(gid);
        self
    }

    /// Run in a new pseudo-terminal: the child's 0, 1 and 2 are the terminal, all its output
    /// arrives as fd 1, writes go to its input.
    pub fn use_pty(mut self, on: bool) -> Self {
        self.use_pty = on;
        self
    }

    /// Connects the child's descriptor `fd` to `what`. The first call replaces the default
    /// map (`0: Write, 1: Read, 2: Read`); descriptors left out are closed in the child.
    pub fn child_fd(mut self, fd: i32, what: ChildFd) -> Self {
        self.child_fds
            .get_or_insert_with(BTreeMap::new)
            .insert(fd, what);
        self
    }

    /// The whole descriptor map at once (see [`child_fd`](Self::child_fd)).
    pub fn child_fds(mut self, map: impl IntoIterator<Item = (i32, ChildFd)>) -> Self {
        self.child_fds = Some(map.into_iter().collect());
        self
    }
}

/// A signal, by Twisted's name (`"TERM"`, `"KILL"`, `"HUP"`, `"INT"`, `"STOP"`, also with a
/// `SIG` prefix and `"CONT"`, `"USR1"`, `"USR2"`, `"QUIT"`) or by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessSignal {
    /// A name.
    Name(String),
    /// A number.
    Number(i32),
}

impl From<&str> for ProcessSignal {
    fn from(s: &str) -> Self {
        ProcessSignal::Name(s.to_owned())
    }
}

impl From<i32> for ProcessSignal {
    fn from(n: i32) -> Self {
        ProcessSignal::Number(n)
    }
}

impl ProcessSignal {
    fn number(&self) -> Result<i32, SignalError> {
        let name = match self {
            ProcessSignal::Number(n) => return Ok(*n),
            ProcessSignal::Name(n) => n,
        };
        let short = name.strip_prefix("SIG").unwrap_or(name);
        Ok(match short {
            "HUP" => libc::SIGHUP,
            "INT" => libc::SIGINT,
            "KILL" => libc::SIGKILL,
            "TERM" => libc::SIGTERM,
            "STOP" => libc::SIGSTOP,
            "CONT" => libc::SIGCONT,
            "QUIT" => libc::SIGQUIT,
            "USR1" => libc::SIGUSR1,
            "USR2" => libc::SIGUSR2,
            _ => return Err(SignalError::UnknownSignal(name.clone())),
        })
    }
}

/// What the process handle does; users hold a [`ProcessTransport`].
trait ProcessImpl {
    fn pid(&self) -> Option<u32>;
    fn pipe(&self, fd: i32) -> Option<Rc<StreamConnection<Pipe>>>;
    fn stdin_fd(&self) -> i32;
    fn signal(&self, sig: i32) -> Result<(), SignalError>;
    fn output_fds(&self) -> Vec<i32>;
}

/// A protocol's handle on its child process (Twisted's `IProcessTransport`): cheap to clone.
///
/// Nothing called on it calls back into the protocol synchronously: pipe closes are reported
/// on a later step of the reactor.
#[doc(alias = "IProcessTransport")]
#[derive(Clone)]
pub struct ProcessTransport(Rc<dyn ProcessImpl>);

impl ProcessTransport {
    /// The child's pid, `None` once it was reaped.
    pub fn pid(&self) -> Option<u32> {
        self.0.pid()
    }

    /// Writes to the child's stdin (to its terminal, with a PTY); dropped if there is no
    /// stdin pipe (Twisted does the same).
    pub fn write(&self, data: &[u8]) {
        self.write_to_child(self.0.stdin_fd(), data)
    }

    /// Writes several chunks to the child's stdin.
    #[doc(alias = "writeSequence")]
    pub fn write_sequence(&self, chunks: &[&[u8]]) {
        if let Some(p) = self.0.pipe(self.0.stdin_fd()) {
            crate::transport::TransportImpl::write_sequence(&*p, chunks)
        }
    }

    /// Writes to the child's descriptor `fd` (a [`ChildFd::Write`] pipe).
    #[doc(alias = "writeToChild")]
    pub fn write_to_child(&self, fd: i32, data: &[u8]) {
        if let Some(p) = self.0.pipe(fd) {
            crate::transport::TransportImpl::write(&*p, data)
        }
    }

    /// Closes the pipe of the child's descriptor `fd`, after sending what was written to it.
    #[doc(alias = "closeChildFD")]
    pub fn close_child_fd(&self, fd: i32) {
        if let Some(p) = self.0.pipe(fd) {
            crate::transport::TransportImpl::lose_connection(&*p)
        }
    }

    /// Closes the child's stdin once what was written is sent: the child reads EOF.
    #[doc(alias = "closeStdin")]
    pub fn close_stdin(&self) {
        self.close_child_fd(0)
    }

    /// Stops reading the child's stdout and closes it.
    #[doc(alias = "closeStdout")]
    pub fn close_stdout(&self) {
        self.close_child_fd(1)
    }

    /// Stops reading the child's stderr and closes it.
    #[doc(alias = "closeStderr")]
    pub fn close_stderr(&self) {
        self.close_child_fd(2)
    }

    /// Closes stdin, stderr and stdout (Twisted's order); the child is not signalled.
    #[doc(alias = "loseConnection")]
    pub fn lose_connection(&self) {
        self.close_child_fd(0);
        self.close_child_fd(2);
        self.close_child_fd(1);
    }

    /// Sends a signal to the child: `"TERM"`, `"KILL"`, … or a number.
    /// [`SignalError::ExitedAlready`] once it was reaped.
    #[doc(alias = "signalProcess")]
    pub fn signal_process(&self, signal: impl Into<ProcessSignal>) -> Result<(), SignalError> {
        let n = signal.into().number()?;
        self.0.signal(n)
    }

    /// Registers a producer for the child's stdin (it is stopped at once if there is none).
    #[doc(alias = "registerProducer")]
    pub fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        match self.0.pipe(self.0.stdin_fd()) {
            Some(p) => crate::transport::TransportImpl::register_producer(&*p, producer, streaming),
            None => {
                producer.stop_producing();
                Ok(())
            }
        }
    }

    /// Unregisters the stdin producer.
    #[doc(alias = "unregisterProducer")]
    pub fn unregister_producer(&self) {
        if let Some(p) = self.0.pipe(self.0.stdin_fd()) {
            crate::transport::TransportImpl::unregister_producer(&*p)
        }
    }

    /// Stops reading every output pipe (the child blocks once the pipes fill).
    #[doc(alias = "pauseProducing")]
    pub fn pause_producing(&self) {
        for fd in self.0.output_fds() {
            if let Some(p) = self.0.pipe(fd) {
                crate::transport::TransportImpl::pause_producing(&*p)
            }
        }
    }

    /// Reads the output pipes again.
    #[doc(alias = "resumeProducing")]
    pub fn resume_producing(&self) {
        for fd in self.0.output_fds() {
            if let Some(p) = self.0.pipe(fd) {
                crate::transport::TransportImpl::resume_producing(&*p)
            }
        }
    }

    /// Sets the water marks of the stdin pipe's write buffer.
    pub fn set_write_buffer_limits(&self, high: usize, low: usize) {
        if let Some(p) = self.0.pipe(self.0.stdin_fd()) {
            crate::transport::TransportImpl::set_write_buffer_limits(&*p, high, low.min(high))
        }
    }

    /// Bytes written to stdin and not taken by the child yet.
    pub fn buffered(&self) -> usize {
        self.0
            .pipe(self.0.stdin_fd())
            .map(|p| crate::transport::TransportImpl::buffered(&*p))
            .unwrap_or(0)
    }
}

impl fmt::Debug for ProcessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<ProcessTransport pid={:?}>", self.pid())
    }
}

type Job<P> = crate::protocol::serial::Job<P, ProcessTransport>;

/// One child: its pid and pidfd, its pipes and its protocol.
struct Process<P: ProcessProtocol> {
    me: std::rc::Weak<Process<P>>,
    pid: u32,
    reaped: Cell<bool>,
    pidfd: RefCell<Option<OwnedFd>>,
    token: Cell<Option<Token>>,
    pipes: RefCell<BTreeMap<i32, Rc<StreamConnection<Pipe>>>>,
    stdin_fd: i32,
    protocol: Serial<P, ProcessTransport>,
    exit: RefCell<Option<Failure>>,
    ended: Cell<bool>,
}

impl<P: ProcessProtocol> Process<P> {
    fn transport(&self) -> Option<ProcessTransport> {
        let me: Rc<dyn ProcessImpl> = self.me.upgrade()?;
        Some(ProcessTransport(me))
    }

    /// Runs `job` on the protocol now, or right after the callback that is running.
    fn deliver(&self, job: Job<P>) {
        self.protocol.queue(job);
        self.drain();
    }

    /// Runs `f` on the protocol, a panic reported rather than unwound into the reactor.
    /// `report_error!`, not `log::error!`: with no logger installed the panic must still
    /// reach stderr, as every other contained panic does.
    fn guarded(&self, outcome: Result<(), Panic>) {
        if let Err(e) = outcome {
            self.report_panic(e);
        }
    }

    fn report_panic(&self, e: Panic) {
        crate::report_error!(
            target: "twistor::process",
            "process protocol (pid {}) panicked: {}",
            self.pid,
            Failure::from_panic(&*e)
        );
    }

    /// Runs the queued jobs, unless a callback is running (it drains them when it returns).
    fn drain(&self) {
        let Some(t) = self.transport() else { return };
        self.protocol.drain(
            &t,
            || false,
            |e| {
                self.report_panic(e);
                true
            },
        );
    }

    /// The pidfd fired: reap, then tell the protocol.
    fn reap(&self, reactor: &Reactor) {
        if self.reaped.get() {
            return;
        }
        let status = match child::try_reap(self.pid) {
            Ok(Some(s)) => std::process::ExitStatus::from_raw(s),
            Ok(None) => return,
            Err(e) => {
                log::error!(target: "twistor::process", "waitpid({}) failed: {e}", self.pid);
                return;
            }
        };
        self.reaped.set(true);
        if let Some(t) = self.token.take() {
            reactor.forget_source(t);
        }
        drop(self.pidfd.borrow_mut().take());
        let reason = exit_reason(status);
        *self.exit.borrow_mut() = Some(reason.clone());
        self.deliver(Box::new(move |p, t| p.process_exited(t, reason)));
        self.maybe_ended();
    }

    fn maybe_ended(&self) {
        if self.ended.get() || !self.pipes.borrow().is_empty() {
            return;
        }
        let Some(reason) = self.exit.borrow().clone() else {
            return;
        };
        self.ended.set(true);
        self.deliver(Box::new(move |p, t| p.process_ended(t, reason)));
    }
}

fn exit_reason(status: std::process::ExitStatus) -> Failure {
    let raw = status.into_raw();
    match (status.code(), status.signal()) {
        (Some(0), _) => Failure::new(ProcessDone { status: raw }),
        (code, signal) => Failure::new(ProcessTerminated {
            exit_code: code,
            signal,
            status: raw,
        }),
    }
}

impl<P: ProcessProtocol> ProcessImpl for Process<P> {
    fn pid(&self) -> Option<u32> {
        (!self.reaped.get()).then_some(self.pid)
    }

    fn pipe(&self, fd: i32) -> Option<Rc<StreamConnection<Pipe>>> {
        self.pipes.borrow().get(&fd).cloned()
    }

    fn stdin_fd(&self) -> i32 {
        self.stdin_fd
    }

    fn signal(&self, sig: i32) -> Result<(), SignalError> {
        let pidfd = self.pidfd.borrow();
        let Some(fd) = pidfd.as_ref() else {
            return Err(ProcessExitedAlready.into());
        };
        match child::pidfd_send_signal(fd.as_raw_fd(), sig) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(ProcessExitedAlready.into()),
            Err(e) => Err(SignalError::Os(e)),
        }
    }

    fn output_fds(&self) -> Vec<i32> {
        self.pipes
            .borrow()
            .keys()
            .copied()
            .filter(|fd| *fd != self.stdin_fd || self.stdin_fd == 1)
            .collect()
    }
}

impl<P: ProcessProtocol> PipeEvents for Process<P> {
    fn child_data(&self, fd: i32, data: &[u8]) {
        // The common case (nothing queued, no callback running) hands over the read buffer
        // itself; only data that must wait is copied.
        if !self.protocol.has_queued()
            && let Some(t) = self.transport()
            && let Some(outcome) =
                self.protocol
                    .run_or_else(&t, |p, t| p.child_data_received(t, fd, data), drop)
        {
            self.guarded(outcome);
            self.drain();
            return;
        }
        let data = data.to_vec();
        self.deliver(Box::new(move |p, t| p.child_data_received(t, fd, &data)));
    }

    fn pipe_closed(&self, fd: i32, _reason: Failure) {
        let conn = self.pipes.borrow_mut().remove(&fd);
        drop(conn);
        self.deliver(Box::new(move |p, t| p.child_connection_lost(t, fd)));
        self.maybe_ended();
    }

    fn pipe_eof(&self, fd: i32) {
        if let Some(p) = self.pipe(fd) {
            crate::transport::TransportImpl::lose_connection(&*p);
        }
    }
}

impl<P: ProcessProtocol> SourceHandler for Process<P> {
    fn ready(&self, reactor: &Reactor, _ready: Ready) {
        self.reap(reactor);
    }

    fn flush(&self, _reactor: &Reactor) {}

    fn shutdown(&self, reactor: &Reactor) {
        // The reactor is going away: reap if the child is done; a running child is left
        // running (Twisted does not kill children on shutdown either).
        self.reap(reactor);
        if let Some(t) = self.token.take() {
            reactor.forget_source(t);
        }
    }
}

/// Starts `executable` with the full argv `args` (`args[0]` included; the executable itself
/// if `args` is empty), connects `protocol` to it and returns its transport (Twisted's
/// `reactor.spawnProcess`). `connection_made` runs before this returns. A bare name is
/// looked up in `PATH`.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use twistor::prelude::*;
/// use twistor::transport::process::{spawn_process, ProcessProtocol, ProcessTransport, SpawnOptions};
///
/// struct Collect(Rc<RefCell<(Vec<u8>, bool)>>);
/// impl ProcessProtocol for Collect {
///     fn out_received(&mut self, _t: &ProcessTransport, d: &[u8]) {
///         self.0.borrow_mut().0.extend_from_slice(d);
///     }
///     fn process_ended(&mut self, _t: &ProcessTransport, _r: Failure) {
///         self.0.borrow_mut().1 = true;
///     }
/// }
/// let reactor = Reactor::new().unwrap();
/// let seen = Rc::new(RefCell::new((Vec::new(), false)));
/// spawn_process(&reactor, Collect(seen.clone()), "echo", &["echo", "hi"], SpawnOptions::new())
///     .unwrap();
/// while !seen.borrow().1 {
///     reactor.iterate(std::time::Duration::from_millis(50)).unwrap();
/// }
/// assert_eq!(seen.borrow().0, b"hi\n");
/// ```
#[doc(alias = "spawnProcess")]
pub fn spawn_process<P: ProcessProtocol, A: AsRef<OsStr>>(
    reactor: &Reactor,
    protocol: P,
    executable: impl AsRef<OsStr>,
    args: &[A],
    options: SpawnOptions,
) -> Result<ProcessTransport, SpawnError> {
    let executable = executable.as_ref();
    let io_err = |source: io::Error| SpawnError::Io {
        executable: executable.to_owned(),
        source,
    };
    if options.use_pty && options.child_fds.is_some() {
        return Err(SpawnError::PtyWithChildFds);
    }
    let map = options.child_fds.clone().unwrap_or_else(|| {
        BTreeMap::from([(0, ChildFd::Write), (1, ChildFd::Read), (2, ChildFd::Read)])
    });
    if let Some((fd, _)) = map.iter().find(|(fd, _)| **fd < 0) {
        return Err(SpawnError::BadFd(*fd));
    }

    // The parent's ends (kept) and the child's ends (closed in the parent after the spawn).
    let mut parent_ends: Vec<(i32, OwnedFd, PipeKind)> = Vec::new();
    let mut child_ends: Vec<OwnedFd> = Vec::new();
    let mut moves: Vec<(RawFd, RawFd, RawFd)> = Vec::new();
    let mut pty_slave = None;
    if options.use_pty {
        let (master, slave) = child::openpty().map_err(io_err)?;
        for fd in 0..3 {
            moves.push((fd, slave.as_raw_fd(), -1));
        }
        pty_slave = Some(slave.as_raw_fd());
        child_ends.push(slave);
        parent_ends.push((1, master, PipeKind::Pty));
    } else {
        for (&fd, what) in &map {
            match what {
                ChildFd::Read => {
                    let (r, w) = child::pipe().map_err(io_err)?;
                    moves.push((fd, w.as_raw_fd(), -1));
                    child_ends.push(w);
                    parent_ends.push((fd, r, PipeKind::Reader));
                }
                ChildFd::Write => {
                    let (r, w) = child::pipe().map_err(io_err)?;
                    moves.push((fd, r.as_raw_fd(), -1));
                    child_ends.push(r);
                    parent_ends.push((fd, w, PipeKind::Writer));
                }
                ChildFd::Inherit(parent) => moves.push((fd, *parent, -1)),
            }
        }
    }

    let argv: Vec<&OsStr> = if args.is_empty() {
        vec![executable]
    } else {
        args.iter().map(AsRef::as_ref).collect()
    };
    let pid = match fast_moves(&options, &setup_moves(&moves)) {
        Some(fast) => spawn_fast(executable, &argv, &fast).map_err(io_err)?,
        None => spawn_forked(executable, &argv, &options, moves, pty_slave).map_err(io_err)?,
    };
    drop(child_ends);
    let pidfd = match child::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            // Without a pidfd the child could not be reaped: don't leave it behind.
            child::kill_and_reap(pid);
            return Err(io_err(e));
        }
    };

    let stdin_fd = if options.use_pty { 1 } else { 0 };
    let process = Rc::new_cyclic(|me| Process {
        me: me.clone(),
        pid,
        reaped: Cell::new(false),
        pidfd: RefCell::new(None),
        token: Cell::new(None),
        pipes: RefCell::new(BTreeMap::new()),
        stdin_fd,
        protocol: Serial::new(protocol),
        exit: RefCell::new(None),
        ended: Cell::new(false),
    });
    let mut conns = Vec::new();
    for (fd, end, kind) in parent_ends {
        let pipe = Pipe::new(end, kind).map_err(io_err)?;
        let conn = StreamConnection::new(
            reactor,
            pipe,
            Address::Process { pid, fd },
            Address::Process { pid, fd },
        )
        .map_err(io_err)?;
        process.pipes.borrow_mut().insert(fd, conn.clone());
        conns.push((fd, conn));
    }
    let token = reactor
        .register_source(&pidfd, Interest::READABLE, process.clone())
        .map_err(io_err)?;
    process.token.set(Some(token));
    *process.pidfd.borrow_mut() = Some(pidfd);

    let transport = process
        .transport()
        .ok_or_else(|| io_err(io::ErrorKind::Other.into()))?;
    process.deliver(Box::new(|p, t| p.connection_made(t)));
    let events: Rc<dyn PipeEvents> = process.clone();
    for (fd, conn) in conns {
        conn.start(Rc::new(PipeDriver {
            fd,
            process: events.clone(),
        }));
    }
    Ok(transport)
}

/// `(child fd, parent fd)` of each mapping.
fn setup_moves(moves: &[(RawFd, RawFd, RawFd)]) -> Vec<(RawFd, RawFd)> {
    moves.iter().map(|m| (m.0, m.1)).collect()
}

/// The mappings, if `posix_spawn` can do this request (see `child::posix_spawn`).
fn fast_moves(options: &SpawnOptions, moves: &[(RawFd, RawFd)]) -> Option<Vec<(RawFd, RawFd)>> {
    if !cfg!(all(target_os = "linux", target_env = "gnu"))
        || options.use_pty
        || options.uid.is_some()
        || options.gid.is_some()
        || options.env.is_some()
        || options.path.is_some()
    {
        return None;
    }
    let mut targets: Vec<RawFd> = moves.iter().map(|m| m.0).collect();
    targets.sort_unstable();
    // 0, 1 and 2 all mapped (an unmapped one must be closed, which the fork path does), and
    // no source is another mapping's target (dup2 in order would clobber it).
    if targets != [0, 1, 2] || moves.iter().any(|&(t, s)| s != t && s <= 2) {
        return None;
    }
    Some(moves.to_vec())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn spawn_fast(exe: &OsStr, argv: &[&OsStr], moves: &[(RawFd, RawFd)]) -> io::Result<u32> {
    child::posix_spawn(exe, argv, moves)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn spawn_fast(_exe: &OsStr, _argv: &[&OsStr], _moves: &[(RawFd, RawFd)]) -> io::Result<u32> {
    Err(io::ErrorKind::Unsupported.into())
}

/// `fork` + `exec` through `Command`, with the child set up by `ChildSetup`.
fn spawn_forked(
    executable: &OsStr,
    argv: &[&OsStr],
    options: &SpawnOptions,
    moves: Vec<(RawFd, RawFd, RawFd)>,
    pty_slave: Option<RawFd>,
) -> io::Result<u32> {
    let mut cmd = Command::new(executable);
    cmd.arg0(argv[0]).args(&argv[1..]);
    if let Some(env) = &options.env {
        cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    }
    if let Some(dir) = &options.path {
        cmd.current_dir(dir);
    }
    if let Some(gid) = options.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = options.uid {
        cmd.uid(uid);
    }
    cmd.stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let mut setup = child::ChildSetup { moves, pty_slave };
    // SAFETY: `apply` only makes async-signal-safe system calls on memory allocated before
    // the fork.
    unsafe {
        cmd.pre_exec(move || setup.apply());
    }
    // The `Child` is dropped at once: dropping it neither waits nor kills; the pidfd source
    // reaps the pid.
    Ok(cmd.spawn()?.id())
}

/// Spawning from a reactor (Twisted's `IReactorProcess`).
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::process::{ProcessProtocol, ReactorProcess, SpawnOptions};
/// struct Quiet;
/// impl ProcessProtocol for Quiet {}
/// let reactor = Reactor::new().unwrap();
/// let t = reactor.spawn_process(Quiet, "true", &["true"], SpawnOptions::new()).unwrap();
/// assert!(t.pid().is_some());
/// ```
#[doc(alias = "IReactorProcess")]
pub trait ReactorProcess {
    /// See [`spawn_process`].
    #[doc(alias = "spawnProcess")]
    fn spawn_process<P: ProcessProtocol, A: AsRef<OsStr>>(
        &self,
        protocol: P,
        executable: impl AsRef<OsStr>,
        args: &[A],
        options: SpawnOptions,
    ) -> Result<ProcessTransport, SpawnError>;
}

impl ReactorProcess for Reactor {
    fn spawn_process<P: ProcessProtocol, A: AsRef<OsStr>>(
        &self,
        protocol: P,
        executable: impl AsRef<OsStr>,
        args: &[A],
        options: SpawnOptions,
    ) -> Result<ProcessTransport, SpawnError> {
        spawn_process(self, protocol, executable, args, options)
    }
}

//! Running a command for its output or exit code (Twisted's `twisted.internet.utils`).

use std::cell::RefCell;
use std::ffi::OsStr;

use super::{ProcessProtocol, ProcessTerminated, ProcessTransport, SpawnOptions, spawn_process};
use crate::Failure;
use crate::defer::{Deferred, Resolver};
use crate::reactor::Reactor;

/// The child wrote to stderr, which [`get_process_output`] treats as a failure (Twisted's
/// `IOError("got stderr: ...")`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("got stderr: {:?}", String::from_utf8_lossy(.stderr))]
pub struct UnexpectedErrorOutput {
    /// What the child wrote to stderr.
    pub stderr: Vec<u8>,
    /// What it wrote to stdout.
    pub stdout: Vec<u8>,
}

/// A signal killed the child: what it wrote before, and the signal (Twisted errbacks with
/// the `(out, err, signal)` tuple).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("process killed by signal {signal}")]
pub struct KilledWithOutput {
    /// What the child wrote to stdout.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr.
    pub stderr: Vec<u8>,
    /// The signal.
    pub signal: i32,
}

type Done = Box<dyn FnOnce(Vec<u8>, Vec<u8>, Failure)>;

/// Collects both outputs and hands them with the end reason to `done`.
struct Collector {
    out: Vec<u8>,
    err: Vec<u8>,
    done: RefCell<Option<Done>>,
}

impl ProcessProtocol for Collector {
    fn connection_made(&mut self, t: &ProcessTransport) {
        // Twisted's helpers close the child's stdin at once: it gets EOF, not a hang.
        t.close_stdin();
    }
    fn out_received(&mut self, _t: &ProcessTransport, data: &[u8]) {
        self.out.extend_from_slice(data);
    }
    fn err_received(&mut self, _t: &ProcessTransport, data: &[u8]) {
        self.err.extend_from_slice(data);
    }
    fn process_ended(&mut self, _t: &ProcessTransport, reason: Failure) {
        if let Some(done) = self.done.borrow_mut().take() {
            done(
                std::mem::take(&mut self.out),
                std::mem::take(&mut self.err),
                reason,
            );
        }
    }
}

fn run<T: 'static, A: AsRef<OsStr>>(
    reactor: &Reactor,
    executable: impl AsRef<OsStr>,
    args: &[A],
    options: SpawnOptions,
    finish: impl FnOnce(Vec<u8>, Vec<u8>, Failure, &Resolver<T>) + 'static,
) -> Deferred<T> {
    let (d, r) = Deferred::new();
    let r2 = r.clone();
    let done: Done = Box::new(move |out, err, reason| finish(out, err, reason, &r2));
    let proto = Collector {
        out: Vec::new(),
        err: Vec::new(),
        done: RefCell::new(Some(done)),
    };
    if let Err(e) = spawn_process(reactor, proto, executable, args, options) {
        let _ = r.errback(e);
    }
    d
}

fn exit_code(reason: &Failure) -> Result<i32, (Option<i32>, Option<i32>)> {
    if reason.is::<super::ProcessDone>() {
        return Ok(0);
    }
    match reason.downcast_ref::<ProcessTerminated>() {
        Some(ProcessTerminated {
            exit_code: Some(c), ..
        }) => Ok(*c),
        Some(t) => Err((t.exit_code, t.signal)),
        None => Err((None, None)),
    }
}

/// Runs the command and fires with what it wrote to stdout (Twisted's `getProcessOutput`);
/// fails with [`UnexpectedErrorOutput`] if it wrote anything to stderr. The exit code is not
/// looked at.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::process::{get_process_output, SpawnOptions};
/// let reactor = Reactor::new().unwrap();
/// let d = get_process_output(&reactor, "echo", &["echo", "hi"], SpawnOptions::new());
/// while !d.called() { reactor.iterate(std::time::Duration::from_millis(50)).unwrap(); }
/// assert_eq!(d.peek(|r| r.unwrap().unwrap().clone()), b"hi\n");
/// ```
#[doc(alias = "getProcessOutput")]
pub fn get_process_output<A: AsRef<OsStr>>(
    reactor: &Reactor,
    executable: impl AsRef<OsStr>,
    args: &[A],
    options: SpawnOptions,
) -> Deferred<Vec<u8>> {
    run(
        reactor,
        executable,
        args,
        options,
        |out, err, _reason, r| {
            let _ = if err.is_empty() {
                r.callback(out)
            } else {
                r.errback(UnexpectedErrorOutput {
                    stderr: err,
                    stdout: out,
                })
            };
        },
    )
}

/// Runs the command and fires with its exit code (Twisted's `getProcessValue`); fails with
/// [`ProcessTerminated`] if a signal killed it.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::process::{get_process_value, SpawnOptions};
/// let reactor = Reactor::new().unwrap();
/// let d = get_process_value(&reactor, "sh", &["sh", "-c", "exit 3"], SpawnOptions::new());
/// while !d.called() { reactor.iterate(std::time::Duration::from_millis(50)).unwrap(); }
/// assert_eq!(d.peek(|r| *r.unwrap().unwrap()), 3);
/// ```
#[doc(alias = "getProcessValue")]
pub fn get_process_value<A: AsRef<OsStr>>(
    reactor: &Reactor,
    executable: impl AsRef<OsStr>,
    args: &[A],
    options: SpawnOptions,
) -> Deferred<i32> {
    run(
        reactor,
        executable,
        args,
        options,
        |_out, _err, reason, r| {
            let _ = match exit_code(&reason) {
                Ok(c) => r.callback(c),
                Err(_) => r.errback(reason),
            };
        },
    )
}

/// Runs the command and fires with `(stdout, stderr, exit code)` (Twisted's
/// `getProcessOutputAndValue`); fails with [`KilledWithOutput`] if a signal killed it.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::process::{get_process_output_and_value, SpawnOptions};
/// let reactor = Reactor::new().unwrap();
/// let d = get_process_output_and_value(
///     &reactor, "sh", &["sh", "-c", "echo out; echo err >&2; exit 2"], SpawnOptions::new());
/// while !d.called() { reactor.iterate(std::time::Duration::from_millis(50)).unwrap(); }
/// let (out, err, code) = d.peek(|r| r.unwrap().unwrap().clone());
/// assert_eq!((out, err, code), (b"out\n".to_vec(), b"err\n".to_vec(), 2));
/// ```
#[doc(alias = "getProcessOutputAndValue")]
pub fn get_process_output_and_value<A: AsRef<OsStr>>(
    reactor: &Reactor,
    executable: impl AsRef<OsStr>,
    args: &[A],
    options: SpawnOptions,
) -> Deferred<(Vec<u8>, Vec<u8>, i32)> {
    run(reactor, executable, args, options, |out, err, reason, r| {
        let _ = match exit_code(&reason) {
            Ok(c) => r.callback((out, err, c)),
            Err((_, Some(signal))) => r.errback(KilledWithOutput {
                stdout: out,
                stderr: err,
                signal,
            }),
            Err(_) => r.errback(reason),
        };
    })
}

//! The reactor: Twisted's event loop, on mio.
//!
//! You register sources of events (timers, file descriptors, calls from other threads,
//! futures) and handlers for them; `run()` waits for events and calls the handlers, which
//! return control to the loop when they are done. A handler that blocks, blocks everything.
//!
//! ```
//! use twistor::reactor::Reactor;
//!
//! let reactor = Reactor::new().unwrap();
//! reactor.call_when_running(|| println!("Hello, World!"));
//! let r = reactor.clone();
//! reactor.call_later(0.01, move || { let _ = r.stop(); });
//! reactor.run_without_signal_handlers().unwrap();
//! ```
//!
//! # One turn of the loop
//!
//! While the reactor is started, each turn (`iterate`) does, in this order:
//!
//! 1. **Calls from other threads**: the calls queued *when the turn starts* run, in order
//!    (later ones wait for the next turn); a queued `stop` is handled here. Woken futures
//!    (spawned tasks) are polled.
//! 2. **Timed calls**: every `call_later` whose time has come runs, in time order (equal times
//!    in scheduling order), but only those scheduled *before* this pass began: a
//!    `call_later(0, ..)` made by a timed call runs on the next turn.
//! 3. **Shutdown**: if `stop()` was called since the last turn, the `shutdown` event fires now
//!    (so `stop()` itself never runs triggers).
//! 4. **Poll**: wait for I/O until the next timed call is due (rounded up to the millisecond,
//!    so the loop never wakes early and spins), not at all if work is already pending, and for
//!    ever if there is nothing scheduled; a call from another thread or a signal wakes it.
//! 5. **I/O**: each ready descriptor's handler runs once; one still ready afterwards runs
//!    again next turn (level-triggered behaviour on the edge-triggered poller, with one call
//!    per descriptor per turn for fairness; see `fdset`).
//!
//! # Re-entrancy
//!
//! The loop never holds a `RefCell` borrow while it runs user code: handlers, timed calls,
//! triggers and thread calls may call any reactor method (schedule, stop, add or remove
//! readers, spawn). A panic in any of them is caught, logged, and the loop goes on.

mod fdset;
mod signals;
pub(crate) mod sources;
mod threads;
mod triggers;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::{Events, Token};

use crate::task::LoopResult;
use crate::time::{DelayedCall, ReactorTime, TimerQueue};
use crate::{Deferred, Failure};

use fdset::{Dir, FdSet};
use signals::{SIGNAL_TOKEN, SignalPipes};
pub use threads::ThreadHandle;
use threads::{Shared, TaskWaker, ThreadCall};
use triggers::Triggers;
pub use triggers::{NoSuchTrigger, Phase, TriggerId};

const WAKER_TOKEN: Token = Token(0);
/// Twisted's cap: the largest millisecond count that fits epoll's signed 32-bit timeout.
const MAX_TIMEOUT: f64 = 2_147_483.0;

/// Errors of the reactor's lifecycle (Twisted's `ReactorNotRunning`, `ReactorAlreadyRunning`,
/// `ReactorNotRestartable`), and of the poller itself.
#[derive(Debug, thiserror::Error)]
pub enum ReactorError {
    /// `stop()` on a reactor that is not running (never started, already stopped, or a second
    /// `stop()` while the first shutdown is in progress).
    #[error("Can't stop reactor that isn't running.")]
    NotRunning,
    /// `run()` while it is already running.
    #[error("Reactor already running.")]
    AlreadyRunning,
    /// `run()` after `stop()`: a stopped reactor cannot run again (a crashed one can).
    #[error("Reactor cannot be restarted once stopped.")]
    NotRestartable,
    /// The operating system's poller failed.
    #[error("reactor I/O error: {0}")]
    Io(#[from] io::Error),
}

#[derive(Debug)]
struct Life {
    /// Between `run()` and its return.
    started: bool,
    /// True until `run()`; true again once `stop()` is requested.
    stopped: bool,
    /// `stop()` requested; the shutdown event has not fired yet.
    just_stopped: bool,
    /// `stop()` was called at least once: the reactor can't run again.
    started_before: bool,
    /// From the during-startup phase to the during-shutdown phase.
    running: bool,
}

type TaskFuture = Pin<Box<dyn Future<Output = ()>>>;

struct Task {
    /// `None` while the task is being polled (taken out, so it may spawn or cancel tasks).
    future: Option<TaskFuture>,
    waker: Arc<TaskWaker>,
    /// Fails the task's Deferred if polling panics.
    on_panic: Option<Box<dyn FnOnce(Failure)>>,
    /// Polls the task now: a Deferred it awaits resumes it inside its callback.
    resume: crate::defer::future::Resumer,
}

struct Inner {
    poll: RefCell<mio::Poll>,
    events: RefCell<Events>,
    registry: mio::Registry,
    shared: Arc<Shared>,
    timers: TimerQueue,
    triggers: Triggers,
    life: RefCell<Life>,
    fds: RefCell<FdSet>,
    /// Descriptors still ready after their handler ran: run again next turn.
    again: RefCell<Vec<(Token, Dir)>>,
    /// The poller's events of this turn (kept to reuse its allocation).
    ready: RefCell<Vec<(Token, bool, bool, bool)>>,
    signals: RefCell<Option<SignalPipes>>,
    exit_signal: Cell<Option<i32>>,
    tasks: RefCell<HashMap<usize, Task>>,
    next_task: Cell<usize>,
    /// Tasks woken on this thread, polled next turn (no syscall needed for those).
    woken: RefCell<Vec<usize>>,
    iterations: Cell<u64>,
    /// Turns in a row that skipped the poll because timed calls were already due.
    skipped_polls: Cell<u32>,
    extensions: RefCell<Extensions>,
}

/// At most this many turns in a row skip the (zero-timeout) poll while timed calls are due, so
/// a timer loop costs no syscall per turn and I/O still gets looked at every few turns.
const MAX_SKIPPED_POLLS: u32 = 32;

/// State owned by other modules of the reactor (the thread pool), kept here so each module
/// stays in its own file.
#[derive(Default)]
pub(crate) struct Extensions {
    pub(crate) pool: Option<threadpool::ThreadPool>,
    pub(crate) pool_size: Option<usize>,
    /// Deferreds waiting for a pool thread's result, by key.
    pub(crate) parked: HashMap<u64, Box<dyn std::any::Any>>,
    pub(crate) next_parked: u64,
    /// Transport sources by token (see `sources`).
    pub(crate) sources: HashMap<usize, Rc<dyn sources::SourceHandler>>,
    pub(crate) next_source: usize,
    /// Sources to run again next turn.
    pub(crate) source_again: Vec<usize>,
    /// Transports to flush after the current phase.
    pub(crate) flushes: Vec<Rc<dyn sources::SourceHandler>>,
}

mod threadpool;
pub use threadpool::DEFAULT_POOL_SIZE;

/// A weak reactor handle.
#[derive(Clone)]
pub(crate) struct WeakReactor(Weak<Inner>);

impl WeakReactor {
    /// A handle to no reactor (for objects that are recorded, not run: `MemoryReactor`).
    pub(crate) fn none() -> WeakReactor {
        WeakReactor(Weak::new())
    }

    pub(crate) fn upgrade(&self) -> Option<Reactor> {
        Reactor::from_weak(&self.0)
    }
}

/// The event loop. A cheap handle (clone it freely); not `Send`: other threads use
/// [`thread_handle`](Reactor::thread_handle).
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use twistor::reactor::Reactor;
///
/// let reactor = Reactor::new().unwrap();
/// let said = Rc::new(RefCell::new(Vec::new()));
/// let (s1, s2) = (said.clone(), said.clone());
/// reactor.call_later(0.02, move || s1.borrow_mut().push("World"));
/// reactor.call_later(0.01, move || s2.borrow_mut().push("Hello"));
/// let r = reactor.clone();
/// reactor.call_later(0.03, move || { let _ = r.stop(); });
/// reactor.run_without_signal_handlers().unwrap();
/// assert_eq!(*said.borrow(), ["Hello", "World"]);
/// ```
#[derive(Clone)]
pub struct Reactor {
    inner: Rc<Inner>,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("life", &*self.inner.life.borrow())
            .field("timers", &self.inner.timers.len_active())
            .field("descriptors", &self.inner.fds.borrow().slots.len())
            .finish()
    }
}

fn log_panic(what: &str, payload: &(dyn std::any::Any + Send)) {
    crate::report_error!(
        target: "twistor::reactor",
        "{what}: {}",
        Failure::from_panic(payload)
    );
}

impl Reactor {
    /// A new reactor (not running yet).
    ///
    /// ```
    /// let reactor = twistor::reactor::Reactor::new().unwrap();
    /// assert!(!reactor.running());
    /// ```
    pub fn new() -> io::Result<Reactor> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let epoch = Instant::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Ok(Reactor {
            inner: Rc::new(Inner {
                poll: RefCell::new(poll),
                events: RefCell::new(Events::with_capacity(1024)),
                registry,
                shared: Arc::new(Shared::new(waker)),
                // Wall-clock seconds like Twisted's `time.time()`, but advancing with the
                // monotonic clock so timers are immune to clock changes.
                timers: TimerQueue::new(move || wall + epoch.elapsed().as_secs_f64()),
                triggers: Triggers::default(),
                life: RefCell::new(Life {
                    started: false,
                    stopped: true,
                    just_stopped: false,
                    started_before: false,
                    running: false,
                }),
                fds: RefCell::new(FdSet::default()),
                again: RefCell::new(Vec::new()),
                ready: RefCell::new(Vec::new()),
                signals: RefCell::new(None),
                exit_signal: Cell::new(None),
                tasks: RefCell::new(HashMap::new()),
                next_task: Cell::new(0),
                woken: RefCell::new(Vec::new()),
                iterations: Cell::new(0),
                skipped_polls: Cell::new(0),
                extensions: RefCell::new(Extensions::default()),
            }),
        })
    }

    fn weak(&self) -> Weak<Inner> {
        Rc::downgrade(&self.inner)
    }

    fn from_weak(w: &Weak<Inner>) -> Option<Reactor> {
        w.upgrade().map(|inner| Reactor { inner })
    }

    /// A weak handle (transports keep one, so the reactor does not keep itself alive).
    pub(crate) fn downgrade(&self) -> WeakReactor {
        WeakReactor(self.weak())
    }

    pub(crate) fn extensions(&self) -> std::cell::RefMut<'_, Extensions> {
        self.inner.extensions.borrow_mut()
    }

    // ---- lifecycle ------------------------------------------------------------------------

    /// Runs the loop until `stop()` (or `crash()`), with SIGINT and SIGTERM handlers that stop
    /// the reactor gracefully (shutdown triggers run). Fires the `startup` event first:
    /// `call_when_running` functions run then.
    ///
    /// Errors: [`ReactorError::AlreadyRunning`], [`ReactorError::NotRestartable`] (after a
    /// `stop()`), or a poller failure.
    ///
    /// ```no_run
    /// let reactor = twistor::reactor::Reactor::new().unwrap();
    /// println!("Hello");
    /// reactor.run().unwrap(); // until Ctrl-C
    /// ```
    pub fn run(&self) -> Result<(), ReactorError> {
        self.run_inner(true)
    }

    /// [`run`](Self::run) without installing signal handlers (for embedding, tests, or a
    /// program that handles signals itself).
    ///
    /// ```
    /// let reactor = twistor::reactor::Reactor::new().unwrap();
    /// let r = reactor.clone();
    /// reactor.call_when_running(move || { let _ = r.stop(); });
    /// reactor.run_without_signal_handlers().unwrap();
    /// ```
    pub fn run_without_signal_handlers(&self) -> Result<(), ReactorError> {
        self.run_inner(false)
    }

    fn run_inner(&self, install_signals: bool) -> Result<(), ReactorError> {
        {
            let mut l = self.inner.life.borrow_mut();
            if l.started {
                return Err(ReactorError::AlreadyRunning);
            }
            if l.started_before {
                return Err(ReactorError::NotRestartable);
            }
            l.started = true;
            l.stopped = false;
        }
        if install_signals {
            match SignalPipes::install(&self.inner.registry) {
                Ok(p) => *self.inner.signals.borrow_mut() = Some(p),
                Err(e) => log::warn!(
                    target: "twistor::reactor",
                    "cannot install SIGINT/SIGTERM handlers, running without: {e}"
                ),
            }
        }
        let weak = self.weak();
        self.inner.triggers.fire("startup", move || {
            if let Some(inner) = weak.upgrade() {
                let mut l = inner.life.borrow_mut();
                // Only if this run is still on: a firing that waited for a before-startup
                // Deferred may complete after the reactor crashed.
                if l.started {
                    l.running = true;
                }
            }
        });
        let mut result = Ok(());
        while self.inner.life.borrow().started {
            if let Err(e) = self.turn(true) {
                result = Err(ReactorError::Io(e));
                let mut l = self.inner.life.borrow_mut();
                l.started = false;
                l.running = false;
                break;
            }
        }
        if let Some(p) = self.inner.signals.borrow_mut().take() {
            p.uninstall(&self.inner.registry);
        }
        result
    }

    /// Asks the loop to stop: the `shutdown` event fires at the end of the loop's next pass
    /// over timed calls (never inside this call), its before-triggers may delay it, and then
    /// `run()` returns. A stopped reactor cannot run again.
    ///
    /// Errors with [`ReactorError::NotRunning`] if the reactor is not running, or if `stop()`
    /// was already called.
    ///
    /// ```
    /// use twistor::reactor::{Reactor, ReactorError};
    /// let reactor = Reactor::new().unwrap();
    /// assert!(matches!(reactor.stop(), Err(ReactorError::NotRunning)));
    /// ```
    pub fn stop(&self) -> Result<(), ReactorError> {
        let mut l = self.inner.life.borrow_mut();
        if l.stopped {
            return Err(ReactorError::NotRunning);
        }
        l.stopped = true;
        l.just_stopped = true;
        l.started_before = true;
        Ok(())
    }

    /// Stops the loop at once, running no triggers; `run()` returns after the current turn
    /// and may be called again.
    ///
    /// ```
    /// let reactor = twistor::reactor::Reactor::new().unwrap();
    /// let r = reactor.clone();
    /// reactor.call_when_running(move || r.crash());
    /// reactor.run_without_signal_handlers().unwrap();
    /// assert!(!reactor.running());
    /// ```
    pub fn crash(&self) {
        let mut l = self.inner.life.borrow_mut();
        l.started = false;
        l.running = false;
        // Re-arm: a crashed reactor may run again.
        l.stopped = true;
        l.just_stopped = false;
    }

    /// True from the during-startup phase to the during-shutdown phase (Twisted's `running`).
    pub fn running(&self) -> bool {
        self.inner.life.borrow().running
    }

    /// The signal (SIGINT or SIGTERM) that stopped the reactor, if one did.
    pub fn exit_signal(&self) -> Option<i32> {
        self.inner.exit_signal.get()
    }

    /// Runs one turn of the loop (module docs), polling for at most `timeout` (Twisted's
    /// `iterate`), for driving the reactor from another loop or a test.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    /// let reactor = twistor::reactor::Reactor::new().unwrap();
    /// let ran = Rc::new(Cell::new(false));
    /// let r = ran.clone();
    /// reactor.call_later(0.0, move || r.set(true));
    /// reactor.iterate(Duration::ZERO).unwrap();
    /// assert!(ran.get());
    /// ```
    pub fn iterate(&self, timeout: Duration) -> io::Result<()> {
        self.run_until_current();
        self.poll_and_dispatch(Some(timeout))
    }

    /// How many turns the loop has made (for tests and diagnostics: a loop that spins shows
    /// here).
    pub fn iterations(&self) -> u64 {
        self.inner.iterations.get()
    }

    /// Calls `f` once the reactor is running: now if it already is, otherwise as an
    /// after-startup trigger.
    ///
    /// ```
    /// let reactor = twistor::reactor::Reactor::new().unwrap();
    /// let r = reactor.clone();
    /// reactor.call_when_running(move || { println!("World!"); let _ = r.stop(); });
    /// print!("Hello, ");
    /// reactor.run_without_signal_handlers().unwrap();
    /// ```
    pub fn call_when_running(&self, f: impl FnOnce() + 'static) -> Option<TriggerId> {
        if self.running() {
            match catch_unwind(AssertUnwindSafe(f)) {
                Ok(()) => {}
                Err(p) => log_panic("while calling a call_when_running function", &*p),
            }
            None
        } else {
            Some(self.add_system_event_trigger(Phase::After, "startup", f))
        }
    }

    /// Registers `f` to run in `phase` of system event `event` (`"startup"`, `"shutdown"`, or
    /// any name fired with [`fire_system_event`](Self::fire_system_event)). Triggers run once.
    /// A before-trigger may return a `Deferred<()>`: the rest of the event waits for it, while
    /// the loop keeps serving I/O and timers.
    ///
    /// ```
    /// use twistor::reactor::{Phase, Reactor};
    /// let reactor = Reactor::new().unwrap();
    /// reactor.add_system_event_trigger(Phase::Before, "shutdown", || println!("flushing"));
    /// let r = reactor.clone();
    /// reactor.call_when_running(move || { let _ = r.stop(); });
    /// reactor.run_without_signal_handlers().unwrap();
    /// ```
    pub fn add_system_event_trigger<R: LoopResult + 'static>(
        &self,
        phase: Phase,
        event: &str,
        f: impl FnOnce() -> R + 'static,
    ) -> TriggerId {
        self.inner.triggers.add(phase, event, f)
    }

    /// Removes a trigger. Errors if it is not registered (already run, or removed).
    ///
    /// ```
    /// use twistor::reactor::{Phase, Reactor};
    /// let reactor = Reactor::new().unwrap();
    /// let id = reactor.add_system_event_trigger(Phase::During, "shutdown", || ());
    /// assert!(reactor.remove_system_event_trigger(id.clone()).is_ok());
    /// assert!(reactor.remove_system_event_trigger(id).is_err());
    /// ```
    pub fn remove_system_event_trigger(&self, id: TriggerId) -> Result<(), NoSuchTrigger> {
        self.inner.triggers.remove(id)
    }

    /// Fires system event `event`: its before, during and after triggers.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use twistor::reactor::{Phase, Reactor};
    /// let reactor = Reactor::new().unwrap();
    /// let fired = Rc::new(Cell::new(false));
    /// let f = fired.clone();
    /// reactor.add_system_event_trigger(Phase::After, "persist", move || f.set(true));
    /// reactor.fire_system_event("persist");
    /// assert!(fired.get());
    /// ```
    pub fn fire_system_event(&self, event: &str) {
        self.inner.triggers.fire(event, || ());
    }

    fn fire_shutdown(&self) {
        let weak = self.weak();
        self.inner.triggers.fire("shutdown", move || {
            if let Some(r) = Reactor::from_weak(&weak) {
                // The reactor's own during-shutdown work comes first: stop the loop, then
                // drop every watched descriptor.
                r.crash();
                r.disconnect_all();
            }
        });
    }

    // ---- threads ---------------------------------------------------------------------------

    /// The `Send + Sync` handle for other threads: `call_from_thread` and `stop`.
    ///
    /// ```
    /// let reactor = twistor::reactor::Reactor::new().unwrap();
    /// let h = reactor.thread_handle();
    /// std::thread::spawn(move || h.call_from_thread(|r| { let _ = r.stop(); }));
    /// reactor.run_without_signal_handlers().unwrap();
    /// ```
    pub fn thread_handle(&self) -> ThreadHandle {
        ThreadHandle {
            shared: self.inner.shared.clone(),
        }
    }

    // ---- the loop --------------------------------------------------------------------------

    fn turn(&self, block: bool) -> io::Result<()> {
        let pass_time = self.run_until_current();
        if !self.inner.life.borrow().started {
            return Ok(());
        }
        // A call due by the pass's own time is due now: no need to read the clock again.
        let next = self.inner.timers.next_deadline();
        let now = match next {
            Some(t) if t <= pass_time => pass_time,
            _ => self.inner.timers.now(),
        };
        let timeout = if block {
            self.timeout(now, next)
        } else {
            Some(Duration::ZERO)
        };
        let due_now = next.is_some_and(|t| t <= now)
            && self.inner.again.borrow().is_empty()
            && !self.sources_pending();
        if timeout == Some(Duration::ZERO) && due_now {
            let skipped = self.inner.skipped_polls.get();
            if skipped < MAX_SKIPPED_POLLS {
                self.inner.skipped_polls.set(skipped + 1);
                return Ok(());
            }
        }
        self.inner.skipped_polls.set(0);
        self.poll_and_dispatch(timeout)
    }

    /// Steps 1-3 of a turn (module docs). Returns the time the timed calls were run for.
    fn run_until_current(&self) -> f64 {
        self.inner.iterations.set(self.inner.iterations.get() + 1);
        for call in self.inner.shared.take() {
            match call {
                ThreadCall::Call(f) => {
                    if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(self))) {
                        log_panic("while calling from thread", &*p);
                    }
                }
                ThreadCall::Stop => {
                    // From another thread: a reactor that already stopped ignores it.
                    let _ = self.stop();
                }
                ThreadCall::WakeTask(id) => self.inner.woken.borrow_mut().push(id),
            }
        }
        self.poll_woken_tasks();
        let now = self.inner.timers.now();
        let limit = self.inner.timers.next_seq();
        while let Some((_, f)) = self.inner.timers.pop_due_before(now, limit) {
            if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
                log_panic("while handling timed call", &*p);
            }
        }
        let just_stopped = std::mem::replace(&mut self.inner.life.borrow_mut().just_stopped, false);
        self.run_flushes();
        if just_stopped {
            self.fire_shutdown();
        }
        now
    }

    /// How long the next poll may block, given the time and the next deadline.
    fn timeout(&self, now: f64, next: Option<f64>) -> Option<Duration> {
        if !self.inner.again.borrow().is_empty()
            || !self.inner.woken.borrow().is_empty()
            || self.sources_pending()
        {
            return Some(Duration::ZERO);
        }
        let secs = (next? - now).clamp(0.0, MAX_TIMEOUT);
        // Round up to whole milliseconds (epoll's unit): waking before the deadline would
        // make the loop spin until it arrives.
        let ms = (secs * 1000.0).ceil();
        Some(Duration::from_millis(ms as u64))
    }

    /// Steps 4-5 of a turn (module docs).
    fn poll_and_dispatch(&self, timeout: Option<Duration>) -> io::Result<()> {
        // The events are copied out, so no borrow of the poller is held while handlers run,
        // into a buffer kept from turn to turn: no allocation per turn.
        let mut ready = std::mem::take(&mut *self.inner.ready.borrow_mut());
        {
            let mut events = self.inner.events.borrow_mut();
            match self.inner.poll.borrow_mut().poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(e) => return Err(e),
            }
            ready.extend(events.iter().map(|e| {
                let read_closed = e.is_read_closed() || e.is_error();
                (
                    e.token(),
                    e.is_readable() || read_closed || e.is_write_closed(),
                    e.is_writable() || e.is_error(),
                    read_closed,
                )
            }));
        }
        let again = std::mem::take(&mut *self.inner.again.borrow_mut());
        // Raw descriptors handled this turn, so the again list does not run them twice.
        let mut done: Vec<(Token, Dir)> = Vec::new();
        for &(token, readable, writable, read_closed) in &ready {
            match token {
                WAKER_TOKEN => {}
                SIGNAL_TOKEN => self.handle_signals(),
                t if t.0 >= sources::SOURCE_BASE => {
                    self.dispatch_source(t, readable, writable, read_closed);
                }
                _ => {
                    if readable {
                        self.dispatch(token, Dir::Read);
                        done.push((token, Dir::Read));
                    }
                    if writable {
                        self.dispatch(token, Dir::Write);
                        done.push((token, Dir::Write));
                    }
                }
            }
        }
        for (token, dir) in again {
            if !done.contains(&(token, dir)) {
                self.dispatch(token, dir);
            }
        }
        ready.clear();
        *self.inner.ready.borrow_mut() = ready;
        self.run_sources_again();
        self.run_flushes();
        Ok(())
    }

    fn handle_signals(&self) {
        let got = match self.inner.signals.borrow_mut().as_mut() {
            Some(p) => p.drain(),
            None => return,
        };
        for sig in got {
            log::info!(target: "twistor::reactor", "Received signal {sig}, shutting down.");
            self.inner.exit_signal.set(Some(sig));
            let _ = self.stop();
        }
    }

    fn dispatch(&self, token: Token, dir: Dir) {
        let taken = {
            let mut fds = self.inner.fds.borrow_mut();
            fds.slots.get_mut(&token.0).and_then(|w| {
                if !w.wants(dir) {
                    return None;
                }
                let epoch = w.generation(dir);
                w.handler_slot(dir).take().map(|h| (h, epoch, w.fd))
            })
        };
        let Some((mut handler, epoch, fd)) = taken else {
            return;
        };
        let panicked = catch_unwind(AssertUnwindSafe(|| handler(self))).err();
        if let Some(p) = &panicked {
            log_panic(
                "while handling a ready descriptor; it is no longer watched",
                &**p,
            );
        }
        let mut fds = self.inner.fds.borrow_mut();
        let same = fds
            .slots
            .get(&token.0)
            .is_some_and(|w| w.generation(dir) == epoch);
        if !same {
            // Removed or replaced while it ran: drop this handler (no borrow held).
            drop(fds);
            drop(handler);
            return;
        }
        if panicked.is_some() {
            let (_, _) = fds.remove(&self.inner.registry, fd, dir);
            drop(fds);
            drop(handler);
            return;
        }
        if let Some(w) = fds.slots.get_mut(&token.0) {
            *w.handler_slot(dir) = Some(handler);
        }
        drop(fds);
        if fdset::still_ready(fd, dir) {
            self.inner.again.borrow_mut().push((token, dir));
        }
    }

    // ---- file descriptors --------------------------------------------------------------------

    /// Calls `handler` whenever `fd` is readable (Twisted's `addReader`), until
    /// `remove_reader`. Replaces an earlier reader of the same descriptor. The descriptor must
    /// stay open while it is watched; it is not closed by the reactor.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// use twistor::reactor::Reactor;
    ///
    /// let reactor = Reactor::new().unwrap();
    /// let (mut a, b) = UnixStream::pair().unwrap();
    /// b.set_nonblocking(true).unwrap();
    /// let fd = b.as_raw_fd();
    /// reactor.add_reader(fd, move |r| {
    ///     let mut buf = [0; 16];
    ///     let n = (&b).read(&mut buf).unwrap_or(0);
    ///     println!("read {n} bytes");
    ///     r.remove_reader(fd);
    ///     let _ = r.stop();
    /// }).unwrap();
    /// a.write_all(b"hi").unwrap();
    /// reactor.run_without_signal_handlers().unwrap();
    /// ```
    pub fn add_reader(&self, fd: RawFd, handler: impl FnMut(&Reactor) + 'static) -> io::Result<()> {
        self.add_fd(fd, Dir::Read, Box::new(handler))
    }

    /// Calls `handler` whenever `fd` is writable (Twisted's `addWriter`), until
    /// `remove_writer`.
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// use twistor::reactor::Reactor;
    ///
    /// let reactor = Reactor::new().unwrap();
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// let fd = a.as_raw_fd();
    /// reactor.add_writer(fd, move |r| { r.remove_writer(fd); let _ = r.stop(); }).unwrap();
    /// reactor.run_without_signal_handlers().unwrap();
    /// ```
    pub fn add_writer(&self, fd: RawFd, handler: impl FnMut(&Reactor) + 'static) -> io::Result<()> {
        self.add_fd(fd, Dir::Write, Box::new(handler))
    }

    fn add_fd(&self, fd: RawFd, dir: Dir, handler: fdset::Handler) -> io::Result<()> {
        let old = {
            let mut fds = self.inner.fds.borrow_mut();
            let old = fds
                .slots
                .values_mut()
                .find(|w| w.fd == fd)
                .and_then(|w| w.handler_slot(dir).take());
            fds.add(&self.inner.registry, fd, dir, handler)?;
            old
        };
        drop(old);
        // A descriptor that is ready already may not produce an edge: check once.
        let token = self.inner.fds.borrow().by_fd.get(&fd).copied();
        if let Some(t) = token
            && fdset::still_ready(fd, dir)
        {
            self.inner.again.borrow_mut().push((Token(t), dir));
        }
        Ok(())
    }

    /// Stops watching `fd` for reading. Returns false if it was not watched.
    pub fn remove_reader(&self, fd: RawFd) -> bool {
        self.remove_fd(fd, Dir::Read)
    }

    /// Stops watching `fd` for writing. Returns false if it was not watched.
    pub fn remove_writer(&self, fd: RawFd) -> bool {
        self.remove_fd(fd, Dir::Write)
    }

    fn remove_fd(&self, fd: RawFd, dir: Dir) -> bool {
        let (handler, was) = self
            .inner
            .fds
            .borrow_mut()
            .remove(&self.inner.registry, fd, dir);
        drop(handler);
        was
    }

    /// The descriptors watched for reading.
    pub fn get_readers(&self) -> Vec<RawFd> {
        let fds = self.inner.fds.borrow();
        fds.slots
            .values()
            .filter(|w| w.wants_read)
            .map(|w| w.fd)
            .collect()
    }

    /// The descriptors watched for writing.
    pub fn get_writers(&self) -> Vec<RawFd> {
        let fds = self.inner.fds.borrow();
        fds.slots
            .values()
            .filter(|w| w.wants_write)
            .map(|w| w.fd)
            .collect()
    }

    /// Stops watching every descriptor (Twisted's `removeAll`); returns them.
    pub fn remove_all(&self) -> Vec<RawFd> {
        let fds: Vec<(RawFd, bool, bool)> = {
            let s = self.inner.fds.borrow();
            s.slots
                .values()
                .map(|w| (w.fd, w.wants_read, w.wants_write))
                .collect()
        };
        for &(fd, r, w) in &fds {
            if r {
                self.remove_reader(fd);
            }
            if w {
                self.remove_writer(fd);
            }
        }
        fds.into_iter().map(|(fd, _, _)| fd).collect()
    }

    fn disconnect_all(&self) {
        let _ = self.remove_all();
        self.shutdown_sources();
    }

    // ---- futures -----------------------------------------------------------------------------

    /// Runs a local (`!Send`) future on the reactor and gives its result as a Deferred
    /// (Twisted's `ensureDeferred`). The future starts at once, in this call, and runs until
    /// it first waits. Cancelling the Deferred drops the future (and fails the Deferred with
    /// `CancelledError`); a panic in the future fails it with the panic.
    ///
    /// ```
    /// use twistor::{reactor::Reactor, task::defer_later};
    ///
    /// let reactor = Reactor::new().unwrap();
    /// let r = reactor.clone();
    /// let d = reactor.spawn(async move {
    ///     let x = defer_later(r.clone(), 0.01, || Ok::<_, twistor::Failure>(20)).await?;
    ///     Ok(x + 1)
    /// });
    /// let r = reactor.clone();
    /// let result = d.add_callback(move |v| { let _ = r.stop(); v });
    /// reactor.run_without_signal_handlers().unwrap();
    /// assert_eq!(twistor::testing::success_result_of(&result), 21);
    /// ```
    pub fn spawn<T: 'static>(
        &self,
        future: impl Future<Output = Result<T, Failure>> + 'static,
    ) -> Deferred<T> {
        let id = self.inner.next_task.get();
        self.inner.next_task.set(id.wrapping_add(1));
        let weak = self.weak();
        let (d, fire) = Deferred::with_canceller(move |_: &crate::Resolver<T>| {
            if let Some(r) = Reactor::from_weak(&weak) {
                // Dropped with no borrow held: the future may own anything.
                let task = r.inner.tasks.borrow_mut().remove(&id);
                drop(task);
            }
        });
        let on_panic_d = fire.clone();
        let wrapped = async move {
            let r = future.await;
            // Only this task fires `fire` (or the canceller, which drops this task first).
            let _ = fire.fire(r);
        };
        let waker = Arc::new(TaskWaker {
            id,
            shared: self.inner.shared.clone(),
            queued: AtomicBool::new(false),
        });
        let weak = self.weak();
        let resume: crate::defer::future::Resumer =
            Rc::new(move || Reactor::from_weak(&weak).is_some_and(|r| r.poll_task(id)));
        self.inner.tasks.borrow_mut().insert(
            id,
            Task {
                future: Some(Box::pin(wrapped)),
                waker,
                on_panic: Some(Box::new(move |f| {
                    let _ = on_panic_d.errback(f);
                })),
                resume,
            },
        );
        self.poll_task(id);
        d
    }

    fn poll_woken_tasks(&self) {
        let woken = std::mem::take(&mut *self.inner.woken.borrow_mut());
        for id in woken {
            self.poll_task(id);
        }
    }

    /// Polls a task; false if it is gone or already being polled (further up the stack).
    fn poll_task(&self, id: usize) -> bool {
        let taken = {
            let mut tasks = self.inner.tasks.borrow_mut();
            tasks.get_mut(&id).and_then(|t| {
                t.waker.queued.store(false, Ordering::Release);
                t.future
                    .take()
                    .map(|f| (f, t.waker.clone(), t.resume.clone()))
            })
        };
        let Some((mut fut, waker, resume)) = taken else {
            return false;
        };
        let waker = Waker::from(waker);
        let mut cx = Context::from_waker(&waker);
        let polled = crate::defer::future::polling_task(&resume, || {
            catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx)))
        });
        match polled {
            Ok(Poll::Pending) => {
                let mut tasks = self.inner.tasks.borrow_mut();
                match tasks.get_mut(&id) {
                    Some(t) => t.future = Some(fut),
                    None => {
                        // Cancelled while it ran: drop it outside the borrow.
                        drop(tasks);
                        drop(fut);
                    }
                }
            }
            Ok(Poll::Ready(())) => {
                let task = self.inner.tasks.borrow_mut().remove(&id);
                drop(task);
                drop(fut);
            }
            Err(p) => {
                let task = self.inner.tasks.borrow_mut().remove(&id);
                drop(fut);
                let f = Failure::from_panic(&*p);
                crate::report_error!(target: "twistor::reactor", "panic in a spawned future: {f}");
                if let Some(on_panic) = task.and_then(|mut t| t.on_panic.take()) {
                    on_panic(f);
                }
            }
        }
        true
    }

    /// How many spawned futures have not finished.
    pub fn task_count(&self) -> usize {
        self.inner.tasks.borrow().len()
    }
}

impl ReactorTime for Reactor {
    fn seconds(&self) -> f64 {
        self.inner.timers.now()
    }

    fn call_later_boxed(&self, delay: f64, f: Box<dyn FnOnce()>) -> DelayedCall {
        self.inner.timers.schedule_after(delay, f)
    }

    fn get_delayed_calls(&self) -> Vec<DelayedCall> {
        self.inner.timers.active_calls()
    }
}

impl Reactor {
    /// Runs `f` after `delay` seconds (on the next turn for 0); see [`ReactorTime`].
    ///
    /// ```
    /// let reactor = twistor::reactor::Reactor::new().unwrap();
    /// let r = reactor.clone();
    /// let call = reactor.call_later(5.0, move || { let _ = r.stop(); });
    /// assert!(call.active());
    /// call.cancel().unwrap();
    /// ```
    pub fn call_later(&self, delay: f64, f: impl FnOnce() + 'static) -> DelayedCall {
        self.inner.timers.schedule_after(delay, Box::new(f))
    }

    /// The current time in seconds (wall-clock at start, then monotonic).
    pub fn seconds(&self) -> f64 {
        self.inner.timers.now()
    }
}

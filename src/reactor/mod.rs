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
//!    per descriptor per turn for fairness; see `fdset`). A transport that stopped at its read
//!    budget runs once more at the end of this step, after the others.
//!
//! # Re-entrancy
//!
//! The loop never holds a `RefCell` borrow while it runs user code: handlers, timed calls,
//! triggers and thread calls may call any reactor method (schedule, stop, add or remove
//! readers, spawn). A panic in any of them is caught, logged, and the loop goes on.
//!
//! # The registry and the poller
//!
//! Everything the poller watches is one entry of the reactor's registry (the waker, the
//! signal pipes, each transport's source, each raw descriptor), under a token that carries a
//! generation, so an event, a "run again" request or a guard that outlives its registration
//! reaches nothing rather than a newcomer in the same slot. The kernel interface itself sits
//! behind the `poller` module: registration by live descriptor, and a wait that returns
//! `(token, Ready)` pairs.
//!
//! # Dropping a reactor
//!
//! When the last `Reactor` handle is dropped (after `crash()`, after `run()` returned, or in a
//! test that never ran it), the reactor first closes what it owns: every connection loses its
//! connection (its protocol gets `connection_lost` and is released), every listening port
//! stops, every watched descriptor is let go, and pending futures are dropped. Transports
//! hold the reactor weakly for this reason. A handle kept inside the reactor itself (a timed
//! call or a spawned future that captured a clone) keeps it alive: such a reactor is only
//! closed by `stop()` (whose shutdown closes connections and ports) or by dropping those
//! calls.

mod fdset;
mod poller;
mod registry;
mod signals;
pub(crate) mod sources;
mod spawn;
mod threads;
mod triggers;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::Token;

use crate::task::Step;
use crate::time::{DelayedCall, ReactorTime, TimerQueue};
use crate::{Deferred, Failure};

use fdset::Dir;
pub use fdset::FdWatch;
use poller::Poller;
pub use poller::Ready;
use registry::{Registry, WAKER_TOKEN};
use signals::SignalPipes;
use sources::SourceHandler;
pub use spawn::{LocalFuture, ReactorSpawn, TaskHandle, ensure_deferred};
pub use threads::ThreadHandle;
use threads::{Shared, TaskWaker, ThreadCall};
use triggers::Triggers;
pub use triggers::{NoSuchTrigger, Phase, TriggerId};

/// Twisted's cap: the largest millisecond count that fits epoll's signed 32-bit timeout.
const MAX_TIMEOUT: f64 = 2_147_483.0;

/// Errors of the reactor's lifecycle (Twisted's `ReactorNotRunning`, `ReactorAlreadyRunning`,
/// `ReactorNotRestartable`), and of the poller itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// Made once per task and reused for every poll (its `queued` flag saves duplicate
    /// wake-ups).
    waker: Arc<TaskWaker>,
    /// Fails the task's Deferred if polling panics.
    on_panic: Option<Box<dyn FnOnce(Failure)>>,
    /// Polls the task now: a Deferred it awaits resumes it inside its callback.
    resume: crate::defer::future::Resumer,
}

/// The reactor's state, shared by its handles.
struct Inner {
    /// The kernel's readiness interface; the only place that waits for I/O (see `poller`).
    poller: Poller,
    /// Everything registered with the poller, by token: the waker, the signal pipes,
    /// transports' sources and raw descriptors (see `registry`).
    registry: RefCell<Registry>,
    /// The poller's events of this turn, copied out so no borrow is held while handlers run,
    /// in a buffer kept from turn to turn so a turn allocates nothing.
    ready: RefCell<Vec<(Token, Ready)>>,
    /// Raw descriptors still ready after their handler ran: run again next turn (the
    /// level-triggered behaviour `add_reader` promises; see `fdset`).
    again: RefCell<Vec<(Token, Dir)>>,
    /// The last number given to a raw descriptor's registration, so guards and running
    /// handlers can tell their registration from a later one (see `fdset`).
    fd_generation: Cell<u64>,
    /// Sources that stopped at their per-turn budget while still ready: run again next turn
    /// (an edge-triggered poller would not report them again).
    source_again: RefCell<Vec<Token>>,
    /// Transports written to during the current phase: each is flushed once after it, so one
    /// phase's writes to a connection go out together.
    flushes: RefCell<Vec<Rc<dyn SourceHandler>>>,
    /// What other threads share with the loop: queued calls, task wake-ups, the waker.
    shared: Arc<Shared>,
    /// The timed calls (`call_later`).
    timers: TimerQueue,
    /// System event triggers (startup, shutdown, user events).
    triggers: Triggers,
    /// Where the reactor is in its life (Twisted's several flags).
    life: RefCell<Life>,
    /// SIGINT/SIGTERM pipes while `run()` (with handlers) is on.
    signals: RefCell<Option<SignalPipes>>,
    /// The signal that stopped the reactor, for `exit_signal()`.
    exit_signal: Cell<Option<i32>>,
    /// Spawned futures not finished yet, by id.
    tasks: RefCell<HashMap<usize, Task>>,
    /// The next task id (ids are not reused while a waker may still name them).
    next_task: Cell<usize>,
    /// Tasks woken on this thread, polled next turn (no syscall needed for those).
    woken: RefCell<Vec<usize>>,
    /// Turns made so far (`iterations()`, for tests and diagnostics).
    iterations: Cell<u64>,
    /// Turns in a row that skipped the poll because timed calls were already due.
    skipped_polls: Cell<u32>,
    /// State of other modules (the thread pool), kept there.
    extensions: RefCell<Extensions>,
    /// Set while the last handle tears the reactor down, so that teardown runs once.
    torn_down: Cell<bool>,
}

/// What an event is for (looked up with the registry borrowed, acted on without).
enum Kind {
    Signals,
    Source,
    Fd,
}

/// At most this many turns in a row skip the (zero-timeout) poll while timed calls are due, so
/// a timer loop costs no syscall per turn and I/O still gets looked at every few turns.
const MAX_SKIPPED_POLLS: u32 = 32;

/// State owned by other modules of the reactor (the thread pool), kept here so each module
/// stays in its own file.
#[derive(Default)]
pub(crate) struct Extensions {
    /// The pool of `call_in_thread`/`defer_to_thread`, started on first use.
    pub(crate) pool: Option<threadpool::ThreadPool>,
    /// `suggest_thread_pool_size` before the pool exists.
    pub(crate) pool_size: Option<usize>,
    /// Deferreds waiting for a pool thread's result, by key (a Deferred is not `Send`, so
    /// the worker carries the key back instead).
    pub(crate) parked: HashMap<u64, Box<dyn std::any::Any>>,
    /// The last key given out in `parked`.
    pub(crate) next_parked: u64,
}

mod threadpool;
pub use threadpool::{DEFAULT_POOL_SIZE, ReactorThreads, ThreadJob, WrongResultType};

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
            .field(
                "registrations",
                &self.inner.registry.borrow().entries().count(),
            )
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
        let poller = Poller::new()?;
        let waker = poller.waker(WAKER_TOKEN)?;
        let epoch = Instant::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Ok(Reactor {
            inner: Rc::new(Inner {
                poller,
                registry: RefCell::new(Registry::new()),
                ready: RefCell::new(Vec::new()),
                again: RefCell::new(Vec::new()),
                fd_generation: Cell::new(0),
                source_again: RefCell::new(Vec::new()),
                flushes: RefCell::new(Vec::new()),
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
                signals: RefCell::new(None),
                exit_signal: Cell::new(None),
                tasks: RefCell::new(HashMap::new()),
                next_task: Cell::new(0),
                woken: RefCell::new(Vec::new()),
                iterations: Cell::new(0),
                skipped_polls: Cell::new(0),
                extensions: RefCell::new(Extensions::default()),
                torn_down: Cell::new(false),
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
            match SignalPipes::install(&self.inner.poller) {
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
            p.uninstall(&self.inner.poller);
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
    #[doc(alias = "callWhenRunning")]
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
    #[doc(alias = "addSystemEventTrigger")]
    pub fn add_system_event_trigger<R: Step + 'static>(
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
    #[doc(alias = "removeSystemEventTrigger")]
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
    #[doc(alias = "fireSystemEvent")]
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
        if let Err(e) = self.inner.poller.poll(timeout, &mut ready) {
            *self.inner.ready.borrow_mut() = ready;
            return Err(e);
        }
        let again = std::mem::take(&mut *self.inner.again.borrow_mut());
        // Raw descriptors handled this turn, so the again list does not run them twice.
        let mut done: Vec<(Token, Dir)> = Vec::new();
        for &(token, r) in &ready {
            let kind = match self.inner.registry.borrow().get(token) {
                Some(registry::Entry::Waker) | None => continue,
                Some(registry::Entry::Signals) => Kind::Signals,
                Some(registry::Entry::Source(_)) => Kind::Source,
                Some(registry::Entry::Fd(_)) => Kind::Fd,
            };
            match kind {
                Kind::Signals => self.handle_signals(),
                Kind::Source => self.dispatch_source(token, r),
                Kind::Fd => {
                    if r.is_readable() {
                        self.dispatch_fd(token, Dir::Read);
                        done.push((token, Dir::Read));
                    }
                    if r.is_writable() {
                        self.dispatch_fd(token, Dir::Write);
                        done.push((token, Dir::Write));
                    }
                }
            }
            // What this handler wrote leaves before the next handler runs (see
            // `sources.rs`): an expensive handler does not hold back cheaper ones' replies.
            self.run_flushes();
        }
        for (token, dir) in again {
            if !done.contains(&(token, dir)) {
                self.dispatch_fd(token, dir);
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

    fn disconnect_all(&self) {
        let _ = self.remove_all();
        self.shutdown_sources();
    }

    /// What the last handle does before the state goes (module docs, "Dropping a reactor").
    fn teardown(&self) {
        if self.inner.torn_down.replace(true) {
            return;
        }
        self.crash();
        self.disconnect_all();
        // Whatever the shutdown of sources queued will never run: drop it here, where a
        // handle still exists, so that any `Drop` reaching for the reactor finds it.
        let flushes = std::mem::take(&mut *self.inner.flushes.borrow_mut());
        drop(flushes);
        self.inner.source_again.borrow_mut().clear();
        self.inner.again.borrow_mut().clear();
        let tasks = std::mem::take(&mut *self.inner.tasks.borrow_mut());
        drop(tasks);
        // Timed calls can never run now; cancelling drops what they captured, which may be a
        // handle the shutdown above scheduled (it would keep the state alive for ever).
        for call in self.inner.timers.active_calls() {
            let _ = call.cancel();
        }
        let pool = self.extensions().pool.take();
        if let Some(p) = pool {
            p.release();
        }
        let parked = std::mem::take(&mut self.extensions().parked);
        drop(parked);
        let entries: Vec<registry::Entry> = {
            let mut reg = self.inner.registry.borrow_mut();
            let tokens = reg.tokens();
            tokens.into_iter().filter_map(|t| reg.remove(t)).collect()
        };
        drop(entries);
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
    #[doc(alias = "ensureDeferred")]
    pub fn spawn<T: 'static>(
        &self,
        future: impl Future<Output = Result<T, Failure>> + 'static,
    ) -> Deferred<T> {
        spawn::ensure_deferred(self, future)
    }

    /// Stores a task and polls it once; returns its id (see [`ReactorSpawn`]).
    fn start_task(&self, future: TaskFuture, on_panic: Box<dyn FnOnce(Failure)>) -> usize {
        let id = self.inner.next_task.get();
        self.inner.next_task.set(id.wrapping_add(1));
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
                future: Some(future),
                waker,
                on_panic: Some(on_panic),
                resume,
            },
        );
        self.poll_task(id);
        id
    }

    /// Drops a task's future (no borrow held: the future may own anything).
    fn drop_task(&self, id: usize) {
        let task = self.inner.tasks.borrow_mut().remove(&id);
        drop(task);
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

impl Drop for Reactor {
    fn drop(&mut self) {
        // The last handle: nothing can run the loop again, so close what it owns. Transports
        // hold the reactor weakly, and a connection and its protocol hold each other, so
        // without this their sockets and protocols would outlive the reactor for ever.
        if Rc::strong_count(&self.inner) == 1 {
            self.teardown();
        }
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
    /// Bad delays never panic (Twisted asserts `delay >= 0` instead): a negative or NaN
    /// `delay` is clamped to 0 with a warning in the log, exactly as on the test
    /// [`Clock`](crate::task::Clock), and an infinite one never comes due.
    ///
    /// ```
    /// let reactor = twistor::reactor::Reactor::new().unwrap();
    /// let r = reactor.clone();
    /// let call = reactor.call_later(5.0, move || { let _ = r.stop(); });
    /// assert!(call.active());
    /// call.cancel().unwrap();
    /// ```
    #[doc(alias = "callLater")]
    pub fn call_later(&self, delay: f64, f: impl FnOnce() + 'static) -> DelayedCall {
        self.inner.timers.schedule_after(delay, Box::new(f))
    }

    /// The current time in seconds (wall-clock at start, then monotonic).
    pub fn seconds(&self) -> f64 {
        self.inner.timers.now()
    }
}

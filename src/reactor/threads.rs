//! The bridge from other threads: `call_from_thread` and `stop`, through a queue and a
//! `mio::Waker`.
//!
//! # Invariants
//!
//! * The loop drains the queue once per turn, taking only the calls present at that moment
//!   (it swaps the vector out); calls queued meanwhile wait for the next turn, and the waker
//!   is set again so that turn comes at once.
//! * `wake_pending` makes wake-ups cheap: a producer only writes to the waker when it is the
//!   first to queue something since the loop last looked. The loop clears the flag *before*
//!   it swaps the queue out, so a call queued after the swap always finds the flag clear and
//!   wakes the loop: nothing is ever left waiting for an unrelated event.
//! * Calls from one thread run in the order that thread queued them (one mutex-protected
//!   vector, appended under the lock).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Wake;

use super::Reactor;

/// A call queued from another thread.
pub(crate) enum ThreadCall {
    Call(Box<dyn FnOnce(&Reactor) + Send>),
    Stop,
    /// A spawned task's waker fired (the task id).
    WakeTask(usize),
}

pub(crate) struct Shared {
    queue: Mutex<Vec<ThreadCall>>,
    wake_pending: AtomicBool,
    waker: mio::Waker,
}

impl Shared {
    pub(crate) fn new(waker: mio::Waker) -> Shared {
        Shared {
            queue: Mutex::new(Vec::new()),
            wake_pending: AtomicBool::new(false),
            waker,
        }
    }

    pub(crate) fn push(&self, call: ThreadCall) {
        {
            // A poisoned lock only means another pusher panicked mid-push of a Vec: the Vec
            // itself is fine, so carry on with it.
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.push(call);
        }
        if !self.wake_pending.swap(true, Ordering::AcqRel)
            && let Err(e) = self.waker.wake()
        {
            log::error!(target: "twistor::reactor", "cannot wake the reactor: {e}");
        }
    }

    /// Takes the calls queued so far (the loop's once-per-turn drain).
    pub(crate) fn take(&self) -> Vec<ThreadCall> {
        // Fast path, no lock: a pusher sets the flag after pushing, so a clear flag means an
        // empty queue, or a push whose wake-up is on its way (it is taken next turn).
        if !self.wake_pending.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.wake_pending.store(false, Ordering::Release);
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *q)
    }
}

/// The handle other threads use to reach a reactor: `Send + Sync`, cheap to clone, and able
/// only to queue calls onto the reactor's thread and to stop it (Twisted's
/// `IReactorFromThreads`).
///
/// ```
/// use twistor::reactor::Reactor;
///
/// let reactor = Reactor::new().unwrap();
/// let handle = reactor.thread_handle();
/// std::thread::spawn(move || {
///     handle.call_from_thread(|reactor| {
///         println!("now on the reactor's thread");
///         let _ = reactor.stop();
///     });
/// });
/// reactor.run_without_signal_handlers().unwrap();
/// ```
#[derive(Clone)]
pub struct ThreadHandle {
    pub(crate) shared: Arc<Shared>,
}

impl ThreadHandle {
    /// Runs `f` on the reactor's thread, during the loop's next turn. Calls from one thread run
    /// in the order they were made.
    ///
    /// ```
    /// # use twistor::reactor::Reactor;
    /// let reactor = Reactor::new().unwrap();
    /// reactor.thread_handle().call_from_thread(|r| { let _ = r.stop(); });
    /// reactor.run_without_signal_handlers().unwrap();
    /// ```
    #[doc(alias = "callFromThread")]
    pub fn call_from_thread(&self, f: impl FnOnce(&Reactor) + Send + 'static) {
        self.shared.push(ThreadCall::Call(Box::new(f)));
    }

    /// Asks the reactor to stop (as `Reactor::stop`, from any thread; ignored if it is not
    /// running by the time the request is handled).
    ///
    /// ```
    /// # use twistor::reactor::Reactor;
    /// let reactor = Reactor::new().unwrap();
    /// let h = reactor.thread_handle();
    /// std::thread::spawn(move || h.stop());
    /// reactor.run_without_signal_handlers().unwrap();
    /// ```
    pub fn stop(&self) {
        self.shared.push(ThreadCall::Stop);
    }
}

impl std::fmt::Debug for ThreadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ThreadHandle")
    }
}

/// The waker of a task spawned on the reactor: queues the task's id and wakes the loop.
pub(crate) struct TaskWaker {
    pub(crate) id: usize,
    pub(crate) shared: Arc<Shared>,
    /// Set while the task is queued, so a burst of wakes queues it once.
    pub(crate) queued: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.shared.push(ThreadCall::WakeTask(self.id));
        }
    }
}

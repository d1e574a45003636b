//! One protocol, one callback at a time: the cell that stream protocols, datagram
//! protocols and process protocols share.
//!
//! A callback may drive its own transport, and that transport may have an event for the
//! same protocol at once (an in-memory transport, a write that learns of a refusal, a child
//! that exits while its output is read). The protocol is then borrowed, so the event waits
//! in a queue and runs right after the callback returns, in order. Each user keeps its own
//! policy around the cell: what a panic does, what stops the queue, what is dropped rather
//! than queued.

use std::any::Any;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Work that waits for the running callback: the owned form of a call.
pub(crate) type Job<P, C> = Box<dyn FnOnce(&mut P, &C)>;

/// A panic payload, as `catch_unwind` returns it.
pub(crate) type Panic = Box<dyn Any + Send>;

/// The protocol and the work queued while one of its callbacks runs.
pub(crate) struct Serial<P, C> {
    proto: RefCell<P>,
    queued: RefCell<VecDeque<Job<P, C>>>,
}

impl<P, C> Serial<P, C> {
    pub(crate) fn new(proto: P) -> Self {
        Serial {
            proto: RefCell::new(proto),
            queued: RefCell::new(VecDeque::new()),
        }
    }

    /// A callback of the protocol is on the stack.
    pub(crate) fn busy(&self) -> bool {
        self.proto.try_borrow_mut().is_err()
    }

    /// Work is waiting (a call that does not queue must not overtake it).
    pub(crate) fn has_queued(&self) -> bool {
        !self.queued.borrow().is_empty()
    }

    /// Runs `f` now, a panic unwinding to the caller (a handle's `with` is the caller's own
    /// code); busy, gives `f` back.
    pub(crate) fn try_run<F, R>(&self, cx: &C, f: F) -> Result<R, F>
    where
        F: FnOnce(&mut P, &C) -> R,
    {
        match self.proto.try_borrow_mut() {
            Ok(mut p) => Ok(f(&mut p, cx)),
            Err(_) => Err(f),
        }
    }

    /// Runs `f` now with its panic caught; busy, hands `f` to `on_busy` (to queue, drop or
    /// put aside) and returns `None`. Nothing is boxed on the path that runs.
    pub(crate) fn run_or_else<F, R>(
        &self,
        cx: &C,
        f: F,
        on_busy: impl FnOnce(F),
    ) -> Option<Result<R, Panic>>
    where
        F: FnOnce(&mut P, &C) -> R,
    {
        match self.proto.try_borrow_mut() {
            Ok(mut p) => Some(catch_unwind(AssertUnwindSafe(|| f(&mut p, cx)))),
            Err(_) => {
                on_busy(f);
                None
            }
        }
    }

    /// Runs `f` now with its panic caught, or queues it to run after the running callback.
    /// `make` builds the owned job only when it must wait, so the common path allocates
    /// nothing (stream data is borrowed from the read buffer until then).
    pub(crate) fn run_or_queue<F>(
        &self,
        cx: &C,
        f: F,
        make: impl FnOnce(F) -> Job<P, C>,
    ) -> Option<Result<(), Panic>>
    where
        F: FnOnce(&mut P, &C),
    {
        self.run_or_else(cx, f, |f| self.queue(make(f)))
    }

    pub(crate) fn queue(&self, job: Job<P, C>) {
        self.queued.borrow_mut().push_back(job);
    }

    /// Runs the queued jobs in order, unless a callback is running (it drains them when it
    /// returns). `stop` is asked before each job with the protocol borrowed; a popped job it
    /// refuses is dropped after the borrow is released. A caught panic goes to `on_panic`,
    /// which says whether to go on.
    pub(crate) fn drain(
        &self,
        cx: &C,
        stop: impl Fn() -> bool,
        mut on_panic: impl FnMut(Panic) -> bool,
    ) {
        loop {
            let Some(job) = self.queued.borrow_mut().pop_front() else {
                return;
            };
            let Ok(mut p) = self.proto.try_borrow_mut() else {
                // Still busy (nested): the outer call drains the rest.
                self.queued.borrow_mut().push_front(job);
                return;
            };
            if stop() {
                return;
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| job(&mut p, cx)));
            drop(p);
            if let Err(payload) = outcome
                && !on_panic(payload)
            {
                return;
            }
        }
    }

    /// Empties the queue, dropping the jobs with no borrow held (a job may own what drops
    /// back into this cell).
    pub(crate) fn clear(&self) {
        let dropped: Vec<_> = self.queued.borrow_mut().drain(..).collect();
        drop(dropped);
    }
}

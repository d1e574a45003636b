//! Awaiting a Deferred from `async` code.
//!
//! `deferred.await` works on any executor that can run a `!Send` future (a single-threaded
//! one, such as `futures::executor::block_on` or a tokio `LocalSet`); no reactor is needed.
//! The first poll attaches one callback/errback pair to the Deferred that moves the result into
//! the future, so the Deferred's chain continues with `()` afterwards (Twisted's `await`
//! consumes an unfired Deferred's result the same way).
//!
//! # Resuming inside the callback
//!
//! In Twisted, a coroutine awaiting a Deferred resumes *inside* that Deferred's callback: the
//! code after the `await` runs before `callback()` returns. On the reactor, twistor does the
//! same: while the reactor polls a spawned future, it publishes a *resumer* for that task (a
//! thread-local, see [`polling_task`]); the first poll of a `DeferredFuture` keeps it, and the
//! callback calls it to poll the task right there instead of waking it for a later turn. This
//! matters when there is no later turn: a future awaiting a Deferred that fires during
//! shutdown would otherwise never resume, and its result (or error) would be lost.
//!
//! The resumer is used only if the future is still polled by the task that published it (the
//! latest waker is the one seen then) and that task is not running now (a Deferred fired from
//! inside the task's own poll); otherwise the future is woken the usual way. Any other
//! executor publishes no resumer, and the waker is used.
//!
//! Dropping the future before it completes cancels the Deferred: in Rust, dropping a future
//! is how an `.await` is cancelled, and this lets cancellation flow downstream as Twisted's
//! `inlineCallbacks` cancellation does.

use std::cell::RefCell;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::deferred::CancelHandle;
use crate::{Deferred, Failure};

/// Polls the task that published it, now; false if it could not (the task is running or
/// gone), in which case the caller wakes it instead.
pub(crate) type Resumer = Rc<dyn Fn() -> bool>;

thread_local! {
    static RESUMER: RefCell<Option<Resumer>> = const { RefCell::new(None) };
}

/// Runs `poll` (one poll of a task) with `resume` published as the current task's resumer.
/// Nested polls (a task resumed inside another one's callback) restore the outer resumer.
pub(crate) fn polling_task<R>(resume: &Resumer, poll: impl FnOnce() -> R) -> R {
    struct Restore(Option<Resumer>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            RESUMER.with(|r| *r.borrow_mut() = prev);
        }
    }
    let prev = RESUMER.with(|r| r.borrow_mut().replace(resume.clone()));
    let _restore = Restore(prev);
    poll()
}

fn current_resumer() -> Option<Resumer> {
    RESUMER.with(|r| r.borrow().clone())
}

struct Slot<T> {
    result: Option<Result<T, Failure>>,
    waker: Option<Waker>,
}

/// The future of a [`Deferred`]: resolves to `Result<T, Failure>`.
///
/// ```
/// use std::task::{Context, Poll, Waker};
/// use std::future::{Future, IntoFuture};
/// use twistor::Deferred;
///
/// let (d, r) = Deferred::new();
/// let mut fut = Box::pin(d.into_future());
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(fut.as_mut().poll(&mut cx).is_pending());
/// r.callback(7).unwrap();
/// assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(7))));
/// ```
pub struct DeferredFuture<T: 'static> {
    /// The Deferred until the first poll attaches to it.
    deferred: Option<Deferred<T>>,
    /// Kept to cancel the Deferred if the future is dropped before its result arrives.
    cancel: Option<CancelHandle>,
    slot: Rc<RefCell<Slot<T>>>,
    done: bool,
}

impl<T: 'static> IntoFuture for Deferred<T> {
    type Output = Result<T, Failure>;
    type IntoFuture = DeferredFuture<T>;

    fn into_future(self) -> DeferredFuture<T> {
        DeferredFuture {
            deferred: Some(self),
            cancel: None,
            slot: Rc::new(RefCell::new(Slot {
                result: None,
                waker: None,
            })),
            done: false,
        }
    }
}

impl<T: 'static> Future for DeferredFuture<T> {
    type Output = Result<T, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // No field is structurally pinned: DeferredFuture is Unpin.
        let this = self.get_mut();
        if let Some(d) = this.deferred.take() {
            this.cancel = Some(d.cancel_handle());
            // The waker is stored below, after attaching: a result that is already there
            // must not wake (or resume) the task that is polling right now.
            let slot = this.slot.clone();
            let resume = current_resumer().map(|r| (cx.waker().clone(), r));
            drop(d.add_both(move |r| {
                let waker = {
                    let mut s = slot.borrow_mut();
                    s.result = Some(r);
                    s.waker.take()
                };
                let Some(waker) = waker else {
                    return Ok(());
                };
                // Resume inside this callback if the task that polled first still owns the
                // future (module docs); otherwise wake it.
                if let Some((first, resume)) = resume
                    && waker.will_wake(&first)
                    && resume()
                {
                    return Ok(());
                }
                waker.wake();
                Ok(())
            }));
        }
        let mut s = this.slot.borrow_mut();
        match s.result.take() {
            Some(r) => {
                this.done = true;
                Poll::Ready(r)
            }
            None => {
                match &s.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => s.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl<T: 'static> Drop for DeferredFuture<T> {
    fn drop(&mut self) {
        if let Some(c) = &self.cancel
            && !self.done
            && self.slot.borrow().result.is_none()
        {
            c.cancel();
        }
    }
}

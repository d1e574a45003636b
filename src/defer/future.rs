//! Awaiting a Deferred from `async` code.
//!
//! `deferred.await` works on any executor that can run a `!Send` future (a single-threaded
//! one, such as `futures::executor::block_on` or a tokio `LocalSet`); no reactor is needed.
//! The first poll attaches one callback/errback pair to the Deferred that moves the result into
//! the future and wakes it, so the Deferred's chain continues with `()` afterwards (Twisted's
//! `await` consumes an unfired Deferred's result the same way).
//!
//! Dropping the future before it completes cancels the Deferred: in Rust, dropping a future
//! is how an `.await` is cancelled, and this lets cancellation flow downstream as Twisted's
//! `inlineCallbacks` cancellation does.

use std::cell::RefCell;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::{Deferred, Failure};

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
/// let d = Deferred::new();
/// let mut fut = Box::pin(d.clone().into_future());
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(fut.as_mut().poll(&mut cx).is_pending());
/// d.callback(7).unwrap();
/// assert!(matches!(fut.as_mut().poll(&mut cx), Poll::Ready(Ok(7))));
/// ```
pub struct DeferredFuture<T: 'static> {
    /// The Deferred until the first poll attaches to it, then kept to cancel on drop.
    deferred: Deferred<T>,
    slot: Rc<RefCell<Slot<T>>>,
    attached: bool,
    done: bool,
}

impl<T: 'static> IntoFuture for Deferred<T> {
    type Output = Result<T, Failure>;
    type IntoFuture = DeferredFuture<T>;

    fn into_future(self) -> DeferredFuture<T> {
        DeferredFuture {
            deferred: self,
            slot: Rc::new(RefCell::new(Slot {
                result: None,
                waker: None,
            })),
            attached: false,
            done: false,
        }
    }
}

impl<T: 'static> Future for DeferredFuture<T> {
    type Output = Result<T, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // No field is structurally pinned: DeferredFuture is Unpin.
        let this = self.get_mut();
        if !this.attached {
            this.attached = true;
            this.slot.borrow_mut().waker = Some(cx.waker().clone());
            let slot = this.slot.clone();
            let _ = this.deferred.clone().add_both(move |r| {
                let waker = {
                    let mut s = slot.borrow_mut();
                    s.result = Some(r);
                    s.waker.take()
                };
                if let Some(w) = waker {
                    w.wake();
                }
                Ok(())
            });
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
        if self.attached && !self.done && self.slot.borrow().result.is_none() {
            self.deferred.cancel();
        }
    }
}

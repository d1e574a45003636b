//! Running futures as a trait: [`ReactorSpawn`] (Twisted's `ensureDeferred`, with the
//! reactor as the thing that drives the coroutine).
//!
//! Code that takes `&impl ReactorSpawn` (which is also a [`ReactorTime`]) can spawn futures,
//! schedule calls and wait with `defer_later`, and is tested with
//! [`MemoryReactor`](crate::testing::MemoryReactor): no sockets, no real time. The real
//! [`Reactor`] polls woken futures at the start of its next turn; a `MemoryReactor` polls them
//! when its clock advances.
//!
//! The object-safe core is [`spawn_boxed`](ReactorSpawn::spawn_boxed); the typed
//! [`spawn`](ReactorSpawn::spawn) and the free function [`ensure_deferred`] are built on it
//! the same way for every implementation, so cancellation and panics behave alike.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use crate::time::ReactorTime;
use crate::{Deferred, Failure};

use super::Reactor;

/// A spawned future, boxed for the object-safe [`ReactorSpawn::spawn_boxed`].
pub type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// Lets go of a spawned future: [`abort`](TaskHandle::abort) drops it (if it has not finished).
/// Dropping the handle itself does nothing: the future runs on.
///
/// ```
/// use std::future::pending;
/// use twistor::reactor::{Reactor, ReactorSpawn};
///
/// let reactor = Reactor::new().unwrap();
/// let handle = reactor.spawn_boxed(Box::pin(pending()), Box::new(|_| ()));
/// assert_eq!(reactor.task_count(), 1);
/// handle.abort();
/// assert_eq!(reactor.task_count(), 0);
/// ```
pub struct TaskHandle {
    abort: Option<Box<dyn FnOnce()>>,
}

impl fmt::Debug for TaskHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle").finish_non_exhaustive()
    }
}

impl TaskHandle {
    /// A handle that drops the future by calling `abort` (for implementations of
    /// [`ReactorSpawn`]).
    ///
    /// ```
    /// let handle = twistor::reactor::TaskHandle::new(|| println!("dropped"));
    /// handle.abort();
    /// ```
    pub fn new(abort: impl FnOnce() + 'static) -> TaskHandle {
        TaskHandle {
            abort: Some(Box::new(abort)),
        }
    }

    /// Drops the future now (nothing happens if it has finished).
    ///
    /// ```
    /// twistor::reactor::TaskHandle::new(|| ()).abort();
    /// ```
    pub fn abort(mut self) {
        if let Some(f) = self.abort.take() {
            f();
        }
    }
}

/// Something that runs local futures: the reactor, or a test double.
///
/// ```
/// use std::rc::Rc;
/// use twistor::reactor::ReactorSpawn;
/// use twistor::task::defer_later;
/// use twistor::testing::{MemoryReactor, assert_no_result, success_result_of};
///
/// // Code under test only knows "a reactor that spawns and tells time".
/// fn answer_later<R: ReactorSpawn + Clone + 'static>(r: &R) -> twistor::Deferred<u32> {
///     let time = r.clone();
///     r.spawn(async move { defer_later(time, 5.0, || Ok::<_, twistor::Failure>(42)).await })
/// }
///
/// let mr = Rc::new(MemoryReactor::new());
/// let d = answer_later(&mr);
/// mr.clock().advance(4.0);
/// assert_no_result(&d);
/// mr.clock().advance(1.0);
/// assert_eq!(success_result_of(&d), 42);
/// ```
pub trait ReactorSpawn: ReactorTime {
    /// Starts `future` now (it runs until it first waits) and polls it again whenever it is
    /// woken, until it finishes. `on_panic` gets the failure if polling it panics (the future
    /// is dropped then). The object-safe core of [`spawn`](Self::spawn).
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use twistor::reactor::ReactorSpawn;
    /// use twistor::testing::MemoryReactor;
    ///
    /// let mr = MemoryReactor::new();
    /// let ran = Rc::new(Cell::new(false));
    /// let r = ran.clone();
    /// let _handle = mr.spawn_boxed(Box::pin(async move { r.set(true) }), Box::new(|_| ()));
    /// assert!(ran.get());
    /// ```
    fn spawn_boxed(&self, future: LocalFuture, on_panic: Box<dyn FnOnce(Failure)>) -> TaskHandle;

    /// Runs a future and gives its result as a Deferred (Twisted's `ensureDeferred`).
    /// Cancelling the Deferred drops the future (the Deferred fails with `CancelledError`); a
    /// panic in the future fails it with the panic.
    ///
    /// ```
    /// use twistor::reactor::ReactorSpawn;
    /// use twistor::testing::{MemoryReactor, success_result_of};
    ///
    /// let mr = MemoryReactor::new();
    /// let d = ReactorSpawn::spawn(&mr, async { Ok::<_, twistor::Failure>(7) });
    /// assert_eq!(success_result_of(&d), 7);
    /// ```
    #[doc(alias = "ensureDeferred")]
    fn spawn<T: 'static>(
        &self,
        future: impl Future<Output = Result<T, Failure>> + 'static,
    ) -> Deferred<T>
    where
        Self: Sized,
    {
        ensure_deferred(self, future)
    }
}

/// [`ReactorSpawn::spawn`] as a function, for `&dyn ReactorSpawn` too (Twisted's
/// `ensureDeferred`).
///
/// ```
/// use twistor::reactor::{ReactorSpawn, ensure_deferred};
/// use twistor::testing::{MemoryReactor, success_result_of};
///
/// let mr = MemoryReactor::new();
/// let r: &dyn ReactorSpawn = &mr;
/// let d = ensure_deferred(r, async { Ok::<_, twistor::Failure>("done") });
/// assert_eq!(success_result_of(&d), "done");
/// ```
#[doc(alias = "ensureDeferred")]
pub fn ensure_deferred<T: 'static, R: ReactorSpawn + ?Sized>(
    reactor: &R,
    future: impl Future<Output = Result<T, Failure>> + 'static,
) -> Deferred<T> {
    let handle: Rc<RefCell<Option<TaskHandle>>> = Rc::new(RefCell::new(None));
    let h = handle.clone();
    let (d, resolver) = Deferred::with_canceller(move |_: &crate::Resolver<T>| {
        // Taken out first: dropping the future may run arbitrary Drop code.
        let taken = h.borrow_mut().take();
        if let Some(t) = taken {
            t.abort();
        }
    });
    let (fire, on_panic) = (resolver.clone(), resolver.clone());
    let task = reactor.spawn_boxed(
        Box::pin(async move {
            let r = future.await;
            // Only this task fires `fire` (or the canceller, which dropped this task first).
            let _ = fire.fire(r);
        }),
        Box::new(move |f| {
            let _ = on_panic.errback(f);
        }),
    );
    if !resolver.called() {
        *handle.borrow_mut() = Some(task);
    }
    d
}

impl ReactorSpawn for Reactor {
    fn spawn_boxed(&self, future: LocalFuture, on_panic: Box<dyn FnOnce(Failure)>) -> TaskHandle {
        let id = self.start_task(future, on_panic);
        let weak = self.downgrade();
        TaskHandle::new(move || {
            if let Some(r) = weak.upgrade() {
                r.drop_task(id);
            }
        })
    }
}

/// Pointers to a spawner are spawners (`&T`, `Rc<T>`, `Box<T>`).
macro_rules! forward_reactor_spawn {
    ($($ptr:ty),*) => {$(
        impl<T: ReactorSpawn + ?Sized> ReactorSpawn for $ptr {
            fn spawn_boxed(
                &self,
                future: LocalFuture,
                on_panic: Box<dyn FnOnce(Failure)>,
            ) -> TaskHandle {
                (**self).spawn_boxed(future, on_panic)
            }
        }
    )*};
}

forward_reactor_spawn!(&T, Rc<T>, Box<T>);

//! Mutual exclusion for Deferred-based code: [`DeferredLock`] and [`DeferredSemaphore`].
//!
//! # Invariants
//!
//! * **Hand-off is FIFO and direct.** `release()` gives the lock (or the token) straight to
//!   the oldest waiter, so the primitive stays held across the hand-off and no newcomer can
//!   barge in between. The waiter's callbacks run inside `release()`.
//! * **A waiter is in the queue exactly while its Deferred has not fired.** Cancelling a
//!   waiting `acquire()` removes it from the queue and it fails with
//!   [`CancelledError`](super::CancelledError); cancelling one that already acquired does
//!   nothing (a fired Deferred ignores `cancel()`).
//! * **Misuse is an `Err`, not a panic.** Releasing an unlocked lock ([`NotLockedError`]) or a
//!   semaphore more times than it was acquired ([`TooManyReleasesError`]) changes nothing and
//!   returns an error (Twisted asserts).
//! * **State is consistent before user code runs**: no `RefCell` borrow is held while a
//!   waiter's callbacks run, so they may acquire and release again.
//!
//! Both types are cheap `Clone` handles on shared state; an `acquire()` fires with such a
//! handle. A waiting `acquire()` refers to the primitive only weakly, so dropping every handle
//! to a primitive frees it (its waiters then never fire).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::{Rc, Weak};

use super::deferred::{IntoDeferred, maybe_deferred};
use crate::{Deferred, Failure, Resolver};

/// `DeferredLock::release` on a lock that is not locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Tried to release an unlocked lock")]
pub struct NotLockedError;

/// `DeferredSemaphore::release` called more times than `acquire` succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Someone released me too many times: too many tokens!")]
pub struct TooManyReleasesError;

/// `DeferredSemaphore::new(0)`: a semaphore needs at least one token (Twisted's `ValueError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("DeferredSemaphore requires tokens >= 1")]
pub struct InvalidTokensError;

/// Takes the oldest waiter that has not fired yet. Waiters only fire through their primitive
/// or by cancellation (which removes them), so a fired one here was fired by its holder: skip
/// it rather than lose the lock, token or item it would have been given.
pub(super) fn next_waiter<T: 'static>(waiting: &mut VecDeque<Resolver<T>>) -> Option<Resolver<T>> {
    while let Some(w) = waiting.pop_front() {
        if !w.called() {
            return Some(w);
        }
    }
    None
}

/// A waiter's canceller: remove it from the queue (the Deferred then fails with
/// `CancelledError`).
pub(super) fn remove_waiter<S: 'static, T: 'static>(
    state: Weak<RefCell<S>>,
    waiting: fn(&mut S) -> &mut VecDeque<Resolver<T>>,
) -> impl FnOnce(&Resolver<T>) + 'static {
    move |d: &Resolver<T>| {
        if let Some(st) = state.upgrade() {
            waiting(&mut st.borrow_mut()).retain(|w| !w.ptr_eq(d));
        }
    }
}

/// The state of a lock or semaphore: free tokens and the acquires waiting for one. A lock is a
/// pool of one token (Twisted keeps two classes; the logic is the same).
struct Tokens<H> {
    /// Tokens free now.
    tokens: usize,
    /// Tokens it was made with.
    limit: usize,
    /// Acquires waiting for a token, oldest first.
    waiting: VecDeque<Resolver<H>>,
}

type Pool<H> = Rc<RefCell<Tokens<H>>>;

fn new_pool<H>(limit: usize) -> Pool<H> {
    Rc::new(RefCell::new(Tokens {
        tokens: limit,
        limit,
        waiting: VecDeque::new(),
    }))
}

/// Twisted's `acquire`: fires with `holder` now if a token is free, else queues (FIFO);
/// cancelling a queued acquire removes it.
fn acquire_token<H: Clone + 'static>(pool: &Pool<H>, holder: H) -> Deferred<H> {
    let (d, r) = Deferred::with_canceller(remove_waiter(Rc::downgrade(pool), |s| &mut s.waiting));
    let free = {
        let mut s = pool.borrow_mut();
        if s.tokens == 0 {
            s.waiting.push_back(r.clone());
            false
        } else {
            s.tokens -= 1;
            true
        }
    };
    if free {
        let _ = r.callback(holder);
    }
    d
}

/// Twisted's `release`: the token goes straight to the oldest waiter, or back to the pool.
/// False if every token is already free (a release too many).
fn release_token<H: Clone + 'static>(pool: &Pool<H>, holder: H) -> bool {
    let next = {
        let mut s = pool.borrow_mut();
        if s.tokens >= s.limit {
            return false;
        }
        let next = next_waiter(&mut s.waiting);
        if next.is_none() {
            s.tokens += 1;
        }
        next
    };
    if let Some(w) = next {
        let _ = w.callback(holder);
    }
    true
}

/// Twisted's `run`: acquire, call `f`, release when its result arrives, pass the result on.
fn run_holding<H: 'static, R: IntoDeferred, E: std::error::Error + 'static>(
    acquired: Deferred<H>,
    release: fn(&H) -> Result<(), E>,
    f: impl FnOnce() -> R + 'static,
) -> Deferred<R::Output> {
    acquired.add_callback_deferred(move |holder| {
        maybe_deferred(f).add_both(move |r| {
            release(&holder).map_err(Failure::new)?;
            r
        })
    })
}

/// A lock for Deferred-based code (Twisted's `DeferredLock`).
///
/// [`acquire`](Self::acquire) returns a Deferred that fires with the lock once it is yours;
/// [`release`](Self::release) hands it to the next waiter. [`run`](Self::run) does both around
/// a function.
///
/// ```
/// use twistor::defer::DeferredLock;
///
/// let lock = DeferredLock::new();
/// let first = lock.acquire();
/// assert!(lock.locked() && first.called());
/// let second = lock.acquire();
/// assert!(!second.called());
/// lock.release().unwrap();
/// assert!(second.called() && lock.locked()); // handed over, still locked
/// lock.release().unwrap();
/// assert!(!lock.locked());
/// assert!(lock.release().is_err());
/// ```
#[derive(Clone)]
pub struct DeferredLock {
    inner: Pool<DeferredLock>,
}

impl Default for DeferredLock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for DeferredLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.borrow();
        f.debug_struct("DeferredLock")
            .field("locked", &(s.tokens == 0))
            .field("waiting", &s.waiting.len())
            .finish()
    }
}

impl DeferredLock {
    /// A new, unlocked lock.
    ///
    /// ```
    /// assert!(!twistor::defer::DeferredLock::new().locked());
    /// ```
    pub fn new() -> Self {
        DeferredLock { inner: new_pool(1) }
    }

    /// True while someone holds the lock.
    pub fn locked(&self) -> bool {
        self.inner.borrow().tokens == 0
    }

    /// Asks for the lock: the Deferred fires with (a handle on) this lock now if it is free,
    /// otherwise when it is this caller's turn (first come, first served). Cancelling it while
    /// it waits takes it out of the queue; it then fails with `CancelledError`.
    ///
    /// ```
    /// use twistor::defer::{CancelledError, DeferredLock};
    /// let lock = DeferredLock::new();
    /// let held = lock.acquire();
    /// let waiting = lock.acquire();
    /// waiting.cancel();
    /// assert!(twistor::testing::failure_result_of(&waiting).is::<CancelledError>());
    /// lock.release().unwrap();
    /// assert!(!lock.locked()); // the cancelled waiter did not get it
    /// # drop(held);
    /// ```
    #[track_caller]
    pub fn acquire(&self) -> Deferred<DeferredLock> {
        acquire_token(&self.inner, self.clone())
    }

    /// Releases the lock: the oldest waiter gets it now (its callbacks run in this call) and
    /// the lock stays locked; with no waiter, the lock becomes free. Releasing a lock that is
    /// not locked returns [`NotLockedError`] and changes nothing.
    ///
    /// ```
    /// use twistor::defer::{DeferredLock, NotLockedError};
    /// let lock = DeferredLock::new();
    /// assert_eq!(lock.release(), Err(NotLockedError));
    /// ```
    pub fn release(&self) -> Result<(), NotLockedError> {
        if release_token(&self.inner, self.clone()) {
            Ok(())
        } else {
            Err(NotLockedError)
        }
    }

    /// Acquires the lock, calls `f` (as [`maybe_deferred`] does: a value, an `Err`, a
    /// Deferred or a panic), and releases the lock when `f`'s result arrives. The returned
    /// Deferred has `f`'s result. Cancelling it while it waits for the lock means `f` never
    /// runs; cancelling it while `f`'s Deferred is pending cancels that Deferred. If someone
    /// else released the lock meanwhile, the result is a [`NotLockedError`] failure (Twisted's
    /// `AssertionError`).
    ///
    /// ```
    /// use twistor::{Deferred, Failure, defer::DeferredLock};
    /// let lock = DeferredLock::new();
    /// let (work, fire_work) = Deferred::<u32>::new();
    /// let result = lock.run(move || work);
    /// assert!(lock.locked());
    /// fire_work.callback(7).unwrap();
    /// assert!(!lock.locked());
    /// assert_eq!(twistor::testing::success_result_of(&result), 7);
    ///
    /// let sync = lock.run(|| Ok::<_, Failure>("now"));
    /// assert_eq!(twistor::testing::success_result_of(&sync), "now");
    /// ```
    #[track_caller]
    pub fn run<R: IntoDeferred>(&self, f: impl FnOnce() -> R + 'static) -> Deferred<R::Output> {
        run_holding(self.acquire(), DeferredLock::release, f)
    }
}

/// A semaphore for Deferred-based code (Twisted's `DeferredSemaphore`): at most
/// [`limit`](Self::limit) holders at a time.
///
/// ```
/// use twistor::defer::DeferredSemaphore;
///
/// let sem = DeferredSemaphore::new(2).unwrap();
/// let (a, b, c) = (sem.acquire(), sem.acquire(), sem.acquire());
/// assert!(a.called() && b.called() && !c.called());
/// assert_eq!(sem.tokens(), 0);
/// sem.release().unwrap(); // the token goes straight to `c`
/// assert!(c.called());
/// assert_eq!(sem.tokens(), 0);
/// ```
#[derive(Clone)]
pub struct DeferredSemaphore {
    inner: Pool<DeferredSemaphore>,
}

impl fmt::Debug for DeferredSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.borrow();
        f.debug_struct("DeferredSemaphore")
            .field("tokens", &s.tokens)
            .field("limit", &s.limit)
            .field("waiting", &s.waiting.len())
            .finish()
    }
}

impl DeferredSemaphore {
    /// A semaphore with `tokens` tokens, all free. Zero tokens is an error.
    ///
    /// ```
    /// use twistor::defer::{DeferredSemaphore, InvalidTokensError};
    /// assert_eq!(DeferredSemaphore::new(0).unwrap_err(), InvalidTokensError);
    /// assert_eq!(DeferredSemaphore::new(3).unwrap().limit(), 3);
    /// ```
    pub fn new(tokens: usize) -> Result<Self, InvalidTokensError> {
        if tokens == 0 {
            return Err(InvalidTokensError);
        }
        Ok(DeferredSemaphore {
            inner: new_pool(tokens),
        })
    }

    /// Tokens free now.
    pub fn tokens(&self) -> usize {
        self.inner.borrow().tokens
    }

    /// The number of tokens the semaphore was made with.
    pub fn limit(&self) -> usize {
        self.inner.borrow().limit
    }

    /// Asks for a token: the Deferred fires with (a handle on) this semaphore now if one is
    /// free, otherwise when it is this caller's turn. Cancelling it while it waits takes it out
    /// of the queue; it then fails with `CancelledError`.
    ///
    /// ```
    /// let sem = twistor::defer::DeferredSemaphore::new(1).unwrap();
    /// let held = sem.acquire();
    /// assert!(held.called());
    /// let waiting = sem.acquire();
    /// waiting.cancel();
    /// sem.release().unwrap();
    /// assert_eq!(sem.tokens(), 1);
    /// # let _ = twistor::testing::failure_result_of(&waiting);
    /// ```
    #[track_caller]
    pub fn acquire(&self) -> Deferred<DeferredSemaphore> {
        acquire_token(&self.inner, self.clone())
    }

    /// Gives a token back: the oldest waiter gets it now (its callbacks run in this call),
    /// otherwise it becomes free. Releasing when every token is free returns
    /// [`TooManyReleasesError`] and changes nothing.
    ///
    /// ```
    /// use twistor::defer::{DeferredSemaphore, TooManyReleasesError};
    /// let sem = DeferredSemaphore::new(1).unwrap();
    /// assert_eq!(sem.release(), Err(TooManyReleasesError));
    /// ```
    pub fn release(&self) -> Result<(), TooManyReleasesError> {
        if release_token(&self.inner, self.clone()) {
            Ok(())
        } else {
            Err(TooManyReleasesError)
        }
    }

    /// Acquires a token, calls `f` (as [`maybe_deferred`] does), and releases the token when
    /// `f`'s result arrives; the returned Deferred has `f`'s result.
    ///
    /// ```
    /// use twistor::{Deferred, defer::DeferredSemaphore};
    /// let sem = DeferredSemaphore::new(1).unwrap();
    /// let (work, fire_work) = Deferred::<()>::new();
    /// let first = sem.run(move || work);
    /// let second = sem.run(|| Deferred::succeed("second"));
    /// twistor::testing::assert_no_result(&second); // waits for a token
    /// fire_work.callback(()).unwrap();
    /// assert_eq!(twistor::testing::success_result_of(&second), "second");
    /// assert_eq!(sem.tokens(), 1);
    /// # drop(first);
    /// ```
    #[track_caller]
    pub fn run<R: IntoDeferred>(&self, f: impl FnOnce() -> R + 'static) -> Deferred<R::Output> {
        run_holding(self.acquire(), DeferredSemaphore::release, f)
    }
}

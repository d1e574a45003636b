//! [`DeferredQueue`]: a queue whose `get` returns a Deferred.
//!
//! # Invariants
//!
//! * **At most one side is non-empty.** Items wait in `pending` only while no getter waits, and
//!   getters wait only while no item is pending: `put` hands its item to the oldest waiting
//!   getter if there is one, `get` takes the oldest pending item if there is one.
//! * **FIFO on both sides.** Items come out in the order they were put; waiting getters are
//!   served in the order they called `get`.
//! * **A getter waits exactly while its Deferred has not fired.** Cancelling a waiting getter
//!   removes it (it fails with [`CancelledError`](super::CancelledError)), so the next `put`
//!   goes to the next getter.
//! * **Limits are checked synchronously**: a `put` beyond `size` pending items returns
//!   [`QueueOverflow`], a `get` beyond `backlog` waiting getters returns [`QueueUnderflow`];
//!   neither changes the queue.
//! * No `RefCell` borrow is held while a getter's callbacks run (inside `put`), so they may put
//!   and get again.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use super::errors::{QueueOverflow, QueueUnderflow};
use super::lock::{next_waiter, remove_waiter};
use crate::{Deferred, Resolver};

struct QueueState<T> {
    /// Getters waiting for an item, oldest first.
    waiting: VecDeque<Resolver<T>>,
    /// Items waiting for a getter, oldest first.
    pending: VecDeque<T>,
    /// The most items `pending` may hold (`None`: no limit).
    size: Option<usize>,
    /// The most getters `waiting` may hold (`None`: no limit).
    backlog: Option<usize>,
}

/// An event-driven queue (Twisted's `DeferredQueue`): [`get`](Self::get) returns a Deferred
/// that fires with the next item, now if one is pending.
///
/// A cheap `Clone` handle: clones share the queue, so a producer and a consumer can each hold
/// one. A waiting getter refers to the queue only weakly.
///
/// ```
/// use twistor::defer::DeferredQueue;
/// use twistor::testing::{assert_no_result, success_result_of};
///
/// let q = DeferredQueue::new();
/// let next = q.get().unwrap();
/// assert_no_result(&next);
/// q.put("hello").unwrap();
/// assert_eq!(success_result_of(&next), "hello");
///
/// q.put("buffered").unwrap();
/// assert_eq!(success_result_of(&q.get().unwrap()), "buffered");
/// ```
pub struct DeferredQueue<T> {
    inner: Rc<RefCell<QueueState<T>>>,
}

impl<T> Clone for DeferredQueue<T> {
    fn clone(&self) -> Self {
        DeferredQueue {
            inner: self.inner.clone(),
        }
    }
}

impl<T: 'static> Default for DeferredQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for DeferredQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.borrow();
        f.debug_struct("DeferredQueue")
            .field("pending", &s.pending.len())
            .field("waiting", &s.waiting.len())
            .field("size", &s.size)
            .field("backlog", &s.backlog)
            .finish()
    }
}

impl<T: 'static> DeferredQueue<T> {
    /// An empty queue with no limits.
    ///
    /// ```
    /// let q = twistor::defer::DeferredQueue::<u8>::new();
    /// assert_eq!((q.pending_len(), q.waiting_len()), (0, 0));
    /// ```
    pub fn new() -> Self {
        Self::with_limits(None, None)
    }

    /// An empty queue that holds at most `size` pending items and at most `backlog` waiting
    /// getters (`None`: no limit). `Some(0)` makes every `put` that finds no getter overflow,
    /// and every `get` that finds no item underflow.
    ///
    /// ```
    /// use twistor::defer::{DeferredQueue, QueueOverflow, QueueUnderflow};
    /// let q = DeferredQueue::with_limits(Some(0), Some(0));
    /// assert_eq!(q.put(1), Err(QueueOverflow));
    /// assert!(matches!(q.get(), Err(QueueUnderflow)));
    /// ```
    pub fn with_limits(size: Option<usize>, backlog: Option<usize>) -> Self {
        DeferredQueue {
            inner: Rc::new(RefCell::new(QueueState {
                waiting: VecDeque::new(),
                pending: VecDeque::new(),
                size,
                backlog,
            })),
        }
    }

    /// Adds an item: the oldest waiting getter gets it now (its callbacks run in this call);
    /// with no getter it is kept, unless `size` items are pending already, in which case the
    /// item is dropped and [`QueueOverflow`] returned.
    ///
    /// ```
    /// use twistor::defer::{DeferredQueue, QueueOverflow};
    /// let q = DeferredQueue::with_limits(Some(1), None);
    /// q.put('a').unwrap();
    /// assert_eq!(q.put('b'), Err(QueueOverflow));
    /// assert_eq!(q.pending_len(), 1);
    /// ```
    pub fn put(&self, item: T) -> Result<(), QueueOverflow> {
        let getter = {
            let mut s = self.inner.borrow_mut();
            match next_waiter(&mut s.waiting) {
                Some(g) => g,
                None => {
                    if s.size.is_some_and(|size| s.pending.len() >= size) {
                        return Err(QueueOverflow);
                    }
                    s.pending.push_back(item);
                    return Ok(());
                }
            }
        };
        let _ = getter.callback(item);
        Ok(())
    }

    /// Takes the next item: a fired Deferred if an item is pending, otherwise a Deferred that
    /// fires on a later `put`, unless `backlog` getters wait already ([`QueueUnderflow`]).
    /// Cancelling a waiting getter removes it from the queue.
    ///
    /// ```
    /// use twistor::defer::{CancelledError, DeferredQueue};
    /// let q = DeferredQueue::new();
    /// let cancelled = q.get().unwrap();
    /// let next = q.get().unwrap();
    /// cancelled.cancel();
    /// assert!(twistor::testing::failure_result_of(&cancelled).is::<CancelledError>());
    /// q.put(5).unwrap();
    /// assert_eq!(twistor::testing::success_result_of(&next), 5);
    /// ```
    #[track_caller]
    pub fn get(&self) -> Result<Deferred<T>, QueueUnderflow> {
        let mut s = self.inner.borrow_mut();
        if let Some(item) = s.pending.pop_front() {
            drop(s);
            return Ok(Deferred::succeed(item));
        }
        if s.backlog.is_some_and(|backlog| s.waiting.len() >= backlog) {
            return Err(QueueUnderflow);
        }
        let (d, r) = Deferred::with_canceller(remove_waiter(Rc::downgrade(&self.inner), |q| {
            &mut q.waiting
        }));
        s.waiting.push_back(r);
        Ok(d)
    }

    /// Items waiting for a getter.
    pub fn pending_len(&self) -> usize {
        self.inner.borrow().pending.len()
    }

    /// Getters waiting for an item.
    pub fn waiting_len(&self) -> usize {
        self.inner.borrow().waiting.len()
    }

    /// The most items the queue keeps pending (`None`: no limit).
    pub fn size(&self) -> Option<usize> {
        self.inner.borrow().size
    }

    /// The most getters that may wait (`None`: no limit).
    pub fn backlog(&self) -> Option<usize> {
        self.inner.borrow().backlog
    }
}

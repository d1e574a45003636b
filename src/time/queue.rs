//! The timer queue: a binary heap of delayed calls keyed by (deadline, sequence number).
//!
//! Shared by [`Clock`](crate::task::Clock) and the reactor. The owner supplies "now" (a
//! closure) and decides when to run what [`TimerQueue::pop_due`] hands back; the queue never
//! runs user code itself.
//!
//! # Invariants
//!
//! **Entries and calls.** A call ([`CallInner`], shared by every [`DelayedCall`] handle) is
//! scheduled once and gets a sequence number `seq` from a per-queue counter. The heap holds
//! [`Entry`]s `(key, seq, epoch, call)`; the heap's minimum is the smallest `(key, seq)`
//! (`f64::total_cmp`, NaN never enters: it is refused at the door). Exactly one entry per
//! *pending* call is **live**: the one whose `epoch` equals the call's current epoch. Every
//! other entry is **stale**.
//!
//! **Lazy cancellation.** `cancel` marks the call cancelled and takes its function out at once
//! (so what it captured is freed), but leaves its entry in the heap; the entry is now stale (its
//! call is not pending) and is thrown away when it reaches the top ([`Shared::settle`]).
//!
//! **Reset and delay.** A call carries two times: `time` (what the user asked for, what
//! `get_time` reports, when it fires) and `key` (the key of its live entry). While pending,
//! `key <= time` always holds:
//! * moving the call *later* (`time >= key`) only updates `time`: O(1), no heap work. When the
//!   live entry reaches the top with `time > key`, it is re-keyed in place to `time` and sifted
//!   down (Twisted's real reactor does the same). Protocol timeouts that are pushed back on every
//!   read therefore cost nothing per read.
//! * moving the call *sooner* than `key` bumps the call's epoch and pushes a new live entry with
//!   the new key; the old entry becomes stale.
//!
//! A reset keeps the call's `seq`, so among equal deadlines calls fire in the order they were
//! *first* scheduled, reset or not (Twisted's `Clock` keeps the list order of its calls too).
//!
//! **Stale counting and compaction.** `stale` counts the stale entries still in the heap: +1
//! when a pending call is cancelled, +1 when a sooner reset supersedes an entry, -1 when
//! [`Shared::settle`] discards one from the top. Entries removed by `pop_due` are live, so they
//! don't count. Whenever `stale` exceeds half the heap (checked after each cancel, each sooner
//! reset and each pop of a due call; settling keeps the ratio), the heap is compacted: stale
//! entries are dropped and the heap is rebuilt in O(n). So after every queue operation
//! `stale <= len / 2`, i.e. the heap holds at most twice the pending calls, whatever the
//! cancellation pattern; the rebuild costs amortised O(1) per cancel or reset.
//!
//! **Ordering.** `pop_due(now)` returns the live entry with the smallest `(time, seq)` if its
//! `time <= now`; because of the re-keying above, a settled top has `key == time`, so the heap
//! order is the firing order. `pop_due_before(now, limit)` further skips (and then puts back)
//! due entries with `seq >= limit`: the reactor passes the [`TimerQueue::next_seq`] it read at
//! the start of a pass, so calls scheduled during the pass wait for the next pass, while calls
//! that existed before (even if reset during the pass) still run.
//!
//! **No borrow across user code.** The heap lives in a `RefCell`; it is borrowed only inside
//! queue methods, which never call user code. The function is handed to the owner *after* the
//! borrow ends and after the call is marked called (so inside its own function a call is not
//! `active()` and `cancel()` gives `AlreadyCalled`). Dropping an entry inside a borrow (settling,
//! compaction) cannot run user `Drop` code: a stale entry's call is either cancelled or called
//! (its function already taken out) or pending with its live entry still holding a reference.
//! A cancelled function is dropped by `cancel` after every queue borrow is released.
//!
//! **Ownership.** Handles hold the queue weakly (for "now" and the stale count): a handle does
//! not keep the queue alive, and once the queue is gone `cancel`/`reset`/`delay` still update
//! the handle's state but nothing will ever run. The queue holds calls strongly until they fire
//! or are cancelled and compacted away; a function that captures a handle to its own clock
//! makes a reference cycle until it fires or is cancelled.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::binary_heap::{BinaryHeap, PeekMut};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::rc::{Rc, Weak};

use super::{DelayedCallError, clamp_delay};

/// Lifecycle of a call: `Pending` -> `Called` or `Pending` -> `Cancelled`, never back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Pending,
    Called,
    Cancelled,
}

/// One scheduled call, shared by all of its [`DelayedCall`] handles and its heap entries.
struct CallInner {
    /// Scheduling order: breaks ties between equal deadlines. Never changes, even on reset.
    seq: u64,
    /// The deadline: when the call fires and what `get_time` reports.
    time: Cell<f64>,
    /// Key of the live heap entry; `key <= time` while pending (later resets are lazy).
    key: Cell<f64>,
    /// Which entry is live: entries with another epoch are stale (superseded by a sooner reset).
    epoch: Cell<u32>,
    /// Pending, called or cancelled.
    state: Cell<State>,
    /// The function; taken out when the call is popped or cancelled.
    func: Cell<Option<Box<dyn FnOnce()>>>,
    /// The queue, for "now" on reset and for its counters; weak so handles don't keep it alive.
    queue: Weak<Shared>,
}

/// A heap entry. Ordered so that `BinaryHeap` (a max-heap) pops the smallest `(key, seq)`.
struct Entry {
    /// Deadline this entry was pushed with; may lag behind `call.time` after a later reset.
    key: f64,
    /// Copy of `call.seq`, so comparisons don't chase the pointer.
    seq: u64,
    /// Epoch of the call when the entry was pushed; live iff equal to the call's epoch.
    epoch: u32,
    /// The call itself.
    call: Rc<CallInner>,
}

impl Entry {
    /// Whether this is its call's live entry (the call is pending and not superseded).
    fn is_live(&self) -> bool {
        self.call.state.get() == State::Pending && self.call.epoch.get() == self.epoch
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: the earliest (key, seq) is the heap's maximum.
        other
            .key
            .total_cmp(&self.key)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// State shared between the [`TimerQueue`] and (weakly) its calls.
struct Shared {
    /// The owner's notion of the current time (virtual for `Clock`, monotonic for a reactor).
    now: Box<dyn Fn() -> f64>,
    /// Live and stale entries.
    heap: RefCell<BinaryHeap<Entry>>,
    /// Number of stale entries in `heap`.
    stale: Cell<usize>,
    /// Number of pending calls (= live entries).
    active: Cell<usize>,
    /// Sequence number the next scheduled call gets.
    next_seq: Cell<u64>,
}

impl Shared {
    /// Settles the heap's top: discards stale entries and re-keys a live entry whose call was
    /// moved later, until the top is live with `key == time`. Returns its `(time, seq)`.
    fn settle(&self, heap: &mut BinaryHeap<Entry>) -> Option<(f64, u64)> {
        loop {
            let mut top = heap.peek_mut()?;
            if !top.is_live() {
                // Dropping a stale entry runs no user code (see module docs).
                PeekMut::pop(top);
                self.stale.set(self.stale.get() - 1);
                continue;
            }
            let time = top.call.time.get();
            if time > top.key {
                // Lazily applied later reset: re-key in place; PeekMut sifts down on drop.
                top.call.key.set(time);
                top.key = time;
                continue;
            }
            return Some((top.key, top.seq));
        }
    }

    /// Compacts the heap if stale entries exceed half of it. Skipped (it is only an
    /// optimisation) if the heap happens to be borrowed.
    fn maybe_compact(&self) {
        if let Ok(mut heap) = self.heap.try_borrow_mut() {
            self.compact_if_stale(&mut heap);
        }
    }

    /// Drops every stale entry if they are more than half of the heap. Each compaction removes
    /// at least half the heap, every entry of which a cancel or reset made stale, so the cost
    /// is amortised O(1) per cancel/reset.
    fn compact_if_stale(&self, heap: &mut BinaryHeap<Entry>) {
        if self.stale.get() > heap.len() / 2 {
            // Dropping stale entries runs no user code (see module docs).
            heap.retain(Entry::is_live);
            self.stale.set(0);
        }
    }

    /// Removes the heap's top (which the caller has settled and found due) and marks it called.
    fn take_top(&self, heap: &mut BinaryHeap<Entry>) -> Entry {
        let entry = heap.pop().expect("settled heap has a top");
        entry.call.state.set(State::Called);
        self.active.set(self.active.get() - 1);
        // Popping a live entry shrinks the heap: keep `stale <= len / 2`.
        self.compact_if_stale(heap);
        entry
    }
}

/// Turns a popped entry into what `pop_due` returns.
fn into_due(entry: Entry) -> (DelayedCall, Box<dyn FnOnce()>) {
    let f = entry
        .call
        .func
        .take()
        .expect("a pending call still has its function");
    (DelayedCall { inner: entry.call }, f)
}

/// A priority queue of delayed calls, ordered by (deadline, scheduling order).
///
/// The storage behind [`Clock`](crate::task::Clock) and the reactor's timers: a binary heap
/// with lazy cancellation (cancelled and superseded entries are dropped when they reach the
/// top, or all at once when they exceed half the heap), O(1) later resets, and FIFO order among
/// equal deadlines. The queue never runs anything: its owner asks for due calls with
/// [`pop_due`](TimerQueue::pop_due) and runs the functions it gets back, with no borrow held,
/// so a function may schedule, cancel or reset any call, including on this queue.
///
/// "Now" comes from the closure given to [`new`](TimerQueue::new); it is used by
/// [`DelayedCall::reset`] and [`schedule_after`](TimerQueue::schedule_after).
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use twistor::time::TimerQueue;
///
/// let now = Rc::new(Cell::new(0.0));
/// let n = now.clone();
/// let queue = TimerQueue::new(move || n.get());
///
/// let log = Rc::new(std::cell::RefCell::new(Vec::new()));
/// for (name, at) in [("b", 2.0), ("a", 1.0), ("c", 2.0)] {
///     let log = log.clone();
///     queue.schedule(at, Box::new(move || log.borrow_mut().push(name)));
/// }
/// assert_eq!(queue.next_deadline(), Some(1.0));
///
/// now.set(2.0);
/// while let Some((_call, f)) = queue.pop_due(now.get()) {
///     f();
/// }
/// assert_eq!(*log.borrow(), ["a", "b", "c"]);
/// assert_eq!(queue.len_active(), 0);
/// ```
pub struct TimerQueue {
    shared: Rc<Shared>,
}

impl TimerQueue {
    /// Creates an empty queue whose notion of the current time is `now`.
    ///
    /// ```
    /// use twistor::time::TimerQueue;
    ///
    /// let queue = TimerQueue::new(|| 10.0);
    /// assert_eq!(queue.now(), 10.0);
    /// assert_eq!(queue.next_deadline(), None);
    /// ```
    pub fn new(now: impl Fn() -> f64 + 'static) -> TimerQueue {
        TimerQueue {
            shared: Rc::new(Shared {
                now: Box::new(now),
                heap: RefCell::new(BinaryHeap::new()),
                stale: Cell::new(0),
                active: Cell::new(0),
                next_seq: Cell::new(0),
            }),
        }
    }

    /// The current time, from the closure given to [`new`](TimerQueue::new).
    pub fn now(&self) -> f64 {
        (self.shared.now)()
    }

    /// Schedules `f` at absolute time `time`. A NaN `time` is replaced by now, with a warning.
    ///
    /// ```
    /// use twistor::time::TimerQueue;
    ///
    /// let queue = TimerQueue::new(|| 0.0);
    /// let call = queue.schedule(5.0, Box::new(|| ()));
    /// assert_eq!(call.get_time(), 5.0);
    /// assert!(call.active());
    /// ```
    pub fn schedule(&self, time: f64, f: Box<dyn FnOnce()>) -> DelayedCall {
        let time = if time.is_nan() {
            log::warn!("TimerQueue::schedule: time is NaN, using now");
            self.now()
        } else {
            time
        };
        let shared = &self.shared;
        let seq = shared.next_seq.get();
        shared.next_seq.set(seq + 1);
        let call = Rc::new(CallInner {
            seq,
            time: Cell::new(time),
            key: Cell::new(time),
            epoch: Cell::new(0),
            state: Cell::new(State::Pending),
            func: Cell::new(Some(f)),
            queue: Rc::downgrade(shared),
        });
        shared.heap.borrow_mut().push(Entry {
            key: time,
            seq,
            epoch: 0,
            call: call.clone(),
        });
        shared.active.set(shared.active.get() + 1);
        DelayedCall { inner: call }
    }

    /// Schedules `f` at `now() + delay`; a negative or NaN `delay` is clamped to 0 with a
    /// warning. This is `call_later` for owners of a queue.
    ///
    /// ```
    /// use twistor::time::TimerQueue;
    ///
    /// let queue = TimerQueue::new(|| 100.0);
    /// assert_eq!(queue.schedule_after(2.5, Box::new(|| ())).get_time(), 102.5);
    /// assert_eq!(queue.schedule_after(-1.0, Box::new(|| ())).get_time(), 100.0);
    /// ```
    pub fn schedule_after(&self, delay: f64, f: Box<dyn FnOnce()>) -> DelayedCall {
        self.schedule(self.now() + clamp_delay(delay), f)
    }

    /// The deadline of the earliest pending call, or `None` if there is none. Cancelled and
    /// superseded entries are skipped (and discarded on the way).
    ///
    /// ```
    /// use twistor::time::TimerQueue;
    ///
    /// let queue = TimerQueue::new(|| 0.0);
    /// let first = queue.schedule(1.0, Box::new(|| ()));
    /// queue.schedule(2.0, Box::new(|| ()));
    /// first.cancel().unwrap();
    /// assert_eq!(queue.next_deadline(), Some(2.0));
    /// ```
    pub fn next_deadline(&self) -> Option<f64> {
        let mut heap = self.shared.heap.borrow_mut();
        self.shared.settle(&mut heap).map(|(time, _)| time)
    }

    /// Removes the earliest pending call if its deadline is `<= now`, marks it called, and
    /// returns it with its function, which the caller should run. Equal deadlines come out in
    /// scheduling order.
    ///
    /// ```
    /// use twistor::time::TimerQueue;
    ///
    /// let queue = TimerQueue::new(|| 0.0);
    /// queue.schedule(1.0, Box::new(|| ()));
    /// assert!(queue.pop_due(0.5).is_none());
    /// let (call, f) = queue.pop_due(1.0).unwrap();
    /// assert!(call.called() && !call.active());
    /// f();
    /// ```
    pub fn pop_due(&self, now: f64) -> Option<(DelayedCall, Box<dyn FnOnce()>)> {
        let entry = {
            let mut heap = self.shared.heap.borrow_mut();
            let (time, _) = self.shared.settle(&mut heap)?;
            if time > now {
                return None;
            }
            self.shared.take_top(&mut heap)
        };
        Some(into_due(entry))
    }

    /// Like [`pop_due`](TimerQueue::pop_due), but only considers calls whose sequence number
    /// is below `seq_limit`, so a pass that starts with `let limit = queue.next_seq()` runs only
    /// the calls that existed when it started (calls reset during the pass keep their number
    /// and still qualify). Due calls at or above the limit stay queued.
    ///
    /// ```
    /// use twistor::time::TimerQueue;
    ///
    /// let queue = TimerQueue::new(|| 0.0);
    /// queue.schedule(0.0, Box::new(|| ()));
    /// let limit = queue.next_seq();
    /// queue.schedule(0.0, Box::new(|| ())); // "scheduled during the pass"
    /// assert!(queue.pop_due_before(0.0, limit).is_some());
    /// assert!(queue.pop_due_before(0.0, limit).is_none());
    /// assert_eq!(queue.len_active(), 1);
    /// ```
    pub fn pop_due_before(
        &self,
        now: f64,
        seq_limit: u64,
    ) -> Option<(DelayedCall, Box<dyn FnOnce()>)> {
        let entry = {
            let mut heap = self.shared.heap.borrow_mut();
            // Due entries that are too new: set aside, then put back. Normally empty (a call
            // scheduled during a pass is rarely due before an older due call).
            let mut held = Vec::new();
            let found = loop {
                match self.shared.settle(&mut heap) {
                    Some((time, seq)) if time <= now => {
                        if seq < seq_limit {
                            break Some(self.shared.take_top(&mut heap));
                        }
                        held.push(heap.pop().expect("settled heap has a top"));
                    }
                    _ => break None,
                }
            };
            heap.extend(held);
            found
        };
        entry.map(into_due)
    }

    /// The sequence number the next scheduled call will get (numbers start at 0 and increase
    /// by one per [`schedule`](TimerQueue::schedule)).
    ///
    /// ```
    /// use twistor::time::TimerQueue;
    ///
    /// let queue = TimerQueue::new(|| 0.0);
    /// assert_eq!(queue.next_seq(), 0);
    /// queue.schedule(1.0, Box::new(|| ()));
    /// assert_eq!(queue.next_seq(), 1);
    /// ```
    pub fn next_seq(&self) -> u64 {
        self.shared.next_seq.get()
    }

    /// The number of pending calls (scheduled, neither called nor cancelled).
    ///
    /// ```
    /// use twistor::time::TimerQueue;
    ///
    /// let queue = TimerQueue::new(|| 0.0);
    /// let call = queue.schedule(1.0, Box::new(|| ()));
    /// assert_eq!(queue.len_active(), 1);
    /// call.cancel().unwrap();
    /// assert_eq!(queue.len_active(), 0);
    /// ```
    pub fn len_active(&self) -> usize {
        self.shared.active.get()
    }

    /// The number of heap entries, stale ones included; for diagnostics and tests. Never more
    /// than twice [`len_active`](TimerQueue::len_active).
    ///
    /// ```
    /// use twistor::time::TimerQueue;
    ///
    /// let queue = TimerQueue::new(|| 0.0);
    /// let calls: Vec<_> = (0..10).map(|i| queue.schedule(i as f64, Box::new(|| ()))).collect();
    /// for call in &calls[..4] {
    ///     call.cancel().unwrap(); // lazily: entries stay until the top or compaction
    /// }
    /// assert_eq!(queue.heap_len(), 10);
    /// calls[4].cancel().unwrap(); // 5 stale of 10 is not more than half
    /// calls[5].cancel().unwrap(); // 6 of 10 is: compacted
    /// assert_eq!(queue.heap_len(), 4);
    /// ```
    pub fn heap_len(&self) -> usize {
        self.shared.heap.borrow().len()
    }

    /// The pending calls, sorted by (deadline, scheduling order).
    ///
    /// ```
    /// use twistor::time::TimerQueue;
    ///
    /// let queue = TimerQueue::new(|| 0.0);
    /// let b = queue.schedule(2.0, Box::new(|| ()));
    /// let a = queue.schedule(1.0, Box::new(|| ()));
    /// let c = queue.schedule(2.0, Box::new(|| ()));
    /// assert_eq!(queue.active_calls(), vec![a, b, c]);
    /// ```
    pub fn active_calls(&self) -> Vec<DelayedCall> {
        let mut calls: Vec<DelayedCall> = self
            .shared
            .heap
            .borrow()
            .iter()
            .filter(|e| e.is_live())
            .map(|e| DelayedCall {
                inner: e.call.clone(),
            })
            .collect();
        calls.sort_by(|a, b| {
            a.inner
                .time
                .get()
                .total_cmp(&b.inner.time.get())
                .then(a.inner.seq.cmp(&b.inner.seq))
        });
        calls
    }
}

impl fmt::Debug for TimerQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerQueue")
            .field("active", &self.shared.active.get())
            .field("stale", &self.shared.stale.get())
            .field("next_seq", &self.shared.next_seq.get())
            .finish()
    }
}

/// A handle to a scheduled call: Twisted's `IDelayedCall`.
///
/// Returned by `call_later` (and [`TimerQueue::schedule`]). Cloning is cheap and every clone
/// refers to the same call; two handles are `==` when they refer to the same call. Dropping a
/// handle does **not** cancel the call.
///
/// A call is *active* until it is called or cancelled. It is marked called just before its
/// function runs, so inside its own function it is no longer active and `cancel`, `reset` and
/// `delay` give [`DelayedCallError::AlreadyCalled`].
///
/// ```
/// use twistor::task::Clock;
/// use twistor::time::DelayedCallError;
///
/// let clock = Clock::new();
/// let call = clock.call_later(10.0, || println!("timeout"));
/// call.delay(5.0).unwrap();
/// assert_eq!(call.get_time(), 15.0);
/// call.cancel().unwrap();
/// assert!(call.cancelled() && !call.active());
/// assert_eq!(call.reset(1.0), Err(DelayedCallError::AlreadyCancelled));
/// ```
#[derive(Clone)]
pub struct DelayedCall {
    inner: Rc<CallInner>,
}

impl DelayedCall {
    /// Whether the call is still pending: neither called nor cancelled.
    ///
    /// ```
    /// use twistor::task::Clock;
    ///
    /// let clock = Clock::new();
    /// let call = clock.call_later(1.0, || ());
    /// assert!(call.active());
    /// clock.advance(1.0);
    /// assert!(!call.active());
    /// ```
    pub fn active(&self) -> bool {
        self.inner.state.get() == State::Pending
    }

    /// Whether the call has been called (true from just before its function starts).
    ///
    /// ```
    /// use twistor::task::Clock;
    ///
    /// let clock = Clock::new();
    /// let call = clock.call_later(1.0, || ());
    /// assert!(!call.called());
    /// clock.advance(1.0);
    /// assert!(call.called());
    /// ```
    pub fn called(&self) -> bool {
        self.inner.state.get() == State::Called
    }

    /// Whether the call has been cancelled.
    ///
    /// ```
    /// use twistor::task::Clock;
    ///
    /// let clock = Clock::new();
    /// let call = clock.call_later(1.0, || ());
    /// call.cancel().unwrap();
    /// assert!(call.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.inner.state.get() == State::Cancelled
    }

    /// The absolute time the call is (or was) scheduled for; Twisted's `getTime`.
    ///
    /// ```
    /// use twistor::task::Clock;
    ///
    /// let clock = Clock::new();
    /// clock.advance(3.0);
    /// assert_eq!(clock.call_later(1.0, || ()).get_time(), 4.0);
    /// ```
    #[doc(alias = "getTime")]
    pub fn get_time(&self) -> f64 {
        self.inner.time.get()
    }

    /// The current time of the clock the call was scheduled on (Twisted's
    /// `DelayedCall.seconds()`), or `None` once that clock is gone.
    ///
    /// ```
    /// use twistor::task::Clock;
    ///
    /// let clock = Clock::new();
    /// let call = clock.call_later(5.0, || ());
    /// clock.advance(2.0);
    /// assert_eq!(call.seconds(), Some(2.0));
    /// assert_eq!(call.time_left(), Some(3.0));
    /// ```
    pub fn seconds(&self) -> Option<f64> {
        self.inner.queue.upgrade().map(|q| (q.now)())
    }

    /// Seconds until the call is due (negative if overdue), or `None` once its clock is gone.
    pub fn time_left(&self) -> Option<f64> {
        self.seconds().map(|now| self.get_time() - now)
    }

    /// The call's place among calls with the same deadline: calls of one clock scheduled
    /// earlier have smaller numbers (kept on `reset`).
    pub fn sequence(&self) -> u64 {
        self.inner.seq
    }

    /// Unschedules the call and drops its function (and what it captured) at once.
    ///
    /// Errors: [`AlreadyCancelled`](DelayedCallError::AlreadyCancelled) if it was cancelled,
    /// [`AlreadyCalled`](DelayedCallError::AlreadyCalled) if it has run or is running.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::task::Clock;
    ///
    /// let clock = Clock::new();
    /// let big = Rc::new(vec![0u8; 1024]);
    /// let held = big.clone();
    /// let call = clock.call_later(1.0, move || drop(held));
    /// assert_eq!(Rc::strong_count(&big), 2);
    /// call.cancel().unwrap();
    /// assert_eq!(Rc::strong_count(&big), 1); // freed at cancel time
    /// assert!(clock.get_delayed_calls().is_empty());
    /// ```
    pub fn cancel(&self) -> Result<(), DelayedCallError> {
        self.check_pending()?;
        let inner = &self.inner;
        inner.state.set(State::Cancelled);
        let f = inner.func.take();
        if let Some(queue) = inner.queue.upgrade() {
            queue.active.set(queue.active.get() - 1);
            queue.stale.set(queue.stale.get() + 1);
            queue.maybe_compact();
        }
        // Dropping the function may run user Drop code: only now that no borrow is held.
        drop(f);
        Ok(())
    }

    /// Reschedules the call to `secs` seconds from now (not from its previous time); Twisted's
    /// `reset`. A negative or NaN `secs` is clamped to 0 with a warning.
    ///
    /// Errors: as for [`cancel`](DelayedCall::cancel).
    ///
    /// ```
    /// use twistor::task::Clock;
    ///
    /// let clock = Clock::new();
    /// let call = clock.call_later(2.0, || ());
    /// clock.advance(1.0);
    /// call.reset(3.0).unwrap();
    /// assert_eq!(call.get_time(), 4.0);
    /// ```
    pub fn reset(&self, secs: f64) -> Result<(), DelayedCallError> {
        self.check_pending()?;
        let now = match self.inner.queue.upgrade() {
            Some(queue) => (queue.now)(),
            // The queue is gone, so the call can never run; keep the old time as "now".
            None => self.inner.time.get(),
        };
        self.move_to(now + clamp_delay(secs));
        Ok(())
    }

    /// Moves the call `secs` seconds later (sooner if negative); Twisted's `delay`. A NaN
    /// `secs` is treated as 0 with a warning.
    ///
    /// Errors: as for [`cancel`](DelayedCall::cancel).
    ///
    /// ```
    /// use twistor::task::Clock;
    ///
    /// let clock = Clock::new();
    /// let call = clock.call_later(1.0, || ());
    /// call.delay(1.0).unwrap();
    /// assert_eq!(call.get_time(), 2.0);
    /// call.delay(-0.5).unwrap();
    /// assert_eq!(call.get_time(), 1.5);
    /// ```
    pub fn delay(&self, secs: f64) -> Result<(), DelayedCallError> {
        self.check_pending()?;
        let secs = if secs.is_nan() {
            log::warn!("DelayedCall::delay: NaN, using 0");
            0.0
        } else {
            secs
        };
        self.move_to(self.inner.time.get() + secs);
        Ok(())
    }

    /// `Ok` if pending, else the error Twisted raises (cancelled is checked first).
    fn check_pending(&self) -> Result<(), DelayedCallError> {
        match self.inner.state.get() {
            State::Pending => Ok(()),
            State::Cancelled => Err(DelayedCallError::AlreadyCancelled),
            State::Called => Err(DelayedCallError::AlreadyCalled),
        }
    }

    /// Moves a pending call to `time` (see "Reset and delay" in the module docs).
    fn move_to(&self, time: f64) {
        let inner = &self.inner;
        inner.time.set(time);
        if time >= inner.key.get() {
            return; // later: applied lazily when the live entry reaches the top
        }
        inner.key.set(time);
        let Some(queue) = inner.queue.upgrade() else {
            return;
        };
        let epoch = inner.epoch.get().wrapping_add(1);
        inner.epoch.set(epoch);
        queue.heap.borrow_mut().push(Entry {
            key: time,
            seq: inner.seq,
            epoch,
            call: inner.clone(),
        });
        queue.stale.set(queue.stale.get() + 1);
        queue.maybe_compact();
    }
}

impl PartialEq for DelayedCall {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for DelayedCall {}

/// Calls order by deadline, then by scheduling order (Twisted's `DelayedCall.__lt__`
/// compares times; twistor adds the sequence number so the order is the firing order).
/// Calls of different clocks with equal time and sequence number are ordered by address, so
/// that `Equal` means "the same call", as `==` does.
///
/// ```
/// use twistor::task::Clock;
///
/// let clock = Clock::new();
/// let late = clock.call_later(2.0, || ());
/// let first = clock.call_later(1.0, || ());
/// let second = clock.call_later(1.0, || ());
/// let mut calls = vec![late.clone(), second.clone(), first.clone()];
/// calls.sort();
/// assert_eq!(calls, [first, second, late]);
/// ```
impl Ord for DelayedCall {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.inner
            .time
            .get()
            .total_cmp(&other.inner.time.get())
            .then(self.inner.seq.cmp(&other.inner.seq))
            .then_with(|| Rc::as_ptr(&self.inner).cmp(&Rc::as_ptr(&other.inner)))
    }
}

impl PartialOrd for DelayedCall {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for DelayedCall {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Rc::as_ptr(&self.inner).hash(state);
    }
}

impl fmt::Debug for DelayedCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.inner.state.get() {
            State::Pending => "pending",
            State::Called => "called",
            State::Cancelled => "cancelled",
        };
        f.debug_struct("DelayedCall")
            .field("time", &self.inner.time.get())
            .field("seq", &self.inner.seq)
            .field("state", &state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn queue_at(now: &Rc<Cell<f64>>) -> TimerQueue {
        let n = now.clone();
        TimerQueue::new(move || n.get())
    }

    fn noop() -> Box<dyn FnOnce()> {
        Box::new(|| ())
    }

    #[test]
    fn delayed_calls_order_by_time_then_sequence() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let a = q.schedule(5.0, noop());
        let b = q.schedule(1.0, noop());
        let c = q.schedule(1.0, noop());
        assert!(b < c && c < a && b < a);
        // A reset keeps the sequence number: `c` moved to 1.0 later stays after `b`.
        c.reset(10.0).unwrap();
        assert!(a < c);
        c.reset(1.0).unwrap();
        assert!(b < c);
        assert_eq!(b.cmp(&b.clone()), std::cmp::Ordering::Equal);
        // Same time and sequence number on another queue: ordered, but not equal.
        let other = queue_at(&now);
        let a2 = other.schedule(5.0, noop());
        assert_eq!(a.sequence(), a2.sequence());
        assert_ne!(a.cmp(&a2), std::cmp::Ordering::Equal);
        assert_ne!(a, a2);
    }

    #[test]
    fn seconds_follows_the_clock_and_ends_with_it() {
        let now = Rc::new(Cell::new(3.0));
        let q = queue_at(&now);
        let call = q.schedule(5.0, noop());
        assert_eq!(call.seconds(), Some(3.0));
        assert_eq!(call.time_left(), Some(2.0));
        now.set(6.0);
        assert_eq!(call.time_left(), Some(-1.0));
        drop(q);
        assert_eq!(call.seconds(), None);
    }

    /// Pops every call due at `now` and returns their sequence numbers, running each function.
    fn drain(queue: &TimerQueue, now: f64) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some((call, f)) = queue.pop_due(now) {
            out.push(call.inner.seq);
            f();
        }
        out
    }

    #[test]
    fn orders_by_time_then_seq() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        for t in [3.0, 1.0, 2.0, 1.0, 3.0, 0.5] {
            q.schedule(t, noop());
        }
        assert_eq!(drain(&q, 10.0), vec![5, 1, 3, 2, 0, 4]);
        assert_eq!(q.len_active(), 0);
        assert_eq!(q.heap_len(), 0);
    }

    #[test]
    fn pop_due_respects_now() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        q.schedule(1.0, noop());
        q.schedule(2.0, noop());
        assert!(q.pop_due(0.999).is_none());
        assert_eq!(drain(&q, 1.0), vec![0]);
        assert_eq!(q.next_deadline(), Some(2.0));
    }

    #[test]
    fn pop_due_marks_called_before_returning() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let call = q.schedule(0.0, noop());
        let (popped, _f) = q.pop_due(0.0).unwrap();
        assert_eq!(popped, call);
        assert!(call.called());
        assert_eq!(call.cancel(), Err(DelayedCallError::AlreadyCalled));
        assert_eq!(q.len_active(), 0);
    }

    #[test]
    fn next_deadline_skips_cancelled() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let a = q.schedule(1.0, noop());
        let b = q.schedule(2.0, noop());
        q.schedule(3.0, noop());
        a.cancel().unwrap();
        b.cancel().unwrap();
        assert_eq!(q.next_deadline(), Some(3.0));
        // The stale entries were discarded while settling.
        assert_eq!(q.heap_len(), 1);
        assert_eq!(q.shared.stale.get(), 0);
    }

    #[test]
    fn later_reset_is_lazy_and_rekeyed_at_top() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let a = q.schedule(1.0, noop());
        q.schedule(2.0, noop());
        a.reset(5.0).unwrap();
        assert_eq!(q.heap_len(), 2, "a later reset pushes nothing");
        assert_eq!(a.get_time(), 5.0);
        assert_eq!(q.next_deadline(), Some(2.0));
        assert_eq!(drain(&q, 4.9), vec![1]);
        assert_eq!(drain(&q, 5.0), vec![0]);
    }

    #[test]
    fn sooner_reset_supersedes_entry() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        q.schedule(1.0, noop());
        q.schedule(2.0, noop());
        let c = q.schedule(3.0, noop());
        c.reset(0.5).unwrap();
        assert_eq!(q.heap_len(), 4);
        assert_eq!(q.shared.stale.get(), 1);
        assert_eq!(q.next_deadline(), Some(0.5));
        assert_eq!(drain(&q, 10.0), vec![2, 0, 1]);
        // The superseded entry was discarded, not run twice.
        assert_eq!(q.heap_len(), 0);
        assert_eq!(q.shared.stale.get(), 0);
    }

    #[test]
    fn reset_keeps_sequence_number() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let a = q.schedule(1.0, noop());
        q.schedule(2.0, noop());
        a.reset(2.0).unwrap(); // now equal to the second: first scheduled goes first
        assert_eq!(drain(&q, 2.0), vec![0, 1]);

        let c = q.schedule(3.0, noop()); // seq 2
        q.schedule(1.0, noop()); // seq 3
        c.delay(-2.0).unwrap(); // sooner, to 1.0: seq 2 still before seq 3
        assert_eq!(drain(&q, 1.0), vec![2, 3]);
    }

    #[test]
    fn later_then_sooner_then_rekey_does_not_duplicate() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let a = q.schedule(5.0, noop()); // entry key 5
        a.reset(3.0).unwrap(); // sooner: entry key 3, old key-5 entry stale
        a.reset(5.0).unwrap(); // later: lazy
        // Settling re-keys the live entry to 5; the stale key-5 entry must not also count.
        assert_eq!(q.next_deadline(), Some(5.0));
        assert_eq!(drain(&q, 5.0), vec![0]);
        assert_eq!(q.heap_len(), 0);
    }

    #[test]
    fn compaction_when_stale_exceeds_half() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let calls: Vec<_> = (0..100).map(|i| q.schedule(i as f64, noop())).collect();
        for c in &calls[..50] {
            c.cancel().unwrap();
        }
        assert_eq!(q.heap_len(), 100, "50 of 100 is not more than half");
        calls[50].cancel().unwrap();
        assert_eq!(q.heap_len(), 49);
        assert_eq!(q.shared.stale.get(), 0);
        assert_eq!(q.len_active(), 49);
        assert_eq!(drain(&q, 1e9), (51..100).collect::<Vec<u64>>());
    }

    #[test]
    fn compaction_after_pops() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let calls: Vec<_> = (0..10).map(|i| q.schedule(i as f64, noop())).collect();
        for c in &calls[5..] {
            c.cancel().unwrap();
        }
        assert_eq!(q.heap_len(), 10);
        assert_eq!(drain(&q, 0.0), vec![0]); // 5 stale of 9 entries: compacted
        assert_eq!(q.heap_len(), 4);
        assert_eq!(drain(&q, 1e9), vec![1, 2, 3, 4]);
    }

    #[test]
    fn heap_stays_bounded_under_repeated_sooner_resets() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let a = q.schedule(1e6, noop());
        for i in 0..10_000 {
            a.reset(1e6 - i as f64).unwrap();
            assert!(q.heap_len() <= 2 * q.len_active());
        }
        assert_eq!(drain(&q, 1e9), vec![0]);
    }

    #[test]
    fn pop_due_before_limits_to_existing_calls() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let old = q.schedule(1.0, noop()); // seq 0
        q.schedule(0.5, noop()); // seq 1
        let limit = q.next_seq();
        q.schedule(0.0, noop()); // seq 2: new and earliest
        q.schedule(1.0, noop()); // seq 3
        old.reset(0.2).unwrap(); // reset during the pass: keeps seq 0, still eligible
        let mut seen = Vec::new();
        while let Some((call, f)) = q.pop_due_before(1.0, limit) {
            seen.push(call.inner.seq);
            f();
        }
        assert_eq!(seen, vec![0, 1]);
        assert_eq!(q.len_active(), 2);
        assert_eq!(drain(&q, 1.0), vec![2, 3]);
    }

    #[test]
    fn cancel_drops_function_immediately() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let token = Rc::new(());
        let t = token.clone();
        let call = q.schedule(1.0, Box::new(move || drop(t)));
        assert_eq!(Rc::strong_count(&token), 2);
        call.cancel().unwrap();
        assert_eq!(Rc::strong_count(&token), 1);
    }

    #[test]
    fn cancel_from_drop_of_cancelled_function() {
        // Dropping a cancelled function may cancel another call: no borrow is held.
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let other = q.schedule(2.0, noop());
        struct CancelOnDrop(DelayedCall);
        impl Drop for CancelOnDrop {
            fn drop(&mut self) {
                self.0.cancel().unwrap();
            }
        }
        let guard = CancelOnDrop(other.clone());
        let call = q.schedule(1.0, Box::new(move || drop(guard)));
        call.cancel().unwrap();
        assert!(other.cancelled());
        assert_eq!(q.len_active(), 0);
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn functions_may_use_the_queue() {
        let now = Rc::new(Cell::new(0.0));
        let q = Rc::new(queue_at(&now));
        let log = Rc::new(RefCell::new(Vec::new()));
        let (q2, log2) = (q.clone(), log.clone());
        let victim = q.schedule(1.0, noop());
        q.schedule(
            0.5,
            Box::new(move || {
                log2.borrow_mut().push("first");
                victim.cancel().unwrap();
                let log3 = log2.clone();
                q2.schedule(0.5, Box::new(move || log3.borrow_mut().push("second")));
            }),
        );
        while let Some((_, f)) = q.pop_due(1.0) {
            f();
        }
        assert_eq!(*log.borrow(), ["first", "second"]);
    }

    #[test]
    fn handles_outlive_queue() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let call = q.schedule(1.0, noop());
        drop(q);
        assert!(call.active());
        call.reset(5.0).unwrap(); // no "now" any more: relative to its own time
        assert_eq!(call.get_time(), 6.0);
        call.delay(-10.0).unwrap();
        assert_eq!(call.get_time(), -4.0);
        call.cancel().unwrap();
        assert!(call.cancelled());
    }

    #[test]
    fn nan_is_refused() {
        let now = Rc::new(Cell::new(7.0));
        let q = queue_at(&now);
        let a = q.schedule(f64::NAN, noop());
        assert_eq!(a.get_time(), 7.0);
        a.reset(f64::NAN).unwrap();
        assert_eq!(a.get_time(), 7.0);
        a.delay(f64::NAN).unwrap();
        assert_eq!(a.get_time(), 7.0);
        assert_eq!(q.schedule_after(f64::NAN, noop()).get_time(), 7.0);
    }

    #[test]
    fn active_calls_sorted_and_live_only() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let a = q.schedule(3.0, noop());
        let b = q.schedule(1.0, noop());
        let c = q.schedule(2.0, noop());
        let d = q.schedule(2.0, noop());
        c.cancel().unwrap();
        a.reset(0.5).unwrap(); // sooner: stale entry must not show up
        b.reset(2.0).unwrap(); // later (lazy): listed at its new time, before d (seq)
        assert_eq!(q.active_calls(), vec![a, b, d]);
    }

    #[test]
    fn debug_shows_time_and_state() {
        let now = Rc::new(Cell::new(0.0));
        let q = queue_at(&now);
        let a = q.schedule(1.5, noop());
        assert_eq!(
            format!("{a:?}"),
            r#"DelayedCall { time: 1.5, seq: 0, state: "pending" }"#
        );
        a.cancel().unwrap();
        assert!(format!("{a:?}").contains("cancelled"));
    }
}

//! The Deferred: a result you don't have yet, with a chain of callbacks and errbacks.
//!
//! # How the chain runs
//!
//! A Deferred's shared state (`Inner`) holds the current result and a FIFO of entries. Each
//! entry is one boxed closure that receives the current outcome (`Ok(value)` or
//! `Err(failure)`) and picks the callback or the errback of its pair itself, so "exactly one of
//! a pair runs" is decided where the pair was made. Values are type-erased (`Value`): a chain
//! changes type as it goes.
//!
//! # Handles and types
//!
//! The types stay right because of who may do what: there is exactly one chain handle
//! (`Deferred<T>`, not `Clone`), typed by the chain's current last type, and adding an entry
//! consumes it and returns the next one; a `Resolver<T>` is typed by the chain's *first*
//! type, which entries never change, so firing puts a value of the type the first entry
//! expects; a `CancelHandle` is untyped and can only cancel, pause and observe. The testing
//! helpers and `peek` read the current result through the chain handle, so they read the type
//! the last entry produced. A stolen inner Deferred is left holding `()`, but its chain handle
//! was consumed by the callback that returned it, so nothing reads that `()` as another type.
//!
//! `run_callbacks` is Twisted's `_runCallbacks`, iterative:
//!
//! * it pops entries from the front of the current Deferred's list while the Deferred is not
//!   paused and not waiting; entries added while it runs (re-entrancy) land at the back and are
//!   picked up by the same loop;
//! * a callback that returns a Deferred which already has a result (and is not paused) has that
//!   result *stolen* (the inner is left holding `()`); otherwise the outer Deferred becomes
//!   *waiting*, and a `Continue(outer)` entry is appended to the inner's list;
//! * when a `Continue(outer)` entry is reached, the inner's result moves to `outer`, and the
//!   loop switches to `outer`, pushing the inner on an explicit stack to be resumed after. This
//!   is what keeps a chain of a million nested Deferreds from growing the call stack.
//!
//! # Re-entrancy
//!
//! No `RefCell` borrow is held while user code runs (callbacks, errbacks, cancellers): a
//! callback may add callbacks to, fire, pause or cancel any Deferred, including its own. A
//! nested `run_callbacks` on a Deferred whose batch is in flight (`Res::InFlight`: one of its
//! callbacks is on the stack) does nothing; that batch picks up the new entries.
//!
//! # Ownership
//!
//! `Inner::handles` counts live handles (the chain handle, resolvers, cancel handles), apart
//! from the chain's own references. While a waiting inner Deferred has handles,
//! it holds its outer strongly (the `Continue` entry: firing the inner must run the outer's
//! callbacks even if nobody else holds the outer) and the outer holds it weakly. When its last
//! handle goes, nothing but the outer's `cancel` can fire it any more, so the links flip: the
//! outer holds the inner strongly (Twisted's outer holds its inner, so `cancel` reaches it)
//! and the inner holds the outer weakly. Either way there is no reference cycle: a chain that
//! nobody can fire or cancel is freed, not leaked, and dropping a million of them is
//! iterative (`Inner::drop` works through a list instead of recursing).
//!
//! # Unhandled failures
//!
//! When the last handle to a Deferred goes away while its result is a `Failure`, the failure is
//! reported once through `crate::report::error` (the `log` logger if one is installed, else
//! stderr), target `twistor::defer`. A failure that an errback handled,
//! or that chaining moved to another Deferred, is not there any more, so it is not logged.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::rc::{Rc, Weak};

use smallvec::SmallVec;

use super::errors::{AlreadyCalledError, CancelledError, ChainTypeError, CircularChainError};
use super::value::Value;
use crate::Failure;

pub(crate) type Outcome = Result<Value, Failure>;

/// What one entry of the chain produced.
pub(crate) enum Step {
    /// A result now.
    Done(Outcome),
    /// A Deferred whose result is the next result (implicit chaining).
    Chain(Rc<Inner>),
}

/// One entry of a chain: a callback/errback pair, or Twisted's `_CONTINUE` marker.
///
/// Entries are plain trait objects rather than an enum around a boxed closure: wrapping the
/// fat pointer in an enum made every `push` go through a stack temporary that the CPU could
/// not forward (measured: ~6 ns per `add_callback`). Closures work on the result in place for
/// the same reason (passing it by value through the `dyn` call cost ~10 ns per step).
trait Entry {
    fn run(self: Box<Self>, slot: &mut Outcome) -> Next;
    /// The waiting outer Deferred, if this is a strong `Continue` (for iterative drop).
    fn into_continue(self: Box<Self>) -> Option<Rc<Inner>> {
        None
    }
    /// Makes a strong `Continue` weak, returning its outer (see "Ownership").
    fn weaken(&mut self) -> Option<Rc<Inner>> {
        None
    }
}

enum Next {
    /// The slot holds the next result.
    Done,
    /// The callback returned this Deferred: chain on it.
    Chain(Rc<Inner>),
    /// Hand the result to this waiting outer Deferred.
    Continue(Rc<Inner>),
}

struct Call<F>(F);

impl<F: FnOnce(&mut Outcome) -> Option<Rc<Inner>>> Entry for Call<F> {
    #[inline]
    fn run(self: Box<Self>, slot: &mut Outcome) -> Next {
        match (self.0)(slot) {
            None => Next::Done,
            Some(inner) => Next::Chain(inner),
        }
    }
}

/// A strong or weak reference between a waiting outer Deferred and its inner one.
enum Link {
    Strong(Rc<Inner>),
    Weak(Weak<Inner>),
}

impl Link {
    fn get(&self) -> Option<Rc<Inner>> {
        match self {
            Link::Strong(rc) => Some(rc.clone()),
            Link::Weak(w) => w.upgrade(),
        }
    }
}

struct Continue(Link);

impl Entry for Continue {
    fn run(self: Box<Self>, _: &mut Outcome) -> Next {
        match self.0 {
            Link::Strong(outer) => Next::Continue(outer),
            // The outer is gone: nobody waits for this result; it stays here.
            Link::Weak(w) => w.upgrade().map_or(Next::Done, Next::Continue),
        }
    }
    fn into_continue(self: Box<Self>) -> Option<Rc<Inner>> {
        match self.0 {
            Link::Strong(outer) => Some(outer),
            Link::Weak(_) => None,
        }
    }
    fn weaken(&mut self) -> Option<Rc<Inner>> {
        match &self.0 {
            Link::Strong(outer) => {
                let outer = outer.clone();
                self.0 = Link::Weak(Rc::downgrade(&outer));
                Some(outer)
            }
            Link::Weak(_) => None,
        }
    }
}

enum Res {
    /// Not fired yet.
    Empty,
    /// The current result is in `Inner::slot`.
    Ready,
    /// Fired, but waiting for the result of another Deferred (chained).
    Waiting(Link),
    /// A batch of this Deferred's callbacks is running with the result in `Inner::slot`.
    InFlight,
}

type Canceller = Box<dyn FnOnce(&Rc<Inner>)>;

/// Most chains have a few entries: keeping four inline saves an allocation per Deferred.
type Entries = SmallVec<[Box<dyn Entry>; 4]>;

pub(crate) struct State {
    result: Res,
    /// FIFO of entries not yet run. While a batch runs, it holds the entries added meanwhile.
    callbacks: Entries,
    /// `pause()` count. Waiting on a chained Deferred blocks the chain as well, tracked by
    /// `Res::Waiting` rather than this counter so that `unpause()` can't release it.
    paused: u32,
    called: bool,
    /// Set by `cancel()` without a canceller: the producer's next firing is swallowed once.
    suppress_already_called: bool,
    canceller: Option<Canceller>,
    /// For `Debug` output only: the Deferred this one waits on (implicit or `chain_deferred`).
    chained_to: Option<Weak<Inner>>,
    created_at: &'static Location<'static>,
    first_fired_at: Option<&'static Location<'static>>,
}

pub(crate) struct Inner {
    /// Live `Deferred` handles (not internal references): at zero, nothing outside the chain
    /// can fire this Deferred any more (see "Ownership" in the module docs).
    handles: Cell<usize>,
    st: RefCell<State>,
    /// The result, outside the `RefCell` so a batch of callbacks can work on it in place
    /// without holding a borrow (moving it in and out of the state cost a store-forwarding
    /// stall per batch and per firing).
    ///
    /// Invariant: it is `Some` exactly while `st.result` is `Ready` or `InFlight`. It is read
    /// or written only by code that has just checked `st.result` under a borrow of `st`
    /// (`Ready`: nobody else holds a reference to it), or by the batch runner while
    /// `InFlight`, which every other accessor treats as "no result" and leaves alone.
    slot: UnsafeCell<Option<Outcome>>,
}

impl Inner {
    /// The slot.
    ///
    /// # Safety
    /// The caller has checked `st.result` (see the invariant on `slot`) and no other reference
    /// to the slot is alive.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    unsafe fn slot(&self) -> &mut Option<Outcome> {
        // SAFETY: exclusivity is the caller's obligation (the `slot` invariant).
        unsafe { &mut *self.slot.get() }
    }
}

impl Inner {
    fn new(created_at: &'static Location<'static>) -> Rc<Inner> {
        // Built in place: `Rc::new` built the ~170-byte state on the stack and copied it with a
        // `memcpy` call (measured: ~12% of create-add-fire).
        let mut rc = Rc::<Inner>::new_uninit();
        let Some(slot) = Rc::get_mut(&mut rc) else {
            unreachable!("a new Rc has one owner")
        };
        slot.write(Inner {
            handles: Cell::new(0),
            slot: UnsafeCell::new(None),
            st: RefCell::new(State {
                result: Res::Empty,
                callbacks: SmallVec::new(),
                paused: 0,
                called: false,
                suppress_already_called: false,
                canceller: None,
                chained_to: None,
                created_at,
                first_fired_at: None,
            }),
        });
        // SAFETY: written just above.
        unsafe { rc.assume_init() }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let st = self.st.get_mut();
        if let Some(Err(f)) = self.slot.get_mut() {
            if super::get_debugging() {
                crate::report_error!(
                    target: "twistor::defer",
                    "Unhandled error in Deferred: {f} (debug: C: created at {}; I: first fired at {})",
                    st.created_at,
                    st.first_fired_at.map(|l| l.to_string()).unwrap_or_else(|| "?".into())
                );
            } else {
                crate::report_error!(target: "twistor::defer", "Unhandled error in Deferred: {f:?}");
            }
        }
        // Drop waiting outers iteratively: a million nested, never-fired Deferreds must not
        // recurse a million frames deep through `Continue` entries.
        let mut pending: Vec<Rc<Inner>> = Vec::new();
        take_links(st, &mut pending);
        while let Some(rc) = pending.pop() {
            if let Ok(inner) = Rc::try_unwrap(rc) {
                let mut inner = inner;
                take_links(inner.st.get_mut(), &mut pending);
                drop(inner);
            }
        }
    }
}

/// Moves the strong links out of a dying Deferred's state, for `Inner::drop`'s work list.
fn take_links(st: &mut State, pending: &mut Vec<Rc<Inner>>) {
    for e in st.callbacks.drain(..) {
        if let Some(o) = e.into_continue() {
            pending.push(o);
        }
    }
    if let Res::Waiting(Link::Strong(_)) = &st.result
        && let Res::Waiting(Link::Strong(rc)) = mem::replace(&mut st.result, Res::Empty)
    {
        pending.push(rc);
    }
}

/// The last handle of `inner` is gone: only a waiting outer can still cancel it. Flip the
/// links so the outer holds it and it holds the outer weakly (module docs, "Ownership").
fn last_handle_dropped(inner: &Rc<Inner>) {
    let outers: SmallVec<[Rc<Inner>; 2]> = match inner.st.try_borrow_mut() {
        Ok(mut s) => s.callbacks.iter_mut().filter_map(|e| e.weaken()).collect(),
        Err(_) => return,
    };
    for outer in outers {
        if let Ok(mut o) = outer.st.try_borrow_mut()
            && let Res::Waiting(Link::Weak(w)) = &o.result
            && w.as_ptr() == Rc::as_ptr(inner)
        {
            o.result = Res::Waiting(Link::Strong(inner.clone()));
        }
    }
}

#[track_caller]
fn type_error<T>(found: &Value) -> Failure {
    Failure::new(ChainTypeError {
        expected: std::any::type_name::<T>(),
        found: found.type_name(),
    })
}

#[inline]
fn take_value<T: 'static>(v: Value) -> Result<T, Failure> {
    v.take::<T>().map_err(|v| type_error::<T>(&v))
}

/// Runs a Deferred's callbacks, following implicit chains iteratively (module docs).
pub(crate) fn run_callbacks(start: &Rc<Inner>) {
    // The re-entrancy guard is in `run_one`: a Deferred in flight is left to its own batch.
    let mut stack: Vec<Rc<Inner>> = Vec::new();
    let mut current = start.clone();
    loop {
        let done = run_one(&current);
        match done {
            Run::Switched(outer) => {
                stack.push(mem::replace(&mut current, outer));
            }
            Run::Finished => match stack.pop() {
                Some(prev) => current = prev,
                None => return,
            },
            Run::Blocked => return,
        }
    }
}

enum Run {
    /// No runnable entries left (or now waiting on another Deferred): resume the one below.
    Finished,
    /// Paused: everything below waits too (Twisted returns from the whole loop here).
    Blocked,
    /// Reached a `Continue`: the result moved to this outer Deferred, run it next.
    Switched(Rc<Inner>),
}

/// Runs the entries of one Deferred. The entries are taken out in batches, so the loop over a
/// batch touches no `RefCell`; entries added meanwhile form the next batch (Twisted's FIFO
/// order), and a batch interrupted by chaining is put back in front of them.
fn run_one(current: &Rc<Inner>) -> Run {
    let mut batch = {
        let mut s = current.st.borrow_mut();
        if s.paused > 0 || matches!(s.result, Res::Waiting(_)) {
            return Run::Blocked;
        }
        if matches!(s.result, Res::InFlight) {
            // Its batch runs further up the call stack and will pick up any new entries.
            return Run::Finished;
        }
        s.chained_to = None;
        if s.callbacks.is_empty() || !matches!(s.result, Res::Ready) {
            // No callbacks, or not fired.
            return Run::Finished;
        }
        s.result = Res::InFlight;
        mem::take(&mut s.callbacks).into_iter()
    };
    // SAFETY: `InFlight` from here until the state is set again below: no other code touches
    // the slot meanwhile (the `slot` invariant).
    let slot = unsafe { current.slot() };
    loop {
        for entry in batch.by_ref() {
            let Some(result) = slot.as_mut() else {
                break; // unreachable: the slot is `Some` while in flight
            };
            match catch_unwind(AssertUnwindSafe(|| entry.run(result))) {
                Ok(Next::Done) => {}
                Err(payload) => *slot = Some(Err(panic_failure(&*payload))),
                Ok(Next::Continue(outer)) => {
                    let r = slot
                        .replace(Ok(Value::unit()))
                        .unwrap_or_else(unreachable_result);
                    let mut s = current.st.borrow_mut();
                    s.result = Res::Ready;
                    put_back(&mut s, batch);
                    drop(s);
                    let mut o = outer.st.borrow_mut();
                    o.result = Res::Ready;
                    // SAFETY: the outer was waiting (no result): nobody refers to its slot.
                    unsafe { *outer.slot() = Some(r) };
                    drop(o);
                    return Run::Switched(outer);
                }
                Ok(Next::Chain(inner)) => {
                    if Rc::ptr_eq(&inner, current) {
                        log::warn!(target: "twistor::defer", "{CircularChainError}");
                        *slot = Some(Err(Failure::new(CircularChainError)));
                        continue;
                    }
                    let mut is = inner.st.borrow_mut();
                    if is.paused == 0 && matches!(is.result, Res::Ready) {
                        // Steal the inner's result; the inner is left holding `()`.
                        // SAFETY: the inner is `Ready` and not running: its slot is free.
                        let stolen = unsafe { inner.slot() }.replace(Ok(Value::unit()));
                        *slot = Some(stolen.unwrap_or_else(unreachable_result));
                    } else {
                        let mut s = current.st.borrow_mut();
                        s.chained_to = Some(Rc::downgrade(&inner));
                        put_back(&mut s, batch);
                        // Waiting: no result here (the slot invariant).
                        *slot = None;
                        if inner.handles.get() == 0 {
                            // Nobody else can fire the inner: the outer owns it.
                            let weak_outer = Rc::downgrade(current);
                            is.callbacks
                                .push(Box::new(Continue(Link::Weak(weak_outer))));
                            drop(is);
                            s.result = Res::Waiting(Link::Strong(inner));
                        } else {
                            is.callbacks
                                .push(Box::new(Continue(Link::Strong(current.clone()))));
                            drop(is);
                            s.result = Res::Waiting(Link::Weak(Rc::downgrade(&inner)));
                        }
                        return Run::Finished;
                    }
                }
            }
        }
        let mut s = current.st.borrow_mut();
        if s.callbacks.is_empty() {
            s.result = Res::Ready;
            return Run::Finished;
        }
        batch = mem::take(&mut s.callbacks).into_iter();
    }
}

/// Puts the rest of an interrupted batch back in front of entries added meanwhile.
fn put_back(s: &mut State, rest: smallvec::IntoIter<[Box<dyn Entry>; 4]>) {
    if rest.len() == 0 {
        return;
    }
    let mut v: Entries = rest.collect();
    v.extend(s.callbacks.drain(..));
    s.callbacks = v;
}

#[cold]
fn unreachable_result() -> Outcome {
    crate::report_error!(target: "twistor::defer", "internal: stolen Deferred result was not ready");
    Ok(Value::unit())
}

fn panic_failure(payload: &(dyn std::any::Any + Send)) -> Failure {
    let f = Failure::from_panic(payload);
    crate::report_error!(target: "twistor::defer", "panic in Deferred callback: {f}");
    f
}

#[inline(always)]
fn push_entry(inner: &Rc<Inner>, cb: impl FnOnce(&mut Outcome) -> Option<Rc<Inner>> + 'static) {
    let called = {
        let mut s = inner.st.borrow_mut();
        s.callbacks.push(Box::new(Call(cb)));
        s.called
    };
    if called {
        run_callbacks(inner);
    }
}

pub(crate) fn fire(
    inner: &Rc<Inner>,
    outcome: Outcome,
    at: &'static Location<'static>,
) -> Result<(), AlreadyCalledError> {
    fire_with(inner, at, move || outcome)
}

/// Fires with the outcome `make` builds, written straight into the slot (built on the stack
/// and copied in, the outcome cost a store-forwarding stall).
#[inline(always)]
pub(crate) fn fire_with(
    inner: &Rc<Inner>,
    at: &'static Location<'static>,
    make: impl FnOnce() -> Outcome,
) -> Result<(), AlreadyCalledError> {
    let canceller = {
        let mut s = inner.st.borrow_mut();
        if s.called {
            if s.suppress_already_called {
                s.suppress_already_called = false;
                return Ok(());
            }
            let debug = super::get_debugging();
            return Err(AlreadyCalledError {
                created_at: debug.then_some(s.created_at),
                first_fired_at: if debug { s.first_fired_at } else { None },
                fired_again_at: at,
            });
        }
        s.called = true;
        s.first_fired_at = Some(at);
        s.result = Res::Ready;
        // SAFETY: not called until now: no result, nobody refers to the slot.
        unsafe { *inner.slot() = Some(make()) };
        s.canceller.take()
    };
    drop(canceller);
    run_callbacks(inner);
    Ok(())
}

fn pause(inner: &Rc<Inner>) {
    inner.st.borrow_mut().paused += 1;
}

fn unpause(inner: &Rc<Inner>) {
    let run = {
        let mut s = inner.st.borrow_mut();
        s.paused = s.paused.saturating_sub(1);
        s.paused == 0 && s.called
    };
    if run {
        run_callbacks(inner);
    }
}

fn paused(inner: &Rc<Inner>) -> u32 {
    let s = inner.st.borrow();
    s.paused + u32::from(matches!(s.result, Res::Waiting(_)))
}

pub(crate) fn cancel(inner: &Rc<Inner>) {
    let mut s = inner.st.borrow_mut();
    if !s.called {
        let canceller = s.canceller.take();
        if canceller.is_none() {
            s.suppress_already_called = true;
        }
        drop(s);
        if let Some(c) = canceller
            && let Err(p) = catch_unwind(AssertUnwindSafe(|| c(inner)))
        {
            crate::report_error!(
                target: "twistor::defer",
                "panic in Deferred canceller: {}",
                Failure::from_panic(&*p)
            );
        }
        if !inner.st.borrow().called {
            let _ = fire(inner, Err(Failure::new(CancelledError)), Location::caller());
        }
    } else if let Res::Waiting(link) = &s.result {
        let target = link.get();
        drop(s);
        if let Some(t) = target {
            cancel(&t);
        }
    }
}

/// A result you don't have yet: Twisted's Deferred, single-threaded and typed.
///
/// A `Deferred<T>` will eventually hold a `T` (success) or a [`Failure`]. Callbacks run on
/// successes, errbacks on failures; each returns the next result, which may be of a new type.
///
/// # Two handles: the chain and the resolver
///
/// Twisted's `d` is one object that both extends the chain (`d.addCallback(f)`) and fires it
/// (`d.callback(x)`). A typed chain changes type as callbacks are added, so twistor splits it:
///
/// * the `Deferred<T>` is the **chain handle**: there is exactly one, it is not `Clone`, and
///   adding a callback consumes it and returns the handle of the extended chain
///   (`Deferred<U>`). Twisted's `d.addCallback(f); d.addCallback(g)` is
///   `let d = d.add_callback(f); let d = d.add_callback(g);`, and adding through a handle of
///   an old type cannot compile;
/// * the [`Resolver<T>`] fires it. [`Deferred::new`] gives both; the resolver is typed by the
///   chain's *first* type, which never changes, so it can be cloned and kept by whoever
///   produces the result. It can also cancel and tell whether the Deferred was fired.
///
/// | Twisted | twistor |
/// |---|---|
/// | `d = Deferred()` | `let (d, r) = Deferred::new()` |
/// | `d.callback(x)` / `d.errback(f)` | [`r.callback(x)`](Resolver::callback) / [`r.errback(f)`](Resolver::errback) |
/// | `d.addCallback(f)` (`f` returns a value) | `d = d.add_callback(f)` |
/// | `f` may raise | [`add_callback_try`](Self::add_callback_try) (`f` returns `Result<U, Failure>`) |
/// | `f` returns a Deferred | [`add_callback_deferred`](Self::add_callback_deferred) |
/// | `d.addErrback(f)` | [`add_errback`](Self::add_errback) / [`add_errback_deferred`](Self::add_errback_deferred) |
/// | `d.addErrback(log.err)` | [`add_errback(log_error)`](crate::defer::log_error) / [`add_errback_logged`](Self::add_errback_logged) |
/// | `d.addCallbacks(f, g)` | [`add_callbacks`](Self::add_callbacks) |
/// | `d.addBoth(f)` | [`add_both`](Self::add_both) / [`add_both_deferred`](Self::add_both_deferred) |
///
/// A callback that panics puts a [`PanicError`](crate::failure::PanicError) failure on the
/// chain. Firing twice returns [`AlreadyCalledError`]; it never panics.
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use twistor::Deferred;
///
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let l = log.clone();
/// let (d, r) = Deferred::<&str>::new();
/// let d = d.add_callback(|meal| meal.len() > 3);                  // eat_meal
/// let _d = d.add_callback(move |good| l.borrow_mut().push(good)); // compliment_chef
/// r.callback("eggs benedict").unwrap();
/// assert_eq!(*log.borrow(), [true]);
/// ```
///
/// A chain handle can't be used once a callback was added through it:
///
/// ```compile_fail
/// let (d, _r) = twistor::Deferred::<u8>::new();
/// let _a = d.add_callback(|x| x.to_string());
/// let _b = d.add_callback(|x| x + 1); // error: use of moved value `d`
/// ```
///
/// Nor can it be cloned, or sent to another thread:
///
/// ```compile_fail
/// let d = twistor::Deferred::succeed(1u8);
/// let _twice = d.clone();
/// ```
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// send(twistor::Deferred::succeed(1u8));
/// ```
pub struct Deferred<T> {
    inner: Rc<Inner>,
    _t: PhantomData<fn(T) -> T>,
}

/// The handle that fires a [`Deferred`]: its producer's side (see "Two handles" there).
///
/// Typed by the chain's first type, which callbacks never change, so firing cannot put a value
/// of the wrong type on the chain. Clones fire the same Deferred. A resolver can also cancel the
/// Deferred and tell whether it was fired; it cannot add callbacks or look at the result.
///
/// ```
/// use twistor::{Deferred, testing::success_result_of};
///
/// let (d, r) = Deferred::new();
/// let d = d.add_callback(|x: u32| x * 2);
/// let producer = r.clone();
/// producer.callback(21).unwrap();
/// assert!(r.called());
/// assert!(r.callback(0).is_err()); // fired already
/// assert_eq!(success_result_of(&d), 42);
/// ```
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// let (_d, r) = twistor::Deferred::<u8>::new();
/// send(r);
/// ```
pub struct Resolver<T> {
    inner: Rc<Inner>,
    _t: PhantomData<fn(T)>,
}

impl<T> Clone for Resolver<T> {
    fn clone(&self) -> Self {
        self.inner.handles.set(self.inner.handles.get() + 1);
        Resolver {
            inner: self.inner.clone(),
            _t: PhantomData,
        }
    }
}

/// One handle less; at zero, only a waiting outer Deferred can still cancel this one.
#[inline]
fn release_handle(inner: &Rc<Inner>) {
    let n = inner.handles.get() - 1;
    inner.handles.set(n);
    if n == 0 {
        last_handle_dropped(inner);
    }
}

impl<T> Drop for Resolver<T> {
    fn drop(&mut self) {
        release_handle(&self.inner);
    }
}

impl<T> Drop for Deferred<T> {
    fn drop(&mut self) {
        release_handle(&self.inner);
    }
}

/// Anything that names a Deferred: a chain handle or a resolver, for the identity checks
/// ([`Deferred::ptr_eq`], [`Deferred::is_chained_to`]). Sealed.
pub trait DeferredRef: sealed::Sealed {
    #[doc(hidden)]
    fn inner_ptr(&self) -> *const ();
}

mod sealed {
    pub trait Sealed {}
    impl<T> Sealed for super::Deferred<T> {}
    impl<T> Sealed for super::Resolver<T> {}
    impl Sealed for super::CancelHandle {}
}

impl DeferredRef for CancelHandle {
    fn inner_ptr(&self) -> *const () {
        Rc::as_ptr(&self.inner).cast()
    }
}

impl<T> DeferredRef for Deferred<T> {
    fn inner_ptr(&self) -> *const () {
        Rc::as_ptr(&self.inner).cast()
    }
}

impl<T> DeferredRef for Resolver<T> {
    fn inner_ptr(&self) -> *const () {
        Rc::as_ptr(&self.inner).cast()
    }
}

impl<T> Deferred<T> {
    /// The shared state, giving up this handle (the count drops; a fresh Deferred returned
    /// from a callback usually has other handles: its producer's).
    fn into_raw(self) -> Rc<Inner> {
        let this = mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; the `Rc` moves out exactly once.
        let inner = unsafe { std::ptr::read(&this.inner) };
        release_handle(&inner);
        inner
    }

    /// Changes the handle's type without touching the handle count.
    fn retype<U>(self) -> Deferred<U> {
        let this = mem::ManuallyDrop::new(self);
        Deferred {
            // SAFETY: as in `into_raw`; the count moves with the `Rc` to the new handle.
            inner: unsafe { std::ptr::read(&this.inner) },
            _t: PhantomData,
        }
    }

    /// A handle that can cancel this Deferred after this chain handle is given away.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.inner.handles.set(self.inner.handles.get() + 1);
        CancelHandle {
            inner: self.inner.clone(),
        }
    }
}

impl<T: 'static> Resolver<T> {
    fn from_inner(inner: Rc<Inner>) -> Self {
        inner.handles.set(inner.handles.get() + 1);
        Resolver {
            inner,
            _t: PhantomData,
        }
    }

    /// Fires the Deferred with a success: its callbacks run now, in this call.
    ///
    /// Returns [`AlreadyCalledError`] if it was fired before (except the one late firing that
    /// a canceller-less `cancel()` swallows).
    ///
    /// ```
    /// let (_d, r) = twistor::Deferred::new();
    /// assert!(r.callback("x").is_ok());
    /// assert!(r.callback("y").is_err());
    /// ```
    #[track_caller]
    pub fn callback(&self, value: T) -> Result<(), AlreadyCalledError> {
        fire_with(&self.inner, Location::caller(), move || {
            Ok(Value::new(value))
        })
    }

    /// Fires the Deferred with a failure: its errbacks run now, in this call.
    ///
    /// ```
    /// let (d, r) = twistor::Deferred::<()>::new();
    /// let handled = d.add_errback(|f| { assert_eq!(f.error_message(), "oops"); Ok(()) });
    /// r.errback(twistor::Failure::msg("oops")).unwrap();
    /// # drop(handled);
    /// ```
    #[track_caller]
    pub fn errback(&self, error: impl Into<Failure>) -> Result<(), AlreadyCalledError> {
        fire(&self.inner, Err(error.into()), Location::caller())
    }

    /// Fires with `Ok` → callback, `Err` → errback.
    ///
    /// ```
    /// let (d, r) = twistor::Deferred::<u8>::new();
    /// r.fire(Ok(1)).unwrap();
    /// assert_eq!(twistor::testing::success_result_of(&d), 1);
    /// ```
    #[track_caller]
    pub fn fire(&self, result: Result<T, Failure>) -> Result<(), AlreadyCalledError> {
        fire(&self.inner, result.map(Value::new), Location::caller())
    }

    /// Cancels the Deferred, as [`Deferred::cancel`] does.
    #[track_caller]
    pub fn cancel(&self) {
        cancel(&self.inner)
    }

    /// True once the Deferred was fired (or cancelled, which fires it).
    pub fn called(&self) -> bool {
        self.inner.st.borrow().called
    }

    /// True if both handles name the same Deferred.
    pub fn ptr_eq(&self, other: &impl DeferredRef) -> bool {
        std::ptr::eq(Rc::as_ptr(&self.inner).cast(), other.inner_ptr())
    }
}

/// A handle that can cancel, pause and unpause a Deferred and tell whether it was fired, but
/// not extend its chain or look at its result (none of that depends on the chain's type): for
/// code that gives the [`Deferred`] handle away (to a timeout, a list, a future awaiting it,
/// a callback returning it) and must still control it. Cheap to clone; it keeps the Deferred
/// alive.
///
/// ```
/// use twistor::{Deferred, defer::CancelledError, testing::failure_result_of};
///
/// let (d, _r) = Deferred::<u8>::new();
/// let stop = d.cancel_handle();
/// let d = d.add_callback(|x| x + 1);
/// stop.cancel();
/// assert!(stop.called());
/// assert!(failure_result_of(&d).is::<CancelledError>());
/// ```
pub struct CancelHandle {
    inner: Rc<Inner>,
}

impl CancelHandle {
    /// Cancels the Deferred, as [`Deferred::cancel`] does.
    #[track_caller]
    pub fn cancel(&self) {
        cancel(&self.inner)
    }

    /// Pauses the Deferred, as [`Deferred::pause`] does.
    pub fn pause(&self) {
        pause(&self.inner)
    }

    /// Undoes one pause, as [`Deferred::unpause`] does.
    pub fn unpause(&self) {
        unpause(&self.inner)
    }

    /// The pause count, as [`Deferred::paused`] gives it.
    pub fn paused(&self) -> u32 {
        paused(&self.inner)
    }

    /// True once the Deferred was fired (or cancelled, which fires it).
    pub fn called(&self) -> bool {
        self.inner.st.borrow().called
    }

    /// True if both handles name the same Deferred.
    pub fn ptr_eq(&self, other: &impl DeferredRef) -> bool {
        std::ptr::eq(Rc::as_ptr(&self.inner).cast(), other.inner_ptr())
    }
}

impl Clone for CancelHandle {
    fn clone(&self) -> Self {
        self.inner.handles.set(self.inner.handles.get() + 1);
        CancelHandle {
            inner: self.inner.clone(),
        }
    }
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        release_handle(&self.inner);
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<CancelHandle of Deferred at {:p}>",
            Rc::as_ptr(&self.inner)
        )
    }
}

impl<T> fmt::Debug for Resolver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Resolver of Deferred at {:p}>", Rc::as_ptr(&self.inner))
    }
}

impl<T: 'static> Deferred<T> {
    /// A chain handle on a new state (the one handle counted).
    fn from_new(inner: Rc<Inner>) -> Self {
        inner.handles.set(inner.handles.get() + 1);
        Deferred {
            inner,
            _t: PhantomData,
        }
    }

    /// A new, unfired Deferred: its chain handle and its resolver.
    ///
    /// ```
    /// let (d, r) = twistor::Deferred::<u32>::new();
    /// assert!(!d.called());
    /// r.callback(1).unwrap();
    /// assert!(d.called());
    /// ```
    #[track_caller]
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (Self, Resolver<T>) {
        let d = Self::from_new(Inner::new(Location::caller()));
        let r = Resolver::from_inner(d.inner.clone());
        (d, r)
    }

    /// A new Deferred whose `cancel()` calls `canceller` (which may fire it with any result).
    /// If the canceller does not fire it, it fails with [`CancelledError`].
    ///
    /// ```
    /// use twistor::Deferred;
    /// let (d, _r) = Deferred::with_canceller(|r| {
    ///     r.callback("gave up politely").unwrap();
    /// });
    /// d.cancel();
    /// assert_eq!(twistor::testing::success_result_of(&d), "gave up politely");
    /// ```
    #[track_caller]
    pub fn with_canceller(canceller: impl FnOnce(&Resolver<T>) + 'static) -> (Self, Resolver<T>) {
        let (d, r) = Self::new();
        d.inner.st.borrow_mut().canceller = Some(Box::new(move |inner: &Rc<Inner>| {
            canceller(&Resolver::from_inner(inner.clone()))
        }));
        (d, r)
    }

    /// A Deferred that already has the result `value` (Twisted's `succeed`).
    ///
    /// ```
    /// let d = twistor::Deferred::succeed(5).add_callback(|x| x * 2);
    /// assert_eq!(twistor::testing::success_result_of(&d), 10);
    /// ```
    #[track_caller]
    pub fn succeed(value: T) -> Self {
        let d = Self::from_new(Inner::new(Location::caller()));
        {
            let mut s = d.inner.st.borrow_mut();
            s.called = true;
            s.first_fired_at = Some(Location::caller());
            s.result = Res::Ready;
            // SAFETY: a new Deferred: nobody refers to its slot.
            unsafe { *d.inner.slot() = Some(Ok(Value::new(value))) };
        }
        d
    }

    /// A Deferred that already failed with `error` (Twisted's `fail`).
    ///
    /// ```
    /// let d = twistor::Deferred::<i32>::fail(twistor::Failure::msg("no"));
    /// assert_eq!(twistor::testing::failure_result_of(&d).error_message(), "no");
    /// ```
    #[track_caller]
    pub fn fail(error: impl Into<Failure>) -> Self {
        let f = error.into();
        let d = Self::from_new(Inner::new(Location::caller()));
        {
            let mut s = d.inner.st.borrow_mut();
            s.called = true;
            s.first_fired_at = Some(Location::caller());
            s.result = Res::Ready;
            // SAFETY: a new Deferred: nobody refers to its slot.
            unsafe { *d.inner.slot() = Some(Err(f)) };
        }
        d
    }

    fn push<U: 'static>(self, cb: impl FnOnce(Outcome) -> Step + 'static) -> Deferred<U> {
        push_entry(&self.inner, move |slot: &mut Outcome| {
            match cb(mem::replace(slot, Ok(Value::unit()))) {
                Step::Done(r) => {
                    // The placeholder is a `()`: nothing to drop.
                    mem::forget(mem::replace(slot, r));
                    None
                }
                Step::Chain(inner) => Some(inner),
            }
        });
        self.retype()
    }

    /// Adds a callback that maps the success value to a new value. Failures pass by.
    ///
    /// ```
    /// let d = twistor::Deferred::succeed(2).add_callback(|x| x + 1).add_callback(|x| x * 10);
    /// assert_eq!(twistor::testing::success_result_of(&d), 30);
    /// ```
    #[doc(alias = "addCallback")]
    #[track_caller]
    pub fn add_callback<U: 'static>(self, f: impl FnOnce(T) -> U + 'static) -> Deferred<U> {
        self.push(move |o| {
            Step::Done(match o {
                Ok(v) => take_value::<T>(v).map(|t| Value::new(f(t))),
                Err(e) => Err(e),
            })
        })
    }

    /// Adds a callback that may fail: `Err` switches the chain to the error track. `?` converts
    /// any error into a [`Failure`].
    ///
    /// ```
    /// let d = twistor::Deferred::succeed("12x")
    ///     .add_callback_try(|s| Ok(s.parse::<i32>()?));
    /// assert!(twistor::testing::failure_result_of(&d).is::<std::num::ParseIntError>());
    /// ```
    #[doc(alias = "addCallback")]
    #[track_caller]
    pub fn add_callback_try<U: 'static>(
        self,
        f: impl FnOnce(T) -> Result<U, Failure> + 'static,
    ) -> Deferred<U> {
        self.push(move |o| {
            Step::Done(match o {
                Ok(v) => take_value::<T>(v).and_then(f).map(Value::new),
                Err(e) => Err(e),
            })
        })
    }

    /// Adds a callback that returns another Deferred: the chain waits for it and continues
    /// with its result (implicit chaining).
    ///
    /// ```
    /// use twistor::Deferred;
    /// let (inner, fire_inner) = Deferred::new();
    /// let d = Deferred::succeed(1).add_callback_deferred(move |_| inner).add_callback(|x: i32| x + 1);
    /// twistor::testing::assert_no_result(&d);
    /// fire_inner.callback(41).unwrap();
    /// assert_eq!(twistor::testing::success_result_of(&d), 42);
    /// ```
    #[doc(alias = "addCallback")]
    #[track_caller]
    pub fn add_callback_deferred<U: 'static>(
        self,
        f: impl FnOnce(T) -> Deferred<U> + 'static,
    ) -> Deferred<U> {
        self.push(move |o| match o {
            Ok(v) => match take_value::<T>(v) {
                Ok(t) => Step::Chain(f(t).into_raw()),
                Err(e) => Step::Done(Err(e)),
            },
            Err(e) => Step::Done(Err(e)),
        })
    }

    /// Adds an errback: it runs on a failure and either recovers (`Ok(value)`) or passes a
    /// failure on (`Err`). Successes pass by.
    ///
    /// ```
    /// use twistor::{Deferred, Failure};
    /// let d = Deferred::<i32>::fail(Failure::msg("boom")).add_errback(|_f| Ok(0));
    /// assert_eq!(twistor::testing::success_result_of(&d), 0);
    /// ```
    #[doc(alias = "addErrback")]
    #[track_caller]
    pub fn add_errback(self, f: impl FnOnce(Failure) -> Result<T, Failure> + 'static) -> Self {
        self.push(move |o| {
            Step::Done(match o {
                Ok(v) => Ok(v),
                Err(e) => f(e).map(Value::new),
            })
        })
    }

    /// Ends the error track the way Twisted's `d.addErrback(log.err)` does, for any `T`: a
    /// failure is reported (through [`log_error`](crate::defer::log_error)) and becomes `None`,
    /// a success `v` becomes `Some(v)`. For a `T: Default` (such as `()`),
    /// `add_errback(log_error)` keeps the type instead.
    ///
    /// ```
    /// use twistor::{Deferred, Failure, testing::success_result_of};
    /// struct Conn;
    /// let d = Deferred::<Conn>::fail(Failure::msg("refused")).add_errback_logged();
    /// assert!(success_result_of(&d).is_none());
    /// ```
    #[track_caller]
    pub fn add_errback_logged(self) -> Deferred<Option<T>> {
        self.add_both(|r| match r {
            Ok(v) => Ok(Some(v)),
            Err(f) => crate::defer::log_error(f),
        })
    }

    /// Adds an errback that returns a Deferred (the chain waits for it).
    ///
    /// ```
    /// use twistor::{Deferred, Failure};
    /// let d = Deferred::<i32>::fail(Failure::msg("x"))
    ///     .add_errback_deferred(|_| Deferred::succeed(7));
    /// assert_eq!(twistor::testing::success_result_of(&d), 7);
    /// ```
    #[doc(alias = "addErrback")]
    #[track_caller]
    pub fn add_errback_deferred(self, f: impl FnOnce(Failure) -> Deferred<T> + 'static) -> Self {
        self.push(move |o| match o {
            Ok(v) => Step::Done(Ok(v)),
            Err(e) => Step::Chain(f(e).into_raw()),
        })
    }

    /// Adds a callback/errback *pair*: exactly one of the two runs, so `errback` never sees a
    /// failure made by `callback` (unlike `add_callback_try(..).add_errback(..)`).
    ///
    /// ```
    /// use twistor::{Deferred, Failure};
    /// let d = Deferred::<i32>::succeed(1).add_callbacks(
    ///     |_| Err::<i32, _>(Failure::msg("callback failed")),
    ///     |_| Ok(99),
    /// );
    /// assert_eq!(twistor::testing::failure_result_of(&d).error_message(), "callback failed");
    /// ```
    #[doc(alias = "addCallbacks")]
    #[track_caller]
    pub fn add_callbacks<U: 'static>(
        self,
        callback: impl FnOnce(T) -> Result<U, Failure> + 'static,
        errback: impl FnOnce(Failure) -> Result<U, Failure> + 'static,
    ) -> Deferred<U> {
        self.push(move |o| {
            Step::Done(match o {
                Ok(v) => take_value::<T>(v).and_then(callback).map(Value::new),
                Err(e) => errback(e).map(Value::new),
            })
        })
    }

    /// Adds one function for both tracks (Twisted's `addBoth`, the `finally` of a chain).
    ///
    /// ```
    /// let d = twistor::Deferred::succeed(3).add_both(|r| r.map(|x| x + 1));
    /// assert_eq!(twistor::testing::success_result_of(&d), 4);
    /// ```
    #[doc(alias = "addBoth")]
    #[track_caller]
    pub fn add_both<U: 'static>(
        self,
        f: impl FnOnce(Result<T, Failure>) -> Result<U, Failure> + 'static,
    ) -> Deferred<U> {
        self.push(move |o| Step::Done(f(o.and_then(take_value::<T>)).map(Value::new)))
    }

    /// Adds one function for both tracks that returns a Deferred (the chain waits for it).
    ///
    /// ```
    /// use twistor::Deferred;
    /// let d = Deferred::succeed(3).add_both_deferred(|r| Deferred::succeed(r.is_ok()));
    /// assert!(twistor::testing::success_result_of(&d));
    /// ```
    #[doc(alias = "addBoth")]
    #[track_caller]
    pub fn add_both_deferred<U: 'static>(
        self,
        f: impl FnOnce(Result<T, Failure>) -> Deferred<U> + 'static,
    ) -> Deferred<U> {
        self.push(move |o| Step::Chain(f(o.and_then(take_value::<T>)).into_raw()))
    }

    /// Stops callbacks from running until as many `unpause()` calls as `pause()` calls.
    ///
    /// ```
    /// let d = twistor::Deferred::succeed(1);
    /// d.pause();
    /// twistor::testing::assert_no_result(&d);
    /// d.unpause();
    /// assert_eq!(twistor::testing::success_result_of(&d), 1);
    /// ```
    pub fn pause(&self) {
        pause(&self.inner)
    }

    /// Undoes one `pause()`; at zero, pending callbacks run now. Extra calls are ignored.
    pub fn unpause(&self) {
        unpause(&self.inner)
    }

    /// Cancels the Deferred (Twisted's rules):
    ///
    /// * not fired: the canceller runs (if any); if the Deferred is still not fired, it fails
    ///   with [`CancelledError`]. Without a canceller, the producer's next firing is swallowed
    ///   once, instead of returning [`AlreadyCalledError`];
    /// * fired and waiting on a chained Deferred: that Deferred is cancelled instead;
    /// * otherwise: nothing happens.
    ///
    /// ```
    /// use twistor::{Deferred, defer::CancelledError};
    /// let (d, r) = Deferred::<u8>::new();
    /// d.cancel();
    /// assert!(r.callback(1).is_ok()); // swallowed once
    /// assert!(twistor::testing::failure_result_of(&d).is::<CancelledError>());
    /// ```
    #[track_caller]
    pub fn cancel(&self) {
        cancel(&self.inner)
    }

    /// Makes `other` fire with this Deferred's result (Twisted's `chainDeferred`). This
    /// Deferred's chain continues with `()`. No cancellation flows back from `other`.
    ///
    /// ```
    /// use twistor::Deferred;
    /// let (a, fire_a) = Deferred::new();
    /// let (b, fire_b) = Deferred::new();
    /// let rest = a.chain_deferred(&fire_b);
    /// fire_a.callback(5).unwrap();
    /// assert_eq!(twistor::testing::success_result_of(&b), 5);
    /// # drop(rest);
    /// ```
    #[doc(alias = "chainDeferred")]
    #[track_caller]
    pub fn chain_deferred(self, other: &Resolver<T>) -> Deferred<()> {
        other.inner.st.borrow_mut().chained_to = Some(Rc::downgrade(&self.inner));
        let target = other.clone();
        self.add_both(move |r| target.fire(r).map_err(Failure::new))
    }

    /// True once the Deferred was fired (or `succeed`/`fail` made it).
    pub fn called(&self) -> bool {
        self.inner.st.borrow().called
    }

    /// True if the Deferred holds a result now (fired, not waiting on another Deferred).
    pub fn has_result(&self) -> bool {
        matches!(self.inner.st.borrow().result, Res::Ready)
    }

    /// The pause count, plus one while waiting on a chained Deferred (Twisted's `paused`).
    pub fn paused(&self) -> u32 {
        paused(&self.inner)
    }

    /// True if this Deferred waits on `other` (implicit chaining or `chain_deferred`).
    /// `other` is any handle of it, e.g. the resolver of a Deferred a callback returned.
    pub fn is_chained_to(&self, other: &impl DeferredRef) -> bool {
        let s = self.inner.st.borrow();
        s.chained_to
            .as_ref()
            .is_some_and(|w| std::ptr::eq(w.as_ptr().cast(), other.inner_ptr()))
    }

    /// True if both handles name the same Deferred.
    pub fn ptr_eq(&self, other: &impl DeferredRef) -> bool {
        std::ptr::eq(Rc::as_ptr(&self.inner).cast(), other.inner_ptr())
    }

    /// Calls `f` with a view of the current result without consuming it: `None` if there is no
    /// result now, `Some(Err)` for a failure or a value of another type than `T`.
    ///
    /// While `f` runs, the Deferred counts as busy (as while its own callbacks run): `f` may
    /// fire, cancel or extend it, and what that would run runs when `f` returns.
    ///
    /// ```
    /// let d = twistor::Deferred::succeed(String::from("orange"));
    /// assert_eq!(d.peek(|r| r.map(|r| r.map(|s| s.len()).ok())), Some(Some(6)));
    /// ```
    pub fn peek<R>(&self, f: impl FnOnce(Option<Result<&T, Failure>>) -> R) -> R {
        {
            let mut s = self.inner.st.borrow_mut();
            if !matches!(s.result, Res::Ready) {
                drop(s);
                return f(None);
            }
            // Busy, like a running batch: nothing else touches the slot until the guard
            // below puts `Ready` back (the `slot` invariant), and no borrow is held in `f`.
            s.result = Res::InFlight;
        }
        let guard = PeekGuard(&self.inner);
        // SAFETY: `InFlight` set above by this call: the slot is ours until the guard drops.
        let r = match unsafe { &*self.inner.slot.get() } {
            Some(Ok(v)) => match v.downcast_ref::<T>() {
                Some(t) => f(Some(Ok(t))),
                None => f(Some(Err(type_error::<T>(v)))),
            },
            Some(Err(e)) => f(Some(Err(e.clone()))),
            None => f(None),
        };
        drop(guard);
        r
    }

    /// Takes the current result out if the Deferred holds one of type `T` and no callbacks
    /// are pending, leaving `()` behind (what Twisted's `successResultOf` does). Used by the
    /// testing helpers and the future bridge.
    pub(crate) fn take_result(&self) -> Option<Result<T, Failure>> {
        let s = self.inner.st.borrow_mut();
        if s.paused > 0 || !s.callbacks.is_empty() {
            return None;
        }
        if !matches!(s.result, Res::Ready) {
            return None;
        }
        // SAFETY: `Ready` and idle, under the state's borrow (the `slot` invariant).
        let r = unsafe { self.inner.slot() }.replace(Ok(Value::unit()))?;
        Some(r.and_then(take_value::<T>))
    }
}

/// Ends a `peek`: puts `Ready` back and runs what was added or unpaused meanwhile (also when
/// the peeking function panics).
struct PeekGuard<'a>(&'a Rc<Inner>);

impl Drop for PeekGuard<'_> {
    fn drop(&mut self) {
        let run = {
            let mut s = self.0.st.borrow_mut();
            s.result = Res::Ready;
            s.paused == 0 && !s.callbacks.is_empty()
        };
        if run {
            run_callbacks(self.0);
        }
    }
}

impl<T> fmt::Debug for Deferred<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // What to show is copied out first: formatting a failure runs the error's `Display`,
        // user code that must not run under a borrow of the state.
        enum Shown {
            Waiting(*const Inner),
            Value(&'static str),
            Failure(Failure),
            Nothing,
        }
        let shown = {
            let s = self.inner.st.borrow();
            if let Some(w) = &s.chained_to {
                Shown::Waiting(w.as_ptr())
            } else if matches!(s.result, Res::Ready) {
                // SAFETY: `Ready`, under the state's borrow (the `slot` invariant).
                match unsafe { &*self.inner.slot.get() } {
                    Some(Ok(v)) => Shown::Value(v.type_name()),
                    Some(Err(e)) => Shown::Failure(e.clone()),
                    None => Shown::Nothing,
                }
            } else {
                Shown::Nothing
            }
        };
        write!(f, "<Deferred at {:p}", Rc::as_ptr(&self.inner))?;
        match shown {
            Shown::Waiting(p) => write!(f, " waiting on Deferred at {p:p}")?,
            Shown::Value(name) => write!(f, " current result: <{name}>")?,
            Shown::Failure(e) => write!(f, " current result: {e}")?,
            Shown::Nothing => {}
        }
        write!(f, ">")
    }
}

/// Calls `f` now and wraps what it gives in a Deferred (Twisted's `maybeDeferred`): a value or
/// `Err` becomes a fired Deferred, a Deferred is returned as it is, a panic becomes a failure.
///
/// ```
/// use twistor::{Deferred, Failure, defer::maybe_deferred};
/// let d = maybe_deferred(|| Ok::<_, Failure>(1));
/// assert_eq!(twistor::testing::success_result_of(&d), 1);
/// let d = maybe_deferred(|| Deferred::<i32>::succeed(2));
/// assert_eq!(twistor::testing::success_result_of(&d), 2);
/// ```
#[doc(alias = "maybeDeferred")]
#[track_caller]
pub fn maybe_deferred<R: IntoDeferred>(f: impl FnOnce() -> R) -> Deferred<R::Output> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.into_deferred(),
        Err(p) => Deferred::fail(panic_failure(&*p)),
    }
}

/// Calls `f` now: its `Ok` or `Err` becomes a fired Deferred (Twisted's `execute`).
///
/// ```
/// let d = twistor::defer::execute(|| "5".parse::<u8>());
/// assert_eq!(twistor::testing::success_result_of(&d), 5);
/// ```
#[track_caller]
pub fn execute<T: 'static, E: Into<Failure>>(f: impl FnOnce() -> Result<T, E>) -> Deferred<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Deferred::succeed(v),
        Ok(Err(e)) => Deferred::fail(e.into()),
        Err(p) => Deferred::fail(panic_failure(&*p)),
    }
}

/// What [`maybe_deferred`] accepts from its function: a `Result<T, Failure>` or a `Deferred<T>`.
pub trait IntoDeferred {
    /// The success type.
    type Output: 'static;
    /// Converts into a Deferred.
    fn into_deferred(self) -> Deferred<Self::Output>;
}

impl<T: 'static> IntoDeferred for Result<T, Failure> {
    type Output = T;
    #[track_caller]
    fn into_deferred(self) -> Deferred<T> {
        match self {
            Ok(v) => Deferred::succeed(v),
            Err(e) => Deferred::fail(e),
        }
    }
}

impl<T: 'static> IntoDeferred for Deferred<T> {
    type Output = T;
    fn into_deferred(self) -> Deferred<T> {
        self
    }
}

/// Unit tests of the paths that touch the result slot through `unsafe` (firing, running,
/// stealing, continuing, peeking, dropping a waiting chain): small enough for Miri to run.
#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;
    use crate::testing::{assert_no_result, failure_result_of, success_result_of};

    #[test]
    fn fire_run_and_take() {
        let (d, r) = Deferred::<String>::new();
        let d = d.add_callback(|s| s + "!").add_callback(|s| s.len());
        r.callback("hey".to_string()).unwrap();
        assert_eq!(success_result_of(&d), 4);
    }

    #[test]
    fn steal_a_fired_inner_and_continue_a_waiting_outer() {
        let stolen = Deferred::succeed(1).add_callback_deferred(|x| Deferred::succeed(x + 1));
        assert_eq!(success_result_of(&stolen), 2);

        let (inner, fire_inner) = Deferred::<Rc<u8>>::new();
        let outer = Deferred::succeed(()).add_callback_deferred(move |()| inner);
        assert_no_result(&outer);
        fire_inner.callback(Rc::new(7)).unwrap();
        assert_eq!(*success_result_of(&outer), 7);
    }

    #[test]
    fn panics_and_failures_travel_the_chain() {
        let d = Deferred::succeed(1u8)
            .add_callback(|_| -> u8 { panic!("boom") })
            .add_errback(Err);
        assert!(failure_result_of(&d).is::<crate::failure::PanicError>());
    }

    #[test]
    fn peek_while_busy_and_reentrant() {
        let d = Deferred::succeed(vec![1u8, 2, 3]);
        d.pause();
        let control = d.cancel_handle();
        let seen = Rc::new(Cell::new(0));
        let s = seen.clone();
        let d = d.add_callback(move |v| {
            s.set(v.len());
            v
        });
        let len = d.peek(|r| {
            control.unpause();
            r.and_then(|r| r.ok()).map(|v| v.len())
        });
        assert_eq!((len, seen.get()), (Some(3), 3));
        assert_eq!(success_result_of(&d), [1, 2, 3]);
    }

    #[test]
    fn dropping_waiting_chains_frees_them() {
        let token = Rc::new(());
        {
            let (inner, fire_inner) = Deferred::<u8>::new();
            let t = token.clone();
            let outer = Deferred::succeed(())
                .add_callback_deferred(move |()| inner)
                .add_callback(move |x| {
                    let _keep = &t;
                    x
                });
            drop(fire_inner);
            drop(outer);
        }
        assert_eq!(Rc::strong_count(&token), 1);
    }
}

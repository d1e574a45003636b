//! Waiting on several Deferreds at once: [`DeferredList`], [`gather_results`] and [`race`].
//!
//! # Invariants
//!
//! * **Each input is observed once, at one point of its chain.** Building a list (or a gather,
//!   or a race) adds exactly one entry to each input, at the end of its chain *at that time*.
//!   The entry sees the result the input's earlier callbacks produced; callbacks added to the
//!   input later see what the entry hands on (next section).
//! * **The combined Deferred fires at most once.** A result that arrives after it fired (a late
//!   input, or a second success produced by a loser's canceller) is ignored: it is neither
//!   recorded nor reported, and no `AlreadyCalledError` ever surfaces.
//! * **Results are in input order**, not completion order; a [`FirstError`] and a
//!   [`FailureGroup`] name inputs by their position in the input sequence.
//! * **No `RefCell` borrow is held while user code runs**: firing the combined Deferred runs
//!   its callbacks, which may fire, cancel or add callbacks to any input (including the one
//!   whose result is being delivered).
//!
//! The user-facing rules (what an input's chain continues with, cancellation, memory) are in
//! the docs of [`DeferredList`], where users of the re-export see them.
//!
//! # Why the inputs are consumed
//!
//! A list takes each input's chain handle (a `Deferred` is the one handle that extends its
//! chain), so nothing can be added to an input after the list's entry: the entry is the end
//! of the chain. It therefore *moves* a success into the list (no `T: Clone`), and continues
//! the chain with `()` — or with the failure, unless errors are consumed, so that an unhandled
//! failure is still reported when the input goes away (Twisted's default). The list keeps
//! [`CancelHandle`]s to cancel the inputs.
//!
//! # Why the list's Deferred is a plain Deferred with a canceller
//!
//! Twisted overrides `DeferredList.cancel`, so a list that cancelling its inputs does not
//! settle stays unfired. twistor has no subclassing; the list's Deferred gets a canceller
//! instead, and so follows the usual rule: still unfired after the canceller, it fails with
//! `CancelledError`. The observers check `called()` before firing it, which is what makes
//! "fires at most once, late results ignored, no `AlreadyCalledError`" hold whoever fired it.
//!
//! # Ownership
//!
//! The list's canceller holds the inputs (to cancel them); each unfired input's entry holds the
//! list's resolver (to fire it). Firing the list drops its canceller, which breaks that cycle;
//! a race also empties its input list once decided. Until then, an unfired input that every
//! other owner dropped keeps the group alive (see the "Memory" section of [`DeferredList`]).

use std::cell::RefCell;
use std::mem;
use std::rc::Rc;

use super::deferred::CancelHandle;
use super::errors::{FailureGroup, FirstError};
use crate::{Deferred, Failure, Resolver};

/// The result of a [`DeferredList`] built with
/// [`fire_on_one_callback`](DeferredList::fire_on_one_callback).
///
/// ```
/// use twistor::{Deferred, defer::{DeferredList, FireOnOneResult}};
/// let ((a, fire_a), (b, fire_b)) = (Deferred::<&str>::new(), Deferred::new());
/// let first = DeferredList::new([a, b]).fire_on_one_callback();
/// fire_b.callback("B").unwrap();
/// let r = twistor::testing::success_result_of(&first);
/// assert!(matches!(r, FireOnOneResult::Success { value: "B", index: 1 }));
/// # fire_a.callback("A").unwrap();
/// ```
#[derive(Debug, Clone)]
pub enum FireOnOneResult<T> {
    /// The first input to succeed: its value and its position in the list.
    Success {
        /// The input's value.
        value: T,
        /// The input's position in the list.
        index: usize,
    },
    /// No input succeeded: every input's result, in input order (failures only, unless the
    /// list was cancelled). Twisted fires the plain result list in this case.
    AllDone(Vec<Result<T, Failure>>),
}

/// Waits for a list of Deferreds (Twisted's `DeferredList`), as a builder.
///
/// [`build`](Self::build) gives a Deferred that fires with every input's result, in input
/// order, once all inputs have fired; a failure does not make the list fail unless
/// [`fire_on_one_errback`](Self::fire_on_one_errback) is set.
/// [`fire_on_one_callback`](Self::fire_on_one_callback) gives a Deferred that fires with the
/// first success instead.
///
/// | Twisted | twistor |
/// |---|---|
/// | `DeferredList(ds)` | `DeferredList::new(ds).build()` |
/// | `(True, value)` / `(False, failure)` | `Ok(value)` / `Err(failure)` |
/// | `fireOnOneErrback=True` | `.fire_on_one_errback(true)` |
/// | `consumeErrors=True` | `.consume_errors(true)` |
/// | `fireOnOneCallback=True` | `.fire_on_one_callback()` |
///
/// ```
/// use twistor::{Deferred, Failure, defer::DeferredList};
///
/// let ((a, fire_a), (b, fire_b)) = (Deferred::new(), Deferred::new());
/// let all = DeferredList::new([a, b]).consume_errors(true).build();
/// fire_b.callback("B").unwrap();
/// twistor::testing::assert_no_result(&all);
/// fire_a.errback(Failure::msg("A failed")).unwrap();
/// let results = twistor::testing::success_result_of(&all);
/// assert_eq!(results[0].as_ref().unwrap_err().error_message(), "A failed");
/// assert_eq!(results[1].as_ref().ok(), Some(&"B"));
/// ```
///
/// These rules hold for [`gather_results`] too, which is a list with `fire_on_one_errback`.
///
/// # The list fires once
///
/// The list's Deferred fires at most once. A result that arrives after it fired is ignored:
/// it is not recorded (Twisted still writes it into the list it already delivered) and no
/// `AlreadyCalledError` surfaces anywhere. Results are in input order, not completion order;
/// a [`FirstError`] names the input by its position.
///
/// # What the inputs' chains continue with
///
/// The list takes the inputs' chain handles and adds one entry at the end of each chain: the
/// list sees what the input's earlier callbacks produced, and nothing can be added after it.
///
/// * a **success** moves into the list (no `T: Clone` needed); the chain holds `()`;
/// * a **failure** is recorded and also left on the input's chain, so it is still reported as
///   unhandled when the input goes away (Twisted's default);
/// * with [`consume_errors`](Self::consume_errors), a failure is replaced by `()`, Twisted's
///   `None`: nothing is reported.
///
/// # Cancellation
///
/// Cancelling the list's Deferred before it fired cancels every input, in input order (a
/// panicking canceller is logged and the other inputs are still cancelled). The inputs' results
/// then make the list fire as usual: e.g. `[Ok("Callback Result"), Err(CancelledError)]` when
/// one input's canceller calls back, or a [`FirstError`] with `fire_on_one_errback`. If that
/// leaves the list unfired (an input that fired before but is paused ignores `cancel()`), it
/// fails with [`CancelledError`](crate::defer::CancelledError), like any Deferred with a
/// canceller; Twisted's list would stay unfired. Cancelling it after it fired does nothing.
///
/// # Memory
///
/// Until the list fires, it and its unfired inputs keep each other alive (its canceller holds
/// the inputs, their entries hold the list). An input that every owner dropped without firing
/// therefore keeps the whole group in memory, where Twisted's garbage collector would free
/// it. Fire or cancel what you start.
#[must_use = "a DeferredList does nothing until it is built"]
pub struct DeferredList<T> {
    inputs: Vec<Deferred<T>>,
    fire_on_one_errback: bool,
    consume_errors: bool,
}

impl<T: 'static> DeferredList<T> {
    /// A list over `inputs`, with every option off.
    ///
    /// ```
    /// let list = twistor::defer::DeferredList::new([twistor::Deferred::succeed(1)]).build();
    /// assert_eq!(twistor::testing::success_result_of(&list)[0].as_ref().ok(), Some(&1));
    /// ```
    pub fn new(inputs: impl IntoIterator<Item = Deferred<T>>) -> Self {
        DeferredList {
            inputs: inputs.into_iter().collect(),
            fire_on_one_errback: false,
            consume_errors: false,
        }
    }

    /// On the first failure (before the list fired), fail the list at once with a
    /// [`FirstError`] naming the failure and the input's index. An input that already failed
    /// makes the list fail while it is built.
    ///
    /// ```
    /// use twistor::{Deferred, Failure, defer::{DeferredList, FirstError}};
    /// let ((a, fire_a), (b, fire_b)) = (Deferred::<u8>::new(), Deferred::new());
    /// let list = DeferredList::new([a, b]).fire_on_one_errback(true).consume_errors(true).build();
    /// fire_b.errback(Failure::msg("no")).unwrap();
    /// let f = twistor::testing::failure_result_of(&list);
    /// assert_eq!(f.downcast_ref::<FirstError>().unwrap().index, 1);
    /// # fire_a.callback(1).unwrap();
    /// ```
    #[doc(alias = "fireOnOneErrback")]
    pub fn fire_on_one_errback(mut self, on: bool) -> Self {
        self.fire_on_one_errback = on;
        self
    }

    /// After recording an input's failure, continue that input's chain with `()` instead of
    /// the failure, so it is not reported as unhandled (see
    /// [what the inputs' chains continue with](Self#what-the-inputs-chains-continue-with)).
    ///
    /// ```
    /// use twistor::{Deferred, Failure, defer::DeferredList};
    /// let (d, r) = Deferred::<()>::new();
    /// let list = DeferredList::new([d]).consume_errors(true).build();
    /// r.errback(Failure::msg("bang")).unwrap(); // recorded, not reported
    /// assert!(twistor::testing::success_result_of(&list)[0].is_err());
    /// ```
    #[doc(alias = "consumeErrors")]
    pub fn consume_errors(mut self, on: bool) -> Self {
        self.consume_errors = on;
        self
    }

    /// Attaches to the inputs and returns the list's Deferred: it fires with every input's
    /// result in input order once all have fired (at once, with `vec![]`, for no inputs), or
    /// fails with the first [`FirstError`] if [`fire_on_one_errback`](Self::fire_on_one_errback)
    /// is set. Cancelling it cancels the inputs (see [cancellation](Self#cancellation)).
    ///
    /// ```
    /// use twistor::{Deferred, defer::DeferredList};
    /// let empty = DeferredList::<u8>::new([]).build();
    /// assert!(twistor::testing::success_result_of(&empty).is_empty());
    /// ```
    #[track_caller]
    pub fn build(self) -> Deferred<Vec<Result<T, Failure>>> {
        self.attach(|results| results, None)
    }

    /// Like [`build`](Self::build), but the list fires with the first success, as
    /// [`FireOnOneResult::Success`] (Twisted's `fireOnOneCallback=True`). If no input
    /// succeeds, it fires with [`FireOnOneResult::AllDone`] once all have fired. A list with
    /// no inputs never fires (until cancelled).
    ///
    /// ```
    /// use twistor::{Deferred, defer::{DeferredList, FireOnOneResult}};
    /// let never = DeferredList::<u8>::new([]).fire_on_one_callback();
    /// twistor::testing::assert_no_result(&never);
    /// let one = DeferredList::new([Deferred::succeed(4)]).fire_on_one_callback();
    /// assert!(matches!(
    ///     twistor::testing::success_result_of(&one),
    ///     FireOnOneResult::Success { value: 4, index: 0 }
    /// ));
    /// ```
    #[doc(alias = "fireOnOneCallback")]
    #[track_caller]
    pub fn fire_on_one_callback(self) -> Deferred<FireOnOneResult<T>> {
        self.attach(FireOnOneResult::AllDone, Some(success_result::<T>))
    }

    /// The shared core: `all_done` makes the list's result from every input's result;
    /// `on_success`, if set, makes it from the first success (fire-on-one-callback mode).
    #[track_caller]
    fn attach<R: 'static>(
        self,
        all_done: fn(Vec<Result<T, Failure>>) -> R,
        on_success: Option<fn(T, usize) -> R>,
    ) -> Deferred<R> {
        let DeferredList {
            inputs,
            fire_on_one_errback,
            consume_errors,
        } = self;
        let n = inputs.len();
        let to_cancel: Vec<CancelHandle> = inputs.iter().map(Deferred::cancel_handle).collect();
        let (out, fire) = Deferred::with_canceller(move |_: &Resolver<R>| {
            for d in &to_cancel {
                d.cancel();
            }
        });
        if n == 0 && on_success.is_none() {
            let _ = fire.callback(all_done(Vec::new()));
            return out;
        }
        let state = Rc::new(RefCell::new(ListState {
            results: (0..n).map(|_| None).collect(),
            remaining: n,
        }));
        for (index, d) in inputs.into_iter().enumerate() {
            let observer = Observer {
                state: state.clone(),
                out: fire.clone(),
                index,
                fire_on_one_errback,
                consume_errors,
                all_done,
                on_success,
            };
            drop(d.add_both(move |r| observer.observe(r)));
        }
        out
    }
}

fn success_result<T>(value: T, index: usize) -> FireOnOneResult<T> {
    FireOnOneResult::Success { value, index }
}

/// What a list has seen so far. Only touched while the list has not fired.
struct ListState<T> {
    /// One slot per input, filled when that input's result arrives.
    results: Vec<Option<Result<T, Failure>>>,
    /// Inputs whose result has not arrived yet.
    remaining: usize,
}

/// The entry a list adds to one input.
struct Observer<T, R> {
    state: Rc<RefCell<ListState<T>>>,
    /// The list's resolver, to fire it.
    out: Resolver<R>,
    index: usize,
    fire_on_one_errback: bool,
    consume_errors: bool,
    all_done: fn(Vec<Result<T, Failure>>) -> R,
    on_success: Option<fn(T, usize) -> R>,
}

impl<T: 'static, R: 'static> Observer<T, R> {
    /// Records the input's result, fires the list if that decides it, and returns what the
    /// input's chain ends with: `()`, or the failure if errors are not consumed.
    fn observe(self, r: Result<T, Failure>) -> Result<(), Failure> {
        let passed_on = match &r {
            Err(f) if !self.consume_errors => Err(f.clone()),
            _ => Ok(()),
        };
        // Once the list fired (by an input, by its cancellation, or by anyone holding it), a
        // late result is ignored. While it has not fired, every earlier input recorded its
        // result, so `remaining` reaching zero means every slot is filled.
        if self.out.called() {
            return passed_on;
        }
        let decided = {
            let mut st = self.state.borrow_mut();
            st.remaining -= 1;
            match (r, self.on_success) {
                (Ok(v), Some(wrap)) => Some(Ok(wrap(v, self.index))),
                (Err(f), _) if self.fire_on_one_errback => Some(Err(Failure::new(FirstError {
                    sub_failure: f,
                    index: self.index,
                }))),
                (r, _) => {
                    st.results[self.index] = Some(r);
                    if st.remaining == 0 {
                        let all = mem::take(&mut st.results).into_iter().flatten().collect();
                        Some(Ok((self.all_done)(all)))
                    } else {
                        None
                    }
                }
            }
        };
        if let Some(result) = decided {
            let _ = self.out.fire(result);
        }
        passed_on
    }
}

/// Waits for every input and fires with their values in input order, or fails with the first
/// failure, wrapped in a [`FirstError`] (Twisted's `gatherResults`: look at its
/// `sub_failure` for the input's own failure). It is a [`DeferredList`] with
/// `fire_on_one_errback`, and follows its rules: inputs' successes and failures are handed on
/// to their chains (see [`gather_results_consume_errors`]), later results are ignored, and
/// cancelling the result cancels every input.
///
/// ```
/// use twistor::{Deferred, Failure, defer::{gather_results, FirstError}};
///
/// let d = gather_results([Deferred::succeed(1), Deferred::succeed(2)]);
/// assert_eq!(twistor::testing::success_result_of(&d), vec![1, 2]);
///
/// let bad = Deferred::<i32>::fail(Failure::msg("no"));
/// let d = gather_results([Deferred::succeed(1), bad]); // `bad` reports its failure too
/// let f = twistor::testing::failure_result_of(&d);
/// let first = f.downcast_ref::<FirstError>().unwrap();
/// assert_eq!((first.index, first.sub_failure.error_message()), (1, "no".to_string()));
/// ```
#[doc(alias = "gatherResults")]
#[track_caller]
pub fn gather_results<T: 'static>(
    inputs: impl IntoIterator<Item = Deferred<T>>,
) -> Deferred<Vec<T>> {
    gather(inputs, false)
}

/// [`gather_results`] with Twisted's `consumeErrors=True`: an input's failure is recorded,
/// then its chain continues with `()`, so the input does not report it as unhandled.
///
/// ```
/// use twistor::{Deferred, Failure, defer::{gather_results_consume_errors, FirstError}};
/// let bad = Deferred::<()>::fail(Failure::msg("oh noes"));
/// let d = gather_results_consume_errors([Deferred::succeed(()), bad]); // nothing reported
/// assert!(twistor::testing::failure_result_of(&d).is::<FirstError>());
/// ```
#[doc(alias = "gatherResults")]
#[track_caller]
pub fn gather_results_consume_errors<T: 'static>(
    inputs: impl IntoIterator<Item = Deferred<T>>,
) -> Deferred<Vec<T>> {
    gather(inputs, true)
}

#[track_caller]
fn gather<T: 'static>(
    inputs: impl IntoIterator<Item = Deferred<T>>,
    consume_errors: bool,
) -> Deferred<Vec<T>> {
    DeferredList::new(inputs)
        .fire_on_one_errback(true)
        .consume_errors(consume_errors)
        .build()
        .add_callback_try(|results| {
            // With fire_on_one_errback, the list only calls back when every input succeeded.
            results
                .into_iter()
                .enumerate()
                .map(|(index, r)| {
                    r.map_err(|sub_failure| Failure::new(FirstError { sub_failure, index }))
                })
                .collect()
        })
}

/// What a race has seen so far.
struct RaceState {
    /// The inputs, to cancel the losers (or all, if the race is cancelled). Emptied once the
    /// race is decided, which drops the cycle between the inputs and the race.
    inputs: Vec<CancelHandle>,
    /// One slot per input, filled when that input fails.
    failures: Vec<Option<Failure>>,
    failed: usize,
    /// Set by the first success; later results are ignored.
    won: bool,
}

/// Fires with `(index, value)` of the first input to succeed, then cancels every other input
/// (Twisted's `race`). If every input fails, fails with a [`FailureGroup`] of their failures
/// in input order. Cancelling the race cancels every input. A race over no inputs never fires
/// (until cancelled).
///
/// The race consumes its inputs' results: their chains continue with `()` (Twisted's `None`),
/// so a loser's `CancelledError` is not reported as unhandled. A second success (a loser whose
/// canceller calls back) is ignored. Until the race is decided it and its inputs keep each
/// other alive, as a [`DeferredList`] does (see its "Memory" section).
///
/// ```
/// use twistor::{Deferred, defer::{race, CancelledError}};
///
/// let ((slow, fire_slow), (fast, fire_fast)) = (Deferred::<&str>::new(), Deferred::new());
/// let winner = race([slow, fast]);
/// fire_fast.callback("fast").unwrap();
/// assert_eq!(twistor::testing::success_result_of(&winner), (1, "fast"));
/// assert!(fire_slow.called()); // cancelled
/// ```
#[track_caller]
pub fn race<T: 'static>(inputs: impl IntoIterator<Item = Deferred<T>>) -> Deferred<(usize, T)> {
    let inputs: Vec<Deferred<T>> = inputs.into_iter().collect();
    let n = inputs.len();
    let state = Rc::new(RefCell::new(RaceState {
        inputs: inputs.iter().map(Deferred::cancel_handle).collect(),
        failures: (0..n).map(|_| None).collect(),
        failed: 0,
        won: false,
    }));
    let st = state.clone();
    let (out, fire) = Deferred::with_canceller(move |_: &Resolver<(usize, T)>| {
        // Clone the handles out: cancelling an input runs its entry, which borrows the state.
        let inputs = st.borrow().inputs.clone();
        for d in &inputs {
            d.cancel();
        }
    });
    for (index, d) in inputs.into_iter().enumerate() {
        let state = state.clone();
        let out = fire.clone();
        drop(d.add_both(move |r| {
            match r {
                Ok(value) => {
                    let losers = {
                        let mut st = state.borrow_mut();
                        if st.won || out.called() {
                            None
                        } else {
                            st.won = true;
                            Some(mem::take(&mut st.inputs))
                        }
                    };
                    if let Some(losers) = losers {
                        for (i, loser) in losers.iter().enumerate() {
                            if i != index {
                                loser.cancel();
                            }
                        }
                        let _ = out.callback((index, value));
                    }
                }
                Err(f) => {
                    let all_failed = {
                        let mut st = state.borrow_mut();
                        if st.won || out.called() {
                            None
                        } else {
                            st.failures[index] = Some(f);
                            st.failed += 1;
                            if st.failed == n {
                                st.inputs.clear();
                                Some(mem::take(&mut st.failures))
                            } else {
                                None
                            }
                        }
                    };
                    if let Some(failures) = all_failed {
                        let failures = failures.into_iter().flatten().collect();
                        let _ = out.errback(FailureGroup { failures });
                    }
                }
            }
            Ok(())
        }));
    }
    out
}

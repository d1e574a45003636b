//! `DeferredList`, `gather_results`, `race` and `FirstError`: Twisted's `test_defer.py`
//! behaviours, ported, and worked examples of each (the `e13_`..`e19_` tests).
//!
//! Twisted's `(True, value)` / `(False, failure)` tuples are `Ok(value)` / `Err(failure)`;
//! `defer.SUCCESS` / `defer.FAILURE` are not ported (a `Result` says it).

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use twistor::defer::{
    CancelledError, DeferredList, FailureGroup, FireOnOneResult, FirstError, gather_results,
    gather_results_consume_errors, race,
};
use twistor::testing::{assert_no_result, failure_result_of, success_result_of};
use twistor::{Deferred, Failure, Resolver};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct GenericError(&'static str);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ValueError(String);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct KeyError(String);

/// Captures this thread's log records: the shared helpers of tests/util.
mod logs {
    pub use super::util::{capture_logs as capture, captured_errors as errors};
}

/// Twisted's `fakeCallbackCanceller`.
fn fake_callback_canceller() -> Deferred<&'static str> {
    Deferred::with_canceller(|r| {
        r.callback("Callback Result").unwrap();
    })
    .0
}

fn first_error(f: &Failure) -> &FirstError {
    f.downcast_ref::<FirstError>()
        .unwrap_or_else(|| panic!("expected a FirstError, got {f:?}"))
}

// ---------------------------------------------------------------------------------------------
// DeferredList

#[test]
fn test_deferred_list() {
    let ((defr1, fire_defr1), (defr2, fire_defr2), (defr3, fire_defr3)) =
        (Deferred::new(), Deferred::new(), Deferred::new());
    // Twisted's test eats the failure the list hands on to defr2's chain; here the list owns
    // that chain, so it consumes errors instead.
    let dl = DeferredList::new([defr1, defr2, defr3])
        .consume_errors(true)
        .build();
    fire_defr1.callback("1").unwrap();
    fire_defr2.errback(GenericError("2")).unwrap();
    assert_no_result(&dl);
    fire_defr3.callback("3").unwrap();
    let result = success_result_of(&dl);
    assert_eq!(result.len(), 3);
    assert_eq!(result[0].as_ref().ok(), Some(&"1"));
    assert_eq!(result[1].as_ref().unwrap_err().error_message(), "2");
    assert_eq!(result[2].as_ref().ok(), Some(&"3"));
}

#[test]
fn test_empty_deferred_list() {
    let dl1 = DeferredList::<()>::new([]).build();
    assert!(success_result_of(&dl1).is_empty());
    let dl2 = DeferredList::<()>::new([]).fire_on_one_callback();
    assert_no_result(&dl2);
}

#[test]
fn test_deferred_list_fire_on_one_error() {
    let ((defr1, fire_defr1), (defr2, fire_defr2), (defr3, _fire_defr3)) =
        (Deferred::new(), Deferred::<&str>::new(), Deferred::new());
    let dl = DeferredList::new([defr1, defr2, defr3])
        .fire_on_one_errback(true)
        .consume_errors(true)
        .build();

    fire_defr1.callback("1").unwrap();
    assert_no_result(&dl);

    fire_defr2.errback(GenericError("from def2")).unwrap();
    let f = failure_result_of(&dl);
    let first = first_error(&f);
    assert!(first.sub_failure.is::<GenericError>());
    assert_eq!(first.sub_failure.error_message(), "from def2");
    assert_eq!(first.index, 1);
}

/// Without `consume_errors`, the failure stays on the input's chain too: the list owns that
/// chain, so nobody can handle it there, and it is reported as unhandled (as in Twisted when
/// nobody adds an errback after the list's).
#[test]
fn test_deferred_list_dont_consume_errors() {
    logs::capture();
    let (d1, fire_d1) = Deferred::<()>::new();
    let dl = DeferredList::new([d1]).build();
    fire_d1.errback(GenericError("Bang")).unwrap();
    let results = success_result_of(&dl);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].as_ref().unwrap_err().error_message(), "Bang");
    drop(fire_d1);
    let errors = logs::errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("Unhandled error in Deferred") && errors[0].contains("Bang"));
}

#[test]
fn test_deferred_list_consume_errors() {
    logs::capture();
    let (d1, fire_d1) = Deferred::<()>::new();
    let dl = DeferredList::new([d1]).consume_errors(true).build();
    fire_d1.errback(GenericError("Bang")).unwrap();
    let results = success_result_of(&dl);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].as_ref().unwrap_err().error_message(), "Bang");
    drop(fire_d1);
    assert!(logs::errors().is_empty(), "consumed: not reported");
}

#[test]
fn test_deferred_list_fire_on_one_error_with_already_fired_deferreds() {
    let ((d1, fire_d1), (d2, _fire_d2)) = (Deferred::<()>::new(), Deferred::<()>::new());
    fire_d1.errback(GenericError("Bang")).unwrap();
    let dl = DeferredList::new([d1, d2])
        .fire_on_one_errback(true)
        .consume_errors(true)
        .build();
    // The list failed while it was built.
    assert_eq!(first_error(&failure_result_of(&dl)).index, 0);
}

#[test]
fn test_deferred_list_with_already_fired_deferreds() {
    let ((d1, fire_d1), (d2, fire_d2)) = (Deferred::<i32>::new(), Deferred::new());
    fire_d1.errback(GenericError("Bang")).unwrap();
    fire_d2.callback(2).unwrap();
    let dl = DeferredList::new([d1, d2]).consume_errors(true).build();
    let results = success_result_of(&dl);
    assert_eq!(results.len(), 2);
    assert!(results[0].is_err());
    assert_eq!(results[1].as_ref().ok(), Some(&2));
}

#[test]
fn test_cancel_deferred_list() {
    let ((one, fire_one), (two, fire_two)) = (Deferred::<()>::new(), Deferred::<()>::new());
    let dl = DeferredList::new([one, two]).consume_errors(true).build();
    dl.cancel();
    assert!(fire_one.called() && fire_two.called());
    let results = success_result_of(&dl);
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_err_and(|f| f.is::<CancelledError>()))
    );
}

#[test]
fn test_cancel_deferred_list_callback() {
    let one = fake_callback_canceller();
    let (two, fire_two) = Deferred::new();
    let dl = DeferredList::new([one, two]).consume_errors(true).build();
    dl.cancel();
    assert!(fire_two.called());
    let result = success_result_of(&dl);
    assert_eq!(result[0].as_ref().ok(), Some(&"Callback Result"));
    assert!(result[1].as_ref().unwrap_err().is::<CancelledError>());
}

#[test]
fn test_cancel_deferred_list_with_fire_on_one_callback() {
    let ((one, fire_one), (two, fire_two)) = (Deferred::<()>::new(), Deferred::<()>::new());
    let dl = DeferredList::new([one, two])
        .consume_errors(true)
        .fire_on_one_callback();
    dl.cancel();
    assert!(fire_one.called() && fire_two.called());
    // No input succeeded: the list fires with every result, as Twisted's does.
    match success_result_of(&dl) {
        FireOnOneResult::AllDone(results) => {
            assert_eq!(results.len(), 2);
            assert!(
                results
                    .iter()
                    .all(|r| r.as_ref().is_err_and(|f| f.is::<CancelledError>()))
            );
        }
        other => panic!("expected AllDone, got {other:?}"),
    }
}

#[test]
fn test_cancel_deferred_list_with_fire_on_one_callback_and_deferred_callback() {
    let one = fake_callback_canceller();
    let (two, fire_two) = Deferred::new();
    let dl = DeferredList::new([one, two])
        .consume_errors(true)
        .fire_on_one_callback();
    dl.cancel();
    assert!(fire_two.called());
    match success_result_of(&dl) {
        FireOnOneResult::Success { value, index } => {
            assert_eq!((value, index), ("Callback Result", 0))
        }
        other => panic!("expected Success, got {other:?}"),
    }
}

#[test]
fn test_cancel_deferred_list_with_fire_on_one_errback() {
    let ((one, fire_one), (two, fire_two)) = (Deferred::<()>::new(), Deferred::<()>::new());
    let dl = DeferredList::new([one, two])
        .fire_on_one_errback(true)
        .consume_errors(true)
        .build();
    dl.cancel();
    assert!(fire_one.called() && fire_two.called());
    let f = failure_result_of(&dl);
    assert!(first_error(&f).sub_failure.is::<CancelledError>());
}

#[test]
fn test_cancel_deferred_list_with_fire_on_one_errback_all_deferreds_callback() {
    let (one, two) = (fake_callback_canceller(), fake_callback_canceller());
    let dl = DeferredList::new([one, two])
        .fire_on_one_errback(true)
        .build();
    dl.cancel();
    let result = success_result_of(&dl);
    assert_eq!(result[0].as_ref().ok(), Some(&"Callback Result"));
    assert_eq!(result[1].as_ref().ok(), Some(&"Callback Result"));
}

#[test]
fn test_cancel_deferred_list_with_original_deferreds() {
    // Twisted's test appends to the argument list after building; the list owns its inputs
    // here, so only a Deferred that was never given to it can be checked.
    let ((one, fire_one), (two, fire_two)) = (Deferred::<()>::new(), Deferred::<()>::new());
    let argument_list = vec![one, two];
    let dl = DeferredList::new(argument_list)
        .consume_errors(true)
        .build();
    let (three, _fire_three) = Deferred::<()>::new();
    dl.cancel();
    assert!(fire_one.called() && fire_two.called());
    assert_no_result(&three);
}

#[test]
fn test_cancel_deferred_list_with_exception() {
    logs::capture();
    let (one, fire_one) = Deferred::<()>::with_canceller(|_| panic!("test"));
    let (two, fire_two) = Deferred::<()>::new();
    let dl = DeferredList::new([one, two]).consume_errors(true).build();
    dl.cancel();
    assert!(fire_two.called());
    // The panicking canceller is logged; its Deferred still fails with CancelledError.
    let errors = logs::errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("test"), "{errors:?}");
    assert!(fire_one.called());
    let results = success_result_of(&dl);
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().is_err_and(|f| f.is::<CancelledError>()))
    );
}

#[test]
fn test_cancel_fired_on_one_callback_deferred_list() {
    let ((one, fire_one), (two, fire_two)) = (Deferred::<()>::new(), Deferred::<()>::new());
    let dl = DeferredList::new([one, two]).fire_on_one_callback();
    fire_one.callback(()).unwrap();
    dl.cancel();
    assert!(!fire_two.called());
}

#[test]
fn test_cancel_fired_on_one_errback_deferred_list() {
    let ((one, fire_one), (two, fire_two)) = (Deferred::<()>::new(), Deferred::<()>::new());
    let dl = DeferredList::new([one, two])
        .fire_on_one_errback(true)
        .consume_errors(true)
        .build();
    fire_one.errback(GenericError("test")).unwrap();
    dl.cancel();
    assert!(!fire_two.called());
    assert!(failure_result_of(&dl).is::<FirstError>());
}

#[test]
fn test_deferred_list_empty() {
    // DeferredListEmptyTests.testDeferredListEmpty
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let _done = DeferredList::<u8>::new([])
        .build()
        .add_callback(move |res| {
            assert!(res.is_empty());
            r.set(true);
        });
    assert!(ran.get(), "Callback was never run.");
}

// ---------------------------------------------------------------------------------------------
// What the list does beyond Twisted's tests: once-only firing, what inputs continue with.

#[test]
fn deferred_list_fires_once_and_ignores_late_results() {
    let ((a, fire_a), (b, fire_b)) = (Deferred::<&str>::new(), Deferred::new());
    let dl = DeferredList::new([a, b]).fire_on_one_callback();
    fire_a.callback("A").unwrap();
    // A late result neither fires the list again nor surfaces an AlreadyCalledError.
    assert!(fire_b.callback("B").is_ok());
    assert!(matches!(
        success_result_of(&dl),
        FireOnOneResult::Success {
            value: "A",
            index: 0
        }
    ));
}

#[test]
fn deferred_list_fire_on_one_errback_ignores_later_failures() {
    let ((a, fire_a), (b, fire_b)) = (Deferred::<()>::new(), Deferred::<()>::new());
    let dl = DeferredList::new([a, b])
        .fire_on_one_errback(true)
        .consume_errors(true)
        .build();
    fire_a.errback(GenericError("first")).unwrap();
    assert!(fire_b.errback(GenericError("second")).is_ok());
    let f = failure_result_of(&dl);
    assert_eq!(first_error(&f).index, 0);
    assert_eq!(first_error(&f).sub_failure.error_message(), "first");
}

#[test]
fn deferred_list_fire_on_one_callback_with_no_success_fires_all_results() {
    let ((a, fire_a), (b, fire_b)) = (Deferred::<u8>::new(), Deferred::<u8>::new());
    let dl = DeferredList::new([a, b])
        .consume_errors(true)
        .fire_on_one_callback();
    fire_b.errback(GenericError("b")).unwrap();
    assert_no_result(&dl);
    fire_a.errback(GenericError("a")).unwrap();
    match success_result_of(&dl) {
        FireOnOneResult::AllDone(results) => {
            let messages: Vec<_> = results
                .iter()
                .map(|r| r.as_ref().unwrap_err().error_message())
                .collect();
            assert_eq!(messages, ["a", "b"]);
        }
        other => panic!("expected AllDone, got {other:?}"),
    }
}

#[test]
fn deferred_list_observes_inputs_where_it_was_added() {
    let (d, fire_d) = Deferred::<i32>::new();
    let before = d.add_callback(|x| x * 10);
    let dl = DeferredList::new([before]).build();
    fire_d.callback(4).unwrap();
    // The list saw the result of the callbacks added before it; it owns the rest of the chain.
    assert_eq!(success_result_of(&dl)[0].as_ref().ok(), Some(&40));
}

#[test]
fn deferred_list_unconsumed_failure_is_still_reported_unhandled() {
    logs::capture();
    let (d, fire_d) = Deferred::<()>::new();
    let dl = DeferredList::new([d]).build();
    fire_d.errback(GenericError("lost")).unwrap();
    assert!(success_result_of(&dl)[0].is_err());
    drop((fire_d, dl));
    let errors = logs::errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("Unhandled error in Deferred"),
        "{errors:?}"
    );
}

#[test]
fn deferred_list_consumed_failure_is_not_reported() {
    logs::capture();
    let (d, fire_d) = Deferred::<u32>::new();
    let dl = DeferredList::new([d]).consume_errors(true).build();
    fire_d.errback(GenericError("consumed")).unwrap();
    assert!(success_result_of(&dl)[0].is_err());
    drop((fire_d, dl));
    assert_eq!(logs::errors(), Vec::<String>::new());
}

/// A list takes its inputs' values: no `T: Clone` is needed (Twisted's list hands each value
/// on to the input's chain too; here the list owns that chain, so nothing could use it).
#[test]
fn deferred_list_takes_values_that_are_not_clone() {
    struct NotClone(u32);
    let ((a, fire_a), (b, fire_b)) = (Deferred::<NotClone>::new(), Deferred::new());
    let all = DeferredList::new([a, b]).build();
    let ((c, fire_c), (d, _fire_d)) = (Deferred::<NotClone>::new(), Deferred::new());
    let first = DeferredList::new([c, d]).fire_on_one_callback();
    fire_b.callback(NotClone(2)).unwrap();
    fire_a.callback(NotClone(1)).unwrap();
    fire_c.callback(NotClone(3)).unwrap();
    let values: Vec<u32> = success_result_of(&all)
        .into_iter()
        .map(|r| r.map(|v| v.0).unwrap_or(0))
        .collect();
    assert_eq!(values, [1, 2]);
    assert!(matches!(
        success_result_of(&first),
        FireOnOneResult::Success {
            value: NotClone(3),
            index: 0
        }
    ));
    let ((e, fire_e), (f, fire_f)) = (Deferred::<NotClone>::new(), Deferred::new());
    let gathered = gather_results([e, f]);
    fire_e.callback(NotClone(5)).unwrap();
    fire_f.callback(NotClone(6)).unwrap();
    let sum: u32 = success_result_of(&gathered).iter().map(|v| v.0).sum();
    assert_eq!(sum, 11);
}

#[test]
fn deferred_list_success_moves_into_the_list() {
    let (d, fire_d) = Deferred::<String>::new();
    let dl = DeferredList::new([d]).consume_errors(true).build();
    fire_d.callback("kept".to_string()).unwrap();
    assert_eq!(success_result_of(&dl)[0].as_ref().ok().unwrap(), "kept");
}

#[test]
fn deferred_list_cancel_leaves_it_cancelled_if_inputs_do_not_settle() {
    // A paused input that already fired ignores cancel(); the list then fails with
    // CancelledError (Twisted's DeferredList.cancel would leave it waiting) and the input's
    // later result is ignored.
    let (d, fire_d) = Deferred::<u8>::new();
    fire_d.callback(1).unwrap();
    d.pause();
    let control = d.cancel_handle();
    let dl = DeferredList::new([d]).build();
    dl.cancel();
    assert!(failure_result_of(&dl).is::<CancelledError>());
    control.unpause();
    assert_eq!(control.paused(), 0);
}

#[test]
fn deferred_list_callbacks_may_fire_other_inputs() {
    // Re-entrancy: the list's callback runs inside an input's firing and fires another one.
    let ((a, fire_a), (b, fire_b)) = (Deferred::<u8>::new(), Deferred::<u8>::new());
    let first = DeferredList::new([a]).build();
    let second = DeferredList::new([b]).build();
    let _chain = first.add_callback(move |_| fire_b.callback(2).unwrap());
    fire_a.callback(1).unwrap();
    assert_eq!(success_result_of(&second)[0].as_ref().ok(), Some(&2));
}

#[test]
fn deferred_list_frees_everything_once_fired() {
    // The cycle between the list and its inputs is broken when the list fires.
    let token = Rc::new(());
    let ((a, fire_a), (b, fire_b)) = (Deferred::<Rc<()>>::new(), Deferred::<Rc<()>>::new());
    let gathered = gather_results_consume_errors([a, b]);
    fire_a.callback(token.clone()).unwrap();
    fire_b.errback(GenericError("b")).unwrap();
    let f = failure_result_of(&gathered);
    assert!(first_error(&f).sub_failure.is::<GenericError>());
    drop((fire_a, fire_b, gathered));
    assert_eq!(Rc::strong_count(&token), 1);
}

#[test]
fn race_frees_everything_once_decided() {
    let token = Rc::new(());
    let ((a, fire_a), (b, fire_b)) = (Deferred::<Rc<()>>::new(), Deferred::<Rc<()>>::new());
    let r = race([a, b]);
    fire_b.callback(token.clone()).unwrap();
    assert!(fire_a.called()); // cancelled
    assert_eq!(success_result_of(&r).0, 1);
    drop((fire_a, fire_b, r));
    assert_eq!(Rc::strong_count(&token), 1);
}

#[test]
fn test_callback_order_preserved() {
    // DeferredTests.test_callbackOrderPreserved: a callback added to the outer Deferred after
    // a callback returned a Deferred waiting on gather_results runs after that chain.
    let results = Rc::new(RefCell::new(Vec::<String>::new()));
    let (a, fire_a) = Deferred::<&str>::new();
    let (outer, fire_outer) = Deferred::<&str>::new();
    let (r, a2) = (results.clone(), a);
    let outer_tail = outer
        .add_callback_deferred(move |result| {
            r.borrow_mut().push(format!("cb {result}"));
            let (d, fire_d) = Deferred::<()>::new();
            let (r1, r2) = (r.clone(), r.clone());
            let returner = d
                .add_callback_deferred(move |()| {
                    r1.borrow_mut().push("firstCallback".into());
                    gather_results([a2])
                })
                .add_callback(move |v| r2.borrow_mut().push(format!("secondCallback {v:?}")));
            fire_d.callback(()).unwrap();
            returner
        })
        .add_callback({
            let r = results.clone();
            move |()| r.borrow_mut().push("final".into())
        });
    fire_outer.callback("outer").unwrap();
    assert_eq!(*results.borrow(), ["cb outer", "firstCallback"]);
    fire_a.callback("withers").unwrap();
    assert_eq!(
        *results.borrow(),
        [
            "cb outer",
            "firstCallback",
            "secondCallback [\"withers\"]",
            "final"
        ]
    );
    success_result_of(&outer_tail);
}

// ---------------------------------------------------------------------------------------------
// gather_results

#[test]
fn test_gather_results() {
    let d = gather_results([Deferred::succeed(1), Deferred::succeed(2)]);
    assert_eq!(success_result_of(&d), [1, 2]);

    let dl = [
        Deferred::succeed(1),
        Deferred::fail(ValueError(String::new())),
    ];
    let d = gather_results_consume_errors(dl);
    assert!(failure_result_of(&d).is::<FirstError>());
}

#[test]
fn test_gather_results_with_consume_errors() {
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct RuntimeError(&'static str);

    let dgood = Deferred::succeed(1);
    let dbad = Deferred::<i32>::fail(RuntimeError("oh noes"));
    logs::capture();
    let d = gather_results_consume_errors([dgood, dbad]);
    let gathered = failure_result_of(&d);
    assert!(first_error(&gathered).sub_failure.is::<RuntimeError>());
    drop(d);
    assert!(
        logs::errors().is_empty(),
        "the input's failure was consumed"
    );
}

#[test]
fn test_cancel_gather_results() {
    let ((one, fire_one), (two, fire_two)) = (Deferred::<()>::new(), Deferred::<()>::new());
    let result = gather_results_consume_errors([one, two]);
    result.cancel();
    assert!(fire_one.called() && fire_two.called());
    let f = failure_result_of(&result);
    assert!(first_error(&f).sub_failure.is::<CancelledError>());
}

#[test]
fn test_cancel_gather_results_with_all_deferreds_callback() {
    let result = gather_results([fake_callback_canceller(), fake_callback_canceller()]);
    result.cancel();
    assert_eq!(
        success_result_of(&result),
        ["Callback Result", "Callback Result"]
    );
}

// ---------------------------------------------------------------------------------------------
// race. Twisted's hypothesis ranges (0..=3 Deferreds before and after the winner)
// are looped over exhaustively.

/// Twisted's `_setupRaceState`: Deferreds whose cancellers count their calls.
type RaceState = (
    Rc<RefCell<Vec<u32>>>,
    Vec<Deferred<u64>>,
    Vec<Resolver<u64>>,
);

fn setup_race_state(n: usize) -> RaceState {
    let cancelled = Rc::new(RefCell::new(vec![0; n]));
    let (ds, fires) = (0..n)
        .map(|i| {
            let c = cancelled.clone();
            Deferred::with_canceller(move |_: &Resolver<u64>| c.borrow_mut()[i] += 1)
        })
        .unzip();
    (cancelled, ds, fires)
}

#[test]
fn race_test_success() {
    for before in 0..=3 {
        for after in 0..=3 {
            let (cancelled, ds, fires) = setup_race_state(before + 1 + after);
            let race_result = race(ds);
            let expected = 0xdead_beef;
            fires[before].callback(expected).unwrap();
            assert_eq!(success_result_of(&race_result), (before, expected));
            let mut expected_cancelled = vec![1; before];
            expected_cancelled.push(0);
            expected_cancelled.extend(vec![1; after]);
            assert_eq!(*cancelled.borrow(), expected_cancelled);
        }
    }
}

#[test]
fn race_test_failure() {
    for before in 0..=3 {
        for after in 0..=3 {
            let (cancelled, ds, fires) = setup_race_state(before + 1 + after);
            let failure = Failure::msg("The test demands failures.");
            let race_result = race(ds);
            for d in &fires {
                d.errback(failure.clone()).unwrap();
            }
            let actual = failure_result_of(&race_result);
            let group = actual.downcast_ref::<FailureGroup>().unwrap();
            assert_eq!(group.failures.len(), fires.len());
            assert!(group.failures.iter().all(|f| f.ptr_eq(&failure)));
            assert_eq!(*cancelled.borrow(), vec![0; fires.len()]);
        }
    }
}

#[test]
fn race_test_result_after_cancel() {
    for before in 0..=3 {
        for after in 0..=3 {
            logs::capture();
            let (ds, fires): (Vec<Deferred<()>>, Vec<_>) =
                (0..before + 2 + after).map(|_| Deferred::new()).unzip();
            let race_result = race(ds);
            fires[before].callback(()).unwrap();
            // Cancelled without a canceller: this late firing is swallowed.
            fires[before + 1].callback(()).unwrap();
            success_result_of(&race_result);
            drop(fires);
            assert_eq!(logs::errors(), Vec::<String>::new());
        }
    }
}

#[test]
fn race_test_result_from_cancel() {
    let (winner, fire_winner) = Deferred::<u64>::new();
    let ds = [
        winner,
        Deferred::with_canceller(|d: &Resolver<u64>| d.callback(7).unwrap()).0,
    ];
    let expected = 42;
    let race_result = race(ds);
    fire_winner.callback(expected).unwrap();
    assert_eq!(success_result_of(&race_result), (0, expected));
}

#[test]
fn race_test_cancel() {
    for n in 1..=3 {
        let (cancelled, ds, _fires) = setup_race_state(n);
        let race_result = race(ds);
        race_result.cancel();
        assert_eq!(*cancelled.borrow(), vec![1; n]);
        assert!(failure_result_of(&race_result).is::<FailureGroup>());
    }
}

#[test]
fn race_with_no_inputs_never_fires() {
    let r = race(Vec::<Deferred<u8>>::new());
    assert_no_result(&r);
    r.cancel();
    assert!(failure_result_of(&r).is::<CancelledError>());
}

// ---------------------------------------------------------------------------------------------
// FirstError

#[test]
fn first_error_test_repr() {
    let exc = ValueError("some text".into());
    let expected = format!("FirstError[#3, {exc:?}]");
    let error = FirstError {
        sub_failure: Failure::new(exc),
        index: 3,
    };
    assert_eq!(format!("{error:?}"), expected);
    assert_eq!(expected, "FirstError[#3, ValueError(\"some text\")]");
}

#[test]
fn first_error_test_str() {
    let f = Failure::new(ValueError("some text".into()));
    let error = FirstError {
        sub_failure: f.clone(),
        index: 5,
    };
    assert_eq!(error.to_string(), format!("FirstError[#5, {f}]"));
}

#[test]
fn first_error_test_comparison() {
    let first_failure = Failure::msg("division by zero");
    let one = FirstError {
        sub_failure: first_failure.clone(),
        index: 13,
    };
    let another_one = FirstError {
        sub_failure: first_failure,
        index: 13,
    };
    let second_failure = Failure::new(ValueError("bar".into()));
    let another = FirstError {
        sub_failure: second_failure,
        index: 9,
    };
    assert!(one == another_one);
    assert!(one != another);
    assert!(!(one == another));
    assert!(!(one != another_one));
    // `one == 10` is not ported: comparing a FirstError with an integer does not type-check.
}

// ---------------------------------------------------------------------------------------------
// Worked examples: what a DeferredList, gather_results and race give in common cases

#[test]
fn e13_deferred_list_results_in_input_order() {
    let ((a, fire_a), (b, fire_b)) = (Deferred::<&str>::new(), Deferred::new());
    let log = Rc::new(RefCell::new(None));
    let l = log.clone();
    let _logged = DeferredList::new([a, b])
        .consume_errors(true)
        .build()
        .add_callback(move |r| *l.borrow_mut() = Some(r));
    fire_b.callback("B").unwrap();
    fire_a.errback(ValueError(String::new())).unwrap();
    let r = log.borrow_mut().take().unwrap();
    assert!(r[0].as_ref().unwrap_err().is::<ValueError>());
    assert_eq!(r[1].as_ref().ok(), Some(&"B"));
}

#[test]
fn e14_gather_results_first_error() {
    let ((a, fire_a), (b, fire_b)) = (Deferred::<u8>::new(), Deferred::<u8>::new());
    let log = Rc::new(RefCell::new(None));
    let l = log.clone();
    let _logged = gather_results_consume_errors([a, b]).add_errback(move |f| {
        *l.borrow_mut() = Some(f);
        Ok(vec![])
    });
    fire_b.errback(KeyError("k".into())).unwrap();
    let f = log.borrow_mut().take().unwrap();
    let first = first_error(&f);
    assert_eq!(first.index, 1);
    assert!(first.sub_failure.is::<KeyError>());
    assert!(!fire_a.called());
}

#[test]
fn e15_gather_results_consume_errors() {
    let ((a, fire_a), (b, fire_b)) = (Deferred::<()>::new(), Deferred::<()>::new());
    let d = gather_results_consume_errors([a, b]);
    fire_b.errback(KeyError("k".into())).unwrap();
    let f = failure_result_of(&d);
    assert_eq!(
        format!("{:?}", first_error(&f)),
        "FirstError[#1, KeyError(\"k\")]"
    );
    // Twisted then adds a callback to b, which sees None; b's chain belongs to the gather
    // here, and what it ends with is `()`: nothing is reported when it goes away.
    logs::capture();
    drop((fire_a, fire_b, d));
    assert!(logs::errors().is_empty());
}

#[test]
fn e16_fire_on_one_callback() {
    let ((a, fire_a), (b, fire_b)) = (Deferred::<&str>::new(), Deferred::new());
    let dl = DeferredList::new([a, b]).fire_on_one_callback();
    fire_b.callback("B").unwrap();
    fire_a.callback("A").unwrap();
    match success_result_of(&dl) {
        FireOnOneResult::Success { value, index } => assert_eq!((value, index), ("B", 1)),
        other => panic!("expected Success, got {other:?}"),
    }
}

#[test]
fn e17_empty_lists() {
    assert!(success_result_of(&DeferredList::<()>::new([]).build()).is_empty());
    assert_no_result(&DeferredList::<()>::new([]).fire_on_one_callback());
}

#[test]
fn e18_race_cancels_the_losers() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let (a, _fire_a) =
        Deferred::with_canceller(move |_: &Resolver<&str>| l.borrow_mut().push("a cancelled"));
    let (b, fire_b) = Deferred::new();
    let r = race([a, b]);
    fire_b.callback("B").unwrap();
    assert_eq!(*log.borrow(), ["a cancelled"]);
    assert_eq!(success_result_of(&r), (1, "B"));
}

#[test]
fn e19_race_failure_group_sorted_by_index() {
    let ((a, fire_a), (b, fire_b)) = (Deferred::<()>::new(), Deferred::<()>::new());
    let r = race([a, b]);
    fire_b.errback(KeyError(String::new())).unwrap();
    fire_a.errback(ValueError(String::new())).unwrap();
    let f = failure_result_of(&r);
    let group = f.downcast_ref::<FailureGroup>().unwrap();
    assert_eq!(group.failures.len(), 2);
    assert!(group.failures[0].is::<ValueError>());
    assert!(group.failures[1].is::<KeyError>());
}

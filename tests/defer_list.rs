//! `DeferredList`, `gather_results`, `race` and `FirstError`: Twisted's `test_defer.py`
//! behaviours (twisted-semantics.md section 10 items 27-37) and examples E13-E19 of 1.18.
//!
//! Twisted's `(True, value)` / `(False, failure)` tuples are `Ok(value)` / `Err(failure)`;
//! `defer.SUCCESS` / `defer.FAILURE` are not ported (a `Result` says it).

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use twistor::defer::{
    CancelledError, ChainTypeError, DeferredList, FailureGroup, FireOnOneResult, FirstError,
    gather_results, gather_results_consume_errors, race,
};
use twistor::testing::{assert_no_result, failure_result_of, success_result_of};
use twistor::{Deferred, Failure};

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
    Deferred::with_canceller(|d: &Deferred<&'static str>| {
        d.callback("Callback Result").unwrap();
    })
}

fn first_error(f: &Failure) -> &FirstError {
    f.downcast_ref::<FirstError>()
        .unwrap_or_else(|| panic!("expected a FirstError, got {f:?}"))
}

// ---------------------------------------------------------------------------------------------
// DeferredList (items 27-34)

#[test]
fn test_deferred_list() {
    let (defr1, defr2, defr3) = (Deferred::new(), Deferred::new(), Deferred::new());
    let dl = DeferredList::new([defr1.clone(), defr2.clone(), defr3.clone()]).build();
    defr1.callback("1").unwrap();
    // Eat the failure the list hands on to defr2's chain, as Twisted's test does.
    let _caught = defr2.clone().add_errback(|_| Ok("caught"));
    defr2.errback(GenericError("2")).unwrap();
    assert_no_result(&dl);
    defr3.callback("3").unwrap();
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
    let (defr1, defr2, defr3) = (Deferred::new(), Deferred::<&str>::new(), Deferred::new());
    let dl = DeferredList::new([defr1.clone(), defr2.clone(), defr3.clone()])
        .fire_on_one_errback(true)
        .build();
    // Consume the error after it passes through the list.
    let _caught = defr2.clone().add_errback(|_| Ok(""));

    defr1.callback("1").unwrap();
    assert_no_result(&dl);

    defr2.errback(GenericError("from def2")).unwrap();
    let f = failure_result_of(&dl);
    let first = first_error(&f);
    assert!(first.sub_failure.is::<GenericError>());
    assert_eq!(first.sub_failure.error_message(), "from def2");
    assert_eq!(first.index, 1);
}

#[test]
fn test_deferred_list_dont_consume_errors() {
    let d1 = Deferred::<()>::new();
    let dl = DeferredList::new([d1.clone()]).build();
    let error_trap = Rc::new(RefCell::new(Vec::new()));
    let t = error_trap.clone();
    let _rest = d1.clone().add_errback(move |f| {
        t.borrow_mut().push(f.error_message());
        Ok(())
    });
    d1.errback(GenericError("Bang")).unwrap();
    assert_eq!(*error_trap.borrow(), ["Bang"]);
    let results = success_result_of(&dl);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].as_ref().unwrap_err().error_message(), "Bang");
}

#[test]
fn test_deferred_list_consume_errors() {
    let d1 = Deferred::<()>::new();
    let dl = DeferredList::new([d1.clone()]).consume_errors(true).build();
    let error_trap = Rc::new(RefCell::new(Vec::new()));
    let t = error_trap.clone();
    let _rest = d1.clone().add_errback(move |f| {
        t.borrow_mut().push(f.error_message());
        Ok(())
    });
    d1.errback(GenericError("Bang")).unwrap();
    assert!(error_trap.borrow().is_empty());
    let results = success_result_of(&dl);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].as_ref().unwrap_err().error_message(), "Bang");
}

#[test]
fn test_deferred_list_fire_on_one_error_with_already_fired_deferreds() {
    let (d1, d2) = (Deferred::<()>::new(), Deferred::<()>::new());
    d1.errback(GenericError("Bang")).unwrap();
    let dl = DeferredList::new([d1.clone(), d2.clone()])
        .fire_on_one_errback(true)
        .build();
    // The list failed while it was built.
    assert_eq!(first_error(&failure_result_of(&dl)).index, 0);
    let _ = failure_result_of(&d1); // swallow the error
}

#[test]
fn test_deferred_list_with_already_fired_deferreds() {
    let (d1, d2) = (Deferred::<i32>::new(), Deferred::new());
    d1.errback(GenericError("Bang")).unwrap();
    d2.callback(2).unwrap();
    let dl = DeferredList::new([d1.clone(), d2.clone()]).build();
    let results = success_result_of(&dl);
    assert_eq!(results.len(), 2);
    assert!(results[0].is_err());
    assert_eq!(results[1].as_ref().ok(), Some(&2));
    let _ = failure_result_of(&d1); // swallow the error
}

#[test]
fn test_cancel_deferred_list() {
    let (one, two) = (Deferred::<()>::new(), Deferred::<()>::new());
    let dl = DeferredList::new([one.clone(), two.clone()]).build();
    dl.cancel();
    assert!(failure_result_of(&one).is::<CancelledError>());
    assert!(failure_result_of(&two).is::<CancelledError>());
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
    let two = Deferred::new();
    let dl = DeferredList::new([one.clone(), two.clone()]).build();
    dl.cancel();
    assert!(failure_result_of(&two).is::<CancelledError>());
    let result = success_result_of(&dl);
    assert_eq!(result[0].as_ref().ok(), Some(&"Callback Result"));
    assert!(result[1].as_ref().unwrap_err().is::<CancelledError>());
}

#[test]
fn test_cancel_deferred_list_with_fire_on_one_callback() {
    let (one, two) = (Deferred::<()>::new(), Deferred::<()>::new());
    let dl = DeferredList::new([one.clone(), two.clone()]).fire_on_one_callback();
    dl.cancel();
    assert!(failure_result_of(&one).is::<CancelledError>());
    assert!(failure_result_of(&two).is::<CancelledError>());
    // No input succeeded: the list fires with every result, as Twisted's does.
    match success_result_of(&dl) {
        FireOnOneResult::AllDone(results) => assert_eq!(results.len(), 2),
        other => panic!("expected AllDone, got {other:?}"),
    }
}

#[test]
fn test_cancel_deferred_list_with_fire_on_one_callback_and_deferred_callback() {
    let one = fake_callback_canceller();
    let two = Deferred::new();
    let dl = DeferredList::new([one.clone(), two.clone()]).fire_on_one_callback();
    dl.cancel();
    assert!(failure_result_of(&two).is::<CancelledError>());
    match success_result_of(&dl) {
        FireOnOneResult::Success { value, index } => {
            assert_eq!((value, index), ("Callback Result", 0))
        }
        other => panic!("expected Success, got {other:?}"),
    }
}

#[test]
fn test_cancel_deferred_list_with_fire_on_one_errback() {
    let (one, two) = (Deferred::<()>::new(), Deferred::<()>::new());
    let dl = DeferredList::new([one.clone(), two.clone()])
        .fire_on_one_errback(true)
        .build();
    dl.cancel();
    assert!(failure_result_of(&one).is::<CancelledError>());
    assert!(failure_result_of(&two).is::<CancelledError>());
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
    let (one, two) = (Deferred::<()>::new(), Deferred::<()>::new());
    let mut argument_list = vec![one.clone(), two.clone()];
    let dl = DeferredList::new(argument_list.clone()).build();
    let three = Deferred::<()>::new();
    argument_list.push(three.clone());
    dl.cancel();
    assert!(failure_result_of(&one).is::<CancelledError>());
    assert!(failure_result_of(&two).is::<CancelledError>());
    assert_no_result(&three);
}

#[test]
fn test_cancel_deferred_list_with_exception() {
    logs::capture();
    let one = Deferred::<()>::with_canceller(|_| panic!("test"));
    let two = Deferred::<()>::new();
    let dl = DeferredList::new([one.clone(), two.clone()]).build();
    dl.cancel();
    assert!(failure_result_of(&two).is::<CancelledError>());
    // The panicking canceller is logged; its Deferred still fails with CancelledError.
    let errors = logs::errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("test"), "{errors:?}");
    assert!(failure_result_of(&one).is::<CancelledError>());
    drop(dl);
}

#[test]
fn test_cancel_fired_on_one_callback_deferred_list() {
    let (one, two) = (Deferred::<()>::new(), Deferred::<()>::new());
    let dl = DeferredList::new([one.clone(), two.clone()]).fire_on_one_callback();
    one.callback(()).unwrap();
    dl.cancel();
    assert_no_result(&two);
}

#[test]
fn test_cancel_fired_on_one_errback_deferred_list() {
    let (one, two) = (Deferred::<()>::new(), Deferred::<()>::new());
    let dl = DeferredList::new([one.clone(), two.clone()])
        .fire_on_one_errback(true)
        .build();
    one.errback(GenericError("test")).unwrap();
    dl.cancel();
    assert_no_result(&two);
    assert!(failure_result_of(&one).is::<GenericError>());
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
    let (a, b) = (Deferred::<&str>::new(), Deferred::new());
    let dl = DeferredList::new([a.clone(), b.clone()]).fire_on_one_callback();
    a.callback("A").unwrap();
    // A late result neither fires the list again nor surfaces an AlreadyCalledError: b's
    // chain just continues with its value.
    assert!(b.callback("B").is_ok());
    assert_eq!(success_result_of(&b), "B");
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
    let (a, b) = (Deferred::<()>::new(), Deferred::<()>::new());
    let dl = DeferredList::new([a.clone(), b.clone()])
        .fire_on_one_errback(true)
        .build();
    a.errback(GenericError("first")).unwrap();
    assert!(b.errback(GenericError("second")).is_ok());
    assert_eq!(first_error(&failure_result_of(&dl)).index, 0);
    assert_eq!(failure_result_of(&b).error_message(), "second");
    let _ = failure_result_of(&a);
}

#[test]
fn deferred_list_fire_on_one_callback_with_no_success_fires_all_results() {
    let (a, b) = (Deferred::<u8>::new(), Deferred::<u8>::new());
    let dl = DeferredList::new([a.clone(), b.clone()])
        .consume_errors(true)
        .fire_on_one_callback();
    b.errback(GenericError("b")).unwrap();
    assert_no_result(&dl);
    a.errback(GenericError("a")).unwrap();
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
    let d = Deferred::<i32>::new();
    let before = d.clone().add_callback(|x| x * 10);
    let dl = DeferredList::new([before.clone()]).build();
    let after = before.add_callback(|x| x + 1);
    d.callback(4).unwrap();
    // The list saw the result of the callbacks added before it; the chain went on with it.
    assert_eq!(success_result_of(&dl)[0].as_ref().ok(), Some(&40));
    assert_eq!(success_result_of(&after), 41);
}

#[test]
fn deferred_list_unconsumed_failure_is_still_reported_unhandled() {
    logs::capture();
    let d = Deferred::<()>::new();
    let dl = DeferredList::new([d.clone()]).build();
    d.errback(GenericError("lost")).unwrap();
    assert!(success_result_of(&dl)[0].is_err());
    drop((d, dl));
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
    let d = Deferred::<u32>::new();
    let dl = DeferredList::new([d.clone()]).consume_errors(true).build();
    d.errback(GenericError("consumed")).unwrap();
    assert!(success_result_of(&dl)[0].is_err());
    drop((d, dl));
    assert_eq!(logs::errors(), Vec::<String>::new());
}

#[test]
fn deferred_list_consumed_failure_continues_with_unit() {
    // Twisted continues a consumed input with None. A `Deferred<()>` sees `()`; a callback
    // added through a handle of another type gets a ChainTypeError, as a Python callback
    // would get None where it expected a value.
    let unit = Deferred::<()>::new();
    let typed = Deferred::<u32>::new();
    let _dl = DeferredList::new([unit.clone()])
        .consume_errors(true)
        .build();
    let _dl2 = DeferredList::new([typed.clone()])
        .consume_errors(true)
        .build();
    unit.errback(GenericError("x")).unwrap();
    typed.errback(GenericError("y")).unwrap();
    success_result_of(&unit);
    let f = failure_result_of(&typed.add_callback(|n| n + 1));
    assert!(f.is::<ChainTypeError>());
}

#[test]
fn deferred_list_success_is_handed_on_with_consume_errors() {
    let d = Deferred::<String>::new();
    let dl = DeferredList::new([d.clone()]).consume_errors(true).build();
    d.callback("kept".to_string()).unwrap();
    assert_eq!(success_result_of(&d), "kept");
    assert_eq!(success_result_of(&dl)[0].as_ref().ok().unwrap(), "kept");
}

#[test]
fn deferred_list_cancel_leaves_it_cancelled_if_inputs_do_not_settle() {
    // A paused input that already fired ignores cancel(); the list then fails with
    // CancelledError (Twisted's DeferredList.cancel would leave it waiting) and the input's
    // later result is ignored.
    let d = Deferred::<u8>::new();
    d.callback(1).unwrap();
    d.pause();
    let dl = DeferredList::new([d.clone()]).build();
    dl.cancel();
    assert!(failure_result_of(&dl).is::<CancelledError>());
    d.unpause();
    assert_eq!(success_result_of(&d), 1);
}

#[test]
fn deferred_list_callbacks_may_fire_other_inputs() {
    // Re-entrancy: the list's callback runs inside an input's firing and fires another one.
    let (a, b) = (Deferred::<u8>::new(), Deferred::<u8>::new());
    let first = DeferredList::new([a.clone()]).build();
    let second = DeferredList::new([b.clone()]).build();
    let b2 = b.clone();
    let _chain = first.add_callback(move |_| b2.callback(2).unwrap());
    a.callback(1).unwrap();
    assert_eq!(success_result_of(&second)[0].as_ref().ok(), Some(&2));
}

#[test]
fn deferred_list_frees_everything_once_fired() {
    // The cycle between the list and its inputs is broken when the list fires.
    let token = Rc::new(());
    let (a, b) = (Deferred::<Rc<()>>::new(), Deferred::<Rc<()>>::new());
    let gathered = gather_results([a.clone(), b.clone()]);
    let dl = DeferredList::new([a.clone(), b.clone()])
        .consume_errors(true)
        .build();
    a.callback(token.clone()).unwrap();
    b.errback(GenericError("b")).unwrap();
    let f = failure_result_of(&gathered);
    assert!(first_error(&f).sub_failure.is::<GenericError>());
    assert!(Rc::strong_count(&token) > 1);
    drop((a, b, dl, gathered));
    assert_eq!(Rc::strong_count(&token), 1);
}

#[test]
fn race_frees_everything_once_decided() {
    let token = Rc::new(());
    let (a, b) = (Deferred::<Rc<()>>::new(), Deferred::<Rc<()>>::new());
    let r = race([a.clone(), b.clone()]);
    b.callback(token.clone()).unwrap();
    assert!(a.called()); // cancelled
    drop((a, b, r));
    assert_eq!(Rc::strong_count(&token), 1);
}

#[test]
fn test_callback_order_preserved() {
    // DeferredTests.test_callbackOrderPreserved: a callback added to the outer Deferred after
    // a callback returned a Deferred waiting on gather_results runs after that chain.
    let results = Rc::new(RefCell::new(Vec::<String>::new()));
    let a = Deferred::<&str>::new();
    let outer = Deferred::<&str>::new();
    let (r, a2) = (results.clone(), a.clone());
    let outer_tail = outer
        .clone()
        .add_callback_deferred(move |result| {
            r.borrow_mut().push(format!("cb {result}"));
            let d = Deferred::<()>::new();
            let (r1, r2) = (r.clone(), r.clone());
            let returner = d
                .clone()
                .add_callback_deferred(move |()| {
                    r1.borrow_mut().push("firstCallback".into());
                    gather_results([a2])
                })
                .add_callback(move |v| r2.borrow_mut().push(format!("secondCallback {v:?}")));
            d.callback(()).unwrap();
            returner
        })
        .add_callback({
            let r = results.clone();
            move |()| r.borrow_mut().push("final".into())
        });
    outer.callback("outer").unwrap();
    assert_eq!(*results.borrow(), ["cb outer", "firstCallback"]);
    a.callback("withers").unwrap();
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
// gather_results (item 35)

#[test]
fn test_gather_results() {
    let d = gather_results([Deferred::succeed(1), Deferred::succeed(2)]);
    assert_eq!(success_result_of(&d), [1, 2]);

    let dl = [
        Deferred::succeed(1),
        Deferred::fail(ValueError(String::new())),
    ];
    let d = gather_results(dl.clone());
    assert!(failure_result_of(&d).is::<FirstError>());
    // Get rid of the error handed on to the input.
    let _ = failure_result_of(&dl[1]);
}

#[test]
fn test_gather_results_with_consume_errors() {
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct RuntimeError(&'static str);

    let dgood = Deferred::succeed(1);
    let dbad = Deferred::<i32>::fail(RuntimeError("oh noes"));
    let d = gather_results_consume_errors([dgood, dbad.clone()]);
    let unconsumed = Rc::new(Cell::new(0));
    let u = unconsumed.clone();
    let _rest = dbad.add_errback(move |f| {
        u.set(u.get() + 1);
        Err(f)
    });
    let gathered = failure_result_of(&d);
    assert_eq!(unconsumed.get(), 0);
    assert!(first_error(&gathered).sub_failure.is::<RuntimeError>());
}

#[test]
fn test_cancel_gather_results() {
    let (one, two) = (Deferred::<()>::new(), Deferred::<()>::new());
    let result = gather_results([one.clone(), two.clone()]);
    result.cancel();
    assert!(failure_result_of(&one).is::<CancelledError>());
    assert!(failure_result_of(&two).is::<CancelledError>());
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
// race (item 36). Twisted's hypothesis ranges (0..=3 Deferreds before and after the winner)
// are looped over exhaustively.

/// Twisted's `_setupRaceState`: Deferreds whose cancellers count their calls.
fn setup_race_state(n: usize) -> (Rc<RefCell<Vec<u32>>>, Vec<Deferred<u64>>) {
    let cancelled = Rc::new(RefCell::new(vec![0; n]));
    let ds = (0..n)
        .map(|i| {
            let c = cancelled.clone();
            Deferred::with_canceller(move |_: &Deferred<u64>| c.borrow_mut()[i] += 1)
        })
        .collect();
    (cancelled, ds)
}

#[test]
fn race_test_success() {
    for before in 0..=3 {
        for after in 0..=3 {
            let (cancelled, ds) = setup_race_state(before + 1 + after);
            let race_result = race(ds.clone());
            let expected = 0xdead_beef;
            ds[before].callback(expected).unwrap();
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
            let (cancelled, ds) = setup_race_state(before + 1 + after);
            let failure = Failure::msg("The test demands failures.");
            let race_result = race(ds.clone());
            for d in &ds {
                d.errback(failure.clone()).unwrap();
            }
            let actual = failure_result_of(&race_result);
            let group = actual.downcast_ref::<FailureGroup>().unwrap();
            assert_eq!(group.failures.len(), ds.len());
            assert!(group.failures.iter().all(|f| f.ptr_eq(&failure)));
            assert_eq!(*cancelled.borrow(), vec![0; ds.len()]);
        }
    }
}

#[test]
fn race_test_result_after_cancel() {
    for before in 0..=3 {
        for after in 0..=3 {
            logs::capture();
            let ds: Vec<Deferred<()>> = (0..before + 2 + after).map(|_| Deferred::new()).collect();
            let race_result = race(ds.clone());
            ds[before].callback(()).unwrap();
            // Cancelled without a canceller: this late firing is swallowed.
            ds[before + 1].callback(()).unwrap();
            success_result_of(&race_result);
            drop(ds);
            assert_eq!(logs::errors(), Vec::<String>::new());
        }
    }
}

#[test]
fn race_test_result_from_cancel() {
    let winner = Deferred::<u64>::new();
    let ds = [
        winner.clone(),
        Deferred::with_canceller(|d: &Deferred<u64>| d.callback(7).unwrap()),
    ];
    let expected = 42;
    let race_result = race(ds);
    winner.callback(expected).unwrap();
    assert_eq!(success_result_of(&race_result), (0, expected));
}

#[test]
fn race_test_cancel() {
    for n in 1..=3 {
        let (cancelled, ds) = setup_race_state(n);
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
// FirstError (item 37)

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
// Examples E13-E19 of twisted-semantics.md 1.18

#[test]
fn e13_deferred_list_results_in_input_order() {
    let (a, b) = (Deferred::<&str>::new(), Deferred::new());
    let log = Rc::new(RefCell::new(None));
    let l = log.clone();
    let _logged = DeferredList::new([a.clone(), b.clone()])
        .build()
        .add_callback(move |r| *l.borrow_mut() = Some(r));
    b.callback("B").unwrap();
    a.errback(ValueError(String::new())).unwrap();
    let r = log.borrow_mut().take().unwrap();
    assert!(r[0].as_ref().unwrap_err().is::<ValueError>());
    assert_eq!(r[1].as_ref().ok(), Some(&"B"));
    let _ = failure_result_of(&a);
}

#[test]
fn e14_gather_results_first_error() {
    let (a, b) = (Deferred::<u8>::new(), Deferred::<u8>::new());
    let log = Rc::new(RefCell::new(None));
    let l = log.clone();
    let _logged = gather_results([a.clone(), b.clone()]).add_errback(move |f| {
        *l.borrow_mut() = Some(f);
        Ok(vec![])
    });
    b.errback(KeyError("k".into())).unwrap();
    let f = log.borrow_mut().take().unwrap();
    let first = first_error(&f);
    assert_eq!(first.index, 1);
    assert!(first.sub_failure.is::<KeyError>());
    assert_no_result(&a);
    let _ = failure_result_of(&b);
}

#[test]
fn e15_gather_results_consume_errors() {
    let (a, b) = (Deferred::<()>::new(), Deferred::<()>::new());
    let d = gather_results_consume_errors([a.clone(), b.clone()]);
    b.errback(KeyError("k".into())).unwrap();
    let f = failure_result_of(&d);
    assert_eq!(
        format!("{:?}", first_error(&f)),
        "FirstError[#1, KeyError(\"k\")]"
    );
    let log = Rc::new(RefCell::new(None));
    let l = log.clone();
    let _logged = b.add_both(move |r| {
        *l.borrow_mut() = Some(r.is_ok());
        Ok(())
    });
    assert_eq!(*log.borrow(), Some(true)); // b's later callback sees () (Twisted: None)
}

#[test]
fn e16_fire_on_one_callback() {
    let (a, b) = (Deferred::<&str>::new(), Deferred::new());
    let dl = DeferredList::new([a.clone(), b.clone()]).fire_on_one_callback();
    b.callback("B").unwrap();
    a.callback("A").unwrap();
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
    let a = Deferred::with_canceller(move |_: &Deferred<&str>| l.borrow_mut().push("a cancelled"));
    let b = Deferred::new();
    let r = race([a.clone(), b.clone()]);
    b.callback("B").unwrap();
    assert_eq!(*log.borrow(), ["a cancelled"]);
    assert_eq!(success_result_of(&r), (1, "B"));
}

#[test]
fn e19_race_failure_group_sorted_by_index() {
    let (a, b) = (Deferred::<()>::new(), Deferred::<()>::new());
    let r = race([a.clone(), b.clone()]);
    b.errback(KeyError(String::new())).unwrap();
    a.errback(ValueError(String::new())).unwrap();
    let f = failure_result_of(&r);
    let group = f.downcast_ref::<FailureGroup>().unwrap();
    assert_eq!(group.failures.len(), 2);
    assert!(group.failures[0].is::<ValueError>());
    assert!(group.failures[1].is::<KeyError>());
}

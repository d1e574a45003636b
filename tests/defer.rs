//! Twisted's `test_defer.py` behaviours (the Deferred core, cancellation, logging of unhandled
//! failures, awaiting), ported.
//!
//! Each test is named after the Twisted test it comes from and asserts the same observable
//! result. Not ported, because Rust's types make them impossible or meaningless:
//! - `test_errbackWithNoArgs`: there is no "currently handled exception" to build a Failure from;
//!   `errback` always takes the error (the debug-mode backtrace is tested instead).
//! - callbacks added to an inner Deferred *after* it was chained: the inner is moved into the
//!   chain, so only a clone can do it, and then it receives `()` (tested with `Deferred<()>`).
//! - `EnsureDeferredTests`: `maybe_deferred` is typed, so "not a Deferred or coroutine" cannot be
//!   passed; passing a Deferred through unchanged is tested.
//! - `CoroutineContextVarsTests`: Rust has no context variables.
//! - coroutine/`fromFuture` bridges need the reactor to run futures (`reactor.spawn`), built with
//!   the reactor; awaiting a Deferred (`asFuture`) is tested here.

mod util;

use std::cell::{Cell, RefCell};
use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use twistor::defer::{
    AlreadyCalledError, CancelledError, CircularChainError, execute, maybe_deferred, set_debugging,
};
use twistor::failure::PanicError;
use twistor::testing::{assert_no_result, failure_result_of, success_result_of};
use twistor::{Deferred, Failure};
use util::{Log, capture_logs, captured_errors};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct GenericError(&'static str);

/// A chain handle that callbacks can reach: Twisted's callbacks close over `d` itself to add
/// callbacks to it; a twistor callback takes the handle out of a slot and puts the extended
/// chain back.
type Slot<T> = Rc<RefCell<Option<Deferred<T>>>>;

fn take<T>(slot: &Slot<T>) -> Deferred<T> {
    slot.borrow_mut()
        .take()
        .expect("the chain handle is in its slot")
}

fn put<T>(slot: &Slot<T>, d: Deferred<T>) {
    *slot.borrow_mut() = Some(d);
}

#[derive(Debug, thiserror::Error)]
#[error("division by zero")]
struct ZeroDivisionError;

#[derive(Debug, thiserror::Error)]
#[error("value error")]
struct ValueError;

#[derive(Debug, thiserror::Error)]
#[error("key error: {0}")]
struct KeyError(&'static str);

// ---- Deferred core ------------------------------------------------------------------------

#[test]
fn test_callback_with_args() {
    let log = Log::new();
    let l = log.clone();
    let f = move |r: &str, a: &str, k: &str| l.push(format!("{r},{a},{k}"));
    let (d, fire_d) = Deferred::new();
    let _d = d.add_callback(move |r| f(r, "a", "v"));
    fire_d.callback("r").unwrap();
    assert_eq!(log.get(), ["r,a,v"]);
}

#[test]
fn test_two_callbacks() {
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    let (d, fire_d) = Deferred::new();
    let _d = d
        .add_callback(move |x: i32| {
            l1.push(x);
            x + 1
        })
        .add_callback(move |x| l2.push(x));
    fire_d.callback(1).unwrap();
    assert_eq!(log.get(), [1, 2]);
}

#[test]
fn test_add_callbacks_none_errback() {
    // `add_callback_try` is Twisted's `addCallbacks(cb, None)`: the failure passes unchanged.
    let original = Failure::new(GenericError("x"));
    let seen = Rc::new(RefCell::new(None));
    let s = seen.clone();
    let (d, fire_d) = Deferred::<i32>::new();
    let _d = d.add_callback_try(|x| Ok(x + 1)).add_errback(move |f| {
        *s.borrow_mut() = Some(f);
        Ok(0)
    });
    fire_d.errback(original.clone()).unwrap();
    assert!(seen.borrow().as_ref().unwrap().ptr_eq(&original));
}

#[test]
fn test_immediate_success() {
    let log = Log::new();
    let l = log.clone();
    let _ = Deferred::succeed("success").add_callback(move |s| l.push(s));
    assert_eq!(log.get(), ["success"]);
}

#[test]
fn test_immediate_failure() {
    let log = Log::new();
    let l = log.clone();
    let _ = Deferred::<()>::fail(GenericError("fail")).add_errback(move |f| {
        l.push(f.error_message());
        Ok(())
    });
    assert_eq!(log.get(), ["fail"]);
}

#[test]
fn test_paused_failure() {
    let log = Log::new();
    let l = log.clone();
    let d = Deferred::<()>::fail(GenericError("fail"));
    d.pause();
    let d = d.add_errback(move |f| {
        l.push(f.error_message());
        Ok(())
    });
    assert!(log.is_empty());
    d.unpause();
    assert_eq!(log.get(), ["fail"]);
}

#[test]
fn test_callback_errors() {
    for raise in [true, false] {
        let log = Log::new();
        let l = log.clone();
        let (d, fire_d) = Deferred::<i32>::new();
        let _d = d
            .add_callback_try(move |_| {
                if raise {
                    panic!("division by zero");
                }
                Err::<i32, _>(ZeroDivisionError.into())
            })
            .add_errback(move |f| {
                l.push(f.is::<ZeroDivisionError>() || f.is::<PanicError>());
                Ok(0)
            });
        fire_d.callback(1).unwrap();
        assert_eq!(log.get(), [true]);
    }
}

#[test]
fn test_callback_returns_deferred() {
    let log = Log::new();
    let l = log.clone();
    let (d1, fire_d1) = Deferred::<i32>::new();
    let (d2, fire_d2) = Deferred::<i32>::new();
    d2.pause();
    let d2c = d2.cancel_handle();
    let _d1 = d1
        .add_callback_deferred(move |_| d2)
        .add_callback(move |x| l.push(x));
    fire_d1.callback(1).unwrap();
    assert!(log.is_empty());
    fire_d2.callback(2).unwrap();
    assert!(log.is_empty(), "d2 is paused");
    d2c.unpause();
    assert_eq!(log.get(), [2]);
}

#[test]
fn test_errback_returns_deferred() {
    let (d1, fire_d1) = Deferred::<&str>::new();
    let (d2, fire_d2) = Deferred::<&str>::new();
    let out = d1.add_errback_deferred(move |_| d2);
    fire_d1.errback(GenericError("x")).unwrap();
    assert_no_result(&out);
    fire_d2.callback("result").unwrap();
    assert_eq!(success_result_of(&out), "result");
}

#[test]
fn test_chained_paused_deferred_with_result() {
    let expected = "result";
    let (paused, fire_paused) = Deferred::new();
    fire_paused.callback(expected).unwrap();
    paused.pause();
    let p = paused.cancel_handle();
    let (chained, fire_chained) = Deferred::<()>::new();
    let out = chained.add_callback_deferred(move |_| paused);
    fire_chained.callback(()).unwrap();
    assert_no_result(&out);
    p.unpause();
    assert_eq!(success_result_of(&out), expected);
}

#[test]
fn test_paused_deferred_chained() {
    // Twisted adds a callback to `second` after it was chained; here `second`'s chain handle
    // went to `first`'s callback, so the test watches `second` through its result instead.
    let (first, fire_first) = Deferred::<()>::new();
    let (second, fire_second) = Deferred::<()>::new();
    let chained = first.add_callback_deferred(move |_| second);
    fire_first.callback(()).unwrap();
    chained.pause();
    fire_second.callback(()).unwrap();
    assert!(fire_second.called());
    chained.unpause();
    success_result_of(&chained);
}

#[test]
fn test_synchronous_implicit_chain() {
    let log = Log::new();
    let l = log.clone();
    let first = Deferred::succeed(());
    let _ = Deferred::succeed(())
        .add_callback_deferred(move |_| first)
        .add_callback(move |r| l.push(r));
    assert_eq!(log.get(), [()]);
}

#[test]
fn test_asynchronous_implicit_chain() {
    let (first, fire_first) = Deferred::<String>::new();
    let (second, fire_second) = Deferred::<()>::new();
    let out = second.add_callback_deferred(move |_| first);
    fire_second.callback(()).unwrap();
    assert_no_result(&out);
    fire_first.callback("R".into()).unwrap();
    assert_eq!(success_result_of(&out), "R");
}

#[test]
fn test_synchronous_implicit_error_chain() {
    capture_logs();
    let first = Deferred::<()>::fail(ValueError);
    let second = Deferred::succeed(()).add_callback_deferred(move |_| first);
    assert!(failure_result_of(&second).is::<ValueError>());
    drop(second);
    assert!(
        captured_errors().is_empty(),
        "nothing logged: the failure moved down the chain"
    );
}

#[test]
fn test_asynchronous_implicit_error_chain() {
    capture_logs();
    let (first, fire_first) = Deferred::<()>::new();
    let second = Deferred::succeed(()).add_callback_deferred(move |_| first);
    fire_first.errback(ValueError).unwrap();
    assert!(failure_result_of(&second).is::<ValueError>());
    drop((fire_first, second));
    assert!(captured_errors().is_empty());
}

#[test]
fn test_double_asynchronous_implicit_chaining() {
    let (first, fire_first) = Deferred::<i32>::new();
    let (second, fire_second) = Deferred::<()>::new();
    let (third, fire_third) = Deferred::<()>::new();
    let second_result = second.add_callback_deferred(move |_| first);
    let out = third.add_callback_deferred(move |_| second_result);
    fire_second.callback(()).unwrap();
    fire_third.callback(()).unwrap();
    assert_no_result(&out);
    fire_first.callback(7).unwrap();
    assert_eq!(success_result_of(&out), 7);
}

#[test]
fn test_inner_callbacks_preserved() {
    let log = Log::new();
    let failures = Log::new();
    let (inner, fire_inner) = Deferred::<String>::new();
    let (l1, l2, l3, l4) = (log.clone(), log.clone(), log.clone(), log.clone());
    // The callback reaches the inner's chain handle through a slot (Twisted's closure over it).
    let slot: Slot<String> = Rc::default();
    let inner_c = slot.clone();
    let (outer, fire_outer) = Deferred::<&str>::new();
    let _outer = outer
        .add_callback_deferred(move |r| {
            l1.push(format!("start-of-cb {r}"));
            let d = take(&inner_c)
                .add_callback(move |x| {
                    l2.push("firstCallback".to_string());
                    x
                })
                .add_callback(move |x| {
                    l3.push(format!("secondCallback {x}"));
                    x.repeat(2)
                });
            fire_inner.callback("orange".into()).unwrap();
            d
        })
        .add_callback(move |x| l4.push(x));
    let fl = failures.clone();
    put(
        &slot,
        inner.add_errback(move |f| {
            fl.push(f.error_message());
            Err(f)
        }),
    );
    fire_outer.callback("outer").unwrap();
    assert_eq!(
        log.get(),
        [
            "start-of-cb outer",
            "firstCallback",
            "secondCallback orange",
            "orangeorange"
        ]
    );
    assert!(failures.is_empty());
}

#[test]
fn test_callback_order_preserved() {
    let log = Log::new();
    let (inner, fire_inner) = Deferred::<String>::new();
    let (l1, l2, l3, l4) = (log.clone(), log.clone(), log.clone(), log.clone());
    let (outer, fire_outer) = Deferred::<&str>::new();
    let _outer = outer
        .add_callback_deferred(move |r| {
            l1.push(format!("cb {r}"));
            inner
                .add_callback(move |x| {
                    l2.push("firstCallback".to_string());
                    x
                })
                .add_callback(move |x| {
                    l3.push(format!("secondCallback {x}"));
                    x.repeat(2)
                })
        })
        .add_callback(move |x| l4.push(format!("final {x}")));
    fire_outer.callback("outer").unwrap();
    assert_eq!(log.get(), ["cb outer"]);
    fire_inner.callback("orange".into()).unwrap();
    assert_eq!(
        log.get(),
        [
            "cb outer",
            "firstCallback",
            "secondCallback orange",
            "final orangeorange"
        ]
    );
}

#[test]
fn test_reentrant_run_callbacks() {
    let log = Log::new();
    let (d, fire_d) = Deferred::<()>::new();
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let slot: Slot<()> = Rc::default();
    let dc = slot.clone();
    let d = d
        .add_callback(move |_| {
            l1.push(1);
            put(&dc, take(&dc).add_callback(move |_| l3.push(3)));
        })
        .add_callback(move |_| l2.push(2));
    put(&slot, d);
    fire_d.callback(()).unwrap();
    assert_eq!(log.get(), [1, 2, 3]);
}

#[test]
fn test_non_reentrant_callbacks() {
    let log = Log::new();
    let (d, fire_d) = Deferred::<()>::new();
    let (l1, l2) = (log.clone(), log.clone());
    let slot: Slot<()> = Rc::default();
    let dc = slot.clone();
    let d = d.add_callback(move |_| {
        put(&dc, take(&dc).add_callback(move |_| l2.push("inner")));
        // The callback added above has not run yet.
        l1.push(if l1.is_empty() {
            "not yet"
        } else {
            "already ran"
        });
    });
    put(&slot, d);
    fire_d.callback(()).unwrap();
    assert_eq!(log.get(), ["not yet", "inner"]);
}

#[test]
fn test_reentrant_run_callbacks_with_failure() {
    let (d, fire_d) = Deferred::<()>::new();
    let slot: Slot<()> = Rc::default();
    let dc = slot.clone();
    let out = d.add_callback(move |_| {
        put(
            &dc,
            take(&dc).add_callback_try(|_| Err::<(), _>(Failure::new(ZeroDivisionError))),
        );
    });
    put(&slot, out);
    fire_d.callback(()).unwrap();
    assert!(failure_result_of(&take(&slot)).is::<ZeroDivisionError>());
}

/// A chain of a million nested Deferreds: each one's callback returns the next, and firing
/// the last one carries its result up through all of them without growing the call stack.
#[test]
fn test_bounded_stack_depth_nested_million() {
    const N: usize = 1_000_000;
    let (mut ds, fires): (Vec<Deferred<u64>>, Vec<_>) = (0..=N).map(|_| Deferred::new()).unzip();
    let result = Rc::new(Cell::new(0u64));
    let r = result.clone();
    // Built from the end: each chain returns the (extended) next one.
    let mut next = ds.pop().expect("N + 1 Deferreds");
    for d in ds.into_iter().rev() {
        let n = next;
        next = d.add_callback_deferred(move |_| n);
    }
    let top = next.cancel_handle();
    let tail = next.add_callback(move |v| r.set(v));
    // Fire each Deferred: each waits on the next one.
    for f in &fires[..N] {
        f.callback(0).unwrap();
    }
    assert_eq!(top.paused(), 1);
    fires[N].callback(42).unwrap();
    assert_eq!(result.get(), 42);
    drop(tail);
}

#[test]
fn test_bounded_stack_depth_million_callbacks() {
    let (mut tail, fire_d) = Deferred::<u64>::new();
    for _ in 0..1_000_000 {
        tail = tail.add_callback(|x| x + 1);
    }
    fire_d.callback(0).unwrap();
    assert_eq!(success_result_of(&tail), 1_000_000);
}

#[test]
fn test_bounded_stack_depth_drop_unfired_nested_million() {
    // Dropping a million waiting Deferreds must not recurse either.
    let (mut ds, fires): (Vec<Deferred<u64>>, Vec<_>) =
        (0..=1_000_000).map(|_| Deferred::new()).unzip();
    let mut next = ds.pop().expect("a last Deferred");
    for d in ds.into_iter().rev() {
        let n = next;
        next = d.add_callback_deferred(move |_| n);
    }
    for f in &fires[..1_000_000] {
        f.callback(0).unwrap();
    }
    drop(next);
    drop(fires);
}

#[test]
fn test_chain_deferred_records_explicit_chain() {
    let (a, fire_a) = Deferred::<()>::new();
    let (b, _fire_b) = Deferred::<()>::new();
    let bc = b.cancel_handle();
    let _ = b.chain_deferred(&fire_a);
    assert!(a.is_chained_to(&bc));
}

#[test]
fn test_explicit_chain_cleared_when_resolved() {
    let (a, fire_a) = Deferred::<()>::new();
    let (b, fire_b) = Deferred::<()>::new();
    let _ = b.chain_deferred(&fire_a);
    fire_b.callback(()).unwrap();
    assert!(!a.is_chained_to(&fire_b));
}

#[test]
fn test_circular_chain_warning() {
    // The callback returns its own chain (taken from a slot): the failure is put on the
    // chain, whose last handle is the callback's, so it is reported once the resolver goes.
    capture_logs();
    let (d, fire_d) = Deferred::<i32>::new();
    let slot: Slot<i32> = Rc::default();
    let s = slot.clone();
    let out = d.add_callback_deferred(move |_| take(&s));
    put(&slot, out);
    fire_d.callback(1).unwrap();
    drop(fire_d);
    let errors = captured_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("CircularChainError"), "{errors:?}");
    assert!(
        CircularChainError
            .to_string()
            .contains("Callback returned the Deferred it was attached to")
    );
}

#[test]
fn test_repr() {
    let (d, _fire_d) = Deferred::<i32>::new();
    let s = format!("{d:?}");
    assert!(s.starts_with("<Deferred at 0x") && s.ends_with('>'), "{s}");
}

#[test]
fn test_repr_with_result() {
    let d = Deferred::succeed("orange");
    assert!(format!("{d:?}").contains("current result: <&str>"));
}

#[test]
fn test_repr_with_chaining() {
    let (a, fire_a) = Deferred::<()>::new();
    let (b, _fire_b) = Deferred::<()>::new();
    let a = a.add_callback_deferred(move |_| b);
    fire_a.callback(()).unwrap();
    let s = format!("{a:?}");
    assert!(s.contains("waiting on Deferred at 0x"), "{s}");
}

#[test]
fn test_failure_backtrace_only_in_debug_mode() {
    let f = Failure::new(ValueError);
    assert!(f.backtrace().is_none());
    set_debugging(true);
    let f = Failure::new(ValueError);
    set_debugging(false);
    assert!(f.backtrace().is_some());
}

#[test]
fn test_maybe_deferred_sync() {
    let d = maybe_deferred(|| Ok::<_, Failure>(10));
    assert_eq!(success_result_of(&d), 10);
}

#[test]
fn test_maybe_deferred_sync_exception() {
    let d = maybe_deferred(|| -> Result<i32, Failure> { panic!("oops") });
    assert_eq!(
        failure_result_of(&d)
            .downcast_ref::<PanicError>()
            .unwrap()
            .message,
        "oops"
    );
}

#[test]
fn test_maybe_deferred_sync_failure() {
    let d = maybe_deferred(|| Err::<i32, _>(Failure::new(KeyError("k"))));
    assert!(failure_result_of(&d).is::<KeyError>());
}

#[test]
fn test_maybe_deferred_async() {
    let (d, fire_d) = Deferred::<i32>::new();
    let dc = d.cancel_handle();
    let r = maybe_deferred(move || d);
    assert!(r.ptr_eq(&dc));
    fire_d.callback(3).unwrap();
    assert_eq!(success_result_of(&r), 3);
}

#[test]
fn test_execute() {
    assert_eq!(success_result_of(&execute(|| "4".parse::<i32>())), 4);
    assert!(failure_result_of(&execute(|| "x".parse::<i32>())).is::<std::num::ParseIntError>());
}

#[test]
fn test_already_called_cc() {
    let (_d, fire_d) = Deferred::new();
    fire_d.callback(1).unwrap();
    assert!(fire_d.callback(2).is_err());
}

#[test]
fn test_already_called_ce() {
    let (d, fire_d) = Deferred::new();
    fire_d.callback(1).unwrap();
    assert!(fire_d.errback(ValueError).is_err());
    assert_eq!(success_result_of(&d), 1);
}

#[test]
fn test_already_called_ec() {
    let (d, fire_d) = Deferred::<i32>::new();
    fire_d.errback(ValueError).unwrap();
    assert!(fire_d.callback(2).is_err());
    assert!(failure_result_of(&d).is::<ValueError>());
}

#[test]
fn test_already_called_ee() {
    let (d, fire_d) = Deferred::<i32>::new();
    fire_d.errback(ValueError).unwrap();
    assert!(fire_d.errback(KeyError("k")).is_err());
    assert!(failure_result_of(&d).is::<ValueError>());
}

#[test]
fn test_already_called_debug_names_creator_and_invoker() {
    set_debugging(true);
    let (_d, fire_d) = Deferred::new();
    fire_d.callback(1).unwrap();
    let err: AlreadyCalledError = fire_d.callback(2).unwrap_err();
    set_debugging(false);
    let msg = err.to_string();
    assert_eq!(msg.matches(" C:").count(), 1, "{msg}");
    assert_eq!(msg.matches(" I:").count(), 1, "{msg}");
    assert!(msg.contains("tests/defer.rs"), "{msg}");
    // Off: no creator/invoker lines.
    let (_d, fire_d) = Deferred::new();
    fire_d.callback(1).unwrap();
    let msg = fire_d.callback(2).unwrap_err().to_string();
    assert!(!msg.contains(" C:") && !msg.contains(" I:"), "{msg}");
}

// ---- worked examples of callback chains (the `e1_`..`e12_` tests) ---------------------------

#[test]
fn e1_pair_semantics() {
    let log = Log::new();
    let (a, b, c, e) = (log.clone(), log.clone(), log.clone(), log.clone());
    let (d, fire_d) = Deferred::<i32>::new();
    let _d = d
        .add_callbacks(
            move |_| {
                a.push("cbA");
                Ok(None::<i32>)
            },
            move |f| {
                b.push(if f.is::<ValueError>() {
                    "ebA(ValueError)"
                } else {
                    "ebA(?)"
                });
                Ok(None)
            },
        )
        .add_callbacks(
            move |r| {
                c.push(if r.is_none() { "cbB(None)" } else { "cbB(?)" });
                Ok(())
            },
            move |_| {
                e.push("ebB");
                Ok(())
            },
        );
    fire_d.errback(ValueError).unwrap();
    assert_eq!(log.get(), ["ebA(ValueError)", "cbB(None)"]);
}

#[test]
fn e2_errback_recovers() {
    let log = Log::new();
    let l = log.clone();
    let (d, fire_d) = Deferred::<&str>::new();
    let _d = d
        .add_errback(|_| Ok("recovered"))
        .add_callback(move |r| l.push(r));
    fire_d.errback(KeyError("k")).unwrap();
    assert_eq!(log.get(), ["recovered"]);
}

#[test]
fn e3_error_skips_callbacks() {
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    let (d, fire_d) = Deferred::<i32>::new();
    let _d = d
        .add_callback_try(|_| Err::<i32, _>(Failure::new(ZeroDivisionError)))
        .add_callback(move |_| l1.push("skipped".to_string()))
        .add_errback(move |f| {
            l2.push(f.short_type_name().to_string());
            Ok(())
        });
    fire_d.callback(1).unwrap();
    assert_eq!(log.get(), ["ZeroDivisionError"]);
}

#[test]
fn e4_fire_with_failure_runs_errback() {
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    let (d, fire_d) = Deferred::<i32>::new();
    let _d = d.add_callbacks(
        move |_| {
            l1.push("cb");
            Ok(())
        },
        move |_| {
            l2.push("eb");
            Ok(())
        },
    );
    fire_d.fire(Err(Failure::new(ValueError))).unwrap();
    assert_eq!(log.get(), ["eb"]);
}

#[test]
fn e5_stolen_inner_holds_unit() {
    let log = Log::new();
    let l1 = log.clone();
    // The inner is left holding `()` (Twisted: None); its chain handle went to the callback,
    // so nothing can look at that `()` as if it were the inner's old type.
    let inner = Deferred::<&str>::succeed("I");
    let (outer, fire_outer) = Deferred::<&str>::new();
    let _outer = outer
        .add_callback_deferred(move |_| inner)
        .add_callback(move |r| l1.push(r));
    fire_outer.callback("O").unwrap();
    assert_eq!(log.get(), ["I"]);
}

#[test]
fn e6_waiting_outer_is_paused() {
    let log = Log::new();
    let l = log.clone();
    let (d1, fire_d1) = Deferred::<i32>::new();
    let (d2, fire_d2) = Deferred::<i32>::new();
    let d1 = d1
        .add_callback_deferred(move |_| d2)
        .add_callback(move |x| l.push(x));
    fire_d1.callback(1).unwrap();
    assert!(format!("{d1:?}").contains("waiting on Deferred at"));
    assert_eq!(d1.paused(), 1);
    assert!(log.is_empty());
    fire_d2.callback(2).unwrap();
    assert_eq!(log.get(), [2]);
    assert_eq!(d1.paused(), 0);
}

#[test]
fn e7_outer_continues_before_inner_late_callbacks() {
    // Twisted also adds a late callback to the inner after it was chained, which then sees
    // None; here the inner's chain handle went to the callback, so that cannot be written.
    let log = Log::new();
    let l2 = log.clone();
    let (first, fire_first) = Deferred::<&str>::new();
    let (second, fire_second) = Deferred::<()>::new();
    let second_tail = second.add_callback_deferred(move |_| first);
    fire_second.callback(()).unwrap();
    let _ = second_tail.add_callback(move |r| l2.push(r.to_string()));
    fire_first.callback("R").unwrap();
    assert_eq!(log.get(), ["R"]);
}

#[test]
fn e8_paused_inner_with_result() {
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    let (paused, fire_paused) = Deferred::<&str>::new();
    fire_paused.callback("P").unwrap();
    paused.pause();
    let p = paused.cancel_handle();
    let (ch, fire_ch) = Deferred::<()>::new();
    let tail = ch.add_callback_deferred(move |_| paused);
    fire_ch.callback(()).unwrap();
    let _ = tail.add_callback(move |r| l1.push(r));
    l2.push("before");
    p.unpause();
    assert_eq!(log.get(), ["before", "P"]);
}

#[test]
fn e9_cancel_swallows_one_late_firing() {
    let log = Log::new();
    let l = log.clone();
    let (d, fire_d) = Deferred::<&str>::new();
    let d = d.add_errback(move |f| {
        l.push(f.short_type_name());
        Ok("")
    });
    d.cancel();
    assert!(fire_d.callback("late").is_ok());
    assert!(fire_d.callback("again").is_err());
    assert_eq!(log.get(), ["CancelledError"]);
}

#[test]
fn e10_canceller_that_does_nothing() {
    let (d, fire_d) = Deferred::<i32>::with_canceller(|_| {});
    d.cancel();
    assert!(fire_d.callback(1).is_err());
    assert!(failure_result_of(&d).is::<CancelledError>());
}

#[test]
fn e11_cancel_forwards_to_inner() {
    let log = Log::new();
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let (inner, _fire_inner) = Deferred::<()>::with_canceller(move |_| l1.push("inner cancelled"));
    let (outer, fire_outer) = Deferred::<()>::with_canceller(move |_| l3.push("outer canceller"));
    let tail = outer.add_callback_deferred(move |_| inner);
    fire_outer.callback(()).unwrap();
    let tail = tail.add_errback(move |f| {
        l2.push(f.short_type_name());
        Ok(())
    });
    tail.cancel();
    assert_eq!(log.get(), ["inner cancelled", "CancelledError"]);
}

#[test]
fn e12_pause_before_callback() {
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    let (d, fire_d) = Deferred::<i32>::new();
    d.pause();
    let d = d.add_callback(move |x| l1.push(x.to_string()));
    fire_d.callback(7).unwrap();
    l2.push("after".into());
    d.unpause();
    assert_eq!(log.get(), ["after", "7"]);
}

#[test]
fn pause_is_counted() {
    let d = Deferred::succeed(1);
    d.pause();
    d.pause();
    d.unpause();
    assert_no_result(&d);
    d.unpause();
    assert_eq!(success_result_of(&d), 1);
}

// ---- Cancellation -------------------------------------------------------------------------

#[test]
fn test_no_canceller() {
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    let (d, _fire_d) = Deferred::<()>::new();
    let d = d.add_callbacks(
        move |_| {
            l1.push("callback");
            Ok(())
        },
        move |f| {
            l2.push(if f.is::<CancelledError>() {
                "cancelled"
            } else {
                "?"
            });
            Ok(())
        },
    );
    d.cancel();
    assert_eq!(log.get(), ["cancelled"]);
}

#[test]
fn test_raises_after_cancel_and_callback() {
    let (d, fire_d) = Deferred::<()>::new();
    d.cancel();
    assert!(fire_d.callback(()).is_ok());
    assert!(fire_d.callback(()).is_err());
    assert!(fire_d.errback(ValueError).is_err());
    assert!(failure_result_of(&d).is::<CancelledError>());
}

#[test]
fn test_raises_after_cancel_and_errback() {
    let (d, fire_d) = Deferred::<()>::new();
    d.cancel();
    assert!(fire_d.errback(ValueError).is_ok());
    assert!(fire_d.callback(()).is_err());
    assert!(failure_result_of(&d).is::<CancelledError>());
}

#[test]
fn test_no_canceller_multiple_cancel() {
    let (d, _fire_d) = Deferred::<()>::new();
    d.cancel();
    d.cancel();
    assert!(failure_result_of(&d).is::<CancelledError>());
}

#[test]
fn test_canceller_multiple_cancel() {
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let (d, _fire_d) = Deferred::<()>::with_canceller(move |_| c.set(c.get() + 1));
    d.cancel();
    d.cancel();
    assert_eq!(count.get(), 1);
    assert!(failure_result_of(&d).is::<CancelledError>());
}

#[test]
fn test_simple_canceller() {
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let (d, fire_d) = Deferred::<()>::with_canceller(move |_| c.set(true));
    d.cancel();
    assert!(called.get());
    assert!(fire_d.callback(()).is_err());
    assert!(failure_result_of(&d).is::<CancelledError>());
}

#[test]
fn test_cancel_after_callback() {
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let (d, fire_d) = Deferred::<&str>::with_canceller(move |_| c.set(true));
    fire_d.callback("biff!").unwrap();
    d.cancel();
    assert!(!called.get());
    assert_eq!(success_result_of(&d), "biff!");
}

#[test]
fn test_cancel_after_errback() {
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let (d, fire_d) = Deferred::<()>::with_canceller(move |_| c.set(true));
    fire_d.errback(GenericError("biff!")).unwrap();
    d.cancel();
    assert!(!called.get());
    assert!(failure_result_of(&d).is::<GenericError>());
}

#[test]
fn test_canceller_that_errbacks() {
    let (d, _fire_d) = Deferred::<()>::with_canceller(|d| {
        d.errback(GenericError("canceller")).unwrap();
    });
    d.cancel();
    assert!(failure_result_of(&d).is::<GenericError>());
}

#[test]
fn test_canceller_that_callbacks() {
    let (d, _fire_d) = Deferred::with_canceller(|d| d.callback("canceller").unwrap());
    d.cancel();
    assert_eq!(success_result_of(&d), "canceller");
}

#[test]
fn test_cancel_nested_deferred() {
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    let (b, _fire_b) = Deferred::<()>::with_canceller(move |_| l1.push("b cancelled"));
    let (a, fire_a) = Deferred::<()>::with_canceller(move |_| l2.push("a cancelled"));
    let tail = a.add_callback_deferred(move |_| b);
    fire_a.callback(()).unwrap();
    fire_a.cancel();
    assert_eq!(log.get(), ["b cancelled"]);
    assert!(failure_result_of(&tail).is::<CancelledError>());
}

#[test]
fn cancel_of_fired_paused_deferred_is_noop() {
    let d = Deferred::succeed(1);
    d.pause();
    d.cancel();
    d.unpause();
    assert_eq!(success_result_of(&d), 1);
}

// ---- Logging ------------------------------------------------------------------------------

#[test]
fn test_error_log() {
    capture_logs();
    {
        let (d, fire_d) = Deferred::<i32>::new();
        let _d = d.add_callback_try(|_| Err::<i32, _>(Failure::new(ZeroDivisionError)));
        fire_d.callback(1).unwrap();
        assert!(
            captured_errors().is_empty(),
            "not logged while a handle lives"
        );
    }
    let errors = captured_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("Unhandled error in Deferred:"));
    assert!(errors[0].contains("ZeroDivisionError"));
}

#[test]
fn test_error_log_handled_is_silent() {
    capture_logs();
    {
        let d = Deferred::<i32>::fail(ZeroDivisionError).add_errback(|_| Ok(0));
        assert_eq!(success_result_of(&d), 0);
    }
    assert!(captured_errors().is_empty());
}

#[test]
fn test_error_log_panic_in_callback() {
    capture_logs();
    {
        let _ = Deferred::succeed(1).add_callback(|_: i32| -> i32 { panic!("kaboom") });
    }
    let errors = captured_errors();
    // One for the panic itself, one for the failure left unhandled.
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("panic in Deferred callback"));
    assert!(errors[1].contains("kaboom"));
}

#[test]
fn test_chained_error_cleanup() {
    capture_logs();
    {
        let (d, fire_d) = Deferred::<()>::new();
        let outer = Deferred::succeed(())
            .add_callback_deferred(move |_| d)
            .add_errback(|_| Ok(()));
        fire_d.errback(ZeroDivisionError).unwrap();
        assert_eq!(success_result_of(&outer), ());
    }
    assert!(captured_errors().is_empty());
}

#[test]
fn test_error_cleared_by_chaining() {
    capture_logs();
    {
        let bad = Deferred::<()>::fail(ZeroDivisionError);
        let good = Deferred::succeed(())
            .add_callback_deferred(move |_| bad)
            .add_errback(|_| Ok(()));
        assert_eq!(success_result_of(&good), ());
    }
    assert!(captured_errors().is_empty());
}

#[test]
fn test_error_log_debug_info() {
    capture_logs();
    set_debugging(true);
    {
        let _ = Deferred::<()>::fail(ZeroDivisionError);
    }
    set_debugging(false);
    let errors = captured_errors();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("(debug: C: created at"), "{}", errors[0]);
    assert!(errors[0].contains("I: first fired at"), "{}", errors[0]);
}

// ---- awaiting Deferreds (asFuture) --------------------------------------------------------

fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

#[test]
fn test_as_future_success() {
    let (d, fire_d) = Deferred::new();
    let mut fut = pin!(d.into_future());
    assert!(poll_once(fut.as_mut()).is_pending());
    fire_d.callback(42).unwrap();
    assert!(matches!(poll_once(fut.as_mut()), Poll::Ready(Ok(42))));
}

#[test]
fn test_as_future_failure() {
    let (d, fire_d) = Deferred::<i32>::new();
    let mut fut = pin!(d.into_future());
    assert!(poll_once(fut.as_mut()).is_pending());
    fire_d.errback(ValueError).unwrap();
    match poll_once(fut.as_mut()) {
        Poll::Ready(Err(f)) => assert!(f.is::<ValueError>()),
        _ => panic!("expected failure"),
    }
}

#[test]
fn test_as_future_already_fired() {
    let mut fut = pin!(Deferred::succeed("x").into_future());
    assert!(matches!(poll_once(fut.as_mut()), Poll::Ready(Ok("x"))));
}

#[test]
fn test_as_future_cancel_on_drop() {
    let cancelled = Rc::new(Cell::new(false));
    let c = cancelled.clone();
    let (d, _fire_d) = Deferred::<i32>::with_canceller(move |_| c.set(true));
    {
        let mut fut = Box::pin(d.into_future());
        assert!(poll_once(fut.as_mut()).is_pending());
    }
    assert!(cancelled.get());
}

#[test]
fn test_as_future_wakes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Count(AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let count = Arc::new(Count(AtomicUsize::new(0)));
    let waker = Waker::from(count.clone());
    let (d, fire_d) = Deferred::<u8>::new();
    let mut fut = pin!(d.into_future());
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    fire_d.callback(1).unwrap();
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
}

/// `test_inlinecb::testStackUsage`: an async function awaiting many already-fired Deferreds
/// runs to completion without growing the stack.
#[test]
fn test_stack_usage_of_awaits() {
    let mut fut = pin!(async {
        let mut total = 0u64;
        for i in 0..100_000u64 {
            total += Deferred::succeed(i).await.unwrap();
        }
        total
    });
    match poll_once(fut.as_mut()) {
        Poll::Ready(t) => assert_eq!(t, (0..100_000u64).sum::<u64>()),
        Poll::Pending => panic!("all Deferreds were fired"),
    }
}

/// `test_cancelNestedDeferred` where nobody but the chain holds the inner Deferred: cancelling
/// the outer still reaches the inner's canceller (Twisted's outer holds its inner).
#[test]
fn test_cancel_nested_deferred_owned_only_by_chain() {
    let cancelled = Rc::new(Cell::new(false));
    let c = cancelled.clone();
    let outer = Deferred::succeed(())
        .add_callback_deferred(move |()| Deferred::<u8>::with_canceller(move |_| c.set(true)).0);
    outer.cancel();
    assert!(cancelled.get());
    assert!(failure_result_of(&outer).is::<CancelledError>());
}

/// A chain waiting on a Deferred that nobody can fire or cancel any more is freed, not leaked.
#[test]
fn abandoned_waiting_chain_is_freed() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let freed = Rc::new(Cell::new(false));
    let flag = Flag(freed.clone());
    {
        let (inner, fire_inner) = Deferred::<u8>::new();
        let outer = Deferred::succeed(())
            .add_callback_deferred(move |()| inner)
            .add_callback(move |x| {
                let _keep = &flag;
                x
            });
        assert_no_result(&outer);
        drop(fire_inner);
        drop(outer);
    }
    assert!(freed.get(), "the waiting chain was leaked");
}

/// The producer keeps the inner Deferred: firing it runs the outer's callbacks even though
/// nobody holds the outer any more.
#[test]
fn outer_callbacks_run_when_only_the_producer_remains() {
    let log = Log::new();
    let l = log.clone();
    let (inner, fire_inner) = Deferred::<u8>::new();
    let _ = Deferred::succeed(())
        .add_callback_deferred(move |()| inner)
        .add_callback(move |x| l.push(x));
    fire_inner.callback(9).unwrap();
    assert_eq!(log.get(), [9]);
}

// ---- no borrow held while user code runs ---------------------------------------------------

/// Firing a Deferred from inside `peek` (which shows "no result" then) works: the firing is
/// not lost and nothing panics (the state used to stay borrowed while `f` ran).
#[test]
fn peek_may_fire_the_deferred() {
    let (d, fire) = Deferred::<u8>::new();
    let fired = d.peek(|r| {
        assert!(r.is_none());
        fire.callback(5).is_ok()
    });
    assert!(fired);
    assert_eq!(success_result_of(&d), 5);
}

/// Unpausing from inside `peek` runs the pending callbacks once `peek` is done.
#[test]
fn peek_may_unpause_the_deferred() {
    let log = Log::new();
    let l = log.clone();
    let d = Deferred::succeed(1u8);
    d.pause();
    let control = d.cancel_handle();
    let d = d.add_callback(move |x| {
        l.push(x);
        x + 1
    });
    let seen = d.peek(|r| {
        control.unpause();
        // The callbacks wait for `peek` to finish: the value shown stays valid.
        r.and_then(|r| r.ok()).copied()
    });
    assert_eq!(seen, Some(1));
    assert_eq!(log.get(), [1]);
    assert_eq!(success_result_of(&d), 2);
}

/// `Debug` formats the failure outside the state's borrow: an error whose `Display` touches
/// the Deferred does not panic.
#[test]
fn debug_does_not_hold_a_borrow_while_formatting() {
    #[derive(Debug)]
    struct Touchy(twistor::defer::CancelHandle);
    impl std::fmt::Display for Touchy {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.pause();
            write!(f, "touchy")
        }
    }
    impl std::error::Error for Touchy {}

    let (d, fire) = Deferred::<()>::new();
    fire.errback(Touchy(d.cancel_handle())).unwrap();
    let shown = format!("{d:?}");
    assert!(shown.contains("touchy"), "{shown}");
    assert_eq!(d.paused(), 1);
    d.unpause();
    let _ = failure_result_of(&d);
}

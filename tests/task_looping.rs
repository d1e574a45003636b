//! `LoopingCall`: Twisted's `test_task.py::LoopTests` and `ReactorLoopTests`, ported to a
//! `Clock`, plus re-entrancy cases.
//!
//! `ReactorLoopTests` run on the real reactor in Twisted; here they run on a `Clock`, which is
//! what the time trait is for. Not ported: `test_reprFunction`/`test_reprMethod` (Rust closures
//! have no names; `Debug` shows the interval) and `test_deferredDeprecation`.
//!
//! Twisted's `ReactTests` are not here: `task::react` runs a main function on the reactor, so
//! they are ported with the reactor.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use twistor::task::{Clock, LoopingCall, LoopingCallError, LoopingOptions};
use twistor::testing::{assert_no_result, failure_result_of, success_result_of};
use twistor::{Deferred, Failure};
use util::Log;

#[derive(Debug, thiserror::Error)]
#[error("test exception: {0}")]
struct TestException(&'static str);

/// A `LoopingCall` handle the callable can reach (Twisted's tests close over `lc`).
type Slot = Rc<RefCell<Option<LoopingCall>>>;

fn slot() -> Slot {
    Rc::new(RefCell::new(None))
}

fn lc_of(s: &Slot) -> LoopingCall {
    s.borrow().clone().expect("LoopingCall set")
}

// ---- type inference: one impl per shape -----------------------------------------------------

#[test]
fn closures_need_no_annotations() {
    let clock = Clock::new();
    let _unit = LoopingCall::new(clock.clone(), || ());
    let _ok = LoopingCall::new(clock.clone(), || Ok(()));
    let _question_mark = LoopingCall::new(clock.clone(), || {
        let _n: i32 = "12".parse()?;
        Ok(())
    });
    let _deferred = LoopingCall::new(clock.clone(), move || Deferred::<()>::new().0);
    let _count_unit = LoopingCall::with_count(clock.clone(), |_n| ());
    let _count_ok = LoopingCall::with_count(clock.clone(), |n| {
        if n > 1 {
            return Err(Failure::msg("skipped"));
        }
        Ok(())
    });
}

// ---- LoopTests ----------------------------------------------------------------------------

/// testBasicFunction: interval 0.1, pump [0.05, 0.1, 0.1] -> 3 calls; stop fires the start
/// Deferred with the LoopingCall; nothing left scheduled.
#[test]
fn test_basic_function() {
    let clock = Clock::new();
    let calls = Log::new();
    let c = calls.clone();
    let lc = LoopingCall::new(clock.clone(), move || c.push(("a", "b", None::<&str>, "d")));
    let d = lc.start(0.1).unwrap();
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    let _ = d.add_callback(move |lc| *r.borrow_mut() = Some(lc));

    clock.pump(&[0.05, 0.1, 0.1]);
    assert_eq!(calls.len(), 3, "got {} iterations, not 3", calls.len());
    for call in calls.get() {
        assert_eq!(call, ("a", "b", None, "d"));
    }

    lc.stop().unwrap();
    assert!(result.borrow().as_ref().unwrap().ptr_eq(&lc));
    assert!(clock.get_delayed_calls().is_empty());
}

/// testDelayedStart: `now = false`, same pump -> 2 calls.
#[test]
fn test_delayed_start() {
    let clock = Clock::new();
    let calls = Log::new();
    let c = calls.clone();
    let lc = LoopingCall::new(clock.clone(), move || c.push(()));
    let d = lc.start_with(0.1, LoopingOptions { now: false }).unwrap();
    clock.pump(&[0.05, 0.1, 0.1]);
    assert_eq!(calls.len(), 2, "got {} iterations, not 2", calls.len());
    lc.stop().unwrap();
    assert!(success_result_of(&d).ptr_eq(&lc));
    assert!(clock.get_delayed_calls().is_empty());
}

/// testBadDelay: a negative interval is refused (Twisted: ValueError), never a panic.
#[test]
fn test_bad_delay() {
    let lc = LoopingCall::new(Clock::new(), || ());
    assert_eq!(
        lc.start(-1.0).err(),
        Some(LoopingCallError::BadInterval(-1.0))
    );
    assert!(matches!(
        lc.start(f64::NAN),
        Err(LoopingCallError::BadInterval(_))
    ));
    assert!(!lc.running());
    assert_eq!(
        LoopingCallError::BadInterval(-1.0).to_string(),
        "interval must be >= 0 (got -1)"
    );
}

fn stopping_test(delay: f64) {
    let clock = Clock::new();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let lc = LoopingCall::new(clock.clone(), move || r.set(true));
    let d = lc.start_with(delay, LoopingOptions { now: false }).unwrap();
    lc.stop().unwrap();
    assert!(!ran.get());
    assert!(clock.get_delayed_calls().is_empty());
    assert!(success_result_of(&d).ptr_eq(&lc));
    clock.advance(delay + 1.0);
    assert!(!ran.get());
}

/// testStopAtOnce: interval 0, stop before anything ran -> no calls, nothing scheduled.
#[test]
fn test_stop_at_once() {
    stopping_test(0.0);
}

/// testStoppingBeforeDelayedStart.
#[test]
fn test_stopping_before_delayed_start() {
    stopping_test(10.0);
}

/// test_reset: interval 2 started at 0, reset at 1 -> nothing at 2, the call at 3.
#[test]
fn test_reset() {
    let clock = Clock::new();
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    let lc = LoopingCall::new(clock.clone(), move || r.set(r.get() + 1));
    let _d = lc.start_with(2.0, LoopingOptions { now: false }).unwrap();
    clock.advance(1.0);
    lc.reset().unwrap();
    assert_eq!(lc.starttime(), Some(1.0));
    clock.advance(1.0);
    assert_eq!(ran.get(), 0);
    clock.advance(1.0);
    assert_eq!(ran.get(), 1);
    lc.stop().unwrap();
}

/// test_reactorTimeSkips: interval 0.5, advance 2 then 1 -> calls at [0, 2, 3].
#[test]
fn test_reactor_time_skips() {
    let clock = Clock::new();
    let times = Log::new();
    let (c, t) = (clock.clone(), times.clone());
    let lc = LoopingCall::new(clock.clone(), move || t.push(c.seconds()));
    let _d = lc.start(0.5).unwrap();
    assert_eq!(times.get(), [0.0]);
    clock.advance(2.0);
    assert_eq!(times.get(), [0.0, 2.0]);
    clock.advance(1.0);
    assert_eq!(times.get(), [0.0, 2.0, 3.0]);
    clock.advance(0.0);
    assert_eq!(times.get(), [0.0, 2.0, 3.0]);
    lc.stop().unwrap();
}

/// A late call runs once and the missed intervals are skipped: interval 1, now, advancing
/// 0.5, 0.5, 3.2, 0.8 -> calls at [0.0, 1.0, 4.2, 5.0]: the call due at 2.0 runs late once,
/// 3.0 and 4.0 are skipped.
#[test]
fn test_reactor_time_skips_late_call_runs_once() {
    let clock = Clock::new();
    let times = Log::new();
    let (c, t) = (clock.clone(), times.clone());
    let lc = LoopingCall::new(clock.clone(), move || t.push(c.seconds()));
    let _d = lc.start(1.0).unwrap();
    clock.pump(&[0.5, 0.5, 3.2, 0.8]);
    assert_eq!(times.get(), [0.0, 1.0, 4.2, 5.0]);
    lc.stop().unwrap();
}

/// test_reactorTimeCountSkips: withCount, interval 0.5 -> counts 1, 1, 3 at 0, 0.51, 2.02.
#[test]
fn test_reactor_time_count_skips() {
    let clock = Clock::new();
    let times = Log::new();
    let (c, t) = (clock.clone(), times.clone());
    let lc = LoopingCall::with_count(clock.clone(), move |n| t.push((c.seconds(), n)));
    const INTERVAL: f64 = 0.5;
    const REALISTIC_DELAY: f64 = 0.01;
    let _d = lc.start(INTERVAL).unwrap();
    assert_eq!(times.get(), [(0.0, 1)]);

    clock.advance(INTERVAL + REALISTIC_DELAY);
    assert_eq!(times.get(), [(0.0, 1), (INTERVAL + REALISTIC_DELAY, 1)]);

    clock.advance(3.0 * INTERVAL + REALISTIC_DELAY);
    let expected = [
        (0.0, 1),
        (INTERVAL + REALISTIC_DELAY, 1),
        (4.0 * INTERVAL + 2.0 * REALISTIC_DELAY, 3),
    ];
    assert_eq!(times.get(), expected);

    clock.advance(0.0);
    assert_eq!(times.get(), expected);
    lc.stop().unwrap();
}

/// `with_count` reports the skipped intervals: withCount, interval 1, now; advance 3.5 then
/// 0.5 -> [(0.0, 1), (3.5, 3), (4.0, 1)].
#[test]
fn test_with_count_skips_example() {
    let clock = Clock::new();
    let seen = Log::new();
    let (c, s) = (clock.clone(), seen.clone());
    let lc = LoopingCall::with_count(clock.clone(), move |n| s.push((c.seconds(), n)));
    let _d = lc.start(1.0).unwrap();
    clock.advance(3.5);
    clock.advance(0.5);
    assert_eq!(seen.get(), [(0.0, 1), (3.5, 3), (4.0, 1)]);
    lc.stop().unwrap();
}

/// test_countLengthyIntervalCounts: a call 1.75 intervals late still counts 1.
#[test]
fn test_count_lengthy_interval_counts() {
    let clock = Clock::new();
    let times = Log::new();
    let (c, t) = (clock.clone(), times.clone());
    let lc = LoopingCall::with_count(clock.clone(), move |n| t.push((c.seconds(), n)));
    const INTERVAL: f64 = 0.5;
    const REALISTIC_DELAY: f64 = 0.01;
    let _d = lc.start(INTERVAL).unwrap();
    assert_eq!(times.get().last(), Some(&(0.0, 1)));
    clock.advance(INTERVAL + REALISTIC_DELAY);
    assert_eq!(times.get().last(), Some(&(INTERVAL + REALISTIC_DELAY, 1)));
    clock.advance(INTERVAL * 1.75);
    assert_eq!(
        times.get().last(),
        Some(&(2.75 * INTERVAL + REALISTIC_DELAY, 1))
    );
    clock.advance(INTERVAL * 0.25);
    assert_eq!(
        times.get().last(),
        Some(&(3.0 * INTERVAL + REALISTIC_DELAY, 1))
    );
    assert_eq!(times.len(), 4);
    lc.stop().unwrap();
}

/// test_withCountFloatingPointBoundary: with interval 0.1 the count is never 0 and the counts
/// add up to the number of intervals.
#[test]
fn test_with_count_floating_point_boundary() {
    let clock = Clock::new();
    let acc = Log::new();
    let a = acc.clone();
    let lc = LoopingCall::with_count(clock.clone(), move |n| a.push(n));
    let count = 10;
    let timespan = 1.0;
    let interval = timespan / count as f64;
    let _d = lc
        .start_with(interval, LoopingOptions { now: false })
        .unwrap();
    for _ in 0..count {
        clock.advance(interval);
    }
    let epsilon = timespan - (0..count).map(|_| interval).sum::<f64>();
    clock.advance(epsilon);
    assert!(epsilon.abs() > 0.0, "{epsilon} should be greater than zero");
    assert!(clock.seconds() >= timespan);
    assert_eq!(acc.get().iter().sum::<u64>(), count);
    assert!(!acc.get().contains(&0));
    lc.stop().unwrap();
}

/// test_withCountIntervalZero: interval 0 -> the count is always 1.
#[test]
fn test_with_count_interval_zero() {
    let clock = Clock::new();
    let acc = Log::new();
    let s = slot();
    let (a, s2) = (acc.clone(), s.clone());
    let lc = LoopingCall::with_count(clock.clone(), move |n| {
        a.push(n);
        if a.len() > 4 {
            lc_of(&s2).stop().unwrap();
        }
    });
    *s.borrow_mut() = Some(lc.clone());
    let d = lc.start_with(0.0, LoopingOptions { now: false }).unwrap();
    clock.advance(0.0);
    assert!(success_result_of(&d).ptr_eq(&lc));
    assert_eq!(acc.get(), [1, 1, 1, 1, 1]);
    s.borrow_mut().take();
}

/// test_withCountIntervalZeroDelay: a pending Deferred blocks the loop; afterwards counts are 1.
#[test]
fn test_with_count_interval_zero_delay() {
    let clock = Clock::new();
    let (deferred, fire_deferred) = Deferred::<()>::new();
    let acc = Log::new();
    let s = slot();
    let (a, s2, mut d2) = (acc.clone(), s.clone(), Some(deferred));
    let lc = LoopingCall::with_count(clock.clone(), move |n| {
        a.push(n);
        if a.len() == 2
            && let Some(d) = d2.take()
        {
            return d;
        }
        if a.len() > 4 {
            lc_of(&s2).stop().unwrap();
        }
        Deferred::succeed(())
    });
    *s.borrow_mut() = Some(lc.clone());
    let _d = lc.start_with(0.0, LoopingOptions { now: false }).unwrap();
    clock.advance(0.0);
    assert_eq!(acc.get(), [1, 1]);
    clock.advance(2.0);
    assert_eq!(acc.get(), [1, 1]);
    fire_deferred.callback(()).unwrap();
    clock.advance(0.0);
    assert_eq!(acc.get(), [1, 1, 1, 1, 1]);
    assert!(!lc.running());
    s.borrow_mut().take();
}

/// test_withCountIntervalZeroDelayThenNonZeroInterval: changing the interval while waiting.
#[test]
fn test_with_count_interval_zero_delay_then_non_zero_interval() {
    let clock = Clock::new();
    let (deferred, fire_deferred) = Deferred::<()>::new();
    let acc = Log::new();
    let (a, mut d2) = (acc.clone(), Some(deferred));
    let lc = LoopingCall::with_count(clock.clone(), move |n| {
        a.push(n);
        match d2.take() {
            Some(d) if a.len() == 2 => d,
            other => {
                d2 = other;
                Deferred::succeed(())
            }
        }
    });
    let _d = lc.start_with(0.0, LoopingOptions { now: false }).unwrap();
    clock.advance(10.0);
    assert_eq!(acc.get(), [1, 1]);
    lc.set_interval(2.0).unwrap();
    fire_deferred.callback(()).unwrap();
    clock.advance(7.0);
    assert_eq!(acc.get(), [1, 1, 3]);
    clock.advance(2.0);
    assert_eq!(acc.get(), [1, 1, 3, 1]);
    clock.advance(4.0);
    assert_eq!(acc.get(), [1, 1, 3, 1, 2]);
    lc.stop().unwrap();
}

/// test_callbackTimeSkips: the callable itself advances time past the next boundary.
#[test]
fn test_callback_time_skips() {
    let clock = Clock::new();
    let times = Log::new();
    let duration = Rc::new(Cell::new(2.0));
    let (c, t, dur) = (clock.clone(), times.clone(), duration.clone());
    let lc = LoopingCall::new(clock.clone(), move || {
        t.push(c.seconds());
        c.advance(dur.get());
    });
    let _d = lc.start(0.5).unwrap();
    assert_eq!(times.get(), [0.0]);
    assert_eq!(clock.seconds(), 2.0);

    // A call was due at 2.0, but 2.0 is the present, not the future: skipped.
    clock.advance(0.0);
    assert_eq!(times.get(), [0.0]);

    duration.set(1.0);
    clock.advance(0.5);
    assert_eq!(times.get(), [0.0, 2.5]);
    assert_eq!(clock.seconds(), 3.5);

    clock.advance(0.0);
    assert_eq!(times.get(), [0.0, 2.5]);

    duration.set(0.0);
    clock.advance(0.5);
    assert_eq!(times.get(), [0.0, 2.5, 4.0]);
    assert_eq!(clock.seconds(), 4.0);
    lc.stop().unwrap();
}

// ---- ReactorLoopTests -----------------------------------------------------------------------

/// testFailure: the callable's error errbacks the start Deferred and ends the loop.
#[test]
fn test_failure() {
    let clock = Clock::new();
    let lc = LoopingCall::new(clock.clone(), || Err(TestException("bar").into()));
    let d = lc.start(0.1).unwrap();
    let f = failure_result_of(&d);
    assert_eq!(f.downcast_ref::<TestException>().unwrap().0, "bar");
    assert!(!lc.running());
    assert!(clock.get_delayed_calls().is_empty());
    assert_eq!(lc.stop(), Err(LoopingCallError::NotRunning));
}

/// testFailAndStop: the callable stops the loop and then fails: the failure still wins.
#[test]
fn test_fail_and_stop() {
    let clock = Clock::new();
    let s = slot();
    let s2 = s.clone();
    let lc = LoopingCall::new(clock.clone(), move || {
        lc_of(&s2).stop().unwrap();
        Err(TestException("bar").into())
    });
    *s.borrow_mut() = Some(lc.clone());
    let d = lc.start(0.1).unwrap();
    assert!(failure_result_of(&d).is::<TestException>());
    assert!(!lc.running());
    assert!(clock.get_delayed_calls().is_empty());
    s.borrow_mut().take();
}

/// A panic in the callable is a failure, like an exception in Twisted.
#[test]
fn test_panic_is_failure() {
    let clock = Clock::new();
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    let lc = LoopingCall::new(clock.clone(), move || {
        n2.set(n2.get() + 1);
        if n2.get() == 2 {
            panic!("second call");
        }
    });
    let d = lc.start(1.0).unwrap();
    clock.advance(1.0);
    let f = failure_result_of(&d);
    assert_eq!(
        f.downcast_ref::<twistor::failure::PanicError>()
            .unwrap()
            .message,
        "second call"
    );
    assert!(!lc.running());
    clock.advance(10.0);
    assert_eq!(n.get(), 2);
}

/// testEveryIteration: interval 0 -> the callable runs until it stops the loop.
#[test]
fn test_every_iteration() {
    let clock = Clock::new();
    let ran = Rc::new(Cell::new(0));
    let s = slot();
    let (r, s2) = (ran.clone(), s.clone());
    let lc = LoopingCall::new(clock.clone(), move || {
        r.set(r.get() + 1);
        if r.get() > 5 {
            lc_of(&s2).stop().unwrap();
        }
    });
    *s.borrow_mut() = Some(lc.clone());
    let d = lc.start(0.0).unwrap();
    clock.advance(0.0);
    success_result_of(&d);
    assert_eq!(ran.get(), 6);
    s.borrow_mut().take();
}

/// testStopAtOnceLater: stop from another scheduled call prevents every later call.
#[test]
fn test_stop_at_once_later() {
    let clock = Clock::new();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let lc = LoopingCall::new(clock.clone(), move || r.set(true));
    let d = lc.start_with(1.0, LoopingOptions { now: false }).unwrap();
    let lc2 = lc.clone();
    clock.call_later(0.0, move || lc2.stop().unwrap());
    clock.advance(0.0);
    success_result_of(&d);
    clock.advance(5.0);
    assert!(!ran.get());
}

/// testWaitDeferred: no new call while the previous call's Deferred is pending.
#[test]
fn test_wait_deferred() {
    let clock = Clock::new();
    let s = slot();
    let calls = Rc::new(Cell::new(0));
    let (c, s2, n) = (clock.clone(), s.clone(), calls.clone());
    let lc = LoopingCall::new(clock.clone(), move || {
        n.set(n.get() + 1);
        let (d, fire_d) = Deferred::<()>::new();
        let s3 = s2.clone();
        let fired = d.add_callback(move |()| lc_of(&s3).stop().unwrap());
        c.call_later(1.0, move || fire_d.callback(()).unwrap());
        fired
    });
    *s.borrow_mut() = Some(lc.clone());
    let done = lc.start(0.2).unwrap();
    clock.pump(&[0.2, 0.8]);
    assert_eq!(calls.get(), 1);
    assert!(clock.get_delayed_calls().is_empty());
    assert!(success_result_of(&done).ptr_eq(&lc));
    s.borrow_mut().take();
}

/// testFailurePropagation: a failed returned Deferred errbacks the start Deferred; nothing
/// is left scheduled.
#[test]
fn test_failure_propagation() {
    let clock = Clock::new();
    let c = clock.clone();
    let lc = LoopingCall::new(clock.clone(), move || {
        let (d, d2) = Deferred::<()>::new();
        c.call_later(0.3, move || d2.errback(TestException("late")).unwrap());
        d
    });
    let d = lc.start(1.0).unwrap();
    assert_no_result(&d);
    clock.pump(&[0.3]);
    assert!(failure_result_of(&d).is::<TestException>());
    assert!(clock.get_delayed_calls().is_empty());
    assert!(!lc.running());
}

/// test_deferredWithCount: a slow Deferred-returning call makes the next count 3.
#[test]
fn test_deferred_with_count() {
    let clock = Clock::new();
    let (d, fire_d) = Deferred::<()>::new();
    let counts = Log::new();
    let (cs, mut d2) = (counts.clone(), Some(d));
    let lc = LoopingCall::with_count(clock.clone(), move |n| {
        cs.push(n);
        match d2.take() {
            Some(d) if cs.len() == 1 => d,
            other => {
                d2 = other;
                Deferred::succeed(())
            }
        }
    });
    let _done = lc.start_with(0.2, LoopingOptions { now: false }).unwrap();
    assert!(counts.is_empty());
    clock.pump(&[0.2, 0.4]);
    assert_eq!(counts.len(), 1);
    fire_d.callback(()).unwrap();
    clock.pump(&[0.2]);
    assert_eq!(counts.get(), [1, 3]);
    lc.stop().unwrap();
}

// ---- misuse, restart, re-entrancy -----------------------------------------------------------

#[test]
fn test_start_twice_and_stop_twice_are_errors() {
    let clock = Clock::new();
    let lc = LoopingCall::new(clock.clone(), || ());
    assert_eq!(lc.reset(), Err(LoopingCallError::NotRunning));
    let _d = lc.start_with(1.0, LoopingOptions { now: false }).unwrap();
    assert_eq!(
        lc.start_with(1.0, LoopingOptions { now: false }).err(),
        Some(LoopingCallError::AlreadyRunning)
    );
    lc.stop().unwrap();
    assert_eq!(lc.stop(), Err(LoopingCallError::NotRunning));
    assert_eq!(lc.reset(), Err(LoopingCallError::NotRunning));
}

#[test]
fn test_restart_after_stop() {
    let clock = Clock::new();
    let times = Log::new();
    let (c, t) = (clock.clone(), times.clone());
    let lc = LoopingCall::new(clock.clone(), move || t.push(c.seconds()));
    let d1 = lc.start(1.0).unwrap();
    clock.advance(1.0);
    lc.stop().unwrap();
    success_result_of(&d1);
    clock.advance(5.5);
    let d2 = lc.start_with(2.0, LoopingOptions { now: false }).unwrap();
    assert_eq!(lc.starttime(), Some(6.5));
    clock.pump(&[2.0, 2.0]);
    assert_eq!(times.get(), [0.0, 1.0, 8.5, 10.5]);
    lc.stop().unwrap();
    success_result_of(&d2);
}

/// stop() while the returned Deferred is pending: the start Deferred fires when it completes.
#[test]
fn test_stop_while_waiting_fires_when_deferred_completes() {
    let clock = Clock::new();
    let (pending, fire_pending) = Deferred::<()>::new();
    let calls = Rc::new(Cell::new(0));
    let n = calls.clone();
    let mut p = Some(pending);
    let lc = LoopingCall::new(clock.clone(), move || {
        n.set(n.get() + 1);
        p.take().unwrap_or_else(|| Deferred::succeed(()))
    });
    let d = lc.start(1.0).unwrap();
    lc.stop().unwrap();
    assert!(!lc.running());
    assert_no_result(&d);
    fire_pending.callback(()).unwrap();
    assert!(success_result_of(&d).ptr_eq(&lc));
    clock.advance(10.0);
    assert_eq!(calls.get(), 1);
    assert!(clock.get_delayed_calls().is_empty());
}

/// The callable resets its own loop: nothing is scheduled while it runs, so nothing happens
/// (as in Twisted), and the loop goes on normally.
#[test]
fn test_callable_resets_itself() {
    let clock = Clock::new();
    let s = slot();
    let times = Log::new();
    let (c, t, s2) = (clock.clone(), times.clone(), s.clone());
    let lc = LoopingCall::new(clock.clone(), move || {
        t.push(c.seconds());
        lc_of(&s2).reset().unwrap();
    });
    *s.borrow_mut() = Some(lc.clone());
    let _d = lc.start(1.0).unwrap();
    clock.pump(&[1.0, 1.0]);
    assert_eq!(times.get(), [0.0, 1.0, 2.0]);
    lc.stop().unwrap();
    s.borrow_mut().take();
}

/// The callable stops its loop and restarts it with `now = true`: refused, never re-entered.
#[test]
fn test_restart_now_from_inside_is_refused() {
    let clock = Clock::new();
    let s = slot();
    let seen = Log::new();
    let (s2, sn) = (s.clone(), seen.clone());
    let lc = LoopingCall::new(clock.clone(), move || {
        let lc = lc_of(&s2);
        if lc.running() {
            lc.stop().unwrap();
            sn.push(lc.start(1.0).err());
        }
    });
    *s.borrow_mut() = Some(lc.clone());
    let d = lc.start(1.0).unwrap();
    assert_eq!(seen.get(), [Some(LoopingCallError::Reentrant)]);
    success_result_of(&d);
    assert!(!lc.running());
    s.borrow_mut().take();
}

/// The callable stops its loop and restarts it with `now = false`: the old run's Deferred
/// fires when the old call completes, and exactly one call stays scheduled.
#[test]
fn test_restart_later_from_inside() {
    let clock = Clock::new();
    let s = slot();
    let restarted = Rc::new(RefCell::new(None));
    let times = Log::new();
    let (c, s2, rs, t) = (clock.clone(), s.clone(), restarted.clone(), times.clone());
    let lc = LoopingCall::new(clock.clone(), move || {
        t.push(c.seconds());
        if rs.borrow().is_none() {
            let lc = lc_of(&s2);
            lc.stop().unwrap();
            *rs.borrow_mut() = Some(lc.start_with(3.0, LoopingOptions { now: false }).unwrap());
        }
    });
    *s.borrow_mut() = Some(lc.clone());
    let first = lc.start(1.0).unwrap();
    assert!(success_result_of(&first).ptr_eq(&lc));
    assert!(lc.running());
    assert_eq!(clock.get_delayed_calls().len(), 1);
    clock.pump(&[3.0, 3.0]);
    assert_eq!(times.get(), [0.0, 3.0, 6.0]);
    lc.stop().unwrap();
    let second = restarted.borrow_mut().take().unwrap();
    assert!(success_result_of(&second).ptr_eq(&lc));
    s.borrow_mut().take();
}

/// Stopped while its Deferred is pending, then started again: the old call's completion
/// finishes the old run only.
#[test]
fn test_restart_while_previous_call_in_flight() {
    let clock = Clock::new();
    let (pending, fire_pending) = Deferred::<()>::new();
    let calls = Rc::new(Cell::new(0));
    let (mut p, n) = (Some(pending), calls.clone());
    let lc = LoopingCall::new(clock.clone(), move || {
        n.set(n.get() + 1);
        p.take().unwrap_or_else(|| Deferred::succeed(()))
    });
    let first = lc.start(1.0).unwrap();
    lc.stop().unwrap();
    let second = lc.start_with(1.0, LoopingOptions { now: false }).unwrap();
    assert_no_result(&first);
    fire_pending.callback(()).unwrap();
    assert!(success_result_of(&first).ptr_eq(&lc));
    assert_eq!(clock.get_delayed_calls().len(), 1);
    clock.advance(1.0);
    assert_eq!(calls.get(), 2);
    assert_eq!(clock.get_delayed_calls().len(), 1);
    assert_no_result(&second);
    lc.stop().unwrap();
    success_result_of(&second);
}

/// The scheduled call holds the loop: it keeps running with no handle left.
#[test]
fn test_runs_without_handles() {
    let clock = Clock::new();
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    let d = LoopingCall::new(clock.clone(), move || n2.set(n2.get() + 1))
        .start(1.0)
        .unwrap();
    clock.pump(&[1.0, 1.0]);
    assert_eq!(n.get(), 3);
    let lc = clock.get_delayed_calls();
    assert_eq!(lc.len(), 1);
    drop(d);
}

#[test]
fn test_accessors_and_debug() {
    let clock = Clock::new();
    let lc = LoopingCall::new(clock.clone(), || ());
    assert_eq!(lc.interval(), None);
    assert_eq!(lc.starttime(), None);
    assert!(lc.call().is_none());
    assert_eq!(format!("{lc:?}"), "LoopingCall<None>(running: false)");
    let _d = lc.start_with(0.5, LoopingOptions { now: false }).unwrap();
    assert_eq!(lc.interval(), Some(0.5));
    assert_eq!(lc.call().unwrap().get_time(), 0.5);
    assert_eq!(format!("{lc:?}"), "LoopingCall<0.5>(running: true)");
    assert_eq!(
        lc.set_interval(-2.0),
        Err(LoopingCallError::BadInterval(-2.0))
    );
    lc.stop().unwrap();
}

/// Interval 0 with a Deferred that is already fired: the loop runs as fast as possible and
/// each call goes through `call_later(0)`.
#[test]
fn test_interval_zero_schedules_call_later_zero() {
    let clock = Clock::new();
    let lc = LoopingCall::new(clock.clone(), || Deferred::<()>::succeed(()));
    let _d = lc.start_with(0.0, LoopingOptions { now: false }).unwrap();
    let calls = clock.get_delayed_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].get_time(), 0.0);
    lc.stop().unwrap();
}

/// `start(interval)` is Twisted's `start(interval)`: `now` defaults to true.
#[test]
fn test_start_defaults_to_now() {
    let clock = Clock::new();
    let n = Rc::new(Cell::new(0));
    let m = n.clone();
    let lc = LoopingCall::new(clock.clone(), move || m.set(m.get() + 1));
    let _d = lc.start(1.0).unwrap();
    assert_eq!(n.get(), 1);
    lc.stop().unwrap();
    let _d = lc.start_with(1.0, LoopingOptions { now: false }).unwrap();
    assert_eq!(n.get(), 1);
    clock.advance(1.0);
    assert_eq!(n.get(), 2);
}

//! Timed calls on the real reactor: Twisted's `IReactorTime` and the
//! time-based helpers (LoopingCall, defer_later, add_timeout) running on it unchanged.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::defer::TimeoutError;
use twistor::reactor::Reactor;
use twistor::task::{LoopingCall, defer_later};
use twistor::testing::{failure_result_of, success_result_of};
use twistor::time::{DelayedCall, DelayedCallError, ReactorTime};
use twistor::{Deferred, Failure};
use util::{Log, bounded};

const LIMIT: u64 = 10;

/// The reactor's clock is wall-clock seconds (about 1.7e9), whose f64 resolution is a quarter
/// of a microsecond: comparisons with `Instant` allow for that.
const FLOAT_SLACK: Duration = Duration::from_micros(1);

fn reactor() -> Reactor {
    Reactor::new().expect("a new reactor")
}

/// Schedules `stop()` after `delay` seconds.
fn stop_after(reactor: &Reactor, delay: f64) -> DelayedCall {
    let r = reactor.clone();
    reactor.call_later(delay, move || r.stop().unwrap())
}

/// Calls with delays from 0 to 50 ms fire in time order, whatever the scheduling order.
#[test]
fn test_call_later_fires_in_time_order() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let fired = Log::new();
        for ms in [50, 0, 30, 10, 40, 20, 5] {
            let f = fired.clone();
            reactor.call_later(f64::from(ms) / 1000.0, move || f.push(ms));
        }
        stop_after(&reactor, 0.07);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(fired.get(), [0, 5, 10, 20, 30, 40, 50]);
    });
}

/// Calls with equal delays fire in the order they were scheduled.
#[test]
fn test_equal_delays_fire_in_scheduling_order() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let fired = Log::new();
        for i in 0..50 {
            let f = fired.clone();
            reactor.call_later(0.01, move || f.push(i));
        }
        stop_after(&reactor, 0.02);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(fired.get(), (0..50).collect::<Vec<_>>());
    });
}

/// Calls due at exactly the same time fire in scheduling order (the heap's tie-break), even
/// when the later-scheduled ones were moved there with `delay`.
#[test]
fn test_equal_deadlines_fire_in_scheduling_order() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let fired = Log::new();
        let calls: Vec<DelayedCall> = (0..20)
            .map(|i| {
                let f = fired.clone();
                reactor.call_later(0.01 + f64::from(i) * 0.001, move || f.push(i))
            })
            .collect();
        let time = calls[0].get_time();
        for call in &calls[1..] {
            call.delay(time - call.get_time()).unwrap();
        }
        assert!(calls.iter().all(|c| c.get_time() == time));
        stop_after(&reactor, 0.05);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(fired.get(), (0..20).collect::<Vec<_>>());
    });
}

/// A `call_later(0, ..)` made by a timed call runs on the next turn of the loop, not in the
/// pass that scheduled it, even though it is due at once; an older call due at the same time
/// still runs in the current pass.
#[test]
fn test_call_later_zero_inside_timed_call_runs_next_iteration() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let fired = Log::new();
        let (r, f) = (reactor.clone(), fired.clone());
        reactor.call_later(0.01, move || {
            f.push(("outer", r.iterations()));
            let (r2, f2) = (r.clone(), f.clone());
            r.call_later(0.0, move || {
                f2.push(("inner", r2.iterations()));
                r2.stop().unwrap();
            });
        });
        let (r, f) = (reactor.clone(), fired.clone());
        let sibling = reactor.call_later(0.01, move || f.push(("sibling", r.iterations())));
        // Due at exactly the outer call's time (scheduling took a few microseconds).
        let outer_time = reactor.get_delayed_calls()[0].get_time();
        sibling.delay(outer_time - sibling.get_time()).unwrap();
        assert_eq!(sibling.get_time(), outer_time);
        reactor.run_without_signal_handlers().unwrap();
        let got = fired.get();
        let outer = got[0].1;
        assert_eq!(
            got,
            [("outer", outer), ("sibling", outer), ("inner", outer + 1)]
        );
    });
}

/// A cancelled call never runs, is no longer listed, and cannot be cancelled again.
#[test]
fn test_cancel() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let call = reactor.call_later(0.01, move || f.set(true));
        assert!(reactor.get_delayed_calls().contains(&call));
        call.cancel().unwrap();
        assert!(!reactor.get_delayed_calls().contains(&call));
        assert_eq!(call.cancel(), Err(DelayedCallError::AlreadyCancelled));
        stop_after(&reactor, 0.03);
        reactor.run_without_signal_handlers().unwrap();
        assert!(!fired.get());
        assert!(call.cancelled());
    });
}

/// `reset` to an earlier time: a call set for 5 s fires 20 ms from now, after a call due at
/// 10 ms, and not before its new time.
#[test]
fn test_reset_earlier() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let fired = Log::new();
        let f = fired.clone();
        reactor.call_later(0.01, move || f.push("10 ms"));
        let slot: Rc<RefCell<Option<DelayedCall>>> = Rc::default();
        let (r, f, s) = (reactor.clone(), fired.clone(), slot.clone());
        let call = reactor.call_later(5.0, move || {
            let due = s.borrow().as_ref().unwrap().get_time();
            f.push(if r.seconds() >= due {
                "reset"
            } else {
                "reset, early"
            });
            r.stop().unwrap();
        });
        *slot.borrow_mut() = Some(call.clone());
        let before = reactor.seconds();
        call.reset(0.02).unwrap();
        assert!(call.get_time() >= before + 0.02 && call.get_time() < before + 1.0);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(fired.get(), ["10 ms", "reset"]);
        assert!(call.called());
    });
}

/// `reset` to a later time: a call due at 10 ms, reset to 40 ms, fires after one due at 20 ms.
#[test]
fn test_reset_later() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let fired = Log::new();
        let f = fired.clone();
        let call = reactor.call_later(0.01, move || f.push("reset"));
        let f = fired.clone();
        reactor.call_later(0.02, move || f.push("20 ms"));
        call.reset(0.04).unwrap();
        stop_after(&reactor, 0.06);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(fired.get(), ["20 ms", "reset"]);
    });
}

/// `delay` moves a call later by the given amount: one due at 10 ms, delayed by 30 ms, fires
/// after one due at 20 ms; a negative delay moves it sooner.
#[test]
fn test_delay() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let fired = Log::new();
        let f = fired.clone();
        let later = reactor.call_later(0.01, move || f.push("delayed"));
        let f = fired.clone();
        let sooner = reactor.call_later(0.05, move || f.push("hurried"));
        let f = fired.clone();
        reactor.call_later(0.02, move || f.push("20 ms"));
        let t = later.get_time();
        later.delay(0.03).unwrap();
        assert!((later.get_time() - (t + 0.03)).abs() < 1e-6);
        sooner.delay(-0.045).unwrap();
        stop_after(&reactor, 0.06);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(fired.get(), ["hurried", "20 ms", "delayed"]);
    });
}

/// Inside its own function a call is no longer active: cancelling it is `AlreadyCalled`.
#[test]
fn test_call_is_inactive_inside_its_function() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let seen = Log::new();
        let slot: Rc<RefCell<Option<DelayedCall>>> = Rc::default();
        let (r, s, sl) = (reactor.clone(), seen.clone(), slot.clone());
        let call = reactor.call_later(0.0, move || {
            let me = sl.borrow().clone().unwrap();
            s.push((me.active(), me.cancel()));
            r.stop().unwrap();
        });
        *slot.borrow_mut() = Some(call);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(seen.get(), [(false, Err(DelayedCallError::AlreadyCalled))]);
    });
}

/// The loop sleeps until the next call is due instead of spinning: waiting 100 ms for one
/// timed call takes a handful of turns.
#[test]
fn test_no_busy_spin_while_waiting_for_a_timer() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let start = Instant::now();
        stop_after(&reactor, 0.1);
        reactor.run_without_signal_handlers().unwrap();
        assert!(start.elapsed() >= Duration::from_millis(100) - FLOAT_SLACK);
        assert!(
            reactor.iterations() < 10,
            "{} turns to wait 100 ms",
            reactor.iterations()
        );
    });
}

/// A timed call never fires before its time, on the reactor's clock and on the monotonic
/// clock.
#[test]
fn test_never_fires_early() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let late = Log::new();
        let delays = [
            0.0, 0.0005, 0.001, 0.0015, 0.003, 0.007, 0.013, 0.021, 0.034,
        ];
        for delay in delays {
            let slot: Rc<RefCell<Option<DelayedCall>>> = Rc::default();
            let (r, l, s) = (reactor.clone(), late.clone(), slot.clone());
            let scheduled = Instant::now();
            let call = reactor.call_later(delay, move || {
                let due = s.borrow().as_ref().unwrap().get_time();
                l.push((
                    delay,
                    r.seconds() >= due,
                    scheduled.elapsed() + FLOAT_SLACK >= Duration::from_secs_f64(delay),
                ));
            });
            *slot.borrow_mut() = Some(call);
        }
        stop_after(&reactor, 0.05);
        reactor.run_without_signal_handlers().unwrap();
        let got = late.get();
        assert_eq!(got.len(), delays.len());
        for (delay, on_reactor_clock, on_monotonic_clock) in got {
            assert!(on_reactor_clock, "the {delay} s call fired early");
            assert!(on_monotonic_clock, "the {delay} s call fired early");
        }
    });
}

/// LoopingCall runs on the real reactor unchanged: calls on the interval boundaries, stop
/// from inside the function fires the start Deferred with the loop.
#[test]
fn test_looping_call_on_reactor() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let times = Log::new();
        let slot: Rc<RefCell<Option<LoopingCall>>> = Rc::default();
        let (r, t, s) = (reactor.clone(), times.clone(), slot.clone());
        let lc = LoopingCall::new(reactor.clone(), move || {
            t.push(r.seconds());
            if t.len() == 5 {
                s.borrow().as_ref().unwrap().stop().unwrap();
            }
        });
        *slot.borrow_mut() = Some(lc.clone());
        let start = reactor.seconds();
        let r = reactor.clone();
        let done = lc.start(0.01).unwrap().add_callback(move |lc| {
            r.stop().unwrap();
            lc
        });
        reactor.run_without_signal_handlers().unwrap();
        assert!(success_result_of(&done).ptr_eq(&lc));
        let times = times.get();
        assert_eq!(times.len(), 5);
        for (k, t) in times.iter().enumerate() {
            assert!(
                *t >= start + k as f64 * 0.01 - 1e-6,
                "call {k} at +{} s",
                t - start
            );
        }
        assert!(!lc.running());
        slot.borrow_mut().take();
    });
}

/// defer_later runs on the real reactor: the Deferred fires with the function's value, no
/// sooner than the delay.
#[test]
fn test_defer_later_on_reactor() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let start = reactor.seconds();
        let r = reactor.clone();
        let d = defer_later(reactor.clone(), 0.02, move || Ok::<_, Failure>(r.seconds()))
            .add_callback({
                let r = reactor.clone();
                move |t| {
                    r.stop().unwrap();
                    t
                }
            });
        reactor.run_without_signal_handlers().unwrap();
        assert!(success_result_of(&d) >= start + 0.02);
    });
}

/// Deferred::add_timeout runs on the real reactor: an unfired Deferred fails with
/// TimeoutError after the timeout.
#[test]
fn test_add_timeout_on_reactor_times_out() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let start = reactor.seconds();
        let r = reactor.clone();
        let (d, _fire) = Deferred::<()>::new();
        let d = d.add_timeout(0.02, &reactor).add_both(move |res| {
            r.stop().unwrap();
            res.map(|()| r.seconds())
        });
        reactor.run_without_signal_handlers().unwrap();
        let f = failure_result_of(&d);
        assert_eq!(f.downcast_ref::<TimeoutError>(), Some(&TimeoutError(0.02)));
        assert!(reactor.seconds() >= start + 0.02);
    });
}

/// Deferred::add_timeout on the real reactor: a Deferred that fires in time keeps its value
/// and its timeout call is cancelled.
#[test]
fn test_add_timeout_on_reactor_fires_in_time() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let (source, fire_source) = Deferred::<u32>::new();
        let d = source.add_timeout(5.0, &reactor);
        let fire = fire_source;
        reactor.call_later(0.01, move || fire.callback(7).unwrap());
        stop_after(&reactor, 0.02);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(success_result_of(&d), 7);
        assert!(reactor.get_delayed_calls().is_empty());
    });
}

/// Bad delays: Twisted asserts `delay >= 0`; here nothing panics on bad input. A negative or
/// NaN delay is clamped to 0 (logged), on the reactor exactly as on the test `Clock`, so the
/// call runs on the next turn; an infinite delay never comes due (and does not make the loop
/// spin or fail).
#[test]
fn test_negative_nan_and_infinite_delays_on_reactor_and_clock() {
    fn schedule(time: &impl ReactorTime, ran: &Rc<Cell<u32>>) -> Vec<DelayedCall> {
        [-1.0, f64::NAN, f64::NEG_INFINITY, f64::INFINITY]
            .into_iter()
            .map(|delay| {
                let r = ran.clone();
                time.call_later(delay, move || r.set(r.get() + 1))
            })
            .collect()
    }
    bounded(LIMIT, || {
        let reactor = Reactor::new().unwrap();
        let ran = Rc::new(Cell::new(0));
        let before = reactor.seconds();
        let calls = schedule(&reactor, &ran);
        for c in &calls[..3] {
            assert!(c.get_time() >= before && c.get_time() <= reactor.seconds());
        }
        assert_eq!(calls[3].get_time(), f64::INFINITY);
        reactor.iterate(Duration::ZERO).unwrap();
        assert_eq!(ran.get(), 3);
        assert!(calls[3].active());
        let r = reactor.clone();
        reactor.call_later(0.03, move || r.stop().unwrap());
        let turns = reactor.iterations();
        reactor.run_without_signal_handlers().unwrap();
        assert!(reactor.iterations() - turns < 20, "the loop spun");
        assert_eq!(ran.get(), 3);

        let clock = twistor::Clock::new();
        let ran = Rc::new(Cell::new(0));
        let calls = schedule(&clock, &ran);
        assert_eq!(
            calls.iter().map(DelayedCall::get_time).collect::<Vec<_>>()[..3],
            [0.0, 0.0, 0.0]
        );
        clock.advance(0.0);
        assert_eq!(ran.get(), 3);
        clock.advance(1e300);
        assert_eq!(ran.get(), 3);
        assert!(calls[3].active());
    });
}

//! `Clock` and `DelayedCall`: Twisted's `test_task.py::ClockTests`, plus ordering, cancellation
//! and scale behaviours of the timer queue behind them.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use twistor::task::Clock;
use twistor::time::{DelayedCall, DelayedCallError, ReactorTime};

/// A shared event log.
type Log<T> = Rc<RefCell<Vec<T>>>;

fn log<T>() -> Log<T> {
    Rc::new(RefCell::new(Vec::new()))
}

/// A shared flag set by a scheduled call.
fn flag() -> Rc<Cell<bool>> {
    Rc::new(Cell::new(false))
}

fn setter(flag: &Rc<Cell<bool>>) -> impl FnOnce() + 'static + use<> {
    let flag = flag.clone();
    move || flag.set(true)
}

/// Records `(name, clock.seconds())` when run (Twisted's `logtime`).
fn logtime(
    clock: &Clock,
    log: &Log<(&'static str, f64)>,
    name: &'static str,
) -> impl FnOnce() + use<> {
    let (clock, log) = (clock.clone(), log.clone());
    move || log.borrow_mut().push((name, clock.seconds()))
}

/// A tiny xorshift64 generator: deterministic and dependency-free.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// -- Twisted's ClockTests --------------------------------------------------------------------

#[test]
fn test_seconds() {
    let clock = Clock::new();
    assert_eq!(clock.seconds(), 0.0);
}

#[test]
fn test_call_later() {
    let clock = Clock::new();
    let call = clock.call_later(1.0, || ());
    assert_eq!(call.get_time(), 1.0);
    assert!(call.active());
}

#[test]
fn test_advance() {
    let clock = Clock::new();
    let fired = flag();
    let call = clock.call_later(2.0, setter(&fired));
    clock.advance(1.0);
    assert!(!fired.get());
    assert!(call.active());
    clock.advance(1.0);
    assert!(fired.get());
    assert!(!call.active());
    assert!(call.called());
}

#[test]
fn test_advance_cancel() {
    let clock = Clock::new();
    let handle: Rc<RefCell<Option<DelayedCall>>> = Rc::new(RefCell::new(None));
    let results: Log<(bool, Result<(), DelayedCallError>)> = log();
    let (h, r) = (handle.clone(), results.clone());
    let call = clock.call_later(1.0, move || {
        let call = h.borrow().clone().expect("handle stored before advance");
        r.borrow_mut().push((call.active(), call.cancel()));
    });
    *handle.borrow_mut() = Some(call.clone());
    clock.advance(1.0);
    assert_eq!(
        *results.borrow(),
        [(false, Err(DelayedCallError::AlreadyCalled))]
    );
    assert!(call.called() && !call.cancelled());
}

#[test]
fn test_call_later_delayed() {
    let clock = Clock::new();
    let fired = flag();
    let call = clock.call_later(1.0, setter(&fired));
    call.delay(1.0).unwrap();
    assert_eq!(call.get_time(), 2.0);
    clock.advance(1.5);
    assert!(!fired.get());
    clock.advance(1.0);
    assert!(fired.get());
}

#[test]
fn test_call_later_reset_later() {
    let clock = Clock::new();
    let fired = flag();
    let call = clock.call_later(2.0, setter(&fired));
    clock.advance(1.0);
    call.reset(3.0).unwrap();
    assert_eq!(call.get_time(), 4.0);
    clock.advance(2.0);
    assert!(!fired.get());
    clock.advance(1.0);
    assert!(fired.get());
}

#[test]
fn test_call_later_reset_sooner() {
    let clock = Clock::new();
    let fired = flag();
    let call = clock.call_later(4.0, setter(&fired));
    call.reset(3.0).unwrap();
    assert_eq!(call.get_time(), 3.0);
    clock.advance(2.0);
    assert!(!fired.get());
    clock.advance(1.0);
    assert!(fired.get());
}

#[test]
fn test_call_later_keeps_calls_ordered() {
    let clock = Clock::new();
    let result = log();
    let call_a = clock.call_later(1.0, logtime(&clock, &result, "a"));
    call_a.reset(3.0).unwrap();
    clock.call_later(2.0, logtime(&clock, &result, "b"));
    clock.pump(&[1.0; 3]);
    assert_eq!(*result.borrow(), [("b", 2.0), ("a", 3.0)]);
}

#[test]
fn test_call_later_reset_inside_call_keeps_calls_ordered() {
    let clock = Clock::new();
    let result = log();
    let call_b = clock.call_later(2.0, logtime(&clock, &result, "b"));
    clock.call_later(1.0, move || call_b.reset(3.0).unwrap());
    clock.call_later(3.0, logtime(&clock, &result, "c"));
    clock.pump(&[0.5; 10]);
    assert_eq!(*result.borrow(), [("c", 3.0), ("b", 4.0)]);
}

#[test]
fn test_get_delayed_calls() {
    let clock = Clock::new();
    let call = clock.call_later(1.0, || ());
    let call2 = clock.call_later(2.0, || ());
    assert_eq!(clock.get_delayed_calls(), vec![call.clone(), call2.clone()]);
    clock.advance(1.0);
    assert_eq!(clock.get_delayed_calls(), vec![call2.clone()]);
    call2.cancel().unwrap();
    assert!(clock.get_delayed_calls().is_empty());
}

// -- Ordering and re-entrancy ----------------------------------------------------------------

#[test]
fn test_equal_deadlines_fire_in_scheduling_order() {
    let clock = Clock::new();
    let order = log();
    for i in 0..5 {
        let o = order.clone();
        clock.call_later(1.0, move || o.borrow_mut().push(i));
    }
    clock.advance(1.0);
    assert_eq!(*order.borrow(), [0, 1, 2, 3, 4]);
}

#[test]
fn test_call_later_zero_during_advance_zero_runs_in_same_advance() {
    let clock = Clock::new();
    let result = log();
    let (c, r) = (clock.clone(), result.clone());
    clock.call_later(0.0, move || {
        r.borrow_mut().push(("outer", c.seconds()));
        c.call_later(0.0, logtime(&c, &r, "inner"));
    });
    clock.advance(0.0);
    assert_eq!(*result.borrow(), [("outer", 0.0), ("inner", 0.0)]);
    assert!(clock.get_delayed_calls().is_empty());
}

#[test]
fn test_cancel_then_already_cancelled() {
    let clock = Clock::new();
    let fired = flag();
    let call = clock.call_later(1.0, setter(&fired));
    assert_eq!(call.cancel(), Ok(()));
    assert!(call.cancelled() && !call.active() && !call.called());
    assert_eq!(call.cancel(), Err(DelayedCallError::AlreadyCancelled));
    assert_eq!(call.reset(1.0), Err(DelayedCallError::AlreadyCancelled));
    assert_eq!(call.delay(1.0), Err(DelayedCallError::AlreadyCancelled));
    clock.advance(10.0);
    assert!(!fired.get());
}

#[test]
fn test_called_then_reset_and_delay_already_called() {
    let clock = Clock::new();
    let call = clock.call_later(1.0, || ());
    clock.advance(1.0);
    assert_eq!(call.reset(1.0), Err(DelayedCallError::AlreadyCalled));
    assert_eq!(call.delay(1.0), Err(DelayedCallError::AlreadyCalled));
    assert_eq!(call.cancel(), Err(DelayedCallError::AlreadyCalled));
    assert_eq!(call.get_time(), 1.0);
}

#[test]
fn test_cancel_frees_captured_values() {
    let clock = Clock::new();
    let token = Rc::new(());
    let held = token.clone();
    let call = clock.call_later(1.0, move || drop(held));
    assert_eq!(Rc::strong_count(&token), 2);
    call.cancel().unwrap();
    assert_eq!(Rc::strong_count(&token), 1);
}

#[test]
fn test_negative_and_nan_delays_clamped_to_zero() {
    let clock = Clock::new();
    clock.advance(5.0);
    assert_eq!(clock.call_later(-1.0, || ()).get_time(), 5.0);
    assert_eq!(clock.call_later(f64::NAN, || ()).get_time(), 5.0);
    let fired = flag();
    clock.call_later(-3.0, setter(&fired));
    clock.advance(0.0);
    assert!(fired.get());
}

#[test]
fn test_panic_propagates_out_of_advance_and_clock_stays_usable() {
    let clock = Clock::new();
    let fired = flag();
    let bad = clock.call_later(1.0, || panic!("boom"));
    let after = clock.call_later(1.0, setter(&fired));
    let err = catch_unwind(AssertUnwindSafe(|| clock.advance(1.0))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"boom"));
    assert!(bad.called());
    assert!(
        !fired.get(),
        "the call after the panicking one has not run yet"
    );
    assert!(after.active());
    clock.advance(0.0);
    assert!(fired.get());
}

#[test]
fn test_advance_inside_call() {
    let clock = Clock::new();
    let result = log();
    let c = clock.clone();
    clock.call_later(1.0, move || c.advance(1.0));
    clock.call_later(2.0, logtime(&clock, &result, "two"));
    clock.advance(1.0);
    assert_eq!(clock.seconds(), 2.0);
    assert_eq!(*result.borrow(), [("two", 2.0)]);
}

#[test]
fn test_reactor_time_trait_objects() {
    let clock = Clock::new();
    let time: Rc<dyn ReactorTime> = Rc::new(clock.clone());
    let fired = flag();
    let call = time.call_later(2.0, setter(&fired));
    let by_ref: &dyn ReactorTime = &clock;
    assert_eq!(by_ref.get_delayed_calls(), vec![call.clone()]);
    clock.advance(2.0);
    assert_eq!(time.seconds(), 2.0);
    assert!(fired.get() && call.called());
}

// -- Queue behaviour at scale ----------------------------------------------------------------

#[test]
fn test_compaction_keeps_order() {
    let clock = Clock::new();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let fired: Log<usize> = log();
    let mut calls = Vec::new();
    let mut times = Vec::new();
    for i in 0..1000 {
        // Few distinct deadlines, so ties (scheduling order) matter.
        let t = rng.below(50) as f64 / 2.0;
        let f = fired.clone();
        calls.push(clock.call_later(t, move || f.borrow_mut().push(i)));
        times.push(t);
    }
    // Cancel 600 in random order (Fisher-Yates on the indices).
    let mut idx: Vec<usize> = (0..1000).collect();
    for i in (1..idx.len()).rev() {
        idx.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let cancelled = &idx[..600];
    for &i in cancelled {
        calls[i].cancel().unwrap();
    }
    let mut expected: Vec<usize> = idx[600..].to_vec();
    expected.sort_by(|&a, &b| times[a].total_cmp(&times[b]).then(a.cmp(&b)));
    assert_eq!(clock.get_delayed_calls().len(), 400);

    clock.advance(100.0);
    assert_eq!(*fired.borrow(), expected);
    assert!(cancelled.iter().all(|&i| calls[i].cancelled()));
    assert!(clock.get_delayed_calls().is_empty());
}

#[test]
fn test_many_pending_calls() {
    const N: usize = 100_000;
    let clock = Clock::new();
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let count = Rc::new(Cell::new(0usize));
    let calls: Vec<DelayedCall> = (0..N)
        .map(|_| {
            let c = count.clone();
            clock.call_later(rng.below(1_000_000) as f64 / 1000.0, move || {
                c.set(c.get() + 1)
            })
        })
        .collect();
    let mut cancelled = 0;
    for call in calls.iter().step_by(2) {
        call.cancel().unwrap();
        cancelled += 1;
    }
    assert_eq!(clock.get_delayed_calls().len(), N - cancelled);
    clock.advance(1000.0);
    assert_eq!(count.get(), N - cancelled);
    assert!(calls.iter().all(|c| !c.active()));
    assert!(clock.get_delayed_calls().is_empty());
}

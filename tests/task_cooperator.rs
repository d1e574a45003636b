//! `Cooperator`: Twisted's `test_cooperator.py`, ported to a `Clock`.
//!
//! Twisted's `FakeScheduler` is a `Clock` here: the cooperator schedules its ticks with
//! `tick_delay(1.0)`, so `clock.advance(1.0)` is one `scheduler.pump()` (it runs the tick that
//! was due, and the tick it schedules is not due yet). Not ported: `AliasTests` (the global
//! cooperator needs the global reactor) and `doneDeferred` of `coiterate` (chain the returned
//! Deferred instead).

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use twistor::failure::PanicError;
use twistor::task::{
    Clock, CooperativeTask, Cooperator, DEFAULT_TICK_DELAY, SchedulerError, StepOutcome,
};
use twistor::testing::{assert_no_result, failure_result_of, success_result_of};
use twistor::{Deferred, Failure};
use util::Log;

#[derive(Debug, thiserror::Error)]
#[error("runtime error")]
struct RuntimeError;

#[derive(Debug, thiserror::Error)]
#[error("unhandled exception")]
struct UnhandledException;

fn scheduler_error(f: &Failure) -> Option<SchedulerError> {
    f.downcast_ref::<SchedulerError>().copied()
}

/// A cooperator whose ticks are one second apart (one `advance(1.0)` = one pump).
fn coop_with(clock: &Clock, one_step_per_tick: bool) -> Cooperator {
    let b = Cooperator::builder(clock.clone()).tick_delay(1.0).unwrap();
    if one_step_per_tick {
        b.termination(|| || true).build()
    } else {
        b.termination(|| || false).build()
    }
}

// ---- type inference ------------------------------------------------------------------------

#[test]
fn items_need_no_annotations() {
    let clock = Clock::new();
    let coop = Cooperator::new(clock.clone());
    let a = coop.coiterate((0..3).map(|_| ()));
    let b = coop.coiterate((0..3).map(|_| Ok(())));
    let c = coop.coiterate((0..3).map(|i| {
        let _n: u8 = "1".parse()?;
        if i > 5 {
            return Err(Failure::msg("never"));
        }
        Ok(())
    }));
    let d = coop.coiterate((0..3).map(|_| Deferred::succeed(())));
    let e = coop.coiterate(vec![
        StepOutcome::Done,
        StepOutcome::Wait(Deferred::succeed(())),
    ]);
    clock.advance(1.0);
    for x in [a, b, c, d, e] {
        success_result_of(&x);
    }
}

// ---- CooperatorTests -----------------------------------------------------------------------

/// testStoppedRejectsNewTasks: a stopped cooperator completes new tasks with
/// SchedulerStopped at once.
#[test]
fn test_stopped_rejects_new_tasks() {
    let clock = Clock::new();
    let c = Cooperator::new(clock.clone());
    c.stop();
    let d = c.coiterate(std::iter::empty::<()>());
    let f = failure_result_of(&d);
    assert_eq!(scheduler_error(&f), Some(SchedulerError::SchedulerStopped));
    assert!(clock.get_delayed_calls().is_empty());
}

/// testStopRunning: stop() fails a running task, whose iterator never advanced.
#[test]
fn test_stop_running() {
    let clock = Clock::new();
    let c = Cooperator::new(clock.clone());
    let value = Rc::new(Cell::new(-1));
    let v = value.clone();
    let d = c.coiterate((0..3).map(move |i| v.set(i)));
    c.stop();
    let f = failure_result_of(&d);
    assert_eq!(scheduler_error(&f), Some(SchedulerError::SchedulerStopped));
    assert_eq!(value.get(), -1);
    clock.advance(1.0);
    assert_eq!(value.get(), -1);
    assert!(clock.get_delayed_calls().is_empty());
}

/// testStopOutstanding: a task waiting on a Deferred fails with SchedulerStopped when the
/// cooperator stops (at once here; Twisted waits for the Deferred), and is never resumed.
#[test]
fn test_stop_outstanding() {
    let clock = Clock::new();
    let (outstanding, fire_outstanding) = Deferred::<()>::new();
    let resumed = Rc::new(Cell::new(false));
    let (mut o, r) = (Some(outstanding), resumed.clone());
    let mut step = 0;
    let c = coop_with(&clock, false);
    let d = c.coiterate(std::iter::from_fn(move || {
        step += 1;
        match step {
            1 => o.take(),
            _ => {
                r.set(true);
                None
            }
        }
    }));
    clock.advance(1.0);
    assert_no_result(&d);
    c.stop();
    fire_outstanding.callback(()).unwrap();
    let f = failure_result_of(&d);
    assert_eq!(scheduler_error(&f), Some(SchedulerError::SchedulerStopped));
    clock.advance(1.0);
    assert!(!resumed.get());
}

/// testUnexpectedError: `next()` failing fails the task (an `Err` item, or a panic).
#[test]
fn test_unexpected_error() {
    let clock = Clock::new();
    let c = Cooperator::new(clock.clone());
    let d = c.coiterate(std::iter::once(Err(Failure::new(RuntimeError))));
    let p = c.coiterate(std::iter::from_fn(|| -> Option<()> { panic!("in next") }));
    clock.advance(1.0);
    assert!(failure_result_of(&d).is::<RuntimeError>());
    let f = failure_result_of(&p);
    assert_eq!(f.downcast_ref::<PanicError>().unwrap().message, "in next");
}

/// testUnexpectedErrorActuallyLater: a yielded Deferred that fails later fails the task.
#[test]
fn test_unexpected_error_actually_later() {
    let clock = Clock::new();
    let c = Cooperator::new(clock.clone());
    let (later, l) = Deferred::<()>::new();
    clock.call_later(0.5, move || l.errback(RuntimeError).unwrap());
    let d = c.coiterate(std::iter::once(later));
    clock.advance(0.1);
    assert_no_result(&d);
    clock.advance(0.5);
    assert!(failure_result_of(&d).is::<RuntimeError>());
}

/// testUnexpectedErrorNotActuallyLater: a yielded Deferred that already failed.
#[test]
fn test_unexpected_error_not_actually_later() {
    let clock = Clock::new();
    let c = Cooperator::new(clock.clone());
    let d = c.coiterate(std::iter::once(Deferred::<()>::fail(RuntimeError)));
    clock.advance(1.0);
    assert!(failure_result_of(&d).is::<RuntimeError>());
}

/// testCooperation: tasks a (3 items) and b (2 items) interleave a0, b0, a1, b1, a2.
#[test]
fn test_cooperation() {
    let clock = Clock::new();
    let c = coop_with(&clock, false);
    let log = Log::new();
    let mut done = Vec::new();
    for (name, n) in [("a", 3), ("b", 2)] {
        let l = log.clone();
        done.push(c.coiterate((0..n).map(move |i| l.push(format!("{name}{i}")))));
    }
    clock.advance(1.0);
    assert_eq!(log.get(), ["a0", "b0", "a1", "b1", "a2"]);
    for d in &done {
        success_result_of(d);
    }
}

/// testCooperation as Twisted writes it: four groups of three interleave like `zip`.
#[test]
fn test_cooperation_groups() {
    let clock = Clock::new();
    let c = Cooperator::new(clock.clone());
    let log = Log::new();
    let groups = ["abc", "123", "def", "456"];
    let done: Vec<_> = groups
        .iter()
        .map(|g| {
            let l = log.clone();
            c.coiterate(g.chars().map(move |ch| l.push(ch)))
        })
        .collect();
    clock.advance(1.0);
    let expected: Vec<char> = "a1d4b2e5c3f6".chars().collect();
    assert_eq!(log.get(), expected);
    for d in &done {
        success_result_of(d);
    }
}

/// testResourceExhaustion: the termination predicate ends the tick.
#[test]
fn test_resource_exhaustion() {
    let clock = Clock::new();
    let stopped = Rc::new(Cell::new(false));
    let s = stopped.clone();
    let c = Cooperator::builder(clock.clone())
        .tick_delay(1.0)
        .unwrap()
        .termination(move || {
            let s = s.clone();
            move || s.get()
        })
        .build();
    let output = Log::new();
    let (o, s2) = (output.clone(), stopped.clone());
    let d = c.coiterate((0..100).map(move |i| {
        o.push(i);
        if i == 9 {
            s2.set(true);
        }
    }));
    let _handled = d.add_errback(|f| {
        f.trap::<SchedulerError>()?;
        Ok(())
    });
    clock.advance(1.0);
    c.stop();
    assert!(stopped.get());
    assert_eq!(output.get(), (0..10).collect::<Vec<_>>());
}

/// testCallbackReCoiterate: a `when_done` callback that coiterates again leads to one
/// scheduled tick at a time, and the second task completes.
#[test]
fn test_callback_re_coiterate() {
    let clock = Clock::new();
    let c = coop_with(&clock, true);
    let done = Rc::new(Cell::new(false));
    let (c2, dn) = (c.clone(), done.clone());
    let _d = c
        .coiterate(std::iter::empty::<()>())
        .add_callback(move |()| {
            let _ = c2.coiterate(std::iter::empty::<()>()).add_both(move |r| {
                dn.set(r.is_ok());
                Ok(())
            });
        });
    let mut work = 0;
    while !done.get() {
        assert!(clock.get_delayed_calls().len() <= 1);
        clock.advance(1.0);
        work += 1;
        assert!(work <= 50, "Cooperator took too long");
    }
    assert!(clock.get_delayed_calls().is_empty());
}

/// test_removingLastTaskStopsScheduledCall.
#[test]
fn test_removing_last_task_stops_scheduled_call() {
    let clock = Clock::new();
    let coop = Cooperator::new(clock.clone());
    let task1 = coop.cooperate(vec![1, 2].into_iter().map(|_| ()));
    let task2 = coop.cooperate(vec![1, 2].into_iter().map(|_| ()));
    let calls = clock.get_delayed_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].get_time(), DEFAULT_TICK_DELAY);

    task1.stop().unwrap();
    assert_eq!(clock.get_delayed_calls(), calls);

    task2.stop().unwrap();
    assert!(calls[0].cancelled());
    assert!(clock.get_delayed_calls().is_empty());

    let _task3 = coop.cooperate(vec![(), ()]);
    assert_eq!(clock.get_delayed_calls().len(), 1);
    coop.stop();
}

#[test]
fn test_running_when_started() {
    assert!(Cooperator::new(Clock::new()).running());
}

#[test]
fn test_running_when_not_started() {
    assert!(
        !Cooperator::builder(Clock::new())
            .started(false)
            .build()
            .running()
    );
}

#[test]
fn test_running_when_running() {
    let c = Cooperator::builder(Clock::new()).started(false).build();
    c.start();
    assert!(c.running());
    c.stop();
}

#[test]
fn test_running_when_stopped() {
    let c = Cooperator::builder(Clock::new()).started(false).build();
    c.start();
    c.stop();
    assert!(!c.running());
}

// ---- RunStateTests -------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Work {
    Num(u32),
    Def(twistor::Resolver<()>),
}

impl PartialEq for Work {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Work::Num(a), Work::Num(b)) => a == b,
            (Work::Def(a), Work::Def(b)) => a.ptr_eq(b),
            _ => false,
        }
    }
}

/// Twisted's `RunStateTests` fixture: one task whose next step can be told to defer, stop or
/// die; one step per tick.
struct Fixture {
    clock: Clock,
    cooperator: Cooperator,
    task: CooperativeTask,
    work: Log<Work>,
    defer_next: Rc<Cell<bool>>,
    stop_next: Rc<Cell<bool>>,
    die_next: Rc<Cell<bool>>,
}

impl Fixture {
    fn new() -> Fixture {
        let clock = Clock::new();
        let cooperator = coop_with(&clock, true);
        let work = Log::new();
        let defer_next = Rc::new(Cell::new(false));
        let stop_next = Rc::new(Cell::new(false));
        let die_next = Rc::new(Cell::new(false));
        let (w, dn, sn, di) = (
            work.clone(),
            defer_next.clone(),
            stop_next.clone(),
            die_next.clone(),
        );
        let mut i = 0;
        let worker = std::iter::from_fn(move || {
            i += 1;
            if dn.get() {
                dn.set(false);
                let (d, fire_d) = Deferred::new();
                w.push(Work::Def(fire_d));
                Some(StepOutcome::Wait(d))
            } else if sn.get() {
                None
            } else if di.get() {
                Some(StepOutcome::Failed(Failure::new(UnhandledException)))
            } else {
                w.push(Work::Num(i));
                Some(StepOutcome::Done)
            }
        });
        let task = cooperator.cooperate(worker);
        cooperator.start();
        Fixture {
            clock,
            cooperator,
            task,
            work,
            defer_next,
            stop_next,
            die_next,
        }
    }

    fn pump(&self) {
        self.clock.advance(1.0);
    }

    fn nums(&self) -> Vec<u32> {
        self.work
            .get()
            .into_iter()
            .map(|w| match w {
                Work::Num(n) => n,
                Work::Def(_) => 0,
            })
            .collect()
    }
}

/// test_pauseResume: no work while paused; resuming does no work by itself.
#[test]
fn test_pause_resume() {
    let fx = Fixture::new();
    fx.pump();
    assert_eq!(fx.nums(), [1]);
    fx.pump();
    assert_eq!(fx.nums(), [1, 2]);

    fx.task.pause().unwrap();
    fx.pump();
    assert_eq!(fx.nums(), [1, 2]);
    fx.task.resume().unwrap();
    assert_eq!(fx.nums(), [1, 2]);
    fx.pump();
    assert_eq!(fx.nums(), [1, 2, 3]);
}

/// test_resumeNotPaused.
#[test]
fn test_resume_not_paused() {
    let fx = Fixture::new();
    assert_eq!(fx.task.resume(), Err(SchedulerError::NotPaused));
    fx.task.pause().unwrap();
    fx.task.resume().unwrap();
    assert_eq!(fx.task.resume(), Err(SchedulerError::NotPaused));
}

/// test_pauseTwice: pauses are counted.
#[test]
fn test_pause_twice() {
    let fx = Fixture::new();
    fx.task.pause().unwrap();
    fx.pump();
    assert!(fx.work.is_empty());
    fx.task.pause().unwrap();
    fx.pump();
    assert!(fx.work.is_empty());
    fx.task.resume().unwrap();
    fx.pump();
    assert!(fx.work.is_empty());
    fx.task.resume().unwrap();
    fx.pump();
    assert_eq!(fx.nums(), [1]);
}

/// test_pauseWhileDeferred: the Deferred must fire *and* the task be resumed.
#[test]
fn test_pause_while_deferred() {
    let fx = Fixture::new();
    fx.defer_next.set(true);
    fx.pump();
    assert_eq!(fx.work.len(), 1);
    let Work::Def(d) = fx.work.get()[0].clone() else {
        panic!("expected a Deferred")
    };
    fx.pump();
    assert_eq!(fx.work.len(), 1);
    fx.task.pause().unwrap();
    fx.pump();
    assert_eq!(fx.work.len(), 1);
    fx.task.resume().unwrap();
    fx.pump();
    assert_eq!(fx.work.len(), 1);
    d.callback(()).unwrap();
    fx.pump();
    assert_eq!(fx.work.len(), 2);
    assert_eq!(fx.work.get()[1], Work::Num(2));
}

/// Paused while waiting, the task needs the resume as well as the Deferred.
#[test]
fn test_pause_while_deferred_resume_after_fire() {
    let fx = Fixture::new();
    fx.defer_next.set(true);
    fx.pump();
    let Work::Def(d) = fx.work.get()[0].clone() else {
        panic!("expected a Deferred")
    };
    fx.task.pause().unwrap();
    d.callback(()).unwrap();
    fx.pump();
    assert_eq!(fx.work.len(), 1);
    // Waiting is not a pause: only the user's pause can be resumed.
    fx.task.resume().unwrap();
    assert_eq!(fx.task.resume(), Err(SchedulerError::NotPaused));
    fx.pump();
    assert_eq!(fx.work.get()[1], Work::Num(2));
}

/// test_whenDone: each call gives a new Deferred; callbacks on one don't affect the other.
#[test]
fn test_when_done() {
    let fx = Fixture::new();
    let d1 = fx.task.when_done();
    let d2 = fx.task.when_done();
    assert!(!d1.ptr_eq(&d2));
    let (r1, r2) = (Log::new(), Log::new());
    let (a, b) = (r1.clone(), r2.clone());
    let final1 = d1.add_callback(move |()| {
        a.push(());
        1
    });
    let final2 = d2.add_callback(move |()| {
        b.push(());
        2
    });
    fx.stop_next.set(true);
    fx.pump();
    assert_eq!(r1.len(), 1);
    assert_eq!(r2.len(), 1);
    assert_eq!(success_result_of(&final1), 1);
    assert_eq!(success_result_of(&final2), 2);
    assert_eq!(fx.task.finished(), Some(SchedulerError::TaskDone));
}

/// test_whenDoneError: the task's failure.
#[test]
fn test_when_done_error() {
    let fx = Fixture::new();
    let d = fx.task.when_done();
    fx.die_next.set(true);
    fx.pump();
    assert!(failure_result_of(&d).is::<UnhandledException>());
}

/// test_whenDoneStop: `stop()` fails `when_done` with TaskStopped at once.
#[test]
fn test_when_done_stop() {
    let fx = Fixture::new();
    let d = fx.task.when_done();
    let errors = Log::new();
    let e = errors.clone();
    let _ = d.add_errback(move |f| {
        e.push(scheduler_error(&f));
        Ok(())
    });
    fx.task.stop().unwrap();
    assert_eq!(errors.get(), [Some(SchedulerError::TaskStopped)]);
}

/// test_whenDoneAlreadyDone: fires at once when already finished.
#[test]
fn test_when_done_already_done() {
    let fx = Fixture::new();
    fx.stop_next.set(true);
    fx.pump();
    success_result_of(&fx.task.when_done());
}

/// test_stopStops: a stopped task does no work; a second stop() or a pause() is TaskStopped.
#[test]
fn test_stop_stops() {
    let fx = Fixture::new();
    fx.task.stop().unwrap();
    fx.pump();
    assert!(fx.work.is_empty());
    assert_eq!(fx.task.stop(), Err(SchedulerError::TaskStopped));
    assert_eq!(fx.task.pause(), Err(SchedulerError::TaskStopped));
    fx.pump();
    assert!(fx.work.is_empty());
    assert!(fx.clock.get_delayed_calls().is_empty());
}

/// test_pauseStopResume: resuming a paused, stopped task is a no-op, not an error.
#[test]
fn test_pause_stop_resume() {
    let fx = Fixture::new();
    fx.task.pause().unwrap();
    fx.task.stop().unwrap();
    fx.task.resume().unwrap();
    fx.pump();
    assert!(fx.work.is_empty());
}

/// test_stopDeferred: a task stopped while waiting is not resumed when the Deferred fires.
/// (The cooperator owns the Deferred's chain, so nothing can be added after its callback.)
#[test]
fn test_stop_deferred() {
    let fx = Fixture::new();
    fx.defer_next.set(true);
    fx.pump();
    let Some(Work::Def(d)) = fx.work.get().pop() else {
        panic!("expected a Deferred")
    };
    fx.pump();
    fx.task.stop().unwrap();
    fx.pump();
    d.callback(()).unwrap();
    fx.pump();
    assert_eq!(fx.work.len(), 1, "no further work");
}

/// test_stopExhausted: TaskDone.
#[test]
fn test_stop_exhausted() {
    let fx = Fixture::new();
    fx.stop_next.set(true);
    fx.pump();
    assert_eq!(fx.task.stop(), Err(SchedulerError::TaskDone));
    assert_eq!(fx.task.pause(), Err(SchedulerError::TaskDone));
}

/// test_stopErrored: TaskFailed.
#[test]
fn test_stop_errored() {
    let fx = Fixture::new();
    let d = fx.task.when_done();
    fx.die_next.set(true);
    fx.pump();
    assert_eq!(fx.task.stop(), Err(SchedulerError::TaskFailed));
    failure_result_of(&d);
}

/// test_stopCooperatorReentrancy: a `when_done` callback stops the cooperator; the task is
/// already finished and removed by then.
#[test]
fn test_stop_cooperator_reentrancy() {
    let fx = Fixture::new();
    let phases = Log::new();
    let (p, coop) = (phases.clone(), fx.cooperator.clone());
    let _ = fx.task.when_done().add_callback(move |()| {
        p.push("result");
        coop.stop();
        p.push("done");
    });
    fx.stop_next.set(true);
    fx.pump();
    assert_eq!(phases.get(), ["result", "done"]);
    assert!(!fx.cooperator.running());
}

// ---- beyond Twisted's tests ----------------------------------------------------------------

/// The default slice is wall-clock time, as Twisted's `_Timer`: on a `Clock`, whose time
/// stands still during a tick, an endless task still lets the tick end.
#[test]
fn test_default_time_slice_ends_endless_tick_on_clock() {
    let clock = Clock::new();
    let coop = Cooperator::new(clock.clone());
    let steps = Rc::new(Cell::new(0u64));
    let s = steps.clone();
    let task = coop.cooperate(std::iter::repeat_with(move || s.set(s.get() + 1)));
    clock.advance(DEFAULT_TICK_DELAY);
    let after_one_tick = steps.get();
    assert!(after_one_tick > 0);
    assert!(
        task.finished().is_none(),
        "the endless task is still running"
    );
    assert_eq!(
        clock.get_delayed_calls().len(),
        1,
        "the next tick is scheduled"
    );
    clock.advance(DEFAULT_TICK_DELAY);
    assert!(steps.get() > after_one_tick);
    task.stop().unwrap();
}

/// With the default slice, finite tasks run to completion over as many ticks as they need.
#[test]
fn test_default_slice_on_clock_finishes_finite_tasks() {
    let clock = Clock::new();
    let coop = Cooperator::new(clock.clone());
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    let d = coop.coiterate((0..10_000).map(move |_| n2.set(n2.get() + 1)));
    // Each tick runs for at most 10 ms of wall-clock time; a loaded machine may need several.
    for _ in 0..10_000 {
        if n.get() == 10_000 {
            break;
        }
        clock.advance(DEFAULT_TICK_DELAY);
    }
    assert_eq!(n.get(), 10_000);
    success_result_of(&d);
    assert!(clock.get_delayed_calls().is_empty());
}

/// Not started: tasks wait for `start()`.
#[test]
fn test_not_started_waits_for_start() {
    let clock = Clock::new();
    let coop = Cooperator::builder(clock.clone())
        .tick_delay(1.0)
        .unwrap()
        .started(false)
        .build();
    let d = coop.coiterate(vec![(), ()]);
    assert!(clock.get_delayed_calls().is_empty());
    clock.advance(5.0);
    assert_no_result(&d);
    coop.start();
    clock.advance(1.0);
    success_result_of(&d);
}

/// `stop()` fails paused tasks too, and `start()` makes the cooperator accept tasks again.
#[test]
fn test_stop_fails_paused_tasks_then_restart() {
    let clock = Clock::new();
    let coop = coop_with(&clock, true);
    let paused = coop.cooperate(std::iter::repeat(()));
    paused.pause().unwrap();
    let d = paused.when_done();
    coop.stop();
    assert_eq!(
        scheduler_error(&failure_result_of(&d)),
        Some(SchedulerError::SchedulerStopped)
    );
    assert_eq!(paused.pause(), Err(SchedulerError::SchedulerStopped));
    paused.resume().unwrap();

    coop.start();
    assert!(coop.running());
    let d = coop.coiterate(vec![()]);
    clock.advance(1.0);
    clock.advance(1.0);
    success_result_of(&d);
}

/// A task may pause, stop or add tasks from inside its own `next()`.
#[test]
fn test_task_controls_itself_from_next() {
    let clock = Clock::new();
    let coop = coop_with(&clock, false);
    let me: Rc<RefCell<Option<CooperativeTask>>> = Rc::new(RefCell::new(None));
    let (m, c) = (me.clone(), coop.clone());
    let log = Log::new();
    let l = log.clone();
    let mut step = 0;
    let task = coop.cooperate(std::iter::from_fn(move || {
        step += 1;
        let t = m.borrow().clone().unwrap();
        match step {
            1 => t.pause().unwrap(),
            2 => {
                let l2 = l.clone();
                let _ = c.coiterate(std::iter::once(()).map(move |()| l2.push("child")));
            }
            _ => t.stop().unwrap(),
        }
        l.push("step");
        Some(())
    }));
    *me.borrow_mut() = Some(task.clone());
    let d = task.when_done();
    clock.advance(1.0);
    assert_eq!(log.get(), ["step"]);
    task.resume().unwrap();
    clock.advance(1.0);
    clock.advance(1.0);
    assert_eq!(log.get(), ["step", "step", "child", "step"]);
    assert_eq!(
        scheduler_error(&failure_result_of(&d)),
        Some(SchedulerError::TaskStopped)
    );
    me.borrow_mut().take();
}

/// A task that advances the clock inside `next()` makes the next tick come due inside the
/// running tick: it does nothing, and the running tick carries on.
#[test]
fn test_reentrant_tick() {
    let clock = Clock::new();
    let coop = coop_with(&clock, true);
    let (c, co) = (clock.clone(), coop.clone());
    let log = Log::new();
    let l = log.clone();
    let d = coop.coiterate((0..3).map(move |i| {
        l.push(i);
        if i == 0 {
            // Adds a task (scheduling a tick, as none is scheduled during a tick), then lets
            // it come due.
            let _ = co.coiterate(std::iter::empty::<()>());
            c.advance(5.0);
        }
    }));
    clock.advance(1.0);
    assert_eq!(log.get(), [0]);
    for _ in 0..5 {
        clock.advance(1.0);
    }
    assert_eq!(log.get(), [0, 1, 2]);
    success_result_of(&d);
}

/// A finished task's iterator is dropped at once.
#[test]
fn test_iterator_dropped_when_finished() {
    struct Tracked(Rc<Cell<bool>>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let clock = Clock::new();
    let coop = Cooperator::new(clock.clone());
    let dropped = Rc::new(Cell::new(false));
    let t = Tracked(dropped.clone());
    let task = coop.cooperate(std::iter::repeat_with(move || {
        let _ = &t;
    }));
    assert!(!dropped.get());
    task.stop().unwrap();
    assert!(dropped.get());
}

#[test]
fn test_debug() {
    let clock = Clock::new();
    let coop = Cooperator::new(clock.clone());
    let task = coop.cooperate(vec![()]);
    assert_eq!(
        format!("{coop:?}"),
        "Cooperator { running: true, runnable_tasks: 1, unfinished_tasks: 1 }"
    );
    assert_eq!(
        format!("{task:?}"),
        "CooperativeTask { pause_count: 0, waiting: false, finished: None }"
    );
    assert_eq!(
        SchedulerError::NotPaused.to_string(),
        "the task was not paused"
    );
    coop.stop();
}

/// A time slice or tick delay that is negative, NaN or infinite is a clear error (an infinite
/// slice used to panic when the cooperator was built).
#[test]
fn test_bad_durations_are_refused() {
    use twistor::task::BadDuration;
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let e = Cooperator::builder(Clock::new()).time_slice(bad).err();
        assert!(
            matches!(
                e,
                Some(BadDuration {
                    what: "time_slice",
                    ..
                })
            ),
            "{bad}"
        );
        let e = Cooperator::builder(Clock::new()).tick_delay(bad).err();
        assert!(
            matches!(
                e,
                Some(BadDuration {
                    what: "tick_delay",
                    ..
                })
            ),
            "{bad}"
        );
    }
    assert!(Cooperator::builder(Clock::new()).time_slice(0.0).is_ok());
}

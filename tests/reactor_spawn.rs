//! Futures on the reactor: `Reactor::spawn`, Twisted's `ensureDeferred`; a future runs on
//! the reactor's thread and gives its result as a Deferred: await Deferreds, cancel by
//! cancelling the Deferred, wake from any thread, panics become failures.

mod util;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use twistor::defer::CancelledError;
use twistor::failure::PanicError;
use twistor::reactor::Reactor;
use twistor::task::defer_later_value;
use twistor::testing::{failure_result_of, success_result_of};
use twistor::time::ReactorTime;
use twistor::{Deferred, Failure};
use util::{Log, bounded, capture_logs, captured_errors};

const LIMIT: u64 = 10;

fn reactor() -> Reactor {
    Reactor::new().expect("a new reactor")
}

/// Stops the reactor when `d` fires (either way), passing its result on.
fn stop_on_result<T: 'static>(reactor: &Reactor, d: Deferred<T>) -> Deferred<T> {
    let r = reactor.clone();
    d.add_both(move |res| {
        r.stop().unwrap();
        res
    })
}

/// Sets a flag when dropped: tells that a future was dropped.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// Panics (a function, so that the future's output type stays explicit).
fn explode() -> u32 {
    panic!("future exploded")
}

/// A future that completes once another thread sets its flag and wakes its waker.
struct WokenFromThread {
    shared: Arc<(AtomicBool, Mutex<Option<Waker>>)>,
    started: bool,
}

impl Future for WokenFromThread {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shared.0.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        *self.shared.1.lock().unwrap() = Some(cx.waker().clone());
        if !self.started {
            self.started = true;
            let shared = self.shared.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(10));
                shared.0.store(true, Ordering::Release);
                let waker = shared.1.lock().unwrap().take();
                if let Some(w) = waker {
                    w.wake();
                }
            });
        }
        Poll::Pending
    }
}

/// A spawned future awaits Deferreds that timed calls fire, in turn, and its result fires the
/// spawned Deferred.
#[test]
fn test_spawn_awaits_deferreds_fired_by_timers() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let steps = Log::new();
        let (r, s) = (reactor.clone(), steps.clone());
        let start = reactor.seconds();
        let d = reactor.spawn(async move {
            s.push("start");
            let a = defer_later_value(r.clone(), 0.01, 20).await?;
            s.push("first");
            let b = defer_later_value(r.clone(), 0.01, 22).await?;
            s.push("second");
            Ok((a + b, r.seconds()))
        });
        // The future started at once, in `spawn`.
        assert_eq!(steps.get(), ["start"]);
        assert_eq!(reactor.task_count(), 1);
        let d = stop_on_result(&reactor, d);
        reactor.run_without_signal_handlers().unwrap();
        let (sum, at) = success_result_of(&d);
        assert_eq!(sum, 42);
        assert!(at >= start + 0.02);
        assert_eq!(steps.get(), ["start", "first", "second"]);
        assert_eq!(reactor.task_count(), 0);
    });
}

/// Cancelling the spawned Deferred drops the future at once (its Drop guard runs, and the
/// Deferred it awaited is cancelled, which cancels that timed call), and the spawned Deferred
/// fails with CancelledError.
#[test]
fn test_spawn_cancel_drops_future() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let dropped = Rc::new(Cell::new(false));
        let events = Log::new();
        let (r, e, flag) = (reactor.clone(), events.clone(), dropped.clone());
        let d = reactor.spawn(async move {
            let _guard = DropFlag(flag);
            defer_later_value(r.clone(), 5.0, ()).await?;
            e.push("finished");
            Ok(())
        });
        assert_eq!(reactor.get_delayed_calls().len(), 1);
        let (r, to_cancel, flag, e) = (
            reactor.clone(),
            d.cancel_handle(),
            dropped.clone(),
            events.clone(),
        );
        reactor.call_later(0.01, move || {
            to_cancel.cancel();
            e.push(if flag.get() { "dropped" } else { "not dropped" });
            r.stop().unwrap();
        });
        reactor.run_without_signal_handlers().unwrap();
        assert!(failure_result_of(&d).is::<CancelledError>());
        assert_eq!(events.get(), ["dropped"]);
        assert_eq!(reactor.task_count(), 0);
        // The 5 s call the future waited on was cancelled with it.
        assert!(reactor.get_delayed_calls().is_empty());
    });
}

/// A future woken by a waker called on another thread completes, on the reactor's thread.
#[test]
fn test_spawn_woken_from_another_thread() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let loop_thread = thread::current().id();
        let d = reactor.spawn(async move {
            WokenFromThread {
                shared: Arc::default(),
                started: false,
            }
            .await;
            Ok(thread::current().id())
        });
        let d = stop_on_result(&reactor, d);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(success_result_of(&d), loop_thread);
    });
}

/// A panic in a spawned future (after an await) fails its Deferred with a PanicError and is
/// logged; the task is gone.
#[test]
fn test_spawn_panicking_future() {
    bounded(LIMIT, || {
        capture_logs();
        let reactor = reactor();
        let r = reactor.clone();
        let d = reactor.spawn(async move {
            defer_later_value(r, 0.01, ()).await?;
            Ok(explode())
        });
        let d = stop_on_result(&reactor, d);
        reactor.run_without_signal_handlers().unwrap();
        let f = failure_result_of(&d);
        assert_eq!(
            f.downcast_ref::<PanicError>().map(|p| p.message.as_str()),
            Some("future exploded")
        );
        assert_eq!(reactor.task_count(), 0);
        let errors = captured_errors();
        assert!(
            errors
                .iter()
                .any(|m| m.contains("spawned future") && m.contains("future exploded")),
            "{errors:?}"
        );
    });
}

/// A future that panics before its first await fails its Deferred within `spawn`.
#[test]
fn test_spawn_panic_on_first_poll() {
    capture_logs();
    let reactor = reactor();
    let d = reactor.spawn(async { Ok(explode()) });
    assert!(failure_result_of(&d).is::<PanicError>());
    assert_eq!(reactor.task_count(), 0);
}

/// A future that never waits completes within `spawn`, with no running reactor.
#[test]
fn test_spawn_ready_future_fires_at_once() {
    let reactor = reactor();
    let d = reactor.spawn(async { Ok::<_, Failure>(5) });
    assert_eq!(success_result_of(&d), 5);
    let d = reactor.spawn(async { Err::<u8, _>(Failure::msg("no")) });
    assert_eq!(failure_result_of(&d).error_message(), "no");
    assert_eq!(reactor.task_count(), 0);
}

/// A future spawned before `run()` waits until the reactor runs, then completes.
#[test]
fn test_spawn_before_run() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let r = reactor.clone();
        let d = reactor.spawn(async move {
            let v = defer_later_value(r.clone(), 0.01, 7).await?;
            Ok((v, r.running()))
        });
        assert_eq!(reactor.task_count(), 1);
        let d = stop_on_result(&reactor, d);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(success_result_of(&d), (7, true));
    });
}

/// Dropping the last handle of a reactor drops its pending futures and cancels its timed
/// calls, so what they captured is released (and their Deferreds are left unfired).
#[test]
fn test_dropping_the_reactor_drops_pending_futures_and_timed_calls() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let reactor = reactor();
    let (future_gone, call_gone) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
    let flag = Flag(future_gone.clone());
    let (g, _gate) = Deferred::<()>::new();
    let d = reactor.spawn(async move {
        let _flag = flag;
        g.await
    });
    let flag = Flag(call_gone.clone());
    let call = reactor.call_later(60.0, move || drop(flag));
    assert_eq!(reactor.task_count(), 1);
    drop(reactor);
    assert!(future_gone.get(), "the future outlived the reactor");
    assert!(call_gone.get(), "the timed call outlived the reactor");
    assert!(!call.active());
    assert!(!d.called());
}

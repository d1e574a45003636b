//! Awaiting Deferreds on the reactor: a spawned future resumes inside the callback of the
//! Deferred it awaits, as a Twisted coroutine does.

mod util;

use std::future::Future;
use twistor::reactor::{Phase, Reactor};
use twistor::task::{ReactOptions, react_with};
use twistor::testing::{assert_no_result, success_result_of};
use twistor::{Deferred, Failure};

use util::{Log, bounded, capture_logs, captured_errors};

const LIMIT: u64 = 20;

/// The code after the `.await` runs inside `callback()`, before it returns, with no reactor
/// turn in between (the reactor is not even running).
#[test]
fn spawned_future_resumes_inside_the_callback() {
    let reactor = Reactor::new().expect("a reactor");
    let log = Log::new();
    let (d, fire) = Deferred::<u32>::new();
    let l = log.clone();
    let task = reactor.spawn(async move {
        let v = d.await?;
        l.push("resumed");
        Ok(v + 1)
    });
    assert_no_result(&task);
    fire.callback(41).unwrap();
    log.push("callback returned");
    assert_eq!(log.get(), ["resumed", "callback returned"]);
    assert_eq!(success_result_of(&task), 42);
}

/// A chain of awaits: each Deferred fired from outside resumes the task at once.
#[test]
fn each_await_resumes_in_its_own_callback() {
    let reactor = Reactor::new().expect("a reactor");
    let log = Log::new();
    let ((a, fire_a), (b, fire_b)) = (Deferred::<u8>::new(), Deferred::<u8>::new());
    let l = log.clone();
    let task = reactor.spawn(async move {
        let x = a.await?;
        l.push(format!("a={x}"));
        let y = b.await?;
        l.push(format!("b={y}"));
        Ok(x + y)
    });
    fire_a.callback(1).unwrap();
    assert_eq!(log.get(), ["a=1"]);
    fire_b.callback(2).unwrap();
    assert_eq!(log.get(), ["a=1", "b=2"]);
    assert_eq!(success_result_of(&task), 3);
}

/// A Deferred fired from inside the task's own poll cannot resume the task there (it is
/// running, further up the stack): the result waits in the future, which the running poll
/// then finds.
#[test]
fn deferred_fired_by_the_task_itself_is_found_by_its_poll() {
    let reactor = Reactor::new().expect("a reactor");
    let task = reactor.spawn(async move {
        let (d, fire) = Deferred::<u8>::new();
        let mut fut = std::pin::pin!(std::future::IntoFuture::into_future(d));
        // Poll once (attaching), then fire while this task is being polled.
        std::future::poll_fn(|cx| {
            assert!(fut.as_mut().poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        fire.callback(5).unwrap();
        fut.await
    });
    assert_eq!(success_result_of(&task), 5);
}

/// `react` on an async main that fails after a Deferred fired during shutdown: the failure
/// reaches `react`, which exits 1 and reports it (before, the future never resumed: no turn
/// follows shutdown, so the error was lost and the exit code was 0).
#[test]
fn react_reports_an_async_main_failing_during_shutdown() {
    bounded(LIMIT, || {
        capture_logs();
        let reactor = Reactor::new().expect("a reactor");
        let code = react_with(
            ReactOptions::new()
                .reactor(&reactor)
                .install_signal_handlers(false),
            |r| {
                let (flushed, fire) = Deferred::<()>::new();
                r.add_system_event_trigger(Phase::Before, "shutdown", move || {
                    let _ = fire.callback(());
                });
                let r2 = r.clone();
                r.call_later(0.01, move || {
                    let _ = r2.stop();
                });
                r.spawn(async move {
                    flushed.await?;
                    Err::<(), _>(Failure::msg("flush failed during shutdown"))
                })
            },
        );
        assert_eq!(code, 1);
        let errors = captured_errors();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("main function encountered error")
                    && e.contains("flush failed during shutdown")),
            "{errors:?}"
        );
    });
}

//! `react`/`react_with` (Twisted's `ReactTests`), on the real reactor with short delays.

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use twistor::reactor::{Phase, Reactor};
use twistor::task::{ReactOptions, SystemExit, defer_later, react_with};
use twistor::{Deferred, Failure};
use util::{capture_logs, captured_errors};

#[derive(Debug, thiserror::Error)]
#[error("boom")]
struct Boom;

fn reactor() -> Reactor {
    Reactor::new().expect("reactor")
}

fn no_signals(r: &Reactor) -> ReactOptions {
    ReactOptions::new()
        .reactor(r)
        .install_signal_handlers(false)
}

/// With no reactor given, `react_with` makes its own and `main` gets it.
#[test]
fn test_default_options_make_a_new_reactor() {
    let seen = Rc::new(Cell::new(false));
    let s = seen.clone();
    let code = react_with(
        ReactOptions::new().install_signal_handlers(false),
        move |r| {
            s.set(!r.running());
            defer_later(r.clone(), 0.01, || Ok::<_, Failure>(()))
        },
    );
    assert_eq!(code, 0);
    assert!(seen.get(), "main did not run before the reactor started");
}

#[test]
fn test_runs_until_async_callback() {
    let r = reactor();
    let start = Instant::now();
    let code = react_with(no_signals(&r), |r| {
        defer_later(r.clone(), 0.05, || Ok::<_, Failure>(()))
    });
    assert_eq!(code, 0);
    assert!(start.elapsed().as_secs_f64() >= 0.05);
}

#[test]
fn test_runs_until_sync_callback() {
    let r = reactor();
    let start = Instant::now();
    let code = react_with(no_signals(&r), |_| Deferred::succeed(()));
    assert_eq!(code, 0);
    assert!(start.elapsed().as_secs_f64() < 1.0, "stops at once");
}

#[test]
fn test_runs_until_async_errback() {
    capture_logs();
    let r = reactor();
    let code = react_with(no_signals(&r), |r| {
        defer_later(r.clone(), 0.02, || Err::<(), _>(Failure::new(Boom)))
    });
    assert_eq!(code, 1);
    let errors = captured_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("main function encountered error"));
}

#[test]
fn test_runs_until_sync_errback() {
    capture_logs();
    let r = reactor();
    let code = react_with(no_signals(&r), |_| Deferred::<()>::fail(Boom));
    assert_eq!(code, 1);
    assert_eq!(captured_errors().len(), 1);
}

#[test]
fn test_exit_with_defined_code() {
    let r = reactor();
    let code = react_with(no_signals(&r), |r| {
        defer_later(r.clone(), 0.01, || {
            Err::<(), _>(Failure::new(SystemExit(5)))
        })
    });
    assert_eq!(code, 5);
}

#[test]
fn test_exit_with_defined_code_sync() {
    let r = reactor();
    assert_eq!(
        react_with(no_signals(&r), |_| Deferred::<()>::fail(SystemExit(0))),
        0
    );
}

/// main's Deferred fires during shutdown (from a before-shutdown trigger, after something else
/// stopped the reactor): react must not call stop() a second time.
#[test]
fn test_single_stop_callback() {
    capture_logs();
    let r = reactor();
    let stops = Rc::new(Cell::new(0));
    let s = stops.clone();
    let code = react_with(no_signals(&r), move |r| {
        let (finished, f) = Deferred::<()>::new();
        r.add_system_event_trigger(Phase::Before, "shutdown", move || {
            f.callback(()).unwrap();
        });
        let r2 = r.clone();
        r.call_later(0.01, move || {
            s.set(s.get() + 1);
            r2.stop().unwrap();
        });
        finished
    });
    assert_eq!(code, 0);
    assert_eq!(stops.get(), 1);
    assert!(captured_errors().is_empty(), "{:?}", captured_errors());
}

#[test]
fn test_async_main_with_spawn() {
    let r = reactor();
    let code = react_with(no_signals(&r), |r| {
        let r = r.clone();
        r.clone().spawn(async move {
            let v = defer_later(r.clone(), 0.01, || Ok::<_, Failure>(2)).await?;
            if v == 2 {
                Err(Failure::new(SystemExit(3)))
            } else {
                Ok(())
            }
        })
    });
    assert_eq!(code, 3);
}

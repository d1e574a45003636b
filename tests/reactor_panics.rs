//! Panics are contained: a panic in code the reactor calls is caught and logged, and the loop
//! keeps running (Twisted logs the exception and goes on).

mod util;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use twistor::reactor::{Phase, Reactor};
use util::{Log, bounded, capture_logs, captured_errors};

const LIMIT: u64 = 10;

fn reactor() -> Reactor {
    Reactor::new().expect("a new reactor")
}

/// Panics with `message` (a function, so that a trigger's return type is `()`).
fn explode(message: &str) {
    panic!("{message}");
}

fn assert_logged(what: &str, message: &str) {
    let errors = captured_errors();
    assert!(
        errors
            .iter()
            .any(|m| m.contains(what) && m.contains(message)),
        "no error containing {what:?} and {message:?} in {errors:?}"
    );
}

/// A panicking delayed call is logged; the reactor keeps running and later calls fire.
#[test]
fn test_panicking_delayed_call() {
    bounded(LIMIT, || {
        capture_logs();
        let reactor = reactor();
        let events = Log::new();
        reactor.call_later(0.01, || panic!("timed call exploded"));
        let e = events.clone();
        reactor.call_later(0.01, move || e.push("same pass"));
        let (r, e) = (reactor.clone(), events.clone());
        reactor.call_later(0.02, move || {
            e.push("later");
            r.stop().unwrap();
        });
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), ["same pass", "later"]);
        assert_logged("while handling timed call", "timed call exploded");
    });
}

/// A panicking call from a thread is logged; the calls after it still run.
#[test]
fn test_panicking_thread_call() {
    bounded(LIMIT, || {
        capture_logs();
        let reactor = reactor();
        let h = reactor.thread_handle();
        let producer = std::thread::spawn(move || {
            h.call_from_thread(|_| panic!("thread call exploded"));
            h.call_from_thread(|r| r.stop().unwrap());
        });
        reactor.run_without_signal_handlers().unwrap();
        producer.join().unwrap();
        assert_logged("while calling from thread", "thread call exploded");
    });
}

/// A panicking system event trigger is logged; the other triggers of the event still run.
#[test]
fn test_panicking_trigger() {
    bounded(LIMIT, || {
        capture_logs();
        let reactor = reactor();
        let events = Log::new();
        reactor.add_system_event_trigger(Phase::Before, "shutdown", || explode("trigger exploded"));
        for (phase, name) in [
            (Phase::Before, "before"),
            (Phase::During, "during"),
            (Phase::After, "after"),
        ] {
            let e = events.clone();
            reactor.add_system_event_trigger(phase, "shutdown", move || e.push(name));
        }
        let r = reactor.clone();
        reactor.call_when_running(move || r.stop().unwrap());
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), ["before", "during", "after"]);
        assert_logged(
            "While calling system event trigger handler",
            "trigger exploded",
        );
    });
}

/// A panicking `call_when_running` function is logged; the next one still runs.
#[test]
fn test_panicking_call_when_running() {
    bounded(LIMIT, || {
        capture_logs();
        let reactor = reactor();
        reactor.call_when_running(|| panic!("startup exploded"));
        let events = Log::new();
        let (r, e) = (reactor.clone(), events.clone());
        reactor.call_when_running(move || {
            e.push("second");
            r.stop().unwrap();
        });
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), ["second"]);
        assert_logged(
            "While calling system event trigger handler",
            "startup exploded",
        );
    });
}

/// A panic in a `call_in_thread` function (on a pool thread) is logged on the reactor's
/// thread; the pool keeps serving jobs.
#[test]
fn test_panicking_call_in_thread() {
    bounded(LIMIT, || {
        capture_logs();
        let reactor = reactor();
        reactor.suggest_thread_pool_size(1);
        reactor.call_in_thread(|| panic!("pool job exploded"));
        let h = reactor.thread_handle();
        reactor.call_in_thread(move || h.call_from_thread(|r| r.stop().unwrap()));
        reactor.run_without_signal_handlers().unwrap();
        assert_logged("panic in call_in_thread", "pool job exploded");
    });
}

/// A panicking descriptor handler is logged and that handler is removed; another descriptor's
/// handler keeps working.
#[test]
fn test_panicking_fd_handler_is_removed() {
    bounded(LIMIT, || {
        capture_logs();
        let reactor = reactor();
        let (bad_w, bad_r) = UnixStream::pair().unwrap();
        let (good_w, good_r) = UnixStream::pair().unwrap();
        bad_r.set_nonblocking(true).unwrap();
        good_r.set_nonblocking(true).unwrap();
        let good_fd = good_r.as_raw_fd();
        let (bad_r, good_r) = (Rc::new(bad_r), Rc::new(good_r));
        let events = Log::new();

        let good_w = Rc::new(good_w);
        let (e, g) = (events.clone(), good_w.clone());
        let _bad = reactor
            .add_reader(bad_r.clone(), move |r| {
                e.push("bad".to_string());
                let (r2, e, g) = (r.clone(), e.clone(), g.clone());
                r.call_later(0.01, move || {
                    // The panicking reader is gone, though its data is still unread.
                    e.push(format!("readers {:?}", r2.get_readers() == [good_fd]));
                    (&*g).write_all(b"first").unwrap();
                    let g = g.clone();
                    r2.call_later(0.01, move || (&*g).write_all(b"second").unwrap());
                });
                panic!("handler exploded");
            })
            .unwrap();
        let e = events.clone();
        let sock = good_r.clone();
        let _good = reactor
            .add_reader(good_r, move |r| {
                let mut buf = [0u8; 16];
                if let Ok(n @ 1..) = (&*sock).read(&mut buf) {
                    e.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    if &buf[..n] == b"second" {
                        r.stop().unwrap();
                    }
                }
            })
            .unwrap();
        (&bad_w).write_all(b"boom").unwrap();
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), ["bad", "readers true", "first", "second"]);
        assert_logged("while handling a ready descriptor", "handler exploded");
        drop(bad_r);
    });
}

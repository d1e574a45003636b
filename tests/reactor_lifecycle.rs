//! The reactor's lifecycle and system event triggers: Twisted's
//! `internet/test/test_core.py::SystemEventTestsBuilder`, on the real reactor.

mod util;

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use twistor::reactor::{Phase, Reactor, ReactorError};
use twistor::{Deferred, Failure};
use util::{Log, bounded, capture_logs, captured_errors};

/// Every test's bound: far above what any of them needs.
const LIMIT: u64 = 10;

fn reactor() -> Reactor {
    Reactor::new().expect("a new reactor")
}

/// Stops the reactor once it is running (Twisted's `callWhenRunning(reactor.stop)`).
fn stop_when_running(reactor: &Reactor) {
    let r = reactor.clone();
    reactor.call_when_running(move || r.stop().expect("the first stop succeeds"));
}

/// Sets a flag when dropped: tells that the reactor let go of a handler.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// Writes into `s` (non-blocking) until its send buffer is full, so it is not writable.
fn fill(s: &UnixStream) {
    s.set_nonblocking(true).unwrap();
    let chunk = [0u8; 65536];
    loop {
        match (&*s).write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("filling the socket: {e}"),
        }
    }
}

/// test_stopWhenNotStarted: `stop()` before `run()` is `NotRunning`.
#[test]
fn test_stop_when_not_started() {
    let reactor = reactor();
    assert!(matches!(reactor.stop(), Err(ReactorError::NotRunning)));
}

/// test_stopWhenAlreadyStopped: `stop()` after the reactor stopped is `NotRunning`.
#[test]
fn test_stop_when_already_stopped() {
    bounded(LIMIT, || {
        let reactor = reactor();
        stop_when_running(&reactor);
        reactor.run_without_signal_handlers().unwrap();
        assert!(matches!(reactor.stop(), Err(ReactorError::NotRunning)));
    });
}

/// A second `stop()` while the first shutdown is in progress (here: from a before-shutdown
/// trigger) is `NotRunning` too (as on Twisted).
#[test]
fn test_second_stop_during_shutdown() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let seen = Log::new();
        let (r, s) = (reactor.clone(), seen.clone());
        reactor.add_system_event_trigger(Phase::Before, "shutdown", move || {
            s.push(matches!(r.stop(), Err(ReactorError::NotRunning)));
        });
        stop_when_running(&reactor);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(seen.get(), [true]);
    });
}

/// test_runAfterStop: a stopped reactor cannot run again (`NotRestartable`), and the second
/// `run()` runs nothing.
#[test]
fn test_run_after_stop() {
    bounded(LIMIT, || {
        let reactor = reactor();
        stop_when_running(&reactor);
        reactor.run_without_signal_handlers().unwrap();
        let ran = Rc::new(Cell::new(false));
        let r = ran.clone();
        reactor.call_when_running(move || r.set(true));
        assert!(matches!(
            reactor.run_without_signal_handlers(),
            Err(ReactorError::NotRestartable)
        ));
        assert!(!ran.get());
        assert!(!reactor.running());
    });
}

/// test_multipleRun: `run()` inside `run()` is `AlreadyRunning`, and the outer run goes on.
#[test]
fn test_multiple_run() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let events = Log::new();
        let (r, e) = (reactor.clone(), events.clone());
        reactor.call_when_running(move || {
            if matches!(
                r.run_without_signal_handlers(),
                Err(ReactorError::AlreadyRunning)
            ) {
                e.push("tested");
            }
        });
        stop_when_running(&reactor);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), ["tested"]);
    });
}

/// test_runAfterCrash: a crashed reactor can run again, and is running the second time.
#[test]
fn test_run_after_crash() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let events = Log::new();
        let (r, e) = (reactor.clone(), events.clone());
        reactor.call_when_running(move || {
            e.push("crash".to_string());
            r.crash();
        });
        reactor.run_without_signal_handlers().unwrap();
        let (r, e) = (reactor.clone(), events.clone());
        reactor.call_when_running(move || {
            e.push(format!("stop running={}", r.running()));
            r.stop().unwrap();
        });
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), ["crash", "stop running=true"]);
    });
}

/// `crash()` while startup waits for a before-startup trigger's Deferred re-arms startup too
/// (as on Twisted): the next `run()` fires startup again, so `running()` becomes true and the
/// `call_when_running` functions (those of the first run included) run. The first firing,
/// completing after the reactor stopped, does not make it running again.
#[test]
fn test_run_after_crash_during_asynchronous_startup() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let events = Log::new();
        let (gate, fire_gate) = Deferred::<()>::new();
        let (g, r) = (gate, reactor.clone());
        reactor.add_system_event_trigger(Phase::Before, "startup", move || {
            let r2 = r.clone();
            r.call_later(0.0, move || r2.crash());
            g
        });
        let (r, e) = (reactor.clone(), events.clone());
        reactor.call_when_running(move || e.push(format!("first running={}", r.running())));
        reactor.run_without_signal_handlers().unwrap();
        assert!(events.is_empty());
        assert!(!reactor.running());

        let (r, e) = (reactor.clone(), events.clone());
        reactor.call_when_running(move || {
            e.push(format!("second running={}", r.running()));
            r.stop().unwrap();
        });
        // If startup never completed, this ends the run (and the test fails on `events`).
        let (r, e) = (reactor.clone(), events.clone());
        let guard = reactor.call_later(2.0, move || {
            e.push("startup never completed".to_string());
            r.crash();
        });
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), ["first running=true", "second running=true"]);
        if guard.active() {
            guard.cancel().unwrap();
        }
        fire_gate.callback(()).unwrap();
        assert!(!reactor.running());
    });
}

/// test_crash: `crash()` stops the loop at once and runs no shutdown trigger.
#[test]
fn test_crash() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let events = Log::new();
        let e = events.clone();
        reactor.add_system_event_trigger(Phase::Before, "shutdown", move || {
            e.push(("before", "shutdown"))
        });
        let r = reactor.clone();
        reactor.call_when_running(move || {
            let r2 = r.clone();
            r.call_later(0.0, move || r2.crash());
        });
        reactor.run_without_signal_handlers().unwrap();
        assert!(!reactor.running());
        assert!(
            events.is_empty(),
            "shutdown triggers ran but they should not have"
        );
    });
}

/// test_stopShutDownEvents: `stop()` fires the shutdown event's before, during and after
/// triggers, in that order.
#[test]
fn test_stop_shut_down_events() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let events = Log::new();
        for phase in [Phase::After, Phase::During, Phase::Before] {
            let e = events.clone();
            reactor.add_system_event_trigger(phase, "shutdown", move || e.push(phase));
        }
        stop_when_running(&reactor);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), [Phase::Before, Phase::During, Phase::After]);
    });
}

/// test_shutdownFiresTriggersAsynchronously: `stop()` itself runs no trigger.
#[test]
fn test_shutdown_fires_triggers_asynchronously() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let events = Log::new();
        let e = events.clone();
        reactor
            .add_system_event_trigger(Phase::Before, "shutdown", move || e.push("before shutdown"));
        let (r, e) = (reactor.clone(), events.clone());
        reactor.call_when_running(move || {
            r.stop().unwrap();
            e.push("stopped");
        });
        assert!(events.is_empty());
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), ["stopped", "before shutdown"]);
    });
}

/// test_runWithAsynchronousBeforeStartupTrigger: a before-startup trigger's Deferred holds the
/// rest of startup back while the loop runs (here, the timed call that fires it).
#[test]
fn test_run_with_asynchronous_before_startup_trigger() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let events = Log::new();
        let (r, e) = (reactor.clone(), events.clone());
        reactor.add_system_event_trigger(Phase::Before, "startup", move || {
            e.push("trigger");
            let (d, fire) = Deferred::<()>::new();
            r.call_later(0.0, move || fire.callback(()).unwrap());
            let (r, e) = (r.clone(), e.clone());
            d.add_callback(move |()| {
                e.push("callback");
                r.stop().unwrap();
            })
        });
        let e = events.clone();
        reactor.call_when_running(move || e.push("running"));
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), ["trigger", "callback", "running"]);
    });
}

/// test_runningForStartupEvents: `running()` is false in before-startup, true in during- and
/// after-startup.
#[test]
fn test_running_for_startup_events() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let state = Log::new();
        for phase in [Phase::Before, Phase::During, Phase::After] {
            let (r, s) = (reactor.clone(), state.clone());
            reactor
                .add_system_event_trigger(phase, "startup", move || s.push((phase, r.running())));
        }
        stop_when_running(&reactor);
        assert!(state.is_empty());
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(
            state.get(),
            [
                (Phase::Before, false),
                (Phase::During, true),
                (Phase::After, true)
            ]
        );
    });
}

/// test_callWhenRunningOrder: `call_when_running` functions run in registration order; once
/// running, `call_when_running` calls at once and returns no trigger.
#[test]
fn test_call_when_running_order() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let events = Log::new();
        for name in ["first", "second"] {
            let e = events.clone();
            assert!(reactor.call_when_running(move || e.push(name)).is_some());
        }
        let (r, e) = (reactor.clone(), events.clone());
        reactor.call_when_running(move || {
            let e2 = e.clone();
            let id = r.call_when_running(move || e2.push("now"));
            e.push(if id.is_none() {
                "no trigger"
            } else {
                "a trigger"
            });
            r.stop().unwrap();
        });
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), ["first", "second", "now", "no trigger"]);
    });
}

/// One turn runs, in this order: the calls from threads, the timed calls, then the I/O
/// handlers (Twisted's `runUntilCurrent` before `doIteration`).
#[test]
fn test_turn_order_thread_calls_timed_calls_io() {
    bounded(LIMIT, || {
        let reactor = reactor();
        // Shared with a call from a "thread", hence `Send`.
        let events = Arc::new(Mutex::new(Vec::new()));
        let (kick_w, kick_r) = UnixStream::pair().unwrap();
        let (io_w, io_r) = UnixStream::pair().unwrap();
        kick_r.set_nonblocking(true).unwrap();
        io_r.set_nonblocking(true).unwrap();
        let e = events.clone();
        let (io_r, kick_r) = (Rc::new(io_r), Rc::new(kick_r));
        let sock = io_r.clone();
        reactor
            .add_reader(io_r, move |r| {
                let mut buf = [0u8; 8];
                if let Ok(1..) = (&*sock).read(&mut buf) {
                    e.lock().unwrap().push(("io", r.iterations()));
                    r.stop().unwrap();
                }
            })
            .unwrap()
            .detach();
        let e = events.clone();
        let mut once = Some(io_w);
        let sock = kick_r.clone();
        reactor
            .add_reader(kick_r, move |r| {
                let _ = (&*sock).read(&mut [0u8; 8]);
                let Some(io_w) = once.take() else { return };
                // All three become due during this turn's I/O step: they run on the next turn.
                let e2 = e.clone();
                r.thread_handle()
                    .call_from_thread(move |r| e2.lock().unwrap().push(("thread", r.iterations())));
                let (e3, r3) = (e.clone(), r.clone());
                r.call_later(0.0, move || {
                    e3.lock().unwrap().push(("timer", r3.iterations()))
                });
                (&io_w).write_all(b"x").unwrap();
                e.lock().unwrap().push(("kick", r.iterations()));
            })
            .unwrap()
            .detach();
        (&kick_w).write_all(b"k").unwrap();
        reactor.run_without_signal_handlers().unwrap();
        let got = events.lock().unwrap().clone();
        let k = got[0].1;
        assert_eq!(
            got,
            [
                ("kick", k),
                ("thread", k + 1),
                ("timer", k + 1),
                ("io", k + 1)
            ]
        );
    });
}

/// A before-shutdown trigger that returns an unfired Deferred delays the rest of shutdown;
/// meanwhile the reactor is still running and serves timed calls and I/O (a socket pair
/// reader); once the Deferred fires, the during triggers run and `run()` returns.
#[test]
fn test_async_before_shutdown_trigger_delays_shutdown_while_serving() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let events = Log::new();
        let (a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let a = Rc::new(a);
        let (gate, fire_gate) = Deferred::<()>::new();

        let (r, e, g, a2) = (reactor.clone(), events.clone(), gate, a.clone());
        reactor.add_system_event_trigger(Phase::Before, "shutdown", move || {
            e.push(format!("before running={}", r.running()));
            let (r2, e) = (r.clone(), e.clone());
            r.call_later(0.01, move || {
                e.push(format!("timer running={}", r2.running()));
                (&*a2).write_all(b"x").unwrap();
            });
            g
        });
        let (e, g) = (events.clone(), fire_gate.clone());
        let mut gate_slot = Some(g);
        let b = Rc::new(b);
        let sock = b.clone();
        let _watch = reactor
            .add_reader(b, move |r| {
                let mut buf = [0u8; 16];
                if let Ok(n @ 1..) = (&*sock).read(&mut buf) {
                    e.push(format!("read {n} running={}", r.running()));
                    if let Some(g) = gate_slot.take() {
                        let e = e.clone();
                        r.call_later(0.01, move || {
                            e.push("fire".to_string());
                            g.callback(()).unwrap();
                        });
                    }
                }
            })
            .unwrap();
        let (r, e) = (reactor.clone(), events.clone());
        reactor.add_system_event_trigger(Phase::During, "shutdown", move || {
            e.push(format!("during readers={}", r.get_readers().len()));
        });
        stop_when_running(&reactor);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(
            events.get(),
            [
                "before running=true",
                "timer running=true",
                "read 1 running=true",
                "fire",
                "during readers=0",
            ]
        );
        drop(a);
    });
}

/// A before-shutdown trigger whose Deferred fails does not block shutdown; the failure is
/// logged.
#[test]
fn test_failing_before_trigger_deferred_does_not_block_shutdown() {
    bounded(LIMIT, || {
        capture_logs();
        let reactor = reactor();
        let events = Log::new();
        let (r, e) = (reactor.clone(), events.clone());
        reactor.add_system_event_trigger(Phase::Before, "shutdown", move || {
            e.push("before");
            let (d, fail) = Deferred::<()>::new();
            r.call_later(0.01, move || {
                fail.errback(Failure::msg("flush failed")).unwrap()
            });
            d
        });
        for (phase, name) in [(Phase::During, "during"), (Phase::After, "after")] {
            let e = events.clone();
            reactor.add_system_event_trigger(phase, "shutdown", move || e.push(name));
        }
        stop_when_running(&reactor);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), ["before", "during", "after"]);
        let errors = captured_errors();
        assert!(
            errors.iter().any(|m| m.contains("flush failed")),
            "{errors:?}"
        );
    });
}

/// A before trigger that fails at once (returns `Err`) is logged, and the event goes on.
#[test]
fn test_failing_before_trigger_is_logged() {
    bounded(LIMIT, || {
        capture_logs();
        let reactor = reactor();
        let events = Log::new();
        reactor.add_system_event_trigger(Phase::Before, "shutdown", || {
            Err(Failure::msg("trigger failed"))
        });
        let e = events.clone();
        reactor.add_system_event_trigger(Phase::During, "shutdown", move || e.push("during"));
        stop_when_running(&reactor);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), ["during"]);
        let errors = captured_errors();
        assert!(
            errors
                .iter()
                .any(|m| m.contains("While calling system event trigger handler")
                    && m.contains("trigger failed")),
            "{errors:?}"
        );
    });
}

/// removeSystemEventTrigger: a removed trigger does not run; removing it again, or removing
/// one that already ran, is an error.
#[test]
fn test_remove_system_event_trigger() {
    let reactor = reactor();
    let events = Log::new();
    let e = events.clone();
    let removed =
        reactor.add_system_event_trigger(Phase::During, "test", move || e.push("removed"));
    let e = events.clone();
    let kept = reactor.add_system_event_trigger(Phase::During, "test", move || e.push("kept"));
    assert_eq!(reactor.remove_system_event_trigger(removed.clone()), Ok(()));
    let err = reactor
        .remove_system_event_trigger(removed.clone())
        .unwrap_err();
    assert_eq!(err.0, removed);
    reactor.fire_system_event("test");
    assert_eq!(events.get(), ["kept"]);
    // Triggers are one-shot: the one that ran is gone.
    assert!(reactor.remove_system_event_trigger(kept).is_err());
}

/// fireSystemEvent: any event name runs its before, during and after triggers in that order,
/// each phase in registration order; triggers run once; an event with no trigger is a no-op.
#[test]
fn test_fire_system_event_custom_event() {
    let reactor = reactor();
    let events = Log::new();
    for (phase, name) in [
        (Phase::After, "after 1"),
        (Phase::During, "during 1"),
        (Phase::Before, "before 1"),
        (Phase::During, "during 2"),
        (Phase::Before, "before 2"),
    ] {
        let e = events.clone();
        reactor.add_system_event_trigger(phase, "persist", move || e.push(name));
    }
    let e = events.clone();
    reactor.add_system_event_trigger(Phase::During, "other", move || e.push("other"));
    reactor.fire_system_event("persist");
    assert_eq!(
        events.get(),
        ["before 1", "before 2", "during 1", "during 2", "after 1"]
    );
    reactor.fire_system_event("persist");
    reactor.fire_system_event("nothing registered");
    assert_eq!(events.len(), 5);
}

/// A custom event's before trigger may return a Deferred: during and after wait for it.
#[test]
fn test_fire_system_event_waits_for_before_deferred() {
    let reactor = reactor();
    let events = Log::new();
    let (gate, fire_gate) = Deferred::<()>::new();
    let (e, g) = (events.clone(), gate);
    reactor.add_system_event_trigger(Phase::Before, "custom", move || {
        e.push("before");
        g
    });
    let e = events.clone();
    reactor.add_system_event_trigger(Phase::During, "custom", move || e.push("during"));
    reactor.fire_system_event("custom");
    assert_eq!(events.get(), ["before"]);
    fire_gate.callback(()).unwrap();
    assert_eq!(events.get(), ["before", "during"]);
}

/// Firing an event again while an earlier firing waits is an independent firing (Twisted's
/// `fireEvent`): it runs the triggers registered since, without waiting for the earlier
/// Deferred; when that Deferred fires, there is nothing left to run.
#[test]
fn test_fire_system_event_again_while_waiting() {
    let reactor = reactor();
    let events = Log::new();
    let (gate, fire_gate) = Deferred::<()>::new();
    let (e, g) = (events.clone(), gate);
    reactor.add_system_event_trigger(Phase::Before, "custom", move || {
        e.push("before");
        g
    });
    let e = events.clone();
    reactor.add_system_event_trigger(Phase::During, "custom", move || e.push("during"));
    reactor.fire_system_event("custom");
    assert_eq!(events.get(), ["before"]);
    reactor.fire_system_event("custom");
    assert_eq!(events.get(), ["before", "during"]);
    fire_gate.callback(()).unwrap();
    assert_eq!(events.get(), ["before", "during"]);
}

/// Shutdown stops watching every descriptor (Twisted's `disconnectAll`), before the user's own
/// during-shutdown triggers, and drops the handlers.
#[test]
fn test_shutdown_removes_watched_descriptors() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let (_a, b) = UnixStream::pair().unwrap();
        let (c, _d) = UnixStream::pair().unwrap();
        fill(&c); // not writable: its writer is watched but idle
        let reader_dropped = Rc::new(Cell::new(false));
        let writer_dropped = Rc::new(Cell::new(false));
        let guard = DropFlag(reader_dropped.clone());
        let (b, c) = (Rc::new(b), Rc::new(c));
        let reading = reactor
            .add_reader(b.clone(), move |_| {
                let _keep = &guard;
            })
            .unwrap();
        let guard = DropFlag(writer_dropped.clone());
        let writing = reactor
            .add_writer(c.clone(), move |_| {
                let _keep = &guard;
            })
            .unwrap();
        assert_eq!(reactor.get_readers(), [b.as_raw_fd()]);
        assert_eq!(reactor.get_writers(), [c.as_raw_fd()]);
        let seen = Log::new();
        let (r, s) = (reactor.clone(), seen.clone());
        reactor.add_system_event_trigger(Phase::During, "shutdown", move || {
            s.push((r.get_readers().len(), r.get_writers().len()));
        });
        stop_when_running(&reactor);
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(seen.get(), [(0, 0)]);
        assert!(reactor.get_readers().is_empty());
        assert!(reactor.get_writers().is_empty());
        assert!(reader_dropped.get() && writer_dropped.get());
        assert!(!reading.is_active() && !writing.is_active());
    });
}

/// `run()` installs SIGTERM handling (only `run()`, not `run_without_signal_handlers()`): the signal stops the reactor
/// gracefully (shutdown triggers run) and is remembered as the exit signal.
#[test]
fn test_sigterm_stops_gracefully() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let events = Log::new();
        let e = events.clone();
        reactor.add_system_event_trigger(Phase::After, "shutdown", move || e.push("after"));
        let r = reactor.clone();
        reactor.call_when_running(move || {
            // The handlers are installed by now; `raise` delivers to this (the loop's) thread.
            r.call_later(0.01, || {
                // SAFETY: raise(3) is safe to call with a valid signal number.
                assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
            });
        });
        reactor.run().unwrap();
        assert_eq!(events.get(), ["after"]);
        assert_eq!(reactor.exit_signal(), Some(libc::SIGTERM));
    });
}

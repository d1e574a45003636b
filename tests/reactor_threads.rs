//! Threads and the reactor: Twisted's `IReactorFromThreads` (`callFromThread`),
//! `IReactorInThreads` (`callInThread`, the thread pool) and `threads.deferToThread`
//! (Twisted's `test_threads.py`).

mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use twistor::failure::PanicError;
use twistor::reactor::{Phase, Reactor};
use twistor::testing::{failure_result_of, success_result_of};
use util::{Log, bounded};

const LIMIT: u64 = 20;

fn reactor() -> Reactor {
    Reactor::new().expect("a new reactor")
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("bad input {0}")]
struct BadInput(u32);

/// Calls from 8 threads, 10,000 each, all run, on the reactor's thread, and each thread's
/// calls run in the order that thread made them.
#[test]
fn test_call_from_thread_many_threads_in_order() {
    const THREADS: usize = 8;
    const CALLS: usize = 10_000;
    bounded(LIMIT, || {
        struct Seen {
            next: Vec<usize>,
            out_of_order: usize,
            off_thread: usize,
            total: usize,
        }
        let reactor = reactor();
        let loop_thread = thread::current().id();
        let seen = Arc::new(Mutex::new(Seen {
            next: vec![0; THREADS],
            out_of_order: 0,
            off_thread: 0,
            total: 0,
        }));
        let mut producers = Vec::new();
        for t in 0..THREADS {
            let (h, seen) = (reactor.thread_handle(), seen.clone());
            producers.push(thread::spawn(move || {
                for i in 0..CALLS {
                    let seen = seen.clone();
                    h.call_from_thread(move |r| {
                        let mut s = seen.lock().unwrap();
                        if s.next[t] != i {
                            s.out_of_order += 1;
                        }
                        s.next[t] = i + 1;
                        if thread::current().id() != loop_thread {
                            s.off_thread += 1;
                        }
                        s.total += 1;
                        if s.total == THREADS * CALLS {
                            r.stop().unwrap();
                        }
                    });
                }
            }));
        }
        reactor.run_without_signal_handlers().unwrap();
        for p in producers {
            p.join().unwrap();
        }
        let s = seen.lock().unwrap();
        assert_eq!(s.total, THREADS * CALLS);
        assert_eq!(s.next, vec![CALLS; THREADS]);
        assert_eq!(s.out_of_order, 0);
        assert_eq!(s.off_thread, 0);
    });
}

/// The loop runs the calls queued when a turn starts; a call queued meanwhile (here, by a
/// thread call itself) runs on the next turn, and promptly (the loop is woken for it: there is
/// nothing else to wake it here).
#[test]
fn test_calls_queued_during_a_turn_run_next_turn() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let turns = Arc::new(Mutex::new(Vec::new()));
        let h = reactor.thread_handle();
        let (t, h2) = (turns.clone(), h.clone());
        h.call_from_thread(move |r| {
            t.lock().unwrap().push(("first", r.iterations()));
            let (t, h3) = (t.clone(), h2.clone());
            h2.call_from_thread(move |r| {
                t.lock().unwrap().push(("second", r.iterations()));
                let t = t.clone();
                h3.call_from_thread(move |r| {
                    t.lock().unwrap().push(("third", r.iterations()));
                    r.stop().unwrap();
                });
            });
        });
        reactor.run_without_signal_handlers().unwrap();
        let turns = turns.lock().unwrap().clone();
        let first = turns[0].1;
        assert_eq!(
            turns,
            [
                ("first", first),
                ("second", first + 1),
                ("third", first + 2)
            ]
        );
    });
}

/// `ThreadHandle::stop` from another thread stops the reactor gracefully (shutdown triggers
/// run); a second request is ignored.
#[test]
fn test_thread_handle_stop() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let events = Log::new();
        for phase in [Phase::Before, Phase::During, Phase::After] {
            let e = events.clone();
            reactor.add_system_event_trigger(phase, "shutdown", move || e.push(phase));
        }
        let h = reactor.thread_handle();
        let stopper = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            h.stop();
            h.stop();
        });
        reactor.run_without_signal_handlers().unwrap();
        stopper.join().unwrap();
        assert_eq!(events.get(), [Phase::Before, Phase::During, Phase::After]);
    });
}

/// defer_to_thread: the function runs on a pool thread, and the Deferred fires with its value
/// on the reactor's thread.
#[test]
fn test_defer_to_thread_success() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let loop_thread = thread::current().id();
        let r = reactor.clone();
        let d = reactor
            .defer_to_thread(|| (thread::current().id(), 6 * 7))
            .add_callback(move |(worker, v)| {
                r.stop().unwrap();
                (worker, thread::current().id(), v)
            });
        reactor.run_without_signal_handlers().unwrap();
        let (worker, callback_thread, v) = success_result_of(&d);
        assert_eq!(v, 42);
        assert_ne!(worker, loop_thread);
        assert_eq!(callback_thread, loop_thread);
    });
}

/// defer_to_thread_try: the function's error fails the Deferred, its type preserved.
#[test]
fn test_defer_to_thread_failure_keeps_error_type() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let r = reactor.clone();
        let d = reactor
            .defer_to_thread_try(|| Err::<u8, _>(BadInput(7)))
            .add_both(move |res| {
                r.stop().unwrap();
                res
            });
        reactor.run_without_signal_handlers().unwrap();
        let f = failure_result_of(&d);
        assert_eq!(f.downcast_ref::<BadInput>(), Some(&BadInput(7)));
    });
}

/// defer_to_thread: a panic on the pool thread fails the Deferred with a PanicError carrying
/// the panic's message.
#[test]
fn test_defer_to_thread_panic() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let r = reactor.clone();
        let d = reactor
            .defer_to_thread(|| -> u8 { panic!("worker exploded") })
            .add_both(move |res| {
                r.stop().unwrap();
                res
            });
        reactor.run_without_signal_handlers().unwrap();
        let f = failure_result_of(&d);
        assert_eq!(
            f.downcast_ref::<PanicError>().map(|p| p.message.as_str()),
            Some("worker exploded")
        );
    });
}

/// call_in_thread runs its function off the reactor's thread, on a pool thread.
#[test]
fn test_call_in_thread_runs_off_loop_thread() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let loop_thread = thread::current().id();
        let seen: Arc<Mutex<Option<(ThreadId, String)>>> = Arc::default();
        let (h, s) = (reactor.thread_handle(), seen.clone());
        reactor.call_in_thread(move || {
            let me = thread::current();
            *s.lock().unwrap() = Some((me.id(), me.name().unwrap_or("").to_string()));
            h.call_from_thread(|r| r.stop().unwrap());
        });
        reactor.run_without_signal_handlers().unwrap();
        let (worker, name) = seen.lock().unwrap().clone().expect("the job ran");
        assert_ne!(worker, loop_thread);
        assert!(name.starts_with("twistor-pool-"), "{name}");
    });
}

/// The pool never runs more jobs at once than its size (suggest_thread_pool_size(2), 10
/// blocking jobs), and does use that many threads.
#[test]
fn test_pool_never_exceeds_its_size() {
    const JOBS: usize = 10;
    bounded(LIMIT, || {
        let reactor = reactor();
        reactor.suggest_thread_pool_size(2);
        let active = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..JOBS {
            let (active, max, done) = (active.clone(), max.clone(), done.clone());
            let h = reactor.thread_handle();
            reactor.call_in_thread(move || {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(30));
                active.fetch_sub(1, Ordering::SeqCst);
                if done.fetch_add(1, Ordering::SeqCst) + 1 == JOBS {
                    h.call_from_thread(|r| r.stop().unwrap());
                }
            });
        }
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(done.load(Ordering::SeqCst), JOBS);
        assert_eq!(max.load(Ordering::SeqCst), 2);
    });
}

/// The pool is stopped at shutdown: the jobs still queued or running finish, and every worker
/// is joined before `run()` returns.
#[test]
fn test_pool_threads_joined_at_shutdown() {
    const JOBS: usize = 4;
    bounded(LIMIT, || {
        let reactor = reactor();
        reactor.suggest_thread_pool_size(2);
        let running = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let r = reactor.clone();
        let (run, fin) = (running.clone(), finished.clone());
        reactor.call_when_running(move || {
            for _ in 0..JOBS {
                let (run, fin) = (run.clone(), fin.clone());
                r.call_in_thread(move || {
                    run.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(50));
                    run.fetch_sub(1, Ordering::SeqCst);
                    fin.fetch_add(1, Ordering::SeqCst);
                });
            }
            r.stop().unwrap();
        });
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(running.load(Ordering::SeqCst), 0);
        assert_eq!(finished.load(Ordering::SeqCst), JOBS);
    });
}

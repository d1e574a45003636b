//! Async code written against the reactor traits (`ReactorSpawn`, `ReactorTime`,
//! `ReactorThreads`) runs on `MemoryReactor` with no sockets, no threads and no real time, and
//! unchanged on the real reactor.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use twistor::defer::{CancelledError, TimeoutError};
use twistor::reactor::{Reactor, ReactorSpawn, ReactorThreads, ensure_deferred};
use twistor::task::defer_later_value;
use twistor::testing::{MemoryReactor, assert_no_result, failure_result_of, success_result_of};
use twistor::{Deferred, Failure, Resolver};
use util::bounded;

/// Requests the client made, so a test can answer them (or not).
type Requests = Rc<RefCell<Vec<Resolver<String>>>>;

/// The client under test: up to `tries` attempts, each given `timeout` seconds, with
/// `backoff` seconds between attempts; the last failure if none succeeds.
async fn fetch<R: ReactorSpawn + Clone + 'static>(
    reactor: R,
    requests: Requests,
    tries: u32,
    timeout: f64,
    backoff: f64,
) -> Result<String, Failure> {
    let mut last = Failure::new(CancelledError);
    for n in 0..tries {
        if n > 0 {
            defer_later_value(reactor.clone(), backoff, ()).await?;
        }
        let (request, resolver) = Deferred::new();
        requests.borrow_mut().push(resolver);
        match request.add_timeout(timeout, &reactor).await {
            Ok(v) => return Ok(v),
            Err(f) => last = f,
        }
    }
    Err(last)
}

/// The first attempt times out, the client waits, retries, and the second answer wins; the
/// timed-out request was cancelled; it all happens in virtual seconds.
#[test]
fn test_client_with_timeout_and_retries_on_memory_reactor() {
    let mr = Rc::new(MemoryReactor::new());
    let requests: Requests = Rc::default();
    let d = mr.spawn(fetch(mr.clone(), requests.clone(), 3, 1.0, 2.0));
    assert_eq!(requests.borrow().len(), 1);

    mr.clock().advance(0.75);
    assert_no_result(&d);
    mr.clock().advance(0.25); // t = 1: the first attempt times out
    assert!(
        requests.borrow()[0].called(),
        "the timed-out request was not cancelled"
    );
    assert_eq!(requests.borrow().len(), 1, "retried before the backoff");

    mr.clock().advance(2.0); // t = 3: the second attempt
    assert_eq!(requests.borrow().len(), 2);
    let second = requests.borrow()[1].clone();
    second.callback("hello".into()).unwrap();
    // The client resumed inside the request's callback, as a Twisted coroutine does.
    assert_eq!(success_result_of(&d), "hello");
    assert!(
        mr.clock().get_delayed_calls().is_empty(),
        "a timer was left"
    );
}

/// Every attempt times out: the client fails with the timeout after exactly
/// `tries * timeout + (tries - 1) * backoff` virtual seconds.
#[test]
fn test_client_gives_up_after_its_retries() {
    let mr = Rc::new(MemoryReactor::new());
    let requests: Requests = Rc::default();
    let d = mr.spawn(fetch(mr.clone(), requests.clone(), 3, 1.0, 2.0));
    // Step by step: an advance moves time first, then runs what is due, so later delays
    // count from the end of each step.
    mr.clock().pump(&[1.0, 2.0, 1.0, 2.0, 0.5]);
    assert_no_result(&d);
    mr.clock().advance(0.5);
    assert!(failure_result_of(&d).is::<TimeoutError>());
    assert_eq!(requests.borrow().len(), 3);
}

/// Cancelling the spawned Deferred drops the future at once (and so its pending timers).
#[test]
fn test_cancelling_a_spawned_future_drops_it() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let mr = Rc::new(MemoryReactor::new());
    let dropped = Rc::new(Cell::new(false));
    let flag = Flag(dropped.clone());
    let r = mr.clone();
    let d = ensure_deferred(&*mr, async move {
        let _flag = flag;
        defer_later_value(r, 10.0, ()).await
    });
    assert_eq!(mr.clock().get_delayed_calls().len(), 1);
    d.cancel();
    assert!(dropped.get());
    assert!(failure_result_of(&d).is::<CancelledError>());
    assert!(mr.clock().get_delayed_calls().is_empty());
}

/// A panic in a spawned future fails its Deferred instead of unwinding into the test.
#[test]
fn test_panicking_spawned_future_fails_its_deferred() {
    let mr = MemoryReactor::new();
    let (g, gate) = Deferred::<()>::new();
    let d = mr.spawn(async move {
        g.await?;
        if true {
            panic!("exploded");
        }
        Ok::<(), Failure>(())
    });
    gate.callback(()).unwrap();
    mr.run_until_stalled();
    assert!(failure_result_of(&d).is::<twistor::failure::PanicError>());
}

/// `defer_to_thread` through the trait: at once on `MemoryReactor`, on a pool thread on the
/// reactor.
#[test]
fn test_defer_to_thread_through_the_trait() {
    fn work(r: &impl ReactorThreads) -> Deferred<u64> {
        r.defer_to_thread(|| (1..=5u64).product())
    }
    assert_eq!(success_result_of(&work(&MemoryReactor::new())), 120);
    bounded(10, || {
        let reactor = Reactor::new().unwrap();
        let r = reactor.clone();
        let d = work(&reactor).add_callback(move |v| {
            let _ = r.stop();
            v
        });
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(success_result_of(&d), 120);
    });
}

/// Answers the second request as soon as it exists (polling every few milliseconds).
fn answer_second(reactor: Reactor, requests: Requests) {
    let second = requests.borrow().get(1).cloned();
    match second {
        Some(d) => {
            let _ = d.callback("late but fine".into());
        }
        None => {
            let r = reactor.clone();
            reactor.call_later(0.002, move || answer_second(r, requests));
        }
    }
}

/// The same client, unchanged, on the real reactor (short real delays).
#[test]
fn test_same_client_on_the_reactor() {
    bounded(10, || {
        let reactor = Reactor::new().unwrap();
        let requests: Requests = Rc::default();
        let d = reactor.spawn(fetch(reactor.clone(), requests.clone(), 3, 0.2, 0.01));
        answer_second(reactor.clone(), requests.clone());
        let r = reactor.clone();
        let result = d.add_both(move |v| {
            let _ = r.stop();
            v
        });
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(success_result_of(&result), "late but fine");
        assert!(requests.borrow()[0].called());
    });
}

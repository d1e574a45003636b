//! `ReconnectingClientFactory` on a `Clock` (Twisted's test_factories.py ReconnectingFactoryTests)
//! and against a real port.

mod util;

use std::cell::Cell;
use std::rc::Rc;

use twistor::protocol::reconnect::{Backoff, Connectable, ReconnectingClientFactory};
use twistor::protocol::{Context, Protocol, for_protocol};
use twistor::{Clock, Failure};

struct P;
impl Protocol for P {
    fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
}

#[derive(Default)]
struct FakeConnector {
    connects: Cell<u32>,
    stops: Cell<u32>,
}
impl Connectable for FakeConnector {
    fn connect(&self) {
        self.connects.set(self.connects.get() + 1);
    }
    fn stop_connecting(&self) {
        self.stops.set(self.stops.get() + 1);
    }
}

fn no_jitter() -> Backoff {
    Backoff {
        jitter: 0.0,
        ..Backoff::default()
    }
}

/// The first retry waits `initial_delay`: the delay grows by `factor` after scheduling.
#[test]
fn test_first_retry_waits_initial_delay() {
    let clock = Clock::new();
    let f = ReconnectingClientFactory::new(for_protocol(|| P), clock.clone())
        .with_backoff(no_jitter())
        .unwrap();
    let c = Rc::new(FakeConnector::default());
    f.connection_failed(c.clone(), Failure::msg("refused"));
    let calls = clock.get_delayed_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].get_time(), 1.0);
    clock.advance(0.999);
    assert_eq!(c.connects.get(), 0);
    clock.advance(0.001);
    assert_eq!(c.connects.get(), 1);
    assert!((f.delay() - std::f64::consts::E).abs() < 1e-12);
}

#[test]
fn test_initial_delay_is_configurable() {
    let clock = Clock::new();
    let f = ReconnectingClientFactory::new(for_protocol(|| P), clock.clone())
        .with_backoff(Backoff {
            initial_delay: 0.25,
            factor: 2.0,
            ..no_jitter()
        })
        .unwrap();
    let c = Rc::new(FakeConnector::default());
    let mut waits = Vec::new();
    for _ in 0..3 {
        let start = clock.seconds();
        f.connection_failed(c.clone(), Failure::msg("refused"));
        let t = clock.get_delayed_calls()[0].get_time() - start;
        waits.push(t);
        clock.advance(t);
    }
    assert_eq!(waits, [0.25, 0.5, 1.0]);
}

/// Two clients made the same way draw different jitter: they do not retry in lockstep.
#[test]
fn test_jitter_differs_between_clients() {
    let first_wait = || {
        let clock = Clock::new();
        let f = ReconnectingClientFactory::new(for_protocol(|| P), clock.clone());
        f.connection_failed(Rc::new(FakeConnector::default()), Failure::msg("x"));
        clock.get_delayed_calls()[0].get_time()
    };
    let waits: Vec<f64> = (0..4).map(|_| first_wait()).collect();
    assert!(
        waits.windows(2).any(|w| w[0] != w[1]),
        "every client waits the same: {waits:?}"
    );
}

/// A seed makes the jitter reproducible.
#[test]
fn test_seeded_jitter_is_reproducible() {
    let waits = || {
        let clock = Clock::new();
        let f = ReconnectingClientFactory::new(for_protocol(|| P), clock.clone()).with_seed(42);
        let c = Rc::new(FakeConnector::default());
        let mut waits = Vec::new();
        for _ in 0..5 {
            let start = clock.seconds();
            f.connection_failed(c.clone(), Failure::msg("x"));
            let t = clock.get_delayed_calls()[0].get_time() - start;
            waits.push(t);
            clock.advance(t);
        }
        waits
    };
    assert_eq!(waits(), waits());
}

#[test]
fn test_delays_grow_by_factor_up_to_max() {
    let clock = Clock::new();
    let f = ReconnectingClientFactory::new(for_protocol(|| P), clock.clone())
        .with_backoff(Backoff {
            max_delay: 30.0,
            ..no_jitter()
        })
        .unwrap();
    let c = Rc::new(FakeConnector::default());
    let mut expected = 1.0f64;
    for i in 0..6 {
        let start = clock.seconds();
        f.connection_failed(c.clone(), Failure::msg("refused"));
        let t = clock.get_delayed_calls()[0].get_time() - start;
        assert!((t - expected).abs() < 1e-9, "retry {i}: {t} != {expected}");
        expected = (expected * std::f64::consts::E).min(30.0);
        clock.advance(t);
        assert_eq!(c.connects.get(), i + 1);
    }
    assert_eq!(f.retries(), 6);
}

#[test]
fn test_jitter_stays_near_delay() {
    let clock = Clock::new();
    let f = ReconnectingClientFactory::new(for_protocol(|| P), clock.clone()).with_seed(7);
    let c = Rc::new(FakeConnector::default());
    f.connection_failed(c.clone(), Failure::msg("x"));
    let t = clock.get_delayed_calls()[0].get_time();
    assert!(t > 0.5 && t < 1.5, "{t}");
}

#[test]
fn test_max_retries() {
    let clock = Clock::new();
    let f = ReconnectingClientFactory::new(for_protocol(|| P), clock.clone())
        .with_backoff(Backoff {
            max_retries: Some(2),
            ..no_jitter()
        })
        .unwrap();
    let c = Rc::new(FakeConnector::default());
    for _ in 0..3 {
        f.connection_failed(c.clone(), Failure::msg("x"));
        clock.advance(10_000.0);
    }
    assert_eq!(c.connects.get(), 2);
}

#[test]
fn test_stop_trying_when_connected() {
    let clock = Clock::new();
    let f = ReconnectingClientFactory::new(for_protocol(|| P), clock.clone())
        .with_backoff(no_jitter())
        .unwrap();
    let c = Rc::new(FakeConnector::default());
    f.connection_failed(c.clone(), Failure::msg("x"));
    f.stop_trying();
    assert!(
        clock.get_delayed_calls().is_empty(),
        "pending retry cancelled"
    );
    assert_eq!(c.stops.get(), 1, "attempt in progress stopped");
    f.connection_lost(c.clone(), Failure::msg("lost"));
    clock.advance(10_000.0);
    assert_eq!(c.connects.get(), 0, "no reconnect after stop_trying");
}

#[test]
fn test_reset_delay() {
    let clock = Clock::new();
    let f = ReconnectingClientFactory::new(for_protocol(|| P), clock.clone())
        .with_backoff(no_jitter())
        .unwrap();
    let c = Rc::new(FakeConnector::default());
    f.connection_failed(c.clone(), Failure::msg("x"));
    clock.advance(100.0);
    f.connection_failed(c.clone(), Failure::msg("x"));
    assert!(f.delay() > 7.0);
    f.reset_delay();
    assert_eq!(f.delay(), 1.0);
    assert_eq!(f.retries(), 0);
    assert!(f.continue_trying());
}

#[test]
fn test_reconnects_to_real_port_after_refusal() {
    use twistor::reactor::Reactor;
    use twistor::transport::tcp::{
        ConnectOptions, ListenOptions, connect_tcp_with, listen_tcp_with,
    };
    util::bounded(20, || {
        let reactor = Reactor::new().expect("reactor");
        // A port that refuses: listen, note the port, stop listening.
        let port = listen_tcp_with(
            &reactor,
            0,
            Rc::new(for_protocol(|| P)),
            ListenOptions::on("127.0.0.1"),
        )
        .unwrap();
        let n = port.port();
        drop(port.stop_listening(&reactor));
        reactor.iterate(std::time::Duration::ZERO).unwrap();
        let connected = Rc::new(Cell::new(false));
        struct Hit(Rc<Cell<bool>>, Reactor);
        impl Protocol for Hit {
            fn connection_made(&mut self, _: &Context<Self>) {
                self.0.set(true);
                let _ = self.1.stop();
            }
            fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
        }
        let (hit, r) = (connected.clone(), reactor.clone());
        let factory = Rc::new(
            ReconnectingClientFactory::new(
                for_protocol(move || Hit(hit.clone(), r.clone())),
                reactor.clone(),
            )
            .with_backoff(Backoff {
                initial_delay: 0.01,
                factor: 2.0,
                jitter: 0.0,
                ..Backoff::default()
            })
            .unwrap(),
        );
        connect_tcp_with(
            &reactor,
            "127.0.0.1",
            n,
            factory,
            ConnectOptions::default().timeout_secs(5.0).unwrap(),
        );
        // After the first refusal, listen again on the same port: a retry connects.
        let r2 = reactor.clone();
        reactor.call_later(0.005, move || {
            let p = listen_tcp_with(
                &r2,
                n,
                Rc::new(for_protocol(|| P)),
                ListenOptions::on("127.0.0.1"),
            );
            // The reactor keeps the port listening; the handle is not needed.
            drop(p);
        });
        reactor.run_without_signal_handlers().unwrap();
        assert!(connected.get());
    });
}

/// NaN and negative parameters are refused, not turned into odd delays.
#[test]
fn test_bad_backoff_is_refused() {
    use twistor::protocol::reconnect::BadBackoff;
    let make = || ReconnectingClientFactory::new(for_protocol(|| P), Clock::new());
    let bad = [
        Backoff {
            initial_delay: f64::NAN,
            ..no_jitter()
        },
        Backoff {
            initial_delay: -1.0,
            ..no_jitter()
        },
        Backoff {
            factor: -2.0,
            ..no_jitter()
        },
        Backoff {
            jitter: f64::NAN,
            ..no_jitter()
        },
        Backoff {
            max_delay: -1.0,
            ..no_jitter()
        },
    ];
    for b in bad {
        assert!(
            matches!(make().with_backoff(b), Err(BadBackoff { .. })),
            "{b:?}"
        );
    }
    let unbounded = Backoff {
        max_delay: f64::INFINITY,
        ..no_jitter()
    };
    assert!(make().with_backoff(unbounded).is_ok());
}

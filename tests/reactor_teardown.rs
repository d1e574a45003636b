//! Dropping the last handle of a reactor closes what it owns: connections (their protocols are
//! released), listening ports, watched descriptors, and the reactor's own descriptors.
//!
//! The tests of this file count the process's open descriptors, which tests running in
//! parallel threads of the same binary would disturb: they take one lock and run one at a
//! time.

mod util;

use std::cell::Cell;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::protocol::{Context, Protocol, for_protocol};
use twistor::reactor::Reactor;
use twistor::transport::tcp::{ListenOptions, connect_tcp, listen_tcp_with};
use util::bounded;

/// Counts connections made and protocols dropped.
struct Flagged {
    made: Rc<Cell<usize>>,
    dropped: Rc<Cell<usize>>,
}

impl Protocol for Flagged {
    fn connection_made(&mut self, _cx: &Context<Self>) {
        self.made.set(self.made.get() + 1);
    }
    fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
}

impl Drop for Flagged {
    fn drop(&mut self) {
        self.dropped.set(self.dropped.get() + 1);
    }
}

/// Held by each test of this file: the descriptor counts of one must not see another's.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Listen, connect, crash (or never run), drop: both protocols are dropped, and every
/// descriptor the reactor opened (port, both connection ends, a watched socket, the poller,
/// the waker) is closed.
#[test]
fn test_dropping_the_reactor_closes_connections_ports_and_descriptors() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    bounded(20, || {
        for crash in [true, false] {
            let before = open_descriptors();
            let made = Rc::new(Cell::new(0));
            let dropped = Rc::new(Cell::new(0));
            let reactor = Reactor::new().expect("a new reactor");
            let (m, d) = (made.clone(), dropped.clone());
            let factory = Rc::new(for_protocol(move || Flagged {
                made: m.clone(),
                dropped: d.clone(),
            }));
            let port =
                listen_tcp_with(&reactor, 0, factory.clone(), ListenOptions::on("127.0.0.1"))
                    .expect("listen");
            let connector = connect_tcp(&reactor, "127.0.0.1", port.port(), factory);
            let (_peer, watched) = UnixStream::pair().expect("a socket pair");
            reactor.add_reader(watched, |_| ()).expect("watch").detach();
            let deadline = Instant::now() + Duration::from_secs(5);
            while made.get() < 2 {
                assert!(Instant::now() < deadline, "never connected");
                reactor.iterate(Duration::from_millis(10)).expect("a turn");
            }
            if crash {
                let r = reactor.clone();
                reactor.call_when_running(move || r.crash());
                reactor.run_without_signal_handlers().expect("run");
            }
            drop(connector);
            assert_eq!(dropped.get(), 0);
            drop(reactor);
            assert_eq!(dropped.get(), 2, "the protocols leaked (crash: {crash})");
            // The port handle is still held: the reactor closed its socket anyway.
            drop(_peer);
            assert_eq!(
                open_descriptors(),
                before,
                "descriptors leaked (crash: {crash})"
            );
            drop(port);
        }
    });
}

/// A connection attempt still in progress when the reactor goes is failed and its socket
/// closed, even while the user still holds its connector.
#[test]
fn test_dropping_the_reactor_closes_connection_attempts() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    bounded(20, || {
        // A real listener, so the attempt is a real in-progress connect, not a refusal.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let before = open_descriptors();
        let reactor = Reactor::new().expect("a new reactor");
        let made = Rc::new(Cell::new(0));
        let dropped = Rc::new(Cell::new(0));
        let (m, d) = (made.clone(), dropped.clone());
        let factory = Rc::new(for_protocol(move || Flagged {
            made: m.clone(),
            dropped: d.clone(),
        }));
        // No turn runs: the attempt is still waiting for its socket to become writable.
        let connector = connect_tcp(&reactor, "127.0.0.1", port, factory);
        assert!(open_descriptors() > before, "no attempt was started");
        drop(reactor);
        assert_eq!(made.get(), 0);
        assert_eq!(
            open_descriptors(),
            before,
            "the attempt's socket outlived the reactor"
        );
        drop(connector);
        drop(listener);
    });
}

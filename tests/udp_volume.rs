//! Volume through a UDP echo server on 127.0.0.1: a client on one reactor keeps a window of
//! datagrams in flight to an echo server on another reactor (another thread), each datagram
//! carrying its sequence number, and counts what it sent, what came back and what was lost
//! (unanswered for 1 s: counted lost and replaced by a new one). Paced by the window, loopback
//! should lose none.
//!
//! The counts are written to stderr (the harness shows them) so a run reports what it saw.
//! Both ends count: the server what it received and what its port dropped, the client what it
//! sent, what came back unchanged, what it counted lost, and strays (late echoes of datagrams
//! already counted lost, or changed ones). Only the count of echoes decides when to stop, so
//! a loss costs a replacement, never a hang.

mod util;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
use twistor::reactor::{Reactor, ThreadHandle};
use twistor::transport::udp::{UdpListenOptions, UdpPort, listen_udp_with};
use util::bounded;

/// Bytes per datagram: the sequence number, then bytes derived from it (checked on return).
const SIZE: usize = 64;
/// Unanswered this long, a datagram counts as lost.
const LOST_AFTER: Duration = Duration::from_secs(1);

fn local() -> UdpListenOptions {
    let mut o = UdpListenOptions::default();
    o.interface = "127.0.0.1".into();
    o
}

/// The echo server's own counts.
#[derive(Debug, Default, Clone, Copy)]
struct ServerCounts {
    received: u64,
    /// Echoes the port dropped because its socket buffer was full.
    dropped: u64,
}

struct Echo {
    received: Rc<RefCell<u64>>,
}

impl DatagramProtocol for Echo {
    fn datagram_received(&mut self, cx: &DatagramContext<Self>, data: &[u8], from: SocketAddr) {
        *self.received.borrow_mut() += 1;
        if let Some(port) = cx.transport() {
            port.write(data, Some(from))
                .expect("echo to a local client");
        }
    }
}

/// An echo server on a reactor of its own thread: its address, a handle to stop it, and the
/// thread, which returns the server's counts.
fn echo_server_thread() -> (
    SocketAddr,
    ThreadHandle,
    std::thread::JoinHandle<ServerCounts>,
) {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let reactor = Reactor::new().unwrap();
        let received = Rc::new(RefCell::new(0));
        let port = listen_udp_with(
            &reactor,
            0,
            Echo {
                received: received.clone(),
            },
            local(),
        )
        .unwrap();
        let addr = port.get_host().socket_addr().unwrap();
        tx.send((addr, reactor.thread_handle())).unwrap();
        reactor.run_without_signal_handlers().unwrap();
        ServerCounts {
            received: *received.borrow(),
            dropped: port.dropped_writes(),
        }
    });
    let (addr, handle) = rx.recv().expect("the echo server thread started");
    (addr, handle, thread)
}

/// What the client saw.
#[derive(Debug, Default, Clone, Copy)]
struct ClientCounts {
    sent: u64,
    echoed: u64,
    lost: u64,
    /// Echoes of datagrams already counted lost, or changed on the way (should be none).
    stray: u64,
}

/// Keeps `window` datagrams in flight until `total` have come back.
struct Pacer {
    to: SocketAddr,
    total: u64,
    window: usize,
    next_seq: u64,
    in_flight: HashMap<u64, Instant>,
    counts: ClientCounts,
}

fn datagram(seq: u64) -> [u8; SIZE] {
    let mut d = [0u8; SIZE];
    d[..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in d[8..].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    d
}

impl Pacer {
    /// Sends new datagrams while the window has room and more are needed.
    fn fill(&mut self, port: &UdpPort) {
        while self.in_flight.len() < self.window
            && self.counts.echoed + (self.in_flight.len() as u64) < self.total
        {
            let seq = self.next_seq;
            self.next_seq += 1;
            port.write(&datagram(seq), Some(self.to))
                .expect("send to the local echo server");
            self.counts.sent += 1;
            self.in_flight.insert(seq, Instant::now());
        }
    }

    /// Counts as lost what waited longer than `LOST_AFTER`, and sends replacements.
    fn expire(&mut self, port: &UdpPort) {
        let now = Instant::now();
        let before = self.in_flight.len();
        self.in_flight
            .retain(|_, sent| now.duration_since(*sent) < LOST_AFTER);
        self.counts.lost += (before - self.in_flight.len()) as u64;
        self.fill(port);
    }
}

impl DatagramProtocol for Pacer {
    fn start_protocol(&mut self, cx: &DatagramContext<Self>) {
        if let Some(port) = cx.transport() {
            self.fill(&port);
        }
    }

    fn datagram_received(&mut self, cx: &DatagramContext<Self>, data: &[u8], _from: SocketAddr) {
        let seq = data
            .get(..8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_be_bytes);
        match seq {
            Some(seq) if data == datagram(seq) && self.in_flight.remove(&seq).is_some() => {
                self.counts.echoed += 1;
            }
            _ => self.counts.stray += 1,
        }
        if let Some(port) = cx.transport() {
            self.fill(&port);
        }
    }
}

/// Runs `total` datagrams through an echo server with `window` in flight, within `limit`;
/// returns both ends' counts and how long it took.
fn run(total: u64, window: usize, limit: Duration) -> (ClientCounts, ServerCounts, Duration) {
    let (server, stop_server, thread) = echo_server_thread();
    let reactor = Reactor::new().unwrap();
    let pacer = Pacer {
        to: server,
        total,
        window,
        next_seq: 0,
        in_flight: HashMap::new(),
        counts: ClientCounts::default(),
    };
    let start = Instant::now();
    let port = listen_udp_with(&reactor, 0, pacer, local()).unwrap();
    let pacer = port.handle::<Pacer>().unwrap();
    let mut last_expiry = Instant::now();
    let counts = loop {
        reactor.iterate(Duration::from_millis(50)).unwrap();
        let counts = pacer.with(|p, _| p.counts).expect("the client protocol");
        if counts.echoed >= total {
            break counts;
        }
        if last_expiry.elapsed() >= Duration::from_millis(100) {
            last_expiry = Instant::now();
            let _ = pacer.with(|p, cx| {
                if let Some(port) = cx.transport() {
                    p.expire(&port);
                }
            });
        }
        assert!(
            start.elapsed() < limit,
            "not done within {limit:?}: {counts:?}"
        );
    };
    let elapsed = start.elapsed();
    stop_server.stop();
    let server_counts = thread.join().expect("the echo server thread");
    let _ = writeln!(
        std::io::stderr(),
        "udp volume: {total} datagrams of {SIZE} bytes, window {window}, in {elapsed:.2?}: \
         client sent {} echoed {} lost {} stray {}; server received {} dropped {}; \
         client dropped {}",
        counts.sent,
        counts.echoed,
        counts.lost,
        counts.stray,
        server_counts.received,
        server_counts.dropped,
        port.dropped_writes(),
    );
    (counts, server_counts, elapsed)
}

fn check(total: u64, limit: Duration) {
    let (client, server, _) = run(total, 64, limit);
    assert_eq!(client.echoed, total);
    assert_eq!(client.lost, 0, "{client:?} {server:?}");
    assert_eq!(client.stray, 0, "{client:?} {server:?}");
    assert_eq!(client.sent, total);
    assert_eq!(server.received, total);
    assert_eq!(server.dropped, 0);
}

/// The full million: about 7 s in the debug build on two cores shared with other work, with
/// the batched datagram I/O (a read call takes up to 32 datagrams, a turn's echoes leave in
/// one `sendmmsg`).
#[test]
fn million_datagrams_echoed_without_loss() {
    bounded(600, || check(1_000_000, Duration::from_secs(580)));
}

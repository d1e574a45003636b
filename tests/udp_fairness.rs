//! A flooded UDP port does not starve a TCP connection on the same reactor: while eight
//! sockets on other threads send datagrams at the port as fast as they can, a TCP echo round
//! trip of K messages completes within a bound, and the UDP port keeps receiving too.
//!
//! The port reads a bounded amount per readiness event and then lets the other ready sources
//! run, so the bound holds however fast the flood is. Each datagram also costs its protocol a
//! little busy work, so the port, not the flood, is the slow side. The bound is loose: the
//! flood's threads take most of the CPU, and what the test rules out is a connection that never
//! gets a turn, not a slow one.
//!
//! Threads racing a reader depend on how the machine schedules them (on a busy one the reader
//! often empties the socket anyway), so a second test floods deterministically: a port that
//! sends each datagram it reads back to itself never empties its queue, and a read loop that
//! ran until the queue was empty would never end.

mod util;

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use twistor::prelude::*;
use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
use twistor::transport::tcp::{ListenOptions, listen_tcp_with};
use twistor::transport::udp::{UdpListenOptions, listen_udp_with};
use util::{bounded, connect_local, read_exact_bytes};

const SENDERS: usize = 8;
/// TCP round trips made while the flood runs.
const ROUND_TRIPS: usize = 100;
/// The bound on all of them: generous, as the flood and other tests share two cores; a
/// starved connection would not finish at all.
const BOUND: Duration = Duration::from_secs(30);

/// The work a datagram costs the protocol (more makes each of the port's turns long enough
/// that the round trips, one or two turns each, no longer fit the bound on two busy cores).
const WORK: Duration = Duration::from_micros(10);

/// Counts datagrams (from the reactor's thread; the test reads the count from its own), each
/// after `WORK` of busy work.
struct Sink(Arc<AtomicU64>);

impl DatagramProtocol for Sink {
    fn datagram_received(&mut self, _cx: &DatagramContext<Self>, _data: &[u8], _: SocketAddr) {
        let t = Instant::now();
        while t.elapsed() < WORK {
            std::hint::spin_loop();
        }
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

struct TcpEcho;

impl Protocol for TcpEcho {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        cx.transport().write(data);
    }
}

/// Clears the flag when dropped, also while a panic unwinds.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Waits until `counter` passes `at_least`, for at most 10 s.
fn wait_for(counter: &AtomicU64, at_least: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while counter.load(Ordering::Relaxed) < at_least {
        assert!(Instant::now() < deadline, "{what} within 10 s");
        std::thread::yield_now();
    }
}

#[test]
fn udp_flood_does_not_starve_tcp_on_the_same_reactor() {
    bounded(120, || {
        let received = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let r = received.clone();
        let reactor_thread = std::thread::spawn(move || {
            let reactor = Reactor::new().unwrap();
            let mut o = UdpListenOptions::default();
            o.interface = "127.0.0.1".into();
            let udp = listen_udp_with(&reactor, 0, Sink(r), o).unwrap();
            let tcp = listen_tcp_with(
                &reactor,
                0,
                for_protocol(|| TcpEcho),
                ListenOptions::on("127.0.0.1"),
            )
            .unwrap();
            let udp_to = udp.get_host().socket_addr().unwrap();
            let tcp_port = tcp.get_host().socket_addr().unwrap().port();
            tx.send((udp_to, tcp_port, reactor.thread_handle()))
                .unwrap();
            reactor.run_without_signal_handlers().unwrap();
        });
        let (udp_to, tcp_port, stop_reactor) = rx.recv().expect("the reactor thread started");

        let flooding = Arc::new(AtomicBool::new(true));
        // A failing assertion below must not leave eight threads flooding the machine.
        let _stop_flood = StopOnDrop(flooding.clone());
        let sent = Arc::new(AtomicU64::new(0));
        let senders: Vec<_> = (0..SENDERS)
            .map(|i| {
                let flooding = flooding.clone();
                let sent = sent.clone();
                std::thread::spawn(move || {
                    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                    let datagram = [i as u8; 512];
                    while flooding.load(Ordering::Relaxed) {
                        // A full receive buffer drops datagrams, not sends: errors are rare
                        // (a transient ENOBUFS) and only slow the flood.
                        if s.send_to(&datagram, udp_to).is_ok() {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        // The flood is on when the port has read some of it.
        wait_for(&received, 1000, "the UDP port received no flood");

        let mut tcp = connect_local(tcp_port);
        let udp_before = received.load(Ordering::Relaxed);
        let start = Instant::now();
        let mut slowest = Duration::ZERO;
        for i in 0..ROUND_TRIPS {
            let msg = format!("message {i:04}\n");
            let t = Instant::now();
            tcp.write_all(msg.as_bytes()).unwrap();
            let back = read_exact_bytes(&mut tcp, msg.len());
            slowest = slowest.max(t.elapsed());
            assert_eq!(back, msg.as_bytes());
            assert!(
                start.elapsed() < BOUND,
                "only {i} TCP round trips within {BOUND:?} under the flood"
            );
        }
        let elapsed = start.elapsed();
        let udp_during = received.load(Ordering::Relaxed) - udp_before;

        flooding.store(false, Ordering::Relaxed);
        for s in senders {
            s.join().expect("a flood sender");
        }
        stop_reactor.stop();
        reactor_thread.join().expect("the reactor thread");
        let _ = writeln!(
            std::io::stderr(),
            "udp fairness: {ROUND_TRIPS} TCP round trips in {elapsed:.2?} (slowest {slowest:.2?}) \
             while {SENDERS} senders sent {} datagrams; the UDP port read {udp_during} during \
             the round trips, {} in all",
            sent.load(Ordering::Relaxed),
            received.load(Ordering::Relaxed),
        );
        // The port was not starved either: it kept reading while TCP was served.
        assert!(
            udp_during > 0,
            "the UDP port read nothing during the round trips"
        );
    });
}

/// Sends every datagram it receives back to its own port: seeded with a few, the port's
/// queue never empties (a send on loopback lands in the queue at once, or at the end of the
/// reactor's turn), so only a bounded read hands the turn on to other sources.
struct Feeder {
    received: Arc<AtomicU64>,
}

impl DatagramProtocol for Feeder {
    fn datagram_received(&mut self, cx: &DatagramContext<Self>, data: &[u8], _: SocketAddr) {
        self.received.fetch_add(1, Ordering::Relaxed);
        if let Some(port) = cx.transport()
            && let Some(me) = port.get_host().socket_addr()
        {
            // A full queue drops the datagram: the flood only gets smaller, never stops.
            let _ = port.write(data, Some(me));
        }
    }
}

#[test]
fn a_port_that_never_drains_does_not_starve_tcp_on_the_same_reactor() {
    bounded(120, || {
        let received = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let r = received.clone();
        let reactor_thread = std::thread::spawn(move || {
            let reactor = Reactor::new().unwrap();
            let mut o = UdpListenOptions::default();
            o.interface = "127.0.0.1".into();
            let udp = listen_udp_with(&reactor, 0, Feeder { received: r }, o).unwrap();
            let me = udp.get_host().socket_addr();
            for i in 0..64u8 {
                udp.write(&[i; 256], me).unwrap();
            }
            let tcp = listen_tcp_with(
                &reactor,
                0,
                for_protocol(|| TcpEcho),
                ListenOptions::on("127.0.0.1"),
            )
            .unwrap();
            let tcp_port = tcp.get_host().socket_addr().unwrap().port();
            tx.send((tcp_port, reactor.thread_handle())).unwrap();
            reactor.run_without_signal_handlers().unwrap();
        });
        let (tcp_port, stop_reactor) = rx.recv().expect("the reactor thread started");
        wait_for(&received, 1000, "the port is not feeding itself");

        let mut tcp = connect_local(tcp_port);
        let udp_before = received.load(Ordering::Relaxed);
        let start = Instant::now();
        for i in 0..ROUND_TRIPS {
            let msg = format!("message {i:04}\n");
            tcp.write_all(msg.as_bytes()).unwrap();
            assert_eq!(read_exact_bytes(&mut tcp, msg.len()), msg.as_bytes());
            assert!(
                start.elapsed() < BOUND,
                "only {i} TCP round trips within {BOUND:?} beside the port"
            );
        }
        let elapsed = start.elapsed();
        let udp_during = received.load(Ordering::Relaxed) - udp_before;
        stop_reactor.stop();
        reactor_thread.join().expect("the reactor thread");
        let _ = writeln!(
            std::io::stderr(),
            "udp fairness: {ROUND_TRIPS} TCP round trips in {elapsed:.2?} beside a port that \
             read {udp_during} datagrams meanwhile"
        );
        assert!(
            udp_during > 0,
            "the UDP port read nothing during the round trips"
        );
    });
}

//! UDP ports on real sockets on 127.0.0.1, bounded in time: Twisted's `test_udp` cases
//! (`test_startStop`, `test_rebind`, `test_oldAddress`, `test_bindError`,
//! `test_connectionRefused`, `test_badConnect`, `test_datagramReceivedError`) and the largest
//! IPv4 datagram.

mod util;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use twistor::error::{InvalidAddressError, MessageLengthError};
use twistor::prelude::*;
use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
use twistor::transport::Address;
use twistor::transport::udp::{UdpError, UdpListenOptions, listen_udp, listen_udp_with};
use util::{Log, bounded};

/// Records every event.
struct Recorder {
    events: Log<String>,
    data: Log<(Vec<u8>, SocketAddr)>,
    /// Panics on datagrams starting with `!`.
    panicky: bool,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            events: Log::new(),
            data: Log::new(),
            panicky: false,
        }
    }
}

impl DatagramProtocol for Recorder {
    fn start_protocol(&mut self, _cx: &DatagramContext<Self>) {
        self.events.push("start".into());
    }
    fn stop_protocol(&mut self, cx: &DatagramContext<Self>) {
        assert!(cx.transport().is_none());
        self.events.push("stop".into());
    }
    fn datagram_received(&mut self, _cx: &DatagramContext<Self>, data: &[u8], from: SocketAddr) {
        if self.panicky && data.starts_with(b"!") {
            panic!("bad datagram");
        }
        self.data.push((data.to_vec(), from));
    }
    fn connection_refused(&mut self, _cx: &DatagramContext<Self>) {
        self.events.push("refused".into());
    }
}

fn local() -> UdpListenOptions {
    let mut o = UdpListenOptions::default();
    o.interface = "127.0.0.1".into();
    o
}

/// Turns the reactor until `done`, for at most 5 s.
fn spin_until(reactor: &Reactor, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within 5 s"
        );
        reactor.iterate(Duration::from_millis(10)).unwrap();
    }
}

fn stop(reactor: &Reactor, port: &twistor::transport::udp::UdpPort) {
    let d = port.stop_listening(reactor);
    spin_until(reactor, || d.has_result());
}

#[test]
fn start_stop_once_per_cycle_and_rebind() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let rec = Recorder::default();
        let events = rec.events.clone();
        let port = listen_udp_with(&reactor, 0, rec, local()).unwrap();
        assert_eq!(events.get(), vec!["start"]);
        // test_oldAddress: the host is a UDP address.
        assert!(matches!(port.get_host(), Address::Udp(a) if a.ip().is_loopback()));
        let handle = port.handle::<Recorder>().unwrap();
        stop(&reactor, &port);
        assert_eq!(events.get(), vec!["start", "stop"]);
        // Stopping twice does not stop the protocol twice.
        stop(&reactor, &port);
        assert_eq!(events.get(), vec!["start", "stop"]);
        // test_rebind: the same protocol on a new port starts again.
        let again = listen_udp_with(&reactor, 0, &handle, local()).unwrap();
        assert_eq!(events.get(), vec!["start", "stop", "start"]);
        // A second port for the same protocol does not start it again, nor does stopping one.
        let second = listen_udp_with(&reactor, 0, &handle, local()).unwrap();
        stop(&reactor, &again);
        assert_eq!(events.get(), vec!["start", "stop", "start"]);
        stop(&reactor, &second);
        assert_eq!(events.get(), vec!["start", "stop", "start", "stop"]);
    });
}

#[test]
fn second_bind_is_cannot_listen() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let port = listen_udp_with(&reactor, 0, Recorder::default(), local()).unwrap();
        let err = listen_udp_with(&reactor, port.port(), Recorder::default(), local()).unwrap_err();
        assert_eq!(err.port, port.port());
        assert_eq!(err.source.kind(), std::io::ErrorKind::AddrInUse);
    });
}

#[test]
fn interface_must_be_an_ip_literal() {
    let reactor = Reactor::new().unwrap();
    let mut o = UdpListenOptions::default();
    o.interface = "localhost".into();
    let err = listen_udp_with(&reactor, 0, Recorder::default(), o).unwrap_err();
    let inner = err
        .source
        .get_ref()
        .and_then(|e| e.downcast_ref::<InvalidAddressError>());
    assert!(inner.is_some(), "{err}");
}

#[test]
fn connected_mode_reports_refused() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        // A port nobody listens on: bind one, note it, close it.
        let closed = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let rec = Recorder::default();
        let events = rec.events.clone();
        let port = listen_udp_with(&reactor, 0, rec, local()).unwrap();
        port.connect("127.0.0.1", closed.port()).unwrap();
        // The ICMP error of one datagram is reported by a later read or write.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !events.get().contains(&"refused".to_string()) {
            assert!(std::time::Instant::now() < deadline, "no refusal reported");
            port.write(b"anyone?", None).unwrap();
            reactor.iterate(Duration::from_millis(20)).unwrap();
        }
        stop(&reactor, &port);
    });
}

#[test]
fn bad_connect_arguments() {
    let reactor = Reactor::new().unwrap();
    let port = listen_udp_with(&reactor, 0, Recorder::default(), local()).unwrap();
    assert!(matches!(
        port.connect("localhost", 80),
        Err(UdpError::InvalidAddress(_))
    ));
    assert!(matches!(
        port.connect("::1", 80),
        Err(UdpError::InvalidAddress(_))
    ));
    port.connect("127.0.0.1", 80).unwrap();
    assert!(matches!(
        port.connect("127.0.0.1", 81),
        Err(UdpError::AlreadyConnected)
    ));
    // Connected: another address is refused, none or the same one is fine.
    let other: SocketAddr = "127.0.0.1:81".parse().unwrap();
    assert!(matches!(
        port.write(b"x", Some(other)),
        Err(UdpError::InvalidAddress(_))
    ));
}

#[test]
fn unconnected_writes_need_an_address_of_the_family() {
    let reactor = Reactor::new().unwrap();
    let port = listen_udp_with(&reactor, 0, Recorder::default(), local()).unwrap();
    assert!(matches!(
        port.write(b"x", None),
        Err(UdpError::InvalidAddress(_))
    ));
    let v6: SocketAddr = "[::1]:9".parse().unwrap();
    assert!(matches!(
        port.write(b"x", Some(v6)),
        Err(UdpError::InvalidAddress(_))
    ));
}

#[test]
fn panicking_datagram_received_does_not_stop_later_datagrams() {
    bounded(20, || {
        util::capture_logs();
        let reactor = Reactor::new().unwrap();
        let rec = Recorder {
            panicky: true,
            ..Default::default()
        };
        let data = rec.data.clone();
        let port = listen_udp_with(&reactor, 0, rec, local()).unwrap();
        let to = port.get_host().socket_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"!boom", to).unwrap();
        client.send_to(b"one", to).unwrap();
        spin_until(&reactor, || data.len() == 1);
        client.send_to(b"!boom", to).unwrap();
        client.send_to(b"two", to).unwrap();
        spin_until(&reactor, || data.len() == 2);
        let got: Vec<Vec<u8>> = data.get().into_iter().map(|(d, _)| d).collect();
        assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(data.get()[0].1, client.local_addr().unwrap());
        stop(&reactor, &port);
    });
}

/// Echoes every datagram back to its sender.
struct Echo;

impl DatagramProtocol for Echo {
    fn datagram_received(&mut self, cx: &DatagramContext<Self>, data: &[u8], from: SocketAddr) {
        if let Some(port) = cx.transport() {
            port.write(data, Some(from)).unwrap();
        }
    }
}

#[test]
fn largest_ipv4_datagram_round_trips_and_longer_is_message_length_error() {
    bounded(20, || {
        const MAX: usize = 65_536 - 29;
        let reactor = Reactor::new().unwrap();
        let mut o = local();
        o.max_packet_size = 65_536;
        let server = listen_udp_with(&reactor, 0, Echo, o.clone()).unwrap();
        let rec = Recorder::default();
        let data = rec.data.clone();
        let client = listen_udp_with(&reactor, 0, rec, o).unwrap();
        let to = server.get_host().socket_addr();
        let big: Vec<u8> = (0..MAX).map(|i| (i % 251) as u8).collect();
        client.write(&big, to).unwrap();
        spin_until(&reactor, || data.len() == 1);
        assert_eq!(data.get()[0].0, big);
        let longer = vec![0u8; MAX + 1];
        assert!(matches!(
            client.write(&longer, to),
            Err(UdpError::MessageLength(MessageLengthError))
        ));
        stop(&reactor, &client);
        stop(&reactor, &server);
    });
}

#[test]
fn ipv6_echo() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let mut o = UdpListenOptions::default();
        o.interface = "::1".into();
        let Ok(server) = listen_udp_with(&reactor, 0, Echo, o) else {
            return; // no IPv6 loopback on this machine
        };
        let client = UdpSocket::bind("[::1]:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        client
            .send_to(b"six", server.get_host().socket_addr().unwrap())
            .unwrap();
        let mut buf = [0u8; 16];
        let n = loop {
            reactor.iterate(Duration::from_millis(10)).unwrap();
            if let Ok((n, _)) = client.recv_from(&mut buf) {
                break n;
            }
        };
        assert_eq!(&buf[..n], b"six");
        stop(&reactor, &server);
    });
}

#[test]
fn broadcast_on_and_off() {
    let reactor = Reactor::new().unwrap();
    let port = listen_udp(&reactor, 0, Echo).unwrap();
    assert!(!port.get_broadcast_allowed().unwrap());
    port.set_broadcast_allowed(true).unwrap();
    assert!(port.get_broadcast_allowed().unwrap());
    port.set_broadcast_allowed(false).unwrap();
    assert!(!port.get_broadcast_allowed().unwrap());
}

/// Counts datagrams; asks its own handle for work from inside the callback.
struct Reentrant {
    seen: u32,
    later: Log<u32>,
}

impl DatagramProtocol for Reentrant {
    fn datagram_received(&mut self, cx: &DatagramContext<Self>, _data: &[u8], _from: SocketAddr) {
        self.seen += 1;
        let later = self.later.clone();
        // The protocol is busy: the closure runs right after this callback, not never.
        let now = cx.handle().with(move |p, _| later.push(p.seen));
        assert!(now.is_none());
    }
}

#[test]
fn handle_inside_a_callback_runs_right_after_it_and_write_sequence_is_one_datagram() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let later = Log::new();
        let proto = Reentrant {
            seen: 0,
            later: later.clone(),
        };
        let port = listen_udp_with(&reactor, 0, proto, local()).unwrap();
        let sender = listen_udp_with(&reactor, 0, Echo, local()).unwrap();
        let to = port.get_host().socket_addr();
        sender.write_sequence(&[b"a", b"b"], to).unwrap();
        sender.write(b"c", to).unwrap();
        spin_until(&reactor, || later.len() == 2);
        assert_eq!(later.get(), vec![1, 2]);
        let handle = port.handle::<Reentrant>().unwrap();
        assert_eq!(handle.with(|p, _| p.seen), Some(2));
        stop(&reactor, &port);
        stop(&reactor, &sender);
        // The ports were the protocol's only owners.
        drop(port);
        assert!(!handle.alive());
    });
}

/// Panics when started and when stopped.
struct BadStart;

impl DatagramProtocol for BadStart {
    fn start_protocol(&mut self, _cx: &DatagramContext<Self>) {
        panic!("cannot start");
    }
    fn stop_protocol(&mut self, _cx: &DatagramContext<Self>) {
        panic!("cannot stop");
    }
    fn datagram_received(&mut self, cx: &DatagramContext<Self>, data: &[u8], from: SocketAddr) {
        if let Some(port) = cx.transport() {
            port.write(data, Some(from)).unwrap();
        }
    }
}

#[test]
fn panics_in_start_and_stop_protocol_are_contained() {
    bounded(20, || {
        util::capture_logs();
        let reactor = Reactor::new().unwrap();
        let port = listen_udp_with(&reactor, 0, BadStart, local()).unwrap();
        // It serves anyway.
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_nonblocking(true).unwrap();
        client
            .send_to(b"still here", port.get_host().socket_addr().unwrap())
            .unwrap();
        let mut buf = [0u8; 32];
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let n = loop {
            assert!(std::time::Instant::now() < deadline, "no echo");
            reactor.iterate(Duration::from_millis(10)).unwrap();
            if let Ok((n, _)) = client.recv_from(&mut buf) {
                break n;
            }
        };
        assert_eq!(&buf[..n], b"still here");
        stop(&reactor, &port);
    });
}

/// Writes `n` numbered datagrams to `to` when started: everything is written in one callback,
/// before any of it can leave.
struct Burst {
    n: u32,
    to: SocketAddr,
}

impl DatagramProtocol for Burst {
    fn start_protocol(&mut self, cx: &DatagramContext<Self>) {
        let port = cx.transport().unwrap();
        for i in 0..self.n {
            port.write(&i.to_be_bytes(), Some(self.to)).unwrap();
        }
    }
    fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: SocketAddr) {}
}

#[test]
fn writes_of_one_turn_leave_together_in_order_and_past_the_bound_are_dropped_and_counted() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let rec = Recorder::default();
        let data = rec.data.clone();
        let mut o = local();
        o.max_packet_size = 16;
        let receiver = listen_udp_with(&reactor, 0, rec, o).unwrap();
        let to = receiver.get_host().socket_addr().unwrap();
        // 100 fit in the queue (and in the receiver's buffer): all arrive, in order.
        let small = listen_udp_with(&reactor, 0, Burst { n: 100, to }, local()).unwrap();
        assert_eq!(small.dropped_writes(), 0);
        spin_until(&reactor, || data.len() == 100);
        let got: Vec<u32> = data
            .get()
            .iter()
            .map(|(d, _)| u32::from_be_bytes(d[..4].try_into().unwrap()))
            .collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        // 5000 in one callback: the queue holds 4096, the rest are dropped and counted.
        let big = listen_udp_with(&reactor, 0, Burst { n: 5000, to }, local()).unwrap();
        assert_eq!(big.dropped_writes(), 5000 - 4096);
        stop(&reactor, &small);
        stop(&reactor, &big);
        stop(&reactor, &receiver);
    });
}

#[test]
fn what_was_written_before_stop_listening_still_leaves() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let port = listen_udp_with(&reactor, 0, Echo, local()).unwrap();
        port.write(b"last words", client.local_addr().ok()).unwrap();
        let stopped = port.stop_listening(&reactor);
        spin_until(&reactor, || stopped.has_result());
        let mut buf = [0u8; 32];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"last words");
        assert_eq!(Some(from), port.get_host().socket_addr());
        assert!(matches!(
            port.write(b"late", client.local_addr().ok()),
            Err(UdpError::NotListening)
        ));
    });
}

#[test]
fn a_send_the_kernel_refuses_is_logged_and_the_port_goes_on() {
    bounded(20, || {
        util::capture_logs();
        let reactor = Reactor::new().unwrap();
        let rec = Recorder::default();
        let data = rec.data.clone();
        let receiver = listen_udp_with(&reactor, 0, rec, local()).unwrap();
        let port = listen_udp(&reactor, 0, Echo).unwrap();
        // Broadcast without SO_BROADCAST: the kernel refuses it (EACCES) when it is sent.
        port.write(b"to all", "255.255.255.255:9".parse().ok())
            .unwrap();
        port.write(b"to one", receiver.get_host().socket_addr())
            .unwrap();
        spin_until(&reactor, || data.len() == 1);
        assert_eq!(data.get()[0].0, b"to one");
        let errors = util::captured_errors();
        assert!(
            errors.iter().any(|e| e.contains("datagram send failed")),
            "{errors:?}"
        );
        stop(&reactor, &port);
        stop(&reactor, &receiver);
    });
}

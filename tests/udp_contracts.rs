//! What a UDP port's writes promise whatever way the port sends (at once, or queued to the end
//! of the reactor's turn): `write_sequence` is one datagram of the joined parts, addresses of
//! the other family and over-long datagrams are refused at the call, writes made before
//! `stop_listening` still leave, and writes after it fail with `NotListening`.
//!
//! Every check turns the reactor before looking at the receiving end, since a port may send
//! only when its turn ends.

mod util;

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use twistor::error::MessageLengthError;
use twistor::prelude::*;
use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
use twistor::transport::udp::{UdpError, UdpListenOptions, UdpPort, listen_udp_with};
use util::bounded;

struct Sink;

impl DatagramProtocol for Sink {
    fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: SocketAddr) {}
}

fn on(interface: &str) -> UdpListenOptions {
    let mut o = UdpListenOptions::default();
    o.interface = interface.into();
    o.max_packet_size = 65_536;
    o
}

/// A plain socket to receive on, non-blocking so the reactor can be turned between reads.
fn receiver(interface: &str) -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind((interface, 0)).unwrap();
    s.set_nonblocking(true).unwrap();
    let addr = s.local_addr().unwrap();
    (s, addr)
}

/// Turns `reactor` and reads `socket` until `n` datagrams came, for at most 5 s.
fn receive(reactor: &Reactor, socket: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 70_000];
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} datagrams within 5 s",
            got.len()
        );
        reactor.iterate(Duration::from_millis(5)).unwrap();
        while let Ok((len, _)) = socket.recv_from(&mut buf) {
            got.push(buf[..len].to_vec());
        }
    }
    got
}

/// Turns `reactor` until `port` has stopped.
fn stop(reactor: &Reactor, port: &UdpPort) {
    let stopped = port.stop_listening(reactor);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !stopped.has_result() {
        assert!(
            Instant::now() < deadline,
            "the port did not stop within 5 s"
        );
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
}

#[test]
fn write_sequence_sends_the_joined_parts_as_one_datagram() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let port = listen_udp_with(&reactor, 0, Sink, on("127.0.0.1")).unwrap();
        let (rx, to) = receiver("127.0.0.1");
        port.write_sequence(&[b"one ", b"", b"data", b"gram"], Some(to))
            .unwrap();
        // No parts at all is the empty datagram, which UDP carries.
        port.write_sequence(&[], Some(to)).unwrap();
        port.write(b"after", Some(to)).unwrap();
        let got = receive(&reactor, &rx, 3);
        assert_eq!(got, [&b"one datagram"[..], b"", b"after"]);
        // The joined length counts: parts that fit alone but not together are refused.
        let half = vec![7u8; 40_000];
        assert!(matches!(
            port.write_sequence(&[&half, &half], Some(to)),
            Err(UdpError::MessageLength(MessageLengthError))
        ));
        stop(&reactor, &port);
    });
}

#[test]
fn connected_port_accepts_its_own_peer_named_or_not() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let port = listen_udp_with(&reactor, 0, Sink, on("127.0.0.1")).unwrap();
        let (rx, to) = receiver("127.0.0.1");
        port.connect("127.0.0.1", to.port()).unwrap();
        port.write(b"unnamed", None).unwrap();
        port.write(b"named", Some(to)).unwrap();
        assert_eq!(receive(&reactor, &rx, 2), [&b"unnamed"[..], b"named"]);
        stop(&reactor, &port);
    });
}

#[test]
fn writes_made_before_stop_listening_are_delivered() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let port = listen_udp_with(&reactor, 0, Sink, on("127.0.0.1")).unwrap();
        let (rx, to) = receiver("127.0.0.1");
        let sent: Vec<Vec<u8>> = (0..50u32).map(|i| i.to_be_bytes().to_vec()).collect();
        for d in &sent {
            port.write(d, Some(to)).unwrap();
        }
        // Asked to stop before the reactor turned even once: what was written still leaves.
        stop(&reactor, &port);
        assert_eq!(receive(&reactor, &rx, sent.len()), sent);
    });
}

#[test]
fn operations_after_stop_listening_fail_with_not_listening() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let port = listen_udp_with(&reactor, 0, Sink, on("127.0.0.1")).unwrap();
        let (rx, to) = receiver("127.0.0.1");
        stop(&reactor, &port);
        assert!(matches!(
            port.write(b"late", Some(to)),
            Err(UdpError::NotListening)
        ));
        assert!(matches!(
            port.write_sequence(&[b"la", b"te"], Some(to)),
            Err(UdpError::NotListening)
        ));
        assert!(matches!(
            port.connect("127.0.0.1", to.port()),
            Err(UdpError::NotListening)
        ));
        assert!(matches!(
            port.set_broadcast_allowed(true),
            Err(UdpError::NotListening)
        ));
        // And nothing left: a refused write is not sent later either.
        for _ in 0..5 {
            reactor.iterate(Duration::from_millis(5)).unwrap();
        }
        let mut buf = [0u8; 16];
        assert!(rx.recv_from(&mut buf).is_err());
    });
}

#[test]
fn ipv4_addresses_are_refused_on_an_ipv6_port() {
    let reactor = Reactor::new().unwrap();
    let Ok(port) = listen_udp_with(&reactor, 0, Sink, on("::1")) else {
        let _ = writeln!(std::io::stderr(), "SKIPPED: no IPv6 loopback on this host");
        return;
    };
    let v4: SocketAddr = "127.0.0.1:9".parse().unwrap();
    assert!(matches!(
        port.write(b"x", Some(v4)),
        Err(UdpError::InvalidAddress(_))
    ));
    assert!(matches!(
        port.connect("127.0.0.1", 9),
        Err(UdpError::InvalidAddress(_))
    ));
}

#[test]
fn largest_ipv6_datagram_leaves_and_one_more_byte_is_message_length_error() {
    bounded(20, || {
        // 65,535 bytes of payload less the 8-byte UDP header (IPv6's header is not counted).
        const MAX: usize = 65_535 - 8;
        let reactor = Reactor::new().unwrap();
        let Ok(port) = listen_udp_with(&reactor, 0, Sink, on("::1")) else {
            let _ = writeln!(std::io::stderr(), "SKIPPED: no IPv6 loopback on this host");
            return;
        };
        let (rx, to) = receiver("::1");
        let big: Vec<u8> = (0..MAX).map(|i| (i % 249) as u8).collect();
        port.write(&big, Some(to)).unwrap();
        assert_eq!(receive(&reactor, &rx, 1), [big]);
        assert!(matches!(
            port.write(&vec![0u8; MAX + 1], Some(to)),
            Err(UdpError::MessageLength(MessageLengthError))
        ));
        stop(&reactor, &port);
    });
}

//! `twistor udp-echo`, run as a process: datagrams echoed over 127.0.0.1 (port 0), the
//! largest IPv4 datagram whole, a busy port refused, and a clean exit on SIGINT.

#[path = "../../tests/util/mod.rs"]
mod util;

use std::net::UdpSocket;
use std::time::Duration;

use util::{RunningExample, port_in, spawn_program};

const WAIT: Duration = Duration::from_secs(10);

fn twistor(args: &[&str]) -> RunningExample {
    spawn_program(
        std::path::Path::new(env!("CARGO_BIN_EXE_twistor")),
        &format!("twistor {}", args.join(" ")),
        args,
    )
}

/// A client socket whose reads give up after 10 s, so a silent server fails the test.
fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c
}

#[test]
fn udp_echo_echoes_datagrams_and_stops_on_sigint() {
    let mut server = twistor(&["udp-echo", "--port", "0", "--interface", "127.0.0.1"]);
    let (_, first) = server.next_line(WAIT);
    assert!(
        first.starts_with("twistor udp-echo listening on udp:127.0.0.1:"),
        "{first:?}"
    );
    let port = port_in(&first);
    let to = ("127.0.0.1", port);
    let c = client();
    let mut buf = vec![0u8; 70_000];
    for msg in [&b"hello"[..], b"", b"world"] {
        c.send_to(msg, to).unwrap();
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], msg);
        assert_eq!(from.port(), port);
    }
    let big: Vec<u8> = (0..65_536 - 29).map(|i| (i % 253) as u8).collect();
    c.send_to(&big, to).unwrap();
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &big[..]);

    // A second server on the same port cannot listen.
    let port_arg = port.to_string();
    let busy = twistor(&["udp-echo", "--port", &port_arg]).wait(WAIT);
    assert_eq!(busy.status.code(), Some(1), "{busy:?}");
    assert!(busy.stderr.contains("Couldn't listen"), "{busy:?}");

    server.wait_for_signal_handlers(&[libc::SIGINT, libc::SIGTERM], WAIT);
    server.signal(libc::SIGINT);
    let done = server.wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(!done.stderr.contains("panicked"), "{done:?}");
}

#[test]
fn udp_echo_refuses_a_named_interface() {
    let done = twistor(&["udp-echo", "--port", "0", "--interface", "localhost"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.contains("IP address literal"), "{done:?}");
}

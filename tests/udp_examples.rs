//! The UDP examples of Twisted's howto, run as processes: `udp_echo_server` answering
//! `udp_connected_client`, the client learning of a refusal when nothing listens, and
//! `multicast_pingpong` over the loopback interface.
//!
//! Multicast over loopback needs a kernel that routes it through `lo`; where it does not
//! (some sandboxes), the example exits 3 and the test says "SKIPPED" on stderr instead of
//! failing, and only for that reason.

mod util;

use std::io::Write;
use std::net::UdpSocket;
use std::time::Duration;

use util::{port_in, spawn_example};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn connected_client_gets_the_echo_server_reply() {
    let mut server = spawn_example("udp_echo_server", &["0"]);
    let (_, first) = server.next_line(WAIT);
    assert!(first.starts_with("echo server on udp:0.0.0.0:"), "{first}");
    let port = port_in(&first);
    let port_arg = port.to_string();
    let done = spawn_example(
        "udp_connected_client",
        &["127.0.0.1", &port_arg, "Hello UDP"],
    )
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    let replies: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        replies,
        [format!("received \"Hello UDP\" from 127.0.0.1:{port}")],
        "{done:?}"
    );
    // The server logged the datagram, from the client's own (ephemeral) port.
    let (_, got) = server.next_line(WAIT);
    assert!(
        got.starts_with("received \"Hello UDP\" from 127.0.0.1:"),
        "{got}"
    );

    // Any datagram, not only the example client's: bytes that are not text come back as
    // they went, and are logged escaped.
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.send_to(b"\x00\xff\"q\"", ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = c.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"\x00\xff\"q\"");
    let (_, got) = server.next_line(WAIT);
    assert!(got.starts_with(r#"received "\x00\xff\"q\"" from"#), "{got}");

    server.wait_for_signal_handlers(&[libc::SIGINT, libc::SIGTERM], WAIT);
    server.signal(libc::SIGINT);
    let done = server.wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(done.stderr.is_empty(), "{done:?}");
}

#[test]
fn connected_client_learns_of_a_refusal_and_exits_3() {
    // A port just closed: bound, noted, closed; nothing listens there now.
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let done = spawn_example("udp_connected_client", &["127.0.0.1", &closed, "anyone?"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(3), "{done:?}");
    let lines: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines, [format!("no one listening on 127.0.0.1:{closed}")]);
    // The refusal is the kernel's answer to the first datagram, well before the 1 s retry.
    assert!(done.elapsed < Duration::from_secs(5), "{done:?}");
}

#[test]
fn connected_client_rejects_a_host_name_and_bad_usage() {
    let done = spawn_example("udp_connected_client", &["localhost", "9", "x"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(
        done.stderr.contains("not an IP address literal"),
        "{done:?}"
    );
    let done = spawn_example("udp_connected_client", &["127.0.0.1", "99999", "x"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(2), "{done:?}");
    let done = spawn_example("udp_connected_client", &["127.0.0.1"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(2), "{done:?}");
    assert!(done.stderr.starts_with("usage: "), "{done:?}");
}

#[test]
fn multicast_pingpong_both_servers_answer() {
    let done = spawn_example("multicast_pingpong", &[]).wait(WAIT);
    if done.status.code() == Some(3) {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: no multicast over loopback here: {}",
            done.stderr.trim()
        );
        return;
    }
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    let lines: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert!(lines[0].starts_with("servers on port "), "{lines:?}");
    assert!(lines[0].ends_with(" joining 228.0.0.5"), "{lines:?}");
    let port = lines[0]
        .split_whitespace()
        .nth(3)
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no port in {:?}", lines[0]));
    // Both servers got the ping sent to the group, from the client's port...
    for server in ["server 1", "server 2"] {
        let prefix = format!("{server} got \"Ping\" from 127.0.0.1:");
        assert!(lines.iter().any(|l| l.starts_with(&prefix)), "{lines:?}");
    }
    // ...and each one's pong came back to the client, sent from the shared port.
    for server in ["server 1", "server 2"] {
        let want = format!("client got \"Pong from {server}\" from 127.0.0.1:{port}");
        assert!(lines.contains(&want.as_str()), "{want} not in {lines:?}");
    }
    assert_eq!(lines.last(), Some(&"both servers answered"), "{lines:?}");
}

#[test]
fn multicast_pingpong_refuses_a_unicast_group() {
    let done = spawn_example("multicast_pingpong", &["127.0.0.1", "0"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.contains("not a multicast address"), "{done:?}");
}

//! The paper's toy server and client ("Separate Concerns"), `examples/reverse_server.rs` and
//! `examples/reverse_client.rs`, run as processes over real TCP on 127.0.0.1.

mod util;

use std::io::Write;
use std::time::Duration;

use util::{
    RunningExample, connect_local, port_in, read_exact_bytes, read_to_eof, spawn_example,
    unused_port,
};

const WAIT: Duration = Duration::from_secs(10);

/// Starts `reverse_server --port 0` and returns it with the port it printed.
fn start_server() -> (RunningExample, u16) {
    let mut server = spawn_example("reverse_server", &["--port", "0"]);
    let (_, first) = server.next_line(WAIT);
    assert!(
        first.starts_with("reverse_server listening on tcp:127.0.0.1:"),
        "{first:?}"
    );
    let port = port_in(&first);
    assert_ne!(port, 0);
    (server, port)
}

fn reversed(s: &str) -> String {
    s.chars().rev().collect()
}

#[test]
fn the_client_prints_the_reversed_text() {
    let (mut server, port) = start_server();
    let client = spawn_example("reverse_client", &["--port", &port.to_string(), "Hello"]);
    let done = client.wait(WAIT);
    assert!(done.status.success(), "{done:?}");
    let lines: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines, ["olleH"], "{done:?}");

    // --host too, and the server serves one client after another.
    let client = spawn_example(
        "reverse_client",
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "a man a plan",
        ],
    );
    let done = client.wait(WAIT);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(done.lines[0].1, "nalp a nam a");

    // Ctrl-C stops the server cleanly.
    server.wait_for_signal_handlers(&[libc::SIGINT], WAIT);
    server.signal(libc::SIGINT);
    let stopped = server.wait(WAIT);
    assert!(stopped.status.success(), "{stopped:?}");
}

#[test]
fn the_server_closes_after_ten_lines() {
    let (_server, port) = start_server();
    let mut conn = connect_local(port);
    let sent: Vec<String> = (0..11).map(|i| format!("line number {i}")).collect();
    // All eleven lines in one write: the server reads them together, answers ten, closes.
    let mut all = String::new();
    for l in &sent {
        all.push_str(l);
        all.push_str("\r\n");
    }
    conn.write_all(all.as_bytes()).unwrap();
    let got = String::from_utf8(read_to_eof(&mut conn)).unwrap();
    let expected: String = sent[..10]
        .iter()
        .map(|l| format!("{}\r\n", reversed(l)))
        .collect();
    assert_eq!(got, expected, "exactly ten replies, then EOF");
}

#[test]
fn each_connection_counts_its_own_lines() {
    let (_server, port) = start_server();
    let mut a = connect_local(port);
    let mut b = connect_local(port);
    a.write_all(b"a1\r\na2\r\na3\r\na4\r\na5\r\n").unwrap();
    assert_eq!(
        read_exact_bytes(&mut a, 20),
        b"1a\r\n2a\r\n3a\r\n4a\r\n5a\r\n"
    );
    // Ten lines on b close b, and a is still open with five lines to go.
    let ten: String = (0..10).map(|i| format!("b{i}\r\n")).collect();
    b.write_all(ten.as_bytes()).unwrap();
    let got = read_to_eof(&mut b);
    assert_eq!(got.len(), 40, "{:?}", String::from_utf8_lossy(&got));
    a.write_all(b"a6\r\na7\r\na8\r\na9\r\na10\r\n").unwrap();
    let rest = read_to_eof(&mut a);
    assert_eq!(rest, b"6a\r\n7a\r\n8a\r\n9a\r\n01a\r\n");
}

#[test]
fn a_line_split_across_writes_is_one_line() {
    let (_server, port) = start_server();
    let mut conn = connect_local(port);
    for part in [&b"He"[..], b"ll", b"o\r", b"\nwor", b"ld\r\n"] {
        conn.write_all(part).unwrap();
        conn.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(read_exact_bytes(&mut conn, 14), b"olleH\r\ndlrow\r\n");
}

#[test]
fn the_client_fails_cleanly_without_a_server() {
    let port = unused_port();
    let client = spawn_example("reverse_client", &["--port", &port.to_string(), "Hello"]);
    let done = client.wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.lines.is_empty(), "{done:?}");
    assert!(
        done.stderr.contains("reverse_client: no reply:")
            && done.stderr.contains("ConnectionRefused"),
        "{:?}",
        done.stderr
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let bad: &[(&str, &[&str])] = &[
        ("reverse_client", &[]),
        ("reverse_client", &["Hello"]),
        ("reverse_client", &["--port", "9999"]),
        ("reverse_client", &["--port", "x", "Hello"]),
        ("reverse_client", &["--port", "70000", "Hello"]),
        ("reverse_client", &["--port", "1", "Hello", "again"]),
        ("reverse_client", &["--port"]),
        ("reverse_client", &["--bogus", "--port", "1", "x"]),
        ("reverse_server", &["--port", "x"]),
        ("reverse_server", &["--port", "65536"]),
        ("reverse_server", &["--port"]),
        ("reverse_server", &["9999"]),
    ];
    for (name, args) in bad {
        let done = spawn_example(name, args).wait(WAIT);
        assert_eq!(done.status.code(), Some(2), "{name} {args:?}: {done:?}");
        assert!(
            done.stderr.contains("usage:") && !done.stderr.contains("panicked"),
            "{name} {args:?}: {:?}",
            done.stderr
        );
    }
    for name in ["reverse_client", "reverse_server"] {
        let done = spawn_example(name, &["--help"]).wait(WAIT);
        assert!(done.status.success(), "{name}: {done:?}");
        assert!(done.lines[0].1.starts_with(&format!("usage: {name}")));
    }
}

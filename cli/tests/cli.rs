//! The `twistor` command, run as a process: every server over real TCP on 127.0.0.1 with
//! port 0, argument errors, and signals.
//!
//! These tests live in the cli crate because `CARGO_BIN_EXE_twistor` (the binary cargo builds
//! for them) only exists for the tests of the crate that owns the binary; `cargo test
//! --workspace` does not otherwise build `target/<profile>/twistor` before the root crate's
//! tests run.

#[path = "../../tests/util/mod.rs"]
mod util;

use std::io::Write;
use std::time::Duration;

use util::{
    RunningExample, connect_local, port_in, read_exact_bytes, read_to_eof, spawn_program,
    unused_port,
};

const WAIT: Duration = Duration::from_secs(10);

fn twistor(args: &[&str]) -> RunningExample {
    spawn_program(
        std::path::Path::new(env!("CARGO_BIN_EXE_twistor")),
        &format!("twistor {}", args.join(" ")),
        args,
    )
}

/// Starts `twistor NAME --port 0 ARGS...`, checks its first line, returns it and its port.
fn start(name: &str, args: &[&str]) -> (RunningExample, u16) {
    let mut all = vec![name, "--port", "0"];
    all.extend_from_slice(args);
    let mut server = twistor(&all);
    let (_, first) = server.next_line(WAIT);
    let prefix = format!("twistor {name} listening on tcp:127.0.0.1:");
    assert!(first.starts_with(&prefix), "{first:?}");
    let port = port_in(&first);
    assert_ne!(port, 0);
    (server, port)
}

/// Sends SIGINT (once the handlers are in) and checks the server exits 0, printing nothing
/// more on stdout.
fn interrupt(mut server: RunningExample, sig: i32) {
    server.wait_for_signal_handlers(&[libc::SIGINT, libc::SIGTERM], WAIT);
    server.signal(sig);
    let done = server.wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(done.lines.is_empty(), "{done:?}");
    assert!(!done.stderr.contains("panicked"), "{done:?}");
}

/// Deterministic bytes (xorshift), so a mix-up shows.
fn pattern(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn echo_round_trip() {
    let (server, port) = start("echo", &[]);
    let mut conn = connect_local(port);
    conn.write_all(b"hello twistor\n").unwrap();
    assert_eq!(read_exact_bytes(&mut conn, 14), b"hello twistor\n");
    // A larger block, written by another thread while this one reads it back.
    let data = pattern(1 << 20);
    let mut writer = conn.try_clone().unwrap();
    let sent = data.clone();
    let w = std::thread::spawn(move || writer.write_all(&sent).map_err(|e| e.to_string()));
    let got = read_exact_bytes(&mut conn, data.len());
    w.join().unwrap().unwrap();
    assert!(got == data, "echoed bytes differ");
    // Closing our side closes the server's side too.
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut conn), b"");
    interrupt(server, libc::SIGINT);
}

#[test]
fn reverse_with_max_lines_2() {
    let (server, port) = start("reverse", &["--max-lines", "2"]);
    let mut conn = connect_local(port);
    conn.write_all(b"abc\r\ndef\r\nghi\r\n").unwrap();
    assert_eq!(read_to_eof(&mut conn), b"cba\r\nfed\r\n");
    interrupt(server, libc::SIGTERM);
}

#[test]
fn reverse_without_max_lines_keeps_answering() {
    let (_server, port) = start("reverse", &[]);
    let mut conn = connect_local(port);
    let lines: String = (0..25).map(|i| format!("{i:03}\r\n")).collect();
    conn.write_all(lines.as_bytes()).unwrap();
    let expected: String = (0..25)
        .map(|i| {
            format!(
                "{}\r\n",
                format!("{i:03}").chars().rev().collect::<String>()
            )
        })
        .collect();
    assert_eq!(
        read_exact_bytes(&mut conn, expected.len()),
        expected.as_bytes()
    );
    conn.write_all(b"still open\r\n").unwrap();
    assert_eq!(read_exact_bytes(&mut conn, 12), b"nepo llits\r\n");
}

#[test]
fn reverse_client_against_reverse() {
    let (server, port) = start("reverse", &["--max-lines", "10"]);
    let p = port.to_string();
    for (text, want) in [("Hello", "olleH"), ("twisted", "detsiwt")] {
        let done = twistor(&["reverse-client", "--port", &p, text]).wait(WAIT);
        assert!(done.status.success(), "{done:?}");
        let lines: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(lines, [want]);
    }
    let done = twistor(&["reverse-client", "--host", "127.0.0.1", "--port", &p, "ab"]).wait(WAIT);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(done.lines[0].1, "ba");
    interrupt(server, libc::SIGINT);
}

#[test]
fn reverse_client_fails_cleanly() {
    // Refused: the failure arrives on a later turn.
    let p = unused_port().to_string();
    let done = twistor(&["reverse-client", "--port", &p, "Hello"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.contains("Connection refused"), "{done:?}");
    // Unreachable: connect(2) fails at once, before the reactor runs; the client must still
    // stop (it used to call `stop()` before `run()`, which ignored it, and hang).
    let done = twistor(&[
        "reverse-client",
        "--host",
        "255.255.255.255",
        "--port",
        "1",
        "x",
    ])
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.lines.is_empty(), "{done:?}");
}

#[test]
fn portforward_in_front_of_reverse() {
    let (reverse, rport) = start("reverse", &["--max-lines", "3"]);
    let (forward, fport) = start(
        "portforward",
        &[
            "--dest-host",
            "127.0.0.1",
            "--dest-port",
            &rport.to_string(),
        ],
    );
    // Lines go through; when the server closes (after three lines), the forwarder closes
    // the client's connection.
    let mut conn = connect_local(fport);
    conn.write_all(b"one\r\n").unwrap();
    assert_eq!(read_exact_bytes(&mut conn, 5), b"eno\r\n");
    conn.write_all(b"two\r\nthree\r\nfour\r\n").unwrap();
    assert_eq!(read_to_eof(&mut conn), b"owt\r\neerht\r\n");
    // The paper's client through the forwarder.
    let done = twistor(&["reverse-client", "--port", &fport.to_string(), "Hello"]).wait(WAIT);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(done.lines[0].1, "olleH");
    // A client closing its side closes the forwarded connection.
    let mut conn = connect_local(fport);
    conn.write_all(b"x\r\n").unwrap();
    assert_eq!(read_exact_bytes(&mut conn, 3), b"x\r\n");
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut conn), b"");
    interrupt(forward, libc::SIGINT);
    interrupt(reverse, libc::SIGINT);
}

#[test]
fn portforward_to_nothing_closes_the_client() {
    let dest = unused_port().to_string();
    let (forward, fport) = start(
        "portforward",
        &["--dest-host", "127.0.0.1", "--dest-port", &dest],
    );
    let mut conn = connect_local(fport);
    assert_eq!(read_to_eof(&mut conn), b"");
    // Bytes sent meanwhile are never read (the forwarder does not read before the
    // destination is connected, as Twisted's): closing with them unread makes the kernel send
    // a reset rather than a FIN. Either way the connection ends, promptly.
    let mut conn = connect_local(fport);
    let _ = conn.write_all(b"anyone?\r\n");
    let mut buf = [0u8; 16];
    match std::io::Read::read(&mut conn, &mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection to end, got {other:?}"),
    }
    interrupt(forward, libc::SIGINT);
}

#[test]
fn help_exits_0() {
    for args in [
        &["--help"][..],
        &["help"],
        &["echo", "--help"],
        &["reverse", "--help"],
        &["reverse-client", "--help"],
        &["portforward", "--help"],
        &["--version"],
    ] {
        let done = twistor(args).wait(WAIT);
        assert_eq!(done.status.code(), Some(0), "{args:?}: {done:?}");
        let out: String = done.lines.iter().map(|(_, l)| format!("{l}\n")).collect();
        assert!(
            out.contains("Usage:") || out.starts_with("twistor"),
            "{out}"
        );
    }
    let done = twistor(&["--help"]).wait(WAIT);
    let out: String = done.lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    for sub in ["echo", "reverse", "reverse-client", "portforward"] {
        assert!(out.contains(sub), "--help lists {sub}: {out}");
    }
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["echo"],
        &["echo", "--port", "x"],
        &["echo", "--port", "70000"],
        &["echo", "--port", "0", "extra"],
        &["reverse", "--port", "0", "--max-lines", "-1"],
        &["reverse", "--port", "0", "--max-lines", "0"],
        &["reverse-client", "--port", "1"],
        &["reverse-client", "Hello"],
        &["portforward", "--port", "0", "--dest-host", "127.0.0.1"],
        &["portforward", "--port", "0", "--dest-port", "1"],
    ] {
        let done = twistor(args).wait(WAIT);
        assert_eq!(done.status.code(), Some(2), "{args:?}: {done:?}");
        assert!(
            (done.stderr.starts_with("error:") || done.stderr.contains("Usage: twistor"))
                && !done.stderr.contains("panicked"),
            "{args:?}: {:?}",
            done.stderr
        );
    }
}

#[test]
fn listen_errors_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let done = twistor(&["echo", "--port", &port]).wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.starts_with("twistor echo: "), "{done:?}");
    let done = twistor(&["reverse", "--port", "0", "--interface", "not-an-ip"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.contains("not-an-ip"), "{done:?}");
}

#[test]
fn sigint_and_sigterm_stop_every_server_with_exit_0() {
    let (echo, _) = start("echo", &[]);
    interrupt(echo, libc::SIGINT);
    let (reverse, rport) = start("reverse", &[]);
    // With a client connected, too.
    let mut conn = connect_local(rport);
    conn.write_all(b"hi\r\n").unwrap();
    assert_eq!(read_exact_bytes(&mut conn, 4), b"ih\r\n");
    let (forward, _) = start(
        "portforward",
        &[
            "--dest-host",
            "127.0.0.1",
            "--dest-port",
            &rport.to_string(),
        ],
    );
    interrupt(forward, libc::SIGINT);
    interrupt(reverse, libc::SIGINT);
    // The server's shutdown closed the connection.
    assert_eq!(read_to_eof(&mut conn), b"");
    let (echo, _) = start("echo", &[]);
    interrupt(echo, libc::SIGTERM);
}

#[test]
fn echo_and_reverse_on_several_threads() {
    for (name, args, send, want) in [
        ("echo", vec!["--threads", "2"], &b"abc"[..], &b"abc"[..]),
        (
            "reverse",
            vec!["--threads", "3"],
            &b"abc\r\n"[..],
            &b"cba\r\n"[..],
        ),
    ] {
        let (server, port) = start(name, &args);
        // Many connections, so the kernel hands some to every thread.
        for _ in 0..20 {
            let mut conn = connect_local(port);
            conn.write_all(send).unwrap();
            assert_eq!(read_exact_bytes(&mut conn, want.len()), want);
        }
        interrupt(server, libc::SIGINT);
    }
}

#[test]
fn discard_reads_and_answers_nothing() {
    let (server, port) = start("discard", &[]);
    let mut conn = connect_local(port);
    conn.write_all(&pattern(1 << 16)).unwrap();
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut conn), b"");
    interrupt(server, libc::SIGINT);
}

#[test]
fn chargen_streams_the_noise() {
    const NOISE: &[u8] = b"@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~ !\"#$%&'()*+,-./0123456789:;<=>?";
    let (server, port) = start("chargen", &[]);
    let mut conn = connect_local(port);
    let got = read_exact_bytes(&mut conn, 1 << 20);
    for (i, b) in got.iter().enumerate() {
        assert_eq!(*b, NOISE[i % NOISE.len()], "byte {i}");
    }
    drop(conn);
    interrupt(server, libc::SIGTERM);
}

#[test]
fn qotd_writes_one_quote_and_closes() {
    let (server, port) = start("qotd", &[]);
    let mut conn = connect_local(port);
    assert_eq!(
        read_to_eof(&mut conn),
        b"An apple a day keeps the doctor away.\r\n"
    );
    drop(conn);
    let (server2, port2) = start("qotd", &["--quote", "Be kind."]);
    assert_eq!(read_to_eof(&mut connect_local(port2)), b"Be kind.\r\n");
    interrupt(server, libc::SIGINT);
    interrupt(server2, libc::SIGINT);
}

#[test]
fn daytime_writes_the_time_and_closes() {
    let (server, port) = start("daytime", &[]);
    let mut conn = connect_local(port);
    let text = String::from_utf8(read_to_eof(&mut conn)).unwrap();
    assert_eq!(text.len(), 26, "{text:?}");
    assert!(text.ends_with("\r\n"), "{text:?}");
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "{text:?}");
    assert_eq!(fields[3].matches(':').count(), 2, "{text:?}");
    interrupt(server, libc::SIGINT);
}

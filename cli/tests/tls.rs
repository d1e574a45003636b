//! `twistor echo` and `twistor reverse` with `--tls-cert/--tls-key`, answering
//! `openssl s_client`, Python's `ssl` module and `twistor reverse-client --tls`; argument and
//! verification errors.

mod tlscerts;
#[path = "../../tests/util/mod.rs"]
mod util;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tlscerts::Certs;
use util::{RunningExample, port_in, spawn_program};

const WAIT: Duration = Duration::from_secs(20);

fn twistor(args: &[&str]) -> RunningExample {
    spawn_program(
        std::path::Path::new(env!("CARGO_BIN_EXE_twistor")),
        &format!("twistor {}", args.join(" ")),
        args,
    )
}

fn start_tls(name: &str, certs: &Certs, extra: &[&str]) -> (RunningExample, u16) {
    let (cert, key) = (certs.path("server.pem"), certs.path("server.key"));
    let mut args = vec![name, "--port", "0", "--tls-cert", &cert, "--tls-key", &key];
    args.extend_from_slice(extra);
    let mut server = twistor(&args);
    let (_, first) = server.next_line(WAIT);
    assert!(
        first.starts_with(&format!("twistor {name} listening on tcp:127.0.0.1:")),
        "{first}"
    );
    let port = port_in(&first);
    (server, port)
}

fn has(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Skips (visibly, outside CI) when a tool is missing.
fn skip(why: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("this test must run in CI, but {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
    true
}

#[test]
fn tls_echo_answers_openssl_s_client() {
    if !has("openssl", "version") && skip("no openssl command") {
        return;
    }
    let certs = Certs::new("s_client");
    let (_server, port) = start_tls("echo", &certs, &[]);
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-CAfile", &certs.path("ca.pem")])
        .args([
            "-verify_hostname",
            "localhost",
            "-verify_return_error",
            "-quiet",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello from s_client\n").unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.ends_with(b"\n") {
                break;
            }
        }
        let _ = tx.send(got);
    });
    let got = rx.recv_timeout(WAIT);
    let _ = child.kill();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let _ = child.wait();
    assert_eq!(
        got.ok().as_deref(),
        Some(&b"hello from s_client\n"[..]),
        "{err}"
    );
}

#[test]
fn tls_echo_answers_a_python_ssl_client() {
    if !has("python3", "--version") && skip("no python3") {
        return;
    }
    let certs = Certs::new("pyssl");
    let (_server, port) = start_tls("echo", &certs, &[]);
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15) as s:
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        msg = b"x" * 100000
        t.sendall(msg)
        got = b""
        while len(got) < len(msg):
            chunk = t.recv(65536)
            if not chunk:
                break
            got += chunk
        print(len(got), got == msg, t.version())
"#;
    let out = Command::new("python3")
        .args(["-c", script, &port.to_string(), &certs.path("ca.pem")])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("100000 True TLSv1."), "{stdout}");
}

#[test]
fn reverse_client_tls_against_reverse_tls_and_the_failures_it_names() {
    let certs = Certs::new("reverse");
    let (_server, port) = start_tls("reverse", &certs, &[]);
    let port = port.to_string();
    let ca = certs.path("ca.pem");
    let done = twistor(&[
        "reverse-client",
        "--port",
        &port,
        "--tls-ca",
        &ca,
        "--tls-hostname",
        "localhost",
        "Hello",
    ])
    .wait(WAIT);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(done.lines.first().map(|(_, l)| l.as_str()), Some("olleH"));
    // Verified against --host when no --tls-hostname: 127.0.0.1 is in the certificate.
    let done = twistor(&["reverse-client", "--port", &port, "--tls-ca", &ca, "abc"]).wait(WAIT);
    assert!(done.status.success(), "{done:?}");
    // A name the certificate does not carry.
    let done = twistor(&[
        "reverse-client",
        "--port",
        &port,
        "--tls-ca",
        &ca,
        "--tls-hostname",
        "wrong.example",
        "x",
    ])
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(
        done.stderr
            .contains("not valid for the host name \"wrong.example\""),
        "{done:?}"
    );
    // The system roots do not know the test CA.
    let done = twistor(&["reverse-client", "--port", &port, "--tls", "x"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.contains("unknown authority"), "{done:?}");
}

#[test]
fn tls_flags_need_each_other_and_readable_files() {
    let done = twistor(&["echo", "--port", "0", "--tls-cert", "/nonexistent.pem"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(2), "{done:?}");
    let done = twistor(&[
        "echo",
        "--port",
        "0",
        "--tls-cert",
        "/nonexistent.pem",
        "--tls-key",
        "/nonexistent.key",
    ])
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(2), "{done:?}");
    assert!(done.stderr.contains("/nonexistent.pem"), "{done:?}");
    // A certificate file given as the key: no private key in it.
    let certs = Certs::new("flags");
    let cert = certs.path("server.pem");
    let done = twistor(&[
        "echo",
        "--port",
        "0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &cert,
    ])
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(2), "{done:?}");
    assert!(done.stderr.contains("no private key"), "{done:?}");
}

#[test]
fn tls_echo_on_several_threads_answers_every_connection() {
    let certs = Certs::new("threads");
    let (_server, port) = start_tls("echo", &certs, &["--threads", "2"]);
    let port = port.to_string();
    let ca = certs.path("ca.pem");
    for i in 0..6 {
        let text = format!("connection {i}");
        let done = twistor(&["reverse-client", "--port", &port, "--tls-ca", &ca, &text]).wait(WAIT);
        assert!(done.status.success(), "{done:?}");
        // The echo server sends the line back as it came.
        assert_eq!(
            done.lines.first().map(|(_, l)| l.as_str()),
            Some(text.as_str())
        );
    }
}

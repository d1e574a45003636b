//! The TLS examples run as processes: the TLS echo server and client, the STARTTLS server and
//! client, and the STARTTLS ones against real Twisted's `startTLS`
//! (`tests/interop/twisted_starttls.py`, Python from `TWISTOR_PYTHON` or a `python3` that
//! imports Twisted with its TLS extra; skipped visibly without one, except under CI).

mod tlsutil;
mod util;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use util::{RunningExample, port_in, spawn_example, spawn_program};

const WAIT: Duration = Duration::from_secs(20);

/// Starts a server example; returns it, its port and the CA path it printed.
fn start(name: &str) -> (RunningExample, String, String) {
    let mut server = spawn_example(name, &["0"]);
    let (_, first) = server.next_line(WAIT);
    let port = port_in(&first).to_string();
    let (_, second) = server.next_line(WAIT);
    let ca = second
        .strip_prefix("CA certificate: ")
        .unwrap_or_else(|| panic!("{second:?}"))
        .to_string();
    (server, port, ca)
}

#[test]
fn tls_echo_client_against_tls_echo_server() {
    let (mut server, port, ca) = start("tls_echo_server");
    let done = spawn_example("tls_echo_client", &[&port, &ca, "hello over tls"]).wait(WAIT);
    assert!(done.status.success(), "{done:?}");
    let lines: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert!(lines[0].starts_with("handshake: TLSv1_3"), "{lines:?}");
    assert_eq!(lines[1], "echo: hello over tls");
    // A CA the server's certificate does not chain to: the cause is named.
    let other = tlsutil::Ca::new("other");
    let dir = std::env::temp_dir().join(format!("twistor-tls-ex-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let other_ca = dir.join("other.pem");
    std::fs::write(&other_ca, &other.cert_pem).unwrap();
    let done =
        spawn_example("tls_echo_client", &[&port, other_ca.to_str().unwrap(), "x"]).wait(WAIT);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.contains("unknown authority"), "{done:?}");
    // SIGINT stops the server, which removes its temporary CA file.
    server.wait_for_signal_handlers(&[libc::SIGINT], WAIT);
    server.signal(libc::SIGINT);
    let done = server.wait(WAIT);
    assert!(done.status.success(), "{done:?}");
    assert!(!std::path::Path::new(&ca).exists());
}

#[test]
fn starttls_client_against_starttls_server() {
    let (_server, port, ca) = start("starttls_server");
    let done = spawn_example("starttls_client", &[&port, &ca, "hello", "world"]).wait(WAIT);
    assert!(done.status.success(), "{done:?}");
    let lines: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        lines,
        [
            "220 ready",
            "250 before tls (clear)",
            "220 go ahead",
            "250 hello (tls)",
            "250 world (tls)",
            "221 bye"
        ]
    );
}

// ---- against real Twisted --------------------------------------------------------------------

fn imports_twisted_tls(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import twisted, OpenSSL, service_identity"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The python to run Twisted with, or `None` (after printing why) if the test should skip.
fn python() -> Option<String> {
    if let Some(p) = std::env::var_os("TWISTOR_PYTHON") {
        let p = p.to_string_lossy().into_owned();
        if imports_twisted_tls(&p) {
            return Some(p);
        }
    } else if imports_twisted_tls("python3") {
        return Some("python3".to_string());
    }
    let why = "no python with Twisted's TLS extra: set TWISTOR_PYTHON to one \
               (python3 -m venv V && V/bin/pip install 'twisted[tls]')";
    if std::env::var_os("CI").is_some() {
        panic!("the TLS interop tests must run in CI, but there is {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: TLS interop test: {why}");
    None
}

fn starttls_script(python: &str, args: &[&str]) -> RunningExample {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/twisted_starttls.py");
    let mut all = vec!["-u", path.to_str().expect("UTF-8 path")];
    all.extend_from_slice(args);
    spawn_program(std::path::Path::new(python), "twisted_starttls.py", &all)
}

#[test]
fn twisted_starttls_client_against_twistor_starttls_server() {
    let Some(python) = python() else { return };
    let (_server, port, ca) = start("starttls_server");
    let done = starttls_script(&python, &["client", &port, &ca, "from twisted"]).wait(WAIT);
    assert!(done.status.success(), "{done:?}");
    let lines: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert!(lines.contains(&"250 from twisted (tls)"), "{lines:?}");
    assert!(lines.contains(&"250 before tls (clear)"), "{lines:?}");
}

#[test]
fn twistor_starttls_client_against_twisted_start_tls() {
    let Some(python) = python() else { return };
    let ca = tlsutil::Ca::new("twisted starttls");
    let leaf = ca.server(&["localhost"]);
    let dir = std::env::temp_dir().join(format!("twistor-starttls-tw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, ca_path) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    std::fs::write(&ca_path, &ca.cert_pem).unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let mut server = starttls_script(&python, &["server", &s(&cert), &s(&key)]);
    let (_, first) = server.next_line(WAIT);
    let port = port_in(&first).to_string();
    let done = spawn_example("starttls_client", &[&port, &s(&ca_path), "to twisted"]).wait(WAIT);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(done.status.success(), "{done:?}");
    let lines: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(lines[3], "250 to twisted (tls)", "{lines:?}");
}

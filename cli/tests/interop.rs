//! twistor and real Twisted talking to each other over TCP on 127.0.0.1 and UNIX sockets:
//!
//! * Twisted's `LineReceiver` as a client (`tests/interop/twisted_line_client.py`) against
//!   `twistor reverse`;
//! * twistor's `reverse-client` (the paper's `RemoteReverser`) against the paper's server on
//!   Twisted (`tests/interop/twisted_reverse_server.py`).
//!
//! and the same two over a UNIX socket (the line client's `--unix`: `connectUNIX` against
//! `twistor reverse --unix`, `twistor reverse-client --unix` against `listenUNIX`); and over
//! UDP:
//!
//! * a Twisted `DatagramProtocol` client (`tests/interop/twisted_udp_client.py`) against
//!   `twistor udp-echo`, datagrams from empty to the largest IPv4 one;
//! * a connected twistor UDP port in the test process against the Twisted echo server of the
//!   UDP howto (`tests/interop/twisted_udp_echo.py`), then its refusal once that server is gone.
//!
//! Python comes from `TWISTOR_PYTHON` (`.ci/run` sets it to a venv with Twisted), else from
//! `python3` on `PATH` if that imports `twisted`. Without one the tests pass with a `SKIPPED`
//! line written straight to stderr (so it shows in `cargo test` output, which captures only
//! the print macros), except under CI (`CI` set), where they fail: they must run there.
//!
//! They live in the cli crate with the `twistor` binary (see `tests/cli.rs`).

#[path = "../../tests/util/mod.rs"]
mod util;

use std::cell::Cell;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
use twistor::reactor::Reactor;
use twistor::transport::udp::{UdpListenOptions, listen_udp_with};
use util::{Log, RunningExample, bounded, port_in, spawn_program};

const WAIT: Duration = Duration::from_secs(20);

fn imports_twisted(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import twisted"])
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
        assert!(
            imports_twisted(&p),
            "TWISTOR_PYTHON={p} cannot import twisted (install it: {p} -m pip install twisted)"
        );
        return Some(p);
    }
    if imports_twisted("python3") {
        return Some("python3".to_string());
    }
    let why = "no python with Twisted: set TWISTOR_PYTHON to one \
               (python3 -m venv V && V/bin/pip install twisted)";
    if std::env::var_os("CI").is_some() {
        panic!("the interop tests must run in CI, but there is {why}");
    }
    // Not `eprintln!`: the test harness would capture it and a skip would go unseen.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: twistor/Twisted interop test: {why}"
    );
    None
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/interop")
        .join(name)
}

fn twistor(args: &[&str]) -> RunningExample {
    spawn_program(
        Path::new(env!("CARGO_BIN_EXE_twistor")),
        &format!("twistor {}", args.join(" ")),
        args,
    )
}

fn run_python(python: &str, script_name: &str, args: &[&str]) -> RunningExample {
    let path = script(script_name);
    let path = path.to_str().expect("UTF-8 path");
    let mut all = vec!["-u", path];
    all.extend_from_slice(args);
    spawn_program(Path::new(python), script_name, &all)
}

#[test]
fn twisted_line_receiver_client_against_twistor_reverse() {
    let Some(python) = python() else { return };
    let mut server = twistor(&["reverse", "--port", "0"]);
    let (_, first) = server.next_line(WAIT);
    let port = port_in(&first).to_string();
    let lines = ["Hello", "twisted", "a man a plan a canal", "x", "twistor"];
    let mut args = vec![port.as_str()];
    args.extend_from_slice(&lines);
    let done = run_python(&python, "twisted_line_client.py", &args).wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    let got: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
    let want: Vec<String> = lines.iter().map(|l| l.chars().rev().collect()).collect();
    assert_eq!(got, want, "{done:?}");

    // Twisted's client against the paper's limit: with --max-lines 2 only two replies come,
    // and Twisted sees the connection closed (its script exits 1: not every reply arrived).
    let mut limited = twistor(&["reverse", "--port", "0", "--max-lines", "2"]);
    let (_, first) = limited.next_line(WAIT);
    let port = port_in(&first).to_string();
    let done = run_python(
        &python,
        "twisted_line_client.py",
        &[&port, "ab", "cd", "ef"],
    )
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    let got: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(got, ["ba", "dc"], "{done:?}");
}

#[test]
fn twistor_reverse_client_against_twisted_reverse_server() {
    let Some(python) = python() else { return };
    let mut server = run_python(&python, "twisted_reverse_server.py", &[]);
    let (_, first) = server.next_line(WAIT);
    let port = port_in(&first).to_string();
    for (text, want) in [("Hello", "olleH"), ("from twistor", "rotsiwt morf")] {
        let done = twistor(&["reverse-client", "--port", &port, text]).wait(WAIT);
        assert!(done.status.success(), "{done:?}");
        let got: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(got, [want], "{done:?}");
    }
}

/// A socket path in a fresh directory (removed on drop).
struct SocketDir(PathBuf);

impl SocketDir {
    fn new(tag: &str) -> SocketDir {
        let d = std::env::temp_dir().join(format!("twistor-interop-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        SocketDir(d)
    }
    fn socket(&self) -> String {
        self.0
            .join("s.sock")
            .to_str()
            .expect("UTF-8 path")
            .to_string()
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn twisted_unix_client_against_twistor_reverse_unix() {
    let Some(python) = python() else { return };
    let dir = SocketDir::new("client");
    let path = dir.socket();
    let mut server = twistor(&["reverse", "--unix", &path]);
    let (_, first) = server.next_line(WAIT);
    assert_eq!(first, format!("twistor reverse listening on unix:{path}"));
    let lines = ["Hello", "over a UNIX socket", "x"];
    let mut args = vec!["--unix", path.as_str()];
    args.extend_from_slice(&lines);
    let done = run_python(&python, "twisted_line_client.py", &args).wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    let got: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
    let want: Vec<String> = lines.iter().map(|l| l.chars().rev().collect()).collect();
    assert_eq!(got, want, "{done:?}");
}

#[test]
fn twistor_reverse_client_unix_against_twisted_listen_unix() {
    let Some(python) = python() else { return };
    let dir = SocketDir::new("server");
    let path = dir.socket();
    let mut server = run_python(&python, "twisted_reverse_server.py", &["--unix", &path]);
    let (_, first) = server.next_line(WAIT);
    assert_eq!(first, path);
    for (text, want) in [("Hello", "olleH"), ("from twistor", "rotsiwt morf")] {
        let done = twistor(&["reverse-client", "--unix", &path, text]).wait(WAIT);
        assert!(done.status.success(), "{done:?}");
        let got: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(got, [want], "{done:?}");
    }
}

/// The largest datagram IPv4 carries: 65,535 bytes less the IPv4 and UDP headers.
const LARGEST_UDP: usize = 65_507;

#[test]
fn twisted_datagram_client_against_twistor_udp_echo() {
    let Some(python) = python() else { return };
    let mut server = twistor(&["udp-echo", "--port", "0", "--interface", "127.0.0.1"]);
    let (_, first) = server.next_line(WAIT);
    let port = port_in(&first).to_string();
    let largest = LARGEST_UDP.to_string();
    let done = run_python(
        &python,
        "twisted_udp_client.py",
        &[&port, "--max", &largest],
    )
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    let got: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
    let sizes = [0, 1, 5, 100, 1400, 1472, 1473, 4096, 8192, LARGEST_UDP];
    let mut want: Vec<String> = sizes.iter().map(|n| format!("echoed {n} bytes")).collect();
    want.push(format!("{0} of {0} datagrams echoed", sizes.len()));
    assert_eq!(got, want, "{done:?}");
}

/// A connected client: records what comes back, and refusals.
struct Client {
    got: Log<(Vec<u8>, SocketAddr)>,
    refused: Rc<Cell<u32>>,
}

impl DatagramProtocol for Client {
    fn datagram_received(&mut self, _cx: &DatagramContext<Self>, data: &[u8], from: SocketAddr) {
        self.got.push((data.to_vec(), from));
    }
    fn connection_refused(&mut self, _cx: &DatagramContext<Self>) {
        self.refused.set(self.refused.get() + 1);
    }
}

/// Turns `reactor` until `done`, failing the test after 10 s with `what`.
fn turn_until(reactor: &Reactor, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what} within 10 s");
        reactor.iterate(Duration::from_millis(10)).unwrap();
    }
}

#[test]
fn twistor_connected_udp_client_against_twisted_udp_echo() {
    let Some(python) = python() else { return };
    let mut server = run_python(&python, "twisted_udp_echo.py", &[]);
    let (_, first) = server.next_line(WAIT);
    let port = port_in(&first);
    bounded(60, move || {
        let reactor = Reactor::new().unwrap();
        let got = Log::new();
        let refused = Rc::new(Cell::new(0));
        let client = Client {
            got: got.clone(),
            refused: refused.clone(),
        };
        let mut options = UdpListenOptions::default();
        options.interface = "127.0.0.1".into();
        options.max_packet_size = 65_536;
        let udp = listen_udp_with(&reactor, 0, client, options).unwrap();
        udp.connect("127.0.0.1", port).unwrap();
        let peer: SocketAddr = ([127, 0, 0, 1], port).into();
        // One at a time: the reply to each is checked before the next leaves.
        for n in [0, 1, 1400, 8192, 30_000, LARGEST_UDP] {
            let datagram: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
            let before = got.len();
            udp.write(&datagram, None).unwrap();
            turn_until(&reactor, &format!("no echo of {n} bytes"), || {
                got.len() > before
            });
            let (data, from) = got.get()[before].clone();
            assert_eq!(from, peer);
            assert_eq!(data.len(), n);
            assert!(data == datagram, "the {n}-byte datagram came back changed");
        }
        assert_eq!(refused.get(), 0);
        // Twisted's server gone, the kernel refuses the next datagram and says so.
        drop(server);
        udp.write(b"anyone?", None).unwrap();
        turn_until(&reactor, "no refusal reported", || refused.get() > 0);
        let stopped = udp.stop_listening(&reactor);
        turn_until(&reactor, "the port did not stop", || stopped.has_result());
    });
}

// ---- TLS: Twisted's TLS (pyOpenSSL) against twistor's ----------------------------------------

#[path = "tlscerts/mod.rs"]
mod tlscerts;

/// `python()`, if it also has Twisted's TLS extra (`pip install 'twisted[tls]'`).
fn python_tls() -> Option<String> {
    let python = python()?;
    let ok = Command::new(&python)
        .args(["-c", "import OpenSSL, service_identity"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    let why =
        format!("{python} lacks Twisted's TLS extra ({python} -m pip install 'twisted[tls]')");
    if std::env::var_os("CI").is_some() {
        panic!("the TLS interop tests must run in CI, but {why}");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED: TLS interop test: {why}");
    None
}

#[test]
fn twisted_tls_client_against_twistor_echo_with_tls() {
    let Some(python) = python_tls() else { return };
    let certs = tlscerts::Certs::new("interop-echo");
    let (cert, key, ca) = (
        certs.path("server.pem"),
        certs.path("server.key"),
        certs.path("ca.pem"),
    );
    let mut server = twistor(&[
        "echo",
        "--port",
        "0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    let (_, first) = server.next_line(WAIT);
    let port = port_in(&first).to_string();
    let done = run_python(
        &python,
        "twisted_tls_client.py",
        &[&port, &ca, "localhost", "hello twisted"],
    )
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert_eq!(
        done.lines.first().map(|(_, l)| l.as_str()),
        Some("hello twisted"),
        "{done:?}"
    );
    // Twisted's verification refuses a name the certificate does not carry.
    let done = run_python(
        &python,
        "twisted_tls_client.py",
        &[&port, &ca, "wrong.example", "x"],
    )
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
}

#[test]
fn twistor_reverse_client_tls_against_twisted_listen_ssl() {
    let Some(python) = python_tls() else { return };
    let certs = tlscerts::Certs::new("interop-reverse");
    let (cert, key, ca) = (
        certs.path("server.pem"),
        certs.path("server.key"),
        certs.path("ca.pem"),
    );
    let mut server = run_python(&python, "twisted_tls_server.py", &[&cert, &key]);
    let (_, first) = server.next_line(WAIT);
    let port = port_in(&first).to_string();
    let done = twistor(&[
        "reverse-client",
        "--port",
        &port,
        "--tls-ca",
        &ca,
        "--tls-hostname",
        "localhost",
        "Hello TLS",
    ])
    .wait(WAIT);
    assert!(done.status.success(), "{done:?}");
    assert_eq!(
        done.lines.first().map(|(_, l)| l.as_str()),
        Some("SLT olleH"),
        "{done:?}"
    );
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
    assert!(done.stderr.contains("wrong.example"), "{done:?}");
}

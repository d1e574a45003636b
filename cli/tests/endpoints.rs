//! `--listen ENDPOINT` and `--connect ENDPOINT`, run as processes over real sockets
//! (127.0.0.1 with port 0, UNIX sockets in a temporary directory): where the server says it
//! listens, several endpoints at once, TLS (`ssl:` servers, `tls:` clients, TLS over UNIX
//! sockets), socket activation, and bad descriptions exiting 2.

mod tlscerts;
#[path = "../../tests/util/mod.rs"]
mod util;

use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tlscerts::Certs;
use util::{RunningExample, connect_local, port_in, read_exact_bytes, spawn_program};

const WAIT: Duration = Duration::from_secs(10);

fn twistor(args: &[&str]) -> RunningExample {
    spawn_program(
        Path::new(env!("CARGO_BIN_EXE_twistor")),
        &format!("twistor {}", args.join(" ")),
        args,
    )
}

/// A directory for socket files, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!(
            "twistor-cli-endpoints-{tag}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// SIGTERM once the handlers are in; exit 0.
fn terminate(mut server: RunningExample) {
    server.wait_for_signal_handlers(&[libc::SIGINT, libc::SIGTERM], WAIT);
    server.signal(libc::SIGTERM);
    let done = server.wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
}

fn echo_over_tcp(port: u16) {
    let mut c = connect_local(port);
    c.write_all(b"over tcp").unwrap();
    assert_eq!(read_exact_bytes(&mut c, 8), b"over tcp");
}

fn echo_over_unix(path: &str) {
    let mut c = UnixStream::connect(path).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(b"over unix").unwrap();
    let mut buf = [0u8; 9];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"over unix");
}

#[test]
fn echo_listens_on_a_tcp_endpoint_and_says_where() {
    let mut server = twistor(&["echo", "--listen", "tcp:0:interface=127.0.0.1"]);
    let (_, first) = server.next_line(WAIT);
    assert!(
        first.starts_with("twistor echo listening on tcp:127.0.0.1:"),
        "{first:?}"
    );
    echo_over_tcp(port_in(&first));
    terminate(server);
}

#[test]
fn echo_listens_on_a_unix_endpoint() {
    let dir = Dir::new("unix");
    let path = dir.path("echo.sock");
    let mut server = twistor(&["echo", "--listen", &format!("unix:{path}:mode=600")]);
    let (_, first) = server.next_line(WAIT);
    assert_eq!(first, format!("twistor echo listening on unix:{path}"));
    echo_over_unix(&path);
    terminate(server);
    assert!(
        !Path::new(&path).exists(),
        "the socket file is removed on exit"
    );
}

#[test]
fn several_endpoints_serve_at_once() {
    let dir = Dir::new("several");
    let path = dir.path("reverse.sock");
    let mut server = twistor(&[
        "echo",
        "--port",
        "0",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--listen",
        &format!("unix:{path}"),
    ]);
    let (_, a) = server.next_line(WAIT);
    let (_, b) = server.next_line(WAIT);
    let (_, c) = server.next_line(WAIT);
    // --port first, then each --listen in order.
    assert!(
        a.starts_with("twistor echo listening on tcp:127.0.0.1:"),
        "{a:?}"
    );
    assert!(
        b.starts_with("twistor echo listening on tcp:127.0.0.1:"),
        "{b:?}"
    );
    assert_eq!(c, format!("twistor echo listening on unix:{path}"));
    assert_ne!(port_in(&a), port_in(&b));
    echo_over_tcp(port_in(&a));
    echo_over_tcp(port_in(&b));
    echo_over_unix(&path);
    terminate(server);
}

#[test]
fn every_server_takes_listen() {
    for (name, extra) in [
        ("reverse", &[][..]),
        ("discard", &[]),
        ("chargen", &[]),
        ("qotd", &[]),
        ("daytime", &[]),
        (
            "portforward",
            &["--dest-host", "127.0.0.1", "--dest-port", "9"],
        ),
    ] {
        let mut args = vec![name, "--listen", "tcp:0:interface=127.0.0.1"];
        args.extend_from_slice(extra);
        let mut server = twistor(&args);
        let (_, first) = server.next_line(WAIT);
        let prefix = format!("twistor {name} listening on tcp:127.0.0.1:");
        assert!(first.starts_with(&prefix), "{name}: {first:?}");
        terminate(server);
    }
}

#[test]
fn reverse_client_connects_to_an_endpoint() {
    let dir = Dir::new("client");
    let path = dir.path("reverse.sock");
    let mut server = twistor(&[
        "reverse",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--listen",
        &format!("unix:{path}"),
    ]);
    let (_, first) = server.next_line(WAIT);
    let (_, _second) = server.next_line(WAIT);
    let port = port_in(&first);
    let done = twistor(&[
        "reverse-client",
        "--connect",
        &format!("tcp:127.0.0.1:{port}"),
        "Hello",
    ])
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert_eq!(done.lines.first().map(|l| l.1.as_str()), Some("olleH"));
    let done = twistor(&[
        "reverse-client",
        "--connect",
        &format!("unix:{path}"),
        "abc",
    ])
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert_eq!(done.lines.first().map(|l| l.1.as_str()), Some("cba"));
    terminate(server);
}

/// `reverse-client --connect DESCRIPTION TEXT` against an echo server: the text comes back.
fn client_says(description: &str, text: &str) -> util::Finished {
    twistor(&["reverse-client", "--connect", description, text]).wait(WAIT)
}

#[test]
fn echo_serves_ssl_and_tcp_listen_endpoints_at_once() {
    let certs = Certs::new("cli-ssl-listen");
    let (cert, key, ca) = (
        certs.path("server.pem"),
        certs.path("server.key"),
        certs.path("ca.pem"),
    );
    let mut server = twistor(&[
        "echo",
        "--listen",
        &format!("ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"),
        "--listen",
        "tcp:0:interface=127.0.0.1",
    ]);
    let (_, first) = server.next_line(WAIT);
    let (_, second) = server.next_line(WAIT);
    assert!(
        first.starts_with("twistor echo listening on tcp:127.0.0.1:"),
        "{first}"
    );
    let (tls_port, tcp_port) = (port_in(&first), port_in(&second));
    echo_over_tcp(tcp_port);
    // Verified against the IP (its subjectAltName) and against a name.
    for host in ["127.0.0.1", "localhost"] {
        let done = client_says(&format!("tls:{host}:{tls_port}:trustRoots={ca}"), "Hello");
        assert_eq!(done.status.code(), Some(0), "{done:?}");
        assert_eq!(done.lines.first().map(|l| l.1.as_str()), Some("Hello"));
    }
    // ssl: client strings verify too, the CA given as a directory.
    let done = client_says(
        &format!(
            "ssl:127.0.0.1:{tls_port}:caCertsDir={}:hostname=localhost",
            certs.dir().display()
        ),
        "abc",
    );
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert_eq!(done.lines.first().map(|l| l.1.as_str()), Some("abc"));
    // openssl s_client, if there is one, gets the echo too.
    if let Some(out) = openssl_echo(tls_port, &ca) {
        // -quiet prints the echo and the verification steps, and stops on a failed one.
        assert!(out.starts_with("ping\n"), "{out}");
        assert!(out.contains("depth=0"), "{out}");
        assert!(!out.contains("verify error"), "{out}");
    }
    terminate(server);
}

#[test]
fn echo_serves_a_tls_directory_endpoint_by_sni() {
    let certs = Certs::new("cli-sni-listen");
    let ca = certs.path("ca.pem");
    let sni = certs.dir().join("sni");
    std::fs::create_dir_all(&sni).unwrap();
    let pem = std::fs::read_to_string(certs.path("server.pem")).unwrap()
        + &std::fs::read_to_string(certs.path("server.key")).unwrap();
    std::fs::write(sni.join("localhost.pem"), pem).unwrap();
    let mut server = twistor(&[
        "echo",
        "--listen",
        &format!("tls:{}:0:interface=127.0.0.1", sni.display()),
    ]);
    let (_, line) = server.next_line(WAIT);
    let port = port_in(&line);
    let done = client_says(&format!("tls:localhost:{port}:trustRoots={ca}"), "Hello");
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert_eq!(done.lines.first().map(|l| l.1.as_str()), Some("Hello"));
    terminate(server);
    // A directory without a usable NAME.pem is a bad description, named.
    let done = twistor(&[
        "echo",
        "--listen",
        &format!("tls:{}:0", certs.dir().display()),
    ])
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(2), "{done:?}");
    assert!(done.stderr.contains("ca.pem"), "{done:?}");
}

/// `openssl s_client` sending "ping" to 127.0.0.1:`port`; its output, or `None` without
/// openssl.
fn openssl_echo(port: u16, ca: &str) -> Option<String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-CAfile", ca, "-verify_hostname", "localhost", "-quiet"])
        .arg("-verify_return_error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    stdin.write_all(b"ping\n").ok()?;
    let mut stdout = child.stdout.take()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    // The echo, then close: -quiet prints only the application data.
    let deadline = std::time::Instant::now() + WAIT;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    while !got.ends_with(b"ping\n") && std::time::Instant::now() < deadline {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
            got.extend(chunk);
        }
    }
    drop(stdin);
    let _ = child.kill();
    let out = child.wait_with_output().ok()?;
    let mut text = String::from_utf8_lossy(&got).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Some(text)
}

#[test]
fn tls_client_strings_name_what_failed_and_exit_1() {
    let certs = Certs::new("cli-tls-fail");
    let (cert, key, ca) = (
        certs.path("server.pem"),
        certs.path("server.key"),
        certs.path("ca.pem"),
    );
    let mut server = twistor(&[
        "echo",
        "--listen",
        &format!("ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"),
    ]);
    let (_, first) = server.next_line(WAIT);
    let port = port_in(&first);
    let done = client_says(
        &format!(r"tls:wrong.example:{port}:trustRoots={ca}:endpoint=tcp\:127.0.0.1\:{port}"),
        "x",
    );
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(
        done.stderr
            .contains("not valid for the host name \"wrong.example\""),
        "{done:?}"
    );
    // The system's roots do not know the test CA.
    let done = client_says(&format!("tls:127.0.0.1:{port}"), "x");
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.contains("unknown authority"), "{done:?}");
    // --tls-cert would wrap an ssl: endpoint in TLS twice: refused.
    let done = twistor(&[
        "echo",
        "--listen",
        &format!("ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"),
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ])
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(2), "{done:?}");
    assert!(done.stderr.contains("cannot wrap it again"), "{done:?}");
    terminate(server);
}

#[test]
fn tls_over_a_unix_socket_with_the_tls_flags_and_a_tls_string() {
    let certs = Certs::new("cli-unix-tls");
    let dir = Dir::new("unix-tls");
    let path = dir.path("echo.sock");
    let (cert, key, ca) = (
        certs.path("server.pem"),
        certs.path("server.key"),
        certs.path("ca.pem"),
    );
    let mut server = twistor(&[
        "echo",
        "--unix",
        &path,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    let (_, first) = server.next_line(WAIT);
    assert!(
        first.starts_with("twistor echo listening on unix:"),
        "{first}"
    );
    // Verified against "localhost" by default over a UNIX socket.
    let done = twistor(&["reverse-client", "--unix", &path, "--tls-ca", &ca, "Hello"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert_eq!(done.lines.first().map(|l| l.1.as_str()), Some("Hello"));
    let done = twistor(&[
        "reverse-client",
        "--unix",
        &path,
        "--tls-ca",
        &ca,
        "--tls-hostname",
        "wrong.example",
        "x",
    ])
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.contains("wrong.example"), "{done:?}");
    let inner = twistor::endpoints::quote_string_argument(&format!("unix:{path}"));
    let done = client_says(
        &format!("tls:localhost:0:trustRoots={ca}:endpoint={inner}"),
        "abc",
    );
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert_eq!(done.lines.first().map(|l| l.1.as_str()), Some("abc"));
    // Plain text to the TLS socket gets no echo.
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(b"plain\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    assert!(!buf.windows(5).any(|w| w == b"plain"), "{buf:?}");
    terminate(server);
}

#[test]
fn reverse_client_to_nothing_exits_1() {
    let port = util::unused_port();
    let done = twistor(&[
        "reverse-client",
        "--connect",
        &format!("tcp:127.0.0.1:{port}"),
        "x",
    ])
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.contains("refused"), "{done:?}");
}

#[test]
fn bad_endpoint_strings_exit_2_with_the_parser_message() {
    // Refused before anything is bound: the path is never created.
    let never = std::env::temp_dir().join("twistor-never-bound.sock");
    let never = never.to_str().expect("a UTF-8 temp dir");
    for (args, message) in [
        (
            &["echo", "--listen", "tcp:abc"][..],
            "port 'abc' is not a number",
        ),
        (
            &["echo", "--listen", "TCP:80"],
            "unknown endpoint type 'TCP'",
        ),
        (
            &["discard", "--listen", "tcp:0:colour=red"],
            "unknown keyword 'colour' for tcp",
        ),
        (
            &["qotd", "--listen", "unix:/tmp/x:mode=9"],
            "mode '9' is not an octal file mode",
        ),
        (
            &["echo", "--listen", "ssl:8443"],
            "certKey 'server.pem' cannot be read",
        ),
        (
            &["echo", "--listen", "ssl:0:sslmethod=SSLv3_METHOD"],
            "sslmethod 'SSLv3_METHOD' pins SSL 3.0, which is insecure",
        ),
        (
            &["reverse-client", "--connect", "tls:h:1", "--tls", "x"],
            "cannot be used with",
        ),
        (
            &["reverse-client", "--connect", "foo:1", "x"],
            "unknown endpoint type 'foo'",
        ),
        (
            &["reverse-client", "--connect", "tcp:h:port", "x"],
            "port 'port' is not a number",
        ),
        (
            &["echo", "--listen", "tcp:0", "--threads", "2"],
            "cannot be used with",
        ),
        (
            &["echo", "--listen", "tcp:0", "--unix", never],
            "cannot be used with",
        ),
        (
            &["reverse-client", "--connect", "tcp:h:1", "--port", "1", "x"],
            "cannot be used with",
        ),
    ] {
        let done = twistor(args).wait(WAIT);
        assert_eq!(done.status.code(), Some(2), "{args:?}: {done:?}");
        assert!(done.stderr.contains(message), "{args:?}: {:?}", done.stderr);
        assert!(
            !done.stderr.contains("panicked"),
            "{args:?}: {:?}",
            done.stderr
        );
    }
}

#[test]
fn listen_failure_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let done = twistor(&[
        "echo",
        "--listen",
        &format!("tcp:{port}:interface=127.0.0.1"),
    ])
    .wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.starts_with("twistor echo: "), "{done:?}");
}

/// Socket activation as systemd does it: the listening socket is descriptor 3 of the
/// child, `LISTEN_FDS=1` and `LISTEN_PID` its own pid (set by a shell that then `exec`s).
#[test]
fn systemd_socket_activation() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ exec "$0" echo --listen systemd:domain=INET:index=0"#)
        .arg(env!("CARGO_BIN_EXE_twistor"))
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "echo")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: dup2 and fcntl are async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else if libc::dup2(fd, 3) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(listener); // the child has its own copy
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let first = match rx.recv_timeout(WAIT) {
        Ok(l) => l,
        Err(e) => {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "no line ({e}); stderr {:?}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    assert_eq!(
        first.trim(),
        format!("twistor echo listening on tcp:127.0.0.1:{port}")
    );
    echo_over_tcp(port);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
}

/// Not started by a service manager: asking for an inherited socket fails with a clear
/// message, not a crash.
#[test]
fn systemd_without_activation_exits_1() {
    let done = twistor(&["echo", "--listen", "systemd:domain=INET:index=0"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(
        done.stderr
            .contains("no inherited socket at index 0 (0 inherited)"),
        "{done:?}"
    );
}

// ---- against real Twisted --------------------------------------------------------------------

/// The python to run Twisted with (`TWISTOR_PYTHON`, else `python3` if it has Twisted), or
/// `None` after saying why the test skips; under CI a missing Twisted fails instead.
fn python() -> Option<String> {
    let imports = |p: &str| {
        std::process::Command::new(p)
            .args(["-c", "import twisted"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if let Some(p) = std::env::var_os("TWISTOR_PYTHON") {
        let p = p.to_string_lossy().into_owned();
        assert!(imports(&p), "TWISTOR_PYTHON={p} cannot import twisted");
        return Some(p);
    }
    if imports("python3") {
        return Some("python3".into());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the Twisted comparison must run in CI, but there is no python with Twisted"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: endpoint strings against Twisted: no python with Twisted (set TWISTOR_PYTHON)"
    );
    None
}

/// Runs `code` with the descriptions on stdin, one a line; its stdout lines.
fn twisted_says(python: &str, code: &str, descriptions: &[&str]) -> Vec<String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(python)
        .args(["-c", code])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = descriptions.join("\n") + "\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The tokenizer agrees with Twisted's `endpoints._parse` (positional arguments, type
/// first, and keyword arguments) on escapes, empty parts and `=` inside values.
#[test]
fn tokenizer_agrees_with_twisted() {
    let Some(python) = python() else { return };
    let corpus = [
        r"tcp:80:interface=a\:b",
        "unix:path=/tmp/a=b:mode=660",
        r"x:a\\b:c\=d:e\f",
        "x::b:",
        "",
        ":",
        r"tls:example.com:443:endpoint=tcp\:127.0.0.1\:8443",
        "tcp:host=h:port=80:timeout=5",
        r"unix:/tmp/x\:y.sock",
        r"ssl:443:privateKey=C\:\\k.pem",
        "tcp:80:interface=::1",
        r"tcp:a\=b=c",
        r"tcp:80\",
    ];
    let code = r#"
import sys
from twisted.internet import endpoints
for line in sys.stdin.read().split("\n")[:-1]:
    try:
        args, kw = endpoints._parse(line)
    except Exception:
        print("ERR")
        continue
    print("OK\t" + "\x1f".join(args) + "\t" + "\x1f".join(k + "=" + v for k, v in sorted(kw.items())))
"#;
    let theirs = twisted_says(&python, code, &corpus);
    assert_eq!(theirs.len(), corpus.len());
    for (d, twisted) in corpus.iter().zip(theirs) {
        let ours = match twistor::endpoints::Description::parse(d) {
            Err(_) => "ERR".to_string(),
            Ok(p) => {
                let mut args = vec![p.kind.clone()];
                args.extend(p.args.iter().cloned());
                let mut kw: Vec<String> =
                    p.kwargs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                kw.sort();
                format!("OK\t{}\t{}", args.join("\x1f"), kw.join("\x1f"))
            }
        };
        assert_eq!(ours, twisted, "description {d:?}");
    }
}

/// Which types each side knows, and in which case: Twisted's server built-ins are
/// case-sensitive, its plugins and every client type are not.
#[test]
fn endpoint_types_and_case_agree_with_twisted() {
    let Some(python) = python() else { return };
    let servers = [
        "tcp:0",
        "TCP:0",
        "Tcp:0",
        "tcp6:0",
        "TCP6:0",
        "unix:/tmp/x.sock",
        "UNIX:/tmp/x.sock",
        "SSL:443",
        "foo:1",
        "6666",
    ];
    let clients = [
        "tcp:h:80",
        "TCP:h:80",
        "unix:/x",
        "UNIX:/x",
        "Unix:/x",
        "foo:1",
        "tcp6:h:80",
    ];
    let code = r#"
import sys
from twisted.internet import endpoints, reactor
side = sys.argv[1]
f = endpoints.serverFromString if side == "server" else endpoints.clientFromString
for line in sys.stdin.read().split("\n")[:-1]:
    try:
        f(reactor, line)
        print("known")
    except ValueError as e:
        print("unknown" if "Unknown endpoint type" in str(e) else "known")
    except Exception:
        print("known")
"#;
    let run = |side: &str, list: &[&str]| {
        let code = code.replace("sys.argv[1]", &format!("{side:?}"));
        twisted_says(&python, &code, list)
    };
    for (d, twisted) in servers.iter().zip(run("server", &servers)) {
        let ours = match twistor::endpoints::parse_server(d) {
            Err(e) if matches!(e.kind, twistor::endpoints::ErrorKind::UnknownType(_)) => "unknown",
            _ => "known",
        };
        assert_eq!(ours, twisted, "server {d:?}");
    }
    for (d, twisted) in clients.iter().zip(run("client", &clients)) {
        let ours = match twistor::endpoints::parse_client(d) {
            Err(e) if matches!(e.kind, twistor::endpoints::ErrorKind::UnknownType(_)) => "unknown",
            _ => "known",
        };
        assert_eq!(ours, twisted, "client {d:?}");
    }
}

//! `twistor get` end to end: against a canned server on a thread (redirects, chunked bodies,
//! `-i`, `-X`/`-d`, the exit status of a 404, a refused connection), against Python's
//! `http.server` (plain and over TLS with a CA made at run time, given with `--ca`), and
//! against a Twisted `Site`. Python comes from `TWISTOR_PYTHON` or `python3` on `PATH`; a
//! test that needs it (or Twisted) and finds none passes with a `SKIPPED` line on stderr.

#[path = "../../tests/util/mod.rs"]
mod util;

mod tlscerts;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn get(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    util::bounded(20, move || {
        Command::new(Path::new(env!("CARGO_BIN_EXE_twistor")))
            .arg("get")
            .args(&args)
            .output()
            .expect("run twistor get")
    })
}

fn skip(why: &str) {
    // Not `eprintln!`: the harness captures it and a skip would go unseen.
    let _ = writeln!(std::io::stderr(), "SKIPPED: twistor get test: {why}");
}

/// Serves `answers` in order, one per request, on one thread; each connection may carry
/// several requests. Returns the port and the requests' heads.
fn canned(answers: Vec<Vec<u8>>) -> (u16, std::sync::mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut answers = answers.into_iter();
        'conns: for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        continue 'conns;
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                head.push_str(&String::from_utf8_lossy(&body));
                let _ = tx.send(head);
                let Some(a) = answers.next() else { return };
                stream.write_all(&a).unwrap();
            }
        }
    });
    (port, rx)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn follows_redirects_and_prints_body() {
    let (port, heads) = canned(vec![
        b"HTTP/1.1 302 Found\r\nLocation: /there\r\nContent-Length: 0\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Hop: 2\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n".to_vec(),
    ]);
    let o = get(&["-i", &format!("http://127.0.0.1:{port}/here")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("X-Hop: 2\r\n"));
    assert!(out.ends_with("\r\n\r\nhello world"));
    let first = heads.recv().unwrap();
    assert!(first.starts_with("GET /here HTTP/1.1\r\n"));
    assert!(first.contains("Accept-Encoding: gzip, deflate"));
    assert!(heads.recv().unwrap().starts_with("GET /there HTTP/1.1\r\n"));
}

#[test]
fn through_a_proxy_with_redirects_followed_there() {
    // The canned server plays the proxy: requests name their origin in absolute form, and
    // a redirect's next hop goes through the proxy too. The origin's name never resolves.
    let (port, heads) = canned(vec![
        b"HTTP/1.1 301 Moved\r\nLocation: http://origin.invalid/b\r\nContent-Length: 0\r\n\r\n"
            .to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nproxied".to_vec(),
    ]);
    let proxy = format!("http://127.0.0.1:{port}");
    let o = get(&["--proxy", &proxy, "http://origin.invalid/a"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "proxied");
    let first = heads.recv().unwrap();
    assert!(
        first.starts_with("GET http://origin.invalid/a HTTP/1.1\r\n"),
        "{first}"
    );
    assert!(first.contains("\r\nHost: origin.invalid\r\n"), "{first}");
    assert!(
        heads
            .recv()
            .unwrap()
            .starts_with("GET http://origin.invalid/b HTTP/1.1\r\n")
    );
    // https asks the proxy for a tunnel (`CONNECT`), which this one does not open.
    let o = get(&["--proxy", &proxy, "https://origin.invalid/"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("tunnel"), "{}", stderr(&o));
    assert!(
        heads
            .recv()
            .unwrap()
            .starts_with("CONNECT origin.invalid:443 HTTP/1.1\r\n")
    );
    let o = get(&["--proxy", "ftp://x", "http://origin.invalid/"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--proxy"), "{}", stderr(&o));
}

#[test]
fn post_data_and_error_status() {
    let (port, heads) = canned(vec![
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno such x".to_vec(),
    ]);
    let o = get(&[
        "-d",
        "a=1",
        "-H",
        "X-Test: yes",
        &format!("http://127.0.0.1:{port}/x"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "no such x", "the error page is still written");
    assert!(stderr(&o).contains("HTTP 404 Not Found"), "{}", stderr(&o));
    let head = heads.recv().unwrap();
    assert!(head.starts_with("POST /x HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains("X-Test: yes\r\n")
            && head.contains("Content-Length: 3\r\n")
            && head.ends_with("a=1")
    );
}

#[test]
fn failures_are_named() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = get(&[&format!("http://127.0.0.1:{port}/")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).to_lowercase().contains("refused"),
        "{}",
        stderr(&o)
    );
    let o = get(&["http://exa mple/"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid URI"));
    let o = get(&["ftp://example.com/"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unsupported scheme"), "{}", stderr(&o));
}

fn python() -> Option<String> {
    let p = std::env::var("TWISTOR_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&p)
        .args(["-c", "import http.server, ssl"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(p)
}

/// Starts a Python server script that prints its port on its first line.
fn start(python: &str, script: &str, args: &[&str]) -> (Child, u16) {
    let mut child = Command::new(python)
        .arg("-u")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python");
    let out = child.stdout.take().unwrap();
    let line = util::bounded(20, move || {
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).unwrap();
        line
    });
    let port = line.trim().parse().expect("a port on the first line");
    (child, port)
}

const HTTP_SERVER: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"from python " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
if len(sys.argv) > 2:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

#[test]
fn against_python_http_server_plain_and_tls() {
    let Some(py) = python() else {
        return skip("no python3 with http.server and ssl");
    };
    let (mut child, port) = start(&py, HTTP_SERVER, &[]);
    let o = get(&[&format!("http://127.0.0.1:{port}/plain")]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from python /plain");

    let certs = tlscerts::Certs::new("get");
    let (mut child, port) = start(
        &py,
        HTTP_SERVER,
        &[&certs.path("server.pem"), &certs.path("server.key")],
    );
    let url = format!("https://localhost:{port}/secure");
    let trusted = get(&["--ca", &certs.path("ca.pem"), &url]);
    let untrusted = get(&[&url]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(trusted.status.success(), "{}", stderr(&trusted));
    assert_eq!(stdout(&trusted), "from python /secure");
    assert_eq!(untrusted.status.code(), Some(1));
    let why = stderr(&untrusted).to_lowercase();
    assert!(
        why.contains("certificate") || why.contains("issuer"),
        "names the TLS cause: {why}"
    );
}

const TWISTED_SITE: &str = r#"
from twisted.internet import reactor
from twisted.web import resource, server, util
class Hello(resource.Resource):
    isLeaf = True
    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain")
        return b"Hello from Twisted " + request.path
root = resource.Resource()
root.putChild(b"hello", Hello())
root.putChild(b"old", util.Redirect(b"/hello"))
port = reactor.listenTCP(0, server.Site(root), interface="127.0.0.1")
print(port.getHost().port, flush=True)
reactor.run()
"#;

#[test]
fn against_a_twisted_site() {
    let Some(py) = python() else {
        return skip("no python3");
    };
    let has_twisted = Command::new(&py)
        .args(["-c", "import twisted.web"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_twisted {
        if std::env::var_os("CI").is_some() && std::env::var_os("TWISTOR_PYTHON").is_some() {
            panic!("TWISTOR_PYTHON cannot import twisted.web");
        }
        return skip("no python with Twisted: set TWISTOR_PYTHON to one");
    }
    let (mut child, port) = start(&py, TWISTED_SITE, &[]);
    let o = get(&["-i", &format!("http://127.0.0.1:{port}/old")]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.ends_with("Hello from Twisted /hello"), "{out}");
}

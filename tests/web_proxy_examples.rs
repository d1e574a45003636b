//! The `web_proxy` and `web_async_client` examples run as processes, and other HTTP
//! implementations talk to them over 127.0.0.1: Python's `http.client` and `urllib`,
//! Twisted's `Agent` with `readBody`, and `curl` (a chunked upload to the echo resource,
//! through the proxy and straight to the backend).
//!
//! Python comes from `TWISTOR_PYTHON`, else `python3` on `PATH`; curl from `PATH`. A test
//! whose tool is missing passes with a `SKIPPED` line on stderr, except under CI (`CI` set)
//! where it fails: there they must run.

mod util;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use util::{
    Finished, RunningExample, port_in, python_with, run_example, skip_without, spawn_example,
    spawn_program,
};

const WAIT: Duration = Duration::from_secs(10);

/// Runs `program args` to its end (killed after `WAIT`).
fn run(program: &str, args: &[&str]) -> Finished {
    spawn_program(Path::new(program), program, args).wait(WAIT)
}

/// What a finished program printed.
fn stdout_lines(done: &Finished) -> Vec<&str> {
    done.lines.iter().map(|(_, l)| l.as_str()).collect()
}

/// The proxy example, running: (process, proxy port, backend port).
fn proxy_example() -> (RunningExample, u16, u16) {
    let mut p = spawn_example("web_proxy", &["--port", "0"]);
    let (_, first) = p.next_line(WAIT);
    assert!(first.starts_with("web_proxy listening on tcp:"), "{first}");
    let (_, second) = p.next_line(WAIT);
    assert!(second.starts_with("backend listening on tcp:"), "{second}");
    let (_, third) = p.next_line(WAIT);
    assert!(third.starts_with("open http://127.0.0.1:"), "{third}");
    (p, port_in(&first), port_in(&second))
}

fn stop(mut p: RunningExample) {
    p.wait_for_signal_handlers(&[libc::SIGTERM], WAIT);
    p.signal(libc::SIGTERM);
    let done = p.wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn web_proxy_self_test_passes() {
    let out = run_example("web_proxy", &["--port", "0", "--self-test"]);
    assert!(out.contains("self-test: ok"), "{out}");
}

#[test]
fn web_async_client_answers_with_what_the_client_fetched() {
    let mut p = spawn_example("web_async_client", &["--port", "0"]);
    let (_, first) = p.next_line(WAIT);
    assert!(
        first.starts_with("web_async_client listening on tcp:"),
        "{first}"
    );
    let port = port_in(&first);
    for _ in 0..2 {
        let mut c = util::connect_local(port);
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let got = text(&util::read_to_eof(&mut c));
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(
            got.ends_with("\r\n\r\nThe data service said (200): forty-two\n"),
            "{got}"
        );
    }
    stop(p);
}

const PY_HTTP_CLIENT: &str = r#"
import http.client, sys, urllib.request, urllib.error
port = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request("GET", "/")
r = c.getresponse(); body = r.read(); sock = c.sock
print("GET", r.status, repr(body))
c.request("GET", "/chunked")
r = c.getresponse()
print("CHUNKED", r.status, r.getheader("Transfer-Encoding"), repr(r.read()))
c.request("POST", "/echo", body=b"x=1&y=2" * 1000, headers={"Content-Type": "text/plain"})
r = c.getresponse(); body = r.read()
print("POST", r.status, len(body), body == b"x=1&y=2" * 1000)
c.request("HEAD", "/")
r = c.getresponse()
print("HEAD", r.status, r.getheader("Content-Length"), repr(r.read()))
print("one connection", c.sock is sock)
base = "http://127.0.0.1:%d/" % port
print("urllib GET", repr(urllib.request.urlopen(base, timeout=10).read()))
req = urllib.request.Request(base + "echo", data=b"from urllib", method="POST")
print("urllib POST", repr(urllib.request.urlopen(req, timeout=10).read()))
try:
    urllib.request.urlopen(base + "nothing", timeout=10)
except urllib.error.HTTPError as e:
    print("urllib 404", e.code)
"#;

#[test]
fn python_http_client_and_urllib_through_the_proxy_and_direct() {
    let Some(py) = python_with("http.client") else {
        return skip_without("no python3");
    };
    let (p, proxy, backend) = proxy_example();
    for port in [proxy, backend] {
        let out = run(&py, &["-c", PY_HTTP_CLIENT, &port.to_string()]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            stdout_lines(&out),
            [
                "GET 200 b'Hello from the backend!\\n'",
                "CHUNKED 200 chunked b'one two three\\n'",
                "POST 200 7000 True",
                "HEAD 200 24 b''",
                "one connection True",
                "urllib GET b'Hello from the backend!\\n'",
                "urllib POST b'from urllib'",
                "urllib 404 404",
            ],
            "port {port} (proxy {proxy})"
        );
    }
    stop(p);
}

const PY_TWISTED_AGENT: &str = r#"
import sys
from io import BytesIO
from twisted.internet import defer, task
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.iweb import UNKNOWN_LENGTH

async def main(reactor, base):
    pool = HTTPConnectionPool(reactor)
    agent = Agent(reactor, pool=pool)
    r = await agent.request(b"GET", base)
    print("GET", r.code, repr(await readBody(r)))
    r = await agent.request(b"HEAD", base)
    print("HEAD", r.code, r.length, repr(await readBody(r)))
    r = await agent.request(b"GET", base + b"chunked")
    print("CHUNKED", r.code, r.length is UNKNOWN_LENGTH, repr(await readBody(r)))
    body = FileBodyProducer(BytesIO(b"posted by Twisted " * 100))
    r = await agent.request(b"POST", base + b"echo", None, body)
    got = await readBody(r)
    print("POST", r.code, len(got), got == b"posted by Twisted " * 100)
    await pool.closeCachedConnections()

task.react(lambda reactor: defer.ensureDeferred(main(reactor, sys.argv[1].encode())))
"#;

#[test]
fn twisted_agent_through_the_proxy_and_direct() {
    let Some(py) = python_with("twisted.web.client") else {
        return skip_without("no python with Twisted: set TWISTOR_PYTHON to one");
    };
    let (p, proxy, backend) = proxy_example();
    for port in [proxy, backend] {
        let url = format!("http://127.0.0.1:{port}/");
        let out = run(&py, &["-c", PY_TWISTED_AGENT, &url]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            stdout_lines(&out),
            [
                "GET 200 b'Hello from the backend!\\n'",
                // Twisted's client gives every HEAD response a length of 0.
                "HEAD 200 0 b''",
                "CHUNKED 200 True b'one two three\\n'",
                "POST 200 1800 True",
            ],
            "port {port} (proxy {proxy})"
        );
    }
    stop(p);
}

#[test]
fn curl_chunked_upload_to_the_echo_resource() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        return skip_without("no curl on PATH");
    }
    let (p, proxy, backend) = proxy_example();
    let dir = std::env::temp_dir().join(format!("twistor-proxy-upload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("upload.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let at = format!("@{}", file.display());
    let answer = dir.join("answer.bin");
    for port in [proxy, backend] {
        let out = run(
            "curl",
            &[
                "-sS",
                "-v",
                "-H",
                "Transfer-Encoding: chunked",
                "--data-binary",
                &at,
                "-o",
                answer.to_str().unwrap(),
                &format!("http://127.0.0.1:{port}/echo"),
            ],
        );
        assert!(out.status.success(), "{out:?}");
        assert!(
            out.stderr.contains("> Transfer-Encoding: chunked"),
            "{}",
            out.stderr
        );
        let got = std::fs::read(&answer).unwrap();
        assert_eq!(got.len(), data.len(), "port {port}");
        assert!(got == data, "port {port}: the echo differs");
    }
    let _ = std::fs::remove_dir_all(&dir);
    stop(p);
}

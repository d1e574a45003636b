//! Other HTTP clients against `twistor web` over 127.0.0.1: Python's `urllib`, Twisted's
//! `Agent` with `readBody` (GET, HEAD, a 404, a POST with a body, all on one persistent
//! pool), and `curl` (connection reuse between two URLs, HEAD, one range and two ranges of a
//! file served with `--path`). Python's
//! `http.client` is in `tests/web.rs`; the echo, chunked-response and chunked-upload cases
//! run against the `web_proxy` example (the root crate's `tests/web_proxy_examples.rs`).
//!
//! Python comes from `TWISTOR_PYTHON`, else `python3` on `PATH`; curl from `PATH`. A missing
//! tool skips the test with a `SKIPPED` line on stderr, except under CI (`CI` set).

#[path = "../../tests/util/mod.rs"]
mod util;

use std::path::Path;
use std::time::Duration;

use util::{Finished, RunningExample, port_in, python_with, skip_without, spawn_program};

const WAIT: Duration = Duration::from_secs(10);

fn start_hello() -> (RunningExample, u16) {
    start(&["--hello"])
}

fn start(opts: &[&str]) -> (RunningExample, u16) {
    let mut args = vec!["web", "--port", "0", "--logfile", "/dev/null"];
    args.extend_from_slice(opts);
    let mut server = spawn_program(
        Path::new(env!("CARGO_BIN_EXE_twistor")),
        &format!("twistor web {}", opts.join(" ")),
        &args,
    );
    let (_, first) = server.next_line(WAIT);
    assert!(
        first.starts_with("twistor web listening on tcp:"),
        "{first:?}"
    );
    let port = port_in(&first);
    (server, port)
}

fn stop(mut server: RunningExample) {
    server.wait_for_signal_handlers(&[libc::SIGTERM], WAIT);
    server.signal(libc::SIGTERM);
    let done = server.wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert!(!done.stderr.contains("panicked"), "{done:?}");
}

/// Runs `program args` to its end (killed after `WAIT`).
fn run(program: &str, args: &[&str]) -> Finished {
    spawn_program(Path::new(program), program, args).wait(WAIT)
}

fn stdout_lines(done: &Finished) -> Vec<&str> {
    done.lines.iter().map(|(_, l)| l.as_str()).collect()
}

const PY_URLLIB: &str = r#"
import sys, urllib.request, urllib.error
base = "http://127.0.0.1:%s/" % sys.argv[1]
r = urllib.request.urlopen(base, timeout=10)
print("GET", r.status, r.headers["Content-Type"], repr(r.read()))
r = urllib.request.urlopen(urllib.request.Request(base, method="HEAD"), timeout=10)
print("HEAD", r.status, r.headers["Content-Length"], repr(r.read()))
for path, data in [("nothing/here", None), ("", b"a=1")]:
    try:
        urllib.request.urlopen(urllib.request.Request(base + path, data=data), timeout=10)
    except urllib.error.HTTPError as e:
        print("ERROR", e.code, e.headers.get("Allow"), b"<html" in e.read().lower())
"#;

#[test]
fn python_urllib_against_twistor_web() {
    let Some(py) = python_with("urllib.request") else {
        return skip_without("no python3 (set TWISTOR_PYTHON)");
    };
    let (server, port) = start_hello();
    let out = run(&py, &["-c", PY_URLLIB, &port.to_string()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout_lines(&out),
        [
            "GET 200 text/plain b'Hello, World!'",
            "HEAD 200 13 b''",
            "ERROR 404 None True",
            "ERROR 405 GET, HEAD True",
        ]
    );
    stop(server);
}

const PY_TWISTED_AGENT: &str = r#"
import sys
from io import BytesIO
from twisted.internet import defer, task
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody

async def main(reactor, base):
    pool = HTTPConnectionPool(reactor)
    agent = Agent(reactor, pool=pool)
    for _ in range(2):
        r = await agent.request(b"GET", base)
        print("GET", r.code, r.headers.getRawHeaders(b"content-type"), repr(await readBody(r)))
    r = await agent.request(b"HEAD", base)
    print("HEAD", r.code, repr(await readBody(r)))
    r = await agent.request(b"GET", base + b"nothing")
    print("404", r.code, b"No Such Resource" in await readBody(r))
    body = FileBodyProducer(BytesIO(b"x" * 5000))
    r = await agent.request(b"POST", base, None, body)
    print("POST", r.code, r.headers.getRawHeaders(b"allow"), len(await readBody(r)) > 0)
    r = await agent.request(b"GET", base)
    print("GET", r.code, repr(await readBody(r)))
    print("cached", len(pool._connections.get((b"http", b"127.0.0.1", int(sys.argv[2])), [])))
    await pool.closeCachedConnections()

task.react(lambda reactor: defer.ensureDeferred(main(reactor, sys.argv[1].encode())))
"#;

#[test]
fn twisted_agent_against_twistor_web() {
    let Some(py) = python_with("twisted.web.client") else {
        return skip_without("no python with Twisted: set TWISTOR_PYTHON to one");
    };
    let (server, port) = start_hello();
    let url = format!("http://127.0.0.1:{port}/");
    let out = run(&py, &["-c", PY_TWISTED_AGENT, &url, &port.to_string()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout_lines(&out),
        [
            "GET 200 [b'text/plain'] b'Hello, World!'",
            "GET 200 [b'text/plain'] b'Hello, World!'",
            "HEAD 200 b''",
            "404 404 True",
            "POST 405 [b'GET, HEAD'] True",
            "GET 200 b'Hello, World!'",
            // Every answer kept the connection open: it went back to Twisted's pool.
            "cached 1",
        ]
    );
    stop(server);
}

fn have_curl() -> bool {
    let ok = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok();
    if !ok {
        skip_without("no curl on PATH");
    }
    ok
}

#[test]
fn curl_reuses_the_connection_and_sends_head() {
    if !have_curl() {
        return;
    }
    let (server, port) = start_hello();
    let url = format!("http://127.0.0.1:{port}/");
    let out = run("curl", &["-sS", "-v", &url, &url]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout_lines(&out), ["Hello, World!Hello, World!"]);
    assert!(
        out.stderr.contains("Re-using existing connection"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.matches("Connected to 127.0.0.1").count(), 1);
    let head = run("curl", &["-sS", "-I", &url]);
    assert!(head.status.success(), "{head:?}");
    let lines = stdout_lines(&head);
    assert_eq!(lines.first(), Some(&"HTTP/1.1 200 OK"), "{lines:?}");
    assert!(lines.contains(&"Content-Length: 13"), "{lines:?}");
    stop(server);
}

#[test]
fn curl_ranges_of_a_static_file() {
    if !have_curl() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("twistor-web-ranges-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("data.bin"), &data).unwrap();
    let out_file = dir.join("answer");
    let out_path = out_file.to_str().unwrap();
    let (server, port) = start(&["--path", dir.to_str().unwrap()]);
    let url = format!("http://127.0.0.1:{port}/data.bin");

    let one = run(
        "curl",
        &[
            "-sS",
            "-r",
            "0-99",
            "-o",
            out_path,
            "-w",
            "%{http_code}",
            &url,
        ],
    );
    assert!(one.status.success(), "{one:?}");
    assert_eq!(stdout_lines(&one), ["206"]);
    assert_eq!(std::fs::read(&out_file).unwrap(), &data[..100]);

    let two = run(
        "curl",
        &["-sS", "-r", "0-9,20-29", "-D", "-", "-o", out_path, &url],
    );
    assert!(two.status.success(), "{two:?}");
    let head = stdout_lines(&two);
    assert_eq!(
        head.first(),
        Some(&"HTTP/1.1 206 Partial Content"),
        "{head:?}"
    );
    let ct = head
        .iter()
        .find_map(|l| l.strip_prefix("Content-Type: multipart/byteranges; boundary="))
        .unwrap_or_else(|| panic!("no multipart Content-Type: {head:?}"));
    let boundary = ct.trim_matches('"');
    let body = std::fs::read(&out_file).unwrap();
    // Each part: its own Content-Range and the bytes, between boundaries.
    let parts: Vec<&[u8]> = split_on(&body, format!("--{boundary}").as_bytes());
    let mut got = Vec::new();
    for part in parts {
        let Some(i) = part.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let part_head = String::from_utf8_lossy(&part[..i]).into_owned();
        let bytes = part[i + 4..]
            .strip_suffix(b"\r\n")
            .unwrap_or(&part[i + 4..]);
        got.push((part_head, bytes.to_vec()));
    }
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].0.contains("Content-Range: bytes 0-9/1000"),
        "{got:?}"
    );
    assert_eq!(got[0].1, &data[0..10]);
    assert!(
        got[1].0.contains("Content-Range: bytes 20-29/1000"),
        "{got:?}"
    );
    assert_eq!(got[1].1, &data[20..30]);
    assert!(
        body.ends_with(format!("--{boundary}--\r\n").as_bytes()),
        "{body:?}"
    );
    stop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pieces of `haystack` between occurrences of `sep`.
fn split_on<'a>(haystack: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = haystack;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}

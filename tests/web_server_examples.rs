//! The web examples run as processes and answer over real TCP.

mod util;

use std::io::{Read, Write};
use std::time::Duration;

use util::{connect_local, port_in, spawn_example};

const WAIT: Duration = Duration::from_secs(10);

/// Sends one request, reads the whole response (the request asks to close).
fn fetch(port: u16, request: &str) -> String {
    let mut c = connect_local(port);
    c.set_read_timeout(Some(WAIT)).unwrap();
    c.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn get(port: u16, path: &str) -> String {
    fetch(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    )
}

fn with_example(name: &str, args: &[&str], f: impl FnOnce(u16)) {
    let mut all = vec!["--port", "0"];
    all.extend_from_slice(args);
    let mut server = spawn_example(name, &all);
    let (_, first) = server.next_line(WAIT);
    assert!(
        first.starts_with(&format!("{name} listening on tcp:")),
        "{first:?}"
    );
    f(port_in(&first));
    server.wait_for_signal_handlers(&[libc::SIGTERM], WAIT);
    server.signal(libc::SIGTERM);
    let done = server.wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
}

#[test]
fn web_tree_serves_a_page_a_child_and_a_form() {
    with_example("web_tree", &[], |port| {
        assert!(get(port, "/").contains("Visit number 1."));
        assert!(get(port, "/").contains("Visit number 2."));
        assert!(get(port, "/hello/big/world").ends_with("\r\n\r\nHello, big world!"));
        assert!(get(port, "/form").contains("<form method=\"POST\">"));
        let body = "name=%3Cb%3EAda";
        let out = fetch(
            port,
            &format!(
                "POST /form HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        assert!(
            out.ends_with("You submitted: &lt;b&gt;Ada</body></html>"),
            "{out}"
        );
        assert!(get(port, "/nothing").starts_with("HTTP/1.1 404 "));
    });
}

#[test]
fn web_later_answers_from_a_deferred() {
    with_example("web_later", &["--delay", "0.2"], |port| {
        let t = std::time::Instant::now();
        let out = get(port, "/");
        assert!(
            t.elapsed() >= Duration::from_millis(190),
            "{:?}",
            t.elapsed()
        );
        assert!(
            out.ends_with("\r\n\r\nSorry to keep you waiting 0.2 s."),
            "{out}"
        );
    });
}

#[test]
fn web_async_answers_from_an_async_block() {
    with_example("web_async", &[], |port| {
        assert!(get(port, "/").ends_with("\r\n\r\nfirst, then second"));
    });
}

#[test]
fn web_static_serves_a_file_whole_and_by_range() {
    let out = util::run_example("web_static", &["--port", "0", "--self-test"]);
    assert!(out.contains("self-test: None: 200 ok"), "{out}");
    assert!(
        out.contains("self-test: Some(\"bytes=7-12\"): 206 ok"),
        "{out}"
    );
}

//! The HTTP/1.1 server channel, driven through in-memory transports and a virtual clock.

#[path = "util/web_served.rs"]
mod web_served;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use web_served::Served;

use twistor::transport::Producer;
use twistor::web::resource::{Render, Resource};

use twistor::web::{HttpLimits, Request};

/// `/slow` answers when told (kept requests), `/echo` returns the body, `/stream` writes
/// without a length, anything else says "hello".
#[derive(Default)]
struct App {
    kept: RefCell<Vec<Request>>,
}

impl Resource for App {
    fn is_leaf(&self) -> bool {
        true
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "HEAD", "POST"]
    }
    fn render_get(&self, r: &Request) -> Option<Render> {
        Some(match r.path() {
            b"/slow" => {
                self.kept.borrow_mut().push(r.clone());
                Render::NotDoneYet
            }
            b"/stream" => {
                r.write(b"abc");
                r.write(b"");
                r.write(b"defgh");
                r.finish();
                Render::NotDoneYet
            }
            b"/204" => {
                r.set_response_code(204);
                Render::Static(b"ignored")
            }
            b"/304" => {
                r.set_response_code(304);
                Render::Static(b"ignored")
            }
            b"/over" => {
                r.set_header("Content-Length", "3");
                r.write(b"abcdef");
                r.finish();
                Render::NotDoneYet
            }
            b"/short" => {
                r.set_header("Content-Length", "10");
                r.write(b"abc");
                r.finish();
                Render::NotDoneYet
            }
            _ => Render::Static(b"hello"),
        })
    }
    fn render_post(&self, r: &Request) -> Option<Render> {
        Some(Render::Body(r.body().to_vec()))
    }
}

type Server = Served<App>;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn a_get_is_answered_with_its_length_date_and_server() {
    let s = Server::new();
    s.send(GET);
    let out = s.out();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("\r\nServer: twistor\r\n"));
    assert!(out.contains("\r\nDate: ") && out.contains(" GMT\r\n"));
    assert!(out.ends_with("\r\nContent-Length: 5\r\n\r\nhello"), "{out}");
    assert!(!s.closed());
}

#[test]
fn keep_alive_serves_requests_one_after_another() {
    let s = Server::new();
    for _ in 0..3 {
        s.send(GET);
    }
    assert_eq!(s.statuses(), ["200", "200", "200"]);
    assert!(!s.closed());
}

#[test]
fn connection_close_is_honoured_in_any_case() {
    for v in ["close", "Close", "keep-alive, CLOSE"] {
        let s = Server::new();
        s.send(
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: {v}\r\n\r\n{}",
                "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(
            s.statuses(),
            ["200"],
            "{v}: pipelined bytes after close are dropped"
        );
        assert!(s.out().contains("\r\nConnection: close\r\n"));
        assert!(s.closed(), "{v}");
    }
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    let s = Server::new();
    s.send(b"GET / HTTP/1.0\r\n\r\n");
    // Answered in the client's version, as Twisted does.
    assert!(s.out().starts_with("HTTP/1.0 200 OK\r\n"), "{}", s.out());
    assert!(s.closed());

    let s = Server::new();
    s.send(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(s.out().contains("\r\nConnection: keep-alive\r\n"));
    assert!(!s.closed());
    // Without a length a 1.0 response is delimited by the close.
    s.send(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(s.out().ends_with("\r\n\r\nabcdefgh"), "{}", s.out());
    assert!(s.closed());
}

#[test]
fn pipelined_responses_keep_request_order() {
    let s = Server::new();
    s.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s.out(), "", "the second waits for the first");
    let slow = s.app.kept.borrow_mut().pop().unwrap();
    slow.write_and_finish(b"first");
    let out = s.out();
    let first = out.find("first").unwrap();
    let second = out.find("hello").unwrap();
    assert!(first < second, "{out}");
    assert_eq!(s.statuses(), ["200", "200"]);
}

#[test]
fn a_bad_pipelined_request_is_refused_after_the_earlier_response() {
    let s = Server::new();
    s.send(
        b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
    );
    assert_eq!(s.out(), "");
    s.app
        .kept
        .borrow_mut()
        .pop()
        .unwrap()
        .write_and_finish(b"first");
    assert_eq!(s.statuses(), ["200", "400"]);
    assert!(s.out().find("first").unwrap() < s.out().find("400 Bad").unwrap());
    assert!(s.closed());
}

#[test]
fn pipelined_input_beyond_the_bound_pauses_reading() {
    let s = Server::with_limits(HttpLimits {
        max_pipelined: 100,
        ..Default::default()
    });
    s.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    s.send(&GET.repeat(5));
    assert_eq!(s.st.read_state(), twistor::testing::ReadState::Paused);
    s.app
        .kept
        .borrow_mut()
        .pop()
        .unwrap()
        .write_and_finish(b"x");
    assert_eq!(s.st.read_state(), twistor::testing::ReadState::Producing);
    assert_eq!(s.statuses().len(), 6);
}

#[test]
fn bodies_by_length_and_chunked_reach_the_resource() {
    let s = Server::new();
    s.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe");
    assert_eq!(s.out(), "");
    s.send(b"llo");
    assert!(s.out().ends_with("\r\n\r\nhello"));
    s.st.clear();
    s.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nTrailer: 1\r\n\r\n");
    assert!(
        s.out().ends_with("Content-Length: 5\r\n\r\nabcde"),
        "{}",
        s.out()
    );
}

#[test]
fn responses_without_a_length_are_chunked_on_http11() {
    let s = Server::new();
    s.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = s.out();
    assert!(out.contains("\r\nTransfer-Encoding: chunked\r\n"));
    assert!(
        out.ends_with("\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"),
        "{out}"
    );
    assert!(!s.closed());
}

#[test]
fn continue_is_sent_only_when_the_body_is_about_to_be_read() {
    let s = Server::new();
    s.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    assert!(
        !s.out().contains("100 Continue"),
        "not while the first is answered"
    );
    s.app
        .kept
        .borrow_mut()
        .pop()
        .unwrap()
        .write_and_finish(b"1");
    assert!(s.out().ends_with("HTTP/1.1 100 Continue\r\n\r\n"));
    s.send(b"ok");
    assert!(s.out().ends_with("\r\n\r\nok"));

    let s = Server::new();
    s.send(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    assert!(!s.out().contains("100 Continue"), "never to HTTP/1.0");
    let s = Server::new();
    s.send(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 99999999999\r\n\r\n");
    assert_eq!(s.statuses(), ["413"], "a body refused up front gets no 100");
}

#[test]
fn head_keeps_the_length_and_sends_no_body() {
    let s = Server::new();
    s.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        s.out().ends_with("\r\nContent-Length: 5\r\n\r\n"),
        "{}",
        s.out()
    );
    s.st.clear();
    s.send(b"HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = s.out();
    assert!(
        out.ends_with("\r\n\r\n") && !out.contains("abc") && !out.contains("chunked"),
        "{out}"
    );
    s.send(GET);
    assert_eq!(s.statuses(), ["200", "200"], "framing intact after HEAD");
}

#[test]
fn no_body_and_no_length_on_204_and_304() {
    for p in ["/204", "/304"] {
        let s = Server::new();
        s.send(format!("GET {p} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let out = s.out();
        assert!(out.ends_with("\r\n\r\n"), "{out}");
        assert!(
            !out.contains("Content-Length") && !out.contains("ignored") && !out.contains("chunked"),
            "{out}"
        );
        assert!(!s.closed());
    }
}

#[test]
fn bytes_beyond_the_declared_length_are_refused_and_short_responses_close() {
    let s = Server::new();
    s.send(b"GET /over HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        s.out().ends_with("Content-Length: 3\r\n\r\nabc"),
        "{}",
        s.out()
    );
    assert!(!s.closed());
    let s = Server::new();
    s.send(b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(s.out().ends_with("\r\n\r\nabc"));
    assert!(s.closed());
}

fn refused(input: &[u8]) -> (String, bool) {
    let s = Server::new();
    s.send(input);
    (s.statuses().join(","), s.closed())
}

#[test]
fn each_limit_has_its_status() {
    let l = HttpLimits::default();
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(l.max_request_line)
    );
    assert_eq!(refused(long.as_bytes()), ("414".into(), true));
    // Even before the line ends.
    assert_eq!(
        refused(&vec![b'a'; l.max_request_line + 2]),
        ("414".into(), true)
    );
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "a".repeat(l.max_head)
    );
    assert_eq!(refused(big.as_bytes()), ("431".into(), true));
    let many: String = (0..l.max_headers)
        .map(|i| format!("X-{i}: 1\r\n"))
        .collect();
    let many = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert_eq!(refused(many.as_bytes()), ("431".into(), true));
    let ok: String = (0..l.max_headers - 1)
        .map(|i| format!("X-{i}: 1\r\n"))
        .collect();
    assert_eq!(
        refused(format!("GET / HTTP/1.1\r\nHost: x\r\n{ok}\r\n").as_bytes()),
        ("200".into(), false)
    );
    let cl = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        l.max_body + 1
    );
    assert_eq!(refused(cl.as_bytes()), ("413".into(), true));

    let s = Server::with_limits(HttpLimits {
        max_body: 4,
        ..Default::default()
    });
    s.send(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n",
    );
    assert_eq!(s.statuses(), ["413"]);
    assert!(s.closed());
}

#[test]
fn smuggling_shapes_are_refused_with_400() {
    let cases: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\rY: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n: a\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
        b"GET /\xb1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET nopath HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
        b"GET / http/1.1\r\nHost: x\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
    ];
    for c in cases {
        assert_eq!(
            refused(c),
            ("400".into(), true),
            "{:?}",
            String::from_utf8_lossy(c)
        );
    }
    // Accepted on purpose: identity is ignored, a capitalised chunked is chunked, one empty
    // line before a request is skipped.
    for ok in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 1\r\n\r\na"
            [..],
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
        b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        assert_eq!(
            refused(ok),
            ("200".into(), false),
            "{:?}",
            String::from_utf8_lossy(ok)
        );
    }
}

#[test]
fn an_idle_connection_is_closed_silently() {
    let s = Server::new();
    s.send(GET);
    s.st.clear();
    s.advance(59.0);
    assert!(!s.closed());
    s.advance(1.0);
    assert!(s.closed());
    assert_eq!(s.out(), "");
}

#[test]
fn a_trickled_head_is_cut_at_the_head_deadline() {
    let s = Server::new();
    let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for b in head.iter().take(25) {
        s.send(&[*b]);
        s.advance(0.75);
    }
    assert!(!s.closed());
    for b in head.iter().skip(25).take(10) {
        s.send(&[*b]);
        s.advance(0.75);
    }
    assert_eq!(s.statuses(), ["408"]);
    assert!(s.closed());
}

#[test]
fn a_stalled_body_gets_408() {
    let s = Server::new();
    s.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    s.advance(29.0);
    s.send(b"de");
    s.advance(29.0);
    assert!(!s.closed(), "each read extends the body deadline");
    s.advance(1.0);
    assert_eq!(s.statuses(), ["408"]);
    assert!(s.closed());
}

#[test]
fn no_timeout_while_the_application_answers() {
    let s = Server::new();
    s.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    s.advance(1000.0);
    assert!(!s.closed());
    s.app
        .kept
        .borrow_mut()
        .pop()
        .unwrap()
        .write_and_finish(b"late");
    assert!(s.out().ends_with("late"));
    s.advance(60.0);
    assert!(s.closed(), "idle again after the response");
}

struct Stopped(Cell<u32>);
impl Producer for Stopped {
    fn pause_producing(&self) {}
    fn resume_producing(&self) {}
    fn stop_producing(&self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn a_client_leaving_mid_response_fails_notify_finish_and_stops_the_producer() {
    let s = Server::new();
    s.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = s.app.kept.borrow_mut().pop().unwrap();
    let d = r.notify_finish();
    let p = Rc::new(Stopped(Cell::new(0)));
    r.register_producer(p.clone(), true).unwrap();
    r.write(b"partial");
    s.st.connection_lost(twistor::Failure::new(twistor::error::ConnectionLost::new()));
    assert!(p.0.get() >= 1, "producer stopped");
    let f = twistor::testing::failure_result_of(&d);
    assert!(f.is::<twistor::error::ConnectionLost>());
    // Later writes and finish are harmless; a later notify_finish fails at once.
    r.write(b"more");
    r.finish();
    assert!(
        twistor::testing::failure_result_of(&r.notify_finish())
            .is::<twistor::error::ConnectionLost>()
    );
}

#[test]
fn notify_finish_fires_on_finish_and_at_once_afterwards() {
    let s = Server::new();
    s.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = s.app.kept.borrow_mut().pop().unwrap();
    let d = r.notify_finish();
    twistor::testing::assert_no_result(&d);
    r.write_and_finish(b"x");
    twistor::testing::success_result_of(&d);
    twistor::testing::success_result_of(&r.notify_finish());
}

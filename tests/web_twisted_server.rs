//! Twisted's portable server behaviours (its `test_http`, `test_web`, `test_resource`,
//! `test_util`, `test_vhost` suites), each driven the way Twisted's test drives it: bytes into
//! an in-memory transport, a virtual clock, the exact bytes out. Where twistor differs on
//! purpose (stricter parsing, real status codes instead of a silent close), the test asserts
//! twistor's behaviour and says why.

mod tlsutil;

#[path = "util/web_served.rs"]
mod web_served;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use web_served::Served;

use twistor::testing::{MemoryReactor, ReadState, StringTransport};
use twistor::transport::Producer;
use twistor::web::request::Cookie;
use twistor::web::resource::{Children, Render, Resource, Tree};
use twistor::web::site::AccessLog;
use twistor::web::{HttpLimits, Request, Site};

/// Keeps `/slow*` requests to be answered later, echoes bodies, records what it saw.
#[derive(Default)]
struct App {
    kept: RefCell<Vec<Request>>,
    seen: RefCell<Vec<Request>>,
}

impl Resource for App {
    fn is_leaf(&self) -> bool {
        true
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "HEAD", "POST"]
    }
    fn render_get(&self, r: &Request) -> Option<Render> {
        self.seen.borrow_mut().push(r.clone());
        if r.path().starts_with(b"/slow") {
            self.kept.borrow_mut().push(r.clone());
            return Some(Render::NotDoneYet);
        }
        Some(Render::Static(b"Hello, world!"))
    }
    fn render_post(&self, r: &Request) -> Option<Render> {
        self.seen.borrow_mut().push(r.clone());
        if r.path().starts_with(b"/slow") {
            self.kept.borrow_mut().push(r.clone());
            return Some(Render::NotDoneYet);
        }
        Some(Render::Body(r.body().to_vec()))
    }
}

type Server = Served<App>;

impl Server {
    fn seen(&self) -> usize {
        self.app.seen.borrow().len()
    }
    fn last(&self) -> Request {
        self.app.seen.borrow().last().cloned().expect("a request")
    }
    fn take_kept(&self) -> Request {
        self.app.kept.borrow_mut().remove(0)
    }
}

/// What a server answers to `input` on a fresh connection: status codes, closed, requests
/// that reached the resource.
fn exchange(input: &[u8]) -> (Vec<String>, bool, usize) {
    let s = Server::new();
    s.send(input);
    (s.statuses(), s.closed(), s.seen())
}

fn assert_refused(input: &[u8]) {
    assert_eq!(
        exchange(input),
        (vec!["400".to_string()], true, 0),
        "{:?}",
        String::from_utf8_lossy(input)
    );
}

// ----- 9.1 request line, headers, limits -----

#[test]
fn http10_is_answered_in_its_version_and_a_pipelined_request_after_it_is_ignored() {
    let s = Server::new();
    s.send_bytewise(b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = s.out();
    assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out}");
    assert_eq!(s.statuses(), ["200"]);
    assert_eq!(s.seen(), 1);
    assert!(s.closed());
}

#[test]
fn four_pipelined_requests_get_four_responses_in_order_and_head_has_no_body() {
    let s = Server::new();
    s.send(
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\
          POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789\
          POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabcdefghij\
          HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let out = s.out();
    assert_eq!(s.statuses(), ["200", "200", "200", "200"]);
    let a = out.find("Hello, world!").unwrap();
    let b = out.find("0123456789").unwrap();
    let c = out.find("abcdefghij").unwrap();
    assert!(a < b && b < c, "{out}");
    let head = &out[out.rfind("HTTP/1.1 200").unwrap()..];
    assert!(head.ends_with("Content-Length: 13\r\n\r\n"), "{head}");
    assert!(!s.closed());
}

#[test]
fn an_http09_request_line_is_400_and_close() {
    // Twisted writes a bare `HTTP/1.1 400 Bad Request\r\n\r\n`; twistor's 400 also says why
    // in a short body with its length, so a client can tell the response ended.
    let s = Server::new();
    s.send(b"GET /\r\n");
    s.send(b"\r\n");
    let out = s.out();
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    assert!(s.closed());
    assert_eq!(s.seen(), 0);
}

#[test]
fn a_non_ascii_method_is_400_and_never_processed() {
    assert_refused(b"GE\xc2\xa9 / HTTP/1.1\r\nHost: x\r\n\r\n");
}

#[test]
fn extra_or_odd_whitespace_in_the_request_line_is_400() {
    for line in [
        &b"GET  / HTTP/1.0"[..],
        b"GET /  HTTP/1.0",
        b"GET\t/ HTTP/1.0",
        b"GET /\x0bHTTP/1.1",
        b"GET / HTTP/1.1 ",
        b" GET / HTTP/1.1",
    ] {
        let mut req = line.to_vec();
        req.extend_from_slice(b"\r\nHost: x\r\n\r\n");
        assert_refused(&req);
    }
}

#[test]
fn an_empty_or_nul_method_is_400() {
    assert_refused(b" / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_refused(b"G\0T / HTTP/1.1\r\nHost: x\r\n\r\n");
}

#[test]
fn an_unknown_version_is_400() {
    assert_refused(b"GET / HTTP/1.2\r\nHost: x\r\n\r\n");
    assert_refused(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n");
}

#[test]
fn an_empty_nul_or_whitespace_target_is_400() {
    assert_refused(b"GET  HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_refused(b"GET /foo\0 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_refused(b"GET /foo\t/bar HTTP/1.1\r\nHost: x\r\n\r\n");
}

#[test]
fn target_bytes_outside_visible_ascii_are_400_including_0xb0_and_del() {
    // Twisted accepts bytes up to 0xB0 (a decimal-for-octal slip: 176 where 126 was meant)
    // and DEL; twistor takes only visible ASCII in the target, as RFC 9112 says.
    assert_refused(b"GET /\xb0 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_refused(b"GET /\xb1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_refused(b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        exchange(b"GET /~a-b_c.d!$&'()*+,;=:@%20 HTTP/1.1\r\nHost: x\r\n\r\n"),
        (vec!["200".to_string()], false, 1)
    );
}

#[test]
fn header_lookup_is_case_insensitive_and_keeps_every_value_in_order() {
    let s = Server::new();
    s.send(b"GET / HTTP/1.1\r\nHost: x\r\nFoo: bar\r\nbaz: Quux\r\nbaz: quux\r\n\r\n");
    let r = s.last();
    assert_eq!(r.get_header("foo"), Some(&b"bar"[..]));
    let baz: Vec<&[u8]> = r
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"bAz"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(baz, [&b"Quux"[..], b"quux"]);
    // getHeader gives the last value, or nothing.
    assert_eq!(r.get_header("BAZ"), Some(&b"quux"[..]));
    assert_eq!(r.get_header("absent"), None);
}

#[test]
fn obs_folded_headers_are_400() {
    // Twisted unfolds obsolete line folding; RFC 9112 section 5.2 lets a server reject it,
    // and twistor does: a folded line is read as one header by some parsers and as two by
    // others, which is how requests get smuggled.
    assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\nspace: space\r\n space\r\n\r\n");
    assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\nnospace: \r\n nospace\t\r\n\r\n");
    assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\nt: t\r\n\ta\r\n\r\n");
}

#[test]
fn spaces_and_tabs_around_header_values_are_stripped() {
    let s = Server::new();
    s.send(b"GET / HTTP/1.1\r\nHost: x\r\nA: \t spaced \t \r\nB:tight\r\n\r\n");
    let r = s.last();
    assert_eq!(r.get_header("a"), Some(&b"spaced"[..]));
    assert_eq!(r.get_header("b"), Some(&b"tight"[..]));
}

#[test]
fn vertical_tab_and_form_feed_in_values_are_400() {
    // Twisted keeps VT and FF inside values (only SP and HTAB are stripped); they are
    // control characters RFC 9110 excludes from field values, and twistor refuses them.
    assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\nV: \x0b vertical tab\x0b\r\n\r\n");
    assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\nF: a\x0cb\r\n\r\n");
}

#[test]
fn header_lines_without_a_proper_name_and_colon_are_400() {
    assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\nHeaderName \r\n\r\n");
    assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\nHeaderName\r\n\r\n");
    assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\n: foo\r\n\r\n");
    assert_refused(b"GET / HTTP/1.1\r\nHost: x\r\nHeaderName : foo\r\n\r\n");
}

#[test]
fn header_names_with_control_space_or_non_ascii_bytes_are_400() {
    for name in [
        &b"Head\0er"[..],
        b"Head\x1ber",
        b"Head\x0ber",
        b"Head er",
        b"Head\xc3\xa9er",
    ] {
        let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        req.extend_from_slice(name);
        req.extend_from_slice(b": v\r\n\r\n");
        assert_refused(&req);
    }
}

#[test]
fn header_values_with_nul_cr_or_lf_are_400() {
    for value in [
        &b"\0"[..],
        b"a\0",
        b"a\rb",
        b"a\rContent-Length: 5",
        b"a\nb",
        b"a\nContent-Length: 5",
    ] {
        let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n\r\n");
        assert_refused(&req);
    }
}

#[test]
fn too_many_headers_is_431_not_a_bare_400() {
    let limits = HttpLimits {
        max_headers: 3,
        ..Default::default()
    };
    let s = Server::with_limits(limits);
    s.send(b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
    assert_eq!(s.statuses(), ["431"]);
    assert!(s.closed());
    assert_eq!(s.seen(), 0);
}

#[test]
fn the_header_count_limit_is_per_request() {
    let s = Server::with_limits(HttpLimits {
        max_headers: 1,
        ..Default::default()
    });
    s.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s.statuses(), ["200", "200"]);
    assert_eq!(s.seen(), 2);
    assert!(!s.closed());
}

#[test]
fn a_request_line_over_the_head_limit_is_refused_unprocessed() {
    // Twisted: 400 with `totalHeadersSize = 10`; twistor names the part that is too long.
    let s = Server::with_limits(HttpLimits {
        max_head: 10,
        max_request_line: 10,
        ..Default::default()
    });
    s.send(b"GET /a/long/path HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s.statuses(), ["414"]);
    assert!(s.closed());
    assert_eq!(s.seen(), 0);
}

#[test]
fn the_head_size_limit_counts_line_and_headers_and_resets_per_request() {
    let req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: 0123456789\r\n\r\n";
    let s = Server::with_limits(HttpLimits {
        max_head: req.len() + 2,
        ..Default::default()
    });
    s.send(&req.repeat(3));
    assert_eq!(s.statuses(), ["200", "200", "200"]);
    let s = Server::with_limits(HttpLimits {
        max_head: req.len() - 6,
        ..Default::default()
    });
    s.send(req);
    assert_eq!(s.statuses(), ["431"]);
    assert!(s.closed());
    assert_eq!(s.seen(), 0);
}

#[test]
fn a_16400_byte_request_line_is_414_not_a_silent_close() {
    let s = Server::new();
    s.send(format!("GET /{} HTTP/1.1\r\n", "a".repeat(16400)).as_bytes());
    assert_eq!(s.statuses(), ["414"]);
    assert!(s.closed());
}

#[test]
fn cookies_keep_their_quotes() {
    let s = Server::new();
    s.send(
        b"GET / HTTP/1.1\r\nHost: x\r\nCookie: rabbit=\"eat carrot\"; ninja=secret; spam=\"hey 1=1!\"\r\n\r\n",
    );
    let c = s.last().received_cookies();
    assert_eq!(c[&b"rabbit"[..]], b"\"eat carrot\"");
    assert_eq!(c[&b"ninja"[..]], b"secret");
    assert_eq!(c[&b"spam"[..]], b"\"hey 1=1!\"");
}

#[test]
fn query_arguments_are_decoded_and_grouped() {
    let s = Server::new();
    s.send(
        b"GET /?key=value&multiple=two+words&multiple=more%20words&empty= HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let args = s.last().args();
    assert_eq!(args[&b"key"[..]], [b"value".to_vec()]);
    assert_eq!(args[&b"empty"[..]], [b"".to_vec()]);
    assert_eq!(
        args[&b"multiple"[..]],
        [b"two words".to_vec(), b"more words".to_vec()]
    );
}

#[test]
fn only_the_first_question_mark_starts_the_query() {
    let s = Server::new();
    s.send(b"GET /foo?bar=?&baz=quux HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = s.last();
    assert_eq!(r.path(), b"/foo");
    assert_eq!(r.args()[&b"bar"[..]], [b"?".to_vec()]);
    assert_eq!(r.args()[&b"baz"[..]], [b"quux".to_vec()]);
}

#[test]
fn a_urlencoded_post_body_gives_args_and_keeps_the_raw_body() {
    let body = "key=value&multiple=two+words&multiple=more%20words&empty=";
    let s = Server::new();
    s.send(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let r = s.last();
    assert_eq!(r.body(), body.as_bytes());
    let args = r.args();
    assert_eq!(args[&b"key"[..]], [b"value".to_vec()]);
    assert_eq!(args[&b"empty"[..]], [b"".to_vec()]);
    assert_eq!(
        args[&b"multiple"[..]],
        [b"two words".to_vec(), b"more words".to_vec()]
    );
}

// ----- 9.2 framing, chunked coding, persistence, pipelining, timeouts -----

#[test]
fn malformed_content_lengths_are_400() {
    for cl in ["x", "MORE THAN NINE THOUSAND!", "+100", "-100", "1 0", ""] {
        assert_refused(
            format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\n\r\n").as_bytes(),
        );
    }
}

#[test]
fn duplicate_content_lengths_are_400_and_the_pipelined_request_is_never_processed() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 56\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
}

#[test]
fn an_unknown_transfer_encoding_is_400() {
    assert_refused(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: unknown\r\n\r\n");
}

#[test]
fn transfer_encoding_identity_with_a_length_reads_the_length() {
    let s = Server::new();
    s.send(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: identity\r\n\r\nok",
    );
    assert_eq!(s.last().body(), b"ok");
    assert!(
        s.out().ends_with("\r\nContent-Length: 2\r\n\r\nok"),
        "{}",
        s.out()
    );
}

#[test]
fn a_chunked_http10_request_body_is_decoded() {
    let s = Server::new();
    s.send(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nHello,\r\n14\r\n spam,eggs spam spam\r\n0\r\n\r\n",
    );
    assert_eq!(s.last().body(), b"Hello, spam,eggs spam spam");
    assert!(s.out().starts_with("HTTP/1.0 200 OK\r\n"));
}

#[test]
fn a_non_hex_chunk_size_is_400_and_never_processed() {
    assert_refused(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nMALFORMED_LINE_THIS_SHOULD_BE_'6'\r\nHello,\r\n0\r\n\r\n",
    );
}

#[test]
fn an_http11_keep_alive_response_gets_no_connection_header() {
    let s = Server::new();
    s.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!s.out().contains("Connection"), "{}", s.out());
    assert!(!s.closed());
}

#[test]
fn any_close_token_in_any_connection_header_closes() {
    // Twisted keeps `keep-alive,close` open (it splits on spaces only) and reads only the
    // first `Connection` header; twistor honours a `close` token wherever it is.
    for conn in [
        "Connection: keep-alive,close\r\n",
        "Connection: Close\r\n",
        "Connection: keep-alive\r\nConnection: close\r\n",
    ] {
        let s = Server::new();
        s.send(
            format!("GET / HTTP/1.1\r\nHost: x\r\n{conn}\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(s.statuses(), ["200"], "{conn}");
        assert!(s.out().contains("\r\nConnection: close\r\n"), "{conn}");
        assert!(s.closed(), "{conn}");
    }
}

#[test]
fn pipelined_bodies_wait_for_the_answer_before_them() {
    let input: &[u8] = b"POST /slow1 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789\
POST /slow2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n";
    for bytewise in [true, false] {
        let s = Server::new();
        if bytewise {
            s.send_bytewise(input);
        } else {
            s.send(input);
        }
        assert_eq!(s.out(), "", "nothing written while the first is pending");
        assert_eq!(s.seen(), 1, "one request dispatched");
        let first = s.take_kept();
        first.write_and_finish(b"first response, 21 by");
        assert_eq!(s.seen(), 2);
        let second = s.take_kept();
        assert_eq!(second.body(), b"0123456789");
        second.write_and_finish(b"second response, 23 byt");
        let out = s.out();
        let a = out.find("Content-Length: 21").unwrap();
        let b = out.find("Content-Length: 23").unwrap();
        assert!(a < b, "{out}");
        assert_eq!(s.statuses(), ["200", "200"]);
    }
}

#[test]
fn many_immediate_pipelined_requests_are_answered_in_order_through_pauses() {
    let s = Server::with_limits(HttpLimits {
        max_pipelined: 64,
        ..Default::default()
    });
    let mut input = Vec::new();
    for i in 0..20 {
        let body = format!("body-{i:02}");
        input.extend_from_slice(
            format!(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
    s.send(&input);
    let out = s.out();
    let mut at = 0;
    for i in 0..20 {
        let p = out[at..].find(&format!("body-{i:02}")).expect("in order");
        at += p;
    }
    assert_eq!(s.statuses().len(), 20);
    assert_eq!(s.st.read_state(), ReadState::Producing);
}

#[test]
fn a_request_that_never_answers_holds_the_next_until_finished() {
    let s = Server::new();
    s.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s.seen(), 1);
    s.take_kept().finish();
    assert_eq!(s.seen(), 2, "dispatched at once after the first finished");
}

#[test]
fn continue_comes_after_the_blank_line_and_before_the_body_is_read() {
    let s = Server::new();
    s.send(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n");
    assert_eq!(s.out(), "", "nothing before the head is complete");
    s.send(b"\r\n");
    assert_eq!(s.out(), "HTTP/1.1 100 Continue\r\n\r\n");
    s.send(b"hello");
    let out = s.out();
    assert!(out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"));
    assert!(out.ends_with("\r\n\r\nhello"));
}

#[test]
fn a_body_arriving_slowly_but_steadily_is_not_timed_out() {
    // Twisted's test: only the per-read timeout, no minimum rate.
    let s = Server::with_limits(HttpLimits {
        body_timeout: Some(100.0),
        min_body_rate: None,
        ..Default::default()
    });
    s.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");
    for b in b"hell" {
        s.reactor.clock().advance(99.0);
        s.send(&[*b]);
        assert!(!s.closed());
    }
    s.send(b"o");
    assert!(s.out().ends_with("hello"));
}

#[test]
fn a_timed_out_request_gets_408_once_and_nothing_after_the_connection_is_lost() {
    let s = Server::new();
    s.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab");
    s.reactor.clock().advance(30.0);
    assert_eq!(s.statuses(), ["408"]);
    assert!(s.closed());
    s.st.connection_lost(twistor::Failure::new(twistor::error::ConnectionDone));
    s.reactor.clock().advance(100.0);
    assert_eq!(s.statuses(), ["408"]);
}

#[test]
fn aborting_in_render_closes_and_writes_nothing() {
    struct Abort;
    impl Resource for Abort {
        fn is_leaf(&self) -> bool {
            true
        }
        fn render_get(&self, r: &Request) -> Option<Render> {
            r.abort();
            Some(Render::NotDoneYet)
        }
    }
    let site = Site::with_options(
        Rc::new(Abort),
        Rc::new(MemoryReactor::new()),
        HttpLimits::default(),
        AccessLog::Off,
    );
    let st = StringTransport::new();
    st.connect(site.channel());
    st.deliver(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(st.disconnecting());
    assert_eq!(st.value(), b"");
}

#[derive(Default)]
struct Pausable {
    paused: Cell<u32>,
    resumed: Cell<u32>,
    stopped: Cell<u32>,
}
impl Producer for Pausable {
    fn pause_producing(&self) {
        self.paused.set(self.paused.get() + 1);
    }
    fn resume_producing(&self) {
        self.resumed.set(self.resumed.get() + 1);
    }
    fn stop_producing(&self) {
        self.stopped.set(self.stopped.get() + 1);
    }
}

#[test]
fn a_second_producer_is_refused_and_transport_pauses_reach_the_request_producer() {
    let s = Server::new();
    s.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = s.take_kept();
    let p = Rc::new(Pausable::default());
    r.register_producer(p.clone(), true).unwrap();
    assert!(
        r.register_producer(Rc::new(Pausable::default()), true)
            .is_err()
    );
    // The producer is registered on the connection itself, so the transport's flow
    // control pauses and resumes it directly.
    let (on_transport, streaming) = s.st.producer().expect("registered on the transport");
    assert!(streaming);
    on_transport.pause_producing();
    assert_eq!(p.paused.get(), 1);
    on_transport.resume_producing();
    assert_eq!(p.resumed.get(), 1);
    r.unregister_producer();
    r.finish();
    assert_eq!(p.stopped.get(), 0);
}

#[test]
fn finishing_with_a_producer_still_registered_unregisters_it() {
    let s = Server::new();
    s.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = s.take_kept();
    r.register_producer(Rc::new(Pausable::default()), true)
        .unwrap();
    r.write_and_finish(b"x");
    assert!(s.st.producer().is_none());
    // The connection goes on.
    s.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s.statuses(), ["200", "200"]);
}

#[test]
fn line_breaks_in_response_header_values_become_one_space() {
    struct Inject;
    impl Resource for Inject {
        fn is_leaf(&self) -> bool {
            true
        }
        fn render_get(&self, r: &Request) -> Option<Render> {
            r.set_header("X-A", "a\r\nb");
            r.set_header("X-B", "a\rb");
            r.set_header("X-C", "a\nSet-Cookie: evil=1");
            Some(Render::Static(b""))
        }
    }
    let site = Site::with_options(
        Rc::new(Inject),
        Rc::new(MemoryReactor::new()),
        HttpLimits::default(),
        AccessLog::Off,
    );
    let st = StringTransport::new();
    st.connect(site.channel());
    st.deliver(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = String::from_utf8_lossy(&st.value()).into_owned();
    assert!(out.contains("\r\nX-A: a b\r\n"), "{out}");
    assert!(out.contains("\r\nX-B: a b\r\n"), "{out}");
    assert!(out.contains("\r\nX-C: a Set-Cookie: evil=1\r\n"), "{out}");
    assert!(!out.contains("\r\nSet-Cookie"), "{out}");
}

// ----- 9.3 the Request API -----

fn request_with(head: &str) -> (Server, Request) {
    let s = Server::new();
    s.send(head.as_bytes());
    let r = s.last();
    (s, r)
}

#[test]
fn the_request_hostname_drops_the_port_and_ipv6_brackets() {
    for (host, want) in [
        ("example.com:8443", "example.com"),
        ("192.168.1.1:19289", "192.168.1.1"),
        ("[::1]:8080", "::1"),
        ("[2607:f0d0:1002:51::4]:9443", "2607:f0d0:1002:51::4"),
        ("example.com", "example.com"),
    ] {
        let (_s, r) = request_with(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert_eq!(r.get_request_hostname(), want);
    }
}

fn status_line_for(code: u16, message: Option<&str>) -> String {
    let s = Server::new();
    s.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = s.take_kept();
    match message {
        Some(m) => r.set_response_code_with_message(code, m),
        None => r.set_response_code(code),
    }
    r.write_and_finish(b"");
    let out = s.out();
    out[..out.find("\r\n").unwrap()].to_string()
}

#[test]
fn the_status_line_has_the_code_and_its_reason() {
    assert_eq!(status_line_for(201, None), "HTTP/1.1 201 Created");
    assert_eq!(status_line_for(201, Some("foo")), "HTTP/1.1 201 foo");
    assert_eq!(status_line_for(418, None), "HTTP/1.1 418 I'm a teapot");
}

#[test]
fn last_modified_only_moves_forward() {
    let t = |s: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
    let (s, r) = request_with("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!r.set_last_modified(t(0)));
    assert!(!r.set_last_modified(t(1_000_000_000)));
    assert!(!r.set_last_modified(t(1)));
    r.write_and_finish(b"x");
    assert!(
        s.out()
            .contains("\r\nLast-Modified: Sun, 09 Sep 2001 01:46:40 GMT\r\n"),
        "{}",
        s.out()
    );
}

#[test]
fn if_modified_since_gives_304_only_when_not_older() {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    let stamp = "Mon, 12 Jan 1970 13:46:40 GMT";
    for (since, hit) in [
        (stamp.to_string(), true),
        ("Mon, 12 Jan 1970 13:46:41 GMT".into(), true),
        ("Mon, 12 Jan 1970 13:46:39 GMT".into(), false),
        ("not a date".into(), false),
    ] {
        let (_s, r) = request_with(&format!(
            "GET /slow HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: {since}\r\n\r\n"
        ));
        assert_eq!(r.set_last_modified(t), hit, "{since}");
        assert_eq!(r.code(), if hit { 304 } else { 200 }, "{since}");
    }
}

#[test]
fn a_304_gets_no_body_and_no_default_content_type() {
    let (s, r) = request_with("GET /slow HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"abc\"\r\n\r\n");
    assert!(r.set_etag(b"\"abc\""));
    r.write_and_finish(b"");
    let out = s.out();
    assert!(out.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{out}");
    assert!(!out.contains("Content-Type") && !out.contains("Content-Length"));
    assert!(out.ends_with("\r\n\r\n"));
    let (_s, r) = request_with("GET /slow HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"xyz\"\r\n\r\n");
    assert!(!r.set_etag(b"\"abc\""));
}

#[test]
fn a_cookie_with_every_attribute() {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    let c = Cookie::new("foo", "bar")
        .expires(t)
        .domain(".example.com")
        .path("/")
        .max_age(31536000)
        .secure()
        .http_only();
    assert_eq!(
        String::from_utf8(c.to_header()).unwrap(),
        "foo=bar; Expires=Sun, 09 Sep 2001 01:46:40 GMT; Domain=.example.com; Path=/; Max-Age=31536000; Secure; HttpOnly"
    );
}

#[test]
fn cookie_parts_cannot_break_out_of_the_header() {
    let c = Cookie::new("f\r\no;o", "b\nar;")
        .path("/;\r\n")
        .domain("x\r;y");
    assert_eq!(
        String::from_utf8(c.to_header()).unwrap(),
        "f  o o=b ar ; Path=/   ; Domain=x  y"
    );
}

#[test]
fn received_cookies_split_on_semicolons_and_merge_headers() {
    let (_s, r) = request_with(
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1;  b=2 ; novalue; c=3\r\nCookie: d=4\r\n\r\n",
    );
    let c = r.received_cookies();
    assert_eq!(c[&b"a"[..]], b"1");
    assert_eq!(c[&b"b"[..]], b"2 ", "the space after the value is kept");
    assert_eq!(
        c[&b"c"[..]],
        b"3",
        "parsing goes on after a valueless entry"
    );
    assert_eq!(c[&b"d"[..]], b"4", "several Cookie headers are merged");
    assert!(!c.contains_key(&b"novalue"[..]));
    assert_eq!(c.len(), 4);
}

#[test]
fn writing_after_finish_or_after_the_client_left_is_harmless() {
    // Twisted raises RuntimeError for `write` after `finish` and for `finish` after the
    // connection was lost (the most reported traceback of twisted.web); twistor logs and
    // ignores both, so a late answer cannot break the connection or the application.
    let s = Server::new();
    s.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = s.take_kept();
    r.write_and_finish(b"done");
    let before = s.out();
    r.write(b"more");
    r.finish();
    assert_eq!(s.out(), before);

    let s = Server::new();
    s.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = s.take_kept();
    s.st.connection_lost(twistor::Failure::new(twistor::error::ConnectionLost::new()));
    r.write(b"late");
    r.finish();
    assert_eq!(s.out(), "");
    assert!(r.lost());
}

#[test]
fn the_client_address_is_the_peer() {
    let (_s, r) = request_with("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        r.get_client_address().socket_addr(),
        Some(([192, 168, 1, 1], 54321).into())
    );
    assert!(!r.is_secure(), "not secure over plain TCP");
}

// ----- 9.4 Site, server.Request, resources -----

fn serve(root: Rc<dyn Resource>, req: &str) -> String {
    let site = Site::with_options(
        root,
        Rc::new(MemoryReactor::new()),
        HttpLimits::default(),
        AccessLog::Off,
    );
    let st = StringTransport::new();
    st.connect(site.channel());
    st.deliver(req.as_bytes());
    String::from_utf8_lossy(&st.value()).into_owned()
}

struct Text(&'static str);
impl Resource for Text {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, _r: &Request) -> Option<Render> {
        Some(Render::Static(self.0.as_bytes()))
    }
}

#[test]
fn the_child_at_the_empty_segment_answers_the_root() {
    let root = Rc::new(Tree::new());
    root.put_child(b"", Rc::new(Text("index")));
    let out = serve(root, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.ends_with("\r\n\r\nindex"), "{out}");
}

#[test]
fn zero_length_and_204_responses_get_no_content_type() {
    struct Empty;
    impl Resource for Empty {
        fn is_leaf(&self) -> bool {
            true
        }
        fn render_get(&self, r: &Request) -> Option<Render> {
            if r.path() == b"/204" {
                r.set_response_code(204);
            }
            Some(Render::Static(b""))
        }
    }
    for p in ["/", "/204"] {
        let out = serve(
            Rc::new(Empty),
            &format!("GET {p} HTTP/1.1\r\nHost: x\r\n\r\n"),
        );
        assert!(!out.contains("Content-Type"), "{out}");
    }
}

#[test]
fn the_405_and_501_pages_escape_what_they_echo() {
    let out = serve(
        Rc::new(Text("x")),
        "POST /<b>x</b> HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 405 "), "{out}");
    assert!(out.contains("\r\nAllow: GET, HEAD\r\n"), "{out}");
    assert!(!out.contains("<b>"), "{out}");
    let out = serve(Rc::new(Text("x")), "A&B / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 501 "), "{out}");
    assert!(out.contains("A&amp;B") && !out.contains("A&B"), "{out}");
}

#[test]
fn static_children_come_before_get_child() {
    struct Dynamic {
        children: Children,
    }
    impl Resource for Dynamic {
        fn children(&self) -> Option<&Children> {
            Some(&self.children)
        }
        fn get_child(&self, _name: &[u8], _r: &Request) -> Rc<dyn Resource> {
            Rc::new(Text("dynamic"))
        }
    }
    let root = Rc::new(Dynamic {
        children: Children::new(),
    });
    root.put_child(b"fixed", Rc::new(Text("static")));
    assert!(serve(root.clone(), "GET /fixed HTTP/1.1\r\nHost: x\r\n\r\n").ends_with("static"));
    assert!(serve(root, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n").ends_with("dynamic"));
}

#[test]
fn error_pages_have_their_code_a_code_dash_brief_title_and_utf8_html() {
    use twistor::web::resource::{ErrorPage, ForbiddenResource, NoResource};
    let out = serve(
        Rc::new(ErrorPage::new(321, "foo", "bar")),
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 321 "), "{out}");
    assert!(out.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"));
    assert!(out.contains("<title>321 - foo</title>") && out.contains("bar"));
    let out = serve(
        Rc::new(NoResource::new()),
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(
        out.starts_with("HTTP/1.1 404 ") && out.contains("<title>404 - No Such Resource</title>"),
        "{out}"
    );
    let out = serve(
        Rc::new(ForbiddenResource::new()),
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(
        out.starts_with("HTTP/1.1 403 ") && out.contains("<title>403 - Forbidden Resource</title>"),
        "{out}"
    );
}

#[test]
fn redirect_to_sets_302_and_location_and_escapes_the_page() {
    struct Away;
    impl Resource for Away {
        fn is_leaf(&self) -> bool {
            true
        }
        fn render_get(&self, r: &Request) -> Option<Render> {
            Some(twistor::web::resource::redirect_to(
                b"https://example.com/t\"><script>alert(1)</script>",
                r,
            ))
        }
    }
    let out = serve(Rc::new(Away), "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 302 Found\r\n"), "{out}");
    assert!(
        out.contains("\r\nLocation: https://example.com/t\"><script>alert(1)</script>\r\n"),
        "{out}"
    );
    let body = &out[out.find("\r\n\r\n").unwrap()..];
    assert!(!body.contains("<script>"), "{body}");
    assert!(body.contains("&lt;script&gt;"), "{body}");
}

#[test]
fn a_virtual_host_without_a_host_header_gets_the_default_or_404() {
    use twistor::web::vhost::NameVirtualHost;
    let v = Rc::new(NameVirtualHost::new());
    v.add_host("example.org", Rc::new(Text("org")));
    let out = serve(v.clone(), "GET / HTTP/1.0\r\n\r\n");
    assert!(out.starts_with("HTTP/1.0 404 "), "{out}");
    let out = serve(
        v.clone(),
        "GET / HTTP/1.1\r\nHost: EXAMPLE.ORG:8538\r\n\r\n",
    );
    assert!(out.ends_with("\r\n\r\norg"), "{out}");
    let out = serve(v.clone(), "GET / HTTP/1.1\r\nHost: <b>evil</b>\r\n\r\n");
    assert!(
        out.starts_with("HTTP/1.1 404 ") && !out.contains("<b>"),
        "{out}"
    );
    v.set_default(Rc::new(Text("default")));
    let out = serve(v, "GET / HTTP/1.0\r\n\r\n");
    assert!(out.ends_with("\r\n\r\ndefault"), "{out}");
}

#[test]
fn gzip_is_chosen_from_any_accept_encoding_line_and_appends_to_content_encoding() {
    use twistor::web::encoding::EncodingResourceWrapper;
    struct Encoded;
    impl Resource for Encoded {
        fn is_leaf(&self) -> bool {
            true
        }
        fn render_get(&self, r: &Request) -> Option<Render> {
            if r.path() == b"/deflated" {
                r.set_header("Content-Encoding", "deflate");
            }
            Some(Render::Static(b"some data"))
        }
    }
    let wrapped = || Rc::new(EncodingResourceWrapper::new(Rc::new(Encoded)));
    let out = serve(
        wrapped(),
        "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: deflate\r\nAccept-Encoding: gzip\r\n\r\n",
    );
    assert!(out.contains("\r\nContent-Encoding: gzip\r\n"), "{out}");
    assert!(!out.contains("Content-Length"), "{out}");
    let out = serve(
        wrapped(),
        "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: foo,  bar ,\tgzip \r\n\r\n",
    );
    assert!(out.contains("\r\nContent-Encoding: gzip\r\n"), "{out}");
    let out = serve(
        wrapped(),
        "GET / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: deflate\r\n\r\n",
    );
    assert!(out.ends_with("Content-Length: 9\r\n\r\nsome data"), "{out}");
    let out = serve(
        wrapped(),
        "GET /deflated HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
    );
    assert!(
        out.contains("\r\nContent-Encoding: deflate,gzip\r\n"),
        "{out}"
    );
}

#[test]
fn secure_and_insecure_sessions_use_different_cookies() {
    use twistor::web::session::cookie_name;
    assert_eq!(cookie_name(false), "TWISTED_SESSION");
    assert_eq!(cookie_name(true), "TWISTED_SECURE_SESSION");
}

#[test]
fn basic_credentials_split_at_the_first_colon_and_bad_ones_are_none() {
    // base64("hello:there:z")
    let (_s, r) = request_with(
        "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic aGVsbG86dGhlcmU6eg==\r\n\r\n",
    );
    assert_eq!(
        r.basic_credentials(),
        Some((b"hello".to_vec(), b"there:z".to_vec()))
    );
    // Without padding, and the scheme in any case.
    let (_s, r) = request_with("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: bAsIc dTpw\r\n\r\n");
    assert_eq!(r.basic_credentials(), Some((b"u".to_vec(), b"p".to_vec())));
    for bad in [
        "Basic !!!!",
        "Basic aGVsbG8=",
        "Basic a",
        "Basic aGVsbG86dGhlcmU6eg=",
        "Bearer aGVsbG86dGhlcmU6eg==",
        "Basic",
        "Basic dTpw extra",
    ] {
        let (_s, r) = request_with(&format!(
            "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: {bad}\r\n\r\n"
        ));
        assert_eq!(r.basic_credentials(), None, "{bad}");
    }
    let (_s, r) = request_with("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.basic_credentials(), None);
}

#[test]
fn a_name_without_equals_is_an_empty_argument_and_semicolons_do_not_split() {
    let (_s, r) = request_with("GET /?flag&a=1;b=2&&=v HTTP/1.1\r\nHost: x\r\n\r\n");
    let args = r.args();
    assert_eq!(args[&b"flag"[..]], [b"".to_vec()]);
    assert_eq!(args[&b"a"[..]], [b"1;b=2".to_vec()]);
    assert_eq!(args[&b""[..]], [b"v".to_vec()]);
    assert_eq!(args.len(), 3);
}

#[test]
fn pre_path_url_has_the_host_asked_for_the_local_port_and_requoted_segments() {
    #[derive(Default)]
    struct Url(RefCell<Vec<String>>);
    impl Resource for Url {
        fn children(&self) -> Option<&Children> {
            None
        }
        fn get_child(&self, _name: &[u8], r: &Request) -> Rc<dyn Resource> {
            self.0.borrow_mut().push(r.pre_path_url());
            Rc::new(Text("x"))
        }
        fn render_get(&self, r: &Request) -> Option<Render> {
            self.0.borrow_mut().push(r.pre_path_url());
            Some(Render::Static(b""))
        }
    }
    let url = Rc::new(Url::default());
    let root = Rc::new(Tree::new());
    root.put_child(b"foo", url.clone());
    // The in-memory transport's local address is 10.0.0.1:12345: not a default port.
    serve(
        root.clone(),
        "GET /foo/a%2Fb HTTP/1.1\r\nHost: example.com\r\n\r\n",
    );
    serve(
        root.clone(),
        "GET /foo HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
    );
    serve(root, "GET /foo HTTP/1.0\r\n\r\n");
    assert_eq!(
        *url.0.borrow(),
        [
            // Inside `get_child` the segment is already consumed, as in Twisted.
            "http://example.com:12345/foo/a%2Fb",
            "http://[::1]:12345/foo",
            "http://10.0.0.1:12345/foo",
        ]
    );
}

#[test]
fn same_site_takes_three_values_and_none_needs_secure() {
    use twistor::web::request::CookieError;
    for v in ["lax", "strict", "Lax", "STRICT"] {
        let c = Cookie::new("foo", "bar").same_site(v);
        assert_eq!(c.check(), Ok(()));
        assert!(
            String::from_utf8(c.to_header())
                .unwrap()
                .ends_with(&format!("; SameSite={v}"))
        );
    }
    assert_eq!(
        Cookie::new("foo", "bar").same_site("none").check(),
        Err(CookieError::SameSiteNoneWithoutSecure)
    );
    assert_eq!(
        Cookie::new("foo", "bar").secure().same_site("none").check(),
        Ok(())
    );
    assert_eq!(
        Cookie::new("foo", "bar").same_site("foo").check(),
        Err(CookieError::InvalidSameSite("foo".into()))
    );
    // Through a request: the refused cookie is not sent, the others are.
    let (s, r) = request_with("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        r.try_add_cookie(Cookie::new("a", "1").same_site("none"))
            .is_err()
    );
    r.add_cookie(Cookie::new("b", "2").same_site("bogus"));
    r.add_cookie(Cookie::new("c", "3").same_site("lax"));
    r.write_and_finish(b"");
    let out = s.out();
    assert!(
        out.contains("\r\nSet-Cookie: c=3; SameSite=lax\r\n"),
        "{out}"
    );
    assert!(!out.contains("a=1") && !out.contains("b=2"), "{out}");
}

fn post_multipart(content_type: &str, body: &str) -> (Server, Request) {
    request_with(&format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

#[test]
fn multipart_form_data_gives_args_and_files_in_order() {
    let (_s, r) = post_multipart(
        "multipart/form-data; boundary=AaB03x",
        "--AaB03x\r\nContent-Type: text/plain\r\nContent-Disposition: form-data; name=\"text\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nabasdfg\r\n--AaB03x--\r\n",
    );
    let args = r.try_args().unwrap();
    assert_eq!(args[&b"text"[..]], [b"abasdfg".to_vec()]);
    assert_eq!(args.len(), 1);

    let (_s, r) = post_multipart(
        "multipart/form-data; boundary=\"AaB03x\"",
        "preamble\r\n--AaB03x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"file1.txt\"\r\nContent-Type: text/plain\r\n\r\nfile 1 content\r\n--AaB03x \r\nContent-Disposition: form-data; name=\"file\"; filename=\"file2.txt\"\r\n\r\n\r\nfile 2\r\n\r\n--AaB03x--",
    );
    assert_eq!(
        r.args()[&b"file"[..]],
        [b"file 1 content".to_vec(), b"\r\nfile 2\r\n".to_vec()]
    );
}

#[test]
fn a_multipart_part_without_a_name_is_skipped() {
    let (s, r) = post_multipart(
        "multipart/form-data; boundary=AaB03x",
        "--AaB03x\r\nContent-Type: text/plain\r\n\r\nabasdfg\r\n--AaB03x--\r\n",
    );
    assert_eq!(r.try_args().unwrap().len(), 0);
    assert!(s.out().starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn a_non_ascii_or_missing_boundary_or_broken_framing_is_a_form_error() {
    use twistor::web::http::multipart::FormError;
    let body =
        "--AaB03x\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nx\r\n--AaB03x--\r\n";
    let (_s, r) = post_multipart("multipart/form-data; boundary=\u{2603}", body);
    assert_eq!(r.try_args(), Err(FormError::Boundary));
    let (_s, r) = post_multipart("multipart/form-data", body);
    assert_eq!(r.try_args(), Err(FormError::Boundary));
    let (_s, r) = post_multipart(
        "multipart/form-data; boundary=AaB03x",
        "--AaB03x\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nunterminated",
    );
    assert_eq!(r.try_args(), Err(FormError::Malformed));
    // `args` stays usable: the query's arguments, without the form's.
    let (_s, r) = request_with(&format!(
        "POST /?q=1 HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=\u{2603}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(r.args().len(), 1);
    assert_eq!(r.args()[&b"q"[..]], [b"1".to_vec()]);
}

#[derive(Clone, Default)]
struct Sink(Rc<RefCell<Vec<u8>>>);
impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The access-log line of each request, on a site logging the forwarded address or not.
fn log_lines(forwarded_for: bool, requests: &[&str]) -> Vec<String> {
    struct Coded;
    impl Resource for Coded {
        fn is_leaf(&self) -> bool {
            true
        }
        fn render_get(&self, r: &Request) -> Option<Render> {
            r.set_response_code(203);
            Some(Render::Static(b""))
        }
    }
    let sink = Sink::default();
    let site = Site::with_options(
        Rc::new(Coded),
        Rc::new(MemoryReactor::new()),
        HttpLimits::default(),
        AccessLog::Writer(Box::new(sink.clone())),
    );
    site.set_log_forwarded_for(forwarded_for);
    for req in requests {
        let st = StringTransport::new();
        st.connect(site.channel());
        st.deliver(req.as_bytes());
    }
    site.flush_log();
    let text = String::from_utf8(sink.0.borrow().clone()).unwrap();
    text.lines().map(str::to_string).collect()
}

#[test]
fn the_combined_log_line_quotes_the_ip_and_logs_dash_for_no_body() {
    let lines = log_lines(false, &["GET /dummy HTTP/1.0\r\n\r\n"]);
    // `[13/Feb/2009:23:31:30 +0000]` in Twisted's test at time 1234567890: the time here is
    // the wall clock's, so only its shape is checked. (Twisted's test logs code 123, which
    // twistor does not send as a final response.)
    let l = &lines[0];
    assert!(l.starts_with("\"192.168.1.1\" - - ["), "{l}");
    assert!(
        l.ends_with(" +0000] \"GET /dummy HTTP/1.0\" 203 - \"-\" \"-\""),
        "{l}"
    );
}

#[test]
fn the_proxied_log_names_the_first_forwarded_address() {
    let lines = log_lines(
        true,
        &[
            "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 172.16.1.2, 10.0.0.3, 192.168.1.4\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For:   172.16.1.2   ,   10.0.0.3\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: \"evil\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ],
    );
    let ips: Vec<&str> = lines
        .iter()
        .map(|l| &l[..l.find(" - - [").unwrap()])
        .collect();
    assert_eq!(
        ips,
        [
            "\"172.16.1.2\"",
            "\"172.16.1.2\"",
            "\"1.1.1.1\"",
            "\"\\\"evil\"",
            "\"-\""
        ]
    );
}

#[test]
fn an_interim_or_four_digit_code_is_never_sent_as_the_final_response() {
    // Twisted sends an application's 1xx code as the final response, and the client then
    // waits for a final response that never comes; twistor answers 500 (and logs why).
    for code in [100, 101, 199, 1000] {
        let s = Server::new();
        s.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = s.take_kept();
        r.set_response_code(code);
        r.write_and_finish(b"body");
        let out = s.out();
        assert!(
            out.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{code}: {out}"
        );
        assert!(out.ends_with("Content-Length: 4\r\n\r\nbody"), "{out}");
        s.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(s.statuses(), ["500", "200"]);
    }
}

#[test]
fn an_oversized_pipelined_head_is_refused_after_the_earlier_response() {
    let s = Server::new();
    s.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    s.send(
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "a".repeat(20_000)
        )
        .as_bytes(),
    );
    assert_eq!(s.out(), "");
    s.take_kept().write_and_finish(b"first");
    assert_eq!(s.statuses(), ["200", "431"]);
    assert!(s.out().find("first").unwrap() < s.out().find("431").unwrap());
    assert!(s.closed());
}

#[test]
fn a_body_trickled_below_the_minimum_rate_gets_408_whatever_the_per_read_timeout() {
    // Twisted resets its timeout on every byte, so a byte every 59 s holds a connection
    // for ever; twistor also wants an average rate once the grace period is over.
    let s = Server::new();
    s.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    let mut t = 0.0;
    while !s.closed() && t < 1000.0 {
        s.reactor.clock().advance(29.0);
        t += 29.0;
        s.send(b"x");
    }
    assert_eq!(s.statuses(), ["408"]);
    assert!(
        t <= 60.0 + 29.0,
        "cut at the end of the grace period, not at {t}"
    );
    assert_eq!(s.seen(), 0);

    // A body that keeps the rate is not cut, however long it takes.
    let s = Server::with_limits(HttpLimits {
        min_body_rate: Some(100.0),
        ..Default::default()
    });
    s.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n");
    for _ in 0..100 {
        s.reactor.clock().advance(2.0);
        s.send(&[b'y'; 200]);
    }
    assert_eq!(s.statuses(), ["200"]);
    assert_eq!(s.last().body().len(), 20000);
}

#[test]
fn connections_beyond_the_per_peer_limit_get_503_until_one_ends() {
    // Every in-memory transport has the same peer address, 192.168.1.1.
    let site = Site::with_options(
        Rc::new(Text("ok")),
        Rc::new(MemoryReactor::new()),
        HttpLimits {
            max_connections_per_peer: Some(2),
            ..Default::default()
        },
        AccessLog::Off,
    );
    let open = || {
        let st = StringTransport::new();
        st.connect(site.channel());
        st
    };
    let (a, b) = (open(), open());
    let c = open();
    let out = String::from_utf8_lossy(&c.value()).into_owned();
    assert!(
        out.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{out}"
    );
    assert!(c.disconnecting());
    c.connection_lost(twistor::Failure::new(twistor::error::ConnectionDone));
    assert!(!a.disconnecting() && !b.disconnecting());
    a.connection_lost(twistor::Failure::new(twistor::error::ConnectionDone));
    let d = open();
    d.deliver(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(String::from_utf8_lossy(&d.value()).ends_with("\r\n\r\nok"));
    assert!(
        open().disconnecting(),
        "b and d are open: the limit holds again"
    );
}

// ----- 9.5 static.File -----

struct TempDir(std::path::PathBuf);
impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "twistor-twisted-server-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_processor_renders_the_files_of_its_extension() {
    use twistor::web::static_files::file::File;
    use twistor::web::static_files::response::StaticFiles;
    let dir = TempDir::new("processors");
    std::fs::write(dir.0.join("foo.bar"), b"raw bytes").unwrap();
    std::fs::write(dir.0.join("plain.txt"), b"plain").unwrap();
    std::fs::create_dir(dir.0.join("sub")).unwrap();
    std::fs::write(dir.0.join("sub/index.BAR"), b"raw index").unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    let mut files = StaticFiles::new(&dir.0);
    files.resolve.index_names = vec!["index.BAR".into()];
    let file = Rc::new(File::new(files).with_processor(".bar", move |path| {
        log.borrow_mut().push(path.file_name().unwrap().to_owned());
        Rc::new(Text("processed"))
    }));
    let get = |p: &str| {
        serve(
            file.clone(),
            &format!("GET {p} HTTP/1.1\r\nHost: x\r\n\r\n"),
        )
    };
    assert!(get("/foo.bar").ends_with("\r\n\r\nprocessed"));
    assert!(
        get("/sub/").ends_with("\r\n\r\nprocessed"),
        "index files too"
    );
    let plain = get("/plain.txt");
    assert!(
        plain.starts_with("HTTP/1.1 200 ") && plain.contains("\r\nContent-Length: 5\r\n"),
        "{plain}"
    );
    assert!(get("/missing.bar").starts_with("HTTP/1.1 404 "));
    assert_eq!(seen.borrow().len(), 2);
}

#[test]
fn an_unreadable_file_is_403() {
    use std::os::unix::fs::PermissionsExt;
    use twistor::web::static_files::file::File;
    use twistor::web::static_files::response::StaticFiles;
    let dir = TempDir::new("forbidden");
    let path = dir.0.join("secret");
    std::fs::write(&path, b"secret").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&path).is_ok() {
        // Running as root: permissions do not stop reading. The mapping of a refused open
        // to 403 is tested without permissions in `static_files::response`'s unit tests.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: an_unreadable_file_is_403: running as root, files cannot be unreadable"
        );
        return;
    }
    let out = serve(
        Rc::new(File::new(StaticFiles::new(&dir.0))),
        "GET /secret HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(out.starts_with("HTTP/1.1 403 "), "{out}");
}

// ----- 9.2 the chunked decoder (ChunkedTransferEncodingTests) -----

fn dechunk(input: &[u8], bytewise: bool) -> Result<(Vec<u8>, usize, bool), String> {
    use twistor::web::chunked::ChunkedDecoder;
    let mut d = ChunkedDecoder::new();
    let mut data = Vec::new();
    let mut used = 0;
    let pieces: Vec<&[u8]> = if bytewise {
        input.chunks(1).collect()
    } else {
        vec![input]
    };
    for p in pieces {
        if d.is_done() {
            break;
        }
        let got = d
            .feed(p, &mut |b| data.extend_from_slice(b))
            .map_err(|e| e.to_string())?;
        used += got.consumed;
    }
    Ok((data, used, d.is_done()))
}

#[test]
fn chunked_data_is_the_same_whole_or_byte_by_byte() {
    let wire = b"3\r\nabc\r\n5\r\n12345\r\n0\r\n\r\n";
    for bytewise in [false, true] {
        assert_eq!(
            dechunk(wire, bytewise),
            Ok((b"abc12345".to_vec(), wire.len(), true))
        );
    }
    assert_eq!(
        dechunk(b"2\r\n\r\n\r\n0\r\n\r\n", false).unwrap().0,
        b"\r\n"
    );
}

#[test]
fn chunk_extensions_are_skipped_unless_malformed() {
    assert_eq!(
        dechunk(b"3; x-foo=bar\r\nabc\r\n0\r\n\r\n", true)
            .unwrap()
            .0,
        b"abc"
    );
    for bad in [
        &b"3; x-foo=b\x01r\r\nabc\r\n0\r\n\r\n"[..],
        b"3; x-foo=b\\r\r\nabc\r\n0\r\n\r\n",
        b"3; x-foo=b\x7fr\r\nabc\r\n0\r\n\r\n",
        b"3; x-foo\nbar\r\nabc\r\n0\r\n\r\n",
    ] {
        assert!(
            dechunk(bad, false).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn an_oversized_chunk_size_line_is_refused_before_its_line_end() {
    let long = vec![b'0'; twistor::web::chunked::MAX_SIZE_LINE + 1];
    assert!(dechunk(&long, false).is_err());
    assert!(dechunk(&long, true).is_err());
}

#[test]
fn what_follows_the_last_chunk_and_trailers_is_left_for_the_next_request() {
    let wire = b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\nGET /";
    let (data, used, done) = dechunk(wire, false).unwrap();
    assert!(done);
    assert_eq!(data, b"hello");
    assert_eq!(&wire[used..], b"GET /");
    // Fed again after the end, the decoder takes nothing (Twisted raises): the bytes belong
    // to the next request.
    let mut d = twistor::web::chunked::ChunkedDecoder::new();
    d.feed(b"0\r\n\r\n", &mut |_| {}).unwrap();
    assert_eq!(d.feed(b"more", &mut |_| {}).unwrap().consumed, 0);
}

#[test]
fn a_client_leaving_mid_body_never_reaches_the_resource() {
    let s = Server::new();
    s.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    s.st.connection_lost(twistor::Failure::new(twistor::error::ConnectionLost::new()));
    assert_eq!(s.seen(), 0);
    assert_eq!(s.out(), "");
}

// ----- over TLS (SecurityTests, the secure session) -----

#[derive(Default)]
struct Client {
    data: Vec<u8>,
}
impl twistor::protocol::Protocol for Client {
    fn data_received(&mut self, _cx: &twistor::protocol::Context<Self>, data: &[u8]) {
        self.data.extend_from_slice(data);
    }
}

#[test]
fn over_tls_a_request_is_secure_its_url_https_and_its_session_cookie_the_secure_one() {
    use twistor::testing::connected_server_and_client;
    use twistor::tls::TlsProtocol;
    #[derive(Default)]
    struct Probe(RefCell<Vec<(bool, String)>>, RefCell<Option<Request>>);
    impl Resource for Probe {
        fn is_leaf(&self) -> bool {
            true
        }
        fn render_get(&self, r: &Request) -> Option<Render> {
            let _ = r.get_session();
            self.0.borrow_mut().push((r.is_secure(), r.pre_path_url()));
            *self.1.borrow_mut() = Some(r.clone());
            Some(Render::Static(b"ok"))
        }
    }
    let ca = tlsutil::Ca::new("web test CA");
    let leaf = ca.server(&["localhost"]);
    let probe = Rc::new(Probe::default());
    let site = Site::with_options(
        probe.clone(),
        Rc::new(MemoryReactor::new()),
        HttpLimits::default(),
        AccessLog::Off,
    );
    let (st, _server) = TlsProtocol::server(site.channel(), &leaf.server_options()).unwrap();
    let (ct, client) =
        TlsProtocol::client(Client::default(), &ca.client_options("localhost")).unwrap();
    let (_s, _c, pump) = connected_server_and_client(st, ct);
    pump.flush();
    client.with(|_, cx| {
        cx.transport()
            .write(b"GET / HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    });
    pump.flush();
    let out = String::from_utf8(client.with(|c, _| c.data.clone()).unwrap()).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(
        out.contains("\r\nSet-Cookie: TWISTED_SECURE_SESSION="),
        "{out}"
    );
    let (secure, url) = probe.0.borrow()[0].clone();
    assert!(secure);
    // The host comes from `Host`; the connected in-memory pair has no local port to show.
    assert_eq!(url, "https://example.com/");
    // Twisted's `isSecure` turns false after `finish` (its channel is detached); the
    // request still came over TLS here.
    assert!(probe.1.borrow().as_ref().unwrap().is_secure());
}

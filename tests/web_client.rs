//! The HTTP client driven in memory: the protocol on a `StringTransport` (request bytes
//! written, canned response bytes fed), and the agents over an endpoint factory that hands
//! out in-memory connections, with a `Clock` for the pool's and the agent's timers.

#[path = "util/web_memory.rs"]
mod web_memory;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use twistor::Failure;
use twistor::defer::CancelledError;
use twistor::error::{ConnectionAborted, ConnectionDone};
use twistor::prelude::*;
use twistor::protocol::Handle;
use twistor::testing::{
    ReadState, StringTransport, assert_no_result, failure_result_of, success_result_of,
};
use twistor::web::Headers;
use twistor::web::client::error::*;
use twistor::web::client::*;
use web_memory::{Memory, agent, head_of};

fn host_headers() -> Headers {
    let mut h = Headers::new();
    h.add("Host", "example.com");
    h
}

fn connected() -> (StringTransport, Handle<HttpClientProtocol>) {
    let st = StringTransport::with_disconnection();
    let h = st.connect(HttpClientProtocol::new());
    (st, h)
}

fn send(h: &Handle<HttpClientProtocol>, req: ClientRequest) -> Deferred<Response> {
    h.with(move |p, cx| p.request(cx, req)).unwrap()
}

fn get(h: &Handle<HttpClientProtocol>, persistent: bool) -> Deferred<Response> {
    let mut r = ClientRequest::new("GET", "/", host_headers());
    r.persistent = persistent;
    send(h, r)
}

fn reasons(f: &Failure) -> Vec<Failure> {
    if let Some(e) = f.downcast_ref::<ResponseFailed>() {
        e.reasons.clone()
    } else if let Some(e) = f.downcast_ref::<ResponseNeverReceived>() {
        e.reasons.clone()
    } else if let Some(e) = f.downcast_ref::<RequestGenerationFailed>() {
        e.reasons.clone()
    } else if let Some(e) = f.downcast_ref::<RequestTransmissionFailed>() {
        e.reasons.clone()
    } else {
        panic!("not a wrapper: {f}")
    }
}

// ---- request serialisation --------------------------------------------------------------

#[test]
fn simplest_request_and_persistent_variant() {
    let (st, h) = connected();
    let _d = get(&h, false);
    assert_eq!(
        st.value(),
        b"GET / HTTP/1.1\r\nConnection: close\r\nHost: example.com\r\n\r\n"
    );
    let (st, h) = connected();
    let _d = get(&h, true);
    assert_eq!(st.value(), b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
}

#[test]
fn post_and_put_without_body_send_zero_length() {
    for m in ["POST", "PUT"] {
        let (st, h) = connected();
        let _d = send(&h, ClientRequest::new(m, "/", host_headers()));
        let v = String::from_utf8(st.value()).unwrap();
        assert!(v.contains("Content-Length: 0\r\n"), "{v}");
    }
}

#[test]
fn known_length_body() {
    let (st, h) = connected();
    let mut r = ClientRequest::new("POST", "/x", host_headers());
    r.body = Some(Rc::new(BytesProducer::new("hello")));
    let _d = send(&h, r);
    assert_eq!(
        st.value(),
        b"POST /x HTTP/1.1\r\nConnection: close\r\nContent-Length: 5\r\nHost: example.com\r\n\r\nhello"
    );
    assert_eq!(h.with(|p, _| p.state()), Some(ClientState::Waiting));
}

#[test]
fn chunked_body_and_failed_producer_has_no_terminator() {
    let (st, h) = connected();
    let (producer, writer) = StreamProducer::new();
    let mut r = ClientRequest::new("POST", "/", host_headers());
    r.body = Some(producer);
    let d = send(&h, r);
    writer.write(b"abcdef");
    writer.finish();
    let v = st.value();
    assert!(v.ends_with(
        b"Transfer-Encoding: chunked\r\nHost: example.com\r\n\r\n6\r\nabcdef\r\n0\r\n\r\n"
    ));
    assert_no_result(&d);

    let (st, h) = connected();
    let (producer, writer) = StreamProducer::new();
    let mut r = ClientRequest::new("POST", "/", host_headers());
    r.body = Some(producer);
    let d = send(&h, r);
    writer.write(b"abcdef");
    writer.fail(Failure::msg("disk on fire"));
    assert!(st.value().ends_with(b"6\r\nabcdef\r\n"));
    let f = failure_result_of(&d);
    assert!(f.is::<RequestGenerationFailed>(), "{f}");
    assert!(st.lost_reason().unwrap().is::<ConnectionAborted>());
}

struct Liar(&'static [u8], u64);
impl BodyProducer for Liar {
    fn length(&self) -> Option<u64> {
        Some(self.1)
    }
    fn start_producing(&self, consumer: BodyConsumer) -> Deferred<()> {
        consumer.write(self.0);
        Deferred::succeed(())
    }
    fn stop_producing(&self) {}
}

#[test]
fn wrong_body_lengths_fail_generation() {
    for (body, len, want) in [
        (&b"abc"[..], 5, WrongBodyLength::TooFew),
        (&b"abcdef"[..], 2, WrongBodyLength::TooMany),
    ] {
        let (st, h) = connected();
        let mut r = ClientRequest::new("PUT", "/", host_headers());
        r.body = Some(Rc::new(Liar(body, len)));
        let d = send(&h, r);
        let f = failure_result_of(&d);
        let rs = reasons(&f);
        assert_eq!(rs[0].downcast_ref::<WrongBodyLength>(), Some(&want));
        assert!(st.disconnecting());
    }
}

/// Declares a length, writes whenever the test says.
struct Manual {
    length: u64,
    consumer: RefCell<Option<BodyConsumer>>,
    stopped: std::cell::Cell<bool>,
}
impl BodyProducer for Manual {
    fn length(&self) -> Option<u64> {
        Some(self.length)
    }
    fn start_producing(&self, consumer: BodyConsumer) -> Deferred<()> {
        *self.consumer.borrow_mut() = Some(consumer);
        Deferred::new().0
    }
    fn stop_producing(&self) {
        self.stopped.set(true);
    }
}

#[test]
fn too_many_bytes_fail_at_once_and_stop_the_producer() {
    let (st, h) = connected();
    let p = Rc::new(Manual {
        length: 2,
        consumer: RefCell::new(None),
        stopped: Default::default(),
    });
    let mut r = ClientRequest::new("PUT", "/", host_headers());
    r.body = Some(p.clone());
    let d = send(&h, r);
    let consumer = p.consumer.borrow().clone().unwrap();
    consumer.write(b"abc");
    let f = failure_result_of(&d);
    assert_eq!(
        reasons(&f)[0].downcast_ref::<WrongBodyLength>(),
        Some(&WrongBodyLength::TooMany)
    );
    assert!(p.stopped.get(), "the producer is stopped");
    assert!(st.lost_reason().unwrap().is::<ConnectionAborted>());
    assert!(!st.value().ends_with(b"abc"), "the excess is not sent");
}

#[test]
fn host_header_required_once() {
    for hosts in [0, 2] {
        let (st, h) = connected();
        let mut headers = Headers::new();
        for _ in 0..hosts {
            headers.add("Host", "a");
        }
        let d = send(&h, ClientRequest::new("GET", "/", headers));
        let f = failure_result_of(&d);
        assert!(reasons(&f)[0].is::<BadRequest>());
        assert!(st.value().is_empty());
    }
}

#[test]
fn injection_in_method_or_target_refused() {
    for (m, t) in [
        ("GET", "/a b"),
        ("GET", "/\r\nX: y"),
        ("GE T", "/"),
        ("GET\r\n", "/"),
    ] {
        let (st, h) = connected();
        let d = send(&h, ClientRequest::new(m, t, host_headers()));
        assert!(failure_result_of(&d).is::<RequestGenerationFailed>());
        assert!(st.value().is_empty());
    }
}

// ---- responses ----------------------------------------------------------------------------

#[test]
fn response_fields_and_all_headers_kept() {
    let (st, h) = connected();
    let d = get(&h, false);
    st.deliver(
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: b\r\nConnection: close\r\n\r\nhi",
    );
    let r = success_result_of(&d);
    assert_eq!(
        (r.version, r.code, r.phrase.as_str(), r.length),
        ((1, 1), 201, "Created", Some(2))
    );
    assert_eq!(r.headers.get_str("content-length"), Some("2"));
    assert_eq!(r.headers.get_str("x-a"), Some("b"));
    assert_eq!(success_result_of(&read_body(&r)), b"hi");
}

#[test]
fn interim_responses_skipped() {
    let (st, h) = connected();
    let d = get(&h, false);
    st.deliver(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n");
    assert_no_result(&d);
    st.deliver(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(success_result_of(&d).code, 200);
}

#[test]
fn head_204_304_have_no_body() {
    for (method, status) in [
        ("HEAD", "200 OK"),
        ("GET", "204 No Content"),
        ("GET", "304 Not Modified"),
    ] {
        let (st, h) = connected();
        let mut r = ClientRequest::new(method, "/", host_headers());
        r.persistent = true;
        let d = send(&h, r);
        st.deliver(format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\n").as_bytes());
        let r = success_result_of(&d);
        assert_eq!(r.length, Some(0));
        assert_eq!(success_result_of(&read_body(&r)), b"");
        assert_eq!(h.with(|p, _| p.state()), Some(ClientState::Quiescent));
    }
}

#[test]
fn chunked_response_body_wins_over_length() {
    let (st, h) = connected();
    let d = get(&h, false);
    st.deliver(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    );
    let r = success_result_of(&d);
    assert_eq!(r.length, None);
    let body = read_body(&r);
    assert_no_result(&body);
    st.deliver(b"0\r\n\r\n");
    assert_eq!(success_result_of(&body), b"hello");
}

#[test]
fn no_response_at_all_is_never_received() {
    let (st, h) = connected();
    let d = get(&h, false);
    st.connection_lost(Failure::new(ConnectionDone));
    let f = failure_result_of(&d);
    assert!(f.is::<ResponseNeverReceived>());
    assert!(reasons(&f)[0].is::<ConnectionDone>());
}

#[test]
fn part_of_a_head_then_close_is_response_failed() {
    let (st, h) = connected();
    let d = get(&h, false);
    st.deliver(b"HTTP/1.1 200 OK\r\nContent-Le");
    st.connection_lost(Failure::new(ConnectionDone));
    assert!(failure_result_of(&d).is::<ResponseFailed>());
}

#[test]
fn transmission_failure_while_writing_body() {
    let (st, h) = connected();
    let (producer, writer) = StreamProducer::new();
    let mut r = ClientRequest::new("POST", "/", host_headers());
    r.body = Some(producer);
    let d = send(&h, r);
    st.connection_lost(Failure::new(ConnectionDone));
    assert!(failure_result_of(&d).is::<RequestTransmissionFailed>());
    assert!(writer.stopped(), "the body producer is stopped");
}

#[test]
fn bad_heads_fail_clearly() {
    type Check = fn(&Failure) -> bool;
    let cases: [(&[u8], Check); 4] = [
        (b"HTTP/1.1 abc OK\r\n\r\n", |f| f.is::<ParseError>()),
        (b"HTTP/2.0 200 OK\r\n\r\n", |f| {
            f.is::<BadResponseVersion>() || f.is::<ParseError>()
        }),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", |f| {
            f.is::<ParseError>()
        }),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            |f| f.is::<ParseError>(),
        ),
    ];
    for (raw, check) in cases {
        let (st, h) = connected();
        let d = get(&h, false);
        st.deliver(raw);
        let f = failure_result_of(&d);
        assert!(check(&reasons(&f)[0]), "{f}");
        assert!(st.lost_reason().is_some());
    }
}

#[test]
fn oversize_head_is_named() {
    let (st, h) = connected();
    let d = get(&h, false);
    st.deliver(b"HTTP/1.1 200 OK\r\n");
    st.deliver(format!("X-Big: {}\r\n", "a".repeat(70_000)).as_bytes());
    let f = failure_result_of(&d);
    assert!(reasons(&f)[0].is::<ResponseHeadTooLarge>(), "{f}");
}

#[test]
fn request_on_busy_or_lost_connection_not_sent() {
    let (st, h) = connected();
    let _d = get(&h, true);
    assert!(failure_result_of(&get(&h, true)).is::<RequestNotSent>());
    st.connection_lost(Failure::new(ConnectionDone));
    assert!(failure_result_of(&get(&h, true)).is::<RequestNotSent>());
}

#[test]
fn close_delimited_body_is_potential_data_loss() {
    let (st, h) = connected();
    let d = get(&h, false);
    st.deliver(b"HTTP/1.0 200 OK\r\n\r\nsome");
    let r = success_result_of(&d);
    assert_eq!(r.length, None);
    let (r2, r3) = (r.clone(), r.clone());
    // The body protocol is dropped once its body ended: it keeps what it saw in a shared cell.
    type Seen = Rc<RefCell<(Vec<u8>, Option<Failure>)>>;
    struct Sink(Seen);
    impl Protocol for Sink {
        fn data_received(&mut self, _: &Context<Self>, d: &[u8]) {
            self.0.borrow_mut().0.extend_from_slice(d)
        }
        fn connection_lost(&mut self, _: &Context<Self>, why: Failure) {
            self.0.borrow_mut().1 = Some(why)
        }
    }
    let seen: Seen = Rc::default();
    r.deliver_body(Sink(seen.clone())).unwrap();
    st.deliver(b" body");
    st.connection_lost(Failure::new(ConnectionDone));
    let (body, why) = seen.borrow().clone();
    assert_eq!(body, b"some body");
    assert!(why.unwrap().is::<PotentialDataLoss>());
    // Delivered once only.
    assert!(r2.deliver_body(Sink(Rc::default())).is_err());
    assert!(failure_result_of(&read_body(&r3)).is::<BodyAlreadyDelivered>());
}

#[test]
fn read_body_accepts_close_delimited_strict_does_not() {
    for strict in [false, true] {
        let (st, h) = connected();
        let d = get(&h, false);
        st.deliver(b"HTTP/1.1 200 OK\r\n\r\nabc");
        let r = success_result_of(&d);
        let body = if strict {
            read_body_strict(&r)
        } else {
            read_body(&r)
        };
        st.connection_lost(Failure::new(ConnectionDone));
        if strict {
            let f = failure_result_of(&body);
            assert_eq!(
                f.downcast_ref::<PartialDownloadError>().unwrap().body,
                b"abc"
            );
        } else {
            assert_eq!(success_result_of(&body), b"abc");
        }
    }
}

#[test]
fn truncated_bodies_fail_with_data_loss() {
    for raw in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ] {
        let (st, h) = connected();
        let d = get(&h, false);
        st.deliver(raw);
        let body = read_body(&success_result_of(&d));
        st.connection_lost(Failure::new(ConnectionDone));
        let f = failure_result_of(&body);
        let e = f.downcast_ref::<ResponseFailed>().expect("ResponseFailed");
        assert!(e.has::<DataLoss>());
    }
}

#[test]
fn bad_chunk_fails_body_and_closes() {
    let (st, h) = connected();
    let d = get(&h, false);
    st.deliver(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    let body = read_body(&success_result_of(&d));
    st.deliver(b"zz\r\n");
    assert!(failure_result_of(&body).is::<ResponseFailed>());
    assert!(st.lost_reason().is_some());
}

#[test]
fn body_buffered_until_delivered_and_transport_paused() {
    let (st, h) = connected();
    let d = get(&h, false);
    st.deliver(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc");
    let r = success_result_of(&d);
    assert_eq!(
        st.read_state(),
        ReadState::Paused,
        "no body read until asked for"
    );
    st.deliver(b"def");
    let body = read_body(&r);
    assert_eq!(st.read_state(), ReadState::Producing);
    assert_no_result(&body);
    st.deliver(b"ghi");
    assert_eq!(success_result_of(&body), b"abcdefghi");
}

#[test]
fn body_protocol_back_pressure_and_stop() {
    let (st, h) = connected();
    let d = get(&h, false);
    st.deliver(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    struct Slow;
    impl Protocol for Slow {
        fn connection_made(&mut self, cx: &Context<Self>) {
            cx.transport().pause_producing();
        }
        fn data_received(&mut self, cx: &Context<Self>, _: &[u8]) {
            cx.transport().stop_producing();
        }
    }
    let r = success_result_of(&d);
    assert_eq!(st.read_state(), ReadState::Paused);
    let h = r.deliver_body(Slow).unwrap();
    assert_eq!(
        st.read_state(),
        ReadState::Paused,
        "the body protocol's pause holds"
    );
    h.with(|_, cx| cx.transport().resume_producing());
    assert_eq!(st.read_state(), ReadState::Producing);
    st.deliver(b"x");
    assert!(st.lost_reason().unwrap().is::<ConnectionAborted>());
}

#[test]
fn late_flow_control_does_not_touch_a_reused_connection() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, true, AgentOptions::default());
    let d = a.request("GET", "http://example.com/", None, None);
    answer(
        &mem.last(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
    );
    let first = success_result_of(&d);
    let st = mem.last();
    // The connection is back in the pool and serves a second request, whose body is paused.
    let d2 = a.request("GET", "http://example.com/", None, None);
    answer(&st, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab");
    let second = success_result_of(&d2);
    assert_eq!(st.read_state(), ReadState::Paused);
    // The first body's protocol kept its transport: using it now must not resume (or
    // abort) the connection under the second response.
    struct Keep(Rc<RefCell<Option<Transport>>>);
    impl Protocol for Keep {
        fn connection_made(&mut self, cx: &Context<Self>) {
            *self.0.borrow_mut() = Some(cx.transport().clone());
        }
        fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
    }
    let kept: Rc<RefCell<Option<Transport>>> = Rc::default();
    first.deliver_body(Keep(kept.clone())).unwrap();
    let t = kept.borrow().clone().unwrap();
    t.resume_producing();
    assert_eq!(st.read_state(), ReadState::Paused);
    t.stop_producing();
    t.lose_connection();
    assert!(st.lost_reason().is_none());
    let rest = read_body(&second);
    st.deliver(b"cde");
    assert_eq!(success_result_of(&rest), b"abcde");
}

#[test]
fn cancel_before_response() {
    let (st, h) = connected();
    let d = get(&h, true);
    d.cancel();
    let f = failure_result_of(&d);
    assert!(f.is::<ResponseNeverReceived>());
    assert!(reasons(&f)[0].is::<CancelledError>());
    assert!(st.lost_reason().unwrap().is::<ConnectionAborted>());
}

#[test]
fn cancel_during_body_production_stops_producer() {
    let (_st, h) = connected();
    let (producer, writer) = StreamProducer::new();
    let mut r = ClientRequest::new("POST", "/", host_headers());
    r.body = Some(producer);
    let d = send(&h, r);
    d.cancel();
    assert!(failure_result_of(&d).is::<RequestGenerationFailed>());
    assert!(writer.stopped());
}

fn quiescent_after(response: &[u8], persistent: bool) -> (bool, StringTransport) {
    let (st, h) = connected();
    let called = Rc::new(RefCell::new(false));
    let c = called.clone();
    h.with(move |p, _| p.set_quiescent_callback(move || *c.borrow_mut() = true));
    let d = get(&h, persistent);
    st.deliver(response);
    let _ = read_body(&success_result_of(&d));
    let v = *called.borrow();
    (v, st)
}

#[test]
fn quiescent_only_after_complete_persistent_response() {
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    let (called, st) = quiescent_after(ok, true);
    assert!(called);
    assert!(!st.disconnecting());
    assert_eq!(st.read_state(), ReadState::Producing);
    assert!(!quiescent_after(ok, false).0, "non-persistent request");
    for close in ["close", "Close", "keep-alive, CLOSE"] {
        let raw = format!("HTTP/1.1 200 OK\r\nConnection: {close}\r\nContent-Length: 2\r\n\r\nhi");
        let (called, st) = quiescent_after(raw.as_bytes(), true);
        assert!(!called, "Connection: {close}");
        assert!(st.disconnecting());
    }
    assert!(!quiescent_after(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", true).0);
    assert!(
        quiescent_after(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nhi",
            true
        )
        .0
    );
    assert!(
        !quiescent_after(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA", true).0,
        "stray bytes"
    );
}

#[test]
fn unexpected_bytes_on_an_idle_connection_close_it() {
    let (called, st) = quiescent_after(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true);
    assert!(called);
    st.deliver(b"HTTP/1.1 408 Request Timeout\r\n\r\n");
    assert!(st.lost_reason().is_some(), "not kept for the next request");
}

#[test]
fn caller_connection_close_makes_the_request_non_persistent() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, true, AgentOptions::default());
    let mut h = Headers::new();
    h.add("Connection", "close");
    let d = a.request("GET", "http://example.com/", Some(h), None);
    assert!(head_of(&mem.last()).contains("Connection: close\r\n"));
    answer(&mem.last(), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    success_result_of(&d);
    assert_eq!(a.pool().idle_count(), 0);
}

#[test]
fn response_before_request_body_done_is_delivered_and_not_reused() {
    let (st, h) = connected();
    let (producer, writer) = StreamProducer::new();
    let mut r = ClientRequest::new("POST", "/", host_headers());
    r.body = Some(producer);
    r.persistent = true;
    let d = send(&h, r);
    st.deliver(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(success_result_of(&d).code, 413);
    assert!(writer.stopped());
    assert!(st.disconnecting());
}

// ---- agents over in-memory connections -------------------------------------------------------

#[test]
fn agent_host_header_values() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, false, AgentOptions::default());
    for (uri, host) in [
        ("http://example.com/", "example.com"),
        ("http://example.com:54321/", "example.com:54321"),
        ("https://example.com/", "example.com"),
        ("https://example.com:80/", "example.com:80"),
        ("http://[::1]/", "[::1]"),
        ("http://[::1]:81/a?b#c", "[::1]:81"),
    ] {
        let _d = a.request("GET", uri, None, None);
        let v = head_of(&mem.last());
        assert!(v.contains(&format!("\r\nHost: {host}\r\n")), "{uri}: {v}");
        assert!(
            v.contains("Connection: close"),
            "default pool is not persistent"
        );
    }
    let _d = a.request("GET", "http://[::1]:81/a?b#c", None, None);
    assert!(head_of(&mem.last()).starts_with("GET /a?b HTTP/1.1\r\n"));
}

#[test]
fn proxy_agent_sends_absolute_uris_to_the_proxy_and_reuses_its_connection() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, true, AgentOptions::default());
    let a = a.via_proxy("http://proxy.example:3128").unwrap();
    let d = a.request("GET", "http://example.com:8080/a?b=1#frag", None, None);
    assert_eq!(mem.made.borrow()[0].0, "http://proxy.example:3128/");
    let head = head_of(&mem.last());
    assert!(
        head.starts_with("GET http://example.com:8080/a?b=1 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nHost: example.com:8080\r\n"), "{head}");
    mem.last()
        .deliver(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let r = success_result_of(&d);
    assert_eq!(success_result_of(&read_body(&r)), b"ok");
    // Another origin, the same proxy connection.
    mem.last().clear();
    let _d = a.request("GET", "http://other.example/", None, None);
    assert_eq!(mem.count(), 1, "the proxy's connection was reused");
    assert!(head_of(&mem.last()).starts_with("GET http://other.example/ HTTP/1.1\r\n"));
}

#[test]
fn proxy_agent_asks_for_a_tunnel_for_https_and_refuses_bad_proxies() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, false, AgentOptions::default());
    let p = a.clone().via_proxy("http://proxy.example:3128").unwrap();
    let d = p.request("GET", "https://example.com/secret", None, None);
    assert_eq!(mem.made.borrow()[0].0, "http://proxy.example:3128/");
    // Only the CONNECT goes to the proxy in the clear, never the request.
    assert_eq!(
        head_of(&mem.last()),
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    );
    mem.last()
        .deliver(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    let f = failure_result_of(&d);
    assert!(f.is::<ProxyTunnelError>(), "{f:?}");
    assert!(f.to_string().contains("403"), "{f}");
    assert!(!head_of(&mem.last()).contains("secret"));
    // An answer that never ends is cut off.
    let d = p.request("GET", "https://example.com/", None, None);
    mem.last().deliver(b"HTTP/1.1 200 OK\r\n");
    mem.last().deliver(&vec![b'x'; 20_000]);
    assert!(failure_result_of(&d).is::<ProxyTunnelError>());
    assert!(a.clone().via_proxy("socks5://proxy:1080").is_err());
    assert!(a.via_proxy("not a uri").is_err());
}

#[test]
fn agent_explicit_host_kept_and_caller_headers_untouched() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, false, AgentOptions::default());
    let mut h = Headers::new();
    h.add("Host", "other.example");
    let _d = a.request("GET", "http://example.com/", Some(h.clone()), None);
    assert!(head_of(&mem.last()).contains("Host: other.example\r\n"));
    assert_eq!(h.len(), 1);
}

#[test]
fn agent_bad_input_fails_the_deferred() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, false, AgentOptions::default());
    assert!(
        failure_result_of(&a.request("GET", "ftp://example.com/", None, None))
            .is::<SchemeNotSupported>()
    );
    assert!(
        failure_result_of(&a.request("GET", "http://exa mple.com/", None, None)).is::<InvalidUri>()
    );
    assert!(
        failure_result_of(&a.request("GET", "http://example.com/\r\nX: y", None, None))
            .is::<InvalidUri>()
    );
    assert!(
        failure_result_of(&a.request("GET\r\n", "http://example.com/", None, None))
            .is::<BadRequest>()
    );
    assert!(
        failure_result_of(&a.request("GET", "http://example.com:99999/", None, None))
            .is::<InvalidUri>()
    );
    assert_eq!(mem.count(), 0);
}

fn answer(st: &StringTransport, raw: &[u8]) {
    st.deliver(raw);
}

#[test]
fn persistent_pool_reuses_connection() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, true, AgentOptions::default());
    let d = a.request("GET", "http://example.com/1", None, None);
    answer(
        &mem.last(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na",
    );
    assert_eq!(success_result_of(&read_body(&success_result_of(&d))), b"a");
    assert_eq!(a.pool().idle_count(), 1);
    let st = mem.last();
    st.clear();
    let d = a.request("GET", "http://example.com/2", None, None);
    assert_eq!(mem.count(), 1, "reused");
    assert!(head_of(&st).starts_with("GET /2 HTTP/1.1\r\n"));
    assert!(!head_of(&st).contains("Connection: close"));
    answer(&st, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb");
    assert_eq!(success_result_of(&read_body(&success_result_of(&d))), b"b");
    // Another origin gets its own connection.
    let _d = a.request("GET", "http://example.com:8080/", None, None);
    assert_eq!(mem.count(), 2);
}

#[test]
fn pool_max_per_host_closes_oldest_and_idle_timeout() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, true, AgentOptions::default());
    let ds: Vec<_> = (0..3)
        .map(|_| a.request("GET", "http://example.com/", None, None))
        .collect();
    assert_eq!(mem.count(), 3);
    for i in 0..3 {
        let st = mem.made.borrow()[i].1.clone();
        answer(&st, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
    for d in &ds {
        success_result_of(d);
    }
    assert_eq!(a.pool().idle_count(), 2);
    assert!(mem.made.borrow()[0].1.disconnecting(), "the oldest closed");
    clock.advance(239.0);
    assert_eq!(a.pool().idle_count(), 2);
    clock.advance(1.0);
    assert_eq!(a.pool().idle_count(), 0);
    assert!(mem.made.borrow()[2].1.disconnecting());
}

#[test]
fn pool_skips_connections_closed_while_idle() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, true, AgentOptions::default());
    let d = a.request("GET", "http://example.com/", None, None);
    answer(&mem.last(), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    success_result_of(&d);
    mem.last().connection_lost(Failure::new(ConnectionDone));
    let _d = a.request("GET", "http://example.com/", None, None);
    assert_eq!(mem.count(), 2);
}

/// Caches one connection, then makes it fail the next request before any response byte.
fn stale_then(
    method: &str,
    body: Option<Rc<dyn BodyProducer>>,
    retry: bool,
) -> (Deferred<Response>, Rc<Memory>) {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, true, AgentOptions::default());
    a.pool().set_retry_automatically(retry);
    let d = a.request("GET", "http://example.com/", None, None);
    answer(&mem.last(), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    success_result_of(&d);
    let stale = mem.last();
    let d = a.request(method, "http://example.com/", None, body);
    stale.connection_lost(Failure::new(ConnectionDone));
    (d, mem)
}

#[test]
fn retry_idempotent_once_on_new_connection() {
    let (d, mem) = stale_then("GET", None, true);
    assert_eq!(mem.count(), 2, "retried on a new connection");
    assert_no_result(&d);
    answer(&mem.last(), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(success_result_of(&d).code, 200);
}

#[test]
fn retry_rules() {
    // Not idempotent.
    let (d, mem) = stale_then("POST", None, true);
    assert!(failure_result_of(&d).is::<ResponseNeverReceived>());
    assert_eq!(mem.count(), 1);
    // Retry switched off.
    let (d, mem) = stale_then("GET", None, false);
    assert!(failure_result_of(&d).is::<ResponseNeverReceived>());
    assert_eq!(mem.count(), 1);
    // A body that cannot be replayed.
    let (p, _w) = StreamProducer::new();
    let (d, mem) = stale_then("DELETE", Some(p), true);
    assert!(failure_result_of(&d).is::<RequestTransmissionFailed>());
    assert_eq!(mem.count(), 1);
    // A replayable body is sent again.
    let (d, mem) = stale_then("DELETE", Some(Rc::new(BytesProducer::new("x"))), true);
    assert_eq!(mem.count(), 2);
    assert!(head_of(&mem.last()).ends_with("\r\n\r\nx"));
    assert_no_result(&d);
}

#[test]
fn no_retry_after_response_bytes_and_only_once() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, true, AgentOptions::default());
    let d = a.request("GET", "http://example.com/", None, None);
    answer(&mem.last(), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    success_result_of(&d);
    let stale = mem.last();
    let d = a.request("GET", "http://example.com/", None, None);
    stale.deliver(b"HTTP/1.1 2");
    stale.connection_lost(Failure::new(ConnectionDone));
    assert!(failure_result_of(&d).is::<ResponseFailed>());
    assert_eq!(mem.count(), 1);

    let (d, mem) = stale_then("GET", None, true);
    mem.last().connection_lost(Failure::new(ConnectionDone));
    assert!(failure_result_of(&d).is::<ResponseNeverReceived>());
    assert_eq!(
        mem.count(),
        2,
        "one retry only: a fresh connection is not retried"
    );
}

#[test]
fn cancel_is_not_retried() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, true, AgentOptions::default());
    let d = a.request("GET", "http://example.com/", None, None);
    answer(&mem.last(), b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    success_result_of(&d);
    let d = a.request("GET", "http://example.com/", None, None);
    d.cancel();
    let f = failure_result_of(&d);
    assert!(reasons(&f)[0].is::<CancelledError>(), "{f}");
    assert_eq!(mem.count(), 1);
}

#[test]
fn response_timeout_before_head_and_during_body() {
    let clock = Clock::new();
    let opts = AgentOptions {
        response_timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let (a, mem) = agent(&clock, false, opts.clone());
    let d = a.request("GET", "http://example.com/", None, None);
    clock.advance(4.9);
    assert_no_result(&d);
    clock.advance(0.2);
    let f = failure_result_of(&d);
    assert!(reasons(&f)[0].is::<ResponseTimeout>(), "{f}");
    assert!(mem.last().lost_reason().is_some());

    let (a, mem) = agent(&clock, false, opts);
    let d = a.request("GET", "http://example.com/", None, None);
    answer(
        &mem.last(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab",
    );
    let body = read_body(&success_result_of(&d));
    clock.advance(6.0);
    let f = failure_result_of(&body);
    assert!(
        f.downcast_ref::<ResponseFailed>()
            .unwrap()
            .has::<ResponseTimeout>(),
        "{f}"
    );
}

#[test]
fn response_timeout_disarmed_when_the_body_ends() {
    let clock = Clock::new();
    let opts = AgentOptions {
        response_timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    let (a, mem) = agent(&clock, false, opts);
    let d = a.request("GET", "http://example.com/", None, None);
    answer(
        &mem.last(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    assert_eq!(success_result_of(&read_body(&success_result_of(&d))), b"ok");
    assert!(clock.get_delayed_calls().is_empty(), "no timer left behind");
}

#[test]
fn connect_failure_reaches_the_caller() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, false, AgentOptions::default());
    *mem.refuse.borrow_mut() = true;
    let f = failure_result_of(&a.request("GET", "http://example.com/", None, None));
    assert!(f.is::<twistor::error::ConnectionRefusedError>(), "{f}");
}

// ---- redirects ------------------------------------------------------------------------------

fn redirect_to(st: &StringTransport, code: u16, location: Option<&str>) {
    let loc = location
        .map(|l| format!("Location: {l}\r\n"))
        .unwrap_or_default();
    st.deliver(format!("HTTP/1.1 {code} R\r\n{loc}Content-Length: 0\r\n\r\n").as_bytes());
}

fn ok(st: &StringTransport) {
    st.deliver(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
}

#[test]
fn redirect_codes_for_get() {
    for code in [301, 302, 303, 307, 308] {
        let clock = Clock::new();
        let (a, mem) = agent(&clock, false, AgentOptions::default());
        let ra = RedirectAgent::new(a);
        let d = ra.request("GET", "http://example.com/foo", None, None);
        redirect_to(&mem.last(), code, Some("/bar"));
        assert_eq!(mem.count(), 2);
        assert!(head_of(&mem.last()).starts_with("GET /bar HTTP/1.1"));
        ok(&mem.last());
        let r = success_result_of(&d);
        assert_eq!(r.code, 200);
        assert_eq!(r.previous_response().unwrap().code, code);
    }
}

#[test]
fn redirect_post_rules() {
    // (code, browser-like, expected: Some(method) or None for PageRedirect)
    let cases = [
        (301, false, None),
        (302, false, None),
        (303, false, Some("GET")),
        (307, false, Some("POST")),
        (308, false, Some("POST")),
        (301, true, Some("GET")),
        (302, true, Some("GET")),
        (308, true, Some("POST")),
    ];
    for (code, browser, want) in cases {
        let clock = Clock::new();
        let (a, mem) = agent(&clock, false, AgentOptions::default());
        let body: Rc<dyn BodyProducer> = Rc::new(BytesProducer::new("data"));
        let d = if browser {
            BrowserLikeRedirectAgent::new(a).request(
                "POST",
                "http://example.com/",
                None,
                Some(body),
            )
        } else {
            RedirectAgent::new(a).request("POST", "http://example.com/", None, Some(body))
        };
        redirect_to(&mem.last(), code, Some("/next"));
        match want {
            None => {
                let f = failure_result_of(&d);
                assert!(reasons(&f)[0].is::<PageRedirect>(), "{code}");
            }
            Some(m) => {
                let sent = head_of(&mem.last());
                assert!(
                    sent.starts_with(&format!("{m} /next HTTP/1.1")),
                    "{code} {browser}: {sent}"
                );
                assert_eq!(
                    sent.ends_with("data"),
                    m == "POST",
                    "{code}: body replayed with the method"
                );
            }
        }
    }
}

#[test]
fn redirect_307_with_unreplayable_body_fails_explicitly() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, false, AgentOptions::default());
    let (p, w) = StreamProducer::new();
    w.finish();
    let d = RedirectAgent::new(a).request("PUT", "http://example.com/", None, Some(p));
    redirect_to(&mem.last(), 307, Some("/x"));
    assert!(reasons(&failure_result_of(&d))[0].is::<PageRedirect>());
}

#[test]
fn redirect_without_location_and_limit() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, false, AgentOptions::default());
    let d = RedirectAgent::new(a).request("GET", "http://example.com/", None, None);
    redirect_to(&mem.last(), 302, None);
    assert!(reasons(&failure_result_of(&d))[0].is::<RedirectWithNoLocation>());

    let (a, mem) = agent(&clock, false, AgentOptions::default());
    let d = RedirectAgent::new(a)
        .limit(3)
        .request("GET", "http://example.com/", None, None);
    for _ in 0..4 {
        redirect_to(&mem.last(), 302, Some("/"));
    }
    assert_eq!(mem.count(), 4);
    let f = failure_result_of(&d);
    assert!(reasons(&f)[0].is::<InfiniteRedirection>());
}

#[test]
fn redirect_resolves_against_current_hop() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, false, AgentOptions::default());
    let d = RedirectAgent::new(a).request("GET", "http://example.com/r1", None, None);
    redirect_to(&mem.last(), 302, Some("/d1/d2/r2"));
    redirect_to(&mem.last(), 302, Some("r3"));
    assert!(head_of(&mem.last()).starts_with("GET /d1/d2/r3 HTTP/1.1"));
    redirect_to(&mem.last(), 302, Some("//other.example:81/baz"));
    assert_eq!(
        mem.made.borrow().last().unwrap().0,
        "http://other.example:81/baz"
    );
    ok(&mem.last());
    let r = success_result_of(&d);
    let chain: Vec<u16> = std::iter::successors(r.previous_response(), |p| p.previous_response())
        .map(|p| p.code)
        .collect();
    assert_eq!(chain, [302, 302, 302]);
}

#[test]
fn redirect_drops_sensitive_headers_across_origins_only() {
    for (target, dropped) in [
        ("/same", false),
        ("http://example.com:81/", true),
        ("https://example.com/", true),
        ("http://other.example/", true),
    ] {
        let clock = Clock::new();
        let (a, mem) = agent(&clock, false, AgentOptions::default());
        let mut h = Headers::new();
        h.add("Authorization", "secret");
        h.add("Cookie", "c=1");
        h.add("X-Custom", "k");
        let d = RedirectAgent::new(a).sensitive_header("x-custom").request(
            "GET",
            "http://example.com/",
            Some(h),
            None,
        );
        redirect_to(&mem.last(), 301, Some(target));
        let sent = head_of(&mem.last());
        for name in ["Authorization", "Cookie", "X-Custom"] {
            assert_eq!(!sent.contains(name), dropped, "{target} {name}: {sent}");
        }
        assert_no_result(&d);
    }
}

// ---- content decoding and cookies -------------------------------------------------------------

#[test]
fn content_decoder_asks_and_decodes() {
    use std::io::Write;
    let clock = Clock::new();
    let (a, mem) = agent(&clock, false, AgentOptions::default());
    let d = ContentDecoderAgent::new(a).request("GET", "http://example.com/", None, None);
    assert!(head_of(&mem.last()).contains("Accept-Encoding: gzip, deflate\r\n"));
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b"decoded text").unwrap();
    let z = e.finish().unwrap();
    let mut raw = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        z.len()
    )
    .into_bytes();
    raw.extend_from_slice(&z);
    mem.last().deliver(&raw);
    let r = success_result_of(&d);
    assert_eq!(r.length, None);
    assert_eq!(success_result_of(&read_body(&r)), b"decoded text");
}

#[test]
fn cookie_agent_stores_and_sends() {
    let clock = Clock::new();
    let (a, mem) = agent(&clock, false, AgentOptions::default());
    let jar = Rc::new(RefCell::new(CookieJar::new()));
    let ca = CookieAgent::new(a, jar.clone());
    let d = ca.request("GET", "http://example.com/a/b", None, None);
    assert!(!head_of(&mem.last()).contains("Cookie"));
    mem.last().deliver(b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=1; Path=/\r\nSet-Cookie: s=2; Secure\r\nSet-Cookie: gone=1; Max-Age=0\r\nContent-Length: 0\r\n\r\n");
    success_result_of(&d);
    let _d = ca.request("GET", "http://example.com/a/c", None, None);
    assert!(
        head_of(&mem.last()).contains("\r\nCookie: sid=1\r\n"),
        "{}",
        head_of(&mem.last())
    );
    let _d = ca.request("GET", "https://example.com/a/c", None, None);
    assert!(head_of(&mem.last()).contains("\r\nCookie: s=2; sid=1\r\n"));
    let _d = ca.request("GET", "http://other.example/", None, None);
    assert!(!head_of(&mem.last()).contains("Cookie"));
    // A cookie for a domain the host is not under is refused.
    jar.borrow_mut().set_cookie(
        &Uri::parse("http://example.com/").unwrap(),
        "evil=1; Domain=bank.example",
    );
    assert_eq!(jar.borrow().cookies().len(), 2);
}

#[test]
fn cookie_domains_of_whole_registries_are_refused() {
    let mut jar = CookieJar::new();
    let shop = Uri::parse("http://shop.example.co.uk/").unwrap();
    for refused in ["a=1; Domain=uk", "a=1; Domain=.co.uk", "a=1; Domain=co.uk"] {
        jar.set_cookie(&shop, refused);
    }
    assert_eq!(jar.cookies().len(), 0, "{:?}", jar.cookies());
    jar.set_cookie(
        &Uri::parse("http://www.example.com/").unwrap(),
        "b=1; Domain=com",
    );
    assert_eq!(jar.cookies().len(), 0);
    // The owner's own domain, and a host that is a dotless name itself, are fine.
    jar.set_cookie(&shop, "c=1; Domain=example.co.uk");
    jar.set_cookie(
        &Uri::parse("http://localhost/").unwrap(),
        "d=1; Domain=localhost",
    );
    let domains: Vec<&str> = jar.cookies().iter().map(|c| c.domain.as_str()).collect();
    assert_eq!(domains, ["example.co.uk", "localhost"]);
    let other = Uri::parse("http://other.co.uk/").unwrap();
    assert_eq!(jar.cookie_header(&other), None);
}

#[test]
fn file_body_producer_lengths_and_stop() {
    use std::io::{Seek, SeekFrom, Write};
    let clock = Clock::new();
    let coop = twistor::task::Cooperator::new(clock.clone());
    let path = std::env::temp_dir().join(format!("twistor-webclient-fbp-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&vec![b'z'; 200_000]).unwrap();
    let mut f = std::fs::File::open(&path).unwrap();
    f.seek(SeekFrom::Start(1000)).unwrap();
    let p = FileBodyProducer::new(f, coop.clone()).read_size(50_000);
    assert_eq!(p.length(), Some(199_000));
    let st = StringTransport::new();
    let d = p.start_producing(BodyConsumer::with_length(st.transport(), 199_000));
    clock.advance(0.001);
    assert!(!st.value().is_empty());
    for _ in 0..10 {
        clock.advance(0.001);
    }
    success_result_of(&d);
    assert_eq!(st.value().len(), 199_000);

    let p = FileBodyProducer::new(std::fs::File::open(&path).unwrap(), coop);
    let st = StringTransport::new();
    let d = p.start_producing(BodyConsumer::with_length(st.transport(), 200_000));
    p.stop_producing();
    clock.advance(1.0);
    assert!(st.value().is_empty());
    let _ = d;
    std::fs::remove_file(&path).unwrap();
}

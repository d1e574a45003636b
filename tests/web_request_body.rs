//! Request bodies streamed to the resource (`BodyMode::Stream`): delivery in order,
//! back-pressure, timeouts, limits, disconnects, early responses, `100 Continue`, and a
//! large upload over a real socket with bounded server memory.

#[path = "util/mod.rs"]
mod util;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use twistor::Failure;
use twistor::error::ConnectionLost;
use twistor::prelude::*;
use twistor::testing::{MemoryReactor, ReadState, StringTransport};
use twistor::web::request_body::{PENDING_BOUND, RequestBodyError};
use twistor::web::resource::{Render, Resource};
use twistor::web::site::AccessLog;
use twistor::web::{BodyMode, BodyReceiver, HttpLimits, Request, Site};

/// What a receiver saw.
#[derive(Default)]
struct Seen {
    data: Vec<u8>,
    calls: usize,
    done: Option<Result<(), Failure>>,
}

/// Records the body; answers with its size once it ended well.
struct Rx {
    seen: Rc<RefCell<Seen>>,
    request: Request,
}

impl BodyReceiver for Rx {
    fn data_received(&mut self, data: &[u8]) {
        let mut s = self.seen.borrow_mut();
        s.data.extend_from_slice(data);
        s.calls += 1;
    }
    fn body_done(&mut self, result: Result<(), Failure>) {
        assert!(self.seen.borrow().done.is_none(), "body_done twice");
        let ok = result.is_ok();
        self.seen.borrow_mut().done = Some(result);
        if ok {
            let n = self.seen.borrow().data.len();
            self.request.write_and_finish(format!("got {n}").as_bytes());
        }
    }
}

/// What the upload resource does when it renders.
#[derive(Clone, Copy, PartialEq)]
enum How {
    /// Attaches a receiver at once.
    Attach,
    /// Keeps the request; the test attaches later.
    Keep,
    /// Attaches, then answers at once, before the body is read.
    AnswerEarly,
}

struct Upload {
    how: How,
    max: Option<u64>,
    seen: Rc<RefCell<Seen>>,
    kept: RefCell<Vec<Request>>,
    rendered: Cell<usize>,
}

impl Upload {
    fn new(how: How, max: Option<u64>) -> Rc<Upload> {
        Rc::new(Upload {
            how,
            max,
            seen: Rc::default(),
            kept: RefCell::default(),
            rendered: Cell::new(0),
        })
    }
    fn rx(&self, r: &Request) -> Rx {
        Rx {
            seen: self.seen.clone(),
            request: r.clone(),
        }
    }
    fn upload(&self, r: &Request) -> Option<Render> {
        self.rendered.set(self.rendered.get() + 1);
        self.kept.borrow_mut().push(r.clone());
        match self.how {
            How::Attach => r.deliver_body(self.rx(r)).unwrap(),
            How::Keep => {}
            How::AnswerEarly => {
                r.deliver_body(self.rx(r)).unwrap();
                return Some(Render::Static(b"early"));
            }
        }
        Some(Render::NotDoneYet)
    }
    fn request(&self) -> Request {
        self.kept
            .borrow()
            .last()
            .cloned()
            .expect("a rendered request")
    }
}

impl Resource for Upload {
    fn is_leaf(&self) -> bool {
        true
    }
    fn body_mode(&self, r: &Request) -> BodyMode {
        if r.method() == b"GET" {
            BodyMode::Buffered
        } else {
            BodyMode::Stream { max: self.max }
        }
    }
    fn render_get(&self, r: &Request) -> Option<Render> {
        Some(Render::Body(r.uri().to_vec()))
    }
    fn render_put(&self, r: &Request) -> Option<Render> {
        self.upload(r)
    }
    fn render_post(&self, r: &Request) -> Option<Render> {
        self.upload(r)
    }
}

fn serve(res: Rc<Upload>) -> (Rc<MemoryReactor>, StringTransport) {
    serve_with(res, HttpLimits::default())
}

fn serve_with(res: Rc<Upload>, limits: HttpLimits) -> (Rc<MemoryReactor>, StringTransport) {
    let reactor = Rc::new(MemoryReactor::new());
    let site = Site::with_options(res, reactor.clone(), limits, AccessLog::Off);
    let st = StringTransport::new();
    st.connect(site.channel());
    (reactor, st)
}

fn out(st: &StringTransport) -> String {
    String::from_utf8_lossy(&st.value()).into_owned()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn put_head(len: usize) -> Vec<u8> {
    format!("PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n").into_bytes()
}

const CHUNKED_HEAD: &[u8] = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";

fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut rest = body;
    for &n in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let n = n.min(rest.len());
        wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        wire.extend_from_slice(&rest[..n]);
        wire.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

fn err_is<E: std::error::Error + 'static>(seen: &Rc<RefCell<Seen>>) -> bool {
    matches!(&seen.borrow().done, Some(Err(f)) if f.is::<E>())
}

#[test]
fn a_content_length_body_in_many_small_deliveries_arrives_whole_and_in_order() {
    let res = Upload::new(How::Attach, None);
    let (_, st) = serve(res.clone());
    let body = pattern(10_000);
    st.deliver(&put_head(body.len()));
    assert_eq!(res.rendered.get(), 1, "rendered as soon as the head is in");
    for piece in body.chunks(7) {
        assert!(res.seen.borrow().done.is_none());
        st.deliver(piece);
    }
    let seen = res.seen.borrow();
    assert_eq!(seen.data, body);
    assert!(seen.calls > 1000, "delivered as it came");
    assert!(matches!(seen.done, Some(Ok(()))));
    assert!(out(&st).ends_with("\r\n\r\ngot 10000"), "{}", out(&st));
}

#[test]
fn a_chunked_body_split_across_deliveries_arrives_whole_and_in_order() {
    let res = Upload::new(How::Attach, None);
    let (_, st) = serve(res.clone());
    let body = pattern(5_000);
    let wire = chunked(&body, &[1, 100, 17, 1000, 3]);
    st.deliver(CHUNKED_HEAD);
    // Pieces of 3 bytes cut chunk sizes, CRLFs and data anywhere.
    for piece in wire.chunks(3) {
        st.deliver(piece);
    }
    assert_eq!(res.seen.borrow().data, body);
    assert!(matches!(res.seen.borrow().done, Some(Ok(()))));
    assert!(out(&st).ends_with("\r\n\r\ngot 5000"));
}

#[test]
fn bytes_before_deliver_body_wait_bounded_and_are_handed_over_on_attach() {
    let res = Upload::new(How::Keep, None);
    let (_, st) = serve(res.clone());
    let body = pattern(3 * PENDING_BOUND);
    st.deliver(&put_head(body.len()));
    let mut sent = 0;
    for piece in body.chunks(4096) {
        st.deliver(piece);
        sent += piece.len();
        if sent >= PENDING_BOUND {
            break;
        }
    }
    assert_eq!(
        st.read_state(),
        ReadState::Paused,
        "over the bound: reading stops"
    );
    let r = res.request();
    assert!(r.body_pending_high_water() <= PENDING_BOUND + 4096);
    r.deliver_body(res.rx(&r)).unwrap();
    assert_eq!(
        res.seen.borrow().data,
        &body[..sent],
        "handed over on attach"
    );
    assert_eq!(st.read_state(), ReadState::Producing, "reading resumes");
    assert_eq!(
        r.deliver_body(res.rx(&r)),
        Err(RequestBodyError::AlreadyDelivered)
    );
    st.deliver(&body[sent..]);
    assert_eq!(res.seen.borrow().data, body);
    assert!(matches!(res.seen.borrow().done, Some(Ok(()))));
    assert!(out(&st).ends_with(&format!("got {}", body.len())));
}

#[test]
fn a_body_read_before_attach_is_delivered_whole_later() {
    let res = Upload::new(How::Keep, None);
    let (_, st) = serve(res.clone());
    st.deliver(&put_head(5));
    st.deliver(b"hello");
    assert_eq!(st.read_state(), ReadState::Producing);
    let r = res.request();
    let body = r.read_body();
    assert_eq!(twistor::testing::success_result_of(&body), b"hello");
    r.finish();
    assert!(out(&st).starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn pause_body_stops_reading_and_suspends_the_body_timeout_until_resume() {
    let res = Upload::new(How::Attach, None);
    let (reactor, st) = serve(res.clone());
    st.deliver(&put_head(10));
    st.deliver(b"01");
    let r = res.request();
    r.pause_body();
    assert_eq!(st.read_state(), ReadState::Paused);
    // Bytes already on their way wait while paused.
    st.deliver(b"23");
    assert_eq!(res.seen.borrow().data, b"01");
    reactor.clock().advance(300.0);
    assert!(
        !st.disconnecting(),
        "no body timeout while the application holds the body"
    );
    r.resume_body();
    assert_eq!(st.read_state(), ReadState::Producing);
    assert_eq!(res.seen.borrow().data, b"0123");
    // The full timeout runs again from the resume.
    reactor.clock().advance(29.0);
    assert!(!st.disconnecting());
    reactor.clock().advance(1.5);
    assert!(st.disconnecting());
    assert!(out(&st).starts_with("HTTP/1.1 408 "), "{}", out(&st));
    assert!(err_is::<RequestBodyError>(&res.seen));
}

#[test]
fn a_trickle_is_fine_but_a_stall_past_the_body_timeout_is_a_408() {
    let res = Upload::new(How::Attach, None);
    let (reactor, st) = serve(res.clone());
    st.deliver(&put_head(100));
    let fin = r_notify(&res);
    for _ in 0..5 {
        reactor.clock().advance(20.0);
        st.deliver(b"x");
    }
    assert!(!st.disconnecting(), "each byte extends the deadline");
    reactor.clock().advance(30.0);
    assert!(st.disconnecting());
    assert!(out(&st).starts_with("HTTP/1.1 408 Request Timeout\r\n"));
    match &res.seen.borrow().done {
        Some(Err(f)) => assert_eq!(f.downcast_ref(), Some(&RequestBodyError::Timeout)),
        other => panic!("{:?}", other.as_ref().map(|r| r.is_ok())),
    }
    assert!(twistor::testing::failure_result_of(&fin).is::<RequestBodyError>());
}

fn r_notify(res: &Upload) -> Deferred<()> {
    res.request().notify_finish()
}

#[test]
fn a_chunked_body_over_the_stream_max_fails_with_413_and_closes() {
    let res = Upload::new(How::Attach, Some(100));
    let (_, st) = serve(res.clone());
    st.deliver(CHUNKED_HEAD);
    let fin = r_notify(&res);
    st.deliver(&chunked(&pattern(90), &[90])[..94]);
    assert_eq!(res.seen.borrow().data.len(), 90);
    st.deliver(b"\r\n20\r\n");
    st.deliver(&[b'y'; 32]);
    assert!(st.disconnecting());
    assert!(out(&st).starts_with("HTTP/1.1 413 "), "{}", out(&st));
    match &res.seen.borrow().done {
        Some(Err(f)) => assert_eq!(f.downcast_ref(), Some(&RequestBodyError::TooLarge(100))),
        _ => panic!("body_done(Err) expected"),
    }
    assert!(twistor::testing::failure_result_of(&fin).is::<RequestBodyError>());
    // Later writes of the application go nowhere.
    let before = st.value().len();
    res.request().write_and_finish(b"late");
    assert_eq!(st.value().len(), before);
}

#[test]
fn a_content_length_over_the_stream_max_is_refused_before_rendering() {
    let res = Upload::new(How::Attach, Some(100));
    let (_, st) = serve(res.clone());
    st.deliver(&put_head(101));
    assert_eq!(res.rendered.get(), 0);
    assert!(out(&st).starts_with("HTTP/1.1 413 "));
    assert!(st.disconnecting());
}

#[test]
fn a_streamed_body_may_exceed_the_sites_buffered_limit() {
    let res = Upload::new(How::Attach, None);
    let limits = HttpLimits {
        max_body: 1000,
        ..HttpLimits::default()
    };
    let (_, st) = serve_with(res.clone(), limits);
    let body = pattern(50_000);
    st.deliver(&put_head(body.len()));
    st.deliver(&body);
    assert_eq!(res.seen.borrow().data.len(), 50_000);
    assert!(out(&st).ends_with("got 50000"));
}

/// A buffered resource: reads `Request::body`.
struct Buffered;
impl Resource for Buffered {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_post(&self, r: &Request) -> Option<Render> {
        Some(Render::Body(r.body().to_vec()))
    }
}

#[test]
fn a_buffered_resource_keeps_its_limit_and_gets_its_body_whole() {
    let limits = HttpLimits {
        max_body: 10,
        ..HttpLimits::default()
    };
    let site = |l: &HttpLimits| {
        Site::with_options(
            Rc::new(Buffered),
            Rc::new(MemoryReactor::new()),
            l.clone(),
            AccessLog::Off,
        )
    };
    let st = StringTransport::new();
    st.connect(site(&limits).channel());
    st.deliver(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab");
    assert!(st.value().is_empty(), "a buffered body is read whole first");
    st.deliver(b"cde");
    assert!(out(&st).ends_with("\r\n\r\nabcde"));
    let st = StringTransport::new();
    st.connect(site(&limits).channel());
    st.deliver(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n");
    assert!(out(&st).starts_with("HTTP/1.1 413 "));
    let st = StringTransport::new();
    st.connect(site(&limits).channel());
    st.deliver(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    st.deliver(b"b\r\n0123456789a\r\n0\r\n\r\n");
    assert!(out(&st).starts_with("HTTP/1.1 413 "));
}

#[test]
fn a_client_disconnect_mid_body_fails_the_body_and_notify_finish() {
    let res = Upload::new(How::Attach, None);
    let (_, st) = serve(res.clone());
    st.deliver(&put_head(100));
    st.deliver(b"part");
    let fin = r_notify(&res);
    st.connection_lost(Failure::new(ConnectionLost::new()));
    assert_eq!(res.seen.borrow().data, b"part");
    assert!(err_is::<ConnectionLost>(&res.seen));
    assert!(twistor::testing::failure_result_of(&fin).is::<ConnectionLost>());
}

#[test]
fn a_response_finished_before_its_body_discards_the_rest_and_serves_the_next_request() {
    let res = Upload::new(How::AnswerEarly, None);
    let (_, st) = serve(res.clone());
    st.deliver(&put_head(20));
    st.deliver(b"0123456789");
    assert!(out(&st).ends_with("\r\n\r\nearly"));
    assert!(
        err_is::<RequestBodyError>(&res.seen),
        "the receiver is told"
    );
    assert!(res.seen.borrow().data.is_empty());
    // The rest of the body, then a pipelined request, in one delivery.
    st.deliver(b"abcdefghijGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!st.disconnecting());
    let o = out(&st);
    assert_eq!(o.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{o}");
    assert!(o.ends_with("\r\n\r\n/next"), "{o}");
}

#[test]
fn a_discarded_chunked_rest_over_the_max_closes_the_connection() {
    let res = Upload::new(How::AnswerEarly, Some(50));
    let (_, st) = serve(res.clone());
    st.deliver(CHUNKED_HEAD);
    assert!(out(&st).ends_with("early"));
    st.deliver(b"40\r\n");
    st.deliver(&[b'z'; 64]);
    assert!(st.disconnecting());
    assert!(!out(&st).contains("413"), "the response was out already");
}

#[test]
fn expect_100_continue_with_a_streamed_resource_is_answered_before_the_body() {
    let res = Upload::new(How::Attach, None);
    let (_, st) = serve(res.clone());
    st.deliver(b"PUT /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(out(&st), "HTTP/1.1 100 Continue\r\n\r\n");
    st.deliver(b"abc");
    let o = out(&st);
    assert!(o.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"));
    assert!(o.ends_with("got 3"));
}

#[test]
fn pipelined_requests_after_a_streamed_body_are_answered_in_order() {
    let res = Upload::new(How::Keep, None);
    let (_, st) = serve(res.clone());
    let mut wire = put_head(4);
    wire.extend_from_slice(b"data");
    wire.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    st.deliver(&wire);
    assert!(st.value().is_empty(), "the upload's response comes first");
    let r = res.request();
    r.deliver_body(res.rx(&r)).unwrap();
    let o = out(&st);
    let first = o.find("got 4").expect("the upload's answer");
    let second = o.find("/after").expect("the next answer");
    assert!(first < second, "{o}");
}

/// An order-sensitive checksum over 8-byte words (fast enough unoptimized), fed in pieces
/// of any size.
#[derive(Default)]
struct Sum {
    h: u64,
    carry: Vec<u8>,
    n: u64,
}

impl Sum {
    fn word(&mut self, w: &[u8]) {
        let mut b = [0u8; 8];
        b[..w.len()].copy_from_slice(w);
        self.h = (self.h ^ u64::from_le_bytes(b)).wrapping_mul(0x100_0000_01b3);
    }
    fn update(&mut self, mut d: &[u8]) {
        self.n += d.len() as u64;
        if !self.carry.is_empty() {
            let take = (8 - self.carry.len()).min(d.len());
            self.carry.extend_from_slice(&d[..take]);
            d = &d[take..];
            if self.carry.len() < 8 {
                return;
            }
            let c = std::mem::take(&mut self.carry);
            self.word(&c);
        }
        let words = d.chunks_exact(8);
        let rest = words.remainder();
        for w in words {
            self.word(w);
        }
        self.carry.extend_from_slice(rest);
    }
    fn finish(mut self) -> (u64, u64) {
        let c = std::mem::take(&mut self.carry);
        if !c.is_empty() {
            self.word(&c);
        }
        (self.n, self.h)
    }
}

/// A slow sink: pauses the body every MiB and resumes it from a timer.
struct Sink {
    request: Request,
    reactor: Reactor,
    sum: Option<Sum>,
    since_pause: usize,
}

impl BodyReceiver for Sink {
    fn data_received(&mut self, data: &[u8]) {
        if let Some(s) = &mut self.sum {
            s.update(data);
        }
        self.since_pause += data.len();
        if self.since_pause >= 1 << 20 {
            self.since_pause = 0;
            self.request.pause_body();
            let r = self.request.clone();
            self.reactor.call_later(0.001, move || r.resume_body());
        }
    }
    fn body_done(&mut self, result: Result<(), Failure>) {
        let Some(sum) = self.sum.take() else {
            return;
        };
        match result {
            Ok(()) => {
                let (n, h) = sum.finish();
                let hw = self.request.body_pending_high_water();
                self.request
                    .write_and_finish(format!("{n} {h:016x} {hw}").as_bytes());
            }
            Err(f) => panic!("upload failed: {f}"),
        }
    }
}

struct SlowUpload(Reactor);
impl Resource for SlowUpload {
    fn is_leaf(&self) -> bool {
        true
    }
    fn body_mode(&self, _r: &Request) -> BodyMode {
        BodyMode::Stream { max: None }
    }
    fn render_put(&self, r: &Request) -> Option<Render> {
        let sink = Sink {
            request: r.clone(),
            reactor: self.0.clone(),
            sum: Some(Sum::default()),
            since_pause: 0,
        };
        r.deliver_body(sink).unwrap();
        Some(Render::NotDoneYet)
    }
}

/// PUTs `total` bytes (64 KiB writes, each different) to `port`, reads the answer and
/// returns it with the count and hash the client computed.
fn put_and_read(port: u16, total: usize) -> (String, u64, u64) {
    const CHUNK: usize = 64 << 10;
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(
        format!("PUT /big HTTP/1.1\r\nHost: t\r\nContent-Length: {total}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut chunk: Vec<u8> = (0..CHUNK).map(|i| (i * 31 % 256) as u8).collect();
    let mut sum = Sum::default();
    for i in 0..total / CHUNK {
        // Each chunk differs, so reordering would change the sum.
        chunk[..8].copy_from_slice(&(i as u64).to_le_bytes());
        sum.update(&chunk);
        c.write_all(&chunk).unwrap();
    }
    let (n, h) = sum.finish();
    let mut resp = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        let got = c.read(&mut b).unwrap();
        assert!(got > 0, "closed early: {}", String::from_utf8_lossy(&resp));
        resp.extend_from_slice(&b[..got]);
        let text = String::from_utf8_lossy(&resp);
        if let Some((head, body)) = text.split_once("\r\n\r\n")
            && let Some(len) = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|l| l.parse::<usize>().ok())
            && body.len() >= len
        {
            break;
        }
    }
    (String::from_utf8_lossy(&resp).into_owned(), n, h)
}

/// Checks the answer of `SlowUpload` to `put_and_read`; returns the bytes that waited at
/// most in the sink's request.
fn check_answer(text: &str, n: u64, h: u64) -> usize {
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let mut parts = body.split(' ');
    assert_eq!(parts.next(), Some(n.to_string().as_str()));
    assert_eq!(parts.next(), Some(format!("{h:016x}").as_str()));
    parts.next().and_then(|p| p.parse().ok()).unwrap()
}

#[test]
fn a_64_mib_upload_over_tcp_streams_with_bounded_memory_to_a_slow_sink() {
    const TOTAL: usize = 64 << 20;
    util::bounded(30, || {
        let (tx, rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            let reactor = Reactor::new().unwrap();
            let site = Site::with_options(
                Rc::new(SlowUpload(reactor.clone())),
                Rc::new(reactor.clone()),
                HttpLimits::default(),
                AccessLog::Off,
            );
            let port = listen_tcp(&reactor, 0, Rc::new(site)).unwrap();
            tx.send((port.port(), reactor.thread_handle())).unwrap();
            reactor.run_without_signal_handlers().unwrap();
        });
        let (port, handle) = rx.recv().unwrap();
        let (text, n, h) = put_and_read(port, TOTAL);
        handle.stop();
        server.join().unwrap();
        let high_water = check_answer(&text, n, h);
        // Paused, the sink lets at most the bound plus one read wait.
        assert!(
            high_water <= PENDING_BOUND + 64 * 1024,
            "{high_water} bytes waited"
        );
    });
}

/// A reverse proxy that keeps the requests it forwards, to look at them afterwards.
struct Capture {
    proxy: Rc<twistor::web::proxy::ReverseProxyResource>,
    seen: RefCell<Vec<Request>>,
}
impl Resource for Capture {
    fn is_leaf(&self) -> bool {
        true
    }
    fn body_mode(&self, r: &Request) -> BodyMode {
        self.proxy.body_mode(r)
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        self.proxy.allowed_methods()
    }
    fn render(&self, r: &Request) -> Render {
        self.seen.borrow_mut().push(r.clone());
        self.proxy.render(r)
    }
}

#[test]
fn a_32_mib_upload_through_the_reverse_proxy_streams_with_bounded_memory_at_both() {
    const TOTAL: usize = 32 << 20;
    util::bounded(30, || {
        let (tx, rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            let reactor = Reactor::new().unwrap();
            let backend = Site::with_options(
                Rc::new(SlowUpload(reactor.clone())),
                Rc::new(reactor.clone()),
                HttpLimits::default(),
                AccessLog::Off,
            );
            let backend_port = listen_tcp(&reactor, 0, Rc::new(backend)).unwrap();
            let capture = Rc::new(Capture {
                proxy: Rc::new(twistor::web::proxy::ReverseProxyResource::new(
                    "127.0.0.1",
                    backend_port.port(),
                    b"/big",
                    &reactor,
                )),
                seen: RefCell::default(),
            });
            // The site's buffered limit is far below the upload: only streaming gets it through.
            let limits = HttpLimits {
                max_body: 1 << 20,
                ..Default::default()
            };
            let front = Site::with_options(
                capture.clone(),
                Rc::new(reactor.clone()),
                limits,
                AccessLog::Off,
            );
            let port = listen_tcp(&reactor, 0, Rc::new(front)).unwrap();
            tx.send((port.port(), reactor.thread_handle())).unwrap();
            reactor.run_without_signal_handlers().unwrap();
            let seen = capture.seen.borrow();
            seen.iter()
                .map(|r| r.body_pending_high_water())
                .max()
                .unwrap_or(0)
        });
        let (port, handle) = rx.recv().unwrap();
        let (text, n, h) = put_and_read(port, TOTAL);
        handle.stop();
        let proxy_high_water = server.join().unwrap();
        let backend_high_water = check_answer(&text, n, h);
        for (who, hw) in [("backend", backend_high_water), ("proxy", proxy_high_water)] {
            assert!(
                hw <= PENDING_BOUND + 64 * 1024,
                "{hw} bytes waited at the {who}"
            );
        }
    });
}

#[test]
fn the_upload_example_streams_16_mib_to_a_file_and_answers_its_checksum() {
    let out = util::run_example("web_upload", &["--port", "0", "--self-test"]);
    assert!(out.contains("self-test: ok"), "{out}");
}

#[test]
fn a_wrapped_streaming_resource_still_streams() {
    use twistor::web::encoding::EncodingResourceWrapper;
    let res = Upload::new(How::Attach, None);
    let reactor = Rc::new(MemoryReactor::new());
    let wrapped = Rc::new(EncodingResourceWrapper::new(res.clone()));
    let site = Site::with_options(wrapped, reactor, HttpLimits::default(), AccessLog::Off);
    let st = StringTransport::new();
    st.connect(site.channel());
    st.deliver(&put_head(4));
    assert_eq!(res.rendered.get(), 1, "rendered before the body");
    st.deliver(b"abcd");
    assert_eq!(res.seen.borrow().data, b"abcd");
    assert!(out(&st).ends_with("got 4"));
}

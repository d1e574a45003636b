//! The reverse proxy: what it sends to the backend and what it answers, first with a
//! recording agent on in-memory transports (Twisted's `test_proxy` cases and the departures
//! from them), then over TCP on 127.0.0.1 with a real backend site: streaming, backend
//! connection reuse, back-pressure, a refused backend, a client that goes away.

mod util;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::prelude::*;
use twistor::testing::{MemoryReactor, StringTransport, success_result_of};
use twistor::transport::Producer;
use twistor::transport::listener::ListeningPort;
use twistor::web::client::error::ResponseNeverReceived;
use twistor::web::client::{BodyConsumer, BodyProducer, HttpAgent, Response};
use twistor::web::proxy::ReverseProxyResource;
use twistor::web::resource::{Render, Resource, Tree};
use twistor::web::site::AccessLog;
use twistor::web::{Headers, HttpLimits, Request, Site};
use twistor::{Deferred, Failure, Resolver};

/// One request the proxy made.
struct Sent {
    method: String,
    url: String,
    headers: Headers,
    /// The body as the backend connection would carry it (framed by the producer's
    /// length, or chunked), with the producer's Deferred: streamed bodies arrive after the
    /// request was made.
    body: Option<(StringTransport, BodyConsumer, Deferred<()>)>,
    answer: Resolver<Response>,
    cancelled: Rc<Cell<bool>>,
}

/// An agent that records requests and lets the test answer them.
#[derive(Default)]
struct Recorder {
    sent: RefCell<Vec<Sent>>,
}

impl HttpAgent for Recorder {
    fn request(
        &self,
        method: &str,
        uri: &str,
        headers: Option<Headers>,
        body: Option<Rc<dyn BodyProducer>>,
    ) -> Deferred<Response> {
        let body = body.map(|p| {
            let st = StringTransport::new();
            let consumer = match p.length() {
                Some(n) => BodyConsumer::with_length(st.transport(), n),
                None => BodyConsumer::chunked(st.transport()),
            };
            let done = p.start_producing(consumer.clone());
            (st, consumer, done)
        });
        let cancelled = Rc::new(Cell::new(false));
        let c = cancelled.clone();
        let (d, answer) = Deferred::with_canceller(move |r: &Resolver<Response>| {
            c.set(true);
            let _ = r.errback(Failure::msg("cancelled"));
        });
        self.sent.borrow_mut().push(Sent {
            method: method.into(),
            url: uri.into(),
            headers: headers.unwrap_or_default(),
            body,
            answer,
            cancelled,
        });
        d
    }
}

impl Sent {
    /// The whole body the backend got, once the producer finished.
    fn body_sent(&self) -> Option<Vec<u8>> {
        self.body.as_ref().map(|(st, consumer, done)| {
            success_result_of(done);
            consumer.finish().unwrap();
            st.value()
        })
    }
}

/// A site whose `/p` is a proxy to `backend:1234` path `/path` through a recorder.
fn proxied() -> (Rc<Recorder>, StringTransport) {
    let rec = Rc::new(Recorder::default());
    let root = Tree::new();
    root.put_child(
        b"p",
        Rc::new(ReverseProxyResource::with_agent(
            "backend",
            1234,
            b"/path",
            rec.clone(),
        )),
    );
    let site = Site::with_options(
        Rc::new(root),
        Rc::new(MemoryReactor::new()),
        HttpLimits::default(),
        AccessLog::Off,
    );
    let st = StringTransport::new();
    st.connect(site.channel());
    (rec, st)
}

fn out(st: &StringTransport) -> String {
    String::from_utf8_lossy(&st.value()).into_owned()
}

#[test]
fn forwards_path_query_and_host_as_twisted_does() {
    let (rec, st) = proxied();
    st.deliver(b"GET /p/a%20b/c?x=1&y=2 HTTP/1.1\r\nHost: front\r\n\r\n");
    let sent = rec.sent.borrow();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "GET");
    assert_eq!(sent[0].url, "http://backend:1234/path/a%20b/c?x=1&y=2");
    assert_eq!(sent[0].headers.get_str("host"), Some("backend:1234"));
    assert!(sent[0].body.is_none());
}

#[test]
fn root_of_the_proxy_and_a_special_segment() {
    let (rec, st) = proxied();
    st.deliver(b"GET /p HTTP/1.1\r\nHost: front\r\n\r\n");
    st.deliver(b"");
    assert_eq!(rec.sent.borrow()[0].url, "http://backend:1234/path");
    let (rec, st) = proxied();
    // `%2F` in a segment stays a segment: it is re-quoted, not turned into a separator.
    st.deliver(b"GET /p/a%2Fb/ HTTP/1.1\r\nHost: front\r\n\r\n");
    assert_eq!(rec.sent.borrow()[0].url, "http://backend:1234/path/a%2Fb/");
}

#[test]
fn get_child_extends_the_path_and_the_host_omits_port_80() {
    let rec = Rc::new(Recorder::default());
    let p = ReverseProxyResource::with_agent("127.0.0.1", 80, b"/path", rec.clone());
    assert_eq!(p.host_header(), "127.0.0.1");
    /// Renders the proxy's child for a segment with a space, as traversal would.
    struct Probe(ReverseProxyResource);
    impl Resource for Probe {
        fn is_leaf(&self) -> bool {
            true
        }
        fn render(&self, r: &Request) -> Render {
            self.0.get_child(b"with space", r).render(r)
        }
    }
    let site = Site::new(Rc::new(Probe(p)), Rc::new(MemoryReactor::new()));
    let st = StringTransport::new();
    st.connect(site.channel());
    st.deliver(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let sent = rec.sent.borrow();
    assert_eq!(sent[0].url, "http://127.0.0.1/path/with%20space");
    assert_eq!(sent[0].headers.get_str("host"), Some("127.0.0.1"));
}

#[test]
fn hop_by_hop_headers_are_removed_and_x_forwarded_for_appended() {
    let (rec, st) = proxied();
    st.deliver(
        b"GET /p/x HTTP/1.1\r\nHost: front\r\nConnection: keep-alive, X-Secret\r\n\
          Keep-Alive: timeout=5\r\nProxy-Authorization: Basic abc\r\nProxy-Connection: keep-alive\r\n\
          TE: trailers\r\nTrailer: X-T\r\nUpgrade: websocket\r\nX-Secret: 1\r\n\
          Accept: a\r\nAccept: b\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
    );
    let sent = rec.sent.borrow();
    let h = &sent[0].headers;
    for gone in [
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "x-secret",
    ] {
        assert!(!h.contains(gone), "{gone} was forwarded: {h:?}");
    }
    // Every value of a repeated header is kept (Twisted keeps only the last).
    assert_eq!(h.get_all("accept").collect::<Vec<_>>(), [b"a", b"b"]);
    let xff = h.get_str("x-forwarded-for").unwrap();
    assert!(xff.starts_with("10.0.0.1, "), "{xff}");
    assert_eq!(h.get_all("x-forwarded-for").count(), 1);
}

#[test]
fn a_chunked_request_body_is_streamed_to_the_backend_chunked() {
    let (rec, st) = proxied();
    st.deliver(
        b"POST /p/form?a=1 HTTP/1.1\r\nHost: front\r\nContent-Type: text/plain\r\n\
          Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    );
    // The backend request is made at the head, before the body is complete.
    assert_eq!(rec.sent.borrow().len(), 1);
    assert!(!rec.sent.borrow()[0].body.as_ref().unwrap().2.called());
    st.deliver(b"6\r\n world\r\n0\r\n\r\n");
    let sent = rec.sent.borrow();
    assert_eq!(sent[0].method, "POST");
    assert_eq!(
        sent[0].body_sent().as_deref(),
        Some(&b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"[..])
    );
    assert!(!sent[0].headers.contains("transfer-encoding"));
    assert!(!sent[0].headers.contains("content-length"));
    assert_eq!(sent[0].headers.get_str("content-type"), Some("text/plain"));
}

#[test]
fn a_request_body_with_a_length_is_streamed_with_that_length() {
    let (rec, st) = proxied();
    st.deliver(b"PUT /p/f HTTP/1.1\r\nHost: front\r\nContent-Length: 11\r\n\r\nhello");
    {
        let sent = rec.sent.borrow();
        let (backend, _, done) = sent[0].body.as_ref().unwrap();
        assert_eq!(backend.value(), b"hello", "sent on as it came");
        assert!(!done.called());
    }
    st.deliver(b" world");
    assert_eq!(
        rec.sent.borrow()[0].body_sent().as_deref(),
        Some(&b"hello world"[..])
    );
}

#[test]
fn the_backend_response_is_copied_without_its_hop_by_hop_headers() {
    let (rec, st) = proxied();
    st.deliver(b"GET /p/x HTTP/1.1\r\nHost: front\r\n\r\n");
    let mut r = Response::from_bytes(201, "Made It", b"body!".to_vec());
    r.headers.add("Content-Type", "text/x-made");
    r.headers.add("Set-Cookie", "a=1");
    r.headers.add("Set-Cookie", "b=2");
    r.headers.add("Connection", "keep-alive, X-Hop");
    r.headers.add("X-Hop", "no");
    r.headers.add("Keep-Alive", "timeout=5");
    r.headers.add("Server", "backend/1");
    r.headers.add("Content-Length", "5");
    let answer = rec.sent.borrow_mut().remove(0).answer;
    answer.callback(r).unwrap();
    let o = out(&st);
    assert!(o.starts_with("HTTP/1.1 201 Made It\r\n"), "{o}");
    assert!(o.contains("\r\nContent-Type: text/x-made\r\n"), "{o}");
    assert!(
        o.contains("\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"),
        "{o}"
    );
    assert!(o.contains("\r\nContent-Length: 5\r\n"), "{o}");
    assert!(!o.contains("X-Hop") && !o.contains("Keep-Alive") && !o.contains("backend/1"));
    assert!(!o.contains("Transfer-Encoding"), "{o}");
    assert!(o.ends_with("\r\n\r\nbody!"), "{o}");
}

#[test]
fn a_failed_backend_gives_502() {
    let (rec, st) = proxied();
    st.deliver(b"GET /p/x HTTP/1.1\r\nHost: front\r\n\r\n");
    let answer = rec.sent.borrow_mut().remove(0).answer;
    answer
        .errback(ResponseNeverReceived::new(Failure::msg(
            "connection refused",
        )))
        .unwrap();
    let o = out(&st);
    assert!(o.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{o}");
    assert!(o.contains("<h1>Bad Gateway</h1>"), "{o}");
}

#[test]
fn a_client_gone_before_the_answer_cancels_the_backend_request() {
    let (rec, st) = proxied();
    st.deliver(b"GET /p/x HTTP/1.1\r\nHost: front\r\n\r\n");
    let cancelled = rec.sent.borrow()[0].cancelled.clone();
    assert!(!cancelled.get());
    st.connection_lost(Failure::msg("client gone"));
    assert!(cancelled.get());
}

// ----- over TCP -----

const WAIT: Duration = Duration::from_secs(10);

/// The backend: `/hello` in three writes (chunked), `/echo` the request body with what the
/// proxy told it, `/big` a streamed body of `BIG` bytes, `/forever` a body that never ends.
struct Backend {
    produced: Rc<Cell<usize>>,
    forever_lost: Rc<Cell<bool>>,
    peers: Rc<RefCell<Vec<String>>>,
}

const BIG: usize = 48 << 20;
const CHUNK: usize = 64 << 10;

struct Streamer {
    request: Request,
    paused: Cell<bool>,
    produced: Rc<Cell<usize>>,
    total: usize,
}

impl Producer for Streamer {
    fn pause_producing(&self) {
        self.paused.set(true);
    }
    fn resume_producing(&self) {
        self.paused.set(false);
        let chunk = vec![b'x'; CHUNK];
        while !self.paused.get() && self.produced.get() < self.total && !self.request.lost() {
            self.produced.set(self.produced.get() + CHUNK);
            self.request.write(&chunk);
        }
        if self.produced.get() >= self.total && !self.request.finished() {
            self.request.unregister_producer();
            self.request.finish();
        }
    }
    fn stop_producing(&self) {
        self.paused.set(true);
    }
}

impl Resource for Backend {
    fn is_leaf(&self) -> bool {
        true
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "HEAD", "POST"]
    }
    fn render_get(&self, r: &Request) -> Option<Render> {
        self.peers
            .borrow_mut()
            .push(format!("{:?}", r.get_client_address()));
        match r.path() {
            b"/b/hello" => {
                r.write(b"Hello");
                r.write(b", ");
                r.write(b"World!");
                r.finish();
                Some(Render::NotDoneYet)
            }
            b"/b/cut" => {
                // Sends one chunk, then drops the connection without the last chunk.
                r.write(b"0123456789");
                r.abort();
                Some(Render::NotDoneYet)
            }
            b"/b/big" | b"/b/forever" => {
                let total = if r.path() == b"/b/big" {
                    r.set_header("Content-Length", BIG.to_string());
                    BIG
                } else {
                    usize::MAX
                };
                let lost = self.forever_lost.clone();
                let _ = r.notify_finish().add_errback(move |_| {
                    lost.set(true);
                    Ok(())
                });
                let p = Rc::new(Streamer {
                    request: r.clone(),
                    paused: Cell::new(false),
                    produced: self.produced.clone(),
                    total,
                });
                r.register_producer(p.clone(), true).unwrap();
                p.resume_producing();
                Some(Render::NotDoneYet)
            }
            _ => None,
        }
    }
    fn render_post(&self, r: &Request) -> Option<Render> {
        let mut body = format!(
            "{} {} host={} xff={} len={}\n",
            String::from_utf8_lossy(r.method()),
            String::from_utf8_lossy(r.uri()),
            String::from_utf8_lossy(r.get_header("host").unwrap_or(b"")),
            String::from_utf8_lossy(r.get_header("x-forwarded-for").unwrap_or(b"")),
            String::from_utf8_lossy(r.get_header("content-length").unwrap_or(b"")),
        )
        .into_bytes();
        body.extend_from_slice(r.body());
        Some(body.into())
    }
}

struct Setup {
    reactor: Reactor,
    proxy_port: u16,
    produced: Rc<Cell<usize>>,
    forever_lost: Rc<Cell<bool>>,
    peers: Rc<RefCell<Vec<String>>>,
    _ports: Vec<ListeningPort>,
}

/// A backend site and a proxy site (`/` → backend `/b`), both on 127.0.0.1 port 0.
fn setup() -> Setup {
    let reactor = Reactor::new().unwrap();
    let produced = Rc::new(Cell::new(0));
    let forever_lost = Rc::new(Cell::new(false));
    let peers = Rc::new(RefCell::new(Vec::new()));
    let backend = Site::with_options(
        Rc::new(Backend {
            produced: produced.clone(),
            forever_lost: forever_lost.clone(),
            peers: peers.clone(),
        }),
        Rc::new(reactor.clone()),
        HttpLimits::default(),
        AccessLog::Off,
    );
    let opts = || twistor::transport::tcp::ListenOptions::on("127.0.0.1");
    let bport =
        twistor::transport::tcp::listen_tcp_with(&reactor, 0, Rc::new(backend), opts()).unwrap();
    let proxy = ReverseProxyResource::new("127.0.0.1", bport.port(), b"/b", &reactor);
    let front = Site::with_options(
        Rc::new(proxy),
        Rc::new(reactor.clone()),
        HttpLimits::default(),
        AccessLog::Off,
    );
    let fport =
        twistor::transport::tcp::listen_tcp_with(&reactor, 0, Rc::new(front), opts()).unwrap();
    Setup {
        reactor,
        proxy_port: fport.port(),
        produced,
        forever_lost,
        peers,
        _ports: vec![bport, fport],
    }
}

/// Runs the reactor until `done` or the deadline.
fn run_until(reactor: &Reactor, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < end, "timed out");
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
}

/// A blocking client in a thread; its result comes back over a channel.
fn client<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::sync::mpsc::Receiver<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

fn wait_for<T>(reactor: &Reactor, rx: &std::sync::mpsc::Receiver<T>) -> T {
    let got = RefCell::new(None);
    run_until(reactor, || {
        if got.borrow().is_none() {
            *got.borrow_mut() = rx.try_recv().ok();
        }
        got.borrow().is_some()
    });
    got.into_inner().unwrap()
}

/// Reads one response whose body is chunked or has a length; returns (head, body).
fn read_response(c: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut byte).unwrap(), 1, "closed in the head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if let Some(i) = lower.find("content-length: ") {
        let n: usize = lower[i + 16..]
            .split("\r\n")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        body.resize(n, 0);
        c.read_exact(&mut body).unwrap();
    } else if lower.contains("transfer-encoding: chunked") {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                c.read_exact(&mut byte).unwrap();
                line.push(byte[0]);
            }
            let size =
                usize::from_str_radix(std::str::from_utf8(&line[..line.len() - 2]).unwrap(), 16)
                    .unwrap();
            let mut chunk = vec![0u8; size + 2];
            c.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    (head, body)
}

#[test]
fn streams_a_chunked_answer_and_reuses_the_backend_connection() {
    let s = setup();
    let port = s.proxy_port;
    let rx = client(move || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        let mut answers = Vec::new();
        for _ in 0..2 {
            c.write_all(b"GET /hello HTTP/1.1\r\nHost: front\r\n\r\n")
                .unwrap();
            answers.push(read_response(&mut c));
        }
        let body = b"name=value";
        c.write_all(
            format!(
                "POST /echo?q=1 HTTP/1.1\r\nHost: front\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
        c.write_all(body).unwrap();
        answers.push(read_response(&mut c));
        answers
    });
    let answers = wait_for(&s.reactor, &rx);
    for (head, body) in &answers[..2] {
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
        assert_eq!(body, b"Hello, World!");
    }
    let echo = String::from_utf8_lossy(&answers[2].1).into_owned();
    let backend_port = s._ports[0].port();
    assert_eq!(
        echo,
        format!("POST /b/echo?q=1 host=127.0.0.1:{backend_port} xff=127.0.0.1 len=10\nname=value")
    );
    // The two GETs came over one pooled backend connection.
    let peers = s.peers.borrow();
    assert_eq!(peers.len(), 2);
    assert_eq!(peers[0], peers[1]);
}

#[test]
fn a_refused_backend_gives_502() {
    let reactor = Reactor::new().unwrap();
    let dead = util::unused_port();
    let front = Site::with_options(
        Rc::new(ReverseProxyResource::new("127.0.0.1", dead, b"", &reactor)),
        Rc::new(reactor.clone()),
        HttpLimits::default(),
        AccessLog::Off,
    );
    let port = twistor::transport::tcp::listen_tcp_with(
        &reactor,
        0,
        Rc::new(front),
        twistor::transport::tcp::ListenOptions::on("127.0.0.1"),
    )
    .unwrap()
    .port();
    let rx = client(move || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.write_all(b"GET /x HTTP/1.1\r\nHost: front\r\n\r\n")
            .unwrap();
        read_response(&mut c)
    });
    let (head, body) = wait_for(&reactor, &rx);
    assert!(head.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("Bad Gateway"));
}

#[test]
fn a_client_that_does_not_read_pauses_the_backend() {
    let s = setup();
    let port = s.proxy_port;
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let rx = client(move || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.write_all(b"GET /big HTTP/1.1\r\nHost: front\r\n\r\n")
            .unwrap();
        go_rx.recv().unwrap();
        let (head, body) = read_response(&mut c);
        (head, body.len(), body.iter().all(|&b| b == b'x'))
    });
    // Let the transfer run into the full buffers while the client reads nothing.
    let start = Instant::now();
    let mut last = usize::MAX;
    while start.elapsed() < Duration::from_millis(600) {
        s.reactor.iterate(Duration::from_millis(5)).unwrap();
        if start.elapsed() > Duration::from_millis(300) && last == usize::MAX {
            last = s.produced.get();
        }
    }
    let unread = s.produced.get();
    assert!(
        unread < BIG / 2,
        "{unread} bytes produced for a client reading nothing"
    );
    assert_eq!(unread, last, "the backend kept producing while paused");
    go_tx.send(()).unwrap();
    let (head, len, all_x) = wait_for(&s.reactor, &rx);
    assert!(head.contains(&format!("Content-Length: {BIG}")), "{head}");
    assert_eq!(len, BIG);
    assert!(all_x);
}

#[test]
fn a_client_that_goes_away_stops_the_backend_transfer() {
    let s = setup();
    let port = s.proxy_port;
    let rx = client(move || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.write_all(b"GET /forever HTTP/1.1\r\nHost: front\r\n\r\n")
            .unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0;
        while got < 1 << 20 {
            got += c.read(&mut buf).unwrap();
        }
        got
    });
    assert!(wait_for(&s.reactor, &rx) >= 1 << 20);
    // The client's socket is closed (the thread ended): the backend's request must end too.
    let lost = s.forever_lost.clone();
    run_until(&s.reactor, || lost.get());
}

#[test]
fn a_backend_that_fails_mid_body_cuts_the_client_response() {
    let s = setup();
    let port = s.proxy_port;
    let rx = client(move || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        c.write_all(b"GET /cut HTTP/1.1\r\nHost: front\r\n\r\n")
            .unwrap();
        util::read_to_eof(&mut c)
    });
    let got = String::from_utf8(wait_for(&s.reactor, &rx)).unwrap();
    // The chunk that came is relayed, then the connection closes without the last chunk:
    // the client sees a truncated response, not a complete one.
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("Transfer-Encoding: chunked\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\na\r\n0123456789\r\n"), "{got}");
}

//! The HTTP client on real sockets (127.0.0.1, port 0, every wait bounded): a small canned
//! HTTP server written with twistor protocols answers; the tests check pool reuse, the retry
//! on a dead pooled connection, chunked and gzip bodies, redirects, timeouts, refused
//! connections and HTTPS with a CA made at run time.

mod tlsutil;
mod util;

use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::Failure;
use twistor::prelude::*;
use twistor::transport::tcp::listen_tcp_with;
use twistor::web::client::error::*;
use twistor::web::client::*;

/// What the canned server does with one request (path, connection-local request number).
type Answer = Rc<dyn Fn(&str, u32) -> Action>;

enum Action {
    Reply(Vec<u8>),
    ReplyAndClose(Vec<u8>),
    Close,
    Silent,
}

struct Canned {
    buf: Vec<u8>,
    served: u32,
    answer: Answer,
    conns: Rc<Cell<u32>>,
}

impl Protocol for Canned {
    fn connection_made(&mut self, _cx: &Context<Self>) {
        self.conns.set(self.conns.get() + 1);
    }
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        self.buf.extend_from_slice(data);
        while let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if self.buf.len() < end + 4 + len {
                return;
            }
            self.buf.drain(..end + 4 + len);
            let path = head.split(' ').nth(1).unwrap_or("/").to_string();
            self.served += 1;
            match (self.answer)(&path, self.served) {
                Action::Reply(b) => cx.transport().write(&b),
                Action::ReplyAndClose(b) => {
                    cx.transport().write(&b);
                    cx.transport().lose_connection();
                }
                Action::Close => cx.transport().lose_connection(),
                Action::Silent => {}
            }
        }
    }
}

struct Server {
    reactor: Reactor,
    port: u16,
    conns: Rc<Cell<u32>>,
    _listening: twistor::transport::listener::ListeningPort,
}

fn serve(answer: impl Fn(&str, u32) -> Action + 'static) -> Server {
    let reactor = Reactor::new().unwrap();
    let conns = Rc::new(Cell::new(0));
    let answer: Answer = Rc::new(answer);
    let c = conns.clone();
    let listening = listen_tcp_with(
        &reactor,
        0,
        for_protocol(move || Canned {
            buf: Vec::new(),
            served: 0,
            answer: answer.clone(),
            conns: c.clone(),
        }),
        ListenOptions::on("127.0.0.1"),
    )
    .unwrap();
    Server {
        port: listening.port(),
        reactor,
        conns,
        _listening: listening,
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn wait<T: 'static>(reactor: &Reactor, d: &Deferred<T>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.has_result() {
        assert!(Instant::now() < deadline, "timed out waiting for a result");
        reactor.iterate(Duration::from_millis(10)).unwrap();
    }
}

fn fetch(
    reactor: &Reactor,
    agent: &impl HttpAgent,
    url: &str,
) -> Result<(Response, Vec<u8>), Failure> {
    let d = agent.request("GET", url, None, None);
    wait(reactor, &d);
    let r = result_of(&d)?;
    let b = read_body(&r);
    wait(reactor, &b);
    result_of(&b).map(|body| (r, body))
}

fn result_of<T: Clone + 'static>(d: &Deferred<T>) -> Result<T, Failure> {
    d.peek(|r| match r {
        Some(Ok(v)) => Ok(v.clone()),
        Some(Err(f)) => Err(f),
        None => panic!("no result yet"),
    })
}

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn pooled(reactor: &Reactor, options: AgentOptions) -> Agent {
    let pool = HttpConnectionPool::new(Rc::new(reactor.clone()));
    Agent::with_options(reactor, options, Some(pool))
}

#[test]
fn keep_alive_reuses_one_connection() {
    let s = serve(|path, _| Action::Reply(ok(path)));
    let agent = pooled(&s.reactor, AgentOptions::default());
    for i in 0..5 {
        let (_, body) = fetch(&s.reactor, &agent, &s.url(&format!("/{i}"))).unwrap();
        assert_eq!(body, format!("/{i}").as_bytes());
    }
    assert_eq!(s.conns.get(), 1);
    // The default agent closes after each request.
    let plain = Agent::new(&s.reactor);
    fetch(&s.reactor, &plain, &s.url("/a")).unwrap();
    fetch(&s.reactor, &plain, &s.url("/b")).unwrap();
    assert_eq!(s.conns.get(), 3);
}

#[test]
fn dead_pooled_connection_is_retried_once() {
    // Every connection answers its first request and silently drops its second one.
    let s = serve(|_, n| {
        if n == 1 {
            Action::Reply(ok("fresh"))
        } else {
            Action::Close
        }
    });
    let agent = pooled(&s.reactor, AgentOptions::default());
    fetch(&s.reactor, &agent, &s.url("/")).unwrap();
    let (_, body) = fetch(&s.reactor, &agent, &s.url("/")).unwrap();
    assert_eq!(body, b"fresh");
    assert_eq!(s.conns.get(), 2, "the retry used a new connection");
    // A POST is not retried.
    let d = agent.request("POST", &s.url("/"), None, None);
    wait(&s.reactor, &d);
    let f = result_of(&d).unwrap_err();
    assert!(f.is::<ResponseNeverReceived>(), "{f}");
}

#[test]
fn chunked_and_close_delimited_bodies() {
    let s = serve(|path, _| {
        match path {
        "/chunked" => Action::Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".to_vec()),
        _ => Action::ReplyAndClose(b"HTTP/1.0 200 OK\r\n\r\nuntil close".to_vec()),
    }
    });
    let agent = pooled(&s.reactor, AgentOptions::default());
    let (r, body) = fetch(&s.reactor, &agent, &s.url("/chunked")).unwrap();
    assert_eq!((r.length, body.as_slice()), (None, &b"hello world"[..]));
    let (_, body) = fetch(&s.reactor, &agent, &s.url("/close")).unwrap();
    assert_eq!(body, b"until close");
}

#[test]
fn large_body_streams_through() {
    let big = "x".repeat(4 << 20);
    let s = serve(move |_, _| Action::Reply(ok(&big)));
    let agent = Agent::new(&s.reactor);
    let (_, body) = fetch(&s.reactor, &agent, &s.url("/")).unwrap();
    assert_eq!(body.len(), 4 << 20);
}

#[test]
fn gzip_and_redirects_together() {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b"compressed hello").unwrap();
    let z = e.finish().unwrap();
    let s = serve(move |path, _| match path {
        "/start" => Action::Reply(
            b"HTTP/1.1 302 Found\r\nLocation: sub/next\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        "/sub/next" => Action::Reply(
            b"HTTP/1.1 301 Moved\r\nLocation: ../final\r\nContent-Length: 3\r\n\r\nxyz".to_vec(),
        ),
        "/final" => {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                z.len()
            )
            .into_bytes();
            r.extend_from_slice(&z);
            Action::Reply(r)
        }
        _ => Action::Reply(b"HTTP/1.1 404 Nope\r\nContent-Length: 0\r\n\r\n".to_vec()),
    });
    let agent = RedirectAgent::new(ContentDecoderAgent::new(pooled(
        &s.reactor,
        AgentOptions::default(),
    )));
    let (r, body) = fetch(&s.reactor, &agent, &s.url("/start")).unwrap();
    assert_eq!(body, b"compressed hello");
    assert_eq!(r.previous_response().map(|p| p.code), Some(301));
    assert_eq!(
        s.conns.get(),
        1,
        "redirect bodies drained, the connection reused"
    );
}

#[test]
fn response_timeout_aborts_a_silent_server() {
    let s = serve(|_, _| Action::Silent);
    let opts = AgentOptions {
        response_timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let agent = Agent::with_options(&s.reactor, opts, None);
    let started = Instant::now();
    let f = fetch(&s.reactor, &agent, &s.url("/")).unwrap_err();
    let e = f
        .downcast_ref::<ResponseNeverReceived>()
        .expect("ResponseNeverReceived");
    assert!(e.has::<ResponseTimeout>(), "{f}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn refused_connection_is_reported() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let reactor = Reactor::new().unwrap();
    let agent = Agent::new(&reactor);
    let f = fetch(&reactor, &agent, &format!("http://127.0.0.1:{port}/")).unwrap_err();
    assert!(f.to_string().to_lowercase().contains("refused"), "{f}");
}

#[test]
fn https_verified_with_a_named_ca_and_refused_without() {
    let ca = tlsutil::Ca::new("web client test CA");
    let leaf = ca.server(&["localhost"]);
    let reactor = Reactor::new().unwrap();
    let conns = Rc::new(Cell::new(0));
    let answer: Answer = Rc::new(|_, _| Action::Reply(ok("secret")));
    let c = conns.clone();
    let port = twistor::tls::listen_ssl(
        &reactor,
        0,
        for_protocol(move || Canned {
            buf: Vec::new(),
            served: 0,
            answer: answer.clone(),
            conns: c.clone(),
        }),
        &leaf.server_options(),
        ListenOptions::on("127.0.0.1"),
    )
    .unwrap();
    let url = format!("https://localhost:{}/", port.port());
    let trusted = Agent::with_options(
        &reactor,
        AgentOptions {
            https_policy: HttpsPolicy::with_trust_roots(ca.roots()),
            ..Default::default()
        },
        None,
    );
    let (_, body) = fetch(&reactor, &trusted, &url).unwrap();
    assert_eq!(body, b"secret");
    let other = tlsutil::Ca::new("another CA");
    let untrusted = Agent::with_options(
        &reactor,
        AgentOptions {
            https_policy: HttpsPolicy::with_trust_roots(other.roots()),
            ..Default::default()
        },
        None,
    );
    let f = fetch(&reactor, &untrusted, &url).unwrap_err();
    assert!(
        f.is::<twistor::tls::TlsError>() || format!("{f:?}").contains("certificate"),
        "{f:?}"
    );
}

/// A CONNECT proxy on a thread: records each request line; refuses with 407 when `refuse`,
/// else connects to the named port on 127.0.0.1, says 200 and relays bytes both ways.
fn connect_proxy(refuse: bool) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let mut reader = BufReader::new(client.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            log.lock().unwrap().push(first.trim_end().to_string());
            if refuse {
                let _ = client.write_all(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
                );
                continue;
            }
            let target_port: u16 = first
                .split(' ')
                .nth(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let Ok(mut origin) = std::net::TcpStream::connect(("127.0.0.1", target_port)) else {
                continue;
            };
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .unwrap();
            let mut origin_read = origin.try_clone().unwrap();
            let mut client_write = client.try_clone().unwrap();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut origin_read, &mut client_write);
                let _ = client_write.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                // What the reader buffered past the head goes first.
                let _ = origin.write_all(reader.buffer());
                let mut rest = reader.into_inner();
                let _ = std::io::copy(&mut rest, &mut origin);
                let _ = origin.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, seen)
}

#[test]
fn https_through_a_proxy_goes_in_a_verified_tunnel() {
    let ca = tlsutil::Ca::new("tunnel test CA");
    let leaf = ca.server(&["localhost"]);
    let reactor = Reactor::new().unwrap();
    let answer: Answer = Rc::new(|path, _| Action::Reply(ok(&format!("secret at {path}"))));
    let origin = twistor::tls::listen_ssl(
        &reactor,
        0,
        for_protocol(move || Canned {
            buf: Vec::new(),
            served: 0,
            answer: answer.clone(),
            conns: Rc::default(),
        }),
        &leaf.server_options(),
        ListenOptions::on("127.0.0.1"),
    )
    .unwrap();
    let (proxy_port, seen) = connect_proxy(false);
    let pool = HttpConnectionPool::new(Rc::new(reactor.clone()));
    let agent = Agent::with_options(
        &reactor,
        AgentOptions {
            https_policy: HttpsPolicy::with_trust_roots(ca.roots()),
            ..Default::default()
        },
        Some(pool),
    )
    .via_proxy(&format!("http://127.0.0.1:{proxy_port}"))
    .unwrap();
    let url = format!("https://localhost:{}/a?b=1", origin.port());
    let (response, body) = fetch(&reactor, &agent, &url).unwrap();
    assert_eq!(response.code, 200);
    assert_eq!(
        body, b"secret at /a?b=1",
        "the origin got the origin-form target"
    );
    // A second request reuses the tunnel.
    let (_, body) = fetch(&reactor, &agent, &url).unwrap();
    assert_eq!(body, b"secret at /a?b=1");
    assert_eq!(
        *seen.lock().unwrap(),
        [format!("CONNECT localhost:{} HTTP/1.1", origin.port())],
        "one tunnel, and the proxy saw nothing but its CONNECT"
    );

    // The origin is still verified through the tunnel.
    let other = tlsutil::Ca::new("another CA");
    let untrusted = Agent::with_options(
        &reactor,
        AgentOptions {
            https_policy: HttpsPolicy::with_trust_roots(other.roots()),
            ..Default::default()
        },
        None,
    )
    .via_proxy(&format!("http://127.0.0.1:{proxy_port}"))
    .unwrap();
    let f = fetch(&reactor, &untrusted, &url).unwrap_err();
    assert!(format!("{f:?}").contains("ertificate"), "{f:?}");
}

#[test]
fn a_proxy_that_refuses_the_tunnel_fails_the_request_with_its_answer() {
    let reactor = Reactor::new().unwrap();
    let (proxy_port, seen) = connect_proxy(true);
    let agent = Agent::new(&reactor)
        .via_proxy(&format!("http://127.0.0.1:{proxy_port}"))
        .unwrap();
    let f = fetch(&reactor, &agent, "https://origin.invalid/").unwrap_err();
    assert!(f.is::<ProxyTunnelError>(), "{f:?}");
    assert!(f.to_string().contains("407"), "{f}");
    assert_eq!(
        *seen.lock().unwrap(),
        ["CONNECT origin.invalid:443 HTTP/1.1"]
    );
}

#[test]
fn example_follows_its_redirect() {
    let out = util::bounded(20, || util::run_example("web_client", &[]));
    assert_eq!(out, "200 OK\nHello from the page!\n");
}

#[test]
fn a_paused_body_stops_reading_from_the_socket() {
    let big = "y".repeat(16 << 20);
    let s = serve(move |_, _| Action::Reply(ok(&big)));
    let agent = Agent::new(&s.reactor);
    let d = agent.request("GET", &s.url("/"), None, None);
    wait(&s.reactor, &d);
    let response = result_of(&d).unwrap();
    struct Count(Rc<Cell<usize>>, Rc<Cell<bool>>);
    impl Protocol for Count {
        fn connection_made(&mut self, cx: &Context<Self>) {
            cx.transport().pause_producing();
        }
        fn data_received(&mut self, _: &Context<Self>, d: &[u8]) {
            self.0.set(self.0.get() + d.len());
        }
        fn connection_lost(&mut self, _: &Context<Self>, why: Failure) {
            self.1.set(why.is::<ResponseDone>());
        }
    }
    let (got, done) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(false)));
    let h = response
        .deliver_body(Count(got.clone(), done.clone()))
        .unwrap();
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        s.reactor.iterate(Duration::from_millis(10)).unwrap();
    }
    assert!(
        got.get() < 4 << 20,
        "paused, yet {} bytes were read",
        got.get()
    );
    h.with(|_, cx| cx.transport().resume_producing());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done.get() {
        assert!(
            Instant::now() < deadline,
            "body not complete: {}",
            got.get()
        );
        s.reactor.iterate(Duration::from_millis(10)).unwrap();
    }
    assert_eq!(got.get(), 16 << 20);
}

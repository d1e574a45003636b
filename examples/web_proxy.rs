//! A reverse proxy in front of a small backend site, both on one reactor (Twisted's
//! `ReverseProxyResource` howto).
//!
//! ```python
//! from twisted.internet import reactor
//! from twisted.web import proxy, server
//!
//! site = server.Site(proxy.ReverseProxyResource("127.0.0.1", 8081, b""))
//! reactor.listenTCP(8080, site)
//! reactor.run()
//! ```
//!
//! The backend answers `/` (a greeting), `/chunked` (a body in three writes, sent chunked)
//! and `/echo` (a POST's body sent back); the proxy forwards everything to it. Both listen
//! on 127.0.0.1, the proxy on `--port` (default 8080), the backend on a free port.
//!
//! Run: `cargo run --example web_proxy -- --port 8080`, then
//! `curl http://127.0.0.1:8080/` or `curl --data-binary hello http://127.0.0.1:8080/echo`.
//! With `--self-test` it fetches both pages through the proxy, checks them and exits (0 if
//! right).

use std::rc::Rc;
use std::time::Duration;

use twistor::prelude::*;
use twistor::transport::tcp::listen_tcp_with;
use twistor::web::client::{Agent, BytesProducer, HttpAgent, read_body};
use twistor::web::proxy::ReverseProxyResource;
use twistor::web::resource::{Render, Resource, Tree};
use twistor::web::{Request, Site};

/// `GET /` on the backend.
struct Greeting;

impl Resource for Greeting {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Option<Render> {
        r.set_header("Content-Type", "text/plain");
        Some(Render::Static(b"Hello from the backend!\n"))
    }
}

/// A body written in pieces without a length: HTTP/1.1 clients get it chunked.
struct Chunked;

impl Resource for Chunked {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Option<Render> {
        r.set_header("Content-Type", "text/plain");
        for part in [&b"one "[..], b"two ", b"three\n"] {
            r.write(part);
        }
        r.finish();
        Some(Render::NotDoneYet)
    }
}

/// Answers a POST or PUT with its body.
struct Echo;

impl Resource for Echo {
    fn is_leaf(&self) -> bool {
        true
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["POST", "PUT"]
    }
    fn render_post(&self, r: &Request) -> Option<Render> {
        r.set_header("Content-Type", "application/octet-stream");
        Some(r.body().to_vec().into())
    }
    fn render_put(&self, r: &Request) -> Option<Render> {
        self.render_post(r)
    }
}

fn fail(why: &str) -> ! {
    eprintln!("web_proxy: {why}");
    std::process::exit(1)
}

/// Fetches `/` and POSTs to `/echo` through the proxy; true if both answers are right.
fn self_test(reactor: &Reactor, url: &str) -> bool {
    let agent = Agent::new(reactor);
    let get = agent
        .request("GET", url, None, None)
        .add_callback_deferred(|r| read_body(&r));
    let echo = agent
        .request(
            "POST",
            &format!("{url}echo"),
            None,
            Some(Rc::new(BytesProducer::new("ping through the proxy"))),
        )
        .add_callback_deferred(|r| read_body(&r));
    let both = twistor::defer::gather_results(vec![get, echo]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !both.has_result() && std::time::Instant::now() < deadline {
        if let Err(e) = reactor.iterate(Duration::from_millis(10)) {
            fail(&e.to_string());
        }
    }
    let result = std::rc::Rc::new(std::cell::RefCell::new(None));
    let slot = result.clone();
    let _ = both.add_both(move |r| {
        *slot.borrow_mut() = Some(r);
        Ok(())
    });
    let got = result.borrow_mut().take();
    match got {
        Some(Ok(bodies)) => {
            let ok =
                bodies[0] == b"Hello from the backend!\n" && bodies[1] == b"ping through the proxy";
            println!(
                "self-test: {} ({:?}, {:?})",
                if ok { "ok" } else { "WRONG" },
                String::from_utf8_lossy(&bodies[0]),
                String::from_utf8_lossy(&bodies[1])
            );
            ok
        }
        Some(Err(f)) => {
            println!("self-test: failed: {f}");
            false
        }
        None => {
            println!("self-test: no answer in 10 s");
            false
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = match args.iter().position(|a| a == "--port") {
        Some(i) => match args.get(i + 1).and_then(|p| p.parse().ok()) {
            Some(p) => p,
            None => fail("--port wants a number"),
        },
        None => 8080,
    };
    let reactor = Reactor::new().unwrap_or_else(|e| fail(&format!("no reactor: {e}")));

    let backend = Tree::new();
    backend.put_child(b"", Rc::new(Greeting));
    backend.put_child(b"chunked", Rc::new(Chunked));
    backend.put_child(b"echo", Rc::new(Echo));
    let backend = Site::new(Rc::new(backend), Rc::new(reactor.clone()));
    let backend_port = listen_tcp_with(
        &reactor,
        0,
        Rc::new(backend),
        ListenOptions::on("127.0.0.1"),
    )
    .unwrap_or_else(|e| fail(&format!("backend: {e}")));

    let proxy = ReverseProxyResource::new("127.0.0.1", backend_port.port(), b"", &reactor);
    let front = Site::new(Rc::new(proxy), Rc::new(reactor.clone()));
    let front_port = listen_tcp_with(
        &reactor,
        port,
        Rc::new(front),
        ListenOptions::on("127.0.0.1"),
    )
    .unwrap_or_else(|e| fail(&format!("port {port}: {e}")));
    let url = format!("http://127.0.0.1:{}/", front_port.port());
    println!("web_proxy listening on tcp:127.0.0.1:{}", front_port.port());
    println!("backend listening on tcp:127.0.0.1:{}", backend_port.port());
    println!("open {url}");

    if args.iter().any(|a| a == "--self-test") {
        std::process::exit(if self_test(&reactor, &url) { 0 } else { 1 });
    }
    if let Err(e) = reactor.run() {
        fail(&e.to_string());
    }
}

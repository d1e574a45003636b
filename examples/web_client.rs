//! The HTTP client: fetch a URL with an `Agent` behind a `RedirectAgent` and a
//! `ContentDecoderAgent`, print the status and the body.
//!
//! ```python
//! from twisted.internet import task
//! from twisted.web.client import Agent, RedirectAgent, ContentDecoderAgent, GzipDecoder, readBody
//!
//! def main(reactor, url):
//!     agent = RedirectAgent(ContentDecoderAgent(Agent(reactor), [(b"gzip", GzipDecoder)]))
//!     d = agent.request(b"GET", url.encode())
//!     def got(response):
//!         print(response.code, response.phrase.decode())
//!         return readBody(response).addCallback(lambda body: print(body.decode()))
//!     return d.addCallback(got)
//! ```
//!
//! Run: `cargo run --example web_client -- http://127.0.0.1:8080/`. Without a URL it starts a
//! small server of its own on 127.0.0.1 (a redirect, then a page) and fetches from it.

use std::time::Duration;

use twistor::prelude::*;
use twistor::transport::tcp::listen_tcp_with;
use twistor::web::client::{Agent, ContentDecoderAgent, HttpAgent, RedirectAgent, read_body};

/// A canned server: `/` redirects to `/page`, which answers a short text.
struct Demo {
    buf: Vec<u8>,
}

impl Protocol for Demo {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        self.buf.extend_from_slice(data);
        while let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = self.buf.drain(..end + 4).collect();
            let reply: &[u8] = if head.starts_with(b"GET / ") {
                b"HTTP/1.1 302 Found\r\nLocation: /page\r\nContent-Length: 0\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n\r\nHello from the page!\n"
            };
            cx.transport().write(reply);
        }
    }
}

fn main() {
    let url = std::env::args().nth(1);
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("web_client: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    let (url, _server) = match url {
        Some(u) => (u, None),
        None => {
            let port = match listen_tcp_with(
                &reactor,
                0,
                for_protocol(|| Demo { buf: Vec::new() }),
                ListenOptions::on("127.0.0.1"),
            ) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("web_client: cannot listen: {e}");
                    std::process::exit(1);
                }
            };
            (format!("http://127.0.0.1:{}/", port.port()), Some(port))
        }
    };
    let agent = RedirectAgent::new(ContentDecoderAgent::new(Agent::new(&reactor)));
    let done = agent
        .request("GET", &url, None, None)
        .add_callback_deferred(|response| {
            println!("{} {}", response.code, response.phrase);
            read_body(&response)
        })
        .add_both(|result| {
            match result {
                Ok(body) => print!("{}", String::from_utf8_lossy(&body)),
                Err(f) => eprintln!("web_client: {f}"),
            }
            Ok(())
        });
    while !done.has_result() {
        if let Err(e) = reactor.iterate(Duration::from_millis(50)) {
            eprintln!("web_client: {e}");
            std::process::exit(1);
        }
    }
}

//! A page answered later: the render returns a Deferred that a `call_later` fires, and the
//! reactor serves other requests meanwhile (Twisted's "asynchronous responses" howto).
//!
//! Run: `cargo run --example web_later -- --port 8080 [--delay SECS]`

use std::rc::Rc;

use twistor::Deferred;
use twistor::prelude::*;
use twistor::web::resource::{Render, Resource};
use twistor::web::{Request, Site};

struct DelayedPage {
    reactor: Reactor,
    delay: f64,
}

impl Resource for DelayedPage {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, request: &Request) -> Option<Render> {
        request.set_header("Content-Type", "text/plain");
        let (d, answer) = Deferred::new();
        let delay = self.delay;
        self.reactor.call_later(delay, move || {
            let _ = answer.callback(format!("Sorry to keep you waiting {delay} s.").into_bytes());
        });
        Some(Render::Later(d))
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let port: u16 = arg("--port").and_then(|p| p.parse().ok()).unwrap_or(8080);
    let delay: f64 = arg("--delay").and_then(|p| p.parse().ok()).unwrap_or(1.0);
    let reactor = Reactor::new().unwrap_or_else(|e| {
        eprintln!("web_later: cannot create the reactor: {e}");
        std::process::exit(1)
    });
    let page = DelayedPage {
        reactor: reactor.clone(),
        delay,
    };
    let site = Site::new(Rc::new(page), Rc::new(reactor.clone()));
    let listening = match listen_tcp(&reactor, port, Rc::new(site)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("web_later: {e}");
            std::process::exit(1);
        }
    };
    println!("web_later listening on tcp:127.0.0.1:{}", listening.port());
    if let Err(e) = reactor.run() {
        eprintln!("web_later: {e}");
        std::process::exit(1);
    }
}

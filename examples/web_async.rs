//! A page answered by an `async` block: it awaits Deferreds (here two `defer_later_value`s) as
//! Twisted's `async def render` pages do with `ensureDeferred`.
//!
//! Run: `cargo run --example web_async -- --port 8080`

use std::rc::Rc;

use twistor::prelude::*;
use twistor::task::defer_later_value;
use twistor::web::resource::{Render, Resource};
use twistor::web::{Request, Site};

struct AsyncPage {
    reactor: Reactor,
}

impl Resource for AsyncPage {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, request: &Request) -> Option<Render> {
        request.set_header("Content-Type", "text/plain");
        let reactor = self.reactor.clone();
        Some(Render::from_async(async move {
            let first = defer_later_value(reactor.clone(), 0.05, "first").await?;
            let second = defer_later_value(reactor, 0.05, "second").await?;
            Ok(format!("{first}, then {second}").into_bytes())
        }))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args
        .iter()
        .position(|a| a == "--port")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let reactor = Reactor::new().unwrap_or_else(|e| {
        eprintln!("web_async: cannot create the reactor: {e}");
        std::process::exit(1)
    });
    let page = AsyncPage {
        reactor: reactor.clone(),
    };
    let site = Site::new(Rc::new(page), Rc::new(reactor.clone()));
    let listening = match listen_tcp(&reactor, port, Rc::new(site)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("web_async: {e}");
            std::process::exit(1);
        }
    };
    println!("web_async listening on tcp:127.0.0.1:{}", listening.port());
    if let Err(e) = reactor.run() {
        eprintln!("web_async: {e}");
        std::process::exit(1);
    }
}

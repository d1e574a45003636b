//! A page whose `async` render awaits the HTTP client: `/` asks `/data` (another resource of
//! the same site, standing for a backend service) with an `Agent` and answers with what it
//! got, as a Twisted page does with `ensureDeferred` and `treq`/`Agent` inside
//! `async def render_GET`.
//!
//! ```python
//! class Page(resource.Resource):
//!     isLeaf = True
//!     def render_GET(self, request):
//!         async def answer():
//!             response = await agent.request(b"GET", data_url)
//!             body = await readBody(response)
//!             request.write(b"The data service said: " + body)
//!             request.finish()
//!         ensureDeferred(answer())
//!         return server.NOT_DONE_YET
//! ```
//!
//! Run: `cargo run --example web_async_client -- --port 8080`, then `curl http://127.0.0.1:8080/`.

use std::cell::Cell;
use std::rc::Rc;

use twistor::prelude::*;
use twistor::transport::tcp::listen_tcp_with;
use twistor::web::client::{Agent, HttpAgent, HttpConnectionPool, read_body};
use twistor::web::resource::{Render, Resource, Tree};
use twistor::web::{Request, Site};

/// The "backend": a fixed answer.
struct Data;

impl Resource for Data {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Option<Render> {
        r.set_header("Content-Type", "text/plain");
        Some(Render::Static(b"forty-two"))
    }
}

/// Answers after awaiting the client's request to `/data`.
struct Page {
    agent: Agent,
    /// The port the site listens on, known once listening.
    port: Rc<Cell<u16>>,
}

impl Resource for Page {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Option<Render> {
        r.set_header("Content-Type", "text/plain");
        let agent = self.agent.clone();
        let url = format!("http://127.0.0.1:{}/data", self.port.get());
        Some(Render::from_async(async move {
            let response = agent.request("GET", &url, None, None).await?;
            let code = response.code;
            let body = read_body(&response).await?;
            Ok(format!(
                "The data service said ({code}): {}\n",
                String::from_utf8_lossy(&body)
            )
            .into_bytes())
        }))
    }
}

fn fail(why: &str) -> ! {
    eprintln!("web_async_client: {why}");
    std::process::exit(1)
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
    // A persistent pool: the page's requests to /data reuse one connection.
    let pool = HttpConnectionPool::new(Rc::new(reactor.clone()));
    let agent = Agent::with_options(&reactor, Default::default(), Some(pool));
    let own_port = Rc::new(Cell::new(0));
    let root = Tree::new();
    root.put_child(
        b"",
        Rc::new(Page {
            agent,
            port: own_port.clone(),
        }),
    );
    root.put_child(b"data", Rc::new(Data));
    let site = Site::new(Rc::new(root), Rc::new(reactor.clone()));
    let listening = listen_tcp_with(
        &reactor,
        port,
        Rc::new(site),
        ListenOptions::on("127.0.0.1"),
    )
    .unwrap_or_else(|e| fail(&format!("port {port}: {e}")));
    own_port.set(listening.port());
    println!(
        "web_async_client listening on tcp:127.0.0.1:{}",
        listening.port()
    );
    if let Err(e) = reactor.run() {
        fail(&e.to_string());
    }
}

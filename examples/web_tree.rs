//! The resource tree of Twisted's web howto: a dynamic page at `/`, a child resource at
//! `/hello/...` (a leaf: it sees the rest of the path), and a form at `/form` that shows
//! itself on GET and greets on POST.
//!
//! Run: `cargo run --example web_tree -- --port 8080`, then open http://127.0.0.1:8080/

use std::cell::Cell;
use std::rc::Rc;

use twistor::prelude::*;
use twistor::web::resource::{Children, Render, Resource};
use twistor::web::{Request, Site};

/// The root: a page of its own (at the empty segment) and children.
#[derive(Default)]
struct Root {
    children: Children,
}

impl Resource for Root {
    fn children(&self) -> Option<&Children> {
        Some(&self.children)
    }
}

/// A dynamic page: counts its visits.
#[derive(Default)]
struct Home {
    visits: Cell<u64>,
}

impl Resource for Home {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, request: &Request) -> Option<Render> {
        self.visits.set(self.visits.get() + 1);
        request.set_header("Content-Type", "text/html; charset=utf-8");
        Some(
            format!(
                "<html><body><p>Visit number {}.</p><a href=\"/hello/world\">hello</a> <a href=\"/form\">form</a></body></html>",
                self.visits.get()
            )
            .into(),
        )
    }
}

/// `/hello/a/b`: greets the rest of the path.
struct Hello;

impl Resource for Hello {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, request: &Request) -> Option<Render> {
        let who: Vec<String> = request
            .postpath()
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        request.set_header("Content-Type", "text/plain; charset=utf-8");
        Some(format!("Hello, {}!", who.join(" ")).into())
    }
}

/// `/form`: GET shows the form, POST answers with what was typed (escaped).
struct Form;

impl Resource for Form {
    fn is_leaf(&self) -> bool {
        true
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "HEAD", "POST"]
    }
    fn render_get(&self, request: &Request) -> Option<Render> {
        request.set_header("Content-Type", "text/html; charset=utf-8");
        Some(Render::Static(
            b"<html><body><form method=\"POST\"><input name=\"name\"><input type=\"submit\"></form></body></html>",
        ))
    }
    fn render_post(&self, request: &Request) -> Option<Render> {
        let name = request.arg(b"name").unwrap_or_default();
        let name = String::from_utf8_lossy(&name)
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        request.set_header("Content-Type", "text/html; charset=utf-8");
        Some(format!("<html><body>You submitted: {name}</body></html>").into())
    }
}

fn port_arg() -> u16 {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--port") {
        Some(i) => match args.get(i + 1).and_then(|p| p.parse().ok()) {
            Some(p) => p,
            None => {
                eprintln!("usage: {} [--port PORT]", args[0]);
                std::process::exit(2);
            }
        },
        None => 8080,
    }
}

fn main() {
    let port = port_arg();
    let reactor = Reactor::new().unwrap_or_else(|e| {
        eprintln!("web_tree: cannot create the reactor: {e}");
        std::process::exit(1)
    });
    let root = Root::default();
    root.put_child(b"", Rc::new(Home::default()));
    root.put_child(b"hello", Rc::new(Hello));
    root.put_child(b"form", Rc::new(Form));
    let site = Site::new(Rc::new(root), Rc::new(reactor.clone()));
    let listening = match listen_tcp(&reactor, port, Rc::new(site)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("web_tree: {e}");
            std::process::exit(1);
        }
    };
    println!("web_tree listening on tcp:127.0.0.1:{}", listening.port());
    if let Err(e) = reactor.run() {
        eprintln!("web_tree: {e}");
        std::process::exit(1);
    }
}

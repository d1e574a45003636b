//! Static files under a dynamic page (Twisted's web howto "Serving static content from a
//! directory"):
//!
//! ```python
//! from twisted.web.server import Site
//! from twisted.web.static import File
//! from twisted.internet import reactor, endpoints
//!
//! resource = File(".")
//! factory = Site(resource)
//! endpoint = endpoints.TCP4ServerEndpoint(reactor, 8888)
//! endpoint.listen(factory)
//! reactor.run()
//! ```
//!
//! Serves `--path DIR` (default: a temporary directory this example fills with two files) at
//! `/static/`, next to a page at `/` that links to it. Ranges, conditional requests and the
//! directory listing come with `File`.
//!
//! Run: `cargo run --example web_static -- --port 8888 --path .`, then open
//! `http://127.0.0.1:8888/static/`, or `curl -r 0-9 http://127.0.0.1:8888/static/hello.txt`.
//! With `--self-test` it fetches a file whole and by range, checks them and exits (0 if
//! right).

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use twistor::prelude::*;
use twistor::transport::tcp::listen_tcp_with;
use twistor::web::client::{Agent, HttpAgent, read_body};
use twistor::web::resource::{Render, Resource, Tree};
use twistor::web::static_files::file::File;
use twistor::web::static_files::response::StaticFiles;
use twistor::web::{Headers, Request, Site};

/// The page at `/`.
struct Index;

impl Resource for Index {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Option<Render> {
        r.set_header("Content-Type", "text/html; charset=utf-8");
        Some(Render::Static(
            b"<html><body><a href=\"/static/\">the files</a></body></html>",
        ))
    }
}

fn fail(why: &str) -> ! {
    eprintln!("web_static: {why}");
    std::process::exit(2)
}

/// A directory with two files, for a run without `--path`.
fn sample_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twistor-web-static-{}", std::process::id()));
    let write = |name: &str, body: &[u8]| {
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join(name), body))
            .unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())))
    };
    write("hello.txt", b"Hello, static world!\n");
    write("index.html", b"<html><body>static index</body></html>\n");
    dir
}

/// Fetches `url` with `range` (if any); returns the body, or why not.
fn fetch(reactor: &Reactor, url: &str, range: Option<&str>) -> Result<(u16, Vec<u8>), String> {
    let mut headers = Headers::new();
    if let Some(r) = range {
        headers.set("Range", r);
    }
    let code = Rc::new(std::cell::Cell::new(0));
    let seen = code.clone();
    let d = Agent::new(reactor)
        .request("GET", url, Some(headers), None)
        .add_callback_deferred(move |r| {
            seen.set(r.code);
            read_body(&r)
        });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !d.has_result() && std::time::Instant::now() < deadline {
        reactor
            .iterate(Duration::from_millis(10))
            .map_err(|e| e.to_string())?;
    }
    let out = Rc::new(std::cell::RefCell::new(None));
    let slot = out.clone();
    let _ = d.add_both(move |r| {
        *slot.borrow_mut() = Some(r);
        Ok(())
    });
    let got = out.borrow_mut().take();
    match got {
        Some(Ok(body)) => Ok((code.get(), body)),
        Some(Err(f)) => Err(f.to_string()),
        None => Err("no answer in 10 s".into()),
    }
}

fn self_test(reactor: &Reactor, base: &str) -> bool {
    let checks = [
        (None, 200, &b"Hello, static world!\n"[..]),
        (Some("bytes=7-12"), 206, b"static"),
    ];
    let mut ok = true;
    for (range, want_code, want) in checks {
        match fetch(reactor, &format!("{base}static/hello.txt"), range) {
            Ok((code, body)) if code == want_code && body == want => {
                println!("self-test: {range:?}: {code} ok");
            }
            Ok((code, body)) => {
                println!(
                    "self-test: {range:?}: WRONG {code} {:?}",
                    String::from_utf8_lossy(&body)
                );
                ok = false;
            }
            Err(e) => {
                println!("self-test: {range:?}: failed: {e}");
                ok = false;
            }
        }
    }
    ok
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter().position(|a| a == flag).map(|i| {
            args.get(i + 1)
                .unwrap_or_else(|| fail(&format!("{flag} wants a value")))
        })
    };
    let port: u16 = match value("--port") {
        Some(p) => p.parse().unwrap_or_else(|_| fail("--port wants a number")),
        None => 8888,
    };
    let (dir, made) = match value("--path") {
        Some(p) => (PathBuf::from(p), false),
        None => (sample_dir(), true),
    };
    if !dir.is_dir() {
        fail(&format!("{}: not a directory", dir.display()));
    }
    let reactor = Reactor::new().unwrap_or_else(|e| fail(&format!("no reactor: {e}")));
    let root = Tree::new();
    root.put_child(b"", Rc::new(Index));
    root.put_child(b"static", Rc::new(File::new(StaticFiles::new(&dir))));
    let site = Site::new(Rc::new(root), Rc::new(reactor.clone()));
    let listening = listen_tcp_with(
        &reactor,
        port,
        Rc::new(site),
        ListenOptions::on("127.0.0.1"),
    )
    .unwrap_or_else(|e| fail(&format!("port {port}: {e}")));
    let base = format!("http://127.0.0.1:{}/", listening.port());
    println!("web_static serving {} at {base}static/", dir.display());

    let code = if args.iter().any(|a| a == "--self-test") {
        if self_test(&reactor, &base) { 0 } else { 1 }
    } else {
        match reactor.run() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("web_static: {e}");
                1
            }
        }
    };
    if made {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::process::exit(code);
}

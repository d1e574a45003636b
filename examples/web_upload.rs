//! Uploads of any size, streamed to a file with back-pressure. Twisted hands a resource the
//! body as `request.content`, spooled to a temporary file before the resource renders; here
//! the resource asks for the body as a stream (`BodyMode::Stream`) and writes it itself.
//!
//! `PUT` or `POST` to `/upload`: the body goes to a temporary file in batches of 1 MiB, each
//! written on a pool thread while the body is paused (`Request::pause_body`), so however fast
//! the client sends, the server holds about one batch plus one read of it. The answer is the
//! size and an FNV-1a checksum of what arrived; the file is removed afterwards unless `--keep`
//! is given (then its path is in the answer).
//!
//! Run: `cargo run --release --example web_upload -- --port 8080`, then try it with curl:
//!
//! ```sh
//! head -c 1G /dev/urandom > bigfile
//! curl -T bigfile http://127.0.0.1:8080/upload
//! ```
//!
//! `--port 0` picks a free port (printed); `--max BYTES` caps an upload (413 beyond);
//! `--self-test` uploads 16 MiB to itself over TCP, checks the answer and exits (0 if right).

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::Failure;
use twistor::prelude::*;
use twistor::web::resource::{Render, Resource};
use twistor::web::{BodyMode, BodyReceiver, Request, Site};

/// How much is gathered before it is written out (and the body paused meanwhile).
const BATCH: usize = 1 << 20;

fn fnv1a(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

struct UploadPage {
    reactor: Reactor,
    max: Option<u64>,
    keep: bool,
    count: Cell<u64>,
}

impl Resource for UploadPage {
    fn is_leaf(&self) -> bool {
        true
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["PUT", "POST"]
    }
    fn body_mode(&self, _request: &Request) -> BodyMode {
        BodyMode::Stream { max: self.max }
    }
    fn render_put(&self, request: &Request) -> Option<Render> {
        Some(self.receive(request))
    }
    fn render_post(&self, request: &Request) -> Option<Render> {
        Some(self.receive(request))
    }
}

impl UploadPage {
    fn receive(&self, request: &Request) -> Render {
        if request.postpath() != [b"upload".to_vec()] {
            request.set_response_code(404);
            return Render::Static(b"PUT or POST to /upload\n");
        }
        self.count.set(self.count.get() + 1);
        let path = std::env::temp_dir().join(format!(
            "twistor-upload-{}-{}",
            std::process::id(),
            self.count.get()
        ));
        let file = match File::create(&path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("web_upload: {}: {e}", path.display());
                request.set_response_code(500);
                return Render::Static(b"cannot store the upload\n");
            }
        };
        let sink = Rc::new(RefCell::new(Sink {
            request: request.clone(),
            reactor: self.reactor.clone(),
            file: Some(file),
            path,
            keep: self.keep,
            batch: Vec::with_capacity(BATCH),
            size: 0,
            hash: FNV_START,
            ended: None,
        }));
        // A streamed body is delivered once; this is the first time.
        let _ = request.deliver_body(ToFile(sink));
        Render::NotDoneYet
    }
}

/// One upload on its way to its file.
struct Sink {
    request: Request,
    reactor: Reactor,
    /// `None` while a batch is being written on a pool thread.
    file: Option<File>,
    path: PathBuf,
    keep: bool,
    batch: Vec<u8>,
    size: u64,
    hash: u64,
    ended: Option<Result<(), Failure>>,
}

struct ToFile(Rc<RefCell<Sink>>);

impl BodyReceiver for ToFile {
    fn data_received(&mut self, data: &[u8]) {
        let full = {
            let mut s = self.0.borrow_mut();
            s.size += data.len() as u64;
            s.hash = fnv1a(s.hash, data);
            s.batch.extend_from_slice(data);
            s.batch.len() >= BATCH && s.file.is_some()
        };
        if full {
            write_batch(&self.0);
        }
    }
    fn body_done(&mut self, result: Result<(), Failure>) {
        let idle = {
            let mut s = self.0.borrow_mut();
            s.ended = Some(result);
            s.file.is_some()
        };
        if idle {
            after_write(&self.0);
        }
    }
}

/// Hands the batch to a pool thread, the body paused until it is written.
fn write_batch(sink: &Rc<RefCell<Sink>>) {
    let (file, batch, reactor, request) = {
        let mut s = sink.borrow_mut();
        let batch = std::mem::replace(&mut s.batch, Vec::with_capacity(BATCH));
        (s.file.take(), batch, s.reactor.clone(), s.request.clone())
    };
    let Some(mut file) = file else {
        return;
    };
    request.pause_body();
    let (done, failed) = (sink.clone(), sink.clone());
    let _ = reactor
        .defer_to_thread_try(move || file.write_all(&batch).map(|()| file))
        .add_callbacks(
            move |file| {
                done.borrow_mut().file = Some(file);
                after_write(&done);
                Ok(())
            },
            move |f| {
                give_up(&failed, &f.to_string());
                Ok(())
            },
        );
}

/// A batch is written (or none was under way): write the next, go on reading, or answer.
fn after_write(sink: &Rc<RefCell<Sink>>) {
    let (ended, waiting, request) = {
        let s = sink.borrow();
        let ended: Option<Result<(), String>> = match &s.ended {
            None => None,
            Some(Ok(())) => Some(Ok(())),
            Some(Err(f)) => Some(Err(f.to_string())),
        };
        (ended, s.batch.len(), s.request.clone())
    };
    match ended {
        None if waiting >= BATCH => write_batch(sink),
        // No borrow held: resuming may deliver what waited at once.
        None => request.resume_body(),
        Some(Ok(())) if waiting > 0 => write_batch(sink),
        Some(Ok(())) => answer(sink),
        Some(Err(why)) => give_up(sink, &why),
    }
}

fn answer(sink: &Rc<RefCell<Sink>>) {
    let s = sink.borrow();
    let mut text = format!("{} bytes, fnv1a64 {:016x}", s.size, s.hash);
    if s.keep {
        text.push_str(&format!(", saved to {}", s.path.display()));
    } else {
        let _ = std::fs::remove_file(&s.path);
    }
    text.push('\n');
    let request = s.request.clone();
    drop(s);
    request.set_header("Content-Type", "text/plain; charset=utf-8");
    request.write_and_finish(text.as_bytes());
}

fn give_up(sink: &Rc<RefCell<Sink>>, why: &str) {
    let s = sink.borrow();
    eprintln!("web_upload: upload to {} failed: {why}", s.path.display());
    let _ = std::fs::remove_file(&s.path);
    let request = s.request.clone();
    drop(s);
    // A body that failed (too large, timed out, client gone) was answered by the server.
    if !request.finished() && !request.lost() {
        request.set_response_code(500);
        request.write_and_finish(b"the upload could not be stored\n");
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Uploads 16 MiB to `port` over TCP and checks the answer.
fn self_test(port: u16) -> Result<(), String> {
    const SIZE: usize = 16 << 20;
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "PUT /upload HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {SIZE}\r\n\r\n"
    );
    c.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    let mut chunk: Vec<u8> = (0..64 * 1024).map(|i| (i * 31 % 256) as u8).collect();
    let mut hash = FNV_START;
    for i in 0..SIZE / chunk.len() {
        chunk[..8].copy_from_slice(&(i as u64).to_le_bytes());
        hash = fnv1a(hash, &chunk);
        c.write_all(&chunk).map_err(|e| e.to_string())?;
    }
    let mut out = String::new();
    c.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let want = format!("{SIZE} bytes, fnv1a64 {hash:016x}\n");
    if out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with(&want) {
        Ok(())
    } else {
        Err(format!("unexpected answer: {out:?}"))
    }
}

fn main() {
    let port: u16 = arg("--port").and_then(|p| p.parse().ok()).unwrap_or(8080);
    let max = arg("--max").and_then(|m| m.parse().ok());
    let reactor = Reactor::new().unwrap_or_else(|e| {
        eprintln!("web_upload: cannot create the reactor: {e}");
        std::process::exit(1)
    });
    let page = UploadPage {
        reactor: reactor.clone(),
        max,
        keep: std::env::args().any(|a| a == "--keep"),
        count: Cell::new(0),
    };
    let site = Site::new(Rc::new(page), Rc::new(reactor.clone()));
    let listening = match listen_tcp(&reactor, port, Rc::new(site)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("web_upload: {e}");
            std::process::exit(1);
        }
    };
    println!("web_upload listening on tcp:127.0.0.1:{}", listening.port());
    if std::env::args().any(|a| a == "--self-test") {
        let port = listening.port();
        let client = std::thread::spawn(move || self_test(port));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !client.is_finished() && Instant::now() < deadline {
            if let Err(e) = reactor.iterate(Duration::from_millis(10)) {
                eprintln!("web_upload: {e}");
                std::process::exit(1);
            }
        }
        let outcome = if client.is_finished() {
            client
                .join()
                .unwrap_or_else(|_| Err("the client panicked".into()))
        } else {
            Err("no answer in 60 s".into())
        };
        match outcome {
            Ok(()) => println!("self-test: ok"),
            Err(e) => {
                println!("self-test: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Err(e) = reactor.run() {
        eprintln!("web_upload: {e}");
        std::process::exit(1);
    }
}

//! The HTTP server over real sockets: many keep-alive connections, many requests each.

#[path = "util/mod.rs"]
mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use twistor::prelude::*;
use twistor::transport::Producer;
use twistor::transport::tcp::{ListenOptions, listen_tcp_with};
use twistor::web::resource::{Render, Resource};
use twistor::web::site::AccessLog;
use twistor::web::{HttpLimits, Request, Site};

struct Hello;
impl Resource for Hello {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, _r: &Request) -> Option<Render> {
        Some(Render::Static(b"Hello, World!"))
    }
}

/// Reads responses totalling `len` bytes.
fn read_response(c: &mut TcpStream, buf: &mut Vec<u8>, len: usize) {
    buf.resize(len, 0);
    c.read_exact(buf).unwrap();
    assert!(buf.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(buf.ends_with(b"\r\n\r\nHello, World!"));
}

#[test]
fn a_thousand_keep_alive_connections_make_a_hundred_requests_each() {
    const CONNS: usize = 1000;
    const ROUNDS: usize = 100;
    util::bounded(60, || {
        let (tx, rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            let reactor = Reactor::new().unwrap();
            let site = Site::with_options(
                Rc::new(Hello),
                Rc::new(reactor.clone()),
                HttpLimits::default(),
                AccessLog::Off,
            );
            // A backlog for all the connections at once: a full queue drops SYNs, and the
            // client's retry waits a second.
            let opts = ListenOptions {
                backlog: 2048,
                ..ListenOptions::on("127.0.0.1")
            };
            let port = listen_tcp_with(&reactor, 0, Rc::new(site.clone()), opts).unwrap();
            tx.send((port.port(), reactor.thread_handle())).unwrap();
            reactor.run_without_signal_handlers().unwrap();
            site.served()
        });
        let (port, handle) = rx.recv().unwrap();
        let req = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
        let mut conns: Vec<TcpStream> = (0..CONNS)
            .map(|_| {
                let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                c.set_nodelay(true).unwrap();
                c
            })
            .collect();
        // The response's length, from the first one (the Date header has a fixed width).
        conns[0].write_all(req).unwrap();
        let mut first = Vec::new();
        let mut b = [0u8; 1];
        while !first.ends_with(b"Hello, World!") {
            conns[0].read_exact(&mut b).unwrap();
            first.push(b[0]);
        }
        let len = first.len();
        // Requests go ten at a time (pipelined) to keep the test's system calls few; the
        // server still answers them one by one, in order.
        const BATCH: usize = 10;
        let batch = req.repeat(BATCH);
        let mut buf = Vec::new();
        for round in 0..ROUNDS / BATCH {
            for (i, c) in conns.iter_mut().enumerate() {
                let skip = if round == 0 && i == 0 { req.len() } else { 0 };
                c.write_all(&batch[skip..]).unwrap();
            }
            for (i, c) in conns.iter_mut().enumerate() {
                let n = if round == 0 && i == 0 {
                    BATCH - 1
                } else {
                    BATCH
                };
                read_response(c, &mut buf, len * n);
            }
        }
        handle.stop();
        let served = server.join().unwrap();
        assert_eq!(served, (CONNS * ROUNDS) as u64);
    });
}

/// Streams `TOTAL` bytes in 64 KiB writes while the transport lets it (a push producer).
struct Streamer {
    request: Request,
    paused: std::cell::Cell<bool>,
    sent: Rc<std::cell::Cell<usize>>,
}

const TOTAL: usize = 64 << 20;
const CHUNK: usize = 64 << 10;

impl Producer for Streamer {
    fn pause_producing(&self) {
        self.paused.set(true);
    }
    fn resume_producing(&self) {
        self.paused.set(false);
        let chunk = vec![b'x'; CHUNK];
        while !self.paused.get() && self.sent.get() < TOTAL {
            self.sent.set(self.sent.get() + CHUNK);
            self.request.write(&chunk);
        }
        if self.sent.get() >= TOTAL && !self.request.finished() {
            self.request.unregister_producer();
            self.request.finish();
        }
    }
    fn stop_producing(&self) {
        self.paused.set(true);
    }
}

struct Big(Rc<std::cell::Cell<usize>>);
impl Resource for Big {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Option<Render> {
        r.set_header("Content-Length", TOTAL.to_string());
        let p = Rc::new(Streamer {
            request: r.clone(),
            paused: std::cell::Cell::new(false),
            sent: self.0.clone(),
        });
        r.register_producer(p.clone(), true).unwrap();
        p.resume_producing();
        Some(Render::NotDoneYet)
    }
}

#[test]
fn a_slow_reader_pauses_the_response_producer() {
    util::bounded(60, || {
        let (tx, rx) = std::sync::mpsc::channel();
        let (sent_tx, sent_rx) = std::sync::mpsc::channel();
        let server = std::thread::spawn(move || {
            let reactor = Reactor::new().unwrap();
            let sent = Rc::new(std::cell::Cell::new(0));
            let site = Site::with_options(
                Rc::new(Big(sent.clone())),
                Rc::new(reactor.clone()),
                HttpLimits::default(),
                AccessLog::Off,
            );
            let port = listen_tcp(&reactor, 0, Rc::new(site)).unwrap();
            tx.send((port.port(), reactor.thread_handle())).unwrap();
            // Report how much was produced while the client did not read.
            reactor.call_later(0.3, move || {
                sent_tx.send(sent.get()).unwrap();
            });
            reactor.run_without_signal_handlers().unwrap();
        });
        let (port, handle) = rx.recv().unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let produced_unread = sent_rx.recv().unwrap();
        assert!(
            produced_unread < TOTAL / 4,
            "{produced_unread} bytes produced for a client that read nothing"
        );
        let mut got = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        let mut head_seen = false;
        let mut pending = Vec::new();
        while got < TOTAL {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0, "closed after {got} body bytes");
            if head_seen {
                got += n;
            } else {
                pending.extend_from_slice(&buf[..n]);
                if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    head_seen = true;
                    got += pending.len() - i - 4;
                }
            }
        }
        assert_eq!(got, TOTAL);
        handle.stop();
        server.join().unwrap();
    });
}

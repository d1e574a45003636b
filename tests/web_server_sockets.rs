//! The HTTP server over real sockets: many keep-alive connections, many requests each.

#[path = "util/mod.rs"]
mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use twistor::prelude::*;
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

//! A connected-UDP client (the "Connected UDP" example of Twisted's UDP howto): the port is
//! connected to HOST:PORT, so it sends without naming the peer, hears only from it, and
//! learns through `connection_refused` when nothing listens there.
//!
//! Run: `cargo run --example udp_connected_client -- 127.0.0.1 9999 Hello` against
//! `udp_echo_server`; it prints the reply and exits. HOST must be an IP address literal.
//!
//! Exit codes: 0 the reply came; 1 an error (HOST not an address, no socket); 2 bad usage;
//! 3 refused (the peer's host answered that no one listens on PORT); 4 no answer at all
//! within 5 s (the datagram, three tries of it, or its reply was lost).

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use twistor::prelude::*;
use twistor::protocol::datagram::{DatagramContext, DatagramHandle, DatagramProtocol};
use twistor::transport::udp::{UdpListenOptions, listen_udp_with};

/// Tries before giving up, one per second: UDP may lose a datagram or its reply.
const TRIES: u32 = 3;
/// How long to wait for an answer after the first try.
const GIVE_UP_AFTER: f64 = 5.0;

const REPLIED: i32 = 0;
const ERROR: i32 = 1;
const REFUSED: i32 = 3;
const NO_ANSWER: i32 = 4;

struct Helloer {
    host: String,
    port: u16,
    text: Vec<u8>,
    /// The exit code once the outcome is known.
    outcome: Rc<Cell<Option<i32>>>,
    reactor: Reactor,
}

impl Helloer {
    fn finish(&self, code: i32) {
        if self.outcome.get().is_none() {
            self.outcome.set(Some(code));
            // Not running yet (a failure inside `listen_udp`): main sees the outcome instead.
            let _ = self.reactor.stop();
        }
    }

    fn send(&self, cx: &DatagramContext<Self>) {
        let Some(port) = cx.transport() else { return };
        if let Err(e) = port.write(&self.text, None) {
            eprintln!("udp_connected_client: cannot send: {e}");
            self.finish(ERROR);
        }
    }
}

impl DatagramProtocol for Helloer {
    fn start_protocol(&mut self, cx: &DatagramContext<Self>) {
        let Some(port) = cx.transport() else { return };
        match port.connect(&self.host, self.port) {
            Ok(()) => self.send(cx),
            Err(e) => {
                eprintln!("udp_connected_client: cannot connect: {e}");
                self.finish(ERROR);
            }
        }
    }

    fn datagram_received(&mut self, _cx: &DatagramContext<Self>, data: &[u8], from: SocketAddr) {
        if self.outcome.get().is_none() {
            println!("received \"{}\" from {from}", data.escape_ascii());
        }
        self.finish(REPLIED);
    }

    fn connection_refused(&mut self, _cx: &DatagramContext<Self>) {
        if self.outcome.get().is_none() {
            let peer = match self.host.parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, self.port).to_string(),
                Err(_) => format!("{}:{}", self.host, self.port),
            };
            println!("no one listening on {peer}");
        }
        self.finish(REFUSED);
    }
}

/// Sends again every second while no answer came, `left` more times.
fn resend(reactor: &Reactor, handle: DatagramHandle<Helloer>, left: u32) {
    if left == 0 {
        return;
    }
    let r = reactor.clone();
    reactor.call_later(1.0, move || {
        let _ = handle.with(|p, cx| {
            if p.outcome.get().is_none() {
                p.send(cx);
            }
        });
        resend(&r, handle, left - 1);
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, port, text] = &args[..] else {
        eprintln!("usage: udp_connected_client HOST PORT TEXT");
        std::process::exit(2);
    };
    let Ok(port) = port.parse::<u16>() else {
        eprintln!("usage: udp_connected_client HOST PORT TEXT: bad port {port:?}");
        std::process::exit(2);
    };
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("udp_connected_client: cannot create the reactor: {e}");
            std::process::exit(ERROR);
        }
    };
    let outcome = Rc::new(Cell::new(None));
    let helloer = Helloer {
        host: host.clone(),
        port,
        text: text.as_bytes().to_vec(),
        outcome: outcome.clone(),
        reactor: reactor.clone(),
    };
    let mut options = UdpListenOptions::default();
    // Bind in HOST's family (a mismatch is refused by `connect`, reported in start_protocol).
    if let Ok(IpAddr::V6(_)) = host.parse::<IpAddr>() {
        options.interface = "::".into();
    }
    let udp = match listen_udp_with(&reactor, 0, helloer, options) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("udp_connected_client: {e}");
            std::process::exit(ERROR);
        }
    };
    if let Some(code) = outcome.get() {
        std::process::exit(code);
    }
    if let Some(handle) = udp.handle::<Helloer>() {
        resend(&reactor, handle, TRIES - 1);
    }
    let r = reactor.clone();
    let o = outcome.clone();
    reactor.call_later(GIVE_UP_AFTER, move || {
        if o.get().is_none() {
            eprintln!("udp_connected_client: no answer within {GIVE_UP_AFTER} s");
            o.set(Some(NO_ANSWER));
            let _ = r.stop();
        }
    });
    if let Err(e) = reactor.run() {
        eprintln!("udp_connected_client: {e}");
        std::process::exit(ERROR);
    }
    std::process::exit(outcome.get().unwrap_or(NO_ANSWER));
}

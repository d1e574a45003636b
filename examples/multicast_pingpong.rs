//! Multicast ping-pong (the "Multicast UDP" examples of Twisted's UDP howto, server and
//! client in one process): two servers share one port (`listen_multiple`) and join a group;
//! a client sends "Ping" to the group, both servers get it and each answers "Pong" to the
//! client's own address (unicast). It exits 0 once both pongs came back.
//!
//! Everything goes over the loopback interface: the servers join through 127.0.0.1 and the
//! client sends out of it, so no network is needed (TTL 1 keeps it on this host anyway).
//!
//! Run: `cargo run --example multicast_pingpong` (or `-- GROUP PORT`; defaults 228.0.0.5 and
//! 0, any free port).
//!
//! Exit codes: 0 both pongs came; 1 an error (no socket, a bad GROUP); 2 bad usage; 3 this
//! host does not route multicast over loopback (the join was refused, or no ping or pong
//! arrived within 5 s).

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::rc::Rc;

use twistor::prelude::*;
use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
use twistor::transport::multicast::{MulticastOptions, MulticastPort, listen_multicast_with};

const LOOPBACK: &str = "127.0.0.1";
const GIVE_UP_AFTER: f64 = 5.0;
const BOTH: i32 = 0;
const ERROR: i32 = 1;
const NO_MULTICAST: i32 = 3;

/// A server: answers each "Ping" with a "Pong" naming itself.
struct PingPong {
    name: &'static str,
}

impl DatagramProtocol for PingPong {
    fn datagram_received(&mut self, cx: &DatagramContext<Self>, data: &[u8], from: SocketAddr) {
        println!("{} got \"{}\" from {from}", self.name, data.escape_ascii());
        if data != b"Ping" {
            return;
        }
        let Some(port) = cx.transport() else { return };
        let pong = format!("Pong from {}", self.name);
        if let Err(e) = port.write(pong.as_bytes(), Some(from)) {
            eprintln!(
                "multicast_pingpong: {} cannot answer {from}: {e}",
                self.name
            );
        }
    }
}

/// The client: collects the distinct pongs and stops the reactor once it has both.
struct Pinger {
    pongs: BTreeSet<Vec<u8>>,
    outcome: Rc<Cell<Option<i32>>>,
    reactor: Reactor,
}

impl DatagramProtocol for Pinger {
    fn datagram_received(&mut self, _cx: &DatagramContext<Self>, data: &[u8], from: SocketAddr) {
        // A ping sent again (see `ping`) may bring a pong twice: count each server once.
        if !self.pongs.insert(data.to_vec()) {
            return;
        }
        println!("client got \"{}\" from {from}", data.escape_ascii());
        if self.pongs.len() == 2 && self.outcome.get().is_none() {
            println!("both servers answered");
            self.outcome.set(Some(BOTH));
            let _ = self.reactor.stop();
        }
    }
}

fn fail(code: i32, why: String) -> ! {
    eprintln!("multicast_pingpong: {why}");
    std::process::exit(code);
}

/// Sends "Ping" to the group now and every half second until the outcome is known: the
/// first may be lost, and the second server may still be joining when it leaves.
fn ping(reactor: &Reactor, client: MulticastPort, to: SocketAddr, outcome: Rc<Cell<Option<i32>>>) {
    if outcome.get().is_some() {
        return;
    }
    if let Err(e) = client.write(b"Ping", Some(to)) {
        outcome.set(Some(NO_MULTICAST));
        eprintln!("multicast_pingpong: cannot send to {to}: {e}");
        let _ = reactor.stop();
        return;
    }
    let r = reactor.clone();
    reactor.call_later(0.5, move || ping(&r, client, to, outcome));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (group, port) = match &args[..] {
        [] => ("228.0.0.5".to_string(), 0),
        [g, p] => match p.parse::<u16>() {
            Ok(p) => (g.clone(), p),
            Err(e) => fail(2, format!("usage: multicast_pingpong [GROUP PORT]: {e}")),
        },
        _ => fail(2, "usage: multicast_pingpong [GROUP PORT]".into()),
    };
    let reactor =
        Reactor::new().unwrap_or_else(|e| fail(ERROR, format!("cannot create the reactor: {e}")));
    let mut shared = MulticastOptions::default();
    shared.listen_multiple = true;
    let first = listen_multicast_with(
        &reactor,
        port,
        PingPong { name: "server 1" },
        shared.clone(),
    )
    .unwrap_or_else(|e| fail(ERROR, e.to_string()));
    // The second server binds the port the first one got.
    let second = listen_multicast_with(
        &reactor,
        first.port(),
        PingPong { name: "server 2" },
        shared,
    )
    .unwrap_or_else(|e| fail(ERROR, e.to_string()));
    println!("servers on port {} joining {group}", first.port());
    for server in [&first, &second] {
        let joined = Rc::new(RefCell::new(None));
        let j = joined.clone();
        // Joining asks the kernel at once: the Deferred has fired when it returns.
        let _ = server.join_group(&group, LOOPBACK).add_errback(move |f| {
            *j.borrow_mut() = Some(f.error_message());
            Ok(())
        });
        if let Some(e) = joined.take() {
            let code = if group
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|g| g.is_multicast())
            {
                NO_MULTICAST
            } else {
                ERROR
            };
            fail(code, format!("cannot join {group} on {LOOPBACK}: {e}"));
        }
    }
    let outcome = Rc::new(Cell::new(None));
    let pinger = Pinger {
        pongs: BTreeSet::new(),
        outcome: outcome.clone(),
        reactor: reactor.clone(),
    };
    let client = listen_multicast_with(&reactor, 0, pinger, MulticastOptions::default())
        .unwrap_or_else(|e| fail(ERROR, e.to_string()));
    if let Err(e) = client.set_outgoing_interface(LOOPBACK) {
        fail(NO_MULTICAST, format!("cannot send out of {LOOPBACK}: {e}"));
    }
    let to: SocketAddr = format!("{group}:{}", first.port())
        .parse()
        .unwrap_or_else(|e| fail(ERROR, format!("bad group {group}: {e}")));
    let r = reactor.clone();
    let o = outcome.clone();
    reactor.call_when_running(move || ping(&r, client, to, o));
    let r = reactor.clone();
    let o = outcome.clone();
    reactor.call_later(GIVE_UP_AFTER, move || {
        if o.get().is_none() {
            eprintln!("multicast_pingpong: no pong from both servers within {GIVE_UP_AFTER} s");
            o.set(Some(NO_MULTICAST));
            let _ = r.stop();
        }
    });
    if let Err(e) = reactor.run() {
        fail(ERROR, e.to_string());
    }
    std::process::exit(outcome.get().unwrap_or(NO_MULTICAST));
}

//! A UDP echo server (the first example of Twisted's UDP howto): every datagram is sent back
//! to the address it came from, and each one is logged on stdout.
//!
//! Run: `cargo run --example udp_echo_server -- 9999` (port 0: any free one; the first line
//! names the port), then `echo Hello | nc -4u -w1 127.0.0.1 9999`, or
//! `cargo run --example udp_connected_client -- 127.0.0.1 9999 Hello`. Ctrl-C stops it.

use std::net::SocketAddr;

use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
use twistor::reactor::Reactor;
use twistor::transport::udp::{UdpListenOptions, listen_udp_with};

struct Echo;

impl DatagramProtocol for Echo {
    fn datagram_received(&mut self, cx: &DatagramContext<Self>, data: &[u8], from: SocketAddr) {
        println!("received \"{}\" from {from}", data.escape_ascii());
        let Some(port) = cx.transport() else { return };
        // One sender's bad address must not stop the server: report it and go on.
        if let Err(e) = port.write(data, Some(from)) {
            eprintln!("udp_echo_server: cannot echo to {from}: {e}");
        }
    }
}

fn main() {
    let port = match std::env::args().nth(1).map(|p| p.parse::<u16>()) {
        None => 9999,
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            eprintln!("usage: udp_echo_server [PORT]: {e}");
            std::process::exit(2);
        }
    };
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("udp_echo_server: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    let mut options = UdpListenOptions::default();
    // The largest datagram IPv4 carries comes back whole, not cut at the 8192-byte default.
    options.max_packet_size = 65_536;
    match listen_udp_with(&reactor, port, Echo, options) {
        Ok(p) => println!("echo server on {}", p.get_host()),
        Err(e) => {
            eprintln!("udp_echo_server: {e}");
            std::process::exit(1);
        }
    }
    // Runs until SIGINT/SIGTERM; the reactor's shutdown stops the port.
    if let Err(e) = reactor.run() {
        eprintln!("udp_echo_server: {e}");
        std::process::exit(1);
    }
}

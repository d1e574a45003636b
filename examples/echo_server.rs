//! An echo server: every byte received is written back.
//!
//! Run: `cargo run --example echo_server -- 8000` then `nc 127.0.0.1 8000`.

use twistor::protocol::{Context, Protocol, for_protocol};
use twistor::reactor::Reactor;
use twistor::transport::tcp::{ListenOptions, listen_tcp_with};

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        cx.transport().write(data);
    }
}

fn main() {
    let port = match std::env::args().nth(1).map(|p| p.parse::<u16>()) {
        None => 8000,
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            eprintln!("usage: echo_server [PORT]: {e}");
            std::process::exit(2);
        }
    };
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("echo_server: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    match listen_tcp_with(
        &reactor,
        port,
        for_protocol(|| Echo),
        ListenOptions::on("127.0.0.1"),
    ) {
        Ok(p) => println!("echo server on {}", p.get_host()),
        Err(e) => {
            eprintln!("echo_server: {e}");
            std::process::exit(1);
        }
    }
    if let Err(e) = reactor.run() {
        eprintln!("echo_server: {e}");
        std::process::exit(1);
    }
}

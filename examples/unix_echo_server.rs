//! An echo server on a UNIX socket: every byte received is written back. It also tells each
//! client who it is, from the peer credentials the kernel recorded (`SO_PEERCRED`).
//!
//! Run: `cargo run --example unix_echo_server -- echo.sock`, then
//! `cargo run --example unix_echo_client -- echo.sock Hello` (or
//! `nc -U echo.sock`). A PATH starting with `@` is an abstract name (no file). The socket
//! file is removed on Ctrl-C.

use twistor::protocol::{Context, Protocol, for_protocol};
use twistor::reactor::Reactor;
use twistor::transport::unix::listen_unix;

struct Echo;

impl Protocol for Echo {
    fn connection_made(&mut self, cx: &Context<Self>) {
        // Not every transport is a UNIX socket: the extension is an Option.
        if let Some(Ok(c)) = cx.transport().unix().map(|u| u.peer_credentials()) {
            println!("client pid {} uid {} gid {}", c.pid, c.uid, c.gid);
        }
    }
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        cx.transport().write(data);
    }
}

fn main() {
    let Some(arg) = std::env::args().nth(1) else {
        eprintln!("usage: unix_echo_server PATH (@NAME: an abstract name)");
        std::process::exit(2);
    };
    // A command line cannot carry the NUL that starts an abstract name: `@` stands for it.
    let path = match arg.strip_prefix('@') {
        Some(name) => format!("\0{name}"),
        None => arg,
    };
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("unix_echo_server: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    match listen_unix(&reactor, &path, for_protocol(|| Echo)) {
        Ok(p) => println!("echo server on {}", p.get_host()),
        Err(e) => {
            eprintln!("unix_echo_server: {e}");
            std::process::exit(1);
        }
    }
    // Runs until SIGINT/SIGTERM; the reactor's shutdown stops the port, removing the file.
    if let Err(e) = reactor.run() {
        eprintln!("unix_echo_server: {e}");
        std::process::exit(1);
    }
}

//! A UNIX datagram exchange: a server shouts back every datagram it gets, in capitals, to
//! whoever sent it; a client connected to it sends three words, prints the replies, and when
//! all three are back both ports stop and the program exits.
//!
//! Run: `cargo run --example unix_datagram` (sockets in the temporary directory), or
//! `cargo run --example unix_datagram -- @NAME` for abstract names (no files).

use std::path::PathBuf;

use twistor::Failure;
use twistor::protocol::connected_datagram::{ConnectedDatagramContext, ConnectedDatagramProtocol};
use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
use twistor::reactor::Reactor;
use twistor::transport::unix::{
    UnixDatagramAddress, UnixDatagramConnectOptions, UnixDatagramPort, connect_unix_datagram_with,
    listen_unix_datagram,
};

const WORDS: [&str; 3] = ["hello", "datagram", "world"];

struct Shouter;

impl DatagramProtocol<UnixDatagramAddress> for Shouter {
    fn datagram_received(
        &mut self,
        cx: &DatagramContext<Self, UnixDatagramAddress>,
        data: &[u8],
        from: UnixDatagramAddress,
    ) {
        println!("server got {:?} from {from}", String::from_utf8_lossy(data));
        let Some(port) = cx.transport() else { return };
        // A sender that never bound has no address: the write says so, it does not panic.
        if let Err(e) = port.write(&data.to_ascii_uppercase(), Some(from)) {
            eprintln!("unix_datagram: cannot reply: {e}");
        }
    }
}

struct Client {
    replies: usize,
    reactor: Reactor,
    server: UnixDatagramPort,
}

impl ConnectedDatagramProtocol for Client {
    fn start_protocol(&mut self, cx: &ConnectedDatagramContext<Self>) {
        let Some(port) = cx.transport() else { return };
        for w in WORDS {
            if let Err(e) = port.write(w.as_bytes(), None) {
                eprintln!("unix_datagram: cannot send: {e}");
            }
        }
    }
    fn datagram_received(&mut self, cx: &ConnectedDatagramContext<Self>, data: &[u8]) {
        println!("client got {:?}", String::from_utf8_lossy(data));
        self.replies += 1;
        if self.replies == WORDS.len() {
            let r = self.reactor.clone();
            let stopped = [
                self.server.stop_listening(&self.reactor),
                cx.transport().map_or_else(
                    || twistor::Deferred::succeed(()),
                    |p| p.stop_listening(&self.reactor),
                ),
            ];
            let _ = twistor::defer::gather_results(stopped).add_both(move |_| {
                let _ = r.stop();
                Ok(())
            });
        }
    }
    fn connection_failed(&mut self, _cx: &ConnectedDatagramContext<Self>, reason: Failure) {
        eprintln!("unix_datagram: cannot connect: {reason}");
        let _ = self.reactor.stop();
    }
}

fn main() {
    // A command line cannot carry the NUL that starts an abstract name: `@` stands for it.
    let (server_path, client_path): (PathBuf, PathBuf) = match std::env::args().nth(1) {
        Some(arg) if arg.starts_with('@') => {
            let name = arg.trim_start_matches('@');
            (
                format!("\0{name}").into(),
                format!("\0{name}-client").into(),
            )
        }
        _ => {
            let dir = std::env::temp_dir();
            let id = std::process::id();
            (
                dir.join(format!("twistor-dgram-server-{id}.sock")),
                dir.join(format!("twistor-dgram-client-{id}.sock")),
            )
        }
    };
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("unix_datagram: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    let server = match listen_unix_datagram(&reactor, &server_path, Shouter) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("unix_datagram: {e}");
            std::process::exit(1);
        }
    };
    println!("server on {}", server.get_host());
    let client = Client {
        replies: 0,
        reactor: reactor.clone(),
        server,
    };
    let options = UnixDatagramConnectOptions {
        // Bound, so the server has an address to reply to.
        bind_address: Some(client_path.clone()),
        ..Default::default()
    };
    let r = reactor.clone();
    reactor.call_when_running(move || {
        connect_unix_datagram_with(&r, &server_path, client, options);
    });
    if let Err(e) = reactor.run_without_signal_handlers() {
        eprintln!("unix_datagram: {e}");
        std::process::exit(1);
    }
    // Both socket files went with their ports.
    if client_path.exists() {
        eprintln!("unix_datagram: the client's socket file is still there");
        std::process::exit(1);
    }
}

//! A TLS echo client: connects to PORT on 127.0.0.1, verifies the server as `localhost`
//! against the CA in CA_PATH, sends TEXT, prints what comes back. A verification failure is
//! printed with its cause (wrong host, unknown issuer, expired...) and the exit code is 1.
//!
//! Run against `tls_echo_server`: `cargo run --example tls_echo_client -- PORT CA_PATH hello`.

use std::cell::Cell;
use std::rc::Rc;

use twistor::Failure;
use twistor::protocol::{Context, Protocol};
use twistor::reactor::Reactor;
use twistor::tls::{TrustRoots, connect_ssl_protocol, options_for_client_tls};
use twistor::transport::tcp::ConnectOptions;

/// Sends the text, prints the echo once all of it came back, then closes (close_notify).
struct Client {
    text: Vec<u8>,
    got: Vec<u8>,
    ok: Rc<Cell<bool>>,
    reactor: Reactor,
}

impl Protocol for Client {
    fn connection_made(&mut self, cx: &Context<Self>) {
        // Written before the handshake: sent as soon as it completes.
        cx.transport().write(&self.text);
    }
    fn handshake_completed(&mut self, cx: &Context<Self>) {
        if let Some(tls) = cx.transport().tls() {
            println!(
                "handshake: {} {}",
                tls.version.unwrap_or_default(),
                tls.cipher_suite.unwrap_or_default()
            );
        }
    }
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got.len() >= self.text.len() {
            println!("echo: {}", String::from_utf8_lossy(&self.got));
            self.ok.set(self.got == self.text);
            cx.transport().lose_connection();
        }
    }
    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        if !self.ok.get() {
            eprintln!("tls_echo_client: {reason}");
        }
        let _ = self.reactor.stop();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, ca, text] = &args[..] else {
        eprintln!("usage: tls_echo_client PORT CA_PATH TEXT");
        std::process::exit(2);
    };
    let Ok(port) = port.parse::<u16>() else {
        eprintln!("usage: tls_echo_client PORT CA_PATH TEXT: bad port {port:?}");
        std::process::exit(2);
    };
    let roots = match TrustRoots::from_pem_file(ca) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tls_echo_client: {e}");
            std::process::exit(2);
        }
    };
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tls_echo_client: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    let ok = Rc::new(Cell::new(false));
    let client = Client {
        text: text.as_bytes().to_vec(),
        got: Vec::new(),
        ok: ok.clone(),
        reactor: reactor.clone(),
    };
    let options = options_for_client_tls("localhost").trust_roots(roots);
    let r = reactor.clone();
    // Started once running: a failure can come at once, and stop() before run() is refused.
    reactor.call_when_running(move || {
        let stop = r.clone();
        let _ = connect_ssl_protocol(
            &r,
            "127.0.0.1",
            port,
            client,
            &options,
            ConnectOptions::default(),
        )
        .add_both(move |r| {
            // Could not connect at all (the protocol never ran): say why and stop. A TLS
            // failure reached the protocol's connection_lost, which said it.
            if let Err(f) = r
                && !f.check::<twistor::tls::TlsError>()
            {
                eprintln!("tls_echo_client: {f}");
                let _ = stop.stop();
            }
            Ok(())
        });
    });
    if let Err(e) = reactor.run() {
        eprintln!("tls_echo_client: {e}");
    }
    std::process::exit(if ok.get() { 0 } else { 1 });
}

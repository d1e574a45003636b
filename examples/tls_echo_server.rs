//! A TLS echo server. Its certificate is made at run time (a throw-away CA and a certificate
//! for localhost and 127.0.0.1); the CA is written to a temporary file whose path is printed.
//!
//! Run: `cargo run --example tls_echo_server -- 8443`, then
//! `cargo run --example tls_echo_client -- 8443 CA_PATH hello` or
//! `openssl s_client -connect 127.0.0.1:8443 -CAfile CA_PATH`.

#[path = "tls_common/mod.rs"]
mod tls_common;

use twistor::protocol::{Context, Protocol, for_protocol};
use twistor::reactor::Reactor;
use twistor::tls::listen_ssl;
use twistor::transport::tcp::ListenOptions;

struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        cx.transport().write(data);
    }
}

fn main() {
    let port = tls_common::port_arg(1, 8443, "tls_echo_server [PORT]");
    let certs = match tls_common::make_certs("tls-echo") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tls_echo_server: {e}");
            std::process::exit(1);
        }
    };
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tls_echo_server: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    let listen = ListenOptions::on("127.0.0.1");
    match listen_ssl(&reactor, port, for_protocol(|| Echo), &certs.server, listen) {
        Ok(p) => {
            println!("tls echo server on {}", p.get_host());
            println!("CA certificate: {}", certs.ca_path.display());
        }
        Err(e) => {
            eprintln!("tls_echo_server: {e}");
            std::process::exit(1);
        }
    }
    let code = match reactor.run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tls_echo_server: {e}");
            1
        }
    };
    if let Some(dir) = certs.ca_path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::process::exit(code);
}

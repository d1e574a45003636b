//! A STARTTLS line server: clear text until the client sends `STARTTLS`, then TLS on the same
//! connection (as SMTP, IMAP and XMPP do). Its certificate is made at run time; the CA is
//! written to a temporary file whose path is printed.
//!
//! The protocol (lines end with `\r\n`): the server greets with `220 ready`; `STARTTLS`
//! answers `220 go ahead` (in clear) and switches; any other line is answered
//! `250 LINE (tls)` or `250 LINE (clear)`; `QUIT` closes. Lines the client pipelined after
//! `STARTTLS` are TLS bytes: they are handed to TLS, never read as commands.
//!
//! Run: `cargo run --example starttls_server -- 8025`, then
//! `cargo run --example starttls_client -- 8025 CA_PATH hello` or
//! `openssl s_client -connect 127.0.0.1:8025 -starttls smtp -CAfile CA_PATH` (close enough).

#[path = "tls_common/mod.rs"]
mod tls_common;

use twistor::protocol::FactoryFn;
use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
use twistor::reactor::Reactor;
use twistor::tls::ServerOptions;
use twistor::transport::tcp::{ListenOptions, listen_tcp_with};

struct StartTlsServer {
    options: ServerOptions,
}

impl LineHandler for StartTlsServer {
    fn connection_made(&mut self, cx: &LineContext<Self>) {
        cx.send_line(b"220 ready");
    }

    fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
        let tls = cx.transport().tls().is_some_and(|t| t.active);
        match line {
            b"STARTTLS" if !tls => {
                cx.send_line(b"220 go ahead");
                // Whatever the client sent after the command is its ClientHello.
                let pending = cx.clear_line_buffer();
                if let Err(e) = cx
                    .transport()
                    .start_tls(self.options.clone().into(), &pending)
                {
                    eprintln!("starttls_server: {e}");
                    cx.transport().lose_connection();
                }
            }
            b"QUIT" => {
                cx.send_line(b"221 bye");
                cx.transport().lose_connection();
            }
            _ => {
                let mut reply = b"250 ".to_vec();
                reply.extend_from_slice(line);
                reply.extend_from_slice(if tls { b" (tls)" } else { b" (clear)" });
                cx.send_line(&reply);
            }
        }
    }
}

fn main() {
    let port = tls_common::port_arg(1, 8025, "starttls_server [PORT]");
    let certs = match tls_common::make_certs("starttls") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("starttls_server: {e}");
            std::process::exit(1);
        }
    };
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("starttls_server: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    let options = certs.server.clone();
    // A plain factory: any stream connection can switch to TLS.
    let factory = FactoryFn::new(move |_| {
        Some(LineReceiver::new(StartTlsServer {
            options: options.clone(),
        }))
    });
    match listen_tcp_with(&reactor, port, factory, ListenOptions::on("127.0.0.1")) {
        Ok(p) => {
            println!("starttls server on {}", p.get_host());
            println!("CA certificate: {}", certs.ca_path.display());
        }
        Err(e) => {
            eprintln!("starttls_server: {e}");
            std::process::exit(1);
        }
    }
    let code = match reactor.run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("starttls_server: {e}");
            1
        }
    };
    if let Some(dir) = certs.ca_path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::process::exit(code);
}

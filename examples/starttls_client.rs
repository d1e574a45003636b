//! A STARTTLS line client (see `starttls_server` for the protocol): sends one line in clear,
//! `STARTTLS`, then each TEXT over TLS (verifying the server as `localhost` against the CA in
//! CA_PATH), then `QUIT`; prints every line the server sends. Exit code 0 if every TEXT was
//! answered over TLS.
//!
//! Run: `cargo run --example starttls_client -- PORT CA_PATH hello world`.

use std::cell::Cell;
use std::rc::Rc;

use twistor::Failure;
use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
use twistor::reactor::Reactor;
use twistor::tls::{ClientOptions, TrustRoots, options_for_client_tls};
use twistor::transport::tcp::connect_tcp;

#[derive(PartialEq)]
enum Stage {
    Greeting,
    Clear,
    AskedTls,
    Tls,
}

struct StartTlsClient {
    stage: Stage,
    texts: Vec<String>,
    answered: usize,
    options: ClientOptions,
    ok: Rc<Cell<bool>>,
    reactor: Reactor,
}

impl LineHandler for StartTlsClient {
    fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
        let line = String::from_utf8_lossy(line).into_owned();
        println!("{line}");
        match self.stage {
            Stage::Greeting => {
                cx.send_line(b"before tls");
                self.stage = Stage::Clear;
            }
            Stage::Clear => {
                cx.send_line(b"STARTTLS");
                self.stage = Stage::AskedTls;
            }
            Stage::AskedTls => {
                if !line.starts_with("220") {
                    eprintln!("starttls_client: the server refused STARTTLS");
                    cx.transport().lose_connection();
                    return;
                }
                let pending = cx.clear_line_buffer();
                if let Err(e) = cx
                    .transport()
                    .start_tls(self.options.clone().into(), &pending)
                {
                    eprintln!("starttls_client: {e}");
                    cx.transport().lose_connection();
                    return;
                }
                // Written now, sent encrypted once the handshake completes.
                for t in &self.texts {
                    cx.send_line(t.as_bytes());
                }
                cx.send_line(b"QUIT");
                self.stage = Stage::Tls;
            }
            Stage::Tls => {
                if line.ends_with("(tls)") {
                    self.answered += 1;
                }
                if line.starts_with("221") {
                    self.ok.set(self.answered == self.texts.len());
                }
            }
        }
    }

    fn connection_lost(&mut self, _cx: &LineContext<Self>, reason: Failure) {
        if !self.ok.get() {
            eprintln!("starttls_client: {reason}");
        }
        let _ = self.reactor.stop();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: starttls_client PORT CA_PATH TEXT...";
    let (Some(port), Some(ca)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let Ok(port) = port.parse::<u16>() else {
        eprintln!("{usage}: bad port {port:?}");
        std::process::exit(2);
    };
    let roots = match TrustRoots::from_pem_file(ca) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("starttls_client: {e}");
            std::process::exit(2);
        }
    };
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("starttls_client: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    let ok = Rc::new(Cell::new(false));
    let (o, r) = (ok.clone(), reactor.clone());
    let texts: Vec<String> = args[2..].to_vec();
    let options = options_for_client_tls("localhost").trust_roots(roots);
    // A plain factory: any stream connection can switch to TLS.
    let factory = twistor::protocol::FactoryFn::new(move |_| {
        Some(LineReceiver::new(StartTlsClient {
            stage: Stage::Greeting,
            texts: texts.clone(),
            answered: 0,
            options: options.clone(),
            ok: o.clone(),
            reactor: r.clone(),
        }))
    });
    let _connector = connect_tcp(
        &reactor,
        "127.0.0.1",
        port,
        StopOnFailure(factory, reactor.clone()),
    );
    if let Err(e) = reactor.run() {
        eprintln!("starttls_client: {e}");
    }
    std::process::exit(if ok.get() { 0 } else { 1 });
}

/// Stops the reactor if the connection cannot be made.
struct StopOnFailure<F>(F, Reactor);

impl<F: twistor::protocol::ClientFactory> twistor::protocol::Factory for StopOnFailure<F> {
    type Protocol = F::Protocol;
    fn build_protocol(&self, addr: &twistor::transport::Address) -> Option<F::Protocol> {
        self.0.build_protocol(addr)
    }
}

impl<F: twistor::protocol::ClientFactory> twistor::protocol::ClientFactory for StopOnFailure<F> {
    fn client_connection_failed(
        &self,
        _connector: &Rc<dyn twistor::transport::connector::Connector>,
        reason: Failure,
    ) {
        eprintln!("starttls_client: {reason}");
        let _ = self.1.stop();
    }
}

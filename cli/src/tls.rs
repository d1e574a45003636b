//! TLS for the subcommands: `--tls-cert FILE --tls-key FILE` serves TLS on `--port`,
//! `--unix` and the plain `--listen` endpoints (`echo`, `reverse`; an `ssl:` `--listen`
//! carries its own certificate and is refused beside them); `--tls` (with `--tls-ca FILE`,
//! `--tls-hostname NAME`) makes `reverse-client` connect with TLS over `--port` or
//! `--unix`.

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;

use twistor::Failure;
use twistor::protocol::Factory;
use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
use twistor::tls::{ClientOptions, ServerOptions, TlsFactory, TrustRoots, options_for_client_tls};
use twistor::transport::tcp::ConnectOptions;

use twistor::reactor::Reactor;

use crate::servers::new_reactor;

/// The server side's flags.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsServerArgs {
    /// Serve TLS on --port, --unix and every plain --listen with this certificate chain
    /// (PEM, leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsServerArgs {
    /// The server options, if TLS was asked for; `Err` is the exit code after the error was
    /// printed.
    pub fn options(&self, name: &str) -> Result<Option<ServerOptions>, i32> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        match ServerOptions::from_pem_files(cert, key).and_then(|o| o.config().map(|_| o)) {
            Ok(o) => Ok(Some(o)),
            Err(e) => {
                eprintln!("twistor {name}: {e}");
                Err(2)
            }
        }
    }
}

/// The certificate and key files' contents, for building the options again on each thread
/// of `--threads` (options hold a per-thread configuration).
#[derive(Clone)]
pub struct Pem {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl TlsServerArgs {
    /// The PEM files, read once (after `options` checked them).
    pub fn pem(&self) -> Option<Pem> {
        let (cert, key) = (self.tls_cert.as_ref()?, self.tls_key.as_ref()?);
        Some(Pem {
            cert: std::fs::read(cert).ok()?,
            key: std::fs::read(key).ok()?,
        })
    }
}

/// A TLS factory built on the thread that serves with it; if the options cannot be built
/// there (they were checked before the threads started), every connection is refused, never
/// served in clear text.
pub enum ThreadTls<F: Factory> {
    /// Serving TLS.
    Tls(TlsFactory<F>),
    /// Refusing.
    Refuse,
}

/// `factory` with TLS from `pem`, for one thread.
pub fn per_thread<F: Factory>(pem: &Pem, factory: F) -> ThreadTls<F> {
    match ServerOptions::from_pem(&pem.cert, &pem.key).and_then(|o| TlsFactory::server(factory, &o))
    {
        Ok(f) => ThreadTls::Tls(f),
        Err(e) => {
            log::error!("TLS options on a server thread: {e}; refusing connections");
            ThreadTls::Refuse
        }
    }
}

impl<F: Factory> Factory for ThreadTls<F> {
    type Protocol = twistor::tls::TlsProtocol;
    fn build_protocol(&self, addr: &twistor::transport::Address) -> Option<Self::Protocol> {
        match self {
            ThreadTls::Tls(f) => f.build_protocol(addr),
            ThreadTls::Refuse => None,
        }
    }
    fn start_factory(&self) {
        if let ThreadTls::Tls(f) = self {
            f.start_factory()
        }
    }
    fn stop_factory(&self) {
        if let ThreadTls::Tls(f) = self {
            f.stop_factory()
        }
    }
}

/// `factory` wrapped in TLS with `options`.
pub fn wrap<F: Factory>(factory: F, options: &ServerOptions) -> Result<TlsFactory<F>, String> {
    TlsFactory::server(factory, options).map_err(|e| e.to_string())
}

/// The client side's flags.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsClientArgs {
    /// Connect with TLS, verifying the server against the system's trust roots and --host
    /// (with --unix: against --tls-hostname, else "localhost"). With --connect, write
    /// `tls:HOST:PORT:trustRoots=FILE` instead.
    #[arg(long, conflicts_with = "connect")]
    pub tls: bool,
    /// Trust the certificates of this PEM file instead of the system's roots (implies --tls).
    #[arg(long, value_name = "FILE", conflicts_with = "connect")]
    pub tls_ca: Option<PathBuf>,
    /// Verify the server's certificate against this name instead of --host (implies --tls).
    #[arg(long, value_name = "NAME", conflicts_with = "connect")]
    pub tls_hostname: Option<String>,
}

impl TlsClientArgs {
    /// The client options, if TLS was asked for.
    pub fn options(&self, host: &str) -> Result<Option<ClientOptions>, String> {
        if !self.tls && self.tls_ca.is_none() && self.tls_hostname.is_none() {
            return Ok(None);
        }
        let name = self.tls_hostname.as_deref().unwrap_or(host);
        let mut o = options_for_client_tls(name);
        if let Some(ca) = &self.tls_ca {
            o = o.trust_roots(TrustRoots::from_pem_file(ca).map_err(|e| e.to_string())?);
        }
        o.config().map_err(|e| e.to_string())?;
        Ok(Some(o))
    }
}

/// Sends one line, prints the first line back, stops the reactor when the connection ends.
struct OneLine {
    text: String,
    answered: Rc<Cell<bool>>,
    verified: Rc<Cell<bool>>,
    reactor: Reactor,
}

impl LineHandler for OneLine {
    fn connection_made(&mut self, cx: &LineContext<Self>) {
        cx.send_line(self.text.as_bytes());
    }
    fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
        if !self.answered.replace(true) {
            println!("{}", String::from_utf8_lossy(line));
            cx.transport().lose_connection();
        }
    }
    fn connection_lost(&mut self, _cx: &LineContext<Self>, reason: Failure) {
        // A failure before verification is printed by the connect Deferred's errback.
        if !self.answered.get() && self.verified.get() {
            eprintln!("twistor reverse-client: {reason}");
        }
        let _ = self.reactor.stop();
    }
}

/// `twistor reverse-client --tls`: exits 0 once the reply is printed, 1 otherwise (the
/// TLS failure, named, on stderr).
pub fn reverse_client(host: &str, port: u16, text: &str, options: &ClientOptions) -> i32 {
    let Some(reactor) = new_reactor("reverse-client") else {
        return 1;
    };
    let answered = Rc::new(Cell::new(false));
    let verified = Rc::new(Cell::new(false));
    let protocol = LineReceiver::new(OneLine {
        text: text.to_string(),
        answered: answered.clone(),
        verified: verified.clone(),
        reactor: reactor.clone(),
    });
    let (r, host, options) = (reactor.clone(), host.to_string(), options.clone());
    // Started once the reactor runs: a failure may come at once, and stop() before run()
    // would be refused.
    reactor.call_when_running(move || {
        let stopper = r.clone();
        let _ = twistor::tls::connect_ssl_protocol(
            &r,
            &host,
            port,
            protocol,
            &options,
            ConnectOptions::default(),
        )
        .add_both(move |result| {
            match result {
                Ok(_) => verified.set(true),
                Err(f) => {
                    eprintln!("twistor reverse-client: {f}");
                    let _ = stopper.stop();
                }
            }
            Ok(())
        });
    });
    match reactor.run() {
        Ok(()) if answered.get() => 0,
        Ok(()) => 1,
        Err(e) => {
            eprintln!("twistor reverse-client: {e}");
            1
        }
    }
}

//! The servers and clients behind the subcommands.

use std::rc::Rc;

use std::cell::Cell;

use twistor::protocol::{Factory, for_protocol};
use twistor::protocols::portforward::proxy_factory;
use twistor::protocols::reverse::{RemoteReverser, reverse_factory};
use twistor::protocols::wire::{Chargen, Daytime, Discard, Echo, Qotd};
use twistor::reactor::Reactor;
use twistor::tls::ServerOptions;
use twistor::transport::multicore::serve_on_threads;
use twistor::transport::tcp::ListenOptions;

use crate::endpoint_args::{self, Listen};

pub use crate::unix::{echo_unix, reverse_client_unix, reverse_unix};

pub(crate) fn new_reactor(name: &str) -> Option<Reactor> {
    match Reactor::new() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("twistor {name}: cannot create the reactor: {e}");
            None
        }
    }
}

/// Creates the reactor, listens with `factory` where `listen` says, prints where, runs until
/// a signal.
fn serve<F: Factory>(name: &str, listen: &Listen, factory: F) -> i32 {
    let Some(reactor) = new_reactor(name) else {
        return 1;
    };
    serve_on(&reactor, name, listen, factory)
}

fn serve_on<F: Factory>(reactor: &Reactor, name: &str, listen: &Listen, factory: F) -> i32 {
    let _ports = match endpoint_args::listen_all(reactor, name, &listen.descriptions(), factory) {
        Ok(ports) => ports,
        Err(code) => return code,
    };
    run_server(reactor, name)
}

/// Runs a server's reactor until a signal stops it; the exit code.
pub(crate) fn run_server(reactor: &Reactor, name: &str) -> i32 {
    match reactor.run() {
        Ok(()) => {
            if let Some(sig) = reactor.exit_signal() {
                log::info!("stopped by signal {sig}");
            }
            0
        }
        Err(e) => {
            eprintln!("twistor {name}: {e}");
            1
        }
    }
}

/// `twistor echo`.
pub fn echo(listen: &Listen, threads: usize) -> i32 {
    if threads > 1 {
        return serve_threads("echo", listen, threads, || for_protocol(|| Echo));
    }
    serve("echo", listen, for_protocol(|| Echo))
}

/// `twistor echo --tls-cert --tls-key`: TLS on every endpoint it listens on.
pub fn echo_tls(
    listen: &Listen,
    options: &ServerOptions,
    threads: usize,
    pem: Option<crate::tls::Pem>,
) -> i32 {
    if let (true, Some(pem)) = (threads > 1, pem) {
        return serve_threads("echo", listen, threads, move || {
            crate::tls::per_thread(&pem, for_protocol(|| Echo))
        });
    }
    serve_tls("echo", listen, for_protocol(|| Echo), options)
}

/// `twistor reverse --tls-cert --tls-key`.
pub fn reverse_tls(
    listen: &Listen,
    max_lines: Option<usize>,
    options: &ServerOptions,
    threads: usize,
    pem: Option<crate::tls::Pem>,
) -> i32 {
    if let (true, Some(pem)) = (threads > 1, pem) {
        return serve_threads("reverse", listen, threads, move || {
            crate::tls::per_thread(&pem, reverse_factory(max_lines))
        });
    }
    serve_tls("reverse", listen, reverse_factory(max_lines), options)
}

fn serve_tls<F: Factory>(name: &str, listen: &Listen, factory: F, options: &ServerOptions) -> i32 {
    match crate::tls::wrap(factory, options) {
        Ok(f) => serve(name, listen, f),
        Err(e) => {
            eprintln!("twistor {name}: {e}");
            2
        }
    }
}

/// `twistor reverse`.
pub fn reverse(listen: &Listen, max_lines: Option<usize>, threads: usize) -> i32 {
    if threads > 1 {
        return serve_threads("reverse", listen, threads, move || {
            reverse_factory(max_lines)
        });
    }
    serve("reverse", listen, reverse_factory(max_lines))
}

/// Serves from `threads` reactors sharing the port; this thread runs a reactor of its own
/// that only waits for SIGINT/SIGTERM, then stops the others. (`--threads` takes `--port`,
/// not `--listen`.)
fn serve_threads<F: Factory>(
    name: &str,
    listen: &Listen,
    threads: usize,
    make: impl Fn() -> F + Send + Sync + 'static,
) -> i32 {
    let (port, interface) = (listen.port.unwrap_or(0), listen.interface.as_str());
    let servers = match serve_on_threads(threads, port, ListenOptions::on(interface), make) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("twistor {name}: {e}");
            return 1;
        }
    };
    let ip: std::net::IpAddr = interface.parse().unwrap_or([0, 0, 0, 0].into());
    println!(
        "twistor {name} listening on tcp:{}",
        std::net::SocketAddr::new(ip, servers.port())
    );
    log::info!("twistor {name}: {threads} reactor threads share the port");
    let Some(reactor) = new_reactor(name) else {
        servers.stop();
        servers.join();
        return 1;
    };
    let code = match reactor.run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("twistor {name}: {e}");
            1
        }
    };
    servers.stop();
    servers.join();
    code
}

/// `twistor reverse-client`: the paper's RemoteReverser; prints the reply, exits 0 (1 if the
/// server could not be reached or closed without answering).
pub fn reverse_client(host: &str, port: u16, text: &str) -> i32 {
    let Some(reactor) = new_reactor("reverse-client") else {
        return 1;
    };
    let code = Rc::new(Cell::new(1));
    let (c, r) = (code.clone(), reactor.clone());
    let (host, text) = (host.to_string(), text.to_string());
    // Started once the reactor runs: a connection that fails at once (an unreachable address)
    // fires the Deferred synchronously, and a `stop()` before `run()` would be ignored.
    reactor.call_when_running(move || {
        let stopper = r.clone();
        let _ = RemoteReverser::new(&r, &host, port)
            .reverse(&text)
            .add_both(move |result| {
                match result {
                    Ok(line) => {
                        println!("{line}");
                        c.set(0);
                    }
                    Err(f) => eprintln!("twistor reverse-client: {f}"),
                }
                let _ = stopper.stop();
                Ok(())
            });
    });
    match reactor.run() {
        Ok(()) => code.get(),
        Err(e) => {
            eprintln!("twistor reverse-client: {e}");
            1
        }
    }
}

/// `twistor portforward`.
pub fn portforward(listen: &Listen, dest_host: &str, dest_port: u16) -> i32 {
    let Some(reactor) = new_reactor("portforward") else {
        return 1;
    };
    let factory = proxy_factory(&reactor, dest_host, dest_port);
    serve_on(&reactor, "portforward", listen, factory)
}

/// `twistor discard`.
pub fn discard(listen: &Listen) -> i32 {
    serve("discard", listen, for_protocol(|| Discard))
}

/// `twistor chargen`.
pub fn chargen(listen: &Listen) -> i32 {
    serve("chargen", listen, for_protocol(Chargen::default))
}

/// `twistor qotd`: `quote` is a line, sent with `\r\n`.
pub fn qotd(listen: &Listen, quote: Option<&str>) -> i32 {
    let qotd = match quote {
        Some(q) => Qotd::new(format!("{q}\r\n").as_bytes()),
        None => Qotd::default(),
    };
    serve("qotd", listen, for_protocol(move || qotd.clone()))
}

/// `twistor daytime`.
pub fn daytime(listen: &Listen) -> i32 {
    serve("daytime", listen, for_protocol(|| Daytime))
}

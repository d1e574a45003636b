//! `--listen ENDPOINT` and `--connect ENDPOINT`: endpoint descriptions on the command line
//! (as `twist` takes them), shared by every subcommand.
//!
//! `--port P` stays the shorthand for `tcp:P:interface=IFACE` (with `--interface`'s
//! default, 127.0.0.1); with several `--listen`, and `--port` beside them, the server
//! serves on all of them with one factory. A description that does not parse is refused
//! by clap with the parser's message, which exits 2.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use twistor::endpoints::{
    AnyClientEndpoint, AnyServerEndpoint, ClientEndpoint, Description, ServerEndpoint,
    client_from_string, quote_string_argument, server_from_string,
};
use twistor::protocol::{Factory, for_protocol};
use twistor::protocols::basic::LineReceiver;
use twistor::reactor::Reactor;
use twistor::transport::listener::ListeningPort;

use crate::servers::new_reactor;
use crate::unix::OneLine;

/// clap's check of a `--listen` value: the description must build (an `ssl:` one reads its
/// certificate and key files here, so a bad file is refused before anything listens).
pub fn server_endpoint(s: &str) -> Result<String, String> {
    server_from_string(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// clap's check of a `--connect` value.
pub fn client_endpoint(s: &str) -> Result<String, String> {
    client_from_string(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// Where a server listens: `--port` with `--interface`, and every `--listen`.
pub struct Listen {
    pub port: Option<u16>,
    pub interface: String,
    pub listen: Vec<String>,
}

impl Listen {
    /// `--port` (as `tcp:PORT:interface=IFACE`) first, then each `--listen`.
    pub fn descriptions(&self) -> Vec<String> {
        let tcp = self.port.map(|p| {
            format!(
                "tcp:{p}:interface={}:backlog=128",
                quote_string_argument(&self.interface)
            )
        });
        tcp.into_iter().chain(self.listen.iter().cloned()).collect()
    }
}

/// Listens on every description with one shared factory and prints where, one line each
/// (`twistor NAME listening on ADDRESS`). On the first failure, prints it and returns the
/// exit code 1.
pub fn listen_all<F: Factory>(
    reactor: &Reactor,
    name: &str,
    descriptions: &[String],
    factory: F,
) -> Result<Vec<ListeningPort>, i32> {
    let factory = Rc::new(factory);
    let mut ports = Vec::with_capacity(descriptions.len());
    for d in descriptions {
        let endpoint: AnyServerEndpoint = match server_from_string(d) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("twistor {name}: {e}");
                return Err(2);
            }
        };
        // Server endpoints fire at once: listening has succeeded or failed by now.
        let outcome = Rc::new(RefCell::new(None));
        let o = outcome.clone();
        let _ = endpoint
            .listen(reactor, factory.clone())
            .add_both(move |r| {
                *o.borrow_mut() = Some(r.map_err(|f| f.to_string()));
                Ok(())
            });
        let outcome = outcome.borrow_mut().take();
        match outcome {
            Some(Ok(port)) => {
                println!("twistor {name} listening on {}", port.get_host());
                ports.push(port);
            }
            Some(Err(why)) => {
                eprintln!("twistor {name}: {why}");
                return Err(1);
            }
            None => {
                eprintln!("twistor {name}: {d}: listening did not finish");
                return Err(1);
            }
        }
    }
    Ok(ports)
}

/// `--tls-cert` beside an `ssl:` `--listen` would wrap TLS in TLS: refused (exit 2),
/// naming the description.
pub fn refuse_tls_twice(name: &str, listen: &[String]) -> Result<(), i32> {
    let ssl = listen
        .iter()
        .find(|d| Description::parse(d).is_ok_and(|p| p.kind == "ssl"));
    match ssl {
        Some(d) => {
            eprintln!(
                "twistor {name}: --listen {d} serves TLS with its own certificate; \
                 --tls-cert/--tls-key cannot wrap it again"
            );
            Err(2)
        }
        None => Ok(()),
    }
}

/// `twistor reverse-client --connect ENDPOINT TEXT`: prints the reply, exits 0 (1 if the
/// server could not be reached, failed TLS verification or closed without answering).
pub fn reverse_client(description: &str, text: &str) -> i32 {
    let endpoint: AnyClientEndpoint = match client_from_string(description) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("twistor reverse-client: {e}");
            return 2;
        }
    };
    reverse_client_over(endpoint, text)
}

/// `reverse-client` over any client endpoint.
pub fn reverse_client_over<E: ClientEndpoint + 'static>(endpoint: E, text: &str) -> i32 {
    let Some(reactor) = new_reactor("reverse-client") else {
        return 1;
    };
    let answered = Rc::new(Cell::new(false));
    let (a, r) = (answered.clone(), reactor.clone());
    let text = text.to_string();
    // Started once running: a failure fires at once, and stop() before run() is ignored.
    reactor.call_when_running(move || {
        let (a2, r2) = (a.clone(), r.clone());
        let factory = for_protocol(move || {
            LineReceiver::new(OneLine {
                text: text.clone(),
                answered: a2.clone(),
                reactor: r2.clone(),
            })
        });
        let stopper = r.clone();
        let _ = endpoint.connect(&r, factory).add_both(move |res| {
            if let Err(f) = res {
                eprintln!("twistor reverse-client: {f}");
                let _ = stopper.stop();
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

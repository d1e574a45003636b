//! The servers and clients behind the subcommands.

use std::rc::Rc;

use twistor::protocol::{for_protocol, Context, Factory, Protocol};
use twistor::reactor::Reactor;
use twistor::transport::tcp::listen_tcp;

/// Echoes every byte back.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        cx.transport().write(data);
    }
}

/// Creates the reactor, listens with `factory`, prints where, runs until a signal.
fn serve<F: Factory>(name: &str, port: u16, interface: &str, factory: F) -> i32 {
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("twistor {name}: cannot create the reactor: {e}");
            return 1;
        }
    };
    match listen_tcp(&reactor, port, Rc::new(factory), 128, interface) {
        Ok(p) => {
            println!("twistor {name} listening on {}", p.get_host());
        }
        Err(e) => {
            eprintln!("twistor {name}: {e}");
            return 1;
        }
    }
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
pub fn echo(port: u16, interface: &str) -> i32 {
    serve("echo", port, interface, for_protocol(|| Echo))
}

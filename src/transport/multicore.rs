//! Serving one port from several threads, one reactor each (Twisted has no such thing; this
//! is how twistor uses more than one core).
//!
//! Each thread runs its own reactor with its own listening socket on the same port
//! (`SO_REUSEPORT`: the kernel spreads new connections across them), and its own protocols;
//! nothing is shared between threads, so protocol code needs no locks.

use std::rc::Rc;

use super::factory::counted;
use super::tcp::{ListenOptions, bind_listener, listen_on};
use crate::error::CannotListenError;
use crate::protocol::Factory;
use crate::reactor::Reactor;

/// Reactors serving one port from several threads (see the module docs).
pub struct ServerThreads {
    port: u16,
    handles: Vec<crate::reactor::ThreadHandle>,
    joins: Vec<std::thread::JoinHandle<()>>,
}

impl ServerThreads {
    /// The port every thread listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Asks every reactor to stop (gracefully: shutdown triggers run).
    pub fn stop(&self) {
        for h in &self.handles {
            h.stop();
        }
    }

    /// Waits for every thread to finish.
    pub fn join(self) {
        for j in self.joins {
            let _ = j.join();
        }
    }
}

/// Serves `port` from `threads` threads, one reactor each, listening with `options`
/// (`reuse_port` is always set; a backlog below 1024 is raised to it); `make_factory` builds
/// each thread's factory on that thread. Port 0 picks a free port shared by all. Signals are
/// not handled by these reactors: stop them with [`ServerThreads::stop`].
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::multicore::serve_on_threads;
/// use twistor::transport::tcp::ListenOptions;
/// use std::io::{Read, Write};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, cx: &Context<Self>, d: &[u8]) { cx.transport().write(d) }
/// }
/// let opts = ListenOptions { interface: "127.0.0.1".into(), ..Default::default() };
/// let servers = serve_on_threads(2, 0, opts, || for_protocol(|| Echo)).unwrap();
/// let mut c = std::net::TcpStream::connect(("127.0.0.1", servers.port())).unwrap();
/// c.write_all(b"hi").unwrap();
/// let mut buf = [0; 2];
/// c.read_exact(&mut buf).unwrap();
/// assert_eq!(&buf, b"hi");
/// servers.stop();
/// servers.join();
/// ```
pub fn serve_on_threads<F: Factory>(
    threads: usize,
    port: u16,
    options: ListenOptions,
    make_factory: impl Fn() -> F + Send + Sync + 'static,
) -> Result<ServerThreads, CannotListenError> {
    serve_on_threads_with_reactor(threads, port, options, move |_| make_factory())
}

/// [`serve_on_threads`] for a factory that needs its thread's reactor (to schedule timers or
/// run tasks there): `make_factory` gets it.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::multicore::serve_on_threads_with_reactor;
/// use twistor::transport::tcp::ListenOptions;
///
/// struct Quiet;
/// impl Protocol for Quiet {
///     fn data_received(&mut self, _cx: &Context<Self>, _d: &[u8]) {}
/// }
/// let opts = ListenOptions { interface: "127.0.0.1".into(), ..Default::default() };
/// let servers = serve_on_threads_with_reactor(1, 0, opts, |reactor: &Reactor| {
///     let _timers_go_here = reactor.clone();
///     for_protocol(|| Quiet)
/// })
/// .unwrap();
/// servers.stop();
/// servers.join();
/// ```
pub fn serve_on_threads_with_reactor<F: Factory>(
    threads: usize,
    port: u16,
    options: ListenOptions,
    make_factory: impl Fn(&Reactor) -> F + Send + Sync + 'static,
) -> Result<ServerThreads, CannotListenError> {
    let threads = threads.max(1);
    let options = ListenOptions {
        reuse_port: true,
        backlog: options.backlog.max(1024),
        ..options
    };
    // Bind every socket here, so port 0 resolves once and errors come back to the caller.
    let first = bind_listener(port, &options)?;
    let actual = first.local_addr().map(|a| a.port()).unwrap_or(port);
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(bind_listener(actual, &options)?);
    }
    let make_factory = std::sync::Arc::new(make_factory);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut joins = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let make = make_factory.clone();
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("twistor-reactor-{i}"))
            .spawn(move || {
                let reactor = match Reactor::new() {
                    Ok(r) => r,
                    Err(e) => {
                        log::error!(target: "twistor::tcp", "reactor thread {i}: {e}");
                        return;
                    }
                };
                if let Err(e) = listen_on(&reactor, listener, counted(Rc::new(make(&reactor)))) {
                    log::error!(target: "twistor::tcp", "reactor thread {i}: cannot listen: {e}");
                    return;
                }
                let _ = tx.send(reactor.thread_handle());
                if let Err(e) = reactor.run_without_signal_handlers() {
                    log::error!(target: "twistor::tcp", "reactor thread {i}: {e}");
                }
            });
        match spawned {
            Ok(j) => joins.push(j),
            Err(e) => {
                return Err(CannotListenError {
                    interface: options.interface.clone(),
                    port,
                    source: e,
                });
            }
        }
    }
    drop(tx);
    // Each thread sends its handle once listening (or gives up and drops its sender).
    let handles: Vec<_> = rx.iter().take(joins.len()).collect();
    Ok(ServerThreads {
        port: actual,
        handles,
        joins,
    })
}

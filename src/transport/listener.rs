//! The accept loop every stream listener shares (Twisted's `tcp.Port`): `Port<L>` over any
//! `Listener`, and the [`ListeningPort`] handle users get.
//!
//! Accepting is batched: up to `ACCEPT_BATCH` connections per run, then the port asks to run
//! again after the other sources the poller reported this turn (or on the next turn, if it was
//! already that second run), so a flood of connections cannot starve established ones. Out
//! of descriptors (`EMFILE` and friends) the listener stays readable, so accepting again at
//! once would spin: the port backs off for 100 ms instead.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io;
use std::rc::{Rc, Weak};

use mio::{Interest, Token};

use super::Address;
use super::factory::AnyFactory;
use super::stream::{StreamConnection, StreamSocket};
use crate::reactor::sources::SourceHandler;
use crate::reactor::{Reactor, Ready};
use crate::time::DelayedCall;
use crate::{Deferred, Failure};

/// Connections accepted per readiness event before other sources get their turn.
const ACCEPT_BATCH: usize = 64;
/// How long accepting pauses when out of descriptors.
const EMFILE_BACKOFF: f64 = 0.1;

/// A bound, listening, non-blocking socket.
pub(crate) trait Listener: std::os::fd::AsFd + 'static {
    type Stream: StreamSocket;
    /// Accepts one connection: the stream and the peer's address.
    fn accept(&self) -> io::Result<(Self::Stream, Address)>;
    /// The local address of an accepted stream (`listening` is the listener's own).
    fn connection_host(&self, stream: &Self::Stream, listening: &Address) -> Address;
}

/// An accept loop serving a factory.
pub(crate) struct Port<L: Listener> {
    listener: RefCell<Option<L>>,
    token: Cell<Option<Token>>,
    factory: Rc<dyn AnyFactory>,
    host: Address,
    me: Weak<Port<L>>,
    /// Accepting is suspended (EMFILE back-off) until this call fires.
    backoff: RefCell<Option<DelayedCall>>,
}

impl<L: Listener> Port<L> {
    /// Registers `listener` and counts the port as a user of `factory`.
    pub(crate) fn start(
        reactor: &Reactor,
        listener: L,
        host: Address,
        factory: Rc<dyn AnyFactory>,
    ) -> io::Result<ListeningPort> {
        let port = Rc::new_cyclic(|me| Port {
            listener: RefCell::new(None),
            token: Cell::new(None),
            factory: factory.clone(),
            host,
            me: me.clone(),
            backoff: RefCell::new(None),
        });
        let token = reactor.register_source(&listener, Interest::READABLE, port.clone())?;
        port.token.set(Some(token));
        *port.listener.borrow_mut() = Some(listener);
        factory.do_start();
        Ok(ListeningPort { inner: port })
    }

    fn accept_some(&self, reactor: &Reactor) {
        if self.backoff.borrow().is_some() {
            return;
        }
        for _ in 0..ACCEPT_BATCH {
            let accepted = match self.listener.borrow().as_ref() {
                Some(l) => l.accept(),
                None => return,
            };
            match accepted {
                Ok((stream, peer)) => self.serve(reactor, stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_resource_exhaustion(&e) => {
                    log::error!(target: "twistor::tcp", "accept failed on {}: {e}; retrying in 100 ms", self.host);
                    let me = self.me.clone();
                    let r = reactor.clone();
                    let call = reactor.call_later(EMFILE_BACKOFF, move || {
                        if let Some(me) = me.upgrade() {
                            me.backoff.borrow_mut().take();
                            me.accept_some(&r);
                        }
                    });
                    *self.backoff.borrow_mut() = Some(call);
                    return;
                }
                Err(e) => {
                    // ECONNABORTED and friends: this one connection failed; go on.
                    log::warn!(target: "twistor::tcp", "accept failed on {}: {e}", self.host);
                }
            }
        }
        // Batch used up and maybe more waiting: let other sources run first.
        if let Some(t) = self.token.get() {
            reactor.ready_again(t);
        }
    }

    fn serve(&self, reactor: &Reactor, stream: L::Stream, peer: Address) {
        let host = match self.listener.borrow().as_ref() {
            Some(l) => l.connection_host(&stream, &self.host),
            None => return,
        };
        let conn = match StreamConnection::new(reactor, stream, host, peer.clone()) {
            Ok(c) => c,
            Err(e) => {
                log::error!(target: "twistor::tcp", "cannot register connection from {peer}: {e}");
                return;
            }
        };
        match self.factory.build(&peer, conn.transport()) {
            Some(driver) => conn.start(driver),
            // Refused by the factory: close at once.
            None => conn.refuse(reactor),
        }
    }
}

impl<L: Listener> SourceHandler for Port<L> {
    fn ready(&self, reactor: &Reactor, _ready: Ready) {
        self.accept_some(reactor);
    }
    fn flush(&self, _reactor: &Reactor) {}
    fn shutdown(&self, reactor: &Reactor) {
        let _ = PortControl::stop(self, reactor);
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// What a [`ListeningPort`] controls.
trait PortControl {
    fn host(&self) -> Address;
    /// Stops accepting; the factory's `stop_factory` failure, if it was the last user.
    fn stop(&self, reactor: &Reactor) -> Result<(), Failure>;
    fn factory(&self) -> Option<Rc<dyn Any>>;
}

impl<L: Listener> PortControl for Port<L> {
    fn host(&self) -> Address {
        self.host.clone()
    }
    fn stop(&self, reactor: &Reactor) -> Result<(), Failure> {
        let listener = self.listener.borrow_mut().take();
        if let (Some(t), Some(l)) = (self.token.take(), listener) {
            reactor.deregister_source(t, &l);
            drop(l);
            let backoff = self.backoff.borrow_mut().take();
            if let Some(c) = backoff {
                let _ = c.cancel();
            }
            return self.factory.do_stop();
        }
        Ok(())
    }
    fn factory(&self) -> Option<Rc<dyn Any>> {
        Some(self.factory.as_any())
    }
}

/// A port that is recorded, not listening (`MemoryReactor`).
struct RecordedPort(Address);

impl PortControl for RecordedPort {
    fn host(&self) -> Address {
        self.0.clone()
    }
    fn stop(&self, _reactor: &Reactor) -> Result<(), Failure> {
        Ok(())
    }
    fn factory(&self) -> Option<Rc<dyn Any>> {
        None
    }
}

/// A listening port (Twisted's `IListeningPort`).
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::FactoryFn;
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_tcp(&reactor, 0, for_protocol(|| Quiet)).unwrap();
/// assert!(port.factory::<FactoryFn<Quiet>>().is_some());
/// let stopped = port.stop_listening(&reactor);
/// while !stopped.has_result() {
///     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
/// }
/// ```
#[doc(alias = "IListeningPort")]
pub struct ListeningPort {
    inner: Rc<dyn PortControl>,
}

impl std::fmt::Debug for ListeningPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<ListeningPort {}>", self.inner.host())
    }
}

impl ListeningPort {
    pub(crate) fn recorded(host: Address) -> ListeningPort {
        ListeningPort {
            inner: Rc::new(RecordedPort(host)),
        }
    }

    /// The address it listens on (with the real port when 0 was asked for).
    #[doc(alias = "getHost")]
    pub fn get_host(&self) -> Address {
        self.inner.host()
    }

    /// The port number it listens on (0 for addresses without one).
    pub fn port(&self) -> u16 {
        self.inner.host().socket_addr().map_or(0, |a| a.port())
    }

    /// Stops accepting; connections already accepted stay open. The Deferred fires on a
    /// later turn, after the factory's `stop_factory` if this was its last port; it fails
    /// with the panic of `stop_factory` if that panicked (as Twisted's fails with its
    /// exception).
    #[doc(alias = "stopListening")]
    pub fn stop_listening(&self, reactor: &Reactor) -> Deferred<()> {
        let (d, fire) = Deferred::new();
        let inner = self.inner.clone();
        let r = reactor.clone();
        reactor.call_later(0.0, move || {
            // Only this call fires `d`.
            let _ = match inner.stop(&r) {
                Ok(()) => fire.callback(()),
                Err(f) => fire.errback(f),
            };
        });
        d
    }

    /// The factory it serves, if it is an `F`.
    pub fn factory<F: 'static>(&self) -> Option<Rc<F>> {
        self.inner.factory()?.downcast::<F>().ok()
    }
}

//! The connection attempt every stream connector shares (Twisted's `base.BaseConnector`): the
//! state, one attempt at a time, the timeout, the factory's user count, and what happens once
//! connected or lost. A transport supplies a [`Dial`]: how to start an attempt toward its
//! destination and how to tell when the socket is connected.
//!
//! Invariants:
//! - Each attempt has an id; an event of an older attempt (a late name resolution, a stale
//!   readiness, a timeout that lost the race) is ignored, so at most one attempt is live.
//! - The factory is counted from the first attempt until the connector is disconnected with
//!   nothing more to do: a factory hook that calls `connect()` again keeps it counted.
//! - A connection keeps its connector alive (the caller may drop the handle it got); the
//!   cycle ends when the connection closes and drops its close hook.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use mio::{Interest, Token};

use super::connector::{Connector, ConnectorState};
use super::factory::AnyClientFactory;
use super::stream::{StreamConnection, StreamSocket};
use super::{Address, Transport, TransportImpl};
use crate::error::{ConnectTimeoutError, NotConnectingError, UserError, connect_error_from_io};
use crate::protocol::ProtocolDriver;
use crate::reactor::sources::SourceHandler;
use crate::reactor::{Reactor, Ready, WeakReactor};
use crate::time::DelayedCall;
use crate::{Deferred, Failure, Resolver};

/// The public connectors are newtypes over a `BaseConnector`: one place writes their
/// `Debug` and `Connector` forwarding, so the TCP and UNIX ones cannot drift apart.
macro_rules! connector_newtype {
    ($name:ident) => {
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    concat!("<", stringify!($name), " {} {:?}>"),
                    self.get_destination(),
                    self.state()
                )
            }
        }

        impl $crate::transport::connector::Connector for $name {
            fn connect(&self) {
                self.0.connect()
            }
            fn stop_connecting(&self) -> Result<(), $crate::error::NotConnectingError> {
                self.0.stop_connecting()
            }
            fn disconnect(&self) {
                self.0.disconnect()
            }
            fn get_destination(&self) -> $crate::transport::Address {
                self.0.get_destination()
            }
            fn state(&self) -> $crate::transport::connector::ConnectorState {
                self.0.state()
            }
        }
    };
}
pub(crate) use connector_newtype;

/// What a transport adds to the shared connector: how to dial its destination.
pub(crate) trait Dial: Sized + 'static {
    type Socket: StreamSocket;
    /// Starts attempt `id`: when a connecting socket exists, hand it to
    /// [`BaseConnector::attempt_started`]; on failure, [`BaseConnector::fail_attempt`].
    fn dial(&self, connector: &BaseConnector<Self>, reactor: &Reactor, id: u64);
    /// The socket reported writable: connected (`Ok(true)`), not yet (`Ok(false)`), or failed.
    fn check(socket: &Self::Socket) -> io::Result<bool>;
    /// The local and remote addresses of a connected socket.
    fn addresses(socket: &Self::Socket) -> io::Result<(Address, Address)>;
    /// Where it connects to (Twisted's `getDestination`).
    fn destination(&self) -> Address;
}

/// What a connector reports to: a factory, or `connect_protocol`'s one protocol.
pub(crate) trait ClientOps {
    fn started(&self, c: &Rc<dyn Connector>);
    /// Builds the protocol on `transport`; `None` if refused.
    fn build(&self, transport: Transport, addr: &Address) -> Option<Rc<dyn ProtocolDriver>>;
    /// The built protocol's `connection_made` ran.
    fn running(&self) {}
    fn failed(&self, c: &Rc<dyn Connector>, reason: Failure);
    fn lost(&self, c: &Rc<dyn Connector>, reason: Failure);
    fn do_start(&self) {}
    fn do_stop(&self) {}
}

/// A factory's hooks as [`ClientOps`].
pub(crate) struct FactoryOps(pub(crate) Rc<dyn AnyClientFactory>);

impl ClientOps for FactoryOps {
    fn started(&self, c: &Rc<dyn Connector>) {
        self.0.started(c)
    }
    fn build(&self, transport: Transport, addr: &Address) -> Option<Rc<dyn ProtocolDriver>> {
        self.0.build(addr, transport)
    }
    fn failed(&self, c: &Rc<dyn Connector>, reason: Failure) {
        self.0.failed(c, reason)
    }
    fn lost(&self, c: &Rc<dyn Connector>, reason: Failure) {
        self.0.lost(c, reason)
    }
    fn do_start(&self) {
        self.0.do_start()
    }
    fn do_stop(&self) {
        if let Err(f) = self.0.do_stop() {
            log::error!(target: "twistor::transport", "stop_factory panicked: {f}");
        }
    }
}

struct Attempt<S> {
    socket: Option<S>,
    token: Option<Token>,
    timeout: Option<DelayedCall>,
    id: u64,
}

struct Inner<D: Dial> {
    reactor: WeakReactor,
    dial: D,
    timeout: Option<std::time::Duration>,
    state: Cell<ConnectorState>,
    factory_started: Cell<bool>,
    attempt: RefCell<Option<Attempt<D::Socket>>>,
    next_attempt: Cell<u64>,
    conn: RefCell<Option<Rc<StreamConnection<D::Socket>>>>,
    ops: Box<dyn ClientOps>,
}

/// The shared connector (see the module docs). Cheap to clone.
pub(crate) struct BaseConnector<D: Dial> {
    inner: Rc<Inner<D>>,
}

impl<D: Dial> Clone for BaseConnector<D> {
    fn clone(&self) -> Self {
        BaseConnector {
            inner: self.inner.clone(),
        }
    }
}

impl<D: Dial> BaseConnector<D> {
    /// A disconnected connector; `ops` is what it reports to.
    pub(crate) fn new(
        reactor: WeakReactor,
        dial: D,
        timeout: Option<std::time::Duration>,
        ops: Box<dyn ClientOps>,
    ) -> Self {
        BaseConnector {
            inner: Rc::new(Inner {
                reactor,
                dial,
                timeout,
                state: Cell::new(ConnectorState::Disconnected),
                factory_started: Cell::new(false),
                attempt: RefCell::new(None),
                next_attempt: Cell::new(0),
                conn: RefCell::new(None),
                ops,
            }),
        }
    }

    pub(crate) fn dial(&self) -> &D {
        &self.inner.dial
    }

    fn as_dyn(&self) -> Rc<dyn Connector> {
        Rc::new(self.clone())
    }

    fn current(&self, id: u64) -> bool {
        self.inner.state.get() == ConnectorState::Connecting
            && self
                .inner
                .attempt
                .borrow()
                .as_ref()
                .is_some_and(|a| a.id == id)
    }

    fn start_attempt(&self) {
        let inner = &self.inner;
        if inner.state.get() != ConnectorState::Disconnected {
            return;
        }
        inner.state.set(ConnectorState::Connecting);
        if !inner.factory_started.replace(true) {
            inner.ops.do_start();
        }
        let id = inner.next_attempt.get() + 1;
        inner.next_attempt.set(id);
        *inner.attempt.borrow_mut() = Some(Attempt {
            socket: None,
            token: None,
            timeout: None,
            id,
        });
        inner.ops.started(&self.as_dyn());
        if inner.state.get() != ConnectorState::Connecting {
            return; // stopped from started_connecting
        }
        let Some(reactor) = inner.reactor.upgrade() else {
            return;
        };
        if let Some(t) = inner.timeout {
            let me = self.clone();
            let call = reactor.call_later(t.as_secs_f64(), move || {
                let dest = me.inner.dial.destination();
                me.fail_attempt(
                    id,
                    Failure::new(ConnectTimeoutError(format!(
                        "connecting to {dest} took longer than {} s",
                        t.as_secs_f64()
                    ))),
                );
            });
            if let Some(a) = inner.attempt.borrow_mut().as_mut() {
                a.timeout = Some(call);
            }
        }
        inner.dial.dial(self, &reactor, id);
    }

    /// Attempt `id` has a connecting socket: wait for it to become writable.
    pub(crate) fn attempt_started(&self, reactor: &Reactor, id: u64, socket: D::Socket) {
        if !self.current(id) {
            return;
        }
        let handler = Rc::new(AttemptHandler {
            connector: self.clone(),
            id,
        });
        match reactor.register_source(&socket, Interest::WRITABLE, handler) {
            Ok(token) => {
                if let Some(a) = self.inner.attempt.borrow_mut().as_mut() {
                    a.socket = Some(socket);
                    a.token = Some(token);
                }
            }
            Err(e) => self.fail_attempt(id, connect_error_from_io(e)),
        }
    }

    /// Is attempt `id` still the live one? (A dialer checks after a slow step.)
    pub(crate) fn is_current(&self, id: u64) -> bool {
        self.current(id)
    }

    /// Ends the current attempt (deregisters, cancels the timeout) and returns its socket.
    fn end_attempt(&self, reactor: Option<&Reactor>) -> Option<D::Socket> {
        let attempt = self.inner.attempt.borrow_mut().take()?;
        if let Some(c) = attempt.timeout {
            let _ = c.cancel();
        }
        let mut socket = attempt.socket;
        if let (Some(r), Some(t), Some(s)) = (reactor, attempt.token, socket.as_mut()) {
            r.deregister_source(t, s);
        }
        socket
    }

    /// Attempt `id` failed for `reason` (ignored if it is not the live one).
    pub(crate) fn fail_attempt(&self, id: u64, reason: Failure) {
        if !self.current(id) {
            return;
        }
        let reactor = self.inner.reactor.upgrade();
        drop(self.end_attempt(reactor.as_ref()));
        self.failed(reason);
    }

    /// The attempt is over and failed: tell the factory (which may reconnect).
    fn failed(&self, reason: Failure) {
        self.inner.state.set(ConnectorState::Disconnected);
        self.inner.ops.failed(&self.as_dyn(), reason);
        self.maybe_stop_factory();
    }

    fn maybe_stop_factory(&self) {
        // Reconnecting from the hook keeps the factory started.
        if self.inner.state.get() == ConnectorState::Disconnected
            && self.inner.factory_started.replace(false)
        {
            self.inner.ops.do_stop();
        }
    }

    fn attempt_ready(&self, reactor: &Reactor, id: u64) {
        if !self.current(id) {
            return;
        }
        let status = {
            let attempt = self.inner.attempt.borrow();
            let Some(s) = attempt.as_ref().and_then(|a| a.socket.as_ref()) else {
                return;
            };
            D::check(s)
        };
        match status {
            Ok(true) => self.connected(reactor),
            Ok(false) => {} // spurious wake-up: still connecting
            Err(e) => self.fail_attempt(id, connect_error_from_io(e)),
        }
    }

    fn connected(&self, reactor: &Reactor) {
        let Some(socket) = self.end_attempt(Some(reactor)) else {
            return;
        };
        let established = D::addresses(&socket).and_then(|(host, peer)| {
            let conn = StreamConnection::new(reactor, socket, host, peer.clone())?;
            Ok((conn, peer))
        });
        let (conn, peer) = match established {
            Ok(c) => c,
            Err(e) => return self.failed(connect_error_from_io(e)),
        };
        self.inner.state.set(ConnectorState::Connected);
        let me = self.clone();
        conn.set_on_closed(move |reason| {
            me.inner.conn.borrow_mut().take();
            me.inner.state.set(ConnectorState::Disconnected);
            me.inner.ops.lost(&me.as_dyn(), reason);
            me.maybe_stop_factory();
        });
        *self.inner.conn.borrow_mut() = Some(conn.clone());
        match self.inner.ops.build(conn.transport(), &peer) {
            Some(driver) => {
                conn.start(driver);
                self.inner.ops.running();
            }
            // Refused by the factory: drop the connection.
            None => conn.abort_connection(),
        }
    }
}

impl<D: Dial> Connector for BaseConnector<D> {
    fn connect(&self) {
        self.start_attempt()
    }

    fn stop_connecting(&self) -> Result<(), NotConnectingError> {
        if self.inner.state.get() != ConnectorState::Connecting {
            return Err(NotConnectingError);
        }
        let id = self
            .inner
            .attempt
            .borrow()
            .as_ref()
            .map(|a| a.id)
            .unwrap_or(0);
        self.fail_attempt(id, Failure::new(UserError));
        Ok(())
    }

    fn disconnect(&self) {
        match self.inner.state.get() {
            ConnectorState::Connecting => {
                let _ = self.stop_connecting();
            }
            ConnectorState::Connected => {
                let conn = self.inner.conn.borrow().clone();
                if let Some(c) = conn {
                    c.lose_connection();
                }
            }
            ConnectorState::Disconnected => {}
        }
    }

    fn get_destination(&self) -> Address {
        self.inner.dial.destination()
    }

    fn state(&self) -> ConnectorState {
        self.inner.state.get()
    }
}

struct AttemptHandler<D: Dial> {
    connector: BaseConnector<D>,
    id: u64,
}

impl<D: Dial> SourceHandler for AttemptHandler<D> {
    fn ready(&self, reactor: &Reactor, _ready: Ready) {
        self.connector.attempt_ready(reactor, self.id)
    }
    fn flush(&self, _reactor: &Reactor) {}
    /// The reactor is shutting down or being dropped: the attempt fails now, so its socket is
    /// closed rather than kept open for as long as someone holds the connector.
    fn shutdown(&self, _reactor: &Reactor) {
        self.connector.fail_attempt(
            self.id,
            Failure::new(crate::error::ConnectionLost::because("reactor shutdown")),
        );
    }
}

// ---- connect_protocol ------------------------------------------------------------------------

/// Reports to one protocol's Deferred (Twisted's `ClientCreator`).
struct OneShot<P: crate::protocol::Protocol> {
    protocol: RefCell<Option<P>>,
    handle: RefCell<Option<crate::protocol::Handle<P>>>,
    result: Resolver<crate::protocol::Handle<P>>,
    /// Set by the canceller: the attempt's failure (a `UserError`) must not fire `result`,
    /// which then fails with `CancelledError`.
    cancelled: Rc<Cell<bool>>,
}

impl<P: crate::protocol::Protocol> ClientOps for OneShot<P> {
    fn started(&self, _c: &Rc<dyn Connector>) {}
    fn build(&self, transport: Transport, _addr: &Address) -> Option<Rc<dyn ProtocolDriver>> {
        let p = self.protocol.borrow_mut().take()?;
        let (driver, handle) = crate::protocol::attach(p, transport);
        *self.handle.borrow_mut() = Some(handle);
        Some(driver)
    }
    fn running(&self) {
        // After `connection_made`, as in Twisted.
        let handle = self.handle.borrow_mut().take();
        if let Some(h) = handle {
            let _ = self.result.callback(h);
        }
    }
    fn failed(&self, _c: &Rc<dyn Connector>, reason: Failure) {
        if !self.cancelled.get() {
            let _ = self.result.errback(reason);
        }
    }
    fn lost(&self, _c: &Rc<dyn Connector>, _reason: Failure) {}
}

/// Connects `protocol` with a connector made by `make` and fires with its handle once
/// connected; cancelling the Deferred stops the attempt.
pub(crate) fn connect_one<P, D>(
    protocol: P,
    make: impl FnOnce(Box<dyn ClientOps>) -> BaseConnector<D>,
) -> Deferred<crate::protocol::Handle<P>>
where
    P: crate::protocol::Protocol,
    D: Dial,
{
    let slot: Rc<RefCell<Option<BaseConnector<D>>>> = Rc::new(RefCell::new(None));
    let in_canceller = slot.clone();
    let cancelled = Rc::new(Cell::new(false));
    let was_cancelled = cancelled.clone();
    let (result, fire) =
        Deferred::with_canceller(move |_: &Resolver<crate::protocol::Handle<P>>| {
            was_cancelled.set(true);
            let c = in_canceller.borrow_mut().take();
            if let Some(c) = c {
                c.disconnect();
            }
        });
    let ops = Box::new(OneShot {
        protocol: RefCell::new(Some(protocol)),
        handle: RefCell::new(None),
        result: fire,
        cancelled,
    });
    let c = make(ops);
    *slot.borrow_mut() = Some(c.clone());
    c.connect();
    result
}

//! Protocols and factories: what bytes mean (Twisted's `IProtocol`, `Factory`).
//!
//! A [`Protocol`] is a state machine driven by its transport's events: `connection_made`, then
//! any number of `data_received`, then `connection_lost` exactly once. A [`Factory`] builds one
//! protocol per connection.
//!
//! # Touching a protocol later: [`Handle`]
//!
//! Protocols often start work that finishes later (a Deferred, a `call_later`) and must then
//! update their own state and write to their transport. Every callback gets a [`Context`]
//! whose [`handle`](Context::handle) is a weak, cheap, clonable reference to the protocol;
//! [`Handle::with`] runs a closure on the protocol (with its context) as soon as that is safe:
//! at once if no callback of this protocol is running, otherwise right after the running one
//! returns. It never panics on re-entrancy, and returns `None` once the protocol is gone (the
//! handle is weak: a TCP connection drops its protocol after `connection_lost`; the in-memory
//! test transports keep it, so tests can inspect it afterwards), so there is no
//! `Rc<RefCell<…>>` for the user to juggle.
//!
//! ```
//! use twistor::protocol::{Context, Protocol};
//! use twistor::testing::StringTransport;
//! use twistor::{Clock, Deferred};
//!
//! struct Greeter { clock: Clock, greeted: bool }
//!
//! impl Protocol for Greeter {
//!     fn connection_made(&mut self, cx: &Context<Self>) {
//!         // Greet one second later, from a timer: the handle reaches the protocol then.
//!         let me = cx.handle();
//!         self.clock.call_later(1.0, move || {
//!             me.with(|p, cx| {
//!                 p.greeted = true;
//!                 cx.transport().write(b"hello\r\n");
//!             });
//!         });
//!     }
//!     fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
//! }
//!
//! let clock = Clock::new();
//! let st = StringTransport::new();
//! let handle = st.connect(Greeter { clock: clock.clone(), greeted: false });
//! clock.advance(1.0);
//! assert_eq!(st.value(), b"hello\r\n");
//! assert_eq!(handle.with(|p, _| p.greeted), Some(true));
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};

use self::serial::Serial;
use crate::Failure;
use crate::transport::connector::Connector;
use crate::transport::{Address, Transport};

pub mod connected_datagram;
pub mod datagram;
pub mod reconnect;
pub(crate) mod serial;

/// A stream protocol (Twisted's `Protocol`, with `IHalfCloseableProtocol`'s two methods).
///
/// Only `data_received` is required. Callbacks get the [`Context`]: the transport and a
/// [`Handle`] for later work. A panic in a callback closes the connection; `connection_lost`
/// then gets the panic as its reason (one connection's bug does not take down the others on
/// the same reactor).
pub trait Protocol: Sized + 'static {
    /// The connection is up (Twisted's `connectionMade`).
    #[doc(alias = "connectionMade")]
    fn connection_made(&mut self, _cx: &Context<Self>) {}

    /// Bytes arrived, in any chunking.
    #[doc(alias = "dataReceived")]
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]);

    /// The connection is gone, for `reason`: [`ConnectionDone`](crate::error::ConnectionDone)
    /// for a clean close, [`ConnectionLost`](crate::error::ConnectionLost) (or
    /// [`ConnectionAborted`](crate::error::ConnectionAborted)) otherwise. Called exactly once.
    #[doc(alias = "connectionLost")]
    fn connection_lost(&mut self, _cx: &Context<Self>, _reason: Failure) {}

    /// The peer closed its write side (EOF) and the transport supports half-close. The default
    /// is a protocol that is not half-close aware: it closes the connection (Twisted then
    /// reports `ConnectionDone`).
    #[doc(alias = "readConnectionLost")]
    fn read_connection_lost(&mut self, cx: &Context<Self>) {
        cx.transport().lose_connection();
    }

    /// This side's write direction was shut down (after `lose_write_connection`).
    #[doc(alias = "writeConnectionLost")]
    fn write_connection_lost(&mut self, _cx: &Context<Self>) {}

    /// A descriptor passed by the peer over a UNIX socket (Twisted's
    /// `IFileDescriptorReceiver.fileDescriptorReceived`), before the data that carried it.
    /// The protocol owns it; the default drops it, which closes it.
    #[doc(alias = "fileDescriptorReceived")]
    fn file_descriptor_received(&mut self, _cx: &Context<Self>, _fd: std::os::fd::OwnedFd) {}

    /// The TLS handshake under this protocol completed (Twisted's
    /// `IHandshakeListener.handshakeCompleted`): the peer certificate and the negotiated ALPN
    /// protocol are now on [`Transport::tls`]. Called once per TLS session; never on a
    /// connection without TLS.
    #[doc(alias = "handshakeCompleted")]
    fn handshake_completed(&mut self, _cx: &Context<Self>) {}
}

/// What a protocol callback can reach: its transport, a handle on itself and the factory
/// that built it.
pub struct Context<P> {
    transport: Transport,
    handle: Handle<P>,
    factory: Option<Rc<dyn Any>>,
}

impl<P> Context<P> {
    /// The protocol's transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The factory that built this protocol, if it is an `F` (Twisted's `self.factory`);
    /// `None` for a protocol connected without a factory (`connect_protocol`, the test
    /// transports).
    ///
    /// ```
    /// use std::cell::Cell;
    /// use twistor::prelude::*;
    ///
    /// struct Counter { served: Cell<u32> }
    /// impl Factory for Counter {
    ///     type Protocol = Hello;
    ///     fn build_protocol(&self, _addr: &Address) -> Option<Hello> { Some(Hello) }
    /// }
    /// struct Hello;
    /// impl Protocol for Hello {
    ///     fn connection_made(&mut self, cx: &Context<Self>) {
    ///         if let Some(f) = cx.factory::<Counter>() {
    ///             f.served.set(f.served.get() + 1);
    ///         }
    ///         cx.transport().lose_connection();
    ///     }
    ///     fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
    /// }
    /// let reactor = Reactor::new().unwrap();
    /// let counter = std::rc::Rc::new(Counter { served: Cell::new(0) });
    /// let port = listen_tcp(&reactor, 0, counter.clone()).unwrap();
    /// let _client = std::net::TcpStream::connect(("127.0.0.1", port.port())).unwrap();
    /// while counter.served.get() == 0 {
    ///     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
    /// }
    /// ```
    pub fn factory<F: 'static>(&self) -> Option<Rc<F>> {
        self.factory.clone()?.downcast::<F>().ok()
    }

    /// A handle on the protocol, for work that finishes later.
    pub fn handle(&self) -> Handle<P> {
        self.handle.clone()
    }
}

type Queued<P> = serial::Job<P, Context<P>>;

/// A connected protocol: the protocol, its context and the work queued while it was busy.
pub(crate) struct Slot<P> {
    serial: Serial<P, Context<P>>,
    cx: Context<P>,
    /// `connection_lost` ran: nothing else may be delivered.
    lost: Cell<bool>,
    /// `connection_lost` arrived while a callback was running (the protocol closed itself on
    /// a transport that closes at once): delivered right after that callback.
    pending_lost: RefCell<Option<Failure>>,
}

/// A weak handle on a connected protocol (see the module docs).
pub struct Handle<P> {
    slot: Weak<Slot<P>>,
}

impl<P> Clone for Handle<P> {
    fn clone(&self) -> Self {
        Handle {
            slot: self.slot.clone(),
        }
    }
}

impl<P> fmt::Debug for Handle<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Handle alive={}>", self.slot.strong_count() > 0)
    }
}

impl<P: Protocol> Handle<P> {
    /// Runs `f` on the protocol now and returns its result, if no callback of the protocol is
    /// running; if one is, queues `f` to run right after it and returns `None`. Also `None` if
    /// the protocol is gone. After `connection_lost` it still runs (writes are then ignored by
    /// the closed transport), so state can be inspected.
    ///
    /// ```
    /// use twistor::protocol::{Context, Protocol};
    /// use twistor::testing::StringTransport;
    ///
    /// struct Count(u32);
    /// impl Protocol for Count {
    ///     fn data_received(&mut self, _cx: &Context<Self>, d: &[u8]) { self.0 += d.len() as u32 }
    /// }
    /// let st = StringTransport::new();
    /// let h = st.connect(Count(0));
    /// st.deliver(b"abc");
    /// assert_eq!(h.with(|p, _| p.0), Some(3));
    /// ```
    pub fn with<R>(&self, f: impl FnOnce(&mut P, &Context<P>) -> R + 'static) -> Option<R> {
        let slot = self.slot.upgrade()?;
        let r = match slot.serial.try_run(&slot.cx, f) {
            Ok(r) => r,
            Err(f) => {
                // A callback of this protocol is on the stack: run after it.
                slot.serial.queue(Box::new(move |p, cx| {
                    let _ = f(p, cx);
                }));
                return None;
            }
        };
        slot.run_queued();
        Some(r)
    }

    /// True while the connection exists.
    pub fn alive(&self) -> bool {
        self.slot.upgrade().is_some_and(|s| !s.lost.get())
    }
}

/// What a transport drives: one connected protocol, type-erased.
pub(crate) trait ProtocolDriver {
    /// Calls `connection_made`.
    fn make_connection(&self);
    /// Calls `data_received`.
    fn data_received(&self, data: &[u8]);
    /// Calls `connection_lost` (once; later calls are ignored).
    fn connection_lost(&self, reason: Failure);
    /// Calls `read_connection_lost`.
    fn read_connection_lost(&self);
    /// Calls `write_connection_lost`.
    fn write_connection_lost(&self);
    /// Calls `file_descriptor_received`.
    fn file_descriptor_received(&self, fd: std::os::fd::OwnedFd);
    /// Calls `handshake_completed` (drivers of protocols that never run over TLS ignore it).
    fn handshake_completed(&self) {}
}

impl<P: Protocol> Slot<P> {
    /// After a callback (or a `Handle::with`): queued work, then a deferred `connection_lost`.
    fn run_queued(&self) {
        self.run_jobs();
        if self.serial.busy() {
            return; // still inside an outer callback: it finishes the job
        }
        let pending = self.pending_lost.borrow_mut().take();
        if let Some(reason) = pending {
            self.connection_lost(reason);
        }
    }

    /// The queue stops at `connection_lost` and at the first panic (which closes the
    /// connection).
    fn run_jobs(&self) {
        self.serial.drain(
            &self.cx,
            || self.lost.get(),
            |payload| {
                self.panicked(&*payload);
                false
            },
        );
    }

    /// A callback panicked: close the connection with the panic as the reason.
    fn panicked(&self, payload: &(dyn std::any::Any + Send)) {
        let f = Failure::from_panic(payload);
        crate::report_error!(target: "twistor::protocol", "protocol callback panicked, closing the connection: {f}");
        self.cx.transport.abort_with(f);
    }

    /// Runs one callback. A panic closes the connection with the panic as the reason.
    ///
    /// An event that arrives while a callback of this protocol is running (an in-memory
    /// transport driven from inside a callback) is queued and delivered right after it, in
    /// order: `make` builds the owned closure only then, so the common path copies nothing.
    fn call<F>(&self, f: F, make: impl FnOnce(F) -> Queued<P>)
    where
        F: FnOnce(&mut P, &Context<P>),
    {
        if self.lost.get() {
            return;
        }
        let Some(outcome) = self.serial.run_or_queue(&self.cx, f, make) else {
            return;
        };
        match outcome {
            Ok(()) => self.run_queued(),
            Err(payload) => self.panicked(&*payload),
        }
    }
}

impl<P: Protocol> ProtocolDriver for Slot<P> {
    fn make_connection(&self) {
        self.call(|p, cx| p.connection_made(cx), |f| Box::new(f));
    }
    fn data_received(&self, data: &[u8]) {
        self.call(
            |p, cx| p.data_received(cx, data),
            |_| {
                let owned = data.to_vec();
                Box::new(move |p, cx| p.data_received(cx, &owned))
            },
        );
    }
    fn connection_lost(&self, reason: Failure) {
        if self.lost.get() {
            return;
        }
        if self.serial.busy() {
            // A callback of this protocol is running (it closed its own connection on a
            // transport that closes at once): deliver right after it returns.
            let mut pending = self.pending_lost.borrow_mut();
            if pending.is_none() {
                *pending = Some(reason);
            }
            return;
        }
        let lost = move |p: &mut P, cx: &Context<P>| p.connection_lost(cx, reason);
        // Not busy (checked above), so it runs.
        let Some(r) = self.serial.run_or_else(&self.cx, lost, drop) else {
            return;
        };
        self.lost.set(true);
        // Work queued for a gone connection is dropped.
        self.serial.clear();
        if let Err(p) = r {
            crate::report_error!(
                target: "twistor::protocol",
                "connection_lost panicked: {}",
                Failure::from_panic(&*p)
            );
        }
    }
    fn read_connection_lost(&self) {
        self.call(|p, cx| p.read_connection_lost(cx), |f| Box::new(f));
    }
    fn write_connection_lost(&self) {
        self.call(|p, cx| p.write_connection_lost(cx), |f| Box::new(f));
    }
    fn file_descriptor_received(&self, fd: std::os::fd::OwnedFd) {
        self.call(
            move |p, cx| p.file_descriptor_received(cx, fd),
            |f| Box::new(f),
        );
    }
    fn handshake_completed(&self) {
        self.call(|p, cx| p.handshake_completed(cx), |f| Box::new(f));
    }
}

/// Connects `protocol` to `transport`: returns the driver the transport calls and the handle.
/// `connection_made` is not called yet (the transport calls `make_connection` when ready).
pub(crate) fn attach<P: Protocol>(
    protocol: P,
    transport: Transport,
) -> (Rc<dyn ProtocolDriver>, Handle<P>) {
    attach_with_factory(protocol, transport, None)
}

/// [`attach`] for a protocol built by `factory` (what [`Context::factory`] returns).
pub(crate) fn attach_with_factory<P: Protocol>(
    protocol: P,
    transport: Transport,
    factory: Option<Rc<dyn Any>>,
) -> (Rc<dyn ProtocolDriver>, Handle<P>) {
    let slot = Rc::new_cyclic(|weak: &Weak<Slot<P>>| Slot {
        serial: Serial::new(protocol),
        cx: Context {
            transport,
            handle: Handle { slot: weak.clone() },
            factory,
        },
        lost: Cell::new(false),
        pending_lost: RefCell::new(None),
    });
    let handle = Handle {
        slot: Rc::downgrade(&slot),
    };
    (slot, handle)
}

/// Builds a protocol for each connection (Twisted's `Factory` / `ServerFactory`).
pub trait Factory: 'static {
    /// The protocol it builds.
    type Protocol: Protocol;

    /// A protocol for a connection from/to `addr`, or `None` to refuse the connection.
    #[doc(alias = "buildProtocol")]
    fn build_protocol(&self, addr: &Address) -> Option<Self::Protocol>;

    /// Called when the first port or connector starts using this factory (Twisted's
    /// `startFactory`). The count is kept per `Rc` of the factory: several ports given the
    /// same `Rc` start it once.
    #[doc(alias = "startFactory")]
    fn start_factory(&self) {}

    /// Called when the last port or connector stops using it (Twisted's `stopFactory`). A
    /// panic here fails the Deferred of the `stop_listening` that made the call.
    #[doc(alias = "stopFactory")]
    fn stop_factory(&self) {}
}

/// A factory for client connections (Twisted's `ClientFactory`). The connector is given as
/// an `Rc`, so a factory can keep it and call `connect()` again later.
pub trait ClientFactory: Factory {
    /// A connection attempt started.
    #[doc(alias = "startedConnecting")]
    fn started_connecting(&self, _connector: &Rc<dyn Connector>) {}
    /// A connection attempt failed.
    #[doc(alias = "clientConnectionFailed")]
    fn client_connection_failed(&self, _connector: &Rc<dyn Connector>, _reason: Failure) {}
    /// An established connection was lost (after the protocol's `connection_lost`).
    #[doc(alias = "clientConnectionLost")]
    fn client_connection_lost(&self, _connector: &Rc<dyn Connector>, _reason: Failure) {}
}

/// A factory from a closure (Twisted's `Factory.forProtocol`).
///
/// ```
/// use twistor::protocol::{for_protocol, Context, Factory, Protocol};
/// use twistor::transport::Address;
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) { cx.transport().write(data) }
/// }
/// let f = for_protocol(|| Echo);
/// assert!(f.build_protocol(&Address::Memory("x".into())).is_some());
/// ```
#[doc(alias = "forProtocol")]
pub fn for_protocol<P: Protocol>(make: impl Fn() -> P + 'static) -> FactoryFn<P> {
    FactoryFn {
        make: Box::new(move |_| Some(make())),
    }
}

/// The factory [`for_protocol`] makes (and [`FactoryFn::new`] for one that sees the address).
pub struct FactoryFn<P> {
    make: MakeFn<P>,
}

type MakeFn<P> = Box<dyn Fn(&Address) -> Option<P>>;

impl<P: Protocol> FactoryFn<P> {
    /// A factory calling `make` with the peer's address; `None` refuses the connection.
    pub fn new(make: impl Fn(&Address) -> Option<P> + 'static) -> Self {
        FactoryFn {
            make: Box::new(make),
        }
    }
}

impl<P: Protocol> Factory for FactoryFn<P> {
    type Protocol = P;
    fn build_protocol(&self, addr: &Address) -> Option<P> {
        (self.make)(addr)
    }
}

impl<P: Protocol> ClientFactory for FactoryFn<P> {}

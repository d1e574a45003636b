//! Datagram protocols (Twisted's `DatagramProtocol`): what datagrams mean.
//!
//! A [`DatagramProtocol`] is not built per connection: one protocol serves a port, and may
//! serve several ports in turn. `start_protocol` runs when it gets its first port (the 0 → 1
//! transition) and `stop_protocol` when it loses its last (1 → 0), so listening, stopping and
//! listening again gives start, stop, start.
//!
//! A panic in a callback is reported and contained: the port keeps serving, and the next
//! datagram reaches the protocol as usual (a datagram port has no connection to close).
//!
//! The protocol is reached later through a [`DatagramHandle`], as stream protocols are through
//! their `Handle`: [`DatagramHandle::with`] runs at once if no callback of the protocol is
//! running, otherwise right after the running one returns, and returns `None` once the
//! protocol is gone.
//!
//! # One implementation, any address type
//!
//! Everything here is generic over the address type `A` a port's datagrams come from:
//! [`SocketAddr`] by default (UDP: every `impl DatagramProtocol for X` means that), and
//! [`UnixDatagramAddress`](crate::transport::unix::UnixDatagramAddress) for UNIX datagram
//! sockets (`impl DatagramProtocol<UnixDatagramAddress> for X`). The slot, the handle, the
//! panic containment and the start/stop count exist once, for every `A`; a UNIX socket
//! connected to one peer serves its
//! [`ConnectedDatagramProtocol`](super::connected_datagram::ConnectedDatagramProtocol)
//! through an adapter that is a `DatagramProtocol` over the UNIX address type.
//!
//! [`DatagramPort`], the port a protocol's context names, is defined here and names no socket
//! type: each kind of port (UDP, UNIX datagrams) implements a crate-private trait behind it.
//! So the transports depend on this module and it on no transport, and a port and its
//! protocol refer to each other only while the port serves it (the protocol's context forgets
//! the port on `stop_protocol`). What only UDP ports have (a port number, `connect`,
//! broadcast) is on `DatagramPort<SocketAddr>` alone.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};

use super::serial::Serial;
use crate::error::UdpError;
use crate::reactor::Reactor;
use crate::transport::Address;
use crate::{Deferred, Failure};

/// A datagram protocol (Twisted's `DatagramProtocol`). Only `datagram_received` is required.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
/// use twistor::transport::udp::listen_udp;
///
/// struct Echo;
/// impl DatagramProtocol for Echo {
///     fn datagram_received(&mut self, cx: &DatagramContext<Self>, data: &[u8], from: std::net::SocketAddr) {
///         if let Some(port) = cx.transport() {
///             let _ = port.write(data, Some(from));
///         }
///     }
/// }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_udp(&reactor, 0, Echo).unwrap();
/// assert_ne!(port.port(), 0);
/// ```
#[doc(alias = "AbstractDatagramProtocol")]
pub trait DatagramProtocol<A = SocketAddr>: Sized + 'static {
    /// The protocol got its first port (Twisted's `startProtocol`).
    #[doc(alias = "startProtocol")]
    fn start_protocol(&mut self, _cx: &DatagramContext<Self, A>) {}

    /// The protocol lost its last port (Twisted's `stopProtocol`).
    #[doc(alias = "stopProtocol")]
    fn stop_protocol(&mut self, _cx: &DatagramContext<Self, A>) {}

    /// A datagram arrived from `from`.
    #[doc(alias = "datagramReceived")]
    fn datagram_received(&mut self, cx: &DatagramContext<Self, A>, data: &[u8], from: A);

    /// In connected mode, the peer refused an earlier datagram (an ICMP error came back).
    #[doc(alias = "connectionRefused")]
    fn connection_refused(&mut self, _cx: &DatagramContext<Self, A>) {}
}

/// What a datagram protocol's callbacks can reach: its port and a handle on itself.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
/// use twistor::transport::udp::listen_udp;
///
/// struct Started(bool);
/// impl DatagramProtocol for Started {
///     fn start_protocol(&mut self, cx: &DatagramContext<Self>) {
///         self.0 = cx.transport().is_some();
///     }
///     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_udp(&reactor, 0, Started(false)).unwrap();
/// assert_eq!(port.handle::<Started>().unwrap().with(|p, _| p.0), Some(true));
/// ```
pub struct DatagramContext<P, A = SocketAddr> {
    transport: RefCell<Option<DatagramPort<A>>>,
    handle: DatagramHandle<P, A>,
}

impl<P, A> DatagramContext<P, A> {
    /// The port the protocol is serving (the latest one, if several), `None` when it serves
    /// none (Twisted resets `transport` to `None` when the port stops). See the type's example.
    pub fn transport(&self) -> Option<DatagramPort<A>> {
        self.transport.borrow().clone()
    }

    /// A handle on the protocol, for work that finishes later; see [`DatagramHandle::with`].
    pub fn handle(&self) -> DatagramHandle<P, A> {
        self.handle.clone()
    }
}

/// One datagram protocol and its port count (shared by the ports serving it).
#[doc(hidden)]
pub struct DatagramSlot<P, A = SocketAddr> {
    serial: Serial<P, DatagramContext<P, A>>,
    cx: DatagramContext<P, A>,
    ports: Cell<usize>,
}

/// A weak handle on a datagram protocol (see the module docs).
pub struct DatagramHandle<P, A = SocketAddr> {
    slot: Weak<DatagramSlot<P, A>>,
}

impl<P, A> Clone for DatagramHandle<P, A> {
    fn clone(&self) -> Self {
        DatagramHandle {
            slot: self.slot.clone(),
        }
    }
}

impl<P, A> fmt::Debug for DatagramHandle<P, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<DatagramHandle alive={}>", self.slot.strong_count() > 0)
    }
}

impl<P: DatagramProtocol<A>, A: 'static> DatagramHandle<P, A> {
    /// Runs `f` on the protocol now and returns its result, if no callback of the protocol
    /// is running; if one is, queues `f` to run right after it and returns `None`. Also
    /// `None` once the protocol is gone (no port and no [`DatagramPort`] keeps it).
    ///
    /// ```
    /// use twistor::prelude::*;
    /// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// use twistor::transport::udp::listen_udp;
    ///
    /// struct Count(u32);
    /// impl DatagramProtocol for Count {
    ///     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {
    ///         self.0 += 1;
    ///     }
    /// }
    /// let reactor = Reactor::new().unwrap();
    /// let port = listen_udp(&reactor, 0, Count(0)).unwrap();
    /// let h = port.handle::<Count>().unwrap();
    /// assert_eq!(h.with(|p, _| p.0), Some(0));
    /// ```
    pub fn with<R>(
        &self,
        f: impl FnOnce(&mut P, &DatagramContext<P, A>) -> R + 'static,
    ) -> Option<R> {
        let slot = self.slot.upgrade()?;
        let r = match slot.serial.try_run(&slot.cx, f) {
            Ok(r) => r,
            Err(f) => {
                slot.serial.queue(Box::new(move |p, cx| {
                    let _ = f(p, cx);
                }));
                return None;
            }
        };
        slot.run_queued();
        Some(r)
    }

    /// True while the protocol exists (a port or a [`DatagramPort`] keeps it).
    ///
    /// ```
    /// use twistor::prelude::*;
    /// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// use twistor::transport::udp::listen_udp;
    ///
    /// struct Sink;
    /// impl DatagramProtocol for Sink {
    ///     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// }
    /// let reactor = Reactor::new().unwrap();
    /// let port = listen_udp(&reactor, 0, Sink).unwrap();
    /// let handle = port.handle::<Sink>().unwrap();
    /// assert!(handle.alive());
    /// ```
    pub fn alive(&self) -> bool {
        self.slot.strong_count() > 0
    }

    pub(crate) fn slot(&self) -> Option<Rc<DatagramSlot<P, A>>> {
        self.slot.upgrade()
    }
}

/// What a datagram port drives: one protocol, type-erased.
pub(crate) trait DatagramDriver<A = SocketAddr> {
    /// A port starts serving the protocol (Twisted's `makeConnection` + `doStart`).
    fn do_start(&self, port: DatagramPort<A>);
    /// A port stopped serving it (`doStop`).
    fn do_stop(&self);
    fn datagram_received(&self, data: &[u8], from: A);
    fn connection_refused(&self);
    /// The slot itself, for [`DatagramPort::handle`].
    fn as_any(self: Rc<Self>) -> Rc<dyn Any>;
}

impl<P: DatagramProtocol<A>, A: 'static> DatagramSlot<P, A> {
    pub(crate) fn new(proto: P) -> Rc<Self> {
        Rc::new_cyclic(|me| DatagramSlot {
            serial: Serial::new(proto),
            cx: DatagramContext {
                transport: RefCell::new(None),
                handle: DatagramHandle { slot: me.clone() },
            },
            ports: Cell::new(0),
        })
    }

    pub(crate) fn handle_of(slot: &Rc<Self>) -> DatagramHandle<P, A> {
        DatagramHandle {
            slot: Rc::downgrade(slot),
        }
    }

    /// A panic in a queued job is reported and the queue goes on, as the port does.
    fn run_queued(&self) {
        self.serial.drain(
            &self.cx,
            || false,
            |payload| {
                report_panic(&*payload);
                true
            },
        );
    }

    /// Runs one callback; a panic is reported and the port goes on serving. An event that
    /// arrives while a callback of the protocol runs (a write inside `datagram_received` that
    /// learns of a refusal, a port started from a callback) runs right after it.
    pub(crate) fn call(&self, f: impl FnOnce(&mut P, &DatagramContext<P, A>) + 'static) {
        let Some(outcome) = self.serial.run_or_queue(&self.cx, f, |f| Box::new(f)) else {
            return;
        };
        if let Err(payload) = outcome {
            report_panic(&*payload);
        }
        self.run_queued();
    }
}

fn report_panic(payload: &(dyn Any + Send)) {
    let f = Failure::from_panic(payload);
    crate::report_error!(target: "twistor::datagram", "datagram protocol callback panicked, port keeps serving: {f}");
}

impl<P: DatagramProtocol<A>, A: 'static> DatagramDriver<A> for DatagramSlot<P, A> {
    fn do_start(&self, port: DatagramPort<A>) {
        *self.cx.transport.borrow_mut() = Some(port);
        let n = self.ports.get();
        self.ports.set(n + 1);
        if n == 0 {
            self.call(|p, cx| p.start_protocol(cx));
        }
    }
    fn do_stop(&self) {
        let n = self.ports.get();
        if n == 0 {
            return;
        }
        self.ports.set(n - 1);
        if n == 1 {
            // Taken out before the callback runs, and dropped after: the port may be the
            // last owner of this slot's cycle.
            let port = self.cx.transport.borrow_mut().take();
            self.call(|p, cx| p.stop_protocol(cx));
            drop(port);
        }
    }
    fn datagram_received(&self, data: &[u8], from: A) {
        // Busy needs a callback that runs the reactor (only the reactor reads): the
        // datagram is dropped, as the network may drop it.
        let received = |p: &mut P, cx: &DatagramContext<P, A>| p.datagram_received(cx, data, from);
        let Some(outcome) = self.serial.run_or_else(&self.cx, received, drop) else {
            return;
        };
        if let Err(payload) = outcome {
            report_panic(&*payload);
        }
        self.run_queued();
    }
    fn connection_refused(&self) {
        self.call(|p, cx| p.connection_refused(cx));
    }
    fn as_any(self: Rc<Self>) -> Rc<dyn Any> {
        self
    }
}

/// What [`listen_udp`](crate::transport::udp::listen_udp) (and, over UNIX addresses,
/// [`listen_unix_datagram`](crate::transport::unix::listen_unix_datagram)) accepts as its
/// protocol: a new protocol, or a handle on one that served (or serves) another port.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
/// use twistor::transport::udp::listen_udp;
///
/// struct Sink;
/// impl DatagramProtocol for Sink {
///     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let first = listen_udp(&reactor, 0, Sink).unwrap();
/// let handle = first.handle::<Sink>().unwrap();
/// let second = listen_udp(&reactor, 0, &handle).unwrap();
/// assert!(second.handle::<Sink>().is_some());
/// ```
pub trait IntoDatagramProtocol<A = SocketAddr> {
    /// The protocol type.
    type Protocol: DatagramProtocol<A>;
    /// The shared slot, or `None` if the handle's protocol is gone.
    #[doc(hidden)]
    fn into_slot(self) -> Option<Rc<DatagramSlot<Self::Protocol, A>>>;
}

// One pair of impls per address type: a blanket impl over the address type would conflict
// (another crate may make `&DatagramHandle<P, Its>` a `DatagramProtocol<Its>`).
impl<P: DatagramProtocol> IntoDatagramProtocol for P {
    type Protocol = P;
    fn into_slot(self) -> Option<Rc<DatagramSlot<P>>> {
        Some(DatagramSlot::new(self))
    }
}

impl<P: DatagramProtocol> IntoDatagramProtocol for &DatagramHandle<P> {
    type Protocol = P;
    fn into_slot(self) -> Option<Rc<DatagramSlot<P>>> {
        self.slot()
    }
}

/// What a datagram port does, behind [`DatagramPort`] (implemented by each kind of port).
pub(crate) trait PortOps<A = SocketAddr> {
    fn host(&self) -> Address;
    /// The peer of a connected port.
    fn peer(&self) -> Option<Address> {
        None
    }
    /// The protocol's slot, for [`DatagramPort::handle`].
    fn slot(&self) -> Rc<dyn Any>;
    /// The port itself, for what only some kinds of port have (a multicast port's groups).
    fn as_any(self: Rc<Self>) -> Rc<dyn Any>;
    fn write(&self, datagram: &[u8], addr: Option<A>) -> Result<(), UdpError>;
    fn stop(&self, reactor: &Reactor);
    fn dropped(&self) -> u64;
    // Only UDP ports have these; [`DatagramPort`] offers them for `SocketAddr` ports only.
    fn connect(&self, _host: &str, _port: u16) -> Result<(), UdpError> {
        Err(unsupported())
    }
    fn set_broadcast(&self, _allowed: bool) -> Result<(), UdpError> {
        Err(unsupported())
    }
    fn broadcast(&self) -> Result<bool, UdpError> {
        Err(unsupported())
    }
}

fn unsupported() -> UdpError {
    UdpError::Io(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// A datagram port: a UDP port (Twisted's `udp.Port`, also named
/// [`UdpPort`](crate::transport::udp::UdpPort)) or a UNIX datagram port (`unix.DatagramPort`
/// and `ConnectedDatagramPort`, also named
/// [`UnixDatagramPort`](crate::transport::unix::UnixDatagramPort)); clones share the port.
/// A connected port (connected UDP, or a UNIX port from `connect_unix_datagram`) writes with
/// no address: Twisted's `ConnectedDatagramPort.write(data)` is `write(data, None)`.
///
/// ```
/// use std::net::SocketAddr;
/// use twistor::prelude::*;
/// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
/// use twistor::transport::udp::{listen_udp_with, UdpListenOptions};
///
/// struct Echo;
/// impl DatagramProtocol for Echo {
///     fn datagram_received(&mut self, cx: &DatagramContext<Self>, data: &[u8], from: SocketAddr) {
///         if let Some(port) = cx.transport() {
///             let _ = port.write(data, Some(from));
///         }
///     }
/// }
/// let reactor = Reactor::new().unwrap();
/// let mut opts = UdpListenOptions::default();
/// opts.interface = "127.0.0.1".into();
/// let port = listen_udp_with(&reactor, 0, Echo, opts).unwrap();
/// let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// client.set_nonblocking(true).unwrap();
/// client.send_to(b"ping", port.get_host().socket_addr().unwrap()).unwrap();
/// let mut buf = [0u8; 8];
/// let n = loop {
///     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
///     if let Ok((n, _)) = client.recv_from(&mut buf) {
///         break n;
///     }
/// };
/// assert_eq!(&buf[..n], b"ping");
/// ```
pub struct DatagramPort<A = SocketAddr> {
    inner: Rc<dyn PortOps<A>>,
}

impl<A> Clone for DatagramPort<A> {
    fn clone(&self) -> Self {
        DatagramPort {
            inner: self.inner.clone(),
        }
    }
}

impl<A> std::fmt::Debug for DatagramPort<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<DatagramPort {}>", self.inner.host())
    }
}

impl<A: 'static> DatagramPort<A> {
    pub(crate) fn new(inner: Rc<dyn PortOps<A>>) -> DatagramPort<A> {
        DatagramPort { inner }
    }

    /// The port's implementation, for the views only some kinds of port have.
    pub(crate) fn ops_any(&self) -> Rc<dyn Any> {
        self.inner.clone().as_any()
    }

    /// The address it is bound to (with the real port when 0 was asked for).
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::udp::listen_udp;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// # let port = listen_udp(&reactor, 0, Sink).unwrap();
    /// assert!(matches!(port.get_host(), twistor::transport::Address::Udp(_)));
    /// ```
    #[doc(alias = "getHost")]
    pub fn get_host(&self) -> Address {
        self.inner.host()
    }

    /// The peer of a connected port; `None` for a port that is not connected (Twisted's
    /// `getPeer`, which only connected ports have).
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::udp::listen_udp;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// # let port = listen_udp(&reactor, 0, Sink).unwrap();
    /// assert_eq!(port.get_peer(), None);
    /// ```
    #[doc(alias = "getPeer")]
    pub fn get_peer(&self) -> Option<Address> {
        self.inner.peer()
    }

    /// A handle on its protocol, if that is a `P`.
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::udp::listen_udp;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// # let port = listen_udp(&reactor, 0, Sink).unwrap();
    /// assert!(port.handle::<Sink>().is_some());
    /// # struct Other;
    /// # impl DatagramProtocol for Other {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// assert!(port.handle::<Other>().is_none());
    /// ```
    pub fn handle<P: DatagramProtocol<A>>(&self) -> Option<DatagramHandle<P, A>> {
        let slot = self.inner.slot().downcast::<DatagramSlot<P, A>>().ok()?;
        Some(DatagramSlot::handle_of(&slot))
    }

    /// Sends one datagram. In unconnected mode `addr` is required (for UDP, of the port's
    /// family; for UNIX, a named address: an unbound sender cannot be written to); in
    /// connected mode it must be `None` or the connected address. A full socket buffer
    /// drops the datagram and counts it ([`dropped_writes`](Self::dropped_writes)).
    ///
    /// ```
    /// use twistor::prelude::*;
    /// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// use twistor::transport::udp::{listen_udp, UdpError};
    ///
    /// struct Sink;
    /// impl DatagramProtocol for Sink {
    ///     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// }
    /// let reactor = Reactor::new().unwrap();
    /// let port = listen_udp(&reactor, 0, Sink).unwrap();
    /// assert!(matches!(port.write(b"x", None), Err(UdpError::InvalidAddress(_))));
    /// let too_long = vec![0u8; 65_508];
    /// let to = "127.0.0.1:9".parse().ok();
    /// assert!(matches!(port.write(&too_long, to), Err(UdpError::MessageLength(_))));
    /// ```
    pub fn write(&self, datagram: &[u8], addr: Option<A>) -> Result<(), UdpError> {
        self.inner.write(datagram, addr)
    }

    /// Sends the concatenation of `parts` as one datagram (Twisted's `writeSequence`).
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::udp::listen_udp;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// # let port = listen_udp(&reactor, 0, Sink).unwrap();
    /// let to = port.get_host().socket_addr().map(|a| std::net::SocketAddr::new([127, 0, 0, 1].into(), a.port()));
    /// port.write_sequence(&[b"one ", b"datagram"], to).unwrap();
    /// ```
    #[doc(alias = "writeSequence")]
    pub fn write_sequence(&self, parts: &[&[u8]], addr: Option<A>) -> Result<(), UdpError> {
        self.write(&parts.concat(), addr)
    }

    /// Stops the port; the Deferred fires on a later turn, after the protocol's
    /// `stop_protocol` if this was its last port.
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::udp::listen_udp;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// # let port = listen_udp(&reactor, 0, Sink).unwrap();
    /// let stopped = port.stop_listening(&reactor);
    /// while !stopped.has_result() {
    ///     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
    /// }
    /// assert!(port.write(b"x", "127.0.0.1:9".parse().ok()).is_err());
    /// ```
    #[doc(alias = "stopListening")]
    pub fn stop_listening(&self, reactor: &Reactor) -> Deferred<()> {
        let (d, fire) = Deferred::new();
        let inner = self.inner.clone();
        let r = reactor.clone();
        reactor.call_later(0.0, move || {
            inner.stop(&r);
            let _ = fire.callback(());
        });
        d
    }

    /// Datagrams dropped because the socket buffer was full.
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::udp::listen_udp;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// # let port = listen_udp(&reactor, 0, Sink).unwrap();
    /// assert_eq!(port.dropped_writes(), 0);
    /// ```
    pub fn dropped_writes(&self) -> u64 {
        self.inner.dropped()
    }
}

/// What only UDP ports have: a port number, connected mode, broadcast.
impl DatagramPort<SocketAddr> {
    /// The port number it is bound to.
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::udp::listen_udp;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// # let port = listen_udp(&reactor, 0, Sink).unwrap();
    /// assert_eq!(port.port(), port.get_host().socket_addr().unwrap().port());
    /// ```
    pub fn port(&self) -> u16 {
        self.inner.host().socket_addr().map_or(0, |a| a.port())
    }

    /// Connects the port to one peer (connected UDP): only its datagrams are received, writes
    /// need no address, and ICMP errors come back as `connection_refused`. `host` must be an
    /// IP literal; a second `connect` fails.
    ///
    /// ```
    /// use twistor::prelude::*;
    /// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// use twistor::transport::udp::{listen_udp, UdpError};
    ///
    /// struct Sink;
    /// impl DatagramProtocol for Sink {
    ///     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// }
    /// let reactor = Reactor::new().unwrap();
    /// let port = listen_udp(&reactor, 0, Sink).unwrap();
    /// assert!(matches!(port.connect("localhost", 80), Err(UdpError::InvalidAddress(_))));
    /// port.connect("127.0.0.1", 80).unwrap();
    /// assert!(matches!(port.connect("127.0.0.1", 80), Err(UdpError::AlreadyConnected)));
    /// ```
    pub fn connect(&self, host: &str, port: u16) -> Result<(), UdpError> {
        self.inner.connect(host, port)
    }

    /// Allows or forbids sending to broadcast addresses (`SO_BROADCAST`).
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::udp::listen_udp;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// # let port = listen_udp(&reactor, 0, Sink).unwrap();
    /// port.set_broadcast_allowed(true).unwrap();
    /// assert!(port.get_broadcast_allowed().unwrap());
    /// ```
    #[doc(alias = "setBroadcastAllowed")]
    pub fn set_broadcast_allowed(&self, allowed: bool) -> Result<(), UdpError> {
        self.inner.set_broadcast(allowed)
    }

    /// Whether sending to broadcast addresses is allowed.
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::udp::listen_udp;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// # let port = listen_udp(&reactor, 0, Sink).unwrap();
    /// assert!(!port.get_broadcast_allowed().unwrap());
    /// ```
    #[doc(alias = "getBroadcastAllowed")]
    pub fn get_broadcast_allowed(&self) -> Result<bool, UdpError> {
        self.inner.broadcast()
    }
}

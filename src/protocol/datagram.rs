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

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::{Rc, Weak};

use crate::Failure;
use crate::transport::udp::UdpPort;

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
pub trait DatagramProtocol: Sized + 'static {
    /// The protocol got its first port (Twisted's `startProtocol`).
    #[doc(alias = "startProtocol")]
    fn start_protocol(&mut self, _cx: &DatagramContext<Self>) {}

    /// The protocol lost its last port (Twisted's `stopProtocol`).
    #[doc(alias = "stopProtocol")]
    fn stop_protocol(&mut self, _cx: &DatagramContext<Self>) {}

    /// A datagram arrived from `from`.
    #[doc(alias = "datagramReceived")]
    fn datagram_received(&mut self, cx: &DatagramContext<Self>, data: &[u8], from: SocketAddr);

    /// In connected mode, the peer refused an earlier datagram (an ICMP error came back).
    #[doc(alias = "connectionRefused")]
    fn connection_refused(&mut self, _cx: &DatagramContext<Self>) {}
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
pub struct DatagramContext<P> {
    transport: RefCell<Option<UdpPort>>,
    handle: DatagramHandle<P>,
}

impl<P> DatagramContext<P> {
    /// The port the protocol is serving (the latest one, if several), `None` when it serves
    /// none (Twisted resets `transport` to `None` when the port stops). See the type's example.
    pub fn transport(&self) -> Option<UdpPort> {
        self.transport.borrow().clone()
    }

    /// A handle on the protocol, for work that finishes later; see [`DatagramHandle::with`].
    pub fn handle(&self) -> DatagramHandle<P> {
        self.handle.clone()
    }
}

type Queued<P> = Box<dyn FnOnce(&mut P, &DatagramContext<P>)>;

/// One datagram protocol and its port count (shared by the ports serving it).
#[doc(hidden)]
pub struct DatagramSlot<P> {
    proto: RefCell<P>,
    cx: DatagramContext<P>,
    ports: Cell<usize>,
    queued: RefCell<VecDeque<Queued<P>>>,
}

/// A weak handle on a datagram protocol (see the module docs).
pub struct DatagramHandle<P> {
    slot: Weak<DatagramSlot<P>>,
}

impl<P> Clone for DatagramHandle<P> {
    fn clone(&self) -> Self {
        DatagramHandle {
            slot: self.slot.clone(),
        }
    }
}

impl<P> fmt::Debug for DatagramHandle<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<DatagramHandle alive={}>", self.slot.strong_count() > 0)
    }
}

impl<P: DatagramProtocol> DatagramHandle<P> {
    /// Runs `f` on the protocol now and returns its result, if no callback of the protocol
    /// is running; if one is, queues `f` to run right after it and returns `None`. Also
    /// `None` once the protocol is gone (no port and no [`UdpPort`] keeps it).
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
    pub fn with<R>(&self, f: impl FnOnce(&mut P, &DatagramContext<P>) -> R + 'static) -> Option<R> {
        let slot = self.slot.upgrade()?;
        let r = match slot.proto.try_borrow_mut() {
            Ok(mut p) => f(&mut p, &slot.cx),
            Err(_) => {
                let mut f = Some(f);
                slot.queued.borrow_mut().push_back(Box::new(move |p, cx| {
                    if let Some(f) = f.take() {
                        let _ = f(p, cx);
                    }
                }));
                return None;
            }
        };
        slot.run_queued();
        Some(r)
    }

    /// True while the protocol exists (a port or a [`UdpPort`] keeps it).
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

    pub(crate) fn slot(&self) -> Option<Rc<DatagramSlot<P>>> {
        self.slot.upgrade()
    }
}

/// What a datagram port drives: one protocol, type-erased.
pub(crate) trait DatagramDriver {
    /// A port starts serving the protocol (Twisted's `makeConnection` + `doStart`).
    fn do_start(&self, port: UdpPort);
    /// A port stopped serving it (`doStop`).
    fn do_stop(&self);
    fn datagram_received(&self, data: &[u8], from: SocketAddr);
    fn connection_refused(&self);
    /// The slot itself, for [`UdpPort::handle`].
    fn as_any(self: Rc<Self>) -> Rc<dyn Any>;
}

impl<P: DatagramProtocol> DatagramSlot<P> {
    pub(crate) fn new(proto: P) -> Rc<Self> {
        Rc::new_cyclic(|me| DatagramSlot {
            proto: RefCell::new(proto),
            cx: DatagramContext {
                transport: RefCell::new(None),
                handle: DatagramHandle { slot: me.clone() },
            },
            ports: Cell::new(0),
            queued: RefCell::new(VecDeque::new()),
        })
    }

    pub(crate) fn handle_of(slot: &Rc<Self>) -> DatagramHandle<P> {
        DatagramHandle {
            slot: Rc::downgrade(slot),
        }
    }

    fn run_queued(&self) {
        loop {
            let Some(job) = self.queued.borrow_mut().pop_front() else {
                return;
            };
            let Ok(mut p) = self.proto.try_borrow_mut() else {
                self.queued.borrow_mut().push_front(job);
                return;
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| job(&mut p, &self.cx)));
            drop(p);
            if let Err(payload) = outcome {
                report_panic(&*payload);
            }
        }
    }

    /// Runs one callback; a panic is reported and the port goes on serving. An event that
    /// arrives while a callback of the protocol runs (a write inside `datagram_received` that
    /// learns of a refusal, a port started from a callback) runs right after it.
    fn call(&self, f: impl FnOnce(&mut P, &DatagramContext<P>) + 'static) {
        let outcome = match self.proto.try_borrow_mut() {
            Ok(mut p) => catch_unwind(AssertUnwindSafe(|| f(&mut p, &self.cx))),
            Err(_) => {
                self.queued.borrow_mut().push_back(Box::new(f));
                return;
            }
        };
        if let Err(payload) = outcome {
            report_panic(&*payload);
        }
        self.run_queued();
    }
}

fn report_panic(payload: &(dyn Any + Send)) {
    let f = Failure::from_panic(payload);
    crate::report_error!(target: "twistor::udp", "datagram protocol callback panicked, port keeps serving: {f}");
}

impl<P: DatagramProtocol> DatagramDriver for DatagramSlot<P> {
    fn do_start(&self, port: UdpPort) {
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
    fn datagram_received(&self, data: &[u8], from: SocketAddr) {
        let outcome = match self.proto.try_borrow_mut() {
            Ok(mut p) => catch_unwind(AssertUnwindSafe(|| {
                p.datagram_received(&self.cx, data, from)
            })),
            // Only the reactor reads, so this needs a callback that runs the reactor: the
            // datagram is dropped, as the network may drop it.
            Err(_) => return,
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

/// What [`listen_udp`](crate::transport::udp::listen_udp) accepts as its protocol: a new
/// protocol, or a handle on one that served (or serves) another port.
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
pub trait IntoDatagramProtocol {
    /// The protocol type.
    type Protocol: DatagramProtocol;
    /// The shared slot, or `None` if the handle's protocol is gone.
    #[doc(hidden)]
    fn into_slot(self) -> Option<Rc<DatagramSlot<Self::Protocol>>>;
}

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

//! UDP ports (Twisted's `IReactorUDP`, `udp.Port`): [`listen_udp`] binds a socket and serves
//! a [`DatagramProtocol`](crate::protocol::datagram::DatagramProtocol) with it.
//!
//! Datagrams move in batches: one `recvmmsg` reads up to 32 into buffers the port reuses,
//! and each reaches the protocol without a copy; writes are queued and leave together with one
//! `sendmmsg` when the reactor flushes the port, after the phase of the turn that made them
//! (with UDP GSO where the kernel has it, for runs of equal-size datagrams to one address).
//! Reading takes a budget per readiness event, so a flooded port does not starve other
//! sources.
//!
//! A datagram too long for UDP fails at once with `MessageLengthError`. Errors the kernel
//! gives only when the datagram is sent (no route, broadcast not allowed) are reported
//! through the error log (stderr when no logger is installed) and the datagram is dropped.
//! Writes that meet a full socket buffer wait for room, up to 4096 datagrams or 1 MiB per
//! port; beyond that a write is dropped and counted ([`UdpPort::dropped_writes`]): datagrams
//! may be lost, memory may not grow without limit.
//!
//! Connected mode ([`UdpPort::connect`]) fixes the peer: the kernel then reports the ICMP
//! errors of earlier datagrams, which reach the protocol as `connection_refused`.
//!
//! The port and its protocol refer to each other (the protocol's context names its port) until
//! the port stops: stop ports you no longer need ([`UdpPort::stop_listening`]); the reactor
//! stops those still open when it shuts down.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use super::Address;
use super::datagram::DatagramIo;
use crate::error::{CannotListenError, InvalidAddressError, MessageLengthError};
use crate::protocol::datagram::{DatagramDriver, DatagramPort, IntoDatagramProtocol, PortOps};
use crate::reactor::sources::SourceHandler;
use crate::reactor::{Reactor, Ready};

/// Options of [`listen_udp_with`]; build them from `default()` (all IPv4 interfaces, 8192
/// bytes, Twisted's defaults).
///
/// ```
/// use twistor::transport::udp::UdpListenOptions;
/// let mut opts = UdpListenOptions::default();
/// opts.interface = "::1".into();
/// assert_eq!(opts.max_packet_size, 8192);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UdpListenOptions {
    /// The local IP address to bind, as a literal (`""`: all IPv4 interfaces; `"::"`: all
    /// IPv6 ones). Names are refused, as Twisted refuses them.
    pub interface: String,
    /// The longest datagram read; longer ones are truncated (Twisted's `maxPacketSize`).
    pub max_packet_size: usize,
}

impl Default for UdpListenOptions {
    fn default() -> Self {
        UdpListenOptions {
            interface: String::new(),
            max_packet_size: 8192,
        }
    }
}

pub use crate::error::UdpError;
pub use crate::protocol::datagram::DatagramPort as UdpPort;

/// Binds a UDP port on all IPv4 interfaces (port 0: any free one) and serves `protocol` with
/// it. `protocol` is a new protocol or a
/// [`DatagramHandle`](crate::protocol::datagram::DatagramHandle) on one that served another port.
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
/// assert_eq!(port.get_host().to_string(), format!("udp:0.0.0.0:{}", port.port()));
/// ```
#[doc(alias = "listenUDP")]
pub fn listen_udp<A: IntoDatagramProtocol>(
    reactor: &Reactor,
    port: u16,
    protocol: A,
) -> Result<UdpPort, CannotListenError> {
    listen_udp_with(reactor, port, protocol, UdpListenOptions::default())
}

/// [`listen_udp`] with options (interface, maximum packet size). A bad interface fails with
/// a `CannotListenError` whose source wraps an [`InvalidAddressError`].
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
/// use twistor::transport::udp::{listen_udp_with, UdpListenOptions};
///
/// struct Sink;
/// impl DatagramProtocol for Sink {
///     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let mut opts = UdpListenOptions::default();
/// opts.interface = "127.0.0.1".into();
/// let port = listen_udp_with(&reactor, 0, Sink, opts).unwrap();
/// assert!(port.get_host().socket_addr().unwrap().ip().is_loopback());
/// ```
#[doc(alias = "listenUDP")]
pub fn listen_udp_with<A: IntoDatagramProtocol>(
    reactor: &Reactor,
    port: u16,
    protocol: A,
    options: UdpListenOptions,
) -> Result<UdpPort, CannotListenError> {
    let (port, _) = serve(
        reactor,
        port,
        protocol,
        &options.interface,
        options.max_packet_size,
        false,
        mio::net::UdpSocket::bind,
    )?;
    Ok(port)
}

/// Binds with `bind` (which sets whatever socket options a kind of port needs) at the
/// interface literal and port, and serves `protocol`; the inner port comes back too, for
/// the operations only some kinds of UDP port have (`multicast`: it is a multicast port).
pub(super) fn serve<A: IntoDatagramProtocol>(
    reactor: &Reactor,
    port: u16,
    protocol: A,
    interface: &str,
    max_packet_size: usize,
    multicast: bool,
    bind: impl FnOnce(SocketAddr) -> io::Result<mio::net::UdpSocket>,
) -> Result<(UdpPort, Rc<UdpInner>), CannotListenError> {
    let cannot = |source: io::Error| CannotListenError {
        interface: interface.to_owned(),
        port,
        source,
    };
    let ip: IpAddr = if interface.is_empty() {
        IpAddr::from([0, 0, 0, 0])
    } else {
        interface.parse().map_err(|_| {
            cannot(io::Error::new(
                io::ErrorKind::InvalidInput,
                InvalidAddressError {
                    address: interface.to_owned(),
                    message: "the interface must be an IP address literal".into(),
                },
            ))
        })?
    };
    let Some(slot) = protocol.into_slot() else {
        return Err(cannot(io::Error::new(
            io::ErrorKind::NotFound,
            "the protocol of this handle is gone",
        )));
    };
    let socket = bind(SocketAddr::new(ip, port)).map_err(&cannot)?;
    let host = socket.local_addr().map_err(&cannot)?;
    let driver: Rc<dyn DatagramDriver> = slot;
    let inner = Rc::new(UdpInner {
        socket: RefCell::new(None),
        host,
        connected: Cell::new(None),
        slot: driver.clone().as_any(),
        driver,
        io: DatagramIo::new(max_packet_size, true),
        stopped: Cell::new(false),
        multicast,
    });
    inner
        .io
        .register(reactor, &socket, &inner)
        .map_err(&cannot)?;
    *inner.socket.borrow_mut() = Some(socket);
    let port = DatagramPort::new(inner.clone());
    inner.driver.do_start(port.clone());
    Ok((port, inner))
}

pub(super) struct UdpInner {
    socket: RefCell<Option<mio::net::UdpSocket>>,
    host: SocketAddr,
    connected: Cell<Option<SocketAddr>>,
    driver: Rc<dyn DatagramDriver>,
    /// The same slot as `driver`, for [`UdpPort::handle`].
    slot: Rc<dyn Any>,
    io: DatagramIo<SocketAddr>,
    stopped: Cell<bool>,
    /// A multicast port, which [`UdpPort::multicast`] gives back as one.
    pub(super) multicast: bool,
}

impl UdpInner {
    /// Runs `f` on the socket, unless the port has stopped.
    pub(super) fn with_socket<R>(
        &self,
        f: impl FnOnce(&mio::net::UdpSocket) -> io::Result<R>,
    ) -> Result<R, UdpError> {
        match self.socket.borrow().as_ref() {
            Some(s) => Ok(f(s)?),
            None => Err(UdpError::NotListening),
        }
    }

    /// The bound address.
    pub(super) fn local(&self) -> SocketAddr {
        self.host
    }

    fn read(&self, reactor: &Reactor) {
        let socket = self.socket.borrow();
        let Some(s) = socket.as_ref() else {
            return;
        };
        let connected = self.connected.get().is_some();
        self.io.read(
            reactor,
            s,
            |data, from| self.driver.datagram_received(data, from),
            || {
                if connected {
                    self.driver.connection_refused();
                }
            },
        );
    }

    /// Sends what was queued; called by the reactor after the phase that wrote, and when the
    /// socket becomes writable again.
    fn send_queued(&self, reactor: &Reactor) {
        let flushed = match self.socket.borrow().as_ref() {
            Some(s) => self.io.send_queued(reactor, s),
            None => return,
        };
        if self.connected.get().is_some() {
            for _ in 0..flushed.refused {
                self.driver.connection_refused();
            }
        }
    }

    fn stop(&self, reactor: &Reactor) {
        if self.stopped.replace(true) {
            return;
        }
        self.io.close(reactor, &self.socket);
        self.driver.do_stop();
    }
}

impl SourceHandler for UdpInner {
    fn ready(&self, reactor: &Reactor, ready: Ready) {
        self.io
            .on_ready(ready, || self.send_queued(reactor), || self.read(reactor));
    }
    fn flush(&self, reactor: &Reactor) {
        self.send_queued(reactor);
    }
    fn shutdown(&self, reactor: &Reactor) {
        self.stop(reactor);
    }
}

impl PortOps for UdpInner {
    fn host(&self) -> Address {
        Address::Udp(self.host)
    }
    fn slot(&self) -> Rc<dyn Any> {
        self.slot.clone()
    }
    fn as_any(self: Rc<Self>) -> Rc<dyn Any> {
        self
    }
    fn write(&self, datagram: &[u8], addr: Option<SocketAddr>) -> Result<(), UdpError> {
        if self.socket.borrow().is_none() {
            return Err(UdpError::NotListening);
        }
        let connected = self.connected.get();
        let to = match (connected, addr) {
            (Some(c), Some(a)) if a != c => {
                return Err(invalid(a, "the port is connected to another address"));
            }
            (Some(_), _) => None,
            (None, None) => return Err(invalid("None", "an unconnected port needs an address")),
            (None, Some(a)) => {
                if a.is_ipv6() != self.host.is_ipv6() {
                    return Err(invalid(a, "the address family differs from the port's"));
                }
                Some(a)
            }
        };
        if datagram.len() > max_datagram(self.host) {
            return Err(MessageLengthError.into());
        }
        self.io.write(datagram, to);
        Ok(())
    }
    fn connect(&self, host: &str, port: u16) -> Result<(), UdpError> {
        if self.connected.get().is_some() {
            return Err(UdpError::AlreadyConnected);
        }
        let ip: IpAddr = host
            .parse()
            .map_err(|_| invalid(host, "not an IP address literal"))?;
        let addr = SocketAddr::new(ip, port);
        if addr.is_ipv6() != self.host.is_ipv6() {
            return Err(invalid(addr, "the address family differs from the port's"));
        }
        let socket = self.socket.borrow();
        let Some(s) = socket.as_ref() else {
            return Err(UdpError::NotListening);
        };
        s.connect(addr)?;
        self.connected.set(Some(addr));
        Ok(())
    }
    fn stop(&self, reactor: &Reactor) {
        UdpInner::stop(self, reactor);
    }
    fn set_broadcast(&self, allowed: bool) -> Result<(), UdpError> {
        match self.socket.borrow().as_ref() {
            Some(s) => Ok(s.set_broadcast(allowed)?),
            None => Err(UdpError::NotListening),
        }
    }
    fn broadcast(&self) -> Result<bool, UdpError> {
        match self.socket.borrow().as_ref() {
            Some(s) => Ok(s.broadcast()?),
            None => Err(UdpError::NotListening),
        }
    }
    fn dropped(&self) -> u64 {
        self.io.dropped()
    }
}

/// The longest UDP payload: an IP packet's 65,535 bytes less the headers (IPv4's 20 and
/// UDP's 8; IPv6's payload length leaves out its 40-byte header).
fn max_datagram(host: SocketAddr) -> usize {
    if host.is_ipv6() { 65_527 } else { 65_507 }
}

fn invalid(address: impl ToString, message: &str) -> UdpError {
    UdpError::InvalidAddress(InvalidAddressError {
        address: address.to_string(),
        message: message.into(),
    })
}

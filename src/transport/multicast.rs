//! UDP multicast ports (Twisted's `IReactorMulticast`, `udp.MulticastPort`):
//! [`listen_multicast`] binds a UDP port that can join groups.
//!
//! A [`MulticastPort`] is a [`UdpPort`] (it dereferences to one, so `write`, `get_host` and
//! `stop_listening` are there) plus the group operations. Group membership belongs to the
//! socket: stopping the port leaves every group it joined.
//!
//! Every operation picks the socket option of the port's family: an IPv4 port joins IPv4
//! groups on an interface given by its address, an IPv6 port joins IPv6 groups on an
//! interface given by its index (`""`: the kernel's choice). A group of the other family, or
//! an address that is not multicast, fails with [`MulticastJoinError`] before the kernel is
//! asked, so the error says which rule was broken.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::rc::Rc;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::udp::{UdpInner, UdpPort, serve};
use crate::Deferred;
use crate::error::{CannotListenError, InvalidAddressError, MulticastJoinError, UdpError};
use crate::protocol::datagram::IntoDatagramProtocol;
use crate::reactor::Reactor;

/// Options of [`listen_multicast_with`]; build them from `default()` (all IPv4 interfaces,
/// 8192 bytes, one socket per port: Twisted's defaults).
///
/// ```
/// use twistor::transport::multicast::MulticastOptions;
/// let mut opts = MulticastOptions::default();
/// opts.listen_multiple = true;
/// assert_eq!(opts.max_packet_size, 8192);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MulticastOptions {
    /// The local IP address to bind, as a literal (`""`: all IPv4 interfaces; `"::"`: all
    /// IPv6 ones).
    pub interface: String,
    /// Let other sockets bind the same port (`SO_REUSEADDR` and `SO_REUSEPORT`), so several
    /// listeners on one host each get the group's datagrams (Twisted's `listenMultiple`).
    pub listen_multiple: bool,
    /// The longest datagram read; longer ones are truncated (Twisted's `maxPacketSize`).
    pub max_packet_size: usize,
}

impl Default for MulticastOptions {
    fn default() -> Self {
        MulticastOptions {
            interface: String::new(),
            listen_multiple: false,
            max_packet_size: 8192,
        }
    }
}

/// Binds a multicast-capable UDP port on all IPv4 interfaces (port 0: any free one) and
/// serves `protocol` with it.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
/// use twistor::transport::multicast::listen_multicast;
///
/// struct Sink;
/// impl DatagramProtocol for Sink {
///     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_multicast(&reactor, 0, Sink).unwrap();
/// assert_ne!(port.port(), 0);
/// ```
#[doc(alias = "listenMulticast")]
pub fn listen_multicast<A: IntoDatagramProtocol>(
    reactor: &Reactor,
    port: u16,
    protocol: A,
) -> Result<MulticastPort, CannotListenError> {
    listen_multicast_with(reactor, port, protocol, MulticastOptions::default())
}

/// [`listen_multicast`] with options (interface, `listen_multiple`, maximum packet size).
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
/// use twistor::transport::multicast::{listen_multicast_with, MulticastOptions};
///
/// struct Sink;
/// impl DatagramProtocol for Sink {
///     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let mut opts = MulticastOptions::default();
/// opts.listen_multiple = true;
/// let a = listen_multicast_with(&reactor, 0, Sink, opts.clone()).unwrap();
/// // A second socket on the same port is allowed.
/// let b = listen_multicast_with(&reactor, a.port(), Sink, opts).unwrap();
/// assert_eq!(a.port(), b.port());
/// ```
#[doc(alias = "listenMulticast")]
pub fn listen_multicast_with<A: IntoDatagramProtocol>(
    reactor: &Reactor,
    port: u16,
    protocol: A,
    options: MulticastOptions,
) -> Result<MulticastPort, CannotListenError> {
    let multiple = options.listen_multiple;
    let (port, inner) = serve(
        reactor,
        port,
        protocol,
        &options.interface,
        options.max_packet_size,
        true,
        |addr| bind(addr, multiple),
    )?;
    Ok(MulticastPort { port, inner })
}

fn bind(addr: SocketAddr, multiple: bool) -> io::Result<mio::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if multiple {
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(mio::net::UdpSocket::from_std(socket.into()))
}

/// A UDP port that can join multicast groups (Twisted's `udp.MulticastPort`). It dereferences
/// to the [`UdpPort`] it is.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
/// use twistor::transport::multicast::listen_multicast;
///
/// struct Sink;
/// impl DatagramProtocol for Sink {
///     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_multicast(&reactor, 0, Sink).unwrap();
/// port.set_ttl(4).unwrap();
/// assert_eq!(port.get_ttl().unwrap(), 4);
/// ```
#[derive(Clone)]
pub struct MulticastPort {
    port: UdpPort,
    inner: Rc<UdpInner>,
}

impl std::fmt::Debug for MulticastPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<MulticastPort udp:{}>", self.inner.local())
    }
}

impl Deref for MulticastPort {
    type Target = UdpPort;
    fn deref(&self) -> &UdpPort {
        &self.port
    }
}

/// From the port a protocol's context names back to the multicast port it is.
impl UdpPort {
    /// This port as the [`MulticastPort`] it is, if it was opened by [`listen_multicast`]
    /// (`None` for a plain UDP port). A protocol reaches its group operations this way, from
    /// its context, and can join a group in `start_protocol`, as Twisted's multicast howto
    /// does with `self.transport.joinGroup`.
    ///
    /// ```
    /// use twistor::prelude::*;
    /// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// use twistor::transport::multicast::listen_multicast;
    /// use twistor::transport::udp::listen_udp;
    ///
    /// struct Member(Option<Deferred<()>>);
    /// impl DatagramProtocol for Member {
    ///     fn start_protocol(&mut self, cx: &DatagramContext<Self>) {
    ///         if let Some(m) = cx.transport().and_then(|p| p.multicast()) {
    ///             self.0 = Some(m.join_group("228.0.0.5", "127.0.0.1"));
    ///         }
    ///     }
    ///     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// }
    /// let reactor = Reactor::new().unwrap();
    /// let port = listen_multicast(&reactor, 0, Member(None)).unwrap();
    /// let joined = port.handle::<Member>().unwrap().with(|m, _| m.0.is_some());
    /// assert_eq!(joined, Some(true));
    /// let plain = listen_udp(&reactor, 0, Member(None)).unwrap();
    /// assert!(plain.multicast().is_none());
    /// ```
    pub fn multicast(&self) -> Option<MulticastPort> {
        let inner = self.ops_any().downcast::<UdpInner>().ok()?;
        inner.multicast.then(|| MulticastPort {
            port: self.clone(),
            inner,
        })
    }
}

impl MulticastPort {
    /// The UDP port itself, to keep or hand on.
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::multicast::listen_multicast;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// let port = listen_multicast(&reactor, 0, Sink).unwrap();
    /// assert_eq!(port.udp_port().port(), port.port());
    /// ```
    pub fn udp_port(&self) -> UdpPort {
        self.port.clone()
    }

    fn is_v6(&self) -> bool {
        self.inner.local().is_ipv6()
    }

    /// Joins `group` on `interface` (an IPv4 address literal for an IPv4 port, an interface
    /// index for an IPv6 one; `""`: the kernel's choice). The Deferred fails with
    /// [`MulticastJoinError`] for an address that is not multicast, one of the other family,
    /// or a refusal of the kernel.
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::multicast::listen_multicast;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// let port = listen_multicast(&reactor, 0, Sink).unwrap();
    /// let failed = std::rc::Rc::new(std::cell::Cell::new(false));
    /// let f = failed.clone();
    /// port.join_group("127.0.0.1", "").add_errback(move |e| {
    ///     f.set(e.is::<twistor::error::MulticastJoinError>());
    ///     Ok(())
    /// });
    /// assert!(failed.get());
    /// ```
    #[doc(alias = "joinGroup")]
    pub fn join_group(&self, group: &str, interface: &str) -> Deferred<()> {
        self.membership(group, interface, true)
    }

    /// Leaves `group` on `interface`, as joined with [`join_group`](Self::join_group). The
    /// Deferred fails with [`MulticastJoinError`] as joining does (and for a group not
    /// joined).
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::multicast::listen_multicast;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// let port = listen_multicast(&reactor, 0, Sink).unwrap();
    /// let failed = std::rc::Rc::new(std::cell::Cell::new(false));
    /// let f = failed.clone();
    /// port.leave_group("10.0.0.1", "").add_errback(move |e| {
    ///     f.set(e.is::<twistor::error::MulticastJoinError>());
    ///     Ok(())
    /// });
    /// assert!(failed.get());
    /// ```
    #[doc(alias = "leaveGroup")]
    pub fn leave_group(&self, group: &str, interface: &str) -> Deferred<()> {
        self.membership(group, interface, false)
    }

    fn membership(&self, group: &str, interface: &str, join: bool) -> Deferred<()> {
        let error = |source: io::Error| MulticastJoinError {
            group: group.to_owned(),
            interface: interface.to_owned(),
            source,
        };
        let refused = |why: &str| error(io::Error::new(io::ErrorKind::InvalidInput, why));
        let Ok(ip) = group.parse::<IpAddr>() else {
            return Deferred::fail(refused("the group is not an IP address literal"));
        };
        if !ip.is_multicast() {
            return Deferred::fail(refused("not a multicast address"));
        }
        if ip.is_ipv6() != self.is_v6() {
            return Deferred::fail(refused("the group's family differs from the port's"));
        }
        let result = match ip {
            IpAddr::V4(g) => {
                let Some(ifaddr) = parse_v4_interface(interface) else {
                    return Deferred::fail(refused("the interface is not an IPv4 address literal"));
                };
                self.inner.with_socket(|s| {
                    let s = SockRef::from(s);
                    if join {
                        s.join_multicast_v4(&g, &ifaddr)
                    } else {
                        s.leave_multicast_v4(&g, &ifaddr)
                    }
                })
            }
            IpAddr::V6(g) => {
                let Some(index) = parse_v6_interface(interface) else {
                    return Deferred::fail(refused("the interface is not an interface index"));
                };
                self.inner.with_socket(|s| {
                    let s = SockRef::from(s);
                    if join {
                        s.join_multicast_v6(&g, index)
                    } else {
                        s.leave_multicast_v6(&g, index)
                    }
                })
            }
        };
        match result {
            Ok(()) => Deferred::succeed(()),
            Err(UdpError::Io(e)) => Deferred::fail(error(e)),
            Err(other) => Deferred::fail(error(io::Error::other(other.to_string()))),
        }
    }

    /// Sends multicast datagrams out of `interface` (an IPv4 address literal for an IPv4
    /// port, an interface index for an IPv6 one) (Twisted's `setOutgoingInterface`).
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::multicast::listen_multicast;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// let port = listen_multicast(&reactor, 0, Sink).unwrap();
    /// port.set_outgoing_interface("127.0.0.1").unwrap();
    /// assert_eq!(port.get_outgoing_interface().unwrap(), "127.0.0.1");
    /// assert!(port.set_outgoing_interface("not-an-address").is_err());
    /// ```
    #[doc(alias = "setOutgoingInterface")]
    pub fn set_outgoing_interface(&self, interface: &str) -> Result<(), UdpError> {
        let bad = |message: &str| {
            UdpError::InvalidAddress(InvalidAddressError {
                address: interface.to_owned(),
                message: message.into(),
            })
        };
        if self.is_v6() {
            let index =
                parse_v6_interface(interface).ok_or_else(|| bad("not an interface index"))?;
            self.inner
                .with_socket(|s| SockRef::from(s).set_multicast_if_v6(index))
        } else {
            let addr =
                parse_v4_interface(interface).ok_or_else(|| bad("not an IPv4 address literal"))?;
            self.inner
                .with_socket(|s| SockRef::from(s).set_multicast_if_v4(&addr))
        }
    }

    /// The interface multicast datagrams leave from: an IPv4 address, or an IPv6 interface
    /// index (Twisted's `getOutgoingInterface`).
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::multicast::listen_multicast;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// let port = listen_multicast(&reactor, 0, Sink).unwrap();
    /// assert_eq!(port.get_outgoing_interface().unwrap(), "0.0.0.0");
    /// ```
    #[doc(alias = "getOutgoingInterface")]
    pub fn get_outgoing_interface(&self) -> Result<String, UdpError> {
        if self.is_v6() {
            self.inner
                .with_socket(|s| SockRef::from(s).multicast_if_v6().map(|i| i.to_string()))
        } else {
            self.inner
                .with_socket(|s| SockRef::from(s).multicast_if_v4().map(|a| a.to_string()))
        }
    }

    /// Whether this host's own listeners get the datagrams it sends to a group (on by
    /// default; Twisted's `setLoopbackMode`).
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::multicast::listen_multicast;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// let port = listen_multicast(&reactor, 0, Sink).unwrap();
    /// port.set_loopback_mode(false).unwrap();
    /// assert!(!port.get_loopback_mode().unwrap());
    /// ```
    #[doc(alias = "setLoopbackMode")]
    pub fn set_loopback_mode(&self, on: bool) -> Result<(), UdpError> {
        if self.is_v6() {
            self.inner
                .with_socket(|s| SockRef::from(s).set_multicast_loop_v6(on))
        } else {
            self.inner
                .with_socket(|s| SockRef::from(s).set_multicast_loop_v4(on))
        }
    }

    /// See [`set_loopback_mode`](Self::set_loopback_mode) (Twisted's `getLoopbackMode`).
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::multicast::listen_multicast;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// let port = listen_multicast(&reactor, 0, Sink).unwrap();
    /// assert!(port.get_loopback_mode().unwrap());
    /// ```
    #[doc(alias = "getLoopbackMode")]
    pub fn get_loopback_mode(&self) -> Result<bool, UdpError> {
        if self.is_v6() {
            self.inner
                .with_socket(|s| SockRef::from(s).multicast_loop_v6())
        } else {
            self.inner
                .with_socket(|s| SockRef::from(s).multicast_loop_v4())
        }
    }

    /// How many routers the datagrams sent to a group may cross (1 by default: this link
    /// only; Twisted's `setTTL`). For an IPv6 port this is the hop limit.
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::multicast::listen_multicast;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// let port = listen_multicast(&reactor, 0, Sink).unwrap();
    /// port.set_ttl(16).unwrap();
    /// assert_eq!(port.get_ttl().unwrap(), 16);
    /// ```
    #[doc(alias = "setTTL")]
    pub fn set_ttl(&self, ttl: u32) -> Result<(), UdpError> {
        if self.is_v6() {
            self.inner
                .with_socket(|s| SockRef::from(s).set_multicast_hops_v6(ttl))
        } else {
            self.inner
                .with_socket(|s| SockRef::from(s).set_multicast_ttl_v4(ttl))
        }
    }

    /// See [`set_ttl`](Self::set_ttl) (Twisted's `getTTL`).
    ///
    /// ```
    /// # use twistor::prelude::*;
    /// # use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
    /// # use twistor::transport::multicast::listen_multicast;
    /// # struct Sink;
    /// # impl DatagramProtocol for Sink {
    /// #     fn datagram_received(&mut self, _: &DatagramContext<Self>, _: &[u8], _: std::net::SocketAddr) {}
    /// # }
    /// # let reactor = Reactor::new().unwrap();
    /// let port = listen_multicast(&reactor, 0, Sink).unwrap();
    /// assert_eq!(port.get_ttl().unwrap(), 1);
    /// ```
    #[doc(alias = "getTTL")]
    pub fn get_ttl(&self) -> Result<u32, UdpError> {
        if self.is_v6() {
            self.inner
                .with_socket(|s| SockRef::from(s).multicast_hops_v6())
        } else {
            self.inner
                .with_socket(|s| SockRef::from(s).multicast_ttl_v4())
        }
    }
}

/// An IPv4 interface as an address literal; `""` is any (the kernel's choice).
fn parse_v4_interface(interface: &str) -> Option<Ipv4Addr> {
    if interface.is_empty() {
        Some(Ipv4Addr::UNSPECIFIED)
    } else {
        interface.parse().ok()
    }
}

/// An IPv6 interface as an index; `""` is 0 (the kernel's choice).
fn parse_v6_interface(interface: &str) -> Option<u32> {
    if interface.is_empty() {
        Some(0)
    } else {
        interface.parse().ok()
    }
}

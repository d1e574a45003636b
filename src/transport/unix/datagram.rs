//! UNIX datagram sockets (Twisted's `IReactorUNIXDatagram`): [`listen_unix_datagram`] binds a
//! socket that serves a [`DatagramProtocol`] over [`UnixDatagramAddress`];
//! [`connect_unix_datagram`] connects one to a peer and serves a
//! [`ConnectedDatagramProtocol`](crate::protocol::connected_datagram::ConnectedDatagramProtocol).
//!
//! Both ports are [`DatagramPort`]s, served like UDP ports: the same protocol machinery
//! (start and stop once per port transition, panics contained, handles) and the same read
//! loop. What is UNIX's own:
//!
//! - **Names.** As for stream sockets, a path whose first byte is NUL is an abstract name: no
//!   file, so no mode and nothing to unlink. Otherwise the socket file gets `mode` after
//!   `bind` and is unlinked when the port stops (or the reactor shuts down); a client's
//!   `bind_address` file too. An existing file makes `bind` fail ([`CannotListenError`] when
//!   listening).
//! - **Senders.** A datagram comes with its sender's address; a sender that never bound has
//!   none ([`UnixDatagramAddress::unnamed`]), and writing to it fails with an
//!   [`InvalidAddressError`]: there is nothing to reply to.
//! - **Connecting** happens at once (a UNIX `connect` does not wait). If it fails, the
//!   protocol's `connection_failed` runs before [`connect_unix_datagram`] returns and the port
//!   it returns is already stopped, as Twisted's `connectUNIXDatagram` does. A peer that
//!   went away refuses the next datagram: the protocol's `connection_refused` runs.
//! - **Reads and writes** go through the datagram I/O core UDP uses: `recvmmsg` into a reused
//!   ring, writes queued and sent together with `sendmmsg` when the reactor flushes the port.
//!   A receiver whose queue is full makes the writes wait (the port watches for room), up to
//!   4096 datagrams or 1 MiB; past that a write is dropped and counted
//!   ([`DatagramPort::dropped_writes`]). What can be checked at once fails at once (an
//!   unnamed or too long address, a stopped port); what the kernel refuses only when the
//!   datagram is sent (no socket at that name) is logged (stderr when no logger is installed)
//!   and drops that datagram, as for UDP.
//!
//! ```
//! use twistor::prelude::*;
//! use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
//! use twistor::transport::unix::{listen_unix_datagram, UnixDatagramAddress};
//!
//! struct Sink;
//! impl DatagramProtocol<UnixDatagramAddress> for Sink {
//!     fn datagram_received(&mut self, _: &DatagramContext<Self, UnixDatagramAddress>, _: &[u8], _: UnixDatagramAddress) {}
//! }
//! let reactor = Reactor::new().unwrap();
//! let path = std::env::temp_dir().join(format!("twistor-doc-dgram-{}.sock", std::process::id()));
//! let port = listen_unix_datagram(&reactor, &path, Sink).unwrap();
//! assert!(path.exists());
//! let stopped = port.stop_listening(&reactor);
//! while !stopped.has_result() {
//!     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
//! }
//! assert!(!path.exists()); // unlinked
//! ```

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use mio::net::UnixDatagram;

use super::is_abstract;
use crate::error::{CannotListenError, InvalidAddressError, UdpError, connect_error_from_io};
use crate::protocol::connected_datagram::{IntoConnectedDatagramProtocol, connection_failed};
use crate::protocol::datagram::{
    DatagramDriver, DatagramHandle, DatagramPort, DatagramProtocol, DatagramSlot,
    IntoDatagramProtocol, PortOps,
};
use crate::reactor::sources::SourceHandler;
use crate::reactor::{Reactor, Ready};
use crate::transport::Address;
use crate::transport::datagram::{DatagramIo, RawAddress};

/// The address of a UNIX datagram socket (Twisted's `UNIXAddress`): a path, an abstract name
/// (a leading NUL), or unnamed (a sender that never bound).
///
/// ```
/// use twistor::transport::unix::UnixDatagramAddress;
/// let a = UnixDatagramAddress::new("\0name");
/// assert!(a.is_abstract());
/// assert_eq!(a.to_string(), "unix:@name");
/// assert_eq!(UnixDatagramAddress::unnamed().name(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnixDatagramAddress {
    name: Option<PathBuf>,
}

impl UnixDatagramAddress {
    /// The address `path` (a leading NUL: an abstract name).
    ///
    /// ```
    /// use twistor::transport::unix::UnixDatagramAddress;
    /// assert_eq!(UnixDatagramAddress::new("run/x.sock").name(), Some(std::path::Path::new("run/x.sock")));
    /// ```
    pub fn new(path: impl AsRef<Path>) -> UnixDatagramAddress {
        UnixDatagramAddress {
            name: Some(path.as_ref().to_path_buf()),
        }
    }

    /// The address of a socket that never bound: it can send, not be sent to.
    ///
    /// ```
    /// use twistor::transport::unix::UnixDatagramAddress;
    /// assert!(UnixDatagramAddress::unnamed().is_unnamed());
    /// ```
    pub fn unnamed() -> UnixDatagramAddress {
        UnixDatagramAddress { name: None }
    }

    /// The path or abstract name (leading NUL); `None` when unnamed.
    ///
    /// ```
    /// use twistor::transport::unix::UnixDatagramAddress;
    /// assert!(UnixDatagramAddress::new("\0n").name().is_some());
    /// ```
    pub fn name(&self) -> Option<&Path> {
        self.name.as_deref()
    }

    /// True for an abstract name (no file).
    ///
    /// ```
    /// use twistor::transport::unix::UnixDatagramAddress;
    /// assert!(!UnixDatagramAddress::new("run/x.sock").is_abstract());
    /// ```
    pub fn is_abstract(&self) -> bool {
        self.name.as_deref().is_some_and(is_abstract)
    }

    /// True for a sender that never bound.
    ///
    /// ```
    /// use twistor::transport::unix::UnixDatagramAddress;
    /// assert!(!UnixDatagramAddress::new("run/x.sock").is_unnamed());
    /// ```
    pub fn is_unnamed(&self) -> bool {
        self.name.is_none()
    }

    /// The same address as the crate's general [`Address`].
    ///
    /// ```
    /// use twistor::transport::{Address, unix::UnixDatagramAddress};
    /// assert_eq!(UnixDatagramAddress::unnamed().to_address(), Address::Unix(None));
    /// ```
    pub fn to_address(&self) -> Address {
        Address::Unix(self.name.clone())
    }
}

impl fmt::Display for UnixDatagramAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_address().fmt(f)
    }
}

/// A UNIX datagram port; [`DatagramPort`] has its methods.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
/// use twistor::transport::unix::{listen_unix_datagram, UnixDatagramAddress, UnixDatagramPort};
///
/// struct Sink;
/// impl DatagramProtocol<UnixDatagramAddress> for Sink {
///     fn datagram_received(&mut self, _: &DatagramContext<Self, UnixDatagramAddress>, _: &[u8], _: UnixDatagramAddress) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let name = format!("\0twistor-doc-port-dgram-{}", std::process::id());
/// let port: UnixDatagramPort = listen_unix_datagram(&reactor, &name, Sink).unwrap();
/// assert_eq!(port.get_peer(), None);
/// assert_eq!(port.dropped_writes(), 0);
/// ```
pub type UnixDatagramPort = DatagramPort<UnixDatagramAddress>;

/// Options of [`listen_unix_datagram_with`] (Twisted's `listenUNIXDatagram` arguments).
///
/// ```
/// use twistor::transport::unix::UnixDatagramListenOptions;
/// let opts = UnixDatagramListenOptions { mode: 0o600, ..Default::default() };
/// assert_eq!(opts.max_packet_size, 8192);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixDatagramListenOptions {
    /// The longest datagram read; longer ones are truncated (Twisted's `maxPacketSize`).
    pub max_packet_size: usize,
    /// The socket file's permissions, set after `bind`; not used for abstract names.
    pub mode: u32,
}

impl Default for UnixDatagramListenOptions {
    fn default() -> Self {
        UnixDatagramListenOptions {
            max_packet_size: 8192,
            mode: 0o666,
        }
    }
}

/// Options of [`connect_unix_datagram_with`] (Twisted's `connectUNIXDatagram` arguments).
///
/// ```
/// use twistor::transport::unix::UnixDatagramConnectOptions;
/// let opts = UnixDatagramConnectOptions { bind_address: Some("run/me.sock".into()), ..Default::default() };
/// assert_eq!(opts.mode, 0o666);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixDatagramConnectOptions {
    /// The longest datagram read; longer ones are truncated.
    pub max_packet_size: usize,
    /// The permissions of the `bind_address` file; not used for abstract names.
    pub mode: u32,
    /// Bind here first, so the peer sees (and can reply to) this address; `None`: unbound.
    pub bind_address: Option<PathBuf>,
}

impl Default for UnixDatagramConnectOptions {
    fn default() -> Self {
        UnixDatagramConnectOptions {
            max_packet_size: 8192,
            mode: 0o666,
            bind_address: None,
        }
    }
}

// One pair per address type, as for UDP (see `IntoDatagramProtocol`).
impl<P: DatagramProtocol<UnixDatagramAddress>> IntoDatagramProtocol<UnixDatagramAddress> for P {
    type Protocol = P;
    fn into_slot(self) -> Option<Rc<DatagramSlot<P, UnixDatagramAddress>>> {
        Some(DatagramSlot::new(self))
    }
}

impl<P: DatagramProtocol<UnixDatagramAddress>> IntoDatagramProtocol<UnixDatagramAddress>
    for &DatagramHandle<P, UnixDatagramAddress>
{
    type Protocol = P;
    fn into_slot(self) -> Option<Rc<DatagramSlot<P, UnixDatagramAddress>>> {
        self.slot()
    }
}

/// Binds the UNIX datagram socket `path` (a leading NUL: an abstract name) and serves
/// `protocol` with it (Twisted's `listenUNIXDatagram` with its defaults).
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
/// use twistor::transport::unix::{listen_unix_datagram, UnixDatagramAddress};
///
/// struct Sink;
/// impl DatagramProtocol<UnixDatagramAddress> for Sink {
///     fn datagram_received(&mut self, _: &DatagramContext<Self, UnixDatagramAddress>, _: &[u8], _: UnixDatagramAddress) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let name = format!("\0twistor-doc-listen-dgram-{}", std::process::id());
/// let port = listen_unix_datagram(&reactor, &name, Sink).unwrap();
/// assert_eq!(port.get_host().to_string(), format!("unix:@twistor-doc-listen-dgram-{}", std::process::id()));
/// // The name is taken.
/// assert!(listen_unix_datagram(&reactor, &name, Sink).is_err());
/// ```
#[doc(alias = "listenUNIXDatagram")]
pub fn listen_unix_datagram<I: IntoDatagramProtocol<UnixDatagramAddress>>(
    reactor: &Reactor,
    path: impl AsRef<Path>,
    protocol: I,
) -> Result<UnixDatagramPort, CannotListenError> {
    listen_unix_datagram_with(
        reactor,
        path,
        protocol,
        UnixDatagramListenOptions::default(),
    )
}

/// [`listen_unix_datagram`] with options (maximum packet size, mode).
///
/// ```
/// use std::os::unix::fs::PermissionsExt;
/// use twistor::prelude::*;
/// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
/// use twistor::transport::unix::{listen_unix_datagram_with, UnixDatagramAddress, UnixDatagramListenOptions};
///
/// struct Sink;
/// impl DatagramProtocol<UnixDatagramAddress> for Sink {
///     fn datagram_received(&mut self, _: &DatagramContext<Self, UnixDatagramAddress>, _: &[u8], _: UnixDatagramAddress) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let path = std::env::temp_dir().join(format!("twistor-doc-mode-dgram-{}.sock", std::process::id()));
/// let opts = UnixDatagramListenOptions { mode: 0o600, ..Default::default() };
/// let _port = listen_unix_datagram_with(&reactor, &path, Sink, opts).unwrap();
/// assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
/// # drop(reactor);
/// ```
#[doc(alias = "listenUNIXDatagram")]
pub fn listen_unix_datagram_with<I: IntoDatagramProtocol<UnixDatagramAddress>>(
    reactor: &Reactor,
    path: impl AsRef<Path>,
    protocol: I,
    options: UnixDatagramListenOptions,
) -> Result<UnixDatagramPort, CannotListenError> {
    let path = path.as_ref();
    let cannot = |source: io::Error| CannotListenError {
        interface: path.display().to_string(),
        port: 0,
        source,
    };
    let Some(slot) = protocol.into_slot() else {
        return Err(cannot(io::Error::new(
            io::ErrorKind::NotFound,
            "the protocol of this handle is gone",
        )));
    };
    let (socket, file) = bind(Some(path), options.mode).map_err(cannot)?;
    let host = Address::Unix(Some(path.to_path_buf()));
    let inner = UnixDatagramInner::new(slot, host, None, options.max_packet_size);
    inner.serve(reactor, socket, file).map_err(cannot)
}

/// Connects a UNIX datagram socket to `path` and serves `protocol` (a
/// [`ConnectedDatagramProtocol`](crate::protocol::connected_datagram::ConnectedDatagramProtocol))
/// with it (Twisted's `connectUNIXDatagram` with its defaults: unbound). A failure is the
/// protocol's `connection_failed`, called before this returns; the port is then stopped.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use twistor::prelude::*;
/// use twistor::protocol::connected_datagram::{ConnectedDatagramContext, ConnectedDatagramProtocol};
/// use twistor::transport::unix::connect_unix_datagram;
///
/// struct Client(Rc<Cell<bool>>);
/// impl ConnectedDatagramProtocol for Client {
///     fn datagram_received(&mut self, _: &ConnectedDatagramContext<Self>, _: &[u8]) {}
///     fn connection_failed(&mut self, _: &ConnectedDatagramContext<Self>, _: Failure) {
///         self.0.set(true);
///     }
/// }
/// let reactor = Reactor::new().unwrap();
/// let failed = Rc::new(Cell::new(false));
/// let port = connect_unix_datagram(&reactor, "/nonexistent/twistor.sock", Client(failed.clone()));
/// assert!(failed.get());
/// assert!(port.write(b"x", None).is_err()); // stopped
/// ```
#[doc(alias = "connectUNIXDatagram")]
pub fn connect_unix_datagram<I: IntoConnectedDatagramProtocol>(
    reactor: &Reactor,
    path: impl AsRef<Path>,
    protocol: I,
) -> UnixDatagramPort {
    connect_unix_datagram_with(
        reactor,
        path,
        protocol,
        UnixDatagramConnectOptions::default(),
    )
}

/// [`connect_unix_datagram`] with options (maximum packet size, mode, bind address).
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::connected_datagram::{ConnectedDatagramContext, ConnectedDatagramProtocol};
/// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
/// use twistor::transport::unix::*;
///
/// struct Sink;
/// impl DatagramProtocol<UnixDatagramAddress> for Sink {
///     fn datagram_received(&mut self, _: &DatagramContext<Self, UnixDatagramAddress>, _: &[u8], _: UnixDatagramAddress) {}
/// }
/// struct Client;
/// impl ConnectedDatagramProtocol for Client {
///     fn datagram_received(&mut self, _: &ConnectedDatagramContext<Self>, _: &[u8]) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let id = std::process::id();
/// let server = format!("\0twistor-doc-connect-dgram-{id}");
/// let _s = listen_unix_datagram(&reactor, &server, Sink).unwrap();
/// let opts = UnixDatagramConnectOptions {
///     bind_address: Some(format!("\0twistor-doc-connect-dgram-client-{id}").into()),
///     ..Default::default()
/// };
/// let port = connect_unix_datagram_with(&reactor, &server, Client, opts);
/// assert_eq!(port.get_peer().unwrap().to_string(), format!("unix:@twistor-doc-connect-dgram-{id}"));
/// assert_eq!(port.get_host().to_string(), format!("unix:@twistor-doc-connect-dgram-client-{id}"));
/// ```
#[doc(alias = "connectUNIXDatagram")]
pub fn connect_unix_datagram_with<I: IntoConnectedDatagramProtocol>(
    reactor: &Reactor,
    path: impl AsRef<Path>,
    protocol: I,
    options: UnixDatagramConnectOptions,
) -> UnixDatagramPort {
    let path = path.as_ref();
    let host = Address::Unix(options.bind_address.clone());
    let Some(slot) = protocol.into_slot() else {
        // A handle whose protocol is gone: there is no protocol to tell.
        let inner = Rc::new(UnixDatagramInner::stopped(host, path, Rc::new(())));
        return DatagramPort::new(inner);
    };
    let attempt = (|| {
        let (socket, file) = bind(options.bind_address.as_deref(), options.mode)?;
        connect(&socket, path)?;
        Ok((socket, file))
    })();
    let served = attempt.and_then(|(socket, file)| {
        let driver = slot.clone();
        let inner =
            UnixDatagramInner::new(driver, host.clone(), Some(path), options.max_packet_size);
        inner.serve(reactor, socket, file)
    });
    match served {
        Ok(port) => port,
        Err(e) => {
            // The port keeps the protocol, so its handle still reaches it.
            let inner = UnixDatagramInner::stopped(host, path, slot.clone());
            let port = DatagramPort::new(Rc::new(inner));
            connection_failed(&slot, connect_error_from_io(e));
            port
        }
    }
}

/// What opens UNIX datagram ports (Twisted's `IReactorUNIXDatagram`): code that takes
/// `&impl ReactorUnixDatagram` names its needs.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
/// use twistor::transport::unix::{ReactorUnixDatagram, UnixDatagramAddress};
///
/// struct Sink;
/// impl DatagramProtocol<UnixDatagramAddress> for Sink {
///     fn datagram_received(&mut self, _: &DatagramContext<Self, UnixDatagramAddress>, _: &[u8], _: UnixDatagramAddress) {}
/// }
/// fn serve(r: &impl ReactorUnixDatagram, name: &str) -> bool {
///     r.listen_unix_datagram(name, Sink).is_ok()
/// }
/// let reactor = Reactor::new().unwrap();
/// assert!(serve(&reactor, &format!("\0twistor-doc-dgram-trait-{}", std::process::id())));
/// ```
#[doc(alias = "IReactorUNIXDatagram")]
pub trait ReactorUnixDatagram {
    /// As [`listen_unix_datagram_with`].
    #[doc(alias = "listenUNIXDatagram")]
    fn listen_unix_datagram_with<I: IntoDatagramProtocol<UnixDatagramAddress>>(
        &self,
        path: impl AsRef<Path>,
        protocol: I,
        options: UnixDatagramListenOptions,
    ) -> Result<UnixDatagramPort, CannotListenError>;

    /// As [`connect_unix_datagram_with`].
    #[doc(alias = "connectUNIXDatagram")]
    fn connect_unix_datagram_with<I: IntoConnectedDatagramProtocol>(
        &self,
        path: impl AsRef<Path>,
        protocol: I,
        options: UnixDatagramConnectOptions,
    ) -> UnixDatagramPort;

    /// As [`listen_unix_datagram`].
    #[doc(alias = "listenUNIXDatagram")]
    fn listen_unix_datagram<I: IntoDatagramProtocol<UnixDatagramAddress>>(
        &self,
        path: impl AsRef<Path>,
        protocol: I,
    ) -> Result<UnixDatagramPort, CannotListenError> {
        self.listen_unix_datagram_with(path, protocol, UnixDatagramListenOptions::default())
    }

    /// As [`connect_unix_datagram`].
    #[doc(alias = "connectUNIXDatagram")]
    fn connect_unix_datagram<I: IntoConnectedDatagramProtocol>(
        &self,
        path: impl AsRef<Path>,
        protocol: I,
    ) -> UnixDatagramPort {
        self.connect_unix_datagram_with(path, protocol, UnixDatagramConnectOptions::default())
    }
}

impl ReactorUnixDatagram for Reactor {
    fn listen_unix_datagram_with<I: IntoDatagramProtocol<UnixDatagramAddress>>(
        &self,
        path: impl AsRef<Path>,
        protocol: I,
        options: UnixDatagramListenOptions,
    ) -> Result<UnixDatagramPort, CannotListenError> {
        listen_unix_datagram_with(self, path, protocol, options)
    }

    fn connect_unix_datagram_with<I: IntoConnectedDatagramProtocol>(
        &self,
        path: impl AsRef<Path>,
        protocol: I,
        options: UnixDatagramConnectOptions,
    ) -> UnixDatagramPort {
        connect_unix_datagram_with(self, path, protocol, options)
    }
}

// ---- the socket ------------------------------------------------------------------------------

/// A socket file this port created: unlinked when dropped (the port stopped, or a later
/// step of setting it up failed).
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A non-blocking datagram socket, bound to `path` if given (with `mode` on its file).
fn bind(path: Option<&Path>, mode: u32) -> io::Result<(UnixDatagram, Option<SocketFile>)> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::DGRAM, None)?;
    socket.set_nonblocking(true)?;
    let mut file = None;
    if let Some(path) = path {
        socket.bind(&socket2::SockAddr::unix(path)?)?;
        if !is_abstract(path) {
            // Bound: the file is ours to remove from here on, even if chmod fails.
            file = Some(SocketFile(path.to_path_buf()));
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
    }
    let std_socket: std::os::unix::net::UnixDatagram = OwnedFd::from(socket).into();
    Ok((UnixDatagram::from_std(std_socket), file))
}

/// Connects at once: a UNIX datagram `connect` only names the peer (it must exist).
fn connect(socket: &UnixDatagram, path: &Path) -> io::Result<()> {
    socket2::SockRef::from(socket).connect(&socket2::SockAddr::unix(path)?)
}

/// The longest name `sun_path` holds: 108 bytes, less the NUL that ends a path (an abstract
/// name has none; its leading NUL counts).
fn fits_sun_path(name: &Path) -> bool {
    let n = name.as_os_str().as_bytes().len();
    if is_abstract(name) { n <= 108 } else { n < 108 }
}

impl RawAddress for UnixDatagramAddress {
    fn from_raw(raw: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<Self> {
        let offset = std::mem::offset_of!(libc::sockaddr_un, sun_path);
        // An unbound sender has no address: the kernel writes none (length 0), or the family
        // alone.
        if (len as usize) <= offset {
            return Some(UnixDatagramAddress::unnamed());
        }
        if raw.ss_family as libc::c_int != libc::AF_UNIX {
            return None;
        }
        // SAFETY: the family says `raw` holds a `sockaddr_un`, which fits in it.
        let un = unsafe { &*(raw as *const _ as *const libc::sockaddr_un) };
        let n = (len as usize).saturating_sub(offset).min(un.sun_path.len());
        // SAFETY: `c_char` and `u8` have the same size and alignment; `n` is within `sun_path`.
        let bytes: &[u8] = unsafe { std::slice::from_raw_parts(un.sun_path.as_ptr().cast(), n) };
        let name = if bytes.first() == Some(&0) {
            // An abstract name: every byte counts, NULs included.
            bytes
        } else {
            bytes.split(|&b| b == 0).next().unwrap_or_default()
        };
        // The one allocation per datagram: the address handed to the protocol.
        Some(UnixDatagramAddress::new(std::ffi::OsStr::from_bytes(name)))
    }

    fn to_raw(&self, raw: &mut libc::sockaddr_storage) -> libc::socklen_t {
        // SAFETY: `sockaddr_storage` is larger than, and aligned for, `sockaddr_un`.
        let un = unsafe { &mut *(raw as *mut _ as *mut libc::sockaddr_un) };
        un.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let offset = std::mem::offset_of!(libc::sockaddr_un, sun_path);
        let bytes = self
            .name
            .as_deref()
            .map_or(&[][..], |p| p.as_os_str().as_bytes());
        // Writes check the length first (`fits_sun_path`); cut rather than overrun anyway.
        let n = bytes.len().min(un.sun_path.len());
        for (d, &b) in un.sun_path.iter_mut().zip(&bytes[..n]) {
            *d = b as libc::c_char;
        }
        let abstract_name = bytes.first() == Some(&0);
        if !abstract_name && n < un.sun_path.len() {
            un.sun_path[n] = 0;
            return (offset + n + 1) as libc::socklen_t;
        }
        (offset + n) as libc::socklen_t
    }
}

// ---- the port --------------------------------------------------------------------------------

struct UnixDatagramInner {
    socket: RefCell<Option<UnixDatagram>>,
    /// Unlinked when the port stops.
    file: RefCell<Option<SocketFile>>,
    host: Address,
    /// The peer of a connected port.
    peer: Option<PathBuf>,
    driver: Option<Rc<dyn DatagramDriver<UnixDatagramAddress>>>,
    /// The same slot as `driver`, for [`DatagramPort::handle`].
    slot: Rc<dyn Any>,
    io: DatagramIo<UnixDatagramAddress>,
    stopped: Cell<bool>,
}

impl UnixDatagramInner {
    fn new<P: DatagramProtocol<UnixDatagramAddress>>(
        slot: Rc<DatagramSlot<P, UnixDatagramAddress>>,
        host: Address,
        peer: Option<&Path>,
        max_packet_size: usize,
    ) -> UnixDatagramInner {
        let driver: Rc<dyn DatagramDriver<UnixDatagramAddress>> = slot;
        UnixDatagramInner {
            socket: RefCell::new(None),
            file: RefCell::new(None),
            host,
            peer: peer.map(Path::to_path_buf),
            slot: driver.clone().as_any(),
            driver: Some(driver),
            io: DatagramIo::new(max_packet_size, false),
            stopped: Cell::new(false),
        }
    }

    /// A port that never served (its connect failed): every write fails, and stopping it
    /// does nothing. `slot` is its protocol's, for [`DatagramPort::handle`].
    fn stopped(host: Address, peer: &Path, slot: Rc<dyn Any>) -> UnixDatagramInner {
        UnixDatagramInner {
            socket: RefCell::new(None),
            file: RefCell::new(None),
            host,
            peer: Some(peer.to_path_buf()),
            slot,
            driver: None,
            io: DatagramIo::new(1, false),
            stopped: Cell::new(true),
        }
    }

    /// Registers the socket and starts the protocol.
    fn serve(
        self,
        reactor: &Reactor,
        socket: UnixDatagram,
        file: Option<SocketFile>,
    ) -> io::Result<UnixDatagramPort> {
        let inner = Rc::new(self);
        inner.io.register(reactor, &socket, &inner)?;
        *inner.socket.borrow_mut() = Some(socket);
        *inner.file.borrow_mut() = file;
        let port = DatagramPort::new(inner.clone());
        if let Some(d) = &inner.driver {
            d.do_start(port.clone());
        }
        Ok(port)
    }

    fn read(&self, reactor: &Reactor) {
        let Some(driver) = &self.driver else {
            return;
        };
        let socket = self.socket.borrow();
        let Some(s) = socket.as_ref() else {
            return;
        };
        let connected = self.peer.is_some();
        self.io.read(
            reactor,
            s,
            |data, from| driver.datagram_received(data, from),
            || {
                if connected {
                    driver.connection_refused();
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
        if let Some(d) = &self.driver
            && self.peer.is_some()
        {
            for _ in 0..flushed.refused {
                d.connection_refused();
            }
        }
    }

    /// Where a write goes: `None` for the connected peer, else the address given.
    fn destination(
        &self,
        addr: Option<UnixDatagramAddress>,
    ) -> Result<Option<UnixDatagramAddress>, UdpError> {
        match (&self.peer, addr) {
            (Some(peer), Some(a)) if a.name() != Some(peer.as_path()) => {
                Err(invalid(&a, "the port is connected to another address"))
            }
            (Some(_), _) => Ok(None),
            (None, None) => Err(invalid("None", "an unconnected port needs an address")),
            (None, Some(a)) => match &a.name {
                Some(p) if !fits_sun_path(p) => Err(invalid(&a, "the name is too long")),
                Some(_) => Ok(Some(a)),
                None => Err(invalid(
                    &a,
                    "the sender never bound an address: there is nothing to send to",
                )),
            },
        }
    }

    fn stop(&self, reactor: &Reactor) {
        if self.stopped.replace(true) {
            return;
        }
        self.io.close(reactor, &self.socket);
        drop(self.file.borrow_mut().take());
        if let Some(d) = &self.driver {
            d.do_stop();
        }
    }
}

impl SourceHandler for UnixDatagramInner {
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

impl PortOps<UnixDatagramAddress> for UnixDatagramInner {
    fn host(&self) -> Address {
        self.host.clone()
    }
    fn peer(&self) -> Option<Address> {
        self.peer.clone().map(|p| Address::Unix(Some(p)))
    }
    fn slot(&self) -> Rc<dyn Any> {
        self.slot.clone()
    }
    fn as_any(self: Rc<Self>) -> Rc<dyn Any> {
        self
    }
    fn write(&self, datagram: &[u8], addr: Option<UnixDatagramAddress>) -> Result<(), UdpError> {
        let to = self.destination(addr)?;
        if self.socket.borrow().is_none() {
            return Err(UdpError::NotListening);
        }
        self.io.write(datagram, to);
        Ok(())
    }
    fn stop(&self, reactor: &Reactor) {
        UnixDatagramInner::stop(self, reactor);
    }
    fn dropped(&self) -> u64 {
        self.io.dropped()
    }
}

fn invalid(address: impl ToString, message: &str) -> UdpError {
    UdpError::InvalidAddress(InvalidAddressError {
        address: address.to_string(),
        message: message.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening() -> UnixDatagramInner {
        UnixDatagramInner {
            peer: None,
            ..UnixDatagramInner::stopped(Address::Unix(None), Path::new("/x"), Rc::new(()))
        }
    }

    #[test]
    fn an_unconnected_port_needs_a_named_address() {
        let port = listening();
        assert!(matches!(
            port.destination(None),
            Err(UdpError::InvalidAddress(_))
        ));
        let e = port.destination(Some(UnixDatagramAddress::unnamed()));
        assert!(
            matches!(&e, Err(UdpError::InvalidAddress(a)) if a.message.contains("never bound")),
            "{e:?}"
        );
        assert_eq!(
            port.destination(Some(UnixDatagramAddress::new("/a"))).ok(),
            Some(Some(UnixDatagramAddress::new("/a")))
        );
    }

    #[test]
    fn a_connected_port_sends_to_its_peer_only() {
        let port = UnixDatagramInner::stopped(Address::Unix(None), Path::new("/peer"), Rc::new(()));
        assert_eq!(port.destination(None).ok(), Some(None));
        assert_eq!(
            port.destination(Some(UnixDatagramAddress::new("/peer")))
                .ok(),
            Some(None)
        );
        assert!(matches!(
            port.destination(Some(UnixDatagramAddress::new("/other"))),
            Err(UdpError::InvalidAddress(_))
        ));
    }

    #[test]
    fn addresses_show_abstract_names_with_an_at() {
        assert_eq!(UnixDatagramAddress::new("\0n").to_string(), "unix:@n");
        assert_eq!(UnixDatagramAddress::new("/p").to_string(), "unix:/p");
        assert_eq!(UnixDatagramAddress::unnamed().to_string(), "unix:");
    }

    #[test]
    fn a_failed_bind_leaves_no_file() {
        let dir = std::env::temp_dir().join(format!("twistor-dgram-unit-{}", std::process::id()));
        // A path under a missing directory cannot be bound, and nothing is created.
        let path = dir.join("missing").join("x.sock");
        assert!(bind(Some(&path), 0o666).is_err());
        assert!(!path.exists());
    }
}

//! Server endpoints (Twisted's `IStreamServerEndpoint`): where to listen, kept apart from
//! what to serve. `listen` returns a Deferred of the [`ListeningPort`]; a port that cannot
//! be listened on gives an already failed Deferred (a
//! [`CannotListenError`](crate::error::CannotListenError)), never a panic.

use std::path::{Path, PathBuf};

use crate::Deferred;
use crate::protocol::Factory;
use crate::reactor::Reactor;
use crate::transport::listener::ListeningPort;
use crate::transport::tcp::{IntoFactory, ListenOptions, listen_tcp_with};
use crate::transport::unix::{UnixListenOptions, listen_unix_with};

/// Where to listen (Twisted's `IStreamServerEndpoint`).
///
/// ```
/// use twistor::endpoints::{ServerEndpoint, Tcp4ServerEndpoint};
/// use twistor::prelude::*;
/// use twistor::transport::tcp::ListenOptions;
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let endpoint = Tcp4ServerEndpoint::with_options(0, ListenOptions::on("127.0.0.1"));
/// let port = twistor::testing::success_result_of(&endpoint.listen(&reactor, for_protocol(|| Quiet)));
/// assert_ne!(port.port(), 0);
/// ```
#[doc(alias = "IStreamServerEndpoint")]
pub trait ServerEndpoint {
    /// Listens, serving each connection with a protocol from `factory`.
    fn listen<A>(&self, reactor: &Reactor, factory: A) -> Deferred<ListeningPort>
    where
        A: IntoFactory,
        A::Factory: Factory;
}

/// Listens on a TCP port of an IPv4 interface (Twisted's `TCP4ServerEndpoint`; defaults:
/// every interface, a backlog of 50).
///
/// ```
/// use twistor::endpoints::Tcp4ServerEndpoint;
/// let e = Tcp4ServerEndpoint::new(8080);
/// assert_eq!(e.port(), 8080);
/// assert_eq!(e.options().interface, "");
/// ```
#[doc(alias = "TCP4ServerEndpoint")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp4ServerEndpoint {
    port: u16,
    options: ListenOptions,
}

impl Tcp4ServerEndpoint {
    /// On `port` of every IPv4 interface.
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::Tcp4ServerEndpoint::new(0).options().backlog, 50);
    /// ```
    pub fn new(port: u16) -> Self {
        Self::with_options(port, ListenOptions::default())
    }

    /// On `port` with `options` (interface, backlog).
    ///
    /// ```
    /// use twistor::transport::tcp::ListenOptions;
    /// let e = twistor::endpoints::Tcp4ServerEndpoint::with_options(0, ListenOptions::on("127.0.0.1"));
    /// assert_eq!(e.options().interface, "127.0.0.1");
    /// ```
    pub fn with_options(port: u16, options: ListenOptions) -> Self {
        Tcp4ServerEndpoint { port, options }
    }

    /// The port asked for.
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::Tcp4ServerEndpoint::new(7).port(), 7);
    /// ```
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The listen options.
    ///
    /// ```
    /// assert!(!twistor::endpoints::Tcp4ServerEndpoint::new(7).options().reuse_port);
    /// ```
    pub fn options(&self) -> &ListenOptions {
        &self.options
    }
}

impl ServerEndpoint for Tcp4ServerEndpoint {
    fn listen<A>(&self, reactor: &Reactor, factory: A) -> Deferred<ListeningPort>
    where
        A: IntoFactory,
        A::Factory: Factory,
    {
        match listen_tcp_with(reactor, self.port, factory, self.options.clone()) {
            Ok(p) => Deferred::succeed(p),
            Err(e) => Deferred::fail(e),
        }
    }
}

/// Listens on a TCP port of an IPv6 interface (Twisted's `TCP6ServerEndpoint`; defaults:
/// every IPv6 interface `::`, a backlog of 50). The socket is IPv6-only.
///
/// ```
/// use twistor::endpoints::Tcp6ServerEndpoint;
/// assert_eq!(Tcp6ServerEndpoint::new(8080).options().interface, "::");
/// ```
#[doc(alias = "TCP6ServerEndpoint")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp6ServerEndpoint {
    port: u16,
    options: ListenOptions,
}

impl Tcp6ServerEndpoint {
    /// On `port` of every IPv6 interface.
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::Tcp6ServerEndpoint::new(1).port(), 1);
    /// ```
    pub fn new(port: u16) -> Self {
        Self::with_options(port, ListenOptions::on("::"))
    }

    /// On `port` with `options` (interface: an IPv6 address; backlog).
    ///
    /// ```
    /// use twistor::transport::tcp::ListenOptions;
    /// let e = twistor::endpoints::Tcp6ServerEndpoint::with_options(0, ListenOptions::on("::1"));
    /// assert_eq!(e.options().interface, "::1");
    /// ```
    pub fn with_options(port: u16, options: ListenOptions) -> Self {
        Tcp6ServerEndpoint { port, options }
    }

    /// The port asked for.
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::Tcp6ServerEndpoint::new(9).port(), 9);
    /// ```
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The listen options.
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::Tcp6ServerEndpoint::new(9).options().backlog, 50);
    /// ```
    pub fn options(&self) -> &ListenOptions {
        &self.options
    }
}

impl ServerEndpoint for Tcp6ServerEndpoint {
    fn listen<A>(&self, reactor: &Reactor, factory: A) -> Deferred<ListeningPort>
    where
        A: IntoFactory,
        A::Factory: Factory,
    {
        let mut options = self.options.clone();
        if options.interface.is_empty() {
            options.interface = "::".into();
        }
        // An IPv4 address would quietly give an IPv4 port.
        if options.interface.parse::<std::net::Ipv4Addr>().is_ok() {
            return Deferred::fail(crate::error::CannotListenError {
                interface: options.interface.clone(),
                port: self.port,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a TCP6 endpoint needs an IPv6 interface",
                ),
            });
        }
        match listen_tcp_with(reactor, self.port, factory, options) {
            Ok(p) => Deferred::succeed(p),
            Err(e) => Deferred::fail(e),
        }
    }
}

/// Listens on a UNIX socket (Twisted's `UNIXServerEndpoint`; defaults: mode `0o666`, a
/// backlog of 50, no lock file). A path starting with NUL names an abstract socket.
///
/// ```
/// use twistor::endpoints::UnixServerEndpoint;
/// let e = UnixServerEndpoint::new("/run/app.sock");
/// assert_eq!(e.options().mode, 0o666);
/// ```
#[doc(alias = "UNIXServerEndpoint")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixServerEndpoint {
    path: PathBuf,
    options: UnixListenOptions,
}

impl UnixServerEndpoint {
    /// On `path`, with Twisted's defaults.
    ///
    /// ```
    /// let e = twistor::endpoints::UnixServerEndpoint::new("run/a.sock");
    /// assert!(!e.options().want_pid);
    /// ```
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self::with_options(path, UnixListenOptions::default())
    }

    /// On `path` with `options` (mode, backlog, lock file).
    ///
    /// ```
    /// use twistor::transport::unix::UnixListenOptions;
    /// let o = UnixListenOptions { mode: 0o600, ..Default::default() };
    /// assert_eq!(twistor::endpoints::UnixServerEndpoint::with_options("run/a.sock", o).options().mode, 0o600);
    /// ```
    pub fn with_options(path: impl AsRef<Path>, options: UnixListenOptions) -> Self {
        UnixServerEndpoint {
            path: path.as_ref().to_path_buf(),
            options,
        }
    }

    /// The path.
    ///
    /// ```
    /// let e = twistor::endpoints::UnixServerEndpoint::new("run/a.sock");
    /// assert_eq!(e.path(), std::path::Path::new("run/a.sock"));
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The listen options.
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::UnixServerEndpoint::new("/x").options().backlog, 50);
    /// ```
    pub fn options(&self) -> &UnixListenOptions {
        &self.options
    }
}

impl ServerEndpoint for UnixServerEndpoint {
    fn listen<A>(&self, reactor: &Reactor, factory: A) -> Deferred<ListeningPort>
    where
        A: IntoFactory,
        A::Factory: Factory,
    {
        match listen_unix_with(reactor, &self.path, factory, self.options.clone()) {
            Ok(p) => Deferred::succeed(p),
            Err(e) => Deferred::fail(e),
        }
    }
}

//! Socket activation: listening sockets inherited from systemd (or any service manager that
//! follows its protocol), as Twisted's `systemd:` endpoint adopts them.
//!
//! The protocol: `LISTEN_PID` is the pid the sockets are meant for (another process
//! inherited the environment by accident and must not touch them), `LISTEN_FDS` how many
//! there are, starting at descriptor 3, and `LISTEN_FDNAMES` their names, `:`-separated.
//!
//! Ownership: the inherited descriptors are taken out of the process once (the first use of
//! [`ListenFds::inherited`]); each can then be adopted by one endpoint only, so no
//! descriptor is ever closed twice. A second `listen` fails with [`AlreadyListened`].

use std::cell::RefCell;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::Mutex;

use super::error::AlreadyListened;
use super::server::ServerEndpoint;
use crate::Deferred;
use crate::protocol::Factory;
use crate::reactor::Reactor;
use crate::transport::factory::counted;
use crate::transport::listener::ListeningPort;
use crate::transport::tcp::IntoFactory;

/// The first inherited descriptor (after stdin, stdout, stderr).
const FIRST_FD: RawFd = 3;

/// The address family an adopted socket must have (`domain=` in the description).
///
/// ```
/// use twistor::endpoints::{parse_server, ServerDescription, SocketDomain};
/// let ServerDescription::Systemd(e) = parse_server("systemd:domain=INET6:index=0").unwrap() else { panic!() };
/// assert_eq!(e.domain(), SocketDomain::Inet6);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketDomain {
    /// TCP over IPv4.
    Inet,
    /// TCP over IPv6.
    Inet6,
    /// A UNIX stream socket.
    Unix,
}

impl SocketDomain {
    /// From the description's spelling: `INET`, `INET6` or `UNIX`.
    ///
    /// ```
    /// use twistor::endpoints::SocketDomain;
    /// assert_eq!(SocketDomain::from_name("INET6"), Some(SocketDomain::Inet6));
    /// assert_eq!(SocketDomain::from_name("inet"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<SocketDomain> {
        match name {
            "INET" => Some(SocketDomain::Inet),
            "INET6" => Some(SocketDomain::Inet6),
            "UNIX" => Some(SocketDomain::Unix),
            _ => None,
        }
    }

    fn socket_domain(self) -> socket2::Domain {
        match self {
            SocketDomain::Inet => socket2::Domain::IPV4,
            SocketDomain::Inet6 => socket2::Domain::IPV6,
            SocketDomain::Unix => socket2::Domain::UNIX,
        }
    }
}

/// Which inherited socket: by position or by name.
///
/// ```
/// use twistor::endpoints::{parse_server, ServerDescription, SocketSelector};
/// let ServerDescription::Systemd(e) = parse_server("systemd:domain=UNIX:name=api").unwrap() else { panic!() };
/// assert_eq!(e.selector(), &SocketSelector::Name("api".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketSelector {
    /// The `index`-th (0 is descriptor 3).
    Index(usize),
    /// The one `LISTEN_FDNAMES` names so (the first, if several share the name).
    Name(String),
}

/// Why an inherited socket cannot be adopted.
///
/// ```
/// use twistor::endpoints::{ListenFds, SocketSelector, SystemdError};
/// let none = ListenFds::from_parts(vec![], vec![]);
/// let e = none.take(&SocketSelector::Name("web".into())).unwrap_err();
/// assert_eq!(e, SystemdError::NoName("web".into()));
/// assert_eq!(e.to_string(), "no inherited socket named 'web'");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SystemdError {
    /// No socket at that index.
    #[error("no inherited socket at index {index} ({count} inherited)")]
    NoIndex {
        /// The index asked for.
        index: usize,
        /// How many were inherited.
        count: usize,
    },
    /// No socket of that name.
    #[error("no inherited socket named '{0}'")]
    NoName(String),
    /// The socket is not a listening stream socket of the asked domain.
    #[error("inherited socket {index} is not a listening {domain:?} stream socket: {reason}")]
    WrongKind {
        /// Its index.
        index: usize,
        /// The domain asked for.
        domain: SocketDomain,
        /// What it is instead.
        reason: String,
    },
}

/// The inherited listening sockets.
///
/// ```
/// use std::os::fd::OwnedFd;
/// use twistor::endpoints::{ListenFds, SocketSelector};
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let fds = ListenFds::from_parts(vec![OwnedFd::from(listener)], vec!["web".into()]);
/// assert_eq!(fds.len(), 1);
/// assert!(fds.take(&SocketSelector::Name("web".into())).is_ok());
/// assert!(fds.take(&SocketSelector::Index(0)).is_err()); // taken already
/// ```
pub struct ListenFds {
    fds: RefCell<Vec<Option<OwnedFd>>>,
    names: Vec<String>,
}

impl std::fmt::Debug for ListenFds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenFds")
            .field("count", &self.len())
            .field("names", &self.names)
            .finish()
    }
}

/// Set once the environment's descriptors have an owner: they are taken once per process.
static TAKEN: Mutex<bool> = Mutex::new(false);

impl ListenFds {
    /// These sockets, with these names (tests, or a manager other than systemd).
    ///
    /// ```
    /// let fds = twistor::endpoints::ListenFds::from_parts(vec![], vec![]);
    /// assert!(fds.is_empty());
    /// ```
    pub fn from_parts(fds: Vec<OwnedFd>, names: Vec<String>) -> ListenFds {
        ListenFds {
            fds: RefCell::new(fds.into_iter().map(Some).collect()),
            names,
        }
    }

    /// How many descriptors `LISTEN_PID` / `LISTEN_FDS` give this process (0 when they are
    /// meant for another pid, or missing or malformed), and their names.
    ///
    /// ```
    /// use twistor::endpoints::ListenFds;
    /// assert_eq!(ListenFds::parse_env(42, Some("42"), Some("2"), Some("a:b")), (2, vec!["a".into(), "b".into()]));
    /// assert_eq!(ListenFds::parse_env(42, Some("7"), Some("2"), None).0, 0);
    /// assert_eq!(ListenFds::parse_env(42, Some("42"), Some("x"), None).0, 0);
    /// ```
    pub fn parse_env(
        pid: u32,
        listen_pid: Option<&str>,
        listen_fds: Option<&str>,
        names: Option<&str>,
    ) -> (usize, Vec<String>) {
        let for_us = listen_pid.and_then(|p| p.trim().parse::<u32>().ok()) == Some(pid);
        let count = listen_fds.and_then(|n| n.trim().parse::<usize>().ok());
        match (for_us, count) {
            (true, Some(n)) if n <= 4096 => {
                let names = names
                    .map(|s| s.split(':').map(str::to_string).collect())
                    .unwrap_or_default();
                (n, names)
            }
            _ => (0, Vec::new()),
        }
    }

    /// The sockets this process inherited, taken out of the environment's descriptors the
    /// first time it is called in the process; later calls get none (the descriptors have
    /// one owner).
    ///
    /// ```
    /// // Not started by a service manager: nothing inherited.
    /// assert!(twistor::endpoints::ListenFds::inherited().is_empty());
    /// ```
    pub fn inherited() -> ListenFds {
        let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
        if *taken {
            return ListenFds::from_parts(Vec::new(), Vec::new());
        }
        *taken = true;
        let var = |k: &str| std::env::var(k).ok();
        let (count, names) = ListenFds::parse_env(
            std::process::id(),
            var("LISTEN_PID").as_deref(),
            var("LISTEN_FDS").as_deref(),
            var("LISTEN_FDNAMES").as_deref(),
        );
        let mut fds = Vec::with_capacity(count);
        for i in 0..count {
            let fd = FIRST_FD + i as RawFd;
            // Only descriptors that are open are taken: a wrong LISTEN_FDS must not make us
            // own (and later close) a number that is not ours.
            // SAFETY: fcntl(F_GETFD) only reads the descriptor's flags.
            let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
            if open {
                // SAFETY: the service manager passed this open descriptor to this pid, and
                // `TAKEN` makes this the only place that takes ownership of it.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                // Close-on-exec, so children of ours do not inherit it.
                // SAFETY: sets a flag on a descriptor we own.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
                fds.push(Some(owned));
            } else {
                fds.push(None);
            }
        }
        ListenFds {
            fds: RefCell::new(fds),
            names,
        }
    }

    /// How many sockets (taken or not).
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::ListenFds::from_parts(vec![], vec![]).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.fds.borrow().len()
    }

    /// Whether there are none.
    ///
    /// ```
    /// assert!(twistor::endpoints::ListenFds::from_parts(vec![], vec![]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn index_of(&self, selector: &SocketSelector) -> Result<usize, SystemdError> {
        let count = self.len();
        match selector {
            SocketSelector::Index(i) if *i < count => Ok(*i),
            SocketSelector::Index(i) => Err(SystemdError::NoIndex { index: *i, count }),
            SocketSelector::Name(n) => self
                .names
                .iter()
                .position(|x| x == n)
                .filter(|i| *i < count)
                .ok_or_else(|| SystemdError::NoName(n.clone())),
        }
    }

    /// Takes the selected socket (each can be taken once).
    ///
    /// ```
    /// use twistor::endpoints::{ListenFds, SocketSelector};
    /// let fds = ListenFds::from_parts(vec![], vec![]);
    /// assert!(fds.take(&SocketSelector::Index(0)).unwrap_err().to_string().contains("index 0"));
    /// ```
    pub fn take(&self, selector: &SocketSelector) -> Result<OwnedFd, SystemdError> {
        let i = self.index_of(selector)?;
        let count = self.len();
        let taken = self.fds.borrow_mut()[i].take();
        taken.ok_or(SystemdError::NoIndex { index: i, count })
    }
}

thread_local! {
    static INHERITED: Rc<ListenFds> = Rc::new(ListenFds::inherited());
}

/// Listens on an inherited socket (Twisted's `systemd:` endpoint over an
/// `AdoptedStreamServerEndpoint`): `systemd:domain=INET:index=0` or
/// `systemd:domain=UNIX:name=NAME`. It listens once.
///
/// ```
/// use std::os::fd::OwnedFd;
/// use std::rc::Rc;
/// use twistor::endpoints::{ListenFds, ServerEndpoint, SocketDomain, SocketSelector, SystemdServerEndpoint};
/// use twistor::prelude::*;
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let inherited = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let where_ = inherited.local_addr().unwrap();
/// let fds = Rc::new(ListenFds::from_parts(vec![OwnedFd::from(inherited)], vec![]));
/// let e = SystemdServerEndpoint::with_fds(SocketDomain::Inet, SocketSelector::Index(0), fds);
/// let reactor = Reactor::new().unwrap();
/// let port = twistor::testing::success_result_of(&e.listen(&reactor, for_protocol(|| Quiet)));
/// assert_eq!(port.port(), where_.port());
/// assert!(e.listen(&reactor, for_protocol(|| Quiet)).has_result()); // failed: once only
/// # let _ = twistor::testing::failure_result_of(&e.listen(&reactor, for_protocol(|| Quiet)));
/// ```
#[doc(alias = "AdoptedStreamServerEndpoint")]
#[derive(Debug, Clone)]
pub struct SystemdServerEndpoint {
    domain: SocketDomain,
    selector: SocketSelector,
    fds: Rc<ListenFds>,
}

impl SystemdServerEndpoint {
    /// The selected socket of those this process inherited.
    ///
    /// ```
    /// use twistor::endpoints::{SocketDomain, SocketSelector, SystemdServerEndpoint};
    /// let e = SystemdServerEndpoint::new(SocketDomain::Inet, SocketSelector::Index(0));
    /// assert_eq!(e.domain(), SocketDomain::Inet);
    /// ```
    pub fn new(domain: SocketDomain, selector: SocketSelector) -> Self {
        let fds = INHERITED.with(Rc::clone);
        Self::with_fds(domain, selector, fds)
    }

    /// The selected socket of `fds`.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::endpoints::{ListenFds, SocketDomain, SocketSelector, SystemdServerEndpoint};
    /// let fds = Rc::new(ListenFds::from_parts(vec![], vec![]));
    /// let e = SystemdServerEndpoint::with_fds(SocketDomain::Unix, SocketSelector::Name("x".into()), fds);
    /// assert_eq!(e.selector(), &SocketSelector::Name("x".into()));
    /// ```
    pub fn with_fds(domain: SocketDomain, selector: SocketSelector, fds: Rc<ListenFds>) -> Self {
        SystemdServerEndpoint {
            domain,
            selector,
            fds,
        }
    }

    /// The domain asked for.
    ///
    /// ```
    /// use twistor::endpoints::{SocketDomain, SocketSelector, SystemdServerEndpoint};
    /// assert_eq!(SystemdServerEndpoint::new(SocketDomain::Unix, SocketSelector::Index(1)).domain(), SocketDomain::Unix);
    /// ```
    pub fn domain(&self) -> SocketDomain {
        self.domain
    }

    /// Which socket.
    ///
    /// ```
    /// use twistor::endpoints::{SocketDomain, SocketSelector, SystemdServerEndpoint};
    /// let e = SystemdServerEndpoint::new(SocketDomain::Inet, SocketSelector::Index(2));
    /// assert_eq!(e.selector(), &SocketSelector::Index(2));
    /// ```
    pub fn selector(&self) -> &SocketSelector {
        &self.selector
    }

    fn check(&self, fd: &OwnedFd) -> Result<(), String> {
        let s = socket2::SockRef::from(fd);
        let domain = s.domain().map_err(|e| e.to_string())?;
        if domain != self.domain.socket_domain() {
            return Err(format!("its domain is {domain:?}"));
        }
        if s.r#type().map_err(|e| e.to_string())? != socket2::Type::STREAM {
            return Err("it is not a stream socket".into());
        }
        if !s.is_listener().map_err(|e| e.to_string())? {
            return Err("it is not listening".into());
        }
        Ok(())
    }

    fn adopt<F: Factory>(
        &self,
        reactor: &Reactor,
        factory: Rc<F>,
    ) -> Result<ListeningPort, crate::Failure> {
        let index = self
            .fds
            .index_of(&self.selector)
            .map_err(crate::Failure::new)?;
        let fd = self
            .fds
            .take(&self.selector)
            .map_err(|_| crate::Failure::new(AlreadyListened))?;
        if let Err(reason) = self.check(&fd) {
            return Err(crate::Failure::new(SystemdError::WrongKind {
                index,
                domain: self.domain,
                reason,
            }));
        }
        let factory = counted(factory);
        let port = match self.domain {
            SocketDomain::Inet | SocketDomain::Inet6 => {
                let l = std::net::TcpListener::from(fd);
                l.set_nonblocking(true)
                    .and_then(|()| crate::transport::tcp::listen_on(reactor, l, factory))
            }
            SocketDomain::Unix => {
                let l = std::os::unix::net::UnixListener::from(fd);
                crate::transport::unix::listen_unix_adopted(reactor, l, factory)
            }
        };
        port.map_err(crate::Failure::new)
    }
}

impl ServerEndpoint for SystemdServerEndpoint {
    fn listen<A>(&self, reactor: &Reactor, factory: A) -> Deferred<ListeningPort>
    where
        A: IntoFactory,
        A::Factory: Factory,
    {
        match self.adopt(reactor, factory.into_factory()) {
            Ok(p) => Deferred::succeed(p),
            Err(f) => Deferred::fail(f),
        }
    }
}

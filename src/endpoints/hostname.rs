//! `HostnameEndpoint`: connect to a host name the way RFC 8305 ("Happy Eyeballs v2")
//! describes, and `Tcp6ClientEndpoint`, the same race over IPv6 addresses only.
//!
//! The race, and its invariants:
//! - The name is resolved off the loop (on the reactor's thread pool), or by an injected
//!   [`NameResolver`]; an IP address is used as it is, and a non-ASCII name is looked up as
//!   its A-label (`bücher.example` as `xn--bcher-kva.example`). A failed lookup, one with
//!   no address, or a name IDNA refuses, fails with [`DnsLookupError`].
//! - The addresses are interleaved by family, IPv6 first (RFC 8305 section 4), each family in
//!   the resolver's order.
//! - The first attempt starts at once; another starts every `attempt_delay` (default 0.3 s),
//!   and at once when an attempt fails, while addresses remain. Several attempts can be in
//!   flight together.
//! - The first attempt to connect wins: the timer is cancelled and so is every other
//!   attempt, so at most one connection is ever handed to the factory's protocol.
//! - When every attempt has failed, the Deferred fails with the last failure.
//! - Cancelling the Deferred cancels the lookup, the timer and every attempt, and fails it
//!   with [`ConnectingCancelledError`].
//!
//! Twisted's `HostnameEndpoint` differs in two ways kept out on purpose: it neither
//! interleaves families nor starts the next attempt early when one fails.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::{Rc, Weak};
use std::time::Duration;

use super::client::{ClientEndpoint, EndpointReactor, ProtocolOf, Tcp4ClientEndpoint};
use super::error::ConnectingCancelledError;
use crate::defer::CancelHandle;
use crate::error::DnsLookupError;
use crate::protocol::{Factory, Handle};
use crate::reactor::ReactorThreads;
use crate::time::DelayedCall;
use crate::transport::Address;
use crate::transport::tcp::{ConnectOptions, IntoFactory};
use crate::{Deferred, Failure, Resolver};

/// Resolves a host name to addresses (Twisted's `IHostnameResolver`). Inject one into a
/// [`HostnameEndpoint`] to make tests deterministic; the default asks the system resolver on
/// the reactor's thread pool.
///
/// ```
/// use std::net::SocketAddr;
/// use twistor::Deferred;
/// use twistor::endpoints::NameResolver;
///
/// struct Fixed(Vec<SocketAddr>);
/// impl NameResolver for Fixed {
///     fn resolve(&self, _host: &str, _port: u16) -> Deferred<Vec<SocketAddr>> {
///         Deferred::succeed(self.0.clone())
///     }
/// }
/// let r = Fixed(vec!["127.0.0.1:80".parse().unwrap()]);
/// assert_eq!(twistor::testing::success_result_of(&r.resolve("h", 80)).len(), 1);
/// ```
#[doc(alias = "IHostnameResolver")]
pub trait NameResolver {
    /// The addresses of `host`, with `port`; fails if the name cannot be resolved.
    fn resolve(&self, host: &str, port: u16) -> Deferred<Vec<SocketAddr>>;
}

/// [`HostnameEndpoint`]'s options.
///
/// ```
/// use std::time::Duration;
/// use twistor::endpoints::HostnameOptions;
///
/// let o = HostnameOptions { attempt_delay: Duration::from_millis(250), ..Default::default() };
/// assert_eq!(o.timeout, Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostnameOptions {
    /// Each attempt gives up after this long (default 30 s); `None`: the kernel's timeout.
    pub timeout: Option<Duration>,
    /// Bind the local end of every attempt to this address first (port 0).
    pub bind_address: Option<IpAddr>,
    /// How long to wait for an attempt before starting the next (RFC 8305's "Connection
    /// Attempt Delay"; default 0.3 s, as Twisted's).
    pub attempt_delay: Duration,
}

impl Default for HostnameOptions {
    fn default() -> Self {
        HostnameOptions {
            timeout: Some(Duration::from_secs(30)),
            bind_address: None,
            attempt_delay: Duration::from_millis(300),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Families {
    Both,
    V6,
}

/// Connects to a host name over TCP, racing its addresses (Twisted's `HostnameEndpoint`,
/// following RFC 8305; see the module docs for the rules).
///
/// ```
/// use twistor::endpoints::{ClientEndpoint, HostnameEndpoint};
/// use twistor::prelude::*;
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_tcp(&reactor, 0, for_protocol(|| Quiet)).unwrap();
/// let d = HostnameEndpoint::new("localhost", port.port()).connect(&reactor, for_protocol(|| Quiet));
/// while !d.has_result() {
///     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
/// }
/// assert!(twistor::testing::success_result_of(&d).alive());
/// ```
#[derive(Clone)]
pub struct HostnameEndpoint {
    host: String,
    port: u16,
    options: HostnameOptions,
    resolver: Option<Rc<dyn NameResolver>>,
    families: Families,
}

impl std::fmt::Debug for HostnameEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostnameEndpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl HostnameEndpoint {
    /// To `host:port`, with the defaults.
    ///
    /// ```
    /// let e = twistor::endpoints::HostnameEndpoint::new("example.com", 443);
    /// assert_eq!((e.host(), e.port()), ("example.com", 443));
    /// ```
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self::with_options(host, port, HostnameOptions::default())
    }

    /// To `host:port`, with `options`.
    ///
    /// ```
    /// use twistor::endpoints::{HostnameEndpoint, HostnameOptions};
    /// let o = HostnameOptions { timeout: None, ..Default::default() };
    /// assert_eq!(HostnameEndpoint::with_options("h", 1, o).options().timeout, None);
    /// ```
    pub fn with_options(host: impl Into<String>, port: u16, options: HostnameOptions) -> Self {
        HostnameEndpoint {
            host: host.into(),
            port,
            options,
            resolver: None,
            families: Families::Both,
        }
    }

    /// This endpoint, resolving names with `resolver` instead of the system's.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use std::rc::Rc;
    /// use twistor::Deferred;
    /// use twistor::endpoints::{HostnameEndpoint, NameResolver};
    ///
    /// struct Nothing;
    /// impl NameResolver for Nothing {
    ///     fn resolve(&self, _: &str, _: u16) -> Deferred<Vec<SocketAddr>> { Deferred::succeed(vec![]) }
    /// }
    /// let _e = HostnameEndpoint::new("h", 1).with_resolver(Rc::new(Nothing));
    /// ```
    pub fn with_resolver(mut self, resolver: Rc<dyn NameResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// The host.
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::HostnameEndpoint::new("h", 1).host(), "h");
    /// ```
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::HostnameEndpoint::new("h", 1).port(), 1);
    /// ```
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The options.
    ///
    /// ```
    /// let e = twistor::endpoints::HostnameEndpoint::new("h", 1);
    /// assert_eq!(e.options().attempt_delay, std::time::Duration::from_millis(300));
    /// ```
    pub fn options(&self) -> &HostnameOptions {
        &self.options
    }

    fn resolve<R: EndpointReactor>(&self, reactor: &R) -> Deferred<Vec<SocketAddr>> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Deferred::succeed(vec![SocketAddr::new(ip, self.port)]);
        }
        // DNS knows only A-labels: `bücher.example` is looked up as `xn--bcher-kva.example`
        // (Twisted encodes the name the same way before resolving it).
        let host = if self.host.is_ascii() {
            self.host.clone()
        } else {
            match idna::domain_to_ascii(&self.host) {
                Ok(h) => h,
                Err(_) => {
                    return Deferred::fail(DnsLookupError(format!(
                        "{:?} is not a valid internationalized host name",
                        self.host
                    )));
                }
            }
        };
        if let Some(r) = &self.resolver {
            return r.resolve(&host, self.port);
        }
        let name = (host, self.port);
        ReactorThreads::defer_to_thread(reactor, move || {
            name.to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>())
                .map_err(|e| e.to_string())
        })
        .add_callback_try(|r| r.map_err(|e| Failure::new(DnsLookupError(e))))
    }
}

impl ClientEndpoint for HostnameEndpoint {
    fn connect<R, A>(&self, reactor: &R, factory: A) -> Deferred<Handle<ProtocolOf<A>>>
    where
        R: EndpointReactor,
        A: IntoFactory,
        A::Factory: Factory,
    {
        let slot: RaceSlot<R, A::Factory> = Rc::new(RefCell::new(Weak::new()));
        let in_canceller = slot.clone();
        let address = Address::Name {
            host: self.host.clone(),
            port: self.port,
        };
        let (d, result) = Deferred::with_canceller(move |r: &Resolver<_>| {
            let _ = r.errback(ConnectingCancelledError { address });
            let race = in_canceller.borrow().upgrade();
            if let Some(race) = race {
                race.stop();
            }
        });
        let race = Rc::new(Race {
            reactor: reactor.clone(),
            factory: factory.into_factory(),
            host: self.host.clone(),
            options: ConnectOptions {
                timeout: self.options.timeout,
                bind_address: self.options.bind_address.map(|ip| SocketAddr::new(ip, 0)),
            },
            delay: self.options.attempt_delay.as_secs_f64(),
            families: self.families,
            result,
            state: RefCell::new(State::default()),
        });
        *slot.borrow_mut() = Rc::downgrade(&race);
        let me = race.clone();
        let resolving = self
            .resolve(reactor)
            .add_both(move |r| {
                me.resolved(r);
                Ok(())
            })
            .cancel_handle();
        let mut st = race.state.borrow_mut();
        if !st.resolved {
            st.resolving = Some(resolving);
        }
        drop(st);
        d
    }
}

#[derive(Default)]
struct State {
    done: bool,
    resolved: bool,
    resolving: Option<CancelHandle>,
    queue: VecDeque<SocketAddr>,
    /// The attempts in flight; `None` until its Deferred exists.
    pending: Vec<(u64, Option<CancelHandle>)>,
    next_id: u64,
    timer: Option<DelayedCall>,
    last_failure: Option<Failure>,
}

/// Where the canceller finds its race (weak: the race holds the Deferred's resolver).
type RaceSlot<R, F> = Rc<RefCell<Weak<Race<R, F>>>>;

/// One `connect` call's race. Attempt callbacks and the timer hold it; the Deferred's
/// canceller only refers to it. No borrow of `state` is held while an attempt starts or a
/// Deferred is cancelled or fired, since those run callbacks that come back here.
struct Race<R, F: Factory> {
    reactor: R,
    factory: Rc<F>,
    host: String,
    options: ConnectOptions,
    delay: f64,
    families: Families,
    result: Resolver<Handle<F::Protocol>>,
    state: RefCell<State>,
}

/// IPv6 first, then alternate, each family in the resolver's order.
fn interleave(addrs: Vec<SocketAddr>) -> VecDeque<SocketAddr> {
    let (v6, v4): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|a| a.is_ipv6());
    let mut out = VecDeque::with_capacity(v6.len() + v4.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

impl<R: EndpointReactor, F: Factory> Race<R, F> {
    fn resolved(self: &Rc<Self>, r: Result<Vec<SocketAddr>, Failure>) {
        let mut st = self.state.borrow_mut();
        st.resolved = true;
        st.resolving = None;
        if st.done {
            return;
        }
        let addrs = match r {
            Ok(mut addrs) => {
                if self.families == Families::V6 {
                    addrs.retain(|a| a.is_ipv6());
                }
                addrs
            }
            Err(f) => {
                st.done = true;
                drop(st);
                let why = if f.is::<DnsLookupError>() {
                    f
                } else {
                    Failure::new(DnsLookupError(format!(
                        "Couldn't find the hostname '{}': {}",
                        self.host,
                        f.error_message()
                    )))
                };
                let _ = self.result.errback(why);
                return;
            }
        };
        if addrs.is_empty() {
            st.done = true;
            drop(st);
            let _ = self.result.errback(DnsLookupError(format!(
                "no results for hostname lookup: {}",
                self.host
            )));
            return;
        }
        st.queue = interleave(addrs);
        drop(st);
        self.start_next();
    }

    fn start_next(self: &Rc<Self>) {
        let (addr, id) = {
            let mut st = self.state.borrow_mut();
            if st.done {
                return;
            }
            let Some(addr) = st.queue.pop_front() else {
                return;
            };
            let id = st.next_id;
            st.next_id += 1;
            st.pending.push((id, None));
            (addr, id)
        };
        let endpoint = Tcp4ClientEndpoint::with_options(
            addr.ip().to_string(),
            addr.port(),
            self.options.clone(),
        );
        let me = self.clone();
        let handle = endpoint
            .connect(&self.reactor, self.factory.clone())
            .add_both(move |r| {
                me.attempt_done(id, r);
                Ok(())
            })
            .cancel_handle();
        let old_timer = {
            let mut st = self.state.borrow_mut();
            if let Some(entry) = st.pending.iter_mut().find(|(i, _)| *i == id) {
                entry.1 = Some(handle);
            }
            if st.done {
                return;
            }
            st.timer.take()
        };
        if let Some(t) = old_timer {
            let _ = t.cancel();
        }
        if self.state.borrow().queue.is_empty() {
            return;
        }
        let me = self.clone();
        let timer = self.reactor.call_later(self.delay, move || {
            me.state.borrow_mut().timer = None;
            me.start_next();
        });
        self.state.borrow_mut().timer = Some(timer);
    }

    fn attempt_done(self: &Rc<Self>, id: u64, r: Result<Handle<F::Protocol>, Failure>) {
        let mut st = self.state.borrow_mut();
        if st.done {
            return; // a loser, cancelled by the winner (or by the caller)
        }
        st.pending.retain(|(i, _)| *i != id);
        match r {
            Ok(handle) => {
                drop(st);
                self.stop();
                let _ = self.result.callback(handle);
            }
            Err(f) => {
                st.last_failure = Some(f);
                if !st.queue.is_empty() {
                    // RFC 8305: no need to wait out the delay once an attempt has failed.
                    drop(st);
                    self.start_next();
                } else if st.pending.is_empty() && st.resolved {
                    st.done = true;
                    let last = st.last_failure.take();
                    drop(st);
                    if let Some(f) = last {
                        let _ = self.result.errback(f);
                    }
                }
            }
        }
    }

    /// Ends the race: cancels the lookup, the timer and every attempt in flight.
    fn stop(&self) {
        let (resolving, timer, pending) = {
            let mut st = self.state.borrow_mut();
            st.done = true;
            st.queue.clear();
            (
                st.resolving.take(),
                st.timer.take(),
                std::mem::take(&mut st.pending),
            )
        };
        if let Some(t) = timer {
            let _ = t.cancel();
        }
        if let Some(r) = resolving {
            r.cancel();
        }
        for (_, h) in pending {
            if let Some(h) = h {
                h.cancel();
            }
        }
    }
}

/// Connects over TCP to the first IPv6 address of a host that answers (Twisted's
/// `TCP6ClientEndpoint`): an IPv6 address as it is, a name resolved off the loop. Where
/// Twisted tries only the first address, this races them as [`HostnameEndpoint`] does.
///
/// ```
/// use twistor::endpoints::Tcp6ClientEndpoint;
/// let e = Tcp6ClientEndpoint::new("::1", 8080);
/// assert_eq!(e.host(), "::1");
/// ```
#[doc(alias = "TCP6ClientEndpoint")]
#[derive(Debug, Clone)]
pub struct Tcp6ClientEndpoint(HostnameEndpoint);

impl Tcp6ClientEndpoint {
    /// To `host:port`, with the defaults (a 30 s timeout).
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::Tcp6ClientEndpoint::new("::1", 1).port(), 1);
    /// ```
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self::with_options(host, port, HostnameOptions::default())
    }

    /// To `host:port`, with `options`.
    ///
    /// ```
    /// use twistor::endpoints::{HostnameOptions, Tcp6ClientEndpoint};
    /// let e = Tcp6ClientEndpoint::with_options("::1", 1, HostnameOptions { timeout: None, ..Default::default() });
    /// assert_eq!(e.host(), "::1");
    /// ```
    pub fn with_options(host: impl Into<String>, port: u16, options: HostnameOptions) -> Self {
        let mut e = HostnameEndpoint::with_options(host, port, options);
        e.families = Families::V6;
        Tcp6ClientEndpoint(e)
    }

    /// This endpoint, resolving names with `resolver`.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use std::rc::Rc;
    /// use twistor::Deferred;
    /// use twistor::endpoints::{NameResolver, Tcp6ClientEndpoint};
    /// struct Nothing;
    /// impl NameResolver for Nothing {
    ///     fn resolve(&self, _: &str, _: u16) -> Deferred<Vec<SocketAddr>> { Deferred::succeed(vec![]) }
    /// }
    /// let _e = Tcp6ClientEndpoint::new("h", 1).with_resolver(Rc::new(Nothing));
    /// ```
    pub fn with_resolver(self, resolver: Rc<dyn NameResolver>) -> Self {
        Tcp6ClientEndpoint(self.0.with_resolver(resolver))
    }

    /// The host.
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::Tcp6ClientEndpoint::new("::1", 1).host(), "::1");
    /// ```
    pub fn host(&self) -> &str {
        self.0.host()
    }

    /// The port.
    ///
    /// ```
    /// assert_eq!(twistor::endpoints::Tcp6ClientEndpoint::new("::1", 9).port(), 9);
    /// ```
    pub fn port(&self) -> u16 {
        self.0.port()
    }
}

impl ClientEndpoint for Tcp6ClientEndpoint {
    fn connect<R, A>(&self, reactor: &R, factory: A) -> Deferred<Handle<ProtocolOf<A>>>
    where
        R: EndpointReactor,
        A: IntoFactory,
        A::Factory: Factory,
    {
        self.0.connect(reactor, factory)
    }
}

//! twistor: Twisted's model of asynchronous I/O, in Rust.
//!
//! # A result you don't have yet
//!
//! Suppose a function places an order for food and returns at once. What it returns is a
//! placeholder for the meal: a [`Deferred`]. To act on the meal, attach callbacks; the return
//! value of each callback is passed to the next.
//!
//! ```
//! use twistor::Deferred;
//!
//! fn eat_meal(meal: &str) -> bool {
//!     meal == "eggs benedict" // was it any good?
//! }
//!
//! fn compliment_chef(praiseworthy: bool) -> &'static str {
//!     if praiseworthy { "Wuu chef!" } else { "I sneeze in your face!" }
//! }
//!
//! let (placeholder, meal_arrives) = Deferred::new(); // order_food()
//! let said = placeholder
//!     .add_callback(eat_meal)
//!     .add_callback(compliment_chef);
//! meal_arrives.callback("eggs benedict").unwrap();
//! assert_eq!(twistor::testing::success_result_of(&said), "Wuu chef!");
//! ```
//!
//! The placeholder is two handles: the `Deferred` extends the chain (each callback consumes
//! it and gives the extended one), the [`Resolver`] fires it. A chain of callbacks changes
//! type as it goes, and this split is what keeps a typed chain from going wrong at run time:
//!
//! ```compile_fail
//! let (d, _fire) = twistor::Deferred::<&str>::new();
//! let _said = d.add_callback(|meal| meal.len() > 3);
//! let _again = d.add_callback(|meal| meal.len()); // error: `d` was moved
//! ```
//!
//! # No magic
//!
//! There are no threads, no I/O and no hidden event loop in that: a Deferred is bookkeeping.
//! `callback` runs the chain right there, in the caller. A callback that blocks, blocks.
//!
//! # Errors
//!
//! A placeholder stands for a success *or* a failure. Callbacks run on the success track,
//! errbacks on the failure track; a callback that returns `Err` (or panics) moves the chain to
//! the failure track, an errback that returns `Ok` moves it back. With them you can write each
//! shape of `try`/`except`/`else`/`finally`:
//!
//! | Python | twistor |
//! |---|---|
//! | handle the error, then do the action anyway | `d.add_errback(handle).add_callback(act)` |
//! | `try`/`except`/`else` | `d.add_callbacks(act, handle)` |
//! | handle an error of the whole operation | `d.add_callback_try(act).add_errback(handle)` |
//! | `finally` | `d.add_both(cleanup)` |
//!
//! Failures are [`Failure`]s: any `std::error::Error`, or a caught panic.
//!
//! # Time, without a reactor
//!
//! Time is one trait, [`time::ReactorTime`] (`seconds`, `call_later`), implemented by the
//! deterministic [`Clock`] that moves only when told to, so code built on it
//! ([`Deferred::add_timeout`], [`task::LoopingCall`], [`task::defer_later`]) is tested without
//! waiting.
//!
//! ```
//! use twistor::{Clock, Deferred, testing::failure_result_of};
//! use twistor::defer::TimeoutError;
//!
//! let clock = Clock::new();
//! let (slow, _fire) = Deferred::<()>::new();
//! let slow = slow.add_timeout(30.0, &clock);
//! clock.advance(30.0);
//! assert!(failure_result_of(&slow).is::<TimeoutError>());
//! ```
//!
//! # The reactor
//!
//! The [`reactor::Reactor`] is the event loop: you register sources of events (timers, sockets,
//! calls from other threads, futures) and handlers for them, then `run()` calls the handlers
//! as events happen; each handler returns control to the loop when it is done. Deferreds turn
//! those events into APIs:
//!
//! ```
//! use twistor::reactor::Reactor;
//! use twistor::Deferred;
//!
//! fn run_later<T: 'static>(reactor: &Reactor, secs: f64, f: impl FnOnce() -> T + 'static) -> Deferred<T> {
//!     let (d, fire) = Deferred::new();
//!     reactor.call_later(secs, move || { let _ = fire.callback(f()); });
//!     d
//! }
//!
//! let reactor = Reactor::new().unwrap();
//! let r = reactor.clone();
//! run_later(&reactor, 0.02, || println!("Hello"))
//!     .add_callback_deferred(move |_| run_later(&r, 0.03, || println!("World")))
//!     .add_callback({
//!         let r = reactor.clone();
//!         move |_| { let _ = r.stop(); }
//!     });
//! run_later(&reactor, 0.03, || println!("Beautiful"));
//! reactor.run_without_signal_handlers().unwrap(); // Hello, Beautiful, World
//! ```
//!
//! # Separate concerns: transports, protocols, factories
//!
//! A [`transport::Transport`] moves bytes; a [`protocol::Protocol`] gives them meaning; a
//! [`protocol::Factory`] makes a protocol per connection. The paper's line reverser, tested
//! with no socket at all:
//!
//! ```
//! use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
//! use twistor::testing::StringTransport;
//!
//! struct ReverseLine { lines: usize }
//! impl LineHandler for ReverseLine {
//!     fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
//!         let reversed: Vec<u8> = line.iter().rev().copied().collect();
//!         cx.send_line(&reversed);
//!         self.lines += 1;
//!         if self.lines >= 10 {
//!             cx.transport().lose_connection();
//!         }
//!     }
//! }
//!
//! let st = StringTransport::new();
//! st.connect(LineReceiver::new(ReverseLine { lines: 0 }));
//! st.deliver(b"Hello\r\n");
//! assert_eq!(st.value(), b"olleH\r\n");
//! ```
//!
//! The same protocol serves real connections with
//! [`transport::tcp::listen_tcp`]; `twistor reverse` and `examples/reverse_server.rs` do that.
//!
//! # One import
//!
//! [`prelude`] brings the names most programs use: `use twistor::prelude::*;`.
//!
//! # From Twisted to twistor
//!
//! Twisted's names, in snake_case where they exist in twistor (rustdoc search also finds the
//! Twisted spelling through aliases):
//!
//! | Twisted | twistor |
//! |---|---|
//! | `reactor.run()`, `reactor.stop()`, `reactor.crash()` | [`Reactor::run`](reactor::Reactor::run), [`stop`](reactor::Reactor::stop), [`crash`](reactor::Reactor::crash); the `Reactor` is passed explicitly |
//! | `reactor.callLater`, `IDelayedCall` | [`Reactor::call_later`](reactor::Reactor::call_later) (or any [`ReactorTime`](time::ReactorTime)), [`DelayedCall`](time::DelayedCall) |
//! | `reactor.callWhenRunning`, `addSystemEventTrigger` | [`call_when_running`](reactor::Reactor::call_when_running), [`add_system_event_trigger`](reactor::Reactor::add_system_event_trigger) |
//! | `reactor.callFromThread` | [`ThreadHandle::call_from_thread`](reactor::ThreadHandle::call_from_thread) (from [`Reactor::thread_handle`](reactor::Reactor::thread_handle)) |
//! | `reactor.callInThread`, `threads.deferToThread` | [`call_in_thread`](reactor::Reactor::call_in_thread), [`defer_to_thread`](reactor::Reactor::defer_to_thread), [`ReactorThreads`](reactor::ReactorThreads) |
//! | `reactor.addReader`, `addWriter` | [`add_reader`](reactor::Reactor::add_reader), [`add_writer`](reactor::Reactor::add_writer): take the descriptor, return an [`FdWatch`](reactor::FdWatch) guard |
//! | `reactor.listenTCP(port, factory, backlog, interface)` | [`listen_tcp`](transport::tcp::listen_tcp)`(&reactor, port, factory)`, [`listen_tcp_with`](transport::tcp::listen_tcp_with) and [`ListenOptions`](transport::tcp::ListenOptions) |
//! | `reactor.connectTCP(host, port, factory, timeout, bindAddress)` | [`connect_tcp`](transport::tcp::connect_tcp), [`connect_tcp_with`](transport::tcp::connect_tcp_with) and [`ConnectOptions`](transport::tcp::ConnectOptions) |
//! | `ClientCreator` / `connectProtocol` | [`connect_protocol`](transport::tcp::connect_protocol) |
//! | `reactor.listenUNIX`, `connectUNIX`, `IReactorUNIX` | [`listen_unix`](transport::unix::listen_unix), [`connect_unix`](transport::unix::connect_unix) (`_with` forms: [`UnixListenOptions`](transport::unix::UnixListenOptions), [`UnixConnectOptions`](transport::unix::UnixConnectOptions)), [`ReactorUnix`](transport::unix::ReactorUnix) |
//! | `sendFileDescriptor`, `fileDescriptorReceived` | [`UnixExt::send_file_descriptor`](transport::UnixExt::send_file_descriptor) (from [`Transport::unix`](transport::Transport::unix)), [`Protocol::file_descriptor_received`](protocol::Protocol::file_descriptor_received) |
//! | `reactor.listenUDP(port, protocol, interface, maxPacketSize)`, `DatagramProtocol` | [`listen_udp`](transport::udp::listen_udp), [`listen_udp_with`](transport::udp::listen_udp_with) and [`UdpListenOptions`](transport::udp::UdpListenOptions); [`DatagramProtocol`](protocol::datagram::DatagramProtocol), [`UdpPort`](transport::udp::UdpPort) |
//! | `reactor.listenMulticast(port, protocol, interface, maxPacketSize, listenMultiple)`, `joinGroup`, `leaveGroup`, `setTTL`, `setLoopbackMode`, `setOutgoingInterface` | [`listen_multicast`](transport::multicast::listen_multicast), [`listen_multicast_with`](transport::multicast::listen_multicast_with) and [`MulticastOptions`](transport::multicast::MulticastOptions); [`MulticastPort`](transport::multicast::MulticastPort) ([`join_group`](transport::multicast::MulticastPort::join_group) → Deferred); from a protocol: [`UdpPort::multicast`](transport::udp::UdpPort::multicast) |
//! | `reactor.listenUNIXDatagram(address, protocol, maxPacketSize, mode)`, `IReactorUNIXDatagram` | [`listen_unix_datagram`](transport::unix::listen_unix_datagram), [`listen_unix_datagram_with`](transport::unix::listen_unix_datagram_with) and [`UnixDatagramListenOptions`](transport::unix::UnixDatagramListenOptions); protocol: [`DatagramProtocol<UnixDatagramAddress>`](protocol::datagram::DatagramProtocol); [`ReactorUnixDatagram`](transport::unix::ReactorUnixDatagram) |
//! | `reactor.connectUNIXDatagram(address, protocol, maxPacketSize, mode, bindAddress)`, `ConnectedDatagramProtocol` (`datagramReceived(data)`, `connectionFailed`) | [`connect_unix_datagram`](transport::unix::connect_unix_datagram), [`connect_unix_datagram_with`](transport::unix::connect_unix_datagram_with) and [`UnixDatagramConnectOptions`](transport::unix::UnixDatagramConnectOptions); [`ConnectedDatagramProtocol`](protocol::connected_datagram::ConnectedDatagramProtocol) (`datagram_received`, `connection_failed`) |
//! | `UNIXAddress` of a datagram sender (`None`: unbound) | [`UnixDatagramAddress`](transport::unix::UnixDatagramAddress) ([`unnamed`](transport::unix::UnixDatagramAddress::unnamed)) |
//! | `self.transport.joinGroup(...)` in a multicast protocol's `startProtocol` | [`cx.transport()`](protocol::datagram::DatagramContext::transport) then [`UdpPort::multicast`](transport::udp::UdpPort::multicast) gives the [`MulticastPort`](transport::multicast::MulticastPort) |
//! | `IListeningPort.stopListening` | [`ListeningPort::stop_listening`](transport::listener::ListeningPort::stop_listening) |
//! | `IConnector` | [`transport::connector::Connector`] |
//! | `reactor.spawnProcess`, `ProcessProtocol`, `IProcessTransport` | [`spawn_process`](transport::process::spawn_process) with [`SpawnOptions`](transport::process::SpawnOptions), [`ProcessProtocol`](transport::process::ProcessProtocol), [`ProcessTransport`](transport::process::ProcessTransport) |
//! | `utils.getProcessOutput`, `getProcessValue`, `getProcessOutputAndValue` | [`get_process_output`](transport::process::get_process_output), [`get_process_value`](transport::process::get_process_value), [`get_process_output_and_value`](transport::process::get_process_output_and_value) |
//! | `serverFromString`, `clientFromString`, `quoteStringArgument` | [`endpoints::server_from_string`], [`endpoints::client_from_string`], [`endpoints::quote_string_argument`]; typed forms: [`endpoints::parse_server`], [`endpoints::parse_client`] |
//! | `IStreamServerEndpoint.listen`, `TCP4ServerEndpoint`, `TCP6ServerEndpoint`, `UNIXServerEndpoint` | [`ServerEndpoint::listen`](endpoints::ServerEndpoint::listen), [`endpoints::Tcp4ServerEndpoint`], [`endpoints::Tcp6ServerEndpoint`], [`endpoints::UnixServerEndpoint`] |
//! | `IStreamClientEndpoint.connect`, `TCP4ClientEndpoint`, `TCP6ClientEndpoint`, `UNIXClientEndpoint` | [`ClientEndpoint::connect`](endpoints::ClientEndpoint::connect) (fires with the protocol's [`Handle`](protocol::Handle)), [`endpoints::Tcp4ClientEndpoint`], [`endpoints::Tcp6ClientEndpoint`], [`endpoints::UnixClientEndpoint`] |
//! | `HostnameEndpoint`, `IHostnameResolver` | [`endpoints::HostnameEndpoint`] (RFC 8305: families interleaved, staggered attempts), [`endpoints::NameResolver`] |
//! | `systemd:` endpoints, `AdoptedStreamServerEndpoint` | [`endpoints::SystemdServerEndpoint`], [`endpoints::ListenFds`] |
//! | `wrapClientTLS`, `wrapServerTLS`, `SSL4ClientEndpoint`, `SSL4ServerEndpoint` | [`endpoints::wrap_client_tls`] ([`endpoints::TlsClientEndpoint`]; `connect` fires after the handshake, failing with the [`tls::TlsError`] naming why), [`endpoints::TlsServerEndpoint`]; strings `ssl:PORT:privateKey=..:certKey=..`, `tls:HOST:PORT:trustRoots=..`, `ssl:HOST:PORT:caCertsDir=..:hostname=..` (always verified) |
//! | `ConnectingCancelledError`, `NoProtocol`, `AlreadyListened` | [`endpoints::ConnectingCancelledError`], [`endpoints::NoProtocol`], [`endpoints::AlreadyListened`] |
//! | `IReactorTCP`, `MemoryReactor` | [`ReactorTcp`](transport::tcp::ReactorTcp), [`testing::MemoryReactor`] |
//! | `Deferred()`, `d.callback`, `d.errback` | [`Deferred::new`] gives the chain and its [`Resolver`]; [`Resolver::callback`], [`Resolver::errback`] |
//! | `addCallback`, `addErrback`, `addCallbacks`, `addBoth` | [`add_callback`](Deferred::add_callback), [`add_errback`](Deferred::add_errback), [`add_callbacks`](Deferred::add_callbacks), [`add_both`](Deferred::add_both); [`add_callback_try`](Deferred::add_callback_try) for a callback that can fail, [`add_callback_deferred`](Deferred::add_callback_deferred) for one returning a Deferred |
//! | `d.addErrback(log.err)` | [`add_errback(log_error)`](defer::log_error), [`add_errback_logged`](Deferred::add_errback_logged) |
//! | `succeed`, `fail`, `maybeDeferred` | [`Deferred::succeed`], [`Deferred::fail`], [`defer::maybe_deferred`] |
//! | `d.cancel()`, `d.addTimeout` | [`Deferred::cancel`], [`Deferred::add_timeout`] |
//! | `DeferredList`, `gatherResults`, `race` | [`defer::DeferredList`], [`defer::gather_results`], [`defer::race`] |
//! | `DeferredLock`, `DeferredSemaphore`, `DeferredQueue` | [`defer::DeferredLock`], [`defer::DeferredSemaphore`], [`defer::DeferredQueue`] |
//! | `ensureDeferred`, `await d` | [`Reactor::spawn`](reactor::Reactor::spawn), [`reactor::ensure_deferred`]; a `Deferred` is `.await`able |
//! | `Failure`, `f.trap`, `f.check`, `f.getErrorMessage()` | [`Failure`], [`Failure::trap`], [`Failure::check`], [`Failure::error_message`] |
//! | `task.Clock`, `LoopingCall`, `deferLater`, `coiterate`, `react` | [`Clock`], [`task::LoopingCall`], [`task::defer_later`], [`task::Cooperator`], [`task::react`] |
//! | `Protocol` (`connectionMade`, `dataReceived`, `connectionLost`) | [`protocol::Protocol`] (`connection_made`, `data_received`, `connection_lost`) |
//! | `self.transport`, `self.factory` | [`cx.transport()`](protocol::Context::transport), [`cx.factory::<F>()`](protocol::Context::factory) |
//! | `Factory`, `Factory.forProtocol`, `buildProtocol` | [`protocol::Factory`], [`protocol::for_protocol`], [`build_protocol`](protocol::Factory::build_protocol) |
//! | `ClientFactory`, `ReconnectingClientFactory` | [`protocol::ClientFactory`], [`protocol::reconnect::ReconnectingClientFactory`] |
//! | `ITransport.write`, `loseConnection`, `abortConnection` | [`Transport::write`](transport::Transport::write), [`lose_connection`](transport::Transport::lose_connection), [`abort_connection`](transport::Transport::abort_connection) |
//! | `registerProducer`, `IPushProducer`, `IPullProducer` | [`Transport::register_producer`](transport::Transport::register_producer), [`transport::Producer`] |
//! | `ITCPTransport.setTcpNoDelay`, `setTcpKeepAlive` | [`transport.tcp()`](transport::Transport::tcp) gives a [`TcpExt`](transport::TcpExt) |
//! | `LineReceiver`, `LineOnlyReceiver` | [`protocols::basic::LineReceiver`], [`protocols::basic::LineOnlyReceiver`] |
//! | `NetstringReceiver`, `Int8/16/32StringReceiver` | [`protocols::basic::NetstringReceiver`], [`protocols::basic::Int32StringReceiver`] and friends |
//! | `policies.TimeoutMixin` | [`protocols::policies::IdleTimeout`] (for every protocol, framing receivers included) |
//! | `WrappingFactory`, `ThrottlingFactory`, `TimeoutFactory`, `LimitTotalConnectionsFactory`, `TrafficLoggingFactory` | the same names in [`protocols::policies`] |
//! | `reactor.listenSSL`, `reactor.connectSSL`, `TLSMemoryBIOFactory` | [`tls::listen_ssl`], [`tls::connect_ssl`] (and [`tls::connect_ssl_protocol`], whose Deferred fires after the handshake), [`tls::TlsFactory`] |
//! | `CertificateOptions`, `optionsForClientTLS`, `platformTrust`, `trustRootFromCertificates` | [`tls::ServerOptions`], [`tls::options_for_client_tls`] ([`tls::ClientOptions`]), [`tls::TrustRoots`] |
//! | `TLSMemoryBIOProtocol`, `ITLSTransport.startTLS` | [`tls::TlsProtocol`], [`Transport::start_tls`](transport::Transport::start_tls) (on a [`TlsFactory::start_tls_capable`](tls::TlsFactory::start_tls_capable) connection) |
//! | `IHandshakeListener.handshakeCompleted`, `getPeerCertificate`, `negotiatedProtocol` | [`Protocol::handshake_completed`](protocol::Protocol::handshake_completed), [`Transport::tls`](transport::Transport::tls) ([`tls::TlsInfo`]) |
//! | `SSL.Error`, `VerificationError` | [`tls::TlsError`], naming the cause |
//! | `portforward.ProxyFactory` | [`protocols::portforward::proxy_factory`] |
//! | `wire.Echo`, `Discard`, `Chargen`, `QOTD`, `Daytime` | [`protocols::wire`] |
//! | `proto_helpers.StringTransport`, `iosim.connectedServerAndClient` | [`testing::StringTransport`], [`testing::connected_server_and_client`] |
//! | `successResultOf`, `failureResultOf`, `assertNoResult` | [`testing::success_result_of`], [`testing::failure_result_of`] (and [`failure_result_of_types`](testing::failure_result_of_types)), [`testing::assert_no_result`] |
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub mod defer;
pub mod endpoints;
pub mod error;
pub mod failure;
pub mod protocol;
pub mod protocols;
pub mod reactor;
pub mod report;
pub mod task;
pub mod testing;
pub mod time;
pub mod tls;
pub mod transport;
pub mod web;

pub mod prelude;

pub use defer::{Deferred, Resolver};
pub use failure::Failure;
pub use task::Clock;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

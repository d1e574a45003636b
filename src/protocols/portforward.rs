//! A TCP port forwarder (Twisted's `protocols.portforward`), with back-pressure both ways.
//!
//! Each accepted connection ([`ProxyServer`]) stops reading, connects to the destination
//! ([`ProxyClient`]), and once connected the two transports are joined: bytes from one are
//! written to the other, and each transport is registered as the streaming producer of the
//! other, so a slow reader on one side pauses reading on the other side (above the write
//! buffer's high-water mark) instead of letting memory grow. When either side closes, the other
//! is closed after flushing what it had.

use std::rc::Rc;

use crate::Failure;
use crate::protocol::{Context, FactoryFn, Handle, Protocol};
use crate::reactor::Reactor;
use crate::transport::tcp::connect_protocol;
use crate::transport::{Producer, Transport};

/// A transport used as the producer feeding another transport: pausing it stops its reading.
pub(crate) struct ReadingOf(pub(crate) Transport);

impl Producer for ReadingOf {
    fn pause_producing(&self) {
        self.0.pause_producing()
    }
    fn resume_producing(&self) {
        self.0.resume_producing()
    }
    fn stop_producing(&self) {
        self.0.lose_connection()
    }
}

/// The accepted side of a forwarded connection.
pub struct ProxyServer {
    reactor: Reactor,
    dest_host: String,
    dest_port: u16,
    peer: Option<Transport>,
}

/// The connection to the destination.
pub struct ProxyClient {
    server: Transport,
    server_handle: Handle<ProxyServer>,
}

impl Protocol for ProxyServer {
    fn connection_made(&mut self, cx: &Context<Self>) {
        // Nothing is read until the destination is connected.
        cx.transport().pause_producing();
        let client = ProxyClient {
            server: cx.transport().clone(),
            server_handle: cx.handle(),
        };
        let server = cx.transport().clone();
        let _ = connect_protocol(&self.reactor, &self.dest_host, self.dest_port, client)
            .add_errback(move |f: Failure| {
                log::info!(target: "twistor::portforward", "cannot reach the destination: {f}");
                server.lose_connection();
                Err(f)
            })
            .add_both(|_| Ok(()));
    }

    fn data_received(&mut self, _cx: &Context<Self>, data: &[u8]) {
        if let Some(peer) = &self.peer {
            peer.write(data);
        }
    }

    fn connection_lost(&mut self, _cx: &Context<Self>, _reason: Failure) {
        if let Some(peer) = self.peer.take() {
            peer.unregister_producer();
            peer.lose_connection();
        }
    }
}

impl Protocol for ProxyClient {
    fn connection_made(&mut self, cx: &Context<Self>) {
        let client = cx.transport().clone();
        let server = self.server.clone();
        self.server_handle.with(move |s, _| s.peer = Some(client));
        // Back-pressure both ways; each side is fresh, so registration cannot conflict.
        let _ = cx
            .transport()
            .register_producer(Rc::new(ReadingOf(server.clone())), true);
        let _ = server.register_producer(Rc::new(ReadingOf(cx.transport().clone())), true);
        server.resume_producing();
    }

    fn data_received(&mut self, _cx: &Context<Self>, data: &[u8]) {
        self.server.write(data);
    }

    fn connection_lost(&mut self, _cx: &Context<Self>, _reason: Failure) {
        self.server.unregister_producer();
        self.server.lose_connection();
    }
}

/// A factory of [`ProxyServer`]s forwarding to `dest_host:dest_port` (Twisted's
/// `ProxyFactory`).
///
/// ```
/// use twistor::protocols::portforward::proxy_factory;
/// use twistor::reactor::Reactor;
/// use twistor::transport::tcp::{listen_tcp_with, ListenOptions};
///
/// let reactor = Reactor::new().unwrap();
/// let f = proxy_factory(&reactor, "127.0.0.1", 8000);
/// let port = listen_tcp_with(&reactor, 0, f, ListenOptions::on("127.0.0.1")).unwrap();
/// assert_ne!(port.port(), 0);
/// ```
#[doc(alias = "ProxyFactory")]
pub fn proxy_factory(reactor: &Reactor, dest_host: &str, dest_port: u16) -> FactoryFn<ProxyServer> {
    let reactor = reactor.clone();
    let host = dest_host.to_string();
    FactoryFn::new(move |_addr| {
        Some(ProxyServer {
            reactor: reactor.clone(),
            dest_host: host.clone(),
            dest_port,
            peer: None,
        })
    })
}

//! Connected datagram protocols (Twisted's `ConnectedDatagramProtocol`): the protocol of a
//! UNIX datagram socket connected to one peer, so datagrams come without an address.
//!
//! It runs on the datagram machinery of [`datagram`](super::datagram), not on a copy of it:
//! the port serves [`Connected<P>`], an adapter that is a
//! [`DatagramProtocol`] over [`UnixDatagramAddress`] and forwards each callback to `P`
//! without the address. So a connected protocol has what every datagram protocol has:
//! `start_protocol` / `stop_protocol` once per 0 → 1 / 1 → 0 port transition, panics
//! contained (the port keeps serving), and a [`ConnectedDatagramHandle`] to reach it later
//! (the handle's closure gets the adapter, which dereferences to `P`).
//!
//! Failing to connect (no such socket, a bad bind address) calls `connection_failed` during
//! [`connect_unix_datagram`](crate::transport::unix::connect_unix_datagram), before it
//! returns, as Twisted's `connectUNIXDatagram` does; the protocol is never started then. A
//! peer that went away shows up as `connection_refused` when a datagram is sent to it.

use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use super::datagram::{DatagramContext, DatagramHandle, DatagramProtocol, DatagramSlot};
use crate::Failure;
use crate::transport::unix::UnixDatagramAddress;

/// What a [`ConnectedDatagramProtocol`]'s callbacks can reach: its port (writes take no
/// address: `write(data, None)`) and a handle on it.
///
/// ```
/// use twistor::protocol::connected_datagram::{ConnectedDatagramContext, ConnectedDatagramProtocol};
///
/// struct Ping;
/// impl ConnectedDatagramProtocol for Ping {
///     fn start_protocol(&mut self, cx: &ConnectedDatagramContext<Self>) {
///         if let Some(port) = cx.transport() {
///             let _ = port.write(b"ping", None);
///         }
///     }
///     fn datagram_received(&mut self, _: &ConnectedDatagramContext<Self>, _: &[u8]) {}
/// }
/// ```
pub type ConnectedDatagramContext<P> = DatagramContext<Connected<P>, UnixDatagramAddress>;

/// A weak handle on a [`ConnectedDatagramProtocol`]; its closure gets the [`Connected`]
/// adapter, which dereferences to the protocol.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::connected_datagram::*;
/// use twistor::transport::unix::connect_unix_datagram;
///
/// struct Counter { failures: u32 }
/// impl ConnectedDatagramProtocol for Counter {
///     fn datagram_received(&mut self, _: &ConnectedDatagramContext<Self>, _: &[u8]) {}
///     fn connection_failed(&mut self, _: &ConnectedDatagramContext<Self>, _: Failure) {
///         self.failures += 1;
///     }
/// }
/// let reactor = Reactor::new().unwrap();
/// let port = connect_unix_datagram(&reactor, "/nonexistent/x.sock", Counter { failures: 0 });
/// let h: ConnectedDatagramHandle<Counter> = port.handle().unwrap();
/// assert_eq!(h.with(|c, _| c.failures), Some(1));
/// ```
pub type ConnectedDatagramHandle<P> = DatagramHandle<Connected<P>, UnixDatagramAddress>;

/// The protocol of a connected UNIX datagram socket (Twisted's `ConnectedDatagramProtocol`).
/// Only `datagram_received` is required.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::connected_datagram::{ConnectedDatagramContext, ConnectedDatagramProtocol};
/// use twistor::transport::unix::{connect_unix_datagram, listen_unix_datagram, UnixDatagramAddress};
/// use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
///
/// struct Server;
/// impl DatagramProtocol<UnixDatagramAddress> for Server {
///     fn datagram_received(&mut self, cx: &DatagramContext<Self, UnixDatagramAddress>, data: &[u8], from: UnixDatagramAddress) {
///         let _ = cx.transport().unwrap().write(data, Some(from));
///     }
/// }
/// struct Client {
///     got: Option<Vec<u8>>,
/// }
/// impl ConnectedDatagramProtocol for Client {
///     fn start_protocol(&mut self, cx: &ConnectedDatagramContext<Self>) {
///         cx.transport().unwrap().write(b"ping", None).unwrap();
///     }
///     fn datagram_received(&mut self, _: &ConnectedDatagramContext<Self>, data: &[u8]) {
///         self.got = Some(data.to_vec());
///     }
/// }
/// let reactor = Reactor::new().unwrap();
/// let name = format!("\0twistor-doc-cdp-{}", std::process::id());
/// let _server = listen_unix_datagram(&reactor, &name, Server).unwrap();
/// let mut opts = twistor::transport::unix::UnixDatagramConnectOptions::default();
/// opts.bind_address = Some(format!("\0twistor-doc-cdp-client-{}", std::process::id()).into());
/// let client = twistor::transport::unix::connect_unix_datagram_with(&reactor, &name, Client { got: None }, opts);
/// let h = client.handle::<twistor::protocol::connected_datagram::Connected<Client>>().unwrap();
/// while h.with(|c, _| c.got.is_none()) == Some(true) {
///     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
/// }
/// assert_eq!(h.with(|c, _| c.got.clone()), Some(Some(b"ping".to_vec())));
/// ```
pub trait ConnectedDatagramProtocol: Sized + 'static {
    /// The protocol got its first port (Twisted's `startProtocol`).
    #[doc(alias = "startProtocol")]
    fn start_protocol(&mut self, _cx: &ConnectedDatagramContext<Self>) {}

    /// The protocol lost its last port (Twisted's `stopProtocol`).
    #[doc(alias = "stopProtocol")]
    fn stop_protocol(&mut self, _cx: &ConnectedDatagramContext<Self>) {}

    /// A datagram arrived from the peer.
    #[doc(alias = "datagramReceived")]
    fn datagram_received(&mut self, cx: &ConnectedDatagramContext<Self>, data: &[u8]);

    /// Connecting failed (Twisted's `connectionFailed`): the port never started, and
    /// `cx.transport()` is `None`. The default logs the reason.
    #[doc(alias = "connectionFailed")]
    fn connection_failed(&mut self, _cx: &ConnectedDatagramContext<Self>, reason: Failure) {
        log::warn!(target: "twistor::unix", "connecting a UNIX datagram socket failed: {reason}");
    }

    /// The peer refused a datagram: its socket is gone (Twisted calls `connectionRefused`
    /// on the protocol then). The default does nothing; later writes fail.
    #[doc(alias = "connectionRefused")]
    fn connection_refused(&mut self, _cx: &ConnectedDatagramContext<Self>) {}
}

/// The adapter a connected port serves: a [`DatagramProtocol`] that forwards to `P` without
/// the sender's address. It dereferences to `P`, so a handle's closure reads as if it got `P`.
///
/// ```
/// use twistor::protocol::connected_datagram::Connected;
/// let mut c = Connected(5u32);
/// *c += 1;
/// assert_eq!(*c, 6);
/// ```
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Connected<P>(pub P);

impl<P> Deref for Connected<P> {
    type Target = P;
    fn deref(&self) -> &P {
        &self.0
    }
}

impl<P> DerefMut for Connected<P> {
    fn deref_mut(&mut self) -> &mut P {
        &mut self.0
    }
}

impl<P: ConnectedDatagramProtocol> DatagramProtocol<UnixDatagramAddress> for Connected<P> {
    fn start_protocol(&mut self, cx: &ConnectedDatagramContext<P>) {
        self.0.start_protocol(cx);
    }
    fn stop_protocol(&mut self, cx: &ConnectedDatagramContext<P>) {
        self.0.stop_protocol(cx);
    }
    fn datagram_received(
        &mut self,
        cx: &ConnectedDatagramContext<P>,
        data: &[u8],
        _from: UnixDatagramAddress,
    ) {
        self.0.datagram_received(cx, data);
    }
    fn connection_refused(&mut self, cx: &ConnectedDatagramContext<P>) {
        self.0.connection_refused(cx);
    }
}

/// What [`connect_unix_datagram`](crate::transport::unix::connect_unix_datagram) accepts as
/// its protocol: a new [`ConnectedDatagramProtocol`], or a handle on one that served another
/// port.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::protocol::connected_datagram::{ConnectedDatagramContext, ConnectedDatagramProtocol};
/// use twistor::transport::unix::connect_unix_datagram;
///
/// struct Sink;
/// impl ConnectedDatagramProtocol for Sink {
///     fn datagram_received(&mut self, _: &ConnectedDatagramContext<Self>, _: &[u8]) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let port = connect_unix_datagram(&reactor, "/nonexistent/twistor.sock", Sink);
/// let handle = port.handle::<twistor::protocol::connected_datagram::Connected<Sink>>().unwrap();
/// let again = connect_unix_datagram(&reactor, "/nonexistent/twistor.sock", &handle);
/// assert!(again.handle::<twistor::protocol::connected_datagram::Connected<Sink>>().is_some());
/// ```
pub trait IntoConnectedDatagramProtocol {
    /// The protocol type.
    type Protocol: ConnectedDatagramProtocol;
    /// The shared slot, or `None` if the handle's protocol is gone.
    #[doc(hidden)]
    fn into_slot(self) -> Option<Rc<DatagramSlot<Connected<Self::Protocol>, UnixDatagramAddress>>>;
}

impl<P: ConnectedDatagramProtocol> IntoConnectedDatagramProtocol for P {
    type Protocol = P;
    fn into_slot(self) -> Option<Rc<DatagramSlot<Connected<P>, UnixDatagramAddress>>> {
        Some(DatagramSlot::new(Connected(self)))
    }
}

impl<P: ConnectedDatagramProtocol> IntoConnectedDatagramProtocol for &ConnectedDatagramHandle<P> {
    type Protocol = P;
    fn into_slot(self) -> Option<Rc<DatagramSlot<Connected<P>, UnixDatagramAddress>>> {
        self.slot()
    }
}

/// Tells the protocol its connection failed: no port serves it, so this is the one callback
/// it gets (contained like the others).
pub(crate) fn connection_failed<P: ConnectedDatagramProtocol>(
    slot: &DatagramSlot<Connected<P>, UnixDatagramAddress>,
    reason: Failure,
) {
    slot.call(move |p, cx| p.0.connection_failed(cx, reason));
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::protocol::datagram::DatagramDriver;

    /// Records its callbacks; panics on datagrams starting with `!` and on a failure.
    struct Rec {
        log: Rc<RefCell<Vec<String>>>,
    }

    impl ConnectedDatagramProtocol for Rec {
        fn datagram_received(&mut self, _: &ConnectedDatagramContext<Self>, data: &[u8]) {
            if data.starts_with(b"!") {
                panic!("bad datagram");
            }
            self.log
                .borrow_mut()
                .push(String::from_utf8_lossy(data).into_owned());
        }
        fn connection_failed(&mut self, cx: &ConnectedDatagramContext<Self>, reason: Failure) {
            assert!(cx.transport().is_none());
            self.log.borrow_mut().push(format!("failed: {reason}"));
            panic!("failing in connection_failed");
        }
        fn connection_refused(&mut self, _: &ConnectedDatagramContext<Self>) {
            self.log.borrow_mut().push("refused".into());
        }
    }

    #[test]
    fn the_adapter_forwards_without_the_address_and_contains_panics() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let Some(slot) = (Rec { log: log.clone() }).into_slot() else {
            unreachable!("a new protocol always has a slot")
        };
        let from = UnixDatagramAddress::new("/somewhere");
        slot.datagram_received(b"!boom", from.clone());
        slot.datagram_received(b"one", from);
        slot.connection_refused();
        let err = std::io::Error::from(std::io::ErrorKind::NotFound);
        connection_failed(&slot, Failure::new(err));
        slot.datagram_received(b"two", UnixDatagramAddress::unnamed());
        let log = log.borrow();
        assert_eq!(log[..2], ["one", "refused"]);
        assert!(log[2].starts_with("failed: "), "{log:?}");
        assert_eq!(log[3], "two");
    }

    #[test]
    fn a_handle_reaches_the_protocol_through_the_adapter() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let Some(slot) = (Rec { log: log.clone() }).into_slot() else {
            unreachable!("a new protocol always has a slot")
        };
        let handle = DatagramSlot::handle_of(&slot);
        assert!(
            handle
                .with(|p, _| p.log.borrow().is_empty())
                .unwrap_or(false)
        );
        assert!((&handle).into_slot().is_some());
        drop(slot);
        assert!(!handle.alive());
        assert!((&handle).into_slot().is_none());
    }
}

//! Two protocols connected in memory (Twisted's `iosim`): writes are buffered on each side and
//! moved to the other side only when the test pumps, so a test controls exactly when bytes
//! arrive, with no sockets and no reactor.
//!
//! Rules (as `iosim.FakeTransport`): `lose_connection` on either side takes effect at the next
//! pump once that side's buffer is delivered: both protocols then get `connection_lost`
//! (`ConnectionDone`); writes after `lose_connection` are dropped; `abort_connection` drops the
//! buffer and closes both sides at the next pump (`ConnectionAborted` on the aborting side,
//! `ConnectionLost` on the other). Reading can be paused (`pause_producing`): bytes stay
//! buffered until it is resumed.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use crate::Failure;
use crate::error::{ConnectionAborted, ConnectionDone, ConnectionLost};
use crate::protocol::{Context, Handle, Protocol, ProtocolDriver, attach};
use crate::transport::buffer::WriteBuffer;
use crate::transport::producer::ProducerSlot;
use crate::transport::{Address, Producer, ProducerError, Transport, TransportImpl};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Closing {
    Open,
    Lose,
    Abort,
}

struct FakeTransport {
    outgoing: RefCell<WriteBuffer>,
    closing: Cell<Closing>,
    closed: Cell<bool>,
    paused: Cell<bool>,
    write_shut: Cell<bool>,
    /// Weak: the [`IOPump`] holds the protocols, so dropping it frees everything.
    driver: RefCell<Option<Weak<dyn ProtocolDriver>>>,
    producer: ProducerSlot,
    host: Address,
    peer: Address,
    other: RefCell<Weak<FakeTransport>>,
}

impl FakeTransport {
    fn new(host: &str, peer: &str) -> Rc<FakeTransport> {
        Rc::new(FakeTransport {
            outgoing: RefCell::new(WriteBuffer::default()),
            closing: Cell::new(Closing::Open),
            closed: Cell::new(false),
            paused: Cell::new(false),
            write_shut: Cell::new(false),
            driver: RefCell::new(None),
            producer: ProducerSlot::default(),
            host: Address::Memory(host.to_string()),
            peer: Address::Memory(peer.to_string()),
            other: RefCell::new(Weak::new()),
        })
    }

    fn driver(&self) -> Option<Rc<dyn ProtocolDriver>> {
        self.driver.borrow().as_ref().and_then(Weak::upgrade)
    }

    fn lost(&self, reason: Failure) {
        if self.closed.replace(true) {
            return;
        }
        // The protocol is kept (not taken) so tests can inspect it through its handle.
        let d = self.driver();
        if let Some(d) = d {
            d.connection_lost(reason);
        }
        self.producer.stop();
    }
}

impl TransportImpl for FakeTransport {
    fn write(&self, data: &[u8]) {
        if self.closing.get() == Closing::Open && !self.closed.get() && !self.write_shut.get() {
            self.outgoing.borrow_mut().push(data);
        }
    }
    fn lose_connection(&self) {
        if self.closing.get() == Closing::Open {
            self.closing.set(Closing::Lose);
        }
    }
    fn abort_connection(&self) {
        self.closing.set(Closing::Abort);
        self.outgoing.borrow_mut().clear();
    }
    fn abort_with(&self, reason: Failure) {
        self.outgoing.borrow_mut().clear();
        self.lost(reason);
        if let Some(o) = self.other.borrow().upgrade() {
            o.lost(Failure::new(ConnectionLost::new()));
        }
    }
    fn lose_write_connection(&self) {
        self.write_shut.set(true);
    }
    fn get_host(&self) -> Address {
        self.host.clone()
    }
    fn get_peer(&self) -> Address {
        self.peer.clone()
    }
    fn disconnecting(&self) -> bool {
        self.closing.get() != Closing::Open || self.closed.get()
    }
    fn pause_producing(&self) {
        self.paused.set(true);
    }
    fn resume_producing(&self) {
        self.paused.set(false);
    }
    fn stop_producing(&self) {
        self.paused.set(true);
        self.lose_connection();
    }
    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        self.producer
            .register(producer, streaming, self.closed.get())
    }
    fn unregister_producer(&self) {
        self.producer.unregister();
    }
}

/// Moves bytes between two in-memory connected protocols (Twisted's `iosim.IOPump`).
pub struct IOPump {
    client: Rc<FakeTransport>,
    server: Rc<FakeTransport>,
    /// The two protocols (the transports hold them weakly: no reference cycle).
    _protocols: [Rc<dyn ProtocolDriver>; 2],
}

impl IOPump {
    /// Delivers what each side has written so far to the other side (client's first), then
    /// applies pending closes. Returns true if any bytes moved.
    pub fn pump(&self) -> bool {
        let a = Self::deliver(&self.client, &self.server);
        let b = Self::deliver(&self.server, &self.client);
        self.apply_closes();
        a || b
    }

    /// Pumps until nothing moves (at most 10,000 rounds, so a protocol pair that talks for
    /// ever cannot hang a test). Returns the number of rounds that moved bytes.
    pub fn flush(&self) -> usize {
        let mut rounds = 0;
        while rounds < 10_000 && self.pump() {
            rounds += 1;
        }
        rounds
    }

    fn deliver(from: &Rc<FakeTransport>, to: &Rc<FakeTransport>) -> bool {
        if to.paused.get() || to.closed.get() {
            return false;
        }
        let data = from.outgoing.borrow_mut().take_all();
        if data.is_empty() {
            return false;
        }
        if let Some(d) = to.driver() {
            d.data_received(&data);
        }
        // A pull producer writes its next chunk once the buffer is empty.
        from.producer.buffer_drained(&from.outgoing, true);
        true
    }

    fn apply_closes(&self) {
        for (me, other) in [(&self.client, &self.server), (&self.server, &self.client)] {
            match me.closing.get() {
                Closing::Lose if me.outgoing.borrow().is_empty() => {
                    me.lost(Failure::new(ConnectionDone));
                    other.lost(Failure::new(ConnectionDone));
                }
                Closing::Abort => {
                    me.lost(Failure::new(ConnectionAborted));
                    other.lost(Failure::new(ConnectionLost::new()));
                }
                _ => {}
            }
        }
    }
}

/// Connects `server` and `client` in memory and calls both `connection_made` (server first);
/// returns their handles and the pump (Twisted's `connectedServerAndClient`).
///
/// ```
/// use twistor::protocol::{Context, Protocol};
/// use twistor::testing::{connected_server_and_client, AccumulatingProtocol};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, cx: &Context<Self>, d: &[u8]) { cx.transport().write(d) }
/// }
/// let (_server, client, pump) =
///     connected_server_and_client(Echo, AccumulatingProtocol::default());
/// client.with(|_, cx| cx.transport().write(b"ping"));
/// pump.flush();
/// assert_eq!(client.with(|c, _| c.data.clone()), Some(b"ping".to_vec()));
/// ```
#[doc(alias = "connectedServerAndClient")]
pub fn connected_server_and_client<S: Protocol, C: Protocol>(
    server: S,
    client: C,
) -> (Handle<S>, Handle<C>, IOPump) {
    let st = FakeTransport::new("server", "client");
    let ct = FakeTransport::new("client", "server");
    *st.other.borrow_mut() = Rc::downgrade(&ct);
    *ct.other.borrow_mut() = Rc::downgrade(&st);
    let (sd, sh) = attach(server, Transport::new(st.clone()));
    let (cd, ch) = attach(client, Transport::new(ct.clone()));
    *st.driver.borrow_mut() = Some(Rc::downgrade(&sd));
    *ct.driver.borrow_mut() = Some(Rc::downgrade(&cd));
    sd.make_connection();
    cd.make_connection();
    (
        sh,
        ch,
        IOPump {
            client: ct,
            server: st,
            _protocols: [sd, cd],
        },
    )
}

/// A protocol that keeps everything it receives and how its connection ended (Twisted's
/// `AccumulatingProtocol`).
///
/// ```
/// use twistor::testing::{AccumulatingProtocol, StringTransport};
/// let st = StringTransport::with_disconnection();
/// let h = st.connect(AccumulatingProtocol::default());
/// st.deliver(b"abc");
/// assert_eq!(h.with(|p, _| (p.made, p.data.clone())), Some((true, b"abc".to_vec())));
/// ```
#[derive(Default, Debug)]
pub struct AccumulatingProtocol {
    /// `connection_made` was called.
    pub made: bool,
    /// Everything received.
    pub data: Vec<u8>,
    /// The reason given to `connection_lost`, once called.
    pub closed_reason: Option<String>,
}

impl Protocol for AccumulatingProtocol {
    fn connection_made(&mut self, _cx: &Context<Self>) {
        self.made = true;
    }
    fn data_received(&mut self, _cx: &Context<Self>, data: &[u8]) {
        self.data.extend_from_slice(data);
    }
    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        self.closed_reason = Some(reason.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Protocol for Echo {
        fn data_received(&mut self, cx: &Context<Self>, d: &[u8]) {
            cx.transport().write(d)
        }
    }

    #[test]
    fn lose_connection_closes_both_after_delivery() {
        let (server, client, pump) = connected_server_and_client(
            AccumulatingProtocol::default(),
            AccumulatingProtocol::default(),
        );
        client.with(|_, cx| {
            cx.transport().write(b"last words");
            cx.transport().lose_connection();
            cx.transport().write(b"dropped");
        });
        pump.flush();
        assert_eq!(
            server.with(|p, _| p.data.clone()),
            Some(b"last words".to_vec())
        );
        let reason = server.with(|p, _| p.closed_reason.clone()).flatten();
        assert!(reason.unwrap().contains("closed cleanly"));
        assert!(client.with(|p, _| p.closed_reason.is_some()).unwrap());
    }

    #[test]
    fn paused_reading_holds_bytes() {
        let (server, client, pump) =
            connected_server_and_client(AccumulatingProtocol::default(), Echo);
        server.with(|_, cx| cx.transport().pause_producing());
        client.with(|_, cx| cx.transport().write(b"x"));
        // The client's write is to the server, which is paused.
        pump.flush();
        assert_eq!(server.with(|p, _| p.data.len()), Some(0));
        server.with(|_, cx| cx.transport().resume_producing());
        pump.flush();
        assert_eq!(server.with(|p, _| p.data.clone()), Some(b"x".to_vec()));
    }

    #[test]
    fn abort_gives_aborted_and_lost() {
        let (server, client, pump) = connected_server_and_client(
            AccumulatingProtocol::default(),
            AccumulatingProtocol::default(),
        );
        client.with(|_, cx| cx.transport().abort_connection());
        pump.pump();
        assert!(
            client
                .with(|p, _| p.closed_reason.clone())
                .flatten()
                .unwrap()
                .contains("aborted")
        );
        assert!(
            server
                .with(|p, _| p.closed_reason.clone())
                .flatten()
                .unwrap()
                .contains("non-clean")
        );
    }
}

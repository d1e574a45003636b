//! TCP: listening ports, connectors and connections (Twisted's `IReactorTCP`, `tcp.py`).
//!
//! # The path of a byte
//!
//! *In:* the poller reports the socket readable; `Connection` reads into the reactor-wide
//! buffer (up to `READ_BUDGET` bytes per turn), hands each chunk to the protocol's
//! `data_received`, and stops at `WouldBlock` (the kernel queue is empty; more data makes a new
//! edge) or at EOF. Not at a short read: a FIN that came with the last data makes no edge of
//! its own, so stopping there would miss the EOF. Out of budget while still readable, it asks
//! to run again next turn, so one busy peer cannot starve the others.
//!
//! *Out:* `write` appends to the connection's buffer and asks the reactor for a flush; after the
//! current phase of the turn (timed calls, or I/O dispatch) the reactor flushes each written
//! connection once, so all the writes of one turn leave in one `send`. What the kernel does not
//! take stays buffered until the socket is writable again. Above the high-water mark a
//! streaming producer is paused; below the low-water mark it is resumed; a pull producer is
//! asked for more whenever the buffer empties.
//!
//! # Closing
//!
//! `lose_connection` stops reading at once, flushes, then closes: `connection_lost` gets
//! `ConnectionDone`. `abort_connection` drops the buffer and closes at once with a reset (the
//! peer sees `ConnectionLost`); `connection_lost` gets `ConnectionAborted` on a later turn, so
//! a protocol aborting from its own callback is not re-entered. An I/O error:
//! `ConnectionLost`. The protocol's `connection_lost` runs exactly once, then the port's or
//! connector's bookkeeping (factory `do_stop`, `client_connection_lost`).

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, ToSocketAddrs};
use std::rc::Rc;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};

use super::{Address, Producer, ProducerError, Transport, TransportImpl};
use crate::error::{
    CannotListenError, ConnectTimeoutError, ConnectionAborted, ConnectionDone, DnsLookupError,
    NotConnectingError, UserError, connect_error_from_io, lost_from_io,
};
use crate::protocol::{ClientFactory, Factory, ProtocolDriver, attach, do_start, do_stop};
use crate::reactor::Ready;
use crate::reactor::sources::SourceHandler;
use crate::reactor::{Reactor, WeakReactor};
use crate::time::DelayedCall;
use crate::{Deferred, Failure};

/// Bytes read from one connection per turn before others get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// Size of one read.
const READ_CHUNK: usize = 64 * 1024;
/// Connections accepted per readiness event before other sources get their turn.
const ACCEPT_BATCH: usize = 64;
/// asyncio's defaults: pause a streaming producer above, resume below.
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// See [`DEFAULT_HIGH_WATER`].
pub const DEFAULT_LOW_WATER: usize = 16 * 1024;

thread_local! {
    /// One read buffer for every connection on this thread's reactor.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// Why a connection is closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closing {
    Open,
    /// `lose_connection`: flush, then close with `ConnectionDone`.
    AfterFlush,
}

/// An established TCP connection: the transport behind a protocol's [`Transport`].
pub(crate) struct Connection {
    stream: RefCell<Option<TcpStream>>,
    token: Cell<Option<Token>>,
    reactor: WeakReactor,
    me: RefCell<std::rc::Weak<Connection>>,
    protocol: RefCell<Option<Rc<dyn ProtocolDriver>>>,
    /// Unsent bytes are `buf[sent..]`.
    buf: RefCell<Vec<u8>>,
    sent: Cell<usize>,
    flush_queued: Cell<bool>,
    readable: Cell<bool>,
    writable: Cell<bool>,
    reading_paused: Cell<bool>,
    read_closed: Cell<bool>,
    /// The poller reported the peer's FIN (or a hang-up): read to the end of stream.
    peer_closed: Cell<bool>,
    closing: Cell<Closing>,
    write_shutdown_requested: Cell<bool>,
    write_shut: Cell<bool>,
    closed: Cell<bool>,
    producer: RefCell<Option<(Rc<dyn Producer>, bool)>>,
    producer_paused: Cell<bool>,
    high_water: Cell<usize>,
    low_water: Cell<usize>,
    host: Address,
    peer: Address,
    /// Runs after the protocol's `connection_lost` (factory/connector bookkeeping).
    on_closed: RefCell<Option<OnClosed>>,
}

type OnClosed = Box<dyn FnOnce(Failure)>;

impl Connection {
    fn new(
        reactor: &Reactor,
        stream: TcpStream,
        host: SocketAddr,
        peer: SocketAddr,
    ) -> io::Result<Rc<Connection>> {
        let conn = Rc::new(Connection {
            stream: RefCell::new(None),
            token: Cell::new(None),
            reactor: reactor.downgrade(),
            me: RefCell::new(std::rc::Weak::new()),
            protocol: RefCell::new(None),
            buf: RefCell::new(Vec::new()),
            sent: Cell::new(0),
            flush_queued: Cell::new(false),
            readable: Cell::new(false),
            writable: Cell::new(true),
            reading_paused: Cell::new(false),
            read_closed: Cell::new(false),
            peer_closed: Cell::new(false),
            closing: Cell::new(Closing::Open),
            write_shutdown_requested: Cell::new(false),
            write_shut: Cell::new(false),
            closed: Cell::new(false),
            producer: RefCell::new(None),
            producer_paused: Cell::new(false),
            high_water: Cell::new(DEFAULT_HIGH_WATER),
            low_water: Cell::new(DEFAULT_LOW_WATER),
            host: Address::Tcp(host),
            peer: Address::Tcp(peer),
            on_closed: RefCell::new(None),
        });
        *conn.me.borrow_mut() = Rc::downgrade(&conn);
        let mut stream = stream;
        let token = reactor.register_source(
            &mut stream,
            Interest::READABLE | Interest::WRITABLE,
            conn.clone(),
        )?;
        conn.token.set(Some(token));
        *conn.stream.borrow_mut() = Some(stream);
        Ok(conn)
    }

    fn start<P: crate::protocol::Protocol>(
        self: &Rc<Self>,
        protocol: P,
    ) -> crate::protocol::Handle<P> {
        let transport = Transport::new(self.clone());
        let (driver, handle) = attach(protocol, transport);
        *self.protocol.borrow_mut() = Some(driver.clone());
        driver.make_connection();
        // Data may have arrived before registration produced an edge.
        self.readable.set(true);
        if let Some(r) = self.reactor.upgrade()
            && let Some(t) = self.token.get()
        {
            r.ready_again(t);
        }
        handle
    }

    fn driver(&self) -> Option<Rc<dyn ProtocolDriver>> {
        self.protocol.borrow().clone()
    }

    fn pending(&self) -> usize {
        self.buf.borrow().len() - self.sent.get()
    }

    fn do_read(&self, reactor: &Reactor) {
        let mut total = 0;
        while self.readable.get()
            && !self.reading_paused.get()
            && !self.read_closed.get()
            && self.closing.get() == Closing::Open
            && !self.closed.get()
        {
            if total >= READ_BUDGET {
                if let Some(t) = self.token.get() {
                    reactor.ready_again(t);
                }
                return;
            }
            // The buffer is taken out of its thread-local home while the protocol runs, so a
            // nested read (none is expected) would get a fresh one instead of a borrow panic.
            let mut buf = READ_BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
            if buf.len() < READ_CHUNK {
                buf.resize(READ_CHUNK, 0);
            }
            let result: io::Result<Option<usize>> = {
                let stream = self.stream.borrow();
                match stream.as_ref() {
                    None => Ok(None),
                    Some(s) => (&*s).read(&mut buf[..]).map(Some),
                }
            };
            if let Ok(Some(n)) = result
                && n > 0
                && let Some(d) = self.driver()
            {
                d.data_received(&buf[..n]);
            }
            READ_BUF.with(|b| *b.borrow_mut() = buf);
            match result {
                Ok(None) => return,
                Ok(Some(0)) => {
                    self.readable.set(false);
                    self.read_closed.set(true);
                    if let Some(d) = self.driver() {
                        d.read_connection_lost();
                    }
                    return;
                }
                Ok(Some(n)) => {
                    total += n;
                    // A short read empties the kernel's queue: anything arriving later (data
                    // or FIN) re-arms the edge-triggered event, so no read that is bound to
                    // return `WouldBlock` is made. Only a FIN already reported with this event
                    // (`read_closed`) makes no new edge: then read on to the end of stream.
                    if n < READ_CHUNK && !self.peer_closed.get() {
                        self.readable.set(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable.set(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(reactor, lost_from_io(&e));
                    return;
                }
            }
        }
    }

    fn queue_flush(&self) {
        if self.flush_queued.replace(true) {
            return;
        }
        let Some(me) = self.me.borrow().upgrade() else {
            return;
        };
        if let Some(r) = self.reactor.upgrade() {
            r.want_flush(me);
        }
    }

    /// Sends what is buffered; then closes or half-closes if asked to.
    fn do_write(&self, reactor: &Reactor) {
        if self.closed.get() {
            return;
        }
        while self.pending() > 0 && self.writable.get() {
            let wanted = self.pending();
            let r = {
                let stream = self.stream.borrow();
                let Some(s) = stream.as_ref() else { return };
                let buf = self.buf.borrow();
                (&*s).write(&buf[self.sent.get()..])
            };
            match r {
                Ok(n) => {
                    self.sent.set(self.sent.get() + n);
                    // A short write filled the kernel's send buffer: writing again now would
                    // return `WouldBlock`. Freed space makes a new writable edge.
                    if n < wanted {
                        self.writable.set(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable.set(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(reactor, lost_from_io(&e));
                    return;
                }
            }
        }
        if self.pending() == 0 {
            let mut buf = self.buf.borrow_mut();
            buf.clear();
            // Don't keep a huge buffer around for an idle connection.
            if buf.capacity() > 4 * DEFAULT_HIGH_WATER {
                buf.shrink_to(DEFAULT_HIGH_WATER);
            }
            self.sent.set(0);
        } else if self.sent.get() > self.buf.borrow().len() / 2 {
            let sent = self.sent.replace(0);
            self.buf.borrow_mut().drain(..sent);
        }
        self.producer_after_write();
        if self.pending() == 0 {
            if self.closing.get() == Closing::AfterFlush {
                self.close(reactor, Failure::new(ConnectionDone));
            } else if self.write_shutdown_requested.get() && !self.write_shut.get() {
                self.write_shut.set(true);
                if let Some(s) = self.stream.borrow().as_ref() {
                    let _ = s.shutdown(Shutdown::Write);
                }
                if let Some(d) = self.driver() {
                    d.write_connection_lost();
                }
            }
        }
    }

    /// Producer flow control after the buffer changed.
    fn producer_after_write(&self) {
        let producer = self.producer.borrow().clone();
        let Some((p, streaming)) = producer else {
            return;
        };
        let pending = self.pending();
        if streaming {
            if self.producer_paused.get() && pending <= self.low_water.get() {
                self.producer_paused.set(false);
                p.resume_producing();
            }
        } else if pending == 0 && self.closing.get() == Closing::Open {
            p.resume_producing();
        }
    }

    fn close(&self, reactor: &Reactor, reason: Failure) {
        if self.closed.replace(true) {
            return;
        }
        self.release(reactor);
        self.notify(reason);
    }

    /// Closes the socket and drops what is buffered.
    fn release(&self, reactor: &Reactor) {
        if let (Some(t), Some(s)) = (self.token.take(), self.stream.borrow_mut().take()) {
            // Closing the socket takes it out of the epoll set: no EPOLL_CTL_DEL needed.
            reactor.forget_source(t);
            drop(s);
        }
        self.buf.borrow_mut().clear();
        self.sent.set(0);
    }

    /// Tells the producer, the protocol, then the port or connector that the connection is
    /// gone.
    fn notify(&self, reason: Failure) {
        let producer = self.producer.borrow_mut().take();
        if let Some((p, _)) = producer {
            p.stop_producing();
        }
        let driver = self.protocol.borrow_mut().take();
        if let Some(d) = driver {
            d.connection_lost(reason.clone());
        }
        let on_closed = self.on_closed.borrow_mut().take();
        if let Some(f) = on_closed {
            f(reason);
        }
    }

    fn with_reactor(&self, f: impl FnOnce(&Reactor)) {
        if let Some(r) = self.reactor.upgrade() {
            f(&r)
        }
    }
}

impl SourceHandler for Connection {
    fn ready(&self, reactor: &Reactor, ready: Ready) {
        let (readable, writable, read_closed) = (
            ready.is_readable(),
            ready.is_writable(),
            ready.is_read_closed(),
        );
        if self.closed.get() {
            return;
        }
        if readable {
            self.readable.set(true);
        }
        if read_closed {
            self.peer_closed.set(true);
        }
        if writable {
            self.writable.set(true);
            if self.pending() > 0 || self.closing.get() == Closing::AfterFlush {
                self.do_write(reactor);
            }
        }
        self.do_read(reactor);
    }

    fn flush(&self, reactor: &Reactor) {
        self.flush_queued.set(false);
        self.do_write(reactor);
    }

    fn shutdown(&self, reactor: &Reactor) {
        self.close(
            reactor,
            Failure::new(crate::error::ConnectionLost(Some(
                "reactor shutdown".into(),
            ))),
        );
    }
}

impl TransportImpl for Connection {
    fn write(&self, data: &[u8]) {
        if self.closed.get() || self.write_shut.get() || data.is_empty() {
            return;
        }
        self.buf.borrow_mut().extend_from_slice(data);
        self.after_append();
    }

    fn write_sequence(&self, chunks: &[&[u8]]) {
        if self.closed.get() || self.write_shut.get() {
            return;
        }
        {
            let mut buf = self.buf.borrow_mut();
            for c in chunks {
                buf.extend_from_slice(c);
            }
        }
        self.after_append();
    }

    fn lose_connection(&self) {
        if self.closed.get() || self.closing.get() != Closing::Open {
            return;
        }
        self.closing.set(Closing::AfterFlush);
        // Reading stops at once; the close happens once the buffer is flushed.
        self.queue_flush();
    }

    fn abort_connection(&self) {
        if self.closed.replace(true) {
            return;
        }
        // SO_LINGER 0: the close sends a reset, so the peer sees `ConnectionLost` rather than
        // a clean EOF (Twisted's abortConnection does the same).
        if let Some(s) = self.stream.borrow().as_ref() {
            let _ = socket2::SockRef::from(s).set_linger(Some(std::time::Duration::ZERO));
        }
        let Some(reactor) = self.reactor.upgrade() else {
            return;
        };
        self.release(&reactor);
        // The caller is usually one of the protocol's own callbacks: the protocol hears of the
        // loss on a later turn (as in Twisted), never re-entered (its `connection_lost` would
        // otherwise be dropped as re-entrant).
        let me = self.me.borrow().upgrade();
        if let Some(me) = me {
            reactor.call_later(0.0, move || me.notify(Failure::new(ConnectionAborted)));
        }
    }

    fn lose_write_connection(&self) {
        if self.closed.get() {
            return;
        }
        self.write_shutdown_requested.set(true);
        self.queue_flush();
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
        self.reading_paused.set(true);
    }

    fn resume_producing(&self) {
        if self.reading_paused.replace(false) {
            // Data may be waiting already: look on the next turn.
            self.readable.set(true);
            if let (Some(r), Some(t)) = (self.reactor.upgrade(), self.token.get()) {
                r.ready_again(t);
            }
        }
    }

    fn stop_producing(&self) {
        self.reading_paused.set(true);
        self.lose_connection();
    }

    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        if self.producer.borrow().is_some() {
            return Err(ProducerError::AlreadyRegistered);
        }
        if self.closed.get() {
            producer.stop_producing();
            return Ok(());
        }
        *self.producer.borrow_mut() = Some((producer.clone(), streaming));
        self.producer_paused.set(false);
        if !streaming {
            producer.resume_producing();
        }
        Ok(())
    }

    fn unregister_producer(&self) {
        let p = self.producer.borrow_mut().take();
        drop(p);
    }

    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        self.high_water.set(high);
        self.low_water.set(low);
        self.producer_after_write();
    }

    fn set_tcp_nodelay(&self, on: bool) -> io::Result<()> {
        match self.stream.borrow().as_ref() {
            Some(s) => s.set_nodelay(on),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "connection closed",
            )),
        }
    }

    fn set_tcp_keepalive(&self, on: bool) -> io::Result<()> {
        match self.stream.borrow().as_ref() {
            Some(s) => {
                let sock = socket2::SockRef::from(s);
                sock.set_keepalive(on)
            }
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "connection closed",
            )),
        }
    }

    fn abort_with(&self, reason: Failure) {
        self.with_reactor(|r| self.close(r, reason));
    }
}

impl Connection {
    fn after_append(&self) {
        let pending = self.pending();
        if pending > self.high_water.get() && !self.producer_paused.get() {
            let producer = self.producer.borrow().clone();
            if let Some((p, true)) = producer {
                self.producer_paused.set(true);
                p.pause_producing();
            }
        }
        self.queue_flush();
    }
}

// ---- listening -------------------------------------------------------------------------

struct PortInner<F: Factory> {
    listener: RefCell<Option<TcpListener>>,
    token: Cell<Option<Token>>,
    factory: Rc<F>,
    host: SocketAddr,
    me: RefCell<std::rc::Weak<PortInner<F>>>,
    /// Accepting is suspended (EMFILE back-off) until this call fires.
    backoff: RefCell<Option<DelayedCall>>,
}

/// A listening TCP port (Twisted's `IListeningPort`).
pub struct ListeningPort {
    inner: Rc<dyn PortControl>,
}

trait PortControl {
    fn host(&self) -> SocketAddr;
    fn stop(&self, reactor: &Reactor);
}

/// A port that is recorded, not listening (`MemoryReactor`).
struct RecordedPort(SocketAddr);

impl PortControl for RecordedPort {
    fn host(&self) -> SocketAddr {
        self.0
    }
    fn stop(&self, _reactor: &Reactor) {}
}

impl ListeningPort {
    pub(crate) fn recorded(host: SocketAddr) -> ListeningPort {
        ListeningPort {
            inner: Rc::new(RecordedPort(host)),
        }
    }
}

impl std::fmt::Debug for ListeningPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<ListeningPort {}>", self.inner.host())
    }
}

impl ListeningPort {
    /// The address it listens on (with the real port when 0 was asked for).
    pub fn get_host(&self) -> Address {
        Address::Tcp(self.inner.host())
    }

    /// The port number it listens on.
    pub fn port(&self) -> u16 {
        self.inner.host().port()
    }

    /// Stops accepting; connections already accepted stay open. The Deferred fires on a
    /// later turn, after the factory's `stop_factory` if this was its last port.
    pub fn stop_listening(&self, reactor: &Reactor) -> Deferred<()> {
        let (d, fire) = Deferred::new();
        let inner = self.inner.clone();
        let r = reactor.clone();
        reactor.call_later(0.0, move || {
            inner.stop(&r);
            // Only this call fires `d`.
            let _ = fire.callback(());
        });
        d
    }
}

impl<F: Factory> PortControl for PortInner<F> {
    fn host(&self) -> SocketAddr {
        self.host
    }
    fn stop(&self, reactor: &Reactor) {
        let listener = self.listener.borrow_mut().take();
        if let (Some(t), Some(mut l)) = (self.token.take(), listener) {
            reactor.deregister_source(t, &mut l);
            drop(l);
            let backoff = self.backoff.borrow_mut().take();
            if let Some(c) = backoff {
                let _ = c.cancel();
            }
            do_stop(&self.factory);
        }
    }
}

impl<F: Factory> PortInner<F> {
    fn accept_some(&self, reactor: &Reactor) {
        if self.backoff.borrow().is_some() {
            return;
        }
        for _ in 0..ACCEPT_BATCH {
            let accepted = match self.listener.borrow().as_ref() {
                Some(l) => l.accept(),
                None => return,
            };
            match accepted {
                Ok((stream, peer)) => self.serve(reactor, stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_resource_exhaustion(&e) => {
                    // Out of descriptors: the listener stays readable, so accepting again at
                    // once would spin. Back off, then look again.
                    log::error!(target: "twistor::tcp", "accept failed on {}: {e}; retrying in 100 ms", self.host);
                    let me = self.me.borrow().clone();
                    let r = reactor.clone();
                    let call = reactor.call_later(0.1, move || {
                        if let Some(me) = me.upgrade() {
                            me.backoff.borrow_mut().take();
                            me.accept_some(&r);
                        }
                    });
                    *self.backoff.borrow_mut() = Some(call);
                    return;
                }
                Err(e) => {
                    // ECONNABORTED and friends: this one connection failed; go on.
                    log::warn!(target: "twistor::tcp", "accept failed on {}: {e}", self.host);
                }
            }
        }
        // Batch used up and maybe more waiting: let other sources run first.
        if let Some(t) = self.token.get() {
            reactor.ready_again(t);
        }
    }

    fn serve(&self, reactor: &Reactor, stream: TcpStream, peer: SocketAddr) {
        // The listener's address is the connection's, unless it listens on all interfaces:
        // only then is a `getsockname` call needed.
        let host = if self.host.ip().is_unspecified() {
            stream.local_addr().unwrap_or(self.host)
        } else {
            self.host
        };
        let Some(protocol) = self.factory.build_protocol(&Address::Tcp(peer)) else {
            // Refused by the factory: close at once.
            drop(stream);
            return;
        };
        match Connection::new(reactor, stream, host, peer) {
            Ok(conn) => {
                conn.start(protocol);
            }
            Err(e) => {
                log::error!(target: "twistor::tcp", "cannot register connection from {peer}: {e}")
            }
        }
    }
}

impl<F: Factory> SourceHandler for PortInner<F> {
    fn ready(&self, reactor: &Reactor, _ready: Ready) {
        self.accept_some(reactor);
    }
    fn flush(&self, _reactor: &Reactor) {}
    fn shutdown(&self, reactor: &Reactor) {
        self.stop(reactor);
    }
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Listens on `interface:port` (port 0: any free port; interface `""` means all IPv4
/// interfaces, as Twisted's default) with `backlog` (Twisted's default is 50), serving each
/// connection with a protocol from `factory` (Twisted's `listenTCP`).
///
/// ```
/// use std::rc::Rc;
/// use twistor::protocol::{for_protocol, Context, Protocol};
/// use twistor::reactor::Reactor;
/// use twistor::transport::tcp::listen_tcp;
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) { cx.transport().write(data) }
/// }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_tcp(&reactor, 0, Rc::new(for_protocol(|| Echo)), 50, "127.0.0.1").unwrap();
/// assert_ne!(port.port(), 0);
/// ```
pub fn listen_tcp<F: Factory>(
    reactor: &Reactor,
    port: u16,
    factory: Rc<F>,
    backlog: u32,
    interface: &str,
) -> Result<ListeningPort, CannotListenError> {
    let listener = bind_listener(port, backlog, interface, false)?;
    listen_on(reactor, listener, factory).map_err(|source| CannotListenError {
        interface: interface.to_string(),
        port,
        source,
    })
}

/// Binds a non-blocking listening socket (`SO_REUSEADDR`; `SO_REUSEPORT` too if asked, so
/// several sockets, one per reactor thread, can share the port).
fn bind_listener(
    port: u16,
    backlog: u32,
    interface: &str,
    reuse_port: bool,
) -> Result<std::net::TcpListener, CannotListenError> {
    let cannot = |source: io::Error| CannotListenError {
        interface: interface.to_string(),
        port,
        source,
    };
    let ip: IpAddr = if interface.is_empty() {
        IpAddr::from([0, 0, 0, 0])
    } else {
        interface.parse().map_err(|_| {
            cannot(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{interface:?} is not an IP address"),
            ))
        })?
    };
    let addr = SocketAddr::new(ip, port);
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .map_err(cannot)?;
    socket.set_reuse_address(true).map_err(cannot)?;
    if reuse_port {
        socket.set_reuse_port(true).map_err(cannot)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(cannot)?;
    }
    socket.set_nonblocking(true).map_err(cannot)?;
    socket.bind(&addr.into()).map_err(cannot)?;
    socket
        .listen(backlog.min(i32::MAX as u32) as i32)
        .map_err(cannot)?;
    Ok(socket.into())
}

/// Serves connections accepted on an already bound, non-blocking `listener`.
fn listen_on<F: Factory>(
    reactor: &Reactor,
    listener: std::net::TcpListener,
    factory: Rc<F>,
) -> io::Result<ListeningPort> {
    let host = listener.local_addr()?;
    let mut listener = TcpListener::from_std(listener);
    let inner = Rc::new(PortInner {
        listener: RefCell::new(None),
        token: Cell::new(None),
        factory: factory.clone(),
        host,
        me: RefCell::new(std::rc::Weak::new()),
        backoff: RefCell::new(None),
    });
    *inner.me.borrow_mut() = Rc::downgrade(&inner);
    let token = reactor.register_source(&mut listener, Interest::READABLE, inner.clone())?;
    inner.token.set(Some(token));
    *inner.listener.borrow_mut() = Some(listener);
    do_start(&factory);
    Ok(ListeningPort { inner })
}

// ---- one reactor per core ----------------------------------------------------------------

/// Reactors serving one port from several threads (DESIGN decision 13): each thread runs its
/// own reactor with its own listening socket on the same port (`SO_REUSEPORT`: the kernel
/// spreads new connections across them), and its own protocols; nothing is shared between
/// threads, so protocol code needs no locks.
pub struct ServerThreads {
    port: u16,
    handles: Vec<crate::reactor::ThreadHandle>,
    joins: Vec<std::thread::JoinHandle<()>>,
}

impl ServerThreads {
    /// The port every thread listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Asks every reactor to stop (gracefully: shutdown triggers run).
    pub fn stop(&self) {
        for h in &self.handles {
            h.stop();
        }
    }

    /// Waits for every thread to finish.
    pub fn join(self) {
        for j in self.joins {
            let _ = j.join();
        }
    }
}

/// Serves `interface:port` from `threads` threads, one reactor each; `make_factory` builds
/// each thread's factory on that thread. Port 0 picks a free port shared by all. Signals are
/// not handled by these reactors: stop them with [`ServerThreads::stop`].
///
/// ```
/// use twistor::protocol::{for_protocol, Context, Protocol};
/// use twistor::transport::tcp::serve_on_threads;
/// use std::io::{Read, Write};
///
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, cx: &Context<Self>, d: &[u8]) { cx.transport().write(d) }
/// }
/// let servers = serve_on_threads(2, 0, "127.0.0.1", || for_protocol(|| Echo)).unwrap();
/// let mut c = std::net::TcpStream::connect(("127.0.0.1", servers.port())).unwrap();
/// c.write_all(b"hi").unwrap();
/// let mut buf = [0; 2];
/// c.read_exact(&mut buf).unwrap();
/// assert_eq!(&buf, b"hi");
/// servers.stop();
/// servers.join();
/// ```
pub fn serve_on_threads<F: Factory>(
    threads: usize,
    port: u16,
    interface: &str,
    make_factory: impl Fn() -> F + Send + Sync + 'static,
) -> Result<ServerThreads, CannotListenError> {
    let threads = threads.max(1);
    // Bind every socket here, so port 0 resolves once and errors come back to the caller.
    let first = bind_listener(port, 1024, interface, true)?;
    let actual = first.local_addr().map(|a| a.port()).unwrap_or(port);
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(bind_listener(actual, 1024, interface, true)?);
    }
    let make_factory = std::sync::Arc::new(make_factory);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut joins = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let make = make_factory.clone();
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("twistor-reactor-{i}"))
            .spawn(move || {
                let reactor = match Reactor::new() {
                    Ok(r) => r,
                    Err(e) => {
                        log::error!(target: "twistor::tcp", "reactor thread {i}: {e}");
                        return;
                    }
                };
                if let Err(e) = listen_on(&reactor, listener, Rc::new(make())) {
                    log::error!(target: "twistor::tcp", "reactor thread {i}: cannot listen: {e}");
                    return;
                }
                let _ = tx.send(reactor.thread_handle());
                if let Err(e) = reactor.run_without_signal_handlers() {
                    log::error!(target: "twistor::tcp", "reactor thread {i}: {e}");
                }
            });
        match spawned {
            Ok(j) => joins.push(j),
            Err(e) => {
                return Err(CannotListenError {
                    interface: interface.to_string(),
                    port,
                    source: e,
                });
            }
        }
    }
    drop(tx);
    // Each thread sends its handle once listening (or gives up and drops its sender).
    let handles: Vec<_> = rx.iter().take(joins.len()).collect();
    Ok(ServerThreads {
        port: actual,
        handles,
        joins,
    })
}

// ---- connecting --------------------------------------------------------------------------

/// What a connector needs from its factory, type-erased.
trait ClientOps {
    fn started(&self, c: &Connector);
    /// Builds the protocol and starts it on `conn`; false if the factory refused.
    fn start_protocol(&self, conn: &Rc<Connection>, addr: &Address) -> bool;
    fn failed(&self, c: &Connector, reason: Failure);
    fn lost(&self, c: &Connector, reason: Failure);
    fn do_start(&self);
    fn do_stop(&self);
}

struct FactoryOps<F: ClientFactory>(Rc<F>);

impl<F: ClientFactory> ClientOps for FactoryOps<F> {
    fn started(&self, c: &Connector) {
        self.0.started_connecting(c)
    }
    fn start_protocol(&self, conn: &Rc<Connection>, addr: &Address) -> bool {
        match self.0.build_protocol(addr) {
            Some(p) => {
                conn.start(p);
                true
            }
            None => false,
        }
    }
    fn failed(&self, c: &Connector, reason: Failure) {
        self.0.client_connection_failed(c, reason)
    }
    fn lost(&self, c: &Connector, reason: Failure) {
        self.0.client_connection_lost(c, reason)
    }
    fn do_start(&self) {
        do_start(&self.0)
    }
    fn do_stop(&self) {
        do_stop(&self.0)
    }
}

/// The state of a [`Connector`] (Twisted's `connector.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorState {
    /// Not connecting nor connected.
    Disconnected,
    /// Resolving or connecting.
    Connecting,
    /// Connected.
    Connected,
}

struct Attempt {
    stream: Option<TcpStream>,
    token: Option<Token>,
    timeout: Option<DelayedCall>,
    /// Bumped per attempt so a late resolution or event of an old attempt is ignored.
    id: u64,
}

struct ConnectorInner {
    reactor: WeakReactor,
    host: String,
    port: u16,
    timeout: Option<f64>,
    bind: Option<SocketAddr>,
    state: Cell<ConnectorState>,
    factory_started: Cell<bool>,
    attempt: RefCell<Option<Attempt>>,
    next_attempt: Cell<u64>,
    conn: RefCell<Option<Rc<Connection>>>,
    ops: Box<dyn ClientOps>,
}

/// A TCP connection attempt and its result (Twisted's `IConnector`). Cheap to clone.
#[derive(Clone)]
pub struct Connector {
    inner: Rc<ConnectorInner>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<Connector {}:{} {:?}>",
            self.inner.host,
            self.inner.port,
            self.inner.state.get()
        )
    }
}

/// Connects to `host:port` (a name is resolved on a pool thread, off the loop), building the
/// protocol with `factory` (Twisted's `connectTCP`). `timeout` in seconds (Twisted's default is
/// 30); `bind_address` to bind the local end first.
///
/// ```
/// use std::rc::Rc;
/// use twistor::protocol::{for_protocol, Context, Protocol};
/// use twistor::reactor::Reactor;
/// use twistor::transport::tcp::{connect_tcp, listen_tcp};
///
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, cx: &Context<Self>) { cx.transport().lose_connection() }
///     fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_tcp(&reactor, 0, Rc::new(for_protocol(|| Hello)), 50, "127.0.0.1").unwrap();
/// let r = reactor.clone();
/// struct Bye(twistor::reactor::Reactor);
/// impl Protocol for Bye {
///     fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
///     fn connection_lost(&mut self, _cx: &Context<Self>, _reason: twistor::Failure) { let _ = self.0.stop(); }
/// }
/// connect_tcp(&reactor, "127.0.0.1", port.port(), Rc::new(for_protocol(move || Bye(r.clone()))), 5.0, None);
/// reactor.run_without_signal_handlers().unwrap();
/// ```
pub fn connect_tcp<F: ClientFactory>(
    reactor: &Reactor,
    host: &str,
    port: u16,
    factory: Rc<F>,
    timeout: f64,
    bind_address: Option<SocketAddr>,
) -> Connector {
    let c = Connector::unstarted(
        reactor.downgrade(),
        host,
        port,
        Box::new(FactoryOps(factory)),
        timeout,
        bind_address,
    );
    c.connect();
    c
}

impl Connector {
    /// A disconnected connector; `ops` is what it reports to (a factory, or `connect_protocol`).
    fn unstarted(
        reactor: WeakReactor,
        host: &str,
        port: u16,
        ops: Box<dyn ClientOps>,
        timeout: f64,
        bind_address: Option<SocketAddr>,
    ) -> Connector {
        Connector {
            inner: Rc::new(ConnectorInner {
                reactor,
                host: host.to_string(),
                port,
                timeout: (timeout.is_finite() && timeout > 0.0).then_some(timeout),
                bind: bind_address,
                state: Cell::new(ConnectorState::Disconnected),
                factory_started: Cell::new(false),
                attempt: RefCell::new(None),
                next_attempt: Cell::new(0),
                conn: RefCell::new(None),
                ops,
            }),
        }
    }

    /// A connector that is recorded, not run (`MemoryReactor`): it never connects.
    pub(crate) fn recorded<F: ClientFactory>(
        host: &str,
        port: u16,
        factory: Rc<F>,
        timeout: f64,
        bind_address: Option<SocketAddr>,
    ) -> Connector {
        Connector::unstarted(
            WeakReactor::none(),
            host,
            port,
            Box::new(FactoryOps(factory)),
            timeout,
            bind_address,
        )
    }
}

impl Connector {
    /// Starts a new attempt (again, after a failure or a lost connection). Ignored unless
    /// disconnected.
    pub fn connect(&self) {
        let inner = &self.inner;
        if inner.state.get() != ConnectorState::Disconnected {
            return;
        }
        inner.state.set(ConnectorState::Connecting);
        if !inner.factory_started.replace(true) {
            inner.ops.do_start();
        }
        let id = inner.next_attempt.get() + 1;
        inner.next_attempt.set(id);
        *inner.attempt.borrow_mut() = Some(Attempt {
            stream: None,
            token: None,
            timeout: None,
            id,
        });
        inner.ops.started(self);
        if inner.state.get() != ConnectorState::Connecting {
            return; // stopped from started_connecting
        }
        let Some(reactor) = inner.reactor.upgrade() else {
            return;
        };
        if let Some(t) = inner.timeout {
            let me = self.clone();
            let call = reactor.call_later(t, move || {
                me.fail_attempt(
                    id,
                    Failure::new(ConnectTimeoutError(format!(
                        "connecting to {}:{} took longer than {t} s",
                        me.inner.host, me.inner.port
                    ))),
                );
            });
            if let Some(a) = inner.attempt.borrow_mut().as_mut() {
                a.timeout = Some(call);
            }
        }
        match inner.host.parse::<IpAddr>() {
            Ok(ip) => self.connect_to(&reactor, id, SocketAddr::new(ip, inner.port)),
            Err(_) => {
                let name = format!("{}:{}", inner.host, inner.port);
                let me = self.clone();
                let r = reactor.clone();
                let _ = reactor
                    .defer_to_thread_try(move || {
                        let addrs: Vec<SocketAddr> = name.to_socket_addrs()?.collect();
                        // Twisted's connectTCP uses the first IPv4 address.
                        addrs
                            .iter()
                            .find(|a| a.is_ipv4())
                            .or(addrs.first())
                            .copied()
                            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
                    })
                    .add_both(move |r2| {
                        match r2 {
                            Ok(addr) => me.connect_to(&r, id, addr),
                            Err(f) => me.fail_attempt(
                                id,
                                Failure::new(DnsLookupError(format!(
                                    "{}: {}",
                                    me.inner.host,
                                    f.error_message()
                                ))),
                            ),
                        }
                        Ok(())
                    });
            }
        }
    }

    fn current(&self, id: u64) -> bool {
        self.inner.state.get() == ConnectorState::Connecting
            && self
                .inner
                .attempt
                .borrow()
                .as_ref()
                .is_some_and(|a| a.id == id)
    }

    fn connect_to(&self, reactor: &Reactor, id: u64, addr: SocketAddr) {
        if !self.current(id) {
            return;
        }
        let stream = (|| -> io::Result<TcpStream> {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.set_nonblocking(true)?;
            if let Some(b) = self.inner.bind {
                socket.bind(&b.into())?;
            }
            match socket.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e),
            }
            Ok(TcpStream::from_std(socket.into()))
        })();
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => return self.fail_attempt(id, connect_error_from_io(&e)),
        };
        let handler = Rc::new(AttemptHandler {
            connector: self.clone(),
            id,
        });
        match reactor.register_source(&mut stream, Interest::WRITABLE, handler) {
            Ok(token) => {
                if let Some(a) = self.inner.attempt.borrow_mut().as_mut() {
                    a.stream = Some(stream);
                    a.token = Some(token);
                }
            }
            Err(e) => self.fail_attempt(id, connect_error_from_io(&e)),
        }
    }

    /// Ends the current attempt (deregisters, cancels the timeout) and returns its stream.
    fn end_attempt(&self, reactor: Option<&Reactor>) -> Option<TcpStream> {
        let attempt = self.inner.attempt.borrow_mut().take()?;
        if let Some(c) = attempt.timeout {
            let _ = c.cancel();
        }
        let mut stream = attempt.stream;
        if let (Some(r), Some(t), Some(s)) = (reactor, attempt.token, stream.as_mut()) {
            r.deregister_source(t, s);
        }
        stream
    }

    fn fail_attempt(&self, id: u64, reason: Failure) {
        if !self.current(id) {
            return;
        }
        let reactor = self.inner.reactor.upgrade();
        drop(self.end_attempt(reactor.as_ref()));
        self.failed(reason);
    }

    /// The attempt is over and failed: tell the factory (which may reconnect).
    fn failed(&self, reason: Failure) {
        self.inner.state.set(ConnectorState::Disconnected);
        self.inner.ops.failed(self, reason);
        self.maybe_stop_factory();
    }

    fn maybe_stop_factory(&self) {
        // Reconnecting from the hook keeps the factory started.
        if self.inner.state.get() == ConnectorState::Disconnected
            && self.inner.factory_started.replace(false)
        {
            self.inner.ops.do_stop();
        }
    }

    fn connected(&self, reactor: &Reactor, id: u64) {
        if !self.current(id) {
            return;
        }
        let Some(stream) = self.end_attempt(Some(reactor)) else {
            return;
        };
        let established = stream.local_addr().and_then(|local| {
            let peer = stream.peer_addr()?;
            Ok((Connection::new(reactor, stream, local, peer)?, peer))
        });
        let (conn, peer) = match established {
            Ok(c) => c,
            Err(e) => return self.failed(connect_error_from_io(&e)),
        };
        self.inner.state.set(ConnectorState::Connected);
        let me = self.clone();
        *conn.on_closed.borrow_mut() = Some(Box::new(move |reason| {
            me.inner.conn.borrow_mut().take();
            me.inner.state.set(ConnectorState::Disconnected);
            me.inner.ops.lost(&me, reason);
            me.maybe_stop_factory();
        }));
        *self.inner.conn.borrow_mut() = Some(conn.clone());
        if !self.inner.ops.start_protocol(&conn, &Address::Tcp(peer)) {
            // Refused by the factory: drop the connection.
            conn.abort_connection();
        }
    }

    /// Stops the attempt in progress: `client_connection_failed` gets a [`UserError`].
    /// Errors if not connecting.
    pub fn stop_connecting(&self) -> Result<(), NotConnectingError> {
        if self.inner.state.get() != ConnectorState::Connecting {
            return Err(NotConnectingError);
        }
        let id = self
            .inner
            .attempt
            .borrow()
            .as_ref()
            .map(|a| a.id)
            .unwrap_or(0);
        self.fail_attempt(id, Failure::new(UserError));
        Ok(())
    }

    /// Stops connecting, or closes the connection (`lose_connection`).
    pub fn disconnect(&self) {
        match self.inner.state.get() {
            ConnectorState::Connecting => {
                let _ = self.stop_connecting();
            }
            ConnectorState::Connected => {
                let conn = self.inner.conn.borrow().clone();
                if let Some(c) = conn {
                    c.lose_connection();
                }
            }
            ConnectorState::Disconnected => {}
        }
    }

    /// Where it connects to: the host as given and the port.
    pub fn get_destination(&self) -> (String, u16) {
        (self.inner.host.clone(), self.inner.port)
    }

    /// The current state.
    pub fn state(&self) -> ConnectorState {
        self.inner.state.get()
    }
}

struct AttemptHandler {
    connector: Connector,
    id: u64,
}

impl SourceHandler for AttemptHandler {
    fn ready(&self, reactor: &Reactor, _ready: Ready) {
        let c = &self.connector;
        if !c.current(self.id) {
            return;
        }
        let status = {
            let attempt = c.inner.attempt.borrow();
            let Some(s) = attempt.as_ref().and_then(|a| a.stream.as_ref()) else {
                return;
            };
            match s.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => match s.peer_addr() {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                    Err(e) => Err(e),
                },
            }
        };
        match status {
            Ok(true) => c.connected(reactor, self.id),
            Ok(false) => {} // spurious wake-up: still connecting
            Err(e) => c.fail_attempt(self.id, connect_error_from_io(&e)),
        }
    }
    fn flush(&self, _reactor: &Reactor) {}
}

// ---- ClientCreator -------------------------------------------------------------------------

struct OneShot<P: crate::protocol::Protocol> {
    protocol: RefCell<Option<P>>,
    result: crate::Resolver<crate::protocol::Handle<P>>,
    /// Set by the canceller: the attempt's failure (a `UserError`) must not fire `result`,
    /// which then fails with `CancelledError`.
    cancelled: Rc<Cell<bool>>,
}

impl<P: crate::protocol::Protocol> ClientOps for OneShot<P> {
    fn started(&self, _c: &Connector) {}
    fn start_protocol(&self, conn: &Rc<Connection>, _addr: &Address) -> bool {
        let Some(p) = self.protocol.borrow_mut().take() else {
            return false;
        };
        let handle = conn.start(p);
        let _ = self.result.callback(handle);
        true
    }
    fn failed(&self, _c: &Connector, reason: Failure) {
        if !self.cancelled.get() {
            let _ = self.result.errback(reason);
        }
    }
    fn lost(&self, _c: &Connector, _reason: Failure) {}
    fn do_start(&self) {}
    fn do_stop(&self) {}
}

/// Connects `protocol` to `host:port` and fires with its [`Handle`](crate::protocol::Handle)
/// once connected (Twisted's `ClientCreator.connectTCP` / `connectProtocol`). Cancelling the
/// Deferred stops the attempt.
///
/// ```
/// use std::rc::Rc;
/// use twistor::protocol::{for_protocol, Context, Protocol};
/// use twistor::reactor::Reactor;
/// use twistor::transport::tcp::{connect_protocol, listen_tcp};
///
/// struct Quiet;
/// impl Protocol for Quiet {
///     fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
/// }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_tcp(&reactor, 0, Rc::new(for_protocol(|| Quiet)), 50, "127.0.0.1").unwrap();
/// let r = reactor.clone();
/// let d = connect_protocol(&reactor, "127.0.0.1", port.port(), Quiet, 5.0)
///     .add_callback(move |handle| {
///         handle.with(|_p, cx| cx.transport().lose_connection());
///         let _ = r.stop();
///     });
/// reactor.run_without_signal_handlers().unwrap();
/// twistor::testing::success_result_of(&d);
/// ```
pub fn connect_protocol<P: crate::protocol::Protocol>(
    reactor: &Reactor,
    host: &str,
    port: u16,
    protocol: P,
    timeout: f64,
) -> Deferred<crate::protocol::Handle<P>> {
    let connector_slot: Rc<RefCell<Option<Connector>>> = Rc::new(RefCell::new(None));
    let slot = connector_slot.clone();
    let cancelled = Rc::new(Cell::new(false));
    let was_cancelled = cancelled.clone();
    let (result, fire) =
        Deferred::with_canceller(move |_: &crate::Resolver<crate::protocol::Handle<P>>| {
            was_cancelled.set(true);
            let c = slot.borrow_mut().take();
            if let Some(c) = c {
                c.disconnect();
            }
        });
    let ops = Box::new(OneShot {
        protocol: RefCell::new(Some(protocol)),
        result: fire,
        cancelled,
    });
    let c = Connector::unstarted(reactor.downgrade(), host, port, ops, timeout, None);
    *connector_slot.borrow_mut() = Some(c.clone());
    c.connect();
    result
}

/// What opens TCP ports and connections: the [`Reactor`], or a
/// [`MemoryReactor`](crate::testing::MemoryReactor) that records the calls. Code that takes
/// `&impl ReactorTcp` can be tested without sockets (Twisted's `IReactorTCP`).
pub trait ReactorTcp {
    /// As [`listen_tcp`].
    fn listen_tcp<F: Factory>(
        &self,
        port: u16,
        factory: Rc<F>,
        backlog: u32,
        interface: &str,
    ) -> Result<ListeningPort, CannotListenError>;

    /// As [`connect_tcp`].
    fn connect_tcp<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: Rc<F>,
        timeout: f64,
        bind_address: Option<SocketAddr>,
    ) -> Connector;
}

impl ReactorTcp for Reactor {
    fn listen_tcp<F: Factory>(
        &self,
        port: u16,
        factory: Rc<F>,
        backlog: u32,
        interface: &str,
    ) -> Result<ListeningPort, CannotListenError> {
        listen_tcp(self, port, factory, backlog, interface)
    }

    fn connect_tcp<F: ClientFactory>(
        &self,
        host: &str,
        port: u16,
        factory: Rc<F>,
        timeout: f64,
        bind_address: Option<SocketAddr>,
    ) -> Connector {
        connect_tcp(self, host, port, factory, timeout, bind_address)
    }
}

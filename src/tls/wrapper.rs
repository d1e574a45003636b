//! The TLS protocol/transport pair (Twisted's `TLSMemoryBIOProtocol`): [`TlsProtocol`] is the
//! protocol of the real connection (TCP, UNIX, in-memory), and gives the protocol it wraps a
//! transport that encrypts what it writes and decrypts what arrives. rustls never touches a
//! socket: ciphertext is pushed into it and pulled out of it.
//!
//! # Invariants
//!
//! * **One record per flush.** Plaintext the wrapped protocol writes during one of the
//!   wrapper's callbacks (`connection_made`, `data_received`, ...) is only buffered; when the
//!   outermost callback returns, the buffer is encrypted at once (16 small writes make one
//!   record, not 16) and the handshake messages, tickets and records of that callback go to
//!   the real transport as one write, so they leave in one send (the delayed-ACK trap of a
//!   ticket and the first data in two small sends is avoided; `TCP_NODELAY` is set on TCP
//!   connections, since nothing is left for Nagle's algorithm to merge). A write made
//!   outside any callback (a timer, a handle, a producer) waits for the end of the reactor's
//!   current phase when the wrapper knows its reactor ([`TlsProtocol::with_reactor`]; the
//!   `listen_ssl`/`connect_ssl` helpers set it), else it is encrypted at once. A write of a
//!   full record's plaintext or more (16 KiB) with nothing pending before it is encrypted at
//!   once instead of being copied into the pending buffer: it makes whole records either way.
//! * **Nothing before the handshake.** Plaintext written before the handshake completes
//!   waits, then goes out right after it (Twisted's `test_writeBeforeHandshake`).
//! * **Closing.** `lose_connection` sends what is buffered, then close_notify, then
//!   half-closes the real connection (`lose_write_connection`: its buffer is flushed, then
//!   writing is shut down) and reads on, delivering nothing more to the protocol, until the
//!   peer's close_notify or end of stream, and then closes. Closing the socket at once loses
//!   data: under TLS 1.3 the server sends its session tickets after the client's Finished,
//!   so a client that writes and closes quickly receives them on a closed socket, its
//!   kernel answers with a reset, and the server's kernel discards what the server had not
//!   read yet. The wait is bounded by [`CLOSE_NOTIFY_TIMEOUT`] on the reactor (or test
//!   clock) the wrapper knows, after which the connection is closed anyway (Twisted's wait
//!   has no bound); a wrapper that knows neither closes at once. A real transport that
//!   cannot half-close closes, which ends the wait too. Before the handshake with nothing
//!   written `lose_connection` aborts, as Twisted does. A received close_notify is answered
//!   and the connection closed at once; both sides then report
//!   [`ConnectionDone`](crate::error::ConnectionDone). A peer that closes without
//!   close_notify is reported as [`ConnectionLost`](crate::error::ConnectionLost) (a
//!   truncation attack looks the same). `abort_connection` sends no close_notify and closes
//!   at once. The real connection's write shutdown during the wait is not reported to the
//!   protocol as `write_connection_lost`: it asked for a full close.
//! * **Errors.** A TLS failure (verification, a bad message, an alert) sends rustls' alert,
//!   closes the real connection and becomes the wrapped protocol's `connection_lost` reason:
//!   a [`TlsError`] naming the cause. Nothing the peer sends can panic the wrapper.
//! * **Bounded.** Ciphertext goes to the real transport's write buffer, so its water marks,
//!   producers and read back-pressure bound a TLS connection as they bound a plain one.
//!   Plaintext waiting for the handshake is bounded too: above [`PENDING_HIGH`] bytes a
//!   streaming producer is paused until the handshake lets it out. The producer is
//!   registered with the real transport through a membrane that pauses it once if either
//!   side wants it paused, and resumes it only when neither does (Twisted's
//!   `_ProducerMembrane` and `test_streamingProducerBothTransportsDecideToPause`);
//!   what arrives is decrypted and delivered chunk by chunk.
//! * **No cycle.** The wrapped protocol's transport holds the wrapper state weakly; the real
//!   transport is dropped at `connection_lost`.
//!
//! # STARTTLS
//!
//! A wrapper made with [`TlsProtocol::plain`] passes bytes through unchanged until
//! [`Transport::start_tls`] switches it: from then on the bytes written are encrypted, and
//! the bytes the caller says it received but did not consume are fed to TLS first.
//!
//! A plain stream connection switches without a wrapper: it builds a `TlsLayer`, the same
//! session state (`Shared`) with the connection in the wrapper's place. The connection hands
//! it the bytes it reads and routes the protocol's writes, closes and producer to the
//! layer's transport (a `TlsTransport`, as here); the layer writes its records to the
//! connection's clear-text side. So both forms follow every rule above, from one state
//! machine. The layer switches only once the connection routes through it, so whatever the
//! protocol does in reaction to the first bytes fed to TLS already goes through TLS.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::io::{BufRead, Write};
use std::rc::{Rc, Weak};

use super::TlsInfo;
use super::errors::TlsError;
use super::options::TlsConfig;
use crate::Failure;
use crate::error::{ConnectionLost, is_connection_done};
use crate::protocol::{Context, Handle, Protocol, ProtocolDriver, attach_with_factory};
use crate::reactor::sources::SourceHandler;
use crate::reactor::{Reactor, Ready, WeakReactor};
use crate::time::DelayedCall;
use crate::transport::{Address, Producer, ProducerError, Transport, TransportImpl};

type HandshakeHook = Box<dyn FnOnce(Result<(), Failure>)>;

/// Buffers up to this size are kept between flushes and reads instead of reallocated.
const SCRATCH_KEEP: usize = 256 * 1024;

/// Ciphertext of one flush above which the buffer itself goes to the real transport (which
/// queues a chunk that large without copying it) instead of a copy of it.
const HAND_OVER: usize = 16 * 1024;

/// A write at least this large (a full TLS record's plaintext) is encrypted at once instead
/// of being copied into the pending plaintext first.
const WHOLE_RECORDS: usize = 16 * 1024;

/// Plaintext held for the handshake above which a streaming producer is paused.
///
/// ```
/// assert_eq!(twistor::tls::PENDING_HIGH, 64 * 1024);
/// ```
pub const PENDING_HIGH: usize = 64 * 1024;

/// Seconds `lose_connection` waits, once close_notify is sent and the write side shut
/// down, for the peer's close_notify or end of stream before closing anyway: a peer that
/// never answers cannot hold the connection open, and one that answers at once loses
/// nothing (module docs, "Closing").
///
/// ```
/// assert_eq!(twistor::tls::CLOSE_NOTIFY_TIMEOUT, 5.0);
/// ```
pub const CLOSE_NOTIFY_TIMEOUT: f64 = 5.0;

/// The producer as the real transport sees it: paused while the real transport's buffer or
/// the TLS layer wants it paused, resumed when both allow.
struct Membrane {
    inner: Rc<dyn Producer>,
    streaming: bool,
    lower_paused: Cell<bool>,
    tls_paused: Cell<bool>,
}

impl Membrane {
    fn tls_pause(&self) {
        if self.streaming && !self.tls_paused.replace(true) && !self.lower_paused.get() {
            self.inner.pause_producing();
        }
    }
    fn tls_resume(&self) {
        if self.tls_paused.replace(false) && !self.lower_paused.get() {
            self.inner.resume_producing();
        }
    }
}

impl Producer for Membrane {
    fn pause_producing(&self) {
        if !self.lower_paused.replace(true) && !self.tls_paused.get() {
            self.inner.pause_producing();
        }
    }
    fn resume_producing(&self) {
        // A pull producer is asked for more each time: pass every call on.
        let was = self.lower_paused.replace(false);
        if !self.tls_paused.get() && (was || !self.streaming) {
            self.inner.resume_producing();
        }
    }
    fn stop_producing(&self) {
        self.inner.stop_producing();
    }
}

/// The state both halves share.
struct Shared {
    /// The TLS session; `None` while a STARTTLS-capable connection is in clear text.
    conn: RefCell<Option<rustls::Connection>>,
    /// The host a client verifies against (to name it in a wrong-host error).
    host: RefCell<Option<String>>,
    lower: RefCell<Option<Transport>>,
    inner: RefCell<Option<Rc<dyn ProtocolDriver>>>,
    /// Plaintext written and not encrypted yet.
    pending: RefCell<Vec<u8>>,
    /// Decrypted bytes on their way to the protocol (reused).
    scratch: RefCell<Vec<u8>>,
    /// Ciphertext on its way to the real transport (reused: no allocation per flush).
    out: RefCell<Vec<u8>>,
    /// How many of the wrapper's callbacks are on the stack: writes wait for the outermost.
    depth: Cell<u32>,
    handshake_done: Cell<bool>,
    /// `lose_connection` was asked (or the peer's close_notify came): no more writes.
    closing: Cell<bool>,
    close_sent: Cell<bool>,
    peer_closed: Cell<bool>,
    /// The TLS failure, reported as the `connection_lost` reason.
    failed: RefCell<Option<Failure>>,
    lost: Cell<bool>,
    on_handshake: RefCell<Option<HandshakeHook>>,
    producer: RefCell<Option<Rc<Membrane>>>,
    /// Where a write made outside the wrapper's callbacks waits for the end of the phase.
    reactor: RefCell<Option<Later>>,
    flush_queued: Cell<bool>,
    flusher: Rc<FlushLater>,
    /// Closes the real connection if the peer does not answer our close_notify in time.
    close_timer: RefCell<Option<DelayedCall>>,
}

/// What defers the flush of writes made outside the wrapper's callbacks.
enum Later {
    /// To the end of the reactor's current phase.
    Reactor(WeakReactor),
    /// To a `call_later(0)` of a test clock (Twisted's `BufferingTLSTransport` with a
    /// `Clock`): deterministic tests see small writes merged once the clock advances.
    Clock(crate::task::Clock),
}

/// The reactor's end-of-phase flush of a wrapper written to outside its callbacks.
struct FlushLater(Weak<Shared>);

impl FlushLater {
    fn run(&self) {
        if let Some(s) = self.0.upgrade() {
            s.flush_queued.set(false);
            s.flush();
        }
    }
}

impl SourceHandler for FlushLater {
    fn ready(&self, _reactor: &Reactor, _ready: Ready) {}
    fn flush(&self, _reactor: &Reactor) {
        self.run();
    }
}

/// Runs the wrapper's flush when the outermost of its callbacks returns.
struct Turn<'a>(&'a Shared);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let d = self.0.depth.get() - 1;
        self.0.depth.set(d);
        if d == 0 {
            self.0.flush();
        }
    }
}

impl Shared {
    fn new(conn: Option<(rustls::Connection, Option<String>)>) -> Rc<Shared> {
        let (conn, host) = match conn {
            Some((mut c, h)) => {
                // Bounded by the real transport's buffer instead (module docs).
                c.set_buffer_limit(None);
                (Some(c), h)
            }
            None => (None, None),
        };
        Rc::new_cyclic(|me| Shared {
            conn: RefCell::new(conn),
            host: RefCell::new(host),
            lower: RefCell::new(None),
            inner: RefCell::new(None),
            pending: RefCell::new(Vec::new()),
            scratch: RefCell::new(Vec::new()),
            out: RefCell::new(Vec::new()),
            depth: Cell::new(0),
            handshake_done: Cell::new(false),
            closing: Cell::new(false),
            close_sent: Cell::new(false),
            peer_closed: Cell::new(false),
            failed: RefCell::new(None),
            lost: Cell::new(false),
            on_handshake: RefCell::new(None),
            producer: RefCell::new(None),
            reactor: RefCell::new(None),
            flush_queued: Cell::new(false),
            flusher: Rc::new(FlushLater(me.clone())),
            close_timer: RefCell::new(None),
        })
    }

    fn turn(&self) -> Turn<'_> {
        self.depth.set(self.depth.get() + 1);
        Turn(self)
    }

    fn lower(&self) -> Option<Transport> {
        self.lower.borrow().clone()
    }

    /// Flushes at the end of the reactor's current phase (so the writes a timer or a handle
    /// makes in one phase become one record), or now without a reactor.
    fn flush_soon(&self) {
        enum Via {
            Reactor(Reactor),
            Clock(crate::task::Clock),
            Now,
        }
        let via = match self.reactor.borrow().as_ref() {
            Some(Later::Reactor(w)) => w.upgrade().map_or(Via::Now, Via::Reactor),
            Some(Later::Clock(c)) => Via::Clock(c.clone()),
            None => Via::Now,
        };
        match via {
            Via::Now => self.flush(),
            _ if self.flush_queued.replace(true) => {}
            Via::Reactor(r) => r.want_flush(self.flusher.clone()),
            Via::Clock(c) => {
                let flusher = self.flusher.clone();
                c.call_later(0.0, move || flusher.run());
            }
        }
    }

    fn inner(&self) -> Option<Rc<dyn ProtocolDriver>> {
        self.inner.borrow().clone()
    }

    fn is_tls(&self) -> bool {
        self.conn.borrow().is_some()
    }

    fn handshaking(&self) -> bool {
        self.conn
            .borrow()
            .as_ref()
            .is_some_and(|c| c.is_handshaking())
    }

    /// Feeds ciphertext (or, in clear-text mode, passes data) to the wrapped protocol.
    fn receive(&self, mut data: &[u8]) {
        loop {
            if self.lost.get() || self.failed.borrow().is_some() {
                return;
            }
            if !self.is_tls() {
                if !data.is_empty()
                    && let Some(d) = self.inner()
                {
                    d.data_received(data);
                }
                return;
            }
            // A reused buffer, taken out while the protocol runs: a nested `receive` (a
            // `start_tls` from `data_received`) gets a fresh one instead of a borrow panic.
            let mut plain = std::mem::take(&mut *self.scratch.borrow_mut());
            let step = {
                let mut guard = self.conn.borrow_mut();
                let Some(conn) = guard.as_mut() else { return };
                let fed = match conn.read_tls(&mut data) {
                    Ok(n) => n,
                    Err(e) => {
                        drop(guard);
                        self.fail(TlsError::Protocol(e.to_string()));
                        return;
                    }
                };
                conn.process_new_packets().map(|state| {
                    plain.clear();
                    plain.reserve(state.plaintext_bytes_to_read());
                    // Chunk by chunk out of rustls' records: no zero-filling first.
                    let mut reader = conn.reader();
                    while let Ok(chunk) = reader.fill_buf() {
                        if chunk.is_empty() {
                            break;
                        }
                        let n = chunk.len();
                        plain.extend_from_slice(chunk);
                        reader.consume(n);
                    }
                    (fed, state.peer_has_closed(), !conn.is_handshaking())
                })
            };
            let (fed, peer_closed, handshaken) = match step {
                Ok(s) => s,
                Err(e) => {
                    self.fail_rustls(e);
                    return;
                }
            };
            if handshaken && !self.handshake_done.replace(true) {
                if let Some(hook) = self.on_handshake.borrow_mut().take() {
                    hook(Ok(()));
                }
                if let Some(d) = self.inner() {
                    d.handshake_completed();
                }
            }
            // After our close_notify the protocol has closed: what still arrives is read
            // only to reach the peer's close_notify, never delivered.
            if !plain.is_empty()
                && !self.close_sent.get()
                && let Some(d) = self.inner()
            {
                d.data_received(&plain);
            }
            if plain.capacity() <= SCRATCH_KEEP {
                *self.scratch.borrow_mut() = plain;
            }
            if peer_closed && !self.peer_closed.replace(true) {
                if self.close_sent.get() {
                    // The answer to our close_notify: the exchange is complete.
                    self.close_lower();
                } else {
                    // Answer the close_notify (in `flush`) and close.
                    self.closing.set(true);
                    self.pending.borrow_mut().clear();
                }
            }
            // `fed == 0`: rustls takes nothing after a close_notify; the rest is dropped.
            if data.is_empty() || fed == 0 {
                return;
            }
        }
    }

    fn fail_rustls(&self, e: rustls::Error) {
        let err = match self.host.borrow().as_deref() {
            Some(h) => TlsError::for_host(e, h),
            None => TlsError::from(e),
        };
        self.fail(err);
    }

    /// TLS failed: send rustls' alert, close, and report `err` as the reason.
    fn fail(&self, err: TlsError) {
        if self.failed.borrow().is_some() {
            return;
        }
        log::debug!(target: "twistor::tls", "TLS failed: {err}");
        *self.failed.borrow_mut() = Some(Failure::new(err));
        self.closing.set(true);
        self.pending.borrow_mut().clear();
        if let Some(lower) = self.lower() {
            self.send_tls(&lower);
            lower.lose_connection();
        }
    }

    /// Encrypts `data` now, without a stop in `pending`, when nothing is waiting before it and
    /// the handshake is over; returns whether it did. For writes of [`WHOLE_RECORDS`] bytes
    /// or more: they fill whole records anyway, so merging them with later writes would not
    /// save a record, and the copy into `pending` is saved.
    fn write_direct(&self, data: &[u8]) -> bool {
        let mut guard = self.conn.borrow_mut();
        let Some(conn) = guard.as_mut() else {
            return false;
        };
        if conn.is_handshaking() {
            return false;
        }
        // With no buffer limit rustls takes everything.
        if conn.writer().write_all(data).is_err() {
            crate::report_error!(target: "twistor::tls", "TLS refused {} bytes", data.len());
        }
        true
    }

    /// Hands what rustls has to send to the real transport in one write.
    ///
    /// The bytes pass through `out`, a buffer kept between flushes, and are copied into the
    /// transport's write buffer (where small writes coalesce anyway) after the session's
    /// borrow ends: the transport may call back into the protocol (a producer paused at the
    /// high-water mark), which may ask the session for its state. More than [`HAND_OVER`]
    /// bytes are handed over whole instead, so a bulk transfer is not copied again.
    fn send_tls(&self, lower: &Transport) {
        let mut out = std::mem::take(&mut *self.out.borrow_mut());
        if let Some(conn) = self.conn.borrow_mut().as_mut() {
            while conn.wants_write() {
                match conn.write_tls(&mut out) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        if out.len() > HAND_OVER {
            lower.write_owned(out);
            return;
        }
        if !out.is_empty() {
            lower.write(&out);
            out.clear();
        }
        *self.out.borrow_mut() = out;
    }

    /// Encrypts the pending plaintext (after the handshake), sends close_notify if closing,
    /// and hands everything rustls produced to the real transport in one write.
    fn flush(&self) {
        if self.lost.get() || self.failed.borrow().is_some() {
            return;
        }
        let Some(lower) = self.lower() else { return };
        let mut close_now = false;
        let mut resume = false;
        {
            let mut guard = self.conn.borrow_mut();
            let Some(conn) = guard.as_mut() else { return };
            if !conn.is_handshaking() {
                let mut p = self.pending.borrow_mut();
                // With no buffer limit rustls takes everything.
                if !p.is_empty() && conn.writer().write_all(&p).is_err() {
                    crate::report_error!(target: "twistor::tls", "TLS refused {} bytes", p.len());
                }
                p.clear();
                // The buffer is kept for the next flush, unless a burst made it large.
                if p.capacity() > SCRATCH_KEEP {
                    *p = Vec::new();
                }
                resume = true;
            }
            if self.closing.get()
                && !self.close_sent.get()
                && self.pending.borrow().is_empty()
                && (!conn.is_handshaking() || self.peer_closed.get())
            {
                conn.send_close_notify();
                self.close_sent.set(true);
                close_now = true;
            }
        }
        self.send_tls(&lower);
        if close_now {
            self.after_close_notify(&lower);
        }
        if resume {
            let producer = self.producer.borrow().clone();
            if let Some(m) = producer {
                m.tls_resume();
            }
        }
    }

    /// Our close_notify is queued on `lower`. Answering the peer's, close now. Otherwise
    /// half-close and read on until the peer's close_notify or end of stream, for at most
    /// [`CLOSE_NOTIFY_TIMEOUT`]: closing the socket at once would make the kernel answer
    /// what the peer still sends (TLS 1.3 session tickets) with a reset, which destroys the
    /// data the peer had not read yet. Without a reactor or clock to bound the wait, close
    /// now.
    fn after_close_notify(&self, lower: &Transport) {
        if self.peer_closed.get() {
            lower.lose_connection();
            return;
        }
        // The flusher holds the wrapper weakly: the timer must not keep it alive either.
        let weak = self.flusher.0.clone();
        let expire = move || {
            if let Some(s) = weak.upgrade() {
                s.close_timer.borrow_mut().take();
                if !s.lost.get() {
                    log::debug!(target: "twistor::tls", "no close_notify from the peer in time: closing");
                    s.close_lower();
                }
            }
        };
        let timer = match self.reactor.borrow().as_ref() {
            Some(Later::Reactor(w)) => w
                .upgrade()
                .map(|r| r.call_later(CLOSE_NOTIFY_TIMEOUT, expire)),
            Some(Later::Clock(c)) => Some(c.call_later(CLOSE_NOTIFY_TIMEOUT, expire)),
            None => None,
        };
        match timer {
            Some(t) => {
                *self.close_timer.borrow_mut() = Some(t);
                // Sends what is queued (the close_notify last), then shuts down writing; a
                // transport that cannot half-close closes, which ends the wait too.
                lower.lose_write_connection();
            }
            None => lower.lose_connection(),
        }
    }

    /// Ends the wait for the peer's close_notify: closes the real connection.
    fn close_lower(&self) {
        self.cancel_close_timer();
        if let Some(lower) = self.lower() {
            lower.lose_connection();
        }
    }

    fn cancel_close_timer(&self) {
        let timer = self.close_timer.borrow_mut().take();
        if let Some(t) = timer
            && t.active()
        {
            let _ = t.cancel();
        }
    }

    /// The reason the wrapped protocol gets for the real connection's `reason`.
    fn final_reason(&self, reason: Failure) -> Failure {
        if let Some(f) = self.failed.borrow().clone() {
            return f;
        }
        if !self.is_tls() || !is_connection_done(&reason) {
            return reason;
        }
        if self.peer_closed.get() || self.close_sent.get() {
            reason
        } else if self.handshake_done.get() {
            Failure::new(ConnectionLost::because(
                "the peer closed the connection without a TLS close_notify",
            ))
        } else {
            Failure::new(ConnectionLost::because(
                "the peer closed the connection during the TLS handshake",
            ))
        }
    }

    /// Switches a clear-text session to TLS with `conn`, then feeds `already_received` (what
    /// the peer sent after its own switch that the protocol had not consumed) to TLS. The
    /// turn's end sends the ClientHello of a client.
    fn switch(&self, conn: (rustls::Connection, Option<String>), already_received: &[u8]) {
        let (mut conn, host) = conn;
        // Bounded by the real transport's buffer instead (module docs).
        conn.set_buffer_limit(None);
        *self.conn.borrow_mut() = Some(conn);
        *self.host.borrow_mut() = host;
        let _turn = self.turn();
        self.receive(already_received);
    }

    /// Why `start_tls` cannot switch this session now, if it cannot.
    fn refuse_start(&self) -> Result<(), TlsError> {
        if self.is_tls() {
            Err(TlsError::AlreadyStarted)
        } else if self.closing.get() || self.lost.get() {
            Err(TlsError::StartTlsClosing)
        } else {
            Ok(())
        }
    }

    /// Bytes from the real connection.
    fn on_data(&self, data: &[u8]) {
        let _turn = self.turn();
        self.receive(data);
    }

    /// The real connection's peer closed its write side.
    fn on_read_closed(&self, lower: &Transport) {
        if !self.is_tls() {
            if let Some(d) = self.inner() {
                d.read_connection_lost();
            }
            return;
        }
        // No half-close over TLS: the reason (clean or truncated) is settled at
        // `connection_lost` from whether close_notify came.
        lower.lose_connection();
    }

    /// The real connection shut down its write side. After our close_notify that is our own
    /// doing (the wait for the peer's answer), not the protocol's: it is not told.
    fn on_write_closed(&self) {
        if self.close_sent.get() && self.is_tls() {
            return;
        }
        if let Some(d) = self.inner() {
            d.write_connection_lost();
        }
    }

    /// The real connection is gone: tells the wrapped protocol, with the TLS reason.
    fn on_lost(&self, reason: Failure) {
        self.cancel_close_timer();
        let reason = self.final_reason(reason);
        self.lost.set(true);
        self.pending.borrow_mut().clear();
        self.producer.borrow_mut().take();
        if let Some(hook) = self.on_handshake.borrow_mut().take() {
            hook(Err(reason.clone()));
        }
        // The wrapped protocol is kept (it holds nothing that leads back here), so it lives
        // as long as this wrapper: in-memory transports keep it for inspection.
        if let Some(d) = self.inner() {
            d.connection_lost(reason);
        }
        self.lower.borrow_mut().take();
    }

    fn info(&self) -> TlsInfo {
        match self.conn.borrow().as_ref() {
            Some(c) => TlsInfo::of(c, matches!(c, rustls::Connection::Client(_))),
            None => TlsInfo::default(),
        }
    }
}

/// The transport the wrapped protocol sees.
struct TlsTransport {
    shared: Weak<Shared>,
}

impl TlsTransport {
    fn with<R>(&self, f: impl FnOnce(&Shared) -> R) -> Option<R> {
        self.shared.upgrade().map(|s| f(&s))
    }
    fn lower(&self) -> Option<Transport> {
        self.with(|s| s.lower()).flatten()
    }
}

impl TransportImpl for TlsTransport {
    fn write(&self, data: &[u8]) {
        self.with(|s| {
            if s.closing.get() || s.lost.get() || data.is_empty() {
                return;
            }
            if !s.is_tls() {
                if let Some(l) = s.lower() {
                    l.write(data);
                }
                return;
            }
            if data.len() >= WHOLE_RECORDS && s.pending.borrow().is_empty() && s.write_direct(data)
            {
                if s.depth.get() == 0 {
                    s.flush_soon();
                }
                return;
            }
            s.pending.borrow_mut().extend_from_slice(data);
            if s.handshaking() {
                if s.pending.borrow().len() > PENDING_HIGH {
                    let producer = s.producer.borrow().clone();
                    if let Some(m) = producer {
                        m.tls_pause();
                    }
                }
            } else if s.depth.get() == 0 {
                s.flush_soon();
            }
        });
    }
    fn lose_connection(&self) {
        self.with(|s| {
            if !s.is_tls() {
                s.closing.set(true);
                if let Some(l) = s.lower() {
                    l.lose_connection();
                }
                return;
            }
            if s.closing.replace(true) {
                return;
            }
            if !s.handshake_done.get() && s.pending.borrow().is_empty() {
                // A TLS session cannot be shut down mid-handshake (Twisted aborts too).
                if let Some(l) = s.lower() {
                    l.abort_connection();
                }
                return;
            }
            if s.depth.get() == 0 {
                s.flush_soon();
            }
        });
    }
    fn abort_connection(&self) {
        self.with(|s| {
            s.closing.set(true);
            s.pending.borrow_mut().clear();
            if let Some(l) = s.lower() {
                l.abort_connection();
            }
        });
    }
    fn abort_with(&self, reason: Failure) {
        if let Some(l) = self.lower() {
            l.abort_with(reason);
        }
    }
    fn lose_write_connection(&self) {
        // TLS has no half-close that every peer honours: close_notify closes both ways.
        self.lose_connection()
    }
    fn get_host(&self) -> Address {
        self.lower()
            .map(|l| l.get_host())
            .unwrap_or(Address::Memory("tls".into()))
    }
    fn get_peer(&self) -> Address {
        self.lower()
            .map(|l| l.get_peer())
            .unwrap_or(Address::Memory("tls".into()))
    }
    fn disconnecting(&self) -> bool {
        self.with(|s| s.closing.get() || s.lost.get())
            .unwrap_or(true)
    }
    fn pause_producing(&self) {
        if let Some(l) = self.lower() {
            l.pause_producing();
        }
    }
    fn resume_producing(&self) {
        if let Some(l) = self.lower() {
            l.resume_producing();
        }
    }
    fn try_pause_producing(&self) -> Result<(), ProducerError> {
        self.lower().map_or(Ok(()), |l| l.try_pause_producing())
    }
    fn try_resume_producing(&self) -> Result<(), ProducerError> {
        self.lower().map_or(Ok(()), |l| l.try_resume_producing())
    }
    fn stop_producing(&self) {
        if let Some(l) = self.lower() {
            l.stop_producing();
        }
    }
    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        let (Some(s), Some(l)) = (self.shared.upgrade(), self.lower()) else {
            // Twisted: a producer for a lost connection is stopped at once.
            producer.stop_producing();
            return Ok(());
        };
        if s.lost.get() {
            producer.stop_producing();
            return Ok(());
        }
        let membrane = Rc::new(Membrane {
            inner: producer,
            streaming,
            lower_paused: Cell::new(false),
            tls_paused: Cell::new(false),
        });
        l.register_producer(membrane.clone(), streaming)?;
        if s.handshaking() && s.pending.borrow().len() > PENDING_HIGH {
            membrane.tls_pause();
        }
        *s.producer.borrow_mut() = Some(membrane);
        Ok(())
    }
    fn unregister_producer(&self) {
        self.with(|s| s.producer.borrow_mut().take());
        if let Some(l) = self.lower() {
            l.unregister_producer();
        }
    }
    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        if let Some(l) = self.lower() {
            l.set_write_buffer_limits(high, low);
        }
    }
    fn set_read_backpressure(&self, on: bool) {
        if let Some(l) = self.lower() {
            l.set_read_backpressure(on);
        }
    }
    fn buffered(&self) -> usize {
        let pending = self.with(|s| s.pending.borrow().len()).unwrap_or(0);
        pending + self.lower().map_or(0, |l| l.buffered())
    }
    fn tcp(&self) -> Option<crate::transport::TcpExt> {
        self.lower()?.tcp()
    }
    fn unix(&self) -> Option<crate::transport::UnixExt> {
        self.lower()?.unix()
    }
    fn tls(&self) -> Option<TlsInfo> {
        self.with(|s| s.info())
    }
    fn start_tls(&self, config: TlsConfig, already_received: &[u8]) -> Result<(), TlsError> {
        let s = self.shared.upgrade().ok_or(TlsError::StartTlsClosing)?;
        s.refuse_start()?;
        s.switch(config.connection()?, already_received);
        Ok(())
    }
}

/// The protocol of a TLS connection's real transport: it runs TLS and drives the protocol it
/// wraps. [`TlsFactory`](super::TlsFactory) builds these for every connection; build one
/// yourself to run TLS over a transport you connect by hand.
///
/// What the wrapped protocol can rely on:
///
/// * `connection_made` runs before the handshake; what it writes is sent once the handshake
///   completes. `handshake_completed` runs once, with the peer certificate and ALPN protocol
///   on [`Transport::tls`].
/// * The writes of one callback (or, with a reactor, of one reactor phase) become one TLS
///   record and leave in one send.
/// * `lose_connection` sends what was written, then close_notify, then closes once the
///   peer answers (or ends its stream, or after [`CLOSE_NOTIFY_TIMEOUT`]); the peer sees
///   [`ConnectionDone`](crate::error::ConnectionDone). `abort_connection` sends no
///   close_notify (the peer sees [`ConnectionLost`](crate::error::ConnectionLost)), and
///   neither does a peer that just closes its socket (reported as `ConnectionLost`).
/// * A TLS failure ends the connection with a [`TlsError`] naming the cause as the
///   `connection_lost` reason.
/// * Ciphertext waits in the real transport's write buffer, under its water marks,
///   producers and read back-pressure.
///
/// ```
/// use twistor::protocol::{Context, Protocol};
/// use twistor::testing::{AccumulatingProtocol, StringTransport};
/// use twistor::tls::{TlsProtocol, options_for_client_tls};
///
/// let opts = options_for_client_tls("example.com").trust_roots(twistor::tls::TrustRoots::Webpki);
/// let (tls, _handle) = TlsProtocol::client(AccumulatingProtocol::default(), &opts).unwrap();
/// let st = StringTransport::new();
/// st.connect(tls);
/// // The ClientHello went out at once: a TLS handshake record.
/// assert_eq!(st.value()[0], 0x16);
/// ```
pub struct TlsProtocol {
    shared: Rc<Shared>,
}

impl TlsProtocol {
    fn build<P: Protocol>(
        protocol: P,
        conn: Option<(rustls::Connection, Option<String>)>,
        factory: Option<Rc<dyn Any>>,
    ) -> (TlsProtocol, Handle<P>) {
        let shared = Shared::new(conn);
        let transport = Transport::new(Rc::new(TlsTransport {
            shared: Rc::downgrade(&shared),
        }));
        let (driver, handle) = attach_with_factory(protocol, transport, factory);
        *shared.inner.borrow_mut() = Some(driver);
        (TlsProtocol { shared }, handle)
    }

    /// Wraps `protocol` in a TLS session in the role `config` gives; also returns the
    /// wrapped protocol's handle.
    pub(crate) fn with_config<P: Protocol>(
        protocol: P,
        config: &TlsConfig,
        factory: Option<Rc<dyn Any>>,
    ) -> Result<(TlsProtocol, Handle<P>), TlsError> {
        let conn = config.connection()?;
        Ok(Self::build(protocol, Some(conn), factory))
    }

    /// `protocol` as a TLS client with `options`; also returns its handle.
    ///
    /// ```
    /// use twistor::testing::AccumulatingProtocol;
    /// use twistor::tls::{TlsProtocol, TlsError, options_for_client_tls};
    /// let bad = options_for_client_tls("not a host name");
    /// let e = TlsProtocol::client(AccumulatingProtocol::default(), &bad).err().unwrap();
    /// assert!(matches!(e, TlsError::InvalidHostName(_)));
    /// ```
    pub fn client<P: Protocol>(
        protocol: P,
        options: &super::ClientOptions,
    ) -> Result<(TlsProtocol, Handle<P>), TlsError> {
        Self::with_config(protocol, &TlsConfig::Client(options.clone()), None)
    }

    /// `protocol` as a TLS server with `options`; also returns its handle.
    ///
    /// ```no_run
    /// use twistor::testing::AccumulatingProtocol;
    /// use twistor::tls::{ServerOptions, TlsProtocol};
    /// let opts = ServerOptions::from_pem_files("cert.pem", "key.pem")?;
    /// let (tls, handle) = TlsProtocol::server(AccumulatingProtocol::default(), &opts)?;
    /// # Ok::<(), twistor::tls::TlsError>(())
    /// ```
    pub fn server<P: Protocol>(
        protocol: P,
        options: &super::ServerOptions,
    ) -> Result<(TlsProtocol, Handle<P>), TlsError> {
        Self::with_config(protocol, &TlsConfig::Server(options.clone()), None)
    }

    /// `protocol` in clear text, able to switch to TLS later with
    /// [`Transport::start_tls`] (STARTTLS).
    ///
    /// ```
    /// use twistor::testing::{AccumulatingProtocol, StringTransport};
    /// use twistor::tls::TlsProtocol;
    ///
    /// let (tls, handle) = TlsProtocol::plain(AccumulatingProtocol::default());
    /// let st = StringTransport::new();
    /// st.connect(tls);
    /// st.deliver(b"EHLO\r\n");
    /// assert_eq!(handle.with(|p, _| p.data.clone()), Some(b"EHLO\r\n".to_vec()));
    /// assert!(handle.with(|_, cx| cx.transport().tls().unwrap().active) == Some(false));
    /// ```
    pub fn plain<P: Protocol>(protocol: P) -> (TlsProtocol, Handle<P>) {
        Self::build(protocol, None, None)
    }

    pub(crate) fn plain_with_factory<P: Protocol>(
        protocol: P,
        factory: Option<Rc<dyn Any>>,
    ) -> TlsProtocol {
        Self::build(protocol, None, factory).0
    }

    /// Merges the writes made outside this wrapper's callbacks (from a timer, a handle, a
    /// producer) per phase of `reactor`'s turn, into one record, as the writes of a callback
    /// are; without a reactor each such write is encrypted at once. [`listen_ssl`],
    /// [`connect_ssl`] and [`connect_ssl_protocol`] set it.
    ///
    /// [`listen_ssl`]: super::listen_ssl
    /// [`connect_ssl`]: super::connect_ssl
    /// [`connect_ssl_protocol`]: super::connect_ssl_protocol
    ///
    /// ```
    /// use twistor::reactor::Reactor;
    /// use twistor::testing::AccumulatingProtocol;
    /// use twistor::tls::{TlsProtocol, options_for_client_tls};
    /// let reactor = Reactor::new().unwrap();
    /// let opts = options_for_client_tls("example.com");
    /// let (tls, _h) = TlsProtocol::client(AccumulatingProtocol::default(), &opts).unwrap();
    /// let _tls = tls.with_reactor(&reactor);
    /// ```
    pub fn with_reactor(self, reactor: &Reactor) -> TlsProtocol {
        *self.shared.reactor.borrow_mut() = Some(Later::Reactor(reactor.downgrade()));
        self
    }

    /// As [`with_reactor`](Self::with_reactor) for a test [`Clock`](crate::task::Clock):
    /// writes made outside the wrapper's callbacks are merged and sent on the clock's next
    /// `advance` (Twisted's small-write buffering, deterministic).
    ///
    /// ```
    /// use twistor::Clock;
    /// use twistor::testing::AccumulatingProtocol;
    /// use twistor::tls::{TlsProtocol, options_for_client_tls};
    /// let clock = Clock::new();
    /// let opts = options_for_client_tls("example.com");
    /// let (tls, _h) = TlsProtocol::client(AccumulatingProtocol::default(), &opts).unwrap();
    /// let _tls = tls.with_clock(&clock);
    /// ```
    pub fn with_clock(self, clock: &crate::task::Clock) -> TlsProtocol {
        *self.shared.reactor.borrow_mut() = Some(Later::Clock(clock.clone()));
        self
    }

    pub(crate) fn set_reactor(&self, reactor: Option<WeakReactor>) {
        *self.shared.reactor.borrow_mut() = reactor.map(Later::Reactor);
    }

    /// Calls `hook` once: with `Ok` when the handshake completes, or with the reason if the
    /// connection is lost first (what [`connect_ssl_protocol`](super::connect_ssl_protocol)'s
    /// Deferred fires with).
    ///
    /// ```
    /// use twistor::testing::AccumulatingProtocol;
    /// use twistor::tls::{TlsProtocol, options_for_client_tls};
    /// let opts = options_for_client_tls("example.com");
    /// let (tls, _h) = TlsProtocol::client(AccumulatingProtocol::default(), &opts).unwrap();
    /// let tls = tls.on_handshake(|r| println!("handshake: {}", r.is_ok()));
    /// ```
    pub fn on_handshake(self, hook: impl FnOnce(Result<(), Failure>) + 'static) -> TlsProtocol {
        *self.shared.on_handshake.borrow_mut() = Some(Box::new(hook));
        self
    }
}

impl Protocol for TlsProtocol {
    fn connection_made(&mut self, cx: &Context<Self>) {
        let s = &self.shared;
        *s.lower.borrow_mut() = Some(cx.transport().clone());
        no_delay(cx.transport());
        let _turn = s.turn();
        if let Some(d) = s.inner() {
            d.make_connection();
        }
    }

    fn data_received(&mut self, _cx: &Context<Self>, data: &[u8]) {
        self.shared.on_data(data);
    }

    fn read_connection_lost(&mut self, cx: &Context<Self>) {
        self.shared.on_read_closed(cx.transport());
    }

    fn write_connection_lost(&mut self, _cx: &Context<Self>) {
        self.shared.on_write_closed();
    }

    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        self.shared.on_lost(reason);
    }

    fn file_descriptor_received(&mut self, _cx: &Context<Self>, fd: std::os::fd::OwnedFd) {
        if let Some(d) = self.shared.inner() {
            d.file_descriptor_received(fd);
        }
    }
}

/// Each callback's output already leaves in one write (module docs): Nagle's delay would
/// only hold a record back waiting for the peer's delayed ACK.
fn no_delay(lower: &Transport) {
    if let Some(tcp) = lower.tcp() {
        let _ = tcp.set_nodelay(true);
    }
}

/// TLS started inside a stream connection that was made without it (`start_tls` on a plain
/// `listen_tcp`/`connect_tcp`/UNIX connection): the same session state as [`TlsProtocol`],
/// driven by the connection itself instead of through a protocol wrapper.
///
/// The connection routes the bytes it reads to [`data_received`](Self::data_received) and
/// the protocol's writes, closes and producer to [`transport`](Self::transport); `lower` is
/// the connection's own clear-text side, which the protocol no longer sees.
#[derive(Clone)]
pub(crate) struct TlsLayer {
    shared: Rc<Shared>,
    transport: Transport,
}

impl TlsLayer {
    /// A session in the role `config` gives, over `lower`, for the protocol `inner`; nothing
    /// is sent or read until [`begin`](Self::begin).
    pub(crate) fn new(
        inner: Rc<dyn ProtocolDriver>,
        lower: Transport,
        reactor: WeakReactor,
        config: &TlsConfig,
    ) -> Result<(TlsLayer, PendingSwitch), TlsError> {
        let conn = config.connection()?;
        let shared = Shared::new(None);
        *shared.inner.borrow_mut() = Some(inner);
        *shared.reactor.borrow_mut() = Some(Later::Reactor(reactor));
        no_delay(&lower);
        *shared.lower.borrow_mut() = Some(lower);
        let transport = Transport::new(Rc::new(TlsTransport {
            shared: Rc::downgrade(&shared),
        }));
        Ok((TlsLayer { shared, transport }, PendingSwitch(conn)))
    }

    /// Switches to TLS and feeds `already_received` to it. Called once the connection routes
    /// through this layer, so whatever the protocol does in reaction goes through TLS.
    pub(crate) fn begin(&self, switch: PendingSwitch, already_received: &[u8]) {
        self.shared.switch(switch.0, already_received);
    }

    /// The transport the protocol's calls go to while TLS runs.
    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Ciphertext read from the connection.
    pub(crate) fn data_received(&self, data: &[u8]) {
        self.shared.on_data(data);
    }

    /// The peer's end of stream.
    pub(crate) fn read_connection_lost(&self) {
        if let Some(lower) = self.shared.lower() {
            self.shared.on_read_closed(&lower);
        }
    }

    /// The connection's write side is shut down.
    pub(crate) fn write_connection_lost(&self) {
        self.shared.on_write_closed();
    }

    /// The connection is gone: the protocol's `connection_lost`, with the TLS reason.
    pub(crate) fn connection_lost(&self, reason: Failure) {
        self.shared.on_lost(reason);
    }
}

/// The rustls session a [`TlsLayer`] switches to at [`TlsLayer::begin`].
pub(crate) struct PendingSwitch((rustls::Connection, Option<String>));

//! The stream connection every stream transport shares (Twisted's `abstract.FileDescriptor`
//! and `tcp.Connection`): [`StreamConnection<S>`] over any [`StreamSocket`] (TCP today; UNIX
//! sockets and pipes implement the same trait).
//!
//! # The path of a byte
//!
//! *In:* the poller reports the socket readable; the connection reads into the thread's read
//! buffer, `READ_CHUNK` bytes at most per read, and hands each chunk to the protocol's
//! `data_received`. It reads on until one of these stops it:
//!
//! - `WouldBlock`: the kernel queue is empty; more data makes a new edge.
//! - A short read: it also empties the queue, so no read bound to return `WouldBlock` is
//!   made. The exception is a connection whose peer's FIN the poller has already reported
//!   (with this event or an earlier one): a FIN that came with the last data makes no edge of
//!   its own, so then it reads on to the end of stream.
//! - EOF: the protocol's `read_connection_lost` runs (by default it closes the connection).
//! - Reading is no longer allowed: the protocol paused it (`pause_producing`), back-pressure
//!   stopped it (below), or the connection is closing or closed (`lose_connection`, an abort,
//!   an I/O error).
//! - The budget: once `READ_BUDGET` bytes were read in this run it starts no new read and, if
//!   it may still read, asks the reactor to run it again: at the end of this turn's I/O step,
//!   after the other sources the poller reported, or on the next turn if it ran out in that
//!   end-of-step run. So one busy peer cannot starve the others.
//!
//! `Interrupted` reads are retried; any other read error closes the connection with
//! `ConnectionLost`.
//!
//! *Out:* `write` appends to the [`WriteBuffer`] and asks the reactor for a flush; after the
//! current phase of the turn (thread calls, tasks and timed calls; or I/O dispatch) the reactor
//! flushes each written connection once, so the writes of one phase leave together, in one
//! `writev` unless they span more chunks than one `writev` takes. What the kernel does
//! not take stays buffered until the socket is writable again. The [`ProducerSlot`] pauses a
//! streaming producer above the high-water mark and resumes it at the low one; a pull
//! producer is asked for more whenever the buffer empties.
//!
//! # Read back-pressure (a departure from Twisted)
//!
//! Twisted keeps reading from a peer that does not read what it is sent: an echo server's
//! buffer for such a peer grows without limit. Here a connection with no producer registered
//! stops reading while its write buffer is above the high-water mark (after trying to send
//! it), and reads again once it drained to the low-water mark; a protocol that wants
//! Twisted's behaviour calls [`Transport::set_read_backpressure(false)`]. So the memory of an
//! echo is bounded by the high-water mark plus one read chunk. A registered producer takes
//! over flow control (it is the one paused), so back-pressure does not apply then.
//!
//! # Closing
//!
//! `lose_connection` stops reading at once, flushes, then closes: `connection_lost` gets
//! `ConnectionDone`. `abort_connection` drops the buffer and closes at once with a reset (the
//! peer sees `ConnectionLost`); `connection_lost` gets `ConnectionAborted` on a later turn, so
//! a protocol aborting from its own callback is not re-entered. An I/O error:
//! `ConnectionLost`. The protocol's `connection_lost` runs exactly once, then the port's or
//! connector's bookkeeping (the factory's user count, `client_connection_lost`).
//!
//! # STARTTLS
//!
//! `start_tls` on a connection fills its TLS slot with a `TlsLayer` (the TLS wrapper's session
//! state, driven from here) and sets one flag; every read and every write of a connection
//! that never switches tests only that flag. Once it is set:
//!
//! - Bytes read go to the layer, which decrypts them for the protocol; the peer's end of
//!   stream goes to the layer too (a FIN without close_notify is a truncation).
//! - The protocol's writes, `lose_connection` (close_notify after the flush), aborts,
//!   half-close (a full close under TLS), producers (through the layer's membrane) and
//!   `buffered` go through the layer's transport; the layer's records go to this
//!   connection's clear-text side (the `plain_*` methods, behind `ClearSide`), so the write
//!   buffer, water marks and read back-pressure bound them as they bound clear text. What was
//!   written before the switch is ahead of them in the buffer: it leaves in clear.
//! - Addresses, pausing reading, water marks and the TCP/UNIX options stay the connection's.
//! - At the close the layer, not the protocol's driver, reports `connection_lost`, with the
//!   TLS reason (a failed verification, a missing close_notify); the layer is dropped then,
//!   which breaks the connection → layer → protocol → transport → connection cycle.
//!
//! Bytes the connection already handed to the protocol cannot be taken back: a peer that
//! pipelined its first TLS bytes behind the command has them in the protocol's buffer, and
//! the protocol passes them as `start_tls`'s `already_received`. Bytes not read yet are read
//! after the switch and go to TLS by the rule above.
//!
//! [`Transport::set_read_backpressure(false)`]: super::Transport::set_read_backpressure

use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice};
use std::rc::{Rc, Weak};

use mio::{Interest, Token};

use super::buffer::WriteBuffer;
use super::producer::ProducerSlot;
use super::sendfile::{self, QueuedFile, SendQueue, Step};
use super::tcp_ext::{SocketAccess, TcpExt};
use super::{Address, Producer, ProducerError, Transport, TransportImpl};
use crate::Failure;
use crate::error::{ConnectionAborted, ConnectionDone, ConnectionLost, lost_from_io};
use crate::protocol::ProtocolDriver;
use crate::reactor::sources::SourceHandler;
use crate::reactor::{Reactor, Ready, WeakReactor};
use crate::tls::{TlsConfig, TlsError, TlsInfo, TlsLayer};

/// Bytes read from one connection per turn before others get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// Size of one read.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    /// One read buffer for every connection on this thread's reactor.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// A connected, non-blocking stream socket.
pub(crate) trait StreamSocket: std::os::fd::AsFd + Sized + 'static {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// `write_vectored` for bytes that more bytes follow at once (a file after its
    /// header): TCP holds them to fill whole segments with what follows (`MSG_MORE`).
    fn write_vectored_more(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_vectored(bufs)
    }
    /// Sends bytes held back by `write_vectored_more` now (their file failed).
    fn push_held(&self) {}
    fn shutdown_write(&self) -> io::Result<()>;
    /// Makes the close send a reset (`abort_connection`), where the socket type has one.
    fn reset_on_close(&self) {}
    /// The TCP options of this connection, for TCP sockets.
    fn tcp_ext(_conn: &Weak<StreamConnection<Self>>) -> Option<TcpExt> {
        None
    }
    /// The UNIX-socket side of this connection, for UNIX sockets.
    fn unix_ext(_conn: &Weak<StreamConnection<Self>>) -> Option<super::UnixExt> {
        None
    }
    /// Descriptors that came with the last read (`SCM_RIGHTS`), for sockets that carry them.
    fn received_fds(&self) -> Vec<std::os::fd::OwnedFd> {
        Vec::new()
    }
}

/// Why a connection is closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closing {
    Open,
    /// `lose_connection`: flush, then close with `ConnectionDone`.
    AfterFlush,
}

type OnClosed = Box<dyn FnOnce(Failure)>;

/// An established stream connection: the transport behind a protocol's [`Transport`].
pub(crate) struct StreamConnection<S: StreamSocket> {
    socket: RefCell<Option<S>>,
    token: Cell<Option<Token>>,
    reactor: WeakReactor,
    me: Weak<StreamConnection<S>>,
    protocol: RefCell<Option<Rc<dyn ProtocolDriver>>>,
    buffer: RefCell<WriteBuffer>,
    producer: ProducerSlot,
    flush_queued: Cell<bool>,
    readable: Cell<bool>,
    writable: Cell<bool>,
    /// The protocol paused reading (`pause_producing`).
    reading_paused: Cell<bool>,
    /// Reading is stopped by back-pressure (the write buffer is above its high-water mark).
    backpressure_paused: Cell<bool>,
    read_backpressure: Cell<bool>,
    read_closed: Cell<bool>,
    /// The poller reported the peer's FIN (or a hang-up): read to the end of stream.
    peer_closed: Cell<bool>,
    closing: Cell<Closing>,
    write_shutdown_requested: Cell<bool>,
    write_shut: Cell<bool>,
    closed: Cell<bool>,
    host: Address,
    peer: Address,
    /// Runs after the protocol's `connection_lost` (factory/connector bookkeeping).
    on_closed: RefCell<Option<OnClosed>>,
    /// Set once `start_tls` switched this connection: the one flag the plain paths test.
    tls_on: Cell<bool>,
    /// The TLS session the protocol's reads and writes go through after `start_tls`.
    tls: RefCell<Option<TlsLayer>>,
    /// Files (and the writes behind them) waiting for the write buffer to empty; see the
    /// `sendfile` module.
    send_queue: SendQueue,
    /// Set while `send_queue` is not empty: the one flag the plain write paths test for it.
    diverted: Cell<bool>,
}

impl<S: StreamSocket> StreamConnection<S> {
    /// Registers `socket` with the reactor; no protocol yet (see [`start`](Self::start)).
    pub(crate) fn new(
        reactor: &Reactor,
        socket: S,
        host: Address,
        peer: Address,
    ) -> io::Result<Rc<Self>> {
        let conn = Rc::new_cyclic(|me| StreamConnection {
            socket: RefCell::new(None),
            token: Cell::new(None),
            reactor: reactor.downgrade(),
            me: me.clone(),
            protocol: RefCell::new(None),
            buffer: RefCell::new(WriteBuffer::default()),
            producer: ProducerSlot::default(),
            flush_queued: Cell::new(false),
            readable: Cell::new(false),
            writable: Cell::new(true),
            reading_paused: Cell::new(false),
            backpressure_paused: Cell::new(false),
            read_backpressure: Cell::new(true),
            read_closed: Cell::new(false),
            peer_closed: Cell::new(false),
            closing: Cell::new(Closing::Open),
            write_shutdown_requested: Cell::new(false),
            write_shut: Cell::new(false),
            closed: Cell::new(false),
            host,
            peer,
            on_closed: RefCell::new(None),
            tls_on: Cell::new(false),
            tls: RefCell::new(None),
            send_queue: SendQueue::default(),
            diverted: Cell::new(false),
        });
        let token = reactor.register_source(
            &socket,
            Interest::READABLE | Interest::WRITABLE,
            conn.clone(),
        )?;
        conn.token.set(Some(token));
        *conn.socket.borrow_mut() = Some(socket);
        Ok(conn)
    }

    /// The transport handle on this connection.
    pub(crate) fn transport(self: &Rc<Self>) -> Transport {
        Transport::new(self.clone())
    }

    /// What runs after the protocol's `connection_lost`.
    pub(crate) fn set_on_closed(&self, f: impl FnOnce(Failure) + 'static) {
        *self.on_closed.borrow_mut() = Some(Box::new(f));
    }

    /// Starts the protocol `driver` (built on [`transport`](Self::transport)): calls
    /// `connection_made`, then looks for data that arrived before.
    pub(crate) fn start(&self, driver: Rc<dyn ProtocolDriver>) {
        *self.protocol.borrow_mut() = Some(driver.clone());
        driver.make_connection();
        // Data may have arrived before registration produced an edge.
        self.readable.set(true);
        self.run_again();
    }

    /// Closes a connection whose factory refused it: a plain close (the peer sees EOF), and
    /// no protocol to tell.
    pub(crate) fn refuse(&self, reactor: &Reactor) {
        if !self.closed.replace(true) {
            self.release(reactor);
        }
    }

    fn run_again(&self) {
        if let (Some(r), Some(t)) = (self.reactor.upgrade(), self.token.get()) {
            r.ready_again(t);
        }
    }

    fn driver(&self) -> Option<Rc<dyn ProtocolDriver>> {
        self.protocol.borrow().clone()
    }

    fn pending(&self) -> usize {
        self.buffer.borrow().len()
    }

    /// Runs `f` on the socket, if still open.
    pub(crate) fn with_socket<R>(&self, f: impl FnOnce(&S) -> io::Result<R>) -> io::Result<R> {
        match self.socket.borrow().as_ref() {
            Some(s) => f(s),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "connection closed",
            )),
        }
    }

    fn may_read(&self) -> bool {
        self.readable.get()
            && !self.reading_paused.get()
            && !self.backpressure_paused.get()
            && !self.read_closed.get()
            && self.closing.get() == Closing::Open
            && !self.closed.get()
    }

    fn do_read(&self, reactor: &Reactor) {
        let mut total = 0;
        while self.may_read() {
            if total >= READ_BUDGET {
                self.run_again();
                return;
            }
            // The buffer is taken out of its thread-local home while the protocol runs, so a
            // nested read (none is expected) would get a fresh one instead of a borrow panic.
            let mut buf = READ_BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
            if buf.len() < READ_CHUNK {
                buf.resize(READ_CHUNK, 0);
            }
            let result: io::Result<Option<usize>> = match self.socket.borrow().as_ref() {
                None => Ok(None),
                Some(s) => s.read(&mut buf[..]).map(Some),
            };
            if let Ok(Some(n)) = result
                && n > 0
                && let Some(d) = self.driver()
            {
                // Descriptors go first: the bytes that carried them may refer to them.
                let fds = self.socket.borrow().as_ref().map(|s| s.received_fds());
                for fd in fds.into_iter().flatten() {
                    d.file_descriptor_received(fd);
                }
                if self.tls_on.get() {
                    self.tls_received(&buf[..n]);
                } else {
                    d.data_received(&buf[..n]);
                }
            }
            READ_BUF.with(|b| *b.borrow_mut() = buf);
            match result {
                Ok(None) => return,
                Ok(Some(0)) => {
                    self.readable.set(false);
                    self.read_closed.set(true);
                    if let Some(layer) = self.layer() {
                        layer.read_connection_lost();
                    } else if let Some(d) = self.driver() {
                        d.read_connection_lost();
                    }
                    return;
                }
                Ok(Some(n)) => {
                    total += n;
                    // A short read empties the kernel's queue: anything arriving later (data
                    // or FIN) re-arms the edge-triggered event, so no read that is bound to
                    // return `WouldBlock` is made. Only a FIN already reported with this event
                    // makes no new edge: then read on to the end of stream.
                    if n < READ_CHUNK && !self.peer_closed.get() {
                        self.readable.set(false);
                    }
                    self.check_backpressure(reactor);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable.set(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(reactor, lost_from_io(e));
                    return;
                }
            }
        }
    }

    /// Stops reading while the peer does not take what it is sent (see the module docs).
    fn check_backpressure(&self, reactor: &Reactor) {
        if !self.read_backpressure.get()
            || self.producer.is_registered()
            || !self.buffer.borrow().above_high()
        {
            return;
        }
        // Only what the kernel refuses counts: send first.
        if self.writable.get() {
            self.do_write(reactor);
        }
        if self.buffer.borrow().above_high() && !self.closed.get() {
            self.backpressure_paused.set(true);
        }
    }

    /// Reads again if back-pressure stopped reading and `now` says it may resume.
    fn lift_backpressure(&self, now: bool) {
        if now && self.backpressure_paused.replace(false) {
            self.readable.set(true);
            self.run_again();
        }
    }

    #[inline]
    fn queue_flush(&self) {
        if self.flush_queued.replace(true) {
            return;
        }
        self.ask_flush();
    }

    fn ask_flush(&self) {
        let Some(me) = self.me.upgrade() else {
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
        loop {
            self.send_buffer(reactor);
            if self.closed.get() {
                return;
            }
            if !self.diverted.get() || self.pending() > 0 || !self.writable.get() {
                break;
            }
            self.advance_queue(reactor);
        }
        if !self.diverted.get() {
            self.producer
                .buffer_drained(&self.buffer, self.closing.get() == Closing::Open);
        }
        let drained = self.buffer.borrow().at_or_below_low();
        self.lift_backpressure(drained);
        if self.pending() == 0 && !self.diverted.get() {
            if self.closing.get() == Closing::AfterFlush {
                self.close(reactor, Failure::new(ConnectionDone));
            } else if self.write_shutdown_requested.get() && !self.write_shut.get() {
                self.write_shut.set(true);
                if let Some(s) = self.socket.borrow().as_ref() {
                    let _ = s.shutdown_write();
                }
                if let Some(layer) = self.layer() {
                    layer.write_connection_lost();
                } else if let Some(d) = self.driver() {
                    d.write_connection_lost();
                }
            }
        }
    }

    /// Sends the write buffer until it is empty or the socket is full.
    fn send_buffer(&self, reactor: &Reactor) {
        // Bytes right before a queued file (the head of a response whose body is a file)
        // go with `MSG_MORE`: the kernel sends them in the file's first segment instead of
        // a segment of their own. The file's last `sendfile` pushes everything out.
        let more = self.diverted.get() && self.send_queue.file_is_next();
        while self.pending() > 0 && self.writable.get() {
            let r = {
                let socket = self.socket.borrow();
                let Some(s) = socket.as_ref() else { return };
                self.buffer.borrow_mut().send_with(|slices| {
                    if more {
                        s.write_vectored_more(slices)
                    } else {
                        s.write_vectored(slices)
                    }
                })
            };
            match r {
                Ok((n, offered)) => {
                    // A short write filled the kernel's send buffer: writing again now would
                    // return `WouldBlock`. Freed space makes a new writable edge. A write
                    // that took all it was offered is not short, even if more chunks wait
                    // than one `writev` takes: loop for them (no edge would come).
                    if n < offered {
                        self.writable.set(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable.set(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(reactor, lost_from_io(e));
                    return;
                }
            }
        }
    }

    /// One step of the send queue, with the write buffer empty (see the `sendfile` module).
    #[cold]
    fn advance_queue(&self, reactor: &Reactor) {
        let step = {
            let socket = self.socket.borrow();
            let Some(s) = socket.as_ref() else { return };
            self.send_queue.step(s.as_fd())
        };
        match step {
            Step::Empty => self.diverted.set(false),
            Step::Bytes(b) => self.buffer.borrow_mut().push_owned(b),
            Step::Sent => {}
            Step::WouldBlock => self.writable.set(false),
            // No borrow is held: the callbacks may write, queue another file or close.
            Step::Finished(done, result) => {
                if result.is_err()
                    && let Some(s) = self.socket.borrow().as_ref()
                {
                    // The bytes before the file were sent with `MSG_MORE` and nothing of
                    // the file may have followed: send them on their own.
                    s.push_held();
                }
                sendfile::fire(&done, result)
            }
            Step::SocketError(e) => self.close(reactor, lost_from_io(e)),
        }
    }

    /// Queues a file behind everything written so far (the plain-socket `send_file`).
    fn plain_send_file(&self, file: QueuedFile) {
        if self.closed.get() || self.write_shut.get() || self.write_shutdown_requested.get() {
            let done = file.into_done();
            match self.reactor.upgrade() {
                Some(r) => {
                    r.call_later(0.0, move || sendfile::fail_closed(&done));
                }
                None => sendfile::fail_closed(&done),
            }
            return;
        }
        self.send_queue.push_file(file);
        self.diverted.set(true);
        self.queue_flush();
    }

    /// Fails every queued file, on a later turn (the caller may be the protocol itself).
    fn fail_queued_files(&self) {
        let pending = self.send_queue.drain_resolvers();
        self.diverted.set(false);
        if pending.is_empty() {
            return;
        }
        if let Some(r) = self.reactor.upgrade() {
            r.call_later(0.0, move || pending.iter().for_each(sendfile::fail_closed));
        } else {
            pending.iter().for_each(sendfile::fail_closed);
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
        if let (Some(t), Some(s)) = (self.token.take(), self.socket.borrow_mut().take()) {
            // Closing the socket takes it out of the epoll set: no EPOLL_CTL_DEL needed.
            reactor.forget_source(t);
            drop(s);
        }
        self.buffer.borrow_mut().release();
        if self.diverted.get() {
            self.fail_queued_files();
        }
    }

    /// Tells the producer, the protocol, then the port or connector that the connection is
    /// gone.
    fn notify(&self, reason: Failure) {
        self.producer.stop();
        let driver = self.protocol.borrow_mut().take();
        let layer = self.tls.borrow_mut().take();
        self.tls_on.set(false);
        match (layer, driver) {
            // The layer tells the protocol, with the TLS reason (a failed verification, a
            // missing close_notify).
            (Some(layer), Some(_)) => layer.connection_lost(reason.clone()),
            (_, Some(d)) => d.connection_lost(reason.clone()),
            _ => {}
        }
        let on_closed = self.on_closed.borrow_mut().take();
        if let Some(f) = on_closed {
            f(reason);
        }
    }

    #[inline]
    fn after_append(&self) {
        self.producer.buffer_grew(&self.buffer);
        self.queue_flush();
    }

    fn on_ready(&self, reactor: &Reactor, readable: bool, writable: bool, read_closed: bool) {
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
            if self.pending() > 0
                || self.closing.get() == Closing::AfterFlush
                || self.diverted.get()
            {
                self.do_write(reactor);
            }
        }
        self.do_read(reactor);
    }
}

impl<S: StreamSocket + std::os::fd::AsFd> SocketAccess for StreamConnection<S> {
    fn with_sock(
        &self,
        f: &mut dyn FnMut(socket2::SockRef<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        self.with_socket(|s| f(socket2::SockRef::from(s)))
    }
}

impl<S: StreamSocket> SourceHandler for StreamConnection<S> {
    fn ready(&self, reactor: &Reactor, ready: Ready) {
        self.on_ready(
            reactor,
            ready.is_readable(),
            ready.is_writable(),
            ready.is_read_closed(),
        )
    }

    fn flush(&self, reactor: &Reactor) {
        self.flush_queued.set(false);
        self.do_write(reactor);
    }

    fn shutdown(&self, reactor: &Reactor) {
        self.close(
            reactor,
            Failure::new(ConnectionLost::because("reactor shutdown")),
        );
    }
}

/// The connection's clear-text side: what the protocol's calls do without TLS, and what a
/// TLS layer writes its records to.
impl<S: StreamSocket> StreamConnection<S> {
    #[inline]
    fn plain_write(&self, data: &[u8]) {
        if self.closed.get() || self.write_shut.get() || data.is_empty() {
            return;
        }
        if self.diverted.get() {
            return self.send_queue.push_bytes(data);
        }
        self.buffer.borrow_mut().push(data);
        self.after_append();
    }

    fn plain_write_sequence(&self, chunks: &[&[u8]]) {
        if self.closed.get() || self.write_shut.get() {
            return;
        }
        if self.diverted.get() {
            return chunks.iter().for_each(|c| self.send_queue.push_bytes(c));
        }
        {
            let mut buf = self.buffer.borrow_mut();
            for c in chunks {
                buf.push(c);
            }
        }
        self.after_append();
    }

    fn plain_write_owned(&self, data: Vec<u8>) {
        if self.closed.get() || self.write_shut.get() || data.is_empty() {
            return;
        }
        if self.diverted.get() {
            return self.send_queue.push_owned(data);
        }
        self.buffer.borrow_mut().push_owned(data);
        self.after_append();
    }

    fn plain_lose_connection(&self) {
        if self.closed.get() || self.closing.get() != Closing::Open {
            return;
        }
        self.closing.set(Closing::AfterFlush);
        // Reading stops at once; the close happens once the buffer is flushed.
        self.queue_flush();
    }

    fn plain_abort_connection(&self) {
        if self.closed.replace(true) {
            return;
        }
        // The peer sees a reset (`ConnectionLost`) rather than a clean EOF (Twisted's
        // abortConnection does the same).
        if let Some(s) = self.socket.borrow().as_ref() {
            s.reset_on_close();
        }
        let Some(reactor) = self.reactor.upgrade() else {
            return;
        };
        self.release(&reactor);
        // The caller is usually one of the protocol's own callbacks: the protocol hears of the
        // loss on a later turn (as in Twisted), never re-entered.
        if let Some(me) = self.me.upgrade() {
            reactor.call_later(0.0, move || me.notify(Failure::new(ConnectionAborted)));
        }
    }

    fn plain_abort_with(&self, reason: Failure) {
        if let Some(r) = self.reactor.upgrade() {
            self.close(&r, reason)
        }
    }

    fn plain_lose_write_connection(&self) {
        if self.closed.get() {
            return;
        }
        self.write_shutdown_requested.set(true);
        self.queue_flush();
    }

    fn plain_get_host(&self) -> Address {
        self.host.clone()
    }

    fn plain_get_peer(&self) -> Address {
        self.peer.clone()
    }

    fn plain_disconnecting(&self) -> bool {
        self.closing.get() != Closing::Open || self.closed.get()
    }

    fn plain_pause_producing(&self) {
        self.reading_paused.set(true);
    }

    fn plain_resume_producing(&self) {
        if self.reading_paused.replace(false) {
            // Data may be waiting already: look on the next turn.
            self.readable.set(true);
            self.run_again();
        }
    }

    fn plain_stop_producing(&self) {
        self.reading_paused.set(true);
        self.plain_lose_connection();
    }

    fn plain_register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        self.producer
            .register(producer, streaming, self.closed.get())?;
        // The producer now does flow control: reading is no longer held back for it.
        self.lift_backpressure(true);
        Ok(())
    }

    fn plain_unregister_producer(&self) {
        self.producer.unregister();
    }

    fn plain_set_write_buffer_limits(&self, high: usize, low: usize) {
        self.buffer.borrow_mut().set_limits(high, low);
        self.producer
            .buffer_drained(&self.buffer, self.closing.get() == Closing::Open);
        let drained = self.buffer.borrow().at_or_below_low();
        self.lift_backpressure(drained);
    }

    fn plain_set_read_backpressure(&self, on: bool) {
        self.read_backpressure.set(on);
        self.lift_backpressure(!on);
    }

    fn plain_buffered(&self) -> usize {
        self.pending() + self.send_queue.len()
    }

    fn plain_tcp(&self) -> Option<TcpExt> {
        S::tcp_ext(&self.me)
    }

    fn plain_unix(&self) -> Option<super::UnixExt> {
        S::unix_ext(&self.me)
    }
}

/// What the protocol's transport does: the clear-text side, or the TLS layer once
/// `start_tls` switched the connection (see [`StreamConnection::start_tls_here`]).
impl<S: StreamSocket> TransportImpl for StreamConnection<S> {
    #[inline]
    fn write(&self, data: &[u8]) {
        if self.tls_on.get() {
            self.tls_write(data);
        } else {
            self.plain_write(data);
        }
    }

    #[inline]
    fn write_sequence(&self, chunks: &[&[u8]]) {
        if self.tls_on.get() {
            self.tls_write_sequence(chunks);
        } else {
            self.plain_write_sequence(chunks);
        }
    }

    #[inline]
    fn write_owned(&self, data: Vec<u8>) {
        if self.tls_on.get() {
            self.tls_write_owned(data);
        } else {
            self.plain_write_owned(data);
        }
    }

    fn lose_connection(&self) {
        match self.secure() {
            None => self.plain_lose_connection(),
            Some(t) => t.lose_connection(),
        }
    }

    fn abort_connection(&self) {
        match self.secure() {
            None => self.plain_abort_connection(),
            Some(t) => t.abort_connection(),
        }
    }

    fn abort_with(&self, reason: Failure) {
        self.plain_abort_with(reason)
    }

    fn lose_write_connection(&self) {
        match self.secure() {
            None => self.plain_lose_write_connection(),
            // TLS has no half-close every peer honours: the layer closes both ways.
            Some(t) => t.lose_write_connection(),
        }
    }

    fn get_host(&self) -> Address {
        self.plain_get_host()
    }

    fn get_peer(&self) -> Address {
        self.plain_get_peer()
    }

    fn disconnecting(&self) -> bool {
        match self.secure() {
            None => self.plain_disconnecting(),
            Some(t) => t.disconnecting() || self.plain_disconnecting(),
        }
    }

    fn pause_producing(&self) {
        self.plain_pause_producing()
    }

    fn resume_producing(&self) {
        self.plain_resume_producing()
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
        match self.secure() {
            None => self.plain_register_producer(producer, streaming),
            // Through the layer's membrane: paused while the handshake holds plaintext too.
            Some(t) => t.register_producer(producer, streaming),
        }
    }

    fn unregister_producer(&self) {
        match self.secure() {
            None => self.plain_unregister_producer(),
            Some(t) => t.unregister_producer(),
        }
    }

    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        self.plain_set_write_buffer_limits(high, low)
    }

    fn set_read_backpressure(&self, on: bool) {
        self.plain_set_read_backpressure(on)
    }

    fn buffered(&self) -> usize {
        match self.secure() {
            None => self.plain_buffered(),
            Some(t) => t.buffered(),
        }
    }

    fn tcp(&self) -> Option<TcpExt> {
        self.plain_tcp()
    }

    fn unix(&self) -> Option<super::UnixExt> {
        self.plain_unix()
    }

    fn tls(&self) -> Option<TlsInfo> {
        self.secure()?.tls()
    }

    fn start_tls(&self, config: TlsConfig, already_received: &[u8]) -> Result<(), TlsError> {
        self.start_tls_here(&config, already_received)
    }

    fn send_file(&self, file: QueuedFile) -> Result<(), QueuedFile> {
        // TLS encrypts in user space: the chunked fallback, through the layer.
        if self.tls_on.get() {
            return Err(file);
        }
        self.plain_send_file(file);
        Ok(())
    }
}

impl<S: StreamSocket> StreamConnection<S> {
    /// The TLS layer's transport once `start_tls` ran; `None` (one flag test) otherwise.
    #[inline]
    fn secure(&self) -> Option<Transport> {
        if !self.tls_on.get() {
            return None;
        }
        self.layer().map(|l| l.transport().clone())
    }

    // The writes of a switched connection, out of line: the plain path stays as small as it
    // was before STARTTLS existed.
    #[cold]
    #[inline(never)]
    fn tls_write(&self, data: &[u8]) {
        if let Some(t) = self.secure() {
            t.write(data);
        }
    }

    #[cold]
    #[inline(never)]
    fn tls_write_sequence(&self, chunks: &[&[u8]]) {
        if let Some(t) = self.secure() {
            t.write_sequence(chunks);
        }
    }

    #[cold]
    #[inline(never)]
    fn tls_write_owned(&self, data: Vec<u8>) {
        if let Some(t) = self.secure() {
            t.write_owned(data);
        }
    }

    #[cold]
    fn layer(&self) -> Option<TlsLayer> {
        self.tls.borrow().clone()
    }

    #[cold]
    #[inline(never)]
    fn tls_received(&self, data: &[u8]) {
        if let Some(layer) = self.layer() {
            layer.data_received(data);
        }
    }

    /// STARTTLS on this connection: from now on the protocol's writes go through a TLS
    /// session whose records are appended to this connection's write buffer (after what the
    /// protocol wrote in clear before), and what is read goes through it before the protocol
    /// sees it. `already_received` is fed to TLS first.
    fn start_tls_here(&self, config: &TlsConfig, already_received: &[u8]) -> Result<(), TlsError> {
        if self.tls_on.get() {
            return Err(TlsError::AlreadyStarted);
        }
        if self.plain_disconnecting() || self.write_shutdown_requested.get() {
            return Err(TlsError::StartTlsClosing);
        }
        let Some(inner) = self.driver() else {
            return Err(TlsError::StartTlsClosing);
        };
        let lower = Transport::new(Rc::new(ClearSide(self.me.clone())));
        let (layer, switch) = TlsLayer::new(inner, lower, self.reactor.clone(), config)?;
        *self.tls.borrow_mut() = Some(layer.clone());
        self.tls_on.set(true);
        layer.begin(switch, already_received);
        Ok(())
    }
}

/// The clear-text side of a connection that switched to TLS: the layer's "real transport".
/// It holds the connection weakly (the connection holds the layer).
struct ClearSide<S: StreamSocket>(Weak<StreamConnection<S>>);

impl<S: StreamSocket> ClearSide<S> {
    fn with<R>(&self, f: impl FnOnce(&StreamConnection<S>) -> R) -> Option<R> {
        self.0.upgrade().map(|c| f(&c))
    }
}

impl<S: StreamSocket> TransportImpl for ClearSide<S> {
    fn write(&self, data: &[u8]) {
        self.with(|c| c.plain_write(data));
    }
    fn write_owned(&self, data: Vec<u8>) {
        self.with(|c| c.plain_write_owned(data));
    }
    fn write_sequence(&self, chunks: &[&[u8]]) {
        self.with(|c| c.plain_write_sequence(chunks));
    }
    fn lose_connection(&self) {
        self.with(|c| c.plain_lose_connection());
    }
    fn abort_connection(&self) {
        self.with(|c| c.plain_abort_connection());
    }
    fn abort_with(&self, reason: Failure) {
        self.with(|c| c.plain_abort_with(reason));
    }
    fn lose_write_connection(&self) {
        self.with(|c| c.plain_lose_write_connection());
    }
    fn get_host(&self) -> Address {
        self.with(|c| c.plain_get_host())
            .unwrap_or(Address::Memory("closed".into()))
    }
    fn get_peer(&self) -> Address {
        self.with(|c| c.plain_get_peer())
            .unwrap_or(Address::Memory("closed".into()))
    }
    fn disconnecting(&self) -> bool {
        self.with(|c| c.plain_disconnecting()).unwrap_or(true)
    }
    fn pause_producing(&self) {
        self.with(|c| c.plain_pause_producing());
    }
    fn resume_producing(&self) {
        self.with(|c| c.plain_resume_producing());
    }
    fn stop_producing(&self) {
        self.with(|c| c.plain_stop_producing());
    }
    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        match self.0.upgrade() {
            Some(c) => c.plain_register_producer(producer, streaming),
            None => {
                producer.stop_producing();
                Ok(())
            }
        }
    }
    fn unregister_producer(&self) {
        self.with(|c| c.plain_unregister_producer());
    }
    fn set_write_buffer_limits(&self, high: usize, low: usize) {
        self.with(|c| c.plain_set_write_buffer_limits(high, low));
    }
    fn set_read_backpressure(&self, on: bool) {
        self.with(|c| c.plain_set_read_backpressure(on));
    }
    fn buffered(&self) -> usize {
        self.with(|c| c.plain_buffered()).unwrap_or(0)
    }
    fn tcp(&self) -> Option<TcpExt> {
        self.with(|c| c.plain_tcp()).flatten()
    }
    fn unix(&self) -> Option<super::UnixExt> {
        self.with(|c| c.plain_unix()).flatten()
    }
}

//! Transports: what moves bytes (Twisted's `ITransport`, `ITCPTransport`, `IConsumer`).
//!
//! A protocol keeps a [`Transport`], a cheap handle, and calls `write`, `lose_connection` and
//! the rest on it from any of its callbacks. Writes are buffered and return at once; nothing a
//! protocol calls on its transport calls back into the protocol synchronously (a close is
//! reported on a later turn), so a protocol is never re-entered.
//!
//! # Layout
//!
//! Every stream transport is built from the same pieces, so each gets the same write path,
//! producer behaviour and closing rules:
//!
//! - `buffer`: the write buffer, a queue of owned chunks sent with vectored writes, and its
//!   water marks;
//! - `producer`: the producer slot (pause above the high-water mark, resume at the low one,
//!   pull producers asked for more when the buffer empties, stopped on close);
//! - `stream`: the connection over any stream socket (read budget, EOF rules, flush,
//!   half-close, read back-pressure, closing);
//! - [`listener`]: the accept loop over any listening socket (batch accept, `EMFILE` back-off)
//!   and [`ListeningPort`](listener::ListeningPort);
//! - [`connector`]: the object-safe [`Connector`](connector::Connector) trait factories see;
//! - `base_connector`: the connection attempt every stream connector shares (state, attempt
//!   ids, timeout, the factory's count), over a transport's `Dial`;
//! - `factory`: the factory as transports see it, type-erased, with its start/stop count;
//! - [`tcp`]: what is TCP's own (binding, name resolution, the TCP connector);
//! - `tcp_ext`: [`TcpExt`], the TCP options of a connection.
//! - `datagram`: the read loop every datagram port shares (read budget, refusals);
//! - [`udp`]: UDP ports ([`listen_udp`](udp::listen_udp)).
//! - [`multicast`]: UDP ports that join multicast groups
//!   ([`listen_multicast`](multicast::listen_multicast)).
//! - [`unix`]: what is UNIX sockets' own (paths, lock files, abstract names, descriptor
//!   passing, peer credentials), and [`UnixExt`].
//!
//! `mod.rs`, `connector.rs`, `tcp_ext.rs`, `buffer.rs` and `producer.rs` are interfaces that
//! use nothing from `protocol/`; `protocol/` depends on them, and the implementations depend
//! on both: no import cycle.
//! - [`sendfile`]: [`Transport::send_file`], `sendfile(2)` on plain sockets and a chunked
//!   producer elsewhere.
//! - [`multicore`]: serving one port from several threads.
//! - [`process`]: child processes, whose pipes are stream connections.

use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;

pub(crate) mod base_connector;
pub(crate) mod buffer;
pub mod connector;
pub(crate) mod datagram;
pub(crate) mod factory;
pub mod listener;
pub mod multicast;
pub mod multicore;
pub mod process;
pub(crate) mod producer;
pub mod sendfile;
pub(crate) mod stream;
pub mod tcp;
mod tcp_ext;
pub mod udp;
pub mod unix;

pub use tcp_ext::TcpExt;
pub use unix::UnixExt;

/// The address of one end of a connection (Twisted's `IAddress` implementations).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A TCP endpoint, IPv4 or IPv6.
    Tcp(SocketAddr),
    /// A host name not resolved yet and a port (a connector's destination).
    Name {
        /// The host as given.
        host: String,
        /// The port.
        port: u16,
    },
    /// An in-memory endpoint (tests, loopback pumps), with a name.
    Memory(String),
    /// One pipe of a child process: its pid and the child's descriptor number.
    Process {
        /// The child's pid.
        pid: u32,
        /// The child's descriptor.
        fd: i32,
    },
    /// A UNIX socket: its path (a leading NUL: an abstract name), or `None` for an unbound
    /// client socket (Twisted's `UNIXAddress`).
    Unix(Option<std::path::PathBuf>),
    /// A UDP endpoint, IPv4 or IPv6 (Twisted's `IPv4Address("UDP", ...)`).
    Udp(SocketAddr),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "tcp:{a}"),
            Address::Udp(a) => write!(f, "udp:{a}"),
            Address::Name { host, port } => write!(f, "tcp:{host}:{port}"),
            Address::Memory(n) => write!(f, "memory:{n}"),
            Address::Process { pid, fd } => write!(f, "process:{pid}:{fd}"),
            // An abstract name shows its leading NUL as `@`, as `ss` and `netstat` do.
            Address::Unix(Some(p)) => match p.to_string_lossy().strip_prefix('\0') {
                Some(name) => write!(f, "unix:@{name}"),
                None => write!(f, "unix:{}", p.display()),
            },
            Address::Unix(None) => write!(f, "unix:"),
        }
    }
}

impl Address {
    /// The socket address, for TCP and UDP addresses.
    ///
    /// ```
    /// use twistor::transport::Address;
    /// let a = Address::Tcp("127.0.0.1:80".parse().unwrap());
    /// assert_eq!(a.socket_addr().unwrap().port(), 80);
    /// ```
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Address::Tcp(a) | Address::Udp(a) => Some(*a),
            _ => None,
        }
    }
}

/// Something that produces data for a consumer (Twisted's `IPushProducer`/`IPullProducer`):
/// a transport pauses and resumes a streaming producer as its write buffer fills and drains,
/// and asks a non-streaming (pull) producer for more each time the buffer empties.
#[doc(alias = "IPushProducer")]
pub trait Producer {
    /// Stop producing until `resume_producing` (push producers).
    #[doc(alias = "pauseProducing")]
    fn pause_producing(&self);
    /// Produce again (push producers), or produce one more chunk (pull producers).
    #[doc(alias = "resumeProducing")]
    fn resume_producing(&self);
    /// Stop for good: the consumer is going away.
    #[doc(alias = "stopProducing")]
    fn stop_producing(&self);
}

/// Why a producer could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerError {
    /// Twisted raises `RuntimeError` here: unregister the first one before registering another.
    #[error("a producer is already registered on this transport")]
    AlreadyRegistered,
    /// Pausing or resuming reading after `stop_producing` (Twisted's `RuntimeError`).
    #[error("cannot pause or resume a stopped producer")]
    Stopped,
    /// Pausing or resuming reading after `lose_connection` (Twisted's `RuntimeError`).
    #[error("cannot pause or resume producing after lose_connection")]
    Disconnecting,
}

/// What a concrete transport implements; users hold a [`Transport`] handle.
#[doc(alias = "ITransport")]
pub trait TransportImpl {
    /// Queues bytes to send; returns at once.
    fn write(&self, data: &[u8]);
    /// Queues an owned buffer (no copy where the transport can keep it).
    fn write_owned(&self, data: Vec<u8>) {
        self.write(&data)
    }
    /// Queues several chunks (one vectored send when possible).
    #[doc(alias = "writeSequence")]
    fn write_sequence(&self, chunks: &[&[u8]]) {
        for c in chunks {
            self.write(c);
        }
    }
    /// Stops reading now, sends everything queued, then closes.
    #[doc(alias = "loseConnection")]
    fn lose_connection(&self);
    /// Drops everything queued and closes now.
    #[doc(alias = "abortConnection")]
    fn abort_connection(&self);
    /// Closes now with `reason` as the protocol's `connection_lost` reason (a protocol that
    /// panicked).
    fn abort_with(&self, _reason: crate::Failure) {
        self.abort_connection()
    }
    /// Sends everything queued, then shuts down the write side (half-close).
    #[doc(alias = "loseWriteConnection")]
    fn lose_write_connection(&self);
    /// The local address.
    #[doc(alias = "getHost")]
    fn get_host(&self) -> Address;
    /// The remote address.
    #[doc(alias = "getPeer")]
    fn get_peer(&self) -> Address;
    /// True once `lose_connection` (or `abort_connection`) was called.
    fn disconnecting(&self) -> bool;
    /// Stops delivering received data (reading) until `resume_producing`.
    #[doc(alias = "pauseProducing")]
    fn pause_producing(&self);
    /// Delivers received data again.
    #[doc(alias = "resumeProducing")]
    fn resume_producing(&self);
    /// Stops reading for good and closes (Twisted's `stopProducing` on a transport).
    #[doc(alias = "stopProducing")]
    fn stop_producing(&self);
    /// `pause_producing`, or why it is refused (a stopped or closing transport refuses where
    /// Twisted raises). The default accepts.
    #[doc(alias = "pauseProducing")]
    fn try_pause_producing(&self) -> Result<(), ProducerError> {
        self.pause_producing();
        Ok(())
    }
    /// `resume_producing`, or why it is refused (see `try_pause_producing`).
    #[doc(alias = "resumeProducing")]
    fn try_resume_producing(&self) -> Result<(), ProducerError> {
        self.resume_producing();
        Ok(())
    }
    /// Registers a producer of data for this transport (the consumer side).
    #[doc(alias = "registerProducer")]
    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError>;
    /// Unregisters the producer.
    #[doc(alias = "unregisterProducer")]
    fn unregister_producer(&self);
    /// Sets the write buffer's high and low water marks (streaming producers are paused above
    /// `high` and resumed at or below `low`). Ignored by transports without a write buffer.
    fn set_write_buffer_limits(&self, _high: usize, _low: usize) {}
    /// Stops reading while the write buffer is above its high-water mark and no producer is
    /// registered (`true`, the default of stream transports), or reads on as Twisted does
    /// (`false`). Ignored by transports without a write buffer.
    fn set_read_backpressure(&self, _on: bool) {}
    /// Bytes written but not sent yet.
    fn buffered(&self) -> usize {
        0
    }
    /// The TCP options, for TCP transports.
    fn tcp(&self) -> Option<TcpExt> {
        None
    }
    /// The UNIX-socket side (credentials, descriptor passing), for UNIX transports.
    fn unix(&self) -> Option<UnixExt> {
        None
    }
    /// Queues `file` to be sent without a copy through user space (see
    /// [`Transport::send_file`]); a transport that cannot hands it back, and the file goes
    /// through the normal write path instead.
    fn send_file(&self, file: sendfile::QueuedFile) -> Result<(), sendfile::QueuedFile> {
        Err(file)
    }
    /// What TLS negotiated, for transports that run TLS (or may start it).
    fn tls(&self) -> Option<crate::tls::TlsInfo> {
        None
    }
    /// Starts TLS on this live connection (STARTTLS; see [`Transport::start_tls`]);
    /// transports that cannot refuse with `StartTlsUnsupported`.
    #[doc(alias = "startTLS")]
    fn start_tls(
        &self,
        _config: crate::tls::TlsConfig,
        _already_received: &[u8],
    ) -> Result<(), crate::tls::TlsError> {
        Err(crate::tls::TlsError::StartTlsUnsupported)
    }
}

/// A protocol's handle on its connection: cheap to clone, usable from any callback.
///
/// ```
/// use twistor::testing::StringTransport;
/// use twistor::transport::Transport;
///
/// let st = StringTransport::new();
/// let t: Transport = st.transport();
/// t.write(b"hello ");
/// t.write_sequence(&[b"wor", b"ld"]);
/// assert_eq!(st.value(), b"hello world");
/// ```
#[doc(alias = "ITransport")]
#[derive(Clone)]
pub struct Transport(Rc<dyn TransportImpl>);

impl Transport {
    /// Wraps a transport implementation.
    pub fn new(inner: Rc<dyn TransportImpl>) -> Transport {
        Transport(inner)
    }

    /// Queues bytes to send; returns at once. Writes made during one callback are sent
    /// together.
    pub fn write(&self, data: &[u8]) {
        self.0.write(data)
    }

    /// Queues several chunks.
    #[doc(alias = "writeSequence")]
    pub fn write_sequence(&self, chunks: &[&[u8]]) {
        self.0.write_sequence(chunks)
    }

    /// Stops reading now, sends everything written so far, then closes; the protocol's
    /// `connection_lost` gets [`ConnectionDone`](crate::error::ConnectionDone).
    #[doc(alias = "loseConnection")]
    pub fn lose_connection(&self) {
        self.0.lose_connection()
    }

    /// Drops unsent data and closes now ([`ConnectionAborted`](crate::error::ConnectionAborted)).
    #[doc(alias = "abortConnection")]
    pub fn abort_connection(&self) {
        self.0.abort_connection()
    }

    /// Closes now, giving `reason` to the protocol's `connection_lost` (used when a protocol
    /// callback panics).
    pub fn abort_with(&self, reason: crate::Failure) {
        self.0.abort_with(reason)
    }

    /// Sends everything written so far, then shuts down the write side only.
    #[doc(alias = "loseWriteConnection")]
    pub fn lose_write_connection(&self) {
        self.0.lose_write_connection()
    }

    /// The local address.
    #[doc(alias = "getHost")]
    pub fn get_host(&self) -> Address {
        self.0.get_host()
    }

    /// The remote address.
    #[doc(alias = "getPeer")]
    pub fn get_peer(&self) -> Address {
        self.0.get_peer()
    }

    /// True once `lose_connection` or `abort_connection` was called.
    pub fn disconnecting(&self) -> bool {
        self.0.disconnecting()
    }

    /// Stops delivering received data until `resume_producing`. A refusal (see
    /// [`try_pause_producing`](Self::try_pause_producing)) is logged.
    #[doc(alias = "pauseProducing")]
    pub fn pause_producing(&self) {
        if let Err(e) = self.0.try_pause_producing() {
            log::warn!(target: "twistor::transport", "pause_producing refused: {e}");
        }
    }

    /// Delivers received data again. A refusal is logged.
    #[doc(alias = "resumeProducing")]
    pub fn resume_producing(&self) {
        if let Err(e) = self.0.try_resume_producing() {
            log::warn!(target: "twistor::transport", "resume_producing refused: {e}");
        }
    }

    /// Pauses reading, or says why not: Twisted's `StringTransport` refuses after
    /// `stop_producing` or `lose_connection`, leaving its state as it was.
    ///
    /// ```
    /// use twistor::testing::{ReadState, StringTransport};
    /// use twistor::transport::ProducerError;
    ///
    /// let st = StringTransport::new();
    /// let t = st.transport();
    /// t.stop_producing();
    /// assert_eq!(t.try_pause_producing(), Err(ProducerError::Stopped));
    /// assert_eq!(st.read_state(), ReadState::Stopped);
    /// ```
    #[doc(alias = "pauseProducing")]
    pub fn try_pause_producing(&self) -> Result<(), ProducerError> {
        self.0.try_pause_producing()
    }

    /// Resumes reading, or says why not (see [`try_pause_producing`](Self::try_pause_producing)).
    #[doc(alias = "resumeProducing")]
    pub fn try_resume_producing(&self) -> Result<(), ProducerError> {
        self.0.try_resume_producing()
    }

    /// Stops reading for good and closes.
    #[doc(alias = "stopProducing")]
    pub fn stop_producing(&self) {
        self.0.stop_producing()
    }

    /// Registers a producer: a streaming (push) producer is paused while the write buffer is
    /// above its high-water mark and resumed when it drains below the low-water mark; a pull
    /// producer is asked for more each time the buffer empties.
    #[doc(alias = "registerProducer")]
    pub fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        self.0.register_producer(producer, streaming)
    }

    /// Unregisters the producer.
    #[doc(alias = "unregisterProducer")]
    pub fn unregister_producer(&self) {
        self.0.unregister_producer()
    }

    /// Sets the write buffer's water marks (defaults 64 KiB / 16 KiB, asyncio's): a streaming
    /// producer is paused above `high` and resumed at or below `low` (`low` is capped at
    /// `high`); with no producer, reading stops above `high` and resumes at `low` (see
    /// [`set_read_backpressure`](Self::set_read_backpressure)).
    ///
    /// ```
    /// use twistor::testing::StringTransport;
    /// // Ignored by transports without a write buffer.
    /// StringTransport::new().transport().set_write_buffer_limits(1 << 20, 1 << 18);
    /// ```
    pub fn set_write_buffer_limits(&self, high: usize, low: usize) {
        self.0.set_write_buffer_limits(high, low.min(high))
    }

    /// Stops reading while the write buffer is above its high-water mark (the default for a
    /// connection with no producer), or not (`false`: Twisted's behaviour, reading on while
    /// the peer does not read). With it on, an echo to a peer that never reads holds at most
    /// the high-water mark plus one read chunk.
    ///
    /// ```
    /// use twistor::testing::StringTransport;
    /// // No-op on transports without a write buffer.
    /// StringTransport::new().transport().set_read_backpressure(false);
    /// ```
    pub fn set_read_backpressure(&self, on: bool) {
        self.0.set_read_backpressure(on)
    }

    /// Queues an owned buffer: a large one is sent without being copied.
    ///
    /// ```
    /// use twistor::testing::StringTransport;
    /// let st = StringTransport::new();
    /// st.transport().write_owned(vec![b'x'; 100_000]);
    /// assert_eq!(st.value().len(), 100_000);
    /// ```
    pub fn write_owned(&self, data: Vec<u8>) {
        self.0.write_owned(data)
    }

    /// Bytes written but not sent yet (0 for transports that send at once); the bytes of a
    /// file queued with [`send_file`](Self::send_file) are not counted: they are not in memory.
    pub fn buffered(&self) -> usize {
        self.0.buffered()
    }

    /// The TCP options of a TCP connection (`TCP_NODELAY`, `SO_KEEPALIVE`), `None` for other
    /// transports.
    pub fn tcp(&self) -> Option<TcpExt> {
        self.0.tcp()
    }

    /// The UNIX-socket side of a UNIX connection (the peer's credentials, descriptor
    /// passing), `None` for other transports.
    pub fn unix(&self) -> Option<UnixExt> {
        self.0.unix()
    }

    /// What TLS negotiated on this connection (peer certificates, ALPN protocol, version),
    /// `None` for a connection without TLS. Before the handshake completes it says so
    /// (`handshake_complete` is false).
    ///
    /// ```
    /// use twistor::testing::StringTransport;
    /// assert!(StringTransport::new().transport().tls().is_none());
    /// ```
    pub fn tls(&self) -> Option<crate::tls::TlsInfo> {
        self.0.tls()
    }

    /// Starts TLS on this live connection (STARTTLS; Twisted's `startTLS`), in the role
    /// `config` gives (client or server). Every stream connection can switch: TCP and UNIX,
    /// accepted or connected, from a plain factory; so can one made through
    /// [`TlsFactory::start_tls_capable`](crate::tls::TlsFactory::start_tls_capable) or
    /// [`TlsProtocol::plain`](crate::tls::TlsProtocol::plain).
    ///
    /// * Bytes written before the call leave in clear (even if not sent yet), bytes written
    ///   after it are encrypted; before the handshake completes they wait for it.
    /// * Bytes read after the call go through TLS before the protocol sees them.
    /// * `already_received` is what the protocol received from the peer but has not consumed
    ///   yet: a connection hands each read to the protocol whole, so when the peer pipelined
    ///   its first TLS bytes behind the command (in the same read), they sit in the
    ///   protocol's own buffer (a line receiver's, after the `STARTTLS` line). Pass them here:
    ///   they are fed to TLS first, never taken as clear text.
    /// * Once switched, `lose_connection` sends what was written, then close_notify, then
    ///   closes; `lose_write_connection` does the same (TLS has no half-close every peer
    ///   honours); producers and water marks keep working.
    ///
    /// Errors: [`TlsError::AlreadyStarted`](crate::tls::TlsError::AlreadyStarted) for a
    /// second call, [`TlsError::StartTlsClosing`](crate::tls::TlsError::StartTlsClosing)
    /// after `lose_connection` (or an abort, a half-close),
    /// [`TlsError::StartTlsUnsupported`](crate::tls::TlsError::StartTlsUnsupported) on a
    /// transport with no stream under it (the in-memory test transports), or the
    /// configuration's error (an invalid host name).
    ///
    /// ```
    /// use twistor::testing::StringTransport;
    /// use twistor::tls::{TlsConfig, TlsError, options_for_client_tls};
    ///
    /// let t = StringTransport::new().transport();
    /// let config = TlsConfig::from(options_for_client_tls("example.com"));
    /// assert!(matches!(t.start_tls(config, b""), Err(TlsError::StartTlsUnsupported)));
    /// ```
    #[doc(alias = "startTLS")]
    pub fn start_tls(
        &self,
        config: crate::tls::TlsConfig,
        already_received: &[u8],
    ) -> Result<(), crate::tls::TlsError> {
        self.0.start_tls(config, already_received)
    }

    /// Sends the bytes `offset..offset + len` of `file`, after everything written before
    /// and before everything written after (see [`sendfile`] for the rules): with
    /// `sendfile(2)` and no copy through user space on a plain TCP or UNIX connection, in
    /// 64 KiB chunks through the normal write path elsewhere (TLS, the test transports). The
    /// Deferred fires once the last byte was handed to the transport, or fails: a file that
    /// ends early or cannot be read (the connection stays open: the caller decides, an HTTP
    /// server closes it), a connection that closes first.
    ///
    /// ```
    /// use std::io::Write;
    /// use twistor::testing::StringTransport;
    ///
    /// let path = std::env::temp_dir().join(format!("twistor-doc-sf-{}", std::process::id()));
    /// std::fs::File::create(&path).unwrap().write_all(b"0123456789").unwrap();
    /// let st = StringTransport::new();
    /// let d = st.transport().send_file(std::fs::File::open(&path).unwrap(), 2, 3);
    /// while let Some((p, _)) = st.producer() {
    ///     p.resume_producing();
    /// }
    /// assert_eq!(st.value(), b"234");
    /// assert!(d.called());
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn send_file(&self, file: std::fs::File, offset: u64, len: u64) -> crate::Deferred<()> {
        let (queued, d) = sendfile::QueuedFile::new(file, offset, len);
        if let Err(queued) = self.0.send_file(queued) {
            sendfile::FileProducer::start(self, queued);
        }
        d
    }

    /// True if both handles are the same transport.
    pub fn ptr_eq(&self, other: &Transport) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<Transport {} -> {}>", self.get_host(), self.get_peer())
    }
}

//! The errors of connections and ports (Twisted's `twisted.internet.error`).
//!
//! Twisted's hierarchy (`ConnectionClosed` > `ConnectionDone` / `ConnectionLost` >
//! `ConnectionAborted`) is kept as separate types plus the helper predicates below, since a
//! [`Failure`] checks exact types.

use std::io;

use crate::Failure;

/// The connection was closed cleanly (this side's `lose_connection` flushed, or the peer sent
/// EOF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("Connection was closed cleanly.")]
pub struct ConnectionDone;

/// The connection was lost in a non-clean fashion (reset, socket error, reactor shutdown).
/// A socket error is kept as the [`source`](std::error::Error::source), with its kind and
/// errno.
///
/// ```
/// use std::error::Error;
/// use twistor::error::ConnectionLost;
/// let e = ConnectionLost::from_io(std::io::Error::from_raw_os_error(104));
/// assert_eq!(e.errno(), Some(104));
/// assert!(e.source().is_some());
/// assert!(ConnectionLost::new().to_string().contains("non-clean"));
/// ```
#[derive(Debug, Default, thiserror::Error)]
#[error("Connection to the other side was lost in a non-clean fashion{}", .detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
#[non_exhaustive]
pub struct ConnectionLost {
    /// What happened, if known.
    pub detail: Option<String>,
    /// The socket error, if one caused it.
    #[source]
    pub source: Option<io::Error>,
}

impl ConnectionLost {
    /// Lost, with no detail.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lost, for the reason `detail`.
    pub fn because(detail: impl Into<String>) -> Self {
        ConnectionLost {
            detail: Some(detail.into()),
            source: None,
        }
    }

    /// Lost because of the socket error `e` (kept as the source).
    pub fn from_io(e: io::Error) -> Self {
        ConnectionLost {
            detail: Some(e.to_string()),
            source: Some(e),
        }
    }

    /// The OS error number, if a socket error caused it.
    pub fn errno(&self) -> Option<i32> {
        self.source.as_ref().and_then(io::Error::raw_os_error)
    }
}

/// This side called `abort_connection` (is-a [`ConnectionLost`]: see [`is_connection_lost`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("Connection was aborted locally.")]
pub struct ConnectionAborted;

/// The peer refused the connection; the OS error (`ECONNREFUSED`) is the source.
///
/// ```
/// use twistor::error::ConnectionRefusedError;
/// let e = ConnectionRefusedError::from(std::io::Error::from_raw_os_error(111));
/// assert_eq!(e.errno(), Some(111));
/// assert_eq!(e.source.kind(), std::io::ErrorKind::ConnectionRefused);
/// ```
#[derive(Debug, thiserror::Error)]
#[error("Connection was refused by other side: {source}")]
#[non_exhaustive]
pub struct ConnectionRefusedError {
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl From<io::Error> for ConnectionRefusedError {
    fn from(source: io::Error) -> Self {
        ConnectionRefusedError { source }
    }
}

impl ConnectionRefusedError {
    /// The OS error number (`ECONNREFUSED`).
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// A connection attempt took longer than its timeout (Twisted's `error.TimeoutError`, not
/// [`crate::defer::TimeoutError`]).
#[doc(alias = "TimeoutError")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("User timeout caused connection failure: {0}")]
pub struct ConnectTimeoutError(pub String);

/// A host name could not be resolved.
#[doc(alias = "DNSLookupError")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DNS lookup failed: {0}")]
pub struct DnsLookupError(pub String);

/// Any other failure to connect; the OS error is the source.
///
/// ```
/// use twistor::error::ConnectError;
/// let e = ConnectError::from(std::io::Error::from_raw_os_error(101));
/// assert_eq!(e.errno(), Some(101));
/// ```
#[derive(Debug, thiserror::Error)]
#[error("An error occurred while connecting: {source}")]
#[non_exhaustive]
pub struct ConnectError {
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl From<io::Error> for ConnectError {
    fn from(source: io::Error) -> Self {
        ConnectError { source }
    }
}

impl ConnectError {
    /// The OS error number, if any.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// A timeout that is not a number of seconds: NaN, negative or infinite.
///
/// ```
/// use twistor::transport::tcp::ConnectOptions;
/// let e = ConnectOptions::default().timeout_secs(-2.0).unwrap_err();
/// assert!(e.to_string().contains("-2"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error(
    "invalid timeout {0} s: a timeout must be a finite, non-negative number of seconds (NaN is not)"
)]
pub struct InvalidTimeoutError(pub f64);

/// `stop_connecting` was called (the attempt was cancelled by the user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("User aborted connection.")]
pub struct UserError;

/// `stop_connecting` on a connector that is not connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("The Connector was not connecting when it was asked to stop connecting.")]
pub struct NotConnectingError;

/// A port could not be listened on; the OS error is the source.
#[derive(Debug, thiserror::Error)]
#[error("Couldn't listen on {interface}:{port}: {source}.")]
pub struct CannotListenError {
    /// The interface asked for.
    pub interface: String,
    /// The port asked for.
    pub port: u16,
    /// Why.
    #[source]
    pub source: io::Error,
}

/// True for a clean close ([`ConnectionDone`], and a child's
/// [`ProcessDone`](crate::transport::process::ProcessDone)).
///
/// ```
/// use twistor::{Failure, error::{is_connection_done, ConnectionDone}};
/// assert!(is_connection_done(&Failure::new(ConnectionDone)));
/// ```
pub fn is_connection_done(f: &Failure) -> bool {
    f.is::<ConnectionDone>() || f.is::<crate::transport::process::ProcessDone>()
}

/// True for [`ConnectionLost`] and its subclasses [`ConnectionAborted`] and a child's
/// [`ProcessTerminated`](crate::transport::process::ProcessTerminated).
///
/// ```
/// use twistor::{Failure, error::{is_connection_lost, ConnectionAborted}};
/// assert!(is_connection_lost(&Failure::new(ConnectionAborted)));
/// ```
pub fn is_connection_lost(f: &Failure) -> bool {
    f.is::<ConnectionLost>()
        || f.is::<ConnectionAborted>()
        || f.is::<crate::transport::process::ProcessTerminated>()
}

/// Maps an I/O error of an established connection to Twisted's reason.
pub(crate) fn lost_from_io(e: io::Error) -> Failure {
    Failure::new(ConnectionLost::from_io(e))
}

/// Maps an error of a connection attempt to Twisted's connect errors.
pub(crate) fn connect_error_from_io(e: io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Failure::new(ConnectionRefusedError::from(e)),
        io::ErrorKind::TimedOut => Failure::new(ConnectTimeoutError(e.to_string())),
        _ => Failure::new(ConnectError::from(e)),
    }
}

/// An address a datagram port cannot use: not an IP literal, the wrong family, or missing
/// (Twisted's `InvalidAddressError`).
///
/// ```
/// use twistor::error::InvalidAddressError;
/// let e = InvalidAddressError { address: "localhost".into(), message: "not an IP literal".into() };
/// assert_eq!(e.to_string(), "Invalid address localhost: not an IP literal");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid address {address}: {message}")]
pub struct InvalidAddressError {
    /// The address as given.
    pub address: String,
    /// What is wrong with it.
    pub message: String,
}

/// A datagram longer than the socket can send (`EMSGSIZE`; Twisted's `MessageLengthError`).
///
/// ```
/// use twistor::error::MessageLengthError;
/// assert_eq!(MessageLengthError.to_string(), "Message is too long to send");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Message is too long to send")]
pub struct MessageLengthError;

/// Why a write or `connect` on a UDP port failed.
///
/// ```
/// use twistor::error::UdpError;
/// assert_eq!(UdpError::AlreadyConnected.to_string(), "already connected");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UdpError {
    /// The address is not an IP literal, is of the other family, is missing in unconnected
    /// mode, or differs from the connected one.
    #[error(transparent)]
    InvalidAddress(#[from] InvalidAddressError),
    /// The datagram is too long to send.
    #[error(transparent)]
    MessageLength(#[from] MessageLengthError),
    /// `connect` on a port already connected (Twisted's `RuntimeError`).
    #[error("already connected")]
    AlreadyConnected,
    /// The port stopped listening.
    #[error("the port is not listening")]
    NotListening,
    /// Any other error of the socket.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Joining or leaving a multicast group failed: the group is not a multicast address, the
/// interface is not one of this host's, or the kernel refused (Twisted's
/// `MulticastJoinError`). The OS error, or why the address was refused, is the source.
///
/// ```
/// use twistor::error::MulticastJoinError;
/// let e = MulticastJoinError {
///     group: "127.0.0.1".into(),
///     interface: "".into(),
///     source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a multicast address"),
/// };
/// assert!(e.to_string().contains("127.0.0.1"));
/// ```
#[derive(Debug, thiserror::Error)]
#[error("Couldn't join or leave multicast group {group} on interface {interface:?}: {source}")]
pub struct MulticastJoinError {
    /// The group asked for.
    pub group: String,
    /// The interface asked for (`""`: the kernel's choice).
    pub interface: String,
    /// Why.
    #[source]
    pub source: io::Error,
}

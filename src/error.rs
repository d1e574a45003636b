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
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
#[error("Connection to the other side was lost in a non-clean fashion{}", .0.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct ConnectionLost(pub Option<String>);

/// This side called `abort_connection` (is-a [`ConnectionLost`]: see [`is_connection_lost`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("Connection was aborted locally.")]
pub struct ConnectionAborted;

/// The peer refused the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Connection was refused by other side: {0}")]
pub struct ConnectionRefusedError(pub String);

/// A connection attempt took longer than its timeout (Twisted's `error.TimeoutError`, not
/// [`crate::defer::TimeoutError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("User timeout caused connection failure: {0}")]
pub struct ConnectTimeoutError(pub String);

/// A host name could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DNS lookup failed: {0}")]
pub struct DnsLookupError(pub String);

/// Any other failure to connect (the OS error's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("An error occurred while connecting: {0}")]
pub struct ConnectError(pub String);

/// `stop_connecting` was called (the attempt was cancelled by the user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("User aborted connection.")]
pub struct UserError;

/// `stop_connecting` on a connector that is not connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("The Connector was not connecting when it was asked to stop connecting.")]
pub struct NotConnectingError;

/// A port could not be listened on.
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

/// True for a clean close ([`ConnectionDone`]).
///
/// ```
/// use twistor::{Failure, error::{is_connection_done, ConnectionDone}};
/// assert!(is_connection_done(&Failure::new(ConnectionDone)));
/// ```
pub fn is_connection_done(f: &Failure) -> bool {
    f.is::<ConnectionDone>()
}

/// True for [`ConnectionLost`] and its subclass [`ConnectionAborted`].
///
/// ```
/// use twistor::{Failure, error::{is_connection_lost, ConnectionAborted}};
/// assert!(is_connection_lost(&Failure::new(ConnectionAborted)));
/// ```
pub fn is_connection_lost(f: &Failure) -> bool {
    f.is::<ConnectionLost>() || f.is::<ConnectionAborted>()
}

/// Maps an I/O error of an established connection to Twisted's reason.
pub(crate) fn lost_from_io(e: &io::Error) -> Failure {
    Failure::new(ConnectionLost(Some(e.to_string())))
}

/// Maps an error of a connection attempt to Twisted's connect errors.
pub(crate) fn connect_error_from_io(e: &io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Failure::new(ConnectionRefusedError(e.to_string())),
        io::ErrorKind::TimedOut => Failure::new(ConnectTimeoutError(e.to_string())),
        _ => Failure::new(ConnectError(e.to_string())),
    }
}

//! What can be wrong with an endpoint description, or with an endpoint's attempt.

use std::fmt;

use crate::transport::Address;

/// A bad endpoint description: the description and what is wrong with which part.
///
/// ```
/// use twistor::endpoints::server_from_string;
///
/// let e = server_from_string("tcp:abc").unwrap_err();
/// assert_eq!(e.to_string(), "tcp:abc: port 'abc' is not a number");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointError {
    /// The description as given.
    pub description: String,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl EndpointError {
    pub(crate) fn new(description: &str, kind: ErrorKind) -> EndpointError {
        EndpointError {
            description: description.to_string(),
            kind,
        }
    }
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.description, self.kind)
    }
}

impl std::error::Error for EndpointError {}

/// What is wrong with a description (the part, and why).
///
/// ```
/// use twistor::endpoints::{client_from_string, ErrorKind};
///
/// let e = client_from_string("tcp:host=h:port=1:colour=red").unwrap_err();
/// assert_eq!(e.kind, ErrorKind::UnknownKeyword { kind: "tcp".into(), keyword: "colour".into() });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The type (first part) is not one this side knows.
    UnknownType(String),
    /// A keyword the type does not take.
    UnknownKeyword {
        /// The endpoint type.
        kind: String,
        /// The keyword.
        keyword: String,
    },
    /// A keyword given twice.
    DuplicateKeyword(String),
    /// An argument given both by position and by keyword.
    GivenTwice(String),
    /// More positional arguments than the type takes.
    TooManyArguments {
        /// The endpoint type.
        kind: String,
        /// The first argument too many.
        extra: String,
    },
    /// A required argument is missing.
    Missing {
        /// The endpoint type.
        kind: String,
        /// The argument.
        part: String,
    },
    /// An argument's value is not valid.
    BadValue {
        /// The argument.
        part: String,
        /// Its value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// The description ends with a lone backslash.
    TrailingBackslash,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::UnknownType(t) => write!(f, "unknown endpoint type '{t}'"),
            ErrorKind::UnknownKeyword { kind, keyword } => {
                write!(f, "unknown keyword '{keyword}' for {kind}")
            }
            ErrorKind::DuplicateKeyword(k) => write!(f, "keyword '{k}' is given twice"),
            ErrorKind::GivenTwice(k) => {
                write!(f, "'{k}' is given both by position and as a keyword")
            }
            ErrorKind::TooManyArguments { kind, extra } => {
                write!(f, "too many arguments for {kind} (from '{extra}' on)")
            }
            ErrorKind::Missing { kind, part } => write!(f, "{kind} needs a {part}"),
            ErrorKind::BadValue {
                part,
                value,
                reason,
            } => write!(f, "{part} '{value}' {reason}"),
            ErrorKind::TrailingBackslash => {
                write!(f, "ends with a lone backslash (escape it as '\\\\')")
            }
        }
    }
}

/// A client endpoint's attempt was cancelled before it connected (Twisted's
/// `ConnectingCancelledError`); `address` is where it was connecting to.
///
/// ```
/// use twistor::endpoints::ConnectingCancelledError;
/// use twistor::transport::Address;
///
/// let e = ConnectingCancelledError { address: Address::Name { host: "h".into(), port: 1 } };
/// assert!(e.to_string().contains("cancelled"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connecting to {address} was cancelled")]
pub struct ConnectingCancelledError {
    /// Where it was connecting to.
    pub address: Address,
}

/// The factory built no protocol for a connection a client endpoint made (Twisted's
/// `NoProtocol`).
///
/// ```
/// assert!(twistor::endpoints::NoProtocol.to_string().contains("no protocol"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the factory built no protocol for the connection")]
pub struct NoProtocol;

/// A server endpoint that listens once was asked to listen again (Twisted's
/// `AlreadyListened`): an inherited socket can be adopted only once.
///
/// ```
/// assert!(twistor::endpoints::AlreadyListened.to_string().contains("once"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this endpoint listens only once: its socket was adopted already")]
pub struct AlreadyListened;

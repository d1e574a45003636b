//! The client's failure types (Twisted's `twisted.web._newclient` exceptions).
//!
//! The wrappers ([`ResponseFailed`], [`ResponseNeverReceived`], [`RequestTransmissionFailed`],
//! [`RequestGenerationFailed`]) carry the failures that caused them in `reasons`, as Twisted's
//! do; the interesting one is usually `reasons[0]`. In Twisted `ResponseNeverReceived` is a
//! subclass of `ResponseFailed`, so trapping `ResponseFailed` catches both; here they are
//! distinct types, and code that means "the response did not arrive whole" checks for both.

use std::fmt;

use crate::Failure;

fn join(reasons: &[Failure]) -> String {
    reasons
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

macro_rules! wrapper {
    ($(#[$doc:meta])* $name:ident, $what:literal $(, $(#[$fdoc:meta])* $field:ident: $ty:ty)?) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            /// What caused it.
            pub reasons: Vec<Failure>,
            $($(#[$fdoc])* pub $field: Option<$ty>,)?
        }

        impl $name {
            /// Wraps one cause.
            pub fn new(reason: Failure) -> Self {
                $name { reasons: vec![reason], $($field: None)? }
            }

            /// Whether any cause is an `E`.
            pub fn has<E: std::error::Error + 'static>(&self) -> bool {
                self.reasons.iter().any(|r| r.is::<E>())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).field("reasons", &self.reasons).finish()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($what, ": {}"), join(&self.reasons))
            }
        }

        impl std::error::Error for $name {}
    };
}

wrapper!(
    /// Some of the response arrived, but it was incomplete or could not be parsed.
    ///
    /// ```
    /// use twistor::web::client::error::{ResponseFailed, DataLoss};
    /// let e = ResponseFailed::new(twistor::Failure::new(DataLoss));
    /// assert!(e.has::<DataLoss>());
    /// assert!(e.to_string().starts_with("the response failed"));
    /// assert!(e.response.is_none());
    /// ```
    ResponseFailed,
    "the response failed",
    /// The response that could not be used, when there is one (a redirect the redirect
    /// agent does not follow: Twisted's `ResponseFailed.response`).
    response: Box<crate::web::client::Response>
);

wrapper!(
    /// The connection ended (or the request was cancelled) before any byte of the response
    /// arrived.
    ///
    /// ```
    /// use twistor::web::client::error::ResponseNeverReceived;
    /// let e = ResponseNeverReceived::new(twistor::Failure::new(twistor::error::ConnectionDone));
    /// assert!(e.has::<twistor::error::ConnectionDone>());
    /// ```
    ResponseNeverReceived,
    "no response was received"
);

wrapper!(
    /// The connection was lost while the request was still being written.
    ///
    /// ```
    /// use twistor::web::client::error::RequestTransmissionFailed;
    /// let e = RequestTransmissionFailed::new(twistor::Failure::msg("reset"));
    /// assert_eq!(e.reasons.len(), 1);
    /// ```
    RequestTransmissionFailed,
    "the request could not be sent"
);

wrapper!(
    /// Building or writing the request failed here (bad headers, the body producer failed or
    /// wrote a length other than the one it declared).
    ///
    /// ```
    /// use twistor::web::client::error::{RequestGenerationFailed, WrongBodyLength};
    /// let e = RequestGenerationFailed::new(twistor::Failure::new(WrongBodyLength::TooFew));
    /// assert!(e.has::<WrongBodyLength>());
    /// ```
    RequestGenerationFailed,
    "the request could not be generated"
);

/// A request was given to a connection that is busy with another one or closed.
///
/// ```
/// assert_eq!(twistor::web::client::error::RequestNotSent.to_string(),
///            "the request was not sent: the connection is not idle");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request was not sent: the connection is not idle")]
pub struct RequestNotSent;

/// The body ended completely (the end reason a body protocol gets).
///
/// ```
/// assert_eq!(twistor::web::client::error::ResponseDone.to_string(), "the response body is complete");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the response body is complete")]
pub struct ResponseDone;

/// A body without a declared length ended when the server closed the connection: the body
/// may be complete, or cut short; HTTP cannot tell the two apart.
///
/// ```
/// use twistor::web::client::error::PotentialDataLoss;
/// assert!(PotentialDataLoss.to_string().contains("connection close"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the response body was ended by a connection close, it may be incomplete")]
pub struct PotentialDataLoss;

/// A body ended before the length its framing declared.
///
/// ```
/// assert!(twistor::web::client::error::DataLoss.to_string().contains("before its end"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection closed before its end of the response body")]
pub struct DataLoss;

/// A body whose end cannot be told from a truncation, as [`read_body_strict`] reports it:
/// the bytes that did arrive are in `body`.
///
/// [`read_body_strict`]: super::read_body_strict
///
/// ```
/// use twistor::web::client::error::PartialDownloadError;
/// let e = PartialDownloadError { code: 200, body: b"abc".to_vec() };
/// assert_eq!(e.to_string(), "partial download (status 200): 3 bytes received, the end is not certain");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("partial download (status {code}): {} bytes received, the end is not certain", body.len())]
pub struct PartialDownloadError {
    /// The response's status code.
    pub code: u16,
    /// What arrived.
    pub body: Vec<u8>,
}

/// A body producer wrote more or fewer bytes than the length it declared.
///
/// ```
/// use twistor::web::client::error::WrongBodyLength;
/// assert_eq!(WrongBodyLength::TooMany.to_string(), "the body producer wrote too many bytes");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WrongBodyLength {
    /// More than declared.
    #[error("the body producer wrote too many bytes")]
    TooMany,
    /// It finished before the declared length.
    #[error("the body producer wrote too few bytes")]
    TooFew,
}

/// A request that cannot be put on the wire (Twisted's `BadHeaders`, and its checks of the
/// method and target against CR/LF injection).
///
/// ```
/// use twistor::web::client::error::BadRequest;
/// let e = BadRequest("the method \"GET X\" is not a token".into());
/// assert!(e.to_string().starts_with("bad request"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad request: {0}")]
pub struct BadRequest(pub String);

/// A URI the agent cannot use: malformed, or a part that is not allowed.
///
/// ```
/// use twistor::web::client::Uri;
/// let e = Uri::parse("http://exa mple.com/").unwrap_err();
/// assert!(e.to_string().contains("invalid URI"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URI {uri:?}: {why}")]
pub struct InvalidUri {
    /// The URI, as given (cut to 200 bytes).
    pub uri: String,
    /// What is wrong with it.
    pub why: String,
}

/// An HTTP proxy would not open a `CONNECT` tunnel for an `https` request (it refused, or
/// closed, or answered something that is not HTTP).
///
/// ```
/// use twistor::web::client::error::ProxyTunnelError;
/// let e = ProxyTunnelError("the proxy refused the tunnel: \"HTTP/1.1 407\"".into());
/// assert!(e.to_string().starts_with("no tunnel through the proxy: "));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no tunnel through the proxy: {0}")]
pub struct ProxyTunnelError(pub String);

/// The URI's scheme is neither `http` nor `https`.
///
/// ```
/// use twistor::web::client::error::SchemeNotSupported;
/// assert_eq!(SchemeNotSupported("ftp".into()).to_string(), "unsupported scheme: \"ftp\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported scheme: {0:?}")]
pub struct SchemeNotSupported(pub String);

/// The response head could not be parsed.
///
/// ```
/// use twistor::web::client::error::ParseError;
/// assert!(ParseError("bad status line".into()).to_string().contains("bad status line"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed HTTP response: {0}")]
pub struct ParseError(pub String);

/// The status line names an HTTP version this client does not speak.
///
/// ```
/// use twistor::web::client::error::BadResponseVersion;
/// assert!(BadResponseVersion("HTTP/2.0".into()).to_string().contains("HTTP/2.0"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported HTTP version in the status line: {0:?}")]
pub struct BadResponseVersion(pub String);

/// The response head is larger than [`AgentOptions::max_head_size`](super::AgentOptions), or
/// has more headers than allowed.
///
/// ```
/// use twistor::web::client::error::ResponseHeadTooLarge;
/// assert!(ResponseHeadTooLarge("over 65536 bytes".into()).to_string().contains("65536"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the response head is too large: {0}")]
pub struct ResponseHeadTooLarge(pub String);

/// The whole-response timeout of the agent expired.
///
/// ```
/// use twistor::web::client::error::ResponseTimeout;
/// assert_eq!(ResponseTimeout(5.0).to_string(), "no complete response within 5 s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("no complete response within {0} s")]
pub struct ResponseTimeout(pub f64);

/// A redirect the redirect agent does not follow for this method (a 301/302/307/308 to a
/// request whose body cannot be sent again, or a method Twisted does not redirect).
///
/// ```
/// use twistor::web::client::error::PageRedirect;
/// let e = PageRedirect { code: 307, location: "/x".into() };
/// assert!(e.to_string().contains("307"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redirect {code} to {location:?} not followed for this request")]
pub struct PageRedirect {
    /// The status code.
    pub code: u16,
    /// The `Location`, as sent.
    pub location: String,
}

/// Too many redirects in a row.
///
/// ```
/// use twistor::web::client::error::InfiniteRedirection;
/// assert!(InfiniteRedirection { limit: 20, location: "/".into() }.to_string().contains("20"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("more than {limit} redirects (the last one to {location:?})")]
pub struct InfiniteRedirection {
    /// The agent's limit.
    pub limit: usize,
    /// The `Location` that was not followed.
    pub location: String,
}

/// A redirect response without a `Location` header.
///
/// ```
/// use twistor::web::client::error::RedirectWithNoLocation;
/// assert!(RedirectWithNoLocation { code: 302 }.to_string().contains("302"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redirect {code} without a Location header")]
pub struct RedirectWithNoLocation {
    /// The status code.
    pub code: u16,
}

/// A body larger than the limit its reader set (a decoded body, or `read_body_limited`).
///
/// ```
/// use twistor::web::client::error::BodyTooLarge;
/// assert!(BodyTooLarge(10).to_string().contains("10"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the response body is larger than {0} bytes")]
pub struct BodyTooLarge(pub u64);

/// A compressed body that does not decode.
///
/// ```
/// use twistor::web::client::error::DecodingError;
/// assert!(DecodingError("gzip: bad header".into()).to_string().contains("gzip"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("content decoding failed: {0}")]
pub struct DecodingError(pub String);

/// `deliver_body` was called a second time on the same response.
///
/// ```
/// assert!(twistor::web::client::error::BodyAlreadyDelivered.to_string().contains("once"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a response body can be delivered only once")]
pub struct BodyAlreadyDelivered;

//! [`TlsError`]: why TLS failed, named so a program (and a person reading a log) can tell a
//! wrong host from an unknown issuer from an expired certificate from a broken peer.
//!
//! rustls reports failures as its own `Error`; [`TlsError::from`] sorts them into the causes
//! a caller acts on differently. The local side of a failed verification gets the precise
//! cause; the other side gets the alert it was sent ([`TlsError::AlertReceived`]), which is
//! all TLS tells it.

use std::path::PathBuf;

use rustls::CertificateError;

/// Why a TLS connection failed or TLS options could not be built.
///
/// A connection's protocol gets it as its `connection_lost` reason:
/// `reason.downcast_ref::<TlsError>()`.
///
/// ```
/// use twistor::tls::TlsError;
/// let e = TlsError::from(rustls::Error::InvalidCertificate(rustls::CertificateError::Expired));
/// assert!(matches!(e, TlsError::Expired));
/// assert_eq!(e.to_string(), "TLS: the peer's certificate has expired");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The server's certificate is valid, but not for the host name the client asked for.
    #[error("TLS: the peer's certificate is not valid for the host name {expected:?}{}", presented_list(.presented))]
    WrongHost {
        /// The name the client verified against.
        expected: String,
        /// The names the certificate is valid for, when known.
        presented: Vec<String>,
    },
    /// The certificate chain does not lead to a trusted root (self-signed, or a private CA
    /// not in the trust roots).
    #[error("TLS: the peer's certificate was issued by an unknown authority")]
    UnknownIssuer,
    /// The certificate's validity period is over.
    #[error("TLS: the peer's certificate has expired")]
    Expired,
    /// The certificate's validity period has not started.
    #[error("TLS: the peer's certificate is not valid yet")]
    NotValidYet,
    /// The certificate was revoked.
    #[error("TLS: the peer's certificate was revoked")]
    Revoked,
    /// Another certificate problem (bad signature, unsupported algorithm, bad encoding...).
    #[error("TLS: the peer's certificate is invalid: {0}")]
    BadCertificate(String),
    /// The peer sent no certificate where one is required (a server requiring client
    /// certificates).
    #[error("TLS: the peer presented no certificate, and one is required")]
    CertificateRequired,
    /// No ALPN protocol both sides accept.
    #[error("TLS: no application protocol (ALPN) in common with the peer")]
    NoApplicationProtocol,
    /// The two sides have no TLS protocol version in common (a TLS 1.2-only server and a
    /// TLS 1.3-only client): found locally, or told by the peer's `protocol_version` alert.
    #[error("TLS: no protocol version in common with the peer ({0})")]
    NoCommonVersion(String),
    /// The peer ended the handshake with this alert: its view of what went wrong (it rejected
    /// our certificate, found no common protocol version...).
    #[error("TLS: the peer sent the alert {0:?}")]
    AlertReceived(String),
    /// The peer broke the TLS protocol (garbage instead of TLS records, a bad message,
    /// incompatible parameters).
    #[error("TLS protocol error: {0}")]
    Protocol(String),
    /// The options cannot make a TLS configuration (bad key, no usable roots...).
    #[error("TLS configuration: {0}")]
    Config(String),
    /// A PEM file or buffer holds no certificate where one is needed.
    #[error("TLS: no certificate found in {0}")]
    NoCertificate(String),
    /// A PEM file or buffer holds no private key where one is needed.
    #[error("TLS: no private key found in {0}")]
    NoPrivateKey(String),
    /// A file could not be read.
    #[error("TLS: cannot read {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file of an SNI directory cannot serve (no certificate or key, a key that does not
    /// match, a directory with no `NAME.pem` file at all).
    #[error("TLS: {path} cannot serve as a NAME.pem certificate and key: {message}")]
    SniFile {
        /// The file (or the directory).
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A server choosing its certificate by SNI has none for the name the client asked for
    /// (or the client sent none) and no default: the client was sent `access_denied`.
    #[error("TLS: no certificate for the server name the client asked for, and no default")]
    UnknownServerName,
    /// The host name is neither a DNS name nor an IP address.
    #[error("TLS: {0:?} is not a valid host name")]
    InvalidHostName(String),
    /// `start_tls` on a transport that cannot switch to TLS (an in-memory test transport).
    #[error("TLS: this transport cannot start TLS")]
    StartTlsUnsupported,
    /// `start_tls` on a connection that already runs TLS (a second `start_tls`).
    #[error("TLS: this connection already runs TLS")]
    AlreadyStarted,
    /// `start_tls` after `lose_connection`, `lose_write_connection` or an abort: a closing
    /// connection does not start a handshake.
    #[error("TLS: cannot start TLS on a connection that is closing or closed")]
    StartTlsClosing,
}

fn presented_list(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" (it is valid for {})", names.join(", "))
    }
}

/// `DnsName("a.example")` / `IpAddress(127.0.0.1)` (how rustls lists a certificate's
/// names) as `a.example` / `127.0.0.1`.
fn bare_name(n: &str) -> String {
    let inner = n
        .strip_prefix("DnsName(")
        .or_else(|| n.strip_prefix("IpAddress("))
        .and_then(|s| s.strip_suffix(')'));
    match inner {
        Some(s) => s.trim_matches('"').to_string(),
        None => n.to_string(),
    }
}

impl TlsError {
    /// The client-side form of a certificate error, with the host name it was checked for.
    pub(crate) fn for_host(e: rustls::Error, host: &str) -> TlsError {
        match TlsError::from(e) {
            TlsError::WrongHost { presented, .. } => TlsError::WrongHost {
                expected: host.to_string(),
                presented,
            },
            other => other,
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> TlsError {
        use rustls::Error as E;
        match e {
            E::InvalidCertificate(c) => match c {
                CertificateError::NotValidForName => TlsError::WrongHost {
                    expected: String::new(),
                    presented: Vec::new(),
                },
                CertificateError::NotValidForNameContext {
                    expected,
                    presented,
                } => TlsError::WrongHost {
                    expected: expected.to_str().into_owned(),
                    presented: presented.iter().map(|n| bare_name(n)).collect(),
                },
                CertificateError::UnknownIssuer => TlsError::UnknownIssuer,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    TlsError::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    TlsError::NotValidYet
                }
                CertificateError::Revoked => TlsError::Revoked,
                other => TlsError::BadCertificate(format!("{other:?}")),
            },
            E::NoCertificatesPresented => TlsError::CertificateRequired,
            E::NoApplicationProtocol => TlsError::NoApplicationProtocol,
            E::AlertReceived(rustls::AlertDescription::ProtocolVersion) => {
                TlsError::NoCommonVersion("the peer sent the alert ProtocolVersion".into())
            }
            E::AlertReceived(a) => TlsError::AlertReceived(format!("{a:?}")),
            E::PeerIncompatible(
                p @ (rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13
                | rustls::PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
                | rustls::PeerIncompatible::SupportedVersionsExtensionRequired
                | rustls::PeerIncompatible::Tls12NotOffered
                | rustls::PeerIncompatible::Tls12NotOfferedOrEnabled),
            ) => TlsError::NoCommonVersion(format!("{p:?}")),
            // What rustls says when a certificate resolver found nothing (SNI options).
            E::General(m) if m == "no server certificate chain resolved" => {
                TlsError::UnknownServerName
            }
            E::General(m) => TlsError::Config(m),
            other => TlsError::Protocol(other.to_string()),
        }
    }
}

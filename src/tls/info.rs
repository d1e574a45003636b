//! [`TlsInfo`]: what a TLS connection negotiated, as its transport reports it (Twisted's
//! `ISSLTransport.getPeerCertificate` and `INegotiated.negotiatedProtocol`).

use rustls::pki_types::CertificateDer;

/// A snapshot of a TLS connection's negotiated state, from
/// [`Transport::tls`](crate::transport::Transport::tls).
///
/// Before the handshake completes there is no peer certificate and no ALPN protocol (as in
/// Twisted, `connection_made` runs before the handshake: read them in
/// [`handshake_completed`](crate::protocol::Protocol::handshake_completed)).
///
/// ```
/// use twistor::tls::TlsInfo;
/// let info = TlsInfo::default();
/// assert!(!info.handshake_complete);
/// assert!(info.peer_certificate().is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// TLS is running (false on a STARTTLS-capable connection still in clear text).
    pub active: bool,
    /// The handshake completed.
    pub handshake_complete: bool,
    /// The peer's certificate chain, leaf first (empty if it sent none: a client the server
    /// did not ask for one, or before the handshake).
    pub peer_certificates: Vec<CertificateDer<'static>>,
    /// The ALPN protocol negotiated, if any.
    pub alpn_protocol: Option<Vec<u8>>,
    /// The protocol version ("TLSv1_3", "TLSv1_2").
    pub version: Option<String>,
    /// The cipher suite.
    pub cipher_suite: Option<String>,
    /// The name the client asked for with SNI (server side).
    pub server_name: Option<String>,
    /// This side is the TLS client.
    pub is_client: bool,
    /// The session was resumed (an abbreviated handshake, from a ticket or the cache).
    pub resumed: bool,
}

impl TlsInfo {
    /// The peer's leaf certificate (DER), if it sent one.
    ///
    /// ```
    /// assert!(twistor::tls::TlsInfo::default().peer_certificate().is_none());
    /// ```
    #[doc(alias = "getPeerCertificate")]
    pub fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        self.peer_certificates.first()
    }

    /// The negotiated protocol version as a [`TlsVersion`](super::TlsVersion) (none before
    /// the handshake chose one).
    ///
    /// ```
    /// assert_eq!(twistor::tls::TlsInfo::default().tls_version(), None);
    /// ```
    pub fn tls_version(&self) -> Option<super::TlsVersion> {
        use super::TlsVersion as V;
        [V::Tls12, V::Tls13]
            .into_iter()
            .find(|v| self.version.as_deref() == Some(v.to_string().as_str()))
    }

    pub(crate) fn of(conn: &rustls::Connection, is_client: bool) -> TlsInfo {
        TlsInfo {
            active: true,
            handshake_complete: !conn.is_handshaking(),
            peer_certificates: conn
                .peer_certificates()
                .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
            alpn_protocol: conn.alpn_protocol().map(<[u8]>::to_vec),
            version: conn.protocol_version().map(|v| format!("{v:?}")),
            cipher_suite: conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite())),
            server_name: match conn {
                rustls::Connection::Server(s) => s.server_name().map(str::to_string),
                rustls::Connection::Client(_) => None,
            },
            is_client,
            resumed: conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        }
    }
}

//! TLS options (Twisted's `CertificateOptions` and `optionsForClientTLS`): what a server
//! presents and asks for, and what a client trusts.
//!
//! Options are plain values with builder methods; each turns into a rustls configuration once
//! (on the first connection, or at once by [`listen_ssl`](super::listen_ssl) and
//! [`connect_ssl`](super::connect_ssl), so a bad key or an empty trust store fails there, not
//! on the first peer) and every connection made from the same options shares it, so sessions
//! resume across them.
//!
//! Verification is on by default: [`options_for_client_tls`] checks the chain against the
//! trust roots and the certificate's subjectAltName against the host name (a certificate with
//! no usable name is rejected, unlike Twisted's CN fallback hole). The only way off is the
//! one clearly named [`ClientOptions::danger_accept_any_certificate`].
//!
//! Trust roots ([`TrustRoots`]): the system's PEM bundle (the default, as Twisted's
//! `platformTrust`), Mozilla's roots compiled in (`webpki-roots`), or certificates from PEM.
//! The system bundle is read from `SSL_CERT_FILE`, then the PEM files of `SSL_CERT_DIR`,
//! then the usual distribution paths (`/etc/ssl/certs/ca-certificates.crt`,
//! `/etc/pki/tls/certs/ca-bundle.crt`, ...).
//!
//! Everything runs on the ring crypto provider, chosen explicitly (never the process default),
//! with TLS 1.2 and 1.3 unless the options narrow the versions ([`TlsVersion`]); older
//! versions do not exist in rustls.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use super::errors::TlsError;

/// The crypto provider every configuration uses: ring.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Every certificate in a PEM buffer (other blocks are skipped); `what` names it in errors.
fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Config(format!("bad PEM in {what}: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(what.to_string()));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM buffer.
fn key_from_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey(what.to_string()),
        e => TlsError::Config(format!("bad PEM in {what}: {e}")),
    })
}

/// A certificate chain (leaf first) and its private key.
#[derive(Debug)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// From PEM buffers: the chain (leaf first, intermediates after) and the key. Both may
    /// be the same buffer.
    ///
    /// ```
    /// use twistor::tls::{Identity, TlsError};
    /// let e = Identity::from_pem(b"", b"").unwrap_err();
    /// assert!(matches!(e, TlsError::NoCertificate(_)));
    /// ```
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Identity, TlsError> {
        Ok(Identity {
            chain: certs_from_pem(chain, "the certificate PEM")?,
            key: key_from_pem(key, "the key PEM")?,
        })
    }

    /// From PEM files (they may be the same file).
    ///
    /// ```
    /// use twistor::tls::{Identity, TlsError};
    /// let e = Identity::from_pem_files("/nonexistent.pem", "/nonexistent.pem").unwrap_err();
    /// assert!(matches!(e, TlsError::Io { .. }));
    /// ```
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Identity, TlsError> {
        let (chain, key) = (chain.as_ref(), key.as_ref());
        Ok(Identity {
            chain: certs_from_pem(&read_file(chain)?, &chain.display().to_string())?,
            key: key_from_pem(&read_file(key)?, &key.display().to_string())?,
        })
    }

    /// The certificates, leaf first.
    ///
    /// ```
    /// # use twistor::tls::Identity;
    /// # fn f(id: &Identity) { let _leaf = &id.chain()[0]; }
    /// ```
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The chain and key as rustls serves them; fails if the key does not match the leaf.
    fn certified_key(
        &self,
        provider: &CryptoProvider,
    ) -> Result<rustls::sign::CertifiedKey, rustls::Error> {
        rustls::sign::CertifiedKey::from_der(self.chain.clone(), self.key.clone_key(), provider)
    }
}

/// Which certificate authorities to trust.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum TrustRoots {
    /// The system's PEM bundle (see the module docs for where it is looked for), or
    /// Mozilla's roots if the system has none (Twisted's `platformTrust`).
    #[default]
    System,
    /// Mozilla's roots, compiled in (`webpki-roots`).
    Webpki,
    /// Exactly these certificates (a private CA, or a pinned self-signed server).
    Certificates(Vec<CertificateDer<'static>>),
}

impl TrustRoots {
    /// The certificates of a PEM buffer.
    ///
    /// ```
    /// use twistor::tls::{TlsError, TrustRoots};
    /// assert!(matches!(TrustRoots::from_pem(b"nothing"), Err(TlsError::NoCertificate(_))));
    /// ```
    pub fn from_pem(pem: &[u8]) -> Result<TrustRoots, TlsError> {
        Ok(TrustRoots::Certificates(certs_from_pem(
            pem,
            "the trust roots PEM",
        )?))
    }

    /// The certificates of a PEM file (a CA bundle).
    ///
    /// ```
    /// use twistor::tls::{TlsError, TrustRoots};
    /// assert!(matches!(TrustRoots::from_pem_file("/nonexistent"), Err(TlsError::Io { .. })));
    /// ```
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<TrustRoots, TlsError> {
        let path = path.as_ref();
        Ok(TrustRoots::Certificates(certs_from_pem(
            &read_file(path)?,
            &path.display().to_string(),
        )?))
    }

    /// The root store.
    pub(crate) fn store(&self) -> Result<Arc<RootCertStore>, TlsError> {
        match self {
            TrustRoots::System => Ok(system_roots()),
            TrustRoots::Webpki => Ok(webpki_roots()),
            TrustRoots::Certificates(certs) => {
                let mut store = RootCertStore::empty();
                for c in certs {
                    store
                        .add(c.clone())
                        .map_err(|e| TlsError::Config(format!("bad trust root: {e}")))?;
                }
                Ok(Arc::new(store))
            }
        }
    }
}

fn webpki_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            Arc::new(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            })
        })
        .clone()
}

/// Where distributions keep their CA bundle.
const BUNDLE_PATHS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The PEM files the system trust store is read from, in order (module docs).
fn system_bundle_files() -> Vec<PathBuf> {
    if let Some(f) = std::env::var_os("SSL_CERT_FILE") {
        return vec![PathBuf::from(f)];
    }
    if let Some(dir) = std::env::var_os("SSL_CERT_DIR") {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        return files;
    }
    BUNDLE_PATHS
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .take(1)
        .collect()
}

fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            for file in system_bundle_files() {
                let Ok(pem) = std::fs::read(&file) else {
                    continue;
                };
                // Unreadable entries are skipped, as OpenSSL does with a bundle.
                let certs = CertificateDer::pem_slice_iter(&pem).flatten();
                store.add_parsable_certificates(certs);
            }
            if store.is_empty() {
                log::warn!(
                    target: "twistor::tls",
                    "no system CA bundle found; trusting Mozilla's roots (webpki-roots)"
                );
                return webpki_roots();
            }
            Arc::new(store)
        })
        .clone()
}

/// A TLS protocol version rustls speaks. Older ones (SSL 3, TLS 1.0, 1.1) are insecure and
/// not implemented.
///
/// ```
/// use twistor::tls::TlsVersion;
/// assert!(TlsVersion::Tls12 < TlsVersion::Tls13);
/// assert_eq!(TlsVersion::Tls13.to_string(), "TLSv1_3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl std::fmt::Display for TlsVersion {
    /// The name [`TlsInfo::version`](super::TlsInfo::version) reports.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLSv1_2",
            TlsVersion::Tls13 => "TLSv1_3",
        })
    }
}

/// The versions a configuration allows: `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Versions {
    min: TlsVersion,
    max: TlsVersion,
}

impl Default for Versions {
    fn default() -> Versions {
        Versions {
            min: TlsVersion::Tls12,
            max: TlsVersion::Tls13,
        }
    }
}

impl Versions {
    /// The rustls versions, or an error if the minimum is above the maximum.
    fn rustls(self) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
        let all = [
            (TlsVersion::Tls12, &rustls::version::TLS12),
            (TlsVersion::Tls13, &rustls::version::TLS13),
        ];
        let v: Vec<_> = all
            .into_iter()
            .filter(|(n, _)| (self.min..=self.max).contains(n))
            .map(|(_, v)| v)
            .collect();
        if v.is_empty() {
            return Err(TlsError::Config(format!(
                "no TLS version allowed: the minimum {} is above the maximum {}",
                self.min, self.max
            )));
        }
        Ok(v)
    }
}

/// The configuration built from options, shared by their clones (so every connection made
/// from copies of the same options shares one configuration and its session cache); a
/// builder method starts a new one.
type Built<C> = Rc<RefCell<Option<Arc<C>>>>;

/// Whether and how a server asks for client certificates.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// No client certificate is asked for (the default).
    #[default]
    None,
    /// Asked for; a client without one is accepted, one with a bad one refused.
    Optional(TrustRoots),
    /// Required, and verified against these roots (Twisted's `trustRoot` on a server).
    Required(TrustRoots),
}

/// What a TLS server presents and asks for (Twisted's `CertificateOptions` for a server).
///
/// ```no_run
/// use twistor::tls::{ClientAuth, ServerOptions, TrustRoots};
///
/// let opts = ServerOptions::from_pem_files("server.pem", "server.key")?
///     .client_auth(ClientAuth::Required(TrustRoots::from_pem_file("clients-ca.pem")?))
///     .alpn(["h2", "http/1.1"]);
/// # Ok::<(), twistor::tls::TlsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServerOptions {
    certs: ServerCerts,
    client_auth: ClientAuth,
    alpn: Vec<Vec<u8>>,
    tickets: bool,
    session_cache: usize,
    versions: Versions,
    built: Built<ServerConfig>,
}

impl ServerOptions {
    /// Presents `identity`; no client certificates, no ALPN, a session cache of 256 entries
    /// and session tickets on (TLS 1.3 resumption).
    ///
    /// ```
    /// # fn f(id: twistor::tls::Identity) {
    /// let opts = twistor::tls::ServerOptions::new(id);
    /// # }
    /// ```
    pub fn new(identity: Identity) -> ServerOptions {
        ServerOptions::with_certs(ServerCerts::Single(identity))
    }

    fn with_certs(certs: ServerCerts) -> ServerOptions {
        ServerOptions {
            certs,
            client_auth: ClientAuth::None,
            alpn: Vec::new(),
            tickets: true,
            session_cache: 256,
            versions: Versions::default(),
            built: Built::default(),
        }
    }

    /// From PEM buffers (certificate chain, then key).
    ///
    /// ```
    /// use twistor::tls::ServerOptions;
    /// assert!(ServerOptions::from_pem(b"", b"").is_err());
    /// ```
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<ServerOptions, TlsError> {
        Ok(ServerOptions::new(Identity::from_pem(chain, key)?))
    }

    /// From PEM files (certificate chain, then key; may be the same file).
    ///
    /// ```
    /// use twistor::tls::ServerOptions;
    /// assert!(ServerOptions::from_pem_files("/nonexistent", "/nonexistent").is_err());
    /// ```
    pub fn from_pem_files(
        chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ServerOptions, TlsError> {
        Ok(ServerOptions::new(Identity::from_pem_files(chain, key)?))
    }

    /// Presents a certificate picked by the name the client asks for with SNI: each of
    /// `names` (a host name, matched in any case) with its identity; `default` answers
    /// clients that send no name or an unknown one. Without a default such a client's
    /// handshake fails (it gets an `access_denied` alert; the server's reason is
    /// [`TlsError::UnknownServerName`]).
    ///
    /// ```
    /// # fn f(a: twistor::tls::Identity, b: twistor::tls::Identity) {
    /// use twistor::tls::ServerOptions;
    /// let opts = ServerOptions::sni([("a.example", a), ("b.example", b)], None);
    /// # }
    /// ```
    pub fn sni<I, S>(names: I, default: Option<Identity>) -> ServerOptions
    where
        I: IntoIterator<Item = (S, Identity)>,
        S: AsRef<str>,
    {
        let names = names
            .into_iter()
            .map(|(n, id)| (n.as_ref().to_ascii_lowercase(), id))
            .collect();
        ServerOptions::with_certs(ServerCerts::Sni { names, default })
    }

    /// The SNI options of a directory (the convention of txsni, Twisted's SNI endpoint):
    /// every `NAME.pem` file holds the certificate chain (leaf first) and the private key for
    /// host `NAME`, and `DEFAULT.pem`, if present, answers clients without SNI or with an
    /// unknown name (see [`sni`](Self::sni)). Other files are ignored. A `.pem` file that
    /// cannot be read, lacks a certificate or a key, or whose key does not match its
    /// certificate is an error naming the file; so is a directory with no `.pem` file.
    ///
    /// ```
    /// use twistor::tls::{ServerOptions, TlsError};
    /// let e = ServerOptions::from_sni_directory("/nonexistent").unwrap_err();
    /// assert!(matches!(e, TlsError::Io { .. }));
    /// ```
    pub fn from_sni_directory(dir: impl AsRef<Path>) -> Result<ServerOptions, TlsError> {
        let dir = dir.as_ref();
        let io = |path: &Path, e: std::io::Error| TlsError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut files = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .map(|entry| entry.map(|e| e.path()).map_err(|e| io(dir, e)))
            .collect::<Result<Vec<_>, _>>()?;
        files.sort();
        let mut names = Vec::new();
        let mut default = None;
        for path in files {
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pem"))
                .filter(|n| !n.is_empty())
            else {
                continue;
            };
            let bad = |message: String| TlsError::SniFile {
                path: path.clone(),
                message,
            };
            let pem = read_file(&path)?;
            let id = Identity::from_pem(&pem, &pem).map_err(|e| bad(e.to_string()))?;
            // The key must sign for the certificate: found now, not at a client's handshake.
            id.certified_key(&provider())
                .map_err(|e| bad(format!("its key cannot serve its certificate: {e}")))?;
            if name == "DEFAULT" {
                default = Some(id);
            } else {
                names.push((name.to_string(), id));
            }
        }
        if names.is_empty() && default.is_none() {
            return Err(TlsError::SniFile {
                path: dir.to_path_buf(),
                message: "holds no NAME.pem file".into(),
            });
        }
        Ok(ServerOptions::sni(names, default))
    }

    /// Asks for client certificates.
    ///
    /// ```
    /// # use twistor::tls::{ClientAuth, ServerOptions, TrustRoots};
    /// # fn f(o: ServerOptions, ca: TrustRoots) -> ServerOptions {
    /// o.client_auth(ClientAuth::Required(ca))
    /// # }
    /// ```
    pub fn client_auth(mut self, auth: ClientAuth) -> ServerOptions {
        self.client_auth = auth;
        self.built = Built::default();
        self
    }

    /// The ALPN protocols accepted, in the server's order of preference: the first of them
    /// the client also offers is chosen; a client offering only others is refused
    /// ([`TlsError::NoApplicationProtocol`]); a client offering none gets none.
    ///
    /// ```
    /// # use twistor::tls::ServerOptions;
    /// # fn f(o: ServerOptions) -> ServerOptions {
    /// o.alpn(["h2", "http/1.1"])
    /// # }
    /// ```
    pub fn alpn<I, S>(mut self, protocols: I) -> ServerOptions
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self.built = Built::default();
        self
    }

    /// Session resumption: `cache` entries of server-side session state (0: none), and
    /// stateless session tickets on or off.
    ///
    /// ```
    /// # use twistor::tls::ServerOptions;
    /// # fn f(o: ServerOptions) -> ServerOptions {
    /// o.sessions(0, false) // no resumption at all
    /// # }
    /// ```
    pub fn sessions(mut self, cache: usize, tickets: bool) -> ServerOptions {
        self.session_cache = cache;
        self.tickets = tickets;
        self.built = Built::default();
        self
    }

    /// Refuses peers that cannot speak at least `version` (Twisted's `raiseMinimumTo`). The
    /// default allows TLS 1.2 and 1.3.
    ///
    /// ```
    /// # use twistor::tls::{ServerOptions, TlsVersion};
    /// # fn f(o: ServerOptions) -> ServerOptions {
    /// o.min_version(TlsVersion::Tls13) // TLS 1.3 only
    /// # }
    /// ```
    #[doc(alias = "raiseMinimumTo")]
    pub fn min_version(mut self, version: TlsVersion) -> ServerOptions {
        self.versions.min = version;
        self.built = Built::default();
        self
    }

    /// Speaks no version above `version` (Twisted's `lowerMaximumSecurityTo`). A minimum
    /// above the maximum makes [`config`](Self::config) fail.
    ///
    /// ```
    /// # use twistor::tls::{ServerOptions, TlsVersion};
    /// # fn f(o: ServerOptions) -> ServerOptions {
    /// o.max_version(TlsVersion::Tls12) // TLS 1.2 only
    /// # }
    /// ```
    #[doc(alias = "lowerMaximumSecurityTo")]
    pub fn max_version(mut self, version: TlsVersion) -> ServerOptions {
        self.versions.max = version;
        self.built = Built::default();
        self
    }

    /// The rustls configuration (built once, then shared).
    ///
    /// ```
    /// # fn f(o: twistor::tls::ServerOptions) -> Result<(), twistor::tls::TlsError> {
    /// let config = o.config()?;
    /// # Ok(()) }
    /// ```
    pub fn config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        if let Some(c) = self.built.borrow().as_ref() {
            return Ok(c.clone());
        }
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions.rustls()?)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional(roots) | ClientAuth::Required(roots) => {
                let v = WebPkiClientVerifier::builder_with_provider(roots.store()?, provider);
                let v = if matches!(self.client_auth, ClientAuth::Optional(_)) {
                    v.allow_unauthenticated()
                } else {
                    v
                };
                builder.with_client_cert_verifier(
                    v.build().map_err(|e| TlsError::Config(e.to_string()))?,
                )
            }
        };
        let mut config = match &self.certs {
            ServerCerts::Single(id) => builder
                .with_single_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?,
            ServerCerts::Sni { names, default } => {
                // `provider` went to the client verifier above.
                let provider = self::provider();
                let certified = |name: &str, id: &Identity| {
                    id.certified_key(&provider).map(Arc::new).map_err(|e| {
                        TlsError::Config(format!("certificate and key for {name}: {e}"))
                    })
                };
                let resolver = SniResolver {
                    names: names
                        .iter()
                        .map(|(n, id)| Ok((n.clone(), certified(n, id)?)))
                        .collect::<Result<_, TlsError>>()?,
                    default: default
                        .as_ref()
                        .map(|id| certified("the default", id))
                        .transpose()?,
                };
                builder.with_cert_resolver(Arc::new(resolver))
            }
        };
        config.alpn_protocols = self.alpn.clone();
        config.session_storage = if self.session_cache == 0 {
            Arc::new(rustls::server::NoServerSessionStorage {})
        } else {
            rustls::server::ServerSessionMemoryCache::new(self.session_cache)
        };
        if self.tickets {
            config.ticketer = rustls::crypto::ring::Ticketer::new()
                .map_err(|e| TlsError::Config(e.to_string()))?;
        } else if self.session_cache == 0 {
            // TLS 1.3 tickets without a ticketer are keys into the cache: none to give.
            config.send_tls13_tickets = 0;
        }
        let config = Arc::new(config);
        *self.built.borrow_mut() = Some(config.clone());
        Ok(config)
    }
}

/// The certificates a server presents.
#[derive(Debug, Clone)]
enum ServerCerts {
    /// The same to every client.
    Single(Identity),
    /// Picked by SNI name (lower case), else the default.
    Sni {
        names: std::collections::HashMap<String, Identity>,
        default: Option<Identity>,
    },
}

/// Picks a server's certificate by the SNI name the client sent.
#[derive(Debug)]
struct SniResolver {
    names: std::collections::HashMap<String, Arc<rustls::sign::CertifiedKey>>,
    default: Option<Arc<rustls::sign::CertifiedKey>>,
}

impl rustls::server::ResolvesServerCert for SniResolver {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        hello
            .server_name()
            .and_then(|n| self.names.get(&n.to_ascii_lowercase()))
            .or(self.default.as_ref())
            .cloned()
    }
}

/// What a TLS client trusts and presents (Twisted's `optionsForClientTLS`). Made by
/// [`options_for_client_tls`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    hostname: String,
    roots: TrustRoots,
    identity: Option<Identity>,
    alpn: Vec<Vec<u8>>,
    verify: bool,
    versions: Versions,
    built: Built<ClientConfig>,
}

/// Client options for talking to `hostname` (Twisted's `optionsForClientTLS`): the server's
/// certificate must chain to the system's trust roots and name `hostname` (a DNS name, or
/// an IP address matched against IP subjectAltNames); SNI is sent for DNS names only. An
/// internationalized name (`bücher.example`) is sent and verified as its A-label
/// (`xn--bcher-kva.example`).
///
/// ```
/// use twistor::tls::{TrustRoots, options_for_client_tls};
/// let opts = options_for_client_tls("example.com")
///     .trust_roots(TrustRoots::Webpki)
///     .alpn(["http/1.1"]);
/// assert_eq!(opts.hostname(), "example.com");
/// ```
#[doc(alias = "optionsForClientTLS")]
pub fn options_for_client_tls(hostname: &str) -> ClientOptions {
    ClientOptions {
        hostname: hostname.to_string(),
        roots: TrustRoots::System,
        identity: None,
        alpn: Vec::new(),
        verify: true,
        versions: Versions::default(),
        built: Built::default(),
    }
}

impl ClientOptions {
    /// The host name the server is verified against.
    ///
    /// ```
    /// assert_eq!(twistor::tls::options_for_client_tls("a.test").hostname(), "a.test");
    /// ```
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Trusts these roots instead of the system's.
    ///
    /// ```
    /// use twistor::tls::{options_for_client_tls, TrustRoots};
    /// let _o = options_for_client_tls("example.com").trust_roots(TrustRoots::Webpki);
    /// ```
    pub fn trust_roots(mut self, roots: TrustRoots) -> ClientOptions {
        self.roots = roots;
        self.built = Built::default();
        self
    }

    /// Presents this client certificate when the server asks for one.
    ///
    /// ```
    /// # fn f(id: twistor::tls::Identity) {
    /// let _o = twistor::tls::options_for_client_tls("example.com").client_certificate(id);
    /// # }
    /// ```
    pub fn client_certificate(mut self, identity: Identity) -> ClientOptions {
        self.identity = Some(identity);
        self.built = Built::default();
        self
    }

    /// The ALPN protocols offered, in order of preference.
    ///
    /// ```
    /// let _o = twistor::tls::options_for_client_tls("example.com").alpn(["h2", "http/1.1"]);
    /// ```
    pub fn alpn<I, S>(mut self, protocols: I) -> ClientOptions
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        self.alpn = protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self.built = Built::default();
        self
    }

    /// Refuses servers that cannot speak at least `version` (Twisted's `raiseMinimumTo`).
    /// The default allows TLS 1.2 and 1.3.
    ///
    /// ```
    /// use twistor::tls::{TlsVersion, options_for_client_tls};
    /// let _o = options_for_client_tls("example.com").min_version(TlsVersion::Tls13);
    /// ```
    #[doc(alias = "raiseMinimumTo")]
    pub fn min_version(mut self, version: TlsVersion) -> ClientOptions {
        self.versions.min = version;
        self.built = Built::default();
        self
    }

    /// Offers no version above `version` (Twisted's `lowerMaximumSecurityTo`). A minimum
    /// above the maximum makes [`config`](Self::config) fail.
    ///
    /// ```
    /// use twistor::tls::{TlsError, TlsVersion, TrustRoots, options_for_client_tls};
    /// let o = options_for_client_tls("example.com")
    ///     .trust_roots(TrustRoots::Webpki)
    ///     .min_version(TlsVersion::Tls13)
    ///     .max_version(TlsVersion::Tls12);
    /// assert!(matches!(o.config(), Err(TlsError::Config(_))));
    /// ```
    #[doc(alias = "lowerMaximumSecurityTo")]
    pub fn max_version(mut self, version: TlsVersion) -> ClientOptions {
        self.versions.max = version;
        self.built = Built::default();
        self
    }

    /// **Turns verification off**: any certificate, from any issuer, for any name, expired or
    /// not, is accepted (the handshake signatures are still checked). The connection is then
    /// encrypted but not authenticated: anyone on the path can impersonate the server. For
    /// tests and for peers authenticated some other way only.
    ///
    /// ```
    /// let _o = twistor::tls::options_for_client_tls("localhost").danger_accept_any_certificate();
    /// ```
    pub fn danger_accept_any_certificate(mut self) -> ClientOptions {
        self.verify = false;
        self.built = Built::default();
        self
    }

    /// The server name rustls verifies and sends (as SNI when it is a DNS name). A name
    /// with non-ASCII characters (`bücher.example`) becomes its A-label
    /// (`xn--bcher-kva.example`, IDNA's UTS #46 processing, as Twisted's `_idnaBytes`),
    /// which is what certificates and SNI carry.
    pub(crate) fn server_name(&self) -> Result<ServerName<'static>, TlsError> {
        let invalid = || TlsError::InvalidHostName(self.hostname.clone());
        let ascii = if self.hostname.is_ascii() {
            self.hostname.clone()
        } else {
            idna::domain_to_ascii(&self.hostname).map_err(|_| invalid())?
        };
        ServerName::try_from(ascii).map_err(|_| invalid())
    }

    /// The rustls configuration (built once, then shared: sessions resume across the
    /// connections made with it).
    ///
    /// ```
    /// use twistor::tls::{options_for_client_tls, TrustRoots};
    /// let o = options_for_client_tls("example.com").trust_roots(TrustRoots::Webpki);
    /// assert!(o.config().is_ok());
    /// ```
    pub fn config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        if let Some(c) = self.built.borrow().as_ref() {
            return Ok(c.clone());
        }
        self.server_name()?;
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions.rustls()?)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if self.verify {
            builder.with_root_certificates(self.roots.store()?)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        };
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| TlsError::Config(format!("client certificate and key: {e}")))?,
        };
        config.alpn_protocols = self.alpn.clone();
        let config = Arc::new(config);
        *self.built.borrow_mut() = Some(config.clone());
        Ok(config)
    }
}

/// The verifier of [`ClientOptions::danger_accept_any_certificate`].
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A role and its options, for [`Transport::start_tls`](crate::transport::Transport::start_tls).
///
/// ```
/// use twistor::tls::{TlsConfig, options_for_client_tls};
/// let c = TlsConfig::from(options_for_client_tls("mail.example.com"));
/// assert!(matches!(c, TlsConfig::Client(_)));
/// ```
#[derive(Debug, Clone)]
pub enum TlsConfig {
    /// Be the TLS client (send the ClientHello).
    Client(ClientOptions),
    /// Be the TLS server.
    Server(ServerOptions),
}

impl From<ClientOptions> for TlsConfig {
    fn from(o: ClientOptions) -> TlsConfig {
        TlsConfig::Client(o)
    }
}

impl From<ServerOptions> for TlsConfig {
    fn from(o: ServerOptions) -> TlsConfig {
        TlsConfig::Server(o)
    }
}

impl TlsConfig {
    /// A new rustls connection in this role, and the host name a client verifies against.
    pub(crate) fn connection(&self) -> Result<(rustls::Connection, Option<String>), TlsError> {
        match self {
            TlsConfig::Client(o) => {
                let conn = rustls::ClientConnection::new(o.config()?, o.server_name()?)?;
                Ok((conn.into(), Some(o.hostname.clone())))
            }
            TlsConfig::Server(o) => Ok((rustls::ServerConnection::new(o.config()?)?.into(), None)),
        }
    }
}

//! Endpoints from strings (Twisted's `serverFromString` / `clientFromString`).
//!
//! Case rules, as Twisted's: the built-in server types `tcp`, `unix` and `ssl` are matched
//! case-sensitively (`TCP:80` is an unknown type), while the server types Twisted adds as
//! plugins (`tcp6`, `systemd`, `tls`) and every client type are matched in any case.
//! Keywords are always case-sensitive (`privateKey`, not `privatekey`).
//!
//! Server descriptions:
//! - `tcp:PORT[:interface=IP][:backlog=N]`
//! - `tcp6:PORT[:backlog=N][:interface=IP6]` (interface `::` by default)
//! - `unix:ADDRESS[:mode=OCTAL][:backlog=N][:lockfile=0|1]` (mode 666, lock file on)
//! - `systemd:domain=INET|INET6|UNIX:index=N` or `:name=NAME` (exactly one of the two)
//! - `ssl:PORT[:privateKey=PATH][:certKey=PATH][:sslmethod=NAME][:interface=IP][:backlog=N]
//!   [:extraCertChain=PATH][:dhParameters=PATH]`: TLS over `tcp:` (a
//!   [`TlsServerEndpoint`]). `privateKey` defaults to `server.pem`,
//!   `certKey` to the `privateKey` file (one PEM holding both); the certificates of
//!   `extraCertChain` follow the leaf. See [`TlsServerDescription`] for `sslmethod` and
//!   `dhParameters`.
//! - `tls:DIRECTORY[:PORT][:BACKLOG][:INTERFACE]`: TLS over `tcp6:` (port 443, interface
//!   `::`; over `tcp:` if the interface is an IPv4 address) presenting the certificate the
//!   client names with SNI, from a directory of `NAME.pem` files, each the chain and key for
//!   host `NAME`, with `DEFAULT.pem` for clients naming none or an unknown host (see
//!   [`ServerOptions::from_sni_directory`]).
//!
//! Client descriptions:
//! - `tcp:HOST:PORT` or `tcp:host=HOST:port=PORT`, with `[:timeout=SECONDS][:bindAddress=IP]`
//! - `unix:PATH` or `unix:path=PATH`, with `[:timeout=SECONDS][:lockfile=0|1]`
//! - `tls:HOST:PORT[:timeout=SECONDS][:bindAddress=IP][:trustRoots=PATH][:certificate=PATH]
//!   [:privateKey=PATH][:endpoint=DESCRIPTION]`: TLS (see
//!   [`wrap_client_tls`]) over a
//!   [`HostnameEndpoint`] to `HOST:PORT`, or over the endpoint `endpoint=` describes (its
//!   colons escaped, see [`quote_string_argument`](super::quote_string_argument)), `HOST`
//!   then only naming the server to verify.
//! - `ssl:HOST:PORT[:timeout=SECONDS][:bindAddress=IP][:caCertsDir=PATH][:hostname=NAME]
//!   [:certKey=PATH][:privateKey=PATH]`: TLS over `tcp:`.
//!
//! TLS clients always verify the server (see [`TlsClientDescription`]). Files named by TLS
//! descriptions are read when the endpoint is built; a bad one is an error naming its
//! keyword and path.
//!
//! Positional arguments fill the parameters in the order listed (for clients, only the host
//! and port, or the path); each may be given by keyword instead, not both.
//!
//! ```
//! use twistor::endpoints::{parse_client, parse_server, ClientDescription, ServerDescription};
//!
//! assert!(parse_server("TCP:80").is_err()); // a built-in server type: lower case only
//! assert!(matches!(parse_server("TCP6:80"), Ok(ServerDescription::Tcp6(_))));
//! assert!(matches!(parse_client("TCP:example.com:80"), Ok(ClientDescription::Tcp4(_))));
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::client::{
    ClientEndpoint, EndpointReactor, ProtocolOf, Tcp4ClientEndpoint, UnixClientEndpoint,
};
use super::description::Description;
use super::error::{EndpointError, ErrorKind};
use super::hostname::{HostnameEndpoint, HostnameOptions, Tcp6ClientEndpoint};
use super::server::{ServerEndpoint, Tcp4ServerEndpoint, Tcp6ServerEndpoint, UnixServerEndpoint};
use super::systemd::{SocketDomain, SocketSelector, SystemdServerEndpoint};
use super::tls::{self, TlsClientEndpoint, TlsServerEndpoint, wrap_client_tls};
use crate::Deferred;
use crate::protocol::{Factory, Handle};
use crate::reactor::Reactor;
use crate::tls::{ClientOptions, Identity, ServerOptions, TlsVersion, options_for_client_tls};
use crate::transport::listener::ListeningPort;
use crate::transport::tcp::{ConnectOptions, IntoFactory, ListenOptions};
use crate::transport::unix::{UnixConnectOptions, UnixListenOptions};

/// The TLS versions an `sslmethod` name (an OpenSSL method constant, with or without its
/// `_SERVER`/`_CLIENT` suffix) allows: `None` for the names meaning "negotiate the best
/// version" (TLS 1.2 and 1.3), `Some(Tls12)` for `TLSv1_2_METHOD`. A name pinning a version
/// older than TLS 1.2 is refused with the reason, rather than silently widened.
fn ssl_method_versions(name: &str) -> Result<Option<TlsVersion>, String> {
    let base = name
        .strip_suffix("_SERVER_METHOD")
        .or_else(|| name.strip_suffix("_CLIENT_METHOD"))
        .or_else(|| name.strip_suffix("_METHOD"));
    match base {
        Some("TLS" | "SSLv23") => Ok(None),
        Some("TLSv1_2") => Ok(Some(TlsVersion::Tls12)),
        Some(old @ ("TLSv1" | "TLSv1_1" | "SSLv3" | "SSLv2")) => {
            let version = match old {
                "TLSv1" => "TLS 1.0",
                "TLSv1_1" => "TLS 1.1",
                "SSLv3" => "SSL 3.0",
                _ => "SSL 2.0",
            };
            Err(format!(
                "pins {version}, which is insecure and not implemented by rustls (only TLS \
                 1.2 and 1.3 are: use TLSv1_2_METHOD, or TLS_METHOD to negotiate)"
            ))
        }
        _ => Err(
            "is not a TLS method name (TLS_METHOD, SSLv23_METHOD or TLSv1_2_METHOD, \
                  optionally with _SERVER or _CLIENT before _METHOD)"
                .into(),
        ),
    }
}

/// A TLS server description, parsed and checked ([`server_from_string`] builds it).
///
/// `sslmethod` picks the versions: `TLS_METHOD` and `SSLv23_METHOD` (and their `_SERVER` /
/// `_CLIENT` forms) negotiate TLS 1.2 or 1.3, `TLSv1_2_METHOD` allows TLS 1.2 only, and the
/// names pinning an older version (`TLSv1_METHOD`, `TLSv1_1_METHOD`, `SSLv3_METHOD`,
/// `SSLv2_METHOD`) are refused, naming the method and why; `dhParameters` is accepted and ignored, since key exchange is
/// always (EC)DHE over named groups, with no Diffie-Hellman parameters to load, so
/// descriptions written for Twisted keep working with the same forward secrecy.
///
/// ```
/// use twistor::endpoints::{parse_server, ServerDescription, TlsServerDescription};
///
/// let ServerDescription::Tls(TlsServerDescription::Ssl { port, private_key, cert_key, .. }) =
///     parse_server("ssl:8443:privateKey=key.pem:certKey=cert.pem").unwrap() else { panic!() };
/// assert_eq!(port, 8443);
/// assert_eq!(private_key.to_str(), Some("key.pem"));
/// assert_eq!(cert_key.to_str(), Some("cert.pem"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsServerDescription {
    /// `ssl:PORT...`: one certificate and key.
    Ssl {
        /// The TCP port.
        port: u16,
        /// The private key file (default `server.pem`).
        private_key: PathBuf,
        /// The certificate file (default: the private key file).
        cert_key: PathBuf,
        /// A TLS method name (Twisted's deprecated `sslmethod`), if given.
        ssl_method: Option<String>,
        /// The interface ("": every IPv4 interface).
        interface: String,
        /// The backlog (50).
        backlog: u32,
        /// A file of intermediate certificates, if given.
        extra_cert_chain: Option<PathBuf>,
        /// A Diffie-Hellman parameters file, if given.
        dh_parameters: Option<PathBuf>,
    },
    /// `tls:DIRECTORY...`: every certificate in a directory, picked by SNI.
    Directory {
        /// The directory of `.pem` files.
        directory: PathBuf,
        /// The TCP port (443).
        port: u16,
        /// The backlog (50).
        backlog: u32,
        /// The interface (`::`).
        interface: String,
    },
}

/// A TLS client description, parsed and checked ([`client_from_string`] builds it).
///
/// Both forms verify the server: `tls:` against `HOST`, `ssl:` against `hostname=` or else
/// `HOST`, with the trust roots given (`trustRoots=` / `caCertsDir=`, a PEM file or a
/// directory of `.pem` files) or else the system's. (Twisted's `ssl:` without `hostname=`
/// verifies nothing; no description turns verification off here.)
///
/// ```
/// use twistor::endpoints::{parse_client, ClientDescription, TlsClientDescription};
///
/// let ClientDescription::Tls(TlsClientDescription::Tls { host, port, trust_roots, .. }) =
///     parse_client("tls:example.com:443:trustRoots=/etc/ca").unwrap() else { panic!() };
/// assert_eq!((host.as_str(), port), ("example.com", 443));
/// assert_eq!(trust_roots.unwrap().to_str(), Some("/etc/ca"));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TlsClientDescription {
    /// `ssl:HOST:PORT...` (verifies the name only with `hostname=`).
    Ssl {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The timeout and bind address.
        options: ConnectOptions,
        /// A client certificate file (alone: one PEM with the key too).
        cert_key: Option<PathBuf>,
        /// The client certificate's key file.
        private_key: Option<PathBuf>,
        /// A directory of CA certificates to trust.
        ca_certs_dir: Option<PathBuf>,
        /// The name to verify the server's certificate against.
        hostname: Option<String>,
    },
    /// `tls:HOST:PORT...` (always verifies the server against `HOST`).
    Tls {
        /// The host (for the connection and the verification).
        host: String,
        /// The port.
        port: u16,
        /// The timeout and bind address.
        options: ConnectOptions,
        /// A client certificate file.
        certificate: Option<PathBuf>,
        /// The client certificate's key file.
        private_key: Option<PathBuf>,
        /// A directory of trusted roots (default: the platform's).
        trust_roots: Option<PathBuf>,
        /// Connect through this endpoint instead of a [`HostnameEndpoint`] to `HOST:PORT`.
        endpoint: Option<Box<ClientDescription>>,
    },
}

/// A parsed server description.
///
/// ```
/// use twistor::endpoints::{parse_server, ServerDescription};
/// assert!(matches!(parse_server("unix:run/a.sock").unwrap(), ServerDescription::Unix(_)));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ServerDescription {
    /// `tcp:`.
    Tcp4(Tcp4ServerEndpoint),
    /// `tcp6:`.
    Tcp6(Tcp6ServerEndpoint),
    /// `unix:`.
    Unix(UnixServerEndpoint),
    /// `systemd:`.
    Systemd(SystemdServerEndpoint),
    /// `ssl:` and `tls:`.
    Tls(TlsServerDescription),
}

/// A parsed client description.
///
/// ```
/// use twistor::endpoints::{parse_client, ClientDescription};
/// assert!(matches!(parse_client("TCP:h:80").unwrap(), ClientDescription::Tcp4(_)));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientDescription {
    /// `tcp:`.
    Tcp4(Tcp4ClientEndpoint),
    /// `unix:`.
    Unix(UnixClientEndpoint),
    /// `ssl:` and `tls:`.
    Tls(TlsClientDescription),
}

/// A server endpoint built from a string (see [`server_from_string`]).
///
/// ```
/// use twistor::endpoints::{server_from_string, AnyServerEndpoint};
/// assert!(matches!(server_from_string("tcp6:0").unwrap(), AnyServerEndpoint::Tcp6(_)));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyServerEndpoint {
    /// TCP over IPv4.
    Tcp4(Tcp4ServerEndpoint),
    /// TCP over IPv6.
    Tcp6(Tcp6ServerEndpoint),
    /// A UNIX socket.
    Unix(UnixServerEndpoint),
    /// An inherited socket.
    Systemd(SystemdServerEndpoint),
    /// TLS over another server endpoint (`ssl:`).
    Tls(Box<TlsServerEndpoint<AnyServerEndpoint>>),
}

impl ServerEndpoint for AnyServerEndpoint {
    fn listen<A>(&self, reactor: &Reactor, factory: A) -> Deferred<ListeningPort>
    where
        A: IntoFactory,
        A::Factory: Factory,
    {
        match self {
            AnyServerEndpoint::Tcp4(e) => e.listen(reactor, factory),
            AnyServerEndpoint::Tcp6(e) => e.listen(reactor, factory),
            AnyServerEndpoint::Unix(e) => e.listen(reactor, factory),
            AnyServerEndpoint::Systemd(e) => e.listen(reactor, factory),
            AnyServerEndpoint::Tls(e) => e.listen(reactor, factory),
        }
    }
}

/// A client endpoint built from a string (see [`client_from_string`]), or made to be one of
/// the kinds strings do not name.
///
/// ```
/// use twistor::endpoints::{client_from_string, AnyClientEndpoint, HostnameEndpoint};
/// assert!(matches!(client_from_string("unix:run/a.sock").unwrap(), AnyClientEndpoint::Unix(_)));
/// let _any = AnyClientEndpoint::Hostname(HostnameEndpoint::new("example.com", 80));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyClientEndpoint {
    /// TCP, first IPv4 address of the host.
    Tcp4(Tcp4ClientEndpoint),
    /// TCP over IPv6.
    Tcp6(Tcp6ClientEndpoint),
    /// A host name, its addresses raced.
    Hostname(HostnameEndpoint),
    /// A UNIX socket.
    Unix(UnixClientEndpoint),
    /// TLS over another client endpoint (`ssl:`, `tls:`).
    Tls(Box<TlsClientEndpoint<AnyClientEndpoint>>),
}

impl ClientEndpoint for AnyClientEndpoint {
    fn connect<R, A>(&self, reactor: &R, factory: A) -> Deferred<Handle<ProtocolOf<A>>>
    where
        R: EndpointReactor,
        A: IntoFactory,
        A::Factory: Factory,
    {
        match self {
            AnyClientEndpoint::Tcp4(e) => e.connect(reactor, factory),
            AnyClientEndpoint::Tcp6(e) => e.connect(reactor, factory),
            AnyClientEndpoint::Hostname(e) => e.connect(reactor, factory),
            AnyClientEndpoint::Unix(e) => e.connect(reactor, factory),
            AnyClientEndpoint::Tls(e) => e.connect(reactor, factory),
        }
    }
}

/// Parses a server description (see the module docs for the forms and case rules).
///
/// ```
/// use twistor::endpoints::{parse_server, ServerDescription};
///
/// let ServerDescription::Tcp4(e) = parse_server(r"tcp:80:interface=127.0.0.1:backlog=5").unwrap() else { panic!() };
/// assert_eq!((e.port(), e.options().backlog), (80, 5));
/// assert_eq!(parse_server("TCP:80").unwrap_err().to_string(), "TCP:80: unknown endpoint type 'TCP'");
/// ```
#[doc(alias = "serverFromString")]
pub fn parse_server(text: &str) -> Result<ServerDescription, EndpointError> {
    let d = Description::parse(text)?;
    let kind = d.kind.as_str();
    // Built-ins: exact, lower case. Twisted's plugins: any case.
    let lower = kind.to_ascii_lowercase();
    let e = |k| EndpointError::new(text, k);
    match (kind, lower.as_str()) {
        ("tcp", _) => {
            let a = Args::bind(&d, "tcp", &["port", "interface", "backlog"], &[])?;
            let options = ListenOptions {
                interface: a.get("interface").unwrap_or_default().to_string(),
                backlog: a.parse_or("backlog", 50)?,
                ..Default::default()
            };
            Ok(ServerDescription::Tcp4(Tcp4ServerEndpoint::with_options(
                a.port("port")?,
                options,
            )))
        }
        (_, "tcp6") => {
            let a = Args::bind(&d, "tcp6", &["port", "backlog", "interface"], &[])?;
            let interface = a.get("interface").unwrap_or("::");
            if interface.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(e(ErrorKind::BadValue {
                    part: "interface".into(),
                    value: interface.into(),
                    reason: "is not an IPv6 address".into(),
                }));
            }
            let options = ListenOptions {
                interface: interface.to_string(),
                backlog: a.parse_or("backlog", 50)?,
                ..Default::default()
            };
            Ok(ServerDescription::Tcp6(Tcp6ServerEndpoint::with_options(
                a.port("port")?,
                options,
            )))
        }
        ("unix", _) => {
            let a = Args::bind(&d, "unix", &["address", "mode", "backlog", "lockfile"], &[])?;
            let mode = match a.get("mode") {
                None => 0o666,
                Some(m) => u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| a.bad("mode", m, "is not an octal file mode (such as 660)"))?,
            };
            let options = UnixListenOptions {
                mode,
                backlog: a.parse_or("backlog", 50)?,
                want_pid: a.flag("lockfile", true)?,
            };
            Ok(ServerDescription::Unix(UnixServerEndpoint::with_options(
                a.required("address")?,
                options,
            )))
        }
        (_, "systemd") => {
            let a = Args::bind(&d, "systemd", &["domain", "index", "name"], &[])?;
            let domain_name = a.required("domain")?;
            let domain = SocketDomain::from_name(domain_name)
                .ok_or_else(|| a.bad("domain", domain_name, "is not one of INET, INET6, UNIX"))?;
            let selector = match (a.get("index"), a.get("name")) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(e(ErrorKind::Missing {
                        kind: "systemd".into(),
                        part: "index or a name (exactly one of the two)".into(),
                    }));
                }
                (Some(_), None) => SocketSelector::Index(a.parse_or("index", 0)?),
                (None, Some(n)) => SocketSelector::Name(n.to_string()),
            };
            Ok(ServerDescription::Systemd(SystemdServerEndpoint::new(
                domain, selector,
            )))
        }
        ("ssl", _) => {
            let a = Args::bind(
                &d,
                "ssl",
                &[
                    "port",
                    "privateKey",
                    "certKey",
                    "sslmethod",
                    "interface",
                    "backlog",
                    "extraCertChain",
                    "dhParameters",
                ],
                &[],
            )?;
            let private_key = PathBuf::from(a.get("privateKey").unwrap_or("server.pem"));
            if let Some(m) = a.get("sslmethod") {
                ssl_method_versions(m).map_err(|reason| a.bad("sslmethod", m, &reason))?;
            }
            Ok(ServerDescription::Tls(TlsServerDescription::Ssl {
                port: a.port("port")?,
                cert_key: a.get("certKey").map_or(private_key.clone(), PathBuf::from),
                private_key,
                ssl_method: a.get("sslmethod").map(str::to_string),
                interface: a.get("interface").unwrap_or_default().to_string(),
                backlog: a.parse_or("backlog", 50)?,
                extra_cert_chain: a.get("extraCertChain").map(PathBuf::from),
                dh_parameters: a.get("dhParameters").map(PathBuf::from),
            }))
        }
        (_, "tls") => {
            let a = Args::bind(
                &d,
                "tls",
                &["directory", "port", "backlog", "interface"],
                &[],
            )?;
            Ok(ServerDescription::Tls(TlsServerDescription::Directory {
                directory: PathBuf::from(a.required("directory")?),
                port: match a.get("port") {
                    None => 443,
                    Some(_) => a.port("port")?,
                },
                backlog: a.parse_or("backlog", 50)?,
                interface: a.get("interface").unwrap_or("::").to_string(),
            }))
        }
        _ => Err(e(ErrorKind::UnknownType(kind.to_string()))),
    }
}

/// Parses a client description (see the module docs; client types match in any case).
///
/// ```
/// use twistor::endpoints::{parse_client, ClientDescription};
///
/// let ClientDescription::Tcp4(e) = parse_client("tcp:host=example.com:port=80:timeout=5").unwrap() else { panic!() };
/// assert_eq!((e.host(), e.port()), ("example.com", 80));
/// assert_eq!(e.options().timeout, Some(std::time::Duration::from_secs(5)));
/// ```
#[doc(alias = "clientFromString")]
pub fn parse_client(text: &str) -> Result<ClientDescription, EndpointError> {
    let d = Description::parse(text)?;
    let kind = d.kind.to_ascii_lowercase();
    match kind.as_str() {
        "tcp" => {
            let a = Args::bind_client(&d, "tcp", &["host", "port", "timeout", "bindAddress"])?;
            Ok(ClientDescription::Tcp4(Tcp4ClientEndpoint::with_options(
                a.required("host")?,
                a.port("port")?,
                a.connect_options()?,
            )))
        }
        "unix" => {
            // Only the path may be positional (Twisted's `_parseClientUNIX`).
            let a = Args::bind_from(&d, "unix", &["path", "timeout", "lockfile"], &[], &["path"])?;
            let options = UnixConnectOptions {
                timeout: a.timeout()?,
                check_pid: a.flag("lockfile", false)?,
            };
            Ok(ClientDescription::Unix(UnixClientEndpoint::with_options(
                a.required("path")?,
                options,
            )))
        }
        "ssl" => {
            let a = Args::bind_client(
                &d,
                "ssl",
                &[
                    "host",
                    "port",
                    "timeout",
                    "bindAddress",
                    "certKey",
                    "privateKey",
                    "caCertsDir",
                    "hostname",
                ],
            )?;
            Ok(ClientDescription::Tls(TlsClientDescription::Ssl {
                host: a.required("host")?.to_string(),
                port: a.port("port")?,
                options: a.connect_options()?,
                cert_key: a.get("certKey").map(PathBuf::from),
                private_key: a.get("privateKey").map(PathBuf::from),
                ca_certs_dir: a.get("caCertsDir").map(PathBuf::from),
                hostname: a.get("hostname").map(str::to_string),
            }))
        }
        "tls" => {
            let a = Args::bind_client(
                &d,
                "tls",
                &[
                    "host",
                    "port",
                    "timeout",
                    "bindAddress",
                    "certificate",
                    "privateKey",
                    "trustRoots",
                    "endpoint",
                ],
            )?;
            let endpoint = match a.get("endpoint") {
                None => None,
                Some(inner) => Some(Box::new(parse_client(inner).map_err(|inner_err| {
                    a.bad(
                        "endpoint",
                        inner,
                        &format!("is not valid: {}", inner_err.kind),
                    )
                })?)),
            };
            Ok(ClientDescription::Tls(TlsClientDescription::Tls {
                host: a.required("host")?.to_string(),
                port: a.port("port")?,
                options: a.connect_options()?,
                certificate: a.get("certificate").map(PathBuf::from),
                private_key: a.get("privateKey").map(PathBuf::from),
                trust_roots: a.get("trustRoots").map(PathBuf::from),
                endpoint,
            }))
        }
        _ => Err(EndpointError::new(
            text,
            ErrorKind::UnknownType(d.kind.clone()),
        )),
    }
}

/// A server endpoint from a description (Twisted's `serverFromString`). The files an
/// `ssl:` description names are read here: one that cannot be read or holds no usable
/// certificate or key is an [`ErrorKind::BadValue`] naming the keyword and the path.
///
/// ```
/// use twistor::endpoints::{server_from_string, ServerEndpoint};
/// use twistor::prelude::*;
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let endpoint = server_from_string("tcp:0:interface=127.0.0.1").unwrap();
/// let port = twistor::testing::success_result_of(&endpoint.listen(&reactor, for_protocol(|| Quiet)));
/// assert_ne!(port.port(), 0);
/// assert!(server_from_string("tcp:80:colour=red").unwrap_err().to_string().contains("'colour'"));
/// let e = server_from_string("ssl:443:privateKey=/nonexistent/key.pem").unwrap_err();
/// assert!(e.to_string().contains("certKey '/nonexistent/key.pem' cannot be read"));
/// ```
#[doc(alias = "serverFromString")]
pub fn server_from_string(text: &str) -> Result<AnyServerEndpoint, EndpointError> {
    Ok(match parse_server(text)? {
        ServerDescription::Tcp4(e) => AnyServerEndpoint::Tcp4(e),
        ServerDescription::Tcp6(e) => AnyServerEndpoint::Tcp6(e),
        ServerDescription::Unix(e) => AnyServerEndpoint::Unix(e),
        ServerDescription::Systemd(e) => AnyServerEndpoint::Systemd(e),
        ServerDescription::Tls(TlsServerDescription::Ssl {
            port,
            private_key,
            cert_key,
            ssl_method,
            interface,
            backlog,
            extra_cert_chain,
            dh_parameters: _,
        }) => {
            let identity = tls::identity_from_files(
                "certKey",
                &cert_key,
                "privateKey",
                &private_key,
                extra_cert_chain
                    .as_deref()
                    .map(|path| ("extraCertChain", path)),
            )
            .map_err(|b| bad_file(text, b))?;
            let tcp = Tcp4ServerEndpoint::with_options(
                port,
                ListenOptions {
                    interface,
                    backlog,
                    ..Default::default()
                },
            );
            let mut options = ServerOptions::new(identity);
            // Checked when parsed.
            if let Some(max) = ssl_method
                .as_deref()
                .and_then(|m| ssl_method_versions(m).ok())
                .flatten()
            {
                options = options.max_version(max);
            }
            // Built now, so a key that does not match its certificate is named here.
            options.config().map_err(|e| {
                EndpointError::new(
                    text,
                    ErrorKind::BadValue {
                        part: "privateKey".into(),
                        value: private_key.display().to_string(),
                        reason: format!("cannot serve its certificate: {e}"),
                    },
                )
            })?;
            AnyServerEndpoint::Tls(Box::new(TlsServerEndpoint::new(
                options,
                AnyServerEndpoint::Tcp4(tcp),
            )))
        }
        ServerDescription::Tls(TlsServerDescription::Directory {
            directory,
            port,
            backlog,
            interface,
        }) => {
            let options = ServerOptions::from_sni_directory(&directory).map_err(|e| {
                EndpointError::new(
                    text,
                    ErrorKind::BadValue {
                        part: "directory".into(),
                        value: directory.display().to_string(),
                        reason: format!("cannot serve: {e}"),
                    },
                )
            })?;
            let listen = ListenOptions {
                interface: interface.clone(),
                backlog,
                ..Default::default()
            };
            // An IPv4 interface listens over IPv4; anything else (the default `::`) over IPv6.
            let inner = if interface.parse::<std::net::Ipv4Addr>().is_ok() {
                AnyServerEndpoint::Tcp4(Tcp4ServerEndpoint::with_options(port, listen))
            } else {
                AnyServerEndpoint::Tcp6(Tcp6ServerEndpoint::with_options(port, listen))
            };
            AnyServerEndpoint::Tls(Box::new(TlsServerEndpoint::new(options, inner)))
        }
    })
}

/// A client endpoint from a description (Twisted's `clientFromString`). The files a TLS
/// description names are read here: one that cannot be read or holds no usable certificate
/// or key is an [`ErrorKind::BadValue`] naming the keyword and the path.
///
/// ```
/// use twistor::endpoints::{client_from_string, ClientEndpoint};
/// use twistor::prelude::*;
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let port = listen_tcp(&reactor, 0, for_protocol(|| Quiet)).unwrap();
/// let endpoint = client_from_string(&format!("tcp:127.0.0.1:{}", port.port())).unwrap();
/// let d = endpoint.connect(&reactor, for_protocol(|| Quiet));
/// while !d.has_result() {
///     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
/// }
/// assert!(twistor::testing::success_result_of(&d).alive());
/// let e = client_from_string("tls:example.com:443:trustRoots=/nonexistent").unwrap_err();
/// assert!(e.to_string().contains("trustRoots '/nonexistent' cannot be read"));
/// ```
#[doc(alias = "clientFromString")]
pub fn client_from_string(text: &str) -> Result<AnyClientEndpoint, EndpointError> {
    build_client(text, parse_client(text)?)
}

fn bad_file(text: &str, b: tls::BadFile) -> EndpointError {
    EndpointError::new(
        text,
        ErrorKind::BadValue {
            part: b.keyword.to_string(),
            value: b.path,
            reason: b.reason,
        },
    )
}

/// The client certificate of a TLS client description: `cert` alone is one PEM holding the
/// certificate and its key; a key without a certificate is refused rather than ignored.
fn client_identity(
    text: &str,
    cert: Option<(&'static str, &Path)>,
    key: Option<&Path>,
) -> Result<Option<Identity>, EndpointError> {
    match (cert, key) {
        (None, None) => Ok(None),
        (None, Some(_)) => {
            let kind = Description::parse(text)?.kind;
            Err(EndpointError::new(
                text,
                ErrorKind::Missing {
                    kind,
                    part: "client certificate for its privateKey".into(),
                },
            ))
        }
        (Some((keyword, cert)), key) => {
            tls::identity_from_files(keyword, cert, "privateKey", key.unwrap_or(cert), None)
                .map(Some)
                .map_err(|b| bad_file(text, b))
        }
    }
}

/// Client options verifying `name`, trusting `roots` (the system's if `None`).
fn client_options(
    text: &str,
    part: &str,
    name: &str,
    roots: Option<(&'static str, &Path)>,
    identity: Option<Identity>,
) -> Result<ClientOptions, EndpointError> {
    let mut options = options_for_client_tls(name);
    if let Some((keyword, path)) = roots {
        let roots = tls::trust_roots_from(keyword, path).map_err(|b| bad_file(text, b))?;
        options = options.trust_roots(roots);
    }
    if let Some(identity) = identity {
        options = options.client_certificate(identity);
    }
    options.server_name().map_err(|_| {
        EndpointError::new(
            text,
            ErrorKind::BadValue {
                part: part.to_string(),
                value: name.to_string(),
                reason: "is neither a DNS name nor an IP address to verify the server against"
                    .into(),
            },
        )
    })?;
    Ok(options)
}

fn build_client(
    text: &str,
    description: ClientDescription,
) -> Result<AnyClientEndpoint, EndpointError> {
    Ok(match description {
        ClientDescription::Tcp4(e) => AnyClientEndpoint::Tcp4(e),
        ClientDescription::Unix(e) => AnyClientEndpoint::Unix(e),
        ClientDescription::Tls(TlsClientDescription::Ssl {
            host,
            port,
            options,
            cert_key,
            private_key,
            ca_certs_dir,
            hostname,
        }) => {
            let identity = client_identity(
                text,
                cert_key.as_deref().map(|p| ("certKey", p)),
                private_key.as_deref(),
            )?;
            let (part, name) = match &hostname {
                Some(n) => ("hostname", n.as_str()),
                None => ("host", host.as_str()),
            };
            let tls = client_options(
                text,
                part,
                name,
                ca_certs_dir.as_deref().map(|p| ("caCertsDir", p)),
                identity,
            )?;
            let tcp = Tcp4ClientEndpoint::with_options(host, port, options);
            AnyClientEndpoint::Tls(Box::new(wrap_client_tls(tls, AnyClientEndpoint::Tcp4(tcp))))
        }
        ClientDescription::Tls(TlsClientDescription::Tls {
            host,
            port,
            options,
            certificate,
            private_key,
            trust_roots,
            endpoint,
        }) => {
            let identity = client_identity(
                text,
                certificate.as_deref().map(|p| ("certificate", p)),
                private_key.as_deref(),
            )?;
            let tls = client_options(
                text,
                "host",
                &host,
                trust_roots.as_deref().map(|p| ("trustRoots", p)),
                identity,
            )?;
            let inner = match endpoint {
                Some(inner) => build_client(text, *inner)?,
                None => AnyClientEndpoint::Hostname(HostnameEndpoint::with_options(
                    host,
                    port,
                    HostnameOptions {
                        timeout: options.timeout,
                        bind_address: options.bind_address.map(|a| a.ip()),
                        ..Default::default()
                    },
                )),
            };
            AnyClientEndpoint::Tls(Box::new(wrap_client_tls(tls, inner)))
        }
    })
}

/// The arguments of one description, bound to the type's parameter names.
struct Args<'a> {
    text: &'a str,
    values: HashMap<&'static str, String>,
}

impl<'a> Args<'a> {
    /// Positional arguments fill `params` in order; keywords must be among `params` or
    /// `extra`.
    fn bind(
        d: &'a Description,
        kind: &str,
        params: &[&'static str],
        extra: &[&'static str],
    ) -> Result<Args<'a>, EndpointError> {
        Self::bind_from(d, kind, params, extra, params)
    }

    /// Client TCP-like types: only the host and port may be positional, and a single
    /// positional argument is the port when `host=` is given, else the host (Twisted's
    /// `_parseClientTCP`).
    fn bind_client(
        d: &'a Description,
        kind: &str,
        params: &[&'static str],
    ) -> Result<Args<'a>, EndpointError> {
        let order: &[&'static str] = if d.args.len() == 1 && d.keyword("host").is_some() {
            &["port"]
        } else {
            &["host", "port"]
        };
        Self::bind_from(d, kind, params, &[], order)
    }

    fn bind_from(
        d: &'a Description,
        kind: &str,
        params: &[&'static str],
        extra: &[&'static str],
        order: &[&'static str],
    ) -> Result<Args<'a>, EndpointError> {
        let err = |k| EndpointError::new(&d.text, k);
        let mut values = HashMap::new();
        for (i, v) in d.args.iter().enumerate() {
            let Some(name) = order.get(i) else {
                return Err(err(ErrorKind::TooManyArguments {
                    kind: kind.to_string(),
                    extra: v.clone(),
                }));
            };
            values.insert(*name, v.clone());
        }
        for (k, v) in &d.kwargs {
            let Some(name) = params.iter().chain(extra).find(|p| **p == k) else {
                return Err(err(ErrorKind::UnknownKeyword {
                    kind: kind.to_string(),
                    keyword: k.clone(),
                }));
            };
            if values.insert(*name, v.clone()).is_some() {
                return Err(err(ErrorKind::GivenTwice(k.clone())));
            }
        }
        Ok(Args {
            text: &d.text,
            values,
        })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn bad(&self, part: &str, value: &str, reason: &str) -> EndpointError {
        EndpointError::new(
            self.text,
            ErrorKind::BadValue {
                part: part.to_string(),
                value: value.to_string(),
                reason: reason.to_string(),
            },
        )
    }

    fn required(&self, name: &str) -> Result<&str, EndpointError> {
        self.get(name).ok_or_else(|| {
            let kind = Description::parse(self.text)
                .map(|d| d.kind)
                .unwrap_or_default();
            EndpointError::new(
                self.text,
                ErrorKind::Missing {
                    kind,
                    part: name.to_string(),
                },
            )
        })
    }

    fn port(&self, name: &str) -> Result<u16, EndpointError> {
        let v = self.required(name)?;
        v.parse::<u16>().map_err(|_| {
            if v.parse::<u64>().is_ok() {
                self.bad(name, v, "is out of range (0 to 65535)")
            } else {
                self.bad(name, v, "is not a number")
            }
        })
    }

    fn parse_or<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, EndpointError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| self.bad(name, v, "is not a non-negative whole number")),
        }
    }

    /// `0` is off, any other whole number on (Twisted's `bool(int(value))`).
    fn flag(&self, name: &str, default: bool) -> Result<bool, EndpointError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .map(|n| n != 0)
                .map_err(|_| self.bad(name, v, "is not 0 or 1")),
        }
    }

    fn timeout(&self) -> Result<Option<Duration>, EndpointError> {
        match self.get("timeout") {
            None => Ok(Some(Duration::from_secs(30))),
            Some(v) => {
                let secs = v
                    .parse::<f64>()
                    .map_err(|_| self.bad("timeout", v, "is not a number of seconds"))?;
                crate::transport::tcp::timeout_from_secs(secs)
                    .map(Some)
                    .map_err(|_| {
                        self.bad(
                            "timeout",
                            v,
                            "is not a finite, non-negative number of seconds",
                        )
                    })
            }
        }
    }

    fn connect_options(&self) -> Result<ConnectOptions, EndpointError> {
        let bind_address = match self.get("bindAddress") {
            None => None,
            Some(v) => Some(std::net::SocketAddr::new(
                v.parse::<IpAddr>()
                    .map_err(|_| self.bad("bindAddress", v, "is not an IP address"))?,
                0,
            )),
        };
        Ok(ConnectOptions {
            timeout: self.timeout()?,
            bind_address,
        })
    }
}

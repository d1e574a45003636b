//! TLS endpoints on real sockets (127.0.0.1 or a UNIX socket, port 0, bounded time), with
//! certificates made at run time into a temporary directory: `ssl:` server strings answered
//! by `tls:` and `ssl:` client strings, verification failures named through the connect
//! Deferred, TLS over a UNIX socket, an intermediate sent from `extraCertChain`, files that
//! cannot be used named with their keyword, cancelling a connect (before and during the
//! handshake), options that cannot verify, and a factory that builds nothing.

mod tcputil;
mod tlsutil;
mod util;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tcputil::spin;
use tlsutil::{Ca, Leaf};
use twistor::Failure;
use twistor::endpoints::{
    AnyServerEndpoint, ClientEndpoint, ConnectingCancelledError, ErrorKind, ServerEndpoint,
    TlsServerEndpoint, UnixClientEndpoint, UnixServerEndpoint, client_from_string,
    quote_string_argument, server_from_string, wrap_client_tls,
};
use twistor::prelude::*;
use twistor::testing::{failure_result_of, success_result_of};
use twistor::tls::TlsError;
use twistor::transport::listener::ListeningPort;
use twistor::transport::tcp::listen_tcp_with;
use util::bounded;

const SECS: f64 = 10.0;

/// A fresh directory for one test's PEM files, removed on drop.
struct Files(PathBuf);

impl Files {
    fn new(tag: &str) -> Files {
        let dir = std::env::temp_dir().join(format!(
            "twistor-eptls-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Files(dir)
    }
    fn write(&self, name: &str, content: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_string()
    }
    fn dir(&self) -> &Path {
        &self.0
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        cx.transport().write(data);
    }
}

/// Says hello on connecting and records what comes back and how it ended.
#[derive(Default)]
struct Hello {
    got: Vec<u8>,
    handshake: bool,
    lost: Rc<RefCell<Option<Failure>>>,
    made: Rc<Cell<bool>>,
}

impl Protocol for Hello {
    fn connection_made(&mut self, cx: &Context<Self>) {
        self.made.set(true);
        cx.transport().write(b"hello");
    }
    fn handshake_completed(&mut self, _cx: &Context<Self>) {
        self.handshake = true;
    }
    fn data_received(&mut self, _cx: &Context<Self>, data: &[u8]) {
        self.got.extend_from_slice(data);
    }
    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        *self.lost.borrow_mut() = Some(reason);
    }
}

fn listen(reactor: &Reactor, description: &str) -> ListeningPort {
    let endpoint = server_from_string(description).unwrap();
    assert!(matches!(endpoint, AnyServerEndpoint::Tls(_)));
    success_result_of(&endpoint.listen(reactor, for_protocol(|| Echo)))
}

/// Connects with `description`; the Deferred's result once it has one.
fn connect(reactor: &Reactor, description: &str) -> Result<Handle<Hello>, Failure> {
    connect_with(reactor, description, Rc::default())
}

fn connect_with(
    reactor: &Reactor,
    description: &str,
    lost: Rc<RefCell<Option<Failure>>>,
) -> Result<Handle<Hello>, Failure> {
    let endpoint = client_from_string(description).unwrap();
    let d = endpoint.connect(
        reactor,
        for_protocol(move || Hello {
            lost: lost.clone(),
            ..Hello::default()
        }),
    );
    spin(reactor, SECS, "the connect Deferred", || d.has_result());
    if d.peek(|r| matches!(r, Some(Ok(_)))) {
        Ok(success_result_of(&d))
    } else {
        Err(failure_result_of(&d))
    }
}

/// The failure of a connect that must fail.
fn failed(r: Result<Handle<Hello>, Failure>, what: &str) -> Failure {
    match r {
        Ok(_) => panic!("{what}"),
        Err(f) => f,
    }
}

/// The echo of "hello" through `handle`.
fn echoed(reactor: &Reactor, handle: &Handle<Hello>) {
    assert_eq!(handle.with(|p, _| p.handshake), Some(true));
    spin(reactor, SECS, "the echo", || {
        handle.with(|p, _| p.got.len() >= 5).unwrap_or(true)
    });
    assert_eq!(handle.with(|p, _| p.got.clone()), Some(b"hello".to_vec()));
}

/// A CA, a server certificate for localhost and 127.0.0.1, and their files.
fn server_files(files: &Files) -> (Ca, Leaf, String, String, String) {
    let ca = Ca::new("endpoints test CA");
    let leaf = ca.server(&["localhost", "127.0.0.1"]);
    let cert = files.write("cert.pem", &leaf.cert_pem);
    let key = files.write("key.pem", &leaf.key_pem);
    let ca_file = files.write("ca.pem", &ca.cert_pem);
    (ca, leaf, cert, key, ca_file)
}

#[test]
fn ssl_server_string_answers_tls_and_ssl_client_strings() {
    bounded(60, || {
        let files = Files::new("roundtrip");
        let (_ca, _leaf, cert, key, ca) = server_files(&files);
        let reactor = Reactor::new().unwrap();
        let port = listen(
            &reactor,
            &format!("ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"),
        );
        let p = port.port();
        // tls: over a HostnameEndpoint, an IP checked against the IP subjectAltName.
        let h = connect(&reactor, &format!("tls:127.0.0.1:{p}:trustRoots={ca}")).unwrap();
        echoed(&reactor, &h);
        // tls: with a name, raced over localhost's addresses (only 127.0.0.1 listens).
        let h = connect(&reactor, &format!("tls:localhost:{p}:trustRoots={ca}")).unwrap();
        echoed(&reactor, &h);
        // trustRoots may name a directory of .pem files (a key file in it is skipped).
        let dir = files.dir().to_str().unwrap();
        let h = connect(&reactor, &format!("tls:127.0.0.1:{p}:trustRoots={dir}")).unwrap();
        echoed(&reactor, &h);
        // ssl: with caCertsDir and hostname=.
        let h = connect(
            &reactor,
            &format!("ssl:127.0.0.1:{p}:caCertsDir={dir}:hostname=localhost"),
        )
        .unwrap();
        echoed(&reactor, &h);
        // The handle is the user's protocol, running over TLS.
        assert_eq!(
            h.with(|_, cx| cx.transport().tls().map(|t| t.active)),
            Some(Some(true))
        );
    });
}

#[test]
fn one_pem_holding_key_and_certificate_serves_with_private_key_alone() {
    bounded(60, || {
        let files = Files::new("onepem");
        let (_ca, leaf, _cert, _key, ca) = server_files(&files);
        // No trailing newline between the two: Twisted accepts that too.
        let both = files.write(
            "both.pem",
            &format!("{}{}", leaf.key_pem, leaf.cert_pem.trim_end()),
        );
        let reactor = Reactor::new().unwrap();
        let port = listen(
            &reactor,
            &format!("ssl:0:privateKey={both}:interface=127.0.0.1"),
        );
        let h = connect(
            &reactor,
            &format!("tls:localhost:{}:trustRoots={ca}", port.port()),
        )
        .unwrap();
        echoed(&reactor, &h);
    });
}

#[test]
fn wrong_host_and_unknown_ca_fail_the_connect_deferred_naming_the_cause() {
    bounded(60, || {
        let files = Files::new("failures");
        let (_ca, _leaf, cert, key, ca) = server_files(&files);
        let other = files.write("other-ca.pem", &Ca::new("another CA").cert_pem);
        let reactor = Reactor::new().unwrap();
        let port = listen(
            &reactor,
            &format!("ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"),
        );
        let p = port.port();
        let inner = quote_string_argument(&format!("tcp:127.0.0.1:{p}"));

        let lost = Rc::new(RefCell::new(None));
        let f = failed(
            connect_with(
                &reactor,
                &format!("tls:wrong.example:{p}:trustRoots={ca}:endpoint={inner}"),
                lost.clone(),
            ),
            "a wrong host must fail the connect",
        );
        match f.downcast_ref::<TlsError>() {
            Some(TlsError::WrongHost {
                expected,
                presented,
            }) => {
                assert_eq!(expected, "wrong.example");
                assert!(
                    presented.contains(&"localhost".to_string()),
                    "{presented:?}"
                );
            }
            other => panic!("{other:?}: {f}"),
        }
        // The protocol saw the same cause as its connection_lost reason.
        let reason = lost.borrow().clone().expect("connection_lost ran");
        assert!(
            matches!(
                reason.downcast_ref::<TlsError>(),
                Some(TlsError::WrongHost { .. })
            ),
            "{reason}"
        );

        let f = failed(
            connect(&reactor, &format!("tls:127.0.0.1:{p}:trustRoots={other}")),
            "an unknown CA must fail the connect",
        );
        assert!(
            matches!(f.downcast_ref::<TlsError>(), Some(TlsError::UnknownIssuer)),
            "{f}"
        );
        // ssl: without hostname= still verifies (against HOST), unlike Twisted's.
        let f = failed(
            connect(&reactor, &format!("ssl:127.0.0.1:{p}:caCertsDir={other}")),
            "ssl: verifies by default",
        );
        assert!(
            matches!(f.downcast_ref::<TlsError>(), Some(TlsError::UnknownIssuer)),
            "{f}"
        );
        // A refused connection fails as the inner endpoint's would.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let free = closed.local_addr().unwrap().port();
        drop(closed);
        let f = failed(
            connect(&reactor, &format!("tls:127.0.0.1:{free}:trustRoots={ca}")),
            "nobody listens",
        );
        assert!(f.downcast_ref::<TlsError>().is_none(), "{f}");
    });
}

#[test]
fn tls_client_string_over_a_unix_socket_endpoint() {
    bounded(60, || {
        let files = Files::new("unix");
        let (_ca, leaf, _cert, _key, ca) = server_files(&files);
        let path = files.dir().join("tls.sock");
        let reactor = Reactor::new().unwrap();
        let server = TlsServerEndpoint::new(leaf.server_options(), UnixServerEndpoint::new(&path));
        let _port = success_result_of(&server.listen(&reactor, for_protocol(|| Echo)));
        let inner = quote_string_argument(&format!("unix:{}", path.display()));
        let h = connect(
            &reactor,
            &format!("tls:localhost:443:trustRoots={ca}:endpoint={inner}"),
        )
        .unwrap();
        echoed(&reactor, &h);
        // The same by hand, over a UNIX client endpoint.
        let endpoint = wrap_client_tls(
            options_for_tls(&ca, "localhost"),
            UnixClientEndpoint::new(&path),
        );
        let d = endpoint.connect(&reactor, for_protocol(Hello::default));
        spin(&reactor, SECS, "the connect", || d.has_result());
        echoed(&reactor, &success_result_of(&d));
    });
}

fn options_for_tls(ca_file: &str, host: &str) -> twistor::tls::ClientOptions {
    twistor::tls::options_for_client_tls(host)
        .trust_roots(twistor::tls::TrustRoots::from_pem_file(ca_file).unwrap())
}

#[test]
fn extra_cert_chain_sends_the_intermediate() {
    bounded(60, || {
        let files = Files::new("chain");
        let root = Ca::new("root CA");
        let intermediate = root.intermediate("intermediate CA");
        let leaf = intermediate.server(&["localhost"]);
        let cert = files.write("leaf.pem", &leaf.cert_pem);
        let key = files.write("leaf.key", &leaf.key_pem);
        let chain = files.write("chain.pem", &intermediate.cert_pem);
        let roots = files.write("root.pem", &root.cert_pem);
        let reactor = Reactor::new().unwrap();
        let with_chain = listen(
            &reactor,
            &format!(
                "ssl:0:privateKey={key}:certKey={cert}:extraCertChain={chain}:interface=127.0.0.1"
            ),
        );
        let h = connect(
            &reactor,
            &format!("tls:localhost:{}:trustRoots={roots}", with_chain.port()),
        )
        .unwrap();
        echoed(&reactor, &h);
        // Without the intermediate the client cannot reach its root.
        let without = listen(
            &reactor,
            &format!("ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"),
        );
        let f = failed(
            connect(
                &reactor,
                &format!("tls:localhost:{}:trustRoots={roots}", without.port()),
            ),
            "no chain, no trust",
        );
        assert!(
            matches!(f.downcast_ref::<TlsError>(), Some(TlsError::UnknownIssuer)),
            "{f}"
        );
    });
}

#[test]
fn files_that_cannot_be_used_are_named_with_their_keyword() {
    let files = Files::new("badfiles");
    let (_ca, leaf, cert, key, ca) = server_files(&files);
    let kind_of = |d: &str| match server_from_string(d) {
        Ok(_) => panic!("{d} built"),
        Err(e) => (e.kind.clone(), e.to_string()),
    };
    // A key file holding only a certificate.
    let (kind, text) = kind_of(&format!("ssl:0:privateKey={cert}:certKey={cert}"));
    assert!(
        matches!(&kind, ErrorKind::BadValue { part, value, .. } if part == "privateKey" && *value == cert),
        "{text}"
    );
    assert!(text.contains("holds no PEM private key"), "{text}");
    // A certificate file holding only a key.
    let (_, text) = kind_of(&format!("ssl:0:privateKey={key}"));
    assert!(
        text.contains(&format!("certKey '{key}' holds no PEM certificate")),
        "{text}"
    );
    // A chain file with no certificate (Twisted's test_sslChainFileMustContainCert).
    let (_, text) = kind_of(&format!(
        "ssl:0:privateKey={key}:certKey={cert}:extraCertChain={key}"
    ));
    assert!(
        text.contains(&format!("extraCertChain '{key}' holds no PEM certificate")),
        "{text}"
    );
    // A key that does not match the certificate.
    let stranger = files.write("stranger.key", &Ca::new("x").server(&["x"]).key_pem);
    let (_, text) = kind_of(&format!("ssl:0:privateKey={stranger}:certKey={cert}"));
    assert!(text.contains(&format!("privateKey '{stranger}'")), "{text}");
    // Missing files.
    let (_, text) = kind_of(&format!(
        "ssl:0:privateKey={key}:certKey=/nonexistent/c.pem"
    ));
    assert!(
        text.contains("certKey '/nonexistent/c.pem' cannot be read"),
        "{text}"
    );
    // Client side: a certificate whose key file is missing; a key with no certificate.
    let client = Ca::new("client CA").client("me");
    let client_cert = files.write("client.pem", &client.cert_pem);
    let e = client_from_string(&format!(
        "tls:localhost:1:trustRoots={ca}:certificate={client_cert}:privateKey=/nonexistent/k"
    ))
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("privateKey '/nonexistent/k' cannot be read"),
        "{e}"
    );
    let e = client_from_string(&format!(
        "tls:localhost:1:trustRoots={ca}:certificate={client_cert}"
    ))
    .unwrap_err();
    assert!(
        e.to_string().contains(&format!(
            "privateKey '{client_cert}' holds no PEM private key"
        )),
        "{e}"
    );
    drop(leaf);
}

#[test]
fn cancelling_a_tls_connect_fails_it_with_connecting_cancelled() {
    bounded(60, || {
        let files = Files::new("cancel");
        let (_ca, _leaf, _cert, _key, ca) = server_files(&files);
        let reactor = Reactor::new().unwrap();
        // A plain TCP server that never answers the ClientHello: the handshake hangs.
        let silent = listen_tcp_with(
            &reactor,
            0,
            for_protocol(twistor::testing::AccumulatingProtocol::default),
            ListenOptions::on("127.0.0.1"),
        )
        .unwrap();
        let endpoint =
            client_from_string(&format!("tls:127.0.0.1:{}:trustRoots={ca}", silent.port()))
                .unwrap();
        let lost = Rc::new(RefCell::new(None));
        let made = Rc::new(Cell::new(false));
        let (l, m) = (lost.clone(), made.clone());
        let d = endpoint.connect(
            &reactor,
            for_protocol(move || Hello {
                lost: l.clone(),
                made: m.clone(),
                ..Hello::default()
            }),
        );
        // Connected (the protocol made), handshake pending.
        spin(&reactor, SECS, "the TCP connection", || made.get());
        assert!(!d.has_result());
        d.cancel();
        let f = failure_result_of(&d);
        assert!(f.is::<ConnectingCancelledError>(), "{f}");
        spin(&reactor, SECS, "the connection to close", || {
            lost.borrow().is_some()
        });
    });
}

#[test]
fn cancelling_before_the_inner_endpoint_connects_cancels_its_attempt() {
    let mr = Rc::new(twistor::testing::MemoryReactor::new());
    let options = twistor::tls::options_for_client_tls("example.com")
        .trust_roots(twistor::tls::TrustRoots::Webpki);
    let endpoint = wrap_client_tls(
        options,
        twistor::endpoints::Tcp4ClientEndpoint::new("10.0.0.1", 443),
    );
    let d = endpoint.connect(&mr, for_protocol(Hello::default));
    twistor::testing::assert_no_result(&d);
    assert_eq!(mr.tcp_clients().len(), 1);
    d.cancel();
    let f = failure_result_of(&d);
    let cancelled = f
        .downcast_ref::<ConnectingCancelledError>()
        .expect("cancelled");
    assert_eq!(
        cancelled.address,
        twistor::transport::Address::Tcp("10.0.0.1:443".parse().unwrap())
    );
}

#[test]
fn options_that_cannot_verify_fail_connect_before_any_attempt() {
    let mr = Rc::new(twistor::testing::MemoryReactor::new());
    let endpoint = wrap_client_tls(
        twistor::tls::options_for_client_tls("not a host name!"),
        twistor::endpoints::Tcp4ClientEndpoint::new("10.0.0.1", 443),
    );
    let d = endpoint.connect(&mr, for_protocol(Hello::default));
    let f = failure_result_of(&d);
    assert!(
        matches!(
            f.downcast_ref::<TlsError>(),
            Some(TlsError::InvalidHostName(_))
        ),
        "{f}"
    );
    assert!(mr.tcp_clients().is_empty());
}

#[test]
fn a_factory_that_builds_nothing_fails_connect_with_no_protocol() {
    bounded(60, || {
        let files = Files::new("noproto");
        let (_ca, _leaf, cert, key, ca) = server_files(&files);
        let reactor = Reactor::new().unwrap();
        let port = listen(
            &reactor,
            &format!("ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"),
        );
        let endpoint =
            client_from_string(&format!("tls:127.0.0.1:{}:trustRoots={ca}", port.port())).unwrap();
        let nothing =
            twistor::protocol::FactoryFn::new(|_: &twistor::transport::Address| None::<Hello>);
        let d = endpoint.connect(&reactor, nothing);
        spin(&reactor, SECS, "the connect", || d.has_result());
        let f = failure_result_of(&d);
        assert!(f.is::<twistor::endpoints::NoProtocol>(), "{f}");
    });
}

#[test]
fn a_server_endpoint_with_unusable_options_fails_listen() {
    let a = Ca::new("a").server(&["localhost"]);
    let b = Ca::new("b").server(&["localhost"]);
    let mismatched = twistor::tls::ServerOptions::new(
        twistor::tls::Identity::from_pem(a.cert_pem.as_bytes(), b.key_pem.as_bytes()).unwrap(),
    );
    let reactor = Reactor::new().unwrap();
    let endpoint = TlsServerEndpoint::new(
        mismatched,
        twistor::endpoints::Tcp4ServerEndpoint::with_options(0, ListenOptions::on("127.0.0.1")),
    );
    let f = failure_result_of(&endpoint.listen(&reactor, for_protocol(|| Echo)));
    assert!(f.downcast_ref::<TlsError>().is_some(), "{f}");
}

#[test]
fn sslmethod_tlsv1_2_serves_tls_1_2_only_and_tls_method_negotiates_1_3() {
    bounded(60, || {
        let files = Files::new("sslmethod");
        let (_ca, _leaf, cert, key, ca) = server_files(&files);
        let reactor = Reactor::new().unwrap();
        for (method, version) in [("TLSv1_2_METHOD", "TLSv1_2"), ("TLS_METHOD", "TLSv1_3")] {
            let port = listen(
                &reactor,
                &format!(
                    "ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1:sslmethod={method}"
                ),
            );
            let h = connect(
                &reactor,
                &format!("tls:127.0.0.1:{}:trustRoots={ca}", port.port()),
            )
            .unwrap();
            echoed(&reactor, &h);
            let seen = h.with(|_, cx| cx.transport().tls()).flatten().unwrap();
            assert_eq!(seen.version.as_deref(), Some(version), "{method}");
        }
    });
}

/// Writes `leaf` as one `NAME.pem` (chain, then key) into `files`.
fn write_sni(files: &Files, name: &str, leaf: &Leaf) {
    files.write(
        &format!("{name}.pem"),
        &format!("{}{}", leaf.cert_pem, leaf.key_pem),
    );
}

/// Connects to `port` on 127.0.0.1 verifying `host` (sent as SNI when it is a DNS name).
fn connect_sni(
    reactor: &Reactor,
    host: &str,
    port: u16,
    ca: &str,
) -> Result<Handle<Hello>, Failure> {
    let inner = quote_string_argument(&format!("tcp:127.0.0.1:{port}"));
    connect(
        reactor,
        &format!("tls:{host}:443:trustRoots={ca}:endpoint={inner}"),
    )
}

fn presented(h: &Handle<Hello>) -> Vec<u8> {
    h.with(|_, cx| cx.transport().tls())
        .flatten()
        .and_then(|t| t.peer_certificate().map(|c| c.to_vec()))
        .unwrap_or_default()
}

fn der(leaf: &Leaf) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[test]
fn tls_directory_server_presents_each_names_certificate_by_sni() {
    bounded(60, || {
        let files = Files::new("sni");
        let ca = Ca::new("sni CA");
        let (a, b) = (ca.server(&["a.example"]), ca.server(&["b.example"]));
        write_sni(&files, "a.example", &a);
        write_sni(&files, "B.Example", &b);
        files.write("README", "not a certificate, ignored");
        let ca_file = files.write("ca.crt", &ca.cert_pem);
        let reactor = Reactor::new().unwrap();
        let dir = files.dir().display().to_string();
        let port = listen(&reactor, &format!("tls:{dir}:0:50:127.0.0.1"));
        let p = port.port();
        let h = connect_sni(&reactor, "a.example", p, &ca_file).unwrap();
        echoed(&reactor, &h);
        assert_eq!(presented(&h), der(&a));
        // Names match in any case.
        let h = connect_sni(&reactor, "b.example", p, &ca_file).unwrap();
        echoed(&reactor, &h);
        assert_eq!(presented(&h), der(&b));
        // An unknown name, and no name at all (an IP address sends no SNI), without
        // DEFAULT.pem: the handshake fails and the client is told so by an alert.
        for host in ["c.example", "127.0.0.1"] {
            let f = failed(connect_sni(&reactor, host, p, &ca_file), host);
            assert!(
                matches!(f.downcast_ref::<TlsError>(), Some(TlsError::AlertReceived(a)) if a == "AccessDenied"),
                "{host}: {f}"
            );
        }
    });
}

#[test]
fn tls_directory_default_pem_answers_unknown_names_and_clients_without_sni() {
    bounded(60, || {
        let files = Files::new("snidefault");
        let ca = Ca::new("sni CA");
        let a = ca.server(&["a.example"]);
        let fallback = ca.server(&["c.example", "127.0.0.1"]);
        write_sni(&files, "a.example", &a);
        write_sni(&files, "DEFAULT", &fallback);
        let ca_file = files.write("ca.crt", &ca.cert_pem);
        let reactor = Reactor::new().unwrap();
        let dir = files.dir().display().to_string();
        let port = listen(&reactor, &format!("tls:{dir}:0:interface=127.0.0.1"));
        let p = port.port();
        let h = connect_sni(&reactor, "a.example", p, &ca_file).unwrap();
        echoed(&reactor, &h);
        assert_eq!(presented(&h), der(&a));
        for host in ["c.example", "127.0.0.1"] {
            let h = connect_sni(&reactor, host, p, &ca_file).unwrap();
            echoed(&reactor, &h);
            assert_eq!(presented(&h), der(&fallback), "{host}");
        }
    });
}

#[test]
fn a_tls_directory_with_a_bad_file_is_refused_naming_the_file() {
    let ca = Ca::new("sni CA");
    let (a, b) = (ca.server(&["a.example"]), ca.server(&["b.example"]));
    let server_error = |files: &Files| {
        let dir = files.dir().display().to_string();
        match server_from_string(&format!("tls:{dir}:0")) {
            Ok(_) => panic!("served from a bad directory"),
            Err(e) => e.to_string(),
        }
    };
    // A certificate without its key.
    let files = Files::new("snibad");
    write_sni(&files, "a.example", &a);
    let bad = files.write("b.example.pem", &b.cert_pem);
    let e = server_error(&files);
    assert!(e.contains(&bad) && e.contains("no private key"), "{e}");
    // A key that is not the certificate's.
    let files = Files::new("snimismatch");
    let bad = files.write("a.example.pem", &format!("{}{}", a.cert_pem, b.key_pem));
    let e = server_error(&files);
    assert!(
        e.contains(&bad) && e.contains("cannot serve its certificate"),
        "{e}"
    );
    // No NAME.pem at all.
    let files = Files::new("sniempty");
    files.write("README", "nothing");
    let e = server_error(&files);
    assert!(e.contains("holds no NAME.pem file"), "{e}");
}

#[test]
fn a_tls_client_string_with_an_internationalized_host_verifies_its_a_label() {
    bounded(60, || {
        let (files, sni) = (Files::new("idna"), Files::new("idna-sni"));
        let ca = Ca::new("idna CA");
        let leaf = ca.server(&["xn--bcher-kva.example"]);
        write_sni(&sni, "xn--bcher-kva.example", &leaf);
        let ca_file = files.write("ca.crt", &ca.cert_pem);
        let reactor = Reactor::new().unwrap();
        let dir = sni.dir().display().to_string();
        let port = listen(&reactor, &format!("tls:{dir}:0:interface=127.0.0.1"));
        let h = connect_sni(&reactor, "bücher.example", port.port(), &ca_file).unwrap();
        echoed(&reactor, &h);
        assert_eq!(presented(&h), der(&leaf));
    });
}

//! TLS on the in-memory transports (Twisted's `protocols/test/test_tls.py` behaviours that do
//! not need a socket): handshake, buffering, one record per callback, closing rules, the
//! failures each side sees, ALPN, client certificates, STARTTLS.

mod tlsutil;

use std::cell::RefCell;
use std::rc::Rc;

use tlsutil::{Ca, self_signed};
use twistor::Failure;
use twistor::error::{ConnectionAborted, ConnectionDone, ConnectionLost};
use twistor::protocol::{Context, Handle, Protocol};
use twistor::testing::{IOPump, StringTransport, connected_server_and_client};
use twistor::tls::{ClientOptions, ServerOptions, TlsConfig, TlsError, TlsInfo, TlsProtocol};

/// Records everything a protocol sees; optionally echoes and writes on connect.
#[derive(Default)]
struct Recorder {
    data: Vec<u8>,
    handshakes: u32,
    info_at_handshake: Option<TlsInfo>,
    lost: Option<Failure>,
    echo: bool,
    greeting: Vec<u8>,
}

impl Protocol for Recorder {
    fn connection_made(&mut self, cx: &Context<Self>) {
        if !self.greeting.is_empty() {
            cx.transport().write(&self.greeting);
        }
    }
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        self.data.extend_from_slice(data);
        if self.echo {
            cx.transport().write(data);
        }
    }
    fn handshake_completed(&mut self, cx: &Context<Self>) {
        self.handshakes += 1;
        self.info_at_handshake = cx.transport().tls();
    }
    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        self.lost = Some(reason);
    }
}

fn echo() -> Recorder {
    Recorder {
        echo: true,
        ..Default::default()
    }
}

struct Pair {
    server: Handle<Recorder>,
    client: Handle<Recorder>,
    pump: IOPump,
}

fn pair(server: Recorder, so: &ServerOptions, client: Recorder, co: &ClientOptions) -> Pair {
    let (st, server) = TlsProtocol::server(server, so).unwrap();
    let (ct, client) = TlsProtocol::client(client, co).unwrap();
    let (_s, _c, pump) = connected_server_and_client(st, ct);
    Pair {
        server,
        client,
        pump,
    }
}

fn lost_tls(h: &Handle<Recorder>) -> TlsError {
    let f = h
        .with(|p, _| p.lost.clone())
        .flatten()
        .expect("connection lost");
    match f.downcast_ref::<TlsError>() {
        Some(e) => e.clone(),
        None => panic!("expected a TlsError, got {f}"),
    }
}

fn lost_reason(h: &Handle<Recorder>) -> Failure {
    h.with(|p, _| p.lost.clone())
        .flatten()
        .expect("connection lost")
}

fn data(h: &Handle<Recorder>) -> Vec<u8> {
    h.with(|p, _| p.data.clone()).unwrap()
}

#[test]
fn handshake_then_echo_both_ways_with_the_peer_certificate_at_handshake() {
    let ca = Ca::new("test CA");
    let leaf = ca.server(&["localhost"]);
    let p = pair(
        echo(),
        &leaf.server_options(),
        Recorder::default(),
        &ca.client_options("localhost"),
    );
    // Nothing is negotiated before the pump runs.
    assert_eq!(p.client.with(|r, _| r.handshakes), Some(0));
    p.pump.flush();
    let info = p
        .client
        .with(|r, _| r.info_at_handshake.clone())
        .flatten()
        .unwrap();
    assert!(info.handshake_complete && info.is_client);
    let der = rustls::pki_types::CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes());
    assert_eq!(info.peer_certificate(), Some(&der.unwrap()));
    assert_eq!(p.server.with(|r, _| r.handshakes), Some(1));
    // A server that asked for no client certificate has none.
    let sinfo = p
        .server
        .with(|_, cx| cx.transport().tls())
        .flatten()
        .unwrap();
    assert!(sinfo.peer_certificate().is_none());
    assert_eq!(sinfo.server_name.as_deref(), Some("localhost"));
    p.client.with(|_, cx| cx.transport().write(b"ping"));
    p.pump.flush();
    assert_eq!(data(&p.server), b"ping");
    assert_eq!(data(&p.client), b"ping");
}

use rustls::pki_types::pem::PemObject;

#[test]
fn data_written_in_connection_made_arrives_after_the_handshake() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let client = Recorder {
        greeting: b"early words".to_vec(),
        ..Default::default()
    };
    let p = pair(
        Recorder::default(),
        &leaf.server_options(),
        client,
        &ca.client_options("localhost"),
    );
    p.pump.flush();
    assert_eq!(data(&p.server), b"early words");
}

/// Splits a byte stream into TLS records: (content type, length).
fn records(mut bytes: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    while bytes.len() >= 5 {
        let len = u16::from_be_bytes([bytes[3], bytes[4]]) as usize;
        out.push((bytes[0], len));
        bytes = &bytes[(5 + len).min(bytes.len())..];
    }
    out
}

/// Writes 16 single bytes for each byte it receives.
struct Chatty;
impl Protocol for Chatty {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        for _ in 0..data.len() * 16 {
            cx.transport().write(b"x");
        }
    }
}

/// Moves bytes between two string transports until both are quiet.
fn shuttle(a: &StringTransport, b: &StringTransport) {
    for _ in 0..100 {
        let (x, y) = (a.value(), b.value());
        if x.is_empty() && y.is_empty() {
            return;
        }
        a.clear();
        b.clear();
        b.deliver(&x);
        a.deliver(&y);
    }
}

#[test]
fn writes_of_one_callback_become_one_record() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let (st, _) = TlsProtocol::server(Chatty, &leaf.server_options()).unwrap();
    let (ct, client) =
        TlsProtocol::client(Recorder::default(), &ca.client_options("localhost")).unwrap();
    let (s, c) = (StringTransport::new(), StringTransport::new());
    s.connect(st);
    c.connect(ct);
    shuttle(&c, &s);
    client.with(|_, cx| cx.transport().write(b"?"));
    let request = c.value();
    c.clear();
    s.deliver(&request);
    let reply = s.value();
    // 16 writes, one application-data record (type 23).
    assert_eq!(records(&reply).len(), 1, "{:?}", records(&reply));
    assert_eq!(records(&reply)[0].0, 23);
    c.deliver(&reply);
    assert_eq!(data(&client), vec![b'x'; 16]);
}

#[test]
fn wrong_host_is_named_on_the_client_and_the_server_gets_the_alert() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["other.example"]);
    let p = pair(
        Recorder::default(),
        &leaf.server_options(),
        Recorder {
            greeting: b"secret".to_vec(),
            ..Default::default()
        },
        &ca.client_options("localhost"),
    );
    p.pump.flush();
    match lost_tls(&p.client) {
        TlsError::WrongHost {
            expected,
            presented,
        } => {
            assert_eq!(expected, "localhost");
            assert!(presented.iter().any(|n| n.contains("other.example")));
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(lost_tls(&p.server), TlsError::AlertReceived(_)));
    // Nothing written before verification leaks.
    assert!(data(&p.server).is_empty());
}

#[test]
fn unknown_issuer_is_named() {
    let ca = Ca::new("ca");
    let leaf = self_signed(&["localhost"]);
    let p = pair(
        Recorder::default(),
        &leaf.server_options(),
        Recorder::default(),
        &ca.client_options("localhost"),
    );
    p.pump.flush();
    assert_eq!(lost_tls(&p.client), TlsError::UnknownIssuer);
    assert_eq!(
        lost_tls(&p.server),
        TlsError::AlertReceived("UnknownCA".into())
    );
}

#[test]
fn expired_certificate_is_named() {
    let ca = Ca::new("ca");
    let leaf = ca.expired_server(&["localhost"]);
    let p = pair(
        Recorder::default(),
        &leaf.server_options(),
        Recorder::default(),
        &ca.client_options("localhost"),
    );
    p.pump.flush();
    assert_eq!(lost_tls(&p.client), TlsError::Expired);
}

#[test]
fn a_required_client_certificate_that_is_missing_fails_both_sides() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let p = pair(
        Recorder::default(),
        &ca.requiring_clients(&leaf),
        Recorder::default(),
        &ca.client_options("localhost"),
    );
    p.pump.flush();
    assert_eq!(lost_tls(&p.server), TlsError::CertificateRequired);
    assert!(matches!(lost_tls(&p.client), TlsError::AlertReceived(_)));
}

#[test]
fn a_required_client_certificate_is_seen_by_the_server() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let client_cert = ca.client("client-1");
    let p = pair(
        echo(),
        &ca.requiring_clients(&leaf),
        Recorder::default(),
        &ca.client_options("localhost")
            .client_certificate(client_cert.identity()),
    );
    p.pump.flush();
    p.client.with(|_, cx| cx.transport().write(b"hi"));
    p.pump.flush();
    assert_eq!(data(&p.client), b"hi");
    let info = p.server.with(|r, _| r.info_at_handshake.clone()).flatten();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(client_cert.cert_pem.as_bytes());
    assert_eq!(info.unwrap().peer_certificate(), Some(&der.unwrap()));
}

#[test]
fn a_client_certificate_from_another_ca_is_refused() {
    let ca = Ca::new("ca");
    let rogue = Ca::new("rogue");
    let leaf = ca.server(&["localhost"]);
    let p = pair(
        Recorder::default(),
        &ca.requiring_clients(&leaf),
        Recorder::default(),
        &ca.client_options("localhost")
            .client_certificate(rogue.client("mallory").identity()),
    );
    p.pump.flush();
    assert_eq!(lost_tls(&p.server), TlsError::UnknownIssuer);
}

fn alpn_result(server: &[&str], client: &[&str]) -> (Option<Vec<u8>>, Pair) {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let p = pair(
        Recorder::default(),
        &leaf.server_options().alpn(server),
        Recorder::default(),
        &ca.client_options("localhost").alpn(client),
    );
    p.pump.flush();
    let proto = p
        .client
        .with(|r, _| r.info_at_handshake.clone())
        .flatten()
        .and_then(|i| i.alpn_protocol);
    (proto, p)
}

#[test]
fn alpn_picks_the_servers_preference_and_none_when_the_client_offers_none() {
    assert_eq!(
        alpn_result(&["h2", "http/1.1"], &["http/1.1", "h2"]).0,
        Some(b"h2".to_vec())
    );
    let (none, p) = alpn_result(&["h2"], &[]);
    assert_eq!(none, None);
    assert!(p.client.with(|r, _| r.lost.is_none()).unwrap());
}

#[test]
fn alpn_without_overlap_fails_with_no_application_protocol() {
    let (_, p) = alpn_result(&["h2"], &["spdy/1"]);
    assert_eq!(lost_tls(&p.server), TlsError::NoApplicationProtocol);
    assert!(matches!(lost_tls(&p.client), TlsError::AlertReceived(_)));
}

#[test]
fn lose_connection_sends_everything_then_close_notify_and_both_see_done() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let p = pair(
        Recorder::default(),
        &leaf.server_options(),
        Recorder::default(),
        &ca.client_options("localhost"),
    );
    p.pump.flush();
    let big = vec![7u8; 900_000];
    p.client.with(move |_, cx| {
        cx.transport().write(&big);
        cx.transport().lose_connection();
        cx.transport().write(b"after-close");
    });
    p.pump.flush();
    assert_eq!(data(&p.server).len(), 900_000);
    assert!(lost_reason(&p.server).check::<ConnectionDone>());
    assert!(lost_reason(&p.client).check::<ConnectionDone>());
}

#[test]
fn abort_sends_no_close_notify_and_the_peer_sees_a_lost_connection() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let p = pair(
        Recorder::default(),
        &leaf.server_options(),
        Recorder::default(),
        &ca.client_options("localhost"),
    );
    p.pump.flush();
    p.client.with(|_, cx| cx.transport().abort_connection());
    p.pump.flush();
    assert!(lost_reason(&p.client).check::<ConnectionAborted>());
    assert!(lost_reason(&p.server).check::<ConnectionLost>());
}

#[test]
fn a_close_without_close_notify_is_a_lost_connection() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let (st, server) = TlsProtocol::server(Recorder::default(), &leaf.server_options()).unwrap();
    let (ct, _client) =
        TlsProtocol::client(Recorder::default(), &ca.client_options("localhost")).unwrap();
    let (_s, raw_client, pump) = connected_server_and_client(st, ct);
    pump.flush();
    // The client's TCP-level transport closes under TLS: no close_notify.
    raw_client.with(|_, cx| cx.transport().lose_connection());
    pump.flush();
    let reason = lost_reason(&server);
    assert!(reason.check::<ConnectionLost>(), "{reason}");
    assert!(reason.to_string().contains("close_notify"), "{reason}");
}

#[test]
fn lose_connection_before_the_handshake_with_nothing_written_aborts() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let p = pair(
        Recorder::default(),
        &leaf.server_options(),
        Recorder::default(),
        &ca.client_options("localhost"),
    );
    p.client.with(|_, cx| cx.transport().lose_connection());
    p.pump.flush();
    assert!(lost_reason(&p.client).check::<ConnectionAborted>());
    assert!(p.server.with(|r, _| r.lost.is_some()).unwrap());
}

#[test]
fn garbage_instead_of_a_client_hello_is_a_named_protocol_error() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let (st, server) = TlsProtocol::server(Recorder::default(), &leaf.server_options()).unwrap();
    let s = StringTransport::with_disconnection();
    s.connect(st);
    s.deliver(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n");
    s.deliver(&vec![0xAB; 100_000]);
    assert!(s.disconnecting());
    s.connection_lost(Failure::new(ConnectionDone));
    assert!(matches!(lost_tls(&server), TlsError::Protocol(_)));
    assert!(data(&server).is_empty());
}

#[test]
fn ten_mib_in_one_write_arrives_whole() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let p = pair(
        Recorder::default(),
        &leaf.server_options(),
        Recorder::default(),
        &ca.client_options("localhost"),
    );
    p.pump.flush();
    let big: Vec<u8> = (0..10 << 20).map(|i: u32| (i % 251) as u8).collect();
    let expect = big.clone();
    p.client.with(move |_, cx| cx.transport().write(&big));
    p.pump.flush();
    assert!(data(&p.server) == expect);
}

#[test]
fn danger_accept_any_certificate_accepts_a_self_signed_wrong_host() {
    let leaf = self_signed(&["elsewhere.example"]);
    let p = pair(
        echo(),
        &leaf.server_options(),
        Recorder::default(),
        &twistor::tls::options_for_client_tls("localhost").danger_accept_any_certificate(),
    );
    p.pump.flush();
    p.client.with(|_, cx| cx.transport().write(b"ok"));
    p.pump.flush();
    assert_eq!(data(&p.client), b"ok");
}

// ---- STARTTLS --------------------------------------------------------------------------------

/// A line protocol: plain lines until "STARTTLS", then TLS. The server answers "READY" and
/// switches; the client switches when it reads "READY". Every line is recorded with whether
/// TLS was active when it was read.
struct Liner {
    buf: Vec<u8>,
    lines: Rc<RefCell<Vec<(String, bool)>>>,
    config: Option<TlsConfig>,
    server: bool,
}

impl Protocol for Liner {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
            self.buf.drain(..=i);
            let tls = cx.transport().tls().is_some_and(|t| t.active);
            self.lines.borrow_mut().push((line.clone(), tls));
            let switch = (self.server && line == "STARTTLS") || (!self.server && line == "READY");
            if switch && let Some(config) = self.config.take() {
                if self.server {
                    cx.transport().write(b"READY\n");
                }
                // What was received after the command is TLS: hand it over.
                let rest = std::mem::take(&mut self.buf);
                cx.transport().start_tls(config, &rest).unwrap();
            }
        }
    }
}

#[test]
fn starttls_both_roles_with_data_in_flight_around_the_switch() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let server_lines = Rc::new(RefCell::new(Vec::new()));
    let client_lines = Rc::new(RefCell::new(Vec::new()));
    let (st, _) = TlsProtocol::plain(Liner {
        buf: Vec::new(),
        lines: server_lines.clone(),
        config: Some(leaf.server_options().into()),
        server: true,
    });
    let (ct, client) = TlsProtocol::plain(Liner {
        buf: Vec::new(),
        lines: client_lines.clone(),
        config: Some(ca.client_options("localhost").into()),
        server: false,
    });
    let (_s, _c, pump) = connected_server_and_client(st, ct);
    client.with(|_, cx| cx.transport().write(b"before-1\nbefore-2\nSTARTTLS\n"));
    pump.flush();
    client.with(|_, cx| cx.transport().write(b"secret\n"));
    pump.flush();
    assert_eq!(
        *server_lines.borrow(),
        vec![
            ("before-1".to_string(), false),
            ("before-2".to_string(), false),
            ("STARTTLS".to_string(), false),
            ("secret".to_string(), true),
        ]
    );
    assert_eq!(*client_lines.borrow(), vec![("READY".to_string(), false)]);
    // A second start_tls is refused.
    let opts = ca.client_options("localhost");
    let again = client.with(move |_, cx| cx.transport().start_tls(opts.into(), b""));
    assert!(matches!(again, Some(Err(TlsError::AlreadyStarted))));
}

#[test]
fn starttls_feeds_pipelined_tls_bytes_to_tls_not_to_the_protocol() {
    // The client sends STARTTLS and its ClientHello in the same packet, without waiting.
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let server_lines = Rc::new(RefCell::new(Vec::new()));
    let (st, server) = TlsProtocol::plain(Liner {
        buf: Vec::new(),
        lines: server_lines.clone(),
        config: Some(leaf.server_options().into()),
        server: true,
    });
    let s = StringTransport::new();
    s.connect(st);
    let (ct, client) =
        TlsProtocol::client(Recorder::default(), &ca.client_options("localhost")).unwrap();
    let c = StringTransport::new();
    c.connect(ct);
    let mut packet = b"STARTTLS\n".to_vec();
    packet.extend_from_slice(&c.value());
    c.clear();
    s.deliver(&packet);
    // The server answered READY in clear, then its handshake.
    let out = s.value();
    assert!(out.starts_with(b"READY\n"));
    s.clear();
    c.deliver(&out[6..]);
    shuttle(&c, &s);
    client.with(|_, cx| cx.transport().write(b"over tls\n"));
    shuttle(&c, &s);
    assert_eq!(
        server_lines.borrow().last(),
        Some(&("over tls".to_string(), true))
    );
    assert!(server.alive());
}

// ---- more of Twisted's TLSMemoryBIO behaviours -----------------------------------------------

fn resumed_second_time(server: &ServerOptions, client: &ClientOptions) -> (bool, bool) {
    let mut out = Vec::new();
    for _ in 0..2 {
        let p = pair(Recorder::default(), server, Recorder::default(), client);
        p.pump.flush();
        // TLS 1.3 tickets come after the handshake: deliver them before closing.
        p.client.with(|_, cx| cx.transport().write(b"x"));
        p.pump.flush();
        let info = p
            .client
            .with(|_, cx| cx.transport().tls())
            .flatten()
            .unwrap();
        out.push(info.resumed);
        p.client.with(|_, cx| cx.transport().lose_connection());
        p.pump.flush();
    }
    (out[0], out[1])
}

#[test]
fn sessions_resume_across_connections_made_from_the_same_options() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let client = ca.client_options("localhost");
    // Tickets (the default).
    assert_eq!(
        resumed_second_time(&leaf.server_options(), &client),
        (false, true)
    );
    // A server-side cache without tickets.
    let client = ca.client_options("localhost");
    assert_eq!(
        resumed_second_time(&leaf.server_options().sessions(64, false), &client),
        (false, true)
    );
    // Neither: every handshake is a full one.
    let client = ca.client_options("localhost");
    assert_eq!(
        resumed_second_time(&leaf.server_options().sessions(0, false), &client),
        (false, false)
    );
}

/// Writes in connection_made, aborts as soon as the handshake completes.
struct Untrustworthy;
impl Protocol for Untrustworthy {
    fn connection_made(&mut self, cx: &Context<Self>) {
        cx.transport().write(b"untrustworthy");
    }
    fn handshake_completed(&mut self, cx: &Context<Self>) {
        cx.transport().abort_connection();
    }
    fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
}

#[test]
fn aborting_in_handshake_completed_sends_nothing_written_before() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let (st, server) = TlsProtocol::server(Recorder::default(), &leaf.server_options()).unwrap();
    let (ct, _) = TlsProtocol::client(Untrustworthy, &ca.client_options("localhost")).unwrap();
    let (_s, _c, pump) = connected_server_and_client(st, ct);
    pump.flush();
    assert!(data(&server).is_empty());
    assert!(server.with(|r, _| r.lost.is_some()).unwrap());
}

#[test]
fn write_sequence_of_single_bytes_and_a_second_lose_connection() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let p = pair(
        Recorder::default(),
        &leaf.server_options(),
        Recorder::default(),
        &ca.client_options("localhost"),
    );
    p.pump.flush();
    p.client.with(|_, cx| {
        cx.transport().write_sequence(&[b"a", b"b", b"c", b"d"]);
        cx.transport().lose_connection();
        cx.transport().lose_connection();
        assert!(cx.transport().disconnecting());
    });
    p.pump.flush();
    assert_eq!(data(&p.server), b"abcd");
    assert!(lost_reason(&p.client).check::<ConnectionDone>());
    // After the loss, a third one is harmless too.
    p.client.with(|_, cx| cx.transport().lose_connection());
}

struct CountingProducer(std::cell::Cell<u32>);
impl twistor::transport::Producer for CountingProducer {
    fn pause_producing(&self) {}
    fn resume_producing(&self) {}
    fn stop_producing(&self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn a_producer_registered_after_the_connection_is_lost_is_stopped_at_once() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let p = pair(
        Recorder::default(),
        &leaf.server_options(),
        Recorder::default(),
        &ca.client_options("localhost"),
    );
    p.pump.flush();
    p.client.with(|_, cx| cx.transport().abort_connection());
    p.pump.flush();
    let producer = Rc::new(CountingProducer(std::cell::Cell::new(0)));
    let pr = producer.clone();
    let r = p
        .client
        .with(move |_, cx| cx.transport().register_producer(pr, true))
        .unwrap();
    assert!(r.is_ok());
    assert_eq!(producer.0.get(), 1);
}

#[test]
fn nine_one_byte_records_read_at_once_are_all_delivered() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let (st, server) = TlsProtocol::server(Recorder::default(), &leaf.server_options()).unwrap();
    let (ct, client) =
        TlsProtocol::client(Recorder::default(), &ca.client_options("localhost")).unwrap();
    let (s, c) = (StringTransport::new(), StringTransport::new());
    s.connect(st);
    c.connect(ct);
    shuttle(&c, &s);
    // Nine writes from outside any callback: nine records, delivered in one read.
    for i in 0..9u8 {
        client.with(move |_, cx| cx.transport().write(&[b'1' + i]));
    }
    let all = c.value();
    assert_eq!(records(&all).len(), 9);
    c.clear();
    s.deliver(&all);
    assert_eq!(data(&server), b"123456789");
}

/// Records pause/resume calls.
#[derive(Default)]
struct Pausable {
    calls: RefCell<Vec<&'static str>>,
}
impl twistor::transport::Producer for Pausable {
    fn pause_producing(&self) {
        self.calls.borrow_mut().push("pause");
    }
    fn resume_producing(&self) {
        self.calls.borrow_mut().push("resume");
    }
    fn stop_producing(&self) {
        self.calls.borrow_mut().push("stop");
    }
}

/// Registers its producer, then writes 100 KB before the handshake.
struct EagerWriter(Rc<Pausable>);
impl Protocol for EagerWriter {
    fn connection_made(&mut self, cx: &Context<Self>) {
        cx.transport()
            .register_producer(self.0.clone(), true)
            .unwrap();
        cx.transport().write(&vec![b'z'; 100_000]);
    }
    fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
}

#[test]
fn a_streaming_producer_is_paused_while_writes_wait_for_the_handshake() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let producer = Rc::new(Pausable::default());
    let (st, server) = TlsProtocol::server(Recorder::default(), &leaf.server_options()).unwrap();
    let (ct, client) = TlsProtocol::client(
        EagerWriter(producer.clone()),
        &ca.client_options("localhost"),
    )
    .unwrap();
    let (_s, _c, pump) = connected_server_and_client(st, ct);
    assert_eq!(*producer.calls.borrow(), ["pause"]);
    pump.flush();
    assert_eq!(*producer.calls.borrow(), ["pause", "resume"]);
    assert_eq!(data(&server).len(), 100_000);
    // A second producer is refused, as on any transport.
    let again = client.with(|_, cx| {
        cx.transport()
            .register_producer(Rc::new(Pausable::default()), true)
    });
    assert!(again.unwrap().is_err());
    client.with(|_, cx| cx.transport().unregister_producer());
    let third = client.with(|_, cx| {
        cx.transport()
            .register_producer(Rc::new(Pausable::default()), true)
    });
    assert!(third.unwrap().is_ok());
}

#[test]
fn a_plain_peer_closing_mid_handshake_is_a_lost_connection() {
    let ca = Ca::new("ca");
    let (ct, client) =
        TlsProtocol::client(Recorder::default(), &ca.client_options("localhost")).unwrap();
    let c = StringTransport::with_disconnection();
    c.connect(ct);
    assert!(!c.value().is_empty(), "the ClientHello went out");
    c.connection_lost(Failure::new(ConnectionDone));
    let reason = lost_reason(&client);
    assert!(reason.check::<ConnectionLost>(), "{reason}");
    assert!(reason.to_string().contains("handshake"), "{reason}");
}

#[test]
fn an_ip_address_is_verified_against_ip_names_and_not_sent_as_sni() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["127.0.0.1"]);
    let p = pair(
        echo(),
        &leaf.server_options(),
        Recorder::default(),
        &ca.client_options("127.0.0.1"),
    );
    p.pump.flush();
    assert!(p.client.with(|r, _| r.handshakes).unwrap() == 1);
    let server = p
        .server
        .with(|_, cx| cx.transport().tls())
        .flatten()
        .unwrap();
    assert_eq!(server.server_name, None);
    // The same certificate does not name "localhost".
    let p = pair(
        echo(),
        &leaf.server_options(),
        Recorder::default(),
        &ca.client_options("localhost"),
    );
    p.pump.flush();
    assert!(matches!(lost_tls(&p.client), TlsError::WrongHost { .. }));
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused_when_the_options_are_built() {
    let ca = Ca::new("ca");
    let (a, b) = (ca.server(&["localhost"]), ca.server(&["localhost"]));
    let opts = ServerOptions::from_pem(a.cert_pem.as_bytes(), b.key_pem.as_bytes()).unwrap();
    assert!(matches!(opts.config(), Err(TlsError::Config(_))));
}

#[test]
fn a_pinned_self_signed_server_certificate() {
    let leaf = self_signed(&["localhost"]);
    let roots = twistor::tls::TrustRoots::from_pem(leaf.cert_pem.as_bytes()).unwrap();
    let p = pair(
        echo(),
        &leaf.server_options(),
        Recorder::default(),
        &twistor::tls::options_for_client_tls("localhost").trust_roots(roots),
    );
    p.pump.flush();
    let lost = p.client.with(|r, _| r.lost.clone()).flatten();
    eprintln!(
        "pinned: handshakes={:?} lost={lost:?}",
        p.client.with(|r, _| r.handshakes)
    );
}

#[test]
fn starttls_with_the_roles_reversed() {
    // Twisted's test_backwardsTLS: the accepting side is the TLS client. Its ClientHello
    // follows "READY" in the same delivery, so the other side must feed it to TLS.
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let accepting_lines = Rc::new(RefCell::new(Vec::new()));
    let connecting_lines = Rc::new(RefCell::new(Vec::new()));
    let (st, accepting) = TlsProtocol::plain(Liner {
        buf: Vec::new(),
        lines: accepting_lines.clone(),
        config: Some(ca.client_options("localhost").into()),
        server: true,
    });
    let (ct, connecting) = TlsProtocol::plain(Liner {
        buf: Vec::new(),
        lines: connecting_lines.clone(),
        config: Some(leaf.server_options().into()),
        server: false,
    });
    let (_s, _c, pump) = connected_server_and_client(st, ct);
    connecting.with(|_, cx| cx.transport().write(b"STARTTLS\n"));
    pump.flush();
    accepting.with(|_, cx| cx.transport().write(b"to the tls server\n"));
    connecting.with(|_, cx| cx.transport().write(b"to the tls client\n"));
    pump.flush();
    assert_eq!(
        connecting_lines.borrow().last(),
        Some(&("to the tls server".to_string(), true))
    );
    assert_eq!(
        accepting_lines.borrow().last(),
        Some(&("to the tls client".to_string(), true))
    );
    let info = accepting
        .with(|_, cx| cx.transport().tls())
        .flatten()
        .unwrap();
    assert!(info.is_client && info.handshake_complete);
}

mod aggregation {
    //! Twisted's `test_writes_get_aggregated`: whatever the sizes of the writes and however
    //! the pump interleaves, every byte arrives once, in order, both ways.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Write(usize),
        Pump,
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        proptest::collection::vec(
            prop_oneof![
                3 => (1usize..70_000).prop_map(Op::Write),
                1 => Just(Op::Pump),
            ],
            1..12,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn every_byte_arrives_once_in_order(ops in ops()) {
            let ca = Ca::new("ca");
            let leaf = ca.server(&["localhost"]);
            let p = pair(echo(), &leaf.server_options(), Recorder::default(), &ca.client_options("localhost"));
            let mut sent = Vec::new();
            let mut next = 0u8;
            for op in ops {
                match op {
                    Op::Write(n) => {
                        let chunk: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(7); next }).collect();
                        sent.extend_from_slice(&chunk);
                        p.client.with(move |_, cx| cx.transport().write(&chunk));
                    }
                    Op::Pump => { p.pump.pump(); }
                }
            }
            p.pump.flush();
            prop_assert!(data(&p.server) == sent);
            prop_assert!(data(&p.client) == sent);
        }
    }
}

#[test]
fn small_writes_wait_for_the_clock_and_arrive_as_one_record() {
    // Twisted's test_smallWriteBuffering.
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let clock = twistor::Clock::new();
    let (st, _) = TlsProtocol::server(Chatty, &leaf.server_options()).unwrap();
    let (ct, client) =
        TlsProtocol::client(Recorder::default(), &ca.client_options("localhost")).unwrap();
    let ct = ct.with_clock(&clock);
    let (s, c) = (StringTransport::new(), StringTransport::new());
    s.connect(st);
    c.connect(ct);
    shuttle(&c, &s);
    client.with(|_, cx| {
        cx.transport().write(b"hel");
        cx.transport().write(b"lo");
    });
    assert!(c.value().is_empty(), "nothing before the clock moves");
    clock.advance(0.0);
    let out = c.value();
    let types: Vec<u8> = records(&out).iter().map(|r| r.0).collect();
    assert_eq!(types, [23], "two writes, one record");
    c.clear();
    s.deliver(&out);
    // Chatty answers 16 bytes per byte received: all five arrived at once.
    assert!(!s.value().is_empty());
    c.deliver(&s.value());
    assert_eq!(data(&client).len(), 5 * 16);
}

mod hostile_input {
    //! Whatever a peer sends, the wrapper does not panic: it closes with a named error.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn random_bytes_to_a_server_close_it_with_a_tls_error(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..6),
        ) {
            let leaf = self_signed(&["localhost"]);
            let (st, server) = TlsProtocol::server(Recorder::default(), &leaf.server_options()).unwrap();
            let s = StringTransport::with_disconnection();
            s.connect(st);
            for c in &chunks {
                s.deliver(c);
            }
            s.connection_lost(Failure::new(ConnectionDone));
            let reason = lost_reason(&server);
            prop_assert!(reason.check::<TlsError>() || reason.check::<ConnectionLost>(), "{}", reason);
            prop_assert!(data(&server).is_empty());
        }

        #[test]
        fn random_bytes_after_the_handshake_close_the_client_with_a_tls_error(
            junk in proptest::collection::vec(any::<u8>(), 1..3000),
        ) {
            let ca = Ca::new("ca");
            let leaf = ca.server(&["localhost"]);
            let (st, _) = TlsProtocol::server(Recorder::default(), &leaf.server_options()).unwrap();
            let (ct, client) =
                TlsProtocol::client(Recorder::default(), &ca.client_options("localhost")).unwrap();
            let (s, c) = (StringTransport::new(), StringTransport::with_disconnection());
            s.connect(st);
            c.connect(ct);
            shuttle(&c, &s);
            c.deliver(&junk);
            c.connection_lost(Failure::new(ConnectionDone));
            let reason = lost_reason(&client);
            prop_assert!(reason.check::<TlsError>() || reason.check::<ConnectionLost>(), "{}", reason);
        }
    }
}

/// Writes its pieces, in order, when anything arrives.
struct Pieces(Vec<Vec<u8>>);
impl Protocol for Pieces {
    fn data_received(&mut self, cx: &Context<Self>, _data: &[u8]) {
        for p in &self.0 {
            cx.transport().write(p);
        }
    }
}

/// Writes of a full record or more skip the pending buffer when nothing waits in it; mixed
/// with small writes, before the handshake and outside callbacks, the order is kept.
#[test]
fn large_and_small_writes_mixed_arrive_in_order() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let piece = |len: usize, seed: u8| -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
    };
    let pieces = vec![
        piece(40 << 10, 1),
        piece(10, 2),
        piece(20 << 10, 3),
        piece(16 << 10, 4),
        piece(5, 5),
        piece(70 << 10, 6),
    ];
    let mut expect_server: Vec<u8> = Vec::new();
    let greeting = piece(33 << 10, 9);
    expect_server.extend_from_slice(&greeting);
    let (st, server) = TlsProtocol::server(Recorder::default(), &leaf.server_options()).unwrap();
    let (ct, client) = TlsProtocol::client(
        Recorder {
            greeting,
            ..Default::default()
        },
        &ca.client_options("localhost"),
    )
    .unwrap();
    let (_s, _c, pump) = connected_server_and_client(st, ct);
    pump.flush();
    // Outside any callback: each write is flushed at once, in order.
    let outside = pieces.clone();
    client.with(move |_, cx| {
        for p in &outside {
            cx.transport().write(p);
        }
    });
    pump.flush();
    for p in &pieces {
        expect_server.extend_from_slice(p);
    }
    assert!(
        data(&server) == expect_server,
        "client to server out of order"
    );

    // Inside a callback: the server answers a byte with all the pieces.
    let (st, _server) =
        TlsProtocol::server(Pieces(pieces.clone()), &leaf.server_options()).unwrap();
    let (ct, client) =
        TlsProtocol::client(Recorder::default(), &ca.client_options("localhost")).unwrap();
    let (_s, _c, pump) = connected_server_and_client(st, ct);
    pump.flush();
    client.with(|_, cx| cx.transport().write(b"?"));
    pump.flush();
    assert!(
        data(&client) == pieces.concat(),
        "server to client out of order"
    );
}

/// A handshaken client (paced by `clock`, over a disconnecting string transport) and server;
/// returns the client's handle, the server's and both transports.
fn clocked_pair(
    clock: &twistor::Clock,
) -> (
    Handle<Recorder>,
    Handle<Recorder>,
    StringTransport,
    StringTransport,
) {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let (st, server) = TlsProtocol::server(Recorder::default(), &leaf.server_options()).unwrap();
    let (ct, client) =
        TlsProtocol::client(Recorder::default(), &ca.client_options("localhost")).unwrap();
    let ct = ct.with_clock(clock);
    let (s, c) = (
        StringTransport::new(),
        StringTransport::with_disconnection(),
    );
    s.connect(st);
    c.connect(ct);
    shuttle(&c, &s);
    assert_eq!(client.with(|r, _| r.handshakes), Some(1));
    (client, server, c, s)
}

fn is_lost(h: &Handle<Recorder>) -> bool {
    h.with(|p, _| p.lost.is_some()).unwrap_or(false)
}

#[test]
fn a_peer_that_never_answers_close_notify_is_closed_after_the_time_bound() {
    let clock = twistor::Clock::new();
    let (client, _server, c, _s) = clocked_pair(&clock);
    client.with(|_, cx| cx.transport().lose_connection());
    clock.advance(0.0);
    // close_notify (one record: TLS 1.3 hides an alert's type) went out and the write side
    // is shut down; the connection stays open for the peer's answer.
    assert_eq!(records(&c.value()).len(), 1);
    assert!(c.write_closed());
    assert!(!c.disconnecting());
    clock.advance(twistor::tls::CLOSE_NOTIFY_TIMEOUT - 0.5);
    assert!(!is_lost(&client), "closed before the time bound");
    clock.advance(1.0);
    assert!(c.disconnecting());
    let reason = lost_reason(&client);
    assert!(reason.check::<ConnectionDone>(), "{reason}");
}

#[test]
fn data_arriving_after_our_close_notify_is_not_delivered_and_the_peers_answer_closes() {
    let clock = twistor::Clock::new();
    let (client, server, c, s) = clocked_pair(&clock);
    client.with(|_, cx| cx.transport().lose_connection());
    clock.advance(0.0);
    assert!(c.write_closed() && !is_lost(&client));
    // The server writes before it sees the close_notify: the client reads it and drops it.
    server.with(|_, cx| cx.transport().write(b"late"));
    let late = s.value();
    s.clear();
    assert!(!late.is_empty());
    c.deliver(&late);
    assert!(data(&client).is_empty());
    assert!(!is_lost(&client));
    // The server answers the close_notify; the answer ends the client's wait at once.
    let notify = c.value();
    c.clear();
    s.deliver(&notify);
    assert!(s.disconnecting());
    c.deliver(&s.value());
    assert!(data(&client).is_empty());
    let reason = lost_reason(&client);
    assert!(reason.check::<ConnectionDone>(), "{reason}");
    assert!(
        clock.get_delayed_calls().is_empty(),
        "the time bound is cancelled"
    );
}

fn negotiated(server: ServerOptions, client: ClientOptions) -> Pair {
    let p = pair(Recorder::default(), &server, Recorder::default(), &client);
    p.pump.flush();
    p
}

fn version_seen(h: &Handle<Recorder>) -> Option<twistor::tls::TlsVersion> {
    h.with(|r, _| r.info_at_handshake.clone())
        .flatten()
        .and_then(|i| i.tls_version())
}

#[test]
fn tls_info_reports_the_version_the_options_allowed() {
    use twistor::tls::TlsVersion;
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let p = negotiated(leaf.server_options(), ca.client_options("localhost"));
    assert_eq!(version_seen(&p.client), Some(TlsVersion::Tls13));
    let info = p.server.with(|r, _| r.info_at_handshake.clone()).flatten();
    assert_eq!(info.and_then(|i| i.version).as_deref(), Some("TLSv1_3"));
    // A server capped at 1.2 makes a default client speak 1.2, and so does a capped client.
    let p = negotiated(
        leaf.server_options().max_version(TlsVersion::Tls12),
        ca.client_options("localhost"),
    );
    assert_eq!(version_seen(&p.client), Some(TlsVersion::Tls12));
    assert_eq!(version_seen(&p.server), Some(TlsVersion::Tls12));
    let p = negotiated(
        leaf.server_options(),
        ca.client_options("localhost")
            .max_version(TlsVersion::Tls12),
    );
    assert_eq!(version_seen(&p.server), Some(TlsVersion::Tls12));
    let p = negotiated(
        leaf.server_options().min_version(TlsVersion::Tls13),
        ca.client_options("localhost"),
    );
    assert_eq!(version_seen(&p.server), Some(TlsVersion::Tls13));
}

#[test]
fn a_tls_1_2_only_server_and_a_tls_1_3_only_client_fail_with_no_common_version() {
    use twistor::tls::TlsVersion;
    let ca = Ca::new("ca");
    let leaf = ca.server(&["localhost"]);
    let p = negotiated(
        leaf.server_options().max_version(TlsVersion::Tls12),
        ca.client_options("localhost")
            .min_version(TlsVersion::Tls13),
    );
    for h in [&p.server, &p.client] {
        let e = lost_tls(h);
        assert!(matches!(e, TlsError::NoCommonVersion(_)), "{e:?}");
        assert!(
            e.to_string().contains("no protocol version in common"),
            "{e}"
        );
    }
    // The other way round too.
    let p = negotiated(
        leaf.server_options().min_version(TlsVersion::Tls13),
        ca.client_options("localhost")
            .max_version(TlsVersion::Tls12),
    );
    for h in [&p.server, &p.client] {
        let e = lost_tls(h);
        assert!(matches!(e, TlsError::NoCommonVersion(_)), "{e:?}");
    }
}

#[test]
fn a_minimum_above_the_maximum_is_refused_when_the_options_are_built() {
    use twistor::tls::TlsVersion;
    let leaf = self_signed(&["localhost"]);
    let o = leaf
        .server_options()
        .min_version(TlsVersion::Tls13)
        .max_version(TlsVersion::Tls12);
    let e = o.config().unwrap_err();
    assert!(
        e.to_string()
            .contains("minimum TLSv1_3 is above the maximum TLSv1_2"),
        "{e}"
    );
}

#[test]
fn sni_options_pick_by_name_and_refuse_an_unknown_one_without_a_default() {
    let ca = Ca::new("ca");
    let (a, b) = (ca.server(&["a.example"]), ca.server(&["b.example"]));
    let so = ServerOptions::sni(
        [("A.example", a.identity()), ("b.example", b.identity())],
        None,
    );
    for (host, leaf) in [("a.example", &a), ("b.example", &b)] {
        let p = pair(
            Recorder::default(),
            &so,
            Recorder::default(),
            &ca.client_options(host),
        );
        p.pump.flush();
        let info = p.client.with(|r, _| r.info_at_handshake.clone()).flatten();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes());
        assert_eq!(
            info.unwrap().peer_certificate(),
            Some(&der.unwrap()),
            "{host}"
        );
        let sinfo = p.server.with(|r, _| r.info_at_handshake.clone()).flatten();
        assert_eq!(sinfo.unwrap().server_name.as_deref(), Some(host));
    }
    let p = pair(
        Recorder::default(),
        &so,
        Recorder::default(),
        &ca.client_options("c.example"),
    );
    p.pump.flush();
    assert_eq!(lost_tls(&p.server), TlsError::UnknownServerName);
    assert_eq!(
        lost_tls(&p.client),
        TlsError::AlertReceived("AccessDenied".into())
    );
}

#[test]
fn abort_during_the_wait_for_close_notify_closes_at_once_without_waiting() {
    let clock = twistor::Clock::new();
    let (client, _server, c, _s) = clocked_pair(&clock);
    client.with(|_, cx| cx.transport().lose_connection());
    clock.advance(0.0);
    assert!(c.write_closed() && !is_lost(&client));
    client.with(|_, cx| cx.transport().abort_connection());
    assert!(c.disconnecting());
    let reason = lost_reason(&client);
    assert!(reason.check::<ConnectionAborted>(), "{reason}");
    assert!(
        clock.get_delayed_calls().is_empty(),
        "the time bound is cancelled"
    );
}

#[test]
fn an_internationalized_host_is_sent_and_verified_as_its_a_label() {
    let ca = Ca::new("ca");
    let leaf = ca.server(&["xn--bcher-kva.example"]);
    let p = negotiated(leaf.server_options(), ca.client_options("bücher.example"));
    assert_eq!(p.client.with(|r, _| r.handshakes), Some(1));
    let sinfo = p.server.with(|r, _| r.info_at_handshake.clone()).flatten();
    assert_eq!(
        sinfo.unwrap().server_name.as_deref(),
        Some("xn--bcher-kva.example")
    );
    // Upper case maps too (UTS #46), and the check still fails for another name.
    let p = negotiated(leaf.server_options(), ca.client_options("BÜCHER.example"));
    assert_eq!(p.client.with(|r, _| r.handshakes), Some(1));
    let p = negotiated(leaf.server_options(), ca.client_options("bucher.example"));
    assert!(matches!(lost_tls(&p.client), TlsError::WrongHost { .. }));
    // A name IDNA refuses is named, not sent.
    let bad = ca.client_options("a\u{FFFD}b.example");
    let e = TlsProtocol::client(Recorder::default(), &bad)
        .err()
        .unwrap();
    assert_eq!(e, TlsError::InvalidHostName("a\u{FFFD}b.example".into()));
}

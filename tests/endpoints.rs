//! Endpoints over real sockets (127.0.0.1, port 0; UNIX sockets in a temporary directory):
//! listen and connect round trips, when `connect` fires, failures, cancellation, and
//! socket activation with an inherited socket.

mod util;

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::endpoints::{
    AlreadyListened, ClientEndpoint, ConnectingCancelledError, HostnameEndpoint, ListenFds,
    NoProtocol, ServerEndpoint, SocketDomain, SocketSelector, SystemdError, SystemdServerEndpoint,
    Tcp6ClientEndpoint, Tcp6ServerEndpoint, client_from_string, server_from_string,
};
use twistor::error::{CannotListenError, ConnectionRefusedError};
use twistor::prelude::*;
use twistor::protocol::{FactoryFn, Handle};
use twistor::testing::{failure_result_of, success_result_of};
use twistor::transport::tcp::{ListenOptions, listen_tcp_with};

/// Iterates `reactor` until `done` or 10 s.
fn run_until(reactor: &Reactor, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
}

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        cx.transport().write(data)
    }
}

/// Records whether `connection_made` ran and what arrived.
#[derive(Default)]
struct Client {
    made: bool,
    got: Rc<RefCell<Vec<u8>>>,
}
impl Protocol for Client {
    fn connection_made(&mut self, _cx: &Context<Self>) {
        self.made = true;
    }
    fn data_received(&mut self, _cx: &Context<Self>, data: &[u8]) {
        self.got.borrow_mut().extend_from_slice(data);
    }
}

/// Connects `client` to an echo server, checks `connection_made` ran before the Deferred
/// fired, and that bytes go round.
fn round_trip(reactor: &Reactor, d: Deferred<Handle<Client>>) {
    let made_when_fired = Rc::new(Cell::new(None));
    let m = made_when_fired.clone();
    let d = d.add_callback(move |h: Handle<Client>| {
        m.set(h.with(|p, _| p.made));
        h
    });
    run_until(reactor, || d.has_result());
    let handle = success_result_of(&d);
    assert_eq!(
        made_when_fired.get(),
        Some(true),
        "fired before connection_made"
    );
    let got = handle.with(|p, _| p.got.clone()).unwrap();
    handle.with(|_, cx| cx.transport().write(b"hello endpoints"));
    run_until(reactor, || got.borrow().len() == 15);
    assert_eq!(&got.borrow()[..], b"hello endpoints");
    handle.with(|_, cx| cx.transport().lose_connection());
}

fn client_factory() -> FactoryFn<Client> {
    for_protocol(Client::default)
}

#[test]
fn tcp4_listen_and_connect_from_strings() {
    let reactor = Reactor::new().unwrap();
    let server = server_from_string("tcp:0:interface=127.0.0.1").unwrap();
    let port = success_result_of(&server.listen(&reactor, for_protocol(|| Echo)));
    assert_eq!(
        port.get_host().socket_addr().unwrap().ip().to_string(),
        "127.0.0.1"
    );
    let client = client_from_string(&format!("tcp:127.0.0.1:{}", port.port())).unwrap();
    round_trip(&reactor, client.connect(&reactor, client_factory()));
}

#[test]
fn tcp6_listen_and_connect() {
    let reactor = Reactor::new().unwrap();
    let server = Tcp6ServerEndpoint::with_options(0, ListenOptions::on("::1"));
    let d = server.listen(&reactor, for_protocol(|| Echo));
    let port = match failure_or_port(&d) {
        Some(p) => p,
        None => {
            println!("note: skipping the IPv6 test, cannot listen on [::1]");
            return;
        }
    };
    assert!(port.get_host().socket_addr().unwrap().is_ipv6());
    let client = Tcp6ClientEndpoint::new("::1", port.port());
    round_trip(&reactor, client.connect(&reactor, client_factory()));
}

/// The port, or `None` where the machine has no IPv6 loopback.
fn failure_or_port(
    d: &Deferred<twistor::transport::listener::ListeningPort>,
) -> Option<twistor::transport::listener::ListeningPort> {
    d.peek(|r| matches!(r, Some(Ok(_))))
        .then(|| success_result_of(d))
}

#[test]
fn tcp6_from_string_listens_on_ipv6() {
    let reactor = Reactor::new().unwrap();
    let server = server_from_string(r"tcp6:0:interface=\:\:1").unwrap();
    let d = server.listen(&reactor, for_protocol(|| Echo));
    if let Some(port) = failure_or_port(&d) {
        assert!(port.get_host().socket_addr().unwrap().is_ipv6());
    }
}

struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "twistor-endpoints-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn unix_listen_and_connect_from_strings() {
    let dir = TempDir::new("unix");
    let path = dir.0.join("echo.sock");
    let reactor = Reactor::new().unwrap();
    let server = server_from_string(&format!("unix:{}:mode=600", path.display())).unwrap();
    let port = success_result_of(&server.listen(&reactor, for_protocol(|| Echo)));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The lock file is on by default.
    assert!(std::fs::symlink_metadata(dir.0.join("echo.sock.lock")).is_ok());
    let client = client_from_string(&format!("unix:path={}:lockfile=1", path.display())).unwrap();
    round_trip(&reactor, client.connect(&reactor, client_factory()));
    drop(port);
}

#[test]
fn refused_connection_fails_the_deferred() {
    let reactor = Reactor::new().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let client = client_from_string(&format!("tcp:127.0.0.1:{port}")).unwrap();
    let d = client.connect(&reactor, client_factory());
    run_until(&reactor, || d.has_result());
    let f = failure_result_of(&d);
    assert!(f.is::<ConnectionRefusedError>(), "{f}");
}

#[test]
fn unix_connect_to_nothing_fails() {
    let dir = TempDir::new("nothing");
    let client =
        client_from_string(&format!("unix:{}", dir.0.join("none.sock").display())).unwrap();
    let reactor = Reactor::new().unwrap();
    let d = client.connect(&reactor, client_factory());
    run_until(&reactor, || d.has_result());
    assert!(failure_result_of(&d).to_string().contains("No such file"));
}

#[test]
fn cancelling_stops_the_attempt() {
    let reactor = Reactor::new().unwrap();
    let accepted = Rc::new(Cell::new(0));
    let a = accepted.clone();
    let port = listen_tcp(
        &reactor,
        0,
        for_protocol(move || {
            a.set(a.get() + 1);
            Echo
        }),
    )
    .unwrap();
    let made = Rc::new(Cell::new(false));
    let m = made.clone();
    let client = client_from_string(&format!("tcp:127.0.0.1:{}", port.port())).unwrap();
    let d = client.connect(
        &reactor,
        for_protocol(move || {
            m.set(true);
            Client::default()
        }),
    );
    d.cancel();
    let f = failure_result_of(&d);
    let e = f
        .downcast_ref::<ConnectingCancelledError>()
        .expect("ConnectingCancelledError");
    assert_eq!(
        e.address.to_string(),
        format!("tcp:127.0.0.1:{}", port.port())
    );
    // The attempt is stopped: no protocol is ever built on the client side.
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
    assert!(!made.get());
}

#[test]
fn cannot_listen_is_a_failed_deferred() {
    let reactor = Reactor::new().unwrap();
    let first = success_result_of(
        &server_from_string("tcp:0:interface=127.0.0.1")
            .unwrap()
            .listen(&reactor, for_protocol(|| Echo)),
    );
    let again = server_from_string(&format!("tcp:{}:interface=127.0.0.1", first.port())).unwrap();
    let d = again.listen(&reactor, for_protocol(|| Echo));
    assert!(d.has_result(), "failed at once");
    assert!(failure_result_of(&d).is::<CannotListenError>());
}

#[test]
fn a_factory_that_builds_nothing_fails_with_no_protocol() {
    let reactor = Reactor::new().unwrap();
    let port = listen_tcp(&reactor, 0, for_protocol(|| Echo)).unwrap();
    let client = client_from_string(&format!("tcp:127.0.0.1:{}", port.port())).unwrap();
    let d = client.connect(&reactor, FactoryFn::<Client>::new(|_| None));
    run_until(&reactor, || d.has_result());
    assert!(failure_result_of(&d).is::<NoProtocol>());
}

#[test]
fn the_protocol_gets_its_factory() {
    struct AskFactory(Rc<Cell<bool>>);
    impl Protocol for AskFactory {
        fn connection_made(&mut self, cx: &Context<Self>) {
            self.0.set(cx.factory::<FactoryFn<AskFactory>>().is_some());
        }
        fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
    }
    let reactor = Reactor::new().unwrap();
    let port = listen_tcp(&reactor, 0, for_protocol(|| Echo)).unwrap();
    let seen = Rc::new(Cell::new(false));
    let s = seen.clone();
    let client = client_from_string(&format!("tcp:127.0.0.1:{}", port.port())).unwrap();
    let d = client.connect(&reactor, for_protocol(move || AskFactory(s.clone())));
    run_until(&reactor, || d.has_result());
    success_result_of(&d);
    assert!(seen.get());
}

#[test]
fn hostname_endpoint_connects_to_localhost() {
    let reactor = Reactor::new().unwrap();
    let port = listen_tcp_with(
        &reactor,
        0,
        for_protocol(|| Echo),
        ListenOptions::on("127.0.0.1"),
    )
    .unwrap();
    // `localhost` may resolve to ::1 first: that attempt is refused and 127.0.0.1 wins.
    let client = HostnameEndpoint::new("localhost", port.port());
    round_trip(&reactor, client.connect(&reactor, client_factory()));
}

#[test]
fn hostname_endpoint_reports_a_failed_lookup() {
    let reactor = Reactor::new().unwrap();
    let client = HostnameEndpoint::new("no-such-host.invalid", 80);
    let d = client.connect(&reactor, client_factory());
    run_until(&reactor, || d.has_result());
    let f = failure_result_of(&d);
    assert!(f.is::<twistor::error::DnsLookupError>(), "{f}");
}

// ---- socket activation -----------------------------------------------------------------------

#[test]
fn systemd_adopts_an_inherited_tcp_socket() {
    let inherited = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = inherited.local_addr().unwrap();
    let fds = Rc::new(ListenFds::from_parts(
        vec![OwnedFd::from(inherited)],
        vec!["web".into()],
    ));
    let reactor = Reactor::new().unwrap();
    let e = SystemdServerEndpoint::with_fds(
        SocketDomain::Inet,
        SocketSelector::Name("web".into()),
        fds,
    );
    let port = success_result_of(&e.listen(&reactor, for_protocol(|| Echo)));
    assert_eq!(port.get_host().socket_addr(), Some(addr));
    let client = client_from_string(&format!("tcp:127.0.0.1:{}", addr.port())).unwrap();
    round_trip(&reactor, client.connect(&reactor, client_factory()));
    // Once only.
    let again = e.listen(&reactor, for_protocol(|| Echo));
    assert!(failure_result_of(&again).is::<AlreadyListened>());
}

#[test]
fn systemd_adopts_an_inherited_unix_socket() {
    let dir = TempDir::new("systemd");
    let path = dir.0.join("activated.sock");
    let inherited = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let fds = Rc::new(ListenFds::from_parts(
        vec![OwnedFd::from(inherited)],
        vec![],
    ));
    let reactor = Reactor::new().unwrap();
    let e = SystemdServerEndpoint::with_fds(SocketDomain::Unix, SocketSelector::Index(0), fds);
    let port = success_result_of(&e.listen(&reactor, for_protocol(|| Echo)));
    let client = client_from_string(&format!("unix:{}", path.display())).unwrap();
    round_trip(&reactor, client.connect(&reactor, client_factory()));
    drop(port);
}

#[test]
fn systemd_refuses_a_socket_of_the_wrong_kind() {
    let inherited = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fds = Rc::new(ListenFds::from_parts(
        vec![OwnedFd::from(inherited)],
        vec![],
    ));
    let reactor = Reactor::new().unwrap();
    let e =
        SystemdServerEndpoint::with_fds(SocketDomain::Unix, SocketSelector::Index(0), fds.clone());
    let f = failure_result_of(&e.listen(&reactor, for_protocol(|| Echo)));
    assert!(
        matches!(
            f.downcast_ref::<SystemdError>(),
            Some(SystemdError::WrongKind { .. })
        ),
        "{f}"
    );
    let e = SystemdServerEndpoint::with_fds(SocketDomain::Inet, SocketSelector::Index(3), fds);
    let f = failure_result_of(&e.listen(&reactor, for_protocol(|| Echo)));
    assert!(
        f.to_string()
            .contains("no inherited socket at index 3 (1 inherited)"),
        "{f}"
    );
}

#[test]
fn systemd_refuses_a_socket_that_does_not_listen() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let fds = Rc::new(ListenFds::from_parts(vec![OwnedFd::from(udp)], vec![]));
    let reactor = Reactor::new().unwrap();
    let e = SystemdServerEndpoint::with_fds(SocketDomain::Inet, SocketSelector::Index(0), fds);
    let f = failure_result_of(&e.listen(&reactor, for_protocol(|| Echo)));
    assert!(f.to_string().contains("not a stream socket"), "{f}");
}

// ---- the example -----------------------------------------------------------------------------

#[test]
fn example_serves_and_connects_from_strings() {
    let out = util::run_example("endpoints", &[]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("server listening on tcp:127.0.0.1:"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("client connected to tcp:127.0.0.1:"),
        "{out}"
    );
    assert_eq!(lines[2], "echoed: hello, endpoints");

    let dir = TempDir::new("example");
    let path = dir.0.join("example.sock");
    let out = util::run_example(
        "endpoints",
        &[&format!("unix:{}:lockfile=0", path.display())],
    );
    assert!(
        out.contains(&format!("server listening on unix:{}", path.display())),
        "{out}"
    );
    assert!(out.contains("echoed: hello, endpoints"), "{out}");
}

#[test]
fn tcp6_server_refuses_an_ipv4_interface() {
    let reactor = Reactor::new().unwrap();
    let e = Tcp6ServerEndpoint::with_options(0, ListenOptions::on("127.0.0.1"));
    let f = failure_result_of(&e.listen(&reactor, for_protocol(|| Echo)));
    assert!(f.is::<CannotListenError>());
    assert!(f.to_string().contains("needs an IPv6 interface"), "{f}");
}

#[test]
fn connect_protocol_connects_the_instance() {
    let reactor = Reactor::new().unwrap();
    let port = listen_tcp(&reactor, 0, for_protocol(|| Echo)).unwrap();
    let endpoint = client_from_string(&format!("tcp:127.0.0.1:{}", port.port())).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let client = Client {
        made: false,
        got: got.clone(),
    };
    round_trip(
        &reactor,
        twistor::endpoints::connect_protocol(&endpoint, &reactor, client),
    );
    assert_eq!(&got.borrow()[..], b"hello endpoints");
}

/// Once an attempt is over, nothing keeps the factory: the connector and the endpoint's
/// wrapping factory do not hold each other (refused, no protocol, connected then closed).
#[test]
fn an_attempt_lets_go_of_its_factory() {
    let reactor = Reactor::new().unwrap();
    let port = listen_tcp(&reactor, 0, for_protocol(|| Echo)).unwrap();
    let open = client_from_string(&format!("tcp:127.0.0.1:{}", port.port())).unwrap();

    let refused = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = free.local_addr().unwrap().port();
        drop(free);
        client_from_string(&format!("tcp:127.0.0.1:{p}")).unwrap()
    };
    let f = Rc::new(client_factory());
    let d = refused.connect(&reactor, f.clone());
    run_until(&reactor, || d.has_result());
    failure_result_of(&d);
    run_until(&reactor, || Rc::strong_count(&f) == 1);

    let f = Rc::new(FactoryFn::<Client>::new(|_| None));
    let d = open.connect(&reactor, f.clone());
    run_until(&reactor, || d.has_result());
    assert!(failure_result_of(&d).is::<NoProtocol>());
    run_until(&reactor, || Rc::strong_count(&f) == 1);

    let f = Rc::new(client_factory());
    let d = open.connect(&reactor, f.clone());
    run_until(&reactor, || d.has_result());
    let handle = success_result_of(&d);
    handle.with(|_, cx| cx.transport().lose_connection());
    run_until(&reactor, || !handle.alive() && Rc::strong_count(&f) == 1);
}

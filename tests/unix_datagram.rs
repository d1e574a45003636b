//! UNIX datagram sockets on real sockets, bounded in time: Twisted's
//! `DatagramUnixSocketTests` (`test_exchange`, `test_cannotListen`), abstract names, the
//! socket files (mode, unlink), unbound senders, connected-mode failures and refusals,
//! contained panics and the protocol's start/stop cycle; the `unix_datagram` example.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use twistor::error::ConnectError;
use twistor::prelude::*;
use twistor::protocol::connected_datagram::{
    Connected, ConnectedDatagramContext, ConnectedDatagramProtocol,
};
use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
use twistor::transport::Address;
use twistor::transport::udp::UdpError;
use twistor::transport::unix::{
    UnixDatagramAddress, UnixDatagramConnectOptions, UnixDatagramListenOptions, UnixDatagramPort,
    connect_unix_datagram, connect_unix_datagram_with, listen_unix_datagram,
    listen_unix_datagram_with,
};
use util::{Log, bounded};

type Cx<P> = DatagramContext<P, UnixDatagramAddress>;

/// The server side: records events and datagrams, replies `<data> back` when asked to, and
/// panics on datagrams starting with `!`.
struct Server {
    events: Log<String>,
    data: Log<(Vec<u8>, UnixDatagramAddress)>,
    reply: bool,
    reply_errors: Log<String>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            events: Log::new(),
            data: Log::new(),
            reply: false,
            reply_errors: Log::new(),
        }
    }
}

impl DatagramProtocol<UnixDatagramAddress> for Server {
    fn start_protocol(&mut self, cx: &Cx<Self>) {
        assert!(cx.transport().is_some());
        self.events.push("start".into());
    }
    fn stop_protocol(&mut self, cx: &Cx<Self>) {
        assert!(cx.transport().is_none());
        self.events.push("stop".into());
    }
    fn datagram_received(&mut self, cx: &Cx<Self>, data: &[u8], from: UnixDatagramAddress) {
        if data.starts_with(b"!") {
            panic!("bad datagram");
        }
        self.data.push((data.to_vec(), from.clone()));
        if self.reply {
            let mut back = data.to_vec();
            back.extend_from_slice(b" back");
            if let Err(e) = cx.transport().unwrap().write(&back, Some(from)) {
                self.reply_errors.push(e.to_string());
            }
        }
    }
}

/// The client side: sends `hi` on start, records what it gets.
struct Client {
    events: Log<String>,
    data: Log<Vec<u8>>,
    failures: Log<Failure>,
    greet: bool,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            events: Log::new(),
            data: Log::new(),
            failures: Log::new(),
            greet: false,
        }
    }
}

impl ConnectedDatagramProtocol for Client {
    fn start_protocol(&mut self, cx: &ConnectedDatagramContext<Self>) {
        self.events.push("start".into());
        if self.greet {
            cx.transport().unwrap().write(b"hi", None).unwrap();
        }
    }
    fn stop_protocol(&mut self, _cx: &ConnectedDatagramContext<Self>) {
        self.events.push("stop".into());
    }
    fn datagram_received(&mut self, _cx: &ConnectedDatagramContext<Self>, data: &[u8]) {
        if data.starts_with(b"!") {
            panic!("bad datagram");
        }
        self.data.push(data.to_vec());
    }
    fn connection_failed(&mut self, cx: &ConnectedDatagramContext<Self>, reason: Failure) {
        assert!(cx.transport().is_none());
        self.failures.push(reason);
    }
    fn connection_refused(&mut self, _cx: &ConnectedDatagramContext<Self>) {
        self.events.push("refused".into());
    }
}

/// A fresh directory for one test's socket files.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("twistor-udg-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn abstract_name(name: &str) -> String {
    format!("\0twistor-udg-{}-{name}", std::process::id())
}

/// Turns the reactor until `done`, for at most 5 s.
fn spin_until(reactor: &Reactor, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within 5 s"
        );
        reactor.iterate(Duration::from_millis(10)).unwrap();
    }
}

fn stop(reactor: &Reactor, port: &UnixDatagramPort) {
    let d = port.stop_listening(reactor);
    spin_until(reactor, || d.has_result());
}

fn bound_to(path: impl AsRef<Path>) -> UnixDatagramConnectOptions {
    UnixDatagramConnectOptions {
        bind_address: Some(path.as_ref().to_path_buf()),
        ..Default::default()
    }
}

/// Sends `hi` from a client bound to `client_addr` to a server on `server_addr`, which
/// replies `hi back`; checks what each side saw, then stops both.
fn exchange(server_addr: &Path, client_addr: &Path) {
    let reactor = Reactor::new().unwrap();
    let server = Server {
        reply: true,
        ..Default::default()
    };
    let seen = server.data.clone();
    let s = listen_unix_datagram(&reactor, server_addr, server).unwrap();
    assert_eq!(s.get_host(), Address::Unix(Some(server_addr.to_path_buf())));
    assert_eq!(s.get_peer(), None);
    let client = Client {
        greet: true,
        ..Default::default()
    };
    let got = client.data.clone();
    let c = connect_unix_datagram_with(&reactor, server_addr, client, bound_to(client_addr));
    assert_eq!(c.get_host(), Address::Unix(Some(client_addr.to_path_buf())));
    assert_eq!(
        c.get_peer(),
        Some(Address::Unix(Some(server_addr.to_path_buf())))
    );
    spin_until(&reactor, || !got.is_empty());
    assert_eq!(
        seen.get(),
        vec![(b"hi".to_vec(), UnixDatagramAddress::new(client_addr))]
    );
    assert_eq!(got.get(), vec![b"hi back".to_vec()]);
    stop(&reactor, &c);
    stop(&reactor, &s);
}

#[test]
fn exchange_over_paths() {
    bounded(20, || {
        let dir = temp_dir("exchange");
        let (server, client) = (dir.join("server.sock"), dir.join("client.sock"));
        exchange(&server, &client);
        // Both socket files are gone once the ports stopped.
        assert!(!server.exists());
        assert!(!client.exists());
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn exchange_over_abstract_names() {
    bounded(20, || {
        let (server, client) = (abstract_name("server"), abstract_name("client"));
        exchange(Path::new(&server), Path::new(&client));
        // The names are free again: stopping released them.
        exchange(Path::new(&server), Path::new(&client));
    });
}

#[test]
fn cannot_listen_on_a_path_in_use_or_in_a_missing_directory() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let dir = temp_dir("cannot");
        let path = dir.join("s.sock");
        let s = listen_unix_datagram(&reactor, &path, Server::default()).unwrap();
        let e = listen_unix_datagram(&reactor, &path, Server::default()).unwrap_err();
        assert_eq!(e.source.kind(), std::io::ErrorKind::AddrInUse, "{e}");
        assert_eq!(e.interface, path.display().to_string());
        // The failed listener did not remove the file of the one that works.
        assert!(path.exists());
        let missing = dir.join("no-such-dir").join("s.sock");
        assert!(listen_unix_datagram(&reactor, &missing, Server::default()).is_err());
        // An abstract name in use, too.
        let name = abstract_name("cannot");
        let a = listen_unix_datagram(&reactor, &name, Server::default()).unwrap();
        assert!(listen_unix_datagram(&reactor, &name, Server::default()).is_err());
        stop(&reactor, &s);
        stop(&reactor, &a);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn mode_is_applied_to_both_socket_files() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let dir = temp_dir("mode");
        let (server, client) = (dir.join("server.sock"), dir.join("client.sock"));
        let opts = UnixDatagramListenOptions {
            mode: 0o600,
            ..Default::default()
        };
        let s = listen_unix_datagram_with(&reactor, &server, Server::default(), opts).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&server), 0o600);
        let opts = UnixDatagramConnectOptions {
            mode: 0o640,
            ..bound_to(&client)
        };
        let c = connect_unix_datagram_with(&reactor, &server, Client::default(), opts);
        assert_eq!(mode(&client), 0o640);
        stop(&reactor, &c);
        stop(&reactor, &s);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn an_unbound_client_is_heard_but_cannot_be_answered() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let name = abstract_name("unbound");
        let server = Server {
            reply: true,
            ..Default::default()
        };
        let (seen, errors) = (server.data.clone(), server.reply_errors.clone());
        let s = listen_unix_datagram(&reactor, &name, server).unwrap();
        let client = Client {
            greet: true,
            ..Default::default()
        };
        let c = connect_unix_datagram(&reactor, &name, client);
        assert_eq!(c.get_host(), Address::Unix(None));
        spin_until(&reactor, || !errors.is_empty());
        assert_eq!(
            seen.get(),
            vec![(b"hi".to_vec(), UnixDatagramAddress::unnamed())]
        );
        let e = errors.get().remove(0);
        assert!(e.contains("never bound"), "{e}");
        // Writing to it from outside a callback fails the same way.
        assert!(matches!(
            s.write(b"x", Some(UnixDatagramAddress::unnamed())),
            Err(UdpError::InvalidAddress(_))
        ));
        // And a listening port needs an address at all.
        assert!(matches!(
            s.write(b"x", None),
            Err(UdpError::InvalidAddress(_))
        ));
        stop(&reactor, &c);
        stop(&reactor, &s);
    });
}

#[test]
fn panics_in_datagram_received_do_not_stop_later_datagrams() {
    bounded(20, || {
        util::capture_logs();
        let reactor = Reactor::new().unwrap();
        let (server_name, client_name) = (abstract_name("panic-s"), abstract_name("panic-c"));
        let server = Server::default();
        let seen = server.data.clone();
        let s = listen_unix_datagram(&reactor, &server_name, server).unwrap();
        let client = Client::default();
        let got = client.data.clone();
        let c = connect_unix_datagram_with(&reactor, &server_name, client, bound_to(&client_name));
        // The server panics on the first datagram and gets the second.
        c.write(b"!boom", None).unwrap();
        c.write(b"fine", None).unwrap();
        spin_until(&reactor, || !seen.is_empty());
        assert_eq!(seen.get()[0].0, b"fine");
        // The connected client panics on the first datagram and gets the second.
        let to = Some(UnixDatagramAddress::new(&client_name));
        s.write(b"!boom", to.clone()).unwrap();
        s.write(b"fine", to).unwrap();
        spin_until(&reactor, || !got.is_empty());
        assert_eq!(got.get(), vec![b"fine".to_vec()]);
        let errors = util::captured_errors();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors.iter().all(|e| e.contains("bad datagram")),
            "{errors:?}"
        );
        stop(&reactor, &c);
        stop(&reactor, &s);
    });
}

#[test]
fn start_and_stop_once_per_cycle_and_the_handle_after_stop() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let name = abstract_name("cycle");
        let server = Server::default();
        let events = server.events.clone();
        let s = listen_unix_datagram(&reactor, &name, server).unwrap();
        let h = s.handle::<Server>().unwrap();
        stop(&reactor, &s);
        // Stopping twice stops once.
        stop(&reactor, &s);
        assert_eq!(events.get(), vec!["start", "stop"]);
        let again = listen_unix_datagram(&reactor, &name, &h).unwrap();
        drop(s);
        stop(&reactor, &again);
        assert_eq!(events.get(), vec!["start", "stop", "start", "stop"]);
        assert!(
            again
                .write(b"x", Some(UnixDatagramAddress::new(&name)))
                .is_err()
        );
        drop(again);
        assert!(!h.alive());
        assert_eq!(h.with(|p, _| p.reply), None);

        // The same for a connected protocol.
        let s = listen_unix_datagram(&reactor, &name, Server::default()).unwrap();
        let client = Client::default();
        let events = client.events.clone();
        let c = connect_unix_datagram(&reactor, &name, client);
        let h = c.handle::<Connected<Client>>().unwrap();
        assert_eq!(h.with(|p, _| p.greet), Some(false));
        stop(&reactor, &c);
        assert_eq!(events.get(), vec!["start", "stop"]);
        drop(c);
        assert_eq!(h.with(|p, _| p.greet), None);
        stop(&reactor, &s);
    });
}

#[test]
fn long_datagrams_are_truncated_to_max_packet_size() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let name = abstract_name("trunc");
        let server = Server::default();
        let seen = server.data.clone();
        let opts = UnixDatagramListenOptions {
            max_packet_size: 4,
            ..Default::default()
        };
        let s = listen_unix_datagram_with(&reactor, &name, server, opts).unwrap();
        let c = connect_unix_datagram(&reactor, &name, Client::default());
        c.write(b"0123456789", None).unwrap();
        c.write(b"ab", None).unwrap();
        spin_until(&reactor, || seen.len() == 2);
        let data: Vec<Vec<u8>> = seen.get().into_iter().map(|(d, _)| d).collect();
        assert_eq!(data, vec![b"0123".to_vec(), b"ab".to_vec()]);
        stop(&reactor, &c);
        stop(&reactor, &s);
    });
}

#[test]
fn connecting_to_a_missing_socket_calls_connection_failed() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let dir = temp_dir("missing");
        let client = Client::default();
        let (events, failures) = (client.events.clone(), client.failures.clone());
        let c = connect_unix_datagram_with(
            &reactor,
            dir.join("nobody.sock"),
            client,
            bound_to(dir.join("client.sock")),
        );
        // Called before connect_unix_datagram returned; the protocol never started.
        assert_eq!(failures.len(), 1);
        let f = &failures.get()[0];
        let e = f.downcast_ref::<ConnectError>().expect("a ConnectError");
        assert_eq!(e.source.kind(), std::io::ErrorKind::NotFound);
        assert!(events.is_empty());
        // The bound file was removed with the socket.
        assert!(!dir.join("client.sock").exists());
        assert!(matches!(c.write(b"x", None), Err(UdpError::NotListening)));
        // Its handle still reaches the protocol.
        let h = c.handle::<Connected<Client>>().unwrap();
        assert_eq!(h.with(|p, _| p.failures.len()), Some(1));
        stop(&reactor, &c);
        assert!(events.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn a_peer_that_went_away_refuses_the_next_datagram() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let name = abstract_name("gone");
        let s = listen_unix_datagram(&reactor, &name, Server::default()).unwrap();
        let client = Client::default();
        let events = client.events.clone();
        let c = connect_unix_datagram(&reactor, &name, client);
        stop(&reactor, &s);
        // No error for the writer: the refusal goes to the protocol when the write is sent.
        c.write(b"anyone?", None).unwrap();
        spin_until(&reactor, || events.len() == 2);
        assert_eq!(events.get(), vec!["start", "refused"]);
        stop(&reactor, &c);
    });
}

#[test]
fn a_full_receiver_makes_writes_wait_then_drops_and_counts_past_the_bound() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let name = abstract_name("full");
        // A receiver that reads only when told to: a plain socket, not a port.
        let receiver = {
            use std::os::linux::net::SocketAddrExt;
            let addr =
                std::os::unix::net::SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
            std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap()
        };
        receiver.set_nonblocking(true).unwrap();
        let c = connect_unix_datagram(&reactor, &name, Client::default());
        // The receiver's queue fills after a few hundred; the rest wait in the port's queue
        // (the port watches for room) until it holds 4096, and the next is dropped.
        let mut sent: u32 = 0;
        while c.dropped_writes() == 0 {
            for _ in 0..100 {
                c.write(&sent.to_be_bytes(), None).unwrap();
                sent += 1;
            }
            reactor.iterate(Duration::ZERO).unwrap();
            assert!(sent < 100_000, "the queue never filled");
        }
        let dropped = c.dropped_writes() as u32;
        // Reading makes room: everything queued arrives, in order, the dropped ones excepted.
        let mut next = 0u32;
        let mut buf = [0u8; 16];
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while next < sent - dropped {
            assert!(std::time::Instant::now() < deadline, "only {next} arrived");
            while let Ok(n) = receiver.recv(&mut buf) {
                assert_eq!(&buf[..n], next.to_be_bytes());
                next += 1;
            }
            reactor.iterate(Duration::from_millis(1)).unwrap();
        }
        assert!(dropped > 0 && dropped < 100, "{dropped}");
        stop(&reactor, &c);
    });
}

#[test]
fn the_example_exchanges_three_datagrams_and_exits() {
    let name = format!("@twistor-udg-example-{}", std::process::id());
    for args in [vec![], vec![name.as_str()]] {
        let done = util::spawn_example("unix_datagram", &args).wait(Duration::from_secs(10));
        assert_eq!(done.status.code(), Some(0), "{done:?}");
        let lines: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
        assert!(lines[0].starts_with("server on unix:"), "{done:?}");
        let client: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with("client got"))
            .collect();
        assert_eq!(
            client,
            vec![
                "client got \"HELLO\"",
                "client got \"DATAGRAM\"",
                "client got \"WORLD\""
            ],
            "{done:?}"
        );
        let server = lines.iter().filter(|l| l.starts_with("server got")).count();
        assert_eq!(server, 3, "{done:?}");
    }
}

#[test]
fn socket_files_are_removed_when_the_reactor_shuts_down() {
    bounded(20, || {
        let dir = temp_dir("shutdown");
        let (server, client) = (dir.join("server.sock"), dir.join("client.sock"));
        let reactor = Reactor::new().unwrap();
        let s = listen_unix_datagram(&reactor, &server, Server::default()).unwrap();
        let c = connect_unix_datagram_with(&reactor, &server, Client::default(), bound_to(&client));
        assert!(server.exists() && client.exists());
        drop(reactor);
        assert!(!server.exists());
        assert!(!client.exists());
        // The ports are stopped too.
        assert!(matches!(c.write(b"x", None), Err(UdpError::NotListening)));
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn a_write_to_a_socket_that_is_gone_is_logged_and_the_port_goes_on() {
    bounded(20, || {
        util::capture_logs();
        let reactor = Reactor::new().unwrap();
        let dir = temp_dir("gone-write");
        let server = Server::default();
        let seen = server.data.clone();
        let name = abstract_name("gone-write");
        let s = listen_unix_datagram(&reactor, &name, server).unwrap();
        // Writes leave when the port is flushed: the kernel's refusal (no such socket) is
        // logged then and that datagram dropped, as for UDP.
        let to = Some(UnixDatagramAddress::new(dir.join("nobody.sock")));
        s.write(b"x", to).unwrap();
        s.write(b"to myself", Some(UnixDatagramAddress::new(&name)))
            .unwrap();
        spin_until(&reactor, || seen.len() == 1);
        assert_eq!(seen.get()[0].0, b"to myself");
        let errors = util::captured_errors();
        assert!(
            errors.iter().any(|e| e.contains("No such file")),
            "{errors:?}"
        );
        stop(&reactor, &s);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

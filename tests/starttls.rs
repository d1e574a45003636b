//! STARTTLS on plain connections (`listen_tcp`, `connect_tcp`, UNIX sockets; no TLS factory):
//! both roles, bytes in flight around the switch both ways, a ClientHello pipelined in the
//! same read as the command, a second `start_tls` and one after `lose_connection` refused,
//! close_notify on `lose_connection`, and a verification failure reaching `connection_lost`.
//! Real sockets on 127.0.0.1 (port 0) and in a temporary directory, bounded time.

mod tcputil;
mod tlsutil;
mod util;

use std::cell::RefCell;
use std::rc::Rc;

use tcputil::spin;
use tlsutil::Ca;
use twistor::Failure;
use twistor::error::{ConnectionAborted, ConnectionDone, ConnectionLost};
use twistor::prelude::*;
use twistor::tls::{TlsConfig, TlsError, TlsInfo};
use twistor::transport::tcp::{connect_tcp, listen_tcp_with};
use twistor::transport::unix::{connect_unix, listen_unix};
use util::bounded;

type Hook = Box<dyn FnMut(&Transport)>;

/// What one side saw.
#[derive(Default)]
struct Seen {
    /// Complete lines, with whether TLS was active when each arrived.
    lines: Vec<(String, bool)>,
    /// The size of every `data_received` chunk.
    chunks: Vec<usize>,
    handshake: bool,
    /// What `Transport::tls` said at `handshake_completed`.
    info: Option<TlsInfo>,
    lost: Option<Failure>,
    transport: Option<Transport>,
    second_start: Option<Result<(), TlsError>>,
    /// Bytes received under TLS by a `raw` side.
    raw: Vec<u8>,
    /// `write_connection_lost` was called.
    write_lost: bool,
}

type Shared = Rc<RefCell<Seen>>;

/// A line protocol that switches to TLS when it receives `switch_on` (after writing
/// `reply` in clear), or right after its greeting when `switch_on` is empty (pipelining
/// its ClientHello behind the command).
struct Side {
    seen: Shared,
    buf: Vec<u8>,
    config: Option<TlsConfig>,
    greeting: &'static [u8],
    switch_on: &'static str,
    reply: &'static [u8],
    /// Written right after `start_tls` returns (before the handshake): must arrive encrypted.
    after: &'static [u8],
    /// Runs once the handshake completed.
    on_handshake: Option<Hook>,
    /// Under TLS: keep the bytes (no line parsing), echoing them if `echo`.
    raw: bool,
    echo: bool,
}

impl Side {
    fn new(seen: &Shared, config: TlsConfig) -> Side {
        Side {
            seen: seen.clone(),
            buf: Vec::new(),
            config: Some(config),
            greeting: b"",
            switch_on: "",
            reply: b"",
            after: b"",
            on_handshake: None,
            raw: false,
            echo: false,
        }
    }

    fn switch(&mut self, cx: &Context<Self>, rest: &[u8]) {
        let Some(config) = self.config.take() else {
            return;
        };
        let t = cx.transport();
        t.start_tls(config.clone(), rest).unwrap();
        t.write(self.after);
        self.seen.borrow_mut().second_start = Some(t.start_tls(config, b""));
    }
}

impl Protocol for Side {
    fn connection_made(&mut self, cx: &Context<Self>) {
        self.seen.borrow_mut().transport = Some(cx.transport().clone());
        cx.transport().write(self.greeting);
        if self.switch_on.is_empty() && !self.greeting.is_empty() {
            self.switch(cx, b"");
        }
    }
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        self.seen.borrow_mut().chunks.push(data.len());
        if self.raw && self.config.is_none() {
            self.seen.borrow_mut().raw.extend_from_slice(data);
            if self.echo {
                cx.transport().write(data);
            }
            return;
        }
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
            self.buf.drain(..=i);
            let tls = cx.transport().tls().is_some_and(|t| t.active);
            self.seen.borrow_mut().lines.push((line.clone(), tls));
            if !self.switch_on.is_empty() && line == self.switch_on && self.config.is_some() {
                cx.transport().write(self.reply);
                // What followed the command is the peer's first TLS bytes.
                let rest = std::mem::take(&mut self.buf);
                self.switch(cx, &rest);
            }
        }
    }
    fn handshake_completed(&mut self, cx: &Context<Self>) {
        self.seen.borrow_mut().handshake = true;
        self.seen.borrow_mut().info = cx.transport().tls();
        if let Some(f) = self.on_handshake.as_mut() {
            f(cx.transport());
        }
    }
    fn write_connection_lost(&mut self, _cx: &Context<Self>) {
        self.seen.borrow_mut().write_lost = true;
    }
    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        self.seen.borrow_mut().lost = Some(reason);
    }
}

fn shared() -> Shared {
    Shared::default()
}

fn lines(s: &Shared) -> Vec<(String, bool)> {
    s.borrow().lines.clone()
}

fn l(s: &str, tls: bool) -> (String, bool) {
    (s.to_string(), tls)
}

/// A listening side and a connecting side over TCP or a UNIX socket; `make_server` and
/// `make_client` build each side's protocol. Turns the reactor until `done`.
fn run(
    unix: bool,
    make_server: impl Fn() -> Side + 'static,
    make_client: impl Fn() -> Side + 'static,
    what: &str,
    done: impl FnMut() -> bool,
) {
    let reactor = Reactor::new().unwrap();
    let dir = std::env::temp_dir().join(format!(
        "twistor-starttls-{}-{}",
        std::process::id(),
        what.replace(' ', "-")
    ));
    if unix {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _port = listen_unix(&reactor, &path, for_protocol(make_server)).unwrap();
        let _c = connect_unix(&reactor, &path, for_protocol(make_client));
        spin(&reactor, 15.0, what, done);
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        let port = listen_tcp_with(
            &reactor,
            0,
            for_protocol(make_server),
            ListenOptions::on("127.0.0.1"),
        )
        .unwrap();
        let _c = connect_tcp(
            &reactor,
            "127.0.0.1",
            port.port(),
            for_protocol(make_client),
        );
        spin(&reactor, 15.0, what, done);
    }
}

/// The accepting side answers `STARTTLS` with `READY` in clear and switches; the connecting
/// side switches on `READY`. `accepting_is_tls_server` picks the TLS roles.
fn switch_on_command(unix: bool, accepting_is_tls_server: bool) {
    let ca = Ca::new("ca");
    let server_cfg: TlsConfig = ca.server(&["localhost"]).server_options().into();
    let client_cfg: TlsConfig = ca.client_options("localhost").into();
    let (acc_cfg, conn_cfg) = if accepting_is_tls_server {
        (server_cfg, client_cfg)
    } else {
        (client_cfg, server_cfg)
    };
    let (acc, conn) = (shared(), shared());
    let (a, c) = (acc.clone(), conn.clone());
    let make_acc = move || Side {
        switch_on: "STARTTLS",
        reply: b"READY\n",
        after: b"from acceptor\n",
        ..Side::new(&a, acc_cfg.clone())
    };
    let make_conn = move || Side {
        // Plain lines and the command in one write, before any answer.
        greeting: b"plain 1\nplain 2\nSTARTTLS\n",
        switch_on: "READY",
        after: b"from connector\n",
        on_handshake: Some(Box::new(|t: &Transport| t.write(b"after handshake\n"))),
        ..Side::new(&c, conn_cfg.clone())
    };
    let (a2, c2) = (acc.clone(), conn.clone());
    run(unix, make_acc, make_conn, "both switched", move || {
        assert!(a2.borrow().lost.is_none() && c2.borrow().lost.is_none());
        a2.borrow().lines.len() == 5 && c2.borrow().lines.len() == 2
    });
    assert_eq!(
        lines(&acc),
        [
            l("plain 1", false),
            l("plain 2", false),
            l("STARTTLS", false),
            l("from connector", true),
            l("after handshake", true),
        ]
    );
    assert_eq!(lines(&conn), [l("READY", false), l("from acceptor", true)]);
    for s in [&acc, &conn] {
        let s = s.borrow();
        assert!(s.handshake);
        assert!(matches!(
            s.second_start,
            Some(Err(TlsError::AlreadyStarted))
        ));
        let info = s.info.as_ref().unwrap();
        assert!(info.active && info.handshake_complete);
        assert!(info.version.is_some());
    }
    let info = acc.borrow().info.clone().unwrap();
    assert_eq!(info.is_client, !accepting_is_tls_server);
}

#[test]
fn server_initiates_over_tcp_with_bytes_in_flight_both_ways() {
    bounded(60, || switch_on_command(false, true));
}

#[test]
fn client_initiates_over_tcp_the_accepting_side_is_the_tls_client() {
    bounded(60, || switch_on_command(false, false));
}

#[test]
fn starttls_over_a_unix_socket() {
    bounded(60, || switch_on_command(true, true));
}

#[test]
fn a_client_hello_pipelined_in_the_same_read_as_the_command_goes_to_tls() {
    bounded(60, || {
        let ca = Ca::new("ca");
        let server_cfg: TlsConfig = ca.server(&["localhost"]).server_options().into();
        let client_cfg: TlsConfig = ca.client_options("localhost").into();
        let (srv, cli) = (shared(), shared());
        let (s, c) = (srv.clone(), cli.clone());
        let make_server = move || Side {
            switch_on: "STARTTLS",
            ..Side::new(&s, server_cfg.clone())
        };
        let make_client = move || Side {
            // No wait for an answer: the ClientHello leaves in the same write as the command.
            greeting: b"STARTTLS\n",
            after: b"secret\n",
            ..Side::new(&c, client_cfg.clone())
        };
        let (s2, c2) = (srv.clone(), cli.clone());
        run(
            false,
            make_server,
            make_client,
            "the pipelined switch",
            move || s2.borrow().lines.len() == 2 && c2.borrow().handshake,
        );
        assert_eq!(lines(&srv), [l("STARTTLS", false), l("secret", true)]);
        let first = srv.borrow().chunks[0];
        assert!(
            first > b"STARTTLS\n".len(),
            "the ClientHello came in a read of its own ({first} bytes): nothing was pipelined"
        );
    });
}

/// The first `start_tls` result on a connection that closed before it could switch.
#[test]
fn start_tls_after_lose_connection_is_refused() {
    bounded(60, || {
        let ca = Ca::new("ca");
        let cfg: TlsConfig = ca.client_options("localhost").into();
        let result: Rc<RefCell<Option<Result<(), TlsError>>>> = Rc::default();
        let lost: Shared = shared();
        let (r, lo) = (result.clone(), lost.clone());
        struct Closer {
            cfg: TlsConfig,
            result: Rc<RefCell<Option<Result<(), TlsError>>>>,
            seen: Shared,
        }
        impl Protocol for Closer {
            fn connection_made(&mut self, cx: &Context<Self>) {
                cx.transport().write(b"bye\n");
                cx.transport().lose_connection();
                *self.result.borrow_mut() = Some(cx.transport().start_tls(self.cfg.clone(), b""));
            }
            fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
            fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
                self.seen.borrow_mut().lost = Some(reason);
            }
        }
        let reactor = Reactor::new().unwrap();
        let port = listen_tcp_with(
            &reactor,
            0,
            for_protocol(move || Closer {
                cfg: cfg.clone(),
                result: r.clone(),
                seen: lo.clone(),
            }),
            ListenOptions::on("127.0.0.1"),
        )
        .unwrap();
        let peer = shared();
        let p = peer.clone();
        let ccfg: TlsConfig = ca.server(&["localhost"]).server_options().into();
        let _c = connect_tcp(
            &reactor,
            "127.0.0.1",
            port.port(),
            for_protocol(move || Side::new(&p, ccfg.clone())),
        );
        spin(&reactor, 15.0, "both closed", || {
            lost.borrow().lost.is_some() && peer.borrow().lost.is_some()
        });
        assert!(matches!(
            *result.borrow(),
            Some(Err(TlsError::StartTlsClosing))
        ));
        // Closed in clear: the peer got the clear bytes and a clean close.
        assert_eq!(lines(&peer), [l("bye", false)]);
        let reason = lost.borrow().lost.clone().unwrap();
        assert!(reason.check::<ConnectionDone>(), "{reason}");
    });
}

#[test]
fn lose_connection_after_starttls_sends_close_notify_after_the_data() {
    bounded(60, || {
        let ca = Ca::new("ca");
        let server_cfg: TlsConfig = ca.server(&["localhost"]).server_options().into();
        let client_cfg: TlsConfig = ca.client_options("localhost").into();
        let (srv, cli) = (shared(), shared());
        let (s, c) = (srv.clone(), cli.clone());
        let make_server = move || Side {
            switch_on: "STARTTLS",
            ..Side::new(&s, server_cfg.clone())
        };
        let make_client = move || Side {
            greeting: b"STARTTLS\n",
            on_handshake: Some(Box::new(|t: &Transport| {
                t.write(b"last words\n");
                t.lose_connection();
            })),
            ..Side::new(&c, client_cfg.clone())
        };
        let (s2, c2) = (srv.clone(), cli.clone());
        run(false, make_server, make_client, "the close", move || {
            s2.borrow().lost.is_some() && c2.borrow().lost.is_some()
        });
        assert_eq!(lines(&srv), [l("STARTTLS", false), l("last words", true)]);
        // A close_notify came before the FIN: a clean close on both sides, not a truncation.
        for side in [&srv, &cli] {
            let reason = side.borrow().lost.clone().unwrap();
            assert!(reason.check::<ConnectionDone>(), "{reason}");
        }
    });
}

#[test]
fn a_verification_failure_after_starttls_reaches_connection_lost_with_the_cause() {
    bounded(60, || {
        let ca = Ca::new("ca");
        let other = Ca::new("other");
        let server_cfg: TlsConfig = ca.server(&["localhost"]).server_options().into();
        // The client trusts another CA.
        let client_cfg: TlsConfig = other.client_options("localhost").into();
        let (srv, cli) = (shared(), shared());
        let (s, c) = (srv.clone(), cli.clone());
        let make_server = move || Side {
            switch_on: "STARTTLS",
            ..Side::new(&s, server_cfg.clone())
        };
        let make_client = move || Side {
            greeting: b"STARTTLS\n",
            ..Side::new(&c, client_cfg.clone())
        };
        let (s2, c2) = (srv.clone(), cli.clone());
        run(false, make_server, make_client, "the failure", move || {
            s2.borrow().lost.is_some() && c2.borrow().lost.is_some()
        });
        let reason = cli.borrow().lost.clone().unwrap();
        assert_eq!(
            reason.downcast_ref::<TlsError>(),
            Some(&TlsError::UnknownIssuer),
            "{reason}"
        );
        let reason = srv.borrow().lost.clone().unwrap();
        assert!(
            matches!(
                reason.downcast_ref::<TlsError>(),
                Some(TlsError::AlertReceived(_))
            ),
            "{reason}"
        );
        assert!(!cli.borrow().handshake && !srv.borrow().handshake);
    });
}

#[test]
fn abort_after_starttls_sends_no_close_notify() {
    bounded(60, || {
        let ca = Ca::new("ca");
        let server_cfg: TlsConfig = ca.server(&["localhost"]).server_options().into();
        let client_cfg: TlsConfig = ca.client_options("localhost").into();
        let (srv, cli) = (shared(), shared());
        let (s, c) = (srv.clone(), cli.clone());
        let make_server = move || Side {
            switch_on: "STARTTLS",
            ..Side::new(&s, server_cfg.clone())
        };
        let make_client = move || Side {
            greeting: b"STARTTLS\n",
            on_handshake: Some(Box::new(|t: &Transport| {
                t.write(b"dropped\n");
                t.abort_connection();
            })),
            ..Side::new(&c, client_cfg.clone())
        };
        let (s2, c2) = (srv.clone(), cli.clone());
        run(false, make_server, make_client, "the abort", move || {
            s2.borrow().lost.is_some() && c2.borrow().lost.is_some()
        });
        let reason = cli.borrow().lost.clone().unwrap();
        assert!(reason.check::<ConnectionAborted>(), "{reason}");
        let reason = srv.borrow().lost.clone().unwrap();
        assert!(reason.check::<ConnectionLost>(), "{reason}");
        assert_eq!(lines(&srv), [l("STARTTLS", false)]);
    });
}

#[test]
fn four_mib_echoed_through_starttls_under_small_water_marks_arrive_whole() {
    bounded(120, || {
        const TOTAL: usize = 4 << 20;
        let ca = Ca::new("ca");
        let server_cfg: TlsConfig = ca.server(&["localhost"]).server_options().into();
        let client_cfg: TlsConfig = ca.client_options("localhost").into();
        let (srv, cli) = (shared(), shared());
        let (s, c) = (srv.clone(), cli.clone());
        let make_server = move || Side {
            switch_on: "STARTTLS",
            raw: true,
            echo: true,
            ..Side::new(&s, server_cfg.clone())
        };
        let make_client = move || Side {
            greeting: b"STARTTLS\n",
            raw: true,
            on_handshake: Some(Box::new(|t: &Transport| {
                // Read back-pressure on both sides holds the echo to these marks.
                t.set_write_buffer_limits(16 << 10, 4 << 10);
                t.write_owned(tcputil::pattern(TOTAL));
            })),
            ..Side::new(&c, client_cfg.clone())
        };
        let (s2, c2) = (srv.clone(), cli.clone());
        run(false, make_server, make_client, "the echo", move || {
            assert!(s2.borrow().lost.is_none() && c2.borrow().lost.is_none());
            c2.borrow().raw.len() >= TOTAL
        });
        assert!(cli.borrow().raw == tcputil::pattern(TOTAL));
        assert_eq!(srv.borrow().raw.len(), TOTAL);
    });
}

/// A pull producer: 64 KiB each time the transport asks, `total` bytes in all, then it
/// unregisters.
struct Pull {
    transport: Transport,
    left: std::cell::Cell<usize>,
    /// `lose_connection` once everything is written.
    close: bool,
}

impl twistor::transport::Producer for Pull {
    fn pause_producing(&self) {}
    fn resume_producing(&self) {
        let n = self.left.get().min(64 << 10);
        if n == 0 {
            return;
        }
        self.left.set(self.left.get() - n);
        self.transport.write(&vec![b'p'; n]);
        if self.left.get() == 0 {
            self.transport.unregister_producer();
            if self.close {
                self.transport.lose_connection();
            }
        }
    }
    fn stop_producing(&self) {}
}

#[test]
fn a_producer_registered_after_starttls_is_driven_through_tls() {
    bounded(60, || {
        const TOTAL: usize = 2 << 20;
        let ca = Ca::new("ca");
        let server_cfg: TlsConfig = ca.server(&["localhost"]).server_options().into();
        let client_cfg: TlsConfig = ca.client_options("localhost").into();
        let (srv, cli) = (shared(), shared());
        let (s, c) = (srv.clone(), cli.clone());
        let make_server = move || Side {
            switch_on: "STARTTLS",
            raw: true,
            ..Side::new(&s, server_cfg.clone())
        };
        let make_client = move || Side {
            greeting: b"STARTTLS\n",
            on_handshake: Some(Box::new(|t: &Transport| {
                let p = Rc::new(Pull {
                    transport: t.clone(),
                    left: std::cell::Cell::new(TOTAL),
                    close: false,
                });
                t.register_producer(p.clone(), false).unwrap();
                // A pull producer produces when asked; ask for the first chunk.
                twistor::transport::Producer::resume_producing(&*p);
            })),
            ..Side::new(&c, client_cfg.clone())
        };
        let (s2, c2) = (srv.clone(), cli.clone());
        run(false, make_server, make_client, "the transfer", move || {
            assert!(s2.borrow().lost.is_none() && c2.borrow().lost.is_none());
            s2.borrow().raw.len() >= TOTAL
        });
        assert_eq!(srv.borrow().raw.len(), TOTAL);
        assert!(srv.borrow().raw.iter().all(|&b| b == b'p'));
        assert!(cli.borrow().handshake);
    });
}

#[test]
fn lose_write_connection_after_starttls_closes_both_ways_with_close_notify() {
    bounded(60, || {
        let ca = Ca::new("ca");
        let server_cfg: TlsConfig = ca.server(&["localhost"]).server_options().into();
        let client_cfg: TlsConfig = ca.client_options("localhost").into();
        let (srv, cli) = (shared(), shared());
        let (s, c) = (srv.clone(), cli.clone());
        let make_server = move || Side {
            switch_on: "STARTTLS",
            ..Side::new(&s, server_cfg.clone())
        };
        let make_client = move || Side {
            greeting: b"STARTTLS\n",
            on_handshake: Some(Box::new(|t: &Transport| {
                t.write(b"half\n");
                t.lose_write_connection();
                assert!(t.disconnecting());
            })),
            ..Side::new(&c, client_cfg.clone())
        };
        let (s2, c2) = (srv.clone(), cli.clone());
        run(false, make_server, make_client, "the close", move || {
            s2.borrow().lost.is_some() && c2.borrow().lost.is_some()
        });
        assert_eq!(lines(&srv), [l("STARTTLS", false), l("half", true)]);
        for side in [&srv, &cli] {
            let reason = side.borrow().lost.clone().unwrap();
            assert!(reason.check::<ConnectionDone>(), "{reason}");
        }
    });
}

#[test]
fn a_connection_that_never_switches_has_no_tls() {
    bounded(60, || {
        let ca = Ca::new("ca");
        let (srv, cli) = (shared(), shared());
        let (s, c) = (srv.clone(), cli.clone());
        let cfg: TlsConfig = ca.client_options("localhost").into();
        let cfg2 = cfg.clone();
        let make_server = move || Side::new(&s, cfg.clone());
        let make_client = move || Side {
            greeting: b"hello\n",
            switch_on: "never",
            ..Side::new(&c, cfg2.clone())
        };
        let (s2, c2) = (srv.clone(), cli.clone());
        run(false, make_server, make_client, "the line", move || {
            s2.borrow().lines.len() == 1 && c2.borrow().transport.is_some()
        });
        assert_eq!(lines(&srv), [l("hello", false)]);
        let t = srv.borrow().transport.clone().unwrap();
        assert!(t.tls().is_none());
    });
}

/// Both sides on one reactor: the client writes 2 MiB and closes (close_notify, then the
/// socket) before the server has read anything. The server then sends its TLS 1.3 session
/// tickets (they follow the client's Finished); had the client closed its socket, its kernel
/// would answer with a reset, which discards what the server had not read yet. So
/// `lose_connection` under TLS half-closes after close_notify and reads on until the peer's
/// close_notify or end of stream, with a time limit.
#[test]
fn lose_connection_right_after_a_bulk_write_under_tls_delivers_everything() {
    bounded(60, || {
        const TOTAL: usize = 2 << 20;
        let ca = Ca::new("ca");
        let server_cfg: TlsConfig = ca.server(&["localhost"]).server_options().into();
        let client_cfg: TlsConfig = ca.client_options("localhost").into();
        let (srv, cli) = (shared(), shared());
        let (s, c) = (srv.clone(), cli.clone());
        let make_server = move || Side {
            switch_on: "STARTTLS",
            raw: true,
            ..Side::new(&s, server_cfg.clone())
        };
        let make_client = move || Side {
            greeting: b"STARTTLS\n",
            on_handshake: Some(Box::new(|t: &Transport| {
                let p = Rc::new(Pull {
                    transport: t.clone(),
                    left: std::cell::Cell::new(TOTAL),
                    close: true,
                });
                t.register_producer(p.clone(), false).unwrap();
                twistor::transport::Producer::resume_producing(&*p);
            })),
            ..Side::new(&c, client_cfg.clone())
        };
        let (s2, c2) = (srv.clone(), cli.clone());
        run(false, make_server, make_client, "the close", move || {
            s2.borrow().lost.is_some() && c2.borrow().lost.is_some()
        });
        assert_eq!(srv.borrow().raw.len(), TOTAL);
        for side in [&srv, &cli] {
            let reason = side.borrow().lost.clone().unwrap();
            assert!(reason.check::<ConnectionDone>(), "{reason}");
        }
        // The half-close while waiting for the server's close_notify is the TLS layer's own:
        // the protocol asked for a full close and is not told of a write shutdown.
        assert!(!cli.borrow().write_lost);
    });
}

//! When writes leave: after each readiness handler, not once after the whole I/O dispatch.
//! Two connections become readable in the same turn; each server protocol replies and then
//! looks at the other client's socket. The handler that runs second must find the first one's
//! reply already delivered.

mod util;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::prelude::*;
use twistor::transport::tcp::listen_tcp_with;
use util::{Log, bounded};

/// The two client sockets, by the first byte they send.
type Clients = Rc<RefCell<Vec<TcpStream>>>;

struct Replier {
    clients: Clients,
    /// For each handler: which client it served, and whether the other client had its reply.
    seen: Log<(u8, bool)>,
    accepted: Log<()>,
}

impl Protocol for Replier {
    fn connection_made(&mut self, _cx: &Context<Self>) {
        self.accepted.push(());
    }
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        let me = data[0];
        cx.transport().write(&[me]);
        let other = usize::from(me == b'a');
        let mut buf = [0u8; 1];
        let got = self.clients.borrow_mut()[other].read(&mut buf).is_ok();
        self.seen.push((me, got));
    }
}

#[test]
fn a_handlers_reply_leaves_before_the_next_handler_runs() {
    bounded(20, || {
        let reactor = Reactor::new().unwrap();
        let clients: Clients = Rc::new(RefCell::new(Vec::new()));
        let seen = Log::new();
        let accepted = Log::new();
        let (c, s, a) = (clients.clone(), seen.clone(), accepted.clone());
        let opts = ListenOptions {
            interface: "127.0.0.1".into(),
            ..Default::default()
        };
        let port = listen_tcp_with(
            &reactor,
            0,
            for_protocol(move || Replier {
                clients: c.clone(),
                seen: s.clone(),
                accepted: a.clone(),
            }),
            opts,
        )
        .unwrap();
        let addr = ("127.0.0.1", port.port());
        for _ in 0..2 {
            let sock = TcpStream::connect(addr).unwrap();
            sock.set_nonblocking(true).unwrap();
            clients.borrow_mut().push(sock);
        }
        // Both connections accepted and started before anything is sent.
        let deadline = Instant::now() + Duration::from_secs(5);
        while accepted.get().len() < 2 {
            assert!(Instant::now() < deadline, "not accepted within 5 s");
            reactor.iterate(Duration::from_millis(10)).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        // Both bytes are queued before the reactor polls, so one poll reports both sockets.
        clients.borrow_mut()[0].write_all(b"a").unwrap();
        clients.borrow_mut()[1].write_all(b"b").unwrap();
        while seen.get().len() < 2 {
            assert!(Instant::now() < deadline, "no data within 5 s");
            reactor.iterate(Duration::from_millis(10)).unwrap();
        }
        let seen = seen.get();
        assert!(
            !seen[0].1,
            "the first handler cannot see a reply not yet written: {seen:?}"
        );
        assert!(
            seen[1].1,
            "the second handler must see the first one's reply: {seen:?}"
        );
        drop(port.stop_listening(&reactor));
    });
}

//! Writing to a UNIX socket whose peer has gone must fail with `EPIPE`, not raise `SIGPIPE`:
//! a program that has not ignored `SIGPIPE` would be killed. Its own test binary, because
//! it restores `SIGPIPE`'s default action for the whole process (a regression kills only
//! this binary, which fails the run).

mod util;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::prelude::*;
use twistor::transport::unix::listen_unix;
use util::bounded;

/// Writes once the peer has closed: that write meets a gone peer.
struct Writer(Rc<Cell<bool>>);

impl Protocol for Writer {
    fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
    fn read_connection_lost(&mut self, cx: &Context<Self>) {
        // Half-close aware, so the connection stays open for this write.
        cx.transport().write(b"too late");
    }
    fn connection_lost(&mut self, _: &Context<Self>, _reason: Failure) {
        self.0.set(true);
    }
}

#[test]
fn a_write_to_a_closed_peer_does_not_raise_sigpipe() {
    bounded(30, || {
        // SAFETY: restores the default action (terminate) for SIGPIPE in this test process.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let name = format!("\0twistor-sigpipe-{}", std::process::id());
        let reactor = Reactor::new().unwrap();
        let lost = Rc::new(Cell::new(false));
        let l = lost.clone();
        let _port = listen_unix(&reactor, &name, for_protocol(move || Writer(l.clone()))).unwrap();
        use std::os::linux::net::SocketAddrExt;
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
        let client = std::os::unix::net::UnixStream::connect_addr(&addr).unwrap();
        // Let the server accept, then close the client: the server's next writes hit a
        // closed peer.
        for _ in 0..10 {
            reactor.iterate(Duration::from_millis(5)).unwrap();
        }
        drop(client);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !lost.get() {
            assert!(Instant::now() < deadline, "the connection was never lost");
            reactor.iterate(Duration::from_millis(5)).unwrap();
        }
        assert!(lost.get());
    });
}

//! A server and a client from endpoint strings: the echo server listens wherever the first
//! argument says, and a client connects to the address it got, sends a line, prints the echo.
//!
//! Run: `cargo run --example endpoints -- tcp:0:interface=127.0.0.1`
//! or `cargo run --example endpoints -- unix:endpoints.sock:lockfile=0`.

use std::cell::RefCell;
use std::rc::Rc;

use twistor::endpoints::{ClientEndpoint, ServerEndpoint, client_from_string, server_from_string};
use twistor::prelude::*;

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        cx.transport().write(data)
    }
}

/// Sends a line once connected; stops the reactor when the echo is back.
struct Hello {
    reactor: Reactor,
    got: Rc<RefCell<Vec<u8>>>,
}
impl Protocol for Hello {
    fn connection_made(&mut self, cx: &Context<Self>) {
        cx.transport().write(b"hello, endpoints\n");
    }
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        self.got.borrow_mut().extend_from_slice(data);
        if self.got.borrow().ends_with(b"\n") {
            cx.transport().lose_connection();
            let _ = self.reactor.stop();
        }
    }
}

fn fail(why: impl std::fmt::Display, code: i32) -> ! {
    eprintln!("endpoints: {why}");
    std::process::exit(code)
}

fn main() {
    let description = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp:0:interface=127.0.0.1".into());
    // A bad description is the user's mistake: say which part, exit 2.
    let server = server_from_string(&description).unwrap_or_else(|e| fail(e, 2));
    let reactor = Reactor::new().unwrap_or_else(|e| fail(e, 1));

    let listening = Rc::new(RefCell::new(None));
    let l = listening.clone();
    let _ = server
        .listen(&reactor, for_protocol(|| Echo))
        .add_both(move |r| {
            *l.borrow_mut() = Some(r);
            Ok(())
        });
    let port = match listening.borrow_mut().take() {
        Some(Ok(port)) => port,
        Some(Err(f)) => fail(f, 1),
        None => fail("listening did not finish", 1),
    };
    // A listening address prints as a client description: `tcp:127.0.0.1:PORT`, `unix:PATH`.
    let address = port.get_host().to_string();
    println!("server listening on {address}");

    let client = client_from_string(&address).unwrap_or_else(|e| fail(e, 1));
    let got = Rc::new(RefCell::new(Vec::new()));
    let (g, r) = (got.clone(), reactor.clone());
    let stopper = reactor.clone();
    let _ = client
        .connect(
            &reactor,
            for_protocol(move || Hello {
                reactor: r.clone(),
                got: g.clone(),
            }),
        )
        .add_both(move |connected| {
            match connected {
                Ok(_) => println!("client connected to {address}"),
                Err(f) => {
                    eprintln!("endpoints: {f}");
                    let _ = stopper.stop();
                }
            }
            Ok(())
        });
    reactor.call_later(10.0, {
        let r = reactor.clone();
        move || {
            eprintln!("endpoints: no echo within 10 s");
            let _ = r.stop();
        }
    });
    if let Err(e) = reactor.run_without_signal_handlers() {
        fail(e, 1);
    }
    let echoed = String::from_utf8_lossy(&got.borrow())
        .trim_end()
        .to_string();
    if echoed.is_empty() {
        std::process::exit(1);
    }
    println!("echoed: {echoed}");
}

//! A client for `unix_echo_server`: connects to the UNIX socket PATH, sends TEXT, prints
//! what comes back once all of it has, and exits (1 if it could not connect).
//!
//! Run: `cargo run --example unix_echo_client -- echo.sock Hello` (`@NAME` for an
//! abstract name).

use std::cell::Cell;
use std::rc::Rc;

use twistor::prelude::*;
use twistor::transport::unix::{UnixConnectOptions, connect_unix_protocol};

struct Client {
    text: Vec<u8>,
    got: Vec<u8>,
    ok: Rc<Cell<bool>>,
    reactor: Reactor,
}

impl Protocol for Client {
    fn connection_made(&mut self, cx: &Context<Self>) {
        cx.transport().write(&self.text);
    }
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got.len() >= self.text.len() {
            println!("{}", String::from_utf8_lossy(&self.got));
            self.ok.set(self.got == self.text);
            cx.transport().lose_connection();
        }
    }
    fn connection_lost(&mut self, _cx: &Context<Self>, _reason: Failure) {
        let _ = self.reactor.stop();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arg, text] = &args[..] else {
        eprintln!("usage: unix_echo_client PATH TEXT (@NAME: an abstract name)");
        std::process::exit(2);
    };
    let path = match arg.strip_prefix('@') {
        Some(name) => format!("\0{name}"),
        None => arg.clone(),
    };
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("unix_echo_client: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    let ok = Rc::new(Cell::new(false));
    let client = Client {
        text: text.as_bytes().to_vec(),
        got: Vec::new(),
        ok: ok.clone(),
        reactor: reactor.clone(),
    };
    let r = reactor.clone();
    // Started once running: a failure fires at once, and stop() before run() is ignored.
    reactor.call_when_running(move || {
        let stopper = r.clone();
        let _ = connect_unix_protocol(&r, &path, client, UnixConnectOptions::default()).add_both(
            move |res| {
                if let Err(f) = res {
                    eprintln!("unix_echo_client: {f}");
                    let _ = stopper.stop();
                }
                Ok(())
            },
        );
    });
    if let Err(e) = reactor.run() {
        eprintln!("unix_echo_client: {e}");
        std::process::exit(1);
    }
    std::process::exit(if ok.get() { 0 } else { 1 });
}

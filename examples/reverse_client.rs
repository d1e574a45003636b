//! The paper's toy client (section "Separate Concerns"): `RemoteReverser.reverse(text)` sends
//! `text` to a reverse server and returns a Deferred that fires with the reply.
//!
//! What the paper says about it:
//!
//! > The ReverseLineProtocol implements the details of talking to the server: it sends a line
//! > on connection and then fires its deferred as soon as it receives a line back.
//! >
//! > The dance with setting self._deferred to None is actually quite important. If
//! > lineReceived naively fired the deferred every time it was called, then it would raise an
//! > AlreadyFiredError.
//! >
//! > RemoteReverser is a user-defined class with no explicit place in Twisted. It provides an
//! > API for reversing a string. reverse returns a deferred that will fire with the first line
//! > returned from the server.
//! >
//! > Again, by calling reverse and using the deferred, callers can avoid knowing anything
//! > about how the protocol works or what events are involved. As far as a caller is
//! > concerned, a call to reverse simply returns a placeholder for a value that you don't have
//! > yet.
//!
//! (The paper's prose calls the client protocol by the server's name; it is the
//! `ReverseClientProtocol` below.) The dance is [`Option::take`]: the Deferred is taken out of
//! the protocol before it is fired, so a second line finds `None` and is ignored. Firing a
//! twistor Deferred twice would not raise but return `Err(AlreadyCalledError)`. The paper's
//! `ClientFactory(reactor, ReverseClientProtocol, d, some_string).connectTCP(host, port)` is
//! Twisted's `ClientCreator`, which is [`connect_protocol`] here: it connects one protocol
//! and fires with its [`Handle`] (a handle on the live protocol, the way `ClientCreator` fires
//! with the protocol instance).
//!
//! Two things the paper leaves out, so that this program cannot wait for ever: if the
//! connection fails, or closes before a line came back, the Deferred fails with the reason;
//! the program then prints it to stderr and exits with code 1.
//!
//! ```text
//! usage: reverse_client --port PORT [--host HOST] TEXT
//! ```
//!
//! Try it against the paper's server: `cargo run --example reverse_server` in one terminal,
//! `cargo run --example reverse_client -- --port 9999 Hello` in another prints `olleH`. A bad
//! argument prints the usage to stderr and exits with code 2.

use std::cell::Cell;
use std::rc::Rc;

use twistor::protocol::Handle;
use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
use twistor::reactor::Reactor;
use twistor::transport::tcp::connect_protocol;
use twistor::{Deferred, Failure, Resolver};

/// Sends one line when connected; fires its Deferred with the first line that comes back.
struct ReverseClientProtocol {
    deferred: Option<Resolver<String>>,
    string: String,
}

impl ReverseClientProtocol {
    fn new(deferred: Resolver<String>, string: &str) -> ReverseClientProtocol {
        ReverseClientProtocol {
            deferred: Some(deferred),
            string: string.to_string(),
        }
    }
}

impl LineHandler for ReverseClientProtocol {
    fn connection_made(&mut self, cx: &LineContext<Self>) {
        cx.send_line(self.string.as_bytes());
    }

    fn line_received(&mut self, _cx: &LineContext<Self>, line: &[u8]) {
        // The dance: `d, self._deferred = self._deferred, None`.
        let Some(d) = self.deferred.take() else {
            return;
        };
        let _ = d.callback(String::from_utf8_lossy(line).into_owned());
    }

    fn connection_lost(&mut self, _cx: &LineContext<Self>, reason: Failure) {
        // Not in the paper: closed before any line came back.
        if let Some(d) = self.deferred.take() {
            let _ = d.errback(reason);
        }
    }
}

/// An API for reversing strings; callers never see the protocol.
struct RemoteReverser {
    reactor: Reactor,
    host: String,
    port: u16,
}

impl RemoteReverser {
    fn new(reactor: &Reactor, host: &str, port: u16) -> RemoteReverser {
        RemoteReverser {
            reactor: reactor.clone(),
            host: host.to_string(),
            port,
        }
    }

    /// Send `some_string` to the host to be reversed.
    fn reverse(&self, some_string: &str) -> Deferred<String> {
        let (d, fire) = Deferred::new();
        let protocol = LineReceiver::new(ReverseClientProtocol::new(fire.clone(), some_string));
        let reverse_failed = fire;
        let _ = connect_protocol(&self.reactor, &self.host, self.port, protocol).add_both(
            move |connected: Result<Handle<LineReceiver<ReverseClientProtocol>>, Failure>| {
                // Not in the paper: no connection, no reply.
                if let Err(reason) = connected {
                    let _ = reverse_failed.errback(reason);
                }
                Ok(())
            },
        );
        d
    }
}

fn print_stuff(message: String) {
    println!("{message}");
}

const USAGE: &str = "usage: reverse_client --port PORT [--host HOST] TEXT
  --port PORT  the reverse server's port
  --host HOST  the reverse server's host (default 127.0.0.1)
  TEXT         the line to send
  --help       print this message";

/// Prints `problem` and the usage to stderr, exits with code 2.
fn usage_error(problem: &str) -> ! {
    eprintln!("reverse_client: {problem}");
    eprintln!("{USAGE}");
    std::process::exit(2)
}

/// `(host, port, text)` from `--port PORT [--host HOST] TEXT`.
fn parse_args() -> (String, u16, String) {
    let mut host = "127.0.0.1".to_string();
    let mut port = None;
    let mut text = None;
    let mut args = std::env::args_os().skip(1);
    let mut only_text = false;
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str().map(str::to_string) else {
            usage_error(&format!("argument is not UTF-8: {arg:?}"));
        };
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") && !only_text => (f.to_string(), Some(v)),
            _ => (arg.clone(), None),
        };
        let mut value = |flag: &str| match inline {
            Some(v) => v.to_string(),
            None => match args.next().map(|v| v.into_string()) {
                Some(Ok(v)) => v,
                Some(Err(v)) => usage_error(&format!("argument is not UTF-8: {v:?}")),
                None => usage_error(&format!("{flag} needs a value")),
            },
        };
        match flag.as_str() {
            "--help" | "-h" if !only_text => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            "--port" if !only_text => {
                let v = value("--port");
                port = match v.parse::<u16>() {
                    Ok(p) if p != 0 => Some(p),
                    _ => usage_error(&format!("--port needs a number from 1 to 65535, got {v:?}")),
                };
            }
            "--host" if !only_text => {
                host = value("--host");
                if host.is_empty() {
                    usage_error("--host needs a host name or address");
                }
            }
            "--" if !only_text => only_text = true,
            _ if arg.starts_with('-') && arg.len() > 1 && !only_text => {
                usage_error(&format!("unexpected option {arg:?}"))
            }
            _ => {
                if text.is_some() {
                    usage_error(&format!("only one TEXT, got another: {arg:?}"));
                }
                text = Some(arg);
            }
        }
    }
    let Some(port) = port else {
        usage_error("--port is required");
    };
    let Some(text) = text else {
        usage_error("TEXT is required");
    };
    if text.contains(['\r', '\n']) {
        usage_error("TEXT must be one line");
    }
    (host, port, text)
}

fn main() {
    let (host, port, text) = parse_args();
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("reverse_client: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    let exit_code = Rc::new(Cell::new(1));

    // reverser = RemoteReverser('localhost', 9999)
    // d = reverser.reverse('Hello')
    // d.addCallback(print_stuff)
    // d.addBoth(reactor.stop)
    // Started once the reactor runs, so that even a connection failing at once stops a
    // running reactor.
    let (r, code) = (reactor.clone(), exit_code.clone());
    reactor.call_when_running(move || {
        let reverser = RemoteReverser::new(&r, &host, port);
        let d = reverser.reverse(&text);
        let stopper = r.clone();
        let _ = d.add_callback(print_stuff).add_both(move |result| {
            match result {
                Ok(()) => code.set(0),
                Err(reason) => eprintln!("reverse_client: no reply: {reason}"),
            }
            let _ = stopper.stop();
            Ok(())
        });
    });

    // reactor.run()
    if let Err(e) = reactor.run() {
        eprintln!("reverse_client: {e}");
        std::process::exit(1);
    }
    std::process::exit(exit_code.get());
}

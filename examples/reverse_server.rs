//! The paper's toy server (section "Separate Concerns"): a line protocol that answers every
//! line reversed and disconnects the client after ten lines.
//!
//! The paper puts the three parts of Twisted's I/O model side by side:
//!
//! > The first necessary part is an interface for handling very low-level events and
//! > operations: this socket just got some data; the remote end disconnected; write some data
//! > etc. In Twisted terminology, this is a transport.
//! >
//! > The second part is an object that can provide meaning to the low-level byte operations: a
//! > protocol object. The protocol is a state machine that responds to events that the
//! > transport sends it, events like: dataReceived; connectionMade and connectionLost.
//! >
//! > The third is an object that can be used to create new protocol objects as new connections
//! > are required and to bind these protocol objects to their transports. Twisted calls these
//! > protocol factories.
//!
//! and then about this server:
//!
//! > The protocol is a LineReceiver, which is a simple helper built on top of the base protocol
//! > that buffers bytes until they become lines, and then sends those lines to lineReceived.
//! >
//! > The call to listenTCP binds that instance of the factory to listen on port 9999. When a
//! > new connection is made, Twisted constructs an instance of the protocol and binds it to the
//! > socket opened for that connection.
//!
//! Here the `LineReceiver` is [`LineReceiver`], and the part you write, the paper's
//! `lineReceived`, is a [`LineHandler`]. Where the Python code says `self.sendLine(...)` and
//! `self.transport.loseConnection()`, the handler uses its [`LineContext`]: `cx.send_line(...)`
//! and `cx.transport().lose_connection()`. Lines are reversed byte by byte, as the paper's
//! Python 2 `str` (bytes) were. Unlike the paper, which listens on every interface, the example
//! listens on 127.0.0.1 only.
//!
//! ```text
//! usage: reverse_server [--port PORT]
//!   --port PORT  the port to listen on (default 9999; 0: any free port)
//! ```
//!
//! It prints `reverse_server listening on tcp:127.0.0.1:PORT` once listening (with the port
//! picked when 0 was given), then serves until Ctrl-C. Try it:
//!
//! ```text
//! cargo run --example reverse_server
//! cargo run --example reverse_client -- --port 9999 Hello     # prints olleH
//! ```
//!
//! A bad argument prints the usage to stderr and exits with code 2.

use twistor::protocol::Factory;
use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
use twistor::reactor::Reactor;
use twistor::transport::Address;
use twistor::transport::tcp::{ListenOptions, listen_tcp_with};

/// Line-based protocol that echoes any lines it receives in reverse.
///
/// Disconnects the client when ten lines have been received.
struct ReverseLineProtocol {
    lines_received: usize,
}

impl ReverseLineProtocol {
    fn new() -> ReverseLineProtocol {
        ReverseLineProtocol { lines_received: 0 }
    }
}

impl LineHandler for ReverseLineProtocol {
    fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
        let reversed: Vec<u8> = line.iter().rev().copied().collect();
        cx.send_line(&reversed);
        self.lines_received += 1;
        if self.lines_received >= 10 {
            // Sends what is buffered, then closes; the lines after this one are not answered.
            cx.transport().lose_connection();
        }
    }
}

/// The paper's `ReverseLineFactory`: its `protocol` is a `LineReceiver` around a fresh
/// `ReverseLineProtocol` for each connection.
struct ReverseLineFactory;

impl Factory for ReverseLineFactory {
    type Protocol = LineReceiver<ReverseLineProtocol>;

    fn build_protocol(&self, _addr: &Address) -> Option<Self::Protocol> {
        Some(LineReceiver::new(ReverseLineProtocol::new()))
    }
}

const USAGE: &str = "usage: reverse_server [--port PORT]
  --port PORT  the port to listen on (default 9999; 0: any free port)
  --help       print this message";

/// Prints `problem` and the usage to stderr, exits with code 2.
fn usage_error(problem: &str) -> ! {
    eprintln!("reverse_server: {problem}");
    eprintln!("{USAGE}");
    std::process::exit(2)
}

/// `--port PORT` (or `--port=PORT`), default 9999.
fn parse_args() -> u16 {
    let mut port = 9999;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str().map(str::to_string) else {
            usage_error(&format!("argument is not UTF-8: {arg:?}"));
        };
        let value = match arg.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            "--port" => match args.next().map(|v| v.into_string()) {
                Some(Ok(v)) => v,
                Some(Err(v)) => usage_error(&format!("argument is not UTF-8: {v:?}")),
                None => usage_error("--port needs a value"),
            },
            _ => match arg.strip_prefix("--port=") {
                Some(v) => v.to_string(),
                None => usage_error(&format!("unexpected argument {arg:?}")),
            },
        };
        port = match value.parse() {
            Ok(p) => p,
            Err(_) => usage_error(&format!(
                "--port needs a number from 0 to 65535, got {value:?}"
            )),
        };
    }
    port
}

fn main() {
    let port = parse_args();
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("reverse_server: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    // reactor.listenTCP(9999, ReverseLineFactory())
    match listen_tcp_with(
        &reactor,
        port,
        ReverseLineFactory,
        ListenOptions::on("127.0.0.1"),
    ) {
        Ok(listening) => println!("reverse_server listening on {}", listening.get_host()),
        Err(e) => {
            eprintln!("reverse_server: {e}");
            std::process::exit(1);
        }
    }
    // reactor.run(): until Ctrl-C or SIGTERM.
    if let Err(e) = reactor.run() {
        eprintln!("reverse_server: {e}");
        std::process::exit(1);
    }
}

//! The paper's toy server and client: a line reverser (`ReverseLineProtocol`) and the
//! `RemoteReverser` client that returns a Deferred of the reversed text.

use crate::protocol::{FactoryFn, Handle};
use crate::protocols::basic::{LineContext, LineHandler, LineReceiver};
use crate::reactor::Reactor;
use crate::transport::tcp::connect_protocol;
use crate::{Deferred, Failure, Resolver};

/// Answers each line reversed; after `max_lines` lines (if set) closes the connection, as the
/// paper's server does after ten.
///
/// ```
/// use twistor::protocols::basic::LineReceiver;
/// use twistor::protocols::reverse::ReverseLine;
/// use twistor::testing::StringTransport;
///
/// let st = StringTransport::new();
/// st.connect(LineReceiver::new(ReverseLine::new(Some(2))));
/// st.deliver(b"Hello\r\nabc\r\nignored\r\n");
/// assert_eq!(st.value(), b"olleH\r\ncba\r\n");
/// assert!(st.disconnecting());
/// ```
pub struct ReverseLine {
    lines_received: usize,
    max_lines: Option<usize>,
}

impl ReverseLine {
    /// A reverser closing after `max_lines` lines (`None`: never).
    pub fn new(max_lines: Option<usize>) -> ReverseLine {
        ReverseLine {
            lines_received: 0,
            max_lines,
        }
    }
}

impl LineHandler for ReverseLine {
    fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
        if self.max_lines.is_some_and(|m| self.lines_received >= m) {
            return; // closing: later lines are not answered
        }
        let reversed: Vec<u8> = line.iter().rev().copied().collect();
        cx.send_line(&reversed);
        self.lines_received += 1;
        if self.max_lines.is_some_and(|m| self.lines_received >= m) {
            cx.transport().lose_connection();
        }
    }
}

/// A factory of line reversers (the paper's `ReverseLineFactory`).
///
/// ```
/// use twistor::protocols::reverse::reverse_factory;
/// use twistor::reactor::Reactor;
/// use twistor::transport::tcp::{listen_tcp_with, ListenOptions};
/// let reactor = Reactor::new().unwrap();
/// let port = listen_tcp_with(&reactor, 0, reverse_factory(Some(10)), ListenOptions::on("127.0.0.1")).unwrap();
/// assert_ne!(port.port(), 0);
/// ```
pub fn reverse_factory(max_lines: Option<usize>) -> FactoryFn<LineReceiver<ReverseLine>> {
    FactoryFn::new(move |_| {
        Some(LineReceiver::new(ReverseLine::new(max_lines)).with_max_length(1 << 20))
    })
}

/// The paper's `ReverseClientProtocol`: sends one line on connection, fires its Deferred with
/// the first line it gets back (once: the "dance" of taking the Deferred out first).
pub struct ReverseClient {
    deferred: Option<Resolver<String>>,
    text: String,
}

impl LineHandler for ReverseClient {
    fn connection_made(&mut self, cx: &LineContext<Self>) {
        cx.send_line(self.text.as_bytes());
    }
    fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
        // Take the Deferred out first: firing it twice would be an AlreadyCalledError.
        if let Some(d) = self.deferred.take() {
            let _ = d.callback(String::from_utf8_lossy(line).into_owned());
            cx.transport().lose_connection();
        }
    }
    fn connection_lost(&mut self, _cx: &LineContext<Self>, reason: Failure) {
        if let Some(d) = self.deferred.take() {
            let _ = d.errback(reason);
        }
    }
}

/// The paper's `RemoteReverser`: an API for reversing strings, hiding the protocol.
///
/// ```no_run
/// use twistor::protocols::reverse::RemoteReverser;
/// use twistor::reactor::Reactor;
/// let reactor = Reactor::new().unwrap();
/// let r = reactor.clone();
/// // Start once running: a reply (or a failure) may come at once, and stop() before run()
/// // would be refused.
/// reactor.call_when_running(move || {
///     let stop = r.clone();
///     RemoteReverser::new(&r, "localhost", 9999).reverse("Hello").add_both(move |res| {
///         println!("{}", res.unwrap_or_else(|f| f.to_string()));
///         let _ = stop.stop();
///         Ok(())
///     });
/// });
/// reactor.run().unwrap();
/// ```
pub struct RemoteReverser {
    reactor: Reactor,
    host: String,
    port: u16,
}

impl RemoteReverser {
    /// A reverser talking to `host:port`.
    pub fn new(reactor: &Reactor, host: &str, port: u16) -> RemoteReverser {
        RemoteReverser {
            reactor: reactor.clone(),
            host: host.to_string(),
            port,
        }
    }

    /// Sends `text` to the server; the Deferred fires with the first line that comes back.
    pub fn reverse(&self, text: &str) -> Deferred<String> {
        let (d, fire) = Deferred::new();
        let client = ReverseClient {
            deferred: Some(fire.clone()),
            text: text.to_string(),
        };
        let result = fire;
        let _ = connect_protocol(
            &self.reactor,
            &self.host,
            self.port,
            LineReceiver::new(client),
        )
        .add_both(
            move |r: Result<Handle<LineReceiver<ReverseClient>>, Failure>| {
                // Could not connect: the reverse fails with that reason.
                if let Err(f) = r {
                    let _ = result.errback(f);
                }
                Ok(())
            },
        );
        d
    }
}

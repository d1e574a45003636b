//! `TrafficLoggingFactory`: logs every connection's traffic (Twisted's
//! `policies.TrafficLoggingFactory`), through `log` or to a writer.
//!
//! One line per event, Twisted's format with the connection's number `n` (1, 2, ... in the
//! order connections are made): `*` when a connection is made, `C n: b'...'` for bytes the
//! client sent, `S n: b'...'` for a write and `SV n: [b'...', ...]` for a `write_sequence`
//! by the server, `S n: 'loseConnection'`, and `C n: <reason>` when the connection is lost.
//! Data longer than the length limit is cut to `limit - 12` bytes followed by `<... elided>`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::Write;

use super::wrapping::{WrapperPolicy, WrapperTransport, WrappingFactory};
use crate::Failure;
use crate::protocol::Factory;

/// Where traffic lines go.
enum Sink {
    /// `log::info!` with the target `twistor::traffic`.
    Log,
    /// A writer, one line at a time, flushed after each.
    Writer(RefCell<Box<dyn Write>>),
}

/// The policy of a [`TrafficLoggingFactory`]: numbers the connections and writes their
/// traffic lines.
///
/// ```
/// use twistor::protocol::{for_protocol, Context, Protocol};
/// use twistor::protocols::policies::traffic_logging_factory_to;
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let f = traffic_logging_factory_to(for_protocol(|| P), std::io::sink(), Some(100));
/// let _policy: &twistor::protocols::policies::TrafficLog = f.policy();
/// ```
pub struct TrafficLog {
    sink: Sink,
    length_limit: Option<usize>,
    counter: Cell<u64>,
    numbers: RefCell<HashMap<usize, u64>>,
}

impl TrafficLog {
    fn number(&self, w: &WrapperTransport) -> u64 {
        let key = std::ptr::from_ref(w) as usize;
        self.numbers.borrow().get(&key).copied().unwrap_or(0)
    }

    fn munge(&self, data: &[u8]) -> String {
        match self.length_limit {
            Some(limit) if data.len() > limit => format!(
                "b'{}<... elided>'",
                data[..limit.saturating_sub(12)].escape_ascii()
            ),
            _ => format!("b'{}'", data.escape_ascii()),
        }
    }

    fn line(&self, line: &str) {
        match &self.sink {
            Sink::Log => log::info!(target: "twistor::traffic", "{line}"),
            Sink::Writer(w) => {
                let mut w = w.borrow_mut();
                if let Err(e) = writeln!(w, "{line}").and_then(|()| w.flush()) {
                    log::warn!(target: "twistor::traffic", "traffic log write failed: {e}");
                }
            }
        }
    }
}

impl WrapperPolicy for TrafficLog {
    fn connection_made(&self, w: &WrapperTransport) {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        let key = std::ptr::from_ref(w) as usize;
        self.numbers.borrow_mut().insert(key, n);
        self.line("*");
    }
    fn data_read(&self, w: &WrapperTransport, data: &[u8]) {
        self.line(&format!("C {}: {}", self.number(w), self.munge(data)));
    }
    fn data_written(&self, w: &WrapperTransport, chunks: &[&[u8]]) {
        let n = self.number(w);
        match chunks {
            [one] => self.line(&format!("S {n}: {}", self.munge(one))),
            many => {
                let parts: Vec<String> = many.iter().map(|c| self.munge(c)).collect();
                self.line(&format!("SV {n}: [{}]", parts.join(", ")));
            }
        }
    }
    fn lose_connection(&self, w: &WrapperTransport) {
        self.line(&format!("S {}: 'loseConnection'", self.number(w)));
    }
    fn connection_lost(&self, w: &WrapperTransport, reason: &Failure) {
        self.line(&format!("C {}: {reason}", self.number(w)));
        let key = std::ptr::from_ref(w) as usize;
        self.numbers.borrow_mut().remove(&key);
    }
}

/// A [`WrappingFactory`] that logs its connections' traffic (see the module docs for the
/// format).
pub type TrafficLoggingFactory<F> = WrappingFactory<F, TrafficLog>;

/// Logs the traffic of `factory`'s connections through `log` (target `twistor::traffic`, level
/// info), data cut at `length_limit` bytes if given.
///
/// ```
/// use twistor::protocol::{for_protocol, Context, Protocol};
/// use twistor::protocols::policies::traffic_logging_factory;
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let _f = traffic_logging_factory(for_protocol(|| P), None);
/// ```
#[doc(alias = "TrafficLoggingFactory")]
pub fn traffic_logging_factory<F: Factory>(
    factory: F,
    length_limit: Option<usize>,
) -> TrafficLoggingFactory<F> {
    traffic_log(factory, Sink::Log, length_limit)
}

/// Logs the traffic of `factory`'s connections to `writer`, one line per event, data cut at
/// `length_limit` bytes if given (Twisted writes one file per connection; here the connection
/// number starts each line).
///
/// ```
/// use std::{cell::RefCell, io::Write, rc::Rc};
/// use twistor::protocol::{for_protocol, Context, Factory, Protocol};
/// use twistor::protocols::policies::traffic_logging_factory_to;
/// use twistor::testing::StringTransport;
/// use twistor::transport::Address;
///
/// #[derive(Clone, Default)]
/// struct Shared(Rc<RefCell<Vec<u8>>>);
/// impl Write for Shared {
///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.borrow_mut().write(b) }
///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// }
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, cx: &Context<Self>, d: &[u8]) { cx.transport().write(d) }
/// }
/// let out = Shared::default();
/// let f = traffic_logging_factory_to(for_protocol(|| Echo), out.clone(), None);
/// let st = StringTransport::new();
/// st.connect(f.build_protocol(&Address::Memory("peer".into())).unwrap());
/// st.deliver(b"hi\n");
/// let log = String::from_utf8(out.0.borrow().clone()).unwrap();
/// assert_eq!(log, "*\nC 1: b'hi\\n'\nS 1: b'hi\\n'\n");
/// ```
#[doc(alias = "TrafficLoggingFactory")]
pub fn traffic_logging_factory_to<F: Factory>(
    factory: F,
    writer: impl Write + 'static,
    length_limit: Option<usize>,
) -> TrafficLoggingFactory<F> {
    traffic_log(
        factory,
        Sink::Writer(RefCell::new(Box::new(writer))),
        length_limit,
    )
}

fn traffic_log<F: Factory>(
    factory: F,
    sink: Sink,
    length_limit: Option<usize>,
) -> TrafficLoggingFactory<F> {
    WrappingFactory::new(
        factory,
        TrafficLog {
            sink,
            length_limit,
            counter: Cell::new(0),
            numbers: RefCell::new(HashMap::new()),
        },
    )
}

//! `ThrottlingFactory`: a maximum number of connections and read/write rate limits.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use super::wrapping::{WrapperPolicy, WrapperTransport, WrappingFactory};
use crate::Failure;
use crate::protocol::Factory;
use crate::time::{DelayedCall, ReactorTime};
use crate::transport::Address;

/// Limits connections and bandwidth (Twisted's `ThrottlingFactory`): beyond `max_connections`
/// new connections are refused; if more than `read_limit` bytes/s were read in the last second,
/// every connection stops reading for `total/limit - 1` seconds; likewise writes, by pausing the
/// wrapped protocols' registered producers.
///
/// ```
/// use twistor::protocol::{for_protocol, Context, Factory, Protocol};
/// use twistor::protocols::policies::{throttling_factory, ThrottleOptions};
/// use twistor::testing::{ReadState, StringTransport};
/// use twistor::transport::Address;
/// use twistor::Clock;
///
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let clock = Clock::new();
/// let options = ThrottleOptions { read_limit: Some(10), ..ThrottleOptions::default() };
/// let f = throttling_factory(for_protocol(|| P), clock.clone(), options);
/// let st = StringTransport::new();
/// st.connect(f.build_protocol(&Address::Memory("peer".into())).unwrap());
/// st.deliver(&[0; 30]); // three times the limit in one second
/// clock.advance(1.0);
/// assert_eq!(st.read_state(), ReadState::Paused); // for 30/10 - 1 = 2 seconds
/// clock.advance(2.0);
/// assert_eq!(st.read_state(), ReadState::Producing);
/// ```
pub struct ThrottlePolicy {
    clock: Rc<dyn ReactorTime>,
    max_connections: usize,
    read_limit: Option<u64>,
    write_limit: Option<u64>,
    live: RefCell<Vec<Weak<WrapperTransport>>>,
    read_this_second: Cell<u64>,
    written_this_second: Cell<u64>,
    checker: RefCell<Option<DelayedCall>>,
    me: RefCell<Weak<ThrottlePolicy>>,
}

impl ThrottlePolicy {
    fn live(&self) -> Vec<Rc<WrapperTransport>> {
        self.live
            .borrow()
            .iter()
            .filter_map(|w| w.upgrade())
            .collect()
    }

    fn check(self: &Rc<Self>) {
        let read = self.read_this_second.replace(0);
        let written = self.written_this_second.replace(0);
        if let Some(limit) = self.read_limit.filter(|l| read > *l && *l > 0) {
            let pause = read as f64 / limit as f64 - 1.0;
            let conns = self.live();
            for c in &conns {
                c.real().pause_producing();
            }
            self.clock.call_later_boxed(
                pause,
                Box::new(move || {
                    for c in conns {
                        c.real().resume_producing();
                    }
                }),
            );
        }
        if let Some(limit) = self.write_limit.filter(|l| written > *l && *l > 0) {
            let pause = written as f64 / limit as f64 - 1.0;
            let producers: Vec<_> = self.live().iter().filter_map(|c| c.producer()).collect();
            for p in &producers {
                p.pause_producing();
            }
            self.clock.call_later_boxed(
                pause,
                Box::new(move || {
                    for p in producers {
                        p.resume_producing();
                    }
                }),
            );
        }
        self.schedule_check();
    }

    fn schedule_check(&self) {
        let me = self.me.borrow().clone();
        let call = self.clock.call_later_boxed(
            1.0,
            Box::new(move || {
                if let Some(me) = me.upgrade() {
                    me.check();
                }
            }),
        );
        *self.checker.borrow_mut() = Some(call);
    }
}

impl WrapperPolicy for Rc<ThrottlePolicy> {
    fn admit(&self, _addr: &Address) -> bool {
        self.live.borrow_mut().retain(|w| w.strong_count() > 0);
        self.live.borrow().len() < self.max_connections
    }
    fn connection_made(&self, w: &WrapperTransport) {
        let first = self.live().is_empty();
        self.live.borrow_mut().push(w.me.borrow().clone());
        if first && (self.read_limit.is_some() || self.write_limit.is_some()) {
            self.schedule_check();
        }
    }
    fn bytes_read(&self, _w: &WrapperTransport, n: usize) {
        self.read_this_second
            .set(self.read_this_second.get() + n as u64);
    }
    fn bytes_written(&self, _w: &WrapperTransport, n: usize) {
        self.written_this_second
            .set(self.written_this_second.get() + n as u64);
    }
    fn connection_lost(&self, w: &WrapperTransport, _reason: &Failure) {
        self.live
            .borrow_mut()
            .retain(|t| !std::ptr::eq(t.as_ptr(), w) && t.strong_count() > 0);
        if self.live().is_empty()
            && let Some(c) = self.checker.borrow_mut().take()
            && c.active()
        {
            let _ = c.cancel();
        }
    }
}

/// A [`WrappingFactory`] that throttles.
pub type ThrottlingFactory<F> = WrappingFactory<F, Rc<ThrottlePolicy>>;

/// How a [`ThrottlingFactory`] limits its connections. The defaults are Twisted's: no limit
/// on connections (`usize::MAX`), nor on reads or writes.
///
/// ```
/// use twistor::protocols::policies::ThrottleOptions;
/// let o = ThrottleOptions { read_limit: Some(1 << 20), ..ThrottleOptions::default() };
/// assert_eq!(o.max_connections, usize::MAX);
/// assert_eq!(o.write_limit, None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleOptions {
    /// Connections beyond this many are refused (Twisted's `maxConnectionCount`).
    pub max_connections: usize,
    /// Bytes per second read over all connections, or `None` for no limit.
    pub read_limit: Option<u64>,
    /// Bytes per second written over all connections, or `None` for no limit.
    pub write_limit: Option<u64>,
}

impl Default for ThrottleOptions {
    fn default() -> Self {
        ThrottleOptions {
            max_connections: usize::MAX,
            read_limit: None,
            write_limit: None,
        }
    }
}

/// Wraps `factory` with connection and rate limits (Twisted's `ThrottlingFactory`).
///
/// ```
/// use twistor::protocols::policies::{throttling_factory, ThrottleOptions};
/// use twistor::protocol::{for_protocol, Context, Factory, Protocol};
/// use twistor::transport::Address;
/// use twistor::Clock;
/// struct P;
/// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let options = ThrottleOptions { max_connections: 0, ..ThrottleOptions::default() };
/// let f = throttling_factory(for_protocol(|| P), Clock::new(), options);
/// assert!(f.build_protocol(&Address::Memory("peer".into())).is_none()); // no room
/// ```
#[doc(alias = "ThrottlingFactory")]
pub fn throttling_factory<F: Factory>(
    factory: F,
    clock: impl ReactorTime + 'static,
    options: ThrottleOptions,
) -> ThrottlingFactory<F> {
    let ThrottleOptions {
        max_connections,
        read_limit,
        write_limit,
    } = options;
    let policy = Rc::new(ThrottlePolicy {
        clock: Rc::new(clock),
        max_connections,
        read_limit,
        write_limit,
        live: RefCell::new(Vec::new()),
        read_this_second: Cell::new(0),
        written_this_second: Cell::new(0),
        checker: RefCell::new(None),
        me: RefCell::new(Weak::new()),
    });
    *policy.me.borrow_mut() = Rc::downgrade(&policy);
    WrappingFactory::new(factory, policy)
}

//! `LimitTotalConnectionsFactory`: at most so many connections at once; past the limit,
//! refuse, or serve an overflow protocol (Twisted's `policies.LimitTotalConnectionsFactory`).

use std::cell::Cell;
use std::rc::Rc;

use super::wrapping::{ProtocolWrapper, WrapperPolicy, WrapperTransport};
use crate::Failure;
use crate::protocol::{Context, Factory, Protocol};
use crate::transport::Address;

/// Counts live connections: one per protocol built, one less when it is lost.
struct Count(Cell<usize>);

impl WrapperPolicy for Count {
    fn connection_lost(&self, _w: &WrapperTransport, _reason: &Failure) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// The overflow of a [`LimitTotalConnectionsFactory`] that has none: connections past the
/// limit are refused.
///
/// ```
/// use twistor::protocol::Factory;
/// use twistor::protocols::policies::NoOverflow;
/// use twistor::transport::Address;
/// assert!(NoOverflow.build_protocol(&Address::Memory("x".into())).is_none());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOverflow;

/// The protocol [`NoOverflow`] never builds; it ignores what it would receive.
///
/// ```
/// use twistor::protocols::policies::Refused;
/// use twistor::testing::StringTransport;
/// let st = StringTransport::new();
/// st.connect(Refused);
/// st.deliver(b"x");
/// assert_eq!(st.value(), b"");
/// ```
#[derive(Debug)]
pub struct Refused;

impl Protocol for Refused {
    fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
}

impl Factory for NoOverflow {
    type Protocol = Refused;
    fn build_protocol(&self, _addr: &Address) -> Option<Refused> {
        None
    }
}

/// Limits the connections open at once (Twisted's `LimitTotalConnectionsFactory`): under
/// `connection_limit`, `factory` builds the protocol; past it, `overflow` does (Twisted's
/// `overflowProtocol`, say a "too busy" banner), or with [`NoOverflow`] the connection is
/// refused. Overflow connections count too, as in Twisted.
///
/// ```
/// use twistor::protocol::{for_protocol, Context, Factory, Protocol};
/// use twistor::protocols::policies::LimitTotalConnectionsFactory;
/// use twistor::testing::StringTransport;
/// use twistor::transport::Address;
/// use twistor::{error::ConnectionDone, Failure};
///
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, cx: &Context<Self>) { cx.transport().write(b"hello\r\n") }
///     fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
/// }
/// struct Busy;
/// impl Protocol for Busy {
///     fn connection_made(&mut self, cx: &Context<Self>) {
///         cx.transport().write(b"busy\r\n");
///         cx.transport().lose_connection();
///     }
///     fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
/// }
///
/// let f = LimitTotalConnectionsFactory::new(for_protocol(|| Hello), 1)
///     .with_overflow(for_protocol(|| Busy));
/// let peer = Address::Memory("peer".into());
/// let (a, b) = (StringTransport::new(), StringTransport::new());
/// a.connect(f.build_protocol(&peer).unwrap());
/// b.connect(f.build_protocol(&peer).unwrap());
/// assert_eq!((a.value(), b.value()), (b"hello\r\n".to_vec(), b"busy\r\n".to_vec()));
/// assert_eq!(f.connection_count(), 2);
/// a.connection_lost(Failure::new(ConnectionDone));
/// assert_eq!(f.connection_count(), 1);
/// ```
pub struct LimitTotalConnectionsFactory<F: Factory, O: Factory = NoOverflow> {
    factory: F,
    overflow: O,
    limit: Option<usize>,
    count: Rc<Count>,
}

impl<F: Factory> LimitTotalConnectionsFactory<F, NoOverflow> {
    /// At most `connection_limit` connections of `factory` at once; more are refused.
    ///
    /// ```
    /// use twistor::protocol::{for_protocol, Context, Factory, Protocol};
    /// use twistor::protocols::policies::LimitTotalConnectionsFactory;
    /// use twistor::transport::Address;
    /// struct P;
    /// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// let f = LimitTotalConnectionsFactory::new(for_protocol(|| P), 1);
    /// let peer = Address::Memory("peer".into());
    /// let _first = f.build_protocol(&peer).unwrap();
    /// assert!(f.build_protocol(&peer).is_none());
    /// ```
    pub fn new(factory: F, connection_limit: usize) -> Self {
        LimitTotalConnectionsFactory {
            factory,
            overflow: NoOverflow,
            limit: Some(connection_limit),
            count: Rc::new(Count(Cell::new(0))),
        }
    }

    /// No limit (Twisted's default `connectionLimit = None`): only counts.
    ///
    /// ```
    /// use twistor::protocol::{for_protocol, Context, Factory, Protocol};
    /// use twistor::protocols::policies::LimitTotalConnectionsFactory;
    /// use twistor::transport::Address;
    /// struct P;
    /// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// let f = LimitTotalConnectionsFactory::unlimited(for_protocol(|| P));
    /// let peer = Address::Memory("peer".into());
    /// let _kept: Vec<_> = (0..3).map(|_| f.build_protocol(&peer).unwrap()).collect();
    /// assert_eq!(f.connection_count(), 3);
    /// ```
    pub fn unlimited(factory: F) -> Self {
        LimitTotalConnectionsFactory {
            limit: None,
            ..LimitTotalConnectionsFactory::new(factory, 0)
        }
    }
}

impl<F: Factory, O: Factory> LimitTotalConnectionsFactory<F, O> {
    /// Past the limit, `overflow` builds the protocol instead of refusing.
    ///
    /// ```
    /// use twistor::protocol::{for_protocol, Context, Factory, Protocol};
    /// use twistor::protocols::policies::LimitTotalConnectionsFactory;
    /// use twistor::transport::Address;
    /// struct P;
    /// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// let f = LimitTotalConnectionsFactory::new(for_protocol(|| P), 0).with_overflow(for_protocol(|| P));
    /// assert!(f.build_protocol(&Address::Memory("peer".into())).is_some());
    /// ```
    pub fn with_overflow<O2: Factory>(self, overflow: O2) -> LimitTotalConnectionsFactory<F, O2> {
        LimitTotalConnectionsFactory {
            factory: self.factory,
            overflow,
            limit: self.limit,
            count: self.count,
        }
    }

    /// Connections built and not yet lost (Twisted's `connectionCount`).
    ///
    /// ```
    /// use twistor::protocol::{for_protocol, Context, Protocol};
    /// use twistor::protocols::policies::LimitTotalConnectionsFactory;
    /// struct P;
    /// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// assert_eq!(LimitTotalConnectionsFactory::new(for_protocol(|| P), 5).connection_count(), 0);
    /// ```
    #[doc(alias = "connectionCount")]
    pub fn connection_count(&self) -> usize {
        self.count.0.get()
    }

    /// The limit (Twisted's `connectionLimit`); `None` for none.
    ///
    /// ```
    /// use twistor::protocol::{for_protocol, Context, Protocol};
    /// use twistor::protocols::policies::LimitTotalConnectionsFactory;
    /// struct P;
    /// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// assert_eq!(LimitTotalConnectionsFactory::new(for_protocol(|| P), 5).connection_limit(), Some(5));
    /// ```
    #[doc(alias = "connectionLimit")]
    pub fn connection_limit(&self) -> Option<usize> {
        self.limit
    }
}

impl<F: Factory, O: Factory> Factory for LimitTotalConnectionsFactory<F, O> {
    type Protocol = ProtocolWrapper;

    fn build_protocol(&self, addr: &Address) -> Option<ProtocolWrapper> {
        let policy: Rc<dyn WrapperPolicy> = self.count.clone();
        let wrapper = if self.limit.is_none_or(|l| self.count.0.get() < l) {
            ProtocolWrapper::new(self.factory.build_protocol(addr)?, policy)
        } else {
            ProtocolWrapper::new(self.overflow.build_protocol(addr)?, policy)
        };
        self.count.0.set(self.count.0.get() + 1);
        Some(wrapper)
    }

    fn start_factory(&self) {
        self.factory.start_factory();
        self.overflow.start_factory();
    }

    fn stop_factory(&self) {
        self.factory.stop_factory();
        self.overflow.stop_factory();
    }
}

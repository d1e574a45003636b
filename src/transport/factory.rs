//! The factory as transports see it: type-erased, with its start/stop count on it.
//!
//! Twisted's `Factory.doStart`/`doStop` count the ports and connectors using a factory
//! (`numPorts`): `startFactory` runs for the first, `stopFactory` after the last. The count
//! lives in a [`Counted`] beside the user's factory, shared by every port and connector that
//! got the same `Rc<F>`: [`counted`] finds the existing one through a thread-local index of
//! weak references. The index never decides by address alone: an entry whose `Counted` is
//! gone is dead, so a new factory that happens to get a freed factory's address starts from
//! zero; and a live `Counted` holds its factory, so that address cannot be reused while it is
//! counted.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::{Rc, Weak};

use super::connector::Connector;
use super::{Address, Transport};
use crate::Failure;
use crate::protocol::{ClientFactory, Factory, ProtocolDriver, attach_with_factory};

/// A factory with its users counted.
pub(crate) struct Counted<F> {
    factory: Rc<F>,
    users: Cell<usize>,
}

/// What a port or connector needs from its factory, with the protocol type erased.
pub(crate) trait AnyFactory {
    /// Builds a protocol for a connection from/to `addr` attached to `transport`; `None` if
    /// the factory refused.
    fn build(&self, addr: &Address, transport: Transport) -> Option<Rc<dyn ProtocolDriver>>;
    /// Counts a user; `start_factory` on the first.
    fn do_start(&self);
    /// Uncounts a user; `stop_factory` after the last (its panic, if any, as a failure).
    fn do_stop(&self) -> Result<(), Failure>;
    /// The user's factory, for tests that look at it (`MemoryReactor`).
    fn as_any(&self) -> Rc<dyn Any>;
}

/// What a connector needs on top: Twisted's `ClientFactory` hooks.
pub(crate) trait AnyClientFactory: AnyFactory {
    fn started(&self, c: &Rc<dyn Connector>);
    fn failed(&self, c: &Rc<dyn Connector>, reason: Failure);
    fn lost(&self, c: &Rc<dyn Connector>, reason: Failure);
}

thread_local! {
    static COUNTED: RefCell<HashMap<usize, Weak<dyn Any>>> = RefCell::new(HashMap::new());
}

/// The counted form of `factory`: the same one for every caller with the same `Rc`.
pub(crate) fn counted<F: Factory>(factory: Rc<F>) -> Rc<Counted<F>> {
    let key = Rc::as_ptr(&factory) as *const () as usize;
    COUNTED.with(|m| {
        let mut m = m.borrow_mut();
        if let Some(c) = m
            .get(&key)
            .and_then(Weak::upgrade)
            .and_then(|c| c.downcast::<Counted<F>>().ok())
            && Rc::ptr_eq(&c.factory, &factory)
        {
            return c;
        }
        // Dead entries are dropped now and then, so the index stays small.
        if m.len() > 64 {
            m.retain(|_, w| w.strong_count() > 0);
        }
        let c = Rc::new(Counted {
            factory,
            users: Cell::new(0),
        });
        let any: Rc<dyn Any> = c.clone();
        m.insert(key, Rc::downgrade(&any));
        c
    })
}

impl<F: Factory> AnyFactory for Counted<F> {
    fn build(&self, addr: &Address, transport: Transport) -> Option<Rc<dyn ProtocolDriver>> {
        let p = self.factory.build_protocol(addr)?;
        let any: Rc<dyn Any> = self.factory.clone();
        let (driver, _handle) = attach_with_factory(p, transport, Some(any));
        Some(driver)
    }

    fn do_start(&self) {
        let n = self.users.get() + 1;
        self.users.set(n);
        if n == 1 {
            self.factory.start_factory();
        }
    }

    fn do_stop(&self) -> Result<(), Failure> {
        match self.users.get() {
            0 => Ok(()),
            1 => {
                self.users.set(0);
                catch_unwind(AssertUnwindSafe(|| self.factory.stop_factory()))
                    .map_err(|p| Failure::from_panic(&*p))
            }
            n => {
                self.users.set(n - 1);
                Ok(())
            }
        }
    }

    fn as_any(&self) -> Rc<dyn Any> {
        self.factory.clone()
    }
}

impl<F: ClientFactory> AnyClientFactory for Counted<F> {
    fn started(&self, c: &Rc<dyn Connector>) {
        self.factory.started_connecting(c)
    }
    fn failed(&self, c: &Rc<dyn Connector>, reason: Failure) {
        self.factory.client_connection_failed(c, reason)
    }
    fn lost(&self, c: &Rc<dyn Connector>, reason: Failure) {
        self.factory.client_connection_lost(c, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Context, Protocol};

    struct P;
    impl Protocol for P {
        fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
    }

    #[derive(Default)]
    struct Counting {
        starts: Cell<u32>,
        stops: Cell<u32>,
    }
    impl Factory for Counting {
        type Protocol = P;
        fn build_protocol(&self, _addr: &Address) -> Option<P> {
            Some(P)
        }
        fn start_factory(&self) {
            self.starts.set(self.starts.get() + 1)
        }
        fn stop_factory(&self) {
            self.stops.set(self.stops.get() + 1)
        }
    }

    #[test]
    fn same_rc_shares_one_count() {
        let f = Rc::new(Counting::default());
        let a = counted(f.clone());
        let b = counted(f.clone());
        a.do_start();
        b.do_start();
        assert_eq!(f.starts.get(), 1);
        a.do_stop().unwrap();
        assert_eq!(f.stops.get(), 0);
        b.do_stop().unwrap();
        b.do_stop().unwrap(); // ignored at zero
        assert_eq!(f.stops.get(), 1);
    }

    #[test]
    fn a_new_factory_never_inherits_a_count() {
        // The first factory is counted and then dropped with its count still at one.
        for _ in 0..100 {
            let f = Rc::new(Counting::default());
            let c = counted(f.clone());
            c.do_start();
            assert_eq!(f.starts.get(), 1, "start_factory skipped for a new factory");
        }
    }
}

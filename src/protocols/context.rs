//! What every callback context offers, whoever drives it: the transport, and a weak way back
//! to the callbacks' owner for work that finishes later.
//!
//! A plain protocol's callbacks get a [`Context`]; a framing receiver's handler gets a
//! [`ReceiverContext`] (`LineContext`, `StringContext`...). Both are [`ProtocolContext`]s,
//! so a policy written once against the trait (an idle timeout, say) works with every
//! protocol, framing receivers included, with no glue in user code.

use std::rc::Rc;

use crate::protocol::{Context, Handle, Protocol};
use crate::protocols::basic::{ReceiverContext, ReceiverHandle};
use crate::transport::Transport;

/// A callback context: what a policy needs from whatever drives the callbacks.
///
/// ```
/// use twistor::protocol::{Context, Protocol};
/// use twistor::protocols::ProtocolContext;
/// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
/// use twistor::testing::StringTransport;
///
/// /// Works for any context: writes a greeting one callback later.
/// fn greet_later<C: ProtocolContext>(cx: &C) {
///     cx.reach().with(|_owner, cx: &C| cx.transport().write(b"hi\r\n"));
/// }
///
/// struct Plain;
/// impl Protocol for Plain {
///     fn connection_made(&mut self, cx: &Context<Self>) { greet_later(cx) }
///     fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
/// }
/// struct Lines;
/// impl LineHandler for Lines {
///     fn connection_made(&mut self, cx: &LineContext<Self>) { greet_later(cx) }
///     fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {}
/// }
/// let (a, b) = (StringTransport::new(), StringTransport::new());
/// a.connect(Plain);
/// b.connect(LineReceiver::new(Lines));
/// assert_eq!((a.value(), b.value()), (b"hi\r\n".to_vec(), b"hi\r\n".to_vec()));
/// ```
pub trait ProtocolContext: Sized + 'static {
    /// Whose callbacks get this context: the protocol, or a receiver's handler.
    type Owner: 'static;

    /// The transport.
    fn transport(&self) -> &Transport;

    /// A weak way back to the owner and this context, for timers and Deferreds.
    fn reach(&self) -> Reach<Self>;
}

/// Work for a context's owner, run later.
type Job<C> = Box<dyn FnOnce(&mut <C as ProtocolContext>::Owner, &C)>;

/// Runs a job on a context's owner (a protocol's [`Handle`], a receiver's handle).
trait Runs<C: ProtocolContext> {
    fn run(&self, job: Job<C>);
    fn alive(&self) -> bool;
}

impl<P: Protocol> Runs<Context<P>> for Handle<P> {
    fn run(&self, job: Job<Context<P>>) {
        self.with(move |p, cx| job(p, cx));
    }
    fn alive(&self) -> bool {
        Handle::alive(self)
    }
}

impl<W: 'static, H: 'static> Runs<ReceiverContext<W, H>> for ReceiverHandle<W, H> {
    fn run(&self, job: Job<ReceiverContext<W, H>>) {
        self.with(move |h, cx| job(h, cx));
    }
    fn alive(&self) -> bool {
        ReceiverHandle::alive(self)
    }
}

/// A weak way back to a context's owner (see [`ProtocolContext::reach`]): the handle of a
/// protocol or of a receiver, whichever the context belongs to.
///
/// ```
/// use twistor::protocol::{Context, Protocol};
/// use twistor::protocols::ProtocolContext;
/// use twistor::testing::StringTransport;
///
/// struct Count(u32);
/// impl Protocol for Count {
///     fn data_received(&mut self, cx: &Context<Self>, _: &[u8]) {
///         // Queued: this protocol's callback is running; it runs right after.
///         cx.reach().with(|p: &mut Count, _| p.0 += 1);
///     }
/// }
/// let st = StringTransport::new();
/// let h = st.connect(Count(0));
/// st.deliver(b"x");
/// assert_eq!(h.with(|p, _| p.0), Some(1));
/// ```
pub struct Reach<C: ProtocolContext> {
    runner: Rc<dyn Runs<C>>,
}

impl<C: ProtocolContext> Reach<C> {
    /// Runs `f` on the owner and its context as soon as that is safe (at once, or right after
    /// the running callback); dropped if the connection is gone.
    ///
    /// ```
    /// use twistor::protocols::ProtocolContext;
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct Echo;
    /// impl LineHandler for Echo {
    ///     fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
    ///         let line = line.to_vec();
    ///         cx.reach().with(move |_, cx| cx.send_line(&line));
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// st.connect(LineReceiver::new(Echo));
    /// st.deliver(b"a\r\n");
    /// assert_eq!(st.value(), b"a\r\n");
    /// ```
    pub fn with(&self, f: impl FnOnce(&mut C::Owner, &C) + 'static) {
        self.runner.run(Box::new(f));
    }

    /// True while the connection exists.
    ///
    /// ```
    /// use twistor::protocol::{Context, Protocol};
    /// use twistor::protocols::ProtocolContext;
    /// use twistor::testing::StringTransport;
    ///
    /// struct P;
    /// impl Protocol for P { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = st.connect(P);
    /// assert_eq!(h.with(|_, cx| cx.reach().alive()), Some(true));
    /// ```
    pub fn alive(&self) -> bool {
        self.runner.alive()
    }
}

impl<C: ProtocolContext> Clone for Reach<C> {
    fn clone(&self) -> Self {
        Reach {
            runner: self.runner.clone(),
        }
    }
}

impl<P: Protocol> ProtocolContext for Context<P> {
    type Owner = P;

    fn transport(&self) -> &Transport {
        Context::transport(self)
    }

    fn reach(&self) -> Reach<Self> {
        Reach {
            runner: Rc::new(self.handle()),
        }
    }
}

impl<W: 'static, H: 'static> ProtocolContext for ReceiverContext<W, H> {
    type Owner = H;

    fn transport(&self) -> &Transport {
        ReceiverContext::transport(self)
    }

    fn reach(&self) -> Reach<Self> {
        Reach {
            runner: Rc::new(self.handle()),
        }
    }
}

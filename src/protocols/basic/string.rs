//! String receivers: one driver for every framing of whole strings (netstrings, length
//! prefixes).
//!
//! A framing is a small state machine ([`Framing`]) that consumes bytes and yields at most one
//! frame per step: a string (a slice of the input when it arrived whole, else of the
//! framing's own buffer), a too-long length, or a parse error. The driver
//! ([`StringReceiver`]) loops over steps, calls the handler, and stops at once when the
//! handler pauses; the bytes it did not feed are then *held* (`held`), and fed first when
//! delivery resumes. Outside pausing `held` is empty, so a received chunk is parsed in place.

use std::cell::{Cell, OnceCell};
use std::fmt;
use std::rc::Rc;

use super::DEFAULT_STRING_MAX_LENGTH;
use super::netstring::NetstringParseError;
use super::{DEFAULT_PAUSED_BUFFER_LIMIT, Flow, Link, StringTooLongError, paused_overflow, trim};
use crate::Failure;
use crate::protocol::{Context, Handle, Protocol};
use crate::transport::{Producer, Transport};

/// What you write to receive strings from a [`NetstringReceiver`](super::NetstringReceiver)
/// or an [`IntNStringReceiver`](super::IntNStringReceiver) (`Int8`/`Int16`/`Int32`): the same
/// handler works with each framing.
///
/// ```
/// use twistor::protocols::basic::{Int16StringReceiver, StringContext, StringHandler};
/// use twistor::testing::StringTransport;
///
/// struct Echo;
/// impl StringHandler for Echo {
///     fn string_received(&mut self, cx: &StringContext<Self>, s: &[u8]) {
///         cx.send_string(s).unwrap();
///     }
/// }
/// let st = StringTransport::new();
/// st.connect(Int16StringReceiver::new(Echo));
/// st.deliver(b"\x00\x02hi");
/// assert_eq!(st.value(), b"\x00\x02hi");
/// ```
pub trait StringHandler: Sized + 'static {
    /// The connection is up.
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// struct Hello;
    /// impl StringHandler for Hello {
    ///     fn connection_made(&mut self, cx: &StringContext<Self>) {
    ///         cx.send_string(b"hello").unwrap();
    ///     }
    ///     fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {}
    /// }
    /// let st = StringTransport::new();
    /// st.connect(NetstringReceiver::new(Hello));
    /// assert_eq!(st.value(), b"5:hello,");
    /// ```
    fn connection_made(&mut self, _cx: &StringContext<Self>) {}

    /// A whole string arrived.
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// #[derive(Default)]
    /// struct Collect(Vec<Vec<u8>>);
    /// impl StringHandler for Collect {
    ///     fn string_received(&mut self, _: &StringContext<Self>, s: &[u8]) { self.0.push(s.to_vec()) }
    /// }
    /// let st = StringTransport::new();
    /// let h = st.connect(NetstringReceiver::new(Collect::default()));
    /// st.deliver(b"3:abc,0:,");
    /// assert_eq!(h.with(|r, _| r.handler().0.clone()).unwrap(), [b"abc".to_vec(), vec![]]);
    /// ```
    fn string_received(&mut self, cx: &StringContext<Self>, string: &[u8]);

    /// A length-prefixed string declared `length` bytes, more than `max_length` (Twisted's
    /// `lengthLimitExceeded`). The string is never delivered, even if it is all there, and
    /// the receiver delivers nothing more. The default closes the connection.
    ///
    /// ```
    /// use twistor::protocols::basic::{Int8StringReceiver, StringContext, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// #[derive(Default)]
    /// struct Big(Vec<u64>);
    /// impl StringHandler for Big {
    ///     fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {}
    ///     fn length_limit_exceeded(&mut self, _: &StringContext<Self>, length: u64) {
    ///         self.0.push(length);
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// let h = st.connect(Int8StringReceiver::new(Big::default()).with_max_length(10));
    /// st.deliver(b"\x0bhello world");
    /// assert_eq!(h.with(|r, _| r.handler().0.clone()).unwrap(), [11]);
    /// ```
    fn length_limit_exceeded(&mut self, cx: &StringContext<Self>, _length: u64) {
        cx.transport().lose_connection();
    }

    /// The peer sent something that is not a netstring (too long counts: Twisted's
    /// `NetstringParseError`). The receiver delivers nothing more
    /// ([`broken_peer`](StringContext::broken_peer) is then true). The default closes the
    /// connection, as Twisted does.
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringParseError, NetstringReceiver, StringContext, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// #[derive(Default)]
    /// struct Strict(Option<NetstringParseError>);
    /// impl StringHandler for Strict {
    ///     fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {}
    ///     fn parse_error(&mut self, cx: &StringContext<Self>, error: NetstringParseError) {
    ///         self.0 = Some(error);
    ///         cx.transport().lose_connection();
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// let h = st.connect(NetstringReceiver::new(Strict::default()));
    /// st.deliver(b"3:abcd,");
    /// assert_eq!(h.with(|r, _| r.handler().0.clone()).unwrap(), Some(NetstringParseError::MissingComma));
    /// assert!(st.disconnecting());
    /// ```
    fn parse_error(&mut self, cx: &StringContext<Self>, _error: NetstringParseError) {
        cx.transport().lose_connection();
    }

    /// The connection is gone (called once).
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};
    /// use twistor::testing::StringTransport;
    /// use twistor::{error::ConnectionDone, Failure};
    ///
    /// struct N;
    /// impl StringHandler for N {
    ///     fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {}
    ///     fn connection_lost(&mut self, _: &StringContext<Self>, reason: Failure) {
    ///         assert!(reason.is::<ConnectionDone>());
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// st.connect(NetstringReceiver::new(N));
    /// st.connection_lost(Failure::new(ConnectionDone));
    /// ```
    fn connection_lost(&mut self, _cx: &StringContext<Self>, _reason: Failure) {}
}

pub(super) mod sealed {
    use super::NetstringParseError;
    use crate::transport::Transport;

    /// What one parsing step found.
    pub enum Frame<'a> {
        /// A whole string.
        String(&'a [u8]),
        /// A declared length over the limit.
        TooLong(u64),
        /// Not a valid frame.
        Error(NetstringParseError),
    }

    /// The framing's machinery; see [`Framing`](super::Framing).
    pub trait Sealed: Sized + 'static {
        /// A parser in its initial state.
        fn start() -> Self;
        /// Parses from `input`: returns how many bytes it consumed and at most one frame.
        /// Consumes at least one byte or returns a frame, when `input` is not empty.
        fn step<'a>(&'a mut self, input: &'a [u8], max_length: usize)
        -> (usize, Option<Frame<'a>>);
        /// Writes `string`, framed.
        fn send(transport: &Transport, string: &[u8]) -> Result<(), super::StringTooLongError>;
    }
}

use sealed::Frame;

/// A string framing: [`Netstring`](super::Netstring) or [`IntPrefix`](super::IntPrefix).
/// Sealed: implemented by this crate only.
///
/// ```
/// use twistor::protocols::basic::{Framing, IntPrefix, Netstring};
/// fn framed<F: Framing>() {}
/// framed::<Netstring>();
/// framed::<IntPrefix<4>>();
/// ```
pub trait Framing: sealed::Sealed {}

/// What a [`StringHandler`]'s callbacks can reach: the transport, `send_string`, pausing, and
/// a [`StringHandle`] for later work.
///
/// ```
/// use twistor::protocols::basic::{Int32StringReceiver, StringContext, StringHandler};
/// use twistor::testing::StringTransport;
///
/// struct Info;
/// impl StringHandler for Info {
///     fn string_received(&mut self, cx: &StringContext<Self>, _: &[u8]) {
///         cx.send_string(cx.max_length().to_string().as_bytes()).unwrap();
///     }
/// }
/// let st = StringTransport::new();
/// st.connect(Int32StringReceiver::new(Info));
/// st.deliver(b"\0\0\0\0");
/// assert_eq!(st.value(), b"\0\0\0\x0599999");
/// ```
pub struct StringContext<H> {
    /// Transport and handle; set before any handler callback runs.
    link: OnceCell<Link<StringHandle<H>>>,
    /// The framing's writer.
    send: fn(&Transport, &[u8]) -> Result<(), StringTooLongError>,
    /// The longest string delivered (Twisted's `MAX_LENGTH`).
    max_length: usize,
    /// The most a paused receiver holds back.
    paused_limit: usize,
    /// Pausing: `pause_producing` (or `stop_producing`) was called; `stop_producing` is for
    /// good.
    flow: Flow,
    /// A framing error or too-long length: the stream cannot be parsed further.
    broken: Cell<bool>,
}

impl<H> StringContext<H> {
    fn link(&self) -> &Link<StringHandle<H>> {
        Link::of(&self.link)
    }

    /// The transport.
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// struct Bye;
    /// impl StringHandler for Bye {
    ///     fn string_received(&mut self, cx: &StringContext<Self>, _: &[u8]) {
    ///         cx.transport().lose_connection();
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// st.connect(NetstringReceiver::new(Bye));
    /// st.deliver(b"3:bye,");
    /// assert!(st.disconnecting());
    /// ```
    pub fn transport(&self) -> &Transport {
        &self.link().transport
    }

    /// A handle on the handler, for later work (see [`StringHandle::with`]).
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};
    /// use twistor::testing::StringTransport;
    /// use twistor::Clock;
    ///
    /// struct Later(Clock);
    /// impl StringHandler for Later {
    ///     fn string_received(&mut self, cx: &StringContext<Self>, s: &[u8]) {
    ///         let (me, s) = (cx.handle(), s.to_vec());
    ///         self.0.call_later(1.0, move || { me.with(move |_, cx| cx.send_string(&s)); });
    ///     }
    /// }
    /// let clock = Clock::new();
    /// let st = StringTransport::new();
    /// st.connect(NetstringReceiver::new(Later(clock.clone())));
    /// st.deliver(b"2:hi,");
    /// clock.advance(1.0);
    /// assert_eq!(st.value(), b"2:hi,");
    /// ```
    pub fn handle(&self) -> StringHandle<H> {
        self.link().handle.clone()
    }

    /// Writes `string` in the receiver's framing (Twisted's `sendString`). Fails, writing
    /// nothing, if the length does not fit a length prefix.
    ///
    /// ```
    /// use twistor::protocols::basic::{Int8StringReceiver, StringContext, StringHandle, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = StringHandle::from(st.connect(Int8StringReceiver::new(N)));
    /// assert!(h.with(|_, cx| cx.send_string(b"ok")).unwrap().is_ok());
    /// assert!(h.with(|_, cx| cx.send_string(&[0; 256])).unwrap().is_err());
    /// assert_eq!(st.value(), b"\x02ok");
    /// ```
    pub fn send_string(&self, string: &[u8]) -> Result<(), StringTooLongError> {
        (self.send)(self.transport(), string)
    }

    /// Stops delivering strings, holding back what is buffered and what arrives, and pauses
    /// the transport (Twisted's `pauseProducing`; netstrings are pausable here too).
    ///
    /// ```
    /// use twistor::protocols::basic::{Int8StringReceiver, StringContext, StringHandle, StringHandler};
    /// use twistor::testing::{ReadState, StringTransport};
    ///
    /// #[derive(Default)]
    /// struct One(usize);
    /// impl StringHandler for One {
    ///     fn string_received(&mut self, cx: &StringContext<Self>, _: &[u8]) {
    ///         self.0 += 1;
    ///         cx.pause_producing();
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// let h = StringHandle::from(st.connect(Int8StringReceiver::new(One::default())));
    /// st.deliver(b"\x01a\x01b");
    /// assert_eq!(h.with(|o, _| o.0), Some(1));
    /// assert_eq!(st.read_state(), ReadState::Paused);
    /// ```
    pub fn pause_producing(&self) {
        self.flow.pause(self.transport());
    }

    /// Delivers again and resumes the transport (Twisted's `resumeProducing`); held strings
    /// are delivered as soon as the current callback (or the closure given to
    /// [`StringHandle::with`]) returns. Does nothing after `stop_producing`.
    ///
    /// ```
    /// use twistor::protocols::basic::{Int8StringReceiver, StringContext, StringHandle, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// #[derive(Default)]
    /// struct One(usize);
    /// impl StringHandler for One {
    ///     fn string_received(&mut self, cx: &StringContext<Self>, _: &[u8]) {
    ///         self.0 += 1;
    ///         cx.pause_producing();
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// let h = StringHandle::from(st.connect(Int8StringReceiver::new(One::default())));
    /// st.deliver(b"\x01a\x01b");
    /// h.with(|_, cx| cx.resume_producing());
    /// assert_eq!(h.with(|o, _| o.0), Some(2));
    /// ```
    pub fn resume_producing(&self) {
        self.flow.resume(self.transport());
    }

    /// Stops for good: nothing more is delivered, held bytes are dropped, and the
    /// transport's `stop_producing` is called.
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};
    /// use twistor::testing::{ReadState, StringTransport};
    ///
    /// #[derive(Default)]
    /// struct Stop(usize);
    /// impl StringHandler for Stop {
    ///     fn string_received(&mut self, cx: &StringContext<Self>, _: &[u8]) {
    ///         self.0 += 1;
    ///         cx.stop_producing();
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// let h = st.connect(NetstringReceiver::new(Stop::default()));
    /// st.deliver(b"1:a,1:b,");
    /// assert_eq!(h.with(|r, _| r.handler().0), Some(1));
    /// assert_eq!(st.read_state(), ReadState::Stopped);
    /// ```
    pub fn stop_producing(&self) {
        self.flow.stop(self.transport());
    }

    /// True while paused (or stopped).
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandle, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = StringHandle::from(st.connect(NetstringReceiver::new(N)));
    /// assert_eq!(h.with(|_, cx| { cx.pause_producing(); cx.paused() }), Some(true));
    /// ```
    pub fn paused(&self) -> bool {
        self.flow.paused()
    }

    /// True once the peer sent an invalid or too-long frame (Twisted's `brokenPeer`).
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandle, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = StringHandle::from(st.connect(NetstringReceiver::new(N)));
    /// st.deliver(b"abc");
    /// assert_eq!(h.with(|_, cx| cx.broken_peer()), Some(true));
    /// assert!(st.disconnecting());
    /// ```
    pub fn broken_peer(&self) -> bool {
        self.broken.get()
    }

    /// The longest string delivered (Twisted's `MAX_LENGTH`).
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandle, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = StringHandle::from(st.connect(NetstringReceiver::new(N).with_max_length(5)));
    /// assert_eq!(h.with(|_, cx| cx.max_length()), Some(5));
    /// ```
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Nothing will ever be delivered again.
    fn dead(&self) -> bool {
        self.flow.stopped() || self.broken.get()
    }

    /// Delivery is suspended (for now or for good).
    fn halted(&self) -> bool {
        self.flow.paused() || self.dead()
    }

    fn paused_limit(&self) -> usize {
        // At least one maximal frame (a prefix is at most 20 bytes, even for netstrings).
        self.paused_limit.max(self.max_length.saturating_add(32))
    }
}

/// A string protocol: parses a framing `F` and delivers whole strings to a
/// [`StringHandler`]. Use it through its aliases: [`NetstringReceiver`](super::NetstringReceiver),
/// [`Int8StringReceiver`](super::Int8StringReceiver),
/// [`Int16StringReceiver`](super::Int16StringReceiver),
/// [`Int32StringReceiver`](super::Int32StringReceiver).
///
/// The default `max_length` is 99999, Twisted's.
///
/// ```
/// use twistor::protocols::basic::{Int32StringReceiver, StringContext, StringHandler};
/// use twistor::testing::StringTransport;
///
/// #[derive(Default)]
/// struct Collect(Vec<Vec<u8>>);
/// impl StringHandler for Collect {
///     fn string_received(&mut self, _: &StringContext<Self>, s: &[u8]) { self.0.push(s.to_vec()) }
/// }
/// let st = StringTransport::new();
/// let h = st.connect(Int32StringReceiver::new(Collect::default()));
/// for b in b"\0\0\0\x03abc\0\0\0\x01d" {
///     st.deliver(&[*b]);
/// }
/// assert_eq!(h.with(|r, _| r.handler().0.clone()).unwrap(), [b"abc".to_vec(), b"d".to_vec()]);
/// ```
pub struct StringReceiver<F, H> {
    /// The user's callbacks.
    handler: H,
    /// Transport, handle, configuration and pausing, lent to the callbacks.
    scx: StringContext<H>,
    /// The parser, with the partial frame it holds.
    framing: F,
    /// Received bytes not fed to the parser because delivery was paused.
    held: Vec<u8>,
}

impl<F: Framing, H: StringHandler> StringReceiver<F, H> {
    pub(super) fn from_handler(handler: H) -> Self {
        StringReceiver {
            handler,
            scx: StringContext {
                link: OnceCell::new(),
                send: F::send,
                max_length: DEFAULT_STRING_MAX_LENGTH,
                paused_limit: DEFAULT_PAUSED_BUFFER_LIMIT,
                flow: Flow::default(),
                broken: Cell::new(false),
            },
            framing: F::start(),
            held: Vec::new(),
        }
    }

    /// Sets the longest string delivered (Twisted's `MAX_LENGTH`).
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};
    ///
    /// struct N;
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// assert_eq!(NetstringReceiver::new(N).with_max_length(10).max_length(), 10);
    /// ```
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.scx.max_length = max_length;
        self
    }

    /// Sets the most bytes held back while paused (default
    /// [`DEFAULT_PAUSED_BUFFER_LIMIT`](super::DEFAULT_PAUSED_BUFFER_LIMIT); never below one
    /// maximal frame). Past it the connection is closed.
    ///
    /// ```
    /// use twistor::protocols::basic::{Int8StringReceiver, StringContext, StringHandle, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let r = Int8StringReceiver::new(N).with_max_length(0).with_paused_buffer_limit(0);
    /// let h = StringHandle::from(st.connect(r));
    /// h.with(|_, cx| cx.pause_producing());
    /// st.deliver(&[0; 33]);
    /// assert!(st.disconnecting());
    /// ```
    pub fn with_paused_buffer_limit(mut self, limit: usize) -> Self {
        self.scx.paused_limit = limit;
        self
    }

    /// The longest string delivered.
    ///
    /// ```
    /// use twistor::protocols::basic::{Int16StringReceiver, StringContext, StringHandler};
    ///
    /// struct N;
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// assert_eq!(Int16StringReceiver::new(N).max_length(), 99999);
    /// ```
    pub fn max_length(&self) -> usize {
        self.scx.max_length
    }

    /// True once the peer sent an invalid or too-long frame.
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = st.connect(NetstringReceiver::new(N));
    /// st.deliver(b"03:abc,"); // leading zeros are refused
    /// assert_eq!(h.with(|r, _| r.broken_peer()), Some(true));
    /// ```
    pub fn broken_peer(&self) -> bool {
        self.scx.broken.get()
    }

    /// The handler.
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};
    ///
    /// struct N(u8);
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// assert_eq!(NetstringReceiver::new(N(3)).handler().0, 3);
    /// ```
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};
    ///
    /// struct N(u8);
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// let mut r = NetstringReceiver::new(N(3));
    /// r.handler_mut().0 = 4;
    /// assert_eq!(r.handler().0, 4);
    /// ```
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// The handler, consuming the receiver.
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};
    ///
    /// struct N(u8);
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// assert_eq!(NetstringReceiver::new(N(3)).into_handler().0, 3);
    /// ```
    pub fn into_handler(self) -> H {
        self.handler
    }

    fn link(&self, cx: &Context<Self>) {
        self.scx.link.get_or_init(|| Link {
            transport: cx.transport().clone(),
            handle: StringHandle {
                runner: Rc::new(cx.handle()),
            },
        });
    }

    /// Feeds `input` to the parser and delivers what it finds, until the input runs out or
    /// delivery halts. Returns how many bytes were fed.
    fn feed(&mut self, input: &[u8]) -> usize {
        let scx = &self.scx;
        let transport = scx.transport();
        let mut pos = 0;
        while pos < input.len() && !scx.halted() && !transport.disconnecting() {
            let (n, frame) = self.framing.step(&input[pos..], scx.max_length);
            pos += n;
            match frame {
                Some(Frame::String(s)) => self.handler.string_received(scx, s),
                Some(Frame::TooLong(length)) => {
                    scx.broken.set(true);
                    self.handler.length_limit_exceeded(scx, length);
                }
                Some(Frame::Error(e)) => {
                    scx.broken.set(true);
                    self.handler.parse_error(scx, e);
                }
                None if n == 0 => break, // (never: a step consumes or yields)
                None => {}
            }
        }
        pos
    }

    /// Keeps `rest` (bytes not fed because delivery halted) for later, within the limit.
    fn hold(&mut self, rest: &[u8]) {
        let scx = &self.scx;
        if scx.dead() || scx.transport().disconnecting() {
            self.held = Vec::new();
            return;
        }
        let held = self.held.len() + rest.len();
        if held > scx.paused_limit() {
            self.held = Vec::new();
            paused_overflow(scx.transport(), held, scx.paused_limit());
            return;
        }
        self.held.extend_from_slice(rest);
    }

    /// Feeds the held bytes, if delivery is on.
    fn pump(&mut self) {
        if self.held.is_empty() || self.scx.halted() {
            return;
        }
        let mut held = std::mem::take(&mut self.held);
        let n = self.feed(&held);
        held.drain(..n);
        trim(&mut held);
        if held.is_empty() {
            self.held = held;
        } else {
            // Delivery halted again: hold the rest (the check drops it if dead).
            self.hold(&held);
        }
    }
}

impl<F: Framing, H: StringHandler> Protocol for StringReceiver<F, H> {
    fn connection_made(&mut self, cx: &Context<Self>) {
        self.link(cx);
        self.handler.connection_made(&self.scx);
    }

    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        self.link(cx);
        if self.scx.dead() || cx.transport().disconnecting() {
            return;
        }
        if self.scx.halted() || !self.held.is_empty() {
            self.hold(data);
            self.pump();
        } else {
            let n = self.feed(data);
            if n < data.len() {
                self.hold(&data[n..]);
            }
        }
    }

    fn connection_lost(&mut self, cx: &Context<Self>, reason: Failure) {
        self.link(cx);
        self.handler.connection_lost(&self.scx, reason);
        self.held = Vec::new();
        self.framing = F::start();
    }
}

/// A closure for a handler and its context.
type Job<H> = Box<dyn FnOnce(&mut H, &StringContext<H>)>;

/// Runs closures on the handler of some string receiver (the framing is erased, so one
/// [`StringHandle`] type serves every framing).
trait Runner<H> {
    fn run(&self, job: Job<H>);
    fn alive(&self) -> bool;
}

impl<F: Framing, H: StringHandler> Runner<H> for Handle<StringReceiver<F, H>> {
    fn run(&self, job: Job<H>) {
        self.with(move |r, cx| {
            r.link(cx);
            job(&mut r.handler, &r.scx);
            r.pump();
        });
    }
    fn alive(&self) -> bool {
        Handle::alive(self)
    }
}

/// A weak handle on a connected string receiver's handler, for work that finishes later.
/// Get one from [`StringContext::handle`] or from the protocol handle `connect` returns
/// (`StringHandle::from`). It is also a [`Producer`] (pause/resume/stop the receiver).
///
/// ```
/// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandle, StringHandler};
/// use twistor::testing::StringTransport;
///
/// struct N;
/// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
/// let st = StringTransport::new();
/// let h: StringHandle<N> = st.connect(NetstringReceiver::new(N)).into();
/// h.with(|_, cx| cx.send_string(b"x"));
/// assert_eq!(st.value(), b"1:x,");
/// ```
pub struct StringHandle<H> {
    runner: Rc<dyn Runner<H>>,
}

impl<H: StringHandler> StringHandle<H> {
    /// Runs `f` on the handler and its context, then delivers whatever `f` made deliverable
    /// (a `resume_producing`). Runs at once and returns `Some`, unless a callback of this
    /// receiver is running: then `f` is queued to run right after it and `None` is returned.
    /// `None` too once the connection is gone.
    ///
    /// ```
    /// use twistor::protocols::basic::{Int16StringReceiver, StringContext, StringHandle, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// #[derive(Default)]
    /// struct Count(usize);
    /// impl StringHandler for Count {
    ///     fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) { self.0 += 1 }
    /// }
    /// let st = StringTransport::new();
    /// let h = StringHandle::from(st.connect(Int16StringReceiver::new(Count::default())));
    /// st.deliver(b"\0\x01a\0\0");
    /// let n = h.with(|c, cx| {
    ///     cx.send_string(c.0.to_string().as_bytes()).unwrap();
    ///     c.0
    /// });
    /// assert_eq!(n, Some(2));
    /// assert_eq!(st.value(), b"\0\x012");
    /// ```
    pub fn with<R: 'static>(
        &self,
        f: impl FnOnce(&mut H, &StringContext<H>) -> R + 'static,
    ) -> Option<R> {
        let out = Rc::new(Cell::new(None));
        let slot = out.clone();
        self.runner
            .run(Box::new(move |h, cx| slot.set(Some(f(h, cx)))));
        out.take()
    }

    /// True while the connection exists.
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandle, StringHandler};
    /// use twistor::testing::StringTransport;
    /// use twistor::{error::ConnectionDone, Failure};
    ///
    /// struct N;
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = StringHandle::from(st.connect(NetstringReceiver::new(N)));
    /// assert!(h.alive());
    /// st.connection_lost(Failure::new(ConnectionDone));
    /// assert!(!h.alive());
    /// ```
    pub fn alive(&self) -> bool {
        self.runner.alive()
    }
}

impl<F: Framing, H: StringHandler> From<Handle<StringReceiver<F, H>>> for StringHandle<H> {
    /// Wraps the handle `connect` gives.
    ///
    /// ```
    /// use twistor::protocols::basic::{Int8StringReceiver, StringContext, StringHandle, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = StringHandle::from(st.connect(Int8StringReceiver::new(N)));
    /// assert!(h.alive());
    /// ```
    fn from(inner: Handle<StringReceiver<F, H>>) -> Self {
        StringHandle {
            runner: Rc::new(inner),
        }
    }
}

impl<H> Clone for StringHandle<H> {
    fn clone(&self) -> Self {
        StringHandle {
            runner: self.runner.clone(),
        }
    }
}

impl<H> fmt::Debug for StringHandle<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<StringHandle alive={}>", self.runner.alive())
    }
}

/// The transport (as a consumer) pauses, resumes and stops the receiver.
///
/// ```
/// use std::rc::Rc;
/// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandle, StringHandler};
/// use twistor::testing::StringTransport;
/// use twistor::transport::Producer;
///
/// struct N;
/// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
/// let st = StringTransport::new();
/// let h = StringHandle::from(st.connect(NetstringReceiver::new(N)));
/// st.transport().register_producer(Rc::new(h.clone()), true).unwrap();
/// h.pause_producing();
/// assert_eq!(h.with(|_, cx| cx.paused()), Some(true));
/// h.resume_producing();
/// assert_eq!(h.with(|_, cx| cx.paused()), Some(false));
/// ```
impl<H: StringHandler> Producer for StringHandle<H> {
    fn pause_producing(&self) {
        self.with(|_, cx| cx.pause_producing());
    }
    fn resume_producing(&self) {
        self.with(|_, cx| cx.resume_producing());
    }
    fn stop_producing(&self) {
        self.with(|_, cx| cx.stop_producing());
    }
}

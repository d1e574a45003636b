//! The one receiver core every framing shares: buffering, the delivery loop, pausing, the
//! context and the handle.
//!
//! A [`Framing`] only decodes: given the undelivered bytes it says "need more" or "here is one
//! frame, and it used this many bytes". [`Receiver`] owns everything else, the same for lines,
//! netstrings and length prefixes.
//!
//! # The buffer
//!
//! Received bytes not yet delivered are `buf[start..]`. The delivery loop holds a shared
//! borrow of `buf` while it calls the handler, so the frame it passes is a slice of the buffer
//! (no copy per frame). Before each call it moves `start` past what it delivers, so that
//! `clear_line_buffer` (a shared borrow too) sees exactly the unparsed rest. What a callback
//! changes is recorded beside the buffer and applied when the callback has returned and the
//! borrow is gone: bytes from `set_line_mode(extra)` go to `pending`, a `clear_line_buffer`
//! sets `cleared`. No other code touches `buf` while user code runs, and the receiver is never
//! re-entered (a handle's `with` from inside a callback is queued by the protocol slot), so
//! the borrow never conflicts.
//!
//! # The scan offset
//!
//! `scan` is where the framing may resume looking for the end of a frame: a framing that
//! answers "need more" says how far it looked, and the next decode starts there (for lines: no
//! delimiter starts in `buf[start..scan]`). It only moves forward, and is reset with the
//! buffer (`clear_line_buffer`, a too-long line, compaction shifts it with `start`).
//!
//! # Decoding in place
//!
//! Lines copy every chunk into `buf` (callbacks may take or hand back buffered bytes). Framings
//! whose callbacks cannot ([`Framing::IN_PLACE`]: line-only, netstrings, length prefixes)
//! skip the copy: a chunk that arrives with nothing buffered is decoded where it lies and only
//! its unfinished tail is kept. When a tail is kept, the next chunk first completes that one
//! frame with just the bytes it lacks (the framing reports the frame's length once it has
//! read the prefix; until then bytes go over one at a time), and the rest of the chunk is
//! again decoded in place. Paused, or after the kept frame, the receiver falls back to the
//! buffer, so the order of frames and every limit are the same on both paths.

use std::cell::{Cell, OnceCell, RefCell};
use std::fmt;
use std::rc::Rc;

use super::netstring::NetstringParseError;
use super::{DEFAULT_PAUSED_BUFFER_LIMIT, Flow, paused_overflow, trim};
use crate::Failure;
use crate::protocol::{Context, Handle, Protocol};
use crate::transport::{Producer, Transport};

/// What a [`Framing`] found at the front of the undelivered bytes.
///
/// ```
/// use twistor::protocols::basic::{Decoded, Frame, Framing, Lines};
///
/// let lines = Lines;
/// let wire = lines.wire();
/// match lines.decode(&wire, b"ab\r\ncd", 0, 100) {
///     Decoded::Frame { consumed, frame: Frame::Message(line) } => {
///         assert_eq!((consumed, line), (4, &b"ab"[..]));
///     }
///     _ => unreachable!(),
/// }
/// assert!(matches!(lines.decode(&wire, b"cd", 0, 100), Decoded::NeedMore { scan: 1, frame_len: None }));
/// ```
#[derive(Debug)]
pub enum Decoded<'a> {
    /// No complete frame yet; `scan` is how far (from the front) the next decode may skip.
    NeedMore {
        /// Where the next search may resume, relative to the front.
        scan: usize,
        /// The whole frame's length, once the framing knows it (a length prefix was read).
        frame_len: Option<usize>,
    },
    /// One frame, which used the first `consumed` bytes.
    Frame {
        /// Bytes used (the frame, its framing, and for some errors everything pending).
        consumed: usize,
        /// The frame.
        frame: Frame<'a>,
    },
}

/// One decoded event, handed to the handler (through [`FrameHandler::frame_received`]).
///
/// ```
/// use twistor::protocols::basic::Frame;
/// let f = Frame::Message(b"hi");
/// assert!(!f.is_fatal());
/// assert!(Frame::LengthTooLong(1 << 40).is_fatal());
/// ```
#[derive(Debug)]
pub enum Frame<'a> {
    /// A message: a line without its delimiter, or a string's payload.
    Message(&'a [u8]),
    /// Bytes received in a line receiver's raw mode.
    Raw(&'a [u8]),
    /// A line over the limit: the bytes the handler's `line_length_exceeded` gets.
    LineTooLong(&'a [u8]),
    /// A declared string length over the limit; nothing more is parsed.
    LengthTooLong(u64),
    /// A malformed netstring; nothing more is parsed.
    Invalid(NetstringParseError),
}

impl Frame<'_> {
    /// True for the frames after which the peer's stream cannot be trusted: nothing more is
    /// parsed and [`ReceiverContext::broken_peer`] becomes true.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Frame::LengthTooLong(_) | Frame::Invalid(_))
    }
}

/// A wire format: how bytes split into frames, and the per-connection settings its handlers
/// see (`Wire`: the delimiter and raw mode of lines, the encoder of strings).
///
/// A framing keeps no state between decodes: whatever is partial stays in the receiver's
/// buffer, and the framing decodes it again, from `scan`, when more arrives. That keeps every
/// framing a pure function of its input, so any chunking gives the same frames.
///
/// ```
/// use twistor::protocols::basic::{Decoded, Frame, Framing, IntPrefix};
///
/// let int16 = IntPrefix::<2>;
/// let wire = int16.wire();
/// assert!(matches!(int16.decode(&wire, b"\x00\x03ab", 0, 100), Decoded::NeedMore { .. }));
/// match int16.decode(&wire, b"\x00\x03abc", 0, 100) {
///     Decoded::Frame { consumed: 5, frame: Frame::Message(s) } => assert_eq!(s, b"abc"),
///     other => panic!("{other:?}"),
/// }
/// ```
pub trait Framing: Sized + 'static {
    /// The settings a handler's context holds and exposes.
    type Wire: 'static;

    /// The default settings.
    fn wire(&self) -> Self::Wire;

    /// The longest message by default (Twisted's `MAX_LENGTH` for this framing).
    fn default_max_length() -> usize;

    /// Looks at the undelivered bytes `buf`; `scan` is the `scan` of the previous
    /// [`Decoded::NeedMore`] on the same front (0 otherwise). `max_length` is the receiver's
    /// longest message.
    fn decode<'a>(
        &self,
        wire: &Self::Wire,
        buf: &'a [u8],
        scan: usize,
        max_length: usize,
    ) -> Decoded<'a>;

    /// Bytes around the payload in one maximal frame (a delimiter, a length prefix), so that a
    /// paused receiver can always hold one whole frame.
    fn overhead(wire: &Self::Wire) -> usize;

    /// True if callbacks cannot reach the undelivered bytes (no `clear_line_buffer`, no
    /// `set_line_mode(extra)`): then a chunk that arrives with nothing buffered is decoded where
    /// it lies, and only its unfinished tail is copied.
    const IN_PLACE: bool = false;
}

/// The bridge from frames to a handler's callbacks: implemented for every [`LineHandler`],
/// [`LineOnlyHandler`] and [`StringHandler`] (so you normally implement one of those), and
/// implementable directly for a framing of your own.
///
/// [`LineHandler`]: super::LineHandler
/// [`LineOnlyHandler`]: super::LineOnlyHandler
/// [`StringHandler`]: super::StringHandler
///
/// ```
/// use twistor::protocols::basic::{Frame, FrameHandler, LineContext, Lines, Receiver};
/// use twistor::testing::StringTransport;
///
/// /// Every frame, whatever its kind, counted.
/// #[derive(Default)]
/// struct Count(usize);
/// impl FrameHandler<Lines> for Count {
///     fn frame_received(&mut self, _cx: &LineContext<Self>, _frame: Frame<'_>) {
///         self.0 += 1;
///     }
/// }
/// let st = StringTransport::new();
/// let h = st.connect(Receiver::<Lines, _>::new(Count::default()));
/// st.deliver(b"a\r\nb\r\n");
/// assert_eq!(h.with(|r, _| r.handler().0), Some(2));
/// ```
pub trait FrameHandler<F: Framing>: Sized + 'static {
    /// The connection is up.
    fn connection_made(&mut self, _cx: &ReceiverContext<F::Wire, Self>) {}
    /// A frame arrived.
    fn frame_received(&mut self, cx: &ReceiverContext<F::Wire, Self>, frame: Frame<'_>);
    /// The connection is gone (called once).
    fn connection_lost(&mut self, _cx: &ReceiverContext<F::Wire, Self>, _reason: Failure) {}
}

/// The connection, known from the first protocol callback on.
struct Link<W, H> {
    transport: Transport,
    handle: ReceiverHandle<W, H>,
}

/// What a receiver's handler callbacks can reach: the transport, a handle for later work,
/// pausing, and the framing's own controls (`send_line` and raw mode for lines, `send_string`
/// for strings), with the framing's settings `W`. Each framing names its context:
/// [`LineContext`](super::LineContext), [`LineOnlyContext`](super::LineOnlyContext),
/// [`StringContext`](super::StringContext).
///
/// ```
/// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
/// use twistor::testing::StringTransport;
///
/// struct Info;
/// impl LineHandler for Info {
///     fn line_received(&mut self, cx: &LineContext<Self>, _line: &[u8]) {
///         let answer = format!("{} {}", cx.max_length(), cx.delimiter().len());
///         cx.send_line(answer.as_bytes());
///     }
/// }
/// let st = StringTransport::new();
/// st.connect(LineReceiver::new(Info).with_delimiter(b"\n").unwrap().with_max_length(80));
/// st.deliver(b"?\n");
/// assert_eq!(st.value(), b"80 1\n");
/// ```
pub struct ReceiverContext<W, H> {
    /// Transport and handle; set before any handler callback runs.
    link: OnceCell<Link<W, H>>,
    /// The framing's settings.
    pub(super) wire: W,
    /// The longest message delivered (Twisted's `MAX_LENGTH`).
    max_length: usize,
    /// The most a paused receiver holds back, as configured.
    paused_limit: usize,
    /// The framing's bytes around a maximal payload.
    overhead: usize,
    /// Received, undelivered bytes: `buf[start..]`.
    buf: RefCell<Vec<u8>>,
    /// The first undelivered byte of `buf`.
    start: Cell<usize>,
    /// Where the next decode may resume (module docs).
    scan: Cell<usize>,
    /// The length of the unfinished frame at `start`, when its framing knows it.
    frame_len: Cell<Option<usize>>,
    /// Bytes given to `set_line_mode(extra)`, appended to `buf` after the callback returns.
    pending: RefCell<Vec<u8>>,
    /// `clear_line_buffer` ran while `buf` was borrowed: empty it after the callback.
    cleared: Cell<bool>,
    /// Pausing: `pause_producing` (or `stop_producing`) delivers nothing; after
    /// `stop_producing` everything is dropped, for good.
    flow: Flow,
    /// A fatal frame came: nothing more is parsed.
    broken: Cell<bool>,
}

impl<W, H> ReceiverContext<W, H> {
    fn link(&self) -> &Link<W, H> {
        match self.link.get() {
            Some(link) => link,
            // Contexts are only handed out by callbacks, which set the link first.
            None => unreachable!("a receiver's context is only reachable once connected"),
        }
    }

    /// The transport.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct Quit;
    /// impl LineHandler for Quit {
    ///     fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
    ///         if line == b"QUIT" { cx.transport().lose_connection() }
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// st.connect(LineReceiver::new(Quit));
    /// st.deliver(b"QUIT\r\n");
    /// assert!(st.disconnecting());
    /// ```
    pub fn transport(&self) -> &Transport {
        &self.link().transport
    }

    /// A handle on the handler, for work that finishes later (see [`ReceiverHandle::with`]).
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    /// use std::{cell::RefCell, rc::Rc};
    ///
    /// struct Keep(Rc<RefCell<Option<LineHandle<Keep>>>>);
    /// impl LineHandler for Keep {
    ///     fn connection_made(&mut self, cx: &LineContext<Self>) {
    ///         *self.0.borrow_mut() = Some(cx.handle());
    ///     }
    ///     fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {}
    /// }
    /// let slot = Rc::new(RefCell::new(None));
    /// let st = StringTransport::new();
    /// st.connect(LineReceiver::new(Keep(slot.clone())));
    /// let later = slot.borrow().clone().unwrap();
    /// later.with(|_, cx| cx.send_line(b"later"));
    /// assert_eq!(st.value(), b"later\r\n");
    /// ```
    pub fn handle(&self) -> ReceiverHandle<W, H> {
        self.link().handle.clone()
    }

    /// Stops delivering (holding back what is buffered and what arrives) and pauses the
    /// transport (Twisted's `pauseProducing`).
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
    /// use twistor::testing::{ReadState, StringTransport};
    ///
    /// #[derive(Default)]
    /// struct OneAtATime(Vec<Vec<u8>>);
    /// impl LineHandler for OneAtATime {
    ///     fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
    ///         self.0.push(line.to_vec());
    ///         cx.pause_producing();
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// let h = LineHandle::from(st.connect(LineReceiver::new(OneAtATime::default())));
    /// st.deliver(b"hello\r\nworld\r\n");
    /// assert_eq!(h.with(|p, _| p.0.len()), Some(1));
    /// assert_eq!(st.read_state(), ReadState::Paused);
    /// h.with(|_, cx| cx.resume_producing()); // delivers "world" when the closure returns
    /// assert_eq!(h.with(|p, _| p.0.len()), Some(2));
    /// ```
    #[doc(alias = "pauseProducing")]
    pub fn pause_producing(&self) {
        self.flow.pause(self.transport());
    }

    /// Delivers again, and resumes the transport (Twisted's `resumeProducing`). Held frames
    /// are delivered as soon as the current callback (or the closure given to
    /// [`ReceiverHandle::with`]) returns; Twisted does it in a later reactor turn. Does
    /// nothing after [`stop_producing`](ReceiverContext::stop_producing).
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
    /// use twistor::testing::{ReadState, StringTransport};
    ///
    /// #[derive(Default)]
    /// struct P(Vec<Vec<u8>>);
    /// impl LineHandler for P {
    ///     fn line_received(&mut self, _: &LineContext<Self>, line: &[u8]) { self.0.push(line.to_vec()) }
    /// }
    /// let st = StringTransport::new();
    /// let h = LineHandle::from(st.connect(LineReceiver::new(P::default())));
    /// h.with(|_, cx| cx.pause_producing());
    /// st.deliver(b"a\r\nb\r\n");
    /// assert_eq!(h.with(|p, _| p.0.len()), Some(0));
    /// h.with(|_, cx| cx.resume_producing());
    /// assert_eq!(h.with(|p, _| p.0.len()), Some(2));
    /// assert_eq!(st.read_state(), ReadState::Producing);
    /// ```
    #[doc(alias = "resumeProducing")]
    pub fn resume_producing(&self) {
        self.flow.resume(self.transport());
    }

    /// Stops for good: nothing more is delivered, buffered bytes are dropped, and the
    /// transport's `stop_producing` is called (Twisted's `stopProducing`).
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    /// use twistor::testing::{ReadState, StringTransport};
    ///
    /// #[derive(Default)]
    /// struct Stop(Vec<Vec<u8>>);
    /// impl LineHandler for Stop {
    ///     fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
    ///         self.0.push(line.to_vec());
    ///         if line == b"stop" { cx.stop_producing() }
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// let h = st.connect(LineReceiver::new(Stop::default()));
    /// st.deliver(b"a\r\nstop\r\nmore\r\n");
    /// assert_eq!(h.with(|r, _| r.handler().0.len()), Some(2));
    /// assert_eq!(st.read_state(), ReadState::Stopped);
    /// ```
    #[doc(alias = "stopProducing")]
    pub fn stop_producing(&self) {
        self.flow.stop(self.transport());
    }

    /// True while paused (or stopped).
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = LineHandle::from(st.connect(LineReceiver::new(N)));
    /// assert_eq!(h.with(|_, cx| { cx.pause_producing(); cx.paused() }), Some(true));
    /// ```
    pub fn paused(&self) -> bool {
        self.flow.paused()
    }

    /// The longest message delivered (Twisted's `MAX_LENGTH`).
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = LineHandle::from(st.connect(LineReceiver::new(N)));
    /// assert_eq!(h.with(|_, cx| cx.max_length()), Some(16384));
    /// ```
    #[doc(alias = "MAX_LENGTH")]
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// True once the peer sent a string the receiver refused (too long, or a malformed
    /// netstring): nothing more is parsed (Twisted's `brokenPeer`).
    ///
    /// ```
    /// use twistor::protocols::basic::{Int8StringReceiver, StringContext, StringHandle, StringHandler};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl StringHandler for N {
    ///     fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {}
    ///     fn length_limit_exceeded(&mut self, _: &StringContext<Self>, _: u64) {}
    /// }
    /// let st = StringTransport::new();
    /// let h = StringHandle::from(st.connect(Int8StringReceiver::new(N).with_max_length(2)));
    /// st.deliver(b"\x05");
    /// assert_eq!(h.with(|_, cx| cx.broken_peer()), Some(true));
    /// ```
    #[doc(alias = "brokenPeer")]
    pub fn broken_peer(&self) -> bool {
        self.broken.get()
    }

    /// The most held back while paused: the configured limit, but at least one maximal frame.
    fn paused_limit(&self) -> usize {
        self.paused_limit
            .max(self.max_length.saturating_add(self.overhead))
    }

    /// Nothing more will be delivered on this connection.
    fn dead(&self) -> bool {
        self.flow.stopped() || self.broken.get()
    }

    /// Empties the receive buffer and returns what it held: the undelivered bytes, then those
    /// handed back by a callback.
    pub(super) fn take_buffer(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.cleared.get() {
            let start = self.start.get();
            if let Ok(mut buf) = self.buf.try_borrow_mut() {
                // Not inside the delivery loop: clear now.
                let start = start.min(buf.len());
                out = buf.split_off(start);
                buf.clear();
                self.start.set(0);
                self.scan.set(0);
            } else if let Ok(buf) = self.buf.try_borrow() {
                // The delivery loop holds the buffer: copy the rest, clear after the callback.
                out.extend_from_slice(buf.get(start..).unwrap_or_default());
                self.cleared.set(true);
            }
        }
        out.append(&mut self.pending.borrow_mut());
        out
    }

    /// Bytes to parse as if received next, after whatever is still buffered.
    pub(super) fn push_back(&self, extra: &[u8]) {
        if !extra.is_empty() {
            self.pending.borrow_mut().extend_from_slice(extra);
        }
    }

    /// Applies what callbacks recorded: a `clear_line_buffer`, then handed-back bytes. Never
    /// called while the delivery loop borrows `buf`.
    #[inline]
    fn merge_pending(&self) {
        let cleared = self.cleared.take();
        if !cleared && self.pending.borrow().is_empty() {
            return;
        }
        let mut buf = self.buf.borrow_mut();
        if cleared || self.start.get() >= buf.len() {
            buf.clear();
            self.start.set(0);
            self.scan.set(0);
        }
        let mut pending = self.pending.borrow_mut();
        if !pending.is_empty() {
            buf.extend_from_slice(&pending);
            pending.clear();
        }
    }

    /// After delivering: drops delivered bytes (or everything, once nothing more will be
    /// delivered) and gives back memory.
    fn settle(&self) {
        let dead = self.dead() || self.transport().disconnecting();
        let mut buf = self.buf.borrow_mut();
        if dead {
            buf.clear();
            self.pending.borrow_mut().clear();
            self.cleared.set(false);
            self.start.set(0);
            self.scan.set(0);
        } else {
            let start = self.start.get().min(buf.len());
            if start > 0 {
                buf.drain(..start);
                self.scan.set(self.scan.get().saturating_sub(start));
                self.start.set(0);
            }
        }
        trim(&mut buf);
    }

    /// Drops everything, at the end of the connection.
    fn reset(&self) {
        *self.buf.borrow_mut() = Vec::new();
        *self.pending.borrow_mut() = Vec::new();
        self.start.set(0);
        self.scan.set(0);
    }
}

/// A framing protocol: splits received bytes into frames with the framing `F` and delivers
/// them to a handler `H` (through [`FrameHandler`]). Each framing names its receiver:
/// [`LineReceiver`](super::LineReceiver), [`LineOnlyReceiver`](super::LineOnlyReceiver),
/// [`NetstringReceiver`](super::NetstringReceiver),
/// [`Int32StringReceiver`](super::Int32StringReceiver) and the other length prefixes. See the
/// [module docs](super) for the buffering and pausing invariants.
///
/// ```
/// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
/// use twistor::testing::StringTransport;
///
/// struct Echo;
/// impl LineHandler for Echo {
///     fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) { cx.send_line(line) }
/// }
/// let st = StringTransport::new();
/// st.connect(LineReceiver::new(Echo).with_max_length(1024));
/// st.deliver(b"a\r\nb\r\n");
/// assert_eq!(st.value(), b"a\r\nb\r\n");
/// ```
pub struct Receiver<F: Framing, H> {
    /// The user's callbacks.
    handler: H,
    /// The receiver's state, lent to the handler's callbacks.
    cx: ReceiverContext<F::Wire, H>,
    /// The wire format.
    framing: F,
}

impl<F: Framing + Default, H: FrameHandler<F>> Receiver<F, H> {
    /// A receiver with the framing's defaults, delivering to `handler`.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// let r = LineReceiver::new(N);
    /// assert_eq!(r.max_length(), 16384);
    /// assert_eq!(r.delimiter(), b"\r\n");
    /// ```
    pub fn new(handler: H) -> Self {
        Receiver::with_framing(F::default(), handler)
    }
}

impl<F: Framing, H: FrameHandler<F>> Receiver<F, H> {
    /// A receiver decoding with `framing`.
    ///
    /// ```
    /// use twistor::protocols::basic::{Netstring, Receiver, StringContext, StringHandler};
    ///
    /// struct N;
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// let r = Receiver::with_framing(Netstring, N);
    /// assert_eq!(r.max_length(), 99999);
    /// ```
    pub fn with_framing(framing: F, handler: H) -> Self {
        let wire = framing.wire();
        Receiver {
            handler,
            cx: ReceiverContext {
                link: OnceCell::new(),
                overhead: F::overhead(&wire),
                wire,
                max_length: F::default_max_length(),
                paused_limit: DEFAULT_PAUSED_BUFFER_LIMIT,
                buf: RefCell::new(Vec::new()),
                start: Cell::new(0),
                scan: Cell::new(0),
                frame_len: Cell::new(None),
                pending: RefCell::new(Vec::new()),
                cleared: Cell::new(false),
                flow: Flow::default(),
                broken: Cell::new(false),
            },
            framing,
        }
    }

    /// Sets the longest message delivered (Twisted's `MAX_LENGTH`).
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineReceiver::new(N).with_max_length(64).max_length(), 64);
    /// ```
    #[doc(alias = "MAX_LENGTH")]
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.cx.max_length = max_length;
        self
    }

    /// Sets the most bytes held back while paused (default
    /// [`DEFAULT_PAUSED_BUFFER_LIMIT`](super::DEFAULT_PAUSED_BUFFER_LIMIT); never below one
    /// maximal frame). Past it the connection is closed.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let r = LineReceiver::new(N).with_max_length(8).with_paused_buffer_limit(16);
    /// let h = LineHandle::from(st.connect(r));
    /// h.with(|_, cx| cx.pause_producing());
    /// st.deliver(b"0123456\r\n0123456\r\n"); // 18 bytes held: too many
    /// assert!(st.disconnecting());
    /// ```
    pub fn with_paused_buffer_limit(mut self, limit: usize) -> Self {
        self.cx.paused_limit = limit;
        self
    }

    /// The longest message delivered.
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};
    ///
    /// struct N;
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// assert_eq!(NetstringReceiver::new(N).max_length(), 99999);
    /// ```
    #[doc(alias = "MAX_LENGTH")]
    pub fn max_length(&self) -> usize {
        self.cx.max_length
    }

    /// True once the peer sent a string the receiver refused (see
    /// [`ReceiverContext::broken_peer`]).
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};
    ///
    /// struct N;
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// assert!(!NetstringReceiver::new(N).broken_peer());
    /// ```
    #[doc(alias = "brokenPeer")]
    pub fn broken_peer(&self) -> bool {
        self.cx.broken.get()
    }

    /// The framing's settings.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineReceiver::new(N).wire().delimiter(), b"\r\n");
    /// ```
    pub fn wire(&self) -> &F::Wire {
        &self.cx.wire
    }

    /// The handler.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    ///
    /// struct N(u8);
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineReceiver::new(N(7)).handler().0, 7);
    /// ```
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    ///
    /// struct N(u8);
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// let mut r = LineReceiver::new(N(7));
    /// r.handler_mut().0 = 8;
    /// assert_eq!(r.handler().0, 8);
    /// ```
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// The handler, consuming the receiver.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    ///
    /// struct N(u8);
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineReceiver::new(N(7)).into_handler().0, 7);
    /// ```
    pub fn into_handler(self) -> H {
        self.handler
    }

    pub(super) fn wire_mut(&mut self) -> &mut F::Wire {
        &mut self.cx.wire
    }

    fn link(&self, cx: &Context<Self>) {
        self.cx.link.get_or_init(|| Link {
            transport: cx.transport().clone(),
            handle: ReceiverHandle {
                runner: Rc::new(cx.handle()),
            },
        });
    }

    /// Completes the frame left unfinished by the previous chunk with only the bytes it needs
    /// (all of them once its length is known, else one at a time), so that the rest of `data`
    /// can be decoded in place. Returns what is left of `data`.
    fn finish_leftover<'d>(&mut self, mut data: &'d [u8]) -> &'d [u8] {
        loop {
            let cx = &self.cx;
            if data.is_empty() || cx.flow.paused() || cx.dead() {
                return data;
            }
            let take = {
                let mut buf = cx.buf.borrow_mut();
                let have = buf.len() - cx.start.get().min(buf.len());
                if have == 0 {
                    return data;
                }
                let take = match cx.frame_len.get() {
                    Some(n) if n > have => (n - have).min(data.len()),
                    _ => 1,
                };
                buf.extend_from_slice(&data[..take]);
                take
            };
            data = &data[take..];
            self.pump();
        }
    }

    /// Delivers the frames of `data` straight from it (see [`Framing::IN_PLACE`]), then keeps
    /// the unfinished tail, or holds the rest if a callback paused.
    fn deliver_in_place(&mut self, data: &[u8]) {
        let Receiver {
            handler,
            cx,
            framing,
        } = self;
        let transport = cx.transport();
        let (mut pos, mut scan) = (0, 0);
        while pos < data.len()
            && !cx.flow.paused()
            && !cx.broken.get()
            && !transport.disconnecting()
        {
            match framing.decode(&cx.wire, &data[pos..], scan, cx.max_length) {
                Decoded::NeedMore { scan: s, frame_len } => {
                    scan = s;
                    cx.frame_len.set(frame_len);
                    break;
                }
                Decoded::Frame { consumed, frame } => {
                    pos = (pos + consumed).min(data.len());
                    scan = 0;
                    if frame.is_fatal() {
                        cx.broken.set(true);
                    }
                    handler.frame_received(cx, frame);
                }
            }
        }
        let rest = &data[pos..];
        if rest.is_empty() || cx.dead() || transport.disconnecting() {
            return;
        }
        if cx.flow.paused() && rest.len() > cx.paused_limit() {
            paused_overflow(transport, rest.len(), cx.paused_limit());
            return;
        }
        let mut buf = cx.buf.borrow_mut();
        buf.extend_from_slice(rest);
        cx.start.set(0);
        cx.scan.set(scan);
    }

    /// The delivery loop: delivers buffered frames until the buffer runs out of complete
    /// frames, or the receiver is paused or broken, or the transport is disconnecting.
    fn pump(&mut self) {
        let Receiver {
            handler,
            cx,
            framing,
        } = self;
        if cx.link.get().is_none() {
            return;
        }
        let transport = cx.transport();
        loop {
            cx.merge_pending();
            if cx.flow.paused() || cx.broken.get() || transport.disconnecting() {
                break;
            }
            // Held across the callback below: the frame is a slice of it (module docs).
            let buf = cx.buf.borrow();
            let start = cx.start.get();
            let len = buf.len();
            if start >= len {
                break;
            }
            let scan = cx.scan.get().clamp(start, len) - start;
            match framing.decode(&cx.wire, &buf[start..], scan, cx.max_length) {
                Decoded::NeedMore { scan, frame_len } => {
                    cx.scan.set(start + scan);
                    cx.frame_len.set(frame_len);
                    break;
                }
                Decoded::Frame { consumed, frame } => {
                    let next = (start + consumed).min(len);
                    cx.start.set(next);
                    cx.scan.set(next);
                    if frame.is_fatal() {
                        cx.broken.set(true);
                    }
                    handler.frame_received(cx, frame);
                }
            }
        }
        cx.settle();
    }
}

impl<F: Framing, H: FrameHandler<F>> Protocol for Receiver<F, H> {
    fn connection_made(&mut self, cx: &Context<Self>) {
        self.link(cx);
        self.handler.connection_made(&self.cx);
        self.pump();
    }

    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        self.link(cx);
        let rcx = &self.cx;
        if rcx.dead() || cx.transport().disconnecting() {
            return;
        }
        let mut data = data;
        if F::IN_PLACE {
            data = self.finish_leftover(data);
            let rcx = &self.cx;
            if rcx.dead() || cx.transport().disconnecting() {
                return;
            }
            if !rcx.flow.paused() && rcx.buf.borrow().is_empty() {
                self.deliver_in_place(data);
                return;
            }
        }
        let rcx = &self.cx;
        {
            let mut buf = rcx.buf.borrow_mut();
            if rcx.flow.paused() {
                let held = buf.len() - rcx.start.get().min(buf.len()) + data.len();
                if held > rcx.paused_limit() {
                    buf.clear();
                    rcx.start.set(0);
                    rcx.scan.set(0);
                    drop(buf);
                    paused_overflow(cx.transport(), held, rcx.paused_limit());
                    return;
                }
            }
            buf.extend_from_slice(data);
        }
        self.pump();
    }

    fn connection_lost(&mut self, cx: &Context<Self>, reason: Failure) {
        self.link(cx);
        self.handler.connection_lost(&self.cx, reason);
        self.cx.reset();
    }
}

type Job<W, H> = Box<dyn FnOnce(&mut H, &ReceiverContext<W, H>)>;

/// Runs work on a connected receiver's handler, whatever its framing.
trait Runner<W, H> {
    fn run(&self, job: Job<W, H>);
    fn alive(&self) -> bool;
}

impl<F: Framing, H: FrameHandler<F>> Runner<F::Wire, H> for Handle<Receiver<F, H>> {
    fn run(&self, job: Job<F::Wire, H>) {
        self.with(move |r, cx| {
            r.link(cx);
            job(&mut r.handler, &r.cx);
            r.pump();
        });
    }
    fn alive(&self) -> bool {
        Handle::alive(self)
    }
}

/// A weak handle on a connected receiver's handler, for work that finishes later. Get one
/// from [`ReceiverContext::handle`] or from the protocol handle `connect` returns
/// (`ReceiverHandle::from`). Each framing names it: [`LineHandle`](super::LineHandle),
/// [`LineOnlyHandle`](super::LineOnlyHandle), [`StringHandle`](super::StringHandle) (one
/// type for every string framing).
///
/// It is also a [`Producer`]: register it with a transport to have the transport pause and
/// resume the receiver (Twisted's receivers are `PauseableProducer`s).
///
/// ```
/// use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
/// use twistor::testing::StringTransport;
///
/// struct N;
/// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
/// let st = StringTransport::new();
/// let h: LineHandle<N> = st.connect(LineReceiver::new(N)).into();
/// h.with(|_, cx| cx.send_line(b"hi"));
/// assert_eq!(st.value(), b"hi\r\n");
/// ```
pub struct ReceiverHandle<W, H> {
    runner: Rc<dyn Runner<W, H>>,
}

impl<W: 'static, H: 'static> ReceiverHandle<W, H> {
    /// Runs `f` on the handler and its context, then delivers whatever `f` made deliverable
    /// (a `resume_producing`, a `set_line_mode(extra)`). Runs at once and returns `Some`,
    /// unless a callback of this receiver is running: then `f` is queued to run right after
    /// it and `None` is returned. `None` too (and `f` is dropped) once the connection is gone.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// #[derive(Default)]
    /// struct Count(usize);
    /// impl LineHandler for Count {
    ///     fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) { self.0 += 1 }
    /// }
    /// let st = StringTransport::new();
    /// let h = LineHandle::from(st.connect(LineReceiver::new(Count::default())));
    /// st.deliver(b"a\r\nb\r\n");
    /// let n = h.with(|count, cx| {
    ///     cx.send_line(format!("{} lines", count.0).as_bytes());
    ///     count.0
    /// });
    /// assert_eq!(n, Some(2));
    /// assert_eq!(st.value(), b"2 lines\r\n");
    /// ```
    pub fn with<R: 'static>(
        &self,
        f: impl FnOnce(&mut H, &ReceiverContext<W, H>) -> R + 'static,
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
    /// use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::with_disconnection();
    /// let h = LineHandle::from(st.connect(LineReceiver::new(N)));
    /// assert!(h.alive());
    /// st.transport().lose_connection();
    /// assert!(!h.alive());
    /// ```
    pub fn alive(&self) -> bool {
        self.runner.alive()
    }
}

impl<F: Framing, H: FrameHandler<F>> From<Handle<Receiver<F, H>>> for ReceiverHandle<F::Wire, H> {
    /// Wraps the handle `StringTransport::connect` (or a factory) gives.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = LineHandle::from(st.connect(LineReceiver::new(N)));
    /// assert!(h.alive());
    /// ```
    fn from(inner: Handle<Receiver<F, H>>) -> Self {
        ReceiverHandle {
            runner: Rc::new(inner),
        }
    }
}

impl<W, H> Clone for ReceiverHandle<W, H> {
    fn clone(&self) -> Self {
        ReceiverHandle {
            runner: self.runner.clone(),
        }
    }
}

impl<W, H> fmt::Debug for ReceiverHandle<W, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<ReceiverHandle alive={}>", self.runner.alive())
    }
}

/// The transport (as a consumer) pauses, resumes and stops the receiver.
///
/// ```
/// use std::rc::Rc;
/// use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
/// use twistor::testing::StringTransport;
/// use twistor::transport::Producer;
///
/// struct N;
/// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
/// let st = StringTransport::new();
/// let h = LineHandle::from(st.connect(LineReceiver::new(N)));
/// st.transport().register_producer(Rc::new(h.clone()), true).unwrap();
/// h.pause_producing();
/// assert_eq!(h.with(|_, cx| cx.paused()), Some(true));
/// h.resume_producing();
/// assert_eq!(h.with(|_, cx| cx.paused()), Some(false));
/// ```
impl<W: 'static, H: 'static> Producer for ReceiverHandle<W, H> {
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

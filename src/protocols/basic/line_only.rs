//! `LineOnlyReceiver`: lines and nothing else (Twisted's `basic.LineOnlyReceiver`).
//!
//! No raw mode, no pausing, no `clear_line_buffer`, so the receiver needs no shared buffer:
//! when nothing is left over from the previous chunk, lines are delivered straight from the
//! received bytes, and only the unterminated tail is copied. `scan` is relative to the kept
//! tail (no delimiter starts in `buf[..scan]`).

use std::cell::OnceCell;
use std::fmt;

use super::{DEFAULT_DELIMITER, DEFAULT_LINE_MAX_LENGTH, Delimiter, Link, trim};
use crate::Failure;
use crate::protocol::{Context, Handle, Protocol};
use crate::transport::Transport;

/// What you write to receive lines from a [`LineOnlyReceiver`].
///
/// ```
/// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
/// use twistor::testing::StringTransport;
///
/// struct Reverse;
/// impl LineOnlyHandler for Reverse {
///     fn line_received(&mut self, cx: &LineOnlyContext<Self>, line: &[u8]) {
///         let mut l = line.to_vec();
///         l.reverse();
///         cx.send_line(&l);
///     }
/// }
/// let st = StringTransport::new();
/// st.connect(LineOnlyReceiver::new(Reverse));
/// st.deliver(b"abc\r\n");
/// assert_eq!(st.value(), b"cba\r\n");
/// ```
pub trait LineOnlyHandler: Sized + 'static {
    /// The connection is up.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct Hi;
    /// impl LineOnlyHandler for Hi {
    ///     fn connection_made(&mut self, cx: &LineOnlyContext<Self>) { cx.send_line(b"hi") }
    ///     fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {}
    /// }
    /// let st = StringTransport::new();
    /// st.connect(LineOnlyReceiver::new(Hi));
    /// assert_eq!(st.value(), b"hi\r\n");
    /// ```
    fn connection_made(&mut self, _cx: &LineOnlyContext<Self>) {}

    /// A line arrived, without its delimiter.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// #[derive(Default)]
    /// struct Count(usize);
    /// impl LineOnlyHandler for Count {
    ///     fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) { self.0 += 1 }
    /// }
    /// let st = StringTransport::new();
    /// let h = st.connect(LineOnlyReceiver::new(Count::default()));
    /// st.deliver(b"a\r\nb\r\nc");
    /// assert_eq!(h.with(|r, _| r.handler().0), Some(2));
    /// ```
    fn line_received(&mut self, cx: &LineOnlyContext<Self>, line: &[u8]);

    /// A complete line longer than `max_length` (`line` is that line), or an unterminated
    /// tail of at least `max_length + delimiter.len()` bytes (`line` is the tail) arrived.
    /// Everything buffered is then dropped, and the rest of the chunk is not delivered. The
    /// default closes the connection.
    ///
    /// Twisted checks an unterminated tail against `max_length` alone, so a line of exactly
    /// `max_length` bytes whose delimiter is split between two reads is refused there; here the
    /// limits are `LineReceiver`'s, and do not depend on the chunking.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// st.connect(LineOnlyReceiver::new(N).with_max_length(3));
    /// st.deliver(b"abcd\r\n");
    /// assert!(st.disconnecting());
    /// ```
    fn line_length_exceeded(&mut self, cx: &LineOnlyContext<Self>, _line: &[u8]) {
        cx.transport().lose_connection();
    }

    /// The connection is gone (called once).
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    /// use twistor::testing::StringTransport;
    /// use twistor::{error::ConnectionLost, Failure};
    ///
    /// struct N;
    /// impl LineOnlyHandler for N {
    ///     fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {}
    ///     fn connection_lost(&mut self, _: &LineOnlyContext<Self>, reason: Failure) {
    ///         assert!(reason.is::<ConnectionLost>());
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// st.connect(LineOnlyReceiver::new(N));
    /// st.connection_lost(Failure::new(ConnectionLost::new()));
    /// ```
    fn connection_lost(&mut self, _cx: &LineOnlyContext<Self>, _reason: Failure) {}
}

/// What a [`LineOnlyHandler`]'s callbacks can reach.
///
/// ```
/// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
/// use twistor::testing::StringTransport;
///
/// struct Info;
/// impl LineOnlyHandler for Info {
///     fn line_received(&mut self, cx: &LineOnlyContext<Self>, _: &[u8]) {
///         cx.send_line(format!("{}", cx.max_length()).as_bytes());
///     }
/// }
/// let st = StringTransport::new();
/// st.connect(LineOnlyReceiver::new(Info).with_delimiter(b"\n"));
/// st.deliver(b"?\n");
/// assert_eq!(st.value(), b"16384\n");
/// ```
pub struct LineOnlyContext<H> {
    /// Transport and handle; set before any handler callback runs.
    link: OnceCell<Link<LineOnlyHandle<H>>>,
    /// What ends a line.
    delimiter: Delimiter,
    /// The longest line delivered.
    max_length: usize,
}

impl<H> LineOnlyContext<H> {
    fn link(&self) -> &Link<LineOnlyHandle<H>> {
        Link::of(&self.link)
    }

    /// The transport.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct Quit;
    /// impl LineOnlyHandler for Quit {
    ///     fn line_received(&mut self, cx: &LineOnlyContext<Self>, _: &[u8]) {
    ///         cx.transport().lose_connection()
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// st.connect(LineOnlyReceiver::new(Quit));
    /// st.deliver(b"bye\r\n");
    /// assert!(st.disconnecting());
    /// ```
    pub fn transport(&self) -> &Transport {
        &self.link().transport
    }

    /// A handle on the handler, for later work.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    /// use twistor::testing::StringTransport;
    /// use twistor::Clock;
    ///
    /// struct Later(Clock);
    /// impl LineOnlyHandler for Later {
    ///     fn line_received(&mut self, cx: &LineOnlyContext<Self>, _: &[u8]) {
    ///         let me = cx.handle();
    ///         self.0.call_later(1.0, move || { me.with(|_, cx| cx.send_line(b"done")); });
    ///     }
    /// }
    /// let clock = Clock::new();
    /// let st = StringTransport::new();
    /// st.connect(LineOnlyReceiver::new(Later(clock.clone())));
    /// st.deliver(b"go\r\n");
    /// clock.advance(1.0);
    /// assert_eq!(st.value(), b"done\r\n");
    /// ```
    pub fn handle(&self) -> LineOnlyHandle<H> {
        self.link().handle.clone()
    }

    /// Writes `line` and the delimiter, as one `write_sequence` (Twisted's `sendLine`).
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct Hi;
    /// impl LineOnlyHandler for Hi {
    ///     fn connection_made(&mut self, cx: &LineOnlyContext<Self>) { cx.send_line(b"hi") }
    ///     fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {}
    /// }
    /// let st = StringTransport::new();
    /// st.connect(LineOnlyReceiver::new(Hi).with_delimiter(b";"));
    /// assert_eq!(st.value(), b"hi;");
    /// ```
    pub fn send_line(&self, line: &[u8]) {
        self.transport()
            .write_sequence(&[line, &self.delimiter.bytes]);
    }

    /// The line delimiter.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandle, LineOnlyHandler, LineOnlyReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = LineOnlyHandle::from(st.connect(LineOnlyReceiver::new(N)));
    /// assert_eq!(h.with(|_, cx| cx.delimiter().to_vec()).unwrap(), b"\r\n");
    /// ```
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter.bytes
    }

    /// The longest line delivered.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandle, LineOnlyHandler, LineOnlyReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = LineOnlyHandle::from(st.connect(LineOnlyReceiver::new(N).with_max_length(9)));
    /// assert_eq!(h.with(|_, cx| cx.max_length()), Some(9));
    /// ```
    pub fn max_length(&self) -> usize {
        self.max_length
    }
}

/// A line protocol without raw mode or pausing (Twisted's `LineOnlyReceiver`). Defaults:
/// delimiter `b"\r\n"`, `max_length` 16384, with [`LineReceiver`](super::LineReceiver)'s
/// limits.
///
/// ```
/// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
/// use twistor::testing::StringTransport;
///
/// struct Echo;
/// impl LineOnlyHandler for Echo {
///     fn line_received(&mut self, cx: &LineOnlyContext<Self>, line: &[u8]) { cx.send_line(line) }
/// }
/// let st = StringTransport::new();
/// st.connect(LineOnlyReceiver::new(Echo));
/// st.deliver(b"x\r");
/// st.deliver(b"\ny\r\n");
/// assert_eq!(st.value(), b"x\r\ny\r\n");
/// ```
pub struct LineOnlyReceiver<H> {
    /// The user's callbacks.
    handler: H,
    /// Transport, handle and configuration, lent to the callbacks.
    lcx: LineOnlyContext<H>,
    /// The unterminated tail of what was received.
    buf: Vec<u8>,
    /// No delimiter starts in `buf[..scan]`.
    scan: usize,
}

/// What [`deliver`] left.
enum Rest {
    /// Keep `input[keep..]`; the next search starts `scan` bytes into it.
    Keep { keep: usize, scan: usize },
    /// Drop everything (too long, or disconnecting).
    Drop,
}

/// Delivers the complete lines of `input` (whose first `scan` bytes hold no delimiter start).
fn deliver<H: LineOnlyHandler>(
    handler: &mut H,
    lcx: &LineOnlyContext<H>,
    input: &[u8],
    scan: usize,
) -> Rest {
    let transport = lcx.transport();
    let d = lcx.delimiter.len();
    let mut start = 0;
    let mut from = scan.min(input.len());
    loop {
        if transport.disconnecting() {
            return Rest::Drop;
        }
        match lcx.delimiter.find(&input[from..]) {
            Some(i) => {
                let end = from + i;
                if end - start > lcx.max_length {
                    handler.line_length_exceeded(lcx, &input[start..end]);
                    return Rest::Drop;
                }
                handler.line_received(lcx, &input[start..end]);
                start = end + d;
                from = start;
            }
            None if input.len() - start >= lcx.max_length.saturating_add(d) => {
                handler.line_length_exceeded(lcx, &input[start..]);
                return Rest::Drop;
            }
            None => {
                return Rest::Keep {
                    keep: start,
                    scan: lcx.delimiter.resume_at(from, input.len()) - start,
                };
            }
        }
    }
}

impl<H: LineOnlyHandler> LineOnlyReceiver<H> {
    /// A receiver with the defaults, delivering to `handler`.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    ///
    /// struct N;
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineOnlyReceiver::new(N).max_length(), 16384);
    /// ```
    pub fn new(handler: H) -> Self {
        LineOnlyReceiver {
            handler,
            lcx: LineOnlyContext {
                link: OnceCell::new(),
                delimiter: Delimiter::new(DEFAULT_DELIMITER),
                max_length: DEFAULT_LINE_MAX_LENGTH,
            },
            buf: Vec::new(),
            scan: 0,
        }
    }

    /// Sets the line delimiter.
    ///
    /// # Panics
    /// If `delimiter` is empty.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    ///
    /// struct N;
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineOnlyReceiver::new(N).with_delimiter(b"\n").delimiter(), b"\n");
    /// ```
    pub fn with_delimiter(mut self, delimiter: &[u8]) -> Self {
        self.lcx.delimiter = Delimiter::new(delimiter);
        self
    }

    /// Sets the longest line delivered (Twisted's `MAX_LENGTH`).
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    ///
    /// struct N;
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineOnlyReceiver::new(N).with_max_length(5).max_length(), 5);
    /// ```
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.lcx.max_length = max_length;
        self
    }

    /// The line delimiter.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    ///
    /// struct N;
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineOnlyReceiver::new(N).delimiter(), b"\r\n");
    /// ```
    pub fn delimiter(&self) -> &[u8] {
        &self.lcx.delimiter.bytes
    }

    /// The longest line delivered.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    ///
    /// struct N;
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineOnlyReceiver::new(N).max_length(), 16384);
    /// ```
    pub fn max_length(&self) -> usize {
        self.lcx.max_length
    }

    /// The handler.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    ///
    /// struct N(u8);
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineOnlyReceiver::new(N(1)).handler().0, 1);
    /// ```
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    ///
    /// struct N(u8);
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// let mut r = LineOnlyReceiver::new(N(1));
    /// r.handler_mut().0 = 2;
    /// assert_eq!(r.handler().0, 2);
    /// ```
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// The handler, consuming the receiver.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    ///
    /// struct N(u8);
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineOnlyReceiver::new(N(1)).into_handler().0, 1);
    /// ```
    pub fn into_handler(self) -> H {
        self.handler
    }

    fn link(&self, cx: &Context<Self>) {
        self.lcx.link.get_or_init(|| Link {
            transport: cx.transport().clone(),
            handle: LineOnlyHandle { inner: cx.handle() },
        });
    }
}

impl<H: LineOnlyHandler> Protocol for LineOnlyReceiver<H> {
    fn connection_made(&mut self, cx: &Context<Self>) {
        self.link(cx);
        self.handler.connection_made(&self.lcx);
    }

    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        self.link(cx);
        if cx.transport().disconnecting() {
            return;
        }
        if self.buf.is_empty() {
            // Nothing left over: deliver straight from `data`, keep only the tail.
            match deliver(&mut self.handler, &self.lcx, data, 0) {
                Rest::Keep { keep, scan } => {
                    self.buf.extend_from_slice(&data[keep..]);
                    self.scan = scan;
                }
                Rest::Drop => self.scan = 0,
            }
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(data);
            match deliver(&mut self.handler, &self.lcx, &buf, self.scan) {
                Rest::Keep { keep, scan } => {
                    buf.drain(..keep);
                    self.scan = scan;
                }
                Rest::Drop => {
                    buf.clear();
                    self.scan = 0;
                }
            }
            trim(&mut buf);
            self.buf = buf;
        }
    }

    fn connection_lost(&mut self, cx: &Context<Self>, reason: Failure) {
        self.link(cx);
        self.handler.connection_lost(&self.lcx, reason);
        self.buf = Vec::new();
        self.scan = 0;
    }
}

/// A weak handle on a connected [`LineOnlyReceiver`]'s handler, for later work.
///
/// ```
/// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandle, LineOnlyHandler, LineOnlyReceiver};
/// use twistor::testing::StringTransport;
///
/// struct N;
/// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
/// let st = StringTransport::new();
/// let h: LineOnlyHandle<N> = st.connect(LineOnlyReceiver::new(N)).into();
/// h.with(|_, cx| cx.send_line(b"x"));
/// assert_eq!(st.value(), b"x\r\n");
/// ```
pub struct LineOnlyHandle<H> {
    inner: Handle<LineOnlyReceiver<H>>,
}

impl<H: LineOnlyHandler> LineOnlyHandle<H> {
    /// Runs `f` on the handler and its context: at once (`Some`), or queued right after the
    /// running callback of this receiver (`None`); `None` once the connection is gone.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandle, LineOnlyHandler, LineOnlyReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// #[derive(Default)]
    /// struct Count(usize);
    /// impl LineOnlyHandler for Count {
    ///     fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) { self.0 += 1 }
    /// }
    /// let st = StringTransport::new();
    /// let h = LineOnlyHandle::from(st.connect(LineOnlyReceiver::new(Count::default())));
    /// st.deliver(b"a\r\n");
    /// assert_eq!(h.with(|c, _| c.0), Some(1));
    /// ```
    pub fn with<R>(&self, f: impl FnOnce(&mut H, &LineOnlyContext<H>) -> R + 'static) -> Option<R> {
        self.inner.with(move |r, cx| {
            r.link(cx);
            f(&mut r.handler, &r.lcx)
        })
    }

    /// True while the connection exists.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandle, LineOnlyHandler, LineOnlyReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = LineOnlyHandle::from(st.connect(LineOnlyReceiver::new(N)));
    /// assert!(h.alive());
    /// ```
    pub fn alive(&self) -> bool {
        self.inner.alive()
    }

    /// The protocol handle underneath.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandle, LineOnlyHandler, LineOnlyReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = LineOnlyHandle::from(st.connect(LineOnlyReceiver::new(N)));
    /// assert_eq!(h.protocol().with(|r, _| r.max_length()), Some(16384));
    /// ```
    pub fn protocol(&self) -> &Handle<LineOnlyReceiver<H>> {
        &self.inner
    }
}

impl<H> From<Handle<LineOnlyReceiver<H>>> for LineOnlyHandle<H> {
    /// Wraps the handle `connect` gives.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandle, LineOnlyHandler, LineOnlyReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// let h = LineOnlyHandle::from(StringTransport::new().connect(LineOnlyReceiver::new(N)));
    /// let _ = h.clone();
    /// ```
    fn from(inner: Handle<LineOnlyReceiver<H>>) -> Self {
        LineOnlyHandle { inner }
    }
}

impl<H> Clone for LineOnlyHandle<H> {
    fn clone(&self) -> Self {
        LineOnlyHandle {
            inner: self.inner.clone(),
        }
    }
}

impl<H> fmt::Debug for LineOnlyHandle<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LineOnlyHandle").field(&self.inner).finish()
    }
}

//! `LineOnlyReceiver`: lines and nothing else (Twisted's `basic.LineOnlyReceiver`).
//!
//! The framing [`LinesOnly`] uses `LineReceiver`'s limits, so whether a line is too long does
//! not depend on where a read split its delimiter; a too-long line hands its handler only that
//! line (or the unterminated run), and everything buffered after it is dropped. No raw mode.

use super::line::decode_line;
use super::receiver::{
    Decoded, Frame, FrameHandler, Framing, Receiver, ReceiverContext, ReceiverHandle,
};
use super::{DEFAULT_LINE_MAX_LENGTH, Delimiter, EmptyDelimiterError};
use crate::Failure;

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
    #[doc(alias = "connectionMade")]
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
    #[doc(alias = "lineReceived")]
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
    #[doc(alias = "lineLengthExceeded")]
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
    #[doc(alias = "connectionLost")]
    fn connection_lost(&mut self, _cx: &LineOnlyContext<Self>, _reason: Failure) {}
}

/// What a [`LineOnlyHandler`]'s callbacks can reach: the transport, `send_line`, pausing and a
/// [`LineOnlyHandle`] (the receiver context of the [`LinesOnly`] framing).
pub type LineOnlyContext<H> = ReceiverContext<LineOnlyWire, H>;

/// A weak handle on a connected [`LineOnlyReceiver`]'s handler (see [`ReceiverHandle`]).
pub type LineOnlyHandle<H> = ReceiverHandle<LineOnlyWire, H>;

/// Lines and nothing else (Twisted's `LineOnlyReceiver`): defaults and limits as
/// [`LineReceiver`](super::LineReceiver).
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
/// st.connect(LineOnlyReceiver::new(Echo).with_delimiter(b"\n")?);
/// st.deliver(b"a\nb\n");
/// assert_eq!(st.value(), b"a\nb\n");
/// # Ok::<(), twistor::protocols::basic::EmptyDelimiterError>(())
/// ```
pub type LineOnlyReceiver<H> = Receiver<LinesOnly, H>;

/// The framing of [`LineOnlyReceiver`].
///
/// ```
/// use twistor::protocols::basic::{Decoded, Frame, Framing, LinesOnly};
/// let wire = LinesOnly.wire();
/// // A too-long line hands over only itself.
/// assert!(matches!(LinesOnly.decode(&wire, b"abcd\r\nx", 0, 3), Decoded::Frame { consumed: 7, frame: Frame::LineTooLong(b"abcd") }));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LinesOnly;

/// A [`LineOnlyReceiver`]'s settings: its delimiter.
///
/// ```
/// use twistor::protocols::basic::{Framing, LinesOnly};
/// assert_eq!(LinesOnly.wire().delimiter(), b"\r\n");
/// ```
pub struct LineOnlyWire {
    delimiter: Delimiter,
}

impl LineOnlyWire {
    /// The line delimiter.
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter.bytes
    }
}

impl Framing for LinesOnly {
    type Wire = LineOnlyWire;

    fn wire(&self) -> LineOnlyWire {
        LineOnlyWire {
            delimiter: Delimiter::default(),
        }
    }

    fn default_max_length() -> usize {
        DEFAULT_LINE_MAX_LENGTH
    }

    #[inline]
    fn decode<'a>(
        &self,
        wire: &LineOnlyWire,
        buf: &'a [u8],
        scan: usize,
        max_length: usize,
    ) -> Decoded<'a> {
        decode_line(&wire.delimiter, buf, scan, max_length, |all, end| {
            &all[..end]
        })
    }

    fn overhead(wire: &LineOnlyWire) -> usize {
        wire.delimiter.len()
    }

    const IN_PLACE: bool = true;
}

impl<H: LineOnlyHandler> FrameHandler<LinesOnly> for H {
    fn connection_made(&mut self, cx: &LineOnlyContext<Self>) {
        LineOnlyHandler::connection_made(self, cx)
    }
    #[inline]
    fn frame_received(&mut self, cx: &LineOnlyContext<Self>, frame: Frame<'_>) {
        match frame {
            Frame::Message(line) => self.line_received(cx, line),
            Frame::LineTooLong(line) => self.line_length_exceeded(cx, line),
            Frame::Raw(_) | Frame::LengthTooLong(_) | Frame::Invalid(_) => {}
        }
    }
    fn connection_lost(&mut self, cx: &LineOnlyContext<Self>, reason: Failure) {
        LineOnlyHandler::connection_lost(self, cx, reason)
    }
}

impl<H: FrameHandler<LinesOnly>> Receiver<LinesOnly, H> {
    /// Sets the line delimiter. An empty delimiter is an error.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler, LineOnlyReceiver};
    ///
    /// struct N;
    /// impl LineOnlyHandler for N { fn line_received(&mut self, _: &LineOnlyContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineOnlyReceiver::new(N).with_delimiter(b"\n").unwrap().delimiter(), b"\n");
    /// assert!(LineOnlyReceiver::new(N).with_delimiter(b"").is_err());
    /// ```
    pub fn with_delimiter(mut self, delimiter: &[u8]) -> Result<Self, EmptyDelimiterError> {
        self.wire_mut().delimiter = Delimiter::new(delimiter)?;
        Ok(self)
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
        self.wire().delimiter()
    }
}

impl<H> ReceiverContext<LineOnlyWire, H> {
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
    /// st.connect(LineOnlyReceiver::new(Hi).with_delimiter(b";").unwrap());
    /// assert_eq!(st.value(), b"hi;");
    /// ```
    #[doc(alias = "sendLine")]
    pub fn send_line(&self, line: &[u8]) {
        self.transport()
            .write_sequence(&[line, &self.wire.delimiter.bytes]);
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
        self.wire.delimiter()
    }
}

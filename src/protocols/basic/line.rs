//! `LineReceiver`: lines, a raw mode, pausing (Twisted's `basic.LineReceiver`).
//!
//! The framing [`Lines`] splits on the delimiter with Twisted's asymmetric limits; the
//! receiver core (buffering, delivery, pausing) is the one every framing shares.

use std::cell::Cell;

use super::receiver::{
    Decoded, Frame, FrameHandler, Framing, Receiver, ReceiverContext, ReceiverHandle,
};
use super::{DEFAULT_LINE_MAX_LENGTH, Delimiter, EmptyDelimiterError};
use crate::Failure;

/// What you write to receive lines: the callbacks a [`LineReceiver`] calls (Twisted's
/// `LineReceiver` methods you override).
///
/// Only [`line_received`](LineHandler::line_received) is required.
///
/// ```
/// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
/// use twistor::testing::StringTransport;
///
/// #[derive(Default)]
/// struct Collect(Vec<Vec<u8>>);
/// impl LineHandler for Collect {
///     fn line_received(&mut self, _cx: &LineContext<Self>, line: &[u8]) {
///         self.0.push(line.to_vec());
///     }
/// }
/// let st = StringTransport::new();
/// let h = st.connect(LineReceiver::new(Collect::default()));
/// st.deliver(b"one\r\ntw");
/// st.deliver(b"o\r\n");
/// assert_eq!(h.with(|r, _| r.handler().0.clone()).unwrap(), [b"one".to_vec(), b"two".to_vec()]);
/// ```
pub trait LineHandler: Sized + 'static {
    /// The connection is up.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct Banner;
    /// impl LineHandler for Banner {
    ///     fn connection_made(&mut self, cx: &LineContext<Self>) { cx.send_line(b"220 ready") }
    ///     fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {}
    /// }
    /// let st = StringTransport::new();
    /// st.connect(LineReceiver::new(Banner));
    /// assert_eq!(st.value(), b"220 ready\r\n");
    /// ```
    #[doc(alias = "connectionMade")]
    fn connection_made(&mut self, _cx: &LineContext<Self>) {}

    /// A line arrived, without its delimiter. A line of exactly `max_length` bytes is fine.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct Upper;
    /// impl LineHandler for Upper {
    ///     fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
    ///         cx.send_line(&line.to_ascii_uppercase());
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// st.connect(LineReceiver::new(Upper));
    /// st.deliver(b"hi\r\n");
    /// assert_eq!(st.value(), b"HI\r\n");
    /// ```
    #[doc(alias = "lineReceived")]
    fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]);

    /// Bytes arrived in raw mode (after [`LineContext::set_raw_mode`]), in any chunking.
    ///
    /// Twisted raises `NotImplementedError` if a protocol enters raw mode without overriding
    /// this; the default here logs an error and closes the connection.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// /// `DATA` switches to raw mode; raw bytes are echoed.
    /// struct Data;
    /// impl LineHandler for Data {
    ///     fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
    ///         if line == b"DATA" { cx.set_raw_mode() }
    ///     }
    ///     fn raw_data_received(&mut self, cx: &LineContext<Self>, data: &[u8]) {
    ///         cx.transport().write(data);
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// st.connect(LineReceiver::new(Data));
    /// st.deliver(b"DATA\r\nabc\r\ndef");
    /// assert_eq!(st.value(), b"abc\r\ndef");
    /// ```
    #[doc(alias = "rawDataReceived")]
    fn raw_data_received(&mut self, cx: &LineContext<Self>, _data: &[u8]) {
        log::error!(
            target: "twistor::protocols::basic",
            "raw mode without raw_data_received: closing the connection"
        );
        cx.transport().lose_connection();
    }

    /// A line longer than `max_length` arrived, or `max_length + delimiter.len()` bytes came
    /// with no delimiter. `buffer` is **everything** that was pending (the long line, its
    /// delimiter and whatever followed), and the receiver's buffer is now empty. The default
    /// closes the connection (Twisted's `lineLengthExceeded`).
    ///
    /// Unlike Twisted, where bytes handed back with `set_line_mode(extra)` from here wait for
    /// the next `data_received`, they are parsed at once.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct Short;
    /// impl LineHandler for Short {
    ///     fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {}
    ///     fn line_length_exceeded(&mut self, cx: &LineContext<Self>, buffer: &[u8]) {
    ///         assert_eq!(buffer, b"123456\r\nxy\r\n");
    ///         cx.send_line(b"too long");
    ///         cx.transport().lose_connection();
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// st.connect(LineReceiver::new(Short).with_max_length(5));
    /// st.deliver(b"123456\r\nxy\r\n");
    /// assert_eq!(st.value(), b"too long\r\n");
    /// assert!(st.disconnecting());
    /// ```
    #[doc(alias = "lineLengthExceeded")]
    fn line_length_exceeded(&mut self, cx: &LineContext<Self>, _buffer: &[u8]) {
        cx.transport().lose_connection();
    }

    /// The connection is gone (called once). Unparsed bytes are dropped.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    /// use twistor::{error::ConnectionDone, Failure};
    ///
    /// #[derive(Default)]
    /// struct Gone(bool);
    /// impl LineHandler for Gone {
    ///     fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {}
    ///     fn connection_lost(&mut self, _: &LineContext<Self>, reason: Failure) {
    ///         self.0 = reason.is::<ConnectionDone>();
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// let h = st.connect(LineReceiver::new(Gone::default()));
    /// st.connection_lost(Failure::new(ConnectionDone));
    /// assert!(!h.alive());
    /// ```
    #[doc(alias = "connectionLost")]
    fn connection_lost(&mut self, _cx: &LineContext<Self>, _reason: Failure) {}
}

/// What a [`LineHandler`]'s callbacks can reach: the transport, `send_line`, the receiver's
/// modes, buffer and pausing, and a [`LineHandle`] for later work (the receiver context of
/// the [`Lines`] framing).
pub type LineContext<H> = ReceiverContext<LineWire, H>;

/// A weak handle on a connected [`LineReceiver`]'s handler (see [`ReceiverHandle`]).
pub type LineHandle<H> = ReceiverHandle<LineWire, H>;

/// A line protocol: splits received bytes into lines for a [`LineHandler`], with a raw mode
/// and pausing (Twisted's `LineReceiver`).
///
/// Defaults: delimiter `b"\r\n"`, `max_length` 16384. The limits are Twisted's, asymmetric:
/// a complete line of exactly `max_length` bytes is delivered; a line longer than that, or an
/// unterminated run of `max_length + delimiter.len()` bytes (fewer could still be a full line
/// plus part of its delimiter), calls [`LineHandler::line_length_exceeded`] with everything
/// pending. See the [module docs](super) for the buffering and pausing invariants.
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
/// st.connect(LineReceiver::new(Echo).with_delimiter(b"\n")?.with_max_length(1024));
/// st.deliver(b"a\nb\n");
/// assert_eq!(st.value(), b"a\nb\n");
/// # Ok::<(), twistor::protocols::basic::EmptyDelimiterError>(())
/// ```
pub type LineReceiver<H> = Receiver<Lines, H>;

/// The line framing of [`LineReceiver`] (Twisted's `LineReceiver.dataReceived`): lines end
/// with the delimiter; in raw mode everything is raw data.
///
/// ```
/// use twistor::protocols::basic::{Decoded, Frame, Framing, Lines};
/// let wire = Lines.wire();
/// // A complete line of exactly max_length bytes is fine...
/// assert!(matches!(Lines.decode(&wire, b"abc\r\n", 0, 3), Decoded::Frame { frame: Frame::Message(b"abc"), .. }));
/// // ...one byte more is too long, and takes everything pending.
/// assert!(matches!(Lines.decode(&wire, b"abcd\r\nx", 0, 3), Decoded::Frame { consumed: 7, frame: Frame::LineTooLong(b"abcd\r\nx") }));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Lines;

/// A [`LineReceiver`]'s settings: the delimiter, and whether it is in raw mode.
///
/// ```
/// use twistor::protocols::basic::{Framing, Lines};
/// let wire = Lines.wire();
/// assert_eq!(wire.delimiter(), b"\r\n");
/// assert!(wire.line_mode());
/// ```
pub struct LineWire {
    delimiter: Delimiter,
    /// Raw mode (Twisted's `line_mode == 0`).
    raw: Cell<bool>,
}

impl LineWire {
    /// The line delimiter.
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter.bytes
    }

    /// True in line mode, false in raw mode.
    pub fn line_mode(&self) -> bool {
        !self.raw.get()
    }
}

/// One line at the front of `buf`, with `LineReceiver`'s limits; `too_long` picks what a
/// too-long terminated line hands over (everything pending, or the line).
pub(super) fn decode_line<'a>(
    delimiter: &Delimiter,
    buf: &'a [u8],
    scan: usize,
    max_length: usize,
    too_long: impl FnOnce(&'a [u8], usize) -> &'a [u8],
) -> Decoded<'a> {
    let (d, len) = (delimiter.len(), buf.len());
    let from = scan.min(len);
    match delimiter.find(&buf[from..]) {
        Some(i) if from + i <= max_length => Decoded::Frame {
            consumed: from + i + d,
            frame: Frame::Message(&buf[..from + i]),
        },
        Some(i) => Decoded::Frame {
            consumed: len,
            frame: Frame::LineTooLong(too_long(buf, from + i)),
        },
        None if len < max_length.saturating_add(d) => Decoded::NeedMore {
            scan: delimiter.resume_at(from, len),
            frame_len: None,
        },
        None => Decoded::Frame {
            consumed: len,
            frame: Frame::LineTooLong(buf),
        },
    }
}

impl Framing for Lines {
    type Wire = LineWire;

    fn wire(&self) -> LineWire {
        LineWire {
            delimiter: Delimiter::default(),
            raw: Cell::new(false),
        }
    }

    fn default_max_length() -> usize {
        DEFAULT_LINE_MAX_LENGTH
    }

    #[inline]
    fn decode<'a>(
        &self,
        wire: &LineWire,
        buf: &'a [u8],
        scan: usize,
        max_length: usize,
    ) -> Decoded<'a> {
        if wire.raw.get() {
            return Decoded::Frame {
                consumed: buf.len(),
                frame: Frame::Raw(buf),
            };
        }
        // Too long, terminated or not: hand over everything pending.
        decode_line(&wire.delimiter, buf, scan, max_length, |all, _| all)
    }

    fn overhead(wire: &LineWire) -> usize {
        wire.delimiter.len()
    }
}

impl<H: LineHandler> FrameHandler<Lines> for H {
    fn connection_made(&mut self, cx: &LineContext<Self>) {
        LineHandler::connection_made(self, cx)
    }
    #[inline]
    fn frame_received(&mut self, cx: &LineContext<Self>, frame: Frame<'_>) {
        match frame {
            Frame::Message(line) => self.line_received(cx, line),
            Frame::Raw(data) => self.raw_data_received(cx, data),
            Frame::LineTooLong(buffer) => self.line_length_exceeded(cx, buffer),
            Frame::LengthTooLong(_) | Frame::Invalid(_) => {}
        }
    }
    fn connection_lost(&mut self, cx: &LineContext<Self>, reason: Failure) {
        LineHandler::connection_lost(self, cx, reason)
    }
}

impl<H: FrameHandler<Lines>> Receiver<Lines, H> {
    /// Sets the line delimiter (Twisted's `delimiter`). An empty delimiter is an error.
    ///
    /// ```
    /// use twistor::protocols::basic::{EmptyDelimiterError, LineContext, LineHandler, LineReceiver};
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineReceiver::new(N).with_delimiter(b"\0").unwrap().delimiter(), b"\0");
    /// assert_eq!(LineReceiver::new(N).with_delimiter(b"").err().map(|e| e.to_string()),
    ///     Some(EmptyDelimiterError.to_string()));
    /// ```
    pub fn with_delimiter(mut self, delimiter: &[u8]) -> Result<Self, EmptyDelimiterError> {
        self.wire_mut().delimiter = Delimiter::new(delimiter)?;
        Ok(self)
    }

    /// The line delimiter.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineReceiver::new(N).delimiter(), b"\r\n");
    /// ```
    pub fn delimiter(&self) -> &[u8] {
        self.wire().delimiter()
    }
}

impl<H> ReceiverContext<LineWire, H> {
    /// Writes `line` and the delimiter (one `write_sequence`; Twisted's `sendLine`).
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct Hello;
    /// impl LineHandler for Hello {
    ///     fn connection_made(&mut self, cx: &LineContext<Self>) { cx.send_line(b"hello") }
    ///     fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {}
    /// }
    /// let st = StringTransport::new();
    /// st.connect(LineReceiver::new(Hello).with_delimiter(b"\n").unwrap());
    /// assert_eq!(st.value(), b"hello\n");
    /// ```
    #[doc(alias = "sendLine")]
    pub fn send_line(&self, line: &[u8]) {
        self.transport()
            .write_sequence(&[line, &self.wire.delimiter.bytes]);
    }

    /// From now on, received bytes go to [`LineHandler::raw_data_received`] (Twisted's
    /// `setRawMode`). Takes effect for the bytes after the current line.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// #[derive(Default)]
    /// struct Raw(Vec<u8>);
    /// impl LineHandler for Raw {
    ///     fn line_received(&mut self, cx: &LineContext<Self>, _: &[u8]) { cx.set_raw_mode() }
    ///     fn raw_data_received(&mut self, _: &LineContext<Self>, data: &[u8]) {
    ///         self.0.extend_from_slice(data)
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// let h = st.connect(LineReceiver::new(Raw::default()));
    /// st.deliver(b"go\r\nx\r\ny");
    /// assert_eq!(h.with(|r, _| r.handler().0.clone()).unwrap(), b"x\r\ny");
    /// ```
    #[doc(alias = "setRawMode")]
    pub fn set_raw_mode(&self) {
        self.wire.raw.set(true);
    }

    /// Back to line mode (Twisted's `setLineMode`); `extra` is parsed as if received next,
    /// after whatever is still buffered. From inside `raw_data_received`, pass the raw bytes
    /// you did not consume.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// /// `BLOB n` is followed by n raw bytes, then lines again.
    /// #[derive(Default)]
    /// struct Blob { want: usize, log: Vec<String> }
    /// impl LineHandler for Blob {
    ///     fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
    ///         let line = String::from_utf8_lossy(line).into_owned();
    ///         if let Some(n) = line.strip_prefix("BLOB ") {
    ///             self.want = n.parse().unwrap_or(0);
    ///             cx.set_raw_mode();
    ///         }
    ///         self.log.push(line);
    ///     }
    ///     fn raw_data_received(&mut self, cx: &LineContext<Self>, data: &[u8]) {
    ///         let n = self.want.min(data.len());
    ///         self.log.push(format!("raw {}", String::from_utf8_lossy(&data[..n])));
    ///         self.want -= n;
    ///         if self.want == 0 { cx.set_line_mode(&data[n..]) }
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// let h = st.connect(LineReceiver::new(Blob::default()));
    /// st.deliver(b"BLOB 3\r\nabcdone\r\n");
    /// assert_eq!(h.with(|r, _| r.handler().log.clone()).unwrap(), ["BLOB 3", "raw abc", "done"]);
    /// ```
    #[doc(alias = "setLineMode")]
    pub fn set_line_mode(&self, extra: &[u8]) {
        self.wire.raw.set(false);
        self.push_back(extra);
    }

    /// True in line mode, false in raw mode (Twisted's `line_mode`).
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct M;
    /// impl LineHandler for M {
    ///     fn line_received(&mut self, cx: &LineContext<Self>, _: &[u8]) {
    ///         assert!(cx.line_mode());
    ///         cx.set_raw_mode();
    ///         assert!(!cx.line_mode());
    ///     }
    ///     fn raw_data_received(&mut self, _: &LineContext<Self>, _: &[u8]) {}
    /// }
    /// let st = StringTransport::new();
    /// st.connect(LineReceiver::new(M));
    /// st.deliver(b"x\r\n");
    /// ```
    pub fn line_mode(&self) -> bool {
        self.wire.line_mode()
    }

    /// Empties the receive buffer and returns what it held (Twisted's `clearLineBuffer`).
    /// From inside `line_received`, the lines after the current one are then not delivered.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// #[derive(Default)]
    /// struct First { line: Vec<u8>, rest: Vec<u8> }
    /// impl LineHandler for First {
    ///     fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
    ///         self.line = line.to_vec();
    ///         self.rest = cx.clear_line_buffer();
    ///     }
    /// }
    /// let st = StringTransport::new();
    /// let h = st.connect(LineReceiver::new(First::default()));
    /// st.deliver(b"foo\r\nbar\r\nbaz");
    /// let (line, rest) = h.with(|r, _| (r.handler().line.clone(), r.handler().rest.clone())).unwrap();
    /// assert_eq!((&line[..], &rest[..]), (&b"foo"[..], &b"bar\r\nbaz"[..]));
    /// ```
    #[doc(alias = "clearLineBuffer")]
    pub fn clear_line_buffer(&self) -> Vec<u8> {
        self.take_buffer()
    }

    /// The line delimiter.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = LineHandle::from(st.connect(LineReceiver::new(N)));
    /// assert_eq!(h.with(|_, cx| cx.delimiter().to_vec()).unwrap(), b"\r\n");
    /// ```
    pub fn delimiter(&self) -> &[u8] {
        self.wire.delimiter()
    }
}

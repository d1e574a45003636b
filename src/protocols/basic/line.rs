//! `LineReceiver`: lines, a raw mode, pausing (Twisted's `basic.LineReceiver`).
//!
//! # The buffer
//!
//! Received bytes not yet delivered are `buf[start..]`. The delivery loop holds a shared
//! borrow of `buf` while it calls the handler, so the line it passes is a slice of the buffer
//! (no copy per line). Before each call it moves `start` past what it delivers, so that
//! `clear_line_buffer` (a shared borrow too) sees exactly the unparsed rest. What a callback
//! changes is recorded beside the buffer and applied when the callback has returned and the
//! borrow is gone: bytes from `set_line_mode(extra)` go to `pending`, a `clear_line_buffer`
//! sets `cleared`. No other code touches `buf` while user code runs, and the receiver is never
//! re-entered (a handle's `with` from inside a callback is queued by the protocol slot), so
//! the borrow never conflicts.
//!
//! # The scan offset
//!
//! `scan` is where the next delimiter search starts: no delimiter starts in `buf[start..scan]`
//! (see the parent module's invariants). It only moves forward, and is reset with the buffer
//! (`clear_line_buffer`, `line_length_exceeded`, compaction shifts it with `start`).

use std::cell::{Cell, OnceCell, RefCell};
use std::fmt;

use super::{
    DEFAULT_DELIMITER, DEFAULT_LINE_MAX_LENGTH, DEFAULT_PAUSED_BUFFER_LIMIT, Delimiter, Flow, Link,
    paused_overflow, trim,
};
use crate::Failure;
use crate::protocol::{Context, Handle, Protocol};
use crate::transport::{Producer, Transport};

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
    fn connection_lost(&mut self, _cx: &LineContext<Self>, _reason: Failure) {}
}

/// What a [`LineHandler`]'s callbacks can reach: the transport, `send_line`, the receiver's
/// modes, buffer and pausing, and a [`LineHandle`] for later work.
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
/// st.connect(LineReceiver::new(Info).with_delimiter(b"\n").with_max_length(80));
/// st.deliver(b"?\n");
/// assert_eq!(st.value(), b"80 1\n");
/// ```
pub struct LineContext<H> {
    /// Transport and handle; set before any handler callback runs.
    link: OnceCell<Link<LineHandle<H>>>,
    /// What ends a line.
    delimiter: Delimiter,
    /// The longest line delivered (Twisted's `MAX_LENGTH`).
    max_length: usize,
    /// The most a paused receiver holds back.
    paused_limit: usize,
    /// Received, undelivered bytes: `buf[start..]`.
    buf: RefCell<Vec<u8>>,
    /// The first undelivered byte of `buf`.
    start: Cell<usize>,
    /// Where the next delimiter search starts (module docs).
    scan: Cell<usize>,
    /// Bytes given to `set_line_mode(extra)`, appended to `buf` after the callback returns.
    pending: RefCell<Vec<u8>>,
    /// `clear_line_buffer` ran while `buf` was borrowed: empty it after the callback.
    cleared: Cell<bool>,
    /// Raw mode (Twisted's `line_mode == 0`).
    raw: Cell<bool>,
    /// Pausing: `pause_producing` (or `stop_producing`) delivers nothing; after
    /// `stop_producing` everything is dropped, for good.
    flow: Flow,
}

impl<H> LineContext<H> {
    fn new() -> Self {
        LineContext {
            link: OnceCell::new(),
            delimiter: Delimiter::new(DEFAULT_DELIMITER),
            max_length: DEFAULT_LINE_MAX_LENGTH,
            paused_limit: DEFAULT_PAUSED_BUFFER_LIMIT,
            buf: RefCell::new(Vec::new()),
            start: Cell::new(0),
            scan: Cell::new(0),
            pending: RefCell::new(Vec::new()),
            cleared: Cell::new(false),
            raw: Cell::new(false),
            flow: Flow::default(),
        }
    }

    fn link(&self) -> &Link<LineHandle<H>> {
        Link::of(&self.link)
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

    /// A handle on the handler, for work that finishes later (see [`LineHandle::with`]).
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
    pub fn handle(&self) -> LineHandle<H> {
        self.link().handle.clone()
    }

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
    /// st.connect(LineReceiver::new(Hello).with_delimiter(b"\n"));
    /// assert_eq!(st.value(), b"hello\n");
    /// ```
    pub fn send_line(&self, line: &[u8]) {
        self.transport()
            .write_sequence(&[line, &self.delimiter.bytes]);
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
    pub fn set_raw_mode(&self) {
        self.raw.set(true);
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
    pub fn set_line_mode(&self, extra: &[u8]) {
        self.raw.set(false);
        if !extra.is_empty() {
            self.pending.borrow_mut().extend_from_slice(extra);
        }
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
        !self.raw.get()
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
    pub fn clear_line_buffer(&self) -> Vec<u8> {
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

    /// Stops delivering lines (and raw data), holding back what is buffered and what arrives,
    /// and pauses the transport (Twisted's `pauseProducing`).
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
    pub fn pause_producing(&self) {
        self.flow.pause(self.transport());
    }

    /// Delivers again, and resumes the transport (Twisted's `resumeProducing`). Held lines are
    /// delivered as soon as the current callback (or the closure given to
    /// [`LineHandle::with`]) returns; Twisted does it in a later reactor turn. Does nothing
    /// after [`stop_producing`](LineContext::stop_producing).
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
        &self.delimiter.bytes
    }

    /// The longest line delivered (Twisted's `MAX_LENGTH`).
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
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The most held back while paused: the configured limit, but at least one maximal line.
    fn paused_limit(&self) -> usize {
        self.paused_limit
            .max(self.max_length.saturating_add(self.delimiter.len()))
    }

    /// Applies what callbacks recorded: a `clear_line_buffer`, then `set_line_mode` bytes.
    /// Never called while the delivery loop borrows `buf`.
    fn merge_pending(&self) {
        let mut buf = self.buf.borrow_mut();
        if self.cleared.take() || self.start.get() >= buf.len() {
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

    /// After delivering: drops delivered bytes (or everything, once stopped or disconnecting)
    /// and gives back memory.
    fn settle(&self) {
        let dead = self.flow.stopped() || self.transport().disconnecting();
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
}

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
/// st.connect(LineReceiver::new(Echo).with_delimiter(b"\n").with_max_length(1024));
/// st.deliver(b"a\nb\n");
/// assert_eq!(st.value(), b"a\nb\n");
/// ```
pub struct LineReceiver<H> {
    /// The user's callbacks.
    handler: H,
    /// The receiver's state, lent to the handler's callbacks.
    lcx: LineContext<H>,
}

impl<H: LineHandler> LineReceiver<H> {
    /// A receiver with the defaults, delivering to `handler`.
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
        LineReceiver {
            handler,
            lcx: LineContext::new(),
        }
    }

    /// Sets the line delimiter (Twisted's `delimiter`).
    ///
    /// # Panics
    /// If `delimiter` is empty.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineReceiver::new(N).with_delimiter(b"\0").delimiter(), b"\0");
    /// ```
    pub fn with_delimiter(mut self, delimiter: &[u8]) -> Self {
        self.lcx.delimiter = Delimiter::new(delimiter);
        self
    }

    /// Sets the longest line delivered (Twisted's `MAX_LENGTH`).
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineReceiver::new(N).with_max_length(64).max_length(), 64);
    /// ```
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.lcx.max_length = max_length;
        self
    }

    /// Sets the most bytes held back while paused (default
    /// [`DEFAULT_PAUSED_BUFFER_LIMIT`](super::DEFAULT_PAUSED_BUFFER_LIMIT); never below
    /// `max_length + delimiter.len()`). Past it the connection is closed.
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
        self.lcx.paused_limit = limit;
        self
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
        &self.lcx.delimiter.bytes
    }

    /// The longest line delivered.
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// assert_eq!(LineReceiver::new(N).max_length(), 16384);
    /// ```
    pub fn max_length(&self) -> usize {
        self.lcx.max_length
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

    fn link(&self, cx: &Context<Self>) {
        self.lcx.link.get_or_init(|| Link {
            transport: cx.transport().clone(),
            handle: LineHandle { inner: cx.handle() },
        });
    }

    /// The delivery loop: delivers buffered lines (and raw data) until the buffer runs out of
    /// complete lines, or the receiver is paused, or the transport is disconnecting.
    fn pump(&mut self) {
        let lcx = &self.lcx;
        if lcx.link.get().is_none() {
            return;
        }
        let transport = lcx.transport();
        loop {
            lcx.merge_pending();
            if lcx.flow.paused() || transport.disconnecting() {
                break;
            }
            // Held across the callbacks below: they get slices of it (module docs).
            let buf = lcx.buf.borrow();
            let start = lcx.start.get();
            let len = buf.len();
            if start >= len {
                break;
            }
            if lcx.raw.get() {
                lcx.start.set(len);
                self.handler.raw_data_received(lcx, &buf[start..]);
                continue;
            }
            let d = lcx.delimiter.len();
            let from = lcx.scan.get().clamp(start, len);
            match lcx.delimiter.find(&buf[from..]) {
                Some(i) if from + i - start <= lcx.max_length => {
                    let end = from + i;
                    lcx.start.set(end + d);
                    lcx.scan.set(end + d);
                    self.handler.line_received(lcx, &buf[start..end]);
                }
                None if len - start < lcx.max_length.saturating_add(d) => {
                    lcx.scan.set(lcx.delimiter.resume_at(from, len));
                    break;
                }
                // Too long, terminated or not: hand over everything pending.
                _ => {
                    lcx.start.set(len);
                    lcx.scan.set(len);
                    self.handler.line_length_exceeded(lcx, &buf[start..]);
                }
            }
        }
        lcx.settle();
    }
}

impl<H: LineHandler> Protocol for LineReceiver<H> {
    fn connection_made(&mut self, cx: &Context<Self>) {
        self.link(cx);
        self.handler.connection_made(&self.lcx);
        self.pump();
    }

    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        self.link(cx);
        let lcx = &self.lcx;
        if lcx.flow.stopped() || cx.transport().disconnecting() {
            return;
        }
        {
            let mut buf = lcx.buf.borrow_mut();
            if lcx.flow.paused() {
                let held = buf.len() - lcx.start.get().min(buf.len()) + data.len();
                if held > lcx.paused_limit() {
                    buf.clear();
                    lcx.start.set(0);
                    lcx.scan.set(0);
                    drop(buf);
                    paused_overflow(cx.transport(), held, lcx.paused_limit());
                    return;
                }
            }
            buf.extend_from_slice(data);
        }
        self.pump();
    }

    fn connection_lost(&mut self, cx: &Context<Self>, reason: Failure) {
        self.link(cx);
        self.handler.connection_lost(&self.lcx, reason);
        let lcx = &self.lcx;
        *lcx.buf.borrow_mut() = Vec::new();
        *lcx.pending.borrow_mut() = Vec::new();
        lcx.start.set(0);
        lcx.scan.set(0);
    }
}

/// A weak handle on a connected [`LineReceiver`]'s handler, for work that finishes later.
/// Get one from [`LineContext::handle`] or from the protocol handle `connect` returns
/// (`LineHandle::from`).
///
/// It is also a [`Producer`]: register it with a transport to have the transport pause and
/// resume the receiver (Twisted's `LineReceiver` is a `PauseableProducer`).
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
pub struct LineHandle<H> {
    inner: Handle<LineReceiver<H>>,
}

impl<H: LineHandler> LineHandle<H> {
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
    pub fn with<R>(&self, f: impl FnOnce(&mut H, &LineContext<H>) -> R + 'static) -> Option<R> {
        self.inner.with(move |r, cx| {
            r.link(cx);
            let out = f(&mut r.handler, &r.lcx);
            r.pump();
            out
        })
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
        self.inner.alive()
    }

    /// The protocol handle underneath (reaches the whole [`LineReceiver`]).
    ///
    /// ```
    /// use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
    /// use twistor::testing::StringTransport;
    ///
    /// struct N;
    /// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
    /// let st = StringTransport::new();
    /// let h = LineHandle::from(st.connect(LineReceiver::new(N)));
    /// assert_eq!(h.protocol().with(|r, _| r.max_length()), Some(16384));
    /// ```
    pub fn protocol(&self) -> &Handle<LineReceiver<H>> {
        &self.inner
    }
}

impl<H> From<Handle<LineReceiver<H>>> for LineHandle<H> {
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
    fn from(inner: Handle<LineReceiver<H>>) -> Self {
        LineHandle { inner }
    }
}

impl<H> Clone for LineHandle<H> {
    fn clone(&self) -> Self {
        LineHandle {
            inner: self.inner.clone(),
        }
    }
}

impl<H> fmt::Debug for LineHandle<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LineHandle").field(&self.inner).finish()
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
impl<H: LineHandler> Producer for LineHandle<H> {
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

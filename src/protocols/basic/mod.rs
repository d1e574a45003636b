//! Basic framing protocols (Twisted's `twisted.protocols.basic`).
//!
//! Each receiver is a [`Protocol`](crate::protocol::Protocol) that turns a byte stream, in any
//! chunking, into messages, and hands them to a *handler* you write:
//!
//! | receiver | messages | your handler implements |
//! |---|---|---|
//! | [`LineReceiver`] | delimited lines, with a raw mode and pausing | [`LineHandler`] |
//! | [`LineOnlyReceiver`] | delimited lines, nothing else (Twisted's faster variant) | [`LineOnlyHandler`] |
//! | [`NetstringReceiver`] | netstrings, `<len>:<payload>,` | [`StringHandler`] |
//! | [`Int8StringReceiver`], [`Int16StringReceiver`], [`Int32StringReceiver`] | big-endian length prefix + payload | [`StringHandler`] |
//!
//! # One core, many framings
//!
//! Every receiver is the same generic [`Receiver<F, H>`](Receiver): a [`Framing`] `F` only
//! decodes (lines, netstrings, length prefixes; [`Lines`], [`LinesOnly`], [`Netstring`],
//! [`IntPrefix`]), and the receiver does the rest for all of them: buffering, the delivery
//! loop, pausing, limits. The names above are aliases (`LineReceiver<H>` is
//! `Receiver<Lines, H>`), and so are the contexts and handles: a handler's callbacks get a
//! [`ReceiverContext`] (`LineContext`, `LineOnlyContext`, `StringContext`) with the transport,
//! pausing, the framing's own controls (`send_line` and raw mode for lines, `send_string` for
//! strings) and a [`ReceiverHandle`] (`LineHandle`, `LineOnlyHandle`, `StringHandle`) whose
//! `with` reaches the handler and its context later, from a timer or a Deferred, in one call.
//! Because there is one context type, policies written once work with every framing (see
//! [`IdleTimeout`](crate::protocols::policies::IdleTimeout)).
//!
//! ```
//! use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
//! use twistor::testing::StringTransport;
//! use twistor::Clock;
//!
//! /// Answers each line one second later.
//! struct Slow { clock: Clock, answered: usize }
//! impl LineHandler for Slow {
//!     fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
//!         let (me, line) = (cx.handle(), line.to_vec());
//!         self.clock.call_later(1.0, move || {
//!             me.with(move |slow, cx| {
//!                 slow.answered += 1;
//!                 cx.send_line(&line);
//!             });
//!         });
//!     }
//! }
//! let clock = Clock::new();
//! let st = StringTransport::new();
//! let h = LineHandle::from(st.connect(LineReceiver::new(Slow { clock: clock.clone(), answered: 0 })));
//! st.deliver(b"ping\r\n");
//! assert_eq!(st.value(), b"");
//! clock.advance(1.0);
//! assert_eq!(st.value(), b"ping\r\n");
//! assert_eq!(h.with(|slow, _| slow.answered), Some(1));
//! ```
//!
//! # Invariants
//!
//! * **Bounded buffers.** Hostile input cannot make a receiver's memory grow without bound.
//!   Outside pausing, what a receiver keeps between two `data_received` calls is at most one
//!   unfinished message: for lines, fewer than `max_length + delimiter.len()` bytes (more is
//!   `line_length_exceeded`); for strings, at most `max_length` payload bytes plus the length
//!   prefix (a longer declared length is refused before any payload is buffered, and payload
//!   storage grows with the bytes that actually arrive, not with the declared length). While a
//!   receiver is paused it holds back what the transport still delivers, up to the *paused
//!   buffer limit* ([`DEFAULT_PAUSED_BUFFER_LIMIT`], at least one maximal message); past it the
//!   held bytes are dropped and the connection is closed (`lose_connection`), since a
//!   transport that honours `pause_producing` never gets there. Once the transport is
//!   disconnecting (or after `stop_producing`, or a framing error) received bytes are
//!   dropped, not buffered.
//! * **No rescanning.** A line receiver keeps a *scan offset*: no delimiter starts between the
//!   first unconsumed byte and the offset. Each search starts at the offset, and when it fails
//!   the offset moves to `len + 1 - delimiter.len()` (only a partial delimiter at the end is
//!   looked at again), so feeding a long line one byte at a time costs linear time, not
//!   quadratic. The search itself is `memchr` (one-byte delimiters) or `memchr::memmem`.
//! * **No recursion.** Messages are delivered by a loop, never by recursion: switching modes
//!   thousands of times in one chunk (`set_line_mode(extra)` from `raw_data_received`) or
//!   receiving a million lines in one chunk uses constant stack.
//! * **Pausing.** `pause_producing` (from a callback or through the handle) stops delivery at
//!   once: messages already buffered, in the current chunk or later ones, are held. Twisted's
//!   `resumeProducing` processes them in a later turn (`dataReceived(b"")` from a reactor
//!   call); here `resume_producing` delivers them **right after the callback that called it
//!   returns**: at the end of the running `line_received` (the delivery loop simply goes on),
//!   or at the end of the closure passed to the handle's `with`. No reactor is needed for it.
//! * **Disconnecting stops delivery.** Once the transport is disconnecting (the handler called
//!   `lose_connection`, say on a `QUIT` line) no further message is delivered, even if it is
//!   already buffered: Twisted's `[a, quit]` for `a\r\nquit\r\nb\r\n`.
//!
//! # Differences from Twisted
//!
//! The limits (`max_length`, the asymmetric line limits), the framings and the order of
//! deliveries are Twisted's. Where Twisted's behaviour depends on the reactor or on the
//! chunking, or leaves the parser in an odd state, this module differs, on purpose:
//!
//! * `resume_producing` delivers held messages when the current callback returns, not on a
//!   later reactor turn (see *Pausing* above).
//! * Bytes a `line_length_exceeded` hands back with `set_line_mode(extra)` are parsed at once;
//!   Twisted leaves them in the buffer until more data arrives.
//! * `line_received` returns nothing: where a Twisted protocol returns a true value to stop
//!   parsing, pause, stop producing, clear the line buffer or close the connection.
//! * `raw_data_received`'s default closes the connection (Twisted raises
//!   `NotImplementedError`, which closes it too).
//! * After `stop_producing` buffered bytes are dropped and `resume_producing` does nothing.
//! * `LineOnlyReceiver` uses `LineReceiver`'s limits, so whether a line is too long does not
//!   depend on where a read split its delimiter; after `line_length_exceeded` everything it
//!   buffered is dropped. It can be paused, as every receiver.
//! * String receivers can be paused too; their errors go to
//!   [`StringHandler::parse_error`] (default: close, as Twisted). After a too-long length
//!   prefix (`length_limit_exceeded`) or a netstring error nothing more is parsed (Twisted
//!   would report the same prefix again on the next read).
//! * Length prefixes of 1 to 8 bytes ([`IntPrefix`]); no legacy `recvd` attribute.

mod intn;
mod line;
mod line_only;
mod netstring;
mod receiver;
mod string;

pub use intn::{
    Int8StringReceiver, Int16StringReceiver, Int32StringReceiver, IntNStringReceiver, IntPrefix,
    StringTooLongError,
};
pub use line::{LineContext, LineHandle, LineHandler, LineReceiver, LineWire, Lines};
pub use line_only::{
    LineOnlyContext, LineOnlyHandle, LineOnlyHandler, LineOnlyReceiver, LineOnlyWire, LinesOnly,
};
pub use netstring::{Netstring, NetstringParseError, NetstringReceiver};
pub use receiver::{
    Decoded, Frame, FrameHandler, Framing, Receiver, ReceiverContext, ReceiverHandle,
};
pub use string::{
    StringContext, StringFraming, StringHandle, StringHandler, StringReceiver, StringWire,
};

/// The default line delimiter, `b"\r\n"` (Twisted's `LineReceiver.delimiter`).
///
/// ```
/// assert_eq!(twistor::protocols::basic::DEFAULT_DELIMITER, b"\r\n");
/// ```
pub const DEFAULT_DELIMITER: &[u8] = b"\r\n";

/// The default longest line, 16384 bytes (Twisted's `LineReceiver.MAX_LENGTH`).
///
/// ```
/// assert_eq!(twistor::protocols::basic::DEFAULT_LINE_MAX_LENGTH, 16384);
/// ```
#[doc(alias = "MAX_LENGTH")]
pub const DEFAULT_LINE_MAX_LENGTH: usize = 16384;

/// The default longest string, 99999 bytes (Twisted's `NetstringReceiver.MAX_LENGTH` and
/// `IntNStringReceiver.MAX_LENGTH`).
///
/// ```
/// assert_eq!(twistor::protocols::basic::DEFAULT_STRING_MAX_LENGTH, 99999);
/// ```
#[doc(alias = "MAX_LENGTH")]
pub const DEFAULT_STRING_MAX_LENGTH: usize = 99999;

/// The default bound on what a paused receiver holds back: 1 MiB (see the module docs). The
/// limit in force is never below one maximal message.
///
/// ```
/// assert_eq!(twistor::protocols::basic::DEFAULT_PAUSED_BUFFER_LIMIT, 1 << 20);
/// ```
pub const DEFAULT_PAUSED_BUFFER_LIMIT: usize = 1 << 20;

/// A receiver's flow control, shared by the contexts that can pause: `paused` (deliver
/// nothing for now) and `stopped` (deliver nothing, for good), each change passed on to the
/// transport.
#[derive(Default)]
struct Flow {
    /// `pause` (or `stop`) was called: deliver nothing.
    paused: std::cell::Cell<bool>,
    /// `stop` was called: drop everything, for good.
    stopped: std::cell::Cell<bool>,
}

impl Flow {
    /// Twisted's `pauseProducing`.
    fn pause(&self, transport: &crate::transport::Transport) {
        self.paused.set(true);
        transport.pause_producing();
    }

    /// Twisted's `resumeProducing`; does nothing once stopped.
    fn resume(&self, transport: &crate::transport::Transport) {
        if self.stopped.get() {
            return;
        }
        self.paused.set(false);
        transport.resume_producing();
    }

    /// Twisted's `stopProducing`: paused for good.
    fn stop(&self, transport: &crate::transport::Transport) {
        self.stopped.set(true);
        self.paused.set(true);
        transport.stop_producing();
    }

    /// True while paused (or stopped).
    fn paused(&self) -> bool {
        self.paused.get()
    }

    /// True once stopped.
    fn stopped(&self) -> bool {
        self.stopped.get()
    }
}

impl Default for Delimiter {
    fn default() -> Self {
        Delimiter {
            bytes: DEFAULT_DELIMITER.to_vec(),
            finder: memchr::memmem::Finder::new(DEFAULT_DELIMITER).into_owned(),
        }
    }
}

/// A line receiver was given an empty delimiter.
///
/// ```
/// use twistor::protocols::basic::{EmptyDelimiterError, LineContext, LineHandler, LineReceiver};
///
/// struct N;
/// impl LineHandler for N { fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {} }
/// let err = LineReceiver::new(N).with_delimiter(b"").err();
/// assert_eq!(err.map(|e| e.to_string()).as_deref(), Some("a line delimiter cannot be empty"));
/// # let _ = EmptyDelimiterError;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a line delimiter cannot be empty")]
pub struct EmptyDelimiterError;

/// A line delimiter and its searcher.
struct Delimiter {
    /// The delimiter's bytes; never empty.
    bytes: Vec<u8>,
    /// The searcher for delimiters longer than one byte.
    finder: memchr::memmem::Finder<'static>,
}

impl Delimiter {
    /// A delimiter of `bytes`, which must not be empty (every position would end a line).
    fn new(bytes: &[u8]) -> Result<Delimiter, EmptyDelimiterError> {
        if bytes.is_empty() {
            return Err(EmptyDelimiterError);
        }
        Ok(Delimiter {
            bytes: bytes.to_vec(),
            finder: memchr::memmem::Finder::new(bytes).into_owned(),
        })
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The index of the first delimiter in `hay`.
    fn find(&self, hay: &[u8]) -> Option<usize> {
        match self.bytes.as_slice() {
            [b] => memchr::memchr(*b, hay),
            _ => self.finder.find(hay),
        }
    }

    /// Where the next search starts when a search from `from` found nothing in `len` bytes:
    /// only a partial delimiter at the end needs looking at again.
    fn resume_at(&self, from: usize, len: usize) -> usize {
        from.max((len + 1).saturating_sub(self.len()))
    }
}

/// Gives memory back after a burst: a buffer whose capacity is far above what it holds is
/// shrunk, so one large chunk does not pin its size for the life of the connection.
fn trim(buf: &mut Vec<u8>) {
    const KEEP: usize = 64 * 1024;
    if buf.capacity() > KEEP && buf.len() < buf.capacity() / 4 {
        buf.shrink_to(KEEP.max(buf.len() * 2));
    }
}

/// Logs and drops what a paused receiver held past its limit, then closes the connection.
fn paused_overflow(transport: &crate::transport::Transport, held: usize, limit: usize) {
    log::warn!(
        target: "twistor::protocols::basic",
        "paused receiver held {held} bytes, over its limit of {limit}: closing the connection"
    );
    transport.lose_connection();
}

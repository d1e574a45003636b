//! Netstrings, `<length>:<payload>,` (djb's format; Twisted's `basic.NetstringReceiver`).
//!
//! The length is `0` or a decimal without leading zeros. It is checked digit by digit, so a
//! length over `max_length` is refused as soon as its digits say so, before the colon and
//! before any payload is stored (Twisted rejects over-long digit strings before converting
//! them, to the same effect).

use super::string::sealed::{Frame, Sealed};
use super::string::{Framing, StringReceiver};
use super::{StringHandler, StringTooLongError};
use crate::transport::Transport;

/// Why a netstring could not be parsed (Twisted's `NetstringParseError`). The receiver then
/// stops and (by default) closes the connection.
///
/// ```
/// use twistor::protocols::basic::NetstringParseError;
/// assert_eq!(
///     NetstringParseError::TooLong { max_length: 10 }.to_string(),
///     "netstring longer than the maximum of 10 bytes"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetstringParseError {
    /// The netstring does not start with a digit (`":abc,"`, `"abc,"`).
    #[error("netstring without a length")]
    MissingLength,
    /// The length has a leading zero (`"03:abc,"`).
    #[error("netstring length with a leading zero")]
    LeadingZero,
    /// The length is not followed by `:` (`"3abc,"`).
    #[error("netstring length not followed by a colon")]
    MissingColon,
    /// The payload is not followed by `,` (`"2:aaa,"`, `"0:a,"`).
    #[error("netstring payload not followed by a comma")]
    MissingComma,
    /// The length is over the receiver's `max_length`.
    #[error("netstring longer than the maximum of {max_length} bytes")]
    TooLong {
        /// The receiver's limit.
        max_length: usize,
    },
}

/// Where the parser is in the current netstring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the length: its value so far and its number of digits.
    Length { value: u64, digits: u32 },
    /// Reading `length` payload bytes (the first ones may be in `payload`).
    Payload { length: usize },
    /// The payload is in `payload`; the comma comes next.
    Comma,
    /// A netstring was just delivered; reset before the next step.
    Done,
}

/// The netstring framing (a parser and writer); see [`NetstringReceiver`].
///
/// ```
/// use twistor::protocols::basic::{Netstring, StringReceiver, StringContext, StringHandler};
///
/// struct N;
/// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
/// let r: StringReceiver<Netstring, N> = StringReceiver::<Netstring, N>::new(N);
/// assert_eq!(r.max_length(), 99999);
/// ```
#[derive(Debug)]
pub struct Netstring {
    /// The parser's state.
    state: State,
    /// A payload that arrived in pieces (at most `max_length` bytes).
    payload: Vec<u8>,
}

impl Sealed for Netstring {
    fn start() -> Self {
        Netstring {
            state: State::Length {
                value: 0,
                digits: 0,
            },
            payload: Vec::new(),
        }
    }

    fn step<'a>(&'a mut self, input: &'a [u8], max_length: usize) -> (usize, Option<Frame<'a>>) {
        if self.state == State::Done {
            self.payload.clear();
            self.state = State::Length {
                value: 0,
                digits: 0,
            };
        }
        let mut i = 0;
        loop {
            match self.state {
                State::Length {
                    mut value,
                    mut digits,
                } => {
                    while let Some(&b) = input.get(i) {
                        i += 1;
                        match b {
                            b'0'..=b'9' => {
                                if digits > 0 && value == 0 {
                                    return (
                                        i,
                                        Some(Frame::Error(NetstringParseError::LeadingZero)),
                                    );
                                }
                                let next = value
                                    .checked_mul(10)
                                    .and_then(|v| v.checked_add(u64::from(b - b'0')))
                                    .filter(|&v| v <= max_length as u64);
                                match next {
                                    Some(v) => value = v,
                                    None => {
                                        let e = NetstringParseError::TooLong { max_length };
                                        return (i, Some(Frame::Error(e)));
                                    }
                                }
                                digits += 1;
                            }
                            b':' if digits > 0 => {
                                // `value <= max_length`, so it fits a usize.
                                self.state = State::Payload {
                                    length: value as usize,
                                };
                                break;
                            }
                            _ if digits == 0 => {
                                return (i, Some(Frame::Error(NetstringParseError::MissingLength)));
                            }
                            _ => return (i, Some(Frame::Error(NetstringParseError::MissingColon))),
                        }
                    }
                    if let State::Length { .. } = self.state {
                        self.state = State::Length { value, digits };
                        return (i, None);
                    }
                }
                State::Payload { length } => {
                    let rest = &input[i..];
                    if self.payload.is_empty() && rest.len() > length {
                        // All here, comma included: deliver in place.
                        if rest[length] != b',' {
                            return (
                                i + length + 1,
                                Some(Frame::Error(NetstringParseError::MissingComma)),
                            );
                        }
                        self.state = State::Done;
                        return (i + length + 1, Some(Frame::String(&rest[..length])));
                    }
                    let take = (length - self.payload.len()).min(rest.len());
                    self.payload.extend_from_slice(&rest[..take]);
                    i += take;
                    if self.payload.len() < length {
                        return (i, None);
                    }
                    self.state = State::Comma;
                }
                State::Comma => {
                    let Some(&b) = input.get(i) else {
                        return (i, None);
                    };
                    if b != b',' {
                        return (i + 1, Some(Frame::Error(NetstringParseError::MissingComma)));
                    }
                    self.state = State::Done;
                    return (i + 1, Some(Frame::String(&self.payload)));
                }
                State::Done => return (i, None),
            }
        }
    }

    fn send(transport: &Transport, string: &[u8]) -> Result<(), StringTooLongError> {
        let head = format!("{}:", string.len());
        transport.write_sequence(&[head.as_bytes(), string, b","]);
        Ok(())
    }
}

impl Framing for Netstring {}

/// A netstring protocol (Twisted's `NetstringReceiver`): delivers the payloads of
/// `<length>:<payload>,` frames to a [`StringHandler`]; `send_string` writes one. Any error
/// (bad length, missing `:` or `,`, a length over `max_length`, 99999 by default) goes to
/// [`StringHandler::parse_error`], which closes the connection unless overridden, and nothing
/// more is parsed.
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
/// st.deliver(b"4:1:a,,1");
/// st.deliver(b"2:hello worl");
/// st.deliver(b"d!,");
/// assert_eq!(h.with(|r, _| r.handler().0.clone()).unwrap(), [b"1:a,".to_vec(), b"hello world!".to_vec()]);
/// ```
pub type NetstringReceiver<H> = StringReceiver<Netstring, H>;

impl<H: StringHandler> StringReceiver<Netstring, H> {
    /// A netstring receiver delivering to `handler`.
    ///
    /// ```
    /// use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};
    ///
    /// struct N;
    /// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
    /// assert_eq!(NetstringReceiver::new(N).max_length(), 99999);
    /// ```
    pub fn new(handler: H) -> Self {
        StringReceiver::from_handler(handler)
    }
}

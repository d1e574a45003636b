//! Netstrings, `<length>:<payload>,` (djb's format; Twisted's `basic.NetstringReceiver`).
//!
//! The length is `0` or a decimal without leading zeros. It is checked digit by digit, so a
//! length over `max_length` is refused as soon as its digits say so, before the colon and
//! before any payload is stored (Twisted rejects over-long digit strings before converting
//! them, to the same effect).

use super::receiver::{Decoded, Frame, Framing};
use super::string::{StringFraming, StringReceiver, StringWire};
use super::{DEFAULT_STRING_MAX_LENGTH, StringTooLongError};
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
#[non_exhaustive]
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

/// The netstring framing; see [`NetstringReceiver`].
///
/// ```
/// use twistor::protocols::basic::{Netstring, StringReceiver, StringContext, StringHandler};
///
/// struct N;
/// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
/// let r: StringReceiver<Netstring, N> = StringReceiver::<Netstring, N>::new(N);
/// assert_eq!(r.max_length(), 99999);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Netstring;

/// A fatal frame for a malformed netstring found in the first `consumed` bytes.
fn invalid(consumed: usize, error: NetstringParseError) -> Decoded<'static> {
    Decoded::Frame {
        consumed,
        frame: Frame::Invalid(error),
    }
}

impl Framing for Netstring {
    type Wire = StringWire;

    fn wire(&self) -> StringWire {
        StringWire { encode: send }
    }

    fn default_max_length() -> usize {
        DEFAULT_STRING_MAX_LENGTH
    }

    #[inline]
    fn decode<'a>(
        &self,
        _wire: &StringWire,
        buf: &'a [u8],
        _scan: usize,
        max_length: usize,
    ) -> Decoded<'a> {
        let (mut value, mut digits, mut i) = (0u64, 0u32, 0);
        loop {
            let Some(&b) = buf.get(i) else {
                return Decoded::NeedMore {
                    scan: 0,
                    frame_len: None,
                };
            };
            i += 1;
            match b {
                b'0'..=b'9' => {
                    if digits > 0 && value == 0 {
                        return invalid(i, NetstringParseError::LeadingZero);
                    }
                    let next = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(b - b'0')))
                        .filter(|&v| v <= max_length as u64);
                    match next {
                        Some(v) => value = v,
                        None => return invalid(i, NetstringParseError::TooLong { max_length }),
                    }
                    digits += 1;
                }
                b':' if digits > 0 => break,
                _ if digits == 0 => return invalid(i, NetstringParseError::MissingLength),
                _ => return invalid(i, NetstringParseError::MissingColon),
            }
        }
        // `value <= max_length`, so it fits a usize.
        let length = value as usize;
        let rest = &buf[i..];
        match rest.get(length) {
            None => Decoded::NeedMore {
                scan: 0,
                // A peer-chosen length: no overflow even with an unbounded `max_length`.
                frame_len: length.checked_add(i + 1),
            },
            Some(b',') => Decoded::Frame {
                consumed: i + length + 1,
                frame: Frame::Message(&rest[..length]),
            },
            Some(_) => invalid(i + length + 1, NetstringParseError::MissingComma),
        }
    }

    fn overhead(_wire: &StringWire) -> usize {
        // The longest length prefix (20 digits and a colon) and the comma.
        22
    }

    const IN_PLACE: bool = true;
}

impl StringFraming for Netstring {}

/// Writes `string` as a netstring.
fn send(transport: &Transport, string: &[u8]) -> Result<(), StringTooLongError> {
    let head = format!("{}:", string.len());
    transport.write_sequence(&[head.as_bytes(), string, b","]);
    Ok(())
}

/// A netstring protocol (Twisted's `NetstringReceiver`): delivers the payloads of
/// `<length>:<payload>,` frames to a [`StringHandler`](super::StringHandler); `send_string` writes one. Any error
/// (bad length, missing `:` or `,`, a length over `max_length`, 99999 by default) goes to
/// [`StringHandler::parse_error`](super::StringHandler::parse_error), which closes the connection unless overridden, and nothing
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

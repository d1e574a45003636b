//! Length-prefixed strings: an `N`-byte big-endian unsigned length, then the payload
//! (Twisted's `IntNStringReceiver` and its `Int8`/`Int16`/`Int32` subclasses).
//!
//! The declared length is checked against `max_length` as soon as the prefix is complete, so
//! an oversize string is refused before any of it is stored, and never delivered even when it
//! is all there (Twisted's `test_longStringNotDelivered`).

use super::DEFAULT_STRING_MAX_LENGTH;
use super::receiver::{Decoded, Frame, Framing};
use super::string::{StringFraming, StringReceiver, StringWire};
use crate::transport::Transport;

/// A string too long for the length prefix (Twisted's `StringTooLongError`): `send_string`
/// of 256 bytes or more with a one-byte prefix, say.
///
/// ```
/// use twistor::protocols::basic::StringTooLongError;
/// let e = StringTooLongError { length: 256, prefix_bytes: 1 };
/// assert_eq!(e.to_string(), "a string of 256 bytes does not fit a 1-byte length prefix");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a string of {length} bytes does not fit a {prefix_bytes}-byte length prefix")]
pub struct StringTooLongError {
    /// The string's length.
    pub length: usize,
    /// The prefix's size in bytes.
    pub prefix_bytes: usize,
}

/// The `N`-byte length-prefix framing, `N` from 1 to 8; see [`IntNStringReceiver`].
///
/// ```
/// use twistor::protocols::basic::{IntPrefix, StringReceiver, StringContext, StringHandler};
///
/// struct N;
/// impl StringHandler for N { fn string_received(&mut self, _: &StringContext<Self>, _: &[u8]) {} }
/// // A 3-byte prefix, which Twisted does not ship:
/// let r = StringReceiver::<IntPrefix<3>, N>::new(N);
/// assert_eq!(r.max_length(), 99999);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct IntPrefix<const N: usize>;

impl<const N: usize> Framing for IntPrefix<N> {
    type Wire = StringWire;

    fn wire(&self) -> StringWire {
        const { assert!(N >= 1 && N <= 8, "a length prefix has 1 to 8 bytes") };
        StringWire { encode: send::<N> }
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
        let Some((prefix, rest)) = buf.split_at_checked(N) else {
            return Decoded::NeedMore {
                scan: 0,
                frame_len: None,
            };
        };
        let length = prefix
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        if length > max_length as u64 {
            return Decoded::Frame {
                consumed: N,
                frame: Frame::LengthTooLong(length),
            };
        }
        // `length <= max_length`, so it fits a usize.
        match rest.get(..length as usize) {
            Some(string) => Decoded::Frame {
                consumed: N + string.len(),
                frame: Frame::Message(string),
            },
            None => Decoded::NeedMore {
                scan: 0,
                // A peer-chosen length: no overflow even with an unbounded `max_length`.
                frame_len: (length as usize).checked_add(N),
            },
        }
    }

    fn overhead(_wire: &StringWire) -> usize {
        N
    }

    const IN_PLACE: bool = true;
}

impl<const N: usize> StringFraming for IntPrefix<N> {}

/// Writes `string` with an `N`-byte prefix.
fn send<const N: usize>(transport: &Transport, string: &[u8]) -> Result<(), StringTooLongError> {
    let length = string.len() as u64;
    if length
        .checked_shr(8 * N as u32)
        .is_some_and(|high| high != 0)
    {
        return Err(StringTooLongError {
            length: string.len(),
            prefix_bytes: N,
        });
    }
    let prefix = length.to_be_bytes();
    transport.write_sequence(&[&prefix[8 - N..], string]);
    Ok(())
}

/// A length-prefixed string protocol with an `N`-byte big-endian length (Twisted's
/// `IntNStringReceiver`): delivers payloads to a [`StringHandler`](super::StringHandler); `send_string` writes one
/// (or fails with [`StringTooLongError`]). A declared length over `max_length` (99999 by
/// default) goes to [`StringHandler::length_limit_exceeded`](super::StringHandler::length_limit_exceeded), which closes the connection
/// unless overridden, and nothing more is parsed.
///
/// ```
/// use twistor::protocols::basic::{IntNStringReceiver, StringContext, StringHandler};
/// use twistor::testing::StringTransport;
///
/// struct Echo;
/// impl StringHandler for Echo {
///     fn string_received(&mut self, cx: &StringContext<Self>, s: &[u8]) { let _ = cx.send_string(s); }
/// }
/// let st = StringTransport::new();
/// st.connect(IntNStringReceiver::<2, _>::new(Echo));
/// st.deliver(b"\0\x03abc");
/// assert_eq!(st.value(), b"\0\x03abc");
/// ```
pub type IntNStringReceiver<const N: usize, H> = StringReceiver<IntPrefix<N>, H>;

/// Strings with a one-byte length prefix (Twisted's `Int8StringReceiver`).
///
/// ```
/// use twistor::protocols::basic::{Int8StringReceiver, StringContext, StringHandler};
/// use twistor::testing::StringTransport;
///
/// struct Echo;
/// impl StringHandler for Echo {
///     fn string_received(&mut self, cx: &StringContext<Self>, s: &[u8]) { let _ = cx.send_string(s); }
/// }
/// let st = StringTransport::new();
/// st.connect(Int8StringReceiver::new(Echo));
/// st.deliver(b"\x02hi");
/// assert_eq!(st.value(), b"\x02hi");
/// ```
pub type Int8StringReceiver<H> = IntNStringReceiver<1, H>;

/// Strings with a two-byte big-endian length prefix (Twisted's `Int16StringReceiver`).
///
/// ```
/// use twistor::protocols::basic::{Int16StringReceiver, StringContext, StringHandler};
/// use twistor::testing::StringTransport;
///
/// struct Echo;
/// impl StringHandler for Echo {
///     fn string_received(&mut self, cx: &StringContext<Self>, s: &[u8]) { let _ = cx.send_string(s); }
/// }
/// let st = StringTransport::new();
/// st.connect(Int16StringReceiver::new(Echo));
/// st.deliver(b"\0\x02hi");
/// assert_eq!(st.value(), b"\0\x02hi");
/// ```
pub type Int16StringReceiver<H> = IntNStringReceiver<2, H>;

/// Strings with a four-byte big-endian length prefix (Twisted's `Int32StringReceiver`).
///
/// ```
/// use twistor::protocols::basic::{Int32StringReceiver, StringContext, StringHandler};
/// use twistor::testing::StringTransport;
///
/// struct Echo;
/// impl StringHandler for Echo {
///     fn string_received(&mut self, cx: &StringContext<Self>, s: &[u8]) { let _ = cx.send_string(s); }
/// }
/// let st = StringTransport::new();
/// st.connect(Int32StringReceiver::new(Echo));
/// st.deliver(b"\0\0\0\x02hi");
/// assert_eq!(st.value(), b"\0\0\0\x02hi");
/// ```
pub type Int32StringReceiver<H> = IntNStringReceiver<4, H>;

//! String framings (netstrings, length prefixes): what they share. One handler trait
//! ([`StringHandler`]), one context ([`StringContext`]) and one handle ([`StringHandle`]) for
//! every string framing, so a handler works with any of them.

use super::StringTooLongError;
use super::netstring::NetstringParseError;
use super::receiver::{Frame, FrameHandler, Framing, Receiver, ReceiverContext, ReceiverHandle};
use crate::Failure;
use crate::transport::Transport;

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
    #[doc(alias = "connectionMade")]
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
    #[doc(alias = "stringReceived")]
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
    #[doc(alias = "lengthLimitExceeded")]
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
    #[doc(alias = "connectionLost")]
    fn connection_lost(&mut self, _cx: &StringContext<Self>, _reason: Failure) {}
}

/// A framing of whole strings: [`Netstring`](super::Netstring) or
/// [`IntPrefix`](super::IntPrefix). Every [`StringHandler`] can receive from any of them.
///
/// ```
/// use twistor::protocols::basic::{IntPrefix, Netstring, StringFraming};
/// fn framed<F: StringFraming>() {}
/// framed::<Netstring>();
/// framed::<IntPrefix<4>>();
/// ```
pub trait StringFraming: Framing<Wire = StringWire> {}

/// A string receiver's settings: how `send_string` frames a string.
///
/// ```
/// use twistor::protocols::basic::{Framing, Netstring};
/// let _wire = Netstring.wire();
/// ```
pub struct StringWire {
    pub(super) encode: fn(&Transport, &[u8]) -> Result<(), StringTooLongError>,
}

/// A receiver of whole strings in the framing `F` (see [`Receiver`]).
pub type StringReceiver<F, H> = Receiver<F, H>;

/// What a [`StringHandler`]'s callbacks can reach: the transport, `send_string`, pausing, and
/// a [`StringHandle`] for later work (the receiver context of every string framing).
pub type StringContext<H> = ReceiverContext<StringWire, H>;

/// A weak handle on a connected string receiver's handler, whatever its framing (see
/// [`ReceiverHandle`]).
pub type StringHandle<H> = ReceiverHandle<StringWire, H>;

impl<F: StringFraming, H: StringHandler> FrameHandler<F> for H {
    fn connection_made(&mut self, cx: &StringContext<Self>) {
        StringHandler::connection_made(self, cx)
    }
    #[inline]
    fn frame_received(&mut self, cx: &StringContext<Self>, frame: Frame<'_>) {
        match frame {
            Frame::Message(string) => self.string_received(cx, string),
            Frame::LengthTooLong(length) => self.length_limit_exceeded(cx, length),
            Frame::Invalid(error) => self.parse_error(cx, error),
            Frame::Raw(_) | Frame::LineTooLong(_) => {}
        }
    }
    fn connection_lost(&mut self, cx: &StringContext<Self>, reason: Failure) {
        StringHandler::connection_lost(self, cx, reason)
    }
}

impl<H> ReceiverContext<StringWire, H> {
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
    #[doc(alias = "sendString")]
    pub fn send_string(&self, string: &[u8]) -> Result<(), StringTooLongError> {
        (self.wire.encode)(self.transport(), string)
    }
}

//! The small Internet services (Twisted's `twisted.protocols.wire`): [`Echo`] (RFC 862),
//! [`Discard`] (RFC 863), [`Chargen`] (RFC 864), [`Qotd`] (RFC 865), [`Daytime`] (RFC 867).
//!
//! [`Chargen`] writes forever, as a *pull* producer: the transport asks for one more block
//! each time its write buffer is empty, so a slow reader slows it down and the buffer never
//! holds more than one block.

use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::protocol::{Context, Handle, Protocol};
use crate::transport::Producer;

/// Writes back every byte it receives (Twisted's `wire.Echo`).
///
/// ```
/// use twistor::protocols::wire::Echo;
/// use twistor::testing::StringTransport;
/// let st = StringTransport::new();
/// st.connect(Echo);
/// st.deliver(b"hello");
/// assert_eq!(st.value(), b"hello");
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        cx.transport().write(data);
    }
}

/// Reads and drops everything (Twisted's `wire.Discard`).
///
/// ```
/// use twistor::protocols::wire::Discard;
/// use twistor::testing::StringTransport;
/// let st = StringTransport::new();
/// st.connect(Discard);
/// st.deliver(b"into the void");
/// assert_eq!(st.value(), b"");
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl Protocol for Discard {
    fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
}

/// The pattern Chargen repeats: the 95 printable ASCII characters, from `@` (Twisted's
/// `Chargen.noise`).
///
/// ```
/// let noise = twistor::protocols::wire::CHARGEN_NOISE;
/// assert_eq!(noise.len(), 95);
/// assert!(noise.starts_with(b"@ABC") && noise.ends_with(b"=>?"));
/// ```
pub const CHARGEN_NOISE: &[u8] =
    b"@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~ !\"#$%&'()*+,-./0123456789:;<=>?";

/// Copies of the noise per write: one write per emptied buffer, so each should be worth a
/// system call; the byte stream is the same as Twisted's one copy per write.
const NOISE_PER_WRITE: usize = 64;

/// Writes [`CHARGEN_NOISE`] over and over, forever, ignoring what it receives (Twisted's
/// `wire.Chargen`). It registers itself with its transport as a pull producer: one block
/// per emptied write buffer.
///
/// ```
/// use twistor::protocols::wire::{Chargen, CHARGEN_NOISE};
/// use twistor::testing::StringTransport;
///
/// let st = StringTransport::new();
/// st.connect(Chargen::default());
/// let (producer, streaming) = st.producer().unwrap();
/// assert!(!streaming);
/// producer.resume_producing(); // the transport's buffer is empty: one block
/// let first = st.value();
/// assert!(first.starts_with(CHARGEN_NOISE));
/// producer.resume_producing(); // and again
/// assert_eq!(st.value().len(), 2 * first.len());
/// ```
#[derive(Debug, Default)]
pub struct Chargen {
    block: Vec<u8>,
}

/// Chargen's producer: a weak handle, so the transport holding it keeps nothing alive.
struct ChargenProducer(Handle<Chargen>);

impl Producer for ChargenProducer {
    fn pause_producing(&self) {}
    fn resume_producing(&self) {
        self.0.with(|c, cx| cx.transport().write(&c.block));
    }
    fn stop_producing(&self) {}
}

impl Protocol for Chargen {
    fn connection_made(&mut self, cx: &Context<Self>) {
        self.block = CHARGEN_NOISE.repeat(NOISE_PER_WRITE);
        let producer = Rc::new(ChargenProducer(cx.handle()));
        if let Err(e) = cx.transport().register_producer(producer, false) {
            log::warn!(target: "twistor::protocols::wire", "chargen: {e}");
            cx.transport().lose_connection();
        }
    }
    fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
}

/// Writes one quote, then closes (Twisted's `wire.QOTD`). The default quote is Twisted's.
///
/// ```
/// use twistor::protocols::wire::Qotd;
/// use twistor::testing::StringTransport;
/// let st = StringTransport::new();
/// st.connect(Qotd::default());
/// assert_eq!(st.value(), b"An apple a day keeps the doctor away.\r\n");
/// assert!(st.disconnecting());
/// ```
#[doc(alias = "QOTD")]
#[derive(Debug, Clone)]
pub struct Qotd {
    quote: Vec<u8>,
}

impl Qotd {
    /// Serves `quote` (Twisted's `getQuote` override), sent as given.
    ///
    /// ```
    /// use twistor::protocols::wire::Qotd;
    /// use twistor::testing::StringTransport;
    /// let st = StringTransport::new();
    /// st.connect(Qotd::new(b"Be kind.\r\n"));
    /// assert_eq!(st.value(), b"Be kind.\r\n");
    /// ```
    pub fn new(quote: &[u8]) -> Qotd {
        Qotd {
            quote: quote.to_vec(),
        }
    }
}

impl Default for Qotd {
    fn default() -> Self {
        Qotd::new(b"An apple a day keeps the doctor away.\r\n")
    }
}

impl Protocol for Qotd {
    fn connection_made(&mut self, cx: &Context<Self>) {
        cx.transport().write(&self.quote);
        cx.transport().lose_connection();
    }
    fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
}

/// Writes the date and time in UTC, as C's `asctime` (`Mon Nov 30 00:15:52 2026`), then
/// `\r\n`, then closes (Twisted's `wire.Daytime`).
///
/// ```
/// use twistor::protocols::wire::Daytime;
/// use twistor::testing::StringTransport;
/// let st = StringTransport::new();
/// st.connect(Daytime);
/// let text = st.value();
/// assert_eq!(text.len(), 26);
/// assert!(text.ends_with(b"\r\n"));
/// assert!(st.disconnecting());
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Daytime;

impl Protocol for Daytime {
    fn connection_made(&mut self, cx: &Context<Self>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let line = format!("{}\r\n", asctime(now));
        cx.transport().write(line.as_bytes());
        cx.transport().lose_connection();
    }
    fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
}

/// `secs` since the Unix epoch as C's `asctime(gmtime(secs))`, without the newline: `Www Mmm
/// dd hh:mm:ss yyyy`, the day padded with a space.
///
/// ```
/// use twistor::protocols::wire::asctime;
/// assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
/// assert_eq!(asctime(951_782_400), "Tue Feb 29 00:00:00 2000");
/// assert_eq!(asctime(1_795_997_752), "Mon Nov 30 00:15:52 2026");
/// ```
pub fn asctime(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    let weekday = DAYS[(days % 7) as usize];
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm), in eras of 400
    // years from 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{weekday} {} {day:>2} {h:02}:{m:02}:{s:02} {year}",
        MONTHS[(month - 1) as usize]
    )
}

//! Handlers shared by the `protocols::basic` tests (included with `#[path]`).
#![allow(dead_code)]

use twistor::Clock;
use twistor::protocols::basic::{
    LineContext, LineHandler, LineOnlyContext, LineOnlyHandler, NetstringParseError, StringContext,
    StringHandler,
};
use twistor::testing::StringTransport;

/// Twisted's `LineTester`, written from its described behaviour:
/// * `len N` sets the length of the next raw block;
/// * an empty line enters raw mode; raw bytes (up to the length) are appended to the last
///   received entry, then the rest goes back to line mode;
/// * `pause` pauses and resumes on the next clock turn; `rawpause` also enters raw mode and
///   adds an empty entry;
/// * `stop` stops producing;
/// * a too-long run is dropped up to `max_length + 1` bytes and the rest is parsed again.
pub struct Tester {
    pub received: Vec<Vec<u8>>,
    pub length: usize,
    pub clock: Clock,
}

impl Tester {
    pub fn new(clock: &Clock) -> Tester {
        Tester {
            received: Vec::new(),
            length: 0,
            clock: clock.clone(),
        }
    }

    fn resume_next_turn(&self, cx: &LineContext<Self>) {
        let me = cx.handle();
        self.clock.call_later(0.0, move || {
            me.with(|_, cx| cx.resume_producing());
        });
    }
}

impl LineHandler for Tester {
    fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
        self.received.push(line.to_vec());
        match line {
            b"" => cx.set_raw_mode(),
            b"pause" => {
                cx.pause_producing();
                self.resume_next_turn(cx);
            }
            b"rawpause" => {
                cx.pause_producing();
                cx.set_raw_mode();
                self.received.push(Vec::new());
                self.resume_next_turn(cx);
            }
            b"stop" => cx.stop_producing(),
            _ => {
                if let Some(n) = line.strip_prefix(b"len ") {
                    self.length = std::str::from_utf8(n)
                        .ok()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                }
            }
        }
    }

    fn raw_data_received(&mut self, cx: &LineContext<Self>, data: &[u8]) {
        let n = self.length.min(data.len());
        let (mine, rest) = data.split_at(n);
        self.length -= n;
        if let Some(last) = self.received.last_mut() {
            last.extend_from_slice(mine);
        }
        if self.length == 0 {
            cx.set_line_mode(rest);
        }
    }

    fn line_length_exceeded(&mut self, cx: &LineContext<Self>, buffer: &[u8]) {
        let keep = cx.max_length() + 1;
        if buffer.len() > keep {
            cx.set_line_mode(&buffer[keep..]);
        }
    }
}

/// What a line handler saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    Line(Vec<u8>),
    /// `line_length_exceeded` (payload not recorded: it depends on the chunking).
    Exceeded,
}

/// Records lines; `line_length_exceeded` is recorded and closes the connection.
#[derive(Default)]
pub struct Lines {
    pub events: Vec<LineEvent>,
    pub exceeded: Vec<Vec<u8>>,
}

impl LineHandler for Lines {
    fn line_received(&mut self, _cx: &LineContext<Self>, line: &[u8]) {
        self.events.push(LineEvent::Line(line.to_vec()));
    }
    fn line_length_exceeded(&mut self, cx: &LineContext<Self>, buffer: &[u8]) {
        self.events.push(LineEvent::Exceeded);
        self.exceeded.push(buffer.to_vec());
        cx.transport().lose_connection();
    }
}

impl LineOnlyHandler for Lines {
    fn line_received(&mut self, _cx: &LineOnlyContext<Self>, line: &[u8]) {
        self.events.push(LineEvent::Line(line.to_vec()));
    }
    fn line_length_exceeded(&mut self, cx: &LineOnlyContext<Self>, line: &[u8]) {
        self.events.push(LineEvent::Exceeded);
        self.exceeded.push(line.to_vec());
        cx.transport().lose_connection();
    }
}

/// Records lines and what `line_length_exceeded` got, without closing
/// (Twisted's `LineReceiverLineLengthExceededTests` protocol).
#[derive(Default)]
pub struct LongLines {
    pub lines: Vec<Vec<u8>>,
    pub long_lines: Vec<Vec<u8>>,
}

impl LineHandler for LongLines {
    fn line_received(&mut self, _cx: &LineContext<Self>, line: &[u8]) {
        self.lines.push(line.to_vec());
    }
    fn line_length_exceeded(&mut self, _cx: &LineContext<Self>, buffer: &[u8]) {
        self.long_lines.push(buffer.to_vec());
    }
}

/// What a string handler saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringEvent {
    String(Vec<u8>),
    TooLong(u64),
    Error(NetstringParseError),
}

/// Records strings and errors (the defaults then close the connection). With `pause_each`,
/// pauses after each string and resumes on the next clock turn.
#[derive(Default)]
pub struct Strings {
    pub events: Vec<StringEvent>,
    pub pause_each: Option<Clock>,
}

impl StringHandler for Strings {
    fn string_received(&mut self, cx: &StringContext<Self>, s: &[u8]) {
        self.events.push(StringEvent::String(s.to_vec()));
        if let Some(clock) = &self.pause_each {
            cx.pause_producing();
            let me = cx.handle();
            clock.call_later(0.0, move || {
                me.with(|_, cx| cx.resume_producing());
            });
        }
    }
    fn length_limit_exceeded(&mut self, cx: &StringContext<Self>, length: u64) {
        self.events.push(StringEvent::TooLong(length));
        cx.transport().lose_connection();
    }
    fn parse_error(&mut self, cx: &StringContext<Self>, error: NetstringParseError) {
        self.events.push(StringEvent::Error(error));
        cx.transport().lose_connection();
    }
}

/// Delivers `data` to the transport's protocol in packets of `size` bytes.
pub fn deliver_in(st: &StringTransport, data: &[u8], size: usize) {
    for chunk in data.chunks(size.max(1)) {
        st.deliver(chunk);
    }
}

/// Delivers `data` cut at the given points (sorted or not, out-of-range ones ignored).
pub fn deliver_cut(st: &StringTransport, data: &[u8], cuts: &[usize]) {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.push(0);
    cuts.push(data.len());
    cuts.sort_unstable();
    cuts.dedup();
    for w in cuts.windows(2) {
        st.deliver(&data[w[0]..w[1]]);
    }
}

/// Runs the clock's zero-delay calls until none are left (bounded).
pub fn settle(clock: &Clock) {
    for _ in 0..10_000 {
        if clock.get_delayed_calls().is_empty() {
            return;
        }
        clock.advance(0.0);
    }
    panic!("the clock never settled");
}

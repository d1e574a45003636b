//! What the fuzz targets share: cutting the input into arbitrary chunks, and handlers that
//! record what they see.
#![allow(dead_code)]

use twistor::error::ConnectionDone;
use twistor::protocols::basic::{
    LineContext, LineHandler, LineOnlyContext, LineOnlyHandler, NetstringParseError, StringContext,
    StringHandler,
};
use twistor::testing::StringTransport;
use twistor::Failure;

/// Splits a fuzz input into a configuration byte, chunk sizes and the data: the first byte
/// configures the receiver, the second seeds the chunk sizes, the rest is the stream.
pub struct Input<'a> {
    pub config: u8,
    pub seed: u8,
    pub data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn parse(raw: &'a [u8]) -> Option<Input<'a>> {
        match raw {
            [config, seed, data @ ..] => Some(Input {
                config: *config,
                seed: *seed,
                data,
            }),
            _ => None,
        }
    }
}

/// Delivers `data` in chunks of 1 to 16 bytes, sizes from a small PRNG seeded with `seed`.
pub fn deliver_chunked(st: &StringTransport, data: &[u8], seed: u8) {
    let mut state = u32::from(seed) | 0x100;
    let mut rest = data;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % 16 + 1).min(rest.len());
        st.deliver(&rest[..n]);
        rest = &rest[n..];
    }
}

/// Ends the connection: `StringTransport` and its protocol refer to each other until
/// `connection_lost`, so without this every run would leak them.
pub fn finish(st: &StringTransport) {
    st.connection_lost(Failure::new(ConnectionDone));
}

/// What a handler saw (too-long payloads are left out: they depend on the chunking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Line(Vec<u8>),
    Raw(Vec<u8>),
    Exceeded,
    String(Vec<u8>),
    TooLong(u64),
    Error(NetstringParseError),
}

/// Records everything; lines starting with `raw` switch to raw mode for the next 4 bytes.
#[derive(Default)]
pub struct Recorder {
    pub events: Vec<Event>,
    raw_left: usize,
}

impl Recorder {
    /// Raw data arrives in any chunking: merge consecutive raw events.
    fn raw(&mut self, data: &[u8]) {
        if let Some(Event::Raw(last)) = self.events.last_mut() {
            last.extend_from_slice(data);
        } else {
            self.events.push(Event::Raw(data.to_vec()));
        }
    }
}

impl LineHandler for Recorder {
    fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
        self.events.push(Event::Line(line.to_vec()));
        if line.starts_with(b"raw") {
            self.raw_left = 4;
            cx.set_raw_mode();
        }
    }
    fn raw_data_received(&mut self, cx: &LineContext<Self>, data: &[u8]) {
        let n = self.raw_left.min(data.len());
        self.raw(&data[..n]);
        self.raw_left -= n;
        if self.raw_left == 0 {
            cx.set_line_mode(&data[n..]);
        }
    }
    fn line_length_exceeded(&mut self, cx: &LineContext<Self>, _buffer: &[u8]) {
        self.events.push(Event::Exceeded);
        cx.transport().lose_connection();
    }
}

impl LineOnlyHandler for Recorder {
    fn line_received(&mut self, _cx: &LineOnlyContext<Self>, line: &[u8]) {
        self.events.push(Event::Line(line.to_vec()));
    }
    fn line_length_exceeded(&mut self, cx: &LineOnlyContext<Self>, _line: &[u8]) {
        self.events.push(Event::Exceeded);
        cx.transport().lose_connection();
    }
}

impl StringHandler for Recorder {
    fn string_received(&mut self, _cx: &StringContext<Self>, s: &[u8]) {
        self.events.push(Event::String(s.to_vec()));
    }
    fn length_limit_exceeded(&mut self, cx: &StringContext<Self>, length: u64) {
        self.events.push(Event::TooLong(length));
        cx.transport().lose_connection();
    }
    fn parse_error(&mut self, cx: &StringContext<Self>, error: NetstringParseError) {
        self.events.push(Event::Error(error));
        cx.transport().lose_connection();
    }
}

//! LineReceiver: arbitrary bytes in arbitrary chunks never panic, and give the same events as
//! the same bytes in one chunk.
#![no_main]

#[path = "common.rs"]
mod common;

use common::{deliver_chunked, Input, Recorder};
use libfuzzer_sys::fuzz_target;
use twistor::protocols::basic::LineReceiver;
use twistor::testing::StringTransport;

const DELIMITERS: [&[u8]; 4] = [b"\r\n", b"\n", b"\0", b"<END>"];

fn run(config: u8, data: &[u8], seed: Option<u8>) -> Vec<common::Event> {
    let st = StringTransport::new();
    let h = st.connect(
        LineReceiver::new(Recorder::default())
            .with_delimiter(DELIMITERS[usize::from(config & 3)])
            .expect("the fuzz delimiters are not empty")
            .with_max_length(usize::from(config >> 2)),
    );
    match seed {
        Some(seed) => deliver_chunked(&st, data, seed),
        None => st.deliver(data),
    }
    let events = h
        .with(|r, _| r.handler().events.clone())
        .unwrap_or_default();
    common::finish(&st);
    events
}

fuzz_target!(|raw: &[u8]| {
    let Some(input) = Input::parse(raw) else {
        return;
    };
    let chunked = run(input.config, input.data, Some(input.seed));
    let whole = run(input.config, input.data, None);
    assert_eq!(chunked, whole);
});

//! Int8/Int16/Int32StringReceiver: arbitrary bytes in arbitrary chunks never panic, and give
//! the same events as the same bytes in one chunk.
#![no_main]

#[path = "common.rs"]
mod common;

use common::{deliver_chunked, Event, Input, Recorder};
use libfuzzer_sys::fuzz_target;
use twistor::protocols::basic::IntNStringReceiver;
use twistor::testing::StringTransport;

fn run<const N: usize>(max_length: usize, data: &[u8], seed: Option<u8>) -> Vec<Event> {
    let st = StringTransport::new();
    let h = st
        .connect(IntNStringReceiver::<N, _>::new(Recorder::default()).with_max_length(max_length));
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

fn check<const N: usize>(input: &Input) {
    let max_length = usize::from(input.config >> 2) * 4;
    let chunked = run::<N>(max_length, input.data, Some(input.seed));
    let whole = run::<N>(max_length, input.data, None);
    assert_eq!(chunked, whole);
}

fuzz_target!(|raw: &[u8]| {
    let Some(input) = Input::parse(raw) else {
        return;
    };
    match input.config & 3 {
        0 => check::<1>(&input),
        1 => check::<2>(&input),
        _ => check::<4>(&input),
    }
});

//! `protocols::basic` properties: for every parser, any chunking of the same input gives the
//! same results as delivering it in one piece.

#[path = "util/basic_protocols.rs"]
mod helpers;

use helpers::{Lines, Strings, Tester, deliver_cut, settle};
use proptest::prelude::*;
use twistor::Clock;
use twistor::protocols::basic::{
    IntNStringReceiver, LineOnlyReceiver, LineReceiver, NetstringReceiver, StringReceiver,
};
use twistor::testing::StringTransport;

const DELIMITERS: [&[u8]; 3] = [b"\n", b"\r\n", b"END"];

/// Input for the `Tester`: its commands, plain text, partial delimiters and long runs.
fn tester_input() -> impl Strategy<Value = (usize, Vec<u8>)> {
    (0..DELIMITERS.len()).prop_flat_map(|d| {
        let delimiter = DELIMITERS[d];
        let token = prop_oneof![
            Just(b"a".to_vec()),
            Just(b"bc".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"EN".to_vec()),
            Just(b"len 3".to_vec()),
            Just(b"len 0".to_vec()),
            Just(b"pause".to_vec()),
            Just(b"rawpause".to_vec()),
            Just(b"stop".to_vec()),
            Just(b"xxxxxxxxxxxxx".to_vec()),
            Just(delimiter.to_vec()),
            Just(delimiter.to_vec()),
            Just(delimiter.to_vec()),
        ];
        proptest::collection::vec(token, 0..40).prop_map(move |t| (d, t.concat()))
    })
}

fn run_tester(delimiter: &[u8], data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let clock = Clock::new();
    let st = StringTransport::new();
    let h = st.connect(
        LineReceiver::new(Tester::new(&clock))
            .with_delimiter(delimiter)
            .unwrap()
            .with_max_length(8),
    );
    deliver_cut(&st, data, cuts);
    settle(&clock);
    h.with(|r, _| r.handler().received.clone()).unwrap()
}

fn run_lines(delimiter: &[u8], data: &[u8], cuts: &[usize]) -> Vec<helpers::LineEvent> {
    let st = StringTransport::new();
    let h = st.connect(
        LineReceiver::new(Lines::default())
            .with_delimiter(delimiter)
            .unwrap()
            .with_max_length(8),
    );
    deliver_cut(&st, data, cuts);
    h.with(|r, _| r.handler().events.clone()).unwrap()
}

fn run_line_only(delimiter: &[u8], data: &[u8], cuts: &[usize]) -> Vec<helpers::LineEvent> {
    let st = StringTransport::new();
    let h = st.connect(
        LineOnlyReceiver::new(Lines::default())
            .with_delimiter(delimiter)
            .unwrap()
            .with_max_length(8),
    );
    deliver_cut(&st, data, cuts);
    h.with(|r, _| r.handler().events.clone()).unwrap()
}

fn run_strings<F>(
    make: impl Fn(Strings) -> StringReceiver<F, Strings>,
    pause: bool,
    data: &[u8],
    cuts: &[usize],
) -> Vec<helpers::StringEvent>
where
    F: twistor::protocols::basic::StringFraming,
{
    let clock = Clock::new();
    let st = StringTransport::new();
    let h = st.connect(make(Strings {
        events: Vec::new(),
        pause_each: pause.then(|| clock.clone()),
    }));
    deliver_cut(&st, data, cuts);
    settle(&clock);
    h.with(|r, _| r.handler().events.clone()).unwrap()
}

/// Netstring input: valid netstrings, now and then a bad byte.
fn netstring_input() -> impl Strategy<Value = Vec<u8>> {
    let frame = prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..30)
            .prop_map(|p| [format!("{}:", p.len()).as_bytes(), &p, b","].concat()),
        1 => proptest::collection::vec(
            prop_oneof![Just(b'0'), Just(b'1'), Just(b'9'), Just(b':'), Just(b','), Just(b'x')],
            1..4,
        ),
    ];
    proptest::collection::vec(frame, 0..12).prop_map(|f| f.concat())
}

/// Length-prefixed input: frames of up to 30 bytes (some over the limit of 20), now and then
/// a stray byte.
fn prefixed_input<const N: usize>() -> impl Strategy<Value = Vec<u8>> {
    let frame = prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..30).prop_map(|p| {
            let len = (p.len() as u64).to_be_bytes();
            [&len[8 - N..], &p[..]].concat()
        }),
        1 => proptest::collection::vec(any::<u8>(), 1..3),
    ];
    proptest::collection::vec(frame, 0..12).prop_map(|f| f.concat())
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(any::<usize>(), 0..24)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Lines, raw blocks, pausing, stopping and re-parsed long runs: chunking does not matter.
    #[test]
    fn line_receiver_chunking_invariant((d, data) in tester_input(), cuts in cuts()) {
        let delimiter = DELIMITERS[d];
        let whole = run_tester(delimiter, &data, &[]);
        prop_assert_eq!(run_tester(delimiter, &data, &cuts), whole.clone());
        let bytewise: Vec<usize> = (0..data.len()).collect();
        prop_assert_eq!(run_tester(delimiter, &data, &bytewise), whole);
    }

    /// Lines up to the first too-long one, then nothing: chunking does not matter.
    #[test]
    fn line_receiver_limits_chunking_invariant((d, data) in tester_input(), cuts in cuts()) {
        let delimiter = DELIMITERS[d];
        prop_assert_eq!(run_lines(delimiter, &data, &cuts), run_lines(delimiter, &data, &[]));
    }

    /// Arbitrary bytes through a line receiver: same lines in any chunking.
    #[test]
    fn line_receiver_arbitrary_bytes(
        d in 0..DELIMITERS.len(),
        data in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'E'), Just(b'N'), Just(b'D'), any::<u8>()],
            0..200,
        ),
        cuts in cuts(),
    ) {
        let delimiter = DELIMITERS[d];
        prop_assert_eq!(run_lines(delimiter, &data, &cuts), run_lines(delimiter, &data, &[]));
        prop_assert_eq!(
            run_line_only(delimiter, &data, &cuts),
            run_line_only(delimiter, &data, &[])
        );
    }

    /// LineOnlyReceiver: chunking does not matter, and it agrees with LineReceiver.
    #[test]
    fn line_only_receiver_chunking_invariant((d, data) in tester_input(), cuts in cuts()) {
        let delimiter = DELIMITERS[d];
        let whole = run_line_only(delimiter, &data, &[]);
        prop_assert_eq!(run_line_only(delimiter, &data, &cuts), whole.clone());
        prop_assert_eq!(run_lines(delimiter, &data, &[]), whole);
    }

    #[test]
    fn netstring_receiver_chunking_invariant(
        data in netstring_input(),
        cuts in cuts(),
        pause in any::<bool>(),
    ) {
        let make = |h| NetstringReceiver::new(h).with_max_length(20);
        let whole = run_strings(make, false, &data, &[]);
        prop_assert_eq!(run_strings(make, pause, &data, &cuts), whole);
    }

    #[test]
    fn netstring_receiver_arbitrary_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..100),
        cuts in cuts(),
    ) {
        let make = |h| NetstringReceiver::new(h).with_max_length(20);
        prop_assert_eq!(run_strings(make, false, &data, &cuts), run_strings(make, false, &data, &[]));
    }

    #[test]
    fn int8_receiver_chunking_invariant(
        data in prefixed_input::<1>(),
        cuts in cuts(),
        pause in any::<bool>(),
    ) {
        let make = |h| IntNStringReceiver::<1, _>::new(h).with_max_length(20);
        let whole = run_strings(make, false, &data, &[]);
        prop_assert_eq!(run_strings(make, pause, &data, &cuts), whole);
    }

    #[test]
    fn int16_receiver_chunking_invariant(
        data in prefixed_input::<2>(),
        cuts in cuts(),
        pause in any::<bool>(),
    ) {
        let make = |h| IntNStringReceiver::<2, _>::new(h).with_max_length(20);
        let whole = run_strings(make, false, &data, &[]);
        prop_assert_eq!(run_strings(make, pause, &data, &cuts), whole);
    }

    #[test]
    fn int32_receiver_chunking_invariant(
        data in prefixed_input::<4>(),
        cuts in cuts(),
        pause in any::<bool>(),
    ) {
        let make = |h| IntNStringReceiver::<4, _>::new(h).with_max_length(20);
        let whole = run_strings(make, false, &data, &[]);
        prop_assert_eq!(run_strings(make, pause, &data, &cuts), whole);
    }
}

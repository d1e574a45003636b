//! `protocols::basic`: Twisted's `protocols/test/test_basic.py` behaviours, ported and
//! named after Twisted's tests.

#[path = "util/basic_protocols.rs"]
mod helpers;

use helpers::{LineEvent, Lines, LongLines, StringEvent, Strings, Tester, deliver_in};
use twistor::error::ConnectionDone;
use twistor::protocol::Handle;
use twistor::protocols::basic::{
    Int8StringReceiver, Int16StringReceiver, Int32StringReceiver, IntNStringReceiver, LineContext,
    LineHandle, LineHandler, LineOnlyReceiver, LineReceiver, NetstringParseError,
    NetstringReceiver, StringContext, StringHandle, StringHandler, StringTooLongError,
};
use twistor::testing::{ReadState, StringTransport};
use twistor::{Clock, Failure};

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn bs(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| b(s)).collect()
}

/// A `Tester` (delimiter `\n`, `max_length` 64, as Twisted's `LineTester`) on a new transport.
fn tester(clock: &Clock) -> (StringTransport, Handle<LineReceiver<Tester>>) {
    let st = StringTransport::new();
    let h = st.connect(
        LineReceiver::new(Tester::new(clock))
            .with_delimiter(b"\n")
            .unwrap()
            .with_max_length(64),
    );
    (st, h)
}

fn received(h: &Handle<LineReceiver<Tester>>) -> Vec<Vec<u8>> {
    h.with(|r, _| r.handler().received.clone()).unwrap()
}

// ---- LineReceiver ---------------------------------------------------------------------------

/// A sample exercising lines, raw blocks (`len N` then an empty line), a zero-length raw block
/// and a too-long line whose excess is parsed again.
fn sample() -> Vec<u8> {
    let mut buf = b("hello\nlen 4\n\nab\ncworld\nlen 0\n\nafter zero\n");
    buf.extend_from_slice(&[b'x'; 70]);
    buf.extend_from_slice(b"\ntail\nlen 2\n\nzz");
    buf
}

fn sample_output() -> Vec<Vec<u8>> {
    bs(&[
        "hello",
        "len 4",
        "ab\nc",
        "world",
        "len 0",
        "",
        "after zero",
        "xxxxx",
        "tail",
        "len 2",
        "zz",
    ])
}

#[test]
fn test_buffer() {
    for packet_size in 1..10 {
        let clock = Clock::new();
        let (st, h) = tester(&clock);
        deliver_in(&st, &sample(), packet_size);
        assert_eq!(received(&h), sample_output(), "packets of {packet_size}");
        assert!(!st.disconnecting());
    }
}

/// In one chunk too. (Twisted leaves the bytes re-injected by `lineLengthExceeded` in the
/// buffer until more data arrives, so its output stops at `after zero` here; we parse them at
/// once.)
#[test]
fn test_buffer_whole() {
    let clock = Clock::new();
    let (st, h) = tester(&clock);
    st.deliver(&sample());
    assert_eq!(received(&h), sample_output());
}

#[test]
fn test_pausing() {
    let buf = b"twiddle1\ntwiddle2\npause\ntwiddle3\n";
    for packet_size in 1..10 {
        let clock = Clock::new();
        let (st, h) = tester(&clock);
        deliver_in(&st, buf, packet_size);
        assert_eq!(received(&h), bs(&["twiddle1", "twiddle2", "pause"]));
        assert_eq!(st.read_state(), ReadState::Paused);
        clock.advance(0.0);
        assert_eq!(
            received(&h),
            bs(&["twiddle1", "twiddle2", "pause", "twiddle3"])
        );
        assert_eq!(st.read_state(), ReadState::Producing);
    }
}

#[test]
fn test_raw_pausing() {
    let buf = b"twiddle1\ntwiddle2\nlen 5\nrawpause\n12345twiddle3\n";
    for packet_size in 1..10 {
        let clock = Clock::new();
        let (st, h) = tester(&clock);
        deliver_in(&st, buf, packet_size);
        assert_eq!(
            received(&h),
            bs(&["twiddle1", "twiddle2", "len 5", "rawpause", ""])
        );
        clock.advance(0.0);
        assert_eq!(
            received(&h),
            bs(&[
                "twiddle1", "twiddle2", "len 5", "rawpause", "12345", "twiddle3"
            ])
        );
    }
}

#[test]
fn test_stop_producing() {
    let buf = b"twiddle1\ntwiddle2\nstop\nmore\nstuff\n";
    for packet_size in 1..10 {
        let clock = Clock::new();
        let (st, h) = tester(&clock);
        deliver_in(&st, buf, packet_size);
        assert_eq!(received(&h), bs(&["twiddle1", "twiddle2", "stop"]));
        assert_eq!(st.read_state(), ReadState::Stopped);
        // Resuming a stopped receiver does nothing.
        LineHandle::from(h.clone()).with(|_, cx| cx.resume_producing());
        st.deliver(b"again\n");
        assert_eq!(received(&h), bs(&["twiddle1", "twiddle2", "stop"]));
    }
}

/// A handler that pauses itself after each line (Twisted's `ProducerTests.test_pauseResume`).
#[derive(Default)]
struct PauseEach(Vec<Vec<u8>>);

impl LineHandler for PauseEach {
    fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
        self.0.push(line.to_vec());
        cx.pause_producing();
    }
}

#[test]
fn test_pause_resume() {
    let st = StringTransport::new();
    let h = LineHandle::from(st.connect(LineReceiver::new(PauseEach::default())));
    let lines = |h: &LineHandle<PauseEach>| h.with(|p, _| p.0.clone()).unwrap();

    st.deliver(b"hello\r\nworld\r\n");
    assert_eq!(lines(&h), bs(&["hello"]));
    assert_eq!(st.read_state(), ReadState::Paused);

    h.with(|_, cx| cx.resume_producing());
    assert_eq!(lines(&h), bs(&["hello", "world"]));
    assert_eq!(st.read_state(), ReadState::Paused);

    // Data arriving while paused is only buffered.
    st.deliver(b"goodbye\r\n");
    assert_eq!(lines(&h), bs(&["hello", "world"]));

    h.with(|_, cx| cx.resume_producing());
    assert_eq!(lines(&h), bs(&["hello", "world", "goodbye"]));
}

/// Resuming from inside the callback that paused: delivery just goes on.
#[test]
fn test_pause_and_resume_in_one_callback() {
    struct Flip(Vec<Vec<u8>>);
    impl LineHandler for Flip {
        fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
            self.0.push(line.to_vec());
            cx.pause_producing();
            cx.resume_producing();
        }
    }
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(Flip(Vec::new())));
    st.deliver(b"a\r\nb\r\nc\r\n");
    assert_eq!(h.with(|r, _| r.handler().0.len()), Some(3));
    assert_eq!(st.read_state(), ReadState::Producing);
}

#[test]
fn test_line_too_long() {
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(Lines::default()).with_max_length(64));
    st.deliver(&[b'x'; 200]);
    assert!(st.disconnecting());
    assert_eq!(
        h.with(|r, _| r.handler().events.clone()).unwrap(),
        [LineEvent::Exceeded]
    );
}

#[test]
fn test_maximum_line_length() {
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(Lines::default()).with_max_length(3));
    st.deliver(b"xxxx\r\nr");
    assert!(st.disconnecting());
    assert_eq!(
        h.with(|r, _| r.handler().exceeded.clone()).unwrap(),
        [b("xxxx\r\nr")]
    );
}

/// A complete line of exactly `max_length` bytes is delivered.
#[test]
fn test_maximum_line_length_exact() {
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(Lines::default()).with_max_length(3));
    st.deliver(b"xxx\r\nyyy\r\n");
    assert!(!st.disconnecting());
    assert_eq!(
        h.with(|r, _| r.handler().events.clone()).unwrap(),
        [LineEvent::Line(b("xxx")), LineEvent::Line(b("yyy"))]
    );
}

/// `max_length` bytes and all but the last byte of the delimiter, then the last byte: a
/// line, no disconnect.
#[test]
fn test_maximum_line_length_partial_delimiter() {
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(Lines::default()).with_max_length(4));
    st.deliver(b"xxxx");
    st.deliver(b"\r");
    assert!(!st.disconnecting());
    st.deliver(b"\n");
    assert!(!st.disconnecting());
    assert_eq!(
        h.with(|r, _| r.handler().events.clone()).unwrap(),
        [LineEvent::Line(b("xxxx"))]
    );
}

#[test]
fn test_not_quite_maximum_line_length_unfinished() {
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(Lines::default()).with_max_length(3));
    st.deliver(b"xxx\r");
    assert!(!st.disconnecting());
    assert!(h.with(|r, _| r.handler().events.is_empty()).unwrap());
    // One more byte that is not the delimiter's end: now it is too long.
    st.deliver(b"y");
    assert!(st.disconnecting());
}

/// A multi-byte delimiter split at every point, with lines of exactly `max_length`.
#[test]
fn test_maximum_line_length_delimiter_split_everywhere() {
    for delimiter in [&b"\r\n"[..], b"<END>", b"\0"] {
        for packet_size in 1..8 {
            let st = StringTransport::new();
            let h = st.connect(
                LineReceiver::new(Lines::default())
                    .with_delimiter(delimiter)
                    .unwrap()
                    .with_max_length(5),
            );
            let mut data = Vec::new();
            for line in ["aaaaa", "", "bbbbb", "c"] {
                data.extend_from_slice(line.as_bytes());
                data.extend_from_slice(delimiter);
            }
            deliver_in(&st, &data, packet_size);
            assert!(!st.disconnecting());
            let events = h.with(|r, _| r.handler().events.clone()).unwrap();
            assert_eq!(events.len(), 4, "{delimiter:?} in packets of {packet_size}");
        }
    }
}

#[test]
fn test_long_unended_line() {
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(LongLines::default()).with_max_length(3));
    let excessive = vec![b'x'; 3 * 2 + 2];
    st.deliver(&excessive);
    assert_eq!(
        h.with(|r, _| r.handler().long_lines.clone()).unwrap(),
        [excessive]
    );
}

#[test]
fn test_long_line_after_short_line() {
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(LongLines::default()).with_max_length(3));
    let excessive = vec![b'x'; 3 * 2 + 2];
    let mut data = b("x\r\n");
    data.extend_from_slice(&excessive);
    st.deliver(&data);
    assert_eq!(
        h.with(|r, _| (r.handler().lines.clone(), r.handler().long_lines.clone()))
            .unwrap(),
        (vec![b("x")], vec![excessive])
    );
}

#[test]
fn test_long_line_with_delimiter() {
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(LongLines::default()).with_max_length(3));
    let long = [b'x'; 3 * 2 + 2];
    let excessive = [&long[..], b"\r\n", &long[..]].concat();
    st.deliver(&excessive);
    assert_eq!(
        h.with(|r, _| r.handler().long_lines.clone()).unwrap(),
        [excessive]
    );
}

#[test]
fn test_multiple_long_lines() {
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(LongLines::default()).with_max_length(3));
    let long = [&[b'x'; 3 * 2 + 2][..], b"\r\n"].concat();
    let excessive = [&long[..], &long[..]].concat();
    st.deliver(&excessive);
    assert_eq!(
        h.with(|r, _| r.handler().long_lines.clone()).unwrap(),
        [excessive]
    );
}

/// MAX 5, `123456\r\nxy\r\n`: one call with the whole input, no lines.
#[test]
fn test_line_length_exceeded_gets_everything_pending() {
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(LongLines::default()).with_max_length(5));
    st.deliver(b"123456\r\nxy\r\n");
    assert_eq!(
        h.with(|r, _| (r.handler().lines.len(), r.handler().long_lines.clone()))
            .unwrap(),
        (0, vec![b("123456\r\nxy\r\n")])
    );
}

#[test]
fn test_clear_line_buffer() {
    #[derive(Default)]
    struct ClearLineBuffer {
        line: Vec<u8>,
        rest: Vec<u8>,
    }
    impl LineHandler for ClearLineBuffer {
        fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
            self.line = line.to_vec();
            self.rest = cx.clear_line_buffer();
        }
    }
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(ClearLineBuffer::default()));
    let state = |h: &Handle<LineReceiver<ClearLineBuffer>>| {
        h.with(|r, _| (r.handler().line.clone(), r.handler().rest.clone()))
            .unwrap()
    };
    st.deliver(b"foo\r\nbar\r\nbaz");
    assert_eq!(state(&h), (b("foo"), b("bar\r\nbaz")));
    st.deliver(b"quux\r\n");
    assert_eq!(state(&h), (b("quux"), b("")));
}

/// `clear_line_buffer` from outside a callback empties the buffer at once.
#[test]
fn test_clear_line_buffer_from_handle() {
    let st = StringTransport::new();
    let h = LineHandle::from(st.connect(LineReceiver::new(Lines::default())));
    st.deliver(b"partial");
    assert_eq!(
        h.with(|_, cx| cx.clear_line_buffer()).unwrap(),
        b("partial")
    );
    st.deliver(b"\r\n");
    assert_eq!(
        h.with(|l, _| l.events.clone()).unwrap(),
        [LineEvent::Line(b(""))]
    );
}

/// Switching modes many times on the same data, and many lines in one chunk: no recursion.
#[test]
fn test_stack_recursion() {
    let clock = Clock::new();
    let (st, h) = tester(&clock);
    let switches = 3000;
    st.deliver(&b"len 1\n\nx".repeat(switches));
    let got = received(&h);
    assert_eq!(got.len(), 2 * switches);
    assert!(got.chunks(2).all(|pair| pair == [b("len 1"), b("x")]));

    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(Lines::default()));
    st.deliver(&b"x\r\n".repeat(200_000));
    assert_eq!(h.with(|r, _| r.handler().events.len()), Some(200_000));
}

/// A long line fed one byte at a time is searched once (the scan offset), not rescanned on
/// each byte: this finishes quickly even in a debug build.
#[test]
fn test_scan_offset_no_rescan() {
    let n = 256 * 1024;
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(Lines::default()).with_max_length(n));
    let mut data = vec![b'x'; n];
    data.extend_from_slice(b"\r\n");
    deliver_in(&st, &data, 1);
    assert_eq!(
        h.with(|r, _| r.handler().events.len()),
        Some(1),
        "one long line"
    );
}

/// Lines after a `lose_connection` are not delivered: `[a, quit]`.
#[test]
fn test_lines_after_lose_connection_discarded() {
    #[derive(Default)]
    struct Quit(Vec<Vec<u8>>);
    impl LineHandler for Quit {
        fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
            self.0.push(line.to_vec());
            if line == b"quit" {
                cx.transport().lose_connection();
            }
        }
    }
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(Quit::default()));
    st.deliver(b"a\r\nquit\r\nb\r\n");
    st.deliver(b"c\r\n");
    assert_eq!(
        h.with(|r, _| r.handler().0.clone()).unwrap(),
        bs(&["a", "quit"])
    );
}

#[test]
fn test_send_line() {
    let st = StringTransport::new();
    let h = LineHandle::from(
        st.connect(
            LineReceiver::new(Lines::default())
                .with_delimiter(b"\n")
                .unwrap(),
        ),
    );
    h.with(|_, cx| {
        cx.send_line(b"one");
        cx.send_line(b"");
    });
    assert_eq!(st.value(), b"one\n\n");
}

/// Without `raw_data_received`, raw mode closes the connection (Twisted raises).
#[test]
fn test_raw_mode_without_handler_closes() {
    struct Raw;
    impl LineHandler for Raw {
        fn line_received(&mut self, cx: &LineContext<Self>, _: &[u8]) {
            cx.set_raw_mode();
        }
    }
    let st = StringTransport::new();
    st.connect(LineReceiver::new(Raw));
    st.deliver(b"raw\r\n");
    assert!(!st.disconnecting());
    st.deliver(b"bytes");
    assert!(st.disconnecting());
}

/// A paused receiver holds at most its limit; past it, the connection is closed and the
/// bytes dropped.
#[test]
fn test_paused_buffer_is_bounded() {
    let st = StringTransport::new();
    let h = LineHandle::from(
        st.connect(
            LineReceiver::new(Lines::default())
                .with_max_length(100)
                .with_paused_buffer_limit(1000),
        ),
    );
    h.with(|_, cx| cx.pause_producing());
    for _ in 0..100 {
        st.deliver(b"0123456\r\n");
    }
    assert!(!st.disconnecting());
    st.deliver(&[b'x'; 200]);
    assert!(st.disconnecting());
    h.with(|_, cx| cx.resume_producing());
    assert!(h.with(|l, _| l.events.is_empty()).unwrap());
}

/// Work queued through the handle from inside a callback runs right after it.
#[test]
fn test_handle_from_inside_a_callback_is_queued() {
    #[derive(Default)]
    struct Queue(Vec<&'static str>);
    impl LineHandler for Queue {
        fn line_received(&mut self, cx: &LineContext<Self>, _: &[u8]) {
            self.0.push("line");
            let queued = cx.handle().with(|q, cx| {
                q.0.push("later");
                cx.send_line(b"sent later");
            });
            assert!(queued.is_none());
        }
    }
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(Queue::default()));
    st.deliver(b"x\r\n");
    assert_eq!(
        h.with(|r, _| r.handler().0.clone()).unwrap(),
        ["line", "later"]
    );
    assert_eq!(st.value(), b"sent later\r\n");
}

#[test]
fn test_connection_lost_reaches_handler() {
    #[derive(Default)]
    struct Lost(std::rc::Rc<std::cell::Cell<bool>>);
    impl LineHandler for Lost {
        fn line_received(&mut self, _: &LineContext<Self>, _: &[u8]) {}
        fn connection_lost(&mut self, _: &LineContext<Self>, reason: Failure) {
            self.0.set(reason.is::<ConnectionDone>());
        }
    }
    let flag = std::rc::Rc::new(std::cell::Cell::new(false));
    let st = StringTransport::new();
    let h = st.connect(LineReceiver::new(Lost(flag.clone())));
    st.deliver(b"half a li");
    st.connection_lost(Failure::new(ConnectionDone));
    assert!(flag.get());
    assert!(!h.alive());
}

// ---- LineOnlyReceiver -----------------------------------------------------------------------

#[test]
fn test_line_only_buffer() {
    let buf = b"foo\nbleakness\ndesolation\nplastic forks\n";
    for packet_size in 1..10 {
        let st = StringTransport::new();
        let h = st.connect(
            LineOnlyReceiver::new(Lines::default())
                .with_delimiter(b"\n")
                .unwrap(),
        );
        deliver_in(&st, buf, packet_size);
        let lines: Vec<_> = h
            .with(|r, _| r.handler().events.clone())
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(
            lines,
            ["foo", "bleakness", "desolation", "plastic forks"].map(|l| LineEvent::Line(b(l)))
        );
    }
}

#[test]
fn test_greater_than_maximum_line_length() {
    let st = StringTransport::new();
    let h = st.connect(LineOnlyReceiver::new(Lines::default()).with_max_length(3));
    st.deliver(b"ok\r\nxxxx\r\nlater\r\n");
    assert!(st.disconnecting());
    assert_eq!(
        h.with(|r, _| (r.handler().events.clone(), r.handler().exceeded.clone()))
            .unwrap(),
        (
            vec![LineEvent::Line(b("ok")), LineEvent::Exceeded],
            vec![b("xxxx")]
        )
    );
}

#[test]
fn test_line_only_unterminated_too_long() {
    let st = StringTransport::new();
    let h = st.connect(LineOnlyReceiver::new(Lines::default()).with_max_length(3));
    st.deliver(b"xxx\r"); // could still be a full line
    assert!(!st.disconnecting());
    st.deliver(b"\n");
    assert!(!st.disconnecting());
    st.deliver(b"xxx\ry");
    assert!(st.disconnecting());
    assert_eq!(
        h.with(|r, _| r.handler().events.clone()).unwrap(),
        [LineEvent::Line(b("xxx")), LineEvent::Exceeded]
    );
}

#[test]
fn test_line_only_lines_after_lose_connection_discarded() {
    use twistor::protocols::basic::{LineOnlyContext, LineOnlyHandler};
    #[derive(Default)]
    struct Quit(Vec<Vec<u8>>);
    impl LineOnlyHandler for Quit {
        fn line_received(&mut self, cx: &LineOnlyContext<Self>, line: &[u8]) {
            self.0.push(line.to_vec());
            if line == b"quit" {
                cx.transport().lose_connection();
            }
        }
    }
    let st = StringTransport::new();
    let h = st.connect(LineOnlyReceiver::new(Quit::default()));
    st.deliver(b"a\r\nquit\r\nb\r\n");
    assert_eq!(
        h.with(|r, _| r.handler().0.clone()).unwrap(),
        bs(&["a", "quit"])
    );
}

// ---- NetstringReceiver ----------------------------------------------------------------------

fn netstring() -> (StringTransport, Handle<NetstringReceiver<Strings>>) {
    let st = StringTransport::new();
    let h = st.connect(NetstringReceiver::new(Strings::default()));
    (st, h)
}

fn events<F>(h: &Handle<twistor::protocols::basic::StringReceiver<F, Strings>>) -> Vec<StringEvent>
where
    F: twistor::protocols::basic::StringFraming,
{
    h.with(|r, _| r.handler().events.clone()).unwrap()
}

fn strings(items: &[&str]) -> Vec<StringEvent> {
    items.iter().map(|s| StringEvent::String(b(s))).collect()
}

#[test]
fn test_receive_netstring_portions() {
    let good = ["", "a", "hello", ",,,:::", "1:a,", &"x".repeat(1000)];
    let mut data = Vec::new();
    for s in good {
        data.extend_from_slice(format!("{}:{},", s.len(), s).as_bytes());
    }
    for packet_size in 1..12 {
        let (st, h) = netstring();
        deliver_in(&st, &data, packet_size);
        assert_eq!(events(&h), strings(&good));
        assert!(!st.disconnecting());
    }
}

#[test]
fn test_receive_empty_netstring() {
    let (_st, h) = netstring();
    _st.deliver(b"0:,");
    assert_eq!(events(&h), strings(&[""]));
}

#[test]
fn test_receive_nested_netstring() {
    let (st, h) = netstring();
    st.deliver(b"4:1:a,,");
    assert_eq!(events(&h), strings(&["1:a,"]));
}

#[test]
fn test_receive_netstring_portions_2() {
    let (st, h) = netstring();
    for part in [&b"1"[..], b"0:01234", b"56789", b","] {
        st.deliver(part);
    }
    assert_eq!(events(&h), strings(&["0123456789"]));
}

#[test]
fn test_receive_two_netstrings() {
    let (st, h) = netstring();
    st.deliver(b"1:a,1");
    assert_eq!(events(&h), strings(&["a"]));
    st.deliver(b":b,");
    assert_eq!(events(&h), strings(&["a", "b"]));
}

fn assert_netstring_error(data: &[u8], expected: NetstringParseError) {
    for packet_size in [1, 2, 3, data.len().max(1)] {
        let (st, h) = netstring();
        deliver_in(&st, data, packet_size);
        assert!(st.disconnecting(), "{data:?}");
        assert_eq!(
            events(&h),
            [StringEvent::Error(expected.clone())],
            "{data:?}"
        );
        assert_eq!(h.with(|r, _| r.broken_peer()), Some(true));
    }
}

#[test]
fn test_more_data_than_specified() {
    assert_netstring_error(b"3:abcd,", NetstringParseError::MissingComma);
    assert_netstring_error(b"2:aaa,", NetstringParseError::MissingComma);
    assert_netstring_error(b"0:a,", NetstringParseError::MissingComma);
}

#[test]
fn test_missing_number() {
    assert_netstring_error(b":abc,", NetstringParseError::MissingLength);
}

#[test]
fn test_missing_colon() {
    assert_netstring_error(b"3abc,", NetstringParseError::MissingColon);
}

#[test]
fn test_missing_number_and_colon() {
    assert_netstring_error(b"abc,", NetstringParseError::MissingLength);
}

#[test]
fn test_only_data() {
    assert_netstring_error(b"abc", NetstringParseError::MissingLength);
}

#[test]
fn test_leading_zeros() {
    assert_netstring_error(b"03:abc,", NetstringParseError::LeadingZero);
    assert_netstring_error(b"00:,", NetstringParseError::LeadingZero);
}

#[test]
fn test_illegal() {
    let too_long = NetstringParseError::TooLong { max_length: 99999 };
    assert_netstring_error(b"9999999999999999999999", too_long.clone());
    assert_netstring_error(b"99999999999999999999999999999999999999:", too_long);
    assert_netstring_error(b"abc", NetstringParseError::MissingLength);
    assert_netstring_error(b"4:abcde", NetstringParseError::MissingComma);
    let mut s = b("51:");
    s.extend_from_slice(&[b'a'; 72]);
    assert_netstring_error(&s, NetstringParseError::MissingComma);
}

#[test]
fn test_max_receive_limit() {
    let st = StringTransport::new();
    let h = st.connect(NetstringReceiver::new(Strings::default()).with_max_length(50));
    // Refused from the length alone, before any payload.
    st.deliver(b"51:");
    assert!(st.disconnecting());
    assert_eq!(
        events(&h),
        [StringEvent::Error(NetstringParseError::TooLong {
            max_length: 50
        })]
    );
}

#[test]
fn test_consume_length_border_case() {
    // `max_length` itself is allowed.
    let st = StringTransport::new();
    let h = st.connect(NetstringReceiver::new(Strings::default()).with_max_length(10));
    st.deliver(b"10:0123456789,");
    assert_eq!(events(&h), strings(&["0123456789"]));
    st.deliver(b"11:");
    assert!(st.disconnecting());
}

#[test]
fn test_netstring_data_after_error_ignored() {
    let (st, h) = netstring();
    st.deliver(b"1:a,x1:b,");
    st.deliver(b"1:c,");
    assert_eq!(
        events(&h),
        [
            StringEvent::String(b("a")),
            StringEvent::Error(NetstringParseError::MissingLength)
        ]
    );
}

#[test]
fn test_netstring_send() {
    let st = StringTransport::new();
    let h = StringHandle::from(st.connect(NetstringReceiver::new(Strings::default())));
    h.with(|_, cx| {
        cx.send_string(b"hello").unwrap();
        cx.send_string(b"").unwrap();
    });
    assert_eq!(st.value(), b"5:hello,0:,");
}

// ---- IntNStringReceiver ---------------------------------------------------------------------

fn prefixed<const N: usize>(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u64).to_be_bytes();
    [&len[8 - N..], payload].concat()
}

fn int_receive<const N: usize>() {
    let st = StringTransport::new();
    let h = st.connect(IntNStringReceiver::<N, _>::new(Strings::default()));
    let msgs = ["hello", "", "world", "x"];
    let data: Vec<u8> = msgs
        .iter()
        .flat_map(|m| prefixed::<N>(m.as_bytes()))
        .collect();
    deliver_in(&st, &data, 1);
    assert_eq!(events(&h), strings(&msgs));
}

fn int_partial<const N: usize>() {
    for data in [prefixed::<N>(b"hello")[..N - 1].to_vec(), {
        let mut d = prefixed::<N>(b"hello");
        d.pop();
        d
    }] {
        let st = StringTransport::new();
        let h = st.connect(IntNStringReceiver::<N, _>::new(Strings::default()));
        for b in &data {
            st.deliver(&[*b]);
        }
        assert!(events(&h).is_empty());
    }
}

fn int_send<const N: usize>() {
    let st = StringTransport::new();
    let h = StringHandle::from(st.connect(IntNStringReceiver::<N, _>::new(Strings::default())));
    h.with(|_, cx| cx.send_string(b"b").unwrap());
    assert_eq!(st.value(), prefixed::<N>(b"b"));
}

fn int_length_limit_exceeded<const N: usize>() {
    let st = StringTransport::new();
    let h = st.connect(IntNStringReceiver::<N, _>::new(Strings::default()).with_max_length(10));
    st.deliver(&prefixed::<N>(&[b'x'; 11])[..N]);
    assert_eq!(events(&h), [StringEvent::TooLong(11)]);
    assert!(st.disconnecting());
}

fn int_long_string_not_delivered<const N: usize>() {
    let st = StringTransport::new();
    let h = st.connect(IntNStringReceiver::<N, _>::new(Strings::default()).with_max_length(10));
    st.deliver(&prefixed::<N>(&[b'x'; 11]));
    assert_eq!(events(&h), [StringEvent::TooLong(11)]);
    assert!(st.disconnecting());
}

fn int_pause_resume<const N: usize>() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let h = st.connect(IntNStringReceiver::<N, _>::new(Strings {
        events: Vec::new(),
        pause_each: Some(clock.clone()),
    }));
    let data: Vec<u8> = ["a", "b", "c"]
        .iter()
        .flat_map(|m| prefixed::<N>(m.as_bytes()))
        .collect();
    st.deliver(&data);
    assert_eq!(events(&h), strings(&["a"]));
    assert_eq!(st.read_state(), ReadState::Paused);
    clock.advance(0.0);
    assert_eq!(events(&h), strings(&["a", "b", "c"]));
}

macro_rules! int_tests {
    ($name:ident, $n:literal) => {
        mod $name {
            #[test]
            fn test_receive() {
                super::int_receive::<$n>();
            }
            #[test]
            fn test_partial() {
                super::int_partial::<$n>();
            }
            #[test]
            fn test_send() {
                super::int_send::<$n>();
            }
            #[test]
            fn test_length_limit_exceeded() {
                super::int_length_limit_exceeded::<$n>();
            }
            #[test]
            fn test_long_string_not_delivered() {
                super::int_long_string_not_delivered::<$n>();
            }
            #[test]
            fn test_pause_resume() {
                super::int_pause_resume::<$n>();
            }
        }
    };
}

int_tests!(int8, 1);
int_tests!(int16, 2);
int_tests!(int32, 4);

#[test]
fn test_int8_too_long_send() {
    let st = StringTransport::new();
    let h = StringHandle::from(st.connect(Int8StringReceiver::new(Strings::default())));
    let r = h.with(|_, cx| cx.send_string(&[b'x'; 256])).unwrap();
    assert_eq!(
        r,
        Err(StringTooLongError {
            length: 256,
            prefix_bytes: 1
        })
    );
    assert!(
        h.with(|_, cx| cx.send_string(&[b'x'; 255]))
            .unwrap()
            .is_ok()
    );
    assert_eq!(st.value().len(), 256);
}

#[test]
fn test_int16_too_long_send() {
    let st = StringTransport::new();
    let h = StringHandle::from(st.connect(Int16StringReceiver::new(Strings::default())));
    let r = h.with(|_, cx| cx.send_string(&vec![b'x'; 65536])).unwrap();
    assert!(r.is_err());
    assert!(st.value().is_empty());
}

#[test]
fn test_int32_receive_big_endian() {
    let st = StringTransport::new();
    let h = st.connect(Int32StringReceiver::new(Strings::default()).with_max_length(1 << 20));
    let payload = vec![7u8; 0x0001_0203];
    let mut data = vec![0x00, 0x01, 0x02, 0x03];
    data.extend_from_slice(&payload);
    deliver_in(&st, &data, 4096);
    assert_eq!(events(&h), [StringEvent::String(payload)]);
}

/// A declared length is refused before any payload is stored.
#[test]
fn test_int32_huge_length_refused_at_once() {
    let st = StringTransport::new();
    let h = st.connect(Int32StringReceiver::new(Strings::default()));
    st.deliver(&[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(events(&h), [StringEvent::TooLong(0xffff_ffff)]);
}

/// The same handler type works with each framing; `with` reaches it.
#[test]
fn test_string_handle_with() {
    struct Echo;
    impl StringHandler for Echo {
        fn string_received(&mut self, cx: &StringContext<Self>, s: &[u8]) {
            cx.send_string(s).unwrap();
        }
    }
    let st = StringTransport::new();
    let h = StringHandle::from(st.connect(NetstringReceiver::new(Echo)));
    st.deliver(b"2:hi,");
    assert_eq!(st.value(), b"2:hi,");
    assert_eq!(h.with(|_, cx| cx.max_length()), Some(99999));
    let st = StringTransport::new();
    st.connect(Int16StringReceiver::new(Echo));
    st.deliver(b"\0\x02hi");
    assert_eq!(st.value(), b"\0\x02hi");
}

#[test]
fn test_string_stop_producing() {
    let st = StringTransport::new();
    let h = StringHandle::from(st.connect(NetstringReceiver::new(Strings::default())));
    h.with(|_, cx| cx.stop_producing());
    st.deliver(b"1:a,");
    h.with(|_, cx| cx.resume_producing());
    assert!(h.with(|s, _| s.events.is_empty()).unwrap());
    assert_eq!(st.read_state(), ReadState::Stopped);
}

#[test]
fn test_string_paused_buffer_is_bounded() {
    let st = StringTransport::new();
    let h = StringHandle::from(
        st.connect(
            Int8StringReceiver::new(Strings::default())
                .with_max_length(10)
                .with_paused_buffer_limit(1000),
        ),
    );
    h.with(|_, cx| cx.pause_producing());
    st.deliver(&[0u8; 1000]);
    assert!(!st.disconnecting());
    st.deliver(&[0u8; 1]);
    assert!(st.disconnecting());
    h.with(|_, cx| cx.resume_producing());
    assert!(h.with(|s, _| s.events.is_empty()).unwrap());
}

/// A protocol that closes itself from its own callback on a transport that closes at once
/// still gets `connection_lost`, right after that callback.
#[test]
fn self_close_under_string_transport_with_disconnection() {
    use twistor::protocol::{Context, Protocol};
    use twistor::testing::StringTransport;
    struct Quit(Vec<String>);
    impl Protocol for Quit {
        fn data_received(&mut self, cx: &Context<Self>, _: &[u8]) {
            cx.transport().lose_connection();
            self.0.push("after lose_connection".into());
        }
        fn connection_lost(&mut self, _: &Context<Self>, reason: twistor::Failure) {
            self.0.push(reason.short_type_name().to_string());
        }
    }
    let st = StringTransport::with_disconnection();
    let h = st.connect(Quit(Vec::new()));
    st.deliver(b"x");
    assert_eq!(
        h.with(|p, _| p.0.clone()).unwrap(),
        ["after lose_connection", "ConnectionDone"]
    );
}

/// An empty delimiter is a configuration error, reported as a typed error (it used to panic).
#[test]
fn test_empty_delimiter_is_an_error() {
    use twistor::protocols::basic::EmptyDelimiterError;
    let r = LineReceiver::new(Lines::default()).with_delimiter(b"");
    assert_eq!(
        r.err().map(|e| e.to_string()),
        Some(EmptyDelimiterError.to_string())
    );
    let r = LineOnlyReceiver::new(Lines::default()).with_delimiter(b"");
    assert!(matches!(r, Err(EmptyDelimiterError)));
}

/// With no limit, a peer's huge declared length is only waited for: no overflow, no panic.
#[test]
fn test_huge_declared_lengths_without_a_limit() {
    let st = StringTransport::new();
    let h = st.connect(NetstringReceiver::new(Strings::default()).with_max_length(usize::MAX));
    st.deliver(format!("{}:abc", usize::MAX).as_bytes());
    st.deliver(b"def");
    assert!(events(&h).is_empty());
    let st = StringTransport::new();
    let h =
        st.connect(IntNStringReceiver::<8, _>::new(Strings::default()).with_max_length(usize::MAX));
    st.deliver(&[0xff; 8]);
    st.deliver(b"abc");
    st.deliver(b"def");
    assert!(events(&h).is_empty());
    assert!(!st.disconnecting());
}

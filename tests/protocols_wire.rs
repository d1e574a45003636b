//! `protocols::wire`: Twisted's `test_wire.py` (echo, discard, chargen, QOTD, daytime) on
//! in-memory transports, and chargen over real TCP.

mod util;

use std::rc::Rc;

use twistor::protocols::wire::{CHARGEN_NOISE, Chargen, Daytime, Discard, Echo, Qotd, asctime};
use twistor::testing::StringTransport;

#[test]
fn test_echo() {
    let st = StringTransport::new();
    st.connect(Echo);
    st.deliver(b"hello\r\n");
    st.deliver(b"world");
    assert_eq!(st.value(), b"hello\r\nworld");
}

#[test]
fn test_discard() {
    let st = StringTransport::new();
    st.connect(Discard);
    st.deliver(b"hello");
    assert_eq!(st.value(), b"");
    assert!(!st.disconnecting());
}

#[test]
fn test_qotd() {
    let st = StringTransport::new();
    st.connect(Qotd::default());
    assert_eq!(st.value(), b"An apple a day keeps the doctor away.\r\n");
    assert!(st.disconnecting());
}

#[test]
fn test_daytime() {
    let st = StringTransport::new();
    st.connect(Daytime);
    let text = String::from_utf8(st.value()).unwrap();
    assert!(st.disconnecting());
    // "Www Mmm dd hh:mm:ss yyyy\r\n"
    let (stamp, end) = text.split_at(24);
    assert_eq!(end, "\r\n");
    let fields: Vec<&str> = stamp.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "{stamp:?}");
    assert!(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&fields[0]));
    assert_eq!(fields[3].len(), 8);
    assert!(fields[4].parse::<u32>().unwrap() >= 2024);
}

#[test]
fn test_asctime_matches_c() {
    // Values checked against C's asctime(gmtime(t)).
    assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
    assert_eq!(asctime(86_399), "Thu Jan  1 23:59:59 1970");
    assert_eq!(asctime(951_868_799), "Tue Feb 29 23:59:59 2000");
    assert_eq!(asctime(4_107_542_400), "Mon Mar  1 00:00:00 2100");
    assert_eq!(asctime(1_700_000_000), "Tue Nov 14 22:13:20 2023");
}

/// Chargen is a pull producer: it writes only when asked, one block at a time.
#[test]
fn test_chargen_writes_when_asked() {
    let st = StringTransport::new();
    st.connect(Chargen::default());
    let (producer, streaming) = st.producer().expect("chargen registers a producer");
    assert!(!streaming, "a pull producer");
    assert_eq!(st.value(), b"", "nothing before the transport asks");
    producer.resume_producing();
    let block = st.value();
    assert!(!block.is_empty());
    producer.resume_producing();
    producer.resume_producing();
    let all = st.value();
    assert_eq!(all.len(), 3 * block.len());
    for (i, b) in all.iter().enumerate() {
        assert_eq!(*b, CHARGEN_NOISE[i % CHARGEN_NOISE.len()], "byte {i}");
    }
    st.deliver(b"ignored");
    assert_eq!(st.value().len(), all.len());
}

/// Over TCP the transport pulls block after block as its buffer drains: a megabyte of
/// unbroken noise.
#[test]
fn test_chargen_streams_over_tcp() {
    use std::io::Read;
    use twistor::protocol::for_protocol;
    use twistor::reactor::Reactor;
    use twistor::transport::tcp::{ListenOptions, listen_tcp_with};

    util::bounded(30, || {
        let reactor = Reactor::new().unwrap();
        let port = listen_tcp_with(
            &reactor,
            0,
            Rc::new(for_protocol(Chargen::default)),
            ListenOptions::on("127.0.0.1"),
        )
        .unwrap()
        .port();
        let handle = reactor.thread_handle();
        let client = std::thread::spawn(move || {
            let result = (|| -> std::io::Result<Vec<u8>> {
                let mut conn = util::connect_local(port);
                let mut got = vec![0u8; 1 << 20];
                conn.read_exact(&mut got)?;
                Ok(got)
            })();
            handle.stop();
            result
        });
        reactor.run_without_signal_handlers().unwrap();
        let got = client.join().unwrap().unwrap();
        for (i, b) in got.iter().enumerate() {
            assert_eq!(*b, CHARGEN_NOISE[i % CHARGEN_NOISE.len()], "byte {i}");
        }
    });
}

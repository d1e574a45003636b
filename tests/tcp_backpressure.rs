//! Read back-pressure: a stream connection stops reading while its write buffer is above the
//! high-water mark (a departure from Twisted, which reads on and buffers without limit), and
//! reads again once it drained to the low-water mark. Real sockets on 127.0.0.1, port 0,
//! bounded in time.

mod util;

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use twistor::prelude::*;
use twistor::transport::tcp::{DEFAULT_HIGH_WATER, ListenOptions, listen_tcp_with};
use util::bounded;

/// One read chunk of a stream connection (64 KiB).
const READ_CHUNK: usize = 64 * 1024;

/// What the echo saw: the most it ever had buffered, and whether it is gone.
#[derive(Default)]
struct Seen {
    max_buffered: Cell<usize>,
    received: Cell<usize>,
    lost: Cell<bool>,
}

/// A producer that never produces: registering it hands flow control to it.
struct Idle;

impl twistor::transport::Producer for Idle {
    fn pause_producing(&self) {}
    fn resume_producing(&self) {}
    fn stop_producing(&self) {}
}

/// How the echo sets up its transport.
#[derive(Clone, Copy)]
enum Setup {
    Default,
    NoBackpressure,
    Limits(usize, usize),
    Producer,
}

struct Echo {
    seen: Rc<Seen>,
    setup: Setup,
}

impl Protocol for Echo {
    fn connection_made(&mut self, cx: &Context<Self>) {
        let t = cx.transport();
        match self.setup {
            Setup::Default => {}
            Setup::NoBackpressure => t.set_read_backpressure(false),
            Setup::Limits(high, low) => t.set_write_buffer_limits(high, low),
            Setup::Producer => t.register_producer(Rc::new(Idle), true).unwrap(),
        }
    }
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        cx.transport().write(data);
        let s = &self.seen;
        s.received.set(s.received.get() + data.len());
        s.max_buffered
            .set(s.max_buffered.get().max(cx.transport().buffered()));
    }
    fn connection_lost(&mut self, _cx: &Context<Self>, _reason: Failure) {
        self.seen.lost.set(true);
    }
}

fn fnv(sum: u64, data: &[u8]) -> u64 {
    data.iter().fold(sum, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn byte(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// Serves one echo connection and runs a client that writes `total` bytes and reads nothing
/// until `reading` is set; returns what the server saw and the checksums (sent, received).
fn run(total: usize, setup: Setup, reading: Arc<AtomicBool>) -> (Rc<Seen>, u64, u64, usize) {
    let reactor = Reactor::new().unwrap();
    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    let port = listen_tcp_with(
        &reactor,
        0,
        for_protocol(move || Echo {
            seen: s.clone(),
            setup,
        }),
        ListenOptions::on("127.0.0.1"),
    )
    .unwrap();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port.port())).unwrap();
    let mut writer = conn.try_clone().unwrap();
    let w = std::thread::spawn(move || {
        let mut sum = FNV_START;
        let mut buf = vec![0u8; 256 * 1024];
        let mut off = 0;
        while off < total {
            let n = buf.len().min(total - off);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = byte(off + i);
            }
            sum = fnv(sum, &buf[..n]);
            writer.write_all(&buf[..n]).unwrap();
            off += n;
        }
        let _ = writer.shutdown(std::net::Shutdown::Write);
        sum
    });
    let go = reading.clone();
    let r = std::thread::spawn(move || {
        while !go.load(Ordering::SeqCst) {
            std::thread::park_timeout(Duration::from_millis(5));
        }
        let mut sum = FNV_START;
        let mut got = 0;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    sum = fnv(sum, &buf[..n]);
                    got += n;
                }
            }
        }
        (sum, got)
    });
    // Where back-pressure applies, the server is stalled once its buffer went above the
    // high-water mark and nothing more arrives for a while: then the client starts reading
    // (starting early would not change what is checked). Where it does not, the server
    // takes everything first.
    let bounded_setup = matches!(setup, Setup::Default | Setup::Limits(..));
    // The stall must come from back-pressure, not from a writer thread starved for a while on
    // a loaded machine: the reader starts only once the buffer went above the mark in force.
    let high = match setup {
        Setup::Limits(high, _) => high,
        _ => DEFAULT_HIGH_WATER,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (0, Instant::now());
    while !seen.lost.get() && Instant::now() < deadline {
        reactor.iterate(Duration::from_millis(5)).unwrap();
        if !reading.load(Ordering::SeqCst) {
            let got = seen.received.get();
            if got != last.0 {
                last = (got, Instant::now());
            } else if got == total
                || (bounded_setup
                    && seen.max_buffered.get() > high
                    && last.1.elapsed() > Duration::from_millis(300))
            {
                reading.store(true, Ordering::SeqCst);
            }
        }
        // Once the client's write side is done and every byte went back, close.
        if seen.received.get() == total {
            break;
        }
    }
    reading.store(true, Ordering::SeqCst);
    let sent_sum = w.join().unwrap();
    // Let the last bytes leave, then close the server's end so the reader sees EOF.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) && !seen.lost.get() {
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
    let (got_sum, got) = r.join().unwrap();
    (seen, sent_sum, got_sum, got)
}

/// 64 MiB written by a client that does not read: the echo's buffer stays below the
/// high-water mark plus one read chunk, and once the client reads, every byte arrives.
#[test]
fn echo_to_a_peer_that_does_not_read_stays_bounded() {
    const TOTAL: usize = 64 << 20;
    bounded(120, || {
        let (seen, sent, got_sum, got) =
            run(TOTAL, Setup::Default, Arc::new(AtomicBool::new(false)));
        let max = seen.max_buffered.get();
        println!("max buffered {max} bytes for {TOTAL} bytes echoed");
        assert!(
            max <= DEFAULT_HIGH_WATER + READ_CHUNK,
            "the echo buffered {max} bytes"
        );
        assert!(
            max > DEFAULT_HIGH_WATER,
            "the peer never pushed back ({max})"
        );
        assert_eq!(got, TOTAL);
        assert_eq!(got_sum, sent, "the echoed bytes differ");
    });
}

/// With back-pressure off (Twisted's behaviour), the same echo buffers far more than that.
#[test]
fn without_backpressure_the_buffer_grows() {
    const TOTAL: usize = 16 << 20;
    bounded(120, || {
        let (seen, sent, got_sum, got) = run(
            TOTAL,
            Setup::NoBackpressure,
            Arc::new(AtomicBool::new(false)),
        );
        let max = seen.max_buffered.get();
        println!("max buffered {max} bytes without back-pressure");
        assert!(max > 4 * (DEFAULT_HIGH_WATER + READ_CHUNK), "{max}");
        assert_eq!(got, TOTAL);
        assert_eq!(got_sum, sent);
    });
}

/// The water marks set by the protocol bound the buffer instead of the defaults.
#[test]
fn backpressure_follows_the_water_marks() {
    // More than the kernel's socket buffers on both sides can hold.
    const TOTAL: usize = 32 << 20;
    const HIGH: usize = 1 << 20;
    bounded(120, || {
        let setup = Setup::Limits(HIGH, HIGH / 4);
        let (seen, sent, got_sum, got) = run(TOTAL, setup, Arc::new(AtomicBool::new(false)));
        let max = seen.max_buffered.get();
        println!("max buffered {max} bytes with a 1 MiB high-water mark");
        assert!(max <= HIGH + READ_CHUNK, "{max}");
        assert!(max > HIGH, "{max}");
        assert_eq!(got, TOTAL);
        assert_eq!(got_sum, sent);
    });
}

/// A registered producer takes over flow control: reading is not held back for it.
#[test]
fn a_registered_producer_turns_backpressure_off() {
    const TOTAL: usize = 16 << 20;
    bounded(120, || {
        let (seen, sent, got_sum, got) =
            run(TOTAL, Setup::Producer, Arc::new(AtomicBool::new(false)));
        let max = seen.max_buffered.get();
        println!("max buffered {max} bytes with a producer registered");
        assert!(max > 4 * (DEFAULT_HIGH_WATER + READ_CHUNK), "{max}");
        assert_eq!(got, TOTAL);
        assert_eq!(got_sum, sent);
    });
}

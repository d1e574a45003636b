//! `protocols::portforward` over real TCP on 127.0.0.1: a forwarder (run by a twistor reactor
//! on the test's thread) in front of a server, with plain blocking sockets on other threads as
//! the client and, for the back-pressure tests, the server.
//!
//! Back-pressure is measured exactly on Linux: once the flow has stalled, every byte the
//! writer handed to its kernel is in one of four kernel queues (the send and receive queues
//! along the two connections, read from `/proc/net/tcp`), already read by the reader, or in
//! the forwarder's memory. So the forwarder's buffer is `written - read - queued`, and it must
//! stay within the transport's high-water mark plus one read chunk.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use twistor::protocol::{Context, Protocol, for_protocol};
use twistor::protocols::portforward::proxy_factory;
use twistor::reactor::{Reactor, ThreadHandle};
use twistor::transport::tcp::{DEFAULT_HIGH_WATER, ListenOptions, listen_tcp_with};
use util::bounded;

/// What one read of a TCP transport delivers at most (`READ_CHUNK` in `transport::tcp`).
const READ_CHUNK: usize = 64 * 1024;
/// The period of the test pattern: a prime, so it never lines up with chunk sizes.
const PERIOD: usize = 65_521;

/// The test stream: byte `i` is `TABLE[i % PERIOD]`; `TABLE` is longer than a period so any
/// 64 KiB window of the stream is one slice of it.
fn table() -> Vec<u8> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let period: Vec<u8> = (0..PERIOD)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    (0..PERIOD + 2 * READ_CHUNK)
        .map(|i| period[i % PERIOD])
        .collect()
}

/// The stream's bytes `[offset, offset + len)`, `len <= 2 * READ_CHUNK`.
fn stream_slice(table: &[u8], offset: u64, len: usize) -> &[u8] {
    let start = (offset % PERIOD as u64) as usize;
    &table[start..start + len]
}

/// FNV-1a, the checksum compared end to end.
fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Echoes.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        cx.transport().write(data);
    }
}

/// Stops the reactor when dropped: the driving thread stops it however it ends.
struct StopOnDrop(ThreadHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Runs `scenario` on a thread of its own while this thread runs `reactor`; returns (or
/// re-raises the panic of) the scenario.
fn drive<T: Send + 'static>(reactor: &Reactor, scenario: impl FnOnce() -> T + Send + 'static) -> T {
    let stop = StopOnDrop(reactor.thread_handle());
    let driver = std::thread::spawn(move || {
        let _stop = stop;
        scenario()
    });
    reactor.run_without_signal_handlers().expect("reactor run");
    match driver.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

#[test]
fn eight_mib_round_trip_through_the_forwarder() {
    const TOTAL: u64 = 8 << 20;
    bounded(120, || {
        let reactor = Reactor::new().unwrap();
        let echo = listen_tcp_with(
            &reactor,
            0,
            Rc::new(for_protocol(|| Echo)),
            ListenOptions::on("127.0.0.1"),
        )
        .unwrap()
        .port();
        let forward = listen_tcp_with(
            &reactor,
            0,
            Rc::new(proxy_factory(&reactor, "127.0.0.1", echo)),
            ListenOptions::on("127.0.0.1"),
        )
        .unwrap()
        .port();
        let (sent_sum, got_sum, got_len) = drive(&reactor, move || {
            let table = Arc::new(table());
            let mut conn = util::connect_local(forward);
            let mut writer = conn.try_clone().unwrap();
            let t = table.clone();
            let w = std::thread::spawn(move || {
                let mut sum = FNV_START;
                let mut off = 0u64;
                while off < TOTAL {
                    let n = (TOTAL - off).min(50_000) as usize;
                    let chunk = stream_slice(&t, off, n);
                    writer.write_all(chunk).expect("writing to the forwarder");
                    sum = fnv(sum, chunk);
                    off += n as u64;
                }
                sum
            });
            let mut sum = FNV_START;
            let mut got = 0u64;
            let mut buf = vec![0u8; 100_000];
            while got < TOTAL {
                let n = match conn.read(&mut buf) {
                    Ok(0) => panic!("EOF after {got} of {TOTAL} bytes"),
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => panic!("read failed after {got} bytes: {e}"),
                };
                assert!(
                    buf[..n] == *stream_slice(&table, got, n),
                    "bytes {got}..{} differ from what was sent",
                    got + n as u64
                );
                sum = fnv(sum, &buf[..n]);
                got += n as u64;
            }
            let sent = w.join().expect("writer");
            // Nothing more comes back, and closing our end closes the forwarded connection.
            drop(conn);
            (sent, sum, got)
        });
        assert_eq!(got_len, TOTAL);
        assert_eq!(
            sent_sum, got_sum,
            "checksums of what was sent and what came back"
        );
    });
}

/// Which way the data flows for a back-pressure test.
#[derive(Clone, Copy, Debug)]
enum Direction {
    /// The server writes, the client stops reading.
    ServerToClient,
    /// The client writes, the server stops reading.
    ClientToServer,
}

/// The sum of the send and receive queues of the established TCP sockets with one end on
/// `ports`, and their `/proc/net/tcp` lines; `None` where there is no `/proc/net/tcp`.
fn kernel_queued(ports: &[u16]) -> Option<(u64, Vec<String>)> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port_of = |a: &str| {
        a.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let mut sum = 0;
    let mut lines = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[3] != "01" {
            continue; // not ESTABLISHED
        }
        let (local, remote) = (port_of(f[1]), port_of(f[2]));
        if !ports
            .iter()
            .any(|p| local == Some(*p) || remote == Some(*p))
        {
            continue;
        }
        let (tx, rx) = f[4].split_once(':')?;
        sum += u64::from_str_radix(tx, 16).ok()? + u64::from_str_radix(rx, 16).ok()?;
        lines.push(line.trim().to_string());
    }
    Some((sum, lines))
}

/// A listener on 127.0.0.1:0 whose accepted sockets have a small receive buffer.
fn small_listener() -> TcpListener {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(64 * 1024).unwrap();
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    s.listen(8).unwrap();
    s.into()
}

/// A connection to 127.0.0.1:`port` with a small receive buffer (set before connecting, so
/// the advertised window is small from the start).
fn small_connect(port: u16) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(64 * 1024).unwrap();
    s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Accepts one connection, waiting at most 10 s.
fn accept_bounded(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
                return s;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "the forwarder did not connect to the server within 10 s"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Writes the test stream to `sock` (non-blocking, so the count is exact: a blocked write
/// would have moved bytes into the kernel that its return value does not count yet), up to
/// `total` bytes, then closes it. Stops early when `abort` is set or the peer goes away.
fn write_stream(
    sock: TcpStream,
    total: u64,
    written: Arc<AtomicU64>,
    abort: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = socket2::SockRef::from(&sock).set_send_buffer_size(64 * 1024);
        sock.set_nonblocking(true).unwrap();
        let table = table();
        let mut off = 0u64;
        let deadline = Instant::now() + Duration::from_secs(90);
        while off < total && !abort.load(Ordering::SeqCst) && Instant::now() < deadline {
            let n = (total - off).min(READ_CHUNK as u64) as usize;
            match (&sock).write(stream_slice(&table, off, n)) {
                Ok(n) => {
                    off += n as u64;
                    written.store(off, Ordering::SeqCst);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        // Dropping `sock` closes it: the forwarder passes the EOF on once it has forwarded
        // everything.
    })
}

/// Reads exactly `n` bytes of the stream from `sock`, checking each against the pattern.
fn read_checked(sock: &mut TcpStream, table: &[u8], from: u64, n: u64) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut got = 0u64;
    while got < n {
        let want = ((n - got) as usize).min(buf.len());
        let k = match sock.read(&mut buf[..want]) {
            Ok(0) => panic!("EOF after {} bytes", from + got),
            Ok(k) => k,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("read failed after {} bytes: {e}", from + got),
        };
        assert!(
            buf[..k] == *stream_slice(table, from + got, k),
            "bytes from {} differ from what was sent",
            from + got
        );
        got += k as u64;
    }
}

fn back_pressure(direction: Direction) {
    // Far more than all the kernel buffers along the way can hold: if the forwarder kept
    // reading from the writer while the reader is stopped, the writer would get all of it out.
    const TOTAL: u64 = 64 << 20;
    const FIRST: u64 = 1 << 20;
    bounded(180, move || {
        let reactor = Reactor::new().unwrap();
        let server = small_listener();
        let server_port = server.local_addr().unwrap().port();
        let forward = listen_tcp_with(
            &reactor,
            0,
            Rc::new(proxy_factory(&reactor, "127.0.0.1", server_port)),
            ListenOptions::on("127.0.0.1"),
        )
        .unwrap()
        .port();
        let report = drive(&reactor, move || {
            let table = table();
            let client = small_connect(forward);
            let upstream = accept_bounded(&server);
            let (source, mut sink) = match direction {
                Direction::ServerToClient => (upstream, client),
                Direction::ClientToServer => (client, upstream),
            };
            let written = Arc::new(AtomicU64::new(0));
            let abort = Arc::new(AtomicBool::new(false));
            // Abort the writer however this thread ends.
            struct Abort(Arc<AtomicBool>);
            impl Drop for Abort {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let _abort = Abort(abort.clone());
            let writer = write_stream(source, TOTAL, written.clone(), abort.clone());

            // The data flows...
            read_checked(&mut sink, &table, 0, FIRST);
            // ...then the reader stops. Wait until the writer is stuck: nothing more written
            // for 500 ms.
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut last = written.load(Ordering::SeqCst);
            let mut since = Instant::now();
            while since.elapsed() < Duration::from_millis(500) {
                assert!(Instant::now() < deadline, "the writer never stalled");
                std::thread::sleep(Duration::from_millis(20));
                let now = written.load(Ordering::SeqCst);
                if now != last {
                    last = now;
                    since = Instant::now();
                }
            }
            let stalled_at = last;
            assert!(
                stalled_at < TOTAL,
                "{direction:?}: the writer got all {TOTAL} bytes out while the reader had \
                 stopped after {FIRST}: the forwarder does not stop reading"
            );
            // Where the bytes in flight are: kernel queues, or the forwarder's memory.
            let mut report = format!(
                "{direction:?}: writer stalled after {stalled_at} bytes, reader stopped at \
                 {FIRST}: {} bytes in flight",
                stalled_at - FIRST
            );
            if let Some((queued, lines)) = kernel_queued(&[server_port, forward]) {
                // Settled: two samples agree (the last ACKs and window updates are in).
                let mut queued = queued;
                let mut lines = lines;
                for _ in 0..50 {
                    std::thread::sleep(Duration::from_millis(20));
                    let (q, l) = kernel_queued(&[server_port, forward]).unwrap();
                    if q == queued && written.load(Ordering::SeqCst) == stalled_at {
                        break;
                    }
                    (queued, lines) = (q, l);
                }
                assert_eq!(lines.len(), 4, "the four sockets of the test: {lines:#?}");
                let in_flight = stalled_at - FIRST;
                assert!(
                    queued <= in_flight,
                    "kernel queues {queued} > bytes in flight {in_flight}: {lines:#?}"
                );
                let in_forwarder = in_flight - queued;
                let bound = (DEFAULT_HIGH_WATER + READ_CHUNK) as u64;
                report += &format!(
                    "; {queued} in kernel queues, {in_forwarder} in the forwarder (bound \
                     {bound})"
                );
                assert!(
                    in_forwarder <= bound,
                    "{report}: the forwarder buffers more than its high-water mark plus one \
                     read; sockets: {lines:#?}"
                );
            } else {
                report += " (no /proc/net/tcp: the forwarder's share is not measured)";
            }

            // The reader reads again: the rest comes through, intact, then EOF.
            read_checked(&mut sink, &table, FIRST, TOTAL - FIRST);
            let mut end = [0u8; 1];
            match sink.read(&mut end) {
                Ok(0) => {}
                other => panic!("expected EOF after {TOTAL} bytes, got {other:?}"),
            }
            writer.join().expect("writer thread");
            assert_eq!(written.load(Ordering::SeqCst), TOTAL);
            report
        });
        eprintln!("{report}");
    });
}

#[test]
fn a_client_that_stops_reading_stops_the_forwarder_reading_the_server() {
    back_pressure(Direction::ServerToClient);
}

#[test]
fn a_server_that_stops_reading_stops_the_forwarder_reading_the_client() {
    back_pressure(Direction::ClientToServer);
}

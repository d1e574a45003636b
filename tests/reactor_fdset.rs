//! Watching raw descriptors: Twisted's `IReactorFDSet` (`addReader`, `addWriter`,
//! `removeReader`, `removeAll`; reference 3.4), level-triggered as Twisted's handlers expect,
//! on the edge-triggered poller (design decision 2).

mod util;

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use twistor::reactor::Reactor;
use util::{Log, bounded};

const LIMIT: u64 = 10;

fn reactor() -> Reactor {
    Reactor::new().expect("a new reactor")
}

/// A connected pair; the second end (the one the reactor reads) is non-blocking.
fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// Reads one byte, if one is there.
fn read_one(s: &UnixStream) -> Option<u8> {
    let mut byte = [0u8; 1];
    match (&*s).read(&mut byte) {
        Ok(1) => Some(byte[0]),
        _ => None,
    }
}

/// Writes into `s` (non-blocking) until its send buffer is full.
fn fill(s: &UnixStream) -> usize {
    s.set_nonblocking(true).unwrap();
    let chunk = [0u8; 65536];
    let mut total = 0;
    loop {
        match (&*s).write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("filling the socket: {e}"),
        }
    }
}

/// Reads everything `s` (non-blocking) has.
fn drain(s: &UnixStream) -> usize {
    let mut buf = [0u8; 65536];
    let mut total = 0;
    loop {
        match (&*s).read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("draining the socket: {e}"),
        }
    }
}

/// Sets a flag when dropped: tells that the reactor let go of a handler.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A reader that reads one byte per call is called again on the next turn while data remains
/// (level-triggered), once per turn, and no more once it is drained.
#[test]
fn test_reader_called_again_until_drained() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let (a, b) = pair();
        (&a).write_all(b"hello").unwrap();
        let calls = Log::new();
        let c = calls.clone();
        reactor
            .add_reader(b.as_raw_fd(), move |r| {
                let byte = read_one(&b);
                c.push((byte, r.iterations()));
                if byte == Some(b'o') {
                    let r2 = r.clone();
                    r.call_later(0.03, move || r2.stop().unwrap());
                }
            })
            .unwrap();
        reactor.run_without_signal_handlers().unwrap();
        let calls = calls.get();
        let bytes: Vec<u8> = calls.iter().filter_map(|(b, _)| *b).collect();
        assert_eq!(bytes, b"hello");
        assert_eq!(calls.len(), 5, "called after it was drained: {calls:?}");
        for w in calls.windows(2) {
            assert_eq!(w[1].1, w[0].1 + 1, "not on consecutive turns: {calls:?}");
        }
        drop(a);
    });
}

/// Two busy readers share the loop: each is called once per turn, in the same turns, so
/// neither starves the other.
#[test]
fn test_busy_readers_alternate() {
    const BYTES: usize = 50;
    bounded(LIMIT, || {
        let reactor = reactor();
        let calls = Log::new();
        let left = Rc::new(Cell::new(2));
        let mut writers = Vec::new();
        for name in ["A", "B"] {
            let (a, b) = pair();
            (&a).write_all(&[b'x'; BYTES]).unwrap();
            writers.push(a);
            let (c, left) = (calls.clone(), left.clone());
            let mut got = 0;
            reactor
                .add_reader(b.as_raw_fd(), move |r| {
                    if read_one(&b).is_some() {
                        got += 1;
                        c.push((name, r.iterations()));
                        if got == BYTES {
                            left.set(left.get() - 1);
                            if left.get() == 0 {
                                r.stop().unwrap();
                            }
                        }
                    }
                })
                .unwrap();
        }
        reactor.run_without_signal_handlers().unwrap();
        let calls = calls.get();
        let turns = |who: &str| -> Vec<u64> {
            calls
                .iter()
                .filter(|(n, _)| *n == who)
                .map(|(_, t)| *t)
                .collect()
        };
        let (a, b) = (turns("A"), turns("B"));
        assert_eq!(a.len(), BYTES);
        assert_eq!(a, b, "the readers were not served in the same turns");
        assert!(a.windows(2).all(|w| w[1] > w[0]), "twice in a turn: {a:?}");
        let mut balance = 0i64;
        for (n, _) in &calls {
            balance += if *n == "A" { 1 } else { -1 };
            assert!(balance.abs() <= 1, "one reader ran ahead: {calls:?}");
        }
    });
}

/// A reader may remove itself from its own handler: it is not called again although data
/// remains, and the reactor drops it.
#[test]
fn test_remove_reader_inside_its_handler() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let (a, b) = pair();
        (&a).write_all(b"abc").unwrap();
        let fd = b.as_raw_fd();
        let calls = Log::new();
        let dropped = Rc::new(Cell::new(false));
        let guard = DropFlag(dropped.clone());
        let c = calls.clone();
        reactor
            .add_reader(fd, move |r| {
                let _keep = &guard;
                let byte = read_one(&b);
                let removed = r.remove_reader(fd);
                c.push((byte, removed, r.get_readers().len()));
                let r2 = r.clone();
                r.call_later(0.03, move || r2.stop().unwrap());
            })
            .unwrap();
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(calls.get(), [(Some(b'a'), true, 0)]);
        assert!(dropped.get());
        assert!(!reactor.remove_reader(fd));
        drop(a);
    });
}

/// A reader may replace itself from its own handler: the new handler gets the rest.
#[test]
fn test_replace_reader_inside_its_handler() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let (a, b) = pair();
        (&a).write_all(b"abc").unwrap();
        let b = Rc::new(b);
        let fd = b.as_raw_fd();
        let calls = Log::new();
        let (c, b1) = (calls.clone(), b.clone());
        reactor
            .add_reader(fd, move |r| {
                c.push(("first", read_one(&b1)));
                let (c, b2) = (c.clone(), b1.clone());
                r.add_reader(fd, move |r| {
                    let byte = read_one(&b2);
                    c.push(("second", byte));
                    if byte == Some(b'c') {
                        r.stop().unwrap();
                    }
                })
                .unwrap();
            })
            .unwrap();
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(
            calls.get(),
            [
                ("first", Some(b'a')),
                ("second", Some(b'b')),
                ("second", Some(b'c'))
            ]
        );
        drop(a);
    });
}

/// A writer is called when its descriptor is writable.
#[test]
fn test_add_writer_fires_when_writable() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let (a, b) = pair();
        let fd = a.as_raw_fd();
        let calls = Log::new();
        let c = calls.clone();
        reactor
            .add_writer(fd, move |r| {
                (&a).write_all(b"ping").unwrap();
                c.push(r.remove_writer(fd));
                let r2 = r.clone();
                r.call_later(0.02, move || r2.stop().unwrap());
            })
            .unwrap();
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(calls.get(), [true]);
        let mut buf = [0u8; 4];
        (&b).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    });
}

/// A writer whose send buffer is full is not called until the peer reads, then it is.
#[test]
fn test_writer_waits_for_buffer_space() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let (a, b) = pair();
        let written = fill(&a);
        assert!(written > 0);
        let events = Log::new();
        let e = events.clone();
        let fd = a.as_raw_fd();
        reactor
            .add_writer(fd, move |r| {
                e.push("writable".to_string());
                r.remove_writer(fd);
                r.stop().unwrap();
            })
            .unwrap();
        let e = events.clone();
        reactor.call_later(0.03, move || e.push(format!("drained {}", drain(&b))));
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(
            events.get(),
            [format!("drained {written}"), "writable".to_string()]
        );
        drop(a);
    });
}

/// A reader and a writer on the same descriptor are both served.
#[test]
fn test_reader_and_writer_on_same_descriptor() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let (a, b) = pair();
        let b = Rc::new(b);
        let fd = b.as_raw_fd();
        let events = Log::new();
        let (e, b1) = (events.clone(), b.clone());
        let mut peer = Some(a);
        reactor
            .add_writer(fd, move |r| {
                (&*b1).write_all(b"to a").unwrap();
                e.push("wrote");
                r.remove_writer(fd);
                let (Some(a), e) = (peer.take(), e.clone()) else {
                    return;
                };
                r.call_later(0.01, move || {
                    let mut buf = [0u8; 4];
                    (&a).read_exact(&mut buf).unwrap();
                    e.push(if &buf == b"to a" {
                        "a got it"
                    } else {
                        "a got junk"
                    });
                    (&a).write_all(b"!").unwrap();
                });
            })
            .unwrap();
        let (e, b2) = (events.clone(), b.clone());
        reactor
            .add_reader(fd, move |r| {
                if read_one(&b2) == Some(b'!') {
                    e.push("read");
                    r.remove_reader(fd);
                    r.stop().unwrap();
                }
            })
            .unwrap();
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), ["wrote", "a got it", "read"]);
    });
}

/// A reader is called when its peer closes (end of file), and can tell.
#[test]
fn test_reader_called_on_eof() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let (a, b) = pair();
        let fd = b.as_raw_fd();
        let events = Log::new();
        let e = events.clone();
        reactor
            .add_reader(fd, move |r| {
                let mut buf = [0u8; 8];
                match (&b).read(&mut buf) {
                    Ok(0) => {
                        e.push("eof");
                        r.remove_reader(fd);
                        r.stop().unwrap();
                    }
                    Ok(_) => e.push("data"),
                    Err(_) => e.push("error"),
                }
            })
            .unwrap();
        reactor.call_later(0.01, move || drop(a));
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(events.get(), ["eof"]);
    });
}

/// getReaders, getWriters, removeAll: what is watched, in each direction; removeAll stops
/// watching everything and returns each descriptor once; removing what is not watched is
/// refused.
#[test]
fn test_get_readers_writers_and_remove_all() {
    let reactor = reactor();
    let (_a1, b1) = pair();
    let (_a2, b2) = pair();
    let (_a3, b3) = pair();
    let (r1, w2, rw3) = (b1.as_raw_fd(), b2.as_raw_fd(), b3.as_raw_fd());
    reactor.add_reader(r1, |_| ()).unwrap();
    reactor.add_writer(w2, |_| ()).unwrap();
    reactor.add_reader(rw3, |_| ()).unwrap();
    reactor.add_writer(rw3, |_| ()).unwrap();
    let sorted = |mut v: Vec<i32>| {
        v.sort();
        v
    };
    assert_eq!(sorted(reactor.get_readers()), sorted(vec![r1, rw3]));
    assert_eq!(sorted(reactor.get_writers()), sorted(vec![w2, rw3]));

    assert!(!reactor.remove_writer(r1));
    assert!(!reactor.remove_reader(-1));
    assert_eq!(reactor.get_readers().len(), 2);

    assert!(reactor.remove_writer(rw3));
    assert_eq!(sorted(reactor.get_readers()), sorted(vec![r1, rw3]));
    assert_eq!(reactor.get_writers(), [w2]);
    reactor.add_writer(rw3, |_| ()).unwrap();

    assert_eq!(sorted(reactor.remove_all()), sorted(vec![r1, w2, rw3]));
    assert!(reactor.get_readers().is_empty());
    assert!(reactor.get_writers().is_empty());
    assert!(reactor.remove_all().is_empty());
    assert!(!reactor.remove_reader(r1));
}

/// Handlers of descriptors removed by `remove_all` are not called any more, though ready.
#[test]
fn test_remove_all_stops_handlers() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let (a, b) = pair();
        (&a).write_all(b"ready").unwrap();
        let called = Rc::new(Cell::new(false));
        let (c1, c2) = (called.clone(), called.clone());
        reactor
            .add_reader(b.as_raw_fd(), move |_| c1.set(true))
            .unwrap();
        reactor
            .add_writer(a.as_raw_fd(), move |_| c2.set(true))
            .unwrap();
        assert_eq!(reactor.remove_all().len(), 2);
        let r = reactor.clone();
        reactor.call_later(0.02, move || r.stop().unwrap());
        reactor.run_without_signal_handlers().unwrap();
        assert!(!called.get());
        drop(b);
    });
}

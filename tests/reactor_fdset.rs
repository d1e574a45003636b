//! Watching raw descriptors: Twisted's `IReactorFDSet` (`addReader`, `addWriter`,
//! `removeReader`, `removeAll`), level-triggered as Twisted's handlers expect, on the
//! edge-triggered poller; the reactor keeps the descriptors it watches and hands out guards
//! that name their registration, never a descriptor number.

mod util;

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
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
        let b = Rc::new(b);
        let sock = b.clone();
        let _watch = reactor
            .add_reader(b, move |r| {
                let byte = read_one(&sock);
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
            let b = Rc::new(b);
            let sock = b.clone();
            reactor
                .add_reader(b, move |r| {
                    if read_one(&sock).is_some() {
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
                .unwrap()
                .detach();
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
        let b = Rc::new(b);
        let sock = b.clone();
        let calls = Log::new();
        let dropped = Rc::new(Cell::new(false));
        let guard = DropFlag(dropped.clone());
        let c = calls.clone();
        let watch = reactor
            .add_reader(b.clone(), move |r| {
                let _keep = &guard;
                let byte = read_one(&sock);
                let removed = r.remove_reader(&*sock);
                c.push((byte, removed, r.get_readers().len()));
                let r2 = r.clone();
                r.call_later(0.03, move || r2.stop().unwrap());
            })
            .unwrap();
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(calls.get(), [(Some(b'a'), true, 0)]);
        assert!(dropped.get());
        assert!(!reactor.remove_reader(&*b));
        assert!(!watch.remove(), "the guard outlived its registration");
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
        let calls = Log::new();
        let (c, b1) = (calls.clone(), b.clone());
        let first = reactor
            .add_reader(b.clone(), move |r| {
                c.push(("first", read_one(&b1)));
                let (c, b2) = (c.clone(), b1.clone());
                r.add_reader(b1.clone(), move |r| {
                    let byte = read_one(&b2);
                    c.push(("second", byte));
                    if byte == Some(b'c') {
                        r.stop().unwrap();
                    }
                })
                .unwrap()
                .detach();
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
        // The first guard names the registration that was replaced.
        assert!(!first.is_active());
        assert!(!first.remove());
        drop(a);
    });
}

/// A writer is called when its descriptor is writable.
#[test]
fn test_add_writer_fires_when_writable() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let (a, b) = pair();
        let a = Rc::new(a);
        let sock = a.clone();
        let calls = Log::new();
        let c = calls.clone();
        let _watch = reactor
            .add_writer(a, move |r| {
                (&*sock).write_all(b"ping").unwrap();
                c.push(r.remove_writer(&*sock));
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
        let a = Rc::new(a);
        let sock = a.clone();
        let _watch = reactor
            .add_writer(a.clone(), move |r| {
                e.push("writable".to_string());
                r.remove_writer(&*sock);
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
        let events = Log::new();
        let (e, b1) = (events.clone(), b.clone());
        let mut peer = Some(a);
        let _writing = reactor
            .add_writer(b.clone(), move |r| {
                (&*b1).write_all(b"to a").unwrap();
                e.push("wrote");
                r.remove_writer(&*b1);
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
        let _reading = reactor
            .add_reader(b.clone(), move |r| {
                if read_one(&b2) == Some(b'!') {
                    e.push("read");
                    r.remove_reader(&*b2);
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
        let b = Rc::new(b);
        let sock = b.clone();
        let events = Log::new();
        let e = events.clone();
        let _watch = reactor
            .add_reader(b, move |r| {
                let mut buf = [0u8; 8];
                match (&*sock).read(&mut buf) {
                    Ok(0) => {
                        e.push("eof");
                        r.remove_reader(&*sock);
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
    let (b1, b2, b3) = (Rc::new(b1), Rc::new(b2), Rc::new(b3));
    let (r1, w2, rw3) = (b1.as_raw_fd(), b2.as_raw_fd(), b3.as_raw_fd());
    reactor.add_reader(b1.clone(), |_| ()).unwrap().detach();
    reactor.add_writer(b2.clone(), |_| ()).unwrap().detach();
    reactor.add_reader(b3.clone(), |_| ()).unwrap().detach();
    reactor.add_writer(b3.clone(), |_| ()).unwrap().detach();
    let sorted = |mut v: Vec<i32>| {
        v.sort();
        v
    };
    assert_eq!(sorted(reactor.get_readers()), sorted(vec![r1, rw3]));
    assert_eq!(sorted(reactor.get_writers()), sorted(vec![w2, rw3]));

    assert!(!reactor.remove_writer(&*b1));
    let (_x, unwatched) = pair();
    assert!(!reactor.remove_reader(unwatched.as_fd()));
    assert_eq!(reactor.get_readers().len(), 2);

    assert!(reactor.remove_writer(&*b3));
    assert_eq!(sorted(reactor.get_readers()), sorted(vec![r1, rw3]));
    assert_eq!(reactor.get_writers(), [w2]);
    reactor.add_writer(b3.clone(), |_| ()).unwrap().detach();

    assert_eq!(sorted(reactor.remove_all()), sorted(vec![r1, w2, rw3]));
    assert!(reactor.get_readers().is_empty());
    assert!(reactor.get_writers().is_empty());
    assert!(reactor.remove_all().is_empty());
    assert!(!reactor.remove_reader(&*b1));
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
        let (a, b) = (Rc::new(a), Rc::new(b));
        let reading = reactor
            .add_reader(b.clone(), move |_| c1.set(true))
            .unwrap();
        let writing = reactor
            .add_writer(a.clone(), move |_| c2.set(true))
            .unwrap();
        assert_eq!(reactor.remove_all().len(), 2);
        assert!(!reading.is_active() && !writing.is_active());
        let r = reactor.clone();
        reactor.call_later(0.02, move || r.stop().unwrap());
        reactor.run_without_signal_handlers().unwrap();
        assert!(!called.get());
        drop(b);
    });
}

/// Dropping the guard stops watching, and the reactor lets go of the descriptor it kept: the
/// last owner of the socket was the registration, so the peer sees the end of stream.
#[test]
fn test_dropping_the_guard_stops_watching_and_releases_the_descriptor() {
    let reactor = reactor();
    let (a, b) = pair();
    let called = Rc::new(Cell::new(false));
    let c = called.clone();
    let watch = reactor.add_reader(b, move |_| c.set(true)).unwrap();
    (&a).write_all(b"x").unwrap();
    assert_eq!(reactor.get_readers().len(), 1);
    drop(watch);
    assert!(reactor.get_readers().is_empty());
    reactor.iterate(std::time::Duration::ZERO).unwrap();
    assert!(!called.get());
    let mut buf = [0u8; 1];
    a.set_nonblocking(true).unwrap();
    // Closed with unread data, the end resets the connection; closed empty, it gives EOF.
    match (&a).read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("the watched end is still open: {other:?}"),
    }
}

/// The stale-number scenario: a registration ends, its descriptor number is given to another
/// socket, and that socket is watched; dropping the first registration's guard must leave the
/// new one alone (with numbers, it would have removed it).
#[test]
fn test_stale_guard_does_not_touch_a_reused_descriptor_number() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let (_old_peer, old) = pair();
        let old = Rc::new(old);
        let number = old.as_raw_fd();
        let stale = reactor.add_reader(old.clone(), |_| ()).unwrap();
        assert!(reactor.remove_reader(&*old));

        // The number now names another socket (dup2 swaps the file behind a number we own,
        // so no other thread can take the number in between).
        let (new_peer, new) = pair();
        // SAFETY: both descriptors are open and owned by this test; `number` stays owned by
        // `old`, which from now on refers to the new socket.
        assert_eq!(unsafe { libc::dup2(new.as_raw_fd(), number) }, number);
        drop(new);
        let got = Log::new();
        let g = got.clone();
        let sock = old.clone();
        let _fresh = reactor
            .add_reader(old.clone(), move |r| {
                g.push(read_one(&sock));
                r.stop().unwrap();
            })
            .unwrap();

        drop(stale);
        assert_eq!(
            reactor.get_readers(),
            [number],
            "the stale guard removed the new reader"
        );
        (&new_peer).write_all(b"n").unwrap();
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(got.get(), [Some(b'n')]);
    });
}

/// A reader keeps its descriptor open while it is watched, however the caller let go of it.
#[test]
fn test_watched_descriptor_stays_open() {
    bounded(LIMIT, || {
        let reactor = reactor();
        let (a, b) = pair();
        let got = Log::new();
        let g = got.clone();
        let _watch = reactor
            .add_reader(b, move |r| {
                g.push("readable");
                r.stop().unwrap();
            })
            .unwrap();
        // The caller has no handle on `b` any more; the peer can still write to it.
        (&a).write_all(b"still open").unwrap();
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(got.get(), ["readable"]);
    });
}

//! UNIX stream sockets on real sockets, bounded in time: echo over a path and an abstract
//! name, the socket file's life (mode, unlinked on stop), Twisted's lock-file cases
//! (`test_unix`: `test_pidFile`, `test_socketLocking`, `test_uncleanServerSocketLocking`,
//! `test_connectToUncleanServer`), descriptor passing, peer credentials, and the echo that
//! stays bounded against a peer that never reads.

mod util;

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::error::ConnectionLost;
use twistor::prelude::*;
use twistor::transport::listener::ListeningPort;
use twistor::transport::tcp::DEFAULT_HIGH_WATER;
use twistor::transport::unix::{
    BadFileError, FileDescriptorOverrun, MAX_QUEUED_DESCRIPTORS, PeerCredentials,
    SendDescriptorError, UnixConnectOptions, UnixListenOptions, connect_unix, connect_unix_with,
    listen_unix, listen_unix_with,
};
use twistor::transport::{Address, Transport};
use util::{Log, bounded};

/// A fresh directory for this test's socket files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "twistor-unix-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Iterates `reactor` until `done` or 10 s.
fn run_until(reactor: &Reactor, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
}

struct Echo;
impl Protocol for Echo {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        cx.transport().write(data)
    }
}

/// Sends `text` on connect, records what comes back and its transport.
struct Client {
    text: &'static [u8],
    got: Rc<RefCell<Vec<u8>>>,
    transport: Rc<RefCell<Option<Transport>>>,
    lost: Log<String>,
}

impl Protocol for Client {
    fn connection_made(&mut self, cx: &Context<Self>) {
        *self.transport.borrow_mut() = Some(cx.transport().clone());
        cx.transport().write(self.text);
    }
    fn data_received(&mut self, _cx: &Context<Self>, data: &[u8]) {
        self.got.borrow_mut().extend_from_slice(data);
    }
    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        self.lost.push(reason.to_string());
    }
}

struct Echoed {
    got: Rc<RefCell<Vec<u8>>>,
    transport: Rc<RefCell<Option<Transport>>>,
}

fn echo_once(reactor: &Reactor, path: &Path, text: &'static [u8]) -> Echoed {
    let got = Rc::new(RefCell::new(Vec::new()));
    let transport = Rc::new(RefCell::new(None));
    let (g, t) = (got.clone(), transport.clone());
    connect_unix(
        reactor,
        path,
        for_protocol(move || Client {
            text,
            got: g.clone(),
            transport: t.clone(),
            lost: Log::new(),
        }),
    );
    run_until(reactor, || got.borrow().len() >= text.len());
    assert_eq!(&got.borrow()[..], text);
    Echoed { got, transport }
}

fn stop(reactor: &Reactor, port: &ListeningPort) {
    let d = port.stop_listening(reactor);
    run_until(reactor, || d.has_result());
}

#[test]
fn echo_over_a_path_then_the_file_is_unlinked() {
    bounded(30, || {
        let dir = TempDir::new("echo");
        let path = dir.path("echo.sock");
        let reactor = Reactor::new().unwrap();
        let port = listen_unix(&reactor, &path, for_protocol(|| Echo)).unwrap();
        assert_eq!(port.get_host(), Address::Unix(Some(path.clone())));
        assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());
        let e = echo_once(&reactor, &path, b"hello over a UNIX socket");
        let t = e.transport.borrow().clone().unwrap();
        // The client is unbound; its peer is the server's path.
        assert_eq!(t.get_host(), Address::Unix(None));
        assert_eq!(t.get_peer(), Address::Unix(Some(path.clone())));
        assert!(t.tcp().is_none());
        stop(&reactor, &port);
        assert!(!path.exists(), "stop_listening unlinks the socket file");
        drop(e.got);
    });
}

#[test]
fn the_mode_is_applied_to_the_socket_file() {
    bounded(30, || {
        let dir = TempDir::new("mode");
        let reactor = Reactor::new().unwrap();
        for mode in [0o600, 0o640, 0o666] {
            let path = dir.path(&format!("m{mode:o}.sock"));
            let opts = UnixListenOptions {
                mode,
                ..Default::default()
            };
            let port = listen_unix_with(&reactor, &path, for_protocol(|| Echo), opts).unwrap();
            let got = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(got, mode);
            stop(&reactor, &port);
        }
    });
}

#[test]
fn abstract_names_make_no_file() {
    bounded(30, || {
        let dir = TempDir::new("abstract");
        let name = format!("\0{}", dir.path("abs.sock").display());
        let reactor = Reactor::new().unwrap();
        let port = listen_unix(&reactor, &name, for_protocol(|| Echo)).unwrap();
        assert!(
            std::fs::read_dir(&dir.0).unwrap().next().is_none(),
            "an abstract name creates no file"
        );
        assert!(port.get_host().to_string().starts_with("unix:@"));
        let e = echo_once(&reactor, Path::new(&name), b"abstract");
        let peer = e.transport.borrow().as_ref().unwrap().get_peer();
        assert_eq!(peer, Address::Unix(Some(PathBuf::from(&name))));
        // A second listener on the same name is refused.
        assert!(listen_unix(&reactor, &name, for_protocol(|| Echo)).is_err());
        let _fork = FORK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        stop(&reactor, &port);
        // Once stopped, the name is free again.
        let again = listen_unix(&reactor, &name, for_protocol(|| Echo)).unwrap();
        stop(&reactor, &again);
    });
}

#[test]
fn an_existing_file_without_want_pid_cannot_listen() {
    let dir = TempDir::new("exists");
    let path = dir.path("taken.sock");
    std::fs::write(&path, b"not a socket").unwrap();
    let reactor = Reactor::new().unwrap();
    let e = listen_unix(&reactor, &path, for_protocol(|| Echo)).unwrap_err();
    assert_eq!(e.source.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    // The file that was there is left alone.
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
}

/// `test_pidFile` and `test_socketLocking`: the lock names this process; a second listener
/// cannot take it; stopping removes both the socket file and the lock.
#[test]
fn want_pid_takes_the_lock_and_stop_releases_it() {
    bounded(30, || {
        let dir = TempDir::new("pid");
        let path = dir.path("pid.sock");
        let lock = dir.path("pid.sock.lock");
        let reactor = Reactor::new().unwrap();
        let opts = UnixListenOptions {
            want_pid: true,
            ..Default::default()
        };
        let port = listen_unix_with(&reactor, &path, for_protocol(|| Echo), opts.clone()).unwrap();
        let target = std::fs::read_link(&lock).unwrap();
        assert_eq!(target, PathBuf::from(std::process::id().to_string()));
        let e = listen_unix_with(&reactor, &path, for_protocol(|| Echo), opts.clone()).unwrap_err();
        assert!(e.to_string().contains("lock"), "{e}");
        // The refused listener touched neither the socket nor the lock.
        assert!(path.exists() && std::fs::read_link(&lock).is_ok());
        echo_once(&reactor, &path, b"locked");
        stop(&reactor, &port);
        assert!(!path.exists());
        assert!(std::fs::symlink_metadata(&lock).is_err(), "lock released");
        // Free again.
        let again = listen_unix_with(&reactor, &path, for_protocol(|| Echo), opts).unwrap();
        stop(&reactor, &again);
    });
}

/// Held while a test forks a child and while a test needs a name freed at once: between
/// `fork` and `exec` the child holds copies of every descriptor of this process (close-on-exec
/// closes them only at `exec`), so an abstract name being rebound could still be taken.
static FORK_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The pid of a process that has exited (and been reaped).
fn dead_pid() -> u32 {
    let _fork = FORK_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// `test_uncleanServerSocketLocking`: a lock left by a dead process and the socket file it
/// left are taken over.
#[test]
fn a_stale_lock_and_its_socket_file_are_taken_over() {
    bounded(30, || {
        let dir = TempDir::new("stale");
        let path = dir.path("stale.sock");
        // The leftovers of a server that died: its socket file and its lock.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        std::os::unix::fs::symlink(dead_pid().to_string(), dir.path("stale.sock.lock")).unwrap();
        let reactor = Reactor::new().unwrap();
        let opts = UnixListenOptions {
            want_pid: true,
            ..Default::default()
        };
        let port = listen_unix_with(&reactor, &path, for_protocol(|| Echo), opts).unwrap();
        let target = std::fs::read_link(dir.path("stale.sock.lock")).unwrap();
        assert_eq!(target, PathBuf::from(std::process::id().to_string()));
        echo_once(&reactor, &path, b"taken over");
        stop(&reactor, &port);
    });
}

/// Connects with `check_pid`; the reason it failed, if it did.
fn connect_checked(reactor: &Reactor, path: &Path) -> Result<(), Failure> {
    struct Probe(Rc<RefCell<Option<Result<(), Failure>>>>);
    impl Protocol for Probe {
        fn connection_made(&mut self, cx: &Context<Self>) {
            *self.0.borrow_mut() = Some(Ok(()));
            cx.transport().lose_connection();
        }
        fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
    }
    struct F(Rc<RefCell<Option<Result<(), Failure>>>>);
    impl Factory for F {
        type Protocol = Probe;
        fn build_protocol(&self, _: &Address) -> Option<Probe> {
            Some(Probe(self.0.clone()))
        }
    }
    impl ClientFactory for F {
        fn client_connection_failed(&self, _: &Rc<dyn Connector>, reason: Failure) {
            *self.0.borrow_mut() = Some(Err(reason));
        }
    }
    let out = Rc::new(RefCell::new(None));
    let opts = UnixConnectOptions {
        check_pid: true,
        ..Default::default()
    };
    connect_unix_with(reactor, path, F(out.clone()), opts);
    run_until(reactor, || out.borrow().is_some());
    out.borrow_mut().take().unwrap()
}

/// `test_connectToUncleanServer`: with `check_pid`, a server without a live lock is refused
/// with `BadFileError`; one holding its lock is reached.
#[test]
fn check_pid_needs_a_live_lock() {
    bounded(30, || {
        let dir = TempDir::new("check");
        let reactor = Reactor::new().unwrap();
        // A server listening without a lock.
        let bare = dir.path("bare.sock");
        let port = listen_unix(&reactor, &bare, for_protocol(|| Echo)).unwrap();
        let f = connect_checked(&reactor, &bare).unwrap_err();
        assert!(f.is::<BadFileError>(), "{f}");
        // A stale lock does not count either.
        std::os::unix::fs::symlink(dead_pid().to_string(), dir.path("bare.sock.lock")).unwrap();
        let f = connect_checked(&reactor, &bare).unwrap_err();
        assert!(f.is::<BadFileError>(), "{f}");
        stop(&reactor, &port);
        // A locked server is reached.
        let locked = dir.path("locked.sock");
        let opts = UnixListenOptions {
            want_pid: true,
            ..Default::default()
        };
        let port = listen_unix_with(&reactor, &locked, for_protocol(|| Echo), opts).unwrap();
        connect_checked(&reactor, &locked).unwrap();
        stop(&reactor, &port);
    });
}

#[test]
fn connecting_to_nothing_fails() {
    bounded(30, || {
        let dir = TempDir::new("nothing");
        let reactor = Reactor::new().unwrap();
        let failed: Log<String> = Log::new();
        struct F(Log<String>);
        impl Factory for F {
            type Protocol = Echo;
            fn build_protocol(&self, _: &Address) -> Option<Echo> {
                Some(Echo)
            }
        }
        impl ClientFactory for F {
            fn client_connection_failed(&self, _: &Rc<dyn Connector>, reason: Failure) {
                self.0.push(reason.to_string());
            }
        }
        // No file at all, and a file nobody listens on.
        let stale = dir.path("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        connect_unix(&reactor, dir.path("missing.sock"), F(failed.clone()));
        connect_unix(&reactor, &stale, F(failed.clone()));
        run_until(&reactor, || failed.len() == 2);
    });
}

#[test]
fn peer_credentials_name_this_process() {
    bounded(30, || {
        let dir = TempDir::new("cred");
        let path = dir.path("cred.sock");
        let reactor = Reactor::new().unwrap();
        let seen: Rc<RefCell<Option<PeerCredentials>>> = Rc::new(RefCell::new(None));
        struct Cred(Rc<RefCell<Option<PeerCredentials>>>);
        impl Protocol for Cred {
            fn connection_made(&mut self, cx: &Context<Self>) {
                let ext = cx.transport().unix().expect("a UNIX transport");
                *self.0.borrow_mut() = Some(ext.peer_credentials().unwrap());
            }
            fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
        }
        let s = seen.clone();
        let _port = listen_unix(&reactor, &path, for_protocol(move || Cred(s.clone()))).unwrap();
        let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        run_until(&reactor, || seen.borrow().is_some());
        let c = seen.borrow().unwrap();
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        assert_eq!(
            c,
            PeerCredentials {
                pid: std::process::id() as i32,
                uid,
                gid
            }
        );
    });
}

/// Sends the write end of a pipe on connect, with one byte.
struct SendsPipe(Rc<RefCell<Option<OwnedFd>>>);
impl Protocol for SendsPipe {
    fn connection_made(&mut self, cx: &Context<Self>) {
        let fd = self.0.borrow_mut().take().unwrap();
        let ext = cx.transport().unix().unwrap();
        ext.send_file_descriptor(fd.as_fd()).unwrap();
        // `fd` is ours still (a duplicate was queued): closing it is fine.
        drop(fd);
        cx.transport().write(b"!");
    }
    fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
}

/// Writes through every descriptor it receives, then records the byte that carried it.
struct WritesThrough(Log<String>);
impl Protocol for WritesThrough {
    fn file_descriptor_received(&mut self, _cx: &Context<Self>, fd: OwnedFd) {
        let mut f = std::fs::File::from(fd);
        f.write_all(b"written through the passed descriptor")
            .unwrap();
        self.0.push("fd".into());
    }
    fn data_received(&mut self, _: &Context<Self>, data: &[u8]) {
        self.0.push(String::from_utf8_lossy(data).into_owned());
    }
}

/// A server that passes the write end of a fresh pipe to its first client. Returns the
/// read end, and the directory and port, which must live as long as the test body.
fn serving_a_pipe_end(
    reactor: &Reactor,
    dir: &str,
) -> (TempDir, PathBuf, std::io::PipeReader, ListeningPort) {
    let dir = TempDir::new(dir);
    let path = dir.path("fd.sock");
    let (read_end, write_end) = std::io::pipe().unwrap();
    let slot = Rc::new(RefCell::new(Some(OwnedFd::from(write_end))));
    let port = listen_unix(
        reactor,
        &path,
        for_protocol(move || SendsPipe(slot.clone())),
    )
    .unwrap();
    (dir, path, read_end, port)
}

#[test]
fn a_passed_pipe_end_can_be_written_through() {
    bounded(30, || {
        let reactor = Reactor::new().unwrap();
        let (_dir, path, mut read_end, _port) = serving_a_pipe_end(&reactor, "fd");
        let log: Log<String> = Log::new();
        let l = log.clone();
        connect_unix(
            &reactor,
            &path,
            for_protocol(move || WritesThrough(l.clone())),
        );
        run_until(&reactor, || log.len() == 2);
        // The descriptor came before the byte that carried it.
        assert_eq!(log.get(), ["fd", "!"]);
        // Every write end is closed now (ours, the queued duplicate, the received one).
        let mut got = String::new();
        read_end.read_to_string(&mut got).unwrap();
        assert_eq!(got, "written through the passed descriptor");
    });
}

#[test]
fn received_descriptors_are_closed_by_default() {
    bounded(30, || {
        let reactor = Reactor::new().unwrap();
        let (_dir, path, mut read_end, _port) = serving_a_pipe_end(&reactor, "fdclose");
        // Echo has no `file_descriptor_received`: the default drops (closes) the descriptor.
        let got = Rc::new(Cell::new(false));
        struct Once(Rc<Cell<bool>>);
        impl Protocol for Once {
            fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {
                self.0.set(true)
            }
        }
        let g = got.clone();
        connect_unix(&reactor, &path, for_protocol(move || Once(g.clone())));
        run_until(&reactor, || got.get());
        // No write end is left open anywhere: the pipe reads EOF at once.
        let mut rest = Vec::new();
        read_end.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    });
}

/// More descriptors than bytes to carry them: the connection closes with
/// `FileDescriptorOverrun`; and the queue is bounded.
#[test]
fn more_descriptors_than_bytes_is_an_overrun() {
    bounded(30, || {
        let dir = TempDir::new("overrun");
        let path = dir.path("o.sock");
        let reactor = Reactor::new().unwrap();
        let lost: Log<bool> = Log::new();
        let refused: Log<bool> = Log::new();
        struct Overrun(Log<bool>, Log<bool>);
        impl Protocol for Overrun {
            fn connection_made(&mut self, cx: &Context<Self>) {
                let ext = cx.transport().unix().unwrap();
                let stdin = std::io::stdin();
                for _ in 0..MAX_QUEUED_DESCRIPTORS {
                    ext.send_file_descriptor(stdin.as_fd()).unwrap();
                }
                let e = ext.send_file_descriptor(stdin.as_fd()).unwrap_err();
                self.1.push(matches!(e, SendDescriptorError::Overrun(_)));
                cx.transport().write(b"too few bytes");
            }
            fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
            fn connection_lost(&mut self, _: &Context<Self>, reason: Failure) {
                let overrun = reason
                    .downcast_ref::<ConnectionLost>()
                    .and_then(|l| std::error::Error::source(l))
                    .and_then(|s| s.downcast_ref::<std::io::Error>())
                    .and_then(|io| io.get_ref())
                    .is_some_and(|inner| inner.is::<FileDescriptorOverrun>());
                self.0
                    .push(overrun || reason.to_string().contains("overrun"));
            }
        }
        let (l, r) = (lost.clone(), refused.clone());
        let _port = listen_unix(
            &reactor,
            &path,
            for_protocol(move || Overrun(l.clone(), r.clone())),
        )
        .unwrap();
        let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        run_until(&reactor, || lost.len() == 1);
        assert_eq!(refused.get(), [true]);
        assert_eq!(lost.get(), [true], "closed with FileDescriptorOverrun");
    });
}

/// What the echo saw: the most it ever had buffered, and how much it received.
#[derive(Default)]
struct Seen {
    max_buffered: Cell<usize>,
    received: Cell<usize>,
}

struct MeasuredEcho(Rc<Seen>);
impl Protocol for MeasuredEcho {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        cx.transport().write(data);
        let s = &self.0;
        s.received.set(s.received.get() + data.len());
        s.max_buffered
            .set(s.max_buffered.get().max(cx.transport().buffered()));
    }
}

/// The connection core over a UNIX socket: an echo to a peer that writes 32 MiB and reads
/// nothing holds at most the high-water mark plus one read chunk, then delivers every byte
/// once the peer reads.
#[test]
fn echo_to_a_peer_that_never_reads_stays_bounded() {
    const TOTAL: usize = 32 << 20;
    const READ_CHUNK: usize = 64 * 1024;
    bounded(120, || {
        let dir = TempDir::new("bp");
        let path = dir.path("bp.sock");
        let reactor = Reactor::new().unwrap();
        let seen = Rc::new(Seen::default());
        let s = seen.clone();
        let _port = listen_unix(
            &reactor,
            &path,
            for_protocol(move || MeasuredEcho(s.clone())),
        )
        .unwrap();
        let conn = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let mut writer = conn.try_clone().unwrap();
        let w = std::thread::spawn(move || {
            let buf = vec![7u8; 256 * 1024];
            let mut off = 0;
            while off < TOTAL {
                let n = buf.len().min(TOTAL - off);
                writer.write_all(&buf[..n]).unwrap();
                off += n;
            }
        });
        // Run until the echo stalls: nothing more received for 300 ms.
        let mut last = (usize::MAX, Instant::now());
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            reactor.iterate(Duration::from_millis(5)).unwrap();
            let got = seen.received.get();
            if got != last.0 {
                last = (got, Instant::now());
            } else if last.1.elapsed() > Duration::from_millis(300) {
                break;
            }
        }
        let max = seen.max_buffered.get();
        assert!(seen.received.get() < TOTAL, "the echo read everything");
        assert!(
            max > DEFAULT_HIGH_WATER,
            "the peer never pushed back ({max})"
        );
        assert!(
            max <= DEFAULT_HIGH_WATER + READ_CHUNK,
            "the echo buffered {max} bytes"
        );
        // Now the peer reads: every byte comes back.
        let mut reader = conn;
        let r = std::thread::spawn(move || {
            let mut got = 0;
            let mut buf = vec![0u8; 256 * 1024];
            while got < TOTAL {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        assert!(buf[..n].iter().all(|b| *b == 7));
                        got += n;
                    }
                }
            }
            got
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while !r.is_finished() && Instant::now() < deadline {
            reactor.iterate(Duration::from_millis(5)).unwrap();
        }
        w.join().unwrap();
        assert_eq!(r.join().unwrap(), TOTAL);
        assert!(seen.max_buffered.get() <= DEFAULT_HIGH_WATER + READ_CHUNK);
    });
}

/// A full accept queue refuses a non-blocking UNIX connect with `EAGAIN`: the connector
/// tries again (within its timeout) rather than waiting for an event that never comes.
#[test]
fn connects_beyond_a_full_accept_queue_get_through() {
    bounded(30, || {
        let dir = TempDir::new("backlog");
        let path = dir.path("b.sock");
        let reactor = Reactor::new().unwrap();
        let opts = UnixListenOptions {
            backlog: 1,
            ..Default::default()
        };
        let _port = listen_unix_with(&reactor, &path, for_protocol(|| Echo), opts).unwrap();
        let connected = Rc::new(Cell::new(0));
        struct Count(Rc<Cell<usize>>);
        impl Protocol for Count {
            fn connection_made(&mut self, _: &Context<Self>) {
                self.0.set(self.0.get() + 1);
            }
            fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
        }
        // All dialled before the reactor runs, so nothing is accepted meanwhile: the queue
        // (backlog 1) fills after two and the rest meet EAGAIN.
        let c = connected.clone();
        let factory = Rc::new(for_protocol(move || Count(c.clone())));
        let connectors: Vec<_> = (0..10)
            .map(|_| connect_unix(&reactor, &path, factory.clone()))
            .collect();
        run_until(&reactor, || connected.get() == 10);
        drop(connectors);
    });
}

/// Sends two descriptors, then several chunks of data in one flush.
struct SendsTwoThenData(Rc<RefCell<Vec<OwnedFd>>>, Vec<u8>);
impl Protocol for SendsTwoThenData {
    fn connection_made(&mut self, cx: &Context<Self>) {
        let ext = cx.transport().unix().unwrap();
        for fd in self.0.borrow_mut().drain(..) {
            ext.send_file_descriptor(fd.as_fd()).unwrap();
        }
        for chunk in self.1.chunks(70_000) {
            cx.transport().write(chunk);
        }
        cx.transport().lose_write_connection();
    }
    fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
}

/// Records descriptors and bytes as they come, and the end of stream.
#[derive(Default)]
struct Received {
    fds: RefCell<Vec<OwnedFd>>,
    data: RefCell<Vec<u8>>,
    /// How many bytes had arrived when each descriptor did.
    fd_at: RefCell<Vec<usize>>,
    eof: Cell<bool>,
}

struct Receives(Rc<Received>);
impl Protocol for Receives {
    fn file_descriptor_received(&mut self, _cx: &Context<Self>, fd: OwnedFd) {
        self.0.fd_at.borrow_mut().push(self.0.data.borrow().len());
        self.0.fds.borrow_mut().push(fd);
    }
    fn data_received(&mut self, _: &Context<Self>, data: &[u8]) {
        self.0.data.borrow_mut().extend_from_slice(data);
    }
    fn read_connection_lost(&mut self, cx: &Context<Self>) {
        self.0.eof.set(true);
        cx.transport().lose_connection();
    }
}

/// Descriptors ride on the first bytes of a multi-chunk flush; every byte after them
/// arrives, in order, and the half-close comes after all of it.
#[test]
fn descriptors_then_a_large_write_arrive_in_order() {
    bounded(30, || {
        let dir = TempDir::new("fdbig");
        let path = dir.path("fd.sock");
        let reactor = Reactor::new().unwrap();
        let (mut r1, w1) = std::io::pipe().unwrap();
        let (mut r2, w2) = std::io::pipe().unwrap();
        let fds = Rc::new(RefCell::new(vec![OwnedFd::from(w1), OwnedFd::from(w2)]));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let _port = listen_unix(
            &reactor,
            &path,
            for_protocol(move || SendsTwoThenData(fds.clone(), sent.clone())),
        )
        .unwrap();
        let got = Rc::new(Received::default());
        let g = got.clone();
        connect_unix(&reactor, &path, for_protocol(move || Receives(g.clone())));
        run_until(&reactor, || got.eof.get());
        assert_eq!(*got.data.borrow(), data);
        // One descriptor per leading byte: both come before the data that carried them.
        assert_eq!(got.fd_at.borrow().len(), 2);
        assert_eq!(got.fd_at.borrow()[0], 0);
        assert!(got.fd_at.borrow()[1] <= 1);
        // They are the pipes' write ends, in the order they were queued.
        let mut received = got.fds.borrow_mut();
        let (second, first) = (received.pop().unwrap(), received.pop().unwrap());
        std::fs::File::from(first).write_all(b"one").unwrap();
        std::fs::File::from(second).write_all(b"two").unwrap();
        let (mut a, mut b) = (String::new(), String::new());
        r1.read_to_string(&mut a).unwrap();
        r2.read_to_string(&mut b).unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("one", "two"));
    });
}

/// Code that takes `&impl ReactorUnix` runs against a `MemoryReactor`, which records the
/// calls: no socket, no file.
#[test]
fn memory_reactor_records_unix_calls() {
    use twistor::protocol::FactoryFn;
    use twistor::testing::MemoryReactor;
    use twistor::transport::connector::ConnectorState;
    use twistor::transport::unix::ReactorUnix;

    fn start(r: &impl ReactorUnix) -> ListeningPort {
        let opts = UnixListenOptions {
            mode: 0o600,
            want_pid: true,
            ..Default::default()
        };
        let port = r
            .listen_unix_with("/nonexistent/app.sock", for_protocol(|| Echo), opts)
            .unwrap();
        r.connect_unix("/nonexistent/db.sock", for_protocol(|| Echo));
        port
    }
    let mr = MemoryReactor::new();
    let port = start(&mr);
    assert_eq!(
        port.get_host(),
        Address::Unix(Some("/nonexistent/app.sock".into()))
    );
    let servers = mr.unix_servers();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].options.mode, 0o600);
    assert!(servers[0].options.want_pid);
    assert!(servers[0].factory::<FactoryFn<Echo>>().is_some());
    let clients = mr.unix_clients();
    assert_eq!(clients[0].path, Path::new("/nonexistent/db.sock"));
    assert_eq!(
        clients[0].connector.path(),
        Path::new("/nonexistent/db.sock")
    );
    // Recorded, not run: it never starts an attempt (as the TCP ones).
    assert_eq!(clients[0].connector.state(), ConnectorState::Disconnected);
    assert!(!Path::new("/nonexistent/app.sock").exists());
    assert!(mr.tcp_servers().is_empty());
}

//! Helpers for the TCP tests: driving a reactor until something happened, a recording
//! protocol and factories, and a look at the kernel's side of a socket.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::Failure;
use twistor::protocol::{ClientFactory, Context, Factory, Protocol};
use twistor::reactor::Reactor;
use twistor::transport::connector::Connector;
use twistor::transport::{Address, Transport};

/// Turns the reactor until `cond` holds; fails the test naming `what` after `secs` seconds.
#[track_caller]
pub fn spin(reactor: &Reactor, secs: f64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        reactor
            .iterate(Duration::from_millis(5))
            .expect("reactor turn");
    }
}

/// Turns the reactor for `secs` seconds (to show that something does *not* happen).
pub fn spin_for(reactor: &Reactor, secs: f64) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < deadline {
        reactor
            .iterate(Duration::from_millis(5))
            .expect("reactor turn");
    }
}

/// A deterministic byte pattern of `n` bytes (not periodic over small lengths).
pub fn pattern(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            // xorshift32
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// What a [`Rec`] protocol saw.
#[derive(Default)]
pub struct Events {
    pub made: bool,
    pub data: Vec<u8>,
    /// Number of `data_received` calls.
    pub reads: usize,
    pub lost: Option<Failure>,
    pub read_lost: bool,
    pub write_lost: bool,
    pub transport: Option<Transport>,
    /// Callback names in order.
    pub order: Vec<&'static str>,
}

pub type Shared = Rc<RefCell<Events>>;

pub type OnMade = Box<dyn FnOnce(&Transport)>;
pub type OnData = Box<dyn FnMut(&Transport, &[u8])>;

/// A protocol recording its events in a shared [`Events`], with optional behaviour.
pub struct Rec {
    pub ev: Shared,
    /// Override `read_connection_lost` (half-close aware) instead of closing on EOF.
    pub half_close: bool,
    /// Write back what arrives.
    pub echo: bool,
    pub on_made: Option<OnMade>,
    pub on_data: Option<OnData>,
    /// Shared log of callback names across protocols and factories.
    pub log: Option<Rc<RefCell<Vec<String>>>>,
}

impl Rec {
    pub fn new(ev: &Shared) -> Rec {
        Rec {
            ev: ev.clone(),
            half_close: false,
            echo: false,
            on_made: None,
            on_data: None,
            log: None,
        }
    }
    pub fn echo(mut self) -> Rec {
        self.echo = true;
        self
    }
    pub fn half_close(mut self) -> Rec {
        self.half_close = true;
        self
    }
    pub fn on_made(mut self, f: impl FnOnce(&Transport) + 'static) -> Rec {
        self.on_made = Some(Box::new(f));
        self
    }
    pub fn on_data(mut self, f: impl FnMut(&Transport, &[u8]) + 'static) -> Rec {
        self.on_data = Some(Box::new(f));
        self
    }
}

pub fn shared() -> Shared {
    Rc::new(RefCell::new(Events::default()))
}

impl Protocol for Rec {
    fn connection_made(&mut self, cx: &Context<Self>) {
        {
            let mut ev = self.ev.borrow_mut();
            ev.made = true;
            ev.transport = Some(cx.transport().clone());
            ev.order.push("connection_made");
        }
        if let Some(f) = self.on_made.take() {
            f(cx.transport());
        }
    }
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        {
            let mut ev = self.ev.borrow_mut();
            ev.data.extend_from_slice(data);
            ev.reads += 1;
        }
        if self.echo {
            cx.transport().write(data);
        }
        if let Some(f) = self.on_data.as_mut() {
            f(cx.transport(), data);
        }
    }
    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        if let Some(l) = &self.log {
            l.borrow_mut().push("connection_lost".into());
        }
        let mut ev = self.ev.borrow_mut();
        assert!(ev.lost.is_none(), "connection_lost called twice");
        ev.lost = Some(reason);
        ev.order.push("connection_lost");
    }
    fn read_connection_lost(&mut self, cx: &Context<Self>) {
        {
            let mut ev = self.ev.borrow_mut();
            ev.read_lost = true;
            ev.order.push("read_connection_lost");
        }
        if !self.half_close {
            cx.transport().lose_connection();
        }
    }
    fn write_connection_lost(&mut self, _cx: &Context<Self>) {
        let mut ev = self.ev.borrow_mut();
        ev.write_lost = true;
        ev.order.push("write_connection_lost");
    }
}

type Make = Box<dyn Fn(&Shared) -> Rec>;

/// A hook run from a client factory callback with the connector.
pub type ConnectorHook = Box<dyn FnMut(&Rc<dyn Connector>)>;

/// A factory (server or client) building [`Rec`]s and keeping each one's [`Events`].
pub struct RecFactory {
    pub conns: RefCell<Vec<Shared>>,
    make: Make,
    pub started: Cell<usize>,
    pub stopped: Cell<usize>,
    pub connecting: Cell<usize>,
    pub failed: RefCell<Vec<Failure>>,
    pub lost: RefCell<Vec<Failure>>,
    pub log: Rc<RefCell<Vec<String>>>,
    /// Called from `client_connection_lost` (after the log entry).
    pub on_lost: RefCell<Option<ConnectorHook>>,
    /// Called from `client_connection_failed` (after recording).
    pub on_failed: RefCell<Option<ConnectorHook>>,
}

impl RecFactory {
    pub fn new(make: impl Fn(&Shared) -> Rec + 'static) -> Rc<RecFactory> {
        Rc::new(RecFactory {
            conns: RefCell::new(Vec::new()),
            make: Box::new(make),
            started: Cell::new(0),
            stopped: Cell::new(0),
            connecting: Cell::new(0),
            failed: RefCell::new(Vec::new()),
            lost: RefCell::new(Vec::new()),
            log: Rc::new(RefCell::new(Vec::new())),
            on_lost: RefCell::new(None),
            on_failed: RefCell::new(None),
        })
    }
    /// A factory of plain recorders.
    pub fn plain() -> Rc<RecFactory> {
        Self::new(Rec::new)
    }
    /// A factory of echoing recorders.
    pub fn echo() -> Rc<RecFactory> {
        Self::new(|ev| Rec::new(ev).echo())
    }
    pub fn conn(&self, i: usize) -> Shared {
        self.conns.borrow()[i].clone()
    }
    pub fn count(&self) -> usize {
        self.conns.borrow().len()
    }
}

impl Factory for RecFactory {
    type Protocol = Rec;
    fn build_protocol(&self, _addr: &Address) -> Option<Rec> {
        let ev = shared();
        self.conns.borrow_mut().push(ev.clone());
        let mut p = (self.make)(&ev);
        p.log = Some(self.log.clone());
        Some(p)
    }
    fn start_factory(&self) {
        self.started.set(self.started.get() + 1);
    }
    fn stop_factory(&self) {
        self.stopped.set(self.stopped.get() + 1);
    }
}

impl ClientFactory for RecFactory {
    fn started_connecting(&self, _connector: &Rc<dyn Connector>) {
        self.connecting.set(self.connecting.get() + 1);
    }
    fn client_connection_failed(&self, connector: &Rc<dyn Connector>, reason: Failure) {
        self.failed.borrow_mut().push(reason);
        let hook = self.on_failed.borrow_mut().take();
        if let Some(mut f) = hook {
            f(connector);
            *self.on_failed.borrow_mut() = Some(f);
        }
    }
    fn client_connection_lost(&self, connector: &Rc<dyn Connector>, reason: Failure) {
        self.log.borrow_mut().push("client_connection_lost".into());
        self.lost.borrow_mut().push(reason);
        let hook = self.on_lost.borrow_mut().take();
        if let Some(mut f) = hook {
            f(connector);
            *self.on_lost.borrow_mut() = Some(f);
        }
    }
}

// ---- the kernel's side of a socket ----------------------------------------------------------

/// The descriptor of this process's TCP socket bound to `local` and connected to `peer`.
pub fn find_socket_fd(local: SocketAddr, peer: SocketAddr) -> Option<RawFd> {
    let dir = std::fs::read_dir("/proc/self/fd").ok()?;
    for entry in dir.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        // SAFETY: the descriptor stays open while we look (we only borrow it; if it was closed
        // meanwhile, getsockname fails and we skip it).
        let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&sock);
        let (Ok(l), Ok(p)) = (sock.local_addr(), sock.peer_addr()) else {
            continue;
        };
        if l.as_socket() == Some(local) && p.as_socket() == Some(peer) {
            return Some(fd);
        }
    }
    None
}

/// Bytes in the socket's kernel send queue (not yet acknowledged by the peer).
pub fn outq(fd: RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int.
    let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
    assert_eq!(r, 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
    n as usize
}

/// Bytes in the socket's kernel receive queue.
pub fn inq(fd: RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n as usize
}

/// The kernel's TCP_INFO for the socket.
pub fn tcp_info(fd: RawFd) -> libc::tcp_info {
    // SAFETY: tcp_info is plain old data; getsockopt fills at most `len` bytes of it.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let r = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            &mut info as *mut _ as *mut libc::c_void,
            &mut len,
        );
        assert_eq!(r, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
        info
    }
}

/// An integer socket option.
pub fn sockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> libc::c_int {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the option is an int.
    let r = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            &mut v as *mut _ as *mut libc::c_void,
            &mut len,
        )
    };
    assert_eq!(r, 0, "getsockopt: {}", std::io::Error::last_os_error());
    v
}

/// The number of descriptors this process has open.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
        .saturating_sub(1) // the directory being read
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: plain get/setrlimit on our own process.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
            }
        }
        lim.rlim_cur
    }
}

/// Sets the soft RLIMIT_NOFILE.
pub fn set_nofile_soft_limit(n: u64) {
    // SAFETY: plain get/setrlimit on our own process.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = n;
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim),
            0,
            "setrlimit: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Re-runs this test binary as a child running only `test`, with `env` set, and returns its
/// output; fails if it does not finish within `secs` seconds or does not succeed.
pub fn run_child(test: &str, env: &str, secs: u64) -> String {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child test");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the child") {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    match status {
        None => {
            panic!("child {test} did not finish within {secs} s\nstdout:\n{out}\nstderr:\n{err}")
        }
        Some(s) if !s.success() => {
            panic!("child {test} failed: {s:?}\nstdout:\n{out}\nstderr:\n{err}")
        }
        Some(_) => out,
    }
}

/// True once the recorded protocol's `connection_lost` ran.
pub fn is_lost_ev(ev: &Shared) -> bool {
    ev.borrow().lost.is_some()
}

//! The site: a [`Factory`] of HTTP channels serving a resource tree (Twisted's
//! `server.Site`).
//!
//! Per request it finds the resource (see [`resource`](crate::web::resource)), renders it,
//! turns the render's answer into the response and writes one access-log line when the
//! response is finished. The `Date` header is formatted once per second, not per request;
//! the access log is buffered and written out when its buffer fills, at least once a second
//! while requests come, and when the site is dropped.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Failure;
use crate::protocol::Factory;
use crate::reactor::{ReactorSpawn, ensure_deferred};
use crate::transport::Address;
use crate::web::http::{HttpChannel, HttpLimits};
use crate::web::request::push_u64;
use crate::web::resource::{Render, Resource, get_child_for_request};
use crate::web::session::SessionStore;
use crate::web::{BodyMode, Request, date, status};

/// The fixed page of a failed render (no details: they go to the log).
const FAILED_PAGE: &[u8] = b"<html><head><title>Processing Failed</title></head><body><b>Processing Failed</b></body></html>";

/// Where access-log lines go.
pub enum AccessLog {
    /// Through `log`, target `twistor::web::access`, level info (the default).
    Log,
    /// To a writer (a file, stderr), buffered.
    Writer(Box<dyn Write>),
    /// Nowhere.
    Off,
}

struct LogState {
    sink: AccessLog,
    buf: Vec<u8>,
    last_flush: u64,
}

impl LogState {
    fn flush(&mut self) {
        if let AccessLog::Writer(w) = &mut self.sink
            && !self.buf.is_empty()
        {
            let _ = w.write_all(&self.buf);
            let _ = w.flush();
        }
        self.buf.clear();
    }
}

impl Drop for LogState {
    fn drop(&mut self) {
        self.flush();
    }
}

struct Clocks {
    secs: u64,
    date_header: Vec<u8>,
    log_time: String,
}

struct Inner {
    root: Rc<dyn Resource>,
    reactor: Rc<dyn ReactorSpawn>,
    limits: HttpLimits,
    server_header: Vec<u8>,
    clocks: RefCell<Clocks>,
    log: RefCell<LogState>,
    served: Cell<u64>,
    /// Log the first `X-Forwarded-For` address instead of the peer's.
    log_forwarded_for: Cell<bool>,
    /// Open connections per peer address (only with `max_connections_per_peer`).
    peers: RefCell<std::collections::HashMap<std::net::IpAddr, usize>>,
    sessions: SessionStore,
    /// Vectors of finished requests' heads, reused for the next heads.
    head_buffers: RefCell<Vec<Vec<u8>>>,
}

/// How many head vectors are kept for reuse (about one per connection answered at once),
/// and the largest one kept: a rare huge head does not pin its memory.
const HEAD_BUFFERS: usize = 256;
const HEAD_BUFFER_MAX: usize = 4096;

/// An HTTP server: the factory of [`HttpChannel`]s for one resource tree. Cheap to clone.
///
/// ```
/// use std::rc::Rc;
/// use twistor::prelude::*;
/// use twistor::web::resource::{Render, Resource};
/// use twistor::web::{Request, Site};
///
/// struct Hello;
/// impl Resource for Hello {
///     fn is_leaf(&self) -> bool { true }
///     fn render_get(&self, _r: &Request) -> Option<Render> { Some("Hello, World!".into()) }
/// }
/// let reactor = Reactor::new().unwrap();
/// let site = Site::new(Rc::new(Hello), Rc::new(reactor.clone()));
/// let port = listen_tcp(&reactor, 0, Rc::new(site)).unwrap();
/// assert!(port.port() > 0);
/// ```
#[derive(Clone)]
pub struct Site(Rc<Inner>);

impl Site {
    /// A site serving `root`, timing and running `async` renders on `reactor` (the real
    /// [`Reactor`](crate::reactor::Reactor), or a
    /// [`MemoryReactor`](crate::testing::MemoryReactor) in tests), with the default limits
    /// and the access log through `log`.
    pub fn new(root: Rc<dyn Resource>, reactor: Rc<dyn ReactorSpawn>) -> Site {
        Site::with_options(root, reactor, HttpLimits::default(), AccessLog::Log)
    }

    /// A site with its limits and access log.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::testing::MemoryReactor;
    /// use twistor::web::site::AccessLog;
    /// use twistor::web::{HttpLimits, Site, resource::Tree};
    /// let limits = HttpLimits { max_body: 1024, ..Default::default() };
    /// let site = Site::with_options(Rc::new(Tree::new()), Rc::new(MemoryReactor::new()), limits, AccessLog::Off);
    /// assert_eq!(site.limits().max_body, 1024);
    /// ```
    pub fn with_options(
        root: Rc<dyn Resource>,
        reactor: Rc<dyn ReactorSpawn>,
        limits: HttpLimits,
        log: AccessLog,
    ) -> Site {
        let sessions = SessionStore::new(reactor.clone());
        Site(Rc::new(Inner {
            root,
            reactor,
            limits,
            server_header: b"Server: twistor\r\n".to_vec(),
            clocks: RefCell::new(Clocks {
                secs: u64::MAX,
                date_header: Vec::new(),
                log_time: String::new(),
            }),
            log: RefCell::new(LogState {
                sink: log,
                buf: Vec::with_capacity(8192),
                last_flush: 0,
            }),
            served: Cell::new(0),
            log_forwarded_for: Cell::new(false),
            peers: RefCell::default(),
            sessions,
            head_buffers: RefCell::new(Vec::new()),
        }))
    }

    /// The limits every connection enforces.
    pub fn limits(&self) -> &HttpLimits {
        &self.0.limits
    }

    /// A channel for one connection (what the factory builds; tests connect it to an
    /// in-memory transport).
    pub fn channel(&self) -> HttpChannel {
        HttpChannel::new(self.clone())
    }

    /// The site's sessions (see [`Request::get_session`]).
    pub fn sessions(&self) -> &SessionStore {
        &self.0.sessions
    }

    /// How many responses were finished.
    pub fn served(&self) -> u64 {
        self.0.served.get()
    }

    /// Behind a reverse proxy: the access log names the client by the first address of the
    /// request's `X-Forwarded-For` header (trimmed; `-` without one) instead of the peer,
    /// which is the proxy (Twisted's `proxiedLogFormatter`). Only for a site every request
    /// reaches through a proxy that sets the header: a client talking to the site directly
    /// can write any address there.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use twistor::testing::{MemoryReactor, StringTransport};
    /// use twistor::web::site::AccessLog;
    /// use twistor::web::{HttpLimits, Site, resource::Tree};
    ///
    /// #[derive(Clone, Default)]
    /// struct Sink(Rc<RefCell<Vec<u8>>>);
    /// impl std::io::Write for Sink {
    ///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
    ///         self.0.borrow_mut().extend_from_slice(b);
    ///         Ok(b.len())
    ///     }
    ///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
    /// }
    /// let sink = Sink::default();
    /// let log = AccessLog::Writer(Box::new(sink.clone()));
    /// let site = Site::with_options(Rc::new(Tree::new()), Rc::new(MemoryReactor::new()),
    ///                               HttpLimits::default(), log);
    /// site.set_log_forwarded_for(true);
    /// let st = StringTransport::new();
    /// st.connect(site.channel());
    /// st.deliver(b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For:  1.1.1.1 , 2.2.2.2\r\n\r\n");
    /// site.flush_log();
    /// assert!(sink.0.borrow().starts_with(b"\"1.1.1.1\" - - ["));
    /// ```
    #[doc(alias = "proxiedLogFormatter")]
    pub fn set_log_forwarded_for(&self, on: bool) {
        self.0.log_forwarded_for.set(on);
    }

    /// Writes buffered access-log lines out now.
    pub fn flush_log(&self) {
        self.0.log.borrow_mut().flush();
    }

    /// An empty vector for a request head: a recycled one when there is one.
    pub(crate) fn head_buffer(&self) -> Vec<u8> {
        self.0.head_buffers.borrow_mut().pop().unwrap_or_default()
    }

    /// Takes back the vector of a finished request's head.
    pub(crate) fn recycle_head_buffer(&self, mut buf: Vec<u8>) {
        let mut pool = self.0.head_buffers.borrow_mut();
        if pool.len() < HEAD_BUFFERS && buf.capacity() <= HEAD_BUFFER_MAX && buf.capacity() > 0 {
            buf.clear();
            pool.push(buf);
        }
    }

    /// Counts a new connection from `ip`; false (not counted) when it has `max` already.
    pub(crate) fn peer_connected(&self, ip: std::net::IpAddr, max: usize) -> bool {
        let mut peers = self.0.peers.borrow_mut();
        let n = peers.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                peers.remove(&ip);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// A connection counted by [`peer_connected`](Self::peer_connected) ended.
    pub(crate) fn peer_disconnected(&self, ip: std::net::IpAddr) {
        let mut peers = self.0.peers.borrow_mut();
        if let Some(n) = peers.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                peers.remove(&ip);
            }
        }
    }

    pub(crate) fn time(&self) -> &dyn ReactorSpawn {
        &*self.0.reactor
    }

    pub(crate) fn server_header(&self) -> &[u8] {
        &self.0.server_header
    }

    /// Refreshes the cached date strings when the second changed, then runs `f` on them.
    /// `reread` false: the clock was read for this request already (its `Date` header), the
    /// cached strings are used as they are.
    fn with_clocks<R>(&self, reread: bool, f: impl FnOnce(&Clocks) -> R) -> R {
        if reread || self.0.clocks.borrow().secs == u64::MAX {
            self.refresh_clocks(coarse_now());
        }
        f(&self.0.clocks.borrow())
    }

    fn refresh_clocks(&self, now: SystemTime) {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut c = self.0.clocks.borrow_mut();
        if c.secs != secs {
            let d = date::http_date(now);
            c.secs = secs;
            c.date_header.clear();
            c.date_header.extend_from_slice(b"Date: ");
            c.date_header.extend_from_slice(d.as_bytes());
            c.date_header.extend_from_slice(b"\r\n");
            // "Sun, 06 Nov 1994 08:49:37 GMT" -> "06/Nov/1994:08:49:37 +0000"
            c.log_time.clear();
            c.log_time.push_str(&d[5..7]);
            c.log_time.push('/');
            c.log_time.push_str(&d[8..11]);
            c.log_time.push('/');
            c.log_time.push_str(&d[12..16]);
            c.log_time.push(':');
            c.log_time.push_str(&d[17..25]);
            c.log_time.push_str(" +0000");
        }
    }

    /// Appends `Date: ...\r\n`, cached for the current second.
    pub(crate) fn write_date_header(&self, out: &mut Vec<u8>) {
        self.with_clocks(true, |c| out.extend_from_slice(&c.date_header))
    }

    /// Finds the resource and renders the request; a panic or a failure gives a 500.
    pub(crate) fn handle(&self, request: Request) {
        if let Some(resource) = self.locate(&request) {
            self.render_located(request, resource);
        }
    }

    /// Finds the resource for `request` (consuming its path). `None`: the request is
    /// answered already (`OPTIONS *`, or a 500 because the traversal panicked).
    pub(crate) fn locate(&self, request: &Request) -> Option<Rc<dyn Resource>> {
        if request.path() == b"*" || request.uri() == b"*" {
            if request.method() == b"OPTIONS" {
                request.write_and_finish(b"");
            } else {
                request.set_response_code(status::NOT_ALLOWED);
                request.set_header("Allow", "OPTIONS");
                request.write_and_finish(b"");
            }
            return None;
        }
        let root = self.0.root.clone();
        match catch_unwind(AssertUnwindSafe(|| get_child_for_request(root, request))) {
            Ok(r) => Some(r),
            Err(p) => {
                processing_failed(request, Failure::from_panic(&*p));
                None
            }
        }
    }

    /// How the located resource takes the body; a panic gives a 500 (`None`).
    pub(crate) fn body_mode(&self, request: &Request, resource: &dyn Resource) -> Option<BodyMode> {
        match catch_unwind(AssertUnwindSafe(|| resource.body_mode(request))) {
            Ok(m) => Some(m),
            Err(p) => {
                processing_failed(request, Failure::from_panic(&*p));
                None
            }
        }
    }

    /// Renders the request with the resource [`locate`](Self::locate) found.
    pub(crate) fn render_located(&self, request: Request, resource: Rc<dyn Resource>) {
        match catch_unwind(AssertUnwindSafe(|| resource.render(&request))) {
            Ok(r) => self.answer(request, r),
            Err(p) => processing_failed(&request, Failure::from_panic(&*p)),
        }
    }

    fn answer(&self, request: Request, render: Render) {
        match render {
            Render::Body(b) => request.write_and_finish(&b),
            Render::Static(b) => request.write_and_finish(b),
            Render::NotDoneYet => {}
            Render::Later(d) => {
                let (ok, err) = (request.clone(), request);
                let _ = d.add_callbacks(
                    move |b| {
                        ok.write_and_finish(&b);
                        Ok(())
                    },
                    move |f| {
                        processing_failed(&err, f);
                        Ok(())
                    },
                );
            }
            Render::Async(fut) => {
                let d = ensure_deferred(&*self.0.reactor, fut);
                self.answer(request, Render::Later(d));
            }
        }
    }

    /// One combined-log-format line for a finished request. `clock_read`: the request's
    /// `Date` header was written just now, its second is the line's (no second clock read).
    pub(crate) fn log_access(&self, request: &Request, clock_read: bool) {
        self.0.served.set(self.0.served.get() + 1);
        let mut log = self.0.log.borrow_mut();
        if matches!(log.sink, AccessLog::Off) {
            return;
        }
        let start = log.buf.len();
        let secs = self.with_clocks(!clock_read, |c| {
            format_line(
                &mut log.buf,
                request,
                &c.log_time,
                self.0.log_forwarded_for.get(),
            );
            c.secs
        });
        match &log.sink {
            AccessLog::Log => {
                let line = String::from_utf8_lossy(&log.buf[start..log.buf.len() - 1]).into_owned();
                log.buf.truncate(start);
                log::info!(target: "twistor::web::access", "{line}");
            }
            AccessLog::Writer(_) => {
                if log.buf.len() >= 8192 || secs != log.last_flush {
                    log.last_flush = secs;
                    log.flush();
                }
            }
            AccessLog::Off => {}
        }
    }
}

impl Factory for Site {
    type Protocol = HttpChannel;
    fn build_protocol(&self, _addr: &Address) -> Option<HttpChannel> {
        Some(self.channel())
    }
    fn stop_factory(&self) {
        self.flush_log();
    }
}

/// The wall clock for `Date` and the access log, which say whole seconds: on Linux the
/// coarse clock (the time at the last scheduler tick, at most a few milliseconds behind,
/// read without touching the time-stamp counter: a third of the price of the precise one,
/// paid on every response).
fn coarse_now() -> SystemTime {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer for the duration of the call.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0
            && let Ok(secs) = u64::try_from(ts.tv_sec)
        {
            return UNIX_EPOCH + std::time::Duration::new(secs, ts.tv_nsec as u32);
        }
    }
    SystemTime::now()
}

/// Logs the failure and answers 500 (or cuts the response if its head is already out).
pub(crate) fn processing_failed(request: &Request, f: Failure) {
    crate::report_error!(target: "twistor::web", "rendering {request:?} failed: {f}");
    if request.finished() || request.lost() {
        return;
    }
    if request.started_writing() {
        request.abort();
        return;
    }
    request.set_response_code(status::INTERNAL_SERVER_ERROR);
    request.remove_header("content-length");
    request.set_header("Content-Type", "text/html");
    request.write_and_finish(FAILED_PAGE);
}

/// Appends `s` escaped as the log format wants: `"` and `\` backslashed, control and
/// non-ASCII bytes as `\xNN`.
fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    if s.iter()
        .all(|&b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
    {
        // The usual case, copied whole.
        out.extend_from_slice(s);
        return;
    }
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x20..=0x7e => out.push(b),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// `"ip" - - [time] "METHOD uri VERSION" code length "referer" "user-agent"\n`.
fn format_line(out: &mut Vec<u8>, r: &Request, time: &str, forwarded_for: bool) {
    out.push(b'"');
    if forwarded_for {
        let first = r
            .get_first_header("x-forwarded-for")
            .and_then(|v| v.split(|&b| b == b',').next())
            .map(<[u8]>::trim_ascii)
            .filter(|v| !v.is_empty());
        escape_into(out, first.unwrap_or(b"-"));
    } else {
        out.extend_from_slice(r.client_ip().as_bytes());
    }
    out.extend_from_slice(b"\" - - [");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"] \"");
    escape_into(out, r.method());
    out.push(b' ');
    escape_into(out, r.uri());
    out.push(b' ');
    out.extend_from_slice(r.version().as_bytes());
    out.extend_from_slice(b"\" ");
    push_u64(out, u64::from(r.code()));
    out.push(b' ');
    match r.sent_length() {
        0 => out.push(b'-'),
        n => push_u64(out, n),
    }
    for h in ["referer", "user-agent"] {
        out.extend_from_slice(b" \"");
        match r.get_header(h) {
            Some(v) => escape_into(out, v),
            None => out.push(b'-'),
        }
        out.push(b'"');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemoryReactor;
    use crate::web::resource::Tree;
    use std::time::Duration;

    fn site() -> Site {
        Site::with_options(
            Rc::new(Tree::new()),
            Rc::new(MemoryReactor::new()),
            HttpLimits::default(),
            AccessLog::Off,
        )
    }

    fn date_at(site: &Site, t: SystemTime) -> (String, String) {
        site.refresh_clocks(t);
        site.with_clocks(false, |c| {
            (
                String::from_utf8_lossy(&c.date_header).into_owned(),
                c.log_time.clone(),
            )
        })
    }

    #[test]
    fn the_cached_date_changes_with_the_second() {
        let s = site();
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let first = date_at(&s, t);
        assert_eq!(first.0, "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
        assert_eq!(first.1, "06/Nov/1994:08:49:37 +0000");
        assert_eq!(date_at(&s, t + Duration::from_millis(999)), first);
        let next = date_at(&s, t + Duration::from_secs(1));
        assert_eq!(next.0, "Date: Sun, 06 Nov 1994 08:49:38 GMT\r\n");
        assert_eq!(next.1, "06/Nov/1994:08:49:38 +0000");
    }

    #[test]
    fn the_log_time_is_twisteds_format() {
        // Twisted's test_combinedLogFormat runs at 1234567890.
        let s = site();
        let (_, log) = date_at(&s, UNIX_EPOCH + Duration::from_secs(1_234_567_890));
        assert_eq!(log, "13/Feb/2009:23:31:30 +0000");
    }

    #[test]
    fn escaping_copies_plain_text_and_escapes_the_rest() {
        let mut out = Vec::new();
        escape_into(&mut out, b"curl/8.0");
        escape_into(&mut out, b" \"q\" \\ \x01\xff");
        assert_eq!(out, b"curl/8.0 \\\"q\\\" \\\\ \\x01\\xff");
    }
}

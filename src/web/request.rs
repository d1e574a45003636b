//! One HTTP request and its response (Twisted's `http.Request` and `server.Request`).
//!
//! A [`Request`] is a cheap clonable handle: a resource that answers later keeps a clone and
//! calls [`write`](Request::write) / [`finish`](Request::finish) when it is ready. The
//! request's head and buffered body are immutable once read (the head kept as the bytes
//! received, with offsets: no allocation per header; a streamed body is not kept, see
//! [`crate::web::request_body`]); the response side lives behind a `RefCell` that is
//! never borrowed across a call out (to the transport, a Deferred, the channel), so any of
//! those may call back into the request.
//!
//! # Response framing
//!
//! The head goes out on the first `write` (or at `finish`). Its framing follows from what is
//! known then: a `Content-Length` header set by the application (or the length of a body
//! rendered at once) is used; otherwise HTTP/1.1 responses are chunked and HTTP/1.0 ones are
//! delimited by closing the connection. HEAD responses and codes 1xx/204/304 never carry body
//! bytes; 1xx/204/304 never carry `Content-Length`. Bytes beyond a declared length are refused
//! (logged as an error), and a response finished short of it closes the connection so the
//! client cannot mistake the next response for the rest of this one.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use smallvec::SmallVec;

use crate::protocol::Handle;
use crate::transport::{Address, Producer, ProducerError, Transport};
use crate::web::chunked::{LAST_CHUNK, write_chunk};
use crate::web::http::HttpChannel;
use crate::web::http::parse::Head;
use crate::web::request_body::{BodyReceiver, BodyStream, RequestBodyError};
use crate::web::site::Site;
use crate::web::{Headers, date, status};
use crate::{Deferred, Failure, Resolver};

/// A cookie for [`Request::add_cookie`]: name, value and attributes. Characters that would
/// end the cookie or the header (`;`, CR, LF) are replaced by spaces.
///
/// ```
/// use twistor::web::request::Cookie;
/// let c = Cookie::new("sid", "abc").path("/").http_only().same_site("Lax");
/// assert_eq!(c.to_header(), b"sid=abc; Path=/; HttpOnly; SameSite=Lax");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Cookie {
    name: String,
    value: String,
    attrs: Vec<String>,
    same_site: Option<String>,
    secure: bool,
}

/// Why [`Request::try_add_cookie`] refused a cookie (Twisted raises `ValueError` from
/// `addCookie` for the same cases).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// `SameSite` other than `Strict`, `Lax` or `None` (any case).
    #[error("invalid SameSite value {0:?}: expected Strict, Lax or None")]
    InvalidSameSite(String),
    /// `SameSite=None` without `Secure`: browsers drop such a cookie.
    #[error("SameSite=None needs Secure")]
    SameSiteNoneWithoutSecure,
}

fn cookie_safe(s: &str) -> String {
    s.replace([';', '\r', '\n'], " ")
}

impl Cookie {
    /// A cookie `name=value` with no attributes.
    pub fn new(name: &str, value: &str) -> Cookie {
        Cookie {
            name: cookie_safe(name),
            value: cookie_safe(value),
            ..Cookie::default()
        }
    }
    /// `; Path=p`.
    pub fn path(mut self, p: &str) -> Cookie {
        self.attrs.push(format!("Path={}", cookie_safe(p)));
        self
    }
    /// `; Domain=d`.
    pub fn domain(mut self, d: &str) -> Cookie {
        self.attrs.push(format!("Domain={}", cookie_safe(d)));
        self
    }
    /// `; Max-Age=secs`.
    pub fn max_age(mut self, secs: u64) -> Cookie {
        self.attrs.push(format!("Max-Age={secs}"));
        self
    }
    /// `; Expires=<HTTP date>`.
    pub fn expires(mut self, t: SystemTime) -> Cookie {
        self.attrs.push(format!("Expires={}", date::http_date(t)));
        self
    }
    /// `; Secure`.
    pub fn secure(mut self) -> Cookie {
        self.attrs.push("Secure".into());
        self.secure = true;
        self
    }
    /// `; HttpOnly`.
    pub fn http_only(mut self) -> Cookie {
        self.attrs.push("HttpOnly".into());
        self
    }
    /// `; SameSite=v` (`Strict`, `Lax` or `None`, any case; checked by [`check`](Self::check)).
    pub fn same_site(mut self, v: &str) -> Cookie {
        self.attrs.push(format!("SameSite={}", cookie_safe(v)));
        self.same_site = Some(v.to_string());
        self
    }
    /// Whether browsers can take the cookie as built: `SameSite` is one of its three values,
    /// and `SameSite=None` comes with `Secure`.
    ///
    /// ```
    /// use twistor::web::request::{Cookie, CookieError};
    /// assert!(Cookie::new("a", "b").same_site("lax").check().is_ok());
    /// assert_eq!(
    ///     Cookie::new("a", "b").same_site("None").check(),
    ///     Err(CookieError::SameSiteNoneWithoutSecure)
    /// );
    /// assert!(Cookie::new("a", "b").same_site("None").secure().check().is_ok());
    /// assert!(Cookie::new("a", "b").same_site("loose").check().is_err());
    /// ```
    pub fn check(&self) -> Result<(), CookieError> {
        match self.same_site.as_deref() {
            None => Ok(()),
            Some(v) if v.eq_ignore_ascii_case("none") && !self.secure => {
                Err(CookieError::SameSiteNoneWithoutSecure)
            }
            Some(v)
                if ["strict", "lax", "none"]
                    .iter()
                    .any(|k| v.eq_ignore_ascii_case(k)) =>
            {
                Ok(())
            }
            Some(v) => Err(CookieError::InvalidSameSite(v.to_string())),
        }
    }
    /// The `Set-Cookie` value.
    pub fn to_header(&self) -> Vec<u8> {
        let mut s = format!("{}={}", self.name, self.value);
        for a in &self.attrs {
            s.push_str("; ");
            s.push_str(a);
        }
        s.into_bytes()
    }
}

/// Appends `n` in decimal (without the formatting machinery: this runs for every response).
pub(crate) fn push_u64(out: &mut Vec<u8>, n: u64) {
    if (100..1000).contains(&n) {
        // Status codes, and many lengths.
        let n = n as u32;
        out.extend_from_slice(&[
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        ]);
        return;
    }
    let mut digits = [0u8; 20];
    out.extend_from_slice(decimal(n, &mut digits));
}

/// `n` in decimal, written at the end of `digits` (no allocation).
pub(crate) fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[i..]
}

/// Appends `data` to `out`, as a chunk when the response is chunked.
fn frame(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if chunked {
        write_chunk(out, data);
    } else {
        out.extend_from_slice(data);
    }
}

/// Percent-decodes `s` (and `+` as a space when `plus` is set); malformed escapes are kept
/// as they are.
pub fn percent_decode(s: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' if i + 2 < s.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(s[i + 1]), hex(s[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Parses `a=1&b=2` (Twisted's `parse_qs(q, keep_blank_values=True)`): pairs split on `&`
/// only, a name without `=` kept with an empty value, empty pairs dropped, `+` and `%XX`
/// decoded, repeated names kept in order. `;` is not a separator (Python stopped splitting
/// on it): a cache that splits on `&` alone and a server that also splits on `;` would
/// disagree about the arguments of one URL.
///
/// ```
/// let args = twistor::web::request::parse_query(b"a=1&a=2&b=&c&&d=%41+B;e=f");
/// assert_eq!(args[&b"a"[..]], vec![b"1".to_vec(), b"2".to_vec()]);
/// assert_eq!(args[&b"b"[..]], vec![b"".to_vec()]);
/// assert_eq!(args[&b"c"[..]], vec![b"".to_vec()]);
/// assert_eq!(args[&b"d"[..]], vec![b"A B;e=f".to_vec()]);
/// assert_eq!(args.len(), 4);
/// ```
pub fn parse_query(q: &[u8]) -> HashMap<Vec<u8>, Vec<Vec<u8>>> {
    let mut args: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
    for pair in q.split(|&b| b == b'&') {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match memchr::memchr(b'=', pair) {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        args.entry(percent_decode(name, true))
            .or_default()
            .push(percent_decode(value, true));
    }
    args
}

/// Decodes standard base64 (`+`, `/`, `=` padding, which may be left out); `None` for any
/// other byte or a malformed end.
fn decode_base64(s: &[u8]) -> Option<Vec<u8>> {
    fn value(b: u8) -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let body = match s.iter().position(|&b| b == b'=') {
        Some(p) => {
            let pad = &s[p..];
            if pad.len() > 2 || pad.iter().any(|&b| b != b'=') || !s.len().is_multiple_of(4) {
                return None;
            }
            &s[..p]
        }
        None => s,
    };
    if body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for quad in body.chunks(4) {
        let mut acc = 0u32;
        for (i, &b) in quad.iter().enumerate() {
            acc |= value(b)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..quad.len()]);
    }
    Some(out)
}

/// What every request of one connection shares: its addresses, whether it is TLS, and the
/// client's IP as the access log writes it (formatted once per connection).
#[derive(Debug)]
pub(crate) struct Connection {
    pub peer: Address,
    pub host: Address,
    pub secure: bool,
    pub client_ip: String,
    /// The channel is inside `Site::handle` for the current request: a response finished
    /// then is recorded in `done` (keep-alive or not) for the channel to pick up when
    /// `handle` returns, instead of queueing a call to a channel that is busy.
    pub dispatching: Cell<bool>,
    pub done: Cell<Option<bool>>,
}

impl Connection {
    pub(crate) fn of(transport: &Transport) -> Connection {
        let peer = transport.get_peer();
        let client_ip = peer
            .socket_addr()
            .map_or_else(|| "-".to_string(), |a| a.ip().to_string());
        Connection {
            host: transport.get_host(),
            secure: transport.tls().is_some(),
            peer,
            client_ip,
            dispatching: Cell::new(false),
            done: Cell::new(None),
        }
    }
}

/// The response side, changed as the application answers.
struct Response {
    code: u16,
    reason: Option<String>,
    headers: Headers,
    cookies: Vec<Vec<u8>>,
    started: bool,
    finished: bool,
    lost: Option<Failure>,
    chunked: bool,
    body_allowed: bool,
    declared: Option<u64>,
    sent: u64,
    keep_alive: bool,
    producer: Option<Rc<dyn Producer>>,
    notify: Vec<Resolver<()>>,
    last_modified: Option<u64>,
    etag: Option<Vec<u8>>,
    /// The path's segments (decoded): the first `consumed` are the prepath, the rest the
    /// postpath. Inline for short paths, so `/` allocates nothing.
    segments: SmallVec<[Vec<u8>; 4]>,
    consumed: usize,
    /// The `Date` header went out with the head, read from the clock then.
    date_written: bool,
    /// The body is gzip-compressed on its way out (see [`Request::encode_gzip`]).
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
    /// The session [`Request::get_session`] gave, so later calls give the same one.
    session: Option<crate::web::session::Session>,
}

struct Inner {
    head: Head,
    /// A buffered body, set once it is read (unset: no body, or a streamed one).
    body: OnceCell<Vec<u8>>,
    /// A streamed body (see [`crate::web::request_body`]).
    stream: OnceCell<Rc<BodyStream>>,
    /// The path's bytes in the head.
    path: std::ops::Range<usize>,
    transport: Transport,
    channel: Option<Handle<HttpChannel>>,
    site: Site,
    conn: Rc<Connection>,
    response: RefCell<Response>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.site
            .recycle_head_buffer(std::mem::take(&mut self.head.raw));
    }
}

/// An HTTP request being answered; clones share it (see the module docs).
///
/// ```
/// use std::rc::Rc;
/// use twistor::testing::{MemoryReactor, StringTransport};
/// use twistor::web::resource::{Render, Resource};
/// use twistor::web::request::Cookie;
/// use twistor::web::{Request, Site};
///
/// struct Show;
/// impl Resource for Show {
///     fn is_leaf(&self) -> bool { true }
///     fn render_get(&self, r: &Request) -> Option<Render> {
///         assert_eq!(r.method(), b"GET");
///         assert_eq!(r.uri(), b"/a%20b/c?x=1&x=2");
///         assert_eq!(r.path(), b"/a%20b/c");
///         assert_eq!(r.args()[&b"x"[..]], vec![b"1".to_vec(), b"2".to_vec()]);
///         assert_eq!(r.postpath(), vec![b"a b".to_vec(), b"c".to_vec()]);
///         assert_eq!(r.get_header("user-agent"), Some(&b"doc"[..]));
///         assert_eq!(r.get_cookie(b"k"), Some(b"v".to_vec()));
///         assert_eq!(r.get_request_hostname(), "example.com");
///         assert!(!r.is_secure());
///         r.set_response_code(201);
///         r.set_header("Content-Type", "text/plain");
///         r.add_cookie(Cookie::new("seen", "1"));
///         // Answer later: keep a clone, write and finish it when ready.
///         let later = r.clone();
///         later.write(b"made");
///         later.finish();
///         Some(Render::NotDoneYet)
///     }
/// }
/// let site = Site::new(Rc::new(Show), Rc::new(MemoryReactor::new()));
/// let st = StringTransport::new();
/// st.connect(site.channel());
/// st.deliver(b"GET /a%20b/c?x=1&x=2 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: doc\r\nCookie: k=v\r\n\r\n");
/// let out = String::from_utf8(st.value()).unwrap();
/// assert!(out.starts_with("HTTP/1.1 201 Created\r\n"));
/// assert!(out.contains("\r\nSet-Cookie: seen=1\r\n"));
/// assert!(out.ends_with("\r\n\r\n4\r\nmade\r\n0\r\n\r\n"));
/// ```
#[derive(Clone)]
pub struct Request(Rc<Inner>);

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<Request {} {} {}>",
            String::from_utf8_lossy(self.method()),
            String::from_utf8_lossy(self.uri()),
            self.version()
        )
    }
}

impl Request {
    pub(crate) fn new(
        head: Head,
        transport: Transport,
        channel: Handle<HttpChannel>,
        site: Site,
        conn: Rc<Connection>,
    ) -> Request {
        let target = head.target();
        // The origin form's path; an absolute-form target (`http://host/p`) is reduced to
        // its path, as RFC 9112 section 3.2.2 asks of servers.
        let path_start = if target.starts_with(b"http://") || target.starts_with(b"https://") {
            let after = memchr::memmem::find(target, b"//").map_or(0, |i| i + 2);
            memchr::memchr(b'/', &target[after..]).map_or(target.len(), |i| after + i)
        } else {
            0
        };
        let path_len =
            memchr::memchr(b'?', &target[path_start..]).unwrap_or(target.len() - path_start);
        let path = &target[path_start..path_start + path_len];
        let segments: SmallVec<[Vec<u8>; 4]> = if path.first() == Some(&b'/') {
            path[1..]
                .split(|&b| b == b'/')
                .map(|s| percent_decode(s, false))
                .collect()
        } else {
            SmallVec::new()
        };
        let t0 = head.target.start as usize;
        let path = t0 + path_start..t0 + path_start + path_len;
        Request(Rc::new(Inner {
            path,
            conn,
            transport,
            channel: Some(channel),
            site,
            body: OnceCell::new(),
            stream: OnceCell::new(),
            response: RefCell::new(Response {
                code: 200,
                reason: None,
                headers: Headers::new(),
                cookies: Vec::new(),
                started: false,
                finished: false,
                lost: None,
                chunked: false,
                body_allowed: true,
                declared: None,
                sent: 0,
                keep_alive: head.keep_alive,
                producer: None,
                notify: Vec::new(),
                last_modified: None,
                etag: None,
                segments,
                consumed: 0,
                date_written: false,
                gzip: None,
                session: None,
            }),
            head,
        }))
    }

    // ----- the request -----

    /// The method, exactly as sent (case-sensitive): `b"GET"`.
    pub fn method(&self) -> &[u8] {
        self.0.head.method()
    }

    /// The request target as sent, with its query string: `b"/a/b?x=1"`.
    pub fn uri(&self) -> &[u8] {
        self.0.head.target()
    }

    /// The target's path, still percent-encoded: `b"/a/b"`.
    pub fn path(&self) -> &[u8] {
        &self.0.head.raw[self.0.path.clone()]
    }

    /// The query string after the first `?` (empty if none).
    pub fn query(&self) -> &[u8] {
        let end = self.0.head.target.end as usize;
        self.0.head.raw.get(self.0.path.end + 1..end).unwrap_or(b"")
    }

    /// The query arguments, decoded (see [`parse_query`]), plus, for a `POST`, the form
    /// fields of its body (appended after the query's): `application/x-www-form-urlencoded`
    /// or `multipart/form-data` (each named part one value, a file's content included). A
    /// multipart body that does not parse adds nothing (logged);
    /// [`try_args`](Self::try_args) says why.
    pub fn args(&self) -> HashMap<Vec<u8>, Vec<Vec<u8>>> {
        match self.try_args() {
            Ok(args) => args,
            Err(e) => {
                log::info!(target: "twistor::web", "{self:?}: form body ignored: {e}");
                parse_query(self.query())
            }
        }
    }

    /// [`args`](Self::args), or why the multipart form body does not parse.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use twistor::testing::{MemoryReactor, StringTransport};
    /// use twistor::web::resource::{Render, Resource};
    /// use twistor::web::{Request, Site};
    ///
    /// #[derive(Default)]
    /// struct Form(RefCell<Vec<Vec<u8>>>);
    /// impl Resource for Form {
    ///     fn is_leaf(&self) -> bool { true }
    ///     fn render_post(&self, r: &Request) -> Option<Render> {
    ///         *self.0.borrow_mut() = r.try_args().unwrap().remove(&b"file"[..]).unwrap();
    ///         Some(Render::Static(b""))
    ///     }
    /// }
    /// let form = Rc::new(Form::default());
    /// let site = Site::new(form.clone(), Rc::new(MemoryReactor::new()));
    /// let st = StringTransport::new();
    /// st.connect(site.channel());
    /// let body = "--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
    ///             Content-Type: text/plain\r\n\r\nfirst\r\n\
    ///             --X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.txt\"\r\n\r\n\
    ///             second\r\n--X--\r\n";
    /// st.deliver(format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; \
    ///     boundary=X\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    /// assert_eq!(*form.0.borrow(), [b"first".to_vec(), b"second".to_vec()]);
    /// ```
    pub fn try_args(
        &self,
    ) -> Result<HashMap<Vec<u8>, Vec<Vec<u8>>>, crate::web::http::multipart::FormError> {
        let mut args = parse_query(self.query());
        if self.method() != b"POST" {
            return Ok(args);
        }
        let Some(ct) = self.get_header("content-type") else {
            return Ok(args);
        };
        let urlencoded = ct.split(|&b| b == b';').next().is_some_and(|t| {
            t.trim_ascii()
                .eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
        });
        if urlencoded {
            for (k, v) in parse_query(self.body()) {
                args.entry(k).or_default().extend(v);
            }
        } else if let Some(boundary) = crate::web::http::multipart::boundary(ct) {
            crate::web::http::multipart::parse(self.body(), &boundary?, &mut args)?;
        }
        Ok(args)
    }

    /// The first value of argument `name`, if any.
    pub fn arg(&self, name: &[u8]) -> Option<Vec<u8>> {
        self.args().remove(name).and_then(|v| v.into_iter().next())
    }

    /// `"HTTP/1.1"` or `"HTTP/1.0"`.
    pub fn version(&self) -> &'static str {
        if self.0.head.http11 {
            "HTTP/1.1"
        } else {
            "HTTP/1.0"
        }
    }

    /// The last value of request header `name` (case-insensitive), trimmed.
    #[doc(alias = "getHeader")]
    pub fn get_header(&self, name: &str) -> Option<&[u8]> {
        let h = &self.0.head;
        h.headers
            .iter()
            .rev()
            .find(|(n, _)| h.slice(n).eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| h.slice(v))
    }

    /// The first value of request header `name` (case-insensitive), trimmed.
    pub(crate) fn get_first_header(&self, name: &str) -> Option<&[u8]> {
        let h = &self.0.head;
        h.headers
            .iter()
            .find(|(n, _)| h.slice(n).eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| h.slice(v))
    }

    /// Every request header, in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let h = &self.0.head;
        h.headers.iter().map(move |(n, v)| (h.slice(n), h.slice(v)))
    }

    /// The request body. Bodies are read whole before the request is answered and held in
    /// memory, up to the site's [`HttpLimits::max_body`](crate::web::http::HttpLimits),
    /// unless the resource asked for a stream
    /// ([`BodyMode::Stream`](crate::web::BodyMode)): then this is empty and the body comes
    /// through [`deliver_body`](Self::deliver_body).
    pub fn body(&self) -> &[u8] {
        self.0.body.get().map_or(&[], Vec::as_slice)
    }

    /// Sets the buffered body, read after the request was made.
    pub(crate) fn set_body(&self, body: Vec<u8>) {
        let _ = self.0.body.set(body);
    }

    /// Makes the body a stream the channel feeds.
    pub(crate) fn set_stream(&self, stream: Rc<BodyStream>) {
        let _ = self.0.stream.set(stream);
    }

    /// How the request's body is framed: `Some(n)` for a `Content-Length` of `n` bytes,
    /// `None` for a chunked body or none (as the parser validated it, not re-read).
    pub(crate) fn declared_length(&self) -> Option<u64> {
        match self.0.head.framing {
            crate::web::http::parse::Framing::Length(n) => Some(n),
            _ => None,
        }
    }

    /// Whether the request has a body at all (a length, even 0, or chunks).
    pub(crate) fn has_body_framing(&self) -> bool {
        !matches!(self.0.head.framing, crate::web::http::parse::Framing::None)
    }

    /// Whether the body comes as a stream (the resource chose
    /// [`BodyMode::Stream`](crate::web::BodyMode)).
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::testing::{MemoryReactor, StringTransport};
    /// use twistor::web::resource::{Render, Resource};
    /// use twistor::web::{Request, Site};
    ///
    /// struct Show;
    /// impl Resource for Show {
    ///     fn is_leaf(&self) -> bool { true }
    ///     fn render_post(&self, r: &Request) -> Option<Render> {
    ///         assert!(!r.body_is_streamed(), "buffered by default");
    ///         Some(Render::Body(r.body().to_vec()))
    ///     }
    /// }
    /// let site = Site::new(Rc::new(Show), Rc::new(MemoryReactor::new()));
    /// let st = StringTransport::new();
    /// st.connect(site.channel());
    /// st.deliver(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
    /// assert!(String::from_utf8(st.value()).unwrap().ends_with("\r\n\r\nhi"));
    /// ```
    pub fn body_is_streamed(&self) -> bool {
        self.0.stream.get().is_some()
    }

    /// Delivers the body to `receiver` (as a client response's `deliver_body` does): the
    /// bytes that arrived already, then each piece as it arrives, then one
    /// [`body_done`](BodyReceiver::body_done) (see [`crate::web::request_body`] for how a
    /// streamed body ends). A buffered body (or none) is delivered at once, on every call;
    /// a streamed body only once: a second call fails with
    /// [`RequestBodyError::AlreadyDelivered`].
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use twistor::Failure;
    /// use twistor::testing::{MemoryReactor, StringTransport};
    /// use twistor::web::resource::{Render, Resource};
    /// use twistor::web::{BodyMode, BodyReceiver, Request, Site};
    ///
    /// // Counts the body and answers with its size once it ended.
    /// struct Count { request: Request, n: usize }
    /// impl BodyReceiver for Count {
    ///     fn data_received(&mut self, data: &[u8]) { self.n += data.len() }
    ///     fn body_done(&mut self, result: Result<(), Failure>) {
    ///         if result.is_ok() { self.request.write_and_finish(self.n.to_string().as_bytes()) }
    ///     }
    /// }
    /// struct Upload;
    /// impl Resource for Upload {
    ///     fn is_leaf(&self) -> bool { true }
    ///     fn body_mode(&self, _r: &Request) -> BodyMode { BodyMode::Stream { max: None } }
    ///     fn render_put(&self, r: &Request) -> Option<Render> {
    ///         r.deliver_body(Count { request: r.clone(), n: 0 }).unwrap();
    ///         Some(Render::NotDoneYet)
    ///     }
    /// }
    /// let site = Site::new(Rc::new(Upload), Rc::new(MemoryReactor::new()));
    /// let st = StringTransport::new();
    /// st.connect(site.channel());
    /// st.deliver(b"PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234");
    /// assert!(st.value().is_empty(), "rendered, the body still arriving");
    /// st.deliver(b"56789");
    /// assert!(String::from_utf8(st.value()).unwrap().ends_with("\r\n\r\n10"));
    /// ```
    #[doc(alias = "deliverBody")]
    pub fn deliver_body<R: BodyReceiver>(&self, receiver: R) -> Result<(), RequestBodyError> {
        self.deliver_body_boxed(Box::new(receiver))
    }

    fn deliver_body_boxed(
        &self,
        mut receiver: Box<dyn BodyReceiver>,
    ) -> Result<(), RequestBodyError> {
        let Some(stream) = self.0.stream.get() else {
            if !self.body().is_empty() {
                receiver.data_received(self.body());
            }
            receiver.body_done(Ok(()));
            return Ok(());
        };
        stream.attach(receiver)?;
        // What waited is handed over: reading may go on.
        self.body_changed();
        Ok(())
    }

    /// The whole body, collected: at once for a buffered body, when it ended for a streamed
    /// one (held in memory: bounded only by the resource's `max`, so use it for bodies
    /// known to be small, and [`deliver_body`](Self::deliver_body) for the rest). Fails as
    /// the stream does (see [`crate::web::request_body`]).
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::testing::{MemoryReactor, StringTransport};
    /// use twistor::web::resource::{Render, Resource};
    /// use twistor::web::{BodyMode, Request, Site};
    ///
    /// struct Echo;
    /// impl Resource for Echo {
    ///     fn is_leaf(&self) -> bool { true }
    ///     fn body_mode(&self, _r: &Request) -> BodyMode { BodyMode::Stream { max: Some(1024) } }
    ///     fn render_post(&self, r: &Request) -> Option<Render> {
    ///         Some(Render::Later(r.read_body()))
    ///     }
    /// }
    /// let site = Site::new(Rc::new(Echo), Rc::new(MemoryReactor::new()));
    /// let st = StringTransport::new();
    /// st.connect(site.channel());
    /// st.deliver(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
    /// st.deliver(b"2\r\nde\r\n0\r\n\r\n");
    /// assert!(String::from_utf8(st.value()).unwrap().ends_with("\r\n\r\nabcde"));
    /// ```
    pub fn read_body(&self) -> crate::Deferred<Vec<u8>> {
        let (d, resolver) = crate::Deferred::new();
        let collect = Collect {
            data: Vec::new(),
            resolver: Some(resolver),
        };
        if let Err(e) = self.deliver_body_boxed(Box::new(collect)) {
            return crate::Deferred::fail(Failure::new(e));
        }
        d
    }

    /// Stops reading a streamed body until [`resume_body`](Self::resume_body): the
    /// receiver gets no more bytes (they wait, bounded: the connection stops reading) and
    /// the body timeout does not run. Nothing for a buffered body.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::testing::{MemoryReactor, ReadState, StringTransport};
    /// use twistor::web::resource::{Render, Resource};
    /// use twistor::web::{BodyMode, Request, Site};
    ///
    /// struct Later;
    /// impl Resource for Later {
    ///     fn is_leaf(&self) -> bool { true }
    ///     fn body_mode(&self, _r: &Request) -> BodyMode { BodyMode::Stream { max: None } }
    ///     fn render_put(&self, r: &Request) -> Option<Render> {
    ///         r.pause_body();
    ///         Some(Render::NotDoneYet)
    ///     }
    /// }
    /// let reactor = Rc::new(MemoryReactor::new());
    /// let site = Site::new(Rc::new(Later), reactor.clone());
    /// let st = StringTransport::new();
    /// st.connect(site.channel());
    /// st.deliver(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n");
    /// assert_eq!(st.read_state(), ReadState::Paused);
    /// reactor.clock().advance(3600.0);
    /// assert!(!st.disconnecting(), "no body timeout while paused");
    /// ```
    #[doc(alias = "pauseProducing")]
    pub fn pause_body(&self) {
        if let Some(s) = self.0.stream.get() {
            s.pause();
            self.body_changed();
        }
    }

    /// Resumes a paused streamed body: what waited is delivered at once, then reading goes
    /// on and the body timeout starts again. May be called from inside the receiver.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::testing::{MemoryReactor, ReadState, StringTransport};
    /// use twistor::web::resource::{Render, Resource};
    /// use twistor::web::{BodyMode, Request, Site};
    /// use std::cell::RefCell;
    ///
    /// #[derive(Default)]
    /// struct Slow(RefCell<Option<Request>>);
    /// impl Resource for Slow {
    ///     fn is_leaf(&self) -> bool { true }
    ///     fn body_mode(&self, _r: &Request) -> BodyMode { BodyMode::Stream { max: None } }
    ///     fn render_put(&self, r: &Request) -> Option<Render> {
    ///         r.pause_body();
    ///         *self.0.borrow_mut() = Some(r.clone());
    ///         Some(Render::NotDoneYet)
    ///     }
    /// }
    /// let slow = Rc::new(Slow::default());
    /// let site = Site::new(slow.clone(), Rc::new(MemoryReactor::new()));
    /// let st = StringTransport::new();
    /// st.connect(site.channel());
    /// st.deliver(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n");
    /// assert_eq!(st.read_state(), ReadState::Paused);
    /// let r = slow.0.borrow_mut().take().unwrap();
    /// r.resume_body();
    /// assert_eq!(st.read_state(), ReadState::Producing);
    /// ```
    #[doc(alias = "resumeProducing")]
    pub fn resume_body(&self) {
        if let Some(s) = self.0.stream.get() {
            s.resume();
            self.body_changed();
        }
    }

    /// The most bytes of a streamed body that ever waited for its receiver at once (0 for
    /// a buffered body): for tests of the memory bound.
    #[doc(hidden)]
    pub fn body_pending_high_water(&self) -> usize {
        self.0.stream.get().map_or(0, |s| s.high_water())
    }

    /// Lets the channel pause or resume reading (and the body timeout) for the stream.
    fn body_changed(&self) {
        if let Some(ch) = &self.0.channel {
            ch.with(|ch, cx| ch.body_flow_changed(cx));
        }
    }

    /// The peer's address (Twisted's `getClientAddress`).
    #[doc(alias = "getClientAddress")]
    pub fn get_client_address(&self) -> &Address {
        &self.0.conn.peer
    }

    /// The local address the request came in on (Twisted's `getHost`).
    #[doc(alias = "getHost")]
    pub fn get_host(&self) -> &Address {
        &self.0.conn.host
    }

    /// The `Host` header without its port (brackets of an IPv6 literal removed), else the
    /// local address.
    #[doc(alias = "getRequestHostname")]
    pub fn get_request_hostname(&self) -> String {
        match self.get_header("host") {
            Some(h) => {
                let h = String::from_utf8_lossy(h);
                if let Some(rest) = h.strip_prefix('[') {
                    rest.split(']').next().unwrap_or("").to_string()
                } else {
                    h.split(':').next().unwrap_or("").to_string()
                }
            }
            None => self
                .0
                .conn
                .host
                .socket_addr()
                .map_or_else(String::new, |a| a.ip().to_string()),
        }
    }

    /// The user name and password of an `Authorization: Basic` header (Twisted's
    /// `getUser` / `getPassword`): the password is everything after the first `:`. `None`
    /// when there is no such header or it does not decode (Twisted gives `b""` for both).
    ///
    /// ```
    /// use std::rc::Rc;
    /// use std::cell::RefCell;
    /// use twistor::testing::{MemoryReactor, StringTransport};
    /// use twistor::web::resource::{Render, Resource};
    /// use twistor::web::{Request, Site};
    ///
    /// #[derive(Default)]
    /// struct Who(RefCell<Option<(Vec<u8>, Vec<u8>)>>);
    /// impl Resource for Who {
    ///     fn is_leaf(&self) -> bool { true }
    ///     fn render_get(&self, r: &Request) -> Option<Render> {
    ///         *self.0.borrow_mut() = r.basic_credentials();
    ///         Some(Render::Static(b""))
    ///     }
    /// }
    /// let who = Rc::new(Who::default());
    /// let site = Site::new(who.clone(), Rc::new(MemoryReactor::new()));
    /// let st = StringTransport::new();
    /// st.connect(site.channel());
    /// // base64("hello:there:z")
    /// st.deliver(b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic aGVsbG86dGhlcmU6eg==\r\n\r\n");
    /// let (user, password) = who.0.borrow_mut().take().unwrap();
    /// assert_eq!((&user[..], &password[..]), (&b"hello"[..], &b"there:z"[..]));
    /// ```
    #[doc(alias = "getUser")]
    #[doc(alias = "getPassword")]
    pub fn basic_credentials(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let h = self.get_header("authorization")?;
        let mut parts = h
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|p| !p.is_empty());
        let (scheme, token) = (parts.next()?, parts.next()?);
        if parts.next().is_some() || !scheme.eq_ignore_ascii_case(b"basic") {
            return None;
        }
        let plain = decode_base64(token)?;
        let colon = memchr::memchr(b':', &plain)?;
        Some((plain[..colon].to_vec(), plain[colon + 1..].to_vec()))
    }

    /// The URL of the resource traversal reached so far (Twisted's `prePathURL`):
    /// `http` or `https`, the host the client asked for ([`get_request_hostname`]), the
    /// local port unless it is the scheme's default, then the consumed segments, each
    /// percent-encoded again (a `/` inside a segment as `%2F`).
    ///
    /// [`get_request_hostname`]: Self::get_request_hostname
    ///
    /// ```
    /// use std::rc::Rc;
    /// use std::cell::RefCell;
    /// use twistor::testing::{MemoryReactor, StringTransport};
    /// use twistor::web::resource::{Render, Resource, Tree};
    /// use twistor::web::{Request, Site};
    ///
    /// #[derive(Default)]
    /// struct Url(RefCell<String>);
    /// impl Resource for Url {
    ///     fn render_get(&self, r: &Request) -> Option<Render> {
    ///         *self.0.borrow_mut() = r.pre_path_url();
    ///         Some(Render::Static(b""))
    ///     }
    /// }
    /// let url = Rc::new(Url::default());
    /// let root = Tree::new();
    /// root.put_child(b"foo", url.clone());
    /// let site = Site::new(Rc::new(root), Rc::new(MemoryReactor::new()));
    /// let st = StringTransport::new();
    /// st.connect(site.channel());
    /// // The in-memory transport's local port is 12345.
    /// st.deliver(b"GET /foo HTTP/1.1\r\nHost: example.com\r\n\r\n");
    /// assert_eq!(*url.0.borrow(), "http://example.com:12345/foo");
    /// ```
    #[doc(alias = "prePathURL")]
    pub fn pre_path_url(&self) -> String {
        let secure = self.is_secure();
        let mut url = String::from(if secure { "https://" } else { "http://" });
        let host = self.get_request_hostname();
        if host.contains(':') {
            url.push('[');
            url.push_str(&host);
            url.push(']');
        } else {
            url.push_str(&host);
        }
        if let Some(port) = self.get_host().socket_addr().map(|a| a.port())
            && port != if secure { 443 } else { 80 }
        {
            url.push(':');
            url.push_str(&port.to_string());
        }
        let r = self.0.response.borrow();
        for seg in &r.segments[..r.consumed] {
            url.push('/');
            url.push_str(&String::from_utf8_lossy(&crate::web::proxy::quote_segment(
                seg,
            )));
        }
        if r.consumed == 0 {
            url.push('/');
        }
        url
    }

    /// The client's IP as text (`-` for a peer without one, such as a UNIX socket).
    pub(crate) fn client_ip(&self) -> &str {
        &self.0.conn.client_ip
    }

    /// The site serving this request.
    pub(crate) fn site(&self) -> &Site {
        &self.0.site
    }

    pub(crate) fn cached_session(&self) -> Option<crate::web::session::Session> {
        self.0.response.borrow().session.clone()
    }

    pub(crate) fn cache_session(&self, s: crate::web::session::Session) {
        self.0.response.borrow_mut().session = Some(s);
    }

    /// Whether the request came over TLS.
    #[doc(alias = "isSecure")]
    pub fn is_secure(&self) -> bool {
        self.0.conn.secure
    }

    /// The cookies the client sent (`Cookie` headers split on `;`, later ones win).
    pub fn received_cookies(&self) -> HashMap<Vec<u8>, Vec<u8>> {
        let mut out = HashMap::new();
        for (n, v) in self.headers() {
            if !n.eq_ignore_ascii_case(b"cookie") {
                continue;
            }
            for part in v.split(|&b| b == b';') {
                let part = part.trim_ascii_start();
                if let Some(eq) = memchr::memchr(b'=', part) {
                    out.insert(part[..eq].to_vec(), part[eq + 1..].to_vec());
                }
            }
        }
        out
    }

    /// One received cookie.
    pub fn get_cookie(&self, name: &[u8]) -> Option<Vec<u8>> {
        self.received_cookies().remove(name)
    }

    /// The path segments traversal consumed so far.
    pub fn prepath(&self) -> Vec<Vec<u8>> {
        let r = self.0.response.borrow();
        r.segments[..r.consumed].to_vec()
    }

    /// The path segments not consumed by traversal (percent-decoded).
    pub fn postpath(&self) -> Vec<Vec<u8>> {
        let r = self.0.response.borrow();
        r.segments[r.consumed..].to_vec()
    }

    /// Runs `f` on the postpath in place (no copy; the request must not be traversed
    /// further inside `f`).
    pub(crate) fn with_postpath<R>(&self, f: impl FnOnce(&[Vec<u8>]) -> R) -> R {
        let r = self.0.response.borrow();
        f(&r.segments[r.consumed..])
    }

    /// Moves the next segment from `postpath` to `prepath`.
    pub(crate) fn next_segment(&self) -> Option<Vec<u8>> {
        let mut r = self.0.response.borrow_mut();
        let seg = r.segments.get(r.consumed)?.clone();
        r.consumed += 1;
        Some(seg)
    }

    /// Puts a segment back at the front of `postpath` (a virtual host delegating to a leaf).
    pub(crate) fn push_back_segment(&self) {
        let mut r = self.0.response.borrow_mut();
        r.consumed = r.consumed.saturating_sub(1);
    }

    // ----- the response -----

    /// Sets the status (the reason phrase is the standard one). Ignored once the head was
    /// sent.
    #[doc(alias = "setResponseCode")]
    pub fn set_response_code(&self, code: u16) {
        let mut r = self.0.response.borrow_mut();
        r.code = code;
        r.reason = None;
    }

    /// Sets the status with a custom reason phrase (CR/LF replaced by spaces).
    pub fn set_response_code_with_message(&self, code: u16, message: &str) {
        let mut r = self.0.response.borrow_mut();
        r.code = code;
        r.reason = Some(message.replace(['\r', '\n'], " "));
    }

    /// The status code set so far.
    pub fn code(&self) -> u16 {
        self.0.response.borrow().code
    }

    /// Replaces response header `name`.
    #[doc(alias = "setHeader")]
    pub fn set_header(&self, name: &str, value: impl AsRef<[u8]>) {
        self.0.response.borrow_mut().headers.set(name, value);
    }

    /// Sets every header of `headers` on the response, each replacing the values of its
    /// name (as [`set_header`](Self::set_header) would), without checking or copying them
    /// again: the map did that when they were added.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::testing::{MemoryReactor, StringTransport};
    /// use twistor::web::resource::{Render, Resource};
    /// use twistor::web::{Headers, Request, Site};
    ///
    /// struct Typed;
    /// impl Resource for Typed {
    ///     fn is_leaf(&self) -> bool { true }
    ///     fn render_get(&self, r: &Request) -> Option<Render> {
    ///         r.set_header("Content-Type", "text/html");
    ///         let mut h = Headers::new();
    ///         h.set("Content-Type", "text/plain");
    ///         h.set("X-Made-By", "doc");
    ///         r.set_headers(h);
    ///         Some(Render::Static(b"ok"))
    ///     }
    /// }
    /// let site = Site::new(Rc::new(Typed), Rc::new(MemoryReactor::new()));
    /// let st = StringTransport::new();
    /// st.connect(site.channel());
    /// st.deliver(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    /// let out = String::from_utf8(st.value()).unwrap();
    /// assert!(out.contains("\r\nContent-Type: text/plain\r\nX-Made-By: doc\r\n"));
    /// assert!(!out.contains("text/html"));
    /// ```
    pub fn set_headers(&self, headers: Headers) {
        self.0.response.borrow_mut().headers.replace_from(headers);
    }

    /// Adds a value to response header `name`.
    pub fn add_header(&self, name: &str, value: impl AsRef<[u8]>) {
        self.0.response.borrow_mut().headers.add(name, value);
    }

    /// The last value of response header `name`, if set.
    pub fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        self.0
            .response
            .borrow()
            .headers
            .get_last(name)
            .map(<[u8]>::to_vec)
    }

    /// Removes response header `name`.
    pub fn remove_header(&self, name: &str) {
        self.0.response.borrow_mut().headers.remove(name);
    }

    /// Adds a `Set-Cookie` header. A cookie [`Cookie::check`] refuses is not sent, and the
    /// refusal is logged as an error; [`try_add_cookie`](Self::try_add_cookie) returns it.
    #[doc(alias = "addCookie")]
    pub fn add_cookie(&self, cookie: Cookie) {
        if let Err(e) = self.try_add_cookie(cookie) {
            crate::report_error!(target: "twistor::web", "{self:?}: cookie not sent: {e}");
        }
    }

    /// Adds a `Set-Cookie` header, or says why the cookie is refused (see [`Cookie::check`]).
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::testing::{MemoryReactor, StringTransport};
    /// use twistor::web::request::Cookie;
    /// use twistor::web::resource::{Render, Resource};
    /// use twistor::web::{Request, Site};
    ///
    /// struct Set;
    /// impl Resource for Set {
    ///     fn is_leaf(&self) -> bool { true }
    ///     fn render_get(&self, r: &Request) -> Option<Render> {
    ///         assert!(r.try_add_cookie(Cookie::new("a", "1").same_site("None")).is_err());
    ///         r.try_add_cookie(Cookie::new("b", "2").same_site("strict")).unwrap();
    ///         Some(Render::Static(b""))
    ///     }
    /// }
    /// let site = Site::new(Rc::new(Set), Rc::new(MemoryReactor::new()));
    /// let st = StringTransport::new();
    /// st.connect(site.channel());
    /// st.deliver(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    /// let out = String::from_utf8(st.value()).unwrap();
    /// assert!(out.contains("\r\nSet-Cookie: b=2; SameSite=strict\r\n"));
    /// assert!(!out.contains("a=1"));
    /// ```
    pub fn try_add_cookie(&self, cookie: Cookie) -> Result<(), CookieError> {
        cookie.check()?;
        self.0
            .response
            .borrow_mut()
            .cookies
            .push(cookie.to_header());
        Ok(())
    }

    /// `302 Found` with `Location: url` (Twisted's `redirect`); does not finish.
    pub fn redirect(&self, url: &[u8]) {
        self.set_response_code(status::FOUND);
        self.set_header("Location", url);
    }

    /// Records the resource's modification time (rounded to whole seconds). Returns true
    /// when the request's `If-Modified-Since` shows the client's copy is current: the code is
    /// then 304 and the resource should finish without a body.
    #[doc(alias = "setLastModified")]
    pub fn set_last_modified(&self, when: SystemTime) -> bool {
        let secs = when
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
        {
            let mut r = self.0.response.borrow_mut();
            r.last_modified = Some(r.last_modified.map_or(secs, |s| s.max(secs)));
        }
        let since = self
            .get_header("if-modified-since")
            .and_then(|v| v.split(|&b| b == b';').next())
            .and_then(date::parse_http_date)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
        if since.is_some_and(|s| s.as_secs() >= secs) {
            self.set_response_code(status::NOT_MODIFIED);
            return true;
        }
        false
    }

    /// Records the entity tag. Returns true when `If-None-Match` lists it (or `*`): the code
    /// is then 304 for GET/HEAD, 412 otherwise.
    #[doc(alias = "setETag")]
    pub fn set_etag(&self, tag: &[u8]) -> bool {
        self.0.response.borrow_mut().etag = Some(tag.to_vec());
        let hit = self.get_header("if-none-match").is_some_and(|v| {
            v.split(|&b| b == b',' || b == b' ')
                .any(|t| t == tag || t == b"*")
        });
        if hit {
            let get = matches!(self.method(), b"GET" | b"HEAD");
            self.set_response_code(if get {
                status::NOT_MODIFIED
            } else {
                status::PRECONDITION_FAILED
            });
        }
        hit
    }

    /// Whether the response head was sent.
    pub fn started_writing(&self) -> bool {
        self.0.response.borrow().started
    }

    /// Compresses the response body with gzip (`Content-Encoding: gzip`, no
    /// `Content-Length`: chunked on HTTP/1.1). Only before the head is sent; HEAD, 204 and
    /// 304 responses stay without a body. [`EncodingResourceWrapper`] calls it when the
    /// client accepts gzip.
    ///
    /// [`EncodingResourceWrapper`]: crate::web::encoding::EncodingResourceWrapper
    pub fn encode_gzip(&self, level: u32) {
        let mut r = self.0.response.borrow_mut();
        if !r.started && r.gzip.is_none() {
            r.gzip = Some(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.min(9)),
            ));
        }
    }

    /// Whether `finish` was called.
    pub fn finished(&self) -> bool {
        self.0.response.borrow().finished
    }

    /// Body bytes written so far (before any chunk framing).
    pub fn sent_length(&self) -> u64 {
        self.0.response.borrow().sent
    }

    /// Writes the head into `out` (the first write), deciding the framing.
    fn head_into(&self, r: &mut Response, out: &mut Vec<u8>, known_len: Option<usize>) {
        r.started = true;
        if !(200..=999).contains(&r.code) {
            // A 1xx head is interim: a client would wait for the final response after it,
            // forever. A code of more than three digits does not fit the status line.
            crate::report_error!(
                target: "twistor::web",
                "{self:?} answered with status {}, which cannot be a final response: sending 500",
                r.code
            );
            r.code = status::INTERNAL_SERVER_ERROR;
            r.reason = None;
        }
        let forbidden = status::body_forbidden(r.code);
        let is_head = self.method() == b"HEAD";
        // One pass over the headers for everything below (they are searched again only
        // in the rare cases that change them).
        let survey = r.headers.survey();
        let length = survey.content_length.map(|v| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        });
        let (transfer_encoding, close) = (survey.transfer_encoding, survey.close);
        let (has_connection, has_date) = (survey.connection, survey.date);
        let (has_last_modified, has_etag) = (survey.last_modified, survey.etag);
        match length {
            Some(Some(n)) => r.declared = Some(n),
            Some(None) => {
                crate::report_error!(target: "twistor::web", "ignoring a malformed Content-Length response header");
                r.headers.remove("content-length");
            }
            None => {}
        }
        if transfer_encoding {
            r.headers.remove("transfer-encoding");
        }
        if r.gzip.is_some() {
            if forbidden || is_head {
                // No body: nothing to compress (and no trailer to send).
                r.gzip = None;
            } else {
                // The compressed length is not known in advance.
                r.headers.remove("content-length");
                r.declared = None;
                // Appended to an encoding the application applied, in one header as
                // Twisted does (`deflate,gzip`): the order of codings is the order applied.
                let mut coded = Vec::new();
                for prev in r.headers.get_all("content-encoding") {
                    coded.extend_from_slice(prev);
                    coded.push(b',');
                }
                coded.extend_from_slice(b"gzip");
                r.headers.set("Content-Encoding", coded);
            }
        }
        let known_len = if r.gzip.is_some() { None } else { known_len };
        if close {
            r.keep_alive = false;
        }
        let mut write_len = None;
        if forbidden {
            if length.is_some() {
                r.headers.remove("content-length");
            }
            r.declared = None;
            r.body_allowed = false;
        } else {
            if r.declared.is_none()
                && let Some(n) = known_len
            {
                r.declared = Some(n as u64);
                write_len = Some(n);
            }
            if is_head {
                r.body_allowed = false;
            } else if r.declared.is_none() {
                if self.0.head.http11 {
                    r.chunked = true;
                } else {
                    r.keep_alive = false;
                }
            }
        }
        // The status line carries the request's version, as Twisted's does: an HTTP/1.0
        // client is answered in HTTP/1.0.
        out.extend_from_slice(if self.0.head.http11 {
            b"HTTP/1.1 "
        } else {
            b"HTTP/1.0 "
        });
        push_u64(out, u64::from(r.code));
        out.push(b' ');
        match &r.reason {
            Some(m) => out.extend_from_slice(m.as_bytes()),
            None => out.extend_from_slice(status::reason_phrase(r.code).as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
        if !has_connection {
            if !r.keep_alive {
                out.extend_from_slice(b"Connection: close\r\n");
            } else if !self.0.head.http11 {
                out.extend_from_slice(b"Connection: keep-alive\r\n");
            }
        }
        out.extend_from_slice(self.0.site.server_header());
        if !has_date {
            self.0.site.write_date_header(out);
            r.date_written = true;
        }
        r.headers.write_to(out);
        if let Some(n) = write_len {
            out.extend_from_slice(b"Content-Length: ");
            push_u64(out, n as u64);
            out.extend_from_slice(b"\r\n");
        }
        if r.chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        if let Some(lm) = r.last_modified
            && !has_last_modified
        {
            let t = UNIX_EPOCH + std::time::Duration::from_secs(lm);
            let _ = write!(out, "Last-Modified: {}\r\n", date::http_date(t));
        }
        if let Some(tag) = &r.etag
            && !has_etag
        {
            out.extend_from_slice(b"ETag: ");
            out.extend_from_slice(tag);
            out.extend_from_slice(b"\r\n");
        }
        for c in &r.cookies {
            out.extend_from_slice(b"Set-Cookie: ");
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Checks that writing is possible; logs why not otherwise.
    fn writable(&self, r: &Response, what: &str) -> bool {
        if r.lost.is_some() {
            log::debug!(target: "twistor::web", "{what} on {self:?} after the client went away: ignored");
            return false;
        }
        if r.finished {
            crate::report_error!(target: "twistor::web", "{what} on {self:?} after finish: ignored");
            return false;
        }
        true
    }

    /// Writes body bytes (the head first, if not sent yet). Harmless after the client left
    /// (logged at debug level).
    pub fn write(&self, data: &[u8]) {
        self.write_inner(data, None);
    }

    fn write_inner(&self, data: &[u8], known_len: Option<usize>) {
        let mut out = Vec::new();
        let body: &[u8];
        {
            let mut r = self.0.response.borrow_mut();
            if !self.writable(&r, "write") {
                return;
            }
            if !r.started {
                out.reserve(256 + if r.chunked { 0 } else { data.len() });
                self.head_into(&mut r, &mut out, known_len);
            }
            if !r.body_allowed || data.is_empty() {
                body = b"";
            } else {
                let mut d = data;
                if let Some(limit) = r.declared {
                    let room = limit.saturating_sub(r.sent);
                    if (d.len() as u64) > room {
                        crate::report_error!(
                            target: "twistor::web",
                            "{self:?}: {} bytes written beyond the declared Content-Length of {limit}: refused",
                            d.len() as u64 - room
                        );
                        d = &d[..room as usize];
                    }
                }
                r.sent += d.len() as u64;
                if let Some(gz) = &mut r.gzip {
                    let _ = gz.write_all(d);
                    let compressed = std::mem::take(gz.get_mut());
                    frame(&mut out, &compressed, r.chunked);
                    body = b"";
                } else if r.chunked {
                    write_chunk(&mut out, d);
                    body = b"";
                } else {
                    body = d;
                }
            }
        }
        // No borrow held: a transport may pause a producer (user code) from inside write.
        let t = &self.0.transport;
        match (out.is_empty(), body.is_empty()) {
            (true, true) => {}
            (false, true) => t.write_owned(out),
            (true, false) => t.write(body),
            (false, false) if body.len() <= 16 * 1024 => {
                out.extend_from_slice(body);
                t.write_owned(out);
            }
            (false, false) => t.write_sequence(&[&out, body]),
        }
    }

    /// Sends bytes `offset..offset + len` of `file` as body (the head first, if not sent
    /// yet) with [`Transport::send_file`]: `sendfile(2)`, no copy through user space, on a
    /// plain TCP or UNIX connection. Only for a body that goes out as it is: a response
    /// with a declared `Content-Length` (set the header first), not gzip-encoded, not a
    /// HEAD, 204 or 304. Returns `Err(file)` otherwise (send it through [`Request::write`]
    /// then), and a Deferred that fires once the bytes were handed to the connection, or
    /// fails (the file ended early, the client went away). Writes made after it are sent
    /// after it. The caller still calls [`Request::finish`], typically when the Deferred
    /// fires.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::rc::Rc;
    /// use twistor::testing::{MemoryReactor, StringTransport};
    /// use twistor::web::resource::{Render, Resource};
    /// use twistor::web::{Request, Site};
    ///
    /// let path = std::env::temp_dir().join(format!("twistor-doc-rsf-{}", std::process::id()));
    /// std::fs::File::create(&path).unwrap().write_all(b"0123456789").unwrap();
    /// struct Part(std::path::PathBuf);
    /// impl Resource for Part {
    ///     fn is_leaf(&self) -> bool { true }
    ///     fn render_get(&self, r: &Request) -> Option<Render> {
    ///         r.set_header("Content-Length", "4");
    ///         let file = std::fs::File::open(&self.0).unwrap();
    ///         let done = r.send_file(file, 3, 4).ok().unwrap();
    ///         let r = r.clone();
    ///         done.add_callback(move |()| r.finish());
    ///         Some(Render::NotDoneYet)
    ///     }
    /// }
    /// let site = Site::new(Rc::new(Part(path.clone())), Rc::new(MemoryReactor::new()));
    /// let st = StringTransport::new();
    /// st.connect(site.channel());
    /// st.deliver(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    /// // The in-memory transport pulls the file in chunks as a producer.
    /// while let Some((p, _)) = st.producer() {
    ///     p.resume_producing();
    /// }
    /// assert!(String::from_utf8(st.value()).unwrap().ends_with("\r\n\r\n3456"));
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn send_file(
        &self,
        file: std::fs::File,
        offset: u64,
        len: u64,
    ) -> Result<Deferred<()>, std::fs::File> {
        let mut out = Vec::with_capacity(if self.started_writing() { 0 } else { 512 });
        {
            let mut r = self.0.response.borrow_mut();
            if !self.writable(&r, "send_file") {
                let why = if r.lost.is_some() {
                    "the client went away"
                } else {
                    "the response is finished"
                };
                return Ok(Deferred::fail(Failure::msg(why)));
            }
            let identity = |r: &Response| r.gzip.is_none() && !r.chunked && r.declared.is_some();
            if !r.started {
                // Decide the framing as the first write would, without sending anything
                // yet if the file cannot go as it is.
                let preview = r.gzip.is_none()
                    && r.headers.get_last("content-length").is_some()
                    && !status::body_forbidden(r.code)
                    && self.method() != b"HEAD";
                if !preview {
                    return Err(file);
                }
                self.head_into(&mut r, &mut out, None);
            }
            if !r.body_allowed || !identity(&r) {
                drop(r);
                if !out.is_empty() {
                    self.0.transport.write_owned(out);
                }
                return Err(file);
            }
            let room = r.declared.unwrap_or(0).saturating_sub(r.sent);
            if len > room {
                crate::report_error!(
                    target: "twistor::web",
                    "{self:?}: send_file of {len} bytes beyond the declared Content-Length: refused"
                );
                drop(r);
                if !out.is_empty() {
                    self.0.transport.write_owned(out);
                }
                return Err(file);
            }
            r.sent += len;
        }
        // No borrow held: the transport may call back into user code.
        if !out.is_empty() {
            self.0.transport.write_owned(out);
        }
        Ok(self.0.transport.send_file(file, offset, len))
    }

    /// Writes `body` as the whole response and finishes: `Content-Length` is its length
    /// (unless the application set one), the head and body go out in one write.
    pub fn write_and_finish(&self, body: &[u8]) {
        let started = self.0.response.borrow().started;
        self.write_inner(body, (!started).then_some(body.len()));
        // Head and end in one go: the access log may use the second the head's `Date` read.
        self.finish_inner(!started);
    }

    /// Ends the response. Harmless after the client left (logged at debug level); a second
    /// call is logged as an error and ignored.
    pub fn finish(&self) {
        self.finish_inner(false);
    }

    /// `finish`; `head_just_sent`: the head was written within the caller's call.
    fn finish_inner(&self, head_just_sent: bool) {
        let mut out = Vec::new();
        let clock_read;
        let (keep, producer, notify) = {
            let mut r = self.0.response.borrow_mut();
            if !self.writable(&r, "finish") {
                return;
            }
            let head_now = head_just_sent || !r.started;
            if !r.started {
                self.head_into(&mut r, &mut out, Some(0));
            }
            if let Some(gz) = r.gzip.take() {
                let tail = gz.finish().unwrap_or_default();
                frame(&mut out, &tail, r.chunked);
            }
            if r.chunked {
                out.extend_from_slice(LAST_CHUNK);
            }
            let short = r.body_allowed && r.declared.is_some_and(|d| r.sent < d);
            if short {
                crate::report_error!(
                    target: "twistor::web",
                    "{self:?} finished after {} of its {} declared bytes: closing the connection",
                    r.sent,
                    r.declared.unwrap_or(0)
                );
            }
            r.finished = true;
            clock_read = head_now && r.date_written;
            (
                r.keep_alive && !short,
                r.producer.take(),
                std::mem::take(&mut r.notify),
            )
        };
        if !out.is_empty() {
            self.0.transport.write_owned(out);
        }
        if producer.is_some() {
            crate::report_error!(target: "twistor::web", "{self:?} finished with its producer still registered: unregistering it");
            self.0.transport.unregister_producer();
        }
        self.0.site.log_access(self, clock_read);
        self.tell_channel(keep);
        for n in notify {
            let _ = n.callback(());
        }
    }

    /// Tells the channel the response is complete (`keep`: the connection may carry
    /// another request).
    fn tell_channel(&self, keep: bool) {
        if self.0.conn.dispatching.get() {
            self.0.conn.done.set(Some(keep));
        } else if let Some(ch) = &self.0.channel {
            ch.with(move |ch, cx| ch.request_done(cx, keep));
        }
    }

    /// The response failed after its head went out (or the application gave up): the
    /// connection is closed without completing the body, so the client sees a truncated
    /// response rather than a complete-looking wrong one.
    pub fn abort(&self) {
        let (producer, notify) = {
            let mut r = self.0.response.borrow_mut();
            if r.finished || r.lost.is_some() {
                return;
            }
            r.finished = true;
            (r.producer.take(), std::mem::take(&mut r.notify))
        };
        if let Some(p) = producer {
            self.0.transport.unregister_producer();
            p.stop_producing();
        }
        self.tell_channel(false);
        for n in notify {
            let _ = n.errback(Failure::msg("the response was aborted"));
        }
    }

    /// A Deferred that fires when the response is complete, or fails with the reason the
    /// connection was lost first. Already finished or lost: fired at once.
    #[doc(alias = "notifyFinish")]
    pub fn notify_finish(&self) -> Deferred<()> {
        let mut r = self.0.response.borrow_mut();
        if let Some(f) = &r.lost {
            return Deferred::fail(f.clone());
        }
        if r.finished {
            return Deferred::succeed(());
        }
        let (d, res) = Deferred::new();
        r.notify.push(res);
        d
    }

    /// Whether the client went away before the response was finished.
    pub fn lost(&self) -> bool {
        self.0.response.borrow().lost.is_some()
    }

    /// Registers a producer of the response body on the connection: a streaming producer is
    /// paused while the client reads slower than it produces; a pull producer is asked for
    /// each chunk. The producer writes with [`write`](Self::write) and must be unregistered
    /// before [`finish`](Self::finish). If the client goes away it is stopped.
    #[doc(alias = "registerProducer")]
    pub fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        {
            let mut r = self.0.response.borrow_mut();
            if r.producer.is_some() {
                return Err(ProducerError::AlreadyRegistered);
            }
            if r.lost.is_some() {
                drop(r);
                producer.stop_producing();
                return Ok(());
            }
            r.producer = Some(producer.clone());
        }
        let res = self.0.transport.register_producer(producer, streaming);
        if res.is_err() {
            self.0.response.borrow_mut().producer = None;
        }
        res
    }

    /// Unregisters the producer.
    #[doc(alias = "unregisterProducer")]
    pub fn unregister_producer(&self) {
        let had = self.0.response.borrow_mut().producer.take();
        if had.is_some() {
            self.0.transport.unregister_producer();
        }
    }

    /// The connection went away: fail `notify_finish`, stop the producer, fail a streamed
    /// body still arriving.
    pub(crate) fn connection_lost(&self, reason: Failure) {
        if let Some(s) = self.0.stream.get() {
            s.end(Err(reason.clone()));
        }
        let (producer, notify) = {
            let mut r = self.0.response.borrow_mut();
            if r.finished || r.lost.is_some() {
                return;
            }
            r.lost = Some(reason.clone());
            (r.producer.take(), std::mem::take(&mut r.notify))
        };
        if let Some(p) = producer {
            p.stop_producing();
        }
        for n in notify {
            let _ = n.errback(reason.clone());
        }
    }
}

/// The request's headers, read where they were parsed.
impl crate::web::headers::HeaderLookup for Request {
    fn first_value(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
    fn each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        for (n, v) in self.headers() {
            if n.eq_ignore_ascii_case(name.as_bytes()) {
                f(v);
            }
        }
    }
}

/// The receiver of [`Request::read_body`].
struct Collect {
    data: Vec<u8>,
    resolver: Option<Resolver<Vec<u8>>>,
}

impl BodyReceiver for Collect {
    fn data_received(&mut self, data: &[u8]) {
        self.data.extend_from_slice(data);
    }
    fn body_done(&mut self, result: Result<(), Failure>) {
        if let Some(r) = self.resolver.take() {
            let _ = match result {
                Ok(()) => r.callback(std::mem::take(&mut self.data)),
                Err(f) => r.errback(f),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{decode_base64, push_u64};
    use proptest::prelude::*;

    /// Standard base64 with padding, to check the decoder against.
    fn encode(data: &[u8]) -> Vec<u8> {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        for c in data.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(A[(n >> (18 - 6 * i)) as usize & 63]);
                } else {
                    out.push(b'=');
                }
            }
        }
        out
    }

    #[test]
    fn base64_known_values() {
        assert_eq!(
            decode_base64(b"aGVsbG86dGhlcmU6eg==").unwrap(),
            b"hello:there:z"
        );
        assert_eq!(
            decode_base64(b"aGVsbG86dGhlcmU6eg").unwrap(),
            b"hello:there:z"
        );
        assert_eq!(decode_base64(b"").unwrap(), b"");
        for bad in [&b"a"[..], b"a===", b"aGVsbG8=x", b"aG=sbG8=", b"a-b_"] {
            assert_eq!(
                decode_base64(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest! {
        #[test]
        fn base64_round_trips_and_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            junk in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            prop_assert_eq!(decode_base64(&encode(&data)), Some(data));
            let _ = decode_base64(&junk);
        }
    }

    #[test]
    fn decimal_without_fmt() {
        for n in [0u64, 7, 10, 99, 100, 200, 404, 999, 1000, 65_535, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}

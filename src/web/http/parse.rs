//! Parsing one request head, strictly (RFC 9112), on the channel's read buffer in place.
//!
//! The head is found first (`CRLF CRLF`), checked for bare CR or LF (a lenient parser and a
//! strict proxy disagreeing on line ends is how requests get smuggled), then handed to
//! `httparse`. Header names and values are kept as offsets into the head's bytes: no `String`
//! per header. The framing decision (`Content-Length`, `Transfer-Encoding`) is made here once,
//! and every ambiguous combination is refused.

use std::mem::MaybeUninit;
use std::ops::Range;

use smallvec::SmallVec;

use super::limits::HttpLimits;
use crate::web::status;

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

/// One header: offsets of its name and value in [`Head::raw`].
pub(crate) type HeaderSpan = (Range<u32>, Range<u32>);

/// A parsed request head. `raw` holds the bytes; everything else points into it.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub raw: Vec<u8>,
    pub method: Range<u32>,
    pub target: Range<u32>,
    pub http11: bool,
    pub headers: SmallVec<[HeaderSpan; 12]>,
    pub framing: Framing,
    /// The connection may stay open after this request's response (version and
    /// `Connection` tokens).
    pub keep_alive: bool,
    pub expect_continue: bool,
}

impl Head {
    pub fn slice(&self, r: &Range<u32>) -> &[u8] {
        &self.raw[r.start as usize..r.end as usize]
    }
    pub fn method(&self) -> &[u8] {
        self.slice(&self.method)
    }
    pub fn target(&self) -> &[u8] {
        self.slice(&self.target)
    }
}

/// Why a head was refused: the status to answer with, and a short reason for the log and
/// the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reject {
    pub code: u16,
    pub why: &'static str,
}

fn reject(code: u16, why: &'static str) -> Reject {
    Reject { code, why }
}

/// The end of a head, searched with one prebuilt finder (building one per search costs more
/// than the search on a small head).
static HEAD_END: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));

/// What [`parse_head`] found.
// Not boxed: a head is moved once per request, a box would be one allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Parsed {
    /// More bytes are needed; `scanned` says where to resume the search for the end.
    Incomplete,
    /// A head, and how many bytes of the buffer it used.
    Done(Head, usize),
}

/// Parses the request head at the start of `buf`. `scanned` carries the search position
/// between calls so a head trickled byte by byte is not rescanned from the start each time.
/// `storage` gives the (empty) vector the head's bytes are copied into: a recycled one, so a
/// keep-alive connection does not allocate a head per request.
pub(crate) fn parse_head(
    buf: &[u8],
    scanned: &mut usize,
    limits: &HttpLimits,
    storage: impl FnOnce() -> Vec<u8>,
) -> Result<Parsed, Reject> {
    // Empty lines before a request line are skipped (RFC 9112 section 2.2 allows it: some
    // clients send a CRLF after a POST body).
    let mut start = 0;
    while buf.len() >= start + 2 && buf[start] == b'\r' && buf[start + 1] == b'\n' {
        start += 2;
        if start > limits.max_head {
            return Err(reject(status::BAD_REQUEST, "too many empty lines"));
        }
    }
    let from = (*scanned).max(start).saturating_sub(3).max(start);
    let Some(end) = HEAD_END.find(&buf[from..]).map(|i| from + i + 4) else {
        *scanned = buf.len();
        let pending = &buf[start..];
        match memchr::memchr(b'\n', pending) {
            None if pending.len() > limits.max_request_line => {
                return Err(reject(status::URI_TOO_LONG, "request line too long"));
            }
            Some(i) if i > limits.max_request_line => {
                return Err(reject(status::URI_TOO_LONG, "request line too long"));
            }
            _ => {}
        }
        if pending.len() > limits.max_head {
            return Err(reject(
                status::HEADER_FIELDS_TOO_LARGE,
                "request head too large",
            ));
        }
        return Ok(Parsed::Incomplete);
    };
    *scanned = 0;
    let head = &buf[start..end];
    let line_end = memchr::memchr(b'\n', head).unwrap_or(head.len());
    if line_end > limits.max_request_line + 1 {
        return Err(reject(status::URI_TOO_LONG, "request line too long"));
    }
    if head.len() > limits.max_head {
        return Err(reject(
            status::HEADER_FIELDS_TOO_LARGE,
            "request head too large",
        ));
    }
    check_line_ends(head)?;
    let mut raw = storage();
    raw.clear();
    raw.extend_from_slice(head);
    let parsed = parse_checked(raw, limits)?;
    Ok(Parsed::Done(parsed, end))
}

/// Every CR is followed by LF and every LF follows a CR.
fn check_line_ends(head: &[u8]) -> Result<(), Reject> {
    // Only LF is searched (half the stops of searching both): a CR not followed by LF is
    // refused by httparse wherever it is (request line, name or value), as the tests below
    // check.
    for i in memchr::memchr_iter(b'\n', head) {
        if i == 0 || head[i - 1] != b'\r' {
            return Err(reject(
                status::BAD_REQUEST,
                "bare CR or LF in the request head",
            ));
        }
    }
    Ok(())
}

fn span(base: &[u8], part: &[u8]) -> Range<u32> {
    let s = part.as_ptr() as usize - base.as_ptr() as usize;
    s as u32..(s + part.len()) as u32
}

fn parse_checked(raw: Vec<u8>, limits: &HttpLimits) -> Result<Head, Reject> {
    // Left uninitialised: filling 100 empty slots cost more than parsing a small head.
    const STACK: usize = 100;
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if limits.max_headers <= STACK {
        &mut stack[..limits.max_headers]
    } else {
        heap = Vec::with_capacity(limits.max_headers);
        heap.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(&raw, slots) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(reject(status::BAD_REQUEST, "malformed request head"));
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(
                status::HEADER_FIELDS_TOO_LARGE,
                "too many header fields",
            ));
        }
        Err(httparse::Error::Version) => {
            return Err(reject(status::BAD_REQUEST, "unsupported HTTP version"));
        }
        Err(httparse::Error::HeaderName) => {
            return Err(reject(
                status::BAD_REQUEST,
                "malformed header name (or an obsolete line folding)",
            ));
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(reject(status::BAD_REQUEST, "malformed header value"));
        }
        Err(_) => return Err(reject(status::BAD_REQUEST, "malformed request line")),
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(reject(status::BAD_REQUEST, "malformed request line"));
    };
    let target_ok = !target.is_empty()
        && target.bytes().all(|b| (0x21..=0x7e).contains(&b))
        && (target.starts_with('/')
            || target == "*"
            || target.starts_with("http://")
            || target.starts_with("https://"));
    if !target_ok {
        return Err(reject(status::BAD_REQUEST, "malformed request target"));
    }
    let http11 = version == 1;
    let mut framing = Framing::None;
    let mut framing_headers = 0;
    let mut hosts = 0;
    let mut conn_close = false;
    let mut conn_keep = false;
    let mut expect_continue = false;
    let mut headers = SmallVec::new();
    for h in req.headers.iter() {
        // httparse refuses every control character but HTAB in a value (NUL, CR, LF
        // included), as the tests below check: no second scan here.
        let v = h.value;
        let name = h.name.as_bytes();
        let v = v.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            framing_headers += 1;
            if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
                return Err(reject(status::BAD_REQUEST, "malformed Content-Length"));
            }
            let n = v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            framing = Framing::Length(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if v.eq_ignore_ascii_case(b"chunked") {
                framing_headers += 1;
                framing = Framing::Chunked;
            } else if !v.eq_ignore_ascii_case(b"identity") {
                return Err(reject(status::BAD_REQUEST, "unsupported Transfer-Encoding"));
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in v.split(|&b| b == b',') {
                let t = t.trim_ascii();
                conn_close |= t.eq_ignore_ascii_case(b"close");
                conn_keep |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue |= v.eq_ignore_ascii_case(b"100-continue");
        }
        headers.push((span(&raw, name), span(&raw, v)));
    }
    if framing_headers > 1 {
        return Err(reject(
            status::BAD_REQUEST,
            "more than one Content-Length or Transfer-Encoding",
        ));
    }
    if http11 && hosts != 1 {
        return Err(reject(
            status::BAD_REQUEST,
            "a request of version 1.1 needs exactly one Host header",
        ));
    }
    let keep_alive = !conn_close && (http11 || conn_keep);
    let method = span(&raw, method.as_bytes());
    let target = span(&raw, target.as_bytes());
    Ok(Head {
        raw,
        method,
        target,
        http11,
        headers,
        framing,
        keep_alive,
        expect_continue,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Parsed, Reject> {
        parse_head(input, &mut 0, &HttpLimits::default(), Vec::new)
    }

    #[test]
    fn a_simple_get() {
        let Ok(Parsed::Done(h, n)) = parse(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\nrest") else {
            panic!("not parsed")
        };
        assert_eq!(n, 32);
        assert_eq!(h.method(), b"GET");
        assert_eq!(h.target(), b"/a?b=1");
        assert!(h.http11 && h.keep_alive);
        assert_eq!(h.framing, Framing::None);
    }

    #[test]
    fn bare_line_ends_and_control_characters_are_refused_anywhere() {
        let cases: &[&[u8]] = &[
            b"GET / HTTP/1.1\rHost: x\r\n\r\n",
            b"GET /\r HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\nY: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nY: 1\n\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX\r: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x7fb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x1b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX\0: a\r\n\r\n",
        ];
        for c in cases {
            let r = parse(c);
            assert!(
                matches!(r, Err(Reject { code: 400, .. })),
                "{:?}: {r:?}",
                String::from_utf8_lossy(c)
            );
        }
        // A tab inside a value is allowed.
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\nX: a\tb\r\n\r\n"),
            Ok(Parsed::Done(..))
        ));
    }

    #[test]
    fn incomplete_heads_resume_the_search() {
        let mut scanned = 0;
        let l = HttpLimits::default();
        let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for i in 1..input.len() {
            assert!(matches!(
                parse_head(&input[..i], &mut scanned, &l, Vec::new),
                Ok(Parsed::Incomplete)
            ));
        }
        assert!(matches!(
            parse_head(input, &mut scanned, &l, Vec::new),
            Ok(Parsed::Done(..))
        ));
    }
}

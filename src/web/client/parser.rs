//! The response parser (Twisted's `HTTPClientParser`): the head with `httparse`, interim
//! `1xx` responses skipped, then the body framing: none (HEAD, 204, 304, `Content-Length:
//! 0`), a length, chunked (the shared strict decoder), or up to the connection close.
//!
//! Departures from Twisted, all on the safe side: the head is bounded (size and header count)
//! and an oversize head is reported as such, not as a clean close; `Transfer-Encoding` other
//! than exactly `chunked` fails the response; conflicting `Content-Length` values fail it;
//! every header stays in the response's headers (Twisted hides the connection-control ones);
//! a version other than HTTP/1.x fails with `BadResponseVersion` (Twisted takes any
//! `name/major.minor`), and a later HTTP/1 minor version is read as HTTP/1.1.

use crate::web::Headers;
use crate::web::chunked::ChunkedDecoder;

use super::error::{BadResponseVersion, ParseError, ResponseHeadTooLarge};

/// A parsed status line and headers.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub version: (u8, u8),
    pub code: u16,
    pub phrase: String,
    pub headers: Headers,
}

/// How the body is delimited.
#[derive(Debug)]
pub(crate) enum BodyFraming {
    /// No body.
    Empty,
    /// This many bytes remain.
    Length(u64),
    /// Chunked.
    Chunked(Box<ChunkedDecoder>),
    /// Until the connection closes.
    UntilClose,
}

/// Why parsing failed.
pub(crate) type ParseFailure = crate::Failure;

/// Finds the end of the head (`\r\n\r\n` or a bare `\n\n`), returning its length.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'\n', &buf[i..]) {
        let at = i + p;
        let rest = &buf[at + 1..];
        if rest.first() == Some(&b'\n') {
            return Some(at + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(at + 3);
        }
        i = at + 1;
    }
    None
}

/// Parses one head from the start of `buf`: `Ok(None)` if more bytes are needed, else the
/// head and how many bytes it took.
pub(crate) fn parse_head(
    buf: &[u8],
    max_size: usize,
    max_headers: usize,
) -> Result<Option<(Head, usize)>, ParseFailure> {
    let Some(end) = head_end(buf) else {
        if buf.len() > max_size {
            return Err(crate::Failure::new(ResponseHeadTooLarge(format!(
                "over {max_size} bytes"
            ))));
        }
        return Ok(None);
    };
    if end > max_size {
        return Err(crate::Failure::new(ResponseHeadTooLarge(format!(
            "over {max_size} bytes"
        ))));
    }
    // A later HTTP/1 minor version is read as HTTP/1.1 (RFC 9110 section 2.5; Twisted
    // accepts it too), the parser knowing only 1.0 and 1.1.
    let later_minor = later_http1_minor(buf);
    let patched = later_minor.map(|(_, len)| [&b"HTTP/1.1"[..], &buf[len..end]].concat());
    let input = patched.as_deref().unwrap_or(&buf[..end]);
    let mut storage = vec![httparse::EMPTY_HEADER; max_headers];
    let mut resp = httparse::Response::new(&mut storage);
    let status = httparse::ParserConfig::default()
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true)
        .parse_response(&mut resp, input);
    match status {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(crate::Failure::new(ParseError("truncated head".into())));
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(crate::Failure::new(ResponseHeadTooLarge(format!(
                "more than {max_headers} headers"
            ))));
        }
        Err(httparse::Error::Version) if !status_line(buf).contains(&b' ') => {
            return Err(crate::Failure::new(ParseError(
                "the status line has no status code".into(),
            )));
        }
        Err(httparse::Error::Version) => {
            let line = buf[..end].split(|&b| b == b' ' || b == b'\n').next();
            let v = String::from_utf8_lossy(line.unwrap_or(b"")).into_owned();
            return Err(crate::Failure::new(BadResponseVersion(v)));
        }
        Err(e) => {
            return Err(crate::Failure::new(ParseError(e.to_string())));
        }
    }
    let code = resp.code.unwrap_or(0);
    if !(100..=999).contains(&code) {
        return Err(crate::Failure::new(ParseError(format!(
            "status code {code} out of range"
        ))));
    }
    let mut headers = Headers::new();
    for h in resp.headers.iter() {
        let unfolded;
        let mut value = h.value;
        if value.contains(&b'\n') {
            // An obsolete line folding: the continuation joins the value as it came,
            // leading whitespace included (as Twisted does), the line break dropped.
            unfolded = value
                .iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect::<Vec<u8>>();
            value = &unfolded;
        }
        if let Err(e) = headers.try_add(h.name, value) {
            return Err(crate::Failure::new(ParseError(e.to_string())));
        }
    }
    let head = Head {
        version: (
            1,
            later_minor.map_or(resp.version.unwrap_or(1), |(minor, _)| minor),
        ),
        code,
        phrase: resp.reason.unwrap_or("").to_string(),
        headers,
    };
    Ok(Some((head, end)))
}

/// For a status line starting `HTTP/1.<minor> ` with a minor version other than the
/// `0` and `1` the parser knows: the minor version (at most 255) and the version's length.
fn later_http1_minor(buf: &[u8]) -> Option<(u8, usize)> {
    let rest = buf.strip_prefix(b"HTTP/1.")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || rest.get(digits) != Some(&b' ') || matches!(&rest[..digits], b"0" | b"1") {
        return None;
    }
    let minor = rest[..digits]
        .iter()
        .fold(0u32, |n, d| (n * 10 + u32::from(d - b'0')).min(255));
    Some((minor as u8, 7 + digits))
}

/// The first line of `buf`, without its line break.
fn status_line(buf: &[u8]) -> &[u8] {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The body framing of a final response to `method` (RFC 9112 section 6.3).
pub(crate) fn framing(head: &Head, method: &str) -> Result<BodyFraming, ParseFailure> {
    if method.eq_ignore_ascii_case("HEAD") || head.code == 204 || head.code == 304 {
        return Ok(BodyFraming::Empty);
    }
    let te: Vec<&[u8]> = head.headers.get_all("transfer-encoding").collect();
    if !te.is_empty() {
        let codings: Vec<&[u8]> = te
            .iter()
            .flat_map(|v| v.split(|&b| b == b','))
            .map(|t| t.trim_ascii())
            .filter(|t| !t.is_empty())
            .collect();
        if codings.len() == 1 && codings[0].eq_ignore_ascii_case(b"chunked") {
            return Ok(BodyFraming::Chunked(Box::default()));
        }
        return Err(crate::Failure::new(ParseError(format!(
            "unsupported Transfer-Encoding {:?}",
            String::from_utf8_lossy(&te.join(&b", "[..]))
        ))));
    }
    let mut length: Option<u64> = None;
    for v in head.headers.get_all("content-length") {
        for part in v.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(crate::Failure::new(ParseError(format!(
                    "bad Content-Length {:?}",
                    String::from_utf8_lossy(v)
                ))));
            }
            let n = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| crate::Failure::new(ParseError("Content-Length overflow".into())))?;
            if length.is_some_and(|l| l != n) {
                return Err(crate::Failure::new(ParseError(
                    "conflicting Content-Length values".into(),
                )));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => BodyFraming::Empty,
        Some(n) => BodyFraming::Length(n),
        None => BodyFraming::UntilClose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &[u8]) -> Head {
        parse_head(raw, 65536, 100).unwrap().unwrap().0
    }

    #[test]
    fn status_line_and_headers() {
        let h = head(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n");
        assert_eq!((h.version, h.code, h.phrase.as_str()), ((1, 1), 200, "OK"));
        assert_eq!(h.headers.get("x-a"), Some(&b"1"[..]));
    }

    #[test]
    fn missing_phrase_and_bare_lf() {
        let h = head(b"HTTP/1.0 404\nContent-Length: 1\n\n");
        assert_eq!((h.version, h.code, h.phrase.as_str()), ((1, 0), 404, ""));
    }

    #[test]
    fn partial_head_waits() {
        assert!(
            parse_head(b"HTTP/1.1 200 OK\r\nX", 100, 10)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn bad_versions_and_status() {
        for raw in [
            &b"HTTP/2.0 200 OK\r\n\r\n"[..],
            b"HTTP/1.1.1 200 OK\r\n\r\n",
            b"HTTP/1 200 OK\r\n\r\n",
        ] {
            let e = parse_head(raw, 1000, 10).unwrap_err();
            assert!(e.is::<BadResponseVersion>() || e.is::<ParseError>(), "{e}");
        }
        assert!(
            parse_head(b"HTTP/1.1 abc OK\r\n\r\n", 1000, 10)
                .unwrap_err()
                .is::<ParseError>()
        );
    }

    #[test]
    fn oversize_head() {
        let mut raw = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        raw.extend(std::iter::repeat_n(b'a', 2000));
        assert!(
            parse_head(&raw, 1000, 10)
                .unwrap_err()
                .is::<ResponseHeadTooLarge>()
        );
        let many: Vec<u8> = (0..20)
            .flat_map(|i| format!("H{i}: v\r\n").into_bytes())
            .collect();
        let raw = [&b"HTTP/1.1 200 OK\r\n"[..], &many, b"\r\n"].concat();
        assert!(
            parse_head(&raw, 10000, 10)
                .unwrap_err()
                .is::<ResponseHeadTooLarge>()
        );
    }

    #[test]
    fn framing_rules() {
        let f = |raw: &[u8], m: &str| framing(&head(raw), m);
        assert!(matches!(
            f(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD").unwrap(),
            BodyFraming::Empty
        ));
        assert!(matches!(
            f(b"HTTP/1.1 204 No\r\nContent-Length: 5\r\n\r\n", "GET").unwrap(),
            BodyFraming::Empty
        ));
        assert!(matches!(
            f(b"HTTP/1.1 304 No\r\n\r\n", "GET").unwrap(),
            BodyFraming::Empty
        ));
        assert!(matches!(
            f(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 001\r\n\r\n",
                "GET"
            )
            .unwrap(),
            BodyFraming::Length(1)
        ));
        assert!(matches!(
            f(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n", "GET").unwrap(),
            BodyFraming::Length(1)
        ));
        assert!(f(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "GET").is_err());
        assert!(f(b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n", "GET").is_err());
        assert!(f(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "GET").is_err());
        assert!(
            f(
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                "GET"
            )
            .is_err()
        );
        assert!(matches!(
            f(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: Chunked\r\n\r\n",
                "GET"
            )
            .unwrap(),
            BodyFraming::Chunked(_)
        ));
        assert!(f(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET").is_err());
        assert!(matches!(
            f(b"HTTP/1.1 200 OK\r\n\r\n", "GET").unwrap(),
            BodyFraming::UntilClose
        ));
        assert!(matches!(
            f(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET").unwrap(),
            BodyFraming::Empty
        ));
    }
}

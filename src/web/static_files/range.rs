//! `Range: bytes=...` requests (RFC 9110 section 14; Twisted's `static.File` range support):
//! parsing the header, turning it into a [`RangePlan`] for a file of known length, and the
//! framing of a `multipart/byteranges` body with its length known before a byte is sent.
//!
//! # Rules
//!
//! Parsing follows Twisted's `_parseRangeHeader`: the unit must be exactly `bytes`; elements
//! are split on `,`, stripped, and empty ones dropped; each is `first-last`, `first-` or
//! `-suffix` with optional spaces around the numbers. Anything else makes the whole header
//! invalid, and an invalid header is **ignored** (the full body, 200), as RFC 9110 allows.
//!
//! Against a file of `len` bytes a range whose first byte is at or past the end is
//! unsatisfiable, `last` is clamped to the end, `-n` is the last `n` bytes (the whole file if
//! `n > len`: Twisted answers 500 there) and `-0` is unsatisfiable. When no range is
//! satisfiable the plan is [`RangePlan::Unsatisfiable`] (416 with `Content-Range: bytes
//! */len`), for one range or many (Twisted crashes with 500 on the latter).
//!
//! # Amplification
//!
//! Twisted sends every range as asked, so `bytes=0-,0-,0-,...` makes a small request cost the
//! file's size many times over. Here the satisfiable ranges are sorted and overlapping or
//! adjacent ones merged (RFC 9110 allows a server to coalesce), so no byte is sent twice; if
//! more than a limit ([`DEFAULT_MAX_RANGES`]) remain, or the header has more than
//! [`MAX_RANGE_ELEMENTS`] elements, the header is ignored and the full body sent once. One
//! range left after merging is sent as a plain 206, not as a multipart body of one part.

use std::fmt::Write as _;

/// Ranges a plan may have after merging before the header is ignored (a full 200).
pub const DEFAULT_MAX_RANGES: usize = 16;

/// Elements a `Range` header may list at all before it is ignored (bounds the parsing and
/// sorting work a single header can cause).
pub const MAX_RANGE_ELEMENTS: usize = 256;

/// One element of a `Range` header, before the file's length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last` (`last` inclusive) or `first-` (`None`: to the end).
    FromTo(u64, Option<u64>),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// A satisfiable range of a file: bytes `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteRange {
    /// Offset of the first byte.
    pub start: u64,
    /// Offset of the last byte (inclusive), below the file's length.
    pub end: u64,
}

impl ByteRange {
    /// Bytes in the range.
    ///
    /// ```
    /// use twistor::web::static_files::range::ByteRange;
    /// assert_eq!(ByteRange { start: 3, end: 43 }.len(), 41);
    /// ```
    #[allow(clippy::len_without_is_empty)] // never empty: end >= start
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// The `Content-Range` value for this range of a file of `total` bytes.
    ///
    /// ```
    /// use twistor::web::static_files::range::ByteRange;
    /// assert_eq!(ByteRange { start: 47, end: 63 }.content_range(64), "bytes 47-63/64");
    /// ```
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, total)
    }
}

/// Why a `Range` header is not valid (it is then ignored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RangeError {
    /// No `=` after the unit.
    #[error("Range header has no '='")]
    NoEquals,
    /// A unit other than `bytes`.
    #[error("Range unit is not 'bytes'")]
    Unit,
    /// An element that is not `first-last`, `first-` or `-suffix`.
    #[error("malformed Range element {0:?}")]
    Element(String),
    /// `first` after `last`.
    #[error("Range element {0:?} ends before it starts")]
    Backwards(String),
    /// No element at all.
    #[error("Range header lists no range")]
    Empty,
    /// More than [`MAX_RANGE_ELEMENTS`] elements.
    #[error("Range header lists more than {MAX_RANGE_ELEMENTS} ranges")]
    TooMany,
}

/// Parses a `Range` header value into its elements.
///
/// ```
/// use twistor::web::static_files::range::{parse_range, RangeSpec};
/// assert_eq!(
///     parse_range(b"bytes=1-2, 5-, -7").unwrap(),
///     vec![RangeSpec::FromTo(1, Some(2)), RangeSpec::FromTo(5, None), RangeSpec::Suffix(7)]
/// );
/// assert!(parse_range(b"bytes=5-4").is_err());
/// assert!(parse_range(b"items=1-2").is_err());
/// ```
pub fn parse_range(value: &[u8]) -> Result<Vec<RangeSpec>, RangeError> {
    let eq = value
        .iter()
        .position(|&b| b == b'=')
        .ok_or(RangeError::NoEquals)?;
    if value[..eq].trim_ascii() != b"bytes" {
        return Err(RangeError::Unit);
    }
    let mut specs = Vec::new();
    for element in value[eq + 1..].split(|&b| b == b',') {
        let element = element.trim_ascii();
        if element.is_empty() {
            continue;
        }
        if specs.len() == MAX_RANGE_ELEMENTS {
            return Err(RangeError::TooMany);
        }
        specs.push(parse_element(element)?);
    }
    if specs.is_empty() {
        return Err(RangeError::Empty);
    }
    Ok(specs)
}

fn parse_element(element: &[u8]) -> Result<RangeSpec, RangeError> {
    let shown = || String::from_utf8_lossy(element).into_owned();
    let dash = element
        .iter()
        .position(|&b| b == b'-')
        .ok_or_else(|| RangeError::Element(shown()))?;
    let first = element[..dash].trim_ascii();
    let last = element[dash + 1..].trim_ascii();
    let number = |s: &[u8]| -> Result<u64, RangeError> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return Err(RangeError::Element(shown()));
        }
        // Digits only: the one failure left is overflow.
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RangeError::Element(shown()))
    };
    match (first.is_empty(), last.is_empty()) {
        (true, true) => Err(RangeError::Element(shown())),
        (true, false) => Ok(RangeSpec::Suffix(number(last)?)),
        (false, true) => Ok(RangeSpec::FromTo(number(first)?, None)),
        (false, false) => {
            let (a, b) = (number(first)?, number(last)?);
            if a > b {
                return Err(RangeError::Backwards(shown()));
            }
            Ok(RangeSpec::FromTo(a, Some(b)))
        }
    }
}

impl RangeSpec {
    /// The bytes this element asks for in a file of `len` bytes, `None` if unsatisfiable.
    ///
    /// ```
    /// use twistor::web::static_files::range::{ByteRange, RangeSpec};
    /// assert_eq!(RangeSpec::FromTo(40, Some(100)).resolve(64), Some(ByteRange { start: 40, end: 63 }));
    /// assert_eq!(RangeSpec::Suffix(100).resolve(10), Some(ByteRange { start: 0, end: 9 }));
    /// assert_eq!(RangeSpec::Suffix(0).resolve(10), None);
    /// assert_eq!(RangeSpec::FromTo(64, None).resolve(64), None);
    /// ```
    pub fn resolve(&self, len: u64) -> Option<ByteRange> {
        match *self {
            RangeSpec::FromTo(start, last) => {
                if start >= len {
                    return None;
                }
                let end = last.map_or(len - 1, |l| l.min(len - 1));
                Some(ByteRange { start, end })
            }
            RangeSpec::Suffix(n) => {
                if n == 0 || len == 0 {
                    return None;
                }
                Some(ByteRange {
                    start: len - n.min(len),
                    end: len - 1,
                })
            }
        }
    }
}

/// What to send for a request, given its `Range` header and the file's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangePlan {
    /// 200 with the whole file (no header, an invalid one, a failed `If-Range`, too many
    /// ranges).
    Full,
    /// 206 with one range.
    Single(ByteRange),
    /// 206 `multipart/byteranges` with these ranges (sorted, disjoint, not adjacent).
    Multiple(Vec<ByteRange>),
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Plans the response to `range` (the `Range` header's value, if any) for a file of `len`
/// bytes, merging overlapping and adjacent ranges and allowing at most `max_ranges` after
/// that (see the module docs). A failed `If-Range` is the caller's to check first (see
/// [`conditional::if_range_matches`](super::conditional::if_range_matches)): it means
/// [`RangePlan::Full`].
///
/// ```
/// use twistor::web::static_files::range::{plan, ByteRange, RangePlan, DEFAULT_MAX_RANGES};
/// assert_eq!(plan(Some(b"bytes=-17"), 64, DEFAULT_MAX_RANGES),
///            RangePlan::Single(ByteRange { start: 47, end: 63 }));
/// assert_eq!(plan(Some(b"bytes=0-5,3-9"), 64, DEFAULT_MAX_RANGES),
///            RangePlan::Single(ByteRange { start: 0, end: 9 }));
/// assert_eq!(plan(Some(b"bytes=67-108"), 64, DEFAULT_MAX_RANGES), RangePlan::Unsatisfiable);
/// assert_eq!(plan(Some(b"bytes=20-13"), 64, DEFAULT_MAX_RANGES), RangePlan::Full);
/// ```
pub fn plan(range: Option<&[u8]>, len: u64, max_ranges: usize) -> RangePlan {
    let Some(value) = range else {
        return RangePlan::Full;
    };
    let specs = match parse_range(value) {
        Ok(specs) => specs,
        Err(e) => {
            log::debug!(target: "twistor::web", "ignoring Range header: {e}");
            return RangePlan::Full;
        }
    };
    let mut ranges: Vec<ByteRange> = specs.iter().filter_map(|s| s.resolve(len)).collect();
    if ranges.is_empty() {
        return RangePlan::Unsatisfiable;
    }
    ranges.sort_unstable();
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            // Overlapping or adjacent: one range (end < len <= u64::MAX, so `+ 1` is safe).
            Some(last) if r.start <= last.end + 1 => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    match merged.len() {
        1 => RangePlan::Single(merged[0]),
        n if n > max_ranges => RangePlan::Full,
        _ => RangePlan::Multiple(merged),
    }
}

/// The framing of a `multipart/byteranges` body: what goes before each range's bytes, what
/// closes the body, and the exact total length (for `Content-Length`).
///
/// The layout is Twisted's: for each part `CRLF--boundary CRLF Content-Type: type CRLF
/// Content-Range: bytes a-b/len CRLF CRLF` then the bytes, and after the last
/// `CRLF--boundary--CRLF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    boundary: String,
    parts: Vec<(Vec<u8>, ByteRange)>,
    tail: Vec<u8>,
    total: u64,
}

impl Multipart {
    /// The framing for `ranges` of a file of `len` bytes whose parts have `content_type`
    /// (Twisted writes `bytes` when the file has none). `boundary` should not occur in the
    /// file: [`random_boundary`] makes one that practically never does.
    ///
    /// ```
    /// use twistor::web::static_files::range::{ByteRange, Multipart};
    /// let m = Multipart::new(&[ByteRange { start: 0, end: 1 }], 10, "text/plain", "B");
    /// assert_eq!(m.parts()[0].0,
    ///            b"\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n");
    /// assert_eq!(m.tail(), b"\r\n--B--\r\n");
    /// assert_eq!(m.content_length(), m.parts()[0].0.len() as u64 + 2 + 9);
    /// ```
    pub fn new(ranges: &[ByteRange], len: u64, content_type: &str, boundary: &str) -> Multipart {
        let mut total = 0u64;
        let parts: Vec<(Vec<u8>, ByteRange)> = ranges
            .iter()
            .map(|r| {
                let mut head = String::new();
                // Writing to a String cannot fail.
                let _ = write!(
                    head,
                    "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
                    r.content_range(len)
                );
                total += head.len() as u64 + r.len();
                (head.into_bytes(), *r)
            })
            .collect();
        let tail = format!("\r\n--{boundary}--\r\n").into_bytes();
        total += tail.len() as u64;
        Multipart {
            boundary: boundary.to_owned(),
            parts,
            tail,
            total,
        }
    }

    /// Each part's head and the range of the file that follows it.
    pub fn parts(&self) -> &[(Vec<u8>, ByteRange)] {
        &self.parts
    }

    /// What ends the body, after the last part.
    pub fn tail(&self) -> &[u8] {
        &self.tail
    }

    /// The exact length of the whole body.
    pub fn content_length(&self) -> u64 {
        self.total
    }

    /// The response's `Content-Type` (the boundary quoted, as Twisted writes it).
    ///
    /// ```
    /// use twistor::web::static_files::range::{ByteRange, Multipart};
    /// let m = Multipart::new(&[ByteRange { start: 0, end: 0 }], 1, "bytes", "abc");
    /// assert_eq!(m.content_type(), "multipart/byteranges; boundary=\"abc\"");
    /// ```
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary=\"{}\"", self.boundary)
    }
}

/// A fresh boundary: 32 random hex digits.
///
/// ```
/// let b = twistor::web::static_files::range::random_boundary();
/// assert_eq!(b.len(), 32);
/// assert!(b.bytes().all(|c| c.is_ascii_hexdigit()));
/// ```
pub fn random_boundary() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

//! Conditional requests for files (RFC 9110 section 13): the validators a file has
//! (`Last-Modified`, `ETag`) and what the request's preconditions make of them.
//!
//! Twisted's `static.File` only knows `If-Modified-Since`; here the whole set is evaluated in
//! RFC 9110's order (section 13.2.2):
//!
//! 1. `If-Match` present and false → 412; else `If-Unmodified-Since` present and false → 412.
//! 2. `If-None-Match` present and false → 304 for GET and HEAD, 412 otherwise; only when it is
//!    absent does `If-Modified-Since` count (GET and HEAD only): false → 304.
//! 3. `If-Range` (ranges only): see [`if_range_matches`].
//!
//! A date that does not parse is ignored, as the RFC says. `Last-Modified` is the file's mtime
//! cut to whole seconds (what an HTTP date can say), so a file modified within the second of
//! `If-Modified-Since` counts as not modified, as everywhere else.
//!
//! The `ETag` is **strong**: `"<inode>-<size>-<mtime in nanoseconds>"` in hex. A change that
//! keeps all three (a rewrite of the same size within one mtime tick) goes unseen; with
//! nanosecond mtimes that takes effort, and nginx and Apache accept the same trade. Being
//! strong it may validate `If-Range` and `If-Match`.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::web::date::{http_date, http_date_bytes, parse_http_date};
use crate::web::headers::HeaderLookup;

/// A file's validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validators {
    /// The modification time, whole seconds.
    pub last_modified: SystemTime,
    /// The strong entity tag, quotes included.
    pub etag: String,
}

impl Validators {
    /// The validators of a file from its metadata.
    ///
    /// ```
    /// let meta = std::fs::metadata("Cargo.toml").unwrap();
    /// let v = twistor::web::static_files::conditional::Validators::from_metadata(&meta);
    /// assert!(v.etag.starts_with('"') && v.etag.ends_with('"'));
    /// ```
    pub fn from_metadata(meta: &Metadata) -> Validators {
        let secs = u64::try_from(meta.mtime()).unwrap_or(0);
        let nanos = u64::try_from(meta.mtime_nsec()).unwrap_or(0);
        Validators::new(
            meta.ino(),
            meta.len(),
            secs.saturating_mul(1_000_000_000).saturating_add(nanos),
        )
    }

    /// Validators from an inode number, a size and an mtime in nanoseconds since the epoch.
    ///
    /// ```
    /// use twistor::web::static_files::conditional::Validators;
    /// let v = Validators::new(0x1f, 64, 784_111_777_500_000_000);
    /// assert_eq!(v.etag, "\"1f-40-ae1b981da166f00\"");
    /// assert_eq!(v.last_modified_header(), "Sun, 06 Nov 1994 08:49:37 GMT");
    /// ```
    pub fn new(inode: u64, size: u64, mtime_nanos: u64) -> Validators {
        Validators {
            last_modified: UNIX_EPOCH + Duration::from_secs(mtime_nanos / 1_000_000_000),
            etag: etag(inode, size, mtime_nanos),
        }
    }

    /// The `Last-Modified` value, as bytes for a header.
    pub(crate) fn last_modified_value(&self) -> [u8; 29] {
        let secs = self
            .last_modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        http_date_bytes(secs)
    }

    /// The `Last-Modified` value.
    pub fn last_modified_header(&self) -> String {
        http_date(self.last_modified)
    }
}

/// `"<inode>-<size>-<mtime>"` in hex, written by hand into one buffer: one per file
/// response.
fn etag(inode: u64, size: u64, mtime_nanos: u64) -> String {
    fn hex(out: &mut [u8; 53], at: &mut usize, n: u64) {
        let digits = (64 - (n | 1).leading_zeros()).div_ceil(4);
        for i in (0..digits).rev() {
            out[*at] = b"0123456789abcdef"[(n >> (i * 4)) as usize & 0xf];
            *at += 1;
        }
    }
    // Three numbers of at most 16 digits, two dashes, two quotes.
    let mut buf = [0u8; 53];
    let mut at = 0;
    buf[at] = b'"';
    at += 1;
    hex(&mut buf, &mut at, inode);
    buf[at] = b'-';
    at += 1;
    hex(&mut buf, &mut at, size);
    buf[at] = b'-';
    at += 1;
    hex(&mut buf, &mut at, mtime_nanos);
    buf[at] = b'"';
    at += 1;
    // Only ASCII was written.
    std::str::from_utf8(&buf[..at])
        .map(str::to_owned)
        .unwrap_or_default()
}

/// What the preconditions of a request say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the file (ranges may still apply).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Evaluates the request's preconditions against `v` (see the module docs for the order).
/// `get_or_head` says whether the method is GET or HEAD.
///
/// ```
/// use twistor::web::Headers;
/// use twistor::web::static_files::conditional::{evaluate, Precondition, Validators};
/// let v = Validators::new(1, 2, 784_111_777_000_000_000);
/// let mut h = Headers::new();
/// h.set("If-None-Match", v.etag.as_bytes());
/// assert_eq!(evaluate(&h, &v, true), Precondition::NotModified);
/// assert_eq!(evaluate(&h, &v, false), Precondition::Failed);
/// ```
pub fn evaluate<H: HeaderLookup + ?Sized>(
    headers: &H,
    v: &Validators,
    get_or_head: bool,
) -> Precondition {
    if let Some(im) = joined(headers, "If-Match") {
        if !etag_list_matches(&im, &v.etag, true) {
            return Precondition::Failed;
        }
    } else if let Some(t) = headers
        .first_value("If-Unmodified-Since")
        .and_then(parse_http_date)
        && v.last_modified > t
    {
        return Precondition::Failed;
    }
    if let Some(inm) = joined(headers, "If-None-Match") {
        if etag_list_matches(&inm, &v.etag, false) {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if get_or_head
        && let Some(t) = headers
            .first_value("If-Modified-Since")
            .and_then(parse_http_date)
        && v.last_modified <= t
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Whether a `Range` may be honoured given `If-Range` (RFC 9110 section 13.1.5): true when
/// the header is absent, when it is an entity tag strongly equal to ours (a weak one never
/// matches), or a date exactly equal to `Last-Modified`. False means: send the whole file.
///
/// ```
/// use twistor::web::Headers;
/// use twistor::web::static_files::conditional::{if_range_matches, Validators};
/// let v = Validators::new(1, 2, 784_111_777_000_000_000);
/// let mut h = Headers::new();
/// assert!(if_range_matches(&h, &v));
/// h.set("If-Range", "Sun, 06 Nov 1994 08:49:37 GMT");
/// assert!(if_range_matches(&h, &v));
/// h.set("If-Range", format!("W/{}", v.etag));
/// assert!(!if_range_matches(&h, &v));
/// ```
pub fn if_range_matches<H: HeaderLookup + ?Sized>(headers: &H, v: &Validators) -> bool {
    let Some(value) = headers.first_value("If-Range") else {
        return true;
    };
    let value = value.trim_ascii();
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return value == v.etag.as_bytes();
    }
    parse_http_date(value) == Some(v.last_modified)
}

/// All the values of a list header, joined with commas; `None` if absent.
fn joined<H: HeaderLookup + ?Sized>(headers: &H, name: &str) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    headers.each_value(name, &mut |v| {
        let o = out.get_or_insert_with(Vec::new);
        if !o.is_empty() {
            o.push(b',');
        }
        o.extend_from_slice(v);
    });
    out
}

/// Whether an `If-Match`/`If-None-Match` list (`*` or entity tags) matches `ours` (strong
/// comparison for `If-Match`, weak for `If-None-Match`). A malformed list matches nothing.
fn etag_list_matches(list: &[u8], ours: &str, strong: bool) -> bool {
    let list = list.trim_ascii();
    if list == b"*" {
        return true;
    }
    let ours = ours.as_bytes();
    let mut rest = list;
    loop {
        rest = rest.trim_ascii_start();
        while let Some(r) = rest.strip_prefix(b",") {
            rest = r.trim_ascii_start();
        }
        if rest.is_empty() {
            return false;
        }
        let (weak, tagged) = match rest.strip_prefix(b"W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let Some(body) = tagged.strip_prefix(b"\"") else {
            return false;
        };
        let Some(close) = body.iter().position(|&b| b == b'"') else {
            return false;
        };
        let tag = &tagged[..close + 2];
        if tag == ours && !(strong && weak) {
            return true;
        }
        rest = &body[close + 1..];
    }
}

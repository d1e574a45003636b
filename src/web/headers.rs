//! [`Headers`]: an HTTP header map (Twisted's `http_headers.Headers`), shared by the server
//! and the client.
//!
//! Names compare without regard to case and keep the spelling they were given (what goes on
//! the wire); values are bytes, kept in the order they were added. A message has a handful of
//! headers, so the map is a vector searched in order: cheaper than hashing for every size a
//! real message has, and it keeps insertion order for free.
//!
//! Values can never split a message: every line break (`\r\n`, `\r`, `\n`) and NUL in a value
//! becomes a space when it is stored (Twisted does the same for line breaks), so a value taken
//! from a peer or a user cannot inject a header or end the head early. Names must be tokens
//! (RFC 9110 section 5.6.2); [`Headers::try_add`] and [`Headers::try_set`] say why a name is
//! refused, [`Headers::add`] and [`Headers::set`] report it (stderr when no logger is
//! installed) and leave the map unchanged.

use std::borrow::Cow;
use std::fmt;

use smallvec::SmallVec;

/// A header name that is not an HTTP token.
///
/// ```
/// use twistor::web::Headers;
/// let mut h = Headers::new();
/// let err = h.try_add("Bad Name", "x").unwrap_err();
/// assert_eq!(err.to_string(), "invalid HTTP header name \"Bad Name\": not a token");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid HTTP header name {name:?}: not a token")]
pub struct InvalidHeaderName {
    /// The refused name.
    pub name: String,
}

/// `tchar` as a table: one load per byte instead of a chain of range tests (names are
/// checked on every `set_header`).
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = matches!(b as u8,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
            | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z');
        b += 1;
    }
    t
};

/// Whether `b` may appear in a token (RFC 9110 `tchar`).
#[inline]
pub fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// Whether `s` is a non-empty HTTP token (a valid header name or method).
///
/// ```
/// assert!(twistor::web::headers::is_token(b"Content-Type"));
/// assert!(!twistor::web::headers::is_token(b"Bad Name"));
/// assert!(!twistor::web::headers::is_token(b""));
/// ```
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// A value with line breaks and NULs made spaces (a `\r\n` pair becomes one space).
fn sanitize(value: &[u8]) -> Value {
    if !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        return Value::from_slice(value);
    }
    let mut out = Value::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'\r' if value.get(i + 1) == Some(&b'\n') => {
                out.push(b' ');
                i += 1;
            }
            b'\r' | b'\n' | 0 => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Whether the comma-separated list `value` has `token` (ignoring case and whitespace).
fn lists_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The headers of a response that shape its head (see [`Headers::survey`]).
#[derive(Default)]
pub(crate) struct Survey<'a> {
    /// The last `Content-Length` value.
    pub content_length: Option<&'a [u8]>,
    pub transfer_encoding: bool,
    pub connection: bool,
    /// A `Connection` value lists `close`.
    pub close: bool,
    pub date: bool,
    pub last_modified: bool,
    pub etag: bool,
}

/// Read access to the headers of a message: a [`Headers`] map, or a server
/// [`Request`](crate::web::Request)'s own, read where they were parsed (nothing copied).
///
/// ```
/// use twistor::web::headers::{HeaderLookup, Headers};
/// let mut h = Headers::new();
/// h.add("Accept", "a");
/// h.add("accept", "b");
/// assert_eq!(h.first_value("ACCEPT"), Some(&b"a"[..]));
/// let mut all = Vec::new();
/// h.each_value("accept", &mut |v| all.push(v.to_vec()));
/// assert_eq!(all, [b"a".to_vec(), b"b".to_vec()]);
/// ```
pub trait HeaderLookup {
    /// The first value of `name` (case-insensitive).
    fn first_value(&self, name: &str) -> Option<&[u8]>;
    /// Calls `f` with every value of `name` (case-insensitive), in order.
    fn each_value(&self, name: &str, f: &mut dyn FnMut(&[u8]));
}

impl HeaderLookup for Headers {
    fn first_value(&self, name: &str) -> Option<&[u8]> {
        self.get(name)
    }
    fn each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        for v in self.get_all(name) {
            f(v);
        }
    }
}

/// An ordered, case-insensitive multi-map of header names to byte values.
///
/// ```
/// use twistor::web::Headers;
///
/// let mut h = Headers::new();
/// h.add("Set-Cookie", "a=1");
/// h.add("set-cookie", "b=2");
/// h.set("Content-Type", "text/plain");
/// assert_eq!(h.get_all("SET-COOKIE").collect::<Vec<_>>(), [&b"a=1"[..], b"b=2"]);
/// assert_eq!(h.get_str("content-type"), Some("text/plain"));
/// // Values cannot carry a line break onto the wire.
/// h.set("X-Evil", "a\r\nInjected: 1");
/// assert_eq!(h.get("x-evil"), Some(&b"a Injected: 1"[..]));
/// let mut wire = Vec::new();
/// h.write_to(&mut wire);
/// assert_eq!(
///     wire,
///     b"Set-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Type: text/plain\r\nX-Evil: a Injected: 1\r\n"
/// );
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: SmallVec<[Entry; 2]>,
}

/// A name and its value. Two headers are kept inline (a response usually sets one or two),
/// and the names responses commonly set, spelt as usual, are not copied: setting
/// `Content-Type` allocates only its value.
type Entry = (Cow<'static, str>, Value);

/// A value: kept inline up to 32 bytes (a type, a length, a date, an entity tag), so most
/// headers a response sets allocate nothing, and free nothing when it is dropped.
type Value = SmallVec<[u8; 32]>;

/// `name`, borrowed from a static string when it is one of the common spellings.
fn name_of(name: &str) -> Cow<'static, str> {
    const COMMON: &[&str] = &[
        "Content-Type",
        "Content-Length",
        "Content-Encoding",
        "Cache-Control",
        "Location",
        "Last-Modified",
        "ETag",
        "Allow",
        "Vary",
        "Accept-Ranges",
        "Content-Range",
        "Connection",
        "Host",
        "User-Agent",
        "Accept",
        "Accept-Encoding",
    ];
    match COMMON.iter().find(|c| **c == name) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(name.to_string()),
    }
}

impl Headers {
    /// An empty map.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// An empty map with room for `n` pairs before it allocates again.
    pub fn with_capacity(n: usize) -> Headers {
        Headers {
            entries: SmallVec::with_capacity(n),
        }
    }

    /// Replaces the values of every name `other` has with `other`'s values, in `other`'s
    /// order (several values of one name all stay).
    ///
    /// ```
    /// let mut h = twistor::web::Headers::new();
    /// h.add("Vary", "Accept");
    /// h.add("Server", "x");
    /// let mut other = twistor::web::Headers::new();
    /// other.add("vary", "Cookie");
    /// other.add("vary", "Origin");
    /// h.replace_from(other);
    /// assert_eq!(h.get_all("Vary").collect::<Vec<_>>(), [&b"Cookie"[..], b"Origin"]);
    /// assert_eq!(h.get("server"), Some(&b"x"[..]));
    /// ```
    pub fn replace_from(&mut self, other: Headers) {
        if self.entries.is_empty() {
            *self = other;
            return;
        }
        for (n, _) in &other.entries {
            self.remove(n);
        }
        self.entries.extend(other.entries);
    }

    /// What a response head needs to know of the map, found in one pass instead of a
    /// search per name.
    pub(crate) fn survey(&self) -> Survey<'_> {
        let mut s = Survey::default();
        for (n, v) in &self.entries {
            let is = |want: &str| n.len() == want.len() && n.eq_ignore_ascii_case(want);
            match n.len() {
                4 if is("date") => s.date = true,
                4 if is("etag") => s.etag = true,
                10 if is("connection") => {
                    s.connection = true;
                    s.close |= lists_token(v, "close");
                }
                13 if is("last-modified") => s.last_modified = true,
                14 if is("content-length") => s.content_length = Some(v),
                17 if is("transfer-encoding") => s.transfer_encoding = true,
                _ => {}
            }
        }
        s
    }

    /// Appends a pair the server made itself: a static, valid name and a value known to
    /// hold no line break or NUL (dates, numbers, entity tags, types from a table), so
    /// neither is checked or copied again.
    pub(crate) fn push_trusted(&mut self, name: &'static str, value: &[u8]) {
        debug_assert!(is_token(name.as_bytes()));
        debug_assert!(!value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)));
        self.entries
            .push((Cow::Borrowed(name), Value::from_slice(value)));
    }

    /// How many (name, value) pairs there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends a value for `name`; an invalid name is refused with the reason.
    pub fn try_add(
        &mut self,
        name: &str,
        value: impl AsRef<[u8]>,
    ) -> Result<(), InvalidHeaderName> {
        if !is_token(name.as_bytes()) {
            return Err(InvalidHeaderName { name: name.into() });
        }
        self.entries.push((name_of(name), sanitize(value.as_ref())));
        Ok(())
    }

    /// Appends a value for `name`. An invalid name is reported (stderr when no logger is
    /// installed) and nothing is added; use [`Headers::try_add`] to handle it yourself.
    pub fn add(&mut self, name: &str, value: impl AsRef<[u8]>) {
        if let Err(e) = self.try_add(name, value) {
            crate::report_error!(target: "twistor::web", "{e}: header not added");
        }
    }

    /// Replaces every value of `name` with `value`; an invalid name is refused.
    pub fn try_set(
        &mut self,
        name: &str,
        value: impl AsRef<[u8]>,
    ) -> Result<(), InvalidHeaderName> {
        if !is_token(name.as_bytes()) {
            return Err(InvalidHeaderName { name: name.into() });
        }
        let value = sanitize(value.as_ref());
        let Some(first) = self
            .entries
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        else {
            // The usual case, a name not set yet: no pass over the map to rebuild it.
            self.entries.push((name_of(name), value));
            return Ok(());
        };
        if !self.entries[first + 1..]
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            self.entries[first].1 = value;
            return Ok(());
        }
        // The first entry keeps its place (and spelling); the others go.
        let mut slot = None;
        let mut i = 0;
        self.entries.retain(|(n, _)| {
            let keep = if n.eq_ignore_ascii_case(name) {
                if slot.is_none() {
                    slot = Some(i);
                    true
                } else {
                    false
                }
            } else {
                true
            };
            if keep {
                i += 1;
            }
            keep
        });
        match slot {
            Some(i) => self.entries[i].1 = value,
            None => self.entries.push((name_of(name), value)),
        }
        Ok(())
    }

    /// Replaces every value of `name` with `value`. An invalid name is reported and the map
    /// is left unchanged; use [`Headers::try_set`] to handle it yourself.
    pub fn set(&mut self, name: &str, value: impl AsRef<[u8]>) {
        if let Err(e) = self.try_set(name, value) {
            crate::report_error!(target: "twistor::web", "{e}: header not set");
        }
    }

    /// Replaces every value of `name` with `values` (none: the header is removed).
    ///
    /// ```
    /// let mut h = twistor::web::Headers::new();
    /// h.set_all("Vary", ["Accept", "Cookie"]);
    /// assert_eq!(h.get_all("vary").count(), 2);
    /// ```
    pub fn set_all<I, V>(&mut self, name: &str, values: I)
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        if !is_token(name.as_bytes()) {
            let e = InvalidHeaderName { name: name.into() };
            crate::report_error!(target: "twistor::web", "{e}: header not set");
            return;
        }
        self.remove(name);
        for v in values {
            self.entries.push((name_of(name), sanitize(v.as_ref())));
        }
    }

    /// Removes every value of `name`; returns whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.entries.len() != before
    }

    /// Whether `name` has a value.
    pub fn contains(&self, name: &str) -> bool {
        self.entries
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The last value of `name` (what Twisted's `Request.getHeader` returns).
    ///
    /// ```
    /// let mut h = twistor::web::Headers::new();
    /// h.add("Host", "a");
    /// h.add("Host", "b");
    /// assert_eq!(h.get_last("host"), Some(&b"b"[..]));
    /// ```
    pub fn get_last(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `name`, if it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`, in the order they were added.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Every (name, value) pair, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(n, v)| (&**n, v.as_slice()))
    }

    /// Whether any comma-separated element of any value of `name` equals `token` (ignoring
    /// case and surrounding whitespace): `Connection: keep-alive, Upgrade` has `upgrade`.
    ///
    /// ```
    /// let mut h = twistor::web::Headers::new();
    /// h.add("Connection", "keep-alive, Upgrade");
    /// assert!(h.has_token("connection", "upgrade"));
    /// assert!(!h.has_token("connection", "close"));
    /// ```
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).any(|v| lists_token(v, token))
    }

    /// Appends `Name: value\r\n` for every pair, in order.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(
            self.entries
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum(),
        );
        for (n, v) in &self.entries {
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|(n, v)| (n, String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a [u8]);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, Entry>, fn(&'a Entry) -> (&'a str, &'a [u8])>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(n, v)| (&**n, v.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_keeps_first_position_and_drops_the_rest() {
        let mut h = Headers::new();
        h.add("A", "1");
        h.add("B", "2");
        h.add("a", "3");
        h.set("A", "x");
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [("A", &b"x"[..]), ("B", b"2")]
        );
    }

    #[test]
    fn invalid_names_are_refused_and_leave_the_map_alone() {
        let mut h = Headers::new();
        for bad in ["", "a b", "a:b", "a\r\nb", "é"] {
            assert!(h.try_add(bad, "v").is_err(), "{bad:?}");
            assert!(h.try_set(bad, "v").is_err(), "{bad:?}");
            h.add(bad, "v");
            h.set(bad, "v");
        }
        assert!(h.is_empty());
    }

    #[test]
    fn line_breaks_and_nul_become_spaces() {
        let mut h = Headers::new();
        h.add("X", "a\r\nb\rc\nd\0e");
        assert_eq!(h.get("x"), Some(&b"a b c d e"[..]));
    }

    #[test]
    fn remove_and_contains_ignore_case() {
        let mut h = Headers::new();
        h.add("Content-Length", "3");
        assert!(h.contains("content-length"));
        assert!(h.remove("CONTENT-LENGTH"));
        assert!(!h.remove("content-length"));
        assert!(!h.contains("Content-Length"));
    }
}

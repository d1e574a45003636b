//! [`Uri`]: the parts of an `http`/`https` URI the agent needs (Twisted's `client.URI`), and
//! the resolution of a relative reference against a base (RFC 3986 section 5.2), which the
//! redirect agents use for `Location`.

use std::fmt;

use super::error::InvalidUri;

/// A parsed absolute `http` or `https` URI.
///
/// ```
/// use twistor::web::client::Uri;
/// let u = Uri::parse("https://[::1]:8443/a/b?x=1#frag").unwrap();
/// assert_eq!(u.scheme(), "https");
/// assert_eq!(u.host(), "::1");
/// assert_eq!(u.port(), 8443);
/// assert_eq!(u.origin_form(), "/a/b?x=1");
/// assert_eq!(u.host_header(), "[::1]:8443");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    scheme: String,
    host: String,
    port: u16,
    explicit_port: bool,
    path: String,
    query: Option<String>,
    fragment: Option<String>,
}

fn invalid(uri: &str, why: impl Into<String>) -> InvalidUri {
    let mut end = uri.len().min(200);
    while !uri.is_char_boundary(end) {
        end -= 1;
    }
    InvalidUri {
        uri: uri[..end].to_string(),
        why: why.into(),
    }
}

impl Uri {
    /// Parses an absolute URI. Surrounding whitespace is ignored; any other byte outside
    /// visible ASCII (a space, CR, LF, NUL, a non-ASCII byte) is an error, and so are an empty
    /// host and a port that is not a number from 0 to 65535. An unknown scheme parses: the
    /// agent refuses it with [`SchemeNotSupported`](super::error::SchemeNotSupported).
    ///
    /// ```
    /// use twistor::web::client::Uri;
    /// assert_eq!(Uri::parse(" http://example.com ").unwrap().origin_form(), "/");
    /// assert!(Uri::parse("http://example.com/\r\nX: y").is_err());
    /// assert!(Uri::parse("http://example.com:http/").is_err());
    /// assert!(Uri::parse("/relative").is_err());
    /// ```
    pub fn parse(uri: &str) -> Result<Uri, InvalidUri> {
        let text = uri.trim();
        if text.is_empty() {
            return Err(invalid(uri, "empty"));
        }
        if let Some(b) = text.bytes().find(|b| !(0x21..=0x7e).contains(b)) {
            return Err(invalid(
                uri,
                format!("byte 0x{b:02x} is not allowed (only visible ASCII)"),
            ));
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(invalid(uri, "not an absolute URI (no scheme://)"));
        };
        if scheme.is_empty()
            || !scheme.as_bytes()[0].is_ascii_alphabetic()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(invalid(uri, "bad scheme"));
        }
        let scheme = scheme.to_ascii_lowercase();
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f.to_string())),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q.to_string())),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        // Credentials in the URI are not sent (no Authorization is made from them).
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
            let Some((h, tail)) = after.split_once(']') else {
                return Err(invalid(uri, "unclosed [ in the host"));
            };
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(invalid(uri, "not an IPv6 address between [ ]"));
            }
            let port = match tail {
                "" => None,
                t => match t.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return Err(invalid(uri, "junk after ]")),
                },
            };
            (h.to_string(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(invalid(uri, "empty host"));
        }
        let default_port = if scheme == "https" { 443 } else { 80 };
        let (port, explicit_port) = match port {
            None | Some("") => (default_port, false),
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
                Ok(n) => (n, true),
                Err(_) => return Err(invalid(uri, "port out of range")),
            },
            Some(_) => return Err(invalid(uri, "the port is not a number")),
        };
        Ok(Uri {
            host: host.to_ascii_lowercase(),
            scheme,
            port,
            explicit_port: explicit_port && port != default_port,
            path: path.to_string(),
            query,
            fragment,
        })
    }

    /// `http` or `https` (lower case), or whatever else was given.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host, without the brackets of an IPv6 literal, lower case.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (80 or 443 unless given).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path (may be empty).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query, without its `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The fragment, without its `#` (never sent).
    pub fn fragment(&self) -> Option<&str> {
        self.fragment.as_deref()
    }

    /// The request target: path and query, `/` for an empty path (the fragment is dropped).
    pub fn origin_form(&self) -> String {
        let mut s = if self.path.is_empty() {
            "/".to_string()
        } else {
            self.path.clone()
        };
        if let Some(q) = &self.query {
            s.push('?');
            s.push_str(q);
        }
        s
    }

    /// The absolute form of the request target (what a request to a proxy names):
    /// scheme, `Host` value, path and query, without the fragment.
    ///
    /// ```
    /// use twistor::web::client::Uri;
    /// let u = Uri::parse("http://example.com:8080/a?b=1#top").unwrap();
    /// assert_eq!(u.absolute_form(), "http://example.com:8080/a?b=1");
    /// assert_eq!(Uri::parse("http://[::1]").unwrap().absolute_form(), "http://[::1]/");
    /// ```
    pub fn absolute_form(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme,
            self.host_header(),
            self.origin_form()
        )
    }

    /// The `Host` header value: the host (bracketed if IPv6), and `:port` unless it is the
    /// scheme's default.
    ///
    /// ```
    /// use twistor::web::client::Uri;
    /// assert_eq!(Uri::parse("http://example.com:80/").unwrap().host_header(), "example.com");
    /// assert_eq!(Uri::parse("http://example.com:54321/").unwrap().host_header(), "example.com:54321");
    /// assert_eq!(Uri::parse("https://example.com/").unwrap().host_header(), "example.com");
    /// ```
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.explicit_port {
            format!("{host}:{}", self.port)
        } else {
            host
        }
    }

    /// Whether `other` has the same scheme, host and port (the same origin).
    pub fn same_origin(&self, other: &Uri) -> bool {
        self.scheme == other.scheme && self.host == other.host && self.port == other.port
    }

    /// Resolves a reference (a `Location`) against this URI (RFC 3986 section 5.2): absolute
    /// URIs stand, `//host/p` keeps the scheme, `/p` keeps the authority, `p` is merged with
    /// this path's directory, `.`/`..` segments are removed, and this fragment is kept when
    /// the reference has none.
    ///
    /// ```
    /// use twistor::web::client::Uri;
    /// let base = Uri::parse("http://a.example/d1/d2/r2#f").unwrap();
    /// assert_eq!(base.join("r3").unwrap().to_string(), "http://a.example/d1/d2/r3#f");
    /// assert_eq!(base.join("../x?q").unwrap().to_string(), "http://a.example/d1/x?q#f");
    /// assert_eq!(base.join("//b.example:81/baz").unwrap().to_string(), "http://b.example:81/baz#f");
    /// assert_eq!(base.join("https://c.example/#g").unwrap().to_string(), "https://c.example/#g");
    /// ```
    pub fn join(&self, reference: &str) -> Result<Uri, InvalidUri> {
        let r = reference.trim();
        if let Some(b) = r.bytes().find(|b| !(0x21..=0x7e).contains(b)) {
            return Err(invalid(
                reference,
                format!("byte 0x{b:02x} is not allowed (only visible ASCII)"),
            ));
        }
        let has_scheme = r
            .find(':')
            .is_some_and(|i| r.find(['/', '?', '#']).is_none_or(|j| i < j) && i > 0);
        let mut out = if has_scheme {
            Uri::parse(r)?
        } else if r.starts_with("//") {
            Uri::parse(&format!("{}:{r}", self.scheme))?
        } else {
            let (r, fragment) = match r.split_once('#') {
                Some((a, f)) => (a, Some(f.to_string())),
                None => (r, None),
            };
            let (rpath, rquery) = match r.split_once('?') {
                Some((p, q)) => (p, Some(q.to_string())),
                None => (r, None),
            };
            let mut u = self.clone();
            u.fragment = fragment;
            if rpath.is_empty() {
                if rquery.is_some() {
                    u.query = rquery;
                }
            } else {
                let merged = if rpath.starts_with('/') {
                    rpath.to_string()
                } else {
                    let base = if self.path.is_empty() {
                        "/"
                    } else {
                        &self.path
                    };
                    let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
                    format!("{dir}{rpath}")
                };
                u.path = remove_dot_segments(&merged);
                u.query = rquery;
            }
            u
        };
        if out.fragment.is_none() {
            out.fragment = self.fragment.clone();
        }
        Ok(out)
    }
}

fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = path.split('/').collect();
    let last = segs.len() - 1;
    for (i, seg) in segs.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host_header())?;
        f.write_str(&self.origin_form())?;
        if let Some(fr) = &self.fragment {
            write!(f, "#{fr}")?;
        }
        Ok(())
    }
}

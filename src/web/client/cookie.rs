//! [`CookieAgent`] and a small [`CookieJar`] (Twisted's `CookieAgent` over Python's
//! `http.cookiejar`, reduced to the rules that are cheap to get right).
//!
//! Supported (RFC 6265): `Set-Cookie` with `Domain` (the request host must domain-match it;
//! without it the cookie is host-only), `Path` (default: the request path's directory),
//! `Secure` (sent over https only), `Max-Age` (wins over `Expires`; zero or less deletes) and
//! `Expires`; a cookie replaces the one with the same name, domain and path; cookies are sent
//! longest path first. A `Domain` that is a top-level domain (`com`) or a
//! country's common second level (`co.uk`, `com.au`) is refused, as `http.cookiejar` does;
//! not supported: the full public suffix list (so `Domain=github.io` from a user's page
//! is accepted), `SameSite` (no notion of a site here), `HttpOnly`
//! (no scripts), limits on cookie count and size beyond 4096 bytes per cookie, and
//! persistence to disk. Expiry uses the system clock. As in `http.cookiejar`, a `Port`
//! attribute (RFC 2965; RFC 6265 ignores it) restricts the cookie to the listed ports (no
//! value: the port it came from), and a cookie whose list leaves out the port it came from
//! is refused.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::Deferred;
use crate::web::Headers;
use crate::web::date::parse_http_date;

use super::agent::HttpAgent;
use super::producer::BodyProducer;
use super::response::Response;
use super::uri::Uri;

/// One stored cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
    /// The domain (lower case, no leading dot).
    pub domain: String,
    /// Sent to `domain` only, not its subdomains.
    pub host_only: bool,
    /// The path prefix.
    pub path: String,
    /// Sent over https only.
    pub secure: bool,
    /// When it expires (`None`: end of the session).
    pub expires: Option<SystemTime>,
    /// The ports it is sent to (the `Port` attribute; `None`: any).
    pub ports: Option<Vec<u16>>,
}

/// Cookies received, sent back where they belong (see the module docs).
///
/// ```
/// use twistor::web::client::{CookieJar, Uri};
/// let mut jar = CookieJar::new();
/// let uri = Uri::parse("http://www.example.com/a/b").unwrap();
/// jar.set_cookie(&uri, "sid=42; Path=/; Domain=example.com");
/// jar.set_cookie(&uri, "tok=x; Secure");
/// let there = Uri::parse("http://api.example.com/").unwrap();
/// assert_eq!(jar.cookie_header(&there).as_deref(), Some("sid=42"));
/// let secure = Uri::parse("https://www.example.com/a/c").unwrap();
/// assert_eq!(jar.cookie_header(&secure).as_deref(), Some("tok=x; sid=42"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct CookieJar {
    cookies: Vec<Cookie>,
}

fn domain_match(host: &str, domain: &str) -> bool {
    host == domain
        || (host.len() > domain.len()
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            && host.parse::<std::net::IpAddr>().is_err())
}

/// Whether `Domain=domain` would reach hosts of other owners, by the rules of Python's
/// `http.cookiejar` (what Twisted's `CookieAgent` uses), without a public suffix list: a
/// domain with no dot in it (a top-level domain: `com`) unless the host is that name
/// itself (`localhost`), and a two-label domain whose first label is a common
/// second-level name under a two-letter country code (`co.uk`, `com.au`, `ac.jp`: the
/// check `http.cookiejar` makes in its strict mode, made here always).
fn too_broad(host: &str, domain: &str) -> bool {
    const SECOND_LEVEL: &[&str] = &[
        "co", "ac", "com", "edu", "org", "net", "gov", "mil", "int", "aero", "biz", "cat", "coop",
        "info", "jobs", "mobi", "museum", "name", "pro", "travel", "eu",
    ];
    match domain.split_once('.') {
        None => host != domain,
        Some((sld, tld)) => {
            !tld.contains('.') && tld.len() == 2 && SECOND_LEVEL.contains(&sld) && host != domain
        }
    }
}

fn path_match(path: &str, cookie_path: &str) -> bool {
    path == cookie_path
        || (path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

fn default_path(uri: &Uri) -> String {
    let p = uri.path();
    match p.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => p[..i].to_string(),
    }
}

impl CookieJar {
    /// An empty jar.
    pub fn new() -> CookieJar {
        CookieJar::default()
    }

    /// The stored cookies (expired ones included until the next lookup).
    pub fn cookies(&self) -> &[Cookie] {
        &self.cookies
    }

    /// Stores what one `Set-Cookie` value sent in answer to `uri` says; a cookie the rules
    /// refuse is ignored.
    pub fn set_cookie(&mut self, uri: &Uri, header: &str) {
        if header.len() > 4096 {
            return;
        }
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let name = name.trim();
        if name.is_empty() {
            return;
        }
        let mut cookie = Cookie {
            name: name.to_string(),
            value: value.trim().to_string(),
            domain: uri.host().to_string(),
            host_only: true,
            path: default_path(uri),
            secure: false,
            expires: None,
            ports: None,
        };
        let mut max_age: Option<i64> = None;
        for attr in parts {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "domain" if !v.is_empty() => {
                    let d = v.trim_start_matches('.').to_ascii_lowercase();
                    if !domain_match(uri.host(), &d) || too_broad(uri.host(), &d) {
                        return;
                    }
                    cookie.domain = d;
                    cookie.host_only = false;
                }
                "path" if v.starts_with('/') => cookie.path = v.to_string(),
                "secure" => cookie.secure = true,
                "port" => {
                    // As `http.cookiejar`: no value means the request's port; a list must
                    // hold it, else the cookie is refused.
                    let ports: Vec<u16> = if v.is_empty() {
                        vec![uri.port()]
                    } else {
                        v.trim_matches('"')
                            .split(',')
                            .filter_map(|p| p.trim().parse().ok())
                            .collect()
                    };
                    if !ports.contains(&uri.port()) {
                        return;
                    }
                    cookie.ports = Some(ports);
                }
                "max-age" => max_age = v.parse().ok().or(max_age),
                "expires" => {
                    if let Some(t) = parse_http_date(v.as_bytes()) {
                        cookie.expires = Some(t);
                    }
                }
                _ => {}
            }
        }
        if let Some(age) = max_age {
            cookie.expires = Some(if age <= 0 {
                SystemTime::UNIX_EPOCH
            } else {
                SystemTime::now() + Duration::from_secs(age as u64)
            });
        }
        self.cookies.retain(|c| {
            !(c.name == cookie.name && c.domain == cookie.domain && c.path == cookie.path)
        });
        if cookie.expires.is_none_or(|t| t > SystemTime::now()) {
            self.cookies.push(cookie);
        }
    }

    /// Stores every `Set-Cookie` of a response to `uri`.
    pub fn extract(&mut self, uri: &Uri, headers: &Headers) {
        let values: Vec<String> = headers
            .get_all("set-cookie")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        for v in values {
            self.set_cookie(uri, &v);
        }
    }

    /// The `Cookie` header value for a request to `uri`, if any cookie applies.
    pub fn cookie_header(&mut self, uri: &Uri) -> Option<String> {
        let now = SystemTime::now();
        self.cookies.retain(|c| c.expires.is_none_or(|t| t > now));
        let path = if uri.path().is_empty() {
            "/"
        } else {
            uri.path()
        };
        let mut matching: Vec<&Cookie> = self
            .cookies
            .iter()
            .filter(|c| {
                (if c.host_only {
                    uri.host() == c.domain
                } else {
                    domain_match(uri.host(), &c.domain)
                }) && path_match(path, &c.path)
                    && (!c.secure || uri.scheme() == "https")
                    && c.ports.as_ref().is_none_or(|p| p.contains(&uri.port()))
            })
            .collect();
        if matching.is_empty() {
            return None;
        }
        matching.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        Some(
            matching
                .iter()
                .map(|c| format!("{}={}", c.name, c.value))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

/// Sends the jar's cookies and stores the ones responses set (Twisted's `CookieAgent`). A
/// `Cookie` header given by the caller is sent as is. Wrap it in a redirect agent to see the
/// cookies of every hop.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use twistor::web::client::{Agent, CookieAgent, CookieJar};
/// fn build(agent: Agent) -> (CookieAgent<Agent>, Rc<RefCell<CookieJar>>) {
///     let jar = Rc::new(RefCell::new(CookieJar::new()));
///     (CookieAgent::new(agent, jar.clone()), jar)
/// }
/// ```
pub struct CookieAgent<A> {
    agent: A,
    jar: Rc<RefCell<CookieJar>>,
}

impl<A: HttpAgent> CookieAgent<A> {
    /// Wraps `agent` with `jar`.
    pub fn new(agent: A, jar: Rc<RefCell<CookieJar>>) -> Self {
        CookieAgent { agent, jar }
    }

    /// The jar.
    pub fn jar(&self) -> &Rc<RefCell<CookieJar>> {
        &self.jar
    }
}

impl<A: HttpAgent> HttpAgent for CookieAgent<A> {
    fn request(
        &self,
        method: &str,
        uri: &str,
        headers: Option<Headers>,
        body: Option<Rc<dyn BodyProducer>>,
    ) -> Deferred<Response> {
        let mut headers = headers.unwrap_or_default();
        let parsed = Uri::parse(uri).ok();
        if let Some(u) = &parsed
            && !headers.contains("cookie")
            && let Some(v) = self.jar.borrow_mut().cookie_header(u)
        {
            headers.add("Cookie", v);
        }
        let jar = self.jar.clone();
        self.agent
            .request(method, uri, Some(headers), body)
            .add_callback(move |r| {
                if let Some(u) = &parsed {
                    jar.borrow_mut().extract(u, &r.headers);
                }
                r
            })
    }
}

//! [`RedirectAgent`] and [`BrowserLikeRedirectAgent`]: follow 301, 302, 303, 307 and 308.
//!
//! | code | `RedirectAgent` | `BrowserLikeRedirectAgent` |
//! |---|---|---|
//! | 301, 302 | GET/HEAD followed as is; other methods fail with [`PageRedirect`] | followed, other methods become GET without body |
//! | 303 | followed with GET (HEAD stays HEAD), no body | same |
//! | 307, 308 | followed with the same method and the body sent again if it can be replayed; otherwise [`PageRedirect`] | same |
//!
//! Departures from Twisted: `Location` is resolved against the URI of the hop that sent it
//! (Twisted resolves against the first URI); 307/308 keep non-GET methods when the body can
//! be replayed, and the browser-like agent does not turn a 308 POST into GET. Unchanged:
//! the limit (default 20) fails with [`InfiniteRedirection`]; a redirect without `Location`
//! fails with [`RedirectWithNoLocation`] (both, and [`PageRedirect`], wrapped in
//! [`ResponseFailed`] whose `response` is the redirect response, its body unread); on a change of
//! scheme, host or port, `Authorization`, `Cookie`, `Cookie2`, `Proxy-Authorization`,
//! `WWW-Authenticate` and the extra sensitive names are dropped; an explicit `Host` is kept,
//! otherwise it is recomputed for each hop. The body of each redirect response is read and
//! dropped before the next hop (so its connection can be reused; over 64 KiB the connection is
//! aborted instead); [`Response::previous_response`] links the chain.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::web::Headers;
use crate::{Deferred, Failure};

use super::agent::HttpAgent;
use super::error::{InfiniteRedirection, PageRedirect, RedirectWithNoLocation, ResponseFailed};
use super::producer::BodyProducer;
use super::response::{Response, read_body_limited};
use super::uri::Uri;

const SENSITIVE: [&str; 5] = [
    "authorization",
    "cookie",
    "cookie2",
    "proxy-authorization",
    "www-authenticate",
];

struct Inner<A> {
    agent: A,
    limit: Cell<usize>,
    browser_like: bool,
    sensitive: RefCell<Vec<String>>,
}

/// Follows redirects (see the module docs).
///
/// ```
/// use twistor::web::client::{RedirectAgent, Agent};
/// fn build(agent: Agent) -> RedirectAgent<Agent> {
///     RedirectAgent::new(agent).limit(5).sensitive_header("X-Api-Key")
/// }
/// ```
pub struct RedirectAgent<A> {
    inner: Rc<Inner<A>>,
}

/// [`RedirectAgent`] that changes 301/302 to GET for every method, as browsers do.
pub struct BrowserLikeRedirectAgent<A>(RedirectAgent<A>);

impl<A: HttpAgent + 'static> RedirectAgent<A> {
    /// Wraps `agent`, limit 20.
    pub fn new(agent: A) -> Self {
        Self::build(agent, false)
    }

    fn build(agent: A, browser_like: bool) -> Self {
        RedirectAgent {
            inner: Rc::new(Inner {
                agent,
                limit: Cell::new(20),
                browser_like,
                sensitive: RefCell::new(Vec::new()),
            }),
        }
    }

    /// At most `limit` redirects are followed.
    pub fn limit(self, limit: usize) -> Self {
        self.inner.limit.set(limit);
        self
    }

    /// Another header to drop when a redirect leaves the origin.
    pub fn sensitive_header(self, name: &str) -> Self {
        self.inner
            .sensitive
            .borrow_mut()
            .push(name.to_ascii_lowercase());
        self
    }
}

impl<A: HttpAgent + 'static> BrowserLikeRedirectAgent<A> {
    /// Wraps `agent`, limit 20.
    pub fn new(agent: A) -> Self {
        BrowserLikeRedirectAgent(RedirectAgent::build(agent, true))
    }

    /// At most `limit` redirects are followed.
    pub fn limit(self, limit: usize) -> Self {
        BrowserLikeRedirectAgent(self.0.limit(limit))
    }
}

/// Fails the request with `f`, keeping the redirect response that could not be followed.
fn fail(response: Response, f: impl std::error::Error + 'static) -> Deferred<Response> {
    let mut e = ResponseFailed::new(Failure::new(f));
    e.response = Some(Box::new(response));
    Deferred::fail(e)
}

fn hop<A: HttpAgent + 'static>(
    inner: Rc<Inner<A>>,
    method: String,
    uri: Uri,
    headers: Headers,
    explicit_host: bool,
    body: Option<Rc<dyn BodyProducer>>,
    count: usize,
) -> Deferred<Response> {
    let sent_headers = headers.clone();
    let d = inner
        .agent
        .request(&method, &uri.to_string(), Some(headers), body.clone());
    d.add_callback_deferred(move |response| {
        let code = response.code;
        if !matches!(code, 301 | 302 | 303 | 307 | 308) {
            return Deferred::succeed(response);
        }
        let Some(location) = response.headers.get_str("location").map(str::to_string) else {
            return fail(response, RedirectWithNoLocation { code });
        };
        let limit = inner.limit.get();
        if count >= limit {
            return fail(response, InfiniteRedirection { limit, location });
        }
        let safe = method == "GET" || method == "HEAD";
        let (next_method, next_body) = match code {
            303 => (
                if method == "HEAD" { "HEAD" } else { "GET" }.to_string(),
                None,
            ),
            301 | 302 if safe => (method.clone(), None),
            301 | 302 if inner.browser_like => ("GET".to_string(), None),
            307 | 308 if safe => (method.clone(), None),
            307 | 308 => match body.as_ref().map(|b| b.replay()) {
                None => (method.clone(), None),
                Some(Some(b)) => (method.clone(), Some(b)),
                Some(None) => return fail(response, PageRedirect { code, location }),
            },
            _ => return fail(response, PageRedirect { code, location }),
        };
        let next = match uri.join(&location) {
            Ok(u) => u,
            Err(e) => return fail(response, e),
        };
        let mut headers = sent_headers;
        if !next.same_origin(&uri) {
            for name in SENSITIVE {
                headers.remove(name);
            }
            for name in inner.sensitive.borrow().iter() {
                headers.remove(name);
            }
        }
        if !explicit_host {
            headers.remove("host");
        }
        if next_body.is_none() && next_method != method {
            headers.remove("content-type");
        }
        // The redirect's own body is not wanted: drain it (up to 64 KiB, else the connection
        // is aborted) before the next hop, so that hop can reuse the connection.
        read_body_limited(&response, 64 * 1024)
            .add_both(|_| Ok(()))
            .add_callback_deferred(move |()| {
                hop(
                    inner,
                    next_method,
                    next,
                    headers,
                    explicit_host,
                    next_body,
                    count + 1,
                )
                .add_callback(move |mut last| {
                    attach_previous(&mut last, response);
                    last
                })
            })
    })
}

fn attach_previous(last: &mut Response, previous: Response) {
    // Built back to front: the oldest redirect goes at the end of the chain.
    match last.previous.as_deref_mut() {
        None => last.previous = Some(Box::new(previous)),
        Some(p) => attach_previous(p, previous),
    }
}

impl<A: HttpAgent + 'static> HttpAgent for RedirectAgent<A> {
    fn request(
        &self,
        method: &str,
        uri: &str,
        headers: Option<Headers>,
        body: Option<Rc<dyn BodyProducer>>,
    ) -> Deferred<Response> {
        let parsed = match Uri::parse(uri) {
            Ok(u) => u,
            Err(e) => return Deferred::fail(e),
        };
        let headers = headers.unwrap_or_default();
        let explicit_host = headers.contains("host");
        hop(
            self.inner.clone(),
            method.to_string(),
            parsed,
            headers,
            explicit_host,
            body,
            0,
        )
    }
}

impl<A: HttpAgent + 'static> HttpAgent for BrowserLikeRedirectAgent<A> {
    fn request(
        &self,
        method: &str,
        uri: &str,
        headers: Option<Headers>,
        body: Option<Rc<dyn BodyProducer>>,
    ) -> Deferred<Response> {
        self.0.request(method, uri, headers, body)
    }
}

//! Sessions (Twisted's `server.Session`, `Site.makeSession` and `Request.getSession`).
//!
//! [`Request::get_session`] finds the session named by the request's session cookie in the
//! site's [`SessionStore`], or makes one and sets the cookie. The cookie is
//! `TWISTED_SESSION` (`TWISTED_SECURE_SESSION` over TLS, so a session made over HTTPS is
//! never sent in the clear), its value the session's uid: 32 bytes from the TLS library's
//! cryptographic random source, as 64 hex digits.
//!
//! A session expires [`SessionStore::timeout`] seconds (900 by default, as in Twisted) after
//! it was last touched; every `get_session` that finds it touches it. Expiry runs on the
//! site's reactor (a `Clock` in tests): one timer per session, moved by `touch`.
//!
//! Departures from Twisted, each closing a hole: the cookie is `HttpOnly` and
//! `SameSite=Lax` (Twisted sets neither, so scripts could read it); a cookie naming no live
//! session gets a new session with a new uid (a client cannot choose its session id); the
//! store is bounded ([`SessionStore::max_sessions`], 10,000 by default): making a session in a
//! full store expires the one touched least recently, so a client making sessions in a loop
//! cannot grow memory without bound.
//!
//! Values are kept on a session by type (Twisted adapts sessions to interfaces with
//! `Componentized`): [`Session::set`] and [`Session::get`].

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::{Rc, Weak};

use crate::time::{DelayedCall, ReactorTime};
use crate::web::Request;
use crate::web::request::Cookie;

/// Seconds a session lives after its last touch, unless the store says otherwise.
pub const DEFAULT_SESSION_TIMEOUT: f64 = 900.0;

/// How many sessions a store holds, unless it says otherwise.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;

/// The session cookie's name for a plain or a TLS request.
///
/// ```
/// use twistor::web::session::cookie_name;
/// assert_eq!(cookie_name(false), "TWISTED_SESSION");
/// assert_eq!(cookie_name(true), "TWISTED_SECURE_SESSION");
/// ```
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "TWISTED_SECURE_SESSION"
    } else {
        "TWISTED_SESSION"
    }
}

/// 64 hex digits of cryptographic randomness.
fn new_uid() -> String {
    let mut bytes = [0u8; 32];
    let provider = rustls::crypto::ring::default_provider();
    if provider.secure_random.fill(&mut bytes).is_err() {
        // The system's random source failed: a guessable id would be worse than none.
        panic!("no system randomness for a session id");
    }
    let mut uid = String::with_capacity(64);
    for b in bytes {
        uid.push_str(&format!("{b:02x}"));
    }
    uid
}

struct SessionInner {
    uid: String,
    store: Weak<StoreInner>,
    timer: RefCell<Option<DelayedCall>>,
    last_touched: Cell<f64>,
    expired: Cell<bool>,
    on_expire: RefCell<Vec<Box<dyn FnOnce()>>>,
    values: RefCell<HashMap<TypeId, Rc<dyn Any>>>,
}

/// One session (see the module docs). Clones share it.
///
/// ```
/// use std::rc::Rc;
/// use twistor::testing::MemoryReactor;
/// use twistor::web::session::SessionStore;
///
/// let reactor = Rc::new(MemoryReactor::new());
/// let store = SessionStore::new(reactor.clone());
/// let s = store.make_session();
/// assert_eq!(s.uid().len(), 64);
/// s.set(3u32);
/// assert_eq!(store.get_session(s.uid()).and_then(|s| s.get::<u32>()).as_deref(), Some(&3));
/// reactor.clock().advance(900.0);
/// assert!(s.is_expired());
/// assert!(store.get_session(s.uid()).is_none());
/// ```
#[derive(Clone)]
pub struct Session(Rc<SessionInner>);

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a prefix: the uid is a credential and logs are read by others.
        write!(f, "<Session {}...>", &self.0.uid[..8])
    }
}

impl Session {
    /// The session's id (the cookie's value).
    pub fn uid(&self) -> &str {
        &self.0.uid
    }

    /// When it was last touched, in the store's reactor seconds.
    #[doc(alias = "lastModified")]
    pub fn last_touched(&self) -> f64 {
        self.0.last_touched.get()
    }

    /// Whether it expired.
    pub fn is_expired(&self) -> bool {
        self.0.expired.get()
    }

    /// Pushes the expiry back to a whole timeout from now.
    pub fn touch(&self) {
        if self.is_expired() {
            return;
        }
        let Some(store) = self.0.store.upgrade() else {
            return;
        };
        self.0.last_touched.set(store.time.seconds());
        let timeout = store.timeout.get();
        let moved = self
            .0
            .timer
            .borrow()
            .as_ref()
            .is_some_and(|t| t.reset(timeout).is_ok());
        if !moved {
            let me = Rc::downgrade(&self.0);
            let timer = store.time.call_later_boxed(
                timeout,
                Box::new(move || {
                    if let Some(s) = me.upgrade() {
                        Session(s).expire();
                    }
                }),
            );
            *self.0.timer.borrow_mut() = Some(timer);
        }
    }

    /// Ends the session now: it leaves its store and its expiry callbacks run. A second
    /// call does nothing.
    pub fn expire(&self) {
        if self.0.expired.replace(true) {
            return;
        }
        if let Some(t) = self.0.timer.borrow_mut().take() {
            let _ = t.cancel();
        }
        if let Some(store) = self.0.store.upgrade() {
            store.sessions.borrow_mut().remove(&self.0.uid);
        }
        let callbacks = std::mem::take(&mut *self.0.on_expire.borrow_mut());
        for f in callbacks {
            f();
        }
        self.0.values.borrow_mut().clear();
    }

    /// Runs `f` when the session expires (at once if it already has).
    #[doc(alias = "notifyOnExpire")]
    pub fn notify_on_expire(&self, f: impl FnOnce() + 'static) {
        if self.is_expired() {
            f();
        } else {
            self.0.on_expire.borrow_mut().push(Box::new(f));
        }
    }

    /// Keeps `value` on the session, replacing the value of the same type.
    pub fn set<T: 'static>(&self, value: T) {
        self.0
            .values
            .borrow_mut()
            .insert(TypeId::of::<T>(), Rc::new(value));
    }

    /// The value of type `T`, if one was set.
    pub fn get<T: 'static>(&self) -> Option<Rc<T>> {
        let v = self.0.values.borrow().get(&TypeId::of::<T>())?.clone();
        v.downcast::<T>().ok()
    }
}

struct StoreInner {
    time: Rc<dyn ReactorTime>,
    sessions: RefCell<HashMap<String, Session>>,
    timeout: Cell<f64>,
    max: Cell<usize>,
}

/// A site's sessions (Twisted's `Site.sessions` with `makeSession` and `getSession`).
/// Cheap to clone.
///
/// ```
/// use std::rc::Rc;
/// use twistor::testing::MemoryReactor;
/// use twistor::web::session::SessionStore;
///
/// let store = SessionStore::new(Rc::new(MemoryReactor::new()));
/// store.set_max_sessions(1);
/// let a = store.make_session();
/// let b = store.make_session(); // the store is full: `a` is expired for it
/// assert!(a.is_expired() && !b.is_expired());
/// assert_eq!(store.len(), 1);
/// ```
#[derive(Clone)]
pub struct SessionStore(Rc<StoreInner>);

impl SessionStore {
    /// An empty store whose sessions expire on `time`'s timers.
    pub fn new(time: Rc<dyn ReactorTime>) -> SessionStore {
        SessionStore(Rc::new(StoreInner {
            time,
            sessions: RefCell::new(HashMap::new()),
            timeout: Cell::new(DEFAULT_SESSION_TIMEOUT),
            max: Cell::new(DEFAULT_MAX_SESSIONS),
        }))
    }

    /// Seconds a session lives after its last touch.
    #[doc(alias = "sessionTimeout")]
    pub fn timeout(&self) -> f64 {
        self.0.timeout.get()
    }

    /// Sets the timeout for sessions touched or made from now on.
    pub fn set_timeout(&self, seconds: f64) {
        self.0.timeout.set(seconds.max(0.0));
    }

    /// How many sessions the store holds at most.
    pub fn max_sessions(&self) -> usize {
        self.0.max.get()
    }

    /// Sets the bound (at least 1).
    pub fn set_max_sessions(&self, n: usize) {
        self.0.max.set(n.max(1));
    }

    /// How many live sessions there are.
    pub fn len(&self) -> usize {
        self.0.sessions.borrow().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A new session with a fresh uid, its expiry started (Twisted's `makeSession`). A full
    /// store first expires its least recently touched session.
    #[doc(alias = "makeSession")]
    pub fn make_session(&self) -> Session {
        while self.len() >= self.max_sessions() {
            let oldest = self
                .0
                .sessions
                .borrow()
                .values()
                .min_by(|a, b| a.last_touched().total_cmp(&b.last_touched()))
                .cloned();
            match oldest {
                Some(s) => {
                    log::info!(target: "twistor::web::session", "{} sessions: expiring {s:?}, the least recently used", self.len());
                    s.expire();
                }
                None => break,
            }
        }
        let session = Session(Rc::new(SessionInner {
            uid: new_uid(),
            store: Rc::downgrade(&self.0),
            timer: RefCell::new(None),
            last_touched: Cell::new(self.0.time.seconds()),
            expired: Cell::new(false),
            on_expire: RefCell::new(Vec::new()),
            values: RefCell::new(HashMap::new()),
        }));
        self.0
            .sessions
            .borrow_mut()
            .insert(session.uid().to_string(), session.clone());
        session.touch();
        session
    }

    /// The live session `uid`, if there is one (Twisted's `getSession`, which raises
    /// `KeyError` instead).
    pub fn get_session(&self, uid: &str) -> Option<Session> {
        self.0.sessions.borrow().get(uid).cloned()
    }
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        // The sessions' timers would otherwise outlive the site in the reactor's queue.
        for (_, s) in self.sessions.get_mut().drain() {
            if let Some(t) = s.0.timer.borrow_mut().take() {
                let _ = t.cancel();
            }
        }
    }
}

impl Request {
    /// The client's session, made (and its cookie set on the response) if the request
    /// names no live one; a found session is touched. Calls on one request give the same
    /// session. See the [module docs](crate::web::session).
    ///
    /// ```
    /// use std::rc::Rc;
    /// use twistor::testing::{MemoryReactor, StringTransport};
    /// use twistor::web::resource::{Render, Resource};
    /// use twistor::web::{Request, Site};
    ///
    /// struct Counter;
    /// impl Resource for Counter {
    ///     fn is_leaf(&self) -> bool { true }
    ///     fn render_get(&self, r: &Request) -> Option<Render> {
    ///         let s = r.get_session();
    ///         let n = s.get::<u32>().map_or(1, |n| *n + 1);
    ///         s.set(n);
    ///         Some(format!("visit {n}").into())
    ///     }
    /// }
    /// let site = Site::new(Rc::new(Counter), Rc::new(MemoryReactor::new()));
    /// let st = StringTransport::new();
    /// st.connect(site.channel());
    /// st.deliver(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    /// let first = String::from_utf8(st.value()).unwrap();
    /// assert!(first.ends_with("visit 1"));
    /// let cookie = first.split("Set-Cookie: ").nth(1).unwrap().split(';').next().unwrap();
    /// assert!(cookie.starts_with("TWISTED_SESSION="));
    /// st.clear();
    /// st.deliver(format!("GET / HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n").as_bytes());
    /// assert!(String::from_utf8(st.value()).unwrap().ends_with("visit 2"));
    /// ```
    #[doc(alias = "getSession")]
    pub fn get_session(&self) -> Session {
        if let Some(s) = self.cached_session()
            && !s.is_expired()
        {
            return s;
        }
        let secure = self.is_secure();
        let name = cookie_name(secure);
        let store = self.site().sessions();
        let found = self.get_cookie(name.as_bytes()).and_then(|uid| {
            std::str::from_utf8(&uid)
                .ok()
                .and_then(|u| store.get_session(u))
        });
        let session = match found {
            Some(s) => {
                s.touch();
                s
            }
            None => {
                let s = store.make_session();
                let mut cookie = Cookie::new(name, s.uid())
                    .path("/")
                    .http_only()
                    .same_site("Lax");
                if secure {
                    cookie = cookie.secure();
                }
                self.add_cookie(cookie);
                s
            }
        };
        self.cache_session(session.clone());
        session
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use crate::testing::{MemoryReactor, StringTransport};
    use crate::web::resource::{Render, Resource};
    use crate::web::{Request, Site};

    use super::*;

    #[test]
    fn a_session_has_a_64_hex_digit_uid_and_is_found_by_it() {
        let store = SessionStore::new(Rc::new(MemoryReactor::new()));
        let s = store.make_session();
        assert_eq!(s.uid().len(), 64);
        assert!(s.uid().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(store.make_session().uid(), s.uid());
        assert!(store.get_session(s.uid()).is_some());
        assert!(store.get_session("nonexistent").is_none());
        assert!(!format!("{s:?}").contains(&s.uid()[8..]));
    }

    #[test]
    fn expiry_is_a_whole_timeout_after_the_last_touch() {
        let reactor = Rc::new(MemoryReactor::new());
        let store = SessionStore::new(reactor.clone());
        let s = store.make_session();
        let fired = Rc::new(Cell::new(0));
        let f = fired.clone();
        s.notify_on_expire(move || f.set(f.get() + 1));
        reactor.clock().advance(899.0);
        assert!(!s.is_expired());
        s.touch();
        reactor.clock().advance(899.0);
        assert!(!s.is_expired(), "touch did not move the expiry");
        assert_eq!(s.last_touched(), 899.0);
        reactor.clock().advance(1.0);
        assert!(s.is_expired());
        assert_eq!(fired.get(), 1);
        assert!(store.get_session(s.uid()).is_none());
        assert!(store.is_empty());
        s.expire();
        assert_eq!(fired.get(), 1, "callbacks run once");
    }

    #[test]
    fn the_store_is_bounded_by_expiring_the_least_recently_touched() {
        let reactor = Rc::new(MemoryReactor::new());
        let store = SessionStore::new(reactor.clone());
        store.set_max_sessions(2);
        let a = store.make_session();
        reactor.clock().advance(1.0);
        let b = store.make_session();
        reactor.clock().advance(1.0);
        a.touch();
        let c = store.make_session();
        assert!(b.is_expired());
        assert!(!a.is_expired() && !c.is_expired());
        assert_eq!(store.len(), 2);
    }

    /// Shows the session's uid and a per-session visit count.
    struct Visits;
    impl Resource for Visits {
        fn is_leaf(&self) -> bool {
            true
        }
        fn render_get(&self, r: &Request) -> Option<Render> {
            let s = r.get_session();
            assert_eq!(r.get_session().uid(), s.uid(), "one session per request");
            let n = s.get::<u32>().map_or(1, |n| *n + 1);
            s.set(n);
            Some(format!("{} {n}", s.uid()).into())
        }
    }

    fn get(st: &StringTransport, cookie: Option<&str>) -> String {
        st.clear();
        let c = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
        st.deliver(format!("GET / HTTP/1.1\r\nHost: x\r\n{c}\r\n").as_bytes());
        String::from_utf8(st.value()).unwrap()
    }

    #[test]
    fn the_cookie_brings_the_client_back_to_its_session() {
        let site = Site::new(Rc::new(Visits), Rc::new(MemoryReactor::new()));
        let st = StringTransport::new();
        st.connect(site.channel());
        let first = get(&st, None);
        let body = first.rsplit("\r\n\r\n").next().unwrap().to_string();
        let (uid, n) = body.split_once(' ').unwrap();
        assert_eq!(n, "1");
        let set =
            format!("\r\nSet-Cookie: TWISTED_SESSION={uid}; Path=/; HttpOnly; SameSite=Lax\r\n");
        assert!(first.contains(&set), "{first}");
        let again = get(&st, Some(&format!("TWISTED_SESSION={uid}")));
        assert!(again.ends_with(&format!("{uid} 2")), "{again}");
        assert!(!again.contains("Set-Cookie"), "{again}");
        assert_eq!(site.sessions().len(), 1);
    }

    #[test]
    fn an_unknown_session_cookie_gets_a_new_uid() {
        let site = Site::new(Rc::new(Visits), Rc::new(MemoryReactor::new()));
        let st = StringTransport::new();
        st.connect(site.channel());
        let chosen = "a".repeat(64);
        let out = get(&st, Some(&format!("TWISTED_SESSION={chosen}")));
        assert!(!out.contains(&chosen), "{out}");
        assert!(out.ends_with(" 1"), "{out}");
    }

    #[test]
    fn an_expired_session_is_replaced() {
        let reactor = Rc::new(MemoryReactor::new());
        let site = Site::new(Rc::new(Visits), reactor.clone());
        site.sessions().set_timeout(10.0);
        let st = StringTransport::new();
        st.connect(site.channel());
        let first = get(&st, None);
        let uid = first
            .rsplit("\r\n\r\n")
            .next()
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string();
        reactor.clock().advance(10.0);
        let out = get(&st, Some(&format!("TWISTED_SESSION={uid}")));
        assert!(out.contains("Set-Cookie: TWISTED_SESSION="), "{out}");
        assert!(!out.contains(&uid), "{out}");
    }
}

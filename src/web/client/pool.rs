//! [`HttpConnectionPool`]: idle persistent connections kept per `(scheme, host, port)`
//! (Twisted's `HTTPConnectionPool`).
//!
//! * At most `max_persistent_per_host` idle connections per key (default 2); caching one
//!   more closes the oldest. There is no limit on connections in use.
//! * An idle connection is closed and dropped after `cached_connection_timeout` (240 s).
//! * Connections are taken oldest first; one that closed while idle is skipped.
//! * The retry rule (applied by the agent): a request that fails on a *reused* connection
//!   before any response byte arrived (`RequestNotSent`, `RequestTransmissionFailed`,
//!   `ResponseNeverReceived`, not a cancellation) is sent once more on a new connection, if
//!   its method is idempotent (`GET HEAD OPTIONS DELETE TRACE`) and it has no body or a body
//!   that can be replayed (Twisted: no body at all).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};

use crate::Deferred;
use crate::defer::gather_results;
use crate::protocol::Handle;
use crate::time::{DelayedCall, ReactorTime};

use super::protocol::{ClientState, HttpClientProtocol};

/// The pool key: scheme, host, port.
pub type PoolKey = (String, String, u16);

/// A connection as the pool and agents hold it.
#[derive(Clone)]
pub struct Connection {
    pub(crate) handle: Handle<HttpClientProtocol>,
    state: Rc<Cell<ClientState>>,
}

impl Connection {
    /// Wraps a connected protocol.
    pub(crate) fn new(handle: Handle<HttpClientProtocol>, state: Rc<Cell<ClientState>>) -> Self {
        Connection { handle, state }
    }

    /// The protocol's state.
    pub fn state(&self) -> ClientState {
        self.state.get()
    }

    /// The protocol's handle.
    pub fn handle(&self) -> &Handle<HttpClientProtocol> {
        &self.handle
    }

    fn close(&self, abort: bool) {
        self.handle.with(move |_, cx| {
            if abort {
                cx.transport().abort_connection()
            } else {
                cx.transport().lose_connection()
            }
        });
    }
}

struct Cached {
    id: u64,
    conn: Connection,
    timer: DelayedCall,
}

/// Persistent connections, shared by agents (see the module docs).
///
/// ```
/// use twistor::task::Clock;
/// use twistor::web::client::HttpConnectionPool;
/// let pool = HttpConnectionPool::new(std::rc::Rc::new(Clock::new()));
/// assert!(pool.persistent());
/// assert_eq!(pool.max_persistent_per_host(), 2);
/// assert_eq!(pool.idle_count(), 0);
/// ```
pub struct HttpConnectionPool {
    time: Rc<dyn ReactorTime>,
    persistent: bool,
    max_per_host: Cell<usize>,
    timeout: Cell<f64>,
    retry: Cell<bool>,
    cache: RefCell<HashMap<PoolKey, VecDeque<Cached>>>,
    next_id: Cell<u64>,
    me: Weak<HttpConnectionPool>,
}

impl HttpConnectionPool {
    fn build(time: Rc<dyn ReactorTime>, persistent: bool) -> Rc<HttpConnectionPool> {
        Rc::new_cyclic(|me| HttpConnectionPool {
            time,
            persistent,
            max_per_host: Cell::new(2),
            timeout: Cell::new(240.0),
            retry: Cell::new(true),
            cache: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            me: me.clone(),
        })
    }

    /// A persistent pool (keep-alive requests, idle connections cached).
    pub fn new(time: Rc<dyn ReactorTime>) -> Rc<HttpConnectionPool> {
        Self::build(time, true)
    }

    /// A pool that caches nothing: requests carry `Connection: close` (the pool an `Agent`
    /// makes when given none, as in Twisted).
    pub fn non_persistent(time: Rc<dyn ReactorTime>) -> Rc<HttpConnectionPool> {
        Self::build(time, false)
    }

    /// Whether requests are persistent.
    pub fn persistent(&self) -> bool {
        self.persistent
    }

    /// Idle connections kept per key.
    pub fn max_persistent_per_host(&self) -> usize {
        self.max_per_host.get()
    }

    /// Sets the idle connections kept per key (Twisted's `maxPersistentPerHost`).
    pub fn set_max_persistent_per_host(&self, n: usize) {
        self.max_per_host.set(n);
    }

    /// Sets how long an idle connection is kept, in seconds (`cachedConnectionTimeout`).
    pub fn set_cached_connection_timeout(&self, seconds: f64) {
        self.timeout.set(seconds);
    }

    /// Whether failed idempotent requests on reused connections are retried once.
    pub fn retry_automatically(&self) -> bool {
        self.retry.get()
    }

    /// Turns the retry rule on or off (`retryAutomatically`).
    pub fn set_retry_automatically(&self, on: bool) {
        self.retry.set(on);
    }

    /// Idle connections cached, all keys together.
    pub fn idle_count(&self) -> usize {
        self.cache.borrow().values().map(VecDeque::len).sum()
    }

    /// Takes an idle connection for `key`, oldest first, skipping closed ones.
    pub fn take_idle(&self, key: &PoolKey) -> Option<Connection> {
        let mut cache = self.cache.borrow_mut();
        let queue = cache.get_mut(key)?;
        let mut found = None;
        while let Some(c) = queue.pop_front() {
            let _ = c.timer.cancel();
            if c.conn.state() == ClientState::Quiescent && c.conn.handle.alive() {
                found = Some(c.conn);
                break;
            }
        }
        if queue.is_empty() {
            cache.remove(key);
        }
        found
    }

    /// Caches an idle connection (closing it if the pool is not persistent, and the oldest
    /// one of the key beyond the limit).
    pub fn put(&self, key: PoolKey, conn: Connection) {
        if !self.persistent || self.max_per_host.get() == 0 {
            conn.close(false);
            return;
        }
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        let me = self.me.clone();
        let k = key.clone();
        let timer = self.time.call_later_boxed(
            self.timeout.get(),
            Box::new(move || {
                if let Some(pool) = me.upgrade() {
                    pool.expire(&k, id);
                }
            }),
        );
        let evicted = {
            let mut cache = self.cache.borrow_mut();
            let queue = cache.entry(key).or_default();
            queue.push_back(Cached { id, conn, timer });
            if queue.len() > self.max_per_host.get() {
                queue.pop_front()
            } else {
                None
            }
        };
        if let Some(old) = evicted {
            let _ = old.timer.cancel();
            old.conn.close(false);
        }
    }

    fn expire(&self, key: &PoolKey, id: u64) {
        let gone = {
            let mut cache = self.cache.borrow_mut();
            let Some(queue) = cache.get_mut(key) else {
                return;
            };
            let pos = queue.iter().position(|c| c.id == id);
            let gone = pos.and_then(|p| queue.remove(p));
            if queue.is_empty() {
                cache.remove(key);
            }
            gone
        };
        if let Some(c) = gone {
            c.conn.close(false);
        }
    }

    /// Aborts every idle connection (Twisted's `closeCachedConnections`); the Deferred fires
    /// once they are all gone.
    ///
    /// ```
    /// use twistor::task::Clock;
    /// use twistor::web::client::HttpConnectionPool;
    /// let pool = HttpConnectionPool::new(std::rc::Rc::new(Clock::new()));
    /// let d = pool.close_cached_connections();
    /// twistor::testing::success_result_of(&d); // nothing was cached
    /// ```
    pub fn close_cached_connections(&self) -> Deferred<()> {
        let all: Vec<Cached> = self
            .cache
            .borrow_mut()
            .drain()
            .flat_map(|(_, q)| q)
            .collect();
        let mut gone = Vec::with_capacity(all.len());
        for c in all {
            let _ = c.timer.cancel();
            // None: the protocol is gone already, or busy in a callback (then its close is
            // queued and not waited for).
            if let Some(d) = c.conn.handle.with(|p, _| p.when_lost()) {
                gone.push(d);
            }
            c.conn.close(true);
        }
        gather_results(gone).add_callback(|_| ())
    }
}

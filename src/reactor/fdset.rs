//! Watching raw file descriptors: Twisted's `IReactorFDSet` (`add_reader`, `add_writer`).
//!
//! # Ownership: no stale descriptor numbers
//!
//! `add_reader`/`add_writer` take the descriptor itself (anything `AsFd + 'static`: an owned
//! socket, an `Rc` of one, an `OwnedFd`), keep it for as long as it is watched, and return an
//! [`FdWatch`] guard that stops watching when dropped. While a registration exists its
//! descriptor is open, so its number cannot be reused by another socket; and the guard names
//! the registration (its token and a generation), not the number. A guard that outlives its
//! registration therefore does nothing: it can never remove or silence a later socket that
//! happens to get the same number. `remove_reader`/`remove_writer` take a descriptor too
//! (`AsFd`), which proves the number is live at the time of the call.
//!
//! # Readiness: level-triggered on top of an edge-triggered poller
//!
//! The poller reports a descriptor when it *becomes* ready; Twisted's handlers expect to be
//! called as long as it *is* ready (a handler reads once, not necessarily until `EAGAIN`). So
//! each descriptor is registered once, for both directions, and after a handler runs the
//! reactor asks the kernel (`poll(2)` with a zero timeout) whether that direction is still
//! ready. If it is, the descriptor goes on the *again* list and its handler runs once more on
//! the next turn (whose poll then does not block). One handler call per descriptor per turn
//! keeps a busy peer from starving the others.
//!
//! # Re-entrancy
//!
//! A handler is taken out of its slot while it runs, with no borrow held, so it may add or
//! remove any reader or writer, its own included; it is put back only if its registration is
//! still the same one (a generation number tells).

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Weak;
use std::{fmt, io};

use mio::{Interest, Token};

use super::registry::Entry;
use super::{Inner, Reactor, log_panic};

pub(crate) type Handler = Box<dyn FnMut(&Reactor)>;

/// One direction of a watched descriptor.
pub(crate) struct Side {
    /// `None` while the handler runs (taken out so it may touch the registry).
    handler: Option<Handler>,
    /// Keeps the descriptor open while it is watched (module docs, "Ownership").
    source: Box<dyn AsFd>,
    /// Unique per registration of a direction, so a running handler or a guard can tell the
    /// direction was removed or replaced meanwhile.
    generation: u64,
}

/// A raw descriptor in the registry.
pub(crate) struct Watched {
    /// The number, for `poll(2)` and the by-number index; live as long as a side holds its
    /// source.
    fd: RawFd,
    read: Option<Side>,
    write: Option<Side>,
}

impl Watched {
    fn side(&self, dir: Dir) -> Option<&Side> {
        match dir {
            Dir::Read => self.read.as_ref(),
            Dir::Write => self.write.as_ref(),
        }
    }

    fn side_mut(&mut self, dir: Dir) -> &mut Option<Side> {
        match dir {
            Dir::Read => &mut self.read,
            Dir::Write => &mut self.write,
        }
    }
}

/// The direction of readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Read,
    Write,
}

/// Watches a descriptor until dropped: returned by [`Reactor::add_reader`] and
/// [`Reactor::add_writer`].
///
/// Dropping it stops watching (and releases the descriptor the reactor kept). It refers to
/// its own registration only: if that registration is gone already (removed, replaced by a
/// later `add_reader` of the same descriptor, or the reactor dropped), dropping it does
/// nothing, even if another socket now has the same number.
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use twistor::reactor::Reactor;
///
/// let reactor = Reactor::new().unwrap();
/// let (a, _b) = UnixStream::pair().unwrap();
/// let watch = reactor.add_reader(a, |_| ()).unwrap();
/// assert_eq!(reactor.get_readers().len(), 1);
/// drop(watch);
/// assert!(reactor.get_readers().is_empty());
/// ```
#[must_use = "dropping the FdWatch stops watching at once; call `detach` to keep watching"]
pub struct FdWatch {
    reactor: Weak<Inner>,
    token: Token,
    dir: Dir,
    generation: u64,
}

impl fmt::Debug for FdWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FdWatch")
            .field("dir", &self.dir)
            .field("active", &self.is_active())
            .finish()
    }
}

impl FdWatch {
    /// Whether this registration is still in place.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use twistor::reactor::Reactor;
    ///
    /// let reactor = Reactor::new().unwrap();
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// let watch = reactor.add_writer(a, |_| ()).unwrap();
    /// assert!(watch.is_active());
    /// reactor.remove_all();
    /// assert!(!watch.is_active());
    /// ```
    pub fn is_active(&self) -> bool {
        let Some(inner) = self.reactor.upgrade() else {
            return false;
        };
        let mut reg = inner.registry.borrow_mut();
        reg.fd_mut(self.token)
            .and_then(|w| w.side(self.dir))
            .is_some_and(|s| s.generation == self.generation)
    }

    /// Stops watching now; returns whether this registration was still in place.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use twistor::reactor::Reactor;
    ///
    /// let reactor = Reactor::new().unwrap();
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// assert!(reactor.add_reader(a, |_| ()).unwrap().remove());
    /// ```
    pub fn remove(mut self) -> bool {
        self.remove_now()
    }

    /// Lets the registration live on without the guard: it lasts until `remove_reader` /
    /// `remove_writer` with the descriptor, `remove_all`, the reactor's shutdown, or the
    /// reactor being dropped.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use twistor::reactor::Reactor;
    ///
    /// let reactor = Reactor::new().unwrap();
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// reactor.add_reader(a, |_| ()).unwrap().detach();
    /// assert_eq!(reactor.get_readers().len(), 1);
    /// ```
    pub fn detach(mut self) {
        self.reactor = Weak::new();
    }

    fn remove_now(&mut self) -> bool {
        let inner = std::mem::take(&mut self.reactor);
        match Reactor::from_weak(&inner) {
            Some(r) => r.remove_fd(self.token, self.dir, Some(self.generation)),
            None => false,
        }
    }
}

impl Drop for FdWatch {
    fn drop(&mut self) {
        self.remove_now();
    }
}

impl Reactor {
    /// Calls `handler` whenever `source` is readable (Twisted's `addReader`), until the
    /// returned guard is dropped (or [`remove_reader`](Self::remove_reader)). The reactor
    /// keeps `source` (and so the descriptor open) while it is watched; pass an `Rc` of it to
    /// use it in the handler too. Replaces an earlier reader of the same descriptor.
    ///
    /// Errors if the poller refuses the descriptor (for instance, one a transport already
    /// watches).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use std::rc::Rc;
    /// use twistor::reactor::Reactor;
    ///
    /// let reactor = Reactor::new().unwrap();
    /// let (mut a, b) = UnixStream::pair().unwrap();
    /// b.set_nonblocking(true).unwrap();
    /// let b = Rc::new(b);
    /// let sock = b.clone();
    /// let watch = reactor.add_reader(b, move |r| {
    ///     let mut buf = [0; 16];
    ///     let n = (&*sock).read(&mut buf).unwrap_or(0);
    ///     println!("read {n} bytes");
    ///     r.remove_reader(&*sock);
    ///     let _ = r.stop();
    /// }).unwrap();
    /// a.write_all(b"hi").unwrap();
    /// reactor.run_without_signal_handlers().unwrap();
    /// assert!(!watch.is_active());
    /// ```
    #[doc(alias = "addReader")]
    pub fn add_reader(
        &self,
        source: impl AsFd + 'static,
        handler: impl FnMut(&Reactor) + 'static,
    ) -> io::Result<FdWatch> {
        self.add_fd(Box::new(source), Dir::Read, Box::new(handler))
    }

    /// Calls `handler` whenever `source` is writable (Twisted's `addWriter`), until the
    /// returned guard is dropped (or [`remove_writer`](Self::remove_writer)); as
    /// [`add_reader`](Self::add_reader) otherwise.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::rc::Rc;
    /// use twistor::reactor::Reactor;
    ///
    /// let reactor = Reactor::new().unwrap();
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// let a = Rc::new(a);
    /// let sock = a.clone();
    /// reactor
    ///     .add_writer(a, move |r| { r.remove_writer(&*sock); let _ = r.stop(); })
    ///     .unwrap()
    ///     .detach();
    /// reactor.run_without_signal_handlers().unwrap();
    /// ```
    #[doc(alias = "addWriter")]
    pub fn add_writer(
        &self,
        source: impl AsFd + 'static,
        handler: impl FnMut(&Reactor) + 'static,
    ) -> io::Result<FdWatch> {
        self.add_fd(Box::new(source), Dir::Write, Box::new(handler))
    }

    fn add_fd(&self, source: Box<dyn AsFd>, dir: Dir, handler: Handler) -> io::Result<FdWatch> {
        let fd = source.as_fd().as_raw_fd();
        let generation = self.inner.fd_generation.get() + 1;
        self.inner.fd_generation.set(generation);
        let side = Side {
            handler: Some(handler),
            source,
            generation,
        };
        let (token, old) = {
            let mut reg = self.inner.registry.borrow_mut();
            match reg.by_fd.get(&fd).copied() {
                Some(token) => {
                    let old = reg
                        .fd_mut(token)
                        .and_then(|w| w.side_mut(dir).replace(side));
                    (token, old)
                }
                None => {
                    let token = reg.insert(Entry::Fd(Watched {
                        fd,
                        read: None,
                        write: None,
                    }));
                    let registered = self.inner.poller.register(
                        side.source.as_fd(),
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    if let Err(e) = registered {
                        reg.remove(token);
                        drop(reg);
                        // Dropped with no borrow held: the source and handler are the user's.
                        drop(side);
                        return Err(e);
                    }
                    if let Some(w) = reg.fd_mut(token) {
                        *w.side_mut(dir) = Some(side);
                    }
                    reg.by_fd.insert(fd, token);
                    (token, None)
                }
            }
        };
        drop(old);
        // A descriptor that is ready already may not produce an edge: check once.
        if still_ready(fd, dir) {
            self.inner.again.borrow_mut().push((token, dir));
        }
        Ok(FdWatch {
            reactor: self.weak(),
            token,
            dir,
            generation,
        })
    }

    /// Removes one direction of the registration `token` (only the registration numbered
    /// `generation`, if given); the descriptor leaves the poller when neither direction
    /// remains. Whatever is removed is dropped with no borrow held.
    pub(crate) fn remove_fd(&self, token: Token, dir: Dir, generation: Option<u64>) -> bool {
        let (side, entry) = {
            let mut reg = self.inner.registry.borrow_mut();
            let Some(w) = reg.fd_mut(token) else {
                return false;
            };
            let matches = w
                .side(dir)
                .is_some_and(|s| generation.is_none_or(|g| s.generation == g));
            if !matches {
                return false;
            }
            let side = w.side_mut(dir).take();
            let entry = if w.read.is_none() && w.write.is_none() {
                let fd = w.fd;
                reg.by_fd.remove(&fd);
                reg.remove(token)
            } else {
                None
            };
            (side, entry)
        };
        if entry.is_some()
            && let Some(s) = &side
        {
            // Through the source that is still held, so the number is still this descriptor.
            // Failing means it was never (or is no longer) in the poller: nothing to undo.
            let _ = self.inner.poller.deregister(s.source.as_fd());
        }
        drop(side);
        drop(entry);
        true
    }

    fn token_of(&self, fd: &impl AsFd) -> Option<Token> {
        let raw = fd.as_fd().as_raw_fd();
        self.inner.registry.borrow().by_fd.get(&raw).copied()
    }

    /// Stops watching `fd` for reading (Twisted's `removeReader`). Returns false if it was not
    /// watched. Taking the descriptor (not its number) means it is open, so it is the one
    /// that was registered.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::rc::Rc;
    /// use twistor::reactor::Reactor;
    ///
    /// let reactor = Reactor::new().unwrap();
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// let a = Rc::new(a);
    /// reactor.add_reader(a.clone(), |_| ()).unwrap().detach();
    /// assert!(reactor.remove_reader(&*a));
    /// assert!(!reactor.remove_reader(&*a));
    /// ```
    #[doc(alias = "removeReader")]
    pub fn remove_reader(&self, fd: impl AsFd) -> bool {
        self.token_of(&fd)
            .is_some_and(|t| self.remove_fd(t, Dir::Read, None))
    }

    /// Stops watching `fd` for writing (Twisted's `removeWriter`). Returns false if it was not
    /// watched.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::rc::Rc;
    /// use twistor::reactor::Reactor;
    ///
    /// let reactor = Reactor::new().unwrap();
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// let a = Rc::new(a);
    /// reactor.add_writer(a.clone(), |_| ()).unwrap().detach();
    /// assert!(reactor.remove_writer(&*a));
    /// ```
    #[doc(alias = "removeWriter")]
    pub fn remove_writer(&self, fd: impl AsFd) -> bool {
        self.token_of(&fd)
            .is_some_and(|t| self.remove_fd(t, Dir::Write, None))
    }

    fn watched(&self, dir: Dir) -> Vec<RawFd> {
        self.inner
            .registry
            .borrow()
            .entries()
            .filter_map(|e| match e {
                Entry::Fd(w) if w.side(dir).is_some() => Some(w.fd),
                _ => None,
            })
            .collect()
    }

    /// The numbers of the descriptors watched for reading (Twisted's `getReaders`).
    #[doc(alias = "getReaders")]
    pub fn get_readers(&self) -> Vec<RawFd> {
        self.watched(Dir::Read)
    }

    /// The numbers of the descriptors watched for writing (Twisted's `getWriters`).
    #[doc(alias = "getWriters")]
    pub fn get_writers(&self) -> Vec<RawFd> {
        self.watched(Dir::Write)
    }

    /// Stops watching every descriptor (Twisted's `removeAll`) and returns their numbers as
    /// they were (the reactor lets go of the descriptors, which closes those it alone held).
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use twistor::reactor::Reactor;
    ///
    /// let reactor = Reactor::new().unwrap();
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// let watch = reactor.add_reader(a, |_| ()).unwrap();
    /// assert_eq!(reactor.remove_all().len(), 1);
    /// assert!(!watch.remove());
    /// ```
    #[doc(alias = "removeAll")]
    pub fn remove_all(&self) -> Vec<RawFd> {
        let all: Vec<(Token, RawFd)> = {
            let reg = self.inner.registry.borrow();
            reg.by_fd.iter().map(|(&fd, &t)| (t, fd)).collect()
        };
        for &(token, _) in &all {
            self.remove_fd(token, Dir::Read, None);
            self.remove_fd(token, Dir::Write, None);
        }
        all.into_iter().map(|(_, fd)| fd).collect()
    }

    /// Runs the `dir` handler of the descriptor `token` once (see the module docs).
    pub(crate) fn dispatch_fd(&self, token: Token, dir: Dir) {
        let taken = {
            let mut reg = self.inner.registry.borrow_mut();
            reg.fd_mut(token).and_then(|w| {
                let fd = w.fd;
                w.side_mut(dir)
                    .as_mut()
                    .and_then(|s| s.handler.take().map(|h| (h, s.generation, fd)))
            })
        };
        let Some((mut handler, generation, fd)) = taken else {
            return;
        };
        let panicked = catch_unwind(AssertUnwindSafe(|| handler(self))).err();
        if let Some(p) = &panicked {
            log_panic(
                "while handling a ready descriptor; it is no longer watched",
                &**p,
            );
        }
        let put_back = {
            let mut reg = self.inner.registry.borrow_mut();
            match reg
                .fd_mut(token)
                .and_then(|w| w.side_mut(dir).as_mut())
                .filter(|s| s.generation == generation)
            {
                Some(s) if panicked.is_none() => {
                    s.handler = Some(handler);
                    true
                }
                // Removed or replaced while it ran, or it panicked: drop it (below, with no
                // borrow held).
                _ => {
                    drop(reg);
                    if panicked.is_some() {
                        self.remove_fd(token, dir, Some(generation));
                    }
                    drop(handler);
                    false
                }
            }
        };
        // The side is still registered, so `fd` is still its descriptor.
        if put_back && still_ready(fd, dir) {
            self.inner.again.borrow_mut().push((token, dir));
        }
    }
}

/// Whether `fd` is ready in `dir` right now (`poll(2)`, zero timeout).
fn still_ready(fd: RawFd, dir: Dir) -> bool {
    let events = match dir {
        Dir::Read => libc::POLLIN,
        Dir::Write => libc::POLLOUT,
    };
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && (p.revents & (events | libc::POLLHUP | libc::POLLERR)) != 0
}

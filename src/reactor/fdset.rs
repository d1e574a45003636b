//! Watching raw file descriptors: Twisted's `IReactorFDSet` (`add_reader`, `add_writer`).
//!
//! # Readiness: level-triggered on top of an edge-triggered poller
//!
//! mio reports a descriptor when it *becomes* ready; Twisted's handlers expect to be called
//! as long as it *is* ready (a handler reads once, not necessarily until `EAGAIN`). So each
//! descriptor is registered once, for both directions, and after a handler runs the reactor
//! asks the kernel (`poll(2)` with a zero timeout) whether that direction is still ready. If it
//! is, the descriptor goes on the *again* list and its handler runs once more on the next turn
//! (whose poll then does not block). One handler call per descriptor per turn keeps a busy
//! peer from starving the others.
//!
//! # Re-entrancy
//!
//! A handler is taken out of its slot while it runs, with no borrow held, so it may add or
//! remove any reader or writer, its own included; it is put back only if its registration is
//! still the same one (a generation number tells).

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::Reactor;

pub(crate) type Handler = Box<dyn FnMut(&Reactor)>;

pub(crate) struct Watched {
    pub(crate) fd: RawFd,
    pub(crate) reader: Option<Handler>,
    pub(crate) writer: Option<Handler>,
    pub(crate) wants_read: bool,
    pub(crate) wants_write: bool,
    /// Bumped on every (re)registration of a direction, so a running handler can tell it was
    /// removed or replaced meanwhile.
    pub(crate) read_gen: u64,
    pub(crate) write_gen: u64,
}

impl Watched {
    pub(crate) fn generation(&self, dir: Dir) -> u64 {
        match dir {
            Dir::Read => self.read_gen,
            Dir::Write => self.write_gen,
        }
    }

    pub(crate) fn handler_slot(&mut self, dir: Dir) -> &mut Option<Handler> {
        match dir {
            Dir::Read => &mut self.reader,
            Dir::Write => &mut self.writer,
        }
    }

    pub(crate) fn wants(&self, dir: Dir) -> bool {
        match dir {
            Dir::Read => self.wants_read,
            Dir::Write => self.wants_write,
        }
    }
}

/// Descriptors being watched, by mio token.
#[derive(Default)]
pub(crate) struct FdSet {
    pub(crate) slots: HashMap<usize, Watched>,
    pub(crate) by_fd: HashMap<RawFd, usize>,
    next_token: usize,
    next_generation: u64,
}

/// The direction of readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Read,
    Write,
}

impl FdSet {
    pub(crate) fn add(
        &mut self,
        registry: &Registry,
        fd: RawFd,
        dir: Dir,
        handler: Handler,
    ) -> io::Result<()> {
        self.next_generation += 1;
        let generation = self.next_generation;
        let token = match self.by_fd.get(&fd) {
            Some(&t) => t,
            None => {
                // Tokens 0 and 1 are the reactor's own (waker, signals).
                self.next_token += 1;
                let t = self.next_token + 1;
                registry.register(
                    &mut SourceFd(&fd),
                    Token(t),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                self.by_fd.insert(fd, t);
                self.slots.insert(
                    t,
                    Watched {
                        fd,
                        reader: None,
                        writer: None,
                        wants_read: false,
                        wants_write: false,
                        read_gen: 0,
                        write_gen: 0,
                    },
                );
                t
            }
        };
        if let Some(w) = self.slots.get_mut(&token) {
            match dir {
                Dir::Read => {
                    w.reader = Some(handler);
                    w.wants_read = true;
                    w.read_gen = generation;
                }
                Dir::Write => {
                    w.writer = Some(handler);
                    w.wants_write = true;
                    w.write_gen = generation;
                }
            }
        }
        Ok(())
    }

    /// Removes one direction; the descriptor is deregistered when neither remains. Returns the
    /// removed handler (to be dropped with no borrow held) and whether anything was there.
    pub(crate) fn remove(
        &mut self,
        registry: &Registry,
        fd: RawFd,
        dir: Dir,
    ) -> (Option<Handler>, bool) {
        let Some(&token) = self.by_fd.get(&fd) else {
            return (None, false);
        };
        let Some(w) = self.slots.get_mut(&token) else {
            return (None, false);
        };
        self.next_generation += 1;
        let (handler, was) = match dir {
            Dir::Read => {
                w.read_gen = self.next_generation;
                (w.reader.take(), std::mem::replace(&mut w.wants_read, false))
            }
            Dir::Write => {
                w.write_gen = self.next_generation;
                (
                    w.writer.take(),
                    std::mem::replace(&mut w.wants_write, false),
                )
            }
        };
        if !w.wants_read && !w.wants_write {
            self.slots.remove(&token);
            self.by_fd.remove(&fd);
            // The descriptor may already be closed by its owner; that is not an error here.
            let _ = registry.deregister(&mut SourceFd(&fd));
        }
        (handler, was)
    }
}

/// Whether `fd` is ready in `dir` right now (`poll(2)`, zero timeout).
pub(crate) fn still_ready(fd: RawFd, dir: Dir) -> bool {
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

//! The poller: the one place that talks to the kernel's readiness interface (epoll, through
//! mio).
//!
//! Everything else in the reactor sees only this module's narrow surface: register a live
//! descriptor under a [`Token`] for some [`Interest`], deregister it, and wait for a batch of
//! `(Token, Ready)` pairs. Descriptors are passed as `BorrowedFd`, never as stored numbers, so
//! the poller cannot act on a descriptor that was closed meanwhile. Replacing epoll by
//! another interface (io_uring's poll operations, say) means rewriting this file only.
//!
//! # Readiness
//!
//! The kernel reports edges; [`Ready`] folds its flags into what handlers need: an error or a
//! hang-up counts as readable (the next read reports it) and an error as writable (the next
//! write reports it), so a handler waiting for either direction always learns of it.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Token};

/// What the poller reported for one registration (or what a source is asked to look at).
///
/// ```
/// use twistor::reactor::Ready;
///
/// let r = Ready::READABLE | Ready::READ_CLOSED;
/// assert!(r.is_readable() && r.is_read_closed());
/// assert!(!r.is_writable());
/// assert!(Ready::EMPTY.is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ready(u8);

impl Ready {
    /// Nothing reported (a source asked to run again on its own).
    pub const EMPTY: Ready = Ready(0);
    /// A read would not block (data, end of stream, or an error to report).
    pub const READABLE: Ready = Ready(1);
    /// A write would not block (room in the send buffer, or an error to report).
    pub const WRITABLE: Ready = Ready(1 << 1);
    /// The peer's end of stream (FIN) or a hang-up is already queued.
    pub const READ_CLOSED: Ready = Ready(1 << 2);
    /// The descriptor has an error pending (`SO_ERROR`).
    pub const ERROR: Ready = Ready(1 << 3);

    /// True if `self` has every flag of `other`.
    ///
    /// ```
    /// use twistor::reactor::Ready;
    /// assert!((Ready::READABLE | Ready::ERROR).contains(Ready::ERROR));
    /// ```
    pub const fn contains(self, other: Ready) -> bool {
        self.0 & other.0 == other.0
    }

    /// No flag set.
    ///
    /// ```
    /// assert!(twistor::reactor::Ready::default().is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// [`READABLE`](Self::READABLE) is set.
    ///
    /// ```
    /// assert!(twistor::reactor::Ready::READABLE.is_readable());
    /// ```
    pub const fn is_readable(self) -> bool {
        self.contains(Ready::READABLE)
    }

    /// [`WRITABLE`](Self::WRITABLE) is set.
    ///
    /// ```
    /// assert!(twistor::reactor::Ready::WRITABLE.is_writable());
    /// ```
    pub const fn is_writable(self) -> bool {
        self.contains(Ready::WRITABLE)
    }

    /// [`READ_CLOSED`](Self::READ_CLOSED) is set.
    ///
    /// ```
    /// assert!(!twistor::reactor::Ready::READABLE.is_read_closed());
    /// ```
    pub const fn is_read_closed(self) -> bool {
        self.contains(Ready::READ_CLOSED)
    }

    /// [`ERROR`](Self::ERROR) is set.
    ///
    /// ```
    /// assert!(twistor::reactor::Ready::ERROR.is_error());
    /// ```
    pub const fn is_error(self) -> bool {
        self.contains(Ready::ERROR)
    }

    /// The reactor's reading of one poller event (module docs, "Readiness").
    fn from_event(e: &mio::event::Event) -> Ready {
        let mut r = Ready::EMPTY;
        let error = e.is_error();
        let read_closed = e.is_read_closed() || error;
        if e.is_readable() || read_closed || e.is_write_closed() {
            r |= Ready::READABLE;
        }
        if e.is_writable() || error {
            r |= Ready::WRITABLE;
        }
        if read_closed {
            r |= Ready::READ_CLOSED;
        }
        if error {
            r |= Ready::ERROR;
        }
        r
    }
}

impl std::ops::BitOr for Ready {
    type Output = Ready;
    fn bitor(self, rhs: Ready) -> Ready {
        Ready(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Ready {
    fn bitor_assign(&mut self, rhs: Ready) {
        self.0 |= rhs.0;
    }
}

/// The kernel's readiness interface.
pub(crate) struct Poller {
    /// Borrowed only for the duration of one `poll` call (no handler runs then).
    poll: RefCell<mio::Poll>,
    /// The kernel's batch; kept from call to call to reuse its allocation.
    events: RefCell<Events>,
    /// A second handle on the same epoll instance, so registrations never need the `poll`
    /// borrow (handlers register and deregister while a batch is being dispatched).
    registry: mio::Registry,
}

impl Poller {
    pub(crate) fn new() -> io::Result<Poller> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        Ok(Poller {
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(1024)),
            registry,
        })
    }

    /// A cross-thread waker that makes a blocked `poll` return with `token`.
    pub(crate) fn waker(&self, token: Token) -> io::Result<mio::Waker> {
        mio::Waker::new(&self.registry, token)
    }

    /// Watches `fd` (edge-triggered) under `token`.
    pub(crate) fn register(
        &self,
        fd: BorrowedFd<'_>,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.registry
            .register(&mut SourceFd(&fd.as_raw_fd()), token, interest)
    }

    /// Changes what `fd` (registered under `token`) is watched for.
    pub(crate) fn reregister(
        &self,
        fd: BorrowedFd<'_>,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.registry
            .reregister(&mut SourceFd(&fd.as_raw_fd()), token, interest)
    }

    /// Stops watching `fd`. Fails harmlessly if it was not watched.
    pub(crate) fn deregister(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.registry.deregister(&mut SourceFd(&fd.as_raw_fd()))
    }

    /// Waits up to `timeout` (`None`: for ever) and appends what is ready to `out`. A signal
    /// interrupting the wait is not an error: `out` is left as it was.
    pub(crate) fn poll(
        &self,
        timeout: Option<Duration>,
        out: &mut Vec<(Token, Ready)>,
    ) -> io::Result<()> {
        let mut events = self.events.borrow_mut();
        match self.poll.borrow_mut().poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        out.extend(events.iter().map(|e| (e.token(), Ready::from_event(e))));
        Ok(())
    }
}

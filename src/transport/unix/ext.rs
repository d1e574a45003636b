//! What is UNIX-socket-only on a connection: the peer's credentials and descriptor passing.
//! Like the TCP options, they live on an extension reached through
//! [`Transport::unix`](crate::transport::Transport::unix), so other transports carry no
//! methods that can only fail.
//!
//! This module uses nothing from `protocol/` (see the transport module's layout).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::rc::Weak;

/// The most descriptors one connection queues before they are sent: the kernel's limit on
/// descriptors in one `SCM_RIGHTS` message (`SCM_MAX_FD`), a bound on what a sender that
/// never writes data can pin.
pub const MAX_QUEUED_DESCRIPTORS: usize = 253;

/// The credentials of the process at the other end, as the kernel recorded them when the
/// connection was made (`SO_PEERCRED`; Twisted has no counterpart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    /// The peer's process id.
    pub pid: i32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

/// Descriptors were queued faster than bytes to carry them (Twisted's
/// `FileDescriptorOverrun`): each descriptor travels with one byte of data, so at most one
/// descriptor per byte written, and at most [`MAX_QUEUED_DESCRIPTORS`] waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "file descriptor overrun: more descriptors queued than bytes written to carry them \
     (each descriptor is sent with one byte of data)"
)]
pub struct FileDescriptorOverrun;

/// Why [`UnixExt::send_file_descriptor`] refused a descriptor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendDescriptorError {
    /// Too many descriptors are waiting for data to carry them.
    #[error(transparent)]
    Overrun(#[from] FileDescriptorOverrun),
    /// The descriptor could not be duplicated, or the connection is closed.
    #[error("cannot send the descriptor: {0}")]
    Io(#[from] io::Error),
}

/// What [`UnixExt`] needs from a connection.
pub(crate) trait UnixAccess {
    fn peer_credentials(&self) -> io::Result<PeerCredentials>;
    fn queue_descriptor(&self, fd: OwnedFd) -> Result<(), SendDescriptorError>;
}

/// The UNIX-socket side of a connection, from
/// [`Transport::unix`](crate::transport::Transport::unix) (`None` there for other
/// transports). On a closed connection every call fails with `NotConnected`.
///
/// ```
/// use twistor::testing::StringTransport;
/// // Not a UNIX socket: no UNIX extension.
/// assert!(StringTransport::new().transport().unix().is_none());
/// ```
#[derive(Clone)]
pub struct UnixExt {
    conn: Weak<dyn UnixAccess>,
}

impl std::fmt::Debug for UnixExt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<UnixExt>")
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl UnixExt {
    pub(crate) fn new(conn: Weak<dyn UnixAccess>) -> UnixExt {
        UnixExt { conn }
    }

    /// The peer process's pid, uid and gid (`SO_PEERCRED`).
    ///
    /// ```
    /// use twistor::prelude::*;
    /// use twistor::transport::unix::listen_unix;
    ///
    /// struct Who(Reactor);
    /// impl Protocol for Who {
    ///     fn connection_made(&mut self, cx: &Context<Self>) {
    ///         let c = cx.transport().unix().unwrap().peer_credentials().unwrap();
    ///         assert_eq!(c.pid, std::process::id() as i32); // the client is this process
    ///         let _ = self.0.stop();
    ///     }
    ///     fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
    /// }
    /// let reactor = Reactor::new().unwrap();
    /// let name = format!("\0twistor-doc-cred-{}", std::process::id());
    /// let r = reactor.clone();
    /// let _port = listen_unix(&reactor, &name, for_protocol(move || Who(r.clone()))).unwrap();
    /// use std::os::linux::net::SocketAddrExt;
    /// let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
    /// let _client = std::os::unix::net::UnixStream::connect_addr(&addr).unwrap();
    /// reactor.run_without_signal_handlers().unwrap();
    /// ```
    pub fn peer_credentials(&self) -> io::Result<PeerCredentials> {
        self.conn.upgrade().ok_or_else(closed)?.peer_credentials()
    }

    /// Queues a duplicate of `fd` to be passed to the peer (`SCM_RIGHTS`) with the next byte
    /// written; the caller keeps `fd`. Write at least one byte per descriptor: a flush that
    /// finds more descriptors than bytes closes the connection with
    /// [`FileDescriptorOverrun`], as Twisted does. More than [`MAX_QUEUED_DESCRIPTORS`]
    /// waiting is refused here.
    ///
    /// ```
    /// use std::io::Read;
    /// use std::os::fd::AsFd;
    /// use std::time::{Duration, Instant};
    /// use twistor::prelude::*;
    /// use twistor::transport::unix::listen_unix;
    ///
    /// // Passes (a duplicate of) its stdout to each client, with one byte.
    /// struct Pass;
    /// impl Protocol for Pass {
    ///     fn connection_made(&mut self, cx: &Context<Self>) {
    ///         let unix = cx.transport().unix().unwrap();
    ///         unix.send_file_descriptor(std::io::stdout().as_fd()).unwrap();
    ///         cx.transport().write(b"!");
    ///     }
    ///     fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
    /// }
    /// let reactor = Reactor::new().unwrap();
    /// let name = format!("\0twistor-doc-fd-{}", std::process::id());
    /// let _port = listen_unix(&reactor, &name, for_protocol(|| Pass)).unwrap();
    /// use std::os::linux::net::SocketAddrExt;
    /// let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
    /// let mut client = std::os::unix::net::UnixStream::connect_addr(&addr).unwrap();
    /// client.set_nonblocking(true).unwrap();
    /// // A plain read gets the byte (the kernel closes the descriptor it carried; a twistor
    /// // protocol gets it in `file_descriptor_received`).
    /// let mut byte = [0u8; 1];
    /// let deadline = Instant::now() + Duration::from_secs(10);
    /// while client.read(&mut byte).is_err() {
    ///     assert!(Instant::now() < deadline);
    ///     reactor.iterate(Duration::from_millis(5)).unwrap();
    /// }
    /// assert_eq!(&byte, b"!");
    /// ```
    #[doc(alias = "sendFileDescriptor")]
    pub fn send_file_descriptor(&self, fd: BorrowedFd<'_>) -> Result<(), SendDescriptorError> {
        let conn = self.conn.upgrade().ok_or_else(closed)?;
        conn.queue_descriptor(fd.try_clone_to_owned()?)
    }
}

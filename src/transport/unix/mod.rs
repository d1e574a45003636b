//! UNIX stream sockets (Twisted's `IReactorUNIX`, `unix.py`): `listen_unix` / `connect_unix`,
//! lock files, the Linux abstract namespace, descriptor passing and peer credentials.
//!
//! The connection is the shared `stream` core over a UNIX socket, the accept loop the shared
//! [`listener`](super::listener) core and the connector the shared connection-attempt core;
//! this module adds only what is UNIX's own:
//!
//! - **Paths.** A path whose first byte is NUL names a socket in Linux's abstract namespace:
//!   no file is created, so there is no mode to set and nothing to unlink. Otherwise the
//!   socket file gets `mode` after `bind` and is unlinked when the port stops listening (or
//!   the reactor shuts down). Without `want_pid`, an existing file makes `bind` fail.
//! - **Lock files.** With `want_pid`, `listen_unix` first takes `<path>.lock` (a symbolic link
//!   to the pid): held by a live process → [`CannotListenError`]; left by a dead one → taken
//!   over, and the socket file it left is removed before `bind`. The lock is released when
//!   the port stops. `connect_unix` with `check_pid` fails with [`BadFileError`] unless a
//!   live process holds the lock. Where Twisted raises from `connectUNIX`, the connector
//!   reports it as a failed attempt.
//! - **Descriptor passing.** [`UnixExt::send_file_descriptor`] queues a descriptor; each
//!   one travels (`SCM_RIGHTS`) with one byte of the data written after it, so a flush with
//!   more descriptors than bytes closes the connection with [`FileDescriptorOverrun`]. Every
//!   read uses `recvmsg`; descriptors that arrive go to the protocol's
//!   `file_descriptor_received` before the bytes that carried them (the default closes them).
//!   They arrive close-on-exec. The kernel ends a read after a message that carried
//!   descriptors even when more is queued, so such a read goes on until one brings none: the
//!   stream core may take a short read to mean the queue is empty.
//! - **Credentials.** [`UnixExt::peer_credentials`]: the peer's pid, uid and gid.
//!
//! ```
//! use twistor::prelude::*;
//! use twistor::transport::unix::{listen_unix_with, UnixListenOptions};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) { cx.transport().write(data) }
//! }
//! let reactor = Reactor::new().unwrap();
//! let path = std::env::temp_dir().join(format!("twistor-doc-{}.sock", std::process::id()));
//! let options = UnixListenOptions { mode: 0o600, ..Default::default() };
//! let port = listen_unix_with(&reactor, &path, for_protocol(|| Echo), options).unwrap();
//! assert!(path.exists());
//! let stopped = port.stop_listening(&reactor);
//! while !stopped.has_result() {
//!     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
//! }
//! assert!(!path.exists()); // unlinked
//! ```

mod datagram;
mod ext;
mod lock;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::time::Duration;

use mio::net::{UnixListener, UnixStream};

pub use self::datagram::{
    ReactorUnixDatagram, UnixDatagramAddress, UnixDatagramConnectOptions,
    UnixDatagramListenOptions, UnixDatagramPort, connect_unix_datagram, connect_unix_datagram_with,
    listen_unix_datagram, listen_unix_datagram_with,
};
use self::ext::UnixAccess;
pub use self::ext::{
    FileDescriptorOverrun, MAX_QUEUED_DESCRIPTORS, PeerCredentials, SendDescriptorError, UnixExt,
};
use super::Address;
use super::base_connector::{
    BaseConnector, ClientOps, Dial, FactoryOps, connect_one, connector_newtype,
};
use super::connector::Connector;
use super::factory::counted;
use super::listener::{Listener, ListeningPort, Port};
use super::stream::{StreamConnection, StreamSocket};
use super::tcp::IntoFactory;
use crate::error::{CannotListenError, connect_error_from_io};
use crate::protocol::{ClientFactory, Factory, Handle, Protocol};
use crate::reactor::{Reactor, WeakReactor};
use crate::{Deferred, Failure};

/// A connect with `check_pid` found no live process holding the server's lock file
/// (Twisted's `BadFileError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("File used for UNIX socket is no good: {0}")]
pub struct BadFileError(pub String);

/// The address of a UNIX socket: a path, an abstract name (leading NUL), or none (an unbound
/// client).
fn address_of(a: &std::os::unix::net::SocketAddr) -> Address {
    use std::os::linux::net::SocketAddrExt;
    if let Some(p) = a.as_pathname() {
        return Address::Unix(Some(p.to_path_buf()));
    }
    if let Some(name) = a.as_abstract_name() {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(name);
        return Address::Unix(Some(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))));
    }
    Address::Unix(None)
}

fn is_abstract(path: &Path) -> bool {
    path.as_os_str().as_bytes().first() == Some(&0)
}

// ---- the socket ------------------------------------------------------------------------------

/// Room for the control data of one read: [`MAX_QUEUED_DESCRIPTORS`] descriptors (8-byte
/// words, so the buffer is aligned for `cmsghdr`).
const CMSG_WORDS: usize = (MAX_QUEUED_DESCRIPTORS * 4 + 64) / 8;

/// A connected UNIX stream socket and its descriptors in flight.
pub(crate) struct UnixSocket {
    stream: UnixStream,
    /// Descriptors waiting for bytes to carry them.
    fds_out: RefCell<VecDeque<OwnedFd>>,
    /// Descriptors received with the last read, for the protocol.
    fds_in: RefCell<Vec<OwnedFd>>,
}

impl UnixSocket {
    fn new(stream: UnixStream) -> UnixSocket {
        UnixSocket {
            stream,
            fds_out: RefCell::new(VecDeque::new()),
            fds_in: RefCell::new(Vec::new()),
        }
    }

    /// Reads like `read(2)`, keeping the descriptors that came along.
    ///
    /// The stream core takes a short read to mean the kernel's queue is empty (so it waits for
    /// the next edge). That holds for a UNIX socket except right after descriptors: the
    /// kernel ends a read after the message that carried them, whatever follows. So after a
    /// read that brought descriptors, read on (into the rest of `buf`) until a read brings
    /// none, the queue is empty, or `buf` is full.
    fn read_all(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut total = 0;
        loop {
            match self.recv(&mut buf[total..]) {
                Ok((0, _)) => return Ok(total),
                Ok((n, had_fds)) => {
                    total += n;
                    if !had_fds || total == buf.len() {
                        return Ok(total);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // What was read is delivered now; the error (or `WouldBlock`) recurs on the
                // next read.
                Err(_) if total > 0 => return Ok(total),
                Err(e) => return Err(e),
            }
        }
    }

    /// One `recvmsg`: the bytes read, and whether descriptors came with them.
    fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        let mut cmsg = [0u64; CMSG_WORDS];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cmsg) as _;
        // SAFETY: `msg` describes live buffers of the given sizes.
        let n = unsafe { libc::recvmsg(self.stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let had_fds = msg.msg_controllen > 0;
        if had_fds {
            self.take_control(&msg);
        }
        Ok((n as usize, had_fds))
    }

    /// Collects the `SCM_RIGHTS` descriptors of a received message.
    fn take_control(&self, msg: &libc::msghdr) {
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            log::warn!(target: "twistor::unix", "received descriptors were truncated (more than {MAX_QUEUED_DESCRIPTORS} in one read)");
        }
        let mut fds = self.fds_in.borrow_mut();
        // SAFETY: walking the control buffer the kernel filled, with the libc macros that
        // bound every header by `msg_controllen`.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                    let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                    for i in 0..len / std::mem::size_of::<libc::c_int>() {
                        let fd = std::ptr::read_unaligned(data.add(i));
                        // The kernel installed it for us: we own it now.
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
                c = libc::CMSG_NXTHDR(msg, c);
            }
        }
    }

    /// Sends one byte carrying `fd`.
    fn send_one_with_fd(&self, byte: u8, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let mut cmsg = [0u64; 4];
        let mut data = [byte];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: 1,
        };
        // SAFETY: as in `recv`; the control buffer has room for one descriptor.
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cmsg.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>(), fd.as_raw_fd());
            let n = libc::sendmsg(self.stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL);
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(n as usize)
        }
    }

    /// `send`/`sendmsg` with `MSG_NOSIGNAL`: a peer that has gone makes the write fail with
    /// `EPIPE` rather than raise `SIGPIPE`, which kills a process that did not ignore it
    /// (`write(2)` on a UNIX socket, unlike std's TCP writes, has no such flag).
    fn plain_write(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let fd = self.stream.as_raw_fd();
        let n = match bufs {
            // SAFETY: sends from a live buffer of the given length.
            [one] => unsafe { libc::send(fd, one.as_ptr().cast(), one.len(), libc::MSG_NOSIGNAL) },
            _ => {
                // SAFETY: an all-zero msghdr is valid; `IoSlice` has `iovec`'s layout on
                // Unix, and the slices outlive the call.
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_iov = bufs.as_ptr().cast_mut().cast();
                msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
                // SAFETY: `msg` points at `bufs`, alive for the call.
                unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) }
            }
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Sends the queued descriptors, one per leading byte of `bufs`, then the rest plainly.
    fn write_with_fds(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.fds_out.borrow().len() > total {
            return Err(io::Error::other(FileDescriptorOverrun));
        }
        let mut bytes = bufs.iter().flat_map(|b| b.iter().copied());
        let mut sent = 0;
        loop {
            let Some(fd) = self.fds_out.borrow_mut().pop_front() else {
                break;
            };
            let Some(byte) = bytes.next() else {
                self.fds_out.borrow_mut().push_front(fd);
                break;
            };
            match self.send_one_with_fd(byte, fd.as_fd()) {
                // Our duplicate is closed now that the kernel holds a reference.
                Ok(_) => sent += 1,
                Err(e) => {
                    self.fds_out.borrow_mut().push_front(fd);
                    return if sent > 0 && e.kind() == io::ErrorKind::WouldBlock {
                        Ok(sent)
                    } else {
                        Err(e)
                    };
                }
            }
        }
        // The rest of the data, past the bytes that carried descriptors.
        let mut skip = sent;
        let rest: Vec<IoSlice<'_>> = bufs
            .iter()
            .filter_map(|b| {
                if skip >= b.len() {
                    skip -= b.len();
                    None
                } else {
                    let s = IoSlice::new(&b[skip..]);
                    skip = 0;
                    Some(s)
                }
            })
            .collect();
        if rest.is_empty() {
            return Ok(sent);
        }
        match self.plain_write(&rest) {
            Ok(n) => Ok(sent + n),
            Err(e) if sent > 0 && e.kind() == io::ErrorKind::WouldBlock => Ok(sent),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for UnixSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl StreamSocket for UnixSocket {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_all(buf)
    }
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.fds_out.borrow().is_empty() {
            self.plain_write(bufs)
        } else {
            self.write_with_fds(bufs)
        }
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }
    fn received_fds(&self) -> Vec<OwnedFd> {
        std::mem::take(&mut *self.fds_in.borrow_mut())
    }
    fn unix_ext(conn: &Weak<StreamConnection<Self>>) -> Option<UnixExt> {
        let conn: Weak<dyn UnixAccess> = conn.clone();
        Some(UnixExt::new(conn))
    }
}

impl UnixAccess for StreamConnection<UnixSocket> {
    fn peer_credentials(&self) -> io::Result<PeerCredentials> {
        self.with_socket(|s| {
            let mut cred = libc::ucred {
                pid: 0,
                uid: 0,
                gid: 0,
            };
            let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
            // SAFETY: `cred` is a ucred and `len` its size.
            let r = unsafe {
                libc::getsockopt(
                    s.stream.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_PEERCRED,
                    (&mut cred as *mut libc::ucred).cast(),
                    &mut len,
                )
            };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(PeerCredentials {
                pid: cred.pid,
                uid: cred.uid,
                gid: cred.gid,
            })
        })
    }

    fn queue_descriptor(&self, fd: OwnedFd) -> Result<(), SendDescriptorError> {
        let mut fd = Some(fd);
        self.with_socket(|s| {
            let mut q = s.fds_out.borrow_mut();
            if q.len() >= MAX_QUEUED_DESCRIPTORS {
                return Ok(false);
            }
            q.extend(fd.take());
            Ok(true)
        })?
        .then_some(())
        .ok_or(SendDescriptorError::Overrun(FileDescriptorOverrun))
    }
}

// ---- listening -------------------------------------------------------------------------------

/// A listening UNIX socket; dropping it (the port stopped) unlinks its file and releases its
/// lock.
pub(crate) struct UnixPortSocket {
    listener: UnixListener,
    /// The socket file to unlink (none for abstract names).
    file: Option<PathBuf>,
    /// Released after the file is gone.
    _lock: Option<lock::FilesystemLock>,
}

impl Drop for UnixPortSocket {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            let _ = std::fs::remove_file(f);
        }
    }
}

impl AsFd for UnixPortSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl Listener for UnixPortSocket {
    type Stream = UnixSocket;
    fn accept(&self) -> io::Result<(UnixSocket, Address)> {
        self.listener
            .accept()
            .map(|(s, a)| (UnixSocket::new(s), address_of(&a)))
    }
    fn connection_host(&self, _stream: &UnixSocket, listening: &Address) -> Address {
        listening.clone()
    }
}

/// How to listen: [`listen_unix_with`]'s options (Twisted's `listenUNIX` arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixListenOptions {
    /// The queue of connections not yet accepted (Twisted's default: 50).
    pub backlog: u32,
    /// The socket file's permissions, set after `bind` (Twisted's default: `0o666`); not
    /// used for abstract names.
    pub mode: u32,
    /// Take the lock file `<path>.lock` first (Twisted's `wantPID`; see the module docs).
    /// Not used for abstract names: the kernel already refuses a second listener on one, and
    /// nothing is left behind to take over.
    pub want_pid: bool,
}

impl Default for UnixListenOptions {
    fn default() -> Self {
        UnixListenOptions {
            backlog: 50,
            mode: 0o666,
            want_pid: false,
        }
    }
}

/// Listens on the UNIX socket `path` (a leading NUL: an abstract name), serving each
/// connection with a protocol from `factory` (Twisted's `listenUNIX` with its defaults).
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::unix::listen_unix;
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let name = format!("\0twistor-doc-{}", std::process::id()); // abstract: no file
/// let port = listen_unix(&reactor, &name, for_protocol(|| Quiet)).unwrap();
/// assert_eq!(port.get_host().to_string(), format!("unix:@twistor-doc-{}", std::process::id()));
/// ```
#[doc(alias = "listenUNIX")]
pub fn listen_unix<A>(
    reactor: &Reactor,
    path: impl AsRef<Path>,
    factory: A,
) -> Result<ListeningPort, CannotListenError>
where
    A: IntoFactory,
    A::Factory: Factory,
{
    listen_unix_with(reactor, path, factory, UnixListenOptions::default())
}

/// [`listen_unix`] with options (backlog, mode, `want_pid`).
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::unix::{listen_unix_with, UnixListenOptions};
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let path = std::env::temp_dir().join(format!("twistor-doc-pid-{}.sock", std::process::id()));
/// let opts = UnixListenOptions { want_pid: true, ..Default::default() };
/// let _port = listen_unix_with(&reactor, &path, for_protocol(|| Quiet), opts.clone()).unwrap();
/// // The lock is ours: a second listener is refused.
/// assert!(listen_unix_with(&reactor, &path, for_protocol(|| Quiet), opts).is_err());
/// # drop(reactor);
/// ```
#[doc(alias = "listenUNIX")]
pub fn listen_unix_with<A>(
    reactor: &Reactor,
    path: impl AsRef<Path>,
    factory: A,
    options: UnixListenOptions,
) -> Result<ListeningPort, CannotListenError>
where
    A: IntoFactory,
    A::Factory: Factory,
{
    let path = path.as_ref();
    let cannot = |source: io::Error| CannotListenError {
        interface: path.display().to_string(),
        port: 0,
        source,
    };
    let socket = bind_unix(path, &options).map_err(cannot)?;
    let host = Address::Unix(Some(path.to_path_buf()));
    Port::start(reactor, socket, host, counted(factory.into_factory())).map_err(cannot)
}

/// Serves connections on an inherited, already listening UNIX socket (socket activation):
/// nothing to unlink and no lock, since the socket is not ours to manage.
pub(crate) fn listen_unix_adopted(
    reactor: &Reactor,
    listener: std::os::unix::net::UnixListener,
    factory: Rc<dyn super::factory::AnyFactory>,
) -> io::Result<ListeningPort> {
    listener.set_nonblocking(true)?;
    let host = address_of(&listener.local_addr()?);
    let socket = UnixPortSocket {
        listener: UnixListener::from_std(listener),
        file: None,
        _lock: None,
    };
    Port::start(reactor, socket, host, factory)
}

fn bind_unix(path: &Path, options: &UnixListenOptions) -> io::Result<UnixPortSocket> {
    let abstract_name = is_abstract(path);
    let mut lock = None;
    if options.want_pid && !abstract_name {
        let l = lock::lock(&lock::lock_path(path))?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrInUse,
                "Cannot acquire lock: a live process holds it",
            )
        })?;
        if !l.clean {
            // Its holder died without cleaning up: remove the socket file it left (only a
            // socket: never some other file that happens to have the name).
            use std::os::unix::fs::FileTypeExt;
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                let _ = std::fs::remove_file(path);
            }
        }
        lock = Some(l);
    }
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    // Bound: from here on the file is ours to remove, even if a later step fails.
    let file = (!abstract_name).then(|| path.to_path_buf());
    let port_socket = |listener| UnixPortSocket {
        listener,
        file,
        _lock: lock,
    };
    let std_listener: std::os::unix::net::UnixListener = OwnedFd::from(socket).into();
    let port = port_socket(UnixListener::from_std(std_listener));
    if !abstract_name {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(options.mode))?;
    }
    let backlog = options.backlog.min(i32::MAX as u32) as i32;
    // SAFETY: listen(2) on a socket we own.
    if unsafe { libc::listen(port.listener.as_raw_fd(), backlog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(port)
}

// ---- connecting ------------------------------------------------------------------------------

/// How to connect: [`connect_unix_with`]'s options (Twisted's `connectUNIX` arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixConnectOptions {
    /// Give up after this long (Twisted's default: 30 s); `None`: no limit.
    pub timeout: Option<Duration>,
    /// Fail with [`BadFileError`] unless a live process holds `<path>.lock` (Twisted's
    /// `checkPID`). Not used for abstract names, which have no lock.
    pub check_pid: bool,
}

impl Default for UnixConnectOptions {
    fn default() -> Self {
        UnixConnectOptions {
            timeout: Some(Duration::from_secs(30)),
            check_pid: false,
        }
    }
}

/// A full accept queue refuses a non-blocking UNIX `connect` with `EAGAIN` (there is no
/// connect in progress to wait for): try again after this long, within the timeout.
const BUSY_RETRY: f64 = 0.005;

/// How a UNIX connector dials: the path, and whether to check the lock first.
pub(crate) struct UnixDial {
    path: PathBuf,
    check_pid: bool,
}

impl Dial for UnixDial {
    type Socket = UnixSocket;

    fn dial(&self, connector: &BaseConnector<Self>, reactor: &Reactor, id: u64) {
        if self.check_pid && !is_abstract(&self.path) {
            let l = lock::lock_path(&self.path);
            if !lock::is_locked(&l) {
                return connector.fail_attempt(
                    id,
                    Failure::new(BadFileError(format!(
                        "{}: no live process holds {}",
                        self.path.display(),
                        l.display()
                    ))),
                );
            }
        }
        let attempt = (|| -> io::Result<Option<UnixSocket>> {
            let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
            socket.set_nonblocking(true)?;
            match socket.connect(&socket2::SockAddr::unix(&self.path)?) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(None),
                Err(e) => return Err(e),
            }
            let std_stream: std::os::unix::net::UnixStream = OwnedFd::from(socket).into();
            Ok(Some(UnixSocket::new(UnixStream::from_std(std_stream))))
        })();
        match attempt {
            Ok(Some(s)) => connector.attempt_started(reactor, id, s),
            Ok(None) => {
                let me = connector.clone();
                let r = reactor.clone();
                reactor.call_later(BUSY_RETRY, move || {
                    if me.is_current(id) {
                        me.dial().dial(&me, &r, id);
                    }
                });
            }
            Err(e) => connector.fail_attempt(id, connect_error_from_io(e)),
        }
    }

    fn check(s: &UnixSocket) -> io::Result<bool> {
        match s.stream.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match s.stream.peer_addr() {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    fn addresses(s: &UnixSocket) -> io::Result<(Address, Address)> {
        Ok((
            address_of(&s.stream.local_addr()?),
            address_of(&s.stream.peer_addr()?),
        ))
    }

    fn destination(&self) -> Address {
        Address::Unix(Some(self.path.clone()))
    }
}

/// A UNIX connection attempt and its result (Twisted's `unix.Connector`); the [`Connector`]
/// trait has its methods. Cheap to clone.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::unix::connect_unix;
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let c = connect_unix(&reactor, "/nonexistent/twistor.sock", for_protocol(|| Quiet));
/// c.disconnect();
/// assert_eq!(c.path(), std::path::Path::new("/nonexistent/twistor.sock"));
/// ```
#[derive(Clone)]
pub struct UnixConnector(BaseConnector<UnixDial>);

connector_newtype!(UnixConnector);

impl UnixConnector {
    fn unstarted(
        reactor: WeakReactor,
        path: &Path,
        ops: Box<dyn ClientOps>,
        options: UnixConnectOptions,
    ) -> UnixConnector {
        let dial = UnixDial {
            path: path.to_path_buf(),
            check_pid: options.check_pid,
        };
        UnixConnector(BaseConnector::new(reactor, dial, options.timeout, ops))
    }

    /// A connector that is recorded, not run (`MemoryReactor`): it never connects.
    pub(crate) fn recorded(
        path: &Path,
        factory: Rc<dyn super::factory::AnyClientFactory>,
        options: UnixConnectOptions,
    ) -> UnixConnector {
        UnixConnector::unstarted(
            WeakReactor::none(),
            path,
            Box::new(FactoryOps(factory)),
            options,
        )
    }

    /// This connector as the trait object factories get.
    pub fn as_dyn(&self) -> Rc<dyn Connector> {
        Rc::new(self.0.clone())
    }

    /// The path it connects to.
    pub fn path(&self) -> &Path {
        &self.0.dial().path
    }
}

/// Connects to the UNIX socket `path`, building the protocol with `factory` (Twisted's
/// `connectUNIX` with its defaults: a 30 s timeout).
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::unix::{connect_unix, listen_unix};
///
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, cx: &Context<Self>) { cx.transport().lose_connection() }
///     fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
/// }
/// struct Bye(Reactor);
/// impl Protocol for Bye {
///     fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
///     fn connection_lost(&mut self, _cx: &Context<Self>, _reason: Failure) { let _ = self.0.stop(); }
/// }
/// let reactor = Reactor::new().unwrap();
/// let name = format!("\0twistor-doc-connect-{}", std::process::id());
/// let _port = listen_unix(&reactor, &name, for_protocol(|| Hello)).unwrap();
/// let r = reactor.clone();
/// connect_unix(&reactor, &name, for_protocol(move || Bye(r.clone())));
/// reactor.run_without_signal_handlers().unwrap();
/// ```
#[doc(alias = "connectUNIX")]
pub fn connect_unix<A>(reactor: &Reactor, path: impl AsRef<Path>, factory: A) -> UnixConnector
where
    A: IntoFactory,
    A::Factory: ClientFactory,
{
    connect_unix_with(reactor, path, factory, UnixConnectOptions::default())
}

/// [`connect_unix`] with options (timeout, `check_pid`).
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::unix::{connect_unix_with, UnixConnectOptions};
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let opts = UnixConnectOptions { check_pid: true, ..Default::default() };
/// let c = connect_unix_with(&reactor, "/nonexistent/x.sock", for_protocol(|| Quiet), opts);
/// c.disconnect();
/// ```
#[doc(alias = "connectUNIX")]
pub fn connect_unix_with<A>(
    reactor: &Reactor,
    path: impl AsRef<Path>,
    factory: A,
    options: UnixConnectOptions,
) -> UnixConnector
where
    A: IntoFactory,
    A::Factory: ClientFactory,
{
    let ops = Box::new(FactoryOps(counted(factory.into_factory())));
    let c = UnixConnector::unstarted(reactor.downgrade(), path.as_ref(), ops, options);
    c.connect();
    c
}

/// Connects `protocol` to the UNIX socket `path` and fires with its [`Handle`] once
/// connected (Twisted's `ClientCreator.connectUNIX`). Cancelling the Deferred stops the
/// attempt.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::unix::{connect_unix_protocol, UnixConnectOptions};
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// let reactor = Reactor::new().unwrap();
/// let d = connect_unix_protocol(&reactor, "/nonexistent/x.sock", Quiet, UnixConnectOptions::default());
/// assert!(d.has_result()); // no such file: failed at once
/// # let _ = twistor::testing::failure_result_of(&d);
/// ```
#[doc(alias = "connectUNIX")]
pub fn connect_unix_protocol<P: Protocol>(
    reactor: &Reactor,
    path: impl AsRef<Path>,
    protocol: P,
    options: UnixConnectOptions,
) -> Deferred<Handle<P>> {
    let reactor = reactor.downgrade();
    connect_one(protocol, |ops| {
        UnixConnector::unstarted(reactor, path.as_ref(), ops, options).0
    })
}

// ---- the reactor interface -------------------------------------------------------------------

/// What opens UNIX ports and connections (Twisted's `IReactorUNIX`): code that takes
/// `&impl ReactorUnix` names its needs as it does with `ReactorTcp`, and is tested with a
/// [`MemoryReactor`](crate::testing::MemoryReactor), which records the calls.
///
/// ```
/// use twistor::prelude::*;
/// use twistor::transport::unix::{ReactorUnix, UnixListenOptions};
///
/// struct Quiet;
/// impl Protocol for Quiet { fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {} }
/// fn serve(r: &impl ReactorUnix, name: &str) -> bool {
///     r.listen_unix_with(name, for_protocol(|| Quiet), UnixListenOptions::default()).is_ok()
/// }
/// let reactor = Reactor::new().unwrap();
/// assert!(serve(&reactor, &format!("\0twistor-doc-trait-{}", std::process::id())));
/// ```
#[doc(alias = "IReactorUNIX")]
pub trait ReactorUnix {
    /// As [`listen_unix_with`].
    #[doc(alias = "listenUNIX")]
    fn listen_unix_with<A>(
        &self,
        path: impl AsRef<Path>,
        factory: A,
        options: UnixListenOptions,
    ) -> Result<ListeningPort, CannotListenError>
    where
        A: IntoFactory,
        A::Factory: Factory;

    /// As [`connect_unix_with`].
    #[doc(alias = "connectUNIX")]
    fn connect_unix_with<A>(
        &self,
        path: impl AsRef<Path>,
        factory: A,
        options: UnixConnectOptions,
    ) -> UnixConnector
    where
        A: IntoFactory,
        A::Factory: ClientFactory;

    /// As [`listen_unix`].
    #[doc(alias = "listenUNIX")]
    fn listen_unix<A>(
        &self,
        path: impl AsRef<Path>,
        factory: A,
    ) -> Result<ListeningPort, CannotListenError>
    where
        A: IntoFactory,
        A::Factory: Factory,
    {
        self.listen_unix_with(path, factory, UnixListenOptions::default())
    }

    /// As [`connect_unix`].
    #[doc(alias = "connectUNIX")]
    fn connect_unix<A>(&self, path: impl AsRef<Path>, factory: A) -> UnixConnector
    where
        A: IntoFactory,
        A::Factory: ClientFactory,
    {
        self.connect_unix_with(path, factory, UnixConnectOptions::default())
    }
}

impl ReactorUnix for Reactor {
    fn listen_unix_with<A>(
        &self,
        path: impl AsRef<Path>,
        factory: A,
        options: UnixListenOptions,
    ) -> Result<ListeningPort, CannotListenError>
    where
        A: IntoFactory,
        A::Factory: Factory,
    {
        listen_unix_with(self, path, factory, options)
    }

    fn connect_unix_with<A>(
        &self,
        path: impl AsRef<Path>,
        factory: A,
        options: UnixConnectOptions,
    ) -> UnixConnector
    where
        A: IntoFactory,
        A::Factory: ClientFactory,
    {
        connect_unix_with(self, path, factory, options)
    }
}

/// A shared reactor is a reactor (tests hold an `Rc<MemoryReactor>` where a callback needs
/// to keep one).
impl<T: ReactorUnix> ReactorUnix for Rc<T> {
    fn listen_unix_with<A>(
        &self,
        path: impl AsRef<Path>,
        factory: A,
        options: UnixListenOptions,
    ) -> Result<ListeningPort, CannotListenError>
    where
        A: IntoFactory,
        A::Factory: Factory,
    {
        (**self).listen_unix_with(path, factory, options)
    }

    fn connect_unix_with<A>(
        &self,
        path: impl AsRef<Path>,
        factory: A,
        options: UnixConnectOptions,
    ) -> UnixConnector
    where
        A: IntoFactory,
        A::Factory: ClientFactory,
    {
        (**self).connect_unix_with(path, factory, options)
    }
}

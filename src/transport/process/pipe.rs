//! The parent's end of one child descriptor: a pipe (or a PTY master) as a [`StreamSocket`],
//! so it gets the stream core's read budget, write buffer, producer slot and closing rules.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use crate::Failure;
use crate::protocol::ProtocolDriver;
use crate::transport::stream::StreamSocket;

/// Which way bytes go through the parent's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PipeKind {
    /// The child writes, the parent reads (Twisted's `"r"`).
    Reader,
    /// The parent writes, the child reads (Twisted's `"w"`).
    Writer,
    /// A PTY master: both ways; the slave's last close reads as `EIO`.
    Pty,
}

pub(crate) struct Pipe {
    fd: OwnedFd,
    kind: PipeKind,
}

impl Pipe {
    /// Wraps the parent's end, made non-blocking here (the child's end stays blocking).
    pub(crate) fn new(fd: OwnedFd, kind: PipeKind) -> io::Result<Pipe> {
        set_nonblocking(fd.as_raw_fd())?;
        Ok(Pipe { fd, kind })
    }
}

/// Makes a fresh pipe end or PTY master non-blocking. `F_SETFL` only changes the status
/// flags, and a fresh descriptor has none set (the access mode is not changed by it), so no
/// `F_GETFL` first.
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor this process owns; no memory is passed.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl AsFd for Pipe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl StreamSocket for Pipe {
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.kind == PipeKind::Writer {
            // A write end is never readable: the only news the poller gives about it is an
            // error once the child closed its end (Twisted's `ProcessWriter.doRead`), which
            // reads as the end of the stream so the pipe closes.
            let mut p = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: 0,
                revents: 0,
            };
            // SAFETY: one valid pollfd, zero timeout.
            let n = unsafe { libc::poll(&mut p, 1, 0) };
            if n > 0 && p.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                return Ok(0);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            // A PTY master reads EIO once every slave descriptor is closed: that is the end.
            if self.kind == PipeKind::Pty && e.raw_os_error() == Some(libc::EIO) {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(n as usize)
    }

    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let count = bufs.len().min(libc::c_int::MAX as usize) as libc::c_int;
        // SAFETY: IoSlice is ABI-compatible with iovec; `count` slices are valid.
        let n = unsafe { libc::writev(self.fd.as_raw_fd(), bufs.as_ptr().cast(), count) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        Ok(())
    }
}

/// What a pipe tells its process.
pub(crate) trait PipeEvents {
    fn child_data(&self, fd: i32, data: &[u8]);
    fn pipe_closed(&self, fd: i32, reason: Failure);
    fn pipe_eof(&self, fd: i32);
}

/// The stream core's protocol slot for a pipe: forwards to the process, tagged with the
/// child's descriptor number. It holds the process strongly, so a process whose transport
/// handle was dropped still hears from pipes a grandchild keeps open; the stream core drops
/// the driver when the pipe closes, which breaks the cycle.
pub(crate) struct PipeDriver {
    pub(crate) fd: i32,
    pub(crate) process: Rc<dyn PipeEvents>,
}

impl PipeDriver {
    fn process(&self) -> Option<Rc<dyn PipeEvents>> {
        Some(self.process.clone())
    }
}

impl ProtocolDriver for PipeDriver {
    fn make_connection(&self) {}
    fn data_received(&self, data: &[u8]) {
        if let Some(p) = self.process() {
            p.child_data(self.fd, data);
        }
    }
    fn connection_lost(&self, reason: Failure) {
        if let Some(p) = self.process() {
            p.pipe_closed(self.fd, reason);
        }
    }
    fn read_connection_lost(&self) {
        if let Some(p) = self.process() {
            p.pipe_eof(self.fd);
        }
    }
    fn write_connection_lost(&self) {}
    /// Pipes carry no descriptors: anything that arrived is closed when dropped here.
    fn file_descriptor_received(&self, fd: std::os::fd::OwnedFd) {
        drop(fd);
    }
}

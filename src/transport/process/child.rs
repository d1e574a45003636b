//! Building the child: descriptors, terminal and signals, set up between `fork` and `exec`.
//!
//! Everything in [`ChildSetup::apply`] runs in the forked child, so it only makes system
//! calls and touches memory allocated before the fork.

use std::io;
use std::os::fd::RawFd;

/// The descriptor plan of one child: which parent descriptor becomes which child descriptor.
pub(crate) struct ChildSetup {
    /// `(child fd, parent fd, scratch)`: the scratch slot receives a high duplicate in the
    /// child, so mappings that swap descriptors cannot clobber each other.
    pub(crate) moves: Vec<(RawFd, RawFd, RawFd)>,
    /// The PTY slave, made the controlling terminal of a new session.
    pub(crate) pty_slave: Option<RawFd>,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl ChildSetup {
    pub(crate) fn apply(&mut self) -> io::Result<()> {
        // SAFETY: plain system calls on descriptors and signal numbers, and writes to memory
        // allocated before the fork; no allocation, as required after fork.
        unsafe {
            if let Some(slave) = self.pty_slave {
                check(libc::setsid())?;
                check(libc::ioctl(slave, libc::TIOCSCTTY as _, 0))?;
            }
            // Signals the parent ignores would stay ignored across exec: reset them
            // (SIGPIPE above all, which Rust programs ignore). The raw system call reaches
            // the real-time signals libc reserves for itself too.
            for sig in 1..=64 {
                if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                    continue;
                }
                let mut old = KernelSigaction::default();
                if libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    std::ptr::null::<KernelSigaction>(),
                    &mut old as *mut KernelSigaction,
                    8usize,
                ) == 0
                    && old.handler == libc::SIG_IGN
                {
                    let default = KernelSigaction::default();
                    libc::syscall(
                        libc::SYS_rt_sigaction,
                        sig,
                        &default as *const KernelSigaction,
                        std::ptr::null_mut::<KernelSigaction>(),
                        8usize,
                    );
                }
            }
            let base = self.moves.iter().map(|m| m.0).max().unwrap_or(2).max(2) + 1;
            for m in self.moves.iter_mut() {
                m.2 = check(libc::fcntl(m.1, libc::F_DUPFD_CLOEXEC, base))?;
            }
            // Every other descriptor is closed by exec; the mapped ones are dup'ed below,
            // which clears their close-on-exec flag.
            mark_cloexec_from(3);
            for m in self.moves.iter() {
                check(libc::dup2(m.2, m.0))?;
            }
            for fd in 0..3 {
                if !self.moves.iter().any(|m| m.0 == fd) {
                    libc::close(fd);
                }
            }
        }
        Ok(())
    }
}

/// The kernel's `struct sigaction` (not libc's): handler, flags, restorer, 64-bit mask.
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Sets close-on-exec on every descriptor from `first` up.
fn mark_cloexec_from(first: RawFd) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    // Kernels before 5.11: walk the descriptor table up to the soft limit.
    // SAFETY: an all-zero rlimit is valid.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit fills a plain struct.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(1 << 20) as RawFd
    } else {
        4096
    };
    for fd in first..max {
        // SAFETY: fcntl on a possibly closed descriptor just fails with EBADF.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// A new pipe, both ends close-on-exec: `(read end, write end)`.
pub(crate) fn pipe() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors are fresh and owned by nobody else.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// A new pseudo-terminal: `(master, slave)`, both close-on-exec.
pub(crate) fn openpty() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: the calls below open descriptors we own and fill a local buffer.
    unsafe {
        let m = check(libc::posix_openpt(
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))?;
        let master = OwnedFd::from_raw_fd(m);
        check(libc::grantpt(master.as_raw_fd()))?;
        check(libc::unlockpt(master.as_raw_fd()))?;
        let mut name = [0 as libc::c_char; 128];
        let r = libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len());
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        let s = check(libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        ))?;
        Ok((master, OwnedFd::from_raw_fd(s)))
    }
}

/// `pidfd_open(2)`: a descriptor that becomes readable when the child exits.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor; pidfds are close-on-exec.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`: no race with pid reuse, since the pidfd names this child only.
pub(crate) fn pidfd_send_signal(pidfd: RawFd, sig: i32) -> io::Result<()> {
    // SAFETY: no pointers but a null siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

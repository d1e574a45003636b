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

/// `posix_spawn` for requests it can express: every mapped descriptor is one of 0, 1, 2 and
/// comes from a descriptor that is not itself a target, no PTY, no uid/gid/directory/
/// environment change. glibc's `posix_spawn` (a `vfork`-style clone) costs the parent far
/// less than `fork`; the rules stay Twisted's: every other descriptor is closed
/// (`addclosefrom_np`), every signal is reset to its default, the signal mask is emptied.
/// An `exec` failure is its return value.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn posix_spawn(
    executable: &std::ffi::OsStr,
    argv: &[&std::ffi::OsStr],
    moves: &[(RawFd, RawFd)],
) -> io::Result<u32> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    unsafe extern "C" {
        static environ: *const *mut libc::c_char;
    }
    let cstr = |s: &std::ffi::OsStr| {
        CString::new(s.as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument"))
    };
    let exe = cstr(executable)?;
    let args = argv
        .iter()
        .map(|a| cstr(a))
        .collect::<io::Result<Vec<_>>>()?;
    let mut ptrs: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    ptrs.push(std::ptr::null_mut());
    let rc = |r: libc::c_int| {
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(r))
        }
    };

    /// Destroys the spawn attributes and file actions however this function returns.
    struct Spawn {
        actions: libc::posix_spawn_file_actions_t,
        attr: libc::posix_spawnattr_t,
    }
    impl Drop for Spawn {
        fn drop(&mut self) {
            // SAFETY: both were initialised before this guard was made.
            unsafe {
                libc::posix_spawn_file_actions_destroy(&mut self.actions);
                libc::posix_spawnattr_destroy(&mut self.attr);
            }
        }
    }
    // SAFETY: the structs are initialised by their init functions before any other use, and
    // every pointer handed to posix_spawn lives until it returns.
    unsafe {
        let mut s = Spawn {
            actions: std::mem::zeroed(),
            attr: std::mem::zeroed(),
        };
        rc(libc::posix_spawn_file_actions_init(&mut s.actions))?;
        if let Err(e) = rc(libc::posix_spawnattr_init(&mut s.attr)) {
            libc::posix_spawn_file_actions_destroy(&mut s.actions);
            return Err(e);
        }
        for &(target, source) in moves {
            rc(libc::posix_spawn_file_actions_adddup2(
                &mut s.actions,
                source,
                target,
            ))?;
        }
        rc(libc::posix_spawn_file_actions_addclosefrom_np(
            &mut s.actions,
            3,
        ))?;
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        rc(libc::posix_spawnattr_setsigdefault(&mut s.attr, &all))?;
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        rc(libc::posix_spawnattr_setsigmask(&mut s.attr, &none))?;
        rc(libc::posix_spawnattr_setflags(
            &mut s.attr,
            (libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK) as libc::c_short,
        ))?;
        let mut pid: libc::pid_t = 0;
        let spawn = if exe.as_bytes().contains(&b'/') {
            libc::posix_spawn
        } else {
            libc::posix_spawnp
        };
        rc(spawn(
            &mut pid,
            exe.as_ptr(),
            &s.actions,
            &s.attr,
            ptrs.as_ptr(),
            environ,
        ))?;
        Ok(pid as u32)
    }
}

/// Reaps `pid` if it has exited: its raw wait status.
pub(crate) fn try_reap(pid: u32) -> io::Result<Option<i32>> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid fills one int.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if r == 0 {
            return Ok(None);
        }
        if r > 0 {
            return Ok(Some(status));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Kills and reaps a child this process cannot watch (no pidfd).
pub(crate) fn kill_and_reap(pid: u32) {
    let mut status = 0;
    // SAFETY: signals and waits for our own unreaped child.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
        while libc::waitpid(pid as libc::pid_t, &mut status, 0) < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
}

//! SIGINT and SIGTERM: a graceful `stop()` (shutdown triggers run), through signal-hook's
//! self-pipe.
//!
//! The signal handler only writes a byte to a non-blocking socket pair (async-signal-safe);
//! the read end is registered with the poller under its own token, so a signal interrupts a
//! blocking poll and is handled on the loop thread like any other event. Each signal has its
//! own pair, so the reactor knows which one arrived (Twisted keeps it as `_exitSignal`).

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use std::os::fd::AsFd;

use mio::Interest;

use super::poller::Poller;
use super::registry::SIGNAL_TOKEN;

/// signal-hook keeps its process-wide handler installed once registered, and unregistering our
/// action does not bring the default back: after `run()` returned, Ctrl-C would be ignored.
/// So, the first time, a "run the default action" handler is registered too, active only while
/// no reactor handles the signals (a count of installed reactors).
struct DefaultWhenIdle {
    installed: AtomicUsize,
    idle: Arc<AtomicBool>,
}

fn default_when_idle() -> &'static DefaultWhenIdle {
    static STATE: OnceLock<DefaultWhenIdle> = OnceLock::new();
    static REGISTERED: Mutex<bool> = Mutex::new(false);
    let state = STATE.get_or_init(|| DefaultWhenIdle {
        installed: AtomicUsize::new(0),
        idle: Arc::new(AtomicBool::new(false)),
    });
    let mut registered = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    if !*registered {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            if let Err(e) = signal_hook::flag::register_conditional_default(sig, state.idle.clone())
            {
                log::warn!(target: "twistor::reactor", "cannot arm the default action of signal {sig}: {e}");
            }
        }
        *registered = true;
    }
    state
}

/// Installed handlers; dropping this uninstalls them.
pub(crate) struct SignalPipes {
    pipes: Vec<(i32, mio::net::UnixStream, signal_hook::SigId)>,
}

impl SignalPipes {
    pub(crate) fn install(poller: &Poller) -> io::Result<SignalPipes> {
        let idle = default_when_idle();
        idle.installed.fetch_add(1, Ordering::SeqCst);
        idle.idle.store(false, Ordering::SeqCst);
        let mut pipes = SignalPipes { pipes: Vec::new() };
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            if let Err(e) = pipes.add(poller, sig) {
                // Undo what was done, the count included.
                pipes.uninstall(poller);
                return Err(e);
            }
        }
        Ok(pipes)
    }

    fn add(&mut self, poller: &Poller, sig: i32) -> io::Result<()> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let id = signal_hook::low_level::pipe::register(sig, write)?;
        let read = mio::net::UnixStream::from_std(read);
        // All signal pipes share one token: on an event, every pipe is drained.
        if let Err(e) = poller.register(read.as_fd(), SIGNAL_TOKEN, Interest::READABLE) {
            signal_hook::low_level::unregister(id);
            return Err(e);
        }
        self.pipes.push((sig, read, id));
        Ok(())
    }

    /// The signals that arrived since the last call (each pipe drained).
    pub(crate) fn drain(&mut self) -> Vec<i32> {
        let mut got = Vec::new();
        for (sig, read, _) in &mut self.pipes {
            let mut buf = [0u8; 64];
            let mut seen = false;
            loop {
                match read.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => seen = true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            if seen {
                got.push(*sig);
            }
        }
        got
    }

    pub(crate) fn uninstall(mut self, poller: &Poller) {
        for (_, read, id) in &mut self.pipes {
            signal_hook::low_level::unregister(*id);
            let _ = poller.deregister(read.as_fd());
        }
        self.pipes.clear();
        let idle = default_when_idle();
        if idle.installed.fetch_sub(1, Ordering::SeqCst) == 1 {
            idle.idle.store(true, Ordering::SeqCst);
        }
    }
}

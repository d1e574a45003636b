//! `react`: a program's `main` as a function that returns a Deferred (Twisted's `task.react`).
//!
//! `main` runs before the reactor starts; when its Deferred fires the reactor stops and the
//! process exits with a code: 0 on success, `n` for a [`SystemExit`]`(n)` failure, 1 (and a
//! logged error) for any other failure. If the reactor is already shutting down when the
//! Deferred fires, it is not asked to stop a second time.

use std::cell::Cell;
use std::rc::Rc;

use crate::reactor::{Phase, Reactor};
use crate::{Deferred, Failure};

/// A failure that ends [`react`] with this exit code (Python's `SystemExit`).
///
/// ```
/// use twistor::task::SystemExit;
/// assert_eq!(SystemExit(3).to_string(), "exit with code 3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("exit with code {0}")]
pub struct SystemExit(pub i32);

/// How [`react_with`] runs: which reactor, and whether to install signal handlers. Built
/// from its defaults (a new reactor, SIGINT/SIGTERM handlers installed, as Twisted's `react`)
/// by chaining the methods.
///
/// ```
/// use twistor::reactor::Reactor;
/// use twistor::task::ReactOptions;
///
/// let reactor = Reactor::new().unwrap();
/// let options = ReactOptions::new().reactor(&reactor).install_signal_handlers(false);
/// assert!(!options.installs_signal_handlers());
/// assert!(ReactOptions::default().installs_signal_handlers());
/// ```
#[derive(Debug, Clone)]
pub struct ReactOptions {
    reactor: Option<Reactor>,
    install_signal_handlers: bool,
}

impl Default for ReactOptions {
    fn default() -> Self {
        ReactOptions {
            reactor: None,
            install_signal_handlers: true,
        }
    }
}

impl ReactOptions {
    /// The defaults: a new reactor, with signal handlers.
    ///
    /// ```
    /// assert!(twistor::task::ReactOptions::new().installs_signal_handlers());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs on `reactor` (a handle to it) instead of a new one.
    ///
    /// ```
    /// use twistor::reactor::Reactor;
    /// use twistor::task::{ReactOptions, react_with};
    /// use twistor::Deferred;
    ///
    /// let reactor = Reactor::new().unwrap();
    /// let options = ReactOptions::new().reactor(&reactor).install_signal_handlers(false);
    /// assert_eq!(react_with(options, |_| Deferred::succeed(())), 0);
    /// ```
    pub fn reactor(mut self, reactor: &Reactor) -> Self {
        self.reactor = Some(reactor.clone());
        self
    }

    /// Whether SIGINT and SIGTERM stop the reactor gracefully (as for [`Reactor::run`]);
    /// `false` as for [`Reactor::run_without_signal_handlers`].
    ///
    /// ```
    /// let o = twistor::task::ReactOptions::new().install_signal_handlers(false);
    /// assert!(!o.installs_signal_handlers());
    /// ```
    pub fn install_signal_handlers(mut self, install: bool) -> Self {
        self.install_signal_handlers = install;
        self
    }

    /// The signal-handler setting.
    pub fn installs_signal_handlers(&self) -> bool {
        self.install_signal_handlers
    }
}

/// Runs `main` on a new reactor (with SIGINT/SIGTERM handlers) and exits the process with
/// its code. Never returns.
///
/// ```no_run
/// use twistor::task::{defer_later, react};
///
/// react(|reactor| defer_later(reactor.clone(), 1.0, || Ok::<_, twistor::Failure>(())));
/// ```
pub fn react<T: 'static>(main: impl FnOnce(&Reactor) -> Deferred<T>) -> ! {
    std::process::exit(react_with(ReactOptions::new(), main))
}

/// Runs `main` as `options` say until its Deferred fires, and returns the exit code [`react`]
/// would exit with (1, logged, if a new reactor cannot be created).
///
/// ```
/// use twistor::reactor::Reactor;
/// use twistor::task::{react_with, ReactOptions, SystemExit};
/// use twistor::{Deferred, Failure};
///
/// let options = ReactOptions::new().install_signal_handlers(false);
/// let code = react_with(options, |_| Deferred::<()>::fail(SystemExit(7)));
/// assert_eq!(code, 7);
/// ```
#[doc(alias = "react")]
pub fn react_with<T: 'static>(
    options: ReactOptions,
    main: impl FnOnce(&Reactor) -> Deferred<T>,
) -> i32 {
    let reactor = match options.reactor {
        Some(r) => r,
        None => match Reactor::new() {
            Ok(r) => r,
            Err(e) => {
                log::error!(target: "twistor::task", "cannot create the reactor: {e}");
                return 1;
            }
        },
    };
    let reactor = &reactor;
    let code = Rc::new(Cell::new(0));
    let shutting_down = Rc::new(Cell::new(false));
    let flag = shutting_down.clone();
    reactor.add_system_event_trigger(Phase::Before, "shutdown", move || flag.set(true));
    let finished = main(reactor);
    let (c, r) = (code.clone(), reactor.clone());
    let _ = finished.add_both(move |result: Result<T, Failure>| {
        c.set(exit_code(&result));
        if !shutting_down.get() {
            let r2 = r.clone();
            r.call_when_running(move || {
                // It may have stopped meanwhile (a signal): nothing more to do then.
                let _ = r2.stop();
            });
        }
        Ok(())
    });
    let run = if options.install_signal_handlers {
        reactor.run()
    } else {
        reactor.run_without_signal_handlers()
    };
    if let Err(e) = run {
        log::error!(target: "twistor::task", "reactor failed: {e}");
        return 1;
    }
    code.get()
}

fn exit_code<T>(result: &Result<T, Failure>) -> i32 {
    match result {
        Ok(_) => 0,
        Err(f) => match f.downcast_ref::<SystemExit>() {
            Some(SystemExit(n)) => *n,
            None => {
                crate::report_error!(target: "twistor::task", "main function encountered error: {f:?}");
                1
            }
        },
    }
}

//! The paper's fourth program: Deferreds turn event handlers into APIs.
//!
//! `run_later(seconds, f)` schedules `f` with `call_later` and returns at once with a Deferred
//! that fires with `f`'s value. The paper: this "will print 'Hello' at two seconds,
//! 'Beautiful' at three seconds and 'World' three seconds after 'Hello'". The 'World' callback
//! runs only after the Deferred returned by the 'Hello' `run_later` has fired.
//!
//! ```python
//! def run_later(seconds, function, *args, **kwargs):
//!     d = defer.Deferred()
//!
//!     def fire():
//!         value = function(*args, **kwargs)
//!         d.callback(value)
//!
//!     reactor.callLater(seconds, fire)
//!     return d
//!
//! d = run_later(2, print_stuff, 'Hello')
//! d.addCallback(lambda ignored: run_later(3, print_stuff, 'World'))
//! run_later(3, print_stuff, 'Beautiful')
//!
//! reactor.run()
//! ```
//!
//! Prints `Hello` (t=2 s), `Beautiful` (t=3 s), `World` (t=5 s), one per line. The paper's
//! program then runs until a signal; this one stops once `World` has printed.
//! `--scale FACTOR` (default 1) multiplies every delay, for tests.
//!
//! Run: `cargo run --example run_later`

mod common;

use common::Opt;
use twistor::Deferred;
use twistor::defer::gather_results;
use twistor::reactor::Reactor;

/// Calls `f` after `seconds` and fires the returned Deferred with its value.
fn run_later<T: 'static>(
    reactor: &Reactor,
    seconds: f64,
    f: impl FnOnce() -> T + 'static,
) -> Deferred<T> {
    let (d, fire) = Deferred::new();
    reactor.call_later(seconds, move || {
        let value = f();
        // Only this timed call fires `d`, once.
        let _ = fire.callback(value);
    });
    d
}

fn print_stuff(message: &str) {
    println!("{message}");
}

fn main() {
    let args = common::parse("run_later", &[Opt::Scale]);
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("run_later: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };

    let r = reactor.clone();
    let world_delay = args.secs(3.0);
    let d = run_later(&reactor, args.secs(2.0), || print_stuff("Hello"))
        .add_callback_deferred(move |()| run_later(&r, world_delay, || print_stuff("World")));
    let beautiful = run_later(&reactor, args.secs(3.0), || print_stuff("Beautiful"));

    // Not in the paper (whose program runs until a signal): stop once both chains have run,
    // that is once `World`, the last line, has printed.
    let r = reactor.clone();
    gather_results([d, beautiful]).add_callback(move |_| {
        let _ = r.stop();
    });

    if let Err(e) = reactor.run() {
        eprintln!("run_later: the reactor failed: {e}");
        std::process::exit(1);
    }
    common::report_exit_signal(reactor.exit_signal());
}

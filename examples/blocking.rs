//! The paper's fifth program: a handler that blocks, blocks everything.
//!
//! The same as `run_later`, but the 'World' callback sleeps three seconds before printing.
//! The paper: "Although this looks like it might do the same thing as the previous program, it
//! will actually display: HelloWorldBeautiful". After 'Hello' is printed, the sleeping
//! callback blocks the reactor for three seconds; only after it returns does the reactor get a
//! chance to run the 'Beautiful' call, which was due at three seconds.
//!
//! ```python
//! def sleep_then_print(seconds, value):
//!     time.sleep(seconds)
//!     print value
//!
//! d = run_later(2, print_stuff, 'Hello')
//! d.addCallback(lambda ignored: sleep_then_print(3, 'World'))
//! run_later(3, print_stuff, 'Beautiful')
//!
//! reactor.run()
//! ```
//!
//! Prints `Hello` (t=2 s), `World` (t=5 s), `Beautiful` (t=5 s, two seconds late), one per
//! line. The paper's program then runs until a signal; this one stops once both have printed.
//! `--scale FACTOR` (default 1) multiplies every delay and the sleep, for tests.
//!
//! Run: `cargo run --example blocking`

mod common;

use std::time::Duration;

use common::Opt;
use twistor::Deferred;
use twistor::defer::gather_results;
use twistor::reactor::Reactor;

/// Calls `f` after `seconds` and fires the returned Deferred with its value (as in the
/// `run_later` example).
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

/// Blocks the whole reactor for `seconds`, then prints.
fn sleep_then_print(seconds: f64, value: &str) {
    std::thread::sleep(Duration::from_secs_f64(seconds));
    println!("{value}");
}

fn main() {
    // `parse` keeps the scale within 0..=1e6, so the scaled sleep is a valid Duration.
    let args = common::parse("blocking", &[Opt::Scale]);
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("blocking: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };

    let sleep = args.secs(3.0);
    let d = run_later(&reactor, args.secs(2.0), || print_stuff("Hello"))
        .add_callback(move |()| sleep_then_print(sleep, "World"));
    let beautiful = run_later(&reactor, args.secs(3.0), || print_stuff("Beautiful"));

    // Not in the paper (whose program runs until a signal): stop once both chains have run.
    // Stopping right after `World` would lose `Beautiful`: the reactor shuts down at the end
    // of the pass over timed calls that printed `World`, before `Beautiful`'s call runs.
    let r = reactor.clone();
    gather_results([d, beautiful]).add_callback(move |_| {
        let _ = r.stop();
    });

    if let Err(e) = reactor.run() {
        eprintln!("blocking: the reactor failed: {e}");
        std::process::exit(1);
    }
    common::report_exit_signal(reactor.exit_signal());
}

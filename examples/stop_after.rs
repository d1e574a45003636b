//! The paper's third program: an event based on elapsed time, `call_later(5, stop)`.
//!
//! The paper: this "will print 'Hello, World!' as above, and then wait five seconds before
//! shutting down the reactor and exiting cleanly". The reactor calls our code, and when our
//! code is done, control returns to the reactor.
//!
//! ```python
//! from twisted.internet import reactor
//!
//! def print_world():
//!    print 'World!'
//!
//! reactor.callLater(5, reactor.stop)
//!
//! print 'Hello ',
//! reactor.callWhenRunning(print_world)
//!
//! reactor.run()
//! ```
//!
//! `--scale FACTOR` (default 1) multiplies the five seconds, for tests.
//!
//! Run: `cargo run --example stop_after`

mod common;

use std::io::Write;

use common::Opt;
use twistor::reactor::Reactor;

fn print_world() {
    println!("World!");
}

fn main() {
    let args = common::parse("stop_after", &[Opt::Scale]);
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stop_after: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    let r = reactor.clone();
    reactor.call_later(args.secs(5.0), move || {
        let _ = r.stop();
    });

    print!("Hello, ");
    let _ = std::io::stdout().flush();
    reactor.call_when_running(print_world);

    if let Err(e) = reactor.run() {
        eprintln!("stop_after: the reactor failed: {e}");
        std::process::exit(1);
    }
    // A signal still stops it early, gracefully.
    common::report_exit_signal(reactor.exit_signal());
}

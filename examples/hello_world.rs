//! The paper's second program: register our own event with `call_when_running`.
//!
//! The paper: "The reactor will print 'Hello', and then print 'World!' once it starts running,
//! and then it will loop forever as before", that is until a signal (Ctrl-C or SIGTERM) stops
//! it; it then exits cleanly with code 0.
//!
//! ```python
//! from twisted.internet import reactor
//!
//! def print_world():
//!    print 'World!'
//!
//! print 'Hello ',
//! reactor.callWhenRunning(print_world)
//! reactor.run()
//! ```
//!
//! For tests, `--stop-after SECS` stops the reactor after SECS seconds (times `--scale FACTOR`,
//! default 1); without it the program runs until a signal, as in the paper.
//!
//! Run: `cargo run --example hello_world` (then press Ctrl-C), or
//! `cargo run --example hello_world -- --stop-after 2`

mod common;

use std::io::Write;

use common::Opt;
use twistor::reactor::Reactor;

fn print_world() {
    println!("World!");
}

fn main() {
    let args = common::parse("hello_world", &[Opt::StopAfter, Opt::Scale]);
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hello_world: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    if let Some(secs) = args.stop_after {
        let r = reactor.clone();
        reactor.call_later(args.secs(secs), move || {
            let _ = r.stop();
        });
    }
    // Python 2's `print 'Hello ',`: no newline, so flush by hand.
    print!("Hello ");
    let _ = std::io::stdout().flush();
    reactor.call_when_running(print_world);
    if let Err(e) = reactor.run() {
        eprintln!("hello_world: the reactor failed: {e}");
        std::process::exit(1);
    }
    common::report_exit_signal(reactor.exit_signal());
}

//! The paper's simplest possible Twisted program: print `Hello`, then run the reactor.
//!
//! The paper: this "will print 'Hello' and then run until it is interrupted with a signal
//! (another event)". Ctrl-C (SIGINT) or SIGTERM stops the reactor gracefully: `run()` returns,
//! the program says which signal stopped it (on stderr) and exits with code 0.
//!
//! ```python
//! from twisted.internet import reactor
//!
//! print 'Hello'
//! reactor.run()
//! ```
//!
//! Run: `cargo run --example hello` (then press Ctrl-C)

mod common;

use twistor::reactor::Reactor;

fn main() {
    // No options besides --help; a stray argument is a usage error (exit code 2).
    common::parse("hello", &[]);
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hello: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    println!("Hello");
    // `run` installs SIGINT and SIGTERM handlers that stop the reactor.
    if let Err(e) = reactor.run() {
        eprintln!("hello: the reactor failed: {e}");
        std::process::exit(1);
    }
    common::report_exit_signal(reactor.exit_signal());
}

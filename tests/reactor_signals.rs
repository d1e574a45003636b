//! Signal handling that needs its own process: the test re-runs this test binary as a child.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

use twistor::reactor::Reactor;

const CHILD_ENV: &str = "TWISTOR_SIGNAL_CHILD";

/// The child's part: run a reactor with signal handlers, let it stop, then raise SIGINT.
#[test]
fn child_scenario_sigint_after_run() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // only meaningful as the child of the test below
    }
    let reactor = Reactor::new().expect("reactor");
    let r = reactor.clone();
    reactor.call_later(0.01, move || {
        let _ = r.stop();
    });
    reactor.run().expect("run");
    // SAFETY: raising a signal in our own process.
    unsafe { libc::raise(libc::SIGINT) };
    std::thread::sleep(Duration::from_millis(500));
    println!("still alive after SIGINT");
    std::process::exit(0);
}

/// After `run()` returns, SIGINT has its default effect again (the process dies), as Twisted
/// restores the previous handlers.
#[test]
fn sigint_after_run_returns_has_default_effect() {
    let exe = std::env::current_exe().expect("test binary");
    let start = Instant::now();
    let out = Command::new(exe)
        .args([
            "--exact",
            "child_scenario_sigint_after_run",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run child");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGINT),
        "child: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("still alive"));
}

//! The paper's five reactor programs ("The Reactor" section) run as subprocesses and behave as
//! the paper says: what they print, in which order, when, and how they stop.
//!
//! Delays are scaled with `--scale` (0.05: the paper's five seconds become 250 ms). Times are
//! measured in this process from just before the spawn, so they are never earlier than the
//! scaled delays (timers never fire early); upper bounds are generous for a loaded machine.

mod util;

use std::time::Duration;

use util::{Finished, RunningExample, TimedLine, spawn_example};

const SCALE: &str = "0.05";
/// One paper second at `SCALE`.
const SEC: Duration = Duration::from_millis(50);
/// The bound on every wait: a program that takes longer has failed.
const LIMIT: Duration = Duration::from_secs(2);
/// Slack for the time between a child's print and this process reading the line.
const READ_SLACK: Duration = Duration::from_millis(30);

fn texts(lines: &[TimedLine]) -> Vec<&str> {
    lines.iter().map(|(_, l)| l.as_str()).collect()
}

fn assert_clean_exit(name: &str, f: &Finished) {
    assert_eq!(
        f.status.code(),
        Some(0),
        "{name} did not exit cleanly ({:?}); stderr: {:?}",
        f.status,
        f.stderr
    );
    let lower = f.stderr.to_lowercase();
    for alarming in ["panic", "error", "warn", "backtrace"] {
        assert!(
            !lower.contains(alarming),
            "{name} printed something alarming to stderr: {:?}",
            f.stderr
        );
    }
}

fn assert_between(what: &str, t: Duration, low: Duration, high: Duration) {
    assert!(
        low <= t && t <= high,
        "{what} at {t:?}, expected between {low:?} and {high:?}"
    );
}

/// Waits for `first_line`, then for `p`'s signal handlers, sends `sig` and expects a clean
/// exit within 2 s that names the signal on stderr.
fn interrupt(mut p: RunningExample, name: &str, first_line: &str, sig: i32) {
    let (_, line) = p.next_line(LIMIT);
    assert_eq!(line, first_line, "{name}'s first line");
    // `hello` prints before `run()` installs the handlers: a signal sent before would kill
    // it (as it would interrupt the paper's Python program), one sent while signal-hook
    // installs them would be lost. So wait until the child sleeps with handlers installed.
    p.wait_for_signal_handlers(&[libc::SIGINT, libc::SIGTERM], LIMIT);
    p.signal(sig);
    let f = p.wait(LIMIT);
    eprintln!(
        "{name}: signal {sig} handled, exited {:?} after the spawn",
        f.elapsed
    );
    assert_clean_exit(name, &f);
    assert_eq!(
        f.stderr.trim(),
        format!(
            "stopped by signal {sig} ({})",
            if sig == libc::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            }
        ),
        "{name}: the reactor reports the signal that stopped it"
    );
    assert!(
        f.lines.is_empty(),
        "{name} printed more: {:?}",
        texts(&f.lines)
    );
}

#[test]
fn hello_runs_until_sigint() {
    interrupt(spawn_example("hello", &[]), "hello", "Hello", libc::SIGINT);
}

#[test]
fn hello_runs_until_sigterm() {
    interrupt(spawn_example("hello", &[]), "hello", "Hello", libc::SIGTERM);
}

#[test]
fn hello_world_runs_until_sigint() {
    interrupt(
        spawn_example("hello_world", &[]),
        "hello_world",
        "Hello World!",
        libc::SIGINT,
    );
}

#[test]
fn hello_world_runs_until_sigterm() {
    interrupt(
        spawn_example("hello_world", &[]),
        "hello_world",
        "Hello World!",
        libc::SIGTERM,
    );
}

#[test]
fn hello_is_still_running_without_a_signal() {
    let mut p = spawn_example("hello", &[]);
    assert_eq!(p.next_line(LIMIT).1, "Hello");
    std::thread::sleep(Duration::from_millis(200));
    p.wait_for_signal_handlers(&[libc::SIGINT], LIMIT);
    // Still there: run() only returns on a signal.
    p.signal(libc::SIGINT);
    let f = p.wait(LIMIT);
    assert!(
        f.elapsed >= Duration::from_millis(200),
        "hello exited early, at {:?}",
        f.elapsed
    );
    assert_clean_exit("hello", &f);
}

#[test]
fn hello_world_stop_after() {
    // 4 s at scale 0.05: 200 ms.
    let mut p = spawn_example("hello_world", &["--stop-after", "4", "--scale", SCALE]);
    let (at, line) = p.next_line(LIMIT);
    assert_eq!(line, "Hello World!");
    let f = p.wait(LIMIT);
    eprintln!(
        "hello_world --stop-after: printed at {at:?}, exit {:?}",
        f.elapsed
    );
    assert_clean_exit("hello_world", &f);
    assert_eq!(f.stderr, "", "not stopped by a signal");
    assert_between("exit", f.elapsed, 4 * SEC, LIMIT);
    assert!(
        f.elapsed - at >= 4 * SEC - READ_SLACK,
        "printed at {at:?}, exited at {:?}: it should wait after printing",
        f.elapsed
    );
}

#[test]
fn stop_after_prints_then_stops_after_five_seconds() {
    let mut p = spawn_example("stop_after", &["--scale", SCALE]);
    let (at, line) = p.next_line(LIMIT);
    assert_eq!(line, "Hello, World!");
    let f = p.wait(LIMIT);
    eprintln!("stop_after: printed at {at:?}, exit {:?}", f.elapsed);
    assert_clean_exit("stop_after", &f);
    assert_eq!(f.stderr, "");
    assert!(f.lines.is_empty(), "printed more: {:?}", texts(&f.lines));
    assert_between("exit", f.elapsed, 5 * SEC, LIMIT);
    assert!(
        f.elapsed - at >= 5 * SEC - READ_SLACK,
        "printed at {at:?}, exited at {:?}: it should print first, then wait 5 s",
        f.elapsed
    );
}

#[test]
fn run_later_hello_beautiful_world() {
    let f = spawn_example("run_later", &["--scale", SCALE]).wait(LIMIT);
    assert_clean_exit("run_later", &f);
    assert_eq!(texts(&f.lines), ["Hello", "Beautiful", "World"]);
    let (hello, beautiful, world) = (f.lines[0].0, f.lines[1].0, f.lines[2].0);
    eprintln!(
        "run_later: Hello {hello:?}, Beautiful {beautiful:?}, World {world:?}, exit {:?}",
        f.elapsed
    );
    assert_between("Hello", hello, 2 * SEC, LIMIT);
    assert_between("Beautiful", beautiful, 3 * SEC, LIMIT);
    assert_between("World", world, 5 * SEC, LIMIT);
    // World is scheduled by Hello's callback: three seconds after Hello.
    assert!(
        world - hello >= 3 * SEC - READ_SLACK,
        "World {world:?} should come 3 s after Hello {hello:?}"
    );
    // The program stops once World has printed.
    assert!(f.elapsed >= world, "exit {:?} before World", f.elapsed);
}

#[test]
fn blocking_hello_world_beautiful() {
    let f = spawn_example("blocking", &["--scale", SCALE]).wait(LIMIT);
    assert_clean_exit("blocking", &f);
    assert_eq!(texts(&f.lines), ["Hello", "World", "Beautiful"]);
    let (hello, world, beautiful) = (f.lines[0].0, f.lines[1].0, f.lines[2].0);
    eprintln!(
        "blocking: Hello {hello:?}, World {world:?}, Beautiful {beautiful:?}, exit {:?}",
        f.elapsed
    );
    assert_between("Hello", hello, 2 * SEC, LIMIT);
    // The callback sleeps 3 s after Hello, blocking the reactor...
    assert!(
        world - hello >= 3 * SEC - READ_SLACK,
        "World {world:?} should come 3 s after Hello {hello:?}"
    );
    // ...so Beautiful, due at 3 s, runs only after the sleep, at 5 s.
    assert_between("Beautiful", beautiful, 5 * SEC, LIMIT);
    assert!(beautiful >= world);
}

#[test]
fn bad_arguments_print_usage_and_exit_2() {
    let cases: &[(&str, &[&str])] = &[
        ("hello", &["--scale", "1"]),
        ("hello", &["extra"]),
        ("hello_world", &["--stop-after"]),
        ("hello_world", &["--stop-after", "soon"]),
        ("hello_world", &["--stop-after=-1"]),
        ("stop_after", &["--scale", "abc"]),
        ("stop_after", &["--scale", "-1"]),
        ("stop_after", &["--scale", "NaN"]),
        ("stop_after", &["--scale", "inf"]),
        ("stop_after", &["--stop-after", "1"]),
        ("run_later", &["--scale"]),
        ("run_later", &["--scale", "1e300"]),
        ("blocking", &["--scale=x"]),
        ("blocking", &["-v"]),
    ];
    for (name, args) in cases {
        let f = spawn_example(name, args).wait(LIMIT);
        let what = format!("{name} {args:?}");
        assert_eq!(f.status.code(), Some(2), "{what}: {f:?}");
        assert!(f.lines.is_empty(), "{what} printed {:?}", texts(&f.lines));
        assert!(
            f.stderr.contains(&format!("usage: {name}")),
            "{what}: no usage message in {:?}",
            f.stderr
        );
        assert!(!f.stderr.contains("panic"), "{what}: {:?}", f.stderr);
    }
}

#[test]
fn help_prints_usage_and_exits_0() {
    for name in [
        "hello",
        "hello_world",
        "stop_after",
        "run_later",
        "blocking",
    ] {
        let f = spawn_example(name, &["--help"]).wait(LIMIT);
        assert_eq!(f.status.code(), Some(0), "{name} --help: {f:?}");
        assert!(
            f.lines
                .first()
                .is_some_and(|(_, l)| l.starts_with(&format!("usage: {name}"))),
            "{name} --help printed {:?}",
            texts(&f.lines)
        );
    }
}

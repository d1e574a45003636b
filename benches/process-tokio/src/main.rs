//! Spawn + wait of `/bin/true`, one child at a time and 32 at a time, per second: std's
//! `Command` (the floor: no event loop at all), twistor's `spawn_process` and tokio's
//! `process::Command`, each with the child's stdio inherited and with three pipes.
//!
//! Usage: `process-bench [SECONDS-PER-CASE]` (default 2).

use std::cell::Cell;
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::Failure;
use twistor::reactor::Reactor;
use twistor::transport::process::{
    ChildFd, ProcessProtocol, ProcessTransport, SpawnOptions, spawn_process,
};

const TRUE: &str = "/bin/true";

/// CPU seconds (user + system) of this process, or of its reaped children.
fn cpu(who: i32) -> f64 {
    // SAFETY: getrusage fills a plain struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(who, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn rate(name: &str, secs: f64, mut batch: impl FnMut() -> usize) {
    // Warm up, then count children per second. The parent's CPU time per child is the
    // figure that holds on a busy machine (wall time there is mostly other processes').
    batch();
    let start = Instant::now();
    let (c0, k0) = (cpu(libc::RUSAGE_SELF), cpu(libc::RUSAGE_CHILDREN));
    let mut n = 0;
    while start.elapsed().as_secs_f64() < secs {
        n += batch();
    }
    let per_sec = n as f64 / start.elapsed().as_secs_f64();
    let parent_us = (cpu(libc::RUSAGE_SELF) - c0) / n as f64 * 1e6;
    let child_us = (cpu(libc::RUSAGE_CHILDREN) - k0) / n as f64 * 1e6;
    println!(
        "{name:<54} {per_sec:>7.0} /s   parent CPU {parent_us:>6.1} us/child   child CPU {child_us:>6.1} us"
    );
}

struct Ended(Rc<Cell<usize>>);

impl ProcessProtocol for Ended {
    fn process_ended(&mut self, _t: &ProcessTransport, _r: Failure) {
        self.0.set(self.0.get() + 1);
    }
}

fn twistor_batch(reactor: &Reactor, k: usize, pipes: bool) -> usize {
    let ended = Rc::new(Cell::new(0));
    for _ in 0..k {
        let opts = if pipes {
            SpawnOptions::new()
        } else {
            SpawnOptions::new().child_fds([
                (0, ChildFd::Inherit(0)),
                (1, ChildFd::Inherit(1)),
                (2, ChildFd::Inherit(2)),
            ])
        };
        spawn_process(reactor, Ended(ended.clone()), TRUE, &["true"], opts).expect("spawn");
    }
    while ended.get() < k {
        reactor
            .iterate(Duration::from_millis(100))
            .expect("iterate");
    }
    k
}

fn std_batch(k: usize, pipes: bool) -> usize {
    let mut children = Vec::with_capacity(k);
    for _ in 0..k {
        let mut c = std::process::Command::new(TRUE);
        if pipes {
            c.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        children.push(c.spawn().expect("spawn"));
    }
    for mut c in children {
        c.wait().expect("wait");
    }
    k
}

async fn tokio_batch(k: usize, pipes: bool) -> usize {
    let mut children = Vec::with_capacity(k);
    for _ in 0..k {
        let mut c = tokio::process::Command::new(TRUE);
        if pipes {
            c.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        children.push(c.spawn().expect("spawn"));
    }
    for mut c in children {
        // With pipes, read to the end as a protocol would (the child writes nothing).
        if pipes {
            drop(c.stdin.take());
            let out = c.wait_with_output().await.expect("wait");
            assert!(out.status.success());
        } else {
            c.wait().await.expect("wait");
        }
    }
    k
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let reactor = Reactor::new().expect("reactor");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    for k in [1, 32] {
        for pipes in [false, true] {
            let what = format!(
                "{} at a time, {}",
                k,
                if pipes { "3 pipes" } else { "stdio inherited" }
            );
            rate(&format!("std Command ({what})"), secs, || {
                std_batch(k, pipes)
            });
            rate(&format!("tokio::process ({what})"), secs, || {
                rt.block_on(tokio_batch(k, pipes))
            });
            rate(&format!("twistor spawn_process ({what})"), secs, || {
                twistor_batch(&reactor, k, pipes)
            });
        }
    }
}

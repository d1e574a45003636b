//! Many short children spawned and reaped concurrently: none is left a zombie and no
//! descriptor is left open. In a test binary of its own, so that no other test's children
//! or descriptors are counted.
//!
//! The default is the full thousand (about a second); `TWISTOR_PROCESS_CHILDREN=N` runs
//! another count.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::prelude::*;
use twistor::transport::process::spawn_process;
use twistor::transport::process::{ProcessDone, ProcessProtocol, ProcessTransport, SpawnOptions};

struct Short {
    ended: Rc<Cell<usize>>,
    done: Rc<Cell<usize>>,
}

impl ProcessProtocol for Short {
    fn process_ended(&mut self, _t: &ProcessTransport, reason: Failure) {
        self.ended.set(self.ended.get() + 1);
        if reason.is::<ProcessDone>() {
            self.done.set(self.done.get() + 1);
        }
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Children of this process still in the process table (zombies included).
fn children() -> usize {
    let mut n = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            n += list.split_whitespace().count();
        }
    }
    n
}

#[test]
fn many_short_children_leave_no_zombie_and_no_descriptor() {
    let count: usize = std::env::var("TWISTOR_PROCESS_CHILDREN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let reactor = Reactor::new().unwrap();
    let fds_before = open_fds();
    let ended = Rc::new(Cell::new(0));
    let done = Rc::new(Cell::new(0));
    let mut pids = Vec::new();
    for _ in 0..count {
        let t = spawn_process(
            &reactor,
            Short {
                ended: ended.clone(),
                done: done.clone(),
            },
            "/bin/true",
            &["true"],
            SpawnOptions::new(),
        )
        .unwrap();
        pids.push(t.pid().unwrap());
    }
    let start = Instant::now();
    while ended.get() < count {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} of {count}",
            ended.get()
        );
        reactor.iterate(Duration::from_millis(20)).unwrap();
    }
    assert_eq!(done.get(), count, "every child exited 0");
    assert_eq!(children(), 0, "no zombie left");
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| !s.contains(") Z "))
                    .unwrap_or(true),
            "pid {pid} is a zombie"
        );
    }
    // Let closes reported on later steps happen.
    for _ in 0..3 {
        reactor.iterate(Duration::from_millis(5)).unwrap();
    }
    assert_eq!(open_fds(), fds_before, "no descriptor left open");
}

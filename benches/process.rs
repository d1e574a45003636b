//! Spawn + wait of `/bin/true`: twistor's `spawn_process` (reaped through its pidfd) against
//! std's `Command::spawn` + `wait` (the floor: no event loop at all), with three pipes, one
//! child at a time.
//!
//! The comparison with `tokio::process` (and the Twisted figure beside it) is the crate in
//! `benches/process-tokio/`, so that tokio is never a dependency of twistor.

use std::cell::Cell;
use std::process::Stdio;
use std::rc::Rc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use twistor::Failure;
use twistor::reactor::Reactor;
use twistor::transport::process::{ProcessProtocol, ProcessTransport, SpawnOptions, spawn_process};

struct Ended(Rc<Cell<bool>>);

impl ProcessProtocol for Ended {
    fn process_ended(&mut self, _t: &ProcessTransport, _r: Failure) {
        self.0.set(true);
    }
}

fn spawn_wait(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn + wait /bin/true");
    g.sample_size(50);
    let reactor = Reactor::new().unwrap();
    g.bench_function("twistor spawn_process, 3 pipes", |b| {
        b.iter(|| {
            let ended = Rc::new(Cell::new(false));
            spawn_process(
                &reactor,
                Ended(ended.clone()),
                "/bin/true",
                &["true"],
                SpawnOptions::new(),
            )
            .unwrap();
            while !ended.get() {
                reactor.iterate(Duration::from_millis(100)).unwrap();
            }
        })
    });
    g.bench_function("std Command spawn + wait, 3 pipes (floor)", |b| {
        b.iter(|| {
            let mut child = std::process::Command::new("/bin/true")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.wait().unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, spawn_wait);
criterion_main!(benches);

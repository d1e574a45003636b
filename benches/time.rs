//! Timer benchmarks on `Clock` (and so on the `TimerQueue` behind it).
//!
//! Each iteration works on N = 100,000 calls with random delays; throughput is set to N, so
//! criterion reports time per call (and calls per second).
//! * `clock/schedule_cancel_half_fire`: schedule N, cancel every other one, advance until all
//!   the rest fired.
//! * `clock/schedule`: schedule N (the clock, with its calls, is dropped outside the timing).
//! * `clock/cancel`: cancel N already-scheduled calls.
//! * `clock/fire`: advance until N scheduled calls fired.

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use twistor::task::Clock;
use twistor::time::DelayedCall;

const N: usize = 100_000;

/// Tiny xorshift64: random delays without a new dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A delay in [0, 1000) seconds with millisecond resolution.
    fn delay(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1000.0
    }
}

fn delays() -> Vec<f64> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    (0..N).map(|_| rng.delay()).collect()
}

fn schedule_all(clock: &Clock, delays: &[f64], hits: &Rc<Cell<u64>>) -> Vec<DelayedCall> {
    delays
        .iter()
        .map(|&d| {
            let h = hits.clone();
            clock.call_later(d, move || h.set(h.get() + 1))
        })
        .collect()
}

fn bench_clock(c: &mut Criterion) {
    let delays = delays();
    let mut group = c.benchmark_group("clock");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(20);

    group.bench_function("schedule_cancel_half_fire", |b| {
        b.iter(|| {
            let clock = Clock::new();
            let hits = Rc::new(Cell::new(0));
            let calls = schedule_all(&clock, &delays, &hits);
            for call in calls.iter().step_by(2) {
                call.cancel().unwrap();
            }
            clock.advance(1000.0);
            assert_eq!(hits.get(), (N / 2) as u64);
            black_box(calls)
        })
    });

    group.bench_function("schedule", |b| {
        b.iter_batched(
            || (Clock::new(), Rc::new(Cell::new(0))),
            |(clock, hits)| {
                let calls = schedule_all(&clock, &delays, &hits);
                (clock, calls)
            },
            BatchSize::PerIteration,
        )
    });

    group.bench_function("cancel", |b| {
        b.iter_batched(
            || {
                let clock = Clock::new();
                let calls = schedule_all(&clock, &delays, &Rc::new(Cell::new(0)));
                (clock, calls)
            },
            |(clock, calls)| {
                for call in &calls {
                    call.cancel().unwrap();
                }
                (clock, calls)
            },
            BatchSize::PerIteration,
        )
    });

    group.bench_function("fire", |b| {
        b.iter_batched(
            || {
                let clock = Clock::new();
                let hits = Rc::new(Cell::new(0));
                let calls = schedule_all(&clock, &delays, &hits);
                (clock, calls, hits)
            },
            |(clock, calls, hits)| {
                clock.advance(1000.0);
                assert_eq!(hits.get(), N as u64);
                (clock, calls)
            },
            BatchSize::PerIteration,
        )
    });

    group.finish();
}

criterion_group!(benches, bench_clock);
criterion_main!(benches);

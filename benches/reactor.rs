//! Reactor benchmarks on real time and real threads, shaped like the peers' micro benchmarks
//! (Twisted: 100k timers half cancelled on the real reactor, a LoopingCall of interval 0 per
//! iteration; tokio: 100k sleep tasks half cancelled, a `yield_now` loop iteration), plus the
//! raw-descriptor path (`add_reader`).
//!
//! Timed with `iter_custom`; the "fired" benchmark returns the process CPU time spent while the
//! reactor ran its timers (the wall time is the 1 s spread of the deadlines), as the Twisted
//! peer measures it.

use std::cell::Cell;
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use twistor::reactor::Reactor;
use twistor::task::{LoopingCall, LoopingOptions};
use twistor::time::DelayedCall;

const N: usize = 100_000;

/// xorshift64*: deterministic delays in [0, 1) without a dependency.
struct Rng(u64);
impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn schedule(reactor: &Reactor, fired: &Rc<Cell<usize>>, rng: &mut Rng) -> Vec<DelayedCall> {
    (0..N)
        .map(|_| {
            let f = fired.clone();
            reactor.call_later(rng.next_f64(), move || f.set(f.get() + 1))
        })
        .collect()
}

fn timers(c: &mut Criterion) {
    let mut g = c.benchmark_group("real_reactor_100k_half_cancelled");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("schedule", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let reactor = Reactor::new().expect("reactor");
                let fired = Rc::new(Cell::new(0));
                let mut rng = Rng(42 + i);
                let t = Instant::now();
                let calls = schedule(&reactor, &fired, &mut rng);
                total += t.elapsed();
                black_box(calls);
            }
            total
        })
    });
    g.throughput(Throughput::Elements((N / 2) as u64));
    g.bench_function("cancel_half", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let reactor = Reactor::new().expect("reactor");
                let fired = Rc::new(Cell::new(0));
                let calls = schedule(&reactor, &fired, &mut Rng(42 + i));
                let t = Instant::now();
                for c in calls.iter().skip(1).step_by(2) {
                    let _ = c.cancel();
                }
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function("run_until_all_fired_cpu", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let reactor = Reactor::new().expect("reactor");
                let fired = Rc::new(Cell::new(0));
                let calls = schedule(&reactor, &fired, &mut Rng(42 + i));
                for c in calls.iter().skip(1).step_by(2) {
                    let _ = c.cancel();
                }
                drop(calls);
                let want = N - N / 2;
                let (r, f) = (reactor.clone(), fired.clone());
                // Stop as soon as the last timer fired: check after every timed call pass.
                let check = LoopingCall::new(reactor.clone(), move || {
                    if f.get() >= want {
                        let _ = r.stop();
                    }
                });
                let _ = check.start_with(0.01, LoopingOptions { now: false });
                let t = cpu_time();
                reactor.run_without_signal_handlers().expect("run");
                total += cpu_time() - t;
                assert_eq!(fired.get(), want);
            }
            total
        })
    });
    g.finish();
}

/// A `call_later(0)` that schedules the next one: per loop iteration.
fn call_later_zero_loop(c: &mut Criterion) {
    let mut g = c.benchmark_group("call_later_0_loop");
    g.throughput(Throughput::Elements(1));
    g.bench_function("per_iteration", |b| {
        b.iter_custom(|iters| {
            let reactor = Reactor::new().expect("reactor");
            let left = Rc::new(Cell::new(iters));
            fn step(r: Reactor, left: Rc<Cell<u64>>) {
                if left.get() == 0 {
                    let _ = r.stop();
                    return;
                }
                left.set(left.get() - 1);
                let r2 = r.clone();
                r.call_later(0.0, move || step(r2, left));
            }
            let (r, l) = (reactor.clone(), left.clone());
            reactor.call_when_running(move || step(r, l));
            let t = Instant::now();
            reactor.run_without_signal_handlers().expect("run");
            t.elapsed()
        })
    });
    g.bench_function("looping_call_interval_0", |b| {
        b.iter_custom(|iters| {
            let reactor = Reactor::new().expect("reactor");
            let count = Rc::new(Cell::new(0u64));
            let (c, r) = (count.clone(), reactor.clone());
            let lc = LoopingCall::new(reactor.clone(), move || {
                c.set(c.get() + 1);
                if c.get() >= iters {
                    let _ = r.stop();
                }
            });
            let t = Instant::now();
            let _ = lc.start(0.0);
            reactor.run_without_signal_handlers().expect("run");
            t.elapsed()
        })
    });
    g.finish();
}

/// `call_from_thread` from one other thread: calls per second through the queue and waker.
fn call_from_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("call_from_thread");
    g.throughput(Throughput::Elements(1));
    g.bench_function("one_producer", |b| {
        b.iter_custom(|iters| {
            let reactor = Reactor::new().expect("reactor");
            let handle = reactor.thread_handle();
            let t = Instant::now();
            let producer = std::thread::spawn(move || {
                for i in 0..iters {
                    let last = i + 1 == iters;
                    handle.call_from_thread(move |r| {
                        if last {
                            let _ = r.stop();
                        }
                    });
                }
            });
            reactor.run_without_signal_handlers().expect("run");
            let el = t.elapsed();
            producer.join().expect("producer");
            el
        })
    });
    g.finish();
}

/// Raw descriptors: one handler call per turn on a socket that stays readable (the handler
/// reads one byte: the registry lookup, the handler, the `poll(2)` "still ready" check and a
/// turn), and the cost of watching and unwatching a descriptor (add_reader + guard drop: the
/// registry insert and removal and two epoll_ctl calls).
fn fd_dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("fd");
    g.throughput(Throughput::Elements(1));
    g.bench_function("reader_call_per_turn", |b| {
        b.iter_custom(|iters| {
            let reactor = Reactor::new().expect("reactor");
            let (a, r) = UnixStream::pair().expect("pair");
            r.set_nonblocking(true).expect("nonblocking");
            a.set_nonblocking(true).expect("nonblocking");
            let r = Rc::new(r);
            let sock = r.clone();
            let left = Rc::new(Cell::new(iters));
            let l = left.clone();
            // Refilled whenever it runs low, so the socket never stops being readable.
            let writer = Rc::new(a);
            let w = writer.clone();
            let _ = (&*w).write(&[0u8; 4096]);
            let _watch = reactor
                .add_reader(r, move |re| {
                    let mut byte = [0u8; 1];
                    let _ = (&*sock).read(&mut byte);
                    l.set(l.get() - 1);
                    if l.get() % 2048 == 0 {
                        let _ = (&*w).write(&[0u8; 2048]);
                    }
                    if l.get() == 0 {
                        let _ = re.stop();
                    }
                })
                .expect("watch");
            let t = Instant::now();
            reactor.run_without_signal_handlers().expect("run");
            t.elapsed()
        })
    });
    g.bench_function("add_reader_and_drop_guard", |b| {
        let reactor = Reactor::new().expect("reactor");
        let (_a, r) = UnixStream::pair().expect("pair");
        let r = Rc::new(r);
        b.iter(|| {
            let w = reactor.add_reader(r.clone(), |_| ()).expect("watch");
            black_box(&w);
            drop(w);
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    call_later_zero_loop,
    call_from_thread,
    timers,
    fd_dispatch
);
criterion_main!(benches);

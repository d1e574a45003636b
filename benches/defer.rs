//! Deferred micro-benchmarks (peers to compare with: a tokio oneshot and Twisted's Deferred).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use twistor::Deferred;
use twistor::defer::gather_results;
use twistor::testing::success_result_of;

/// Create a Deferred, add three callbacks, fire it, read the result
/// (tokio peer: oneshot create/send/await; Twisted peer: the same with `defer.Deferred`).
fn create_add3_fire(c: &mut Criterion) {
    c.bench_function("deferred/create_add3_fire", |b| {
        b.iter(|| {
            let (d, fire) = Deferred::<u64>::new();
            let tail = d
                .add_callback(|x| x + 1)
                .add_callback(|x| x * 2)
                .add_callback(|x| x + 3);
            fire.callback(black_box(1)).unwrap();
            black_box(success_result_of(&tail))
        })
    });
}

/// Per-callback cost of a 1000-callback chain, against running the same closures from a
/// plain `Vec<Box<dyn FnOnce>>` in the same group.
fn chain_1000(c: &mut Criterion) {
    let mut g = c.benchmark_group("chain_1000");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("deferred", |b| {
        b.iter(|| {
            let (mut tail, fire) = Deferred::<u64>::new();
            for _ in 0..1000 {
                tail = tail.add_callback(|x| x + 1);
            }
            fire.callback(black_box(0)).unwrap();
            black_box(success_result_of(&tail))
        })
    });
    g.bench_function("vec_box_fnonce", |b| {
        b.iter(|| {
            let mut v: Vec<Box<dyn FnOnce(u64) -> u64>> = Vec::new();
            for _ in 0..1000 {
                v.push(Box::new(|x| x + 1));
            }
            let mut x = black_box(0u64);
            for f in v {
                x = f(x);
            }
            black_box(x)
        })
    });
    g.finish();
}

/// A callback returning an already-fired Deferred (the chain steals its result), per step.
fn chain_fired_deferred(c: &mut Criterion) {
    let mut g = c.benchmark_group("callback_returns_fired_deferred");
    g.throughput(Throughput::Elements(100));
    g.bench_function("100_steps", |b| {
        b.iter_batched(
            Deferred::<u64>::new,
            |(d, fire)| {
                let mut tail = d;
                for _ in 0..100 {
                    tail = tail.add_callback_deferred(|x| Deferred::succeed(x + 1));
                }
                fire.callback(0).unwrap();
                black_box(success_result_of(&tail))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// `gather_results` over 1000 already-fired Deferreds, per input (creation included, as in
/// the Twisted and tokio peers).
fn gather_1000_fired(c: &mut Criterion) {
    let mut g = c.benchmark_group("gather_results_1000_fired");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("per_deferred", |b| {
        b.iter(|| {
            let ds: Vec<Deferred<u64>> = (0..1000).map(Deferred::succeed).collect();
            let all = gather_results(ds);
            black_box(success_result_of(&all).len())
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    create_add3_fire,
    chain_1000,
    chain_fired_deferred,
    gather_1000_fired
);
criterion_main!(benches);

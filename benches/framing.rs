//! Framing receivers: lines of 64 bytes through `LineReceiver`, netstrings and int32 strings,
//! each fed in 16 KiB chunks through a `StringTransport`, as a socket's reads would arrive.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use twistor::protocols::basic::{
    Int32StringReceiver, LineContext, LineHandler, LineReceiver, NetstringReceiver, StringContext,
    StringHandler,
};
use twistor::testing::StringTransport;

/// Messages per iteration.
const MESSAGES: usize = 10_000;
/// Bytes per `data_received`, a typical read.
const CHUNK: usize = 16 * 1024;
/// Payload bytes per message.
const PAYLOAD: usize = 64;

struct CountLines(usize);
impl LineHandler for CountLines {
    fn line_received(&mut self, _cx: &LineContext<Self>, line: &[u8]) {
        self.0 += black_box(line).len();
    }
}

struct CountStrings(usize);
impl StringHandler for CountStrings {
    fn string_received(&mut self, _cx: &StringContext<Self>, string: &[u8]) {
        self.0 += black_box(string).len();
    }
}

fn stream(framed: impl Fn(&mut Vec<u8>, &[u8])) -> Vec<u8> {
    let payload = [b'x'; PAYLOAD];
    let mut out = Vec::new();
    for _ in 0..MESSAGES {
        framed(&mut out, &payload);
    }
    out
}

fn feed(st: &StringTransport, bytes: &[u8]) {
    for chunk in bytes.chunks(CHUNK) {
        st.deliver(chunk);
    }
}

fn framing(c: &mut Criterion) {
    let lines = stream(|out, p| {
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    });
    let netstrings = stream(|out, p| {
        out.extend_from_slice(format!("{}:", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.push(b',');
    });
    let int32 = stream(|out, p| {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    });

    let mut g = c.benchmark_group("framing");
    g.throughput(Throughput::Elements(MESSAGES as u64));
    g.bench_function("lines_64", |b| {
        b.iter(|| {
            let st = StringTransport::new();
            let h = st.connect(LineReceiver::new(CountLines(0)));
            feed(&st, &lines);
            black_box(h.with(|r, _| r.handler().0))
        })
    });
    g.bench_function("netstrings_64", |b| {
        b.iter(|| {
            let st = StringTransport::new();
            let h = st.connect(NetstringReceiver::new(CountStrings(0)));
            feed(&st, &netstrings);
            black_box(h.with(|r, _| r.handler().0))
        })
    });
    g.bench_function("int32_64", |b| {
        b.iter(|| {
            let st = StringTransport::new();
            let h = st.connect(Int32StringReceiver::new(CountStrings(0)));
            feed(&st, &int32);
            black_box(h.with(|r, _| r.handler().0))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = framing
}
criterion_main!(benches);

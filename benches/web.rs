//! The HTTP server's per-request cost: a typical keep-alive `GET /` (wrk's request shape)
//! parsed and answered with the 13-byte hello page, through a `StringTransport` (no
//! sockets: the channel, request, traversal and response writing only).

use std::hint::black_box;
use std::rc::Rc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use twistor::testing::{MemoryReactor, StringTransport};
use twistor::web::resource::{Render, Resource, Tree};
use twistor::web::site::AccessLog;
use twistor::web::{HttpLimits, Request, Site};

struct Hello;
impl Resource for Hello {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Option<Render> {
        r.set_header("Content-Type", "text/plain");
        Some(Render::Static(b"Hello, World!"))
    }
}

const GET: &[u8] =
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n";

fn bench(c: &mut Criterion) {
    let root = Tree::new();
    twistor::web::resource::Resource::put_child(&root, b"", Rc::new(Hello));
    let site = Site::with_options(
        Rc::new(root),
        Rc::new(MemoryReactor::new()),
        HttpLimits::default(),
        AccessLog::Off,
    );
    let st = StringTransport::new();
    st.connect(site.channel());
    let mut g = c.benchmark_group("web");
    g.throughput(Throughput::Elements(1));
    g.bench_function("keep-alive GET / hello", |b| {
        b.iter(|| {
            st.deliver(black_box(GET));
            st.clear();
        })
    });
    let pipelined = GET.repeat(16);
    g.throughput(Throughput::Elements(16));
    g.bench_function("16 pipelined GET / hello", |b| {
        b.iter(|| {
            st.deliver(black_box(&pipelined));
            st.clear();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

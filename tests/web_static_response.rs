//! `StaticFiles::respond`: the pieces applied in order to one request (Twisted's
//! test_static `StaticFileTests` and `StaticMakeProducerTests` where they apply), and bodies
//! sent over the in-memory transport and over real TCP with `sendfile`.

mod util;

use std::io::Read;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use twistor::prelude::*;
use twistor::testing::StringTransport;
use twistor::transport::tcp::{ListenOptions, listen_tcp_with};
use twistor::web::Headers;
use twistor::web::date::http_date;
use twistor::web::static_files::response::{Body, StaticFiles, StaticResponse};
use util::bounded;

struct Tree(PathBuf);

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn content() -> Vec<u8> {
    (0..64u8).collect()
}

fn tree(name: &str) -> Tree {
    let root = std::env::temp_dir().join(format!("twistor-resp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("data.bin"), content()).unwrap();
    std::fs::write(root.join("page.html.gz"), b"gz").unwrap();
    std::fs::write(root.join("empty.txt"), b"").unwrap();
    std::fs::write(root.join("sub/<b>.txt"), b"b").unwrap();
    Tree(root)
}

fn get(files: &StaticFiles, method: &str, path: &str, headers: &[(&str, &str)]) -> StaticResponse {
    let mut h = Headers::new();
    for (n, v) in headers {
        h.add(n, v);
    }
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let segments: Vec<Vec<u8>> = p
        .trim_start_matches('/')
        .split('/')
        .map(twistor::web::static_files::listing::percent_decode)
        .collect();
    files.respond(method, &segments, p, q, &h)
}

/// The body as a client would receive it (the fallback path, pulled to the end).
fn body(r: StaticResponse) -> Vec<u8> {
    let st = StringTransport::new();
    let d = r.body.send(&st.transport());
    while let Some((p, _)) = st.producer() {
        p.resume_producing();
    }
    assert!(d.called());
    st.value()
}

fn header<'a>(r: &'a StaticResponse, name: &str) -> Option<&'a str> {
    r.headers.get_str(name)
}

#[test]
fn full_file_with_headers() {
    let t = tree("full");
    let files = StaticFiles::new(&t.0);
    let r = get(&files, "GET", "/data.bin", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "Content-Length"), Some("64"));
    assert_eq!(header(&r, "Content-Type"), Some("application/octet-stream"));
    assert_eq!(header(&r, "Accept-Ranges"), Some("bytes"));
    assert!(header(&r, "Last-Modified").is_some());
    assert!(header(&r, "ETag").is_some());
    assert_eq!(body(r), content());
}

#[test]
fn empty_file_has_empty_body() {
    let t = tree("empty");
    let r = get(&StaticFiles::new(&t.0), "GET", "/empty.txt", &[]);
    assert_eq!((r.status, header(&r, "Content-Length")), (200, Some("0")));
    assert!(matches!(r.body, Body::Empty));
}

#[test]
fn head_sends_headers_only_and_ignores_range() {
    let t = tree("head");
    let r = get(
        &StaticFiles::new(&t.0),
        "HEAD",
        "/data.bin",
        &[("Range", "bytes=0-1")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "Content-Length"), Some("64"));
    assert!(matches!(r.body, Body::Empty));
}

#[test]
fn content_encoding_for_gz() {
    let t = tree("gz");
    let r = get(&StaticFiles::new(&t.0), "GET", "/page.html.gz", &[]);
    assert_eq!(header(&r, "Content-Type"), Some("text/html"));
    assert_eq!(header(&r, "Content-Encoding"), Some("gzip"));
}

#[test]
fn not_modified_and_precondition_failed() {
    let t = tree("cond");
    let files = StaticFiles::new(&t.0);
    let first = get(&files, "GET", "/data.bin", &[]);
    let etag = header(&first, "ETag").unwrap().to_owned();
    let lm = header(&first, "Last-Modified").unwrap().to_owned();
    let r = get(&files, "GET", "/data.bin", &[("If-Modified-Since", &lm)]);
    assert_eq!(r.status, 304);
    assert!(matches!(r.body, Body::Empty));
    assert_eq!(header(&r, "ETag"), Some(etag.as_str()));
    assert!(header(&r, "Content-Type").is_none());
    let r = get(&files, "GET", "/data.bin", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    let old = http_date(std::time::UNIX_EPOCH);
    let r = get(&files, "GET", "/data.bin", &[("If-Modified-Since", &old)]);
    assert_eq!(r.status, 200);
    let r = get(&files, "GET", "/data.bin", &[("If-Match", "\"nope\"")]);
    assert_eq!(r.status, 412);
    // Conditions come before Range (as in Twisted).
    let r = get(
        &files,
        "GET",
        "/data.bin",
        &[("If-None-Match", &etag), ("Range", "bytes=0-1")],
    );
    assert_eq!(r.status, 304);
}

#[test]
fn single_range_206() {
    let t = tree("single");
    let r = get(
        &StaticFiles::new(&t.0),
        "GET",
        "/data.bin",
        &[("Range", "bytes=40-100")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(header(&r, "Content-Range"), Some("bytes 40-63/64"));
    assert_eq!(header(&r, "Content-Length"), Some("24"));
    assert_eq!(body(r), content()[40..].to_vec());
}

#[test]
fn multiple_ranges_206_multipart_with_exact_length() {
    let t = tree("multi");
    let r = get(
        &StaticFiles::new(&t.0),
        "GET",
        "/data.bin",
        &[("Range", "bytes=0-2,40-100")],
    );
    assert_eq!(r.status, 206);
    let ct = header(&r, "Content-Type").unwrap().to_owned();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=\"")
        .and_then(|b| b.strip_suffix('"'))
        .unwrap()
        .to_owned();
    let length: usize = header(&r, "Content-Length").unwrap().parse().unwrap();
    let got = body(r);
    assert_eq!(got.len(), length);
    let mut want = format!(
        "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-2/64\r\n\r\n"
    )
    .into_bytes();
    want.extend_from_slice(&content()[0..3]);
    want.extend_from_slice(
        format!("\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 40-63/64\r\n\r\n").as_bytes(),
    );
    want.extend_from_slice(&content()[40..]);
    want.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert_eq!(got, want);
}

#[test]
fn unsatisfiable_range_416() {
    let t = tree("416");
    let r = get(
        &StaticFiles::new(&t.0),
        "GET",
        "/data.bin",
        &[("Range", "bytes=67-108")],
    );
    assert_eq!(r.status, 416);
    assert_eq!(header(&r, "Content-Range"), Some("bytes */64"));
    assert_eq!(header(&r, "Content-Length"), Some("0"));
    assert!(matches!(r.body, Body::Empty));
}

#[test]
fn if_range_mismatch_sends_the_whole_file() {
    let t = tree("ifrange");
    let r = get(
        &StaticFiles::new(&t.0),
        "GET",
        "/data.bin",
        &[("Range", "bytes=0-1"), ("If-Range", "\"stale\"")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(body(r), content());
}

#[test]
fn traversal_and_missing_are_404() {
    let t = tree("404");
    let files = StaticFiles::new(&t.0);
    for p in [
        "/../etc/passwd",
        "/%2e%2e/x",
        "/sub%2f..%2f..%2fx",
        "/nope",
        "/data.bin/x",
        "/%ff",
    ] {
        let r = get(&files, "GET", p, &[]);
        assert_eq!(r.status, 404, "{p}");
        assert!(
            String::from_utf8(body(r))
                .unwrap()
                .contains("File not found.")
        );
    }
}

#[test]
fn directory_redirects_to_trailing_slash_keeping_the_query() {
    let t = tree("redirect");
    let r = get(&StaticFiles::new(&t.0), "GET", "/sub?a=1", &[]);
    assert_eq!(r.status, 302);
    assert_eq!(header(&r, "Location"), Some("/sub/?a=1"));
}

#[test]
fn listing_on_and_off() {
    let t = tree("listing");
    let mut files = StaticFiles::new(&t.0);
    let r = get(&files, "GET", "/sub/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "Content-Type"), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(body(r)).unwrap();
    assert!(html.contains("&lt;b&gt;.txt"));
    assert!(!html.contains("<b>"));
    files.listings = false;
    assert_eq!(get(&files, "GET", "/sub/", &[]).status, 403);
}

#[test]
fn other_methods_405() {
    let t = tree("405");
    let r = get(&StaticFiles::new(&t.0), "POST", "/data.bin", &[]);
    assert_eq!(r.status, 405);
    assert_eq!(header(&r, "Allow"), Some("GET, HEAD"));
}

/// Answers the first request line with `respond`, head then body, then closes.
struct Mini {
    files: Rc<StaticFiles>,
    range: &'static str,
}

impl Protocol for Mini {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        let line = String::from_utf8_lossy(data);
        let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
        let mut h = Headers::new();
        h.set("Range", self.range);
        let segs: Vec<&[u8]> = path
            .trim_start_matches('/')
            .split('/')
            .map(str::as_bytes)
            .collect();
        let r = self.files.respond("GET", &segs, &path, None, &h);
        let t = cx.transport().clone();
        let mut head = format!("HTTP/1.1 {}\r\n", r.status).into_bytes();
        r.headers.write_to(&mut head);
        head.extend_from_slice(b"\r\n");
        t.write(&head);
        let t2 = t.clone();
        let _ = r.body.send(&t).add_callback(move |()| t2.lose_connection());
    }
}

#[test]
fn multipart_over_tcp_with_sendfile_is_byte_exact() {
    bounded(60, || {
        let t = tree("tcp");
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(t.0.join("big.bin"), &big).unwrap();
        let files = Rc::new(StaticFiles::new(&t.0));
        let reactor = Reactor::new().unwrap();
        let port = listen_tcp_with(
            &reactor,
            0,
            for_protocol(move || Mini {
                files: files.clone(),
                range: "bytes=0-999999,2000000-",
            }),
            ListenOptions::on("127.0.0.1"),
        )
        .unwrap();
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port.port())).unwrap();
        let c = std::thread::spawn(move || {
            use std::io::Write;
            conn.write_all(b"GET /big.bin HTTP/1.1\r\n\r\n").unwrap();
            let mut out = Vec::new();
            let _ = conn.read_to_end(&mut out);
            out
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && !c.is_finished() {
            reactor.iterate(Duration::from_millis(5)).unwrap();
        }
        let got = c.join().unwrap();
        let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let (head, body) = got.split_at(split);
        let head = String::from_utf8_lossy(head);
        assert!(head.starts_with("HTTP/1.1 206\r\n"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), length);
        let boundary = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: multipart/byteranges; boundary=\""))
            .unwrap()
            .trim_end_matches('"')
            .to_owned();
        let mut want = format!("\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-999999/3000000\r\n\r\n").into_bytes();
        want.extend_from_slice(&big[..1_000_000]);
        want.extend_from_slice(format!("\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 2000000-2999999/3000000\r\n\r\n").as_bytes());
        want.extend_from_slice(&big[2_000_000..]);
        want.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        assert!(body == want.as_slice(), "body differs");
    });
}

//! Resources and the site: traversal, method dispatch, later answers, failures, the access
//! log, virtual hosts.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

use twistor::Deferred;
use twistor::reactor::ReactorSpawn;
use twistor::testing::{MemoryReactor, StringTransport};
use twistor::time::ReactorTime;
use twistor::web::request::Cookie;
use twistor::web::resource::{Children, Redirect, Render, Resource, Tree};
use twistor::web::site::AccessLog;
use twistor::web::vhost::NameVirtualHost;
use twistor::web::{HttpLimits, Request, Site};

/// Echoes what traversal gave it.
struct Where;
impl Resource for Where {
    fn render_get(&self, r: &Request) -> Option<Render> {
        let show = |v: Vec<Vec<u8>>| {
            v.iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join("|")
        };
        Some(format!("pre={} post={}", show(r.prepath()), show(r.postpath())).into())
    }
}

struct Leaf;
impl Resource for Leaf {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Option<Render> {
        Where.render_get(r)
    }
}

#[derive(Default)]
struct Dir {
    children: Children,
}
impl Resource for Dir {
    fn children(&self) -> Option<&Children> {
        Some(&self.children)
    }
    fn render_get(&self, r: &Request) -> Option<Render> {
        Where.render_get(r)
    }
}

struct Later {
    reactor: Rc<MemoryReactor>,
}
impl Resource for Later {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, _r: &Request) -> Option<Render> {
        let (d, res) = Deferred::new();
        self.reactor.call_later(2.0, move || {
            let _ = res.callback(b"deferred".to_vec());
        });
        Some(Render::Later(d))
    }
}

struct Async {
    reactor: Rc<MemoryReactor>,
}
impl Resource for Async {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, _r: &Request) -> Option<Render> {
        let reactor = self.reactor.clone();
        Some(Render::from_async(async move {
            let (d, res) = Deferred::new();
            reactor.call_later(1.0, move || {
                let _ = res.callback(7u32);
            });
            let n = d.await?;
            Ok(format!("async {n}").into_bytes())
        }))
    }
}

struct Boom;
impl Resource for Boom {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, _r: &Request) -> Option<Render> {
        panic!("render exploded")
    }
    fn render_post(&self, _r: &Request) -> Option<Render> {
        Some(Render::Later(Deferred::fail(twistor::Failure::msg(
            "failed later",
        ))))
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "HEAD", "POST"]
    }
}

struct Form;
impl Resource for Form {
    fn is_leaf(&self) -> bool {
        true
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["POST"]
    }
    fn render_post(&self, r: &Request) -> Option<Render> {
        let name = r.arg(b"name").unwrap_or_default();
        let q = r.arg(b"q").unwrap_or_default();
        r.add_cookie(Cookie::new("seen", "1").path("/").http_only());
        let c = r.get_cookie(b"k").unwrap_or_default();
        Some(
            format!(
                "name={} q={} cookie={}",
                String::from_utf8_lossy(&name),
                String::from_utf8_lossy(&q),
                String::from_utf8_lossy(&c)
            )
            .into(),
        )
    }
}

#[derive(Clone, Default)]
struct Sink(Rc<RefCell<Vec<u8>>>);
impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Fixture {
    reactor: Rc<MemoryReactor>,
    site: Site,
    log: Sink,
}

fn fixture() -> Fixture {
    let reactor = Rc::new(MemoryReactor::new());
    let root = Rc::new(Dir::default());
    let sub = Rc::new(Dir::default());
    sub.put_child(b"leaf", Rc::new(Leaf));
    root.put_child(b"sub", sub);
    root.put_child(b"leaf", Rc::new(Leaf));
    root.put_child(
        b"later",
        Rc::new(Later {
            reactor: reactor.clone(),
        }),
    );
    root.put_child(
        b"async",
        Rc::new(Async {
            reactor: reactor.clone(),
        }),
    );
    root.put_child(b"boom", Rc::new(Boom));
    root.put_child(b"form", Rc::new(Form));
    root.put_child(b"away", Rc::new(Redirect::new(b"/there?<x>")));
    let log = Sink::default();
    let site = Site::with_options(
        root,
        reactor.clone(),
        HttpLimits::default(),
        AccessLog::Writer(Box::new(log.clone())),
    );
    Fixture { reactor, site, log }
}

impl Fixture {
    fn get(&self, req: &str) -> (StringTransport, String) {
        let st = StringTransport::new();
        st.connect(self.site.channel());
        st.deliver(req.as_bytes());
        let out = String::from_utf8_lossy(&st.value()).into_owned();
        (st, out)
    }
    fn body(&self, path: &str) -> String {
        let (_, out) = self.get(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        out.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
    }
}

#[test]
fn traversal_fills_prepath_and_postpath() {
    let f = fixture();
    // As in Twisted, `/` is the empty segment: a 404 unless a child is put at b"".
    assert!(f.body("/").contains("No Such Resource"));
    assert_eq!(f.body("/sub"), "pre=sub post=");
    assert!(f.body("/sub/").contains("No Such Resource"));
    assert_eq!(f.body("/sub/leaf/a/b%2Fc"), "pre=sub|leaf post=a|b/c");
    assert_eq!(f.body("/leaf?x=1"), "pre=leaf post=");
}

#[test]
fn missing_children_are_404() {
    let f = fixture();
    let (_, out) = f.get("GET /nothing/here HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
    assert!(out.contains("No Such Resource"));
}

#[test]
fn unimplemented_methods_get_405_with_allow_and_unknown_ones_501() {
    let f = fixture();
    let (_, out) = f.get("DELETE /leaf HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        out.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{out}"
    );
    assert!(out.contains("\r\nAllow: GET, HEAD\r\n"));
    let (_, out) = f.get("GET /form HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.contains("\r\nAllow: POST\r\n"), "{out}");
    let (_, out) = f.get("BREW /leaf HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 501 Not Implemented\r\n"), "{out}");
}

#[test]
fn head_defaults_to_get_without_the_body() {
    let f = fixture();
    let (_, out) = f.get("HEAD /leaf HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.ends_with("Content-Length: 14\r\n\r\n"), "{out}");
}

#[test]
fn answers_later_from_a_deferred_and_an_async_block() {
    let f = fixture();
    let (st, out) = f.get("GET /later HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(out, "");
    f.reactor.clock().advance(2.0);
    assert!(String::from_utf8_lossy(&st.value()).ends_with("\r\n\r\ndeferred"));

    let (st, out) = f.get("GET /async HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(out, "");
    f.reactor.clock().advance(1.0);
    assert!(String::from_utf8_lossy(&st.value()).ends_with("\r\n\r\nasync 7"));
}

#[test]
fn a_panicking_or_failing_render_gives_500_and_the_server_goes_on() {
    let f = fixture();
    let (st, out) = f.get("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        out.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
        "{out}"
    );
    assert!(out.contains("Processing Failed") && !out.contains("exploded"));
    assert!(!st.disconnecting());
    st.clear();
    st.deliver(b"POST /boom HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = String::from_utf8_lossy(&st.value()).into_owned();
    assert!(out.starts_with("HTTP/1.1 500 "), "{out}");
    st.clear();
    st.deliver(b"GET /leaf HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(String::from_utf8_lossy(&st.value()).starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn form_posts_query_args_and_cookies() {
    let f = fixture();
    let body = "name=J%C3%B6rg+B";
    let (_, out) = f.get(&format!(
        "POST /form?q=a%20b&q=2 HTTP/1.1\r\nHost: x\r\nCookie: k=v; z=1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    assert!(
        out.contains("\r\nSet-Cookie: seen=1; Path=/; HttpOnly\r\n"),
        "{out}"
    );
    assert!(out.ends_with("name=Jörg B q=a b cookie=v"), "{out}");
}

#[test]
fn redirects_escape_the_url_in_the_page() {
    let f = fixture();
    let (_, out) = f.get("GET /away HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 302 Found\r\n"));
    assert!(out.contains("\r\nLocation: /there?<x>\r\n"));
    assert!(out.contains("/there?&lt;x&gt;") && !out.contains("href=\"/there?<x>"));
}

#[test]
fn options_star_and_other_methods_on_star() {
    let f = fixture();
    let (_, out) = f.get("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.contains("Content-Length: 0\r\n"));
    let (_, out) = f.get("GET * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(out.starts_with("HTTP/1.1 405 ") && out.contains("\r\nAllow: OPTIONS\r\n"));
}

#[test]
fn the_access_log_uses_the_combined_format() {
    let f = fixture();
    f.get(
        "GET /leaf?a=\"b\" HTTP/1.1\r\nHost: x\r\nUser-Agent: tést\r\nReferer: http://r/\r\n\r\n",
    );
    f.get("HEAD /leaf HTTP/1.1\r\nHost: x\r\n\r\n");
    f.site.flush_log();
    let log = String::from_utf8(f.log.0.borrow().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    let l = lines[0];
    assert!(l.starts_with("\"192.168.1.1\" - - ["), "{l}");
    assert!(
        l.contains(
            " +0000] \"GET /leaf?a=\\\"b\\\" HTTP/1.1\" 200 14 \"http://r/\" \"t\\xc3\\xa9st\""
        ),
        "{l}"
    );
    assert!(
        lines[1].ends_with("\"HEAD /leaf HTTP/1.1\" 200 - \"-\" \"-\""),
        "{}",
        lines[1]
    );
    // [30/Nov/2026:06:00:00 +0000]
    let stamp = &l[l.find('[').unwrap() + 1..l.find(']').unwrap()];
    assert_eq!(stamp.len(), 26, "{stamp}");
    assert_eq!(&stamp[2..3], "/");
    assert_eq!(&stamp[6..7], "/");
}

#[test]
fn virtual_hosts_pick_by_host_header() {
    let reactor = Rc::new(MemoryReactor::new());
    let v = Rc::new(NameVirtualHost::new());
    let a = Rc::new(Dir::default());
    a.put_child(b"p", Rc::new(Leaf));
    v.add_host("a.example", a);
    v.add_host("leaf.example", Rc::new(Leaf));
    let site = Site::with_options(
        v.clone(),
        reactor.clone(),
        HttpLimits::default(),
        AccessLog::Off,
    );
    let get = |host: &str, path: &str| {
        let st = StringTransport::new();
        st.connect(site.channel());
        st.deliver(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        String::from_utf8_lossy(&st.value()).into_owned()
    };
    assert!(get("A.example:8080", "/p/x").ends_with("pre=p post=x"));
    assert!(
        get("leaf.example", "/q/r").ends_with("pre= post=q|r"),
        "{}",
        get("leaf.example", "/q/r")
    );
    assert!(get("other", "/").starts_with("HTTP/1.1 404 "));
    v.set_default(Rc::new(Tree::new()));
    assert!(get("other", "/").starts_with("HTTP/1.1 404 "));
    let _ = reactor.seconds();
}

#[test]
fn conditional_requests_get_304_without_a_body() {
    struct Cached;
    impl Resource for Cached {
        fn is_leaf(&self) -> bool {
            true
        }
        fn render_get(&self, r: &Request) -> Option<Render> {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
            if r.set_last_modified(t) || r.set_etag(b"\"v1\"") {
                return Some(Render::Static(b""));
            }
            Some(Render::Static(b"fresh"))
        }
    }
    let reactor = Rc::new(MemoryReactor::new());
    let site = Site::with_options(
        Rc::new(Cached),
        reactor,
        HttpLimits::default(),
        AccessLog::Off,
    );
    let get = |extra: &str| {
        let st = StringTransport::new();
        st.connect(site.channel());
        st.deliver(format!("GET / HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes());
        String::from_utf8_lossy(&st.value()).into_owned()
    };
    let out = get("");
    assert!(
        out.contains("\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n")
            && out.ends_with("fresh"),
        "{out}"
    );
    let out = get("If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
    assert!(
        out.starts_with("HTTP/1.1 304 ") && !out.contains("Content-Length"),
        "{out}"
    );
    let out = get("If-None-Match: \"v0\", \"v1\"\r\n");
    assert!(out.starts_with("HTTP/1.1 304 "), "{out}");
}

#[test]
fn spawn_is_available_from_the_memory_reactor() {
    // The async render path runs on the site's reactor: a MemoryReactor runs it at once.
    let mr = MemoryReactor::new();
    let d = ReactorSpawn::spawn(&mr, async { Ok::<_, twistor::Failure>(1) });
    assert_eq!(twistor::testing::success_result_of(&d), 1);
}

#[test]
fn gzip_applies_only_when_accepted_and_never_to_head() {
    use std::io::Read;
    use twistor::web::encoding::EncodingResourceWrapper;
    let reactor = Rc::new(MemoryReactor::new());
    let wrapped = Rc::new(EncodingResourceWrapper::new(Rc::new(Leaf)));
    let site = Site::with_options(wrapped, reactor, HttpLimits::default(), AccessLog::Off);
    let get = |req: &str| {
        let st = StringTransport::new();
        st.connect(site.channel());
        st.deliver(req.as_bytes());
        st.value()
    };
    let out = get("GET /a HTTP/1.1\r\nHost: x\r\nAccept-Encoding: deflate, gzip\r\n\r\n");
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(
        text.contains("\r\nVary: Accept-Encoding\r\n")
            && text.contains("\r\nContent-Encoding: gzip\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\nTransfer-Encoding: chunked\r\n") && !text.contains("Content-Length"),
        "{text}"
    );
    // De-chunk, then gunzip.
    let body_start = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut dec = twistor::web::chunked::ChunkedDecoder::new();
    let mut gz = Vec::new();
    let p = dec
        .feed(&out[body_start..], &mut |d| gz.extend_from_slice(d))
        .unwrap();
    assert!(p.done);
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(plain, "pre= post=a");

    let out = String::from_utf8_lossy(&get(
        "GET /a HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=0\r\n\r\n",
    ))
    .into_owned();
    assert!(
        out.ends_with("Content-Length: 11\r\n\r\npre= post=a") && !out.contains("Content-Encoding"),
        "{out}"
    );
    let out = String::from_utf8_lossy(&get(
        "HEAD /a HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
    ))
    .into_owned();
    assert!(
        out.ends_with("\r\n\r\n"),
        "no gzip trailer after a HEAD: {out:?}"
    );
}

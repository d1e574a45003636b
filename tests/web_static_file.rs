//! `static_files::file::File` mounted in a `Site`: GET with ranges, HEAD, 304, the redirect
//! to the trailing slash and traversal, over the in-memory transport.

use std::path::PathBuf;
use std::rc::Rc;

use twistor::testing::{MemoryReactor, StringTransport};
use twistor::web::Site;
use twistor::web::resource::{Resource, Tree};
use twistor::web::static_files::file::File;
use twistor::web::static_files::response::StaticFiles;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn site(name: &str) -> (Site, Dir) {
    let root = std::env::temp_dir().join(format!("twistor-file-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), big).unwrap();
    let tree = Rc::new(Tree::new());
    tree.put_child(b"static", Rc::new(File::new(StaticFiles::new(&root))));
    (Site::new(tree, Rc::new(MemoryReactor::new())), Dir(root))
}

/// Sends `req`, pulls the body producer to the end, returns the whole response.
fn exchange(site: &Site, req: &str) -> Vec<u8> {
    let st = StringTransport::new();
    st.connect(site.channel());
    st.deliver(req.as_bytes());
    for _ in 0..1000 {
        let Some((p, _)) = st.producer() else { break };
        p.resume_producing();
    }
    st.value()
}

fn split(resp: &[u8]) -> (String, Vec<u8>) {
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (
        String::from_utf8_lossy(&resp[..at]).into_owned(),
        resp[at..].to_vec(),
    )
}

fn big() -> Vec<u8> {
    (0..200_000u32).map(|i| (i % 251) as u8).collect()
}

#[test]
fn get_whole_file_through_the_site() {
    let (site, _d) = site("get");
    let (head, body) = split(&exchange(
        &site,
        "GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
    ));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Content-Length: 200000"), "{head}");
    assert!(head.contains("Accept-Ranges: bytes"), "{head}");
    assert!(body == big());
}

#[test]
fn range_and_multipart_through_the_site() {
    let (site, _d) = site("range");
    let (head, body) = split(&exchange(
        &site,
        "GET /static/big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-100\r\n\r\n",
    ));
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(
        head.contains("Content-Range: bytes 199900-199999/200000"),
        "{head}"
    );
    assert!(body == big()[199_900..]);
    let (head, body) = split(&exchange(
        &site,
        "GET /static/big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9,100000-\r\n\r\n",
    ));
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(body.len(), len);
}

#[test]
fn head_not_modified_redirect_and_traversal() {
    let (site, _d) = site("misc");
    let (head, body) = split(&exchange(
        &site,
        "HEAD /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
    ));
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains("Content-Length: 200000"),
        "{head}"
    );
    assert!(body.is_empty());
    let lm = head
        .lines()
        .find_map(|l| l.strip_prefix("Last-Modified: "))
        .unwrap()
        .to_owned();
    let (head, _) = split(&exchange(
        &site,
        &format!("GET /static/big.bin HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: {lm}\r\n\r\n"),
    ));
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    let (head, _) = split(&exchange(
        &site,
        "GET /static/sub?a=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    ));
    assert!(head.starts_with("HTTP/1.1 302"), "{head}");
    assert!(head.contains("Location: /static/sub/?a=1"), "{head}");
    let (head, _) = split(&exchange(
        &site,
        "GET /static/%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n",
    ));
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

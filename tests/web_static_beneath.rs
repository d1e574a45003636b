//! Request paths opened beneath the root with `openat2(RESOLVE_BENEATH)`, and the portable
//! path (`realpath` and compare) forced with `ResolveOptions::openat2 = false`: the same
//! answers for every path, except those the kernel's rule changes (a symlink that leaves
//! the root on the way, absolute or through `..`, even when its target is inside).

use std::os::unix::fs::symlink;
use std::path::PathBuf;

use twistor::testing::StringTransport;
use twistor::web::Headers;
use twistor::web::static_files::beneath::{Beneath, RootDir, open};
use twistor::web::static_files::path::{PathError, ResolveOptions};
use twistor::web::static_files::response::{StaticFiles, StaticResponse};

struct Tree(PathBuf);

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Tree {
    fn www(&self) -> PathBuf {
        self.0.join("www")
    }
}

/// `base/secret.txt` outside the root `base/www`, which holds files, a directory, and
/// symlinks of every kind.
fn tree(name: &str) -> Tree {
    let base = std::env::temp_dir().join(format!("twistor-beneath-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let www = base.join("www");
    std::fs::create_dir_all(www.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(base.join("secret.txt"), b"secret").unwrap();
    std::fs::write(base.join("outside/x.txt"), b"outside").unwrap();
    std::fs::write(www.join("ten.txt"), b"0123456789").unwrap();
    std::fs::write(www.join("sub/a.txt"), b"a").unwrap();
    std::fs::write(www.join("sub/index.html"), b"<p>index</p>").unwrap();
    std::fs::write(www.join("page.html"), b"<p>page</p>").unwrap();
    // Relative, staying inside.
    symlink("ten.txt", www.join("inside.txt")).unwrap();
    symlink("../ten.txt", www.join("sub/up-inside.txt")).unwrap();
    symlink("sub", www.join("subdir-link")).unwrap();
    // Leaving the root.
    symlink("../secret.txt", www.join("rel-out.txt")).unwrap();
    symlink(base.join("secret.txt"), www.join("abs-out.txt")).unwrap();
    symlink("../outside", www.join("dir-out")).unwrap();
    symlink("..", www.join("up")).unwrap();
    // Absolute, but its target is inside.
    symlink(www.join("ten.txt"), www.join("abs-inside.txt")).unwrap();
    Tree(base)
}

fn files(t: &Tree, openat2: bool, follow_out: bool) -> StaticFiles {
    let mut f = StaticFiles::new(t.www());
    f.resolve.openat2 = openat2;
    f.resolve.follow_symlinks_out = follow_out;
    f
}

fn get(files: &StaticFiles, path: &str) -> StaticResponse {
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let segments: Vec<Vec<u8>> = p
        .trim_start_matches('/')
        .split('/')
        .map(twistor::web::static_files::listing::percent_decode)
        .collect();
    files.respond("GET", &segments, p, q, &Headers::new())
}

fn body(r: StaticResponse) -> Vec<u8> {
    let st = StringTransport::new();
    let d = r.body.send(&st.transport());
    while let Some((p, _)) = st.producer() {
        p.resume_producing();
    }
    assert!(d.called());
    st.value()
}

/// Status and body of `path`.
fn fetch(files: &StaticFiles, path: &str) -> (u16, Vec<u8>) {
    let r = get(files, path);
    (r.status, body(r))
}

/// Whether this kernel has `openat2` (a plain file opens through it).
fn kernel_has_openat2(t: &Tree) -> bool {
    let root = RootDir::new(t.www());
    matches!(
        open(&root, &[b"ten.txt".as_slice()], &ResolveOptions::default()),
        Beneath::Opened(..)
    )
}

#[test]
fn same_answers_with_and_without_openat2() {
    let t = tree("same");
    for openat2 in [true, false] {
        let f = files(&t, openat2, false);
        let ok = |p: &str, want: &[u8]| {
            assert_eq!(
                fetch(&f, p),
                (200, want.to_vec()),
                "{p} (openat2 {openat2})"
            );
        };
        ok("/ten.txt", b"0123456789");
        ok("/./ten.txt", b"0123456789");
        ok("/inside.txt", b"0123456789");
        ok("/sub/up-inside.txt", b"0123456789");
        ok("/subdir-link/a.txt", b"a");
        ok("/sub/", b"<p>index</p>");
        for p in [
            "/rel-out.txt",
            "/abs-out.txt",
            "/dir-out/x.txt",
            "/up/secret.txt",
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/sub%2f..%2f..%2fsecret.txt",
            "/sub//a.txt",
            "/ten.txt/x",
            "/nope",
            "/%ff",
        ] {
            assert_eq!(get(&f, p).status, 404, "{p} (openat2 {openat2})");
        }
        let r = get(&f, "/sub?q=1");
        assert_eq!(r.status, 302, "openat2 {openat2}");
        assert_eq!(r.headers.get_str("Location"), Some("/sub/?q=1"));
        let none: [&[u8]; 0] = [];
        let r = f.respond("GET", &none, "/static", None, &Headers::new());
        assert_eq!(r.status, 302, "the root without its slash");
        assert_eq!(get(&f, "/sub/deeper/").status, 200, "a listing");
    }
}

#[test]
fn symlinks_out_are_served_when_allowed() {
    let t = tree("allowed");
    for openat2 in [true, false] {
        let f = files(&t, openat2, true);
        assert_eq!(fetch(&f, "/rel-out.txt"), (200, b"secret".to_vec()));
        assert_eq!(fetch(&f, "/abs-out.txt"), (200, b"secret".to_vec()));
        assert_eq!(fetch(&f, "/dir-out/x.txt"), (200, b"outside".to_vec()));
        assert_eq!(fetch(&f, "/up/secret.txt"), (200, b"secret".to_vec()));
        // `..` as a segment stays refused: it is a lexical rule.
        assert_eq!(get(&f, "/../secret.txt").status, 404);
    }
}

#[test]
fn symlinks_leaving_the_root_on_the_way_are_refused_by_the_kernel_rule_only() {
    let t = tree("absinside");
    // An absolute symlink to a file inside, and a walk that climbs out and back in.
    for p in ["/abs-inside.txt", "/up/www/ten.txt"] {
        assert_eq!(
            fetch(&files(&t, false, false), p),
            (200, b"0123456789".to_vec()),
            "{p}: the portable path compares real paths"
        );
    }
    if !kernel_has_openat2(&t) {
        return;
    }
    for p in ["/abs-inside.txt", "/up/www/ten.txt"] {
        assert_eq!(get(&files(&t, true, false), p).status, 404, "{p}");
    }
}

#[test]
fn beneath_open_decides_files_and_defers_the_rest() {
    let t = tree("decide");
    if !kernel_has_openat2(&t) {
        return;
    }
    let root = RootDir::new(t.www());
    let o = ResolveOptions::default();
    let open = |p: &[&str]| {
        let segs: Vec<&[u8]> = p.iter().map(|s| s.as_bytes()).collect();
        open(&root, &segs, &o)
    };
    let Beneath::Opened(_, meta) = open(&["sub", "a.txt"]) else {
        panic!("a plain file is opened");
    };
    assert_eq!(meta.len(), 1);
    assert!(matches!(
        open(&["rel-out.txt"]),
        Beneath::Refused(PathError::OutsideRoot)
    ));
    assert!(matches!(
        open(&["dir-out", "x.txt"]),
        Beneath::Refused(PathError::OutsideRoot)
    ));
    assert!(matches!(
        open(&["nope"]),
        Beneath::Refused(PathError::NotFound)
    ));
    assert!(matches!(
        open(&["ten.txt", "x"]),
        Beneath::Refused(PathError::NotFound)
    ));
    assert!(matches!(
        open(&["..", "secret.txt"]),
        Beneath::Refused(PathError::Insecure(_))
    ));
    // Directories, trailing slashes and the root go to the portable path.
    assert!(matches!(open(&["sub"]), Beneath::Portable));
    assert!(matches!(open(&["sub", ""]), Beneath::Portable));
    assert!(matches!(open(&[""]), Beneath::Portable));
    // So do missing names when ignored extensions may find them, and everything when
    // symlinks out are allowed.
    let exts = ResolveOptions {
        ignored_exts: vec!["html".into()],
        ..ResolveOptions::default()
    };
    assert!(matches!(
        twistor::web::static_files::beneath::open(&root, &[b"page".as_slice()], &exts),
        Beneath::Portable
    ));
    let out = ResolveOptions {
        follow_symlinks_out: true,
        ..ResolveOptions::default()
    };
    assert!(matches!(
        twistor::web::static_files::beneath::open(&root, &[b"ten.txt".as_slice()], &out),
        Beneath::Portable
    ));
}

#[test]
fn ignored_extensions_still_apply() {
    let t = tree("exts");
    for openat2 in [true, false] {
        let mut f = files(&t, openat2, false);
        f.resolve.ignored_exts = vec!["html".into()];
        assert_eq!(fetch(&f, "/page"), (200, b"<p>page</p>".to_vec()));
        assert_eq!(get(&f, "/nope").status, 404);
    }
}

#[test]
fn a_directory_swapped_for_a_symlink_out_is_refused() {
    let t = tree("swap");
    let f = files(&t, true, false);
    assert_eq!(fetch(&f, "/sub/a.txt"), (200, b"a".to_vec()));
    // Someone writing inside the root replaces the directory by a symlink out of it.
    std::fs::write(t.0.join("outside/a.txt"), b"stolen").unwrap();
    std::fs::remove_dir_all(t.www().join("sub")).unwrap();
    symlink("../outside", t.www().join("sub")).unwrap();
    assert_eq!(get(&f, "/sub/a.txt").status, 404);
}

#[test]
fn the_root_is_opened_once_and_may_appear_later() {
    let base = std::env::temp_dir().join(format!("twistor-beneath-late-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let t = Tree(base.clone());
    let f = StaticFiles::new(t.www());
    assert_eq!(get(&f, "/a.txt").status, 404, "no root yet");
    std::fs::create_dir_all(t.www()).unwrap();
    std::fs::write(t.www().join("a.txt"), b"late").unwrap();
    assert_eq!(fetch(&f, "/a.txt"), (200, b"late".to_vec()));
    // A clone shares the root's descriptor and answers alike.
    assert_eq!(fetch(&f.clone(), "/a.txt"), (200, b"late".to_vec()));
}

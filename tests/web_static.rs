//! Static-file pieces: ranges, conditional requests, path resolution, content types and
//! directory listings, one test per rule (Twisted's test_static where it applies).

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use twistor::web::Headers;
use twistor::web::date::http_date;
use twistor::web::static_files::conditional::{
    Precondition, Validators, evaluate, if_range_matches,
};
use twistor::web::static_files::content_type::ContentTypes;
use twistor::web::static_files::listing::{Entry, format_file_size, read_entries, render};
use twistor::web::static_files::path::{
    PathError, ResolveOptions, Resolved, open_resolved, resolve,
};
use twistor::web::static_files::range::{
    ByteRange, DEFAULT_MAX_RANGES, MAX_RANGE_ELEMENTS, Multipart, RangePlan, RangeSpec,
    parse_range, plan,
};

fn p(h: &str, len: u64) -> RangePlan {
    plan(Some(h.as_bytes()), len, DEFAULT_MAX_RANGES)
}

fn r(start: u64, end: u64) -> ByteRange {
    ByteRange { start, end }
}

// ---- ranges ---------------------------------------------------------------------------

#[test]
fn range_invalid_headers_are_errors_and_ignored() {
    for h in [
        "bytes",
        "unknown=1-2",
        "bytes=3",
        "bytes=-",
        "bytes=foo-",
        "bytes=-foo",
        "bytes=5-4",
        "Bytes=1-2",
        "bytes=1-2-3",
        "bytes=",
        "bytes=,,",
        "bytes=99999999999999999999999-",
    ] {
        assert!(parse_range(h.as_bytes()).is_err(), "{h} should be invalid");
        assert_eq!(p(h, 64), RangePlan::Full, "{h} should be ignored");
    }
}

#[test]
fn range_whitespace_and_empty_elements() {
    assert_eq!(
        parse_range(b"bytes = 1 - 2 ").unwrap(),
        vec![RangeSpec::FromTo(1, Some(2))]
    );
    assert_eq!(
        parse_range(b"bytes=1-2,\r\n, ,\t").unwrap(),
        vec![RangeSpec::FromTo(1, Some(2))]
    );
    assert_eq!(
        parse_range(b"bytes=1-2,3-4").unwrap(),
        vec![RangeSpec::FromTo(1, Some(2)), RangeSpec::FromTo(3, Some(4))]
    );
}

#[test]
fn range_forms_on_a_64_byte_file() {
    // Twisted's RangeTests on a 64-byte file.
    let cases = [
        ("bytes=23-", r(23, 63)),
        ("bytes=-17", r(47, 63)),
        ("bytes=3-43", r(3, 43)),
        ("bytes=40-100", r(40, 63)),
        ("bytes=0-0", r(0, 0)),
        ("bytes=63-", r(63, 63)),
    ];
    for (h, want) in cases {
        assert_eq!(p(h, 64), RangePlan::Single(want), "{h}");
    }
    assert_eq!(r(47, 63).content_range(64), "bytes 47-63/64");
    assert_eq!(r(3, 43).len(), 41);
}

#[test]
fn range_suffix_longer_than_file_is_whole_file_not_500() {
    assert_eq!(p("bytes=-100", 10), RangePlan::Single(r(0, 9)));
}

#[test]
fn range_unsatisfiable_single_and_multiple() {
    assert_eq!(p("bytes=67-108", 64), RangePlan::Unsatisfiable);
    assert_eq!(p("bytes=-0", 64), RangePlan::Unsatisfiable);
    assert_eq!(p("bytes=64-", 64), RangePlan::Unsatisfiable);
    // Twisted answers 500 when every range of several is unsatisfiable.
    assert_eq!(p("bytes=70-80,90-", 64), RangePlan::Unsatisfiable);
    assert_eq!(p("bytes=0-", 0), RangePlan::Unsatisfiable);
}

#[test]
fn range_backwards_is_ignored_not_416() {
    assert_eq!(p("bytes=20-13", 64), RangePlan::Full);
}

#[test]
fn range_one_satisfiable_among_several_is_enough() {
    assert_eq!(p("bytes=70-80,5-9", 64), RangePlan::Single(r(5, 9)));
}

#[test]
fn range_multiple_sorted_and_last_clamped() {
    assert_eq!(
        p("bytes=40-100,0-2,10-12", 64),
        RangePlan::Multiple(vec![r(0, 2), r(10, 12), r(40, 63)])
    );
}

#[test]
fn range_overlapping_and_adjacent_are_merged() {
    assert_eq!(p("bytes=0-5,0-5", 64), RangePlan::Single(r(0, 5)));
    assert_eq!(p("bytes=0-5,6-9", 64), RangePlan::Single(r(0, 9)));
    assert_eq!(
        p("bytes=0-5,3-20,-10", 64),
        RangePlan::Multiple(vec![r(0, 20), r(54, 63)])
    );
    let many = vec!["0-"; 200].join(",");
    assert_eq!(
        p(&format!("bytes={many}"), 1 << 30),
        RangePlan::Single(r(0, (1 << 30) - 1))
    );
}

#[test]
fn range_too_many_disjoint_ranges_give_full_body() {
    let ranges: Vec<String> = (0..17)
        .map(|i| format!("{}-{}", i * 4, i * 4 + 1))
        .collect();
    assert_eq!(
        p(&format!("bytes={}", ranges.join(",")), 1000),
        RangePlan::Full
    );
    let ranges16 = &ranges[..16];
    assert!(matches!(
        p(&format!("bytes={}", ranges16.join(",")), 1000),
        RangePlan::Multiple(v) if v.len() == 16
    ));
    let huge = vec!["1-1"; MAX_RANGE_ELEMENTS + 1].join(",");
    assert_eq!(p(&format!("bytes={huge}"), 1000), RangePlan::Full);
}

#[test]
fn multipart_framing_byte_exact_with_computed_length() {
    let file: Vec<u8> = (0..64u8).collect();
    let m = Multipart::new(&[r(0, 2), r(40, 63)], 64, "text/plain", "XYZ");
    let mut body = Vec::new();
    for (head, range) in m.parts() {
        body.extend_from_slice(head);
        body.extend_from_slice(&file[range.start as usize..=range.end as usize]);
    }
    body.extend_from_slice(m.tail());
    let mut want = Vec::new();
    want.extend_from_slice(
        b"\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-2/64\r\n\r\n",
    );
    want.extend_from_slice(&file[0..3]);
    want.extend_from_slice(
        b"\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 40-63/64\r\n\r\n",
    );
    want.extend_from_slice(&file[40..64]);
    want.extend_from_slice(b"\r\n--XYZ--\r\n");
    assert_eq!(body, want);
    assert_eq!(m.content_length(), want.len() as u64);
    assert_eq!(m.content_type(), "multipart/byteranges; boundary=\"XYZ\"");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn range_parser_never_panics(s in proptest::collection::vec(any::<u8>(), 0..80), len in 0u64..1000) {
        let _ = parse_range(&s);
        let _ = plan(Some(&s), len, DEFAULT_MAX_RANGES);
    }

    #[test]
    fn satisfiable_plans_stay_inside_the_file(
        elems in proptest::collection::vec((proptest::option::of(0u64..2000), proptest::option::of(0u64..2000)), 1..20),
        len in 0u64..1500,
    ) {
        let parts: Vec<String> = elems.iter().map(|(a, b)| {
            format!("{}-{}", a.map(|x| x.to_string()).unwrap_or_default(),
                             b.map(|x| x.to_string()).unwrap_or_default())
        }).collect();
        let h = format!("bytes={}", parts.join(","));
        let check = |x: &ByteRange| x.start <= x.end && x.end < len;
        match plan(Some(h.as_bytes()), len, DEFAULT_MAX_RANGES) {
            RangePlan::Single(x) => prop_assert!(check(&x)),
            RangePlan::Multiple(v) => {
                prop_assert!(v.len() >= 2 && v.len() <= DEFAULT_MAX_RANGES);
                for w in v.windows(2) {
                    // Sorted, disjoint and not adjacent: no byte is sent twice.
                    prop_assert!(w[0].end + 1 < w[1].start);
                }
                for x in &v { prop_assert!(check(x)); }
            }
            RangePlan::Full | RangePlan::Unsatisfiable => {}
        }
    }
}

// ---- conditional requests ---------------------------------------------------------------

const MTIME: u64 = 784_111_777;

fn validators() -> Validators {
    Validators::new(7, 64, MTIME * 1_000_000_000 + 250)
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    let mut h = Headers::new();
    for (n, v) in pairs {
        h.add(n, v);
    }
    h
}

fn date(secs: u64) -> String {
    http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

#[test]
fn last_modified_is_whole_seconds() {
    let v = validators();
    assert_eq!(v.last_modified, UNIX_EPOCH + Duration::from_secs(MTIME));
    assert_eq!(v.last_modified_header(), "Sun, 06 Nov 1994 08:49:37 GMT");
}

#[test]
fn if_modified_since_gives_304_when_not_newer() {
    let v = validators();
    for (ims, want) in [
        (date(MTIME), Precondition::NotModified),
        (date(MTIME + 10), Precondition::NotModified),
        (date(MTIME - 1), Precondition::Proceed),
        ("not a date".to_owned(), Precondition::Proceed),
    ] {
        assert_eq!(
            evaluate(&headers(&[("If-Modified-Since", &ims)]), &v, true),
            want,
            "{ims}"
        );
    }
    // Only for GET and HEAD.
    let h = headers(&[("If-Modified-Since", &date(MTIME))]);
    assert_eq!(evaluate(&h, &v, false), Precondition::Proceed);
}

#[test]
fn if_none_match_takes_precedence_over_if_modified_since() {
    let v = validators();
    // A tag that does not match: the fresh IMS is not looked at.
    let h = headers(&[
        ("If-None-Match", "\"other\""),
        ("If-Modified-Since", &date(MTIME)),
    ]);
    assert_eq!(evaluate(&h, &v, true), Precondition::Proceed);
    let h = headers(&[
        ("If-None-Match", &v.etag),
        ("If-Modified-Since", &date(MTIME - 100)),
    ]);
    assert_eq!(evaluate(&h, &v, true), Precondition::NotModified);
}

#[test]
fn if_none_match_forms() {
    let v = validators();
    for (inm, want) in [
        ("*", Precondition::NotModified),
        (
            &format!("\"a\", W/{}", v.etag) as &str,
            Precondition::NotModified,
        ),
        (&format!("\"a,b\",{}", v.etag), Precondition::NotModified),
        ("\"a\", \"b\"", Precondition::Proceed),
        ("garbage", Precondition::Proceed),
    ] {
        assert_eq!(
            evaluate(&headers(&[("If-None-Match", inm)]), &v, true),
            want,
            "{inm}"
        );
    }
    assert_eq!(
        evaluate(&headers(&[("If-None-Match", "*")]), &v, false),
        Precondition::Failed
    );
}

#[test]
fn if_match_and_if_unmodified_since_give_412() {
    let v = validators();
    assert_eq!(
        evaluate(&headers(&[("If-Match", "\"x\"")]), &v, true),
        Precondition::Failed
    );
    assert_eq!(
        evaluate(&headers(&[("If-Match", &v.etag)]), &v, true),
        Precondition::Proceed
    );
    assert_eq!(
        evaluate(&headers(&[("If-Match", "*")]), &v, true),
        Precondition::Proceed
    );
    // Strong comparison: a weak tag never satisfies If-Match.
    let weak = format!("W/{}", v.etag);
    assert_eq!(
        evaluate(&headers(&[("If-Match", &weak)]), &v, true),
        Precondition::Failed
    );
    let ius = |s| evaluate(&headers(&[("If-Unmodified-Since", &date(s))]), &v, true);
    assert_eq!(ius(MTIME - 1), Precondition::Failed);
    assert_eq!(ius(MTIME), Precondition::Proceed);
    // If-Match present: If-Unmodified-Since is not evaluated.
    let h = headers(&[
        ("If-Match", &v.etag),
        ("If-Unmodified-Since", &date(MTIME - 1)),
    ]);
    assert_eq!(evaluate(&h, &v, true), Precondition::Proceed);
    // 412 wins over 304.
    let h = headers(&[("If-Match", "\"x\""), ("If-None-Match", "*")]);
    assert_eq!(evaluate(&h, &v, true), Precondition::Failed);
}

#[test]
fn if_range_by_date_and_etag() {
    let v = validators();
    assert!(if_range_matches(&headers(&[]), &v));
    assert!(if_range_matches(
        &headers(&[("If-Range", &date(MTIME))]),
        &v
    ));
    assert!(!if_range_matches(
        &headers(&[("If-Range", &date(MTIME + 1))]),
        &v
    ));
    assert!(if_range_matches(&headers(&[("If-Range", &v.etag)]), &v));
    assert!(!if_range_matches(&headers(&[("If-Range", "\"old\"")]), &v));
    assert!(!if_range_matches(&headers(&[("If-Range", "junk")]), &v));
}

#[test]
fn etag_changes_with_size_mtime_and_inode() {
    let a = Validators::new(1, 10, 5);
    assert_ne!(a.etag, Validators::new(2, 10, 5).etag);
    assert_ne!(a.etag, Validators::new(1, 11, 5).etag);
    assert_ne!(a.etag, Validators::new(1, 10, 6).etag);
    assert!(!a.etag.starts_with("W/"), "strong");
}

// ---- paths ------------------------------------------------------------------------------

struct Tree(PathBuf);

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tree(name: &str) -> Tree {
    let root = std::env::temp_dir().join(format!("twistor-static-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("www/sub")).unwrap();
    std::fs::write(root.join("www/ten.txt"), b"0123456789").unwrap();
    std::fs::write(root.join("www/sub/a.html"), b"<p>a</p>").unwrap();
    std::fs::write(root.join("www/.hidden"), b"h").unwrap();
    std::fs::write(root.join("secret.txt"), b"secret").unwrap();
    Tree(root)
}

fn res(root: &Path, path: &[&str], o: &ResolveOptions) -> Result<Resolved, PathError> {
    let segs: Vec<&[u8]> = path.iter().map(|s| s.as_bytes()).collect();
    resolve(&root.join("www"), &segs, o)
}

#[test]
fn path_plain_file_and_dot_segment() {
    let t = tree("plain");
    let o = ResolveOptions::default();
    let want = t.0.join("www/ten.txt").canonicalize().unwrap();
    assert_eq!(
        res(&t.0, &["ten.txt"], &o),
        Ok(Resolved::File(want.clone()))
    );
    assert_eq!(res(&t.0, &[".", "ten.txt"], &o), Ok(Resolved::File(want)));
    assert!(matches!(res(&t.0, &[".hidden"], &o), Ok(Resolved::File(_))));
    assert_eq!(res(&t.0, &["nope"], &o), Err(PathError::NotFound));
    assert_eq!(res(&t.0, &["ten.txt", "x"], &o), Err(PathError::NotFound));
}

#[test]
fn path_traversal_refused() {
    let t = tree("traversal");
    let o = ResolveOptions::default();
    // `%2e%2e` arrives decoded as `..`; `%2F` as a `/` inside a segment.
    for segs in [
        vec!["..", "secret.txt"],
        vec!["sub", "..", "..", "secret.txt"],
        vec!["sub/../../secret.txt"],
        vec!["../secret.txt"],
        vec!["sub\\..\\..\\secret.txt"],
        vec!["ten.txt\0.png"],
        vec!["sub", "", "a.html"],
    ] {
        assert!(
            matches!(res(&t.0, &segs, &o), Err(PathError::Insecure(_))),
            "{segs:?}"
        );
    }
    let bad = [b"\xff".as_slice()];
    assert_eq!(resolve(&t.0.join("www"), &bad, &o), Err(PathError::NotUtf8));
}

#[test]
fn path_symlink_out_of_root_refused_unless_allowed() {
    let t = tree("symlink");
    std::os::unix::fs::symlink(t.0.join("secret.txt"), t.0.join("www/link.txt")).unwrap();
    std::os::unix::fs::symlink(&t.0, t.0.join("www/up")).unwrap();
    std::os::unix::fs::symlink(t.0.join("www/ten.txt"), t.0.join("www/inside.txt")).unwrap();
    let o = ResolveOptions::default();
    assert_eq!(res(&t.0, &["link.txt"], &o), Err(PathError::OutsideRoot));
    assert_eq!(
        res(&t.0, &["up", "secret.txt"], &o),
        Err(PathError::OutsideRoot)
    );
    assert_eq!(res(&t.0, &["up", ""], &o), Err(PathError::OutsideRoot));
    // A symlink that stays inside is fine.
    assert!(matches!(
        res(&t.0, &["inside.txt"], &o),
        Ok(Resolved::File(_))
    ));
    let allow = ResolveOptions {
        follow_symlinks_out: true,
        ..ResolveOptions::default()
    };
    let Ok(Resolved::File(f)) = res(&t.0, &["link.txt"], &allow) else {
        panic!("allowed symlink not served");
    };
    assert_eq!(std::fs::read(&f).unwrap(), b"secret");
}

#[test]
fn path_open_resolved_refuses_a_symlink_swapped_in() {
    let t = tree("swap");
    let o = ResolveOptions::default();
    let Ok(Resolved::File(f)) = res(&t.0, &["ten.txt"], &o) else {
        panic!("not resolved");
    };
    // After the check, the file is replaced by a symlink out of the root.
    std::fs::remove_file(&f).unwrap();
    std::os::unix::fs::symlink(t.0.join("secret.txt"), &f).unwrap();
    assert!(open_resolved(&f).is_err());
}

#[test]
fn path_directories_index_listing_and_slash_redirect() {
    let t = tree("dirs");
    let o = ResolveOptions::default();
    assert_eq!(res(&t.0, &["sub"], &o), Ok(Resolved::AddSlash));
    assert_eq!(res(&t.0, &[], &o), Ok(Resolved::AddSlash));
    assert!(matches!(
        res(&t.0, &["sub", ""], &o),
        Ok(Resolved::Listing(_))
    ));
    std::fs::write(t.0.join("www/sub/index.htm"), b"htm").unwrap();
    std::fs::write(t.0.join("www/sub/index.html"), b"html").unwrap();
    let Ok(Resolved::File(f)) = res(&t.0, &["sub", ""], &o) else {
        panic!("no index");
    };
    assert!(
        f.ends_with("index.html"),
        "the first existing name wins: {f:?}"
    );
    let custom = ResolveOptions {
        index_names: vec!["index.htm".into()],
        ..ResolveOptions::default()
    };
    let Ok(Resolved::File(f)) = res(&t.0, &["sub", ""], &custom) else {
        panic!("no index");
    };
    assert!(f.ends_with("index.htm"));
}

#[test]
fn path_ignored_extensions() {
    let t = tree("ignored");
    let o = ResolveOptions {
        ignored_exts: vec!["txt".into()],
        ..ResolveOptions::default()
    };
    assert!(matches!(res(&t.0, &["ten"], &o), Ok(Resolved::File(f)) if f.ends_with("ten.txt")));
    let star = ResolveOptions {
        ignored_exts: vec!["*".into()],
        ..ResolveOptions::default()
    };
    assert!(
        matches!(res(&t.0, &["sub", "a"], &star), Ok(Resolved::File(f)) if f.ends_with("a.html"))
    );
    assert_eq!(
        res(&t.0, &["ten"], &ResolveOptions::default()),
        Err(PathError::NotFound)
    );
}

// ---- content types ----------------------------------------------------------------------

#[test]
fn content_types_as_twisted() {
    let c = ContentTypes::new();
    let te = |n: &str| c.type_and_encoding(n);
    assert_eq!(te("a.txt"), ("text/plain".into(), None));
    assert_eq!(
        te("page.html.gz"),
        ("text/html".into(), Some("gzip".into()))
    );
    assert_eq!(
        te("x.tar.bz2"),
        ("application/x-tar".into(), Some("bzip2".into()))
    );
    assert_eq!(te("A.PNG").0, "image/png");
    assert_eq!(te("server.conf").0, "text/plain");
    assert_eq!(te("noext").0, "text/html");
    assert_eq!(te(".hidden").0, "text/html");
    assert_eq!(te("x.unknownext").0, "text/html");
    assert!(!te("a.txt").0.contains("charset"));
    let c = ContentTypes::new().with_default_type("application/octet-stream");
    assert_eq!(c.type_and_encoding("noext").0, "application/octet-stream");
}

// ---- listings ---------------------------------------------------------------------------

fn file_entry(name: &str, size: u64) -> Entry {
    Entry {
        name: name.into(),
        is_dir: false,
        size,
        content_type: "text/html".into(),
        encoding: None,
    }
}

#[test]
fn listing_escapes_names_and_title() {
    let html = render(
        "/a%3Cb%3E%20c/",
        &[
            file_entry("<script>alert(1)</script>", 1),
            file_entry("a\"b&c", 2),
        ],
    );
    assert!(html.contains("<title>Directory listing for /a&lt;b&gt; c/</title>"));
    assert!(!html.contains("<script>"));
    assert!(html.contains(
        "<a href=\"%3Cscript%3Ealert%281%29%3C%2Fscript%3E\">&lt;script&gt;alert(1)&lt;/script&gt;</a>"
    ));
    assert!(html.contains("<a href=\"a%22b%26c\">a&quot;b&amp;c</a>"));
}

#[test]
fn listing_rows_directories_first_sorted_alternating() {
    let t = tree("listing");
    std::fs::write(t.0.join("www/b.txt.gz"), vec![0u8; 4567]).unwrap();
    std::os::unix::fs::symlink(t.0.join("www/missing"), t.0.join("www/broken")).unwrap();
    let entries = read_entries(&t.0.join("www"), &ContentTypes::new()).unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["sub", ".hidden", "b.txt.gz", "ten.txt"]);
    let html = render("/", &entries);
    let rows: Vec<&str> = html.matches("<tr class=\"").collect();
    assert_eq!(rows.len(), 4);
    let classes: Vec<&str> = html
        .split("<tr class=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert_eq!(classes, ["odd", "even", "odd", "even"]);
    assert!(
        html.contains("<a href=\"sub/\">sub/</a></td>\n    <td></td>\n    <td>[Directory]</td>")
    );
    assert!(html.contains("<td>4K</td>\n    <td>[text/plain]</td>\n    <td>[gzip]</td>"));
    assert!(!html.contains("broken"), "a broken symlink is left out");
}

#[test]
fn listing_file_sizes_as_twisted() {
    for (n, s) in [
        (0, "0B"),
        (123, "123B"),
        (4567, "4K"),
        (8_900_000, "8M"),
        (1_234_000_000, "1G"),
        (1_234_567_890_000, "1149G"),
    ] {
        assert_eq!(format_file_size(n), s);
    }
}

//! Directory listings (Twisted's `DirectoryLister`): an HTML table of a directory's entries,
//! directories first, then files, each group sorted by name; columns name, size, content type
//! and encoding; rows alternating `odd`/`even` classes starting with `odd`.
//!
//! Every name is HTML-escaped where shown and percent-encoded in its link, and the title is
//! the request path percent-decoded, then escaped: a file called `<script>.html` shows as
//! text, never as markup. Entries that cannot be stat'ed (broken symlinks) are left out.
//! Hidden files are listed, as in Twisted. Sizes are humanised as Twisted's
//! `formatFileSize` does ([`format_file_size`]).

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use super::content_type::ContentTypes;

/// One row of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's name (lossy UTF-8).
    pub name: String,
    /// Whether it is a directory (after following symlinks).
    pub is_dir: bool,
    /// Its size in bytes (files).
    pub size: u64,
    /// Its content type (files).
    pub content_type: String,
    /// Its content encoding (files), if any.
    pub encoding: Option<String>,
}

/// The entries of `dir`, directories first then files, each sorted by name; unreadable
/// entries are skipped.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("twistor-doc-listing-{}", std::process::id()));
/// std::fs::create_dir_all(dir.join("sub")).unwrap();
/// std::fs::write(dir.join("a.txt"), b"hello").unwrap();
/// let types = twistor::web::static_files::content_type::ContentTypes::new();
/// let entries = twistor::web::static_files::listing::read_entries(&dir, &types).unwrap();
/// assert_eq!(entries[0].name, "sub");
/// assert_eq!((entries[1].name.as_str(), entries[1].size), ("a.txt", 5));
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn read_entries(dir: &Path, types: &ContentTypes) -> io::Result<Vec<Entry>> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let Ok(e) = e else { continue };
        // `metadata` follows symlinks: a broken one fails and is skipped.
        let Ok(meta) = std::fs::metadata(e.path()) else {
            continue;
        };
        let name = e.file_name().to_string_lossy().into_owned();
        if meta.is_dir() {
            dirs.push(Entry {
                name,
                is_dir: true,
                size: 0,
                content_type: String::new(),
                encoding: None,
            });
        } else {
            let (content_type, encoding) = types.type_and_encoding(&name);
            files.push(Entry {
                name,
                is_dir: false,
                size: meta.len(),
                content_type,
                encoding,
            });
        }
    }
    dirs.sort_by(|a, b| a.name.cmp(&b.name));
    files.sort_by(|a, b| a.name.cmp(&b.name));
    dirs.extend(files);
    Ok(dirs)
}

/// The listing page for `entries` (in the order given) of the directory at `request_path`
/// (as it appeared in the request, percent-encoded).
///
/// ```
/// use twistor::web::static_files::listing::{render, Entry};
/// let e = Entry { name: "<script>.html".into(), is_dir: false, size: 7,
///                 content_type: "text/html".into(), encoding: None };
/// let html = render("/d%20ir/", &[e]);
/// assert!(html.contains("<title>Directory listing for /d ir/</title>"));
/// assert!(html.contains("<a href=\"%3Cscript%3E.html\">&lt;script&gt;.html</a>"));
/// assert!(!html.contains("<script>"));
/// ```
pub fn render(request_path: &str, entries: &[Entry]) -> String {
    let decoded = percent_decode(request_path);
    let header = format!(
        "Directory listing for {}",
        html_escape(&String::from_utf8_lossy(&decoded))
    );
    let mut rows = String::new();
    for (i, e) in entries.iter().enumerate() {
        let class = if i % 2 == 0 { "odd" } else { "even" };
        let (href, text, size, t, enc) = if e.is_dir {
            (
                format!("{}/", url_quote(&e.name)),
                format!("{}/", html_escape(&e.name)),
                String::new(),
                "[Directory]".to_owned(),
                String::new(),
            )
        } else {
            (
                url_quote(&e.name),
                html_escape(&e.name),
                format_file_size(e.size),
                format!("[{}]", html_escape(&e.content_type)),
                e.encoding
                    .as_ref()
                    .map_or_else(String::new, |x| format!("[{}]", html_escape(x))),
            )
        };
        // Writing to a String cannot fail.
        let _ = writeln!(
            rows,
            "<tr class=\"{class}\">\n    <td><a href=\"{href}\">{text}</a></td>\n    \
             <td>{size}</td>\n    <td>{t}</td>\n    <td>{enc}</td>\n</tr>"
        );
    }
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<title>{header}</title>\n<style>\n\
         .even-dir {{ background-color: #efe0ef }}\n.even {{ background-color: #eee }}\n\
         .odd-dir {{background-color: #f0d0ef }}\n.odd {{ background-color: #dedede }}\n\
         .icon {{ text-align: center }}\n.listing {{\n    margin-left: auto;\n    \
         margin-right: auto;\n    width: 50%;\n    padding: 0.1em;\n    }}\n\n\
         body {{ border: 0; padding: 0; margin: 0; background-color: #efefef; }}\n\
         h1 {{padding: 0.1em; background-color: #777; color: white; border-bottom: thin white dashed;}}\n\
         </style>\n</head>\n\n<body>\n<h1>{header}</h1>\n\n<table>\n    <thead>\n        <tr>\n\
         \x20           <th>Filename</th>\n            <th>Size</th>\n\
         \x20           <th>Content type</th>\n            <th>Content encoding</th>\n\
         \x20       </tr>\n    </thead>\n    <tbody>\n{rows}    </tbody>\n</table>\n\n</body>\n</html>\n"
    )
}

/// A size as Twisted's `formatFileSize` writes it: whole units by integer division, `B`, `K`,
/// `M`, then `G` for anything larger (never `T`).
///
/// ```
/// use twistor::web::static_files::listing::format_file_size;
/// assert_eq!(format_file_size(0), "0B");
/// assert_eq!(format_file_size(4567), "4K");
/// assert_eq!(format_file_size(1_234_567_890_000), "1149G");
/// ```
pub fn format_file_size(size: u64) -> String {
    const K: u64 = 1024;
    if size < K {
        format!("{size}B")
    } else if size < K * K {
        format!("{}K", size / K)
    } else if size < K * K * K {
        format!("{}M", size / (K * K))
    } else {
        format!("{}G", size / (K * K * K))
    }
}

/// `s` with `&`, `<`, `>`, `"` and `'` replaced by entities.
///
/// ```
/// use twistor::web::static_files::listing::html_escape;
/// assert_eq!(html_escape("<a href='x'>&\""), "&lt;a href=&#x27;x&#x27;&gt;&amp;&quot;");
/// ```
pub fn html_escape(s: &str) -> String {
    crate::web::html::escape(s)
}

/// `s` percent-encoded for a path segment: everything but unreserved characters (Python's
/// `quote` with its default safe set, minus `/`: a name never contains one).
///
/// ```
/// use twistor::web::static_files::listing::url_quote;
/// assert_eq!(url_quote("a b/é?"), "a%20b%2F%C3%A9%3F");
/// ```
pub fn url_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `s` with `%XX` escapes decoded; a `%` not followed by two hex digits stays as it is.
///
/// ```
/// use twistor::web::static_files::listing::percent_decode;
/// assert_eq!(percent_decode("%2e%2E/a%20b%zz"), b"../a b%zz");
/// ```
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

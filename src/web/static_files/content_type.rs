//! A file's `Content-Type` and `Content-Encoding` from its name (Twisted's
//! `getTypeAndEncoding`, `File.contentTypes`, `File.contentEncodings`).
//!
//! The last extension (lower-cased) is first looked up among the encodings (`.gz` → `gzip`,
//! `.bz2` → `bzip2`); if it is one, the type comes from the extension before it
//! (`page.html.gz` → `text/html` + `gzip`, `x.tar.gz` → the type of `.tar` + `gzip`). Types
//! come from Twisted's own additions first (`.conf`, `.diff`, `.java`, `.patch` → `text/plain`,
//! ...), then `mime_guess`; an unknown or missing extension gets the default type, `text/html`
//! as in Twisted (so extension-less files and dot-files are served as HTML), configurable. No
//! `charset` is added, as in Twisted: the server does not know a file's encoding.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a: a few instructions for a three-letter extension, where the default hasher
/// (keyed against collision floods, which the bounded cache of a site's own file names
/// has no use for) costs about a hundred.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Twisted's additions to the system's MIME map.
const TWISTED_TYPES: &[(&str, &str)] = &[
    ("conf", "text/plain"),
    ("diff", "text/plain"),
    ("flac", "audio/x-flac"),
    ("java", "text/plain"),
    ("oz", "text/x-oz"),
    ("swf", "application/x-shockwave-flash"),
    ("wml", "text/vnd.wap.wml"),
    ("xul", "application/vnd.mozilla.xul+xml"),
    ("patch", "text/plain"),
];

/// Twisted's default type for files whose extension says nothing.
pub const DEFAULT_TYPE: &str = "text/html";

/// The map from file names to types and encodings.
#[derive(Debug, Clone)]
pub struct ContentTypes {
    default_type: String,
    types: Vec<(String, String)>,
    encodings: Vec<(String, String)>,
    /// `mime_guess`'s answers by lower-case extension: its table is searched with
    /// case-insensitive comparisons, over a thousand instructions a file response; a
    /// site serves few extensions, so the answers are kept (at most [`CACHED`]).
    guessed: RefCell<HashMap<Box<str>, Option<&'static str>, BuildHasherDefault<Fnv>>>,
}

/// How many extensions' guesses are kept.
const CACHED: usize = 256;

impl Default for ContentTypes {
    fn default() -> Self {
        ContentTypes {
            default_type: DEFAULT_TYPE.to_owned(),
            types: TWISTED_TYPES
                .iter()
                .map(|(e, t)| ((*e).to_owned(), (*t).to_owned()))
                .collect(),
            encodings: vec![
                ("gz".to_owned(), "gzip".to_owned()),
                ("bz2".to_owned(), "bzip2".to_owned()),
            ],
            guessed: RefCell::default(),
        }
    }
}

impl ContentTypes {
    /// Twisted's map: its additions, then `mime_guess`, default `text/html`.
    ///
    /// ```
    /// use twistor::web::static_files::content_type::ContentTypes;
    /// assert_eq!(ContentTypes::new().type_and_encoding("a.css").0, "text/css");
    /// ```
    pub fn new() -> ContentTypes {
        ContentTypes::default()
    }

    /// Sets the type of files whose extension is unknown.
    ///
    /// ```
    /// use twistor::web::static_files::content_type::ContentTypes;
    /// let c = ContentTypes::new().with_default_type("application/octet-stream");
    /// assert_eq!(c.type_and_encoding("README").0, "application/octet-stream");
    /// ```
    pub fn with_default_type(mut self, t: &str) -> ContentTypes {
        self.default_type = header_safe(t);
        self
    }

    /// Maps extension `ext` (without the dot, any case) to type `t`, ahead of the built-in map.
    ///
    /// ```
    /// use twistor::web::static_files::content_type::ContentTypes;
    /// let c = ContentTypes::new().with_type("rs", "text/rust");
    /// assert_eq!(c.type_and_encoding("main.RS").0, "text/rust");
    /// ```
    pub fn with_type(mut self, ext: &str, t: &str) -> ContentTypes {
        self.types
            .insert(0, (ext.to_ascii_lowercase(), header_safe(t)));
        self
    }

    /// Maps extension `ext` to the content encoding `enc`.
    ///
    /// ```
    /// use twistor::web::static_files::content_type::ContentTypes;
    /// let c = ContentTypes::new().with_encoding("br", "br");
    /// assert_eq!(c.type_and_encoding("app.js.br"), ("text/javascript".into(), Some("br".into())));
    /// ```
    pub fn with_encoding(mut self, ext: &str, enc: &str) -> ContentTypes {
        self.encodings
            .insert(0, (ext.to_ascii_lowercase(), header_safe(enc)));
        self
    }

    /// The type and encoding of a file called `name` (its base name).
    ///
    /// ```
    /// use twistor::web::static_files::content_type::ContentTypes;
    /// let c = ContentTypes::new();
    /// assert_eq!(c.type_and_encoding("page.html.gz"), ("text/html".into(), Some("gzip".into())));
    /// assert_eq!(c.type_and_encoding("notes.diff"), ("text/plain".into(), None));
    /// assert_eq!(c.type_and_encoding(".hidden"), ("text/html".into(), None));
    /// ```
    pub fn type_and_encoding(&self, name: &str) -> (String, Option<String>) {
        let (t, e) = self.type_and_encoding_ref(name);
        (t.to_owned(), e.map(str::to_owned))
    }

    /// [`type_and_encoding`](Self::type_and_encoding), borrowed from the map (no copy per
    /// request).
    ///
    /// ```
    /// use twistor::web::static_files::content_type::ContentTypes;
    /// assert_eq!(ContentTypes::new().type_and_encoding_ref("a.tar.gz"), ("application/x-tar", Some("gzip")));
    /// ```
    pub fn type_and_encoding_ref(&self, name: &str) -> (&str, Option<&str>) {
        let (stem, ext) = split_ext(name);
        let mut encoding = None;
        let mut ext = ext;
        if let Some(e) = ext
            && let Some((_, enc)) = self
                .encodings
                .iter()
                .find(|(x, _)| x.eq_ignore_ascii_case(e))
        {
            encoding = Some(enc.as_str());
            ext = split_ext(stem).1;
        }
        let t = ext
            .and_then(|e| self.lookup(e))
            .unwrap_or(&self.default_type);
        (t, encoding)
    }

    fn lookup(&self, ext: &str) -> Option<&str> {
        if let Some((_, t)) = self.types.iter().find(|(x, _)| x.eq_ignore_ascii_case(ext)) {
            return Some(t);
        }
        // Extensions are almost always lower case already: no copy per request for them.
        let lower;
        let ext = if ext.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = ext.to_ascii_lowercase();
            &lower
        } else {
            ext
        };
        if let Some(known) = self.guessed.borrow().get(ext) {
            return *known;
        }
        let guess = mime_guess::from_ext(ext).first_raw();
        let mut cache = self.guessed.borrow_mut();
        if cache.len() < CACHED {
            cache.insert(ext.into(), guess);
        }
        guess
    }
}

/// `t` with line breaks and NULs made spaces: every type and encoding in the map can go
/// into a header as it is, unchecked per response.
fn header_safe(t: &str) -> String {
    t.replace(['\r', '\n', '\0'], " ")
}

/// `name` split at its last dot, as Python's `splitext`: a leading dot starts no extension.
fn split_ext(name: &str) -> (&str, Option<&str>) {
    let trimmed = name.trim_start_matches('.');
    let lead = name.len() - trimmed.len();
    match trimmed.rfind('.') {
        Some(i) => (&name[..lead + i], Some(&name[lead + i + 1..])),
        None => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_guesses_answer_as_the_first_lookup_in_any_case() {
        let c = ContentTypes::new();
        for _ in 0..3 {
            assert_eq!(c.type_and_encoding_ref("a.CSS").0, "text/css");
            assert_eq!(c.type_and_encoding_ref("b.css").0, "text/css");
            assert_eq!(c.type_and_encoding_ref("c.nosuchext").0, DEFAULT_TYPE);
        }
        assert_eq!(
            c.guessed.borrow().len(),
            2,
            "one entry per lower-case extension"
        );
    }

    #[test]
    fn the_cache_stays_bounded() {
        let c = ContentTypes::new();
        for i in 0..CACHED + 50 {
            c.type_and_encoding_ref(&format!("f.x{i}"));
        }
        assert_eq!(c.guessed.borrow().len(), CACHED);
        assert_eq!(c.type_and_encoding_ref("f.png").0, "image/png");
    }

    #[test]
    fn configured_types_cannot_break_a_header() {
        let c = ContentTypes::new()
            .with_type("x", "text/x\r\nSet-Cookie: a=1")
            .with_default_type("a\nb");
        assert_eq!(c.type_and_encoding_ref("f.x").0, "text/x  Set-Cookie: a=1");
        assert_eq!(c.type_and_encoding_ref("f").0, "a b");
    }
}

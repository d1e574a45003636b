//! Compressing responses (Twisted's `EncodingResourceWrapper` with `GzipEncoderFactory`).

use std::rc::Rc;

use crate::web::Request;
use crate::web::resource::{Children, Render, Resource};

/// Whether `Accept-Encoding` allows gzip: a `gzip` (or `x-gzip`) or `*` element whose
/// `q` is not 0. Unlike Twisted, q-values are read, so `gzip;q=0` refuses it.
///
/// ```
/// use twistor::web::encoding::accepts_gzip;
/// assert!(accepts_gzip(b"deflate, gzip"));
/// assert!(accepts_gzip(b"GZIP;q=0.5"));
/// assert!(!accepts_gzip(b"gzip;q=0"));
/// assert!(!accepts_gzip(b"br"));
/// ```
pub fn accepts_gzip(header: &[u8]) -> bool {
    header.split(|&b| b == b',').any(|element| {
        let mut parts = element.split(|&b| b == b';');
        let name = parts.next().unwrap_or(b"").trim_ascii();
        let named = name.eq_ignore_ascii_case(b"gzip")
            || name.eq_ignore_ascii_case(b"x-gzip")
            || name == b"*";
        let refused = parts.any(|p| {
            let p = p.trim_ascii();
            p.len() >= 2
                && p[..2].eq_ignore_ascii_case(b"q=")
                && p[2..].iter().all(|&b| b == b'0' || b == b'.')
        });
        named && !refused
    })
}

/// Wraps a resource so its responses are gzip-compressed when the client accepts it
/// (`Vary: Accept-Encoding` is always added, so caches keep the two forms apart). The body
/// is compressed as it is written: a streamed response stays streamed. Children found
/// through the wrapper are the original's, unwrapped (as in Twisted).
///
/// ```
/// use std::rc::Rc;
/// use twistor::web::encoding::EncodingResourceWrapper;
/// use twistor::web::resource::Tree;
/// let _wrapped = EncodingResourceWrapper::new(Rc::new(Tree::new()));
/// ```
pub struct EncodingResourceWrapper {
    original: Rc<dyn Resource>,
    level: u32,
}

impl EncodingResourceWrapper {
    /// Wraps `original`, compressing at level 6 (zlib's default: level 9, Twisted's, costs
    /// much more CPU for little gain).
    pub fn new(original: Rc<dyn Resource>) -> EncodingResourceWrapper {
        EncodingResourceWrapper { original, level: 6 }
    }

    /// The compression level, 0 to 9.
    pub fn with_level(mut self, level: u32) -> EncodingResourceWrapper {
        self.level = level.min(9);
        self
    }
}

impl Resource for EncodingResourceWrapper {
    fn is_leaf(&self) -> bool {
        self.original.is_leaf()
    }
    fn children(&self) -> Option<&Children> {
        self.original.children()
    }
    fn get_child(&self, name: &[u8], request: &Request) -> Rc<dyn Resource> {
        self.original.get_child(name, request)
    }
    fn get_child_with_default(&self, name: &[u8], request: &Request) -> Rc<dyn Resource> {
        self.original.get_child_with_default(name, request)
    }
    fn allowed_methods(&self) -> Vec<&'static str> {
        self.original.allowed_methods()
    }
    fn body_mode(&self, request: &Request) -> crate::web::BodyMode {
        self.original.body_mode(request)
    }
    fn render(&self, request: &Request) -> Render {
        request.add_header("Vary", "Accept-Encoding");
        if request
            .get_header("accept-encoding")
            .is_some_and(accepts_gzip)
        {
            request.encode_gzip(self.level);
        }
        self.original.render(request)
    }
}

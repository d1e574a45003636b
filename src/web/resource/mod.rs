//! Resources: the tree a [`Site`](crate::web::Site) serves (Twisted's `twisted.web.resource`).
//!
//! A request's path is consumed segment by segment: starting at the root, while the current
//! resource is not a leaf, the next segment moves from `postpath` to `prepath` and
//! [`Resource::get_child_with_default`] picks the child (a child put with
//! [`Resource::put_child`] first, else [`Resource::get_child`], which defaults to a 404
//! page). `/` gives the one empty segment `b""`, `/foo/` gives `foo` then `b""`; a leaf gets
//! the unconsumed segments in [`Request::postpath`].
//!
//! The resource found renders the request: [`Resource::render`] dispatches on the method to
//! `render_get`, `render_post`, ... (`render_head` defaults to `render_get`, the body being
//! dropped); a method the resource does not implement gets `405 Method Not Allowed` with
//! `Allow` listing [`Resource::allowed_methods`], a method unknown to HTTP `501`. A render
//! answers in one of the forms of [`Render`]: bytes now, "not done yet" (the resource keeps
//! the request and finishes it later), a Deferred of bytes, or an `async` block. A render
//! that panics or fails gives a 500 page (no details to the client) and is logged.

mod error_pages;

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

pub use error_pages::{
    ErrorPage, ForbiddenResource, NoResource, Redirect, no_resource, redirect_page, redirect_to,
};

use crate::web::{BodyMode, Request};
use crate::{Deferred, Failure};

/// A future rendering a body, run on the site's reactor.
pub type RenderFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, Failure>>>>;

/// What a render answers.
pub enum Render {
    /// The whole body, now (sent with its `Content-Length`).
    Body(Vec<u8>),
    /// A body known at compile time (no allocation).
    Static(&'static [u8]),
    /// The resource kept the request and will `write`/`finish` it later (Twisted's
    /// `NOT_DONE_YET`).
    NotDoneYet,
    /// The body, later; a failure gives a 500 page.
    Later(Deferred<Vec<u8>>),
    /// The body from an `async` block run on the site's reactor (`.await` Deferreds in it).
    Async(RenderFuture),
}

impl Render {
    /// An `async` block's answer.
    ///
    /// ```
    /// use twistor::web::resource::Render;
    /// let r = Render::from_async(async { Ok(b"later".to_vec()) });
    /// assert!(matches!(r, Render::Async(_)));
    /// ```
    pub fn from_async(f: impl Future<Output = Result<Vec<u8>, Failure>> + 'static) -> Render {
        Render::Async(Box::pin(f))
    }
}

impl From<Vec<u8>> for Render {
    fn from(b: Vec<u8>) -> Render {
        Render::Body(b)
    }
}

impl From<String> for Render {
    fn from(s: String) -> Render {
        Render::Body(s.into_bytes())
    }
}

impl From<&'static str> for Render {
    fn from(s: &'static str) -> Render {
        Render::Static(s.as_bytes())
    }
}

impl From<Deferred<Vec<u8>>> for Render {
    fn from(d: Deferred<Vec<u8>>) -> Render {
        Render::Later(d)
    }
}

/// The static children of a resource: what [`Resource::put_child`] fills. A resource that
/// has children holds one and returns it from [`Resource::children`].
///
/// ```
/// use std::rc::Rc;
/// use twistor::web::resource::{Children, NoResource, Resource};
/// let c = Children::new();
/// c.put(b"x", Rc::new(NoResource::new()));
/// assert!(c.get(b"x").is_some());
/// assert!(c.get(b"y").is_none());
/// ```
#[derive(Default)]
pub struct Children(RefCell<ChildMap>);

/// Up to [`FEW_CHILDREN`] children are searched in a vector (comparing a few short names
/// costs less than hashing the segment of every request); more go to a hash map.
enum ChildMap {
    Few(Vec<(Vec<u8>, Rc<dyn Resource>)>),
    Many(HashMap<Vec<u8>, Rc<dyn Resource>>),
}

const FEW_CHILDREN: usize = 16;

impl Default for ChildMap {
    fn default() -> Self {
        ChildMap::Few(Vec::new())
    }
}

impl Children {
    /// No children.
    pub fn new() -> Children {
        Children::default()
    }
    /// Adds (or replaces) child `name`.
    pub fn put(&self, name: &[u8], child: Rc<dyn Resource>) {
        let mut map = self.0.borrow_mut();
        match &mut *map {
            ChildMap::Few(v) => {
                if let Some(slot) = v.iter_mut().find(|(n, _)| n == name) {
                    slot.1 = child;
                } else if v.len() < FEW_CHILDREN {
                    v.push((name.to_vec(), child));
                } else {
                    let mut m: HashMap<_, _> = std::mem::take(v).into_iter().collect();
                    m.insert(name.to_vec(), child);
                    *map = ChildMap::Many(m);
                }
            }
            ChildMap::Many(m) => {
                m.insert(name.to_vec(), child);
            }
        }
    }
    /// Child `name`.
    pub fn get(&self, name: &[u8]) -> Option<Rc<dyn Resource>> {
        match &*self.0.borrow() {
            ChildMap::Few(v) => v.iter().find(|(n, _)| n == name).map(|(_, c)| c.clone()),
            ChildMap::Many(m) => m.get(name).cloned(),
        }
    }
    /// Removes child `name`.
    pub fn remove(&self, name: &[u8]) -> Option<Rc<dyn Resource>> {
        match &mut *self.0.borrow_mut() {
            ChildMap::Few(v) => {
                let i = v.iter().position(|(n, _)| n == name)?;
                Some(v.remove(i).1)
            }
            ChildMap::Many(m) => m.remove(name),
        }
    }
}

/// The methods HTTP defines that a resource may implement; others get 501.
const KNOWN_METHODS: &[&[u8]] = &[
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS",
];

/// A web resource (Twisted's `IResource`/`Resource`). Every method has a default; a dynamic
/// page implements `render_get` (and lists other methods in `allowed_methods`), a container
/// holds [`Children`].
///
/// ```
/// use std::rc::Rc;
/// use twistor::web::resource::{Children, Render, Resource};
/// use twistor::web::Request;
///
/// struct Page;
/// impl Resource for Page {
///     fn is_leaf(&self) -> bool { true }
///     fn render_get(&self, r: &Request) -> Option<Render> {
///         r.set_header("Content-Type", "text/plain");
///         Some(format!("you asked for {:?}", r.postpath()).into())
///     }
/// }
/// #[derive(Default)]
/// struct Root { children: Children }
/// impl Resource for Root {
///     fn children(&self) -> Option<&Children> { Some(&self.children) }
/// }
/// let root = Root::default();
/// root.put_child(b"page", Rc::new(Page));
/// ```
pub trait Resource: 'static {
    /// A leaf renders every path below it itself (default false).
    #[doc(alias = "isLeaf")]
    fn is_leaf(&self) -> bool {
        false
    }

    /// The static children, if this resource keeps any.
    fn children(&self) -> Option<&Children> {
        None
    }

    /// Adds a static child (Twisted's `putChild`). Needs [`children`](Self::children);
    /// without it the child is dropped with an error in the log.
    #[doc(alias = "putChild")]
    fn put_child(&self, name: &[u8], child: Rc<dyn Resource>) {
        match self.children() {
            Some(c) => c.put(name, child),
            None => crate::report_error!(
                target: "twistor::web",
                "put_child({:?}) on a resource without children(): dropped",
                String::from_utf8_lossy(name)
            ),
        }
    }

    /// The child for a segment that is not a static child (default: a 404 page).
    #[doc(alias = "getChild")]
    fn get_child(&self, _name: &[u8], _request: &Request) -> Rc<dyn Resource> {
        Rc::new(NoResource::new())
    }

    /// The static child `name` if there is one, else [`get_child`](Self::get_child).
    #[doc(alias = "getChildWithDefault")]
    fn get_child_with_default(&self, name: &[u8], request: &Request) -> Rc<dyn Resource> {
        if let Some(c) = self.children().and_then(|c| c.get(name)) {
            return c;
        }
        self.get_child(name, request)
    }

    /// How this resource takes a request's body, asked once the resource is found and
    /// before the body is read (so [`Request::body`] is still empty here; the head is all
    /// there is). Default [`BodyMode::Buffered`]: whole, in memory, in [`Request::body`].
    /// [`BodyMode::Stream`] renders at once and hands the body over as it arrives (see
    /// [`crate::web::request_body`]), for uploads of any size. A resource that renders by
    /// delegating to another one delegates this too.
    ///
    /// ```
    /// use twistor::web::resource::{Render, Resource};
    /// use twistor::web::{BodyMode, Request};
    ///
    /// struct Upload;
    /// impl Resource for Upload {
    ///     fn body_mode(&self, r: &Request) -> BodyMode {
    ///         if r.method() == b"PUT" { BodyMode::Stream { max: Some(1 << 30) } } else { BodyMode::Buffered }
    ///     }
    /// }
    /// ```
    fn body_mode(&self, _request: &Request) -> BodyMode {
        BodyMode::Buffered
    }

    /// The methods this resource answers, for the `Allow` header of a 405 (default GET and
    /// HEAD: list the others a resource implements).
    fn allowed_methods(&self) -> Vec<&'static str> {
        vec!["GET", "HEAD"]
    }

    /// Answers the request; the default dispatches on the method (see the module docs).
    fn render(&self, request: &Request) -> Render {
        let r = match request.method() {
            b"GET" => self.render_get(request),
            b"HEAD" => self.render_head(request),
            b"POST" => self.render_post(request),
            b"PUT" => self.render_put(request),
            b"DELETE" => self.render_delete(request),
            b"PATCH" => self.render_patch(request),
            b"OPTIONS" => self.render_options(request),
            _ => None,
        };
        r.unwrap_or_else(|| unsupported(request, &self.allowed_methods()))
    }

    /// GET; `None`: not implemented.
    fn render_get(&self, _request: &Request) -> Option<Render> {
        None
    }
    /// HEAD: by default the GET answer, whose body is never sent.
    fn render_head(&self, request: &Request) -> Option<Render> {
        self.render_get(request)
    }
    /// POST; `None`: not implemented.
    fn render_post(&self, _request: &Request) -> Option<Render> {
        None
    }
    /// PUT; `None`: not implemented.
    fn render_put(&self, _request: &Request) -> Option<Render> {
        None
    }
    /// DELETE; `None`: not implemented.
    fn render_delete(&self, _request: &Request) -> Option<Render> {
        None
    }
    /// PATCH; `None`: not implemented.
    fn render_patch(&self, _request: &Request) -> Option<Render> {
        None
    }
    /// OPTIONS; `None`: not implemented.
    fn render_options(&self, _request: &Request) -> Option<Render> {
        None
    }
}

/// 405 with `Allow` for a method HTTP knows, 501 for one it does not.
fn unsupported(request: &Request, allowed: &[&'static str]) -> Render {
    let method = String::from_utf8_lossy(request.method()).into_owned();
    if KNOWN_METHODS.contains(&request.method()) {
        request.set_header("Allow", allowed.join(", "));
        ErrorPage::new(
            crate::web::status::NOT_ALLOWED,
            "Method Not Allowed",
            &format!("This resource does not answer {method} requests."),
        )
        .render(request)
    } else {
        ErrorPage::new(
            crate::web::status::NOT_IMPLEMENTED,
            "Not Implemented",
            &format!("The method {method} is not implemented."),
        )
        .render(request)
    }
}

/// A resource that only holds children (Twisted's plain `Resource()` used as a root):
/// rendering it gives 404.
///
/// ```
/// use std::rc::Rc;
/// use twistor::web::resource::{NoResource, Resource, Tree};
/// let root = Tree::new();
/// root.put_child(b"gone", Rc::new(NoResource::new()));
/// assert!(root.children().is_some());
/// ```
#[derive(Default)]
pub struct Tree {
    children: Children,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Tree {
        Tree::default()
    }
}

impl Resource for Tree {
    fn children(&self) -> Option<&Children> {
        Some(&self.children)
    }
    fn render(&self, request: &Request) -> Render {
        NoResource::new().render(request)
    }
}

/// Finds the resource for `request` from `root`, moving segments from `postpath` to
/// `prepath` (Twisted's `getChildForRequest`).
pub fn get_child_for_request(root: Rc<dyn Resource>, request: &Request) -> Rc<dyn Resource> {
    let mut r = root;
    while !r.is_leaf() {
        let Some(seg) = request.next_segment() else {
            break;
        };
        r = r.get_child_with_default(&seg, request);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(usize);
    impl Resource for Named {
        fn render_get(&self, _r: &Request) -> Option<Render> {
            Some(Render::Body(self.0.to_string().into_bytes()))
        }
    }

    fn id(c: &Children, name: &[u8]) -> Option<usize> {
        let r = c.get(name)?;
        // The resource's identity, through its address.
        Some(Rc::as_ptr(&r) as *const () as usize)
    }

    #[test]
    fn children_behave_alike_below_and_above_the_small_size() {
        for n in [3, FEW_CHILDREN, FEW_CHILDREN + 1, 40] {
            let c = Children::new();
            let mut made = Vec::new();
            for i in 0..n {
                let r: Rc<dyn Resource> = Rc::new(Named(i));
                made.push(Rc::as_ptr(&r) as *const () as usize);
                c.put(format!("c{i}").as_bytes(), r);
            }
            for (i, p) in made.iter().enumerate() {
                assert_eq!(id(&c, format!("c{i}").as_bytes()), Some(*p), "{n} children");
            }
            assert!(c.get(b"missing").is_none());
            let again: Rc<dyn Resource> = Rc::new(Named(99));
            let p = Rc::as_ptr(&again) as *const () as usize;
            c.put(b"c0", again);
            assert_eq!(id(&c, b"c0"), Some(p), "put replaces");
            assert!(c.remove(b"c1").is_some());
            assert!(c.get(b"c1").is_none());
            assert!(c.remove(b"c1").is_none());
            assert_eq!(id(&c, b"c2"), Some(made[2]));
        }
    }
}

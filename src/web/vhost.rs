//! Name-based virtual hosting (Twisted's `twisted.web.vhost.NameVirtualHost`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::web::Request;
use crate::web::resource::{NoResource, Render, Resource};

/// Chooses a resource by the request's `Host` (lower-cased, port removed), else the
/// default, else 404.
///
/// ```
/// use std::rc::Rc;
/// use twistor::web::resource::{NoResource, Tree};
/// use twistor::web::vhost::NameVirtualHost;
/// let v = NameVirtualHost::new();
/// v.add_host("Example.COM", Rc::new(Tree::new()));
/// v.set_default(Rc::new(NoResource::new()));
/// assert!(v.has_host("example.com"));
/// ```
#[derive(Default)]
pub struct NameVirtualHost {
    hosts: RefCell<HashMap<String, Rc<dyn Resource>>>,
    default: RefCell<Option<Rc<dyn Resource>>>,
}

impl NameVirtualHost {
    /// No hosts, no default.
    pub fn new() -> NameVirtualHost {
        NameVirtualHost::default()
    }
    /// Serves `name` (compared case-insensitively) with `resource`.
    pub fn add_host(&self, name: &str, resource: Rc<dyn Resource>) {
        self.hosts
            .borrow_mut()
            .insert(name.to_ascii_lowercase(), resource);
    }
    /// Stops serving `name`.
    pub fn remove_host(&self, name: &str) {
        self.hosts.borrow_mut().remove(&name.to_ascii_lowercase());
    }
    /// Whether `name` is served.
    pub fn has_host(&self, name: &str) -> bool {
        self.hosts.borrow().contains_key(&name.to_ascii_lowercase())
    }
    /// The resource for hosts not listed.
    pub fn set_default(&self, resource: Rc<dyn Resource>) {
        *self.default.borrow_mut() = Some(resource);
    }

    fn pick(&self, request: &Request) -> Rc<dyn Resource> {
        let host = request.get_request_hostname().to_ascii_lowercase();
        if let Some(r) = self.hosts.borrow().get(&host) {
            return r.clone();
        }
        if let Some(d) = self.default.borrow().as_ref() {
            return d.clone();
        }
        Rc::new(NoResource::with_message(&format!(
            "host '{host}' not in vhost map"
        )))
    }
}

impl Resource for NameVirtualHost {
    fn render(&self, request: &Request) -> Render {
        self.pick(request).render(request)
    }
    fn get_child(&self, name: &[u8], request: &Request) -> Rc<dyn Resource> {
        let r = self.pick(request);
        if r.is_leaf() {
            // The leaf renders the whole path: give the segment back.
            request.push_back_segment();
            return r;
        }
        r.get_child_with_default(name, request)
    }
}

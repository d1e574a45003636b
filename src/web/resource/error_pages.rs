//! Error pages and redirects (Twisted's `ErrorPage`, `NoResource`, `ForbiddenResource`,
//! `Redirect`, `redirectTo`). Every text put into a page is HTML-escaped.

use std::rc::Rc;

use super::{Render, Resource};
use crate::web::{Request, status};

use crate::web::html::escape as escape_html;

/// A page answering every method with `code`, a title and a detail (escaped). Every child
/// lookup below it gives itself.
///
/// ```
/// use twistor::web::resource::ErrorPage;
/// let p = ErrorPage::new(418, "Teapot", "<short & stout>");
/// assert!(p.body().contains("&lt;short &amp; stout&gt;"));
/// ```
#[derive(Debug, Clone)]
pub struct ErrorPage {
    code: u16,
    brief: String,
    detail: String,
}

impl ErrorPage {
    /// A page for `code`.
    pub fn new(code: u16, brief: &str, detail: &str) -> ErrorPage {
        ErrorPage {
            code,
            brief: brief.into(),
            detail: detail.into(),
        }
    }

    /// The HTML sent.
    pub fn body(&self) -> String {
        let b = escape_html(&self.brief);
        format!(
            "<!DOCTYPE html>\n<html><head><title>{} - {b}</title></head><body><h1>{b}</h1><p>{}</p></body></html>\n",
            self.code,
            escape_html(&self.detail)
        )
    }
}

impl Resource for ErrorPage {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render(&self, request: &Request) -> Render {
        request.set_response_code(self.code);
        request.set_header("Content-Type", "text/html; charset=utf-8");
        Render::Body(self.body().into_bytes())
    }
}

/// 404 Not Found.
///
/// ```
/// use twistor::web::resource::NoResource;
/// assert!(NoResource::new().page().body().contains("No Such Resource"));
/// ```
#[derive(Debug, Clone)]
pub struct NoResource(ErrorPage);

impl NoResource {
    /// The default message.
    pub fn new() -> NoResource {
        NoResource::with_message("Sorry. No luck finding that resource.")
    }
    /// With `message` as the detail.
    pub fn with_message(message: &str) -> NoResource {
        NoResource(ErrorPage::new(
            status::NOT_FOUND,
            "No Such Resource",
            message,
        ))
    }
    /// The page.
    pub fn page(&self) -> &ErrorPage {
        &self.0
    }
}

impl Default for NoResource {
    fn default() -> Self {
        NoResource::new()
    }
}

impl Resource for NoResource {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render(&self, request: &Request) -> Render {
        self.0.render(request)
    }
}

/// 403 Forbidden.
///
/// ```
/// use twistor::web::resource::ForbiddenResource;
/// assert!(ForbiddenResource::new().page().body().contains("Forbidden"));
/// ```
#[derive(Debug, Clone)]
pub struct ForbiddenResource(ErrorPage);

impl ForbiddenResource {
    /// The default message.
    pub fn new() -> ForbiddenResource {
        ForbiddenResource(ErrorPage::new(
            status::FORBIDDEN,
            "Forbidden Resource",
            "Sorry, resource is forbidden.",
        ))
    }
    /// The page.
    pub fn page(&self) -> &ErrorPage {
        &self.0
    }
}

impl Default for ForbiddenResource {
    fn default() -> Self {
        ForbiddenResource::new()
    }
}

impl Resource for ForbiddenResource {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render(&self, request: &Request) -> Render {
        self.0.render(request)
    }
}

/// Redirects (302) to `url`: sets `Location` and returns a small page linking there
/// (Twisted's `redirectTo`; the URL is escaped in the page).
///
/// ```
/// let page = twistor::web::resource::redirect_page(b"/x?a=<1>");
/// assert!(String::from_utf8(page).unwrap().contains("/x?a=&lt;1&gt;"));
/// ```
pub fn redirect_to(url: &[u8], request: &Request) -> Render {
    request.redirect(url);
    request.set_header("Content-Type", "text/html; charset=utf-8");
    Render::Body(redirect_page(url))
}

/// The page [`redirect_to`] sends.
pub fn redirect_page(url: &[u8]) -> Vec<u8> {
    let u = escape_html(&String::from_utf8_lossy(url));
    format!(
        "<!DOCTYPE html>\n<html><head><meta http-equiv=\"refresh\" content=\"0;URL={u}\"></head><body><a href=\"{u}\">click here</a></body></html>\n"
    )
    .into_bytes()
}

/// A resource that redirects every request to one URL.
///
/// ```
/// use twistor::web::resource::Redirect;
/// let _r = Redirect::new(b"https://example.com/");
/// ```
#[derive(Debug, Clone)]
pub struct Redirect {
    url: Vec<u8>,
}

impl Redirect {
    /// Redirects to `url`.
    pub fn new(url: &[u8]) -> Redirect {
        Redirect { url: url.to_vec() }
    }
}

impl Resource for Redirect {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render(&self, request: &Request) -> Render {
        redirect_to(&self.url, request)
    }
}

/// An `Rc` of a [`NoResource`], for `get_child` implementations.
pub fn no_resource() -> Rc<dyn Resource> {
    Rc::new(NoResource::new())
}

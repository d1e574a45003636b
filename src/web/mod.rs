//! twisted.web: HTTP/1.1 for servers and clients.
//!
//! The server: [`Site`] (a factory serving a [`resource`] tree) builds one
//! [`http::HttpChannel`] per connection, which hands each [`Request`] to the site (its body
//! buffered, or streamed to a resource that asks for it: [`request_body`]); around it
//! [`static_files`] (Twisted's `static.File`), [`proxy`] (a reverse proxy), [`vhost`],
//! [`encoding`] (gzip) and [`session`].
//!
//! The client: [`client`] (`Agent`, its connection pool and the agents that wrap it:
//! redirects, content decoding, cookies).
//!
//! Shared by both: [`Headers`] (an ordered, case-insensitive header map whose values cannot
//! carry a line break onto the wire), [`date`] (HTTP dates), [`status`] (codes and reason
//! phrases), [`chunked`] (the chunked transfer coding, strict where leniency let requests be
//! smuggled) and [`html`] (escaping for the pages the server writes).

pub mod chunked;
pub mod client;
pub mod date;
pub mod encoding;
pub mod headers;
pub mod html;
pub mod http;
pub mod proxy;
pub mod request;
pub mod request_body;
pub mod resource;
pub mod session;
pub mod site;
pub mod static_files;
pub mod status;
pub mod vhost;

pub use headers::{Headers, InvalidHeaderName};
pub use http::HttpLimits;
pub use request::Request;
pub use request_body::{BodyMode, BodyReceiver};
pub use site::Site;

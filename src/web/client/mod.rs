//! twisted.web's HTTP client: [`Agent`] and its wrappers.
//!
//! | module | Twisted | job |
//! |---|---|---|
//! | [`agent`] | `client.Agent` | URI → connection → request; pool, TLS policy, timeouts |
//! | [`pool`] | `HTTPConnectionPool` | idle persistent connections, the retry rule |
//! | [`protocol`] | `HTTP11ClientProtocol` | one request at a time on one connection |
//! | `parser` | `HTTPClientParser` | status line, headers, body framing |
//! | [`response`] | `Response`, `readBody` | body delivery to a protocol, or to bytes |
//! | [`producer`] | `IBodyProducer`, `FileBodyProducer` | request bodies |
//! | [`redirect`] | `RedirectAgent`, `BrowserLikeRedirectAgent` | following redirects |
//! | [`decoder`] | `ContentDecoderAgent`, `GzipDecoder` | gzip and deflate bodies |
//! | [`cookie`] | `CookieAgent` | a small cookie jar |
//! | [`uri`] | `client.URI` | parsing, `Location` resolution |
//! | [`error`] | `_newclient` exceptions | failure types |
//!
//! Where it departs from Twisted (each on the side of the fixes users asked for):
//! `response.headers` holds every header; a close-delimited body is complete for
//! [`read_body`] ([`read_body_strict`] keeps Twisted's `PartialDownloadError`);
//! `Connection: close` is recognised in any case and anywhere in a list; `Location` is
//! resolved against the URI of the hop that sent it; 307/308 keep their method and replay the
//! body when it can be replayed; a corrupt gzip body fails instead of ending empty; the
//! response head is bounded; there is a whole-response timeout.
//!
//! ```
//! use std::rc::Rc;
//! use twistor::prelude::*;
//! use twistor::web::client::{Agent, AgentOptions, HttpAgent, HttpConnectionPool, read_body};
//!
//! // A canned HTTP server.
//! struct Canned;
//! impl Protocol for Canned {
//!     fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
//!         if data.windows(4).any(|w| w == b"\r\n\r\n") {
//!             cx.transport().write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
//!         }
//!     }
//! }
//! let reactor = Reactor::new().unwrap();
//! let port = twistor::transport::tcp::listen_tcp_with(&reactor, 0, for_protocol(|| Canned), ListenOptions::on("127.0.0.1")).unwrap();
//! let pool = HttpConnectionPool::new(Rc::new(reactor.clone()));
//! let agent = Agent::with_options(&reactor, AgentOptions::default(), Some(pool.clone()));
//! let url = format!("http://127.0.0.1:{}/", port.port());
//! let d = agent.request("GET", &url, None, None).add_callback_deferred(|r| read_body(&r));
//! while !d.has_result() {
//!     reactor.iterate(std::time::Duration::from_millis(10)).unwrap();
//! }
//! assert_eq!(twistor::testing::success_result_of(&d), b"hello");
//! assert_eq!(pool.idle_count(), 1); // kept for the next request
//! ```

pub mod agent;
pub mod cookie;
pub mod decoder;
pub mod error;
mod parser;
pub mod pool;
pub mod producer;
pub mod protocol;
pub mod redirect;
pub mod response;
pub mod uri;

pub use agent::{Agent, AgentOptions, EndpointFactory, HttpAgent, HttpsPolicy};
pub use cookie::{CookieAgent, CookieJar};
pub use decoder::ContentDecoderAgent;
pub use pool::{Connection, HttpConnectionPool, PoolKey};
pub use producer::{
    BodyConsumer, BodyProducer, BytesProducer, FileBodyProducer, StreamProducer, StreamWriter,
};
pub use protocol::{ClientRequest, ClientState, HeadLimits, HttpClientProtocol};
pub use redirect::{BrowserLikeRedirectAgent, RedirectAgent};
pub use response::{Response, read_body, read_body_limited, read_body_strict};
pub use uri::Uri;

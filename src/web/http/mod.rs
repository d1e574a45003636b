//! The HTTP/1.1 server protocol (Twisted's `twisted.web.http.HTTPChannel`).
//!
//! # How a connection is served
//!
//! One request is answered at a time. Bytes that arrive while a response is outstanding are
//! only buffered (up to [`HttpLimits::max_pipelined`], then reading pauses); the next request
//! is parsed when the current response is finished. Responses are therefore always in
//! request order, and a malformed later request is refused (400 and close) only after the
//! earlier responses are out.
//!
//! A request head is parsed strictly (RFC 9112): CRLF line ends only, no obsolete line
//! folding, no control characters in values, one framing decision (`Content-Length` or
//! `Transfer-Encoding: chunked`, never both, never twice, no other transfer coding), one
//! `Host` on HTTP/1.1. Oversize input gets its status: 414 for the request line, 431 for the
//! head, 413 for the body. Once a head with a body is in, its resource is found and asked how
//! it takes the body: read whole before it renders (the default), or streamed to it as it
//! arrives, the resource rendering at once (see [`crate::web::request_body`]). `Expect:
//! 100-continue` is answered then (when the server is about to read the body), unless the
//! body is refused by its length.
//!
//! # Timers
//!
//! A connection has one timer and one deadline that depends on its phase: waiting for a
//! request (idle timeout, closes silently), receiving a head (a deadline from its first byte,
//! not extended by more bytes: slowloris), receiving a body (extended by each read, suspended while the application holds a
//! streamed body); answered
//! with 408 when a request was cut. Moving the deadline later costs nothing (the timer
//! re-arms itself when it fires early), so keep-alive requests schedule no timer each.
//! A connection the server closes for a timeout or a refused request gets one more
//! deadline, [`HttpLimits::abort_timeout`]: a client that stopped reading cannot hold the
//! closing connection open, it is aborted (Twisted's `abortTimeout`). A close after a
//! normal response sets no timer.

mod channel;
mod limits;
pub mod multipart;
pub(crate) mod parse;

pub use channel::HttpChannel;
pub use limits::HttpLimits;

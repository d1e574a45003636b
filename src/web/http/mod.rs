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
//! head, 413 for the body. The body is read whole before the request is dispatched; `Expect:
//! 100-continue` is answered only then (when the server is about to read the body).
//!
//! # Timers
//!
//! A connection has one timer and one deadline that depends on its phase: waiting for a
//! request (idle timeout, closes silently), receiving a head (a deadline from its first byte,
//! not extended by more bytes: slowloris), receiving a body (extended by each read); answered
//! with 408 when a request was cut. Moving the deadline later costs nothing (the timer
//! re-arms itself when it fires early), so keep-alive requests schedule no timer each.

mod channel;
mod limits;
pub(crate) mod parse;

pub use channel::HttpChannel;
pub use limits::HttpLimits;

//! [`ContentDecoderAgent`]: asks for compressed bodies (`Accept-Encoding: gzip, deflate`) and
//! decodes them while they stream (Twisted's `ContentDecoderAgent` with `GzipDecoder`).
//!
//! `Content-Encoding` codings are undone from the last one back; the first one that is not
//! supported stops decoding and it and those before it stay in the header (the header is
//! removed when all were decoded). A decoded response has no known length. Departures from
//! Twisted: the caller's own `Accept-Encoding` is kept instead of adding a second one;
//! `deflate` is decoded (zlib-wrapped, or raw as some servers send it); a corrupt or
//! truncated compressed body fails with [`DecodingError`] instead of ending empty; the decoded
//! size is bounded (default 1 GiB) against decompression bombs.

use std::io::Write;
use std::rc::Rc;

use flate2::write::{DeflateDecoder, GzDecoder, ZlibDecoder};

use crate::transport::Producer;
use crate::web::Headers;
use crate::{Deferred, Failure};

use super::agent::HttpAgent;
use super::error::{
    BodyAlreadyDelivered, BodyTooLarge, DecodingError, PotentialDataLoss, ResponseDone,
    ResponseFailed,
};
use super::producer::BodyProducer;
use super::response::{BodySink, BodySource, Response};

/// Decodes gzip and deflate bodies (see the module docs).
///
/// ```
/// use twistor::web::client::{Agent, ContentDecoderAgent};
/// fn build(agent: Agent) -> ContentDecoderAgent<Agent> {
///     ContentDecoderAgent::new(agent).max_decoded_size(64 << 20)
/// }
/// ```
pub struct ContentDecoderAgent<A> {
    agent: A,
    limit: u64,
}

impl<A: HttpAgent> ContentDecoderAgent<A> {
    /// Wraps `agent`.
    pub fn new(agent: A) -> Self {
        ContentDecoderAgent {
            agent,
            limit: 1 << 30,
        }
    }

    /// Fails a body that decodes to more than `limit` bytes.
    pub fn max_decoded_size(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Gzip,
    Deflate,
}

enum Decoder {
    Gzip(GzDecoder<Vec<u8>>),
    /// Deflate whose wrapping (zlib or raw) is not known until two bytes arrived.
    Sniff(Vec<u8>),
    Zlib(ZlibDecoder<Vec<u8>>),
    Raw(DeflateDecoder<Vec<u8>>),
}

impl Decoder {
    fn new(c: Coding) -> Decoder {
        match c {
            Coding::Gzip => Decoder::Gzip(GzDecoder::new(Vec::new())),
            Coding::Deflate => Decoder::Sniff(Vec::new()),
        }
    }

    fn write(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        if let Decoder::Sniff(buf) = self {
            buf.extend_from_slice(data);
            if buf.len() < 2 {
                return Ok(Vec::new());
            }
            let (a, b) = (buf[0] as u16, buf[1] as u16);
            let zlib = a & 0x0f == 8 && ((a << 8) | b) % 31 == 0;
            let held = std::mem::take(buf);
            *self = if zlib {
                Decoder::Zlib(ZlibDecoder::new(Vec::new()))
            } else {
                Decoder::Raw(DeflateDecoder::new(Vec::new()))
            };
            return self.write(&held);
        }
        match self {
            Decoder::Gzip(d) => {
                d.write_all(data)?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Zlib(d) => {
                d.write_all(data)?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Raw(d) => {
                d.write_all(data)?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Sniff(_) => Ok(Vec::new()),
        }
    }

    fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        let truncated =
            || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated stream");
        match self {
            Decoder::Gzip(d) => {
                d.try_finish()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Zlib(d) => {
                d.try_finish()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Raw(d) => {
                d.try_finish()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Sniff(b) if b.is_empty() => Ok(Vec::new()),
            Decoder::Sniff(_) => Err(truncated()),
        }
    }
}

struct DecodingSink {
    /// Applied in order (the last coding of the header first).
    decoders: Vec<Decoder>,
    out: Option<Box<dyn BodySink>>,
    total: u64,
    limit: u64,
    control: Rc<dyn Producer>,
}

impl DecodingSink {
    fn run(&mut self, data: &[u8], finish: bool) -> Result<Vec<u8>, Failure> {
        let mut cur = data.to_vec();
        for d in &mut self.decoders {
            let mut next = d
                .write(&cur)
                .map_err(|e| Failure::new(DecodingError(e.to_string())))?;
            if finish {
                next.extend(
                    d.finish()
                        .map_err(|e| Failure::new(DecodingError(e.to_string())))?,
                );
            }
            cur = next;
        }
        self.total += cur.len() as u64;
        if self.total > self.limit {
            return Err(Failure::new(BodyTooLarge(self.limit)));
        }
        Ok(cur)
    }

    fn fail(&mut self, f: Failure) {
        if let Some(mut out) = self.out.take() {
            out.end(Failure::new(ResponseFailed::new(f)));
        }
        self.control.stop_producing();
    }
}

impl BodySink for DecodingSink {
    fn data(&mut self, data: &[u8]) {
        if self.out.is_none() {
            return;
        }
        match self.run(data, false) {
            Ok(d) if d.is_empty() => {}
            Ok(d) => {
                if let Some(out) = self.out.as_mut() {
                    out.data(&d);
                }
            }
            Err(f) => self.fail(f),
        }
    }

    fn end(&mut self, reason: Failure) {
        if self.out.is_none() {
            return;
        }
        if reason.is::<ResponseDone>() || reason.is::<PotentialDataLoss>() {
            match self.run(&[], true) {
                Ok(d) => {
                    if let Some(mut out) = self.out.take() {
                        if !d.is_empty() {
                            out.data(&d);
                        }
                        out.end(reason);
                    }
                }
                Err(f) => self.fail(f),
            }
        } else if let Some(mut out) = self.out.take() {
            out.end(reason);
        }
    }
}

struct DecodedBody {
    inner: Rc<dyn BodySource>,
    codings: Vec<Coding>,
    limit: u64,
}

impl BodySource for DecodedBody {
    fn deliver(&self, sink: Box<dyn BodySink>) -> Result<(), BodyAlreadyDelivered> {
        self.inner.deliver(Box::new(DecodingSink {
            decoders: self.codings.iter().map(|&c| Decoder::new(c)).collect(),
            out: Some(sink),
            total: 0,
            limit: self.limit,
            control: self.inner.control(),
        }))
    }

    fn control(&self) -> Rc<dyn Producer> {
        self.inner.control()
    }
}

/// The response with its supported codings undone.
fn decode(response: Response, limit: u64) -> Response {
    let all: Vec<String> = response
        .headers
        .get_all("content-encoding")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let mut rest = all.clone();
    let mut codings = Vec::new();
    while let Some(last) = rest.last() {
        let c = match last.as_str() {
            "gzip" | "x-gzip" => Coding::Gzip,
            "deflate" => Coding::Deflate,
            "identity" => {
                rest.pop();
                continue;
            }
            _ => break,
        };
        codings.push(c);
        rest.pop();
    }
    if codings.is_empty() {
        return response;
    }
    let body = Rc::new(DecodedBody {
        inner: response.body.clone(),
        codings,
        limit,
    });
    let mut decoded = response.with_body(body, None);
    decoded.headers.remove("content-encoding");
    if !rest.is_empty() {
        decoded.headers.add("Content-Encoding", rest.join(", "));
    }
    decoded.headers.remove("content-length");
    decoded
}

impl<A: HttpAgent> HttpAgent for ContentDecoderAgent<A> {
    fn request(
        &self,
        method: &str,
        uri: &str,
        headers: Option<Headers>,
        body: Option<Rc<dyn BodyProducer>>,
    ) -> Deferred<Response> {
        let mut headers = headers.unwrap_or_default();
        if !headers.contains("accept-encoding") {
            headers.add("Accept-Encoding", "gzip, deflate");
        }
        let limit = self.limit;
        self.agent
            .request(method, uri, Some(headers), body)
            .add_callback(move |r| decode(r, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{failure_result_of, success_result_of};
    use crate::web::client::read_body;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn encoded(body: Vec<u8>, enc: &str) -> Response {
        let mut r = Response::from_bytes(200, "OK", body);
        r.headers.add("Content-Encoding", enc);
        r
    }

    #[test]
    fn gzip_decoded_and_header_removed() {
        let r = decode(encoded(gzip(b"hello hello hello"), "gzip"), 1 << 20);
        assert!(!r.headers.contains("content-encoding"));
        assert_eq!(r.length, None);
        assert_eq!(success_result_of(&read_body(&r)), b"hello hello hello");
    }

    #[test]
    fn unsupported_coding_left_in_header() {
        let r = decode(encoded(gzip(b"x"), "br, gzip"), 1 << 20);
        assert_eq!(r.headers.get_str("content-encoding"), Some("br"));
        let r = decode(encoded(b"raw".to_vec(), "br"), 1 << 20);
        assert_eq!(r.headers.get_str("content-encoding"), Some("br"));
        assert_eq!(success_result_of(&read_body(&r)), b"raw");
    }

    #[test]
    fn corrupt_and_truncated_gzip_fail() {
        let r = decode(encoded(b"not gzip at all".to_vec(), "gzip"), 1 << 20);
        assert!(failure_result_of(&read_body(&r)).is::<ResponseFailed>());
        let mut z = gzip(b"some longer text to compress");
        z.truncate(z.len() - 6);
        let r = decode(encoded(z, "gzip"), 1 << 20);
        let f = failure_result_of(&read_body(&r));
        assert!(
            f.downcast_ref::<ResponseFailed>()
                .unwrap()
                .has::<DecodingError>(),
            "{f}"
        );
    }

    #[test]
    fn decoded_size_bounded() {
        let r = decode(encoded(gzip(&vec![0u8; 100_000]), "gzip"), 1000);
        let f = failure_result_of(&read_body(&r));
        assert!(
            f.downcast_ref::<ResponseFailed>()
                .unwrap()
                .has::<BodyTooLarge>()
        );
    }

    #[test]
    fn deflate_zlib_and_raw() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"zlib body").unwrap();
        let r = decode(encoded(z.finish().unwrap(), "deflate"), 1 << 20);
        assert_eq!(success_result_of(&read_body(&r)), b"zlib body");
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(b"raw body").unwrap();
        let r = decode(encoded(d.finish().unwrap(), "deflate"), 1 << 20);
        assert_eq!(success_result_of(&read_body(&r)), b"raw body");
    }
}

//! The chunked transfer coding (RFC 9112 section 7.1), both ways, shared by the server (request
//! bodies) and the client (response bodies).
//!
//! The decoder is strict where leniency has let requests be smuggled past a proxy (the cases
//! of Twisted's CVE-2022-24801): a chunk size is hexadecimal digits only (no `0x`, no sign, no
//! whitespace) that fit in 64 bits; every line ends in CRLF, never a bare LF or CR; the two
//! bytes after a chunk's data are exactly CRLF; chunk extensions are ignored but may hold only
//! tab, space, visible ASCII other than `\` and bytes of 0x80 and above. Lines are bounded
//! ([`MAX_SIZE_LINE`], [`MAX_TRAILER`]) and the search for a line's end resumes where it
//! stopped, so a peer cannot make the decoder buffer without bound or rescan quadratically.
//! Data is handed on as it arrives: a partial chunk is not held back. Trailers are read and
//! discarded; the bytes after the last chunk's terminating empty line are not consumed, so a
//! pipelined request that follows stays with the caller.

use std::fmt::Write as _;

/// The longest chunk-size line (size and extensions, without CRLF) accepted.
///
/// ```
/// assert_eq!(twistor::web::chunked::MAX_SIZE_LINE, 4096);
/// ```
pub const MAX_SIZE_LINE: usize = 4096;

/// The most trailer bytes accepted after the last chunk.
///
/// ```
/// assert_eq!(twistor::web::chunked::MAX_TRAILER, 64 * 1024);
/// ```
pub const MAX_TRAILER: usize = 64 * 1024;

/// Why a chunked body is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkedError {
    /// The chunk size is not hexadecimal digits only, or is empty.
    #[error("chunked body: the chunk size {0:?} is not a hexadecimal number")]
    BadSize(String),
    /// The chunk size does not fit in 64 bits.
    #[error("chunked body: the chunk size is too large")]
    SizeOverflow,
    /// A chunk extension holds a byte that is not allowed there.
    #[error("chunked body: a chunk extension holds the byte 0x{0:02x}")]
    BadExtension(u8),
    /// A line is longer than its limit.
    #[error("chunked body: a chunk-size line is longer than {MAX_SIZE_LINE} bytes")]
    LineTooLong,
    /// The trailer section is larger than its limit.
    #[error("chunked body: the trailer is larger than {MAX_TRAILER} bytes")]
    TrailerTooLarge,
    /// A line ended with a bare LF or CR, or chunk data was not followed by CRLF.
    #[error("chunked body: a line does not end with CRLF")]
    BadLineEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataCr,
    DataLf,
    Trailer,
    Done,
}

/// What one call to [`ChunkedDecoder::feed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// How many input bytes were used; the rest (only when `done`) belongs to what follows.
    pub consumed: usize,
    /// Whether the body ended (the last chunk and the trailer were read).
    pub done: bool,
}

/// A streaming decoder of one chunked body.
///
/// ```
/// use twistor::web::chunked::ChunkedDecoder;
///
/// let mut d = ChunkedDecoder::new();
/// let mut body = Vec::new();
/// let input = b"5;name=val\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nGET / HTTP/1.1";
/// let p = d.feed(input, &mut |data| body.extend_from_slice(data)).unwrap();
/// assert!(p.done);
/// assert_eq!(body, b"hello world");
/// assert_eq!(&input[p.consumed..], b"GET / HTTP/1.1");
///
/// // Smuggling-era leniencies are refused.
/// let mut d = ChunkedDecoder::new();
/// assert!(d.feed(b"0x5\r\nhello\r\n", &mut |_| {}).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// The line being read (chunk size, or a trailer line).
    line: Vec<u8>,
    trailer: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new()
    }
}

fn parse_size(line: &[u8]) -> Result<u64, ChunkedError> {
    let (size, ext) = match line.iter().position(|&b| b == b';') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[][..]),
    };
    if size.is_empty() || !size.iter().all(u8::is_ascii_hexdigit) {
        return Err(ChunkedError::BadSize(
            String::from_utf8_lossy(&size[..size.len().min(32)]).into_owned(),
        ));
    }
    if let Some(&b) = ext.iter().find(|&&b| {
        !(b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) && b != b'\\' || b >= 0x80)
    }) {
        return Err(ChunkedError::BadExtension(b));
    }
    size.iter().try_fold(0u64, |n, &b| {
        let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
        n.checked_mul(16)
            .and_then(|n| n.checked_add(digit))
            .ok_or(ChunkedError::SizeOverflow)
    })
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size,
            line: Vec::new(),
            trailer: 0,
        }
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads a line into `self.line`; returns how many bytes of `input` it used and whether
    /// the line is complete (its CRLF read and stripped).
    fn read_line(&mut self, input: &[u8], limit: usize) -> Result<(usize, bool), ChunkedError> {
        // A CR that ended the previous input: the LF must come first now.
        if self.line.last() == Some(&b'\r') {
            return match input.first() {
                Some(b'\n') => {
                    self.line.pop();
                    Ok((1, true))
                }
                Some(_) => Err(ChunkedError::BadLineEnd),
                None => Ok((0, false)),
            };
        }
        match memchr::memchr2(b'\r', b'\n', input) {
            Some(i) if input[i] == b'\n' => Err(ChunkedError::BadLineEnd),
            Some(i) => {
                if self.line.len() + i > limit {
                    return Err(too_long(limit));
                }
                self.line.extend_from_slice(&input[..i]);
                match input.get(i + 1) {
                    Some(b'\n') => Ok((i + 2, true)),
                    Some(_) => Err(ChunkedError::BadLineEnd),
                    None => {
                        self.line.push(b'\r');
                        Ok((i + 1, false))
                    }
                }
            }
            None => {
                if self.line.len() + input.len() > limit {
                    return Err(too_long(limit));
                }
                self.line.extend_from_slice(input);
                Ok((input.len(), false))
            }
        }
    }

    /// Decodes `input`, handing body bytes to `on_data` as they come.
    ///
    /// Stops at the end of the body (`done`); after an error the decoder must not be fed
    /// again (the message is broken: answer 400 and close, or fail the response).
    pub fn feed(
        &mut self,
        input: &[u8],
        on_data: &mut dyn FnMut(&[u8]),
    ) -> Result<Progress, ChunkedError> {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            match self.state {
                State::Done => break,
                State::Size => {
                    let (n, complete) = self.read_line(rest, MAX_SIZE_LINE)?;
                    pos += n;
                    if complete {
                        let size = parse_size(&self.line)?;
                        self.line.clear();
                        self.state = if size == 0 {
                            State::Trailer
                        } else {
                            State::Data(size)
                        };
                    }
                }
                State::Data(left) => {
                    let n = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    on_data(&rest[..n]);
                    pos += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                }
                State::DataCr => {
                    if rest[0] != b'\r' {
                        return Err(ChunkedError::BadLineEnd);
                    }
                    pos += 1;
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if rest[0] != b'\n' {
                        return Err(ChunkedError::BadLineEnd);
                    }
                    pos += 1;
                    self.state = State::Size;
                }
                State::Trailer => {
                    let room = MAX_TRAILER.saturating_sub(self.trailer);
                    let (n, complete) = self.read_line(rest, room).map_err(|e| match e {
                        ChunkedError::LineTooLong => ChunkedError::TrailerTooLarge,
                        e => e,
                    })?;
                    pos += n;
                    self.trailer += n;
                    if complete {
                        let empty = self.line.is_empty();
                        self.line.clear();
                        if empty {
                            self.state = State::Done;
                        }
                    }
                }
            }
        }
        Ok(Progress {
            consumed: pos,
            done: self.state == State::Done,
        })
    }
}

fn too_long(limit: usize) -> ChunkedError {
    if limit == MAX_SIZE_LINE {
        ChunkedError::LineTooLong
    } else {
        ChunkedError::TrailerTooLarge
    }
}

/// Appends `data` as one chunk (nothing for empty data: an empty chunk would end the body).
///
/// ```
/// let mut out = Vec::new();
/// twistor::web::chunked::write_chunk(&mut out, b"hello world, 26 bytes long");
/// out.extend_from_slice(twistor::web::chunked::LAST_CHUNK);
/// assert_eq!(out, b"1a\r\nhello world, 26 bytes long\r\n0\r\n\r\n");
/// ```
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut size = String::with_capacity(18);
    let _ = write!(size, "{:x}\r\n", data.len());
    out.reserve(size.len() + data.len() + 2);
    out.extend_from_slice(size.as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk and an empty trailer: the end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkedError> {
        let mut d = ChunkedDecoder::new();
        let mut body = Vec::new();
        let p = d.feed(input, &mut |b| body.extend_from_slice(b))?;
        Ok((body, p.consumed, p.done))
    }

    #[test]
    fn refuses_smuggling_forms() {
        for bad in [
            &b"0x5\r\nhello\r\n0\r\n\r\n"[..],
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5;a\\b\r\nhello\r\n0\r\n\r\n",
            b"5;a\x00\r\nhello\r\n0\r\n\r\n",
            b"5;a\x7f\r\nhello\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"0\r\nX: a\nb\r\n\r\n",
        ] {
            assert!(
                decode_all(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn accepts_extensions_leading_zeros_and_high_bytes() {
        let (body, _, done) =
            decode_all(b"0005;a=\"x y\"\t;\x80\xff\r\nhello\r\n0;z\r\n\r\n").unwrap();
        assert!(done);
        assert_eq!(body, b"hello");
    }

    #[test]
    fn crlf_inside_data_is_data() {
        let (body, _, done) = decode_all(b"4\r\n\r\n\r\n\r\n0\r\n\r\n").unwrap();
        assert!(done);
        assert_eq!(body, b"\r\n\r\n");
    }

    #[test]
    fn size_line_and_trailer_are_bounded() {
        let mut long = vec![b'0'; MAX_SIZE_LINE + 1];
        long.extend_from_slice(b"\r\n");
        assert_eq!(decode_all(&long), Err(ChunkedError::LineTooLong));
        let mut d = ChunkedDecoder::new();
        d.feed(b"0\r\n", &mut |_| {}).unwrap();
        let line = [b'a'; 1000];
        let mut err = None;
        for _ in 0..100 {
            if let Err(e) = d.feed(&line, &mut |_| {}) {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(ChunkedError::TrailerTooLarge));
    }

    proptest! {
        /// Any body, chunked any way, split into pieces anywhere, decodes to itself and
        /// leaves what follows untouched.
        #[test]
        fn round_trip_in_any_pieces(
            body in proptest::collection::vec(any::<u8>(), 0..2000),
            chunk in 1usize..300,
            cut in 1usize..50,
        ) {
            let mut wire = Vec::new();
            for c in body.chunks(chunk) {
                write_chunk(&mut wire, c);
            }
            wire.extend_from_slice(b"0\r\nTrailer: x\r\n\r\nNEXT");
            let mut d = ChunkedDecoder::new();
            let mut out = Vec::new();
            let mut used = 0;
            for piece in wire.chunks(cut) {
                if d.is_done() {
                    break;
                }
                let p = d.feed(piece, &mut |b| out.extend_from_slice(b)).unwrap();
                used += p.consumed;
            }
            prop_assert!(d.is_done());
            prop_assert_eq!(out, body);
            prop_assert_eq!(&wire[used..], b"NEXT");
        }
    }
}

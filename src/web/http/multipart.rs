//! `multipart/form-data` request bodies (what Twisted's `Request.requestReceived` parses
//! into `args`): each part named by its `Content-Disposition` becomes one value of that
//! name, a file's content included; parts without a name are skipped.
//!
//! Parsing is done when the arguments are asked for, not while the request is read, so a
//! request nobody asks the arguments of costs nothing. A malformed body is therefore a
//! [`FormError`] from [`Request::try_args`](crate::web::Request::try_args) (Twisted answers
//! 400 before rendering).

use std::collections::HashMap;

/// Why a form body could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The `boundary` parameter is missing, empty, longer than 70 bytes or not ASCII.
    #[error("multipart body without a usable boundary")]
    Boundary,
    /// The body does not follow the multipart framing (no delimiter, a part without the
    /// blank line after its headers, no closing delimiter).
    #[error("malformed multipart body")]
    Malformed,
}

/// The boundary of a `multipart/form-data` content type; `None` for any other type.
///
/// ```
/// use twistor::web::http::multipart::{FormError, boundary};
/// assert_eq!(boundary(b"multipart/form-data; boundary=AaB03x"), Some(Ok(b"AaB03x".to_vec())));
/// assert_eq!(boundary(b"Multipart/Form-Data; boundary=\"a b\""), Some(Ok(b"a b".to_vec())));
/// assert_eq!(boundary(b"multipart/form-data; boundary=\xe2\x98\x83"), Some(Err(FormError::Boundary)));
/// assert_eq!(boundary(b"text/plain"), None);
/// ```
pub fn boundary(content_type: &[u8]) -> Option<Result<Vec<u8>, FormError>> {
    let mut params = content_type.split(|&b| b == b';');
    let kind = params.next()?.trim_ascii();
    if !kind.eq_ignore_ascii_case(b"multipart/form-data") {
        return None;
    }
    let found = params
        .filter_map(|p| param(p.trim_ascii()))
        .find(|(k, _)| k.eq_ignore_ascii_case(b"boundary"))
        .map(|(_, v)| v);
    Some(match found {
        Some(b)
            if !b.is_empty() && b.len() <= 70 && b.iter().all(|&c| (0x20..0x7f).contains(&c)) =>
        {
            Ok(b)
        }
        _ => Err(FormError::Boundary),
    })
}

/// `key=value` or `key="quoted \" value"`.
fn param(p: &[u8]) -> Option<(&[u8], Vec<u8>)> {
    let eq = memchr::memchr(b'=', p)?;
    let (key, raw) = (p[..eq].trim_ascii(), p[eq + 1..].trim_ascii());
    let value = match raw.strip_prefix(b"\"") {
        Some(rest) => {
            let mut v = Vec::with_capacity(rest.len());
            let mut it = rest.iter();
            while let Some(&c) = it.next() {
                match c {
                    b'"' => break,
                    b'\\' => v.extend(it.next().copied()),
                    c => v.push(c),
                }
            }
            v
        }
        None => raw.to_vec(),
    };
    Some((key, value))
}

/// Appends the named parts of `body` to `args`, in order.
///
/// ```
/// use std::collections::HashMap;
/// use twistor::web::http::multipart::parse;
/// let body = b"--B\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nabasdfg\r\n--B--\r\n";
/// let mut args = HashMap::new();
/// parse(body, b"B", &mut args).unwrap();
/// assert_eq!(args[&b"text"[..]], vec![b"abasdfg".to_vec()]);
/// ```
pub fn parse(
    body: &[u8],
    boundary: &[u8],
    args: &mut HashMap<Vec<u8>, Vec<Vec<u8>>>,
) -> Result<(), FormError> {
    let mut delim = Vec::with_capacity(boundary.len() + 4);
    delim.extend_from_slice(b"\r\n--");
    delim.extend_from_slice(boundary);
    let finder = memchr::memmem::Finder::new(&delim);
    // The first delimiter may open the body, without the CRLF before it.
    let mut at = if body.starts_with(&delim[2..]) {
        delim.len() - 2
    } else {
        finder.find(body).ok_or(FormError::Malformed)? + delim.len()
    };
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(());
        }
        // Transport padding (spaces, tabs) may follow a delimiter before its CRLF.
        let pad = rest
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let rest = rest[pad..]
            .strip_prefix(b"\r\n")
            .ok_or(FormError::Malformed)?;
        let start = body.len() - rest.len();
        // A part without headers starts with its blank line.
        let head_end = if rest.starts_with(b"\r\n") {
            2
        } else {
            memchr::memmem::find(rest, b"\r\n\r\n")
                .map(|i| i + 4)
                .ok_or(FormError::Malformed)?
        };
        let end = finder.find(&rest[head_end..]).ok_or(FormError::Malformed)?;
        let name = part_name(&rest[..head_end]);
        if let Some(name) = name {
            args.entry(name)
                .or_default()
                .push(rest[head_end..head_end + end].to_vec());
        }
        at = start + head_end + end + delim.len();
    }
}

/// The `name` of a part's `Content-Disposition: form-data` header.
fn part_name(head: &[u8]) -> Option<Vec<u8>> {
    head.split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = memchr::memchr(b':', line)?;
            line[..colon]
                .trim_ascii()
                .eq_ignore_ascii_case(b"content-disposition")
                .then(|| &line[colon + 1..])
        })
        .flat_map(|v| v.split(|&b| b == b';').skip(1))
        .filter_map(|p| param(p.trim_ascii()))
        .find(|(k, _)| k.eq_ignore_ascii_case(b"name"))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_part_without_headers_is_skipped_and_its_content_not_read_as_headers() {
        let body = b"--B\r\n\r\nname=\"x\"\r\n\r\n--B\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--B--";
        let mut args = HashMap::new();
        parse(body, b"B", &mut args).unwrap();
        assert_eq!(args.len(), 1);
        assert_eq!(args[&b"a"[..]], [b"1".to_vec()]);
    }

    proptest! {
        /// Whatever a client sends as a body and a boundary, parsing ends without a panic.
        #[test]
        fn any_body_parses_or_fails_cleanly(
            body in proptest::collection::vec(
                prop_oneof![Just(b'-'), Just(b'\r'), Just(b'\n'), Just(b'B'), Just(b'"'),
                            Just(b';'), Just(b'='), Just(b':'), any::<u8>()],
                0..200,
            ),
            boundary in proptest::collection::vec(prop_oneof![Just(b'B'), Just(b'-')], 1..3),
        ) {
            let mut args = HashMap::new();
            let _ = parse(&body, &boundary, &mut args);
            let _ = super::boundary(&body);
        }
    }
}

//! The endpoint description tokenizer (Twisted's `endpoints._tokenize` / `_parse`).
//!
//! A description is split on `:`. Within one part, the first `=` makes the part a keyword
//! argument (`name=value`); after that `=` only `:` separates, so a value may hold further
//! `=` signs. A backslash takes the next character literally (`\:` is a colon inside a
//! value, `\\` a backslash). Parts without `=` are positional arguments, the first of which
//! names the endpoint type.

use super::error::{EndpointError, ErrorKind};

/// A description split into its parts: the type, the positional arguments and the keyword
/// arguments, unescaped, in the order given.
///
/// ```
/// use twistor::endpoints::Description;
///
/// let d = Description::parse(r"tcp:80:interface=a\:b").unwrap();
/// assert_eq!(d.kind, "tcp");
/// assert_eq!(d.args, ["80"]);
/// assert_eq!(d.keyword("interface"), Some("a:b"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Description {
    /// The text as given (for error messages).
    pub text: String,
    /// The endpoint type: the first part, as written.
    pub kind: String,
    /// The positional arguments after the type.
    pub args: Vec<String>,
    /// The keyword arguments, in order.
    pub kwargs: Vec<(String, String)>,
}

impl Description {
    /// Tokenizes `text`. Fails on a trailing lone backslash, on a keyword given twice, and
    /// on a keyword argument in the type's place.
    ///
    /// ```
    /// use twistor::endpoints::Description;
    ///
    /// let d = Description::parse("unix:path=run/a=b.sock:timeout=5").unwrap();
    /// assert_eq!(d.keyword("path"), Some("run/a=b.sock"));
    /// assert!(Description::parse(r"tcp:80\").is_err());
    /// assert!(Description::parse("tcp:80:backlog=1:backlog=2").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Description, EndpointError> {
        let err = |kind| EndpointError::new(text, kind);
        let mut parts: Vec<(String, Option<String>)> = Vec::new();
        let mut current = String::new();
        let mut key: Option<String> = None;
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(n) => current.push(n),
                    None => return Err(err(ErrorKind::TrailingBackslash)),
                },
                ':' => {
                    let part = std::mem::take(&mut current);
                    parts.push(match key.take() {
                        Some(k) => (k, Some(part)),
                        None => (part, None),
                    });
                }
                '=' if key.is_none() => key = Some(std::mem::take(&mut current)),
                _ => current.push(c),
            }
        }
        parts.push(match key.take() {
            Some(k) => (k, Some(current)),
            None => (current, None),
        });
        let mut parts = parts.into_iter();
        let kind = match parts.next() {
            Some((k, None)) => k,
            Some((k, Some(_))) => return Err(err(ErrorKind::UnknownType(format!("{k}=")))),
            None => String::new(),
        };
        let mut args = Vec::new();
        let mut kwargs: Vec<(String, String)> = Vec::new();
        for (k, v) in parts {
            match v {
                None => args.push(k),
                Some(v) => {
                    if kwargs.iter().any(|(seen, _)| *seen == k) {
                        return Err(err(ErrorKind::DuplicateKeyword(k)));
                    }
                    kwargs.push((k, v));
                }
            }
        }
        Ok(Description {
            text: text.to_string(),
            kind,
            args,
            kwargs,
        })
    }

    /// The value of keyword `name`, if given.
    ///
    /// ```
    /// use twistor::endpoints::Description;
    /// let d = Description::parse("tcp:80:backlog=5").unwrap();
    /// assert_eq!(d.keyword("backlog"), Some("5"));
    /// assert_eq!(d.keyword("interface"), None);
    /// ```
    pub fn keyword(&self, name: &str) -> Option<&str> {
        self.kwargs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Escapes `value` so that it stays one argument inside a description: backslashes, colons
/// and equals signs get a backslash (Twisted's `quoteStringArgument`, which leaves `=` alone;
/// escaping it too keeps a positional argument that holds one positional).
///
/// ```
/// use twistor::endpoints::{quote_string_argument, Description};
///
/// let inner = quote_string_argument("tcp:127.0.0.1:8080");
/// assert_eq!(inner, r"tcp\:127.0.0.1\:8080");
/// let d = Description::parse(&format!("tls:example.com:443:endpoint={inner}")).unwrap();
/// assert_eq!(d.keyword("endpoint"), Some("tcp:127.0.0.1:8080"));
/// ```
#[doc(alias = "quoteStringArgument")]
pub fn quote_string_argument(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ':' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

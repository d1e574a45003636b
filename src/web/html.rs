//! HTML escaping for the pages the server writes itself (error pages, redirects, directory
//! listings): every name or URL that came from a request or the file system goes through
//! [`escape`] before it is put into a page.

/// `s` with `& < > " '` escaped for HTML text and attribute values.
///
/// ```
/// use twistor::web::html::escape;
/// assert_eq!(escape("<a href='x'>&\""), "&lt;a href=&#x27;x&#x27;&gt;&amp;&quot;");
/// ```
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

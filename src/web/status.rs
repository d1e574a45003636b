//! HTTP status codes and their reason phrases (Twisted's `http.RESPONSES`).

/// The reason phrase of `code` (RFC 9110's), or `"Unknown Status"` for a code it does not
/// name.
///
/// ```
/// use twistor::web::status::{reason_phrase, NOT_FOUND};
/// assert_eq!(reason_phrase(NOT_FOUND), "Not Found");
/// assert_eq!(reason_phrase(299), "Unknown Status");
/// ```
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Unknown Status",
    }
}

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident = $v:expr;)*) => {
        $($(#[$doc])* pub const $name: u16 = $v;)*
    };
}

codes! {
    /// 100
    CONTINUE = 100;
    /// 101
    SWITCHING_PROTOCOLS = 101;
    /// 200
    OK = 200;
    /// 201
    CREATED = 201;
    /// 202
    ACCEPTED = 202;
    /// 204
    NO_CONTENT = 204;
    /// 206
    PARTIAL_CONTENT = 206;
    /// 301
    MOVED_PERMANENTLY = 301;
    /// 302
    FOUND = 302;
    /// 303
    SEE_OTHER = 303;
    /// 304
    NOT_MODIFIED = 304;
    /// 307
    TEMPORARY_REDIRECT = 307;
    /// 308
    PERMANENT_REDIRECT = 308;
    /// 400
    BAD_REQUEST = 400;
    /// 401
    UNAUTHORIZED = 401;
    /// 403
    FORBIDDEN = 403;
    /// 404
    NOT_FOUND = 404;
    /// 405
    NOT_ALLOWED = 405;
    /// 408
    REQUEST_TIMEOUT = 408;
    /// 411
    LENGTH_REQUIRED = 411;
    /// 412
    PRECONDITION_FAILED = 412;
    /// 413
    CONTENT_TOO_LARGE = 413;
    /// 414
    URI_TOO_LONG = 414;
    /// 416
    RANGE_NOT_SATISFIABLE = 416;
    /// 417
    EXPECTATION_FAILED = 417;
    /// 431
    HEADER_FIELDS_TOO_LARGE = 431;
    /// 500
    INTERNAL_SERVER_ERROR = 500;
    /// 501
    NOT_IMPLEMENTED = 501;
    /// 502
    BAD_GATEWAY = 502;
    /// 503
    SERVICE_UNAVAILABLE = 503;
    /// 504
    GATEWAY_TIMEOUT = 504;
    /// 505
    HTTP_VERSION_NOT_SUPPORTED = 505;
}

/// Whether a response with `code` never has a body (1xx, 204, 304): no `Content-Length`,
/// no chunked framing, nothing after the head.
///
/// ```
/// assert!(twistor::web::status::body_forbidden(304));
/// assert!(!twistor::web::status::body_forbidden(200));
/// ```
pub fn body_forbidden(code: u16) -> bool {
    (100..200).contains(&code) || code == 204 || code == 304
}

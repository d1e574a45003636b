//! The limits a server channel enforces on what a client may send.

/// What one HTTP connection may send and how long it may take (each limit has a documented
/// default, chosen so a hostile client cannot make the server hold unbounded memory or a
/// connection forever).
///
/// ```
/// use twistor::web::http::HttpLimits;
///
/// let limits = HttpLimits { max_body: 1 << 20, ..HttpLimits::default() };
/// assert_eq!(limits.max_headers, 100);
/// assert_eq!(limits.max_body, 1 << 20);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HttpLimits {
    /// Longest request line in bytes (default 8 KiB); longer → `414 URI Too Long`.
    pub max_request_line: usize,
    /// Largest request head (request line and header lines) in bytes (default 16 KiB);
    /// larger → `431 Request Header Fields Too Large`.
    pub max_head: usize,
    /// Most header lines in one request (default 100); more → `431`.
    pub max_headers: usize,
    /// Largest request body in bytes (default 10 MiB), by `Content-Length` or chunked;
    /// larger → `413 Content Too Large`. Bodies are kept in memory up to this size; a
    /// resource that takes its body as a stream sets its own maximum instead
    /// (`BodyMode::Stream`).
    pub max_body: u64,
    /// Bytes of later (pipelined) requests kept while one request is answered (default
    /// 64 KiB): above it the channel stops reading until the response is out, so a client
    /// that pipelines without reading cannot make the server buffer more.
    pub max_pipelined: usize,
    /// Seconds a kept-alive connection may wait for the next request (default 60; `None`:
    /// forever). Closes without a response.
    pub idle_timeout: Option<f64>,
    /// Seconds from the first byte of a request head to its last (default 20; `None`: no
    /// deadline): a client trickling its head byte by byte ("slowloris") is cut off after
    /// this, whatever its pace. Answered with `408 Request Timeout`.
    pub head_timeout: Option<f64>,
    /// Seconds the body may go without a byte arriving (default 30; `None`: forever).
    /// Answered with `408`.
    pub body_timeout: Option<f64>,
    /// Bytes per second a body read whole must average once `body_grace` has passed since
    /// its head (default 1024; `None`: no minimum). Answered with `408`. Without it a
    /// client sending a byte just before each `body_timeout` holds its connection (and the
    /// body's memory) for as long as it likes. Streamed bodies (`BodyMode::Stream`) are
    /// paced by their resource and only get `body_timeout`.
    pub min_body_rate: Option<f64>,
    /// Seconds a body may take before `min_body_rate` applies (default 60).
    pub body_grace: f64,
    /// Most connections open at once from one IP address (default `None`: no limit). One
    /// more is answered `503 Service Unavailable` and closed. Off by default: clients behind
    /// one NAT or proxy share an address.
    pub max_connections_per_peer: Option<usize>,
    /// Seconds a connection the server closed for a timeout or a refused request may take
    /// to send what is queued (default 15; `None`: forever). A client that stops reading
    /// would otherwise hold a closing connection open indefinitely; past this it is
    /// aborted, queued bytes dropped.
    pub abort_timeout: Option<f64>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_request_line: 8 * 1024,
            max_head: 16 * 1024,
            max_headers: 100,
            max_body: 10 * 1024 * 1024,
            max_pipelined: 64 * 1024,
            idle_timeout: Some(60.0),
            head_timeout: Some(20.0),
            body_timeout: Some(30.0),
            min_body_rate: Some(1024.0),
            body_grace: 60.0,
            max_connections_per_peer: None,
            abort_timeout: Some(15.0),
        }
    }
}

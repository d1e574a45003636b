//! `twistor get URL`: fetches a URL with the twistor HTTP client and writes the body to
//! stdout, following redirects and decoding gzip/deflate.
//!
//! Exit status: 0 for a response under 400; 1 for a response of 400 or more (its body is
//! still written: error pages are often what one wants to see; the status goes to stderr),
//! and for a failure (refused connection, TLS verification, a broken response: the cause is
//! named on stderr); 2 for bad arguments (a malformed URL, an unreadable `--ca`).

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use twistor::Failure;
use twistor::protocol::{Context, Protocol};
use twistor::tls::TrustRoots;
use twistor::web::Headers;
use twistor::web::client::error::{PotentialDataLoss, ResponseDone};
use twistor::web::client::{
    Agent, AgentOptions, BodyProducer, BytesProducer, ContentDecoderAgent, HttpAgent, HttpsPolicy,
    RedirectAgent, Response,
};

use crate::servers::new_reactor;

/// The `get` subcommand's arguments.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// The URL (http:// or https://).
    url: String,
    /// Write the status line and the headers before the body.
    #[arg(short = 'i', long = "include")]
    include: bool,
    /// The method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    method: String,
    /// A request body (sent with Content-Length; the method becomes POST unless -X says).
    #[arg(short = 'd', long = "data")]
    data: Option<String>,
    /// An extra header, `Name: value`; repeatable.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// Trust the CA certificates of this PEM file instead of the system's.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Follow at most this many redirects.
    #[arg(long, default_value_t = 20)]
    max_redirects: usize,
    /// Give up after this many seconds for the whole exchange.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Send the request through this HTTP proxy (`http://host:port`); https URLs go in a
    /// CONNECT tunnel.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
}

/// Writes body bytes to stdout as they come.
struct ToStdout {
    result: Rc<RefCell<Option<Result<(), Failure>>>>,
}

impl Protocol for ToStdout {
    fn data_received(&mut self, _cx: &Context<Self>, data: &[u8]) {
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(data) {
            *self.result.borrow_mut() = Some(Err(Failure::new(e)));
        }
    }
    fn connection_lost(&mut self, _cx: &Context<Self>, reason: Failure) {
        let mut r = self.result.borrow_mut();
        if r.is_none() {
            *r = Some(
                if reason.is::<ResponseDone>() || reason.is::<PotentialDataLoss>() {
                    Ok(())
                } else {
                    Err(reason)
                },
            );
        }
    }
}

fn print_head(r: &Response) {
    let mut out = std::io::stdout().lock();
    let _ = write!(
        out,
        "HTTP/{}.{} {} {}\r\n",
        r.version.0, r.version.1, r.code, r.phrase
    );
    for (name, value) in r.headers.iter() {
        let _ = out.write_all(name.as_bytes());
        let _ = out.write_all(b": ");
        let _ = out.write_all(value);
        let _ = out.write_all(b"\r\n");
    }
    let _ = out.write_all(b"\r\n");
}

/// Runs `twistor get`; returns the exit status.
pub fn get(args: &GetArgs) -> i32 {
    let mut options = AgentOptions::default();
    if let Some(ca) = &args.ca {
        match TrustRoots::from_pem_file(ca) {
            Ok(roots) => options.https_policy = HttpsPolicy::with_trust_roots(roots),
            Err(e) => {
                eprintln!("twistor get: --ca {}: {e}", ca.display());
                return 2;
            }
        }
    }
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        eprintln!("twistor get: --timeout must be a positive number of seconds");
        return 2;
    }
    options.response_timeout = Some(Duration::from_secs_f64(args.timeout));
    let mut headers = Headers::new();
    for h in &args.headers {
        let Some((name, value)) = h.split_once(':') else {
            eprintln!("twistor get: -H {h:?}: expected `Name: value`");
            return 2;
        };
        if let Err(e) = headers.try_add(name.trim(), value.trim()) {
            eprintln!("twistor get: -H {h:?}: {e}");
            return 2;
        }
    }
    if let Err(e) = twistor::web::client::Uri::parse(&args.url) {
        eprintln!("twistor get: {e}");
        return 2;
    }
    let Some(reactor) = new_reactor("get") else {
        return 1;
    };
    let mut base = Agent::with_options(&reactor, options, None);
    if let Some(proxy) = &args.proxy {
        base = match base.via_proxy(proxy) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("twistor get: --proxy: {e}");
                return 2;
            }
        };
    }
    let agent = RedirectAgent::new(ContentDecoderAgent::new(base)).limit(args.max_redirects);
    let method = match (&args.data, args.method.as_str()) {
        (Some(_), "GET") => "POST".to_string(),
        (_, m) => m.to_string(),
    };
    let body: Option<Rc<dyn BodyProducer>> = args
        .data
        .as_ref()
        .map(|d| Rc::new(BytesProducer::new(d.as_bytes())) as Rc<dyn BodyProducer>);
    let include = args.include;
    let outcome: Rc<RefCell<Option<Result<(), Failure>>>> = Rc::default();
    let status: Rc<RefCell<Option<(u16, String)>>> = Rc::default();
    let (o, s) = (outcome.clone(), status.clone());
    let d = agent
        .request(&method, &args.url, Some(headers), body)
        .add_both(move |res| {
            match res {
                Ok(r) => {
                    if include {
                        print_head(&r);
                    }
                    *s.borrow_mut() = Some((r.code, r.phrase.clone()));
                    if let Err(e) = r.deliver_body(ToStdout { result: o.clone() }) {
                        *o.borrow_mut() = Some(Err(Failure::new(e)));
                    }
                }
                Err(f) => *o.borrow_mut() = Some(Err(f)),
            }
            Ok(())
        });
    while outcome.borrow().is_none() {
        if let Err(e) = reactor.iterate(Duration::from_millis(50)) {
            eprintln!("twistor get: reactor failed: {e}");
            return 1;
        }
    }
    drop(d);
    let _ = std::io::stdout().flush();
    let result = outcome.borrow_mut().take();
    match result {
        Some(Ok(())) => match &*status.borrow() {
            Some((code, phrase)) if *code >= 400 => {
                eprintln!("twistor get: HTTP {code} {phrase}");
                1
            }
            _ => 0,
        },
        Some(Err(f)) => {
            eprintln!("twistor get: {}: {}", args.url, describe(&f));
            1
        }
        None => 1,
    }
}

/// The failure and its causes, one clause each.
fn describe(f: &Failure) -> String {
    let mut s = f.error().to_string();
    let mut source = f.error().source();
    while let Some(e) = source {
        let text = e.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = e.source();
    }
    s
}

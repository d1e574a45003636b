//! `twistor web`: an HTTP/1.1 server (Twisted's `twist web`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use twistor::reactor::Reactor;
use twistor::transport::multicore::serve_on_threads_with_reactor;
use twistor::transport::tcp::ListenOptions;
use twistor::web::resource::{Render, Resource, Tree};
use twistor::web::site::AccessLog;
use twistor::web::static_files::file::File;
use twistor::web::static_files::response::StaticFiles;
use twistor::web::{HttpLimits, Request, Site};

use crate::endpoint_args::{self, Listen};
use crate::servers::{new_reactor, run_server};

/// What `twistor web` serves.
#[derive(Clone)]
pub struct WebOptions {
    pub hello: bool,
    pub path: Option<PathBuf>,
    pub logfile: Option<PathBuf>,
}

/// `GET /` answered with the 13 bytes `Hello, World!`.
struct Hello;

impl Resource for Hello {
    fn is_leaf(&self) -> bool {
        true
    }
    fn render_get(&self, r: &Request) -> Option<Render> {
        r.set_header("Content-Type", "text/plain");
        Some(Render::Static(b"Hello, World!"))
    }
}

/// `--path DIR` alone is served at `/`; with `--hello` it moves to `/static/`.
fn root(opts: &WebOptions) -> Rc<dyn Resource> {
    let files: Option<Rc<dyn Resource>> = opts
        .path
        .as_ref()
        .map(|p| Rc::new(File::new(StaticFiles::new(p))) as Rc<dyn Resource>);
    if !opts.hello
        && let Some(files) = &files
    {
        return files.clone();
    }
    let root = Tree::new();
    if opts.hello {
        root.put_child(b"", Rc::new(Hello));
    }
    if let Some(files) = files {
        root.put_child(b"static", files);
    }
    Rc::new(root)
}

fn access_log(logfile: Option<&Path>) -> Result<AccessLog, String> {
    match logfile {
        None => Ok(AccessLog::Writer(Box::new(std::io::stderr()))),
        Some(p) if p == Path::new("-") => Ok(AccessLog::Writer(Box::new(std::io::stderr()))),
        Some(p) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map(|f| AccessLog::Writer(Box::new(f) as Box<dyn Write>))
            .map_err(|e| format!("cannot open the access log {}: {e}", p.display())),
    }
}

fn site(reactor: &Reactor, opts: &WebOptions) -> Result<Site, String> {
    Ok(Site::with_options(
        root(opts),
        Rc::new(reactor.clone()),
        HttpLimits::default(),
        access_log(opts.logfile.as_deref())?,
    ))
}

/// `twistor web`.
pub fn web(listen: &Listen, threads: usize, opts: WebOptions) -> i32 {
    if let Some(p) = &opts.path
        && !p.is_dir()
    {
        eprintln!("twistor web: --path {}: not a directory", p.display());
        return 2;
    }
    if !opts.hello && opts.path.is_none() {
        eprintln!("twistor web: nothing to serve (give --hello or --path DIR): every page is 404");
    }
    // Refuse a log file that cannot be opened before listening.
    if let Err(e) = access_log(opts.logfile.as_deref()) {
        eprintln!("twistor web: {e}");
        return 2;
    }
    if threads > 1 {
        return web_threads(listen, threads, opts);
    }
    let Some(reactor) = new_reactor("web") else {
        return 1;
    };
    let site = match site(&reactor, &opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("twistor web: {e}");
            return 2;
        }
    };
    let _ports = match endpoint_args::listen_all(&reactor, "web", &listen.descriptions(), site) {
        Ok(ports) => ports,
        Err(code) => return code,
    };
    run_server(&reactor, "web")
}

/// One reactor (and one site) per thread on a shared port.
fn web_threads(listen: &Listen, threads: usize, opts: WebOptions) -> i32 {
    let (port, interface) = (listen.port.unwrap_or(0), listen.interface.as_str());
    let made = serve_on_threads_with_reactor(
        threads,
        port,
        ListenOptions::on(interface),
        move |reactor: &Reactor| match site(reactor, &opts) {
            Ok(s) => s,
            Err(e) => {
                // Checked before the threads started: only a file that vanished since.
                log::error!("twistor web: {e}; access log off on this thread");
                Site::with_options(
                    root(&opts),
                    Rc::new(reactor.clone()),
                    HttpLimits::default(),
                    AccessLog::Off,
                )
            }
        },
    );
    let servers = match made {
        Ok(s) => s,
        Err(e) => {
            eprintln!("twistor web: {e}");
            return 1;
        }
    };
    let ip: std::net::IpAddr = interface.parse().unwrap_or([0, 0, 0, 0].into());
    println!(
        "twistor web listening on tcp:{}",
        std::net::SocketAddr::new(ip, servers.port())
    );
    let Some(reactor) = new_reactor("web") else {
        servers.stop();
        servers.join();
        return 1;
    };
    let code = run_server(&reactor, "web");
    servers.stop();
    servers.join();
    code
}

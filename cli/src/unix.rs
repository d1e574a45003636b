//! The `--unix` forms of the servers and of `reverse-client`.

use std::cell::Cell;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use twistor::Failure;
use twistor::endpoints::{UnixClientEndpoint, wrap_client_tls};
use twistor::protocol::Handle;
use twistor::protocol::{Factory, for_protocol};
use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
use twistor::protocols::reverse::reverse_factory;
use twistor::protocols::wire::Echo;
use twistor::reactor::Reactor;
use twistor::tls::{ClientOptions, ServerOptions};
use twistor::transport::unix::{
    UnixConnectOptions, UnixListenOptions, connect_unix_protocol, listen_unix_with,
};

use crate::servers::{new_reactor, run_server};

/// The socket address for a command-line PATH: `@NAME` is the abstract name NAME (a leading
/// NUL, which a command line cannot carry).
fn socket_path(path: &Path) -> PathBuf {
    match path.as_os_str().as_bytes().strip_prefix(b"@") {
        Some(name) => {
            let mut bytes = vec![0u8];
            bytes.extend_from_slice(name);
            PathBuf::from(OsString::from_vec(bytes))
        }
        None => path.to_path_buf(),
    }
}

fn serve_unix<F: Factory>(name: &str, path: &Path, want_pid: bool, factory: F) -> i32 {
    let Some(reactor) = new_reactor(name) else {
        return 1;
    };
    let options = UnixListenOptions {
        backlog: 128,
        want_pid,
        ..Default::default()
    };
    match listen_unix_with(&reactor, socket_path(path), factory, options) {
        Ok(p) => println!("twistor {name} listening on {}", p.get_host()),
        Err(e) => {
            eprintln!("twistor {name}: {e}");
            return 1;
        }
    }
    // The reactor's shutdown stops the port, which removes the socket file and the lock.
    run_server(&reactor, name)
}

/// `twistor echo --unix PATH`.
pub fn echo_unix(path: &Path, want_pid: bool) -> i32 {
    serve_unix("echo", path, want_pid, for_protocol(|| Echo))
}

/// `twistor echo --unix PATH --tls-cert C --tls-key K`.
pub fn echo_unix_tls(path: &Path, want_pid: bool, options: &ServerOptions) -> i32 {
    serve_unix_tls("echo", path, want_pid, for_protocol(|| Echo), options)
}

/// `twistor reverse --unix PATH --tls-cert C --tls-key K`.
pub fn reverse_unix_tls(
    path: &Path,
    want_pid: bool,
    max_lines: Option<usize>,
    options: &ServerOptions,
) -> i32 {
    serve_unix_tls(
        "reverse",
        path,
        want_pid,
        reverse_factory(max_lines),
        options,
    )
}

fn serve_unix_tls<F: Factory>(
    name: &str,
    path: &Path,
    want_pid: bool,
    factory: F,
    options: &ServerOptions,
) -> i32 {
    match crate::tls::wrap(factory, options) {
        Ok(f) => serve_unix(name, path, want_pid, f),
        Err(e) => {
            eprintln!("twistor {name}: {e}");
            2
        }
    }
}

/// `twistor reverse-client --unix PATH --tls...`: TLS over the socket, the server verified
/// as the options say.
pub fn reverse_client_unix_tls(path: &Path, text: &str, options: ClientOptions) -> i32 {
    let endpoint = wrap_client_tls(options, UnixClientEndpoint::new(socket_path(path)));
    crate::endpoint_args::reverse_client_over(endpoint, text)
}

/// `twistor reverse --unix PATH`.
pub fn reverse_unix(path: &Path, want_pid: bool, max_lines: Option<usize>) -> i32 {
    serve_unix("reverse", path, want_pid, reverse_factory(max_lines))
}

/// Sends one line, prints the first line back, stops the reactor.
pub(crate) struct OneLine {
    pub(crate) text: String,
    pub(crate) answered: Rc<Cell<bool>>,
    pub(crate) reactor: Reactor,
}

impl LineHandler for OneLine {
    fn connection_made(&mut self, cx: &LineContext<Self>) {
        cx.send_line(self.text.as_bytes());
    }
    fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
        if !self.answered.replace(true) {
            println!("{}", String::from_utf8_lossy(line));
            cx.transport().lose_connection();
        }
    }
    fn connection_lost(&mut self, _cx: &LineContext<Self>, reason: Failure) {
        if !self.answered.get() {
            eprintln!("twistor reverse-client: {reason}");
        }
        let _ = self.reactor.stop();
    }
}

/// `twistor reverse-client --unix PATH TEXT`: prints the reply, exits 0 (1 if the server
/// could not be reached or closed without answering).
pub fn reverse_client_unix(path: &Path, text: &str) -> i32 {
    let Some(reactor) = new_reactor("reverse-client") else {
        return 1;
    };
    let answered = Rc::new(Cell::new(false));
    let (a, r) = (answered.clone(), reactor.clone());
    let (path, text) = (socket_path(path), text.to_string());
    // Started once running: a failure fires at once, and stop() before run() is ignored.
    reactor.call_when_running(move || {
        let protocol = LineReceiver::new(OneLine {
            text,
            answered: a,
            reactor: r.clone(),
        });
        let stopper = r.clone();
        let _ = connect_unix_protocol(&r, &path, protocol, UnixConnectOptions::default()).add_both(
            move |res: Result<Handle<_>, Failure>| {
                if let Err(f) = res {
                    eprintln!("twistor reverse-client: {f}");
                    let _ = stopper.stop();
                }
                Ok(())
            },
        );
    });
    match reactor.run() {
        Ok(()) if answered.get() => 0,
        Ok(()) => 1,
        Err(e) => {
            eprintln!("twistor reverse-client: {e}");
            1
        }
    }
}

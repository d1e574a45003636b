//! `twistor`: ready-made servers and clients built on the twistor library (Twisted's `twist`).
//!
//! ```text
//! twistor echo --port 8000
//! twistor echo --unix echo.sock
//! twistor echo --port 8443 --tls-cert cert.pem --tls-key key.pem
//! twistor reverse --port 9999 [--max-lines 10]
//! twistor reverse --unix reverse.sock [--want-pid]
//! twistor reverse-client --port 9999 Hello
//! twistor reverse-client --unix reverse.sock Hello
//! twistor reverse-client --port 9443 --tls --tls-ca ca.pem --tls-hostname localhost Hello
//! twistor portforward --port 8080 --dest-host 127.0.0.1 --dest-port 8000
//! twistor discard --port 9
//! twistor chargen --port 19
//! twistor qotd --port 17
//! twistor daytime --port 13
//! twistor get -i https://example.com/
//! twistor udp-echo --port 8000
//! twistor web --port 8080 --hello [--threads 2] [--logfile access.log]
//! twistor echo --listen tcp:8000 --listen unix:echo.sock
//! twistor reverse-client --connect tcp:127.0.0.1:9999 Hello
//! twistor echo --listen ssl:8443:privateKey=key.pem:certKey=cert.pem --listen tcp:8000
//! twistor reverse-client --connect tls:localhost:8443:trustRoots=ca.pem Hello
//! twistor echo --unix echo.sock --tls-cert cert.pem --tls-key key.pem
//! ```
//! Each server listens on 127.0.0.1 unless `--interface` says otherwise (or on a UNIX socket
//! with `--unix PATH`, where a leading `@` names a Linux abstract socket; the socket file is
//! removed on exit; or wherever each `--listen ENDPOINT` says), logs through `log` (`RUST_LOG=info` for more), and stops cleanly on
//! Ctrl-C or SIGTERM.

mod endpoint_args;
mod get;
mod servers;
mod tls;
mod udp;
mod unix;
mod web;

use endpoint_args::Listen;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "twistor",
    version,
    about = "Twisted-style servers and clients on twistor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetches a URL and writes the body to stdout (redirects followed, gzip decoded).
    Get(get::GetArgs),
    /// Echo every byte back.
    Echo {
        /// Port to listen on (0: any free port, printed at start).
        #[arg(long, required_unless_present_any = ["unix", "listen"])]
        port: Option<u16>,
        /// Serve on this UNIX socket instead of a TCP port (`@NAME`: an abstract name).
        #[arg(long, conflicts_with_all = ["port", "interface", "threads"])]
        unix: Option<PathBuf>,
        /// With --unix: take the lock file PATH.lock first (Twisted's wantPID); a lock and
        /// socket file left by a dead process are taken over.
        #[arg(long)]
        want_pid: bool,
        /// Interface to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        interface: String,
        /// Reactor threads sharing the port (SO_REUSEPORT), one per core.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: u16,
        /// Listen on this endpoint too (`tcp:PORT:interface=IP`, `unix:PATH:mode=660`,
        /// `tcp6:PORT`, `systemd:domain=INET:index=0`, `ssl:PORT:privateKey=K:certKey=C`);
        /// repeatable: serves on all. Unlike
        /// --port, `tcp:PORT` alone listens on every interface, as in Twisted.
        #[arg(long, value_name = "ENDPOINT", value_parser = endpoint_args::server_endpoint, conflicts_with_all = ["unix", "threads"])]
        listen: Vec<String>,
        #[command(flatten)]
        tls: tls::TlsServerArgs,
    },
    /// The paper's line reverser: answers each `\r\n`-terminated line reversed.
    Reverse {
        /// Port to listen on (0: any free port, printed at start).
        #[arg(long, required_unless_present_any = ["unix", "listen"])]
        port: Option<u16>,
        /// Serve on this UNIX socket instead of a TCP port (`@NAME`: an abstract name).
        #[arg(long, conflicts_with_all = ["port", "interface", "threads"])]
        unix: Option<PathBuf>,
        /// With --unix: take the lock file PATH.lock first (Twisted's wantPID); a lock and
        /// socket file left by a dead process are taken over.
        #[arg(long)]
        want_pid: bool,
        /// Interface to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        interface: String,
        /// Close a connection after this many lines, at least 1 (the paper's server uses 10).
        #[arg(long)]
        max_lines: Option<std::num::NonZeroUsize>,
        /// Reactor threads sharing the port (SO_REUSEPORT), one per core.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: u16,
        /// Listen on this endpoint too (`tcp:PORT:interface=IP`, `unix:PATH:mode=660`,
        /// `tcp6:PORT`, `systemd:domain=INET:index=0`, `ssl:PORT:privateKey=K:certKey=C`);
        /// repeatable: serves on all. Unlike
        /// --port, `tcp:PORT` alone listens on every interface, as in Twisted.
        #[arg(long, value_name = "ENDPOINT", value_parser = endpoint_args::server_endpoint, conflicts_with_all = ["unix", "threads"])]
        listen: Vec<String>,
        #[command(flatten)]
        tls: tls::TlsServerArgs,
    },
    /// The paper's client: sends TEXT to a reverse server and prints the reply.
    ReverseClient {
        /// The server's port.
        #[arg(long, required_unless_present_any = ["unix", "connect"])]
        port: Option<u16>,
        /// The server's UNIX socket instead of a TCP port (`@NAME`: an abstract name).
        #[arg(long, conflicts_with_all = ["port", "host"])]
        unix: Option<PathBuf>,
        /// The server's host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Connect to this endpoint instead (`tcp:HOST:PORT`, `unix:PATH`,
        /// `tls:HOST:PORT:trustRoots=CA.pem`).
        #[arg(long, value_name = "ENDPOINT", value_parser = endpoint_args::client_endpoint, conflicts_with_all = ["port", "host", "unix"])]
        connect: Option<String>,
        /// The text to reverse.
        text: String,
        #[command(flatten)]
        tls: tls::TlsClientArgs,
    },
    /// Forwards every connection to DEST_HOST:DEST_PORT.
    Portforward {
        /// Port to listen on.
        #[arg(long, required_unless_present = "listen")]
        port: Option<u16>,
        /// Interface to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        interface: String,
        /// Listen on this endpoint too (`tcp:PORT:interface=IP`, `unix:PATH:mode=660`,
        /// `tcp6:PORT`, `systemd:domain=INET:index=0`, `ssl:PORT:privateKey=K:certKey=C`);
        /// repeatable: serves on all. Unlike
        /// --port, `tcp:PORT` alone listens on every interface, as in Twisted.
        #[arg(long, value_name = "ENDPOINT", value_parser = endpoint_args::server_endpoint)]
        listen: Vec<String>,
        /// Where to forward to.
        #[arg(long)]
        dest_host: String,
        /// Where to forward to.
        #[arg(long)]
        dest_port: u16,
    },
    /// Reads and drops everything (RFC 863).
    Discard {
        /// Port to listen on (0: any free port, printed at start).
        #[arg(long, required_unless_present = "listen")]
        port: Option<u16>,
        /// Interface to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        interface: String,
        /// Listen on this endpoint too (`tcp:PORT:interface=IP`, `unix:PATH:mode=660`,
        /// `tcp6:PORT`, `systemd:domain=INET:index=0`, `ssl:PORT:privateKey=K:certKey=C`);
        /// repeatable: serves on all. Unlike
        /// --port, `tcp:PORT` alone listens on every interface, as in Twisted.
        #[arg(long, value_name = "ENDPOINT", value_parser = endpoint_args::server_endpoint)]
        listen: Vec<String>,
    },
    /// Writes printable characters forever, as fast as the client reads (RFC 864).
    Chargen {
        /// Port to listen on (0: any free port, printed at start).
        #[arg(long, required_unless_present = "listen")]
        port: Option<u16>,
        /// Interface to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        interface: String,
        /// Listen on this endpoint too (`tcp:PORT:interface=IP`, `unix:PATH:mode=660`,
        /// `tcp6:PORT`, `systemd:domain=INET:index=0`, `ssl:PORT:privateKey=K:certKey=C`);
        /// repeatable: serves on all. Unlike
        /// --port, `tcp:PORT` alone listens on every interface, as in Twisted.
        #[arg(long, value_name = "ENDPOINT", value_parser = endpoint_args::server_endpoint)]
        listen: Vec<String>,
    },
    /// Writes a quote, then closes (RFC 865).
    Qotd {
        /// Port to listen on (0: any free port, printed at start).
        #[arg(long, required_unless_present = "listen")]
        port: Option<u16>,
        /// Interface to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        interface: String,
        /// Listen on this endpoint too (`tcp:PORT:interface=IP`, `unix:PATH:mode=660`,
        /// `tcp6:PORT`, `systemd:domain=INET:index=0`, `ssl:PORT:privateKey=K:certKey=C`);
        /// repeatable: serves on all. Unlike
        /// --port, `tcp:PORT` alone listens on every interface, as in Twisted.
        #[arg(long, value_name = "ENDPOINT", value_parser = endpoint_args::server_endpoint)]
        listen: Vec<String>,
        /// The quote (a line; `\r\n` is added). Twisted's apple by default.
        #[arg(long)]
        quote: Option<String>,
    },
    /// Writes the date and time (UTC, as C's asctime), then closes (RFC 867).
    Daytime {
        /// Port to listen on (0: any free port, printed at start).
        #[arg(long, required_unless_present = "listen")]
        port: Option<u16>,
        /// Interface to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        interface: String,
        /// Listen on this endpoint too (`tcp:PORT:interface=IP`, `unix:PATH:mode=660`,
        /// `tcp6:PORT`, `systemd:domain=INET:index=0`, `ssl:PORT:privateKey=K:certKey=C`);
        /// repeatable: serves on all. Unlike
        /// --port, `tcp:PORT` alone listens on every interface, as in Twisted.
        #[arg(long, value_name = "ENDPOINT", value_parser = endpoint_args::server_endpoint)]
        listen: Vec<String>,
    },
    /// Sends every UDP datagram back to its sender.
    UdpEcho {
        /// UDP port to listen on (0: any free port, printed at start).
        #[arg(long)]
        port: u16,
        /// Interface to listen on (an IP address).
        #[arg(long, default_value = "127.0.0.1")]
        interface: String,
    },
    /// An HTTP/1.1 server (Twisted's `twist web`): `--hello` answers `GET /` with
    /// `Hello, World!`; the access log goes to stderr or `--logfile`.
    Web {
        /// Port to listen on (0: any free port, printed at start).
        #[arg(long, required_unless_present = "listen")]
        port: Option<u16>,
        /// Interface to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        interface: String,
        /// Reactor threads sharing the port (SO_REUSEPORT), one per core.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: u16,
        /// Listen on this endpoint too (`tcp:PORT`, `ssl:PORT:privateKey=K:certKey=C`,
        /// `unix:PATH`, ...); repeatable: serves on all.
        #[arg(long, value_name = "ENDPOINT", value_parser = endpoint_args::server_endpoint, conflicts_with = "threads")]
        listen: Vec<String>,
        /// Answer `GET /` with the 13 bytes `Hello, World!` (text/plain).
        #[arg(long)]
        hello: bool,
        /// Serve this directory: at / alone, under /static/ with --hello (ranges, conditional
        /// requests, listings; symlinks out of it refused).
        #[arg(long, value_name = "DIR")]
        path: Option<PathBuf>,
        /// Append the access log (combined log format) to this file (`-`: stderr, the default).
        #[arg(long, value_name = "FILE")]
        logfile: Option<PathBuf>,
    },
}

/// clap requires `--port` unless `--unix` is given; this is only reached if that changes.
fn missing_port() -> i32 {
    eprintln!("twistor: give --port or --unix");
    2
}

/// A lock file belongs to a socket file: `--want-pid` means nothing for a TCP port.
fn want_pid_without_unix() -> i32 {
    eprintln!("twistor: --want-pid needs --unix PATH");
    2
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Get(args) => get::get(&args),
        Command::Echo {
            port,
            interface,
            threads,
            unix,
            want_pid,
            listen,
            tls,
        } => match (unix, port) {
            (Some(path), _) => match tls.options("echo") {
                Ok(Some(opts)) => unix::echo_unix_tls(&path, want_pid, &opts),
                Ok(None) => servers::echo_unix(&path, want_pid),
                Err(code) => code,
            },
            (None, _) if want_pid => want_pid_without_unix(),
            (None, None) if listen.is_empty() => missing_port(),
            (None, port) => {
                let listen = Listen {
                    port,
                    interface,
                    listen,
                };
                match tls.options("echo") {
                    Ok(Some(_))
                        if endpoint_args::refuse_tls_twice("echo", &listen.listen).is_err() =>
                    {
                        2
                    }
                    Ok(Some(opts)) => servers::echo_tls(&listen, &opts, threads.into(), tls.pem()),
                    Ok(None) => servers::echo(&listen, threads.into()),
                    Err(code) => code,
                }
            }
        },
        Command::Reverse {
            port,
            interface,
            max_lines,
            threads,
            unix,
            want_pid,
            listen,
            tls,
        } => match (unix, port) {
            (Some(path), _) => match tls.options("reverse") {
                Ok(Some(opts)) => {
                    unix::reverse_unix_tls(&path, want_pid, max_lines.map(|n| n.get()), &opts)
                }
                Ok(None) => servers::reverse_unix(&path, want_pid, max_lines.map(|n| n.get())),
                Err(code) => code,
            },
            (None, _) if want_pid => want_pid_without_unix(),
            (None, None) if listen.is_empty() => missing_port(),
            (None, port) => {
                let listen = Listen {
                    port,
                    interface,
                    listen,
                };
                let max_lines = max_lines.map(|n| n.get());
                match tls.options("reverse") {
                    Ok(Some(_))
                        if endpoint_args::refuse_tls_twice("reverse", &listen.listen).is_err() =>
                    {
                        2
                    }
                    Ok(Some(opts)) => {
                        servers::reverse_tls(&listen, max_lines, &opts, threads.into(), tls.pem())
                    }
                    Ok(None) => servers::reverse(&listen, max_lines, threads.into()),
                    Err(code) => code,
                }
            }
        },
        Command::ReverseClient {
            port,
            host,
            unix,
            connect,
            text,
            tls,
        } => match (unix, port) {
            _ if connect.is_some() => {
                endpoint_args::reverse_client(connect.as_deref().unwrap_or_default(), &text)
            }
            (Some(path), _) => match tls.options("localhost") {
                Ok(Some(opts)) => unix::reverse_client_unix_tls(&path, &text, opts),
                Ok(None) => servers::reverse_client_unix(&path, &text),
                Err(e) => {
                    eprintln!("twistor reverse-client: {e}");
                    2
                }
            },
            (None, Some(port)) => match tls.options(&host) {
                Ok(Some(opts)) => tls::reverse_client(&host, port, &text, &opts),
                Ok(None) => servers::reverse_client(&host, port, &text),
                Err(e) => {
                    eprintln!("twistor reverse-client: {e}");
                    2
                }
            },
            (None, None) => missing_port(),
        },
        Command::Portforward {
            port,
            interface,
            listen,
            dest_host,
            dest_port,
        } => servers::portforward(
            &Listen {
                port,
                interface,
                listen,
            },
            &dest_host,
            dest_port,
        ),
        Command::Discard {
            port,
            interface,
            listen,
        } => servers::discard(&Listen {
            port,
            interface,
            listen,
        }),
        Command::Chargen {
            port,
            interface,
            listen,
        } => servers::chargen(&Listen {
            port,
            interface,
            listen,
        }),
        Command::Qotd {
            port,
            interface,
            listen,
            quote,
        } => servers::qotd(
            &Listen {
                port,
                interface,
                listen,
            },
            quote.as_deref(),
        ),
        Command::Daytime {
            port,
            interface,
            listen,
        } => servers::daytime(&Listen {
            port,
            interface,
            listen,
        }),
        Command::UdpEcho { port, interface } => udp::udp_echo(port, &interface),
        Command::Web {
            port,
            interface,
            threads,
            listen,
            hello,
            path,
            logfile,
        } => web::web(
            &Listen {
                port,
                interface,
                listen,
            },
            threads.into(),
            web::WebOptions {
                hello,
                path,
                logfile,
            },
        ),
    };
    std::process::exit(code);
}

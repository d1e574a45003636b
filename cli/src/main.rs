//! `twistor`: ready-made servers and clients built on the twistor library (Twisted's `twist`).
//!
//! ```text
//! twistor echo --port 8000
//! twistor reverse --port 9999 [--max-lines 10]
//! twistor reverse-client --port 9999 Hello
//! ```
//! Each server listens on 127.0.0.1 unless `--interface` says otherwise, logs through `log`
//! (`RUST_LOG=info` for more), and stops cleanly on Ctrl-C or SIGTERM.

mod servers;

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
    /// Echo every byte back.
    Echo {
        /// Port to listen on (0: any free port, printed at start).
        #[arg(long)]
        port: u16,
        /// Interface to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        interface: String,
    },
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Echo { port, interface } => servers::echo(port, &interface),
    };
    std::process::exit(code);
}

//! Runs a command, hands its output line by line to a `LineReceiver`, and reports how it
//! ended.
//!
//! ```text
//! usage: process_lines [PROGRAM [ARG...]]
//! ```
//!
//! Without arguments it runs a small shell script that writes three lines to stdout, one to
//! stderr and exits 3. Try `cargo run --example process_lines -- ls -l /`.
//!
//! The child's stdout reaches a [`LineReceiver`] (with `\n` as its delimiter) through an
//! in-memory transport, so the line parsing (partial lines across reads, the length limit) is
//! the library's, not a copy. The exit status is Twisted's: `ProcessDone` for exit code 0,
//! `ProcessTerminated` with the code or the signal otherwise.

use std::cell::Cell;
use std::rc::Rc;

use twistor::Failure;
use twistor::protocols::basic::{LineContext, LineHandle, LineHandler, LineReceiver};
use twistor::reactor::Reactor;
use twistor::testing::StringTransport;
use twistor::transport::process::{
    ProcessDone, ProcessProtocol, ProcessTerminated, ProcessTransport, SpawnOptions, spawn_process,
};

/// Numbers and prints each line.
struct Numbered {
    count: usize,
}

impl LineHandler for Numbered {
    fn line_received(&mut self, _cx: &LineContext<Self>, line: &[u8]) {
        self.count += 1;
        println!("line {}: {}", self.count, String::from_utf8_lossy(line));
    }
}

/// Feeds stdout to the line receiver, prints stderr as it comes, reports the end.
struct Lines {
    stdout: StringTransport,
    lines: LineHandle<Numbered>,
    done: Rc<Cell<Option<i32>>>,
}

impl ProcessProtocol for Lines {
    fn connection_made(&mut self, t: &ProcessTransport) {
        // The child gets EOF on stdin rather than waiting for input that never comes.
        t.close_stdin();
    }
    fn out_received(&mut self, _t: &ProcessTransport, data: &[u8]) {
        self.stdout.deliver(data);
    }
    fn err_received(&mut self, _t: &ProcessTransport, data: &[u8]) {
        eprint!("stderr: {}", String::from_utf8_lossy(data));
    }
    fn process_ended(&mut self, _t: &ProcessTransport, reason: Failure) {
        // A last line without a newline is still a line of output.
        let count = self
            .lines
            .with(|n, cx| {
                let rest = cx.clear_line_buffer();
                if !rest.is_empty() {
                    n.count += 1;
                    println!(
                        "line {} (no newline): {}",
                        n.count,
                        String::from_utf8_lossy(&rest)
                    );
                }
                n.count
            })
            .unwrap_or(0);
        println!("{count} lines");
        let code = if reason.is::<ProcessDone>() {
            println!("exit status: 0");
            0
        } else if let Some(t) = reason.downcast_ref::<ProcessTerminated>() {
            match (t.exit_code, t.signal) {
                (Some(c), _) => {
                    println!("exit status: {c}");
                    c
                }
                (None, Some(s)) => {
                    println!("killed by signal {s}");
                    128 + s
                }
                (None, None) => 1,
            }
        } else {
            println!("ended: {reason}");
            1
        };
        self.done.set(Some(code));
    }
}

fn main() {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().is_some_and(|a| a == "-h" || a == "--help") {
        println!("usage: process_lines [PROGRAM [ARG...]]");
        return;
    }
    if argv.is_empty() {
        argv = [
            "sh",
            "-c",
            "echo alpha; echo beta; echo oops >&2; printf gamma; exit 3",
        ]
        .map(String::from)
        .to_vec();
    }
    let reactor = match Reactor::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("process_lines: cannot create the reactor: {e}");
            std::process::exit(1);
        }
    };
    let receiver = match LineReceiver::new(Numbered { count: 0 }).with_delimiter(b"\n") {
        Ok(r) => r,
        Err(e) => {
            eprintln!("process_lines: {e}");
            std::process::exit(1);
        }
    };
    let stdout = StringTransport::new();
    let lines = LineHandle::from(stdout.connect(receiver));
    let done = Rc::new(Cell::new(None));
    let protocol = Lines {
        stdout: stdout.clone(),
        lines: lines.clone(),
        done: done.clone(),
    };
    if let Err(e) = spawn_process(&reactor, protocol, &argv[0], &argv, SpawnOptions::new()) {
        eprintln!("process_lines: {e}");
        std::process::exit(127);
    }
    while done.get().is_none() {
        if let Err(e) = reactor.iterate(std::time::Duration::from_millis(100)) {
            eprintln!("process_lines: {e}");
            std::process::exit(1);
        }
    }
}

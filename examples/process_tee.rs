//! A "tee" between two children: the first child's stdout is piped into the second child's
//! stdin through this process, with back-pressure: when the second child does not keep up,
//! the first one's output is no longer read (so it blocks on its full pipe) until the second
//! has drained what is buffered.
//!
//! ```text
//! usage: process_tee [--from SHELL-COMMAND] [--to SHELL-COMMAND]
//! ```
//!
//! The defaults are `seq 1 200000` into `wc -l`, which prints `200000`. Both commands run
//! under `sh -c`. What the second child writes is printed, then both exit statuses and the
//! most that was ever buffered for the second child (bounded by the write buffer's
//! high-water mark plus one read).
//!
//! How: the second child's stdin gets a streaming producer whose `pause_producing` pauses
//! reading the first child's output and whose `resume_producing` resumes it: the same
//! producer/consumer contract as any stream transport. When the first child's stdout closes,
//! the second child's stdin is closed after what is buffered is sent.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;

use twistor::Failure;
use twistor::reactor::Reactor;
use twistor::transport::Producer;
use twistor::transport::process::{ProcessProtocol, ProcessTransport, SpawnOptions, spawn_process};

/// Shared by both sides: the two transports and what happened.
#[derive(Default)]
struct Tee {
    sink: RefCell<Option<ProcessTransport>>,
    source: RefCell<Option<ProcessTransport>>,
    max_buffered: Cell<usize>,
    pauses: Cell<u32>,
    ended: RefCell<Vec<(&'static str, String)>>,
}

/// The first child: its output goes to the second child's stdin.
struct Source(Rc<Tee>);

impl ProcessProtocol for Source {
    fn connection_made(&mut self, t: &ProcessTransport) {
        t.close_stdin();
    }
    fn out_received(&mut self, _t: &ProcessTransport, data: &[u8]) {
        if let Some(sink) = self.0.sink.borrow().as_ref() {
            sink.write(data);
            self.0
                .max_buffered
                .set(self.0.max_buffered.get().max(sink.buffered()));
        }
    }
    fn out_connection_lost(&mut self, _t: &ProcessTransport) {
        if let Some(sink) = self.0.sink.borrow().as_ref() {
            sink.close_stdin();
        }
    }
    fn process_ended(&mut self, _t: &ProcessTransport, reason: Failure) {
        self.0.ended.borrow_mut().push(("from", reason.to_string()));
    }
}

/// The second child: its output is printed.
struct Sink(Rc<Tee>);

impl ProcessProtocol for Sink {
    fn out_received(&mut self, _t: &ProcessTransport, data: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(data);
        let _ = out.flush();
    }
    fn process_ended(&mut self, _t: &ProcessTransport, reason: Failure) {
        self.0.ended.borrow_mut().push(("to", reason.to_string()));
        // If the sink dies first, the source has nowhere to write: stop it.
        if let Some(source) = self.0.source.borrow().as_ref() {
            source.lose_connection();
        }
    }
}

/// The second child's stdin producer: pauses and resumes reading the first child.
struct Valve(Rc<Tee>);

impl Producer for Valve {
    fn pause_producing(&self) {
        self.0.pauses.set(self.0.pauses.get() + 1);
        if let Some(s) = self.0.source.borrow().as_ref() {
            s.pause_producing();
        }
    }
    fn resume_producing(&self) {
        if let Some(s) = self.0.source.borrow().as_ref() {
            s.resume_producing();
        }
    }
    fn stop_producing(&self) {
        if let Some(s) = self.0.source.borrow().as_ref() {
            s.lose_connection();
        }
    }
}

fn fail(problem: &str) -> ! {
    eprintln!("process_tee: {problem}");
    eprintln!("usage: process_tee [--from SHELL-COMMAND] [--to SHELL-COMMAND]");
    std::process::exit(2);
}

fn main() {
    let mut from = "seq 1 200000".to_string();
    let mut to = "wc -l".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--from" => {
                from = args
                    .next()
                    .unwrap_or_else(|| fail("--from needs a command"))
            }
            "--to" => to = args.next().unwrap_or_else(|| fail("--to needs a command")),
            "-h" | "--help" => {
                println!("usage: process_tee [--from SHELL-COMMAND] [--to SHELL-COMMAND]");
                return;
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    let reactor = Reactor::new().unwrap_or_else(|e| fail(&format!("no reactor: {e}")));
    let tee = Rc::new(Tee::default());
    let sink = spawn_process(
        &reactor,
        Sink(tee.clone()),
        "/bin/sh",
        &["sh", "-c", &to],
        SpawnOptions::new(),
    )
    .unwrap_or_else(|e| fail(&e.to_string()));
    *tee.sink.borrow_mut() = Some(sink.clone());
    if let Err(e) = sink.register_producer(Rc::new(Valve(tee.clone())), true) {
        fail(&e.to_string());
    }
    let source = spawn_process(
        &reactor,
        Source(tee.clone()),
        "/bin/sh",
        &["sh", "-c", &from],
        SpawnOptions::new(),
    )
    .unwrap_or_else(|e| fail(&e.to_string()));
    *tee.source.borrow_mut() = Some(source);
    while tee.ended.borrow().len() < 2 {
        if let Err(e) = reactor.iterate(std::time::Duration::from_millis(100)) {
            fail(&e.to_string());
        }
    }
    // Drop the transports (they refer to the protocols that refer to `tee`).
    tee.sink.borrow_mut().take();
    tee.source.borrow_mut().take();
    // The two children end in either order; report them in a fixed one.
    for name in ["from", "to"] {
        for (who, how) in tee.ended.borrow().iter().filter(|(who, _)| *who == name) {
            println!("{who}: {how}");
        }
    }
    println!(
        "most buffered for the second child: {} bytes; paused the first {} times",
        tee.max_buffered.get(),
        tee.pauses.get()
    );
}

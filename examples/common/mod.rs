//! Command-line arguments shared by the reactor examples, parsed by hand (no dependency).
//!
//! Every option is optional: `--scale FACTOR` multiplies every delay and sleep of the program
//! (so a test can run the paper's five-second programs in a fraction of a second), and
//! `--stop-after SECS` stops a program that would otherwise run until it gets a signal. Both
//! forms `--scale 0.05` and `--scale=0.05` work. A bad argument prints a usage message to
//! stderr and exits with code 2; `--help` prints it to stdout and exits with code 0.

// Each example uses only some of these.
#![allow(dead_code)]

use std::process::exit;

/// The largest accepted `--scale`: keeps every scaled delay a valid `Duration`.
const MAX_SCALE: f64 = 1e6;
/// The largest accepted `--stop-after`, about 30 years.
const MAX_STOP_AFTER: f64 = 1e9;

/// Which options a program accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    /// `--scale FACTOR`
    Scale,
    /// `--stop-after SECS`
    StopAfter,
}

impl Opt {
    fn flag(self) -> &'static str {
        match self {
            Opt::Scale => "--scale",
            Opt::StopAfter => "--stop-after",
        }
    }

    fn usage(self) -> &'static str {
        match self {
            Opt::Scale => "[--scale FACTOR]",
            Opt::StopAfter => "[--stop-after SECS]",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Opt::Scale => {
                "  --scale FACTOR    multiply every delay by FACTOR (a number from 0 to 1000000; default 1)"
            }
            Opt::StopAfter => {
                "  --stop-after SECS stop after SECS seconds (times the scale; default: run until a signal)"
            }
        }
    }
}

/// The parsed arguments.
#[derive(Clone, Copy, Debug)]
pub struct Args {
    /// Multiplies every delay and sleep (default 1.0).
    pub scale: f64,
    /// Seconds (before scaling) after which to stop; `None`: run until a signal.
    pub stop_after: Option<f64>,
}

impl Args {
    /// `seconds` multiplied by the scale.
    pub fn secs(&self, seconds: f64) -> f64 {
        seconds * self.scale
    }
}

fn usage_line(name: &str, opts: &[Opt]) -> String {
    let mut line = format!("usage: {name}");
    for o in opts {
        line.push(' ');
        line.push_str(o.usage());
    }
    line
}

fn help(name: &str, opts: &[Opt]) -> String {
    let mut text = usage_line(name, opts);
    for o in opts {
        text.push('\n');
        text.push_str(o.help());
    }
    text.push_str("\n  --help            print this message");
    text
}

/// Prints `problem` and the usage to stderr and exits with code 2.
fn fail(name: &str, opts: &[Opt], problem: &str) -> ! {
    eprintln!("{name}: {problem}");
    eprintln!("{}", help(name, opts));
    exit(2)
}

fn number(name: &str, opts: &[Opt], flag: &str, text: &str, max: f64) -> f64 {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=max).contains(&v) => v,
        _ => fail(
            name,
            opts,
            &format!("{flag} needs a number from 0 to {max}, got {text:?}"),
        ),
    }
}

/// Parses `std::env::args()` for program `name`, which accepts `opts`. Exits (code 2) with a
/// usage message on a bad argument; never panics.
pub fn parse(name: &str, opts: &[Opt]) -> Args {
    parse_from(name, opts, std::env::args_os().skip(1))
}

fn parse_from(
    name: &str,
    opts: &[Opt],
    argv: impl IntoIterator<Item = std::ffi::OsString>,
) -> Args {
    let mut args = Args {
        scale: 1.0,
        stop_after: None,
    };
    let mut argv = argv.into_iter();
    while let Some(raw) = argv.next() {
        let Some(arg) = raw.to_str() else {
            fail(name, opts, &format!("argument is not UTF-8: {raw:?}"));
        };
        if arg == "--help" || arg == "-h" {
            println!("{}", help(name, opts));
            exit(0);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg, None),
        };
        let Some(&opt) = opts.iter().find(|o| o.flag() == flag) else {
            fail(name, opts, &format!("unexpected argument {arg:?}"));
        };
        let value = match inline {
            Some(v) => v,
            None => match argv.next().map(|v| v.into_string()) {
                Some(Ok(v)) => v,
                Some(Err(v)) => fail(name, opts, &format!("argument is not UTF-8: {v:?}")),
                None => fail(name, opts, &format!("{flag} needs a value")),
            },
        };
        match opt {
            Opt::Scale => args.scale = number(name, opts, flag, &value, MAX_SCALE),
            Opt::StopAfter => {
                args.stop_after = Some(number(name, opts, flag, &value, MAX_STOP_AFTER))
            }
        }
    }
    args
}

/// Tells how the reactor stopped, on stderr, if a signal stopped it (so an interrupted program
/// says why it ended, and exits cleanly with code 0).
pub fn report_exit_signal(signal: Option<i32>) {
    if let Some(sig) = signal {
        let name = match sig {
            libc::SIGINT => " (SIGINT)",
            libc::SIGTERM => " (SIGTERM)",
            _ => "",
        };
        eprintln!("stopped by signal {sig}{name}");
    }
}

//! The `--unix` forms of `twistor echo`, `reverse` and `reverse-client`, run as processes
//! over real UNIX sockets: round trips, abstract names, the lock file, the socket file
//! removed on exit, and argument errors.

#[path = "../../tests/util/mod.rs"]
mod util;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use util::{RunningExample, spawn_program};

const WAIT: Duration = Duration::from_secs(10);

fn twistor(args: &[&str]) -> RunningExample {
    spawn_program(
        Path::new(env!("CARGO_BIN_EXE_twistor")),
        &format!("twistor {}", args.join(" ")),
        args,
    )
}

/// A directory for socket files, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("twistor-cli-unix-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `twistor NAME --unix PATH ARGS...` and checks its first line.
fn start(name: &str, path: &str, args: &[&str]) -> RunningExample {
    let mut all = vec![name, "--unix", path];
    all.extend_from_slice(args);
    let mut server = twistor(&all);
    let (_, first) = server.next_line(WAIT);
    let shown = match path.strip_prefix('@') {
        Some(name) => format!("@{name}"),
        None => path.to_string(),
    };
    assert_eq!(first, format!("twistor {name} listening on unix:{shown}"));
    server
}

fn connect(path: &str) -> UnixStream {
    let c = UnixStream::connect(path).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    c
}

fn read_exact(c: &mut UnixStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    c.read_exact(&mut buf).unwrap();
    buf
}

/// SIGTERM once the handlers are in; exit 0.
fn terminate(mut server: RunningExample) {
    server.wait_for_signal_handlers(&[libc::SIGINT, libc::SIGTERM], WAIT);
    server.signal(libc::SIGTERM);
    let done = server.wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
}

#[test]
fn echo_unix_round_trip_and_the_file_goes_on_exit() {
    let dir = Dir::new("echo");
    let path = dir.path("echo.sock");
    let server = start("echo", &path, &[]);
    let mut c = connect(&path);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let mut w = c.try_clone().unwrap();
    let sent = data.clone();
    let t = std::thread::spawn(move || w.write_all(&sent).unwrap());
    assert_eq!(read_exact(&mut c, data.len()), data);
    t.join().unwrap();
    terminate(server);
    assert!(!Path::new(&path).exists(), "the socket file is removed");
}

#[test]
fn reverse_unix_with_max_lines_and_reverse_client_unix() {
    let dir = Dir::new("reverse");
    let path = dir.path("rev.sock");
    let server = start("reverse", &path, &["--max-lines", "2"]);
    let mut c = connect(&path);
    c.write_all(b"abc\r\ndef\r\nghi\r\n").unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"cba\r\nfed\r\n");
    for (text, want) in [("Hello", "olleH"), ("a UNIX socket", "tekcos XINU a")] {
        let done = twistor(&["reverse-client", "--unix", &path, text]).wait(WAIT);
        assert_eq!(done.status.code(), Some(0), "{done:?}");
        let got: Vec<&str> = done.lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(got, [want], "{done:?}");
    }
    terminate(server);
}

#[test]
fn abstract_names_with_at() {
    let name = format!("@twistor-cli-test-{}", std::process::id());
    let server = start("reverse", &name, &[]);
    let done = twistor(&["reverse-client", "--unix", &name, "abstract"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert_eq!(done.lines[0].1, "tcartsba");
    terminate(server);
}

#[test]
fn want_pid_refuses_a_second_server_and_takes_over_a_dead_ones_files() {
    let dir = Dir::new("pid");
    let path = dir.path("locked.sock");
    let first = start("echo", &path, &["--want-pid"]);
    let done = twistor(&["echo", "--unix", &path, "--want-pid"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.contains("lock"), "{done:?}");
    // Killed: its socket file and lock stay behind, and a new server takes them over.
    let pid = first.pid();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = first.wait(WAIT);
    assert!(Path::new(&path).exists());
    let second = start("echo", &path, &["--want-pid"]);
    let mut c = connect(&path);
    c.write_all(b"again").unwrap();
    assert_eq!(read_exact(&mut c, 5), b"again");
    terminate(second);
    assert!(!Path::new(&path).exists());
    assert!(std::fs::symlink_metadata(format!("{path}.lock")).is_err());
}

#[test]
fn unix_errors() {
    let dir = Dir::new("errors");
    let missing = dir.path("missing.sock");
    // Nothing there: exit 1 with the reason.
    let done = twistor(&["reverse-client", "--unix", &missing, "Hello"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(
        done.stderr.starts_with("twistor reverse-client: "),
        "{done:?}"
    );
    // A file in the way: exit 1.
    let taken = dir.path("taken");
    std::fs::write(&taken, b"x").unwrap();
    let done = twistor(&["echo", "--unix", &taken]).wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.starts_with("twistor echo: "), "{done:?}");
    // Argument errors: exit 2.
    for args in [
        &["echo", "--port", "0", "--unix", "x"][..],
        &["echo", "--unix", "x", "--threads", "2"],
        &["reverse", "--want-pid", "--port", "0"],
        &["reverse-client", "--unix", "x", "--port", "1", "t"],
        &["reverse-client", "--unix", "x"],
    ] {
        let done = twistor(args).wait(WAIT);
        assert_eq!(done.status.code(), Some(2), "{args:?}: {done:?}");
    }
}

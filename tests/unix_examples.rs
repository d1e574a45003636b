//! The UNIX-socket examples, run as processes: `unix_echo_server` and `unix_echo_client`
//! over a path and an abstract name, and the client's failure when nothing listens.

mod util;

use std::time::Duration;

use util::spawn_example;

const WAIT: Duration = Duration::from_secs(10);

fn round_trip(path: &str, shown: &str) {
    let mut server = spawn_example("unix_echo_server", &[path]);
    let (_, first) = server.next_line(WAIT);
    assert_eq!(first, format!("echo server on unix:{shown}"));
    let done = spawn_example("unix_echo_client", &[path, "Hello over UNIX"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
    assert_eq!(done.lines[0].1, "Hello over UNIX");
    // The server saw the client's credentials: the client's own pid.
    let (_, cred) = server.next_line(WAIT);
    assert!(cred.starts_with("client pid "), "{cred}");
    server.wait_for_signal_handlers(&[libc::SIGINT, libc::SIGTERM], WAIT);
    server.signal(libc::SIGTERM);
    let done = server.wait(WAIT);
    assert_eq!(done.status.code(), Some(0), "{done:?}");
}

#[test]
fn echo_server_and_client_over_a_path() {
    let dir = std::env::temp_dir().join(format!("twistor-unix-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let p = path.to_str().unwrap();
    round_trip(p, p);
    assert!(!path.exists(), "the socket file is removed on exit");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn echo_server_and_client_over_an_abstract_name() {
    let name = format!("@twistor-unix-example-{}", std::process::id());
    round_trip(&name, &name);
}

#[test]
fn client_without_server_exits_1() {
    let done = spawn_example("unix_echo_client", &["/nonexistent/twistor.sock", "x"]).wait(WAIT);
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(done.stderr.starts_with("unix_echo_client: "), "{done:?}");
}

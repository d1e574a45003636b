//! The process examples run and print what their docs say.

mod util;

use util::run_example;

#[test]
fn process_lines_streams_lines_and_reports_the_exit_status() {
    let out = run_example("process_lines", &[]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "line 1: alpha",
            "line 2: beta",
            "line 3 (no newline): gamma",
            "3 lines",
            "exit status: 3",
        ]
    );
}

#[test]
fn process_lines_reports_a_signal() {
    let out = run_example("process_lines", &["sh", "-c", "kill -9 $$"]);
    assert!(out.ends_with("killed by signal 9\n"), "{out}");
}

#[test]
fn process_tee_pipes_one_child_into_another_with_back_pressure() {
    let out = run_example("process_tee", &[]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "200000");
    assert!(lines[1].starts_with("from: ProcessDone"), "{out}");
    assert!(lines[2].starts_with("to: ProcessDone"), "{out}");
}

#[test]
fn process_tee_stays_bounded_against_a_slow_reader() {
    // 20 MB into a reader that starts late: the source is paused, the buffer stays at the
    // high-water mark plus one read.
    let out = run_example(
        "process_tee",
        &[
            "--from",
            "head -c 20000000 /dev/zero",
            "--to",
            "sleep 0.3; wc -c",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "20000000");
    let last = lines.last().unwrap();
    let buffered: usize = last
        .split_whitespace()
        .nth(6)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{last}"));
    assert!(buffered <= 2 * 64 * 1024, "{last}");
    assert!(!last.ends_with(" 0 times"), "the source was paused: {last}");
}

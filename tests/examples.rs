//! The paper's examples run and print what the paper says they print.

mod util;

use util::run_example;

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn placeholder_compliments_or_sneezes() {
    let out = run_example("placeholder", &[]);
    let l = lines(&out);
    assert!(l[0].starts_with("ordered eggs benedict: we hold <Deferred at 0x"));
    assert_eq!(
        &l[2..],
        [
            "(nothing has been eaten yet)",
            "[kitchen] eggs benedict is ready",
            "eating eggs benedict...",
            "Wuu chef!",
            "[kitchen] burnt toast is ready",
            "eating burnt toast...",
            "I sneeze in your face!",
        ]
    );
}

#[test]
fn error_handling_four_shapes() {
    let out = run_example("error_handling", &[]);
    let failed: Vec<&str> = out
        .split("== order fails\n")
        .nth(1)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(
        failed,
        [
            "1. handle the error, then do the action anyway",
            "    handle_error(the kitchen is on fire)",
            "    do_action(nothing)",
            "2. handle the error, do the action only if there was none",
            "    handle_error(the kitchen is on fire)",
            "3. handle an error of the whole operation",
            "    handle_error(the kitchen is on fire)",
            "4. do something whether it succeeded or not",
            "    do_cleanup() (result was a failure)",
        ]
    );
    let ok = out.split("== order fails\n").next().unwrap();
    assert_eq!(ok.matches("do_action(eggs benedict)").count(), 3);
    assert!(!ok.contains("handle_error"));
    assert!(ok.contains("do_cleanup() (result was a success)"));
}

#[test]
fn chaining_waits_for_inner_placeholder() {
    let out = run_example("chaining", &[]);
    let l = lines(&out);
    assert_eq!(l[1], "[t=1] main course arrives");
    assert!(l[3].contains("waiting on Deferred at 0x"), "{}", l[3]);
    assert_eq!(l[4], "[t=3] dessert arrives");
    assert_eq!(
        l[5],
        "the chain continued with the inner placeholder's result: chocolate cake after eggs benedict"
    );
    assert_eq!(l[6], "[t=3] final result: 34 characters");
}

//! The paper's "Errors" section: the four try/except/else/finally shapes, each with Deferreds.
//!
//! A placeholder stands for a success or a failure. Each shape is run twice: once with an order
//! that succeeds and once with one that fails, so the output shows which handlers run when.
//!
//! Run: `cargo run --example error_handling`

use twistor::{Deferred, Failure};

#[derive(Debug, thiserror::Error)]
#[error("the kitchen is on fire")]
struct KitchenOnFire;

/// An order that has already succeeded or failed (a Deferred may also fire later: the
/// handlers run the same way then).
fn order_food(ok: bool) -> Deferred<&'static str> {
    if ok {
        Deferred::succeed("eggs benedict")
    } else {
        Deferred::fail(KitchenOnFire)
    }
}

fn do_action(value: &str) -> Result<(), Failure> {
    println!("    do_action({value})");
    Ok(())
}

fn handle_error(f: Failure) -> Result<&'static str, Failure> {
    println!("    handle_error({})", f.error_message());
    Ok("nothing")
}

fn main() {
    for ok in [true, false] {
        let outcome = if ok { "order succeeds" } else { "order fails" };
        println!("== {outcome}");

        // 1. try: value = order_food() / except: handle_error() / do_action(value)
        println!("1. handle the error, then do the action anyway");
        order_food(ok)
            .add_errback(handle_error)
            .add_callback_try(do_action);

        // 2. try / except: handle_error() / else: do_action(value)
        println!("2. handle the error, do the action only if there was none");
        order_food(ok).add_callbacks(do_action, |f| handle_error(f).map(|_| ()));

        // 3. try: value = order_food(); do_action(value) / except: handle_error()
        println!("3. handle an error of the whole operation");
        order_food(ok)
            .add_callback_try(do_action)
            .add_errback(|f| handle_error(f).map(|_| ()));

        // 4. try: value = order_food() / finally: do_cleanup()
        println!("4. do something whether it succeeded or not");
        order_food(ok)
            .add_both(|r| {
                println!(
                    "    do_cleanup() (result was {})",
                    if r.is_ok() { "a success" } else { "a failure" }
                );
                r
            })
            // The failure is still on the chain after `finally`; handle it so it is not
            // reported as unhandled when the Deferred is dropped.
            .add_errback(|_| Ok(""));
    }
}

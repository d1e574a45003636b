//! The paper's exercise 3: a callback that returns a placeholder itself.
//!
//! The naive placeholder of "No Magic" would never run that placeholder's callbacks. A Deferred
//! chains: when a callback returns another Deferred, the outer chain pauses until the inner one
//! fires, then continues with its result.
//!
//! Run: `cargo run --example chaining`

use twistor::{Clock, Deferred};

/// Fires with `value` after `delay` seconds of `clock`.
fn later<T: 'static>(clock: &Clock, delay: f64, what: &'static str, value: T) -> Deferred<T> {
    let (d, fire) = Deferred::new();
    let now = clock.clone();
    clock.call_later(delay, move || {
        println!("[t={}] {what} arrives", now.seconds());
        // Only this call fires `d`, once.
        let _ = fire.callback(value);
    });
    d
}

fn main() {
    let clock = Clock::new();
    let c = clock.clone();
    let main_course = later(&clock, 1.0, "main course", "eggs benedict");
    let done = main_course
        .add_callback_deferred(move |meal| {
            println!("ate {meal}; ordering dessert (the callback returns a new placeholder)");
            // The dessert is ordered at t=1 and takes 2 more seconds.
            later(&c, 2.0, "dessert", format!("chocolate cake after {meal}"))
        })
        .add_callback(|dessert: String| {
            println!("the chain continued with the inner placeholder's result: {dessert}");
            dessert.len()
        });
    println!("nothing has arrived yet: {done:?}");
    clock.advance(1.0);
    println!("[t=1] the outer chain now waits on the dessert: {done:?}");
    clock.advance(2.0);
    println!(
        "[t=3] final result: {} characters",
        twistor::testing::success_result_of(&done)
    );
}

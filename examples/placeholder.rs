//! The paper's "No Magic" placeholder, rewritten as a Deferred.
//!
//! `order_food` returns at once with a placeholder for a meal we don't have yet. We attach
//! `eat_meal` and `compliment_chef`: the return value of each callback is passed to the next.
//! The kitchen is a `Clock`, so the meals arrive "later" with no real time and no threads.
//!
//! Run: `cargo run --example placeholder`

use twistor::{Clock, Deferred};

#[derive(Debug)]
struct Meal {
    name: &'static str,
    tasty: bool,
}

/// Places an order and returns immediately with a placeholder for the meal.
fn order_food(kitchen: &Clock, name: &'static str, cook_time: f64, tasty: bool) -> Deferred<Meal> {
    let (placeholder, ready) = Deferred::new();
    kitchen.call_later(cook_time, move || {
        println!("[kitchen] {name} is ready");
        // The kitchen fires each placeholder once; a second firing would be an error.
        ready
            .callback(Meal { name, tasty })
            .expect("each order is served once");
    });
    placeholder
}

/// Eats the meal and says whether it was any good.
fn eat_meal(meal: Meal) -> bool {
    println!("eating {}...", meal.name);
    meal.tasty
}

fn compliment_chef(praiseworthy: bool) {
    if praiseworthy {
        println!("Wuu chef!");
    } else {
        println!("I sneeze in your face!");
    }
}

fn main() {
    let kitchen = Clock::new();

    let placeholder = order_food(&kitchen, "eggs benedict", 1.0, true);
    println!("ordered eggs benedict: we hold {placeholder:?}, not a meal");
    placeholder
        .add_callback(eat_meal)
        .add_callback(compliment_chef);

    let placeholder = order_food(&kitchen, "burnt toast", 2.0, false);
    println!("ordered burnt toast: we hold {placeholder:?}, not a meal");
    placeholder
        .add_callback(eat_meal)
        .add_callback(compliment_chef);

    println!("(nothing has been eaten yet)");
    // Time passes in the kitchen; each callback runs when its meal arrives.
    kitchen.advance(1.0);
    kitchen.advance(1.0);
}

//! Deferred (placeholder).
use std::sync::atomic::{AtomicBool, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);

/// Turns debug mode on or off (Twisted's `setDebugging`).
pub fn set_debugging(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// Whether debug mode is on (Twisted's `getDebugging`).
pub fn get_debugging() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

/// Placeholder.
pub struct Deferred<T>(std::marker::PhantomData<T>);

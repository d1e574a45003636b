//! twistor: Twisted's model of asynchronous I/O, in Rust.
#![warn(missing_docs)]

pub mod defer;
pub mod failure;
pub mod task;
pub mod testing;
pub mod time;

pub use defer::Deferred;
pub use failure::Failure;
pub use task::Clock;

//! `Failure`: the value that travels down the error track of a [`Deferred`](crate::Deferred).
//!
//! Twisted's `Failure` wraps an exception with its traceback. Here it wraps any
//! `std::error::Error + 'static`, or the message of a panic caught in user code, behind an
//! `Rc`, so that cloning one (a [`DeferredList`](crate::defer::DeferredList) hands the same
//! failure to several observers) is a reference-count increment.
//!
//! `Failure` deliberately does **not** implement `std::error::Error`: that lets it implement
//! `From<E>` for every error type, so `?` works inside callbacks whose return type is
//! `Result<_, Failure>` (a type implementing `Error` could not also have that blanket `From`:
//! it would overlap `From<T> for T`). The other direction still works: a `Failure` converts
//! into `Box<dyn Error>` (as a [`FailureError`]), so `?` on a `Failure` works in
//! `fn main() -> Result<(), Box<dyn Error>>`. The wrapped error is shared through an `Rc` and
//! may itself be `!Send`, so for `Box<dyn Error + Send + Sync>` (or `anyhow::Error`) a failure
//! converts into a [`SendableFailure`], a copy of its type name and messages. The location of that conversion is recorded (`#[track_caller]`, a
//! pointer copy); a backtrace is captured as well when [debug mode](crate::defer::set_debugging)
//! is on.

use std::any::Any;
use std::backtrace::Backtrace;
use std::error::Error;
use std::fmt;
use std::panic::Location;
use std::rc::Rc;

/// The error a panic in user code becomes: it carries the panic's message.
///
/// ```
/// use twistor::{Deferred, Failure};
/// use twistor::failure::PanicError;
///
/// let (d, r) = Deferred::<i32>::new();
/// let seen = std::rc::Rc::new(std::cell::RefCell::new(None));
/// let s = seen.clone();
/// let _d = d
///     .add_callback(|_| -> i32 { panic!("boom") })
///     .add_errback(move |f: Failure| {
///         *s.borrow_mut() = f.downcast_ref::<PanicError>().map(|p| p.message.clone());
///         Ok(0)
///     });
/// r.callback(1).unwrap();
/// assert_eq!(seen.borrow().as_deref(), Some("boom"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("panic: {message}")]
pub struct PanicError {
    /// The panic's message (`"<non-string panic payload>"` when it was not a string).
    pub message: String,
}

impl PanicError {
    /// Builds the error from the payload `std::panic::catch_unwind` returned.
    pub fn from_payload(payload: &(dyn Any + Send)) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "<non-string panic payload>".to_string()
        };
        PanicError { message }
    }
}

/// An error that came as a `Box<dyn Error>` (which does not itself implement `Error`), for
/// [`Failure::from_boxed`]. `Display` and `source` are the boxed error's.
#[derive(Debug)]
pub struct BoxedError(pub Box<dyn Error + 'static>);

impl fmt::Display for BoxedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for BoxedError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// A plain error with only a message, for `Failure::msg`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MessageError(pub String);

struct Inner<E: ?Sized> {
    /// Where the failure was made (the `?`, `Failure::new`, or the callback that panicked).
    location: &'static Location<'static>,
    /// Captured only in debug mode: it costs microseconds.
    backtrace: Option<Backtrace>,
    /// The name of the concrete error type, for `Debug`/`Display`.
    type_name: &'static str,
    error: E,
}

/// A failed result: any error, or a caught panic.
///
/// ```
/// use twistor::Failure;
///
/// let f = Failure::new(std::io::Error::new(std::io::ErrorKind::Other, "disk on fire"));
/// assert!(f.is::<std::io::Error>());
/// assert_eq!(f.error_message(), "disk on fire");
/// // `trap` hands back the failure when the type does not match, to pass it on:
/// assert!(f.trap::<std::fmt::Error>().is_err());
/// assert!(f.trap::<std::io::Error>().is_ok());
/// ```
#[derive(Clone)]
pub struct Failure {
    inner: Rc<Inner<dyn Error + 'static>>,
}

impl Failure {
    /// Wraps an error.
    #[track_caller]
    pub fn new<E: Error + 'static>(error: E) -> Self {
        let backtrace = if crate::defer::get_debugging() {
            Some(Backtrace::force_capture())
        } else {
            None
        };
        Failure {
            inner: Rc::new(Inner {
                location: Location::caller(),
                backtrace,
                type_name: std::any::type_name::<E>(),
                error,
            }),
        }
    }

    /// A failure carrying only a message (a [`MessageError`]).
    #[track_caller]
    pub fn msg(message: impl Into<String>) -> Self {
        Failure::new(MessageError(message.into()))
    }

    /// Wraps a boxed error (`Box<dyn Error>`, as many APIs return). The error stays reachable:
    /// `downcast_ref::<BoxedError>()` gives the box back.
    ///
    /// ```
    /// let e: Box<dyn std::error::Error> = "x".parse::<u8>().unwrap_err().into();
    /// let f = twistor::Failure::from_boxed(e);
    /// let inner = &f.downcast_ref::<twistor::failure::BoxedError>().unwrap().0;
    /// assert!(inner.is::<std::num::ParseIntError>());
    /// ```
    #[track_caller]
    pub fn from_boxed(error: Box<dyn Error + 'static>) -> Self {
        Failure::new(BoxedError(error))
    }

    /// The failure a caught panic becomes (a [`PanicError`]).
    #[track_caller]
    pub fn from_panic(payload: &(dyn Any + Send)) -> Self {
        Failure::new(PanicError::from_payload(payload))
    }

    /// True if the wrapped error is of type `E`.
    pub fn is<E: Error + 'static>(&self) -> bool {
        self.error().is::<E>()
    }

    /// The wrapped error as an `E`, if it is one.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.error().downcast_ref::<E>()
    }

    /// Twisted's `trap`: `Ok(&E)` if the error is an `E`, otherwise `Err` with this failure, so
    /// an errback can handle one kind of error and pass every other on with `?`.
    ///
    /// ```
    /// use twistor::{Deferred, Failure};
    /// use twistor::defer::CancelledError;
    ///
    /// let (d, _r) = Deferred::<&str>::new();
    /// let handled = d.add_errback(|f: Failure| {
    ///     f.trap::<CancelledError>()?;
    ///     Ok("cancelled, never mind")
    /// });
    /// handled.cancel();
    /// assert_eq!(twistor::testing::success_result_of(&handled), "cancelled, never mind");
    /// ```
    pub fn trap<E: Error + 'static>(&self) -> Result<&E, Failure> {
        self.downcast_ref::<E>().ok_or_else(|| self.clone())
    }

    /// Twisted's `check`: true if the error is an `E` (like `is`, named for porting).
    pub fn check<E: Error + 'static>(&self) -> bool {
        self.is::<E>()
    }

    /// The wrapped error.
    pub fn error(&self) -> &(dyn Error + 'static) {
        &self.inner.error
    }

    /// The full type name of the wrapped error, e.g. `std::io::error::Error`.
    pub fn type_name(&self) -> &'static str {
        self.inner.type_name
    }

    /// The error's message: its `Display`, as Twisted's `getErrorMessage()`.
    #[doc(alias = "getErrorMessage")]
    pub fn error_message(&self) -> String {
        self.inner.error.to_string()
    }

    /// Where the failure was created.
    pub fn location(&self) -> &'static Location<'static> {
        self.inner.location
    }

    /// The backtrace captured at creation, in debug mode only.
    pub fn backtrace(&self) -> Option<&Backtrace> {
        self.inner.backtrace.as_ref()
    }

    /// True if both handles share the same underlying failure.
    pub fn ptr_eq(&self, other: &Failure) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// A short name for the error type: the last path segment, generics kept.
    pub fn short_type_name(&self) -> &'static str {
        short_name(self.inner.type_name)
    }
}

fn short_name(full: &'static str) -> &'static str {
    let base = full.split('<').next().unwrap_or(full);
    match base.rfind("::") {
        Some(i) => &full[i + 2..],
        None => full,
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.short_type_name(), &self.inner.error)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<Failure {}: {} at {}>",
            self.inner.type_name, &self.inner.error, self.inner.location
        )?;
        let mut source = self.inner.error.source();
        while let Some(s) = source {
            write!(f, "\n  caused by: {s}")?;
            source = s.source();
        }
        if let Some(bt) = &self.inner.backtrace {
            write!(f, "\n{bt}")?;
        }
        Ok(())
    }
}

/// A [`Failure`] as a `std::error::Error`, for code outside Deferred chains (what `?` on a
/// `Failure` gives in a function returning `Result<_, Box<dyn Error>>`). `Display` is the
/// failure's; `source` is the wrapped error's source.
///
/// ```
/// use std::error::Error;
/// fn main_like() -> Result<(), Box<dyn Error>> {
///     let r: Result<(), twistor::Failure> = Err(twistor::Failure::msg("no disk"));
///     r?;
///     Ok(())
/// }
/// let e = main_like().unwrap_err();
/// assert_eq!(e.to_string(), "MessageError: no disk");
/// let f = &e.downcast_ref::<twistor::failure::FailureError>().unwrap().0;
/// assert!(f.is::<twistor::failure::MessageError>());
/// ```
#[derive(Debug, Clone)]
pub struct FailureError(pub Failure);

impl fmt::Display for FailureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Error for FailureError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.error().source()
    }
}

impl From<Failure> for Box<dyn Error + 'static> {
    fn from(f: Failure) -> Self {
        Box::new(FailureError(f))
    }
}

impl<E: Error + 'static> From<E> for Failure {
    #[track_caller]
    fn from(error: E) -> Self {
        Failure::new(error)
    }
}

/// A `Send + Sync` snapshot of a [`Failure`], for code whose errors must cross threads
/// (`Box<dyn Error + Send + Sync>`, `anyhow::Error`): the type name, the message and the
/// messages of the source chain, as text. A `Failure` itself shares its error through an `Rc`
/// and cannot be sent; `?` converts it into `Box<dyn Error + Send + Sync>` through this, and
/// `.map_err(Failure::into_send)?` does the same for error types with a blanket `From`.
///
/// ```
/// use std::error::Error;
/// use twistor::Failure;
///
/// fn step() -> Result<(), Failure> {
///     Err(Failure::msg("disk full"))
/// }
/// fn run() -> Result<(), Box<dyn Error + Send + Sync>> {
///     step()?;
///     Ok(())
/// }
/// let e = run().unwrap_err();
/// assert_eq!(e.to_string(), "disk full");
/// std::thread::spawn(move || assert!(e.to_string().contains("disk"))).join().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendableFailure {
    /// The failure's error type (`Failure::type_name`).
    pub type_name: &'static str,
    /// The failure's message (its `Display`).
    pub message: String,
    /// The next error of the source chain, if any.
    pub source: Option<Box<SendableFailure>>,
}

impl SendableFailure {
    fn of(error: &(dyn Error + 'static), type_name: &'static str) -> SendableFailure {
        // The chain is copied iteratively from the innermost error out, so a long chain
        // cannot exhaust the stack.
        let mut chain = Vec::new();
        let mut next = error.source();
        while let Some(e) = next {
            chain.push(e.to_string());
            next = e.source();
        }
        let mut source = None;
        for message in chain.into_iter().rev() {
            source = Some(Box::new(SendableFailure {
                type_name: "source",
                message,
                source,
            }));
        }
        SendableFailure {
            type_name,
            message: error.to_string(),
            source,
        }
    }
}

impl fmt::Display for SendableFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for SendableFailure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn Error + 'static))
    }
}

impl Failure {
    /// A `Send + Sync` copy of this failure's type name and messages (see
    /// [`SendableFailure`]).
    ///
    /// ```
    /// let f = twistor::Failure::msg("boom");
    /// let s = f.into_send();
    /// assert_eq!(s.message, "boom");
    /// ```
    pub fn into_send(self) -> SendableFailure {
        SendableFailure::of(self.error(), self.type_name())
    }
}

impl From<Failure> for Box<dyn Error + Send + Sync + 'static> {
    fn from(f: Failure) -> Self {
        Box::new(f.into_send())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("generic: {0}")]
    struct Generic(&'static str);

    #[test]
    fn display_shows_type_and_message() {
        let f = Failure::new(Generic("x"));
        assert_eq!(f.to_string(), "Generic: generic: x");
        assert!(format!("{f:?}").contains("Generic"));
        assert!(format!("{f:?}").contains("failure.rs"));
    }

    #[test]
    fn question_mark_converts() {
        fn parse() -> Result<i32, Failure> {
            Ok("nope".parse::<i32>()?)
        }
        let f = parse().unwrap_err();
        assert!(f.is::<std::num::ParseIntError>());
    }

    #[test]
    fn panic_payloads() {
        let p = std::panic::catch_unwind(|| panic!("a {}", 1)).unwrap_err();
        let f = Failure::from_panic(&*p);
        assert_eq!(f.downcast_ref::<PanicError>().unwrap().message, "a 1");
        assert_eq!(short_name("a::b::C<x::Y>"), "C<x::Y>");
    }
}

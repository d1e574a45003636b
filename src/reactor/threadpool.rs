//! The reactor's thread pool: `call_in_thread` and `defer_to_thread` (Twisted's
//! `IReactorInThreads` and `threads.deferToThread`).
//!
//! The pool starts lazily, on the first job, and grows one worker per job up to its size
//! (default 10, Twisted's; [`Reactor::suggest_thread_pool_size`]). Idle workers wait on a
//! condition variable. A during-shutdown trigger, registered when the pool is created, stops
//! it: queued jobs still run, then every worker is joined, so `run()` returns with no thread
//! left behind. Results travel back with `call_from_thread`, so a Deferred always fires on
//! the reactor's thread.

use std::collections::VecDeque;
use std::error::Error;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::{Phase, Reactor};
use crate::failure::PanicError;
use crate::{Deferred, Failure, Resolver};

/// Twisted's default maximum.
pub const DEFAULT_POOL_SIZE: usize = 10;

type Job = Box<dyn FnOnce() + Send>;

struct Queue {
    jobs: VecDeque<Job>,
    idle: usize,
    stopping: bool,
}

pub(crate) struct ThreadPool {
    shared: Arc<(Mutex<Queue>, Condvar)>,
    workers: Vec<JoinHandle<()>>,
    max: usize,
}

fn lock(m: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    // Jobs run outside the lock and panics in them are caught, so a poisoned lock can only
    // come from a panic in this file's own short critical sections: the queue is still sound.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ThreadPool {
    fn new(max: usize) -> ThreadPool {
        ThreadPool {
            shared: Arc::new((
                Mutex::new(Queue {
                    jobs: VecDeque::new(),
                    idle: 0,
                    stopping: false,
                }),
                Condvar::new(),
            )),
            workers: Vec::new(),
            max: max.max(1),
        }
    }

    fn submit(&mut self, job: Job) {
        let (m, cv) = &*self.shared;
        let need_worker = {
            let mut q = lock(m);
            q.jobs.push_back(job);
            q.idle < q.jobs.len() && self.workers.len() < self.max
        };
        cv.notify_one();
        if need_worker {
            let shared = self.shared.clone();
            let n = self.workers.len();
            match std::thread::Builder::new()
                .name(format!("twistor-pool-{n}"))
                .spawn(move || worker(shared))
            {
                Ok(h) => self.workers.push(h),
                // The job stays queued for the existing workers; with none, it waits until a
                // later submit manages to start one.
                Err(e) => {
                    log::error!(target: "twistor::reactor", "cannot start a pool thread: {e}")
                }
            }
        }
    }

    /// Asks the workers to finish the queued jobs and exit, without waiting for them (the
    /// reactor is being dropped: blocking its last handle's drop on a job would be worse than
    /// letting the threads end on their own).
    pub(crate) fn release(self) {
        let (m, cv) = &*self.shared;
        lock(m).stopping = true;
        cv.notify_all();
    }

    fn stop(self) {
        {
            let (m, cv) = &*self.shared;
            lock(m).stopping = true;
            cv.notify_all();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

fn worker(shared: Arc<(Mutex<Queue>, Condvar)>) {
    let (m, cv) = &*shared;
    loop {
        let job = {
            let mut q = lock(m);
            loop {
                if let Some(j) = q.jobs.pop_front() {
                    break Some(j);
                }
                if q.stopping {
                    break None;
                }
                q.idle += 1;
                q = cv.wait(q).unwrap_or_else(|p| p.into_inner());
                q.idle -= 1;
            }
        };
        match job {
            Some(j) => j(),
            None => return,
        }
    }
}

/// A panic on a pool thread, carried back as a message (a `Failure` is not `Send`).
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    PanicError::from_payload(p).message
}

impl Reactor {
    /// Sets the pool's maximum number of threads (Twisted's `suggestThreadPoolSize`); takes
    /// effect for threads started afterwards.
    ///
    /// ```
    /// let reactor = twistor::reactor::Reactor::new().unwrap();
    /// reactor.suggest_thread_pool_size(4);
    /// ```
    #[doc(alias = "suggestThreadPoolSize")]
    pub fn suggest_thread_pool_size(&self, size: usize) {
        let mut ext = self.extensions();
        ext.pool_size = Some(size.max(1));
        if let Some(p) = ext.pool.as_mut() {
            p.max = size.max(1);
        }
    }

    /// Runs `f` on a pool thread (Twisted's `callInThread`). A panic in `f` is logged.
    ///
    /// ```
    /// let reactor = twistor::reactor::Reactor::new().unwrap();
    /// let h = reactor.thread_handle();
    /// reactor.call_in_thread(move || h.call_from_thread(|r| { let _ = r.stop(); }));
    /// reactor.run_without_signal_handlers().unwrap();
    /// ```
    #[doc(alias = "callInThread")]
    pub fn call_in_thread(&self, f: impl FnOnce() + Send + 'static) {
        let back = self.thread_handle();
        self.submit(Box::new(move || {
            if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
                let msg = panic_message(&*p);
                back.call_from_thread(move |_| {
                    crate::report_error!(target: "twistor::reactor", "panic in call_in_thread: {msg}");
                });
            }
        }));
    }

    /// Runs `f` on a pool thread; the Deferred fires on the reactor's thread with its value
    /// (Twisted's `deferToThread`). A panic becomes a [`PanicError`] failure.
    ///
    /// ```
    /// let reactor = twistor::reactor::Reactor::new().unwrap();
    /// let r = reactor.clone();
    /// let d = reactor
    ///     .defer_to_thread(|| (1..=10u64).product::<u64>())
    ///     .add_callback(move |v| { let _ = r.stop(); v });
    /// reactor.run_without_signal_handlers().unwrap();
    /// assert_eq!(twistor::testing::success_result_of(&d), 3628800);
    /// ```
    #[doc(alias = "deferToThread")]
    pub fn defer_to_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Deferred<T> {
        self.defer_to_thread_try(move || Ok::<T, std::convert::Infallible>(f()))
    }

    /// Like [`defer_to_thread`](Self::defer_to_thread) for a function that can fail: its
    /// error (which must be `Send` to cross threads) fails the Deferred.
    ///
    /// ```
    /// let reactor = twistor::reactor::Reactor::new().unwrap();
    /// let r = reactor.clone();
    /// let d = reactor
    ///     .defer_to_thread_try(|| "x".parse::<u8>())
    ///     .add_both(move |v| { let _ = r.stop(); v });
    /// reactor.run_without_signal_handlers().unwrap();
    /// assert!(twistor::testing::failure_result_of(&d).is::<std::num::ParseIntError>());
    /// ```
    #[doc(alias = "deferToThread")]
    pub fn defer_to_thread_try<T: Send + 'static, E: Error + Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> Deferred<T> {
        let (d, fire) = Deferred::new();
        // The Deferred stays on this thread; the worker gets a key to it.
        let key = self.park(fire);
        let back = self.thread_handle();
        self.submit(Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(&*p));
            back.call_from_thread(move |r| {
                let Some(d) = r.unpark::<T>(key) else { return };
                let result = match outcome {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(Failure::new(e)),
                    Err(message) => Err(Failure::new(PanicError { message })),
                };
                let _ = d.fire(result);
            });
        }));
        d
    }

    fn submit(&self, job: Job) {
        let mut ext = self.extensions();
        if ext.pool.is_none() {
            let size = ext.pool_size.unwrap_or(DEFAULT_POOL_SIZE);
            ext.pool = Some(ThreadPool::new(size));
            drop(ext);
            let weak = self.weak();
            self.add_system_event_trigger(Phase::During, "shutdown", move || {
                if let Some(r) = Reactor::from_weak(&weak) {
                    let pool = r.extensions().pool.take();
                    if let Some(p) = pool {
                        p.stop();
                    }
                }
            });
            ext = self.extensions();
        }
        if let Some(p) = ext.pool.as_mut() {
            p.submit(job);
        }
    }

    /// Keeps a Deferred on the reactor's thread under a key that can cross threads.
    fn park<T: 'static>(&self, d: Resolver<T>) -> u64 {
        let mut ext = self.extensions();
        ext.next_parked += 1;
        let key = ext.next_parked;
        ext.parked.insert(key, Box::new(d));
        key
    }

    fn unpark<T: 'static>(&self, key: u64) -> Option<Resolver<T>> {
        let b = self.extensions().parked.remove(&key)?;
        b.downcast::<Resolver<T>>().ok().map(|b| *b)
    }
}

/// A job for another thread, with its result boxed, for the object-safe
/// [`ReactorThreads::defer_to_thread_boxed`].
pub type ThreadJob = Box<dyn FnOnce() -> Box<dyn std::any::Any + Send> + Send>;

/// A result of [`ReactorThreads::defer_to_thread_boxed`] was not of the type asked for (an
/// implementation of the trait gave back another job's result).
///
/// ```
/// let e = twistor::reactor::WrongResultType("u32");
/// assert_eq!(e.to_string(), "a thread job's result is not a u32");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a thread job's result is not a {0}")]
pub struct WrongResultType(pub &'static str);

/// Something that runs blocking functions off the loop thread and hands their results back
/// on it (Twisted's `IReactorThreads` with `deferToThread`). The [`Reactor`] uses its thread
/// pool; [`MemoryReactor`](crate::testing::MemoryReactor) runs the function at once, on the
/// calling thread, so tests need no threads.
///
/// ```
/// use twistor::reactor::ReactorThreads;
/// use twistor::testing::{MemoryReactor, success_result_of};
///
/// fn checksum(r: &impl ReactorThreads, data: Vec<u8>) -> twistor::Deferred<u32> {
///     r.defer_to_thread(move || data.iter().map(|&b| b as u32).sum())
/// }
/// let mr = MemoryReactor::new();
/// assert_eq!(success_result_of(&checksum(&mr, vec![1, 2, 3])), 6);
/// ```
#[doc(alias = "IReactorThreads")]
pub trait ReactorThreads {
    /// Runs `job` off the loop; the Deferred fires on the loop's thread with its result (a
    /// panic fails it with a [`PanicError`]). The object-safe core of
    /// [`defer_to_thread`](Self::defer_to_thread).
    ///
    /// ```
    /// use twistor::reactor::ReactorThreads;
    /// use twistor::testing::{MemoryReactor, failure_result_of};
    ///
    /// let mr = MemoryReactor::new();
    /// let d = mr.defer_to_thread_boxed(Box::new(|| panic!("no")));
    /// assert!(failure_result_of(&d).is::<twistor::failure::PanicError>());
    /// ```
    fn defer_to_thread_boxed(&self, job: ThreadJob) -> Deferred<Box<dyn std::any::Any + Send>>;

    /// Runs `f` off the loop; the Deferred fires on the loop's thread with its value (Twisted's
    /// `deferToThread`).
    ///
    /// ```
    /// use twistor::reactor::ReactorThreads;
    /// use twistor::testing::{MemoryReactor, success_result_of};
    ///
    /// let mr = MemoryReactor::new();
    /// let d = ReactorThreads::defer_to_thread(&mr, || 6 * 7);
    /// assert_eq!(success_result_of(&d), 42);
    /// ```
    fn defer_to_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Deferred<T>
    where
        Self: Sized,
    {
        self.defer_to_thread_boxed(Box::new(move || {
            Box::new(f()) as Box<dyn std::any::Any + Send>
        }))
        .add_callback_try(|b| {
            b.downcast::<T>()
                .map(|b| *b)
                .map_err(|_| Failure::new(WrongResultType(std::any::type_name::<T>())))
        })
    }
}

impl ReactorThreads for Reactor {
    fn defer_to_thread_boxed(&self, job: ThreadJob) -> Deferred<Box<dyn std::any::Any + Send>> {
        Reactor::defer_to_thread(self, job)
    }
}

/// Pointers to a thread runner are thread runners (`&T`, `Rc<T>`, `Box<T>`).
macro_rules! forward_reactor_threads {
    ($($ptr:ty),*) => {$(
        impl<T: ReactorThreads + ?Sized> ReactorThreads for $ptr {
            fn defer_to_thread_boxed(
                &self,
                job: ThreadJob,
            ) -> Deferred<Box<dyn std::any::Any + Send>> {
                (**self).defer_to_thread_boxed(job)
            }
        }
    )*};
}

forward_reactor_threads!(&T, std::rc::Rc<T>, Box<T>);

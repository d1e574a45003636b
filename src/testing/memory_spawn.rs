//! `MemoryReactor` as a [`ReactorSpawn`] and a [`ReactorThreads`]: async code tested with no
//! sockets, no threads and no real time.
//!
//! # The local executor
//!
//! A spawned future is polled at once, until it first waits. When it is woken, a poll is
//! scheduled on the reactor's [`Clock`] as a zero-delay call, so it runs the next time the
//! clock advances (`advance(0.0)` is enough; [`MemoryReactor::run_until_stalled`] does
//! that). A wake-up inside `advance` (a `defer_later` firing, say) is therefore served within
//! the same `advance`, the way a real reactor serves it on its next turn. Wake-ups from
//! other threads are queued and picked up by `run_until_stalled`.
//!
//! Tasks live in a table of the thread that spawned them, until they finish or are aborted
//! (a task that never finishes lives as long as that thread).
//!
//! `defer_to_thread` runs the function at once, on the calling thread: its Deferred has its
//! result when the call returns.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, ThreadId};

use crate::defer::future::{Resumer, polling_task};
use crate::failure::PanicError;
use crate::reactor::{LocalFuture, ReactorSpawn, ReactorThreads, TaskHandle, ThreadJob};
use crate::task::Clock;
use crate::{Deferred, Failure};

use super::MemoryReactor;

/// What a panic of the future is handed to.
type OnPanic = Box<dyn FnOnce(Failure)>;

struct LocalTask {
    /// `None` while it is being polled.
    future: RefCell<Option<LocalFuture>>,
    on_panic: RefCell<Option<OnPanic>>,
    /// The clock its polls are scheduled on.
    clock: Clock,
    /// A poll is already scheduled: more wake-ups before it add nothing.
    scheduled: Cell<bool>,
}

thread_local! {
    static TASKS: RefCell<HashMap<u64, Rc<LocalTask>>> = RefCell::new(HashMap::new());
}

/// Ids are unique across threads, so a waker can never name another thread's task.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Wake-ups from other threads, for `run_until_stalled` on the owning thread.
static REMOTE: Mutex<Vec<(ThreadId, u64)>> = Mutex::new(Vec::new());

struct TaskWaker {
    id: u64,
    thread: ThreadId,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if thread::current().id() == self.thread {
            schedule(self.id);
        } else {
            // A poisoned lock only means a pusher panicked mid-push: the Vec is fine.
            let mut q = REMOTE.lock().unwrap_or_else(|p| p.into_inner());
            q.push((self.thread, self.id));
        }
    }
}

fn task(id: u64) -> Option<Rc<LocalTask>> {
    // `try_with`: a waker may be used while the thread's table is being destroyed.
    TASKS
        .try_with(|t| t.borrow().get(&id).cloned())
        .ok()
        .flatten()
}

fn remove(id: u64) -> Option<Rc<LocalTask>> {
    TASKS
        .try_with(|t| t.borrow_mut().remove(&id))
        .ok()
        .flatten()
}

fn schedule(id: u64) {
    let Some(t) = task(id) else { return };
    if t.scheduled.replace(true) {
        return;
    }
    t.clock.call_later(0.0, move || poll(id));
}

fn poll(id: u64) {
    let Some(t) = task(id) else { return };
    // Cleared before polling: a wake-up during this poll schedules the next one.
    t.scheduled.set(false);
    let Some(mut fut) = t.future.borrow_mut().take() else {
        return;
    };
    let waker = Waker::from(Arc::new(TaskWaker {
        id,
        thread: thread::current().id(),
    }));
    let mut cx = Context::from_waker(&waker);
    // As on the reactor, a Deferred the future awaits resumes it inside its callback.
    let resume: Resumer = Rc::new(move || match task(id) {
        Some(t) if t.future.borrow().is_some() => {
            poll(id);
            true
        }
        _ => false,
    });
    let polled = polling_task(&resume, || {
        catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx)))
    });
    match polled {
        Ok(Poll::Pending) => {
            if task(id).is_some() {
                *t.future.borrow_mut() = Some(fut);
            } else {
                // Aborted while it ran.
                drop(fut);
            }
        }
        Ok(Poll::Ready(())) => {
            drop(remove(id));
            drop(fut);
        }
        Err(p) => {
            drop(remove(id));
            drop(fut);
            let f = Failure::from_panic(&*p);
            crate::report_error!(target: "twistor::testing", "panic in a spawned future: {f}");
            let on_panic = t.on_panic.borrow_mut().take();
            if let Some(on_panic) = on_panic {
                on_panic(f);
            }
        }
    }
}

impl ReactorSpawn for MemoryReactor {
    fn spawn_boxed(&self, future: LocalFuture, on_panic: Box<dyn FnOnce(Failure)>) -> TaskHandle {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let t = Rc::new(LocalTask {
            future: RefCell::new(Some(future)),
            on_panic: RefCell::new(Some(on_panic)),
            clock: self.clock().clone(),
            scheduled: Cell::new(false),
        });
        TASKS.with(|tasks| tasks.borrow_mut().insert(id, t));
        poll(id);
        TaskHandle::new(move || {
            // Dropped here, with no borrow of the table held.
            let t = remove(id);
            let fut = t.as_ref().and_then(|t| t.future.borrow_mut().take());
            drop(fut);
            drop(t);
        })
    }
}

impl ReactorThreads for MemoryReactor {
    fn defer_to_thread_boxed(&self, job: ThreadJob) -> Deferred<Box<dyn std::any::Any + Send>> {
        match catch_unwind(AssertUnwindSafe(job)) {
            Ok(v) => Deferred::succeed(v),
            Err(p) => Deferred::fail(PanicError::from_payload(&*p)),
        }
    }
}

impl MemoryReactor {
    /// Polls every spawned future that was woken (from this thread or another) and runs
    /// what is due on the clock now, until nothing more is ready; time does not move.
    ///
    /// ```
    /// use twistor::reactor::ReactorSpawn;
    /// use twistor::testing::{MemoryReactor, assert_no_result, success_result_of};
    /// use twistor::Deferred;
    ///
    /// let mr = MemoryReactor::new();
    /// // A future woken from outside a Deferred's callback (here, by hand) waits for a poll.
    /// let (tx, rx) = std::sync::mpsc::channel::<u8>();
    /// let waker = std::rc::Rc::new(std::cell::RefCell::new(None::<std::task::Waker>));
    /// let w = waker.clone();
    /// let d = mr.spawn(std::future::poll_fn(move |cx| match rx.try_recv() {
    ///     Ok(v) => std::task::Poll::Ready(Ok::<_, twistor::Failure>(v + 1)),
    ///     Err(_) => { *w.borrow_mut() = Some(cx.waker().clone()); std::task::Poll::Pending }
    /// }));
    /// tx.send(1).unwrap();
    /// if let Some(w) = waker.borrow_mut().take() { w.wake() }
    /// assert_no_result(&d); // woken, not polled yet
    /// mr.run_until_stalled();
    /// assert_eq!(success_result_of(&d), 2);
    /// ```
    pub fn run_until_stalled(&self) {
        let me = thread::current().id();
        let mine: Vec<u64> = {
            let mut q = REMOTE.lock().unwrap_or_else(|p| p.into_inner());
            let (mine, others): (Vec<_>, Vec<_>) = q.drain(..).partition(|(t, _)| *t == me);
            *q = others;
            mine.into_iter().map(|(_, id)| id).collect()
        };
        for id in mine {
            schedule(id);
        }
        self.clock().advance(0.0);
    }
}

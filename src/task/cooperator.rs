//! `Cooperator`: run many iterators a step at a time, sharing time fairly (Twisted's
//! `task.Cooperator`, `cooperate` and `coiterate`).
//!
//! # Tasks
//!
//! A task is an iterator; each `next()` is one unit of work. Its items are [`Step`]s:
//!
//! * `()` — one unit of work was done;
//! * `Result<(), Failure>` — `Err` fails the task (the Rust form of `next()` raising);
//! * `Deferred<()>` — the task waits until the Deferred fires: success resumes it, failure
//!   fails the task with that failure;
//! * [`StepOutcome`] — one of the above, for iterators that wait on some steps only.
//!
//! The iterator ending completes the task; a panic in `next()` fails it with a
//! [`PanicError`](crate::failure::PanicError). So `(0..n).map(|i| work(i))` with a `work`
//! returning `()` is a task, and so is an iterator of Deferreds that makes a sequence of
//! asynchronous operations run one after the other.
//!
//! # Ticks
//!
//! While there are runnable tasks, the cooperator keeps one *tick* scheduled with
//! `clock.call_later(tick_delay)` (1e-8 s by default, as Twisted). A tick creates a fresh
//! termination predicate (default: "10 ms of wall-clock time have passed since the start of
//! the tick", measured with `std::time::Instant` as Twisted's `_Timer` uses `time.time()`,
//! not the scheduler's clock), then walks the runnable tasks round-robin, continuing where the previous tick
//! stopped, calling `next()` once per task per turn and asking the predicate after each step,
//! until it says stop or no runnable task remains; then it schedules the next tick if needed.
//! The scheduled tick is cancelled as soon as the last runnable task goes away.
//!
//! Because the slice is wall-clock time, a tick ends even on a [`Clock`](crate::task::Clock),
//! whose time stands still during a tick: an endless iterator cannot make a tick endless.
//! Tests that need an exact number of steps per tick give the cooperator a termination
//! predicate (e.g. `|| || true`: one step per tick) with [`CooperatorBuilder::termination`].
//!
//! # Task states
//!
//! A task is *runnable* when it is not finished, not paused (`pause()` is counted) and not
//! waiting on a Deferred. Waiting on a Deferred is tracked apart from the pause count (Twisted
//! pauses the task itself), so `resume()` on a task that only waits returns
//! [`SchedulerError::NotPaused`] instead of releasing it early; a task paused while it waits
//! runs again only once the Deferred fired *and* it was resumed.
//!
//! A finished task is *done* (its iterator ended), *stopped* (`stop()`), *failed*, or
//! *scheduler-stopped*; its iterator is dropped at that point. `when_done()` Deferreds fire
//! with `()` or fail with the task's failure, with `TaskStopped`, or with `SchedulerStopped`.
//! `pause()` and `stop()` on a finished task return the matching [`SchedulerError`].
//!
//! [`Cooperator::stop`] fails every unfinished task, paused or waiting ones included, with
//! `SchedulerStopped`, and makes tasks added later complete at once with `SchedulerStopped`
//! (Twisted fails paused tasks only once they are resumed). [`Cooperator::start`] makes it
//! accept tasks again.
//!
//! # Re-entrancy
//!
//! No `RefCell` borrow is held while user code runs (`next()`, dropping an iterator, the
//! termination predicate, `when_done` callbacks). `next()` may pause, resume or stop its own
//! task or others, add tasks, or stop the cooperator. A task's iterator is taken out of its
//! cell while `next()` runs, so it is never re-entered; a tick that starts while another tick
//! of the same cooperator is running (a task advanced the clock) does nothing, the running
//! tick reschedules when it ends.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::{Rc, Weak};

use super::duration::BadDuration;
use super::step::{Step, StepOutcome};
use crate::time::{DelayedCall, ReactorTime};
use crate::{Deferred, Failure};

/// The default time slice of a tick, in seconds of the cooperator's clock (Twisted's
/// `_Timer.MAX_SLICE`).
///
/// ```
/// assert_eq!(twistor::task::DEFAULT_TIME_SLICE, 0.01);
/// ```
pub const DEFAULT_TIME_SLICE: f64 = 0.01;

/// The default delay of a scheduled tick, in seconds (Twisted's `_EPSILON`).
///
/// ```
/// assert_eq!(twistor::task::DEFAULT_TICK_DELAY, 1e-8);
/// ```
pub const DEFAULT_TICK_DELAY: f64 = 0.000_000_01;

/// Why a [`CooperativeTask`] operation refused, and the failures `when_done` Deferreds get
/// (Twisted's `SchedulerError` family). `TaskDone`, `TaskStopped` and `TaskFailed` are
/// Twisted's `TaskFinished` subclasses (see [`is_task_finished`](Self::is_task_finished)).
///
/// ```
/// use twistor::task::{Clock, Cooperator, SchedulerError};
/// let coop = Cooperator::new(Clock::new());
/// let task = coop.cooperate(std::iter::empty::<()>());
/// assert_eq!(task.resume(), Err(SchedulerError::NotPaused));
/// task.stop().unwrap();
/// assert_eq!(task.stop(), Err(SchedulerError::TaskStopped));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// The cooperator was stopped (the task was failed by `Cooperator::stop`, or added to a
    /// stopped cooperator).
    #[error("the cooperator was stopped")]
    SchedulerStopped,
    /// `resume()` on a task that was not paused.
    #[error("the task was not paused")]
    NotPaused,
    /// The task's iterator was exhausted.
    #[error("the task is already done")]
    TaskDone,
    /// The task was stopped.
    #[error("the task was stopped")]
    TaskStopped,
    /// The task failed.
    #[error("the task failed")]
    TaskFailed,
}

impl SchedulerError {
    /// True for `TaskDone`, `TaskStopped` and `TaskFailed` (Twisted's `TaskFinished`).
    ///
    /// ```
    /// use twistor::task::SchedulerError;
    /// assert!(SchedulerError::TaskDone.is_task_finished());
    /// assert!(!SchedulerError::NotPaused.is_task_finished());
    /// ```
    #[doc(alias = "TaskFinished")]
    pub fn is_task_finished(&self) -> bool {
        matches!(
            self,
            SchedulerError::TaskDone | SchedulerError::TaskStopped | SchedulerError::TaskFailed
        )
    }
}

type PredicateFactory = Box<dyn Fn() -> Box<dyn FnMut() -> bool>>;

struct CoopState {
    /// Runnable tasks, in round-robin order.
    tasks: Vec<Rc<TaskInner>>,
    /// Index of the next task to step in `tasks`.
    cursor: usize,
    /// Every unfinished task, by creation order (for `stop`).
    unfinished: BTreeMap<u64, Weak<TaskInner>>,
    next_id: u64,
    delayed: Option<DelayedCall>,
    stopped: bool,
    started: bool,
    must_schedule_on_start: bool,
    ticking: bool,
}

struct CoopInner {
    clock: Rc<dyn ReactorTime>,
    tick_delay: f64,
    termination: PredicateFactory,
    st: RefCell<CoopState>,
}

/// A cooperative scheduler for iterators (Twisted's `task.Cooperator`).
///
/// Tasks are iterators of [`Step`]s. While some task is runnable (not finished, paused or
/// waiting on a Deferred), one *tick* is scheduled on the clock ([`DEFAULT_TICK_DELAY`] ahead).
/// A tick asks the termination predicate factory for a predicate (default:
/// [`DEFAULT_TIME_SLICE`] seconds of wall-clock time since the start of the tick), then steps the
/// runnable tasks round-robin, one `next()` each per turn, continuing where the previous tick
/// stopped, until the predicate says stop or no task is runnable.
///
/// The slice is wall-clock time (as in Twisted), so a tick ends even on a
/// [`Clock`](crate::task::Clock), whose time stands still during a tick. For an exact number
/// of steps per tick, give a predicate with [`CooperatorBuilder::termination`] (`|| || true`
/// is one step per tick).
///
/// A cheap handle: clones share the same scheduler. Scheduled ticks keep it alive while it has
/// runnable tasks.
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use twistor::task::{Clock, Cooperator};
///
/// let clock = Clock::new();
/// let coop = Cooperator::builder(clock.clone()).termination(|| || false).build();
/// let log = Rc::new(RefCell::new(Vec::new()));
/// for (name, n) in [("a", 3), ("b", 2)] {
///     let l = log.clone();
///     let _ = coop.coiterate((0..n).map(move |i| l.borrow_mut().push(format!("{name}{i}"))));
/// }
/// clock.advance(1.0);
/// assert_eq!(*log.borrow(), ["a0", "b0", "a1", "b1", "a2"]);
/// ```
#[derive(Clone)]
pub struct Cooperator {
    inner: Rc<CoopInner>,
}

/// Options for a [`Cooperator`]: made by [`Cooperator::builder`].
///
/// ```
/// use twistor::task::{Clock, Cooperator};
/// let coop = Cooperator::builder(Clock::new())
///     .time_slice(0.005)?
///     .tick_delay(0.1)?
///     .started(false)
///     .build();
/// assert!(!coop.running());
/// # Ok::<(), twistor::task::BadDuration>(())
/// ```
pub struct CooperatorBuilder {
    clock: Rc<dyn ReactorTime>,
    time_slice: f64,
    tick_delay: f64,
    termination: Option<PredicateFactory>,
    started: bool,
}

impl CooperatorBuilder {
    /// How long a tick may run, in seconds of wall-clock time (default [`DEFAULT_TIME_SLICE`]).
    /// Ignored if [`termination`](Self::termination) is given.
    ///
    /// A negative, NaN or infinite slice is refused with [`BadDuration`].
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator};
    /// let _coop = Cooperator::builder(Clock::new()).time_slice(0.02)?.build();
    /// assert!(Cooperator::builder(Clock::new()).time_slice(f64::NAN).is_err());
    /// # Ok::<(), twistor::task::BadDuration>(())
    /// ```
    pub fn time_slice(mut self, seconds: f64) -> Result<Self, BadDuration> {
        self.time_slice = BadDuration::check("time_slice", seconds)?;
        Ok(self)
    }

    /// The delay used to schedule each tick (default [`DEFAULT_TICK_DELAY`]). It should be
    /// positive with a [`Clock`](crate::task::Clock): a tick scheduled with delay 0 would run
    /// within the same `advance`.
    ///
    /// A negative, NaN or infinite delay is refused with [`BadDuration`].
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator};
    /// let clock = Clock::new();
    /// let coop = Cooperator::builder(clock.clone()).tick_delay(1.0)?.build();
    /// let d = coop.coiterate(std::iter::once(()));
    /// clock.advance(0.5);
    /// twistor::testing::assert_no_result(&d);
    /// clock.advance(0.5);
    /// twistor::testing::success_result_of(&d);
    /// assert!(Cooperator::builder(clock).tick_delay(-1.0).is_err());
    /// # Ok::<(), twistor::task::BadDuration>(())
    /// ```
    pub fn tick_delay(mut self, seconds: f64) -> Result<Self, BadDuration> {
        self.tick_delay = BadDuration::check("tick_delay", seconds)?;
        Ok(self)
    }

    /// The termination predicate factory (Twisted's `terminationPredicateFactory`): called at
    /// the start of each tick, it returns a predicate asked after each step; `true` ends the
    /// tick. `|| || true` makes one step per tick, `|| || false` runs until no task is
    /// runnable.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use twistor::task::{Clock, Cooperator};
    /// let clock = Clock::new();
    /// let coop = Cooperator::builder(clock.clone()).tick_delay(1.0)?.termination(|| || true).build();
    /// let steps = Rc::new(Cell::new(0));
    /// let s = steps.clone();
    /// let task = coop.cooperate(std::iter::repeat_with(move || s.set(s.get() + 1)));
    /// clock.advance(1.0);
    /// clock.advance(1.0);
    /// assert_eq!(steps.get(), 2);
    /// task.stop().unwrap();
    /// # Ok::<(), twistor::task::BadDuration>(())
    /// ```
    #[doc(alias = "terminationPredicateFactory")]
    pub fn termination<F, P>(mut self, factory: F) -> Self
    where
        F: Fn() -> P + 'static,
        P: FnMut() -> bool + 'static,
    {
        self.termination = Some(Box::new(move || Box::new(factory())));
        self
    }

    /// Whether the cooperator starts stepping tasks at once (default `true`); if not, tasks
    /// wait for [`Cooperator::start`].
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator};
    /// let coop = Cooperator::builder(Clock::new()).started(false).build();
    /// assert!(!coop.running());
    /// coop.start();
    /// assert!(coop.running());
    /// ```
    pub fn started(mut self, started: bool) -> Self {
        self.started = started;
        self
    }

    /// Builds the cooperator.
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator};
    /// assert!(Cooperator::builder(Clock::new()).build().running());
    /// ```
    pub fn build(self) -> Cooperator {
        let termination = self.termination.unwrap_or_else(|| {
            // `time_slice` is finite and >= 0 (checked when set).
            let slice = std::time::Duration::from_secs_f64(self.time_slice);
            Box::new(move || {
                let start = std::time::Instant::now();
                Box::new(move || start.elapsed() >= slice)
            })
        });
        Cooperator {
            inner: Rc::new(CoopInner {
                clock: self.clock,
                tick_delay: self.tick_delay,
                termination,
                st: RefCell::new(CoopState {
                    tasks: Vec::new(),
                    cursor: 0,
                    unfinished: BTreeMap::new(),
                    next_id: 0,
                    delayed: None,
                    stopped: false,
                    started: self.started,
                    must_schedule_on_start: false,
                    ticking: false,
                }),
            }),
        }
    }
}

impl Cooperator {
    /// A started cooperator on `clock` with Twisted's defaults: 10 ms (wall-clock) time
    /// slices, ticks scheduled 1e-8 s ahead.
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator};
    /// let clock = Clock::new();
    /// let coop = Cooperator::new(clock.clone());
    /// let d = coop.coiterate((0..1000).map(|_| ()));
    /// clock.advance(1.0);
    /// twistor::testing::success_result_of(&d);
    /// ```
    pub fn new(clock: impl ReactorTime + 'static) -> Cooperator {
        Self::builder(clock).build()
    }

    /// A builder for a cooperator with other options (termination predicate, tick delay,
    /// not started).
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator};
    /// let coop = Cooperator::builder(Clock::new()).termination(|| || true).build();
    /// assert!(coop.running());
    /// ```
    pub fn builder(clock: impl ReactorTime + 'static) -> CooperatorBuilder {
        CooperatorBuilder {
            clock: Rc::new(clock),
            time_slice: DEFAULT_TIME_SLICE,
            tick_delay: DEFAULT_TICK_DELAY,
            termination: None,
            started: true,
        }
    }

    /// Adds an iterator as a long-running task and returns its handle (Twisted's `cooperate`).
    /// The items are [`Step`]s. On a stopped cooperator the task completes at once with
    /// `SchedulerStopped`.
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator};
    /// let clock = Clock::new();
    /// let coop = Cooperator::new(clock.clone());
    /// let task = coop.cooperate(vec![(), ()]);
    /// let d = task.when_done();
    /// clock.advance(1.0);
    /// twistor::testing::success_result_of(&d);
    /// ```
    pub fn cooperate<I>(&self, iter: I) -> CooperativeTask
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: Step + 'static,
    {
        let iter: Box<dyn Iterator<Item = StepOutcome>> =
            Box::new(iter.into_iter().map(Step::into_outcome));
        let coop = &self.inner;
        let id = {
            let mut st = coop.st.borrow_mut();
            st.next_id += 1;
            st.next_id
        };
        let task = Rc::new(TaskInner {
            id,
            coop: coop.clone(),
            iter: RefCell::new(Some(iter)),
            st: RefCell::new(TaskState {
                deferreds: Vec::new(),
                pause_count: 0,
                waiting: false,
                in_list: false,
                completion: None,
            }),
        });
        coop.st
            .borrow_mut()
            .unfinished
            .insert(id, Rc::downgrade(&task));
        coop.add_task(&task);
        CooperativeTask { inner: task }
    }

    /// Like [`cooperate`](Self::cooperate), but returns only the task's `when_done()` Deferred
    /// (Twisted's `coiterate`).
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator};
    /// use twistor::Failure;
    /// let clock = Clock::new();
    /// let coop = Cooperator::new(clock.clone());
    /// let d = coop.coiterate(vec![Ok(()), Err(Failure::msg("broken"))]);
    /// clock.advance(1.0);
    /// assert_eq!(twistor::testing::failure_result_of(&d).error_message(), "broken");
    /// ```
    pub fn coiterate<I>(&self, iter: I) -> Deferred<()>
    where
        I: IntoIterator,
        I::IntoIter: 'static,
        I::Item: Step + 'static,
    {
        self.cooperate(iter).when_done()
    }

    /// Starts (or restarts after [`stop`](Self::stop)) stepping tasks.
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator};
    /// let clock = Clock::new();
    /// let coop = Cooperator::builder(clock.clone()).started(false).build();
    /// let d = coop.coiterate(vec![()]);
    /// clock.advance(1.0);
    /// twistor::testing::assert_no_result(&d);
    /// coop.start();
    /// clock.advance(1.0);
    /// twistor::testing::success_result_of(&d);
    /// ```
    pub fn start(&self) {
        let reschedule = {
            let mut st = self.inner.st.borrow_mut();
            st.stopped = false;
            st.started = true;
            mem::take(&mut st.must_schedule_on_start)
        };
        if reschedule {
            self.inner.reschedule();
        }
    }

    /// Stops: every unfinished task fails with `SchedulerStopped` (its `when_done` Deferreds
    /// errback), the scheduled tick is cancelled, and tasks added later complete at once with
    /// `SchedulerStopped`.
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator, SchedulerError};
    /// let clock = Clock::new();
    /// let coop = Cooperator::new(clock.clone());
    /// let d = coop.coiterate(vec![(), (), ()]);
    /// coop.stop();
    /// assert!(!coop.running());
    /// assert!(clock.get_delayed_calls().is_empty());
    /// let f = twistor::testing::failure_result_of(&d);
    /// assert_eq!(f.downcast_ref(), Some(&SchedulerError::SchedulerStopped));
    /// ```
    pub fn stop(&self) {
        let (tasks, unfinished, delayed) = {
            let mut st = self.inner.st.borrow_mut();
            st.stopped = true;
            st.cursor = 0;
            (
                mem::take(&mut st.tasks),
                mem::take(&mut st.unfinished),
                st.delayed.take(),
            )
        };
        for t in &tasks {
            t.st.borrow_mut().in_list = false;
        }
        if let Some(call) = delayed {
            let _ = call.cancel();
        }
        for t in unfinished.into_values().filter_map(|w| w.upgrade()) {
            complete_with(
                &t,
                SchedulerError::SchedulerStopped,
                Err(Failure::new(SchedulerError::SchedulerStopped)),
            );
        }
        drop(tasks);
    }

    /// True if started and not stopped (Twisted's `running`).
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator};
    /// let coop = Cooperator::new(Clock::new());
    /// assert!(coop.running());
    /// coop.stop();
    /// assert!(!coop.running());
    /// ```
    pub fn running(&self) -> bool {
        let st = self.inner.st.borrow();
        st.started && !st.stopped
    }
}

impl fmt::Debug for Cooperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.st.borrow();
        f.debug_struct("Cooperator")
            .field("running", &(st.started && !st.stopped))
            .field("runnable_tasks", &st.tasks.len())
            .field("unfinished_tasks", &st.unfinished.len())
            .finish()
    }
}

impl CoopInner {
    fn add_task(self: &Rc<Self>, task: &Rc<TaskInner>) {
        let stopped = self.st.borrow().stopped;
        if stopped {
            complete_with(
                task,
                SchedulerError::SchedulerStopped,
                Err(Failure::new(SchedulerError::SchedulerStopped)),
            );
            return;
        }
        self.st.borrow_mut().tasks.push(task.clone());
        task.st.borrow_mut().in_list = true;
        self.reschedule();
    }

    fn remove_task(&self, task: &Rc<TaskInner>) {
        task.st.borrow_mut().in_list = false;
        let (removed, delayed) = {
            let mut st = self.st.borrow_mut();
            let removed = match st.tasks.iter().position(|t| Rc::ptr_eq(t, task)) {
                Some(i) => {
                    if i < st.cursor {
                        st.cursor -= 1;
                    }
                    Some(st.tasks.remove(i))
                }
                None => None,
            };
            let delayed = if st.tasks.is_empty() {
                st.delayed.take()
            } else {
                None
            };
            (removed, delayed)
        };
        if let Some(call) = delayed {
            let _ = call.cancel();
        }
        drop(removed);
    }

    fn reschedule(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if !st.started {
                st.must_schedule_on_start = true;
                return;
            }
            if st.delayed.is_some() || st.tasks.is_empty() {
                return;
            }
        }
        let me = self.clone();
        let call = self
            .clock
            .call_later_boxed(self.tick_delay, Box::new(move || me.tick()));
        let extra = {
            let mut st = self.st.borrow_mut();
            if st.delayed.is_none() {
                st.delayed = Some(call);
                None
            } else {
                Some(call)
            }
        };
        if let Some(call) = extra {
            let _ = call.cancel();
        }
    }

    fn tick(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            st.delayed = None;
            if st.ticking {
                // A task advanced the clock inside a tick: the running tick reschedules.
                return;
            }
            st.ticking = true;
        }
        struct Ticking<'a>(&'a CoopInner);
        impl Drop for Ticking<'_> {
            fn drop(&mut self) {
                self.0.st.borrow_mut().ticking = false;
            }
        }
        {
            let _guard = Ticking(self);
            let mut done = (self.termination)();
            loop {
                let task = {
                    let mut st = self.st.borrow_mut();
                    if st.tasks.is_empty() {
                        break;
                    }
                    if st.cursor >= st.tasks.len() {
                        st.cursor = 0;
                    }
                    let t = st.tasks[st.cursor].clone();
                    st.cursor += 1;
                    t
                };
                one_work_unit(&task);
                drop(task);
                if done() {
                    break;
                }
            }
        }
        self.reschedule();
    }
}

struct TaskState {
    /// `when_done` Deferreds to fire on completion.
    deferreds: Vec<crate::Resolver<()>>,
    pause_count: u32,
    /// Waiting on a yielded Deferred.
    waiting: bool,
    /// In the cooperator's runnable list.
    in_list: bool,
    completion: Option<(SchedulerError, Result<(), Failure>)>,
}

impl TaskState {
    fn runnable(&self) -> bool {
        self.pause_count == 0 && !self.waiting && self.completion.is_none()
    }
}

struct TaskInner {
    id: u64,
    coop: Rc<CoopInner>,
    /// Taken out while `next()` runs; dropped when the task finishes.
    iter: RefCell<Option<Box<dyn Iterator<Item = StepOutcome>>>>,
    st: RefCell<TaskState>,
}

/// Adds the task to, or removes it from, its cooperator's runnable list to match its state.
fn sync_membership(task: &Rc<TaskInner>) {
    let (should, is) = {
        let st = task.st.borrow();
        (st.runnable(), st.in_list)
    };
    if should && !is {
        task.coop.add_task(task);
    } else if !should && is {
        task.coop.remove_task(task);
    }
}

/// Finishes the task (once): removes it, drops its iterator, fires its `when_done` Deferreds.
fn complete_with(task: &Rc<TaskInner>, state: SchedulerError, result: Result<(), Failure>) {
    let (deferreds, in_list) = {
        let mut st = task.st.borrow_mut();
        if st.completion.is_some() {
            return;
        }
        st.completion = Some((state, result.clone()));
        (mem::take(&mut st.deferreds), st.in_list)
    };
    if in_list {
        task.coop.remove_task(task);
    }
    task.coop.st.borrow_mut().unfinished.remove(&task.id);
    let iter = task.iter.borrow_mut().take();
    drop(iter);
    for d in deferreds {
        let _ = d.fire(result.clone());
    }
}

/// One `next()` of the task (Twisted's `_oneWorkUnit`).
fn one_work_unit(task: &Rc<TaskInner>) {
    let Some(mut iter) = task.iter.borrow_mut().take() else {
        // Finished, or `next()` is already running further up the stack.
        return;
    };
    let res = catch_unwind(AssertUnwindSafe(|| iter.next()));
    if task.st.borrow().completion.is_none() {
        *task.iter.borrow_mut() = Some(iter);
    } else {
        drop(iter);
    }
    match res {
        Err(p) => complete_with(
            task,
            SchedulerError::TaskFailed,
            Err(Failure::from_panic(&*p)),
        ),
        Ok(None) => complete_with(task, SchedulerError::TaskDone, Ok(())),
        Ok(Some(StepOutcome::Done)) => {}
        Ok(Some(StepOutcome::Failed(f))) => complete_with(task, SchedulerError::TaskFailed, Err(f)),
        Ok(Some(StepOutcome::Wait(d))) => {
            task.st.borrow_mut().waiting = true;
            sync_membership(task);
            let t = task.clone();
            let _ = d.add_both(move |r| {
                match r {
                    Ok(()) => {
                        t.st.borrow_mut().waiting = false;
                        sync_membership(&t);
                    }
                    Err(f) => complete_with(&t, SchedulerError::TaskFailed, Err(f)),
                }
                Ok(())
            });
        }
    }
}

/// A task running in a [`Cooperator`]: pause, resume, stop it, or wait for it
/// (Twisted's `CooperativeTask`). A cheap handle.
///
/// ```
/// use twistor::task::{Clock, Cooperator};
/// let clock = Clock::new();
/// let coop = Cooperator::new(clock.clone());
/// let task = coop.cooperate(vec![(), ()]);
/// task.pause().unwrap();
/// clock.advance(1.0);
/// twistor::testing::assert_no_result(&task.when_done());
/// task.resume().unwrap();
/// clock.advance(1.0);
/// twistor::testing::success_result_of(&task.when_done());
/// ```
#[derive(Clone)]
pub struct CooperativeTask {
    inner: Rc<TaskInner>,
}

impl CooperativeTask {
    /// A new Deferred that fires when the task completes: with `()` when its iterator ends,
    /// or with its failure, `TaskStopped` or `SchedulerStopped`. Already finished: fires now.
    /// Each call gives a new, independent Deferred.
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator, SchedulerError};
    /// let coop = Cooperator::new(Clock::new());
    /// let task = coop.cooperate(std::iter::repeat(()));
    /// let d = task.when_done();
    /// task.stop().unwrap();
    /// let f = twistor::testing::failure_result_of(&d);
    /// assert_eq!(f.downcast_ref(), Some(&SchedulerError::TaskStopped));
    /// ```
    #[doc(alias = "whenDone")]
    #[track_caller]
    pub fn when_done(&self) -> Deferred<()> {
        let (d, fire) = Deferred::new();
        let done = {
            let mut st = self.inner.st.borrow_mut();
            match &st.completion {
                Some((_, r)) => Some(r.clone()),
                None => {
                    st.deferreds.push(fire.clone());
                    None
                }
            }
        };
        if let Some(r) = done {
            let _ = fire.fire(r);
        }
        d
    }

    /// Pauses the task: no more steps until as many `resume()` calls. Errors with the task's
    /// finished state (`TaskDone`, `TaskStopped`, `TaskFailed`, `SchedulerStopped`) if it is
    /// finished.
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator};
    /// let coop = Cooperator::new(Clock::new());
    /// let task = coop.cooperate(std::iter::repeat(()));
    /// task.pause().unwrap();
    /// task.pause().unwrap();
    /// task.resume().unwrap();
    /// task.resume().unwrap();
    /// # task.stop().unwrap();
    /// ```
    pub fn pause(&self) -> Result<(), SchedulerError> {
        {
            let mut st = self.inner.st.borrow_mut();
            if let Some((state, _)) = &st.completion {
                return Err(*state);
            }
            st.pause_count += 1;
        }
        sync_membership(&self.inner);
        Ok(())
    }

    /// Undoes one `pause()`; [`NotPaused`](SchedulerError::NotPaused) if not paused. Resuming
    /// a finished task that was paused does nothing (and is not an error).
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator, SchedulerError};
    /// let coop = Cooperator::new(Clock::new());
    /// let task = coop.cooperate(std::iter::repeat(()));
    /// assert_eq!(task.resume(), Err(SchedulerError::NotPaused));
    /// # task.stop().unwrap();
    /// ```
    pub fn resume(&self) -> Result<(), SchedulerError> {
        {
            let mut st = self.inner.st.borrow_mut();
            if st.pause_count == 0 {
                return Err(SchedulerError::NotPaused);
            }
            st.pause_count -= 1;
        }
        sync_membership(&self.inner);
        Ok(())
    }

    /// Stops the task: its iterator is never advanced again (and is dropped), its `when_done`
    /// Deferreds fail with `TaskStopped`. Errors with the finished state if already finished.
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator, SchedulerError};
    /// let coop = Cooperator::new(Clock::new());
    /// let task = coop.cooperate(std::iter::repeat(()));
    /// task.stop().unwrap();
    /// assert_eq!(task.pause(), Err(SchedulerError::TaskStopped));
    /// ```
    pub fn stop(&self) -> Result<(), SchedulerError> {
        if let Some((state, _)) = &self.inner.st.borrow().completion {
            return Err(*state);
        }
        complete_with(
            &self.inner,
            SchedulerError::TaskStopped,
            Err(Failure::new(SchedulerError::TaskStopped)),
        );
        Ok(())
    }

    /// How the task finished (`TaskDone`, `TaskStopped`, `TaskFailed` or
    /// `SchedulerStopped`), or `None` while it is unfinished.
    ///
    /// ```
    /// use twistor::task::{Clock, Cooperator, SchedulerError};
    /// let clock = Clock::new();
    /// let coop = Cooperator::new(clock.clone());
    /// let task = coop.cooperate(vec![()]);
    /// assert_eq!(task.finished(), None);
    /// clock.advance(1.0);
    /// assert_eq!(task.finished(), Some(SchedulerError::TaskDone));
    /// ```
    pub fn finished(&self) -> Option<SchedulerError> {
        self.inner.st.borrow().completion.as_ref().map(|(s, _)| *s)
    }
}

impl fmt::Debug for CooperativeTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.st.borrow();
        f.debug_struct("CooperativeTask")
            .field("pause_count", &st.pause_count)
            .field("waiting", &st.waiting)
            .field("finished", &st.completion.as_ref().map(|(s, _)| *s))
            .finish()
    }
}

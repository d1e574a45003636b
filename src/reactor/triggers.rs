//! System event triggers: Twisted's `addSystemEventTrigger` and its three-phase events.
//!
//! An event ("startup", "shutdown", or any name) fires in three phases: *before*, *during*,
//! *after*. Triggers are one-shot: firing an event consumes the triggers registered for it
//! (Twisted pops them as it runs them). A *before* trigger may return a `Deferred<()>`; the
//! *during* and *after* phases wait until every such Deferred has fired (a failure is logged
//! and does not block). The reactor keeps running I/O and timers meanwhile.
//!
//! Firing an event again while an earlier firing still waits is a new, independent firing (as
//! Twisted's `_ThreePhaseEvent.fireEvent`): it runs the triggers registered since and does not
//! wait for the earlier Deferreds. This is what lets a reactor that crashed during an
//! asynchronous before-startup trigger run again.
//!
//! Triggers run with no borrow held: a trigger may add or remove triggers, stop the reactor, or
//! fire Deferreds. A trigger added to a phase while that phase runs runs in the same pass, as
//! in Twisted (the phase list is consumed from the front until empty).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use crate::defer::DeferredList;
use crate::task::{Step, StepOutcome};
use crate::{Deferred, Failure};

/// When a trigger runs relative to its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Before the event; may delay it by returning a `Deferred<()>`.
    Before,
    /// While the event happens (the reactor's own work for `startup`/`shutdown` runs first).
    During,
    /// After the event.
    After,
}

/// The handle [`add_system_event_trigger`](crate::reactor::Reactor::add_system_event_trigger)
/// returns, to remove the trigger again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TriggerId {
    event: String,
    phase: Phase,
    id: u64,
}

/// `remove_system_event_trigger` with a trigger that is not registered (removed already, or
/// already run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no such system event trigger: {0:?}")]
pub struct NoSuchTrigger(pub TriggerId);

type Trigger = Box<dyn FnOnce() -> StepOutcome>;

#[derive(Default)]
struct Event {
    before: Vec<(u64, Trigger)>,
    during: Vec<(u64, Trigger)>,
    after: Vec<(u64, Trigger)>,
}

impl Event {
    fn phase(&mut self, p: Phase) -> &mut Vec<(u64, Trigger)> {
        match p {
            Phase::Before => &mut self.before,
            Phase::During => &mut self.during,
            Phase::After => &mut self.after,
        }
    }
}

/// All system event triggers of one reactor (a cheap handle).
#[derive(Clone, Default)]
pub(crate) struct Triggers {
    inner: Rc<RefCell<TriggersInner>>,
}

#[derive(Default)]
struct TriggersInner {
    events: HashMap<String, Event>,
    next_id: u64,
}

impl fmt::Debug for Triggers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.borrow();
        f.debug_map()
            .entries(
                s.events
                    .iter()
                    .map(|(k, e)| (k.clone(), (e.before.len(), e.during.len(), e.after.len()))),
            )
            .finish()
    }
}

fn run_trigger(t: Trigger) -> Option<Deferred<()>> {
    match catch_unwind(AssertUnwindSafe(t)) {
        Ok(StepOutcome::Done) => None,
        Ok(StepOutcome::Wait(d)) => Some(d),
        Ok(StepOutcome::Failed(f)) => {
            crate::report_error!(target: "twistor::reactor", "While calling system event trigger handler: {f}");
            None
        }
        Err(p) => {
            crate::report_error!(
                target: "twistor::reactor",
                "While calling system event trigger handler: {}",
                Failure::from_panic(&*p)
            );
            None
        }
    }
}

impl Triggers {
    pub(crate) fn add<R: Step + 'static>(
        &self,
        phase: Phase,
        event: &str,
        f: impl FnOnce() -> R + 'static,
    ) -> TriggerId {
        let mut s = self.inner.borrow_mut();
        s.next_id += 1;
        let id = s.next_id;
        s.events
            .entry(event.to_string())
            .or_default()
            .phase(phase)
            .push((id, Box::new(move || f().into_outcome())));
        TriggerId {
            event: event.to_string(),
            phase,
            id,
        }
    }

    pub(crate) fn remove(&self, id: TriggerId) -> Result<(), NoSuchTrigger> {
        let mut s = self.inner.borrow_mut();
        let removed = s.events.get_mut(&id.event).and_then(|e| {
            let list = e.phase(id.phase);
            let i = list.iter().position(|(x, _)| *x == id.id)?;
            Some(list.remove(i))
        });
        drop(s);
        match removed {
            // Dropped with no borrow held: the closure may own Deferreds.
            Some(t) => {
                drop(t);
                Ok(())
            }
            None => Err(NoSuchTrigger(id)),
        }
    }

    /// Runs the before phase; then, once every Deferred it returned has fired, `on_during` and
    /// the during triggers, then the after triggers. `on_during` is the reactor's own during
    /// work (it runs first, as Twisted's reactor registers its triggers first).
    pub(crate) fn fire(&self, event: &str, on_during: impl FnOnce() + 'static) {
        let mut waits = Vec::new();
        while let Some((_, t)) = self.pop_front(event, Phase::Before) {
            if let Some(d) = run_trigger(t) {
                waits.push(d);
            }
        }
        let this = self.clone();
        let event_name = event.to_string();
        let rest = move || this.continue_firing(&event_name, on_during);
        if waits.is_empty() {
            rest();
        } else {
            // Failures of before-trigger Deferreds are logged and do not block the event.
            let _ = DeferredList::new(waits.into_iter().map(|d| {
                d.add_errback(|f| {
                    crate::report_error!(target: "twistor::reactor", "before-trigger Deferred failed: {f}");
                    Ok(())
                })
            }))
            .build()
            .add_callback(move |_| rest());
        }
    }

    fn continue_firing(&self, event: &str, on_during: impl FnOnce()) {
        on_during();
        for phase in [Phase::During, Phase::After] {
            while let Some((_, t)) = self.pop_front(event, phase) {
                if let Some(d) = run_trigger(t) {
                    // Only before triggers are waited on; a during/after Deferred is left alone.
                    drop(d);
                }
            }
        }
    }

    fn pop_front(&self, event: &str, phase: Phase) -> Option<(u64, Trigger)> {
        let mut s = self.inner.borrow_mut();
        let list = s.events.get_mut(event)?.phase(phase);
        if list.is_empty() {
            None
        } else {
            Some(list.remove(0))
        }
    }
}

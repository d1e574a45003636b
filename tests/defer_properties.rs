//! Property tests: random sequences of add/fire/cancel/pause on a few Deferreds never panic and
//! run every callback exactly once once everything is unpaused and fired.

use std::cell::RefCell;
use std::rc::Rc;

use proptest::prelude::*;
use twistor::{Deferred, Failure, Resolver};

const N: usize = 5;

#[derive(Debug, Clone)]
enum Op {
    Both(usize),
    Fail(usize),
    Recover(usize),
    /// A callback on the first Deferred that returns the second (only to a higher index, so
    /// waits form no cycle).
    Chain(usize, usize),
    Callback(usize, u32),
    Errback(usize),
    Cancel(usize),
    Pause(usize),
    Unpause(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0..N;
    prop_oneof![
        i.clone().prop_map(Op::Both),
        i.clone().prop_map(Op::Fail),
        i.clone().prop_map(Op::Recover),
        (0..N - 1)
            .prop_flat_map(|a| (Just(a), a + 1..N))
            .prop_map(|(a, b)| Op::Chain(a, b)),
        (i.clone(), any::<u32>()).prop_map(|(a, v)| Op::Callback(a, v)),
        i.clone().prop_map(Op::Errback),
        i.clone().prop_map(Op::Cancel),
        i.clone().prop_map(Op::Pause),
        i.prop_map(Op::Unpause),
    ]
}

/// The chain handles (`None` once a chain consumed one as its inner Deferred) and their
/// resolvers.
struct World {
    ds: Vec<Option<Deferred<u32>>>,
    fires: Vec<Resolver<u32>>,
    ran: Rc<RefCell<Vec<usize>>>,
    next_id: usize,
    pauses: Vec<u32>,
}

impl World {
    fn add(&mut self, i: usize, kind: u8, target: Option<usize>) {
        let Some(d) = self.ds[i].take() else {
            return; // consumed as an inner Deferred: nothing can be added to it any more
        };
        let id = self.next_id;
        self.next_id += 1;
        let ran = self.ran.clone();
        // An inner Deferred must be unpaused before it is handed to a chain: the test could
        // not unpause it afterwards.
        let inner = target
            .filter(|&j| self.pauses[j] == 0)
            .and_then(|j| self.ds[j].take());
        let d = match (kind, inner) {
            (_, Some(t)) => d.add_both_deferred(move |_| {
                ran.borrow_mut().push(id);
                t
            }),
            (0, _) => d.add_both(move |r| {
                ran.borrow_mut().push(id);
                r
            }),
            (1, _) => d.add_both(move |_| {
                ran.borrow_mut().push(id);
                Err::<u32, _>(Failure::msg("fail"))
            }),
            _ => d.add_both(move |r| {
                ran.borrow_mut().push(id);
                Ok(r.unwrap_or(0))
            }),
        };
        self.ds[i] = Some(d);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]
    #[test]
    fn every_callback_runs_exactly_once(ops in prop::collection::vec(op(), 0..40)) {
        let (ds, fires) = (0..N).map(|_| {
            let (d, r) = Deferred::new();
            (Some(d), r)
        }).unzip();
        let mut w = World {
            ds,
            fires,
            ran: Rc::new(RefCell::new(Vec::new())),
            next_id: 0,
            pauses: vec![0; N],
        };
        for op in ops {
            match op {
                Op::Both(i) => w.add(i, 0, None),
                Op::Fail(i) => w.add(i, 1, None),
                Op::Recover(i) => w.add(i, 2, None),
                Op::Chain(i, j) => w.add(i, 0, Some(j)),
                Op::Callback(i, v) => { let _ = w.fires[i].callback(v); }
                Op::Errback(i) => { let _ = w.fires[i].errback(Failure::msg("e")); }
                Op::Cancel(i) => w.fires[i].cancel(),
                Op::Pause(i) => {
                    if let Some(d) = &w.ds[i] {
                        d.pause();
                        w.pauses[i] += 1;
                    }
                }
                Op::Unpause(i) => {
                    if let Some(d) = &w.ds[i] {
                        d.unpause();
                        w.pauses[i] = w.pauses[i].saturating_sub(1);
                    }
                }
            }
        }
        for i in 0..N {
            for _ in 0..w.pauses[i] {
                if let Some(d) = &w.ds[i] {
                    d.unpause();
                }
            }
        }
        // Fire from the highest index down: waits only point upwards.
        for i in (0..N).rev() {
            if !w.fires[i].called() {
                w.fires[i].callback(0).unwrap();
            }
        }
        // A Deferred whose chainee was paused when its result arrived stops (Twisted's rule);
        // adding a callback runs its loop again.
        for _ in 0..=N {
            for i in 0..N {
                w.add(i, 2, None);
            }
        }
        let mut ran = w.ran.borrow().clone();
        let len = ran.len();
        ran.sort_unstable();
        ran.dedup();
        prop_assert_eq!(ran.len(), len, "a callback ran twice");
        prop_assert_eq!(ran, (0..w.next_id).collect::<Vec<_>>(), "a callback never ran");
    }
}

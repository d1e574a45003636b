//! The reactor's registry: one table of everything registered with the poller (the waker, the
//! signal pipes, transports' sources and the raw descriptors of `add_reader`/`add_writer`),
//! keyed by the poller's token.
//!
//! # Tokens are never stale
//!
//! A token is a slot index in its low half and the slot's generation in its high half; a
//! slot's generation changes each time it is freed. An event (or a "run again" request, or a
//! guard) that outlives its registration therefore finds no entry instead of reaching
//! whatever reused the slot. The table is a slab written here rather than the `slab` crate
//! because of these generations.
//!
//! Slots 0 and 1 are taken at creation by the waker and the signal pipes and never freed, so
//! their tokens are constants.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::rc::Rc;

use mio::Token;

use super::fdset::Watched;
use super::sources::SourceHandler;

/// The waker's token (slot 0, generation 0).
pub(crate) const WAKER_TOKEN: Token = Token(0);
/// The signal pipes' token (slot 1, generation 0).
pub(crate) const SIGNAL_TOKEN: Token = Token(1);

/// What a registration is, so an event reaches the right kind of handler.
pub(crate) enum Entry {
    /// The cross-thread waker: its event only ends the poll.
    Waker,
    /// The signal pipes: drained on an event.
    Signals,
    /// A transport's source: told of readiness, it reads and writes on its own.
    Source(Rc<dyn SourceHandler>),
    /// A raw descriptor watched by `add_reader`/`add_writer`.
    Fd(Watched),
}

struct Slot {
    /// Bumped when the slot is freed, so tokens of earlier occupants stop matching.
    generation: usize,
    entry: Option<Entry>,
}

/// The table (module docs).
pub(crate) struct Registry {
    slots: Vec<Slot>,
    /// Free slot indices, reused last-freed first.
    free: Vec<usize>,
    /// Raw descriptor number -> its `Entry::Fd`: the kernel allows one registration per
    /// descriptor, shared by its reader and its writer. Sound because an `Fd` entry owns (or
    /// borrows for `'static`) its descriptor, so the number cannot be closed and reused while
    /// the entry exists.
    pub(crate) by_fd: HashMap<RawFd, Token>,
}

/// Bits of a token that hold the slot index; the rest hold the generation.
const INDEX_BITS: u32 = usize::BITS / 2;
const INDEX_MASK: usize = (1 << INDEX_BITS) - 1;

fn split(token: Token) -> (usize, usize) {
    (token.0 & INDEX_MASK, token.0 >> INDEX_BITS)
}

fn join(index: usize, generation: usize) -> Token {
    Token((generation << INDEX_BITS) | index)
}

impl Registry {
    pub(crate) fn new() -> Registry {
        let mut r = Registry {
            slots: Vec::new(),
            free: Vec::new(),
            by_fd: HashMap::new(),
        };
        let w = r.insert(Entry::Waker);
        let s = r.insert(Entry::Signals);
        debug_assert_eq!((w, s), (WAKER_TOKEN, SIGNAL_TOKEN));
        r
    }

    /// Stores `entry`; returns its token.
    pub(crate) fn insert(&mut self, entry: Entry) -> Token {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                // Half a machine word of slots (65536 on 32 bits): far beyond the descriptor
                // limit of any process, so indices never spill into the generation.
                debug_assert!(self.slots.len() < INDEX_MASK);
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.entry = Some(entry);
        join(index, slot.generation)
    }

    pub(crate) fn get(&self, token: Token) -> Option<&Entry> {
        let (index, generation) = split(token);
        self.slots
            .get(index)
            .filter(|s| s.generation == generation)
            .and_then(|s| s.entry.as_ref())
    }

    pub(crate) fn get_mut(&mut self, token: Token) -> Option<&mut Entry> {
        let (index, generation) = split(token);
        self.slots
            .get_mut(index)
            .filter(|s| s.generation == generation)
            .and_then(|s| s.entry.as_mut())
    }

    /// The watched descriptor under `token`, if that is what it is.
    pub(crate) fn fd_mut(&mut self, token: Token) -> Option<&mut Watched> {
        match self.get_mut(token) {
            Some(Entry::Fd(w)) => Some(w),
            _ => None,
        }
    }

    /// Takes the entry out and frees its slot (the caller drops it with no borrow held).
    pub(crate) fn remove(&mut self, token: Token) -> Option<Entry> {
        let (index, generation) = split(token);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        let entry = slot.entry.take()?;
        // Wraps within the generation bits, so it always survives the round trip of a token.
        slot.generation = (slot.generation + 1) & (usize::MAX >> INDEX_BITS);
        self.free.push(index);
        Some(entry)
    }

    /// Tokens of every entry (a snapshot: the caller may remove while walking it).
    pub(crate) fn tokens(&self) -> Vec<Token> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.entry.is_some())
            .map(|(i, s)| join(i, s.generation))
            .collect()
    }

    /// Every live entry.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().filter_map(|s| s.entry.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A freed slot is reused under a new generation: the old token reaches nothing, neither
    /// for reading nor for removal, and the newcomer is untouched.
    #[test]
    fn stale_token_reaches_nothing_after_slot_reuse() {
        let mut r = Registry::new();
        let old = r.insert(Entry::Signals);
        assert!(r.remove(old).is_some());
        let new = r.insert(Entry::Waker);
        assert_eq!(split(old).0, split(new).0, "the slot was not reused");
        assert_ne!(old, new);
        assert!(r.get(old).is_none());
        assert!(r.remove(old).is_none());
        assert!(matches!(r.get(new), Some(Entry::Waker)));
        assert_eq!(r.tokens().len(), 3);
    }

    /// The waker and the signal pipes own the first two slots for ever.
    #[test]
    fn reserved_tokens() {
        let r = Registry::new();
        assert!(matches!(r.get(WAKER_TOKEN), Some(Entry::Waker)));
        assert!(matches!(r.get(SIGNAL_TOKEN), Some(Entry::Signals)));
    }

    /// Generations wrap within their bits, so a token always round-trips.
    #[test]
    fn generation_wraps_within_its_bits() {
        let mut r = Registry::new();
        let t = r.insert(Entry::Waker);
        let (index, _) = split(t);
        r.slots[index].generation = usize::MAX >> INDEX_BITS;
        r.slots[index].entry = Some(Entry::Waker);
        let t = join(index, r.slots[index].generation);
        assert!(r.remove(t).is_some());
        assert_eq!(r.slots[index].generation, 0);
        let again = r.insert(Entry::Signals);
        assert_eq!(split(again), (index, 0));
    }
}

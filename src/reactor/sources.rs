//! Event sources owned by transports (TCP connections and ports): registered with the poller
//! under their own tokens, with their readiness tracked by the transport itself.
//!
//! Unlike the raw descriptors of `fdset`, a transport knows when it has drained its socket (a
//! short read, or `WouldBlock`), so no `poll(2)` check is needed: a source that stopped
//! because of its per-turn budget asks to run again next turn ([`Reactor::ready_again`]).
//!
//! Writes are coalesced: a transport that was written to asks for a flush
//! ([`Reactor::want_flush`]); the reactor flushes every such transport once, after the timed
//! calls of a turn and after its I/O dispatch, so everything one turn produced for a connection
//! goes out in one send.

use std::io;
use std::rc::Rc;

use mio::{Interest, Token};

use super::Reactor;

/// Tokens from here on are sources; below are the reactor's own and raw descriptors.
pub(crate) const SOURCE_BASE: usize = 1 << 40;

/// A transport's side of the reactor.
pub(crate) trait SourceHandler {
    /// The poller reported readiness (or the source asked to run again: all false).
    /// `read_closed`: the peer's end of stream (FIN) or a hang-up is already queued.
    fn ready(&self, reactor: &Reactor, readable: bool, writable: bool, read_closed: bool);
    /// Send what was written during this turn.
    fn flush(&self, reactor: &Reactor);
    /// The reactor is shutting down (Twisted's `disconnectAll`): close.
    fn shutdown(&self, _reactor: &Reactor) {}
}

impl Reactor {
    pub(crate) fn register_source(
        &self,
        source: &mut impl mio::event::Source,
        interest: Interest,
        handler: Rc<dyn SourceHandler>,
    ) -> io::Result<Token> {
        let mut ext = self.extensions();
        ext.next_source += 1;
        let token = Token(SOURCE_BASE + ext.next_source);
        self.inner.registry.register(source, token, interest)?;
        ext.sources.insert(token.0, handler);
        Ok(token)
    }

    pub(crate) fn deregister_source(&self, token: Token, source: &mut impl mio::event::Source) {
        let handler = self.extensions().sources.remove(&token.0);
        // May fail if the socket is already closed: nothing to undo then.
        let _ = self.inner.registry.deregister(source);
        drop(handler);
    }

    /// Forgets a source whose socket is about to be closed: closing the descriptor removes it
    /// from the epoll set, so the `EPOLL_CTL_DEL` system call of `deregister_source` is saved
    /// (the socket must not have been duplicated).
    pub(crate) fn forget_source(&self, token: Token) {
        let handler = self.extensions().sources.remove(&token.0);
        drop(handler);
    }

    /// Runs the source again on the next turn (its per-turn budget ran out while still ready).
    pub(crate) fn ready_again(&self, token: Token) {
        self.extensions().source_again.push(token.0);
    }

    /// Flushes the source after the current phase of this turn.
    pub(crate) fn want_flush(&self, handler: Rc<dyn SourceHandler>) {
        self.extensions().flushes.push(handler);
    }

    pub(crate) fn sources_pending(&self) -> bool {
        let ext = self.extensions();
        !ext.source_again.is_empty() || !ext.flushes.is_empty()
    }

    pub(crate) fn dispatch_source(
        &self,
        token: Token,
        readable: bool,
        writable: bool,
        read_closed: bool,
    ) {
        let handler = {
            let mut ext = self.extensions();
            // Running now answers an earlier request to run again (a request made *during*
            // this run is added afterwards and stays).
            if !ext.source_again.is_empty() {
                ext.source_again.retain(|t| *t != token.0);
            }
            ext.sources.get(&token.0).cloned()
        };
        if let Some(h) = handler {
            h.ready(self, readable, writable, read_closed);
        }
    }

    /// Runs the sources that asked to run again. Those the poller reported this turn were
    /// already taken off the list when they ran (`dispatch_source`), so everything still on it
    /// asked during or after its latest run and must run: skipping a source because the poller
    /// reported it would lose a request made *in* that run (a read budget used up), and an
    /// edge-triggered source that is not run again may never be woken again.
    pub(crate) fn run_sources_again(&self) {
        let again = std::mem::take(&mut self.extensions().source_again);
        for t in again {
            self.dispatch_source(Token(t), false, false, false);
        }
    }

    /// Closes every source (reactor shutdown): connections get `ConnectionLost`, ports stop.
    pub(crate) fn shutdown_sources(&self) {
        let all: Vec<Rc<dyn SourceHandler>> = self.extensions().sources.values().cloned().collect();
        for s in all {
            s.shutdown(self);
        }
    }

    pub(crate) fn run_flushes(&self) {
        loop {
            let flushes = std::mem::take(&mut self.extensions().flushes);
            if flushes.is_empty() {
                return;
            }
            for f in flushes {
                f.flush(self);
            }
        }
    }
}

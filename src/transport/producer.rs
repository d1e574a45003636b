//! The producer slot every transport shares (Twisted's `FileDescriptor` consumer side).
//!
//! A streaming (push) producer is paused when the write buffer goes above its high-water mark
//! and resumed when it drains to the low one; a pull producer is asked for one more chunk each
//! time the buffer empties; both are stopped when the connection closes. No borrow is held
//! while the producer runs, so it may write, unregister itself or close the connection.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::buffer::WriteBuffer;
use super::{Producer, ProducerError};

/// The registered producer, if any, and whether this slot paused it.
#[derive(Default)]
pub(crate) struct ProducerSlot {
    producer: RefCell<Option<(Rc<dyn Producer>, bool)>>,
    paused: Cell<bool>,
}

impl ProducerSlot {
    /// The producer and whether it is streaming.
    pub(crate) fn get(&self) -> Option<(Rc<dyn Producer>, bool)> {
        self.producer.borrow().clone()
    }

    #[inline]
    pub(crate) fn is_registered(&self) -> bool {
        self.producer.borrow().is_some()
    }

    /// Registers `producer`. On a closed transport it is stopped at once (Twisted does the
    /// same); a pull producer is asked for its first chunk.
    pub(crate) fn register(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
        closed: bool,
    ) -> Result<(), ProducerError> {
        if self.is_registered() {
            return Err(ProducerError::AlreadyRegistered);
        }
        if closed {
            producer.stop_producing();
            return Ok(());
        }
        *self.producer.borrow_mut() = Some((producer.clone(), streaming));
        self.paused.set(false);
        if !streaming {
            producer.resume_producing();
        }
        Ok(())
    }

    /// Records `producer` without asking anything of it (the test transport, as Twisted's
    /// `StringTransport`).
    pub(crate) fn record(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        if self.is_registered() {
            return Err(ProducerError::AlreadyRegistered);
        }
        *self.producer.borrow_mut() = Some((producer, streaming));
        Ok(())
    }

    pub(crate) fn unregister(&self) {
        let p = self.producer.borrow_mut().take();
        drop(p);
    }

    /// The buffer grew: pause a streaming producer above the high-water mark.
    #[inline]
    pub(crate) fn buffer_grew(&self, buffer: &RefCell<WriteBuffer>) {
        if self.paused.get() || !buffer.borrow().above_high() {
            return;
        }
        self.pause();
    }

    #[cold]
    fn pause(&self) {
        if let Some((p, true)) = self.get() {
            self.paused.set(true);
            p.pause_producing();
        }
    }

    /// The buffer drained (or its limits changed): resume a paused streaming producer at the
    /// low-water mark; ask a pull producer for more once it is empty (while `open`).
    pub(crate) fn buffer_drained(&self, buffer: &RefCell<WriteBuffer>, open: bool) {
        let Some((p, streaming)) = self.get() else {
            return;
        };
        if streaming {
            if self.paused.get() && buffer.borrow().at_or_below_low() {
                self.paused.set(false);
                p.resume_producing();
            }
        } else if open && buffer.borrow().is_empty() {
            p.resume_producing();
        }
    }

    /// The connection is gone: stop the producer for good.
    pub(crate) fn stop(&self) {
        let p = self.producer.borrow_mut().take();
        if let Some((p, _)) = p {
            p.stop_producing();
        }
    }
}

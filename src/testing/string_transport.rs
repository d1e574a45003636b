//! `StringTransport`: a transport that records what is written.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use crate::Failure;
use crate::protocol::{Handle, Protocol, ProtocolDriver, attach};
use crate::transport::buffer::WriteBuffer;
use crate::transport::producer::ProducerSlot;
use crate::transport::{Address, Producer, ProducerError, Transport, TransportImpl};

/// A transport that records what is written, for testing protocols without sockets (Twisted's
/// `StringTransport`). `lose_connection` only sets `disconnecting`; use
/// [`with_disconnection`](StringTransport::with_disconnection) for one that also calls the
/// protocol's `connection_lost` (Twisted's `StringTransportWithDisconnection`).
///
/// ```
/// use twistor::protocol::{Context, Protocol};
/// use twistor::testing::StringTransport;
///
/// struct Upper;
/// impl Protocol for Upper {
///     fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
///         cx.transport().write(&data.to_ascii_uppercase());
///     }
/// }
/// let st = StringTransport::new();
/// st.connect(Upper);
/// st.deliver(b"hi");
/// assert_eq!(st.value(), b"HI");
/// ```
#[derive(Clone)]
pub struct StringTransport {
    inner: Rc<StInner>,
    /// The connected protocol, held here (the transport side holds it weakly), so dropping
    /// the last `StringTransport` frees the protocol: no reference cycle.
    driver: Rc<RefCell<Option<Rc<dyn ProtocolDriver>>>>,
}

struct StInner {
    /// The shared write buffer, never drained: it holds everything written.
    written: RefCell<WriteBuffer>,
    disconnecting: Cell<bool>,
    disconnect_calls_lost: bool,
    write_closed: Cell<bool>,
    reading: Cell<ReadState>,
    producer: ProducerSlot,
    driver: RefCell<Option<Weak<dyn ProtocolDriver>>>,
    lost: RefCell<Option<Failure>>,
    host: Address,
    peer: Address,
}

/// The reading state a protocol set on a [`StringTransport`] (Twisted's `producerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadState {
    /// Reading.
    Producing,
    /// `pause_producing` was called.
    Paused,
    /// `stop_producing` was called.
    Stopped,
}

impl Default for StringTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl StringTransport {
    /// A transport whose `lose_connection` only records the request.
    pub fn new() -> StringTransport {
        Self::build(false)
    }

    /// A transport whose `lose_connection` also calls the protocol's `connection_lost` with
    /// `ConnectionDone` (Twisted's `StringTransportWithDisconnection`).
    ///
    /// ```
    /// use twistor::protocol::{Context, Protocol};
    /// use twistor::testing::StringTransport;
    /// struct Bye;
    /// impl Protocol for Bye {
    ///     fn connection_made(&mut self, cx: &Context<Self>) { cx.transport().lose_connection() }
    ///     fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
    /// }
    /// let st = StringTransport::with_disconnection();
    /// let h = st.connect(Bye);
    /// assert!(!h.alive());
    /// assert!(st.lost_reason().unwrap().is::<twistor::error::ConnectionDone>());
    /// ```
    #[doc(alias = "StringTransportWithDisconnection")]
    pub fn with_disconnection() -> StringTransport {
        Self::build(true)
    }

    fn build(disconnect_calls_lost: bool) -> StringTransport {
        StringTransport {
            inner: Rc::new(StInner {
                written: RefCell::new(WriteBuffer::default()),
                disconnecting: Cell::new(false),
                disconnect_calls_lost,
                write_closed: Cell::new(false),
                reading: Cell::new(ReadState::Producing),
                producer: ProducerSlot::default(),
                driver: RefCell::new(None),
                lost: RefCell::new(None),
                host: Address::Tcp(([10, 0, 0, 1], 12345).into()),
                peer: Address::Tcp(([192, 168, 1, 1], 54321).into()),
            }),
            driver: Rc::new(RefCell::new(None)),
        }
    }

    /// The [`Transport`] handle protocols use.
    pub fn transport(&self) -> Transport {
        Transport::new(self.inner.clone())
    }

    /// Connects `protocol` to this transport and calls its `connection_made`.
    pub fn connect<P: Protocol>(&self, protocol: P) -> Handle<P> {
        let (driver, handle) = attach(protocol, self.transport());
        *self.inner.driver.borrow_mut() = Some(Rc::downgrade(&driver));
        *self.driver.borrow_mut() = Some(driver.clone());
        driver.make_connection();
        handle
    }

    /// Delivers received bytes to the protocol (`data_received`).
    pub fn deliver(&self, data: &[u8]) {
        let d = self.driver.borrow().clone();
        if let Some(d) = d {
            d.data_received(data);
        }
    }

    /// Tells the protocol its connection is gone (`connection_lost(reason)`), once. The
    /// protocol is kept, so a [`Handle`] can still inspect it.
    pub fn connection_lost(&self, reason: Failure) {
        if self.inner.lost.borrow().is_some() {
            return;
        }
        let d = self.driver.borrow().clone();
        if let Some(d) = d {
            *self.inner.lost.borrow_mut() = Some(reason.clone());
            d.connection_lost(reason);
        }
    }

    /// Tells the protocol the peer closed its write side (`read_connection_lost`).
    pub fn read_connection_lost(&self) {
        let d = self.driver.borrow().clone();
        if let Some(d) = d {
            d.read_connection_lost();
        }
    }

    /// Everything written so far.
    pub fn value(&self) -> Vec<u8> {
        self.inner.written.borrow().to_vec()
    }

    /// Forgets what was written.
    pub fn clear(&self) {
        self.inner.written.borrow_mut().clear();
    }

    /// Pauses the protocol's reading as its transport would be asked to, or says why not:
    /// after `stop_producing` or `lose_connection` it is refused and the state is unchanged
    /// (Twisted raises `RuntimeError`).
    ///
    /// ```
    /// use twistor::testing::{ReadState, StringTransport};
    /// let st = StringTransport::new();
    /// st.transport().lose_connection();
    /// assert!(st.pause_producing().is_err());
    /// assert_eq!(st.read_state(), ReadState::Producing);
    /// ```
    #[doc(alias = "pauseProducing")]
    pub fn pause_producing(&self) -> Result<(), ProducerError> {
        self.inner.try_pause_producing()
    }

    /// Resumes reading, or says why not (see [`pause_producing`](Self::pause_producing)).
    #[doc(alias = "resumeProducing")]
    pub fn resume_producing(&self) -> Result<(), ProducerError> {
        self.inner.try_resume_producing()
    }

    /// True once `lose_connection` or `abort_connection` was called.
    pub fn disconnecting(&self) -> bool {
        self.inner.disconnecting.get()
    }

    /// The reason given to the protocol's `connection_lost`, if it was called.
    pub fn lost_reason(&self) -> Option<Failure> {
        self.inner.lost.borrow().clone()
    }

    /// The reading state (pause/resume/stop producing called by the protocol).
    pub fn read_state(&self) -> ReadState {
        self.inner.reading.get()
    }

    /// The registered producer and whether it is streaming.
    pub fn producer(&self) -> Option<(Rc<dyn Producer>, bool)> {
        self.inner.producer.get()
    }

    /// True once `lose_write_connection` was called.
    pub fn write_closed(&self) -> bool {
        self.inner.write_closed.get()
    }
}

impl StInner {
    /// Twisted's `_checkState`: no pausing or resuming once stopped or disconnecting.
    fn check_producing(&self) -> Result<(), ProducerError> {
        if self.disconnecting.get() {
            return Err(ProducerError::Disconnecting);
        }
        if self.reading.get() == ReadState::Stopped {
            return Err(ProducerError::Stopped);
        }
        Ok(())
    }

    fn lose(&self, reason: Failure) {
        self.disconnecting.set(true);
        if self.disconnect_calls_lost && self.lost.borrow().is_none() {
            let d = self.driver.borrow().as_ref().and_then(Weak::upgrade);
            if let Some(d) = d {
                *self.lost.borrow_mut() = Some(reason.clone());
                d.connection_lost(reason);
            }
        }
    }
}

impl TransportImpl for StInner {
    fn write(&self, data: &[u8]) {
        self.written.borrow_mut().push(data);
    }
    fn lose_connection(&self) {
        if !self.disconnecting.get() {
            self.lose(Failure::new(crate::error::ConnectionDone));
        }
    }
    fn abort_connection(&self) {
        if !self.disconnecting.get() {
            self.lose(Failure::new(crate::error::ConnectionAborted));
        }
    }
    fn abort_with(&self, reason: Failure) {
        // A panicking protocol: the connection is gone, with the panic as the reason.
        self.disconnecting.set(true);
        if self.lost.borrow().is_some() {
            return;
        }
        let d = self.driver.borrow().as_ref().and_then(Weak::upgrade);
        if let Some(d) = d {
            *self.lost.borrow_mut() = Some(reason.clone());
            d.connection_lost(reason);
        }
    }
    fn lose_write_connection(&self) {
        self.write_closed.set(true);
    }
    fn get_host(&self) -> Address {
        self.host.clone()
    }
    fn get_peer(&self) -> Address {
        self.peer.clone()
    }
    fn disconnecting(&self) -> bool {
        self.disconnecting.get()
    }
    fn pause_producing(&self) {
        let _ = self.try_pause_producing();
    }
    fn resume_producing(&self) {
        let _ = self.try_resume_producing();
    }
    fn try_pause_producing(&self) -> Result<(), ProducerError> {
        self.check_producing()?;
        self.reading.set(ReadState::Paused);
        Ok(())
    }
    fn try_resume_producing(&self) -> Result<(), ProducerError> {
        self.check_producing()?;
        self.reading.set(ReadState::Producing);
        Ok(())
    }
    fn stop_producing(&self) {
        self.reading.set(ReadState::Stopped);
    }
    fn register_producer(
        &self,
        producer: Rc<dyn Producer>,
        streaming: bool,
    ) -> Result<(), ProducerError> {
        self.producer.record(producer, streaming)
    }
    fn unregister_producer(&self) {
        self.producer.unregister();
    }
}

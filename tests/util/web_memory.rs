//! In-memory HTTP client fixtures shared by the client test files: an endpoint factory that
//! hands out `StringTransport` connections and records where each went, and an agent over it.

use std::cell::RefCell;
use std::rc::Rc;

use twistor::Deferred;
use twistor::protocol::Handle;
use twistor::task::Clock;
use twistor::testing::StringTransport;
use twistor::web::client::{
    Agent, AgentOptions, EndpointFactory, HttpClientProtocol, HttpConnectionPool, Uri,
};

/// Connections made in memory: `(uri, transport)` in order; `refuse` fails every attempt.
#[derive(Default)]
pub struct Memory {
    pub made: RefCell<Vec<(String, StringTransport)>>,
    pub refuse: RefCell<bool>,
}

impl EndpointFactory for Memory {
    fn connect(
        &self,
        uri: &Uri,
        protocol: HttpClientProtocol,
    ) -> Deferred<Handle<HttpClientProtocol>> {
        if *self.refuse.borrow() {
            return Deferred::fail(twistor::error::ConnectionRefusedError::from(
                std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            ));
        }
        let st = StringTransport::with_disconnection();
        let h = st.connect(protocol);
        self.made.borrow_mut().push((uri.to_string(), st));
        Deferred::succeed(h)
    }
}

impl Memory {
    /// The newest connection.
    pub fn last(&self) -> StringTransport {
        self.made.borrow().last().unwrap().1.clone()
    }
    /// How many connections were made.
    pub fn count(&self) -> usize {
        self.made.borrow().len()
    }
}

/// An agent over a fresh `Memory`, timed by `clock`, with a persistent pool if asked.
pub fn agent(clock: &Clock, persistent: bool, options: AgentOptions) -> (Agent, Rc<Memory>) {
    let mem = Rc::new(Memory::default());
    let time: Rc<dyn twistor::time::ReactorTime> = Rc::new(clock.clone());
    let pool = persistent.then(|| HttpConnectionPool::new(time.clone()));
    (
        Agent::using_endpoint_factory(time, mem.clone(), pool, options),
        mem,
    )
}

/// What was written on a connection, as text.
pub fn head_of(st: &StringTransport) -> String {
    String::from_utf8(st.value()).unwrap()
}

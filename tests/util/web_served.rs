//! One HTTP server connection in memory, for the server test files: a `Site` serving an
//! application resource on a `MemoryReactor`, connected to a `StringTransport`.
#![allow(dead_code)]

use std::rc::Rc;

use twistor::testing::{MemoryReactor, StringTransport};
use twistor::web::resource::Resource;
use twistor::web::site::AccessLog;
use twistor::web::{HttpLimits, Site};

pub struct Served<A> {
    pub reactor: Rc<MemoryReactor>,
    pub app: Rc<A>,
    pub st: StringTransport,
}

impl<A: Resource + Default> Served<A> {
    pub fn new() -> Self {
        Self::with_limits(HttpLimits::default())
    }
    pub fn with_limits(limits: HttpLimits) -> Self {
        let reactor = Rc::new(MemoryReactor::new());
        let app = Rc::new(A::default());
        let site = Site::with_options(app.clone(), reactor.clone(), limits, AccessLog::Off);
        let st = StringTransport::new();
        st.connect(site.channel());
        Served { reactor, app, st }
    }
}

impl<A> Served<A> {
    pub fn send(&self, data: &[u8]) {
        self.st.deliver(data);
    }
    pub fn send_bytewise(&self, data: &[u8]) {
        for b in data {
            self.st.deliver(&[*b]);
        }
    }
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.st.value()).into_owned()
    }
    pub fn advance(&self, secs: f64) {
        self.reactor.clock().advance(secs);
    }
    pub fn closed(&self) -> bool {
        self.st.disconnecting()
    }
    /// The status codes of the responses written, in order (interim 100s left out).
    pub fn statuses(&self) -> Vec<String> {
        let out = self.out();
        out.match_indices("HTTP/1.")
            .map(|(i, _)| out[i + 9..i + 12].to_string())
            .filter(|c| c != "100")
            .collect()
    }
}

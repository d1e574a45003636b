//! `Protocol`, `Handle` and `Factory` behaviour on in-memory transports (no sockets).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use twistor::error::ConnectionDone;
use twistor::failure::PanicError;
use twistor::protocol::{Context, Factory, Handle, Protocol, for_protocol};
use twistor::reactor::Reactor;
use twistor::testing::{AccumulatingProtocol, StringTransport, connected_server_and_client};
use twistor::transport::Address;
use twistor::transport::tcp::{ListenOptions, listen_tcp_with};
use twistor::{Clock, Deferred, Failure};

#[derive(Default)]
struct Events(Vec<String>);

impl Protocol for Events {
    fn connection_made(&mut self, _: &Context<Self>) {
        self.0.push("made".into());
    }
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        self.0
            .push(format!("data {}", String::from_utf8_lossy(data)));
        if data == b"later" {
            // Reaching ourselves through the handle while busy: runs after this callback.
            let ran_now = cx.handle().with(|p, _| p.0.push("queued".into()));
            self.0.push(format!("ran now: {}", ran_now.is_some()));
        }
        if data == b"boom" {
            panic!("protocol exploded");
        }
    }
    fn connection_lost(&mut self, _: &Context<Self>, reason: Failure) {
        self.0.push(format!("lost {}", reason.short_type_name()));
    }
}

#[test]
fn callbacks_in_order_and_lost_once() {
    let st = StringTransport::with_disconnection();
    let h = st.connect(Events::default());
    st.deliver(b"a");
    st.transport().lose_connection();
    st.connection_lost(Failure::new(ConnectionDone));
    assert_eq!(
        h.with(|p, _| p.0.clone()).unwrap(),
        ["made", "data a", "lost ConnectionDone"]
    );
}

#[test]
fn handle_with_during_a_callback_runs_after_it() {
    let st = StringTransport::new();
    let h = st.connect(Events::default());
    st.deliver(b"later");
    assert_eq!(
        h.with(|p, _| p.0.clone()).unwrap(),
        ["made", "data later", "ran now: false", "queued"]
    );
}

#[test]
fn panicking_protocol_gets_the_panic_as_reason() {
    let st = StringTransport::new();
    let h = st.connect(Events::default());
    st.deliver(b"boom");
    let reason = st.lost_reason().expect("connection closed");
    assert!(reason.is::<PanicError>());
    assert!(!h.alive());
    st.deliver(b"after");
    let events = h.with(|p, _| p.0.clone()).unwrap();
    assert_eq!(events.last().unwrap(), "lost PanicError");
    assert!(!events.iter().any(|e| e == "data after"), "{events:?}");
}

#[test]
fn handle_from_a_deferred_callback() {
    // Work that finishes later (a Deferred fired by a timer) reaches the protocol and its
    // transport through the handle.
    struct Later {
        clock: Clock,
    }
    impl Protocol for Later {
        fn connection_made(&mut self, cx: &Context<Self>) {
            let (d, fire) = Deferred::new();
            self.clock.call_later(2.0, move || {
                let _ = fire.callback("ready");
            });
            let me = cx.handle();
            let _ = d.add_callback(move |v: &str| {
                me.with(move |_p, cx| cx.transport().write(v.as_bytes()));
            });
        }
        fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
    }
    let clock = Clock::new();
    let st = StringTransport::new();
    st.connect(Later {
        clock: clock.clone(),
    });
    assert!(st.value().is_empty());
    clock.advance(2.0);
    assert_eq!(st.value(), b"ready");
}

#[test]
fn handle_outlives_the_protocol_without_panicking() {
    let h: Handle<AccumulatingProtocol> = {
        let st = StringTransport::new();
        let h = st.connect(AccumulatingProtocol::default());
        st.connection_lost(Failure::new(ConnectionDone));
        h
    };
    // The transport and protocol are gone: the handle answers None.
    assert!(h.with(|p, _| p.made).is_none());
    assert!(!h.alive());
}

#[test]
fn factory_start_stop_counted() {
    struct Counting {
        starts: Cell<u32>,
        stops: Cell<u32>,
    }
    impl Factory for Counting {
        type Protocol = AccumulatingProtocol;
        fn build_protocol(&self, _: &Address) -> Option<AccumulatingProtocol> {
            Some(AccumulatingProtocol::default())
        }
        fn start_factory(&self) {
            self.starts.set(self.starts.get() + 1);
        }
        fn stop_factory(&self) {
            self.stops.set(self.stops.get() + 1);
        }
    }
    let reactor = Reactor::new().unwrap();
    let f = Rc::new(Counting {
        starts: Cell::new(0),
        stops: Cell::new(0),
    });
    // Three ports share one factory (one `Rc`): one start, one stop after the last port.
    let ports: Vec<_> = (0..3)
        .map(|_| listen_tcp_with(&reactor, 0, f.clone(), ListenOptions::on("127.0.0.1")).unwrap())
        .collect();
    assert_eq!(f.starts.get(), 1);
    let stop = |i: usize| {
        let d = ports[i].stop_listening(&reactor);
        while !d.has_result() {
            reactor
                .iterate(std::time::Duration::from_millis(10))
                .unwrap();
        }
        // Stopping again is ignored: the count never goes below zero.
        let again = ports[i].stop_listening(&reactor);
        while !again.has_result() {
            reactor
                .iterate(std::time::Duration::from_millis(10))
                .unwrap();
        }
    };
    stop(0);
    stop(1);
    assert_eq!(f.stops.get(), 0);
    stop(2);
    assert_eq!(f.stops.get(), 1);
    assert_eq!(f.starts.get(), 1);
}

/// The start/stop count belongs to the factory: a new factory never inherits the count of
/// one that was dropped while still counted, even when it gets the same address (the
/// count was once kept in a map keyed by the factory's address, and `start_factory` of such
/// a new factory was skipped).
#[test]
fn new_factory_never_inherits_an_old_count() {
    struct Starts(Rc<Cell<u32>>);
    impl Factory for Starts {
        type Protocol = AccumulatingProtocol;
        fn build_protocol(&self, _: &Address) -> Option<AccumulatingProtocol> {
            None
        }
        fn start_factory(&self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let starts = Rc::new(Cell::new(0));
    for i in 1..=50 {
        // Each reactor and port is dropped without `stop_listening`: the factory is still
        // counted when it goes, and the next one is likely to reuse its allocation.
        let reactor = Reactor::new().unwrap();
        let port = listen_tcp_with(
            &reactor,
            0,
            Starts(starts.clone()),
            ListenOptions::on("127.0.0.1"),
        )
        .unwrap();
        drop(port);
        drop(reactor);
        assert_eq!(starts.get(), i, "start_factory skipped for factory {i}");
    }
}

/// `stop_listening` fails with the factory's error when `stop_factory` fails (Twisted 26.10
/// passes its exception to the Deferred); before, the Deferred never fired.
#[test]
fn stop_listening_fails_when_stop_factory_fails() {
    struct Broken;
    impl Factory for Broken {
        type Protocol = AccumulatingProtocol;
        fn build_protocol(&self, _: &Address) -> Option<AccumulatingProtocol> {
            None
        }
        fn stop_factory(&self) {
            panic!("cannot flush the log");
        }
    }
    let reactor = Reactor::new().unwrap();
    let port = listen_tcp_with(&reactor, 0, Broken, ListenOptions::on("127.0.0.1")).unwrap();
    let d = port.stop_listening(&reactor);
    let start = std::time::Instant::now();
    while !d.has_result() && start.elapsed() < std::time::Duration::from_secs(5) {
        reactor
            .iterate(std::time::Duration::from_millis(10))
            .unwrap();
    }
    let f = twistor::testing::failure_result_of(&d);
    assert!(f.is::<PanicError>(), "{f:?}");
    assert!(f.to_string().contains("cannot flush the log"), "{f}");
}

/// A protocol reaches the factory that built it (Twisted's `self.factory`).
#[test]
fn protocol_reaches_its_factory() {
    struct Named(&'static str);
    struct Greeter;
    impl Protocol for Greeter {
        fn connection_made(&mut self, cx: &Context<Self>) {
            let name = cx.factory::<Named>().map_or("none", |f| f.0);
            cx.transport().write(name.as_bytes());
            cx.transport().lose_connection();
        }
        fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
    }
    impl Factory for Named {
        type Protocol = Greeter;
        fn build_protocol(&self, _: &Address) -> Option<Greeter> {
            Some(Greeter)
        }
    }
    let reactor = Reactor::new().unwrap();
    let port =
        listen_tcp_with(&reactor, 0, Named("alice"), ListenOptions::on("127.0.0.1")).unwrap();
    let port_no = port.port();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port_no)).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        got
    });
    let start = std::time::Instant::now();
    while !reader.is_finished() && start.elapsed() < std::time::Duration::from_secs(5) {
        reactor
            .iterate(std::time::Duration::from_millis(10))
            .unwrap();
    }
    assert_eq!(reader.join().unwrap(), b"alice");
    assert_eq!(port.factory::<Named>().map(|f| f.0), Some("alice"));
    // On an in-memory transport there is no factory.
    let st = StringTransport::new();
    let h = st.connect(Greeter);
    assert_eq!(st.value(), b"none");
    drop(h);
}

#[test]
fn factory_may_refuse() {
    let f = twistor::protocol::FactoryFn::new(|addr: &Address| match addr {
        Address::Memory(n) if n == "bad" => None,
        _ => Some(AccumulatingProtocol::default()),
    });
    assert!(f.build_protocol(&Address::Memory("bad".into())).is_none());
    assert!(f.build_protocol(&Address::Memory("good".into())).is_some());
    let g = for_protocol(AccumulatingProtocol::default);
    assert!(g.build_protocol(&Address::Memory("x".into())).is_some());
}

#[test]
fn in_memory_pair_talks_both_ways() {
    struct Ping(Rc<RefCell<Vec<u8>>>);
    impl Protocol for Ping {
        fn connection_made(&mut self, cx: &Context<Self>) {
            cx.transport().write(b"ping");
        }
        fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
            self.0.borrow_mut().extend_from_slice(data);
            cx.transport().lose_connection();
        }
    }
    struct Pong;
    impl Protocol for Pong {
        fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
            assert_eq!(data, b"ping");
            cx.transport().write(b"pong");
        }
    }
    let got = Rc::new(RefCell::new(Vec::new()));
    let (server, _client, pump) = connected_server_and_client(Pong, Ping(got.clone()));
    pump.flush();
    assert_eq!(*got.borrow(), b"pong");
    assert!(!server.alive(), "both sides closed after lose_connection");
}

#[test]
fn data_delivered_during_a_callback_is_queued_in_order() {
    struct Feeder(Option<StringTransport>, Vec<String>);
    impl Protocol for Feeder {
        fn data_received(&mut self, _: &Context<Self>, data: &[u8]) {
            self.1.push(String::from_utf8_lossy(data).into_owned());
            if let Some(st) = self.0.take() {
                st.deliver(b"second");
                self.1.push("first done".into());
            }
        }
    }
    let st = StringTransport::new();
    let h = st.connect(Feeder(Some(st.clone()), Vec::new()));
    st.deliver(b"first");
    assert_eq!(
        h.with(|p, _| p.1.clone()).unwrap(),
        ["first", "first done", "second"]
    );
}

#[test]
fn a_panicking_queued_job_closes_the_connection() {
    let st = StringTransport::new();
    let h = st.connect(Events::default());
    st.deliver(b"later"); // queues a job; make the next one panic instead
    let h2 = h.clone();
    let _ = h.with(move |_p, _cx| {
        h2.with(|_, _| panic!("queued job exploded"));
    });
    assert!(st.lost_reason().unwrap().is::<PanicError>());
}

/// Twisted's `StringTransport` refuses `pauseProducing`/`resumeProducing` after
/// `stopProducing` or `loseConnection` (a `RuntimeError`), leaving its state as it was.
#[test]
fn string_transport_refuses_pause_and_resume_when_stopped_or_closing() {
    use twistor::testing::ReadState;
    use twistor::transport::ProducerError;

    let st = StringTransport::new();
    let t = st.transport();
    t.pause_producing();
    assert_eq!(st.read_state(), ReadState::Paused);
    t.stop_producing();
    assert_eq!(t.try_resume_producing(), Err(ProducerError::Stopped));
    assert_eq!(t.try_pause_producing(), Err(ProducerError::Stopped));
    assert_eq!(st.resume_producing(), Err(ProducerError::Stopped));
    // The plain form logs the refusal and changes nothing either.
    t.resume_producing();
    assert_eq!(st.read_state(), ReadState::Stopped);

    let st = StringTransport::new();
    let t = st.transport();
    t.pause_producing();
    t.lose_connection();
    assert_eq!(t.try_resume_producing(), Err(ProducerError::Disconnecting));
    assert_eq!(st.read_state(), ReadState::Paused);
    assert_eq!(st.pause_producing(), Err(ProducerError::Disconnecting));
    assert_eq!(st.read_state(), ReadState::Paused);
}

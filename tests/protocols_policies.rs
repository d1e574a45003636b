//! `protocols::policies`: Twisted's `TimeoutMixinTests`, `TimeoutFactoryTests`,
//! `ThrottlingFactory` and `WrappingFactory` tests, on a [`Clock`] with in-memory transports,
//! plus the throttling factory's connection limit over real TCP.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use twistor::error::ConnectionDone;
use twistor::protocol::{Context, Factory, Protocol, for_protocol};
use twistor::protocols::policies::{
    IdleTimeout, ThrottleOptions, TimeoutProtocol, WrapperPolicy, WrapperTransport,
    WrappingFactory, throttling_factory, timeout_factory,
};
use twistor::testing::StringTransport;
use twistor::testing::{AccumulatingProtocol, ReadState, connected_server_and_client};
use twistor::transport::{Address, Producer, Transport};
use twistor::{Clock, Failure};

fn addr() -> Address {
    Address::Tcp(([127, 0, 0, 1], 12345).into())
}

// ---- IdleTimeout (TimeoutMixinTests) ------------------------------------------------------

/// Twisted's `TimeoutTester`: `timeOut` set at connection, traffic resets the timer, and a
/// timeout is only recorded (the connection stays open).
struct TimeoutTester {
    timeout: IdleTimeout,
    initial: Option<f64>,
    timed_out: bool,
}

impl TimeoutTester {
    fn new(clock: &Clock, initial: Option<f64>) -> TimeoutTester {
        TimeoutTester {
            timeout: IdleTimeout::new(clock.clone()),
            initial,
            timed_out: false,
        }
    }
}

impl Protocol for TimeoutTester {
    fn connection_made(&mut self, cx: &Context<Self>) {
        let _ = self.timeout.set_timeout(self.initial, cx);
    }
    fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {
        self.timeout.reset_timeout();
    }
    fn connection_lost(&mut self, cx: &Context<Self>, _reason: Failure) {
        let _ = self.timeout.set_timeout(None, cx);
    }
}

impl TimeoutProtocol for TimeoutTester {
    fn timeout_connection(&mut self, _cx: &Context<Self>) {
        self.timed_out = true;
    }
}

fn timed_out(h: &twistor::protocol::Handle<TimeoutTester>) -> bool {
    h.with(|p, _| p.timed_out).unwrap()
}

#[test]
fn test_timeout() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let h = st.connect(TimeoutTester::new(&clock, Some(3.0)));
    clock.pump(&[0.0, 0.5, 1.0, 1.0]);
    assert!(!timed_out(&h), "not timed out after 2.5 s");
    clock.pump(&[0.0, 1.0]);
    assert!(timed_out(&h), "timed out after 3.5 s");
    // TimeoutTester only records it; the default closes (see default_timeout_closes).
    assert!(!st.disconnecting());
}

#[test]
fn test_no_timeout_while_data_arrives() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let h = st.connect(TimeoutTester::new(&clock, Some(3.0)));
    clock.pump(&[0.0, 0.5, 1.0, 1.0]);
    assert!(!timed_out(&h));
    st.deliver(b"hello there");
    clock.pump(&[0.0, 1.0, 1.0, 0.5]);
    assert!(!timed_out(&h), "the data restarted the 3 s");
    clock.pump(&[0.0, 1.0]);
    assert!(timed_out(&h));
}

#[test]
fn test_reset_timeout() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let h = st.connect(TimeoutTester::new(&clock, None));
    assert_eq!(
        h.with(|p, cx| {
            let prev = p.timeout.set_timeout(Some(1.0), cx).unwrap();
            (prev, p.timeout.period())
        }),
        Some((None, Some(1.0)))
    );
    clock.pump(&[0.0, 0.9]);
    assert!(!timed_out(&h));
    clock.pump(&[0.0, 0.2]);
    assert!(timed_out(&h));
}

#[test]
fn test_reset_timeout_by_hand() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let h = st.connect(TimeoutTester::new(&clock, Some(2.0)));
    clock.advance(1.5);
    h.with(|p, _| p.timeout.reset_timeout());
    clock.advance(1.5);
    assert!(!timed_out(&h), "reset at 1.5 s: expires at 3.5 s");
    clock.advance(0.6);
    assert!(timed_out(&h));
    // After it fired, a reset does nothing: no timer runs until set_timeout again.
    h.with(|p, _| {
        p.timed_out = false;
        p.timeout.reset_timeout();
    });
    clock.advance(10.0);
    assert!(!timed_out(&h));
    assert!(clock.get_delayed_calls().is_empty());
    h.with(|p, cx| p.timeout.set_timeout(Some(2.0), cx));
    clock.advance(2.0);
    assert!(timed_out(&h), "set_timeout after expiry starts a new timer");
}

#[test]
fn test_cancel_timeout() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let h = st.connect(TimeoutTester::new(&clock, Some(5.0)));
    h.with(|p, cx| {
        p.timeout.set_timeout(Some(1.0), cx).unwrap();
        p.timeout.set_timeout(None, cx).unwrap();
    });
    clock.pump(&[0.0, 5.0, 5.0, 5.0]);
    assert!(!timed_out(&h));
    assert!(clock.get_delayed_calls().is_empty());
}

#[test]
fn test_modify_timeout() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let h = st.connect(TimeoutTester::new(&clock, Some(1.0)));
    clock.advance(0.5);
    h.with(|p, cx| p.timeout.set_timeout(Some(2.0), cx));
    clock.advance(1.9);
    assert!(!timed_out(&h), "the new period counts from the change");
    clock.advance(0.2);
    assert!(timed_out(&h));
}

#[test]
fn test_return() {
    // set_timeout returns the previous period.
    let clock = Clock::new();
    let st = StringTransport::new();
    let h = st.connect(TimeoutTester::new(&clock, Some(5.0)));
    let (a, b, c, now) = h
        .with(|p, cx| {
            let a = p.timeout.set_timeout(Some(10.0), cx).unwrap();
            let b = p.timeout.set_timeout(None, cx).unwrap();
            let c = p.timeout.set_timeout(Some(1.0), cx).unwrap();
            let now = p.timeout.period();
            p.timeout.set_timeout(None, cx).unwrap();
            (a, b, c, now)
        })
        .unwrap();
    assert_eq!((a, b, c, now), (Some(5.0), Some(10.0), None, Some(1.0)));
}

#[test]
fn connection_lost_cancels_the_timer() {
    let clock = Clock::new();
    let st = StringTransport::new();
    let h = st.connect(TimeoutTester::new(&clock, Some(3.0)));
    assert_eq!(clock.get_delayed_calls().len(), 1);
    st.connection_lost(Failure::new(ConnectionDone));
    assert!(clock.get_delayed_calls().is_empty());
    clock.advance(10.0);
    assert!(!timed_out(&h));
}

/// A protocol keeping TimeoutProtocol's default: close on timeout.
struct Closer(IdleTimeout);

impl Protocol for Closer {
    fn connection_made(&mut self, cx: &Context<Self>) {
        self.0.set_timeout(Some(3.0), cx).unwrap();
    }
    fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {
        self.0.reset_timeout();
    }
}

impl TimeoutProtocol for Closer {}

#[test]
fn default_timeout_closes() {
    let clock = Clock::new();
    let st = StringTransport::with_disconnection();
    let h = st.connect(Closer(IdleTimeout::new(clock.clone())));
    clock.advance(2.9);
    assert!(!st.disconnecting());
    clock.advance(0.2);
    assert!(st.disconnecting());
    assert!(!h.alive());
    assert!(st.lost_reason().unwrap().is::<ConnectionDone>());
}

// ---- TimeoutFactory (TimeoutFactoryTests) ----------------------------------------------------

/// What the wrapped protocol saw, shared with the test.
#[derive(Default)]
struct Seen {
    transport: RefCell<Option<Transport>>,
    data: RefCell<Vec<u8>>,
    lost: Cell<bool>,
}

/// Twisted's `SimpleProtocol`: keeps what it gets; its transport is kept for the test.
struct Simple(Rc<Seen>);

impl Protocol for Simple {
    fn connection_made(&mut self, cx: &Context<Self>) {
        *self.0.transport.borrow_mut() = Some(cx.transport().clone());
    }
    fn data_received(&mut self, _cx: &Context<Self>, data: &[u8]) {
        self.0.data.borrow_mut().extend_from_slice(data);
    }
    fn connection_lost(&mut self, _cx: &Context<Self>, _reason: Failure) {
        self.0.lost.set(true);
    }
}

/// A timeout factory (3 s) around `Simple`, one connection on a disconnecting
/// StringTransport: what it saw, the transport and the clock.
fn timeout_setup() -> (Rc<Seen>, StringTransport, Clock) {
    let clock = Clock::new();
    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    let factory =
        timeout_factory(for_protocol(move || Simple(s.clone())), clock.clone(), 3.0).unwrap();
    let proto = factory.build_protocol(&addr()).unwrap();
    let st = StringTransport::with_disconnection();
    st.connect(proto);
    // The factory may go (a port stopped and dropped): the connection keeps its policy, so
    // its traffic still resets the timer.
    drop(factory);
    (seen, st, clock)
}

fn inner_transport(seen: &Seen) -> Transport {
    seen.transport.borrow().clone().unwrap()
}

#[test]
fn timeout_factory_closes_an_idle_connection() {
    let (seen, st, clock) = timeout_setup();
    clock.pump(&[0.0, 0.5, 1.0, 1.0, 0.4]);
    assert!(!seen.lost.get() && !st.disconnecting());
    clock.pump(&[0.0, 0.2]);
    assert!(seen.lost.get(), "closed after 3 s without traffic");
    assert!(st.lost_reason().unwrap().is::<ConnectionDone>());
}

#[test]
fn timeout_factory_send_avoids_timeout() {
    let (seen, st, clock) = timeout_setup();
    let t = inner_transport(&seen);
    clock.pump(&[0.0, 0.5, 1.0, 1.0]);
    assert!(!seen.lost.get());
    t.write(b"bytes bytes bytes");
    clock.pump(&[0.0, 1.0, 1.0]);
    assert!(!seen.lost.get());
    t.write_sequence(&[b"bytes", b"bytes", b"bytes"]);
    clock.pump(&[0.0, 1.0, 1.0]);
    assert!(!seen.lost.get());
    clock.pump(&[0.0, 2.0]);
    assert!(seen.lost.get());
    // The writes went through to the real transport.
    assert_eq!(st.value(), b"bytes bytes bytesbytesbytesbytes");
}

#[test]
fn timeout_factory_receive_avoids_timeout() {
    let (seen, st, clock) = timeout_setup();
    clock.pump(&[0.0, 1.0, 0.5]);
    assert!(!seen.lost.get());
    st.deliver(b"bytes bytes bytes");
    clock.pump(&[0.0, 1.0, 1.0]);
    assert!(!seen.lost.get());
    clock.pump(&[0.0, 1.0, 1.0]);
    assert!(seen.lost.get());
    assert_eq!(&seen.data.borrow()[..], b"bytes bytes bytes");
}

#[test]
fn timeout_factory_over_iosim_closes_both_sides() {
    let clock = Clock::new();
    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    let factory =
        timeout_factory(for_protocol(move || Simple(s.clone())), clock.clone(), 3.0).unwrap();
    let server = factory.build_protocol(&addr()).unwrap();
    let (_server, client, pump) =
        connected_server_and_client(server, AccumulatingProtocol::default());
    client.with(|_, cx| cx.transport().write(b"ping"));
    pump.flush();
    assert_eq!(&seen.data.borrow()[..], b"ping");
    clock.advance(2.5);
    pump.flush();
    assert!(client.with(|c, _| c.closed_reason.is_none()).unwrap());
    clock.advance(0.5);
    pump.flush();
    assert!(seen.lost.get());
    let reason = client.with(|c, _| c.closed_reason.clone()).unwrap();
    assert!(reason.is_some(), "the client sees the close");
    // The timer is gone with the connection.
    assert!(clock.get_delayed_calls().is_empty());
}

#[test]
fn timeout_factory_cancels_the_timer_when_the_connection_ends_first() {
    let (seen, st, clock) = timeout_setup();
    st.connection_lost(Failure::new(ConnectionDone));
    assert!(seen.lost.get());
    assert!(clock.get_delayed_calls().is_empty());
}

// ---- ThrottlingFactory -------------------------------------------------------------------

/// Reads and ignores.
struct Sink;

impl Protocol for Sink {
    fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
}

#[test]
fn throttling_factory_refuses_beyond_max_connections() {
    let clock = Clock::new();
    let factory = throttling_factory(
        for_protocol(|| Sink),
        clock.clone(),
        ThrottleOptions {
            max_connections: 2,
            ..ThrottleOptions::default()
        },
    );
    let st1 = StringTransport::with_disconnection();
    st1.connect(factory.build_protocol(&addr()).expect("first admitted"));
    let st2 = StringTransport::with_disconnection();
    st2.connect(factory.build_protocol(&addr()).expect("second admitted"));
    assert!(
        factory.build_protocol(&addr()).is_none(),
        "a third connection is refused"
    );
    // One ends: room again.
    st1.transport().lose_connection();
    let st3 = StringTransport::with_disconnection();
    st3.connect(
        factory
            .build_protocol(&addr())
            .expect("admitted after a close"),
    );
    assert!(factory.build_protocol(&addr()).is_none());
    // No limits on rates: nothing was scheduled.
    assert!(clock.get_delayed_calls().is_empty());
}

#[test]
fn throttling_factory_pauses_reading_over_the_read_limit() {
    let clock = Clock::new();
    let factory = throttling_factory(
        for_protocol(|| Sink),
        clock.clone(),
        ThrottleOptions {
            max_connections: 10,
            read_limit: Some(10),
            ..ThrottleOptions::default()
        },
    );
    let busy = StringTransport::new();
    busy.connect(factory.build_protocol(&addr()).unwrap());
    let quiet = StringTransport::new();
    quiet.connect(factory.build_protocol(&addr()).unwrap());

    // At the limit (not over it): no throttling.
    busy.deliver(&[0; 10]);
    clock.advance(1.0);
    assert_eq!(busy.read_state(), ReadState::Producing);

    // 30 bytes in a second at 10 bytes/s: every connection stops reading for 30/10 - 1 = 2 s.
    busy.deliver(&[0; 20]);
    quiet.deliver(&[0; 10]);
    assert_eq!(
        busy.read_state(),
        ReadState::Producing,
        "checked once a second"
    );
    clock.advance(1.0);
    assert_eq!(busy.read_state(), ReadState::Paused);
    assert_eq!(quiet.read_state(), ReadState::Paused);
    clock.advance(1.8);
    assert_eq!(busy.read_state(), ReadState::Paused);
    clock.advance(0.4);
    assert_eq!(busy.read_state(), ReadState::Producing);
    assert_eq!(quiet.read_state(), ReadState::Producing);

    // The checks stop with the last connection.
    busy.connection_lost(Failure::new(ConnectionDone));
    quiet.connection_lost(Failure::new(ConnectionDone));
    clock.advance(1.0);
    assert!(clock.get_delayed_calls().is_empty());
}

/// A streaming producer recording pause/resume.
#[derive(Default)]
struct Recorder {
    paused: Cell<bool>,
    pauses: Cell<u32>,
    resumes: Cell<u32>,
}

impl Producer for Recorder {
    fn pause_producing(&self) {
        self.paused.set(true);
        self.pauses.set(self.pauses.get() + 1);
    }
    fn resume_producing(&self) {
        self.paused.set(false);
        self.resumes.set(self.resumes.get() + 1);
    }
    fn stop_producing(&self) {}
}

/// Registers `Recorder` as its producer and writes what the test asks for.
struct Writer(Rc<Recorder>, Rc<Seen>);

impl Protocol for Writer {
    fn connection_made(&mut self, cx: &Context<Self>) {
        cx.transport()
            .register_producer(self.0.clone(), true)
            .unwrap();
        *self.1.transport.borrow_mut() = Some(cx.transport().clone());
    }
    fn data_received(&mut self, _cx: &Context<Self>, _data: &[u8]) {}
}

#[test]
fn throttling_factory_pauses_producers_over_the_write_limit() {
    let clock = Clock::new();
    let rec = Rc::new(Recorder::default());
    let seen = Rc::new(Seen::default());
    let (r, s) = (rec.clone(), seen.clone());
    let factory = throttling_factory(
        for_protocol(move || Writer(r.clone(), s.clone())),
        clock.clone(),
        ThrottleOptions {
            max_connections: 10,
            write_limit: Some(100),
            ..ThrottleOptions::default()
        },
    );
    let st = StringTransport::new();
    st.connect(factory.build_protocol(&addr()).unwrap());
    inner_transport(&seen).write(&[1; 250]);
    assert_eq!(st.value().len(), 250);
    clock.advance(1.0);
    assert!(
        rec.paused.get(),
        "250 bytes/s over 100: the producer is paused"
    );
    clock.advance(1.4);
    assert!(rec.paused.get(), "for 250/100 - 1 = 1.5 s");
    clock.advance(0.2);
    assert!(!rec.paused.get());
    assert_eq!((rec.pauses.get(), rec.resumes.get()), (1, 1));
    assert_eq!(
        st.read_state(),
        ReadState::Producing,
        "reading is not throttled"
    );
}

#[test]
fn throttling_factory_refuses_over_tcp() {
    use std::io::{Read, Write};
    use twistor::reactor::Reactor;
    use twistor::transport::tcp::{ListenOptions, listen_tcp_with};

    util::bounded(30, || {
        let reactor = Reactor::new().unwrap();
        let factory = throttling_factory(
            for_protocol(|| Echo),
            reactor.clone(),
            ThrottleOptions {
                max_connections: 1,
                ..ThrottleOptions::default()
            },
        );
        let port = listen_tcp_with(
            &reactor,
            0,
            Rc::new(factory),
            ListenOptions::on("127.0.0.1"),
        )
        .unwrap()
        .port();
        let handle = reactor.thread_handle();
        let client = std::thread::spawn(move || {
            let result = (|| -> std::io::Result<(Vec<u8>, usize)> {
                let mut first = util::connect_local(port);
                first.write_all(b"ping")?;
                let mut echo = [0u8; 4];
                first.read_exact(&mut echo)?;
                // The first is still connected: the second is accepted, then closed at once.
                let mut second = util::connect_local(port);
                let mut buf = [0u8; 16];
                let n = match second.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                    Err(e) => return Err(e),
                };
                Ok((echo.to_vec(), n))
            })();
            handle.stop();
            result
        });
        reactor.run_without_signal_handlers().unwrap();
        let (echo, n) = client.join().unwrap().unwrap();
        assert_eq!(echo, b"ping");
        assert_eq!(n, 0, "the connection over the limit is closed");
    });
}

/// Echoes.
struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, cx: &Context<Self>, data: &[u8]) {
        cx.transport().write(data);
    }
}

// ---- WrappingFactory -----------------------------------------------------------------------

/// Counts what goes through the wrappers.
#[derive(Default)]
struct Counting {
    made: Cell<u32>,
    read: Cell<usize>,
    written: Cell<usize>,
    lost: Cell<u32>,
    refuse: Cell<bool>,
}

impl WrapperPolicy for Counting {
    fn admit(&self, _addr: &Address) -> bool {
        !self.refuse.get()
    }
    fn connection_made(&self, _w: &WrapperTransport) {
        self.made.set(self.made.get() + 1);
    }
    fn bytes_read(&self, _w: &WrapperTransport, n: usize) {
        self.read.set(self.read.get() + n);
    }
    fn bytes_written(&self, _w: &WrapperTransport, n: usize) {
        self.written.set(self.written.get() + n);
    }
    fn connection_lost(&self, _w: &WrapperTransport, _reason: &Failure) {
        self.lost.set(self.lost.get() + 1);
    }
}

#[test]
fn wrapping_factory_passes_bytes_both_ways() {
    let factory = WrappingFactory::new(for_protocol(|| Echo), Counting::default());
    let counting = factory.policy().clone();
    let server = factory.build_protocol(&addr()).unwrap();
    let (_server, client, pump) =
        connected_server_and_client(server, AccumulatingProtocol::default());
    assert_eq!(counting.made.get(), 1);
    client.with(|_, cx| cx.transport().write(b"hello, "));
    client.with(|_, cx| cx.transport().write(b"wrapped world"));
    pump.flush();
    assert_eq!(
        client.with(|c, _| c.data.clone()).unwrap(),
        b"hello, wrapped world"
    );
    assert_eq!((counting.read.get(), counting.written.get()), (20, 20));

    // A close on the far side reaches the wrapped protocol and the policy.
    client.with(|_, cx| cx.transport().lose_connection());
    pump.flush();
    assert_eq!(counting.lost.get(), 1);
    assert!(client.with(|c, _| c.closed_reason.is_some()).unwrap());
}

#[test]
fn wrapping_factory_inner_protocol_uses_the_real_transport() {
    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    let factory =
        WrappingFactory::new(for_protocol(move || Simple(s.clone())), Counting::default());
    let counting = factory.policy().clone();
    let st = StringTransport::with_disconnection();
    st.connect(factory.build_protocol(&addr()).unwrap());
    let t = inner_transport(&seen);
    // Addresses, writes, flow control and closing all reach the real transport.
    assert_eq!(t.get_host(), st.transport().get_host());
    assert_eq!(t.get_peer(), st.transport().get_peer());
    t.write(b"out");
    t.write_sequence(&[b"and ", b"more"]);
    assert_eq!(st.value(), b"outand more");
    assert_eq!(counting.written.get(), 11);
    t.pause_producing();
    assert_eq!(st.read_state(), ReadState::Paused);
    t.resume_producing();
    assert_eq!(st.read_state(), ReadState::Producing);
    st.deliver(b"in");
    assert_eq!(&seen.data.borrow()[..], b"in");
    assert_eq!(counting.read.get(), 2);
    assert!(!t.disconnecting());
    t.lose_connection();
    assert!(st.disconnecting() && t.disconnecting());
    assert!(seen.lost.get());
    assert_eq!(counting.lost.get(), 1);
}

#[test]
fn wrapping_factory_policy_can_refuse() {
    let factory = WrappingFactory::new(for_protocol(|| Echo), Counting::default());
    let counting = factory.policy().clone();
    counting.refuse.set(true);
    assert!(factory.build_protocol(&addr()).is_none());
    counting.refuse.set(false);
    assert!(factory.build_protocol(&addr()).is_some());
    assert_eq!(counting.made.get(), 0, "built, not connected");
}

// ---- policies compose with framing receivers ----------------------------------------------

/// Twisted's `class Chat(LineReceiver, TimeoutMixin)`, line for line.
struct Chat {
    timeout: IdleTimeout,
}

impl twistor::protocols::basic::LineHandler for Chat {
    fn connection_made(&mut self, cx: &twistor::protocols::basic::LineContext<Self>) {
        self.timeout.set_timeout(Some(60.0), cx).unwrap();
    }
    fn line_received(&mut self, cx: &twistor::protocols::basic::LineContext<Self>, line: &[u8]) {
        self.timeout.reset_timeout();
        cx.send_line(line);
    }
}

impl TimeoutProtocol<twistor::protocols::basic::LineContext<Self>> for Chat {
    fn timeout_connection(&mut self, cx: &twistor::protocols::basic::LineContext<Self>) {
        cx.transport().abort_connection();
    }
}

#[test]
fn chat_line_receiver_with_idle_timeout() {
    use twistor::error::ConnectionAborted;
    use twistor::protocols::basic::LineReceiver;

    let clock = Clock::new();
    let st = StringTransport::with_disconnection();
    let h = st.connect(LineReceiver::new(Chat {
        timeout: IdleTimeout::new(clock.clone()),
    }));
    clock.advance(30.0);
    st.deliver(b"hello\r\n");
    assert_eq!(st.value(), b"hello\r\n");
    // 60 s from the last line, not from the connection.
    clock.advance(59.9);
    assert!(h.alive());
    st.deliver(b"again\r\n");
    clock.advance(59.9);
    assert!(h.alive());
    clock.advance(0.2);
    assert!(!h.alive(), "idle for 60 s: aborted");
    assert!(
        st.lost_reason()
            .is_some_and(|f| f.is::<ConnectionAborted>())
    );
    assert!(clock.get_delayed_calls().is_empty());
}

/// The same timeout inside a string handler: any receiver's context will do.
#[test]
fn idle_timeout_in_a_netstring_handler() {
    use twistor::protocols::basic::{NetstringReceiver, StringContext, StringHandler};

    struct Quiet(IdleTimeout);
    impl StringHandler for Quiet {
        fn connection_made(&mut self, cx: &StringContext<Self>) {
            self.0.set_timeout(Some(5.0), cx).unwrap();
        }
        fn string_received(&mut self, _cx: &StringContext<Self>, _s: &[u8]) {
            self.0.reset_timeout();
        }
    }
    impl TimeoutProtocol<StringContext<Self>> for Quiet {}

    let clock = Clock::new();
    let st = StringTransport::new();
    st.connect(NetstringReceiver::new(Quiet(IdleTimeout::new(
        clock.clone(),
    ))));
    clock.advance(4.0);
    st.deliver(b"2:hi,");
    clock.advance(4.0);
    assert!(!st.disconnecting());
    clock.advance(1.0);
    assert!(
        st.disconnecting(),
        "the default timeout_connection loses the connection"
    );
}

#[test]
fn idle_timeout_refuses_negative_and_nan_periods() {
    use twistor::task::BadDuration;

    let clock = Clock::new();
    let st = StringTransport::new();
    let h = st.connect(TimeoutTester::new(&clock, None));
    let results = h
        .with(|p, cx| {
            (
                p.timeout.set_timeout(Some(-1.0), cx),
                p.timeout.set_timeout(Some(f64::NAN), cx).is_err(),
                p.timeout.period(),
            )
        })
        .unwrap();
    assert_eq!(
        results.0,
        Err(BadDuration {
            what: "timeout",
            seconds: -1.0
        })
    );
    assert!(results.1);
    assert_eq!(results.2, None, "a refused period changes nothing");
    assert!(clock.get_delayed_calls().is_empty());
    assert!(timeout_factory(for_protocol(|| Sink), clock.clone(), f64::NAN).is_err());
    assert!(timeout_factory(for_protocol(|| Sink), clock, -0.5).is_err());
}

/// A framing receiver's factory under the throttling and timeout factories.
#[test]
fn wrapping_factories_wrap_framing_receivers() {
    use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};

    struct Upper;
    impl LineHandler for Upper {
        fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
            cx.send_line(&line.to_ascii_uppercase());
        }
    }
    let clock = Clock::new();
    let throttled = throttling_factory(
        timeout_factory(
            for_protocol(|| LineReceiver::new(Upper)),
            clock.clone(),
            10.0,
        )
        .unwrap(),
        clock.clone(),
        ThrottleOptions {
            max_connections: 1,
            ..ThrottleOptions::default()
        },
    );
    let st = StringTransport::with_disconnection();
    st.connect(throttled.build_protocol(&addr()).unwrap());
    assert!(
        throttled.build_protocol(&addr()).is_none(),
        "one connection at most"
    );
    st.deliver(b"abc\r\n");
    assert_eq!(st.value(), b"ABC\r\n");
    clock.advance(10.0);
    assert!(st.disconnecting(), "idle for 10 s");
}

// ---- WrappingFactory as a client factory --------------------------------------------------

#[test]
fn wrapping_factory_forwards_client_hooks() {
    use twistor::protocol::ClientFactory;
    use twistor::reactor::Reactor;
    use twistor::transport::connector::Connector;
    use twistor::transport::tcp::connect_tcp;

    #[derive(Default)]
    struct Client {
        started: Cell<u32>,
        failed: Cell<u32>,
    }
    impl Factory for Client {
        type Protocol = Sink;
        fn build_protocol(&self, _addr: &Address) -> Option<Sink> {
            Some(Sink)
        }
    }
    impl ClientFactory for Client {
        fn started_connecting(&self, _c: &Rc<dyn Connector>) {
            self.started.set(self.started.get() + 1);
        }
        fn client_connection_failed(&self, _c: &Rc<dyn Connector>, _reason: Failure) {
            self.failed.set(self.failed.get() + 1);
        }
    }
    struct Pass;
    impl WrapperPolicy for Pass {}

    util::bounded(30, || {
        let reactor = Reactor::new().unwrap();
        let factory = Rc::new(WrappingFactory::new(Client::default(), Pass));
        let port = util::unused_port();
        let _c = connect_tcp(&reactor, "127.0.0.1", port, factory.clone());
        let r = reactor.clone();
        let f = factory.clone();
        let check = twistor::task::LoopingCall::new(reactor.clone(), move || {
            if f.wrapped_factory().failed.get() > 0 {
                let _ = r.stop();
            }
        });
        let _d = check.start(0.01).unwrap();
        reactor.run_without_signal_handlers().unwrap();
        assert_eq!(factory.wrapped_factory().started.get(), 1);
        assert_eq!(factory.wrapped_factory().failed.get(), 1);
    });
}

// ---- LimitTotalConnectionsFactory ---------------------------------------------------------

#[test]
fn limit_total_connections_refuses_past_the_limit() {
    use twistor::protocols::policies::LimitTotalConnectionsFactory;

    let f = LimitTotalConnectionsFactory::new(for_protocol(|| Sink), 2);
    let (a, b) = (
        StringTransport::with_disconnection(),
        StringTransport::with_disconnection(),
    );
    a.connect(f.build_protocol(&addr()).unwrap());
    b.connect(f.build_protocol(&addr()).unwrap());
    assert_eq!(f.connection_count(), 2);
    assert!(f.build_protocol(&addr()).is_none());
    a.transport().lose_connection();
    assert_eq!(f.connection_count(), 1);
    assert!(f.build_protocol(&addr()).is_some(), "room again");
}

#[test]
fn limit_total_connections_serves_the_overflow_protocol() {
    use twistor::protocols::policies::LimitTotalConnectionsFactory;

    struct TooBusy;
    impl Protocol for TooBusy {
        fn connection_made(&mut self, cx: &Context<Self>) {
            cx.transport().write(b"too busy\r\n");
            cx.transport().lose_connection();
        }
        fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
    }
    let f = LimitTotalConnectionsFactory::new(for_protocol(|| Echo), 1)
        .with_overflow(for_protocol(|| TooBusy));
    let normal = StringTransport::with_disconnection();
    normal.connect(f.build_protocol(&addr()).unwrap());
    let over = StringTransport::with_disconnection();
    over.connect(f.build_protocol(&addr()).unwrap());
    assert_eq!(over.value(), b"too busy\r\n");
    assert!(over.disconnecting());
    // The overflow connection counted while it lived, as in Twisted.
    assert_eq!(f.connection_count(), 1);
    normal.deliver(b"x");
    assert_eq!(normal.value(), b"x");
}

// ---- TrafficLoggingFactory ----------------------------------------------------------------

#[derive(Clone, Default)]
struct SharedLog(Rc<RefCell<Vec<u8>>>);

impl std::io::Write for SharedLog {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn traffic_logging_factory_logs_each_connection() {
    use twistor::protocols::basic::{LineContext, LineHandler, LineReceiver};
    use twistor::protocols::policies::traffic_logging_factory_to;

    struct Bye;
    impl LineHandler for Bye {
        fn line_received(&mut self, cx: &LineContext<Self>, line: &[u8]) {
            cx.send_line(line);
            cx.transport().lose_connection();
        }
    }
    let log = SharedLog::default();
    let f = traffic_logging_factory_to(
        for_protocol(|| LineReceiver::new(Bye)),
        log.clone(),
        Some(16),
    );
    let first = StringTransport::with_disconnection();
    first.connect(f.build_protocol(&addr()).unwrap());
    let second = StringTransport::with_disconnection();
    second.connect(f.build_protocol(&addr()).unwrap());
    second.deliver(b"a very long line indeed\r\n");
    first.deliver(b"hi\r\n");
    let text = String::from_utf8(log.0.borrow().clone()).unwrap();
    // Over 16 bytes: the first 16 - 12 kept, as Twisted's `_mungeData`.
    assert_eq!(
        text,
        "*\n*\n\
         C 2: b'a ve<... elided>'\n\
         SV 2: [b'a ve<... elided>', b'\\r\\n']\n\
         S 2: 'loseConnection'\n\
         C 2: ConnectionDone: Connection was closed cleanly.\n\
         C 1: b'hi\\r\\n'\n\
         SV 1: [b'hi', b'\\r\\n']\n\
         S 1: 'loseConnection'\n\
         C 1: ConnectionDone: Connection was closed cleanly.\n"
    );
}

//! `HostnameEndpoint`'s race (RFC 8305), driven with a `Clock` and a `MemoryReactor`: the
//! tests play each recorded attempt's outcome through its factory, as Twisted's tests do
//! with `MemoryReactorClock`.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use twistor::endpoints::{
    ClientEndpoint, ConnectingCancelledError, ConnectingFactory, HostnameEndpoint, HostnameOptions,
    NameResolver, Tcp6ClientEndpoint,
};
use twistor::error::{ConnectionRefusedError, DnsLookupError};
use twistor::prelude::*;
use twistor::protocol::{ClientFactory, Factory, FactoryFn, Handle};
use twistor::testing::{
    ConnectCall, MemoryReactor, StringTransport, assert_no_result, failure_result_of,
    success_result_of,
};
use twistor::transport::Address;

struct P;
impl Protocol for P {
    fn data_received(&mut self, _: &Context<Self>, _: &[u8]) {}
}

type Wrapped = ConnectingFactory<FactoryFn<P>>;

/// Answers with fixed addresses, fails, or hands out a Deferred the test fires (`held`);
/// counts the calls.
#[derive(Default)]
struct TestResolver {
    addrs: Vec<SocketAddr>,
    fail: bool,
    calls: Cell<u32>,
    held: std::cell::RefCell<Option<Deferred<Vec<SocketAddr>>>>,
    /// The names asked for.
    asked: std::cell::RefCell<Vec<String>>,
}

impl NameResolver for TestResolver {
    fn resolve(&self, host: &str, port: u16) -> Deferred<Vec<SocketAddr>> {
        self.calls.set(self.calls.get() + 1);
        self.asked.borrow_mut().push(host.to_string());
        if let Some(d) = self.held.borrow_mut().take() {
            return d;
        }
        if self.fail {
            return Deferred::fail(std::io::Error::other("resolver is down"));
        }
        Deferred::succeed(
            self.addrs
                .iter()
                .map(|a| SocketAddr::new(a.ip(), port))
                .collect(),
        )
    }
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter()
        .map(|ip| SocketAddr::new(ip.parse().unwrap(), 0))
        .collect()
}

fn endpoint(resolver: TestResolver) -> (HostnameEndpoint, Rc<TestResolver>) {
    let r = Rc::new(resolver);
    (
        HostnameEndpoint::new("example.com", 80).with_resolver(r.clone()),
        r,
    )
}

fn hosts(mr: &MemoryReactor) -> Vec<String> {
    mr.tcp_clients().iter().map(|c| c.host.clone()).collect()
}

fn factory(call: &ConnectCall) -> Rc<Wrapped> {
    call.factory::<Wrapped>()
        .expect("the endpoint's wrapping factory")
}

fn refuse(call: &ConnectCall) {
    factory(call).client_connection_failed(
        &call.connector.as_dyn(),
        Failure::new(ConnectionRefusedError::from(
            std::io::Error::from_raw_os_error(ECONNREFUSED),
        )),
    );
}

/// ECONNREFUSED on Linux.
const ECONNREFUSED: i32 = 111;

/// Completes `call`'s connection on an in-memory transport.
fn succeed(call: &ConnectCall) -> StringTransport {
    let protocol = factory(call)
        .build_protocol(&Address::Memory("peer".into()))
        .expect("a protocol");
    let transport = StringTransport::new();
    transport.connect(protocol);
    transport
}

#[test]
fn families_interleave_starting_with_ipv6() {
    let mr = Rc::new(MemoryReactor::new());
    let (e, _) = endpoint(TestResolver {
        addrs: addrs(&[
            "10.0.0.1",
            "10.0.0.2",
            "2001:db8::1",
            "2001:db8::2",
            "10.0.0.3",
        ]),
        ..Default::default()
    });
    let d = e.connect(&mr, for_protocol(|| P));
    assert_eq!(hosts(&mr), ["2001:db8::1"]); // the first attempt starts at once
    mr.clock().advance(0.299);
    assert_eq!(mr.tcp_clients().len(), 1);
    mr.clock().advance(0.001);
    assert_eq!(hosts(&mr), ["2001:db8::1", "10.0.0.1"]);
    mr.clock().advance(0.3);
    mr.clock().advance(0.3);
    mr.clock().advance(0.3);
    assert_eq!(
        hosts(&mr),
        [
            "2001:db8::1",
            "10.0.0.1",
            "2001:db8::2",
            "10.0.0.2",
            "10.0.0.3"
        ]
    );
    assert!(mr.clients_port_is(80));
    // Every address tried: no timer left.
    assert!(mr.clock().get_delayed_calls().is_empty());
    assert_no_result(&d);
    d.cancel();
}

trait PortCheck {
    fn clients_port_is(&self, port: u16) -> bool;
}
impl PortCheck for MemoryReactor {
    fn clients_port_is(&self, port: u16) -> bool {
        self.tcp_clients().iter().all(|c| c.port == port)
    }
}

#[test]
fn one_slow_one_refused_the_winner_cancels_the_rest() {
    let mr = Rc::new(MemoryReactor::new());
    let (e, _) = endpoint(TestResolver {
        addrs: addrs(&["2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2"]),
        ..Default::default()
    });
    let d = e.connect(&mr, for_protocol(|| P));
    // t=0: the IPv6 address, which stays silent (slow).
    assert_eq!(hosts(&mr), ["2001:db8::1"]);
    // t=0.3: the IPv4 address, refused at once: the next starts without waiting.
    mr.clock().advance(0.3);
    assert_eq!(hosts(&mr), ["2001:db8::1", "192.0.2.1"]);
    refuse(&mr.tcp_clients()[1]);
    assert_eq!(hosts(&mr), ["2001:db8::1", "192.0.2.1", "2001:db8::2"]);
    assert_no_result(&d);
    // The third connects: it wins.
    let calls = mr.tcp_clients();
    let transport = succeed(&calls[2]);
    let handle: Handle<P> = success_result_of(&d);
    handle.with(|_, cx| cx.transport().write(b"winner"));
    assert_eq!(transport.value(), b"winner");
    // The slow one is cancelled, the timer too, and no other attempt starts.
    assert!(factory(&calls[0]).finished());
    assert!(mr.clock().get_delayed_calls().is_empty());
    mr.clock().advance(10.0);
    assert_eq!(mr.tcp_clients().len(), 3);
    // A late success of the cancelled loser builds nothing.
    assert!(
        factory(&calls[0])
            .build_protocol(&Address::Memory("late".into()))
            .is_none()
    );
}

#[test]
fn all_failing_gives_the_last_failure() {
    let mr = Rc::new(MemoryReactor::new());
    let (e, _) = endpoint(TestResolver {
        addrs: addrs(&["192.0.2.1", "192.0.2.2"]),
        ..Default::default()
    });
    let d = e.connect(&mr, for_protocol(|| P));
    mr.clock().advance(0.3);
    let calls = mr.tcp_clients();
    assert_eq!(calls.len(), 2);
    refuse(&calls[0]);
    assert_no_result(&d); // one still in flight
    factory(&calls[1]).client_connection_failed(
        &calls[1].connector.as_dyn(),
        Failure::new(twistor::error::ConnectTimeoutError("the last one".into())),
    );
    let f = failure_result_of(&d);
    assert!(f.to_string().contains("the last one"), "{f}");
}

#[test]
fn cancel_stops_every_attempt_and_the_timer() {
    let mr = Rc::new(MemoryReactor::new());
    let (e, _) = endpoint(TestResolver {
        addrs: addrs(&["2001:db8::1", "192.0.2.1", "192.0.2.2"]),
        ..Default::default()
    });
    let d = e.connect(&mr, for_protocol(|| P));
    mr.clock().advance(0.3);
    assert_eq!(mr.tcp_clients().len(), 2);
    d.cancel();
    let f = failure_result_of(&d);
    let c = f
        .downcast_ref::<ConnectingCancelledError>()
        .expect("ConnectingCancelledError");
    assert_eq!(
        c.address,
        Address::Name {
            host: "example.com".into(),
            port: 80
        }
    );
    for call in mr.tcp_clients() {
        assert!(factory(&call).finished());
    }
    assert!(mr.clock().get_delayed_calls().is_empty());
    mr.clock().advance(10.0);
    assert_eq!(mr.tcp_clients().len(), 2);
}

#[test]
fn cancel_during_the_lookup() {
    let mr = Rc::new(MemoryReactor::new());
    let (pending, fire) = Deferred::new();
    let r = TestResolver::default();
    *r.held.borrow_mut() = Some(pending);
    let (e, _) = endpoint(r);
    let d = e.connect(&mr, for_protocol(|| P));
    assert_no_result(&d);
    d.cancel();
    assert!(failure_result_of(&d).is::<ConnectingCancelledError>());
    // The answer arriving late starts nothing.
    let _ = fire.callback(addrs(&["192.0.2.1"]));
    assert!(mr.tcp_clients().is_empty());
}

#[test]
fn the_lookup_happens_before_any_attempt() {
    let mr = Rc::new(MemoryReactor::new());
    let (pending, fire) = Deferred::new();
    let r = TestResolver::default();
    *r.held.borrow_mut() = Some(pending);
    let (e, _) = endpoint(r);
    let d = e.connect(&mr, for_protocol(|| P));
    assert!(mr.tcp_clients().is_empty());
    fire.callback(addrs(&["192.0.2.7"])).unwrap();
    assert_eq!(hosts(&mr), ["192.0.2.7"]);
    succeed(&mr.tcp_clients()[0]);
    success_result_of(&d);
}

#[test]
fn no_addresses_is_a_dns_lookup_error() {
    let mr = Rc::new(MemoryReactor::new());
    let (e, _) = endpoint(TestResolver::default());
    let f = failure_result_of(&e.connect(&mr, for_protocol(|| P)));
    assert!(f.is::<DnsLookupError>());
    assert!(
        f.to_string()
            .contains("no results for hostname lookup: example.com"),
        "{f}"
    );
}

#[test]
fn a_failed_lookup_is_a_dns_lookup_error() {
    let mr = Rc::new(MemoryReactor::new());
    let (e, _) = endpoint(TestResolver {
        fail: true,
        ..Default::default()
    });
    let f = failure_result_of(&e.connect(&mr, for_protocol(|| P)));
    assert!(f.is::<DnsLookupError>());
    assert!(
        f.to_string()
            .contains("Couldn't find the hostname 'example.com'"),
        "{f}"
    );
    assert!(mr.tcp_clients().is_empty());
}

#[test]
fn attempt_delay_is_configurable() {
    let mr = Rc::new(MemoryReactor::new());
    let r = Rc::new(TestResolver {
        addrs: addrs(&["192.0.2.1", "192.0.2.2"]),
        ..Default::default()
    });
    let options = HostnameOptions {
        attempt_delay: Duration::from_secs(2),
        ..Default::default()
    };
    let e = HostnameEndpoint::with_options("example.com", 80, options).with_resolver(r);
    let d = e.connect(&mr, for_protocol(|| P));
    mr.clock().advance(1.9);
    assert_eq!(mr.tcp_clients().len(), 1);
    mr.clock().advance(0.1);
    assert_eq!(mr.tcp_clients().len(), 2);
    d.cancel();
}

#[test]
fn each_attempt_gets_the_timeout_and_bind_address() {
    let mr = Rc::new(MemoryReactor::new());
    let r = Rc::new(TestResolver {
        addrs: addrs(&["192.0.2.1"]),
        ..Default::default()
    });
    let options = HostnameOptions {
        timeout: Some(Duration::from_secs(4)),
        bind_address: Some("192.0.2.99".parse().unwrap()),
        ..Default::default()
    };
    let d = HostnameEndpoint::with_options("example.com", 80, options)
        .with_resolver(r)
        .connect(&mr, for_protocol(|| P));
    let call = &mr.tcp_clients()[0];
    assert_eq!(call.options.timeout, Some(Duration::from_secs(4)));
    assert_eq!(
        call.options.bind_address,
        Some("192.0.2.99:0".parse().unwrap())
    );
    d.cancel();
}

#[test]
fn an_ip_address_is_not_looked_up() {
    let mr = Rc::new(MemoryReactor::new());
    let r = Rc::new(TestResolver::default());
    let d = HostnameEndpoint::new("192.0.2.5", 8080)
        .with_resolver(r.clone())
        .connect(&mr, for_protocol(|| P));
    assert_eq!(r.calls.get(), 0);
    assert_eq!(hosts(&mr), ["192.0.2.5"]);
    assert_eq!(mr.tcp_clients()[0].port, 8080);
    d.cancel();
}

#[test]
fn tcp6_client_endpoint_tries_only_ipv6() {
    let mr = Rc::new(MemoryReactor::new());
    let r = Rc::new(TestResolver {
        addrs: addrs(&["192.0.2.1", "2001:db8::5", "192.0.2.2"]),
        ..Default::default()
    });
    let d = Tcp6ClientEndpoint::new("example.com", 443)
        .with_resolver(r)
        .connect(&mr, for_protocol(|| P));
    mr.clock().advance(5.0);
    assert_eq!(hosts(&mr), ["2001:db8::5"]);
    refuse(&mr.tcp_clients()[0]);
    assert!(failure_result_of(&d).is::<ConnectionRefusedError>());

    // An IPv4-only name has nothing for it.
    let r = Rc::new(TestResolver {
        addrs: addrs(&["192.0.2.1"]),
        ..Default::default()
    });
    let d = Tcp6ClientEndpoint::new("v4only.example", 443)
        .with_resolver(r)
        .connect(&mr, for_protocol(|| P));
    assert!(failure_result_of(&d).is::<DnsLookupError>());
}

#[test]
fn an_internationalized_host_is_looked_up_as_its_a_label() {
    let mr = Rc::new(MemoryReactor::new());
    let r = Rc::new(TestResolver {
        addrs: addrs(&["192.0.2.1"]),
        ..Default::default()
    });
    let e = HostnameEndpoint::new("bücher.example", 80).with_resolver(r.clone());
    let _d = e.connect(&mr, for_protocol(|| P));
    assert_eq!(*r.asked.borrow(), ["xn--bcher-kva.example"]);
    assert_eq!(hosts(&mr), ["192.0.2.1"]);
    // A name IDNA refuses is a lookup error naming it, and nothing is asked.
    let r = Rc::new(TestResolver::default());
    let e = HostnameEndpoint::new("a\u{FFFD}b.example", 80).with_resolver(r.clone());
    let f = failure_result_of(&e.connect(&mr, for_protocol(|| P)));
    assert!(f.is::<DnsLookupError>(), "{f}");
    assert!(
        f.to_string()
            .contains("not a valid internationalized host name"),
        "{f}"
    );
    assert!(r.asked.borrow().is_empty());
}

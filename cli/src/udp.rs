//! `twistor udp-echo`: an echo server for datagrams.

use std::net::SocketAddr;

use twistor::protocol::datagram::{DatagramContext, DatagramProtocol};
use twistor::transport::udp::{UdpListenOptions, listen_udp_with};

use crate::servers::{new_reactor, run_server};

/// Sends every datagram back to its sender.
struct UdpEcho;

impl DatagramProtocol for UdpEcho {
    fn datagram_received(&mut self, cx: &DatagramContext<Self>, data: &[u8], from: SocketAddr) {
        if let Some(port) = cx.transport()
            && let Err(e) = port.write(data, Some(from))
        {
            // One sender's bad luck (its address, a full buffer) must not stop the server.
            log::warn!("cannot echo {} bytes to {from}: {e}", data.len());
        }
    }
}

/// `twistor udp-echo`: the exit code.
pub fn udp_echo(port: u16, interface: &str) -> i32 {
    let name = "udp-echo";
    let Some(reactor) = new_reactor(name) else {
        return 1;
    };
    let mut options = UdpListenOptions::default();
    options.interface = interface.to_string();
    // Any datagram IPv4 can carry is echoed whole.
    options.max_packet_size = 65_536;
    match listen_udp_with(&reactor, port, UdpEcho, options) {
        Ok(p) => println!("twistor {name} listening on {}", p.get_host()),
        Err(e) => {
            eprintln!("twistor {name}: {e}");
            return 1;
        }
    }
    run_server(&reactor, name)
}

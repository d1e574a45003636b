//! The read loop every datagram port shares (Twisted's `udp.Port.doRead`), over any
//! non-blocking datagram socket, so UDP and UNIX datagram ports read the same way.
//!
//! One readiness event reads datagrams until the socket is drained or `READ_BUDGET` bytes
//! were read; in the second case the port must ask the reactor to run it again, after the
//! other ready sources, so a flooded port cannot starve the rest. The poller is
//! edge-triggered: a port that stops before `WouldBlock` without asking to run again would
//! never be woken for the datagrams still queued.

use std::io;

/// Bytes read per run before other sources get their turn (Twisted's `maxThroughput`).
pub(crate) const READ_BUDGET: usize = 256 * 1024;
/// What an empty datagram or an error counts against the budget, so a stream of them ends.
const EVENT_COST: usize = 64;

/// A bound, non-blocking datagram socket.
pub(crate) trait DatagramSocket {
    /// The sender's address.
    type Addr;
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Self::Addr)>;
}

impl DatagramSocket for mio::net::UdpSocket {
    type Addr = std::net::SocketAddr;
    fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Self::Addr)> {
        mio::net::UdpSocket::recv_from(self, buf)
    }
}

/// How a read run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// The socket is drained (or failed): wait for the next readiness event.
    Drained,
    /// The budget ran out with datagrams maybe still queued: run again.
    Budget,
}

/// Reads datagrams into `buf` (a longer datagram is truncated to it) and hands each to
/// `deliver`; `refused` gets the ICMP errors of earlier sends (`ECONNREFUSED`).
pub(crate) fn read_some<S: DatagramSocket>(
    socket: &S,
    buf: &mut [u8],
    mut deliver: impl FnMut(&[u8], S::Addr),
    mut refused: impl FnMut(),
) -> ReadEnd {
    let mut used = 0;
    while used < READ_BUDGET {
        match socket.recv_from(buf) {
            Ok((n, from)) => {
                used += n.max(EVENT_COST);
                deliver(&buf[..n.min(buf.len())], from);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadEnd::Drained,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                used += EVENT_COST;
                refused();
            }
            Err(e) => {
                log::warn!(target: "twistor::udp", "datagram read failed: {e}");
                return ReadEnd::Drained;
            }
        }
    }
    ReadEnd::Budget
}

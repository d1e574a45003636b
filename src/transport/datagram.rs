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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// A socket with an endless backlog of `size`-byte datagrams, or a fixed number of them.
    struct Endless {
        size: usize,
        left: Cell<Option<usize>>,
        refuse_first: Cell<bool>,
    }

    impl DatagramSocket for Endless {
        type Addr = ();
        fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, ())> {
            if self.refuse_first.replace(false) {
                return Err(io::ErrorKind::ConnectionRefused.into());
            }
            if let Some(n) = self.left.get() {
                if n == 0 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                self.left.set(Some(n - 1));
            }
            Ok((self.size.min(buf.len()), ()))
        }
    }

    #[test]
    fn an_endless_backlog_stops_at_the_budget() {
        let s = Endless {
            size: 1000,
            left: Cell::new(None),
            refuse_first: Cell::new(false),
        };
        let mut buf = vec![0; 2048];
        let mut seen = 0;
        let end = read_some(&s, &mut buf, |_, _| seen += 1, || {});
        assert_eq!(end, ReadEnd::Budget);
        assert_eq!(seen, READ_BUDGET.div_ceil(1000));
    }

    #[test]
    fn empty_datagrams_also_use_the_budget() {
        let s = Endless {
            size: 0,
            left: Cell::new(None),
            refuse_first: Cell::new(false),
        };
        let mut buf = vec![0; 16];
        let mut seen = 0;
        assert_eq!(
            read_some(&s, &mut buf, |_, _| seen += 1, || {}),
            ReadEnd::Budget
        );
        assert_eq!(seen, READ_BUDGET / EVENT_COST);
    }

    #[test]
    fn a_drained_socket_ends_the_run_and_refusals_are_reported() {
        let s = Endless {
            size: 3000,
            left: Cell::new(Some(5)),
            refuse_first: Cell::new(true),
        };
        // Longer datagrams are truncated to the buffer.
        let mut buf = vec![0; 100];
        let mut lens = Vec::new();
        let mut refused = 0;
        let end = read_some(&s, &mut buf, |d, _| lens.push(d.len()), || refused += 1);
        assert_eq!(end, ReadEnd::Drained);
        assert_eq!(lens, vec![100; 5]);
        assert_eq!(refused, 1);
    }
}

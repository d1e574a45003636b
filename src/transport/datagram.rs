//! The I/O core every datagram port shares (Twisted's `udp.Port.doRead` and `write`), over
//! any non-blocking datagram socket, so UDP and UNIX datagram ports read and write the same
//! way: many datagrams per system call.
//!
//! # Reading
//!
//! [`RecvRing`] is a ring of receive buffers with their address slots and `mmsghdr`s, made
//! once per port (on its first read) and reused: one `recvmmsg` fills up to
//! [`RING_SLOTS`] of them, and each datagram is handed to the protocol as a slice of its
//! buffer, with no copy. [`read_some`] calls it until the socket is drained or the run's
//! budget ([`READ_BUDGET`] bytes) is used; in the second case the port must ask the reactor
//! to run it again, after the other ready sources, so a flooded port cannot starve the rest.
//!
//! The poller is edge-triggered, so a run must either see the socket drained or ask to run
//! again. A `recvmmsg` that fills fewer slots than it has stopped because the socket had
//! nothing more (or because of an error, which the next call reports): both count as
//! drained, which saves the extra call a `recv_from` loop makes to meet `EAGAIN`.
//!
//! # Writing
//!
//! Writes are queued in a [`SendQueue`] and leave together when the reactor flushes the port,
//! once per phase of a turn (after the timed calls, after the I/O dispatch): everything the
//! protocol wrote while handling one batch of datagrams goes out in one `sendmmsg`. Where the
//! kernel has UDP GSO, consecutive datagrams of one size to one address travel as one message
//! cut by the kernel (`UDP_SEGMENT`); a datagram is never moved ahead of an earlier one to the
//! same address, so per-destination order is kept (datagrams to different addresses may leave
//! in another order than written: nothing can observe that order across sockets anyway).
//!
//! A queue that meets a full socket buffer waits for the socket to become writable. It holds
//! at most [`QUEUE_DATAGRAMS`] datagrams and [`QUEUE_BYTES`] bytes; a write beyond that is
//! dropped and counted. Datagrams may be lost; memory may not grow without limit.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::ptr;
use std::rc::Weak;

use mio::{Interest, Token};

use crate::reactor::sources::SourceHandler;
use crate::reactor::{Reactor, Ready, WeakReactor};

/// Bytes read per run before other sources get their turn (Twisted's `maxThroughput`).
pub(crate) const READ_BUDGET: usize = 256 * 1024;
/// What an empty datagram or an error counts against the budget, so a stream of them ends.
const EVENT_COST: usize = 64;
/// Datagrams one `recvmmsg` may take.
pub(crate) const RING_SLOTS: usize = 32;
/// The address space one port's receive ring may use; with longer datagrams it has fewer
/// slots. A ring this large is mapped lazily (zeroed allocations of this size come straight
/// from `mmap`), and the kernel touches only the pages the datagrams fill: 32 slots of 64 KiB
/// holding short datagrams cost 32 pages, not 2 MiB.
const RING_BYTES: usize = 2 * 1024 * 1024;
/// Datagrams waiting for room in the socket buffer, at most.
pub(crate) const QUEUE_DATAGRAMS: usize = 4096;
/// Bytes waiting for room in the socket buffer, at most.
pub(crate) const QUEUE_BYTES: usize = 1024 * 1024;
/// Messages per `sendmmsg`.
const SEND_BATCH: usize = 64;
/// Datagrams one GSO message may carry (the kernel takes up to 64 on every version that
/// has `UDP_SEGMENT`).
const GSO_SEGMENTS: usize = 64;
/// The longest datagram sent with GSO: one that fits the smallest IPv6 MTU, so the kernel
/// never refuses a segment size for the route's MTU.
const GSO_MAX_SEGMENT: usize = 1200;
/// The payload one GSO message may carry (one IP packet's worth).
const GSO_BYTES: usize = 65_000;
/// How far ahead of a datagram the queue looks for others to send with it.
const GSO_WINDOW: usize = 256;
/// `UDP_SEGMENT` (Linux 4.18): the control message asking the kernel to cut a send.
#[cfg(any(target_os = "linux", target_os = "android"))]
const UDP_SEGMENT: libc::c_int = 103;

/// A socket address in the kernel's form, for the address types of datagram ports.
pub(crate) trait RawAddress: Sized + Clone + PartialEq {
    /// The sender's address as `recvmmsg` wrote it (`len` bytes of `raw`); `None` if this
    /// kind of port cannot name it (the datagram is then dropped).
    fn from_raw(raw: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<Self>;
    /// Writes the address into `raw` and returns its length.
    fn to_raw(&self, raw: &mut libc::sockaddr_storage) -> libc::socklen_t;
}

impl RawAddress for std::net::SocketAddr {
    fn from_raw(raw: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<Self> {
        let len = len as usize;
        match raw.ss_family as libc::c_int {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says `raw` holds a `sockaddr_in`, which fits in it.
                let a = unsafe { &*(raw as *const _ as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes());
                Some((ip, u16::from_be(a.sin_port)).into())
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for `sockaddr_in6`.
                let a = unsafe { &*(raw as *const _ as *const libc::sockaddr_in6) };
                Some(std::net::SocketAddr::V6(std::net::SocketAddrV6::new(
                    a.sin6_addr.s6_addr.into(),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    fn to_raw(&self, raw: &mut libc::sockaddr_storage) -> libc::socklen_t {
        match self {
            std::net::SocketAddr::V4(a) => {
                // SAFETY: `sockaddr_storage` is larger than, and aligned for, `sockaddr_in`.
                let out = unsafe { &mut *(raw as *mut _ as *mut libc::sockaddr_in) };
                out.sin_family = libc::AF_INET as libc::sa_family_t;
                out.sin_port = a.port().to_be();
                out.sin_addr = libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                };
                size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            std::net::SocketAddr::V6(a) => {
                // SAFETY: as above, for `sockaddr_in6`.
                let out = unsafe { &mut *(raw as *mut _ as *mut libc::sockaddr_in6) };
                out.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                out.sin6_port = a.port().to_be();
                out.sin6_flowinfo = a.flowinfo();
                out.sin6_addr = libc::in6_addr {
                    s6_addr: a.ip().octets(),
                };
                out.sin6_scope_id = a.scope_id();
                size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
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

/// Receive buffers, address slots and message headers for `recvmmsg`, made once and reused.
///
/// The headers point into the buffers, the address slots and the `iovec`s: all four are
/// boxed slices made in `new` and never resized, so the pointers stay valid when the ring
/// moves.
pub(crate) struct RecvRing {
    slot: usize,
    data: Box<[u8]>,
    names: Box<[libc::sockaddr_storage]>,
    _iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    /// Slots filled by the latest call.
    filled: usize,
}

impl RecvRing {
    /// A ring whose slots hold datagrams of up to `slot` bytes (longer ones are truncated).
    pub(crate) fn new(slot: usize) -> RecvRing {
        let slot = slot.max(1);
        let n = (RING_BYTES / slot).clamp(1, RING_SLOTS);
        let mut data = vec![0u8; n * slot].into_boxed_slice();
        // SAFETY: all-zero bytes are a valid `sockaddr_storage`, `iovec` and `mmsghdr`.
        let mut names: Box<[libc::sockaddr_storage]> =
            (0..n).map(|_| unsafe { zeroed() }).collect();
        let mut iovs: Box<[libc::iovec]> = data
            .chunks_exact_mut(slot)
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: slot,
            })
            .collect();
        let hdrs = names
            .iter_mut()
            .zip(iovs.iter_mut())
            .map(|(name, iov)| {
                // SAFETY: as above.
                let mut h: libc::mmsghdr = unsafe { zeroed() };
                h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        RecvRing {
            slot,
            data,
            names,
            _iovs: iovs,
            hdrs,
            filled: 0,
        }
    }

    /// How many datagrams one call may take.
    pub(crate) fn slots(&self) -> usize {
        self.hdrs.len()
    }

    /// Fills slots with one `recvmmsg` on `fd` and returns how many.
    fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for h in &mut self.hdrs[..self.filled] {
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
        }
        self.filled = 0;
        // SAFETY: every header points at live buffers of the lengths it states (see the
        // type's docs); the kernel writes at most that much into each.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as _,
                0,
                ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.filled = n as usize;
        Ok(self.filled)
    }

    /// The `i`th datagram of the latest call (truncated to the slot) and its sender.
    fn datagram(&self, i: usize) -> (&[u8], &libc::sockaddr_storage, libc::socklen_t) {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(self.slot);
        let start = i * self.slot;
        (
            &self.data[start..start + len],
            &self.names[i],
            h.msg_hdr.msg_namelen,
        )
    }
}

/// Reads datagrams from `fd` through `ring` and hands each to `deliver`, until the socket
/// is drained or `budget` bytes were read; `refused` gets the ICMP errors of earlier sends
/// (`ECONNREFUSED`).
pub(crate) fn read_some<A: RawAddress>(
    fd: RawFd,
    ring: &mut RecvRing,
    budget: usize,
    mut deliver: impl FnMut(&[u8], A),
    mut refused: impl FnMut(),
) -> ReadEnd {
    let mut used = 0;
    while used < budget {
        match ring.recv(fd) {
            Ok(n) => {
                for i in 0..n {
                    let (data, raw, len) = ring.datagram(i);
                    used += data.len().max(EVENT_COST);
                    if let Some(from) = A::from_raw(raw, len) {
                        deliver(data, from);
                    }
                }
                if n < ring.slots() {
                    return ReadEnd::Drained;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadEnd::Drained,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                used += EVENT_COST;
                refused();
            }
            Err(e) => {
                crate::report_error!(target: "twistor::udp", "datagram read failed: {e}");
                return ReadEnd::Drained;
            }
        }
    }
    ReadEnd::Budget
}

/// One queued datagram: `len` bytes at `off` in the queue's arena, to `to` (`None`: the
/// connected peer).
struct Item<A> {
    off: usize,
    len: usize,
    to: Option<A>,
    /// Put in the batch being built.
    taken: bool,
}

/// What a flush did, for the port to act on once the queue is no longer borrowed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flushed {
    /// Datagrams handed to the kernel.
    pub(crate) sent: usize,
    /// Sends that met `ECONNREFUSED` (an earlier datagram was refused); the datagram is
    /// dropped.
    pub(crate) refused: usize,
    /// Datagrams dropped because the kernel refused them (logged).
    pub(crate) failed: usize,
    /// The socket buffer is full: wait for writability with the rest still queued.
    pub(crate) blocked: bool,
}

/// Datagrams written during a turn, sent together with `sendmmsg` (module docs).
pub(crate) struct SendQueue<A> {
    arena: Vec<u8>,
    items: VecDeque<Item<A>>,
    live_bytes: usize,
    /// Whether to try UDP GSO; turned off for good when the kernel refuses it.
    gso: bool,
    // Scratch space for one `sendmmsg`, kept to save allocations.
    hdrs: Vec<libc::mmsghdr>,
    names: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    cmsgs: Vec<[u64; 4]>,
    members: Vec<usize>,
    msgs: Vec<(usize, usize)>,
}

impl<A: RawAddress> SendQueue<A> {
    /// An empty queue; `gso` allows UDP segmentation offload (UDP sockets only).
    pub(crate) fn new(gso: bool) -> SendQueue<A> {
        SendQueue {
            arena: Vec::new(),
            items: VecDeque::new(),
            live_bytes: 0,
            gso: gso && cfg!(any(target_os = "linux", target_os = "android")),
            hdrs: Vec::new(),
            names: Vec::new(),
            iovs: Vec::new(),
            cmsgs: Vec::new(),
            members: Vec::new(),
            msgs: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues `data` for `to`; `false` (and nothing queued) when the queue is full.
    pub(crate) fn push(&mut self, data: &[u8], to: Option<A>) -> bool {
        if self.items.len() >= QUEUE_DATAGRAMS || self.live_bytes + data.len() > QUEUE_BYTES {
            return false;
        }
        if self.arena.len() + data.len() > 2 * QUEUE_BYTES {
            self.compact();
        }
        self.items.push_back(Item {
            off: self.arena.len(),
            len: data.len(),
            to,
            taken: false,
        });
        self.arena.extend_from_slice(data);
        self.live_bytes += data.len();
        true
    }

    /// Moves the queued datagrams to the front of the arena (sent ones leave holes while the
    /// queue waits for room).
    fn compact(&mut self) {
        let mut fresh = Vec::with_capacity(self.live_bytes);
        for it in &mut self.items {
            let off = fresh.len();
            fresh.extend_from_slice(&self.arena[it.off..it.off + it.len]);
            it.off = off;
        }
        self.arena = fresh;
    }

    /// Drops everything queued (the port closed).
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.arena.clear();
        self.live_bytes = 0;
    }

    /// Sends what is queued on `fd` until the queue is empty or the socket buffer is full.
    pub(crate) fn flush(&mut self, fd: RawFd) -> Flushed {
        let mut out = Flushed::default();
        while !self.items.is_empty() {
            let batch = self.build_batch();
            // SAFETY: the headers built by `build_batch` point into `names`, `iovs`, `cmsgs`
            // and the arena, none of which change until the call returns.
            let n = unsafe { libc::sendmmsg(fd, self.hdrs.as_mut_ptr(), batch as _, 0) };
            if n >= 0 {
                let n = n as usize;
                out.sent += self.msgs[..n].iter().map(|m| m.1).sum::<usize>();
                self.finish_batch(n, false);
                continue;
            }
            let e = io::Error::last_os_error();
            let first_gso = self.msgs.first().is_some_and(|m| m.1 > 1);
            match e.raw_os_error() {
                _ if e.kind() == io::ErrorKind::Interrupted => self.finish_batch(0, false),
                _ if e.kind() == io::ErrorKind::WouldBlock => {
                    self.finish_batch(0, false);
                    out.blocked = true;
                    return out;
                }
                Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
                    if first_gso =>
                {
                    // This kernel (or device) cannot segment: send one by one from now on.
                    log::debug!(target: "twistor::udp", "UDP GSO refused ({e}); sending without it");
                    self.gso = false;
                    self.finish_batch(0, false);
                }
                Some(libc::ECONNREFUSED) => {
                    out.refused += 1;
                    self.finish_batch(0, true);
                }
                _ => {
                    let dropped = self.msgs.first().map_or(0, |m| m.1);
                    crate::report_error!(
                        target: "twistor::udp",
                        "datagram send failed, {dropped} datagram(s) dropped: {e}"
                    );
                    out.failed += dropped;
                    self.finish_batch(0, true);
                }
            }
        }
        // Everything left: the arena can start over.
        self.arena.clear();
        out
    }

    /// Fills the scratch headers with up to `SEND_BATCH` messages from the queue's front;
    /// returns how many.
    fn build_batch(&mut self) -> usize {
        self.members.clear();
        self.msgs.clear();
        let gso = self.gso;
        let items = &mut self.items;
        for i in 0..items.len() {
            if self.msgs.len() == SEND_BATCH {
                break;
            }
            if items[i].taken {
                continue;
            }
            items[i].taken = true;
            let start = self.members.len();
            self.members.push(i);
            let len = items[i].len;
            if gso && len > 0 && len <= GSO_MAX_SEGMENT {
                let mut total = len;
                for j in i + 1..items.len().min(i + GSO_WINDOW) {
                    if self.members.len() - start == GSO_SEGMENTS || total + len > GSO_BYTES {
                        break;
                    }
                    let (it, first) = (&items[j], &items[i]);
                    if it.taken || it.to != first.to {
                        continue;
                    }
                    // A datagram to the same address that cannot join ends the message:
                    // joining later ones would send them before it.
                    if it.len != len {
                        break;
                    }
                    items[j].taken = true;
                    self.members.push(j);
                    total += len;
                }
            }
            self.msgs.push((start, self.members.len() - start));
        }
        let n = self.msgs.len();
        // SAFETY: all-zero bytes are valid for these C structs.
        self.hdrs.resize_with(n, || unsafe { zeroed() });
        // SAFETY: as above.
        self.names.resize_with(n, || unsafe { zeroed() });
        self.cmsgs.resize(n, [0; 4]);
        self.iovs.clear();
        self.iovs.extend(self.members.iter().map(|&i| {
            let it = &self.items[i];
            libc::iovec {
                iov_base: self.arena[it.off..].as_ptr() as *mut libc::c_void,
                iov_len: it.len,
            }
        }));
        for (k, &(start, count)) in self.msgs.iter().enumerate() {
            let first = &self.items[self.members[start]];
            // SAFETY: as above.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            if let Some(to) = &first.to {
                let len = to.to_raw(&mut self.names[k]);
                h.msg_hdr.msg_name = (&mut self.names[k] as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen = len;
            }
            h.msg_hdr.msg_iov = self.iovs[start..].as_mut_ptr();
            h.msg_hdr.msg_iovlen = count as _;
            if count > 1 {
                set_segment(&mut h.msg_hdr, &mut self.cmsgs[k], first.len as u16);
            }
            self.hdrs[k] = h;
        }
        n
    }

    /// The first `sent` messages of the batch left (and, with `drop_next`, the one after them
    /// is given up): their datagrams leave the queue; the rest are queued again, in order.
    fn finish_batch(&mut self, sent: usize, drop_next: bool) {
        let gone = sent + usize::from(drop_next && sent < self.msgs.len());
        for &(start, count) in &self.msgs[..gone] {
            for &i in &self.members[start..start + count] {
                // Marked for removal; `retain` below removes them.
                self.items[i].len = usize::MAX;
            }
        }
        let mut freed = 0;
        self.items.retain_mut(|it| {
            if it.len == usize::MAX {
                false
            } else {
                freed += it.len;
                it.taken = false;
                true
            }
        });
        self.live_bytes = freed;
        self.msgs.clear();
        self.members.clear();
    }
}

/// Adds the `UDP_SEGMENT` control message (segment size `size`) to `hdr`, in `buf`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_segment(hdr: &mut libc::msghdr, buf: &mut [u64; 4], size: u16) {
    // SAFETY: `buf` is 8-byte aligned and 32 bytes long, more than `CMSG_SPACE(2)`; the
    // header points at it before CMSG_FIRSTHDR reads it.
    unsafe {
        let space = libc::CMSG_SPACE(size_of::<u16>() as u32) as usize;
        debug_assert!(space <= size_of::<[u64; 4]>());
        hdr.msg_control = buf.as_mut_ptr().cast();
        hdr.msg_controllen = space as _;
        let c = libc::CMSG_FIRSTHDR(hdr);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
        ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), size);
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_segment(_: &mut libc::msghdr, _: &mut [u64; 4], _: u16) {
    unreachable!("GSO is only tried on Linux")
}

/// The I/O state of one datagram port, whatever its socket: the receive ring, the send
/// queue, and the bookkeeping of flushes and writability. The port owns the socket and the
/// protocol, and passes the socket in.
pub(crate) struct DatagramIo<A> {
    max_packet_size: usize,
    /// Made on the first read, so a port that only sends costs no buffers.
    ring: RefCell<Option<RecvRing>>,
    queue: RefCell<SendQueue<A>>,
    /// The port's registration: its token, itself as the reactor sees it, and the reactor.
    attached: OnceCell<(Token, Weak<dyn SourceHandler>, WeakReactor)>,
    /// A flush is asked for and has not run yet.
    flush_wanted: Cell<bool>,
    /// The queue waits for the socket to become writable (watched only then: a datagram
    /// socket is writable nearly always, and every send would wake the poller otherwise).
    write_wait: Cell<bool>,
    dropped: Cell<u64>,
}

impl<A: RawAddress> DatagramIo<A> {
    /// The state of a port reading datagrams of up to `max_packet_size` bytes; `gso` allows
    /// UDP segmentation offload.
    pub(crate) fn new(max_packet_size: usize, gso: bool) -> DatagramIo<A> {
        DatagramIo {
            max_packet_size: max_packet_size.max(1),
            ring: RefCell::new(None),
            queue: RefCell::new(SendQueue::new(gso)),
            attached: OnceCell::new(),
            flush_wanted: Cell::new(false),
            write_wait: Cell::new(false),
            dropped: Cell::new(0),
        }
    }

    /// Registers `socket` for reading, with `port` as its handler.
    pub(crate) fn register<H: SourceHandler + 'static>(
        &self,
        reactor: &Reactor,
        socket: &impl AsFd,
        port: &std::rc::Rc<H>,
    ) -> io::Result<()> {
        let token = reactor.register_source(socket, Interest::READABLE, port.clone())?;
        let me: Weak<dyn SourceHandler> = std::rc::Rc::downgrade(port) as Weak<dyn SourceHandler>;
        let _ = self.attached.set((token, me, reactor.downgrade()));
        Ok(())
    }

    /// The token of the registration, if any.
    pub(crate) fn token(&self) -> Option<Token> {
        self.attached.get().map(|a| a.0)
    }

    /// Reads from `socket` (a readiness event, or a run asked for again) and hands each
    /// datagram to `deliver`; asks to run again when the budget ran out.
    pub(crate) fn read(
        &self,
        reactor: &Reactor,
        socket: &impl AsRawFd,
        deliver: impl FnMut(&[u8], A),
        refused: impl FnMut(),
    ) {
        // Only the reactor reads, never from inside a protocol callback: no nested borrow.
        let Ok(mut ring) = self.ring.try_borrow_mut() else {
            return;
        };
        let ring = ring.get_or_insert_with(|| RecvRing::new(self.max_packet_size));
        let end = read_some(socket.as_raw_fd(), ring, READ_BUDGET, deliver, refused);
        if end == ReadEnd::Budget
            && let Some(t) = self.token()
        {
            reactor.ready_again(t);
        }
    }

    /// Queues a datagram and asks for a flush; a full queue drops it and counts it.
    pub(crate) fn write(&self, data: &[u8], to: Option<A>) {
        if !self.queue.borrow_mut().push(data, to) {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        if self.flush_wanted.get() || self.write_wait.get() {
            return;
        }
        if let Some((_, me, reactor)) = self.attached.get()
            && let (Some(r), Some(me)) = (reactor.upgrade(), me.upgrade())
        {
            self.flush_wanted.set(true);
            r.want_flush(me);
        }
    }

    /// Sends what was queued (the reactor's flush, or the socket became writable): watches
    /// for writability while the queue waits for room, and stops watching once it is empty.
    pub(crate) fn send_queued(&self, reactor: &Reactor, socket: &impl AsFd) -> Flushed {
        self.flush_wanted.set(false);
        let Ok(mut queue) = self.queue.try_borrow_mut() else {
            return Flushed::default();
        };
        let flushed = queue.flush(socket.as_fd().as_raw_fd());
        if flushed.blocked != self.write_wait.get()
            && let Some(t) = self.token()
        {
            let interest = if flushed.blocked {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = reactor.reregister_source(t, socket, interest) {
                crate::report_error!(target: "twistor::datagram", "cannot watch the datagram socket: {e}");
            }
            self.write_wait.set(flushed.blocked);
        }
        flushed
    }

    /// Runs a readiness event: `send` when the queue waits for room and the socket has some,
    /// `read` unless the event is about writability alone.
    pub(crate) fn on_ready(&self, ready: Ready, send: impl FnOnce(), read: impl FnOnce()) {
        if ready.is_writable() && self.write_wait.get() {
            send();
        }
        if ready.is_readable() || !ready.is_writable() {
            read();
        }
    }

    /// Closes the port's socket: sends what it takes at once of the queue (what was written
    /// before the stop still leaves), forgets the rest, and stops watching it.
    pub(crate) fn close<S: AsFd>(&self, reactor: &Reactor, socket: &RefCell<Option<S>>) {
        let Some(s) = socket.borrow_mut().take() else {
            return;
        };
        if let Ok(mut q) = self.queue.try_borrow_mut() {
            if !q.is_empty() {
                q.flush(s.as_fd().as_raw_fd());
            }
            q.clear();
        }
        if let Some(t) = self.token() {
            reactor.deregister_source(t, &s);
        }
    }

    /// Writes dropped so far (the queue was full).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.get()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;

    use super::*;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    fn read_all(sock: &UdpSocket, ring: &mut RecvRing, budget: usize) -> (ReadEnd, Vec<Vec<u8>>) {
        let mut got = Vec::new();
        let end = read_some::<SocketAddr>(
            sock.as_raw_fd(),
            ring,
            budget,
            |d, _| got.push(d.to_vec()),
            || {},
        );
        (end, got)
    }

    #[test]
    fn addresses_survive_the_kernel_form() {
        for a in ["127.0.0.1:9", "[::1]:65535", "[fe80::1%3]:7", "0.0.0.0:0"] {
            let a: SocketAddr = a.parse().unwrap();
            // SAFETY: zeroed storage is valid.
            let mut raw: libc::sockaddr_storage = unsafe { zeroed() };
            let len = a.to_raw(&mut raw);
            assert_eq!(SocketAddr::from_raw(&raw, len), Some(a));
        }
        // SAFETY: as above.
        let raw: libc::sockaddr_storage = unsafe { zeroed() };
        assert_eq!(SocketAddr::from_raw(&raw, 0), None);
    }

    #[test]
    fn one_call_reads_a_batch_and_a_short_batch_means_drained() {
        let (a, b) = pair();
        for i in 0..5u8 {
            a.send_to(&[i; 10], b.local_addr().unwrap()).unwrap();
        }
        let mut ring = RecvRing::new(100);
        let (end, got) = read_all(&b, &mut ring, READ_BUDGET);
        assert_eq!(end, ReadEnd::Drained);
        assert_eq!(got, (0..5u8).map(|i| vec![i; 10]).collect::<Vec<_>>());
        // Nothing queued: drained at once.
        assert_eq!(
            read_all(&b, &mut ring, READ_BUDGET),
            (ReadEnd::Drained, vec![])
        );
    }

    #[test]
    fn the_budget_ends_a_run_and_the_next_run_goes_on() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        for i in 0..100u8 {
            a.send_to(&[i; 500], to).unwrap();
        }
        let mut ring = RecvRing::new(1000);
        assert_eq!(ring.slots(), RING_SLOTS);
        // A budget of 20 datagrams ends the run after the batch that passes it.
        let (end, got) = read_all(&b, &mut ring, 20 * 500);
        assert_eq!(end, ReadEnd::Budget);
        assert_eq!(got.len(), RING_SLOTS);
        let (end, rest) = read_all(&b, &mut ring, READ_BUDGET);
        assert_eq!(end, ReadEnd::Drained);
        assert_eq!(rest.len(), 100 - RING_SLOTS);
        assert_eq!(rest[0], vec![RING_SLOTS as u8; 500]);
    }

    #[test]
    fn long_datagrams_are_truncated_and_empty_ones_delivered() {
        let (a, b) = pair();
        let to = b.local_addr().unwrap();
        a.send_to(&[7; 3000], to).unwrap();
        a.send_to(&[], to).unwrap();
        let mut ring = RecvRing::new(100);
        let (_, got) = read_all(&b, &mut ring, READ_BUDGET);
        assert_eq!(got, vec![vec![7; 100], vec![]]);
        // A ring of long slots has fewer of them.
        assert_eq!(RecvRing::new(65_536).slots(), RING_SLOTS);
        assert_eq!(RecvRing::new(1 << 20).slots(), 2);
        assert_eq!(RecvRing::new(10 << 20).slots(), 1);
    }

    #[test]
    fn a_flush_sends_everything_in_order_per_destination() {
        let (a, b) = pair();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_nonblocking(true).unwrap();
        let (tb, tc) = (b.local_addr().unwrap(), c.local_addr().unwrap());
        for gso in [true, false] {
            let mut q = SendQueue::<SocketAddr>::new(gso);
            // Same-size runs (GSO candidates), a size change, interleaved destinations, an
            // empty datagram.
            let mut want_b = Vec::new();
            let mut want_c = Vec::new();
            for i in 0..200u32 {
                let len = if i % 50 == 49 { 7 } else { 64 };
                let d = vec![(i % 251) as u8; len];
                let to = if i % 3 == 0 { tc } else { tb };
                assert!(q.push(&d, Some(to)));
                if to == tb {
                    want_b.push(d)
                } else {
                    want_c.push(d)
                }
            }
            assert!(q.push(&[], Some(tb)));
            want_b.push(vec![]);
            let f = q.flush(a.as_raw_fd());
            assert_eq!(
                f,
                Flushed {
                    sent: 201,
                    ..Flushed::default()
                }
            );
            assert!(q.is_empty());
            let mut ring = RecvRing::new(100);
            let (_, got_b) = read_all(&b, &mut ring, usize::MAX);
            let (_, got_c) = read_all(&c, &mut ring, usize::MAX);
            assert_eq!(got_b, want_b, "gso {gso}");
            assert_eq!(got_c, want_c, "gso {gso}");
        }
    }

    #[test]
    fn a_full_queue_refuses_more() {
        let mut q = SendQueue::<SocketAddr>::new(false);
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let big = vec![0; QUEUE_BYTES / 4];
        for _ in 0..4 {
            assert!(q.push(&big, Some(to)));
        }
        assert!(!q.push(&[1], Some(to)));
        q.clear();
        for _ in 0..QUEUE_DATAGRAMS {
            assert!(q.push(&[1], Some(to)));
        }
        assert!(!q.push(&[1], Some(to)));
    }

    #[test]
    fn a_full_socket_buffer_blocks_the_flush_and_keeps_the_rest() {
        // A UNIX datagram pair: the receiver's queue fills and the sender meets EAGAIN (a
        // loopback UDP sender never does: its buffer is freed as the datagram is handed over).
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let mut q = SendQueue::<SocketAddr>::new(false);
        for i in 0..500u16 {
            assert!(q.push(&i.to_be_bytes().repeat(500), None));
        }
        let f = q.flush(a.as_raw_fd());
        assert!(f.blocked, "{f:?}");
        assert!(f.sent > 0 && f.sent < 500, "{f:?}");
        assert_eq!(q.items.len(), 500 - f.sent);
        // Reading makes room; the next flushes send the rest, in order.
        let mut next = 0u16;
        let mut buf = [0; 2000];
        while next < 500 {
            while let Ok(n) = b.recv(&mut buf) {
                assert_eq!(&buf[..n], next.to_be_bytes().repeat(500).as_slice());
                next += 1;
            }
            q.flush(a.as_raw_fd());
        }
        assert!(q.is_empty());
    }

    #[test]
    fn a_refused_send_drops_that_datagram_and_goes_on() {
        let (a, b) = pair();
        // Connected to a port with nobody behind it: the first send draws an ICMP error
        // that the next send reports.
        let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dead = gone.local_addr().unwrap();
        drop(gone);
        a.connect(dead).unwrap();
        let mut q = SendQueue::<SocketAddr>::new(false);
        assert!(q.push(b"one", None));
        assert_eq!(q.flush(a.as_raw_fd()).sent, 1);
        assert!(q.push(b"two", None));
        assert!(q.push(b"three", None));
        let f = q.flush(a.as_raw_fd());
        assert_eq!(f.refused, 1);
        assert_eq!(f.sent, 1);
        assert!(q.is_empty());
        drop(b);
    }
}

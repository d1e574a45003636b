//! The write buffer every transport shares (Twisted's `FileDescriptor` buffer): a queue of
//! owned chunks sent with vectored writes, with the water marks that drive flow control.
//!
//! Invariants:
//! - The chunk being sent is `front` (inline: a connection that never has more than one chunk
//!   never allocates the queue); `front[..head]` is already sent. Later chunks wait in `rest`,
//!   which is empty whenever `front` has nothing unsent.
//! - `len` is the number of unsent bytes: `front.len() - head` plus the lengths in `rest`.
//! - Small writes join the tail chunk while it stays under `COALESCE` bytes, so a hundred
//!   small writes in one turn leave in one `send` of one buffer (one TCP segment). Past that a
//!   write gets a chunk of its own, so sending part of it never moves the rest in memory.
//! - `front` keeps its allocation when drained, so a connection that writes and drains every
//!   turn (an echo) allocates nothing per turn.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

/// asyncio's default: a streaming producer is paused (and, with read back-pressure, reading
/// stops) while more than this is buffered.
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// See [`DEFAULT_HIGH_WATER`]: resume at or below this.
pub const DEFAULT_LOW_WATER: usize = 16 * 1024;

/// Small writes are appended to the tail chunk while it stays at most this long.
const COALESCE: usize = 64 * 1024;
/// Buffers handed to one `writev` (Linux takes up to 1024; more than this is rarely waiting).
const MAX_IOV: usize = 64;
/// A spare allocation larger than this is not kept for an idle connection.
const SPARE_MAX: usize = 4 * DEFAULT_HIGH_WATER;

/// A queue of unsent bytes with high and low water marks.
#[derive(Debug)]
pub(crate) struct WriteBuffer {
    front: Vec<u8>,
    head: usize,
    rest: VecDeque<Vec<u8>>,
    len: usize,
    high: usize,
    low: usize,
}

impl Default for WriteBuffer {
    fn default() -> Self {
        WriteBuffer {
            front: Vec::new(),
            head: 0,
            rest: VecDeque::new(),
            len: 0,
            high: DEFAULT_HIGH_WATER,
            low: DEFAULT_LOW_WATER,
        }
    }
}

impl WriteBuffer {
    /// Unsent bytes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the water marks (`low` is capped at `high`).
    pub(crate) fn set_limits(&mut self, high: usize, low: usize) {
        self.high = high;
        self.low = low.min(high);
    }

    /// More than the high-water mark is buffered.
    #[inline]
    pub(crate) fn above_high(&self) -> bool {
        self.len > self.high
    }

    /// At most the low-water mark is buffered.
    #[inline]
    pub(crate) fn at_or_below_low(&self) -> bool {
        self.len <= self.low
    }

    /// Appends a copy of `data`.
    #[inline]
    pub(crate) fn push(&mut self, data: &[u8]) {
        // The hot path (an echo, a line protocol): everything fits in the front chunk. A
        // drained buffer always has an empty `front` and `head == 0`.
        if self.rest.is_empty() && self.front.len() + data.len() <= COALESCE {
            self.front.extend_from_slice(data);
            self.len += data.len();
        } else {
            self.push_slow(data);
        }
    }

    #[cold]
    fn push_slow(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        let tail = self.rest.back_mut().unwrap_or(&mut self.front);
        if tail.is_empty() || tail.len() + data.len() <= COALESCE {
            tail.extend_from_slice(data);
        } else {
            self.rest.push_back(data.to_vec());
        }
    }

    /// Appends an owned chunk without copying it (unless it is small enough to coalesce).
    pub(crate) fn push_owned(&mut self, data: Vec<u8>) {
        if data.len() <= COALESCE / 4 {
            return self.push(&data);
        }
        if self.len == 0 {
            self.front = data;
            self.head = 0;
            self.len = self.front.len();
        } else {
            self.len += data.len();
            self.rest.push_back(data);
        }
    }

    /// Hands the unsent bytes (up to `MAX_IOV` chunks) to `write` once and drops what it took.
    /// Returns what `write` returned and how many bytes it was offered: a write shorter than
    /// that means the kernel's buffer is full, while one that took everything offered may
    /// still leave chunks past the `MAX_IOV` first ones.
    #[inline]
    pub(crate) fn send_with(
        &mut self,
        write: impl FnOnce(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<(usize, usize)> {
        let (n, offered) = if self.rest.is_empty() {
            // The common case (small writes coalesce): one buffer, no array of slices.
            (write(&[IoSlice::new(&self.front[self.head..])])?, self.len)
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            slices[0] = IoSlice::new(&self.front[self.head..]);
            let mut offered = slices[0].len();
            let mut count = 1;
            for c in self.rest.iter().take(MAX_IOV - 1) {
                slices[count] = IoSlice::new(c);
                offered += c.len();
                count += 1;
            }
            (write(&slices[..count])?, offered)
        };
        self.consume(n);
        Ok((n, offered))
    }

    /// Drops the first `n` unsent bytes (they were sent).
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        if n >= self.len && self.rest.is_empty() {
            // Everything went (the common case): keep the allocation for the next write.
            self.front.clear();
            self.head = 0;
            self.len = 0;
            if self.front.capacity() > SPARE_MAX {
                self.front.shrink_to(DEFAULT_HIGH_WATER);
            }
            return;
        }
        self.consume_slow(n);
    }

    fn consume_slow(&mut self, n: usize) {
        let mut n = n.min(self.len);
        self.len -= n;
        loop {
            let left = self.front.len() - self.head;
            if n < left {
                self.head += n;
                return;
            }
            n -= left;
            match self.rest.pop_front() {
                Some(next) => {
                    self.front = next;
                    self.head = 0;
                }
                None => {
                    self.front.clear();
                    self.head = 0;
                    // Don't keep a huge allocation for an idle connection.
                    if self.front.capacity() > SPARE_MAX {
                        self.front.shrink_to(DEFAULT_HIGH_WATER);
                    }
                    return;
                }
            }
        }
    }

    /// Drops everything unsent.
    pub(crate) fn clear(&mut self) {
        self.front.clear();
        self.rest.clear();
        self.head = 0;
        self.len = 0;
    }

    /// Frees every allocation (a closed connection).
    pub(crate) fn release(&mut self) {
        self.front = Vec::new();
        self.rest = VecDeque::new();
        self.head = 0;
        self.len = 0;
    }

    /// A copy of every unsent byte.
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        out.extend_from_slice(&self.front[self.head..]);
        for c in &self.rest {
            out.extend_from_slice(c);
        }
        out
    }

    /// Takes every unsent byte out as one vector (the in-memory transports deliver it).
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        let out = self.to_vec();
        self.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_chunks_than_one_writev_takes() {
        let mut b = WriteBuffer::default();
        for _ in 0..(MAX_IOV + 10) {
            b.push_owned(vec![1; COALESCE]);
        }
        let (n, offered) = b
            .send_with(|s| Ok(s.iter().map(|s| s.len()).sum()))
            .unwrap();
        assert_eq!((n, offered), (MAX_IOV * COALESCE, MAX_IOV * COALESCE));
        assert_eq!(b.len(), 10 * COALESCE, "the rest waits for the next call");
    }

    fn collect(b: &mut WriteBuffer, max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        b.send_with(|slices| {
            for s in slices {
                let room = max - out.len();
                let take = s.len().min(room);
                out.extend_from_slice(&s[..take]);
                if take < s.len() {
                    break;
                }
            }
            Ok(out.len())
        })
        .unwrap();
        out
    }

    #[test]
    fn small_writes_coalesce_into_one_chunk() {
        let mut b = WriteBuffer::default();
        for _ in 0..100 {
            b.push(b"0123456789");
        }
        assert!(b.rest.is_empty());
        assert_eq!(b.len(), 1000);
    }

    #[test]
    fn large_write_gets_its_own_chunk_and_partial_sends_keep_order() {
        let mut b = WriteBuffer::default();
        b.push(b"head");
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        b.push(&big);
        b.push(b"tail");
        assert_eq!(b.rest.len(), 2, "head, then the big write, then the tail");
        let mut all = Vec::new();
        while !b.is_empty() {
            all.extend(collect(&mut b, 7_777));
        }
        let mut want = b"head".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"tail");
        assert_eq!(all, want);
        assert_eq!(b.head, 0);
    }

    #[test]
    fn water_marks() {
        let mut b = WriteBuffer::default();
        b.set_limits(10, 20);
        assert_eq!(b.low, 10, "low is capped at high");
        b.push(&[0; 11]);
        assert!(b.above_high());
        b.consume(1);
        assert!(!b.above_high());
        assert!(b.at_or_below_low());
    }

    #[test]
    fn owned_and_take_all() {
        let mut b = WriteBuffer::default();
        b.push(b"ab");
        b.push_owned(vec![7; 40_000]);
        b.consume(1);
        let all = b.take_all();
        assert_eq!(all.len(), 1 + 40_000);
        assert_eq!(all[0], b'b');
        assert!(b.is_empty());
    }
}

//! The write buffer every transport shares (Twisted's `FileDescriptor` buffer): a queue of
//! owned chunks sent with vectored writes, with the water marks that drive flow control.
//!
//! Invariants:
//! - `len` is the number of unsent bytes: the sum of the chunks' lengths less `head`, the part
//!   of the front chunk already sent. An empty queue has `head == 0`.
//! - Small writes join the tail chunk while it stays under [`COALESCE`] bytes, so a hundred
//!   small writes in one turn leave in one `writev` of one buffer (one TCP segment). A large
//!   write gets a chunk of its own, so sending part of it never moves the rest in memory.
//! - The allocation of the last chunk sent is kept as a spare for the next write, so a
//!   connection that writes and drains every turn (an echo) allocates nothing per turn.

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
    chunks: VecDeque<Vec<u8>>,
    head: usize,
    len: usize,
    spare: Vec<u8>,
    high: usize,
    low: usize,
}

impl Default for WriteBuffer {
    fn default() -> Self {
        WriteBuffer {
            chunks: VecDeque::new(),
            head: 0,
            len: 0,
            spare: Vec::new(),
            high: DEFAULT_HIGH_WATER,
            low: DEFAULT_LOW_WATER,
        }
    }
}

impl WriteBuffer {
    /// Unsent bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the water marks (`low` is capped at `high`).
    pub(crate) fn set_limits(&mut self, high: usize, low: usize) {
        self.high = high;
        self.low = low.min(high);
    }

    /// More than the high-water mark is buffered.
    pub(crate) fn above_high(&self) -> bool {
        self.len > self.high
    }

    /// At most the low-water mark is buffered.
    pub(crate) fn at_or_below_low(&self) -> bool {
        self.len <= self.low
    }

    /// Appends a copy of `data`.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        if let Some(tail) = self.chunks.back_mut()
            && tail.len() + data.len() <= COALESCE
        {
            tail.extend_from_slice(data);
            return;
        }
        let mut chunk = if data.len() <= COALESCE {
            std::mem::take(&mut self.spare)
        } else {
            Vec::new()
        };
        chunk.extend_from_slice(data);
        self.chunks.push_back(chunk);
    }

    /// Appends an owned chunk without copying it (unless it is small enough to coalesce).
    pub(crate) fn push_owned(&mut self, data: Vec<u8>) {
        if data.len() <= COALESCE / 4 {
            return self.push(&data);
        }
        self.len += data.len();
        self.chunks.push_back(data);
    }

    /// Hands the unsent bytes (up to `MAX_IOV` chunks) to `write` once and drops what it took.
    /// Returns what `write` returned and how many bytes it was offered: a write shorter than
    /// that means the kernel's buffer is full, while one that took everything offered may
    /// still leave chunks past the `MAX_IOV` first ones.
    pub(crate) fn send_with(
        &mut self,
        write: impl FnOnce(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<(usize, usize)> {
        let (n, offered) = if self.chunks.len() == 1 {
            // The common case (small writes coalesce): no array of slices to fill.
            (
                write(&[IoSlice::new(&self.chunks[0][self.head..])])?,
                self.len,
            )
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            let mut offered = 0;
            for (i, c) in self.chunks.iter().take(MAX_IOV).enumerate() {
                let start = if i == 0 { self.head } else { 0 };
                slices[i] = IoSlice::new(&c[start..]);
                offered += c.len() - start;
                count += 1;
            }
            (write(&slices[..count])?, offered)
        };
        self.consume(n);
        Ok((n, offered))
    }

    /// Drops the first `n` unsent bytes (they were sent).
    pub(crate) fn consume(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.len() - self.head;
            if n < left {
                self.head += n;
                return;
            }
            n -= left;
            self.head = 0;
            if let Some(done) = self.chunks.pop_front() {
                self.keep_spare(done);
            }
        }
        if self.chunks.front().is_some_and(|f| f.len() == self.head) {
            self.head = 0;
            if let Some(done) = self.chunks.pop_front() {
                self.keep_spare(done);
            }
        }
    }

    fn keep_spare(&mut self, mut done: Vec<u8>) {
        if done.capacity() <= SPARE_MAX && done.capacity() > self.spare.capacity() {
            done.clear();
            self.spare = done;
        }
    }

    /// Drops everything unsent.
    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.head = 0;
        self.len = 0;
    }

    /// Frees every allocation (a closed connection).
    pub(crate) fn release(&mut self) {
        self.clear();
        self.spare = Vec::new();
    }

    /// A copy of every unsent byte.
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for (i, c) in self.chunks.iter().enumerate() {
            let start = if i == 0 { self.head } else { 0 };
            out.extend_from_slice(&c[start..]);
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
        assert_eq!(b.chunks.len(), 1);
        assert_eq!(b.len(), 1000);
    }

    #[test]
    fn large_write_gets_its_own_chunk_and_partial_sends_keep_order() {
        let mut b = WriteBuffer::default();
        b.push(b"head");
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        b.push(&big);
        b.push(b"tail");
        assert_eq!(b.chunks.len(), 3);
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

//! Bytes waiting for one destination connection, with the memory they really hold.
//!
//! A chunk libzmq hands us of 33 bytes or more is a view into its ~8 KiB decoder buffer, so a
//! queued chunk is charged at least that much. Small chunks that must wait are copied and
//! coalesced instead, which releases the decoder buffer and makes later sends bigger.

use std::collections::VecDeque;

/// What libzmq pins for a received chunk of 33 bytes or more (its `in_batch_size`).
pub(crate) const PINNED_BUFFER: usize = 8192;
/// libzmq keeps messages up to this size inline (VSM); they pin nothing.
const INLINE_MAX: usize = 33;
/// Chunks below this size are copied when they cannot be sent at once.
const COPY_BELOW: usize = 4096;
/// Copied chunks grow up to this size before a new one starts.
const COALESCE_MAX: usize = 8192;

/// One unit of bytes to send: either a received message moved as is, or owned bytes.
pub enum Chunk<P> {
    Held(P),
    Copied(Vec<u8>),
}

struct Entry<P> {
    chunk: Chunk<P>,
    len: usize,
    charge: usize,
}

pub struct OutQueue<P> {
    entries: VecDeque<Entry<P>>,
    payload: usize,
    charge: usize,
}

impl<P> Default for OutQueue<P> {
    fn default() -> Self {
        OutQueue {
            entries: VecDeque::new(),
            payload: 0,
            charge: 0,
        }
    }
}

fn held_charge(len: usize) -> usize {
    if len < INLINE_MAX {
        len
    } else {
        len.max(PINNED_BUFFER)
    }
}

impl<P: AsRef<[u8]>> OutQueue<P> {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the queued bytes, in order, to `out`.
    pub fn copy_to(&self, out: &mut Vec<u8>) {
        for e in &self.entries {
            match &e.chunk {
                Chunk::Held(p) => out.extend_from_slice(p.as_ref()),
                Chunk::Copied(b) => out.extend_from_slice(b),
            }
        }
    }

    /// Payload bytes queued.
    pub fn payload(&self) -> usize {
        self.payload
    }

    /// Memory held by the queued bytes, counting what they pin inside libzmq.
    pub fn charge(&self) -> usize {
        self.charge
    }

    /// Queues a received chunk. `keep_long` says it will wait for an unknown time (no
    /// partner yet), so it is always copied.
    pub fn push(&mut self, data: P, keep_long: bool) {
        let len = data.as_ref().len();
        if len == 0 {
            return;
        }
        self.payload += len;
        let copy = keep_long || (!self.entries.is_empty() && len < COPY_BELOW);
        if !copy {
            let charge = held_charge(len);
            self.charge += charge;
            self.entries.push_back(Entry {
                chunk: Chunk::Held(data),
                len,
                charge,
            });
            return;
        }
        if let Some(last) = self.entries.back_mut() {
            if let Chunk::Copied(buf) = &mut last.chunk {
                if buf.len() + len <= COALESCE_MAX {
                    buf.extend_from_slice(data.as_ref());
                    last.len += len;
                    self.charge = self.charge - last.charge + buf.capacity();
                    last.charge = buf.capacity();
                    return;
                }
            }
        }
        let buf = data.as_ref().to_vec();
        let charge = buf.capacity();
        self.charge += charge;
        self.entries.push_back(Entry {
            chunk: Chunk::Copied(buf),
            len,
            charge,
        });
    }

    /// Queues bytes the proxy made itself (or already copied).
    pub fn push_owned(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        let len = bytes.len();
        let charge = bytes.capacity();
        self.payload += len;
        self.charge += charge;
        self.entries.push_back(Entry {
            chunk: Chunk::Copied(bytes),
            len,
            charge,
        });
    }

    /// Moves everything from `other` to the end of this queue, in order.
    pub fn append(&mut self, other: &mut OutQueue<P>) {
        self.payload += other.payload;
        self.charge += other.charge;
        self.entries.append(&mut other.entries);
        other.payload = 0;
        other.charge = 0;
    }

    pub fn front_mut(&mut self) -> Option<&mut Chunk<P>> {
        self.entries.front_mut().map(|e| &mut e.chunk)
    }

    /// Removes the front chunk after it was handed to libzmq; returns its payload length.
    pub fn pop_sent(&mut self) -> usize {
        match self.entries.pop_front() {
            Some(e) => {
                self.payload -= e.len;
                self.charge -= e.charge;
                e.len
            }
            None => 0,
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.payload = 0;
        self.charge = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(q: &mut OutQueue<Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(c) = q.front_mut() {
            match c {
                Chunk::Held(v) => out.extend_from_slice(v),
                Chunk::Copied(v) => out.extend_from_slice(v),
            }
            q.pop_sent();
        }
        out
    }

    #[test]
    fn first_chunk_is_held_and_later_small_ones_coalesce_in_order() {
        let mut q = OutQueue::default();
        q.push(vec![1u8; 100], false);
        q.push(vec![2u8; 10], false);
        q.push(vec![3u8; 10], false);
        assert_eq!(q.entries.len(), 2);
        assert!(matches!(q.entries[0].chunk, Chunk::Held(_)));
        assert_eq!(q.payload(), 120);
        assert!(q.charge() >= PINNED_BUFFER + 20);
        let all = bytes(&mut q);
        assert_eq!(all.len(), 120);
        assert_eq!(&all[100..110], &[2u8; 10]);
        assert_eq!(q.payload(), 0);
        assert_eq!(q.charge(), 0);
    }

    #[test]
    fn kept_chunks_are_always_copied() {
        let mut q = OutQueue::default();
        q.push(vec![9u8; 10], true);
        assert!(matches!(q.entries[0].chunk, Chunk::Copied(_)));
        assert!(q.charge() < 64);
    }

    #[test]
    fn append_keeps_order_and_accounting() {
        let mut a = OutQueue::default();
        let mut b = OutQueue::default();
        a.push(vec![1u8; 5], true);
        b.push(vec![2u8; 5000], false);
        b.push(vec![3u8; 5], false);
        a.append(&mut b);
        assert!(b.is_empty());
        assert_eq!(b.charge(), 0);
        assert_eq!(a.payload(), 5010);
        let all = bytes(&mut a);
        assert_eq!(&all[..5], &[1u8; 5]);
        assert_eq!(&all[5005..], &[3u8; 5]);
    }
}

//! One direction's bytes in flight: a linear buffer read into at its end and written from its
//! start, taken from a small pool while bytes are in flight and given back when the direction
//! goes quiet, so an idle pair holds no buffer at all.

/// Bytes between a read from one connection and a write to the other.
#[derive(Default)]
pub struct Buffer {
    mem: Option<Vec<u8>>,
    start: usize,
    end: usize,
}

impl Buffer {
    /// A buffer holding `bytes` already (what the proxy owes a peer at handover).
    pub fn with_bytes(bytes: Vec<u8>) -> Buffer {
        if bytes.is_empty() {
            return Buffer::default();
        }
        let end = bytes.len();
        Buffer {
            mem: Some(bytes),
            start: 0,
            end,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Memory held, whether or not it holds bytes.
    pub fn capacity(&self) -> usize {
        self.mem.as_ref().map_or(0, |m| m.len())
    }

    pub fn data(&self) -> &[u8] {
        match &self.mem {
            Some(m) => &m[self.start..self.end],
            None => &[],
        }
    }

    /// Whether a read has room (a buffer not yet taken from the pool has).
    pub fn has_room(&self) -> bool {
        match &self.mem {
            None => true,
            Some(m) => self.end < m.len() || self.start > 0,
        }
    }

    /// Room to read into, taking memory from `pool` if none is held.
    pub fn spare(&mut self, pool: &mut Pool) -> &mut [u8] {
        let mem = self.mem.get_or_insert_with(|| pool.take());
        if self.end == mem.len() && self.start > 0 {
            // Writes lag: move what is left to the front so reads can go on.
            mem.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut mem[self.end..]
    }

    /// `n` bytes were read into [`Buffer::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end += n;
        debug_assert!(self.end <= self.capacity());
    }

    /// `n` bytes of [`Buffer::data`] were written.
    pub fn consumed(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Gives the memory back to `pool` when nothing is in it.
    pub fn release(&mut self, pool: &mut Pool) {
        if self.is_empty() {
            if let Some(mem) = self.mem.take() {
                pool.give(mem);
            }
        }
    }
}

/// Buffers of one size, kept for reuse: a busy relay does not allocate per burst, and an
/// idle one holds at most `keep` of them.
pub struct Pool {
    size: usize,
    keep: usize,
    free: Vec<Vec<u8>>,
}

impl Pool {
    pub fn new(size: usize, keep: usize) -> Pool {
        Pool {
            size,
            keep,
            free: Vec::new(),
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| vec![0; self.size])
    }

    fn give(&mut self, mem: Vec<u8>) {
        // A handover buffer of another size is not kept.
        if mem.len() == self.size && self.free.len() < self.keep {
            self.free.push(mem);
        }
    }

    /// Memory the pool holds.
    pub fn held(&self) -> usize {
        self.free.len() * self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_keep_order_and_compact_when_full() {
        let mut pool = Pool::new(8, 4);
        let mut b = Buffer::default();
        assert!(b.has_room());
        let s = b.spare(&mut pool);
        assert_eq!(s.len(), 8);
        s[..8].copy_from_slice(b"abcdefgh");
        b.filled(8);
        assert!(!b.has_room());
        b.consumed(3);
        assert_eq!(b.data(), b"defgh");
        assert!(b.has_room());
        let s = b.spare(&mut pool);
        assert_eq!(s.len(), 3);
        s.copy_from_slice(b"ijk");
        b.filled(3);
        assert_eq!(b.data(), b"defghijk");
        b.consumed(8);
        assert!(b.is_empty());
        b.release(&mut pool);
        assert_eq!(b.capacity(), 0);
        assert_eq!(pool.held(), 8);
    }

    #[test]
    fn handover_bytes_come_first_and_their_buffer_is_not_pooled() {
        let mut pool = Pool::new(4, 4);
        let mut b = Buffer::with_bytes(b"greeting".to_vec());
        assert_eq!(b.data(), b"greeting");
        assert!(!b.has_room());
        b.consumed(8);
        b.release(&mut pool);
        assert_eq!(pool.held(), 0);
        assert_eq!(b.capacity(), 0);
    }

    #[test]
    fn a_buffer_with_bytes_is_not_released() {
        let mut pool = Pool::new(4, 4);
        let mut b = Buffer::default();
        b.spare(&mut pool)[0] = 1;
        b.filled(1);
        b.release(&mut pool);
        assert_eq!(b.data(), &[1]);
        assert_eq!(pool.held(), 0);
    }
}

//! The soak's request: who sent it, in which session, its sequence number, random bytes and a
//! checksum over all of that, so a worker and a client can each tell a whole request from a
//! damaged one and a client can tell its own reply from someone else's.
//!
//! Layout (little-endian): client u32, session u32, sequence u64, body length u32, body,
//! FNV-1a 64 of everything before it (u64).

/// FNV-1a, 64 bits: enough to catch a flipped, missing or foreign byte; not a MAC.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

const HEADER: usize = 4 + 4 + 8 + 4;
const TRAILER: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    pub client: u32,
    pub session: u32,
    pub sequence: u64,
}

/// A request of `tag` carrying `body`.
pub fn encode(tag: Tag, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len() + TRAILER);
    out.extend_from_slice(&tag.client.to_le_bytes());
    out.extend_from_slice(&tag.session.to_le_bytes());
    out.extend_from_slice(&tag.sequence.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    let sum = fnv1a64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The tag of an intact request, or None when its length or checksum is wrong.
pub fn decode(bytes: &[u8]) -> Option<Tag> {
    if bytes.len() < HEADER + TRAILER {
        return None;
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let body_len = word(16) as usize;
    if bytes.len() != HEADER + body_len + TRAILER {
        return None;
    }
    let (data, sum) = bytes.split_at(HEADER + body_len);
    if fnv1a64(data) != u64::from_le_bytes(sum.try_into().unwrap()) {
        return None;
    }
    Some(Tag {
        client: word(0),
        session: word(4),
        sequence: u64::from_le_bytes(bytes[8..16].try_into().unwrap()),
    })
}

/// A small xorshift generator: the soak needs varied lengths and bytes, not good randomness.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_decodes_to_its_tag() {
        let tag = Tag {
            client: 7,
            session: 3,
            sequence: 99,
        };
        let bytes = encode(tag, b"some random bytes");
        assert_eq!(decode(&bytes), Some(tag));
        assert_eq!(decode(&encode(tag, b"")), Some(tag));
    }

    #[test]
    fn any_flipped_or_missing_byte_is_caught() {
        let tag = Tag {
            client: 1,
            session: 2,
            sequence: 3,
        };
        let bytes = encode(tag, &[0x55; 40]);
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert_eq!(decode(&bad), None, "flip at {at}");
        }
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode(&bytes[1..]), None);
    }
}

//! ZMQ_STREAM routing ids, stored inline when short (libzmq's own are 5 bytes) so that
//! naming the destination of every relayed chunk costs no allocation.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

const INLINE: usize = 22;

#[derive(Clone)]
pub enum RoutingId {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<[u8]>),
}

impl RoutingId {
    pub fn new(id: &[u8]) -> RoutingId {
        if id.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..id.len()].copy_from_slice(id);
            RoutingId::Inline {
                len: id.len() as u8,
                bytes,
            }
        } else {
            RoutingId::Shared(Arc::from(id))
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            RoutingId::Inline { len, bytes } => &bytes[..*len as usize],
            RoutingId::Shared(b) => b,
        }
    }
}

impl PartialEq for RoutingId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for RoutingId {}

impl Hash for RoutingId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly like `[u8]` so that `Borrow<[u8]>` lookups work.
        self.as_bytes().hash(state)
    }
}

impl Borrow<[u8]> for RoutingId {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for RoutingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustc_hash::FxHashMap;

    #[test]
    fn lookups_by_slice_find_inline_and_shared_ids() {
        let long = [7u8; 40];
        let mut map = FxHashMap::default();
        map.insert(RoutingId::new(&[0, 0, 0, 0, 1]), 1);
        map.insert(RoutingId::new(&long), 2);
        assert_eq!(map.get(&[0u8, 0, 0, 0, 1][..]), Some(&1));
        assert_eq!(map.get(&long[..]), Some(&2));
        assert_eq!(map.get(&[0u8, 0, 0, 0, 2][..]), None);
    }
}

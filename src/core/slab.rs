//! A generational slab: connection records addressed by small copyable keys that go stale
//! when the record is removed, so a timer or queue entry can never reach a newer connection
//! that reused the slot.

/// Key of a live or departed slab entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// The key as one number (for the relay, which names pairs by their client's key).
    pub fn tag(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    pub fn from_tag(tag: u64) -> Key {
        Key {
            index: tag as u32,
            generation: (tag >> 32) as u32,
        }
    }
}

enum Slot<T> {
    Used {
        generation: u32,
        value: T,
    },
    Free {
        generation: u32,
        next_free: Option<u32>,
    },
}

pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free_head: Option<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free_head: None,
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if let Some(index) = self.free_head {
            let slot = &mut self.slots[index as usize];
            let (generation, next_free) = match *slot {
                Slot::Free {
                    generation,
                    next_free,
                } => (generation, next_free),
                Slot::Used { .. } => unreachable!("free list points at a used slot"),
            };
            self.free_head = next_free;
            *slot = Slot::Used { generation, value };
            Key { index, generation }
        } else {
            let index = u32::try_from(self.slots.len()).expect("more than 2^32 connections");
            self.slots.push(Slot::Used {
                generation: 0,
                value,
            });
            Key {
                index,
                generation: 0,
            }
        }
    }

    pub fn get(&self, key: Key) -> Option<&T> {
        match self.slots.get(key.index as usize) {
            Some(Slot::Used { generation, value }) if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slots.get_mut(key.index as usize) {
            Some(Slot::Used { generation, value }) if *generation == key.generation => Some(value),
            _ => None,
        }
    }

    pub fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        match slot {
            Slot::Used { generation, .. } if *generation == key.generation => {}
            _ => return None,
        }
        let old = std::mem::replace(
            slot,
            Slot::Free {
                generation: key.generation.wrapping_add(1),
                next_free: self.free_head,
            },
        );
        self.free_head = Some(key.index);
        self.len -= 1;
        match old {
            Slot::Used { value, .. } => Some(value),
            Slot::Free { .. } => unreachable!(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| match s {
            Slot::Used { generation, value } => Some((
                Key {
                    index: i as u32,
                    generation: *generation,
                },
                value,
            )),
            Slot::Free { .. } => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_do_not_reach_new_entries() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b");
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.len(), 1);
    }
}

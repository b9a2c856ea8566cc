//! Dial-in's idle worker connections, grouped by the worker's IP address, with the pairs each
//! address serves: a client gets a connection of the address serving the fewest pairs, and a
//! random one among equals.
//!
//! An address is the most the proxy can tell about which connections belong to one worker:
//! a worker process opens several connections, and nothing in ZMTP names the process. So
//! workers that connect from distinct addresses share clients evenly; workers on one address
//! share them at random (each connection of the address is as likely as any other), which
//! spreads them in proportion to the connections each has idle. The oldest idle connection
//! is not preferred: the connections of the worker that connected first would all come first.

use std::net::IpAddr;

use rustc_hash::FxHashMap;

use super::rng::Rng;
use super::Key;
use crate::zmtp::Mechanism;

/// A worker's address as pooled: `None` when the proxy does not know it (no TCP peer).
pub(super) type Addr = Option<IpAddr>;

#[derive(Default)]
struct Bucket {
    /// Pairs (on the libzmq relay or taken over) whose worker connection came from here.
    open: u32,
    /// Idle connections per mechanism, in no order that matters.
    idle: [Vec<Key>; 4],
}

impl Bucket {
    fn unused(&self) -> bool {
        self.open == 0 && self.idle.iter().all(Vec::is_empty)
    }
}

/// Where an idle connection sits, so it leaves in O(1).
#[derive(Clone, Copy)]
struct Slot {
    addr: Addr,
    mechanism: Mechanism,
    index: usize,
}

pub(super) struct IdlePool {
    buckets: FxHashMap<Addr, Bucket>,
    slots: FxHashMap<Key, Slot>,
    /// Worker connections of open pairs, with the address they are counted under.
    paired: FxHashMap<Key, Addr>,
    rng: Rng,
}

impl IdlePool {
    pub(super) fn new(seed: u64) -> IdlePool {
        IdlePool {
            buckets: FxHashMap::default(),
            slots: FxHashMap::default(),
            paired: FxHashMap::default(),
            rng: Rng::new(seed),
        }
    }

    /// Idle connections in the pool, all mechanisms.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn insert(&mut self, key: Key, mechanism: Mechanism, addr: Addr) {
        debug_assert!(!self.slots.contains_key(&key));
        let idle = &mut self.buckets.entry(addr).or_default().idle[mechanism.index()];
        let index = idle.len();
        idle.push(key);
        let slot = Slot {
            addr,
            mechanism,
            index,
        };
        self.slots.insert(key, slot);
    }

    /// Takes `key` out of the pool, if it is in it.
    pub(super) fn remove(&mut self, key: Key) {
        let Some(slot) = self.slots.remove(&key) else {
            return;
        };
        let bucket = self
            .buckets
            .get_mut(&slot.addr)
            .expect("slot names a bucket");
        let idle = &mut bucket.idle[slot.mechanism.index()];
        idle.swap_remove(slot.index);
        if let Some(&moved) = idle.get(slot.index) {
            self.slots.get_mut(&moved).expect("pooled").index = slot.index;
        }
        self.forget_if_unused(slot.addr);
    }

    /// Drops the record of `addr` once it holds neither idle connections nor pairs.
    fn forget_if_unused(&mut self, addr: Addr) {
        if self.buckets.get(&addr).is_some_and(Bucket::unused) {
            self.buckets.remove(&addr);
        }
    }

    /// An idle connection of `mechanism` from the address serving the fewest pairs (a random
    /// one of those addresses when several tie), itself chosen at random there; it leaves
    /// the pool. O(addresses).
    pub(super) fn take(&mut self, mechanism: Mechanism) -> Option<Key> {
        let m = mechanism.index();
        let mut best: Option<(u32, Addr)> = None;
        let mut ties = 0u64;
        for (addr, bucket) in &self.buckets {
            if bucket.idle[m].is_empty() {
                continue;
            }
            match best {
                Some((open, _)) if bucket.open > open => continue,
                Some((open, _)) if bucket.open == open => {
                    // Reservoir sampling: each of the tied addresses is kept with equal odds.
                    ties += 1;
                    if self.rng.below(ties) == 0 {
                        best = Some((open, *addr));
                    }
                }
                _ => {
                    best = Some((bucket.open, *addr));
                    ties = 1;
                }
            }
        }
        let (_, addr) = best?;
        let idle = &self.buckets[&addr].idle[m];
        let key = idle[self.rng.below(idle.len() as u64) as usize];
        self.remove(key);
        Some(key)
    }

    /// The worker connection `key`, from `addr`, now serves a pair.
    pub(super) fn pair_opened(&mut self, key: Key, addr: Addr) {
        self.buckets.entry(addr).or_default().open += 1;
        self.paired.insert(key, addr);
    }

    /// The pair of worker connection `key` ended (nothing happens for a connection not
    /// counted by [`IdlePool::pair_opened`], such as a dialed one).
    pub(super) fn pair_closed(&mut self, key: Key) {
        let Some(addr) = self.paired.remove(&key) else {
            return;
        };
        let bucket = self.buckets.get_mut(&addr);
        bucket.expect("counted pairs keep their bucket").open -= 1;
        self.forget_if_unused(addr);
    }

    /// Open pairs counted under `addr`.
    #[cfg(test)]
    pub(super) fn open_pairs(&self, addr: Addr) -> u32 {
        self.buckets.get(&addr).map_or(0, |b| b.open)
    }

    /// Addresses the pool holds a record of (idle connections or open pairs).
    #[cfg(test)]
    pub(super) fn addresses(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::slab::Slab;

    const CURVE: Mechanism = Mechanism::Curve;

    fn ip(s: &str) -> Addr {
        Some(s.parse().unwrap())
    }

    fn keys(n: usize) -> Vec<Key> {
        let mut slab = Slab::default();
        (0..n).map(|i| slab.insert(i)).collect()
    }

    #[test]
    fn the_address_serving_fewest_pairs_goes_first() {
        let mut pool = IdlePool::new(1);
        let k = keys(16);
        // A's connections all arrive before B's: the oldest-first pool gave A every client.
        for &key in &k[..8] {
            pool.insert(key, CURVE, ip("10.0.0.1"));
        }
        for &key in &k[8..] {
            pool.insert(key, CURVE, ip("10.0.0.2"));
        }
        let mut served = [0; 2];
        for _ in 0..8 {
            let key = pool.take(CURVE).unwrap();
            let from_a = k[..8].contains(&key);
            served[usize::from(!from_a)] += 1;
            let addr = if from_a {
                ip("10.0.0.1")
            } else {
                ip("10.0.0.2")
            };
            pool.pair_opened(key, addr);
        }
        assert_eq!(served, [4, 4]);
        assert_eq!(pool.open_pairs(ip("10.0.0.1")), 4);
        assert_eq!(pool.len(), 8);
    }

    #[test]
    fn a_pair_that_ends_frees_its_address_and_the_record_goes() {
        let mut pool = IdlePool::new(2);
        let k = keys(3);
        pool.insert(k[0], CURVE, ip("10.0.0.1"));
        pool.insert(k[1], CURVE, ip("10.0.0.2"));
        pool.insert(k[2], CURVE, ip("10.0.0.2"));
        // A serves 1 pair, B 2 (one taken over, one on the libzmq relay: both count).
        let a = pool.take(CURVE).unwrap();
        let a_addr = if a == k[0] {
            ip("10.0.0.1")
        } else {
            ip("10.0.0.2")
        };
        pool.pair_opened(a, a_addr);
        let other = if a_addr == ip("10.0.0.1") {
            ip("10.0.0.2")
        } else {
            ip("10.0.0.1")
        };
        let b = pool.take(CURVE).unwrap();
        pool.pair_opened(b, other);
        // Both addresses serve one pair: the last connection goes either way.
        let c = pool.take(CURVE).unwrap();
        pool.pair_opened(c, ip("10.0.0.2"));
        assert_eq!(pool.take(CURVE), None);
        for key in [a, b, c] {
            pool.pair_closed(key);
        }
        pool.pair_closed(c); // a second report changes nothing
        assert_eq!(pool.addresses(), 0);
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn mechanisms_are_pooled_apart_and_removal_keeps_the_others() {
        let mut pool = IdlePool::new(3);
        let k = keys(4);
        pool.insert(k[0], Mechanism::Null, None);
        for &key in &k[1..] {
            pool.insert(key, CURVE, None);
        }
        pool.remove(k[1]);
        pool.remove(k[1]);
        assert_eq!(pool.take(Mechanism::Plain), None);
        let mut curve = [pool.take(CURVE).unwrap(), pool.take(CURVE).unwrap()];
        curve.sort();
        assert_eq!(curve, [k[2], k[3]]);
        assert_eq!(pool.take(CURVE), None);
        assert_eq!(pool.take(Mechanism::Null), Some(k[0]));
        assert_eq!(pool.addresses(), 0);
    }

    /// Workers on one address cannot be told apart: every idle connection is as likely as
    /// any other, whatever its age. With 4 of 8 connections from the first worker, the
    /// chance that 200 draws all go to it is 2^-200.
    #[test]
    fn on_one_address_the_choice_is_random_not_the_oldest() {
        let k = keys(8);
        let mut first_is_oldest = 0;
        let mut taken = [0u32; 8];
        for seed in 0..200 {
            let mut pool = IdlePool::new(seed);
            for &key in &k {
                pool.insert(key, CURVE, ip("127.0.0.1"));
            }
            let key = pool.take(CURVE).unwrap();
            first_is_oldest += u32::from(key == k[0]);
            taken[k.iter().position(|&x| x == key).unwrap()] += 1;
        }
        assert!(
            first_is_oldest < 100,
            "oldest taken {first_is_oldest} times of 200"
        );
        let first_worker: u32 = taken[..4].iter().sum();
        assert!((40..=160).contains(&first_worker), "{taken:?}");
        assert!(taken.iter().all(|&n| n > 0), "{taken:?}");
    }

    #[test]
    fn ties_between_addresses_are_broken_at_random() {
        let k = keys(2);
        let mut first = 0;
        for seed in 0..200 {
            let mut pool = IdlePool::new(seed);
            pool.insert(k[0], CURVE, ip("10.0.0.1"));
            pool.insert(k[1], CURVE, ip("10.0.0.2"));
            first += u32::from(pool.take(CURVE) == Some(k[0]));
        }
        assert!(
            (40..=160).contains(&first),
            "first address taken {first} of 200"
        );
    }
}

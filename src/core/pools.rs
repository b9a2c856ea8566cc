//! Screened clients waiting for a worker, idle worker connections, by mechanism, and the
//! pairing of the two.

use std::collections::VecDeque;
use std::time::Instant;

use super::timers::TimerKind;
use super::{Core, Key, Slab, State, Stats};
use crate::zmtp::{self, Mechanism};

/// Queues of keys. Departed entries are left in place and skipped when met (their state no
/// longer matches), and compacted away when they dominate.
#[derive(Default)]
pub(super) struct Pools {
    /// Clients in arrival order, per mechanism.
    waiting: [VecDeque<Key>; 4],
    /// Worker connections, least recently used (idle longest) first, per mechanism.
    pub(super) idle: [VecDeque<Key>; 4],
}

/// Accounts for a connection leaving the pool its `state` puts it in, if any. Its queue entry
/// is left in place: it goes stale once the caller moves the connection on.
pub(super) fn leave_pool(state: &State, stats: &mut Stats) {
    match *state {
        State::Waiting(_) | State::Dialing { .. } => stats.clients_waiting -= 1,
        State::Idle(m) => stats.workers_idle[m.index()] -= 1,
        _ => {}
    }
}

impl Pools {
    /// The oldest client waiting with mechanism `m`.
    pub(super) fn pop_waiting<P>(
        &mut self,
        m: Mechanism,
        conns: &Slab<super::Conn<P>>,
    ) -> Option<Key> {
        Self::pop_live(&mut self.waiting[m.index()], conns, State::Waiting(m))
    }

    /// Puts a client back at the head of its queue (its dial failed or found no endpoint).
    pub(super) fn unpop_waiting(&mut self, m: Mechanism, key: Key) {
        self.waiting[m.index()].push_front(key);
    }

    fn pop_live<P>(
        queue: &mut VecDeque<Key>,
        conns: &Slab<super::Conn<P>>,
        want: State,
    ) -> Option<Key> {
        while let Some(k) = queue.pop_front() {
            if conns.get(k).is_some_and(|c| c.state == want) {
                return Some(k);
            }
        }
        None
    }

    fn compact<P>(queue: &mut VecDeque<Key>, conns: &Slab<super::Conn<P>>, live: u64) {
        if queue.len() > 64 && queue.len() as u64 > 2 * live + 32 {
            queue.retain(|k| {
                conns
                    .get(*k)
                    .is_some_and(|c| matches!(c.state, State::Waiting(_) | State::Idle(_)))
            });
        }
    }
}

impl<P: AsRef<[u8]>> Core<P> {
    /// A screened client joins the queue of its mechanism.
    pub(super) fn enter_waiting(&mut self, now: Instant, key: Key, m: Mechanism) {
        self.stats.clients_waiting += 1;
        let q = &mut self.pools.waiting[m.index()];
        q.push_back(key);
        Pools::compact(q, &self.conns, self.stats.clients_waiting);
        if let Some(t) = self.limits.wait_timeout {
            self.timers.arm(now + t, key, TimerKind::Wait);
        }
        self.try_pair(now);
    }

    /// A screened worker connection joins the idle pool of its mechanism.
    pub(super) fn enter_idle(&mut self, now: Instant, key: Key, m: Mechanism) {
        self.stats.workers_idle[m.index()] += 1;
        let q = &mut self.pools.idle[m.index()];
        q.push_back(key);
        Pools::compact(q, &self.conns, self.stats.workers_idle[m.index()]);
        if let Some(age) = self.limits.worker_max_age {
            let opened = self.conns.get(key).expect("live").opened;
            self.timers.arm(opened + age, key, TimerKind::MaxAge);
        }
        self.try_pair(now);
    }

    /// Pairs open and worker connections being made stay under ZMQ_PROXY_STREAM_MAX_PAIRS.
    pub(super) fn pair_slots_left(&self) -> bool {
        self.limits
            .max_pairs
            .is_none_or(|max| ((self.stats.pairs_open + self.dialing) as usize) < max)
    }

    /// Pairs waiting clients with idle workers of the same mechanism, oldest client with
    /// the worker connection idle longest.
    pub(super) fn try_pair(&mut self, now: Instant) {
        if self.endpoints.active() {
            return self.try_dial(now);
        }
        for m in Mechanism::ALL {
            let i = m.index();
            while self.stats.clients_waiting > 0
                && self.stats.workers_idle[i] > 0
                && self.pair_slots_left()
            {
                let Some(client) =
                    Pools::pop_live(&mut self.pools.waiting[i], &self.conns, State::Waiting(m))
                else {
                    break;
                };
                let worker = Pools::pop_live(&mut self.pools.idle[i], &self.conns, State::Idle(m))
                    .expect("idle count says a worker is idle");
                self.stats.clients_waiting -= 1;
                self.stats.workers_idle[i] -= 1;
                self.pair(now, client, worker, m);
            }
        }
    }

    /// Pairs a client with a worker connection that have left their pools.
    pub(super) fn pair(&mut self, now: Instant, client: Key, worker: Key, m: Mechanism) {
        self.stats.pairs_open += 1;
        self.stats.pairs_total += 1;
        let pair_no = self.stats.pairs_total;
        let mut first_command = {
            let c = self.conns.get_mut(client).expect("live client");
            c.state = State::Paired(worker);
            c.last_activity = now;
            c.pair_no = pair_no;
            c.paired_at = now;
            c.mechanism = Some(m);
            c.relayed = c.early.payload() as u64;
            std::mem::take(&mut c.early)
        };
        {
            let w = self.conns.get_mut(worker).expect("live worker");
            w.state = State::Paired(client);
            w.last_activity = now;
            w.watch = Some(Box::default());
            // The end of the greeting the worker has been waiting for, then the client's
            // first command: from here on the two talk to each other.
            w.out.push_owned(zmtp::greeting_rest(m, false).to_vec());
            w.out.append(&mut first_command);
        }
        self.mark_ready(worker);
        if self.limits.events {
            let c = self.conns.get(client).expect("live client");
            let w = self.conns.get(worker).expect("live worker");
            let event = super::Event::Open {
                pair: pair_no,
                client: c.peer.and_then(|p| p.addr),
                worker: self.worker_name(w),
                mechanism: m,
            };
            self.push_event(event);
        }
        if let Some(t) = self.limits.idle_timeout {
            self.timers.arm(now + t, client, TimerKind::Idle);
        }
        if let Some(t) = self.limits.probe_interval {
            self.timers.arm(now + t, client, TimerKind::Probe);
            self.timers.arm(now + t, worker, TimerKind::Probe);
        }
    }
}

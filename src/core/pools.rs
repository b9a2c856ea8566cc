//! Screened clients waiting for a worker, idle worker connections, by mechanism, and the
//! pairing of the two.

use std::collections::VecDeque;
use std::time::Instant;

use super::idle::{Addr, IdlePool};
use super::timers::TimerKind;
use super::{policy, Core, Key, PairEnd, PeerInfo, Reject, Slab, State, Stats};
use crate::relay::{RelayEnd, RelayEvent};
use crate::zmtp::{self, Mechanism};

/// A pair the driver is asked to take out of libzmq ([`Core::next_handover`]).
pub struct Handover<'a> {
    /// Names the pair to the relay and in [`Core::on_handover`].
    pub tag: u64,
    pub client_id: &'a [u8],
    pub client: PeerInfo,
    pub worker_id: &'a [u8],
    pub worker: PeerInfo,
    /// Bytes libzmq delivered from each connection so far (client's, worker's): if the
    /// kernel says more were read from it, libzmq dropped some and the pair must not be
    /// relayed.
    pub received: [u64; 2],
    /// What the worker is owed first: what the proxy queued for it and has not sent, the
    /// end of the proxy's greeting, then everything the client sent from its first
    /// handshake command on.
    pub to_worker: Vec<u8>,
    /// What the proxy queued for the client and has not sent (the end of its greeting, when
    /// the client sent greeting and first command at once).
    pub to_client: Vec<u8>,
    /// Bytes the proxy handed to libzmq for each connection (client's, worker's): they must
    /// all have left libzmq before it lets go, or its pipe would drop them.
    pub sent: [u64; 2],
    /// When the pair formed.
    pub paired_at: Instant,
}

/// How a handover went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoverOutcome {
    /// Both connections are the relay's now; libzmq was asked to let go of them.
    Taken,
    /// Nothing changed (a descriptor could not be taken or checked): relay through libzmq.
    Fallback,
    /// Not now (libzmq still holds bytes for a connection): ask again later.
    NotYet,
    /// libzmq let go of one connection but refused the other: the pair is closed.
    Broken,
}

/// Waiting clients and idle worker connections.
pub(super) struct Pools {
    /// Clients in arrival order, per mechanism. Departed entries are left in place and
    /// skipped when met (their state no longer matches), and compacted away when they
    /// dominate.
    waiting: [VecDeque<Key>; 4],
    /// Dial-in's worker connections, by address.
    pub(super) idle: IdlePool,
}

impl Pools {
    /// `seed` drives the choice among equally loaded worker connections.
    pub(super) fn new(seed: u64) -> Pools {
        Pools {
            waiting: Default::default(),
            idle: IdlePool::new(seed),
        }
    }

    /// Accounts for connection `key` leaving the pool its `state` puts it in, if any. A
    /// waiting client's queue entry is left in place: it goes stale once the caller moves
    /// the connection on.
    pub(super) fn leave(&mut self, key: Key, state: &State, stats: &mut Stats) {
        match *state {
            State::Waiting(_) | State::Dialing { .. } => stats.clients_waiting -= 1,
            State::Idle(m) => {
                stats.workers_idle[m.index()] -= 1;
                self.idle.remove(key);
            }
            _ => {}
        }
    }

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
                    .is_some_and(|c| matches!(c.state, State::Waiting(_)))
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
        let conn = self.conns.get(key).expect("live");
        let (opened, addr) = (conn.opened, Self::worker_addr(conn));
        self.pools.idle.insert(key, m, addr);
        if let Some(age) = self.limits.worker_max_age {
            self.timers.arm(opened + age, key, TimerKind::MaxAge);
        }
        self.try_pair(now);
    }

    /// The address a dial-in worker connection is pooled and counted under.
    fn worker_addr(conn: &super::Conn<P>) -> Addr {
        conn.peer
            .and_then(|p| p.addr)
            .map(|a| policy::address_key(a.ip()))
    }

    /// Pairs open and worker connections being made stay under ZMQ_PROXY_STREAM_MAX_PAIRS.
    pub(super) fn pair_slots_left(&self) -> bool {
        self.limits
            .max_pairs
            .is_none_or(|max| ((self.stats.pairs_open + self.dialing) as usize) < max)
    }

    /// Pairs waiting clients with idle workers of the same mechanism: the oldest client
    /// with a connection of the worker address serving the fewest pairs ([`IdlePool::take`]).
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
                let worker = self
                    .pools
                    .idle
                    .take(m)
                    .expect("idle count says a worker is idle");
                let w = self.conns.get(worker).expect("pooled connections are live");
                debug_assert_eq!(w.state, State::Idle(m));
                self.pools.idle.pair_opened(worker, Self::worker_addr(w));
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
        {
            let c = self.conns.get_mut(client).expect("live client");
            c.state = State::Paired(worker);
            c.last_activity = now;
            c.pair_no = pair_no;
            c.paired_at = now;
            c.mechanism = Some(m);
            c.relayed = c.early.payload() as u64;
        }
        let w = self.conns.get_mut(worker).expect("live worker");
        w.state = State::Paired(client);
        w.last_activity = now;
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
        // Both peers are silent now by protocol: the client waits for the answer to its
        // first command, the worker for the end of the proxy's greeting. The moment to take
        // their connections out of libzmq, if their descriptors are known.
        // A descriptor is only worth trying with both ends of its connection known (the
        // driver checks them on the duplicate).
        let known = |k: Key| {
            self.conns
                .get(k)
                .and_then(|c| c.peer)
                .is_some_and(|p| p.addr.is_some() && p.local.is_some())
        };
        if self.limits.takeover && known(client) && known(worker) {
            self.handovers.push_back(client);
        } else {
            self.relay_through_libzmq(now, client, worker, m);
        }
    }

    /// From here on the pair's bytes go through the STREAM sockets.
    fn relay_through_libzmq(&mut self, now: Instant, client: Key, worker: Key, m: Mechanism) {
        let mut first_command = {
            let c = self.conns.get_mut(client).expect("live client");
            std::mem::take(&mut c.early)
        };
        let w = self.conns.get_mut(worker).expect("live worker");
        w.watch = Some(Box::default());
        // The end of the greeting the worker has been waiting for, then the client's
        // first command: from here on the two talk to each other.
        w.out.push_owned(zmtp::greeting_rest(m, false).to_vec());
        w.out.append(&mut first_command);
        self.mark_ready(worker);
        if let Some(t) = self.limits.idle_timeout {
            self.timers.arm(now + t, client, TimerKind::Idle);
        }
        if let Some(t) = self.limits.probe_interval {
            self.timers.arm(now + t, client, TimerKind::Probe);
            self.timers.arm(now + t, worker, TimerKind::Probe);
        }
    }
}

impl<P: AsRef<[u8]>> Core<P> {
    /// Pairs waiting to be handed over.
    pub fn handovers_pending(&self) -> usize {
        self.handovers.len()
    }

    /// The next pair to take out of libzmq, if any. Answer with [`Core::on_handover`] before
    /// asking again.
    pub fn next_handover(&mut self) -> Option<Handover<'_>> {
        loop {
            let client = *self.handovers.front()?;
            let c = self.conns.get(client);
            let worker = match c.map(|c| c.state) {
                Some(State::Paired(w)) => w,
                _ => {
                    self.handovers.pop_front();
                    continue;
                }
            };
            let c = c.expect("checked");
            let w = self.conns.get(worker).expect("partner of a live pair");
            let m = c.mechanism.expect("set when paired");
            let mut to_worker = Vec::new();
            w.out.copy_to(&mut to_worker);
            to_worker.extend_from_slice(&zmtp::greeting_rest(m, false));
            c.early.copy_to(&mut to_worker);
            let mut to_client = Vec::new();
            c.out.copy_to(&mut to_client);
            return Some(Handover {
                tag: client.tag(),
                client_id: c.id.as_bytes(),
                client: c.peer.expect("checked when paired"),
                worker_id: w.id.as_bytes(),
                worker: w.peer.expect("checked when paired"),
                received: [c.received, w.received],
                to_worker,
                to_client,
                sent: [c.bytes_sent, w.bytes_sent],
                paired_at: c.paired_at,
            });
        }
    }

    /// How the handover of the pair `tag` went.
    pub fn on_handover(&mut self, now: Instant, tag: u64, outcome: HandoverOutcome) {
        let client = Key::from_tag(tag);
        let front = self.handovers.pop_front();
        debug_assert_eq!(front, Some(client));
        if outcome == HandoverOutcome::NotYet {
            // To the back: the others may be ready.
            self.handovers.push_back(client);
            return;
        }
        let Some(State::Paired(worker)) = self.conns.get(client).map(|c| c.state) else {
            return;
        };
        let m = self.conns.get(client).and_then(|c| c.mechanism);
        match outcome {
            HandoverOutcome::Taken => {
                self.stats.pairs_taken_over += 1;
                // What was queued for either went with the handover.
                let c = self.conns.get_mut(client).expect("live");
                c.state = State::Relayed(worker);
                c.early.clear();
                c.out.clear();
                let w = self.conns.get_mut(worker).expect("live");
                w.state = State::Relayed(client);
                w.out.clear();
            }
            HandoverOutcome::Fallback => {
                self.stats.takeover_fallbacks += 1;
                self.relay_through_libzmq(now, client, worker, m.expect("set when paired"));
            }
            HandoverOutcome::NotYet => unreachable!("handled above"),
            HandoverOutcome::Broken => {
                self.stats.takeover_fallbacks += 1;
                self.end_pair(now, client, worker, PairEnd::TakeoverFailed);
                self.start_close(now, client, false);
                self.start_close(now, worker, false);
            }
        }
    }

    /// The next taken-over pair the relay must end at once (by tag).
    pub fn next_abort(&mut self) -> Option<u64> {
        self.aborts.pop_front()
    }

    /// What the relay reports about a taken-over pair.
    pub fn on_relay_event(&mut self, now: Instant, event: RelayEvent) {
        let tag = match event {
            RelayEvent::HandshakeDone { tag } | RelayEvent::Ended { tag, .. } => tag,
        };
        let client = Key::from_tag(tag);
        let Some(State::Relayed(worker)) = self.conns.get(client).map(|c| c.state) else {
            return;
        };
        match event {
            RelayEvent::HandshakeDone { .. } => self.handshake_completed(worker),
            RelayEvent::Ended {
                end,
                bytes_up,
                bytes_down,
                handshake,
                ..
            } => {
                self.conns.get_mut(client).expect("live").relayed += bytes_up;
                let w = self.conns.get_mut(worker).expect("live");
                w.relayed = bytes_down;
                if w.worker_handshake == zmtp::HandshakeState::Running {
                    w.worker_handshake = handshake;
                }
                let end = match end {
                    RelayEnd::ClientClosed => PairEnd::ClientClosed,
                    RelayEnd::WorkerClosed => PairEnd::WorkerClosed,
                    RelayEnd::IdleTimeout => {
                        self.stats.count(Reject::IdleTimeout);
                        PairEnd::IdleTimeout
                    }
                    RelayEnd::Aborted => {
                        self.stats.takeover_violations += 1;
                        PairEnd::TakeoverViolation
                    }
                    RelayEnd::NotReleased => {
                        self.stats.takeover_fallbacks += 1;
                        PairEnd::TakeoverFailed
                    }
                };
                self.end_pair(now, client, worker, end);
                // libzmq let go of both at the handover (or never had the worker, in
                // dial-out) and sends no notification for a close the proxy asked for: no
                // late traffic of theirs can come, so their ids need no tombstone.
                self.forget(client, false, now);
                self.forget(worker, false, now);
            }
        }
    }
}

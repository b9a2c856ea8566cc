//! Dial-out: the proxy connects its backend socket to worker endpoints, one connection per
//! screened client, to the endpoint with the fewest open pairs. An endpoint that does not
//! answer in time is marked down and retried with backoff; its client goes to another.
//!
//! Each endpoint's mechanism is learned from the greeting of every connection made to it
//! (the first, and again whenever it changes). A client goes only to an endpoint known to
//! offer its mechanism, or to one not known yet, which is dialed once at a time to learn it;
//! a client whose mechanism no endpoint offers is refused at the edge (REJECT_MECHANISM),
//! before any worker is dialed for it.

use std::time::{Duration, Instant};

use super::timers::TimerKind;
use super::{Conn, Core, Key, RoutingId, Side, State};
use crate::zmtp::Mechanism;

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// First byte of the routing ids the proxy gives its own connections. libzmq's own ids
/// start with 0x00, so the two can never meet (a duplicate id aborts libzmq).
const DIAL_ID_TAG: u8 = 0x01;

struct Endpoint {
    addr: String,
    /// Connections to it now (connecting, handshaking or paired).
    open: u32,
    down_until: Option<Instant>,
    backoff: Duration,
    /// When a connection to it last greeted.
    last_success: Option<Instant>,
    /// The mechanism its workers greeted with last; None until a connection greets, and
    /// again after the endpoint went down (what comes back may be another worker).
    mechanism: Option<Mechanism>,
    /// A connection made while `mechanism` is unknown is on its way: no second one until
    /// it greets or fails.
    learning: bool,
}

/// The worker endpoints and their health.
#[derive(Default)]
pub(super) struct Endpoints {
    list: Vec<Endpoint>,
    /// Where the search for the least loaded endpoint starts: ties go round.
    turn: usize,
    last_id: u64,
}

/// What a dialed connection belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Dial {
    pub client: Key,
    pub endpoint: usize,
    /// Still counted in its endpoint's `open`.
    pub counted: bool,
    /// Made while its endpoint's mechanism was unknown, and not greeted yet.
    pub learning: bool,
}

impl Endpoints {
    pub(super) fn new(addrs: &[String]) -> Endpoints {
        Endpoints {
            list: addrs
                .iter()
                .map(|a| Endpoint {
                    addr: a.clone(),
                    open: 0,
                    down_until: None,
                    backoff: BACKOFF_MIN,
                    last_success: None,
                    mechanism: None,
                    learning: false,
                })
                .collect(),
            turn: 0,
            last_id: 0,
        }
    }

    pub(super) fn active(&self) -> bool {
        !self.list.is_empty()
    }

    pub(super) fn addr(&self, i: usize) -> &str {
        &self.list[i].addr
    }

    fn is_up(&self, i: usize, now: Instant) -> bool {
        self.list[i].down_until.is_none_or(|t| t <= now)
    }

    pub(super) fn any_up(&self, now: Instant) -> bool {
        (0..self.list.len()).any(|i| self.is_up(i, now))
    }

    pub(super) fn down_count(&self, now: Instant) -> u64 {
        (0..self.list.len())
            .filter(|&i| !self.is_up(i, now))
            .count() as u64
    }

    /// Whether every endpoint's mechanism is known and none is `m`: a client of `m` has
    /// nowhere to go.
    pub(super) fn refuses(&self, m: Mechanism) -> bool {
        !self.list.is_empty()
            && self
                .list
                .iter()
                .all(|e| e.mechanism.is_some_and(|known| known != m))
    }

    /// May endpoint `i` offer `m`: up, and known to offer it or not known yet.
    fn may_offer(&self, i: usize, m: Mechanism, now: Instant) -> bool {
        self.is_up(i, now) && self.list[i].mechanism.is_none_or(|known| known == m)
    }

    /// The endpoint with the fewest open connections among those that may offer `m`; ties
    /// in turn, but one being learned (a connection on its way to learn its mechanism) only
    /// if nothing else ties with it. None when there is none, or when the least loaded is
    /// being learned: the client waits for it, so that clients stay spread evenly. The flag
    /// says the connection is to learn the endpoint's mechanism.
    fn choose(&mut self, now: Instant, m: Mechanism) -> Option<(usize, bool)> {
        let n = self.list.len();
        let mut best: Option<usize> = None;
        for k in 0..n {
            let i = (self.turn + k) % n;
            if !self.may_offer(i, m, now) {
                continue;
            }
            let better = best.is_none_or(|b| {
                let (e, f) = (&self.list[i], &self.list[b]);
                e.open < f.open || (e.open == f.open && f.learning && !e.learning)
            });
            if better {
                best = Some(i);
            }
        }
        let b = best?;
        if self.list[b].learning {
            return None;
        }
        self.turn = (b + 1) % n;
        let learning = self.list[b].mechanism.is_none();
        self.list[b].learning |= learning;
        Some((b, learning))
    }

    /// When the first endpoint that is down may be tried again.
    fn next_retry(&self) -> Option<Instant> {
        self.list.iter().filter_map(|e| e.down_until).min()
    }

    /// A connection made at `dialed_at` failed. The endpoint is marked down unless another
    /// connection to it greeted since (it is alive; that one connection was unlucky); the
    /// connections that fail together when an endpoint dies count as one failure.
    fn mark_down(&mut self, i: usize, now: Instant, dialed_at: Instant) {
        let e = &mut self.list[i];
        if e.last_success.is_some_and(|t| t >= dialed_at) {
            return;
        }
        if e.down_until.is_some_and(|t| t > now) {
            return;
        }
        e.down_until = Some(now + e.backoff);
        e.backoff = (e.backoff * 2).min(BACKOFF_MAX);
        // What answers when it comes back may be another worker: learn it again.
        e.mechanism = None;
    }

    fn mark_up(&mut self, i: usize, now: Instant) {
        let e = &mut self.list[i];
        e.down_until = None;
        e.backoff = BACKOFF_MIN;
        e.last_success = Some(now);
    }

    fn next_id(&mut self) -> RoutingId {
        self.last_id += 1;
        let mut id = [0u8; 9];
        id[0] = DIAL_ID_TAG;
        id[1..].copy_from_slice(&self.last_id.to_be_bytes());
        RoutingId::new(&id)
    }
}

impl<P: AsRef<[u8]>> Core<P> {
    /// Dial-out's pairing: each waiting client, oldest first, gets a connection of its own
    /// to the least loaded endpoint that is up and offers its mechanism (or is not known
    /// yet); a client whose mechanism no endpoint offers is refused.
    pub(super) fn try_dial(&mut self, now: Instant) {
        for m in Mechanism::ALL {
            while self.pair_slots_left() {
                let Some(client) = self.pools.pop_waiting(m, &self.conns) else {
                    break;
                };
                if !self.budget.may_dial(now, self.conns.len()) {
                    // No descriptor to spare now (or this host just failed a dial): the
                    // client waits at the head of its queue and asks again shortly.
                    self.pools.unpop_waiting(m, client);
                    let at = self.budget.next_try(now);
                    self.timers.arm(at, client, TimerKind::Redial);
                    return;
                }
                if self.endpoints.refuses(m) {
                    // Learned since the client was screened.
                    self.reject(now, client, super::Reject::Mechanism);
                    continue;
                }
                let Some((endpoint, learning)) = self.endpoints.choose(now, m) else {
                    // Every endpoint that may offer `m` is down, or being learned: wait at
                    // the head of the queue for the first to come back (or to greet).
                    self.pools.unpop_waiting(m, client);
                    if let Some(at) = self.endpoints.next_retry() {
                        self.timers.arm(at, client, TimerKind::Redial);
                    }
                    break;
                };
                self.dial(now, client, m, endpoint, learning);
            }
        }
    }

    fn dial(&mut self, now: Instant, client: Key, m: Mechanism, endpoint: usize, learning: bool) {
        let id = self.endpoints.next_id();
        self.endpoints.list[endpoint].open += 1;
        let mut conn = Conn::new(
            Side::Backend,
            id.clone(),
            State::Connecting,
            now,
            &self.limits,
        );
        conn.dial = Some(Dial {
            client,
            endpoint,
            counted: true,
            learning,
        });
        conn.connect_due = true;
        let worker = self.conns.insert(conn);
        self.backend_ids.insert(id, worker);
        self.conns.get_mut(client).expect("live client").state = State::Dialing {
            mechanism: m,
            worker,
        };
        self.dialing += 1;
        self.stats.dials += 1;
        if let Some(t) = self.limits.connect_timeout {
            self.timers.arm(now + t, worker, TimerKind::ConnectTimeout);
        }
        self.mark_ready(worker);
    }

    /// libzmq reports the TCP connection of a dialed worker: greet it.
    pub(super) fn on_dialed(&mut self, key: Key) {
        self.conns.get_mut(key).expect("live conn").state = State::WorkerHandshake;
        self.send_owned(key, crate::zmtp::greeting_opening().to_vec());
    }

    /// A dialed worker greeted correctly: its endpoint's mechanism is learned (or learned
    /// again), and it is paired with the client it was made for if it offers the client's.
    pub(super) fn on_dialed_greeting(&mut self, now: Instant, key: Key, m: Mechanism) {
        let dial = self.conns.get(key).and_then(|c| c.dial).expect("dialed");
        let learned = dial.learning;
        self.end_learning(key);
        self.endpoints.mark_up(dial.endpoint, now);
        self.endpoints.list[dial.endpoint].mechanism = Some(m);
        let client_state = self.conns.get(dial.client).map(|c| c.state);
        match client_state {
            Some(State::Dialing { mechanism, worker }) if worker == key && mechanism == m => {
                self.dialing -= 1;
                self.stats.clients_waiting -= 1;
                self.pair(now, dial.client, key, m);
            }
            Some(State::Dialing { worker, .. }) if worker == key => {
                // The endpoint offers another mechanism (learned just now): not the worker's
                // fault. The client goes to another endpoint, or is refused if none offers
                // its mechanism.
                self.start_close(now, key, false);
                self.return_client(now, key, dial);
            }
            _ => self.start_close(now, key, false),
        }
        if learned {
            // Clients that waited for this endpoint to be learned may go now.
            self.try_pair(now);
        }
    }

    /// The connection `key` no longer stands for learning its endpoint's mechanism.
    fn end_learning(&mut self, key: Key) {
        let Some(d) = self.conns.get_mut(key).and_then(|c| c.dial.as_mut()) else {
            return;
        };
        if d.learning {
            d.learning = false;
            self.endpoints.list[d.endpoint].learning = false;
        }
    }

    /// A dial failed for a reason of this host (no descriptor, buffer or port): the
    /// endpoint is not to blame. The client waits for a retry after [`super::budget::LOCAL_RETRY`],
    /// and the connection, which never existed, is forgotten.
    pub(super) fn dial_failed_locally(&mut self, now: Instant, key: Key) {
        self.stats.local_failures += 1;
        self.budget.hold_dials(now);
        let Some(dial) = self.conns.get(key).and_then(|c| c.dial) else {
            return;
        };
        self.end_learning(key);
        self.return_client(now, key, dial);
        self.forget(key, false, now);
    }

    /// A dialed connection that has not paired yet failed (or timed out): its endpoint may be
    /// marked down, and its client goes back to the head of the queue, to be offered to
    /// another endpoint. The caller closes or forgets the connection.
    pub(super) fn abandon_dial(&mut self, now: Instant, key: Key) {
        let Some((dial, dialed_at)) = self.conns.get(key).and_then(|c| Some((c.dial?, c.opened)))
        else {
            return;
        };
        self.end_learning(key);
        self.endpoints.mark_down(dial.endpoint, now, dialed_at);
        self.return_client(now, key, dial);
    }

    /// The client the dialed connection `key` was made for, if it still waits for it, goes
    /// back to the head of its queue.
    fn return_client(&mut self, now: Instant, key: Key, dial: Dial) {
        let client = self.conns.get_mut(dial.client);
        if let Some(c) = client {
            if let State::Dialing { mechanism, worker } = c.state {
                if worker == key {
                    c.state = State::Waiting(mechanism);
                    self.dialing -= 1;
                    self.pools.unpop_waiting(mechanism, dial.client);
                    self.try_pair(now);
                }
            }
        }
    }

    /// A client that leaves while its worker connection is being made takes it along.
    pub(super) fn drop_client_dial(&mut self, now: Instant, worker: Key) {
        self.dialing -= 1;
        let learning = self
            .conns
            .get(worker)
            .and_then(|c| c.dial)
            .is_some_and(|d| d.learning);
        self.start_close(now, worker, false);
        if learning {
            // Clients waiting for that endpoint to be learned may try it themselves.
            self.try_pair(now);
        }
    }

    /// A dialed connection stops counting towards its endpoint's load.
    pub(super) fn release_endpoint(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(d) = conn.dial.as_mut() {
            if d.counted {
                d.counted = false;
                self.endpoints.list[d.endpoint].open -= 1;
            }
        }
        self.end_learning(key);
    }

    /// The counters, with the ones that depend on the time brought up to `now`.
    pub fn stats_at(&mut self, now: Instant) -> &super::Stats {
        self.stats.endpoints_down = self.endpoints.down_count(now);
        &self.stats
    }
}

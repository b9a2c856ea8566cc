//! The sans-IO heart of the proxy: pairing, buffers, backpressure, teardown and counters.
//!
//! The core never calls libzmq, never reads a clock and never sleeps. The driver feeds it what
//! the two STREAM sockets delivered ([`Core::on_receive`]), asks it what to send next
//! ([`Core::next_transmit`]), reports how each send went ([`Core::on_transmit`]) and sleeps
//! until [`Core::next_timeout`]. Time is always passed in.

mod queue;
mod routing_id;
mod slab;
mod stats;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

pub use queue::{Chunk, OutQueue};
pub use routing_id::RoutingId;
use slab::{Key, Slab};
pub use stats::{SideStats, Stats};

/// Which of the two STREAM sockets a connection lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Clients.
    Frontend,
    /// Workers.
    Backend,
}

/// Limits and timings of the core. All have working defaults.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Memory one direction of a pair may hold in the proxy before the pair is closed.
    pub pair_buffer: usize,
    /// Bytes an unpaired connection may send before it is closed (a ZMTP peer sends 10).
    pub early_buffer: usize,
    /// First wait before retrying a send that met a full pipe; doubles up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// After the last bytes to a closing connection were handed to libzmq, wait this long
    /// before asking whether they left the machine.
    pub close_settle: Duration,
    /// Give up waiting for the forwarded bytes to leave and close anyway after this long.
    pub close_linger: Duration,
    /// How long ids of connections the proxy closed are remembered, to ignore their late
    /// notifications and data.
    pub tombstone_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            pair_buffer: 4 << 20,
            early_buffer: 64 << 10,
            retry_min: Duration::from_millis(1),
            retry_max: Duration::from_millis(32),
            close_settle: Duration::from_millis(5),
            close_linger: Duration::from_secs(2),
            tombstone_ttl: Duration::from_secs(60),
        }
    }
}

/// How a send the core asked for went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// libzmq took it.
    Sent,
    /// EAGAIN: the connection's pipe is full (or it is going away). Try again later.
    WouldBlock,
    /// EHOSTUNREACH: libzmq no longer knows this connection.
    Unreachable,
    /// Close only: bytes sent earlier have not left the machine yet.
    NotDrained,
}

/// What the driver learned about a connection's TCP socket from libzmq (ZMQ_SRCFD) and
/// the kernel (getpeername), kept to check drains and, as a last resort, to force a close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub fd: i32,
    pub addr: Option<std::net::SocketAddr>,
}

/// What to do with a connection, named by socket and routing id.
pub enum TransmitKind<'a, P> {
    /// Send `[id][chunk]`. On success the chunk may be left empty (moved into libzmq).
    Data(&'a mut Chunk<P>),
    /// Send `[id][]`, which closes the connection. When `check_drained` is set the driver
    /// first checks that what was forwarded earlier has left the machine and answers
    /// [`SendOutcome::NotDrained`] if not. When `force` is set, libzmq has refused the close
    /// for longer than the linger (its pipe to a peer that reads nothing stays full,
    /// libzmq #4828): the driver shuts the TCP socket down under libzmq, which then drops
    /// the connection itself.
    Close { check_drained: bool, force: bool },
}

pub struct Transmit<'a, P> {
    pub side: Side,
    pub id: &'a [u8],
    /// The connection's socket, if the driver reported it.
    pub peer: Option<PeerInfo>,
    pub kind: TransmitKind<'a, P>,
    pub token: TransmitToken,
}

/// Names the transmit in [`Core::on_transmit`].
#[derive(Clone, Copy, Debug)]
pub struct TransmitToken {
    key: Key,
    close: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A client waiting for a worker.
    Waiting,
    /// A worker connection waiting for a client.
    Idle,
    Paired(Key),
    /// To be closed once `out` has drained, or at once when `flush` is false.
    Closing {
        flush: bool,
        deadline: Instant,
    },
}

struct Conn<P> {
    side: Side,
    id: RoutingId,
    peer: Option<PeerInfo>,
    state: State,
    /// Bytes for this connection.
    out: OutQueue<P>,
    /// Bytes from this connection that arrived before it had a partner.
    early: OutQueue<P>,
    blocked_until: Option<Instant>,
    retry: Duration,
    in_ready: bool,
    last_sent: Option<Instant>,
}

pub struct Core<P> {
    limits: Limits,
    conns: Slab<Conn<P>>,
    frontend_ids: FxHashMap<RoutingId, Key>,
    backend_ids: FxHashMap<RoutingId, Key>,
    /// Clients in arrival order (entries of departed clients are skipped when met).
    waiting: VecDeque<Key>,
    /// Idle worker connections, least recently used first.
    idle: VecDeque<Key>,
    /// Connections with something to send now.
    ready: VecDeque<Key>,
    /// Retry times of blocked connections (stale entries are skipped when met).
    timers: BinaryHeap<Reverse<(Instant, Key)>>,
    /// Ids of connections the proxy closed itself, with when they may be forgotten.
    tombstones: FxHashMap<(bool, RoutingId), Instant>,
    tombstone_order: VecDeque<(Instant, bool, RoutingId)>,
    paused: bool,
    stats: Stats,
}

impl<P: AsRef<[u8]>> Default for Core<P> {
    fn default() -> Self {
        Core::new(Limits::default())
    }
}

impl<P: AsRef<[u8]>> Core<P> {
    pub fn new(limits: Limits) -> Self {
        Core {
            limits,
            conns: Slab::default(),
            frontend_ids: FxHashMap::default(),
            backend_ids: FxHashMap::default(),
            waiting: VecDeque::new(),
            idle: VecDeque::new(),
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            tombstones: FxHashMap::default(),
            tombstone_order: VecDeque::new(),
            paused: false,
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Number of connections the core tracks (paired, waiting, idle or closing).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Memory held for all connections, counting what queued chunks pin inside libzmq.
    pub fn buffered(&self) -> usize {
        self.conns
            .iter()
            .map(|(_, c)| c.out.charge() + c.early.charge())
            .sum()
    }

    /// PAUSE stops reading and forwarding; RESUME continues.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    fn ids(&self, side: Side) -> &FxHashMap<RoutingId, Key> {
        match side {
            Side::Frontend => &self.frontend_ids,
            Side::Backend => &self.backend_ids,
        }
    }

    fn ids_mut(&mut self, side: Side) -> &mut FxHashMap<RoutingId, Key> {
        match side {
            Side::Frontend => &mut self.frontend_ids,
            Side::Backend => &mut self.backend_ids,
        }
    }

    fn side_stats(&mut self, side: Side) -> &mut SideStats {
        match side {
            Side::Frontend => &mut self.stats.frontend,
            Side::Backend => &mut self.stats.backend,
        }
    }

    /// One receive from a STREAM socket: `data` is the chunk after the routing-id frame.
    /// An empty chunk is libzmq's connect (first time) or disconnect (second) notification.
    /// `peer` is called, at most once per connection, to learn its socket.
    pub fn on_receive(
        &mut self,
        now: Instant,
        side: Side,
        id: &[u8],
        data: P,
        peer: impl FnOnce(&P) -> Option<PeerInfo>,
    ) {
        let len = data.as_ref().len();
        let key = self.ids(side).get(id).copied();
        match (key, len) {
            (None, 0) => self.on_connect(now, side, id),
            (Some(key), 0) => self.on_gone(now, key),
            (None, _) => {
                self.stats.stray_chunks += 1;
            }
            (Some(key), _) => {
                let s = self.side_stats(side);
                s.msgs_in += 1;
                s.bytes_in += len as u64;
                self.on_data(now, key, data, peer);
            }
        }
    }

    fn on_connect(&mut self, now: Instant, side: Side, id: &[u8]) {
        self.expire_tombstones(now);
        let routing_id = RoutingId::new(id);
        if self
            .tombstones
            .contains_key(&(side == Side::Frontend, routing_id.clone()))
        {
            // The disconnect notification of a connection we closed ourselves, crossing our
            // close request: not a new connection.
            return;
        }
        let state = match side {
            Side::Frontend => State::Waiting,
            Side::Backend => State::Idle,
        };
        let key = self.conns.insert(Conn {
            side,
            id: routing_id.clone(),
            peer: None,
            state,
            out: OutQueue::default(),
            early: OutQueue::default(),
            blocked_until: None,
            retry: self.limits.retry_min,
            in_ready: false,
            last_sent: None,
        });
        self.ids_mut(side).insert(routing_id, key);
        match side {
            Side::Frontend => {
                self.waiting.push_back(key);
                self.stats.clients_waiting += 1;
            }
            Side::Backend => {
                self.idle.push_back(key);
                self.stats.workers_idle += 1;
            }
        }
        self.try_pair();
    }

    fn on_data(
        &mut self,
        now: Instant,
        key: Key,
        data: P,
        peer: impl FnOnce(&P) -> Option<PeerInfo>,
    ) {
        let limits_early = self.limits.early_buffer;
        let limits_pair = self.limits.pair_buffer;
        let conn = self
            .conns
            .get_mut(key)
            .expect("id map points at a live conn");
        if conn.peer.is_none() {
            conn.peer = peer(&data);
        }
        match conn.state {
            State::Waiting | State::Idle => {
                conn.early.push(data, true);
                if conn.early.charge() > limits_early {
                    self.stats.closed_early_overflow += 1;
                    self.leave_pool(key);
                    self.start_close(now, key, false);
                }
            }
            State::Paired(partner) => {
                let dest = self.conns.get_mut(partner).expect("partner of a live pair");
                dest.out.push(data, false);
                if dest.out.charge() > limits_pair {
                    self.stats.closed_buffer_overflow += 1;
                    self.end_pair(key, partner);
                    self.start_close(now, key, false);
                    self.start_close(now, partner, false);
                } else {
                    self.mark_ready(partner);
                }
            }
            State::Closing { .. } => {
                self.stats.dropped_bytes += data.as_ref().len() as u64;
            }
        }
    }

    /// The connection is gone (disconnect notification, or EHOSTUNREACH on a send).
    fn on_gone(&mut self, now: Instant, key: Key) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        match conn.state {
            State::Waiting | State::Idle => self.leave_pool(key),
            State::Paired(partner) => {
                self.end_pair(key, partner);
                self.start_close(now, partner, true);
            }
            State::Closing { .. } => {}
        }
        self.forget(key, false, now);
    }

    fn leave_pool(&mut self, key: Key) {
        let conn = self.conns.get_mut(key).expect("live conn");
        match conn.state {
            State::Waiting => self.stats.clients_waiting -= 1,
            State::Idle => self.stats.workers_idle -= 1,
            _ => return,
        }
        // The caller moves the conn out of its pool state next (close or forget), so its
        // queue entry goes stale and is skipped when met.
        Self::compact_pool(&mut self.waiting, &self.conns, State::Waiting);
        Self::compact_pool(&mut self.idle, &self.conns, State::Idle);
    }

    fn compact_pool(pool: &mut VecDeque<Key>, conns: &Slab<Conn<P>>, want: State) {
        // Stale entries are skipped lazily; compact only when they dominate, so that a pool
        // churned by connections that come and go stays O(live).
        if pool.len() > 64 && pool.len() > 2 * conns.len() {
            pool.retain(|k| conns.get(*k).is_some_and(|c| c.state == want));
        }
    }

    /// Counts a pair as ended; the caller then closes or forgets both sides.
    fn end_pair(&mut self, a: Key, b: Key) {
        debug_assert!(
            matches!(self.conns.get(a).map(|c| c.state), Some(State::Paired(p)) if p == b)
        );
        self.stats.pairs_open -= 1;
    }

    /// Schedules a close: after `out` drains when `flush`, else at once (dropping `out`).
    fn start_close(&mut self, now: Instant, key: Key, flush: bool) {
        let linger = self.limits.close_linger;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !flush {
            conn.out.clear();
        }
        conn.early.clear();
        conn.state = State::Closing {
            flush,
            deadline: now + linger,
        };
        self.mark_ready(key);
    }

    /// Removes a connection; `closed_by_us` remembers its id to ignore its late traffic.
    fn forget(&mut self, key: Key, closed_by_us: bool, now: Instant) {
        let Some(conn) = self.conns.remove(key) else {
            return;
        };
        self.ids_mut(conn.side).remove(conn.id.as_bytes());
        if closed_by_us {
            let until = now + self.limits.tombstone_ttl;
            let front = conn.side == Side::Frontend;
            self.tombstones.insert((front, conn.id.clone()), until);
            self.tombstone_order.push_back((until, front, conn.id));
        }
    }

    fn expire_tombstones(&mut self, now: Instant) {
        while let Some((until, _, _)) = self.tombstone_order.front() {
            if *until > now {
                break;
            }
            let (until, front, id) = self.tombstone_order.pop_front().expect("front exists");
            if self.tombstones.get(&(front, id.clone())) == Some(&until) {
                self.tombstones.remove(&(front, id));
            }
        }
    }

    fn pop_live(pool: &mut VecDeque<Key>, conns: &Slab<Conn<P>>, want: State) -> Option<Key> {
        while let Some(k) = pool.pop_front() {
            if conns.get(k).is_some_and(|c| c.state == want) {
                return Some(k);
            }
        }
        None
    }

    fn try_pair(&mut self) {
        while self.stats.clients_waiting > 0 && self.stats.workers_idle > 0 {
            let client = Self::pop_live(&mut self.waiting, &self.conns, State::Waiting)
                .expect("waiting count says a client waits");
            let worker = Self::pop_live(&mut self.idle, &self.conns, State::Idle)
                .expect("idle count says a worker is idle");
            self.stats.clients_waiting -= 1;
            self.stats.workers_idle -= 1;
            self.stats.pairs_open += 1;
            self.stats.pairs_total += 1;
            let mut client_early = {
                let c = self.conns.get_mut(client).expect("live client");
                c.state = State::Paired(worker);
                std::mem::take(&mut c.early)
            };
            let mut worker_early = {
                let w = self.conns.get_mut(worker).expect("live worker");
                w.state = State::Paired(client);
                w.out.append(&mut client_early);
                std::mem::take(&mut w.early)
            };
            self.conns
                .get_mut(client)
                .expect("live client")
                .out
                .append(&mut worker_early);
            self.mark_ready(client);
            self.mark_ready(worker);
        }
    }

    fn has_work(conn: &Conn<P>) -> bool {
        !conn.out.is_empty() || matches!(conn.state, State::Closing { .. })
    }

    fn mark_ready(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.in_ready || conn.blocked_until.is_some() || !Self::has_work(conn) {
            return;
        }
        conn.in_ready = true;
        self.ready.push_back(key);
    }

    fn block(&mut self, key: Key, until: Instant) {
        let conn = self.conns.get_mut(key).expect("live conn");
        conn.blocked_until = Some(until);
        self.timers.push(Reverse((until, key)));
    }

    /// The next send to make, if any. Call [`Core::on_transmit`] with its token before asking
    /// again.
    pub fn next_transmit(&mut self, now: Instant) -> Option<Transmit<'_, P>> {
        if self.paused {
            return None;
        }
        self.fire_timers(now);
        loop {
            let key = *self.ready.front()?;
            let settle = self.limits.close_settle;
            let conn = match self.conns.get_mut(key) {
                Some(c) if c.in_ready && c.blocked_until.is_none() && Self::has_work(c) => c,
                Some(c) => {
                    c.in_ready = false;
                    self.ready.pop_front();
                    continue;
                }
                None => {
                    self.ready.pop_front();
                    continue;
                }
            };
            if let State::Closing {
                flush: true,
                deadline,
            } = conn.state
            {
                if now >= deadline && !conn.out.is_empty() {
                    // The peer stopped reading; what it never took is dropped with it.
                    conn.out.clear();
                }
            }
            if !conn.out.is_empty() {
                let token = TransmitToken { key, close: false };
                let conn = self.conns.get_mut(key).expect("checked above");
                return Some(Transmit {
                    side: conn.side,
                    id: conn.id.as_bytes(),
                    peer: conn.peer,
                    kind: TransmitKind::Data(conn.out.front_mut().expect("not empty")),
                    token,
                });
            }
            let State::Closing { flush, deadline } = conn.state else {
                unreachable!("has_work without data means closing");
            };
            // Give libzmq's I/O thread a moment to move what we handed it into the kernel
            // before asking whether it left (libzmq #4763 cuts the tail of a close that
            // follows data too closely).
            if flush {
                if let Some(last) = conn.last_sent {
                    if now < last + settle {
                        conn.in_ready = false;
                        self.ready.pop_front();
                        self.block(key, last + settle);
                        continue;
                    }
                }
            }
            let conn = self.conns.get_mut(key).expect("checked above");
            return Some(Transmit {
                side: conn.side,
                id: conn.id.as_bytes(),
                peer: conn.peer,
                kind: TransmitKind::Close {
                    check_drained: flush && now < deadline && conn.last_sent.is_some(),
                    force: now >= deadline,
                },
                token: TransmitToken { key, close: true },
            });
        }
    }

    /// Reports how the transmit named by `token` went.
    pub fn on_transmit(&mut self, now: Instant, token: TransmitToken, outcome: SendOutcome) {
        let key = token.key;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match (token.close, outcome) {
            (false, SendOutcome::Sent) => {
                let len = conn.out.pop_sent();
                conn.last_sent = Some(now);
                conn.retry = self.limits.retry_min;
                let side = conn.side;
                // Rotate to the back so that one busy connection cannot starve the others.
                let more = Self::has_work(conn);
                let s = self.side_stats(side);
                s.msgs_out += 1;
                s.bytes_out += len as u64;
                let front = self.ready.pop_front();
                debug_assert_eq!(front, Some(key));
                let conn = self.conns.get_mut(key).expect("live");
                if more {
                    self.ready.push_back(key);
                } else {
                    conn.in_ready = false;
                }
            }
            (true, SendOutcome::Sent) | (true, SendOutcome::Unreachable) => {
                self.ready.pop_front();
                self.forget(key, true, now);
            }
            (false, SendOutcome::Unreachable) => {
                self.ready.pop_front();
                conn.in_ready = false;
                self.on_gone(now, key);
            }
            (_, SendOutcome::WouldBlock) | (_, SendOutcome::NotDrained) => {
                if outcome == SendOutcome::WouldBlock {
                    self.stats.send_retries += 1;
                }
                let retry = conn.retry;
                conn.retry = (retry * 2).min(self.limits.retry_max);
                conn.in_ready = false;
                self.ready.pop_front();
                self.block(key, now + retry);
            }
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(conn) = self.conns.get_mut(key) {
                if conn.blocked_until == Some(at) {
                    conn.blocked_until = None;
                    self.mark_ready(key);
                }
            }
        }
    }

    /// Lets time-driven work happen (retries, settled closes).
    pub fn on_timeout(&mut self, now: Instant) {
        self.fire_timers(now);
        self.expire_tombstones(now);
    }

    /// When the driver must call in again even if no socket becomes readable.
    pub fn next_timeout(&self, _now: Instant) -> Option<Instant> {
        if self.paused {
            return None;
        }
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Whether there is something to send right now.
    pub fn wants_transmit(&self) -> bool {
        !self.paused && !self.ready.is_empty()
    }
}

#[cfg(test)]
mod tests;

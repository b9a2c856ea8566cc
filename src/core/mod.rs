//! The sans-IO heart of the proxy: screening, pairing, buffers, backpressure, teardown,
//! timeouts and counters.
//!
//! The core never calls libzmq, never reads a clock and never sleeps. The driver feeds it what
//! the two STREAM sockets delivered ([`Core::on_receive`]), asks it what to send next
//! ([`Core::next_transmit`]), reports how each send went ([`Core::on_transmit`]) and sleeps
//! until [`Core::next_timeout`]. Time is always passed in.
//!
//! A connection's life: the proxy greets it (ZMTP signature and version), reads its
//! greeting and, for a client, its first handshake command, and refuses anything that is
//! not well-formed ZMTP 3.x. A screened client waits for an idle worker connection of its
//! mechanism; when they pair, the proxy completes the worker's greeting, forwards the
//! client's first command, and from then on relays bytes untouched both ways.

mod backpressure;
mod budget;
mod deaths;
mod dial;
mod events;
mod handshake;
mod idle;
mod limits;
mod policy;
mod pools;
mod queue;
mod rng;
mod routing_id;
mod slab;
mod stats;
mod timers;
mod transmit;

use std::collections::VecDeque;
use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::zmtp::{Greeting, HandshakeState, HandshakeWatch, Mechanism};
use budget::Budget;
use dial::{Dial, Endpoints};
pub use events::{Event, PairEnd};
pub use limits::Limits;
pub use policy::{AddressPolicy, Cidr};
use pools::Pools;
pub use pools::{Handover, HandoverOutcome};
pub use queue::{Chunk, OutQueue};
pub use routing_id::RoutingId;
use slab::{Key, Slab};
pub use stats::{Reject, SideStats, Stats};
use timers::{TimerKind, Timers};
pub use transmit::{SendOutcome, Transmit, TransmitKind, TransmitToken};

/// Which of the two STREAM sockets a connection lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Clients.
    Frontend,
    /// Workers.
    Backend,
}

/// What the driver learned about a connection's TCP socket from libzmq (ZMQ_SRCFD) and
/// the kernel (getpeername), kept to check drains and, as a last resort, to force a close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub fd: i32,
    pub addr: Option<std::net::SocketAddr>,
    /// The local end: with `addr`, it names the TCP connection, so a descriptor number that
    /// libzmq reused for another connection (to the same dialed worker, say) is recognised.
    pub local: Option<std::net::SocketAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A client whose greeting (then first command, once `greeting` is known) is arriving.
    ClientHandshake { greeting: Option<Greeting> },
    /// A screened client waiting for a worker.
    Waiting(Mechanism),
    /// Dial-out: a screened client whose worker connection is being made.
    Dialing { mechanism: Mechanism, worker: Key },
    /// Dial-out: a worker connection requested from libzmq, not connected yet.
    Connecting,
    /// A worker connection whose greeting is arriving.
    WorkerHandshake,
    /// A screened worker connection waiting for a client. The proxy holds back the end of
    /// its own greeting until the pair forms, so the worker stays silent meanwhile.
    Idle(Mechanism),
    /// Paired, bytes relayed through libzmq (or, until the driver answers the handover,
    /// waiting to be taken over).
    Paired(Key),
    /// Paired and taken out of libzmq: the relay moves the bytes; the core keeps the
    /// record for counters and events until the relay reports the pair's end.
    Relayed(Key),
    /// To be closed once `out` has drained, or at once when `flush` is false.
    Closing { flush: bool, deadline: Instant },
}

struct Conn<P> {
    side: Side,
    id: RoutingId,
    peer: Option<PeerInfo>,
    state: State,
    /// Bytes for this connection.
    out: OutQueue<P>,
    /// Handshake bytes received and not yet judged (at most a greeting and one command).
    handshake: Vec<u8>,
    /// Bytes from this connection kept until it has a partner.
    early: OutQueue<P>,
    opened: Instant,
    last_activity: Instant,
    blocked_until: Option<Instant>,
    retry: std::time::Duration,
    in_ready: bool,
    last_sent: Option<Instant>,
    /// Its buffer is over the pair bound and its source socket is not read (backpressure).
    over: bool,
    /// When it last accepted bytes while over.
    last_progress: Instant,
    /// While closing: what was still unacknowledged when last asked.
    drain_pending: usize,
    /// Bytes handed to libzmq for this connection.
    bytes_sent: u64,
    /// Bytes libzmq delivered from this connection (all of them, the greeting's included).
    received: u64,
    /// While closing: the driver sent FIN; waiting for the peer to close its side.
    half_closed: bool,
    /// A client whose address the policy has judged (on its first bytes).
    policy_checked: bool,
    /// The address this client is counted under for ZMQ_PROXY_STREAM_MAX_PER_ADDRESS.
    counted_addr: Option<std::net::IpAddr>,
    /// A liveness check of its socket is wanted.
    probe_due: bool,
    /// Dial-out: the client and endpoint this worker connection was made for.
    dial: Option<Dial>,
    /// Dial-out: libzmq is yet to be asked to connect it.
    connect_due: bool,
    /// A paired client's: the pair's number, since when, and its mechanism (for events).
    /// Either side's `relayed`: the bytes it sent its partner.
    pair_no: u64,
    paired_at: Instant,
    mechanism: Option<Mechanism>,
    relayed: u64,
    /// A paired worker's security handshake, followed until it completes, and what it
    /// came to (Ready, or Error when the worker refused the client).
    watch: Option<Box<HandshakeWatch>>,
    worker_handshake: HandshakeState,
}

impl<P: AsRef<[u8]>> Conn<P> {
    fn new(side: Side, id: RoutingId, state: State, now: Instant, limits: &Limits) -> Conn<P> {
        Conn {
            side,
            id,
            peer: None,
            state,
            out: OutQueue::default(),
            handshake: Vec::new(),
            early: OutQueue::default(),
            opened: now,
            last_activity: now,
            blocked_until: None,
            retry: limits.retry_min,
            in_ready: false,
            last_sent: None,
            over: false,
            last_progress: now,
            drain_pending: usize::MAX,
            bytes_sent: 0,
            received: 0,
            half_closed: false,
            policy_checked: false,
            counted_addr: None,
            probe_due: false,
            dial: None,
            connect_due: false,
            pair_no: 0,
            paired_at: now,
            mechanism: None,
            relayed: 0,
            watch: None,
            worker_handshake: HandshakeState::Running,
        }
    }
}

/// Failed handshakes of one client address (ZMQ_PROXY_STREAM_FAIL_BAN).
#[derive(Clone, Copy, Debug, Default)]
struct Failures {
    /// Failures in a row since the last ban (or since the record began).
    count: u32,
    banned_until: Option<Instant>,
    /// Bans so far in this run of offences: the next lasts FAIL_BAN_TIME << bans (capped),
    /// and follows a single failure.
    bans: u32,
    /// Until when a failure counts as a repeat offence; then the record is forgotten.
    repeat_until: Option<Instant>,
}

/// A repeat offence's ban doubles, up to FAIL_BAN_TIME << MAX_BAN_DOUBLINGS (8 times).
const MAX_BAN_DOUBLINGS: u32 = 3;

/// Addresses tracked for FAIL_BAN before the expired ones are swept.
const MAX_FAILURE_ENTRIES: usize = 65536;
/// Events kept for the driver to publish; beyond it they are dropped and counted.
const MAX_QUEUED_EVENTS: usize = 4096;

pub struct Core<P> {
    limits: Limits,
    conns: Slab<Conn<P>>,
    frontend_ids: FxHashMap<RoutingId, Key>,
    backend_ids: FxHashMap<RoutingId, Key>,
    pools: Pools,
    /// Connections with something to send now.
    ready: VecDeque<Key>,
    timers: Timers,
    /// Ids of connections the proxy closed itself, with when they may be forgotten.
    tombstones: FxHashMap<(bool, RoutingId), Instant>,
    tombstone_order: VecDeque<(Instant, bool, RoutingId)>,
    paused: bool,
    /// Open client connections per address (only with ZMQ_PROXY_STREAM_MAX_PER_ADDRESS).
    per_address: FxHashMap<std::net::IpAddr, u32>,
    /// Connections over their bound, by the side whose reading they hold back
    /// (0 frontend, 1 backend).
    holding_back: [u32; 2],
    /// Dial-out's worker endpoints (empty in dial-in).
    endpoints: Endpoints,
    /// Clients whose worker connection is being made.
    dialing: u64,
    /// For the event stream, when it is on.
    events: VecDeque<Event>,
    failures: FxHashMap<std::net::IpAddr, Failures>,
    /// Silent handshake failures waiting to be told from a worker's death.
    deaths: deaths::Deaths,
    /// Pairs (by client) the driver is to take out of libzmq, oldest first.
    handovers: VecDeque<Key>,
    /// Taken-over pairs (by tag) the relay must end: a peer broke the quiet moment.
    aborts: VecDeque<u64>,
    /// Connections the proxy may hold (ZMQ_PROXY_STREAM_MAX_CONNECTIONS).
    budget: Budget,
    stats: Stats,
}

impl<P: AsRef<[u8]>> Default for Core<P> {
    fn default() -> Self {
        Core::new(Limits::default())
    }
}

impl<P: AsRef<[u8]>> Core<P> {
    /// A core whose choices among equally loaded workers follow a fixed seed (a replayable
    /// run); [`Core::with_seed`] for a varied one.
    pub fn new(limits: Limits) -> Self {
        Core::with_seed(limits, 0)
    }

    /// `seed` drives the random choice among equally loaded worker connections: the driver
    /// passes an OS random number, since the core reads no random source itself.
    pub fn with_seed(limits: Limits, seed: u64) -> Self {
        Core {
            conns: Slab::default(),
            frontend_ids: FxHashMap::default(),
            backend_ids: FxHashMap::default(),
            pools: Pools::new(seed),
            ready: VecDeque::new(),
            timers: Timers::default(),
            tombstones: FxHashMap::default(),
            tombstone_order: VecDeque::new(),
            paused: false,
            per_address: FxHashMap::default(),
            holding_back: [0, 0],
            endpoints: Endpoints::new(&limits.worker_endpoints),
            dialing: 0,
            events: VecDeque::new(),
            failures: FxHashMap::default(),
            deaths: deaths::Deaths::default(),
            handovers: VecDeque::new(),
            aborts: VecDeque::new(),
            budget: Budget::new(
                usize::try_from(limits.max_connections)
                    .ok()
                    .filter(|&n| n > 0),
            ),
            stats: Stats::default(),
            limits,
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Number of connections the core tracks (in any state).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Sets the connections the proxy may hold at once (None: no limit); the driver derives
    /// it from the process's descriptor limit when ZMQ_PROXY_STREAM_MAX_CONNECTIONS is -1.
    pub fn set_connection_budget(&mut self, max: Option<usize>) {
        self.budget = Budget::new(max);
    }

    pub fn connection_budget(&self) -> Option<usize> {
        self.budget.max()
    }

    /// Something this host ran out of (a descriptor at a takeover's dup(2)) failed an
    /// operation: counted apart from the peers' failures.
    pub fn local_failure(&mut self) {
        self.stats.local_failures += 1;
    }

    /// Memory held for all connections, counting what queued chunks pin inside libzmq.
    pub fn buffered(&self) -> usize {
        self.conns
            .iter()
            .map(|(_, c)| c.out.charge() + c.early.charge() + c.handshake.capacity())
            .sum()
    }

    /// PAUSE stops reading and forwarding; RESUME continues.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    pub fn is_paused(&self) -> bool {
        self.paused
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
        let ids = match side {
            Side::Frontend => &self.frontend_ids,
            Side::Backend => &self.backend_ids,
        };
        let key = ids.get(id).copied();
        match (key, len) {
            (None, 0) => self.on_connect(now, side, id, || peer(&data)),
            (Some(key), 0) if self.conns.get(key).map(|c| c.state) == Some(State::Connecting) => {
                self.on_dialed(key)
            }
            (Some(key), 0) => self.on_gone(now, key, Gone::Notified),
            (None, _) => self.stats.stray_chunks += 1,
            (Some(key), _) => {
                let s = self.side_stats(side);
                s.msgs_in += 1;
                s.bytes_in += len as u64;
                self.on_data(now, key, data, peer);
            }
        }
    }

    /// A connection the driver watches itself (dial-out) failed or ended: what a STREAM
    /// socket's disconnect notification says, in any state.
    pub fn on_disconnected(&mut self, now: Instant, side: Side, id: &[u8]) {
        let ids = match side {
            Side::Frontend => &self.frontend_ids,
            Side::Backend => &self.backend_ids,
        };
        if let Some(key) = ids.get(id).copied() {
            // The dialer's own descriptor: no libzmq notification can follow.
            self.on_gone(now, key, Gone::Notified);
        }
    }

    fn on_connect(
        &mut self,
        now: Instant,
        side: Side,
        id: &[u8],
        peer: impl FnOnce() -> Option<PeerInfo>,
    ) {
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
            Side::Frontend => State::ClientHandshake { greeting: None },
            Side::Backend => State::WorkerHandshake,
        };
        let key = self.conns.insert(Conn::new(
            side,
            routing_id.clone(),
            state,
            now,
            &self.limits,
        ));
        self.ids_mut(side).insert(routing_id, key);
        let held = self.conns.len() - 1;
        let clients = self.frontend_ids.len() - usize::from(side == Side::Frontend);
        let dial_out = self.endpoints.active();
        if side == Side::Backend && !dial_out {
            self.budget.worker_arrived();
        }
        if !self.budget.admits(now, side, held, clients, dial_out) {
            // Closed before a byte is sent: it costs libzmq's descriptor only until the
            // close goes out. Its address is learned now, for the REJECT event.
            self.conns.get_mut(key).expect("live conn").peer = peer();
            return self.reject(now, key, Reject::Limit);
        }
        if side == Side::Backend && dial_out {
            // In dial-out the proxy makes every worker connection itself.
            return self.reject(now, key, Reject::BadGreeting);
        }
        if let Some(t) = self.limits.handshake_timeout {
            self.timers.arm(now + t, key, TimerKind::Handshake);
        }
        // Greeted at once: some ZMTP peers wait for the other side's signature before
        // sending theirs. The address policy is applied to a client's first bytes, which
        // carry its address, before anything of it is judged or reaches a worker.
        self.send_owned(key, crate::zmtp::greeting_opening().to_vec());
    }

    /// Queues bytes the proxy itself sends (greetings).
    fn send_owned(&mut self, key: Key, bytes: Vec<u8>) {
        let conn = self.conns.get_mut(key).expect("live conn");
        conn.out.push_owned(bytes);
        self.mark_ready(key);
    }

    fn on_data(
        &mut self,
        now: Instant,
        key: Key,
        data: P,
        peer: impl FnOnce(&P) -> Option<PeerInfo>,
    ) {
        let early_limit = self.limits.early_buffer;
        let pair_limit = self.limits.pair_buffer;
        let conn = self
            .conns
            .get_mut(key)
            .expect("id map points at a live conn");
        if conn.peer.is_none() {
            conn.peer = peer(&data);
        }
        conn.received += data.as_ref().len() as u64;
        if conn.side == Side::Frontend && !conn.policy_checked {
            conn.policy_checked = true;
            if let Some(reason) = self.admit(now, key) {
                return self.reject(now, key, reason);
            }
        }
        let conn = self.conns.get_mut(key).expect("live conn");
        match conn.state {
            State::ClientHandshake { .. } | State::WorkerHandshake | State::Idle(_) => {
                self.on_handshake_bytes(now, key, data.as_ref());
            }
            State::Connecting => {
                // Data before the connect notification: the connection is up all the same.
                self.on_dialed(key);
                self.on_handshake_bytes(now, key, data.as_ref());
            }
            State::Waiting(_) | State::Dialing { .. } => {
                conn.early.push(data, true);
                if conn.early.charge() > early_limit {
                    self.reject(now, key, Reject::EarlyOverflow);
                }
            }
            State::Paired(_) if conn.side == Side::Frontend && self.handovers.contains(&key) => {
                // The pair waits to be taken over: the client's bytes stay with its first
                // command, to reach the worker after the end of the proxy's greeting.
                conn.early.push(data, true);
            }
            State::Paired(partner) => {
                conn.last_activity = now;
                conn.relayed += data.as_ref().len() as u64;
                if let Some(watch) = conn.watch.as_mut() {
                    if watch.feed(data.as_ref()) != HandshakeState::Running {
                        self.on_worker_handshake(key);
                    }
                }
                let dest = self.conns.get_mut(partner).expect("partner of a live pair");
                dest.out.push(data, false);
                if dest.out.charge() > pair_limit && self.limits.backpressure {
                    self.mark_ready(partner);
                    self.hold_back(now, partner);
                } else if dest.out.charge() > pair_limit {
                    self.stats.count(Reject::BufferOverflow);
                    self.end_pair(now, key, partner, PairEnd::BufferOverflow);
                    self.start_close(now, key, false);
                    self.start_close(now, partner, false);
                } else {
                    self.mark_ready(partner);
                }
            }
            State::Relayed(partner) => {
                // libzmq read bytes of a connection it was letting go: they may be only
                // part of what the peer sent then (the rest is lost inside libzmq), so the
                // pair ends rather than relay a stream with a hole.
                self.stats.dropped_bytes += data.as_ref().len() as u64;
                let client = if conn.side == Side::Frontend {
                    key
                } else {
                    partner
                };
                self.aborts.push_back(client.tag());
            }
            State::Closing { .. } => {
                self.stats.dropped_bytes += data.as_ref().len() as u64;
            }
        }
    }

    /// The connection is gone (disconnect notification, or EHOSTUNREACH on a send).
    fn on_gone(&mut self, now: Instant, key: Key, why: Gone) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let dialed = conn.dial.is_some();
        if conn.side == Side::Backend
            && matches!(
                conn.state,
                State::Idle(_) | State::WorkerHandshake | State::Connecting
            )
        {
            // A worker connection no client was using ended: if its worker died, the
            // pairs it cut mid-handshake are no client's fault (see deaths.rs).
            let worker = self.worker_id(conn);
            self.worker_ended_unexplained(now, worker);
        }
        let conn = self.conns.get(key).expect("live conn");
        match conn.state {
            // libzmq let it go: the relay reports its end.
            State::Relayed(_) => return,
            State::Paired(partner) => {
                let end = match conn.side {
                    Side::Frontend => PairEnd::ClientClosed,
                    Side::Backend => PairEnd::WorkerClosed,
                };
                self.end_pair(now, key, partner, end);
                self.start_close(now, partner, true);
            }
            State::Dialing { worker, .. } => {
                self.pools.leave(key, &conn.state, &mut self.stats);
                self.drop_client_dial(now, worker);
            }
            State::Connecting | State::WorkerHandshake if dialed => {
                self.abandon_dial(now, key);
            }
            State::Closing { .. } if dialed => {
                // libzmq would connect it again by itself: the close request must still go,
                // without the flush. The TCP connection is gone: its descriptor is no longer
                // ours to look at.
                self.conns.get_mut(key).expect("live conn").peer = None;
                self.start_close(now, key, false);
                return;
            }
            _ => self.pools.leave(key, &conn.state, &mut self.stats),
        }
        if dialed {
            self.start_close(now, key, false);
        } else {
            // After EHOSTUNREACH, libzmq's disconnect notification for the id may still be
            // queued in the socket's inbound pipe: without a tombstone it would read as a new
            // connection, be greeted and held until its send failed again. After the
            // notification itself nothing more comes, so no tombstone is needed.
            self.forget(key, why == Gone::Unreachable, now);
        }
    }

    /// Applies the address policy to a client whose address is now known; counts it under
    /// its address. Returns why it is refused, if it is.
    fn admit(&mut self, now: Instant, key: Key) -> Option<Reject> {
        let policy = &self.limits.policy;
        if policy.is_empty() {
            return None;
        }
        let Some(ip) = self.client_ip(key) else {
            // No IP address (ipc://): admitted unless an allow list asks for one.
            return (!policy.allow.is_empty()).then_some(Reject::Denied);
        };
        if !policy.admits(ip) {
            return Some(Reject::Denied);
        }
        if policy.fail_ban.is_some()
            && self
                .failures
                .get(&ip)
                .and_then(|f| f.banned_until)
                .is_some_and(|t| t > now)
        {
            return Some(Reject::Banned);
        }
        if let Some(max) = policy.max_per_address {
            let n = self.per_address.entry(ip).or_insert(0);
            if *n as usize >= max {
                return Some(Reject::PerAddress);
            }
            *n += 1;
            self.conns.get_mut(key).expect("live conn").counted_addr = Some(ip);
        }
        None
    }

    /// Closes a client or worker the proxy refuses, counting why.
    fn reject(&mut self, now: Instant, key: Key, reason: Reject) {
        let conn = self.conns.get(key).expect("live conn");
        let (state, dialed) = (conn.state, conn.dial.is_some());
        let worker = conn.side == Side::Backend;
        if worker && !matches!(reason, Reject::EarlyOverflow | Reject::Limit) {
            self.stats.workers_rejected += 1;
        } else {
            self.stats.count(reason);
            // A worker connection refused for the limit is counted, not reported: REJECT
            // events name clients.
            if self.limits.events && !(worker && reason == Reject::Limit) {
                let client = conn.peer.and_then(|p| p.addr);
                self.push_event(Event::Reject { client, reason });
            }
        }
        self.pools.leave(key, &state, &mut self.stats);
        match state {
            State::Dialing { worker, .. } => self.drop_client_dial(now, worker),
            State::Connecting | State::WorkerHandshake if dialed => {
                self.abandon_dial(now, key);
            }
            _ => {}
        }
        self.start_close(now, key, false);
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.stats.events_dropped += 1;
        } else {
            self.events.push_back(event);
        }
    }

    /// The next event to publish (only with `Limits::events`).
    pub fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The driver could not publish an event.
    pub fn event_dropped(&mut self) {
        self.stats.events_dropped += 1;
    }

    /// A paired worker's handshake completed (READY) or failed (ERROR).
    fn on_worker_handshake(&mut self, key: Key) {
        let conn = self.conns.get_mut(key).expect("live conn");
        let Some(watch) = conn.watch.take() else {
            return;
        };
        match watch.state() {
            HandshakeState::Ready => self.handshake_completed(key),
            state => conn.worker_handshake = state,
        }
    }

    /// A worker's security handshake completed: its client's address is in good standing.
    fn handshake_completed(&mut self, key: Key) {
        let conn = self.conns.get_mut(key).expect("live conn");
        conn.worker_handshake = HandshakeState::Ready;
        if let State::Paired(client) | State::Relayed(client) = conn.state {
            if let Some(ip) = self.client_ip(client) {
                self.failures.remove(&ip);
                self.forgive_held(ip);
            }
        }
    }

    fn client_ip(&self, client: Key) -> Option<std::net::IpAddr> {
        self.conns
            .get(client)
            .and_then(|c| c.peer)
            .and_then(|p| p.addr)
            .map(|a| policy::address_key(a.ip()))
    }

    /// Counts a failed handshake against the client's address; enough in a row ban it.
    fn count_failure(&mut self, now: Instant, ip: std::net::IpAddr) {
        let Some(limit) = self.limits.policy.fail_ban else {
            return;
        };
        if self.failures.len() >= MAX_FAILURE_ENTRIES && !self.failures.contains_key(&ip) {
            self.failures.retain(|_, f| {
                f.banned_until.is_some_and(|t| t > now) || f.repeat_until.is_some_and(|t| t > now)
            });
            if self.failures.len() >= MAX_FAILURE_ENTRIES {
                return;
            }
        }
        let ban_time = self.limits.policy.fail_ban_time;
        let f = self.failures.entry(ip).or_default();
        if f.banned_until.is_some_and(|t| t > now) {
            // A pair that formed before the ban: the ban in force already answers it.
            return;
        }
        f.banned_until = None;
        if f.repeat_until.is_some_and(|t| t <= now) {
            // The last ban is long over: a fresh start.
            *f = Failures::default();
        }
        f.count += 1;
        if f.count >= limit || f.bans > 0 {
            // First ban after `limit` failures in a row; once banned, the next failure
            // bans again, for twice as long (capped), so a client that keeps failing costs
            // one worker connection per ban, and bans grow apart.
            let ban = ban_time * (1u32 << f.bans.min(MAX_BAN_DOUBLINGS));
            f.count = 0;
            f.bans = f.bans.saturating_add(1);
            f.banned_until = Some(now + ban);
            // A failure within one more ban length after this one ends is a repeat.
            f.repeat_until = Some(now + ban * 2);
        }
    }

    /// Counts a pair as ended and reports it; the caller then closes or forgets both sides.
    /// A slot under ZMQ_PROXY_STREAM_MAX_PAIRS frees up, so waiting clients may pair.
    fn end_pair(&mut self, now: Instant, a: Key, b: Key, end: PairEnd) {
        debug_assert!(matches!(
            self.conns.get(a).map(|c| c.state),
            Some(State::Paired(p) | State::Relayed(p)) if p == b
        ));
        self.stats.pairs_open -= 1;
        let (client, worker) = match self.conns.get(a).map(|c| c.side) {
            Some(Side::Frontend) => (a, b),
            _ => (b, a),
        };
        self.pools.idle.pair_closed(worker);
        let w = self.conns.get(worker).expect("live worker");
        let dialed = w.dial.is_some();
        let worker_id = self.worker_id(w);
        let handshake = w.worker_handshake;
        // The worker closed before its handshake completed, or refused the client with
        // ERROR (a ZAP refusal: libzmq's client then closes first, so the client's close
        // counts too).
        let worker_closed = end == PairEnd::WorkerClosed;
        let failed = match handshake {
            HandshakeState::Running => worker_closed,
            HandshakeState::Error => worker_closed || end == PairEnd::ClientClosed,
            HandshakeState::Ready => false,
        };
        let end = if failed {
            PairEnd::HandshakeFailed
        } else {
            end
        };
        let client_ip = self.client_ip(client);
        if failed && handshake == HandshakeState::Running {
            // A silent close: a refusal of this client, or its worker dying; judged
            // once the worker's other connections have had their say.
            let paired = self.conns.get(client).expect("live client").paired_at;
            self.silent_failure(now, client_ip, worker_id, paired, dialed);
        } else if failed {
            // An ERROR is the worker's own word: a refusal, never a death.
            self.stats.handshakes_failed += 1;
            if let Some(ip) = client_ip {
                self.count_failure(now, ip);
            }
        } else if worker_closed && handshake == HandshakeState::Ready {
            // A session its worker ended: no client's address explains it.
            self.worker_ended_unexplained(now, worker_id);
        }
        // Dial-in: a worker connection that closed during the handshake is a slot its
        // worker will not bring back (libzmq never reconnects after a protocol error)
        // unless it calls zmq_connect() again itself.
        // A worker connection the client closed after an ERROR comes back by itself.
        let lost = end == PairEnd::HandshakeFailed && worker_closed && !dialed;
        if lost {
            self.stats.workers_lost += 1;
        }
        if self.limits.events {
            let c = self.conns.get(client).expect("live client");
            let w = self.conns.get(worker).expect("live worker");
            let event = Event::Close {
                pair: c.pair_no,
                client: c.peer.and_then(|p| p.addr),
                worker: self.worker_name(w),
                mechanism: c.mechanism.unwrap_or(Mechanism::Null),
                bytes_up: c.relayed,
                bytes_down: w.relayed,
                duration: now.saturating_duration_since(c.paired_at),
                end,
            };
            let lost_event = lost.then(|| Event::Lost {
                pair: c.pair_no,
                worker: self.worker_name(w),
                mechanism: c.mechanism.unwrap_or(Mechanism::Null),
            });
            self.push_event(event);
            if let Some(event) = lost_event {
                self.push_event(event);
            }
        }
        if self.limits.max_pairs.is_some() {
            self.try_pair(now);
        }
    }

    /// How events name a worker: its endpoint in dial-out, its address in dial-in.
    fn worker_name(&self, w: &Conn<P>) -> String {
        match (w.dial, w.peer.and_then(|p| p.addr)) {
            (Some(d), _) => self.endpoints.addr(d.endpoint).to_string(),
            (None, Some(a)) => a.to_string(),
            (None, None) => "-".to_string(),
        }
    }

    /// Schedules a close: after `out` drains when `flush`, else at once (dropping `out`).
    fn start_close(&mut self, now: Instant, key: Key, flush: bool) {
        let linger = self.limits.close_linger;
        self.release(key);
        self.release_endpoint(key);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !flush {
            conn.out.clear();
        }
        conn.early.clear();
        conn.handshake = Vec::new();
        conn.state = State::Closing {
            flush,
            deadline: now + linger,
        };
        self.mark_ready(key);
    }

    /// Removes a connection; `closed_by_us` remembers its id to ignore its late traffic.
    fn forget(&mut self, key: Key, closed_by_us: bool, now: Instant) {
        self.release(key);
        self.release_endpoint(key);
        let Some(conn) = self.conns.remove(key) else {
            return;
        };
        if conn.side == Side::Backend && !self.endpoints.active() {
            // Dial-in: its worker's libzmq connects it again; room is kept for it.
            self.budget.worker_left(now);
        }
        if let Some(ip) = conn.counted_addr {
            if let Some(n) = self.per_address.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_address.remove(&ip);
                }
            }
        }
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

    /// Lets time-driven work happen (retries, timeouts, settled closes).
    pub fn on_timeout(&mut self, now: Instant) {
        if self.paused {
            return;
        }
        self.fire_timers(now);
        self.judge_held(now);
        self.expire_tombstones(now);
    }

    /// When the driver must call in again even if no socket becomes readable.
    pub fn next_timeout(&self, _now: Instant) -> Option<Instant> {
        if self.paused {
            return None;
        }
        match (self.timers.next(), self.next_judgement()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether a pair waits to be handed over ([`Core::next_handover`]).
    pub fn wants_handover(&self) -> bool {
        !self.handovers.is_empty()
    }

    /// Whether there is something to send right now.
    pub fn wants_transmit(&self) -> bool {
        !self.paused && !self.ready.is_empty()
    }
}

/// How the core learned that a connection is gone.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gone {
    /// The last word about it: libzmq's disconnect notification, or the dialer's own end.
    Notified,
    /// A send failed with EHOSTUNREACH; libzmq's notification may still be on its way.
    Unreachable,
}

#[cfg(test)]
mod tests;

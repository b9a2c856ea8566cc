//! The relay of taken-over pairs: once a pair forms, the proxy owns both TCP connections and
//! moves bytes between them itself, with no libzmq in between. This is the sans-IO part: it
//! owns the pairs, their buffers, half-closes, deadlines and counters, and asks for one
//! operation at a time ([`Relay::next_io`]), which the driver performs on the descriptors
//! and reports back ([`Relay::on_io`]). It never reads a clock and never touches a
//! descriptor, so read/write (or splice) are the driver's business.
//!
//! Flow control is per pair: a direction is read only while its buffer has room, so a
//! destination that does not read fills its buffer, the source is no longer read, and TCP
//! pushes back on that source alone. Nothing is dropped or closed for being fast.
//!
//! The core hands a pair over with its tag, and hears back [`RelayEvent::Ended`] once.

mod buffer;
mod pair;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::zmtp::HandshakeState;
pub use buffer::Pool;
use pair::{Op, Pair};

/// Largest buffer one direction of one pair holds (further bounded by PAIR_BUFFER).
pub const MAX_BUFFER: usize = 128 << 10;
/// Free buffers a relay keeps for reuse.
const POOL_KEEP: usize = 64;

/// One of a pair's two connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum End {
    Client,
    Worker,
}

impl End {
    pub const BOTH: [End; 2] = [End::Client, End::Worker];

    pub fn index(self) -> usize {
        match self {
            End::Client => 0,
            End::Worker => 1,
        }
    }

    pub fn other(self) -> End {
        match self {
            End::Client => End::Worker,
            End::Worker => End::Client,
        }
    }
}

/// How a read, write or shutdown went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoOutcome {
    /// Bytes moved (a read of 0 is the peer's FIN); for a shutdown or close, done.
    Done(usize),
    /// EAGAIN: not ready; epoll will say when.
    WouldBlock,
    /// Any other error (a reset, a broken pipe): the pair ends.
    Failed(i32),
}

/// Why a taken-over pair ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayEnd {
    /// The client closed (FIN or reset) first.
    ClientClosed,
    /// The worker closed (FIN or reset) first.
    WorkerClosed,
    /// No bytes either way for the idle timeout.
    IdleTimeout,
    /// The core asked for it: one of the connections broke the takeover's quiet moment.
    Aborted,
    /// Never relayed: libzmq did not let go of a connection in time.
    NotReleased,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayEvent {
    /// The worker's security handshake completed (READY).
    HandshakeDone { tag: u64 },
    /// The pair is over and both connections are closed.
    Ended {
        tag: u64,
        end: RelayEnd,
        /// Bytes read from the client and from the worker since the handover.
        bytes_up: u64,
        bytes_down: u64,
        /// What the worker's security handshake came to: Ready, Error (the worker refused
        /// the client), or Running (neither seen).
        handshake: HandshakeState,
    },
}

/// Reads and writes by end (0 client, 1 worker): zmq_proxy_steerable's messages and bytes,
/// a message being one read or one write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub reads: [u64; 2],
    pub bytes_in: [u64; 2],
    pub writes: [u64; 2],
    pub bytes_out: [u64; 2],
}

impl Totals {
    pub fn add(&mut self, other: &Totals) {
        for i in 0..2 {
            self.reads[i] += other.reads[i];
            self.bytes_in[i] += other.bytes_in[i];
            self.writes[i] += other.writes[i];
            self.bytes_out[i] += other.bytes_out[i];
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayLimits {
    /// Bytes one direction of one pair may hold.
    pub buffer: usize,
    /// A pair with no bytes either way for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// After one direction ended, the other has this long without progress to end too.
    pub linger: Duration,
}

/// An operation on a pair's connection, named by the pair's slot.
#[must_use]
pub struct IoOp<'a> {
    pub slot: usize,
    pub kind: IoKind<'a>,
    pub token: IoToken,
}

pub enum IoKind<'a> {
    /// read(2) into `buf`.
    Read { end: End, buf: &'a mut [u8] },
    /// write(2) from `buf`.
    Write { end: End, buf: &'a [u8] },
    /// shutdown(SHUT_WR).
    Shutdown { end: End },
    /// Close both connections (deregister first).
    Close,
}

/// Names an operation in [`Relay::on_io`].
#[must_use]
#[derive(Clone, Copy, Debug)]
pub struct IoToken {
    slot: usize,
    tag: u64,
    op: Op,
    asked: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Idle,
    Linger,
}

pub struct Relay {
    limits: RelayLimits,
    pairs: Vec<Option<Pair>>,
    free: Vec<usize>,
    by_tag: FxHashMap<u64, usize>,
    /// Pairs that may have an operation to do.
    ready: VecDeque<usize>,
    timers: BinaryHeap<Reverse<(Instant, usize, u64, TimerKind)>>,
    events: VecDeque<RelayEvent>,
    pool: Pool,
    paused: bool,
    totals: Totals,
}

impl Relay {
    pub fn new(limits: RelayLimits) -> Relay {
        let size = limits.buffer.min(MAX_BUFFER);
        Relay {
            pool: Pool::new(size, POOL_KEEP),
            limits,
            pairs: Vec::new(),
            free: Vec::new(),
            by_tag: FxHashMap::default(),
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            events: VecDeque::new(),
            paused: false,
            totals: Totals::default(),
        }
    }

    /// Pairs being relayed.
    pub fn len(&self) -> usize {
        self.by_tag.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_tag.is_empty()
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Memory in buffers, the pool's included.
    pub fn buffered(&self) -> usize {
        let pairs: usize = self.pairs.iter().flatten().map(Pair::buffered).sum();
        pairs + self.pool.held()
    }

    /// Takes a pair over: `to_worker` is what the worker is owed first (the end of its
    /// greeting and the client's first command), `to_client` what the client is owed (the
    /// end of its greeting, if it had not left yet). Returns the slot that names it.
    pub fn add(&mut self, now: Instant, tag: u64, to_worker: Vec<u8>, to_client: Vec<u8>) -> usize {
        let pair = Pair::new(now, tag, to_worker, to_client);
        let slot = match self.free.pop() {
            Some(s) => {
                self.pairs[s] = Some(pair);
                s
            }
            None => {
                self.pairs.push(Some(pair));
                self.pairs.len() - 1
            }
        };
        self.by_tag.insert(tag, slot);
        if let Some(t) = self.limits.idle_timeout {
            self.timers
                .push(Reverse((now + t, slot, tag, TimerKind::Idle)));
        }
        self.mark_ready(slot);
        slot
    }

    fn mark_ready(&mut self, slot: usize) {
        if let Some(Some(p)) = self.pairs.get_mut(slot) {
            if !p.in_ready {
                p.in_ready = true;
                self.ready.push_back(slot);
            }
        }
    }

    /// epoll's report for one connection.
    pub fn on_ready(
        &mut self,
        now: Instant,
        slot: usize,
        end: End,
        readable: bool,
        writable: bool,
        hup: bool,
    ) {
        if let Some(Some(p)) = self.pairs.get_mut(slot) {
            let had_linger = p.linger_from.is_some();
            p.on_ready(now, end, readable, writable, hup);
            if !had_linger && p.linger_from.is_some() && p.ending.is_none() {
                let at = now + self.limits.linger;
                self.timers
                    .push(Reverse((at, slot, p.tag, TimerKind::Linger)));
            }
            self.mark_ready(slot);
        }
    }

    /// Ends the pair tagged `tag` at once (both connections closed), if it is here.
    pub fn abort(&mut self, tag: u64) {
        if let Some(&slot) = self.by_tag.get(&tag) {
            let p = self.pairs[slot].as_mut().expect("tagged pair is live");
            p.ending = Some(RelayEnd::Aborted);
            self.mark_ready(slot);
        }
    }

    /// PAUSE: no connection is read or written, and no deadline runs, until RESUME. Time
    /// spent paused does not count towards a pair's idle timeout: a paused pair is not idle
    /// by its own doing.
    pub fn set_paused(&mut self, now: Instant, paused: bool) {
        let resumed = self.paused && !paused;
        self.paused = paused;
        if resumed {
            for slot in 0..self.pairs.len() {
                if let Some(p) = self.pairs[slot].as_mut() {
                    p.last_activity = p.last_activity.max(now);
                }
                self.mark_ready(slot);
            }
        }
    }

    pub fn next_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        if self.paused {
            return None;
        }
        self.timers.peek().map(|Reverse((at, ..))| *at)
    }

    pub fn on_timeout(&mut self, now: Instant) {
        if self.paused {
            return;
        }
        while let Some(Reverse((at, slot, tag, kind))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(Some(p)) = self.pairs.get_mut(slot) else {
                continue;
            };
            if p.tag != tag || p.ending.is_some() {
                continue;
            }
            let (due, end) = match kind {
                TimerKind::Idle => {
                    let idle = self.limits.idle_timeout.expect("armed only when set");
                    (p.last_activity + idle, RelayEnd::IdleTimeout)
                }
                TimerKind::Linger => {
                    let from = p.linger_from.expect("armed after a shutdown");
                    (p.last_activity.max(from) + self.limits.linger, p.closer())
                }
            };
            if now >= due {
                p.ending = Some(end);
                self.mark_ready(slot);
            } else {
                self.timers.push(Reverse((due, slot, tag, kind)));
            }
        }
    }

    /// The next operation to perform. Call [`Relay::on_io`] with its token before asking
    /// again.
    pub fn next_io(&mut self) -> Option<IoOp<'_>> {
        loop {
            let slot = *self.ready.front()?;
            let Some(Some(p)) = self.pairs.get_mut(slot) else {
                self.ready.pop_front();
                continue;
            };
            let Some(op) = p.next_op(self.paused) else {
                p.in_ready = false;
                self.ready.pop_front();
                continue;
            };
            let p = self.pairs[slot].as_mut().expect("checked above");
            let tag = p.tag;
            let (kind, asked) = match op {
                Op::Read(end) => {
                    let buf = p.buf_spare(end, &mut self.pool);
                    let asked = buf.len();
                    (IoKind::Read { end, buf }, asked)
                }
                Op::Write(end) => {
                    let buf = p.buf_data(end.other());
                    (IoKind::Write { end, buf }, buf.len())
                }
                Op::Shutdown(end) => (IoKind::Shutdown { end }, 0),
                Op::Close => (IoKind::Close, 0),
            };
            return Some(IoOp {
                slot,
                kind,
                token: IoToken {
                    slot,
                    tag,
                    op,
                    asked,
                },
            });
        }
    }

    /// Reports how the operation named by `token` went.
    pub fn on_io(&mut self, now: Instant, token: IoToken, outcome: IoOutcome) {
        let front = self.ready.pop_front();
        debug_assert_eq!(front, Some(token.slot));
        let slot = token.slot;
        let Some(Some(p)) = self.pairs.get_mut(slot) else {
            return;
        };
        debug_assert_eq!(p.tag, token.tag);
        if token.op == Op::Close {
            let p = self.pairs[slot].take().expect("live");
            self.by_tag.remove(&p.tag);
            self.free.push(slot);
            self.events.push_back(RelayEvent::Ended {
                tag: p.tag,
                end: p.ending.unwrap_or(RelayEnd::Aborted),
                bytes_up: p.bytes_read[0],
                bytes_down: p.bytes_read[1],
                handshake: p.handshake,
            });
            return;
        }
        let had_linger = p.linger_from.is_some();
        if p.on_outcome(
            now,
            token.op,
            token.asked,
            outcome,
            &mut self.pool,
            &mut self.totals,
        ) {
            self.events
                .push_back(RelayEvent::HandshakeDone { tag: token.tag });
        }
        if !had_linger && p.linger_from.is_some() && p.ending.is_none() {
            let at = now + self.limits.linger;
            self.timers
                .push(Reverse((at, slot, token.tag, TimerKind::Linger)));
        }
        if p.next_op(self.paused).is_some() {
            // To the back: one busy pair does not starve the others.
            self.ready.push_back(slot);
        } else {
            p.in_ready = false;
        }
    }
}

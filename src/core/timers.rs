//! Deadlines of connections: send retries, handshake and wait timeouts, worker age, pair
//! idleness. One heap; entries that no longer apply are recognised and skipped when they
//! fire, so nothing has to be cancelled.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use super::{Core, Key, Reject, State};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKind {
    /// Retry a send or close that libzmq refused.
    Retry,
    Handshake,
    Wait,
    MaxAge,
    Idle,
    Stall,
    Probe,
    /// Dial-out: the worker connection must have greeted by now.
    ConnectTimeout,
    /// Dial-out: an endpoint that was down may be tried again for this waiting client.
    Redial,
}

#[derive(Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Key, TimerKind)>>,
}

impl Timers {
    pub(super) fn arm(&mut self, at: Instant, key: Key, kind: TimerKind) {
        self.heap.push(Reverse((at, key, kind)));
    }

    pub(super) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    fn peek(&self) -> Option<(Instant, Key, TimerKind)> {
        self.heap.peek().map(|Reverse(t)| *t)
    }

    fn pop(&mut self) {
        self.heap.pop();
    }

    fn pop_due(&mut self, now: Instant) -> Option<(Instant, Key, TimerKind)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }
}

impl<P: AsRef<[u8]>> Core<P> {
    /// Whether a timer still means something: its connection is still in the state it was
    /// armed for (the same conditions `fire_timers` acts on).
    fn timer_live(&self, at: Instant, key: Key, kind: TimerKind) -> bool {
        let Some(conn) = self.conns.get(key) else {
            return false;
        };
        match (kind, conn.state) {
            (TimerKind::Retry, _) => conn.blocked_until == Some(at),
            (TimerKind::Handshake, State::ClientHandshake { .. } | State::WorkerHandshake) => true,
            (TimerKind::Wait, State::Waiting(_) | State::Dialing { .. }) => true,
            (TimerKind::MaxAge, State::Idle(_)) => true,
            (TimerKind::Idle | TimerKind::Probe, State::Paired(_)) => true,
            (TimerKind::Stall, _) => true,
            (TimerKind::ConnectTimeout, State::Connecting | State::WorkerHandshake) => {
                conn.dial.is_some()
            }
            (TimerKind::Redial, State::Waiting(_)) => true,
            _ => false,
        }
    }

    /// Drops timers at the head of the heap that no longer mean anything (a client that
    /// screened long before its handshake deadline, a pair taken over), so that the loop
    /// does not wake for them: with thousands of connections made in a burst, their dead
    /// deadlines would otherwise wake an idle proxy thousands of times a second.
    pub fn prune_timers(&mut self) {
        while let Some((at, key, kind)) = self.timers.peek() {
            if self.timer_live(at, key, kind) {
                return;
            }
            self.timers.pop();
        }
    }

    pub(super) fn fire_timers(&mut self, now: Instant) {
        while let Some((at, key, kind)) = self.timers.pop_due(now) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            match (kind, conn.state) {
                (TimerKind::Retry, _) if conn.blocked_until == Some(at) => {
                    conn.blocked_until = None;
                    self.mark_ready(key);
                }
                (TimerKind::Handshake, State::ClientHandshake { .. } | State::WorkerHandshake) => {
                    self.reject(now, key, Reject::HandshakeTimeout);
                }
                (TimerKind::Wait, State::Waiting(_) | State::Dialing { .. }) => {
                    self.reject(now, key, Reject::WaitTimeout);
                }
                (TimerKind::MaxAge, State::Idle(m)) => {
                    self.stats.workers_recycled += 1;
                    self.pools.leave(key, &State::Idle(m), &mut self.stats);
                    self.start_close(now, key, false);
                }
                (TimerKind::Idle, State::Paired(partner)) => {
                    let idle = self.limits.idle_timeout.expect("armed only when set");
                    let partner_activity = self
                        .conns
                        .get(partner)
                        .map(|p| p.last_activity)
                        .unwrap_or(now);
                    let conn = self.conns.get(key).expect("live");
                    let last = conn.last_activity.max(partner_activity);
                    if now >= last + idle {
                        self.stats.count(Reject::IdleTimeout);
                        self.end_pair(now, key, partner, super::PairEnd::IdleTimeout);
                        self.start_close(now, key, true);
                        self.start_close(now, partner, true);
                    } else {
                        self.timers.arm(last + idle, key, TimerKind::Idle);
                    }
                }
                (TimerKind::Stall, _) => self.check_stall(now, key),
                (TimerKind::ConnectTimeout, State::Connecting | State::WorkerHandshake)
                    if conn.dial.is_some() =>
                {
                    self.stats.connect_timeouts += 1;
                    self.abandon_dial(now, key);
                    self.start_close(now, key, false);
                }
                (TimerKind::Redial, State::Waiting(_)) => self.try_pair(now),
                (TimerKind::Probe, State::Paired(_)) => {
                    let interval = self.limits.probe_interval.expect("armed only when set");
                    let due = conn.last_activity + interval;
                    if now >= due {
                        conn.probe_due = true;
                        self.mark_ready(key);
                    } else {
                        self.timers.arm(due, key, TimerKind::Probe);
                    }
                }
                // The connection moved on since the timer was armed.
                _ => {}
            }
        }
    }
}

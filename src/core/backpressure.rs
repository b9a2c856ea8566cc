//! ZMQ_PROXY_STREAM_BACKPRESSURE: instead of closing a pair whose destination does not keep
//! up, stop reading the socket its bytes come from until the destination has drained to
//! half its bound. libzmq then stops reading those TCP connections once their pipes are
//! full, and TCP pushes back on the senders: nothing is lost. A STREAM socket cannot stop
//! reading one connection alone (receives are fair-queued), so every sender on that socket
//! waits, as with zmq_proxy_steerable; a destination that accepts nothing for the stall
//! timeout is closed with its pair, so a stuck peer cannot stall the others for ever.

use std::time::Instant;

use super::timers::TimerKind;
use super::{Core, Key, Reject, Side, State};

fn index(side: Side) -> usize {
    match side {
        Side::Frontend => 0,
        Side::Backend => 1,
    }
}

/// The side whose bytes fill a connection on `side`.
fn source_of(side: Side) -> Side {
    match side {
        Side::Frontend => Side::Backend,
        Side::Backend => Side::Frontend,
    }
}

impl<P: AsRef<[u8]>> Core<P> {
    /// Whether the driver should read `side` now.
    pub fn reading(&self, side: Side) -> bool {
        !self.paused && self.holding_back[index(side)] == 0
    }

    /// `key`'s buffer went over its bound: hold back its source socket.
    pub(super) fn hold_back(&mut self, now: Instant, key: Key) {
        let stall = self.limits.stall_timeout;
        let conn = self.conns.get_mut(key).expect("live conn");
        if conn.over {
            return;
        }
        conn.over = true;
        conn.last_progress = now;
        let src = index(source_of(conn.side));
        self.holding_back[src] += 1;
        self.stats.backpressure_pauses += 1;
        if let Some(t) = stall {
            self.timers.arm(now + t, key, TimerKind::Stall);
        }
    }

    /// `key` no longer holds its source back (drained, closing or gone).
    pub(super) fn release(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.over {
            conn.over = false;
            let src = index(source_of(conn.side));
            self.holding_back[src] -= 1;
        }
    }

    pub(super) fn check_stall(&mut self, now: Instant, key: Key) {
        let Some(stall) = self.limits.stall_timeout else {
            return;
        };
        let conn = self.conns.get(key).expect("caller checked");
        if !conn.over {
            return;
        }
        let due = conn.last_progress + stall;
        if now < due {
            self.timers.arm(due, key, TimerKind::Stall);
            return;
        }
        if let State::Paired(partner) = conn.state {
            self.stats.count(Reject::Stalled);
            self.end_pair(now, key, partner, super::PairEnd::Stalled);
            self.start_close(now, key, false);
            self.start_close(now, partner, false);
        } else {
            self.release(key);
        }
    }
}

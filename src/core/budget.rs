//! The descriptor budget (ZMQ_PROXY_STREAM_MAX_CONNECTIONS): how many connections the proxy
//! may hold, and when dial-out may dial. The core counts connections; the driver measures
//! the process's descriptor limit and passes the budget in as a number.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Side;

/// After a dial failed for a reason of this host (EMFILE, EADDRNOTAVAIL, ...), no dial
/// before this long: retrying at once would only fail again, in a loop.
pub(super) const LOCAL_RETRY: Duration = Duration::from_millis(100);

/// Dial-in: how long room is kept for a worker connection that went (libzmq reconnects it
/// after ZMQ_RECONNECT_IVL, 100 ms by default).
pub(super) const WORKER_RETURN: Duration = Duration::from_secs(1);

/// What the proxy may still open.
#[derive(Clone, Debug, Default)]
pub(super) struct Budget {
    /// Connections the proxy may hold at once; None: no limit.
    max: Option<usize>,
    /// A local failure holds dials back until then.
    dials_held_until: Option<Instant>,
    /// Dial-in: until when room is kept for each worker connection that went, oldest
    /// first. Without it, clients arriving at the budget take the room of the worker
    /// connections that come back after each pair, and the pool drains to nothing while
    /// admitted clients wait.
    returning: VecDeque<Instant>,
}

impl Budget {
    pub(super) fn new(max: Option<usize>) -> Budget {
        Budget {
            max,
            ..Budget::default()
        }
    }

    /// Dial-in: a worker connection went; its worker's libzmq will connect it again.
    pub(super) fn worker_left(&mut self, now: Instant) {
        let Some(max) = self.max else {
            return;
        };
        if self.returning.len() < max {
            self.returning.push_back(now + WORKER_RETURN);
        }
    }

    /// Dial-in: a worker connection arrived, perhaps one that was expected back.
    pub(super) fn worker_arrived(&mut self) {
        self.returning.pop_front();
    }

    /// Room kept for worker connections expected back.
    fn reserved(&mut self, now: Instant) -> usize {
        while self.returning.front().is_some_and(|&t| t <= now) {
            self.returning.pop_front();
        }
        self.returning.len()
    }

    pub(super) fn max(&self) -> Option<usize> {
        self.max
    }

    /// Whether a connection that just appeared on `side` may stay, with `held` connections
    /// held already, `clients` of them clients. In dial-out a client will need a worker
    /// connection of its own: it is admitted only with room for both, counting every other
    /// client's worker connection as made, so that admitted clients never wait for a dial
    /// that the budget forbids. In dial-in a client leaves room for the worker connections
    /// expected back; a worker connection may take it.
    pub(super) fn admits(
        &mut self,
        now: Instant,
        side: Side,
        held: usize,
        clients: usize,
        dial_out: bool,
    ) -> bool {
        let Some(max) = self.max else {
            return true;
        };
        match side {
            Side::Frontend if dial_out => held.max(2 * clients) + 2 <= max,
            Side::Frontend => held + self.reserved(now) < max,
            Side::Backend => held < max,
        }
    }

    /// Whether dial-out may make one more connection now, with `held` held.
    pub(super) fn may_dial(&self, now: Instant, held: usize) -> bool {
        self.max.is_none_or(|max| held < max) && self.dials_held_until.is_none_or(|t| t <= now)
    }

    /// When a dial that may not go now should be tried again: when the hold ends, or
    /// shortly, for connections to close.
    pub(super) fn next_try(&self, now: Instant) -> Instant {
        self.dials_held_until
            .filter(|&t| t > now)
            .unwrap_or(now + LOCAL_RETRY)
    }

    /// A dial failed for a reason of this host: hold dials back for [`LOCAL_RETRY`].
    /// Returns when they may go again.
    pub(super) fn hold_dials(&mut self, now: Instant) -> Instant {
        let until = now + LOCAL_RETRY;
        self.dials_held_until = Some(until);
        until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_admits_everything() {
        let mut b = Budget::new(None);
        let now = Instant::now();
        b.worker_left(now);
        assert!(b.admits(now, Side::Frontend, usize::MAX - 3, usize::MAX / 4, true));
        assert!(b.admits(now, Side::Frontend, usize::MAX - 1, 0, false));
        assert!(b.admits(now, Side::Backend, usize::MAX - 1, 0, false));
        assert!(b.may_dial(now, usize::MAX - 1));
    }

    #[test]
    fn dial_in_counts_one_per_connection_on_either_side() {
        let mut b = Budget::new(Some(10));
        let now = Instant::now();
        assert!(b.admits(now, Side::Frontend, 9, 5, false));
        assert!(!b.admits(now, Side::Frontend, 10, 5, false));
        assert!(b.admits(now, Side::Backend, 9, 0, false));
        assert!(!b.admits(now, Side::Backend, 10, 0, false));
    }

    #[test]
    fn dial_in_keeps_room_for_worker_connections_coming_back() {
        let mut b = Budget::new(Some(10));
        let now = Instant::now();
        b.worker_left(now);
        b.worker_left(now);
        assert!(b.admits(now, Side::Frontend, 7, 5, false));
        assert!(
            !b.admits(now, Side::Frontend, 8, 5, false),
            "2 kept for workers"
        );
        assert!(
            b.admits(now, Side::Backend, 9, 5, false),
            "a worker may take them"
        );
        b.worker_arrived();
        assert!(b.admits(now, Side::Frontend, 8, 5, false));
        assert!(!b.admits(now, Side::Frontend, 9, 5, false));
        // A worker that does not come back keeps its room for WORKER_RETURN only.
        assert!(b.admits(now + WORKER_RETURN, Side::Frontend, 9, 5, false));
    }

    #[test]
    fn dial_out_keeps_room_for_each_client_s_worker_connection() {
        let mut b = Budget::new(Some(10));
        let now = Instant::now();
        // 4 clients, none dialed yet: 8 reserved, room for one more client (and its worker).
        assert!(b.admits(now, Side::Frontend, 4, 4, true));
        assert!(!b.admits(now, Side::Frontend, 5, 5, true));
        // Worker connections lingering after their clients left count as held.
        assert!(!b.admits(now, Side::Frontend, 9, 2, true));
        assert!(b.may_dial(Instant::now(), 9));
        assert!(!b.may_dial(Instant::now(), 10));
    }

    #[test]
    fn a_local_failure_holds_dials_back_for_a_while() {
        let mut b = Budget::new(None);
        let now = Instant::now();
        let until = b.hold_dials(now);
        assert_eq!(until, now + LOCAL_RETRY);
        assert!(!b.may_dial(now, 0));
        assert!(!b.may_dial(now + LOCAL_RETRY / 2, 0));
        assert!(b.may_dial(until, 0));
        // A dial that waits is tried again when the hold ends, not later.
        assert_eq!(b.next_try(now + LOCAL_RETRY / 2), until);
        assert_eq!(b.next_try(until), until + LOCAL_RETRY);
    }
}
